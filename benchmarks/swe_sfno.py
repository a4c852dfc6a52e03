"""SWE forecast skill and training cost: our SFNO + recipe against the torch-harmonics reference, one run.

    python benchmarks/swe_sfno.py [--nlat 32 --nlon 64 --train-trajectories 48 --traj-hours 24
                                   --epochs 18 --batch-size 8 --eval-trajectories 16 --seed 0 --threads 1]

Data (shared by both sides). torch-harmonics' ``ShallowWaterSolver`` on an equiangular ``nlat x nlon`` grid
with an explicit truncation ``lmax = mmax = ceil(nlat / 3)`` (PdeDataset's rule; 11 at 32x64), ``dt_solver``
600 s (the reference's 150 s at 256x512 / lmax 86, relaxed for the ~8x coarser truncation), states every
``dt = 1 h``. Initial conditions are ``random_initial_condition(mach=0.2)`` as PdeDataset draws them (global
torch RNG, seeded). Channels are PdeDataset's: ``spec2grid`` of (geopotential, vorticity, divergence).
Training: ``--train-trajectories`` trajectories of ``--traj-hours`` hourly steps from fresh random initial
conditions, i.e. ``train_samples = trajectories x hours`` one-step pairs (PdeDataset draws a fresh initial
condition per sample and only ever pairs it with the state ``dt`` later; here both sides share one fixed
set of pairs along trajectories). Evaluation: ``--eval-trajectories`` held-out trajectories of 24 + 1
hourly states from further fresh initial conditions.

(a) The torch-harmonics reference, as in its SWE training script scaled to this grid:
``SphericalFourierNeuralOperator(img_size=(nlat, nlon), grid="equiangular", grid_internal="legendre-gauss",
num_layers=4, scale_factor=3, embed_dim=32, in_chans=out_chans=3, residual_prediction=True,
pos_embed="none", use_mlp=True, mlp_ratio=2, normalization_layer="none")`` (scale_factor 3 keeps the
script's ratio: the internal grid's truncation, lmax = mmax = 10 here, matches the solver's as 85 vs 86 there;
``pos_embed="spectral"`` is built on the internal grid and cannot be added to the data-grid encoder output
when scale_factor > 1, so "none"). PdeDataset normalisation: per-channel mean and variance over the grid
(unweighted) of the first training input. Adam, lr 3e-3, weight decay 0, ``CosineAnnealingLR`` stepped per
epoch (T_max = epochs), loss = torch-harmonics' ``l2loss_sphere`` (squared, not relative): the quadrature
integral of the squared error (``integrate_grid(dimensionless=True)``), summed over channels, mean over the
batch. One-step training only, fp32, no gradient clipping.

(b) Our pipeline: ``carbonsync.models.sfno.SFNO`` with the same shape (embed 32, 4 layers, scale_factor 3,
mlp_ratio 2, explicit lmax = mmax = 10, internal grid legendre-gauss, no forcing channels) and
``output_gain=0`` (identity start) and, as ``configs/model/sfno_e32_l4.yaml``, a learned per-channel skip weight
(``--no-learn-skip`` turns it off); our normalisation (area-weighted mean/std over all training states, as
``compute_stats``); ``loss_channel_weights(--channel-weights, ...)`` (default ``tendency_std``, as
``configs/train/default.yaml``) and ``rollout_loss`` (spherical squared error,
K-step autoregressive); AdamW (weight decay 1e-4), per-phase cosine schedule stepped per batch, gradient
clipping at 1.0; phases from ``configs/train/default.yaml`` scaled to the budget: one-step pretraining
(lr 2e-3) for ``epochs - finetune_epochs`` epochs, then ``--rollout-steps`` (4) step fine-tuning (lr 3e-4)
for ``--finetune-epochs`` (default round(epochs / 6), as 10 + 2 there).

Same budget: both sides see exactly ``train_samples`` windows per epoch in batches of ``--batch-size``
(so the same number of optimizer steps); the data order of an epoch is shared. A fine-tuning window is one
sample but K forward/backward steps, so our fine-tuning epochs cost ~K times more compute. Epochs of the two
sides are interleaved (reference epoch e, then ours) so load from other jobs hits both alike.

Metric: relative L2 as in torch-harmonics (``sqrt(∫(pred - target)^2 / ∫target^2)`` with the grid's
quadrature weights) per channel, in common units (the fields standardised with our training statistics;
each side's prediction is mapped back from its own normalisation first), averaged over channels and
held-out trajectories, after 1 step and after a 24-step autoregressive rollout (persistence for context).
Throughput: training samples (windows) per second of each epoch's training loop, median over epochs.

Prints one JSON object on stdout; progress (tqdm) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from carbonsync.models.sfno import SFNO, SFNOConfig
from carbonsync.physics.grid import Grid
from carbonsync.train.backbone import BackboneModelConfig, Batch, loss_channel_weights, rollout_loss

with warnings.catch_warnings():  # torch-harmonics' example layers apply the deprecated torch.jit.script
    warnings.simplefilter("ignore")
    from torch_harmonics.examples import ShallowWaterSolver
    from torch_harmonics.examples.models.sfno import SphericalFourierNeuralOperator

CHANNELS = ("geopotential", "vorticity", "divergence")
DEFAULT_LEARN_SKIP = bool(BackboneModelConfig.learn_skip)  # the canonical backbone's (configs/model/sfno_e32_l4.yaml)


# ----------------------------------------------------------------------------------------------- data
def generate(solver: ShallowWaterSolver, n_traj: int, hours: int, steps_per_hour: int, desc: str) -> torch.Tensor:
    """(n_traj, hours + 1, 3, nlat, nlon) hourly grid states from fresh random initial conditions."""
    out = torch.empty(n_traj, hours + 1, 3, solver.nlat, solver.nlon)
    with torch.inference_mode(), tqdm(total=n_traj * hours, desc=desc, unit="h", mininterval=1.0) as bar:
        for i in range(n_traj):
            spec = solver.random_initial_condition(mach=0.2)
            out[i, 0] = solver.spec2grid(spec)
            for h in range(hours):
                spec = solver.timestep(spec, steps_per_hour)
                out[i, h + 1] = solver.spec2grid(spec)
                bar.update()
    if not torch.isfinite(out).all():
        raise FloatingPointError("the shallow-water solver blew up; lower --dt-solver")
    return out


def area_stats(states: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel area-weighted mean and std over all states (as carbonsync.data.store.compute_stats)."""
    x = states.reshape(-1, *states.shape[-3:]).double()
    mean = (x * weights).sum((-2, -1)).mean(0)
    var = ((x - mean[:, None, None]) ** 2 * weights).sum((-2, -1)).mean(0)
    return mean.float()[:, None, None], var.sqrt().clamp_min(1e-12).float()[:, None, None]


# --------------------------------------------------------------------------------------------- models
class Unforced(nn.Module):
    """Our SFNO without forcing channels behind rollout_loss's ``model(state, forcing)`` call."""

    def __init__(self, model: SFNO):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, forcing: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Side:
    """One side of the comparison: its model, normalised states and epochs (a list of phases)."""

    def __init__(self, name: str, model: nn.Module, states: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        self.name, self.model, self.states, self.mean, self.std = name, model, states, mean, std
        self.epoch_seconds: list[float] = []
        self.epoch_samples: list[int] = []
        self.epoch_phase: list[str] = []
        self.losses: list[float] = []
        self.steps = 0


def windows(n_traj: int, hours: int, k: int) -> np.ndarray:
    """Flat indices (trajectory * (hours + 1) + t) of starts followed by k states of the same trajectory."""
    t = np.arange(hours - k + 1)
    return (np.arange(n_traj)[:, None] * (hours + 1) + t[None, :]).ravel()


def epoch_order(starts: np.ndarray, n: int, generator: torch.Generator) -> np.ndarray:
    """``n`` starts: a seeded permutation of ``starts``, tiled if there are fewer than ``n``."""
    reps = math.ceil(n / len(starts))
    perm = np.concatenate([starts[torch.randperm(len(starts), generator=generator).numpy()] for _ in range(reps)])
    return perm[:n]


def train_reference_epoch(side: Side, opt, sched, order: np.ndarray, bs: int, loss_w: torch.Tensor, bar) -> None:
    model, states = side.model, side.states
    model.train()
    tic = time.perf_counter()
    for i in range(0, len(order), bs):
        idx = torch.as_tensor(order[i:i + bs])
        inp, tar = states[idx], states[idx + 1]
        prd = model(inp)
        loss = torch.sum((prd - tar) ** 2 * loss_w, dim=(-2, -1)).sum(dim=-1).mean()  # l2loss_sphere, squared
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        side.losses.append(loss.item())
        side.steps += 1
        bar.update()
    sched.step()
    side.epoch_seconds.append(time.perf_counter() - tic)
    side.epoch_samples.append(len(order))
    side.epoch_phase.append("one-step")


def train_ours_epoch(side: Side, opt, sched, order: np.ndarray, bs: int, k: int, weights: torch.Tensor,
                     channel_weights: torch.Tensor, grad_clip: float, bar) -> None:
    model, states = side.model, side.states
    device = torch.device("cpu")
    model.train()
    tic = time.perf_counter()
    for i in range(0, len(order), bs):
        index = torch.as_tensor(order[i:i + bs])[:, None] + torch.arange(k + 1)[None, :]  # (B, K+1)
        window = states[index]
        batch = Batch(window[:, 0], torch.empty(k, len(index), 0, *states.shape[-2:]), window[:, 1:].transpose(0, 1))
        loss = rollout_loss(model, batch, weights, channel_weights, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        side.losses.append(loss.item())
        side.steps += 1
        bar.update()
    side.epoch_seconds.append(time.perf_counter() - tic)
    side.epoch_samples.append(len(order))
    side.epoch_phase.append(f"{k}-step")


# ----------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def rollout(side: Side, x0_phys: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps, N, C, H, W) physical-unit predictions of ``side`` from physical initial states."""
    side.model.eval()
    state = (x0_phys - side.mean) / side.std
    out = []
    for _ in range(steps):
        state = side.model(state)
        out.append(state * side.std + side.mean)
    return torch.stack(out)


def relative_l2(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel sqrt(∫(pred - target)^2 / ∫target^2) with area weights: (..., N, C)."""
    num = ((pred - target) ** 2 * weights).sum((-2, -1))
    den = (target**2 * weights).sum((-2, -1)).clamp_min(1e-12)
    return (num / den).sqrt()


def skill(pred_phys: torch.Tensor, truth_phys: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
          weights: torch.Tensor) -> dict:
    """Relative L2 in common (standardised) units; pred/truth (steps, N, C, H, W)."""
    rel = relative_l2((pred_phys - mean) / std, (truth_phys - mean) / std, weights)  # (steps, N, C)
    if not torch.isfinite(rel).all():
        rel = torch.nan_to_num(rel, nan=float("inf"))
    by_lead = rel.mean((1, 2))
    return {
        "rel_l2_1step": round(float(by_lead[0]), 5),
        "rel_l2_24step": round(float(by_lead[-1]), 5),
        "rel_l2_by_channel_1step": {c: round(float(v), 5) for c, v in zip(CHANNELS, rel[0].mean(0), strict=True)},
        "rel_l2_by_channel_24step": {c: round(float(v), 5) for c, v in zip(CHANNELS, rel[-1].mean(0), strict=True)},
        "rel_l2_by_lead": [round(float(v), 4) for v in by_lead],
    }


def ratio(a: float, b: float) -> float | None:
    return float(f"{a / b:.4g}") if b and math.isfinite(a) and math.isfinite(b) else None


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nlat", type=int, default=32)
    p.add_argument("--nlon", type=int, default=64)
    p.add_argument("--solver-lmax", type=int, default=None, help="solver truncation (default ceil(nlat / 3))")
    p.add_argument("--dt-hours", type=float, default=1.0)
    p.add_argument("--dt-solver", type=float, default=600.0, help="solver step in seconds (must divide dt)")
    p.add_argument("--train-trajectories", type=int, default=48)
    p.add_argument("--traj-hours", type=int, default=24, help="hourly steps per training trajectory")
    p.add_argument("--train-samples", type=int, default=None,
                   help="one-step training pairs; sets --train-trajectories = ceil(N / traj-hours)")
    p.add_argument("--eval-trajectories", type=int, default=16)
    p.add_argument("--eval-steps", type=int, default=24)
    p.add_argument("--epochs", type=int, default=18)
    p.add_argument("--finetune-epochs", type=int, default=None, help="ours: multi-step epochs (default round(E/6))")
    p.add_argument("--rollout-steps", type=int, default=4, help="ours: steps per fine-tuning rollout")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--channel-weights", default="tendency_std", choices=["tendency_std", "tendency", "equal"],
                   help="ours: per-channel loss weights (as train.backbone.channel_weights)")
    p.add_argument("--learn-skip", action=argparse.BooleanOptionalAction, default=DEFAULT_LEARN_SKIP,
                   help="ours: learned per-channel skip weight (SFNOConfig.learn_skip; default as "
                        "configs/model/sfno_e32_l4.yaml)")
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--scale-factor", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads for everything (both sides)")
    args = p.parse_args()

    wall0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    nlat, nlon, bs = args.nlat, args.nlon, args.batch_size
    if args.train_samples is not None:
        args.train_trajectories = math.ceil(args.train_samples / args.traj_hours)
    hours = args.traj_hours
    n_samples = args.train_trajectories * hours
    finetune_epochs = args.finetune_epochs if args.finetune_epochs is not None else max(1, round(args.epochs / 6))
    finetune_epochs = min(finetune_epochs, args.epochs - 1)
    if hours < args.rollout_steps:
        raise SystemExit("--traj-hours must be >= --rollout-steps")

    # ---- data: one shared SWE data set
    solver_lmax = args.solver_lmax or math.ceil(nlat / 3)
    steps_per_hour = round(args.dt_hours * 3600 / args.dt_solver)
    if not math.isclose(steps_per_hour * args.dt_solver, args.dt_hours * 3600):
        raise SystemExit("--dt-solver must divide --dt-hours")
    solver = ShallowWaterSolver(nlat, nlon, args.dt_solver, lmax=solver_lmax, mmax=solver_lmax, grid="equiangular").float()
    tic = time.perf_counter()
    train_traj = generate(solver, args.train_trajectories, hours, steps_per_hour, "SWE train data")
    eval_traj = generate(solver, args.eval_trajectories, args.eval_steps, steps_per_hour, "SWE held-out data")
    t_data = time.perf_counter() - tic
    flat = train_traj.reshape(-1, 3, nlat, nlon)  # trajectories back to back; windows never cross them

    grid = Grid(nlat, nlon, "equiangular")
    area = torch.as_tensor(grid.quadrature_weights().values, dtype=torch.float32)  # sums to 1
    # torch-harmonics' integrate_grid(dimensionless=True): quadrature weights x dlon (integral of 1 = 4 pi)
    th_w = (solver.quad_weights.float() * (2 * math.pi / nlon)).expand(nlat, nlon)
    our_mean, our_std = area_stats(flat, area)
    inp0 = train_traj[0, 0]  # PdeDataset: statistics of the first input sample, unweighted
    ref_mean, ref_std = inp0.mean((-2, -1)).reshape(-1, 1, 1), inp0.var((-2, -1)).sqrt().reshape(-1, 1, 1)

    # ---- models (same seed for both initialisations)
    torch.manual_seed(args.seed + 1)
    ref_model = SphericalFourierNeuralOperator(
        img_size=(nlat, nlon), grid="equiangular", grid_internal="legendre-gauss", num_layers=args.num_layers,
        scale_factor=args.scale_factor, in_chans=3, out_chans=3, embed_dim=args.embed_dim, residual_prediction=True,
        pos_embed="none", use_mlp=True, mlp_ratio=2.0, normalization_layer="none",
    )
    torch.manual_seed(args.seed + 1)
    h, w = (nlat - 1) // args.scale_factor + 1, nlon // args.scale_factor
    model_lmax = min(h, w // 2)  # the reference's truncation, given explicitly
    our_cfg = SFNOConfig(in_channels=3, nlat=nlat, nlon=nlon, grid="equiangular", grid_internal="legendre-gauss",
                         forcing_channels=0, embed_dim=args.embed_dim, num_layers=args.num_layers,
                         scale_factor=args.scale_factor, mlp_ratio=2.0, lmax=model_lmax, mmax=model_lmax,
                         residual_prediction=True, output_gain=0.0, learn_skip=args.learn_skip)
    our_model = Unforced(SFNO(our_cfg))
    ref = Side("reference", ref_model, (flat - ref_mean) / ref_std, ref_mean, ref_std)
    ours = Side("ours", our_model, (flat - our_mean) / our_std, our_mean, our_std)

    # ---- recipes
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=3e-3, weight_decay=0.0)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=args.epochs)
    steps_per_epoch = math.ceil(n_samples / bs)
    pairs = windows(args.train_trajectories, hours, 1)
    channel_weights = loss_channel_weights(None if args.channel_weights == "equal" else args.channel_weights,
                                           ours.states, pairs, area)
    phases = [("pretrain", args.epochs - finetune_epochs, 1, 2e-3),
              ("finetune", finetune_epochs, args.rollout_steps, 3e-4)]
    our_plan = []  # (phase index, k) per epoch
    for i, (_, n_ep, k, _) in enumerate(phases):
        our_plan += [(i, k)] * n_ep
    our_opt = our_sched = None
    current_phase = -1

    bar = tqdm(total=2 * args.epochs * steps_per_epoch, desc="training (ref + ours)", unit="step", mininterval=1.0)
    for epoch in range(args.epochs):
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch + 1)
        order = epoch_order(pairs, n_samples, gen)
        train_reference_epoch(ref, ref_opt, ref_sched, order, bs, th_w, bar)
        phase, k = our_plan[epoch]
        if phase != current_phase:  # a fresh AdamW + cosine per phase, as train_backbone
            current_phase = phase
            our_opt = torch.optim.AdamW(our_model.parameters(), lr=phases[phase][3], weight_decay=1e-4)
            n_ep = phases[phase][1]
            our_sched = torch.optim.lr_scheduler.CosineAnnealingLR(our_opt, T_max=max(n_ep * steps_per_epoch, 1))
        our_order = order if k == 1 else epoch_order(windows(args.train_trajectories, hours, k), n_samples,
                                                     torch.Generator().manual_seed(args.seed * 1000 + epoch + 1))
        train_ours_epoch(ours, our_opt, our_sched, our_order, bs, k, area, channel_weights, 1.0, bar)
        bar.set_postfix(ref=f"{np.mean(ref.losses[-steps_per_epoch:]):.3g}",
                        ours=f"{np.mean(ours.losses[-steps_per_epoch:]):.3g}")
    bar.close()

    # ---- evaluation on held-out trajectories
    x0, truth = eval_traj[:, 0], eval_traj[:, 1:].transpose(0, 1)  # truth (steps, N, C, H, W)
    result_sides = {}
    for side in (ref, ours):
        tic = time.perf_counter()
        pred = rollout(side, x0, args.eval_steps)
        sk = skill(pred, truth, our_mean, our_std, area)
        rates = [n / s for n, s in zip(side.epoch_samples, side.epoch_seconds, strict=True)]
        entry = {
            "params": n_params(side.model),
            **sk,
            "samples_per_s_median": round(statistics.median(rates), 2),
            "train_wall_s": round(sum(side.epoch_seconds), 2),
            "optimizer_steps": side.steps,
            "samples_seen": int(sum(side.epoch_samples)),
            "final_epoch_loss": round(float(np.mean(side.losses[-steps_per_epoch:])), 6),
            "eval_s": round(time.perf_counter() - tic, 2),
        }
        for name in sorted(set(side.epoch_phase)):
            r = [x for x, ph in zip(rates, side.epoch_phase, strict=True) if ph == name]
            entry[f"samples_per_s_median_{name}"] = round(statistics.median(r), 2)
        result_sides[side.name] = entry
    persistence = skill(x0[None].expand_as(truth), truth, our_mean, our_std, area)
    r, o = result_sides["reference"], result_sides["ours"]
    out = {
        "benchmark": "swe_sfno",
        "config": {
            "grid": f"equiangular {nlat}x{nlon}", "solver_lmax": solver_lmax, "dt_hours": args.dt_hours,
            "dt_solver_s": args.dt_solver, "train_trajectories": args.train_trajectories, "traj_hours": hours,
            "train_samples": n_samples, "epochs": args.epochs, "batch_size": bs, "steps_per_epoch": steps_per_epoch,
            "ours_phases": [{"name": n, "epochs": e, "rollout_steps": k, "lr": lr} for n, e, k, lr in phases],
            "model": {"embed_dim": args.embed_dim, "num_layers": args.num_layers, "scale_factor": args.scale_factor,
                      "lmax": model_lmax, "mmax": model_lmax},
            "ours_channel_weights": args.channel_weights, "ours_learn_skip": args.learn_skip,
            "eval_trajectories": args.eval_trajectories, "eval_steps": args.eval_steps,
            "threads": args.threads, "seed": args.seed, "torch": torch.__version__,
        },
        "reference": r,
        "ours": o,
        "persistence": {k: persistence[k] for k in ("rel_l2_1step", "rel_l2_24step")},
        "ratios_ours_over_reference": {
            "rel_l2_1step": ratio(o["rel_l2_1step"], r["rel_l2_1step"]),
            "rel_l2_24step": ratio(o["rel_l2_24step"], r["rel_l2_24step"]),
            "samples_per_s_median": ratio(o["samples_per_s_median"], r["samples_per_s_median"]),
            "samples_per_s_median_one_step_epochs": ratio(o.get("samples_per_s_median_1-step", float("nan")),
                                                          r["samples_per_s_median_one-step"]),
            "train_wall_s": ratio(o["train_wall_s"], r["train_wall_s"]),
            "params": ratio(o["params"], r["params"]),
        },
        "data_generation_s": round(t_data, 2),
        "total_wall_s": round(time.perf_counter() - wall0, 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
