"""What the controller decides, as data: states, reason codes and the decision record every part shares.

The decision engine (:mod:`carbonsync.control.engine`) produces a :class:`Decision`; actuators
(:mod:`carbonsync.control.actuators`) apply its ``power_w``; the training integrations
(:mod:`carbonsync.control.training`) pause while ``run`` is False. A decision is a structured record (time,
inputs, score, state, action, reason code, thresholds) and a plain-words sentence, :attr:`Decision.sentence`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import pandas as pd

__all__ = ["Action", "Decision", "Reason", "State"]


class State(str, Enum):
    """GREEN runs at full power, YELLOW under a power cap, RED paused (or at minimum power)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class Action(str, Enum):
    BOOST = "boost"     # to GREEN
    CAP = "cap"         # to YELLOW
    PAUSE = "pause"     # to RED
    HOLD = "hold"       # no change


class Reason(str, Enum):
    """Why a decision is what it is (one code each)."""

    START = "start"                              # the first decision of a run
    SCORE_BELOW_GREEN = "score_below_green"      # clean and cheap: full power
    SCORE_ABOVE_RED = "score_above_red"          # dirty or expensive: pause
    SCORE_IN_BAND = "score_in_band"              # between the thresholds: capped
    HYSTERESIS = "hysteresis"                    # past a threshold but not past its band: stay
    DWELL = "dwell"                              # the minimum dwell time has not passed: stay
    SPIKE_TOO_SHORT = "spike_too_short"          # the forecast ends the spike before a pause would pay off
    DIP_TOO_SHORT = "dip_too_short"              # the forecast ends the dip before a resume would pay off
    DEADLINE = "deadline"                        # the remaining slack forces full power
    NO_SIGNAL = "no_signal"                      # no usable signal: run at full power (fail safe)
    FORECAST_PLAN = "forecast_plan"              # the plan over the forecast to the deadline chose this state


@dataclass(frozen=True)
class Decision:
    """One decision of the controller (all times naive UTC)."""

    time: pd.Timestamp
    state: State
    previous: State | None
    action: Action
    reason: Reason
    power_w: float | None            # the cap to apply (None: leave the GPU's limit as it is)
    run: bool                        # False: the training loop pauses at its next step boundary
    score: float | None = None       # alpha * price_norm + beta * carbon_norm, in [0, 1]
    inputs: dict[str, float | None] = field(default_factory=dict)      # price, carbon, price_norm, carbon_norm
    thresholds: dict[str, float] = field(default_factory=dict)        # green, red, band
    expected_change: pd.Timestamp | None = None   # when the forecast says the state will change
    slack_h: float | None = None     # deadline slack at full power, hours
    sentence: str = ""

    @property
    def changed(self) -> bool:
        return self.previous is not None and self.state != self.previous

    def record(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict (times ISO strings, enums by value)."""
        out = asdict(self)
        for key in ("time", "expected_change"):
            out[key] = None if out[key] is None else pd.Timestamp(out[key]).isoformat()
        for key in ("state", "previous", "action", "reason"):
            out[key] = None if out[key] is None else out[key].value
        return out

    def to_json(self) -> str:
        return json.dumps(self.record(), sort_keys=True)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Decision:
        """The decision a :meth:`record` (or its JSON) describes."""
        out = dict(record)
        for key in ("time", "expected_change"):
            out[key] = None if out.get(key) is None else pd.Timestamp(out[key])
        for key, kind in (("state", State), ("previous", State), ("action", Action), ("reason", Reason)):
            out[key] = None if out.get(key) is None else kind(out[key])
        return cls(**out)
