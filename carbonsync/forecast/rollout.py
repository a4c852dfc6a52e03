"""Forecast chain: SFNO 6-hourly rollout → hourly states → AFNO ssrd → zone capacity factors and share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from carbonsync.data import lexicon
from carbonsync.data.validation import WeatherDataError
from carbonsync.forecast.calibration import apply_damping
from carbonsync.models.head import HeadFeatures, predict
from carbonsync.models.inputs import (
    backbone_forcing,
    hour_state_weights,
    interpolation_weights,
    irradiance_inputs,
)
from carbonsync.models.package import ModelPackage, load_package
from carbonsync.physics.grid import Grid
from carbonsync.physics.renewables import zone_products
from carbonsync.physics.zones import Zone

GRIDDED_VARIABLES = ("u100", "v100", "ssrd", "tcc", "t2m", "z500")


@dataclass
class Forecaster:
    """The trained chain. ``head`` is optional: without it zone products are the physical ones."""

    backbone: ModelPackage
    irradiance: ModelPackage
    head: ModelPackage | None = None
    turbine: str = "E-126/4200"

    @classmethod
    def from_dir(cls, packages: str | Path, with_head: bool = True) -> Forecaster:
        """Load ``backbone``, ``irradiance`` (and ``head``) packages from one directory."""
        packages = Path(packages)
        head = load_package(packages / "head") if with_head else None
        turbine = head.metadata["extra"].get("turbine", cls.turbine) if head else cls.turbine
        return cls(load_package(packages / "backbone"), load_package(packages / "irradiance"), head, turbine)

    @property
    def channels(self) -> list[str]:
        return list(self.backbone.metadata["channels"])

    @property
    def grid(self) -> Grid:
        return Grid.from_dict(self.backbone.metadata["grid"])

    @property
    def dt_hours(self) -> int:
        return int(self.backbone.metadata["dt_hours"])

    def initial_state(self, weather: xr.Dataset, init_time: pd.Timestamp) -> torch.Tensor:
        """The normalised state (1, C, H, W) at ``init_time`` from a canonical dataset, checked."""
        present = [c for c in self.channels if c in weather.data_vars]
        self.backbone.check_compatible(present, Grid.infer(weather))
        if init_time not in weather.indexes["time"]:
            raise WeatherDataError(f"initial time {init_time} is not in the weather data")
        values = weather[self.channels].sel(time=init_time).to_array("channel").values.astype(np.float32)
        if not np.isfinite(values).all():
            raise WeatherDataError(f"the state at {init_time} has NaNs")
        return self.backbone.normalise(torch.from_numpy(values)[None])

    @torch.no_grad()
    def rollout(self, state: torch.Tensor, init_time: pd.Timestamp, steps: int,
                damped: bool = True) -> tuple[pd.DatetimeIndex, torch.Tensor]:
        """Normalised states at init and each of ``steps`` backbone steps: times and (S+1, C, H, W).

        If the package carries a damping toward climatology (:mod:`carbonsync.forecast.calibration`) and
        ``damped``, the returned forecasts are damped; the model always steps its own undamped state.
        """
        times = pd.date_range(init_time, periods=steps + 1, freq=f"{self.dt_hours}h")
        model, grid = self.backbone.model, self.grid
        out = [state[0]]
        forcing = backbone_forcing(times[:-1], grid, self.backbone.forcing_channels, self.dt_hours)
        for i in range(steps):
            state = model(state, forcing[i : i + 1])
            out.append(state[0])
        states = torch.stack(out)
        tensors = self.backbone.tensors
        if damped and "damping" in tensors and steps > 0:
            states[1:] = apply_damping(states[1:], times[1:], tensors["damping_climatology"], tensors["damping"])
        return times, states

    @torch.no_grad()
    def hourly(self, times6: pd.DatetimeIndex, states: torch.Tensor, batch: int = 24) -> xr.Dataset:
        """Hourly gridded fields: backbone channels interpolated linearly in time and AFNO ssrd.

        The AFNO sees the state in the middle of each accumulation hour (:func:`hour_state_weights`).
        """
        grid = self.grid
        hours = pd.date_range(times6[0], times6[-1], freq="h")

        def interpolate(i0: np.ndarray, i1: np.ndarray, weight: np.ndarray) -> torch.Tensor:
            w = torch.from_numpy(weight)[:, None, None, None]
            return self.backbone.denormalise((1 - w) * states[i0] + w * states[i1])  # physical units

        before, weight = interpolation_weights(hours, self.dt_hours)
        i0 = times6.get_indexer(before)
        interpolated = interpolate(i0, np.minimum(i0 + 1, len(times6) - 1), weight)
        mid_hour = interpolate(*hour_state_weights(hours, times6, self.dt_hours))
        afno_channels = list(self.irradiance.metadata["channels"])
        pick = [self.channels.index(c) for c in afno_channels]
        ssrd = []
        for start in range(0, len(hours), batch):
            sl = slice(start, start + batch)
            cosz, clear = irradiance_inputs(hours[sl], grid)
            x = self.irradiance.normalise(mid_hour[sl][:, pick])
            ssrd.append(self.irradiance.model(x, clear, cosz)[:, 0])
        physical = interpolated.numpy()
        data = {c: physical[:, i] for i, c in enumerate(self.channels)}
        data["ssrd"] = torch.cat(ssrd).numpy()
        if "tcc" in data:
            data["tcc"] = np.clip(data["tcc"], 0.0, 1.0)
        ds = xr.Dataset(
            {name: (("time", "lat", "lon"), values.astype(np.float32), lexicon.get(name).attrs)
             for name, values in data.items()},
            coords={"time": hours.values, **grid.coords()},
        )
        ds.attrs.update({"grid": grid.attr()})
        return ds

    @staticmethod
    def head_features(physical: xr.Dataset, zones: list[Zone]):
        """Head features of one forecast's physical products; lead time counts from its first time."""

        times = pd.DatetimeIndex(physical.time.values)
        return HeadFeatures.from_products(physical, zones, lead_hours=(times - times[0]) / pd.Timedelta(hours=1))

    def zone_products(self, hourly: xr.Dataset, zones: list[Zone]) -> xr.Dataset:
        """Zone wind/solar CF and renewable share (time, zone[, quantile]) from hourly gridded fields."""

        physical = zone_products(hourly["u100"], hourly["v100"], hourly["ssrd"], zones, self.grid,
                                 t2m=hourly.get("t2m"), turbine=self.turbine)
        if self.head is None:
            return physical
        corrected = predict(self.head.model, self.head_features(physical, zones), zones)
        fossil = xr.DataArray([z.fossil_intensity for z in zones], dims="zone", coords={"zone": corrected.zone})
        corrected["carbon_intensity"] = ((1.0 - corrected["renewable_share"]) * fossil).assign_attrs(
            physical["carbon_intensity"].attrs)
        corrected["physical_wind_cf"] = physical["wind_cf"]
        corrected["physical_solar_cf"] = physical["solar_cf"]
        return corrected.assign_coords(zone_name=physical["zone_name"])

    def forecast(self, weather: xr.Dataset, init_time: str | pd.Timestamp, lead_hours: int,
                 zones: list[Zone]) -> tuple[xr.Dataset, xr.Dataset]:
        """One forecast from ``init_time``: hourly gridded fields and zone products over ``lead_hours``."""
        init_time = pd.Timestamp(init_time)
        if lead_hours % self.dt_hours:
            raise ValueError(f"lead_hours={lead_hours} must be a multiple of the backbone step {self.dt_hours} h")
        times6, states = self.rollout(self.initial_state(weather, init_time), init_time, lead_hours // self.dt_hours)
        gridded = self.hourly(times6, states)
        return gridded, self.zone_products(gridded, zones)
