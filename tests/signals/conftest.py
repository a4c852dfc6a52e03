"""Loopback HTTP servers for the provider tests bind to 127.0.0.1 only."""

import pytest


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)
