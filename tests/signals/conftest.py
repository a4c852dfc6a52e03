"""Loopback HTTP servers for the provider tests bind to 127.0.0.1 only."""

import pytest


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


@pytest.fixture(autouse=True)
def no_http_cache_from_the_environment(monkeypatch):
    """Providers read CARBONSYNC_HTTP_CACHE; the tests choose their cache themselves."""
    monkeypatch.delenv("CARBONSYNC_HTTP_CACHE", raising=False)
    monkeypatch.delenv("CARBONSYNC_HTTP_CACHE_MAX_AGE", raising=False)
