"""Training checkpoints: weights-only loading, RNG state as tensors, configuration fingerprints, and the
check between training and publishing a package."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from carbonsync.core.errors import CarbonSyncError
from carbonsync.train import common
from carbonsync.train.common import (
    Checkpointer,
    CheckpointError,
    TrainingError,
    check_trained,
    config_fingerprint,
    count_epoch,
    fingerprint_differences,
    rng_state,
    seed_everything,
    set_rng_state,
)


def draws() -> tuple:
    return random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()), float(torch.rand(1))


def setup(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    return model, optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)


def step(model, optimizer, scheduler) -> None:
    x = torch.randn(4, 3)
    loss = model(x).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


# ------------------------------------------------------------------------------------------- RNG state


def test_rng_state_is_tensors_and_plain_values_and_round_trips(tmp_path: Path) -> None:
    seed_everything(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's generator
    np.random.randn()
    state = rng_state()
    expected = draws()
    torch.save(state, tmp_path / "rng.pt")
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)  # nothing but tensors and plain containers
    seed_everything(99)
    set_rng_state(loaded)
    assert draws() == expected


# --------------------------------------------------------------------------------------- checkpoints


def test_checkpoints_load_weights_only_and_resume_exactly(tmp_path: Path, monkeypatch) -> None:
    model, optimizer, scheduler = setup()
    checkpoints = Checkpointer(tmp_path, {"lr": 0.1})
    for _ in range(2):
        step(model, optimizer, scheduler)
    checkpoints.save(1, model, optimizer, scheduler, extra={"trained": {"train": {"epochs": 2, "optimizer_steps": 2}}})
    for _ in range(3):
        step(model, optimizer, scheduler)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    calls = []
    real_load = torch.load
    monkeypatch.setattr(common.torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    model, optimizer, scheduler = setup(seed=1)  # other initial weights: all must come from the checkpoint
    epoch, extra = Checkpointer(tmp_path, {"lr": 0.1}).resume(model, optimizer, scheduler)
    assert calls and all(kw.get("weights_only") is True for kw in calls)
    assert epoch == 2 and extra["trained"]["train"]["optimizer_steps"] == 2
    for _ in range(3):
        step(model, optimizer, scheduler)
    for name, value in reference.items():
        assert torch.equal(model.state_dict()[name], value), name


class Planted:
    """What an attacker would plant: unpickling it runs code (here: writes a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_a_planted_pickle_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    checkpoint = tmp_path / "last.pt"
    torch.save({"epoch": 3, "model": {}, "optimizer": {}, "rng": Planted(marker)}, checkpoint)
    torch.load(checkpoint, weights_only=False)  # the trap works: an unsafe load runs it
    assert marker.read_text() == "code ran"
    marker.unlink()
    model, optimizer, scheduler = setup()
    with pytest.raises(CheckpointError, match=rf"cannot load checkpoint '{checkpoint}' safely.*weights_only=True") as info:
        Checkpointer(tmp_path).resume(model, optimizer, scheduler)
    assert isinstance(info.value, CarbonSyncError) and "nothing in it was run" in str(info.value)
    assert not marker.exists()


def test_garbage_or_foreign_checkpoints_are_named(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt' safely"):
        Checkpointer(tmp_path).load()
    torch.save({"weights": torch.zeros(2)}, tmp_path / "last.pt")  # loadable, but not ours
    with pytest.raises(CheckpointError, match="is not a CarbonSync training checkpoint"):
        Checkpointer(tmp_path).load()


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path: Path, caplog) -> None:
    model, optimizer, scheduler = setup()
    saved = config_fingerprint(model={"embed_dim": 8}, train={"epochs": 1, "lr": 0.1})
    Checkpointer(tmp_path, saved).save(0, model, optimizer, scheduler)
    assert Checkpointer(tmp_path, dict(saved)).load_matching() is not None
    other = config_fingerprint(model={"embed_dim": 16}, train={"epochs": 2, "lr": 0.1})
    caplog.clear()
    with caplog.at_level("WARNING", logger="carbonsync"):
        assert Checkpointer(tmp_path, other, what="backbone").resume(model, optimizer, scheduler) == (0, {})
    message = caplog.text
    assert f"backbone: ignoring checkpoint '{tmp_path / 'last.pt'}'" in message and "starting afresh" in message
    assert "model.embed_dim: 8 -> 16" in message and "train.epochs: 1 -> 2" in message and "train.lr" not in message
    # a checkpoint without a fingerprint (an older format) is not resumed either
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state.pop("fingerprint")
    torch.save(state, tmp_path / "last.pt")
    assert Checkpointer(tmp_path, saved).load_matching() is None


def test_fingerprint_flattens_configs_and_leaves_out_runtime_settings() -> None:
    from omegaconf import OmegaConf

    @dataclasses.dataclass
    class Recipe:
        epochs: int = 2
        stream: bool = False  # how batches are read, not what is trained
        scale: dict = dataclasses.field(default_factory=lambda: {"t2m": 16.0})

    typed = config_fingerprint(train=Recipe(), seed=0, period=("2020-01-01", "2020-02-01"))
    assert typed == {"train.epochs": 2, "train.scale.t2m": 16.0, "seed": 0, "period": ["2020-01-01", "2020-02-01"]}
    hydra = config_fingerprint(train=OmegaConf.create({"epochs": 2, "stream": True, "scale": {"t2m": 16.0}}),
                               seed=0, period=OmegaConf.create(["2020-01-01", "2020-02-01"]))
    assert hydra == typed  # a DictConfig and a dataclass of the same values agree; `stream` does not count
    assert fingerprint_differences(typed, {**typed, "seed": 1}) == ["seed: 0 -> 1"]
    assert "older version" in fingerprint_differences(None, typed)[0]


# ------------------------------------------------------------------------------ before publishing


def test_check_trained_refuses_non_finite_weights() -> None:
    model = torch.nn.Linear(3, 2)
    check_trained(model, count_epoch({}, "train", 4), {"train": 1}, "toy")
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
        model.bias[1] = float("inf")
    with pytest.raises(TrainingError, match=r"toy training produced non-finite weights: 2 of 8 values .*'weight'.* "
                                            r"not published; pkg/toy is left as it was"):
        check_trained(model, count_epoch({}, "train", 4), {"train": 1}, "toy", "pkg/toy")


def test_check_trained_refuses_untrained_phases() -> None:
    model = torch.nn.Linear(3, 2)
    record = count_epoch(count_epoch({}, "pretrain", 5), "pretrain", 5)
    check_trained(model, record, {"pretrain": 2}, "toy")
    with pytest.raises(TrainingError, match=r"pretrain: 2 of 3 epochs trained"):
        check_trained(model, record, {"pretrain": 3}, "toy")
    with pytest.raises(TrainingError, match=r"finetune: 0 of 1 epochs trained"):
        check_trained(model, record, {"pretrain": 2, "finetune": 1}, "toy")
    count_epoch(record, "finetune", 0)  # an epoch that had no batch: nothing was trained in it
    with pytest.raises(TrainingError, match=r"finetune: 0 optimizer steps in 1 epochs"):
        check_trained(model, record, {"pretrain": 2, "finetune": 1}, "toy")


def test_diverged_irradiance_training_is_neither_scored_nor_published(tiny_run, tmp_path: Path) -> None:
    """The irradiance trainer goes through the same guard as the backbone's: the old package stays."""
    import shutil
    import subprocess
    import sys

    from carbonsync.core.layout import RunPaths

    run = RunPaths(tiny_run.run_dir)
    shutil.copytree(run.data, tmp_path / "data")
    shutil.copytree(run.packages / "irradiance", tmp_path / "packages" / "irradiance")
    before = {p.name: p.read_bytes() for p in (tmp_path / "packages" / "irradiance").iterdir()}
    cmd = [sys.executable, "-m", "carbonsync.cli", "train-irradiance", f"run_dir={tmp_path}", "size=tiny",
           "progress=false", "train.threads=1", "train.irradiance.lr=1e30"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "irradiance training produced non-finite weights" in out.stderr and "is left as it was" in out.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "packages" / "irradiance").iterdir()} == before
    assert not (tmp_path / "evaluation" / "irradiance_scores.nc").exists()
