"""An in-memory NVML with pynvml's function names, raising the real ``pynvml.NVMLError`` with NVML's codes.

Each :class:`FakeGpu` keeps its limits in mW and energy in mJ, as NVML does. Setting a limit outside the
constraints gives NVML_ERROR_INVALID_ARGUMENT, without permission NVML_ERROR_NO_PERMISSION, without power
management NVML_ERROR_NOT_SUPPORTED; a lost GPU answers NVML_ERROR_GPU_IS_LOST to every call; before
``nvmlInit`` (or after the last ``nvmlShutdown``) every call gives NVML_ERROR_UNINITIALIZED. :meth:`advance`
runs the simulated GPUs for some seconds: each draws ``min(draw_mw, limit_mw)`` and its energy counter grows.

With ``path`` the fake's state lives in a JSON file, saved after every change, so that a child process and
the test that spawned it see the same GPUs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pynvml


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA A100-SXM4-80GB"
    limit_mw: int = 400_000
    min_mw: int = 100_000
    max_mw: int = 400_000
    default_mw: int = 400_000
    draw_mw: int = 300_000           # what it would draw uncapped
    energy_mj: int = 5_000_000       # the counter since "driver load"
    power_management: bool = True
    permission: bool = True
    mig: bool = False
    mig_supported: bool = True
    energy_counter: bool = True
    power_reading: bool = True
    lost: bool = False


@dataclass(frozen=True)
class FakeHandle:
    index: int


@dataclass
class FakeNvml:
    gpus: list[FakeGpu] = field(default_factory=list)
    init_error: int | None = None    # e.g. pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    path: str | None = None          # JSON file holding the state (saved after each change)
    initialized: int = 0
    calls: list[str] = field(default_factory=list)

    # -- persistence
    def save(self, path: str | Path | None = None) -> None:
        target = Path(path or self.path)  # type: ignore[arg-type]
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"gpus": [asdict(g) for g in self.gpus], "init_error": self.init_error}))
        tmp.replace(target)

    @classmethod
    def load(cls, path: str | Path) -> FakeNvml:
        raw = json.loads(Path(path).read_text())
        return cls([FakeGpu(**g) for g in raw["gpus"]], init_error=raw["init_error"], path=str(path))

    def _changed(self) -> None:
        if self.path:
            self.save()

    # -- simulation
    def advance(self, seconds: float) -> None:
        """Run every GPU for ``seconds`` at its capped draw (energy counters grow)."""
        for gpu in self.gpus:
            if not gpu.lost:
                gpu.energy_mj += int(round(min(gpu.draw_mw, gpu.limit_mw) * seconds))
        self._changed()

    def limits_w(self) -> list[float]:
        return [g.limit_mw / 1000 for g in self.gpus]

    # -- helpers
    def _check_init(self, call: str) -> None:
        self.calls.append(call)
        if not self.initialized:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: Any, call: str) -> FakeGpu:
        self._check_init(call)
        if not isinstance(handle, FakeHandle) or not 0 <= handle.index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu

    def _power_gpu(self, handle: Any, call: str) -> FakeGpu:
        gpu = self._gpu(handle, call)
        if not gpu.power_management:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    # -- pynvml's functions
    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self._check_init("nvmlShutdown")
        self.initialized -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._check_init("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._check_init("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return FakeHandle(index)

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        return self._power_gpu(handle, "nvmlDeviceGetPowerManagementLimit").limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]:
        gpu = self._power_gpu(handle, "nvmlDeviceGetPowerManagementLimitConstraints")
        return [gpu.min_mw, gpu.max_mw]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        return self._power_gpu(handle, "nvmlDeviceGetPowerManagementDefaultLimit").default_mw

    def nvmlDeviceSetPowerManagementLimit(self, handle: Any, limit: int) -> None:
        gpu = self._power_gpu(handle, "nvmlDeviceSetPowerManagementLimit")
        if not gpu.permission:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)
        if not isinstance(limit, int) or not gpu.min_mw <= limit <= gpu.max_mw:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu.limit_mw = limit
        self._changed()

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetPowerUsage")
        if not gpu.power_reading:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return min(gpu.draw_mw, gpu.limit_mw)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if not gpu.energy_counter:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.energy_mj

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        gpu = self._gpu(handle, "nvmlDeviceGetMigMode")
        if not gpu.mig_supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig else pynvml.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]


def fleet() -> FakeNvml:
    """A mixed fleet: GPU 0 normal, 1 without power management, 2 with MIG enabled, 3 without permission."""
    return FakeNvml([
        FakeGpu("GPU-0000-normal", limit_mw=350_000),
        FakeGpu("GPU-0001-nopm", name="NVIDIA GeForce GT 710", power_management=False, energy_counter=False,
                power_reading=False, mig_supported=False),
        FakeGpu("GPU-0002-mig", mig=True),
        FakeGpu("GPU-0003-noperm", permission=False),
    ])
