"""Carbon-intensity traces from any registered trace source, merged per zone into one ``(time, zone)`` dataset.

A trace source (``kind="trace"``: the Electricity Maps portal export, the ENTSO-E ``Time,Carbon Intensity``
file) loads one file as a contract dataset with the variables of :data:`TRACE_COLUMNS`.
:func:`load_traces` asks the registry which source reads each CSV of a directory
(:func:`~carbonsync.data.observations.base.detect_source`), merges the files of a zone (:func:`merge_zone`:
overlaps must agree, a kg/g mix-up between files is an error, gaps between files are checked) and joins the
zones on their common hours.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.logs import get_logger
from carbonsync.data.observations.base import (
    ObservationError,
    check_observations,
    detect_source,
    get_source,
    known_sources,
    observation_dataset,
    read_header,
    unreadable,
)
from carbonsync.data.observations.hourly import MAX_GAP_H, fill_gaps, fill_hourly

__all__ = ["TRACE_COLUMNS", "TRACE_UNITS", "dataset_frame", "load_traces", "merge_zone", "read_trace_file", "trace_dataset"]

log = get_logger(__name__)

TRACE_COLUMNS = ("carbon_intensity", "carbon_intensity_lca", "renewable_share", "low_carbon_share", "estimated")
TRACE_UNITS = {
    "carbon_intensity": "g CO2e/kWh",
    "carbon_intensity_lca": "g CO2e/kWh",
    "renewable_share": "1",
    "low_carbon_share": "1",
    "estimated": "1",
}
TRACE_LONG_NAMES = {
    "carbon_intensity": "direct (operational) carbon intensity of consumption or production",
    "carbon_intensity_lca": "life-cycle carbon intensity",
    "renewable_share": "renewable share of generation",
    "low_carbon_share": "low-carbon share of generation",
    "estimated": "value estimated by the data provider (or filled by a repair)",
}


def trace_dataset(frame: pd.DataFrame, source: str, path: str | Path, licence: str = "", origin: str = "") -> xr.Dataset:
    """The contract dataset (one zone) of a trace frame with the columns of :data:`TRACE_COLUMNS`.

    ``frame.attrs`` gives ``zone``, ``files`` and ``repairs``.
    """
    zone = str(frame.attrs["zone"])
    variables = {name: frame[[name]].set_axis([zone], axis=1) for name in TRACE_COLUMNS}
    return observation_dataset(
        variables, TRACE_UNITS, source=source, path=path, files=list(frame.attrs.get("files", [str(path)])),
        repairs=list(frame.attrs.get("repairs", [])), time_label="hour_start", licence=licence, origin=origin,
        long_names=TRACE_LONG_NAMES,
    )


def dataset_frame(ds: xr.Dataset) -> pd.DataFrame:
    """The frame of a one-zone trace dataset (columns :data:`TRACE_COLUMNS`, ``attrs`` zone, files, repairs)."""
    if ds.sizes.get("zone") != 1:
        raise ObservationError(f"trace dataset from '{ds.attrs.get('path')}' has {ds.sizes.get('zone')} zones, expected 1")
    zone = str(ds["zone"].values[0])
    index = pd.DatetimeIndex(ds["time"].values, name="time")
    frame = pd.DataFrame({name: ds[name].values[:, 0] for name in TRACE_COLUMNS}, index=index)
    frame.attrs.update(zone=zone, files=json.loads(ds.attrs["files"]), repairs=json.loads(ds.attrs["repairs"]),
                       source=ds.attrs["source"])
    return frame


def read_trace_file(path: str | Path, max_gap_h: int = MAX_GAP_H) -> pd.DataFrame | None:
    """A trace frame from whichever registered trace source reads ``path``; None when none does."""
    source = detect_source(path, kind="trace", required=False)
    if source is None:
        return None
    return dataset_frame(source.load(path, max_gap_h=max_gap_h))


def merge_zone(frames: Sequence[pd.DataFrame], max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """Merge frames of one zone (e.g. one file per year): overlaps must agree, gaps between files are checked."""
    if not frames:
        raise ObservationError("no frames to merge")
    zones = {f.attrs.get("zone") for f in frames}
    files = [name for f in frames for name in f.attrs.get("files", [])]
    if len(zones) != 1:
        raise ObservationError(f"cannot merge different zones {sorted(map(str, zones))} (files {', '.join(files)})")
    zone = frames[0].attrs["zone"]
    medians = [float(np.nanmedian(f["carbon_intensity"])) for f in frames]
    positive = [m for m in medians if m > 0]
    if positive and max(positive) > 100 * min(positive):
        low, high = int(np.argmin(medians)), int(np.argmax(medians))
        raise ObservationError(
            f"zone {zone}: median carbon intensity {medians[low]:.3g} in {frames[low].attrs['files']} vs "
            f"{medians[high]:.3g} in {frames[high].attrs['files']}: a kg/g unit mix-up between files"
        )
    both = pd.concat(frames).sort_index()
    dup = both.index.duplicated(keep="first")
    if dup.any():
        overlap = both[both.index.duplicated(keep=False)]
        spread = overlap.groupby(level=0)["carbon_intensity"].agg(lambda v: float(v.max() - v.min()))
        if (spread > 1e-6 * (1 + overlap["carbon_intensity"].abs().max())).any():
            bad = spread.index[spread.to_numpy() > 0][0]
            raise ObservationError(f"zone {zone}: files {', '.join(files)} disagree at {bad:%Y-%m-%d %H:%M}")
        both = both[~dup]
    # carbon intensity must be complete up to short gaps; a share some source lacks (an ENTSO-E file without
    # its production file, or one that ends earlier) stays NaN there
    merged, repairs = fill_hourly(both, ["carbon_intensity"], f"zone {zone}", max_gap_h)
    merged, _, _ = fill_gaps(merged, ["renewable_share"], max_gap_h)
    merged["estimated"] = merged["estimated"].astype("boolean").fillna(True).astype(bool)
    merged.index.name = "time"
    merged.attrs.update(zone=zone, files=files, repairs=[r for f in frames for r in f.attrs.get("repairs", [])] + repairs,
                        sources=sorted({f.attrs.get("source", "?") for f in frames}))
    return merged


def _unknown_file(path: Path, directory: Path) -> str:
    reason = unreadable(path)
    if reason:
        return f"trace directory '{directory}': file '{path.name}' cannot be read: {reason}"
    header = ", ".join(read_header(path)[:12]) or "none"
    return (f"trace directory '{directory}': file '{path.name}' is in none of the known formats (its columns: "
            f"{header}); trace formats: {', '.join(known_sources('trace'))}. Move it out of the directory or fix it.")


def load_traces(directory: str | Path, join: str = "inner", max_gap_h: int = MAX_GAP_H) -> xr.Dataset:
    """Every trace CSV (``*.csv``, ``*.csv.gz``) in ``directory`` merged per zone into one ``(time, zone)``
    contract dataset.

    Variables ``carbon_intensity`` (direct, g CO2e/kWh), ``renewable_share`` (0..1, NaN where a source
    has none) and ``estimated`` (the provider estimated the hour, or a repair filled it). ``join="inner"``
    keeps the hours every zone covers; ``"outer"`` keeps all (NaN elsewhere).
    Files of another registered format (e.g. ENTSO-E production files) are skipped and listed in
    ``attrs["skipped"]`` (JSON); any other file (an unknown header, another encoding than UTF-8, a truncated
    gzip) is an error naming it, never a silent skip. ``attrs["files"]`` and ``attrs["repairs"]`` are JSON
    objects by zone, ``attrs["source"]`` the trace sources read (``+``-joined), ``attrs["path"]`` the directory.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ObservationError(f"trace directory '{directory}' does not exist")
    if join not in ("inner", "outer"):
        raise ObservationError(f"join must be 'inner' or 'outer', got {join!r}")
    by_zone: dict[str, list[pd.DataFrame]] = {}
    skipped = []
    paths = sorted({*directory.glob("*.csv"), *directory.glob("*.csv.gz")})
    for path in paths:
        frame = read_trace_file(path, max_gap_h)
        if frame is not None:
            by_zone.setdefault(frame.attrs["zone"], []).append(frame)
        elif detect_source(path, required=False) is not None:  # a file of another kind, e.g. ENTSO-E production
            skipped.append(path.name)
        else:
            raise ObservationError(_unknown_file(path, directory))
    if not by_zone:
        found = ", ".join(p.name for p in paths) or "no CSV files"
        raise ObservationError(f"trace directory '{directory}' has no Electricity Maps or ENTSO-E carbon-intensity "
                               f"CSVs (it has {found})")
    if skipped:
        log.info("trace directory %s: skipped %d file(s) of other formats: %s", directory, len(skipped), ", ".join(skipped))
    zones = sorted(by_zone)
    merged = {z: merge_zone(by_zone[z], max_gap_h) for z in zones}
    if join == "inner":
        start = max(f.index[0] for f in merged.values())
        end = min(f.index[-1] for f in merged.values())
        if start > end:
            spans = "; ".join(f"{z} {f.index[0]:%Y-%m-%d} to {f.index[-1]:%Y-%m-%d}" for z, f in merged.items())
            raise ObservationError(f"trace directory '{directory}': the zones share no hours ({spans})")
    else:
        start = min(f.index[0] for f in merged.values())
        end = max(f.index[-1] for f in merged.values())
    times = pd.date_range(start, end, freq="h", name="time")
    variables = {name: pd.DataFrame({z: merged[z][name].reindex(times) for z in zones}, index=times)
                 for name in ("carbon_intensity", "renewable_share")}
    variables["estimated"] = pd.DataFrame(  # hours a zone lacks (outer join) count as estimated
        {z: merged[z]["estimated"].reindex(times).astype("boolean").fillna(True).astype(bool) for z in zones},
        index=times)
    sources = sorted({s for f in merged.values() for s in f.attrs["sources"]})
    registered = [get_source(s) for s in sources if s in known_sources()]
    licences = sorted({getattr(s, "licence", "") for s in registered} - {""})
    origins = sorted({getattr(s, "origin", "") for s in registered} - {""})
    ds = observation_dataset(
        variables, TRACE_UNITS, source="+".join(sources), path=directory,
        files={z: merged[z].attrs["files"] for z in zones}, repairs={z: merged[z].attrs["repairs"] for z in zones},
        time_label="hour_start", licence="; ".join(licences), origin="; ".join(origins), long_names=TRACE_LONG_NAMES,
        skipped=json.dumps(skipped),
    )
    return check_observations(ds)
