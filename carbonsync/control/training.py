"""Pause and resume a training job in place, at step boundaries: plain PyTorch, Lightning, Hugging Face and DDP.

Call :meth:`StepGate.step` at each step boundary of a training loop. The gate asks the decision engine
(any callable ``decide(now) -> Decision``) at the first step and then whenever ``interval`` has passed,
applies the decision's ``power_w`` through an actuator when it changes, and while a decision says
``run=False`` it blocks inside ``step()``, polling ``decide`` every ``poll`` until it says run again. The model,
optimiser, data loader and CUDA context stay where they are: the gate never touches them, so resuming costs
nothing and training continues exactly as if it had not paused. ``on_pause`` (and any hook added with
:meth:`StepGate.add_pause_hook`) is the place for an optional checkpoint, in case the pause turns into a stop;
the Lightning and Hugging Face callbacks write their framework's own checkpoint there when given
``checkpoint_on_pause``.

:class:`DistributedGate` makes every rank of a DDP job pause at the same step boundary: rank 0 decides and
publishes its verdict for each step through the process group's key-value store; the other ranks read it.
Nobody waits inside a collective, so a pause longer than the process group's timeout does not kill the job.

:func:`lightning_callback` and :func:`hf_callback` wrap a gate as a Lightning or Hugging Face callback.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import pandas as pd
import torch
import torch.distributed as dist

from carbonsync.control.decision import Decision
from carbonsync.core.errors import ConfigError
from carbonsync.core.logs import get_logger
from carbonsync.core.optional import optional_import

__all__ = ["Actuator", "DistributedGate", "Gate", "StepGate", "hf_callback", "lightning_callback", "save_hf_checkpoint",
           "wall_clock"]

logger = get_logger(__name__)

Decide = Callable[[pd.Timestamp], Decision]
StepCallback = Callable[[int, Decision], Any]
INTERVAL = pd.Timedelta("5min")    # default time between decisions
POLL = pd.Timedelta("30s")         # default time between decisions while paused
NO_STAGGER = pd.Timedelta(0)


@runtime_checkable
class Actuator(Protocol):
    """Anything that applies a decision's power cap (``restore``, if it has one, is called on exit)."""

    def apply(self, decision: Decision) -> Any: ...


class Gate(Protocol):
    """What the framework callbacks need: a ``step(step)`` to call at each step boundary, and a way to run
    something (a checkpoint) when a pause begins."""

    def step(self, step: int) -> Any: ...

    def add_pause_hook(self, hook: StepCallback) -> None: ...


def wall_clock() -> pd.Timestamp:
    """The current time, naive UTC."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def _seconds(value: pd.Timedelta | float | str, name: str) -> float:
    try:
        seconds = float(value) if isinstance(value, (int, float)) else pd.Timedelta(value).total_seconds()
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be a duration, got {value!r}") from err
    if not seconds >= 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}")
    return seconds


class StepGate:
    """Blocks a training loop at a step boundary while the controller's decision says pause.

    ``decide(now)`` is asked at the first :meth:`step`, then at the first step at least ``interval`` after the
    last decision, and every ``poll`` while paused. ``actuator.apply(decision)`` is called when a decision's
    ``power_w`` differs from the last one applied (``None`` leaves the limit as it is). ``on_decision(decision)``
    sees every decision; ``on_pause(step, decision)`` and ``on_resume(step, decision)`` are called once per pause.
    After a pause, the worker waits ``worker_index * stagger`` before resuming, so that many workers or sites
    do not step the grid's demand at the same instant.

    ``clock()`` returns naive UTC (default: the wall clock) and ``sleep(seconds)`` waits (default
    :func:`time.sleep`); a simulated clock whose ``sleep`` advances it makes a pause cost no wall time.

    A ``decide`` that raises is logged and treated as "run" (fail safe: a broken signal never stalls training);
    it is asked again at the next due step. Used as a context manager, the gate calls ``actuator.restore()``
    (when the actuator has one) on exit.
    """

    def __init__(
        self,
        decide: Decide,
        actuator: Actuator | None = None,
        *,
        interval: pd.Timedelta | str = INTERVAL,
        clock: Callable[[], pd.Timestamp] | None = None,
        sleep: Callable[[float], Any] | None = None,
        poll: pd.Timedelta | str = POLL,
        on_pause: StepCallback | None = None,
        on_resume: StepCallback | None = None,
        on_decision: Callable[[Decision], Any] | None = None,
        stagger: pd.Timedelta | str = NO_STAGGER,
        worker_index: int = 0,
    ) -> None:
        if actuator is not None and not callable(getattr(actuator, "apply", None)):
            raise ConfigError(f"actuator must have an apply(decision) method, got {type(actuator).__name__}")
        if int(worker_index) != worker_index or worker_index < 0:
            raise ConfigError(f"worker_index must be an integer >= 0, got {worker_index!r}")
        self.decide = decide
        self.actuator = actuator
        self.interval = pd.Timedelta(seconds=_seconds(interval, "interval"))
        self.poll = pd.Timedelta(seconds=_seconds(poll, "poll"))
        if self.poll <= pd.Timedelta(0):
            raise ConfigError(f"poll must be > 0, got {poll!r}")
        self.stagger = pd.Timedelta(seconds=_seconds(stagger, "stagger"))
        self.worker_index = int(worker_index)
        self.clock = clock or wall_clock
        self.sleep = sleep or time.sleep
        self.on_pause = on_pause
        self.pause_hooks: list[StepCallback] = []
        self.on_resume = on_resume
        self.on_decision = on_decision
        self.decision: Decision | None = None       # the decision in force
        self.decided_at: pd.Timestamp | None = None  # when it was asked for
        self.applied_w: float | None = None         # the last power cap applied
        self.paused_s = 0.0
        self.pauses = 0
        self.decisions = 0
        self.errors = 0
        self.paused = False

    # -- the loop's side -------------------------------------------------------------------------------------

    def step(self, step: int) -> Decision | None:
        """Call at each step boundary: decides when due and blocks while paused. Returns the decision in force."""
        decision = self.check(step)
        if decision is not None and not decision.run:
            decision = self.wait(step, decision)
        return decision

    def add_pause_hook(self, hook: StepCallback) -> None:
        """Call ``hook(step, decision)`` whenever a pause begins, after ``on_pause`` (e.g. to checkpoint)."""
        self.pause_hooks.append(hook)

    def paused_at(self, step: int, decision: Decision) -> None:
        """Run ``on_pause`` and the pause hooks: a pause begins at ``step`` under ``decision``."""
        for hook in ([self.on_pause] if self.on_pause is not None else []) + self.pause_hooks:
            hook(step, decision)

    def check(self, step: int) -> Decision | None:
        """Ask ``decide`` if a decision is due (never blocks); the decision in force (None before any succeeds)."""
        now = self.clock()
        if self.decided_at is None or now - self.decided_at >= self.interval:
            self._ask(now)
        return self.decision

    def wait(self, step: int, decision: Decision, *, resumed: Callable[[Decision], Any] | None = None) -> Decision:
        """Block at ``step`` until a decision says run (``decision`` is the pausing one); returns that decision.

        ``resumed(decision)`` is called when the pause has ended (after the stagger), before ``on_resume``.
        A ``decide`` that fails during the pause ends it (fail safe); the pausing decision is then returned.
        """
        started = self.clock()
        self.paused = True
        self.pauses += 1
        logger.info("pausing at step %d: %s", step, decision.sentence or decision.reason.value)
        self.paused_at(step, decision)
        current: Decision | None = decision
        while current is not None and not current.run:
            self.sleep(self.poll.total_seconds())
            current = self._ask(self.clock())
        delay = self.worker_index * self.stagger
        if delay > pd.Timedelta(0):
            logger.info("worker %d resumes %s after the others (stagger)", self.worker_index, delay)
            self.sleep(delay.total_seconds())
        resume = current if current is not None else decision
        self.paused = False
        paused_s = (self.clock() - started).total_seconds()
        self.paused_s += paused_s
        logger.info("resuming at step %d after %.0f s paused", step, paused_s)
        if resumed is not None:
            resumed(resume)
        if self.on_resume is not None:
            self.on_resume(step, resume)
        return resume

    # -- internals --------------------------------------------------------------------------------------------

    def _ask(self, now: pd.Timestamp) -> Decision | None:
        """One decision at ``now``: counted, actuated on a power change, reported. None if ``decide`` failed."""
        self.decided_at = now
        try:
            decision = self.decide(now)
        except Exception:
            self.errors += 1
            logger.exception("decide(%s) failed: running on (fail safe)", now)
            self.decision = None
            return None
        self.decisions += 1
        self.decision = decision
        if decision.power_w is not None and decision.power_w != self.applied_w and self.actuator is not None:
            self.actuator.apply(decision)
            self.applied_w = decision.power_w
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def __enter__(self) -> StepGate:
        return self

    def __exit__(self, *exc: object) -> None:
        restore = getattr(self.actuator, "restore", None)
        if callable(restore):
            restore()


class DistributedGate:
    """A :class:`StepGate` for every rank of a ``torch.distributed`` job: all ranks pause at the same step.

    Rank 0 runs ``gate`` (decides and actuates) and publishes, for each call of :meth:`step`, its verdict
    (run or pause) under its own key in the key-value ``store`` (default: the default process group's store);
    a pause is followed by a resume key when rank 0's gate says run again. The other ranks poll
    ``store.check`` every ``poll_s`` (``pause_poll_s`` during a pause) and never enter a collective while
    waiting, so a pause may outlast the process group's timeout. On those ranks ``gate``'s own ``decide`` is
    never called, but its actuator applies rank 0's power caps (give it one on each node's local rank 0, none
    elsewhere), its ``on_pause``, pause hooks and ``on_resume`` are called with rank 0's decision, and its
    ``pauses`` and ``paused_s`` count. Each verdict's keys are deleted by the last rank to read them.

    Keys follow the number of calls, not the step number (which may repeat, e.g. under gradient accumulation),
    so every rank must call :meth:`step` equally often. ``store``, ``rank`` and ``world_size`` are resolved at
    the first step, so the gate may be built before the process group exists.
    """

    def __init__(
        self,
        gate: StepGate,
        *,
        store: Any = None,
        rank: int | None = None,
        world_size: int | None = None,
        poll_s: float = 0.05,
        pause_poll_s: float = 1.0,
        prefix: str = "carbonsync/gate",
    ) -> None:
        if not poll_s > 0 or not pause_poll_s > 0:
            raise ConfigError(f"poll_s and pause_poll_s must be > 0, got {poll_s!r} and {pause_poll_s!r}")
        self.gate = gate
        self.store = store
        self.rank = rank
        self.world_size = world_size
        self.poll_s = float(poll_s)
        self.pause_poll_s = float(pause_poll_s)
        self.prefix = prefix
        self.calls = 0

    def add_pause_hook(self, hook: StepCallback) -> None:
        """Call ``hook(step, decision)`` on every rank when the pause begins there (see :class:`StepGate`)."""
        self.gate.add_pause_hook(hook)

    def _resolve(self) -> None:
        if self.world_size == 1 or (self.store is not None and self.rank is not None and self.world_size is not None):
            return

        if not (dist.is_available() and dist.is_initialized()):
            if self.rank is None and self.world_size is None and self.store is None:
                self.rank, self.world_size = 0, 1     # not distributed: a plain gate
                return
            raise ConfigError("DistributedGate needs an initialised process group or an explicit store, rank and world_size")
        if self.rank is None:
            self.rank = dist.get_rank()
        if self.world_size is None:
            self.world_size = dist.get_world_size()
        if self.store is None:
            self.store = dist.distributed_c10d._get_default_store()

    def step(self, step: int) -> Decision | None:
        """Call at each step boundary on every rank; returns rank 0's decision when it is known on this rank."""
        self._resolve()
        key = f"{self.prefix}/{self.calls}"
        self.calls += 1
        if self.world_size == 1:
            return self.gate.step(step)
        if self.rank == 0:
            return self._lead(step, key)
        return self._follow(step, key)

    def _lead(self, step: int, key: str) -> Decision | None:
        decision = self.gate.check(step)
        if decision is None or decision.run:
            self.store.set(key, b"run" + (decision.to_json().encode() if decision is not None else b""))
            return decision
        self.store.set(key, b"pause" + decision.to_json().encode())   # JSON, never pickle, over the store
        return self.gate.wait(step, decision,
                              resumed=lambda d: self.store.set(f"{key}/resume", d.to_json().encode()))

    def _actuate(self, decision: Decision) -> None:
        """A follower applies rank 0's power cap through its own gate's actuator (if it has one) on a change."""
        gate = self.gate
        if decision.power_w is not None and decision.power_w != gate.applied_w and gate.actuator is not None:
            gate.actuator.apply(decision)
            gate.applied_w = decision.power_w

    def _await(self, key: str, poll_s: float) -> bytes:
        while not self.store.check([key]):
            time.sleep(poll_s)
        return bytes(self.store.get(key))

    def _follow(self, step: int, key: str) -> Decision | None:
        verdict = self._await(key, self.poll_s)
        gate = self.gate
        decision: Decision | None = None
        keys = [key]
        if verdict.startswith(b"run") and len(verdict) > len(b"run"):
            decision = Decision.from_record(json.loads(verdict[len(b"run"):]))
            self._actuate(decision)
        elif verdict.startswith(b"pause"):
            decision = Decision.from_record(json.loads(verdict[len(b"pause"):]))
            self._actuate(decision)
            started = time.monotonic()
            gate.pauses += 1
            gate.paused = True
            logger.info("rank %d pausing at step %d (rank 0's decision)", self.rank, step)
            gate.paused_at(step, decision)
            decision = Decision.from_record(json.loads(self._await(f"{key}/resume", self.pause_poll_s)))
            self._actuate(decision)
            gate.paused = False
            gate.paused_s += time.monotonic() - started
            logger.info("rank %d resuming at step %d", self.rank, step)
            if gate.on_resume is not None:
                gate.on_resume(step, decision)
            keys.append(f"{key}/resume")
        assert self.world_size is not None
        if self.store.add(f"{key}/read", 1) == self.world_size - 1:   # the last reader cleans up
            for k in (*keys, f"{key}/read"):
                self.store.delete_key(k)
        return decision


def _lightning() -> ModuleType:
    """``lightning.pytorch``, else the older ``pytorch_lightning``, else an error naming the extra."""
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return optional_import("lightning.pytorch", "lightning")


def lightning_callback(gate: Gate, checkpoint_on_pause: str | Path | None = None) -> Any:
    """A Lightning ``Callback`` that calls ``gate.step(trainer.global_step)`` before each training batch.

    With ``checkpoint_on_pause`` (a ``.ckpt`` path), ``trainer.save_checkpoint`` writes it when a pause begins
    (on every rank, as Lightning requires); ``trainer.fit(..., ckpt_path=...)`` resumes from it."""
    pl = _lightning()

    class CarbonSyncGate(pl.Callback):  # type: ignore[misc,name-defined]
        """Pauses the Lightning loop at batch boundaries while the controller says so."""

        def __init__(self, gate: Gate) -> None:
            super().__init__()
            self.gate = gate
            self.trainer: Any = None
            if checkpoint_on_pause is not None:
                gate.add_pause_hook(self._checkpoint)

        def _checkpoint(self, step: int, decision: Decision) -> None:
            if self.trainer is not None:
                self.trainer.save_checkpoint(str(checkpoint_on_pause))
                logger.info("checkpoint on pause at step %d: %s", step, checkpoint_on_pause)

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.trainer = trainer
            self.gate.step(int(trainer.global_step))

    return CarbonSyncGate(gate)


def save_hf_checkpoint(directory: str | Path, model: Any, optimizer: Any, lr_scheduler: Any, state: Any) -> Path:
    """The Hugging Face Trainer's checkpoint layout in ``directory`` (weights as safetensors, ``optimizer.pt``,
    ``scheduler.pt``, ``trainer_state.json``), so ``trainer.train(resume_from_checkpoint=directory)`` resumes."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(directory)
    else:
        optional_import("safetensors.torch", "hf").save_model(model, str(directory / "model.safetensors"))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    if lr_scheduler is not None:
        torch.save(lr_scheduler.state_dict(), directory / "scheduler.pt")
    state.save_to_json(os.fspath(directory / "trainer_state.json"))
    return directory


def hf_callback(gate: Gate, checkpoint_on_pause: str | Path | None = None) -> Any:
    """A Hugging Face ``TrainerCallback`` that calls ``gate.step(state.global_step)`` at the start of each step.

    With ``checkpoint_on_pause`` (a directory), :func:`save_hf_checkpoint` writes
    ``<dir>/checkpoint-<global step>`` when a pause begins (on the main process)."""
    transformers = optional_import("transformers", "hf")

    class CarbonSyncGate(transformers.TrainerCallback):  # type: ignore[misc,name-defined]
        """Pauses the Hugging Face Trainer at step boundaries while the controller says so."""

        def __init__(self, gate: Gate) -> None:
            self.gate = gate
            self.context: tuple[Any, Any, dict[str, Any]] | None = None
            if checkpoint_on_pause is not None:
                gate.add_pause_hook(self._checkpoint)

        def _checkpoint(self, step: int, decision: Decision) -> None:
            if self.context is None:
                return
            args, state, kwargs = self.context
            if not state.is_world_process_zero:
                return
            where = save_hf_checkpoint(Path(checkpoint_on_pause) / f"checkpoint-{state.global_step}",
                                       kwargs.get("model"), kwargs.get("optimizer"), kwargs.get("lr_scheduler"),
                                       state)
            logger.info("checkpoint on pause at step %d: %s", step, where)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.context = (args, state, kwargs)
            self.gate.step(int(state.global_step))

    return CarbonSyncGate(gate)
