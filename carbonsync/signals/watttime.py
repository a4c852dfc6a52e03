"""WattTime API v3: marginal operating emissions (MOER) behind the GridSignal protocol.

Written on httpx rather than PyPI's ``watttime`` client: that client reads credentials from the environment
at import of its own module, fixes its base URL (a loopback test server cannot stand in for it) and returns
pandas frames without units; what it adds (login, the 32-day chunks of ``historical``) is a few lines here.

- login: ``GET /login`` with HTTP Basic auth returns a bearer token, valid 30 minutes; it is renewed before
  it expires and once on a 401/403 reply;
- ``/v3/forecast`` (``issued_before``: ``/v3/forecast/historical``), ``/v3/historical`` (chunked to 32 days),
  ``/v3/signal-index`` (a percent index, kept as an index), ``/v3/region-from-loc``;
- values are converted by ``meta.units`` (``lbs_co2_per_mwh`` → g CO2e/kWh); a reply for another region
  than asked, or without ``data``/``meta``, is a SignalFormatError.

Credentials come from arguments or ``WATTTIME_USERNAME``/``WATTTIME_PASSWORD`` and never reach a message.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.time import utc_naive
from carbonsync.signals.base import (
    SignalAuthError,
    SignalFormatError,
    SignalPlanError,
    StaleSignalError,
    fill_gaps,
    register_signal,
    signal_dataset,
)
from carbonsync.signals.http import Http, HttpCache, RetryPolicy
from carbonsync.signals.zones import resolve

__all__ = ["WattTime"]

BASE_URL = "https://api.watttime.org"
TOKEN_LIFETIME_S = 30 * 60
CHUNK = pd.Timedelta(days=32)
STEP = pd.Timedelta(minutes=5)  # MOER resolution


class WattTime:
    """The WattTime v3 API as a :class:`~carbonsync.signals.base.GridSignal` of ``marginal_emissions``."""

    name = "watttime"

    def __init__(self, username: str | None = None, password: str | None = None, *, base_url: str = BASE_URL,
                 signal_type: str = "co2_moer", max_age: pd.Timedelta | str = "30min", max_gap: int = 0,
                 policy: RetryPolicy | None = None, cache: HttpCache | None | str = "settings") -> None:
        self._username = username or os.environ.get("WATTTIME_USERNAME", "")
        self._password = password or os.environ.get("WATTTIME_PASSWORD", "")
        self.signal_type, self.max_age, self.max_gap = signal_type, pd.Timedelta(max_age), max_gap
        self._token, self._token_time = "", 0.0
        self.http = Http("watttime", base_url, secrets=[self._password], policy=policy, cache=cache)

    def __repr__(self) -> str:
        return f"WattTime(user={'set' if self._username else 'unset'}, base_url={str(self.http.client.base_url)!r})"

    def kinds(self) -> tuple[str, ...]:
        return ("marginal_emissions",)

    # --- plumbing -----------------------------------------------------------------------------------------

    def _login(self) -> str:
        if not (self._username and self._password):
            raise SignalAuthError("no credentials: pass username/password or set WATTTIME_USERNAME and "
                                  "WATTTIME_PASSWORD", provider=self.name, endpoint="/login")
        body = self.http.get_json("/login", auth=(self._username, self._password))
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise SignalFormatError("the login reply has no token", provider=self.name, endpoint="/login")
        self._token, self._token_time = token, time.monotonic()
        self.http.secrets.append(token)
        return token

    def _get(self, endpoint: str, params: dict, zone: str) -> dict:
        if not self._token or time.monotonic() - self._token_time > TOKEN_LIFETIME_S - 60:
            self._login()
        try:
            return self.http.get_json(endpoint, params=params, zone=zone,
                                      headers={"Authorization": f"Bearer {self._token}"})
        except (SignalAuthError, SignalPlanError):  # an expired or revoked token: log in again, once
            self._login()
            return self.http.get_json(endpoint, params=params, zone=zone,
                                      headers={"Authorization": f"Bearer {self._token}"})

    def _series(self, body: dict, endpoint: str, region: str, *, index: bool = False,
                issued_at: pd.Timestamp | None = None) -> xr.Dataset:
        meta, data = body.get("meta"), body.get("data")
        if not isinstance(meta, dict) or not isinstance(data, list):
            raise SignalFormatError("the reply lacks 'meta' or 'data'", provider=self.name, endpoint=endpoint, zone=region)
        if meta.get("region", region) != region:
            raise SignalFormatError(f"the reply is for region '{meta.get('region')}', not '{region}'",
                                    provider=self.name, endpoint=endpoint, zone=region)
        try:
            times = pd.DatetimeIndex([utc_naive(p["point_time"]) for p in data])
            values = np.array([np.nan if p["value"] is None else float(p["value"]) for p in data])
        except (KeyError, TypeError, ValueError) as err:
            raise SignalFormatError(f"a data point is malformed ({type(err).__name__}: {err})", provider=self.name,
                                    endpoint=endpoint, zone=region) from None
        order = np.argsort(times.values, kind="stable")
        units = str(meta.get("units", ""))
        shape = (1, -1) if issued_at is not None else (-1,)  # a forecast has one issue time
        return signal_dataset(values[order].reshape(shape), times[order], region, "marginal_emissions", units,
                              provider=self.name, endpoint=endpoint, index=index,
                              issued_at=None if issued_at is None else [issued_at])

    # --- the protocol -------------------------------------------------------------------------------------

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        region = resolve(zone, "watttime")
        start, end = utc_naive(start), utc_naive(end)  # naive UTC; sent with an explicit offset
        parts = []
        for lo in pd.date_range(start, end, freq=CHUNK, inclusive="left"):
            hi = min(lo + CHUNK, end)
            body = self._get("/v3/historical", {"region": region, "signal_type": self.signal_type,
                                                "start": lo.isoformat() + "+00:00", "end": hi.isoformat() + "+00:00"}, region)
            part = self._series(body, "/v3/historical", region)
            parts.append(part.sel(time=(part.time >= np.datetime64(lo)) & (part.time < np.datetime64(hi))))
        if not parts:
            raise SignalFormatError(f"empty period {start} to {end}", provider=self.name, zone=region)
        ds = xr.concat(parts, dim="time", combine_attrs="override")
        return fill_gaps(ds, STEP, self.max_gap) if self.max_gap else ds  # short gaps filled, flagged

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        now = pd.Timestamp.now("UTC").tz_localize(None)
        recent = self.history(zone, now - pd.Timedelta(hours=1), now)
        if recent.sizes["time"] == 0:
            raise StaleSignalError("no value in the last hour", provider=self.name, zone=zone)
        last = recent.isel(time=[-1])
        age = now - pd.Timestamp(last.time.values[0])
        if age > self.max_age:
            raise StaleSignalError(f"the newest value is {age} old, past the limit of {self.max_age}",
                                   provider=self.name, zone=zone)
        return last

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = None) -> xr.Dataset:
        region = resolve(zone, "watttime")
        hours = max(int(np.ceil(pd.Timedelta(horizon) / pd.Timedelta(hours=1))), 1)
        if issued_before is None:
            body = self._get("/v3/forecast", {"region": region, "signal_type": self.signal_type,
                                              "horizon_hours": hours}, region)
            generated = body.get("meta", {}).get("generated_at") if isinstance(body.get("meta"), dict) else None
            if generated is None:
                raise SignalFormatError("the forecast has no meta.generated_at", provider=self.name,
                                        endpoint="/v3/forecast", zone=region)
            return self._series(body, "/v3/forecast", region, issued_at=utc_naive(generated))
        cutoff = utc_naive(issued_before)
        body = self._get("/v3/forecast/historical", {"region": region, "signal_type": self.signal_type,
                                                     "start": (cutoff - pd.Timedelta(hours=1)).isoformat() + "+00:00",
                                                     "end": cutoff.isoformat() + "+00:00", "horizon_hours": hours}, region)
        runs = body.get("data")
        if not isinstance(runs, list) or not runs:
            raise SignalFormatError(f"no forecast was issued in the hour before {cutoff}", provider=self.name,
                                    endpoint="/v3/forecast/historical", zone=region)
        try:
            issued = [utc_naive(r["generated_at"]) for r in runs]
        except (KeyError, TypeError, ValueError) as err:
            raise SignalFormatError(f"a forecast run is malformed ({err})", provider=self.name,
                                    endpoint="/v3/forecast/historical", zone=region) from None
        before = [i for i, t in enumerate(issued) if t < cutoff]
        if not before:
            raise SignalFormatError(f"no forecast was issued before {cutoff}", provider=self.name, zone=region)
        k = max(before, key=lambda i: issued[i])
        return self._series({"meta": body.get("meta"), "data": runs[k].get("forecast")}, "/v3/forecast/historical",
                            region, issued_at=issued[k])

    # --- beyond the protocol ------------------------------------------------------------------------------

    def signal_index(self, zone: str) -> xr.Dataset:
        """The current percentile of MOER (0-100, an index: units ``percent``, ``index: yes``)."""
        region = resolve(zone, "watttime")
        body = self._get("/v3/signal-index", {"region": region, "signal_type": self.signal_type}, region)
        return self._series(body, "/v3/signal-index", region, index=True)

    def region_from_loc(self, latitude: float, longitude: float) -> str:
        """The WattTime region at a location."""
        body = self._get("/v3/region-from-loc", {"latitude": latitude, "longitude": longitude,
                                                 "signal_type": self.signal_type}, "")
        region = body.get("region")
        if not isinstance(region, str) or not region:
            raise SignalFormatError(f"no region in the reply for ({latitude}, {longitude})", provider=self.name,
                                    endpoint="/v3/region-from-loc")
        return region



register_signal("watttime", WattTime)
