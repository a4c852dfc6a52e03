"""``carbonsync control run -- CMD ...``: a user's training script under the controller, from outside.

The command runs as a child process in its own process group. Every ``interval_s`` the controller decides; a
pause stops the whole group with SIGSTOP (the process keeps its memory, model and optimiser on the device, and
picks up exactly where it stopped), a resume continues it with SIGCONT, and power caps go through the actuator.
SIGTERM or SIGINT to the wrapper are passed on to the child (continued first, so it can exit cleanly). On exit
the GPUs' original limits are restored; the wrapper returns the child's exit status.

With ``replay_start`` the signals are replayed on a clock that starts there and runs ``replay_speed`` times
faster than the wall clock (a demonstration or test of a recorded day in minutes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from carbonsync.control.config import ControlConfig
from carbonsync.control.runtime import Controller, JobTracker
from carbonsync.control.session import actuator_for, decision_log_for, open_signal, policy_for
from carbonsync.control.training import wall_clock
from carbonsync.core.errors import ConfigError
from carbonsync.core.logs import get_logger
from carbonsync.signals import ReplayClock

__all__ = ["run_wrapped"]

log = get_logger(__name__)


class _ScaledClock(ReplayClock):
    """A replay clock that follows the wall clock ``speed`` times faster from ``start``."""

    def __init__(self, start: pd.Timestamp, speed: float) -> None:
        super().__init__(start)
        self.start, self.speed, self.origin = pd.Timestamp(start), float(speed), time.monotonic()

    def tick(self) -> pd.Timestamp:
        self.now = self.start + pd.Timedelta(seconds=(time.monotonic() - self.origin) * self.speed)
        return self.now


def run_wrapped(command: Sequence[str], cfg: ControlConfig, run_dir: str | Path, *, replay_speed: float = 1.0) -> int:
    """Run ``command`` under the controller (module docstring); the child's exit status."""
    if not command:
        raise ConfigError("control run needs a command after --, e.g. carbonsync control run -- python train.py")
    if replay_speed <= 0:
        raise ConfigError(f"replay_speed={replay_speed}: must be > 0")
    clock = _ScaledClock(pd.Timestamp(cfg.replay_start), replay_speed) if cfg.replay_start else None
    price, carbon = open_signal(cfg.price, clock, "price"), open_signal(cfg.carbon, clock, "carbon")
    if price is None and carbon is None:
        raise ConfigError("control run needs a signal: set control.price.* or control.carbon.*")
    controller = Controller(policy_for(cfg), JobTracker(0, 0.0), price, carbon, pd.Timedelta(hours=cfg.forecast_h),
                            decision_log_for(cfg, run_dir))
    actuator = actuator_for(cfg.actuator, cfg.state_file)
    controller.telemetry = lambda: {"actuator": actuator.name, "draw_w": actuator.power_w(), "energy_j": actuator.energy_j()}
    child = subprocess.Popen(list(command), start_new_session=True)   # its own process group
    group = os.getpgid(child.pid)
    stopped = False
    forwarded: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGCONT)
            os.killpg(group, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    pauses, paused_s, paused_at = 0, 0.0, 0.0
    wait_s = cfg.interval_s / (replay_speed if clock is not None else 1.0)
    try:
        while child.poll() is None:
            now = clock.tick() if clock is not None else wall_clock()
            decision = controller.decide(now)
            actuator.apply(decision)
            if not decision.run and not stopped and not forwarded:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGSTOP)
                stopped, pauses, paused_at = True, pauses + 1, time.monotonic()
                log.info("control run: paused %s (pid %d)", command[0], child.pid)
            elif (decision.run or forwarded) and stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGCONT)
                stopped, paused_s = False, paused_s + time.monotonic() - paused_at
                log.info("control run: resumed %s (pid %d)", command[0], child.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=wait_s)
    finally:
        if stopped:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)
        for s, handler in previous.items():
            signal.signal(s, handler)
        restore = getattr(actuator, "restore", None)
        if callable(restore):
            restore()
    log.info("control run: %s exited with %d after %d pause(s), %.1f s paused", command[0], child.returncode,
             pauses, paused_s)
    return int(child.returncode)

