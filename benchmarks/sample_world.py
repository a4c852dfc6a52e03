"""Sample-world generation cost against the bare torch-harmonics shallow-water solver, in one run.

    python benchmarks/sample_world.py [--nlat 33 --nlon 64 --hours 48 --repeats 5]

Prints JSON: median seconds per simulated hour for (a) torch-harmonics' own ``ShallowWaterSolver.timestep``
(unforced), (b) our forced solver (jet relaxation + red-noise stirring), (c) the whole generator per hour
(dynamics, diagnostics, solar geometry), and the ratios (b)/(a) and (c)/(a); also (b) under
``torch.inference_mode``, as the generator runs it, and its ratio to (b) with autograd bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from carbonsync.data.sample_world import SampleWorldConfig, _ForcedShallowWater, generate_weather


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nlat", type=int, default=33)
    parser.add_argument("--nlon", type=int, default=64)
    parser.add_argument("--lmax", type=int, default=22)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = SampleWorldConfig(nlat=args.nlat, nlon=args.nlon, lmax=args.lmax, days=max(args.hours // 24, 1),
                            spinup_days=0)
    steps = args.hours * round(3600 / cfg.solver_dt_s)
    forced = _ForcedShallowWater(cfg)
    bare = forced.solver
    state = forced.state.clone()
    t_bare = median_time(lambda: bare.timestep(state, steps), args.repeats) / args.hours
    t_forced = median_time(lambda: forced.step(steps), args.repeats) / args.hours
    with torch.inference_mode():
        t_inference = median_time(lambda: forced.step(steps), args.repeats) / args.hours
    t_world = median_time(lambda: generate_weather(cfg, progress=False), args.repeats) / (cfg.days * 24)
    print(json.dumps({
        "grid": f"{args.nlat}x{args.nlon}", "lmax": args.lmax, "solver_dt_s": cfg.solver_dt_s,
        "bare_solver_s_per_hour": round(t_bare, 5), "forced_solver_s_per_hour": round(t_forced, 5),
        "forced_solver_inference_mode_s_per_hour": round(t_inference, 5), "generator_s_per_hour": round(t_world, 5),
        "inference_mode_over_autograd": round(t_inference / t_forced, 3),
        "forced_over_bare": round(t_forced / t_bare, 3), "generator_over_bare": round(t_world / t_bare, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
