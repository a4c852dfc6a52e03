"""The regional head: learned correction of physical CFs, quantiles, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from carbonsync.models.head import (
    FEATURES,
    HeadFeatures,
    RegionalHead,
    build_head_features,
    calibrate_band,
    fit_head,
    pinball_loss,
    predict,
    quantile_coverage,
)
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
        "f_train": HeadFeatures.from_products(train, zones),
        "f_test": HeadFeatures.from_products(test, zones),
    }


@pytest.fixture(scope="module")
def trained(synthetic):
    model, history = fit_head(synthetic["f_train"], synthetic["obs"],
                              valid=(synthetic["f_test"], synthetic["obs"]), epochs=300, lr=2e-2, seed=0)
    return model, history, predict(model, synthetic["f_test"])


def test_features(synthetic):
    f, test = synthetic["f_test"], synthetic["test"]
    assert f.x.shape == (test.sizes["time"] * 3, len(FEATURES)) and f.x.dtype == torch.float32
    assert f.zone_ids == ("A", "B", "C") and f.zone_index[:4].tolist() == [0, 1, 2, 0]
    np.testing.assert_allclose(f.x[1, 0].item(), float(test.wind_cf[0, 1]), rtol=1e-6)
    np.testing.assert_allclose(f.x[:, 3].numpy(), (test.ghi.values / 1000).reshape(-1), rtol=1e-5, atol=1e-6)
    hour = test.time.dt.hour.values
    np.testing.assert_allclose(f.x[::3, 4].numpy(), np.sin(2 * np.pi * hour / 24), atol=1e-6)
    y = f.targets(synthetic["obs"])
    assert y.shape == (len(f), 2)
    with pytest.raises(KeyError, match="ghi"):
        HeadFeatures.from_products(test.drop_vars("ghi"))


def test_untrained_head_returns_physical_cf(synthetic):
    f = synthetic["f_test"]
    torch.manual_seed(0)
    with torch.no_grad():
        out = RegionalHead(f.zone_ids)(f.x, f.zone_index)
    phys = f.phys.clamp(1e-3, 1 - 1e-3)
    np.testing.assert_allclose(out.point[:, 0], phys[:, 0], atol=1e-6)
    day = f.phys[:, 1] > 0
    np.testing.assert_allclose(out.point[day, 1], phys[day, 1], atol=1e-6)


def test_head_beats_physics(synthetic, trained):
    model, history, pred = trained
    obs = synthetic["obs"].sel(time=pred.time)
    phys = synthetic["test"]
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["val_loss"][-1] < 0.6 * history["val_loss"][0]
    for name in ("wind_cf", "solar_cf"):
        day = phys.solar_cf > 0 if name == "solar_cf" else xr.ones_like(phys.wind_cf, dtype=bool)
        rmse_phys = float(np.sqrt(((phys[name] - obs[name]) ** 2).where(day).mean()))
        rmse_head = float(np.sqrt(((pred[name] - obs[name]) ** 2).where(day).mean()))
        assert rmse_head < 0.7 * rmse_phys, (name, rmse_head, rmse_phys)


def test_quantiles_ordered_and_calibrated(synthetic, trained):
    _, _, pred = trained
    obs = synthetic["obs"].sel(time=pred.time)
    phys = synthetic["test"]
    assert list(pred["quantile"].values) == [0.1, 0.5, 0.9]
    for name in ("wind_cf", "solar_cf", "renewable_share"):
        q = pred[f"{name}_quantile"]
        assert q.dims == ("quantile", "time", "zone")
        assert bool((q.diff("quantile") >= 0).all()), name
        assert float(q.min()) >= 0 and float(q.max()) <= 1
    for name in ("wind_cf", "solar_cf"):
        # observed solar has a point mass at 0 just after sunrise; judge the band where the sun is properly up
        where = phys.solar_cf > 0.05 if name == "solar_cf" else xr.ones_like(phys.wind_cf, dtype=bool)
        q = pred[f"{name}_quantile"]
        inside = (obs[name] >= q.sel(quantile=0.1)) & (obs[name] <= q.sel(quantile=0.9))
        coverage = float(inside.where(where).mean())
        assert 0.65 <= coverage <= 0.95, (name, coverage)


def test_solar_zero_at_night(synthetic, trained):
    _, _, pred = trained
    night = synthetic["test"].solar_cf == 0
    assert 0.2 < float(night.mean()) < 0.8
    assert np.all(pred.solar_cf.where(night, 0.0).values == 0.0)
    assert np.all(pred.solar_cf_quantile.where(night, 0.0).values == 0.0)


def test_predict_renewable_share(synthetic, trained):
    _, _, pred = trained
    expected = ph.renewable_share(pred.wind_cf, pred.solar_cf, synthetic["zones"])
    xr.testing.assert_allclose(pred.renewable_share, expected)
    assert pred.wind_cf.dims == ("time", "zone") and pred.wind_cf.attrs["units"] == "1"


def test_zone_order_is_remapped(synthetic, trained):
    model, _, pred = trained
    test = synthetic["test"].isel(zone=[2, 0])
    feats = HeadFeatures.from_products(test, synthetic["zones"])
    other = predict(model, feats)
    xr.testing.assert_allclose(other.wind_cf, pred.wind_cf.sel(zone=["C", "A"]), rtol=1e-5)
    unknown = HeadFeatures(feats.x, feats.zone_index, feats.times, ("C", "Z"), None)
    with pytest.raises(KeyError, match="Z"):
        predict(model, unknown, zones=synthetic["zones"])


def test_fit_is_deterministic(synthetic):
    f, obs = synthetic["f_test"], synthetic["obs"]
    state = torch.random.get_rng_state()
    m1, h1 = fit_head(f, obs, epochs=15, seed=3)
    m2, h2 = fit_head(f, obs, epochs=15, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    assert h1 == h2
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)
    m3, _ = fit_head(f, obs, epochs=15, seed=4)
    assert not torch.equal(next(m1.parameters()), next(m3.parameters()))


def test_restore_best_returns_the_fit_of_the_best_epoch(synthetic):
    f_fit, f_val, obs = synthetic["f_train"], synthetic["f_test"], synthetic["obs"]
    options = {"lr": 5e-2, "hidden": 64, "seed": 2}
    best, history = fit_head(f_fit, obs, valid=(f_val, obs), epochs=200, restore_best=True, **options)
    epochs = int(np.argmin(history["val_loss"])) + 1
    assert 1 < epochs < 200  # this fit overfits late, so the best epoch is not the last
    refit, _ = fit_head(f_fit, obs, epochs=epochs, **options)
    for p1, p2 in zip(best.parameters(), refit.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_pinball_and_bad_arguments(synthetic):
    levels = torch.tensor([0.1, 0.9])
    loss = pinball_loss(torch.tensor([[0.5, 0.5]]), torch.tensor([1.0]), levels)
    np.testing.assert_allclose(loss.numpy(), [[0.05, 0.45]])
    with pytest.raises(ValueError, match="increasing"):
        RegionalHead(["A"], quantiles=(0.9, 0.1))
    with pytest.raises(ValueError, match="shape"):
        fit_head(synthetic["f_test"], torch.zeros(3, 2), epochs=1)


# --------------------------------------------------------------------- feature builder and calibration


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


def test_build_features_from_gridded_weather(gridded, synthetic):
    zones = synthetic["zones"]
    feats = build_head_features(gridded, zones)
    expected = HeadFeatures.from_products(
        ph.zone_products(gridded.u100, gridded.v100, gridded.ssrd, zones, GRID, t2m=gridded.t2m), zones)
    torch.testing.assert_close(feats.x, expected.x)
    assert feats.zone_ids == ("A", "B", "C") and feats.zones is not None
    assert np.all(feats.x[:, FEATURES.index("lead_days")].numpy() == 0.0)
    with pytest.raises(KeyError, match="ssrd"):
        build_head_features(gridded.drop_vars("ssrd"), zones)


def test_build_features_from_backbone_forecasts(gridded, synthetic):
    zones = synthetic["zones"]
    inits = gridded.time.values[[0, 12]]
    lead = pd.to_timedelta(np.arange(25), unit="h")
    forecasts = xr.concat([gridded.sel(time=t + lead.values).rename(time="lead_time").assign_coords(lead_time=lead)
                           for t in inits], dim=pd.Index(inits, name="init_time"))
    forecasts = forecasts.transpose("init_time", "lead_time", "lat", "lon")
    feats = build_head_features(forecasts, zones)
    nz = len(zones)
    assert len(feats) == 2 * 25 * nz
    for k, init in enumerate(inits):
        rows = slice(k * 25 * nz, (k + 1) * 25 * nz)
        analysis = build_head_features(gridded.sel(time=init + lead.values), zones)
        got = feats.x[rows]
        torch.testing.assert_close(got[:, :-1], analysis.x[:, :-1])  # same weather, same physics
        np.testing.assert_allclose(got[::nz, -1].numpy(), np.arange(25) / 24.0, rtol=1e-6)  # lead in days
        assert np.array_equal(feats.times[k * 25:(k + 1) * 25], init + lead.values)


def test_build_features_from_station_series(gridded, synthetic):
    i, j = 5, 3  # a cell at 40N 30E
    station = gridded.isel(lat=i, lon=j)  # dims (time,), scalar lat/lon coordinates
    zone = Zone("P", "point", 35, 45, 25, 35, 100, 50, 120)
    feats = build_head_features(station, [zone])
    wind = ph.wind_capacity_factor(gridded.u100, gridded.v100).isel(lat=i, lon=j)
    solar = ph.solar_capacity_factor(gridded.ssrd, t2m=gridded.t2m).isel(lat=i, lon=j)
    np.testing.assert_allclose(feats.x[:, 0].numpy(), wind.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats.x[:, 1].numpy(), solar.values, rtol=1e-5, atol=1e-6)
    assert feats.zone_ids == ("P",) and len(feats) == gridded.sizes["time"]
    # without coordinates the zone's centre is used
    centre = build_head_features(station.drop_vars(["lat", "lon"]), [zone])
    np.testing.assert_allclose(centre.x[:, 1].numpy(), solar.values, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one zone"):
        build_head_features(station, synthetic["zones"])
    with pytest.raises(ValueError, match="expected"):
        build_head_features(gridded.isel(lon=0), [zone])


def test_quantile_coverage(synthetic, trained):
    f = synthetic["f_test"]
    torch.manual_seed(0)
    fresh = RegionalHead(f.zone_ids)  # untrained: bands of +-0.5 in logit around the physical CF
    assert quantile_coverage(fresh, f, f.phys.clone())["wind_cf"] == 1.0
    far = torch.where(f.phys > 0.5, 0.0, 1.0)
    cov = quantile_coverage(fresh, f, far)
    assert cov["wind_cf"] == 0.0 and cov["solar_cf"] == 0.0
    assert cov["n_solar_cf"] == int((f.phys[:, 1] > 0.05).sum())
    with pytest.raises(ValueError, match="0.05 quantile"):
        quantile_coverage(fresh, f, far, lower=0.05)
    model, _, pred = trained  # trained on pinball loss: the 10-90 % band holds about 80 % of the test rows
    obs = synthetic["obs"]
    cov = quantile_coverage(model, f, obs)
    q = pred["wind_cf_quantile"]
    wind_obs = obs.wind_cf.sel(time=pred.time)
    manual = float(((wind_obs >= q.sel(quantile=0.1)) & (wind_obs <= q.sel(quantile=0.9))).mean())
    assert cov["wind_cf"] == pytest.approx(manual, abs=1e-6)
    for name in ("wind_cf", "solar_cf"):
        assert 0.65 <= cov[name] <= 0.95, (name, cov)


def test_calibrate_band_restores_coverage_on_new_rows(synthetic, trained):
    """Observations noisier than in training leave the band too narrow; conformal widening on one half of
    the test period brings the other half back to about 80 %, keeps the quantiles ordered, and is saved."""
    import copy

    model = copy.deepcopy(trained[0])
    products, zones = synthetic["test"], synthetic["zones"]
    half = products.sizes["time"] // 2
    calib = HeadFeatures.from_products(products.isel(time=slice(0, half)), zones)
    new = HeadFeatures.from_products(products.isel(time=slice(half, None)), zones)
    rng = np.random.default_rng(1)
    obs = synthetic["obs"]
    noisier = obs.copy()
    for name in ("wind_cf", "solar_cf"):
        extra = rng.normal(0, 0.08, obs[name].shape)
        noisier[name] = xr.where(obs[name] > 0, (obs[name] + extra).clip(0, 1), obs[name])
    before = quantile_coverage(model, new, noisier)
    assert before["wind_cf"] < 0.65 and before["solar_cf"] < 0.65, before
    widening = calibrate_band(model, calib, noisier)
    assert widening["wind_cf"] > 0 and widening["solar_cf"] > 0
    assert quantile_coverage(model, calib, noisier)["wind_cf"] >= 0.8  # conformal: at least 1 - alpha in-sample
    after = quantile_coverage(model, new, noisier)
    for name in ("wind_cf", "solar_cf"):
        assert 0.72 <= after[name] <= 0.9, (name, before, after)
    q = predict(model, new)["wind_cf_quantile"]
    assert bool((q.diff("quantile") >= 0).all())
    restored = RegionalHead(model.zone_ids)
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.band_widening, model.band_widening)
    again = calibrate_band(model, calib, noisier)  # already calibrated: nothing more to widen
    assert again["wind_cf"] == pytest.approx(widening["wind_cf"], abs=0.02)


def test_calibrate_band_never_narrows(synthetic):
    f = synthetic["f_test"]
    fresh = RegionalHead(f.zone_ids)  # bands of +-0.5 in logit around the physical CF: too wide for y = phys
    assert calibrate_band(fresh, f, f.phys.clone())["wind_cf"] == 0.0
    assert torch.equal(fresh.band_widening, torch.zeros(2))
    with pytest.raises(ValueError, match="lower < 0.5 < upper"):
        calibrate_band(fresh, f, f.phys.clone(), lower=0.5, upper=0.9)
