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
from carbonsync.data.validation import WeatherDataError, check_times, validate_weather
from carbonsync.data.validation import check_values as check_weather_values
from carbonsync.physics.grid import Grid

STATS_FILE = "normalisation.json"
ZONE_TRUTH_DIMS = ("time", "zone")
# physical ranges of the zone truth's variables (carbonsync.physics.renewables.zone_products)
ZONE_TRUTH_RANGES = {"wind_cf": (0.0, 1.0), "solar_cf": (0.0, 1.0), "renewable_share": (0.0, 1.0),
                     "carbon_intensity": (0.0, 2000.0), "wind_speed": (0.0, 100.0), "ghi": (0.0, 1500.0)}


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


def _chunk_files(path: Path, names: list[str]) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime) of every file of ``names`` in the local store at ``path``."""
    out = []
    for name in names:
        root = path / name
        for file in sorted(root.rglob("*")) if root.is_dir() else ():
            if file.is_file():
                st = file.stat()
                out.append((str(file.relative_to(path)), st.st_size, st.st_mtime_ns))
    return tuple(out)


def check_chunks(ds: xr.Dataset, path: str | Path, names: list[str], what: str) -> None:
    """Every chunk file of each variable in ``names`` exists in the local Zarr v3 store at ``path``.

    A deleted chunk reads back as the array's fill value, silently; this names it (and its times).
    Arrays that are not plain directories of chunk files (sharded, remote) are left to the value check.
    """
    path = Path(path)
    for name in names:
        meta_file = path / name / "zarr.json"
        if not meta_file.is_file():
            continue
        meta = json.loads(meta_file.read_text())
        grid = meta.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape")
        encoding = meta.get("chunk_key_encoding", {})
        sharded = any(c.get("name") == "sharding_indexed" for c in meta.get("codecs", []))
        if not grid or sharded or encoding.get("name") != "default" or \
                encoding.get("configuration", {}).get("separator", "/") != "/":
            continue
        counts = [int(np.ceil(n / c)) for n, c in zip(meta["shape"], grid, strict=True)]
        expected = int(np.prod(counts))
        present = {str(f.relative_to(path / name / "c")) for f in (path / name / "c").rglob("*") if f.is_file()} \
            if (path / name / "c").is_dir() else set()
        if len(present) >= expected:
            continue
        for flat in range(expected):
            key = "/".join(map(str, np.unravel_index(flat, counts)))
            if key not in present:
                break
        index = [int(k) for k in key.split("/")]
        detail = ""
        if meta.get("dimension_names", [None])[0] == "time" and "time" in ds.coords:
            t0 = index[0] * grid[0]
            times = ds["time"].values[t0:t0 + grid[0]]
            detail = f" (times {pd.Timestamp(times[0]).isoformat()} to {pd.Timestamp(times[-1]).isoformat()})"
        raise WeatherDataError(
            f"{what}: variable '{name}' is missing {expected - len(present)} of its {expected} chunk files, "
            f"e.g. '{name}/c/{key}'{detail}: missing chunks read as the fill value "
            f"{meta.get('fill_value')!r}, so the store is incomplete"
        )


def _for_reduction(path: Path, ds: xr.Dataset, names: list[str], target_bytes: int = 32 << 20) -> xr.Dataset:
    """``ds`` reopened with dask chunks of whole store chunks along time, about ``target_bytes`` each: a
    reduction then costs one task per few megabytes instead of one per store chunk (3x faster here)."""
    native = [ds[n].encoding.get("preferred_chunks", {}).get("time") for n in names]
    if not names or any(c is None for c in native) or len(set(native)) != 1:
        return ds
    step = max(ds[n].dtype.itemsize * ds.sizes["lat"] * ds.sizes["lon"] for n in names)
    factor = max(1, target_bytes // max(native[0] * step, 1))
    return xr.open_zarr(path, consolidated=True, chunks={"time": int(native[0] * factor)})


_CHECKED: set[tuple] = set()  # variables whose values passed in this process, keyed by store path and their files


def open_canonical(path: str | Path, variables: list[str] | None = None, check_values: bool = True) -> xr.Dataset:
    """Open a canonical store lazily (dask), check its layout and, with ``check_values``, its values.

    The value check (:func:`carbonsync.data.validation.check_values`: no NaN or inf, physical ranges,
    plus every chunk file present) reads each variable once through dask, chunk by chunk; a variable whose
    files (names, sizes, modification times) are unchanged since it passed in this process is not read
    again, so the stages of one ``carbonsync run`` check each variable once. Raises WeatherDataError naming the
    variable, time and value.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"canonical store '{path}' does not exist (run `carbonsync prepare` first)")
    ds = xr.open_zarr(path, consolidated=True)
    what = f"store '{path}'"
    validate_weather(ds, variables, check_values=False, what=what)
    if check_values:
        names = list(variables) if variables is not None else [str(v) for v in ds.data_vars]
        root = str(path.resolve())
        keys = {name: (root, name, _chunk_files(path, [name])) for name in names}
        todo = [name for name in names if keys[name] not in _CHECKED]
        if todo:
            check_chunks(ds, path, todo, what)
            check_weather_values(_for_reduction(path, ds, todo), todo, what, store=path)
            _CHECKED.update(keys[name] for name in todo)
    return ds


def open_zone_truth(path: str | Path, variables: list[str] | None = None) -> xr.Dataset:
    """Open ``zone_truth.zarr`` (zone products ``(time, zone)``) lazily and check its values: every variable
    of ``variables`` (default: all) present, dims ``(time, zone)``, no NaN or inf, within ``ZONE_TRUTH_RANGES``.
    Raises WeatherDataError naming the variable, time, zone and value."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"zone truth '{path}' does not exist (written by `carbonsync sample-world` or `prepare`)")
    ds = xr.open_zarr(path, consolidated=True)
    what = f"zone truth '{path}'"
    names = list(variables) if variables is not None else [str(v) for v in ds.data_vars]
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise WeatherDataError(f"{what} lacks {missing}; it has {sorted(map(str, ds.data_vars))}")
    for name in names:
        if tuple(ds[name].dims) != ZONE_TRUTH_DIMS:
            raise WeatherDataError(f"{what}: variable '{name}' has dims {tuple(ds[name].dims)}, expected {ZONE_TRUTH_DIMS}")
    check_times(ds["time"], what)
    check_chunks(ds, path, names, what)
    check_weather_values(ds, names, what, store=path, ranges=ZONE_TRUTH_RANGES)
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
