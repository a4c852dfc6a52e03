"""Day-ahead wind + solar share of a balancing area's generation from region-mean weather forecasts.

The model is physics-structured: ``share = (C_wind * cf_wind(x) + C_solar * cf_solar(x)) / total(x)``.

- **Physical features** (:func:`physics_features`). Wind: windpowerlib's fleet-smoothed power curve applied to
  the GFS 10 m region-mean wind speed scaled by a few hub-height/farm-site factors (a 10 m regional mean
  understates hub winds at the farms), at the hour and three hours either side. Solar: pvlib's PVWatts chain
  (:func:`carbonsync.models.physics.solar_capacity_factor`) on the Haurwitz clear-sky irradiance at the area's
  centroid, times a clearness index from the GFS irradiance (``dswrf`` is a GFS interval mean, so it is
  re-timed by the lag between its diurnal centre and the clear sky's, measured on the training data, and
  averaged over 5 h). The centroid's longitude is fitted so that the clear-sky diurnal centre matches the
  training solar output (or the irradiance when there is no solar), which also absorbs the file's time-label
  convention; latitudes of the DACF areas are tabulated (:data:`AREA_LATITUDES`), else 40° N unless given.
  Demand: heating/cooling degrees (and their hour-of-day interactions), dewpoint, irradiance, hour of day,
  weekend. No observed generation enters the features, so every prediction is a pure weather-driven day-ahead
  forecast (no target lag within 24 h, or at all).
- **Learned maps**: ridge regressions from the features to the wind and solar capacity factors ``gen / C(t)``
  and to total generation (MW); solar is forced to 0 when the clear sky is dark; an optional ridge correction
  of the share residual on the structured share, its wind/solar parts and the demand features.
- **Capacity growth** (``capacity='recent'``): installed capacity changes through the year (new farms,
  reporting changes), so the capacity factors are learned against a time-varying capacity ``C(t)`` = rolling
  ratio of observed generation to predicted capacity factor over ``capacity_days`` (alternating with the
  ridge fit three times), and forecasts use the capacity re-estimated from the **last** ``capacity_days`` of
  training data. A later test period with more capacity is then scaled by the most recent level instead of
  the training average (``capacity='none'``).

Fitting uses only the frame passed to :meth:`RenewableShareModel.fit`; :func:`tune` picks the options on a
validation period cut from the end of the training data and refits on all of it.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.data.solar import clear_sky_hourly
from carbonsync.models.physics import power_curve, solar_capacity_factor

__all__ = [
    "AREA_LATITUDES",
    "ShareModelConfig",
    "RenewableShareModel",
    "HourOfDayClimatology",
    "LinearWeatherBaseline",
    "Ridge",
    "scores",
    "tune",
    "physics_features",
]

AREA_LATITUDES = {"CISO": 36.0, "ERCO": 31.0, "ISNE": 43.5, "PJM": 40.0, "SE": 62.0}
DEFAULT_LATITUDE = 40.0
WEATHER = ("wind_speed_10m", "temperature", "dewpoint", "dswrf", "precipitation")
TARGET = "wind_solar_share"
SPEED_FACTORS = (1.4, 1.8, 2.3)  # 10 m region mean -> hub height at the farms (shear ~ (100/10)^(1/7) = 1.39 and up)
NEIGHBOUR_HOURS = (-3, 0, 3)
COMFORT_K = 291.0  # ~18 °C balance point of heating and cooling degrees
DARK_WM2 = 1.0


class ShareModelError(ValueError):
    """Inputs the share model cannot use, naming the column or value."""


def scores(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² (against the observed mean of the scored period)."""
    y, p = np.asarray(observed, float), np.asarray(predicted, float)
    if y.shape != p.shape or y.size == 0:
        raise ShareModelError(f"cannot score {p.shape} predictions against {y.shape} observations")
    err = p - y
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1.0 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
    }


class Ridge:
    """Ridge regression on standardised features (intercept unpenalised), optional sample weights."""

    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = float(alpha)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Ridge:
        X, y = np.asarray(X, float), np.asarray(y, float)
        if not np.isfinite(X).all() or not np.isfinite(y).all():
            raise ShareModelError("ridge inputs contain NaN or infinite values")
        self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0)
        self.scale_[self.scale_ < 1e-12] = 1.0
        Z = np.c_[np.ones(len(X)), (X - self.mean_) / self.scale_]
        penalty = self.alpha * len(X) * np.eye(Z.shape[1])
        penalty[0, 0] = 0.0
        self.coef_ = np.linalg.solve(Z.T @ Z + penalty, Z.T @ y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, float) - self.mean_) / self.scale_
        return self.coef_[0] + Z @ self.coef_[1:]


# ------------------------------------------------------------------------------------------ features


def _regular(frame: pd.DataFrame) -> pd.DataFrame:
    """Weather on a gap-free hourly index (short holes bridged) so neighbour hours are well defined."""
    missing = [c for c in WEATHER if c not in frame.columns]
    if missing:
        raise ShareModelError(f"frame lacks weather columns {missing}")
    if not isinstance(frame.index, pd.DatetimeIndex) or not frame.index.is_monotonic_increasing:
        raise ShareModelError("frame must have a sorted DatetimeIndex of UTC hours")
    full = pd.date_range(frame.index[0], frame.index[-1], freq="h")
    weather = frame[list(WEATHER)].reindex(full)
    return weather.interpolate(limit_area="inside").ffill().bfill()


def _clear_sky(times: pd.DatetimeIndex, lat: float, lon: float, temperature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clear-sky GHI (W m-2, hour ending at each label) and its PVWatts capacity factor at (lat, lon)."""
    accumulated = clear_sky_hourly(times, np.array([lat]), np.array([lon % 360.0]))
    coords = {"time": times.values, "lat": [lat], "lon": [lon % 360.0]}
    ssrd = xr.DataArray(accumulated, dims=("time", "lat", "lon"), coords=coords, attrs={"units": "J m-2"})
    t2m = xr.DataArray(temperature[:, None, None], dims=("time", "lat", "lon"), coords=coords, attrs={"units": "K"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cf = solar_capacity_factor(ssrd, t2m=t2m).values[:, 0, 0]
    return accumulated[:, 0, 0] / 3600.0, np.asarray(cf, float)


def _diurnal_centre(values: np.ndarray, hours: np.ndarray) -> float:
    """Circular mean hour of the mean diurnal profile (UTC hours, -12..12)."""
    profile = pd.Series(values).groupby(hours).mean().reindex(range(24), fill_value=0.0).to_numpy()
    phase = np.angle(np.sum(profile * np.exp(2j * np.pi * np.arange(24) / 24)))
    return float(phase / (2 * np.pi) * 24)


def _wrap_hours(h: float) -> float:
    return (h + 12.0) % 24.0 - 12.0


def fit_longitude(times: pd.DatetimeIndex, output: np.ndarray, lat: float) -> float:
    """Longitude whose clear-sky diurnal centre matches that of ``output`` (solar MW or irradiance)."""
    hours = times.hour.to_numpy()
    if not np.nansum(output) > 0:
        raise ShareModelError("cannot place the area: no positive solar output or irradiance in the training data")
    target = _diurnal_centre(output, hours)
    lon = -15.0 * target
    probe = times[: min(len(times), 24 * 60)]
    for _ in range(3):
        ghi, _ = _clear_sky(probe, lat, lon, np.full(len(probe), 290.0))
        lon -= 15.0 * _wrap_hours(target - _diurnal_centre(ghi, probe.hour.to_numpy()))
    return float((lon + 180.0) % 360.0 - 180.0)


def physics_features(frame: pd.DataFrame, lat: float, lon: float, dswrf_lag: int) -> dict[str, pd.DataFrame]:
    """Wind, solar and demand feature tables (index = ``frame.index``); see the module docstring."""
    weather = _regular(frame)
    times = weather.index
    temperature = weather["temperature"].to_numpy()
    ghi_cs, pv_cs = _clear_sky(times, lat, lon, temperature)

    def smooth(x: np.ndarray, hours: int) -> np.ndarray:
        return pd.Series(x).rolling(hours, center=True, min_periods=1).mean().to_numpy()

    dswrf = weather["dswrf"].shift(-dswrf_lag).ffill().bfill().to_numpy()
    cs_smooth = smooth(ghi_cs, 5)
    clearness = np.where(cs_smooth > 20.0, np.clip(smooth(dswrf, 5) / np.maximum(cs_smooth, 20.0), 0.0, 1.2), 0.0)
    solar = pd.DataFrame({
        "pv_clear": pv_cs, "pv_k": pv_cs * clearness, "pv_k2": pv_cs * clearness**2,
        "ghi_clear": ghi_cs / 1000.0, "ghi_k": ghi_cs * clearness / 1000.0,
    }, index=times)

    hour = times.hour.to_numpy()
    harmonics = {f"{fn}{n}": getattr(np, fn)(2 * np.pi * n * hour / 24) for n in (1, 2, 3) for fn in ("sin", "cos")}
    speeds, curve = power_curve()
    wind: dict[str, np.ndarray] = {}
    for shift in NEIGHBOUR_HOURS:
        speed = weather["wind_speed_10m"].shift(shift).ffill().bfill().to_numpy()
        for factor in SPEED_FACTORS:
            wind[f"power_curve_x{factor}_{shift:+d}h"] = np.interp(speed * factor, speeds, curve, left=0.0, right=0.0)
        wind[f"speed_{shift:+d}h"] = speed
        wind[f"speed2_{shift:+d}h"] = speed**2
    wind.update(harmonics)
    wind["temperature"] = temperature - COMFORT_K
    wind["dewpoint"] = weather["dewpoint"].to_numpy() - COMFORT_K
    # the 10 m -> hub-height relation changes with stability: day/night, season, humidity, sunshine
    speed = weather["wind_speed_10m"].to_numpy()
    stability = {"sin1": harmonics["sin1"], "cos1": harmonics["cos1"], "sin2": harmonics["sin2"], "cos2": harmonics["cos2"],
                 "temperature": wind["temperature"] / 10.0, "spread": (temperature - weather["dewpoint"].to_numpy()) / 10.0,
                 "dswrf": weather["dswrf"].to_numpy() / 1000.0}
    for key, value in stability.items():
        wind[f"speed_x_{key}"] = speed * value
        wind[f"power_curve_x_{key}"] = wind[f"power_curve_x{SPEED_FACTORS[1]}_+0h"] * value

    degrees = temperature - COMFORT_K
    demand = {
        "cooling": np.maximum(degrees, 0.0), "heating": np.maximum(-degrees, 0.0),
        "cooling2": np.maximum(degrees, 0.0) ** 2, "heating2": np.maximum(-degrees, 0.0) ** 2,
        "temperature_24h": smooth(temperature, 24) - COMFORT_K, "dewpoint": weather["dewpoint"].to_numpy() - COMFORT_K,
        "weekend": (times.day_of_week >= 5).astype(float), "dswrf": weather["dswrf"].to_numpy() / 1000.0,
        "pv_clear": pv_cs, "pv_k": pv_cs * clearness,
    }
    demand.update(harmonics)
    for key in ("cooling", "heating"):
        for n in (1, 2):
            demand[f"{key}_sin{n}"] = demand[key] * harmonics[f"sin{n}"]
            demand[f"{key}_cos{n}"] = demand[key] * harmonics[f"cos{n}"]
    tables = {"wind": pd.DataFrame(wind, index=times), "solar": solar, "demand": pd.DataFrame(demand, index=times)}
    return {name: table.loc[frame.index] for name, table in tables.items()}


# ------------------------------------------------------------------------------------------- capacity


def rolling_capacity(generation: np.ndarray, capacity_factor: np.ndarray, times: pd.DatetimeIndex,
                     days: int) -> np.ndarray:
    """Capacity (MW) at each hour = sum of generation / sum of capacity factor over a centred ``days`` window."""
    daily = pd.DataFrame({"gen": generation, "cf": np.maximum(capacity_factor, 0.0)}, index=times).resample("D").sum()
    window = daily.rolling(days, center=True, min_periods=max(3, days // 3)).sum()
    ratio = window["gen"] / window["cf"].where(window["cf"] > 1e-6)
    ratio = ratio.ffill().bfill().fillna(0.0)
    return ratio.reindex(times.floor("D")).to_numpy()


def _recent_capacity(generation: np.ndarray, capacity_factor: np.ndarray, times: pd.DatetimeIndex, days: int) -> float:
    recent = times >= times[-1] - pd.Timedelta(days=days)
    cf_sum = float(np.maximum(capacity_factor[recent], 0.0).sum())
    return float(generation[recent].sum() / cf_sum) if cf_sum > 1e-6 else 0.0


# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ShareModelConfig:
    """Options of :class:`RenewableShareModel` (``capacity``: ``'recent'`` or ``'none'``)."""

    capacity: str = "recent"
    capacity_days: int = 56
    alpha: float = 1e-3
    correction: bool = False
    lat: float | None = None
    lon: float | None = None

    def __post_init__(self) -> None:
        if self.capacity not in ("recent", "none"):
            raise ShareModelError(f"capacity must be 'recent' or 'none', got {self.capacity!r}")
        if self.capacity_days < 7:
            raise ShareModelError(f"capacity_days must be >= 7, got {self.capacity_days}")
        if not self.alpha > 0:
            raise ShareModelError(f"alpha must be > 0, got {self.alpha}")


class _Component:
    """Generation of one source = capacity x ridge capacity factor of the features."""

    def __init__(self, config: ShareModelConfig) -> None:
        self.config = config

    def fit(self, X: pd.DataFrame, generation: np.ndarray, proxy: np.ndarray, mask: np.ndarray | None) -> _Component:
        times = X.index
        values = X.to_numpy()
        self.mask_needed = mask is not None
        if self.config.capacity == "none":
            capacity = np.ones(len(generation))
            rounds = 1
        else:
            capacity = rolling_capacity(generation, proxy, times, self.config.capacity_days)
            rounds = 4
        capacity = np.where(capacity > 0, capacity, np.nanmax(capacity) if np.nanmax(capacity) > 0 else 1.0)
        for round_ in range(rounds):
            self.ridge = Ridge(self.config.alpha).fit(values, generation / capacity)
            cf = self._cf(values, mask)
            if self.config.capacity == "recent" and round_ < rounds - 1:
                capacity = rolling_capacity(generation, cf, times, self.config.capacity_days)
                capacity = np.where(capacity > 0, capacity, np.nanmax(capacity) if np.nanmax(capacity) > 0 else 1.0)
        days = self.config.capacity_days if self.config.capacity == "recent" else 10**6
        self.capacity_mw = _recent_capacity(generation, cf, times, days)  # also calibrates the clipped mean
        self.capacity_history = pd.Series(capacity, index=times)
        return self

    def _cf(self, values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        cf = np.maximum(self.ridge.predict(values), 0.0)
        return cf if mask is None else np.where(mask, cf, 0.0)

    def predict(self, X: pd.DataFrame, mask: np.ndarray | None) -> np.ndarray:
        return self.capacity_mw * self._cf(X.to_numpy(), mask)


class RenewableShareModel:
    """Physics-structured wind + solar share model for one balancing area (see the module docstring)."""

    def __init__(self, config: ShareModelConfig | None = None, area: str | None = None) -> None:
        self.config = config or ShareModelConfig()
        self.area = area

    # -- fitting
    def fit(self, frame: pd.DataFrame) -> RenewableShareModel:
        """Fit on an hourly frame with weather, ``total_generation``, ``wind``/``solar`` (MW) and the share."""
        frame = frame.dropna(subset=[c for c in (*WEATHER, "total_generation", TARGET) if c in frame.columns])
        for column in ("total_generation", TARGET):
            if column not in frame.columns:
                raise ShareModelError(f"training frame lacks column {column!r}")
        self.sources = [c for c in ("wind", "solar") if c in frame.columns and frame[c].sum() > 0]
        if not self.sources:
            raise ShareModelError("training frame has neither positive 'wind' nor 'solar' generation")
        if len(frame) < 24 * 28:
            raise ShareModelError(f"training frame has {len(frame)} hours; at least 4 weeks (672 h) are needed")
        self.lat = self.config.lat if self.config.lat is not None else AREA_LATITUDES.get(str(self.area), DEFAULT_LATITUDE)
        reference = frame["solar"].to_numpy() if "solar" in self.sources else frame["dswrf"].to_numpy()
        self.lon = self.config.lon if self.config.lon is not None else fit_longitude(frame.index, reference, self.lat)
        probe = frame.index[: min(len(frame), 24 * 60)]
        ghi, _ = _clear_sky(probe, self.lat, self.lon, np.full(len(probe), 290.0))
        lag = _wrap_hours(_diurnal_centre(frame["dswrf"].to_numpy()[: len(probe)], probe.hour.to_numpy())
                          - _diurnal_centre(ghi, probe.hour.to_numpy()))
        self.dswrf_lag = int(np.clip(round(lag), -3, 3))

        features = physics_features(frame, self.lat, self.lon, self.dswrf_lag)
        self.components: dict[str, _Component] = {}
        for source in self.sources:
            X = features[source]
            proxy = X[f"power_curve_x{SPEED_FACTORS[1]}_+0h"].to_numpy() if source == "wind" else X["pv_k"].to_numpy()
            mask = self._mask(features) if source == "solar" else None
            self.components[source] = _Component(self.config).fit(X, frame[source].to_numpy(float), proxy, mask)
        self.demand = Ridge(self.config.alpha).fit(features["demand"].to_numpy(), frame["total_generation"].to_numpy(float))
        self.correction = None
        if self.config.correction:
            structured, parts, total = self._structured(features)
            residual = frame[TARGET].to_numpy(float) - structured
            self.correction = Ridge(10 * self.config.alpha).fit(self._correction_inputs(features, structured, parts, total),
                                                                residual)
        self.trained_until = frame.index[-1]
        return self

    @staticmethod
    def _mask(features: dict[str, pd.DataFrame]) -> np.ndarray:
        return features["solar"]["ghi_clear"].to_numpy() * 1000.0 > DARK_WM2

    def _structured(self, features: dict[str, pd.DataFrame]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        parts = {}
        for source, component in self.components.items():
            mask = self._mask(features) if source == "solar" else None
            parts[source] = component.predict(features[source], mask)
        total = np.maximum(self.demand.predict(features["demand"].to_numpy()), 1e-6)
        return np.clip(sum(parts.values()) / total, 0.0, 1.0), parts, total

    @staticmethod
    def _correction_inputs(features, structured, parts, total) -> np.ndarray:
        demand = features["demand"]
        columns = ["cooling", "heating", "dewpoint", "weekend", "sin1", "cos1", "sin2", "cos2"]
        return np.column_stack([structured, *[p / total for p in parts.values()], demand[columns].to_numpy()])

    # -- prediction
    def components_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predicted ``wind_mw``, ``solar_mw``, ``total_mw`` and ``share`` for the weather in ``frame``."""
        if not hasattr(self, "components"):
            raise ShareModelError("the model is not fitted")
        missing = [c for c in WEATHER if c not in frame.columns]
        if missing:
            raise ShareModelError(f"frame lacks weather columns {missing}")
        frame = frame.dropna(subset=list(WEATHER))
        features = physics_features(frame, self.lat, self.lon, self.dswrf_lag)
        structured, parts, total = self._structured(features)
        share = structured
        if self.correction is not None:
            share = share + self.correction.predict(self._correction_inputs(features, structured, parts, total))
        out = pd.DataFrame({f"{k}_mw": v for k, v in parts.items()}, index=frame.index)
        out["total_mw"] = total
        out["share"] = np.clip(share, 0.0, 1.0)
        return out

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """Day-ahead wind + solar share for each row of ``frame`` (weather columns only are used)."""
        return self.components_frame(frame)["share"]

    def describe(self) -> dict:
        return {
            "config": asdict(self.config), "lat": self.lat, "lon": round(self.lon, 2), "dswrf_lag_h": self.dswrf_lag,
            "recent_capacity_mw": ({k: round(c.capacity_mw, 1) for k, c in self.components.items()}
                                   if self.config.capacity == "recent" else None),
            "trained_until": str(self.trained_until),
        }


# ------------------------------------------------------------------------------------------ baselines


class HourOfDayClimatology:
    """Mean training share by UTC hour of day."""

    def fit(self, frame: pd.DataFrame) -> HourOfDayClimatology:
        data = frame[TARGET].dropna()
        self.by_hour = data.groupby(data.index.hour).mean().reindex(range(24)).fillna(data.mean())
        return self

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        return pd.Series(self.by_hour.to_numpy()[frame.index.hour], index=frame.index, name=TARGET)


class LinearWeatherBaseline:
    """Least squares of the share on the five GFS weather columns (plus intercept), clipped to [0, 1]."""

    def fit(self, frame: pd.DataFrame) -> LinearWeatherBaseline:
        data = frame.dropna(subset=[*WEATHER, TARGET])
        self.ridge = Ridge(1e-8).fit(data[list(WEATHER)].to_numpy(), data[TARGET].to_numpy())
        return self

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        data = frame.dropna(subset=list(WEATHER))
        return pd.Series(np.clip(self.ridge.predict(data[list(WEATHER)].to_numpy()), 0, 1), index=data.index, name=TARGET)


# ------------------------------------------------------------------------------------------------ tune


DEFAULT_GRID = {
    "capacity": ("none", "recent"),
    "capacity_days": (56,),
    "alpha": (1e-3, 1e-2, 1e-1),
    "correction": (False, True),
}


def tune(
    frame: pd.DataFrame,
    area: str | None = None,
    val_days: int = 61,
    grid: dict[str, Sequence] | None = None,
    base: ShareModelConfig | None = None,
) -> tuple[RenewableShareModel, dict]:
    """Choose options by validation RMSE on the last ``val_days`` of ``frame``, then refit on all of ``frame``.

    Returns the refitted model and a report with the chosen config and every candidate's validation RMSE.
    """
    frame = frame.dropna(subset=[*WEATHER, TARGET, "total_generation"])
    if frame.empty:
        raise ShareModelError("no complete training rows")
    cut = frame.index[-1] - pd.Timedelta(days=val_days)
    fit_part, val_part = frame[frame.index <= cut], frame[frame.index > cut]
    if len(val_part) < 24 * 7 or len(fit_part) < 24 * 28:
        raise ShareModelError(
            f"training data of {len(frame)} hours is too short to hold out {val_days} validation days "
            f"(need >= 4 weeks to fit and >= 1 week to validate)"
        )
    grid = grid or DEFAULT_GRID
    base = base or ShareModelConfig()
    keys = list(grid)
    candidates = []
    for values in itertools.product(*(grid[k] for k in keys)):
        config = replace(base, **dict(zip(keys, values, strict=True)))
        if config.capacity == "none" and config.capacity_days != grid.get("capacity_days", (base.capacity_days,))[0]:
            continue
        model = RenewableShareModel(config, area).fit(fit_part)
        rmse = scores(val_part[TARGET].to_numpy(), model.predict(val_part).to_numpy())["rmse"]
        candidates.append((rmse, config))
    best_rmse, best = min(candidates, key=lambda c: (c[0] if math.isfinite(c[0]) else np.inf))
    final = RenewableShareModel(best, area).fit(frame)
    report = {
        "val_period": [str(val_part.index[0]), str(val_part.index[-1])],
        "val_rmse": best_rmse,
        "chosen": {k: getattr(best, k) for k in keys},
        "candidates": [{**{k: getattr(c, k) for k in keys}, "val_rmse": round(r, 5)} for r, c in candidates],
    }
    return final, report
