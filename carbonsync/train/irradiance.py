"""Train the hourly irradiance diagnostic (AFNO): 6-hourly states interpolated to the hour + sun → ssrd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from carbonsync.data.grid import Grid
from carbonsync.data.store import open_canonical, read_stats
from carbonsync.models.afno import AFNOConfig, IrradianceDiagnostic
from carbonsync.models.inputs import SSRD_SCALE, interpolation_weights, irradiance_inputs
from carbonsync.models.package import save_package
from carbonsync.train.backbone import load_states
from carbonsync.train.common import Checkpointer, Tracker, seed_everything, select_device


class HourlySamples:
    """Hourly training samples: states interpolated between the 6-hourly ones around each hour."""

    def __init__(self, ds: xr.Dataset, channels: list[str], stats: dict, period: tuple[str, str], dt_hours: int):
        self.grid = Grid.infer(ds)
        self.state_times, self.states = load_states(ds, channels, stats, period, dt_hours)
        self.dt_hours = dt_hours
        first, last = self.state_times[0], self.state_times[-1]
        hours = pd.date_range(first, last, freq="h")
        self.hours = hours[(hours > first)]  # each hour needs the state before and after it
        self.ssrd = ds["ssrd"].sel(time=self.hours).load()  # read once, not a dask read per batch
        self._index = {t: i for i, t in enumerate(self.state_times)}

    def __len__(self) -> int:
        return len(self.hours)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """States at each hour, hour-mean cos zenith, clear-sky and true ssrd (J m-2)."""
        times = self.hours[idx]
        before, weight = interpolation_weights(times, self.dt_hours)
        i0 = np.array([self._index[t] for t in before])
        i1 = np.minimum(i0 + 1, len(self.state_times) - 1)
        w = torch.from_numpy(weight)[:, None, None, None]
        states = (1 - w) * self.states[i0] + w * self.states[i1]
        cosz, clear = irradiance_inputs(times, self.grid)
        target = torch.from_numpy(self.ssrd.isel(time=idx).values.astype(np.float32)[:, None])
        return states, cosz, clear, target


def build_afno(model_cfg: Any, grid: Grid) -> IrradianceDiagnostic:
    return IrradianceDiagnostic(AFNOConfig(
        state_channels=len(model_cfg.channels), nlat=grid.nlat, nlon=grid.nlon, grid=grid.kind,
        forcing_channels=1, patch_size=model_cfg.patch_size, embed_dim=model_cfg.embed_dim,
        num_layers=model_cfg.num_layers, num_blocks=model_cfg.num_blocks, mlp_ratio=model_cfg.mlp_ratio,
    ))


@torch.no_grad()
def evaluate(model: IrradianceDiagnostic, samples: HourlySamples, weights: torch.Tensor,
             n: int = 256, batch: int = 32) -> dict[str, float]:
    """Area-weighted RMSE (W m-2 equivalent) of the model and of clear sky × mean clearness."""
    model.eval()
    idx = np.linspace(0, len(samples) - 1, min(n, len(samples))).astype(int)
    sq, sq_clear, total_target, total_clear = 0.0, 0.0, 0.0, 0.0
    for start in range(0, len(idx), batch):
        x, cosz, clear, target = samples.batch(idx[start:start + batch])
        pred = model(x, clear, cosz)
        sq += float(((pred - target) ** 2 * weights).sum())
        total_target += float((target * weights).sum())
        total_clear += float((clear * weights).sum())
    k = total_target / max(total_clear, 1e-9)  # mean clearness index of these samples
    for start in range(0, len(idx), batch):
        _, _, clear, target = samples.batch(idx[start:start + batch])
        sq_clear += float(((k * clear - target) ** 2 * weights).sum())
    return {"rmse_wm2": np.sqrt(sq / len(idx)) / 3600.0, "clear_sky_rmse_wm2": np.sqrt(sq_clear / len(idx)) / 3600.0}


def train_irradiance(cfg: Any, weather_path: str | Path, out_dir: str | Path, progress: bool = True) -> Path:
    """Train the diagnostic on the train split, report validation skill and save its model package."""
    mcfg, tcfg = cfg.irradiance, cfg.train.irradiance
    seed_everything(cfg.train.seed)
    torch.set_num_threads(int(cfg.train.get("threads", 2)))
    device = select_device(cfg.train.device)
    channels = list(mcfg.channels)
    ds = open_canonical(weather_path, [*channels, "ssrd"])
    stats = read_stats(weather_path)
    dt_hours = int(cfg.backbone.dt_hours)
    train = HourlySamples(ds, channels, stats, tuple(cfg.data.splits.train), dt_hours)
    val = HourlySamples(ds, channels, stats, tuple(cfg.data.splits.val), dt_hours)
    model = build_afno(mcfg, train.grid).to(device)
    weights = torch.as_tensor(train.grid.quadrature_weights().values, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    steps = int(np.ceil(min(tcfg.hours_per_epoch, len(train)) / tcfg.batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps * tcfg.epochs, 1))
    out_dir = Path(out_dir)
    checkpoints = Checkpointer(out_dir / "checkpoints" / "irradiance")
    start_epoch, _ = checkpoints.resume(model, optimizer, scheduler)
    tracker = Tracker(cfg.get("logging"), out_dir, "irradiance", {"model": dict(mcfg), "train": dict(tcfg)})
    for epoch in range(start_epoch, tcfg.epochs):
        generator = np.random.default_rng(cfg.train.seed + epoch)
        order = generator.permutation(len(train))[: tcfg.hours_per_epoch]
        model.train()
        losses = []
        bar = tqdm(range(0, len(order), tcfg.batch_size), desc=f"irradiance epoch {epoch + 1}/{tcfg.epochs}",
                   disable=not progress, leave=False)
        for start in bar:
            x, cosz, clear, target = train.batch(order[start:start + tcfg.batch_size])
            pred = model(x.to(device), clear.to(device), cosz.to(device))
            loss = (((pred - target.to(device)) / SSRD_SCALE) ** 2 * weights.to(device)).sum((-2, -1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.5f}")
        scores = evaluate(model.cpu(), val, weights)
        model.to(device)
        tracker.log({"train/loss": float(np.mean(losses)), **{f"val/{k}": v for k, v in scores.items()}}, step=epoch)
        checkpoints.save(epoch, model, optimizer, scheduler, extra=scores)
        print(f"irradiance epoch {epoch + 1}: loss {np.mean(losses):.5f}, val RMSE {scores['rmse_wm2']:.1f} W m-2 "
              f"(clear sky x mean clearness: {scores['clear_sky_rmse_wm2']:.1f} W m-2)")
    tracker.finish()
    return save_package(
        out_dir / "packages" / "irradiance", model.cpu(), kind="afno", config=model.config.to_dict(),
        channels=channels, grid=train.grid, dt_hours=1, stats={c: stats["variables"][c] for c in channels},
        extra={"output": "ssrd", "output_units": "J m-2", "state_dt_hours": dt_hours,
               "train_period": list(cfg.data.splits.train)},
    )
