"""Electricity Maps hourly zone data: portal CSV exports, merged per zone, and the history API.

A portal export (``{ZONE}_{YEAR}_hourly.csv``) has the columns ``Datetime (UTC), Country, Zone Name, Zone
Id, Carbon Intensity gCO₂eq/kWh (direct), Carbon Intensity gCO₂eq/kWh (LCA), Low Carbon Percentage,
Renewable Percentage, Data Source, Data Estimated, Data Estimation Method``. :func:`read_portal_csv` turns
one into a frame on naive-UTC whole hours with the columns of :data:`TRACE_COLUMNS`; :func:`load_zone`
merges several files of a zone; :func:`load_portal` (the registered source ``electricitymaps``) gives one
file as a contract dataset. :func:`load_traces` (from :mod:`carbonsync.data.observations.traces`, kept
importable here) reads a whole directory of trace files of any registered trace source (Electricity Maps,
ENTSO-E ``Time,Carbon Intensity``) into one ``(time, zone)`` dataset.

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
  are rejected as a kg/g mix-up; files of one zone whose medians differ by more than 100x likewise.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.data.observations.base import (
    FileSource,
    ObservationError,
    check_observations,
    read_csv,
    read_header,
    register_source,
)
from carbonsync.data.observations.hourly import (
    HOUR,
    MAX_GAP_H,
    drop_duplicates,
    fill_hourly,
    parse_utc_times,
    require_whole_hours,
    to_numeric,
)
from carbonsync.data.observations.traces import TRACE_COLUMNS, load_traces, merge_zone, trace_dataset

__all__ = [
    "API_KEY_ENV",
    "API_URL",
    "HOUR",
    "MAX_GAP_H",
    "SOURCE",
    "TRACE_COLUMNS",
    "ObservationError",
    "fetch_history",
    "fetch_history_dataset",
    "is_portal_csv",
    "load_portal",
    "load_traces",
    "load_zone",
    "merge_zone",
    "parse_history",
    "read_portal_csv",
]

API_URL = "https://api.electricitymap.org/v3/carbon-intensity/history"
API_KEY_ENV = "ELECTRICITYMAPS_API_KEY"
LICENCE = "ODbL (Electricity Maps data: attribution and share-alike)"
ORIGIN = "Electricity Maps portal export (app.electricitymaps.com)"
API_LICENCE = "Electricity Maps API terms of the key's plan"


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
        if np.nanmin(values, initial=0.0) < 0:
            raise ObservationError(f"{where}: column '{column}' has negative values (min {np.nanmin(values):.3g})")
        out[name] = values
    for column, name in (("Renewable Percentage", "renewable_share"), ("Low Carbon Percentage", "low_carbon_share")):
        if column not in frame.columns:
            out[name] = np.nan
            continue
        values = to_numeric(frame, column, where).to_numpy(dtype=np.float64)
        if np.nanmin(values, initial=0.0) < 0 or np.nanmax(values, initial=0.0) > 100:
            span = f"{np.nanmin(values):.3g}..{np.nanmax(values):.3g}"
            raise ObservationError(f"{where}: column '{column}' must lie in 0..100, got {span}")
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


# --- history API ------------------------------------------------------------------------------------------

Opener = Callable[..., Any]


def _urlopen(request: urllib.request.Request, timeout: float) -> Any:
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - fixed https URL


def fetch_history(zone: str, api_key: str | None = None, *, timeout: float = 30.0, opener: Opener | None = None
                  ) -> pd.DataFrame:
    """The last 24 h of hourly carbon intensity of ``zone`` from the Electricity Maps API.

    The key comes from ``api_key`` or the environment variable ``ELECTRICITYMAPS_API_KEY``; ``opener``
    (default ``urllib.request.urlopen``) is the HTTP layer. Returns the frame of :func:`read_portal_csv`
    (``carbon_intensity`` from ``carbonIntensity``, ``estimated`` from ``isEstimated``).
    """
    if not isinstance(zone, str) or not zone.strip():
        raise ObservationError(f"zone must be a zone id such as 'DE', got {zone!r}")
    key = api_key or os.environ.get(API_KEY_ENV)
    if not key:
        raise ObservationError(f"no Electricity Maps API key: pass api_key or set {API_KEY_ENV}")
    url = f"{API_URL}?{urllib.parse.urlencode({'zone': zone})}"
    request = urllib.request.Request(url, headers={"auth-token": key, "Accept": "application/json"})
    try:
        with (opener or _urlopen)(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        hint = " (check the API key)" if err.code in (401, 403) else ""
        raise ObservationError(f"Electricity Maps API: HTTP {err.code} {err.reason} for zone {zone}{hint}") from None
    except urllib.error.URLError as err:
        raise ObservationError(f"Electricity Maps API unreachable for zone {zone}: {err.reason}") from None
    return parse_history(body, zone)


def fetch_history_dataset(zone: str, api_key: str | None = None, *, timeout: float = 30.0, opener: Opener | None = None
                          ) -> xr.Dataset:
    """:func:`fetch_history` as a contract trace dataset (``source`` ``electricitymaps-api``, ``path`` the API URL)."""
    frame = fetch_history(zone, api_key, timeout=timeout, opener=opener)
    return check_observations(trace_dataset(frame, "electricitymaps-api", API_URL, API_LICENCE, API_URL))


def parse_history(body: bytes | str, zone: str) -> pd.DataFrame:
    """Parse a ``/v3/carbon-intensity/history`` JSON response."""
    where = f"Electricity Maps API response for zone {zone}"
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ObservationError(f"{where} is not JSON: {err}") from None
    history = doc.get("history") if isinstance(doc, dict) else None
    if not isinstance(history, list):
        keys = ", ".join(doc) if isinstance(doc, dict) else type(doc).__name__
        raise ObservationError(f"{where} has no 'history' list (keys: {keys})")
    if not history:
        raise ObservationError(f"{where}: 'history' is empty")
    rows = pd.DataFrame(history)
    missing = [c for c in ("datetime", "carbonIntensity") if c not in rows.columns]
    if missing:
        raise ObservationError(f"{where}: entries lack {', '.join(missing)}")
    if isinstance(doc.get("zone"), str) and doc["zone"] != zone:
        raise ObservationError(f"{where}: it is for zone {doc['zone']}")
    times, repairs = parse_utc_times(rows["datetime"], where, "datetime")
    out = pd.DataFrame(index=times)
    out["carbon_intensity"] = to_numeric(rows, "carbonIntensity", where).to_numpy(dtype=np.float64)
    out["carbon_intensity_lca"] = np.nan
    out["renewable_share"] = np.nan
    out["low_carbon_share"] = np.nan
    estimated = rows["isEstimated"] if "isEstimated" in rows.columns else pd.Series(False, index=rows.index)
    out["estimated"] = estimated.fillna(False).astype(bool).to_numpy()
    out, more = drop_duplicates(out, where, "datetime")
    out, filled = fill_hourly(out, ["carbon_intensity"], where)
    out["estimated"] = out["estimated"].astype("boolean").fillna(True).astype(bool)
    out.index.name = "time"
    out.attrs.update(zone=zone, files=[API_URL], repairs=repairs + more + filled)
    return out
