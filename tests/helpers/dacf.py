"""Synthetic DACF balancing-area files from known physics, for the observation and signal tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carbonsync.physics.renewables import power_curve
from carbonsync.physics.solar import clear_sky_hourly

WEATHER_COLS = [
    "forecast_avg_wind_speed_wMean", "forecast_avg_temperature_wMean", "forecast_avg_dewpoint_wMean",
    "forecast_avg_dswrf_wMean", "forecast_avg_precipitation_wMean",
]


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    noise = rng.normal(0.0, sigma, n)
    out = np.empty(n)
    out[0] = noise[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + noise[i]
    return out


def synthetic_dacf(start: str = "2020-01-01", days: int = 365, seed: int = 0, growth: float = 0.0,
                   solar: bool = True, lat: float = 38.0, lon: float = -100.0) -> pd.DataFrame:
    """A DACF-format frame from known physics: capacity x power curve / PV output over a weather-driven demand.

    ``growth`` is the fractional capacity increase (wind and solar) from the first to the last hour.
    """
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=days * 24, freq="h")
    n = len(times)
    doy, hour = times.day_of_year.to_numpy(), times.hour.to_numpy()
    speed = np.clip(5.0 + 1.0 * np.cos(2 * np.pi * doy / 365) + _ar1(rng, n, 0.97, 0.45), 0.3, None)
    ghi_cs = clear_sky_hourly(times, np.array([lat]), np.array([lon % 360]))[:, 0, 0] / 3600.0
    clearness = np.clip(0.75 + _ar1(rng, n, 0.95, 0.08), 0.1, 1.0)
    dswrf = ghi_cs * clearness
    local_hour = (hour + lon / 15.0) % 24
    temperature = 288 + 10 * np.sin(2 * np.pi * (doy - 110) / 365) + 4 * np.sin(2 * np.pi * (local_hour - 9) / 24) \
        + _ar1(rng, n, 0.98, 0.4)
    capacity = 1.0 + growth * np.arange(n) / (n - 1)
    speeds, curve = power_curve()
    wind = 4000.0 * capacity * np.interp(speed * 1.8, speeds, curve, left=0.0, right=0.0) * (1 + 0.03 * rng.normal(size=n))
    pv = 3000.0 * capacity * 0.8 * dswrf / 1000.0 if solar else np.zeros(n)
    total = 30000 + 500 * np.abs(temperature - 291) + 3000 * np.sin(2 * np.pi * (local_hour - 14) / 24) \
        + 300 * rng.normal(size=n)
    nuclear = np.full(n, 6000.0)
    gas = np.maximum(total - wind - pv - nuclear, 500.0)
    frame = pd.DataFrame({"UTC time": times.strftime("%Y-%m-%d %H:%M:%S"), "nuclear": nuclear.round(), "nat_gas": gas.round()})
    if solar:
        frame["solar"] = np.maximum(pv, 0).round()
    frame["wind"] = np.maximum(wind, 0).round()
    frame[WEATHER_COLS] = np.column_stack([speed, temperature, temperature - 4 - np.abs(_ar1(rng, n, 0.9, 1.0)),
                                           dswrf, np.where(rng.random(n) < 0.1, rng.exponential(0.5, n), 0.0)])
    frame["avg_wind_production_forecast"] = frame["wind"] * (1 + 0.1 * rng.normal(size=n))
    generation = [c for c in ("nuclear", "nat_gas", "solar", "wind") if c in frame]
    renewables = [c for c in ("solar", "wind") if c in frame]
    frame["wind_solar_share"] = (frame[renewables].sum(axis=1) / frame[generation].sum(axis=1)).round(5)
    return frame


