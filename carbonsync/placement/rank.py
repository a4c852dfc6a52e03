"""Rank sites and hours for training jobs from a zone forecast, and place a queue greedily.

The forecast is an ``xr.Dataset`` with dims ``(time, zone)``, hourly UTC ``time`` and variables
``renewable_share`` (0..1) and ``carbon_intensity`` (gCO2eq/kWh).

For one job, :func:`job_costs` turns the forecast into per-site, per-hour arrays (emissions, cost and a
normalised weighted score); :func:`best_window` and :func:`best_hours` search them; :func:`rank_regions`
reports the best option per site and :func:`schedule` places a whole queue under GPU capacity. A solver
(e.g. a MILP) can reuse :class:`JobCosts` and return a :class:`Schedule` built from :class:`Assignment`
objects; :func:`assess` evaluates any given slots, e.g. against realised data in a replay.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.placement.jobs import HOUR, Job, PlacementError, Site, check_regions, fmt_time

FORECAST_VARS = ("renewable_share", "carbon_intensity")
FORECAST_DIMS = ("time", "zone")
SOLVERS = ("greedy", "fast", "milp")


@dataclass(frozen=True)
class Weights:
    """Weights of the normalised objectives in the combined score (lower score is better).

    Each objective is divided by its mean per-hour value over the job's allowed sites and window, so a
    score of 1 is a typical placement and ``carbon=1, price=1`` weighs a relative change in each equally.
    """

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
        start = int(self.times.get_loc(first))
        return slice(start, start + job.window_hours)


@dataclass(frozen=True)
class Assignment:
    """Where and when a job runs, and what it is expected to cost. ``slots`` are hour starts (UTC)."""

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


@dataclass(frozen=True, eq=False)
class JobCosts:
    """Per-site (rows, the job's allowed sites) and per-hour (columns, the job's window) objectives.

    ``emissions_kg`` and ``cost_eur`` are for running the whole job in that hour; ``score`` is the
    weighted, normalised combination; a restart at hour ``t`` costs ``restart_overhead_h`` times the
    hour's values.
    """

    job: Job
    sites: tuple[Site, ...]
    times: pd.DatetimeIndex
    offset: int
    power_kw: np.ndarray
    renewable_share: np.ndarray
    emissions_kg: np.ndarray
    cost_eur: np.ndarray
    carbon_ref_kg: float
    price_ref_eur: float
    weights: Weights
    score: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        score = (
            self.weights.carbon * self.emissions_kg / self.carbon_ref_kg
            + self.weights.price * self.cost_eur / self.price_ref_eur
        )
        object.__setattr__(self, "score", score)

    @property
    def restart_score(self) -> np.ndarray:
        return self.job.restart_overhead_h * self.score

    def assignment(self, site_index: int, chosen: np.ndarray) -> Assignment:
        """Evaluate running the job at ``sites[site_index]`` in the window slots where ``chosen`` is true."""
        chosen = np.asarray(chosen, dtype=bool)
        if chosen.sum() != self.job.hours:
            raise PlacementError(
                f"job '{self.job.id}': {int(chosen.sum())} slots chosen, it needs {self.job.hours}"
            )
        begins = chosen & ~np.concatenate([[False], chosen[:-1]])
        resumes = begins.copy()
        resumes[np.argmax(begins)] = False
        overhead = self.job.restart_overhead_h
        billed = chosen + overhead * resumes  # hours of full power billed at each slot's conditions
        site = self.sites[site_index]
        emissions = float(billed @ self.emissions_kg[site_index])
        cost = float(billed @ self.cost_eur[site_index])
        carbon_score = emissions / self.carbon_ref_kg / self.job.hours
        price_score = cost / self.price_ref_eur / self.job.hours
        return Assignment(
            job_id=self.job.id,
            site=site.id,
            zone=site.zone,
            gpus=self.job.gpus,
            slots=tuple(self.times[chosen]),
            segments=int(begins.sum()),
            energy_kwh=float(self.power_kw[site_index] * billed.sum()),
            emissions_kg=emissions,
            cost_eur=cost,
            mean_renewable_share=float(self.renewable_share[site_index, chosen].mean()),
            carbon_score=carbon_score,
            price_score=price_score,
            score=self.weights.carbon * carbon_score + self.weights.price * price_score,
        )


def as_forecast(forecast: xr.Dataset | ZoneForecast) -> ZoneForecast:
    """Validate a forecast dataset (a :class:`ZoneForecast` passes through)."""
    return ZoneForecast.from_dataset(forecast)


def allowed_sites(job: Job, sites: Sequence[Site]) -> list[Site]:
    """The sites a job may use, in the job's ``regions`` order (all sites when it has none)."""
    if not job.regions:
        return list(sites)
    by_id = {s.id: s for s in sites}
    check_regions([job], sites)
    return [by_id[r] for r in job.regions]


def job_costs(
    job: Job, sites: Sequence[Site], forecast: xr.Dataset | ZoneForecast, weights: Weights | None = None
) -> JobCosts:
    """Per-site, per-hour emissions, cost and score of ``job`` at its allowed sites over its window."""
    return _costs(job, allowed_sites(job, sites), as_forecast(forecast), weights or Weights())


def _costs(job: Job, chosen: Sequence[Site], fc: ZoneForecast, weights: Weights) -> JobCosts:
    """:func:`job_costs` for exactly the sites ``chosen`` (normalised over them)."""
    if not chosen:
        raise PlacementError(f"job '{job.id}': no sites to place it at")
    window = fc.window(job)
    times = fc.times[window]
    zones = [fc.zone_index(s) for s in chosen]
    share = fc.renewable_share[window][:, zones].T
    intensity = fc.carbon_intensity[window][:, zones].T
    for values, name in ((share, "renewable_share"), (intensity, "carbon_intensity")):
        bad = ~np.isfinite(values)
        if bad.any():
            s, t = np.argwhere(bad)[0]
            raise PlacementError(
                f"job '{job.id}': forecast {name} is missing (NaN) in zone '{chosen[s].zone}' "
                f"at {fmt_time(times[t])}"
            )
    prices = np.stack([s.prices(times) for s in chosen])
    if not np.isfinite(prices).all():
        s, t = np.argwhere(~np.isfinite(prices))[0]
        raise PlacementError(
            f"job '{job.id}': site '{chosen[s].id}' has no price at {fmt_time(times[t])} "
            f"(price file {chosen[s].price})"
        )
    power = np.array([s.power_kw(job.gpus) for s in chosen])
    emissions = power[:, None] * intensity / 1000.0  # kW * 1 h * g/kWh -> kg
    cost = power[:, None] / 1000.0 * prices  # MWh * EUR/MWh
    carbon_ref = float(np.mean(emissions))
    price_ref = float(np.mean(np.abs(cost)))
    return JobCosts(
        job=job,
        sites=tuple(chosen),
        times=times,
        offset=window.start,
        power_kw=power,
        renewable_share=share,
        emissions_kg=emissions,
        cost_eur=cost,
        carbon_ref_kg=carbon_ref if carbon_ref > 0 else 1.0,
        price_ref_eur=price_ref if price_ref > 0 else 1.0,
        weights=weights,
    )


def best_window(
    score: np.ndarray, hours: int, blocked: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best contiguous block of ``hours`` slots in each row of ``score`` (sites, time).

    Returns the start index and the block's summed score per row; the sum is ``inf`` (start 0) when every
    block contains a ``blocked`` slot. Sliding sums come from a cumulative sum; ties go to the earliest.
    """
    score = np.atleast_2d(np.asarray(score, dtype=np.float64))
    n_rows, n_slots = score.shape
    if not 1 <= hours <= n_slots:
        raise PlacementError(f"a block of {hours} h does not fit in {n_slots} slots")
    zeros = np.zeros((n_rows, 1))
    csum = np.concatenate([zeros, np.cumsum(score, axis=1)], axis=1)
    sums = csum[:, hours:] - csum[:, :-hours]
    if blocked is not None:
        blocked = np.atleast_2d(np.asarray(blocked, dtype=np.int64))
        bsum = np.concatenate([zeros.astype(np.int64), np.cumsum(blocked, axis=1)], axis=1)
        sums = np.where(bsum[:, hours:] - bsum[:, :-hours] > 0, np.inf, sums)
    best = sums.min(axis=1, keepdims=True)
    # earliest start among blocks equal up to rounding (cumsum differences are not exact)
    start = np.argmax(sums <= best + 1e-9 * np.maximum(1.0, np.abs(best)), axis=1)
    return start, sums[np.arange(n_rows), start]


def best_hours(
    score: np.ndarray, hours: int, restart: np.ndarray | float = 0.0, blocked: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest set of ``hours`` slots per row of ``score`` (sites, time) when a job may pause.

    Each contiguous segment after the first adds ``restart`` at the slot where it resumes. Solved exactly
    by dynamic programming over (slots used, running or paused), vectorised over rows and slot counts.
    Returns a boolean mask of chosen slots and the total (``inf`` and an empty mask when infeasible).
    """
    score = np.atleast_2d(np.asarray(score, dtype=np.float64))
    n_rows, n_slots = score.shape
    if not 1 <= hours <= n_slots:
        raise PlacementError(f"{hours} h do not fit in {n_slots} slots")
    restart = np.broadcast_to(np.asarray(restart, dtype=np.float64), score.shape)
    if blocked is not None:
        score = np.where(np.atleast_2d(blocked), np.inf, score)
    inf = np.full((n_rows, hours + 1), np.inf)
    running, paused = inf.copy(), inf.copy()  # best totals after a slot, by slots used
    from_paused = np.zeros((n_slots, n_rows, hours + 1), dtype=bool)  # a running state resumed here
    from_running = np.zeros((n_slots, n_rows, hours + 1), dtype=bool)  # a paused state stopped here
    for t in range(n_slots):
        resume = paused[:, :-1] + restart[:, t, None]
        keep = running[:, :-1]
        from_paused[t, :, 1:] = resume < keep
        prev = np.minimum(keep, resume)
        prev[:, 0] = 0.0  # the first segment starts from nothing, without overhead
        new_running = inf.copy()
        new_running[:, 1:] = prev + score[:, t, None]
        from_running[t] = running <= paused
        paused = np.minimum(running, paused)
        running = new_running
    total = np.minimum(running[:, hours], paused[:, hours])
    chosen = np.zeros(score.shape, dtype=bool)
    for row in np.flatnonzero(np.isfinite(total)):
        state, used = ("running" if running[row, hours] <= paused[row, hours] else "paused"), hours
        for t in range(n_slots - 1, -1, -1):
            if state == "running":
                chosen[row, t] = True
                if used == 1:
                    break
                state = "paused" if from_paused[t, row, used] else "running"
                used -= 1
            else:
                state = "running" if from_running[t, row, used] else "paused"
    return chosen, total


def _options(costs: JobCosts, blocked: np.ndarray | None = None) -> list[Assignment | None]:
    """The best assignment at each of the job's sites (None where nothing fits)."""
    job, n_slots = costs.job, len(costs.times)
    if job.interruptible:
        chosen, total = best_hours(costs.score, job.hours, costs.restart_score, blocked)
    else:
        start, total = best_window(costs.score, job.hours, blocked)
        chosen = np.zeros((len(costs.sites), n_slots), dtype=bool)
        for row, s in enumerate(start):
            chosen[row, s : s + job.hours] = True
    return [
        costs.assignment(i, chosen[i]) if np.isfinite(total[i]) else None for i in range(len(costs.sites))
    ]


def rank_regions(
    job: Job, sites: Sequence[Site], forecast: xr.Dataset | ZoneForecast, weights: Weights | None = None
) -> pd.DataFrame:
    """Best start (or set of hours, if interruptible) at every allowed site, sorted best-first.

    Columns: ``rank, site, zone, start, end, slots, segments, energy_kwh, emissions_kg,
    mean_renewable_share, cost_eur, carbon_score, price_score, score, fits`` (``fits`` is false where
    the site has fewer GPUs than the job needs; those rows sort last).
    """
    costs = job_costs(job, sites, forecast, weights)
    rows = []
    for site, option in zip(costs.sites, _options(costs), strict=True):
        row = _row(option)
        row["fits"] = job.gpus <= site.gpus
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame = frame.sort_values(["fits", "score"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )
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


def assess(
    job: Job,
    site: Site,
    slots: Sequence[pd.Timestamp | str],
    forecast: xr.Dataset | ZoneForecast,
    weights: Weights | None = None,
    *,
    sites: Sequence[Site] | None = None,
) -> Assignment:
    """Evaluate running ``job`` at ``site`` in the given hour ``slots`` (inside the job's window).

    ``site`` need not be one of the job's regions (what-if and replay use). Scores are normalised over
    ``site`` plus the job's allowed ``sites`` when given, as in :func:`rank_regions`; else over ``site``.
    """
    pool = [site] + [s for s in (allowed_sites(job, sites) if sites else []) if s.id != site.id]
    costs = _costs(job, pool, as_forecast(forecast), weights or Weights())
    wanted = pd.DatetimeIndex([pd.Timestamp(s) for s in slots])
    outside = wanted.difference(costs.times)
    if len(outside):
        raise PlacementError(f"job '{job.id}': slot {fmt_time(outside[0])} is outside its window")
    return costs.assignment(0, costs.times.isin(wanted))


def baseline(
    job: Job, sites: Sequence[Site], forecast: xr.Dataset | ZoneForecast, weights: Weights | None = None
) -> Assignment:
    """The carbon-agnostic choice: contiguous from the earliest start at the job's home site.

    The home site is the first allowed site with enough GPUs for the job (the first allowed site if none
    has). Capacity taken by other jobs is ignored.
    """
    allowed = allowed_sites(job, sites)
    home = next((s for s in allowed if s.gpus >= job.gpus), allowed[0])
    slots = pd.date_range(job.earliest_start, periods=job.hours, freq="h")
    return assess(job, home, list(slots), forecast, weights, sites=sites)


@dataclass(frozen=True, eq=False)
class Schedule:
    """Assignments of a whole queue, the per-site per-hour GPU usage, and what to compare them with.

    ``baselines`` are the carbon-agnostic choices; ``first_choices`` the best options before capacity
    already taken by earlier jobs was accounted for. ``order`` is the order the jobs were placed in.
    """

    assignments: dict[str, Assignment]
    jobs: dict[str, Job]
    sites: dict[str, Site]
    usage: xr.DataArray
    baselines: dict[str, Assignment]
    first_choices: dict[str, Assignment]
    order: tuple[str, ...]
    weights: Weights
    solver: str = "greedy"
    stats: dict = field(default_factory=dict)

    def __getitem__(self, job_id: str) -> Assignment:
        return self.assignments[self._check(job_id)]

    def __iter__(self):
        return iter(self.assignments.values())

    def __len__(self) -> int:
        return len(self.assignments)

    def _check(self, job_id: str) -> str:
        if job_id not in self.assignments:
            raise KeyError(f"job '{job_id}' is not in the schedule (it has {', '.join(self.assignments)})")
        return job_id

    @property
    def capacity(self) -> xr.DataArray:
        """GPUs per site."""
        return xr.DataArray(
            [s.gpus for s in self.sites.values()], coords={"site": list(self.sites)}, dims="site"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per job (input order) with the assignment and its carbon-agnostic baseline."""
        rows = []
        for job_id, a in self.assignments.items():
            base = self.baselines[job_id]
            rows.append(
                {
                    "job": job_id,
                    "priority": self.order.index(job_id) + 1,
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
        a, job = self[job_id], self.jobs[job_id]
        base, first = self.baselines[job_id], self.first_choices[job_id]
        when = f"from {_when(a.start)} for {job.hours} h"
        if a.segments > 1:
            when += (
                f" in {a.segments} segments ending {_when(a.end)} "
                f"(+{a.segments - 1} x {job.restart_overhead_h:g} h restart overhead)"
            )
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
        text += (
            f" Energy {a.energy_kwh:,.0f} kWh, cost EUR {a.cost_eur:,.0f} "
            f"(carbon-agnostic EUR {base.cost_eur:,.0f})."
        )
        if (first.site, first.slots) != (a.site, a.slots):
            why = (
                "went to other jobs because the exact (MILP) solution of the whole queue emits less that way"
                if self.solver == "milp"
                else "lacked free GPUs after tighter jobs were placed"
                if self.solver == "greedy"
                else "went to other jobs: the queue-level heuristic found a lower total that way"
            )
            text += (
                f" Its first choice, site '{first.site}' from {_when(first.start)} "
                f"({first.emissions_kg:,.0f} kg CO2e), {why}."
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
    solver: str = "greedy",
    solver_options: dict | None = None,
) -> Schedule:
    """Place every job under per-site, per-hour GPU capacity.

    ``greedy``: jobs in order of deadline slack (tightest first) each take their best-scoring site and
    hours among those with enough free GPUs in every chosen hour. ``fast``: the vectorised queue-level
    heuristic of :func:`carbonsync.placement.solvers.solve_greedy` (multi-start greedy plus improvement
    moves; for large queues). ``milp``: the exact optimum of the queue's total (weighted, normalised)
    emissions and cost by :func:`carbonsync.placement.solvers.solve_milp` (HiGHS; moderate sizes).
    ``fast`` and ``milp`` minimise the queue's total; ``greedy`` each job's normalised score in turn.
    Raises :class:`PlacementError` naming every job that cannot be placed.
    """
    if solver not in SOLVERS:
        raise PlacementError(f"unknown solver '{solver}'; available: {', '.join(SOLVERS)}")
    weights = weights or Weights()
    fc = as_forecast(forecast)
    if solver != "greedy":
        return _schedule_queue(list(jobs), list(sites), fc, weights, solver, solver_options or {})
    jobs, sites = list(jobs), list(sites)
    _check_queue(jobs, sites, fc)
    check_regions(jobs, sites)
    site_index = {s.id: i for i, s in enumerate(sites)}
    capacity = np.array([s.gpus for s in sites], dtype=np.int64)
    free = np.repeat(capacity[:, None], len(fc.times), axis=1)
    order = sorted(jobs, key=lambda j: (j.slack_h, j.deadline, -j.gpus * j.hours, j.id))
    placed: dict[str, Assignment] = {}
    firsts: dict[str, Assignment] = {}
    failures: list[str] = []
    for job in order:
        costs = job_costs(job, sites, fc, weights)
        rows = [site_index[s.id] for s in costs.sites]
        window = slice(costs.offset, costs.offset + len(costs.times))
        fits = np.array([s.gpus >= job.gpus for s in costs.sites])
        if not fits.any():
            largest = max(s.gpus for s in costs.sites)
            failures.append(f"'{job.id}' needs {job.gpus} GPUs, its largest allowed site has {largest}")
            continue
        options = _options(costs, blocked=free[rows, window] < job.gpus)
        best = _pick(options)
        if best is None:
            failures.append(
                f"'{job.id}' finds no allowed site with {job.gpus} free GPUs for {job.hours} h between "
                f"{_when(job.earliest_start)} and {_when(job.deadline)}"
            )
            continue
        unconstrained = _options(costs, blocked=np.broadcast_to(~fits[:, None], costs.score.shape))
        firsts[job.id] = _pick(unconstrained) or best
        placed[job.id] = best
        free[site_index[best.site], fc.times.get_indexer(list(best.slots))] -= job.gpus
    if failures:
        raise PlacementError(f"cannot place {len(failures)} job(s): " + "; ".join(failures))
    usage = xr.DataArray(
        capacity[:, None] - free,
        coords={"site": [s.id for s in sites], "time": fc.times},
        dims=("site", "time"),
        name="gpus_in_use",
    )
    return Schedule(
        assignments={j.id: placed[j.id] for j in jobs},
        jobs={j.id: j for j in jobs},
        sites={s.id: s for s in sites},
        usage=usage,
        baselines={j.id: baseline(j, sites, fc, weights) for j in jobs},
        first_choices={j.id: firsts[j.id] for j in jobs},
        order=tuple(j.id for j in order),
        weights=weights,
    )


def _pick(options: Sequence[Assignment | None]) -> Assignment | None:
    """The lowest-score option (ties go to the earlier site)."""
    found = [o for o in options if o is not None]
    return min(found, key=lambda o: o.score) if found else None


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


def _check_queue(jobs: list[Job], sites: list[Site], fc: ZoneForecast) -> None:
    """Sites exist, ids are unique and every site's zone is in the forecast (each raises PlacementError)."""
    if not sites:
        raise PlacementError("no sites to place jobs at")
    for kind, ids in (("job", [j.id for j in jobs]), ("site", [s.id for s in sites])):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise PlacementError(f"duplicated {kind} id(s) {', '.join(duplicated)}")
    for site in sites:
        fc.zone_index(site)


def _schedule_queue(
    jobs: list[Job], sites: list[Site], fc: ZoneForecast, weights: Weights, solver: str, options: dict
) -> Schedule:
    """:func:`schedule` with a queue-level solver from :mod:`carbonsync.placement.solvers`."""
    from carbonsync.placement import solvers

    _check_queue(jobs, sites, fc)
    problem = solvers.build_problem(jobs, sites, fc, weights)
    plan = solvers.solve_milp(problem, **options) if solver == "milp" else solvers.solve_greedy(problem, **options)
    solvers.check_plan(problem, plan)
    placed: dict[str, Assignment] = {}
    firsts: dict[str, Assignment] = {}
    for j, job in enumerate(jobs):
        costs = job_costs(job, sites, fc, weights)
        site_id = problem.site_ids[plan.site[j]]
        row = [s.id for s in costs.sites].index(site_id)
        window = slice(costs.offset, costs.offset + len(costs.times))
        placed[job.id] = costs.assignment(row, plan.run[j, window])
        fits = np.array([s.gpus >= job.gpus for s in costs.sites])
        firsts[job.id] = _pick(_options(costs, blocked=np.broadcast_to(~fits[:, None], costs.score.shape))) or placed[job.id]
    usage = np.zeros((len(sites), len(fc.times)), dtype=np.int64)
    for j, job in enumerate(jobs):
        usage[plan.site[j], plan.run[j]] += job.gpus
    order = solvers.priority_order(problem, "slack")
    return Schedule(
        assignments=placed,
        jobs={j.id: j for j in jobs},
        sites={s.id: s for s in sites},
        usage=xr.DataArray(usage, coords={"site": [s.id for s in sites], "time": fc.times}, dims=("site", "time"),
                           name="gpus_in_use"),
        baselines={j.id: baseline(j, sites, fc, weights) for j in jobs},
        first_choices=firsts,
        order=tuple(problem.job_ids[j] for j in order),
        weights=weights,
        solver=solver,
        stats={"seconds": plan.seconds, **solvers.evaluate(problem, plan), **plan.stats},
    )
