"""Loaders for real observation sets (measured power, zone generation, carbon intensity), with validation.

Every source plugs into one seam (:mod:`carbonsync.data.observations.base`): an
:class:`ObservationSource` with a registry ``name``, a ``kind``, a header rule ``detect(path)`` and
``load(path, **options)`` returning an xarray ``(time, zone)`` dataset under one contract
(:func:`check_observations`: hourly naive-UTC times, ``units`` on every variable, source, files, licence,
origin and repairs as attributes). The registered sources:

============================  ==========  ==========================================================
name                          kind        module
============================  ==========  ==========================================================
``electricitymaps``           trace       :mod:`~carbonsync.data.observations.electricitymaps`
``entsoe-ci``                 trace       :mod:`~carbonsync.data.observations.entsoe`
``entsoe-production``         generation  :mod:`~carbonsync.data.observations.entsoe`
``gefcom2014-wind``           power       :mod:`~carbonsync.data.observations.gefcom`
``gefcom2014-solar``          power       :mod:`~carbonsync.data.observations.gefcom`
``dacf``                      generation  :mod:`~carbonsync.data.observations.dacf`
============================  ==========  ==========================================================

``load_observations(path)`` detects the format (:func:`detect_source`; the error lists the known formats)
and loads it; :func:`load_traces` merges a directory of carbon-intensity traces per zone. Each module keeps
its own frame-level readers (``read_portal_csv``, ``load_gefcom``, ``load_dacf`` ...) for callers that want
the source's native columns. The hourly checks and repairs they share live in
:mod:`carbonsync.data.observations.hourly`. Every error derives from :class:`ObservationError` (a
:class:`~carbonsync.core.errors.CarbonSyncError`) and names the file, column and value at fault.
"""

from carbonsync.data.observations import dacf, electricitymaps, entsoe, gefcom
from carbonsync.data.observations.base import (
    FileSource,
    ObservationError,
    ObservationSource,
    check_observations,
    detect_source,
    get_source,
    known_sources,
    load_observations,
    register_source,
)
from carbonsync.data.observations.dacf import DacfError
from carbonsync.data.observations.gefcom import GefcomDataError
from carbonsync.data.observations.traces import load_traces

__all__ = [
    "DacfError",
    "FileSource",
    "GefcomDataError",
    "ObservationError",
    "ObservationSource",
    "check_observations",
    "dacf",
    "detect_source",
    "electricitymaps",
    "entsoe",
    "gefcom",
    "get_source",
    "known_sources",
    "load_observations",
    "load_traces",
    "register_source",
]
