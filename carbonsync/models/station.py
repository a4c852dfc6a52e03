"""Station/NWP-series features: a physical capacity-factor prior and the NWP features a correction learns from.

Input is a tidy frame with one row per site (``zone``) and hour (``time``, UTC, labelling the hour that ends
at it) carrying weather under lexicon names, as :mod:`carbonsync.data.observations.gefcom` returns, an ERA5
point series or the backbone's forecasts interpolated to a site would:

- wind: ``u10, v10, u100, v100`` (m s-1). Prior: hub-height speed from the 100 m wind with the power-law
  exponent measured between 10 and 100 m at each hour, through a fleet-smoothed windpowerlib power curve
  (:func:`carbonsync.physics.renewables.power_curve`).
- solar: ``ssrd`` (J m-2 over the hour), optionally ``t2m, u10, v10, tcc, tclw, tciw, r, sp, strd, tsr, tp``.
  Prior: pvlib's PVWatts chain of :func:`carbonsync.physics.renewables.solar_capacity_factor` (solar position,
  Erbs decomposition, Hay-Davies transposition, Faiman cell temperature) at a given site location.

The features are known at forecast time only: the NWP values at the hour and at neighbouring hours (t-k .. t+k
of the same forecast), wind direction and shear, hour of day and season and, for wind, the forecasts at the
other sites of the set. :func:`carbonsync.models.renewables.station.station_design` turns them into the
renewables model's design (adding the observed output up to the issue time). Solar rows are inactive when
the sun is down throughout the hour and its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.physics.renewables import hub_height_speed, power_curve, solar_capacity_factor
from carbonsync.physics.solar import hourly_mean_cos_zenith, toa_hourly

__all__ = [
    "StationFeatures",
    "wind_features",
    "solar_features",
]

DEFAULT_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
WIND_REQUIRED = ("u10", "v10", "u100", "v100")
SOLAR_OPTIONAL = ("t2m", "u10", "v10", "tcc", "tclw", "tciw", "r", "sp", "strd", "tsr", "tp")
_HOUR_S = 3600.0


@dataclass
class StationFeatures:
    """Feature rows for the correction: ``x`` ``(n, f)``, the physical ``prior`` CF, site ids, times.

    ``target`` is the observed capacity factor (NaN where unobserved); ``active`` marks rows the model
    predicts (False for solar hours with the sun down, where the output is 0).
    """

    x: np.ndarray
    prior: np.ndarray
    site: np.ndarray
    times: np.ndarray
    target: np.ndarray
    active: np.ndarray
    names: tuple[str, ...]
    track: str
    context_sites: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.prior)

    def subset(self, mask: np.ndarray) -> StationFeatures:
        """The rows where ``mask`` is True."""
        mask = np.asarray(mask, dtype=bool)
        return StationFeatures(
            self.x[mask], self.prior[mask], self.site[mask], self.times[mask], self.target[mask],
            self.active[mask], self.names, self.track, self.context_sites,
        )


# ------------------------------------------------------------------------------------------------ features


def _check_frame(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [c for c in ("zone", "time", *required) if c not in frame.columns]
    if missing:
        raise KeyError(f"{what} needs column(s) {', '.join(missing)}; the frame has {', '.join(map(str, frame.columns))}")
    if frame.empty:
        raise ValueError(f"{what}: the frame has no rows")
    bad = [c for c in required if not np.isfinite(frame[c].to_numpy(dtype=float)).all()]
    if bad:
        raise ValueError(f"{what}: column(s) {', '.join(bad)} contain NaN or inf; fill or drop those hours first")
    if frame.duplicated(["zone", "time"]).any():
        row = frame[frame.duplicated(["zone", "time"])].iloc[0]
        raise ValueError(f"{what}: zone {row['zone']} has time {row['time']} more than once")


def _shifted(frame: pd.DataFrame, values: np.ndarray, hours: int) -> np.ndarray:
    """``values`` of the same zone ``hours`` later (negative: earlier); the row's own value where absent."""
    key = pd.MultiIndex.from_arrays([frame["zone"].to_numpy(), frame["time"].to_numpy()])
    target = pd.MultiIndex.from_arrays(
        [frame["zone"].to_numpy(), frame["time"].to_numpy() + np.timedelta64(hours, "h")]
    )
    pos = key.get_indexer(target)
    return np.where(pos >= 0, values[np.clip(pos, 0, None)], values)


def _time_columns(times: np.ndarray, season: bool) -> dict[str, np.ndarray]:
    t = pd.DatetimeIndex(times)
    hour = t.hour.to_numpy() + t.minute.to_numpy() / 60.0 - 0.5  # middle of the hour ending at the label
    cols = {"hour_sin": np.sin(2 * np.pi * hour / 24), "hour_cos": np.cos(2 * np.pi * hour / 24)}
    if season:
        doy = t.day_of_year.to_numpy(dtype=float)
        cols |= {"doy_sin": np.sin(2 * np.pi * doy / 365.25), "doy_cos": np.cos(2 * np.pi * doy / 365.25)}
    return cols


def _target(frame: pd.DataFrame) -> np.ndarray:
    if "capacity_factor" in frame.columns:
        return frame["capacity_factor"].to_numpy(dtype=np.float64)
    return np.full(len(frame), np.nan)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["zone"] = frame["zone"].astype(str)
    frame["time"] = pd.DatetimeIndex(frame["time"]).astype("datetime64[ns]")
    return frame.sort_values(["zone", "time"], kind="stable").reset_index(drop=True)


def wind_features(
    frame: pd.DataFrame,
    turbine: str = "V90/2000",
    hub_height: float = 80.0,
    neighbour_hours: Sequence[int] = (1, 2, 3, 4, 6),
    context_sites: Sequence[str] | None = None,
    season: bool = False,
) -> StationFeatures:
    """Wind features: prior CF, speeds, direction, shear and veer, t±k speeds and priors, time, other sites.

    ``context_sites`` are the sites whose 100 m wind at the same hour is added to every row (the NWP is
    known at all sites at forecast time); ``None`` uses every zone of ``frame``, ``()`` none. A trained
    model remembers its list; a site missing at some hour contributes the mean of the others. ``season``
    adds day-of-year terms (off by default: a year or two of training data cannot separate season from
    that year's weather).
    """
    _check_frame(frame, WIND_REQUIRED, "wind features")
    frame = _sorted(frame)
    u10, v10, u100, v100 = (frame[c].to_numpy(dtype=np.float64) for c in WIND_REQUIRED)
    s10, s100 = np.hypot(u10, v10), np.hypot(u100, v100)
    alpha = np.clip(np.log(np.maximum(s100, 0.1) / np.maximum(s10, 0.1)) / np.log(10.0), -0.3, 0.8)
    speeds, cf = power_curve(turbine)
    hub = np.asarray(hub_height_speed(s100, hub_height, alpha), dtype=np.float64)
    prior = np.interp(hub, speeds, cf, left=0.0, right=0.0)
    cols: dict[str, np.ndarray] = {
        "prior": prior, "s100": s100, "s10": s10, "hub_speed": hub, "shear_alpha": alpha,
        "dir100_sin": u100 / np.maximum(s100, 0.1), "dir100_cos": v100 / np.maximum(s100, 0.1),
        "dir10_sin": u10 / np.maximum(s10, 0.1), "dir10_cos": v10 / np.maximum(s10, 0.1),
        "veer_cos": (u10 * u100 + v10 * v100) / np.maximum(s10 * s100, 0.01),
    }
    for k in neighbour_hours:
        for sign in (-1, 1):
            cols[f"s100_{sign * k:+d}h"] = _shifted(frame, s100, sign * k)
            cols[f"prior_{sign * k:+d}h"] = _shifted(frame, prior, sign * k)
            cols[f"u100_{sign * k:+d}h"] = _shifted(frame, u100, sign * k)
            cols[f"v100_{sign * k:+d}h"] = _shifted(frame, v100, sign * k)
    window = np.stack([cols[f"s100_{s * k:+d}h"] for k in neighbour_hours for s in (-1, 1)] + [s100], axis=1)
    cols["s100_window_std"] = window.std(axis=1)
    cols.update(_time_columns(frame["time"].to_numpy(), season))
    sites = tuple(sorted(frame["zone"].unique())) if context_sites is None else tuple(map(str, context_sites))
    if sites:
        for name, values in (("u100", u100), ("v100", v100)):
            wide = pd.DataFrame({"time": frame["time"], "zone": frame["zone"], name: values}).pivot(
                index="time", columns="zone", values=name).reindex(columns=list(sites))
            arr = wide.to_numpy(dtype=np.float64)
            gaps = np.isnan(arr)
            if gaps.any():  # a site missing at an hour contributes the mean of the others
                row_mean = np.nan_to_num(np.nanmean(np.where(gaps.all(1, keepdims=True), 0.0, arr), axis=1))
                arr = np.where(gaps, row_mean[:, None], arr)
            at_rows = arr[wide.index.get_indexer(frame["time"].to_numpy())]
            for j, site in enumerate(sites):
                cols[f"{name}@{site}"] = at_rows[:, j]
        ctx_speed = np.hypot(
            np.stack([cols[f"u100@{s}"] for s in sites], 1), np.stack([cols[f"v100@{s}"] for s in sites], 1))
        cols["s100_sites_mean"] = ctx_speed.mean(axis=1)
    names = tuple(cols)
    x = np.stack([cols[n] for n in names], axis=1).astype(np.float32)
    return StationFeatures(
        x, prior, frame["zone"].to_numpy(dtype=str), frame["time"].to_numpy(), _target(frame),
        np.ones(len(frame), dtype=bool), names, "wind", sites,
    )


def solar_features(
    frame: pd.DataFrame,
    lat: float,
    lon: float,
    tilt: float | None = None,
    azimuth: float = 180.0,
    neighbour_hours: Sequence[int] = (1, 2),
    season: bool = False,
) -> StationFeatures:
    """Solar features: PVWatts prior CF, ssrd, clearness, sun geometry, t±k ssrd and priors, clouds, time.

    All sites of ``frame`` are taken at ``(lat, lon)`` (degrees north/east); ``tilt`` ``None`` uses
    :func:`carbonsync.physics.renewables.default_tilt`, ``azimuth`` is mirrored south of the equator as there.
    ``season`` adds day-of-year terms (the sun's geometry already carries the season).
    """
    _check_frame(frame, ("ssrd",), "solar features")
    frame = _sorted(frame)
    times = frame["time"].to_numpy()
    ssrd = frame["ssrd"].to_numpy(dtype=np.float64)
    if ssrd.min() < 0 or ssrd.max() > 1500 * _HOUR_S:
        raise ValueError(f"solar features: 'ssrd' must be J m-2 over an hour (0..5.4e6), got {ssrd.min():g}..{ssrd.max():g}")
    da = {}
    for name, units in (("ssrd", "J m-2"), ("t2m", "K")):
        if name in frame.columns:
            da[name] = xr.DataArray(
                frame[name].to_numpy(dtype=np.float64)[:, None, None], dims=("time", "lat", "lon"),
                coords={"time": times, "lat": [lat], "lon": [lon]}, attrs={"units": units},
            )
    wind = None
    if "u10" in frame.columns and "v10" in frame.columns:
        wind = xr.DataArray(np.hypot(frame["u10"], frame["v10"]).to_numpy()[:, None, None], dims=("time", "lat", "lon"),
                            coords={"time": times, "lat": [lat], "lon": [lon]}, attrs={"units": "m s-1"})
    prior = solar_capacity_factor(da["ssrd"], da.get("t2m"), wind, tilt=tilt, azimuth=azimuth).values[:, 0, 0]
    prior = np.asarray(prior, dtype=np.float64)
    toa = toa_hourly(times, np.array([lat]), np.array([lon]))[:, 0, 0]
    cosz = hourly_mean_cos_zenith(times, np.array([lat]), np.array([lon]))[:, 0, 0]
    kt = np.where(toa > 1e4, ssrd / np.maximum(toa, 1.0), 0.0).clip(0.0, 1.2)
    cols: dict[str, np.ndarray] = {
        "prior": prior, "ssrd_wm2": ssrd / _HOUR_S, "clearness": kt, "toa_wm2": toa / _HOUR_S, "cos_zenith": cosz,
    }
    for k in neighbour_hours:
        for sign in (-1, 1):
            cols[f"ssrd_wm2_{sign * k:+d}h"] = _shifted(frame, ssrd / _HOUR_S, sign * k)
            cols[f"prior_{sign * k:+d}h"] = _shifted(frame, prior, sign * k)
            cols[f"clearness_{sign * k:+d}h"] = _shifted(frame, kt, sign * k)
            cols[f"toa_wm2_{sign * k:+d}h"] = _shifted(frame, toa / _HOUR_S, sign * k)
    scale = {"t2m": (1.0, -273.15), "strd": (1 / _HOUR_S, 0.0), "tsr": (1 / _HOUR_S, 0.0), "tp": (1000.0, 0.0)}
    for name in SOLAR_OPTIONAL:
        if name in frame.columns and name not in ("u10", "v10"):
            a, b = scale.get(name, (1.0, 0.0))
            cols[name] = frame[name].to_numpy(dtype=np.float64) * a + b
    if wind is not None:
        cols["wind10"] = wind.values[:, 0, 0]
    cols.update(_time_columns(times, season))
    names = tuple(cols)
    x = np.stack([cols[n] for n in names], axis=1).astype(np.float32)
    sun = toa > 0
    active = sun | (_shifted(frame, toa, -1) > 0) | (_shifted(frame, toa, 1) > 0)
    return StationFeatures(
        x, prior, frame["zone"].to_numpy(dtype=str), times, _target(frame), active, names, "solar",
    )
