"""Gridded adapter: zone products of gridded weather (ERA5 analyses, the backbone's forecasts) as a :class:`Design`.

The input is what :func:`~carbonsync.physics.renewables.zone_products` returns for one forecast (or for
analyses): per ``(time, zone)`` the physical wind and solar capacity factors (windpowerlib, pvlib), which are
the priors, and the zone-mean 100 m wind speed and GHI. Features are those two, the UTC hour (sin, cos) and
one-hot zones. A forecast's rows share its issue time (lead = hours since it); analyses are their own issue
(lead 0). Targets: ``wind_cf`` and ``solar_cf`` in [0, 1]; solar is active only while the physical solar CF
is above 0 (at night the output is the prior, 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.models.renewables.design import Design, DesignError

__all__ = ["GRIDDED_TARGETS", "concat_designs", "gridded_design"]

GRIDDED_TARGETS = ("wind_cf", "solar_cf")
WEATHER = ("wind_speed", "ghi")


def _column(ds: xr.Dataset, name: str, times: pd.DatetimeIndex, zones: list[str]) -> np.ndarray:
    if name not in ds:
        raise DesignError(f"gridded design: the zone products lack {name!r} (time, zone); they have "
                          f"{sorted(map(str, ds.data_vars))}")
    da = ds[name]
    if set(da.dims) != {"time", "zone"}:
        raise DesignError(f"gridded design: {name!r} must have dims (time, zone), got {tuple(da.dims)}")
    return da.transpose("time", "zone").reindex(time=times, zone=zones).to_numpy().astype(float).reshape(-1)


def gridded_design(physical: xr.Dataset, issue_time: str | pd.Timestamp | None = None,
                   zone_ids: Sequence[str] | None = None, observed: xr.Dataset | None = None) -> Design:
    """Rows ``(issue_time, time, zone)`` of one forecast's zone products (``issue_time`` at or before its first
    time) or, with ``issue_time=None``, of analyses (each row its own issue, lead 0).

    ``zone_ids`` fixes the one-hot columns (default: the products' zones; a model predicts only designs with
    the columns it was fitted on). ``observed`` ``(time, zone)`` with ``wind_cf``/``solar_cf`` gives the targets.
    """
    times = pd.DatetimeIndex(physical["time"].values)
    zones = [str(z) for z in physical["zone"].values]
    known = list(zones if zone_ids is None else map(str, zone_ids))
    unknown = [z for z in zones if z not in known]
    if unknown:
        raise DesignError(f"gridded design: zone(s) {unknown} are not among the model's zones {known}")
    nz = len(zones)
    time = np.repeat(times.values, nz)
    issue = time if issue_time is None else np.full(len(time), pd.Timestamp(issue_time).to_datetime64())
    frame = pd.DataFrame({"issue_time": pd.DatetimeIndex(issue), "time": pd.DatetimeIndex(time)})
    frame["lead_h"] = ((frame["time"] - frame["issue_time"]) / pd.Timedelta(hours=1)).to_numpy()
    if not np.allclose(frame["lead_h"], np.round(frame["lead_h"])):
        raise DesignError("gridded design: forecast times are not whole hours after the issue time")
    frame["lead_h"] = np.round(frame["lead_h"]).astype(int)
    frame["zone"] = np.tile(zones, len(times))
    for name in WEATHER:
        frame[name] = _column(physical, name, times, zones)
    hour = (times.hour + times.minute / 60.0).to_numpy()
    frame["hour_sin"] = np.repeat(np.sin(2 * np.pi * hour / 24), nz)
    frame["hour_cos"] = np.repeat(np.cos(2 * np.pi * hour / 24), nz)
    for zone in known:
        frame[f"zone_{zone}"] = (frame["zone"] == zone).astype(float)
    for target in GRIDDED_TARGETS:
        frame[f"prior_{target}"] = np.clip(_column(physical, target, times, zones), 0.0, 1.0)
        frame[target] = np.nan if observed is None else _column(observed, target, times, zones)
    frame["active_solar_cf"] = frame["prior_solar_cf"] > 0
    features = (*WEATHER, "hour_sin", "hour_cos", *(f"zone_{z}" for z in known))
    return Design(frame, GRIDDED_TARGETS, features, {t: (0.0, 1.0) for t in GRIDDED_TARGETS}, source="gridded")


def concat_designs(parts: Sequence[Design]) -> Design:
    """One design of the rows of ``parts`` (which share targets, features and bounds), in order."""
    if not parts:
        raise DesignError("no designs to stack")
    first = parts[0]
    for part in parts[1:]:
        if (part.targets, part.features) != (first.targets, first.features):
            raise DesignError(f"designs to stack differ: {part.source} has features {list(part.features)}, "
                              f"{first.source} has {list(first.features)}")
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    return Design(frame, first.targets, first.features, first.bounds, first.source)
