"""Bridges to other weather-AI toolkits.

- :mod:`carbonsync.interop.earth2studio`: a trained SFNO package as an earth2studio prognostic model
  (:class:`~carbonsync.interop.earth2studio.CarbonSyncPrognostic`) and a canonical store as an earth2studio
  data source (:class:`~carbonsync.interop.earth2studio.CanonicalStoreSource`). Needs
  ``pip install 'carbonsync[earth2studio]'`` only when used, not when imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CanonicalStoreSource", "CarbonSyncPrognostic", "CoordinateError"]


def __getattr__(name: str) -> Any:  # lazy: importing carbonsync.interop loads nothing heavy
    if name in __all__:
        from carbonsync.interop import earth2studio

        return getattr(earth2studio, name)
    raise AttributeError(f"module 'carbonsync.interop' has no attribute '{name}'")
