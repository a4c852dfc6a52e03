"""CarbonSync's own forecast store as a grid signal: each zone's renewable share and carbon intensity, with
quantiles and issue times (registered as ``carbonsync``).

A forecast is issued at its init time plus ``publish_delay`` (how long the chain takes to run and commit;
default 0). On a :class:`~carbonsync.signals.replay.ReplayClock` only forecasts issued before the clock are
served, so a replay reading the store is causal by init time. The store holds forecasts, not measurements:
``latest`` and ``history`` give the newest forecast valid at each hour, flagged ``estimated`` (``method``
``forecast``). Zones are the store's own names, or lexicon names with a ``forecast_zone`` code (``spain`` ->
``iberia``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.time import utc_naive
from carbonsync.forecast.reader import ForecastReader
from carbonsync.forecast.store import ForecastStoreError, Location
from carbonsync.signals.base import (
    SignalFormatError,
    SignalPlanError,
    SignalUnavailable,
    StaleSignalError,
    register_signal,
    signal_dataset,
)
from carbonsync.signals.replay import ReplayClock
from carbonsync.signals.zones import ZoneLookupError, lookup

__all__ = ["PRODUCTS", "ForecastStoreSignal"]

PRODUCTS = {"renewable_share": ("renewable_share", "1"), "carbon_intensity": ("carbon_intensity", "g CO2e/kWh")}
HOUR = pd.Timedelta(hours=1)


class ForecastStoreSignal:
    """Forecasts of a CarbonSync forecast store (a local path or URL), read at the tip of ``main`` or a pinned
    ``snapshot``; ``clock`` (default: the wall clock) decides what has been issued; ``max_age`` bounds how old
    the forecast behind :meth:`latest` may be."""

    name = "carbonsync"

    def __init__(self, store: Location, *, clock: ReplayClock | None = None, publish_delay: pd.Timedelta | str = "0h",
                 snapshot: str | None = None, max_age: pd.Timedelta | str = "1D") -> None:
        self.reader = ForecastReader(store, snapshot)
        self.clock, self.publish_delay, self.max_age = clock, pd.Timedelta(publish_delay), pd.Timedelta(max_age)

    def __repr__(self) -> str:
        return f"ForecastStoreSignal({self.reader.path!r})"

    def kinds(self) -> tuple[str, ...]:
        return tuple(PRODUCTS)

    def _now(self) -> pd.Timestamp:
        return self.clock.now if self.clock is not None else utc_naive(pd.Timestamp.now("UTC"))

    def _where(self, zone: str, kind: str | None) -> tuple[str, str, str]:
        kind = kind or "renewable_share"
        if kind not in PRODUCTS:
            raise SignalPlanError(f"the forecast store has no {kind}; kinds: {', '.join(PRODUCTS)}",
                                  provider=self.name, endpoint=self.reader.path, zone=zone)
        try:
            code = lookup(zone).code("forecast_zone") or zone
        except ZoneLookupError:
            code = zone
        return kind, *PRODUCTS[kind][:1], code

    def _issued(self, cutoff: pd.Timestamp) -> pd.DatetimeIndex:
        """Init times issued (init + publish delay) strictly before ``cutoff``."""
        try:
            inits = pd.DatetimeIndex(self.reader.committed_init_times())
        except ForecastStoreError as err:
            raise SignalUnavailable(str(err), provider=self.name, endpoint=self.reader.path) from err
        return inits[inits + self.publish_delay < cutoff]

    def _run(self, init: pd.Timestamp, zone: str, code: str, kind: str, product: str) -> xr.Dataset:
        """One init time's forecast of ``product`` for the zone: ``(issued_at=1, time, zone)`` plus quantiles."""
        wanted = [product] + ([f"{product}_quantile"] if f"{product}_quantile" in self._products() else [])
        try:
            ds = self.reader.latest([code], start=init, products=wanted)
        except ForecastStoreError as err:
            raise SignalPlanError(str(err), provider=self.name, endpoint=self.reader.path, zone=zone) from err
        issued = init + self.publish_delay
        out = signal_dataset(ds[product].values[None, :, 0], ds["time"].values, zone, kind, PRODUCTS[kind][1],
                             provider=self.name, endpoint=self.reader.path, issued_at=[issued],
                             retrieved_at=self._now())
        if f"{product}_quantile" in ds:
            quantiles = ds[f"{product}_quantile"]
            out["value_quantiles"] = (("issued_at", "quantile", "time", "zone"), quantiles.values[None])
            out = out.assign_coords(quantile=quantiles["quantile"].values)
        return out.assign_attrs(init_time=str(init), snapshot_id=ds.attrs.get("snapshot_id", ""))

    def _products(self) -> set[str]:
        return set(self.reader.snapshot().groups["zones"].arrays)

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = None) -> xr.Dataset:
        """The newest forecast issued before ``issued_before`` (never after the clock), cut to
        ``[issued_at, cutoff + horizon)``, with ``value_quantiles`` ``(issued_at, quantile, time, zone)``
        where the store has them."""
        kind, product, code = self._where(zone, kind)
        cutoff = self._now() if issued_before is None else min(pd.Timestamp(issued_before), self._now())
        issued = self._issued(cutoff)
        if not len(issued):
            raise SignalUnavailable(f"no forecast was issued before {cutoff}", provider=self.name,
                                    endpoint=self.reader.path, zone=zone)
        run = self._run(issued[-1], zone, code, kind, product)
        times = pd.DatetimeIndex(run["time"].values)
        return run.isel(time=np.flatnonzero(times < cutoff + pd.Timedelta(horizon))).assign_attrs(method="forecast")

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        """For each hour in ``[start, end)`` up to now, the forecast of the newest run issued before it
        (flagged ``estimated``)."""
        kind, product, code = self._where(zone, kind)
        start, end = pd.Timestamp(start), min(pd.Timestamp(end), self._now())
        issued = self._issued(end)
        parts: list[xr.Dataset] = []
        for i, init in enumerate(issued):
            block_start = max(init + self.publish_delay, start)
            block_end = issued[i + 1] + self.publish_delay if i + 1 < len(issued) else end
            if block_end <= start or block_start >= end:
                continue
            run = self._run(init, zone, code, kind, product).isel(issued_at=0).drop_vars("value_quantiles",
                                                                                          errors="ignore")
            times = pd.DatetimeIndex(run["time"].values)
            parts.append(run.isel(time=np.flatnonzero((times >= block_start) & (times < min(block_end, end)))))
        if not parts:
            raise SignalUnavailable(f"no forecast covers {start} to {end}", provider=self.name,
                                    endpoint=self.reader.path, zone=zone)
        out = xr.concat(parts, dim="time", coords="minimal", compat="override", combine_attrs="override").drop_vars(
            "issued_at", errors="ignore")
        out["estimated"] = xr.ones_like(out["estimated"])
        return out.assign_attrs(method="forecast", retrieved_at=self._now().isoformat())

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        """The newest run's forecast for the current hour (flagged ``estimated``); StaleSignalError when that run
        is older than ``max_age``."""
        kind, product, code = self._where(zone, kind)
        now = self._now()
        issued = self._issued(now)
        if not len(issued):
            raise SignalUnavailable(f"no forecast was issued before {now}", provider=self.name,
                                    endpoint=self.reader.path, zone=zone)
        age = now - (issued[-1] + self.publish_delay)
        if age > self.max_age:
            raise StaleSignalError(f"the newest forecast was issued {age} ago, past the limit of {self.max_age}",
                                   provider=self.name, endpoint=self.reader.path, zone=zone)
        run = self._run(issued[-1], zone, code, kind, product).isel(issued_at=0).drop_vars(
            ["value_quantiles", "issued_at"], errors="ignore")
        hour = np.flatnonzero(pd.DatetimeIndex(run["time"].values) == now.floor("h"))
        if not hour.size:
            raise SignalFormatError(f"the newest forecast does not cover {now.floor('h')}", provider=self.name,
                                    endpoint=self.reader.path, zone=zone)
        out = run.isel(time=hour)
        out["estimated"] = xr.ones_like(out["estimated"])
        return out.assign_attrs(method="forecast")


def _factory(store: Location, **options: Any) -> ForecastStoreSignal:
    return ForecastStoreSignal(store, **options)


register_signal("carbonsync", _factory)
