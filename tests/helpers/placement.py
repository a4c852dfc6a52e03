"""Placement test instances: jobs, sites, synthetic hourly zone forecasts and seeded random problems
(also used by ``benchmarks/placement_scale.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.time import HOUR
from carbonsync.placement import Job, Problem, Site

START = pd.Timestamp("2020-11-20T00:00")


def make_forecast(share: np.ndarray, zones: list[str], fossil: float | list[float] = 500.0) -> xr.Dataset:
    """A synthetic hourly zone forecast from a (time, zone) renewable share."""
    share = np.asarray(share, dtype=np.float64)
    fossil = np.broadcast_to(np.asarray(fossil, dtype=np.float64), (len(zones),))
    times = pd.date_range(START, periods=share.shape[0], freq="h")
    return xr.Dataset(
        {
            "renewable_share": (("time", "zone"), share),
            "carbon_intensity": (("time", "zone"), (1.0 - share) * fossil),
        },
        coords={"time": times, "zone": zones},
    )


def random_forecast(n_hours: int, zones: list[str], seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    hours = np.arange(n_hours)[:, None]
    phase = rng.uniform(0, 1, len(zones))[None, :]
    share = (
        0.45
        + 0.3 * np.sin(2 * np.pi * (hours / 24 + phase))
        + 0.1 * rng.standard_normal((n_hours, len(zones)))
    )
    return make_forecast(np.clip(share, 0.0, 1.0), zones, fossil=rng.uniform(300, 700, len(zones)).tolist())


def job(job_id: str = "job", **kw) -> Job:
    spec = {"gpus": 8, "hours": 4, "earliest_start": START, "deadline": START + 24 * HOUR} | kw
    return Job(id=job_id, **spec)


def site(site_id: str, zone: str | None = None, **kw) -> Site:
    spec = {"zone": zone or site_id, "gpus": 64, "pue": 1.2, "price": 50.0} | kw
    return Site(id=site_id, **spec)


def random_queue(n_jobs: int, n_hours: int, site_ids: list[str], seed: int) -> list[Job]:
    rng = np.random.default_rng(seed)
    jobs = []
    for i in range(n_jobs):
        hours = int(rng.integers(1, 12))
        earliest = int(rng.integers(0, n_hours - hours))
        deadline = int(rng.integers(earliest + hours, n_hours + 1))
        regions = (
            list(rng.choice(site_ids, size=int(rng.integers(1, 3)), replace=False)) if i % 3 == 0 else []
        )
        jobs.append(
            job(
                f"j{i}",
                gpus=int(rng.integers(1, 5)) * 8,
                hours=hours,
                earliest_start=START + earliest * HOUR,
                deadline=START + deadline * HOUR,
                interruptible=bool(i % 2),
                restart_overhead_h=float(rng.uniform(0, 1)),
                regions=regions,
            )
        )
    return jobs


def random_problem(n_jobs: int, n_sites: int, n_slots: int, seed: int, inter_share: float = 0.5) -> Problem:
    """A seeded random instance: sites with a daily intensity cycle at 50-400 g/kWh (+-15 % noise), 1-12 h
    jobs of 8-64 GPUs with up to 35 h of slack, 80 % of sites allowed per job (the home site always),
    capacity about 1.7x the mean demand (at least 128 GPUs), ``inter_share`` of jobs interruptible."""
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


def problem_objects(problem: Problem, n_jobs: int | None = None) -> tuple[list[Job], list[Site], xr.Dataset]:
    """The (first ``n_jobs``) jobs of an array-built problem as Job/Site objects and a zone forecast, so that
    ``build_problem(*problem_objects(p))`` is the same problem (sites are zones, PUE 1, price 0)."""
    n_jobs = problem.n_jobs if n_jobs is None else n_jobs
    times = problem.times
    sites = [Site(id=s, zone=s, gpus=int(problem.capacity[i]), pue=1.0, price=0.0, gpu_kw=float(problem.power_kw[i]))
             for i, s in enumerate(problem.site_ids)]
    everywhere = problem.regions.all(axis=1)
    jobs = [
        Job(id=problem.job_ids[j], gpus=int(problem.gpus[j]), hours=int(problem.hours[j]),
            earliest_start=times[problem.first[j]], deadline=times[problem.last[j] - 1] + HOUR,
            interruptible=bool(problem.interruptible[j]), restart_overhead_h=float(problem.overhead[j]),
            regions=() if everywhere[j] else tuple(problem.site_ids[s] for s in np.flatnonzero(problem.regions[j])),
            home=problem.site_ids[problem.home[j]])
        for j in range(n_jobs)
    ]
    intensity = problem.emissions_kg / problem.power_kw[:, None] * 1000.0
    forecast = xr.Dataset(
        {"carbon_intensity": (("time", "zone"), intensity.T), "renewable_share": (("time", "zone"), np.zeros(intensity.T.shape))},
        coords={"time": times, "zone": list(problem.site_ids)},
    )
    return jobs, sites, forecast
