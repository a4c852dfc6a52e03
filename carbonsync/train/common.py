"""Shared training machinery: devices, seeding, atomic checkpoints with resume, experiment tracking."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class Checkpointer:
    """Atomic training checkpoints (model, optimiser, scheduler, epoch, RNG) in ``directory/last.pt``."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / "last.pt"

    def save(self, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any | None = None, extra: dict | None = None) -> None:
        state = {
            "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(), "extra": extra or {},
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def load(self) -> dict | None:
        """The last checkpoint, or None."""
        if not self.path.is_file():
            return None
        # The checkpoint holds RNG states (numpy arrays, tuples), so it cannot be weights-only; it is
        # our own file in our own run directory. Model packages for inference are weights-only.
        return torch.load(self.path, map_location="cpu", weights_only=False)

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
        """Load the last checkpoint if there is one; returns (next epoch, extra)."""
        state = self.load()
        if state is None:
            return 0, {}
        self.restore(state, model, optimizer, scheduler)
        return int(state["epoch"]) + 1, state.get("extra", {})


class Tracker:
    """Experiment tracking: wandb in offline mode, or nothing. ``log`` never fails a run."""

    def __init__(self, cfg: Any, run_dir: str | Path, name: str, config: dict | None = None):
        self.run = None
        if cfg is None or cfg.get("backend", "none") == "none":
            return
        if cfg.backend != "wandb":
            raise ValueError(f"logging.backend '{cfg.backend}' is not one of: none, wandb")

        wandb = optional_import("wandb", "tracking")
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(project=cfg.get("project", "carbonsync"), mode=cfg.get("mode", "offline"),
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
