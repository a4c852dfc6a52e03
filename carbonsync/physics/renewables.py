"""Physical wind and solar capacity factors from gridded weather, and zone-level renewable products.

Inputs follow the ERA5 conventions: ``u100``/``v100`` in m s-1 at 100 m, ``ssrd`` in J m-2 accumulated over
the hour *ending* at the time label, ``t2m`` in K. Everything is vectorised over ``(time, lat, lon)`` with
:func:`xarray.apply_ufunc` and works on numpy- or dask-backed arrays.

Wind uses an offline windpowerlib power curve, smoothed for the spatial spread of wind speeds across a fleet
(Nørgaard & Holttinen 2004; Staffell & Pfenninger 2016). Solar follows the PVWatts chain in pvlib:
analytical solar position, Erbs decomposition, Hay-Davies transposition, Faiman cell temperature, PVWatts DC
and inverter.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
import pvlib
import xarray as xr

from carbonsync.core.errors import CarbonSyncError
from carbonsync.physics.grid import Grid
from carbonsync.physics.solar import solar_position
from carbonsync.physics.zones import Zone, zone_masks

__all__ = [
    "PhysicsInputError",
    "power_curve",
    "hub_height_speed",
    "shear_exponent_from_winds",
    "capacity_masks",
    "wind_capacity_factor",
    "default_tilt",
    "solar_capacity_factor",
    "zone_average",
    "renewable_share",
    "zone_products",
]

ONE_HOUR = np.timedelta64(1, "h")
REFERENCE_HEIGHT = 100.0  # m, height of the u100/v100 input winds
STAFFELL_PFENNINGER = (0.2, 0.6)  # sigma = 0.2 * v + 0.6 m s-1, windpowerlib's 'Staffell_Pfenninger'
_UNIT_ALIASES = {
    "m s-1": {"m s-1", "m s**-1", "m/s", "m s^-1"},
    "J m-2": {"J m-2", "J m**-2", "J/m2", "J m^-2", "J/m^2"},
    "K": {"K", "kelvin"},
    "m": {"m", "metre", "meter", "metres"},
}


class PhysicsInputError(CarbonSyncError, ValueError):
    """An input field with the wrong dimensions, units or grid."""


# --------------------------------------------------------------------------------------------- checks


def _check_field(
    da: xr.DataArray,
    name: str,
    units: str,
    dims: Sequence[str] | None = ("time", "lat", "lon"),
    require_units: bool = False,
) -> xr.DataArray:
    """Validate ``da`` as variable ``name``; return it with ``dims`` first in order."""
    if not isinstance(da, xr.DataArray):
        raise PhysicsInputError(f"'{name}' must be an xarray.DataArray, got {type(da).__name__}")
    got = da.attrs.get("units")
    if got is None:
        if require_units:
            raise PhysicsInputError(f"'{name}' has no 'units' attribute (expected '{units}')")
    elif str(got).strip() not in _UNIT_ALIASES.get(units, {units}):
        raise PhysicsInputError(f"'{name}' has units '{got}', expected '{units}'")
    if dims is not None:
        if set(da.dims) != set(dims):
            raise PhysicsInputError(f"'{name}' has dims {tuple(da.dims)}, expected {tuple(dims)}")
        da = da.transpose(*dims)
    return da


# ----------------------------------------------------------------------------------------------- wind


def _gauss_smooth(
    speeds: np.ndarray, values: np.ndarray, std: tuple[float, float], block_width: float = 0.5,
    speed_range: float = 15.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised twin of ``windpowerlib.power_curves.smooth_power_curve`` with sigma = a * v + b."""
    step = speeds[5] - speeds[4]
    n_ext = int(np.ceil(speed_range / step - 1e-9))
    ext_speeds = np.concatenate([speeds, speeds[-1] + step * np.arange(1, n_ext + 1)])
    ext_values = np.concatenate([values, np.zeros(n_ext)])
    offsets = np.arange(-speed_range, speed_range + block_width, block_width)
    v = ext_speeds[:, None] + offsets[None, :]
    sigma = std[0] * ext_speeds[:, None] + std[1]
    gauss = np.exp(-0.5 * (offsets[None, :] / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    smoothed = block_width * np.sum(np.interp(v, ext_speeds, ext_values, left=0, right=0) * gauss, axis=1)
    return ext_speeds, np.where(sigma[:, 0] > 0, smoothed, 0.0)


@lru_cache(maxsize=32)
def _cached_curve(turbine: str, std: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    from windpowerlib.power_curves import smooth_power_curve
    from windpowerlib.wind_turbine import WindTurbine

    try:
        with warnings.catch_warnings():  # windpowerlib warns (not raises) on unknown types; we raise below
            warnings.simplefilter("ignore")
            wt = WindTurbine(turbine_type=turbine, hub_height=REFERENCE_HEIGHT)
    except (KeyError, ValueError) as err:
        raise ValueError(f"turbine '{turbine}' is not in windpowerlib's offline library: {err}") from None
    curve = wt.power_curve
    if curve is None or wt.nominal_power is None:
        raise ValueError(f"turbine '{turbine}' has no power curve in windpowerlib's offline library")
    speeds = curve["wind_speed"].to_numpy(dtype=float)
    values = curve["value"].to_numpy(dtype=float)
    if std is not None:
        if tuple(std) == STAFFELL_PFENNINGER:
            sm = smooth_power_curve(
                curve["wind_speed"].reset_index(drop=True).astype(float),
                curve["value"].reset_index(drop=True).astype(float),
                standard_deviation_method="Staffell_Pfenninger",
            )
            speeds, values = sm["wind_speed"].to_numpy(dtype=float), sm["value"].to_numpy(dtype=float)
        else:
            speeds, values = _gauss_smooth(speeds, values, std)
    if speeds[0] > 0:  # calm air produces nothing
        speeds, values = np.concatenate([[0.0], speeds]), np.concatenate([[0.0], values])
    cf = np.clip(values / float(wt.nominal_power), 0.0, 1.0)
    speeds.setflags(write=False)
    cf.setflags(write=False)
    return speeds, cf


def power_curve(
    turbine: str = "E-126/4200", smoothing_std: tuple[float, float] | None = STAFFELL_PFENNINGER
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised power curve ``(wind_speed [m s-1], cf [1])`` of ``turbine``, optionally fleet-smoothed.

    ``smoothing_std=(a, b)`` smooths with a Gaussian of standard deviation ``a * v + b``; the default
    (0.2, 0.6) is Staffell & Pfenninger's and is computed by windpowerlib itself. ``None`` keeps the
    single-turbine curve. Speeds beyond the last curve point give 0 (cut-out). Cached per argument set.
    """
    std = None if smoothing_std is None else (float(smoothing_std[0]), float(smoothing_std[1]))
    return _cached_curve(turbine, std)


def shear_exponent_from_winds(
    u10: xr.DataArray, v10: xr.DataArray, u100: xr.DataArray, v100: xr.DataArray,
    default: float = 1 / 7, bounds: tuple[float, float] = (0.0, 0.6), min_speed: float = 0.5,
) -> xr.DataArray:
    """Local power-law (Hellman) exponent ``ln(|v100| / |v10|) / ln(100 / 10)`` from 10 m and 100 m winds.

    Clipped to ``bounds``; ``default`` where either speed is below ``min_speed`` m s-1 (no usable profile).
    """
    s10, s100 = np.hypot(u10, v10), np.hypot(u100, v100)
    ok = (s10 >= min_speed) & (s100 >= min_speed)
    alpha = np.log(s100.where(ok, 1.0) / s10.where(ok, 1.0)) / np.log(REFERENCE_HEIGHT / 10.0)
    out = xr.where(ok, alpha.clip(*bounds), default)
    out.name = "shear_exponent"
    out.attrs = {"long_name": "Power-law wind shear exponent between 10 m and 100 m", "units": "1"}
    return out


def hub_height_speed(
    speed: xr.DataArray,
    hub_height: float | None,
    alpha: float | xr.DataArray = 1 / 7,
    *,
    roughness: xr.DataArray | None = None,
) -> xr.DataArray:
    """Extrapolate 100 m wind speed to ``hub_height``.

    With ``roughness`` (surface roughness length in m, e.g. ERA5 ``fsr``) the log law
    ``ln(h / z0) / ln(100 / z0)`` is used (windpowerlib's ``logarithmic_profile`` without obstacles);
    otherwise the power law ``(h / 100) ** alpha``, where ``alpha`` may be a field (see
    :func:`shear_exponent_from_winds`).
    """
    if hub_height is None or hub_height == REFERENCE_HEIGHT:
        return speed
    if hub_height <= 0:
        raise ValueError(f"hub_height must be > 0 m, got {hub_height}")
    if roughness is not None:
        z0 = roughness.clip(min=1e-5)  # open sea can report 0
        return speed * np.log(hub_height / z0) / np.log(REFERENCE_HEIGHT / z0)
    return speed * (hub_height / REFERENCE_HEIGHT) ** alpha


def wind_capacity_factor(
    u100: xr.DataArray,
    v100: xr.DataArray,
    turbine: str = "E-126/4200",
    hub_height: float | None = None,
    smoothing_std: tuple[float, float] | None = STAFFELL_PFENNINGER,
    shear_exponent: float = 1 / 7,
    *,
    roughness: xr.DataArray | None = None,
    u10: xr.DataArray | None = None,
    v10: xr.DataArray | None = None,
) -> xr.DataArray:
    """Wind capacity factor from 100 m wind components.

    Parameters
    ----------
    u100, v100 : 100 m wind components in m s-1, any dims (typically ``time, lat, lon``).
    turbine : windpowerlib turbine type, e.g. ``'E-126/4200'`` or ``'V126/3300'``.
    hub_height : hub height in m; ``None`` uses the 100 m wind as is.
    smoothing_std : ``(a, b)`` of the fleet smoothing standard deviation ``a * v + b`` (m s-1),
        or ``None`` for the bare turbine curve.
    shear_exponent : power-law exponent for the 100 m to hub-height extrapolation, used when neither
        ``u10``/``v10`` nor ``roughness`` is given.
    u10, v10 : 10 m wind components (m s-1): the power law then uses the local shear exponent between
        10 m and 100 m (:func:`shear_exponent_from_winds`). Takes precedence over ``roughness``.
    roughness : surface roughness length (m, ERA5 ``fsr``; broadcastable to the winds): log law.

    Returns
    -------
    DataArray ``wind_cf`` in [0, 1] with the dims of ``u100``.
    """
    u100 = _check_field(u100, "u100", "m s-1", dims=None)
    v100 = _check_field(v100, "v100", "m s-1", dims=None)
    if (u10 is None) != (v10 is None):
        raise PhysicsInputError("pass both 'u10' and 'v10' for the shear exponent, or neither")
    speeds, cf = power_curve(turbine, smoothing_std)
    speed = np.hypot(u100, v100)
    extrapolation = "power law, exponent " + f"{shear_exponent:.3g}"
    if hub_height is not None and hub_height != REFERENCE_HEIGHT:
        if u10 is not None:
            u10 = _check_field(u10, "u10", "m s-1", dims=None)
            v10 = _check_field(v10, "v10", "m s-1", dims=None)
            alpha = shear_exponent_from_winds(u10, v10, u100, v100, default=shear_exponent)
            speed = hub_height_speed(speed, hub_height, alpha)
            extrapolation = "power law, exponent from u10/v10 and u100/v100"
        elif roughness is not None:
            roughness = _check_field(roughness, "fsr", "m", dims=None)
            speed = hub_height_speed(speed, hub_height, roughness=roughness)
            extrapolation = "log law with roughness length fsr"
        else:
            speed = hub_height_speed(speed, hub_height, shear_exponent)
    out = xr.apply_ufunc(
        np.interp, speed, kwargs={"xp": speeds, "fp": cf, "left": 0.0, "right": 0.0},
        dask="parallelized", output_dtypes=[np.float64], keep_attrs=False,
    )
    out = out.astype(np.result_type(u100.dtype, np.float32))
    out.name = "wind_cf"
    out.attrs = {
        "long_name": "Wind capacity factor", "units": "1", "turbine": turbine,
        "hub_height_m": REFERENCE_HEIGHT if hub_height is None else float(hub_height),
        "hub_height_extrapolation": "none" if hub_height in (None, REFERENCE_HEIGHT) else extrapolation,
        "smoothing_std": "none" if smoothing_std is None else f"{smoothing_std[0]} * v + {smoothing_std[1]}",
    }
    return out


# ---------------------------------------------------------------------------------------------- solar


def default_tilt(lat: np.ndarray | float) -> np.ndarray:
    """Latitude-dependent module tilt in degrees: ``min(0.76 * |lat| + 3.1, 40)``."""
    return np.minimum(0.76 * np.abs(np.asarray(lat, dtype=float)) + 3.1, 40.0)


def _solar_kernel(
    ssrd, temp_air, wind_speed, doy, hour, lat, lon, tilt, azimuth, *,
    gamma_pdc, eta_inv, dc_ac_ratio, losses, albedo, model,
):
    ghi = np.clip(np.asarray(ssrd, dtype=np.float64) / 3600.0, 0.0, None)
    zenith, sun_azimuth = solar_position(doy, hour, lat, lon)
    zenith, sun_azimuth = np.broadcast_to(zenith, ghi.shape), np.broadcast_to(sun_azimuth, ghi.shape)
    doy_b = np.broadcast_to(doy, ghi.shape)
    dni_extra = pvlib.irradiance.get_extra_radiation(doy_b)
    erbs = pvlib.irradiance.erbs(ghi, zenith, doy_b)
    poa = pvlib.irradiance.get_total_irradiance(
        tilt, azimuth, zenith, sun_azimuth, erbs["dni"], ghi, erbs["dhi"],
        dni_extra=dni_extra, albedo=albedo, model=model,
    )["poa_global"]
    poa = np.clip(np.nan_to_num(poa, nan=0.0), 0.0, None)
    temp_cell = pvlib.temperature.faiman(poa, temp_air, wind_speed)
    pdc = pvlib.pvsystem.pvwatts_dc(poa, temp_cell, pdc0=1.0, gamma_pdc=gamma_pdc) * (1.0 - losses)
    # inverter AC nameplate 1 / dc_ac_ratio; pvlib's pdc0 is the inverter's DC input limit
    pac = pvlib.inverter.pvwatts(pdc, pdc0=1.0 / (dc_ac_ratio * eta_inv), eta_inv_nom=eta_inv)
    sun_up = (zenith < 90.0) & (ghi > 0.0)
    return np.where(sun_up, np.clip(pac, 0.0, 1.0), 0.0)


def _time_features(times: xr.DataArray, shift: np.timedelta64) -> tuple[xr.DataArray, xr.DataArray]:
    t = pd.DatetimeIndex(np.asarray(times.values, dtype="datetime64[ns]") - shift)
    hour = (t.hour + t.minute / 60.0 + t.second / 3600.0).to_numpy(dtype=float)
    doy = t.day_of_year.to_numpy(dtype=float)
    return xr.DataArray(doy, dims="time"), xr.DataArray(hour, dims="time")


def solar_capacity_factor(
    ssrd: xr.DataArray,
    t2m: xr.DataArray | None = None,
    wind_speed: xr.DataArray | float | None = None,
    tilt: float | None = None,
    azimuth: float = 180.0,
    gamma_pdc: float = -0.004,
    eta_inv: float = 0.96,
    dc_ac_ratio: float = 1.0,
    losses: float = 0.14,
    albedo: float = 0.25,
    temp_air: float = 25.0,
    transposition: str = "haydavies",
    accumulation: np.timedelta64 | pd.Timedelta = ONE_HOUR,
) -> xr.DataArray:
    """PV capacity factor (AC output per unit DC nameplate) from hourly accumulated ``ssrd``.

    Parameters
    ----------
    ssrd : surface solar radiation downwards, J m-2 accumulated over the ``accumulation`` period ending at
        each time label; dims ``(time, lat, lon)``.
    t2m : 2 m temperature in K (same dims), or ``None`` for a constant ``temp_air`` (°C).
    wind_speed : wind speed for the Faiman cell-temperature model (m s-1), DataArray or scalar; default 1.
    tilt : module tilt in degrees; ``None`` uses :func:`default_tilt` of each latitude.
    azimuth : module azimuth (degrees from north) in the northern hemisphere; mirrored to
        ``(180 - azimuth) % 360`` south of the equator (equator-facing by default).
    gamma_pdc, eta_inv, dc_ac_ratio, losses : PVWatts temperature coefficient (1/K), nominal inverter
        efficiency, DC/AC ratio and DC system losses (fraction).

    The sun position is taken in the middle of the accumulation period; the result is exactly 0 when the
    sun is below the horizon there or ``ssrd`` is 0. Returns DataArray ``solar_cf`` in [0, 1].
    """
    ssrd = _check_field(ssrd, "ssrd", "J m-2")
    if t2m is not None:
        t2m = _check_field(t2m, "t2m", "K")
        temp = t2m - 273.15
    else:
        temp = float(temp_air)
    if wind_speed is None:
        wind_speed = 1.0
    elif isinstance(wind_speed, xr.DataArray):
        wind_speed = _check_field(wind_speed, "wind_speed", "m s-1")
    doy, hour = _time_features(ssrd["time"], (pd.Timedelta(accumulation) / 2).to_timedelta64())
    lat = xr.DataArray(np.asarray(ssrd["lat"].values, dtype=float), dims="lat")
    lon = xr.DataArray(np.asarray(ssrd["lon"].values, dtype=float), dims="lon")
    tilt_values = default_tilt(lat.values) if tilt is None else np.full(lat.size, float(tilt))
    tilt_da = xr.DataArray(tilt_values, dims="lat")
    mirrored = (180.0 - azimuth) % 360.0
    azimuth_da = xr.where(lat >= 0, float(azimuth), mirrored)
    kwargs = {
        "gamma_pdc": gamma_pdc, "eta_inv": eta_inv, "dc_ac_ratio": dc_ac_ratio, "losses": losses,
        "albedo": albedo, "model": transposition,
    }
    out = xr.apply_ufunc(
        _solar_kernel, ssrd, temp, wind_speed, doy, hour, lat, lon, tilt_da, azimuth_da,
        kwargs=kwargs, dask="parallelized", output_dtypes=[np.float64], keep_attrs=False,
    )
    out = out.transpose("time", "lat", "lon").astype(np.result_type(ssrd.dtype, np.float32))
    out = out.assign_coords(ssrd.coords)
    out.name = "solar_cf"
    out.attrs = {
        "long_name": "Solar PV capacity factor (AC per DC nameplate)", "units": "1",
        "tilt": "0.76 * |lat| + 3.1, max 40" if tilt is None else float(tilt), "azimuth": float(azimuth),
    }
    return out


# ----------------------------------------------------------------------------------------------- zones


def capacity_masks(zones: Sequence[Zone], grid: Grid, capacity: xr.DataArray | None = None) -> xr.DataArray:
    """Capacity-weighted zone masks ``(zone, lat, lon)``, each summing to 1.

    ``capacity`` is the installed capacity in each grid cell (MW, dims ``(lat, lon)`` on ``grid``; any
    positive scale works, only its distribution inside a zone matters). A cell's weight in a zone is its
    capacity there, so a zone mean is the fleet's mean. ``None``, or a zone whose box holds no capacity,
    falls back to area weights (capacity spread evenly over the zone's area).
    """
    area = zone_masks(zones, grid)
    if capacity is None:
        return area
    if not isinstance(capacity, xr.DataArray) or set(capacity.dims) != {"lat", "lon"}:
        got = tuple(capacity.dims) if isinstance(capacity, xr.DataArray) else type(capacity).__name__
        raise PhysicsInputError(f"capacity must be a DataArray with dims (lat, lon), got {got}")
    grid.check(capacity, what=f"capacity '{capacity.name}'")
    values = capacity.transpose("lat", "lon").values.astype(np.float64)
    if not np.isfinite(values).all() or (values < 0).any():
        raise PhysicsInputError(f"capacity '{capacity.name}' must be finite and >= 0 everywhere")
    inside = area.values > 0
    weights = inside * values[None]
    totals = weights.sum(axis=(1, 2), keepdims=True)
    weights = np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), area.values)
    return area.copy(data=weights)


def zone_average(field: xr.DataArray, masks: xr.DataArray) -> xr.DataArray:
    """Mean of ``field (time, lat, lon)`` over each zone of ``masks (zone, lat, lon)``, as ``(time, zone)``.

    The masks are zone weights each summing to 1: area weights (:func:`carbonsync.physics.zones.zone_masks`)
    or capacity weights (:func:`capacity_masks`). Masks are matched to the field by position after
    checking that the coordinates agree.
    """
    for dim in ("lat", "lon"):
        if dim not in field.dims or dim not in masks.dims:
            raise PhysicsInputError(f"zone_average needs '{dim}' in both field and masks")
        same = field.sizes[dim] == masks.sizes[dim] and np.allclose(field[dim], masks[dim], atol=1e-4)
        if not same:
            raise PhysicsInputError(f"field '{field.name}' and the zone masks differ in '{dim}'")
    masks = masks.assign_coords(lat=field["lat"].values, lon=field["lon"].values)
    out = xr.dot(field, masks, dim=["lat", "lon"])
    dims = [d for d in ("time", "zone") if d in out.dims] + [d for d in out.dims if d not in ("time", "zone")]
    out = out.transpose(*dims)
    out.name = field.name
    out.attrs = dict(field.attrs)
    return out


def _zone_lookup(zones: Sequence[Zone], ids: Sequence[str]) -> list[Zone]:
    by_id = {z.id: z for z in zones}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise PhysicsInputError(f"zones {missing} of the capacity factors are not in the zone list")
    return [by_id[str(i)] for i in ids]


def renewable_share(
    wind_cf: xr.DataArray,
    solar_cf: xr.DataArray,
    zones: Sequence[Zone],
    times: np.ndarray | None = None,
) -> xr.DataArray:
    """Renewable share ``(wind_cf * wind_cap + solar_cf * solar_cap) / demand`` per (time, zone), in [0, 1].

    ``wind_cf``/``solar_cf`` have dims ``(time, zone)`` (extra dims such as ``quantile`` broadcast);
    ``times`` defaults to their ``time`` coordinate.
    """
    ids = [str(z) for z in wind_cf["zone"].values]
    zs = _zone_lookup(zones, ids)
    times = wind_cf["time"].values if times is None else np.asarray(times)
    if len(times) != wind_cf.sizes["time"]:
        raise PhysicsInputError(f"got {len(times)} times for {wind_cf.sizes['time']} capacity-factor steps")
    coords = {"time": wind_cf["time"], "zone": wind_cf["zone"]}
    wind_cap = xr.DataArray([z.wind_capacity_mw for z in zs], dims="zone", coords={"zone": coords["zone"]})
    solar_cap = xr.DataArray([z.solar_capacity_mw for z in zs], dims="zone", coords={"zone": coords["zone"]})
    demand = xr.DataArray(np.stack([z.demand_profile(times) for z in zs], axis=1), dims=("time", "zone"),
                          coords=coords)
    share = ((wind_cf * wind_cap + solar_cf * solar_cap) / demand).clip(0.0, 1.0)
    share.name = "renewable_share"
    share.attrs = {"long_name": "Renewable share of demand", "units": "1"}
    return share


def zone_products(
    u100: xr.DataArray,
    v100: xr.DataArray,
    ssrd: xr.DataArray,
    zones: Sequence[Zone],
    grid: Grid,
    t2m: xr.DataArray | None = None,
    *,
    turbine: str = "E-126/4200",
    hub_height: float | None = None,
    u10: xr.DataArray | None = None,
    v10: xr.DataArray | None = None,
    fsr: xr.DataArray | None = None,
    capacity: Mapping[str, xr.DataArray] | xr.Dataset | None = None,
) -> xr.Dataset:
    """Zone ``wind_cf``, ``solar_cf``, ``renewable_share`` and ``carbon_intensity``, dims ``(time, zone)``.

    Also returns the zone means of the 100 m wind speed (``wind_speed``, m s-1) and of GHI (``ghi``, W m-2)
    used as features by :mod:`carbonsync.models.head`. Inputs must carry ``units`` attributes and be on
    ``grid`` with dims ``(time, lat, lon)``. ``u10``/``v10`` (power-law shear) or ``fsr`` (log law), when
    given, extrapolate the 100 m wind to ``hub_height`` (see :func:`wind_capacity_factor`); ``fsr`` may
    also be ``(lat, lon)``. ``capacity`` maps ``"wind"``/``"solar"`` to installed capacity per grid cell
    ``(lat, lon)``: zone means of the wind (solar) quantities are then weighted by it
    (:func:`capacity_masks`), otherwise by area.
    """
    fields = {"u100": (u100, "m s-1"), "v100": (v100, "m s-1"), "ssrd": (ssrd, "J m-2")}
    if t2m is not None:
        fields["t2m"] = (t2m, "K")
    if (u10 is None) != (v10 is None):
        raise PhysicsInputError("pass both 'u10' and 'v10', or neither")
    if u10 is not None:
        fields["u10"], fields["v10"] = (u10, "m s-1"), (v10, "m s-1")
    if fsr is not None:
        fsr = _check_field(fsr, "fsr", "m", dims=None, require_units=True)
        if set(fsr.dims) not in ({"lat", "lon"}, {"time", "lat", "lon"}):
            raise PhysicsInputError(f"'fsr' has dims {tuple(fsr.dims)}, expected (lat, lon) or (time, lat, lon)")
        grid.check(fsr, what="'fsr'")
        if "time" in fsr.dims:
            fields["fsr"] = (fsr, "m")
    checked = {}
    for name, (da, units) in fields.items():
        da = _check_field(da, name, units, require_units=True)
        grid.check(da, what=f"'{name}'")
        checked[name] = da
    ref = checked["u100"]["time"].values
    for name, da in checked.items():
        if da.sizes["time"] != len(ref) or not np.array_equal(da["time"].values, ref):
            raise PhysicsInputError(f"'{name}' has different times than 'u100'")
    capacity = {} if capacity is None else capacity
    unknown = sorted(set(capacity) - {"wind", "solar"})
    if unknown:
        raise PhysicsInputError(f"capacity maps must be named 'wind' or 'solar', got {unknown}")
    wind_masks = capacity_masks(zones, grid, capacity.get("wind"))
    solar_masks = capacity_masks(zones, grid, capacity.get("solar"))
    wind = wind_capacity_factor(checked["u100"], checked["v100"], turbine=turbine, hub_height=hub_height,
                                u10=checked.get("u10"), v10=checked.get("v10"), roughness=checked.get("fsr", fsr))
    solar = solar_capacity_factor(checked["ssrd"], t2m=checked.get("t2m"))
    speed = np.hypot(checked["u100"], checked["v100"]).rename("wind_speed")
    speed.attrs = {"long_name": "100 metre wind speed", "units": "m s-1"}
    ghi = (checked["ssrd"].clip(min=0) / 3600.0).rename("ghi")
    ghi.attrs = {"long_name": "Global horizontal irradiance, hourly mean", "units": "W m-2"}
    out = xr.Dataset({name: zone_average(da, masks) for name, da, masks in
                      (("wind_cf", wind, wind_masks), ("solar_cf", solar, solar_masks),
                       ("wind_speed", speed, wind_masks), ("ghi", ghi, solar_masks))})
    share = renewable_share(out["wind_cf"], out["solar_cf"], zones)
    fossil = xr.DataArray([z.fossil_intensity for z in zones], dims="zone", coords={"zone": out["zone"]})
    carbon = ((1.0 - share) * fossil).rename("carbon_intensity")
    carbon.attrs = {"long_name": "Carbon intensity of supply", "units": "gCO2eq kWh-1"}
    out["renewable_share"] = share
    out["carbon_intensity"] = carbon
    out = out.assign_coords(zone_name=("zone", [z.name for z in zones]))
    out.attrs = {"grid": grid.attr(), "turbine": turbine, "hub_height_extrapolation": wind.attrs["hub_height_extrapolation"],
                 "zone_weights": ", ".join(f"{k}: {'capacity' if k in capacity else 'area'}" for k in ("wind", "solar"))}
    return out
