"""The seam every observation and trace source plugs into: one protocol, one output contract, one registry.

A *source* reads one file format (an Electricity Maps portal export, an ENTSO-E ``Time,Carbon Intensity``
file, a GEFCom2014 track, a DACF balancing-area file, ...). It has a registry ``name``, a ``kind``
(``"trace"`` for carbon-intensity traces, ``"generation"`` for generation by fuel, ``"power"`` for
normalised farm power with its weather), a ``detect(path)`` rule that looks at the file's header only, and
``load(path, **options)`` that returns a dataset under **the observation contract**
(:func:`check_observations`):

- dimensions ``(time, zone)`` for every variable; ``time`` hourly on whole hours, naive UTC, sorted, unique
  and regular (a missing hour is a row of NaN, never an absent row); ``zone`` unique non-empty strings;
- every variable carries CF-style ``units`` (``g CO2e/kWh``, ``MW``, ``m s-1``, ``1`` for fractions, which
  must lie in [0, 1]);
- the dataset's attributes name the ``source`` (its registry name), the ``path`` read, the ``files``, the
  ``licence`` and ``origin`` where known, the ``repairs`` applied (``files`` and ``repairs`` as JSON text, so
  the dataset writes to NetCDF or Zarr as it is) and ``time_label``: ``hour_start`` when a value covers the
  hour that begins at its label, ``hour_end`` when it covers the hour that ends there (ERA5's and
  GEFCom2014's convention), ``unstated`` when the data set does not say (DACF).

Sources register themselves when their module is imported (:func:`register_source`); the package
``__init__`` imports every built-in one, so :func:`detect_source` and :func:`get_source` know them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.errors import CarbonSyncError

__all__ = [
    "CARBON_INTENSITY_RANGE",
    "KINDS",
    "TIME_LABELS",
    "FileSource",
    "ObservationError",
    "ObservationSource",
    "check_observations",
    "detect_source",
    "get_source",
    "known_sources",
    "load_observations",
    "observation_dataset",
    "read_csv",
    "read_header",
    "register_source",
    "unreadable",
]

KINDS = ("trace", "generation", "power")
# g CO2e/kWh: no grid's average or marginal emissions come near a few thousand (old lignite ~1,100)
CARBON_INTENSITY_RANGE = (0.0, 3000.0)
TIME_LABELS = ("hour_start", "hour_end", "unstated")
HOUR_NS = np.timedelta64(3600 * 10**9, "ns")


class ObservationError(CarbonSyncError, ValueError):
    """An observation file, API response or dataset that cannot be read as described."""


@runtime_checkable
class ObservationSource(Protocol):
    """One observation file format: a registry name, a kind, a header rule and a loader under the contract."""

    name: str
    kind: str
    description: str

    def detect(self, path: str | Path) -> bool:
        """Whether ``path`` is a file of this format (reads the header only, never raises)."""
        ...

    def load(self, path: str | Path, **options: Any) -> xr.Dataset:
        """The file as a dataset under the observation contract (:func:`check_observations`)."""
        ...


@dataclass(frozen=True)
class FileSource:
    """An :class:`ObservationSource` made of a header rule and a loader; ``load`` checks the contract."""

    name: str
    kind: str
    description: str
    matches: Callable[[Path], bool]
    loader: Callable[..., xr.Dataset]
    licence: str = ""
    origin: str = ""

    def detect(self, path: str | Path) -> bool:
        try:
            return Path(path).is_file() and bool(self.matches(Path(path)))
        except (OSError, ValueError, UnicodeDecodeError):
            return False

    def load(self, path: str | Path, **options: Any) -> xr.Dataset:
        return check_observations(self.loader(Path(path), **options))


# -------------------------------------------------------------------------------------------- registry

_SOURCES: dict[str, ObservationSource] = {}


def register_source(source: ObservationSource, *, replace: bool = False) -> ObservationSource:
    """Add ``source`` to the registry under ``source.name`` (an existing name needs ``replace=True``)."""
    if not isinstance(source, ObservationSource):
        raise ObservationError(f"{source!r} is not an observation source (needs name, kind, description, detect, load)")
    if source.kind not in KINDS:
        raise ObservationError(f"source {source.name!r}: kind must be one of {', '.join(KINDS)}, got {source.kind!r}")
    if source.name in _SOURCES and not replace and _SOURCES[source.name] is not source:
        raise ObservationError(f"an observation source named {source.name!r} is registered already")
    _SOURCES[source.name] = source
    return source


def known_sources(kind: str | None = None) -> tuple[str, ...]:
    """The registered source names (of ``kind`` if given), in registration order."""
    return tuple(name for name, s in _SOURCES.items() if kind is None or s.kind == kind)


def _known(kind: str | None) -> str:
    names = known_sources(kind)
    return ", ".join(f"{n} ({_SOURCES[n].description})" for n in names) or "none"


def get_source(name: str) -> ObservationSource:
    """The source registered as ``name``; the error lists the known ones."""
    if name not in _SOURCES:
        raise ObservationError(f"unknown observation source {name!r}; known: {_known(None)}")
    return _SOURCES[name]


def detect_source(path: str | Path, *, kind: str | None = None, required: bool = True) -> ObservationSource | None:
    """The one registered source (of ``kind`` if given) whose header rule matches ``path``.

    No match is an error listing the known formats (or None with ``required=False``); two matches are an
    error naming both, whatever ``required`` says.
    """
    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise ObservationError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if required and not path.is_file():
        raise ObservationError(f"observation file '{path}' does not exist")
    found = [s for name, s in _SOURCES.items() if (kind is None or s.kind == kind) and s.detect(path)]
    if len(found) > 1:
        raise ObservationError(f"file '{path}' matches several formats: {', '.join(s.name for s in found)}")
    if found:
        return found[0]
    if not required:
        return None
    header = ", ".join(read_header(path)[:12]) or "none readable"
    what = f"{kind} formats" if kind else "formats"
    raise ObservationError(f"file '{path}' is in none of the known {what} (its columns: {header}); known: {_known(kind)}")


def load_observations(path: str | Path, source: str | None = None, **options: Any) -> xr.Dataset:
    """Read ``path`` with the source named ``source`` (detected from the header when None)."""
    if source is not None:
        return get_source(source).load(path, **options)
    chosen = detect_source(path)
    if chosen is None:  # unreachable: a required detection raises instead
        raise ObservationError(f"no observation source reads '{path}'")
    return chosen.load(path, **options)


# -------------------------------------------------------------------------------------------- reading


def read_header(path: str | Path) -> list[str]:
    """The stripped column names of a CSV file (gzip too); ``[]`` when it cannot be read."""
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0).columns]
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, EOFError):
        return []


def unreadable(path: str | Path) -> str:
    """Why the start of a CSV file (gzip too, by its name) cannot be read as UTF-8 text; ``""`` when it can."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            head = raw.read(2)
        if head == b"\x1f\x8b" and not path.name.endswith(".gz"):
            return "it is gzip-compressed but its name does not end in .gz"
        pd.read_csv(path, nrows=100)
    except UnicodeDecodeError as err:
        hint = ("a UTF-16 file (it starts with a byte-order mark)" if head in (b"\xff\xfe", b"\xfe\xff")
                else "another encoding such as Latin-1 or UTF-16")
        return f"it is not UTF-8 text ({err.reason} at byte {err.start}); it looks like {hint}: save it as UTF-8"
    except (EOFError, OSError) as err:  # truncated or corrupt gzip (gzip.BadGzipFile is an OSError)
        return f"it cannot be decompressed or read ({type(err).__name__}: {err})"
    except pd.errors.EmptyDataError:
        return "it is empty"
    except (ValueError, pd.errors.ParserError) as err:
        return f"it cannot be parsed as CSV ({err})"
    return ""


def read_csv(path: str | Path, where: str, error: type[Exception] = ObservationError, **options: Any) -> pd.DataFrame:
    """A whole CSV file with stripped column names; a missing, empty, header-only or unreadable file is ``error``."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{where}: file not found")
    if path.stat().st_size == 0:
        raise error(f"{where}: file is empty")
    try:
        frame = pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise error(f"{where}: file is empty (no header)") from None
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as err:
        raise error(f"{where}: cannot be read as CSV: {err}") from None
    if frame.empty:
        raise error(f"{where}: file has a header ({', '.join(map(str, frame.columns))}) but no rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


# -------------------------------------------------------------------------------------------- the contract


def observation_dataset(
    variables: Mapping[str, pd.DataFrame],
    units: Mapping[str, str],
    *,
    source: str,
    path: str | Path,
    files: Sequence[str] | Mapping[str, Sequence[str]],
    repairs: Sequence[str] | Mapping[str, Sequence[str]],
    time_label: str,
    licence: str = "",
    origin: str = "",
    long_names: Mapping[str, str] | None = None,
    **attrs: str,
) -> xr.Dataset:
    """A contract dataset from one ``time x zone`` frame per variable (all reindexed onto one hourly range)."""
    if not variables:
        raise ObservationError(f"{source} '{path}': no variables to build a dataset from")
    start = min(f.index.min() for f in variables.values())
    end = max(f.index.max() for f in variables.values())
    zones = sorted({str(z) for f in variables.values() for z in f.columns})
    times = pd.date_range(start, end, freq="h", name="time").astype("datetime64[ns]")
    data = {}
    for name, frame in variables.items():
        frame = frame.copy()
        frame.columns = [str(z) for z in frame.columns]
        frame = frame.reindex(index=times, columns=zones)
        values = frame.to_numpy(dtype=bool) if frame.dtypes.eq(bool).all() else frame.to_numpy(dtype=np.float64)
        var_attrs = {"units": units[name]}
        if long_names and name in long_names:
            var_attrs["long_name"] = long_names[name]
        data[name] = xr.Variable(("time", "zone"), values, var_attrs)
    ds = xr.Dataset(data, coords={"time": times.to_numpy(), "zone": np.array(zones, dtype=object)})
    ds.attrs.update(
        source=source, path=str(path), files=json.dumps(files), repairs=json.dumps(repairs),
        time_label=time_label, licence=licence, origin=origin, **attrs,
    )
    return ds


def check_observations(ds: xr.Dataset, where: str | None = None) -> xr.Dataset:
    """Check ``ds`` against the observation contract (module docstring); returns it, or raises listing every breach."""
    if not isinstance(ds, xr.Dataset):
        raise ObservationError(f"observations must be an xarray Dataset, got {type(ds).__name__}")
    where = where or f"observations from {ds.attrs.get('source', '?')} '{ds.attrs.get('path', '?')}'"
    problems: list[str] = []
    for dim in ("time", "zone"):
        if dim not in ds.coords:
            problems.append(f"no '{dim}' coordinate")
    if not ds.data_vars:
        problems.append("no variables")
    for name, var in ds.data_vars.items():
        if var.dims != ("time", "zone"):
            problems.append(f"variable '{name}' has dimensions {var.dims}, not ('time', 'zone')")
        units = var.attrs.get("units")
        if not isinstance(units, str) or not units.strip():
            problems.append(f"variable '{name}' has no 'units' attribute")
        if not (np.issubdtype(var.dtype, np.number) or var.dtype == bool):
            problems.append(f"variable '{name}' is {var.dtype}, not numeric or boolean")
        elif units == "1" and var.dtype != bool:
            values = var.values[np.isfinite(var.values)]
            if values.size and (values.min() < 0 or values.max() > 1):
                problems.append(f"variable '{name}' has units '1' (a fraction) but spans {values.min():.4g}..{values.max():.4g}")
    if "time" in ds.coords:
        times = ds["time"].values
        if not np.issubdtype(times.dtype, np.datetime64):
            problems.append(f"'time' is {times.dtype}, not naive datetime64 (UTC)")
        elif len(times):
            index = pd.DatetimeIndex(times)
            if index.hasnans:
                problems.append("'time' has missing values")
            elif (index != index.floor("h")).any():
                problems.append(f"time {index[index != index.floor('h')][0]} is not on a whole hour")
            elif len(index) > 1:
                steps = np.diff(times.astype("datetime64[ns]"))
                if (steps <= np.timedelta64(0, "ns")).any():
                    at = int(np.flatnonzero(steps <= np.timedelta64(0, "ns"))[0])
                    problems.append(f"'time' is not sorted and unique ({index[at + 1]} follows {index[at]})")
                elif (steps != HOUR_NS).any():
                    at = int(np.flatnonzero(steps != HOUR_NS)[0])
                    problems.append(f"'time' is not regular hourly ({index[at + 1]} follows {index[at]}; "
                                    "a missing hour must be a row of NaN)")
    if "zone" in ds.coords:
        zones = [str(z) for z in ds["zone"].values]
        if len(set(zones)) != len(zones) or any(not z.strip() for z in zones):
            problems.append(f"'zone' must be unique non-empty names, got {zones[:10]}")
    for key in ("source", "path", "files", "repairs", "time_label"):
        if not isinstance(ds.attrs.get(key), str):
            problems.append(f"attribute '{key}' is missing (or not text)")
    if isinstance(ds.attrs.get("time_label"), str) and ds.attrs["time_label"] not in TIME_LABELS:
        problems.append(f"attribute 'time_label' must be one of {', '.join(TIME_LABELS)}, got {ds.attrs['time_label']!r}")
    for key in ("files", "repairs"):
        if isinstance(ds.attrs.get(key), str):
            try:
                json.loads(ds.attrs[key])
            except json.JSONDecodeError:
                problems.append(f"attribute '{key}' is not JSON text")
    if problems:
        raise ObservationError(f"{where} break the observation contract: " + "; ".join(problems))
    return ds
