"""ENTSO-E Transparency Platform: day-ahead prices and renewable share behind the GridSignal protocol.

Written on our :class:`~carbonsync.signals.http.Http` rather than PyPI's ``entsoe-py``: that client fixes its
base URL in a module constant read at import, puts the security token in URLs it logs and that reach its
``requests`` exceptions, follows redirects to any host and retries only dropped connections (not 429/503).

Requests are ``GET /api`` with ``securityToken`` (from the argument or ``ENTSOE_API_KEY``), ``periodStart``
and ``periodEnd`` (``yyyyMMddHHmm`` UTC) and, per kind:

- ``price``: ``documentType=A44`` (day-ahead auction prices, a ``Publication_MarketDocument``), ``in_Domain``
  and ``out_Domain`` the area; values in ``currency_Unit.name`` per ``MWH`` (EUR/MWh stays EUR/MWh);
- ``renewable_share``: ``documentType=A75&processType=A16`` (actual generation per production type, a
  ``GL_MarketDocument`` in MW); the share is renewable over all generation with the fuel names and the
  renewable list of :mod:`carbonsync.data.observations.entsoe` (:data:`PSR_FUELS`), consumption series
  (``outBiddingZone_Domain``, e.g. pumping) left out.

Reading the documents:

- curve type ``A03`` omits a point whose value is unchanged: it is forward-filled within its period; under
  ``A01`` a missing position stays missing;
- every resolution (``PT15M``, ``PT30M``, ``PT60M``) is averaged to **hourly** values labelled by the hour's
  start, so a range across a change of resolution stays regular; where two resolutions cover one hour the finer
  wins; an hour not fully covered is flagged ``estimated``, and so is a renewable share hour that lacks a
  production type the reply has elsewhere;
- ranges longer than one year (the platform's limit) are split into one-year requests; a part with no data
  is skipped as long as another part has some;
- a series for another area than asked is a :class:`~carbonsync.signals.base.SignalFormatError`; XML is
  parsed with :mod:`xml.etree.ElementTree` and a document type declaration is refused, so no entity expands.

Errors: an ``Acknowledgement_MarketDocument`` saying "No matching data found" (with HTTP 200 or 400) is
:class:`NoMatchingData`, a :class:`~carbonsync.signals.base.SignalPlanError`: the platform holds no such data
for the area and period (the area does not publish it, or not yet), and retrying soon will not help; any
other acknowledgement (bad parameters) is a SignalFormatError with its reason. 401 is a SignalAuthError;
429 and 5xx are retried, then SignalRateLimited or SignalUnavailable (:mod:`.http`).

Forecasts: ``price`` forecasts are the auction results themselves. The SDAC auction for delivery day D (the
Brussels-time day) is published at :data:`PRICE_PUBLISHED` Brussels time on D-1, which is taken as the run's
``issued_at``; ``issued_before`` picks the newest run issued before it (if that run's day is not in the reply
yet, the run before). A ``renewable_share`` forecast is the wind and solar day-ahead forecast (``A69``) over
the total generation forecast (``A71``), issued at :data:`GENERATION_FORECAST_PUBLISHED` Brussels time on D-1
(the regulation's deadline): a lower bound of the renewable share, as hydro, biomass and the other renewables
have no day-ahead forecast there. A forecast covers ``[issued_at, issued_at + horizon)`` up to the run's day.

The token never reaches a message, a repr or a log record (the ``httpx`` and ``httpcore`` loggers, which log
request URLs and response headers, get a filter masking it) and never another host (redirects are followed only
to the same origin).
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time

import httpx
import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.logs import get_logger
from carbonsync.core.time import utc_naive
from carbonsync.data.observations.entsoe import RENEWABLE_FUELS, renewable_share
from carbonsync.signals.base import (
    SignalAuthError,
    SignalError,
    SignalFormatError,
    SignalPlanError,
    StaleSignalError,
    redact,
    register_signal,
    signal_dataset,
)
from carbonsync.signals.http import Http, HttpCache, RetryPolicy
from carbonsync.signals.zones import ZoneLookupError, resolve

__all__ = [
    "BASE_URL",
    "ENDPOINT",
    "GENERATION_FORECAST_PUBLISHED",
    "MARKET_TZ",
    "PRICE_PUBLISHED",
    "PSR_FUELS",
    "RENEWABLE_PSR",
    "Entsoe",
    "NoMatchingData",
    "issued_at",
]

log = get_logger(__name__)

BASE_URL = "https://web-api.tp.entsoe.eu"
ENDPOINT = "/api"
MAX_SPAN = pd.DateOffset(years=1)
MARKET_TZ = "Europe/Brussels"
PRICE_PUBLISHED = time(12, 45)
GENERATION_FORECAST_PUBLISHED = time(18, 0)
HOUR = pd.Timedelta(hours=1)

# ENTSO-E production types (psrType) under the fuel names of carbonsync.data.observations.entsoe
PSR_FUELS: dict[str, str] = {
    "B01": "Biomass", "B02": "Fossil Brown coal/Lignite", "B03": "Fossil Coal-derived gas", "B04": "Fossil Gas",
    "B05": "Fossil Hard coal", "B06": "Fossil Oil", "B07": "Fossil Oil shale", "B08": "Fossil Peat",
    "B09": "Geothermal", "B10": "Hydro Pumped Storage", "B11": "Hydro Run-of-river and poundage",
    "B12": "Hydro Water Reservoir", "B13": "Marine", "B14": "Nuclear", "B15": "Other renewable", "B16": "Solar",
    "B17": "Waste", "B18": "Wind Offshore", "B19": "Wind Onshore", "B20": "Other", "B25": "Energy storage",
}
RENEWABLE_PSR = tuple(code for code, fuel in PSR_FUELS.items() if fuel in RENEWABLE_FUELS)
WIND_SOLAR = ("B16", "B18", "B19")
_EIC = re.compile(r"^[0-9]{2}[A-Z0-9-]{13}[A-Z0-9-]$")
_RESOLUTION = re.compile(r"^PT(\d+)([MH])$")


class NoMatchingData(SignalPlanError):
    """The platform holds no data for the area and period asked ("No matching data found")."""


class _MaskSecrets(logging.Filter):
    """Masks the tokens of every :class:`Entsoe` in the records of the HTTP libraries' loggers."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            masked = redact(message, self.secrets)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_MASK = _MaskSecrets()
# httpx logs request URLs (INFO); httpcore logs response headers such as a Location (DEBUG)
for _name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.socks"):
    logging.getLogger(_name).addFilter(_MASK)


@dataclass
class _Series:
    """One TimeSeries' points: ``key`` (a psrType or ``""``), ``units``, regular ``resolution``."""

    key: str
    units: str
    resolution: pd.Timedelta
    times: pd.DatetimeIndex
    values: np.ndarray


def issued_at(day: pd.Timestamp | str, published: time = PRICE_PUBLISHED) -> pd.Timestamp:
    """When the day-ahead run for delivery ``day`` (a Brussels-time date) is published: ``published`` Brussels
    time on the day before, as naive UTC."""
    before = (pd.Timestamp(day).normalize() - pd.Timedelta(days=1)).date()
    return utc_naive(pd.Timestamp(datetime.combine(before, published)).tz_localize(MARKET_TZ))


def _delivery_day(day: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The delivery day's bounds ``[start, end)`` as naive UTC (23, 24 or 25 hours)."""
    local = pd.Timestamp(day.date()).tz_localize(MARKET_TZ)
    following = pd.Timestamp((day + pd.Timedelta(days=1)).date()).tz_localize(MARKET_TZ)
    return utc_naive(local), utc_naive(following)


def _newest_run(cutoff: pd.Timestamp, published: time) -> pd.Timestamp:
    """The delivery day of the newest run issued strictly before ``cutoff`` (naive UTC)."""
    local = pd.Timestamp(cutoff).tz_localize("UTC").tz_convert(MARKET_TZ)
    day = pd.Timestamp(local.date())
    following = day + pd.Timedelta(days=1)
    return following if issued_at(following, published) < cutoff else day


def _qualifier(root: ET.Element) -> Callable[[str], str]:
    """Tag names in the namespace of ``root`` (the documents' namespaces carry a version)."""
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    return (lambda name: f"{{{namespace}}}{name}") if namespace else (lambda name: name)


def _hourly(series: list[_Series]) -> tuple[pd.Series, pd.Series]:
    """Hourly means of one key's series (the finest resolution wins an hour) and whether each hour was covered."""
    best: pd.DataFrame | None = None
    for resolution in sorted({s.resolution for s in series}):
        same = [s for s in series if s.resolution == resolution]
        points = pd.Series(np.concatenate([s.values for s in same]),
                           index=pd.DatetimeIndex(np.concatenate([s.times.values for s in same])))
        points = points[~points.index.duplicated(keep="first")].sort_index()
        hours = points.index.floor("h")
        grouped = points.groupby(hours)
        frame = pd.DataFrame({"value": grouped.mean(), "full": grouped.count() * resolution >= HOUR})
        best = frame if best is None else pd.concat([best, frame[~frame.index.isin(best.index)]]).sort_index()
    assert best is not None
    return best["value"], best["full"].astype(bool)


class Entsoe:
    """The ENTSO-E Transparency Platform as a :class:`~carbonsync.signals.base.GridSignal` of day-ahead
    ``price`` and ``renewable_share``."""

    name = "entsoe"

    def __init__(self, api_key: str | None = None, *, base_url: str = BASE_URL, max_age: pd.Timedelta | str = "3h",
                 policy: RetryPolicy | None = None,
                 cache: HttpCache | None | str = "settings") -> None:
        self._key = api_key or os.environ.get("ENTSOE_API_KEY", "")
        self.max_age = pd.Timedelta(max_age)
        self.http = Http(self.name, base_url, secrets=[self._key], policy=policy, cache=cache)
        self.http.client.event_hooks["response"].append(self._acknowledged)
        if self._key:
            _MASK.secrets.add(self._key)

    def __repr__(self) -> str:
        return f"Entsoe(key={'set' if self._key else 'unset'}, base_url={str(self.http.client.base_url)!r})"

    def close(self) -> None:
        self.http.close()

    def kinds(self) -> tuple[str, ...]:
        return ("price", "renewable_share")

    # --- plumbing -----------------------------------------------------------------------------------------

    def _kind(self, kind: str | None, zone: str) -> str:
        kind = kind or "price"
        if kind not in self.kinds():
            raise SignalPlanError(f"ENTSO-E serves {', '.join(self.kinds())} here, not '{kind}'", provider=self.name,
                                  zone=zone)
        return kind

    @staticmethod
    def _area(zone: str) -> str:
        """The EIC code of ``zone``: a lexicon name or code, or a raw EIC area code."""
        try:
            return resolve(zone, "entsoe_area")
        except ZoneLookupError:
            code = zone.strip().upper()
            if _EIC.match(code):
                return code
            raise

    def _error(self, cls: type[SignalError], message: str, zone: str) -> SignalError:
        return cls(message, provider=self.name, endpoint=ENDPOINT, zone=zone, secrets=[self._key])

    def _acknowledgement(self, root: ET.Element, zone: str, status: int) -> SignalError:
        q = _qualifier(root)
        reasons = [((r.findtext(q("code")) or "").strip(), (r.findtext(q("text")) or "").strip())
                   for r in root.iter(q("Reason"))]
        said = "; ".join(f"{code} {text}".strip() for code, text in reasons) or "no reason given"
        if any("no matching data" in text.lower() for _, text in reasons):
            return self._error(NoMatchingData, f"no matching data for this area and period (HTTP {status}): {said}",
                               zone)
        return self._error(SignalFormatError, f"the request was refused (HTTP {status}): {said}", zone)

    def _acknowledged(self, response: httpx.Response) -> None:
        """httpx response hook: a 4xx acknowledgement document becomes its named error (Http would see only
        the status)."""
        if not 400 <= response.status_code < 500 or response.status_code in (401, 429):
            return
        body = response.read()
        if b"Acknowledgement_MarketDocument" not in body[:1000]:
            return
        zone = response.request.url.params.get("in_Domain", "") or response.request.url.params.get(
            "outBiddingZone_Domain", "")
        try:
            root = self._xml(body, zone)
        except SignalFormatError:
            return
        raise self._acknowledgement(root, zone, response.status_code)

    def _xml(self, body: bytes, zone: str) -> ET.Element:
        head = body[:4096].lower()
        if b"<!doctype" in head or b"<!entity" in head:
            kind = "an HTML page" if b"<html" in head else "a document with a type declaration"
            raise self._error(SignalFormatError, f"the reply is {kind}, not an ENTSO-E XML document: "
                              f"{body[:120].decode('utf-8', 'replace')!r}", zone)
        try:
            return ET.fromstring(body)
        except ET.ParseError as err:
            raise self._error(SignalFormatError, f"the reply is not well-formed XML (truncated?): {err}; "
                              f"{body[:120].decode('utf-8', 'replace')!r}", zone) from None

    def _get(self, params: dict[str, str], area: str, start: pd.Timestamp, end: pd.Timestamp) -> bytes:
        if not self._key:
            raise self._error(SignalAuthError, "no security token: pass api_key or set ENTSOE_API_KEY", area)
        query = {**params, "periodStart": start.strftime("%Y%m%d%H%M"), "periodEnd": end.strftime("%Y%m%d%H%M")}
        log.debug("entsoe GET %s %s", ENDPOINT, " ".join(f"{k}={v}" for k, v in query.items()))
        try:
            response = self.http.get(ENDPOINT, params={"securityToken": self._key, **query}, zone=area)
        except httpx.HTTPError as err:  # e.g. an undecodable body: the request (with its URL) stays behind
            raise self._error(SignalFormatError, f"the reply could not be read ({type(err).__name__})", area) from None
        if "html" in response.headers.get("content-type", "").lower():
            raise self._error(SignalFormatError, f"the reply is HTML, not an ENTSO-E XML document: "
                              f"{response.text[:120]!r}", area)
        return response.content

    def _document(self, body: bytes, root_name: str, doc_type: str, area: str,
                  domains: tuple[str, ...]) -> list[_Series]:
        """The series of one reply, checked: the document and its type, the area of every series."""
        root = self._xml(body, area)
        q, local = _qualifier(root), root.tag.rpartition("}")[2]
        if local == "Acknowledgement_MarketDocument":
            raise self._acknowledgement(root, area, 200)
        if local != root_name:
            raise self._error(SignalFormatError, f"the reply is a '{local}' document, not a {root_name}", area)
        if (found := (root.findtext(q("type")) or "").strip()) and found != doc_type:
            raise self._error(SignalFormatError, f"the reply is document type {found}, not {doc_type}", area)
        series = []
        for ts in root.iter(q("TimeSeries")):
            at = {d: (ts.findtext(q(d)) or "").strip() for d in domains}
            if not any(at.values()):
                raise self._error(SignalFormatError, f"a TimeSeries names no area ({', '.join(domains)})", area)
            if other := sorted({code for code in at.values() if code and code != area}):
                raise self._error(SignalFormatError, f"the reply is for area {', '.join(other)}, not {area}", area)
            if not at[domains[0]]:  # e.g. outBiddingZone_Domain only: consumption, not generation
                continue
            if doc_type == "A44":
                currency = (ts.findtext(q("currency_Unit.name")) or "").strip()
                per = (ts.findtext(q("price_Measure_Unit.name")) or "").strip().upper()
                if per != "MWH" or not currency:
                    raise self._error(SignalFormatError, f"prices in '{currency}' per '{per}', not a currency per MWH",
                                      area)
                units, field = f"{currency}/MWh", "price.amount"
            else:
                unit = (ts.findtext(q("quantity_Measure_Unit.name")) or "").strip().upper()
                if unit not in ("MAW", "MW"):
                    raise self._error(SignalFormatError, f"quantities in '{unit}', not MAW (megawatt)", area)
                units, field = "MW", "quantity"
            key = (ts.findtext(f"{q('MktPSRType')}/{q('psrType')}") or "").strip()
            curve = (ts.findtext(q("curveType")) or "A01").strip()
            for period in ts.iter(q("Period")):
                series.append(self._period(period, q, key, units, field, curve, area))
        return series

    def _period(self, period: ET.Element, q: Callable[[str], str], key: str, units: str, field: str, curve: str,
                area: str) -> _Series:
        try:
            start = utc_naive(period.findtext(f"{q('timeInterval')}/{q('start')}"))
            end = utc_naive(period.findtext(f"{q('timeInterval')}/{q('end')}"))
            match = _RESOLUTION.match((period.findtext(q("resolution")) or "").strip())
            if match is None:
                raise ValueError(f"resolution '{period.findtext(q('resolution'))}' is not PT<n>M or PT<n>H")
            resolution = pd.Timedelta(int(match[1]), unit="min" if match[2] == "M" else "h")
            if resolution > HOUR or HOUR % resolution:
                raise ValueError(f"resolution {resolution} does not divide an hour")
            slots = int((end - start) / resolution)
            if slots <= 0 or start + slots * resolution != end:
                raise ValueError(f"period {start} to {end} is not a whole number of {resolution}")
            values = np.full(slots, np.nan)
            given = np.zeros(slots, bool)
            for point in period.iter(q("Point")):
                position = int((point.findtext(q("position")) or "").strip())
                if not 1 <= position <= slots:
                    raise ValueError(f"position {position} outside 1..{slots}")
                values[position - 1], given[position - 1] = float((point.findtext(q(field)) or "").strip()), True
        except (TypeError, ValueError) as err:
            raise self._error(SignalFormatError, f"a Period is malformed ({type(err).__name__}: {err})", area) from None
        if curve == "A03" and given.any():  # an omitted point repeats the one before it
            values = pd.Series(values).ffill().to_numpy()
        keep = ~np.isnan(values)
        times = pd.date_range(start, periods=slots, freq=resolution)[keep]
        return _Series(key, units, resolution, times, values[keep])

    def _fetch(self, params: dict[str, str], root_name: str, area: str, start: pd.Timestamp, end: pd.Timestamp,
               domains: tuple[str, ...]) -> list[_Series]:
        """The series over ``[start, end)`` in requests of at most a year, hours whole."""
        lo_all, hi_all = start.floor("h"), end.ceil("h")
        series, missing = [], None
        lo = lo_all
        while lo < hi_all:
            hi = min(lo + MAX_SPAN, hi_all)
            try:
                series += self._document(self._get(params, area, lo, hi), root_name, params["documentType"], area,
                                         domains)
            except NoMatchingData as err:
                log.info("entsoe: no %s data for %s from %s to %s", params["documentType"], area, lo, hi)
                missing = err
            lo = hi
        if not series:
            raise missing or self._error(NoMatchingData, f"no {params['documentType']} data from {start} to {end}",
                                         area)
        return series

    def _prices(self, area: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Series, pd.Series, str]:
        params = {"documentType": "A44", "in_Domain": area, "out_Domain": area}
        series = self._fetch(params, "Publication_MarketDocument", area, start, end, ("in_Domain.mRID", "out_Domain.mRID"))
        units = sorted({s.units for s in series})
        if len(units) > 1:
            raise self._error(SignalFormatError, f"prices in several currencies ({', '.join(units)})", area)
        value, full = _hourly(series)
        return value, ~full, units[0]

    def _generation(self, params: dict[str, str], area: str, start: pd.Timestamp,
                    end: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
        """Hourly MW per production type (columns: the fuel names or, for a total, ``""``) and incomplete hours."""
        series = self._fetch(params, "GL_MarketDocument", area, start, end,
                             ("inBiddingZone_Domain.mRID", "outBiddingZone_Domain.mRID"))
        columns, partial = {}, {}
        for key in sorted({s.key for s in series}):
            value, full = _hourly([s for s in series if s.key == key])
            columns[PSR_FUELS.get(key, key)] = value
            partial[key] = (~full).astype(float)
        frame = pd.DataFrame(columns).sort_index()
        missing = pd.DataFrame(partial).reindex(frame.index).fillna(1.0) > 0
        return frame, frame.isna().any(axis=1) | missing.any(axis=1)

    def _share(self, area: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Series, pd.Series]:
        frame, incomplete = self._generation({"documentType": "A75", "processType": "A16", "in_Domain": area},
                                             area, start, end)
        unknown = sorted(set(frame.columns) - set(PSR_FUELS.values()))
        if unknown:
            log.debug("entsoe: production types %s counted as non-renewable", ", ".join(unknown))
        share = renewable_share(frame)
        return share, incomplete | share.isna()

    def _dataset(self, value: pd.Series, estimated: pd.Series, area: str, kind: str, units: str,
                 start: pd.Timestamp, end: pd.Timestamp, issued: pd.Timestamp | None = None) -> xr.Dataset:
        keep = (value.index >= start) & (value.index < end) & value.notna().to_numpy()
        value, estimated = value[keep], estimated.reindex(value.index[keep], fill_value=True)
        shape = (1, -1) if issued is not None else (-1,)
        return signal_dataset(value.to_numpy().reshape(shape), value.index, area, kind, units, provider=self.name,
                              endpoint=ENDPOINT, estimated=estimated.to_numpy(bool).reshape(shape),
                              issued_at=None if issued is None else [issued])

    # --- the protocol -------------------------------------------------------------------------------------

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        """Hourly day-ahead prices or renewable shares in ``[start, end)``."""
        area, start, end = self._area(zone), utc_naive(start), utc_naive(end)
        kind = self._kind(kind, area)
        if kind == "price":
            value, estimated, units = self._prices(area, start, end)
        else:
            (value, estimated), units = self._share(area, start, end), "1"
        return self._dataset(value, estimated, area, kind, units, start, end)

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        """The price of the current hour, or the newest complete hour of renewable share (else the newest)."""
        area = self._area(zone)
        kind = self._kind(kind, area)
        now = pd.Timestamp.now("UTC").tz_localize(None)
        try:
            ds = self.history(area, now - pd.Timedelta(days=1), now.floor("h") + HOUR, kind)
        except NoMatchingData as err:
            raise self._error(StaleSignalError, f"nothing published for the last day ({err})", area) from None
        ds = ds.isel(time=np.flatnonzero(pd.DatetimeIndex(ds.time.values) <= now))
        if ds.sizes["time"] == 0:
            raise self._error(StaleSignalError, "nothing published for the last day", area)
        complete = np.flatnonzero(~ds["estimated"].values[:, 0])
        last = ds.isel(time=[int(complete[-1]) if complete.size else ds.sizes["time"] - 1])
        age = now - pd.Timestamp(last.time.values[0])
        if age > self.max_age:
            raise self._error(StaleSignalError, f"the newest value is {age} old, past the limit of {self.max_age}",
                              area)
        return last

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = "price") -> xr.Dataset:
        """The newest day-ahead run issued before ``issued_before`` (default now), ``[issued_at, issued_at + horizon)``."""
        area = self._area(zone)
        kind = self._kind(kind, area)
        cutoff = utc_naive(issued_before) if issued_before is not None else pd.Timestamp.now("UTC").tz_localize(None)
        published = PRICE_PUBLISHED if kind == "price" else GENERATION_FORECAST_PUBLISHED
        day = _newest_run(cutoff, published)
        for _ in range(2):  # the run's day not out yet (a late auction): the run before
            issued = issued_at(day, published)
            day_start, day_end = _delivery_day(day)
            try:
                value, estimated, units = self._forecast_values(kind, area, issued.floor("h"), day_end)
            except NoMatchingData:
                value = pd.Series(dtype=float)
            if (value.index >= day_start).any():
                return self._dataset(value, estimated, area, kind, units, issued,
                                     min(issued + pd.Timedelta(horizon), day_end), issued=issued)
            log.info("entsoe: the %s run for %s is not in the reply yet; taking the run before", kind, day.date())
            day = day - pd.Timedelta(days=1)
        raise self._error(NoMatchingData, f"no day-ahead {kind} run issued before {cutoff} was found", area)

    def _forecast_values(self, kind: str, area: str, start: pd.Timestamp,
                         end: pd.Timestamp) -> tuple[pd.Series, pd.Series, str]:
        if kind == "price":
            return self._prices(area, start, end)
        wind_solar, partial_ws = self._generation({"documentType": "A69", "processType": "A01", "in_Domain": area},
                                                  area, start, end)
        total, partial_total = self._generation({"documentType": "A71", "processType": "A01", "in_Domain": area},
                                                area, start, end)
        renewable = wind_solar[[PSR_FUELS[c] for c in WIND_SOLAR if PSR_FUELS[c] in wind_solar]].clip(lower=0.0)
        renewable_total = renewable.sum(axis=1, min_count=1)
        all_total = total.clip(lower=0.0).sum(axis=1, min_count=1)
        index = renewable_total.index.union(all_total.index)
        renewable_total, all_total = renewable_total.reindex(index), all_total.reindex(index)
        share = (renewable_total / all_total.where(all_total > 0)).clip(0.0, 1.0)
        estimated = (partial_ws.reindex(index, fill_value=True) | partial_total.reindex(index, fill_value=True)
                     | share.isna())
        return share, estimated, "1"


register_signal("entsoe", Entsoe)
