"""Aggregation of the sites' work: a weighted average by work done, an optional DiLoCo outer step, checkpoints.

- :func:`weighted_average` averages the sites' floating-point tensors with weights by batches processed, so
  a slow site that did little moves the global model little; integer buffers are taken from the first.
- :class:`OuterOptimizer` applies the average as an *outer* step (DiLoCo: Douillard et al. 2023): the
  pseudo-gradient ``global - average`` goes through SGD with Nesterov momentum. ``lr=1, momentum=0`` is
  plain FedAvg (the global model becomes the average).
- :class:`ServerState` is what a run must keep to resume: the global weights, the outer momentum, the round,
  each shard's position in its data stream and the samples done; saved atomically, loaded ``weights_only``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from carbonsync.core.checks import at_least, positive
from carbonsync.core.errors import ConfigError
from carbonsync.core.fs import atomic_path

__all__ = ["OuterOptimizer", "ServerState", "State", "weighted_average"]

State = dict[str, torch.Tensor]


def weighted_average(states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> State:
    """The average of ``states`` weighted by ``weights`` (work done); non-float tensors from the first state."""
    if not states:
        raise ConfigError("nothing to aggregate: no site returned work")
    if len(states) != len(weights):
        raise ConfigError(f"{len(states)} states but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ConfigError(f"aggregation weights must be non-negative with a positive sum, got {list(weights)}")
    keys = list(states[0])
    for i, state in enumerate(states[1:], 1):
        if list(state) != keys:
            raise ConfigError(f"site {i} returned different tensors from site 0: {sorted(set(state) ^ set(keys))}")
    out: State = {}
    for key in keys:
        first = states[0][key]
        if not torch.is_floating_point(first):
            out[key] = first.clone()
            continue
        acc = torch.zeros_like(first, dtype=torch.float64)
        for state, weight in zip(states, weights, strict=True):
            acc += state[key].to(torch.float64) * (float(weight) / total)
        out[key] = acc.to(first.dtype)
    return out


@dataclass
class OuterOptimizer:
    """The outer step: ``global -= lr * (m := momentum * m + delta)``, Nesterov-corrected, ``delta = global - avg``."""

    lr: float = 1.0
    momentum: float = 0.0
    nesterov: bool = True

    def __post_init__(self) -> None:
        positive(self, "lr")
        at_least(self, 0, "momentum")
        if self.momentum >= 1:
            raise ConfigError(f"outer momentum must be below 1, got {self.momentum}")

    @property
    def is_fedavg(self) -> bool:
        return self.lr == 1.0 and self.momentum == 0.0

    def step(self, global_state: Mapping[str, torch.Tensor], average: Mapping[str, torch.Tensor],
             momentum: State) -> State:
        """The new global state; ``momentum`` (per tensor, empty at first) is updated in place."""
        if self.is_fedavg:
            return {k: v.clone() for k, v in average.items()}
        out: State = {}
        for key, current in global_state.items():
            if not torch.is_floating_point(current):
                out[key] = average[key].clone()
                continue
            delta = current - average[key]
            buf = momentum.get(key)
            buf = delta.clone() if buf is None else buf.mul_(self.momentum).add_(delta)
            momentum[key] = buf
            update = delta + self.momentum * buf if self.nesterov else buf
            out[key] = current - self.lr * update
        return out


@dataclass
class ServerState:
    """A resumable run: global weights, outer momentum, the round, shard positions and samples done."""

    weights: State
    momentum: State = field(default_factory=dict)
    round: int = 0
    samples_done: int = 0
    steps_done: int = 0
    positions: dict[str, int] = field(default_factory=dict)    # site -> batches its stream has consumed
    trace_time: str = ""

    def save(self, path: str | Path) -> Path:
        """Write atomically (a temporary file renamed over ``path``): a killed run leaves the last good one."""
        path = Path(path)
        payload: dict[str, Any] = {"weights": self.weights, "momentum": self.momentum, "round": self.round,
                                   "samples_done": self.samples_done, "steps_done": self.steps_done,
                                   "positions": dict(self.positions), "trace_time": self.trace_time}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ServerState:
        try:
            payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 -- any unreadable checkpoint is named
            raise ConfigError(f"cannot read the server checkpoint {path}: {err}") from err
        missing = [k for k in ("weights", "round", "samples_done") if not isinstance(payload, dict) or k not in payload]
        if missing:
            raise ConfigError(f"{path} is not a server checkpoint (no {', '.join(missing)})")
        return cls(weights=payload["weights"], momentum=payload.get("momentum", {}), round=int(payload["round"]),
                   samples_done=int(payload["samples_done"]), steps_done=int(payload.get("steps_done", 0)),
                   positions={str(k): int(v) for k, v in payload.get("positions", {}).items()},
                   trace_time=str(payload.get("trace_time", "")))
