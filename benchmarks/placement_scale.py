"""Placement at scale: 10,000 jobs through the public API against the array core, MILP time, the heuristic's gap.

    python benchmarks/placement_scale.py [--jobs 10000 --sites 50 --slots 168 --repeats 5
                                          --milp-jobs 200 --milp-sites 5 --milp-slots 48 --milp-time-limit 300
                                          --gap-instances 8 --gap-jobs 20 --skip milp gap export]

Random instances (seeded, documented in :func:`tests.helpers.placement.random_problem`): sites with daily
intensity cycles at levels 50..400 g/kWh and ±15 % noise, 1..12 h jobs of 8/16/32/64 GPUs with 0..35 h of
slack, 80 % of sites allowed per job, capacity about 1.7x the mean demand (at least 128 GPUs per site).

Figures (one JSON object on stdout, progress on stderr):

- ``scale``: on ``--jobs`` x ``--sites`` x ``--slots``, median wall and CPU seconds over ``--repeats`` of
  the array core, :func:`solve_heuristic` on the :class:`Problem` (what ``solver="fast"`` runs), and of
  the public API end to end, ``schedule(jobs, sites, forecast, solver="fast")`` on the same instance as
  ``Job``/``Site`` objects and an ``xarray`` forecast (forecast validation, :func:`build_problem`, the
  solver, the plan check, the schedule's totals); the two alternate within each repeat so they share the
  machine's load, and ``end_to_end_over_core`` is the median of the per-repeat ratios. Also
  :func:`rank_all` (every job's best option at every site), and the per-job code (``rank_regions`` per
  job, ``schedule(solver="greedy")``) on ``--baseline-jobs`` jobs of the same instance as seconds per job.
- ``milp``: :func:`solve_milp` wall time, status and HiGHS gap on ``--milp-jobs`` jobs, and the
  heuristic's gap to it (``heuristic / MILP - 1``; vs the MILP's incumbent when it hit the time limit).
- ``gap``: the heuristic's optimality gap on ``--gap-instances`` random instances the MILP solves to
  optimality (``--gap-jobs`` jobs, 4 sites, 48 slots, 30 % interruptible): median, max, and the same with
  the large-queue settings (no exact DP for interruptible jobs, no ejection moves).
- ``export_read``: forecast-store export and read throughput from ``benchmarks/export_read.py``
  (``export_read_throughput``), skipped with a note when that module is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from carbonsync.placement import (  # noqa: E402
    check_plan,
    evaluate,
    objective,
    optimality_gap,
    rank_all,
    rank_regions,
    schedule,
    solve_heuristic,
    solve_milp,
)
from tests.helpers.placement import problem_objects, random_problem  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats``, and its last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_scale(args: argparse.Namespace) -> dict:
    problem = random_problem(args.jobs, args.sites, args.slots, seed=0)
    jobs, sites, forecast = problem_objects(problem)
    log(f"scale: {args.jobs} jobs x {args.sites} sites x {args.slots} slots, {args.repeats} repeats")
    rank_wall, rank_cpu, _ = timed(lambda: rank_all(problem), args.repeats)
    core, api = {"wall": [], "cpu": []}, {"wall": [], "cpu": []}
    plan = placed = None
    for r in range(args.repeats):
        for name, record in (("core", core), ("api", api))[:: 1 if r % 2 == 0 else -1]:
            wall, cpu = time.perf_counter(), time.process_time()
            if name == "core":
                plan = solve_heuristic(problem)
            else:
                placed = schedule(jobs, sites, forecast, solver="fast")
            record["wall"].append(time.perf_counter() - wall)
            record["cpu"].append(time.process_time() - cpu)
        log(f"  repeat {r + 1}: array core {core['wall'][-1]:.2f} s, schedule end to end {api['wall'][-1]:.2f} s")
    check_plan(problem, plan)
    ratios = [a / c for a, c in zip(api["wall"], core["wall"], strict=True)]
    base_jobs, base_sites, base_forecast = problem_objects(problem, args.baseline_jobs)
    base_rank_wall, _, _ = timed(lambda: [rank_regions(j, base_sites, base_forecast) for j in base_jobs], 1)
    base_plan_wall, _, base = timed(lambda: schedule(base_jobs, base_sites, base_forecast, solver="greedy"), 1)
    log(f"  per-job code on {args.baseline_jobs} jobs: rank_regions {base_rank_wall:.2f} s, "
        f"greedy schedule {base_plan_wall:.2f} s")
    median = statistics.median
    return {
        "jobs": args.jobs, "sites": args.sites, "slots": args.slots, "repeats": args.repeats,
        "rank_all_wall_s": round(rank_wall, 3), "rank_all_cpu_s": round(rank_cpu, 3),
        "core_wall_s": round(median(core["wall"]), 3), "core_cpu_s": round(median(core["cpu"]), 3),
        "schedule_wall_s": round(median(api["wall"]), 3), "schedule_cpu_s": round(median(api["cpu"]), 3),
        "end_to_end_over_core": round(median(ratios), 3),
        "core_walls_s": [round(w, 3) for w in core["wall"]], "schedule_walls_s": [round(w, 3) for w in api["wall"]],
        "core_cpus_s": [round(c, 3) for c in core["cpu"]], "schedule_cpus_s": [round(c, 3) for c in api["cpu"]],
        "end_to_end_over_core_cpu": round(median(api["cpu"]) / median(core["cpu"]), 3),
        "same_objective": bool(np.isclose(placed.objective, objective(problem, plan), rtol=1e-9)),
        "reported_objective_is_objective": bool(np.isclose(plan.stats["objective"], objective(problem, plan), rtol=1e-9)),
        "greedy_order_kept": plan.stats.get("order"),
        "plan_emissions_kg": round(evaluate(problem, plan)["emissions_kg"], 1),
        "per_job_code": {
            "jobs": args.baseline_jobs,
            "rank_regions_s_per_job": round(base_rank_wall / args.baseline_jobs, 5),
            "greedy_schedule_s_per_job": round(base_plan_wall / args.baseline_jobs, 5),
            "greedy_schedule_emissions_kg": round(base.stats["emissions_kg"], 1),
        },
    }


def bench_milp(args: argparse.Namespace) -> dict:
    problem = random_problem(args.milp_jobs, args.milp_sites, args.milp_slots, seed=1, inter_share=args.milp_inter_share)
    log(f"milp: {args.milp_jobs} jobs x {args.milp_sites} sites x {args.milp_slots} slots "
        f"({args.milp_inter_share:.0%} interruptible), time limit {args.milp_time_limit} s")
    heuristic = solve_heuristic(problem)
    exact = solve_milp(problem, time_limit=args.milp_time_limit)
    check_plan(problem, exact)
    log(f"  {exact.seconds:.1f} s, {exact.stats['message']}")
    return {
        "jobs": args.milp_jobs, "sites": args.milp_sites, "slots": args.milp_slots,
        "interruptible_share": args.milp_inter_share, "time_limit_s": args.milp_time_limit,
        "milp_wall_s": round(exact.seconds, 2), "optimal": exact.stats["optimal"],
        "highs_mip_gap": exact.stats["mip_gap"], "variables": exact.stats["variables"],
        "constraints": exact.stats["constraints"], "heuristic_wall_s": round(heuristic.seconds, 3),
        "heuristic_gap": round(optimality_gap(problem, heuristic, exact), 5),
    }


def bench_gap(args: argparse.Namespace) -> dict:
    default, fast, skipped = [], [], 0
    seed = 100
    while len(default) < args.gap_instances and seed < 100 + 4 * args.gap_instances:
        problem = random_problem(args.gap_jobs, 4, 48, seed=seed, inter_share=0.3)
        seed += 1
        exact = solve_milp(problem, time_limit=60)
        if not exact.stats["optimal"]:
            skipped += 1
            continue
        default.append(optimality_gap(problem, solve_heuristic(problem), exact))
        fast.append(optimality_gap(problem, solve_heuristic(problem, exact_hours=False, eject_passes=0), exact))
        log(f"gap instance {seed - 1}: {default[-1]:.4f} (large-queue settings {fast[-1]:.4f}), MILP {exact.seconds:.1f} s")
    return {
        "instances": len(default), "jobs": args.gap_jobs, "sites": 4, "slots": 48, "interruptible_share": 0.3,
        "skipped_not_optimal_in_60_s": skipped,
        "gap_median": round(float(np.median(default)), 5), "gap_max": round(float(np.max(default)), 5),
        "gap_large_queue_settings_median": round(float(np.median(fast)), 5),
        "gap_large_queue_settings_max": round(float(np.max(fast)), 5),
        "gaps": [round(g, 5) for g in default],
    }


def bench_export(args: argparse.Namespace) -> dict:
    path = Path(__file__).resolve().parent / "export_read.py"
    if not path.is_file():
        log("export_read: benchmarks/export_read.py not found, skipped")
        return {"skipped": "benchmarks/export_read.py not found"}
    spec = importlib.util.spec_from_file_location("export_read", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "export_read_throughput"):
        return {"skipped": "benchmarks/export_read.py has no export_read_throughput"}
    with tempfile.TemporaryDirectory() as tmp:
        log("export_read: running export_read_throughput")
        return module.export_read_throughput(Path(tmp))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--slots", type=int, default=168)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-jobs", type=int, default=200)
    parser.add_argument("--milp-jobs", type=int, default=200)
    parser.add_argument("--milp-sites", type=int, default=5)
    parser.add_argument("--milp-slots", type=int, default=48)
    parser.add_argument("--milp-inter-share", type=float, default=0.0)
    parser.add_argument("--milp-time-limit", type=float, default=300.0)
    parser.add_argument("--gap-instances", type=int, default=8)
    parser.add_argument("--gap-jobs", type=int, default=20)
    parser.add_argument("--skip", nargs="*", default=[], choices=["scale", "milp", "gap", "export"])
    args = parser.parse_args(argv)
    out: dict = {}
    for name, fn in (("scale", bench_scale), ("milp", bench_milp), ("gap", bench_gap), ("export_read", bench_export)):
        if name.split("_")[0] in args.skip:
            continue
        out[name] = fn(args)
    print(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
