"""GEFCom2014 wind and solar tracks: ECMWF forecasts and normalised power per farm, loaded and validated.

Input files are CSV (optionally gzip) in the layout of ``gefcom2014/{wind,solar}/*.csv.gz`` in the shared
data (see its README), one row per farm (``zone``) and hour:

- wind: ``zone, time, u10, v10, u100, v100, power_norm[, power_source]`` (m s-1; power 0..1)
- solar: ``zone, time, VAR78 ... VAR228[, ssrd_hourly_Wm2], power_norm[, power_source]`` with the ECMWF
  variables of the track's Instructions.txt (VAR169 = SSRD in J m-2 accumulated since the 00 UTC run).

The competition's own headers are accepted too (``ZONEID``, ``TIMESTAMP``, ``TARGETVAR``/``POWER``, upper
case wind names, ``YYYYMMDD HH:MM`` times). Times are UTC and label the hour that *ends* at them (ERA5's
convention), so the hour labelled ``2013-02-01 00:00`` belongs to January (:func:`hour_ending_month`).

Both loaders return a :class:`pandas.DataFrame` sorted by ``(zone, time)`` with ``zone`` (str), ``time``
(naive UTC ``datetime64[ns]``), the weather under lexicon names and ``capacity_factor`` (NaN where power was
not observed). Solar weather is ``tclw, tciw`` (kg m-2), ``sp`` (Pa), ``r`` (%), ``tcc`` (1), ``u10, v10``
(m s-1), ``t2m`` (K), ``ssrd, strd, tsr`` (J m-2 accumulated over the hour ending at the label, as ERA5) and
``tp`` (m over that hour). ``frame.attrs`` holds ``track``, ``source`` (the path) and ``repairs``.

Errors (:class:`GefcomDataError`, naming the file, column, zone, time or value): missing or empty file,
missing columns, unparseable times or zones, a ``(zone, time)`` repeated with other values (with a hint when
it looks like a daylight-saving fall-back in local time: the files must be UTC), times that go backwards
within a zone, power outside
[0, 1] (a percent column is recognised and named as such), weather outside physical ranges (e.g. wind in
km/h, temperature in °C, ssrd in J m-2 where W m-2 was expected) and accumulated fields that decrease.

Documented repairs (each one applied is listed in ``frame.attrs["repairs"]``):

- times with a UTC offset are converted to UTC; rows that repeat another row exactly are dropped;
- gaps (missing hours, e.g. a daylight-saving spring-forward, or NaN weather) of up to ``max_fill_hours``
  are filled by linear interpolation of the hourly weather; longer gaps stay missing and their rows are
  dropped (power is never interpolated);
- power within 0.01 of [0, 1] (GEFCom normalises by nominal capacity; one solar hour reads 1.0036) and
  total cloud cover within 0.01 of [0, 1] are clipped into range;
- solar accumulations are de-accumulated per forecast run (reset at ``reset_hour`` UTC, the first hour of
  the 00 UTC run) and negative rounding residues are set to 0.

The registered sources ``gefcom2014-wind`` and ``gefcom2014-solar`` (kind ``power``) give the same data as
a contract ``(time, zone)`` dataset (:func:`to_dataset`; ``time_label`` ``hour_end``, NaN for dropped hours).
The time, duplicate and gap mechanics are the shared ones of :mod:`carbonsync.data.observations.hourly`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.data.observations.base import (
    FileSource,
    ObservationError,
    observation_dataset,
    read_csv,
    read_header,
    register_source,
)
from carbonsync.data.observations.hourly import complete_hours, drop_duplicates, fill_gaps, parse_utc_times, to_numeric

__all__ = [
    "GefcomDataError",
    "SOLAR_COLUMNS",
    "SOLAR_SOURCE",
    "UNITS",
    "WIND_COLUMNS",
    "WIND_SOURCE",
    "hour_ending_month",
    "is_gefcom_solar",
    "is_gefcom_wind",
    "last_observed_month",
    "load_gefcom",
    "load_gefcom_solar",
    "load_gefcom_wind",
    "to_dataset",
]

ONE_HOUR = pd.Timedelta(hours=1)
WIND_COLUMNS = ("u10", "v10", "u100", "v100")
SOLAR_VARS = {  # GEFCom/ECMWF parameter id -> lexicon name
    "VAR78": "tclw", "VAR79": "tciw", "VAR134": "sp", "VAR157": "r", "VAR164": "tcc", "VAR165": "u10",
    "VAR166": "v10", "VAR167": "t2m", "VAR169": "ssrd", "VAR175": "strd", "VAR178": "tsr", "VAR228": "tp",
}
SOLAR_ACCUMULATED = ("ssrd", "strd", "tsr", "tp")
SOLAR_COLUMNS = tuple(SOLAR_VARS.values())
_ALIASES = {
    "zone": ("zone", "zoneid", "zone_id", "farm"),
    "time": ("time", "timestamp", "datetime"),
    "power_norm": ("power_norm", "targetvar", "power"),
}
# physical ranges of the (hourly) values; a hint names the likely unit mix-up
_RANGES: dict[str, tuple[float, float, str]] = {
    "u10": (-60.0, 60.0, "m s-1 expected (km/h or knots?)"),
    "v10": (-60.0, 60.0, "m s-1 expected (km/h or knots?)"),
    "u100": (-80.0, 80.0, "m s-1 expected (km/h or knots?)"),
    "v100": (-80.0, 80.0, "m s-1 expected (km/h or knots?)"),
    "tclw": (0.0, 50.0, "kg m-2 expected"),
    "tciw": (0.0, 50.0, "kg m-2 expected"),
    "sp": (4.0e4, 1.1e5, "Pa expected (hPa?)"),
    "r": (0.0, 110.0, "% expected (a 0-1 fraction?)"),
    "tcc": (-0.01, 1.01, "a 0-1 fraction expected (percent?)"),
    "t2m": (150.0, 350.0, "K expected (degrees Celsius?)"),
    "ssrd": (0.0, 1500.0 * 3600, "J m-2 per hour expected"),
    "strd": (0.0, 700.0 * 3600, "J m-2 per hour expected"),
    "tsr": (0.0, 1500.0 * 3600, "J m-2 per hour expected"),
    "tp": (0.0, 0.5, "m per hour expected (mm?)"),
}
POWER_TOLERANCE = 0.01
NEGATIVE_ACCUMULATION_TOLERANCE = 10.0 * 3600  # J m-2 in an hour (10 W m-2): larger drops are errors


UNITS = {
    "u10": "m s-1", "v10": "m s-1", "u100": "m s-1", "v100": "m s-1", "tclw": "kg m-2", "tciw": "kg m-2", "sp": "Pa",
    "r": "%", "tcc": "1", "t2m": "K", "ssrd": "J m-2", "strd": "J m-2", "tsr": "J m-2", "tp": "m", "capacity_factor": "1",
}
LICENCE = "no data licence stated"
ORIGIN = "GEFCom2014 (Hong et al., 'Probabilistic energy forecasting: GEFCom2014', IJF 2016)"


class GefcomDataError(ObservationError):
    """A GEFCom2014 file that breaks the documented format; the message names file, column and value."""


# ------------------------------------------------------------------------------------------------- helpers


def hour_ending_month(times: pd.Series | pd.DatetimeIndex | np.ndarray) -> pd.PeriodIndex:
    """Calendar month of each hour-ending label: the hour ending at midnight on the 1st is the previous month."""
    index = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[ns]"))
    return (index - ONE_HOUR).to_period("M")


def last_observed_month(frame: pd.DataFrame) -> dict[str, pd.Period]:
    """Each zone's last calendar month (hour-ending) with any observed ``capacity_factor``."""
    observed = frame[frame["capacity_factor"].notna()]
    if observed.empty:
        raise GefcomDataError(f"{frame.attrs.get('source', 'frame')}: no observed power in any zone")
    months = hour_ending_month(observed["time"])
    return {str(z): months[(observed["zone"] == z).to_numpy()].max() for z in observed["zone"].unique()}


def _read_csv(path: Path) -> pd.DataFrame:
    return read_csv(path, str(path), GefcomDataError, low_memory=False)


def _rename(raw: pd.DataFrame, path: Path, required: Iterable[str]) -> pd.DataFrame:
    """Map case-insensitive aliases to the canonical column names; error on anything required but absent."""
    by_lower = {str(c).strip().lower(): c for c in raw.columns}
    mapping = {}
    for name in required:
        for alias in _ALIASES.get(name, (name,)):
            if alias.lower() in by_lower:
                mapping[by_lower[alias.lower()]] = name
                break
    missing = [name for name in required if name not in mapping.values()]
    if missing:
        raise GefcomDataError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has {', '.join(map(str, raw.columns))}"
        )
    return raw.rename(columns=mapping)


def _parse_times(values: pd.Series, path: Path, repairs: list[str]) -> pd.DatetimeIndex:
    times, more = parse_utc_times(values, str(path), "time", GefcomDataError, ("ISO8601", "%Y%m%d %H:%M", "%Y%m%d %H"))
    repairs += more
    return times


def _numeric(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    for col in columns:
        frame[col] = to_numeric(frame, col, str(path), GefcomDataError)


def _check_order(frame: pd.DataFrame, path: Path, repairs: list[str]) -> pd.DataFrame:
    """Per zone: rows repeating another exactly are dropped, other repeated times are errors; times must increase
    in file order."""
    exact = frame.duplicated(keep="first")
    for zone, group in frame[~exact].groupby("zone", sort=False):
        drop_duplicates(group.set_index("time"), f"{path}: zone {zone}", "time", GefcomDataError)
    if exact.any():
        repairs.append(f"dropped {int(exact.sum())} exact duplicate row(s) (first at zone {frame['zone'][exact].iloc[0]}, "
                       f"{frame['time'][exact].iloc[0]})")
        frame = frame[~exact]
    for zone, group in frame.groupby("zone", sort=False):
        times = group["time"]
        step = np.diff(times.to_numpy().astype("datetime64[ns]").astype(np.int64))
        if (step < 0).any():
            i = int(np.flatnonzero(step < 0)[0])
            raise GefcomDataError(
                f"{path}: zone {zone}: time goes backwards, {times.iloc[i + 1]} follows {times.iloc[i]} "
                f"(rows {group.index[i] + 2} and {group.index[i + 1] + 2})"
            )
    return frame.reset_index(drop=True)


def _check_power(frame: pd.DataFrame, path: Path, repairs: list[str]) -> None:
    power = frame["capacity_factor"]
    hi, lo = power.max(), power.min()
    if hi > 1.0 + POWER_TOLERANCE:
        i = int(power.to_numpy().argmax())
        hint = " (looks like percent: divide by 100)" if 1.5 < hi <= 100.0 else ""
        raise GefcomDataError(
            f"{path}: column 'power_norm' must be normalised power in [0, 1], zone {frame['zone'].iloc[i]} "
            f"at {frame['time'].iloc[i]} has {hi:g}{hint}"
        )
    if lo < -POWER_TOLERANCE:
        i = int(power.to_numpy().argmin())
        raise GefcomDataError(
            f"{path}: column 'power_norm' has a negative value {lo:g} (zone {frame['zone'].iloc[i]} at "
            f"{frame['time'].iloc[i]})"
        )
    outside = int(((power > 1.0) | (power < 0.0)).sum())
    if outside:
        repairs.append(f"{outside} power value(s) within {POWER_TOLERANCE} of [0, 1] clipped into range")
        frame["capacity_factor"] = power.clip(0.0, 1.0)


def _check_ranges(frame: pd.DataFrame, columns: Iterable[str], path: Path, source_names: dict[str, str]) -> None:
    for col in columns:
        lo, hi, hint = _RANGES[col]
        values = frame[col].to_numpy()
        bad = (values < lo) | (values > hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            name = source_names.get(col, col)
            shown = f"'{name}' ({col})" if name != col else f"'{col}'"
            raise GefcomDataError(
                f"{path}: column {shown} value {values[i]:g} at zone {frame['zone'].iloc[i]}, {frame['time'].iloc[i]} "
                f"is outside [{lo:g}, {hi:g}]: {hint}"
            )


def _complete_hours(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Reindex each zone onto every hour between its first and last time; returns the frame and hours added."""
    parts, added = [], 0
    for zone, group in frame.groupby("zone", sort=True):
        part, more = complete_hours(group.set_index("time"))
        added += more
        part["zone"] = zone
        parts.append(part.rename_axis("time").reset_index())
    return pd.concat(parts, ignore_index=True)[["zone", "time", *columns]], added


def _fill_gaps(frame: pd.DataFrame, columns: Sequence[str], max_fill_hours: int, repairs: list[str], gaps: str
               ) -> pd.DataFrame:
    """Interpolate weather gaps of up to ``max_fill_hours`` per zone; drop rows still missing weather (``gaps``
    says which, in the repair)."""
    filled = 0
    out = []
    for _, group in frame.groupby("zone", sort=True):
        part, more, _ = fill_gaps(group.set_index("time"), columns, max_fill_hours)
        filled += more
        out.append(part.reset_index())
    frame = pd.concat(out, ignore_index=True)
    keep = frame[list(columns)].notna().all(axis=1)
    if filled:
        repairs.append(f"weather of {filled} hour(s) in gaps of <= {max_fill_hours} h linearly interpolated")
    if not keep.all():
        repairs.append(f"{int((~keep).sum())} hour(s) in {gaps} dropped")
    return frame[keep].reset_index(drop=True)


def _deaccumulate(frame: pd.DataFrame, column: str, reset_hour: int, path: Path, source_name: str) -> pd.Series:
    """Hourly amounts from a field accumulated since the last run start (first hour labelled ``reset_hour``)."""
    run = (frame["time"] - pd.Timedelta(hours=reset_hour)).dt.floor("D")
    first = (frame["time"].dt.hour == reset_hour).to_numpy()
    previous = frame.groupby([frame["zone"], run])[column].shift(1)
    previous = previous.where(~first, 0.0)
    hourly = frame[column] - previous
    # the first hour after a file start or a gap has no predecessor: NaN (a gap to fill or drop)
    too_negative = hourly < -NEGATIVE_ACCUMULATION_TOLERANCE
    if too_negative.any():
        i = int(np.flatnonzero(too_negative.to_numpy())[0])
        raise GefcomDataError(
            f"{path}: accumulated column '{source_name}' drops by {-hourly.iloc[i]:.4g} at zone "
            f"{frame['zone'].iloc[i]}, {frame['time'].iloc[i]}: not accumulated since the {reset_hour:02d} UTC "
            "hour (wrong reset hour, or not an accumulated field?)"
        )
    return hourly.clip(lower=0.0)


def _finish(frame: pd.DataFrame, track: str, path: Path, repairs: list[str], columns: Sequence[str]) -> pd.DataFrame:
    frame = frame[["zone", "time", *columns, "capacity_factor"]].sort_values(["zone", "time"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame.attrs = {"track": track, "source": str(path), "repairs": repairs}
    return frame


def _base_frame(raw: pd.DataFrame, path: Path, value_columns: Sequence[str], repairs: list[str]) -> pd.DataFrame:
    frame = raw[["zone", "time", *value_columns, "power_norm"]].copy()
    if frame["zone"].isna().any():
        i = int(np.flatnonzero(frame["zone"].isna().to_numpy())[0])
        raise GefcomDataError(f"{path}: column 'zone' row {i + 2} is empty")
    zone = frame["zone"]
    if pd.api.types.is_float_dtype(zone) and (zone == zone.round()).all():
        zone = zone.astype(np.int64)
    frame["zone"] = zone.astype(str).str.strip()
    frame["time"] = _parse_times(frame["time"], path, repairs)
    _numeric(frame, [*value_columns, "power_norm"], path)
    frame = frame.rename(columns={"power_norm": "capacity_factor"})
    frame = _check_order(frame, path, repairs)
    _check_power(frame, path, repairs)
    return frame


# ------------------------------------------------------------------------------------------------- loaders


def load_gefcom_wind(path: str | os.PathLike, max_fill_hours: int = 3) -> pd.DataFrame:
    """Load and validate a GEFCom2014 wind file: ``zone, time, u10, v10, u100, v100, capacity_factor``."""
    path = Path(path)
    repairs: list[str] = []
    raw = _rename(_read_csv(path), path, ["zone", "time", *WIND_COLUMNS, "power_norm"])
    frame = _base_frame(raw, path, WIND_COLUMNS, repairs)
    _check_ranges(frame.dropna(subset=list(WIND_COLUMNS)), WIND_COLUMNS, path, {})
    frame, added = _complete_hours(frame, [*WIND_COLUMNS, "capacity_factor"])
    if added:
        repairs.append(f"{added} missing hour(s) inserted (power left missing)")
    frame = _fill_gaps(frame, WIND_COLUMNS, max_fill_hours, repairs, "longer weather gaps")
    return _finish(frame, "wind", path, repairs, WIND_COLUMNS)


def load_gefcom_solar(path: str | os.PathLike, max_fill_hours: int = 3, reset_hour: int = 1) -> pd.DataFrame:
    """Load and validate a GEFCom2014 solar file; ECMWF ``VARnnn`` columns become lexicon names (module doc).

    ``ssrd`` comes from ``VAR169`` de-accumulated per run (reset at ``reset_hour`` UTC); a file with only
    ``ssrd_hourly_Wm2`` (W m-2, hour mean) is accepted for it. When both are present they must agree.
    """
    path = Path(path)
    repairs: list[str] = []
    raw = _read_csv(path)
    by_upper = {str(c).strip().upper(): c for c in raw.columns}
    hourly_col = next((c for c in raw.columns if str(c).strip().lower() == "ssrd_hourly_wm2"), None)
    need = [v for v in SOLAR_VARS if not (v == "VAR169" and hourly_col is not None)]
    missing = [v for v in need if v not in by_upper]
    if missing:
        raise GefcomDataError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has {', '.join(map(str, raw.columns))}"
        )
    raw = raw.rename(columns={by_upper[v]: SOLAR_VARS[v] for v in SOLAR_VARS if v in by_upper})
    raw = raw.rename(columns={"ssrd": "ssrd_acc"} if "ssrd" in raw.columns else {})
    names = {name: var for var, name in SOLAR_VARS.items()}
    raw = _rename(raw, path, ["zone", "time", "power_norm"])
    value_columns = [c for c in SOLAR_COLUMNS if c != "ssrd"]
    value_columns += ["ssrd_acc"] if "ssrd_acc" in raw.columns else []
    value_columns += [hourly_col] if hourly_col is not None else []
    frame = _base_frame(raw, path, value_columns, repairs)
    frame, added = _complete_hours(frame, [*value_columns, "capacity_factor"])
    if added:
        repairs.append(f"{added} missing hour(s) inserted (power left missing)")
    if "ssrd_acc" in frame.columns:
        frame["ssrd"] = _deaccumulate(frame, "ssrd_acc", reset_hour, path, "VAR169")
        if hourly_col is not None:
            other = frame[hourly_col] * 3600.0
            both = frame["ssrd"].notna() & other.notna()
            diff = (frame["ssrd"][both] - other[both]).abs()
            if len(diff) and diff.max() > 5.0 * 3600:
                i = diff.idxmax()
                raise GefcomDataError(
                    f"{path}: '{hourly_col}' ({other[i] / 3600:.4g} W m-2) disagrees with de-accumulated VAR169 "
                    f"({frame['ssrd'][i] / 3600:.4g} W m-2) at zone {frame['zone'][i]}, {frame['time'][i]}"
                )
    else:
        frame["ssrd"] = frame[hourly_col] * 3600.0
        repairs.append(f"ssrd taken from '{hourly_col}' (W m-2 x 3600 s)")
    for col in ("strd", "tsr", "tp"):
        frame[col] = _deaccumulate(frame, col, reset_hour, path, names[col])
    frame = _fill_gaps(frame, SOLAR_COLUMNS, max_fill_hours, repairs,
                       "longer weather gaps (or before the first de-accumulable hour)")
    _check_ranges(frame, SOLAR_COLUMNS, path, names)
    if ((frame["tcc"] < 0) | (frame["tcc"] > 1)).any():
        repairs.append("total cloud cover within 0.01 of [0, 1] clipped into range")
        frame["tcc"] = frame["tcc"].clip(0.0, 1.0)
    return _finish(frame, "solar", path, repairs, SOLAR_COLUMNS)


def _header_names(path: str | os.PathLike) -> set[str]:
    return {c.lower() for c in read_header(path)}


def _has_keys(names: set[str]) -> bool:
    return all(any(alias in names for alias in _ALIASES[key]) for key in ("zone", "time", "power_norm"))


def is_gefcom_solar(path: str | os.PathLike) -> bool:
    """Whether the header is a GEFCom2014 solar file (zone, time, power and ``VAR169`` or ``ssrd_hourly_Wm2``)."""
    names = _header_names(path)
    return _has_keys(names) and ("var169" in names or "ssrd_hourly_wm2" in names)


def is_gefcom_wind(path: str | os.PathLike) -> bool:
    """Whether the header is a GEFCom2014 wind file (zone, time, power and the four wind components)."""
    names = _header_names(path)
    return _has_keys(names) and all(c in names for c in WIND_COLUMNS) and not is_gefcom_solar(path)


def load_gefcom(path: str | os.PathLike, track: str | None = None, **kwargs) -> pd.DataFrame:
    """Load a GEFCom2014 file of ``track`` ('wind' or 'solar'; ``None`` tells them apart by the columns)."""
    if track is None:
        track = "solar" if is_gefcom_solar(path) else "wind"
    if track == "wind":
        return load_gefcom_wind(path, **kwargs)
    if track == "solar":
        return load_gefcom_solar(path, **kwargs)
    raise GefcomDataError(f"track must be 'wind' or 'solar', got {track!r}")


def to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    """A loaded GEFCom2014 frame as a contract ``(time, zone)`` dataset (hour-ending labels; NaN where a row is absent)."""
    track = frame.attrs["track"]
    columns = [c for c in frame.columns if c not in ("zone", "time")]
    variables = {c: frame.pivot(index="time", columns="zone", values=c) for c in columns}
    return observation_dataset(
        variables, UNITS, source=f"gefcom2014-{track}", path=frame.attrs["source"], files=[frame.attrs["source"]],
        repairs=frame.attrs["repairs"], time_label="hour_end", licence=LICENCE, origin=ORIGIN,
        long_names={"capacity_factor": "farm power over nominal capacity"},
    )


WIND_SOURCE = register_source(FileSource(
    name="gefcom2014-wind", kind="power", description="GEFCom2014 wind track (zone, time, u10 v10 u100 v100, power)",
    matches=is_gefcom_wind, loader=lambda path, **kw: to_dataset(load_gefcom_wind(path, **kw)), licence=LICENCE,
    origin=ORIGIN,
))
SOLAR_SOURCE = register_source(FileSource(
    name="gefcom2014-solar", kind="power", description="GEFCom2014 solar track (zone, time, VAR78..VAR228, power)",
    matches=is_gefcom_solar, loader=lambda path, **kw: to_dataset(load_gefcom_solar(path, **kw)), licence=LICENCE,
    origin=ORIGIN,
))
