"""The forecast store (Zarr v3, consolidated) that schedulers read, and its reader API.

Layout: group ``gridded`` holds ``<var>(init_time, lead_time, lat, lon)``, group ``zones`` holds
``<product>(init_time, lead_time, zone)`` and ``<product>_quantile(init_time, lead_time, quantile, zone)``.
``valid_time = init_time + lead_time`` is a coordinate of both. The store is written to a temporary path
and renamed, so a reader never sees a partial store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync import __version__
from carbonsync.data.store import atomic_path, consolidate, to_zarr

ZONE_PRODUCTS = ("wind_cf", "solar_cf", "renewable_share", "carbon_intensity")


class ForecastStoreError(ValueError):
    """A forecast store that is missing, malformed or does not cover the request."""


def to_lead_time(ds: xr.Dataset, init_time: pd.Timestamp) -> xr.Dataset:
    """Replace ``time`` with ``lead_time`` (timedelta) and add ``init_time`` as a length-1 dim."""
    lead = pd.DatetimeIndex(ds.time.values) - init_time
    out = ds.rename(time="lead_time").assign_coords(lead_time=lead.values)
    return out.expand_dims(init_time=[np.datetime64(init_time, "ns")])


def _with_valid_time(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.assign_coords(valid_time=ds.init_time + ds.lead_time)
    ds["init_time"].attrs.update(long_name="Forecast initial time (UTC)")
    ds["lead_time"].attrs.update(long_name="Forecast lead time")
    ds["valid_time"].attrs.update(long_name="Valid time = init_time + lead_time (UTC)")
    return ds


def check_zone_products(zones: xr.Dataset) -> None:
    """Every product present and finite; shares and capacity factors in [0, 1], intensities >= 0."""
    for name in ZONE_PRODUCTS:
        if name not in zones:
            raise ForecastStoreError(f"zone forecasts lack '{name}'")
        values = zones[name].values
        if not np.isfinite(values).all():
            raise ForecastStoreError(f"zone forecast '{name}' has {int((~np.isfinite(values)).sum())} non-finite values")
        upper = np.inf if name == "carbon_intensity" else 1.0
        if values.min() < 0 or values.max() > upper:
            raise ForecastStoreError(
                f"zone forecast '{name}' spans [{values.min():.4g}, {values.max():.4g}], outside [0, {upper}]")


def _describe(ds: xr.Dataset) -> str:
    """One line per variable: name(dims) [units], for the store's root attributes."""
    return "; ".join(f"{n}({', '.join(map(str, ds[n].dims))}) [{ds[n].attrs.get('units', '')}]" for n in ds.data_vars)


def write_forecast_store(forecasts: Sequence[tuple[pd.Timestamp, xr.Dataset, xr.Dataset]], path: str | Path,
                         provenance: dict[str, str]) -> Path:
    """Write forecasts ``(init_time, gridded(time, lat, lon), zones(time, zone[, quantile]))`` as one store."""
    if not forecasts:
        raise ForecastStoreError("no forecasts to write")
    gridded = _with_valid_time(xr.concat([to_lead_time(g, pd.Timestamp(t)) for t, g, _ in forecasts], "init_time"))
    zones = _with_valid_time(xr.concat([to_lead_time(z, pd.Timestamp(t)) for t, _, z in forecasts], "init_time"))
    check_zone_products(zones)
    attrs = {
        "title": "CarbonSync forecast", "Conventions": "CF-1.8", "code_version": f"carbonsync {__version__}",
        "created": pd.Timestamp.now(tz="UTC").isoformat(), **{k: str(v) for k, v in provenance.items()},
    }
    gridded.attrs, zones.attrs = dict(attrs, content="gridded fields"), dict(attrs, content="zone products")
    n_lead = gridded.sizes["lead_time"]
    gridded = gridded.chunk({"init_time": 1, "lead_time": min(24, n_lead), "lat": -1, "lon": -1})
    zones = zones.chunk({"init_time": 1, "lead_time": -1, "zone": 1})
    for ds in (gridded, zones):
        for name in ds.variables:
            ds[name].encoding = {}
    with atomic_path(path) as tmp:
        layout = {
            "layout_gridded": _describe(gridded), "layout_zones": _describe(zones),
            "how_to_read": "xarray.open_zarr(store, group='zones') or group='gridded'; "
                           "valid_time = init_time + lead_time",
        }
        to_zarr(xr.Dataset(attrs={**attrs, **layout}), tmp, consolidated=False)
        to_zarr(gridded, tmp, group="gridded", mode="a", consolidated=False)
        to_zarr(zones, tmp, group="zones", mode="a", consolidated=False)
        consolidate(tmp)
    return Path(path)


def open_forecast(path: str | Path, group: str = "zones") -> xr.Dataset:
    """Open one group (``zones`` or ``gridded``) of a forecast store lazily."""
    path = Path(path)
    if not path.exists():
        raise ForecastStoreError(f"forecast store '{path}' does not exist (run `carbonsync forecast`)")
    if group not in ("zones", "gridded"):
        raise ForecastStoreError(f"forecast store group '{group}' is not 'zones' or 'gridded'")
    return xr.open_zarr(path, group=group, consolidated=True)


def latest_zone_forecast(path: str | Path, zones: Sequence[str] | None = None,
                         start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                         products: Sequence[str] = ZONE_PRODUCTS) -> xr.Dataset:
    """The latest forecast of ``products`` for ``zones`` over ``[start, end]`` as ``(time, zone)``.

    Uses the most recent init time (not after ``start`` when given) whose forecast reaches ``end``.
    """
    ds = open_forecast(path, "zones")
    missing = [z for z in (zones or []) if z not in ds.zone.values]
    if missing:
        raise ForecastStoreError(f"zones {missing} are not in forecast store '{path}'; it has {ds.zone.values.tolist()}")
    inits = pd.DatetimeIndex(ds.init_time.values)
    last_valid = inits + pd.Timedelta(ds.lead_time.values[-1])
    ok = np.ones(len(inits), bool)
    if start is not None:
        ok &= inits <= pd.Timestamp(start)
    if end is not None:
        ok &= last_valid >= pd.Timestamp(end)
    if not ok.any():
        raise ForecastStoreError(
            f"no forecast in '{path}' covers {start} to {end}; init times {[str(t) for t in inits]}")
    init = inits[np.flatnonzero(ok)[-1]]
    one = ds[list(products)].sel(init_time=init)
    if zones is not None:
        one = one.sel(zone=list(zones))
    one = one.assign_coords(time=("lead_time", (init + pd.TimedeltaIndex(one.lead_time.values)).values))
    one = one.swap_dims(lead_time="time").drop_vars(["lead_time", "valid_time"], errors="ignore")
    one = one.sel(time=slice(pd.Timestamp(start) if start is not None else None,
                             pd.Timestamp(end) if end is not None else None))
    return one.load().assign_attrs(init_time=str(init))
