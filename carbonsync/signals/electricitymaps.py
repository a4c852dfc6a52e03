"""Electricity Maps API v3 (and v4): average carbon intensity behind the GridSignal protocol.

Endpoints ``/v3/carbon-intensity/latest``, ``/past-range`` (split into 10-day requests) and ``/forecast``
(``api_version="v4"`` asks ``/v4/...`` and also reads a forecast listed under ``data``), authenticated by the
``auth-token`` header (from the argument or ``ELECTRICITYMAPS_API_KEY``; never in a message, and never sent
to another host: redirects are followed only to the same origin). Values are gCO2eq/kWh; ``isEstimated``
becomes the ``estimated`` flag. A plan without the endpoint or zone (403/404) is a
:class:`~carbonsync.signals.base.SignalPlanError`; a reply for another zone, or without the documented
fields, a :class:`~carbonsync.signals.base.SignalFormatError`.

The API's default is life-cycle intensity; CarbonSync asks for ``emissionFactorType=direct`` (operational, as
in the portal exports' ``carbon_intensity``) unless ``emission_factor="lifecycle"``, and a reply of the other
type is an error. ``max_gap`` fills short gaps in a history (flagged ``estimated``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.time import utc_naive
from carbonsync.signals.base import (
    SignalAuthError,
    SignalFormatError,
    StaleSignalError,
    fill_gaps,
    register_signal,
    signal_dataset,
)
from carbonsync.signals.http import Http, HttpCache, RetryPolicy
from carbonsync.signals.zones import resolve

__all__ = ["ElectricityMaps"]

BASE_URL = "https://api.electricitymaps.com"
PAST_RANGE = pd.Timedelta(days=10)
HOUR = pd.Timedelta(hours=1)
EMISSION_FACTORS = ("direct", "lifecycle")
API_VERSIONS = ("v3", "v4")



class ElectricityMaps:
    """The Electricity Maps v3 API as a :class:`~carbonsync.signals.base.GridSignal` of ``carbon_intensity``."""

    name = "electricitymaps"

    def __init__(self, api_key: str | None = None, *, base_url: str = BASE_URL, max_age: pd.Timedelta | str = "3h",
                 emission_factor: str = "direct", api_version: str = "v3", max_gap: int = 0,
                 policy: RetryPolicy | None = None, cache: HttpCache | None | str = "settings") -> None:
        if emission_factor not in EMISSION_FACTORS:
            raise ValueError(f"emission_factor must be one of {EMISSION_FACTORS}, got {emission_factor!r}")
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {API_VERSIONS}, got {api_version!r}")
        self._key = api_key or os.environ.get("ELECTRICITYMAPS_API_KEY", "")
        self.max_age, self.max_gap = pd.Timedelta(max_age), max_gap
        self.emission_factor, self.api_version = emission_factor, api_version
        self.http = Http(self.name, base_url, secrets=[self._key], policy=policy, cache=cache)

    def _endpoint(self, name: str) -> str:
        return f"/{self.api_version}/carbon-intensity/{name}"

    def __repr__(self) -> str:
        return f"ElectricityMaps(key={'set' if self._key else 'unset'}, base_url={str(self.http.client.base_url)!r})"

    def kinds(self) -> tuple[str, ...]:
        return ("carbon_intensity",)

    def _get(self, endpoint: str, params: dict, zone: str) -> dict:
        if not self._key:
            raise SignalAuthError("no API key: pass api_key or set ELECTRICITYMAPS_API_KEY", provider=self.name,
                                  endpoint=endpoint, zone=zone)
        params = {**params, "emissionFactorType": self.emission_factor}
        body = self.http.get_json(endpoint, params=params, zone=zone, headers={"auth-token": self._key})
        if body.get("zone", zone) != zone:
            raise SignalFormatError(f"the reply is for zone '{body.get('zone')}', not '{zone}'", provider=self.name,
                                    endpoint=endpoint, zone=zone)
        factor = body.get("emissionFactorType", self.emission_factor)
        if factor != self.emission_factor:
            raise SignalFormatError(f"the reply gives {factor} carbon intensity, not the {self.emission_factor} asked "
                                    "for", provider=self.name, endpoint=endpoint, zone=zone)
        return body

    def _series(self, points: object, endpoint: str, zone: str, issued_at: pd.Timestamp | None = None) -> xr.Dataset:
        if not isinstance(points, list):
            raise SignalFormatError("the reply has no list of data points", provider=self.name, endpoint=endpoint,
                                    zone=zone)
        try:
            times = pd.DatetimeIndex([utc_naive(p["datetime"]) for p in points])
            values = np.array([np.nan if p.get("carbonIntensity") is None else float(p["carbonIntensity"])
                               for p in points])
            estimated = np.array([bool(p.get("isEstimated", False)) for p in points])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SignalFormatError(f"a data point is malformed ({type(err).__name__}: {err})", provider=self.name,
                                    endpoint=endpoint, zone=zone) from None
        order = np.argsort(times.values, kind="stable")
        shape = (1, -1) if issued_at is not None else (-1,)  # a forecast has one issue time
        ds = signal_dataset(values[order].reshape(shape), times[order], zone, "carbon_intensity", "gCO2eq/kWh",
                            provider=self.name, endpoint=endpoint, estimated=estimated[order].reshape(shape),
                            issued_at=None if issued_at is None else [issued_at])
        return ds.assign_attrs(emission_factor=self.emission_factor)

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        code = resolve(zone, "electricitymaps")
        endpoint = self._endpoint("latest")
        ds = self._series([self._get(endpoint, {"zone": code}, code)], endpoint, code)
        age = pd.Timestamp.now("UTC").tz_localize(None) - pd.Timestamp(ds.time.values[-1])
        if age > self.max_age:
            raise StaleSignalError(f"the newest value is {age} old, past the limit of {self.max_age}",
                                   provider=self.name, endpoint=endpoint, zone=code)
        return ds

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        code = resolve(zone, "electricitymaps")
        endpoint = self._endpoint("past-range")
        start, end = utc_naive(start), utc_naive(end)
        parts = []
        for lo in pd.date_range(start, end, freq=PAST_RANGE, inclusive="left"):
            hi = min(lo + PAST_RANGE, end)
            body = self._get(endpoint, {"zone": code, "start": lo.isoformat() + "Z", "end": hi.isoformat() + "Z"}, code)
            part = self._series(body.get("data"), endpoint, code)
            parts.append(part.sel(time=(part.time >= np.datetime64(lo)) & (part.time < np.datetime64(hi))))
        if not parts:
            raise SignalFormatError(f"empty period {start} to {end}", provider=self.name, endpoint=endpoint, zone=code)
        ds = xr.concat(parts, dim="time", combine_attrs="override")
        return fill_gaps(ds, HOUR, self.max_gap) if self.max_gap else ds

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = None) -> xr.Dataset:
        code = resolve(zone, "electricitymaps")
        endpoint = self._endpoint("forecast")
        if issued_before is not None:
            raise SignalFormatError("the API serves only its current forecast; replay recorded forecasts with "
                                    "carbonsync.signals.replay.RecordedSignal", provider=self.name, endpoint=endpoint,
                                    zone=code)
        body = self._get(endpoint, {"zone": code}, code)
        if "updatedAt" not in body:
            raise SignalFormatError("the forecast has no updatedAt", provider=self.name, endpoint=endpoint, zone=code)
        points = body.get("forecast", body.get("data"))  # v4 names the list as the other endpoints do
        ds = self._series(points, endpoint, code, issued_at=utc_naive(body["updatedAt"]))
        first = pd.Timestamp(ds.time.values[0]) if ds.sizes["time"] else None
        if first is None:
            return ds
        return ds.sel(time=ds.time < np.datetime64(first + pd.Timedelta(horizon)))


register_signal("electricitymaps", ElectricityMaps)
