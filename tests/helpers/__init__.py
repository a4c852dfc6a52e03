"""Helpers shared by the tests: repository paths and the shared real-data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonsync.core.settings import data_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    return data_dir()


requires_shared_data = pytest.mark.skipif(
    not shared_data_dir().is_dir(),
    reason=f"real data not found at {shared_data_dir()} (set CARBONSYNC_DATA_DIR to the shared data directory)",
)
