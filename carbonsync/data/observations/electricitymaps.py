"""Electricity Maps hourly zone data: portal CSV exports, merged per zone, and the history API.

A portal export (``{ZONE}_{YEAR}_hourly.csv``) has the columns ``Datetime (UTC), Country, Zone Name, Zone
Id, Carbon Intensity gCO₂eq/kWh (direct), Carbon Intensity gCO₂eq/kWh (LCA), Low Carbon Percentage,
Renewable Percentage, Data Source, Data Estimated, Data Estimation Method``. :func:`read_portal_csv` turns
one into a frame on naive-UTC whole hours with the columns of :data:`TRACE_COLUMNS`; :func:`load_zone`
merges several files of a zone; :func:`load_traces` reads a whole directory (Electricity Maps and ENTSO-E
``Time,Carbon Intensity`` files) into one ``(time, zone)`` dataset.

Validation and documented repairs (every repair is listed in ``frame.attrs["repairs"]``):

- empty files, missing columns, unparsable times or values, several zone ids in one file: errors;
- times with a UTC offset are converted to UTC; naive times are taken as UTC (the header says so);
- exact duplicate rows are dropped; duplicated hours with different values are an error, and a duplicated
  hour next to a missing hour is reported as local time with a daylight-saving shift;
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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.errors import CarbonSyncError

TRACE_COLUMNS = ("carbon_intensity", "carbon_intensity_lca", "renewable_share", "low_carbon_share", "estimated")
API_URL = "https://api.electricitymap.org/v3/carbon-intensity/history"
API_KEY_ENV = "ELECTRICITYMAPS_API_KEY"
MAX_GAP_H = 3
HOUR = pd.Timedelta(hours=1)


class ObservationError(CarbonSyncError, ValueError):
    """An observation file or API response that cannot be read as described."""


# --- shared hourly-series checks (also used by the ENTSO-E reader) -----------------------------------------


def parse_utc_times(values: pd.Series, where: str, column: str) -> tuple[pd.DatetimeIndex, list[str]]:
    """Naive-UTC times from strings; offsets are converted (and reported as a repair)."""
    text = values.astype(str).str.strip()
    has_offset = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True)
    try:
        times = pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError) as err:
        raise ObservationError(f"{where}: column '{column}' is not ISO datetimes ({err})") from None
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ObservationError(f"{where}: column '{column}' row {row + 2} has no time ({values.iloc[row]!r})")
    repairs = []
    offsets = has_offset & ~text.str.endswith(("Z", "+00:00", "+0000"))
    if offsets.any():
        repairs.append(f"converted {int(offsets.sum())} time(s) with a UTC offset to UTC")
    return pd.DatetimeIndex(times.dt.tz_localize(None)), repairs


def check_duplicates(frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, list[str]]:
    """Drop exact duplicate rows; duplicated times with different values are an error (DST hint)."""
    repairs: list[str] = []
    exact = frame.reset_index().duplicated(keep="first").to_numpy()
    if exact.any():
        repairs.append(f"dropped {int(exact.sum())} exact duplicate row(s)")
        frame = frame[~exact]
    dup = frame.index.duplicated(keep=False)
    if dup.any():
        first = frame.index[dup][0]
        expected = pd.date_range(frame.index.min(), frame.index.max(), freq="h")
        missing = expected.difference(frame.index)
        if len(missing) or first.month in (3, 4, 9, 10, 11):
            gap = f" and {missing[0]:%Y-%m-%d %H:%M} is missing" if len(missing) else ""
            raise ObservationError(
                f"{where}: hour {first:%Y-%m-%d %H:%M} appears twice with different values{gap}: the times look like "
                "local time with a daylight-saving shift; convert them to UTC"
            )
        raise ObservationError(f"{where}: hour {first:%Y-%m-%d %H:%M} appears twice with different values")
    return frame.sort_index(), repairs


def fill_hourly(frame: pd.DataFrame, value_columns: Sequence[str], where: str, max_gap_h: int = MAX_GAP_H
                ) -> tuple[pd.DataFrame, list[str]]:
    """Reindex to every hour between the first and last; interpolate runs of <= ``max_gap_h`` missing hours."""
    full = pd.date_range(frame.index.min(), frame.index.max(), freq="h")
    frame = frame.reindex(full)
    missing = frame[list(value_columns)].isna().any(axis=1).to_numpy()
    if not missing.any():
        return frame, []
    run_id = np.cumsum(np.concatenate([[True], missing[1:] != missing[:-1]]))
    runs = pd.Series(missing).groupby(run_id).agg(["first", "size"])
    too_long = runs[runs["first"] & (runs["size"] > max_gap_h)]
    if len(too_long):
        start = int(np.flatnonzero(run_id == too_long.index[0])[0])
        raise ObservationError(
            f"{where}: {int(too_long['size'].iloc[0])} missing hour(s) in a row from {full[start]:%Y-%m-%d %H:%M} "
            f"(at most {max_gap_h} are filled by interpolation)"
        )
    filled = frame.copy()
    for column in value_columns:
        filled[column] = frame[column].interpolate(method="time", limit_area="inside")
    return filled, [f"interpolated {int(missing.sum())} missing hour(s) (gaps of at most {max_gap_h} h)"]


def _numeric(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna() & (frame[column].astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ObservationError(f"{where}: column '{column}' row {row + 2} is not a number ({frame[column].iloc[row]!r})")
    return values


def _read_csv(path: Path, kind: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ObservationError(f"{kind} file '{path}' does not exist")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ObservationError(f"{kind} file '{path}' is empty") from None
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise ObservationError(f"{kind} file '{path}' cannot be read: {err}") from None
    if frame.empty:
        raise ObservationError(f"{kind} file '{path}' has a header but no rows")
    return frame


# --- portal CSV -------------------------------------------------------------------------------------------

_INTENSITY = re.compile(r"^Carbon Intensity\s+(k?g)CO(?:₂|2)eq/kWh\s+\((direct|LCA)\)$", re.IGNORECASE)


def is_portal_csv(path: Path) -> bool:
    """Whether the file's header is an Electricity Maps portal export."""
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return "Zone Id" in header and "Carbon Intensity" in header


def read_portal_csv(path: str | Path, max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """One Electricity Maps portal export as an hourly frame (see the module docstring for the checks).

    Columns: ``carbon_intensity`` (direct, gCO2eq/kWh), ``carbon_intensity_lca``, ``renewable_share`` and
    ``low_carbon_share`` (0..1), ``estimated`` (bool). ``attrs``: ``zone``, ``files``, ``repairs``.
    """
    path = Path(path)
    where = f"Electricity Maps file '{path}'"
    frame = _read_csv(path, "Electricity Maps")
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
    off_hour = times != times.floor("h")
    if off_hour.any():
        raise ObservationError(f"{where}: time {times[off_hour][0]} is not on a whole hour (the exports are hourly)")
    out = pd.DataFrame(index=times)
    for kind, name in (("direct", "carbon_intensity"), ("lca", "carbon_intensity_lca")):
        if kind not in intensity:
            out[name] = np.nan
            continue
        column, unit = intensity[kind]
        values = _numeric(frame, column, where).to_numpy(dtype=np.float64)
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
        values = _numeric(frame, column, where).to_numpy(dtype=np.float64)
        if np.nanmin(values, initial=0.0) < 0 or np.nanmax(values, initial=0.0) > 100:
            span = f"{np.nanmin(values):.3g}..{np.nanmax(values):.3g}"
            raise ObservationError(f"{where}: column '{column}' must lie in 0..100, got {span}")
        out[name] = values / 100.0
    estimated = frame["Data Estimated"] if "Data Estimated" in frame.columns else pd.Series(False, index=frame.index)
    out["estimated"] = estimated.astype(str).str.strip().str.lower().isin(["true", "1", "yes"]).to_numpy()
    out, more = check_duplicates(out, where)
    repairs += more
    out, more = fill_hourly(out, ["carbon_intensity", "renewable_share"], where, max_gap_h)
    repairs += more
    out["estimated"] = out["estimated"].astype("boolean").fillna(True).astype(bool)
    out.index.name = "time"
    out.attrs.update(zone=str(zones[0]), files=[str(path)], repairs=repairs)
    return out


def merge_zone(frames: Sequence[pd.DataFrame], max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """Merge frames of one zone (e.g. one file per year): overlaps must agree, gaps between files are checked."""
    if not frames:
        raise ObservationError("no frames to merge")
    zones = {f.attrs.get("zone") for f in frames}
    files = [name for f in frames for name in f.attrs.get("files", [])]
    if len(zones) != 1:
        raise ObservationError(f"cannot merge different zones {sorted(map(str, zones))} (files {', '.join(files)})")
    medians = [float(np.nanmedian(f["carbon_intensity"])) for f in frames]
    positive = [m for m in medians if m > 0]
    if positive and max(positive) > 100 * min(positive):
        low, high = int(np.argmin(medians)), int(np.argmax(medians))
        raise ObservationError(
            f"zone {zones.pop()}: median carbon intensity {medians[low]:.3g} in {frames[low].attrs['files']} vs "
            f"{medians[high]:.3g} in {frames[high].attrs['files']}: a kg/g unit mix-up between files"
        )
    both = pd.concat(frames).sort_index()
    dup = both.index.duplicated(keep="first")
    if dup.any():
        overlap = both[both.index.duplicated(keep=False)]
        spread = overlap.groupby(level=0)["carbon_intensity"].agg(lambda v: float(v.max() - v.min()))
        if (spread > 1e-6 * (1 + overlap["carbon_intensity"].abs().max())).any():
            bad = spread.index[spread.to_numpy() > 0][0]
            raise ObservationError(f"zone {frames[0].attrs['zone']}: files {', '.join(files)} disagree at {bad:%Y-%m-%d %H:%M}")
        both = both[~dup]
    merged, repairs = fill_hourly(both, ["carbon_intensity", "renewable_share"], f"zone {frames[0].attrs['zone']}", max_gap_h)
    merged["estimated"] = merged["estimated"].astype("boolean").fillna(True).astype(bool)
    merged.index.name = "time"
    merged.attrs.update(
        zone=frames[0].attrs["zone"],
        files=files,
        repairs=[r for f in frames for r in f.attrs.get("repairs", [])] + repairs,
    )
    return merged


def load_zone(paths: Iterable[str | Path], max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """Read and merge several portal exports of the same zone."""
    return merge_zone([read_portal_csv(p, max_gap_h) for p in paths], max_gap_h)


def read_trace_file(path: Path, max_gap_h: int = MAX_GAP_H) -> pd.DataFrame | None:
    """A carbon-intensity trace from an Electricity Maps export or an ENTSO-E ``Time,Carbon Intensity`` file.

    Returns None for other CSVs (e.g. ENTSO-E production files).
    """
    from carbonsync.data.observations import entsoe

    if is_portal_csv(path):
        return read_portal_csv(path, max_gap_h)
    if entsoe.is_ci_csv(path):
        return entsoe.read_ci_csv(path, max_gap_h=max_gap_h)
    return None


def load_traces(directory: str | Path, join: str = "inner", max_gap_h: int = MAX_GAP_H) -> xr.Dataset:
    """Every trace CSV in ``directory`` merged per zone into a ``(time, zone)`` dataset.

    Variables ``carbon_intensity`` (direct, gCO2eq/kWh) and ``renewable_share`` (0..1, NaN where a source
    has none). ``join="inner"`` keeps the hours every zone covers; ``"outer"`` keeps all (NaN elsewhere).
    Files that are not traces (no Electricity Maps or ``Time,Carbon Intensity`` header) are skipped and
    listed in ``attrs["skipped"]``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ObservationError(f"trace directory '{directory}' does not exist")
    by_zone: dict[str, list[pd.DataFrame]] = {}
    skipped = []
    for path in sorted(directory.glob("*.csv")):
        frame = read_trace_file(path, max_gap_h)
        if frame is None:
            skipped.append(path.name)
            continue
        by_zone.setdefault(frame.attrs["zone"], []).append(frame)
    if not by_zone:
        raise ObservationError(f"trace directory '{directory}' has no Electricity Maps or ENTSO-E carbon-intensity CSVs")
    zones = sorted(by_zone)
    merged = {z: merge_zone(by_zone[z], max_gap_h) for z in zones}
    if join == "inner":
        start = max(f.index[0] for f in merged.values())
        end = min(f.index[-1] for f in merged.values())
        if start > end:
            spans = "; ".join(f"{z} {f.index[0]:%Y-%m-%d} to {f.index[-1]:%Y-%m-%d}" for z, f in merged.items())
            raise ObservationError(f"trace directory '{directory}': the zones share no hours ({spans})")
        times = pd.date_range(start, end, freq="h")
    elif join == "outer":
        times = pd.date_range(min(f.index[0] for f in merged.values()), max(f.index[-1] for f in merged.values()), freq="h")
    else:
        raise ObservationError(f"join must be 'inner' or 'outer', got {join!r}")
    data = {
        name: (("time", "zone"), np.stack([merged[z][name].reindex(times).to_numpy(dtype=np.float64) for z in zones], axis=1))
        for name in ("carbon_intensity", "renewable_share")
    }
    ds = xr.Dataset(data, coords={"time": times, "zone": zones})
    ds["carbon_intensity"].attrs["units"] = "gCO2eq/kWh"
    ds["renewable_share"].attrs["units"] = "1"
    ds.attrs.update(
        source=str(directory),
        files=json.dumps({z: merged[z].attrs["files"] for z in zones}),
        repairs=json.dumps({z: merged[z].attrs["repairs"] for z in zones}),
        skipped=json.dumps(skipped),
    )
    return ds


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
    out["carbon_intensity"] = _numeric(rows, "carbonIntensity", where).to_numpy(dtype=np.float64)
    out["carbon_intensity_lca"] = np.nan
    out["renewable_share"] = np.nan
    out["low_carbon_share"] = np.nan
    estimated = rows["isEstimated"] if "isEstimated" in rows.columns else pd.Series(False, index=rows.index)
    out["estimated"] = estimated.fillna(False).astype(bool).to_numpy()
    out, more = check_duplicates(out, where)
    out, filled = fill_hourly(out, ["carbon_intensity"], where)
    out["estimated"] = out["estimated"].astype("boolean").fillna(True).astype(bool)
    out.index.name = "time"
    out.attrs.update(zone=zone, files=[API_URL], repairs=repairs + more + filled)
    return out
