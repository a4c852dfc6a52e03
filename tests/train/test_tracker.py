"""Experiment tracking never fails a training run."""

from __future__ import annotations

import logging

from carbonsync.train.common import Tracker


class BrokenRun:
    def __init__(self):
        self.calls = 0

    def log(self, metrics, step=None):
        self.calls += 1
        raise OSError("disk full")

    def finish(self):
        raise RuntimeError("sync failed")


def test_tracker_failure_is_logged_once_and_the_run_goes_on(tmp_path, caplog):
    tracker = Tracker(None, tmp_path, "t")
    run = BrokenRun()
    tracker.run = run
    with caplog.at_level(logging.WARNING, logger="carbonsync"):
        tracker.log({"loss": 1.0}, step=0)
        tracker.log({"loss": 0.5}, step=1)
        tracker.finish()
    assert run.calls == 1
    assert "disk full" in caplog.text and "training goes on" in caplog.text
    assert tracker.run is None


def test_no_backend_is_a_no_op(tmp_path):
    tracker = Tracker(None, tmp_path, "t")
    tracker.log({"loss": 1.0})
    tracker.finish()
    assert tracker.run is None
