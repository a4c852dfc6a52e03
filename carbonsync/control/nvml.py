"""NVIDIA GPUs through NVML: typed errors, one device layer and the actuator that sets power limits.

:class:`NvmlDevices` is the only code that calls NVML (``pynvml`` from ``nvidia-ml-py``, or any object with
its function names, such as the tests' fake). It speaks watts and joules (NVML: milliwatts and millijoules)
and turns every ``pynvml.NVMLError`` into one :class:`GpuError` subclass whose message names the GPU, the
NVML call and the error code.

:class:`NvmlActuator` applies a :class:`~carbonsync.control.decision.Decision`'s ``power_w`` to every GPU it
may control. Before it changes anything it records each GPU's original limit in a JSON state file (written
atomically), so that :meth:`NvmlActuator.restore`, the context manager, the signal handlers or, after a
SIGKILL, ``carbonsync control restore`` (:func:`carbonsync.control.actuators.restore_from_state_file`) can
put the limits back.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import pynvml

from carbonsync.control.decision import Decision
from carbonsync.core.errors import CarbonSyncError, InputNotFoundError, InvalidValuesError
from carbonsync.core.fs import write_json_atomic
from carbonsync.core.logs import get_logger

__all__ = [
    "DEFAULT_STATE_FILE",
    "STATE_FILE_ENV",
    "Actuation",
    "ControllerBusy",
    "GpuActuation",
    "GpuCapability",
    "GpuError",
    "GpuInvalidArgument",
    "GpuLost",
    "GpuNoPermission",
    "GpuNotSupported",
    "GpuUnknownError",
    "NvmlActuator",
    "NvmlDevices",
    "NvmlUnavailable",
    "PowerLimitState",
    "SavedLimit",
    "StateFileError",
    "default_state_file",
    "error_name",
    "nvml_error",
    "pid_alive",
    "read_state_file",
    "restore_saved_limits",
    "write_state_file",
]

log = get_logger(__name__)

STATE_FILE_ENV = "CARBONSYNC_CONTROL_STATE"
STATE_FORMAT = "carbonsync.power_limits"
STATE_VERSION = 1


def default_state_file() -> Path:
    """``$CARBONSYNC_CONTROL_STATE`` if set, else ``~/.cache/carbonsync/power_limits.json`` (read at each call)."""
    env = os.environ.get(STATE_FILE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "carbonsync" / "power_limits.json"


DEFAULT_STATE_FILE = default_state_file()


# --------------------------------------------------------------------------------------------------- errors

class GpuError(CarbonSyncError):
    """An NVML call failed (``code``: the NVML return code, ``index``: the GPU, ``call``: the NVML function)."""

    def __init__(self, message: str, *, code: int | None = None, index: int | None = None, call: str | None = None):
        super().__init__(message)
        self.code, self.index, self.call = code, index, call

    @property
    def code_name(self) -> str:
        return error_name(self.code) if self.code is not None else "unknown"


class GpuNotSupported(GpuError):
    """NVML_ERROR_NOT_SUPPORTED: the GPU lacks the feature (power management, energy counter, MIG query...)."""


class GpuNoPermission(GpuError):
    """NVML_ERROR_NO_PERMISSION: setting a power limit needs root (or CAP_SYS_ADMIN)."""


class GpuLost(GpuError):
    """NVML_ERROR_GPU_IS_LOST: the GPU fell off the bus or is otherwise unreachable.

    Raised by :meth:`NvmlActuator.apply`, ``actuation`` holds what was done on the other GPUs."""

    actuation: Actuation | None = None


class GpuInvalidArgument(GpuError, ValueError):
    """NVML_ERROR_INVALID_ARGUMENT: a bad index or handle, or a power limit outside the GPU's constraints."""


class NvmlUnavailable(GpuError):
    """NVML cannot be used on this machine (no library, no driver, not initialised, version mismatch)."""


class GpuUnknownError(GpuError):
    """Any other NVML return code (kept in ``code``)."""


class ControllerBusy(CarbonSyncError):
    """The state file belongs to another controller that is still running (or to another host)."""


class StateFileError(CarbonSyncError, ValueError):
    """A power-limit state file that is not valid JSON or lacks a field (the message names the field)."""


LOST_REASON = "GPU is lost"

_ERROR_NAMES: dict[int, str] = {
    value: key for key, value in vars(pynvml).items()
    if key.startswith("NVML_ERROR_") and isinstance(value, int)
}

_ERROR_CLASSES: dict[int, type[GpuError]] = {
    pynvml.NVML_ERROR_NOT_SUPPORTED: GpuNotSupported,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: GpuNotSupported,      # a driver too old for the call
    pynvml.NVML_ERROR_NO_PERMISSION: GpuNoPermission,
    pynvml.NVML_ERROR_GPU_IS_LOST: GpuLost,
    pynvml.NVML_ERROR_INVALID_ARGUMENT: GpuInvalidArgument,
    pynvml.NVML_ERROR_UNINITIALIZED: NvmlUnavailable,
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: NvmlUnavailable,
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: NvmlUnavailable,
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: NvmlUnavailable,
}


def error_name(code: int) -> str:
    """``NVML_ERROR_GPU_IS_LOST`` for 15; ``NVML_ERROR_<code>`` for a code pynvml does not name."""
    return _ERROR_NAMES.get(code, f"NVML_ERROR_{code}")


def nvml_error(exc: pynvml.NVMLError, *, index: int | None, call: str) -> GpuError:
    """The typed error for an ``NVMLError`` (by its ``.value``), naming the GPU index, the call and the code."""
    code = int(getattr(exc, "value", pynvml.NVML_ERROR_UNKNOWN))
    described = getattr(pynvml.NVMLError, "_errcode_to_string", {}).get(code)  # str(exc) may call into libnvidia-ml
    where = "NVML" if index is None else f"GPU {index}"
    message = f"{where}: {call} failed with {error_name(code)} ({code})" + (f": {described}" if described else "")
    cls = _ERROR_CLASSES.get(code, GpuUnknownError)
    return cls(message, code=code, index=index, call=call)


# ------------------------------------------------------------------------------------------- device layer

@dataclass(frozen=True)
class GpuCapability:
    """What one GPU allows: power limits in W, and why it cannot be controlled (``reason``, empty when it can).

    ``can_set`` is the permission to set a power limit, found by setting the current limit to itself once;
    it is False when that was not tried (no power management, MIG enabled, lost GPU)."""

    index: int
    name: str
    uuid: str
    power_management: bool
    min_w: float | None
    max_w: float | None
    default_w: float | None
    current_w: float | None
    can_set: bool
    mig: bool
    energy_counter: bool
    power_reading: bool = False
    reason: str = ""

    @property
    def controllable(self) -> bool:
        return not self.reason

    def clamp(self, power_w: float) -> tuple[float, bool]:
        """``power_w`` clamped to [min_w, max_w], and whether it had to be."""
        if self.min_w is None or self.max_w is None:
            return power_w, False
        clamped = min(max(power_w, self.min_w), self.max_w)
        return clamped, clamped != power_w


def _to_w(milli: float) -> float:
    return float(milli) / 1000.0


def _to_milli(watts: float) -> int:
    return int(round(watts * 1000.0))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlDevices:
    """The NVML device layer: GPUs by index, values in W and J, every NVML failure a :class:`GpuError`.

    ``library`` is ``pynvml`` or any object with its function names that raises ``pynvml.NVMLError(code)``.
    """

    def __init__(self, library: Any = pynvml) -> None:
        self.library = library
        self._handles: dict[int, Any] = {}
        self._initialized = False

    def _call(self, index: int | None, function: str, *args: Any) -> Any:
        try:
            return getattr(self.library, function)(*args)
        except pynvml.NVMLError as exc:
            raise nvml_error(exc, index=index, call=function) from exc

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._call(index, "nvmlDeviceGetHandleByIndex", index)
        return self._handles[index]

    def _device(self, index: int, function: str, *args: Any) -> Any:
        return self._call(index, function, self._handle(index), *args)

    # -- lifetime
    def init(self) -> None:
        """``nvmlInit``; any failure is :class:`NvmlUnavailable` (the code kept in ``.code``)."""
        try:
            self._call(None, "nvmlInit")
        except GpuError as exc:
            raise NvmlUnavailable(
                f"NVML is not available here ({exc.code_name}): the controller will run pause-only, without GPU "
                f"power caps [{exc}]", code=exc.code, call="nvmlInit") from exc
        self._handles.clear()
        self._initialized = True

    def shutdown(self) -> None:
        """``nvmlShutdown`` (errors logged, not raised: it runs on the way out)."""
        if not self._initialized:
            return
        self._initialized = False
        self._handles.clear()
        try:
            self._call(None, "nvmlShutdown")
        except GpuError as exc:
            log.debug("%s", exc)

    # -- queries, W and J
    def count(self) -> int:
        return int(self._call(None, "nvmlDeviceGetCount"))

    def name(self, index: int) -> str:
        return _text(self._device(index, "nvmlDeviceGetName"))

    def uuid(self, index: int) -> str:
        return _text(self._device(index, "nvmlDeviceGetUUID"))

    def power_limit_w(self, index: int) -> float:
        return _to_w(self._device(index, "nvmlDeviceGetPowerManagementLimit"))

    def limit_constraints_w(self, index: int) -> tuple[float, float]:
        low, high = self._device(index, "nvmlDeviceGetPowerManagementLimitConstraints")
        return _to_w(low), _to_w(high)

    def default_limit_w(self, index: int) -> float:
        return _to_w(self._device(index, "nvmlDeviceGetPowerManagementDefaultLimit"))

    def set_power_limit_w(self, index: int, watts: float) -> None:
        """Set the power limit (rounded to whole mW); NVML checks it against the constraints."""
        # nvmlDeviceSetPowerManagementLimit checks NVML's return code. pynvml's
        # nvmlDeviceSetPowerManagementLimit_v2 does not: it returns NVML_SUCCESS whatever the driver said, so a
        # refused cap (no permission, out of range) would pass silently. Never use _v2 here.
        self._device(index, "nvmlDeviceSetPowerManagementLimit", _to_milli(watts))

    def power_usage_w(self, index: int) -> float:
        return _to_w(self._device(index, "nvmlDeviceGetPowerUsage"))

    def total_energy_j(self, index: int) -> float:
        """Energy since the driver loaded (NVML's counter, Volta and newer)."""
        return _to_w(self._device(index, "nvmlDeviceGetTotalEnergyConsumption"))

    def mig_enabled(self, index: int) -> bool:
        current, _pending = self._device(index, "nvmlDeviceGetMigMode")
        return int(current) == int(getattr(pynvml, "NVML_DEVICE_MIG_ENABLE", 1))

    def uuid_indices(self) -> dict[str, int]:
        """UUID -> index of every reachable GPU (a lost one is left out)."""
        out: dict[str, int] = {}
        for index in range(self.count()):
            try:
                out[self.uuid(index)] = index
            except GpuError as exc:
                log.warning("%s", exc)
        return out

    # -- capabilities
    def capability(self, index: int) -> GpuCapability:
        """Probe one GPU; the only change it makes is setting the current limit to itself (the permission test)."""
        try:
            return self._probe(index)
        except GpuLost as exc:
            return GpuCapability(index, "?", "?", False, None, None, None, None, False, False, False, False,
                                 reason=f"{LOST_REASON} ({exc})")

    def _probe(self, index: int) -> GpuCapability:
        name, uuid = self.name(index), self.uuid(index)
        mig = self._supported(self.mig_enabled, index, False)
        energy = self._supported(lambda i: self.total_energy_j(i) >= 0, index, False)
        power_reading = self._supported(lambda i: self.power_usage_w(i) >= 0, index, False)
        try:
            min_w, max_w = self.limit_constraints_w(index)
            current_w, default_w = self.power_limit_w(index), self.default_limit_w(index)
        except GpuNotSupported:
            return GpuCapability(index, name, uuid, False, None, None, None, None, False, mig, energy, power_reading,
                                 reason="power management is not supported")
        cap = GpuCapability(index, name, uuid, True, min_w, max_w, default_w, current_w, False, mig, energy,
                            power_reading)
        if mig:
            return replace(cap, reason="MIG mode is enabled (a power cap would apply to every MIG instance on it)")
        try:
            self._device(index, "nvmlDeviceSetPowerManagementLimit", _to_milli(current_w))
        except GpuNoPermission:
            return replace(cap, reason="no permission to set the power limit (needs root or CAP_SYS_ADMIN)")
        except GpuNotSupported:
            return replace(cap, reason="setting the power limit is not supported")
        except GpuError as exc:
            return replace(cap, reason=f"the power limit cannot be set ({exc})")
        return replace(cap, can_set=True)

    def _supported(self, probe: Callable[[int], Any], index: int, default: Any) -> Any:
        try:
            return probe(index)
        except GpuNotSupported:
            return default

    def capabilities(self, indices: Iterable[int] | None = None) -> list[GpuCapability]:
        return [self.capability(i) for i in (range(self.count()) if indices is None else indices)]


# ----------------------------------------------------------------------------------------------- records

@dataclass(frozen=True)
class GpuActuation:
    """What happened on one GPU: the power asked for, the limit set (None: unchanged or failed), and why."""

    index: int
    uuid: str
    requested_w: float | None
    applied_w: float | None
    clamped: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Actuation:
    """What an actuator did with one decision (``gpus`` empty for actuators that touch no GPU)."""

    actuator: str
    time: Any
    state: str
    requested_w: float | None
    run: bool
    gpus: tuple[GpuActuation, ...] = ()
    pause_only: bool = False
    note: str = ""

    @property
    def errors(self) -> list[str]:
        return [g.error for g in self.gpus if g.error]

    def record(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["time"] = None if self.time is None else (
            self.time.isoformat() if hasattr(self.time, "isoformat") else str(self.time))
        return out


def actuation_for(decision: Decision, actuator: str, gpus: Sequence[GpuActuation] = (), *,
                  pause_only: bool = False, note: str = "") -> Actuation:
    state = getattr(decision.state, "value", decision.state)
    return Actuation(actuator, decision.time, str(state), decision.power_w, decision.run, tuple(gpus), pause_only, note)


# -------------------------------------------------------------------------------------------- state file

@dataclass(frozen=True)
class SavedLimit:
    uuid: str
    index: int
    original_w: float
    name: str = ""


@dataclass(frozen=True)
class PowerLimitState:
    """The state file: who changed the limits (pid, host, start time) and each GPU's original limit."""

    pid: int
    host: str
    started: str
    gpus: tuple[SavedLimit, ...] = field(default_factory=tuple)

    def record(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "pid": self.pid, "host": self.host,
                "started": self.started, "gpus": [asdict(g) for g in self.gpus]}


def write_state_file(state: PowerLimitState, path: str | Path) -> Path:
    """Write the state file atomically (a reader sees the old file or the new one)."""
    return write_json_atomic(state.record(), path)


def _field(obj: dict, key: str, kind: type | tuple[type, ...], path: Path, where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in obj:
        raise StateFileError(f"state file {path}: field '{name}' is missing")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise StateFileError(f"state file {path}: field '{name}' has the wrong type ({value!r})")
    return value


def read_state_file(path: str | Path) -> PowerLimitState:
    """Read and validate a state file (JSON only); :class:`StateFileError` names the field at fault."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"no power-limit state file at {path}")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateFileError(f"state file {path} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise StateFileError(f"state file {path}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("format") != STATE_FORMAT:
        raise StateFileError(f"state file {path}: field 'format' must be {STATE_FORMAT!r}, got {raw.get('format')!r}")
    if raw.get("version") != STATE_VERSION:
        raise StateFileError(f"state file {path}: field 'version' must be {STATE_VERSION}, got {raw.get('version')!r}")
    pid = _field(raw, "pid", int, path)
    host = _field(raw, "host", str, path)
    started = _field(raw, "started", str, path)
    entries = _field(raw, "gpus", list, path)
    gpus = []
    for k, entry in enumerate(entries):
        where = f"gpus[{k}]."
        if not isinstance(entry, dict):
            raise StateFileError(f"state file {path}: field 'gpus[{k}]' must be an object, got {entry!r}")
        uuid = _field(entry, "uuid", str, path, where)
        index = _field(entry, "index", int, path, where)
        original = _field(entry, "original_w", (int, float), path, where)
        if not math.isfinite(original) or original <= 0:
            raise StateFileError(f"state file {path}: field '{where}original_w' must be a positive number, got {original!r}")
        name = entry.get("name", "")
        gpus.append(SavedLimit(uuid, index, float(original), name if isinstance(name, str) else ""))
    return PowerLimitState(pid, host, started, tuple(gpus))


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def restore_saved_limits(devices: NvmlDevices, saved: Iterable[SavedLimit]) -> tuple[list[str], bool]:
    """Set each saved GPU (matched by UUID) back to its original limit on initialised ``devices``.

    Returns one line per GPU and whether every reachable GPU was restored (False: keep the state file)."""
    lines: list[str] = []
    ok = True
    by_uuid = devices.uuid_indices()
    for entry in saved:
        label = f"GPU {entry.uuid} ({entry.name or 'unnamed'}, index {entry.index} when saved)"
        index = by_uuid.get(entry.uuid)
        if index is None:
            lines.append(f"{label}: not found on this machine, not restored")
            continue
        try:
            current = devices.power_limit_w(index)
            if _to_milli(current) == _to_milli(entry.original_w):
                lines.append(f"GPU {index} ({entry.uuid}): power limit already at its original {entry.original_w:g} W")
            else:
                devices.set_power_limit_w(index, entry.original_w)
                lines.append(f"GPU {index} ({entry.uuid}): power limit {current:g} W -> {entry.original_w:g} W (original)")
        except GpuLost as exc:
            lines.append(f"GPU {index} ({entry.uuid}): lost, not restored ({exc})")
        except GpuError as exc:
            ok = False
            lines.append(f"GPU {index} ({entry.uuid}): not restored ({exc})")
    return lines, ok


# ---------------------------------------------------------------------------------------------- actuator

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class NvmlActuator:
    """Power caps on NVIDIA GPUs through NVML, with the original limits kept in a state file until restored.

    ``devices``: an :class:`NvmlDevices` or an NVML-like library (default: the real ``pynvml``);
    ``state_file``: where the original limits go (default :func:`default_state_file`); ``indices``: the GPUs to
    control (default: all that NVML lists). A decision's ``power_w`` applies to each GPU.
    """

    name = "nvml"

    def __init__(self, devices: NvmlDevices | Any = None, state_file: str | Path | None = None,
                 indices: Sequence[int] | None = None) -> None:
        if devices is None:
            devices = NvmlDevices()
        elif not isinstance(devices, NvmlDevices):
            devices = NvmlDevices(devices)
        self.devices: NvmlDevices = devices
        self.state_file = Path(state_file) if state_file is not None else default_state_file()
        self.indices = None if indices is None else list(indices)
        self._caps: list[GpuCapability] = []
        self._originals: dict[int, float] = {}       # index -> original W, controllable GPUs only
        self._lost: set[int] = set()
        self._energy_base: dict[int, float] = {}
        self._energy_last: dict[int, float] = {}
        self._final_energy: float | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._lock = threading.RLock()
        self._open = False

    # -- lifetime
    def open(self) -> NvmlActuator:
        """Initialise NVML, probe the GPUs, save the original limits; :class:`NvmlUnavailable` when NVML cannot run."""
        with self._lock:
            if self._open:
                return self
            self.devices.init()
            try:
                self._open_initialised()
            except BaseException:
                self.devices.shutdown()
                raise
            self._open = True
            return self

    def _open_initialised(self) -> None:
        self._recover_stale_state_file()
        self._caps = self.devices.capabilities(self.indices)
        self._lost = {c.index for c in self._caps if c.reason.startswith(LOST_REASON)}
        if not self._caps:
            log.warning("NVML lists no GPU: running pause-only, no power caps")
        for cap in self._caps:
            if not cap.controllable:
                log.warning("degrading to pause-only for GPU %d: %s", cap.index, cap.reason)
        self._originals = {c.index: float(c.current_w) for c in self._caps
                           if c.controllable and c.current_w is not None}
        self._energy_base = {}
        for cap in self._caps:
            if cap.energy_counter and cap.index not in self._lost:
                try:
                    self._energy_base[cap.index] = self.devices.total_energy_j(cap.index)
                except GpuError as exc:
                    if isinstance(exc, GpuLost):
                        self._lost.add(cap.index)
                    log.warning("%s: no energy reading for GPU %d", exc, cap.index)
        self._energy_last = {i: 0.0 for i in self._energy_base}
        self._final_energy = None
        if self._originals:
            by_index = {c.index: c for c in self._caps}
            state = PowerLimitState(
                pid=os.getpid(), host=socket.gethostname(), started=datetime.now(timezone.utc).isoformat(),
                gpus=tuple(SavedLimit(by_index[i].uuid, i, w, by_index[i].name) for i, w in self._originals.items()))
            write_state_file(state, self.state_file)   # before any limit changes
            log.info("NVML: controlling GPU(s) %s; original limits saved in %s",
                     ", ".join(f"{i} ({w:g} W)" for i, w in self._originals.items()), self.state_file)

    def _recover_stale_state_file(self) -> None:
        """A state file left by a controller that died without restoring: put its limits back first, so that the
        limits this run saves are the true originals. One of a live controller (or another host) is refused."""
        if not self.state_file.exists():
            return
        state = read_state_file(self.state_file)
        if state.host != socket.gethostname():
            raise ControllerBusy(f"state file {self.state_file} was written on host {state.host!r}, not this one "
                                 f"({socket.gethostname()!r}): set {STATE_FILE_ENV} to a per-host path")
        if state.pid != os.getpid() and pid_alive(state.pid):
            raise ControllerBusy(f"state file {self.state_file} belongs to a running controller (pid {state.pid}); "
                                 f"stop it, or give this one its own state file ({STATE_FILE_ENV})")
        log.warning("state file %s was left by pid %d (started %s) without restoring: restoring its limits first",
                    self.state_file, state.pid, state.started)
        lines, ok = restore_saved_limits(self.devices, state.gpus)
        for line in lines:
            log.warning("%s", line)
        if not ok:
            raise CarbonSyncError(f"could not restore the limits saved in {self.state_file}; "
                                 "run `carbonsync control restore` with the needed permissions")
        self.state_file.unlink(missing_ok=True)

    def restore(self) -> None:
        """Put every GPU back to its original limit, delete the state file, shut NVML down (idempotent)."""
        with self._lock:
            if not self._open:
                return
            self._final_energy = self._energy_sum(raise_lost=False)
            ok = True
            for index, original in self._originals.items():
                if index in self._lost:
                    log.warning("GPU %d is lost: its limit (%g W originally) cannot be restored", index, original)
                    continue
                try:
                    current = self.devices.power_limit_w(index)
                    if _to_milli(current) != _to_milli(original):
                        self.devices.set_power_limit_w(index, original)
                        log.info("GPU %d: power limit restored to %g W", index, original)
                except GpuLost as exc:
                    self._lost.add(index)
                    log.warning("%s: its limit cannot be restored", exc)
                except GpuError as exc:
                    ok = False
                    log.error("%s: the original limit (%g W) was not restored", exc, original)
            if ok:
                self.state_file.unlink(missing_ok=True)
            else:
                log.error("state file %s kept: run `carbonsync control restore` to retry", self.state_file)
            self.uninstall_signal_handlers()
            self.devices.shutdown()
            self._open = False

    def __enter__(self) -> NvmlActuator:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    # -- signals
    def install_signal_handlers(self, signals: Sequence[int] = _SIGNALS) -> None:
        """On SIGTERM or SIGINT restore the limits, then behave as before: call the previous handler, or with the
        default disposition die of the signal. A signal set to be ignored is left alone. Main thread only."""
        for signum in signals:
            if signum in self._previous_handlers:
                continue
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue
            try:
                signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread
                log.warning("signal handlers can only be installed from the main thread: limits are restored "
                            "on exit and by `carbonsync control restore`, not on %s", signal.Signals(signum).name)
                return
            self._previous_handlers[signum] = previous

    def uninstall_signal_handlers(self) -> None:
        """Put back the handlers that :meth:`install_signal_handlers` replaced."""
        for signum, previous in list(self._previous_handlers.items()):
            try:
                if signal.getsignal(signum) == self._on_signal:
                    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            except ValueError:  # pragma: no cover - not the main thread
                continue
            del self._previous_handlers[signum]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        log.warning("%s received: restoring the GPU power limits", signal.Signals(signum).name)
        self.restore()   # also puts the previous handler back
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    # -- control
    def _require_open(self) -> None:
        if not self._open:
            raise CarbonSyncError("the NVML actuator is not open: call open() (or use it as a context manager)")

    @property
    def pause_only(self) -> bool:
        """True when no GPU can be capped (also before :meth:`open`)."""
        return not any(i not in self._lost for i in self._originals)

    def capabilities(self) -> list[GpuCapability]:
        return list(self._caps)

    def apply(self, decision: Decision) -> Actuation:
        """Set ``decision.power_w`` (clamped to each GPU's constraints) on every controllable GPU.

        ``power_w`` None leaves the limits as they are. A GPU found lost raises :class:`GpuLost` once (after the
        other GPUs are set; the record is in the exception's ``actuation``) and is left out from then on."""
        with self._lock:
            self._require_open()
            requested = decision.power_w
            if requested is not None and (not math.isfinite(requested) or requested <= 0):
                raise InvalidValuesError(f"decision power_w must be a positive finite number of watts, got {requested!r}")
            results: list[GpuActuation] = []
            lost: list[GpuLost] = []
            for cap in self._caps:
                if cap.index not in self._originals or cap.index in self._lost:
                    continue
                if requested is None:
                    results.append(GpuActuation(cap.index, cap.uuid, None, None))
                    continue
                target, clamped = cap.clamp(requested)
                try:
                    current = self.devices.power_limit_w(cap.index)
                    if _to_milli(current) != _to_milli(target):
                        self.devices.set_power_limit_w(cap.index, target)
                        log.info("GPU %d: power limit %g W -> %g W (%s%s)", cap.index, current, target,
                                 getattr(decision.state, "value", decision.state),
                                 f", {requested:g} W requested" if clamped else "")
                    else:
                        log.debug("GPU %d: power limit already %g W", cap.index, target)
                    results.append(GpuActuation(cap.index, cap.uuid, requested, target, clamped))
                except GpuLost as exc:
                    self._lost.add(cap.index)
                    lost.append(exc)
                    log.error("%s: GPU %d is left out from now on", exc, cap.index)
                    results.append(GpuActuation(cap.index, cap.uuid, requested, None, clamped, str(exc)))
                except GpuError as exc:
                    log.warning("%s", exc)
                    results.append(GpuActuation(cap.index, cap.uuid, requested, None, clamped, str(exc)))
            actuation = actuation_for(decision, self.name, results, pause_only=self.pause_only)
            if lost:
                error = GpuLost("; ".join(str(e) for e in lost), code=lost[0].code, index=lost[0].index,
                                call=lost[0].call)
                error.actuation = actuation
                raise error
            return actuation

    # -- measurement
    def _energy_sum(self, raise_lost: bool) -> float | None:
        if not self._energy_base:
            return None
        lost: list[GpuLost] = []
        for index, base in self._energy_base.items():
            if index in self._lost:
                continue
            try:
                self._energy_last[index] = self.devices.total_energy_j(index) - base
            except GpuLost as exc:
                self._lost.add(index)
                lost.append(exc)
                log.error("%s: GPU %d is left out from now on (its energy so far still counts)", exc, index)
            except GpuError as exc:
                log.warning("%s", exc)
        if lost and raise_lost:
            raise lost[0]
        return float(sum(self._energy_last.values()))

    def energy_j(self) -> float | None:
        """Energy of the GPUs with an NVML energy counter since :meth:`open`, J (None: no counter; after
        :meth:`restore`, the total at that moment). A lost GPU keeps the energy counted before it was lost."""
        with self._lock:
            if not self._open:
                return self._final_energy
            return self._energy_sum(raise_lost=True)

    def power_w(self) -> float | None:
        """Current total draw of the GPUs that report it, W (None: none does, or not open)."""
        with self._lock:
            if not self._open:
                return None
            total, seen, lost = 0.0, False, []
            for cap in self._caps:
                if not cap.power_reading or cap.index in self._lost:
                    continue
                try:
                    total += self.devices.power_usage_w(cap.index)
                    seen = True
                except GpuLost as exc:
                    self._lost.add(cap.index)
                    lost.append(exc)
                except GpuError as exc:
                    log.warning("%s", exc)
            if lost:
                raise lost[0]
            return total if seen else None
