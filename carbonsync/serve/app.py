"""The CarbonSync service: one process that serves the forecast store and placement over HTTP, the running
controllers' state as Prometheus metrics, and a live dashboard.

``create_app(store, run_dir, ...)`` builds the FastAPI app; :func:`serve` runs it on uvicorn
(``carbonsync serve run_dir=DIR serve.port=PORT``; 127.0.0.1 by default). Routes:

- **carbon-aware-sdk shaped** (Green Software Foundation Web API; the values are CarbonSync's forecast carbon
  intensity in g CO2e/kWh): ``GET /emissions/bylocations`` (``location`` repeated, ``time``, ``toTime``),
  ``GET /emissions/bylocations/best``, ``GET /emissions/forecasts/current`` (``location``, ``dataStartAt``,
  ``dataEndAt``, ``windowSize`` in minutes → ``forecastData``, ``optimalDataPoints``), ``GET /locations``;
- **CarbonSync's own**: ``GET /zones``, ``GET /zones/{zone}/forecast`` (products with their quantiles over a
  window), ``POST /schedule`` (a job list → the placement with its explanations; bearer token from the
  environment variable ``serve.token_env`` when set), ``GET /controllers``, ``GET /controllers/{job}/decisions``;
- ``GET /metrics`` (:mod:`carbonsync.serve.metrics`), ``GET /health``;
- the dashboard: ``GET /`` (bundled assets under ``/static``, no CDN), its data ``GET /api/dashboard`` and the
  live stream ``GET /events`` (server-sent events, an ``update`` every ``serve.refresh_s``).

Errors are RFC 7807 problem details (:mod:`carbonsync.serve.problems`): 400 naming the bad parameter, 401 for a
missing or wrong token, 404 for an unknown zone or job, 503 (with ``Retry-After``) while the store has no
committed init time. Readers always see the last committed snapshot (:mod:`carbonsync.serve.sources`).
Controller state comes from the decision logs the controllers append durably (JSON lines, fsynced), found by
the glob patterns ``serve.decisions``: one service watches every job that writes there, and nothing has to
reach the controllers.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import uvicorn
from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.logs import get_logger
from carbonsync.forecast.store import Location
from carbonsync.placement import Job, PlacementError, Site, load_queue, load_sites, schedule
from carbonsync.placement.problem import Weights
from carbonsync.serve.config import ServeConfig
from carbonsync.serve.metrics import service_registry
from carbonsync.serve.problems import Problem, install_problem_handlers
from carbonsync.serve.sources import DecisionLogs, ForecastSource, NotReady, UnknownZone

__all__ = ["create_app", "serve"]

log = get_logger(__name__)
HOUR = pd.Timedelta(hours=1)
STATIC = resources.files("carbonsync.serve") / "static"
BAND = (0.1, 0.9)          # the dashboard's renewable-share band: these quantiles when the store has them
Locations = Annotated[list[str] | None, Query(alias="location", description="zone id (repeat for several)")]
LegacyLocations = Annotated[list[str] | None, Query(alias="locations", include_in_schema=False)]


# ------------------------------------------------------------------ request bodies


class JobIn(BaseModel):
    """A job to place (:class:`carbonsync.placement.Job`)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    gpus: int = Field(ge=1, le=100_000)
    hours: int = Field(ge=1, le=24 * 366)
    earliest_start: str
    deadline: str
    interruptible: bool = False
    restart_overhead_h: float = Field(0.0, ge=0, le=1000)
    regions: list[str] = Field(default_factory=list, max_length=1000)
    home: str = ""


class SiteIn(BaseModel):
    """A site (:class:`carbonsync.placement.Site`); a request's price is a number (never a file path)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    zone: str = Field(min_length=1, max_length=200)
    gpus: int = Field(ge=1, le=10_000_000)
    pue: float = Field(1.2, ge=1.0, le=10.0)
    price: float = Field(0.0, ge=-10_000, le=100_000)
    gpu_kw: float = Field(0.4, gt=0, le=100)


class WeightsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    carbon: float = Field(1.0, ge=0)
    price: float = Field(0.0, ge=0)


class ScheduleIn(BaseModel):
    """``POST /schedule``: the jobs, optionally the sites (default: the run's), weights and solver."""

    model_config = ConfigDict(extra="forbid")
    jobs: list[JobIn] = Field(min_length=1)
    sites: list[SiteIn] | None = None
    weights: WeightsIn | None = None
    solver: str = Field("greedy", pattern="^(greedy|fast|milp)$")


# ------------------------------------------------------------------ helpers


def _iso(t: Any) -> str | None:
    if t is None:
        return None
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


def _time(value: str | None, parameter: str) -> pd.Timestamp | None:
    """An ISO time parameter as naive UTC, or a 400 naming it."""
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise Problem(400, "bad-parameter", f"{parameter}={value!r} is not an ISO 8601 time "
                      "(e.g. 2020-11-20T06:00:00Z)", parameter=parameter) from None
    if ts is pd.NaT:
        raise Problem(400, "bad-parameter", f"{parameter}={value!r} is not a time", parameter=parameter)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _values(array: Any) -> list[float | None]:
    return [None if not math.isfinite(v) else round(float(v), 6) for v in np.asarray(array, dtype=float).ravel()]


class Service:
    """The state behind the routes: the forecast, the decision logs, the run's queue and sites."""

    def __init__(self, store: Location, run_dir: Path, config: ServeConfig, queue: Any = None,
                 sites: Any = None, weights: Weights | None = None, solver: str = "greedy") -> None:
        self.forecast = ForecastSource(store)
        self.run_dir, self.config = Path(run_dir), config
        self.logs = DecisionLogs(self.run_dir, list(config.decisions), keep=int(config.history))
        self.queue, self.sites, self.weights, self.solver = queue, sites, weights or Weights(), solver
        self._placement: tuple[str, dict | None] | None = None    # (snapshot id, dashboard rows)

    # -- checks shared by the routes

    def ready(self) -> dict[str, Any]:
        status = self.forecast.status()
        if status["status"] != "ok":
            raise Problem(503, "no-forecast", status["detail"], headers={"Retry-After": "30"})
        return status

    def locations(self, values: Sequence[str] | None, parameter: str = "location") -> list[str]:
        zones = [z for v in (values or []) for z in str(v).split(",") if z.strip()]
        if not zones:
            raise Problem(400, "bad-parameter", f"{parameter} is required (one or more zones, e.g. "
                          f"?{parameter}=iberia&{parameter}=nordics)", parameter=parameter)
        if len(zones) > self.config.max_zones:
            raise Problem(400, "too-many-zones", f"{parameter}: {len(zones)} zones asked for, at most "
                          f"{self.config.max_zones} per request", parameter=parameter)
        try:
            self.forecast.check_zones(zones)
        except UnknownZone as err:
            raise Problem(404, "unknown-zone", str(err), parameter=parameter) from None
        return zones

    def window(self, start: pd.Timestamp | None, end: pd.Timestamp | None, names: tuple[str, str]
               ) -> tuple[pd.Timestamp, pd.Timestamp]:
        first, last = self.forecast.span()
        start, end = start if start is not None else first, end if end is not None else last
        if end < start:
            raise Problem(400, "bad-parameter", f"{names[1]}={_iso(end)} is before {names[0]}={_iso(start)}",
                          parameter=names[1])
        if (end - start) / HOUR > self.config.max_window_h:
            raise Problem(400, "window-too-long", f"{names[0]}..{names[1]} spans {(end - start) / HOUR:.0f} h; at "
                          f"most {self.config.max_window_h} h per request", parameter=names[1])
        return start, end

    def read(self, zones: list[str], start: pd.Timestamp, end: pd.Timestamp, products: list[str]):
        try:
            return self.forecast.latest(zones, start, end, products)
        except NotReady as err:
            raise Problem(503, "no-forecast", str(err), headers={"Retry-After": "30"}) from None
        except UnknownZone as err:
            raise Problem(404, "unknown-zone", str(err), parameter="location") from None
        except KeyError as err:
            raise Problem(400, "bad-parameter", str(err.args[0]), parameter="products") from None
        except CarbonSyncError as err:   # no committed forecast covers the window
            raise Problem(404, "no-forecast-for-window", str(err)) from None

    # -- carbon-aware-sdk

    def emissions(self, zones: list[str], start: pd.Timestamp, end: pd.Timestamp) -> list[dict]:
        ds = self.read(zones, start, end, ["carbon_intensity"])
        ci = ds["carbon_intensity"].transpose("time", "zone").values
        times = [_iso(t) for t in ds["time"].values]
        return [{"location": z, "time": times[i], "rating": _values([ci[i, k]])[0], "duration": "01:00:00"}
                for k, z in enumerate(zones) for i in range(len(times)) if math.isfinite(ci[i, k])]

    def forecasts(self, zones: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None,
                  window_min: int | None, requested: pd.Timestamp) -> list[dict]:
        start, end = self.window(start, end, ("dataStartAt", "dataEndAt"))
        ds = self.read(zones, start, end, ["carbon_intensity"])
        ci = ds["carbon_intensity"].transpose("time", "zone").values
        times = pd.DatetimeIndex(ds["time"].values)
        size = int(window_min) if window_min else 60
        points = max(int(math.ceil(size / 60)), 1)
        if points > len(times):
            raise Problem(400, "bad-parameter", f"windowSize={size} min is longer than the forecast window "
                          f"dataStartAt..dataEndAt ({len(times)} h)", parameter="windowSize")
        out = []
        for k, zone in enumerate(zones):
            series = pd.Series(ci[:, k], index=times)
            rolling = series.rolling(points).mean().shift(-(points - 1)).dropna()   # the mean from each start
            data = [{"location": zone, "timestamp": _iso(t), "duration": size, "value": round(float(v), 6)}
                    for t, v in rolling.items()]
            best = rolling[rolling == rolling.min()] if len(rolling) else rolling
            optimal = [{"location": zone, "timestamp": _iso(t), "duration": size, "value": round(float(v), 6)}
                       for t, v in best.items()]
            out.append({"generatedAt": _iso(ds.attrs["init_time"]), "requestedAt": _iso(requested),
                        "location": zone, "dataStartAt": _iso(start), "dataEndAt": _iso(end), "windowSize": size,
                        "optimalDataPoints": optimal, "forecastData": data})
        return out

    # -- zones

    def zone_forecast(self, zone: str, start: pd.Timestamp | None, end: pd.Timestamp | None,
                      products: list[str] | None) -> dict:
        status = self.ready()
        zones = self.locations([zone], "zone")
        start, end = self.window(start, end, ("start", "end"))
        base = [p for p in (products or ["renewable_share", "carbon_intensity"])]
        have = set(status.get("products", []))
        unknown = [p for p in base if p not in have or p.endswith("_quantile")]
        if unknown:
            raise Problem(400, "bad-parameter", f"products {unknown} are not zone products of the store; it has "
                          f"{sorted(p for p in have if not p.endswith('_quantile'))}", parameter="products")
        names = base + [f"{p}_quantile" for p in base if f"{p}_quantile" in have]
        ds = self.read(zones, start, end, names)
        out: dict[str, Any] = {"zone": zone, "name": status.get("zone_names", {}).get(zone, zone),
                               "init_time": _iso(ds.attrs["init_time"]), "snapshot_id": ds.attrs.get("snapshot_id"),
                               "time": [_iso(t) for t in ds["time"].values], "products": {}}
        for p in base:
            entry: dict[str, Any] = {"units": str(ds[p].attrs.get("units", "")),
                                     "values": _values(ds[p].isel(zone=0).values), "quantiles": {}}
            q = f"{p}_quantile"
            if q in ds:
                for level in ds["quantile"].values:
                    entry["quantiles"][f"{float(level):g}"] = _values(ds[q].sel(quantile=level).isel(zone=0).values)
            out["products"][p] = entry
        return out

    # -- placement

    def run_sites(self) -> list[Site]:
        if self.sites is None:
            raise Problem(400, "bad-parameter", "this service has no configured sites; send them in the body",
                          parameter="sites")
        return load_sites(self.sites)

    def place(self, body: ScheduleIn) -> dict:
        self.ready()
        if len(body.jobs) > self.config.max_jobs:
            raise Problem(400, "too-many-jobs", f"jobs: {len(body.jobs)} jobs, at most {self.config.max_jobs} per "
                          "request", parameter="jobs")
        try:
            jobs = load_queue([j.model_dump() for j in body.jobs])
            sites = load_sites([s.model_dump() for s in body.sites]) if body.sites else self.run_sites()
        except PlacementError as err:
            raise Problem(400, "bad-job", str(err), parameter="jobs" if "job" in str(err) else "sites") from None
        weights = Weights(carbon=body.weights.carbon, price=body.weights.price) if body.weights else self.weights
        return self._schedule(jobs, sites, weights, body.solver)

    def _schedule(self, jobs: list[Job], sites: list[Site], weights: Weights, solver: str) -> dict:
        zones = self.locations(sorted({s.zone for s in sites}), "sites")
        start = min(j.earliest_start for j in jobs)
        end = max(j.deadline for j in jobs)
        if (end - start) / HOUR > self.config.max_window_h:
            raise Problem(400, "window-too-long", f"the jobs span {(end - start) / HOUR:.0f} h from the first "
                          f"earliest_start to the last deadline; at most {self.config.max_window_h} h",
                          parameter="jobs")
        fc = self.read(zones, start, end, ["renewable_share", "carbon_intensity"])
        try:
            plan = schedule(jobs, sites, fc, weights, solver=solver)
        except PlacementError as err:
            raise Problem(400, "cannot-place", str(err), parameter="jobs") from None
        rows = []
        for row in plan.to_frame().to_dict("records"):
            job = str(row["job"])
            rows.append({**{k: (_iso(v) if isinstance(v, pd.Timestamp) else v) for k, v in row.items()},
                         "explanation": plan.explain(job)})
        return {"init_time": _iso(fc.attrs["init_time"]), "snapshot_id": fc.attrs.get("snapshot_id"),
                "solver": plan.solver, "expected_saving_pct": round(float(plan.expected_saving_pct), 3),
                "assignments": _clean(rows)}

    def run_placement(self) -> dict | None:
        """The run's own queue placed on the newest forecast (recomputed once per snapshot), or None."""
        status = self.forecast.status()
        if status["status"] != "ok" or self.queue is None or self.sites is None:
            return None
        if self._placement is not None and self._placement[0] == status["snapshot_id"]:
            return self._placement[1]
        try:
            result = self._schedule(load_queue(self.queue), load_sites(self.sites), self.weights, self.solver)
        except (Problem, PlacementError, CarbonSyncError) as err:
            log.warning("serve: the run's queue cannot be placed: %s", err)
            result = None
        self._placement = (status["snapshot_id"], result)
        return result

    # -- controllers

    def controllers(self, history: int = 500) -> list[dict]:
        out = []
        for entry in self.logs.refresh():
            records = list(entry.records)
            if not records:
                continue
            last = records[-1]
            recent = records[-history:]
            inputs = last.get("inputs") or {}
            out.append({
                "job": entry.job, "path": str(entry.path), "time": last.get("time"), "state": last.get("state"),
                "run": bool(last.get("run", True)), "power_w": last.get("power_w"), "draw_w": last.get("draw_w"),
                "energy_j": last.get("energy_j"), "price": inputs.get("price"), "carbon": inputs.get("carbon"),
                "score": last.get("score"), "thresholds": last.get("thresholds") or {},
                "sentence": last.get("sentence", ""), "decisions_total": entry.total, "by_state": entry.by_state,
                "history": {
                    "time": [r.get("time") for r in recent], "state": [r.get("state") for r in recent],
                    "power_w": [r.get("power_w") for r in recent], "draw_w": [r.get("draw_w") for r in recent],
                    "price": [(r.get("inputs") or {}).get("price") for r in recent],
                    "carbon": [(r.get("inputs") or {}).get("carbon") for r in recent],
                    "score": [r.get("score") for r in recent]},
                "decisions": [{k: r.get(k) for k in ("time", "state", "action", "reason", "sentence")}
                              for r in records[-50:]],
            })
        return _clean(out)

    def dashboard(self) -> dict:
        status = self.forecast.status()
        init = status["init_time"]
        zones = []
        if status["status"] == "ok":
            have = set(status.get("products", []))
            names = ["renewable_share", "carbon_intensity"]
            names += ["renewable_share_quantile"] if "renewable_share_quantile" in have else []
            try:
                first, last = self.forecast.span()
                ds = self.forecast.latest(status["zones"], first, last, names)
                for k, zone in enumerate(status["zones"]):
                    entry = {"zone": zone, "name": status.get("zone_names", {}).get(zone, zone),
                             "time": [_iso(t) for t in ds["time"].values],
                             "renewable_share": _values(ds["renewable_share"].isel(zone=k).values),
                             "carbon_intensity": _values(ds["carbon_intensity"].isel(zone=k).values),
                             "lo": None, "hi": None}
                    if "renewable_share_quantile" in ds:
                        q = ds["renewable_share_quantile"].isel(zone=k)
                        levels = q["quantile"].values
                        lo, hi = (levels[np.argmin(np.abs(levels - b))] for b in BAND)
                        entry["lo"], entry["hi"] = _values(q.sel(quantile=lo).values), _values(q.sel(quantile=hi).values)
                    zones.append(entry)
            except (NotReady, CarbonSyncError, KeyError) as err:
                log.warning("serve: dashboard zones unavailable: %s", err)
        placement = self.run_placement()
        return _clean({
            "generated_at": pd.Timestamp.now(tz="UTC").tz_localize(None).isoformat(timespec="seconds"),
            "store": {"path": status["path"], "status": status["status"], "detail": status["detail"],
                      "init_time": _iso(init), "snapshot_id": status["snapshot_id"], "zones": status["zones"],
                      "init_age_s": (time.time() - pd.Timestamp(init).value / 1e9) if init is not None else None},
            "zones": zones,
            "placement": None if placement is None else {
                "expected_saving_pct": placement["expected_saving_pct"], "init_time": placement["init_time"],
                "rows": [{k: a.get(k) for k in ("job", "site", "zone", "start", "end", "gpus", "emissions_kg",
                                                "saving_pct", "explanation")} for a in placement["assignments"]]},
            "controllers": self.controllers(),
        })


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and inf to None, numpy scalars to Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return _iso(value)
    return value


# ------------------------------------------------------------------ the app


def create_app(store: Location, run_dir: str | Path, config: ServeConfig | None = None, *, queue: Any = None,
               sites: Any = None, weights: Weights | None = None, solver: str = "greedy") -> FastAPI:
    """The service for forecast ``store``, watching the decision logs under ``run_dir`` (module docstring).

    ``queue`` and ``sites`` (anything :func:`carbonsync.placement.load_queue` / ``load_sites`` take) are the
    run's own: the dashboard shows their placement, and ``POST /schedule`` uses the sites when a request has none.
    """
    config = config or ServeConfig()
    service = Service(store, Path(run_dir), config, queue, sites, weights, solver)
    registry, latency = service_registry(service.logs, service.forecast)
    app = FastAPI(title="CarbonSync", version="1", description=__doc__.split("\n\n")[0],
                  openapi_tags=[{"name": "carbon-aware-sdk"}, {"name": "forecast"}, {"name": "placement"},
                                {"name": "controllers"}, {"name": "operations"}])
    app.state.service = service
    install_problem_handlers(app)

    @app.middleware("http")
    async def _timed(request: Request, call_next):
        tic = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        latency.labels(request.method, template, str(response.status_code)).observe(time.perf_counter() - tic)
        return response

    @app.get("/emissions/bylocations", tags=["carbon-aware-sdk"])
    def emissions_by_locations(location: Locations = None, locations_: LegacyLocations = None,
                               time_: Annotated[str | None, Query(alias="time")] = None,
                               to_time: Annotated[str | None, Query(alias="toTime")] = None) -> list[dict]:
        """Forecast carbon intensity (g CO2e/kWh) of each zone for each hour in ``[time, toTime]``."""
        service.ready()
        zones = service.locations((location or []) + (locations_ or []))
        start, end = service.window(_time(time_, "time"), _time(to_time, "toTime"), ("time", "toTime"))
        return service.emissions(zones, start, end)

    @app.get("/emissions/bylocations/best", tags=["carbon-aware-sdk"])
    def best_emissions(location: Locations = None, locations_: LegacyLocations = None,
                       time_: Annotated[str | None, Query(alias="time")] = None,
                       to_time: Annotated[str | None, Query(alias="toTime")] = None) -> list[dict]:
        """The zone-hours of lowest forecast carbon intensity in ``[time, toTime]`` (ties all returned)."""
        rows = emissions_by_locations(location, locations_, time_, to_time)
        if not rows:
            return []
        best = min(r["rating"] for r in rows)
        return [r for r in rows if r["rating"] == best]

    @app.get("/emissions/forecasts/current", tags=["carbon-aware-sdk"])
    def current_forecasts(location: Locations = None, locations_: LegacyLocations = None,
                          data_start: Annotated[str | None, Query(alias="dataStartAt")] = None,
                          data_end: Annotated[str | None, Query(alias="dataEndAt")] = None,
                          window_size: Annotated[int | None, Query(alias="windowSize", ge=1, le=60 * 24 * 31,
                                                                   description="minutes")] = None) -> list[dict]:
        """The newest committed forecast per zone, averaged over ``windowSize`` minutes from each hour, and the
        window start(s) of lowest average (``optimalDataPoints``)."""
        service.ready()
        zones = service.locations((location or []) + (locations_ or []))
        return service.forecasts(zones, _time(data_start, "dataStartAt"), _time(data_end, "dataEndAt"), window_size,
                                 pd.Timestamp.now(tz="UTC").tz_localize(None))

    @app.get("/locations", tags=["carbon-aware-sdk"])
    def locations_list() -> dict:
        """The zones the forecast store has, keyed by id."""
        status = service.ready()
        return {z: {"Name": status.get("zone_names", {}).get(z, z)} for z in status["zones"]}

    @app.get("/zones", tags=["forecast"])
    def zones_list() -> list[dict]:
        """The zones of the newest committed forecast, with the init time it was issued at."""
        status = service.ready()
        return [{"zone": z, "name": status.get("zone_names", {}).get(z, z), "init_time": _iso(status["init_time"])}
                for z in status["zones"]]

    @app.get("/zones/{zone}/forecast", tags=["forecast"])
    def zone_forecast(zone: str, start: str | None = None, end: str | None = None,
                      products: Annotated[list[str] | None, Query(max_length=8)] = None) -> dict:
        """One zone's products over ``[start, end]`` from the newest committed forecast, with their quantiles."""
        names = [p for v in (products or []) for p in v.split(",") if p] or None
        return service.zone_forecast(zone, _time(start, "start"), _time(end, "end"), names)

    @app.post("/schedule", tags=["placement"])
    def place(request: Request, body: Annotated[ScheduleIn, Body()]) -> dict:
        """Place the jobs on the sites (default: the run's) by forecast carbon and price; each assignment comes
        with its explanation. Needs ``Authorization: Bearer <token>`` when the token variable is set."""
        _authorize(request, config.token_env)
        return service.place(body)

    @app.get("/controllers", tags=["controllers"])
    def controllers() -> list[dict]:
        """Every watched controller's current state, its recent history and last decisions."""
        return service.controllers()

    @app.get("/controllers/{job}/decisions", tags=["controllers"])
    def decisions(job: str, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict]:
        """The job's newest decisions (oldest first), as logged."""
        entry = service.logs.job(job)
        if entry is None:
            known = [e.job for e in service.logs.refresh()]
            raise Problem(404, "unknown-job", f"no decision log for job '{job}'; watched jobs: {known}",
                          parameter="job")
        return _clean(list(entry.records)[-limit:])

    @app.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["operations"])
    def health() -> dict:
        status = service.forecast.status()
        return {"status": "ok", "store": status["status"], "init_time": _iso(status["init_time"])}

    @app.get("/api/dashboard", tags=["operations"])
    def dashboard() -> dict:
        """Everything the dashboard shows, as one document."""
        return service.dashboard()

    @app.get("/events", tags=["operations"])
    async def events(request: Request, limit: Annotated[int, Query(ge=0)] = 0) -> StreamingResponse:
        """Server-sent events: an ``update`` (the dashboard document) every ``serve.refresh_s`` seconds;
        ``limit`` > 0 ends the stream after that many."""

        async def stream() -> Any:
            sent = 0
            while not await request.is_disconnected():
                document = await asyncio.to_thread(service.dashboard)
                yield f"event: update\ndata: {json.dumps(document, separators=(',', ':'))}\n\n"
                sent += 1
                if limit and sent >= limit:
                    return
                await asyncio.sleep(float(config.refresh_s))

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    if (STATIC / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        page = STATIC / "index.html"
        if not page.is_file():
            raise Problem(404, "not-found", "the dashboard assets are not installed")
        return FileResponse(str(page), media_type="text/html")

    return app


def _authorize(request: Request, token_env: str) -> None:
    """Require ``Authorization: Bearer $<token_env>`` when that variable is set (compared in constant time;
    the token is never logged or echoed)."""
    expected = os.environ.get(token_env, "") if token_env else ""
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Problem(401, "unauthorized", "this endpoint needs the header 'Authorization: Bearer <token>' with the "
                      f"token in the service's environment variable {token_env}",
                      headers={"WWW-Authenticate": 'Bearer realm="carbonsync"'})


def serve(app: FastAPI, config: ServeConfig) -> None:
    """Run ``app`` on uvicorn at ``config.host:config.port`` until interrupted."""
    log.info("serve: http://%s:%d/ (dashboard), /docs (OpenAPI), /metrics", config.host, config.port)
    uvicorn.run(app, host=config.host, port=int(config.port), log_level=config.log_level, access_log=False)
