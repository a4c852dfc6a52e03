"""``carbonsync serve run_dir=...`` on a finished run: a real process, no other step needed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import free_port


@pytest.mark.slow
def test_carbonsync_serve_works_on_a_finished_run(tiny_run):
    port = free_port()
    env = {**os.environ, "CARBONSYNC_SERVE_TOKEN": ""}
    proc = subprocess.Popen([sys.executable, "-m", "carbonsync.cli", "serve", "size=tiny", f"run_dir={tiny_run.run_dir}",
                             f"serve.port={port}", "progress=false"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the service did not come up within 60 s"
                time.sleep(0.3)
        assert health["store"] == "ok" and health["init_time"]
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "CarbonSync" in page.text
        dashboard = httpx.get(f"{base}/api/dashboard", timeout=30).json()
        assert dashboard["zones"] and dashboard["placement"]["rows"]           # the run's own queue, placed
        zone = dashboard["zones"][0]["zone"]
        (fc,) = httpx.get(f"{base}/emissions/forecasts/current", params={"location": zone}, timeout=10).json()
        assert fc["forecastData"] and fc["optimalDataPoints"]
        assert "carbonsync_forecast_store_up 1.0" in httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
