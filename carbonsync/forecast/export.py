"""The forecast store (Zarr v3) that schedulers read: an append-only export that a reader or a crash cannot tear.

Layout: group ``gridded`` holds ``<var>(init_time, lead_time, lat, lon)``, group ``zones`` holds
``<product>(init_time, lead_time, zone)`` and ``<product>_quantile(init_time, quantile, lead_time, zone)``.
``valid_time = init_time + lead_time`` is a coordinate of both. Times are CF-encoded (integer minutes since
1970-01-01, lead times in minutes), variables carry ``units``/``long_name``, and the root and group attributes
carry provenance (package SHA-256s, data source, code version and commit).

**Commit protocol.** The root ``zarr.json`` holds the store's attributes *and* its consolidated metadata
(every array's shape); it is the only file a reader consults to learn what exists, and the exporter replaces
it in one atomic rename. An export of new initial times (1) resizes the arrays of both groups along
``init_time`` and writes every chunk of the new init times at indices past the committed ones, then
(2) *commits*: rewrites the root ``zarr.json`` with ``committed_init_times`` (the list of complete init
times) and consolidated metadata whose shapes include them. A reader opening the store with consolidated
metadata (``xarray.open_zarr``'s default, :func:`open_forecast`, :func:`carbonsync.forecast.reader.latest_forecast`)
therefore sees the committed init times only, all complete, and never reads a chunk being written: new init
times only ever create new chunk files (``init_time`` chunk 1), and files are written by rename. An export
killed between (1) and (2) leaves arrays longer than ``committed_init_times``; the next export truncates
them (deleting their chunks) before appending. Only readers that bypass consolidated metadata
(``consolidated=False``) can see such trailing, uncommitted data. One export writes to a store at a time
(an advisory lock beside the store).

**Chunking** (measured in ``benchmarks/export_read.py``). ``zones/<product>``: ``(init_time=1, lead_time=all,
zone=up to 64)``. A scheduler asks for the newest init time, an hour window and a few zones: that is one
small chunk (a few KB) per product whatever the window or zone set, where ``zone=1`` costs one file per zone
read. Measured on the 6-zone sample world (2 shared cores): reading all zones 116 against 57 reads/s with one
zone per chunk; reading one zone 93 against 126 reads/s (the one-zone chunk is smaller to decompress, a
difference within this machine's run-to-run noise). The placement reads every site's zone, so all zones share a
chunk. ``gridded/<var>``: ``(1, 24 lead hours, lat, lon)``, a day of global fields per chunk. The 1-D
``init_time`` coordinate uses chunks of 512 so opening the store reads one chunk, not one per init time;
appending rewrites that chunk by atomic rename, leaving its committed entries unchanged.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
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

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync import __version__
from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.fs import atomic_path
from carbonsync.core.logs import Progress, get_logger

log = get_logger(__name__)

ZONE_PRODUCTS = ("wind_cf", "solar_cf", "renewable_share", "carbon_intensity")
GROUPS = ("gridded", "zones")
STORE_FORMAT = "carbonsync-forecast-store 2 (append-only, committed_init_times)"
TIME_UNITS = "minutes since 1970-01-01"
LEAD_UNITS = "minutes"
INIT_TIME_CHUNK = 512
ZONE_CHUNK = 64
LEAD_CHUNK_GRIDDED = 24
_EPOCH = np.datetime64("1970-01-01T00:00", "m")
_PROVENANCE_KEYS_CHECKED_ON_APPEND = ("data_source", "grid")

ForecastFn = Callable[[pd.Timestamp], tuple[xr.Dataset, xr.Dataset]]


class ForecastStoreError(CarbonSyncError, ValueError):
    """A forecast store that is missing, malformed or does not cover the request."""


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
# the store: creation, commit, repair


def _root_json(path: Path) -> dict:
    meta = path / "zarr.json"
    if not meta.is_file():
        raise ForecastStoreError(f"'{path}' is not a Zarr store (no zarr.json)")
    return json.loads(meta.read_text())


def committed_init_times(path: str | Path) -> list[pd.Timestamp] | None:
    """The committed init times recorded in the store's root ``zarr.json`` (``None`` for a store written
    before the append-only format, where every init time in the store is complete)."""
    attrs = _root_json(Path(path)).get("attributes", {})
    if "committed_init_times" not in attrs:
        return None
    return [pd.Timestamp(t) for t in attrs["committed_init_times"]]


def _members(path: Path) -> dict[str, dict]:
    """The metadata documents of every group and array below the root, keyed by relative path (not
    descending into arrays, so the cost does not grow with the number of chunks)."""
    out: dict[str, dict] = {}

    def walk(directory: Path, prefix: str) -> None:
        for child in sorted(directory.iterdir()):
            meta = child / "zarr.json"
            if not child.is_dir() or not meta.is_file():
                continue
            key = f"{prefix}{child.name}"
            doc = json.loads(meta.read_text())
            if doc.get("node_type") == "group":
                doc = {**doc, "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": {}}}
                out[key] = doc
                walk(child, key + "/")
            else:
                out[key] = doc

    walk(path, "")
    return out


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _commit(path: Path, committed: Sequence[pd.Timestamp]) -> None:
    """Publish ``committed`` init times: one atomic rewrite of the root ``zarr.json`` holding the root
    attributes and the consolidated metadata (the same document ``zarr.consolidate_metadata`` writes)."""
    root = _root_json(path)
    root.pop("consolidated_metadata", None)
    root["attributes"] = {**root.get("attributes", {}),
                          "committed_init_times": [pd.Timestamp(t).isoformat() for t in committed],
                          "last_commit": pd.Timestamp.now(tz="UTC").isoformat()}
    root["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": _members(path)}
    _write_bytes_atomic(path / "zarr.json", json.dumps(root, indent=2, allow_nan=True).encode())


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


def _create(path: Path, gridded: xr.Dataset, zones: xr.Dataset, attrs: dict[str, str], zone_chunk: int,
            lead_chunk: int) -> None:
    """An empty store (no init times) with the schema of one prepared forecast, committed."""
    gridded, zones = gridded.isel(init_time=slice(0, 0)), zones.isel(init_time=slice(0, 0))
    layout = {
        "store_format": STORE_FORMAT,
        "layout_gridded": _describe(gridded), "layout_zones": _describe(zones),
        "how_to_read": "carbonsync.forecast.reader.latest_forecast(store, zones, start, end), or "
                       "xarray.open_zarr(store, group='zones'|'gridded') with consolidated metadata (the default): "
                       "only committed_init_times are visible; valid_time = init_time + lead_time",
        "chunking": f"zones (init_time=1, lead_time=all, zone<={zone_chunk}); "
                    f"gridded (init_time=1, lead_time={lead_chunk}, lat=all, lon=all)",
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        xr.Dataset(attrs={**attrs, **layout}).to_zarr(path, mode="w", consolidated=False, zarr_format=3)
        for group, ds, content in (("gridded", gridded, "gridded fields"), ("zones", zones, "zone products")):
            strings = {k: ds[k].astype(object) for k in ds.coords if ds[k].dtype.kind == "U"}
            ds = ds.assign_coords(strings).assign_attrs({**attrs, "content": content})
            for name in ds.variables:
                ds[name].encoding = {}
            ds.to_zarr(path, group=group, mode="a", consolidated=False, zarr_format=3,
                       encoding=_encoding(ds, zone_chunk, lead_chunk))
    _commit(path, [])


def _minutes(values: np.ndarray) -> np.ndarray:
    return ((values.astype("datetime64[m]") - _EPOCH) // np.timedelta64(1, "m")).astype(np.int64)


class _Writer:
    """Direct zarr writes of forecast slabs at an ``init_time`` index, on the store's non-consolidated view."""

    def __init__(self, path: Path):
        import zarr

        self.path = path
        self.root = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        self.arrays: dict[tuple[str, str], object] = {}
        self.static: dict[str, xr.Dataset] = {}
        for group in GROUPS:
            for name, arr in self.root[group].arrays():
                if "init_time" in (arr.metadata.dimension_names or ()):
                    self.arrays[(group, name)] = arr
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=RuntimeWarning)
                ds = xr.open_zarr(path, group=group, consolidated=False)
            self.static[group] = ds.drop_vars([v for v in ds.variables if "init_time" in ds[v].dims]).load()
        for (group, name), arr in self.arrays.items():
            if name in ("init_time", "valid_time") and arr.attrs.get("units") != TIME_UNITS:
                raise ForecastStoreError(f"'{path}/{group}/{name}' has units '{arr.attrs.get('units')}', expected "
                                         f"'{TIME_UNITS}': not an append-only forecast store")

    @property
    def shortest(self) -> int:
        """The fewest init times any init-time array holds (a killed export may have resized only some)."""
        return min(arr.shape[0] for arr in self.arrays.values())

    def resize(self, n: int) -> int:
        """Set every init-time array to ``n`` init times (deleting chunks past it); returns how many
        uncommitted trailing init slots were dropped."""
        dropped = 0
        for arr in self.arrays.values():
            if arr.shape[0] != n:
                dropped = max(dropped, arr.shape[0] - n)
                arr.resize((n, *arr.shape[1:]))
        return max(dropped, 0)

    def check(self, init_time: pd.Timestamp, gridded: xr.Dataset, zones: xr.Dataset) -> None:
        """The forecast has exactly the store's variables and the same lead times, grid, zones and quantiles."""
        for group, ds in (("gridded", gridded), ("zones", zones)):
            have = {n for n in ds.variables if "init_time" in ds[n].dims}
            want = {name for g, name in self.arrays if g == group}
            if have != want:
                raise ForecastStoreError(
                    f"forecast from {init_time}: {group} variables {sorted(have ^ want)} differ from store '{self.path}' "
                    f"(store has {sorted(want)})")
            for coord in self.static[group].coords:
                if coord not in ds.coords or not np.array_equal(np.asarray(ds[coord].values),
                                                               np.asarray(self.static[group][coord].values)):
                    raise ForecastStoreError(
                        f"forecast from {init_time}: {group} coordinate '{coord}' differs from store '{self.path}'")

    def write(self, index: int, gridded: xr.Dataset, zones: xr.Dataset) -> None:
        """Write the chunks of one prepared forecast at ``index``: every init-time variable except the
        ``init_time`` coordinate, whose chunks hold many init times (see :meth:`write_init_times`). Safe to
        run concurrently for different indices: each touches only its own chunk files."""
        from zarr.core.sync import sync

        writes = []
        for (group, name), arr in self.arrays.items():
            if name == "init_time":
                continue
            ds = gridded if group == "gridded" else zones
            values = ds[name].transpose(*arr.metadata.dimension_names).values[0]
            if values.dtype.kind == "M":
                values = _minutes(values)
            writes.append(arr.async_array.setitem(index, values.astype(arr.dtype, copy=False)))

        async def write_all():
            await asyncio.gather(*writes)

        sync(write_all())  # one trip to zarr's event loop; the chunk files are written concurrently

    def write_init_times(self, start: int, init_times: Sequence[pd.Timestamp]) -> None:
        """Write ``init_times`` into the ``init_time`` coordinates from index ``start`` (one thread only: a
        chunk of this array holds many init times, so concurrent writes would lose each other's updates)."""
        values = _minutes(np.array([np.datetime64(pd.Timestamp(t), "ns") for t in init_times]))
        for group in GROUPS:
            self.arrays[(group, "init_time")][start:start + len(values)] = values

    def delete_partial_files(self) -> int:
        """Remove temporary files a killed export left behind (zarr's ``*.partial`` chunk and metadata writes,
        our ``.zarr.json.*.tmp`` commit); returns how many. Only while holding the export lock."""
        leftovers = [*self.path.rglob("*.partial"), *self.path.glob(".zarr.json.*.tmp")]
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        return len(leftovers)


@contextmanager
def _export_lock(path: Path) -> Iterator[None]:
    """An advisory lock beside the store, held for the whole export (released if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ForecastStoreError(f"another export is writing to '{path}' (lock '{lock}' is held)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class ExportReport:
    """What one export did."""

    store: Path
    written: list[pd.Timestamp] = field(default_factory=list)
    skipped: list[pd.Timestamp] = field(default_factory=list)
    committed: list[pd.Timestamp] = field(default_factory=list)
    repaired_slots: int = 0
    seconds: float = 0.0
    workers: int = 1

    def __str__(self) -> str:
        return (f"{self.store}: wrote {len(self.written)} init times in {self.seconds:.1f} s with {self.workers} "
                f"worker(s), skipped {len(self.skipped)} already committed, repaired {self.repaired_slots} "
                f"uncommitted slot(s); {len(self.committed)} committed")


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


def _check_provenance(path: Path, provenance: dict[str, str]) -> None:
    attrs = _root_json(path).get("attributes", {})
    for key, value in provenance.items():
        if (key.endswith("_sha256") or key in _PROVENANCE_KEYS_CHECKED_ON_APPEND) and key in attrs \
                and str(attrs[key]) != str(value):
            raise ForecastStoreError(
                f"store '{path}' was exported with {key}={attrs[key]!r}, this export has {value!r}: "
                "a store holds forecasts of one model and data source; export to a new store")


def export_forecasts(path: str | Path, init_times: Iterable, forecast_fn: ForecastFn, provenance: dict[str, str],
                     *, workers: int = 1, replace: bool = False, zone_chunk: int = ZONE_CHUNK,
                     lead_chunk: int = LEAD_CHUNK_GRIDDED,
                     before_commit: Callable[[list[pd.Timestamp]], None] | None = None,
                     progress: bool = False) -> ExportReport:
    """Run ``forecast_fn(init_time) -> (gridded(time, lat, lon), zones(time, zone[, quantile]))`` for each init
    time and append the results to the store at ``path``, committing after every batch of ``workers`` init times.

    Init times already committed are skipped; new ones must come after the last committed one. Uncommitted
    data a killed export left behind is truncated first. ``workers > 1`` runs that many forecasts (and their
    chunk writes) at a time on dask's threaded scheduler. ``replace=True`` builds a new store beside ``path``
    and renames it into place (the ``forecast`` stage). ``before_commit`` is called with a batch's init times
    after its chunks are written and before they are committed (a test hook for killing an export there).
    """
    path = Path(path)
    times = _parse_init_times(init_times)
    if workers < 1:
        raise ForecastStoreError(f"workers={workers} must be at least 1")
    attrs = {"title": "CarbonSync forecast", "Conventions": "CF-1.8", "code_version": f"carbonsync {__version__}",
             "code_commit": code_commit(), "created": pd.Timestamp.now(tz="UTC").isoformat(),
             **{k: str(v) for k, v in provenance.items()}}
    tic = time.perf_counter()
    with _export_lock(path):
        for leftover in [*path.parent.glob(f"{path.name}.tmp-*"), *path.parent.glob(f"{path.name}.old-*")]:
            shutil.rmtree(leftover, ignore_errors=True)  # a killed export's unfinished new store (we hold the lock)
        if replace:
            with atomic_path(path) as tmp:
                report = _export_into(tmp, times, forecast_fn, provenance, attrs, workers, zone_chunk, lead_chunk,
                                      before_commit, progress)
        else:
            report = _export_into(path, times, forecast_fn, provenance, attrs, workers, zone_chunk, lead_chunk,
                                  before_commit, progress)
    report.store, report.seconds, report.workers = path, time.perf_counter() - tic, workers
    return report


def _export_into(path: Path, times: list[pd.Timestamp], forecast_fn: ForecastFn, provenance: dict[str, str],
                 attrs: dict[str, str], workers: int, zone_chunk: int, lead_chunk: int,
                 before_commit: Callable[[list[pd.Timestamp]], None] | None, progress: bool) -> ExportReport:
    import dask

    report = ExportReport(path)
    committed: list[pd.Timestamp] = []
    writer = None
    if path.exists():
        found = committed_init_times(path)
        if found is None:
            raise ForecastStoreError(
                f"'{path}' has no 'committed_init_times': it was written before append-only exports; "
                "delete it or export to a new path")
        committed = found
        _check_provenance(path, provenance)
        writer = _Writer(path)
        if writer.shortest < len(committed):
            raise ForecastStoreError(f"store '{path}' has an array with {writer.shortest} init times but "
                                     f"{len(committed)} are committed: it is damaged")
        report.repaired_slots = writer.resize(len(committed))
        writer.delete_partial_files()
    report.skipped = [t for t in times if t in set(committed)]
    todo = [t for t in times if t not in set(committed)]
    if todo and committed and todo[0] <= committed[-1]:
        raise ForecastStoreError(
            f"initial time {todo[0]} is not after the store's last committed init time {committed[-1]}: "
            "an append-only store takes new init times in order; export earlier ones to a new store")
    bar = Progress(total=len(todo), desc="export", enabled=progress)

    def produce(t: pd.Timestamp) -> tuple[xr.Dataset, xr.Dataset]:
        gridded, zones = forecast_fn(t)
        return prepare_forecast(t, gridded, zones)

    def produce_and_write(t: pd.Timestamp, index: int) -> BaseException | None:
        try:
            g, z = produce(t)
            writer.check(t, g, z)
            writer.write(index, g, z)
        except Exception as err:  # reported per init time, below
            return err
        return None

    def publish(batch: list[pd.Timestamp], errors: list[BaseException | None]) -> None:
        ok = next((i for i, e in enumerate(errors) if e is not None), len(batch))
        writer.write_init_times(len(committed), batch[:ok])
        if before_commit is not None and ok:
            before_commit(batch[:ok])
        committed.extend(batch[:ok])
        report.written.extend(batch[:ok])
        if ok < len(batch):
            writer.resize(len(committed))
        _commit(path, committed)
        bar.update(ok)
        if ok < len(batch):
            err = errors[ok]
            if isinstance(err, ForecastStoreError):
                raise err
            raise ForecastStoreError(f"forecast from {batch[ok]} failed: {type(err).__name__}: {err}") from err

    if todo and writer is None:  # a new store: its empty, committed schema appears by one rename
        g, z = produce(todo[0])
        with atomic_path(path) as tmp:
            _create(tmp, g, z, attrs, zone_chunk, lead_chunk)
        writer = _Writer(path)
        writer.resize(1)
        writer.write(0, g, z)
        publish([todo[0]], [None])
        todo = todo[1:]
    for start in range(0, len(todo), workers):
        batch = todo[start:start + workers]
        n = len(committed)
        writer.resize(n + len(batch))
        tasks = [dask.delayed(produce_and_write)(t, n + i) for i, t in enumerate(batch)]
        errors = dask.compute(*tasks, scheduler="threads" if workers > 1 else "sync", num_workers=workers)
        publish(batch, list(errors))
    bar.close()
    report.committed = list(committed)
    return report


def write_forecast_store(forecasts: Sequence[tuple[pd.Timestamp, xr.Dataset, xr.Dataset]], path: str | Path,
                         provenance: dict[str, str]) -> Path:
    """Write computed forecasts ``(init_time, gridded(time, lat, lon), zones(time, zone[, quantile]))`` as a
    new store (replacing any store at ``path`` atomically)."""
    if not forecasts:
        raise ForecastStoreError("no forecasts to write")
    by_time = {pd.Timestamp(t): (g, z) for t, g, z in forecasts}
    export_forecasts(path, by_time, by_time.__getitem__, provenance, replace=True)
    return Path(path)


def open_forecast(path: str | Path, group: str = "zones") -> xr.Dataset:
    """Open one group (``zones`` or ``gridded``) of a forecast store lazily: committed init times only."""
    path = Path(path)
    if not path.exists():
        raise ForecastStoreError(f"forecast store '{path}' does not exist (run `carbonsync forecast`)")
    if group not in GROUPS:
        raise ForecastStoreError(f"forecast store group '{group}' is not 'zones' or 'gridded'")
    return xr.open_zarr(path, group=group, consolidated=True)


def latest_zone_forecast(path: str | Path, zones: Sequence[str] | None = None,
                         start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                         products: Sequence[str] = ZONE_PRODUCTS) -> xr.Dataset:
    """The latest forecast of ``products`` for ``zones`` over ``[start, end]`` as ``(time, zone)``
    (see :func:`carbonsync.forecast.reader.latest_forecast`, which this calls)."""
    from carbonsync.forecast.reader import latest_forecast

    return latest_forecast(path, zones, start, end, products=products)
