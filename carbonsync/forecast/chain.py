"""The forecast chain's parts behind protocols, a registry that loads them by package kind, and the one rollout.

The chain has three parts, each a small :class:`typing.Protocol`:

- :class:`PrognosticModel` steps a normalised global state ``(N, C, H, W)`` by ``dt_hours`` (the SFNO
  backbone, :class:`PackagePrognostic`);
- :class:`SsrdDiagnostic` maps hourly weather ``(time, lat, lon)`` in physical units to hourly ``ssrd``
  (J m-2 accumulated over the hour ending at each label, from the state in the middle of that hour: the AFNO
  irradiance diagnostic, :class:`PackageSsrd`);
- :class:`ZoneHead` maps hourly gridded fields to zone products ``(time, zone[, quantile])``: wind and solar
  capacity factors, renewable share, carbon intensity (:class:`PhysicalZoneHead` without a learned head,
  :class:`PackageZoneHead` with one).

:func:`load_part` picks the adapter by the package's ``kind`` (``"sfno"``, ``"afno"``, ``"head"``);
:func:`register_part` adds a kind.

:func:`rollout_states` is the only code that steps a prognostic model: :class:`carbonsync.forecast.rollout.
Forecaster` (the pipeline, the export, the hindcasts), the earth2studio iterator
(:class:`carbonsync.interop.earth2studio.CarbonSyncPrognostic`) and the backbone trainer's damping hindcasts
(:func:`carbonsync.train.backbone.damping_hindcasts`) all run it. It applies the package's damping
toward climatology (:func:`carbonsync.forecast.calibration.apply_damping`) to what it yields, while the model
keeps stepping its own undamped state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
import xarray as xr

from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.logs import get_logger
from carbonsync.data import lexicon
from carbonsync.data.validation import WeatherDataError
from carbonsync.forecast.calibration import apply_damping
from carbonsync.models.head import RenewablesHead, predict
from carbonsync.models.inputs import backbone_forcing, irradiance_inputs
from carbonsync.models.package import ModelPackage, PackageError, load_package
from carbonsync.models.renewables import Design
from carbonsync.models.renewables.gridded import gridded_design
from carbonsync.physics.grid import Grid
from carbonsync.physics.renewables import zone_products
from carbonsync.physics.zones import Zone

__all__ = [
    "Damping",
    "PrognosticModel",
    "SsrdDiagnostic",
    "ZoneHead",
    "PackagePrognostic",
    "PackageSsrd",
    "PhysicalZoneHead",
    "PackageZoneHead",
    "ChainPartError",
    "StepHook",
    "head_design",
    "register_part",
    "load_part",
    "part_kinds",
    "rollout_states",
]

log = get_logger(__name__)

DEFAULT_TURBINE = "E-126/4200"


class ChainPartError(CarbonSyncError, KeyError):
    """A package kind no chain part is registered for, or a part that does not fit its role."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --- protocols ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Damping:
    """The damping toward climatology a backbone package carries (:mod:`carbonsync.forecast.calibration`):
    ``climatology`` ``(24 // dt_hours, C, H, W)`` normalised, ``factors`` ``(lead_steps, C)``."""

    climatology: torch.Tensor
    factors: torch.Tensor

    def apply(self, states: torch.Tensor, valid_times: pd.DatetimeIndex, lead_step: int) -> torch.Tensor:
        """Damp normalised states ``(N, C, H, W)``, all at lead ``lead_step`` (>= 1), valid at ``valid_times``."""
        leads = torch.full((states.shape[0],), int(lead_step), dtype=torch.long)
        return apply_damping(states, valid_times, self.climatology.to(states.device), self.factors.to(states.device),
                             leads=leads)


@runtime_checkable
class PrognosticModel(Protocol):
    """Steps a normalised global state ``(N, C, H, W)`` by ``dt_hours``.

    ``step(state, times)`` takes the states' valid times (one per state) and returns the states ``dt_hours``
    later; the model computes its own forcing from the times. ``normalise``/``denormalise`` convert between
    physical units and the model's; ``damping`` is ``None`` or what :func:`rollout_states` applies to what it
    reports.
    """

    @property
    def channels(self) -> list[str]: ...

    @property
    def grid(self) -> Grid: ...

    @property
    def dt_hours(self) -> float: ...

    @property
    def damping(self) -> Damping | None: ...

    def step(self, state: torch.Tensor, times: pd.DatetimeIndex) -> torch.Tensor: ...

    def normalise(self, physical: torch.Tensor) -> torch.Tensor: ...

    def denormalise(self, state: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class SsrdDiagnostic(Protocol):
    """Hourly weather ``(time, lat, lon)`` in physical units → hourly ``ssrd`` (J m-2, hour ending at the label)."""

    @property
    def variables(self) -> list[str]:
        """Names of the input variables the diagnostic reads from the weather dataset."""
        ...

    def __call__(self, weather: xr.Dataset) -> xr.DataArray: ...


@runtime_checkable
class ZoneHead(Protocol):
    """Hourly gridded fields (``u100``, ``v100``, ``ssrd``, optionally ``t2m``) → zone products ``(time, zone[, quantile])``."""

    def __call__(self, hourly: xr.Dataset, zones: list[Zone]) -> xr.Dataset: ...


# --- adapters of model packages -------------------------------------------------------------------------


def _where(package: ModelPackage) -> str:
    return f" '{package.path}'" if package.path else ""


def _expect_kind(package: ModelPackage, kind: str, role: str) -> None:
    if package.kind != kind:
        raise PackageError(f"package{_where(package)} holds a '{package.kind}' model, not {role} ('{kind}')")


def _package(package: ModelPackage | str | Path) -> ModelPackage:
    return package if isinstance(package, ModelPackage) else load_package(Path(package))


class PackagePrognostic:
    """An SFNO backbone package (``packages/backbone``) as a :class:`PrognosticModel`."""

    def __init__(self, package: ModelPackage | str | Path) -> None:
        self.package = _package(package)
        _expect_kind(self.package, "sfno", "a prognostic backbone")
        tensors = self.package.tensors
        self._damping = Damping(tensors["damping_climatology"], tensors["damping"]) if "damping" in tensors else None

    def __repr__(self) -> str:
        return f"PackagePrognostic({self.package.path or 'in memory'})"

    @property
    def channels(self) -> list[str]:
        return self.package.channels

    @property
    def grid(self) -> Grid:
        return self.package.grid

    @property
    def dt_hours(self) -> float:
        return self.package.dt_hours

    @property
    def damping(self) -> Damping | None:
        return self._damping

    @property
    def model(self) -> torch.nn.Module:
        return self.package.model

    def forcing(self, times: pd.DatetimeIndex, device: torch.device | str = "cpu") -> torch.Tensor | None:
        """The forcing of the steps starting at ``times``, ``(N, F, H, W)``, or None if the model takes none."""
        names = self.package.forcing_channels
        if not names:
            return None
        return backbone_forcing(pd.DatetimeIndex(times), self.grid, names, self.dt_hours).to(device)

    @torch.no_grad()
    def step(self, state: torch.Tensor, times: pd.DatetimeIndex) -> torch.Tensor:
        if state.shape[0] != len(times):
            raise ValueError(f"{state.shape[0]} states for {len(times)} valid times")
        return self.package.model(state, self.forcing(times, state.device))

    def normalise(self, physical: torch.Tensor) -> torch.Tensor:
        return self.package.normalise(physical)

    def denormalise(self, state: torch.Tensor) -> torch.Tensor:
        return self.package.denormalise(state)


def _ssrd_dataarray(values: np.ndarray, times: Any, lat: np.ndarray, lon: np.ndarray, source: str) -> xr.DataArray:
    attrs = {**lexicon.get("ssrd").attrs, "diagnostic": source}
    return xr.DataArray(values.astype(np.float32), name="ssrd", dims=("time", "lat", "lon"),
                        coords={"time": np.asarray(times, dtype="datetime64[ns]"), "lat": lat, "lon": lon}, attrs=attrs)


class PackageSsrd:
    """A CarbonSync irradiance package (``packages/irradiance``) as an :class:`SsrdDiagnostic`.

    The model sees the state in the middle of each accumulation hour: the mean of the states at the label
    and one hour before it where the weather has that hour (else the state at the label), and the sun
    computed here (:func:`carbonsync.models.inputs.irradiance_inputs`).
    """

    def __init__(self, package: ModelPackage | str | Path, batch: int = 24) -> None:
        self.package = _package(package)
        _expect_kind(self.package, "afno", "an irradiance diagnostic")
        self.batch = batch

    def __repr__(self) -> str:
        return f"PackageSsrd({self.package.path or 'in memory'})"

    @property
    def variables(self) -> list[str]:
        return self.package.channels

    @torch.no_grad()
    def __call__(self, weather: xr.Dataset) -> xr.DataArray:
        missing = [v for v in self.variables if v not in weather.data_vars]
        if missing:
            have = sorted(map(str, weather.data_vars))
            raise WeatherDataError(f"the irradiance package needs {missing}; the weather has {have}")
        grid = Grid.infer(weather)
        self.package.check_compatible(self.variables, grid)
        times = pd.DatetimeIndex(weather["time"].values)
        model = self.package.model.eval()
        here = np.arange(len(times))
        before = times.get_indexer(times - pd.Timedelta(hours=1))
        before = np.where(before >= 0, before, here)
        fields = weather[self.variables].to_array("channel").transpose("time", "channel", "lat", "lon").values
        out = []
        for start in range(0, len(times), self.batch):
            sl = slice(start, start + self.batch)
            values = 0.5 * (fields[here[sl]] + fields[before[sl]])
            x = self.package.normalise(torch.from_numpy(values.astype(np.float32)))
            cosz, clear = irradiance_inputs(times[sl], grid)
            out.append(model(x, clear, cosz)[:, 0].numpy())
        values = np.concatenate(out) if out else np.zeros((0, *grid.shape), np.float32)
        return _ssrd_dataarray(values, times, grid.lat, grid.lon, f"carbonsync package {self.package.path}")


def head_design(physical: xr.Dataset, zone_ids: Sequence[str] | None = None,
                observed: xr.Dataset | None = None) -> Design:
    """The head's design of one forecast's physical zone products, issued at its first time (lead 0 there)."""
    return gridded_design(physical, pd.Timestamp(physical["time"].values[0]), zone_ids, observed)


class PhysicalZoneHead:
    """Zone products from power curves and the PV chain alone (:func:`carbonsync.physics.renewables.zone_products`)."""

    def __init__(self, turbine: str = DEFAULT_TURBINE) -> None:
        self.turbine = turbine

    def __repr__(self) -> str:
        return f"PhysicalZoneHead({self.turbine!r})"

    def __call__(self, hourly: xr.Dataset, zones: list[Zone]) -> xr.Dataset:
        missing = [v for v in ("u100", "v100", "ssrd") if v not in hourly.data_vars]
        if missing:
            raise WeatherDataError(f"zone products need {missing}; the hourly fields have {sorted(map(str, hourly.data_vars))}")
        return zone_products(hourly["u100"], hourly["v100"], hourly["ssrd"], zones, Grid.infer(hourly),
                             t2m=hourly.get("t2m"), turbine=self.turbine)


class PackageZoneHead:
    """A regional head package (``packages/head``, a :class:`~carbonsync.models.head.RenewablesHead`) as a
    :class:`ZoneHead`: the physical products corrected, with quantiles; the physical capacity factors are kept
    as ``physical_wind_cf``/``physical_solar_cf``."""

    def __init__(self, package: ModelPackage | str | Path, turbine: str | None = None) -> None:
        self.package = _package(package)
        _expect_kind(self.package, "head", "a regional head")
        self.physical = PhysicalZoneHead(turbine or self.package.metadata.get("extra", {}).get("turbine", DEFAULT_TURBINE))

    def __repr__(self) -> str:
        return f"PackageZoneHead({self.package.path or 'in memory'})"

    @property
    def turbine(self) -> str:
        return self.physical.turbine

    def __call__(self, hourly: xr.Dataset, zones: list[Zone]) -> xr.Dataset:
        physical = self.physical(hourly, zones)
        head: RenewablesHead = self.package.model
        corrected = predict(head, head_design(physical, head.zone_ids), zones)
        fossil = xr.DataArray([z.fossil_intensity for z in zones], dims="zone", coords={"zone": corrected.zone})
        corrected["carbon_intensity"] = ((1.0 - corrected["renewable_share"]) * fossil).assign_attrs(
            physical["carbon_intensity"].attrs)
        return corrected.assign_coords(zone_name=physical["zone_name"])


# --- registry -------------------------------------------------------------------------------------------

# package kind -> (role, loader of a ModelPackage)
_PARTS: dict[str, tuple[type, Callable[[ModelPackage], Any]]] = {}


def register_part(kind: str, role: type, loader: Callable[[ModelPackage], Any]) -> None:
    """Make packages of ``kind`` load as ``loader(package)``, a part satisfying the protocol ``role``."""
    if role not in (PrognosticModel, SsrdDiagnostic, ZoneHead):
        raise ChainPartError(f"role {role!r} is not one of the chain's protocols")
    _PARTS[kind] = (role, loader)


def part_kinds() -> dict[str, str]:
    """Registered package kinds and the protocol each loads as."""
    return {kind: role.__name__ for kind, (role, _) in _PARTS.items()}


def load_part(package: ModelPackage | str | Path, role: type | None = None) -> Any:
    """The chain part of a model package (or package directory), chosen by its ``kind``.

    With ``role`` (one of the protocols), a package of another role raises ChainPartError.
    """
    package = _package(package)
    entry = _PARTS.get(package.kind)
    if entry is None:
        raise ChainPartError(f"no chain part is registered for package kind '{package.kind}'{_where(package)}; "
                             f"known: {part_kinds()}")
    part_role, loader = entry
    if role is not None and part_role is not role:
        raise ChainPartError(f"package{_where(package)} of kind '{package.kind}' is a {part_role.__name__}, "
                             f"not a {role.__name__}")
    part = loader(package)
    if not isinstance(part, part_role):
        raise ChainPartError(f"the loader of kind '{package.kind}' returned {part!r}, which is not a {part_role.__name__}")
    log.debug("chain part %r for package kind '%s'", part, package.kind)
    return part


register_part("sfno", PrognosticModel, PackagePrognostic)
register_part("afno", SsrdDiagnostic, PackageSsrd)
register_part("head", ZoneHead, PackageZoneHead)


# --- the one rollout ------------------------------------------------------------------------------------

StepHook = Callable[[torch.Tensor, int], torch.Tensor]
"""``hook(state, lead_step) -> state`` on the normalised state the model steps (``lead_step`` counts steps done)."""


@torch.no_grad()
def rollout_states(prognostic: PrognosticModel, state: torch.Tensor, times: Sequence | pd.DatetimeIndex,
                   steps: int | None = None, *, damped: bool = True, before_step: StepHook | None = None,
                   after_step: StepHook | None = None) -> Iterator[tuple[int, pd.DatetimeIndex, torch.Tensor]]:
    """Step ``prognostic`` from the normalised ``state`` ``(N, C, H, W)`` valid at ``times`` (one per state).

    Yields ``(lead_step, valid_times, reported)``: first ``(0, times, state)``, then after each of ``steps``
    steps (forever if None). ``reported`` is damped toward climatology when ``damped`` and the model carries
    a damping; the model always steps its own undamped state. ``before_step``/``after_step`` act on the
    stepped state around every step (earth2studio's front and rear hooks).
    """
    if steps is not None and steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    times = pd.DatetimeIndex(times)
    if state.dim() != 4 or state.shape[0] != len(times):
        raise ValueError(f"the state must be (N, C, H, W) with one valid time per state; got {tuple(state.shape)} "
                         f"for {len(times)} time(s)")
    dt = pd.Timedelta(hours=float(prognostic.dt_hours))
    damping = prognostic.damping if damped else None
    yield 0, times, state
    k = 0
    while steps is None or k < steps:
        if before_step is not None:
            state = before_step(state, k)
        state = prognostic.step(state, times)
        times = times + dt
        k += 1
        if after_step is not None:
            state = after_step(state, k)
        yield k, times, (damping.apply(state, times, k) if damping is not None else state)
