"""ENTSO-E Transparency Platform against a real HTTP server on 127.0.0.1: day-ahead prices (hourly, 15-minute,
curve A03), renewable share from actual generation, acknowledgements, auth/rate-limit/server errors, malformed
replies, another area, one-year request splits, day-ahead runs by issue time, redirects and the token kept out
of every message, repr and log record."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from carbonsync.data.observations.entsoe import FOSSIL_AND_OTHER_FUELS, RENEWABLE_FUELS
from carbonsync.signals import (
    SignalAuthError,
    SignalError,
    SignalFormatError,
    SignalPlanError,
    SignalRateLimited,
    SignalUnavailable,
    StaleSignalError,
    get_signal,
)
from carbonsync.signals.entsoe import PSR_FUELS, RENEWABLE_PSR, Entsoe, NoMatchingData, issued_at
from carbonsync.signals.http import RetryPolicy

KEY = "entsoe-PLANTED-TOKEN-7c41d9e2"
ES = "10YES-REE------0"
FR = "10YFR-RTE------C"
FAST = RetryPolicy(attempts=2, base_s=0.01, max_s=0.02, timeout_s=0.5)
NS_PUB = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"
NS_GL = "urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0"
NS_ACK = "urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0"
XML = "application/xml"


def _utc(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%MZ")


def _period(start: str | pd.Timestamp, slots: int, minutes: int, points: dict[int, float] | list[float],
            field: str) -> str:
    start = pd.Timestamp(start)
    end = start + slots * pd.Timedelta(minutes=minutes)
    items = points.items() if isinstance(points, dict) else enumerate(points, start=1)
    body = "".join(f"<Point><position>{p}</position><{field}>{v}</{field}></Point>" for p, v in items)
    return (f"<Period><timeInterval><start>{_utc(start)}</start><end>{_utc(end)}</end></timeInterval>"
            f"<resolution>PT{minutes}M</resolution>{body}</Period>")


def _a44(periods: list[str], area: str = ES, curve: str = "A01", out_area: str | None = None,
         currency: str = "EUR") -> str:
    series = "".join(
        f"<TimeSeries><mRID>{i}</mRID><auction.type>A01</auction.type><businessType>A62</businessType>"
        f'<in_Domain.mRID codingScheme="A01">{area}</in_Domain.mRID>'
        f'<out_Domain.mRID codingScheme="A01">{out_area or area}</out_Domain.mRID>'
        f"<contract_MarketAgreement.type>A01</contract_MarketAgreement.type><currency_Unit.name>{currency}"
        f"</currency_Unit.name><price_Measure_Unit.name>MWH</price_Measure_Unit.name><curveType>{curve}</curveType>"
        f"{period}</TimeSeries>" for i, period in enumerate(periods, start=1))
    return (f'<?xml version="1.0" encoding="utf-8"?><Publication_MarketDocument xmlns="{NS_PUB}"><mRID>x</mRID>'
            f"<revisionNumber>1</revisionNumber><type>A44</type><createdDateTime>2024-05-01T10:00:00Z"
            f"</createdDateTime>{series}</Publication_MarketDocument>")


def _gl(doc_type: str, series: list[tuple[str | None, str]], area: str = ES, consumption: tuple[str, ...] = ()) -> str:
    """A GL_MarketDocument: (psrType or None, Period) generation series; ``consumption`` psr types as
    outBiddingZone series."""
    parts = []
    for psr, period in series:
        parts.append((psr, f'<inBiddingZone_Domain.mRID codingScheme="A01">{area}</inBiddingZone_Domain.mRID>', period))
    for psr in consumption:
        parts.append((psr, f'<outBiddingZone_Domain.mRID codingScheme="A01">{area}</outBiddingZone_Domain.mRID>',
                      _period(pd.Timestamp("2024-05-01"), 4, 60, [9999.0] * 4, "quantity")))
    body = "".join(
        f"<TimeSeries><mRID>{i}</mRID><businessType>A01</businessType><objectAggregation>A08</objectAggregation>"
        f"{domain}<quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name><curveType>A01</curveType>"
        f"{'' if psr is None else f'<MktPSRType><psrType>{psr}</psrType></MktPSRType>'}{period}</TimeSeries>"
        for i, (psr, domain, period) in enumerate(parts, start=1))
    return (f'<?xml version="1.0" encoding="utf-8"?><GL_MarketDocument xmlns="{NS_GL}"><mRID>y</mRID>'
            f"<type>{doc_type}</type><process.processType>A16</process.processType>{body}</GL_MarketDocument>")


def _ack(text: str, code: str = "999") -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?><Acknowledgement_MarketDocument xmlns="{NS_ACK}">'
            f"<mRID>z</mRID><createdDateTime>2024-05-01T10:00:00Z</createdDateTime>"
            f"<Reason><code>{code}</code><text>{text}</text></Reason></Acknowledgement_MarketDocument>")


def _client(server: HTTPServer, policy: RetryPolicy = FAST, **options) -> Entsoe:
    return Entsoe(KEY, base_url=server.url_for(""), policy=policy, **options)


def _serve(server: HTTPServer, body: str, status: int = 200, content_type: str = XML, **query) -> None:
    server.expect_request("/api", query_string=query or None).respond_with_data(body, status=status,
                                                                                content_type=content_type)


# --- prices -------------------------------------------------------------------------------------------------


def test_hourly_day_ahead_prices_with_the_documented_query(httpserver: HTTPServer):
    prices = [60.0 + i for i in range(24)]
    _serve(httpserver, _a44([_period("2023-12-31T23:00", 24, 60, prices, "price.amount")]))
    ds = _client(httpserver).history("spain", "2023-12-31T23:00", "2024-01-01T23:00", kind="price")
    assert ds.sizes["time"] == 24 and ds.attrs["units"] == "EUR/MWh" and ds.attrs["kind"] == "price"
    np.testing.assert_allclose(ds["value"].values[:, 0], prices)
    assert str(ds.zone.values[0]) == ES and not ds["estimated"].values.any()
    args = httpserver.log[0][0].args
    assert dict(args) == {"securityToken": KEY, "documentType": "A44", "in_Domain": ES, "out_Domain": ES,
                          "periodStart": "202312312300", "periodEnd": "202401012300"}
    assert isinstance(get_signal("entsoe", api_key=KEY), Entsoe)
    assert _client(httpserver).history(ES, "2024-01-01", "2024-01-01T05:00").sizes["time"] == 5  # a raw EIC code


def test_15_minute_prices_average_to_hours_and_a03_omitted_points_repeat(httpserver: HTTPServer):
    # 8 quarter hours; curve A03 omits positions 2-3 (equal to 1) and 6-7 (equal to 5); position 8 is the last
    a03 = _period("2024-05-01T00:00", 8, 15, {1: 40.0, 4: 80.0, 5: 10.0, 8: 30.0}, "price.amount")
    _serve(httpserver, _a44([a03], curve="A03"))
    ds = _client(httpserver).history(ES, "2024-05-01", "2024-05-01T02:00")
    np.testing.assert_allclose(ds["value"].values[:, 0], [(40 * 3 + 80) / 4, (10 * 3 + 30) / 4])
    assert not ds["estimated"].values.any()
    httpserver.clear()
    # under A01 a missing position is a gap: the hour is a mean of what is there, flagged estimated
    a01 = _period("2024-05-01T00:00", 8, 15, {1: 40.0, 2: 40.0, 3: 40.0, 4: 80.0, 5: 10.0, 8: 30.0}, "price.amount")
    hourly = _period("2024-05-01T00:00", 2, 60, [999.0, 999.0], "price.amount")  # coarser: the finer series wins
    _serve(httpserver, _a44([a01, hourly]))
    ds = _client(httpserver).history(ES, "2024-05-01", "2024-05-01T02:00")
    np.testing.assert_allclose(ds["value"].values[:, 0], [50.0, 20.0])
    assert ds["estimated"].values[:, 0].tolist() == [False, True]


def test_ranges_over_a_year_are_split_into_one_year_requests(httpserver: HTTPServer):
    seen = []

    def handler(request: Request) -> Response:
        start = pd.Timestamp(request.args["periodStart"])
        seen.append((start, pd.Timestamp(request.args["periodEnd"])))
        return Response(_a44([_period(start, 24, 60, [50.0] * 24, "price.amount")]), content_type=XML)

    httpserver.expect_request("/api").respond_with_handler(handler)
    ds = _client(httpserver).history(ES, "2022-06-01", "2024-09-01")
    assert seen == [(pd.Timestamp("2022-06-01"), pd.Timestamp("2023-06-01")),
                    (pd.Timestamp("2023-06-01"), pd.Timestamp("2024-06-01")),
                    (pd.Timestamp("2024-06-01"), pd.Timestamp("2024-09-01"))]
    assert ds.sizes["time"] == 72 and pd.DatetimeIndex(ds.time.values).is_monotonic_increasing


# --- renewable share ----------------------------------------------------------------------------------------


def test_renewable_share_from_actual_generation_per_production_type(httpserver: HTTPServer):
    t0 = "2024-05-01T00:00"
    doc = _gl("A75", [("B16", _period(t0, 4, 60, [0.0, 100.0, 300.0, 300.0], "quantity")),
                      ("B19", _period(t0, 16, 15, [100.0] * 16, "quantity")),
                      ("B04", _period(t0, 3, 60, [100.0, 100.0, 100.0], "quantity")),  # the last hour lacks gas
                      ("B10", _period(t0, 4, 60, [50.0] * 4, "quantity"))],
              consumption=("B10",))  # pumping: consumption, left out
    _serve(httpserver, doc, documentType="A75", processType="A16", in_Domain=ES, securityToken=KEY,
           periodStart="202405010000", periodEnd="202405010400")
    ds = _client(httpserver).history("spain", t0, "2024-05-01T04:00", kind="renewable_share")
    np.testing.assert_allclose(ds["value"].values[:, 0], [100 / 250, 200 / 350, 400 / 550, 400 / 450])
    assert ds.attrs["units"] == "1" and ds["estimated"].values[:, 0].tolist() == [False, False, False, True]


def test_production_types_carry_the_fuel_names_of_the_observation_reader():
    known = set(RENEWABLE_FUELS) | set(FOSSIL_AND_OTHER_FUELS)
    assert {fuel for code, fuel in PSR_FUELS.items() if code != "B25"} == known
    assert {PSR_FUELS[c] for c in RENEWABLE_PSR} == set(RENEWABLE_FUELS)


# --- latest and forecasts -----------------------------------------------------------------------------------


def _hourly_a44(request: Request, value=lambda t: 50.0) -> Response:
    start, end = pd.Timestamp(request.args["periodStart"]), pd.Timestamp(request.args["periodEnd"])
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    return Response(_a44([_period(start, len(hours), 60, [value(t) for t in hours], "price.amount")]),
                    content_type=XML)


def test_latest_is_the_current_hours_price_and_staleness_is_named(httpserver: HTTPServer):
    now = pd.Timestamp.now("UTC").tz_localize(None)
    httpserver.expect_request("/api").respond_with_handler(lambda r: _hourly_a44(r, lambda t: 40.0 + t.hour))
    ds = _client(httpserver).latest("spain", "price")
    assert pd.Timestamp(ds.time.values[0]) == now.floor("h") and ds["value"].item() == 40.0 + now.floor("h").hour
    httpserver.clear()
    _serve(httpserver, _a44([_period("2020-01-01", 24, 60, [50.0] * 24, "price.amount")]))
    with pytest.raises(StaleSignalError, match="nothing published"):
        _client(httpserver).latest(ES)
    httpserver.clear()
    _serve(httpserver, _ack("No matching data found for Data item Day-ahead Prices [12.1.D]"))
    with pytest.raises(StaleSignalError, match="No matching data"):
        _client(httpserver).latest(ES)


def test_forecast_is_the_newest_auction_run_issued_before_the_cutoff(httpserver: HTTPServer):
    httpserver.expect_request("/api").respond_with_handler(_hourly_a44)
    client = _client(httpserver)
    # 2024-01-01 13:00 CET: the auction for 2 January was published at 12:45 CET (11:45 UTC)
    fc = client.forecast("spain", pd.Timedelta(hours=24), issued_before=pd.Timestamp("2024-01-01T12:00"))
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2024-01-01T11:45") == issued_at("2024-01-02")
    times = pd.DatetimeIndex(fc.time.values)
    assert times[0] == pd.Timestamp("2024-01-01T12:00") and len(times) == 24
    args = httpserver.log[-1][0].args
    assert (args["periodStart"], args["periodEnd"]) == ("202401011100", "202401022300")
    # 12:40 CET: the newest run is the one for 1 January, cut at the end of its day
    fc = client.forecast("spain", pd.Timedelta(hours=48), issued_before=pd.Timestamp("2024-01-01T11:40"))
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2023-12-31T11:45")
    assert pd.DatetimeIndex(fc.time.values)[-1] == pd.Timestamp("2024-01-01T22:00")
    # summer time: published 12:45 CEST = 10:45 UTC
    assert issued_at("2024-07-02") == pd.Timestamp("2024-07-01T10:45")


def test_a_run_not_out_yet_falls_back_to_the_one_before(httpserver: HTTPServer):
    def handler(request: Request) -> Response:  # the platform has prices up to the end of 1 January only
        end = min(pd.Timestamp(request.args["periodEnd"]), pd.Timestamp("2024-01-01T23:00"))
        start = pd.Timestamp(request.args["periodStart"])
        return Response(_a44([_period(start, int((end - start) / pd.Timedelta(hours=1)), 60,
                                      [50.0] * int((end - start) / pd.Timedelta(hours=1)), "price.amount")]),
                        content_type=XML)

    httpserver.expect_request("/api").respond_with_handler(handler)
    fc = _client(httpserver).forecast(ES, pd.Timedelta(hours=6), issued_before=pd.Timestamp("2024-01-01T12:00"))
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2023-12-31T11:45")
    assert pd.DatetimeIndex(fc.time.values)[0] == pd.Timestamp("2023-12-31T12:00") and fc.sizes["time"] == 6


def test_renewable_share_forecast_is_wind_and_solar_over_total_generation(httpserver: HTTPServer):
    def handler(request: Request) -> Response:
        start, end = pd.Timestamp(request.args["periodStart"]), pd.Timestamp(request.args["periodEnd"])
        n = int((end - start) / pd.Timedelta(hours=1))
        if request.args["documentType"] == "A69":
            return Response(_gl("A69", [("B16", _period(start, n, 60, [100.0] * n, "quantity")),
                                        ("B19", _period(start, n, 60, [200.0] * n, "quantity"))]), content_type=XML)
        return Response(_gl("A71", [(None, _period(start, n, 60, [1000.0] * n, "quantity"))]), content_type=XML)

    httpserver.expect_request("/api").respond_with_handler(handler)
    fc = _client(httpserver).forecast(ES, pd.Timedelta(hours=3), issued_before=pd.Timestamp("2024-05-01T17:00"),
                                      kind="renewable_share")
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2024-05-01T16:00")  # 18:00 CEST
    np.testing.assert_allclose(fc["value"].values[0, :, 0], [0.3, 0.3, 0.3])
    assert {r.args["documentType"] for r, _ in httpserver.log} == {"A69", "A71"}


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, content_type, error, message", [
    (200, _ack("No matching data found for Data item Day-ahead Prices [12.1.D] (10YES-REE------0)"), XML,
     NoMatchingData, "no matching data .*HTTP 200.*999 No matching data found"),
    (400, _ack("No matching data found for Data item Actual Generation per Production Type"), XML,
     NoMatchingData, "HTTP 400"),
    (400, _ack("Mandatory parameter periodStart is missing or invalid"), XML, SignalFormatError,
     "refused \\(HTTP 400\\): 999 Mandatory parameter periodStart"),
    (401, "<html><body><h1>Unauthorized</h1></body></html>", "text/html", SignalAuthError, "HTTP 401"),
    (500, "Internal Server Error", "text/plain", SignalUnavailable, "HTTP 500"),
    (503, "Service Unavailable", "text/plain", SignalUnavailable, "HTTP 503"),
    (200, _a44([_period("2024-05-01", 24, 60, [50.0] * 24, "price.amount")])[:300], XML, SignalFormatError,
     "not well-formed XML"),
    (200, "<!DOCTYPE html><html><body>Maintenance</body></html>", "text/html", SignalFormatError, "HTML"),
    (200, "<!DOCTYPE html><html><body>Maintenance</body></html>", XML, SignalFormatError, "an HTML page"),
    (200, '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><d>&a;</d>', XML, SignalFormatError,
     "type declaration"),
    (200, _a44([_period("2024-05-01", 24, 60, [50.0] * 24, "price.amount")], area=FR), XML, SignalFormatError,
     f"for area {FR}, not {ES}"),
    (200, _a44([_period("2024-05-01", 24, 60, [50.0] * 24, "price.amount")], out_area=FR), XML, SignalFormatError,
     f"for area {FR}, not {ES}"),
    (200, _gl("A75", [("B16", _period("2024-05-01", 24, 60, [1.0] * 24, "quantity"))]), XML, SignalFormatError,
     "a 'GL_MarketDocument' document, not a Publication_MarketDocument"),
    (200, _a44(["<Period><resolution>PT60M</resolution></Period>"]), XML, SignalFormatError, "Period is malformed"),
    (200, _a44([_period("2024-05-01", 24, 60, [500000.0] * 24, "price.amount")]), XML, SignalError,
     "500000 EUR/MWh .* outside"),
])
def test_error_replies_are_named(httpserver: HTTPServer, status, body, content_type, error, message):
    _serve(httpserver, body, status=status, content_type=content_type)
    with pytest.raises(error, match=message) as caught:
        _client(httpserver).history(ES, "2024-05-01", "2024-05-02")
    assert "provider entsoe" in str(caught.value) and KEY not in str(caught.value)
    if error is NoMatchingData:
        assert isinstance(caught.value, SignalPlanError)


def test_429_is_retried_after_retry_after(httpserver: HTTPServer):
    httpserver.expect_oneshot_request("/api").respond_with_data("Too many requests", status=429,
                                                                headers={"Retry-After": "0.3"})
    httpserver.expect_request("/api").respond_with_data(
        _a44([_period("2024-05-01", 24, 60, [50.0] * 24, "price.amount")]), content_type=XML)
    began = time.monotonic()
    ds = _client(httpserver, RetryPolicy(attempts=3, base_s=0.01, max_s=1.0, timeout_s=0.5)).history(
        ES, "2024-05-01", "2024-05-02")
    assert ds.sizes["time"] == 24 and len(httpserver.log) == 2 and time.monotonic() - began >= 0.25
    httpserver.clear()
    httpserver.expect_request("/api").respond_with_data("Too many requests", status=429, headers={"Retry-After": "0"})
    with pytest.raises(SignalRateLimited, match="HTTP 429"):
        _client(httpserver).history(ES, "2024-05-01", "2024-05-02")


def test_a_timeout_is_retried_then_unavailable(httpserver: HTTPServer):
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(2.0)
        return Response(_a44([]), content_type=XML)

    httpserver.expect_request("/api").respond_with_handler(slow)
    try:
        with pytest.raises(SignalUnavailable, match="timed out"):
            _client(httpserver, RetryPolicy(attempts=2, base_s=0.01, max_s=0.02, timeout_s=0.2)).history(
                ES, "2024-05-01", "2024-05-02")
    finally:
        release.set()


def test_the_token_never_leaves_for_another_host(httpserver: HTTPServer):
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        other.expect_request("/api").respond_with_data(_a44([]), content_type=XML)
        httpserver.expect_request("/api").respond_with_data(
            "", status=302, headers={"Location": other.url_for(f"/api?securityToken={KEY}&documentType=A44")})
        with pytest.raises(SignalFormatError, match="redirected to another host") as caught:
            _client(httpserver).history(ES, "2024-05-01", "2024-05-02")
        assert not other.log and KEY not in str(caught.value)
    finally:
        other.stop()


def test_a_missing_token_and_a_kind_not_served_are_named(httpserver: HTTPServer, monkeypatch):
    monkeypatch.delenv("ENTSOE_API_KEY", raising=False)
    with pytest.raises(SignalAuthError, match="no security token"):
        Entsoe(base_url=httpserver.url_for("")).history(ES, "2024-05-01", "2024-05-02")
    with pytest.raises(SignalPlanError, match="not 'carbon_intensity'"):
        _client(httpserver).history(ES, "2024-05-01", "2024-05-02", kind="carbon_intensity")
    monkeypatch.setenv("ENTSOE_API_KEY", KEY)
    assert repr(Entsoe(base_url=httpserver.url_for(""))).startswith("Entsoe(key=set")
    assert not httpserver.log


def test_the_token_reaches_no_message_repr_or_log_record(httpserver: HTTPServer, caplog):
    caplog.set_level(logging.DEBUG)
    echo = f"securityToken={KEY}"
    replies = [
        (200, _ack(f"No matching data found for {echo}"), XML),
        (400, _ack(f"Invalid parameter {echo}"), XML),
        (400, f"bad request {echo}", "text/plain"),
        (401, f"<html><body>Unauthorized {echo}</body></html>", "text/html"),
        (404, f"not found {echo}", "text/plain"),
        (429, f"slow down {echo}", "text/plain"),
        (500, f"error {echo}", "text/plain"),
        (200, f"<html><body>{echo}</body></html>", "text/html"),
        (200, f"<!DOCTYPE html><html><body>{echo}", XML),
        (200, f"<Publication_MarketDocument>{echo}", XML),
        (200, _a44([_period("2024-05-01", 24, 60, [50.0] * 24, "price.amount")], area=FR), XML),
    ]
    client = _client(httpserver)
    errors: list[SignalError] = []
    for status, body, content_type in replies:
        httpserver.clear()
        _serve(httpserver, body, status=status, content_type=content_type)
        with pytest.raises(SignalError) as caught:
            client.history(ES, "2024-05-01", "2024-05-02")
        errors.append(caught.value)
    httpserver.clear()
    httpserver.expect_request("/api").respond_with_data(
        "", status=302, headers={"Location": f"http://example.invalid/api?{echo}"})
    with pytest.raises(SignalFormatError) as caught:
        client.forecast(ES, pd.Timedelta(hours=6), issued_before=pd.Timestamp("2024-05-01T12:00"))
    errors.append(caught.value)
    assert len({type(e) for e in errors}) >= 5
    assert all(r[0].args["securityToken"] == KEY for r in httpserver.log)  # it was sent, to this host only
    ours = [r for r in caplog.records if r.name != "werkzeug"]  # werkzeug: the test server's own access log
    logged = "\n".join(r.getMessage() for r in ours)
    text = " ".join(f"{e} {e!r} {e.endpoint}" for e in errors) + repr(client) + repr(client.http) + logged
    assert KEY not in text and "***" in text
    assert {"httpx", "httpcore.http11", "carbonsync.signals.entsoe"} <= {r.name for r in ours}  # URLs and headers
