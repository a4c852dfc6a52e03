"""Replay placement policies hour by hour on observed grid carbon-intensity traces.

The traces are a ``(time, zone)`` dataset of hourly ``carbon_intensity`` (gCO2eq/kWh), e.g. from
:func:`carbonsync.data.observations.electricitymaps.load_traces`. One site per zone.

**Job queue** (:func:`generate_queue`, seeded): arrivals uniform over the replay span after a week of
history (the forecast needs it) and early enough to finish by its end; GPUs 8/16/32/64 (probabilities
0.35/0.30/0.20/0.15); duration ``round(exp(N(log 6, 0.8)))`` clipped to 1..48 h; slack (deadline minus
arrival minus duration) zero for 10 % of jobs, else ``U(0.25, 3) x`` the duration clipped to 72 h; half
interruptible with a restart overhead ``U(0.1, 0.5)`` h; a uniformly drawn home site; 30 % may run only at
home (data residency), the rest anywhere.

**Sites** (:func:`size_sites`): PUE drawn from 1.1..1.4 (seeded), 0.7 kW per busy GPU; GPU capacity =
``headroom`` (1.5) times the site's peak concurrent use under carbon-agnostic placement, rounded up to 8,
and the cleanest zone's site (lowest mean intensity) is capped below the peak concurrent use of the whole
queue, so it cannot host every job at once.

**Forecast** (:class:`Forecaster`), made at hour ``t`` from data before ``t`` only: the mean daily profile
of the last 7 days plus the last hour's departure from it, decaying by ``phi ** (k + 1)`` at lead ``k``,
where ``phi`` is the lag-1 autocorrelation of those departures over all hours before ``t``.

**Policies** (each hour, jobs that have arrived and are not finished; energy = GPUs x kW per GPU x PUE x
hours; each pause-and-resume or move to another site bills ``restart_overhead_h`` extra hours at the
conditions of the hour and site it resumes in; a rigid job, once started, runs to the end at its site):

- ``carbon_agnostic``: start at arrival at the home site, run to the end;
- ``threshold``: at home; run an hour only if the last observed intensity is at most the median of the
  past week's (a rigid job waits to start, an interruptible one pauses), unless the job has no slack left;
- ``temporal``: at home; every hour re-plan each job's remaining hours over ``[now, deadline)`` on the
  forecast (tightest job first, under capacity; jobs with slack left plan into at most 80 % of a site's
  GPUs, keeping room for urgent arrivals) and run it now if the plan does;
- ``spatiotemporal``: as ``temporal`` over all the job's allowed sites (moves cost the restart overhead);
- ``oracle``: as ``spatiotemporal`` with perfect foresight of the intensities (the realised traces in
  place of the forecast; arrivals stay unknown until they happen), so the gap between the two is what
  the forecast costs.

A job finishing after its deadline counts as a deadline miss. :func:`replay` returns per policy
``emissions_kg``, ``energy_kwh``, ``deadline_misses`` and ``oracle_savings_share`` = (carbon-agnostic
emissions - policy emissions) / (carbon-agnostic - oracle).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.placement.jobs import DEFAULT_GPU_KW, PlacementError
from carbonsync.placement.solvers import best_option

POLICIES = ("carbon_agnostic", "threshold", "temporal", "spatiotemporal", "oracle")
HISTORY_H = 168


@dataclass(frozen=True)
class ReplayJob:
    """A job of the replay queue; times are hour indices into the traces (``deadline`` exclusive)."""

    id: str
    gpus: int
    hours: int
    arrival: int
    deadline: int
    interruptible: bool
    overhead: float
    home: int
    allowed: tuple[int, ...]


@dataclass(frozen=True)
class ReplaySite:
    id: str
    zone: str
    gpus: int
    pue: float
    gpu_kw: float = DEFAULT_GPU_KW

    @property
    def kw_per_gpu(self) -> float:
        return self.gpu_kw * self.pue


@dataclass
class PolicyResult:
    """Totals of one policy's replay, and its per-job record."""

    policy: str
    emissions_kg: float = 0.0
    energy_kwh: float = 0.0
    deadline_misses: int = 0
    restarts: int = 0
    migrations: int = 0
    seconds: float = 0.0
    finish: dict[str, int] = field(default_factory=dict)
    usage: np.ndarray | None = None
    job_emissions: np.ndarray | None = None
    runs: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # job id -> [(hour, site index)]


def traces_arrays(traces: xr.Dataset) -> tuple[pd.DatetimeIndex, list[str], np.ndarray]:
    """Times, zones and the ``(zone, time)`` intensity of a traces dataset (checked: no gaps, no NaN)."""
    if "carbon_intensity" not in traces:
        raise PlacementError("traces: no 'carbon_intensity' variable")
    times = pd.DatetimeIndex(traces["time"].values)
    if len(times) < HISTORY_H + 48:
        raise PlacementError(f"traces: {len(times)} hours; the replay needs at least {HISTORY_H + 48}")
    if (np.diff(times.values) != np.timedelta64(1, "h")).any():
        raise PlacementError("traces: times must be hourly without gaps")
    intensity = traces["carbon_intensity"].transpose("zone", "time").values.astype(np.float64)
    if not np.isfinite(intensity).all():
        zone, t = np.argwhere(~np.isfinite(intensity))[0]
        raise PlacementError(f"traces: carbon_intensity missing in zone {traces['zone'].values[zone]} at {times[t]}")
    return times, [str(z) for z in traces["zone"].values], intensity


def generate_queue(n_jobs: int, n_hours: int, n_sites: int, seed: int = 0) -> list[ReplayJob]:
    """The documented random queue (see the module docstring), sorted by arrival."""
    if n_jobs < 1:
        raise PlacementError(f"jobs must be >= 1, got {n_jobs}")
    rng = np.random.default_rng(seed)
    gpus = rng.choice([8, 16, 32, 64], n_jobs, p=[0.35, 0.30, 0.20, 0.15])
    hours = np.clip(np.round(np.exp(rng.normal(np.log(6), 0.8, n_jobs))), 1, 48).astype(int)
    slack = np.where(rng.uniform(size=n_jobs) < 0.1, 0, np.minimum(np.round(rng.uniform(0.25, 3, n_jobs) * hours), 72))
    slack = slack.astype(int)
    latest = n_hours - (hours + slack)
    if (latest <= HISTORY_H + 1).any():
        raise PlacementError(f"the traces span {n_hours} h; too short for a {HISTORY_H} h history plus the jobs")
    arrival = (HISTORY_H + 1 + rng.uniform(size=n_jobs) * (latest - HISTORY_H - 1)).astype(int)
    interruptible = rng.uniform(size=n_jobs) < 0.5
    overhead = np.where(interruptible, rng.uniform(0.1, 0.5, n_jobs), 0.0)
    home = rng.integers(0, n_sites, n_jobs)
    home_only = rng.uniform(size=n_jobs) < 0.3
    order = np.argsort(arrival, kind="stable")
    return [
        ReplayJob(
            id=f"job{rank:05d}",
            gpus=int(gpus[j]),
            hours=int(hours[j]),
            arrival=int(arrival[j]),
            deadline=int(arrival[j] + hours[j] + slack[j]),
            interruptible=bool(interruptible[j]),
            overhead=float(round(overhead[j], 3)),
            home=int(home[j]),
            allowed=(int(home[j]),) if home_only[j] else tuple(range(n_sites)),
        )
        for rank, j in enumerate(order)
    ]


def size_sites(zones: Sequence[str], intensity: np.ndarray, jobs: Sequence[ReplayJob], headroom: float = 1.5,
               seed: int = 0) -> list[ReplaySite]:
    """Sites sized from the carbon-agnostic peak use (see the module docstring)."""
    n_hours = intensity.shape[1]
    use = np.zeros((len(zones), n_hours + 1), dtype=np.int64)
    for job in jobs:
        use[job.home, job.arrival : job.arrival + job.hours] += job.gpus
    peak_total = int(use.sum(axis=0).max())
    capacity = np.maximum(8, np.ceil(headroom * use.max(axis=1) / 8) * 8).astype(int)
    cleanest = int(np.argmin(intensity.mean(axis=1)))
    if capacity[cleanest] >= peak_total:
        capacity[cleanest] = max(8, (peak_total - 1) // 8 * 8)
    rng = np.random.default_rng(seed + 1)
    pue = np.round(rng.uniform(1.1, 1.4, len(zones)), 2)
    return [ReplaySite(id=f"site-{z}", zone=z, gpus=int(capacity[i]), pue=float(pue[i])) for i, z in enumerate(zones)]


class Forecaster:
    """Causal forecast of every zone's intensity (see the module docstring)."""

    def __init__(self, intensity: np.ndarray, times: pd.DatetimeIndex, history_h: int = HISTORY_H):
        self.intensity = intensity
        self.history_h = history_h
        self.hour_of_day = np.asarray(times.hour)
        n_zones, n_hours = intensity.shape
        # departures of each hour from the same hour of the 7 days before it (NaN in the first week)
        days = history_h // 24
        profile_at = np.full((n_zones, n_hours), np.nan)
        same_hour = [intensity[:, history_h - 24 * d : n_hours - 24 * d] for d in range(1, days + 1)]
        profile_at[:, history_h:] = np.mean(same_hour, axis=0)
        self.departure = intensity - profile_at
        lagged = np.nan_to_num(self.departure[:, :-1] * self.departure[:, 1:])
        squares = np.nan_to_num(self.departure[:, :-1] ** 2)
        # phi_t uses pairs (i-1, i) with i < t: cumulative sums shifted by one
        self._xy = np.concatenate([np.zeros((n_zones, 2)), np.cumsum(lagged, axis=1)], axis=1)
        self._xx = np.concatenate([np.zeros((n_zones, 2)), np.cumsum(squares, axis=1)], axis=1)

    def phi(self, t: int) -> np.ndarray:
        """Lag-1 autocorrelation of departures over hours before ``t``, clipped to 0..0.99."""
        xx = self._xx[:, t]
        return np.clip(np.divide(self._xy[:, t], xx, out=np.zeros_like(xx), where=xx > 0), 0.0, 0.99)

    def forecast(self, t: int, horizon: int) -> np.ndarray:
        """``(zone, horizon)`` forecast of hours ``t .. t + horizon - 1`` from data before ``t``."""
        if t < self.history_h + 1:
            raise PlacementError(f"forecast at hour {t} needs {self.history_h + 1} h of history")
        past = self.intensity[:, t - self.history_h : t]
        hod_past = self.hour_of_day[t - self.history_h : t]
        profile = np.stack([past[:, hod_past == h].mean(axis=1) for h in range(24)], axis=1)  # (zone, 24)
        last_departure = self.departure[:, t - 1]
        hours = (self.hour_of_day[t - 1] + 1 + np.arange(horizon)) % 24
        decay = self.phi(t)[:, None] ** (np.arange(horizon)[None, :] + 1)
        return np.maximum(profile[:, hours] + last_departure[:, None] * decay, 0.0)


# --- the hour-by-hour engine -----------------------------------------------------------------------------------


class _Engine:
    """Executes per-hour decisions, enforces capacity and rigid jobs, and does the accounting."""

    def __init__(self, jobs: Sequence[ReplayJob], sites: Sequence[ReplaySite], intensity: np.ndarray, policy: str):
        self.jobs, self.sites, self.intensity = list(jobs), list(sites), intensity
        self.capacity = np.array([s.gpus for s in sites])
        self.kw = np.array([s.kw_per_gpu for s in sites])
        n = len(jobs)
        self.remaining = np.array([j.hours for j in jobs])
        self.site = np.full(n, -1)  # where it last ran
        self.ran_last_hour = np.zeros(n, dtype=bool)
        self.started = np.zeros(n, dtype=bool)
        self.result = PolicyResult(policy)
        self.result.usage = np.zeros((len(sites), intensity.shape[1]), dtype=np.int64)
        self.result.job_emissions = np.zeros(n)
        self._by_arrival = sorted(range(n), key=lambda i: self.jobs[i].arrival)
        self._next = 0
        self._active: list[int] = []

    def active(self, t: int) -> list[int]:
        """Jobs that have arrived by hour ``t`` and are not finished."""
        while self._next < len(self._by_arrival) and self.jobs[self._by_arrival[self._next]].arrival <= t:
            self._active.append(self._by_arrival[self._next])
            self._next += 1
        self._active = [i for i in self._active if self.remaining[i] > 0]
        return list(self._active)

    def slack(self, i: int, t: int) -> int:
        return self.jobs[i].deadline - t - int(self.remaining[i])

    def step(self, t: int, decisions: dict[int, int]) -> None:
        """Run job ``i`` at site ``decisions[i]`` during hour ``t``; others pause or wait."""
        load = np.zeros(len(self.sites), dtype=np.int64)
        for i, s in decisions.items():
            job = self.jobs[i]
            if s not in job.allowed and s != job.home:
                raise PlacementError(f"policy {self.result.policy}: job {job.id} sent to a site it may not use")
            load[s] += job.gpus
        if (load > self.capacity).any():
            s = int(np.argmax(load - self.capacity))
            raise PlacementError(f"policy {self.result.policy}: site {self.sites[s].id} over capacity at hour {t}")
        for i in self.committed(t):
            if decisions.get(i) != self.site[i]:
                raise PlacementError(f"policy {self.result.policy}: rigid job {self.jobs[i].id} interrupted at hour {t}")
        running_now = np.zeros(len(self.jobs), dtype=bool)
        for i, s in decisions.items():
            job = self.jobs[i]
            billed = 1.0
            if self.started[i] and (not self.ran_last_hour[i] or self.site[i] != s):
                billed += job.overhead
                self.result.restarts += 1
                self.result.migrations += int(self.site[i] != s)
            energy = job.gpus * self.kw[s] * billed
            emissions = energy * self.intensity[s, t] / 1000.0
            self.result.energy_kwh += energy
            self.result.emissions_kg += emissions
            self.result.job_emissions[i] += emissions
            self.result.usage[s, t] += job.gpus
            self.result.runs.setdefault(job.id, []).append((t, s))
            self.started[i] = True
            self.site[i] = s
            self.remaining[i] -= 1
            running_now[i] = True
            if self.remaining[i] == 0:
                self.result.finish[job.id] = t + 1
                self.result.deadline_misses += int(t + 1 > job.deadline)
        self.ran_last_hour = running_now  # (a full array: jobs not run this hour did not run)

    def committed(self, t: int) -> dict[int, int]:
        """Rigid jobs already running: they continue where they are."""
        return {
            i: int(self.site[i])
            for i in self.active(t)
            if self.ran_last_hour[i] and not self.jobs[i].interruptible
        }


def _fill(engine: _Engine, t: int, decisions: dict[int, int], candidates: list[int], where) -> None:
    """Add jobs in order to ``decisions`` at ``where(i)`` while the site has room."""
    load = np.zeros(len(engine.sites), dtype=np.int64)
    for i, s in decisions.items():
        load[s] += engine.jobs[i].gpus
    for i in candidates:
        if i in decisions:
            continue
        s = where(i)
        if s is not None and load[s] + engine.jobs[i].gpus <= engine.capacity[s]:
            decisions[i] = s
            load[s] += engine.jobs[i].gpus


def _run_simple(engine: _Engine, t: int, kind: str, threshold: np.ndarray | None) -> dict[int, int]:
    decisions = engine.committed(t)
    active = sorted(engine.active(t), key=lambda i: (engine.slack(i, t), engine.jobs[i].arrival))
    if kind == "carbon_agnostic":
        _fill(engine, t, decisions, sorted(active, key=lambda i: engine.jobs[i].arrival), lambda i: engine.jobs[i].home)
        return decisions

    def go(i: int) -> int | None:
        job = engine.jobs[i]
        clean = engine.intensity[job.home, t - 1] <= threshold[job.home]
        return job.home if clean or engine.slack(i, t) <= 0 else None

    _fill(engine, t, decisions, active, go)
    return decisions


def _run_planned(engine: _Engine, t: int, forecast: np.ndarray, spatial: bool, reserve: float) -> dict[int, int]:
    """Re-plan all active jobs on the forecast (tightest first, under capacity) and return the hour's runs.

    Jobs with slack left may plan into only ``1 - reserve`` of each site's GPUs, so that jobs arriving
    later with no slack still find room."""
    decisions = engine.committed(t)
    horizon = forecast.shape[1]
    free = np.repeat(engine.capacity[:, None], horizon, axis=1)
    for i, s in decisions.items():
        free[s, : engine.remaining[i]] -= engine.jobs[i].gpus
    value = engine.kw[:, None] * forecast / 1000.0  # kg per GPU-hour
    active = [i for i in engine.active(t) if i not in decisions]
    active.sort(key=lambda i: (engine.slack(i, t), engine.jobs[i].deadline, engine.jobs[i].arrival))
    late = []
    for i in active:
        job = engine.jobs[i]
        rows = np.array(job.allowed if spatial else (job.home,))
        width = min(job.deadline - t, horizon)
        h = int(engine.remaining[i])
        if width < h:
            late.append(i)
            continue
        cost = job.gpus * value[rows, :width]
        kept = 0 if engine.slack(i, t) <= 0 else np.ceil(reserve * engine.capacity[rows])[:, None]
        blocked = free[rows, :width] - kept < job.gpus
        first_cost = None
        if engine.started[i] and job.overhead > 0:
            first_cost = job.overhead * cost
            if engine.ran_last_hour[i] and engine.site[i] in rows:
                first_cost = first_cost.copy()
                first_cost[int(np.flatnonzero(rows == engine.site[i])[0]), 0] = 0.0
        total, r, where = best_option(cost, blocked, h, job.interruptible, job.overhead, first_cost=first_cost)
        if not np.isfinite(total):
            late.append(i)
            continue
        s = int(rows[r])
        slots = np.flatnonzero(where) if isinstance(where, np.ndarray) else np.arange(where, where + h)
        free[s, slots] -= job.gpus
        if slots[0] == 0:
            decisions[i] = s
    # jobs that cannot meet their deadline any more: run now wherever there is room, home first
    def anywhere(i: int) -> int | None:
        job = engine.jobs[i]
        load = np.zeros(len(engine.sites), dtype=np.int64)
        for k, s in decisions.items():
            load[s] += engine.jobs[k].gpus
        for s in (job.home, *(job.allowed if spatial else ())):
            if load[s] + job.gpus <= engine.capacity[s]:
                return s
        return None

    _fill(engine, t, decisions, late, anywhere)
    return decisions


class PerfectForecast:
    """The realised intensities themselves: the oracle's perfect foresight."""

    def __init__(self, intensity: np.ndarray):
        self.intensity = intensity

    def forecast(self, t: int, horizon: int) -> np.ndarray:
        window = self.intensity[:, t : t + horizon]
        if window.shape[1] < horizon:  # past the end of the traces: repeat the last hour
            window = np.concatenate([window, np.repeat(self.intensity[:, -1:], horizon - window.shape[1], axis=1)], axis=1)
        return window


def simulate(
    policy: str,
    jobs: Sequence[ReplayJob],
    sites: Sequence[ReplaySite],
    intensity: np.ndarray,
    forecaster: Forecaster | None = None,
    horizon: int = 168,
    reserve: float = 0.2,
) -> PolicyResult:
    """Replay one policy hour by hour over the traces (see the module docstring)."""
    if policy not in POLICIES:
        raise PlacementError(f"unknown policy '{policy}'; available: {', '.join(POLICIES)}")
    started = time.perf_counter()
    engine = _Engine(jobs, sites, intensity, policy)
    n_hours = intensity.shape[1]
    first = min(j.arrival for j in jobs)
    threshold = None
    if policy == "oracle":
        forecaster = PerfectForecast(intensity)
    for t in range(first, n_hours):
        if engine._next >= len(jobs) and not engine.active(t):
            break
        if policy in ("carbon_agnostic", "threshold"):
            if policy == "threshold":
                threshold = np.median(intensity[:, max(0, t - HISTORY_H) : t], axis=1)
            decisions = _run_simple(engine, t, policy, threshold)
        else:
            if forecaster is None:
                raise PlacementError(f"policy {policy} needs a forecaster")
            active = engine.active(t)
            if not active:
                continue
            width = min(horizon, max(engine.jobs[i].deadline for i in active) - t)
            fc = forecaster.forecast(t, max(width, 1))
            decisions = _run_planned(engine, t, fc, spatial=policy != "temporal", reserve=reserve)
        engine.step(t, decisions)
    unfinished = [j.id for i, j in enumerate(jobs) if engine.remaining[i] > 0]
    engine.result.deadline_misses += len(unfinished)
    engine.result.seconds = time.perf_counter() - started
    return engine.result


def replay(
    traces: xr.Dataset,
    n_jobs: int | None = None,
    days: float | None = None,
    seed: int = 0,
    policies: Sequence[str] = POLICIES,
    headroom: float = 1.5,
) -> dict:
    """Run every policy on ``traces`` (optionally its first ``days``) and summarise (see the module docstring).

    ``n_jobs`` defaults to 4 per day of the span.
    """
    times, zones, intensity = traces_arrays(traces)
    if days is not None:
        hours = int(round(days * 24))
        if hours < HISTORY_H + 48:
            raise PlacementError(f"days={days}: the replay needs at least {(HISTORY_H + 48) / 24:.0f} days")
        times, intensity = times[:hours], intensity[:, :hours]
    n_hours = len(times)
    n_jobs = n_jobs or max(1, n_hours * 4 // 24)
    jobs = generate_queue(n_jobs, n_hours, len(zones), seed)
    sites = size_sites(zones, intensity, jobs, headroom, seed)
    forecaster = Forecaster(intensity, times)
    results = {p: simulate(p, jobs, sites, intensity, forecaster) for p in policies}
    out: dict = {
        "span": [str(times[0]), str(times[-1])],
        "hours": n_hours,
        "zones": zones,
        "jobs": n_jobs,
        "seed": seed,
        "sites": {s.id: {"gpus": s.gpus, "pue": s.pue} for s in sites},
        "forecast_mae": forecast_skill(forecaster, intensity, jobs),
        "policies": {},
    }
    out["queue"] = jobs
    out["site_list"] = sites
    out["times"] = times
    out["intensity"] = intensity
    out["peak_concurrent_gpus"] = {name: int(r.usage.sum(axis=0).max()) for name, r in results.items()}
    base = results.get("carbon_agnostic")
    best = results.get("oracle")
    for name, r in results.items():
        share = None
        if base is not None and best is not None and base.emissions_kg > best.emissions_kg:
            share = (base.emissions_kg - r.emissions_kg) / (base.emissions_kg - best.emissions_kg)
        out["policies"][name] = {
            "emissions_kg": round(r.emissions_kg, 1),
            "energy_kwh": round(r.energy_kwh, 1),
            "deadline_misses": r.deadline_misses,
            "oracle_savings_share": None if share is None else round(share, 4),
            "restarts": r.restarts,
            "migrations": r.migrations,
            "seconds": round(r.seconds, 2),
        }
    out["results"] = results
    return out


def forecast_skill(forecaster: Forecaster, intensity: np.ndarray, jobs: Sequence[ReplayJob], leads: Sequence[int] = (1, 6, 24)
                   ) -> dict:
    """Mean absolute error (g/kWh) of the forecast and of persistence at a few leads, over the job arrivals."""
    errors = {f"lead_{k}h": [] for k in leads}
    persistence = {f"lead_{k}h": [] for k in leads}
    n_hours = intensity.shape[1]
    for t in sorted({j.arrival for j in jobs})[::4]:
        fc = forecaster.forecast(t, max(leads))
        for k in leads:
            if t + k - 1 < n_hours:
                errors[f"lead_{k}h"].append(np.abs(fc[:, k - 1] - intensity[:, t + k - 1]).mean())
                persistence[f"lead_{k}h"].append(np.abs(intensity[:, t - 1] - intensity[:, t + k - 1]).mean())
    return {
        "forecast": {k: round(float(np.mean(v)), 2) for k, v in errors.items()},
        "persistence": {k: round(float(np.mean(v)), 2) for k, v in persistence.items()},
    }


def _segments(runs: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Contiguous (start hour, end hour, site) pieces of a run log."""
    pieces: list[list[int]] = []
    for t, s in runs:
        if pieces and pieces[-1][1] == t and pieces[-1][2] == s:
            pieces[-1][1] = t + 1
        else:
            pieces.append([t, t + 1, s])
    return [tuple(p) for p in pieces]


def explain_job(out: dict, job_id: str, policy: str = "spatiotemporal", reference: str = "carbon_agnostic") -> str:
    """Where and when a job ran under ``policy`` and what that saved against ``reference``, in plain words.

    ``out`` is the result of :func:`replay` (with its ``results``, ``queue``, ``site_list`` and ``times``).
    """
    jobs = {j.id: (i, j) for i, j in enumerate(out["queue"])}
    if job_id not in jobs:
        raise KeyError(f"job '{job_id}' is not in the replayed queue")
    i, job = jobs[job_id]
    sites, times, intensity = out["site_list"], out["times"], out["intensity"]
    results = out["results"]

    def when(t: int) -> str:
        return times[t].strftime("%a %d %b %H:%M") if t < len(times) else f"hour {t}"

    def describe(name: str) -> tuple[str, float]:
        pieces = _segments(results[name].runs.get(job_id, []))
        def until(a: int, b: int) -> str:
            same_day = b < len(times) and times[b].date() == times[a].date()
            return when(b)[-5:] if same_day else when(b)

        parts = [
            f"{sites[s].zone} {when(a)}-{until(a, b)} (mean {intensity[s, a:b].mean():.0f} g/kWh)" for a, b, s in pieces
        ]
        return "; ".join(parts) or "not at all", float(results[name].job_emissions[i])

    kind = f"interruptible, {job.overhead:g} h restart overhead" if job.interruptible else "not interruptible"
    where, emitted = describe(policy)
    base_where, base_emitted = describe(reference)
    homes = "its home zone only" if len(job.allowed) == 1 else "any site"
    finish = results[policy].finish.get(job_id)
    deadline_note = "met" if finish is not None and finish <= job.deadline else "MISSED"
    saving = 100.0 * (1 - emitted / base_emitted) if base_emitted else float("nan")
    return (
        f"{job_id} ({job.gpus} GPUs, {job.hours} h, {kind}, may use {homes}) arrived {when(job.arrival)} "
        f"at home zone {sites[job.home].zone} with deadline {when(job.deadline)}. Under {policy} it ran {where}; "
        f"deadline {deadline_note}; {emitted:,.1f} kg CO2e vs {base_emitted:,.1f} kg under {reference} "
        f"({base_where}), {abs(saving):.0f}% {'less' if saving >= 0 else 'more'}."
    )


def queue_documents(out: dict) -> tuple[dict, dict]:
    """The replayed queue and sites as ``{"jobs": [...]}`` and ``{"sites": [...]}`` documents that
    :func:`carbonsync.placement.load_queue` and :func:`carbonsync.placement.load_sites` read (times UTC;
    site prices are 0 EUR/MWh, the replay does not price energy)."""
    times, sites = out["times"], out["site_list"]
    start = times[0]

    def iso(hour: int) -> str:
        return (start + pd.Timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M")

    jobs = [
        {
            "id": j.id, "gpus": j.gpus, "hours": j.hours, "earliest_start": iso(j.arrival), "deadline": iso(j.deadline),
            "interruptible": j.interruptible, "restart_overhead_h": j.overhead,
            "regions": [] if len(j.allowed) == len(sites) else [sites[s].id for s in j.allowed],
        }
        for j in out["queue"]
    ]
    site_docs = [{"id": s.id, "zone": s.zone, "gpus": s.gpus, "pue": s.pue, "price": 0.0, "gpu_kw": s.gpu_kw} for s in sites]
    return {"jobs": jobs}, {"sites": site_docs}
