"""Logging set-up and progress: a bar only on a terminal, periodic one-line status in a log file."""

from __future__ import annotations

import io
import logging

from carbonsync.core import logs


def test_progress_off_a_terminal_logs_periodic_status_lines(caplog, monkeypatch):
    monkeypatch.setattr(logs, "on_terminal", lambda: False)
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(logs.time, "monotonic", lambda: float(next(clock)))
    with caplog.at_level(logging.INFO, logger="carbonsync"):
        bar = logs.Progress(range(10), desc="epoch 1/1", interval_s=25.0)
        items = []
        for item in bar:
            items.append(item)
            bar.set_postfix(loss="0.5")
    assert items == list(range(10))
    lines = [r.getMessage() for r in caplog.records]
    assert 2 <= len(lines) <= 5  # one line per 25 s of a 100 s loop, not one per item
    assert lines[0].startswith("epoch 1/1: ") and "/10 it (" in lines[0] and "loss=0.5" in lines[0]
    assert all("\r" not in line for line in lines)


def test_disabled_progress_is_silent(caplog, monkeypatch):
    monkeypatch.setattr(logs, "on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="carbonsync"):
        assert list(logs.Progress(range(3), desc="x", enabled=False, interval_s=0.0)) == [0, 1, 2]
    assert not caplog.records


def test_configure_sets_levels_and_detaches():
    stream = io.StringIO()
    try:
        logs.configure(-1, stream)
        logs.get_logger("carbonsync.test").info("hidden")
        logs.get_logger("test").warning("shown")
        logs.configure(0, stream)
        logs.get_logger(__name__).info("info now")
        assert len([h for h in logs.logger.handlers if getattr(h, "_carbonsync_cli", False)]) == 1
    finally:
        logs.detach()
    assert stream.getvalue().splitlines() == ["shown", "info now"]
    assert logs.logger.propagate
