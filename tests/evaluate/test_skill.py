"""Backbone skill evaluation: climatology, metrics of model/persistence/climatology, and the evaluate stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.config import typed
from carbonsync.data.validation import WeatherDataError
from carbonsync.evaluate.climatology import climatology_at, compute_climatology
from carbonsync.evaluate.skill import MODELS, evaluate_backbone, evaluate_forecasts, format_table
from carbonsync.physics.grid import Grid

GRID = Grid(5, 8)
WEIGHTS = GRID.quadrature_weights()


def weather(times: pd.DatetimeIndex, seed: int = 0, offset: dict[pd.Timestamp, float] | None = None) -> xr.Dataset:
    """Two channels (a, b) on GRID: a random field plus a diurnal cycle, with ``offset`` added from a time on."""
    rng = np.random.default_rng(seed)
    shape = (times.size, *GRID.shape)
    diurnal = np.sin(2 * np.pi * times.hour.values / 24.0)[:, None, None]
    a = 10.0 + 3.0 * diurnal + rng.normal(size=shape)
    b = -5.0 + rng.normal(size=shape) * 2.0
    for start, value in (offset or {}).items():
        later = (times >= start)[:, None, None]
        a, b = a + later * value, b + later * value
    return xr.Dataset({"a": (("time", "lat", "lon"), a, {"units": "K"}), "b": (("time", "lat", "lon"), b)},
                      coords={"time": times, **GRID.coords()})


TIMES = pd.date_range("2021-03-01", "2021-03-10T18:00", freq="6h")
TRUTH = weather(TIMES)
INITS = pd.DatetimeIndex(["2021-03-05", "2021-03-06", "2021-03-07"])
LEADS = pd.to_timedelta([6, 12, 24], unit="h")


def at_valid(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` at init + lead as (init_time, lead_time, lat, lon): the truth as a forecast."""
    valid = xr.DataArray(INITS.values[:, None] + LEADS.values[None, :], dims=("init_time", "lead_time"),
                         coords={"init_time": INITS.values, "lead_time": LEADS.values})
    return ds.sel(time=valid).drop_vars("time")


def clim() -> xr.Dataset:
    return compute_climatology(TRUTH, ("2021-03-01", "2021-03-04T18:00"), ["a", "b"], smoothing_days=5)


def test_perfect_forecast_rmse_zero_acc_one() -> None:
    scores = evaluate_forecasts(at_valid(TRUTH), TRUTH, clim(), WEIGHTS)
    assert dict(scores.rmse.sizes) == {"model": 3, "channel": 2, "lead_time": 3}
    assert list(scores.model.values) == list(MODELS)
    np.testing.assert_allclose(scores.rmse.sel(model="model"), 0.0, atol=1e-12)
    np.testing.assert_allclose(scores.bias.sel(model="model"), 0.0, atol=1e-12)
    np.testing.assert_allclose(scores.acc.sel(model="model"), 1.0, atol=1e-12)
    np.testing.assert_allclose(scores.rmse_skill_vs_persistence.sel(model="model"), 1.0)
    np.testing.assert_allclose(scores.model_rmse_skill_vs_best, 1.0)
    # climatology ACC is undefined (zero anomaly) and reported as NaN, and the attrs say so
    assert np.isnan(scores.acc.sel(model="climatology")).all()
    assert "NaN" in scores.attrs["acc_note"] and "NaN" in scores.acc.attrs["description"]
    # baselines are imperfect, and their skill against themselves is 0
    assert (scores.rmse.sel(model=["persistence", "climatology"]) > 0.1).all()
    np.testing.assert_allclose(scores.rmse_skill_vs_climatology.sel(model="climatology"), 0.0)
    assert list(scores.lead_hours.values) == [6, 12, 24]
    assert list(scores.units.values) == ["K", ""]
    assert "lead" in format_table(scores)


def test_persistence_is_truth_at_init_held() -> None:
    held = TRUTH.sel(time=INITS).rename(time="init_time")
    model = held.expand_dims(lead_time=LEADS.values).transpose("init_time", "lead_time", "lat", "lon")
    scores = evaluate_forecasts(model, TRUTH, clim(), WEIGHTS)
    for metric in ("rmse", "bias", "acc"):
        np.testing.assert_allclose(scores[metric].sel(model="model"), scores[metric].sel(model="persistence"))
    # by hand: sqrt of the init-time mean of the area-weighted mean squared change over the lead
    for k, lead in enumerate(LEADS):
        mse = [float((((TRUTH.a.sel(time=i + lead) - TRUTH.a.sel(time=i)) ** 2) * WEIGHTS).sum()) for i in INITS]
        assert float(scores.rmse.sel(model="persistence", channel="a").isel(lead_time=k)) == pytest.approx(
            np.sqrt(np.mean(mse)))


def test_climatology_forecast_and_anomaly_reference() -> None:
    c = clim()
    scores = evaluate_forecasts(at_valid(TRUTH) + 1.0, TRUTH, c, WEIGHTS)
    np.testing.assert_allclose(scores.bias.sel(model="model"), 1.0)
    # the climatology forecast's RMSE by hand: the training climatology at each valid time against the truth
    for k, lead in enumerate(LEADS):
        valid = INITS + lead
        ref = climatology_at(c, valid).a
        mse = [float((((ref.sel(time=t) - TRUTH.a.sel(time=t)) ** 2) * WEIGHTS).sum()) for t in valid]
        assert float(scores.rmse.sel(model="climatology", channel="a").isel(lead_time=k)) == pytest.approx(
            np.sqrt(np.mean(mse)))
    # a climatology already at valid times (dim ``time``) gives the same scores as the (hour, dayofyear) one
    at_times = climatology_at(c, TIMES)
    again = evaluate_forecasts(at_valid(TRUTH) + 1.0, TRUTH, at_times, WEIGHTS)
    xr.testing.assert_allclose(scores.rmse, again.rmse)


def test_climatology_sees_only_the_training_period() -> None:
    times = pd.date_range("2021-01-01", "2021-02-28T18:00", freq="6h")
    test_start = pd.Timestamp("2021-02-01")
    ds = weather(times, offset={test_start: 1000.0})  # the test period is far warmer
    c = compute_climatology(ds, ("2021-01-01", "2021-01-31T23:00"), ["a", "b"], smoothing_days=61)
    assert c.a.dims == ("hour", "dayofyear", "lat", "lon")
    assert list(c.hour.values) == [0, 6, 12, 18] and c.sizes["dayofyear"] == 366
    assert float(c.a.max()) < 30 and float(c.b.max()) < 10  # nothing of the +1000 leaks in
    at_test = climatology_at(c, pd.date_range(test_start, periods=8, freq="6h"))
    assert float(abs(at_test.a).max()) < 30
    # the diurnal cycle is resolved by hour of day: 06 UTC (sin = 1) is warmer than 18 UTC (sin = -1)
    assert float((c.a.sel(hour=6) - c.a.sel(hour=18)).mean()) == pytest.approx(6.0, abs=0.5)
    # a 61-day window over one month of data: every day within it is the per-hour training mean
    train = ds.sel(time=slice("2021-01-01", "2021-01-31T23:00"))
    hourly = train.a.groupby("time.hour").mean("time")
    np.testing.assert_allclose(c.a.sel(dayofyear=20), hourly.values, rtol=1e-5)
    # far from any training day (July) the documented fallback is the per-hour training mean as well
    np.testing.assert_allclose(c.a.sel(dayofyear=190), hourly.values, rtol=1e-5)
    assert c.attrs["n_cells_hourly_fallback"] > 0 and "per-hour-of-day mean" in c.attrs["method"]
    # lazy in, lazy out
    lazy = compute_climatology(ds.chunk({"time": 20}), ("2021-01-01", "2021-01-31T23:00"), ["a"])
    assert lazy.a.chunks is not None
    np.testing.assert_allclose(lazy.a.values, c.a.values, rtol=1e-6)


def test_climatology_window_is_circular_and_narrow_windows_follow_the_days() -> None:
    times = pd.date_range("2020-12-29", "2021-01-03T18:00", freq="6h")
    ds = weather(times)
    days = xr.DataArray(times.day_of_year.values, dims="time", coords={"time": times})
    ds["a"] = ds.a * 0 + days  # the value is the day of year
    c = compute_climatology(ds, ("2020-12-29", "2021-01-03T18:00"), ["a"], smoothing_days=1)
    assert float(c.a.sel(hour=0, dayofyear=2).mean()) == pytest.approx(2.0)
    assert float(c.a.sel(hour=0, dayofyear=364).mean()) == pytest.approx(364.0)  # 2020 is a leap year
    wide = compute_climatology(ds, ("2020-12-29", "2021-01-03T18:00"), ["a"], smoothing_days=5)
    # day 1's window (days 365, 366, 1, 2, 3) wraps around the year end
    assert float(wide.a.sel(hour=0, dayofyear=1).mean()) == pytest.approx((365 + 366 + 1 + 2 + 3) / 5)


def test_climatology_at_shapes_and_errors() -> None:
    c = clim()
    valid = xr.DataArray(INITS.values[:, None] + LEADS.values[None, :], dims=("init_time", "lead_time"),
                         coords={"init_time": INITS.values, "lead_time": LEADS.values})
    assert climatology_at(c, valid).a.dims == ("init_time", "lead_time", "lat", "lon")
    with pytest.raises(KeyError, match="hours"):
        climatology_at(c, ["2021-03-05T03:00"])
    with pytest.raises(WeatherDataError, match="selects no times"):
        compute_climatology(TRUTH, ("2019-01-01", "2019-02-01"), ["a"])
    with pytest.raises(WeatherDataError, match="not in the dataset"):
        compute_climatology(TRUTH, ("2021-03-01", "2021-03-04"), ["zz"])


@pytest.mark.slow
def test_evaluate_backbone_on_tiny_run(tiny_run, caplog) -> None:
    with caplog.at_level("INFO", logger="carbonsync"):
        path = evaluate_backbone(typed(tiny_run.cfg).data.splits, tiny_run.run_dir, split="test", every_hours=24,
                                 max_lead_hours=48, progress=False)
    assert path == tiny_run.run_dir / "evaluation" / "backbone_test.nc"
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    assert dict(ds.rmse.sizes) == {"model": 3, "channel": 5, "lead_time": 8}
    assert list(ds.model.values) == ["model", "persistence", "climatology"]
    assert list(ds.channel.values) == ["u100", "v100", "z500", "tcc", "t2m"]
    assert list(ds.lead_hours.values) == list(range(6, 49, 6))
    assert ds.lead_time.values[0] == np.timedelta64(6, "h")
    for name in ("rmse", "acc", "bias", "rmse_skill_vs_persistence", "rmse_skill_vs_climatology",
                 "model_rmse_skill_vs_best", "best_baseline"):
        assert name in ds
    assert np.isfinite(ds.rmse).all() and (ds.rmse > 0).all()
    assert np.isnan(ds.acc.sel(model="climatology")).all()
    assert np.isfinite(ds.acc.sel(model=["model", "persistence"])).all()
    # test split 2020-08-24..30 with 48 h leads: inits on 24, 25, 26, 27 and 28 August at 00 UTC
    assert ds.attrs["split"] == "test" and ds.attrs["n_init_times"] == 5
    assert ds.attrs["first_init_time"].startswith("2020-08-24") and ds.attrs["last_init_time"].startswith("2020-08-28")
    assert ds.attrs["climatology_period"].startswith("2020-08-01")
    assert "NaN" in ds.attrs["acc_note"] and ds.attrs["synthetic"].startswith("yes")
    png = tiny_run.run_dir / "plots" / "backbone_skill_test.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    out = caplog.text
    assert "1 d" in out and "2 d" in out and "u100" in out
    assert not list((tiny_run.run_dir / "evaluation").glob("*.tmp-*"))


def test_evaluate_backbone_errors(tiny_run) -> None:
    with pytest.raises(ValueError, match=r"split 'nope' is not one of .*'train'"):
        evaluate_backbone(typed(tiny_run.cfg).data.splits, tiny_run.run_dir, split="nope", progress=False)
    with pytest.raises(ValueError, match=r"split 'test' \(2020-08-24.*2020-08-30.*Lower max_lead_hours"):
        evaluate_backbone(typed(tiny_run.cfg).data.splits, tiny_run.run_dir, split="test", max_lead_hours=24 * 8, progress=False)
    with pytest.raises(ValueError, match="multiple of the backbone step"):
        evaluate_backbone(typed(tiny_run.cfg).data.splits, tiny_run.run_dir, split="val", max_lead_hours=9, progress=False)
    with pytest.raises(FileNotFoundError, match="is missing: run `carbonsync"):
        evaluate_backbone(typed(tiny_run.cfg).data.splits, tiny_run.run_dir / "elsewhere", progress=False)
