"""Forecast-chain test helpers: a tiny random weather state and small saved backbone / irradiance packages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from carbonsync.data import lexicon
from carbonsync.models.afno import AFNOConfig, IrradianceDiagnostic
from carbonsync.models.package import save_package
from carbonsync.models.sfno import SFNO, SFNOConfig
from carbonsync.physics.grid import Grid

CHANNELS = ["u100", "v100", "z500", "tcc", "t2m"]
GRID = Grid(17, 32)
INIT = pd.Timestamp("2024-03-01T06:00")


def tiny_weather(periods: int = 3, variables: list[str] = CHANNELS) -> xr.Dataset:
    """Random 6-hourly weather of ``variables`` on the 17x32 grid (every channel drawn, so the values of one do
    not depend on which others are kept)."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-03-01", periods=periods, freq="6h")
    shape = (len(times), GRID.nlat, GRID.nlon)
    values = {
        "u100": rng.normal(0, 5, shape), "v100": rng.normal(0, 4, shape), "z500": 5.5e4 + rng.normal(0, 500, shape),
        "tcc": rng.uniform(0, 1, shape), "t2m": 280 + rng.normal(0, 10, shape),
    }
    ds = xr.Dataset(
        {v: (("time", "lat", "lon"), values[v].astype(np.float32), lexicon.get(v).attrs) for v in variables},
        coords={"time": times, **GRID.coords()},
    )
    ds.attrs["grid"] = GRID.attr()
    return ds


def damping_tensors(lead_steps: int = 3, seed: int = 1) -> dict[str, torch.Tensor]:
    """A damping toward a made-up climatology: factors in (0.3, 0.9), 4 six-hourly slots."""
    gen = torch.Generator().manual_seed(seed)
    return {"damping": 0.3 + 0.6 * torch.rand(lead_steps, len(CHANNELS), generator=gen),
            "damping_climatology": torch.randn(4, len(CHANNELS), *GRID.shape, generator=gen)}


def save_backbone(path: Path, ds: xr.Dataset, damped: bool) -> Path:
    torch.manual_seed(0)
    model = SFNO(SFNOConfig(in_channels=5, nlat=GRID.nlat, nlon=GRID.nlon, forcing_channels=1, embed_dim=8,
                            num_layers=2, lmax=8, mmax=8))
    stats = {v: {"mean": float(ds[v].mean()), "std": float(ds[v].std())} for v in CHANNELS}
    return save_package(path, model, kind="sfno", config=None, channels=CHANNELS, grid=GRID, dt_hours=6, stats=stats,
                        extra={"forcing": ["cos_zenith"]}, forcing_channels=["cos_zenith"],
                        tensors=damping_tensors() if damped else None)


def save_irradiance(path: Path, ds: xr.Dataset) -> Path:
    torch.manual_seed(0)
    model = IrradianceDiagnostic(AFNOConfig(state_channels=1, nlat=GRID.nlat, nlon=GRID.nlon, patch_size=(4, 4),
                                            embed_dim=8, num_layers=1, num_blocks=2, latlon_encoding=False))
    with torch.no_grad():  # a clearness that depends visibly on tcc
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    stats = {"tcc": {"mean": float(ds["tcc"].mean()), "std": float(ds["tcc"].std())}}
    return save_package(path, model, kind="afno", config=None, channels=["tcc"], grid=GRID, dt_hours=1, stats=stats)
