"""The grid-signal seam: one protocol, one output contract with normalised units, named errors, a registry.

A *grid signal* is what a provider publishes about a zone's electricity: average carbon intensity,
marginal emissions (MOER), price, renewable share or curtailment. Every provider (a live API client or a
recorded file) implements :class:`GridSignal` and returns datasets under **the signal contract**
(:func:`signal_dataset`, checked by :func:`check_signal`):

- variable ``value`` with dims ``(time, zone)``, or ``(issued_at, time, zone)`` for forecasts; ``time`` is
  naive UTC, sorted and unique; the value covers the interval that *starts* at its label;
- variable ``estimated`` (same dims, bool): the provider estimated or we filled the value;
- units normalised per kind (:data:`KINDS`): g CO2e/kWh, currency/MWh (the currency in ``attrs``), fraction
  (``1``), MW; a percent *index* (WattTime's ``signal-index``) stays an index, with units ``percent`` and
  ``index: yes``;
- attributes ``kind``, ``units``, ``provider``, ``endpoint`` and ``retrieved_at`` (ISO UTC), so the age of a
  value is ``retrieved_at - time``.

Errors carry the provider, the endpoint and the zone (:class:`SignalError` and its subclasses); any secret
handed to :func:`redact` is masked in their messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.time import utc_naive, utc_naive_index

__all__ = [
    "KINDS",
    "Kind",
    "GridSignal",
    "SignalError",
    "SignalAuthError",
    "SignalPlanError",
    "SignalRateLimited",
    "SignalUnavailable",
    "SignalFormatError",
    "SignalRangeError",
    "StaleSignalError",
    "SignalSet",
    "check_signal",
    "convert_units",
    "fill_gaps",
    "get_signal",
    "known_signals",
    "redact",
    "register_signal",
    "signal_dataset",
]


@dataclass(frozen=True)
class Kind:
    """A signal kind: its normalised ``units`` and the physical ``valid_range`` of values in them."""

    name: str
    units: str
    valid_range: tuple[float, float]
    description: str


# Marginal emissions reach ~1,100 g/kWh for old lignite; a few thousand g/kWh is no grid's average.
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("carbon_intensity", "g CO2e/kWh", (0.0, 3000.0), "average (consumption or production) carbon intensity"),
    Kind("marginal_emissions", "g CO2e/kWh", (0.0, 3000.0), "marginal operating emissions rate (MOER)"),
    Kind("price", "currency/MWh", (-20000.0, 100000.0), "wholesale electricity price (LMP, day-ahead)"),
    Kind("renewable_share", "1", (0.0, 1.0), "share of renewable generation"),
    Kind("curtailment", "MW", (0.0, 1.0e6), "curtailed renewable power"),
)}

# provider spelling -> (factor to the kind's units, normalised spelling); keys compared lower-case, no spaces
_UNITS: dict[str, tuple[float, str]] = {
    "gco2e/kwh": (1.0, "g CO2e/kWh"), "gco2eq/kwh": (1.0, "g CO2e/kWh"), "gco2/kwh": (1.0, "g CO2e/kWh"),
    "g/kwh": (1.0, "g CO2e/kWh"), "kgco2/mwh": (1.0, "g CO2e/kWh"), "kg/mwh": (1.0, "g CO2e/kWh"),
    "tco2/mwh": (1000.0, "g CO2e/kWh"), "kgco2e/kwh": (1000.0, "g CO2e/kWh"), "kg/kwh": (1000.0, "g CO2e/kWh"),
    "lbs_co2_per_mwh": (0.45359237, "g CO2e/kWh"), "lbs/mwh": (0.45359237, "g CO2e/kWh"),
    "lb/mwh": (0.45359237, "g CO2e/kWh"),
    "1": (1.0, "1"), "fraction": (1.0, "1"), "%": (0.01, "1"), "percent": (0.01, "1"),
    "mw": (1.0, "MW"), "kw": (1.0e-3, "MW"), "gw": (1.0e3, "MW"),
}


class SignalError(CarbonSyncError, RuntimeError):
    """A grid signal could not be had; the message names the provider, the endpoint and the zone."""

    def __init__(self, message: str, *, provider: str, endpoint: str = "", zone: str = "",
                 secrets: Iterable[str] = ()) -> None:
        where = ", ".join(p for p in (f"provider {provider}", endpoint and f"endpoint {endpoint}",
                                      zone and f"zone {zone}") if p)
        super().__init__(redact(f"{where}: {message}", secrets))
        self.provider, self.endpoint, self.zone = provider, redact(endpoint, secrets), zone


class SignalAuthError(SignalError):
    """Credentials missing, refused (401) or expired and not renewable."""


class SignalPlanError(SignalError):
    """The account's plan lacks the endpoint or zone (403), or the provider does not serve the zone."""


class SignalRateLimited(SignalError):
    """429 Too Many Requests, still refused after the retries; ``retry_after`` seconds if the provider said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **where: Any) -> None:
        super().__init__(message, **where)
        self.retry_after = retry_after


class SignalUnavailable(SignalError):
    """5xx, timeouts and dropped connections, still failing after the retries."""


class SignalFormatError(SignalError):
    """A reply or file that is not what the provider documents (nulls, an error page, truncated data, another zone)."""


class SignalRangeError(SignalError):
    """Values outside the kind's physical range (e.g. carbon intensity in kg read as g)."""


class StaleSignalError(SignalError):
    """The newest value is older than the staleness limit."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret in it replaced by ``***`` (longest first)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def convert_units(values: np.ndarray, units: str, kind: str, *, provider: str, endpoint: str = "",
                  zone: str = "") -> tuple[np.ndarray, str]:
    """Values in a provider's ``units`` converted to ``kind``'s normalised units: (values, units).

    Prices keep their currency (``EUR/MWh`` stays ``EUR/MWh``). Unknown or mismatched units are a
    :class:`SignalFormatError`.
    """
    spec = _kind(kind, provider)
    values = np.asarray(values, dtype=np.float64)
    if kind == "price":
        currency, _, per = units.partition("/")
        if per.strip().lower() != "mwh" or not currency.strip():
            raise SignalFormatError(f"price units '{units}' are not <currency>/MWh", provider=provider,
                                    endpoint=endpoint, zone=zone)
        return values, f"{currency.strip().upper().replace('$', 'USD')}/MWh"
    key = units.strip().lower().replace(" ", "")
    if key not in _UNITS or _UNITS[key][1] != spec.units:
        raise SignalFormatError(f"units '{units}' cannot be read as {spec.units} for {kind}", provider=provider,
                                endpoint=endpoint, zone=zone)
    factor, normalised = _UNITS[key]
    return values * factor, normalised


def _kind(kind: str, provider: str) -> Kind:
    if kind not in KINDS:
        raise SignalFormatError(f"signal kind '{kind}' is not one of {sorted(KINDS)}", provider=provider)
    return KINDS[kind]


def signal_dataset(values: np.ndarray, times: Sequence | pd.DatetimeIndex, zone: str, kind: str, units: str, *,
                   provider: str, endpoint: str = "", estimated: np.ndarray | None = None,
                   issued_at: Sequence | pd.DatetimeIndex | None = None, index: bool = False,
                   retrieved_at: pd.Timestamp | None = None, where: str = "") -> xr.Dataset:
    """A dataset under the signal contract for one zone, from values in the provider's ``units``.

    ``values`` are ``(time,)``, or ``(issued_at, time)`` with ``issued_at``. ``index=True`` keeps a percent
    index as it is (units ``percent``, range [0, 100]). ``where`` (a file, column or row) is named in range
    errors. Raises :class:`SignalRangeError` or :class:`SignalFormatError`.
    """
    times = utc_naive_index(pd.DatetimeIndex(times))
    values = np.asarray(values, dtype=np.float64)
    context = {"provider": provider, "endpoint": endpoint, "zone": zone}
    if index:
        if units.strip().lower() not in ("percent", "%"):
            raise SignalFormatError(f"an index must be in percent, not '{units}'", **context)
        normalised = "percent"
    else:
        values, normalised = convert_units(values, units, kind, **context)
    dims: tuple[str, ...] = ("time",)
    coords: dict[str, Any] = {"time": times.values}
    if issued_at is not None:
        issued = utc_naive_index(pd.DatetimeIndex(issued_at))
        dims, coords = ("issued_at", "time"), {"issued_at": issued.values, **coords}
    if values.shape != tuple(len(coords[d]) for d in dims):
        raise SignalFormatError(f"values of shape {values.shape} for dims {dims} of sizes "
                                f"{tuple(len(coords[d]) for d in dims)}", **context)
    flags = np.zeros(values.shape, bool) if estimated is None else np.asarray(estimated, dtype=bool)
    ds = xr.Dataset(
        {"value": ((*dims, "zone"), values[..., None]), "estimated": ((*dims, "zone"), flags[..., None])},
        coords={**coords, "zone": [zone]},
        attrs={"kind": kind, "units": normalised, "provider": provider, "endpoint": endpoint,
               "index": "yes" if index else "no",
               "retrieved_at": utc_naive(retrieved_at if retrieved_at is not None else pd.Timestamp.now("UTC")).isoformat()},
    )
    return check_signal(ds, where=where)


def check_signal(ds: xr.Dataset, where: str = "") -> xr.Dataset:
    """The signal contract (see the module docstring): raises a named error, else returns ``ds``."""
    provider = str(ds.attrs.get("provider", "unknown"))
    zone = ",".join(map(str, ds["zone"].values)) if "zone" in ds.coords else ""
    context = {"provider": provider, "endpoint": str(ds.attrs.get("endpoint", "")), "zone": zone}
    for name in ("value", "estimated"):
        if name not in ds:
            raise SignalFormatError(f"the dataset has no '{name}' variable", **context)
        if ds[name].dims[-2:] != ("time", "zone") or ds[name].dims[0] not in ("time", "issued_at"):
            raise SignalFormatError(f"'{name}' has dims {ds[name].dims}, expected (time, zone) or "
                                    "(issued_at, time, zone)", **context)
    times = pd.DatetimeIndex(ds["time"].values)
    if times.hasnans or not times.is_unique or not times.is_monotonic_increasing:
        raise SignalFormatError("times must be unique, sorted and not missing", **context)
    kind = _kind(str(ds.attrs.get("kind")), provider)
    lo, hi = (0.0, 100.0) if ds.attrs.get("index") == "yes" else kind.valid_range
    values = ds["value"].values
    bad = np.isinf(values) | (values < lo) | (values > hi)
    if bad.any():
        first = np.argwhere(bad)[0]
        at = pd.Timestamp(ds["time"].values[first[-2]]).isoformat()
        raise SignalRangeError(
            f"{kind.name} {values[tuple(first)]:.6g} {ds.attrs.get('units')} at {at}{' in ' + where if where else ''} "
            f"is outside [{lo:g}, {hi:g}] (wrong units?); {int(bad.sum())} such value(s)", **context)
    return ds


@runtime_checkable
class GridSignal(Protocol):
    """A provider of one or more signal kinds for its zones (codes resolved through :mod:`.zones`)."""

    name: str

    def kinds(self) -> tuple[str, ...]:
        """The signal kinds this provider serves."""
        ...

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        """The newest value ``(time=1, zone)``; raises StaleSignalError past the staleness limit."""
        ...

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        """Values ``(time, zone)`` in ``[start, end)``."""
        ...

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = None) -> xr.Dataset:
        """The newest forecast issued before ``issued_before`` (default now): ``(issued_at=1, time, zone)``."""
        ...


class SignalSet:
    """One :class:`GridSignal` made of several: each call goes to the member serving the asked ``kind``
    (default: the first member's first kind). Members must not serve the same kind twice."""

    def __init__(self, name: str, members: Sequence[GridSignal]) -> None:
        self.name, self.members = name, list(members)
        self._by_kind: dict[str, GridSignal] = {}
        for member in self.members:
            for kind in member.kinds():
                if kind in self._by_kind:
                    raise SignalFormatError(f"two members serve {kind}: {self._by_kind[kind].name} and {member.name}",
                                            provider=name)
                self._by_kind[kind] = member
        if not self._by_kind:
            raise SignalFormatError("a signal set needs at least one member", provider=name)

    def __repr__(self) -> str:
        return f"SignalSet({self.name!r}, kinds={list(self._by_kind)})"

    def kinds(self) -> tuple[str, ...]:
        return tuple(self._by_kind)

    def member(self, kind: str | None) -> GridSignal:
        """The member serving ``kind`` (the default kind when None)."""
        if kind is None:
            return self.members[0]
        if kind not in self._by_kind:
            raise SignalFormatError(f"no {kind} here; kinds: {', '.join(self._by_kind)}", provider=self.name)
        return self._by_kind[kind]

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        return self.member(kind).latest(zone, kind)

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        return self.member(kind).history(zone, start, end, kind)

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = None) -> xr.Dataset:
        return self.member(kind).forecast(zone, horizon, issued_before, kind)


def fill_gaps(ds: xr.Dataset, interval: pd.Timedelta | str, max_gap: int) -> xr.Dataset:
    """``ds`` ``(time, zone)`` on a regular ``interval`` grid: runs of at most ``max_gap`` missing steps (absent
    or NaN) interpolated linearly in time and flagged ``estimated``; longer runs stay NaN.
    ``attrs["filled"]`` counts the filled values."""
    interval = pd.Timedelta(interval)
    if "issued_at" in ds.dims:
        raise SignalFormatError("gap filling is for (time, zone) series, not forecasts",
                                provider=str(ds.attrs.get("provider", "unknown")))
    times = pd.DatetimeIndex(ds["time"].values)
    if len(times) < 2:
        return ds.assign_attrs(filled=0)
    grid = pd.date_range(times[0], times[-1], freq=interval)
    if not times.isin(grid).all():
        raise SignalFormatError(f"times are off the {interval} grid starting {times[0]}",
                                provider=str(ds.attrs.get("provider", "unknown")))
    regular = ds.reindex(time=grid)
    values = regular["value"].to_pandas()
    missing = values.isna()
    filled = values.copy()
    estimated = regular["estimated"].fillna(True).astype(bool).to_pandas()
    count = 0
    for zone in values.columns:
        column = missing[zone]
        ids = column.ne(column.shift()).cumsum()
        lengths = column.groupby(ids).transform("size")
        inside = column & (lengths <= max_gap) & values[zone].ffill().notna() & values[zone].bfill().notna()
        interpolated = values[zone].interpolate(method="time", limit_area="inside")
        filled.loc[inside, zone] = interpolated[inside]
        estimated.loc[inside, zone] = True
        count += int(inside.sum())
    out = regular.copy()
    out["value"] = (("time", "zone"), filled.to_numpy())
    out["estimated"] = (("time", "zone"), estimated.to_numpy())
    return out.assign_attrs(filled=count)


_REGISTRY: dict[str, Callable[..., GridSignal]] = {}


def register_signal(name: str, factory: Callable[..., GridSignal], *, replace: bool = False) -> None:
    """Make ``get_signal(name, **options)`` build a provider with ``factory(**options)``."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"a grid signal named '{name}' is already registered")
    _REGISTRY[name] = factory


def known_signals() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_signal(name: str, **options: Any) -> GridSignal:
    """The registered provider ``name`` built with ``options``."""
    if name not in _REGISTRY:
        raise KeyError(f"no grid signal named '{name}'; known: {', '.join(known_signals()) or 'none'}")
    signal = _REGISTRY[name](**options)
    if not isinstance(signal, GridSignal):
        raise TypeError(f"the factory of '{name}' returned {signal!r}, which is not a GridSignal")
    return signal
