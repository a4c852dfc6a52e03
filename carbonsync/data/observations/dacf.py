"""DACF hourly generation-by-fuel + GFS weather files per balancing area, read and validated.

Format (``../shared/data/dacf/*.csv.gz``, carbonfirst/DACF): a ``UTC time`` column, one column of hourly
generation in MW per fuel (``coal, nat_gas, nuclear, oil, hydro, solar, wind, other, unknown`` ...; which
fuels appear depends on the area), GFS region-weighted forecast columns ``forecast_avg_{wind_speed,
temperature, dewpoint, dswrf, precipitation}_wMean`` valid at the row's time, operator production forecasts
``avg_<fuel>_production_forecast`` and ``wind_solar_share = (wind + solar) / all generation``. One balancing
area per file, named by an ``area``/``balancing_area``/``region`` column or by the file name (``CISO_2020.csv.gz``
is ``CISO``).

:func:`load_dacf` returns a :class:`DacfArea`: a regular hourly frame indexed by naive UTC ``time`` with the
generation columns (MW), ``total_generation`` (MW), the weather under short names (:data:`WEATHER_COLUMNS`)
and ``wind_solar_share``. Every problem raises :class:`DacfError` naming the file, column and value, except
these documented repairs (each listed in ``DacfArea.repairs``):

- rows are sorted by time; rows that duplicate another row exactly are dropped;
- timestamps carrying an explicit UTC offset (``+01:00``) are converted to UTC;
- gaps of at most ``fill_limit`` hours (missing rows or missing values) are filled by linear interpolation in
  time; longer gaps stay as NaN rows (callers drop them) as long as they are under ``max_missing_fraction``;
- a missing ``wind_solar_share`` column is computed from the generation columns.

Errors: empty file, missing time/wind-or-solar/weather columns, unparsable times, sub-hourly or irregular
steps, duplicated times with different values, local time with daylight-saving time (night hours repeated on
transition Sundays, with or without the missing spring hour, or solar output moving by about an hour against
the UTC weather between summer and winter), generation columns in the wrong unit (a column 1000x off its own
operator forecast, rows or weeks of a column 1000x off the rest of the file, a column whose share reproduces
``wind_solar_share`` only when rescaled by 1000, a median total below 1 MW), shares outside [0, 1] (including
percentages), non-positive total generation, and weather in implausible units (temperature in °C, negative
irradiance, ...). Not detectable: a whole file consistently in GW without operator forecasts (only its scale
changes, and the share does not depend on it), or a DST shift in a file without solar generation.

The registered source ``dacf`` (kind ``generation``) gives one file as a contract ``(time, zone)`` dataset
(:func:`to_dataset`, zone = the area). Times, duplicates and gaps use the shared helpers of
:mod:`carbonsync.data.observations.hourly`.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
from carbonsync.data.observations.hourly import (
    complete_hours,
    drop_duplicates,
    fill_gaps,
    parse_utc_times,
    require_whole_hours,
    to_numeric,
)
from carbonsync.physics.carbon import carbon_intensity as physics_carbon_intensity

__all__ = [
    "SOURCE",
    "DacfError",
    "DacfArea",
    "WEATHER_COLUMNS",
    "WEATHER_UNITS",
    "carbon_intensity",
    "is_dacf_csv",
    "load_dacf",
    "load_dacf_paths",
    "products",
    "resolve_paths",
    "to_dataset",
]

TIME_COLUMNS = ("UTC time", "utc_time", "time_utc", "datetime_utc")
AREA_COLUMNS = ("area", "balancing_area", "region", "zone")
SHARE_COLUMN = "wind_solar_share"
WEATHER_COLUMNS = {
    "forecast_avg_wind_speed_wMean": "wind_speed_10m",
    "forecast_avg_temperature_wMean": "temperature",
    "forecast_avg_dewpoint_wMean": "dewpoint",
    "forecast_avg_dswrf_wMean": "dswrf",
    "forecast_avg_precipitation_wMean": "precipitation",
}
WEATHER_UNITS = {
    "wind_speed_10m": "m s-1", "temperature": "K", "dewpoint": "K", "dswrf": "W m-2", "precipitation": "kg m-2",
}
# plausible ranges for region-mean GFS weather; values outside point at a unit mix-up
WEATHER_RANGES = {
    "wind_speed_10m": (0.0, 40.0), "temperature": (180.0, 340.0), "dewpoint": (170.0, 320.0),
    "dswrf": (0.0, 1500.0), "precipitation": (0.0, 200.0),
}
OPERATOR_FORECAST = re.compile(r"^avg_(?P<fuel>.+)_production_forecast$")
RENEWABLES = ("wind", "solar")
GLOB_CHARS = set("*?[")


LICENCE = "Apache-2.0 (carbonfirst/DACF, LICENSE_DACF.md); EIA-930 / ENTSO-E / NOAA GFS data"
ORIGIN = "carbonfirst/DACF: hourly generation by fuel (EIA-930 / ENTSO-E) and GFS region-weighted forecasts"


class DacfError(ObservationError):
    """A DACF file that breaks the format, with the file, column and value at fault."""


@dataclass
class DacfArea:
    """One balancing area: hourly frame (naive UTC index ``time``) plus provenance."""

    area: str
    frame: pd.DataFrame
    generation_columns: list[str]
    sources: list[Path]
    repairs: list[str] = field(default_factory=list)
    operator_forecasts: pd.DataFrame | None = None

    @property
    def has_solar(self) -> bool:
        return "solar" in self.generation_columns

    @property
    def has_wind(self) -> bool:
        return "wind" in self.generation_columns

    def valid(self) -> pd.DataFrame:
        """The rows without any missing value (long gaps dropped)."""
        return self.frame.dropna()

    def published_generation(self) -> pd.DataFrame | None:
        """The day-ahead production forecasts by fuel published in the file (``avg_<fuel>_production_forecast``,
        MW, columns named as :attr:`generation_columns`), or None unless every fuel has one."""
        if self.operator_forecasts is None:
            return None
        fuels = {OPERATOR_FORECAST.match(c).group("fuel"): c for c in self.operator_forecasts.columns}
        if set(self.generation_columns) - set(fuels):
            return None                     # a fuel without a forecast: no total to divide by
        return self.operator_forecasts[[fuels[c] for c in self.generation_columns]].set_axis(
            self.generation_columns, axis=1)


# -------------------------------------------------------------------------------------------- paths


def resolve_paths(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files named by ``spec``: a file, a directory (its ``*.csv`` and ``*.csv.gz``), a glob, or a list of these."""
    if isinstance(spec, (list, tuple)):
        out: list[Path] = []
        for item in spec:
            out.extend(resolve_paths(item))
        return sorted(dict.fromkeys(out))
    text = str(spec)
    if GLOB_CHARS & set(text):
        files = [Path(p) for p in sorted(glob.glob(text)) if Path(p).is_file()]
        if not files:
            raise DacfError(f"no files match the pattern '{text}'")
        return files
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and (p.name.endswith(".csv") or p.name.endswith(".csv.gz")))
        if not files:
            raise DacfError(f"directory '{path}' has no .csv or .csv.gz files")
        return files
    if not path.is_file():
        raise DacfError(f"'{path}' is not a file, a directory or a glob pattern that matches files")
    return [path]


def area_from_filename(path: Path) -> str:
    """``CISO_2020.csv.gz`` -> ``CISO``; ``us-cal-ciso.csv`` -> ``us-cal-ciso``."""
    name = path.name
    for suffix in (".gz", ".csv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[_-]\d{4}(?:[_-]\d{2})?$", "", name) or name


# ------------------------------------------------------------------------------------------ reading


def _read_csv(path: Path) -> pd.DataFrame:
    return read_csv(path, str(path), DacfError)


def _time_column(frame: pd.DataFrame, path: Path) -> str:
    for name in TIME_COLUMNS:
        if name in frame.columns:
            return name
    local = [c for c in frame.columns if "local" in c.lower()]
    if local:
        raise DacfError(f"{path}: only a local-time column {local[0]!r}; a UTC time column ({TIME_COLUMNS[0]!r}) is required")
    raise DacfError(f"{path}: no time column; expected one of {list(TIME_COLUMNS)}, got columns {list(frame.columns)}")


def _parse_times(raw: pd.Series, path: Path, column: str, repairs: list[str]) -> pd.DatetimeIndex:
    index, more = parse_utc_times(raw, str(path), column, DacfError, ("ISO8601", "mixed"))
    repairs += more
    return index


def _deduplicate(frame: pd.DataFrame, path: Path, column: str, repairs: list[str]) -> pd.DataFrame:
    frame, more = drop_duplicates(frame, str(path), column, DacfError)
    repairs += more
    return frame


def _regularise(frame: pd.DataFrame, path: Path, fill_limit: int, max_missing_fraction: float,
                repairs: list[str], column: str = "time") -> pd.DataFrame:
    require_whole_hours(frame.index, str(path), column, DacfError)
    frame, missing_rows = complete_hours(frame)
    full = frame.index
    holes = frame.isna().any(axis=1)
    frame, n_short, _ = fill_gaps(frame, list(frame.columns), fill_limit)
    if n_short:
        repairs.append(
            f"filled {n_short} hours in gaps of at most {fill_limit} h by linear interpolation "
            f"({missing_rows} rows were absent, first hole at {holes.index[holes][0]})"
        )
    still = frame.isna().any(axis=1)
    fraction = float(still.mean())
    if fraction > max_missing_fraction:
        first = still.index[still][0]
        raise DacfError(
            f"{path}: {fraction:.0%} of the hours from {full[0]} to {full[-1]} are missing after filling gaps of "
            f"<= {fill_limit} h (first at {first}); at most {max_missing_fraction:.0%} is allowed"
        )
    if still.any():
        repairs.append(f"left {int(still.sum())} hours in longer gaps as missing (first at {still.index[still][0]})")
    return frame


# --------------------------------------------------------------------------------------- unit checks


def _check_weather(frame: pd.DataFrame, path: Path) -> None:
    for name, (low, high) in WEATHER_RANGES.items():
        values = frame[name].dropna()
        if values.empty:
            raise DacfError(f"{path}: weather column for {name!r} has no values")
        if name in ("temperature", "dewpoint") and values.median() < 100:
            raise DacfError(
                f"{path}: {name!r} has median {values.median():.1f}: looks like °C or °F, expected K ({WEATHER_UNITS[name]})"
            )
        bad = values[(values < low) | (values > high)]
        if len(bad):
            hint = ""
            if name == "wind_speed_10m" and values.median() > 15:
                hint = " (km/h or knots instead of m s-1?)"
            raise DacfError(
                f"{path}: {name!r} = {bad.iloc[0]:.4g} at {bad.index[0]} is outside the plausible range "
                f"[{low}, {high}] {WEATHER_UNITS[name]}{hint}"
            )


def _check_generation_units(frame: pd.DataFrame, generation: list[str], path: Path) -> None:
    total = frame[generation].sum(axis=1, min_count=1).dropna()
    if total.empty:
        raise DacfError(f"{path}: no hour has generation values")
    nonpositive = total[total <= 0]
    if len(nonpositive):
        raise DacfError(f"{path}: total generation is {nonpositive.iloc[0]:.4g} MW at {nonpositive.index[0]}; it must be > 0")
    median = float(total.median())
    if median < 1.0:
        raise DacfError(
            f"{path}: median total generation is {median:.4g}: implausibly small for MW (is the file in GW?)"
        )
    off = total[(total < median / 100) | (total > median * 100)]
    if len(off):
        ratio = float(off.iloc[0] / median)
        raise DacfError(
            f"{path}: total generation at {off.index[0]} is {off.iloc[0]:.4g} MW, {ratio:.3g}x the file's median "
            f"{median:.4g} MW: {len(off)} rows look like a unit mix-up (GW/kW vs MW)"
        )
    for column in RENEWABLES:
        if column not in generation:
            continue
        weekly = frame[column].resample("7D").max().dropna()
        weekly = weekly[weekly > 0]
        if len(weekly) < 4:
            continue
        ref = float(weekly.median())
        off = weekly[(weekly < ref / 300) | (weekly > ref * 300)]
        if len(off):
            raise DacfError(
                f"{path}: column {column!r} peaks at {off.iloc[0]:.4g} in the week from {off.index[0].date()} against "
                f"a typical weekly peak of {ref:.4g} MW: a unit mix-up (GW/kW vs MW) in {len(off)} weeks?"
            )


def _check_against_forecasts(frame: pd.DataFrame, forecasts: list[str], generation: list[str], path: Path) -> None:
    """A generation column 1000x off its own operator forecast (kept in MW) is in the wrong unit."""
    for name in forecasts:
        fuel = OPERATOR_FORECAST.match(name)["fuel"]
        if fuel not in generation:
            continue
        both = frame[[fuel, name]].dropna()
        both = both[(both[fuel] > 0) & (both[name] > 0)]
        if len(both) < 24:
            continue
        ratio = float(both[fuel].median() / both[name].median())
        if ratio < 1e-2 or ratio > 1e2:
            unit = "GW" if ratio < 1 else "kW"
            raise DacfError(
                f"{path}: column {fuel!r} is {ratio:.3g}x its operator forecast {name!r} (median of positive hours): "
                f"a unit mix-up, {fuel!r} looks like it is in {unit} instead of MW"
            )


def _check_share(frame: pd.DataFrame, generation: list[str], path: Path, repairs: list[str]) -> pd.Series:
    renewable = [c for c in RENEWABLES if c in generation]
    computed = frame[renewable].sum(axis=1, min_count=1) / frame[generation].sum(axis=1, min_count=1)
    if SHARE_COLUMN not in frame.columns:
        repairs.append(f"computed {SHARE_COLUMN!r} = ({' + '.join(renewable)}) / all generation (column absent)")
        share = computed
    else:
        share = frame[SHARE_COLUMN]
    values = share.dropna()
    bad = values[(values < -1e-6) | (values > 1 + 1e-6)]
    if len(bad):
        hint = " (percent instead of a fraction?)" if values.max() <= 100 and values.max() > 1 else ""
        raise DacfError(
            f"{path}: {SHARE_COLUMN!r} = {bad.iloc[0]:.4g} at {bad.index[0]} is outside [0, 1]{hint}; {len(bad)} rows"
        )
    if SHARE_COLUMN in frame.columns:
        both = pd.concat([share, computed], axis=1).dropna()
        mismatch = (both.iloc[:, 0] - both.iloc[:, 1]).abs() > 1e-3
        if mismatch.mean() > 0.01:
            at = both.index[mismatch.to_numpy()][0]
            hint = _unit_diagnosis(frame.loc[both.index], share.loc[both.index], generation, renewable)
            raise DacfError(
                f"{path}: {SHARE_COLUMN!r} disagrees with ({' + '.join(renewable)}) / all generation in "
                f"{mismatch.mean():.0%} of the rows (e.g. {share[at]:.4g} vs {computed[at]:.4g} at {at}){hint}"
            )
    return share.clip(0.0, 1.0)


def _unit_diagnosis(frame: pd.DataFrame, share: pd.Series, generation: list[str], renewable: list[str]) -> str:
    """Which single generation column, rescaled by 1000 or 1/1000, reproduces the file's share?"""
    for column in generation:
        for factor, label in ((1000.0, "GW (x1000 fixes it)"), (1e-3, "kW (/1000 fixes it)")):
            scaled = frame[generation].copy()
            scaled[column] = scaled[column] * factor
            trial = scaled[renewable].sum(axis=1) / scaled.sum(axis=1)
            if ((trial - share).abs() <= 1e-3).mean() > 0.99:
                return f"; column {column!r} looks like it is in {label}"
    return ""


def _check_dst_solar(frame: pd.DataFrame, path: Path) -> None:
    """Solar output timed against the (UTC) GFS irradiance; a ~1 h summer/winter jump means DST-shifted local time."""
    if "solar" not in frame.columns:
        return
    data = frame[["solar", "dswrf"]].dropna()

    def centre_hour(series: pd.Series) -> float:
        profile = series.groupby(series.index.hour).mean().reindex(range(24), fill_value=0.0)
        phase = np.angle(np.sum(profile.to_numpy() * np.exp(2j * np.pi * np.arange(24) / 24)))
        return phase / (2 * np.pi) * 24

    offsets = {}
    for season, months in (("summer", (5, 6, 7, 8)), ("winter", (11, 12, 1, 2))):
        part = data[data.index.month.isin(months)]
        if len(part) < 24 * 21 or part["solar"].sum() <= 0 or part["dswrf"].sum() <= 0:
            return
        offsets[season] = (centre_hour(part["solar"]) - centre_hour(part["dswrf"]) + 12) % 24 - 12
    jump = offsets["summer"] - offsets["winter"]
    if abs(jump) > 0.6:
        raise DacfError(
            f"{path}: solar generation peaks {offsets['summer']:+.2f} h from the GFS irradiance in May-Aug but "
            f"{offsets['winter']:+.2f} h in Nov-Feb: the times look shifted by daylight-saving time (expected UTC)"
        )


# ------------------------------------------------------------------------------------------- loader


def load_dacf(
    path: str | Path,
    area: str | None = None,
    fill_limit: int = 2,
    max_missing_fraction: float = 0.2,
) -> DacfArea:
    """Read and validate one DACF file (one balancing area); see the module docstring for checks and repairs."""
    path = Path(path)
    repairs: list[str] = []
    raw = _read_csv(path)
    time_column = _time_column(raw, path)
    area_name = area
    area_cols = [c for c in AREA_COLUMNS if c in raw.columns]
    if area_cols:
        names = raw[area_cols[0]].dropna().astype(str).unique()
        if len(names) != 1:
            raise DacfError(f"{path}: column {area_cols[0]!r} names {len(names)} areas {list(names[:5])}; one area per file")
        area_name = area_name or names[0]
    area_name = area_name or area_from_filename(path)

    missing_weather = [c for c in WEATHER_COLUMNS if c not in raw.columns]
    if missing_weather:
        raise DacfError(f"{path}: missing weather columns {missing_weather}")
    forecast_cols = [c for c in raw.columns if OPERATOR_FORECAST.match(c)]
    skip = {time_column, SHARE_COLUMN, *WEATHER_COLUMNS, *forecast_cols, *area_cols}
    generation = [c for c in raw.columns if c not in skip]
    if not any(c in generation for c in RENEWABLES):
        raise DacfError(f"{path}: no 'wind' or 'solar' generation column (columns: {list(raw.columns)})")
    numeric = generation + list(WEATHER_COLUMNS) + forecast_cols + ([SHARE_COLUMN] if SHARE_COLUMN in raw.columns else [])
    for column in numeric:
        raw[column] = to_numeric(raw, column, str(path), DacfError)

    index = _parse_times(raw[time_column], path, time_column, repairs)
    frame = raw[numeric].set_index(index).rename_axis("time")
    if not frame.index.is_monotonic_increasing:
        repairs.append("sorted rows by time")
        frame = frame.sort_index(kind="stable")
    frame = _deduplicate(frame, path, time_column, repairs)
    frame = _regularise(frame, path, fill_limit, max_missing_fraction, repairs, time_column)
    frame = frame.rename(columns=WEATHER_COLUMNS)

    _check_weather(frame, path)
    _check_against_forecasts(frame, forecast_cols, generation, path)
    _check_generation_units(frame, generation, path)
    share = _check_share(frame, generation, path, repairs)
    _check_dst_solar(frame, path)

    out = frame[generation + list(WEATHER_COLUMNS.values())].copy()
    out["total_generation"] = frame[generation].sum(axis=1, min_count=len(generation))
    out[SHARE_COLUMN] = share
    forecasts = frame[forecast_cols] if forecast_cols else None
    return DacfArea(str(area_name), out, generation, [path], repairs, forecasts)


def _concat(parts: list[DacfArea]) -> DacfArea:
    parts = sorted(parts, key=lambda p: p.frame.index[0])
    for before, after in zip(parts, parts[1:], strict=False):
        if after.frame.index[0] <= before.frame.index[-1]:
            raise DacfError(
                f"area {before.area!r}: files {before.sources[0]} and {after.sources[0]} overlap in time "
                f"({after.frame.index[0]} <= {before.frame.index[-1]})"
            )
    generation = list(dict.fromkeys(c for p in parts for c in p.generation_columns))
    frames = []
    for p in parts:
        f = p.frame.copy()
        for c in generation:  # a fuel absent in one year produced nothing there
            if c not in f.columns:
                f[c] = 0.0
        frames.append(f)
    frame = pd.concat(frames)
    frame = frame.reindex(pd.date_range(frame.index[0], frame.index[-1], freq="h", name="time"))
    columns = generation + [c for c in frames[0].columns if c not in generation]
    repairs = [f"{p.sources[0].name}: {r}" for p in parts for r in p.repairs]
    forecasts = None
    if all(p.operator_forecasts is not None for p in parts):
        forecasts = pd.concat([p.operator_forecasts for p in parts]).reindex(frame.index)
    return DacfArea(parts[0].area, frame[columns], generation, [s for p in parts for s in p.sources], repairs,
                    forecasts)


def load_dacf_paths(spec: str | Path | Iterable[str | Path], **kwargs) -> dict[str, DacfArea]:
    """Load every file named by ``spec`` (see :func:`resolve_paths`), one :class:`DacfArea` per area name.

    Several files of one area (e.g. two years) are joined in time; they must not overlap.
    """
    files = resolve_paths(list(spec) if not isinstance(spec, (str, Path)) else spec)
    by_area: dict[str, list[DacfArea]] = {}
    for file in files:
        loaded = load_dacf(file, **kwargs)
        by_area.setdefault(loaded.area, []).append(loaded)
    return {name: parts[0] if len(parts) == 1 else _concat(parts) for name, parts in sorted(by_area.items())}


def carbon_intensity(generation: pd.DataFrame, factors: str = "direct") -> pd.Series:
    """DACF's carbon intensity (g CO2e/kWh) of generation by fuel (MW columns named as in the files): in-area
    generation only (imports ignored), ``direct`` (DACF's) or ``lifecycle`` factors
    (:data:`carbonsync.physics.carbon.EMISSION_FACTORS`); negative values count as zero, NaN where any fuel is
    missing."""
    intensity = physics_carbon_intensity(generation.clip(lower=0.0).fillna(0.0), factors)
    return intensity.where(generation.notna().all(axis=1))


def products(generation: pd.DataFrame) -> pd.DataFrame:
    """``carbon_intensity`` (g CO2e/kWh, direct), ``wind_solar_share`` and ``carbon_intensity_lifecycle`` of
    generation by fuel (MW), as DACF computes them (negative values count as zero)."""
    total = generation.clip(lower=0.0).sum(axis=1, min_count=len(generation.columns))
    renewable = generation[[c for c in RENEWABLES if c in generation.columns]].clip(lower=0.0).sum(axis=1)
    share = (renewable / total.where(total > 0)).clip(0.0, 1.0)
    return pd.DataFrame({"carbon_intensity": carbon_intensity(generation), SHARE_COLUMN: share,
                         "carbon_intensity_lifecycle": carbon_intensity(generation, "lifecycle")})


def is_dacf_csv(path: str | Path) -> bool:
    """Whether the header has a UTC time column and the five GFS ``forecast_avg_*_wMean`` weather columns."""
    header = read_header(path)
    return any(c in header for c in TIME_COLUMNS) and all(c in header for c in WEATHER_COLUMNS)


def to_dataset(area: DacfArea) -> xr.Dataset:
    """A :class:`DacfArea` as a contract dataset (zone = the area): ``generation_<fuel>`` and ``total_generation``
    (MW), the weather (:data:`WEATHER_UNITS`) and ``wind_solar_share`` (1). Times as in the file; DACF does not
    say whether ``UTC time`` starts or ends the hour of the generation (``time_label`` ``unstated``)."""
    frame = area.frame
    names = {c: f"generation_{c}" for c in area.generation_columns}
    variables = {names.get(c, c): frame[[c]].set_axis([area.area], axis=1) for c in frame.columns}
    units = {f"generation_{c}": "MW" for c in area.generation_columns} | dict(WEATHER_UNITS)
    units |= {"total_generation": "MW", SHARE_COLUMN: "1"}
    long_names = {f"generation_{c}": f"{c} generation" for c in area.generation_columns}
    long_names |= {"wind_solar_share": "(wind + solar) / all generation", "dswrf": "GFS downward short-wave radiation",
                   "wind_speed_10m": "GFS 10 m wind speed"}
    files = [str(p) for p in area.sources]
    return observation_dataset(
        variables, units, source=SOURCE_NAME, path=files[0] if len(files) == 1 else ", ".join(files), files=files,
        repairs=area.repairs, time_label="unstated", licence=LICENCE, origin=ORIGIN, long_names=long_names,
    )


SOURCE_NAME = "dacf"
SOURCE = register_source(FileSource(
    name=SOURCE_NAME, kind="generation", description="DACF balancing-area file (UTC time, fuels in MW, GFS weather)",
    matches=is_dacf_csv, loader=lambda path, **kw: to_dataset(load_dacf(path, **kw)), licence=LICENCE, origin=ORIGIN,
))
