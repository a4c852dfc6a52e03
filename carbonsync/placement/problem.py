"""The placement problem as arrays, derived from jobs, sites and a zone forecast, and its one objective.

The forecast is an ``xr.Dataset`` with dims ``(time, zone)``, hourly UTC ``time`` and variables
``renewable_share`` (0..1) and ``carbon_intensity`` (gCO2eq/kWh); :class:`ZoneForecast` validates it.

**The objective** (the same for every solver and for :func:`carbonsync.placement.rank_regions`): a busy
GPU at site ``s`` in hour ``t`` costs

    value[s, t] = carbon * emissions[s, t] / carbon_ref + price * cost[s, t] / price_ref

where ``emissions`` (kg CO2e) and ``cost`` (EUR) are per GPU-hour with the site's PUE, and the references
``carbon_ref`` and ``price_ref`` are the mean per-GPU-hour emissions and mean absolute per-GPU-hour cost
over **all the problem's sites and every hour inside at least one job's window** (1 where that mean is 0).
So a value of 1 is a typical GPU-hour of the problem, ``carbon=1, price=1`` weighs a relative change in
each equally, and with ``price=0`` the objective is the total emissions divided by ``carbon_ref``. A job
running ``gpus`` GPUs in hour ``t`` at site ``s`` adds ``gpus * value[s, t]``; every segment of an
interruptible job after the first adds ``restart_overhead_h`` times the value of the hour it resumes in
(checkpoint reload and warm-up). :func:`objective` computes it for any :class:`Plan`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.time import HOUR, fmt_time
from carbonsync.placement.jobs import Job, PlacementError, Site, check_regions

FORECAST_VARS = ("renewable_share", "carbon_intensity")
FORECAST_DIMS = ("time", "zone")


@dataclass(frozen=True)
class Weights:
    """Weights of the normalised objectives (lower is better); see the module docstring for the references."""

    carbon: float = 1.0
    price: float = 0.0

    def __post_init__(self) -> None:
        for name in ("carbon", "price"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not np.isfinite(value)
                or value < 0
            ):
                raise PlacementError(f"weights: {name} must be a finite number >= 0, got {value!r}")
        if self.carbon + self.price == 0:
            raise PlacementError("weights: carbon and price are both 0; at least one must be positive")


@dataclass(frozen=True, eq=False)
class ZoneForecast:
    """A validated zone forecast as numpy arrays of shape ``(time, zone)``."""

    times: pd.DatetimeIndex
    zones: tuple[str, ...]
    renewable_share: np.ndarray
    carbon_intensity: np.ndarray

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ZoneForecast:
        """Check dims, variables, hourly times and value ranges of ``ds``."""
        if isinstance(ds, ZoneForecast):
            return ds
        if not isinstance(ds, xr.Dataset):
            raise PlacementError(f"forecast must be an xarray.Dataset, got {type(ds).__name__}")
        missing = [v for v in FORECAST_VARS if v not in ds.data_vars]
        if missing:
            have = ", ".join(map(str, ds.data_vars)) or "none"
            raise PlacementError(f"forecast: missing variable(s) {', '.join(missing)}; it has {have}")
        for name in FORECAST_VARS:
            if set(ds[name].dims) != set(FORECAST_DIMS) or ds[name].ndim != 2:
                raise PlacementError(
                    f"forecast: variable '{name}' has dims {ds[name].dims}, expected {FORECAST_DIMS}; "
                    "select a single member or quantile first (e.g. ds.sel(quantile=0.5))"
                )
        if "time" not in ds.coords or "zone" not in ds.coords:
            raise PlacementError("forecast: needs 'time' and 'zone' coordinates")
        try:
            times = pd.DatetimeIndex(ds["time"].values)
        except (TypeError, ValueError):
            raise PlacementError(f"forecast: 'time' is not datetimes (dtype {ds['time'].dtype})") from None
        if times.tz is not None:
            times = times.tz_convert("UTC").tz_localize(None)
        if len(times) == 0:
            raise PlacementError("forecast: 'time' is empty")
        if times.hasnans:
            raise PlacementError("forecast: 'time' contains missing values (NaT)")
        irregular = np.asarray(times[1:] - times[:-1] != HOUR)
        if irregular.any():
            bad = int(np.flatnonzero(irregular)[0])
            raise PlacementError(
                f"forecast: times must be hourly and increasing; {fmt_time(times[bad + 1])} follows "
                f"{fmt_time(times[bad])}"
            )
        if times[0] != times[0].floor("h"):
            raise PlacementError(f"forecast: times must be on whole hours, starts at {times[0].isoformat()}")
        zones = tuple(str(z) for z in ds["zone"].values)
        if len(set(zones)) != len(zones):
            raise PlacementError(f"forecast: duplicated zone ids in {list(zones)}")
        arrays = {
            name: ds[name].transpose(*FORECAST_DIMS).values.astype(np.float64) for name in FORECAST_VARS
        }
        share, intensity = arrays["renewable_share"], arrays["carbon_intensity"]
        if (np.nanmin(share, initial=0.0) < 0) or (np.nanmax(share, initial=0.0) > 1):
            raise PlacementError(
                "forecast: renewable_share must lie in 0..1, "
                f"got {np.nanmin(share):.3g}..{np.nanmax(share):.3g}"
            )
        if np.nanmin(intensity, initial=0.0) < 0:
            raise PlacementError(
                f"forecast: carbon_intensity must be >= 0, got min {np.nanmin(intensity):.3g}"
            )
        return cls(times, zones, share, intensity)

    def zone_index(self, site: Site) -> int:
        if site.zone not in self.zones:
            raise PlacementError(
                f"site '{site.id}' is in zone '{site.zone}', which the forecast does not have "
                f"(it has {', '.join(self.zones)})"
            )
        return self.zones.index(site.zone)

    def window(self, job: Job) -> slice:
        """Forecast indices of the job's hourly slots ``[earliest_start, deadline)``."""
        first, last = job.earliest_start, job.deadline - HOUR
        if first < self.times[0] or last > self.times[-1]:
            raise PlacementError(
                f"job '{job.id}': the forecast covers {fmt_time(self.times[0])} to "
                f"{fmt_time(self.times[-1])} but the job's window needs {fmt_time(first)} to {fmt_time(last)}"
            )
        start = int((first - self.times[0]) / HOUR)
        return slice(start, start + job.window_hours)


def as_forecast(forecast: xr.Dataset | ZoneForecast) -> ZoneForecast:
    """Validate a forecast dataset (a :class:`ZoneForecast` passes through)."""
    return ZoneForecast.from_dataset(forecast)


def window_mask(first: np.ndarray, last: np.ndarray, n_slots: int) -> np.ndarray:
    """Slots inside at least one job's window ``[first, last)``."""
    marks = np.zeros(n_slots + 1, dtype=np.int64)
    np.add.at(marks, np.asarray(first, dtype=np.int64), 1)
    np.add.at(marks, np.asarray(last, dtype=np.int64), -1)
    return np.cumsum(marks[:-1]) > 0


def objective_values(
    emissions: np.ndarray, cost: np.ndarray, used: np.ndarray, weights: Weights
) -> tuple[np.ndarray, float, float]:
    """``value`` (S, T) and the references ``carbon_ref``, ``price_ref`` (the module docstring's objective).

    ``emissions`` and ``cost`` are per GPU-hour; ``used`` marks the hours inside some job's window."""
    if not used.any():
        used = np.ones(emissions.shape[1], dtype=bool)
    carbon_ref = float(emissions[:, used].mean()) or 1.0
    price_ref = float(np.abs(cost[:, used]).mean()) or 1.0
    value = weights.carbon * emissions / carbon_ref + weights.price * cost / price_ref
    return value, carbon_ref, price_ref


@dataclass(frozen=True, eq=False)
class Problem:
    """Arrays of a placement problem: jobs (``J``), sites (``S``) and hourly slots (``T``).

    ``first``/``last`` bound each job's window ``[first, last)`` in slot indices; ``regions[j, s]`` is true
    where the job may run at the site, ``allowed[j, s]`` where it also has enough GPUs for the job;
    ``home[j]`` is the site of its carbon-agnostic placement. ``value`` is the objective per GPU-hour (see
    the module docstring), ``emissions_kg`` and ``cost_eur`` per GPU-hour, ``power_kw`` per busy GPU (PUE
    included). ``jobs`` and ``sites`` are the objects the arrays came from (empty for array-built problems).
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
    regions: np.ndarray
    allowed: np.ndarray
    home: np.ndarray
    capacity: np.ndarray
    value: np.ndarray
    emissions_kg: np.ndarray
    cost_eur: np.ndarray
    power_kw: np.ndarray
    renewable_share: np.ndarray
    weights: Weights
    carbon_ref: float
    price_ref: float
    jobs: tuple[Job, ...] = ()
    sites: tuple[Site, ...] = ()

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
        renewable_share: np.ndarray | None = None,
        interruptible: np.ndarray | None = None,
        overhead: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        home: np.ndarray | None = None,
        weights: Weights | None = None,
        times: pd.DatetimeIndex | None = None,
        job_ids: Sequence[str] | None = None,
        site_ids: Sequence[str] | None = None,
        jobs: Sequence[Job] = (),
        sites: Sequence[Site] = (),
    ) -> Problem:
        """Build from plain arrays: ``intensity`` (S, T) gCO2e/kWh, ``power_kw`` (S,) per busy GPU with PUE,
        ``price`` (S, T) EUR/MWh (default 0), ``allowed`` (J, S) the sites each job may use (default all),
        ``home`` (J,) the carbon-agnostic site (default: the first allowed site with enough GPUs)."""
        weights = weights or Weights()
        intensity = np.asarray(intensity, dtype=np.float64)
        n_sites, n_slots = intensity.shape
        gpus = np.asarray(gpus, dtype=np.int64)
        n_jobs = len(gpus)
        first = np.asarray(first, dtype=np.int64)
        last = np.asarray(last, dtype=np.int64)
        power_kw = np.asarray(power_kw, dtype=np.float64)
        price = np.zeros_like(intensity) if price is None else np.asarray(price, dtype=np.float64)
        capacity = np.asarray(capacity, dtype=np.int64)
        emissions = power_kw[:, None] * intensity / 1000.0
        cost = power_kw[:, None] / 1000.0 * price
        value, carbon_ref, price_ref = objective_values(emissions, cost, window_mask(first, last, n_slots), weights)
        regions = np.ones((n_jobs, n_sites), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
        fits = gpus[:, None] <= capacity[None, :]
        if home is None:
            fitting = regions & fits
            home = np.where(fitting.any(axis=1), np.argmax(fitting, axis=1), np.argmax(regions, axis=1))
        share = np.full_like(intensity, np.nan) if renewable_share is None else np.asarray(renewable_share, np.float64)
        return cls(
            job_ids=tuple(job_ids) if job_ids is not None else tuple(f"j{i}" for i in range(n_jobs)),
            site_ids=tuple(site_ids) if site_ids is not None else tuple(f"s{i}" for i in range(n_sites)),
            times=times if times is not None else pd.date_range("2000-01-01", periods=n_slots, freq="h"),
            gpus=gpus,
            hours=np.asarray(hours, dtype=np.int64),
            first=first,
            last=last,
            interruptible=np.zeros(n_jobs, bool) if interruptible is None else np.asarray(interruptible, bool),
            overhead=np.zeros(n_jobs) if overhead is None else np.asarray(overhead, dtype=np.float64),
            regions=regions,
            allowed=regions & fits,
            home=np.asarray(home, dtype=np.int64),
            capacity=capacity,
            value=value,
            emissions_kg=emissions,
            cost_eur=cost,
            power_kw=power_kw,
            renewable_share=share,
            weights=weights,
            carbon_ref=carbon_ref,
            price_ref=price_ref,
            jobs=tuple(jobs),
            sites=tuple(sites),
        )


def _check_ids(jobs: Sequence[Job], sites: Sequence[Site]) -> None:
    if not jobs:
        raise PlacementError("no jobs to place")
    if not sites:
        raise PlacementError("no sites to place jobs at")
    for kind, ids in (("job", [j.id for j in jobs]), ("site", [s.id for s in sites])):
        duplicated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicated:
            raise PlacementError(f"duplicated {kind} id(s) {', '.join(duplicated)}")


def build_problem(
    jobs: Sequence[Job], sites: Sequence[Site], forecast: xr.Dataset | ZoneForecast, weights: Weights | None = None
) -> Problem:
    """The :class:`Problem` of ``jobs`` at ``sites`` on ``forecast`` (the slots span the forecast's times).

    Checks ids, regions, that every site's zone is in the forecast, that it covers every job's window and
    has no missing value (nor a site a missing price, when price is weighted) inside a window."""
    weights = weights or Weights()
    fc = as_forecast(forecast)
    jobs, sites = list(jobs), list(sites)
    _check_ids(jobs, sites)
    check_regions(jobs, sites)
    zones = [fc.zone_index(s) for s in sites]
    n_slots = len(fc.times)
    t0 = fc.times[0].value
    hour_ns = HOUR.value
    starts = np.fromiter((j.earliest_start.value for j in jobs), dtype=np.int64, count=len(jobs))
    ends = np.fromiter((j.deadline.value for j in jobs), dtype=np.int64, count=len(jobs))
    first, last = (starts - t0) // hour_ns, (ends - t0) // hour_ns
    outside = np.flatnonzero((first < 0) | (last > n_slots))
    if len(outside):
        fc.window(jobs[int(outside[0])])  # raises with the job's name
    used = window_mask(first, last, n_slots)
    intensity = fc.carbon_intensity[:, zones].T
    share = fc.renewable_share[:, zones].T
    for values, name in ((intensity, "carbon_intensity"), (share, "renewable_share")):
        bad = ~np.isfinite(values) & used[None, :]
        if bad.any():
            s, t = np.argwhere(bad)[0]
            raise PlacementError(
                f"forecast {name} is missing (NaN) in zone '{sites[s].zone}' at {fmt_time(fc.times[t])}"
            )
    prices = np.stack([s.prices(fc.times) for s in sites])
    missing_price = ~np.isfinite(prices) & used[None, :]
    if weights.price > 0 and missing_price.any():
        s, t = np.argwhere(missing_price)[0]
        raise PlacementError(
            f"site '{sites[s].id}' has no price at {fmt_time(fc.times[t])} (price file {sites[s].price})"
        )
    index = {s.id: i for i, s in enumerate(sites)}
    capacity = np.array([s.gpus for s in sites], dtype=np.int64)
    gpus = np.fromiter((j.gpus for j in jobs), dtype=np.int64, count=len(jobs))
    regions = np.ones((len(jobs), len(sites)), dtype=bool)
    home = np.argmax(gpus[:, None] <= capacity[None, :], axis=1)  # the first site with enough GPUs (else 0)
    for j, job in enumerate(jobs):
        if job.regions:
            rows = [index[r] for r in job.regions]
            regions[j] = False
            regions[j, rows] = True
            if not job.home:
                home[j] = next((r for r in rows if capacity[r] >= job.gpus), rows[0])
        if job.home:
            home[j] = index[job.home]
    return Problem.from_arrays(
        gpus=gpus,
        hours=[j.hours for j in jobs],
        first=first,
        last=last,
        capacity=capacity,
        intensity=np.nan_to_num(intensity, nan=0.0),
        power_kw=[s.gpu_kw * s.pue for s in sites],
        price=np.nan_to_num(prices, nan=0.0),
        renewable_share=share,
        interruptible=[j.interruptible for j in jobs],
        overhead=[j.restart_overhead_h for j in jobs],
        allowed=regions,
        home=home,
        weights=weights,
        times=fc.times,
        job_ids=[j.id for j in jobs],
        site_ids=list(index),
        jobs=jobs,
        sites=sites,
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


def resumes(run: np.ndarray) -> np.ndarray:
    """Slots where a segment starts that is not a job's first (rows are jobs)."""
    run = np.atleast_2d(np.asarray(run, dtype=bool))
    begins = run.copy()
    begins[:, 1:] &= ~run[:, :-1]
    first = np.argmax(begins, axis=1)
    out = begins.copy()
    out[np.arange(len(run)), first] = False
    return out


def billed_hours(problem: Problem, run: np.ndarray, jobs: np.ndarray | None = None) -> np.ndarray:
    """Hours of full power billed at each slot: 1 where a job runs, plus its overhead where it resumes."""
    jobs = np.arange(problem.n_jobs) if jobs is None else jobs
    return run + problem.overhead[jobs, None] * resumes(run)


def job_objectives(problem: Problem, plan: Plan) -> np.ndarray:
    """Each placed job's share of the objective (NaN where unplaced)."""
    out = np.full(problem.n_jobs, np.nan)
    j = np.flatnonzero(plan.site >= 0)
    if len(j):
        billed = billed_hours(problem, plan.run[j], j)
        out[j] = problem.gpus[j] * (billed * problem.value[plan.site[j]]).sum(axis=1)
    return out


def objective(problem: Problem, plan: Plan) -> float:
    """The problem's objective (the module docstring's) of a plan, summed over its placed jobs."""
    return float(np.nansum(job_objectives(problem, plan)))


def evaluate(problem: Problem, plan: Plan) -> dict:
    """Objective, emissions, cost and energy of a plan (restart overheads included)."""
    j = np.flatnonzero(plan.site >= 0)
    if not len(j):
        return {"objective": 0.0, "emissions_kg": 0.0, "cost_eur": 0.0, "energy_kwh": 0.0, "segments": 0}
    run = plan.run[j]
    billed = billed_hours(problem, run, j)
    rows = plan.site[j]
    g = problem.gpus[j, None]
    return {
        "objective": objective(problem, plan),
        "emissions_kg": float((g * billed * problem.emissions_kg[rows]).sum()),
        "cost_eur": float((g * billed * problem.cost_eur[rows]).sum()),
        "energy_kwh": float((g[:, 0] * problem.power_kw[rows] * billed.sum(axis=1)).sum()),
        "segments": int((run & ~np.pad(run, ((0, 0), (1, 0)))[:, :-1]).sum()),
    }


def usage(problem: Problem, plan: Plan) -> np.ndarray:
    """GPUs in use per site and slot, (S, T)."""
    out = np.zeros((problem.n_sites, len(problem.times)), dtype=np.int64)
    j, t = np.nonzero(plan.run)
    keep = plan.site[j] >= 0
    np.add.at(out, (plan.site[j[keep]], t[keep]), problem.gpus[j[keep]])
    return out


def check_plan(problem: Problem, plan: Plan) -> None:
    """Raise :class:`PlacementError` if the plan breaks a window, a duration, a region or capacity."""
    def fail(j: int, what: str) -> None:
        raise PlacementError(f"job '{problem.job_ids[j]}' {what}")

    site, run = plan.site, plan.run
    unplaced = np.flatnonzero(site < 0)
    if len(unplaced):
        fail(int(unplaced[0]), "is not placed")
    j_all = np.arange(problem.n_jobs)
    bad = np.flatnonzero(~problem.allowed[j_all, site])
    if len(bad):
        fail(int(bad[0]), f"runs at site '{problem.site_ids[site[bad[0]]]}', which it may not use")
    counts = run.sum(axis=1)
    bad = np.flatnonzero(counts != problem.hours)
    if len(bad):
        fail(int(bad[0]), f"runs {counts[bad[0]]} h, it needs {problem.hours[bad[0]]}")
    slots = np.arange(run.shape[1])[None, :]
    outside = run & ((slots < problem.first[:, None]) | (slots >= problem.last[:, None]))
    bad = np.flatnonzero(outside.any(axis=1))
    if len(bad):
        fail(int(bad[0]), "runs outside its window")
    begins = run.copy()
    begins[:, 1:] &= ~run[:, :-1]
    bad = np.flatnonzero(~problem.interruptible & (begins.sum(axis=1) > 1))
    if len(bad):
        fail(int(bad[0]), "is not interruptible but runs in several segments")
    use = usage(problem, plan)
    over = use > problem.capacity[:, None]
    if over.any():
        s, t = np.argwhere(over)[0]
        raise PlacementError(
            f"site '{problem.site_ids[s]}' uses {use[s, t]} GPUs of {problem.capacity[s]} at {fmt_time(problem.times[t])}"
        )


def baseline_plan(problem: Problem) -> Plan:
    """The carbon-agnostic plan: every job contiguous from its earliest start at its home site (capacity
    taken by other jobs ignored)."""
    slots = np.arange(len(problem.times))[None, :]
    run = (slots >= problem.first[:, None]) & (slots < (problem.first + problem.hours)[:, None])
    return Plan(site=problem.home.copy(), run=run, solver="carbon_agnostic")


def unfit_messages(problem: Problem) -> list[str]:
    """Jobs that cannot run even alone: no allowed site has enough GPUs."""
    out = []
    for j in np.flatnonzero(~problem.allowed.any(axis=1)):
        largest = int(problem.capacity[problem.regions[j]].max()) if problem.regions[j].any() else 0
        out.append(f"'{problem.job_ids[j]}' needs {problem.gpus[j]} GPUs, its largest allowed site has {largest}")
    return out
