"""Causal replay: a recorded signal served as of a simulated time.

:class:`RecordedSignal` is a :class:`~carbonsync.signals.base.GridSignal` over recorded data (a trace of
actual values and, optionally, the forecasts that were issued, each with its ``issued_at``), read through a
:class:`ReplayClock`. At clock time ``t`` it serves only what was published before ``t``:

- an actual value labelled ``time`` covers ``[time, time + interval)`` and is published at its end;
- a recorded forecast is published at its ``issued_at``; without recorded forecasts, the forecast at ``t``
  is persistence of the newest published value (flagged ``estimated``, ``method: persistence``);
- gaps of up to ``max_gap`` steps are filled by linear interpolation and flagged ``estimated``; a filled
  value is published only once the value that closes its gap is (longer gaps are never served).

Controllers and replays that read the grid through a ``RecordedSignal`` are causal by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.signals.base import SignalFormatError, StaleSignalError, check_signal, fill_gaps, signal_dataset
from carbonsync.signals.zones import SCHEMES, ZoneLookupError, lookup

__all__ = ["RUNS_SEARCHED", "ReplayClock", "RecordedSignal"]

RUNS_SEARCHED = 4


@dataclass
class ReplayClock:
    """The simulated present (naive UTC)."""

    now: pd.Timestamp

    def __post_init__(self) -> None:
        self.now = pd.Timestamp(self.now)

    def advance(self, step: pd.Timedelta | str) -> pd.Timestamp:
        self.now = self.now + pd.Timedelta(step)
        return self.now


class RecordedSignal:
    """Recorded ``actuals`` ``(time, zone)`` and optional ``forecasts`` (``(issued_at, time, zone)``, or a
    forecast archive ``(issued_at, lead, zone)`` with valid ``time`` ``(issued_at, lead)``) replayed causally on
    ``clock``; ``max_age`` (default: none) makes :meth:`latest` raise StaleSignalError past it."""

    def __init__(self, actuals: xr.Dataset, clock: ReplayClock, forecasts: xr.Dataset | None = None, *,
                 interval: pd.Timedelta | None = None, max_age: pd.Timedelta | None = None, max_gap: int = 0) -> None:
        actuals = check_signal(actuals)
        self.forecasts = forecasts if forecasts is not None and "lead" in forecasts.dims else (
            check_signal(forecasts) if forecasts is not None else None)
        self.kind = str(actuals.attrs["kind"])
        self.name = f"replay:{actuals.attrs.get('provider', 'recorded')}"
        if self.forecasts is not None:
            if "issued_at" not in self.forecasts.dims:
                raise SignalFormatError("recorded forecasts need an issued_at dimension", provider=self.name)
            if self.forecasts.attrs["kind"] != self.kind or self.forecasts.attrs["units"] != actuals.attrs["units"]:
                raise SignalFormatError("forecasts and actuals differ in kind or units", provider=self.name)
        times = pd.DatetimeIndex(actuals["time"].values)
        if interval is None:
            if len(times) < 2:
                raise SignalFormatError("one value is too few to infer the interval; pass interval", provider=self.name)
            interval = pd.Timedelta(np.median(np.diff(times.values)))
        self.interval, self.max_age, self.clock = pd.Timedelta(interval), max_age, clock
        self.actuals = self._with_publication(actuals, max_gap)

    def _with_publication(self, actuals: xr.Dataset, max_gap: int) -> xr.Dataset:
        """``actuals`` (gaps of up to ``max_gap`` steps filled, flagged) with ``published_at``: a value is
        published at the end of its interval; a filled one once the value after its gap is published too."""
        known = actuals["value"].notnull().values
        filled = fill_gaps(actuals, self.interval, max_gap) if max_gap > 0 else actuals
        ends = (pd.DatetimeIndex(filled["time"].values) + self.interval).values
        published = np.full(filled["value"].shape, np.datetime64("NaT"), "datetime64[ns]")
        if filled.sizes["time"] != actuals.sizes["time"]:  # fill_gaps regularised the grid
            known = actuals["value"].reindex(time=filled["time"]).notnull().values
        for z in range(filled.sizes["zone"]):
            real = np.flatnonzero(known[:, z])
            published[real, z] = ends[real]
            gaps = np.flatnonzero(~known[:, z] & filled["value"].notnull().values[:, z])
            after = np.searchsorted(real, gaps)  # the real value that closes each filled gap
            published[gaps, z] = ends[real[after]]
        return filled.assign(published_at=(("time", "zone"), published))

    def kinds(self) -> tuple[str, ...]:
        return (self.kind,)

    def zone(self, name: str) -> str:
        """The recording's code for ``name``: itself, or its code in any scheme of the zone lexicon."""
        zones = set(map(str, self.actuals["zone"].values))
        if name in zones:
            return name
        try:
            codes = [lookup(name).code(scheme) for scheme in SCHEMES]
        except ZoneLookupError:
            codes = []
        found = [c for c in codes if c in zones]
        if not found:
            raise SignalFormatError(f"the recording has no zone '{name}'; it has {sorted(zones)}",
                                    provider=self.name, zone=name)
        return found[0]

    def _check(self, zone: str, kind: str | None) -> xr.Dataset:
        if kind is not None and kind != self.kind:
            raise SignalFormatError(f"this recording holds {self.kind}, not {kind}", provider=self.name, zone=zone)
        return self.actuals.sel(zone=[self.zone(zone)])

    def _published(self, ds: xr.Dataset, at: pd.Timestamp) -> xr.Dataset:
        """The values of the one zone of ``ds`` published by ``at`` (never a NaN)."""
        published = ds["published_at"].values[:, 0]
        keep = ~np.isnat(published) & (published <= np.datetime64(pd.Timestamp(at), "ns"))
        return ds.isel(time=np.flatnonzero(keep)).drop_vars("published_at")

    def _latest_at(self, zone: str, at: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        known = self._published(self._check(zone, kind), at)
        if known.sizes["time"] == 0:
            raise StaleSignalError(f"nothing was published before {at}", provider=self.name, zone=zone)
        last = known.isel(time=[-1])
        age = at - (pd.Timestamp(last["time"].values[0]) + self.interval)
        if self.max_age is not None and age > self.max_age:
            raise StaleSignalError(f"the newest value, published {age} before {at}, is older than the limit "
                                   f"of {self.max_age}", provider=self.name, zone=zone)
        return last.assign_attrs(retrieved_at=self.clock.now.isoformat())

    def _archive_row(self, row: xr.Dataset, zone: str, issue: pd.Timestamp) -> xr.Dataset:
        """One issue of a forecast archive ``(issued_at=1, lead, zone)`` as a forecast ``(issued_at=1, time, zone)``."""
        times, values = row["time"].values[0], row["value"].values[0, :, 0]
        keep = ~pd.isna(times)
        return signal_dataset(values[keep][None], times[keep], zone, self.kind, str(row.attrs["units"]),
                              provider=self.name, endpoint=str(row.attrs.get("endpoint", "")), issued_at=[issue],
                              index=row.attrs.get("index") == "yes",
                              retrieved_at=self.clock.now)

    @staticmethod
    def _stitch(runs: list[xr.Dataset], cutoff: pd.Timestamp, end: pd.Timestamp) -> xr.Dataset | None:
        """The newest run (of ``runs``, newest first) with a value in ``[its issue, end)``, its gaps in
        ``[cutoff, end)`` filled from the runs before it; None when no run has a value there."""
        values: dict[pd.Timestamp, tuple[float, bool, pd.Timestamp]] = {}
        newest: xr.Dataset | None = None
        for run in runs:
            issue = pd.Timestamp(run["issued_at"].values[0])
            times = pd.DatetimeIndex(run["time"].values)
            vals, flags = run["value"].values[0, :, 0], run["estimated"].values[0, :, 0]
            lo = issue if newest is None else max(issue, cutoff)   # older runs only fill the coming hours
            keep = np.flatnonzero((times >= lo) & (times < end) & np.isfinite(vals))
            if newest is None and not keep.size:
                continue
            newest = run if newest is None else newest
            for k in keep:
                values.setdefault(times[k], (float(vals[k]), bool(flags[k]), issue))   # the newest run wins
        if newest is None:
            return None
        times = pd.DatetimeIndex(sorted(values))
        out = signal_dataset(np.array([[values[t][0] for t in times]]), times, str(newest["zone"].values[0]),
                             str(newest.attrs["kind"]), str(newest.attrs["units"]), provider=str(newest.attrs["provider"]),
                             endpoint=str(newest.attrs.get("endpoint", "")),
                             estimated=np.array([[values[t][1] for t in times]]), issued_at=newest["issued_at"].values,
                             index=newest.attrs.get("index") == "yes")
        out["issued"] = (("time", "zone"), np.array([values[t][2] for t in times], "datetime64[ns]")[:, None])
        return out

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        return self._latest_at(self.zone(zone), self.clock.now, kind)

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        zone = self.zone(zone)
        known = self._published(self._check(zone, kind), self.clock.now)
        times = pd.DatetimeIndex(known["time"].values)
        keep = (times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))
        return known.isel(time=np.flatnonzero(keep)).assign_attrs(retrieved_at=self.clock.now.isoformat())

    def _run(self, zone: str, i: int) -> xr.Dataset:
        """Recorded run ``i`` for ``zone`` as ``(issued_at=1, time, zone)``."""
        one = self.forecasts.sel(zone=[zone]).isel(issued_at=[i])
        if "lead" in one.dims:  # a forecast archive: one issue's leads with their valid times
            one = self._archive_row(one, zone, pd.Timestamp(self.forecasts["issued_at"].values[i]))
        return one

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = None) -> xr.Dataset:
        """The newest recorded forecast issued before ``issued_before`` (never after the clock), over
        ``[issued_at, cutoff + horizon)`` where the cutoff is the earlier of the two. Hours in ``[cutoff,
        cutoff + horizon)`` the newest run lacks (a day-ahead run whose day has not begun) come from the runs
        before it, among the newest ``RUNS_SEARCHED``; each value's issue time is in the variable ``issued``.
        Persistence of the newest published value when no run has a value there."""
        zone = self.zone(zone)
        self._check(zone, kind)
        cutoff = min(pd.Timestamp(issued_before), self.clock.now) if issued_before is not None else self.clock.now
        horizon = pd.Timedelta(horizon)
        if self.forecasts is not None and zone in set(map(str, self.forecasts["zone"].values)):
            issued = pd.DatetimeIndex(self.forecasts["issued_at"].values)
            runs = [self._run(zone, i) for i in np.flatnonzero(issued < cutoff)[::-1][:RUNS_SEARCHED]]
            stitched = self._stitch(runs, cutoff, cutoff + horizon)
            if stitched is not None:
                return stitched.assign_attrs(retrieved_at=self.clock.now.isoformat(), method="recorded forecast")
        last = self._latest_at(zone, cutoff)
        start = pd.Timestamp(last["time"].values[0]) + self.interval
        steps = max(int(np.ceil((cutoff + horizon - start) / self.interval)), 1)
        times = pd.date_range(start, periods=steps, freq=self.interval)
        ds = signal_dataset(np.full((1, steps), float(last["value"].values[0, 0])), times, zone, self.kind,
                            str(last.attrs["units"]), provider=self.name, estimated=np.ones((1, steps), bool),
                            issued_at=[cutoff], index=last.attrs.get("index") == "yes", retrieved_at=self.clock.now)
        return ds.assign_attrs(method="persistence")
