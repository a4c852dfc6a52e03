"""Electricity Maps API v3: average carbon intensity behind the GridSignal protocol.

Endpoints ``/v3/carbon-intensity/latest``, ``/history`` (the last 24 hours), ``/past-range`` (split into
10-day requests) and ``/forecast``, authenticated by the ``auth-token`` header (from the argument or
``ELECTRICITYMAPS_API_KEY``; never in a message, and never sent to another host: redirects are followed only
to the same origin). Values are gCO2eq/kWh; ``isEstimated`` becomes the ``estimated`` flag. A plan without
the endpoint or zone (403/404) is a :class:`~carbonsync.signals.base.SignalPlanError`; a reply for another
zone, or without the documented fields, a :class:`~carbonsync.signals.base.SignalFormatError`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.time import utc_naive
from carbonsync.signals.base import SignalAuthError, SignalFormatError, StaleSignalError, register_signal, signal_dataset
from carbonsync.signals.http import Http, HttpCache, RetryPolicy
from carbonsync.signals.zones import resolve

__all__ = ["ElectricityMaps"]

BASE_URL = "https://api.electricitymap.org"
PAST_RANGE = pd.Timedelta(days=10)



class ElectricityMaps:
    """The Electricity Maps v3 API as a :class:`~carbonsync.signals.base.GridSignal` of ``carbon_intensity``."""

    name = "electricitymaps"

    def __init__(self, api_key: str | None = None, *, base_url: str = BASE_URL, max_age: pd.Timedelta | str = "3h",
                 policy: RetryPolicy | None = None,
                 cache: HttpCache | None | str = "settings") -> None:
        self._key = api_key or os.environ.get("ELECTRICITYMAPS_API_KEY", "")
        self.max_age = pd.Timedelta(max_age)
        self.http = Http(self.name, base_url, secrets=[self._key], policy=policy, cache=cache)

    def __repr__(self) -> str:
        return f"ElectricityMaps(key={'set' if self._key else 'unset'}, base_url={str(self.http.client.base_url)!r})"

    def kinds(self) -> tuple[str, ...]:
        return ("carbon_intensity",)

    def _get(self, endpoint: str, params: dict, zone: str) -> dict:
        if not self._key:
            raise SignalAuthError("no API key: pass api_key or set ELECTRICITYMAPS_API_KEY", provider=self.name,
                                  endpoint=endpoint, zone=zone)
        body = self.http.get_json(endpoint, params=params, zone=zone, headers={"auth-token": self._key})
        if body.get("zone", zone) != zone:
            raise SignalFormatError(f"the reply is for zone '{body.get('zone')}', not '{zone}'", provider=self.name,
                                    endpoint=endpoint, zone=zone)
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
        return signal_dataset(values[order].reshape(shape), times[order], zone, "carbon_intensity", "gCO2eq/kWh",
                              provider=self.name, endpoint=endpoint, estimated=estimated[order].reshape(shape),
                              issued_at=None if issued_at is None else [issued_at])

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        code = resolve(zone, "electricitymaps")
        endpoint = "/v3/carbon-intensity/latest"
        ds = self._series([self._get(endpoint, {"zone": code}, code)], endpoint, code)
        age = pd.Timestamp.now("UTC").tz_localize(None) - pd.Timestamp(ds.time.values[-1])
        if age > self.max_age:
            raise StaleSignalError(f"the newest value is {age} old, past the limit of {self.max_age}",
                                   provider=self.name, endpoint=endpoint, zone=code)
        return ds

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        code = resolve(zone, "electricitymaps")
        endpoint = "/v3/carbon-intensity/past-range"
        start, end = utc_naive(start), utc_naive(end)
        parts = []
        for lo in pd.date_range(start, end, freq=PAST_RANGE, inclusive="left"):
            hi = min(lo + PAST_RANGE, end)
            body = self._get(endpoint, {"zone": code, "start": lo.isoformat() + "Z", "end": hi.isoformat() + "Z"}, code)
            part = self._series(body.get("data"), endpoint, code)
            parts.append(part.sel(time=(part.time >= np.datetime64(lo)) & (part.time < np.datetime64(hi))))
        if not parts:
            raise SignalFormatError(f"empty period {start} to {end}", provider=self.name, endpoint=endpoint, zone=code)
        return xr.concat(parts, dim="time", combine_attrs="override")

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = None) -> xr.Dataset:
        code = resolve(zone, "electricitymaps")
        endpoint = "/v3/carbon-intensity/forecast"
        if issued_before is not None:
            raise SignalFormatError("the API serves only its current forecast; replay recorded forecasts with "
                                    "carbonsync.signals.replay.RecordedSignal", provider=self.name, endpoint=endpoint,
                                    zone=code)
        body = self._get(endpoint, {"zone": code}, code)
        if "updatedAt" not in body:
            raise SignalFormatError("the forecast has no updatedAt", provider=self.name, endpoint=endpoint, zone=code)
        ds = self._series(body.get("forecast"), endpoint, code, issued_at=utc_naive(body["updatedAt"]))
        first = pd.Timestamp(ds.time.values[0]) if ds.sizes["time"] else None
        if first is None:
            return ds
        return ds.sel(time=ds.time < np.datetime64(first + pd.Timedelta(horizon)))


register_signal("electricitymaps", ElectricityMaps)
