"""ENTSO-E based traces: ``Time,Carbon Intensity`` CSVs and generation-by-fuel CSVs (lets-wait-awhile format).

:func:`read_ci_csv` reads a 15/30/60-minute carbon-intensity file (gCO2/kWh, times UTC) and averages it to
hourly values labelled by the hour's start (each hour is the mean of the readings that start in it, so a
change of resolution mid-file, as in ``gb_ci.csv``, needs no special case). The zone id is the upper-cased
file-name prefix (``gb_ci.csv`` -> ``GB``). When a ``{prefix}_production.csv`` lies beside it, the
renewable share comes from it (:func:`renewable_share`); otherwise ``renewable_share`` is NaN.

:func:`read_production_csv` reads generation per fuel (MW) plus cross-border flows (two-letter country
columns) and averages it hourly. Checks and repairs are the shared ones of
:mod:`carbonsync.data.observations.hourly` (duplicates, DST, gaps up to ``max_gap_h`` hours).

Two registered sources: ``entsoe-ci`` (``kind="trace"``, read by
:func:`~carbonsync.data.observations.traces.load_traces`) and ``entsoe-production`` (``kind="generation"``:
``generation_<fuel>`` and ``flow_<country>`` in MW plus ``renewable_share``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.data.observations.base import (
    CARBON_INTENSITY_RANGE,
    FileSource,
    ObservationError,
    observation_dataset,
    read_csv,
    read_header,
    register_source,
)
from carbonsync.data.observations.hourly import (
    MAX_GAP_H,
    check_range,
    drop_duplicates,
    fill_hourly,
    hourly_mean,
    parse_utc_times,
    to_numeric,
)
from carbonsync.data.observations.traces import TRACE_COLUMNS, trace_dataset

__all__ = [
    "CI_COLUMNS",
    "CI_SOURCE",
    "PRODUCTION_SOURCE",
    "RENEWABLE_FUELS",
    "is_ci_csv",
    "is_production_csv",
    "load_ci",
    "load_production",
    "read_ci_csv",
    "read_production_csv",
    "renewable_share",
    "zone_from_path",
]

LICENCE = "no licence file (ENTSO-E transparency platform data)"
ORIGIN = "ENTSO-E transparency platform via dos-group/lets-wait-awhile data/"

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
FOSSIL_AND_OTHER_FUELS = (
    "Fossil Brown coal/Lignite",
    "Fossil Coal-derived gas",
    "Fossil Gas",
    "Fossil Hard coal",
    "Fossil Oil",
    "Fossil Oil shale",
    "Fossil Peat",
    "Hydro Pumped Storage",
    "Nuclear",
    "Other",
    "Waste",
)


def is_ci_csv(path: str | Path) -> bool:
    """Whether the file's header is exactly ``Time,Carbon Intensity``."""
    return read_header(path) == list(CI_COLUMNS)


def is_production_csv(path: str | Path) -> bool:
    """Whether the header is a time column followed by ENTSO-E production types (and two-letter flow columns)."""
    header = read_header(path)
    rest = header[1:]
    known = set(RENEWABLE_FUELS) | set(FOSSIL_AND_OTHER_FUELS)
    return bool(rest) and any(c in known for c in rest) and all(c in known or _is_flow(c) for c in rest)


def zone_from_path(path: Path) -> str:
    """``gb_ci.csv`` -> ``GB``."""
    return Path(path).stem.split("_")[0].upper()


def read_ci_csv(path: str | Path, zone: str | None = None, max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """An hourly ``carbon_intensity`` (gCO2/kWh) frame from a ``Time,Carbon Intensity`` file.

    Columns as :func:`carbonsync.data.observations.electricitymaps.read_portal_csv` (``carbon_intensity_lca``
    and ``low_carbon_share`` NaN, ``estimated`` False); ``attrs``: ``zone``, ``files``, ``repairs``.
    """
    path = Path(path)
    where = f"ENTSO-E carbon-intensity file '{path}'"
    frame = read_csv(path, where)
    missing = [c for c in CI_COLUMNS if c not in frame.columns]
    if missing:
        raise ObservationError(f"{where}: missing column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")
    times, repairs = parse_utc_times(frame["Time"], where, "Time")
    values = to_numeric(frame, "Carbon Intensity", where)
    check_range(values.to_numpy(), CARBON_INTENSITY_RANGE, where, "Carbon Intensity", "g CO2e/kWh")
    if len(values) >= 48 and np.nanmax(values, initial=-np.inf) < 1.0:
        raise ObservationError(
            f"{where}: largest carbon intensity is {np.nanmax(values):.3g}; the values look like kgCO2/kWh, not g"
        )
    raw = pd.DataFrame({"carbon_intensity": values.to_numpy(dtype=np.float64)}, index=times)
    raw, more = drop_duplicates(raw, where, "Time")
    repairs += more
    hourly = hourly_mean(raw, where)
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
    hourly = hourly[list(TRACE_COLUMNS)]
    files = [str(path)] + ([str(production_path)] if isinstance(share, pd.Series) else [])
    hourly.attrs.update(zone=zone, files=files, repairs=repairs)
    return hourly


def read_production_csv(path: str | Path, max_gap_h: int = MAX_GAP_H) -> pd.DataFrame:
    """Hourly mean generation per fuel (MW) and cross-border flows (two-letter columns) from a production CSV."""
    path = Path(path)
    where = f"ENTSO-E production file '{path}'"
    frame = read_csv(path, where)
    time_column = frame.columns[0]
    times, repairs = parse_utc_times(frame[time_column], where, str(time_column))
    values = pd.DataFrame({c: to_numeric(frame, c, where) for c in frame.columns if c != time_column})
    if values.shape[1] == 0:
        raise ObservationError(f"{where}: no generation columns")
    fuels = [c for c in values.columns if not _is_flow(c)]
    if not fuels:
        raise ObservationError(f"{where}: no fuel columns (only cross-border flows {', '.join(values.columns)})")
    values.index = times
    values, more = drop_duplicates(values, where, str(time_column))
    repairs += more
    hourly = hourly_mean(values, where)
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


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def load_ci(path: str | Path, max_gap_h: int = MAX_GAP_H) -> xr.Dataset:
    """A ``Time,Carbon Intensity`` file as a contract trace dataset (one zone)."""
    return trace_dataset(read_ci_csv(path, max_gap_h=max_gap_h), CI_SOURCE_NAME, path, LICENCE, ORIGIN)


def load_production(path: str | Path, max_gap_h: int = MAX_GAP_H) -> xr.Dataset:
    """A production file as a contract dataset: ``generation_<fuel>``, ``flow_<country>`` (MW), ``renewable_share``."""
    hourly = read_production_csv(path, max_gap_h)
    zone = hourly.attrs["zone"]
    names = {c: (f"flow_{c.lower()}" if _is_flow(c) else f"generation_{_snake(c)}") for c in hourly.columns}
    variables = {names[c]: hourly[[c]].set_axis([zone], axis=1) for c in hourly.columns}
    variables["renewable_share"] = renewable_share(hourly).to_frame(zone)
    units = {name: "MW" for name in variables} | {"renewable_share": "1"}
    long_names = {names[c]: (f"cross-border flow with {c} (sign as in the file)" if _is_flow(c) else f"{c} generation")
                  for c in hourly.columns} | {"renewable_share": "renewable generation over all generation"}
    return observation_dataset(
        variables, units, source=PRODUCTION_SOURCE_NAME, path=path, files=hourly.attrs["files"],
        repairs=hourly.attrs["repairs"], time_label="hour_start", licence=LICENCE, origin=ORIGIN, long_names=long_names,
    )


CI_SOURCE_NAME = "entsoe-ci"
PRODUCTION_SOURCE_NAME = "entsoe-production"
CI_SOURCE = register_source(FileSource(
    name=CI_SOURCE_NAME, kind="trace", description="ENTSO-E based 'Time,Carbon Intensity' CSV",
    matches=is_ci_csv, loader=load_ci, licence=LICENCE, origin=ORIGIN,
))
PRODUCTION_SOURCE = register_source(FileSource(
    name=PRODUCTION_SOURCE_NAME, kind="generation", description="ENTSO-E generation per production type (MW) CSV",
    matches=is_production_csv, loader=load_production, licence=LICENCE, origin=ORIGIN,
))
