"""ENTSO-E based traces: ``Time,Carbon Intensity`` CSVs and generation-by-fuel CSVs (lets-wait-awhile format).

:func:`read_ci_csv` reads a 15/30/60-minute carbon-intensity file (gCO2/kWh, times UTC) and averages it to
hourly values labelled by the hour's start (each hour is the mean of the readings that start in it, so a
change of resolution mid-file, as in ``gb_ci.csv``, needs no special case). The zone id is the upper-cased
file-name prefix (``gb_ci.csv`` -> ``GB``). When a ``{prefix}_production.csv`` lies beside it, the
renewable share comes from it (:func:`renewable_share`); otherwise ``renewable_share`` is NaN.

:func:`read_production_csv` reads generation per fuel (MW) plus cross-border flows (two-letter country
columns) and averages it hourly. Checks and repairs are those of
:mod:`carbonsync.data.observations.electricitymaps` (duplicates, DST, gaps up to ``max_gap_h`` hours).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from carbonsync.data.observations.electricitymaps import (
    MAX_GAP_H,
    ObservationError,
    _read_csv,
    check_duplicates,
    fill_hourly,
    parse_utc_times,
)

CI_COLUMNS = ("Time", "Carbon Intensity")
RENEWABLE_FUELS = (
    "Biomass",
    "Geothermal",
    "Hydro Run-of-river and poundage",
    "Hydro Water Reservoir",
    "Marine",
    "Other renewable",
    "Solar",
    "Wind Offshore",
    "Wind Onshore",
)


def is_ci_csv(path: Path) -> bool:
    """Whether the file's header is exactly ``Time,Carbon Intensity``."""
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return [c.strip() for c in header.split(",")] == list(CI_COLUMNS)


def zone_from_path(path: Path) -> str:
    """``gb_ci.csv`` -> ``GB``."""
    return Path(path).stem.split("_")[0].upper()


def _hourly_mean(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Mean of the readings starting in each hour; readings must be on a regular sub-hourly grid."""
    minutes = frame.index.minute + frame.index.second / 60
    if not np.isin(np.asarray(minutes), [0, 15, 30, 45]).all():
        bad = frame.index[~np.isin(np.asarray(minutes), [0, 15, 30, 45])][0]
        raise ObservationError(f"{where}: time {bad} is not on a 15-minute boundary")
    return frame.groupby(frame.index.floor("h")).mean()


def read_ci_csv(path: str | Path, zone: str | None = None, max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """An hourly ``carbon_intensity`` (gCO2/kWh) frame from a ``Time,Carbon Intensity`` file.

    Columns as :func:`carbonsync.data.observations.electricitymaps.read_portal_csv` (``carbon_intensity_lca``
    and ``low_carbon_share`` NaN, ``estimated`` False); ``attrs``: ``zone``, ``files``, ``repairs``.
    """
    path = Path(path)
    where = f"ENTSO-E carbon-intensity file '{path}'"
    frame = _read_csv(path, "ENTSO-E carbon-intensity")
    missing = [c for c in CI_COLUMNS if c not in frame.columns]
    if missing:
        raise ObservationError(f"{where}: missing column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")
    times, repairs = parse_utc_times(frame["Time"], where, "Time")
    values = pd.to_numeric(frame["Carbon Intensity"], errors="coerce")
    bad = values.isna() & frame["Carbon Intensity"].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ObservationError(f"{where}: row {row + 2} is not a number ({frame['Carbon Intensity'].iloc[row]!r})")
    if np.nanmin(values, initial=0.0) < 0:
        raise ObservationError(f"{where}: negative carbon intensity (min {np.nanmin(values):.3g})")
    if len(values) >= 48 and np.nanmax(values, initial=-np.inf) < 1.0:
        raise ObservationError(
            f"{where}: largest carbon intensity is {np.nanmax(values):.3g}; the values look like kgCO2/kWh, not g"
        )
    raw = pd.DataFrame({"carbon_intensity": values.to_numpy(dtype=np.float64)}, index=times)
    raw, more = check_duplicates(raw, where)
    repairs += more
    hourly = _hourly_mean(raw, where)
    zone = zone or zone_from_path(path)
    share = np.nan
    production_path = path.with_name(path.name.replace("_ci", "_production"))
    if production_path != path and production_path.is_file():
        share = renewable_share(read_production_csv(production_path, max_gap_h)).reindex(hourly.index)
    hourly["renewable_share"] = share
    hourly, more = fill_hourly(hourly, ["carbon_intensity"], where, max_gap_h)
    repairs += more
    hourly["renewable_share"] = hourly["renewable_share"].interpolate(method="time", limit=max_gap_h, limit_area="inside")
    hourly["carbon_intensity_lca"] = np.nan
    hourly["low_carbon_share"] = np.nan
    hourly["estimated"] = False
    hourly.index.name = "time"
    hourly = hourly[["carbon_intensity", "carbon_intensity_lca", "renewable_share", "low_carbon_share", "estimated"]]
    hourly.attrs.update(zone=zone, files=[str(path)], repairs=repairs)
    return hourly


def read_production_csv(path: str | Path, max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """Hourly mean generation per fuel (MW) and cross-border flows (two-letter columns) from a production CSV."""
    path = Path(path)
    where = f"ENTSO-E production file '{path}'"
    frame = _read_csv(path, "ENTSO-E production")
    time_column = frame.columns[0]
    times, repairs = parse_utc_times(frame[time_column], where, str(time_column))
    values = frame.drop(columns=[time_column]).apply(pd.to_numeric, errors="coerce")
    if values.shape[1] == 0:
        raise ObservationError(f"{where}: no generation columns")
    fuels = [c for c in values.columns if not _is_flow(c)]
    if not fuels:
        raise ObservationError(f"{where}: no fuel columns (only cross-border flows {', '.join(values.columns)})")
    values.index = times
    values, more = check_duplicates(values, where)
    repairs += more
    hourly = _hourly_mean(values, where)
    hourly, more = fill_hourly(hourly, fuels, where, max_gap_h)
    hourly.index.name = "time"
    hourly.attrs.update(zone=zone_from_path(path), files=[str(path)], repairs=repairs + more, fuels=fuels)
    return hourly


def _is_flow(column: str) -> bool:
    return len(column) == 2 and column.isupper()


def renewable_share(production: pd.DataFrame) -> pd.Series:
    """Renewable generation over total generation (fuel columns, negatives such as pumping clipped to 0)."""
    fuels = [c for c in production.columns if not _is_flow(c)]
    generation = production[fuels].clip(lower=0.0)
    total = generation.sum(axis=1)
    renewable = generation[[c for c in fuels if c in RENEWABLE_FUELS]].sum(axis=1)
    return (renewable / total.where(total > 0)).clip(0.0, 1.0).rename("renewable_share")
