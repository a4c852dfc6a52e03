"""Hourly-series helpers shared by every observation source: UTC times, numbers, duplicates, whole hours, gaps.

Each helper takes ``where`` (the file or zone, put first in every message) and ``error`` (the source's error
class, a subclass of :class:`~carbonsync.data.observations.base.ObservationError`), and returns the
repairs it applied as sentences, so that every loader reports them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from carbonsync.data.observations.base import ObservationError

__all__ = [
    "HOUR",
    "MAX_GAP_H",
    "check_range",
    "complete_hours",
    "drop_duplicates",
    "dst_hint",
    "fill_gaps",
    "fill_hourly",
    "gap_runs",
    "hourly_mean",
    "is_dst_night",
    "parse_utc_times",
    "require_whole_hours",
    "to_numeric",
]

HOUR = pd.Timedelta(hours=1)
MAX_GAP_H = 3
_OFFSET = r"([+-]\d\d:?\d\d|Z)$"
_ZERO_OFFSETS = ("Z", "+00:00", "+0000", "-00:00", "+00", "-0000")

ErrorType = type[Exception]


def parse_utc_times(values: pd.Series, where: str, column: str, error: ErrorType = ObservationError,
                    formats: Sequence[str] = ("ISO8601",)) -> tuple[pd.DatetimeIndex, list[str]]:
    """Naive-UTC ``datetime64[ns]`` times from text; offsets are converted (a repair); naive text is taken as UTC.

    ``formats`` are tried in order for the whole column; an unparsable value is ``error`` naming its row.
    """
    text = values.astype(str).str.strip()
    parsed = None
    for fmt in formats:
        try:
            trial = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        except (ValueError, TypeError):
            continue
        if parsed is None:
            parsed = trial
        if trial.notna().all():
            parsed = trial
            break
    else:
        bad = np.flatnonzero(parsed.isna().to_numpy()) if parsed is not None else np.array([0])
        row = int(bad[0]) if len(bad) else 0
        raise error(f"{where}: column '{column}' row {row + 2}: cannot parse {values.iloc[row]!r} as a time")
    repairs = []
    offsets = text.str.extract(_OFFSET)[0].dropna()
    nonzero = offsets[~offsets.isin(_ZERO_OFFSETS)]
    if len(nonzero):
        repairs.append(f"converted {len(nonzero)} time(s) with a UTC offset (e.g. {nonzero.iloc[0]}) to UTC")
    return pd.DatetimeIndex(parsed.dt.tz_localize(None)).astype("datetime64[ns]"), repairs


def to_numeric(frame: pd.DataFrame, column: str, where: str, error: ErrorType = ObservationError) -> pd.Series:
    """``frame[column]`` as float64; blanks are NaN, any other text (``inf`` too) is ``error`` naming the row
    and value."""
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.astype(np.float64)
    else:
        values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise error(f"{where}: column '{column}' row {row + 2}: {raw.iloc[row]!r} is not a number")
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise error(f"{where}: column '{column}' row {row + 2}: '{raw.iloc[row]}' is not a finite number "
                    f"({int(infinite.sum())} such value(s))")
    return values


def check_range(values: np.ndarray, valid: tuple[float, float], where: str, column: str, units: str,
                error: ErrorType = ObservationError, hint: str = "") -> None:
    """``error`` naming the column, the first row (as a file row number) and the count of values outside
    ``valid`` (NaN allowed)."""
    lo, hi = valid
    bad = (values < lo) | (values > hi)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise error(f"{where}: column '{column}' row {row + 2}: {values[row]:.6g} {units} is outside "
                    f"[{lo:g}, {hi:g}]{hint}; {int(bad.sum())} such value(s)")


def is_dst_night(t: pd.Timestamp) -> bool:
    """A night hour on a Sunday of a month in which US or EU daylight-saving time starts or ends."""
    return t.day_of_week == 6 and t.month in (3, 4, 10, 11) and t.hour <= 4


def dst_hint(index: pd.DatetimeIndex) -> str:
    """A hint when repeated (and missing) hours look like local time with a daylight-saving shift, else ''."""
    repeated = index[index.duplicated(keep="first")]
    if not len(repeated):
        return ""
    ordered = index.sort_values().unique()
    steps = np.diff(ordered.values.astype("datetime64[ns]")).astype(np.int64) // 10**9 if len(ordered) > 1 else []
    missing = [t + HOUR for t, s in zip(ordered[:-1], steps, strict=False) if s == 2 * 3600]
    if not any(is_dst_night(t) for t in repeated) and not missing:
        return ""
    gap = f" and {missing[0]:%Y-%m-%d %H:%M} is missing" if missing else ""
    return (f"{gap}: the times look like local time with a daylight-saving shift (an hour repeated on a transition "
            "night); convert them to UTC")


def drop_duplicates(frame: pd.DataFrame, where: str, column: str = "time", error: ErrorType = ObservationError
                    ) -> tuple[pd.DataFrame, list[str]]:
    """Drop rows that repeat another row exactly (a repair); a time repeated with other values is ``error``.

    The error names the time and the columns that disagree, with a daylight-saving hint (:func:`dst_hint`).
    Returns the frame sorted by time.
    """
    repairs: list[str] = []
    hint_index = frame.index
    exact = frame.reset_index().duplicated(keep="first").to_numpy()
    if exact.any():
        repairs.append(f"dropped {int(exact.sum())} exact duplicate row(s) (first at {frame.index[exact][0]})")
        frame = frame[~exact]
    dup = frame.index.duplicated(keep=False)
    if dup.any():
        first = frame.index[dup][0]
        rows = frame.loc[[first]]
        differ = [str(c) for c in rows.columns if rows[c].nunique(dropna=False) > 1][:4]
        raise error(
            f"{where}: column '{column}': hour {first:%Y-%m-%d %H:%M} appears twice with different values"
            f" (in {', '.join(differ) or 'the values'}){dst_hint(hint_index)}"
        )
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index(kind="stable")
    return frame, repairs


def require_whole_hours(index: pd.DatetimeIndex, where: str, column: str = "time",
                        error: ErrorType = ObservationError) -> None:
    """Every time on a whole hour (hourly files), else ``error`` naming the first that is not."""
    off = index != index.floor("h")
    if off.any():
        raise error(f"{where}: column '{column}': time {index[off][0]} is not on a whole hour (hourly rows expected)")


def hourly_mean(frame: pd.DataFrame, where: str, error: ErrorType = ObservationError,
                minutes: Sequence[int] = (0, 15, 30, 45)) -> pd.DataFrame:
    """Mean of the readings that start in each hour, labelled by the hour's start; readings on ``minutes`` only."""
    minute = np.asarray(frame.index.minute + frame.index.second / 60)
    on_grid = np.isin(minute, list(minutes))
    if not on_grid.all():
        raise error(f"{where}: time {frame.index[~on_grid][0]} is not on a {60 // max(len(minutes), 1)}-minute boundary")
    return frame.groupby(frame.index.floor("h")).mean()


def complete_hours(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Reindex a time-indexed frame onto every hour from its first to its last; returns it and the hours added."""
    full = pd.date_range(frame.index.min(), frame.index.max(), freq="h", name=frame.index.name or "time")
    return frame.reindex(full), len(full) - len(frame)


def gap_runs(missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of True in ``missing``."""
    missing = np.asarray(missing, dtype=bool)
    if not missing.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return starts, ends - starts


def fill_gaps(frame: pd.DataFrame, columns: Sequence[str], max_gap_h: int
              ) -> tuple[pd.DataFrame, int, list[tuple[pd.Timestamp, int]]]:
    """Interpolate (linear in time) the rows of a regular hourly frame in runs of <= ``max_gap_h`` missing hours.

    A row is missing when any of ``columns`` is NaN; runs at either end have nothing to interpolate from and
    stay. Returns the frame, the number of rows filled and the ``(first hour, length)`` of every run left.
    """
    columns = list(columns)
    missing = frame[columns].isna().any(axis=1).to_numpy()
    starts, lengths = gap_runs(missing)
    short = np.zeros(len(frame), dtype=bool)
    left = []
    for start, length in zip(starts, lengths, strict=True):
        inside = start > 0 and start + length < len(frame)
        if inside and length <= max_gap_h:
            short[start:start + length] = True
        else:
            left.append((frame.index[start], int(length)))
    if short.any():
        frame = frame.copy()
        filled = frame[columns].interpolate(method="time", limit_area="inside")
        frame.loc[short, columns] = filled.loc[short].to_numpy()
    return frame, int(short.sum()), left


def fill_hourly(frame: pd.DataFrame, columns: Sequence[str], where: str, max_gap_h: int = MAX_GAP_H,
                error: ErrorType = ObservationError) -> tuple[pd.DataFrame, list[str]]:
    """:func:`complete_hours` then :func:`fill_gaps`, where a longer gap is ``error`` naming its first hour."""
    frame, _ = complete_hours(frame)
    frame, filled, left = fill_gaps(frame, columns, max_gap_h)
    too_long = [(t, n) for t, n in left if n > max_gap_h]
    if too_long:
        start, length = too_long[0]
        raise error(
            f"{where}: {length} missing hour(s) in a row from {start:%Y-%m-%d %H:%M} "
            f"(at most {max_gap_h} are filled by interpolation)"
        )
    return frame, [f"interpolated {filled} missing hour(s) (gaps of at most {max_gap_h} h)"] if filled else []
