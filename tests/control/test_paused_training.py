"""A real paused run: `train-backbone control.enabled=true` on a replayed signal that forces pauses ends with
exactly the weights of an uninterrupted run."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from carbonsync.config import compose
from carbonsync.control.runtime import DecisionLog
from carbonsync.models.package import load_package
from carbonsync.pipeline import train_backbone

START = pd.Timestamp("2024-05-01")


def _recording(path, replay_start: pd.Timestamp):
    """A 5-min MOER recording: a week of calm history, then 3-hour spikes every 4 hours from the replay start."""
    times = pd.date_range(START, replay_start + pd.Timedelta(days=3), freq="5min", inclusive="left")
    values = np.full(len(times), 400.0) + 20 * np.sin(np.arange(len(times)) / 12)
    since = (times - replay_start) / pd.Timedelta(hours=1)
    values[(since >= 0.5) & (since % 4 < 3)] = 950.0
    pd.DataFrame({"point_time": times.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "CAISO_NORTH": values.round(2)}
                 ).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_a_paused_backbone_run_ends_with_the_uninterrupted_weights(tiny_run, tmp_path):
    replay_start = START + pd.Timedelta(days=8)
    recording = _recording(tmp_path / "moer.csv", replay_start)
    run_dir = tmp_path / "controlled"
    shutil.copytree(tiny_run.run_dir / "data", run_dir / "data")
    cfg = compose(["size=tiny", f"run_dir={run_dir}", "progress=false", "control.enabled=true",
                   "control.carbon.provider=file", f"control.carbon.path={recording}", "control.carbon.zone=caiso",
                   f"control.replay_start={replay_start.isoformat()}", "control.replay_step_s=300",
                   "control.interval_s=300", "control.poll_s=300", "control.actuator=dry-run"])
    package = train_backbone(cfg)
    decisions = DecisionLog(run_dir / "control" / "decisions.jsonl").read()
    paused = [d for d in decisions if not d["run"]]
    assert paused and any(d["run"] for d in decisions[decisions.index(paused[0]):]), "no pause and resume happened"
    assert all("carbon" in d["sentence"] for d in decisions)
    controlled = load_package(package).model.state_dict()
    reference = load_package(tiny_run.run_dir / "packages" / "backbone").model.state_dict()
    assert controlled.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(controlled[name], tensor), name
