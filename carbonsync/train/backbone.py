"""Train the SFNO backbone: one 6-hourly step, loss integrated over the sphere, AdamW + cosine schedule."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from carbonsync.data.grid import Grid
from carbonsync.data.store import open_canonical, read_stats
from carbonsync.data.validation import WeatherDataError
from carbonsync.models.inputs import zenith_forcing
from carbonsync.models.package import save_package
from carbonsync.models.sfno import SFNO, SFNOConfig
from carbonsync.train.common import Checkpointer, Tracker, seed_everything, select_device
from carbonsync.train.losses import spherical_l2


def normalise(values: np.ndarray, channels: list[str], stats: dict) -> np.ndarray:
    """(T, C, H, W) physical values to zero-mean unit-variance with the training-split statistics."""
    mean = np.array([stats["variables"][c]["mean"] for c in channels], np.float32)[None, :, None, None]
    std = np.array([stats["variables"][c]["std"] for c in channels], np.float32)[None, :, None, None]
    return (values - mean) / std


def load_states(ds: xr.Dataset, channels: list[str], stats: dict, period: tuple[str, str] | None,
                dt_hours: int) -> tuple[pd.DatetimeIndex, torch.Tensor]:
    """Normalised states every ``dt_hours`` within ``period``: times and a (T, C, H, W) float32 tensor."""
    sub = ds[channels]
    if period is not None:
        sub = sub.sel(time=slice(*period))
    sub = sub.sel(time=(sub.time.dt.hour % dt_hours == 0) & (sub.time.dt.minute == 0))
    if sub.sizes["time"] < 2:
        raise WeatherDataError(f"period {period} holds fewer than two {dt_hours}-hourly states")
    values = sub.to_array("channel").transpose("time", "channel", "lat", "lon").values.astype(np.float32)
    return pd.DatetimeIndex(sub.time.values), torch.from_numpy(normalise(values, channels, stats))


def step_pairs(times: pd.DatetimeIndex, dt_hours: int) -> np.ndarray:
    """Indices ``i`` whose successor is exactly ``dt_hours`` later (gaps never form a pair)."""
    gaps = np.diff(times.asi8) == pd.Timedelta(hours=dt_hours).value
    return np.flatnonzero(gaps)


def build_sfno(model_cfg: Any, grid: Grid) -> SFNO:
    return SFNO(SFNOConfig(
        in_channels=len(model_cfg.channels), nlat=grid.nlat, nlon=grid.nlon, grid=grid.kind,
        grid_internal=model_cfg.get("grid_internal", "legendre-gauss"),
        forcing_channels=len(model_cfg.forcing), embed_dim=model_cfg.embed_dim,
        num_layers=model_cfg.num_layers, scale_factor=model_cfg.scale_factor, mlp_ratio=model_cfg.mlp_ratio,
        lmax=model_cfg.lmax, mmax=model_cfg.mmax, residual_prediction=True,
        output_gain=float(model_cfg.get("output_gain", 0.0)),
    ))


def loss_channel_weights(setting: Any, states: torch.Tensor, pairs: np.ndarray, weights: torch.Tensor) -> torch.Tensor:
    """Per-channel loss weights: a list, ``null`` (equal) or ``tendency``.

    ``tendency`` weights each channel by the inverse variance of its one-step change on the training
    split, so slowly varying channels (z500 moves a few hundredths of its climatological spread in 6 h)
    count as much as fast ones: the model learns every channel's increment, not only the noisiest.
    """
    n = states.shape[1]
    if setting is None:
        return torch.ones(n)
    if setting == "tendency":
        change = states[pairs + 1] - states[pairs]
        variance = (change.pow(2) * weights).sum((-2, -1)).mean(0)
        return 1.0 / variance.clamp_min(1e-8)
    values = torch.as_tensor(list(setting), dtype=torch.float32)
    if values.numel() != n:
        raise ValueError(f"train.backbone.channel_weights has {values.numel()} values for {n} channels")
    return values


@torch.no_grad()
def evaluate_one_step(model: SFNO, states: torch.Tensor, forcing: torch.Tensor, pairs: np.ndarray,
                      weights: torch.Tensor, std: torch.Tensor, batch: int = 32) -> dict[str, np.ndarray]:
    """Area-weighted RMSE per channel (physical units) of the model and of persistence at one step."""
    model.eval()
    sq_model = torch.zeros(states.shape[1], dtype=torch.float64)
    sq_persist = torch.zeros_like(sq_model)
    for start in range(0, len(pairs), batch):
        idx = torch.as_tensor(pairs[start:start + batch])
        x, y = states[idx], states[idx + 1]
        pred = model(x, forcing[idx])
        sq_model += ((pred - y) ** 2 * weights).sum((-2, -1)).sum(0).double()
        sq_persist += ((x - y) ** 2 * weights).sum((-2, -1)).sum(0).double()
    n = max(len(pairs), 1)
    return {"model": (sq_model / n).sqrt().numpy() * std.numpy(), "persistence": (sq_persist / n).sqrt().numpy() * std.numpy()}


def train_backbone(cfg: Any, weather_path: str | Path, out_dir: str | Path, progress: bool = True) -> Path:
    """Train the backbone on the train split, report validation skill, and save its model package."""
    mcfg, tcfg = cfg.backbone, cfg.train.backbone
    seed_everything(cfg.train.seed)
    torch.set_num_threads(int(cfg.train.get("threads", 2)))
    device = select_device(cfg.train.device)
    ds = open_canonical(weather_path, list(mcfg.channels))
    stats = read_stats(weather_path)
    grid = Grid.infer(ds)
    channels = list(mcfg.channels)
    train_times, train_states = load_states(ds, channels, stats, tuple(cfg.data.splits.train), mcfg.dt_hours)
    val_times, val_states = load_states(ds, channels, stats, tuple(cfg.data.splits.val), mcfg.dt_hours)
    train_forcing, val_forcing = zenith_forcing(train_times, grid), zenith_forcing(val_times, grid)
    train_pairs, val_pairs = step_pairs(train_times, mcfg.dt_hours), step_pairs(val_times, mcfg.dt_hours)

    model = build_sfno(mcfg, grid).to(device)
    weights = torch.as_tensor(grid.quadrature_weights().values, dtype=torch.float32)
    channel_weights = loss_channel_weights(tcfg.channel_weights, train_states, train_pairs, weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    steps_per_epoch = int(np.ceil(len(train_pairs) / tcfg.batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(tcfg.epochs * steps_per_epoch, 1))
    out_dir = Path(out_dir)
    checkpoints = Checkpointer(out_dir / "checkpoints" / "backbone")
    start_epoch, _ = checkpoints.resume(model, optimizer, scheduler)
    tracker = Tracker(cfg.get("logging"), out_dir, "backbone", {"model": dict(mcfg), "train": dict(tcfg)})
    generator = torch.Generator().manual_seed(cfg.train.seed)

    for epoch in range(start_epoch, tcfg.epochs):
        generator.manual_seed(cfg.train.seed + epoch)
        order = train_pairs[torch.randperm(len(train_pairs), generator=generator).numpy()]
        model.train()
        losses, tic = [], time.perf_counter()
        bar = tqdm(range(0, len(order), tcfg.batch_size), desc=f"backbone epoch {epoch + 1}/{tcfg.epochs}",
                   disable=not progress, leave=False)
        for start in bar:
            idx = torch.as_tensor(order[start:start + tcfg.batch_size])
            x, y, f = train_states[idx].to(device), train_states[idx + 1].to(device), train_forcing[idx].to(device)
            loss = spherical_l2(model(x, f), y, weights.to(device), channel_weights.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        throughput = len(order) / (time.perf_counter() - tic)
        std = torch.tensor([stats["variables"][c]["std"] for c in channels])
        val = evaluate_one_step(model.cpu(), val_states, val_forcing, val_pairs, weights, std)
        model.to(device)
        metrics = {"train/loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0],
                   "samples_per_s": throughput}
        metrics |= {f"val/rmse_{c}": float(v) for c, v in zip(channels, val["model"], strict=True)}
        tracker.log(metrics, step=epoch)
        checkpoints.save(epoch, model, optimizer, scheduler, extra={"val": {k: v.tolist() for k, v in val.items()}})
        skill = 1 - val["model"] / val["persistence"]
        print(f"backbone epoch {epoch + 1}: loss {metrics['train/loss']:.4f}, {throughput:.1f} samples/s, "
                  "val 6 h RMSE skill vs persistence " + ", ".join(f"{c} {s:+.0%}" for c, s in zip(channels, skill, strict=True)))
    tracker.finish()
    return save_package(
        out_dir / "packages" / "backbone", model.cpu(), kind="sfno", config=model.config.to_dict(),
        channels=channels, grid=grid, dt_hours=int(mcfg.dt_hours),
        stats={c: stats["variables"][c] for c in channels},
        extra={"forcing": list(mcfg.forcing), "train_period": list(cfg.data.splits.train),
               "data_source": ds.attrs.get("source", "unknown")},
    )
