"""Training-step cost of our backbone pipeline against a bare torch-harmonics-style loop, in one run.

    python benchmarks/train_throughput.py [--days 30 --rounds 10 --batch-size 8 --rollout-steps 1 --threads 1]

A small canonical store is generated with ``carbonsync.data.sample_world`` (33x64, ``--days`` days after 2 days
of spin-up) and written with ``write_canonical`` + ``compute_stats``/``write_stats`` to a temporary directory.
The model is the canonical backbone (``configs/model/sfno_e32_l4.yaml`` through ``build_sfno``: 5 state
channels + the configured solar forcing channels, embed 32, 4 layers, lmax = mmax = 22, identity start); all variants start
from the same weights and step through the same seeded data order (6-hourly pairs of the store).

- ``bare``: pre-made (state, forcing, target) tensors, ``F.mse_loss`` forward/backward and an Adam step,
  nothing else (as torch-harmonics' example training loops).
- ``in_memory``: our step as in ``train_backbone``: ``StateSource(stream=False).batches`` -> ``rollout_loss``
  (tendency channel weights, spherical loss) -> backward -> ``clip_grad_norm_`` -> AdamW -> cosine scheduler
  -> ``loss.item()``.
- ``streaming``: as ``train_backbone`` with ``train.backbone.stream=true``: ``StateSource(stream=True,
  prefetch=2)`` on the store opened with ``xr.open_zarr(store, chunks=None)``: batches are read in groups of
  ``read_windows`` windows (every state of a group decoded once; the epoch order is block-local, as in
  ``train_backbone``) through xarray's lazy indexing straight from Zarr, in a background thread while
  earlier batches train.
- ``streaming_dask`` (comparison, ``--no-what-if`` skips it): the same reads through the dask-backed dataset,
  which builds and schedules a dask graph per batch (what ``train_backbone`` did before it measured this).

Variants run epoch by epoch in rotating order (``--rounds`` rounds after one warm-up round) so load from
other jobs hits all alike. Per-step time is the wall time from the end of one optimizer step to the end of
the next, so it includes waiting for the batch; CPU seconds per step (``time.process_time``, all threads)
show work a prefetch thread can only hide if a core is idle. Prints JSON: median (and mean) seconds per
step of each variant, overhead ratios ours/bare - 1, the fraction of the streaming run spent waiting for
input, and a
synchronous per-phase breakdown (read / forward+loss / backward / clip / optimizer) to show where any
overhead goes. Progress on stderr.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from tqdm.auto import tqdm

from carbonsync.config import compose, typed
from carbonsync.data.sample_world import SampleWorldConfig, generate_weather
from carbonsync.data.store import compute_stats, open_canonical, read_stats, write_canonical, write_stats
from carbonsync.physics.grid import Grid
from carbonsync.train.backbone import StateSource, build_sfno, epoch_order, loss_channel_weights, rollout_loss

ROOT = Path(__file__).resolve().parents[1]


def ms(values: list[float]) -> float:
    return round(1000 * statistics.median(values), 3)


class Variant:
    def __init__(self, name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler=None,
                 source: StateSource | None = None):
        self.name, self.model, self.optimizer, self.scheduler, self.source = name, model, optimizer, scheduler, source
        self.step_s: list[float] = []
        self.epoch_s: list[float] = []
        self.wait_s: list[float] = []
        self.cpu_s: list[float] = []
        self.n_steps: list[int] = []


def bare_epoch(v: Variant, premade: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> list[float]:
    """Pre-made (x, forcing (K,B,F,H,W), targets (K,B,C,H,W)) tensors; MSE; Adam. Returns per-step seconds."""
    times, tic = [], time.perf_counter()
    v.model.train()
    for x, forcing, targets in premade:
        state, loss = x, 0.0
        for k in range(targets.shape[0]):
            state = v.model(state, forcing[k])
            loss = loss + F.mse_loss(state, targets[k])
        loss = loss / targets.shape[0]
        v.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        v.optimizer.step()
        loss.item()
        now = time.perf_counter()
        times.append(now - tic)
        tic = now
    return times


def ours_epoch(v: Variant, order: np.ndarray, batch_size: int, steps: int, weights: torch.Tensor,
               channel_weights: torch.Tensor, grad_clip: float) -> list[float]:
    """The inner loop of ``train_backbone`` (single process, no progress bar). Returns per-step seconds."""
    device = torch.device("cpu")
    times, tic = [], time.perf_counter()
    v.model.train()
    for batch in v.source.batches(order, batch_size, steps):
        loss = rollout_loss(v.model, batch, weights, channel_weights, device)
        v.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(v.model.parameters(), grad_clip)
        v.optimizer.step()
        v.scheduler.step()
        loss.item()
        now = time.perf_counter()
        times.append(now - tic)
        tic = now
    return times


def breakdown(model: torch.nn.Module, sources: dict[str, StateSource], order: np.ndarray, batch_size: int, steps: int,
              weights: torch.Tensor, channel_weights: torch.Tensor, grad_clip: float, repeats: int) -> dict:
    """Synchronous median milliseconds per phase of one step: ours (in-memory read) and bare, same batches."""
    model = copy.deepcopy(model)
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(adamw, T_max=10_000)
    adam = torch.optim.Adam(model.parameters(), lr=1e-5)
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size) if len(order[i:i + batch_size]) == batch_size]
    t: dict[str, list[float]] = {k: [] for k in ("read_in_memory", "forward_loss_ours", "backward_ours", "clip",
                                                  "adamw_and_scheduler", "forward_loss_bare", "backward_bare", "adam")}
    device = torch.device("cpu")
    for r in range(repeats):
        for chunk in chunks:
            tic = time.perf_counter()
            batch = sources["in_memory"]._batches([chunk], steps)[0]
            t["read_in_memory"].append(time.perf_counter() - tic)
            if r == 0:  # the synchronous cost (wall and CPU) the prefetch thread has to hide
                for name in sources:
                    if name.startswith("streaming"):
                        tic, cpu = time.perf_counter(), time.process_time()
                        sources[name]._batches([chunk], steps)
                        t.setdefault(f"read_{name}_sync", []).append(time.perf_counter() - tic)
                        t.setdefault(f"read_{name}_sync_cpu", []).append(time.process_time() - cpu)
            tic = time.perf_counter()
            loss = rollout_loss(model, batch, weights, channel_weights, device)
            t1 = time.perf_counter()
            adamw.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            t3 = time.perf_counter()
            adamw.step()
            sched.step()
            loss.item()
            t4 = time.perf_counter()
            t["forward_loss_ours"].append(t1 - tic)
            t["backward_ours"].append(t2 - t1)
            t["clip"].append(t3 - t2)
            t["adamw_and_scheduler"].append(t4 - t3)
            # the bare step on the same tensors
            tic = time.perf_counter()
            state, loss = batch.x, 0.0
            for k in range(steps):
                state = model(state, batch.forcing[k])
                loss = loss + F.mse_loss(state, batch.targets[k])
            loss = loss / steps
            t1 = time.perf_counter()
            adam.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            adam.step()
            loss.item()
            t3 = time.perf_counter()
            t["forward_loss_bare"].append(t1 - tic)
            t["backward_bare"].append(t2 - t1)
            t["adam"].append(t3 - t2)
    per_read = max(int(sources["in_memory"].read_windows) // batch_size, 1)
    for name in sources:  # the grouped reads streaming training does, per batch (each state decoded once a group)
        if name.startswith("streaming"):
            tic, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(chunks), per_read):
                sources[name]._batches(chunks[i:i + per_read], steps)
            t[f"read_{name}_grouped_per_batch"] = [(time.perf_counter() - tic) / max(len(chunks), 1)]
            t[f"read_{name}_grouped_per_batch_cpu"] = [(time.process_time() - cpu) / max(len(chunks), 1)]
    return {f"{k}_ms": ms(v) for k, v in t.items() if v}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nlat", type=int, default=33)
    p.add_argument("--nlon", type=int, default=64)
    p.add_argument("--days", type=int, default=30, help="days of 6-hourly training states in the store")
    p.add_argument("--spinup-days", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="default: train.backbone.batch_size (8)")
    p.add_argument("--rollout-steps", type=int, default=1, help="K of rollout_loss (1 = pretraining step)")
    p.add_argument("--rounds", type=int, default=10, help="timed epochs per variant (after one warm-up epoch)")
    p.add_argument("--prefetch", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (all variants)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="where to write the store (default: a temporary directory)")
    p.add_argument("--profile", action="store_true", help="also print a cProfile of streaming epochs to stderr")
    p.add_argument("--no-what-if", action="store_true", help="skip the streaming_dask comparison")
    args = p.parse_args()

    wall0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    canonical = typed(compose([]))  # the main job's backbone and recipe (configs/model/sfno_e32_l4.yaml)
    mcfg, tcfg = canonical.backbone, canonical.train.backbone
    batch_size = args.batch_size or int(tcfg.batch_size)
    steps, dt = args.rollout_steps, int(mcfg.dt_hours)
    channels = list(mcfg.channels)

    tmp = tempfile.TemporaryDirectory(prefix="carbonsync-bench-") if args.workdir is None else None
    workdir = Path(args.workdir or tmp.name)
    tic = time.perf_counter()
    world = SampleWorldConfig(nlat=args.nlat, nlon=args.nlon, days=args.days, spinup_days=args.spinup_days, seed=args.seed)
    weather = generate_weather(world, progress=True)
    period = (str(weather.time.values[0])[:19], str(weather.time.values[-1])[:19])
    store = write_canonical(weather, workdir / "weather.zarr")
    write_stats(compute_stats(weather, period), store)
    t_store = time.perf_counter() - tic
    torch.set_num_threads(args.threads)  # (generate_weather restores it; set again for clarity)

    ds = open_canonical(store, channels)
    stats = read_stats(store)
    grid = Grid.infer(ds)
    forcing = list(mcfg.forcing)

    def source(data, stream: bool) -> StateSource:
        return StateSource(data, channels, stats, period, dt, grid, forcing, stream=stream, prefetch=args.prefetch,
                           read_windows=int(tcfg.read_windows))

    sources = {"in_memory": source(ds, False),
               "streaming": source(xr.open_zarr(store, consolidated=True, chunks=None)[channels], True)}
    if not args.no_what_if:
        sources["streaming_dask"] = source(ds, True)
    mem = sources["in_memory"]
    weights = torch.as_tensor(grid.quadrature_weights().values, dtype=torch.float32)
    channel_weights = loss_channel_weights(tcfg.channel_weights, mem.states, mem.starts(1), weights)
    starts = mem.starts(steps)

    torch.manual_seed(args.seed)
    base = build_sfno(mcfg, grid)
    variants: dict[str, Variant] = {}
    for name in ("bare", *sources):
        model = copy.deepcopy(base)
        if name == "bare":
            variants[name] = Variant(name, model, torch.optim.Adam(model.parameters(), lr=float(tcfg.lr)))
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=float(tcfg.lr), weight_decay=float(tcfg.weight_decay))
            n_steps = (args.rounds + 1) * int(np.ceil(len(starts) / batch_size))
            variants[name] = Variant(name, model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_steps),
                                     sources[name])

    profiler = cProfile.Profile() if args.profile else None
    names = list(variants)
    bar = tqdm(total=(args.rounds + 1) * len(names), desc="epochs (" + " / ".join(variants) + ")", unit="epoch")
    for rnd in range(args.rounds + 1):
        gen = torch.Generator().manual_seed(args.seed * 1000 + rnd)
        order = epoch_order(starts, gen, int(tcfg.shuffle_block_states), int(tcfg.shuffle_mix_blocks))
        index = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        premade = []  # the bare loop's tensors are made before its epoch starts (not timed)
        for chunk in index:
            b = mem._batches([chunk], steps)[0]
            premade.append((b.x.clone(), b.forcing.clone(), b.targets.clone()))
        for name in names[rnd % len(names):] + names[:rnd % len(names)]:  # rotate the order every round
            v = variants[name]
            tic, cpu = time.perf_counter(), time.process_time()
            if name == "bare":
                times = bare_epoch(v, premade)
            else:
                v.source.input_wait_s = 0.0
                if profiler is not None and name == "streaming" and rnd > 0:
                    profiler.enable()
                times = ours_epoch(v, order, batch_size, steps, weights, channel_weights, float(tcfg.grad_clip))
                if profiler is not None:
                    profiler.disable()
            elapsed, cpu = time.perf_counter() - tic, time.process_time() - cpu
            if rnd > 0:  # round 0 warms up
                v.step_s += times
                v.cpu_s.append(cpu)
                v.n_steps.append(len(times))
                v.epoch_s.append(elapsed)
                if v.source is not None:
                    v.wait_s.append(v.source.input_wait_s)
            bar.update()
    bar.close()

    # the breakdown reads batches in a shuffled order, as training does (scattered times touch more chunks)
    parts = breakdown(base, sources, order, batch_size, steps, weights, channel_weights, float(tcfg.grad_clip), repeats=2)
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)

    med = {n: statistics.median(v.step_s) for n, v in variants.items()}
    mean = {n: statistics.fmean(v.step_s) for n, v in variants.items()}
    s = variants["streaming"]
    out = {
        "benchmark": "train_throughput",
        "config": {
            "grid": f"{grid.kind} {grid.nlat}x{grid.nlon}", "model": "configs/model/sfno_e32_l4.yaml",
            "params": sum(p.numel() for p in base.parameters()), "channels": channels, "forcing": forcing, "dt_hours": dt,
            "train_states": len(mem.times), "batch_size": batch_size, "rollout_steps": steps,
            "steps_per_epoch": len(index), "timed_epochs_per_variant": args.rounds, "prefetch": args.prefetch,
            "threads": args.threads, "seed": args.seed, "torch": torch.__version__,
            "period": list(period),
        },
        "median_s_per_step": {n: round(v, 5) for n, v in med.items()},
        "mean_s_per_step": {n: round(v, 5) for n, v in mean.items()},
        "cpu_s_per_step": {n: round(sum(v.cpu_s) / sum(v.n_steps), 5) for n, v in variants.items()},
        "overhead_in_memory": round(med["in_memory"] / med["bare"] - 1, 4),
        "overhead_streaming": round(med["streaming"] / med["bare"] - 1, 4),
        "overhead_in_memory_mean": round(mean["in_memory"] / mean["bare"] - 1, 4),
        "overhead_streaming_mean": round(mean["streaming"] / mean["bare"] - 1, 4),
        "streaming_input_wait_fraction": round(sum(s.wait_s) / sum(s.epoch_s), 4),
        **({"overhead_streaming_dask": round(med["streaming_dask"] / med["bare"] - 1, 4),
            "streaming_dask_input_wait_fraction": round(sum(variants["streaming_dask"].wait_s)
                                                        / sum(variants["streaming_dask"].epoch_s), 4)}
           if "streaming_dask" in variants else {}),
        "breakdown_median_ms": parts,
        "store_build_s": round(t_store, 2),
        "total_wall_s": round(time.perf_counter() - wall0, 2),
    }
    print(json.dumps(out, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
