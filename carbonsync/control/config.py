"""The ``control`` configuration node: whether and how a training run follows the grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from carbonsync.control.policies import known_policies
from carbonsync.core.checks import at_least, fail, one_of, positive

__all__ = ["ACTUATOR_CHOICES", "ControlConfig", "SignalSpec"]

ACTUATOR_CHOICES = ("auto", "nvml", "dry-run", "pause-only")


@dataclass
class SignalSpec:
    """One grid signal the controller reads: a provider of :mod:`carbonsync.signals` (``""``: none), the zone,
    the kind (``""``: the provider's first), and for ``provider: file`` the recording's ``path`` (for
    ``carbonsync``: the forecast store)."""

    provider: str = ""
    zone: str = ""
    kind: str = ""
    path: str = ""


@dataclass
class ControlConfig:
    """``carbonsync train-backbone control.enabled=true`` runs the training loop under the controller.

    ``replay_start`` (ISO time) replays recorded signals on a simulated clock that starts there and advances
    ``replay_step_s`` per training step (a pause then costs no wall time); empty: the wall clock.
    ``deadline_h`` (0: none) counts from the start; ``step_s`` is the full-power time of one step (0: measured).
    Decisions are appended to ``decisions`` (default ``<run_dir>/control/decisions.jsonl``).
    """

    enabled: bool = False
    policy: str = "engine"
    price: SignalSpec = field(default_factory=SignalSpec)
    carbon: SignalSpec = field(default_factory=SignalSpec)
    actuator: str = "auto"            # auto (NVML, else pause-only), nvml, dry-run, pause-only
    interval_s: float = 300.0
    poll_s: float = 30.0
    forecast_h: float = 24.0
    deadline_h: float = 0.0
    step_s: float = 0.0
    replay_start: str = ""
    replay_step_s: float = 60.0
    decisions: str = ""
    state_file: str = ""              # where original GPU power limits are kept for `carbonsync control restore`

    def __post_init__(self) -> None:
        positive(self, "interval_s", "poll_s", "forecast_h", "replay_step_s")
        at_least(self, 0.0, "deadline_h", "step_s")
        one_of(self, "actuator", ACTUATOR_CHOICES)
        one_of(self, "policy", known_policies())
        if self.replay_start:
            try:
                pd.Timestamp(self.replay_start)
            except ValueError:
                raise fail("replay_start", self.replay_start, "must be an ISO time such as 2024-06-01T00:00") from None
        if self.enabled and not (self.price.provider or self.carbon.provider):
            raise fail("price.provider", self.price.provider, "the controller needs a price or a carbon signal "
                       "(e.g. control.carbon.provider=file control.carbon.path=... control.carbon.zone=caiso)")
