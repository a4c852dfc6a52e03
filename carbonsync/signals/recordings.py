"""Recorded signals from every file format of the shared data, opened by one call and replayed causally.

:func:`open_recording` detects a file's (or a directory's) format and returns a
:class:`~carbonsync.signals.base.GridSignal` over it on a :class:`~carbonsync.signals.replay.ReplayClock`;
``get_signal("file", path=..., clock=...)`` does the same by name. Formats (:data:`RECORDING_FORMATS`, in
detection order; :func:`register_recording_format` adds one):

- ``traces``: Electricity Maps portal exports and ENTSO-E ``Time,Carbon Intensity`` CSVs, a file or a
  directory (read by :func:`carbonsync.data.observations.load_traces`, whose checks apply): carbon intensity
  and renewable share; forecasts are persistence;
- ``dacf``: DACF balancing-area files: carbon intensity (DACF's direct factors, in-area generation) and the
  wind + solar share, with the operators' day-ahead production forecasts as issued forecasts;
- ``watttime``: a WattTime zip (``*_actual.csv`` with ``*_forecast.csv``) or a MOER actuals CSV;
- ``caiso-lmp`` and ``caiso-curtailment``: CAISO OASIS LMP zips and the curtailment-week CSVs (from
  :mod:`carbonsync.signals.caiso`).

**When DACF's forecasts were issued.** The files give one day-ahead value per hour and no issue time. Each
UTC day's block (D 01:00 to D+1 00:00, the hours the GFS run of D 00 UTC covers in the same files) is taken
as issued at D-1 18:00 UTC: after every US operator's day-ahead publication, so a replay never sees one
before it existed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.data.observations import ObservationError, load_observations, load_traces
from carbonsync.data.observations.base import detect_source, read_header
from carbonsync.data.observations.dacf import SHARE_COLUMN, DacfError, load_dacf_paths, products
from carbonsync.signals.base import (
    KINDS,
    GridSignal,
    SignalFormatError,
    SignalRangeError,
    SignalSet,
    register_signal,
    signal_dataset,
)
from carbonsync.signals.caiso import caiso_lmp_recording, read_caiso_curtailment_csv
from carbonsync.signals.files import read_watttime_actuals, watttime_recording
from carbonsync.signals.replay import RecordedSignal, ReplayClock
from carbonsync.signals.zones import ZoneLookupError, resolve

__all__ = [
    "DACF_ISSUE_LEAD",
    "RECORDING_FORMATS",
    "RecordingFormat",
    "dacf_signals",
    "open_recording",
    "register_recording_format",
    "trace_signals",
]

DACF_ISSUE_LEAD = pd.Timedelta(hours=7)  # a block starting D 01:00 is issued at D-1 18:00
HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class RecordingFormat:
    """A recorded file format: a detection rule (never raises) and an opener ``(path, clock, **options)``."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    open: Callable[..., GridSignal]


RECORDING_FORMATS: dict[str, RecordingFormat] = {}


def register_recording_format(fmt: RecordingFormat, *, replace: bool = False) -> RecordingFormat:
    if fmt.name in RECORDING_FORMATS and not replace:
        raise ValueError(f"a recording format named '{fmt.name}' is already registered")
    RECORDING_FORMATS[fmt.name] = fmt
    return fmt


def _zone_datasets(frame: pd.DataFrame, estimated: pd.DataFrame | None, kind: str, units: str, provider: str,
                   endpoint: str) -> xr.Dataset:
    """One signal dataset ``(time, zone)`` from a frame with one column per zone."""
    parts = [signal_dataset(frame[z].to_numpy(), frame.index, str(z), kind, units, provider=provider,
                            endpoint=endpoint, where=f"'{endpoint}' zone {z}",
                            estimated=None if estimated is None else estimated[z].to_numpy())
             for z in frame.columns]
    return xr.concat(parts, dim="zone", combine_attrs="override")


# --------------------------------------------------------------------------------------------- traces


def _is_trace(path: Path) -> bool:
    if path.is_dir():
        return any(detect_source(p, kind="trace", required=False) is not None
                   for p in sorted({*path.glob("*.csv"), *path.glob("*.csv.gz")}))
    return detect_source(path, kind="trace", required=False) is not None


def trace_signals(path: str | Path, clock: ReplayClock, **options: Any) -> SignalSet:
    """Carbon intensity and renewable share of a trace file or directory (all zones, outer-joined), replayed on
    ``clock``; ``options`` go to each :class:`RecordedSignal` (``max_age``, ``max_gap``)."""
    path = Path(path)
    try:
        ds = load_traces(path, join="outer") if path.is_dir() else load_observations(path)
    except ObservationError as err:
        raise SignalFormatError(str(err), provider="trace-file", endpoint=str(path)) from err
    provider = f"{ds.attrs['source']}-file"
    estimated = ds["estimated"].to_pandas().astype(bool)
    members: list[GridSignal] = [RecordedSignal(_zone_datasets(
        ds["carbon_intensity"].to_pandas(), estimated, "carbon_intensity", "g CO2e/kWh", provider, str(path)),
        clock, interval=HOUR, **options)]
    share = ds["renewable_share"].to_pandas()
    if share.notna().any().any():
        members.append(RecordedSignal(_zone_datasets(share, estimated, "renewable_share", "1", provider, str(path)),
                                      clock, interval=HOUR, **options))
    return SignalSet(provider, members)


# --------------------------------------------------------------------------------------------- DACF


def _is_dacf(path: Path) -> bool:
    if path.is_dir():
        return any(_is_dacf(p) for p in sorted(path.glob("*.csv*")))
    header = read_header(path)
    return "UTC time" in header and any(c.startswith("forecast_avg_") for c in header)


def _dacf_archive(blocks: dict[str, pd.Series], kind: str, units: str, where: str) -> xr.Dataset | None:
    """The operators' day-ahead forecasts of the areas (one series per area) as a forecast archive
    ``(issued_at, lead, zone)``; None without any."""
    if not blocks:
        return None
    times = pd.DatetimeIndex(sorted(set().union(*(b.index for b in blocks.values()))))
    issued = pd.DatetimeIndex(sorted({(t - HOUR).floor("D") - pd.Timedelta(hours=6) for t in times}))
    leads = pd.to_timedelta(np.arange(24) + DACF_ISSUE_LEAD / HOUR, unit="h")
    valid = issued.values[:, None] + leads.values[None, :]
    values = np.full((len(issued), len(leads), len(blocks)), np.nan)
    for z, series in enumerate(blocks.values()):
        values[..., z] = series.reindex(pd.DatetimeIndex(valid.ravel())).to_numpy().reshape(valid.shape)
    lo, hi = KINDS[kind].valid_range
    bad = (values < lo) | (values > hi)
    if bad.any():
        i, lead, z = np.argwhere(bad)[0]
        raise SignalRangeError(f"the operators' forecasts give {kind} {values[i, lead, z]:.6g} for "
                               f"{pd.Timestamp(valid[i, lead])} in area {list(blocks)[z]}, outside [{lo:g}, {hi:g}]",
                               provider="dacf-file", endpoint=where)
    return xr.Dataset(
        {"value": (("issued_at", "lead", "zone"), values)},
        coords={"issued_at": issued.values, "lead": leads.values, "zone": list(blocks),
                "time": (("issued_at", "lead"), valid)},
        attrs={"kind": kind, "units": units, "provider": "dacf-file", "endpoint": where, "index": "no",
               "layout": "forecast archive"},
    )


def dacf_signals(path: str | Path, clock: ReplayClock, **options: Any) -> SignalSet:
    """Carbon intensity and wind + solar share of DACF files (a file, a directory or a glob), each zone a
    balancing area, with the operators' day-ahead forecasts issued as the module docstring says."""
    where = str(path)
    spec = Path(path) / "*.csv*" if Path(path).is_dir() else path
    try:
        areas = load_dacf_paths(spec)
    except (DacfError, ObservationError) as err:
        raise SignalFormatError(str(err), provider="dacf-file", endpoint=where) from err
    observed = {name: products(area.frame[area.generation_columns]) for name, area in areas.items()}
    issued = {name: products(generation) for name, area in areas.items()
              if (generation := area.published_generation()) is not None}   # every fuel has a forecast
    members: list[GridSignal] = []
    for column, kind, units in (("carbon_intensity", "carbon_intensity", "g CO2e/kWh"),
                                (SHARE_COLUMN, "renewable_share", "1")):
        frame = pd.DataFrame({name: values[column] for name, values in observed.items()})
        actuals = _zone_datasets(frame, frame.isna(), kind, units, "dacf-file", where)
        archive = _dacf_archive({name: values[column] for name, values in issued.items()}, kind, units, where)
        members.append(RecordedSignal(actuals, clock, archive, interval=HOUR, **options))
    members[1].actuals.attrs["definition"] = "wind + solar generation over all in-area generation (DACF)"
    return SignalSet("dacf-file", members)


# --------------------------------------------------------------------------------------------- WattTime


def _is_watttime(path: Path) -> bool:
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                return any(n.endswith("_actual.csv") for n in archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    header = read_header(path)
    if len(header) < 2:
        return False
    try:
        return all(resolve(c, "watttime") for c in header[1:])
    except ZoneLookupError:
        return False


def _open_watttime(path: Path, clock: ReplayClock, **options: Any) -> GridSignal:
    if path.suffix == ".zip":
        return watttime_recording(path, clock, **options)
    units = options.pop("units", "gCO2/kWh")
    return RecordedSignal(read_watttime_actuals(path, units), clock, **options)


# --------------------------------------------------------------------------------------------- CAISO


def _is_caiso_lmp(path: Path) -> bool:
    if path.suffix != ".zip":
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return not any(n.endswith("_actual.csv") for n in names) and any(
        "PRC_LMP" in n.upper() or "LMP" in n.upper() or n.endswith(".zip") for n in names)


def _is_caiso_curtailment(path: Path) -> bool:
    header = read_header(path)
    return bool(header) and header[0] == "datetime" and any(c.startswith("Total_Curtailment") for c in header)


def _open_caiso_curtailment(path: Path, clock: ReplayClock, **options: Any) -> SignalSet:
    timezone = options.pop("timezone", "UTC")
    by_kind = read_caiso_curtailment_csv(path, timezone=timezone)
    return SignalSet("caiso-file", [RecordedSignal(by_kind[k], clock, **options) for k in ("curtailment", "price")])


# --------------------------------------------------------------------------------------------- opening


def open_recording(path: str | Path, clock: ReplayClock, format: str | None = None, **options: Any) -> GridSignal:
    """The recorded signal in ``path`` (a file or directory) replayed on ``clock``: the named ``format`` or the
    one detected; ``options`` go to the format's opener."""
    path = Path(path)
    if not path.exists():
        raise SignalFormatError(f"recording '{path}' does not exist", provider="file")
    if format is not None:
        if format not in RECORDING_FORMATS:
            raise SignalFormatError(f"unknown recording format '{format}'; known: {', '.join(RECORDING_FORMATS)}",
                                    provider="file")
        return RECORDING_FORMATS[format].open(path, clock, **options)
    found = [f for f in RECORDING_FORMATS.values() if f.detect(path)]
    if not found:
        known = "; ".join(f"{f.name} ({f.description})" for f in RECORDING_FORMATS.values())
        raise SignalFormatError(f"'{path}' is in none of the recorded formats: {known}", provider="file")
    if len(found) > 1:
        raise SignalFormatError(f"'{path}' matches several formats: {', '.join(f.name for f in found)}; pass format=",
                                provider="file")
    return found[0].open(path, clock, **options)


def _safe(detect: Callable[[Path], bool]) -> Callable[[Path], bool]:
    def guarded(path: Path) -> bool:
        try:
            return bool(detect(path))
        except (OSError, ValueError, UnicodeDecodeError):
            return False
    return guarded


register_recording_format(RecordingFormat(
    "traces", "Electricity Maps portal CSVs and ENTSO-E 'Time,Carbon Intensity' CSVs (file or directory)",
    _safe(_is_trace), trace_signals))
register_recording_format(RecordingFormat(
    "dacf", "DACF balancing-area files with operator day-ahead forecasts", _safe(_is_dacf), dacf_signals))
register_recording_format(RecordingFormat(
    "watttime", "WattTime MOER actuals CSV, or a zip of *_actual.csv and *_forecast.csv", _safe(_is_watttime),
    _open_watttime))
register_recording_format(RecordingFormat(
    "caiso-lmp", "CAISO OASIS PRC_LMP zip (monthly CSVs or nested zips); day-ahead runs as forecasts",
    _safe(_is_caiso_lmp), caiso_lmp_recording))
register_recording_format(RecordingFormat(
    "caiso-curtailment", "CAISO week CSV 'datetime,LMP_NP15,Total_Curtailment_NP15_MW' (curtailment, price)",
    _safe(_is_caiso_curtailment), _open_caiso_curtailment))
register_signal("file", lambda path, clock, format=None, **options: open_recording(path, clock, format, **options))
