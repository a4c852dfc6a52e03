"""Job power profiles from published power-limit measurements: throughput and power draw at each GPU power cap.

:data:`ZEUS_V100_RESNET50` is a measured power-limit sweep of ResNet-50 training on ImageNet (batch size 256,
Adadelta) on one NVIDIA V100, from the trace released with Zeus (You, Chung and Chowdhury, "Zeus:
Understanding and Optimizing GPU Energy Consumption of DNN Training", USENIX NSDI 2023), file
``ml-energy/zeus@43297f6:examples/research_reproducibility/zeus_nsdi23/trace/summary_power_v100.csv``: for each
power limit, the measured time per epoch and the average power drawn (the rows are copied unchanged). The
trace has no ResNet-18; ResNet-50 is its nearest convolutional image classifier, so
:func:`resnet18_like_profile` uses its curve for a "ResNet-18-like" job: relative throughput is epoch rate at a
cap over epoch rate at the highest cap.

The prototype's levels are the V100's power-limit range: boost at 250 W, pause at 100 W. The YELLOW level is
the cap of least energy per epoch in the sweep unless another is chosen. Two quantities are not in the trace
and are assumptions, stated as defaults: the draw of a paused GPU that keeps its CUDA context (``idle_w``) and
the full-power work lost at each resume of a paused loop (``pause_overhead_h``; the in-place pause of
:mod:`carbonsync.control.training` keeps model, optimiser and data loader, so only the loader's prefetch is lost).

``accounting="cap"`` counts each state's energy at its cap, as the prototype describes its levels;
``accounting="draw"`` at the trace's measured average draw under that cap (below the cap, most at high caps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from carbonsync.control.engine import PowerProfile
from carbonsync.core.errors import ConfigError

__all__ = ["PowerCurve", "ZEUS_V100_RESNET50", "resnet18_like_profile"]


@dataclass(frozen=True)
class PowerCurve:
    """A measured power-limit sweep: ``caps_w``, the seconds per unit of work at each, the average draw (W)."""

    name: str
    source: str
    caps_w: tuple[float, ...]
    seconds_per_unit: tuple[float, ...]
    draw_w: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.caps_w) == len(self.seconds_per_unit) == len(self.draw_w) >= 2:
            raise ConfigError(f"PowerCurve {self.name}: caps_w, seconds_per_unit and draw_w need one value per cap "
                              f"(at least two); got {len(self.caps_w)}, {len(self.seconds_per_unit)}, {len(self.draw_w)}")
        if any(b <= a for a, b in zip(self.caps_w, self.caps_w[1:], strict=False)):
            raise ConfigError(f"PowerCurve {self.name}: caps_w must increase, got {self.caps_w}")
        if min(self.seconds_per_unit) <= 0 or min(self.draw_w) <= 0:
            raise ConfigError(f"PowerCurve {self.name}: times and draws must be positive")

    def relative_rate(self, cap_w: float) -> float:
        """Throughput at ``cap_w`` over throughput at the highest cap (a cap of the sweep)."""
        i = self._index(cap_w)
        return self.seconds_per_unit[-1] / self.seconds_per_unit[i]

    def draw(self, cap_w: float) -> float:
        """Measured average draw (W) under ``cap_w`` (a cap of the sweep)."""
        return self.draw_w[self._index(cap_w)]

    def energy_per_unit(self, cap_w: float) -> float:
        """Measured energy (J) per unit of work under ``cap_w``."""
        i = self._index(cap_w)
        return self.draw_w[i] * self.seconds_per_unit[i]

    def most_efficient_cap(self) -> float:
        """The cap of least measured energy per unit of work."""
        return self.caps_w[int(np.argmin([self.energy_per_unit(c) for c in self.caps_w]))]

    def table(self) -> list[dict[str, float]]:
        """One row per cap: cap, relative throughput, draw and energy per unit relative to the highest cap."""
        top = self.energy_per_unit(self.caps_w[-1])
        return [{"cap_w": c, "relative_throughput": round(self.relative_rate(c), 4), "draw_w": round(self.draw(c), 2),
                 "relative_energy_per_work": round(self.energy_per_unit(c) / top, 4)} for c in self.caps_w]

    def _index(self, cap_w: float) -> int:
        hits = [i for i, c in enumerate(self.caps_w) if abs(c - cap_w) < 1e-9]
        if not hits:
            raise ConfigError(f"PowerCurve {self.name}: cap {cap_w} W is not in the sweep {self.caps_w}")
        return hits[0]


ZEUS_V100_RESNET50 = PowerCurve(
    name="zeus-v100-resnet50-imagenet-b256",
    source=("You, Chung & Chowdhury, 'Zeus: Understanding and Optimizing GPU Energy Consumption of DNN Training', "
            "USENIX NSDI 2023; trace ml-energy/zeus@43297f6:examples/research_reproducibility/zeus_nsdi23/trace/"
            "summary_power_v100.csv, rows imagenet,resnet50,256,adadelta (time_per_epoch s, average_power W)"),
    caps_w=(100.0, 125.0, 150.0, 175.0, 200.0, 225.0, 250.0),
    seconds_per_unit=(6781.173333333332, 5064.97, 4148.66, 3852.1800000000003, 3700.973333333334, 3584.3033333333333,
                      3514.986666666666),
    draw_w=(98.38240555274153, 121.9660191434676, 144.59474877795884, 166.37217540170334, 184.94427296655326,
            205.43829852803177, 220.25029530245453),
)

IDLE_W = 40.0             # assumption: a paused V100 holding its CUDA context (not in the trace)
PAUSE_OVERHEAD_H = 0.01   # assumption: full-power work lost per resume of an in-place pause


def resnet18_like_profile(curve: PowerCurve = ZEUS_V100_RESNET50, *, green_cap_w: float = 250.0,
                          yellow_cap_w: float | None = None, red_cap_w: float = 100.0, accounting: str = "cap",
                          pause: bool = True, idle_w: float = IDLE_W,
                          pause_overhead_h: float = PAUSE_OVERHEAD_H) -> PowerProfile:
    """The job's :class:`PowerProfile`: GREEN at ``green_cap_w`` (rate 1), YELLOW at ``yellow_cap_w`` (default the
    curve's most efficient cap) at its measured relative throughput, RED a pause drawing ``idle_w`` (``red_cap_w``
    its nominal cap) or, with ``pause=False``, a run at ``red_cap_w`` at its measured throughput. Rates are
    relative to ``green_cap_w``; ``accounting`` as the module docstring says."""
    if accounting not in ("cap", "draw"):
        raise ConfigError(f"resnet18_like_profile accounting='{accounting}': must be 'cap' or 'draw'")
    yellow = curve.most_efficient_cap() if yellow_cap_w is None else float(yellow_cap_w)
    if not red_cap_w <= yellow <= green_cap_w:
        raise ConfigError(f"resnet18_like_profile: need red_cap_w <= yellow_cap_w <= green_cap_w; got {red_cap_w}, "
                          f"{yellow}, {green_cap_w}")
    top = curve.relative_rate(green_cap_w)
    watts = (lambda c: float(c)) if accounting == "cap" else curve.draw
    red_w, red_rate = (float(red_cap_w), 0.0) if pause else (watts(red_cap_w), curve.relative_rate(red_cap_w) / top)
    return PowerProfile(green_w=watts(green_cap_w), green_rate=1.0, yellow_w=watts(yellow),
                        yellow_rate=curve.relative_rate(yellow) / top, red_w=red_w, red_rate=red_rate,
                        idle_w=float(idle_w), pause=pause, pause_overhead_h=float(pause_overhead_h))
