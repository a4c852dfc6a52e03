"""Electricity Maps hourly zone data: portal CSV exports, merged per zone.

A portal export (``{ZONE}_{YEAR}_hourly.csv``) has the columns ``Datetime (UTC), Country, Zone Name, Zone
Id, Carbon Intensity gCO₂eq/kWh (direct), Carbon Intensity gCO₂eq/kWh (LCA), Low Carbon Percentage,
Renewable Percentage, Data Source, Data Estimated, Data Estimation Method``. :func:`read_portal_csv` turns
one into a frame on naive-UTC whole hours with the columns of :data:`TRACE_COLUMNS`; :func:`load_zone`
merges several files of a zone; :func:`load_portal` (the registered source ``electricitymaps``) gives one
file as a contract dataset. :func:`load_traces` (from :mod:`carbonsync.data.observations.traces`, kept
importable here) reads a whole directory of trace files of any registered trace source (Electricity Maps,
ENTSO-E ``Time,Carbon Intensity``) into one ``(time, zone)`` dataset. The live API is a grid signal:
:class:`carbonsync.signals.electricitymaps.ElectricityMaps`.

Validation and documented repairs (every repair is listed in ``frame.attrs["repairs"]``):

- empty files, missing columns, unparsable times or values, several zone ids in one file: errors;
- times with a UTC offset are converted to UTC; naive times are taken as UTC (the header says so);
- exact duplicate rows are dropped; duplicated hours with different values are an error, and a duplicated
  hour next to a missing hour or on a daylight-saving transition night is reported as local time with a
  daylight-saving shift (the shared checks of :mod:`carbonsync.data.observations.hourly`);
- times off the whole hour are an error (the exports are hourly);
- missing hours (absent rows or empty values) up to ``max_gap_h`` (default 3) in a row are filled by
  linear interpolation in time; longer gaps are an error naming the first missing hour;
- a header in kgCO2eq/kWh is converted to g (x1000); values whose maximum is below 1 under a g header
  are rejected as a kg/g mix-up; files of one zone whose medians differ by more than 100x likewise;
- carbon intensity outside :data:`~carbonsync.data.observations.base.CARBON_INTENSITY_RANGE` (after any
  conversion: a kg header over g values), ``inf``, percentages outside 0..100 and percentage columns that
  hold fractions (largest value at most 1) are errors naming the column and row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.data.observations.base import (
    CARBON_INTENSITY_RANGE,
    FileSource,
    ObservationError,
    read_csv,
    read_header,
    register_source,
)
from carbonsync.data.observations.hourly import (
    HOUR,
    MAX_GAP_H,
    check_range,
    drop_duplicates,
    fill_hourly,
    parse_utc_times,
    require_whole_hours,
    to_numeric,
)
from carbonsync.data.observations.traces import TRACE_COLUMNS, load_traces, merge_zone, trace_dataset

__all__ = [
    "HOUR",
    "MAX_GAP_H",
    "SOURCE",
    "TRACE_COLUMNS",
    "ObservationError",
    "is_portal_csv",
    "load_portal",
    "load_traces",
    "load_zone",
    "merge_zone",
    "read_portal_csv",
]

LICENCE = "ODbL (Electricity Maps data: attribution and share-alike)"
ORIGIN = "Electricity Maps portal export (app.electricitymaps.com)"


# --- portal CSV -------------------------------------------------------------------------------------------

_INTENSITY = re.compile(r"^Carbon Intensity\s+(k?g)CO(?:₂|2)eq/kWh\s+\((direct|LCA)\)$", re.IGNORECASE)


def is_portal_csv(path: str | Path) -> bool:
    """Whether the file's header is an Electricity Maps portal export (a ``Zone Id`` and a carbon-intensity column)."""
    header = read_header(path)
    return "Zone Id" in header and any(_INTENSITY.match(c) for c in header)


def read_portal_csv(path: str | Path, max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """One Electricity Maps portal export as an hourly frame (see the module docstring for the checks).

    Columns: ``carbon_intensity`` (direct, gCO2eq/kWh), ``carbon_intensity_lca``, ``renewable_share`` and
    ``low_carbon_share`` (0..1), ``estimated`` (bool). ``attrs``: ``zone``, ``files``, ``repairs``.
    """
    path = Path(path)
    where = f"Electricity Maps file '{path}'"
    frame = read_csv(path, where)
    intensity = {}
    for column in frame.columns:
        match = _INTENSITY.match(str(column).strip())
        if match:
            intensity[match.group(2).lower()] = (column, match.group(1).lower())
    required = ["Datetime (UTC)", "Zone Id", "Renewable Percentage"]
    missing = [c for c in required if c not in frame.columns]
    if "direct" not in intensity:
        missing.append("Carbon Intensity gCO₂eq/kWh (direct)")
    if missing:
        raise ObservationError(f"{where}: missing column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")
    zones = frame["Zone Id"].dropna().astype(str).unique()
    if len(zones) != 1:
        raise ObservationError(f"{where}: expected one zone per file, found Zone Id {', '.join(zones) or 'none'}")
    times, repairs = parse_utc_times(frame["Datetime (UTC)"], where, "Datetime (UTC)")
    require_whole_hours(times, where, "Datetime (UTC)")
    out = pd.DataFrame(index=times)
    for kind, name in (("direct", "carbon_intensity"), ("lca", "carbon_intensity_lca")):
        if kind not in intensity:
            out[name] = np.nan
            continue
        column, unit = intensity[kind]
        values = to_numeric(frame, column, where).to_numpy(dtype=np.float64)
        if unit == "kg":
            values = values * 1000.0
            repairs.append(f"converted '{column}' from kg to g per kWh (x1000)")
        elif kind == "direct" and len(values) >= 24 and np.nanmax(values, initial=-np.inf) < 1.0:
            raise ObservationError(
                f"{where}: column '{column}' says gCO2eq/kWh but its largest value is {np.nanmax(values):.3g}; "
                "the values look like kgCO2eq/kWh"
            )
        check_range(values, CARBON_INTENSITY_RANGE, where, column, "g CO2e/kWh",
                    hint=" (the header says kg: are the values in g?)" if unit == "kg" else " (wrong units?)")
        out[name] = values
    for column, name in (("Renewable Percentage", "renewable_share"), ("Low Carbon Percentage", "low_carbon_share")):
        if column not in frame.columns:
            out[name] = np.nan
            continue
        values = to_numeric(frame, column, where).to_numpy(dtype=np.float64)
        check_range(values, (0.0, 100.0), where, column, "%")
        if len(values) >= 24 and 0 < np.nanmax(values, initial=0.0) <= 1.0:
            raise ObservationError(
                f"{where}: column '{column}' is a percentage but its largest value is {np.nanmax(values):.3g}; "
                "the values look like fractions (0..1), not percent (0..100)"
            )
        out[name] = values / 100.0
    estimated = frame["Data Estimated"] if "Data Estimated" in frame.columns else pd.Series(False, index=frame.index)
    out["estimated"] = estimated.astype(str).str.strip().str.lower().isin(["true", "1", "yes"]).to_numpy()
    out, more = drop_duplicates(out, where, "Datetime (UTC)")
    repairs += more
    out, more = fill_hourly(out, ["carbon_intensity", "renewable_share"], where, max_gap_h)
    repairs += more
    out["estimated"] = out["estimated"].astype("boolean").fillna(True).astype(bool)
    out.index.name = "time"
    out.attrs.update(zone=str(zones[0]), files=[str(path)], repairs=repairs)
    return out


def load_zone(paths: Iterable[str | Path], max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """Read and merge several portal exports of the same zone."""
    return merge_zone([read_portal_csv(p, max_gap_h) for p in paths], max_gap_h)


def load_portal(path: str | Path, max_gap_h: int = MAX_GAP_H) -> xr.Dataset:
    """One portal export as a contract dataset (one zone, the variables of :data:`TRACE_COLUMNS`)."""
    return trace_dataset(read_portal_csv(path, max_gap_h), SOURCE_NAME, path, LICENCE, ORIGIN)


SOURCE_NAME = "electricitymaps"
SOURCE = register_source(FileSource(
    name=SOURCE_NAME, kind="trace", description="Electricity Maps portal export {ZONE}_{YEAR}_hourly.csv",
    matches=is_portal_csv, loader=load_portal, licence=LICENCE, origin=ORIGIN,
))
