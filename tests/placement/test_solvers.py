"""Queue-level solvers: vectorised ranking, greedy heuristic, exact MILP, optimality gap, schedule integration."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from carbonsync.core.time import HOUR
from carbonsync.placement import (
    PlacementError,
    Plan,
    Problem,
    Weights,
    build_problem,
    check_plan,
    evaluate,
    get_solver,
    objective,
    optimality_gap,
    rank_all,
    rank_regions,
    register_solver,
    schedule,
    solve_heuristic,
    solve_milp,
    solve_sequential,
)
from carbonsync.placement.search import best_option
from carbonsync.placement.solvers import SOLVERS
from tests.helpers.placement import START, job, problem_objects, random_forecast, random_problem, random_queue, site


def test_rank_all_matches_per_job_search():
    p = random_problem(60, 5, 72, seed=1)
    best, start = rank_all(p)
    for j in range(p.n_jobs):
        for s in range(p.n_sites):
            if not p.allowed[j, s]:
                assert best[j, s] == np.inf
                continue
            f, l, h = p.first[j], p.last[j], p.hours[j]
            cost = p.gpus[j] * p.value[s : s + 1, f:l]
            total, _, where = best_option(cost, np.zeros(cost.shape, bool), h, bool(p.interruptible[j]), p.overhead[j])
            assert best[j, s] == pytest.approx(total)
            first_slot = f + (np.argmax(where) if isinstance(where, np.ndarray) else where)
            assert start[j, s] == first_slot


def test_best_option_respects_blocked_and_first_cost():
    cost = np.array([[5.0, 1.0, 1.0, 5.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0, 3.0, 3.0]])
    blocked = np.zeros(cost.shape, bool)
    assert best_option(cost, blocked, 2, False, 0.0) == (2.0, 0, 1)
    blocked[0, 2] = True
    assert best_option(cost, blocked, 2, False, 0.0) == (2.0, 0, 4)
    total, row, mask = best_option(cost, blocked, 3, True, 0.5)
    assert row == 0 and list(np.flatnonzero(mask)) == [1, 4, 5] and total == pytest.approx(3.0 + 0.5 * 1.0)
    first_cost = np.zeros(cost.shape)
    first_cost[0] = 10.0  # resuming at row 0 is dear
    assert best_option(cost, blocked, 2, False, 0.0, first_cost=first_cost)[1] == 1
    exact = best_option(cost, blocked, 3, True, 0.5, exact=True)
    assert exact[0] == pytest.approx(3.5) and list(np.flatnonzero(exact[2])) == [1, 4, 5]


def brute_force(p: Problem) -> float:
    """Minimum objective over every combination of per-job options (tiny problems only)."""
    options = []
    for j in range(p.n_jobs):
        f, l, h = p.first[j], p.last[j], p.hours[j]
        opts = []
        for s in np.flatnonzero(p.allowed[j]):
            blocks = (range(k, k + h) for k in range(f, l - h + 1))
            sets = itertools.combinations(range(f, l), h) if p.interruptible[j] else blocks
            for slots in sets:
                run = np.zeros(len(p.times), bool)
                run[list(slots)] = True
                begins = np.flatnonzero(run & ~np.concatenate([[False], run[:-1]]))
                value = p.gpus[j] * (p.value[s, run].sum() + p.overhead[j] * p.value[s, begins[1:]].sum())
                opts.append((value, s, run))
        options.append(opts)
    best = np.inf
    for combo in itertools.product(*options):
        usage = np.zeros((p.n_sites, len(p.times)), int)
        for j, (_, s, run) in enumerate(combo):
            usage[s, run] += p.gpus[j]
        if (usage <= p.capacity[:, None]).all():
            best = min(best, sum(c[0] for c in combo))
    return best


def test_milp_equals_brute_force_and_greedy_is_feasible():
    rng = np.random.default_rng(4)
    p = Problem.from_arrays(
        gpus=[16, 16, 8, 16], hours=[2, 3, 2, 2], first=[0, 0, 1, 2], last=[5, 6, 6, 6], capacity=[16, 32],
        intensity=rng.uniform(50, 300, (2, 6)), power_kw=[1.0, 0.8], interruptible=[True, False, True, False],
        overhead=[0.5, 0.0, 0.3, 0.0],
    )
    exact = solve_milp(p)
    check_plan(p, exact)
    assert exact.stats["optimal"]
    assert evaluate(p, exact)["objective"] == pytest.approx(brute_force(p), rel=1e-6)
    heuristic = solve_heuristic(p)
    check_plan(p, heuristic)
    assert optimality_gap(p, heuristic, exact) >= -1e-9


@pytest.mark.parametrize("seed", [5, 6])
def test_milp_restart_overheads_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    p = Problem.from_arrays(
        gpus=[16, 16, 16], hours=[2, 3, 2], first=[0, 1, 0], last=[6, 7, 5], capacity=[16, 32],
        intensity=rng.uniform(20, 400, (2, 7)), power_kw=[1.0, 0.9], interruptible=[True, True, True],
        overhead=rng.uniform(0.2, 2.0, 3),
    )
    exact = solve_milp(p)
    check_plan(p, exact)
    assert evaluate(p, exact)["objective"] == pytest.approx(brute_force(p), rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heuristic_within_five_percent_of_milp(seed):
    p = random_problem(14, 3, 36, seed, inter_share=0.3)
    exact = solve_milp(p, time_limit=20)
    heuristic = solve_heuristic(p)
    check_plan(p, heuristic)
    assert exact.stats["optimal"]
    assert -1e-9 <= optimality_gap(p, heuristic, exact) <= 0.05


def test_greedy_scales_and_respects_constraints():
    p = random_problem(400, 12, 96, seed=5)
    plan = solve_heuristic(p, exact_hours=False)
    check_plan(p, plan)
    lone = solve_heuristic(p, orders=("slack",), improve_passes=0, eject_passes=0, exact_hours=False)
    assert evaluate(p, plan)["objective"] <= evaluate(p, lone)["objective"] + 1e-9


def test_infeasible_queue_names_jobs_in_both_solvers():
    forecast = random_forecast(24, ["a", "b"], seed=2)
    sites = [site("a", gpus=16), site("b", gpus=16)]
    window = {"hours": 6, "deadline": START + 6 * HOUR}
    jobs = [job("first", gpus=16, **window), job("second", gpus=16, **window), job("third", gpus=16, **window),
            job("small", gpus=8, hours=2)]
    problem = build_problem(jobs, sites, forecast)
    with pytest.raises(PlacementError, match=r"cannot place 1 job\(s\): the exact solver") as err:
        solve_milp(problem)
    named = [name for name in ("first", "second", "third", "small") if f"'{name}'" in str(err.value)]
    assert len(named) == 1 and named != ["small"]  # one of the three identical jobs has to go
    with pytest.raises(PlacementError, match=r"cannot place 1 job\(s\): 'third' finds no allowed site with 16 free GPUs"):
        solve_heuristic(problem)
    too_big = build_problem([*jobs[:1], job("huge", gpus=64)], sites, forecast)
    for solve in (solve_milp, solve_heuristic, solve_sequential):
        with pytest.raises(PlacementError, match="'huge' needs 64 GPUs, its largest allowed site has 16"):
            solve(too_big)


@pytest.mark.parametrize("solver", ["fast", "milp"])
def test_schedule_with_queue_solvers(solver):
    zones = ["a", "b", "c"]
    sites = [site("a", gpus=48), site("b", gpus=64), site("c", gpus=40)]
    forecast = random_forecast(48, zones, seed=3)
    jobs = random_queue(8, 48, [s.id for s in sites], seed=3)
    plan = schedule(jobs, sites, forecast, solver=solver)
    greedy = schedule(jobs, sites, forecast)
    assert plan.solver == solver and (plan.usage <= plan.capacity).all()
    for j in jobs:
        a = plan[j.id]
        assert a.hours == j.hours and a.start >= j.earliest_start and a.end <= j.deadline
        assert not j.regions or a.site in j.regions
        assert f"{j.id} runs at site '{a.site}'" in plan.explain(j.id)
    total = sum(a.emissions_kg for a in plan)
    assert plan.stats["emissions_kg"] == pytest.approx(total)
    if solver == "milp":
        assert total <= sum(a.emissions_kg for a in greedy) + 1e-6
    ranked = rank_regions(jobs[0], sites, forecast)
    assert ranked["score"].is_monotonic_increasing
    with pytest.raises(PlacementError, match="unknown solver 'simplex'"):
        schedule(jobs, sites, forecast, solver="simplex")


def test_price_weight_moves_the_queue():
    forecast = random_forecast(24, ["green", "cheap"], seed=0)
    forecast["carbon_intensity"].loc[{"zone": "green"}] = 50.0
    forecast["carbon_intensity"].loc[{"zone": "cheap"}] = 400.0
    sites = [site("green", price=200.0), site("cheap", price=20.0)]
    jobs = [job("a"), job("b", hours=3)]
    carbon = schedule(jobs, sites, forecast, solver="milp")
    price = schedule(jobs, sites, forecast, Weights(carbon=0.0, price=1.0), solver="milp")
    assert {a.site for a in carbon} == {"green"} and {a.site for a in price} == {"cheap"}
    assert pd.Timestamp(carbon["a"].start) >= START


# --- one objective for every solver -----------------------------------------------------------------------------


def small_queue(seed: int, n_jobs: int = 3, hours: int = 8):
    """A tiny queue on three sites (one a job may not use) with prices, so carbon and price trade off."""
    rng = np.random.default_rng(seed)
    forecast = random_forecast(hours + 6, ["a", "b", "c"], seed=seed)
    sites = [site("a", gpus=16, price=float(rng.uniform(20, 200))), site("b", gpus=32, price=float(rng.uniform(20, 200))),
             site("c", gpus=16, price=float(rng.uniform(200, 900)))]
    jobs = []
    for i in range(n_jobs):
        first = int(rng.integers(0, 3))
        length = int(rng.integers(1, 3))
        jobs.append(job(f"q{i}", gpus=int(rng.choice([8, 16])), hours=length, earliest_start=START + first * HOUR,
                        deadline=START + (first + length + int(rng.integers(0, 4))) * HOUR,
                        interruptible=bool(i % 2), restart_overhead_h=0.4, regions=["a", "b"] if i % 2 else []))
    return jobs, sites, forecast


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_solver_reports_the_one_objective(seed):
    jobs, sites, forecast = small_queue(seed)
    weights = Weights(carbon=1.0, price=1.0)
    found = {}
    for name in ("greedy", "fast", "milp"):
        plan = schedule(jobs, sites, forecast, weights, solver=name)
        p = plan.problem
        # the solver's own figure is the objective recomputed from the plan by the one function
        assert plan.stats["solver_objective"] == pytest.approx(objective(p, plan.plan), rel=1e-9)
        assert sum(a.objective for a in plan) == pytest.approx(objective(p, plan.plan), rel=1e-9)
        for a in plan:
            assert a.objective == pytest.approx(a.score * a.gpus * a.hours, rel=1e-9)
        found[name] = (objective(p, plan.plan), p)
    # one normalisation: the same problem (values and references) whatever the solver
    values = [f[1].value for f in found.values()]
    assert all(np.array_equal(values[0], v) for v in values[1:])
    exact = brute_force(found["milp"][1])
    assert found["milp"][0] == pytest.approx(exact, rel=1e-6)
    assert found["milp"][0] <= found["fast"][0] + 1e-9 and found["milp"][0] <= found["greedy"][0] + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_one_job_greedy_is_optimal_under_the_same_weights(seed):
    """A single job: the per-job greedy, the heuristic and the MILP find the same optimum of the same
    weighted objective (the greedy used to normalise over the job's own sites and window only)."""
    jobs, sites, forecast = small_queue(seed, n_jobs=1)
    weights = Weights(carbon=1.0, price=1.5)
    totals = [schedule(jobs, sites, forecast, weights, solver=name).objective for name in ("greedy", "fast", "milp")]
    assert totals == pytest.approx([totals[2]] * 3, rel=1e-9)
    ranked = rank_regions(jobs[0], sites, forecast, weights)
    best = ranked.iloc[0]
    assert best["score"] * jobs[0].gpus * jobs[0].hours == pytest.approx(totals[2], rel=1e-9)


def test_schedule_builds_the_array_problem():
    p = random_problem(300, 6, 72, seed=4)
    jobs, sites, forecast = problem_objects(p)
    plan = schedule(jobs, sites, forecast, solver="fast")
    q = plan.problem
    np.testing.assert_allclose(q.value, p.value)
    for name in ("first", "last", "gpus", "hours", "allowed", "home", "capacity", "interruptible"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name), err_msg=name)
    assert plan.objective == pytest.approx(objective(p, solve_heuristic(p)), rel=1e-9)
    assert plan.stats["emissions_kg"] == pytest.approx(sum(a.emissions_kg for a in plan))


def test_solver_registry():
    with pytest.raises(PlacementError, match="unknown solver 'simplex'; known solvers: greedy, fast, milp"):
        get_solver("simplex")
    with pytest.raises(PlacementError, match="bad options"):
        get_solver("milp", tolerance=3)

    class AtHome:
        """Everyone at home from the earliest start (feasible when capacity allows)."""

        displaced = "stayed home"

        def solve(self, problem: Problem) -> Plan:
            slots = np.arange(len(problem.times))[None, :]
            run = (slots >= problem.first[:, None]) & (slots < (problem.first + problem.hours)[:, None])
            return Plan(site=problem.home.copy(), run=run, solver="at-home", stats={"objective": -1.0})

    register_solver("test-at-home")(AtHome)
    try:
        with pytest.raises(PlacementError, match="already registered"):
            register_solver("test-at-home")(AtHome)
        forecast = random_forecast(24, ["a", "b"], seed=1)
        sites = [site("a", gpus=64), site("b", gpus=64)]
        jobs = [job("x", hours=3), job("y", hours=2, regions=["b"])]
        plan = schedule(jobs, sites, forecast, solver="test-at-home")
        assert plan.solver == "test-at-home" and [a.site for a in plan] == ["a", "b"]
        assert all(a.slots == plan.baselines[a.job_id].slots for a in plan)
        assert schedule(jobs, sites, forecast, solver=AtHome()).objective == pytest.approx(plan.objective)
    finally:
        SOLVERS.unregister("test-at-home")
    with pytest.raises(PlacementError, match="known solvers: greedy, fast, milp$"):
        get_solver("test-at-home")
