"""Load on the service's forecast API: requests/s and latency with many concurrent clients on loopback, against
direct ``latest_forecast`` calls for the same requests in the same run.

    python benchmarks/serve_load.py [--clients 64 --seconds 30] [--store PATH] [--quick]

The service runs in its own process (uvicorn on 127.0.0.1, a free port; ``carbonsync.serve.create_app``) so the
load generator does not share its interpreter. ``--clients`` asyncio tasks share one httpx connection pool and
send, for ``--seconds``, a seeded mix of ``/emissions/forecasts/current`` (a 3-hour window), ``/emissions/
bylocations`` and ``/zones/{zone}/forecast`` over random zones and 6-24 h windows inside the newest forecast.
Baseline: the same mix as direct ``latest_forecast`` calls in this process (one thread). ``--store``: an
existing forecast store; default: a synthetic one (8 init times, 48 h leads, four zones) in a
temporary directory. Prints one JSON object: ``service`` and ``direct`` (requests, errors, requests/s, p50,
p90, p99 in ms), ``ratios`` and ``settings``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from carbonsync.forecast.export import write_forecast_store
from carbonsync.forecast.reader import latest_forecast, reader_for
from carbonsync.forecast.synthetic import synthetic_forecast

SERVER = """
import sys, uvicorn
from carbonsync.serve.app import create_app
uvicorn.run(create_app(sys.argv[1], sys.argv[2]), host="127.0.0.1", port=int(sys.argv[3]), log_level="warning",
            access_log=False)
"""


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_store(directory: Path) -> Path:
    inits = pd.date_range("2020-11-20", periods=8, freq="6h")
    runs = [(t, *synthetic_forecast(t, lead_hours=48)) for t in inits]
    return Path(write_forecast_store(runs, directory / "forecast.zarr", {"data_source": "synthetic-benchmark"}))


def request_mix(store: Path, n: int, seed: int = 0) -> list[tuple[str, str, pd.Timestamp, pd.Timestamp]]:
    """``n`` (route kind, zone, start, end) inside the newest forecast."""
    snap = reader_for(store).snapshot()
    zones = list(snap.groups["zones"].zone_pos)
    init, lead = pd.Timestamp(snap.inits[-1]), snap.groups["zones"].lead
    span_h = int((lead[-1] - lead[0]) / pd.Timedelta(hours=1))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hours = int(rng.integers(6, 25))
        start = init + pd.Timedelta(hours=int(rng.integers(0, max(span_h - hours, 1))))
        out.append((str(rng.choice(["current", "bylocations", "zone"])), str(rng.choice(zones)), start,
                    start + pd.Timedelta(hours=hours)))
    return out


def url_of(kind: str, zone: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[str, dict]:
    window = {"current": ("dataStartAt", "dataEndAt"), "bylocations": ("time", "toTime"), "zone": ("start", "end")}[kind]
    params = {window[0]: start.isoformat(), window[1]: end.isoformat()}
    if kind == "current":
        return "/emissions/forecasts/current", {"location": zone, "windowSize": 180, **params}
    if kind == "bylocations":
        return "/emissions/bylocations", {"location": zone, **params}
    return f"/zones/{zone}/forecast", params


def summary(latencies: list[float], errors: int, seconds: float) -> dict:
    ms = np.asarray(latencies) * 1000.0
    return {"requests": len(latencies), "errors": errors, "requests_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "seconds": round(seconds, 2)}


async def load(base: str, mix: list, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                path, params = url_of(*mix[i % len(mix)])
                i += clients
                tic = time.perf_counter()
                try:
                    r = await client.get(path, params=params)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - tic)
                errors += not ok
        tic = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        return summary(latencies, errors, time.perf_counter() - tic)


def direct(store: Path, mix: list, seconds: float) -> dict:
    latencies, i = [], 0
    stop = time.perf_counter() + seconds
    tic = time.perf_counter()
    while time.perf_counter() < stop:
        kind, zone, start, end = mix[i % len(mix)]
        i += 1
        t = time.perf_counter()
        products = ["renewable_share", "carbon_intensity"] if kind == "zone" else ["carbon_intensity"]
        latest_forecast(store, [zone], start, end, products=products)
        latencies.append(time.perf_counter() - t)
    return summary(latencies, 0, time.perf_counter() - tic)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--store", type=Path, default=None, help="an existing forecast store (default: synthetic)")
    parser.add_argument("--quick", action="store_true", help="4 clients for 3 s (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds = 4, 3.0
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or synthetic_store(Path(tmp))
        mix = request_mix(store, 4096)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(store), tmp, str(port)],
                                  env={**os.environ, "CARBONSYNC_SERVE_TOKEN": ""})
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the service did not start")
                time.sleep(0.2)
            asyncio.run(load(base, mix, min(args.clients, 4), 1.0))      # warm-up
            log(f"service: {args.clients} clients for {args.seconds:g} s on {base}")
            service = asyncio.run(load(base, mix, args.clients, args.seconds))
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        log(f"direct latest_forecast calls for {args.seconds:g} s")
        direct(store, mix, 1.0)                                               # warm-up
        baseline = direct(store, mix, args.seconds)
    result = {"service": service, "direct": baseline,
              "ratios": {"service_rps_over_direct": round(service["requests_per_s"] / baseline["requests_per_s"], 3),
                         "service_p50_over_direct": round(service["p50_ms"] / baseline["p50_ms"], 2)},
              "settings": {"clients": args.clients, "seconds": args.seconds, "store": str(args.store or "synthetic"),
                           "cpus": os.cpu_count()}}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
