"""Queue-level solvers: vectorised ranking, greedy heuristic, exact MILP, optimality gap, schedule integration."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from carbonsync.placement import PlacementError, Problem, rank_regions, schedule, solve_greedy, solve_milp
from carbonsync.placement.jobs import HOUR
from carbonsync.placement.solvers import (
    best_option,
    build_problem,
    check_plan,
    evaluate,
    optimality_gap,
    random_problem,
    rank_all,
)
from tests.helpers.placement import START, job, random_forecast, random_queue, site


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
    heuristic = solve_greedy(p)
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
    heuristic = solve_greedy(p)
    check_plan(p, heuristic)
    assert exact.stats["optimal"]
    assert -1e-9 <= optimality_gap(p, heuristic, exact) <= 0.05


def test_greedy_scales_and_respects_constraints():
    p = random_problem(400, 12, 96, seed=5)
    plan = solve_greedy(p, exact_hours=False)
    check_plan(p, plan)
    lone = solve_greedy(p, orders=("slack",), improve_passes=0, eject_passes=0, exact_hours=False)
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
        solve_greedy(problem)
    too_big = build_problem([*jobs[:1], job("huge", gpus=64)], sites, forecast)
    with pytest.raises(PlacementError, match="'huge' needs 64 GPUs and no allowed site has that many"):
        solve_milp(too_big)


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
    from carbonsync.placement import Weights

    carbon = schedule(jobs, sites, forecast, solver="milp")
    price = schedule(jobs, sites, forecast, Weights(carbon=0.0, price=1.0), solver="milp")
    assert {a.site for a in carbon} == {"green"} and {a.site for a in price} == {"cheap"}
    assert pd.Timestamp(carbon["a"].start) >= START
