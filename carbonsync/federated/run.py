"""Drive a replayed multi-site run on Flower, and account for it.

:func:`run_flower` is the driver of one run: it starts a SuperLink, writes the run's spec, submits the
Flower app (``flwr run``), then follows the sites' plans on the replay clock (which the ServerApp advances),
starting each site's SuperNode when its provisioning begins and stopping it when the node is released,
logging every window and node event with trace and wall time, until the ServerApp reports the budget done
(or the trace ends). A node that dies while its plan says it is up is started again (the server dropped its
round's work).

:func:`curtailment_plans` and :func:`continuous_plans` build the sites' plans (windows from a signal, or
always on); :func:`run_energy` integrates the sites' power (training while they trained, idle while
provisioned and waiting) up to the run's finish against their signals.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from carbonsync.core.errors import ConfigError
from carbonsync.core.logs import get_logger
from carbonsync.federated.accounting import EventLog, PowerModel, SiteEnergy, site_energy
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
from carbonsync.federated.workload import get_workload

__all__ = ["APP_PYPROJECT", "continuous_plans", "curtailment_plans", "plan_events", "run_energy", "run_flower",
           "train_spans", "write_app"]

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


def train_spans(rounds: Iterable[dict[str, Any]]) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """Each site's training stretches in a run's round records (a dropped site trained to the round's end)."""
    out: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for record in rounds:
        start = pd.Timestamp(record["trace_start"])
        for site, end in record.get("site_end", {}).items():
            if pd.Timestamp(end) > start:
                out.setdefault(site, []).append((start, pd.Timestamp(end)))
    return out


def _split(start: pd.Timestamp, end: pd.Timestamp, spans: list[tuple[pd.Timestamp, pd.Timestamp]]):
    """``[start, end)`` cut into ``(a, b, inside_spans)`` pieces."""
    cuts = sorted({start, end, *(t for span in spans for t in span if start < t < end)})
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        yield a, b, any(lo <= a and b <= hi for lo, hi in spans)


def run_energy(plans: dict[str, SitePlan], trained: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]],
               finish: pd.Timestamp, signals: dict[str, pd.Series], power: PowerModel,
               bands: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] | None = None) -> dict[str, SiteEnergy]:
    """Each site's energy and emissions up to ``finish`` (every node is released then): ``train_kw`` while it
    trained (``trained``, from :func:`train_spans`), ``idle_kw`` while provisioning or provisioned and waiting;
    the energy inside ``bands`` (default: the plans' own bands) is counted apart."""
    out = {}
    for site, plan in plans.items():
        spans = trained.get(site, [])
        intervals: list[tuple[pd.Timestamp, pd.Timestamp, str, float | None]] = []
        for interval in plan.intervals:
            end = min(interval.end, finish)
            if interval.start >= end:
                continue
            if interval.state == "provisioning":
                intervals.append((interval.start, end, "provisioning", None))
                continue
            intervals += [(a, b, "train" if inside else "idle", None) for a, b, inside in _split(interval.start, end, spans)]
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

UP = ("provisioning", "train", "idle")


def run_flower(spec: RunSpec, *, provisioner: str = "subprocess", poll_s: float = 0.2,
               on_tick: Tick | None = None, timeout_s: float = 6 * 3600.0,
               threads_per_node: int | None = None) -> dict[str, Any]:
    """Run ``spec`` on a real Flower deployment on loopback; the ServerApp's result (``result.json``).

    The driver follows the replay clock that the ServerApp advances: a site's SuperNode runs while its plan
    says the node is up (provisioning, training or idle) and is stopped when it is released; a node that
    died while its site is up is started again. ``on_tick(provisioner, trace_now, events)`` is called at every
    poll (tests use it to kill a node mid-round). ``timeout_s`` bounds the whole run in wall seconds. Nodes
    share this machine's cores: each gets ``threads_per_node`` intra-op threads (default: the cores divided
    among the sites), as oversubscribed OpenMP threads spin in the kernel.
    """
    directory = spec.directory
    directory.mkdir(parents=True, exist_ok=True)
    if spec.result_path.exists() and (_read_result(spec.result_path) or {}).get("status") in FINAL:
        raise ConfigError(f"{directory} holds a finished run; use a new run directory")
    plans = spec.site_plans()
    get_workload(spec.workload, **spec.workload_options)    # its data written once, before any node reads it
    app = write_app(directory / "app")
    spec.save()
    clock, events = spec.replay_clock(), spec.event_log()
    give_up = time.time() + timeout_s
    with SuperLinkProcess(directory / "flower") as link:
        threads = threads_per_node or max(1, (os.cpu_count() or 1) // len(spec.sites))
        nodes = get_provisioner(provisioner, link.address, directory / "flower" / "nodes",
                                env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
        try:
            run_id = link.submit(app, {"spec": str(spec.path.resolve())})
            events.log("SUBMITTED", run_id=run_id, run=spec.name)
            notes = plan_events(plans)
            while True:
                now = clock.now()
                while notes and notes[0][0] <= now:
                    at, event, details = notes.pop(0)
                    events.log(event, trace_time=at, **details)
                running, dead = set(nodes.running()), set(getattr(nodes, "dead", list)())
                for site, plan in plans.items():
                    up = plan.state_at(now) in UP
                    if up and site not in running:
                        events.log("NODE_RESTART" if site in dead else "NODE_START", site=site)
                        nodes.start(site)
                    elif not up and (site in running or site in dead):
                        events.log("NODE_STOP", site=site)
                        nodes.stop(site)
                if on_tick is not None:
                    on_tick(nodes, now, events)
                result = _read_result(spec.result_path)
                if result is not None and result.get("status") in FINAL:
                    break
                if time.time() > give_up:
                    raise FlowerError(f"the run did not finish in {timeout_s:.0f} s (wall); see {link.log_path} "
                                      f"and {spec.events_path}")
                time.sleep(poll_s)
        finally:
            for site in nodes.running():
                events.log("NODE_STOP", site=site, why="run ended")
            nodes.close()
    if result["status"] == "failed":
        raise FlowerError(f"the ServerApp failed: {result.get('error')}; see {link.log_path}")
    return result
