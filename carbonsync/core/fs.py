"""Filesystem helpers: the one atomic write of the project, and NetCDF engine selection.

:func:`atomic_path` yields a temporary sibling of the target; when the block succeeds its content is flushed
to disk (every file and directory fsynced) and swapped into place in one step, so a reader sees the old
target or the new one, never a mixture or nothing, and a crash leaves at most a ``*.tmp-*`` sibling. On Linux a
directory is swapped with ``renameat2(RENAME_EXCHANGE)``; files use ``os.replace``, atomic on POSIX.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from carbonsync.core.errors import OptionalDependencyError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover - some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - fsync on a directory is not supported everywhere
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """fsync ``path`` and, for a directory, every file and directory below it (children first)."""
    root = Path(path)
    if root.is_dir():
        for dirpath, _, filenames in os.walk(root, topdown=False):
            for name in filenames:
                _fsync_path(Path(dirpath) / name)
            _fsync_path(Path(dirpath))
    elif root.exists():
        _fsync_path(root)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2``); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:  # pragma: no cover
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # pragma: no cover - glibc < 2.28
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def replace_atomically(src: str | Path, dst: str | Path) -> None:
    """Move ``src`` onto ``dst`` in one step (fsynced), replacing a file or a directory that exists there."""
    src, dst = Path(src), Path(dst)
    fsync_tree(src)
    either_is_dir = (dst.is_dir() and not dst.is_symlink()) or src.is_dir()
    if either_is_dir and (dst.exists() or dst.is_symlink()):
        if _exchange(src, dst):
            _fsync_path(dst.parent)
            _remove(src)  # src now holds the old directory
            return
        # No atomic exchange here (not Linux): the old directory is moved aside first, a moment without it.
        old = dst.with_name(f"{dst.name}.old-{uuid.uuid4().hex[:8]}")  # pragma: no cover
        os.replace(dst, old)  # pragma: no cover
        os.replace(src, dst)  # pragma: no cover
        _remove(old)  # pragma: no cover
    else:
        os.replace(src, dst)
    _fsync_path(dst.parent)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a directory); on success swap it into place,
    on error delete it."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        replace_atomically(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically (fsynced)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(obj: object, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (fsynced)."""
    return write_text_atomic(json.dumps(obj, indent=2, default=str), path)


def netcdf_engine() -> str:
    """The first installed xarray NetCDF engine among h5netcdf, netCDF4 and scipy."""
    for engine, module in (("h5netcdf", "h5netcdf"), ("netcdf4", "netCDF4"), ("scipy", "scipy")):
        if importlib.util.find_spec(module) is not None:
            return engine
    raise OptionalDependencyError("writing NetCDF needs h5netcdf or netCDF4 (pip install 'carbonsync[era5]')")
