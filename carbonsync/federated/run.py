"""Drive a replayed multi-site run on Flower, and account for it.

:func:`run_flower` is the driver of one run: it starts a SuperLink, writes the run's spec, submits the
Flower app (``flwr run``), then follows the sites' plans on the replay clock, starting each site's SuperNode
when its provisioning begins and stopping it when the node is released, logging every window and node event
with trace and wall time, until the ServerApp reports the budget done (or the trace ends). A node that dies
while its plan says it is up is started again (the server dropped its round's work).

:func:`curtailment_plans` and :func:`continuous_plans` build the sites' plans (windows from a signal, or
always on); :func:`run_energy` integrates the sites' power over their plans up to the run's finish against
their signals.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from carbonsync.core.errors import ConfigError
from carbonsync.core.logs import get_logger
from carbonsync.federated.accounting import EventLog, PowerModel, SiteEnergy, TraceClock, site_energy
from carbonsync.federated.provisioner import FlowerError, Provisioner, SuperLinkProcess, get_provisioner
from carbonsync.federated.spec import RunSpec
from carbonsync.federated.windows import (
    Forecast,
    SiteInterval,
    SitePlan,
    WindowConfig,
    signal_series,
    site_plan,
)

__all__ = ["APP_PYPROJECT", "NodeAction", "continuous_plans", "curtailment_plans", "plan_events", "run_energy",
           "run_flower", "write_app"]

log = get_logger(__name__)

FINAL = ("done", "out_of_trace", "failed")

APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "carbonsync-curtailment"
version = "1.0.0"
description = "CarbonSync: training that follows renewable-curtailment windows across sites"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "carbonsync"

[tool.flwr.app.components]
serverapp = "carbonsync.federated.flower:server_app"
clientapp = "carbonsync.federated.flower:client_app"

[tool.flwr.app.config]
spec = ""
"""


def write_app(directory: str | Path) -> Path:
    """The Flower app directory (a ``pyproject.toml`` naming CarbonSync's ServerApp and ClientApp)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(APP_PYPROJECT)
    return directory


# ------------------------------------------------------------------------------------- plans


def curtailment_plans(signal: xr.Dataset, sites: Iterable[str], windows: WindowConfig,
                      forecasts: dict[str, Forecast] | None = None,
                      end: pd.Timestamp | None = None) -> dict[str, SitePlan]:
    """Each site's windows and node lifecycle from its zone of ``signal`` (sites are zone names)."""
    forecasts = forecasts or {}
    return {site: site_plan(site, signal_series(signal, site), windows, forecasts.get(site), end) for site in sites}


def continuous_plans(sites: Iterable[str], start: pd.Timestamp, end: pd.Timestamp,
                     provisioning_s: float = 0.0) -> dict[str, SitePlan]:
    """Every site provisioned at ``start`` and training from ready to ``end`` (continuous training)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    ready = start + pd.Timedelta(seconds=provisioning_s)
    plans = {}
    for site in sites:
        intervals = ([SiteInterval(start, ready, "provisioning")] if ready > start else []) + [
            SiteInterval(ready, end, "train")]
        plans[site] = SitePlan(site, band=[(start, end)], intervals=intervals)
    return plans


@dataclass(frozen=True)
class NodeAction:
    time: pd.Timestamp
    action: str       # start, stop
    site: str


def node_actions(plans: dict[str, SitePlan]) -> list[NodeAction]:
    """Start each node when its provisioning begins, stop it when it is released."""
    actions = []
    for site, plan in plans.items():
        for start, end in plan.provisioned():
            actions += [NodeAction(start, "start", site), NodeAction(end, "stop", site)]
    return sorted(actions, key=lambda a: (a.time, a.action != "stop"))


def plan_events(plans: dict[str, SitePlan]) -> list[tuple[pd.Timestamp, str, dict[str, Any]]]:
    """The window and node events of the plans, in time order: WINDOW_OPEN/CLOSE, PROVISION, READY, IDLE,
    TRAIN, RELEASE, SKIP."""
    out: list[tuple[pd.Timestamp, str, dict[str, Any]]] = []
    for site, plan in plans.items():
        for start, end in plan.band:
            out += [(start, "WINDOW_OPEN", {"site": site}), (end, "WINDOW_CLOSE", {"site": site})]
        for t, why in plan.skipped:
            out.append((t, "SKIP", {"site": site, "why": why}))
        for start, end in plan.provisioned():
            out += [(start, "PROVISION", {"site": site}), (end, "RELEASE", {"site": site})]
        for interval in plan.intervals:
            if interval.state != "provisioning":
                out.append((interval.start, "READY" if interval.state == "train" else "IDLE",
                            {"site": site, "state": interval.state}))
    return sorted(out, key=lambda e: e[0])


# ------------------------------------------------------------------------------------- energy


def run_energy(plans: dict[str, SitePlan], finish: pd.Timestamp, signals: dict[str, pd.Series], power: PowerModel,
               bands: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] | None = None) -> dict[str, SiteEnergy]:
    """Each site's energy and emissions over its plan up to ``finish`` (every node is released then); the
    energy inside ``bands`` (default: the plans' own bands) is counted apart."""
    out = {}
    for site, plan in plans.items():
        intervals = [(i.start, min(i.end, finish), i.state, None) for i in plan.intervals if i.start < finish]
        band = (bands or {}).get(site, plan.band)
        out[site] = site_energy(intervals, signals[site], power, band)
    return out


# ------------------------------------------------------------------------------------- the driver


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


Tick = Callable[[Provisioner, pd.Timestamp, EventLog], None]


def run_flower(spec: RunSpec, *, provisioner: str = "subprocess", lead_s: float = 2.0, poll_s: float = 0.2,
               on_tick: Tick | None = None, timeout_margin_s: float = 180.0) -> dict[str, Any]:
    """Run ``spec`` on a real Flower deployment on loopback; the ServerApp's result (``result.json``).

    ``spec.clock`` gets its wall start here (``lead_s`` from now); ``on_tick(provisioner, trace_now, events)``
    is called at every poll (tests use it to kill a node mid-round).
    """
    directory = spec.directory
    directory.mkdir(parents=True, exist_ok=True)
    if spec.result_path.exists() and (_read_result(spec.result_path) or {}).get("status") in FINAL:
        raise ConfigError(f"{directory} holds a finished run; use a new run directory")
    plans = spec.site_plans()
    app = write_app(directory / "app")
    with SuperLinkProcess(directory / "flower") as link:
        nodes = get_provisioner(provisioner, link.address, directory / "flower" / "nodes")
        clock = TraceClock(spec.clock["trace_start"], spec.clock["speed"], time.time() + lead_s)
        spec.clock = clock.record()
        spec.save()
        events = spec.event_log()
        run_id = link.submit(app, {"spec": str(spec.path.resolve())})
        events.log("SUBMITTED", run_id=run_id, run=spec.name)
        actions, notes = node_actions(plans), plan_events(plans)
        hard_deadline = clock.wall_at(spec.end_time) + timeout_margin_s
        result: dict[str, Any] | None = None
        try:
            while True:
                now = clock.now()
                while notes and notes[0][0] <= now:
                    at, event, details = notes.pop(0)
                    events.log(event, trace_time=at, **details)
                while actions and actions[0].time <= now:
                    action = actions.pop(0)
                    (nodes.start if action.action == "start" else nodes.stop)(action.site)
                for site in getattr(nodes, "dead", lambda: [])():
                    if plans[site].state_at(now) != "off":
                        events.log("NODE_RESTART", site=site)
                        nodes.start(site)
                if on_tick is not None:
                    on_tick(nodes, now, events)
                result = _read_result(spec.result_path)
                if result is not None and result.get("status") in FINAL:
                    break
                if time.time() > hard_deadline:
                    raise FlowerError(f"the run did not finish by the end of the trace (+{timeout_margin_s:.0f} s "
                                      f"wall); see {link.log_path} and {spec.events_path}")
                time.sleep(poll_s)
        finally:
            finish = clock.now()
            for site in nodes.running():
                events.log("RELEASE", site=site, why="run ended")
            nodes.close()
    if result["status"] == "failed":
        raise FlowerError(f"the ServerApp failed: {result.get('error')}; see {directory / 'flower' / 'superlink.log'}")
    result["driver_finished_at"] = finish.isoformat()
    return result
