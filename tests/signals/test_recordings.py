"""Recorded signals from every shared file format, opened by one call and served causally."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carbonsync.signals import SignalFormatError, get_signal
from carbonsync.signals.recordings import DACF_ISSUE_LEAD, RECORDING_FORMATS, dacf_signals, open_recording
from carbonsync.signals.replay import ReplayClock
from tests.helpers import requires_shared_data, shared_data_dir
from tests.helpers.dacf import synthetic_dacf
from tests.helpers.portal import portal_rows, write_portal


def _traces(tmp_path):
    write_portal(tmp_path / "ES_2021.csv", portal_rows("2021-01-01 00:00", 72))
    write_portal(tmp_path / "NO_2021.csv", portal_rows("2021-01-02 00:00", 72, zone="NO", base=10.0))
    return tmp_path


def test_a_trace_directory_serves_carbon_and_share_of_every_zone_causally(tmp_path):
    clock = ReplayClock(pd.Timestamp("2021-01-02 05:30"))
    signal = open_recording(_traces(tmp_path), clock)
    assert signal.kinds() == ("carbon_intensity", "renewable_share") and signal.name == "electricitymaps-file"
    latest = signal.latest("ES")
    assert pd.Timestamp(latest.time.values[0]) == pd.Timestamp("2021-01-02 04:00")   # hour 28, published at 05:00
    assert float(latest["value"].squeeze()) == 128.0 and latest.attrs["units"] == "g CO2e/kWh"
    assert float(signal.latest("NO")["value"].squeeze()) == 14.0   # NO's own span (outer join)
    share = signal.latest("ES", "renewable_share")
    assert float(share["value"].squeeze()) == pytest.approx(0.58)
    history = signal.history("NO", pd.Timestamp("2021-01-01"), pd.Timestamp("2021-01-10"))
    assert history.sizes["time"] == 5 and not history["estimated"].any()   # no NaN before NO's first hour
    forecast = signal.forecast("ES", pd.Timedelta(hours=3))
    assert forecast.attrs["method"] == "persistence" and (forecast.issued_at.values <= np.datetime64(clock.now)).all()
    assert get_signal("file", path=tmp_path, clock=clock).kinds() == signal.kinds()


def test_a_bad_trace_file_is_named_not_skipped(tmp_path):
    _traces(tmp_path)
    (tmp_path / "GB_2021.csv").write_text("Datetime (UTC),Zone Id\n", encoding="utf-16")
    with pytest.raises(SignalFormatError, match="file 'GB_2021.csv' cannot be read: it is not UTF-8"):
        open_recording(tmp_path, ReplayClock(pd.Timestamp("2021-01-02")), format="traces")


def _dacf_file(path, days: int = 10):
    frame = synthetic_dacf(start="2020-06-01", days=days, seed=3)
    rng = np.random.default_rng(0)
    for fuel in ("nuclear", "nat_gas", "solar", "wind"):   # the operators' day-ahead forecast of every fuel
        frame[f"avg_{fuel}_production_forecast"] = frame[fuel] * (1 + 0.05 * rng.normal(size=len(frame)))
    frame.to_csv(path, index=False, compression="gzip")
    return frame


def test_dacf_serves_carbon_and_share_with_operator_forecasts_issued_the_day_before(tmp_path):
    frame = _dacf_file(tmp_path / "TEST_2020.csv.gz")
    clock = ReplayClock(pd.Timestamp("2020-06-04 12:00"))
    signal = dacf_signals(tmp_path / "TEST_2020.csv.gz", clock)
    assert signal.kinds() == ("carbon_intensity", "renewable_share")
    row = frame.set_index(pd.DatetimeIndex(frame["UTC time"])).loc["2020-06-04 11:00"]
    gen = row[["nuclear", "nat_gas", "solar", "wind"]]
    assert float(signal.latest("TEST")["value"].squeeze()) == pytest.approx(370.0 * gen["nat_gas"] / gen.sum())
    assert float(signal.latest("TEST", "renewable_share")["value"].squeeze()) == pytest.approx(
        (gen["solar"] + gen["wind"]) / gen.sum())
    forecast = signal.forecast("TEST", pd.Timedelta(hours=48), kind="renewable_share")
    issued = pd.Timestamp(forecast.issued_at.values[0])
    assert issued == pd.Timestamp("2020-06-03 18:00") and forecast.attrs["method"] == "recorded forecast"
    times = pd.DatetimeIndex(forecast.time.values)
    assert times[0] == issued + DACF_ISSUE_LEAD and times[-1] == pd.Timestamp("2020-06-05 00:00")
    clock.now = pd.Timestamp("2020-06-04 18:00")   # the run for June 5 is issued at 18:00: not yet
    assert pd.Timestamp(signal.forecast("TEST", pd.Timedelta(hours=6)).issued_at.values[0]) == issued
    clock.now = pd.Timestamp("2020-06-04 18:01")   # issued, but its day begins at 01:00: the run before serves
    assert pd.Timestamp(signal.forecast("TEST", pd.Timedelta(hours=6)).issued_at.values[0]) == issued
    assert pd.Timestamp(signal.forecast("TEST", pd.Timedelta(hours=12)).issued_at.values[0]) == pd.Timestamp(
        "2020-06-04 18:00")


def test_unknown_and_missing_recordings_are_named(tmp_path):
    clock = ReplayClock(pd.Timestamp("2021-01-01"))
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SignalFormatError, match="none of the recorded formats: traces"):
        open_recording(tmp_path / "x.csv", clock)
    with pytest.raises(SignalFormatError, match="does not exist"):
        open_recording(tmp_path / "nowhere.csv", clock)
    with pytest.raises(SignalFormatError, match="unknown recording format 'parquet'"):
        open_recording(tmp_path / "x.csv", clock, format="parquet")


@requires_shared_data
@pytest.mark.parametrize("relative, zone, kinds", [
    ("electricitymaps", "US-CAL-CISO", ("carbon_intensity", "renewable_share")),
    ("entsoe", "GB", ("carbon_intensity", "renewable_share")),
    ("dacf", "CISO", ("carbon_intensity", "renewable_share")),
    ("watttime/moer_4regions_2026-01-11.csv", "south_australia", ("marginal_emissions",)),
    ("caiso/caiso_np15_lmp_2024.zip", "caiso", ("price",)),
    ("caiso/vector_high_curtailment_week.csv", "TH_NP15_GEN-APND", ("curtailment", "price")),
])
def test_every_shared_format_opens_and_never_serves_the_future(relative, zone, kinds):
    path = shared_data_dir() / relative
    clock = ReplayClock(pd.Timestamp("2000-01-01"))
    signal = open_recording(path, clock)
    assert signal.kinds() == kinds
    for kind in kinds:
        member = signal.member(kind) if hasattr(signal, "member") else signal
        times = pd.DatetimeIndex(member.actuals.sel(zone=member.zone(zone)).dropna("time")["time"].values)
        for now in times[[24, len(times) // 2, -1]] + pd.Timedelta(minutes=1):
            clock.now = now
            latest = signal.latest(zone, kind)
            assert pd.Timestamp(latest.time.values[-1]) + member.interval <= now
            forecast = signal.forecast(zone, pd.Timedelta(hours=24), kind=kind)
            issued = pd.DatetimeIndex(forecast.issued_at.values)
            assert (issued < now).all() if forecast.attrs["method"] != "persistence" else (issued <= now).all()
            assert pd.Timestamp(forecast.time.values[0]) >= pd.Timestamp(latest.time.values[-1]) or \
                forecast.attrs["method"] != "persistence"


def test_the_formats_are_registered_in_detection_order():
    assert list(RECORDING_FORMATS) == ["traces", "dacf", "watttime", "caiso-lmp", "caiso-curtailment"]
