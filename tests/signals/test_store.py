"""CarbonSync's forecast store as a grid signal: forecasts by init time, quantiles, and causality on a clock."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carbonsync.forecast.export import write_forecast_store
from carbonsync.forecast.reader import latest_forecast
from carbonsync.forecast.synthetic import synthetic_forecast
from carbonsync.signals import SignalPlanError, SignalUnavailable, StaleSignalError, get_signal
from carbonsync.signals.replay import ReplayClock
from carbonsync.signals.store import ForecastStoreSignal

INITS = pd.date_range("2020-08-25", periods=4, freq="6h")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "forecast.zarr"
    runs = [(t, *synthetic_forecast(t, lead_hours=24)) for t in INITS]
    return write_forecast_store(runs, path, {"data_source": "synthetic-test"})


def test_forecasts_come_from_the_newest_init_issued_before_the_clock(store):
    clock = ReplayClock(INITS[2] + pd.Timedelta(hours=1))
    signal = ForecastStoreSignal(store, clock=clock, publish_delay="30min")
    fc = signal.forecast("iberia", pd.Timedelta(hours=12))
    assert pd.Timestamp(fc.issued_at.values[0]) == INITS[2] + pd.Timedelta(minutes=30)
    expected = latest_forecast(store, ["iberia"], start=INITS[2], products=["renewable_share"])
    times = pd.DatetimeIndex(fc.time.values)
    assert times[0] == INITS[2] and times[-1] < clock.now + pd.Timedelta(hours=12)
    np.testing.assert_allclose(fc["value"].values[0, :, 0], expected["renewable_share"].values[: len(times), 0])
    assert fc["value_quantiles"].dims == ("issued_at", "quantile", "time", "zone")
    assert list(fc["quantile"].values) == [0.1, 0.5, 0.9] and fc.attrs["init_time"] == str(INITS[2])
    clock.now = INITS[2] + pd.Timedelta(minutes=29)   # issued at +30 min: not yet
    assert pd.Timestamp(signal.forecast("iberia", pd.Timedelta(hours=6)).issued_at.values[0]) == \
        INITS[1] + pd.Timedelta(minutes=30)
    older = signal.forecast("iberia", pd.Timedelta(hours=6), issued_before=INITS[1])
    assert pd.Timestamp(older.issued_at.values[0]) == INITS[0] + pd.Timedelta(minutes=30)
    ci = signal.forecast("spain", pd.Timedelta(hours=6), kind="carbon_intensity")   # the lexicon name works
    assert ci.attrs["units"] == "g CO2e/kWh" and "value_quantiles" not in ci and str(ci.zone.values[0]) == "spain"


def test_history_stitches_the_newest_run_at_each_hour_and_never_the_future(store):
    clock = ReplayClock(INITS[3] + pd.Timedelta(hours=3))
    signal = get_signal("carbonsync", store=store, clock=clock)
    history = signal.history("north_sea", INITS[0], INITS[3] + pd.Timedelta(days=2))
    times = pd.DatetimeIndex(history.time.values)
    assert times[0] == INITS[0] and times[-1] == INITS[3] + pd.Timedelta(hours=2) and times.is_unique
    assert history["estimated"].all() and history.attrs["method"] == "forecast"
    for init in INITS:   # each hour comes from the run issued last before it
        run = latest_forecast(store, ["north_sea"], start=init, products=["renewable_share"])
        hour = init + pd.Timedelta(hours=1)
        assert float(history["value"].sel(time=hour).squeeze()) == pytest.approx(
            float(run["renewable_share"].sel(time=hour).squeeze()))
    latest = signal.latest("north_sea")
    assert pd.Timestamp(latest.time.values[0]) == INITS[3] + pd.Timedelta(hours=3)


def test_store_errors_are_named(store, tmp_path):
    clock = ReplayClock(INITS[0] - pd.Timedelta(hours=1))
    signal = ForecastStoreSignal(store, clock=clock)
    with pytest.raises(SignalUnavailable, match="no forecast was issued before"):
        signal.forecast("iberia", pd.Timedelta(hours=6))
    clock.now = INITS[-1] + pd.Timedelta(days=3)
    with pytest.raises(StaleSignalError, match="past the limit of 1 days"):
        signal.latest("iberia")
    with pytest.raises(SignalPlanError, match="zones .*atlantis.* are not in forecast store"):
        signal.forecast("atlantis", pd.Timedelta(hours=6))
    with pytest.raises(SignalPlanError, match="no price"):
        signal.forecast("iberia", pd.Timedelta(hours=6), kind="price")
    with pytest.raises(SignalUnavailable, match="forecast store"):
        ForecastStoreSignal(tmp_path / "none.zarr", clock=clock).forecast("iberia", pd.Timedelta(hours=6))
