"""Carbon-aware placement of training jobs: where and when to run them, from zone forecasts.

Load a queue and sites (:func:`load_queue`, :func:`load_sites`), rank sites for one job
(:func:`rank_regions`) or place a whole queue under GPU capacity (:func:`schedule`, with the solvers
``greedy``, ``fast`` and ``milp``; the array-level solvers and their optimality gap are in
:mod:`carbonsync.placement.solvers`, the hour-by-hour policy replay on grid traces in
:mod:`carbonsync.placement.replay`).
"""

from carbonsync.placement.jobs import DEFAULT_GPU_KW, Job, PlacementError, Site, load_queue, load_sites
from carbonsync.placement.rank import (
    Assignment,
    JobCosts,
    Schedule,
    Weights,
    ZoneForecast,
    assess,
    baseline,
    best_hours,
    best_window,
    format_table,
    job_costs,
    rank_regions,
    schedule,
)
from carbonsync.placement.solvers import Plan, Problem, build_problem, optimality_gap, rank_all, solve_greedy, solve_milp

__all__ = [
    "DEFAULT_GPU_KW",
    "Assignment",
    "Job",
    "JobCosts",
    "PlacementError",
    "Plan",
    "Problem",
    "Schedule",
    "Site",
    "Weights",
    "ZoneForecast",
    "assess",
    "baseline",
    "best_hours",
    "best_window",
    "build_problem",
    "format_table",
    "job_costs",
    "load_queue",
    "load_sites",
    "optimality_gap",
    "rank_all",
    "rank_regions",
    "schedule",
    "solve_greedy",
    "solve_milp",
]
