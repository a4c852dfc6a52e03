"""The controller at run time: grid signals in, a policy's decision out, each decision logged durably.

:class:`Controller` reads the current value and forecast of a price and a carbon signal (any
:class:`~carbonsync.signals.base.GridSignal`, live or replayed) and asks its policy for a decision, given the
job's remaining work from a :class:`JobTracker`. A signal that fails (a named
:class:`~carbonsync.signals.base.SignalError`) is logged and left out; with neither, the policy runs at full
power. The first decision warms the policy's normalisation up with the past week of each signal. Every
decision is appended to a JSON-lines file (flushed and fsynced), which a service or a person can follow.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from carbonsync.control.decision import Decision
from carbonsync.control.engine import JobState, Observation
from carbonsync.control.policies import Policy
from carbonsync.core.logs import get_logger
from carbonsync.signals.base import GridSignal, SignalError

__all__ = ["Controller", "DecisionLog", "JobTracker", "SignalInput"]

log = get_logger(__name__)
HOUR = pd.Timedelta(hours=1)


@dataclass
class SignalInput:
    """A signal the controller reads: ``signal`` for ``zone`` (``kind``: None for the provider's first)."""

    signal: GridSignal
    zone: str
    kind: str | None = None
    time: pd.Timestamp | None = None     # the valid time of the latest value read
    units: str = ""

    def latest(self) -> float | None:
        try:
            ds = self.signal.latest(self.zone, self.kind)
        except SignalError as err:
            log.warning("control: no current value (%s)", err)
            return None
        self.time = pd.Timestamp(ds["time"].values.ravel()[-1])
        self.units = str(ds.attrs.get("units", ""))
        return float(ds["value"].values.ravel()[-1])

    def forecast(self, horizon: pd.Timedelta) -> pd.Series | None:
        try:
            ds = self.signal.forecast(self.zone, horizon, kind=self.kind)
        except SignalError as err:
            log.info("control: no forecast (%s)", err)
            return None
        return pd.Series(ds["value"].values[0, :, 0], index=pd.DatetimeIndex(ds["time"].values)).dropna()

    def history(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        try:
            ds = self.signal.history(self.zone, start, end, self.kind)
        except SignalError as err:
            log.info("control: no history to warm up on (%s)", err)
            return pd.Series(dtype=float)
        return pd.Series(ds["value"].values[:, 0], index=pd.DatetimeIndex(ds["time"].values)).dropna()


@dataclass
class JobTracker:
    """Progress of a job of ``total_steps`` steps, each ``step_h`` hours at full power; ``deadline`` or None."""

    total_steps: int
    step_h: float
    deadline: pd.Timestamp | None = None
    done: int = 0

    def state(self) -> JobState:
        return JobState(remaining=max(self.total_steps - self.done, 0) * self.step_h, deadline=self.deadline)


class DecisionLog:
    """Decisions appended as JSON lines to ``path``, each flushed and fsynced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, decision: Decision, **extra: object) -> None:
        line = json.dumps({**decision.record(), **extra}, sort_keys=True, default=str)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class Controller:
    """``decide(now)``: the policy's decision for the current signals and job (see the module docstring)."""

    policy: Policy
    job: JobTracker
    price: SignalInput | None = None
    carbon: SignalInput | None = None
    horizon: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(hours=24))
    decisions: DecisionLog | None = None
    warmup: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(days=7))
    telemetry: Callable[[], dict[str, Any]] | None = None   # e.g. the actuator's draw_w and energy_j, logged
    _warm: bool = False

    def _warm_up(self, now: pd.Timestamp) -> None:
        price = self.price.history(now - self.warmup, now) if self.price else pd.Series(dtype=float)
        carbon = self.carbon.history(now - self.warmup, now) if self.carbon else pd.Series(dtype=float)
        for t in sorted(set(price.index) | set(carbon.index)):
            self.policy.observe(t, price.get(t), carbon.get(t))
        self._warm = True

    def decide(self, now: pd.Timestamp) -> Decision:
        now = pd.Timestamp(now)
        if not self._warm:
            self._warm_up(now)
        tic = time.perf_counter()
        columns = {}
        for name, source in (("price", self.price), ("carbon", self.carbon)):
            if source is not None:
                series = source.forecast(self.horizon)
                if series is not None and len(series):
                    columns[name] = series
        forecast = pd.DataFrame(columns).sort_index() if columns else None
        obs = Observation(now, self.price.latest() if self.price else None,
                          self.carbon.latest() if self.carbon else None, forecast)
        decision = self.policy.decide(obs, self.job.state())
        if self.decisions is not None:
            self.decisions.append(decision, step=self.job.done, decide_ms=round(1000 * (time.perf_counter() - tic), 2),
                                  signals=self._signal_record(now), **self._telemetry())
        if decision.changed or decision.previous is None:
            log.info("control: %s", decision.sentence)
        return decision

    def _signal_record(self, now: pd.Timestamp) -> dict[str, dict[str, Any]]:
        """Each signal's provider, zone, units and the age of the value the decision used (s)."""
        out = {}
        for name, source in (("price", self.price), ("carbon", self.carbon)):
            if source is not None:
                age = (now - source.time).total_seconds() if source.time is not None else None
                out[name] = {"zone": source.zone, "units": source.units, "age_s": age,
                             "provider": getattr(source.signal, "name", type(source.signal).__name__)}
        return out

    def _telemetry(self) -> dict[str, Any]:
        if self.telemetry is None:
            return {}
        try:
            return dict(self.telemetry())
        except Exception as err:   # a failing reading must not stop the decision
            log.warning("control: telemetry failed: %s", err)
            return {}
