"""Grid signals: one provider layer for live and recorded carbon intensity, marginal emissions, price,
renewable share and curtailment (issue 11; the providers are being built). It sits above ``forecast`` and
``evaluate``/``train`` and below ``placement``.

- :mod:`.base`: the :class:`GridSignal` protocol, the signal contract (normalised units, estimated flags,
  retrieval time), named errors carrying provider, endpoint and zone, and the provider registry;
- :mod:`.zones`: the zone lexicon mapping each provider's zone codes onto one another;
- :mod:`.replay`: :class:`RecordedSignal`, a recorded trace (and its issued forecasts) served causally as of
  a :class:`ReplayClock`;
- :mod:`.files`: recorded signals from files (WattTime MOER actuals and issued forecasts so far);
- :mod:`.http`: timeouts, retries with backoff, same-origin redirects and named errors for live providers;
- :mod:`.watttime`: the WattTime API v3 (registered as ``watttime``);
- :mod:`.electricitymaps`: the Electricity Maps API v3 (registered as ``electricitymaps``).

Providers so far: WattTime and Electricity Maps (live, tested against a loopback server) and WattTime
recordings (files).
"""

from carbonsync.signals.base import (
    KINDS,
    GridSignal,
    SignalAuthError,
    SignalError,
    SignalFormatError,
    SignalPlanError,
    SignalRangeError,
    SignalRateLimited,
    SignalUnavailable,
    StaleSignalError,
    check_signal,
    convert_units,
    get_signal,
    known_signals,
    redact,
    register_signal,
    signal_dataset,
)
from carbonsync.signals.electricitymaps import ElectricityMaps
from carbonsync.signals.replay import RecordedSignal, ReplayClock
from carbonsync.signals.watttime import WattTime
from carbonsync.signals.zones import ZONES, GridZone, ZoneLookupError, lookup, resolve

__all__ = [
    "KINDS", "GridSignal", "SignalAuthError", "SignalError", "SignalFormatError", "SignalPlanError",
    "SignalRangeError", "SignalRateLimited", "SignalUnavailable", "StaleSignalError", "check_signal",
    "convert_units", "get_signal", "known_signals", "redact", "register_signal", "signal_dataset",
    "ElectricityMaps", "RecordedSignal", "ReplayClock", "WattTime", "ZONES", "GridZone", "ZoneLookupError", "lookup", "resolve",
]
