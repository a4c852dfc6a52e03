"""A cheap stand-in forecast with exactly the layout of :meth:`Forecaster.forecast`, for exercising and timing the
forecast store without trained models (tests of the export machinery, ``benchmarks/export_read.py``).

Values are a deterministic function of the init time (smooth fields plus seeded noise), never a prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.data import lexicon
from carbonsync.physics.grid import Grid

QUANTILES = (0.1, 0.5, 0.9)
TINY_GRID = Grid(17, 32)
GRIDDED_VARIABLES = ("u100", "v100", "ssrd", "tcc", "t2m", "z500")  # as the chain writes (no torch import here)


def synthetic_forecast(init_time: str | pd.Timestamp, lead_hours: int = 48, grid: Grid = TINY_GRID,
                       zones: Sequence[str] = ("north_sea", "iberia", "sahara", "nordics"),
                       quantiles: Sequence[float] = QUANTILES) -> tuple[xr.Dataset, xr.Dataset]:
    """Hourly ``gridded(time, lat, lon)`` and ``zones(time, zone)`` (+ ``(quantile, time, zone)``) from ``init_time``."""
    init = pd.Timestamp(init_time)
    times = pd.date_range(init, periods=lead_hours + 1, freq="h")
    rng = np.random.default_rng(int(init.value // 60_000_000_000) % (2**32))
    hours = np.arange(len(times), dtype=np.float32)[:, None, None]
    lat = np.deg2rad(grid.lat.astype(np.float32))[None, :, None]
    lon = np.deg2rad(grid.lon.astype(np.float32))[None, None, :]
    base = np.sin(lon + hours * np.float32(2 * np.pi / 24)) * np.cos(lat)
    scale = {"u100": 10.0, "v100": 6.0, "ssrd": 1.5e6, "tcc": 0.5, "t2m": 15.0, "z500": 800.0}
    offset = {"u100": 0.0, "v100": 0.0, "ssrd": 1.5e6, "tcc": 0.5, "t2m": 280.0, "z500": 55000.0}
    gridded = {}
    for i, name in enumerate(GRIDDED_VARIABLES):
        noise = rng.standard_normal(base.shape, dtype=np.float32) * np.float32(0.05)
        values = offset[name] + scale[name] * (np.roll(base, i, axis=2) + noise) * (1 if name != "tcc" else 0.9)
        if name == "ssrd":
            values = np.maximum(values, 0)
        gridded[name] = (("time", "lat", "lon"), values.astype(np.float32), lexicon.get(name).attrs)
    g = xr.Dataset(gridded, coords={"time": times.values, **grid.coords()}, attrs={"grid": grid.attr()})

    n_t, n_z = len(times), len(zones)
    phase = rng.uniform(0, 2 * np.pi, n_z)
    t = np.arange(n_t)[:, None]
    wind = 0.4 + 0.3 * np.sin(2 * np.pi * t / 37 + phase)
    solar = np.clip(np.sin(2 * np.pi * (t + init.hour) / 24 + phase), 0, None) * 0.6
    share = np.clip(0.5 * wind + 0.5 * solar, 0, 1)
    spread = np.linspace(-0.1, 0.1, len(quantiles))[:, None, None]
    unit = {"units": "1"}
    products = {
        "wind_cf": (("time", "zone"), wind, {"long_name": "Wind capacity factor", **unit}),
        "solar_cf": (("time", "zone"), solar, {"long_name": "Solar PV capacity factor", **unit}),
        "renewable_share": (("time", "zone"), share, {"long_name": "Renewable share of demand", **unit}),
        "carbon_intensity": (("time", "zone"), (1 - share) * 450.0,
                             {"long_name": "Carbon intensity of supply", "units": "gCO2eq kWh-1"}),
        "physical_wind_cf": (("time", "zone"), np.clip(wind * 1.05, 0, 1), {"long_name": "Physical wind CF", **unit}),
        "physical_solar_cf": (("time", "zone"), solar * 0.95, {"long_name": "Physical solar CF", **unit}),
    }
    for name in ("wind_cf", "solar_cf", "renewable_share"):
        q = np.clip(products[name][1][None] + spread, 0, 1)
        products[f"{name}_quantile"] = (("quantile", "time", "zone"), q, {"long_name": f"{name} quantiles", **unit})
    z = xr.Dataset(products, coords={"time": times.values, "zone": list(zones), "quantile": list(quantiles),
                                     "zone_name": ("zone", [s.replace("_", " ").title() for s in zones])})
    return g, z
