"""The forecast API under load: requests/s and p50/p90/p99 latency of the real server, against direct reads.

    python benchmarks/serve_load.py [--clients 64 --seconds 30 --seed 0 --pool shared|per-client]
                                    [--store outputs/main/forecast.zarr]
    python benchmarks/serve_load.py --quick        # smoke run: 4 clients, 3 s

**Service.** ``create_app(store, run_dir)`` on uvicorn (as ``carbonsync serve`` runs it: one process, asyncio,
``log_level=warning``, no access log) in a **subprocess** bound to 127.0.0.1 on a free port, so the load
generator does not share its GIL (it does share the machine's cores). Once ``/health`` answers, one asyncio loop
runs ``--clients`` tasks on one ``httpx.AsyncClient`` with a keep-alive pool of as many connections; each task
sends its next request as soon as the previous one is answered (closed loop) for ``--seconds`` after a short
discarded warm-up. The requests are a seeded mix of the three forecast routes, a third each:
``GET /emissions/forecasts/current?location=Z&dataStartAt=..&dataEndAt=..&windowSize=MIN``,
``GET /emissions/bylocations?location=Z1[&location=Z2..]&time=..&toTime=..`` (1-3 zones) and
``GET /zones/{zone}/forecast?start=..&end=..``, over random zones and windows of 1-24 h inside the store's
newest forecast (so every request is answered from the newest init time). Latency is ``time.perf_counter``
around each request, body included; any status but 200, and any transport error, counts as an error (the
first few are kept in ``error_samples``). ``--pool per-client`` gives each task its own ``AsyncClient`` with one
keep-alive connection instead: httpx's shared pool of 64 connections costs the load generator several times
more CPU per request, which on a 2-core machine takes cores from the server (``client_cpu_s`` says how much).
The client drops a connection idle for ``--keepalive-expiry`` (2 s) seconds: with httpx's default of 5 s, equal
to uvicorn's keep-alive timeout, a pooled connection the server is closing is sometimes reused and the request
fails with ``ReadError`` (0-5 per 5,000 requests at 64 clients in our runs).

**Baseline, same run.** The same request mix as direct in-process library calls,
``carbonsync.forecast.reader.latest_forecast(store, zones, start, end, products=[...])`` with each route's
products (carbon intensity; for the zone route renewable share and carbon intensity with their quantiles),
on 1 thread and on ``--clients`` threads, ``--seconds``/3 each, half before the service phase and half after it
(1 thread, N threads | service | N threads, 1 thread), so machine load drifts hit both sides alike. The
direct side only reads the store; the service adds HTTP, validation, its own snapshot checks, the per-route
shaping (rolling windows for ``forecasts/current``) and JSON.

``--store PATH`` serves an existing store (e.g. ``outputs/main/forecast.zarr``, opened read-only); by default a
synthetic store (``write_forecast_store`` of ``synthetic_forecast``: 8 init times 6 h apart x 48 h leads, the
sample world's zones) is built in a temporary directory. The run is bounded: at most ``--max-requests``
requests per phase, every phase stops at its deadline, and an alarm ends the whole run after its budget; the
server subprocess is terminated in ``finally``.

Prints one JSON object: ``service`` (requests/s, latency percentiles in ms, status counts, errors, per route,
client and server CPU seconds), ``direct`` (``1_thread`` and ``n_threads``: calls/s, percentiles, per route),
``ratios`` (service / direct) and ``settings``. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from carbonsync.forecast.export import write_forecast_store  # noqa: E402
from carbonsync.forecast.reader import latest_forecast, reader_for  # noqa: E402
from carbonsync.forecast.synthetic import synthetic_forecast  # noqa: E402
from carbonsync.physics.zones import load_zones  # noqa: E402

ZONES_FILE = ROOT / "configs" / "zones" / "sample_world.yaml"
ROUTES = ("forecasts_current", "bylocations", "zone_forecast")
PLAN = 4096                      # distinct requests in the seeded mix (cycled through)
STARTUP_S = 90.0                 # the server must answer /health within this
KEEPALIVE_EXPIRY_S = 2.0         # client drops idle connections before uvicorn's 5 s keep-alive timeout closes them
MARGIN_S = 30.0                  # slack on top of the phases' own time before the alarm ends the run
SERVER = """
import sys
import uvicorn
from carbonsync.serve.app import create_app
from carbonsync.serve.config import ServeConfig
store, run_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = create_app(store, run_dir, ServeConfig(port=port, log_level="warning"))
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def progress(message: str) -> None:
    print(f"[serve_load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Deadline(Exception):
    """The run's time budget is spent."""


# ------------------------------------------------------------------ the store and the request mix


def build_store(path: Path, inits: int = 8, lead_hours: int = 48) -> Path:
    """A synthetic forecast store: ``inits`` init times 6 h apart, ``lead_hours`` h leads, the sample world's zones."""
    zones = [z.id for z in load_zones(ZONES_FILE)]
    times = pd.date_range("2020-11-18", periods=inits, freq="6h")
    runs = [(t, *synthetic_forecast(t, lead_hours=lead_hours, zones=zones)) for t in times]
    return Path(write_forecast_store(runs, path, {"data_source": "synthetic-benchmark"}))


def store_info(store: str | Path) -> dict[str, Any]:
    """The newest committed forecast's init time, valid-time span, zones and zone products."""
    snap = reader_for(store).snapshot()
    view = snap.groups["zones"]
    init = pd.Timestamp(snap.inits[-1])
    lead = pd.to_timedelta(view.lead.values)
    return {"init_times": len(snap.inits), "newest_init": init, "first": init + lead[0], "last": init + lead[-1],
            "lead_hours": int((lead[-1] - lead[0]) / pd.Timedelta(hours=1)), "zones": list(view.zone_pos),
            "products": sorted(view.arrays), "snapshot_id": snap.id}


@dataclass(frozen=True)
class Request:
    """One request of the mix: its route, URL path and query, and the equivalent direct library call."""

    route: str
    path: str
    params: tuple[tuple[str, str], ...]
    zones: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    products: tuple[str, ...]


def _iso(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def request_mix(info: dict[str, Any], n: int, seed: int) -> list[Request]:
    """``n`` seeded requests, the three routes in equal shares, random zones and 1-24 h windows in the newest forecast."""
    rng = np.random.default_rng(seed)
    zones, hours = info["zones"], info["lead_hours"]
    have = set(info["products"])
    zone_products = tuple(p for p in ("renewable_share", "carbon_intensity") if p in have)
    zone_products += tuple(f"{p}_quantile" for p in zone_products if f"{p}_quantile" in have)
    out = []
    for i in range(n):
        route = ROUTES[i % len(ROUTES)]
        offset = int(rng.integers(0, hours))                       # window start hour in [0, hours - 1]
        length = int(rng.integers(1, min(24, hours - offset) + 1))  # 1-24 h, inside the forecast
        start = info["first"] + pd.Timedelta(hours=offset)
        end = start + pd.Timedelta(hours=length)
        if route == "forecasts_current":
            zone = str(rng.choice(zones))
            window = 60 * int(rng.integers(1, min(4, length + 1) + 1))
            out.append(Request(route, "/emissions/forecasts/current",
                               (("location", zone), ("dataStartAt", _iso(start)), ("dataEndAt", _iso(end)),
                                ("windowSize", str(window))), (zone,), start, end, ("carbon_intensity",)))
        elif route == "bylocations":
            picked = tuple(str(z) for z in rng.choice(zones, size=int(rng.integers(1, 4)), replace=False))
            out.append(Request(route, "/emissions/bylocations",
                               tuple(("location", z) for z in picked) + (("time", _iso(start)), ("toTime", _iso(end))),
                               picked, start, end, ("carbon_intensity",)))
        else:
            zone = str(rng.choice(zones))
            out.append(Request(route, f"/zones/{zone}/forecast", (("start", _iso(start)), ("end", _iso(end))),
                               (zone,), start, end, zone_products))
    return out


# ------------------------------------------------------------------ figures


def latency_summary(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3),
            "mean_ms": round(float(ms.mean()), 3), "max_ms": round(float(ms.max()), 3)}


def by_route(records: list[tuple[str, float]], elapsed: float) -> dict[str, dict]:
    out = {}
    for route in ROUTES:
        lat = [s for r, s in records if r == route]
        out[route] = {"count": len(lat), "per_s": round(len(lat) / elapsed, 2) if elapsed > 0 else None,
                      **latency_summary(lat)}
    return out


def server_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------ the service side


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(store: Path, run_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    """uvicorn serving ``create_app(store, run_dir)`` in a subprocess on a free loopback port; waits for /health."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for attempt in range(3):                      # a free port can be taken between the probe and the bind
        port = free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-c", SERVER, str(store), str(run_dir), str(port)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"{url}/health", timeout=2.0)
                if r.status_code == 200 and r.json().get("store") == "ok":
                    return proc, url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        stop_server(proc)
        progress(f"server did not come up on port {port} (attempt {attempt + 1}): "
                 f"{log_path.read_text(errors='replace')[-500:]}")
    raise RuntimeError(f"the server did not answer /health; its log: {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def _drive(url: str, plan: list[Request], clients: int, seconds: float, max_requests: int,
                 pool: str = "shared", keepalive_expiry: float = KEEPALIVE_EXPIRY_S) -> dict[str, Any]:
    """``clients`` closed-loop tasks for ``seconds`` on one keep-alive pool of ``clients`` connections (``pool=
    "shared"``) or on a client of one connection each (``"per-client"``); every request's route, latency, status."""
    records: list[tuple[str, float]] = []
    statuses: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    samples: list[dict[str, Any]] = []              # the first few errors, as they happened
    size = clients if pool == "shared" else 1
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=keepalive_expiry)

    def new_client() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(10.0))

    t0 = time.perf_counter()
    stop = t0 + seconds

    async def worker(k: int, client: httpx.AsyncClient) -> None:
        i = k
        while time.perf_counter() < stop and len(records) < max_requests:
            req = plan[i % len(plan)]
            i += clients
            tic = time.perf_counter()
            try:
                r = await client.get(req.path, params=req.params)
                statuses[str(r.status_code)] += 1
                if r.status_code != 200 and len(samples) < 10:
                    samples.append({"at_s": round(tic - t0, 3), "route": req.route, "status": r.status_code,
                                    "body": r.text[:300]})
            except httpx.HTTPError as err:
                failures[type(err).__name__] += 1
                statuses["transport_error"] += 1
                if len(samples) < 10:
                    samples.append({"at_s": round(tic - t0, 3), "route": req.route, "error": repr(err),
                                    "cause": repr(err.__cause__ or err.__context__),
                                    "after_s": round(time.perf_counter() - tic, 3)})
            records.append((req.route, time.perf_counter() - tic))

    async def own(k: int) -> None:
        async with new_client() as client:
            await worker(k, client)

    async with new_client() as shared:
        jobs = [worker(k, shared) if pool == "shared" else own(k) for k in range(clients)]
        tasks = [asyncio.create_task(job) for job in jobs]
        done, pending = await asyncio.wait(tasks, timeout=seconds + MARGIN_S)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
        elapsed = time.perf_counter() - t0
    return {"records": records, "statuses": statuses, "failures": failures, "samples": samples, "elapsed": elapsed,
            "unfinished_tasks": len(pending)}


def run_service(url: str, pid: int, plan: list[Request], clients: int, seconds: float, warmup: float,
                max_requests: int, pool: str = "shared", keepalive_expiry: float = KEEPALIVE_EXPIRY_S) -> dict[str, Any]:
    """The load phase (after a discarded warm-up): requests/s, latency, statuses, CPU on both sides."""
    progress(f"service warm-up {warmup:.1f} s ({clients} clients)")
    asyncio.run(_drive(url, plan, clients, warmup, max_requests, pool, keepalive_expiry))
    progress(f"service load {seconds:.1f} s ({clients} clients)")
    cpu0, srv0 = time.process_time(), server_cpu_s(pid)
    out = asyncio.run(_drive(url, plan, clients, seconds, max_requests, pool, keepalive_expiry))
    cpu1, srv1 = time.process_time(), server_cpu_s(pid)
    records, statuses, elapsed = out["records"], out["statuses"], out["elapsed"]
    errors = sum(n for s, n in statuses.items() if s != "200")
    n = len(records)
    server_cpu = None if srv0 is None or srv1 is None else round(srv1 - srv0, 3)
    return {"requests": n, "elapsed_s": round(elapsed, 3), "requests_per_s": round(n / elapsed, 2),
            "ok_per_s": round((n - errors) / elapsed, 2), "errors": errors, "statuses": dict(statuses),
            "transport_errors": dict(out["failures"]), "error_samples": out["samples"],
            "unfinished_tasks": out["unfinished_tasks"],
            **latency_summary([s for _, s in records]), "by_route": by_route(records, elapsed),
            "client_cpu_s": round(cpu1 - cpu0, 3), "server_cpu_s": server_cpu,
            "server_cpu_ms_per_request": round(1e3 * server_cpu / n, 3) if server_cpu is not None and n else None}


# ------------------------------------------------------------------ the direct side


def _direct_call(store: str, req: Request) -> None:
    latest_forecast(store, list(req.zones), req.start, req.end, products=list(req.products))


def run_direct(store: str, plan: list[Request], threads: int, seconds: float, max_calls: int) -> dict[str, Any]:
    """``threads`` threads calling ``latest_forecast`` in a closed loop for ``seconds``: raw records."""
    records: list[tuple[str, float]] = []
    failures: Counter[str] = Counter()
    lock = threading.Lock()
    t0 = time.perf_counter()
    stop = t0 + seconds

    def worker(k: int) -> None:
        i, mine, bad = k, [], Counter()
        while time.perf_counter() < stop and len(records) + len(mine) < max_calls:
            req = plan[i % len(plan)]
            i += threads
            tic = time.perf_counter()
            try:
                _direct_call(store, req)
            except Exception as err:  # noqa: BLE001 - counted and reported, never hidden
                bad[type(err).__name__] += 1
            mine.append((req.route, time.perf_counter() - tic))
        with lock:
            records.extend(mine)
            failures.update(bad)

    cpu0 = time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return {"records": records, "failures": failures, "elapsed": time.perf_counter() - t0,
            "cpu": time.process_time() - cpu0}


def direct_summary(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled figures of a direct configuration's phases (before and after the service phase)."""
    records = [r for p in parts for r in p["records"]]
    elapsed = sum(p["elapsed"] for p in parts)
    failures = sum((p["failures"] for p in parts), Counter())
    n = len(records)
    return {"calls": n, "elapsed_s": round(elapsed, 3), "calls_per_s": round(n / elapsed, 2) if elapsed else None,
            "calls_per_s_by_phase": [round(len(p["records"]) / p["elapsed"], 2) for p in parts],
            "errors": sum(failures.values()), "error_types": dict(failures),
            **latency_summary([s for _, s in records]), "by_route": by_route(records, elapsed),
            "cpu_s": round(sum(p["cpu"] for p in parts), 3)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


# ------------------------------------------------------------------ main


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    if args.store:
        store = Path(args.store)
        if not store.exists():
            raise SystemExit(f"no forecast store at {store}")
        kind = "given"
    else:
        progress(f"building a synthetic store ({args.inits} init times x {args.lead_hours} h) in {tmp}")
        store = build_store(tmp / "forecast.zarr", args.inits, args.lead_hours)
        kind = "synthetic"
    info = store_info(store)
    plan = request_mix(info, PLAN, args.seed)
    progress(f"store {store}: {info['init_times']} init times, newest {info['newest_init']}, "
             f"{info['lead_hours']} h, zones {info['zones']}")
    threads, third = args.clients, args.seconds / 3
    warmup = min(2.0, max(0.5, args.seconds / 10))
    load_before = os.getloadavg()
    run_dir = tmp / "run"
    run_dir.mkdir()
    proc, url = start_server(store, run_dir, tmp / "server.log")
    try:
        progress(f"server pid {proc.pid} at {url}")
        for req in plan[:64]:                               # warm the in-process reader (slab cache, metadata)
            _direct_call(str(store), req)
        direct: dict[str, list[dict]] = {"1": [], "n": []}
        progress(f"direct, 1 thread, {third / 2:.1f} s")
        direct["1"].append(run_direct(str(store), plan, 1, third / 2, args.max_requests))
        progress(f"direct, {threads} threads, {third / 2:.1f} s")
        direct["n"].append(run_direct(str(store), plan, threads, third / 2, args.max_requests))
        service = run_service(url, proc.pid, plan, args.clients, args.seconds, warmup, args.max_requests, args.pool,
                              args.keepalive_expiry)
        progress(f"service: {service['requests_per_s']} requests/s, p50 {service['p50_ms']} ms, "
                 f"p99 {service['p99_ms']} ms, {service['errors']} errors")
        progress(f"direct, {threads} threads, {third / 2:.1f} s")
        direct["n"].append(run_direct(str(store), plan, threads, third / 2, args.max_requests))
        progress(f"direct, 1 thread, {third / 2:.1f} s")
        direct["1"].append(run_direct(str(store), plan, 1, third / 2, args.max_requests))
        alive = proc.poll() is None
    finally:
        stop_server(proc)
    one, many = direct_summary(direct["1"]), direct_summary(direct["n"])
    server_log = (tmp / "server.log").read_text(errors="replace")
    return {
        "service": {**service, "server_alive_at_end": alive, **({"server_log_tail": server_log[-2000:]} if server_log else {})},
        "direct": {"1_thread": {"threads": 1, **one}, "n_threads": {"threads": threads, **many}},
        "ratios": {
            "service_rps_over_direct_n_threads_rps": _ratio(service["requests_per_s"], many["calls_per_s"]),
            "service_rps_over_direct_1_thread_rps": _ratio(service["requests_per_s"], one["calls_per_s"]),
            "service_p50_over_direct_1_thread_p50": _ratio(service["p50_ms"], one["p50_ms"]),
            "service_p50_over_direct_n_threads_p50": _ratio(service["p50_ms"], many["p50_ms"]),
            "service_p99_over_direct_1_thread_p99": _ratio(service["p99_ms"], one["p99_ms"]),
            "service_p99_over_direct_n_threads_p99": _ratio(service["p99_ms"], many["p99_ms"]),
        },
        "settings": {
            "clients": args.clients, "seconds": args.seconds, "warmup_s": warmup, "direct_seconds_each": third,
            "direct_threads": [1, threads], "seed": args.seed, "max_requests": args.max_requests, "quick": args.quick,
            "pool": args.pool, "keepalive_expiry_s": args.keepalive_expiry,
            "store": str(store), "store_kind": kind, "init_times": info["init_times"],
            "newest_init": str(info["newest_init"]), "lead_hours": info["lead_hours"], "zones": info["zones"],
            "request_mix": {r: sum(q.route == r for q in plan) for r in ROUTES}, "distinct_requests": len(plan),
            "window_hours": "1-24", "server": "uvicorn subprocess, 1 process, asyncio, h11, log_level=warning",
            "python": platform.python_version(), "httpx": httpx.__version__, "cpu_count": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (and direct threads)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the service load phase")
    parser.add_argument("--store", default=None, help="serve this forecast store instead of a synthetic one")
    parser.add_argument("--inits", type=int, default=8, help="synthetic store: init times")
    parser.add_argument("--lead-hours", type=int, default=48, help="synthetic store: lead hours")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="cap on requests (calls) per phase")
    parser.add_argument("--pool", choices=("shared", "per-client"), default="shared",
                        help="one httpx pool of --clients keep-alive connections, or one client of 1 connection per task")
    parser.add_argument("--keepalive-expiry", type=float, default=KEEPALIVE_EXPIRY_S,
                        help="seconds an idle client connection is kept (httpx's default is 5, uvicorn's keep-alive 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 clients, 3 s")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 4, 3.0
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients and --seconds must be positive")
    budget = STARTUP_S + 2 * args.seconds + 2 * args.seconds / 3 + MARGIN_S + 120   # + store build

    def alarm(signum: int, frame: Any) -> None:
        raise Deadline(f"serve_load: the run's budget of {budget:.0f} s is spent")

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(int(budget))
    try:
        with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
            figures = run(args, Path(tmp))
    finally:
        signal.alarm(0)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
