"""A training run under the controller, built from the ``control`` configuration node.

:func:`control_session` opens the signals (:func:`carbonsync.signals.get_signal`), the policy, the actuator
(``auto``: NVML, or pause-only with a warning when NVML is not available, as on machines without a GPU) and a
:class:`~carbonsync.control.training.StepGate`, and yields the step hook a training loop calls at each step
boundary. With ``replay_start`` the signals are replayed on a simulated clock that advances ``replay_step_s``
per step, and a pause advances it instead of sleeping. Under ``torchrun`` the gate is a
:class:`~carbonsync.control.training.DistributedGate`: rank 0 decides, every rank pauses at the same step, and
each node's local rank 0 applies the power caps. On exit the GPUs' original power limits are restored
and a summary is logged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from carbonsync.control.actuators import Actuator, get_actuator, open_actuator
from carbonsync.control.config import ControlConfig, SignalSpec
from carbonsync.control.policies import Policy, get_policy
from carbonsync.control.runtime import Controller, DecisionLog, JobTracker, SignalInput
from carbonsync.control.training import DistributedGate, StepGate, wall_clock
from carbonsync.core.errors import ConfigError
from carbonsync.core.logs import get_logger
from carbonsync.signals import ReplayClock, get_signal

__all__ = ["actuator_for", "control_session", "decision_log_for", "open_signal", "policy_for"]

log = get_logger(__name__)
HOUR = pd.Timedelta(hours=1)


def open_signal(spec: SignalSpec, clock: ReplayClock | None, what: str) -> SignalInput | None:
    """The signal ``spec`` names (None when ``spec.provider`` is empty); recordings and the forecast store are
    replayed on ``clock``, live providers need the wall clock."""
    if not spec.provider:
        return None
    if not spec.zone:
        raise ConfigError(f"control.{what}.zone: missing (e.g. control.{what}.zone=caiso)")
    options: dict[str, object] = {}
    if spec.provider == "file":
        if not spec.path:
            raise ConfigError(f"control.{what}.path: a recording is needed for provider 'file'")
        options.update(path=spec.path, clock=clock or ReplayClock(wall_clock()))
    elif spec.provider == "carbonsync":
        if not spec.path:
            raise ConfigError(f"control.{what}.path: the forecast store is needed for provider 'carbonsync'")
        options.update(store=spec.path, clock=clock)
    elif clock is not None:
        raise ConfigError(f"control.{what}.provider={spec.provider}: a live provider cannot be replayed; unset "
                          "control.replay_start or use provider 'file'")
    return SignalInput(get_signal(spec.provider, **options), spec.zone, spec.kind or None)


def actuator_for(name: str, state_file: str) -> Actuator:
    """The opened actuator ``name`` (``auto``: NVML, else pause-only with a warning)."""
    options = {"state_file": state_file} if state_file else {}
    if name == "auto":
        return open_actuator("nvml", fallback="pause-only", **options)
    actuator = get_actuator(name, **(options if name == "nvml" else {}))
    actuator.open()
    return actuator


def policy_for(cfg: ControlConfig) -> Policy:
    """The configured policy; the engine's deadline guard assumes a decision every ``interval_s``."""
    if cfg.policy.startswith("engine"):
        return get_policy(cfg.policy, interval=pd.Timedelta(seconds=cfg.interval_s))
    return get_policy(cfg.policy)


def decision_log_for(cfg: ControlConfig, run_dir: str | Path) -> DecisionLog:
    """The configured decision log (default ``<run_dir>/control/decisions.jsonl``)."""
    return DecisionLog(Path(cfg.decisions) if cfg.decisions else Path(run_dir) / "control" / "decisions.jsonl")


@contextlib.contextmanager
def control_session(cfg: ControlConfig, run_dir: str | Path, total_steps: int = 0
                    ) -> Iterator[Callable[[int], None]]:
    """The step hook of a training run under ``cfg`` (see the module docstring); ``total_steps`` (0: unknown)
    with ``cfg.step_s`` gives the remaining work the deadline guard needs."""
    if cfg.deadline_h and not (total_steps and cfg.step_s):
        raise ConfigError(f"control.deadline_h={cfg.deadline_h}: a deadline needs control.step_s (the full-power "
                          "time of one step) and a known number of steps")
    clock = ReplayClock(pd.Timestamp(cfg.replay_start)) if cfg.replay_start else None
    now = clock.now if clock is not None else wall_clock()
    price, carbon = open_signal(cfg.price, clock, "price"), open_signal(cfg.carbon, clock, "carbon")
    job = JobTracker(int(total_steps), cfg.step_s / 3600.0,
                     now + pd.Timedelta(hours=cfg.deadline_h) if cfg.deadline_h else None)
    decisions = decision_log_for(cfg, run_dir)
    controller = Controller(policy_for(cfg), job, price, carbon, pd.Timedelta(hours=cfg.forecast_h), decisions)
    # under torchrun every rank pauses at rank 0's decision; each node's local rank 0 caps that node's GPUs
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    actuator = actuator_for(cfg.actuator, cfg.state_file) if local_rank == 0 else None
    if actuator is not None:
        controller.telemetry = lambda: {"actuator": actuator.name, "draw_w": actuator.power_w(),
                                        "energy_j": actuator.energy_j()}
    if clock is not None:
        gate = StepGate(controller.decide, actuator, interval=pd.Timedelta(seconds=cfg.interval_s),
                        poll=pd.Timedelta(seconds=cfg.poll_s), clock=lambda: clock.now,
                        sleep=lambda seconds: clock.advance(pd.Timedelta(seconds=seconds)))
    else:
        gate = StepGate(controller.decide, actuator, interval=pd.Timedelta(seconds=cfg.interval_s),
                        poll=pd.Timedelta(seconds=cfg.poll_s))

    ranks = DistributedGate(gate)

    def hook(step: int) -> None:
        job.done = step
        ranks.step(step)
        if clock is not None:
            clock.advance(pd.Timedelta(seconds=cfg.replay_step_s))

    log.info("control: %s policy on %s, actuator %s, decisions in %s", cfg.policy,
             " and ".join(f"{s.provider}:{s.zone}" for s in (cfg.price, cfg.carbon) if s.provider),
             actuator.name if actuator is not None else "none (not this node's local rank 0)",
             decisions.path)
    try:
        with gate:
            yield hook
    finally:
        log.info("control: %d decision(s), %d pause(s), %.1f h paused", gate.decisions, gate.pauses,
                 gate.paused_s / 3600.0)
