"""The HTTP cache (hishel on SQLite): fresh replies answer repeated GETs, nothing older than the staleness limit
is served, errors and logins are never cached, and no credential reaches the cache files."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from carbonsync.signals import SignalAuthError
from carbonsync.signals.electricitymaps import ElectricityMaps
from carbonsync.signals.entsoe import Entsoe
from carbonsync.signals.http import HttpCache, RetryPolicy
from carbonsync.signals.watttime import WattTime
from tests.signals.test_entsoe import KEY as ENTSOE_KEY
from tests.signals.test_entsoe import _hourly_a44
from tests.signals.test_watttime import BASIC, PASSWORD, TOKEN, USER, _points

EM_KEY = "em-CACHE-PLANTED-KEY-3e9d"
FAST = RetryPolicy(attempts=2, base_s=0.01, max_s=0.02, timeout_s=1.0)


def _latest_reply() -> dict:
    now = pd.Timestamp.now("UTC").floor("h").tz_localize(None)
    return {"zone": "ES", "carbonIntensity": 150.0, "datetime": now.isoformat() + ".000Z", "isEstimated": False}


def _em(server: HTTPServer, cache: HttpCache) -> ElectricityMaps:
    return ElectricityMaps(EM_KEY, base_url=server.url_for(""), policy=FAST, cache=cache)


def test_a_fresh_reply_answers_again_and_a_stale_one_never(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json(_latest_reply())
    cache = HttpCache(tmp_path / "cache", max_age_s=0.5)
    first = _em(httpserver, cache).latest("ES")
    again = _em(httpserver, cache).latest("ES")   # another client, the same cache file
    assert len(httpserver.log) == 1 and float(again["value"].squeeze()) == float(first["value"].squeeze())
    time.sleep(0.7)
    _em(httpserver, cache).latest("ES")
    assert len(httpserver.log) == 2   # past max_age: fetched anew


def test_errors_are_not_cached(httpserver: HTTPServer, tmp_path):
    cache = HttpCache(tmp_path / "cache", max_age_s=60)
    httpserver.expect_oneshot_request("/v3/carbon-intensity/latest").respond_with_data("expired", status=401)
    with pytest.raises(SignalAuthError):
        _em(httpserver, cache).latest("ES")
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json(_latest_reply())
    assert float(_em(httpserver, cache).latest("ES")["value"].squeeze()) == 150.0


def test_no_key_token_or_password_reaches_the_cache_files(httpserver: HTTPServer, tmp_path):
    cache = HttpCache(tmp_path / "cache", max_age_s=60)
    httpserver.expect_request("/v3/carbon-intensity/latest").respond_with_json(_latest_reply())
    _em(httpserver, cache).latest("ES")
    httpserver.expect_request("/api").respond_with_handler(_hourly_a44)   # ENTSO-E: the token is in the URL
    Entsoe(ENTSOE_KEY, base_url=httpserver.url_for(""), policy=FAST, cache=cache).history(
        "spain", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02"), "price")
    httpserver.expect_request("/login", headers={"Authorization": BASIC}).respond_with_json({"token": TOKEN})
    httpserver.expect_request("/v3/historical").respond_with_json(
        {"meta": {"region": "CAISO_NORTH", "units": "lbs_co2_per_mwh"}, "data": _points("2024-01-01", 12)})
    for _ in range(2):   # WattTime: the login (Basic auth, its reply a bearer token) is never cached
        WattTime(USER, PASSWORD, base_url=httpserver.url_for(""), policy=FAST, cache=cache).history(
            "caiso", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01 01:00"))
    logins = [r for r, _ in httpserver.log if r.path == "/login"]
    historical = [r for r, _ in httpserver.log if r.path == "/v3/historical"]
    assert len(logins) == 2 and len(historical) == 1   # the data reply came from the cache the second time
    files = list((tmp_path / "cache").rglob("*"))
    assert {f.name for f in files if f.suffix == ".sqlite"} == {"electricitymaps.sqlite", "entsoe.sqlite",
                                                                 "watttime.sqlite"}
    blob = b"".join(f.read_bytes() for f in files if f.is_file())
    for secret in (EM_KEY, ENTSOE_KEY, PASSWORD, TOKEN, BASIC.split()[1]):
        assert secret.encode() not in blob, secret


def test_the_cache_comes_from_the_environment(monkeypatch, tmp_path):
    assert HttpCache.from_settings() is None
    monkeypatch.setenv("CARBONSYNC_HTTP_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("CARBONSYNC_HTTP_CACHE_MAX_AGE", "90")
    assert HttpCache.from_settings() == HttpCache(tmp_path / "c", 90.0)
    assert ElectricityMaps(EM_KEY).http.cache == HttpCache(tmp_path / "c", 90.0)
    monkeypatch.setenv("CARBONSYNC_HTTP_CACHE_MAX_AGE", "soon")
    with pytest.raises(ValueError, match="CARBONSYNC_HTTP_CACHE_MAX_AGE must be a number of seconds, got 'soon'"):
        HttpCache.from_settings()
