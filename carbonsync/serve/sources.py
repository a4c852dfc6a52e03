"""What the service reads: the forecast store (the last committed snapshot, never a running export) and the
decision logs that running controllers append to.

:class:`ForecastSource` wraps :func:`carbonsync.forecast.reader.reader_for`: every call reads the tip of
``main`` at that moment, so an export running beside the service is seen batch by batch, complete or not at all.
A store that does not exist yet, or has no committed init time, is reported as :class:`NotReady` (the API
answers 503) until it appears; nothing is cached across that.

:class:`DecisionLogs` follows every file matching the configured glob patterns, reading only the bytes
appended since the last look (a partly written last line waits for its newline; a file that shrank is read
anew). Each file is one job, named by its stem (or its folder, for ``.../<job>/decisions.jsonl``).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.logs import get_logger
from carbonsync.forecast.reader import reader_for
from carbonsync.forecast.store import ForecastStoreError, Location, StoreLocation

__all__ = ["ControllerLog", "DecisionLogs", "ForecastSource", "NotReady", "UnknownZone"]

log = get_logger(__name__)


class NotReady(CarbonSyncError):
    """The forecast store does not exist yet or holds no committed init time."""


class UnknownZone(CarbonSyncError, KeyError):
    """A zone the forecast store does not have."""

    def __init__(self, zones: list[str], known: list[str]) -> None:
        super().__init__(f"unknown zone(s) {zones}; the forecast store has {known}")
        self.zones, self.known = zones, known

    def __str__(self) -> str:
        return str(self.args[0])


class ForecastSource:
    """Reads of one forecast store for the service (see the module docstring)."""

    def __init__(self, store: Location) -> None:
        self.location = StoreLocation.parse(store)
        self.store = store

    def _reader(self):
        if self.location.is_local and not Path(self.location.path).exists():
            raise NotReady(f"no forecast store at '{self.location.path}' yet (run the forecast stage)")
        try:
            reader = reader_for(self.store)
            snap = reader.snapshot()
        except ForecastStoreError as err:
            raise NotReady(f"the forecast store '{self.store}' cannot be read yet: {err}") from None
        if len(snap.inits) == 0:
            raise NotReady(f"the forecast store '{self.store}' has no committed init time yet")
        return reader, snap

    def status(self) -> dict[str, Any]:
        """``status`` ok / missing / empty, the newest committed init time, its snapshot id, the zones."""
        try:
            reader, snap = self._reader()
        except NotReady as err:
            missing = self.location.is_local and not Path(self.location.path).exists()
            return {"status": "missing" if missing else "empty", "detail": str(err), "init_time": None,
                    "init_times": 0, "snapshot_id": None, "zones": [], "path": str(self.store)}
        view = snap.groups["zones"]
        return {"status": "ok", "detail": "", "init_time": pd.Timestamp(snap.inits[-1]), "init_times": len(snap.inits),
                "snapshot_id": snap.id, "zones": list(view.zone_pos), "path": str(self.store),
                "products": sorted(view.arrays), "zone_names": self._zone_names(view)}

    @staticmethod
    def _zone_names(view: Any) -> dict[str, str]:
        names = view.coords.get("zone_name")
        if names is None:
            return {}
        return {str(z): str(n) for z, n in zip(view.zone_pos, names.values, strict=False)}

    def zones(self) -> list[str]:
        return list(self._reader()[1].groups["zones"].zone_pos)

    def check_zones(self, zones: list[str]) -> None:
        known = self.zones()
        missing = [z for z in zones if z not in known]
        if missing:
            raise UnknownZone(missing, known)

    def latest(self, zones: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None,
               products: list[str]) -> xr.Dataset:
        """The newest committed forecast of ``products`` for ``zones`` covering ``[start, end]``."""
        reader, snap = self._reader()
        self.check_zones(zones)
        view = snap.groups["zones"]
        unknown = [p for p in products if p not in view.arrays]
        if unknown:
            raise KeyError(f"products {unknown} are not in the forecast store; it has {sorted(view.arrays)}")
        return reader.latest(zones, start, end, products)

    def span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last valid time of the newest init time's forecast."""
        reader, snap = self._reader()
        lead = snap.groups["zones"].lead.values
        init = pd.Timestamp(snap.inits[-1])
        return init + pd.Timedelta(lead[0]), init + pd.Timedelta(lead[-1])


@dataclass
class ControllerLog:
    """One job's decision log as read so far."""

    job: str
    path: Path
    records: deque = field(default_factory=deque)
    total: int = 0                                  # decisions read since the service started following it
    by_state: dict[str, int] = field(default_factory=dict)
    offset: int = 0
    partial: bytes = b""
    bad_lines: int = 0


class DecisionLogs:
    """Follows the decision logs matching ``patterns`` (absolute, or relative to ``root``)."""

    def __init__(self, root: str | Path, patterns: list[str], keep: int = 2000) -> None:
        self.root, self.patterns, self.keep = Path(root), list(patterns), int(keep)
        self.logs: dict[Path, ControllerLog] = {}
        self._lock = threading.Lock()

    def _paths(self) -> list[Path]:
        found: set[Path] = set()
        for pattern in self.patterns:
            base = Path(pattern)
            if base.is_absolute():
                found.update(Path(base.anchor).glob(str(base.relative_to(base.anchor))))
            else:
                found.update(self.root.glob(pattern))
        return sorted(p for p in found if p.is_file())

    @staticmethod
    def _job(path: Path) -> str:
        return path.parent.name if path.stem == "decisions" and path.parent.name != "control" else path.stem

    def refresh(self) -> list[ControllerLog]:
        """Read what was appended since the last call; the logs by job name."""
        with self._lock:
            for path in self._paths():
                entry = self.logs.get(path)
                if entry is None:
                    entry = self.logs[path] = ControllerLog(self._job(path), path, deque(maxlen=self.keep))
                self._read(entry)
            return sorted(self.logs.values(), key=lambda e: e.job)

    def _read(self, entry: ControllerLog) -> None:
        try:
            size = entry.path.stat().st_size
            if size < entry.offset:                    # truncated or replaced: start again
                entry.offset, entry.partial = 0, b""
                entry.records.clear()
                entry.total, entry.by_state = 0, {}
            if size == entry.offset:
                return
            with entry.path.open("rb") as f:
                f.seek(entry.offset)
                chunk = f.read(size - entry.offset)
        except OSError as err:
            log.warning("serve: cannot read decision log %s: %s", entry.path, err)
            return
        entry.offset += len(chunk)
        data = entry.partial + chunk
        lines = data.split(b"\n")
        entry.partial = lines.pop()                    # the unfinished last line, if any
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                state = str(record["state"])
            except (ValueError, KeyError, TypeError):
                entry.bad_lines += 1
                log.warning("serve: %s: skipped a line that is not a decision record", entry.path)
                continue
            entry.records.append(record)
            entry.total += 1
            entry.by_state[state] = entry.by_state.get(state, 0) + 1

    def job(self, name: str) -> ControllerLog | None:
        return next((e for e in self.refresh() if e.job == name), None)
