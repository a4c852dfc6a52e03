"""Region-mean adapter: a DACF-format balancing area as a renewables :class:`Design`.

Targets: ``wind_solar_share``, ``carbon_intensity`` (direct factors) and ``carbon_intensity_lifecycle``
(:mod:`carbonsync.physics.carbon`), computed from generation by fuel. A forecast is issued at ``issue_hour``
UTC of day D for the hours D 01:00 ... D+1 00:00 (DACF's protocol at the default 0). Everything in a row is
known at its issue time:

- the prior is the day-ahead production forecast by fuel published in the file (the operators' own for CISO
  and SE), turned into the three targets; without one, the last observed day (persistence);
- observed generation up to the issue time (autoregressive terms): each target and fuel at the issue hour,
  the published forecast's error there, the same hour of the last observed day and its error, and means over
  the 24 h before the issue;
- calendar (target hour, weekend) and the clear-sky irradiance at the area's centroid (pvlib's Haurwitz
  model: astronomy is known in advance);
- the GFS region means (``wind_speed_10m`` ... with windpowerlib's power curve of the wind) only when
  ``issue_hour >= GFS_AVAILABLE_HOUR``: the files' GFS run is that of 00 UTC on D, published about 4-5 h later.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carbonsync.data.observations.dacf import RENEWABLES, SHARE_COLUMN, DacfArea, products
from carbonsync.models.renewables.design import Design, RenewablesError
from carbonsync.physics.renewables import power_curve
from carbonsync.physics.solar import clear_sky_hourly

__all__ = ["AREA_CENTROIDS", "DACF_TARGETS", "GFS_AVAILABLE_HOUR", "dacf_design", "issue_rows"]

DACF_TARGETS = (SHARE_COLUMN, "carbon_intensity", "carbon_intensity_lifecycle")
GFS_AVAILABLE_HOUR = 5
WEATHER = ("wind_speed_10m", "temperature", "dewpoint", "dswrf", "precipitation")
HUB_FACTOR = 1.8  # 10 m region mean -> hub height at the farms
# (lat, lon) of the areas' load-weighted centres, approximately
AREA_CENTROIDS = {"CISO": (36.0, -119.5), "ERCO": (31.0, -97.5), "ISNE": (43.0, -71.5), "PJM": (40.0, -78.0),
                  "SE": (60.0, 15.0)}
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)


def issue_rows(times: pd.DatetimeIndex, issue_hour: int = 0) -> pd.DataFrame:
    """``issue_time``, ``time``, ``lead_h`` of every day D issued at D ``issue_hour``:00 whose target hours after
    the issue up to D+1 00:00 are all in ``times``."""
    if not 0 <= issue_hour <= 23:
        raise RenewablesError(f"issue_hour must be 0..23, got {issue_hour}")
    present = pd.DatetimeIndex(times)
    days = pd.DatetimeIndex(present.floor("D").unique()).sort_values()
    leads = np.arange(1, 25 - issue_hour)
    issue = np.repeat(days + issue_hour * HOUR, len(leads))
    target = issue + np.tile(leads, len(days)) * HOUR
    frame = pd.DataFrame({"issue_time": issue, "time": target, "lead_h": np.tile(leads, len(days))})
    complete = frame["time"].isin(present).groupby(frame["issue_time"]).transform("all")
    frame = frame[complete.to_numpy()].reset_index(drop=True)
    if frame.empty:
        raise RenewablesError(f"no complete day issued at {issue_hour:02d} UTC in {len(present)} times")
    return frame


def _at(series: pd.Series, times: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    return series.reindex(pd.DatetimeIndex(times)).to_numpy(dtype=float)


def dacf_design(area: DacfArea, issue_hour: int = 0, weather: bool | None = None) -> Design:
    """The area's day-ahead rows (see the module docstring); ``weather`` defaults to whether GFS is published
    by the issue time, and ``True`` before then is refused."""
    weather = issue_hour >= GFS_AVAILABLE_HOUR if weather is None else weather
    if weather and issue_hour < GFS_AVAILABLE_HOUR:
        raise RenewablesError(f"{area.area}: the GFS columns (00 UTC run, published ~{GFS_AVAILABLE_HOUR} UTC) are "
                              f"not known at an issue hour of {issue_hour:02d} UTC")
    generation = area.frame[area.generation_columns]
    truth = products(generation)
    observed_rows = truth.dropna().index
    rows = issue_rows(observed_rows, issue_hour)
    t, t0 = pd.DatetimeIndex(rows["time"]), pd.DatetimeIndex(rows["issue_time"])
    last_day = t - DAY * np.ceil(rows["lead_h"].to_numpy() / 24.0)
    frame = rows.assign(zone=area.area)

    published_generation = area.published_generation()
    published = products(published_generation) if published_generation is not None else None
    for target in DACF_TARGETS:
        observed = truth[target]
        frame[target] = _at(observed, t)
        if published is not None:
            forecast = published[target]
            frame[f"prior_{target}"] = _at(forecast, t)
            error = observed - forecast
            frame[f"{target}_error_at_issue"] = _at(error, t0)
            frame[f"{target}_error_last_day"] = _at(error, last_day)
            frame[f"{target}_error_24h_mean"] = _at(error.rolling(24, min_periods=12).mean(), t0)
            frame[f"{target}_published_at_issue"] = _at(forecast, t0)
        else:
            frame[f"prior_{target}"] = _at(observed, last_day)
        frame[f"{target}_at_issue"] = _at(observed, t0)
        frame[f"{target}_last_day"] = _at(observed, last_day)
        frame[f"{target}_24h_mean"] = _at(observed.rolling(24, min_periods=12).mean(), t0)

    total = generation.clip(lower=0.0).sum(axis=1, min_count=len(generation.columns))
    fuels = {f: generation[f] for f in RENEWABLES if f in generation.columns} | {"total": total}
    published_fuels = None
    if published_generation is not None:
        published_fuels = {f: published_generation[f] for f in RENEWABLES if f in published_generation.columns}
        published_fuels["total"] = published_generation.clip(lower=0.0).sum(axis=1)
    for fuel, observed in fuels.items():
        frame[f"{fuel}_mw_at_issue"] = _at(observed, t0)
        if published_fuels is not None:
            frame[f"{fuel}_mw_published"] = _at(published_fuels[fuel], t)
            frame[f"{fuel}_mw_error_at_issue"] = _at(observed - published_fuels[fuel], t0)

    hour = t.hour.to_numpy()
    frame["hour_sin"], frame["hour_cos"] = np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)
    frame["weekend"] = (t.day_of_week >= 5).astype(float)
    lat, lon = AREA_CENTROIDS.get(area.area, (40.0, -90.0))
    frame["clear_sky_ghi"] = clear_sky_hourly(t, np.array([lat]), np.array([lon % 360.0]))[:, 0, 0] / 3600.0
    if weather:
        for name in WEATHER:
            frame[name] = _at(area.frame[name], t)
        speeds, curve = power_curve()
        frame["wind_power_curve"] = np.interp(frame["wind_speed_10m"].to_numpy() * HUB_FACTOR, speeds, curve,
                                              left=0.0, right=0.0)

    features = tuple(c for c in frame.columns
                     if c not in ("issue_time", "time", "lead_h", "zone", *DACF_TARGETS)
                     and not c.startswith("prior_"))
    frame = frame.dropna(subset=[f"prior_{t}" for t in DACF_TARGETS]).reset_index(drop=True)
    bounds = {SHARE_COLUMN: (0.0, 1.0), "carbon_intensity": (0.0, None), "carbon_intensity_lifecycle": (0.0, None)}
    return Design(frame, DACF_TARGETS, features, bounds, source=f"dacf:{area.area}")
