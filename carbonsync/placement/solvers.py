"""Queue-level solvers on a :class:`~carbonsync.placement.problem.Problem`, behind one protocol and registry.

Every solver minimises the same objective, :func:`carbonsync.placement.problem.objective` (normalised
once, in :mod:`carbonsync.placement.problem`), and reports it as ``plan.stats["objective"]``:

- ``greedy`` (:func:`solve_sequential`): the reference. Jobs tightest-first (least slack, then earliest
  deadline, then most GPU-hours, then id), each at its cheapest option with free GPUs: the best
  contiguous window at any allowed site, or for an interruptible job the optimal set of hours by dynamic
  programming; no later move.
- ``fast`` (:func:`solve_heuristic`): the same placement rule vectorised for large queues, run from
  several orders, with repair and improvement moves (never worse): re-inserting each job at its best
  option given the others, ejection chains and ruin-and-recreate.
- ``milp`` (:func:`solve_milp`): the exact optimum with ``scipy.optimize.milp`` (HiGHS) over binaries
  ``x[job, site, start]`` for rigid jobs and ``y[job, site, hour]`` for interruptible ones; when the queue
  is infeasible a second MILP names the fewest jobs to leave out.

A solver is any object with ``solve(problem) -> Plan`` (:class:`Solver`); :func:`register_solver` adds one
under a name, :func:`get_solver` builds one by name (``schedule(..., solver=name)`` uses it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from carbonsync.core.time import HOUR, fmt_time
from carbonsync.placement.jobs import PlacementError
from carbonsync.placement.problem import Plan, Problem, objective, resumes, unfit_messages
from carbonsync.placement.registry import Registry
from carbonsync.placement.search import best_option


@runtime_checkable
class Solver(Protocol):
    """Places every job of a problem: returns a :class:`Plan` whose ``stats["objective"]`` is the objective
    the solver found. An optional ``displaced`` attribute says, in the schedule's explanations, why a job
    did not get its first choice."""

    def solve(self, problem: Problem) -> Plan: ...


SOLVERS: Registry[Solver] = Registry("solver")


def register_solver(name: str) -> Callable[[Callable[..., Solver]], Callable[..., Solver]]:
    """Decorator registering a :class:`Solver` factory (e.g. a class) under ``name``."""
    return SOLVERS.register(name)


def get_solver(name: str, **options: Any) -> Solver:
    """The solver registered as ``name``, built with ``options``; :class:`PlacementError` lists the known
    names when there is none."""
    return SOLVERS.get(name, **options)


def solver_names() -> tuple[str, ...]:
    return SOLVERS.names()


def _id_rank(problem: Problem) -> np.ndarray:
    rank = np.empty(problem.n_jobs, dtype=np.int64)
    rank[np.argsort(np.array(problem.job_ids), kind="stable")] = np.arange(problem.n_jobs)
    return rank


def _failures(problem: Problem, failures: Sequence[int]) -> PlacementError:
    """One error naming every job left out: too big for every allowed site, or crowded out."""
    names = unfit_messages(problem) + [
        f"'{problem.job_ids[j]}' finds no allowed site with {problem.gpus[j]} free GPUs for {problem.hours[j]} h "
        f"between {fmt_time(problem.times[problem.first[j]])} and {fmt_time(problem.times[problem.last[j] - 1] + HOUR)}"
        for j in failures
        if problem.allowed[j].any()
    ]
    return PlacementError(f"cannot place {len(failures)} job(s): " + "; ".join(names))


def _order_slack(problem: Problem, ranked: np.ndarray | None) -> np.ndarray:
    index = np.arange(problem.n_jobs)
    return np.lexsort((index, -problem.gpus * problem.hours, problem.last, problem.slack))


def _order_spread(problem: Problem, ranked: np.ndarray | None) -> np.ndarray:
    if ranked is None:
        ranked, _ = rank_all(problem)
    finite = np.isfinite(ranked)
    best = np.where(finite, ranked, np.inf).min(axis=1)
    mean = np.where(finite, ranked, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
    gain = np.where(np.isfinite(best), mean - best, 0.0) / (1.0 + problem.slack)
    return np.lexsort((np.arange(problem.n_jobs), problem.slack, -gain))


def _order_size(problem: Problem, ranked: np.ndarray | None) -> np.ndarray:
    return np.lexsort((np.arange(problem.n_jobs), problem.slack, -problem.gpus * problem.hours))


ORDERS: dict[str, Callable[[Problem, np.ndarray | None], np.ndarray]] = {
    "slack": _order_slack, "spread": _order_spread, "size": _order_size,
}


def priority_order(problem: Problem, rule: str = "slack", ranked: np.ndarray | None = None) -> np.ndarray:
    """Order in which the greedy places jobs (the rules of :data:`ORDERS`, or a perturbed one).

    ``slack``: least slack, then earliest deadline, then most GPU-hours, then input order (feasibility first).
    ``spread``: largest gain of the job's best site over its mean allowed site, per hour of slack + 1
    (jobs that lose most by being displaced go first); uses ``ranked`` from :func:`rank_all`.
    ``size``: most GPU-hours first (packs capacity tightly, as first-fit decreasing does).
    ``perturbed:<seed>``: one of those three, drawn and shuffled locally with the seed.
    """
    base_rule, _, seed = rule.partition("perturbed:")
    if base_rule in ORDERS and not seed:
        return ORDERS[base_rule](problem, ranked)
    if base_rule or not seed.isdigit():
        raise PlacementError(f"unknown greedy order '{rule}'; use {', '.join(map(repr, ORDERS))} or 'perturbed:<seed>'")
    rng = np.random.default_rng(int(seed))
    position = np.empty(problem.n_jobs)
    base = ORDERS[str(rng.choice(["slack", "spread", "size"]))](problem, ranked)
    position[base] = np.arange(problem.n_jobs)
    return np.argsort(position + rng.normal(0.0, problem.n_jobs / 4, problem.n_jobs), kind="stable")


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
        self.job_cost = np.zeros(problem.n_jobs)  # each placed job's objective, as its search found it
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
        self.job_cost[j] = total
        return True

    def remove(self, j: int) -> None:
        if self.site[j] >= 0:
            self.free[self.site[j], self.run[j]] += self.gpus[j]
            self.run[j] = False
            self.site[j] = -1
            self.job_cost[j] = 0.0

    def cost(self, j: int) -> float:
        """Objective of job ``j`` where it is now (restart overheads included)."""
        s, run = self.site[j], self.run[j]
        if s < 0:
            return np.inf
        begins = np.flatnonzero(run & ~np.concatenate([[False], run[:-1]]))
        values = self.problem.value[s]
        return self.gpus[j] * (values[run].sum() + self.overhead[j] * values[begins[1:]].sum())

    def total(self) -> float:
        """The objective of the placed jobs, summed from the costs their searches found."""
        return float(self.job_cost[self.site >= 0].sum())

    def put(self, j: int, s: int, run: np.ndarray) -> None:
        self.site[j] = s
        self.run[j] = run
        self.free[s, run] -= self.gpus[j]
        self.job_cost[j] = self.cost(j)

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


def solve_heuristic(
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
        plan = Plan(site=state.site, run=state.run, solver="fast")
        key = (len(failures), objective(problem, plan))
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
        raise _failures(problem, best_failures)
    return Plan(site=state.site, run=state.run, solver="fast", seconds=seconds,
                stats={"unplaced": best_failures, "order": best_rule, "objective": state.total()})


def solve_sequential(problem: Problem, raise_on_failure: bool = True) -> Plan:
    """The reference greedy (see the module docstring): one pass, tightest job first, each at its cheapest
    option with free GPUs among all its allowed sites (interruptible hours by dynamic programming)."""
    started = time.perf_counter()
    state = _Greedy(problem, [np.flatnonzero(row) for row in problem.allowed], exact=True)
    order = np.lexsort((_id_rank(problem), -problem.gpus * problem.hours, problem.last, problem.slack))
    failures = [int(j) for j in order if not state.place(int(j))]
    if failures and raise_on_failure:
        raise _failures(problem, failures)
    return Plan(site=state.site, run=state.run, solver="greedy", seconds=time.perf_counter() - started,
                stats={"unplaced": failures, "order": "slack", "objective": state.total(),
                       "placement_order": [problem.job_ids[j] for j in order]})


def best_alone(problem: Problem, j: int) -> tuple[int, np.ndarray] | None:
    """Job ``j``'s best option ignoring the other jobs (at a site with enough GPUs): ``(site, run)``, or
    None when no allowed site has enough GPUs."""
    rows = np.flatnonzero(problem.allowed[j])
    if not len(rows):
        return None
    f, l, h = int(problem.first[j]), int(problem.last[j]), int(problem.hours[j])
    cost = problem.gpus[j] * problem.value[rows, f:l]
    total, r, where = best_option(cost, np.zeros(cost.shape, bool), h, bool(problem.interruptible[j]),
                                  float(problem.overhead[j]), exact=True)
    run = np.zeros(len(problem.times), dtype=bool)
    if isinstance(where, np.ndarray):
        run[f:l] = where
    else:
        run[f + where : f + where + h] = True
    return int(rows[r]), run


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

    unfit = unfit_messages(problem)
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
    h, e = objective(problem, heuristic), objective(problem, exact)
    return h / e - 1.0 if e > 0 else float(h > 0)


# --- the registered solvers -----------------------------------------------------------------------------------


@register_solver("greedy")
class GreedySolver:
    """:func:`solve_sequential`: the per-job greedy reference."""

    displaced = "lacked free GPUs after tighter jobs were placed"

    def solve(self, problem: Problem) -> Plan:
        return solve_sequential(problem)


@register_solver("fast")
class HeuristicSolver:
    """:func:`solve_heuristic` with its keyword options (orders, passes, ``exact_hours`` ...)."""

    displaced = "went to other jobs: the queue-level heuristic found a lower total that way"

    def __init__(self, **options: Any):
        self.options = options

    def solve(self, problem: Problem) -> Plan:
        return solve_heuristic(problem, **self.options)


@register_solver("milp")
class MilpSolver:
    """:func:`solve_milp` (``time_limit``, ``mip_rel_gap``)."""

    displaced = "went to other jobs because the exact (MILP) solution of the whole queue is lower that way"

    def __init__(self, time_limit: float = 60.0, mip_rel_gap: float = 1e-6):
        self.time_limit, self.mip_rel_gap = time_limit, mip_rel_gap

    def solve(self, problem: Problem) -> Plan:
        return solve_milp(problem, time_limit=self.time_limit, mip_rel_gap=self.mip_rel_gap)
