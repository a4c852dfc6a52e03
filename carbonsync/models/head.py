"""The regional head: the renewables model family (:mod:`carbonsync.models.renewables`) on gridded weather.

The head is a :class:`~carbonsync.models.renewables.RenewablesModel` fitted on a gridded
:class:`~carbonsync.models.renewables.Design` (:func:`~carbonsync.models.renewables.gridded.gridded_design`):
the physical zone capacity factors (windpowerlib, pvlib) are the priors, a learner chosen by name corrects
them, and residual quantiles calibrated by lead give the band. It is the same code the real-data benchmarks
(DACF, GEFCom2014) run; only the adapter differs.

:class:`RenewablesHead` holds a fitted model as tensors and JSON (the model's
:meth:`~carbonsync.models.renewables.RenewablesModel.state`), so a model package stores it like any other model:
``weights.pt`` read with ``weights_only=True``, no pickle. :func:`build_head_design` turns each weather source the
head accepts into a design; :func:`predict` gives the corrected zone products.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from carbonsync.models.renewables import Design, RenewablesConfig, RenewablesError, RenewablesModel
from carbonsync.models.renewables.gridded import GRIDDED_TARGETS, concat_designs, gridded_design
from carbonsync.physics.grid import Grid
from carbonsync.physics.renewables import (
    PhysicsInputError,
    renewable_share,
    solar_capacity_factor,
    wind_capacity_factor,
    zone_products,
)
from carbonsync.physics.zones import Zone

__all__ = ["TARGETS", "RenewablesHead", "build_head_design", "fit_head", "physical_products", "predict"]

TARGETS = GRIDDED_TARGETS


class RenewablesHead(nn.Module):
    """A fitted :class:`RenewablesModel` of gridded zone products as a saveable module.

    ``model`` is the model's JSON state, ``arrays`` lists its arrays (name, dtype, shape) in the order of the
    buffers ``array_<i>`` that hold them; ``zone_ids`` are the zones it was fitted on. Build one with
    :meth:`from_model`; :func:`~carbonsync.models.package.load_package` rebuilds it from that config.
    """

    def __init__(self, model: Mapping[str, Any], arrays: Sequence[Mapping[str, Any]], zone_ids: Sequence[str]) -> None:
        super().__init__()
        self.config = {"model": dict(model), "arrays": [dict(a) for a in arrays], "zone_ids": [str(z) for z in zone_ids]}
        for i, spec in enumerate(self.config["arrays"]):
            try:
                empty = torch.zeros(tuple(spec["shape"]), dtype=getattr(torch, spec["dtype"]))
            except (KeyError, AttributeError, TypeError) as err:
                raise RenewablesError(f"head array spec {spec!r} is not (name, dtype, shape): {err}") from None
            self.register_buffer(f"array_{i}", empty)
        self._model: RenewablesModel | None = None

    @classmethod
    def from_model(cls, model: RenewablesModel, zone_ids: Sequence[str]) -> RenewablesHead:
        meta, arrays = model.state()
        values = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
        specs = [{"name": name, "dtype": str(torch.as_tensor(v.copy()).dtype).removeprefix("torch."),
                  "shape": list(v.shape)} for name, v in values.items()]
        head = cls(meta, specs, zone_ids)
        for i, value in enumerate(values.values()):
            getattr(head, f"array_{i}").copy_(torch.as_tensor(value.copy()))
        head._model = model
        return head

    @property
    def zone_ids(self) -> tuple[str, ...]:
        return tuple(self.config["zone_ids"])

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(self.model.config_of(TARGETS[0]).levels)

    @property
    def model(self) -> RenewablesModel:
        """The :class:`RenewablesModel` the buffers hold (rebuilt once after loading)."""
        if self._model is None:
            arrays = {spec["name"]: getattr(self, f"array_{i}").cpu().numpy()
                      for i, spec in enumerate(self.config["arrays"])}
            self._model = RenewablesModel.from_state(self.config["model"], arrays)
        return self._model

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        result = super().load_state_dict(*args, **kwargs)
        self._model = None  # rebuilt from the new buffers on next use
        return result

    def forward(self, design: Design) -> pd.DataFrame:
        return self.model.predict(design)


def fit_head(design: Design, configs: Mapping[str, RenewablesConfig] | RenewablesConfig) -> RenewablesHead:
    """Fit the head on a gridded ``design`` with one configuration per target (or one for both)."""
    model = RenewablesModel(configs) if isinstance(configs, RenewablesConfig) else RenewablesModel(configs=configs)
    zone_ids = [f.removeprefix("zone_") for f in design.features if f.startswith("zone_")]
    return RenewablesHead.from_model(model.fit(design), zone_ids)


def predict(head: RenewablesHead, design: Design, zones: Sequence[Zone]) -> xr.Dataset:
    """Corrected ``wind_cf``, ``solar_cf``, ``renewable_share`` ``(time, zone)``, their ``*_quantile`` variants
    (leading ``quantile`` dim) and the priors as ``physical_wind_cf``/``physical_solar_cf``.

    ``design`` has one row per (time, zone) (one forecast, or analyses). ``renewable_share_quantile`` combines
    the CF quantiles level by level (wind and solar taken as comonotone).
    """
    frame = design.frame
    if frame.duplicated(["time", "zone"]).any():
        raise RenewablesError("predict needs one row per (time, zone): pass one forecast (or analyses) at a time")
    out = head(design)
    times = pd.DatetimeIndex(sorted(frame["time"].unique()))
    zone_ids = list(dict.fromkeys(frame["zone"].astype(str)))
    index = pd.MultiIndex.from_arrays([pd.DatetimeIndex(out["time"]), out["zone"].astype(str)])
    full = pd.MultiIndex.from_product([times, zone_ids])
    coords = {"time": times.values, "zone": zone_ids}
    levels = list(head.levels)

    def grid(values: np.ndarray) -> np.ndarray:
        return pd.Series(values, index=index).reindex(full).to_numpy().reshape(len(times), len(zone_ids))

    ds = xr.Dataset()
    for name in TARGETS:
        attrs = {"units": "1", "long_name": f"Corrected {name.replace('_cf', '')} capacity factor"}
        ds[name] = xr.DataArray(grid(out[name].to_numpy()), coords=coords, dims=("time", "zone"), attrs=attrs)
        quantiles = np.stack([grid(out[f"{name}_q{q:g}"].to_numpy()) for q in levels])
        ds[f"{name}_quantile"] = xr.DataArray(quantiles, coords={"quantile": levels, **coords},
                                              dims=("quantile", "time", "zone"), attrs=attrs)
        ds[f"physical_{name}"] = xr.DataArray(grid(design.prior(name)), coords=coords, dims=("time", "zone"),
                                              attrs={"units": "1", "long_name": f"Physical {name.replace('_cf', '')} "
                                                     "capacity factor (the head's prior)"})
    ds["renewable_share"] = renewable_share(ds["wind_cf"], ds["solar_cf"], zones)
    ds["renewable_share_quantile"] = renewable_share(
        ds["wind_cf_quantile"], ds["solar_cf_quantile"], zones).transpose("quantile", "time", "zone")
    return ds


# ------------------------------------------------------------------------------ designs from weather


def _optional(ds: xr.Dataset, names: Sequence[str]) -> dict[str, xr.DataArray]:
    return {n: ds[n] for n in names if n in ds.data_vars}


def _gridded_products(ds: xr.Dataset, zones: Sequence[Zone], turbine: str, hub_height: float | None,
                      capacity: dict | None) -> xr.Dataset:
    grid = Grid.infer(ds)
    extra = _optional(ds, ("t2m", "u10", "v10", "fsr"))
    return zone_products(ds["u100"], ds["v100"], ds["ssrd"], zones, grid, t2m=extra.get("t2m"), turbine=turbine,
                         hub_height=hub_height, u10=extra.get("u10"), v10=extra.get("v10"), fsr=extra.get("fsr"),
                         capacity=capacity)


def _station_products(ds: xr.Dataset, zone: Zone, turbine: str, hub_height: float | None) -> xr.Dataset:
    """Physical products of one zone from a time series at one location (the zone's box centre by default)."""
    lat = float(ds["lat"]) if "lat" in ds.coords and ds["lat"].size == 1 else 0.5 * (zone.lat_min + zone.lat_max)
    lon = float(ds["lon"]) if "lon" in ds.coords and ds["lon"].size == 1 else 0.5 * (zone.lon_min + zone.lon_max)
    point = ds.drop_vars([c for c in ("lat", "lon") if c in ds.coords]).expand_dims(lat=[lat], lon=[lon % 360.0])
    point = point.transpose("time", "lat", "lon")
    extra = _optional(point, ("t2m", "u10", "v10", "fsr"))
    wind = wind_capacity_factor(point["u100"], point["v100"], turbine=turbine, hub_height=hub_height,
                                u10=extra.get("u10"), v10=extra.get("v10"), roughness=extra.get("fsr"))
    solar = solar_capacity_factor(point["ssrd"], t2m=extra.get("t2m"))
    speed = np.hypot(point["u100"], point["v100"])
    ghi = point["ssrd"].clip(min=0) / 3600.0
    out = xr.Dataset({name: da.isel(lat=0, lon=0, drop=True).expand_dims(zone=[zone.id], axis=1)
                      for name, da in (("wind_cf", wind), ("solar_cf", solar), ("wind_speed", speed), ("ghi", ghi))})
    out.attrs = {"station": f"{lat:.3f}N {lon:.3f}E"}
    return out


def physical_products(weather: xr.Dataset, zones: Sequence[Zone], *, turbine: str = "E-126/4200",
                      hub_height: float | None = None, capacity: dict[str, xr.DataArray] | None = None) -> xr.Dataset:
    """Physical zone products ``(time, zone)`` of gridded weather ``(time, lat, lon)`` (zone means, optionally
    capacity-weighted) or of a station / NWP series ``(time,)`` for one zone (its scalar ``lat``/``lon``
    coordinates locate it, else the zone's box centre).

    Needs ``u100``, ``v100`` (m s-1) and ``ssrd`` (J m-2 per hour); ``t2m``, ``u10``/``v10`` and ``fsr`` are
    used when present.
    """
    zones = list(zones)
    missing = [v for v in ("u100", "v100", "ssrd") if v not in weather.data_vars]
    if missing:
        raise KeyError(f"the head needs {missing}; the weather has {sorted(map(str, weather.data_vars))}")
    dims = set(weather["u100"].dims)
    if dims == {"time", "lat", "lon"}:
        return _gridded_products(weather, zones, turbine, hub_height, capacity)
    if dims == {"time"}:
        if len(zones) != 1:
            raise ValueError(f"a station series describes one zone; got {len(zones)} zones")
        if capacity:
            raise PhysicsInputError("capacity maps need gridded weather, not a station series")
        return _station_products(weather, zones[0], turbine, hub_height)
    raise ValueError(f"'u100' has dims {tuple(weather['u100'].dims)}; expected (time, lat, lon) or (time,)")


def build_head_design(
    weather: xr.Dataset,
    zones: Sequence[Zone],
    *,
    turbine: str = "E-126/4200",
    hub_height: float | None = None,
    capacity: dict[str, xr.DataArray] | None = None,
    zone_ids: Sequence[str] | None = None,
    observed: xr.Dataset | None = None,
) -> Design:
    """The head's design from any weather source it accepts, told apart by dimensions.

    - **gridded** analyses ``(time, lat, lon)`` or a **station** series ``(time,)``: :func:`physical_products`,
      each row its own issue (lead 0);
    - **backbone forecasts** ``(init_time, lead_time, lat, lon)`` (the forecast store's ``gridded`` group):
      each init time is the issue of its rows, valid at ``init_time + lead_time``, stacked init by init.

    ``zone_ids`` fixes the one-hot zone columns (a fitted head's ``zone_ids``); ``observed`` ``(time, zone)``
    gives the targets.
    """
    zones = list(zones)
    options = {"turbine": turbine, "hub_height": hub_height, "capacity": capacity}
    if "u100" in weather.data_vars and set(weather["u100"].dims) == {"init_time", "lead_time", "lat", "lon"}:
        parts = []
        for init in weather["init_time"].values:
            one = weather.sel(init_time=init, drop=True)
            one = one.drop_vars([c for c in one.coords if c not in ("lead_time", "lat", "lon")])
            one = one.assign_coords(lead_time=np.datetime64(init, "ns") + one["lead_time"].values.astype("m8[ns]"))
            products = physical_products(one.rename(lead_time="time"), zones, **options)
            parts.append(gridded_design(products, pd.Timestamp(init), zone_ids, observed))
        if not parts:
            raise ValueError("the forecast dataset has no init_time")
        return concat_designs(parts)
    return gridded_design(physical_products(weather, zones, **options), None, zone_ids, observed)
