"""Head hindcasts: the batched hindcast features are the one-forecast-at-a-time ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from carbonsync.forecast.rollout import Forecaster
from carbonsync.models.package import load_package
from carbonsync.physics.zones import load_zones
from carbonsync.train.head import hindcast_features
from tests.helpers.chain import save_backbone, save_irradiance, tiny_weather

ZONES = load_zones(Path(__file__).resolve().parents[2] / "configs" / "zones" / "sample_world.yaml")


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory: pytest.TempPathFactory) -> Forecaster:
    root = tmp_path_factory.mktemp("head")
    ds = tiny_weather()
    save_backbone(root / "backbone", ds, damped=True)
    save_irradiance(root / "irradiance", ds)
    return Forecaster(load_package(root / "backbone"), load_package(root / "irradiance"))


def test_batched_hindcast_features_equal_the_per_init_ones(forecaster) -> None:
    ds = tiny_weather(periods=6)
    inits = pd.DatetimeIndex(ds.time.values[:5])
    hours = pd.date_range(inits[0], periods=40, freq="h")
    rng = np.random.default_rng(3)
    truth = xr.Dataset({v: (("time", "zone"), rng.uniform(0, 1, (len(hours), len(ZONES))))
                        for v in ("wind_cf", "solar_cf")}, coords={"time": hours, "zone": [z.id for z in ZONES]})
    x, y = hindcast_features(forecaster, ds, truth, ZONES, inits, 12, progress=False, batch=2)
    feats = [forecaster.head_features(forecaster.forecast(ds, t, 12, ZONES)[1], ZONES) for t in inits]
    np.testing.assert_allclose(x.x.numpy(), torch.cat([f.x for f in feats]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x.zone_index.numpy(), torch.cat([f.zone_index for f in feats]).numpy())
    np.testing.assert_array_equal(x.times, np.concatenate([f.times for f in feats]))
    np.testing.assert_array_equal(y.numpy(), torch.cat([f.targets(truth) for f in feats]).numpy())
    assert len(x.times) == len(inits) * 13
