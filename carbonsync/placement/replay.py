"""Replay placement policies hour by hour on observed grid carbon-intensity traces.

The traces are a ``(time, zone)`` dataset of hourly ``carbon_intensity`` (gCO2eq/kWh), e.g. from
:func:`carbonsync.data.observations.electricitymaps.load_traces`. One site per zone. Jobs and sites are
the library's :class:`~carbonsync.placement.Job` and :class:`~carbonsync.placement.Site`; a job's
``home`` is where carbon-agnostic placement runs it, its ``regions`` where it may run (empty: anywhere).

**Job queue** (:func:`generate_queue`, seeded; part of the replay experiment, so it stays in the library:
:func:`replay`, the benchmark CLI and the replay notebook draw it from the traces' span): arrivals uniform
over the replay span after a week of history (the forecast needs it) and early enough to finish by its
end; GPUs 8/16/32/64 (probabilities 0.35/0.30/0.20/0.15); duration ``round(exp(N(log 6, 0.8)))`` clipped
to 1..48 h; slack (deadline minus arrival minus duration) zero for 10 % of jobs, else ``U(0.25, 3) x`` the
duration clipped to 72 h; half interruptible with a restart overhead ``U(0.1, 0.5)`` h; a uniformly drawn
home site; 30 % may run only at home (data residency), the rest anywhere.

**Sites** (:func:`size_sites`): PUE drawn from 1.1..1.4 (seeded), 0.7 kW per busy GPU, price 0; GPU
capacity = ``headroom`` (1.5) times the site's peak concurrent use under carbon-agnostic placement,
rounded up to 8, and the cleanest zone's site (lowest mean intensity) is capped below the peak
concurrent use of the whole queue, so it cannot host every job at once.

**Forecast** (:class:`Forecaster`), made at hour ``t`` from data before ``t`` only: the mean daily profile
of the last 7 days plus the last hour's departure from it, decaying by ``phi ** (k + 1)`` at lead ``k``,
where ``phi`` is the lag-1 autocorrelation of those departures over all hours before ``t``.

**Policies** (:class:`Policy`: ``decide(state, t)`` returns the jobs to run in hour ``t`` and where; they
are registered by name, :func:`get_policy`; each hour, jobs that have arrived and are not finished;
energy = GPUs x kW per GPU x PUE x hours; each pause-and-resume or move to another site bills
``restart_overhead_h`` extra hours at the conditions of the hour and site it resumes in; a rigid job,
once started, runs to the end at its site):

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.time import HOUR
from carbonsync.placement.jobs import Job, PlacementError, Site
from carbonsync.placement.registry import Registry
from carbonsync.placement.search import best_option

HISTORY_H = 168


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


def hour_index(times: pd.DatetimeIndex, ts: pd.Timestamp) -> int:
    """Index of hour ``ts`` counted from ``times[0]`` (may be ``len(times)``, the end of the traces)."""
    return int((ts - times[0]) / HOUR)


def generate_queue(n_jobs: int, times: pd.DatetimeIndex, site_ids: Sequence[str], seed: int = 0) -> list[Job]:
    """The documented random queue (see the module docstring) over ``times``, sorted by arrival."""
    if n_jobs < 1:
        raise PlacementError(f"jobs must be >= 1, got {n_jobs}")
    n_hours, n_sites = len(times), len(site_ids)
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
    start = times[0]
    return [
        Job(
            id=f"job{rank:05d}",
            gpus=int(gpus[j]),
            hours=int(hours[j]),
            earliest_start=start + int(arrival[j]) * HOUR,
            deadline=start + int(arrival[j] + hours[j] + slack[j]) * HOUR,
            interruptible=bool(interruptible[j]),
            restart_overhead_h=float(round(overhead[j], 3)),
            regions=(site_ids[home[j]],) if home_only[j] else (),
            home=site_ids[home[j]],
        )
        for rank, j in enumerate(order)
    ]


def size_sites(zones: Sequence[str], times: pd.DatetimeIndex, intensity: np.ndarray, jobs: Sequence[Job],
               headroom: float = 1.5, seed: int = 0) -> list[Site]:
    """Sites ``site-<zone>`` sized from the carbon-agnostic peak use (see the module docstring)."""
    n_hours = intensity.shape[1]
    index = {f"site-{z}": i for i, z in enumerate(zones)}
    use = np.zeros((len(zones), n_hours + 1), dtype=np.int64)
    for job in jobs:
        arrival = hour_index(times, job.earliest_start)
        use[index[job.home], arrival : arrival + job.hours] += job.gpus
    peak_total = int(use.sum(axis=0).max())
    capacity = np.maximum(8, np.ceil(headroom * use.max(axis=1) / 8) * 8).astype(int)
    cleanest = int(np.argmin(intensity.mean(axis=1)))
    if capacity[cleanest] >= peak_total:
        capacity[cleanest] = max(8, (peak_total - 1) // 8 * 8)
    rng = np.random.default_rng(seed + 1)
    pue = np.round(rng.uniform(1.1, 1.4, len(zones)), 2)
    return [Site(id=f"site-{z}", zone=z, gpus=int(capacity[i]), pue=float(pue[i]), price=0.0) for i, z in enumerate(zones)]


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


class PerfectForecast:
    """The realised intensities themselves: the oracle's perfect foresight."""

    def __init__(self, intensity: np.ndarray):
        self.intensity = intensity

    def forecast(self, t: int, horizon: int) -> np.ndarray:
        window = self.intensity[:, t : t + horizon]
        if window.shape[1] < horizon:  # past the end of the traces: repeat the last hour
            window = np.concatenate([window, np.repeat(self.intensity[:, -1:], horizon - window.shape[1], axis=1)], axis=1)
        return window


# --- the hour-by-hour state ------------------------------------------------------------------------------------


class ReplayState:
    """The replay's own state: the queue and sites as hour-index arrays, progress, and the accounting.

    ``intensity`` is ``(site, time)`` (row ``i`` for ``sites[i]``); ``arrival``/``deadline`` are hour
    indices into ``times`` (``deadline`` exclusive); ``allowed[i]`` the site indices job ``i`` may use;
    :meth:`step` executes one hour's decisions, enforcing capacity, regions and rigid jobs."""

    def __init__(self, jobs: Sequence[Job], sites: Sequence[Site], times: pd.DatetimeIndex, intensity: np.ndarray,
                 policy: str, forecaster: Any = None):
        self.jobs, self.sites, self.times, self.intensity = list(jobs), list(sites), times, intensity
        self.forecaster = forecaster
        if intensity.shape != (len(self.sites), len(times)):
            raise PlacementError(f"replay: intensity has shape {intensity.shape}, expected (sites, times) = "
                                 f"({len(self.sites)}, {len(times)})")
        index = {s.id: i for i, s in enumerate(self.sites)}
        everywhere = tuple(range(len(self.sites)))
        for job in self.jobs:
            unknown = [r for r in (*job.regions, job.home) if r and r not in index]
            if unknown:
                raise PlacementError(f"replay: job '{job.id}' names unknown site(s) {unknown}")
        self.capacity = np.array([s.gpus for s in sites])
        self.kw = np.array([s.gpu_kw * s.pue for s in sites])
        self.gpus = np.array([j.gpus for j in self.jobs], dtype=np.int64)
        self.arrival = np.array([hour_index(times, j.earliest_start) for j in self.jobs], dtype=np.int64)
        self.deadline = np.array([hour_index(times, j.deadline) for j in self.jobs], dtype=np.int64)
        self.interruptible = [j.interruptible for j in self.jobs]
        self.overhead = [j.restart_overhead_h for j in self.jobs]
        self.allowed = [tuple(index[r] for r in j.regions) if j.regions else everywhere for j in self.jobs]
        self.home = [index[j.home] if j.home else self.allowed[i][0] for i, j in enumerate(self.jobs)]
        n = len(self.jobs)
        self.remaining = np.array([j.hours for j in self.jobs])
        self.site = np.full(n, -1)  # where it last ran
        self.ran_last_hour = np.zeros(n, dtype=bool)
        self.started = np.zeros(n, dtype=bool)
        self.result = PolicyResult(policy)
        self.result.usage = np.zeros((len(sites), intensity.shape[1]), dtype=np.int64)
        self.result.job_emissions = np.zeros(n)
        self._by_arrival = sorted(range(n), key=lambda i: self.arrival[i])
        self._next = 0
        self._active: list[int] = []

    @property
    def arrivals_left(self) -> bool:
        return self._next < len(self._by_arrival)

    def active(self, t: int) -> list[int]:
        """Jobs that have arrived by hour ``t`` and are not finished."""
        while self._next < len(self._by_arrival) and self.arrival[self._by_arrival[self._next]] <= t:
            self._active.append(self._by_arrival[self._next])
            self._next += 1
        self._active = [i for i in self._active if self.remaining[i] > 0]
        return list(self._active)

    def slack(self, i: int, t: int) -> int:
        return int(self.deadline[i]) - t - int(self.remaining[i])

    def step(self, t: int, decisions: dict[int, int]) -> None:
        """Run job ``i`` at site ``decisions[i]`` during hour ``t``; others pause or wait."""
        load = np.zeros(len(self.sites), dtype=np.int64)
        for i, s in decisions.items():
            if s not in self.allowed[i] and s != self.home[i]:
                raise PlacementError(f"policy {self.result.policy}: job {self.jobs[i].id} sent to a site it may not use")
            load[s] += self.gpus[i]
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
                billed += self.overhead[i]
                self.result.restarts += 1
                self.result.migrations += int(self.site[i] != s)
            energy = self.gpus[i] * self.kw[s] * billed
            emissions = energy * self.intensity[s, t] / 1000.0
            self.result.energy_kwh += energy
            self.result.emissions_kg += emissions
            self.result.job_emissions[i] += emissions
            self.result.usage[s, t] += self.gpus[i]
            self.result.runs.setdefault(job.id, []).append((t, s))
            self.started[i] = True
            self.site[i] = s
            self.remaining[i] -= 1
            running_now[i] = True
            if self.remaining[i] == 0:
                self.result.finish[job.id] = t + 1
                self.result.deadline_misses += int(t + 1 > self.deadline[i])
        self.ran_last_hour = running_now  # (a full array: jobs not run this hour did not run)

    def committed(self, t: int) -> dict[int, int]:
        """Rigid jobs already running: they continue where they are."""
        return {i: int(self.site[i]) for i in self.active(t) if self.ran_last_hour[i] and not self.interruptible[i]}

    def fill(self, decisions: dict[int, int], candidates: list[int], where: Callable[[int], int | None]) -> None:
        """Add jobs in order to ``decisions`` at ``where(i)`` while the site has room."""
        load = np.zeros(len(self.sites), dtype=np.int64)
        for i, s in decisions.items():
            load[s] += self.gpus[i]
        for i in candidates:
            if i in decisions:
                continue
            s = where(i)
            if s is not None and load[s] + self.gpus[i] <= self.capacity[s]:
                decisions[i] = s
                load[s] += self.gpus[i]


# --- policies ----------------------------------------------------------------------------------------------------


@runtime_checkable
class Policy(Protocol):
    """Decides, hour by hour, which active jobs run in hour ``t`` and where: ``{job index: site index}``
    (it must keep the :meth:`ReplayState.committed` rigid jobs where they are)."""

    def decide(self, state: ReplayState, t: int) -> dict[int, int]: ...


POLICIES_REGISTRY: Registry[Policy] = Registry("policy", "policies")


def register_policy(name: str) -> Callable[[Callable[..., Policy]], Callable[..., Policy]]:
    """Decorator registering a :class:`Policy` factory under ``name``."""
    return POLICIES_REGISTRY.register(name)


def get_policy(name: str, **options: Any) -> Policy:
    """The policy registered as ``name``, built with ``options``; :class:`PlacementError` lists the known names."""
    return POLICIES_REGISTRY.get(name, **options)


@register_policy("carbon_agnostic")
class CarbonAgnostic:
    """Start at arrival at the home site, run to the end."""

    def decide(self, state: ReplayState, t: int) -> dict[int, int]:
        decisions = state.committed(t)
        state.fill(decisions, sorted(state.active(t), key=lambda i: state.arrival[i]), lambda i: state.home[i])
        return decisions


@register_policy("threshold")
class Threshold:
    """At home, run an hour only if the last observed intensity is at most the past week's median."""

    def decide(self, state: ReplayState, t: int) -> dict[int, int]:
        threshold = np.median(state.intensity[:, max(0, t - HISTORY_H) : t], axis=1)
        decisions = state.committed(t)
        active = sorted(state.active(t), key=lambda i: (state.slack(i, t), state.arrival[i]))

        def go(i: int) -> int | None:
            home = state.home[i]
            clean = state.intensity[home, t - 1] <= threshold[home]
            return home if clean or state.slack(i, t) <= 0 else None

        state.fill(decisions, active, go)
        return decisions


class Planned:
    """Re-plan all active jobs every hour on a forecast (tightest first, under capacity) and run what the
    plan starts now; ``spatial`` over the job's allowed sites (else at home), ``perfect`` on the realised
    intensities (else on ``state.forecaster``). Jobs with slack left may plan into only ``1 - reserve`` of
    each site's GPUs, so that jobs arriving later with no slack still find room."""

    def __init__(self, spatial: bool, perfect: bool = False, horizon: int = 168, reserve: float = 0.2):
        self.spatial, self.perfect, self.horizon, self.reserve = spatial, perfect, horizon, reserve

    def decide(self, state: ReplayState, t: int) -> dict[int, int]:
        active = state.active(t)
        if not active:
            return {}
        forecaster = PerfectForecast(state.intensity) if self.perfect else state.forecaster
        if forecaster is None:
            raise PlacementError(f"policy {state.result.policy} needs a forecaster")
        width = min(self.horizon, max(int(state.deadline[i]) for i in active) - t)
        return self._plan(state, t, forecaster.forecast(t, max(width, 1)))

    def _plan(self, state: ReplayState, t: int, forecast: np.ndarray) -> dict[int, int]:
        decisions = state.committed(t)
        horizon = forecast.shape[1]
        free = np.repeat(state.capacity[:, None], horizon, axis=1)
        for i, s in decisions.items():
            free[s, : state.remaining[i]] -= state.gpus[i]
        value = state.kw[:, None] * forecast / 1000.0  # kg per GPU-hour
        active = [i for i in state.active(t) if i not in decisions]
        active.sort(key=lambda i: (state.slack(i, t), state.deadline[i], state.arrival[i]))
        late = []
        for i in active:
            rows = np.array(state.allowed[i] if self.spatial else (state.home[i],))
            width = min(int(state.deadline[i]) - t, horizon)
            h = int(state.remaining[i])
            if width < h:
                late.append(i)
                continue
            gpus, overhead = int(state.gpus[i]), state.overhead[i]
            cost = gpus * value[rows, :width]
            kept = 0 if state.slack(i, t) <= 0 else np.ceil(self.reserve * state.capacity[rows])[:, None]
            blocked = free[rows, :width] - kept < gpus
            first_cost = None
            if state.started[i] and overhead > 0:
                first_cost = overhead * cost
                if state.ran_last_hour[i] and state.site[i] in rows:
                    first_cost = first_cost.copy()
                    first_cost[int(np.flatnonzero(rows == state.site[i])[0]), 0] = 0.0
            total, r, where = best_option(cost, blocked, h, state.interruptible[i], overhead, first_cost=first_cost)
            if not np.isfinite(total):
                late.append(i)
                continue
            s = int(rows[r])
            slots = np.flatnonzero(where) if isinstance(where, np.ndarray) else np.arange(where, where + h)
            free[s, slots] -= gpus
            if slots[0] == 0:
                decisions[i] = s

        # jobs that cannot meet their deadline any more: run now wherever there is room, home first
        def anywhere(i: int) -> int | None:
            load = np.zeros(len(state.sites), dtype=np.int64)
            for k, s in decisions.items():
                load[s] += state.gpus[k]
            for s in (state.home[i], *(state.allowed[i] if self.spatial else ())):
                if load[s] + state.gpus[i] <= state.capacity[s]:
                    return s
            return None

        state.fill(decisions, late, anywhere)
        return decisions


register_policy("temporal")(lambda **kw: Planned(spatial=False, **kw))
register_policy("spatiotemporal")(lambda **kw: Planned(spatial=True, **kw))
register_policy("oracle")(lambda **kw: Planned(spatial=True, perfect=True, **kw))

POLICIES = POLICIES_REGISTRY.names()


def simulate(
    policy: str | Policy,
    jobs: Sequence[Job],
    sites: Sequence[Site],
    times: pd.DatetimeIndex,
    intensity: np.ndarray,
    forecaster: Any = None,
    **policy_options: Any,
) -> PolicyResult:
    """Replay one policy hour by hour over the traces (see the module docstring).

    ``intensity`` is ``(site, time)``, row ``i`` for ``sites[i]``; ``policy`` a registered name (built
    with ``policy_options``, e.g. ``horizon`` and ``reserve`` for the planning policies) or a
    :class:`Policy`."""
    name = policy if isinstance(policy, str) else type(policy).__name__
    decide = get_policy(policy, **policy_options) if isinstance(policy, str) else policy
    started = time.perf_counter()
    state = ReplayState(jobs, sites, pd.DatetimeIndex(times), np.asarray(intensity, dtype=np.float64), name, forecaster)
    first = int(state.arrival.min())
    for t in range(first, intensity.shape[1]):
        if not state.arrivals_left and not state.active(t):
            break
        state.step(t, decide.decide(state, t))
    unfinished = [j.id for i, j in enumerate(jobs) if state.remaining[i] > 0]
    state.result.deadline_misses += len(unfinished)
    state.result.seconds = time.perf_counter() - started
    return state.result


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
    jobs = generate_queue(n_jobs, times, [f"site-{z}" for z in zones], seed)
    sites = size_sites(zones, times, intensity, jobs, headroom, seed)
    forecaster = Forecaster(intensity, times)
    results = {p: simulate(p, jobs, sites, times, intensity, forecaster) for p in policies}
    out: dict = {
        "span": [str(times[0]), str(times[-1])],
        "hours": n_hours,
        "zones": zones,
        "jobs": n_jobs,
        "seed": seed,
        "sites": {s.id: {"gpus": s.gpus, "pue": s.pue} for s in sites},
        "forecast_mae": forecast_skill(forecaster, intensity, [hour_index(times, j.earliest_start) for j in jobs]),
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


def forecast_skill(forecaster: Forecaster, intensity: np.ndarray, arrivals: Sequence[int], leads: Sequence[int] = (1, 6, 24)
                   ) -> dict:
    """Mean absolute error (g/kWh) of the forecast and of persistence at a few leads, over every fourth of
    the distinct job arrival hours."""
    errors = {f"lead_{k}h": [] for k in leads}
    persistence = {f"lead_{k}h": [] for k in leads}
    n_hours = intensity.shape[1]
    for t in sorted(set(int(a) for a in arrivals))[::4]:
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

    kind = f"interruptible, {job.restart_overhead_h:g} h restart overhead" if job.interruptible else "not interruptible"
    where, emitted = describe(policy)
    base_where, base_emitted = describe(reference)
    homes = "its home zone only" if len(job.regions) == 1 else "any site"
    finish = results[policy].finish.get(job_id)
    arrival, deadline = hour_index(times, job.earliest_start), hour_index(times, job.deadline)
    home = next((s for s in sites if s.id == job.home), sites[0])
    deadline_note = "met" if finish is not None and finish <= deadline else "MISSED"
    saving = 100.0 * (1 - emitted / base_emitted) if base_emitted else float("nan")
    return (
        f"{job_id} ({job.gpus} GPUs, {job.hours} h, {kind}, may use {homes}) arrived {when(arrival)} "
        f"at home zone {home.zone} with deadline {when(deadline)}. Under {policy} it ran {where}; "
        f"deadline {deadline_note}; {emitted:,.1f} kg CO2e vs {base_emitted:,.1f} kg under {reference} "
        f"({base_where}), {abs(saving):.0f}% {'less' if saving >= 0 else 'more'}."
    )


def queue_documents(out: dict) -> tuple[dict, dict]:
    """The replayed queue and sites as ``{"jobs": [...]}`` and ``{"sites": [...]}`` documents that
    :func:`carbonsync.placement.load_queue` and :func:`carbonsync.placement.load_sites` read (times UTC;
    site prices are 0 EUR/MWh, the replay does not price energy)."""
    sites = out["site_list"]

    def iso(ts: pd.Timestamp) -> str:
        return ts.strftime("%Y-%m-%dT%H:%M")

    jobs = [
        {
            "id": j.id, "gpus": j.gpus, "hours": j.hours, "earliest_start": iso(j.earliest_start),
            "deadline": iso(j.deadline), "interruptible": j.interruptible, "restart_overhead_h": j.restart_overhead_h,
            "regions": list(j.regions), "home": j.home,
        }
        for j in out["queue"]
    ]
    site_docs = [{"id": s.id, "zone": s.zone, "gpus": s.gpus, "pue": s.pue, "price": s.price, "gpu_kw": s.gpu_kw}
                 for s in sites]
    return {"jobs": jobs}, {"sites": site_docs}
