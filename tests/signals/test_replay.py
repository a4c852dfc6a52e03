"""Causal replay: at clock time t, nothing published after t is ever served."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carbonsync.signals.base import SignalFormatError, SignalSet, StaleSignalError, fill_gaps, signal_dataset
from carbonsync.signals.replay import RecordedSignal, ReplayClock

START = pd.Timestamp("2023-06-08")
TIMES = pd.date_range(START, periods=72, freq="h")


def _actuals():
    # each value is its own hour number, so a served value tells when it was published
    return signal_dataset(np.arange(72.0), TIMES, "CAISO_NORTH", "marginal_emissions", "g/kWh", provider="rec")


def _forecasts():
    issued = pd.date_range(START, periods=24, freq="3h") + pd.Timedelta(minutes=5)
    values = np.full((24, 72), np.nan)
    for i, t in enumerate(issued):  # a forecast issued at t covers the next 12 hours, valued at its issue hour
        window = (t.floor("h") <= TIMES) & (t + pd.Timedelta(hours=12) > TIMES)
        values[i, window] = 1000.0 + i
    return signal_dataset(values.clip(0, 2999), TIMES, "CAISO_NORTH", "marginal_emissions", "g/kWh",
                          provider="rec", issued_at=issued)


@pytest.mark.parametrize("seed", range(3))
def test_nothing_from_after_the_clock_is_ever_served(seed):
    clock = ReplayClock(START + pd.Timedelta(hours=1))
    signal = RecordedSignal(_actuals(), clock, _forecasts())
    rng = np.random.default_rng(seed)
    for _ in range(40):
        clock.advance(pd.Timedelta(minutes=int(rng.integers(1, 240))))
        if clock.now >= TIMES[-1]:
            break
        now = clock.now
        latest = signal.latest("CAISO_NORTH")
        assert pd.Timestamp(latest.time.values[-1]) + pd.Timedelta(hours=1) <= now
        assert float(latest["value"].values[-1, 0]) == (now - START) // pd.Timedelta(hours=1) - 1  # the newest
        history = signal.history("CAISO_NORTH", START, now + pd.Timedelta(days=5))
        assert (pd.DatetimeIndex(history.time.values) + pd.Timedelta(hours=1) <= now).all()
        fc = signal.forecast("CAISO_NORTH", pd.Timedelta(hours=6))
        assert (pd.DatetimeIndex(fc.issued_at.values) < now).all()
        issued_before = max(now - pd.Timedelta(hours=int(rng.integers(0, 6))), START + pd.Timedelta(hours=1))
        older = signal.forecast("CAISO_NORTH", pd.Timedelta(hours=6), issued_before=issued_before)
        assert (pd.DatetimeIndex(older.issued_at.values) < issued_before).all()
        later = signal.forecast("CAISO_NORTH", pd.Timedelta(hours=6), issued_before=now + pd.Timedelta(days=1))
        assert (pd.DatetimeIndex(later.issued_at.values) < now).all()  # never past the clock


def test_recorded_forecasts_are_cut_to_the_horizon_and_persistence_fills_in():
    clock = ReplayClock(START + pd.Timedelta(hours=7))
    signal = RecordedSignal(_actuals(), clock, _forecasts())
    fc = signal.forecast("CAISO_NORTH", pd.Timedelta(hours=4))
    assert fc.attrs["method"] == "recorded forecast"
    assert pd.Timestamp(fc.issued_at.values[0]) == START + pd.Timedelta(hours=6, minutes=5)
    assert fc.sizes["time"] == 4 and (fc["value"].values == 1002.0).all()
    plain = RecordedSignal(_actuals(), clock)  # no recorded forecasts: persistence, flagged
    fc = plain.forecast("CAISO_NORTH", pd.Timedelta(hours=3))
    assert fc.attrs["method"] == "persistence" and bool(fc["estimated"].all())
    assert pd.Timestamp(fc.time.values[0]) == START + pd.Timedelta(hours=7)
    assert (fc["value"].values == 6.0).all() and fc.attrs["units"] == "g CO2e/kWh"


def test_staleness_and_unknown_zones_are_named():
    clock = ReplayClock(START)
    signal = RecordedSignal(_actuals(), clock, max_age=pd.Timedelta(hours=2))
    with pytest.raises(StaleSignalError, match="nothing was published before 2023-06-08 00:00:00"):
        signal.latest("CAISO_NORTH")
    clock.now = TIMES[-1] + pd.Timedelta(hours=4)
    with pytest.raises(StaleSignalError, match="older than the limit of 0 days 02:00:00"):
        signal.latest("CAISO_NORTH")
    with pytest.raises(SignalFormatError, match="no zone 'SPP_TX'"):
        signal.history("SPP_TX", START, clock.now)
    with pytest.raises(SignalFormatError, match="holds marginal_emissions, not price"):
        signal.latest("CAISO_NORTH", kind="price")


def test_short_gaps_are_filled_flagged_and_served_only_once_closed():
    values = np.arange(72.0)
    values[10:12] = np.nan   # a 2-hour gap: filled
    values[30:40] = np.nan   # a 10-hour gap: never served
    actuals = signal_dataset(values, TIMES, "CAISO_NORTH", "marginal_emissions", "g/kWh", provider="rec")
    actuals = actuals.drop_sel(time=TIMES[20:21])  # an absent row is a gap too
    clock = ReplayClock(START + pd.Timedelta(hours=11, minutes=30))
    signal = RecordedSignal(actuals, clock, max_gap=3, interval=pd.Timedelta(hours=1))
    assert float(signal.latest("CAISO_NORTH")["value"].squeeze()) == 9.0   # hour 10 is filled but its gap is not closed yet
    clock.now = START + pd.Timedelta(hours=13)
    history = signal.history("CAISO_NORTH", START, clock.now)
    assert history["value"].values[10:13, 0].tolist() == [10.0, 11.0, 12.0]   # linear between 9 and 12
    assert history["estimated"].values[10:12, 0].all() and not history["estimated"].values[12, 0]
    clock.now = START + pd.Timedelta(hours=50)
    history = signal.history("CAISO_NORTH", START, clock.now)
    times = pd.DatetimeIndex(history.time.values)
    assert TIMES[20] in times and bool(history["estimated"].sel(time=TIMES[20]).squeeze())
    assert not any(TIMES[30:40].isin(times))   # too long to fill: absent, never a NaN served
    assert np.isfinite(history["value"].values).all()


def test_fill_gaps_flags_what_it_fills_and_keeps_long_gaps():
    values = np.array([0.0, np.nan, 20.0, np.nan, np.nan, np.nan, 60.0])
    ds = signal_dataset(values, TIMES[:7], "Z", "carbon_intensity", "g/kWh", provider="rec")
    out = fill_gaps(ds, "1h", 2)
    assert out["value"].values[:, 0][:3].tolist() == [0.0, 10.0, 20.0] and np.isnan(out["value"].values[3:6, 0]).all()
    assert out["estimated"].values[:, 0].tolist() == [False, True, False, False, False, False, False]
    assert out.attrs["filled"] == 1
    with pytest.raises(SignalFormatError, match="off the 0 days 01:00:00 grid"):
        fill_gaps(ds.assign_coords(time=TIMES[:7] + pd.to_timedelta(np.arange(7), unit="min")), "1h", 2)


def test_a_signal_set_serves_each_kind_from_its_member():
    clock = ReplayClock(START + pd.Timedelta(hours=5))
    moer = RecordedSignal(_actuals(), clock)
    share = RecordedSignal(signal_dataset(np.full(72, 0.4), TIMES, "CAISO_NORTH", "renewable_share", "1",
                                          provider="rec"), clock)
    both = SignalSet("rec", [moer, share])
    assert both.kinds() == ("marginal_emissions", "renewable_share")
    assert float(both.latest("CAISO_NORTH")["value"].squeeze()) == 4.0
    assert float(both.latest("CAISO_NORTH", "renewable_share")["value"].squeeze()) == 0.4
    with pytest.raises(SignalFormatError, match="no price here"):
        both.latest("CAISO_NORTH", "price")
    with pytest.raises(SignalFormatError, match="two members serve marginal_emissions"):
        SignalSet("rec", [moer, moer])


def test_hours_the_newest_day_ahead_run_lacks_come_from_the_run_before():
    # day-ahead runs: issued at 12:00 on day D-1 for the 24 hours of day D
    issued = pd.date_range(START - pd.Timedelta(hours=12), periods=3, freq="D")
    values = np.full((3, 72), np.nan)
    for i in range(3):
        values[i, 24 * i: 24 * (i + 1)] = 100.0 * (i + 1)
    forecasts = signal_dataset(values, TIMES, "CAISO_NORTH", "marginal_emissions", "g/kWh", provider="rec",
                               issued_at=issued)
    clock = ReplayClock(START + pd.Timedelta(hours=18))   # day 1's run is out (12:00), its day not begun
    fc = RecordedSignal(_actuals(), clock, forecasts).forecast("CAISO_NORTH", pd.Timedelta(hours=12))
    times = pd.DatetimeIndex(fc.time.values)
    assert times[0] == clock.now.floor("h") and times[-1] == clock.now + pd.Timedelta(hours=11)  # no hole
    assert pd.Timestamp(fc.issued_at.values[0]) == issued[1]
    run = pd.DatetimeIndex(fc["issued"].values[:, 0])
    day_two = times >= START + pd.Timedelta(days=1)
    assert (run[~day_two] == issued[0]).all() and (run[day_two] == issued[1]).all()
    assert fc["value"].values[0, :, 0].tolist() == [100.0] * 6 + [200.0] * 6
    assert (run < clock.now).all()
