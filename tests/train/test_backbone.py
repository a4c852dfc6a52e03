"""Backbone training: kill-and-resume reproducibility, multi-step fine-tuning, streaming input, DDP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from carbonsync.config import compose, typed
from carbonsync.core.layout import RunPaths
from carbonsync.models.inputs import backbone_forcing
from carbonsync.models.package import load_package
from carbonsync.models.sfno import SFNO
from carbonsync.physics.grid import Grid
from carbonsync.train.backbone import TrainingPrognostic, damping_hindcasts, rollout_starts

BASE = ["size=tiny", "progress=false", "train.threads=1", "train.backbone.epochs=4", "train.backbone.finetune_epochs=1"]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "packages/backbone/weights.pt", weights_only=True)


def train_cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "carbonsync.cli", "train-backbone", f"run_dir={run_dir}", *BASE, *extra]


def with_data(tiny_run, target: Path) -> Path:
    shutil.copytree(RunPaths(tiny_run.run_dir).data, target / "data")
    return target


@pytest.fixture(scope="module")
def uninterrupted(tiny_run, tmp_path_factory) -> Path:
    run_dir = with_data(tiny_run, tmp_path_factory.mktemp("uninterrupted"))
    subprocess.run(train_cmd(run_dir), check=True, capture_output=True)
    return run_dir


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tiny_run, uninterrupted, tmp_path):
    run_dir = with_data(tiny_run, tmp_path)
    checkpoint = run_dir / "checkpoints/backbone/last.pt"
    proc = subprocess.Popen(train_cmd(run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    killed_at = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= killed_at < 5 and not (run_dir / "packages/backbone").exists()
    # a kill during a write can leave a temporary file (never the checkpoint itself, which is replaced
    # atomically); the resumed run clears it
    subprocess.run(train_cmd(run_dir), check=True, capture_output=True)
    assert not list(checkpoint.parent.glob("*.tmp-*")), "a half-written checkpoint was left behind"
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 5
    resumed, reference = weights(run_dir), weights(uninterrupted)
    trained = [load_package(r / "packages/backbone").metadata["extra"]["trained"] for r in (run_dir, uninterrupted)]
    assert trained[0] == trained[1]  # the record of what was trained survives the kill as well
    assert resumed.keys() == reference.keys()
    for name in reference:
        assert torch.equal(resumed[name], reference[name]), name


def test_package_records_both_phases(uninterrupted):
    meta = load_package(uninterrupted / "packages/backbone").metadata
    assert [p["name"] for p in meta["extra"]["phases"]] == ["pretrain", "finetune"]
    assert meta["extra"]["phases"][1]["steps"] == 2
    trained = meta["extra"]["trained"]  # what was trained, counted as it happened
    assert trained["pretrain"]["epochs"] == 4 and trained["finetune"]["epochs"] == 1
    per_epoch = trained["pretrain"]["optimizer_steps"] / 4
    assert per_epoch == int(per_epoch) >= 1 and trained["finetune"]["optimizer_steps"] >= 1


# ------------------------------------------------------------------------------------- bad inputs


def copy_run(run: Path, target: Path) -> Path:
    """A trained run (data, checkpoint and package) to break."""
    for part in ("data", "checkpoints", "packages"):
        shutil.copytree(run / part, target / part)
    return target


def package_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "packages/backbone").iterdir())}


def test_nan_in_the_store_stops_training_and_keeps_the_package(uninterrupted, tmp_path):
    import zarr

    run_dir = copy_run(uninterrupted, tmp_path)
    before = package_bytes(run_dir)
    zarr.open_group(str(RunPaths(run_dir).weather), mode="r+")["t2m"][100, 3, 4] = np.nan
    out = subprocess.run(train_cmd(run_dir), capture_output=True, text=True)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "variable 't2m' has 1 NaN value(s), first at time=2020-08-05T04:00:00" in out.stderr
    assert package_bytes(run_dir) == before
    evaluate = [sys.executable, "-m", "carbonsync.cli", "evaluate", f"run_dir={run_dir}", *BASE]
    out = subprocess.run(evaluate, capture_output=True, text=True)  # no all-NaN scores either
    assert out.returncode == 1 and "variable 't2m' has 1 NaN value(s)" in out.stderr, out.stderr[-2000:]
    assert not (run_dir / "evaluation").exists()


def test_diverged_training_is_not_published(uninterrupted, tmp_path):
    """Valid data, but a learning rate that blows the weights up: the old package stays."""
    run_dir = copy_run(uninterrupted, tmp_path)
    before = package_bytes(run_dir)
    out = subprocess.run(train_cmd(run_dir, "train.backbone.lr=1e30", "train.backbone.finetune_lr=1e30"),
                         capture_output=True, text=True)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "backbone training produced non-finite weights" in out.stderr and "is left as it was" in out.stderr
    assert package_bytes(run_dir) == before


def test_a_phase_without_samples_is_not_published(uninterrupted, tmp_path):
    """Rollouts longer than the training split: fine-tuning would run no optimizer step."""
    run_dir = copy_run(uninterrupted, tmp_path)
    before = package_bytes(run_dir)
    out = subprocess.run(train_cmd(run_dir, "train.backbone.rollout_steps=500"), capture_output=True, text=True)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "finetune: 0 optimizer steps in 1 epochs" in out.stderr
    assert package_bytes(run_dir) == before


def test_a_planted_checkpoint_is_refused_by_name(uninterrupted, tmp_path):
    run_dir = copy_run(uninterrupted, tmp_path)
    marker, checkpoint = tmp_path / "marker", run_dir / "checkpoints/backbone/last.pt"
    script = ("import pathlib, sys, torch\n"
              "class Planted:\n"
              "    def __reduce__(self):\n"
              "        return (pathlib.Path.write_text, (pathlib.Path(sys.argv[1]), 'code ran'))\n"
              "torch.save({'epoch': 5, 'model': Planted()}, sys.argv[2])\n")
    subprocess.run([sys.executable, "-c", script, str(marker), str(checkpoint)], check=True)
    out = subprocess.run(train_cmd(run_dir), capture_output=True, text=True)
    assert out.returncode == 1 and f"cannot load checkpoint '{checkpoint}' safely" in out.stderr, out.stderr[-2000:]
    assert not marker.exists()


@pytest.mark.parametrize(("override", "difference"), [
    ("backbone.embed_dim=16", "model.embed_dim: 8 -> 16"),
    ("train.backbone.epochs=5", "train.epochs: 4 -> 5"),
])
def test_a_checkpoint_of_another_configuration_starts_afresh(uninterrupted, tmp_path, override, difference):
    """A finished run's checkpoint under a changed model or recipe: named in a warning, training starts afresh
    (no skipped pre-training, no stale weights), and the package records what was trained."""
    run_dir = copy_run(uninterrupted, tmp_path)
    out = subprocess.run(train_cmd(run_dir, override), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert f"ignoring checkpoint '{run_dir / 'checkpoints/backbone/last.pt'}'" in log and difference in log
    meta = load_package(run_dir / "packages/backbone").metadata
    reference = load_package(uninterrupted / "packages/backbone").metadata["extra"]["trained"]
    epochs = 5 if "epochs" in override else 4
    per_epoch = reference["pretrain"]["optimizer_steps"] // 4
    assert meta["extra"]["phases"][0]["epochs"] == epochs
    assert meta["extra"]["trained"] == {"pretrain": {"epochs": epochs, "optimizer_steps": epochs * per_epoch},
                                        "finetune": reference["finetune"]}
    assert meta["config"]["embed_dim"] == (16 if "embed_dim" in override else 8)
    assert torch.load(run_dir / "checkpoints/backbone/last.pt", weights_only=True)["epoch"] == epochs + 1


def test_streaming_input_trains_the_same_model(tiny_run, uninterrupted, tmp_path):
    """Reading batches from Zarr through dask with prefetching changes nothing but where data comes from."""
    from carbonsync.train.backbone import train_backbone

    run_dir = with_data(tiny_run, tmp_path)
    cfg = typed(compose([f"run_dir={run_dir}", *BASE, "train.backbone.stream=true"]))
    train_backbone(cfg.backbone, cfg.train.backbone, cfg.data.splits, RunPaths(run_dir).weather, run_dir,
                   settings=cfg.train, progress=False)
    streamed, reference = weights(run_dir), weights(uninterrupted)
    for name in reference:
        torch.testing.assert_close(streamed[name], reference[name], rtol=0, atol=1e-6)


def test_damping_hindcasts_run_the_model_being_trained_through_the_one_rollout():
    grid, forcing = Grid(9, 16, "equiangular"), ["insolation_change"]
    torch.manual_seed(0)
    model = SFNO(in_channels=2, nlat=9, nlon=16, forcing_channels=1, embed_dim=4, num_layers=1, lmax=5, mmax=5)
    stats = {"variables": {"a": {"mean": 1.0, "std": 2.0}, "b": {"mean": 0.0, "std": 1.0}}}
    prognostic = TrainingPrognostic(model, ["a", "b"], grid, 6, forcing, stats)
    times = pd.date_range("2020-06-01", periods=12, freq="6h")
    states = torch.randn(12, 2, 9, 16)
    seen = set()
    for lead, valid, forecast, observed in damping_hindcasts(prognostic, states, times, 3, batch=4):
        seen.add(lead)
        first = np.flatnonzero(times.isin(valid - pd.Timedelta(hours=6 * lead)))
        expected = states[torch.as_tensor(first)]
        with torch.no_grad():
            for k in range(lead):  # the model stepped by hand with the forcing of each step's start
                expected = model(expected, backbone_forcing(times[first + k], grid, forcing, 6))
        torch.testing.assert_close(forecast, expected)
        torch.testing.assert_close(observed, states[torch.as_tensor(first + lead)])
    assert seen == {1, 2, 3}
    torch.testing.assert_close(prognostic.denormalise(prognostic.normalise(states)), states)
    with pytest.raises(ValueError, match="too few"):
        next(damping_hindcasts(prognostic, states[:3], times[:3], 3))


def test_rollout_starts_skip_gaps():
    times = pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 06:00", "2020-01-01 12:00", "2020-01-02 00:00",
                              "2020-01-02 06:00", "2020-01-02 12:00", "2020-01-02 18:00"])
    np.testing.assert_array_equal(rollout_starts(times, 6, 1), [0, 1, 3, 4, 5])
    np.testing.assert_array_equal(rollout_starts(times, 6, 2), [0, 3, 4])
    np.testing.assert_array_equal(rollout_starts(times, 6, 3), [3])
    assert rollout_starts(times[:2], 6, 3).size == 0


def test_data_parallel_matches_single_process(tiny_run, uninterrupted, tmp_path):
    """torchrun with 2 CPU processes (gloo): each trains on half of every batch; DDP's averaged gradient
    equals the full batch's, so the weights match the single-process run to float tolerance."""
    run_dir = with_data(tiny_run, tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "carbonsync.cli", "train-backbone", f"run_dir={run_dir}", *BASE]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert load_package(run_dir / "packages/backbone").metadata["extra"]["world_size"] == 2
    ddp, reference = weights(run_dir), weights(uninterrupted)
    for name in reference:
        torch.testing.assert_close(ddp[name], reference[name], rtol=1e-3, atol=1e-4)
