"""CAISO OASIS against a real HTTP server on 127.0.0.1 (replies built like OASIS's zips), the day-ahead
publication rule, the CAISO files and their causal replay."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from carbonsync.signals import (
    SignalFormatError,
    SignalPlanError,
    SignalRangeError,
    SignalRateLimited,
    SignalUnavailable,
    StaleSignalError,
    get_signal,
)
from carbonsync.signals.caiso import (
    CaisoNoData,
    CaisoOasis,
    caiso_lmp_recording,
    dam_published_at,
    dam_trade_day,
    read_caiso_curtailment_csv,
    read_caiso_lmp_zip,
)
from carbonsync.signals.http import RetryPolicy
from carbonsync.signals.replay import ReplayClock
from tests.helpers import shared_data_dir

NP15, SP15 = "TH_NP15_GEN-APND", "TH_SP15_GEN-APND"
PATH = "/oasisapi/SingleZip"
FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.05, timeout_s=0.5)
WHERE = f"provider caiso, endpoint {PATH}, zone {NP15}"
HEADER = ("INTERVALSTARTTIME_GMT,INTERVALENDTIME_GMT,OPR_DT,OPR_HR,OPR_INTERVAL,NODE_ID_XML,NODE_ID,NODE,"
          "MARKET_RUN_ID,LMP_TYPE,XML_DATA_ITEM,PNODE_RESMRID,GRP_TYPE,POS,{value},GROUP")
ITEMS = (("LMP", "LMP_PRC"), ("MCC", "LMP_CONG_PRC"), ("MCE", "LMP_ENE_PRC"), ("MCL", "LMP_LOSS_PRC"),
         ("MGHG", "LMP_GHG_PRC"))
CAISO_DATA = shared_data_dir() / "caiso"
requires_caiso_data = pytest.mark.skipif(not CAISO_DATA.is_dir(), reason=f"CAISO data not found at {CAISO_DATA} "
                                         "(set CARBONSYNC_DATA_DIR to the shared data directory)")


def _prices(start: str, n: int, step: str = "1h", base: float = 30.0) -> pd.Series:
    times = pd.date_range(start, periods=n, freq=step)
    return pd.Series(base + 0.5 * np.arange(n), index=times)


def _oasis_csv(prices: pd.Series, node: str = NP15, market: str = "DAM") -> str:
    """An OASIS resultformat=6 CSV as the real files have it: per Pacific day and item one GROUP of rows in
    no particular order, all five LMP items, the price in MW (DAM) or VALUE (RTM)."""
    step = pd.Timedelta("1h" if market == "DAM" else "5min")
    local = prices.index.tz_localize("UTC").tz_convert("America/Los_Angeles")
    rng = np.random.default_rng(len(prices))
    lines, group = [HEADER.format(value="MW" if market == "DAM" else "VALUE")], 0
    for day in sorted(set(local.date)):
        on_day = np.flatnonzero(local.date == day)
        for lmp_type, item in ITEMS:
            group += 1
            for k in rng.permutation(on_day):
                t, price = prices.index[k], float(prices.iloc[k])
                value = {"LMP_PRC": price, "LMP_CONG_PRC": 1.5, "LMP_LOSS_PRC": 0.25, "LMP_GHG_PRC": 0.0,
                         "LMP_ENE_PRC": price - 1.75}[item]
                interval = 0 if market == "DAM" else local[k].minute // 5 + 1
                lines.append(f"{t:%Y-%m-%dT%H:%M:%S}-00:00,{t + step:%Y-%m-%dT%H:%M:%S}-00:00,{day},{local[k].hour + 1},"
                             f"{interval},{node},{node},{node},{market},{lmp_type},{item},{node},ALL_APNODES,0,"
                             f"{value:.5f},{group}")
    return "\n".join(lines) + "\n"


def _zip(members: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def _reply(prices: pd.Series, node: str = NP15, market: str = "DAM") -> bytes:
    query, version = ("PRC_LMP", 12) if market == "DAM" else ("PRC_INTVL_LMP", 3)
    day = prices.index[0]
    return _zip({f"{day:%Y%m%d}_{day:%Y%m%d}_{query}_{market}_LMP_v{version}.csv": _oasis_csv(prices, node, market)})


def _report(code: int, description: str, declared: bool = True) -> bytes:
    error = f"<m:ERROR><m:ERR_CODE>{code}</m:ERR_CODE><m:ERR_DESC>{description}</m:ERR_DESC></m:ERROR>"
    if not declared:  # a bare fragment, the prefix never declared
        return _zip({"INVALID_REQUEST.xml": error})
    return _zip({"20240101_20240102_PRC_LMP_DAM_v12.xml": (
        '<?xml version="1.0" encoding="UTF-8"?>\n<m:OASISReport xmlns:m="http://www.caiso.com/soa/OASISReport_v1.xsd">'
        "<m:MessageHeader><m:TimeDate>2024-03-15T17:09:06.561Z</m:TimeDate><m:Source>OASIS</m:Source>"
        "<m:Version>v20131201</m:Version></m:MessageHeader><m:MessagePayload><m:RTO><m:name>CAISO</m:name>"
        "<m:DISCLAIMER_ITEM><m:DISCLAIMER>The contents of these pages are subject to change without notice."
        f"</m:DISCLAIMER></m:DISCLAIMER_ITEM>{error}</m:RTO></m:MessagePayload></m:OASISReport>")})


def _zipped(body: bytes) -> Response:
    return Response(body, content_type="application/x-zip-compressed")


def _window(request: Request) -> tuple[pd.Timestamp, pd.Timestamp]:
    return tuple(pd.to_datetime(request.args[k], format="%Y%m%dT%H:%M%z").tz_convert(None)
                 for k in ("startdatetime", "enddatetime"))


def _serve_window(step: str = "1h", market: str = "DAM", until: pd.Timestamp | None = None, seen: list | None = None):
    """A handler answering any window with prices labelled by their hour of the request's window."""
    def handler(request: Request) -> Response:
        lo, hi = _window(request)
        if seen is not None:
            seen.append((lo, hi, time.monotonic()))
        times = pd.date_range(lo, hi, freq=step, inclusive="left")
        if until is not None:
            times = times[times <= until]
        prices = pd.Series(40.0 + np.arange(len(times)) % 24, index=times)
        return _zipped(_reply(prices, request.args["node"], market))
    return handler


def _client(server: HTTPServer, **options) -> CaisoOasis:
    return CaisoOasis(base_url=server.url_for(""), min_interval_s=0, policy=options.pop("policy", FAST), **options)


# --- the live provider ------------------------------------------------------------------------------------

def test_a_day_ahead_reply_is_read_to_usd_per_mwh(httpserver: HTTPServer):
    prices = _prices("2024-01-01T08:00", 48)
    prices.iloc[5] = -5.25  # negative prices are prices
    httpserver.expect_request(PATH, query_string={
        "queryname": "PRC_LMP", "market_run_id": "DAM", "startdatetime": "20240101T08:00-0000",
        "enddatetime": "20240103T08:00-0000", "version": "12", "node": NP15, "resultformat": "6"},
    ).respond_with_response(_zipped(_reply(prices)))
    ds = _client(httpserver).history("caiso", pd.Timestamp("2024-01-01T08:00Z"), pd.Timestamp("2024-01-03T08:00Z"))
    assert ds["value"].dims == ("time", "zone") and ds.zone.values.tolist() == [NP15]
    assert (pd.DatetimeIndex(ds.time.values) == prices.index).all()
    np.testing.assert_allclose(ds["value"].values[:, 0], prices.values)  # LMP_PRC, not its components
    assert ds.attrs["units"] == "USD/MWh" and ds.attrs["kind"] == "price" and ds.attrs["provider"] == "caiso"
    assert isinstance(get_signal("caiso", base_url=httpserver.url_for(""), min_interval_s=0), CaisoOasis)


def test_a_raw_node_id_is_accepted_and_unknown_zones_or_kinds_are_named(httpserver: HTTPServer):
    httpserver.expect_request(PATH).respond_with_handler(_serve_window())
    ds = _client(httpserver).history(SP15, "2024-01-01T08:00", "2024-01-02T08:00")
    assert ds.zone.values.tolist() == [SP15] and ds.sizes["time"] == 24 and httpserver.log[0][0].args["node"] == SP15
    oasis = _client(httpserver)
    with pytest.raises(SignalPlanError, match="no caiso_node code"):
        oasis.history("ercot", "2024-01-01", "2024-01-02")
    with pytest.raises(SignalPlanError, match="neither a zone of the lexicon nor an OASIS node id"):
        oasis.history("atlantis", "2024-01-01", "2024-01-02")
    with pytest.raises(SignalPlanError, match="not carbon_intensity"):
        oasis.history("caiso", "2024-01-01", "2024-01-02", kind="carbon_intensity")
    assert len(httpserver.log) == 1


def test_real_time_five_minute_prices(httpserver: HTTPServer):
    prices = _prices("2024-06-01T19:00", 12, step="5min", base=-2.0)
    httpserver.expect_request(PATH, query_string={
        "queryname": "PRC_INTVL_LMP", "market_run_id": "RTM", "startdatetime": "20240601T19:00-0000",
        "enddatetime": "20240601T20:00-0000", "version": "3", "node": NP15, "resultformat": "6"},
    ).respond_with_response(_zipped(_reply(prices, market="RTM")))
    ds = _client(httpserver, market="RTM").history(NP15, "2024-06-01T19:00", "2024-06-01T20:00")
    assert ds.sizes["time"] == 12 and (np.diff(ds.time.values) == np.timedelta64(5, "m")).all()
    np.testing.assert_allclose(ds["value"].values[:, 0], prices.values)


def test_a_long_history_is_split_into_31_day_requests_without_duplicates(httpserver: HTTPServer):
    seen: list = []

    def handler(request: Request) -> Response:  # each reply also repeats the hour before its window
        lo, hi = _window(request)
        seen.append((lo, hi))
        times = pd.date_range(lo - pd.Timedelta(hours=1), hi, freq="1h", inclusive="left")
        return _zipped(_reply(pd.Series(50.0, index=times)))

    httpserver.expect_request(PATH).respond_with_handler(handler)
    start = pd.Timestamp("2024-01-01T08:00")
    ds = _client(httpserver).history("caiso", start, start + pd.Timedelta(days=70))
    assert [(lo - start).days for lo, _ in seen] == [0, 31, 62] and seen[-1][1] == start + pd.Timedelta(days=70)
    assert all(hi - lo <= pd.Timedelta(days=31) for lo, hi in seen)
    times = pd.DatetimeIndex(ds.time.values)
    assert ds.sizes["time"] == 70 * 24 and times.is_unique and times.is_monotonic_increasing


def test_requests_are_spaced_by_the_minimum_interval(httpserver: HTTPServer):
    seen: list = []
    httpserver.expect_request(PATH).respond_with_handler(_serve_window(seen=seen))
    oasis = CaisoOasis(base_url=httpserver.url_for(""), min_interval_s=0.3, max_days=1, policy=FAST)
    oasis.history("caiso", "2024-01-01T08:00", "2024-01-03T08:00")
    assert len(seen) == 2 and seen[1][2] - seen[0][2] >= 0.25


@pytest.mark.parametrize("code, description, declared, error", [
    (1000, "No data returned for the specified selection", True, CaisoNoData),
    (1000, "No data returned for the specified selection", False, CaisoNoData),
    (1001, "Invalid parameters", True, SignalPlanError),
    (1015, "GroupZip DownLoad is in Processing, Please Submit request after Sometime.", True, SignalRateLimited),
    (9999, "Something unforeseen", True, SignalFormatError),
])
def test_an_oasis_error_report_is_named(httpserver: HTTPServer, code, description, declared, error):
    httpserver.expect_request(PATH).respond_with_response(_zipped(_report(code, description, declared)))
    with pytest.raises(error, match=f"OASIS error {code} .*{description[:20]}") as caught:
        _client(httpserver).history("caiso", "2024-01-01T08:00", "2024-01-02T08:00")
    assert type(caught.value) is error and WHERE in str(caught.value)
    assert caught.value.oasis_code == str(code) and caught.value.oasis_description == description
    if error is CaisoNoData:
        assert isinstance(caught.value, SignalUnavailable)


def test_a_request_without_data_in_a_long_history_is_a_gap(httpserver: HTTPServer):
    def handler(request: Request) -> Response:
        lo, hi = _window(request)
        if lo > pd.Timestamp("2024-01-20"):
            return _zipped(_report(1000, "No data returned for the specified selection"))
        return _zipped(_reply(pd.Series(50.0, index=pd.date_range(lo, hi, freq="1h", inclusive="left"))))

    httpserver.expect_request(PATH).respond_with_handler(handler)
    ds = _client(httpserver).history("caiso", "2024-01-01T08:00", "2024-02-10T08:00")
    assert ds.sizes["time"] == 31 * 24 and pd.Timestamp(ds.time.values[-1]) == pd.Timestamp("2024-02-01T07:00")


def _good() -> bytes:
    return _reply(_prices("2024-01-01T08:00", 24))


def _edited(edit) -> bytes:
    lines = _oasis_csv(_prices("2024-01-01T08:00", 24)).splitlines()
    return _zip({"20240101_20240101_PRC_LMP_DAM_LMP_v12.csv": "\n".join(edit(lines)) + "\n"})


def _set_first_price(lines: list[str], value: str) -> list[str]:
    cells = lines[1].split(",")
    cells[14] = value
    return [lines[0], ",".join(cells), *lines[2:]]


def _clash(lines: list[str]) -> list[str]:
    cells = lines[1].split(",")
    cells[14] = str(float(cells[14]) + 10)
    return [*lines, ",".join(cells)]


@pytest.mark.parametrize("body, content_type, message", [
    (_good()[:-40], "application/x-zip-compressed", "truncated or damaged zip"),
    (b"PK\x03\x04" + b"\x00" * 30, "application/x-zip-compressed", "truncated or damaged zip"),
    (b"<!DOCTYPE html><html><body>OASIS is down for maintenance</body></html>", "text/html", "an HTML page"),
    (b"Service temporarily unavailable", "text/plain", "not a zip archive"),
    (_edited(lambda lines: [line.rsplit(",", 2)[0] for line in lines]), "", "lacks column.*MW/VALUE/PRC"),
    (_reply(_prices("2024-01-01T08:00", 24), SP15), "", f"node '{SP15}', not '{NP15}'"),
    (_edited(lambda lines: [line.replace(",DAM,", ",RTM,") for line in lines]), "", "market run 'RTM', not 'DAM'"),
    (_edited(lambda lines: _set_first_price(lines, "")), "", "row 2: the price \\(MW\\) .* is null"),
    (_edited(lambda lines: _set_first_price(lines, "n/a")), "", "'n/a', not a number"),
    (_edited(lambda lines: _set_first_price(lines, "1e9")), "", "outside"),
    (_edited(_clash), "", "has two prices"),
    (_edited(lambda lines: [lines[0], lines[1].replace("-00:00,", "x,", 1)]), "", "is not a time"),
    (_zip({"readme.txt": "nothing here"}), "", "holds no CSV or XML file"),
    (_zip({"x.xml": "<OASISReport><Other/></OASISReport>"}), "", "no OASIS error report"),
])
def test_bad_replies_are_named(httpserver: HTTPServer, body, content_type, message):
    httpserver.expect_request(PATH).respond_with_data(body, content_type=content_type or "application/x-zip-compressed")
    with pytest.raises((SignalFormatError, SignalRangeError), match=message) as caught:
        _client(httpserver).history("caiso", "2024-01-01T08:00", "2024-01-02T08:00")
    assert WHERE in str(caught.value)


def test_a_server_error_then_a_reply_is_retried(httpserver: HTTPServer):
    replies = iter([Response("<html>oops</html>", status=500), _zipped(_good())])
    httpserver.expect_request(PATH).respond_with_handler(lambda r: next(replies))
    assert _client(httpserver).history("caiso", "2024-01-01T08:00", "2024-01-02T08:00").sizes["time"] == 24
    assert len(httpserver.log) == 2


def test_429_waits_for_retry_after_and_is_named_when_it_persists(httpserver: HTTPServer):
    replies = iter([Response("slow down", status=429, headers={"Retry-After": "0.05"}), _zipped(_good())])
    httpserver.expect_request(PATH).respond_with_handler(lambda r: next(replies))
    began = time.monotonic()
    assert _client(httpserver).history("caiso", "2024-01-01T08:00", "2024-01-02T08:00").sizes["time"] == 24
    assert time.monotonic() - began >= 0.04
    httpserver.clear()
    httpserver.expect_request(PATH).respond_with_data("slow down", status=429, headers={"Retry-After": "0"})
    with pytest.raises(SignalRateLimited, match="HTTP 429") as caught:
        _client(httpserver).history("caiso", "2024-01-01T08:00", "2024-01-02T08:00")
    assert caught.value.retry_after == 0.0 and len(httpserver.log) == 3


def test_a_timeout_is_named(httpserver: HTTPServer):
    httpserver.expect_request(PATH).respond_with_handler(lambda r: (time.sleep(0.4), _zipped(_good()))[1])
    policy = RetryPolicy(attempts=2, base_s=0.01, max_s=0.02, timeout_s=0.15)
    with pytest.raises(SignalUnavailable, match="timed out") as caught:
        _client(httpserver, policy=policy).history("caiso", "2024-01-01T08:00", "2024-01-02T08:00")
    assert WHERE in str(caught.value)


def test_latest_is_the_newest_interval_started_and_a_stale_one_is_named(httpserver: HTTPServer):
    httpserver.expect_request(PATH).respond_with_handler(_serve_window("5min", "RTM"))
    oasis = _client(httpserver, market="RTM", max_age="1h")
    now = pd.Timestamp.now("UTC").tz_localize(None)
    last = oasis.latest("caiso")
    assert last.sizes["time"] == 1 and pd.Timestamp(last.time.values[0]) in (now.floor("5min"),
                                                                              now.floor("5min") + pd.Timedelta("5min"))
    httpserver.clear()
    httpserver.expect_request(PATH).respond_with_handler(_serve_window("5min", "RTM", until=now - pd.Timedelta("62min")))
    with pytest.raises(StaleSignalError, match="past the limit of 0 days 01:00:00"):
        oasis.latest("caiso")
    httpserver.clear()
    httpserver.expect_request(PATH).respond_with_response(_zipped(_report(1000, "No data returned")))
    with pytest.raises(StaleSignalError, match="no RTM price"):
        oasis.latest("caiso")


def test_the_dam_publication_rule():
    assert dam_published_at("2024-03-05") == pd.Timestamp("2024-03-04T21:00")  # 13:00 PST
    assert dam_published_at("2024-07-05") == pd.Timestamp("2024-07-04T20:00")  # 13:00 PDT
    assert dam_trade_day("2024-03-04T20:59") == pd.Timestamp("2024-03-04")
    assert dam_trade_day("2024-03-04T21:00") == pd.Timestamp("2024-03-04")  # published at, not before
    assert dam_trade_day("2024-03-04T21:01") == pd.Timestamp("2024-03-05")
    assert dam_trade_day(pd.Timestamp("2024-07-04T13:30", tz="America/Los_Angeles")) == pd.Timestamp("2024-07-05")


def test_forecast_is_the_newest_dam_run_published_before_the_cutoff(httpserver: HTTPServer):
    seen: list = []
    httpserver.expect_request(PATH).respond_with_handler(_serve_window(seen=seen))
    oasis = _client(httpserver, market="RTM")  # forecasts read the DAM whatever the market
    before = oasis.forecast("caiso", pd.Timedelta("36h"), issued_before=pd.Timestamp("2024-03-05T20:30Z"))
    assert pd.Timestamp(before.issued_at.values[0]) == pd.Timestamp("2024-03-04T21:00")
    assert seen[-1][:2] == (pd.Timestamp("2024-03-05T08:00"), pd.Timestamp("2024-03-06T08:00"))
    assert before["value"].dims == ("issued_at", "time", "zone") and before.sizes["time"] == 24
    after = oasis.forecast("caiso", pd.Timedelta("36h"), issued_before=pd.Timestamp("2024-03-05T21:30Z"))
    assert pd.Timestamp(after.issued_at.values[0]) == pd.Timestamp("2024-03-05T21:00")
    assert after.attrs["trade_date"] == "2024-03-06" and after.attrs["units"] == "USD/MWh"
    cut = oasis.forecast("caiso", pd.Timedelta("20h"), issued_before=pd.Timestamp("2024-03-05T21:30Z"))
    assert pd.Timestamp(cut.time.values[-1]) == pd.Timestamp("2024-03-06T17:00")  # < cutoff + 20 h
    summer = oasis.forecast(NP15, pd.Timedelta("36h"), issued_before=pd.Timestamp("2024-07-04T20:30Z"))
    assert pd.Timestamp(summer.issued_at.values[0]) == pd.Timestamp("2024-07-04T20:00")
    assert pd.Timestamp(summer.time.values[0]) == pd.Timestamp("2024-07-05T07:00") and summer.sizes["time"] == 24
    short = oasis.forecast("caiso", pd.Timedelta("6h"), issued_before=pd.Timestamp("2024-03-05T21:30Z"))
    assert pd.Timestamp(short.issued_at.values[0]) == pd.Timestamp("2024-03-04T21:00")  # 6 March opens after the window
    assert pd.Timestamp(short.time.values[-1]) == pd.Timestamp("2024-03-06T03:00") and short.sizes["time"] == 20
    assert {(r.args["queryname"], r.args["market_run_id"], r.args["version"]) for r, _ in httpserver.log} == {
        ("PRC_LMP", "DAM", "12")} and len(httpserver.log) == 5


def test_forecast_falls_back_to_the_run_before_when_the_newest_is_not_there(httpserver: HTTPServer):
    def handler(request: Request) -> Response:
        lo, hi = _window(request)
        if lo >= pd.Timestamp("2024-03-06"):
            return _zipped(_report(1000, "No data returned for the specified selection"))
        return _zipped(_reply(pd.Series(45.0, index=pd.date_range(lo, hi, freq="1h", inclusive="left"))))

    httpserver.expect_request(PATH).respond_with_handler(handler)
    fc = _client(httpserver).forecast("caiso", pd.Timedelta("36h"), issued_before=pd.Timestamp("2024-03-05T21:05Z"))
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2024-03-04T21:00") and len(httpserver.log) == 2


# --- files ------------------------------------------------------------------------------------------------

def _lmp_zip(tmp_path: Path, days: int = 4) -> Path:
    """The shared layout: monthly CSVs under LMP_Data/ with macOS resource forks; one day as a nested OASIS zip."""
    prices = _prices("2024-03-03T08:00", days * 24)  # Pacific days 3 March to 6 March (10 March is the DST day)
    head, tail = prices.iloc[:-24], prices.iloc[-24:]
    path = tmp_path / "caiso_np15_lmp_2024.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("LMP_Data/", "")
        archive.writestr("LMP_Data/202403_LMP.csv", _oasis_csv(head))
        archive.writestr("__MACOSX/LMP_Data/._202403_LMP.csv", b"\x00\x05\x16\x07Mac OS X")
        archive.writestr("LMP_Data/20240306_20240306_PRC_LMP_DAM_LMP_v12.zip", _reply(tail))
    return path


def test_the_lmp_zip_is_read_and_replayed_causally(tmp_path):
    path = _lmp_zip(tmp_path)
    ds = read_caiso_lmp_zip(path)
    assert ds.sizes["time"] == 96 and ds.zone.values.tolist() == [NP15] and ds.attrs["units"] == "USD/MWh"
    np.testing.assert_allclose(ds["value"].values[:, 0], _prices("2024-03-03T08:00", 96).values)
    clock = ReplayClock("2024-03-03T10:00")
    signal = caiso_lmp_recording(path, clock)
    rng = np.random.default_rng(1)
    for _ in range(40):
        clock.advance(pd.Timedelta(minutes=int(rng.integers(1, 240))))
        now = clock.now
        assert pd.Timestamp(signal.latest(NP15).time.values[0]) + pd.Timedelta("1h") <= now
        seen = signal.history(NP15, "2024-03-01", "2024-03-10")
        assert (pd.DatetimeIndex(seen.time.values) + pd.Timedelta("1h") <= now).all()
        fc = signal.forecast(NP15, pd.Timedelta("36h"))
        if fc.attrs["method"] == "recorded forecast":   # each value from the run of its own trade day
            issued = pd.DatetimeIndex(fc["issued"].values[:, 0])
            days = pd.DatetimeIndex(fc.time.values).tz_localize("UTC").tz_convert("America/Los_Angeles").date
            assert (issued < now).all() and pd.Timestamp(fc.issued_at.values[0]) == issued.max()
            assert all(dam_published_at(str(d)) == i for d, i in zip(days, issued, strict=True))
    clock.now = pd.Timestamp("2024-03-05T20:59")  # 12:59 PST: the run for 6 March is not out
    fc = signal.forecast(NP15, pd.Timedelta("36h"))
    assert fc.attrs["method"] == "recorded forecast" and pd.Timestamp(fc.issued_at.values[0]) == dam_published_at("2024-03-05")
    clock.now = pd.Timestamp("2024-03-05T21:01")
    fc = signal.forecast(NP15, pd.Timedelta("36h"))
    assert pd.Timestamp(fc.issued_at.values[0]) == dam_published_at("2024-03-06") and fc.sizes["time"] == 34
    issued = pd.DatetimeIndex(fc["issued"].values[:, 0])   # the rest of 5 March (Pacific) from the run before
    assert (issued[:10] == dam_published_at("2024-03-05")).all() and (issued[10:] == dam_published_at("2024-03-06")).all()


def test_bad_lmp_zips_are_named(tmp_path):
    path = _lmp_zip(tmp_path)
    (tmp_path / "cut.zip").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SignalFormatError, match="cut.zip.*truncated or damaged zip"):
        read_caiso_lmp_zip(tmp_path / "cut.zip")
    prices = _prices("2024-03-03T08:00", 24)
    (tmp_path / "clash.zip").write_bytes(_zip({"LMP_Data/a.csv": _oasis_csv(prices), "LMP_Data/b.csv": _oasis_csv(prices + 1)}))
    with pytest.raises(SignalFormatError, match="2024-03-03T08:00:00 of node 'TH_NP15_GEN-APND' has two prices"):
        read_caiso_lmp_zip(tmp_path / "clash.zip")
    with pytest.raises(SignalFormatError, match="does not exist"):
        read_caiso_lmp_zip(tmp_path / "absent.zip")


CURTAILMENT = "datetime,LMP_NP15,Total_Curtailment_NP15_MW\n" + "".join(
    f"2024-04-01 {h:02d}:00,{30 - h:.5f},{max(0.0, 1000 - 100 * abs(h - 20)):.3f}\n" for h in range(8, 24))


def test_the_curtailment_csv_gives_price_and_curtailment(tmp_path):
    (tmp_path / "week.csv").write_text(CURTAILMENT)
    out = read_caiso_curtailment_csv(tmp_path / "week.csv")
    assert set(out) == {"price", "curtailment"}
    assert out["price"].attrs["units"] == "USD/MWh" and out["curtailment"].attrs["units"] == "MW"
    assert out["price"].zone.values.tolist() == [NP15] and out["price"].sizes["time"] == 16
    assert pd.Timestamp(out["curtailment"].time.values[out["curtailment"]["value"].values[:, 0].argmax()]).hour == 20
    local = read_caiso_curtailment_csv(tmp_path / "week.csv", timezone="America/Los_Angeles")
    assert pd.Timestamp(local["price"].time.values[0]) == pd.Timestamp("2024-04-01T15:00")  # PDT is UTC-7


@pytest.mark.parametrize("edit, error, message", [
    (lambda t: t.replace(",1000.000", ",-3.000"), SignalRangeError,
     "week.csv' row 14 column 'Total_Curtailment_NP15_MW': curtailment -3 MW"),
    (lambda t: t.replace("2024-04-01 10:00,20.00000", "2024-04-01 10:00,abc"), SignalFormatError,
     "week.csv' column 'LMP_NP15' row 4: 'abc' is not a number"),
    (lambda t: t.replace("2024-04-01 10:00,20.00000,0.000", "2024-04-01 10:00,20.00000,"), SignalFormatError,
     "column 'Total_Curtailment_NP15_MW' row 4: '' is not a number"),
    (lambda t: t.replace("2024-04-01 11:00", "April fools"), SignalFormatError, "column 'datetime' row 5"),
    (lambda t: t.replace("2024-04-01 11:00", "2024-04-01 10:00"), SignalFormatError, "row 5: time .* appears twice"),
    (lambda t: t.replace("LMP_NP15", "PRICE"), SignalFormatError, "needs columns datetime, LMP_<hub>"),
])
def test_bad_curtailment_cells_are_named(tmp_path, edit, error, message):
    (tmp_path / "week.csv").write_text(edit(CURTAILMENT))
    with pytest.raises(error, match=message):
        read_caiso_curtailment_csv(tmp_path / "week.csv")


# --- the shared files ---------------------------------------------------------------------------------------

@requires_caiso_data
def test_the_shared_lmp_zip_is_hourly_with_october_a_gap():
    ds = read_caiso_lmp_zip(CAISO_DATA / "caiso_np15_lmp_2024.zip")
    times = pd.DatetimeIndex(ds.time.values)
    assert ds.zone.values.tolist() == [NP15] and ds.sizes["time"] == 8040 and times.is_unique
    assert times[0] == pd.Timestamp("2024-01-01T08:00") and times[-1] == pd.Timestamp("2025-01-01T07:00")
    october = (times >= pd.Timestamp("2024-10-01T07:00")) & (times < pd.Timestamp("2024-11-01T07:00"))
    assert not october.any() and ds["value"].notnull().all()
    assert float(ds["value"].sel(time="2024-07-01T16:00").item()) == pytest.approx(27.12214)
    clock = ReplayClock("2024-10-20")
    signal = caiso_lmp_recording(CAISO_DATA / "caiso_np15_lmp_2024.zip", clock)
    assert pd.Timestamp(signal.latest(NP15).time.values[0]) == pd.Timestamp("2024-10-01T06:00")  # the gap is not filled
    clock.now = pd.Timestamp("2024-06-15T19:30")  # 12:30 PDT
    fc = signal.forecast(NP15, pd.Timedelta("36h"))
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2024-06-14T20:00") < clock.now


@requires_caiso_data
def test_the_shared_curtailment_weeks_are_utc():
    lmp = read_caiso_lmp_zip(CAISO_DATA / "caiso_np15_lmp_2024.zip")["value"][:, 0].to_series()
    for name in ("vector_high_curtailment_week.csv", "vector_high_volatility_week.csv"):
        out = read_caiso_curtailment_csv(CAISO_DATA / name)
        price, curtailed = (out[k]["value"][:, 0].to_series() for k in ("price", "curtailment"))
        assert len(price) == 168
        np.testing.assert_allclose(price.values, lmp.reindex(price.index).values, atol=1e-6)  # the DAM at _GMT times
        by_hour = curtailed.groupby(curtailed.index.hour).mean()
        assert 17 <= by_hour.idxmax() <= 23 and by_hour.loc[4:12].max() < 0.05 * by_hour.max()  # daylight is ~14-02 UTC
