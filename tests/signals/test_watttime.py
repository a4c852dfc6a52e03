"""WattTime v3 against a real HTTP server on 127.0.0.1: login and token renewal, units, chunking, every
error class named, redirects that keep the credentials home, and no secret in any message or log."""

from __future__ import annotations

import base64
import json
import logging
import time

import numpy as np
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from carbonsync.signals import (
    SignalAuthError,
    SignalFormatError,
    SignalPlanError,
    SignalRateLimited,
    SignalUnavailable,
    get_signal,
)
from carbonsync.signals.http import RetryPolicy
from carbonsync.signals.watttime import WattTime

USER, PASSWORD, TOKEN = "researcher", "pw-PLANTED-SECRET-9f3a", "tok-PLANTED-TOKEN-77c1"
FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.05, timeout_s=0.5)
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _points(start: str, n: int, value: float = 1000.0, step: str = "5min") -> list[dict]:
    return [{"point_time": t.isoformat() + "+00:00", "value": value} for t in pd.date_range(start, periods=n, freq=step)]


def _client(server: HTTPServer) -> WattTime:
    server.expect_request("/login", headers={"Authorization": BASIC}).respond_with_json({"token": TOKEN})
    return WattTime(USER, PASSWORD, base_url=server.url_for(""), policy=FAST)


def test_forecast_logs_in_and_converts_units(httpserver: HTTPServer):
    wt = _client(httpserver)
    httpserver.expect_request("/v3/forecast", headers=BEARER, query_string={
        "region": "CAISO_NORTH", "signal_type": "co2_moer", "horizon_hours": "2"}).respond_with_json({
            "meta": {"region": "CAISO_NORTH", "units": "lbs_co2_per_mwh", "generated_at": "2026-05-03T10:00:00+00:00"},
            "data": _points("2026-05-03T10:05", 24)})
    fc = wt.forecast("US-CAL-CISO", pd.Timedelta(hours=2))  # any lexicon spelling of the zone
    assert fc["value"].dims == ("issued_at", "time", "zone") and fc.zone.values.tolist() == ["CAISO_NORTH"]
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2026-05-03T10:00")
    np.testing.assert_allclose(fc["value"].values, 453.59237)
    assert fc.attrs["units"] == "g CO2e/kWh"
    assert isinstance(get_signal("watttime", username=USER, password=PASSWORD), WattTime)


def test_historical_is_chunked_to_32_days(httpserver: HTTPServer):
    wt = _client(httpserver)
    seen = []

    def handler(request):
        seen.append((request.args["start"], request.args["end"]))
        start = pd.Timestamp(request.args["start"]).tz_convert(None)
        return Response(json.dumps({"meta": {"region": "CAISO_NORTH", "units": "lbs_co2_per_mwh"},
                                          "data": _points(str(start), 3, step="1D")}), content_type="application/json")

    httpserver.expect_request("/v3/historical").respond_with_handler(handler)
    ds = wt.history("CAISO_NORTH", "2024-01-01", "2024-03-11")
    assert [s[:10] for s, _ in seen] == ["2024-01-01", "2024-02-02", "2024-03-05"]
    assert seen[-1][1].startswith("2024-03-11") and ds.sizes["time"] == 9


def test_a_forecast_issued_before_a_time_comes_from_the_forecast_archive(httpserver: HTTPServer):
    wt = _client(httpserver)
    runs = [{"generated_at": f"2026-05-03T09:{m:02d}:00+00:00", "forecast": _points(f"2026-05-03T09:{m:02d}", 12, 900.0 + m)}
            for m in (0, 5, 10)]
    httpserver.expect_request("/v3/forecast/historical", query_string={
        "region": "CAISO_NORTH", "signal_type": "co2_moer", "start": "2026-05-03T08:07:00+00:00",
        "end": "2026-05-03T09:07:00+00:00", "horizon_hours": "1"}).respond_with_json(
            {"meta": {"region": "CAISO_NORTH", "units": "lbs_co2_per_mwh"}, "data": runs})
    fc = wt.forecast("CAISO_NORTH", pd.Timedelta(hours=1), issued_before=pd.Timestamp("2026-05-03T09:07Z"))
    assert pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2026-05-03T09:05")  # the newest before 09:07
    np.testing.assert_allclose(fc["value"].values, 905.0 * 0.45359237)


def test_signal_index_stays_an_index_and_region_from_loc(httpserver: HTTPServer):
    wt = _client(httpserver)
    httpserver.expect_request("/v3/signal-index").respond_with_json({
        "meta": {"region": "CAISO_NORTH", "units": "percent"}, "data": _points("2026-05-03T10:00", 1, 63.0)})
    httpserver.expect_request("/v3/region-from-loc", query_string={
        "latitude": "37.5", "longitude": "-122.0", "signal_type": "co2_moer"}).respond_with_json(
            {"region": "CAISO_NORTH", "region_full_name": "California ISO Northern"})
    idx = wt.signal_index("CAISO_NORTH")
    assert idx.attrs["units"] == "percent" and idx.attrs["index"] == "yes" and idx["value"].item() == 63.0
    assert wt.region_from_loc(37.5, -122.0) == "CAISO_NORTH"


def test_an_expired_token_is_renewed_once(httpserver: HTTPServer):
    tokens = iter(["tok-old", TOKEN])
    httpserver.expect_request("/login").respond_with_handler(
        lambda r: Response(f'{{"token": "{next(tokens)}"}}', content_type="application/json"))
    httpserver.expect_request("/v3/signal-index", headers={"Authorization": "Bearer tok-old"}).respond_with_data(
        "token expired", status=401)
    httpserver.expect_request("/v3/signal-index", headers=BEARER).respond_with_json({
        "meta": {"region": "CAISO_NORTH", "units": "percent"}, "data": _points("2026-05-03T10:00", 1, 10.0)})
    wt = WattTime(USER, PASSWORD, base_url=httpserver.url_for(""), policy=FAST)
    assert wt.signal_index("CAISO_NORTH")["value"].item() == 10.0


@pytest.mark.parametrize("status, body, error, message", [
    (403, "Your plan does not include region SPP_TX", SignalPlanError, "HTTP 403.*plan does not include"),
    (500, "<html>internal error</html>", SignalUnavailable, "HTTP 500"),
    (429, "slow down", SignalRateLimited, "HTTP 429"),
    (200, '{"meta": {"region": "CAISO_NORTH", "units": "perc', SignalFormatError, "not JSON"),
    (200, "<html><body>maintenance</body></html>", SignalFormatError, "not JSON"),
    (200, '{"meta": {"region": "SPP_TX", "units": "percent"}, "data": []}', SignalFormatError,
     "region 'SPP_TX', not 'CAISO_NORTH'"),
    (200, '{"meta": {"region": "CAISO_NORTH", "units": "percent"}, "data": [{"point_time": "x"}]}',
     SignalFormatError, "malformed"),
    (200, '{"meta": {"region": "CAISO_NORTH", "units": "furlongs"}, "data": []}', SignalFormatError, "furlongs"),
    (200, '["not", "an", "object"]', SignalFormatError, "JSON list, not an object"),
])
def test_error_replies_are_named(httpserver: HTTPServer, status, body, error, message):
    wt = _client(httpserver)
    headers = {"Retry-After": "0"} if status == 429 else {}
    httpserver.expect_request("/v3/signal-index").respond_with_data(body, status=status, headers=headers,
                                                                    content_type="application/json")
    with pytest.raises(error, match=message) as caught:
        wt.signal_index("CAISO_NORTH")
    assert "provider watttime, endpoint /v3/signal-index, zone CAISO_NORTH" in str(caught.value)
    if status == 429:
        assert caught.value.retry_after == 0.0


def test_transient_failures_are_retried_then_succeed(httpserver: HTTPServer):
    wt = _client(httpserver)
    ok = {"meta": {"region": "CAISO_NORTH", "units": "percent"}, "data": _points("2026-05-03T10:00", 1, 5.0)}
    replies = iter([Response("busy", status=429, headers={"Retry-After": "0.01"}), Response("oops", status=503),
                    Response(json.dumps(ok), content_type="application/json")])
    httpserver.expect_request("/v3/signal-index").respond_with_handler(lambda r: next(replies))
    assert wt.signal_index("CAISO_NORTH")["value"].item() == 5.0


def test_a_timeout_is_named(httpserver: HTTPServer):
    wt = _client(httpserver)
    httpserver.expect_request("/v3/signal-index").respond_with_handler(lambda r: (time.sleep(0.8), Response("{}"))[1])
    with pytest.raises(SignalUnavailable, match="timed out"):
        wt.signal_index("CAISO_NORTH")


def test_credentials_never_follow_a_redirect_to_another_host(httpserver: HTTPServer):
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        other.expect_request("/steal").respond_with_json({"meta": {}, "data": []})
        # another port is another origin: the request must not be made
        target = other.url_for("/steal")
        wt = _client(httpserver)
        httpserver.expect_request("/v3/signal-index").respond_with_data("", status=302, headers={"Location": target})
        with pytest.raises(SignalFormatError, match="redirected to another host"):
            wt.signal_index("CAISO_NORTH")
        assert not other.log, "the other host received a request"
    finally:
        other.stop()


def test_no_secret_reaches_a_message_a_repr_or_the_log(httpserver: HTTPServer, caplog, monkeypatch):
    for name in ("WATTTIME_USERNAME", "WATTTIME_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG, logger="carbonsync")
    wt = _client(httpserver)
    httpserver.expect_request("/v3/signal-index").respond_with_data(
        f"bad token {TOKEN} for {USER}:{PASSWORD}", status=400)
    with pytest.raises(SignalFormatError) as caught:
        wt.signal_index("CAISO_NORTH")
    text = " ".join([str(caught.value), repr(caught.value), repr(wt), repr(wt.http), caplog.text])
    assert PASSWORD not in text and TOKEN not in text and "***" in str(caught.value)
    with pytest.raises(SignalAuthError, match="no credentials"):
        WattTime("", "", base_url=httpserver.url_for("")).signal_index("CAISO_NORTH")


def test_short_gaps_in_a_history_are_filled_and_flagged(httpserver: HTTPServer):
    wt = WattTime(USER, PASSWORD, base_url=httpserver.url_for(""), policy=FAST, max_gap=3)
    httpserver.expect_request("/login", headers={"Authorization": BASIC}).respond_with_json({"token": TOKEN})
    points = [p for i, p in enumerate(_points("2024-01-01T00:00", 24)) if i not in (7, 8)]
    httpserver.expect_request("/v3/historical").respond_with_json(
        {"meta": {"region": "CAISO_NORTH", "units": "lbs_co2_per_mwh"}, "data": points})
    ds = wt.history("caiso", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01 02:00"))
    assert ds.sizes["time"] == 24 and ds["estimated"].values[7:9, 0].all() and ds.attrs["filled"] == 2
