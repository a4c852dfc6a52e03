"""Electricity Maps v3 against a real HTTP server on 127.0.0.1: the endpoints, estimated flags, 10-day
past-range requests, plan errors, replies for another zone, redirects and the key kept out of every message."""

from __future__ import annotations

import json
import socket
import threading

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from carbonsync.signals import (
    SignalAuthError,
    SignalFormatError,
    SignalPlanError,
    SignalRangeError,
    SignalUnavailable,
    StaleSignalError,
    get_signal,
)
from carbonsync.signals.electricitymaps import ElectricityMaps
from carbonsync.signals.http import RetryPolicy

KEY = "em-PLANTED-KEY-5b21e0"
FAST = RetryPolicy(attempts=2, base_s=0.01, max_s=0.02, timeout_s=0.5)
HEADERS = {"auth-token": KEY}


def _point(t: pd.Timestamp, value: float = 250.0, estimated: bool = False) -> dict:
    return {"zone": "ES", "carbonIntensity": value, "datetime": t.isoformat() + ".000Z", "isEstimated": estimated}


def _client(server: HTTPServer, **options) -> ElectricityMaps:
    return ElectricityMaps(KEY, base_url=server.url_for(""), policy=FAST, **options)


def test_latest_with_its_estimated_flag(httpserver: HTTPServer):
    now = pd.Timestamp.now("UTC").tz_localize(None).floor("h")
    httpserver.expect_request("/v3/carbon-intensity/latest", headers=HEADERS,
                              query_string={"zone": "ES", "emissionFactorType": "direct"}) \
        .respond_with_json(_point(now, 180.0, estimated=True))
    ds = _client(httpserver).latest("spain")  # the lexicon's id for ES
    assert ds["value"].item() == 180.0 and bool(ds["estimated"].item()) and ds.attrs["units"] == "g CO2e/kWh"
    assert isinstance(get_signal("electricitymaps", api_key=KEY), ElectricityMaps)


def test_a_stale_latest_value_is_named(httpserver: HTTPServer):
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json(_point(pd.Timestamp("2020-01-01")))
    with pytest.raises(StaleSignalError, match="past the limit of 0 days 03:00:00"):
        _client(httpserver).latest("ES")


def test_past_range_is_split_into_10_day_requests(httpserver: HTTPServer):
    seen = []

    def handler(request):
        start, end = pd.Timestamp(request.args["start"]).tz_localize(None), pd.Timestamp(request.args["end"]).tz_localize(None)
        seen.append((start, end))
        data = [_point(t) for t in pd.date_range(start, end, freq="1D", inclusive="left")]
        return Response(json.dumps({"zone": "ES", "data": data}), content_type="application/json")

    httpserver.expect_request("/v3/carbon-intensity/past-range").respond_with_handler(handler)
    ds = _client(httpserver).history("ES", "2024-01-01", "2024-01-26")
    assert [s.day for s, _ in seen] == [1, 11, 21] and seen[-1][1] == pd.Timestamp("2024-01-26")
    assert ds.sizes["time"] == 25


def test_forecast_is_cut_to_the_horizon(httpserver: HTTPServer):
    t0 = pd.Timestamp("2024-05-01T12:00")
    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_json({
        "zone": "ES", "updatedAt": "2024-05-01T11:55:00.000Z",
        "forecast": [{"carbonIntensity": 200 + i, "datetime": (t0 + pd.Timedelta(hours=i)).isoformat() + "Z"}
                     for i in range(24)]})
    fc = _client(httpserver).forecast("ES", pd.Timedelta(hours=6))
    assert fc.sizes["time"] == 6 and pd.Timestamp(fc.issued_at.values[0]) == pd.Timestamp("2024-05-01T11:55")
    with pytest.raises(SignalFormatError, match="only its current forecast"):
        _client(httpserver).forecast("ES", pd.Timedelta(hours=6), issued_before=t0)


@pytest.mark.parametrize("status, body, error, message", [
    (401, '{"error": "Invalid token"}', SignalAuthError, "HTTP 401"),
    (403, '{"error": "Your plan does not include access to the forecast endpoint"}', SignalPlanError, "plan"),
    (404, '{"error": "Zone XX does not exist"}', SignalPlanError, "HTTP 404"),
    (200, '{"zone": "FR", "forecast": [], "updatedAt": "2024-05-01T00:00:00Z"}', SignalFormatError,
     "zone 'FR', not 'ES'"),
    (200, '{"zone": "ES", "forecast": [{"carbonIntensity": 200}], "updatedAt": "2024-05-01T00:00:00Z"}',
     SignalFormatError, "malformed"),
    (200, '{"zone": "ES", "forecast": [{"carbonIntensity": 321500, "datetime": "2024-05-01T00:00:00Z"}], '
          '"updatedAt": "2024-05-01T00:00:00Z"}', SignalRangeError, "321500 g CO2e/kWh .* outside"),
    (200, '{"zone": "ES", "forec', SignalFormatError, "not JSON"),
])
def test_error_replies_are_named(httpserver: HTTPServer, status, body, error, message):
    httpserver.expect_request("/v3/carbon-intensity/forecast").respond_with_data(body, status=status,
                                                                                 content_type="application/json")
    with pytest.raises(error, match=message) as caught:
        _client(httpserver).forecast("ES", pd.Timedelta(hours=6))
    assert "provider electricitymaps" in str(caught.value) and KEY not in str(caught.value)


def test_the_key_never_leaves_for_another_host_or_reaches_a_message(httpserver: HTTPServer, monkeypatch):
    monkeypatch.delenv("ELECTRICITYMAPS_API_KEY", raising=False)
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_data(
            "", status=307, headers={"Location": other.url_for("/v3/carbon-intensity/latest")})
        with pytest.raises(SignalFormatError, match="redirected to another host"):
            _client(httpserver).latest("ES")
        assert not other.log
    finally:
        other.stop()
    httpserver.clear()
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_data(f"token {KEY} is invalid", status=401)
    with pytest.raises(SignalAuthError) as caught:
        _client(httpserver).latest("ES")
    assert KEY not in str(caught.value) + repr(_client(httpserver)) and "***" in str(caught.value)
    with pytest.raises(SignalAuthError, match="no API key"):
        ElectricityMaps("", base_url=httpserver.url_for("")).latest("ES")


def test_a_key_echoed_in_the_reason_phrase_is_masked(httpserver: HTTPServer):
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_response(
        Response("denied", status=f"403 Forbidden for token {KEY}"))
    with pytest.raises(SignalPlanError) as caught:
        _client(httpserver).latest("ES")
    assert "403 Forbidden for token ***" in str(caught.value) and KEY not in str(caught.value)


class _RawServer:
    """A one-shot TCP server on 127.0.0.1 that answers every connection with ``reply`` and hangs up."""

    def __init__(self, reply: bytes) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.reply, self.hits = reply, 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                self.hits += 1
                if self.reply:
                    conn.sendall(self.reply)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/"

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("reply, message", [
    (b"", "connection failed: RemoteProtocolError"),   # closed without a reply (RemoteDisconnected in urllib)
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"zone\": \"ES\", \"carb",
     "connection failed: RemoteProtocolError"),         # body shorter than its Content-Length (IncompleteRead)
])
def test_dropped_connections_and_short_bodies_are_named_after_the_retries(reply, message):
    server = _RawServer(reply)
    try:
        client = ElectricityMaps(KEY, base_url=server.url, policy=FAST)
        with pytest.raises(SignalUnavailable, match=message) as caught:
            client.latest("ES")
        assert server.hits == FAST.attempts and KEY not in str(caught.value)
    finally:
        server.close()


def test_direct_or_lifecycle_intensity_is_asked_for_and_checked(httpserver: HTTPServer):
    now = pd.Timestamp.now("UTC").tz_localize(None).floor("h")
    reply = {**_point(now, 410.0), "emissionFactorType": "lifecycle"}
    httpserver.expect_request("/v3/carbon-intensity/latest", query_string={"zone": "ES", "emissionFactorType": "lifecycle"}
                              ).respond_with_json(reply)
    ds = _client(httpserver, emission_factor="lifecycle").latest("ES")
    assert ds["value"].item() == 410.0 and ds.attrs["emission_factor"] == "lifecycle"
    httpserver.clear()
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json(reply)   # ignores what was asked
    with pytest.raises(SignalFormatError, match="gives lifecycle carbon intensity, not the direct asked for"):
        _client(httpserver).latest("ES")
    with pytest.raises(ValueError, match="emission_factor must be one of"):
        ElectricityMaps(KEY, emission_factor="marginal")


def test_v4_paths_and_its_data_list_for_forecasts(httpserver: HTTPServer):
    now = pd.Timestamp.now("UTC").tz_localize(None).floor("h")
    httpserver.expect_request("/v4/carbon-intensity/forecast").respond_with_json(
        {"zone": "ES", "updatedAt": now.isoformat() + "Z", "data": [_point(now + pd.Timedelta(hours=h)) for h in range(6)]})
    fc = _client(httpserver, api_version="v4").forecast("ES", pd.Timedelta(hours=4))
    assert fc.sizes["time"] == 4 and fc.attrs["endpoint"] == "/v4/carbon-intensity/forecast"


def test_short_gaps_in_a_history_are_filled_and_flagged(httpserver: HTTPServer):
    hours = [h for h in range(24) if h not in (5, 6)]   # two missing hours
    httpserver.expect_request("/v3/carbon-intensity/past-range").respond_with_json(
        {"zone": "ES", "data": [_point(pd.Timestamp("2024-01-01") + pd.Timedelta(hours=h), 100.0 + h) for h in hours]})
    ds = _client(httpserver, max_gap=2).history("ES", "2024-01-01", "2024-01-02")
    assert ds.sizes["time"] == 24 and ds["value"].values[5:7, 0].tolist() == [105.0, 106.0]
    assert ds["estimated"].values[:, 0].sum() == 2 and ds.attrs["filled"] == 2
    unfilled = _client(httpserver).history("ES", "2024-01-01", "2024-01-02")
    assert unfilled.sizes["time"] == 22
