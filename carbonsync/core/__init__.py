"""The ground floor: settings, the error base class, the atomic write, the run layout, time helpers, logging
and optional imports. Imports nothing else of CarbonSync.

- :mod:`~carbonsync.core.settings`: environment settings (``CARBONSYNC_DATA_DIR``, ``CARBONSYNC_CONFIG_DIR``)
- :mod:`~carbonsync.core.errors`: :class:`CarbonSyncError`, the base of every library error
- :mod:`~carbonsync.core.fs`: :func:`atomic_path`, :func:`write_json_atomic` (fsynced, swapped into place)
- :mod:`~carbonsync.core.layout`: :class:`RunPaths`, the run directory's layout
- :mod:`~carbonsync.core.time`: naive-UTC helpers
- :mod:`~carbonsync.core.logs`: the ``carbonsync`` logger and terminal-aware progress
- :mod:`~carbonsync.core.optional`: lazy optional imports that name the extra
"""

from carbonsync.core.errors import CarbonSyncError, ConfigError, InputNotFoundError, InvalidValuesError

__all__ = ["CarbonSyncError", "ConfigError", "InputNotFoundError", "InvalidValuesError"]
