"""Curtailment windows: when a site has surplus clean power, from any grid signal.

A site is *in band* while its signal is on the clean side of a threshold, with a real hysteresis band: it
enters when the signal passes ``on_level`` and leaves when it passes ``off_level`` (for ``direction="below"``,
e.g. marginal emissions, ``on_level <= off_level``; for ``"above"``, e.g. curtailment MW, the reverse).

:class:`SiteWindows` is the causal state machine of one site, stepped through the signal in time order:

- ``off`` → ``provisioning`` when the site enters the band (and, with a forecast, only if the forecast says
  the band lasts at least ``provisioning_s + min_train_s``: a window shorter than its provisioning cost is
  skipped); ``provisioning`` → ``ready`` after ``provisioning_s``;
- while provisioned, the site trains when in band and idles when not; once it has been out of band for
  ``off_delay_s`` without a break it is deprovisioned (``off``). A dip back into the band within the off-delay
  keeps the node and costs no new provisioning.

:func:`site_plan` runs the machine over a whole recorded series (a replay); :func:`signal_series` takes a
site's series from any ``carbonsync.signals`` dataset ``(time, zone)`` (marginal or average emissions,
curtailment MW, price), and :func:`signal_forecast` makes any source's issued forecasts (CarbonSync's forecast
store among them) the machine's forecast; :func:`oracle_forecast` is perfect foresight from the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.checks import at_least, fail, one_of
from carbonsync.core.errors import ConfigError
from carbonsync.signals import GridSignal, SignalRangeError, SignalUnavailable

__all__ = ["Forecast", "SiteInterval", "SitePlan", "SiteWindows", "WindowConfig", "oracle_forecast", "signal_forecast",
           "signal_series", "site_plan"]

# Forecast(t) -> the values expected after t (a Series indexed by time), or None when none is known.
Forecast = Callable[[pd.Timestamp], pd.Series | None]


@dataclass
class WindowConfig:
    """Thresholds and delays of the curtailment windows (the study: 100 g/kWh, 600 s off-delay, 300 s to provision)."""

    on_level: float = 100.0
    off_level: float = 100.0
    direction: str = "below"        # below: clean when the signal is low (emissions); above: when high (curtailment MW)
    off_delay_s: float = 600.0      # out of band this long without a break before the node is released
    provisioning_s: float = 300.0   # from the decision to provision to a node ready to train
    use_forecast: bool = False      # skip windows the forecast says are shorter than provisioning + min_train_s
    min_train_s: float = 0.0

    def __post_init__(self) -> None:
        one_of(self, "direction", ["below", "above"])
        at_least(self, 0, "off_delay_s", "provisioning_s", "min_train_s")
        for name in ("on_level", "off_level"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise fail(name, value, "must be a finite number")
        if (self.direction == "below" and self.on_level > self.off_level) or (
                self.direction == "above" and self.on_level < self.off_level):
            raise fail("on_level", self.on_level, f"must be on the clean side of off_level={self.off_level} "
                                                  f"(direction={self.direction}): the hysteresis band is inverted")

    def clean(self, value: float) -> bool:
        """The value has crossed into the band (past ``on_level``)."""
        return value < self.on_level if self.direction == "below" else value > self.on_level

    def dirty(self, value: float) -> bool:
        """The value has left the band (past ``off_level``)."""
        return value > self.off_level if self.direction == "below" else value < self.off_level

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SiteInterval:
    """One stretch of a site's plan: ``state`` is ``provisioning``, ``train`` (provisioned, in band) or ``idle``
    (provisioned, out of band during the off-delay); ``[start, end)`` naive UTC."""

    start: pd.Timestamp
    end: pd.Timestamp
    state: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class SitePlan:
    """A site's windows and node lifecycle over a replayed series."""

    site: str
    band: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)       # in-band stretches
    intervals: list[SiteInterval] = field(default_factory=list)                       # the node's states
    skipped: list[tuple[pd.Timestamp, str]] = field(default_factory=list)             # windows not provisioned

    def state_at(self, t: pd.Timestamp) -> str:
        """``off``, ``provisioning``, ``train`` or ``idle`` at ``t``."""
        for interval in self.intervals:
            if interval.start <= t < interval.end:
                return interval.state
        return "off"

    def provisioned(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """Stretches from a provisioning decision to the release of the node."""
        out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
        for interval in self.intervals:
            if out and out[-1][1] == interval.start:
                out[-1] = (out[-1][0], interval.end)
            else:
                out.append((interval.start, interval.end))
        return out

    def in_band(self, t: pd.Timestamp) -> bool:
        return any(start <= t < end for start, end in self.band)

    def record(self) -> dict[str, Any]:
        iso = pd.Timestamp.isoformat
        return {"site": self.site, "band": [[iso(a), iso(b)] for a, b in self.band],
                "intervals": [[iso(i.start), iso(i.end), i.state] for i in self.intervals],
                "skipped": [[iso(t), why] for t, why in self.skipped]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SitePlan:
        ts = pd.Timestamp
        return cls(str(record["site"]), [(ts(a), ts(b)) for a, b in record["band"]],
                   [SiteInterval(ts(a), ts(b), str(s)) for a, b, s in record["intervals"]],
                   [(ts(t), str(why)) for t, why in record.get("skipped", [])])


class SiteWindows:
    """The causal window state machine of one site (see the module docstring); :meth:`update` at each value."""

    def __init__(self, config: WindowConfig, forecast: Forecast | None = None) -> None:
        if config.use_forecast and forecast is None:
            raise ConfigError("use_forecast=true needs a forecast for the site")
        self.config, self.forecast = config, forecast
        self.in_band = False
        self.state = "off"                 # off, provisioning, ready
        self.since: pd.Timestamp | None = None          # when the node state began
        self.dirty_since: pd.Timestamp | None = None    # out of band since (while provisioned)

    def _expected_seconds(self, t: pd.Timestamp) -> float | None:
        """How long the forecast says the band lasts from ``t`` (None without a forecast)."""
        ahead = self.forecast(t) if self.forecast is not None else None
        if ahead is None or ahead.empty:
            return None
        ahead = ahead[ahead.index >= t]
        leaves = ahead.index[[self.config.dirty(float(v)) for v in ahead.to_numpy()]]
        if len(leaves):
            return (leaves[0] - t).total_seconds()
        step = ahead.index.to_series().diff().median() if len(ahead) > 1 else pd.Timedelta(0)
        return (ahead.index[-1] + (step if pd.notna(step) else pd.Timedelta(0)) - t).total_seconds()  # last holds

    def update(self, t: pd.Timestamp, value: float) -> list[str]:
        """Step to the value labelled ``t`` (in time order); the events this caused, in order."""
        cfg, events = self.config, []
        if not np.isfinite(value):          # no signal: keep the band as it was
            value_in = self.in_band
        elif self.in_band:
            value_in = not cfg.dirty(value)
        else:
            value_in = cfg.clean(value)
        if value_in != self.in_band:
            events.append("window_open" if value_in else "window_close")
            self.in_band = value_in
        if self.state == "provisioning" and self.since is not None and (
                t - self.since).total_seconds() >= cfg.provisioning_s:
            self.state, self.since = "ready", self.since + pd.Timedelta(seconds=cfg.provisioning_s)
            events.append("ready")
        if self.state == "off" and self.in_band:
            expected = self._expected_seconds(t) if cfg.use_forecast else None
            if expected is not None and expected < cfg.provisioning_s + cfg.min_train_s:
                events.append("skip")
            else:
                self.state, self.since, self.dirty_since = "provisioning", t, None
                events.append("provision")
                if cfg.provisioning_s == 0:
                    self.state = "ready"
                    events.append("ready")
        if self.state in ("provisioning", "ready"):
            if self.in_band:
                self.dirty_since = None
            elif self.dirty_since is None:
                self.dirty_since = t
            if self.dirty_since is not None and (t - self.dirty_since).total_seconds() >= cfg.off_delay_s:
                self.state, self.since, self.dirty_since = "off", t, None
                events.append("release")
        return events


def signal_series(ds: xr.Dataset, zone: str) -> pd.Series:
    """One zone's ``value`` from a signal dataset ``(time, zone)`` as a time-indexed Series (naive UTC)."""
    if "issued_at" in ds.dims:
        raise ConfigError("curtailment windows follow actual values (time, zone), not a forecast dataset")
    zones = [str(z) for z in ds["zone"].values]
    if zone not in zones:
        raise ConfigError(f"zone '{zone}' is not in the signal (zones: {', '.join(zones)})")
    series = ds["value"].sel(zone=zone).to_pandas()
    return series.astype(float).rename(zone)


def oracle_forecast(series: pd.Series, horizon: pd.Timedelta | str = "6h") -> Forecast:
    """Perfect foresight over ``horizon`` from the recorded ``series`` itself (a replay's upper bound)."""
    horizon = pd.Timedelta(horizon)

    def forecast(t: pd.Timestamp) -> pd.Series:
        return series[(series.index >= t) & (series.index < t + horizon)]

    return forecast


def signal_forecast(signal: GridSignal, zone: str, horizon: pd.Timedelta | str = "6h",
                    kind: str | None = None) -> Forecast:
    """The newest forecast any ``carbonsync.signals`` source had issued before ``t`` (WattTime's, a recorded
    archive's, or CarbonSync's own forecast store through ``ForecastStoreSignal``) as a window forecast;
    ``None`` when none was issued yet."""
    horizon = pd.Timedelta(horizon)

    def forecast(t: pd.Timestamp) -> pd.Series | None:
        try:
            ds = signal.forecast(zone, horizon, issued_before=t, kind=kind)
        except (SignalRangeError, SignalUnavailable):
            return None
        values = ds["value"].isel(issued_at=0)
        if "zone" in values.dims:
            values = values.isel(zone=0)
        series = values.to_pandas().astype(float).dropna()
        return series if not series.empty else None

    return forecast


def site_plan(site: str, series: pd.Series, config: WindowConfig, forecast: Forecast | None = None,
              end: pd.Timestamp | None = None) -> SitePlan:
    """The windows and node lifecycle of ``site`` over a recorded ``series`` (each value holds until the next
    label; the last one for one median step, or until ``end``)."""
    series = series.sort_index()
    if series.empty:
        raise ConfigError(f"site '{site}' has an empty signal series")
    times = pd.DatetimeIndex(series.index)
    step = pd.Timedelta(np.median(np.diff(times.values))) if len(times) > 1 else pd.Timedelta("5min")
    stop = pd.Timestamp(end) if end is not None else times[-1] + step
    machine, plan = SiteWindows(config, forecast), SitePlan(site)
    band_start: pd.Timestamp | None = None
    node_state, node_since = "off", times[0]

    def close(t: pd.Timestamp) -> None:
        if node_state != "off" and t > node_since:
            plan.intervals.append(SiteInterval(node_since, t, node_state))

    # provisioning ends between labels: check the machine at the ready instant too
    for t, value in zip(times, series.to_numpy(dtype=float), strict=True):
        ready_at = (machine.since + pd.Timedelta(seconds=config.provisioning_s)
                    if machine.state == "provisioning" and machine.since is not None else None)
        if ready_at is not None and ready_at < t:
            close(ready_at)
            machine.update(ready_at, np.nan)
            node_state, node_since = ("train" if machine.in_band else "idle"), ready_at
        events = machine.update(t, value)
        if "window_open" in events:
            band_start = t
        if "window_close" in events and band_start is not None:
            plan.band.append((band_start, t))
            band_start = None
        if "skip" in events and not (plan.skipped and band_start is not None and plan.skipped[-1][0] >= band_start):
            plan.skipped.append((t, "forecast window shorter than provisioning"))   # once per window
        wanted = {"off": "off", "provisioning": "provisioning"}.get(
            machine.state, "train" if machine.in_band else "idle")
        if wanted != node_state:
            close(t)
            node_state, node_since = wanted, t
    if band_start is not None:
        plan.band.append((band_start, stop))
    close(stop)
    return plan
