"""Placement test instances: jobs, sites and synthetic hourly zone forecasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.placement import Job, Site
from carbonsync.placement.jobs import HOUR

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
