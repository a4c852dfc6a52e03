"""Rank sites and hours for one job, place a whole queue, explain it and assess it on realised data.

Everything is scored by the one objective of :mod:`carbonsync.placement.problem` (per-GPU-hour
emissions and cost normalised over the problem's sites and hours): :func:`rank_regions` reports a job's
best option at every site, :func:`schedule` places a queue with a registered solver
(:mod:`carbonsync.placement.solvers`) and returns a :class:`Schedule` whose per-job
:class:`Assignment` objects, carbon-agnostic baselines and explanations are built lazily from the
problem's arrays (so placing 10,000 jobs costs what the solver costs), and :func:`assess` scores a
schedule and its baseline on another forecast, e.g. the realised zone truth.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.time import HOUR, fmt_time
from carbonsync.placement.jobs import Job, PlacementError, Site
from carbonsync.placement.problem import (
    Plan,
    Problem,
    Weights,
    ZoneForecast,
    baseline_plan,
    billed_hours,
    build_problem,
    check_plan,
    evaluate,
    objective,
    usage,
)
from carbonsync.placement.search import best_hours, best_window
from carbonsync.placement.solvers import SOLVERS, Solver, best_alone, get_solver, priority_order

__all__ = ["SOLVERS", "Assessment", "Assignment", "Schedule", "Weights", "assess", "assignment", "baseline",
           "evaluate_assignment", "format_table", "rank_regions", "schedule"]


@dataclass(frozen=True)
class Assignment:
    """Where and when a job runs, and what it is expected to cost. ``slots`` are hour starts (UTC).

    ``carbon_score`` and ``price_score`` are the job's emissions and cost per GPU-hour over the
    problem's references; ``score`` their weighted sum; ``objective`` = ``score x gpus x hours``, the
    job's share of the problem's objective."""

    job_id: str
    site: str
    zone: str
    gpus: int
    slots: tuple[pd.Timestamp, ...]
    segments: int
    energy_kwh: float
    emissions_kg: float
    cost_eur: float
    mean_renewable_share: float
    carbon_score: float
    price_score: float
    score: float
    objective: float

    @property
    def start(self) -> pd.Timestamp:
        return self.slots[0]

    @property
    def end(self) -> pd.Timestamp:
        """When the last slot ends."""
        return self.slots[-1] + HOUR

    @property
    def hours(self) -> int:
        return len(self.slots)


def assignment(problem: Problem, j: int, site: int, run: np.ndarray) -> Assignment:
    """Evaluate job ``j`` of ``problem`` at site index ``site`` in the slots where ``run`` (T,) is true."""
    run = np.asarray(run, dtype=bool)
    hours = int(problem.hours[j])
    if run.sum() != hours:
        raise PlacementError(f"job '{problem.job_ids[j]}': {int(run.sum())} slots chosen, it needs {hours}")
    billed = billed_hours(problem, run[None, :], np.array([j]))[0]
    gpus = int(problem.gpus[j])
    emissions = float(gpus * billed @ problem.emissions_kg[site])
    cost = float(gpus * billed @ problem.cost_eur[site])
    carbon_score = emissions / problem.carbon_ref / (gpus * hours)
    price_score = cost / problem.price_ref / (gpus * hours)
    begins = run & ~np.concatenate([[False], run[:-1]])
    zone = problem.sites[site].zone if problem.sites else problem.site_ids[site]
    return Assignment(
        job_id=problem.job_ids[j],
        site=problem.site_ids[site],
        zone=zone,
        gpus=gpus,
        slots=tuple(problem.times[run]),
        segments=int(begins.sum()),
        energy_kwh=float(gpus * problem.power_kw[site] * billed.sum()),
        emissions_kg=emissions,
        cost_eur=cost,
        mean_renewable_share=float(np.mean(problem.renewable_share[site, run])),
        carbon_score=carbon_score,
        price_score=price_score,
        score=problem.weights.carbon * carbon_score + problem.weights.price * price_score,
        objective=float(gpus * billed @ problem.value[site]),
    )


def _best_at_each(problem: Problem, j: int, rows: np.ndarray) -> list[Assignment | None]:
    """Job ``j``'s best option at each site of ``rows`` ignoring other jobs (None where nothing fits)."""
    f, l, h = int(problem.first[j]), int(problem.last[j]), int(problem.hours[j])
    cost = problem.gpus[j] * problem.value[rows, f:l]
    if problem.interruptible[j]:
        chosen, total = best_hours(cost, h, problem.overhead[j] * cost)
    else:
        start, total = best_window(cost, h)
        chosen = np.zeros(cost.shape, dtype=bool)
        for row, s in enumerate(start):
            chosen[row, s : s + h] = True
    out: list[Assignment | None] = []
    for i, s in enumerate(rows):
        if not np.isfinite(total[i]):
            out.append(None)
            continue
        run = np.zeros(len(problem.times), dtype=bool)
        run[f:l] = chosen[i]
        out.append(assignment(problem, j, int(s), run))
    return out


def rank_regions(
    job: Job, sites: Sequence[Site], forecast: xr.Dataset | ZoneForecast, weights: Weights | None = None
) -> pd.DataFrame:
    """Best start (or set of hours, if interruptible) at every allowed site, sorted best-first.

    Columns: ``rank, site, zone, start, end, slots, segments, energy_kwh, emissions_kg,
    mean_renewable_share, cost_eur, carbon_score, price_score, score, fits`` (``fits`` is false where
    the site has fewer GPUs than the job needs; those rows sort last). Scores are normalised over all
    ``sites`` and the job's window (the problem of this one job).
    """
    problem = build_problem([job], sites, forecast, weights)
    order = [problem.site_ids.index(r) for r in job.regions] if job.regions else list(range(problem.n_sites))
    rows = []
    for s, option in zip(order, _best_at_each(problem, 0, np.array(order)), strict=True):
        row = _row(option)
        row["fits"] = job.gpus <= problem.capacity[s]
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame = frame.sort_values(["fits", "score"], ascending=[False, True], kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame


def _row(a: Assignment) -> dict:
    return {
        "site": a.site,
        "zone": a.zone,
        "start": a.start,
        "end": a.end,
        "slots": a.slots,
        "segments": a.segments,
        "energy_kwh": a.energy_kwh,
        "emissions_kg": a.emissions_kg,
        "mean_renewable_share": a.mean_renewable_share,
        "cost_eur": a.cost_eur,
        "carbon_score": a.carbon_score,
        "price_score": a.price_score,
        "score": a.score,
    }


def evaluate_assignment(
    job: Job,
    site: Site,
    slots: Sequence[pd.Timestamp | str],
    forecast: xr.Dataset | ZoneForecast,
    weights: Weights | None = None,
    *,
    sites: Sequence[Site] | None = None,
) -> Assignment:
    """Evaluate running ``job`` at ``site`` in the given hour ``slots`` (inside the job's window).

    ``site`` need not be one of the job's regions (what-if use). Scores are normalised over ``sites``
    (plus ``site``) and the job's window, as in :func:`rank_regions`; over ``site`` alone without ``sites``.
    """
    pool = [site] + [s for s in (sites or []) if s.id != site.id]
    problem = build_problem([dataclasses.replace(job, regions=(), home="")], pool, forecast, weights)
    wanted = pd.DatetimeIndex([pd.Timestamp(s) for s in slots])
    window = problem.times[problem.first[0] : problem.last[0]]
    outside = wanted.difference(window)
    if len(outside):
        raise PlacementError(f"job '{job.id}': slot {fmt_time(outside[0])} is outside its window")
    return assignment(problem, 0, 0, problem.times.isin(wanted))


def baseline(
    job: Job, sites: Sequence[Site], forecast: xr.Dataset | ZoneForecast, weights: Weights | None = None
) -> Assignment:
    """The carbon-agnostic choice: contiguous from the earliest start at the job's home site.

    The home site is ``job.home``, else the first allowed site with enough GPUs (the first allowed site if
    none has). Capacity taken by other jobs is ignored.
    """
    problem = build_problem([job], sites, forecast, weights)
    plan = baseline_plan(problem)
    return assignment(problem, 0, int(plan.site[0]), plan.run[0])


class _LazyAssignments(Mapping):
    """Assignments by job id, each built on first access."""

    def __init__(self, ids: tuple[str, ...], make: Callable[[int], Assignment]):
        self._ids, self._make = ids, make
        self._index = {k: i for i, k in enumerate(ids)}
        self._cache: dict[str, Assignment] = {}

    def __getitem__(self, job_id: str) -> Assignment:
        if job_id not in self._cache:
            if job_id not in self._index:
                raise KeyError(f"job '{job_id}' is not in the schedule (it has {', '.join(self._ids[:20])}"
                               f"{' ...' if len(self._ids) > 20 else ''})")
            self._cache[job_id] = self._make(self._index[job_id])
        return self._cache[job_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(eq=False)
class Schedule:
    """A placed queue: the problem, the solver's plan and what to compare it with.

    ``assignments``, ``baselines`` (carbon-agnostic choices) and ``first_choices`` (each job's best option
    before capacity taken by other jobs is accounted for) map job ids to :class:`Assignment` objects built
    lazily from the arrays. ``order`` is the order of the jobs by priority (tightest first).
    """

    problem: Problem
    plan: Plan
    solver: str = "greedy"
    displaced: str = "went to other jobs"
    stats: dict = field(default_factory=dict)
    assessment: Assessment | None = None  # set by assess(): the plan scored on realised data

    def __post_init__(self) -> None:
        p, plan = self.problem, self.plan
        self.weights: Weights = p.weights
        self.jobs: dict[str, Job] = {j.id: j for j in p.jobs}
        self.sites: dict[str, Site] = {s.id: s for s in p.sites}
        self.usage = xr.DataArray(usage(p, plan), coords={"site": list(p.site_ids), "time": p.times},
                                  dims=("site", "time"), name="gpus_in_use")
        self.baseline_plan = baseline_plan(p)
        self.assignments = _LazyAssignments(p.job_ids, lambda j: assignment(p, j, int(plan.site[j]), plan.run[j]))
        base = self.baseline_plan
        self.baselines = _LazyAssignments(p.job_ids, lambda j: assignment(p, j, int(base.site[j]), base.run[j]))
        self.first_choices = _LazyAssignments(p.job_ids, self._first_choice)
        self._order: tuple[str, ...] | None = None

    def _first_choice(self, j: int) -> Assignment:
        best = best_alone(self.problem, j)
        return self.assignments[self.problem.job_ids[j]] if best is None else assignment(self.problem, j, *best)

    @property
    def order(self) -> tuple[str, ...]:
        if self._order is None:
            ids = self.problem.job_ids
            placed = self.plan.stats.get("placement_order")
            self._order = tuple(placed) if placed else tuple(ids[j] for j in priority_order(self.problem, "slack"))
        return self._order

    @property
    def objective(self) -> float:
        """The problem's objective of the plan (:func:`carbonsync.placement.problem.objective`)."""
        return objective(self.problem, self.plan)

    @property
    def expected_saving_pct(self) -> float:
        """Percent less CO2e than the carbon-agnostic baseline, on the forecast the schedule optimised."""
        return _saving(self.stats["emissions_kg"], sum(b.emissions_kg for b in self.baselines.values()))

    def __getitem__(self, job_id: str) -> Assignment:
        return self.assignments[job_id]

    def __iter__(self) -> Iterator[Assignment]:
        return iter(self.assignments.values())

    def __len__(self) -> int:
        return len(self.assignments)

    @property
    def capacity(self) -> xr.DataArray:
        """GPUs per site."""
        return xr.DataArray(self.problem.capacity, coords={"site": list(self.problem.site_ids)}, dims="site")

    def to_frame(self) -> pd.DataFrame:
        """One row per job (input order) with the assignment and its carbon-agnostic baseline."""
        priority = {job_id: i + 1 for i, job_id in enumerate(self.order)}
        rows = []
        for job_id, a in self.assignments.items():
            base = self.baselines[job_id]
            rows.append(
                {
                    "job": job_id,
                    "priority": priority[job_id],
                    **_row(a),
                    "gpus": a.gpus,
                    "hours": a.hours,
                    "baseline_site": base.site,
                    "baseline_emissions_kg": base.emissions_kg,
                    "baseline_cost_eur": base.cost_eur,
                    "saving_pct": _saving(a.emissions_kg, base.emissions_kg),
                }
            )
        return pd.DataFrame(rows)

    def explain(self, job_id: str) -> str:
        """Why the job runs where and when it does, in plain words with the forecast numbers."""
        a, job = self[job_id], self.jobs.get(job_id)
        base, first = self.baselines[job_id], self.first_choices[job_id]
        overhead = job.restart_overhead_h if job is not None else float(self.problem.overhead[self.problem.job_ids.index(job_id)])
        when = f"from {_when(a.start)} for {a.hours} h"
        if a.segments > 1:
            when += f" in {a.segments} segments ending {_when(a.end)} (+{a.segments - 1} x {overhead:g} h restart overhead)"
        text = (
            f"{job_id} runs at site '{a.site}' (zone {a.zone}) {when}: mean forecast renewable share "
            f"{a.mean_renewable_share:.0%} vs {base.mean_renewable_share:.0%} at its home site '{base.site}' "
            f"starting at its earliest start {_when(base.start)}; expected {a.emissions_kg:,.0f} kg CO2e"
        )
        if a.slots == base.slots and a.site == base.site:
            text += ", the same as that carbon-agnostic choice, which is already the best."
        else:
            saving = _saving(a.emissions_kg, base.emissions_kg)
            direction = "less" if saving >= 0 else "more"
            relation = "vs" if math.isnan(saving) else f"{abs(saving):.0f}% {direction} than"
            text += f", {relation} the carbon-agnostic choice ({base.emissions_kg:,.0f} kg)."
        text += f" Energy {a.energy_kwh:,.0f} kWh, cost EUR {a.cost_eur:,.0f} (carbon-agnostic EUR {base.cost_eur:,.0f})."
        if (first.site, first.slots) != (a.site, a.slots) and first.objective < a.objective - 1e-9 * abs(a.objective):
            text += (
                f" Its first choice, site '{first.site}' from {_when(first.start)} "
                f"({first.emissions_kg:,.0f} kg CO2e), {self.displaced}."
            )
        if self.weights.price > 0:
            text += f" Scored with weights carbon={self.weights.carbon:g}, price={self.weights.price:g}."
        return text


def _when(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d %H:%M")


def _change(saving_pct: float) -> str:
    """``-33%`` for a 33% saving; ``0%`` when it rounds to nothing."""
    if math.isnan(saving_pct):
        return "n/a"
    change = round(-saving_pct)
    return f"{change:+d}%" if change else "0%"


def _saving(value: float, reference: float) -> float:
    """Percent reduction of ``value`` relative to ``reference`` (NaN when the reference is 0)."""
    return 100.0 * (1.0 - value / reference) if reference else float("nan")


def schedule(
    jobs: Sequence[Job],
    sites: Sequence[Site],
    forecast: xr.Dataset | ZoneForecast,
    weights: Weights | None = None,
    *,
    solver: str | Solver = "greedy",
    solver_options: dict | None = None,
) -> Schedule:
    """Place every job under per-site, per-hour GPU capacity with a registered solver.

    ``solver`` is a name of :func:`carbonsync.placement.solvers.get_solver` (``greedy``: per job,
    tightest first; ``fast``: the vectorised queue-level heuristic for large queues; ``milp``: the exact
    optimum, moderate sizes), built with ``solver_options``, or a :class:`Solver` object. All minimise the
    same objective (:mod:`carbonsync.placement.problem`). Raises :class:`PlacementError` naming every job
    that cannot be placed.
    """
    if isinstance(solver, str):
        name, engine = solver, get_solver(solver, **(solver_options or {}))
    elif isinstance(solver, Solver):
        name, engine = type(solver).__name__, solver
    else:
        raise PlacementError(f"solver must be a registered name or have solve(problem), got {solver!r}")
    problem = build_problem(jobs, sites, forecast, weights)
    plan = engine.solve(problem)
    check_plan(problem, plan)
    stats = {"seconds": plan.seconds, **plan.stats, "solver_objective": plan.stats.get("objective"),
             **evaluate(problem, plan)}
    return Schedule(problem=problem, plan=plan, solver=name,
                    displaced=getattr(engine, "displaced", "went to other jobs"), stats=stats)


@dataclass(frozen=True)
class Assessment:
    """A schedule and its carbon-agnostic baseline scored on the forecast it optimised (``expected``) and
    on another one, e.g. the realised zone truth (``realised``): emissions (kg CO2e) and cost (EUR)."""

    expected_emissions_kg: float
    expected_baseline_kg: float
    realised_emissions_kg: float
    realised_baseline_kg: float
    expected_cost_eur: float
    realised_cost_eur: float

    @property
    def expected_saving_pct(self) -> float:
        return _saving(self.expected_emissions_kg, self.expected_baseline_kg)

    @property
    def realised_saving_pct(self) -> float:
        return _saving(self.realised_emissions_kg, self.realised_baseline_kg)

    def summary(self) -> str:
        return (
            f"expected {self.expected_emissions_kg:,.0f} kg CO2e vs {self.expected_baseline_kg:,.0f} kg carbon-agnostic "
            f"({self.expected_saving_pct:.1f}% saving) on the forecast; realised {self.realised_emissions_kg:,.0f} kg "
            f"vs {self.realised_baseline_kg:,.0f} kg ({self.realised_saving_pct:.1f}% saving) on the realised data"
        )


def assess(plan: Schedule, realised: xr.Dataset | ZoneForecast) -> Assessment:
    """Score ``plan`` and its carbon-agnostic baseline on the forecast they were made on and on
    ``realised`` (a zone dataset like the forecast covering the schedule's hours, e.g. ``zone_truth.zarr``),
    with the same jobs, sites, slots and sites' prices; also kept as ``plan.assessment``."""
    problem = plan.problem
    if isinstance(realised, xr.Dataset):
        zones = sorted({s.zone for s in problem.sites})
        missing = problem.times.difference(pd.DatetimeIndex(realised["time"].values))
        if len(missing):
            raise PlacementError(f"realised data: no values at {fmt_time(missing[0])} (and {len(missing) - 1} more hours)")
        missing_vars = [v for v in ("renewable_share", "carbon_intensity") if v not in realised.data_vars]
        if missing_vars:
            raise PlacementError(f"realised data: no variable(s) {', '.join(missing_vars)}")
        absent = [z for z in zones if z not in set(map(str, realised["zone"].values))]
        if absent:
            raise PlacementError(f"realised data: no zone(s) {', '.join(absent)}")
        realised = realised[["renewable_share", "carbon_intensity"]].sel(time=problem.times, zone=zones).load()
    actual = build_problem(problem.jobs, problem.sites, realised, problem.weights)
    expected, expected_base = evaluate(problem, plan.plan), evaluate(problem, plan.baseline_plan)
    real, real_base = evaluate(actual, plan.plan), evaluate(actual, plan.baseline_plan)
    plan.assessment = Assessment(
        expected_emissions_kg=expected["emissions_kg"],
        expected_baseline_kg=expected_base["emissions_kg"],
        realised_emissions_kg=real["emissions_kg"],
        realised_baseline_kg=real_base["emissions_kg"],
        expected_cost_eur=expected["cost_eur"],
        realised_cost_eur=real["cost_eur"],
    )
    return plan.assessment


def format_table(schedule: Schedule, width: int = 140) -> str:
    """The schedule as a text table (rich), one job per row, with totals against the baseline."""
    from rich.console import Console
    from rich.table import Table

    frame = schedule.to_frame()
    table = Table(title="CarbonSync placement", show_lines=False)
    for name in ("job", "site", "start (UTC)", "end"):
        table.add_column(name)
    for name in ("h", "seg", "GPUs", "renew.", "kWh", "kg CO2e", "vs base", "EUR"):
        table.add_column(name, justify="right")
    for row in frame.itertuples():
        table.add_row(
            *(row.job, row.site, _when(row.start), _when(row.end)),
            *(str(row.hours), str(row.segments), str(row.gpus), f"{row.mean_renewable_share:.0%}"),
            *(f"{row.energy_kwh:,.0f}", f"{row.emissions_kg:,.0f}", _change(row.saving_pct)),
            f"{row.cost_eur:,.0f}",
        )
    total, base = frame["emissions_kg"].sum(), frame["baseline_emissions_kg"].sum()
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, force_jupyter=False)
    console.print(table)
    saving = _saving(total, base)
    console.print(
        f"total {total:,.0f} kg CO2e vs {base:,.0f} kg carbon-agnostic "
        f"({abs(saving):.0f}% {'less' if saving >= 0 else 'more'}); "
        f"cost EUR {frame['cost_eur'].sum():,.0f} vs EUR {frame['baseline_cost_eur'].sum():,.0f}"
    )
    return buffer.getvalue()
