"""A climatology from the training split only, by hour of day and day of year (the WeatherBench2 way).

WeatherBench2 averages each (day of year, hour of day) over the climatological years and smooths the
result with a sliding window over day of year that wraps around the year end. Here the same thing is done
as *pooled* window means, so that it degrades gracefully when the training period is much shorter than a
year (as it is for the sample world: weeks to months):

* for every hour of day ``h`` and day of year ``d`` the climatology is the mean of all training samples at
  hour ``h`` whose day of year lies within ``±smoothing_days // 2`` of ``d`` (circularly, over 366 days).
  With many years of data this is WeatherBench2's smoothed climatology (pooled rather than a mean of
  daily means, which only differs in how unequal sample counts are weighted);
* days of year with no training sample within the window (a training period shorter than a year leaves
  most of the year empty) get the plain per-hour-of-day mean of the whole training period: the best
  information there is, and the value the window mean tends to when the window covers the whole period.

The result has dims ``(hour, dayofyear, lat, lon)``; :func:`climatology_at` looks it up at valid times.
Only ``xarray`` operations are used, so a lazily (dask-) opened store stays lazy until ``.load()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.data.validation import WeatherDataError

DAYS = np.arange(1, 367)


def _dot(ds: xr.Dataset, matrix: xr.DataArray, dim: str) -> xr.Dataset:
    return ds.map(lambda da: xr.dot(da, matrix, dim=dim), keep_attrs=False)


def compute_climatology(ds: xr.Dataset, period: Sequence[str], variables: Sequence[str] | None = None,
                        smoothing_days: int = 61, hours: Sequence[int] | None = (0, 6, 12, 18)) -> xr.Dataset:
    """Climatology of ``variables`` over the training ``period`` (start, end), dims (hour, dayofyear, lat, lon).

    ``smoothing_days`` is the full width of the circular day-of-year window (odd; 1 = no smoothing);
    ``hours`` the hours of day to keep (default the 6-hourly synoptic hours; ``None`` = every hour present).
    Only samples at whole hours inside ``period`` are used, so nothing outside the training split leaks in.
    """
    if smoothing_days < 1:
        raise ValueError(f"smoothing_days must be >= 1, got {smoothing_days}")
    start, end = (pd.Timestamp(t) for t in period)
    variables = list(variables) if variables is not None else list(ds.data_vars)
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise WeatherDataError(f"climatology variables {missing} are not in the dataset ({list(ds.data_vars)})")
    sub = ds[variables].sel(time=slice(start, end))
    t = sub.indexes["time"]
    keep = (t.minute == 0) & (t.second == 0)
    if hours is not None:
        keep &= np.isin(t.hour, list(hours))
    sub = sub.isel(time=np.flatnonzero(keep))
    if sub.sizes["time"] == 0:
        raise WeatherDataError(
            f"climatology period {start} to {end} selects no times at hours {list(hours) if hours else 'any'}; "
            f"data covers {pd.Timestamp(ds.time.values[0])} to {pd.Timestamp(ds.time.values[-1])}"
        )
    t = sub.indexes["time"]
    hour_values = np.array(sorted(set(t.hour))) if hours is None else np.array(sorted(set(hours)))
    absent = sorted(set(hour_values) - set(t.hour))
    if absent:
        raise WeatherDataError(f"climatology period {start} to {end} has no samples at hours {absent} UTC")

    # Sum the samples of each (hour, day of year) cell present, as one matrix product over time (lazy
    # for dask input and free of per-group python loops), then spread each cell over its circular window.
    cell = t.hour.values * 1000 + t.day_of_year.values
    cells, which = np.unique(cell, return_inverse=True)
    onehot = np.zeros((t.size, cells.size), np.float64)
    onehot[np.arange(t.size), which] = 1.0
    onehot = xr.DataArray(onehot, dims=("time", "cell"), coords={"time": sub.time})
    sums = _dot(sub.astype(np.float64), onehot, "time")
    counts = onehot.sum("time").values

    half = smoothing_days // 2
    cell_hour, cell_day = cells // 1000, cells % 1000
    distance = np.abs(DAYS[:, None] - cell_day[None, :])
    distance = np.minimum(distance, DAYS.size - distance)  # circular over 366 days
    same_hour = hour_values[:, None, None] == cell_hour[None, None, :]
    window = xr.DataArray((same_hour & (distance <= half)[None]).astype(np.float64),
                          dims=("hour", "dayofyear", "cell"), coords={"hour": hour_values, "dayofyear": DAYS})
    hourly = xr.DataArray((hour_values[:, None] == cell_hour[None, :]).astype(np.float64),
                          dims=("hour", "cell"), coords={"hour": hour_values})
    count = window.dot(xr.DataArray(counts, dims="cell"))
    windowed = _dot(sums, window, "cell") / count.where(count > 0)
    hourly_mean = _dot(sums, hourly, "cell") / hourly.dot(xr.DataArray(counts, dims="cell"))
    clim = windowed.fillna(hourly_mean)
    clim = clim.transpose("hour", "dayofyear", "lat", "lon").astype(np.float32)
    for name in variables:
        clim[name].attrs = dict(ds[name].attrs)
    n_window = int((count > 0).sum())
    clim.attrs.update({
        "title": "climatology by hour of day and day of year",
        "climatology_period": f"{start} to {end}",
        "n_times": int(sub.sizes["time"]),
        "hours": [int(h) for h in hour_values],
        "smoothing_days": int(2 * half + 1),
        "method": ("pooled mean of training samples at the same hour of day within a circular "
                   f"±{half}-day day-of-year window; (hour, day) cells with no sample in the window "
                   "take the per-hour-of-day mean of the whole training period"),
        "n_cells_window_mean": n_window,
        "n_cells_hourly_fallback": int(count.size - n_window),
    })
    return clim


def climatology_at(clim: xr.Dataset, times) -> xr.Dataset:
    """The climatological fields at valid ``times``.

    ``times`` is anything ``pd.DatetimeIndex`` accepts (result dims ``(time, lat, lon)``) or a datetime
    ``xr.DataArray`` of any shape, e.g. valid times ``(init_time, lead_time)`` (result dims are its dims
    followed by ``lat, lon``). Hours of day that the climatology does not have raise ``KeyError``.
    """
    if isinstance(times, xr.DataArray):
        stamps = pd.DatetimeIndex(np.asarray(times.values).ravel())
        shape, dims, coords = times.shape, times.dims, times.coords
    else:
        stamps = pd.DatetimeIndex(times)
        shape, dims, coords = (stamps.size,), ("time",), {"time": stamps.values}
    have = set(int(h) for h in clim.hour.values)
    lacking = sorted(set(int(h) for h in stamps.hour) - have)
    if lacking or ((stamps.minute != 0) | (stamps.second != 0)).any():
        raise KeyError(f"the climatology has hours {sorted(have)} UTC only; valid times include "
                       f"{[f'{h:02d}' for h in lacking] or 'non-whole hours'}")
    hour = xr.DataArray(stamps.hour.values.reshape(shape), dims=dims, coords=coords)
    doy = xr.DataArray(stamps.day_of_year.values.reshape(shape), dims=dims, coords=coords)
    out = clim.sel(hour=hour, dayofyear=doy).drop_vars(["hour", "dayofyear"])
    out.attrs = dict(clim.attrs)
    return out
