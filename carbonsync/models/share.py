"""Day-ahead wind + solar share of a balancing area's generation from region-mean weather forecasts.

The model is physics-structured: ``share = (C_wind * cf_wind(x) + C_solar * cf_solar(x)) / total(x)``.

- **Physical features** (:func:`physics_features`). Wind: windpowerlib's fleet-smoothed power curve applied to
  the GFS 10 m region-mean wind speed scaled by a few hub-height/farm-site factors (a 10 m regional mean
  understates hub winds at the farms), at the hour, three hours either side and as 6 h / 12 h centred means
  (region-mean forecasts misplace fronts in time). Solar: pvlib's PVWatts chain
  (:func:`carbonsync.physics.renewables.solar_capacity_factor`) on the Haurwitz clear-sky irradiance at the area's
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
  of the share residual on the structured share, its wind/solar parts, demand features and the five raw
  weather columns, so the model nests the linear-in-weather baseline and the ridge can fall back to it.
  Every ridge clips its inputs to their training range before predicting: squared and interaction features
  must not extrapolate into weather never seen in training (a first hot month, say).
- **Capacity growth and drift**: installed capacity changes through the year (new farms, reporting changes).
  With ``capacity='recent'`` the capacity factors are learned against a time-varying capacity ``C(t)`` =
  rolling ratio of observed generation to predicted capacity factor over ``capacity_days`` (alternating with
  the ridge fit three times), and forecasts use the capacity re-estimated from the **last** ``capacity_days``
  of training data, not the training average (``capacity='none'``). Independently, ``half_life_days`` weights
  every fit by an exponential time decay (recent rows count more), a general answer to any slow drift.

Fitting uses only the frame passed to :meth:`RenewableShareModel.fit`. :func:`tune` picks options by
rolling-origin validation inside the training data (several validation blocks as long as the forecast
period, each scored by a model fitted on the rows before it), then refits the best few on all of it and
averages them (:class:`ShareEnsemble`).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.errors import CarbonSyncError
from carbonsync.physics.renewables import power_curve, solar_capacity_factor
from carbonsync.physics.solar import clear_sky_hourly

__all__ = [
    "AREA_LATITUDES",
    "DEFAULT_GRID",
    "Geometry",
    "ShareEnsemble",
    "decay_weights",
    "fit_geometry",
    "fit_members",
    "rolling_folds",
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
SMOOTH_HOURS = (6, 12)
COMFORT_K = 291.0  # ~18 °C balance point of heating and cooling degrees
DARK_WM2 = 1.0


class ShareModelError(CarbonSyncError, ValueError):
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
    """Ridge regression on standardised features (intercept unpenalised), optional sample weights.

    The penalty is ``alpha`` times the total weight, so ``alpha`` means the same with or without weights. With
    ``clip_inputs`` each feature is clipped to its training range before prediction, so polynomial and
    interaction features cannot extrapolate (e.g. cooling degrees squared in a first hot month).
    """

    def __init__(self, alpha: float = 1e-3, clip_inputs: bool = False) -> None:
        self.alpha = float(alpha)
        self.clip_inputs = clip_inputs

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> Ridge:
        X, y = np.asarray(X, float), np.asarray(y, float)
        if not np.isfinite(X).all() or not np.isfinite(y).all():
            raise ShareModelError("ridge inputs contain NaN or infinite values")
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        if w.shape != (len(X),) or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
            raise ShareModelError(f"sample weights must be {len(X)} finite non-negative values with a positive sum")
        w = w / w.mean()
        self.low_, self.high_ = X.min(axis=0), X.max(axis=0)
        self.mean_ = np.average(X, axis=0, weights=w)
        self.scale_ = np.sqrt(np.average((X - self.mean_) ** 2, axis=0, weights=w))
        self.scale_[self.scale_ < 1e-12] = 1.0
        Z = np.c_[np.ones(len(X)), (X - self.mean_) / self.scale_]
        Zw = Z * w[:, None]
        penalty = self.alpha * len(X) * np.eye(Z.shape[1])
        penalty[0, 0] = 0.0
        self.coef_ = np.linalg.solve(Zw.T @ Z + penalty, Zw.T @ y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, float)
        if self.clip_inputs:
            X = np.clip(X, self.low_, self.high_)
        Z = (X - self.mean_) / self.scale_
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
    """Wind, solar, demand and raw ``weather`` feature tables (index = ``frame.index``); see the module docstring."""
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
    for hours in SMOOTH_HOURS:  # region-mean forecasts misplace fronts in time: a wider window is more robust
        speed = smooth(weather["wind_speed_10m"].to_numpy(), hours)
        hub = speed * SPEED_FACTORS[1]
        wind[f"power_curve_x{SPEED_FACTORS[1]}_{hours}h_mean"] = np.interp(hub, speeds, curve, left=0.0, right=0.0)
        wind[f"speed_{hours}h_mean"] = speed
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
    tables = {"wind": pd.DataFrame(wind, index=times), "solar": solar, "demand": pd.DataFrame(demand, index=times),
              "weather": weather[list(WEATHER)]}
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


def _calibrated_capacity(generation: np.ndarray, capacity_factor: np.ndarray, weights: np.ndarray) -> float:
    """Capacity (MW) = weighted sum of generation / weighted sum of capacity factor (0 when there is no output)."""
    cf_sum = float(np.sum(weights * np.maximum(capacity_factor, 0.0)))
    return float(np.sum(weights * generation) / cf_sum) if cf_sum > 1e-6 else 0.0


def decay_weights(times: pd.DatetimeIndex, half_life_days: float | None) -> np.ndarray:
    """Sample weights halving every ``half_life_days`` back from the last time (all ones for ``None``), mean 1."""
    if half_life_days is None:
        return np.ones(len(times))
    age_days = (times[-1] - times).total_seconds().to_numpy() / 86400.0
    weights = 0.5 ** (age_days / half_life_days)
    return weights / weights.mean()


# --------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ShareModelConfig:
    """Options of :class:`RenewableShareModel`.

    ``capacity``: ``'recent'`` (rolling capacity, forecasts at the last ``capacity_days``' level) or ``'none'``;
    ``half_life_days``: exponential time-decay of the sample weights of every fit (``None``: uniform);
    ``correction``: ridge correction of the share on the structured prediction, its parts, demand features and
    the raw weather columns (which nests the linear-in-weather baseline).
    """

    capacity: str = "recent"
    capacity_days: int = 56
    alpha: float = 1e-3
    correction: bool = False
    half_life_days: float | None = None
    lat: float | None = None
    lon: float | None = None

    def __post_init__(self) -> None:
        if self.capacity not in ("recent", "none"):
            raise ShareModelError(f"capacity must be 'recent' or 'none', got {self.capacity!r}")
        if self.capacity_days < 7:
            raise ShareModelError(f"capacity_days must be >= 7, got {self.capacity_days}")
        if not self.alpha > 0:
            raise ShareModelError(f"alpha must be > 0, got {self.alpha}")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise ShareModelError(f"half_life_days must be > 0 or None, got {self.half_life_days}")


class _Component:
    """Generation of one source = capacity x ridge capacity factor of the features."""

    def __init__(self, config: ShareModelConfig) -> None:
        self.config = config

    def fit(self, X: pd.DataFrame, generation: np.ndarray, proxy: np.ndarray, mask: np.ndarray | None,
            weights: np.ndarray) -> _Component:
        times = X.index
        values = X.to_numpy()
        if self.config.capacity == "none":
            capacity = np.ones(len(generation))
            rounds = 1
        else:
            capacity = rolling_capacity(generation, proxy, times, self.config.capacity_days)
            rounds = 4
        capacity = np.where(capacity > 0, capacity, np.nanmax(capacity) if np.nanmax(capacity) > 0 else 1.0)
        for round_ in range(rounds):
            self.ridge = Ridge(self.config.alpha, clip_inputs=True).fit(values, generation / capacity, weights)
            cf = self._cf(values, mask)
            if self.config.capacity == "recent" and round_ < rounds - 1:
                capacity = rolling_capacity(generation, cf, times, self.config.capacity_days)
                capacity = np.where(capacity > 0, capacity, np.nanmax(capacity) if np.nanmax(capacity) > 0 else 1.0)
        if self.config.capacity == "recent":  # the level of the last capacity_days, unweighted
            recent = (times >= times[-1] - pd.Timedelta(days=self.config.capacity_days)).astype(float)
            self.capacity_mw = _calibrated_capacity(generation, cf, recent)
        else:  # also calibrates the mean of the clipped capacity factor
            self.capacity_mw = _calibrated_capacity(generation, cf, weights)
        self.capacity_history = pd.Series(capacity, index=times)
        return self

    def _cf(self, values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        cf = np.maximum(self.ridge.predict(values), 0.0)
        return cf if mask is None else np.where(mask, cf, 0.0)

    def predict(self, X: pd.DataFrame, mask: np.ndarray | None) -> np.ndarray:
        return self.capacity_mw * self._cf(X.to_numpy(), mask)


@dataclass(frozen=True)
class Geometry:
    """Where the area's sun is: centroid latitude/longitude and the lag (h) of the GFS irradiance behind it."""

    lat: float
    lon: float
    dswrf_lag: int


def fit_geometry(frame: pd.DataFrame, area: str | None = None, lat: float | None = None,
                 lon: float | None = None) -> Geometry:
    """Centroid and irradiance lag from a training frame (see the module docstring); ``lat``/``lon`` override."""
    lat = lat if lat is not None else AREA_LATITUDES.get(str(area), DEFAULT_LATITUDE)
    has_solar = "solar" in frame.columns and frame["solar"].sum() > 0
    reference = frame["solar"].to_numpy() if has_solar else frame["dswrf"].to_numpy()
    lon = lon if lon is not None else fit_longitude(frame.index, reference, lat)
    probe = frame.index[: min(len(frame), 24 * 60)]
    ghi, _ = _clear_sky(probe, lat, lon, np.full(len(probe), 290.0))
    lag = _wrap_hours(_diurnal_centre(frame["dswrf"].to_numpy()[: len(probe)], probe.hour.to_numpy())
                      - _diurnal_centre(ghi, probe.hour.to_numpy()))
    return Geometry(float(lat), float(lon), int(np.clip(round(lag), -3, 3)))


def _training_rows(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("total_generation", TARGET):
        if column not in frame.columns:
            raise ShareModelError(f"training frame lacks column {column!r}")
    frame = frame.dropna(subset=[c for c in (*WEATHER, "total_generation", TARGET) if c in frame.columns])
    if len(frame) < 24 * 28:
        raise ShareModelError(f"training frame has {len(frame)} hours; at least 4 weeks (672 h) are needed")
    return frame


class RenewableShareModel:
    """Physics-structured wind + solar share model for one balancing area (see the module docstring)."""

    def __init__(self, config: ShareModelConfig | None = None, area: str | None = None) -> None:
        self.config = config or ShareModelConfig()
        self.area = area

    # -- fitting
    def fit(self, frame: pd.DataFrame, geometry: Geometry | None = None,
            features: dict[str, pd.DataFrame] | None = None) -> RenewableShareModel:
        """Fit on an hourly frame with weather, ``total_generation``, ``wind``/``solar`` (MW) and the share.

        ``geometry`` and ``features`` (of exactly these rows) may be passed to reuse them across configurations.
        """
        frame = _training_rows(frame)
        self.sources = [c for c in ("wind", "solar") if c in frame.columns and frame[c].sum() > 0]
        if not self.sources:
            raise ShareModelError("training frame has neither positive 'wind' nor 'solar' generation")
        self.geometry = geometry or fit_geometry(frame, self.area, self.config.lat, self.config.lon)
        if features is None:
            features = physics_features(frame, self.geometry.lat, self.geometry.lon, self.geometry.dswrf_lag)
        elif not features["demand"].index.equals(frame.index):
            raise ShareModelError("precomputed features do not match the training rows")
        weights = decay_weights(frame.index, self.config.half_life_days)
        self.components: dict[str, _Component] = {}
        for source in self.sources:
            X = features[source]
            proxy = X[f"power_curve_x{SPEED_FACTORS[1]}_+0h"].to_numpy() if source == "wind" else X["pv_k"].to_numpy()
            mask = self._mask(features) if source == "solar" else None
            self.components[source] = _Component(self.config).fit(X, frame[source].to_numpy(float), proxy, mask, weights)
        self.demand = Ridge(self.config.alpha, clip_inputs=True).fit(
            features["demand"].to_numpy(), frame["total_generation"].to_numpy(float), weights)
        self.correction = None
        if self.config.correction:
            structured, parts, total = self._structured(features)
            residual = frame[TARGET].to_numpy(float) - structured
            inputs = self._correction_inputs(features, structured, parts, total)
            self.correction = Ridge(10 * self.config.alpha, clip_inputs=True).fit(inputs, residual, weights)
        self.trained_until = frame.index[-1]
        return self

    @property
    def lat(self) -> float:
        return self.geometry.lat

    @property
    def lon(self) -> float:
        return self.geometry.lon

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
        columns = ["cooling", "heating", "weekend", "sin1", "cos1", "sin2", "cos2"]
        return np.column_stack([structured, *[p / total for p in parts.values()], demand[columns].to_numpy(),
                                features["weather"].to_numpy()])

    # -- prediction
    def features(self, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Feature tables of ``frame``'s weather at the fitted geometry."""
        if not hasattr(self, "components"):
            raise ShareModelError("the model is not fitted")
        missing = [c for c in WEATHER if c not in frame.columns]
        if missing:
            raise ShareModelError(f"frame lacks weather columns {missing}")
        frame = frame.dropna(subset=list(WEATHER))
        return physics_features(frame, self.geometry.lat, self.geometry.lon, self.geometry.dswrf_lag)

    def components_from_features(self, features: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Predicted ``wind_mw``, ``solar_mw``, ``total_mw`` and ``share`` from precomputed feature tables."""
        structured, parts, total = self._structured(features)
        share = structured
        if self.correction is not None:
            share = share + self.correction.predict(self._correction_inputs(features, structured, parts, total))
        out = pd.DataFrame({f"{k}_mw": v for k, v in parts.items()}, index=features["demand"].index)
        out["total_mw"] = total
        out["share"] = np.clip(share, 0.0, 1.0)
        return out

    def components_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predicted ``wind_mw``, ``solar_mw``, ``total_mw`` and ``share`` for the weather in ``frame``."""
        return self.components_from_features(self.features(frame))

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """Day-ahead wind + solar share for each row of ``frame`` (weather columns only are used)."""
        return self.components_frame(frame)["share"]

    def describe(self) -> dict:
        return {
            "config": asdict(self.config), "lat": self.lat, "lon": round(self.lon, 2), "dswrf_lag_h": self.geometry.dswrf_lag,
            "capacity_mw": {k: round(c.capacity_mw, 1) for k, c in self.components.items()},
            "trained_until": str(self.trained_until),
        }


class ShareEnsemble:
    """Mean share of several :class:`RenewableShareModel` fitted to the same rows (one feature computation)."""

    def __init__(self, members: Sequence[RenewableShareModel]) -> None:
        if not members:
            raise ShareModelError("an ensemble needs at least one member")
        self.members = list(members)

    @property
    def sources(self) -> list[str]:
        return self.members[0].sources

    @property
    def trained_until(self) -> pd.Timestamp:
        return self.members[0].trained_until

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """Mean of the members' day-ahead shares (they share one geometry, so features are computed once)."""
        features = self.members[0].features(frame)
        shares = [m.components_from_features(features)["share"] for m in self.members]
        return (sum(shares) / len(shares)).rename("share")

    def describe(self) -> dict:
        return {"members": [m.describe() for m in self.members]}


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
    "half_life_days": (None, 90.0),
}


def rolling_folds(index: pd.DatetimeIndex, folds: int, fold_days: int,
                  step_days: int | None = None) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Rolling-origin folds at the end of ``index``, oldest first: (origin, end) of each validation block.

    Fold ``j`` fits on the rows up to ``origin`` and validates on the rows in ``(origin, origin + fold_days]``;
    the last block ends at the last row and each earlier origin is ``step_days`` (default ``fold_days``: no
    overlap) before the next. Blocks as long as the forecast period score the horizon that will be used.
    """
    step_days = fold_days if step_days is None else step_days
    if folds < 1 or fold_days < 1 or step_days < 1:
        raise ShareModelError(f"need folds, fold_days and step_days >= 1, got {folds}, {fold_days}, {step_days}")
    last_origin = index[-1] - pd.Timedelta(days=fold_days)
    origins = [last_origin - pd.Timedelta(days=k * step_days) for k in range(folds - 1, -1, -1)]
    return [(o, o + pd.Timedelta(days=fold_days)) for o in origins]


def _candidates(grid: dict[str, Sequence], base: ShareModelConfig) -> list[ShareModelConfig]:
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        config = replace(base, **dict(zip(keys, values, strict=True)))
        if config.capacity == "none" and config.capacity_days != grid.get("capacity_days", (base.capacity_days,))[0]:
            continue  # capacity_days is unused without capacity tracking
        out.append(config)
    return out


def fit_members(frame: pd.DataFrame, configs: Sequence[ShareModelConfig], area: str | None = None) -> list[RenewableShareModel]:
    """Fit one model per config on ``frame``, computing the geometry and features once."""
    frame = _training_rows(frame)
    base = configs[0]
    geometry = fit_geometry(frame, area, base.lat, base.lon)
    features = physics_features(frame, geometry.lat, geometry.lon, geometry.dswrf_lag)
    return [RenewableShareModel(c, area).fit(frame, geometry, features) for c in configs]


def tune(
    frame: pd.DataFrame,
    area: str | None = None,
    folds: int = 4,
    fold_days: int = 61,
    step_days: int = 30,
    grid: dict[str, Sequence] | None = None,
    base: ShareModelConfig | None = None,
    ensemble: int = 3,
) -> tuple[ShareEnsemble, dict]:
    """Choose options by rolling-origin validation inside ``frame``, then refit on all of it.

    Every candidate of ``grid`` is fitted on the rows before each of the ``folds`` validation blocks of
    :func:`rolling_folds` (``fold_days`` long, origins ``step_days`` apart, the last ending with ``frame``) and
    scored (RMSE) on the block; candidates are ranked by their mean RMSE over the folds.
    The ``ensemble`` best are refitted on all of ``frame`` and averaged. Returns the ensemble and a report with
    the folds, every candidate's fold RMSEs, the chosen configs and the ensemble's own fold RMSEs.
    """
    frame = frame.dropna(subset=[*WEATHER, TARGET, "total_generation"])
    if frame.empty:
        raise ShareModelError("no complete training rows")
    if ensemble < 1:
        raise ShareModelError(f"ensemble must be >= 1, got {ensemble}")
    blocks = rolling_folds(frame.index, folds, fold_days, step_days)
    if frame.index[0] > blocks[0][0] - pd.Timedelta(days=28) or fold_days < 7:
        raise ShareModelError(
            f"training data of {len(frame)} hours is too short for {folds} rolling folds of {fold_days} days "
            f"{step_days} days apart "
            f"(need >= 4 weeks before the first fold and folds of >= 7 days)"
        )
    base = base or ShareModelConfig()
    configs = _candidates(grid or DEFAULT_GRID, base)
    keys = list(grid or DEFAULT_GRID)
    fold_rmse = np.full((len(configs), len(blocks)), np.nan)
    fold_predictions: list[list[np.ndarray]] = [[] for _ in configs]
    fold_truth = []
    for j, (origin, end) in enumerate(blocks):
        fit_part = frame[frame.index <= origin]
        val_part = frame[(frame.index > origin) & (frame.index <= end)]
        if len(val_part) < 24:
            raise ShareModelError(f"fold {j} ({origin} .. {end}) has {len(val_part)} validation hours")
        models = fit_members(fit_part, configs, area)
        val_features = models[0].features(val_part)
        y = val_part[TARGET].to_numpy()
        fold_truth.append(y)
        for i, model in enumerate(models):
            p = model.components_from_features(val_features)["share"].to_numpy()
            fold_predictions[i].append(p)
            fold_rmse[i, j] = scores(y, p)["rmse"]
    mean_rmse = np.where(np.isfinite(fold_rmse).all(axis=1), fold_rmse.mean(axis=1), np.inf)
    order = np.argsort(mean_rmse, kind="stable")[: min(ensemble, len(configs))]
    ensemble_rmse = [
        scores(fold_truth[j], np.mean([fold_predictions[i][j] for i in order], axis=0))["rmse"] for j in range(len(blocks))
    ]
    final = ShareEnsemble(fit_members(frame, [configs[i] for i in order], area))

    def _options(config: ShareModelConfig) -> dict:
        return {k: getattr(config, k) for k in keys}

    report = {
        "folds": [[str(o), str(e)] for o, e in blocks],
        "chosen": [{**_options(configs[i]), "mean_val_rmse": round(float(mean_rmse[i]), 5)} for i in order],
        "ensemble_fold_rmse": [round(r, 5) for r in ensemble_rmse],
        "ensemble_mean_val_rmse": float(np.mean(ensemble_rmse)),
        "candidates": [{**_options(c), "fold_rmse": [round(float(r), 5) for r in fold_rmse[i]],
                        "mean_val_rmse": round(float(mean_rmse[i]), 5)} for i, c in enumerate(configs)],
    }
    return final, report
