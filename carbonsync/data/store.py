"""The canonical training store (Zarr) and its normalisation statistics.

A store is written to a temporary sibling path and renamed into place, so a reader never sees a
half-written store and a killed writer leaves only a ``*.tmp-*`` directory behind.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.fs import atomic_path, write_json_atomic
from carbonsync.data.validation import WeatherDataError, validate_weather
from carbonsync.physics.grid import Grid

STATS_FILE = "normalisation.json"


def to_zarr(ds: xr.Dataset, path: str | Path, group: str | None = None, mode: str = "w",
            consolidated: bool = True) -> None:
    """Write ``ds`` as Zarr v3. String coordinates become variable-length UTF-8 (fixed-length strings
    have no v3 specification); consolidated metadata is a zarr-python extension to v3 that we rely on for
    fast opens, so its warning is silenced here, in one place."""
    strings = {k: ds[k].compute().astype(object) for k in ds.coords if ds[k].dtype.kind == "U"}
    ds = ds.assign_coords(strings) if strings else ds
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        ds.to_zarr(path, group=group, mode=mode, consolidated=consolidated, zarr_format=3)


def consolidate(path: str | Path) -> None:
    """Consolidate the metadata of every group of the Zarr store at ``path``."""
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(path))


def write_canonical(ds: xr.Dataset, path: str | Path, chunks: dict[str, int] | None = None) -> Path:
    """Validate ``ds`` and write it as a consolidated Zarr store at ``path`` (atomically)."""
    validate_weather(ds)
    chunks = chunks or {"time": 24}
    ds = ds.chunk({d: min(c, ds.sizes[d]) for d, c in chunks.items() if d in ds.dims})
    for name in ds.data_vars:
        ds[name].encoding = {}
    with atomic_path(path) as tmp:
        to_zarr(ds, tmp)
    return Path(path)


def open_canonical(path: str | Path, variables: list[str] | None = None) -> xr.Dataset:
    """Open a canonical store lazily (dask) and check its layout (not its values: that would read it all)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"canonical store '{path}' does not exist (run `carbonsync prepare` first)")
    ds = xr.open_zarr(path, consolidated=True)
    validate_weather(ds, variables, check_values=False, what=f"store '{path}'")
    return ds


def compute_stats(ds: xr.Dataset, train_period: tuple[str, str], variables: list[str] | None = None) -> dict:
    """Per-variable mean and standard deviation over the training period only (area-weighted)."""
    start, end = (pd.Timestamp(t) for t in train_period)
    train = ds.sel(time=slice(start, end))
    if train.sizes["time"] == 0:
        raise WeatherDataError(
            f"training period {start} to {end} selects no times; data covers "
            f"{pd.Timestamp(ds.time.values[0])} to {pd.Timestamp(ds.time.values[-1])}"
        )
    weights = Grid.infer(ds).quadrature_weights()
    stats: dict = {"train_period": [str(start), str(end)], "n_times": int(train.sizes["time"]), "variables": {}}
    for name in variables or list(ds.data_vars):
        da = train[name].astype(np.float64)
        mean = float(da.weighted(weights).mean().compute())
        var = float(((da - mean) ** 2).weighted(weights).mean().compute())
        stats["variables"][name] = {"mean": mean, "std": float(max(np.sqrt(var), 1e-6))}
    return stats


def write_stats(stats: dict, store: str | Path) -> Path:
    path = Path(store) / STATS_FILE
    write_json_atomic(stats, path)
    return path


def read_stats(store: str | Path) -> dict:
    path = Path(store) / STATS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"normalisation statistics '{path}' not found (computed by `carbonsync prepare`)")
    return json.loads(path.read_text())
