"""Shared training machinery: devices, seeding, atomic checkpoints with resume, experiment tracking.

Checkpoints are read with ``weights_only=True`` and carry a fingerprint of the configuration they were
trained under; a checkpoint from another configuration is not resumed (a warning names it and the keys that
differ, and training starts afresh). :func:`check_trained` stands between training and publishing a package:
non-finite weights, or fewer epochs or optimizer steps than the package would claim, raise TrainingError.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from carbonsync.core.checks import at_least, non_empty, one_of
from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.fs import atomic_path
from carbonsync.core.logs import get_logger
from carbonsync.core.optional import optional_import

log = get_logger(__name__)


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch RNG states as tensors and plain numbers (loadable with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` returned."""
    py, npy = state["python"], state["numpy"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), int(npy["pos"]), int(npy["has_gauss"]),
                         float(npy["cached_gaussian"])))
    torch.set_rng_state(state["torch"])


class CheckpointError(CarbonSyncError, ValueError):
    """A training checkpoint that cannot be loaded safely (not ours, corrupt, or from an older format)."""


class TrainingError(CarbonSyncError, RuntimeError):
    """Training that must not be published: non-finite weights, or fewer epochs/steps than claimed."""


# Settings that change how training runs, not what it computes: a checkpoint written with other values
# still resumes (streaming reads the same batches; the damping is fitted after training; validation hours
# only change what is logged).
RUNTIME_KEYS = frozenset({"stream", "prefetch", "read_windows", "damping_lead_steps", "val_hours", "threads", "device"})


def _plain(value: Any) -> Any:
    """Mappings, dataclasses, configs and sequences as plain dicts/lists of JSON scalars."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor | np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, str | bytes):
        return value if isinstance(value, str) else value.decode()
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def config_fingerprint(ignore: Iterable[str] = RUNTIME_KEYS, **parts: Any) -> dict[str, Any]:
    """``{dotted key: value}`` of everything that determines what training computes (model config, recipe,
    seed, data ...), flattened so that a mismatch can be reported key by key. Keys whose last component is
    in ``ignore`` are left out."""
    ignore = set(ignore)
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                if k not in ignore:
                    walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = value

    walk("", _plain(parts))
    return flat


def fingerprint_differences(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """``key: saved -> current`` for every key that differs (missing on either side included)."""
    if saved is None:
        return ["(the checkpoint has no configuration fingerprint: written by an older version)"]
    out = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if old != new:
            out.append(f"{key}: {old!r} -> {new!r}")
    return out


CHECKPOINT_FORMAT = 2


class Checkpointer:
    """Atomic training checkpoints (model, optimiser, scheduler, epoch, RNG, fingerprint) in ``directory/last.pt``.

    Checkpoints hold only tensors and plain containers and are read with ``torch.load(weights_only=True)``:
    a file planted in the run directory is refused (:class:`CheckpointError` naming it), never executed.
    ``fingerprint`` (see :func:`config_fingerprint`) identifies the configuration being trained; a
    checkpoint written under another one is not resumed: :meth:`load_matching` logs a warning naming the
    file and the keys that differ and training starts afresh (its first epoch overwrites the file).
    """

    def __init__(self, directory: str | Path, fingerprint: Mapping[str, Any] | None = None, what: str = "training"):
        self.path = Path(directory) / "last.pt"
        self.fingerprint = dict(fingerprint) if fingerprint is not None else None
        self.what = what

    def save(self, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any | None = None, extra: dict | None = None) -> None:
        state = {
            "format": CHECKPOINT_FORMAT, "epoch": epoch, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(), "fingerprint": self.fingerprint, "extra": extra or {},
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def load(self) -> dict | None:
        """The last checkpoint (read with ``weights_only=True``), or None if there is none. Temporary files a
        killed writer left beside it are removed (the checkpoint itself is only ever replaced whole)."""
        for stale in self.path.parent.glob(f"{self.path.name}.tmp-*"):
            log.warning(f"{self.what}: removing '{stale}', left by a run killed while writing a checkpoint")
            stale.unlink(missing_ok=True)
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # weights_only refuses any object but tensors and plain containers
            boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            why = next((line for line in lines if not line.startswith(boilerplate)), None) or (
                "it holds objects other than tensors and plain containers" if lines else type(err).__name__)
            raise CheckpointError(
                f"cannot load checkpoint '{self.path}' safely: torch.load(weights_only=True) refused it ({why}). "
                "It was not written by this version of CarbonSync, or was replaced; nothing in it was run. "
                "Delete it to train afresh."
            ) from None
        if not isinstance(state, dict) or not {"epoch", "model", "optimizer", "rng"} <= set(state):
            raise CheckpointError(f"checkpoint '{self.path}' is not a CarbonSync training checkpoint; delete it "
                                  "to train afresh")
        return state

    def load_matching(self) -> dict | None:
        """The last checkpoint if it was written for this ``fingerprint``; else None, with a warning naming
        the file and the differing keys (training then starts afresh)."""
        state = self.load()
        if state is None or self.fingerprint is None:
            return state
        differences = fingerprint_differences(state.get("fingerprint"), self.fingerprint)
        if differences:
            log.warning(f"{self.what}: ignoring checkpoint '{self.path}': it was trained with another model or recipe; "
                        f"starting afresh (differences: {'; '.join(differences)})")
            return None
        return state

    @staticmethod
    def restore(state: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                scheduler: Any | None = None) -> None:
        """Put model, optimiser, scheduler and RNG back as they were when ``state`` was saved."""
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])

    def resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any | None = None) -> tuple[int, dict]:
        """Restore the last matching checkpoint if there is one; returns (next epoch, extra)."""
        state = self.load_matching()
        if state is None:
            return 0, {}
        self.restore(state, model, optimizer, scheduler)
        return int(state["epoch"]) + 1, state.get("extra", {})


# ------------------------------------------------------------------------------ what training did


def count_epoch(record: dict[str, dict[str, int]], phase: str, optimizer_steps: int) -> dict[str, dict[str, int]]:
    """Add one completed epoch of ``optimizer_steps`` steps to ``phase`` in ``record`` (in place; returned).

    The record goes into every checkpoint, so it survives a kill and resume, and into the package metadata
    (``extra.trained``): what was actually trained, not what the configuration asked for.
    """
    entry = record.setdefault(phase, {"epochs": 0, "optimizer_steps": 0})
    entry["epochs"] += 1
    entry["optimizer_steps"] += int(optimizer_steps)
    return record


def check_trained(model: torch.nn.Module, record: Mapping[str, Mapping[str, int]], planned: Mapping[str, int],
                  what: str, package: str | Path | None = None) -> None:
    """Raise TrainingError unless every weight and buffer of ``model`` is finite and each phase of ``planned``
    (``{phase: epochs}``) completed its epochs with at least one optimizer step each. Call it before
    publishing a package: on failure nothing is written, and an existing ``package`` stays as it was."""
    keep = f"; {package} is left as it was" if package is not None else ""
    bad, total, names = 0, 0, []
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point() and not tensor.is_complex():
            continue
        n = int((~torch.isfinite(tensor)).sum())
        total += tensor.numel()
        if n:
            bad += n
            names.append(name)
    if bad:
        raise TrainingError(
            f"{what} training produced non-finite weights: {bad} of {total} values (in {len(names)} tensors, e.g. "
            f"'{names[0]}') are NaN or inf, so it is not published{keep}"
        )
    problems = []
    for phase, epochs in planned.items():
        done = record.get(phase, {"epochs": 0, "optimizer_steps": 0})
        if int(epochs) > 0 and int(done["epochs"]) < int(epochs):
            problems.append(f"{phase}: {done['epochs']} of {epochs} epochs trained")
        elif int(done["optimizer_steps"]) < int(epochs):
            problems.append(f"{phase}: {done['optimizer_steps']} optimizer steps in {epochs} epochs "
                            "(an epoch with no batch: too few samples for the batch or rollout length?)")
    if problems:
        raise TrainingError(f"{what} was not trained as configured ({'; '.join(problems)}), so it is not "
                            f"published{keep}")


@dataclasses.dataclass
class TrainSettings:
    """The ``train`` node's keys shared by every training stage (``train.seed``, ``train.device``, ``train.threads``)."""

    seed: int = 0
    device: str = "auto"  # auto = cuda if available, else cpu
    threads: int = 2      # torch intra-op threads

    def __post_init__(self) -> None:
        at_least(self, 1, "threads")
        at_least(self, 0, "seed")
        non_empty(self, "device")


@dataclasses.dataclass
class LoggingConfig:
    """The ``logging`` node (``configs/logging/``): experiment tracking backend."""

    backend: str = "none"  # none or wandb
    project: str = "carbonsync"
    mode: str = "offline"  # no network here; sync later with `wandb sync`

    def __post_init__(self) -> None:
        one_of(self, "backend", ["none", "wandb"])


class Tracker:
    """Experiment tracking: wandb in offline mode, or nothing. ``log`` never fails a run."""

    def __init__(self, cfg: LoggingConfig | None, run_dir: str | Path, name: str, config: dict | None = None):
        self.run = None
        if cfg is None or cfg.backend == "none":
            return
        if cfg.backend != "wandb":
            raise ValueError(f"logging.backend '{cfg.backend}' is not one of: none, wandb")

        wandb = optional_import("wandb", "tracking")
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(project=cfg.project, mode=cfg.mode,
                              dir=str(run_dir), name=name, config=config or {}, reinit="finish_previous")

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Send ``metrics`` to the tracker; a tracker failure is logged once and tracking stops, the run goes on."""
        if self.run is None:
            return
        try:
            self.run.log(metrics, step=step)
        except Exception as err:  # tracking must never fail a training run
            log.warning("experiment tracking failed (%s: %s); training goes on without it", type(err).__name__, err)
            self.run = None

    def finish(self) -> None:
        if self.run is None:
            return
        try:
            self.run.finish()
        except Exception as err:  # as in log(): never fail the run
            log.warning("experiment tracking could not finish (%s: %s)", type(err).__name__, err)
        self.run = None
