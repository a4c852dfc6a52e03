"""Reader API for schedulers: the newest committed forecast for some zones and a time window, in one call.

    from carbonsync.forecast.reader import latest_forecast
    fc = latest_forecast("outputs/main/forecast.zarr", ["iberia", "nordics"], "2020-11-20", "2020-11-22")
    fc["renewable_share"]          # (time, zone), hourly, the newest init time covering the window
    fc.attrs["snapshot_id"]        # the Icechunk snapshot it came from: pin it to re-read exactly this
    latest_forecast(store, ["iberia"], "2020-11-20", "2020-11-22", snapshot=fc.attrs["snapshot_id"])

The store is an Icechunk repository (:mod:`carbonsync.forecast.store`; written by
:mod:`carbonsync.forecast.export`, one commit per export batch). A reader reads one snapshot: by default the
tip of branch ``main`` at the time of the call, or a named one (``snapshot=`` a tag or a snapshot id), so a
scheduler can pin the forecast it planned on. A snapshot never changes, so a reader polling during an export
sees each new batch of init times appear complete or not at all, and never a chunk of an unfinished write.

Per store (and pinned snapshot) one :class:`ForecastReader` is cached (:func:`reader_for`). Its metadata (init
times, lead times, zones, array handles) is parsed once per snapshot; a call costs one look-up of ``main``'s
tip (skipped for a pinned snapshot) plus one chunk read per product, issued together on the readers' own
event loop (Icechunk serves them concurrently), and zone chunks already read are kept in a small in-memory
cache keyed by snapshot id (snapshots are immutable, so it cannot go stale; bytes bounded by
``cache_bytes``; figures in ``benchmarks/export_read.py``).

The same data through xarray (lazy, any group)::

    import icechunk, xarray as xr
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage("outputs/main/forecast.zarr"))
    session = repo.readonly_session("main")          # or tag="...", or snapshot_id="..."
    zones = xr.open_zarr(session.store, group="zones", consolidated=False)

which is what :func:`open_forecast` does.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.api.asynchronous as zarr_async
import zarr.errors

from carbonsync.core.logs import get_logger
from carbonsync.forecast.store import (
    BRANCH,
    GROUPS,
    ZONE_PRODUCTS,
    ForecastStoreError,
    Location,
    StoreLocation,
    first_line,
    forecast_root,
    open_repository,
    resolve_snapshot,
)

__all__ = ["ForecastReader", "Snapshot", "committed_init_times", "latest_forecast", "latest_zone_forecast",
           "open_forecast", "reader_for"]

log = get_logger(__name__)

_STATIC_COORDS = ("lead_time", "lat", "lon", "zone", "quantile", "zone_name")
_DROP_ATTRS = ("_FillValue", "coordinates")
CACHE_BYTES = 32 * 2**20


@dataclass(frozen=True)
class _GroupView:
    arrays: dict[str, zarr.AsyncArray]   # zarr arrays with an init_time dim, by name
    attrs: dict[str, dict]             # their CF attributes
    coords: dict[str, xr.Variable]     # decoded static coordinates (lead_time, lat, lon, zone, ...)
    lead: pd.TimedeltaIndex
    zone_pos: dict[str, int]


@dataclass(frozen=True)
class Snapshot:
    """One Icechunk snapshot of a store: its init times and the arrays to read them from."""

    id: str
    inits: pd.DatetimeIndex
    attrs: dict
    groups: dict[str, _GroupView]


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_THREAD: threading.Thread | None = None
_LOOP_PID = 0
_LOOP_LOCK = threading.Lock()


@atexit.register
def _stop_loop() -> None:
    """Drop the cached readers (their Icechunk sessions and stores) and stop the readers' loop thread while the
    interpreter is still whole, before it (and Icechunk's runtime) shut down."""
    global _LOOP, _LOOP_THREAD
    with _READERS_LOCK:
        _READERS.clear()
    gc.collect()
    with _LOOP_LOCK:
        loop, thread = _LOOP, _LOOP_THREAD
        _LOOP = _LOOP_THREAD = None   # a read after this starts a new loop
    if loop is not None and thread is not None and thread.is_alive() and os.getpid() == _LOOP_PID:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def _run(coro: Coroutine):
    """Run ``coro`` on the readers' own event loop (a daemon thread, one per process) and wait for it: the
    chunk reads of one call are issued together there, as Icechunk serves them concurrently."""
    global _LOOP, _LOOP_THREAD, _LOOP_PID
    with _LOOP_LOCK:
        if _LOOP is None or os.getpid() != _LOOP_PID:   # (a forked child has no loop thread)
            _LOOP, _LOOP_PID = asyncio.new_event_loop(), os.getpid()
            _LOOP_THREAD = threading.Thread(target=_LOOP.run_forever, name="carbonsync-forecast-reader", daemon=True)
            _LOOP_THREAD.start()
        loop = _LOOP
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def _read_many(arrays: Sequence[zarr.AsyncArray], selections: Sequence[tuple]) -> list[np.ndarray]:
    """Orthogonal selections of several zarr arrays, read concurrently."""
    async def gather():
        return await asyncio.gather(*(a.get_orthogonal_selection(s) for a, s in zip(arrays, selections, strict=True)))

    return [np.asarray(v) for v in _run(gather())]


def _open_hierarchy(store: icechunk.IcechunkStore) -> tuple[dict, dict[str, dict[str, zarr.AsyncArray]]] | None:
    """The root attributes and every array of each group (metadata read once), or ``None`` when the snapshot
    holds no forecast (a repository no export has committed to yet)."""
    async def walk():
        try:
            root = await zarr_async.open_group(store=store, mode="r")
        except zarr.errors.GroupNotFoundError:
            return None
        groups = {}
        for name in GROUPS:
            try:
                group = await root.getitem(name)
            except KeyError:
                return None
            groups[name] = {key: arr async for key, arr in group.arrays()}
        return root.attrs, groups

    return _run(walk())


def _decode(arrays: dict[str, zarr.AsyncArray]) -> dict[str, xr.Variable]:
    """Whole (small) zarr arrays, read together, as CF-decoded xarray variables."""
    names = list(arrays)
    values = _read_many([arrays[n] for n in names], [(slice(None),) * arrays[n].ndim for n in names])
    raw = xr.Dataset({n: xr.Variable(tuple(arrays[n].metadata.dimension_names), v, attrs=dict(arrays[n].attrs))
                      for n, v in zip(names, values, strict=True)})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=xr.SerializationWarning)
        decoded = xr.decode_cf(raw, decode_coords=False)
    return {n: decoded[n].variable.load() for n in arrays}


def _load(repo: icechunk.Repository, snapshot_id: str, where: str) -> Snapshot:
    found = _open_hierarchy(repo.readonly_session(snapshot_id=snapshot_id).store)
    if found is None:
        raise ForecastStoreError(f"forecast store '{where}' has no committed forecast yet (snapshot {snapshot_id} "
                                 f"has no {' / '.join(GROUPS)} groups)")
    groups: dict[str, _GroupView] = {}
    init_values = None
    root_attrs, members = found
    for name in GROUPS:
        arrays, static = {}, {}
        for key, arr in members[name].items():
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
    return Snapshot(snapshot_id, init_values, dict(root_attrs), groups)


class _SlabCache:
    """Least-recently-used whole zone slabs ``(snapshot id, product, init index) -> array``, bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.nbytes = max_bytes, 0
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes:
            return
        value.setflags(write=False)
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.nbytes += value.nbytes
            while self.nbytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.nbytes -= old.nbytes


class ForecastReader:
    """Cached reads of one forecast store (at the tip of ``main``, or pinned to ``snapshot``: a tag or a
    snapshot id); :func:`latest_forecast` keeps one per store. ``cache_bytes=0`` reads every chunk anew."""

    def __init__(self, store: Location, snapshot: str | None = None, cache_bytes: int = CACHE_BYTES):
        self.location = StoreLocation.parse(store)
        self.path = str(self.location)
        self.pinned = snapshot
        self._repo: icechunk.Repository | None = None
        self._pinned_id: str | None = None
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._cache = _SlabCache(cache_bytes) if cache_bytes > 0 else None

    def _repository(self) -> icechunk.Repository:
        if self._repo is None:
            self._repo = open_repository(self.location)
        return self._repo

    def snapshot_id(self) -> str:
        """The id of the snapshot a call reads now: the tip of ``main``, or the pinned one."""
        repo = self._repository()
        if self.pinned is None:
            try:
                return repo.lookup_branch(BRANCH)
            except icechunk.IcechunkError as err:
                raise ForecastStoreError(f"forecast store '{self.path}': cannot read branch '{BRANCH}': "
                                         f"{first_line(err)}") from None
        if self._pinned_id is None:
            self._pinned_id = resolve_snapshot(repo, self.pinned, f"'{self.path}'")
        return self._pinned_id

    def snapshot(self) -> Snapshot:
        """The snapshot a call reads now (its metadata parsed once per snapshot)."""
        snapshot_id = self.snapshot_id()
        snap = self._snapshot
        if snap is not None and snap.id == snapshot_id:
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is None or snap.id != snapshot_id:
                snap = _load(self._repository(), snapshot_id, self.path)
                self._snapshot = snap
        return snap

    def committed_init_times(self) -> pd.DatetimeIndex:
        return self.snapshot().inits

    def _read(self, snap: Snapshot, group: str, names: Sequence[str], i: int, pick: dict) -> list[np.ndarray]:
        """Products ``names`` at init index ``i``, other dims selected by ``pick``: zone slabs through the
        cache (misses read together), everything else read directly, together."""
        view = snap.groups[group]
        arrays = [view.arrays[n] for n in names]
        if self._cache is None or group != "zones":
            return _read_many(arrays, [tuple(pick.get(d, slice(None)) for d in a.metadata.dimension_names)
                                       for a in arrays])
        slabs = {n: self._cache.get((snap.id, n, i)) for n in names}
        missing = [n for n in names if slabs[n] is None]
        if missing:
            read = _read_many([view.arrays[n] for n in missing],
                              [(i,) + (slice(None),) * (view.arrays[n].ndim - 1) for n in missing])
            for n, slab in zip(missing, read, strict=True):
                self._cache.put((snap.id, n, i), slab)
                slabs[n] = slab
        out = []
        for name, arr in zip(names, arrays, strict=True):
            values = slabs[name]
            for axis, sel in enumerate(pick.get(d, slice(None)) for d in arr.metadata.dimension_names[1:]):
                if not (isinstance(sel, slice) and sel == slice(None)):   # orthogonal: one axis at a time
                    values = values[(slice(None),) * axis + (sel,)]
            out.append(np.array(values))
        return out

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
        data, used = {}, {"time"}
        for name, values in zip(products, self._read(snap, group, products, i, pick), strict=True):
            arr = view.arrays[name]
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
        return xr.Dataset(data, coords=coords, attrs={"init_time": str(pd.Timestamp(init)), "store": self.path,
                                                      "snapshot_id": snap.id})


_READERS: dict[tuple[str, str | None], ForecastReader] = {}
_READERS_LOCK = threading.Lock()


def reader_for(store: Location, snapshot: str | None = None) -> ForecastReader:
    """The process-wide cached reader of ``store`` (at ``main``'s tip, or pinned to ``snapshot``). Two names
    of one local directory (symlinks) share a reader."""
    key = (StoreLocation.parse(store).key(), snapshot)
    with _READERS_LOCK:
        if key not in _READERS:
            _READERS[key] = ForecastReader(store, snapshot)
        return _READERS[key]


def latest_forecast(store: Location, zones: Sequence[str] | None = None, start: str | pd.Timestamp | None = None,
                    end: str | pd.Timestamp | None = None, products: Sequence[str] | None = None,
                    group: str = "zones", snapshot: str | None = None) -> xr.Dataset:
    """The newest committed forecast covering ``[start, end]`` for ``zones``, loaded, as ``(time, zone)``.

    The init time used is the latest one not after ``start`` whose forecast reaches ``end`` (either may be
    ``None``); ``time`` is hourly valid time within ``[start, end]``, ``attrs["init_time"]`` says which
    forecast it is and ``attrs["snapshot_id"]`` which Icechunk snapshot. ``products`` default to the zone
    products (wind and solar CF, renewable share, carbon intensity); quantile products (``<product>_quantile``)
    come as ``(quantile, time, zone)``. With ``group="gridded"`` the same selection returns global fields
    ``(time, lat, lon)`` (``zones`` is ignored). ``snapshot`` (a tag or a snapshot id) reads that snapshot
    instead of the tip of ``main``. Raises :class:`ForecastStoreError` naming unknown zones or products, or
    the init times when none covers the window.
    """
    return reader_for(store, snapshot).latest(zones, start, end, products, group)


def latest_zone_forecast(store: Location, zones: Sequence[str] | None = None,
                         start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                         products: Sequence[str] = ZONE_PRODUCTS, snapshot: str | None = None) -> xr.Dataset:
    """The latest forecast of ``products`` for ``zones`` over ``[start, end]`` as ``(time, zone)``
    (:func:`latest_forecast` with the zone products)."""
    return latest_forecast(store, zones, start, end, products=products, snapshot=snapshot)


def open_forecast(store: Location, group: str = "zones", snapshot: str | None = None) -> xr.Dataset:
    """One group (``zones`` or ``gridded``) of a forecast store, lazily, through xarray: the init times of the
    tip of ``main`` (or of ``snapshot``, a tag or a snapshot id), every one complete."""
    if group not in GROUPS:
        raise ForecastStoreError(f"forecast store group '{group}' is not 'zones' or 'gridded'")
    repo = open_repository(store)
    session = repo.readonly_session(snapshot_id=resolve_snapshot(repo, snapshot, f"'{store}'"))
    if forecast_root(session) is None:
        raise ForecastStoreError(f"forecast store '{store}' has no committed forecast yet")
    return xr.open_zarr(session.store, group=group, consolidated=False)


def committed_init_times(store: Location, snapshot: str | None = None) -> list[pd.Timestamp]:
    """The init times of the tip of ``main`` (or of ``snapshot``): every one committed and complete."""
    return list(ForecastReader(store, snapshot, cache_bytes=0).committed_init_times())
