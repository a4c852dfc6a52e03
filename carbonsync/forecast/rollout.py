"""The trained forecast chain: SFNO 6-hourly rollout → hourly states → AFNO ssrd → zone capacity factors and share.

:class:`Forecaster` holds the three model packages and runs them through the chain's protocols
(:mod:`carbonsync.forecast.chain`): the backbone steps through :func:`~carbonsync.forecast.chain.rollout_states`,
the one rollout the earth2studio iterator runs too; the irradiance diagnostic and the zone head are the parts
:func:`~carbonsync.forecast.chain.load_part` picks by package kind.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from carbonsync.data import lexicon
from carbonsync.data.validation import WeatherDataError
from carbonsync.forecast import chain
from carbonsync.forecast.chain import (
    DEFAULT_TURBINE,
    PackageZoneHead,
    PhysicalZoneHead,
    PrognosticModel,
    SsrdDiagnostic,
    ZoneHead,
    head_design,
    load_part,
)
from carbonsync.models.inputs import interpolation_weights
from carbonsync.models.package import ModelPackage, load_package
from carbonsync.physics.grid import Grid
from carbonsync.physics.zones import Zone

__all__ = ["Forecaster", "GRIDDED_VARIABLES"]

GRIDDED_VARIABLES = ("u100", "v100", "ssrd", "tcc", "t2m", "z500")


@dataclass
class Forecaster:
    """The trained chain. ``head`` is optional: without it zone products are the physical ones.

    ``irradiance`` may be None for backbone-only use (:meth:`rollout`, hindcasts); :meth:`hourly` needs it.
    The parts (``prognostic``, ``diagnostic``, ``zone_head``) are loaded from the packages by kind.
    """

    backbone: ModelPackage
    irradiance: ModelPackage | None
    head: ModelPackage | None = None
    turbine: str = DEFAULT_TURBINE
    prognostic: PrognosticModel = field(init=False, repr=False)
    diagnostic: SsrdDiagnostic | None = field(init=False, repr=False)
    zone_head: ZoneHead = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.prognostic = load_part(self.backbone, PrognosticModel)
        self.diagnostic = load_part(self.irradiance, SsrdDiagnostic) if self.irradiance is not None else None
        self.zone_head = load_part(self.head, ZoneHead) if self.head is not None else PhysicalZoneHead(self.turbine)
        if isinstance(self.zone_head, PackageZoneHead):
            self.zone_head.physical = PhysicalZoneHead(self.turbine)  # the Forecaster's turbine, as given

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
        return self.initial_states(weather, [init_time])

    def initial_states(self, weather: xr.Dataset, init_times: Sequence[pd.Timestamp]) -> torch.Tensor:
        """The normalised states (N, C, H, W) at ``init_times`` from a canonical dataset, checked."""
        present = [c for c in self.channels if c in weather.data_vars]
        self.backbone.check_compatible(present, Grid.infer(weather))
        init_times = pd.DatetimeIndex([pd.Timestamp(t) for t in init_times])
        for t in init_times:
            if t not in weather.indexes["time"]:
                raise WeatherDataError(f"initial time {t} is not in the weather data")
        values = (weather[self.channels].sel(time=init_times).to_array("channel")
                  .transpose("time", "channel", ...).values.astype(np.float32))
        for t, v in zip(init_times, values, strict=True):
            if not np.isfinite(v).all():
                raise WeatherDataError(f"the state at {t} has NaNs")
        return self.prognostic.normalise(torch.from_numpy(values))

    @torch.no_grad()
    def rollout(self, state: torch.Tensor, init_time: pd.Timestamp, steps: int,
                damped: bool = True) -> tuple[pd.DatetimeIndex, torch.Tensor]:
        """Normalised states at init and each of ``steps`` backbone steps: times and (S+1, C, H, W).

        Runs :func:`carbonsync.forecast.chain.rollout_states`: if the package carries a damping toward
        climatology and ``damped``, the returned forecasts are damped; the model steps its own undamped state.
        """
        times, states = self.rollouts(state, [init_time], steps, damped=damped)
        return times[0], states[:, 0]

    @torch.no_grad()
    def rollouts(self, states: torch.Tensor, init_times: Sequence[pd.Timestamp], steps: int,
                 damped: bool = True) -> tuple[list[pd.DatetimeIndex], torch.Tensor]:
        """:meth:`rollout` of N states (N, C, H, W) at once, one init time each: the valid times of each
        forecast and the states (S+1, N, C, H, W)."""
        valid, out = [], []
        for _, times, reported in chain.rollout_states(self.prognostic, states,
                                                       pd.DatetimeIndex([pd.Timestamp(t) for t in init_times]),
                                                       steps, damped=damped):
            valid.append(times)
            out.append(reported)
        return [pd.DatetimeIndex([t[i] for t in valid]) for i in range(len(init_times))], torch.stack(out)

    @torch.no_grad()
    def hourly(self, times6: pd.DatetimeIndex, states: torch.Tensor) -> xr.Dataset:
        """Hourly gridded fields: backbone channels interpolated linearly in time, and ssrd from the
        irradiance diagnostic (:class:`~carbonsync.forecast.chain.SsrdDiagnostic`) on those fields.

        The diagnostic sees the state in the middle of each accumulation hour, which on linearly
        interpolated fields is the mean of the states at the hour's two ends; ``tcc`` is clipped to [0, 1]
        in the output only.
        """
        if self.diagnostic is None:
            raise ValueError("this Forecaster has no irradiance package; hourly fields need one")
        grid = self.grid
        hours = pd.date_range(times6[0], times6[-1], freq="h")
        before, weight = interpolation_weights(hours, self.dt_hours)
        i0 = times6.get_indexer(before)
        i1 = np.minimum(i0 + 1, len(times6) - 1)
        w = torch.from_numpy(weight)[:, None, None, None]
        physical = self.prognostic.denormalise((1 - w) * states[i0] + w * states[i1]).numpy()
        ds = xr.Dataset(
            {c: (("time", "lat", "lon"), physical[:, i].astype(np.float32), lexicon.get(c).attrs)
             for i, c in enumerate(self.channels)},
            coords={"time": hours.values, **grid.coords()},
        )
        ds.attrs.update({"grid": grid.attr()})
        ssrd = self.diagnostic(ds).transpose("time", "lat", "lon")
        ds["ssrd"] = (("time", "lat", "lon"), ssrd.values.astype(np.float32), lexicon.get("ssrd").attrs)
        if "tcc" in ds:
            ds["tcc"] = ds["tcc"].clip(0.0, 1.0, keep_attrs=True)
        return ds

    head_design = staticmethod(head_design)

    def zone_products(self, hourly: xr.Dataset, zones: list[Zone]) -> xr.Dataset:
        """Zone wind/solar CF and renewable share (time, zone[, quantile]) from hourly gridded fields
        (the :class:`~carbonsync.forecast.chain.ZoneHead` part)."""
        return self.zone_head(hourly, zones)

    def forecast(self, weather: xr.Dataset, init_time: str | pd.Timestamp, lead_hours: int,
                 zones: list[Zone]) -> tuple[xr.Dataset, xr.Dataset]:
        """One forecast from ``init_time``: hourly gridded fields and zone products over ``lead_hours``."""
        _, gridded, products = next(self.forecasts(weather, [init_time], lead_hours, zones))
        return gridded, products

    def forecasts(self, weather: xr.Dataset, init_times: Sequence[str | pd.Timestamp], lead_hours: int,
                  zones: list[Zone], batch: int = 16) -> Iterator[tuple[pd.Timestamp, xr.Dataset, xr.Dataset]]:
        """Forecasts from each of ``init_times``, in order: ``(init_time, hourly gridded, zone products)``.

        The backbone steps ``batch`` initial states at once (one :meth:`rollouts`); the hourly fields and
        zone products are then made one forecast at a time. Each forecast is :meth:`forecast`'s.
        """
        if lead_hours % self.dt_hours:
            raise ValueError(f"lead_hours={lead_hours} must be a multiple of the backbone step {self.dt_hours} h")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        inits = [pd.Timestamp(t) for t in init_times]
        steps = lead_hours // self.dt_hours
        for start in range(0, len(inits), batch):
            group = inits[start:start + batch]
            times6, states = self.rollouts(self.initial_states(weather, group), group, steps)
            for i, init in enumerate(group):
                gridded = self.hourly(times6[i], states[:, i])
                yield init, gridded, self.zone_products(gridded, zones)
