"""Training jobs and compute sites: frozen, validated descriptions loaded from YAML or JSON.

Times are naive UTC ``pandas.Timestamp`` values on whole hours (the zone forecasts are hourly). A job
runs ``hours`` one-hour slots, each starting at or after ``earliest_start`` and ending by ``deadline``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.time import HOUR, fmt_time

DEFAULT_GPU_KW = 0.7


class PlacementError(CarbonSyncError, ValueError):
    """A job, site, forecast or queue that cannot be placed as described."""


def to_utc_hour(value: Any, what: str) -> pd.Timestamp:
    """A naive-UTC timestamp on a whole hour from an ISO string, ``datetime`` or ``date``."""
    if isinstance(value, bool) or not isinstance(value, (str, datetime, date, np.datetime64)):
        raise PlacementError(f"{what} must be an ISO datetime such as '2020-11-20T06:00', got {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise PlacementError(f"{what} is not an ISO datetime: {value!r}") from None
    if pd.isna(ts):
        raise PlacementError(f"{what} is not an ISO datetime: {value!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if ts != ts.floor("h"):
        raise PlacementError(f"{what} {ts.isoformat()} is not on a whole hour (the forecasts are hourly)")
    return ts


def _check_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PlacementError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise PlacementError(f"{what} must be >= {minimum}, got {value}")
    return int(value)


def _check_float(value: Any, what: str, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise PlacementError(f"{what} must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise PlacementError(f"{what} must be {'>' if strict else '>='} {minimum}, got {value}")
    return float(value)


def _check_id(value: Any, kind: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlacementError(f"{kind} id must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class Job:
    """A training job: ``gpus`` GPUs for ``hours`` hours inside ``[earliest_start, deadline]``.

    An ``interruptible`` job may run in several contiguous segments; each segment after the first costs
    ``restart_overhead_h`` extra hours at full power (checkpoint reload, warm-up), billed at the conditions
    of the hour it resumes in; the overhead adds energy but occupies no extra hourly slots. ``regions``
    lists the site ids it may run at; empty means any site. ``home`` is the site it runs at under
    carbon-agnostic placement (the baseline); empty means the first allowed site with enough GPUs.
    """

    id: str
    gpus: int
    hours: int
    earliest_start: pd.Timestamp
    deadline: pd.Timestamp
    interruptible: bool = False
    restart_overhead_h: float = 0.0
    regions: tuple[str, ...] = ()
    home: str = ""

    def __post_init__(self) -> None:
        _check_id(self.id, "job")
        where = f"job '{self.id}'"
        set_ = object.__setattr__
        set_(self, "gpus", _check_int(self.gpus, f"{where}: gpus"))
        set_(self, "hours", _check_int(self.hours, f"{where}: hours"))
        set_(self, "earliest_start", to_utc_hour(self.earliest_start, f"{where}: earliest_start"))
        set_(self, "deadline", to_utc_hour(self.deadline, f"{where}: deadline"))
        if not isinstance(self.interruptible, (bool, np.bool_)):
            raise PlacementError(f"{where}: interruptible must be true or false, got {self.interruptible!r}")
        set_(self, "interruptible", bool(self.interruptible))
        set_(
            self,
            "restart_overhead_h",
            _check_float(self.restart_overhead_h, f"{where}: restart_overhead_h", 0.0),
        )
        regions = () if self.regions is None else self.regions
        if isinstance(regions, str) or not isinstance(regions, (list, tuple)):
            raise PlacementError(f"{where}: regions must be a list of site ids, got {regions!r}")
        for region in regions:
            if not isinstance(region, str) or not region.strip():
                raise PlacementError(f"{where}: regions must be site id strings, got {region!r}")
        if len(set(regions)) != len(regions):
            raise PlacementError(f"{where}: regions lists a site twice: {list(regions)}")
        set_(self, "regions", tuple(regions))
        home = "" if self.home is None else self.home
        if not isinstance(home, str):
            raise PlacementError(f"{where}: home must be a site id string, got {home!r}")
        if home and regions and home not in regions:
            raise PlacementError(f"{where}: home site '{home}' is not one of its regions {list(regions)}")
        set_(self, "home", home)
        finish = self.earliest_start + self.hours * HOUR
        if self.deadline < finish:
            raise PlacementError(
                f"{where}: deadline {fmt_time(self.deadline)} is before earliest_start + hours "
                f"({fmt_time(self.earliest_start)} + {self.hours} h = {fmt_time(finish)})"
            )

    @property
    def window_hours(self) -> int:
        """Number of hourly slots between ``earliest_start`` and ``deadline``."""
        return int((self.deadline - self.earliest_start) / HOUR)

    @property
    def slack_h(self) -> int:
        """Hours the job can be delayed and still meet its deadline."""
        return self.window_hours - self.hours


@dataclass(frozen=True)
class Site:
    """A data centre in a grid ``zone`` with ``gpus`` GPUs, a PUE and an electricity price.

    ``price`` is a constant in EUR/MWh or the path of a CSV file with columns ``time,price`` (UTC).
    ``gpu_kw`` is the IT power drawn per busy GPU (kW); the facility draws ``pue`` times that.
    """

    id: str
    zone: str
    gpus: int
    pue: float
    price: float | Path
    gpu_kw: float = DEFAULT_GPU_KW

    def __post_init__(self) -> None:
        _check_id(self.id, "site")
        where = f"site '{self.id}'"
        set_ = object.__setattr__
        if not isinstance(self.zone, str) or not self.zone.strip():
            raise PlacementError(f"{where}: zone must be a zone id string, got {self.zone!r}")
        set_(self, "gpus", _check_int(self.gpus, f"{where}: gpus"))
        set_(self, "pue", _check_float(self.pue, f"{where}: pue", 1.0))
        set_(self, "gpu_kw", _check_float(self.gpu_kw, f"{where}: gpu_kw", 0.0, strict=True))
        if isinstance(self.price, (str, Path)):
            path = Path(self.price).expanduser()
            if not path.is_file():
                raise PlacementError(f"{where}: price file '{path}' does not exist")
            set_(self, "price", path)
            try:
                _read_price_csv(path, path.stat().st_mtime_ns)
            except PlacementError as err:
                raise PlacementError(f"{where}: price: {err}") from None
        else:
            set_(self, "price", _check_float(self.price, f"{where}: price"))

    def power_kw(self, gpus: int) -> float:
        """Facility power (kW) of ``gpus`` busy GPUs, PUE included."""
        return gpus * self.gpu_kw * self.pue

    def prices(self, times: pd.DatetimeIndex) -> np.ndarray:
        """Price (EUR/MWh) at each hour of ``times``; NaN where a price file has no value."""
        if isinstance(self.price, Path):
            series = _read_price_csv(self.price, self.price.stat().st_mtime_ns)
            return series.reindex(times).to_numpy(dtype=np.float64)
        return np.full(len(times), self.price, dtype=np.float64)


@lru_cache(maxsize=32)
def _read_price_csv(path: Path, mtime_ns: int) -> pd.Series:
    """Hourly mean price from a ``time,price`` CSV (cached per file version)."""
    del mtime_ns  # part of the cache key only
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError) as err:
        raise PlacementError(f"price file '{path}' cannot be read: {err}") from None
    missing = [c for c in ("time", "price") if c not in frame.columns]
    if missing:
        raise PlacementError(
            f"price file '{path}': missing column(s) {', '.join(missing)}; it has {', '.join(frame.columns)}"
        )
    try:
        times = pd.to_datetime(frame["time"], utc=True).dt.tz_localize(None)
    except (ValueError, TypeError) as err:
        raise PlacementError(f"price file '{path}': column 'time' is not ISO datetimes ({err})") from None
    prices = pd.to_numeric(frame["price"], errors="coerce")
    if prices.isna().any() or not np.isfinite(prices).all():
        row = int(np.flatnonzero(~np.isfinite(prices.to_numpy(dtype=float)))[0])
        raise PlacementError(
            f"price file '{path}': row {row + 2} has no numeric price ({frame['price'][row]!r})"
        )
    if times.duplicated().any():
        raise PlacementError(f"price file '{path}': duplicated time {times[times.duplicated()].iloc[0]}")
    series = pd.Series(prices.to_numpy(dtype=np.float64), index=pd.DatetimeIndex(times)).sort_index()
    return series.resample("h").mean()


def _read_document(path: Path, kind: str) -> Any:
    if not path.is_file():
        raise PlacementError(f"{kind} file '{path}' does not exist")
    text = path.read_text()
    is_json = path.suffix.lower() == ".json"
    try:
        return json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise PlacementError(
            f"{kind} file '{path}' is not valid {'JSON' if is_json else 'YAML'}: {err}"
        ) from None


def _items(source: Any, key: str, kind: str) -> tuple[list[Any], str, Path | None]:
    """The entries under ``key`` of a file / mapping / list, a label for messages, and the file's folder."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        doc, where, folder = _read_document(path, kind), f"{kind} file '{path}'", path.parent
    else:
        doc, where, folder = source, f"{kind} list", None
    if isinstance(doc, Mapping):
        unknown = sorted(set(doc) - {key})
        if unknown:
            raise PlacementError(
                f"{where}: unknown top-level key(s) {', '.join(map(str, unknown))}; expected '{key}:'"
            )
        doc = doc.get(key)
    elif folder is not None:
        raise PlacementError(f"{where}: expected a mapping with a top-level '{key}:' list")
    if isinstance(doc, (str, bytes)) or not isinstance(doc, Sequence):
        raise PlacementError(f"{where}: '{key}' must be a list, got {type(doc).__name__}")
    if not doc:
        raise PlacementError(f"{where} defines no {key}")
    return list(doc), where, folder


def _build(cls: type, item: Any, index: int, where: str, kind: str) -> Any:
    """Instantiate ``cls`` from one mapping, checking for unknown and missing keys first."""
    if isinstance(item, cls):
        return item
    if not isinstance(item, Mapping):
        raise PlacementError(f"{where}: {kind} #{index + 1} must be a mapping, got {item!r}")
    ident = item.get("id")
    label = f"{where}: {kind} '{ident}'" if isinstance(ident, str) else f"{where}: {kind} #{index + 1}"
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(map(str, item)) - set(allowed))
    if unknown:
        raise PlacementError(
            f"{label}: unknown key(s) {', '.join(unknown)}; allowed keys are {', '.join(allowed)}"
        )
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in item]
    if missing:
        raise PlacementError(f"{label}: missing key(s) {', '.join(missing)}")
    try:
        return cls(**item)
    except PlacementError as err:
        raise PlacementError(f"{where}: {err}") from None


def _check_unique(ids: list[str], where: str, kind: str) -> None:
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise PlacementError(f"{where}: duplicated {kind} id(s) {', '.join(repr(i) for i in duplicated)}")


def check_regions(jobs: Sequence[Job], sites: Sequence[Site], where: str = "queue") -> None:
    """Every region (and home) a job names must be one of ``sites``."""
    known = [s.id for s in sites]
    known_set = set(known)
    for job in jobs:
        if job.home and job.home not in known_set:
            raise PlacementError(
                f"{where}: job '{job.id}': home: unknown site id '{job.home}'; known sites are {', '.join(known)}"
            )
        if not job.regions:
            continue
        unknown = [r for r in job.regions if r not in known_set]
        if unknown:
            raise PlacementError(
                f"{where}: job '{job.id}': regions: unknown site id(s) "
                f"{', '.join(repr(u) for u in unknown)}; known sites are {', '.join(known)}"
            )


def load_queue(
    source: str | Path | Sequence[Mapping | Job] | Mapping, sites: Sequence[Site] | None = None
) -> list[Job]:
    """Jobs from a YAML/JSON file with a top-level ``jobs:`` list, a ``{"jobs": [...]}`` mapping or a list.

    When ``sites`` is given, region ids are checked against them.
    """
    items, where, _ = _items(source, "jobs", "queue")
    jobs = [_build(Job, item, i, where, "job") for i, item in enumerate(items)]
    _check_unique([j.id for j in jobs], where, "job")
    if sites is not None:
        check_regions(jobs, sites, where)
    return jobs


def load_sites(source: str | Path | Sequence[Mapping | Site] | Mapping) -> list[Site]:
    """Sites from a YAML/JSON file with a top-level ``sites:`` list, a mapping or a list.

    A relative price-file path in a file is resolved against that file's folder.
    """
    items, where, folder = _items(source, "sites", "sites")
    if folder is not None:
        items = [
            {**item, "price": str(folder / item["price"])}
            if isinstance(item, Mapping)
            and isinstance(item.get("price"), str)
            and not Path(item["price"]).expanduser().is_absolute()
            else item
            for item in items
        ]
    sites = [_build(Site, item, i, where, "site") for i, item in enumerate(items)]
    _check_unique([s.id for s in sites], where, "site")
    return sites
