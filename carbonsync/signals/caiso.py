"""CAISO OASIS: locational marginal prices behind the GridSignal protocol, and CAISO price and curtailment files.

**Live** (:class:`CaisoOasis`, registered as ``caiso``, kind ``price`` in USD/MWh): ``GET
/oasisapi/SingleZip`` with ``resultformat=6`` answers with a zip of CSV files:

- day-ahead (``market="DAM"``): ``queryname=PRC_LMP``, ``version=12``, hourly, the price in column ``MW``
  (OASIS's name for it, though it is $/MWh);
- real-time (``market="RTM"``): ``queryname=PRC_INTVL_LMP``, ``version=3``, 5-minute, the price in ``VALUE``.

Only rows whose ``XML_DATA_ITEM`` is ``LMP_PRC`` (or, without that column, whose ``LMP_TYPE`` is ``LMP``)
are kept; the energy, congestion, loss and GHG components are dropped. Times are ``INTERVALSTARTTIME_GMT``
(naive UTC). The node comes from the zone lexicon (``zones.resolve(zone, "caiso_node")``), or a raw OASIS
node id (``TH_SP15_GEN-APND``) is used as it is. Ranges longer than ``max_days`` (31) are split into
requests of at most that length, and consecutive requests are spaced ``min_interval_s`` apart (OASIS's
acceptable-use rule asks for 5 s).

An OASIS error is a zip holding an XML ``OASISReport`` with ``ERR_CODE`` and ``ERR_DESC``, read with
ElementTree (namespace-agnostic; it resolves no external entities, and members are size-capped):

- ``1000`` (no data for the selection) → :class:`CaisoNoData`, a
  :class:`~carbonsync.signals.base.SignalUnavailable`; :meth:`CaisoOasis.history` over several requests
  leaves a request without data as a gap (logged) and raises only if no request had data;
- ``1015`` (a request still being processed: submit later) or a description of too many requests →
  :class:`~carbonsync.signals.base.SignalRateLimited` (not retried here);
- ``1001`` (invalid parameters) or a description naming an invalid request (node, market, query) →
  :class:`~carbonsync.signals.base.SignalPlanError`;
- any other code → :class:`~carbonsync.signals.base.SignalFormatError`.

Each carries ``oasis_code`` and ``oasis_description``. An HTML page, a body that is not a zip, a truncated
zip, a CSV without the documented columns, another node or market than asked, an interval of the wrong
length, a null or non-numeric price and one interval with two different prices are SignalFormatErrors
naming provider, endpoint and node.

**Day-ahead publication rule.** The DAM run for trade date ``D`` (a Pacific operating day) is taken as
published at 13:00 Pacific prevailing time on ``D - 1`` (:func:`dam_published_at`; CAISO posts the results
at about that time, and on some days later). That time is the ``issued_at`` of :meth:`CaisoOasis.forecast`
and of the recorded forecasts of :func:`caiso_lmp_recording`; :func:`dam_trade_day` gives the newest trade
date whose run was published strictly before a time.

**Files**: :func:`read_caiso_lmp_zip` (monthly OASIS CSVs or zips inside one zip, as in
``shared/data/caiso/caiso_np15_lmp_2024.zip``), :func:`caiso_lmp_recording` (that zip replayed causally) and
:func:`read_caiso_curtailment_csv` (``datetime,LMP_<hub>,Total_Curtailment_<hub>_MW``; the ``datetime``
column is UTC: its prices equal the OASIS DAM prices at ``INTERVALSTARTTIME_GMT`` with no shift, and its
curtailment falls in the daylight hours of California, peaking in the early-afternoon hours Pacific).
"""

from __future__ import annotations

import io
import re
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.logs import get_logger
from carbonsync.core.time import utc_naive
from carbonsync.signals.base import (
    KINDS,
    SignalError,
    SignalFormatError,
    SignalPlanError,
    SignalRangeError,
    SignalRateLimited,
    SignalUnavailable,
    StaleSignalError,
    register_signal,
    signal_dataset,
)
from carbonsync.signals.http import Http, HttpCache, RetryPolicy
from carbonsync.signals.replay import RecordedSignal, ReplayClock
from carbonsync.signals.zones import ZoneLookupError, lookup, resolve

__all__ = [
    "CaisoNoData",
    "CaisoOasis",
    "MARKETS",
    "OasisMarket",
    "caiso_lmp_recording",
    "dam_published_at",
    "dam_trade_day",
    "read_caiso_curtailment_csv",
    "read_caiso_lmp_zip",
]

log = get_logger(__name__)

BASE_URL = "https://oasis.caiso.com"
ENDPOINT = "/oasisapi/SingleZip"
FILE_PROVIDER = "caiso-file"
PACIFIC = "America/Los_Angeles"
DAM_PUBLISHED = pd.Timedelta(hours=13)  # local time on the day before the trade date
HOUR = pd.Timedelta(hours=1)
MAX_MEMBER_BYTES = 512 * 2**20  # a larger member is refused, not inflated
UNITS = "USD/MWh"

START, END = "INTERVALSTARTTIME_GMT", "INTERVALENDTIME_GMT"
NODE_COLUMNS = ("NODE", "NODE_ID")
PRICE_COLUMNS = ("MW", "VALUE", "PRC")  # DAM PRC_LMP, RTM PRC_INTVL_LMP, RTPD PRC_RTPD_LMP
RATE_CODES = frozenset({"1015"})
INVALID_CODES = frozenset({"1001"})
HUBS = {"NP15": "TH_NP15_GEN-APND", "SP15": "TH_SP15_GEN-APND", "ZP26": "TH_ZP26_GEN-APND"}
_NODE_ID = re.compile(r"^[A-Z0-9][A-Z0-9_.\-]*$")
_ERR = re.compile(rb"<(?:[\w.-]+:)?ERR_(CODE|DESC)>\s*(.*?)\s*</", re.S)


@dataclass(frozen=True)
class OasisMarket:
    """One OASIS price query: its ``queryname``, ``version`` and interval length."""

    name: str
    queryname: str
    version: int
    interval: pd.Timedelta


MARKETS: dict[str, OasisMarket] = {
    "DAM": OasisMarket("DAM", "PRC_LMP", 12, HOUR),
    "RTM": OasisMarket("RTM", "PRC_INTVL_LMP", 3, pd.Timedelta(minutes=5)),
}


class CaisoNoData(SignalUnavailable):
    """OASIS error 1000: no data for the selection (a period not (yet) published or outside the archive)."""

    oasis_code = "1000"
    oasis_description = "No data returned for the specified selection"


@dataclass(frozen=True)
class _Ctx:
    """Where an error happened: provider, endpoint (or file) and zone."""

    provider: str
    endpoint: str = ""
    zone: str = ""

    def error(self, cls: type[SignalError], message: str, **extra: Any) -> SignalError:
        return cls(message, provider=self.provider, endpoint=self.endpoint, zone=self.zone, **extra)


# --- the day-ahead publication rule ----------------------------------------------------------------------

def dam_published_at(trade_date: str | pd.Timestamp) -> pd.Timestamp:
    """When the DAM run for ``trade_date`` (a Pacific date) is taken as published: 13:00 Pacific the day
    before, as naive UTC."""
    day = pd.Timestamp(trade_date).normalize()
    local = (day - pd.Timedelta(days=1) + DAM_PUBLISHED).tz_localize(PACIFIC)
    return local.tz_convert("UTC").tz_localize(None)


def dam_trade_day(cutoff: str | pd.Timestamp) -> pd.Timestamp:
    """The newest trade date (a Pacific date, as a midnight timestamp) whose DAM run was published strictly
    before ``cutoff`` (naive UTC or aware)."""
    cutoff = utc_naive(cutoff)
    local_day = cutoff.tz_localize("UTC").tz_convert(PACIFIC).tz_localize(None).normalize()
    day = local_day + pd.Timedelta(days=1)
    return day if dam_published_at(day) < cutoff else local_day


def _pacific_day_utc(day: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The Pacific day ``day`` as ``[start, end)`` in naive UTC (23 or 25 hours on DST changes)."""
    lo, hi = (d.tz_localize(PACIFIC).tz_convert("UTC").tz_localize(None) for d in (day, day + pd.Timedelta(days=1)))
    return lo, hi


def _trade_days(starts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The Pacific operating day of each interval start (naive UTC)."""
    return starts.tz_localize("UTC").tz_convert(PACIFIC).tz_localize(None).normalize()


# --- zips, OASIS error reports and CSVs ------------------------------------------------------------------

def _zip_members(data: bytes, ctx: _Ctx, what: str, content_type: str = "") -> list[tuple[str, bytes]]:
    """The CSV and XML members of a zip as (name, bytes), nested zips opened, macOS resource forks skipped."""
    if not data.startswith(b"PK"):
        head = data[:512].lstrip().lower()
        kind = "an HTML page" if head.startswith(b"<!doctype html") or b"<html" in head else "not a zip archive"
        raise ctx.error(SignalFormatError, f"{what} is {kind} ({content_type or 'no content type'}, "
                        f"{len(data)} bytes): {data[:80]!r}")
    members: list[tuple[str, bytes]] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            for info in archive.infolist():
                name = info.filename
                if info.is_dir() or name.startswith("__MACOSX/") or Path(name).name.startswith("._"):
                    continue
                if info.file_size > MAX_MEMBER_BYTES:
                    raise ctx.error(SignalFormatError, f"{what}: member '{name}' would inflate to {info.file_size} "
                                    f"bytes, over the limit of {MAX_MEMBER_BYTES}")
                suffix = Path(name).suffix.lower()
                if suffix == ".zip":
                    members += [(f"{name}/{n}", b) for n, b in _zip_members(archive.read(info), ctx, f"{what}:{name}")]
                elif suffix in (".csv", ".xml"):
                    members.append((name, archive.read(info)))
                else:
                    log.debug("%s: member %s skipped (neither CSV nor XML)", what, name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError, OSError) as err:
        raise ctx.error(SignalFormatError, f"{what} is a truncated or damaged zip archive "
                        f"({type(err).__name__}: {err})") from None
    if not members:
        raise ctx.error(SignalFormatError, f"{what} holds no CSV or XML file; it holds {names}")
    return members


def _report_fields(data: bytes) -> tuple[str, str] | None:
    """(ERR_CODE, ERR_DESC) of an OASIS report, whatever its namespace prefix; None if it has no ERR_CODE."""
    found: dict[str, str] = {}
    try:
        for element in ElementTree.fromstring(data).iter():
            local = str(element.tag).rsplit("}", 1)[-1]
            if local in ("ERR_CODE", "ERR_DESC") and local not in found:
                found[local] = (element.text or "").strip()
    except ElementTree.ParseError:  # a fragment with an undeclared prefix: read the two fields as text
        for key, value in _ERR.findall(data):
            found.setdefault(f"ERR_{key.decode()}", value.decode("utf-8", "replace").strip())
    if "ERR_CODE" not in found:
        return None
    return found["ERR_CODE"], found.get("ERR_DESC", "")


def _report_error(name: str, data: bytes, ctx: _Ctx) -> SignalError:
    """The named error for an OASIS XML report (see the module docstring for the mapping)."""
    fields = _report_fields(data)
    if fields is None:
        return ctx.error(SignalFormatError, f"the XML member '{name}' is no OASIS error report (no ERR_CODE) "
                         f"and no CSV result: {data[:120]!r}")
    code, description = fields
    low = description.lower()
    message = f"OASIS error {code} in '{name}': {description or 'no description'}"
    cls: type[SignalError]
    if code == "1000" or "no data" in low:
        cls = CaisoNoData
    elif code in RATE_CODES or any(w in low for w in ("too many", "rate limit", "in processing", "after sometime",
                                                      "after some time")):
        cls = SignalRateLimited
    elif code in INVALID_CODES or "invalid" in low:
        cls = SignalPlanError
    else:
        cls = SignalFormatError
    error = ctx.error(cls, message)
    error.oasis_code, error.oasis_description = code, description  # type: ignore[attr-defined]
    return error


def _first(columns: pd.Index, names: tuple[str, ...]) -> str | None:
    return next((c for c in names if c in columns), None)


def _lmp_rows(members: list[tuple[str, bytes]], ctx: _Ctx, *, node: str | None, market: OasisMarket) -> pd.DataFrame:
    """The LMP rows of OASIS CSV members: columns start, node, value, trade_day, where (member and row).

    An XML member is an OASIS error report and raises its named error. ``node``: the node asked for (rows
    for another are an error); None takes every node."""
    for name, data in members:
        if name.lower().endswith(".xml"):
            raise _report_error(name, data, ctx)
    frames = []
    for name, data in members:
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
            raise ctx.error(SignalFormatError, f"'{name}' cannot be read as a UTF-8 CSV "
                            f"({type(err).__name__}: {err})") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        node_col, price_col = _first(frame.columns, NODE_COLUMNS), _first(frame.columns, PRICE_COLUMNS)
        item_col = _first(frame.columns, ("XML_DATA_ITEM", "LMP_TYPE"))
        missing = [label for label, ok in ((START, START in frame.columns), (END, END in frame.columns),
                                           ("NODE", node_col), ("XML_DATA_ITEM or LMP_TYPE", item_col),
                                           ("/".join(PRICE_COLUMNS), price_col)) if not ok]
        if missing:
            raise ctx.error(SignalFormatError, f"'{name}' lacks column(s) {', '.join(missing)}; it has "
                            f"{list(frame.columns)}")
        assert node_col and price_col and item_col
        nodes = frame[node_col].str.strip()
        if node is not None and (nodes != node).any():
            other = nodes[nodes != node].iloc[0]
            raise ctx.error(SignalFormatError, f"'{name}' holds prices for node '{other}', not '{node}'")
        if "MARKET_RUN_ID" in frame.columns and (frame["MARKET_RUN_ID"].str.strip() != market.name).any():
            other = frame["MARKET_RUN_ID"][frame["MARKET_RUN_ID"].str.strip() != market.name].iloc[0]
            raise ctx.error(SignalFormatError, f"'{name}' holds market run '{other}', not '{market.name}'")
        lmp = "LMP_PRC" if item_col == "XML_DATA_ITEM" else "LMP"
        keep = (frame[item_col].str.strip() == lmp).to_numpy()
        rows = np.flatnonzero(keep)
        frame = frame.iloc[rows]
        where = [f"'{name}' row {r + 2}" for r in rows]  # the header is line 1
        starts = pd.to_datetime(frame[START], utc=True, errors="coerce", format="ISO8601")
        ends = pd.to_datetime(frame[END], utc=True, errors="coerce", format="ISO8601")
        for label, parsed, column in (("start", starts, START), ("end", ends, END)):
            if parsed.isna().any():
                k = int(np.flatnonzero(parsed.isna().to_numpy())[0])
                raise ctx.error(SignalFormatError, f"{where[k]}: {column} '{frame[column].iloc[k]}' is not a time "
                                f"(interval {label})")
        length = (ends - starts).to_numpy()
        if (length != market.interval.to_timedelta64()).any():
            k = int(np.flatnonzero(length != market.interval.to_timedelta64())[0])
            raise ctx.error(SignalFormatError, f"{where[k]}: an interval of {pd.Timedelta(length[k])}, not the "
                            f"{market.name} market's {market.interval}")
        text = frame[price_col].str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            k = int(np.flatnonzero(np.isnan(values))[0])
            what = "null" if text.iloc[k] in ("", "NA", "NaN", "nan", "null", "NULL") else f"'{text.iloc[k]}', not a number"
            raise ctx.error(SignalFormatError, f"{where[k]}: the price ({price_col}) at {frame[START].iloc[k]} is {what}")
        start_index = pd.DatetimeIndex(starts).tz_convert("UTC").tz_localize(None)
        frames.append(pd.DataFrame({"start": start_index, "node": nodes.iloc[rows].to_numpy(), "value": values,
                                    "where": where}))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["start", "node", "value", "where"])
    table["start"] = pd.DatetimeIndex(table["start"]).as_unit("ns")
    return table


def _deduplicated(table: pd.DataFrame, ctx: _Ctx) -> pd.DataFrame:
    """``table`` sorted by (node, start), one row per interval: repeats with the same price are dropped, two
    different prices for one interval are a SignalFormatError."""
    table = table.sort_values(["node", "start"], kind="stable")
    repeated = table.duplicated(["node", "start"], keep=False)
    if repeated.any():
        clash = table[repeated].groupby(["node", "start"])["value"].nunique()
        if (clash > 1).any():
            node, start = clash[clash > 1].index[0]
            rows = table[(table["node"] == node) & (table["start"] == start)]
            raise ctx.error(SignalFormatError, f"the interval {pd.Timestamp(start).isoformat()} of node '{node}' has "
                            f"two prices: {', '.join(f'{v:g} ({w})' for v, w in zip(rows['value'], rows['where'], strict=True))}")
        table = table.drop_duplicates(["node", "start"])
    return table.reset_index(drop=True)


def _checked_range(values: np.ndarray, where: list[str], ctx: _Ctx, kind: str, units: str, column: str = "") -> None:
    lo, hi = KINDS[kind].valid_range
    bad = ~np.isfinite(values) | (values < lo) | (values > hi)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ctx.error(SignalRangeError, f"{where[k]}{f' column {column!r}' if column else ''}: {kind} "
                        f"{values[k]:.6g} {units} is outside [{lo:g}, {hi:g}]; {int(bad.sum())} such value(s)")


def _price_dataset(table: pd.DataFrame, node: str, ctx: _Ctx, issued_at: pd.Timestamp | None = None) -> xr.Dataset:
    """One node's deduplicated rows as a price dataset (a forecast ``(issued_at=1, time, zone)`` with
    ``issued_at``)."""
    values = table["value"].to_numpy(dtype=np.float64)
    _checked_range(values, list(table["where"]), ctx, "price", UNITS)
    shape = (1, -1) if issued_at is not None else (-1,)
    return signal_dataset(values.reshape(shape), pd.DatetimeIndex(table["start"]), node, "price", UNITS,
                          provider=ctx.provider, endpoint=ctx.endpoint,
                          issued_at=None if issued_at is None else [issued_at])


def _oasis_time(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).strftime("%Y%m%dT%H:%M-0000")


# --- the live provider -----------------------------------------------------------------------------------

class CaisoOasis:
    """CAISO OASIS locational marginal prices as a :class:`~carbonsync.signals.base.GridSignal` of ``price``.

    ``market``: ``"DAM"`` (hourly day-ahead) or ``"RTM"`` (5-minute real-time) for :meth:`history` and
    :meth:`latest`; :meth:`forecast` always reads the day-ahead market. ``min_interval_s``: the least time
    between two requests; ``max_days``: the longest period of one request; ``max_age``: the staleness limit
    of :meth:`latest`, measured from the start of the newest interval."""

    name = "caiso"

    def __init__(self, *, base_url: str = BASE_URL, market: str = "DAM", min_interval_s: float = 5.0,
                 max_days: int = 31, max_age: pd.Timedelta | str = "1h", policy: RetryPolicy | None = None,
                 cache: HttpCache | None | str = "settings") -> None:
        if market.upper() not in MARKETS:
            raise ValueError(f"market '{market}' is not one of {sorted(MARKETS)}")
        if max_days < 1 or min_interval_s < 0:
            raise ValueError("max_days must be at least 1 and min_interval_s not negative")
        self.market = MARKETS[market.upper()]
        self.min_interval_s, self.max_span, self.max_age = float(min_interval_s), pd.Timedelta(days=max_days), \
            pd.Timedelta(max_age)
        self.http = Http(self.name, base_url, policy=policy, cache=cache)
        self._last_request: float | None = None

    def __repr__(self) -> str:
        return f"CaisoOasis(market={self.market.name!r}, base_url={str(self.http.client.base_url)!r})"

    def kinds(self) -> tuple[str, ...]:
        return ("price",)

    # --- plumbing -----------------------------------------------------------------------------------------

    def _node(self, zone: str, kind: str | None) -> str:
        """The OASIS node of ``zone``: its lexicon code, or ``zone`` itself if it is a node id."""
        if kind not in (None, "price"):
            raise SignalPlanError(f"CAISO OASIS serves price here, not {kind}", provider=self.name, zone=zone)
        try:
            entry = lookup(zone)
        except ZoneLookupError as err:
            if _NODE_ID.match(zone.strip()):
                return zone.strip()
            raise SignalPlanError(f"'{zone}' is neither a zone of the lexicon nor an OASIS node id ({err})",
                                  provider=self.name, zone=zone) from None
        try:
            return resolve(entry.id, "caiso_node")
        except ZoneLookupError as err:
            raise SignalPlanError(str(err), provider=self.name, zone=zone) from None

    def _space(self) -> None:
        if self._last_request is not None and self.min_interval_s > 0:
            wait = self._last_request + self.min_interval_s - time.monotonic()
            if wait > 0:
                log.debug("caiso: waiting %.2f s between OASIS requests", wait)
                time.sleep(wait)

    def _fetch(self, node: str, market: OasisMarket, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
        """One request: the deduplicated LMP rows of ``node`` with start in ``[lo, hi)``."""
        params = {"queryname": market.queryname, "market_run_id": market.name, "startdatetime": _oasis_time(lo),
                  "enddatetime": _oasis_time(hi), "version": market.version, "node": node, "resultformat": 6}
        ctx = _Ctx(self.name, ENDPOINT, node)
        self._space()
        try:
            response = self.http.get(ENDPOINT, params=params, zone=node)
        finally:
            self._last_request = time.monotonic()
        log.debug("caiso %s %s %s..%s -> %d bytes", market.queryname, node, lo, hi, len(response.content))
        members = _zip_members(response.content, ctx, "the reply", response.headers.get("content-type", ""))
        table = _deduplicated(_lmp_rows(members, ctx, node=node, market=market), ctx)
        return table[(table["start"] >= lo) & (table["start"] < hi)]

    # --- the protocol -------------------------------------------------------------------------------------

    def history(self, zone: str, start: pd.Timestamp, end: pd.Timestamp, kind: str | None = None) -> xr.Dataset:
        """Prices ``(time, zone)`` of the provider's market in ``[start, end)``, in requests of at most
        ``max_days``; a request without data (OASIS 1000) is a gap, unless no request had data."""
        node = self._node(zone, kind)
        start, end = utc_naive(start), utc_naive(end)
        ctx = _Ctx(self.name, ENDPOINT, node)
        if end <= start:
            raise ctx.error(SignalFormatError, f"empty period {start} to {end}")
        parts, empty = [], []
        for lo in pd.date_range(start, end, freq=self.max_span, inclusive="left"):
            hi = min(lo + self.max_span, end)
            try:
                parts.append(self._fetch(node, self.market, lo, hi))
            except CaisoNoData as err:
                log.warning("caiso: no %s data for %s from %s to %s; left as a gap (%s)", self.market.name, node, lo,
                            hi, err)
                empty.append(err)
        table = _deduplicated(pd.concat(parts, ignore_index=True), ctx) if parts else pd.DataFrame()
        if table.empty:
            if len(empty) == 1 and not parts:
                raise empty[0]
            raise ctx.error(CaisoNoData, f"no {self.market.name} price from {start} to {end}")
        return _price_dataset(table, node, ctx)

    def latest(self, zone: str, kind: str | None = None) -> xr.Dataset:
        """The newest interval of the provider's market starting at or before now ``(time=1, zone)``;
        StaleSignalError if it started more than ``max_age`` ago."""
        node = self._node(zone, kind)
        step = self.market.interval
        now = pd.Timestamp.now("UTC").tz_localize(None)
        lo, hi = (now - self.max_age).floor(step) - step, now.floor(step) + step
        try:
            table = self._fetch(node, self.market, lo, hi)
        except CaisoNoData as err:
            raise StaleSignalError(f"no {self.market.name} price from {lo} to {hi} ({err})", provider=self.name,
                                   endpoint=ENDPOINT, zone=node) from err
        table = table[table["start"] <= now]
        if table.empty:
            raise StaleSignalError(f"no {self.market.name} interval started between {lo} and now", provider=self.name,
                                   endpoint=ENDPOINT, zone=node)
        last = table.iloc[[-1]]
        age = now - pd.Timestamp(last["start"].iloc[0])
        if age > self.max_age:
            raise StaleSignalError(f"the newest {self.market.name} interval started {age} ago, past the limit of "
                                   f"{self.max_age}", provider=self.name, endpoint=ENDPOINT, zone=node)
        return _price_dataset(last, node, _Ctx(self.name, ENDPOINT, node))

    def forecast(self, zone: str, horizon: pd.Timedelta, issued_before: pd.Timestamp | None = None,
                 kind: str | None = None) -> xr.Dataset:
        """The newest day-ahead run published before ``issued_before`` (default now; the cutoff), by the
        publication rule, with an hour before ``cutoff + horizon``: ``(issued_at=1, time, zone)``, the trade
        day's hours before ``cutoff + horizon``, as :class:`~carbonsync.signals.replay.RecordedSignal` cuts a
        recorded run.

        A run opens at the Pacific midnight after its publication and lasts a Pacific day. If the window ends
        before the newest run opens, or OASIS has no data for it (published late, or outside the archive),
        the run before it is used; 35 hours (36 on a DST day) from any cutoff reach the end of the newest run."""
        node = self._node(zone, kind)
        cutoff = utc_naive(issued_before) if issued_before is not None else pd.Timestamp.now("UTC").tz_localize(None)
        until = cutoff + pd.Timedelta(horizon)
        dam, ctx = MARKETS["DAM"], _Ctx(self.name, ENDPOINT, node)
        newest = dam_trade_day(cutoff)
        table = pd.DataFrame()
        for day in (newest, newest - pd.Timedelta(days=1)):
            lo, hi = _pacific_day_utc(day)
            if lo >= until:
                log.debug("caiso: the DAM run for %s opens after %s; using the run before it", day.date(), until)
                continue
            try:
                table = self._fetch(node, dam, lo, hi)
            except CaisoNoData:
                if day != newest:
                    raise
                log.info("caiso: no DAM run for %s yet; using the run before it", day.date())
                continue
            table = table[table["start"] < until]
            if not table.empty:
                break
        if table.empty:
            raise ctx.error(CaisoNoData, f"no DAM price before {until} in the runs for {newest.date()} and the day before")
        ds = _price_dataset(table, node, ctx, issued_at=dam_published_at(day))
        return ds.assign_attrs(market="DAM", trade_date=str(day.date()), method="day-ahead market")


register_signal("caiso", CaisoOasis)


# --- files -----------------------------------------------------------------------------------------------

def _lmp_table(path: str | Path, market: str) -> tuple[pd.DataFrame, _Ctx]:
    ctx = _Ctx(FILE_PROVIDER, str(path))
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ctx.error(SignalFormatError, f"'{path}' does not exist") from None
    except OSError as err:
        raise ctx.error(SignalFormatError, f"'{path}' cannot be read: {err}") from None
    members = _zip_members(data, ctx, f"'{path}'")
    table = _deduplicated(_lmp_rows(members, ctx, node=None, market=MARKETS[market.upper()]), ctx)
    if table.empty:
        raise ctx.error(SignalFormatError, f"'{path}' holds no LMP_PRC rows")
    return table, ctx


def read_caiso_lmp_zip(path: str | Path, market: str = "DAM") -> xr.Dataset:
    """OASIS LMP files in one zip (CSV members or nested OASIS zips) as prices ``(time, zone)`` in USD/MWh,
    one zone per node (its OASIS id).

    Months or days the zip lacks (in the shared 2024 file, October) stay gaps: nothing is filled, so the
    times jump across them."""
    table, ctx = _lmp_table(path, market)
    parts = [_price_dataset(rows, str(node), _Ctx(ctx.provider, ctx.endpoint, str(node)))
             for node, rows in table.groupby("node", sort=True)]
    if len(parts) == 1:
        return parts[0]
    return xr.concat(parts, dim="zone", join="outer", combine_attrs="override",
                     fill_value={"value": np.nan, "estimated": False})


def caiso_lmp_recording(path: str | Path, clock: ReplayClock, node: str | None = None, **options: Any) -> RecordedSignal:
    """A DAM LMP zip replayed causally on ``clock`` (:class:`~carbonsync.signals.replay.RecordedSignal`;
    ``options`` go to it).

    The actuals are the hourly DAM prices, each served once its hour is over. The forecasts are the same
    prices as the DAM runs that carried them: one run per trade date ``D``, issued at
    :func:`dam_published_at` (13:00 Pacific on ``D - 1``), so a replay at ``t`` sees the day-ahead prices of
    only the days whose run was published before ``t``. A month the zip lacks (October in the shared file) is
    a gap: no actuals and no run, not filled. ``node``: which node, if the zip holds several."""
    table, ctx = _lmp_table(path, "DAM")
    nodes = sorted(table["node"].unique())
    if node is None and len(nodes) > 1:
        raise ctx.error(SignalFormatError, f"'{path}' holds nodes {nodes}; pass node=")
    node = node or nodes[0]
    if node not in nodes:
        raise ctx.error(SignalFormatError, f"'{path}' has no node '{node}'; it has {nodes}")
    rows = table[table["node"] == node]
    zctx = _Ctx(ctx.provider, ctx.endpoint, node)
    actuals = _price_dataset(rows, node, zctx)
    starts = pd.DatetimeIndex(rows["start"])
    runs = pd.DataFrame({"issued": pd.DatetimeIndex([dam_published_at(d) for d in _trade_days(starts)]),
                         "valid": starts, "value": rows["value"].to_numpy()}).sort_values(["issued", "valid"])
    runs["lead"] = runs.groupby("issued").cumcount()
    value = runs.pivot(index="issued", columns="lead", values="value")
    valid = runs.pivot(index="issued", columns="lead", values="valid")
    forecasts = xr.Dataset(
        {"value": (("issued_at", "lead", "zone"), value.to_numpy(dtype=np.float64)[..., None])},
        coords={"issued_at": pd.DatetimeIndex(value.index).as_unit("ns").values, "lead": value.columns.values,
                "zone": [node], "time": (("issued_at", "lead"), valid.to_numpy(dtype="datetime64[ns]"))},
        attrs={"kind": "price", "units": actuals.attrs["units"], "provider": FILE_PROVIDER, "endpoint": str(path),
               "index": "no", "layout": "forecast archive", "issued_rule": "DAM run published 13:00 Pacific on D-1"},
    )
    options.setdefault("interval", HOUR)
    return RecordedSignal(actuals, clock, forecasts, **options)


def read_caiso_curtailment_csv(path: str | Path, timezone: str = "UTC") -> dict[str, xr.Dataset]:
    """``datetime,LMP_<hub>,Total_Curtailment_<hub>_MW`` rows as ``{"price": (USD/MWh), "curtailment": (MW)}``
    datasets ``(time, zone)``, the zone the hub's OASIS node (``NP15`` → ``TH_NP15_GEN-APND``).

    ``datetime`` is read as UTC (the shared files are UTC: see the module docstring); pass ``timezone`` for a
    file in local time. Unreadable cells are a SignalFormatError and negative curtailment a SignalRangeError,
    each naming file, column and row."""
    where = str(path)
    ctx = _Ctx(FILE_PROVIDER, where)
    try:
        frame = pd.read_csv(Path(path), dtype=str, keep_default_na=False, encoding="utf-8")
    except FileNotFoundError:
        raise ctx.error(SignalFormatError, f"'{where}' does not exist") from None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as err:
        raise ctx.error(SignalFormatError, f"'{where}' cannot be read as a UTF-8 CSV ({type(err).__name__}: {err})") \
            from None
    frame.columns = [str(c).strip() for c in frame.columns]
    price = next((c for c in frame.columns if re.fullmatch(r"LMP_(\w+)", c)), None)
    curtailment = next((c for c in frame.columns if re.fullmatch(r"Total_Curtailment_(\w+)_MW", c)), None)
    if "datetime" not in frame.columns or price is None or curtailment is None or frame.empty:
        raise ctx.error(SignalFormatError, f"'{where}' needs columns datetime, LMP_<hub> and Total_Curtailment_<hub>_MW "
                        f"and data rows; it has {list(frame.columns)} and {len(frame)} row(s)")
    parsed = pd.to_datetime(frame["datetime"].str.strip(), errors="coerce", format="ISO8601")
    if parsed.isna().any():
        k = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise ctx.error(SignalFormatError, f"'{where}' column 'datetime' row {k + 2}: '{frame['datetime'].iloc[k]}' is "
                        "not a time")
    times = pd.DatetimeIndex(parsed)
    if times.tz is None and timezone.upper() != "UTC":
        try:
            times = times.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
        except Exception as err:  # pytz/zoneinfo errors for unknown zones, ambiguous or missing local times
            raise ctx.error(SignalFormatError, f"'{where}': the times cannot be read in {timezone} "
                            f"({type(err).__name__}: {err})") from None
    times = times.tz_convert("UTC").tz_localize(None) if times.tz is not None else times
    if times.has_duplicates:
        k = int(np.flatnonzero(times.duplicated())[0])
        raise ctx.error(SignalFormatError, f"'{where}' column 'datetime' row {k + 2}: time {times[k].isoformat()} "
                        "appears twice")
    order = np.argsort(times.values, kind="stable")
    hub = re.fullmatch(r"LMP_(\w+)", price).group(1)  # type: ignore[union-attr]
    zone = HUBS.get(hub.upper(), hub)
    out = {}
    for kind, column, units in (("price", price, UNITS), ("curtailment", curtailment, "MW")):
        text = frame[column].str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            k = int(np.flatnonzero(np.isnan(values))[0])
            raise ctx.error(SignalFormatError, f"'{where}' column {column!r} row {k + 2}: '{frame[column].iloc[k]}' is "
                            "not a number")
        _checked_range(values, [f"'{where}' row {k + 2}" for k in range(len(values))],
                       _Ctx(FILE_PROVIDER, where, zone), kind, units, column)
        out[kind] = signal_dataset(values[order], times[order], zone, kind, units, provider=FILE_PROVIDER,
                                   endpoint=where, where=f"'{where}' column {column!r}")
    return out
