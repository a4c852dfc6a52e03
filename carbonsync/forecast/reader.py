"""Reader API for schedulers: the newest committed forecast for some zones and a time window, in one call.

    from carbonsync.forecast.reader import latest_forecast
    fc = latest_forecast("outputs/main/forecast.zarr", ["iberia", "nordics"], "2020-11-20", "2020-11-22")
    fc["renewable_share"]          # (time, zone), hourly, the newest init time covering the window

Only committed init times are visible (see :mod:`carbonsync.forecast.export` for the commit protocol), so a
reader polling during an export sees each new init time appear complete or not at all. The store's metadata
(committed init times, lead times, zones, array handles) is parsed once per commit and cached per store: each
commit replaces the root ``zarr.json`` by rename, so its (inode, mtime, size) identifies the commit, and a
call costs one ``stat`` plus one chunk read per product (figures in ``benchmarks/export_read.py``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.forecast.export import GROUPS, ZONE_PRODUCTS, ForecastStoreError

_STATIC_COORDS = ("lead_time", "lat", "lon", "zone", "quantile", "zone_name")
_DROP_ATTRS = ("_FillValue", "coordinates")


@dataclass(frozen=True)
class _GroupView:
    arrays: dict[str, object]          # zarr arrays with an init_time dim, by name
    attrs: dict[str, dict]             # their CF attributes
    coords: dict[str, xr.Variable]     # decoded static coordinates (lead_time, lat, lon, zone, ...)
    lead: pd.TimedeltaIndex
    zone_pos: dict[str, int]


@dataclass(frozen=True)
class Snapshot:
    """One commit of a store: its committed init times and the arrays to read them from."""

    stamp: tuple[int, int, int]
    inits: pd.DatetimeIndex
    attrs: dict
    groups: dict[str, _GroupView]


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st = os.stat(path / "zarr.json")
    except FileNotFoundError:
        raise ForecastStoreError(f"forecast store '{path}' does not exist (run `carbonsync forecast` or "
                                 "`carbonsync export`)") from None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _decode(arrays: dict[str, object]) -> dict[str, xr.Variable]:
    """Whole (small) zarr arrays, read in one trip, as CF-decoded xarray variables."""
    names = list(arrays)
    values = _read_many([arrays[n] for n in names], [(slice(None),) * arrays[n].ndim for n in names])
    raw = xr.Dataset({n: xr.Variable(tuple(arrays[n].metadata.dimension_names), v, attrs=dict(arrays[n].attrs))
                      for n, v in zip(names, values, strict=True)})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=xr.SerializationWarning)
        decoded = xr.decode_cf(raw, decode_coords=False)
    return {n: decoded[n].variable.load() for n in names}


def _load(path: Path, stamp: tuple[int, int, int]) -> Snapshot:
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        try:
            root = zarr.open_group(str(path), mode="r", use_consolidated=True)
        except (ValueError, FileNotFoundError) as err:
            raise ForecastStoreError(f"'{path}' is not a consolidated forecast store: {err}") from None
    attrs = root.attrs.asdict()
    groups: dict[str, _GroupView] = {}
    init_values = None
    for name in GROUPS:
        if name not in root:
            raise ForecastStoreError(f"forecast store '{path}' has no '{name}' group")
        group = root[name]
        arrays, static = {}, {}
        for key, arr in group.arrays():
            dims = tuple(arr.metadata.dimension_names or ())
            if "init_time" in dims and key not in ("init_time", "valid_time"):
                arrays[key] = arr
            elif key in _STATIC_COORDS or (key == "init_time" and init_values is None):
                static[key] = arr
        coords = _decode(static)
        if init_values is None:
            init_values = pd.DatetimeIndex(coords.pop("init_time").values)
        zone_pos = {str(z): i for i, z in enumerate(coords["zone"].values)} if "zone" in coords else {}
        attrs_of = {k: {a: v for a, v in arr.attrs.items() if a not in _DROP_ATTRS} for k, arr in arrays.items()}
        groups[name] = _GroupView(arrays, attrs_of, coords, pd.TimedeltaIndex(coords["lead_time"].values), zone_pos)
    committed = attrs.get("committed_init_times")
    if committed is None:  # a store written whole, before append-only exports: everything in it is complete
        inits = init_values
    else:
        inits = pd.DatetimeIndex([pd.Timestamp(t) for t in committed])
        if len(inits) > len(init_values) or not np.array_equal(inits.values, init_values.values[: len(inits)]):
            raise ForecastStoreError(f"forecast store '{path}': committed_init_times do not match its init_time "
                                     "array (the store is damaged)")
    return Snapshot(stamp, inits, attrs, groups)


def _read_many(arrays: list, selections: list[tuple]) -> list[np.ndarray]:
    """Orthogonal selections of several zarr arrays in one trip to zarr's event loop (concurrent chunk reads)."""
    from zarr.core.sync import sync

    async def gather():
        reads = (a.async_array.get_orthogonal_selection(s) for a, s in zip(arrays, selections, strict=True))
        return await asyncio.gather(*reads)

    return [np.asarray(v) for v in sync(gather())]


class ForecastReader:
    """Cached reads of one forecast store; :func:`latest_forecast` keeps one per store path."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        """The store's current commit (re-read only when the root ``zarr.json`` was replaced)."""
        stamp = _stamp(self.path)
        snap = self._snapshot
        if snap is not None and snap.stamp == stamp:
            return snap
        with self._lock:
            for _ in range(5):  # a commit landing while we read: read again
                snap = _load(self.path, stamp)
                after = _stamp(self.path)
                if after == stamp:
                    break
                stamp = after
            self._snapshot = snap
        return snap

    def committed_init_times(self) -> pd.DatetimeIndex:
        return self.snapshot().inits

    def latest(self, zones: Sequence[str] | None = None, start: str | pd.Timestamp | None = None,
               end: str | pd.Timestamp | None = None, products: Sequence[str] | None = None,
               group: str = "zones") -> xr.Dataset:
        """See :func:`latest_forecast`."""
        if group not in GROUPS:
            raise ForecastStoreError(f"forecast store group '{group}' is not 'zones' or 'gridded'")
        snap = self.snapshot()
        view = snap.groups[group]
        products = list(products) if products is not None else (
            list(ZONE_PRODUCTS) if group == "zones" else sorted(view.arrays))
        unknown = [p for p in products if p not in view.arrays]
        if unknown:
            raise ForecastStoreError(f"'{self.path}' group '{group}' has no {unknown}; it has {sorted(view.arrays)}")
        zone_idx = None
        if zones is not None and group == "zones":
            zones = [str(z) for z in zones]
            missing = [z for z in zones if z not in view.zone_pos]
            if missing:
                raise ForecastStoreError(
                    f"zones {missing} are not in forecast store '{self.path}'; it has {list(view.zone_pos)}")
            zone_idx = np.array([view.zone_pos[z] for z in zones], dtype=np.int64)
        t0 = pd.Timestamp(start) if start is not None else None
        t1 = pd.Timestamp(end) if end is not None else None
        if t0 is not None and t1 is not None and t1 < t0:
            raise ForecastStoreError(f"window end {t1} is before its start {t0}")
        inits, lead = snap.inits.values, view.lead.values
        t0 = t0.to_datetime64() if t0 is not None else None
        t1 = t1.to_datetime64() if t1 is not None else None
        ok = np.ones(len(inits), bool)
        if t0 is not None:
            ok &= inits <= t0
        if t1 is not None and len(lead):
            ok &= inits + lead[-1] >= t1
        if not ok.any():
            raise ForecastStoreError(f"no committed forecast in '{self.path}' covers {start} to {end}; "
                                     f"init times {[str(t) for t in snap.inits]}")
        i = int(np.flatnonzero(ok)[-1])
        init = inits[i]
        valid = init + lead
        lo = int(valid.searchsorted(t0, "left")) if t0 is not None else 0
        hi = int(valid.searchsorted(t1, "right")) if t1 is not None else len(valid)
        if zone_idx is not None and len(zone_idx) and np.array_equal(zone_idx, np.arange(zone_idx[0],
                                                                                         zone_idx[0] + len(zone_idx))):
            zone_sel: slice | np.ndarray = slice(int(zone_idx[0]), int(zone_idx[0]) + len(zone_idx))
        else:
            zone_sel = zone_idx if zone_idx is not None else slice(None)
        pick = {"init_time": i, "lead_time": slice(lo, hi), "zone": zone_sel}
        arrays = [view.arrays[name] for name in products]
        selections = [tuple(pick.get(d, slice(None)) for d in arr.metadata.dimension_names) for arr in arrays]
        data, used = {}, {"time"}
        for name, arr, values in zip(products, arrays, _read_many(arrays, selections), strict=True):
            dims = tuple("time" if d == "lead_time" else d for d in arr.metadata.dimension_names if d != "init_time")
            used.update(dims)
            data[name] = (dims, values, view.attrs[name])
        coords: dict = {"time": ("time", valid[lo:hi])}
        for name, var in view.coords.items():
            if name == "lead_time" or not set(var.dims) <= used:
                continue
            if "zone" in var.dims and zone_idx is not None:
                var = var[{"zone": zone_sel}]
            coords[name] = var
        return xr.Dataset(data, coords=coords, attrs={"init_time": str(pd.Timestamp(init)), "store": str(self.path)})


_READERS: dict[str, ForecastReader] = {}
_READERS_LOCK = threading.Lock()


def reader_for(store: str | Path) -> ForecastReader:
    """The process-wide cached reader of ``store``."""
    key = os.path.realpath(store)
    with _READERS_LOCK:
        if key not in _READERS:
            _READERS[key] = ForecastReader(store)
        return _READERS[key]


def latest_forecast(store: str | Path, zones: Sequence[str] | None = None, start: str | pd.Timestamp | None = None,
                    end: str | pd.Timestamp | None = None, products: Sequence[str] | None = None,
                    group: str = "zones") -> xr.Dataset:
    """The newest committed forecast covering ``[start, end]`` for ``zones``, loaded, as ``(time, zone)``.

    The init time used is the latest one not after ``start`` whose forecast reaches ``end`` (either may be
    ``None``); ``time`` is hourly valid time within ``[start, end]`` and ``attrs["init_time"]`` says which
    forecast it is. ``products`` default to the zone products (wind and solar CF, renewable share, carbon
    intensity); quantile products (``<product>_quantile``) come as ``(quantile, time, zone)``. With
    ``group="gridded"`` the same selection returns global fields ``(time, lat, lon)`` (``zones`` is ignored).
    Raises :class:`ForecastStoreError` naming unknown zones or products, or the init times when none covers
    the window.
    """
    return reader_for(store).latest(zones, start, end, products, group)
