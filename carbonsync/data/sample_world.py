"""The sample world: a deterministic synthetic planet in the canonical layout.

Dynamics are torch-harmonics' spherical shallow-water equations, kept statistically steady by relaxation
towards balanced mid-latitude jets (timescale ``relax_days``) and stirred by seeded red-noise vorticity
forcing, so eddies form, travel and decay as weather does. From the flow:

- ``u100``, ``v100``: the layer's wind scaled to 100 m speeds (``wind_scale``);
- ``z500``: the layer's geopotential mapped to a 500 hPa-like height;
- ``tcc``: cloud cover from height anomalies (cyclones are cloudy), convergence and climate belts;
- ``t2m``: a latitude/season/diurnal temperature with synoptic anomalies;
- ``tisr`` and ``ssrd``: exact solar geometry (see ``carbonsync.physics.solar``) with Haurwitz clear-sky
  irradiance attenuated by cloud (Kasten & Czeplak 1980: 1 - 0.75 tcc^3.4), hourly accumulations.

Zone truth (wind/solar capacity factors, renewable share) follows from the weather through the same
physics the regional head uses (``carbonsync.physics.renewables``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from carbonsync import __version__
from carbonsync.core.fs import atomic_path
from carbonsync.core.logs import Progress, get_logger
from carbonsync.data import lexicon
from carbonsync.data.store import compute_stats, to_zarr, write_canonical, write_stats
from carbonsync.physics import solar
from carbonsync.physics.grid import Grid
from carbonsync.physics.renewables import zone_products
from carbonsync.physics.zones import Zone, load_zones, zones_to_dicts

log = get_logger(__name__)

WEATHER_VARIABLES = ("u100", "v100", "z500", "tcc", "t2m", "tisr", "ssrd")


@dataclass
class SampleWorldConfig:
    """Everything that determines the sample world; equal configs give identical worlds."""

    nlat: int = 33
    nlon: int = 64
    lmax: int = 22
    start: str = "2020-08-01"
    days: int = 120
    spinup_days: int = 10
    seed: int = 0
    solver_dt_s: float = 600.0
    jet_speed: float = 35.0
    relax_days: float = 5.0
    stirring: float = 2e-11
    stirring_memory_days: float = 2.0
    wind_scale: float = 0.3
    zones: list[dict] = field(default_factory=list)

    @property
    def grid(self) -> Grid:
        return Grid(self.nlat, self.nlon, "equiangular")


class _ForcedShallowWater:
    """Shallow-water solver (torch-harmonics) with jet relaxation and red-noise stirring, AB3 in time."""

    def __init__(self, cfg: SampleWorldConfig):
        from torch_harmonics.examples import ShallowWaterSolver

        if cfg.lmax > cfg.nlat:
            raise ValueError(f"sample world lmax={cfg.lmax} exceeds nlat={cfg.nlat}")
        self.cfg = cfg
        self.solver = ShallowWaterSolver(
            cfg.nlat, cfg.nlon, dt=cfg.solver_dt_s, lmax=cfg.lmax, mmax=cfg.lmax, grid="equiangular"
        )
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.reference = self._balanced_jets()
        s = self.solver
        degree = torch.arange(s.lmax, dtype=torch.float64).reshape(-1, 1).expand(s.lmax, s.mmax)
        self.band = ((degree >= 6) & (degree <= 14)).to(self.reference.dtype)
        self.memory = math.exp(-cfg.solver_dt_s / (cfg.stirring_memory_days * 86400.0))
        self.stir = torch.zeros(s.lmax, s.mmax, dtype=self.reference.dtype)
        self.state = self.reference.clone()
        self.state[1] += 1e-6 * self.band * self._noise()
        self._tendencies = torch.zeros(3, 3, s.lmax, s.mmax, dtype=self.reference.dtype)
        self._step = 0

    def _noise(self) -> torch.Tensor:
        s = self.solver
        re = torch.randn(s.lmax, s.mmax, generator=self.generator, dtype=torch.float64)
        im = torch.randn(s.lmax, s.mmax, generator=self.generator, dtype=torch.float64)
        return torch.complex(re, im)

    def _balanced_jets(self) -> torch.Tensor:
        """Spectral state of two mid-latitude westerly jets and tropical easterlies in gradient balance."""
        s, u0 = self.solver, self.cfg.jet_speed
        lat = s.lats.reshape(-1, 1).expand(s.nlat, s.nlon).double()
        d = math.radians
        u = (u0 * torch.exp(-(((lat - d(45)) / d(12)) ** 2)) + u0 * torch.exp(-(((lat + d(45)) / d(12)) ** 2))
             - 8.0 * torch.exp(-((lat / d(15)) ** 2)))
        wind = torch.stack((u, torch.zeros_like(u)))
        vrtdiv = s.vrtdivspec(wind)
        flux = s.vrtdivspec(wind * (s.spec2grid(vrtdiv) + s.coriolis))
        kinetic = s.grid2spec(0.5 * torch.sum(wind**2, dim=0))
        phi = s.invlap * flux[0] - kinetic + s.grid2spec(s.gravity * s.havg * torch.ones_like(u))
        out = torch.zeros(3, s.lmax, s.mmax, dtype=vrtdiv.dtype)
        out[0], out[1:] = phi, vrtdiv
        return out

    def step(self, n: int) -> None:
        s, dt, tau = self.solver, self.cfg.solver_dt_s, self.cfg.relax_days * 86400.0
        amp = self.cfg.stirring * math.sqrt(1.0 - self.memory**2)
        for _ in range(n):
            self.stir = self.memory * self.stir + amp * self.band * self._noise()
            tendency = s.dudtspec(self.state) + (self.reference - self.state) / tau
            tendency[1] += self.stir
            k = self._step
            new, now, old = (-k) % 3, (1 - k) % 3, (2 - k) % 3
            self._tendencies[new] = tendency
            if k == 0:
                self._tendencies[now] = self._tendencies[old] = tendency
            elif k == 1:
                self._tendencies[old] = tendency
            t = self._tendencies
            self.state = self.state + dt * ((23 / 12) * t[new] - (16 / 12) * t[now] + (5 / 12) * t[old])
            self.state[1:] = s.hyperdiff * self.state[1:]
            self._step += 1

    def fields(self) -> dict[str, np.ndarray]:
        """Height (m), winds (m s-1) and divergence (s-1) on the grid."""
        s = self.solver
        height = s.spec2grid(self.state[0]) / s.gravity
        wind = s.getuv(self.state[1:])
        divergence = s.spec2grid(self.state[2])
        return {
            "h": height.numpy(), "u": wind[0].numpy(), "v": wind[1].numpy(), "div": divergence.numpy(),
        }


def _cloud_cover(h: np.ndarray, div: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Cloud cover in [0, 1]: low heights (cyclones), convergence and the climate belts are cloudy."""
    anomaly = h - h.mean(axis=-1, keepdims=True)
    alat = np.abs(lat)[:, None]
    belts = (0.9 * np.exp(-((lat[:, None] / 10.0) ** 2)) + 0.6 * np.exp(-(((alat - 55.0) / 15.0) ** 2))
             - 0.9 * np.exp(-(((alat - 25.0) / 10.0) ** 2)))
    logit = 0.1 - 1.6 * anomaly / 150.0 - 0.8 * div / 2e-6 + belts
    return 1.0 / (1.0 + np.exp(-logit))


def _integrate(cfg: SampleWorldConfig, progress: bool) -> dict[str, np.ndarray]:
    """Run the forced shallow-water model and keep hourly height, winds and divergence after spin-up."""
    model = _ForcedShallowWater(cfg)
    steps_per_hour = round(3600.0 / cfg.solver_dt_s)
    if not math.isclose(steps_per_hour * cfg.solver_dt_s, 3600.0):
        raise ValueError(f"solver_dt_s={cfg.solver_dt_s} must divide one hour")
    n_hours, spinup = cfg.days * 24, cfg.spinup_days * 24
    fields = {k: np.empty((n_hours, cfg.nlat, cfg.nlon), np.float32) for k in ("h", "u", "v", "div")}
    # no autograd bookkeeping on the solver's many small tensor ops (benchmarks/sample_world.py measures the gain)
    with torch.inference_mode():
        for hour in Progress(range(spinup + n_hours), desc="sample world: dynamics", unit="h", enabled=progress):
            model.step(steps_per_hour)
            if hour >= spinup:
                for key, value in model.fields().items():
                    fields[key][hour - spinup] = value
    if not np.isfinite(fields["h"]).all():
        raise FloatingPointError("sample world dynamics blew up; lower solver_dt_s or stirring")
    return fields


def generate_weather(cfg: SampleWorldConfig, progress: bool = True) -> xr.Dataset:
    """Hourly sample-world weather in the canonical layout (dims time, lat, lon; lat north to south)."""
    grid = cfg.grid
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the spectral ops are tiny: more threads only add overhead
    try:
        fields = _integrate(cfg, progress)
    finally:
        torch.set_num_threads(threads)
    lat, lon = grid.lat, grid.lon
    times = pd.date_range(cfg.start, periods=cfg.days * 24, freq="h")

    tcc = _cloud_cover(fields["h"], fields["div"], lat)
    # Cloud over the accumulation hour: mean of its start and end.
    tcc_hour = 0.5 * (tcc + np.concatenate([tcc[:1], tcc[:-1]]))
    tisr = solar.toa_hourly(times, lat, lon)
    ssrd = solar.clear_sky_hourly(times, lat, lon) * (1.0 - 0.75 * tcc_hour**3.4)
    declination = solarposition_declination(times)
    cosz_now = solar.cos_zenith(times, lat, lon).clip(min=0.0)
    h_anomaly = fields["h"] - fields["h"].mean(axis=-1, keepdims=True)
    lat_r = np.deg2rad(lat)[None, :, None]
    t2m = (255.0 + 42.0 * np.cos(lat_r - 0.4 * declination[:, None, None]) + 6.0 * cosz_now - 3.0 * tcc
           + 0.01 * h_anomaly)
    z500 = lexicon.GRAVITY * (5500.0 + 0.8 * (fields["h"] - fields["h"].mean()))

    data = {
        "u100": cfg.wind_scale * fields["u"], "v100": cfg.wind_scale * fields["v"], "z500": z500,
        "tcc": tcc, "t2m": t2m, "tisr": tisr, "ssrd": ssrd,
    }
    ds = xr.Dataset(
        {
            name: xr.DataArray(values.astype(np.float32), dims=("time", "lat", "lon"),
                               attrs=lexicon.get(name).attrs)
            for name, values in data.items()
        },
        coords={"time": times.values, **grid.coords()},
    )
    ds.attrs.update({
        "title": "CarbonSync sample world (synthetic)",
        "synthetic": "yes: a deterministic synthetic planet, not observations",
        "source": "sample_world",
        "grid": grid.attr(),
        "generator": f"carbonsync {__version__} sample_world (torch-harmonics shallow-water, pvlib solar geometry)",
        "seed": cfg.seed,
        "Conventions": "CF-1.8",
        "note": "ssrd and tisr are accumulations over the hour ending at the time label (ERA5 convention)",
    })
    return ds


def solarposition_declination(times: pd.DatetimeIndex) -> np.ndarray:
    from pvlib.solarposition import declination_spencer71

    return declination_spencer71(pd.DatetimeIndex(times).day_of_year.to_numpy(dtype=float))


def zone_truth(weather: xr.Dataset, zones: list[Zone]) -> xr.Dataset:
    """Zone products (wind_cf, solar_cf, renewable_share, carbon_intensity) implied by gridded weather.

    For the sample world these are its observations; for a reanalysis they are reanalysis-derived
    capacity factors (as renewables.ninja makes them), the stand-in until real zone observations are used.
    """

    grid = Grid.from_attr(weather.attrs["grid"])
    truth = zone_products(weather["u100"], weather["v100"], weather["ssrd"], zones, grid, t2m=weather.get("t2m"))
    keys = ("title", "synthetic", "source", "grid", "generator")
    truth.attrs.update({k: weather.attrs[k] for k in keys if k in weather.attrs})
    return truth


def write_zone_files(weather: xr.Dataset, zones: list[Zone], out_dir: str | Path) -> dict[str, Path]:
    """Write ``zone_truth.zarr`` (zone products implied by ``weather``) and ``zones.yaml`` into ``out_dir``."""
    import yaml


    out = Path(out_dir)
    with atomic_path(out / "zone_truth.zarr") as tmp:
        to_zarr(zone_truth(weather, zones).compute(), tmp)
    with atomic_path(out / "zones.yaml") as tmp:
        tmp.write_text(yaml.safe_dump({"zones": zones_to_dicts(zones)}, sort_keys=False))
    return {"zone_truth": out / "zone_truth.zarr", "zones": out / "zones.yaml"}


def write_sample_world(cfg: SampleWorldConfig, out_dir: str | Path, train_period: tuple[str, str],
                       progress: bool = True) -> dict[str, Path]:
    """Generate the sample world and write weather.zarr (+ training-split statistics), zones and truth."""

    out = Path(out_dir)
    zones = load_zones(cfg.zones)
    weather = generate_weather(cfg, progress=progress)
    weather_path = write_canonical(weather, out / "weather.zarr")
    write_stats(compute_stats(weather, train_period), weather_path)
    return {"weather": weather_path, **write_zone_files(weather, zones, out)}
