"""Time helpers: naive UTC timestamps (the project's convention) and their text form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

HOUR = pd.Timedelta(hours=1)


def utc_naive(t: str | pd.Timestamp | np.datetime64) -> pd.Timestamp:
    """``t`` as a timezone-naive UTC timestamp (aware inputs are converted to UTC first)."""
    ts = pd.Timestamp(t)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def utc_naive_index(times: np.ndarray | pd.DatetimeIndex | xr.DataArray) -> pd.DatetimeIndex:
    """``times`` as a timezone-naive UTC DatetimeIndex."""
    if isinstance(times, pd.DatetimeIndex) and times.tz is not None:
        return times.tz_convert("UTC").tz_localize(None)
    return pd.DatetimeIndex(np.asarray(times, dtype="datetime64[ns]"))


def fmt_time(t: pd.Timestamp | np.datetime64) -> str:
    """``2020-11-20T06:00``: the ISO form used in messages."""
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M")
