"""The regional head: the renewables family on gridded zone products, its designs, its package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from carbonsync.models.head import RenewablesHead, build_head_design, fit_head, physical_products, predict
from carbonsync.models.package import load_package, save_package
from carbonsync.models.renewables import DesignError, RenewablesConfig, RenewablesError
from carbonsync.models.renewables.gridded import gridded_design
from carbonsync.physics import renewables as ph
from carbonsync.physics.grid import Grid
from carbonsync.physics.solar import solar_position
from carbonsync.physics.zones import Zone

GRID = Grid(19, 36)
WIND_FACTOR = [0.75, 1.0, 1.15]
SOLAR_FACTOR = [0.85, 1.1, 0.7]


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], scale: float, rho: float = 0.95) -> np.ndarray:
    x = np.empty(shape)
    x[0] = rng.normal(0, scale, shape[1:])
    for i in range(1, shape[0]):
        x[i] = rho * x[i - 1] + np.sqrt(1 - rho**2) * rng.normal(0, scale, shape[1:])
    return x


@pytest.fixture(scope="module")
def synthetic():
    """60 days of synthetic weather → zone products; 'observed' CFs = phys × zone factor + noise."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-04-01", periods=24 * 60, freq="h")
    shape = (len(times), *GRID.shape)
    u, v = _ar1(rng, shape, 6.0) + 3.0, _ar1(rng, shape, 6.0)
    mid = times - pd.Timedelta(minutes=30)
    hour = (mid.hour + mid.minute / 60).to_numpy(float)[:, None, None]
    zen, _ = solar_position(mid.day_of_year.to_numpy(float)[:, None, None], hour,
                               GRID.lat[None, :, None], GRID.lon[None, None, :])
    cloud = np.clip(0.75 + 0.25 * _ar1(rng, shape, 1.0), 0.1, 1.0)
    ssrd = np.clip(np.cos(np.deg2rad(zen)), 0, None) * 1000.0 * cloud * 3600.0
    coords = {"time": times, "lat": GRID.lat, "lon": GRID.lon}

    def da(values, units):
        return xr.DataArray(values, coords=coords, dims=("time", "lat", "lon"), attrs={"units": units})

    zones = [
        Zone("A", "a", 40, 60, 0, 30, 1000, 500, 800),
        Zone("B", "b", -40, -20, 350, 380, 300, 900, 600),
        Zone("C", "c", 20, 40, 240, 280, 2000, 2000, 3000, utc_offset_h=-7),
    ]
    ds = ph.zone_products(da(u, "m s-1"), da(v, "m s-1"), da(ssrd, "J m-2"), zones, GRID)
    fw = xr.DataArray(WIND_FACTOR, dims="zone", coords={"zone": ds.zone})
    fs = xr.DataArray(SOLAR_FACTOR, dims="zone", coords={"zone": ds.zone})
    noisy_solar = (ds.solar_cf * fs + rng.normal(0, 0.03, ds.solar_cf.shape)).clip(0, 1)
    obs = xr.Dataset({
        "wind_cf": (ds.wind_cf * fw + rng.normal(0, 0.04, ds.wind_cf.shape)).clip(0, 1),
        "solar_cf": xr.where(ds.solar_cf > 0, noisy_solar, 0.0),
    })
    cut = int(0.7 * len(times))
    train, test = ds.isel(time=slice(0, cut)), ds.isel(time=slice(cut, None))
    return {
        "zones": zones, "obs": obs, "train": train, "test": test,
        "d_train": gridded_design(train, observed=obs), "d_test": gridded_design(test, observed=obs),
    }


@pytest.fixture(scope="module")
def trained(synthetic):
    head = fit_head(synthetic["d_train"], RenewablesConfig(learner="lightgbm", levels=(0.1, 0.5, 0.9)))
    return head, predict(head, synthetic["d_test"], synthetic["zones"])


def test_gridded_design_rows(synthetic):
    d, test = synthetic["d_test"], synthetic["test"]
    assert len(d) == test.sizes["time"] * 3 and d.targets == ("wind_cf", "solar_cf")
    assert d.features == ("wind_speed", "ghi", "hour_sin", "hour_cos", "zone_A", "zone_B", "zone_C")
    assert (d.lead_h == 0).all()  # analyses: each row is its own issue
    np.testing.assert_allclose(d.prior("wind_cf"), test.wind_cf.values.reshape(-1))
    np.testing.assert_allclose(d.frame["ghi"], test.ghi.values.reshape(-1))
    np.testing.assert_allclose(d.frame["hour_sin"][::3], np.sin(2 * np.pi * test.time.dt.hour.values / 24), atol=1e-12)
    assert d.frame["zone_B"].tolist()[:3] == [0.0, 1.0, 0.0]
    np.testing.assert_array_equal(d.active("solar_cf"), test.solar_cf.values.reshape(-1) > 0)
    assert d.active("wind_cf").all()
    np.testing.assert_allclose(d.observed("solar_cf"), synthetic["obs"].solar_cf.sel(time=test.time).values.reshape(-1))
    forecast = gridded_design(test.isel(time=slice(0, 5)), issue_time=test.time.values[0])
    assert forecast.lead_h.tolist()[::3] == [0, 1, 2, 3, 4] and np.isnan(forecast.observed("wind_cf")).all()
    with pytest.raises(DesignError, match="lack 'ghi'"):
        gridded_design(test.drop_vars("ghi"))
    with pytest.raises(DesignError, match=r"zone\(s\) \['C'\] are not among the model's zones"):
        gridded_design(test, zone_ids=["A", "B"])


def test_head_beats_physics(synthetic, trained):
    _, pred = trained
    obs = synthetic["obs"].sel(time=pred.time)
    phys = synthetic["test"]
    for name in ("wind_cf", "solar_cf"):
        day = phys.solar_cf > 0 if name == "solar_cf" else xr.ones_like(phys.wind_cf, dtype=bool)
        rmse_phys = float(np.sqrt(((phys[name] - obs[name]) ** 2).where(day).mean()))
        rmse_head = float(np.sqrt(((pred[name] - obs[name]) ** 2).where(day).mean()))
        assert rmse_head < 0.7 * rmse_phys, (name, rmse_head, rmse_phys)
    np.testing.assert_allclose(pred["physical_wind_cf"], phys["wind_cf"].clip(0, 1))


def test_quantiles_ordered_and_calibrated(synthetic, trained):
    _, pred = trained
    obs = synthetic["obs"].sel(time=pred.time)
    phys = synthetic["test"]
    assert list(pred["quantile"].values) == [0.1, 0.5, 0.9]
    for name in ("wind_cf", "solar_cf", "renewable_share"):
        q = pred[f"{name}_quantile"]
        assert bool((q.diff("quantile") >= 0).all()) and float(q.min()) >= 0 and float(q.max()) <= 1
    for name in ("wind_cf", "solar_cf"):
        q = pred[f"{name}_quantile"]
        use = phys.solar_cf > 0.05 if name == "solar_cf" else xr.ones_like(phys.wind_cf, dtype=bool)
        inside = ((obs[name] >= q.sel(quantile=0.1)) & (obs[name] <= q.sel(quantile=0.9))).where(use)
        assert 0.7 < float(inside.mean()) < 0.9, (name, float(inside.mean()))


def test_solar_zero_at_night(synthetic, trained):
    _, pred = trained
    night = synthetic["test"].solar_cf == 0
    assert bool(night.any())
    assert float(abs(pred.solar_cf.where(night, 0.0)).max()) == 0.0
    assert float(abs(pred.solar_cf_quantile.where(night, 0.0)).max()) == 0.0


def test_predict_renewable_share(synthetic, trained):
    _, pred = trained
    expected = ph.renewable_share(pred.wind_cf, pred.solar_cf, synthetic["zones"])
    xr.testing.assert_allclose(pred.renewable_share, expected)


def test_predict_needs_one_row_per_time_and_zone(synthetic, trained):
    head, _ = trained
    d = synthetic["d_test"]
    twice = type(d)(pd.concat([d.frame, d.frame.assign(issue_time=d.frame["issue_time"] - pd.Timedelta(hours=1),
                                                       lead_h=1)]), d.targets, d.features, d.bounds)
    with pytest.raises(RenewablesError, match=r"one row per \(time, zone\)"):
        predict(head, twice, synthetic["zones"])


def test_the_head_package_round_trips_without_pickle(synthetic, trained, tmp_path):
    head, pred = trained
    path = save_package(tmp_path / "head", head, kind="head", config=None, channels=[], grid=GRID, dt_hours=1,
                        stats={})
    loaded = load_package(path)  # weights.pt through torch.load(weights_only=True), after the hash check
    assert isinstance(loaded.model, RenewablesHead) and loaded.model.zone_ids == ("A", "B", "C")
    assert loaded.metadata["config"]["model"]["parts"]["wind_cf"]["config"]["learner"] == "lightgbm"
    xr.testing.assert_identical(predict(loaded.model, synthetic["d_test"], synthetic["zones"]), pred)
    state = torch.load(path / "weights.pt", weights_only=True)
    assert {str(v.dtype) for v in state.values()} <= {"torch.uint8", "torch.float64", "torch.int64"}


def test_a_head_refits_deterministically(synthetic):
    config = RenewablesConfig(learner="lightgbm", params={"n_estimators": 40})
    small = synthetic["d_train"].select(np.arange(len(synthetic["d_train"])) < 3000)
    a, b = fit_head(small, config), fit_head(small, config)
    pd.testing.assert_frame_equal(a(synthetic["d_test"]), b(synthetic["d_test"]))


# ------------------------------------------------------------------------------ designs from weather


@pytest.fixture(scope="module")
def gridded():
    """Two days of hourly gridded weather with units, as a canonical (time, lat, lon) Dataset."""
    rng = np.random.default_rng(11)
    times = pd.date_range("2024-05-01", periods=48, freq="h")
    shape = (len(times), *GRID.shape)
    mid = times - pd.Timedelta(minutes=30)
    zen, _ = solar_position(mid.day_of_year.to_numpy(float)[:, None, None],
                            (mid.hour + mid.minute / 60).to_numpy(float)[:, None, None],
                            GRID.lat[None, :, None], GRID.lon[None, None, :])
    ssrd = np.clip(np.cos(np.deg2rad(zen)), 0, None) * 800.0 * 3600.0 * rng.uniform(0.3, 1.0, shape)
    dims = ("time", "lat", "lon")
    return xr.Dataset(
        {"u100": (dims, _ar1(rng, shape, 6.0) + 2.0, {"units": "m s-1"}),
         "v100": (dims, _ar1(rng, shape, 6.0), {"units": "m s-1"}),
         "ssrd": (dims, ssrd, {"units": "J m-2"}),
         "t2m": (dims, rng.normal(288.0, 5.0, shape), {"units": "K"})},
        coords={"time": times, "lat": GRID.lat, "lon": GRID.lon},
    )


def test_build_design_from_gridded_weather(gridded, synthetic):
    zones = synthetic["zones"]
    design = build_head_design(gridded, zones)
    expected = gridded_design(ph.zone_products(gridded.u100, gridded.v100, gridded.ssrd, zones, GRID, t2m=gridded.t2m))
    pd.testing.assert_frame_equal(design.frame, expected.frame)
    assert (design.lead_h == 0).all()
    with pytest.raises(KeyError, match="ssrd"):
        build_head_design(gridded.drop_vars("ssrd"), zones)


def test_build_design_from_backbone_forecasts(gridded, synthetic):
    zones = synthetic["zones"]
    inits = gridded.time.values[[0, 12]]
    lead = pd.to_timedelta(np.arange(25), unit="h")
    forecasts = xr.concat([gridded.sel(time=t + lead.values).rename(time="lead_time").assign_coords(lead_time=lead)
                           for t in inits], dim=pd.Index(inits, name="init_time"))
    forecasts = forecasts.transpose("init_time", "lead_time", "lat", "lon")
    design = build_head_design(forecasts, zones)
    nz = len(zones)
    assert len(design) == 2 * 25 * nz
    for k, init in enumerate(inits):
        rows = design.frame.iloc[k * 25 * nz:(k + 1) * 25 * nz].reset_index(drop=True)
        analysis = build_head_design(gridded.sel(time=init + lead.values), zones).frame
        weather = ["wind_speed", "ghi", "prior_wind_cf", "prior_solar_cf"]
        pd.testing.assert_frame_equal(rows[weather], analysis[weather])  # same weather, same physics
        assert rows["lead_h"].tolist()[::nz] == list(range(25)) and (rows["issue_time"] == init).all()


def test_build_design_from_station_series(gridded, synthetic):
    i, j = 5, 3  # a cell at 40N 30E
    station = gridded.isel(lat=i, lon=j)  # dims (time,), scalar lat/lon coordinates
    zone = Zone("P", "point", 35, 45, 25, 35, 100, 50, 120)
    design = build_head_design(station, [zone])
    wind = ph.wind_capacity_factor(gridded.u100, gridded.v100).isel(lat=i, lon=j)
    solar = ph.solar_capacity_factor(gridded.ssrd, t2m=gridded.t2m).isel(lat=i, lon=j)
    np.testing.assert_allclose(design.prior("wind_cf"), np.clip(wind.values, 0, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(design.prior("solar_cf"), np.clip(solar.values, 0, 1), rtol=1e-5, atol=1e-6)
    assert design.features[-1] == "zone_P" and len(design) == gridded.sizes["time"]
    # without coordinates the zone's centre is used
    centre = physical_products(station.drop_vars(["lat", "lon"]), [zone])
    np.testing.assert_allclose(centre.solar_cf.values[:, 0], solar.values, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one zone"):
        build_head_design(station, synthetic["zones"])
    with pytest.raises(ValueError, match="expected"):
        build_head_design(gridded.isel(lon=0), [zone])
