"""Process-wide settings read from the environment, in one place."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PROJECT_ROOT = PACKAGE_ROOT.parent


def data_dir() -> Path:
    """Directory of the shared real data (``CARBONSYNC_DATA_DIR``, default ``../shared/data``)."""
    configured = os.environ.get("CARBONSYNC_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return (PROJECT_ROOT.parent / "shared" / "data").resolve()


def config_dir() -> Path:
    """The Hydra config tree: the packaged copy in a wheel, the repository's ``configs/`` when editable."""
    configured = os.environ.get("CARBONSYNC_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    packaged = PACKAGE_ROOT / "configs"
    if packaged.is_dir():
        return packaged
    return PROJECT_ROOT / "configs"


def http_cache_settings() -> tuple[Path | None, float]:
    """The grid-signal HTTP cache: ``CARBONSYNC_HTTP_CACHE`` (a directory; unset: no cache) and
    ``CARBONSYNC_HTTP_CACHE_MAX_AGE`` (seconds an entry may be served, default 300)."""
    directory = os.environ.get("CARBONSYNC_HTTP_CACHE")
    raw = os.environ.get("CARBONSYNC_HTTP_CACHE_MAX_AGE", "300")
    try:
        max_age = float(raw)
    except ValueError:
        raise ValueError(f"CARBONSYNC_HTTP_CACHE_MAX_AGE must be a number of seconds, got {raw!r}") from None
    if max_age <= 0:
        raise ValueError(f"CARBONSYNC_HTTP_CACHE_MAX_AGE must be positive, got {raw!r}")
    return (Path(directory).expanduser() if directory else None), max_age
