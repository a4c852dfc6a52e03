"""Queue-level placement on arrays: a vectorised greedy heuristic, an exact MILP (HiGHS) and its gap.

A :class:`Problem` holds one objective value per GPU-hour at each site and hour, ``value[s, t] =
carbon * emissions[s, t] / carbon_ref + price * cost[s, t] / price_ref`` (per busy GPU, PUE included),
where the references are the mean per-GPU-hour emissions and cost over all sites and hours, so a value
of 1 is a typical GPU-hour and with ``price = 0`` the objective is the queue's total emissions (kg CO2e
divided by ``carbon_ref``). A job running ``gpus`` GPUs in hour ``t`` at site ``s`` costs ``gpus *
value[s, t]``; every segment of an interruptible job after the first costs ``restart_overhead_h`` times
the value of the hour it resumes in (energy for checkpoint reload and warm-up), as in
:class:`carbonsync.placement.rank.JobCosts`. A job runs at one site; capacity is GPUs per site and hour.

:func:`solve_greedy` places jobs tightest-first (least slack, then earliest deadline, then largest
GPU-hours), each at the cheapest option with free GPUs: for a rigid job the best contiguous window (a
cumulative-sum sliding minimum over all allowed sites at once), for an interruptible job the better of
that and the ``hours`` cheapest free hours of each site plus their restart overheads. Optional
improvement passes take each job out and put it back at its best option given all the others (never
worse). :func:`solve_milp` solves the same objective exactly with ``scipy.optimize.milp`` over binaries
``x[job, site, start]`` for rigid jobs and ``y[job, site, hour]`` for interruptible ones; when the queue
is infeasible it solves a second MILP that leaves the fewest jobs out and names them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from carbonsync.placement.jobs import HOUR, Job, PlacementError, Site, check_regions, fmt_time


@dataclass(frozen=True, eq=False)
class Problem:
    """Arrays of a placement problem: jobs (``J``), sites (``S``) and hourly slots (``T``).

    ``first``/``last`` bound each job's window ``[first, last)`` in slot indices; ``allowed[j, s]`` is
    true where the job may run at the site and the site has enough GPUs for it.
    """

    job_ids: tuple[str, ...]
    site_ids: tuple[str, ...]
    times: pd.DatetimeIndex
    gpus: np.ndarray
    hours: np.ndarray
    first: np.ndarray
    last: np.ndarray
    interruptible: np.ndarray
    overhead: np.ndarray
    allowed: np.ndarray
    capacity: np.ndarray
    value: np.ndarray
    emissions_kg: np.ndarray
    cost_eur: np.ndarray
    power_kw: np.ndarray

    @property
    def n_jobs(self) -> int:
        return len(self.job_ids)

    @property
    def n_sites(self) -> int:
        return len(self.site_ids)

    @property
    def slack(self) -> np.ndarray:
        return self.last - self.first - self.hours

    @classmethod
    def from_arrays(
        cls,
        *,
        gpus: np.ndarray,
        hours: np.ndarray,
        first: np.ndarray,
        last: np.ndarray,
        capacity: np.ndarray,
        intensity: np.ndarray,
        power_kw: np.ndarray,
        price: np.ndarray | None = None,
        interruptible: np.ndarray | None = None,
        overhead: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        carbon: float = 1.0,
        price_weight: float = 0.0,
        times: pd.DatetimeIndex | None = None,
        job_ids: Sequence[str] | None = None,
        site_ids: Sequence[str] | None = None,
    ) -> Problem:
        """Build from plain arrays: ``intensity`` (S, T) gCO2e/kWh, ``power_kw`` (S,) per busy GPU with PUE,
        ``price`` (S, T) EUR/MWh (default 0)."""
        intensity = np.asarray(intensity, dtype=np.float64)
        n_sites, n_slots = intensity.shape
        gpus = np.asarray(gpus, dtype=np.int64)
        n_jobs = len(gpus)
        power_kw = np.asarray(power_kw, dtype=np.float64)
        price = np.zeros_like(intensity) if price is None else np.asarray(price, dtype=np.float64)
        capacity = np.asarray(capacity, dtype=np.int64)
        emissions = power_kw[:, None] * intensity / 1000.0
        cost = power_kw[:, None] / 1000.0 * price
        carbon_ref = float(emissions.mean()) or 1.0
        price_ref = float(np.abs(cost).mean()) or 1.0
        value = carbon * emissions / carbon_ref + price_weight * cost / price_ref
        allowed = np.ones((n_jobs, n_sites), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
        allowed = allowed & (gpus[:, None] <= capacity[None, :])
        return cls(
            job_ids=tuple(job_ids) if job_ids is not None else tuple(f"j{i}" for i in range(n_jobs)),
            site_ids=tuple(site_ids) if site_ids is not None else tuple(f"s{i}" for i in range(n_sites)),
            times=times if times is not None else pd.date_range("2000-01-01", periods=n_slots, freq="h"),
            gpus=gpus,
            hours=np.asarray(hours, dtype=np.int64),
            first=np.asarray(first, dtype=np.int64),
            last=np.asarray(last, dtype=np.int64),
            interruptible=np.zeros(n_jobs, bool) if interruptible is None else np.asarray(interruptible, bool),
            overhead=np.zeros(n_jobs) if overhead is None else np.asarray(overhead, dtype=np.float64),
            allowed=allowed,
            capacity=capacity,
            value=value,
            emissions_kg=emissions,
            cost_eur=cost,
            power_kw=power_kw,
        )


def build_problem(jobs: Sequence[Job], sites: Sequence[Site], forecast: xr.Dataset, weights=None) -> Problem:
    """A :class:`Problem` from jobs, sites and a zone forecast (the slots span the forecast's times)."""
    from carbonsync.placement.rank import Weights, as_forecast

    weights = weights or Weights()
    fc = as_forecast(forecast)
    jobs, sites = list(jobs), list(sites)
    if not jobs:
        raise PlacementError("no jobs to place")
    if not sites:
        raise PlacementError("no sites to place jobs at")
    check_regions(jobs, sites)
    zones = [fc.zone_index(s) for s in sites]
    intensity = fc.carbon_intensity[:, zones].T
    first, last = [], []
    for job in jobs:
        window = fc.window(job)
        first.append(window.start)
        last.append(window.stop)
    used = np.zeros(len(fc.times), dtype=bool)
    for f, l in zip(first, last, strict=True):
        used[f:l] = True
    bad = ~np.isfinite(intensity) & used[None, :]
    if bad.any():
        s, t = np.argwhere(bad)[0]
        raise PlacementError(f"forecast carbon_intensity is missing (NaN) in zone '{sites[s].zone}' at {fmt_time(fc.times[t])}")
    prices = np.stack([s.prices(fc.times) for s in sites])
    if weights.price > 0 and (~np.isfinite(prices) & used[None, :]).any():
        s, t = np.argwhere(~np.isfinite(prices) & used[None, :])[0]
        raise PlacementError(f"site '{sites[s].id}' has no price at {fmt_time(fc.times[t])}")
    site_ids = [s.id for s in sites]
    allowed = np.array([[not j.regions or s in j.regions for s in site_ids] for j in jobs], dtype=bool)
    return Problem.from_arrays(
        gpus=[j.gpus for j in jobs],
        hours=[j.hours for j in jobs],
        first=first,
        last=last,
        capacity=[s.gpus for s in sites],
        intensity=np.nan_to_num(intensity, nan=0.0),
        power_kw=[s.gpu_kw * s.pue for s in sites],
        price=np.nan_to_num(prices, nan=0.0),
        interruptible=[j.interruptible for j in jobs],
        overhead=[j.restart_overhead_h for j in jobs],
        allowed=allowed,
        carbon=weights.carbon,
        price_weight=weights.price,
        times=fc.times,
        job_ids=[j.id for j in jobs],
        site_ids=site_ids,
    )


@dataclass(eq=False)
class Plan:
    """A solution: ``site[j]`` (index, -1 if unplaced) and ``run[j, t]`` (job runs in slot t)."""

    site: np.ndarray
    run: np.ndarray
    solver: str
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    def slots(self, j: int) -> np.ndarray:
        return np.flatnonzero(self.run[j])


# --- evaluation and checks -----------------------------------------------------------------------------------


def resumes(run: np.ndarray) -> np.ndarray:
    """Slots where a segment starts that is not a job's first (rows are jobs)."""
    run = np.asarray(run, dtype=bool)
    begins = run.copy()
    begins[:, 1:] &= ~run[:, :-1]
    first = np.argmax(begins, axis=1)
    out = begins.copy()
    out[np.arange(len(run)), first] = False
    return out


def evaluate(problem: Problem, plan: Plan) -> dict:
    """Objective, emissions, cost and energy of a plan (restart overheads included)."""
    placed = plan.site >= 0
    j_idx = np.flatnonzero(placed)
    if not len(j_idx):
        return {"objective": 0.0, "emissions_kg": 0.0, "cost_eur": 0.0, "energy_kwh": 0.0, "segments": 0}
    run = plan.run[j_idx]
    billed = run + problem.overhead[j_idx, None] * resumes(run)
    rows = plan.site[j_idx]
    g = problem.gpus[j_idx, None]
    return {
        "objective": float((g * billed * problem.value[rows]).sum()),
        "emissions_kg": float((g * billed * problem.emissions_kg[rows]).sum()),
        "cost_eur": float((g * billed * problem.cost_eur[rows]).sum()),
        "energy_kwh": float((g[:, 0] * problem.power_kw[rows] * billed.sum(axis=1)).sum()),
        "segments": int((run & ~np.pad(run, ((0, 0), (1, 0)))[:, :-1]).sum()),
    }


def check_plan(problem: Problem, plan: Plan) -> None:
    """Raise :class:`PlacementError` if the plan breaks a window, a duration, a region or capacity."""
    usage = np.zeros((problem.n_sites, len(problem.times)), dtype=np.int64)
    for j in range(problem.n_jobs):
        s, slots = int(plan.site[j]), plan.slots(j)
        name = problem.job_ids[j]
        if s < 0:
            raise PlacementError(f"job '{name}' is not placed")
        if not problem.allowed[j, s]:
            raise PlacementError(f"job '{name}' runs at site '{problem.site_ids[s]}', which it may not use")
        if len(slots) != problem.hours[j]:
            raise PlacementError(f"job '{name}' runs {len(slots)} h, it needs {problem.hours[j]}")
        if slots[0] < problem.first[j] or slots[-1] >= problem.last[j]:
            raise PlacementError(f"job '{name}' runs outside its window")
        if not problem.interruptible[j] and slots[-1] - slots[0] + 1 != len(slots):
            raise PlacementError(f"job '{name}' is not interruptible but runs in several segments")
        usage[s, slots] += problem.gpus[j]
    over = usage > problem.capacity[:, None]
    if over.any():
        s, t = np.argwhere(over)[0]
        raise PlacementError(
            f"site '{problem.site_ids[s]}' uses {usage[s, t]} GPUs of {problem.capacity[s]} at {fmt_time(problem.times[t])}"
        )


def _unfit_messages(problem: Problem) -> list[str]:
    """Jobs that cannot run even alone: no allowed site has enough GPUs."""
    out = []
    for j in np.flatnonzero(~problem.allowed.any(axis=1)):
        out.append(f"'{problem.job_ids[j]}' needs {problem.gpus[j]} GPUs and no allowed site has that many")
    return out


# --- greedy heuristic ----------------------------------------------------------------------------------------


def best_option(
    cost: np.ndarray,
    blocked: np.ndarray,
    hours: int,
    interruptible: bool,
    overhead: float,
    first_cost: np.ndarray | None = None,
    exact: bool = False,
) -> tuple[float, int, np.ndarray | int]:
    """Cheapest placement of one job over candidate rows (sites) and window slots.

    ``cost`` (R, W) is the job's cost per slot, ``blocked`` where it cannot run, ``first_cost`` (R, W) an
    extra cost for the first segment starting at a slot (e.g. resuming a paused job). An interruptible job
    takes the better of the best block and its ``hours`` cheapest free slots (plus restart overheads), or,
    with ``exact`` (and no ``first_cost``), the optimal set of hours by dynamic programming
    (:func:`carbonsync.placement.rank.best_hours`, one Python step per slot). Returns ``(total,
    row, start)`` for a contiguous block or ``(total, row, mask)`` for a set of hours; ``total`` is inf
    when nothing fits.
    """
    n_rows, width = cost.shape
    if hours > width or n_rows == 0:
        return np.inf, -1, 0
    masked = np.where(blocked, np.inf, cost)
    sums = sliding_window_view(masked, hours, axis=1).sum(axis=2)  # inf where a block hits a blocked slot
    if first_cost is not None:
        sums = sums + first_cost[:, : width - hours + 1]
    flat = int(np.argmin(sums))
    row, start = divmod(flat, sums.shape[1])
    best: tuple[float, int, np.ndarray | int] = (float(sums[row, start]), row, start)
    if interruptible and hours < width and exact and first_cost is None:
        from carbonsync.placement.rank import best_hours

        chosen, totals = best_hours(masked, hours, overhead * cost)
        r = int(np.argmin(totals))
        if _better(totals[r], best[0]):
            best = (float(totals[r]), r, chosen[r])
    elif interruptible and hours < width:
        kth = np.partition(masked, hours - 1, axis=1)[:, hours - 1 : hours]
        chosen = masked <= kth
        if (chosen.sum(axis=1) != hours).any():  # ties at the threshold: pick exactly `hours`
            pick = np.argpartition(masked, hours - 1, axis=1)[:, :hours]
            chosen = np.zeros((n_rows, width), dtype=bool)
            np.put_along_axis(chosen, pick, True, axis=1)
        begins = chosen.copy()
        begins[:, 1:] &= ~chosen[:, :-1]
        first = np.argmax(begins, axis=1)
        first_value = cost[np.arange(n_rows), first]
        totals = np.where(chosen, masked, 0.0).sum(axis=1) + overhead * (np.where(begins, cost, 0.0).sum(axis=1) - first_value)
        totals[~np.isfinite(kth[:, 0])] = np.inf
        if first_cost is not None:
            totals = totals + first_cost[np.arange(n_rows), first]
        r = int(np.argmin(totals))
        if _better(totals[r], best[0]):
            best = (float(totals[r]), r, chosen[r])
    return best


def _better(candidate: float, incumbent: float) -> bool:
    """``candidate`` is lower than ``incumbent`` by more than rounding (any finite value beats inf)."""
    if not np.isfinite(incumbent):
        return bool(np.isfinite(candidate))
    return bool(candidate < incumbent - 1e-12 * max(1.0, abs(incumbent)))


def priority_order(problem: Problem, rule: str = "slack", ranked: np.ndarray | None = None) -> np.ndarray:
    """Order in which the greedy places jobs.

    ``slack``: least slack, then earliest deadline, then most GPU-hours (feasibility first).
    ``spread``: largest gain of the job's best site over its mean allowed site, per hour of slack + 1
    (jobs that lose most by being displaced go first); needs ``ranked`` from :func:`rank_all`.
    ``size``: most GPU-hours first (packs capacity tightly, as first-fit decreasing does).
    ``perturbed:<seed>``: one of those three, drawn and shuffled locally with the seed.
    """
    index = np.arange(problem.n_jobs)
    if rule == "slack":
        return np.lexsort((index, -problem.gpus * problem.hours, problem.last, problem.slack))
    if rule == "spread":
        if ranked is None:
            ranked, _ = rank_all(problem)
        finite = np.isfinite(ranked)
        best = np.where(finite, ranked, np.inf).min(axis=1)
        mean = np.where(finite, ranked, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
        gain = np.where(np.isfinite(best), mean - best, 0.0) / (1.0 + problem.slack)
        return np.lexsort((index, problem.slack, -gain))
    if rule == "size":
        return np.lexsort((index, problem.slack, -problem.gpus * problem.hours))
    if rule.startswith("perturbed:"):  # one of the orders, randomly perturbed, seeded: "perturbed:<seed>"
        rng = np.random.default_rng(int(rule.split(":", 1)[1]))
        position = np.empty(problem.n_jobs)
        base = priority_order(problem, str(rng.choice(["slack", "spread", "size"])), ranked)
        position[base] = np.arange(problem.n_jobs)
        return np.argsort(position + rng.normal(0.0, problem.n_jobs / 4, problem.n_jobs), kind="stable")
    raise PlacementError(f"unknown greedy order '{rule}'; use 'slack', 'spread', 'size' or 'perturbed:<seed>'")


class _Greedy:
    """State of one greedy run: free GPUs, sites and slots of every job."""

    def __init__(self, problem: Problem, candidates: list[np.ndarray], exact: bool):
        self.problem = problem
        self.exact = exact
        self.candidates = candidates
        self.allowed_rows = [np.flatnonzero(row) for row in problem.allowed]
        self.free = np.repeat(problem.capacity[:, None], len(problem.times), axis=1)
        self.site = np.full(problem.n_jobs, -1, dtype=np.int64)
        self.run = np.zeros((problem.n_jobs, len(problem.times)), dtype=bool)
        p = problem
        self.gpus, self.hours, self.first, self.last = (a.tolist() for a in (p.gpus, p.hours, p.first, p.last))
        self.inter, self.overhead = p.interruptible.tolist(), p.overhead.tolist()

    def place(self, j: int) -> bool:
        """Put job ``j`` at its cheapest option with free GPUs (its candidate sites first, then all)."""
        f, l, g = self.first[j], self.last[j], self.gpus[j]
        for rows in (self.candidates[j], self.allowed_rows[j]):
            if not len(rows):
                continue
            cost = self.problem.value[rows, f:l] * g
            blocked = self.free[rows, f:l] < g
            total, r, where = best_option(cost, blocked, self.hours[j], self.inter[j], self.overhead[j], exact=self.exact)
            if np.isfinite(total):
                break
            if len(rows) == len(self.allowed_rows[j]):
                return False
        else:
            return False
        s = int(rows[r])
        if isinstance(where, np.ndarray):
            self.run[j, f:l] = where
        else:
            self.run[j, f + where : f + where + self.hours[j]] = True
        self.site[j] = s
        self.free[s, self.run[j]] -= g
        return True

    def remove(self, j: int) -> None:
        if self.site[j] >= 0:
            self.free[self.site[j], self.run[j]] += self.gpus[j]
            self.run[j] = False
            self.site[j] = -1

    def cost(self, j: int) -> float:
        """Objective of job ``j`` where it is now (restart overheads included)."""
        s, run = self.site[j], self.run[j]
        if s < 0:
            return np.inf
        begins = np.flatnonzero(run & ~np.concatenate([[False], run[:-1]]))
        values = self.problem.value[s]
        return self.gpus[j] * (values[run].sum() + self.overhead[j] * values[begins[1:]].sum())

    def put(self, j: int, s: int, run: np.ndarray) -> None:
        self.site[j] = s
        self.run[j] = run
        self.free[s, run] -= self.gpus[j]

    def snapshot(self, jobs: list[int]) -> dict[int, tuple[int, np.ndarray]]:
        """Where ``jobs`` are now, for :meth:`restore`."""
        return {k: (int(self.site[k]), self.run[k].copy()) for k in jobs}

    def restore(self, before: dict[int, tuple[int, np.ndarray]]) -> None:
        """Put the jobs of a :meth:`snapshot` back where they were (a rejected move)."""
        for k in before:
            self.remove(k)
        for k, (site, run) in before.items():
            self.put(k, site, run)

    def _targets(self, j: int, s: int, n_options: int) -> list[tuple[float, np.ndarray]]:
        """The job's ``n_options`` cheapest placements at site ``s`` as if the site were empty."""
        f, l, h = self.first[j], self.last[j], self.hours[j]
        cost = self.problem.value[s, f:l] * self.gpus[j]
        out = []
        sums = sliding_window_view(cost, h).sum(axis=1)
        for k in np.argsort(sums, kind="stable")[:n_options]:
            run = np.zeros(len(self.problem.times), dtype=bool)
            run[f + k : f + k + h] = True
            out.append((float(sums[k]), run))
        if self.inter[j] and h < l - f:
            total, _, where = best_option(cost[None, :], np.zeros((1, l - f), bool), h, True, self.overhead[j], exact=self.exact)
            if isinstance(where, np.ndarray):
                run = np.zeros(len(self.problem.times), dtype=bool)
                run[f:l] = where
                out.insert(0, (total, run))
        return out

    def eject(self, j: int, max_evicted: int = 4, n_options: int = 3, n_sites: int = 2) -> bool:
        """Move ``j`` to one of its cheapest options at its ``n_sites`` best sites as if capacity were free,
        evicting the jobs in the way and re-inserting them at their best options; kept only if the total
        drops (or, for an unplaced ``j``, if every job involved finds a place)."""
        g = self.gpus[j]
        improved = False
        for s in self.candidates[j][:n_sites]:
            for total, target in self._targets(j, int(s), n_options):
                if self.site[j] >= 0 and total >= self.cost(j) - 1e-9 * max(1.0, total):
                    continue
                in_way = np.flatnonzero((self.site == s) & self.run[:, target].any(axis=1))
                in_way = in_way[in_way != j]
                if len(in_way) > max_evicted:
                    continue
                moved = [j, *in_way.tolist()]
                before = self.snapshot(moved)
                old_cost = sum(self.cost(k) for k in moved)
                for k in moved:
                    self.remove(k)
                ok = bool((self.free[s, target] >= g).all())
                if ok:
                    self.put(j, int(s), target)
                    slack = sorted(in_way.tolist(), key=lambda k: self.last[k] - self.first[k] - self.hours[k])
                    ok = all(self.place(k) for k in slack)
                new_cost = sum(self.cost(k) for k in moved) if ok else np.inf
                if ok and (not np.isfinite(old_cost) or new_cost < old_cost - 1e-9 * max(1.0, old_cost)):
                    improved = True
                    continue
                self.restore(before)
        return improved


def _ruin_and_recreate(state: _Greedy, rounds: int, seed: int) -> int:
    """Local search: take out the jobs running around a random hour and put them back in a random order
    (largest first half of the time); keep the change only if their total drops. Returns accepted rounds."""
    problem = state.problem
    rng = np.random.default_rng(seed)
    n_slots = len(problem.times)
    accepted = 0
    for _ in range(rounds):
        t = int(rng.integers(0, n_slots))
        near = np.flatnonzero((state.site >= 0) & state.run[:, max(0, t - 2) : t + 3].any(axis=1))
        if len(near) < 2:
            continue
        size = int(rng.integers(2, min(len(near), 12) + 1))
        chosen = rng.choice(near, size=size, replace=False).tolist()
        before = state.snapshot(chosen)
        old_cost = sum(state.cost(k) for k in chosen)
        for k in chosen:
            state.remove(k)
        if rng.uniform() < 0.5:
            chosen.sort(key=lambda k: -state.gpus[k] * state.hours[k])
        else:
            rng.shuffle(chosen)
        ok = all(state.place(k) for k in chosen)
        if ok and sum(state.cost(k) for k in chosen) < old_cost - 1e-9 * max(1.0, old_cost):
            accepted += 1
            continue
        state.restore(before)
    return accepted


def solve_greedy(
    problem: Problem,
    improve_passes: int | None = None,
    orders: Sequence[str] | None = None,
    candidates: int = 8,
    raise_on_failure: bool = True,
    eject_passes: int | None = None,
    exact_hours: bool | None = None,
    search_rounds: int | None = None,
) -> Plan:
    """Vectorised greedy placement (see the module docstring).

    One greedy run per rule in ``orders`` (see :func:`priority_order`; by default ``slack``, ``spread``,
    ``size`` and ``4000 // jobs`` seeded perturbations of them, at most 30; above 2,000 jobs ``spread``, then
    ``slack`` only if ``spread`` leaves a job out). A job that finds no room is retried by moving the jobs
    in the way of its cheapest options (up to 6 of them, 4 sites, 4 options each). The run placing most
    jobs, then with the lowest objective, is kept and improved by ``improve_passes`` rounds (default 1,
    0 above 2,000 jobs, where it gained < 0.01 %) of taking each job out and re-inserting it at its best
    option given the others, then by ``eject_passes`` rounds (default 2 up to 2,000 jobs, else 0) of
    moving each job to a cheap option at its top two sites and re-inserting the jobs it displaces, kept
    only when the total drops. No improvement move makes the objective worse.
    Then ``search_rounds`` rounds (default ``40000 // jobs``, at most 600, none above 2,000 jobs) of
    ruin and recreate: the jobs running around a random hour are taken out and put back (seeded), kept
    only if their total drops.
    ``exact_hours`` (default: up to 2,000 jobs) picks an interruptible job's hours at a site by dynamic
    programming instead of the cheapest-hours shortcut (see :func:`best_option`). Each job first searches its
    ``candidates`` best sites by :func:`rank_all`, and all its allowed sites only if none has room.
    """
    started = time.perf_counter()
    if exact_hours is None:
        exact_hours = problem.n_jobs <= 2000
    ranked, _ = rank_all(problem)
    top = np.argsort(ranked, axis=1, kind="stable")[:, :candidates]
    candidate_rows = [row[np.isfinite(ranked[j, row])] for j, row in enumerate(top)]
    large = problem.n_jobs > 2000
    stop_when_all_placed = orders is None and large
    if orders is None:
        extra = int(np.clip(4000 // max(problem.n_jobs, 1), 0, 30))
        orders = ("spread", "slack") if large else ("slack", "spread", "size", *(f"perturbed:{i}" for i in range(extra)))
    if improve_passes is None:
        improve_passes = 0 if large else 1
    best_state, best_key, best_order = None, None, None
    for rule in orders:
        order = priority_order(problem, rule, ranked)
        state = _Greedy(problem, candidate_rows, exact_hours)
        failures = [int(j) for j in order if not state.place(int(j))]
        for j in list(failures):  # repair: make room by moving the jobs in the way
            if state.eject(j, max_evicted=6, n_options=4, n_sites=4):
                failures.remove(j)
        plan = Plan(site=state.site, run=state.run, solver="greedy")
        key = (len(failures), evaluate(problem, plan)["objective"])
        if best_key is None or key < best_key:
            best_state, best_key, best_order, best_failures, best_rule = state, key, order, failures, rule
        if stop_when_all_placed and not failures:
            break
    state = best_state
    for _ in range(improve_passes):
        for j in best_order:
            if state.site[j] >= 0:
                state.remove(int(j))
                state.place(int(j))  # its old option is free again, so this never fails or gets worse
    if eject_passes is None:
        eject_passes = 2 if problem.n_jobs <= 2000 else 0
    for _ in range(eject_passes):
        if not any([state.eject(int(j)) for j in best_order]):
            break
    if search_rounds is None:
        search_rounds = int(np.clip(40_000 // max(problem.n_jobs, 1), 0, 600)) if not large else 0
    accepted = _ruin_and_recreate(state, search_rounds, seed=0) if search_rounds else 0
    for _ in range(eject_passes if accepted else 0):
        if not any([state.eject(int(j)) for j in best_order]):
            break
    seconds = time.perf_counter() - started
    if best_failures and raise_on_failure:
        unfit = _unfit_messages(problem)
        names = unfit + [
            f"'{problem.job_ids[j]}' finds no allowed site with {state.gpus[j]} free GPUs for {state.hours[j]} h between "
            f"{fmt_time(problem.times[state.first[j]])} and {fmt_time(problem.times[state.last[j] - 1] + HOUR)}"
            for j in best_failures
            if problem.allowed[j].any()
        ]
        raise PlacementError(f"cannot place {len(best_failures)} job(s): " + "; ".join(names))
    return Plan(site=state.site, run=state.run, solver="greedy", seconds=seconds,
                stats={"unplaced": best_failures, "order": best_rule})


# --- ranking without capacity ------------------------------------------------------------------------------


def _window_minima(values: np.ndarray, hours: int, first: np.ndarray, last_start: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Min and argmin over starts ``first..last_start`` of the ``hours``-long window sums of every row of
    ``values`` (S, T), for many jobs at once (sparse-table range-minimum queries). Returns (J, S) arrays."""
    n_sites, n_slots = values.shape
    csum = np.zeros((n_sites, n_slots + 1))
    np.cumsum(values, axis=1, out=csum[:, 1:])
    sums = csum[:, hours:] - csum[:, :-hours]  # (S, starts)
    n_starts = sums.shape[1]
    levels_min, levels_arg = [sums], [np.broadcast_to(np.arange(n_starts), sums.shape)]
    span = 1
    while 2 * span <= n_starts:
        prev_min, prev_arg = levels_min[-1], levels_arg[-1]
        left, right = prev_min[:, : n_starts - 2 * span + 1], prev_min[:, span : n_starts - span + 1]
        take_right = right < left
        levels_min.append(np.where(take_right, right, left))
        levels_arg.append(np.where(take_right, prev_arg[:, span : n_starts - span + 1], prev_arg[:, : n_starts - 2 * span + 1]))
        span *= 2
    length = last_start - first + 1
    level = np.floor(np.log2(length)).astype(np.int64)
    best = np.empty((len(first), n_sites))
    arg = np.empty((len(first), n_sites), dtype=np.int64)
    for k in np.unique(level):
        jobs = np.flatnonzero(level == k)
        a, b = first[jobs], last_start[jobs] - (1 << int(k)) + 1
        left_min, right_min = levels_min[k][:, a].T, levels_min[k][:, b].T
        take_right = right_min < left_min
        best[jobs] = np.where(take_right, right_min, left_min)
        arg[jobs] = np.where(take_right, levels_arg[k][:, b].T, levels_arg[k][:, a].T)
    return best, arg


def rank_all(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Best option of every job at every site, ignoring other jobs, vectorised over jobs.

    Returns ``value`` (J, S): the job's objective for its best contiguous window there (or, for an
    interruptible job, the better of that and its ``hours`` cheapest hours plus their restart overheads),
    inf where the site is not allowed; and ``start`` (J, S), the first slot of that option.
    ``np.argsort(value, axis=1)`` ranks the sites.
    """
    best = np.full((problem.n_jobs, problem.n_sites), np.inf)
    start = np.zeros((problem.n_jobs, problem.n_sites), dtype=np.int64)
    for h in np.unique(problem.hours):
        jobs = np.flatnonzero(problem.hours == h)
        minima, arg = _window_minima(problem.value, int(h), problem.first[jobs], problem.last[jobs] - h)
        best[jobs], start[jobs] = minima, arg
        flexible = jobs[problem.interruptible[jobs] & (problem.last[jobs] - problem.first[jobs] > h)]
        if not len(flexible):
            continue
        width = int((problem.last[flexible] - problem.first[flexible]).max())
        slots = problem.first[flexible, None] + np.arange(width)[None, :]
        inside = slots < problem.last[flexible, None]
        values = problem.value[:, np.minimum(slots, len(problem.times) - 1)]  # (S, J, W)
        values = np.where(inside[None], values, np.inf)
        pick = np.argpartition(values, int(h) - 1, axis=2)[:, :, : int(h)]
        chosen = np.zeros(values.shape, dtype=bool)
        np.put_along_axis(chosen, pick, True, axis=2)
        chosen2d = chosen.reshape(-1, width)
        overheads = np.repeat(problem.overhead[flexible][None, :], problem.n_sites, axis=0).reshape(-1, 1)
        billed = chosen2d + overheads * resumes(chosen2d)
        finite_values = np.where(inside[None], values, 0.0).reshape(-1, width)
        total = (billed * finite_values).sum(axis=1).reshape(problem.n_sites, len(flexible)).T
        begin = np.argmax(chosen, axis=2).T
        better = total < best[flexible]
        best[flexible] = np.where(better, total, best[flexible])
        start[flexible] = np.where(better, problem.first[flexible, None] + begin, start[flexible])
    best *= problem.gpus[:, None]
    best[~problem.allowed] = np.inf
    return best, start


# --- exact MILP --------------------------------------------------------------------------------------------


def solve_milp(problem: Problem, time_limit: float = 60.0, mip_rel_gap: float = 1e-6) -> Plan:
    """Exact placement with ``scipy.optimize.milp`` (HiGHS); names the fewest jobs to drop if infeasible."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    unfit = _unfit_messages(problem)
    if unfit:
        raise PlacementError(f"cannot place {len(unfit)} job(s): " + "; ".join(unfit))
    started = time.perf_counter()
    n_slots = len(problem.times)
    n_jobs = problem.n_jobs
    cost: list[np.ndarray] = []
    integer: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    rows_i: list[np.ndarray] = []
    cols_i: list[np.ndarray] = []
    vals_i: list[np.ndarray] = []
    lower_b: list[float] = []
    upper_b: list[float] = []
    n_vars = 0
    n_rows = 0
    decode: list[tuple] = []  # per job: how to read its variables

    def new_vars(values: np.ndarray, is_int: bool, ub: float = 1.0) -> np.ndarray:
        nonlocal n_vars
        idx = np.arange(n_vars, n_vars + len(values))
        n_vars += len(values)
        cost.append(np.asarray(values, dtype=np.float64))
        integer.append(np.full(len(values), 1 if is_int else 0))
        upper.append(np.full(len(values), ub))
        return idx

    def add_rows(row_cols: list[np.ndarray], row_vals: list[np.ndarray], lo: list[float], hi: list[float]) -> None:
        nonlocal n_rows
        for cols, vals in zip(row_cols, row_vals, strict=True):
            rows_i.append(np.full(len(cols), n_rows))
            cols_i.append(np.asarray(cols))
            vals_i.append(np.asarray(vals, dtype=np.float64))
            n_rows += 1
        lower_b.extend(lo)
        upper_b.extend(hi)

    # capacity terms: (site, slot) -> list of (var indices, gpu coefficient)
    cap_var: list[np.ndarray] = []  # capacity terms as triplets: variable, site * n_slots + slot, GPUs
    cap_key: list[np.ndarray] = []
    cap_gpus: list[np.ndarray] = []
    assign_cols: list[np.ndarray] = []
    for j in range(n_jobs):
        g, h, f, l = (int(problem.gpus[j]), int(problem.hours[j]), int(problem.first[j]), int(problem.last[j]))
        sites = np.flatnonzero(problem.allowed[j])
        width = l - f
        if not problem.interruptible[j]:
            n_starts = width - h + 1
            csum = np.concatenate([np.zeros((problem.n_sites, 1)), np.cumsum(problem.value[:, f:l], axis=1)], axis=1)
            block_cost = g * (csum[:, h:] - csum[:, :-h])[sites]  # (sites, starts)
            x = new_vars(block_cost.ravel(), True).reshape(len(sites), n_starts)
            assign_cols.append(x.ravel())
            starts = np.repeat(np.arange(n_starts), h)
            slots = f + starts + np.tile(np.arange(h), n_starts)
            cap_var.append(x[:, starts].ravel())
            cap_key.append((sites[:, None] * n_slots + slots[None, :]).ravel())
            cap_gpus.append(np.full(len(sites) * len(starts), g))
            decode.append(("window", sites, x, f, h))
            continue
        a = new_vars(np.zeros(len(sites)), True)
        assign_cols.append(a)
        values = g * problem.value[sites, f:l]
        y = new_vars(values.ravel(), True).reshape(len(sites), width)
        # hours at each site equal h * a[site]
        add_rows([np.append(y[si], a[si]) for si in range(len(sites))],
                 [np.append(np.ones(width), -h) for _ in sites], [0.0] * len(sites), [0.0] * len(sites))
        cap_var.append(y.ravel())
        cap_key.append((sites[:, None] * n_slots + f + np.arange(width)[None, :]).ravel())
        cap_gpus.append(np.full(y.size, g))
        decode.append(("hours", sites, y, f, h))
        if problem.overhead[j] == 0:
            continue
        u = new_vars((problem.overhead[j] * values).ravel(), False).reshape(len(sites), width)
        never = new_vars(np.zeros(width), True)  # never[t]: the job has not run before slot t
        # h * never[t] + (hours run before t) <= h: a tighter form of "never[t] only before the first run"
        cols = [np.append(y[:, :t].ravel(), never[t]) for t in range(1, width)]
        vals = [np.append(np.ones(len(sites) * t), h) for t in range(1, width)]
        add_rows(cols, vals, [-np.inf] * len(cols), [float(h)] * len(cols))
        # resume indicator: u[t] >= y[t] - y[t-1] - never[t]
        cols, vals = [], []
        for si in range(len(sites)):
            for t in range(width):
                if t == 0:
                    cols.append(np.array([y[si, 0], never[0], u[si, 0]]))
                    vals.append(np.array([1.0, -1.0, -1.0]))
                else:
                    cols.append(np.array([y[si, t], y[si, t - 1], never[t], u[si, t]]))
                    vals.append(np.array([1.0, -1.0, -1.0, -1.0]))
        add_rows(cols, vals, [-np.inf] * len(cols), [0.0] * len(cols))
        # never[t+1] <= never[t] and never[t+1] + sum_s y[s, t] <= 1
        cols = [np.array([never[t + 1], never[t]]) for t in range(width - 1)]
        vals = [np.array([1.0, -1.0]) for _ in range(width - 1)]
        cols += [np.append(y[:, t], never[t + 1]) for t in range(width - 1)]
        vals += [np.ones(len(sites) + 1) for _ in range(width - 1)]
        add_rows(cols, vals, [-np.inf] * len(cols), [0.0] * (width - 1) + [1.0] * (width - 1))
    # capacity rows
    keys, row_of = np.unique(np.concatenate(cap_key), return_inverse=True)
    rows_i.append(n_rows + row_of)
    cols_i.append(np.concatenate(cap_var))
    vals_i.append(np.concatenate(cap_gpus).astype(np.float64))
    n_rows += len(keys)
    lower_b.extend([-np.inf] * len(keys))
    upper_b.extend(problem.capacity[keys // n_slots].astype(np.float64).tolist())
    base_rows = n_rows
    c = np.concatenate(cost)
    integrality = np.concatenate(integer)
    ub = np.concatenate(upper)

    def matrix(extra_cols: int = 0):
        rows = np.concatenate(rows_i)
        cols_all = np.concatenate(cols_i)
        vals_all = np.concatenate(vals_i)
        return coo_matrix((vals_all, (rows, cols_all)), shape=(n_rows, n_vars + extra_cols)).tocsr()

    # each job exactly once
    for cols_j in assign_cols:
        rows_i.append(np.full(len(cols_j), n_rows))
        cols_i.append(cols_j)
        vals_i.append(np.ones(len(cols_j)))
        n_rows += 1
    lo = np.array(lower_b + [1.0] * n_jobs)
    hi_all = np.array(upper_b + [1.0] * n_jobs)
    result = milp(
        c,
        constraints=LinearConstraint(matrix(), lo, hi_all),
        integrality=integrality,
        bounds=Bounds(np.zeros(n_vars), ub),
        options={"time_limit": time_limit, "mip_rel_gap": mip_rel_gap, "disp": False},
    )
    seconds = time.perf_counter() - started
    if result.status == 2:  # infeasible: the fewest jobs to leave out
        skip_rows = np.arange(base_rows, base_rows + n_jobs)
        a_matrix = matrix(n_jobs).tolil()
        for j, row in enumerate(skip_rows):
            a_matrix[row, n_vars + j] = 1.0
        second = milp(
            np.concatenate([np.zeros(n_vars), np.ones(n_jobs)]),
            constraints=LinearConstraint(a_matrix.tocsr(), lo, hi_all),
            integrality=np.concatenate([integrality, np.ones(n_jobs)]),
            bounds=Bounds(np.zeros(n_vars + n_jobs), np.concatenate([ub, np.ones(n_jobs)])),
            options={"time_limit": time_limit, "disp": False},
        )
        if second.x is None:
            raise PlacementError(f"the queue is infeasible and the MILP naming the jobs to drop failed: {second.message}")
        dropped = [problem.job_ids[j] for j in np.flatnonzero(second.x[n_vars:] > 0.5)]
        raise PlacementError(
            f"cannot place {len(dropped)} job(s): the exact solver finds no schedule with all jobs; leaving out "
            f"{', '.join(repr(d) for d in dropped)} (the fewest) makes the rest fit under GPU capacity and deadlines"
        )
    if result.x is None:
        raise PlacementError(f"MILP solver failed: {result.message} (status {result.status}) after {seconds:.1f} s")
    x = result.x
    site = np.full(n_jobs, -1, dtype=np.int64)
    run = np.zeros((n_jobs, n_slots), dtype=bool)
    for j, (kind, sites, var, f, h) in enumerate(decode):
        chosen = x[var] > 0.5
        si, k = np.argwhere(chosen)[0]
        site[j] = sites[si]
        if kind == "window":
            run[j, f + k : f + k + h] = True
        else:
            run[j, f : f + chosen.shape[1]] = chosen[si]
    stats = {
        "status": int(result.status),
        "message": str(result.message),
        "objective": float(result.fun),
        "mip_gap": float(getattr(result, "mip_gap", np.nan) or 0.0),
        "variables": int(n_vars),
        "constraints": int(n_rows),
        "optimal": result.status == 0,
    }
    return Plan(site=site, run=run, solver="milp", seconds=seconds, stats=stats)


def optimality_gap(problem: Problem, heuristic: Plan, exact: Plan) -> float:
    """``heuristic objective / MILP objective - 1`` (0 means the heuristic found an optimum)."""
    h, e = evaluate(problem, heuristic)["objective"], evaluate(problem, exact)["objective"]
    return h / e - 1.0 if e > 0 else float(h > 0)


def random_problem(n_jobs: int, n_sites: int, n_slots: int, seed: int, inter_share: float = 0.5) -> Problem:
    """A seeded random instance for benchmarks and tests: sites with a daily intensity cycle at 50-400 g/kWh
    (+-15 % noise), 1-12 h jobs of 8-64 GPUs with up to 36 h of slack, 80 % of sites allowed per job (the
    home site always), capacity about 1.7x the mean demand, ``inter_share`` of jobs interruptible."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_slots)
    level = rng.uniform(50, 400, n_sites)[:, None]
    intensity = level * (1 + 0.4 * np.sin(2 * np.pi * (t - rng.uniform(0, 24, n_sites)[:, None]) / 24))
    intensity = intensity * rng.uniform(0.85, 1.15, (n_sites, n_slots))
    hours = rng.integers(1, 13, n_jobs)
    first = rng.integers(0, n_slots - hours)
    last = np.minimum(first + hours + rng.integers(0, 36, n_jobs), n_slots)
    gpus = rng.choice([8, 16, 32, 64], n_jobs)
    demand = (gpus * hours).sum() / n_slots
    capacity = np.maximum(np.ceil(rng.uniform(0.5, 1.5, n_sites) * demand / n_sites / 0.6 / 8) * 8, 128)
    allowed = rng.uniform(size=(n_jobs, n_sites)) < 0.8
    allowed[np.arange(n_jobs), rng.integers(0, n_sites, n_jobs)] = True
    return Problem.from_arrays(
        gpus=gpus, hours=hours, first=first, last=last, capacity=capacity.astype(int), intensity=intensity,
        power_kw=rng.uniform(0.7, 1.0, n_sites), interruptible=rng.uniform(size=n_jobs) < inter_share,
        overhead=rng.uniform(0, 1, n_jobs), allowed=allowed,
    )
