"""The hourly helpers every observation source shares: UTC times, numbers, duplicates, whole hours, gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carbonsync.data.observations.base import ObservationError
from carbonsync.data.observations.gefcom import GefcomDataError
from carbonsync.data.observations.hourly import (
    complete_hours,
    drop_duplicates,
    dst_hint,
    fill_gaps,
    fill_hourly,
    gap_runs,
    hourly_mean,
    parse_utc_times,
    require_whole_hours,
    to_numeric,
)


def hourly(values, start="2021-06-01", name="x") -> pd.DataFrame:
    return pd.DataFrame({name: np.asarray(values, dtype=float)}, index=pd.date_range(start, periods=len(values), freq="h"))


def test_parse_utc_times_converts_offsets_and_names_bad_rows():  # rows are file lines: the header is row 1
    text = pd.Series(["2021-06-01 00:00", "2021-06-01T03:00:00+02:00", "2021-06-01 02:00Z"])
    times, repairs = parse_utc_times(text, "f.csv", "Time")
    assert list(times) == [pd.Timestamp("2021-06-01 00:00"), pd.Timestamp("2021-06-01 01:00"), pd.Timestamp("2021-06-01 02:00")]
    assert times.dtype == np.dtype("datetime64[ns]") and times.tz is None
    assert repairs == ["converted 1 time(s) with a UTC offset (e.g. +02:00) to UTC"]
    compact, _ = parse_utc_times(pd.Series(["20120101 1:00", "20120101 2:00"]), "f", "t", formats=("ISO8601", "%Y%m%d %H:%M"))
    assert compact[1] == pd.Timestamp("2012-01-01 02:00")
    with pytest.raises(GefcomDataError, match="f.csv: column 'Time' row 4: cannot parse 'soon' as a time"):
        parse_utc_times(pd.Series(["2021-06-01 00:00", "2021-06-01 01:00", "soon"]), "f.csv", "Time", GefcomDataError)


def test_to_numeric_keeps_blanks_and_names_text():
    frame = pd.DataFrame({"v": ["1.5", "", None, "2"]})
    assert to_numeric(frame, "v", "f").isna().tolist() == [False, True, True, False]
    with pytest.raises(ObservationError, match="f: column 'v' row 4: '12 kW' is not a number"):
        to_numeric(pd.DataFrame({"v": ["1", "2", "12 kW"]}), "v", "f")


def test_drop_duplicates_exact_conflicting_and_dst():
    frame = hourly([1, 2, 3, 4])
    doubled = pd.concat([frame, frame.iloc[[2]]])
    out, repairs = drop_duplicates(doubled, "f")
    assert out.equals(frame) and repairs == ["dropped 1 exact duplicate row(s) (first at 2021-06-01 02:00:00)"]
    conflict = pd.concat([frame, frame.iloc[[2]] + 1])
    with pytest.raises(ObservationError, match=r"^f: column 'time': hour 2021-06-01 02:00 appears twice with different values "
                                               r"\(in x\)$"):
        drop_duplicates(conflict, "f")
    # a repeated night hour on the last Sunday of October 2021, the European fall-back
    autumn = hourly(np.arange(6.0), start="2021-10-31 00:00")
    local = pd.concat([autumn, autumn.iloc[[2]] + 10])
    with pytest.raises(ObservationError, match="daylight-saving"):
        drop_duplicates(local, "f")
    assert dst_hint(local.index).startswith(": the times look like local time")
    assert dst_hint(frame.index) == ""
    spring = hourly([1, 2, 3, 4, 5], start="2021-05-03").drop(pd.Timestamp("2021-05-03 02:00"))
    assert "2021-05-03 02:00 is missing" in dst_hint(spring.index.append(spring.index[:1]))
    unsorted, _ = drop_duplicates(frame.iloc[::-1], "f")
    assert unsorted.index.is_monotonic_increasing


def test_whole_hours_and_hourly_means():
    require_whole_hours(pd.date_range("2021-01-01", periods=3, freq="h"), "f")
    with pytest.raises(ObservationError, match="f: column 'Time': time 2021-01-01 00:30:00 is not on a whole hour"):
        require_whole_hours(pd.DatetimeIndex(["2021-01-01 00:00", "2021-01-01 00:30"]), "f", "Time")
    readings = pd.DataFrame({"x": [1.0, 3.0, 10.0, 20.0, 30.0, 40.0]},
                            index=pd.DatetimeIndex(["2021-01-01 00:00", "2021-01-01 00:30", "2021-01-01 01:00",
                                                    "2021-01-01 01:15", "2021-01-01 01:30", "2021-01-01 01:45"]))
    means = hourly_mean(readings, "f")
    assert means["x"].tolist() == [2.0, 25.0] and means.index[1] == pd.Timestamp("2021-01-01 01:00")
    with pytest.raises(ObservationError, match="00:10:00 is not on a 15-minute boundary"):
        hourly_mean(pd.DataFrame({"x": [1.0]}, index=pd.DatetimeIndex(["2021-01-01 00:10"])), "f")


def test_gap_runs_complete_hours_and_fill_gaps():
    starts, lengths = gap_runs(np.array([True, False, True, True, False, True]))
    assert starts.tolist() == [0, 2, 5] and lengths.tolist() == [1, 2, 1]
    assert gap_runs(np.zeros(3, dtype=bool))[0].size == 0
    sparse = hourly(np.arange(10.0)).drop(pd.date_range("2021-06-01 02:00", periods=2, freq="h"))
    full, added = complete_hours(sparse)
    assert added == 2 and len(full) == 10 and full["x"].isna().sum() == 2
    frame = hourly([0, np.nan, np.nan, 3, 4, np.nan, np.nan, np.nan, np.nan, 9, np.nan])
    filled, n, left = fill_gaps(frame, ["x"], 2)
    assert n == 2 and filled["x"].iloc[1:3].tolist() == [1.0, 2.0]
    assert left == [(frame.index[5], 4), (frame.index[10], 1)]  # too long, and at the end (nothing to interpolate to)
    assert filled["x"].iloc[5:9].isna().all()


def test_fill_hourly_raises_on_long_gaps_only():
    frame = hourly(np.arange(12.0)).drop(pd.date_range("2021-06-01 03:00", periods=3, freq="h"))
    out, repairs = fill_hourly(frame, ["x"], "f", max_gap_h=3)
    assert out["x"].tolist() == list(np.arange(12.0)) and repairs == ["interpolated 3 missing hour(s) (gaps of at most 3 h)"]
    with pytest.raises(ObservationError, match="f: 3 missing hour\\(s\\) in a row from 2021-06-01 03:00 \\(at most 2"):
        fill_hourly(frame, ["x"], "f", max_gap_h=2)
