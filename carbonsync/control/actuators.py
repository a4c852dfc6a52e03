"""Actuators: what turns a controller :class:`~carbonsync.control.decision.Decision` into GPU power limits.

Every actuator follows :class:`Actuator`. Three are registered: ``"nvml"`` (:class:`NvmlActuator`, real caps on
NVIDIA GPUs), ``"dry-run"`` (:class:`DryRunActuator`, logs what it would set) and ``"pause-only"``
(:class:`PauseOnlyActuator`, leaves the GPUs alone: the training loop pauses on RED). :func:`open_actuator`
opens NVML and falls back to pause-only where NVML is not available. :func:`restore_from_state_file` is what
``carbonsync control restore`` runs after a controller died without restoring (SIGKILL, power loss).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from carbonsync.control.decision import Decision
from carbonsync.control.nvml import (
    DEFAULT_STATE_FILE,
    STATE_FILE_ENV,
    Actuation,
    GpuCapability,
    NvmlActuator,
    NvmlDevices,
    NvmlUnavailable,
    actuation_for,
    default_state_file,
    pid_alive,
    read_state_file,
    restore_saved_limits,
)
from carbonsync.core.errors import ConfigError
from carbonsync.core.logs import get_logger

__all__ = [
    "DEFAULT_STATE_FILE",
    "STATE_FILE_ENV",
    "Actuation",
    "Actuator",
    "DryRunActuator",
    "PauseOnlyActuator",
    "actuator_names",
    "default_state_file",
    "get_actuator",
    "open_actuator",
    "register_actuator",
    "restore_from_state_file",
]

log = get_logger(__name__)


@runtime_checkable
class Actuator(Protocol):
    """Applies decisions to the hardware and puts it back as it was."""

    name: str

    @property
    def pause_only(self) -> bool:
        """True when this actuator sets no power limit (the training loop's pause is the only lever)."""
        ...

    def open(self) -> Actuator:
        """Acquire the hardware (returns self)."""
        ...

    def apply(self, decision: Decision) -> Actuation:
        ...

    def restore(self) -> None:
        """Put everything back as it was at :meth:`open` (idempotent)."""
        ...

    def energy_j(self) -> float | None:
        """Energy since :meth:`open`, J (None: not measured)."""
        ...

    def power_w(self) -> float | None:
        """Current draw, W (None: not measured)."""
        ...

    def capabilities(self) -> list[GpuCapability]:
        ...


class _NoHardware:
    """Shared parts of the actuators that touch no GPU."""

    name = "none"

    def __enter__(self) -> Any:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def open(self) -> Any:
        return self

    def restore(self) -> None:
        return None

    def energy_j(self) -> float | None:
        return None

    def power_w(self) -> float | None:
        return None

    def capabilities(self) -> list[GpuCapability]:
        return []


class DryRunActuator(_NoHardware):
    """Logs the limit it would set and keeps every :class:`Actuation` in :attr:`actuations`; models nothing else."""

    name = "dry-run"
    pause_only = False

    def __init__(self) -> None:
        self.actuations: list[Actuation] = []
        self._last: float | None = None

    def apply(self, decision: Decision) -> Actuation:
        actuation = actuation_for(decision, self.name, note="dry run: nothing set")
        changed = not self.actuations or decision.power_w != self._last
        self.actuations.append(actuation)
        state = getattr(decision.state, "value", decision.state)
        what = ("leave the power limits as they are" if decision.power_w is None
                else f"set the power limit to {decision.power_w:g} W per GPU")
        log.log(logging.INFO if changed else logging.DEBUG, "dry run: would %s (%s%s)", what, state,
                "" if decision.run else ", training paused")
        self._last = decision.power_w
        return actuation


class PauseOnlyActuator(_NoHardware):
    """Sets no power limit: the training loop pauses while a decision's ``run`` is False."""

    name = "pause-only"
    pause_only = True

    def __init__(self) -> None:
        self._announced = False

    def open(self) -> PauseOnlyActuator:
        if not self._announced:
            log.info("pause-only: GPU power limits are left as they are; training pauses on RED")
            self._announced = True
        return self

    def apply(self, decision: Decision) -> Actuation:
        return actuation_for(decision, self.name, pause_only=True, note="pause-only: no power limit set")


# ------------------------------------------------------------------------------------------------ registry

_REGISTRY: dict[str, Callable[..., Actuator]] = {}


def register_actuator(name: str, factory: Callable[..., Actuator], *, replace: bool = False) -> None:
    """Make ``factory(**options)`` available as :func:`get_actuator` ``(name, **options)``."""
    if name in _REGISTRY and not replace:
        raise ConfigError(f"an actuator named {name!r} is already registered (pass replace=True to replace it)")
    _REGISTRY[name] = factory


def actuator_names() -> list[str]:
    return sorted(_REGISTRY)


def get_actuator(name: str, **options: Any) -> Actuator:
    """A new, not yet opened actuator of the registered ``name``."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown actuator {name!r}; known: {', '.join(actuator_names())}") from None
    return factory(**options)


register_actuator("nvml", NvmlActuator)
register_actuator("dry-run", DryRunActuator)
register_actuator("pause-only", PauseOnlyActuator)


def open_actuator(preferred: str = "nvml", fallback: str | None = "pause-only", **options: Any) -> Actuator:
    """Open ``preferred`` (with ``options``); where NVML is not available, log a WARNING and open ``fallback``
    instead (``fallback=None``: raise :class:`NvmlUnavailable`)."""
    actuator = get_actuator(preferred, **options)
    try:
        return actuator.open()
    except NvmlUnavailable as exc:
        if fallback is None:
            raise
        log.warning("NVML is not available (%s): running %s, no power caps", exc.code_name, fallback)
        log.debug("%s", exc)
        return get_actuator(fallback).open()


# ------------------------------------------------------------------------------------------------- restore

def restore_from_state_file(path: str | Path | None = None, devices: NvmlDevices | Any = None) -> list[str]:
    """Put back the original limits saved in a state file (default :func:`default_state_file`), matching GPUs by
    UUID, and remove the file; returns what was done, one line each. The file stays when a GPU could not be
    restored (for a retry with the needed permissions)."""
    path = Path(path) if path is not None else default_state_file()
    if not path.exists():
        return [f"nothing to restore: no power-limit state file at {path}"]
    state = read_state_file(path)
    if devices is None:
        devices = NvmlDevices()
    elif not isinstance(devices, NvmlDevices):
        devices = NvmlDevices(devices)
    lines = [f"state file {path}: written by pid {state.pid} on {state.host}, started {state.started}"]
    if state.host != socket.gethostname():
        lines.append(f"warning: written on another host ({state.host}); only GPUs with the same UUID are restored")
    elif pid_alive(state.pid):
        lines.append(f"warning: pid {state.pid} is still running; if it is the controller it may set caps again")
    devices.init()
    try:
        restored, ok = restore_saved_limits(devices, state.gpus)
    finally:
        devices.shutdown()
    lines += restored
    if ok:
        path.unlink(missing_ok=True)
        lines.append(f"removed {path}")
    else:
        lines.append(f"kept {path}: rerun with the needed permissions (root or CAP_SYS_ADMIN)")
    for line in lines:
        log.info("%s", line)
    return lines
