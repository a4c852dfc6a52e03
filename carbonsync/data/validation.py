"""Checks at every stage boundary: each failure names the variable, coordinate or value at fault."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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


def _values(ds: xr.Dataset, names: list[str], what: str) -> None:
    check_values(ds, names, what)


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
    are no NaN or inf values and every value lies in its variable's physical range (:func:`check_values`).
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
        _values(ds, required, what)
    return found


def _where(da: xr.DataArray, mask: xr.DataArray) -> tuple[str, float, dict[str, int]]:
    """``dim=value, ...`` of the first True of ``mask`` (C order), the value of ``da`` there, and its indices."""
    first = mask.argmax(...)  # index of the first True along each dim (one more read, on the error path only)
    index = {str(d): int(first[d]) for d in da.dims}
    parts = []
    for d in da.dims:
        coord = da[d].values[index[str(d)]] if d in da.coords else index[str(d)]
        if isinstance(coord, np.datetime64):
            coord = pd.Timestamp(coord).isoformat()
        parts.append(f"{d}={coord}")
    value = float(da.isel(index).values)
    return ", ".join(parts), value, index


def _missing_chunk(store: str | Path | None, name: str, da: xr.DataArray, index: dict[str, int]) -> str:
    """A note naming the chunk file holding ``index`` if it is missing from a local Zarr v3 ``store``."""
    if store is None:
        return ""
    chunks = da.encoding.get("chunks") or da.encoding.get("preferred_chunks")
    if isinstance(chunks, dict):
        chunks = [chunks.get(d) for d in da.dims]
    if not chunks or any(c is None for c in chunks):
        return ""
    key = "/".join(str(index[str(d)] // int(c)) for d, c in zip(da.dims, chunks, strict=True))
    file = Path(store) / name / "c" / key
    if (Path(store) / name / "zarr.json").is_file() and not file.exists():
        return f" (chunk file '{name}/c/{key}' is missing from the store: it reads as the fill value)"
    return ""


def check_values(
    ds: xr.Dataset,
    variables: Iterable[str] | None = None,
    what: str = "weather dataset",
    store: str | Path | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> None:
    """No NaN or inf, and every value within its variable's physical range (lexicon ``valid_range``, or
    ``ranges`` by name for variables outside the lexicon).

    One pass over the data: the reductions of every variable (count of non-finite values, min, max) are
    computed together, so a dask-backed store is read once, chunk by chunk, without loading it. On failure
    a second read locates the first bad value; the error names the variable, its coordinates (time, lat,
    lon) and the value, and, for a ``store`` on local disk, a missing chunk file that read as the fill value.
    """
    names = list(variables) if variables is not None else [str(v) for v in ds.data_vars]
    reductions = {}
    for name in names:
        da = ds[name]
        if da.dtype.kind not in "fc":
            continue
        reductions[f"{name}/bad"] = (~np.isfinite(da)).sum()
        reductions[f"{name}/min"] = da.min()
        reductions[f"{name}/max"] = da.max()
    if not reductions:
        return
    summary = xr.Dataset(reductions).compute()
    for name in names:
        if f"{name}/bad" not in summary:
            continue
        da = ds[name]
        n_bad = int(summary[f"{name}/bad"])
        if n_bad:
            where, value, index = _where(da, ~np.isfinite(da))
            nans = int(da.isnull().sum().compute())
            kind = "NaN value(s)" if nans == n_bad else f"non-finite value(s) ({nans} NaN, {n_bad - nans} inf)"
            raise WeatherDataError(
                f"{what}: variable '{name}' has {n_bad} {kind}, first at {where}: {value}"
                + _missing_chunk(store, name, da, index)
            )
        valid = (ranges or {}).get(name) or (lexicon.VARIABLES[name].valid_range if name in lexicon.VARIABLES else None)
        if valid is None:
            continue
        lo, hi = float(summary[f"{name}/min"]), float(summary[f"{name}/max"])
        if lo < valid[0] or hi > valid[1]:
            where, value, index = _where(da, (da < valid[0]) | (da > valid[1]))
            raise WeatherDataError(
                f"{what}: variable '{name}' spans [{lo:.4g}, {hi:.4g}], outside its physical range "
                f"[{valid[0]:.4g}, {valid[1]:.4g}] {_units(da, name)} (wrong units?); "
                f"first at {where}: {value:.6g}" + _missing_chunk(store, name, da, index)
            )


def _units(da: xr.DataArray, name: str) -> str:
    return lexicon.get(name).units if name in lexicon.VARIABLES else str(da.attrs.get("units", ""))


def _check_values(da: xr.DataArray, what: str) -> None:
    """:func:`check_values` of one array (kept for callers that check arrays one by one)."""
    name = str(da.name)
    check_values(da.to_dataset(name=name), [name], what)
