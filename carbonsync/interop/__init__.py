"""Bridges to other weather-AI toolkits.

- :mod:`carbonsync.interop.earth2studio`: a trained SFNO package as an earth2studio prognostic model
  (:class:`~carbonsync.interop.earth2studio.CarbonSyncPrognostic`, stepping through the forecast chain's one
  rollout, :func:`carbonsync.forecast.chain.rollout_states`) and a canonical store as an earth2studio data
  source (:class:`~carbonsync.interop.earth2studio.CanonicalStoreSource`). Needs
  ``pip install 'carbonsync[earth2studio]'`` only when used, not when imported.
"""

from carbonsync.interop.earth2studio import (
    CanonicalStoreSource,
    CarbonSyncPrognostic,
    CoordinateError,
    canonical_names,
    e2s_names,
)

__all__ = ["CanonicalStoreSource", "CarbonSyncPrognostic", "CoordinateError", "canonical_names", "e2s_names"]
