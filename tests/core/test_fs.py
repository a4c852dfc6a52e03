"""The one atomic write: files and directories swapped into place whole, nothing left behind on failure."""

from __future__ import annotations

import json
import os
import threading

import pytest

from carbonsync.core import fs


def test_file_written_atomically_and_replaced(tmp_path):
    target = tmp_path / "a" / "config.json"
    fs.write_json_atomic({"x": 1}, target)
    assert json.loads(target.read_text()) == {"x": 1}
    fs.write_json_atomic({"x": 2}, target)
    assert json.loads(target.read_text()) == {"x": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.json"]


def test_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "package"
    with fs.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("old")
    with pytest.raises(RuntimeError, match="boom"), fs.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("half")
        raise RuntimeError("boom")
    assert (target / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["package"]


def test_directory_swap_has_no_moment_without_the_target(tmp_path):
    """A reader polling the directory while it is replaced many times always finds a whole one."""
    target = tmp_path / "store"
    with fs.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "version").write_text("0")
    seen, missing, stop = set(), [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.add((target / "version").read_text())
            except FileNotFoundError:
                missing.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 60):
            with fs.atomic_path(target) as tmp:
                tmp.mkdir()
                (tmp / "version").write_text(str(i))
    finally:
        stop.set()
        thread.join()
    assert (target / "version").read_text() == "59"
    assert not missing, f"the target was missing {len(missing)} times during the swaps"
    assert len(seen) > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_replace_swaps_a_directory_for_a_file_and_back(tmp_path):
    target = tmp_path / "t"
    fs.write_text_atomic("file", target)
    with fs.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "inner").write_text("dir")
    assert (target / "inner").read_text() == "dir"


def test_fsync_tree_visits_every_file(tmp_path, monkeypatch):
    (tmp_path / "d" / "e").mkdir(parents=True)
    for name in ("d/a", "d/e/b"):
        (tmp_path / name).write_text("x")
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    fs.fsync_tree(tmp_path / "d")
    assert len(synced) == 4  # two files and two directories


def test_netcdf_engine_is_installed():
    assert fs.netcdf_engine() in ("h5netcdf", "netcdf4", "scipy")
