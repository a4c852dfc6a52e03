"""Checks at every stage boundary: each failure names the variable, coordinate or value at fault."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.errors import CarbonSyncError
from carbonsync.data import lexicon
from carbonsync.physics.grid import Grid, GridError

CANONICAL_DIMS = ("time", "lat", "lon")


class WeatherDataError(CarbonSyncError, ValueError):
    """Gridded weather that breaks the canonical contract."""


def check_times(times: xr.DataArray | pd.DatetimeIndex | np.ndarray, what: str = "dataset") -> pd.DatetimeIndex:
    """Times must be datetimes, unique and strictly increasing; returns them as a DatetimeIndex."""
    index = pd.DatetimeIndex(np.asarray(times))
    if index.hasnans:
        raise WeatherDataError(f"{what}: 'time' contains missing values (NaT)")
    duplicated = index[index.duplicated()]
    if len(duplicated):
        raise WeatherDataError(f"{what}: duplicated times, e.g. {duplicated[0].isoformat()}")
    if not index.is_monotonic_increasing:
        bad = int(np.argmax(np.diff(index.asi8) < 0))
        raise WeatherDataError(
            f"{what}: times are not sorted: {index[bad + 1].isoformat()} follows {index[bad].isoformat()}"
        )
    return index


def validate_weather(
    ds: xr.Dataset,
    variables: Iterable[str] | None = None,
    grid: Grid | None = None,
    check_values: bool = True,
    what: str = "weather dataset",
) -> Grid:
    """Validate a canonical weather dataset and return its grid.

    Checks dims ``(time, lat, lon)``, that every requested variable is present with lexicon units, that
    times are unique and sorted, the grid (given or inferred), and, when ``check_values``, that there
    are no NaNs and values lie in each variable's physical range.
    """
    required = list(variables) if variables is not None else list(ds.data_vars)
    missing = [v for v in required if v not in ds.data_vars]
    if missing:
        raise WeatherDataError(
            f"{what}: missing variable(s) {', '.join(missing)}; it has {', '.join(map(str, ds.data_vars)) or 'none'}"
        )
    for name in required:
        da = ds[name]
        if tuple(da.dims) != CANONICAL_DIMS:
            raise WeatherDataError(f"{what}: variable '{name}' has dims {tuple(da.dims)}, expected {CANONICAL_DIMS}")
        var = lexicon.get(name)
        units = da.attrs.get("units")
        if units is None or lexicon.normalise_units(units) != var.units:
            raise WeatherDataError(f"{what}: variable '{name}' has units '{units}', expected '{var.units}'")
    if "time" not in ds.coords:
        raise WeatherDataError(f"{what}: no 'time' coordinate")
    check_times(ds["time"], what)
    try:
        found = Grid.infer(ds) if grid is None else grid
        found.check(ds, what)
    except GridError as err:
        raise WeatherDataError(f"{what}: {err}") from None
    if check_values:
        for name in required:
            _check_values(ds[name], what)
    return found


def _check_values(da: xr.DataArray, what: str) -> None:
    nans = int(da.isnull().sum().compute())
    if nans:
        first = da.isnull().argmax(...)  # index of the first NaN along each dim
        where = ", ".join(f"{d}={da[d].values[int(first[d])]}" for d in da.dims)
        raise WeatherDataError(f"{what}: variable '{da.name}' has {nans} NaN value(s), first at {where}")
    valid = lexicon.get(str(da.name)).valid_range
    if valid is not None:
        lo, hi = float(da.min().compute()), float(da.max().compute())
        if lo < valid[0] or hi > valid[1]:
            raise WeatherDataError(
                f"{what}: variable '{da.name}' spans [{lo:.4g}, {hi:.4g}], outside its physical range "
                f"[{valid[0]:.4g}, {valid[1]:.4g}] {lexicon.get(str(da.name)).units} (wrong units?)"
            )
