"""What one site does with a round: load the global weights, train until told to stop, report the work done.

:func:`train_site` is the node's side of a round, independent of Flower (the ClientApp calls it). The site
trains with the controller's in-process gate (:class:`carbonsync.control.training.StepGate`), asked at every
step boundary: its decision follows the site's plan at the step's trace time (the round's start plus the
steps done at the site's modelled step time), so a node whose window closes mid-round stops at the next step
boundary and returns the steps it has done. It also stops when its next step would pass the round's
deadline, at its share of the budget, and at the round's wall-clock bound. Its AdamW state is kept per
site between rounds (``weights_only`` on load), so a site that leaves and comes back resumes its optimiser
where it stopped. Energy is read from NVML counters where a GPU is present (``None`` here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from carbonsync.control.decision import Action, Decision, Reason, State
from carbonsync.control.nvml import GpuError, NvmlDevices
from carbonsync.control.training import StepGate
from carbonsync.core.fs import atomic_path
from carbonsync.core.logs import get_logger
from carbonsync.federated.spec import RunSpec
from carbonsync.federated.windows import SitePlan
from carbonsync.federated.workload import Workload, get_workload, train_steps

__all__ = ["RoundOrder", "SiteReport", "plan_decider", "train_site"]

log = get_logger(__name__)


@dataclass
class RoundOrder:
    """What the server asks of a site in one round."""

    round: int
    max_steps: int
    lr_done: int            # global optimizer steps done before this round
    lr_stride: int          # sites stepping at once (their steps interleave on the cosine schedule)
    start: str              # trace time the round starts
    deadline: str           # trace time the round ends
    wall_deadline: float    # wall time (epoch seconds) by which the site stops, whatever its trace time
    position: int           # batches of this site's stream already consumed

    def record(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SiteReport:
    """What a site did: its weights, batches processed, mean loss, why it stopped, when (trace) and energy."""

    site: str
    weights: dict[str, torch.Tensor]
    num_batches: int
    num_samples: int
    mean_loss: float
    stopped: str
    trace_start: str
    trace_end: str
    compute_s: float
    energy_j: float | None = None
    losses: list[float] = field(default_factory=list)


def plan_decider(plan: SitePlan):
    """``decide(now)`` for a :class:`StepGate`: run while the site's plan says train."""
    previous: list[State] = []

    def decide(now: pd.Timestamp) -> Decision:
        state = plan.state_at(now)
        run = state == "train"
        current = State.GREEN if run else State.RED
        last = previous[-1] if previous else None
        previous[:] = [current]
        action = Action.HOLD if last == current else (Action.BOOST if run else Action.PAUSE)
        sentence = (f"{plan.site}: inside its curtailment window at {now:%H:%M}" if run else
                    f"{plan.site}: {state} at {now:%H:%M}, outside its curtailment window")
        return Decision(time=now, state=current, previous=last, action=action, reason=Reason.FORECAST_PLAN,
                        power_w=None, run=run, sentence=sentence)

    return decide


def _gpu_energy_j() -> float | None:
    """Total energy counter over this node's GPUs (J), or None without NVML."""
    devices = NvmlDevices()
    try:
        devices.init()
        return float(sum(devices.total_energy_j(i) for i in range(devices.count())))
    except GpuError:
        return None
    finally:
        devices.shutdown()          # logs, never raises


def _optimizer_path(spec: RunSpec, site: str):
    return spec.site_dir(site) / "optimizer.pt"


def train_site(spec: RunSpec, site: str, weights: dict[str, torch.Tensor], order: RoundOrder,
               workload: Workload | None = None) -> SiteReport:
    """Train ``site`` from the global ``weights`` for one round of ``spec`` (see the module docstring)."""
    workload = workload or get_workload(spec.workload, **spec.workload_options)
    plan, step_s = spec.site_plans()[site], spec.trace_s_per_step[site]
    start, deadline = pd.Timestamp(order.start), pd.Timestamp(order.deadline)
    model = workload.model()
    model.load_state_dict(weights)
    optimizer = workload.optimizer(model, spec.lr)
    saved = _optimizer_path(spec, site)
    if saved.exists():
        try:
            optimizer.load_state_dict(torch.load(saved, map_location="cpu", weights_only=True))
        except (RuntimeError, ValueError, KeyError) as err:
            log.warning("%s: optimiser state %s unusable (%s): starting it afresh", site, saved, err)
    shard, shards = spec.shard(site)
    batches = workload.batches(shard, shards, order.position)
    steps_done = [0]

    def trace_now() -> pd.Timestamp:
        return start + pd.Timedelta(seconds=steps_done[0] * step_s)

    gate = StepGate(plan_decider(plan), clock=trace_now, interval=pd.Timedelta(0))

    def stop(step: int) -> str | None:
        steps_done[0] = step
        if trace_now() + pd.Timedelta(seconds=step_s) > deadline:
            return "deadline"
        if time.time() >= order.wall_deadline:
            return "wall"
        decision = gate.check(step)
        return None if decision is None or decision.run else "window"

    energy_before = _gpu_energy_j()
    report = train_steps(workload, model, optimizer, batches, order.max_steps, lr_base=spec.lr,
                         lr_done=order.lr_done, lr_total=spec.budget_steps, lr_stride=order.lr_stride,
                         grad_clip=spec.grad_clip, stop=stop)
    steps_done[0] = report.steps
    ended = trace_now()
    energy_after = _gpu_energy_j()
    with atomic_path(saved) as tmp:
        torch.save(optimizer.state_dict(), tmp)
    energy = energy_after - energy_before if energy_before is not None and energy_after is not None else None
    return SiteReport(site=site, weights={k: v.detach().clone() for k, v in model.state_dict().items()},
                      num_batches=report.steps, num_samples=report.steps * workload.samples_per_step,
                      mean_loss=report.mean_loss, stopped=report.stopped, trace_start=start.isoformat(),
                      trace_end=ended.isoformat(), compute_s=report.compute_s, energy_j=energy,
                      losses=report.losses)
