"""Hourly irradiance diagnostic: baselines, scoring, static inputs, patch-edge fixes, the package adapter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from carbonsync.data.store import compute_stats, write_canonical, write_stats
from carbonsync.data.validation import WeatherDataError
from carbonsync.models.afno import AFNOConfig, AFNODiagnostic, IrradianceDiagnostic, binomial_kernel, patch_edge_ratio
from carbonsync.models.inputs import irradiance_inputs
from carbonsync.physics import solar
from carbonsync.physics.grid import Grid
from carbonsync.train import irradiance as irr

GRID = Grid(17, 32)
CHANNELS = ["u100", "v100", "z500", "tcc", "t2m"]
SPLITS = {"train": ["2020-06-01", "2020-06-03T23:00"], "val": ["2020-06-04", "2020-06-04T23:00"],
          "test": ["2020-06-05", "2020-06-06T23:00"]}


def _weather(times: pd.DatetimeIndex, clearness: np.ndarray | None = None, static: bool = False) -> xr.Dataset:
    """Small canonical weather: smooth random states; ssrd = clear sky x a clearness index."""
    rng = np.random.default_rng(0)
    shape = (len(times), *GRID.shape)
    phase = np.linspace(0, 2 * np.pi, len(times))[:, None, None]
    lon = np.deg2rad(GRID.lon)[None, None, :]
    tcc = np.clip(0.5 + 0.4 * np.sin(phase + 2 * lon) * np.cos(np.deg2rad(GRID.lat))[None, :, None], 0, 1)
    k = 1.0 - 0.75 * tcc ** 3.4 if clearness is None else clearness
    ssrd = solar.clear_sky_hourly(times, GRID.lat, GRID.lon) * k
    dims = ("time", "lat", "lon")
    data = {
        "u100": (dims, rng.normal(0, 5, shape), {"units": "m s-1"}),
        "v100": (dims, rng.normal(0, 5, shape), {"units": "m s-1"}),
        "z500": (dims, 5.5e4 + rng.normal(0, 500, shape), {"units": "m2 s-2"}),
        "tcc": (dims, tcc, {"units": "1"}),
        "t2m": (dims, 285 + rng.normal(0, 5, shape), {"units": "K"}),
        "ssrd": (dims, ssrd, {"units": "J m-2"}),
    }
    if static:
        zs = np.broadcast_to(9.81 * 3000 * np.clip(np.sin(3 * lon), 0, None)[0], GRID.shape)
        lsm = (zs > 0).astype(float)
        data["zs"] = (dims, np.broadcast_to(zs, shape), {"units": "m2 s-2"})
        data["lsm"] = (dims, np.broadcast_to(lsm, shape), {"units": "1"})
    ds = xr.Dataset({k: (d, np.asarray(v, dtype=np.float32), a) for k, (d, v, a) in data.items()},
                    coords={"time": times, **GRID.coords()})
    ds.attrs = {"source": "test", "grid": GRID.attr()}
    return ds


def _store(tmp_path, static: bool = False, clearness: np.ndarray | None = None):
    times = pd.date_range("2020-06-01", "2020-06-06T23:00", freq="h")
    ds = _weather(times, clearness, static)
    path = write_canonical(ds, tmp_path / "weather.zarr")
    write_stats(compute_stats(ds, tuple(SPLITS["train"]), CHANNELS + ["ssrd"]), path)
    return path, ds


def _samples(path, split: str, **kwargs) -> irr.HourlySamples:
    from carbonsync.data.store import open_canonical, read_stats

    return irr.HourlySamples(open_canonical(path), CHANNELS, read_stats(path), tuple(SPLITS[split]), 6, **kwargs)


# ---------------------------------------------------------------------------------------------- baselines


def test_fill_nearest_in_time():
    nan = np.nan
    x = np.array([[nan, 1.0], [2.0, nan], [nan, nan], [nan, nan], [5.0, nan]])
    got = irr.fill_nearest_in_time(x)
    np.testing.assert_array_equal(got[:, 0], [2.0, 2.0, 2.0, 5.0, 5.0])  # the earlier one on ties (row 2)
    np.testing.assert_array_equal(got[:, 1], [1.0, 1.0, 1.0, 1.0, 1.0])
    assert np.isnan(irr.fill_nearest_in_time(np.full((3, 2), nan))).all()


def test_baselines_by_hand(tmp_path):
    path, ds = _store(tmp_path)
    samples = _samples(path, "val")
    idx = np.arange(len(samples))
    _, _, clear, target = samples.batch(idx)
    base = samples.baselines(idx, clear)
    hours = samples.hours
    # linear in time: the 6-hourly ssrd interpolated to the hours between
    h = 8  # 2020-06-04T09:00, 3 h after the 06:00 state
    assert hours[h] == pd.Timestamp("2020-06-04T09:00") and samples.offsets(idx)[h] == 3
    expected = 0.5 * (ds.ssrd.sel(time="2020-06-04T06:00").values + ds.ssrd.sel(time="2020-06-04T12:00").values)
    np.testing.assert_allclose(base["linear_time"][h, 0].numpy(), expected, rtol=1e-5, atol=1e-2)
    # at the state times both baselines are the truth wherever the sun gives a clearness index
    at_state = samples.offsets(idx) == 0
    day = (clear > irr.CLEAR_MIN)[at_state]
    for name in irr.BASELINES:
        np.testing.assert_allclose(base[name][at_state][day].numpy(), target[at_state][day].numpy(), rtol=1e-4)
    assert torch.all(base["clear_sky_x_clearness"][clear == 0] == 0)


def test_clearness_baseline_exact_for_constant_clearness(tmp_path):
    times = pd.date_range("2020-06-01", "2020-06-06T23:00", freq="h")
    k = np.broadcast_to(np.linspace(0.4, 1.0, GRID.nlon)[None, None, :], (len(times), *GRID.shape))
    path, _ = _store(tmp_path, clearness=k)
    samples = _samples(path, "test", mean_clearness=0.7)
    idx = np.arange(len(samples))
    _, _, clear, target = samples.batch(idx)
    base = samples.baselines(idx, clear)
    # cells that see the sun at some state time get the exact clearness; the polar night gets the fallback
    seen = np.isfinite(samples.clearness6_raw).any(axis=0)
    err = (base["clear_sky_x_clearness"] - target)[:, 0].numpy()
    assert seen.mean() > 0.7
    assert np.abs(err[:, seen]).max() < 1e-3 * target.max().item()
    assert np.abs((base["linear_time"] - target).numpy()).max() > 0.1 * target.max().item()  # the diurnal cycle


def test_states_come_from_the_middle_of_each_accumulation_hour(tmp_path):
    from carbonsync.models.inputs import hour_state_weights

    states6 = pd.date_range("2020-06-04", periods=3, freq="6h")
    hours = pd.DatetimeIndex(["2020-06-04T00:00", "2020-06-04T01:00", "2020-06-04T06:00", "2020-06-04T07:00"])
    i0, i1, weight = hour_state_weights(hours, states6, 6)
    np.testing.assert_array_equal(i0, [0, 0, 0, 1])
    np.testing.assert_array_equal(i1, [1, 1, 1, 2])
    # the first hour is clipped to the first state; 01:00 is the hour 00:00-01:00, its middle 00:30
    np.testing.assert_allclose(weight, [0.0, 0.5 / 6, 5.5 / 6, 0.5 / 6])
    with pytest.raises(ValueError, match="no state at"):
        hour_state_weights(pd.DatetimeIndex(["2020-06-04T13:00"]), states6[[0, 1]], 6)
    path, ds = _store(tmp_path)
    samples = _samples(path, "val")
    h = 8  # the hour ending 2020-06-04T09:00: its state is 2.5/6 of the way from 06:00 to 12:00
    x, *_ = samples.batch(np.array([h]))
    tcc6 = samples.states[:, CHANNELS.index("tcc")]  # normalised: compare through the 6-hourly states
    i0 = list(samples.state_times).index(pd.Timestamp("2020-06-04T06:00"))
    expected = (1 - 2.5 / 6) * tcc6[i0] + 2.5 / 6 * tcc6[i0 + 1]
    np.testing.assert_allclose(x[0, CHANNELS.index("tcc")].numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------- model options


def small(**kw) -> AFNOConfig:
    base = dict(state_channels=3, nlat=17, nlon=32, patch_size=4, embed_dim=16, num_layers=1, num_blocks=4)
    return AFNOConfig(**(base | kw))


def test_local_path_starts_as_the_plain_afno_and_smoother_is_binomial():
    torch.manual_seed(0)
    plain = AFNODiagnostic(small())
    torch.manual_seed(0)
    local = AFNODiagnostic(small(local_hidden=8))
    x, f = torch.randn(2, 3, 17, 32), torch.randn(2, 1, 17, 32)
    torch.testing.assert_close(local(x, f), plain(x, f))
    kernel = binomial_kernel(3)
    torch.testing.assert_close(kernel, torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0)
    smooth = AFNODiagnostic(small(smoothing_kernel=3))
    smooth.load_state_dict(plain.state_dict(), strict=False)
    y = smooth(x, f)
    assert y.shape == (2, 1, 17, 32)
    assert patch_edge_ratio(y, (4, 4), smooth.patch_origin) < patch_edge_ratio(plain(x, f), (4, 4), plain.patch_origin)
    with pytest.raises(ValueError, match="smoothing_kernel"):
        small(smoothing_kernel=2)
    with pytest.raises(ValueError, match="local_hidden"):
        small(local_hidden=-1)


def test_patch_edge_ratio():
    assert AFNODiagnostic(small()).patch_origin == (3, 0)  # 17 rows pad to 20 with 1 on top: patches start at row 3
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.normal(size=(64, 64)), axis=1)
    assert patch_edge_ratio(smooth, (4, 4)) == pytest.approx(1.0, abs=0.15)
    blocky = np.kron(rng.normal(size=(16, 16)), np.ones((4, 4)))  # constant inside 4x4 patches
    assert patch_edge_ratio(blocky, (4, 4)) > 1e6
    assert patch_edge_ratio(np.roll(blocky, 2, axis=0), (4, 4), origin=(2, 0)) > 1e6
    assert patch_edge_ratio(np.roll(blocky, 2, axis=0), (4, 4)) < 10


# ------------------------------------------------------------------------------- static inputs, training


def test_static_inputs(tmp_path):
    _, ds = _store(tmp_path, static=True)
    names, tensor, stats = irr.static_inputs(ds)
    assert names == ["zs", "lsm"] and tensor.shape == (2, 17, 32)
    w = GRID.quadrature_weights().values
    for k in range(2):
        assert float((tensor[k].numpy() * w).sum()) == pytest.approx(0.0, abs=1e-5)
    assert stats["lsm"]["mean"] == pytest.approx(float((ds.lsm.isel(time=0).values * w).sum()), rel=1e-6)
    assert irr.static_inputs(ds.drop_vars(["zs", "lsm"]))[:2] == ([], None)
    changing = ds.assign(lsm=ds.lsm * xr.DataArray(np.linspace(0, 1, ds.sizes["time"]), dims="time"))
    with pytest.raises(WeatherDataError, match="'lsm' changes in time"):
        irr.static_inputs(changing)
    model = IrradianceDiagnostic(small(static_channels=2))
    with pytest.raises(ValueError, match="do not fit"):
        model.set_static(tensor[:1])


def test_train_irradiance_with_static_inputs_and_report(tmp_path, caplog):
    from carbonsync.config import compose, typed
    from carbonsync.data.config import Splits
    from carbonsync.forecast.chain import PackageSsrd, SsrdDiagnostic
    from carbonsync.models.package import load_package

    path, ds = _store(tmp_path, static=True)
    cfg = compose(["size=tiny", f"run_dir={tmp_path}", "progress=false", "train.irradiance.hours_per_epoch=32",
                   "train.irradiance.val_hours=16", "irradiance.smoothing_kernel=3", "irradiance.local_hidden=4",
                   f"irradiance.channels=[{','.join(CHANNELS)}]", "irradiance.latlon_encoding=true"])

    def train(cfg):  # on the test store's splits
        c = typed(cfg)
        return irr.train_irradiance(c.irradiance, c.train.irradiance, Splits(**SPLITS), path, tmp_path,
                                    state_dt_hours=c.backbone.dt_hours, settings=c.train, progress=False)

    package_path = train(cfg)
    package = load_package(package_path)
    meta = package.metadata
    assert meta["extra"]["static_inputs"] == ["zs", "lsm"]
    assert meta["config"]["static_channels"] == 2 and meta["config"]["smoothing_kernel"] == 3
    _, expected_static, _ = irr.static_inputs(ds)
    torch.testing.assert_close(package.model.static_fields[0], expected_static)
    scores = xr.open_dataset(tmp_path / "evaluation" / "irradiance_scores.nc")
    assert list(scores.split.values) == ["val", "test"] and list(scores.model.values) == list(irr.METHODS)
    assert bool(np.isfinite(scores.rmse).all()) and scores.rmse.attrs["units"] == "W m-2"
    report = json.loads((tmp_path / "evaluation" / "irradiance_scores.json").read_text())
    assert report["test"]["linear_time"]["rmse"] == pytest.approx(float(scores.rmse.sel(split="test", model="linear_time")))
    # the package behind the diagnostic protocol: same ssrd as the model, zero at night
    diagnostic = PackageSsrd(package_path)
    assert isinstance(diagnostic, SsrdDiagnostic) and diagnostic.variables == CHANNELS
    hours = ds.isel(time=slice(100, 110))
    ssrd = diagnostic(hours)
    assert ssrd.dims == ("time", "lat", "lon") and ssrd.attrs["units"] == "J m-2"
    clear = solar.clear_sky_hourly(hours.time.values, GRID.lat, GRID.lon)
    assert np.all(ssrd.values[clear == 0] == 0) and np.all(ssrd.values >= 0)
    # each hour's state is the mean of the states at its two ends (the first hour: its own label)
    x = ds[CHANNELS].isel(time=slice(100, 102)).to_array("channel").transpose("time", "channel", "lat", "lon").values
    mid = torch.from_numpy(np.stack([x[0], 0.5 * (x[0] + x[1])]).astype(np.float32))
    cosz, clear2 = irradiance_inputs(pd.DatetimeIndex(hours.time.values[:2]), GRID)
    with torch.no_grad():
        by_hand = package.model(package.normalise(mid), clear2, cosz)[:, 0].numpy()
    np.testing.assert_allclose(ssrd.values[:2], by_hand, rtol=1e-5, atol=1e-3)
    with pytest.raises(WeatherDataError, match="tcc"):
        diagnostic(hours.drop_vars("tcc"))
    # a checkpoint of another architecture is not resumed (it could not be loaded), training starts afresh
    cfg.irradiance.local_hidden = 0
    caplog.clear()
    with caplog.at_level("INFO", logger="carbonsync"):
        assert load_package(train(cfg)).metadata["config"]["local_hidden"] == 0
    assert "trained with another model or recipe; starting afresh" in caplog.text
