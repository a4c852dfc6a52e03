"""Time, energy and emissions of a replayed run: the replay clock, the event log and a documented power model.

- :class:`ReplayClock` is the run's trace time, advanced by the ServerApp by modelled work (an 18-hour trace
  in minutes) and read by the driver and the event log.
- :class:`EventLog` appends one JSON line per event (window open/close, provisioning, round start/end,
  join/leave) with the trace time and the wall time; it is safe to append from several processes.
- :class:`PowerModel`: a node draws ``train_kw`` while training and ``idle_kw`` while provisioned and not
  training (the study measured 2.024 kW and 0.468 kW per 4-GPU node); a node that reports measured energy
  (NVML counters) is charged that instead.
- :func:`site_energy` integrates a site's power over its intervals against its time-aligned signal
  (values hold from their label to the next): energy, emissions and the energy drawn inside its windows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carbonsync.core.checks import at_least
from carbonsync.core.fs import write_json_atomic

__all__ = ["EventLog", "PowerModel", "ReplayClock", "SiteEnergy", "read_events", "site_energy"]


class ReplayClock:
    """The trace time of a replay, kept in a small JSON file that the ServerApp advances and the others read.

    Trace time advances by modelled work, not by wall time: a round moves it on by the steps done at each
    site's modelled step time, a pause jumps to the next change of any site's plan. Waiting for processes
    (a SuperNode starting, a ClientApp importing torch) costs no trace time, so results do not depend on how
    busy this machine is, and an 18-hour trace replays in the minutes its compute takes.
    """

    def __init__(self, path: str | Path, start: str | pd.Timestamp) -> None:
        self.path, self.start = Path(path), pd.Timestamp(start)

    def now(self) -> pd.Timestamp:
        try:
            return pd.Timestamp(json.loads(self.path.read_text())["trace_time"])
        except FileNotFoundError:
            return self.start
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"the replay clock {self.path} is unreadable: {err}") from err

    def set(self, t: pd.Timestamp) -> None:
        """Move the clock to ``t`` (never backwards)."""
        t = pd.Timestamp(t)
        if t < self.now():
            raise ValueError(f"the replay clock cannot go back from {self.now()} to {t}")
        write_json_atomic({"trace_time": t.isoformat(), "wall_time": time.time()}, self.path)


class EventLog:
    """Events as JSON lines ``{"trace_time", "wall_time", "event", ...}`` in ``path`` (appended)."""

    def __init__(self, path: str | Path, clock: ReplayClock) -> None:
        self.path, self.clock = Path(path), clock
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, event: str, trace_time: pd.Timestamp | None = None, **details: Any) -> dict[str, Any]:
        wall = time.time()
        record = {"trace_time": (trace_time if trace_time is not None else self.clock.now()).isoformat(),
                  "wall_time": pd.Timestamp(wall, unit="s").isoformat(), "event": event, **details}
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)   # one write per line: atomic append
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return record


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a log (a torn last line, from a killed writer, is skipped)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@dataclass
class PowerModel:
    """Per-node draw in kW: ``train_kw`` while training, ``idle_kw`` while provisioned and idle or provisioning."""

    train_kw: float = 2.024
    idle_kw: float = 0.468

    def __post_init__(self) -> None:
        at_least(self, 0, "train_kw", "idle_kw")

    def kw(self, state: str) -> float:
        return self.train_kw if state == "train" else self.idle_kw if state in ("idle", "provisioning") else 0.0


@dataclass
class SiteEnergy:
    """A site's energy (kWh), emissions (kg CO2e) and the energy drawn inside its windows (kWh)."""

    energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    energy_in_windows_kwh: float = 0.0
    train_hours: float = 0.0

    def __add__(self, other: SiteEnergy) -> SiteEnergy:
        return SiteEnergy(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values(), strict=True)))


def _pieces(start: pd.Timestamp, end: pd.Timestamp, labels: pd.DatetimeIndex) -> Iterator[tuple[int, float]]:
    """``(label index, seconds)`` of ``[start, end)`` split at the signal's labels (values hold to the next)."""
    if end <= start:
        return
    first = max(int(labels.searchsorted(start, side="right")) - 1, 0)
    for i in range(first, len(labels)):
        lo = start if i == first else max(start, labels[i])   # before the first label its value holds
        hi = min(end, labels[i + 1]) if i + 1 < len(labels) else end
        if hi > lo:
            yield i, (hi - lo).total_seconds()
        if i + 1 < len(labels) and labels[i + 1] >= end:
            break


def site_energy(intervals: Iterable[tuple[pd.Timestamp, pd.Timestamp, str, float | None]], signal: pd.Series,
                power: PowerModel, band: Iterable[tuple[pd.Timestamp, pd.Timestamp]] = ()) -> SiteEnergy:
    """Energy and emissions of ``(start, end, state, measured_kwh)`` intervals against ``signal`` (g CO2e/kWh).

    ``measured_kwh`` (NVML counters) replaces the power model for its interval when given, spread evenly over
    it. Energy inside ``band`` (the site's in-band stretches) is counted apart. Before the first label the
    first value holds.
    """
    signal = signal.sort_index()
    labels = pd.DatetimeIndex(signal.index)
    values = np.nan_to_num(signal.to_numpy(dtype=float), nan=float(np.nanmean(signal.to_numpy(dtype=float))))
    band = list(band)
    total = SiteEnergy()
    for start, end, state, measured in intervals:
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        seconds = (end - start).total_seconds()
        if seconds <= 0:
            continue
        kw = (measured * 3600.0 / seconds) if measured is not None else power.kw(state)
        for i, part_s in _pieces(start, end, labels):
            kwh = kw * part_s / 3600.0
            total.energy_kwh += kwh
            total.emissions_kg += kwh * values[i] / 1000.0
        for lo, hi in band:
            overlap = (min(end, hi) - max(start, lo)).total_seconds()
            if overlap > 0:
                total.energy_in_windows_kwh += kw * overlap / 3600.0
        if state == "train":
            total.train_hours += seconds / 3600.0
    return total
