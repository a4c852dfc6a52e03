"""One error base class: every error the library raises on purpose derives from :class:`CarbonSyncError`.

Each subclass also derives from the built-in exception a caller would expect (``ValueError`` for bad values,
``KeyError`` for unknown names, ``FileNotFoundError`` for missing inputs), so ``except ValueError`` keeps
working. The CLI prints ``carbonsync: error: <message>`` for any of them.
"""

from __future__ import annotations


class CarbonSyncError(Exception):
    """Base class of every CarbonSync error: its message names the field, file or value at fault."""


class ConfigError(CarbonSyncError, ValueError):
    """A configuration value that is missing, of the wrong type or out of range (the message names the key)."""


class InputNotFoundError(CarbonSyncError, FileNotFoundError):
    """An input file or store that a stage needs does not exist."""


class InvalidValuesError(CarbonSyncError, ValueError):
    """Values that are NaN, infinite or out of their physical range where a stage needs finite ones."""


class OptionalDependencyError(CarbonSyncError, ImportError):
    """An optional third-party package that a feature needs is not installed (the message names the extra)."""
