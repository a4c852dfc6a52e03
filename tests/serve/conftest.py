"""A small served run: a forecast store of synthetic forecasts, a queue and sites, and one controller's decision
log written by the real decision engine on a replayed price and carbon trace (it pauses and resumes)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient

from carbonsync.control import Decision, DecisionLog, PowerProfile, State, get_policy, replay_policy
from carbonsync.control.decision import Action, Reason
from carbonsync.forecast.export import write_forecast_store
from carbonsync.forecast.synthetic import synthetic_forecast
from carbonsync.serve.app import create_app
from carbonsync.serve.config import ServeConfig
from tests.helpers.control import daily_cycle_trace

INITS = pd.date_range("2020-08-25", periods=4, freq="6h")
ZONES = ("north_sea", "iberia", "sahara", "nordics")
SITES = [{"id": "madrid", "zone": "iberia", "gpus": 64, "pue": 1.2, "price": 60.0},
         {"id": "oslo", "zone": "nordics", "gpus": 64, "pue": 1.1, "price": 40.0}]
QUEUE = [{"id": f"job{i}", "gpus": 8, "hours": 6, "earliest_start": "2020-08-25T18:00",
          "deadline": "2020-08-26T23:00", "regions": [], "home": "madrid"} for i in range(4)]


def write_store(path: Path, inits=INITS) -> Path:
    runs = [(t, *synthetic_forecast(t, lead_hours=48, zones=ZONES)) for t in inits]
    return write_forecast_store(runs, path, {"data_source": "synthetic-test"})


def engine_decisions() -> list[Decision]:
    """The forecast engine's decisions for a 24 h job on a two-week daily price and carbon cycle."""
    trace = daily_cycle_trace("2020-08-17", days=10)
    times = trace.index
    start = times[24 * 8]

    def forecast(now):
        return trace[(trace.index > now) & (trace.index <= now + pd.Timedelta(hours=48))]

    result = replay_policy(get_policy("engine_forecast", PowerProfile(), interval=pd.Timedelta("1h")), trace, 24.0,
                           start, start + pd.Timedelta(hours=36), forecast_fn=forecast, keep_decisions=True)
    return result.decisions


def log_decisions(log: DecisionLog, decisions: list[Decision]) -> None:
    energy = 0.0
    for d in decisions:
        draw = 0.0 if not d.run else (d.power_w or 0.0) * 0.9
        energy += draw * 3600.0
        log.append(d, step=0, draw_w=draw, energy_j=energy, actuator="dry-run",
                   signals={"price": {"age_s": 600.0, "units": "USD/MWh"}, "carbon": {"age_s": 300.0,
                                                                                      "units": "g CO2e/kWh"}})


@pytest.fixture(scope="session")
def served_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("served_run")
    write_store(run_dir / "forecast.zarr")
    decisions = engine_decisions()
    assert any(not d.run for d in decisions), "the fixture needs a pause"
    log_decisions(DecisionLog(run_dir / "control" / "resnet.jsonl"), decisions)
    return run_dir


def make_app(run_dir: Path, **serve: object):
    return create_app(run_dir / "forecast.zarr", run_dir, ServeConfig(**serve), queue=QUEUE, sites=SITES)


@pytest.fixture
def client(served_run):
    with TestClient(make_app(served_run, refresh_s=0.2)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    run_dir: Path
    log: DecisionLog

    def append_decision(self, state: str) -> str:
        """Append one decision in ``state`` to the controller's log; returns its sentence."""
        now = pd.Timestamp.now().floor("s")
        s = State(state)
        sentence = f"{now:%Y-%m-%d %H:%M}: live test decision ({s.value}) because the test asked for it"
        self.log.append(Decision(time=now, state=s, previous=None, action=Action.HOLD, reason=Reason.START,
                                 power_w={"green": 250.0, "yellow": 150.0, "red": 100.0}[s.value],
                                 run=s != State.RED, sentence=sentence), draw_w=120.0, energy_j=1.0)
        return sentence


def start_server(app, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return server, thread


@pytest.fixture
def live_server(served_run, tmp_path):
    """A real uvicorn server on 127.0.0.1 serving a copy of the run (so appended decisions stay in this test)."""
    run_dir = tmp_path / "run"
    (run_dir / "control").mkdir(parents=True)
    (run_dir / "forecast.zarr").symlink_to(served_run / "forecast.zarr")
    log = DecisionLog(run_dir / "control" / "resnet.jsonl")
    log_decisions(log, engine_decisions())
    port = free_port()
    server, thread = start_server(make_app(run_dir, refresh_s=0.5), port)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}/", run_dir, log)
    finally:
        server.should_exit = True
        thread.join(10)
