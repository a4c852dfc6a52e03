"""Solar geometry on grids, vectorised over (time, lat, lon), built on pvlib's analytical formulas.

Hourly quantities follow the ERA5 convention: the value labelled ``t`` is the accumulation (J m-2) or
mean over the hour ending at ``t``. They are integrated with a midpoint rule over ``substeps`` points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from pvlib import clearsky, irradiance, solarposition

HOUR_S = 3600.0


def _as_index(times: np.ndarray | pd.DatetimeIndex | xr.DataArray) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[ns]"))
    return index.tz_localize(None) if index.tz is not None else index


def cos_zenith(times, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cosine of the solar zenith angle, shape (time, lat, lon), from Spencer (1971) declination and
    equation of time (pvlib) and the hour angle at each longitude."""
    index = _as_index(times)
    doy = index.dayofyear.to_numpy(dtype=float)
    declination = solarposition.declination_spencer71(doy)  # radians
    eot_min = solarposition.equation_of_time_spencer71(doy)  # minutes
    utc_hours = (index - index.normalize()).total_seconds().to_numpy() / HOUR_S
    hour_angle = np.deg2rad(
        15.0 * (utc_hours[:, None, None] - 12.0) + np.asarray(lon)[None, None, :] + eot_min[:, None, None] / 4.0
    )
    lat_r = np.deg2rad(np.asarray(lat))[None, :, None]
    dec = declination[:, None, None]
    return np.sin(lat_r) * np.sin(dec) + np.cos(lat_r) * np.cos(dec) * np.cos(hour_angle)


def _hour_substeps(times, substeps: int) -> pd.DatetimeIndex:
    """Midpoints of ``substeps`` equal slices of the hour ending at each time, flattened (time-major)."""
    index = _as_index(times)
    offsets = pd.to_timedelta((np.arange(substeps) + 0.5 - substeps) / substeps, unit="h")
    return pd.DatetimeIndex((index.values[:, None] + offsets.values[None, :]).ravel())


def hourly_mean_cos_zenith(times, lat, lon, substeps: int = 6) -> np.ndarray:
    """Mean of max(cos zenith, 0) over the hour ending at each time, shape (time, lat, lon)."""
    sub = cos_zenith(_hour_substeps(times, substeps), lat, lon).clip(min=0.0)
    return sub.reshape(len(times), substeps, len(lat), len(lon)).mean(axis=1)


def toa_hourly(times, lat, lon, substeps: int = 6) -> np.ndarray:
    """Top-of-atmosphere incident solar radiation accumulated over the hour ending at each time (J m-2)."""
    sub_times = _hour_substeps(times, substeps)
    dni_extra = np.asarray(irradiance.get_extra_radiation(sub_times.dayofyear.to_numpy()))  # W m-2, normal
    sub = cos_zenith(sub_times, lat, lon).clip(min=0.0) * dni_extra[:, None, None]
    return sub.reshape(len(times), substeps, len(lat), len(lon)).mean(axis=1) * HOUR_S


def clear_sky_hourly(times, lat, lon, substeps: int = 6) -> np.ndarray:
    """Clear-sky global horizontal irradiance (Haurwitz model, pvlib) accumulated over the hour (J m-2)."""
    cosz = cos_zenith(_hour_substeps(times, substeps), lat, lon)
    zenith_deg = np.rad2deg(np.arccos(np.clip(cosz, -1.0, 1.0)))
    ghi = clearsky.haurwitz(pd.Series(zenith_deg.ravel()))["ghi"].to_numpy().reshape(cosz.shape)
    return ghi.reshape(len(times), substeps, len(lat), len(lon)).mean(axis=1) * HOUR_S


def as_dataarray(values: np.ndarray, times, lat, lon, name: str, units: str, long_name: str) -> xr.DataArray:
    return xr.DataArray(
        values.astype(np.float32),
        coords={"time": np.asarray(times, dtype="datetime64[ns]"), "lat": lat, "lon": lon},
        dims=("time", "lat", "lon"),
        name=name,
        attrs={"units": units, "long_name": long_name},
    )
