"""Writing the forecast store that schedulers read: an append-only export on Icechunk that a reader, a crash or a
second exporter cannot tear.

Layout (a Zarr v3 hierarchy inside an Icechunk repository, see :mod:`carbonsync.forecast.store`): group
``gridded`` holds ``<var>(init_time, lead_time, lat, lon)``, group ``zones`` holds
``<product>(init_time, lead_time, zone)`` and ``<product>_quantile(init_time, quantile, lead_time, zone)``.
``valid_time = init_time + lead_time`` is a coordinate of both. Times are CF-encoded (integer minutes since
1970-01-01, lead times in minutes), variables carry ``units``/``long_name``, and the root and group attributes
carry provenance (package SHA-256s, data source, code version and commit).

**Commits.** An export runs ``forecast_fn`` for ``workers`` init times at a time (dask's threaded scheduler) and
writes each batch in one Icechunk writable session on branch ``main``: the arrays of both groups grow along
``init_time``, every chunk of the new init times is written, then the session is committed, which makes the
batch visible in one step (one snapshot per batch; commit metadata lists its init times). Readers open a
snapshot, so they see every init time of it complete and nothing else; a killed export leaves only
unreferenced chunk objects that no snapshot points to (reclaimable with ``Repository.garbage_collect``), and
the next export starts from the last commit and skips the init times already there. ``replace=True`` (the
``forecast`` stage) commits its batches on a private branch ``replace-<id>`` whose first commit clears the old
content, and moves ``main`` to its last commit at the end (``reset_branch`` guarded by ``main``'s tip when it
started): readers see the old store until then, and a failed or killed replace leaves ``main`` as it was.
History is kept: earlier snapshots stay readable by id or tag (:func:`carbonsync.forecast.store.tag_snapshot`).

**One exporter at a time**, detected two ways. (1) For a local store, an advisory ``flock`` on
``.<name>.lock`` beside the store's resolved path (symlinks resolved, so two names of one directory share
it), held for the whole export: a second exporter fails at once. Icechunk itself warns that commits on a
local filesystem are not safe against concurrent committers, hence the lock. (2) On every storage, Icechunk's
optimistic concurrency: a commit whose branch moved since its session began raises ``ConflictError``, and
each batch checks that its session starts from this export's previous commit; both become a
:class:`ForecastStoreError` naming the store and the uncommitted batch. Object stores have no lock, so there
(2) is what catches a second exporter, at its next commit; nothing it wrote becomes visible.

**Chunking** (measured in ``benchmarks/export_read.py``). ``zones/<product>``: ``(init_time=1, lead_time=all,
zone=up to 64)``. A scheduler asks for the newest init time, an hour window and a few zones: that is one
small chunk (a few KB) per product whatever the window or zone set, where ``zone=1`` costs one object per zone
read. The placement reads every site's zone, so all zones share a chunk. ``gridded/<var>``: ``(1, 24 lead
hours, lat, lon)``, a day of global fields per chunk. The 1-D ``init_time`` coordinate uses chunks of 512 so
opening the store reads one chunk, not one per init time.

Reading: :mod:`carbonsync.forecast.reader` (``latest_forecast``, ``open_forecast``), or plain xarray on an
Icechunk session (:mod:`carbonsync.forecast.store` shows how).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dask
import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from carbonsync import __version__
from carbonsync.core.fs import atomic_path
from carbonsync.core.logs import Progress, get_logger
from carbonsync.forecast.store import (
    BRANCH,
    GROUPS,
    LEAD_UNITS,
    STORE_FORMAT,
    TIME_UNITS,
    ZONE_PRODUCTS,
    ForecastStoreError,
    Location,
    StoreLocation,
    exists,
    first_line,
    forecast_root,
    open_repository,
)

__all__ = ["ExportReport", "ForecastStoreError", "export_forecasts", "prepare_forecast", "write_forecast_store",
           "ZONE_PRODUCTS", "GROUPS"]

log = get_logger(__name__)

INIT_TIME_CHUNK = 512
ZONE_CHUNK = 64
LEAD_CHUNK_GRIDDED = 24
REPLACE_BRANCH_PREFIX = "replace-"
_EPOCH = np.datetime64("1970-01-01T00:00", "m")
_PROVENANCE_KEYS_CHECKED_ON_APPEND = ("data_source", "grid")

ForecastFn = Callable[[pd.Timestamp], tuple[xr.Dataset, xr.Dataset]]


def to_lead_time(ds: xr.Dataset, init_time: pd.Timestamp) -> xr.Dataset:
    """Replace ``time`` with ``lead_time`` (timedelta) and add ``init_time`` as a length-1 dim."""
    lead = pd.DatetimeIndex(ds.time.values) - init_time
    out = ds.rename(time="lead_time").assign_coords(lead_time=lead.values)
    return out.expand_dims(init_time=[np.datetime64(init_time, "ns")])


def _with_valid_time(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.assign_coords(valid_time=ds.init_time + ds.lead_time)
    ds["init_time"].attrs.update(long_name="Forecast initial time (UTC)", standard_name="forecast_reference_time")
    ds["lead_time"].attrs.update(long_name="Forecast lead time", standard_name="forecast_period")
    ds["valid_time"].attrs.update(long_name="Valid time = init_time + lead_time (UTC)", standard_name="time")
    return ds


def check_zone_products(zones: xr.Dataset) -> None:
    """Every product present and finite; shares and capacity factors in [0, 1], intensities >= 0."""
    for name in ZONE_PRODUCTS:
        if name not in zones:
            raise ForecastStoreError(f"zone forecasts lack '{name}'")
        values = zones[name].values
        if not np.isfinite(values).all():
            raise ForecastStoreError(f"zone forecast '{name}' has {int((~np.isfinite(values)).sum())} non-finite values")
        upper = np.inf if name == "carbon_intensity" else 1.0
        if values.min() < 0 or values.max() > upper:
            raise ForecastStoreError(
                f"zone forecast '{name}' spans [{values.min():.4g}, {values.max():.4g}], outside [0, {upper}]")


def check_gridded(gridded: xr.Dataset) -> None:
    """Every gridded field finite (a reader must never see a NaN-filled forecast)."""
    for name in gridded.data_vars:
        bad = int((~np.isfinite(gridded[name].values)).sum())
        if bad:
            raise ForecastStoreError(f"gridded forecast '{name}' has {bad} non-finite values")


def _describe(ds: xr.Dataset) -> str:
    """One line per variable: name(dims) [units], for the store's root attributes."""
    return "; ".join(f"{n}({', '.join(map(str, ds[n].dims))}) [{ds[n].attrs.get('units', '')}]" for n in ds.data_vars)


def code_commit() -> str:
    """The git commit of the carbonsync source tree (``+dirty`` with local changes), or ``unknown``."""
    repo = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def prepare_forecast(init_time: pd.Timestamp, gridded: xr.Dataset, zones: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """One forecast ``(gridded(time, lat, lon), zones(time, zone[, quantile]))`` as store slabs with a length-1
    ``init_time`` dim and ``valid_time``, checked (zone products in range, everything finite)."""
    init_time = pd.Timestamp(init_time)
    if init_time != init_time.floor("min"):
        raise ForecastStoreError(f"initial time {init_time} is not on a whole minute")
    g = _with_valid_time(to_lead_time(gridded, init_time))
    z = _with_valid_time(to_lead_time(zones, init_time))
    try:
        check_zone_products(z)
        check_gridded(g)
    except ForecastStoreError as err:
        raise ForecastStoreError(f"forecast from {init_time}: {err}") from None
    if not np.array_equal(g.lead_time.values, z.lead_time.values):
        raise ForecastStoreError(f"forecast from {init_time}: gridded and zone lead times differ")
    return g, z


# --------------------------------------------------------------------------------------------------------------
# the store: creation, batches, commits


def _encoding(ds: xr.Dataset, zone_chunk: int, lead_chunk: int) -> dict[str, dict]:
    sizes = ds.sizes
    chunk_of = {"init_time": 1, "lead_time": sizes["lead_time"], "zone": min(zone_chunk, sizes.get("zone", 1)),
                "quantile": sizes.get("quantile", 1), "lat": sizes.get("lat", 1), "lon": sizes.get("lon", 1)}
    if "lat" in sizes:
        chunk_of["lead_time"] = min(lead_chunk, sizes["lead_time"])
    enc = {name: {"chunks": tuple(chunk_of[d] for d in ds[name].dims)} for name in ds.data_vars}
    enc["init_time"] = {"units": TIME_UNITS, "dtype": "int64", "chunks": (INIT_TIME_CHUNK,)}
    enc["valid_time"] = {"units": TIME_UNITS, "dtype": "int64", "chunks": (1, sizes["lead_time"])}
    enc["lead_time"] = {"units": LEAD_UNITS, "dtype": "int64"}
    return enc


def _create(store: icechunk.IcechunkStore, gridded: xr.Dataset, zones: xr.Dataset, attrs: dict[str, str],
            zone_chunk: int, lead_chunk: int) -> None:
    """Replace everything in ``store`` (a writable session's) by an empty forecast store (no init times) with
    the schema of one prepared forecast."""
    gridded, zones = gridded.isel(init_time=slice(0, 0)), zones.isel(init_time=slice(0, 0))
    layout = {
        "store_format": STORE_FORMAT,
        "layout_gridded": _describe(gridded), "layout_zones": _describe(zones),
        "how_to_read": "carbonsync.forecast.reader.latest_forecast(store, zones, start, end), or "
                       "xarray.open_zarr(icechunk.Repository.open(storage).readonly_session('main').store, "
                       "group='zones'|'gridded', consolidated=False); valid_time = init_time + lead_time",
        "chunking": f"zones (init_time=1, lead_time=all, zone<={zone_chunk}); "
                    f"gridded (init_time=1, lead_time={lead_chunk}, lat=all, lon=all)",
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.open_group(store, mode="w", zarr_format=3)   # clears the old content (replace)
        xr.Dataset(attrs={**attrs, **layout}).to_zarr(store, mode="a", consolidated=False, zarr_format=3)
        for group, ds, content in (("gridded", gridded, "gridded fields"), ("zones", zones, "zone products")):
            strings = {k: ds[k].astype(object) for k in ds.coords if ds[k].dtype.kind == "U"}
            ds = ds.assign_coords(strings).assign_attrs({**attrs, "content": content})
            for name in ds.variables:
                ds[name].encoding = {}
            ds.to_zarr(store, group=group, mode="a", consolidated=False, zarr_format=3,
                       encoding=_encoding(ds, zone_chunk, lead_chunk))


def _minutes(values: np.ndarray) -> np.ndarray:
    return ((values.astype("datetime64[m]") - _EPOCH) // np.timedelta64(1, "m")).astype(np.int64)


class _Writer:
    """Direct zarr writes of forecast slabs at an ``init_time`` index, into one writable Icechunk session."""

    def __init__(self, session: icechunk.Session, where: str):
        self.session, self.where = session, where
        self.root = zarr.open_group(session.store, mode="r" if session.read_only else "r+")
        self.arrays: dict[tuple[str, str], zarr.Array] = {}
        for group in GROUPS:
            if group not in self.root:
                raise ForecastStoreError(f"forecast store '{where}' has no '{group}' group")
            for name, arr in self.root[group].arrays():
                if "init_time" in (arr.metadata.dimension_names or ()):
                    self.arrays[(group, name)] = arr
        for (group, name), arr in self.arrays.items():
            if name in ("init_time", "valid_time") and arr.attrs.get("units") != TIME_UNITS:
                raise ForecastStoreError(f"'{where}/{group}/{name}' has units '{arr.attrs.get('units')}', expected "
                                         f"'{TIME_UNITS}': not a carbonsync forecast store")

    def static(self) -> dict[str, xr.Dataset]:
        """The coordinates without ``init_time`` (lead times, grid, zones, quantiles), loaded."""
        out = {}
        for group in GROUPS:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=RuntimeWarning)
                ds = xr.open_zarr(self.session.store, group=group, consolidated=False)
            out[group] = ds.drop_vars([v for v in ds.variables if "init_time" in ds[v].dims]).load()
        return out

    def init_times(self) -> list[pd.Timestamp]:
        """The init times in this session's snapshot (every one of them committed and complete)."""
        counts = {arr.shape[0] for arr in self.arrays.values()}
        if len(counts) != 1:
            raise ForecastStoreError(f"forecast store '{self.where}': its arrays hold {sorted(counts)} init times; "
                                     "a snapshot must hold the same number in every array (the store is damaged)")
        minutes = self.arrays[("zones", "init_time")][:]
        return [pd.Timestamp(_EPOCH + np.timedelta64(int(m), "m")) for m in minutes]

    def resize(self, n: int) -> None:
        """Set every init-time array to ``n`` init times."""
        for arr in self.arrays.values():
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))

    def write(self, index: int, gridded: xr.Dataset, zones: xr.Dataset) -> None:
        """Write the chunks of one prepared forecast at ``index``: every init-time variable except the
        ``init_time`` coordinate, whose chunks hold many init times (see :meth:`write_init_times`). Safe to
        run concurrently for different indices: each touches only its own chunks."""
        for (group, name), arr in self.arrays.items():
            if name == "init_time":
                continue
            ds = gridded if group == "gridded" else zones
            values = ds[name].transpose(*arr.metadata.dimension_names).values[0]
            if values.dtype.kind == "M":
                values = _minutes(values)
            arr[index] = values.astype(arr.dtype, copy=False)

    def write_init_times(self, start: int, init_times: Sequence[pd.Timestamp]) -> None:
        """Write ``init_times`` into the ``init_time`` coordinates from index ``start`` (one thread only: a
        chunk of this array holds many init times, so concurrent writes would lose each other's updates)."""
        values = _minutes(np.array([np.datetime64(pd.Timestamp(t), "ns") for t in init_times]))
        for group in GROUPS:
            self.arrays[(group, "init_time")][start:start + len(values)] = values


def check_against(static: dict[str, xr.Dataset], variables: dict[str, set[str]], init_time: pd.Timestamp,
                  gridded: xr.Dataset, zones: xr.Dataset, where: str) -> None:
    """The forecast has exactly the store's variables and the same lead times, grid, zones and quantiles."""
    for group, ds in (("gridded", gridded), ("zones", zones)):
        have = {n for n in ds.variables if "init_time" in ds[n].dims}
        want = variables[group]
        if have != want:
            raise ForecastStoreError(
                f"forecast from {init_time}: {group} variables {sorted(have ^ want)} differ from store '{where}' "
                f"(store has {sorted(want)})")
        for coord in static[group].coords:
            if coord not in ds.coords or not np.array_equal(np.asarray(ds[coord].values),
                                                           np.asarray(static[group][coord].values)):
                raise ForecastStoreError(
                    f"forecast from {init_time}: {group} coordinate '{coord}' differs from store '{where}'")


@contextmanager
def _export_lock(loc: StoreLocation) -> Iterator[None]:
    """For a local store, an advisory lock beside its resolved path, held for the whole export (released if
    the process dies). Object stores have none: there Icechunk's commit conflicts catch a second exporter."""
    if not loc.is_local:
        yield
        return
    real = Path(os.path.realpath(loc.path))
    real.parent.mkdir(parents=True, exist_ok=True)
    lock = real.with_name(f".{real.name}.lock")
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ForecastStoreError(f"another export is writing to '{loc}' (lock '{lock}' is held); "
                                     "one export per store at a time") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class ExportReport:
    """What one export did. ``snapshots`` are the Icechunk snapshot ids it committed, one per batch (on the
    private branch of a replace, which ``main`` then points to); ``snapshot_id`` is ``main``'s tip after it.
    ``repaired_slots`` stays 0: an Icechunk store never holds uncommitted init times (kept for callers)."""

    store: Path | str
    written: list[pd.Timestamp] = field(default_factory=list)
    skipped: list[pd.Timestamp] = field(default_factory=list)
    committed: list[pd.Timestamp] = field(default_factory=list)
    repaired_slots: int = 0
    seconds: float = 0.0
    workers: int = 1
    snapshots: list[str] = field(default_factory=list)
    snapshot_id: str | None = None

    def __str__(self) -> str:
        return (f"{self.store}: wrote {len(self.written)} init times in {self.seconds:.1f} s with {self.workers} "
                f"worker(s) in {len(self.snapshots)} commit(s), skipped {len(self.skipped)} already committed; "
                f"{len(self.committed)} committed, snapshot {self.snapshot_id}")


def _parse_init_times(init_times: Iterable) -> list[pd.Timestamp]:
    out = []
    for t in init_times:
        try:
            out.append(pd.Timestamp(t))
        except (TypeError, ValueError):
            raise ForecastStoreError(f"initial time {t!r} is not a date-time") from None
    if not out:
        raise ForecastStoreError("no initial times to export")
    return sorted(set(out))


def _check_provenance(where: str, attrs: dict, provenance: dict[str, str]) -> None:
    for key, value in provenance.items():
        if (key.endswith("_sha256") or key in _PROVENANCE_KEYS_CHECKED_ON_APPEND) and key in attrs \
                and str(attrs[key]) != str(value):
            raise ForecastStoreError(
                f"store '{where}' was exported with {key}={attrs[key]!r}, this export has {value!r}: "
                "a store holds forecasts of one model and data source; export to a new store")


def export_forecasts(path: Location, init_times: Iterable, forecast_fn: ForecastFn, provenance: dict[str, str],
                     *, workers: int = 1, replace: bool = False, zone_chunk: int = ZONE_CHUNK,
                     lead_chunk: int = LEAD_CHUNK_GRIDDED,
                     before_commit: Callable[[list[pd.Timestamp]], None] | None = None,
                     progress: bool = False) -> ExportReport:
    """Run ``forecast_fn(init_time) -> (gridded(time, lat, lon), zones(time, zone[, quantile]))`` for each init
    time and append the results to the store at ``path`` (a local path, a URL or a
    :class:`~carbonsync.forecast.store.StoreLocation`), one Icechunk commit per batch of ``workers`` init times.

    Init times already committed are skipped; new ones must come after the last committed one. ``workers > 1``
    runs that many forecasts (and their chunk writes) at a time on dask's threaded scheduler. ``replace=True``
    builds the store anew and makes it visible in one step at the end (the ``forecast`` stage). A second
    exporter on the same store raises :class:`ForecastStoreError` (module docstring). ``before_commit`` is
    called with a batch's init times after its chunks are written and before they are committed (a test
    hook for killing an export there).
    """
    loc = StoreLocation.parse(path)
    times = _parse_init_times(init_times)
    if workers < 1:
        raise ForecastStoreError(f"workers={workers} must be at least 1")
    attrs = {"title": "CarbonSync forecast", "Conventions": "CF-1.8", "code_version": f"carbonsync {__version__}",
             "code_commit": code_commit(), "created": pd.Timestamp.now(tz="UTC").isoformat(),
             **{k: str(v) for k, v in provenance.items()}}
    args = (times, forecast_fn, provenance, attrs, workers, zone_chunk, lead_chunk, before_commit, progress)
    tic = time.perf_counter()
    with _export_lock(loc):
        if loc.is_local:
            real = Path(os.path.realpath(loc.path))
            for leftover in real.parent.glob(f"{real.name}.tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)  # a killed legacy rewrite (we hold the lock)
        if replace and loc.is_local and Path(loc.path).exists() and not exists(loc):
            log.warning("'%s' is not an Icechunk forecast store (an older format?): replacing it", loc)
            with atomic_path(os.path.realpath(loc.path)) as tmp:
                report = _export_into(StoreLocation.parse(tmp), *args, replace=False)
        else:
            report = _export_into(loc, *args, replace=replace)
    report.store = Path(loc.path) if loc.is_local else str(loc)
    report.seconds, report.workers = time.perf_counter() - tic, workers
    log.info("%s", report)
    return report


def _export_into(loc: StoreLocation, times: list[pd.Timestamp], forecast_fn: ForecastFn,
                 provenance: dict[str, str], attrs: dict[str, str], workers: int, zone_chunk: int, lead_chunk: int,
                 before_commit: Callable[[list[pd.Timestamp]], None] | None, progress: bool,
                 replace: bool) -> ExportReport:
    where = str(loc)
    report = ExportReport(where)
    repo = open_repository(loc) if exists(loc) else None
    committed: list[pd.Timestamp] = []
    static: dict[str, xr.Dataset] | None = None
    variables: dict[str, set[str]] = {}
    branch, main_at_start = BRANCH, None
    if repo is not None:
        if loc.is_local:   # a killed replace's private branch (we hold the lock, so it is nobody's now)
            for stale in sorted(b for b in repo.list_branches() if b.startswith(REPLACE_BRANCH_PREFIX)):
                log.info("deleting branch '%s' of '%s', left by an unfinished replace", stale, where)
                repo.delete_branch(stale)
        main_at_start = repo.lookup_branch(BRANCH)
        if not replace:
            current = repo.readonly_session(snapshot_id=main_at_start)
            root = forecast_root(current)
            if root is not None:   # else: no export committed yet
                writer = _Writer(current, where)
                committed = writer.init_times()
                _check_provenance(where, root.attrs.asdict(), provenance)
                static = writer.static()
                variables = {g: {n for gg, n in writer.arrays if gg == g} for g in GROUPS}
    report.skipped = [t for t in times if t in set(committed)]
    todo = [t for t in times if t not in set(committed)]
    if todo and committed and todo[0] <= committed[-1]:
        raise ForecastStoreError(
            f"initial time {todo[0]} is not after the store's last committed init time {committed[-1]}: "
            "an append-only store takes new init times in order; export earlier ones to a new store")
    if not todo:
        report.committed, report.snapshot_id = list(committed), main_at_start
        return report
    bar = Progress(total=len(todo), desc="export", enabled=progress)
    state = {"tip": main_at_start}

    def produce(t: pd.Timestamp) -> tuple[xr.Dataset, xr.Dataset]:
        gridded, zones = forecast_fn(t)
        return prepare_forecast(t, gridded, zones)

    def produce_and_write(writer: _Writer, t: pd.Timestamp, index: int) -> BaseException | None:
        try:
            g, z = produce(t)
            check_against(static, variables, t, g, z, where)
            writer.write(index, g, z)
        except Exception as err:  # reported per init time, below
            return err
        return None

    def session() -> icechunk.Session:
        """A writable session on ``branch``, which must still be at this export's last commit."""
        s = repo.writable_session(branch)
        if s.snapshot_id != state["tip"]:
            raise ForecastStoreError(
                f"another export committed to '{where}' (branch '{branch}' moved from {state['tip']} to "
                f"{s.snapshot_id}) while this one was running; stopped before writing more: "
                "one export per store at a time")
        return s

    def commit(s: icechunk.Session, batch: list[pd.Timestamp]) -> None:
        if before_commit is not None:
            before_commit(batch)
        message = f"export {len(batch)} init time(s): {batch[0].isoformat()}" + \
            (f" .. {batch[-1].isoformat()}" if len(batch) > 1 else "")
        try:
            sid = s.commit(message, metadata={"init_times": [t.isoformat() for t in batch],
                                              "code_version": f"carbonsync {__version__}"})
        except icechunk.ConflictError as err:
            raise ForecastStoreError(
                f"another export committed to '{where}' (branch '{branch}') while this one was writing init times "
                f"{[str(t) for t in batch]}, which were not committed: {first_line(err)}; "
                "one export per store at a time") from None
        state["tip"] = sid
        report.snapshots.append(sid)
        committed.extend(batch)
        report.written.extend(batch)
        bar.update(len(batch))

    def publish(s: icechunk.Session, writer: _Writer, start: int, batch: list[pd.Timestamp],
                errors: list[BaseException | None]) -> None:
        ok = next((i for i, e in enumerate(errors) if e is not None), len(batch))
        if ok:
            writer.write_init_times(start, batch[:ok])
            if ok < len(batch):
                writer.resize(start + ok)
            commit(s, batch[:ok])
        else:
            s.discard_changes()
        if ok < len(batch):
            err = errors[ok]
            if isinstance(err, ForecastStoreError):
                raise err
            raise ForecastStoreError(f"forecast from {batch[ok]} failed: {type(err).__name__}: {err}") from err

    created_here = repo is None
    try:
        if static is None:   # a new store (or a replace): the schema and the first init time in one commit
            g, z = produce(todo[0])   # validated before anything is created
            if repo is None:
                repo = open_repository(loc, create=True)
                main_at_start = repo.lookup_branch(BRANCH)
            if replace:
                branch = f"{REPLACE_BRANCH_PREFIX}{uuid.uuid4().hex[:12]}"
                repo.create_branch(branch, main_at_start)
            state["tip"] = main_at_start
            s = session()
            _create(s.store, g, z, attrs, zone_chunk, lead_chunk)
            writer = _Writer(s, where)
            static = writer.static()
            variables = {grp: {n for gg, n in writer.arrays if gg == grp} for grp in GROUPS}
            writer.resize(1)
            writer.write(0, g, z)
            publish(s, writer, 0, [todo[0]], [None])
            todo = todo[1:]
        for start in range(0, len(todo), workers):
            batch = todo[start:start + workers]
            n = len(committed)
            s = session()
            writer = _Writer(s, where)
            writer.resize(n + len(batch))
            tasks = [dask.delayed(produce_and_write)(writer, t, n + i) for i, t in enumerate(batch)]
            errors = dask.compute(*tasks, scheduler="threads" if workers > 1 else "sync", num_workers=workers)
            publish(s, writer, n, batch, list(errors))
        if branch != BRANCH:
            try:
                repo.reset_branch(BRANCH, state["tip"], from_snapshot_id=main_at_start)
            except icechunk.IcechunkError as err:
                raise ForecastStoreError(
                    f"another export committed to '{where}' while this replace was running; the store was not "
                    f"replaced: {first_line(err)}") from None
    except BaseException:
        if branch != BRANCH and repo is not None and branch in repo.list_branches():
            repo.delete_branch(branch)
        if created_here and loc.is_local and branch != BRANCH:
            shutil.rmtree(loc.path, ignore_errors=True)   # a replace into a new path that never completed
        raise
    finally:
        bar.close()
    if branch != BRANCH:
        repo.delete_branch(branch)
    report.committed = list(committed)
    report.snapshot_id = repo.lookup_branch(BRANCH)
    return report


def write_forecast_store(forecasts: Sequence[tuple[pd.Timestamp, xr.Dataset, xr.Dataset]], path: Location,
                         provenance: dict[str, str]) -> Path | str:
    """Write computed forecasts ``(init_time, gridded(time, lat, lon), zones(time, zone[, quantile]))`` as a
    new store (replacing any store at ``path`` in one step)."""
    if not forecasts:
        raise ForecastStoreError("no forecasts to write")
    by_time = {pd.Timestamp(t): (g, z) for t, g, z in forecasts}
    return export_forecasts(path, by_time, by_time.__getitem__, provenance, replace=True).store
