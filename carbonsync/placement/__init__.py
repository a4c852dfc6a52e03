"""Carbon-aware placement of training jobs: where and when to run them, from zone forecasts.

One job/site model (:class:`Job`, :class:`Site`; :func:`load_queue`, :func:`load_sites`) and one
vectorised view of it, the :class:`Problem` built by :func:`build_problem` from jobs, sites and a forecast,
with one objective (:func:`objective`; normalisation in :mod:`carbonsync.placement.problem`). Rank sites
for one job (:func:`rank_regions`), place a queue under GPU capacity with a registered :class:`Solver`
(:func:`schedule`; ``greedy``, ``fast``, ``milp``; :func:`register_solver`, :func:`get_solver`), assess a
schedule on realised data (:func:`assess`), and replay hour-by-hour :class:`Policy` objects on grid traces
(:mod:`carbonsync.placement.replay`; ``carbon_agnostic``, ``threshold``, ``temporal``, ``spatiotemporal``,
``oracle``; :func:`register_policy`, :func:`get_policy`).
"""

from carbonsync.placement.jobs import DEFAULT_GPU_KW, Job, PlacementError, Site, load_queue, load_sites
from carbonsync.placement.problem import (
    Plan,
    Problem,
    Weights,
    ZoneForecast,
    baseline_plan,
    build_problem,
    check_plan,
    evaluate,
    objective,
)
from carbonsync.placement.rank import (
    Assessment,
    Assignment,
    Schedule,
    assess,
    baseline,
    evaluate_assignment,
    format_table,
    rank_regions,
    schedule,
)
from carbonsync.placement.replay import Policy, get_policy, register_policy, simulate
from carbonsync.placement.search import best_hours, best_window
from carbonsync.placement.solvers import (
    Solver,
    get_solver,
    optimality_gap,
    rank_all,
    register_solver,
    solve_heuristic,
    solve_milp,
    solve_sequential,
    solver_names,
)

__all__ = [
    "DEFAULT_GPU_KW",
    "Assessment",
    "Assignment",
    "Job",
    "PlacementError",
    "Plan",
    "Policy",
    "Problem",
    "Schedule",
    "Site",
    "Solver",
    "Weights",
    "ZoneForecast",
    "assess",
    "baseline",
    "baseline_plan",
    "best_hours",
    "best_window",
    "build_problem",
    "check_plan",
    "evaluate",
    "evaluate_assignment",
    "format_table",
    "get_policy",
    "get_solver",
    "load_queue",
    "load_sites",
    "objective",
    "optimality_gap",
    "rank_all",
    "rank_regions",
    "register_policy",
    "register_solver",
    "schedule",
    "simulate",
    "solve_heuristic",
    "solve_milp",
    "solve_sequential",
    "solver_names",
]
