"""A controlled job replayed on recorded price and carbon traces, and the offline optimum it is judged against.

:func:`replay_policy` steps a :class:`~carbonsync.control.policies.Policy` through a trace (a frame indexed by
regular naive-UTC times with ``price`` in currency/MWh and ``carbon`` in g CO2e/kWh): at each step it builds
the :class:`~carbonsync.control.engine.Observation` (with a forecast from ``forecast_fn`` when given), asks
for a decision and integrates the job under it for one step: energy ``watts(state) * dt``, progress
``rate(state) * dt``, and each resume from a pause costs ``pause_overhead_h`` of full-power work. Before the
job starts, ``warmup`` of trace history is fed to :meth:`Policy.observe`. Cost is energy times price,
emissions energy times carbon.

:func:`offline_optimum` is the programme over the fraction of each step spent in each state (HiGHS via
SciPy), with full knowledge of the trace, the same work and deadline, and no pause overhead (so it is a lower
bound on any policy's objective). The objective of both is the one the engine's weights set:
``alpha * cost / cost_continuous + beta * emissions / emissions_continuous``. Paused GPUs draw ``idle_w``
until the work is done, nothing after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from carbonsync.control.decision import Decision, State
from carbonsync.control.engine import JobState, Observation, PowerProfile, cheapest_schedule
from carbonsync.control.policies import Policy
from carbonsync.core.errors import CarbonSyncError

__all__ = ["ControlReplayError", "ReplayResult", "objective", "offline_optimum", "replay_policy"]

HOUR = pd.Timedelta(hours=1)
ForecastFn = Callable[[pd.Timestamp], pd.DataFrame | None]


class ControlReplayError(CarbonSyncError, ValueError):
    """A trace or job that cannot be replayed (named field or time)."""


@dataclass
class ReplayResult:
    """Totals of one replayed job; ``completion_h`` from the start (inf when it never finished)."""

    policy: str
    cost: float
    emissions_kg: float
    energy_kwh: float
    completion_h: float
    deadline_met: bool
    pauses: int = 0
    state_hours: dict[str, float] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)

    def summary(self) -> dict[str, float | bool | int | dict]:
        return {"cost": self.cost, "emissions_kg": self.emissions_kg, "energy_kwh": self.energy_kwh,
                "completion_h": self.completion_h, "deadline_met": self.deadline_met, "pauses": self.pauses,
                "state_hours": self.state_hours}


def _check_trace(trace: pd.DataFrame) -> pd.Timedelta:
    if not isinstance(trace.index, pd.DatetimeIndex) or len(trace) < 2:
        raise ControlReplayError("the trace needs a DatetimeIndex of at least two times")
    missing = [c for c in ("price", "carbon") if c not in trace.columns]
    if missing:
        raise ControlReplayError(f"the trace lacks column(s) {missing}; it has {list(trace.columns)}")
    steps = np.diff(trace.index.values)
    if not (steps == steps[0]).all():
        raise ControlReplayError(f"the trace's times are not regular (first irregular step at "
                                 f"{trace.index[1 + int(np.flatnonzero(steps != steps[0])[0])]})")
    bad = trace[["price", "carbon"]].isna().any(axis=1)
    if bad.any():
        raise ControlReplayError(f"the trace has missing price or carbon at {trace.index[bad][0]}")
    return pd.Timedelta(steps[0])


def replay_policy(policy: Policy, trace: pd.DataFrame, work_h: float, start: pd.Timestamp,
                  deadline: pd.Timestamp | None, *, warmup: pd.Timedelta | str = "7D",
                  forecast_fn: ForecastFn | None = None, keep_decisions: bool = False) -> ReplayResult:
    """Run ``work_h`` hours of full-power work from ``start`` under ``policy`` on ``trace`` (see the module
    docstring); the replay ends when the work is done or the trace ends."""
    dt = _check_trace(trace)
    profile: PowerProfile = policy.profile
    start = pd.Timestamp(start)
    past = trace[(trace.index >= start - pd.Timedelta(warmup)) & (trace.index < start)]
    for t, row in past.iterrows():
        policy.observe(t, float(row["price"]), float(row["carbon"]))
    live = trace[trace.index >= start]
    if live.empty:
        raise ControlReplayError(f"the trace ends ({trace.index[-1]}) before the start {start}")
    remaining = work_h * profile.green_rate
    energy = cost = emissions = 0.0
    hours = {s.value: 0.0 for s in State}
    pauses, was_paused, done_at = 0, False, None
    decisions: list[Decision] = []
    step_h = dt / HOUR
    for t, row in live.iterrows():
        obs = Observation(t, float(row["price"]), float(row["carbon"]),
                          forecast_fn(t) if forecast_fn is not None else None)
        decision = policy.decide(obs, JobState(remaining, deadline))
        if keep_decisions:
            decisions.append(decision)
        state = decision.state
        paused = not decision.run
        if was_paused and not paused:
            remaining += profile.pause_overhead_h * profile.green_rate   # warm-up after a pause
        pauses += int(paused and not was_paused)
        was_paused = paused
        rate = 0.0 if paused else profile.rate(state)
        watts = profile.idle_w if paused else profile.watts(state)
        fraction = 1.0 if rate <= 0 or remaining > rate * step_h else remaining / (rate * step_h)
        kwh = watts * step_h * fraction / 1000.0
        energy += kwh
        cost += kwh * float(row["price"]) / 1000.0
        emissions += kwh * float(row["carbon"]) / 1000.0
        hours[state.value] += step_h * fraction
        remaining -= rate * step_h * fraction
        if remaining <= 1e-12:
            done_at = t + dt * fraction
            break
    completion = (done_at - start) / HOUR if done_at is not None else float("inf")
    met = done_at is not None and (deadline is None or done_at <= pd.Timestamp(deadline) + pd.Timedelta(seconds=1))
    return ReplayResult(getattr(policy, "name", type(policy).__name__), cost, emissions, energy, completion, met,
                        pauses, hours, decisions)


def objective(result: ReplayResult, baseline: ReplayResult, alpha: float, beta: float) -> float:
    """``alpha * cost / baseline cost + beta * emissions / baseline emissions`` (weights normalised)."""
    a, b = alpha / (alpha + beta), beta / (alpha + beta)
    return a * result.cost / baseline.cost + b * result.emissions_kg / baseline.emissions_kg


def offline_optimum(trace: pd.DataFrame, profile: PowerProfile, work_h: float, start: pd.Timestamp,
                    deadline: pd.Timestamp, baseline: ReplayResult, alpha: float, beta: float) -> ReplayResult:
    """The offline optimum (module docstring) as a :class:`ReplayResult`: :func:`cheapest_schedule` over the
    trace's steps up to the deadline, so a pause's idle draw is charged only before completion, exactly as
    :func:`replay_policy` charges it, and finishing early is a choice the optimum can make."""
    dt = _check_trace(trace)
    window = trace[(trace.index >= pd.Timestamp(start)) & (trace.index + dt <= pd.Timestamp(deadline))]
    if window.empty:
        raise ControlReplayError(f"no whole trace step lies between {start} and {deadline}")
    step_h = dt / HOUR
    a, b = alpha / (alpha + beta), beta / (alpha + beta)
    price, carbon = window["price"].to_numpy(float), window["carbon"].to_numpy(float)
    per_kwh = a * price / 1000.0 / baseline.cost + b * carbon / 1000.0 / baseline.emissions_kg
    x = cheapest_schedule(per_kwh, np.full(len(window), step_h), profile, work_h * profile.green_rate)
    if x is None:
        raise ControlReplayError(f"the offline optimum has no solution: {work_h} h of work "
                                 f"cannot fit between {start} and {deadline}")
    states = [State.GREEN, State.YELLOW, State.RED]
    watts = np.array([*(profile.watts(s) for s in states), 0.0])
    rates = np.array([*(profile.rate(s) for s in states), 0.0])
    kwh = (x * watts[None, :]).sum(axis=1) * step_h / 1000.0
    working = np.flatnonzero(x @ rates > 1e-9)
    last = window.index[working[-1]] + dt * (1.0 - x[working[-1], -1]) if working.size else pd.Timestamp(start)
    return ReplayResult("optimum", float((kwh * price / 1000.0).sum()), float((kwh * carbon / 1000.0).sum()),
                        float(kwh.sum()), (last - pd.Timestamp(start)) / HOUR, True, 0,
                        {s.value: float(x[:, i].sum() * step_h) for i, s in enumerate(states)})
