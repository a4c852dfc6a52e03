"""Recorded signals from files: WattTime MOER actuals and their issued forecasts.

Formats (``../shared/data/watttime``, see its README):

- **actuals**: a CSV whose first column holds the times (its name varies: ``time``, ``point_time``, or an
  odd one) and one column per WattTime region (``CAISO_NORTH``, ``Caiso_North``, ``SPP_TX``, ...), 5-min MOER;
- **forecasts**: ``request_time,forecast_time,<region>``: each request (issue time) forecasts the following
  steps;
- a **zip** holding one ``*_actual.csv`` and one ``*_forecast.csv``.

The files do not state units; WattTime's API v3 reports ``lbs_co2_per_mwh``, these recordings hold values of
400-1000, g/kWh for gas- to coal-fired margins, so the default is ``gCO2/kWh`` (pass ``units=`` otherwise).
Region columns are resolved through the zone lexicon to WattTime's codes. A file that cannot be read is a
:class:`~carbonsync.signals.base.SignalFormatError` naming it; values outside the physical range are a
:class:`~carbonsync.signals.base.SignalRangeError` naming file, column and row.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.signals.base import KINDS, SignalFormatError, SignalRangeError, convert_units, signal_dataset
from carbonsync.signals.replay import RecordedSignal, ReplayClock
from carbonsync.signals.zones import ZoneLookupError, resolve

__all__ = ["read_watttime_actuals", "read_watttime_forecasts", "watttime_recording"]

PROVIDER = "watttime-file"


def _read_csv(source: str | Path | bytes, where: str) -> pd.DataFrame:
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8")
    except FileNotFoundError as err:
        raise SignalFormatError(f"'{where}' does not exist", provider=PROVIDER) from err
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
        raise SignalFormatError(f"'{where}' cannot be read as a UTF-8 CSV: {err}", provider=PROVIDER) from err
    if frame.shape[1] < 2 or frame.empty:
        raise SignalFormatError(f"'{where}' has no data rows or no value column (header {list(frame.columns)})",
                                provider=PROVIDER)
    return frame


def _times(values: pd.Series, where: str, column: str) -> pd.DatetimeIndex:
    parsed = pd.to_datetime(values, utc=True, errors="coerce")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise SignalFormatError(f"'{where}' column '{column}' row {row + 2}: '{values.iloc[row]}' is not a time",
                                provider=PROVIDER)
    return pd.DatetimeIndex(parsed).tz_localize(None)


def _region(column: str, where: str) -> str:
    try:
        return resolve(column, "watttime")
    except ZoneLookupError as err:
        raise SignalFormatError(f"'{where}': column '{column}' is not a known WattTime region ({err})",
                                provider=PROVIDER) from err


def _values(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    text = frame[column].astype(str).str.strip()
    unreadable = np.isnan(values) & (text != "") & (text.str.lower() != "nan")
    if unreadable.any():
        row = int(np.flatnonzero(unreadable)[0])
        raise SignalFormatError(f"'{where}' column '{column}' row {row + 2}: '{frame[column].iloc[row]}' is not a "
                                "number", provider=PROVIDER)
    return values


def _checked(values: np.ndarray, times: pd.DatetimeIndex, zone: str, units: str, where: str, column: str,
             rows: np.ndarray) -> xr.Dataset:
    try:
        return signal_dataset(values, times, zone, "marginal_emissions", units, provider=PROVIDER, endpoint=where)
    except SignalRangeError as err:
        converted, _ = convert_units(values, units, "marginal_emissions", provider=PROVIDER, endpoint=where, zone=zone)
        lo, hi = KINDS["marginal_emissions"].valid_range
        bad = np.isinf(converted) | (converted < lo) | (converted > hi)
        row = int(rows[np.flatnonzero(bad)[0]]) + 2
        raise SignalRangeError(f"'{where}' column '{column}' row {row}: {err}", provider=PROVIDER, zone=zone) from err


def read_watttime_actuals(source: str | Path | bytes, units: str = "gCO2/kWh", where: str | None = None) -> xr.Dataset:
    """MOER actuals ``(time, zone)`` (g CO2e/kWh), one zone per region column."""
    where = where or str(source)
    frame = _read_csv(source, where)
    time_column = frame.columns[0]
    times = _times(frame[time_column], where, time_column)
    order = np.argsort(times.values, kind="stable")
    if times.has_duplicates:
        dup = times[times.duplicated()][0]
        raise SignalFormatError(f"'{where}': time {dup.isoformat()} appears twice", provider=PROVIDER)
    parts = []
    for column in frame.columns[1:]:
        zone = _region(str(column), where)
        parts.append(_checked(_values(frame, column, where)[order], times[order], zone, units, where, str(column),
                              order))
    return xr.concat(parts, dim="zone", combine_attrs="override")


def read_watttime_forecasts(source: str | Path | bytes, units: str = "gCO2/kWh",
                            where: str | None = None) -> xr.Dataset:
    """Issued MOER forecasts from ``request_time,forecast_time,<region>`` rows as a forecast archive:
    ``value`` ``(issued_at, lead, zone)`` (g CO2e/kWh) with the valid ``time`` ``(issued_at, lead)`` (NaT
    where a request has fewer steps): compact where a dense ``(issued_at, time)`` grid would not be."""
    where = where or str(source)
    frame = _read_csv(source, where)
    missing = [c for c in ("request_time", "forecast_time") if c not in frame.columns]
    if missing or frame.shape[1] != 3:
        raise SignalFormatError(f"'{where}' must have columns request_time, forecast_time and one region; it has "
                                f"{list(frame.columns)}", provider=PROVIDER)
    column = next(c for c in frame.columns if c not in ("request_time", "forecast_time"))
    zone = _region(str(column), where)
    issued = _times(frame["request_time"], where, "request_time")
    valid = _times(frame["forecast_time"], where, "forecast_time")
    values, normalised = convert_units(_values(frame, column, where), units, "marginal_emissions",
                                       provider=PROVIDER, endpoint=where, zone=zone)
    lo, hi = KINDS["marginal_emissions"].valid_range
    bad = np.isinf(values) | (values < lo) | (values > hi)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SignalRangeError(f"'{where}' column '{column}' row {row + 2}: {values[row]:.6g} {normalised} is "
                               f"outside [{lo:g}, {hi:g}] (wrong units?)", provider=PROVIDER, zone=zone)
    if (valid < issued).any():
        row = int(np.flatnonzero(valid < issued)[0])
        raise SignalFormatError(f"'{where}' row {row + 2}: forecast_time {valid[row]} is before its request_time "
                                f"{issued[row]}", provider=PROVIDER)
    table = pd.DataFrame({"issued": issued, "valid": valid, "value": values}).sort_values(["issued", "valid"])
    if table.duplicated(["issued", "valid"]).any():
        raise SignalFormatError(f"'{where}': a (request_time, forecast_time) pair appears twice", provider=PROVIDER)
    table["lead"] = table.groupby("issued").cumcount()
    value = table.pivot(index="issued", columns="lead", values="value")
    time = table.pivot(index="issued", columns="lead", values="valid")
    return xr.Dataset(
        {"value": (("issued_at", "lead", "zone"), value.to_numpy()[..., None])},
        coords={"issued_at": value.index.values, "lead": value.columns.values, "zone": [zone],
                "time": (("issued_at", "lead"), time.to_numpy(dtype="datetime64[ns]"))},
        attrs={"kind": "marginal_emissions", "units": normalised, "provider": PROVIDER, "endpoint": where,
               "index": "no", "layout": "forecast archive"},
    )


def watttime_recording(path: str | Path, clock: ReplayClock, units: str = "gCO2/kWh", **options) -> RecordedSignal:
    """The actuals and issued forecasts of a WattTime zip (``*_actual.csv``, ``*_forecast.csv``) replayed on
    ``clock`` (:class:`~carbonsync.signals.replay.RecordedSignal`; ``options`` go to it)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pick = {kind: [n for n in names if n.endswith(f"_{kind}.csv")] for kind in ("actual", "forecast")}
            if any(len(v) != 1 for v in pick.values()):
                raise SignalFormatError(f"'{path}' must hold one *_actual.csv and one *_forecast.csv; it holds {names}",
                                        provider=PROVIDER)
            actual, forecast = (archive.read(pick[k][0]) for k in ("actual", "forecast"))
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise SignalFormatError(f"'{path}' is not a readable zip archive: {err}", provider=PROVIDER) from err
    return RecordedSignal(read_watttime_actuals(actual, units, f"{path}:{pick['actual'][0]}"), clock,
                          read_watttime_forecasts(forecast, units, f"{path}:{pick['forecast'][0]}"), **options)
