"""Carbon-aware placement of training jobs: where and when to run them, from zone forecasts.

Load a queue and sites (:func:`load_queue`, :func:`load_sites`), rank sites for one job
(:func:`rank_regions`) or place a whole queue under GPU capacity (:func:`schedule`).
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

__all__ = [
    "DEFAULT_GPU_KW",
    "Assignment",
    "Job",
    "JobCosts",
    "PlacementError",
    "Schedule",
    "Site",
    "Weights",
    "ZoneForecast",
    "assess",
    "baseline",
    "best_hours",
    "best_window",
    "format_table",
    "job_costs",
    "load_queue",
    "load_sites",
    "rank_regions",
    "schedule",
]
