"""The command line: one-line errors (tracebacks only under -v), logging to stderr, results to stdout."""

from __future__ import annotations

import subprocess
import sys

import pytest

from carbonsync.cli import main


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "carbonsync.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_missing_input_is_one_line_without_traceback(tmp_path):
    out = run_cli("train-backbone", f"run_dir={tmp_path}", "progress=false")
    assert out.returncode == 1
    first = out.stderr.splitlines()[0]
    assert first.startswith("carbonsync: error: ") and "weather.zarr" in first and "sample-world" in first
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_verbose_shows_the_traceback(tmp_path):
    out = run_cli("-v", "train-backbone", f"run_dir={tmp_path}", "progress=false")
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "carbonsync: error: " in out.stderr


def test_unknown_override_names_the_key():
    out = run_cli("config", "train.backbone.epochz=3")
    assert out.returncode == 1
    assert out.stderr.startswith("carbonsync: error: ") and "train.backbone.epochz" in out.stderr
    assert "Traceback" not in out.stderr


def test_main_returns_nonzero_and_leaves_no_handler(tmp_path, capsys):
    from carbonsync.core.logs import logger

    assert main(["-q", "train-backbone", f"run_dir={tmp_path}"]) == 1
    assert "carbonsync: error:" in capsys.readouterr().err
    assert not [h for h in logger.handlers if getattr(h, "_carbonsync_cli", False)]


def test_quiet_and_verbose_exclude_each_other():
    with pytest.raises(SystemExit):
        main(["-q", "-v", "config"])
