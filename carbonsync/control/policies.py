"""Control policies behind one protocol and a registry: the decision engine and the references it is judged by.

- ``continuous``: full power all the time (the prototype's baseline);
- ``two_state``: the prototype's rule: boost to ``green_w`` when the price and the carbon signal are both at or
  below their thresholds ("clean and cheap"), otherwise pause at ``red_w``; thresholds are absolute, or by
  default the medians of the past week (so it works in any market); it knows no deadline;
- ``engine`` and ``engine_forecast``: :class:`~carbonsync.control.engine.Engine` without and with forecasts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from carbonsync.control.decision import Action, Decision, Reason, State
from carbonsync.control.engine import Engine, EngineConfig, JobState, Observation, PowerProfile, RollingHistory
from carbonsync.core.errors import ConfigError

__all__ = ["ContinuousPolicy", "Policy", "TwoStatePolicy", "get_policy", "known_policies", "register_policy"]


@runtime_checkable
class Policy(Protocol):
    """Decides a state for each observation (as :meth:`Engine.decide` does)."""

    name: str
    profile: PowerProfile

    def decide(self, obs: Observation, job: JobState) -> Decision: ...

    def observe(self, time: pd.Timestamp, price: float | None = None, carbon: float | None = None) -> None: ...


class ContinuousPolicy:
    """Full power, always."""

    name = "continuous"

    def __init__(self, profile: PowerProfile | None = None) -> None:
        self.profile, self._started = profile or PowerProfile(), False

    def observe(self, time: pd.Timestamp, price: float | None = None, carbon: float | None = None) -> None:
        return None

    def decide(self, obs: Observation, job: JobState) -> Decision:
        previous = State.GREEN if self._started else None
        self._started = True
        return Decision(time=pd.Timestamp(obs.time), state=State.GREEN, previous=previous,
                        action=Action.HOLD if previous else Action.BOOST, reason=Reason.START if previous is None
                        else Reason.SCORE_BELOW_GREEN, power_w=self.profile.green_w, run=True,
                        inputs={"price": obs.price, "carbon": obs.carbon},
                        sentence=f"{obs.time:%Y-%m-%d %H:%M}: full power (the continuous baseline).")


class TwoStatePolicy:
    """The prototype: boost when clean and cheap, else pause at ``red_w`` (thresholds absolute or weekly medians)."""

    name = "two_state"

    def __init__(self, profile: PowerProfile | None = None, price_threshold: float | None = None,
                 carbon_threshold: float | None = None, window: pd.Timedelta | str = "7D") -> None:
        self.profile = profile or PowerProfile()
        self.price_threshold, self.carbon_threshold = price_threshold, carbon_threshold
        self.history = {"price": RollingHistory(window), "carbon": RollingHistory(window)}
        self.state: State | None = None

    def observe(self, time: pd.Timestamp, price: float | None = None, carbon: float | None = None) -> None:
        for name, value in (("price", price), ("carbon", carbon)):
            if value is not None and np.isfinite(value):
                self.history[name].add(pd.Timestamp(time), float(value))

    def _threshold(self, name: str, fixed: float | None) -> float | None:
        if fixed is not None:
            return fixed
        values = self.history[name].values()
        return float(np.median(values)) if values.size else None

    def decide(self, obs: Observation, job: JobState) -> Decision:
        self.observe(obs.time, obs.price, obs.carbon)
        limits = {"price": self._threshold("price", self.price_threshold),
                  "carbon": self._threshold("carbon", self.carbon_threshold)}
        good = all(value is None or limits[name] is None or value <= limits[name]
                   for name, value in (("price", obs.price), ("carbon", obs.carbon)))
        state = State.GREEN if good else State.RED
        previous, self.state = self.state, state
        action = Action.HOLD if state == previous else (Action.BOOST if good else Action.PAUSE)
        verb = f"boost at {self.profile.green_w:.0f} W" if good else f"pause at {self.profile.red_w:.0f} W"
        return Decision(time=pd.Timestamp(obs.time), state=state, previous=previous, action=action,
                        reason=Reason.SCORE_BELOW_GREEN if good else Reason.SCORE_ABOVE_RED,
                        power_w=self.profile.green_w if good else self.profile.red_w, run=good or not self.profile.pause,
                        inputs={"price": obs.price, "carbon": obs.carbon},
                        thresholds={k: v for k, v in limits.items() if v is not None},
                        sentence=f"{obs.time:%Y-%m-%d %H:%M}: {verb} (two-state rule; thresholds {limits}).")


_POLICIES: dict[str, Callable[..., Policy]] = {}


def register_policy(name: str, factory: Callable[..., Policy], *, replace: bool = False) -> None:
    if name in _POLICIES and not replace:
        raise ConfigError(f"a control policy named '{name}' is already registered")
    _POLICIES[name] = factory


def known_policies() -> tuple[str, ...]:
    return tuple(_POLICIES)


def get_policy(name: str, profile: PowerProfile | None = None, **options: Any) -> Policy:
    """A new policy ``name`` for ``profile``; ``options`` go to its factory (the engine's: EngineConfig fields)."""
    if name not in _POLICIES:
        raise ConfigError(f"unknown control policy '{name}'; known: {', '.join(_POLICIES)}")
    return _POLICIES[name](profile=profile, **options)


def _engine(profile: PowerProfile | None = None, use_forecast: bool = False, **options: Any) -> Engine:
    engine = Engine(EngineConfig(use_forecast=use_forecast, **options), profile)
    engine.name = "engine_forecast" if use_forecast else "engine"
    return engine


register_policy("continuous", ContinuousPolicy)
register_policy("two_state", TwoStatePolicy)
register_policy("engine", lambda profile=None, **o: _engine(profile, use_forecast=False, **o))
register_policy("engine_forecast", lambda profile=None, **o: _engine(profile, use_forecast=True, **o))
