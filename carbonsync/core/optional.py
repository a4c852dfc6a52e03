"""Lazy imports of optional dependencies with a message that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from carbonsync.core.errors import OptionalDependencyError


def optional_import(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an error that says which ``carbonsync[extra]`` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - exercised only where the extra is missing
        raise OptionalDependencyError(
            f"'{module}' is needed here but is not installed: pip install 'carbonsync[{extra}]'"
        ) from err
