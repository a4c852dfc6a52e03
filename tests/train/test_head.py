"""Head hindcasts: the batched hindcast design is the one-forecast-at-a-time one; selection folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.core.errors import ConfigError
from carbonsync.forecast.rollout import Forecaster
from carbonsync.models.package import load_package
from carbonsync.physics.zones import load_zones
from carbonsync.train.head import HeadModelConfig, fold_origins, hindcast_design
from tests.helpers.chain import save_backbone, save_irradiance, tiny_weather

ZONES = load_zones(Path(__file__).resolve().parents[2] / "configs" / "zones" / "sample_world.yaml")


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory: pytest.TempPathFactory) -> Forecaster:
    root = tmp_path_factory.mktemp("head")
    ds = tiny_weather()
    save_backbone(root / "backbone", ds, damped=True)
    save_irradiance(root / "irradiance", ds)
    return Forecaster(load_package(root / "backbone"), load_package(root / "irradiance"))


def test_batched_hindcast_design_equals_the_per_init_one(forecaster) -> None:
    ds = tiny_weather(periods=6)
    inits = pd.DatetimeIndex(ds.time.values[:5])
    hours = pd.date_range(inits[0], periods=40, freq="h")
    rng = np.random.default_rng(3)
    truth = xr.Dataset({v: (("time", "zone"), rng.uniform(0, 1, (len(hours), len(ZONES))))
                        for v in ("wind_cf", "solar_cf")}, coords={"time": hours, "zone": [z.id for z in ZONES]})
    design = hindcast_design(forecaster, ds, truth, ZONES, inits, 12, progress=False, batch=2)
    ids = [z.id for z in ZONES]
    one_by_one = pd.concat([forecaster.head_design(forecaster.forecast(ds, t, 12, ZONES)[1], ids, truth).frame
                            for t in inits], ignore_index=True)
    pd.testing.assert_frame_equal(design.frame, one_by_one, rtol=1e-5, atol=1e-6)
    assert len(design) == len(inits) * 13 * len(ZONES)
    assert (design.issue_times == design.frame["issue_time"]).all() and set(design.lead_h) == set(range(13))
    expected = truth["wind_cf"].sel(time=design.times.values[:len(ZONES)]).values.diagonal()
    np.testing.assert_allclose(design.observed("wind_cf")[:len(ZONES)], expected)


def test_fold_origins_split_the_latest_issue_times_into_blocks() -> None:
    issues = pd.date_range("2020-01-01", periods=20, freq="2D")
    origins = fold_origins(issues, folds=3, fraction=0.3)
    assert origins[0] == issues[14] and origins[-1] == issues[-1] + pd.Timedelta(hours=1)
    assert len(origins) == 4 and all(a < b for a, b in zip(origins, origins[1:], strict=False))
    with pytest.raises(ValueError, match="cannot give 3 selection folds"):
        fold_origins(issues[:3], folds=3, fraction=0.3)


def test_the_head_config_builds_one_seeded_candidate_per_learner() -> None:
    cfg = HeadModelConfig(learners=["prior", "lightgbm"], params={"lightgbm": {"n_estimators": 50}})
    prior, boosted = cfg.candidates(seed=7, threads=2)
    assert prior.learner == "prior" and prior.levels == (0.1, 0.5, 0.9)
    assert boosted.params == {"random_state": 7, "n_jobs": 2, "n_estimators": 50}
    with pytest.raises(ConfigError, match="learners"):
        HeadModelConfig(learners=["forest"])
