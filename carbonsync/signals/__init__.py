"""Grid signals: one provider layer for live and recorded carbon intensity, marginal emissions, price,
renewable share and curtailment (issue 11; the providers are being built). It sits above ``forecast`` and
``evaluate``/``train`` and below ``placement``.

- :mod:`.base`: the :class:`GridSignal` protocol, the signal contract (normalised units, estimated flags,
  retrieval time), named errors carrying provider, endpoint and zone, and the provider registry;
- :mod:`.zones`: the zone lexicon mapping each provider's zone codes onto one another;
- :mod:`.replay`: :class:`RecordedSignal`, a recorded trace (and its issued forecasts) served causally as of
  a :class:`ReplayClock`;
- :mod:`.files`: WattTime MOER actuals and issued forecasts from files;
- :mod:`.recordings`: every shared file format (Electricity Maps and ENTSO-E traces, DACF with the operators'
  day-ahead forecasts, WattTime, CAISO) opened by one call, :func:`open_recording` (registered as ``file``);
- :mod:`.http`: timeouts, retries with backoff, same-origin redirects and named errors for live providers;
- :mod:`.watttime`: the WattTime API v3 (registered as ``watttime``);
- :mod:`.electricitymaps`: the Electricity Maps API v3 (registered as ``electricitymaps``);
- :mod:`.entsoe`: the ENTSO-E Transparency Platform (registered as ``entsoe``);
- :mod:`.caiso`: CAISO OASIS day-ahead and real-time LMP (registered as ``caiso``) and CAISO files;
- :mod:`.store`: CarbonSync's own forecast store, by init time, with quantiles (registered as ``carbonsync``).

Live providers are tested against a loopback HTTP server; recordings against the shared data and files the
tests write.
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
    SignalSet,
    SignalUnavailable,
    StaleSignalError,
    check_signal,
    convert_units,
    fill_gaps,
    get_signal,
    known_signals,
    redact,
    register_signal,
    signal_dataset,
)
from carbonsync.signals.caiso import CaisoOasis
from carbonsync.signals.electricitymaps import ElectricityMaps
from carbonsync.signals.entsoe import Entsoe
from carbonsync.signals.recordings import RECORDING_FORMATS, open_recording
from carbonsync.signals.replay import RecordedSignal, ReplayClock
from carbonsync.signals.store import ForecastStoreSignal
from carbonsync.signals.watttime import WattTime
from carbonsync.signals.zones import ZONES, GridZone, ZoneLookupError, lookup, resolve

__all__ = [
    "KINDS", "GridSignal", "SignalAuthError", "SignalError", "SignalFormatError", "SignalPlanError",
    "SignalRangeError", "SignalRateLimited", "SignalSet", "SignalUnavailable", "StaleSignalError", "check_signal",
    "convert_units", "fill_gaps", "get_signal", "known_signals", "redact", "register_signal", "signal_dataset",
    "CaisoOasis", "ElectricityMaps", "Entsoe", "ForecastStoreSignal", "RECORDING_FORMATS", "open_recording",
    "RecordedSignal", "ReplayClock", "WattTime", "ZONES", "GridZone", "ZoneLookupError", "lookup", "resolve",
]
