"""What a site trains: a model-agnostic :class:`Workload` protocol, a registry, and the SFNO on the sample world.

A workload builds a fresh model (the same initial weights everywhere, from the seed), an optimiser, an endless
seeded stream of batches for a shard of its training data, the loss of a batch, and a validation loss. A user
with a language model writes one class with these five methods and registers it, or names it as
``package.module:factory`` (imported by every process of the run).

:class:`SFNOWorkload` is CarbonSync's backbone through the same training code as ``train-backbone``
(:mod:`carbonsync.train.backbone`: its data source, model builder, spherical rollout loss with per-channel
weights from the training split, AdamW and gradient clipping) on the sample world; site ``i`` of ``n``
trains on its own shard of the training split (blocks of consecutive states dealt round-robin).

:func:`train_steps` is the one inner loop every run uses (centralised, continuous federated and
curtailment-aware): a cosine learning rate over the run's global progress and a stop test at every step
boundary.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch

from carbonsync.core.checks import at_least
from carbonsync.core.errors import ConfigError
from carbonsync.core.logs import get_logger
from carbonsync.data.config import Splits
from carbonsync.data.sample_world import SampleWorldConfig, generate_weather
from carbonsync.data.store import compute_stats, open_canonical, read_stats, write_canonical, write_stats
from carbonsync.physics.grid import Grid
from carbonsync.train.backbone import (
    BackboneModelConfig,
    Batch,
    StateSource,
    build_sfno,
    channel_weights_from_variance,
    epoch_order,
    rollout_loss,
    step_pairs,
)

__all__ = ["SFNOWorkload", "StepReport", "Workload", "cosine_lr", "get_workload", "known_workloads",
           "register_workload", "train_steps"]

log = get_logger(__name__)


@runtime_checkable
class Workload(Protocol):
    """A trainable job any site can run: model, optimiser, sharded data, loss and validation."""

    samples_per_step: int

    def model(self) -> torch.nn.Module: ...

    def optimizer(self, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer: ...

    def batches(self, shard: int, shards: int, position: int = 0) -> Iterator[Any]:
        """An endless, seeded stream of batches of shard ``shard`` of ``shards``, from batch ``position`` on."""
        ...

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor: ...

    def evaluate(self, model: torch.nn.Module) -> float:
        """The validation loss (the same measure as :meth:`loss`, on held-out data)."""
        ...


_REGISTRY: dict[str, Callable[..., Workload]] = {}


def register_workload(name: str, factory: Callable[..., Workload], *, replace: bool = False) -> None:
    """Make ``get_workload(name, **options)`` build a workload with ``factory(**options)``."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"a workload named '{name}' is already registered")
    _REGISTRY[name] = factory


def known_workloads() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_workload(name: str, **options: Any) -> Workload:
    """The registered workload ``name``, or ``package.module:factory``, built with ``options``."""
    if name in _REGISTRY:
        factory = _REGISTRY[name]
    elif ":" in name:
        module, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"workload '{name}' cannot be imported: {err}") from err
    else:
        raise ConfigError(f"no workload named '{name}'; known: {', '.join(known_workloads())} "
                          "(or give package.module:factory)")
    workload = factory(**options)
    if not isinstance(workload, Workload):
        raise ConfigError(f"workload '{name}' built {type(workload).__name__}, which lacks the Workload methods")
    return workload


def cosine_lr(base: float, done: int, total: int, floor: float = 0.0) -> float:
    """``base`` annealed on a cosine from step 0 to ``total`` (as ``CosineAnnealingLR``), ``floor`` at the end."""
    progress = min(max(done / max(total, 1), 0.0), 1.0)
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class StepReport:
    """What :func:`train_steps` did: optimizer steps, their mean loss, and why it stopped."""

    steps: int = 0
    mean_loss: float = float("nan")
    stopped: str = "max_steps"     # max_steps, deadline, wall, window (the gate said pause) or error
    compute_s: float = 0.0         # wall seconds spent computing
    wall_s: float = 0.0            # wall seconds in all (compute + pacing)
    losses: list[float] = field(default_factory=list)


def train_steps(workload: Workload, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[Any],
                max_steps: int, *, lr_base: float, lr_done: int, lr_total: int, lr_stride: int = 1,
                grad_clip: float = 1.0, stop: Callable[[int], str | None] | None = None) -> StepReport:
    """Up to ``max_steps`` optimizer steps on ``batches``.

    Step ``k`` uses the cosine learning rate at global step ``lr_done + k * lr_stride`` of ``lr_total`` (so
    several sites stepping at once anneal together). ``stop(k)``, asked at each step boundary, returns a reason
    to stop (e.g. the window closed) or None.
    """
    report, tic = StepReport(), time.perf_counter()
    model.train()
    for k in range(max_steps):
        reason = stop(k) if stop is not None else None
        if reason is not None:
            report.stopped = reason
            break
        started = time.perf_counter()
        lr = cosine_lr(lr_base, lr_done + k * lr_stride, lr_total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = workload.loss(model, next(batches))
        if not torch.isfinite(loss):
            report.stopped = "error"
            log.error("non-finite loss at local step %d: the step is not taken", k)
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        report.losses.append(float(loss.item()))
        report.steps += 1
        report.compute_s += time.perf_counter() - started
    report.mean_loss = float(np.mean(report.losses)) if report.losses else float("nan")
    report.wall_s = time.perf_counter() - tic
    return report


# ------------------------------------------------------------------------------------- the SFNO workload


@dataclass
class SFNOWorkloadConfig:
    """The SFNO backbone on a sample world (written to ``data_dir`` on first use)."""

    data_dir: str = "sample_world"
    days: int = 60
    nlat: int = 17
    nlon: int = 32
    lmax: int = 12
    spinup_days: int = 2
    seed: int = 0
    train: list[str] = field(default_factory=list)    # [start, end]; default: the first two thirds of the days
    val: list[str] = field(default_factory=list)      # default: the next sixth
    test: list[str] = field(default_factory=list)     # default: the last sixth
    embed_dim: int = 16
    num_layers: int = 2
    model_lmax: int = 10
    batch_size: int = 8
    weight_decay: float = 1.0e-4
    shard_block_states: int = 8     # consecutive states per block dealt round-robin to the sites

    def __post_init__(self) -> None:
        at_least(self, 1, "days", "nlat", "nlon", "lmax", "embed_dim", "num_layers", "model_lmax", "batch_size",
                 "shard_block_states")
        at_least(self, 0, "weight_decay", "seed")
        start = pd.Timestamp(SampleWorldConfig.start)
        cuts = [0, round(self.days * 2 / 3), round(self.days * 5 / 6), self.days]
        for name, (a, b) in zip(("train", "val", "test"), zip(cuts[:-1], cuts[1:], strict=True), strict=True):
            if not getattr(self, name):
                setattr(self, name, [(start + pd.Timedelta(days=a)).isoformat(),
                                     (start + pd.Timedelta(days=b) - pd.Timedelta(hours=1)).isoformat()])
        Splits(list(self.train), list(self.val), list(self.test))


class SFNOWorkload:
    """The SFNO backbone on the sample world, trained one step ahead with ``train-backbone``'s loss."""

    def __init__(self, **options: Any) -> None:
        self.config = cfg = SFNOWorkloadConfig(**options)
        store = Path(cfg.data_dir) / "weather.zarr"
        if not (store / "zarr.json").exists() and not (store / ".zmetadata").exists():
            world = SampleWorldConfig(nlat=cfg.nlat, nlon=cfg.nlon, lmax=cfg.lmax, days=cfg.days,
                                      spinup_days=cfg.spinup_days, seed=cfg.seed)
            log.info("writing the sample world (%d days, %dx%d) to %s", cfg.days, cfg.nlat, cfg.nlon, cfg.data_dir)
            weather = generate_weather(world, progress=False)
            write_stats(compute_stats(weather, (cfg.train[0], cfg.train[1])), write_canonical(weather, store))
        self.model_cfg = BackboneModelConfig(embed_dim=cfg.embed_dim, num_layers=cfg.num_layers,
                                             lmax=cfg.model_lmax, mmax=cfg.model_lmax)
        channels = list(self.model_cfg.channels)
        ds = open_canonical(store, channels)
        stats = read_stats(store)
        self.grid = Grid.infer(ds)
        dt = int(self.model_cfg.dt_hours)
        forcing = list(self.model_cfg.forcing)
        self.train_source = StateSource(ds, channels, stats, (cfg.train[0], cfg.train[1]), dt, self.grid, forcing)
        self.val_source = StateSource(ds, channels, stats, (cfg.val[0], cfg.val[1]), dt, self.grid, forcing)
        self.weights = torch.as_tensor(self.grid.quadrature_weights().values, dtype=torch.float32)
        variance = self.train_source.tendency_variance(self.weights)   # training-split statistics, as train-backbone
        scale = torch.tensor([16.0 if c == "t2m" else 1.0 for c in channels])
        self.channel_weights = channel_weights_from_variance("tendency_std", variance) * scale
        self.samples_per_step = int(cfg.batch_size)
        self.device = torch.device("cpu")

    def record(self) -> dict[str, Any]:
        return asdict(self.config)

    def model(self) -> torch.nn.Module:
        torch.manual_seed(self.config.seed)
        return build_sfno(self.model_cfg, self.grid)

    def optimizer(self, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=self.config.weight_decay)

    def shard_starts(self, shard: int, shards: int) -> np.ndarray:
        """The one-step sample starts of shard ``shard`` of ``shards``."""
        if not 0 <= shard < shards:
            raise ConfigError(f"shard {shard} is not in [0, {shards})")
        starts = self.train_source.starts(1)
        mine = starts[(starts // self.config.shard_block_states) % shards == shard]
        if mine.size == 0:
            raise ConfigError(f"shard {shard} of {shards} holds no training sample; use fewer sites or smaller blocks")
        return mine

    def batches(self, shard: int, shards: int, position: int = 0) -> Iterator[Batch]:
        starts, size = self.shard_starts(shard, shards), self.config.batch_size
        per_epoch = int(np.ceil(len(starts) / size))
        epoch, skip = divmod(int(position), per_epoch)
        while True:
            generator = torch.Generator().manual_seed(self.config.seed * 1000 + shard * 100003 + epoch)
            order = epoch_order(starts, generator, 0)
            for i, batch in enumerate(self.train_source.batches(order, size, 1)):
                if i >= skip:
                    yield batch
            epoch, skip = epoch + 1, 0

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return rollout_loss(model, batch, self.weights, self.channel_weights, self.device)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> float:
        model.eval()
        pairs = step_pairs(self.val_source.times, int(self.model_cfg.dt_hours))
        total, count = 0.0, 0
        for batch in self.val_source.batches(pairs, 32, 1):
            n = batch.x.shape[0]
            total += float(self.loss(model, batch)) * n
            count += n
        model.train()
        return total / max(count, 1)


def _sfno(**options: Any) -> SFNOWorkload:
    return SFNOWorkload(**options)


register_workload("sfno-sample-world", _sfno)

