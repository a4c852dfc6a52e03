"""Small local stores in the public ERA5 Zarr layouts (ARCO-ERA5, WeatherBench2), from analytic fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def analytic(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A smooth field on the sphere (degree-1 harmonics), broadcast to (lat, lon)."""
    la, lo = np.deg2rad(np.asarray(lat, float))[:, None], np.deg2rad(np.asarray(lon, float))[None, :]
    return np.cos(la) * np.cos(lo - 0.5) + 0.5 * np.sin(la)


# ARCO/WB2 name -> (units as in the stores, field from the analytic f and the hour index h)
SURFACE = {
    "100m_u_component_of_wind": ("m s**-1", lambda f, h: 5.0 * f),
    "100m_v_component_of_wind": ("m s**-1", lambda f, h: -4.0 * f + 1.0),
    "2m_temperature": ("K", lambda f, h: 280.0 + 10.0 * f + 0.1 * h),  # trend: train stats != all stats
    "total_cloud_cover": ("(0 - 1)", lambda f, h: 0.5 + 0.4 * f),
    "surface_solar_radiation_downwards": ("J m**-2", lambda f, h: 1.0e6 * (1.2 + f)),
}
LEVELS = {
    "geopotential": ("m**2 s**-2", lambda f, h, p: 9.80665 * (5500.0 + 2.0 * (850 - p) + 100.0 * f)),
    "temperature": ("K", lambda f, h, p: 270.0 + 10.0 * f + 0.02 * (p - 850)),
}


def make_store(
    path: Path,
    lat: np.ndarray,
    lon: np.ndarray,
    times: pd.DatetimeIndex | np.ndarray,
    levels: tuple[int, ...] = (500, 850, 1000),
    spatial: tuple[str, str] = ("latitude", "longitude"),
    units: dict[str, str] | None = None,
    nan_in: str | None = None,
) -> Path:
    """A Zarr store in the ARCO/WB2 layout: long names, ``level`` dim, GRIB-style unit strings."""
    f = analytic(lat, lon)
    if spatial[0] == "longitude":
        f = f.T
    hours = (pd.DatetimeIndex(times) - pd.Timestamp(times[0])) / pd.Timedelta("1h")
    h = np.asarray(hours)[:, None, None]
    data = {}
    for name, (unit, fn) in SURFACE.items():
        values = np.broadcast_to(fn(f[None], h), (len(times), *f.shape)).astype(np.float32).copy()
        if name == nan_in:
            values[1, 2, 3] = np.nan
        data[name] = (("time", *spatial), values, {"units": (units or {}).get(name, unit), "long_name": name})
    p = np.asarray(levels, float)[None, :, None, None]
    for name, (unit, fn) in LEVELS.items():
        values = np.broadcast_to(fn(f[None, None], h[..., None], p), (len(times), len(levels), *f.shape))
        data[name] = (("time", "level", *spatial), values.astype(np.float32), {"units": unit})
    coords = {
        "time": np.asarray(times, dtype="datetime64[ns]"),
        "level": np.asarray(levels, dtype=np.int64),
        "latitude": np.asarray(lat, np.float32),
        "longitude": np.asarray(lon, np.float32),
    }
    ds = xr.Dataset(data, coords=coords).chunk({"time": 6})
    ds.to_zarr(path, mode="w", consolidated=True, zarr_format=2)  # as the public ARCO and WB2 stores
    return path
