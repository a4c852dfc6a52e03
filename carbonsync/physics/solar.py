"""Solar geometry on grids, vectorised over (time, lat, lon), built on pvlib's analytical formulas.

Hourly quantities follow the ERA5 convention: the value labelled ``t`` is the accumulation (J m-2) or
mean over the hour ending at ``t``. They are integrated with a midpoint rule over ``substeps`` points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from pvlib import clearsky, irradiance, solarposition

from carbonsync.core.time import utc_naive_index

HOUR_S = 3600.0
SOLAR_CONSTANT = 1361.0  # W m-2, total solar irradiance at 1 au (Kopp & Lean 2011; the value ECMWF's IFS uses)


def _declination_hour_angle(dayofyear, hour_utc, lon) -> tuple[np.ndarray, np.ndarray]:
    """Declination and hour angle (radians, broadcasting) from Spencer (1971) formulas in pvlib.

    The day of year is made fractional with the UTC hour: the declination moves ~0.4 degrees a day.
    """
    doy = np.asarray(dayofyear, dtype=float) + np.asarray(hour_utc, dtype=float) / 24.0
    declination = solarposition.declination_spencer71(doy)
    eot_min = solarposition.equation_of_time_spencer71(doy)
    hour_angle = np.deg2rad((15.0 * (hour_utc - 12.0) + lon + eot_min / 4.0 + 180.0) % 360.0 - 180.0)
    return declination, hour_angle


def solar_position(dayofyear, hour_utc, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Solar zenith and azimuth in degrees for broadcasting arrays of day of year, UTC hour, lat, lon."""
    declination, hour_angle = _declination_hour_angle(dayofyear, hour_utc, lon)
    lat_r = np.deg2rad(lat)
    zenith = solarposition.solar_zenith_analytical(lat_r, hour_angle, declination)
    azimuth = solarposition.solar_azimuth_analytical(lat_r, hour_angle, declination, zenith)
    return np.rad2deg(zenith), np.rad2deg(azimuth) % 360.0


def cos_zenith(times, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cosine of the solar zenith angle at each time and grid point, shape (time, lat, lon)."""
    index = utc_naive_index(times)
    utc_hours = (index - index.normalize()).total_seconds().to_numpy() / HOUR_S
    doy = index.day_of_year.to_numpy(dtype=float)
    declination, hour_angle = _declination_hour_angle(
        doy[:, None, None], utc_hours[:, None, None], np.asarray(lon, dtype=float)[None, None, :]
    )
    lat_r = np.deg2rad(np.asarray(lat, dtype=float))[None, :, None]
    return np.sin(lat_r) * np.sin(declination) + np.cos(lat_r) * np.cos(declination) * np.cos(hour_angle)


def _hour_substeps(times, substeps: int) -> pd.DatetimeIndex:
    """Midpoints of ``substeps`` equal slices of the hour ending at each time, flattened (time-major)."""
    index = utc_naive_index(times)
    offsets = pd.to_timedelta((np.arange(substeps) + 0.5 - substeps) / substeps, unit="h")
    return pd.DatetimeIndex((index.values[:, None] + offsets.values[None, :]).ravel())


def hourly_mean_cos_zenith(times, lat, lon, substeps: int = 6) -> np.ndarray:
    """Mean of max(cos zenith, 0) over the hour ending at each time, shape (time, lat, lon)."""
    sub = cos_zenith(_hour_substeps(times, substeps), lat, lon).clip(min=0.0)
    return sub.reshape(len(times), substeps, len(lat), len(lon)).mean(axis=1)


def toa_hourly(times, lat, lon, substeps: int = 6) -> np.ndarray:
    """Top-of-atmosphere incident solar radiation accumulated over the hour ending at each time (J m-2)."""
    sub_times = _hour_substeps(times, substeps)
    dni_extra = np.asarray(  # W m-2, normal incidence
        irradiance.get_extra_radiation(sub_times.day_of_year.to_numpy(), solar_constant=SOLAR_CONSTANT)
    )
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
