"""Train the regional head on hindcasts: forecast weather → physical CFs → corrected CFs vs zone truth.

The head learns to correct the chain's forecasts (model output statistics on reforecasts), so it trains
on hindcasts over ``train.head.splits``, chooses its epoch count and calibrates its quantile band
(split-conformal) on the last quarter of them in time, and is scored on hindcasts from the test split,
which it never sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from carbonsync.core.checks import at_least, fail, non_empty, one_of, positive
from carbonsync.core.logs import Progress, get_logger
from carbonsync.data.config import Splits
from carbonsync.data.store import open_canonical, open_zone_truth
from carbonsync.forecast.rollout import Forecaster
from carbonsync.models.head import TARGETS, HeadFeatures, RegionalHead, calibrate_band, fit_head, quantile_coverage
from carbonsync.models.package import save_package
from carbonsync.physics.zones import Zone

log = get_logger(__name__)


def hindcast_init_times(period: tuple[str, str], every_h: int, lead_hours: int) -> pd.DatetimeIndex:
    """Init times every ``every_h`` hours whose whole forecast stays inside ``period``."""
    start, end = pd.Timestamp(period[0]), pd.Timestamp(period[1])
    last = end - pd.Timedelta(hours=lead_hours)
    if last < start:
        raise ValueError(f"period {period} is shorter than the lead time ({lead_hours} h)")
    return pd.date_range(start, last, freq=f"{every_h}h")


def hindcast_features(forecaster: Forecaster, weather: xr.Dataset, truth: xr.Dataset, zones: list[Zone],
                      init_times: pd.DatetimeIndex, lead_hours: int, progress: bool = True, batch: int = 16
                      ) -> tuple[HeadFeatures, torch.Tensor]:
    """Head features and observed targets stacked over hindcasts (the backbone steps ``batch`` at a time)."""
    feats, targets = [], []
    hindcasts = forecaster.forecasts(weather, init_times, lead_hours, zones, batch=batch)
    for _, _, physical in Progress(hindcasts, total=len(init_times), desc="head: hindcasts", enabled=progress):
        f = forecaster.head_features(physical, zones)  # lead 0 included: there the head should change nothing
        feats.append(f)
        targets.append(f.targets(truth))
    first = feats[0]
    stacked = HeadFeatures(torch.cat([f.x for f in feats]), torch.cat([f.zone_index for f in feats]),
                           np.concatenate([f.times for f in feats]), first.zone_ids, first.zones)
    return stacked, torch.cat(targets)


def _rows(feats: HeadFeatures, time_index: np.ndarray) -> torch.Tensor:
    """Feature rows (time-major, one per zone) of the given time indices."""
    nz = len(feats.zone_ids)
    return torch.as_tensor((np.asarray(time_index)[:, None] * nz + np.arange(nz)).ravel())


def _select_times(feats: HeadFeatures, time_index: np.ndarray) -> HeadFeatures:
    rows = _rows(feats, time_index)
    return HeadFeatures(feats.x[rows], feats.zone_index[rows], feats.times[time_index], feats.zone_ids, feats.zones)


def split_in_time(feats: HeadFeatures, targets: torch.Tensor, fraction: float = 0.75
                  ) -> tuple[tuple[HeadFeatures, torch.Tensor], tuple[HeadFeatures, torch.Tensor]]:
    """The first ``fraction`` (in time) of the hindcast rows and the rest, each with its targets."""
    order = np.argsort(feats.times, kind="stable")
    cut = int(len(order) * fraction)
    return tuple((_select_times(feats, part), targets[_rows(feats, part)]) for part in (order[:cut], order[cut:]))


def early_stopping_epochs(fit: tuple[HeadFeatures, torch.Tensor], held: tuple[HeadFeatures, torch.Tensor],
                          max_epochs: int, options: dict) -> tuple[int, RegionalHead]:
    """Epochs that minimise the loss on ``held`` (the last quarter of the hindcasts), fitting on ``fit``
    (the head starts from the physical capacity factors, so few epochs stay close to them), and the head
    fitted on ``fit`` for that many epochs."""
    model, history = fit_head(*fit, epochs=max_epochs, valid=held, restore_best=True, **options)
    return int(np.argmin(history["val_loss"])) + 1, model


def _rmse(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    ok = torch.isfinite(target)
    err = torch.where(ok, pred - target, torch.zeros_like(pred))
    return (err.pow(2).sum(0) / ok.sum(0)).sqrt().numpy()


@dataclass
class HeadModelConfig:
    """The ``head`` node (``model@head``, ``configs/model/head_mlp.yaml``): physical capacity factors
    (windpowerlib, pvlib) plus a learned per-zone correction with quantiles."""

    kind: str = "head"
    turbine: str = "E-126/4200"   # windpowerlib turbine type of every zone's wind farms
    hidden: int = 32
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])

    def __post_init__(self) -> None:
        one_of(self, "kind", ["head"])
        non_empty(self, "turbine", "quantiles")
        at_least(self, 1, "hidden")
        q = list(self.quantiles)
        if any(not 0 < v < 1 for v in q) or any(b <= a for a, b in zip(q, q[1:], strict=False)):
            raise fail("quantiles", q, "must be increasing and strictly between 0 and 1")


@dataclass
class HeadTrainConfig:
    """The ``train.head`` node."""

    epochs: int = 300            # the most; the count is chosen on the last quarter of the hindcasts
    lr: float = 1.0e-2
    hindcast_every_h: int = 48   # init times of the head's training and test hindcasts
    # Hindcasts to fit the head on (MOS on reforecasts). The backbone trained on the train split, so those
    # forecasts are a little too good; the epoch count is tuned on the last quarter in time (the val split).
    splits: list[str] = field(default_factory=lambda: ["train", "val"])

    def __post_init__(self) -> None:
        at_least(self, 1, "epochs", "hindcast_every_h")
        positive(self, "lr")
        non_empty(self, "splits")
        if any(s not in ("train", "val") for s in self.splits) or len(set(self.splits)) != len(self.splits):
            raise fail("splits", list(self.splits), "must name train and/or val, once each (the head is scored on test)")


def train_head(model_cfg: HeadModelConfig, train_cfg: HeadTrainConfig, splits: Splits, weather_path: str | Path,
               truth_path: str | Path, zones: list[Zone], packages: str | Path, *, lead_hours: int, seed: int = 0,
               threads: int = 1, progress: bool = True) -> tuple[Path, dict]:
    """Fit the head on hindcasts (``train.head.splits``); score it against the physical CFs on test hindcasts
    of ``lead_hours`` (the forecast's lead time). The fits run on ``threads`` intra-op threads (``train.threads``;
    the same weights for the same count)."""
    hcfg, tcfg = model_cfg, train_cfg
    forecaster = Forecaster.from_dir(packages, with_head=False)
    forecaster.turbine = str(hcfg.turbine)
    weather = open_canonical(weather_path)
    truth = open_zone_truth(truth_path, list(TARGETS))  # the head's targets, checked (no NaN/inf, in [0, 1])
    lead = int(lead_hours)
    fit_periods = [splits.period(s) for s in tcfg.splits]
    fit_inits = pd.DatetimeIndex(np.concatenate([
        hindcast_init_times(p, int(tcfg.hindcast_every_h), lead).values for p in fit_periods]))
    train_x, train_y = hindcast_features(forecaster, weather, truth, zones, fit_inits, lead, progress)
    test_inits = hindcast_init_times(splits.period("test"), int(tcfg.hindcast_every_h), lead)
    test_x, test_y = hindcast_features(forecaster, weather, truth, zones, test_inits, lead, progress)
    options = {"quantiles": list(hcfg.quantiles), "hidden": int(hcfg.hidden), "lr": float(tcfg.lr),
               "seed": int(seed), "num_threads": int(threads)}
    fit, held = split_in_time(train_x, train_y)
    # the band is calibrated on the held quarter by a head fitted without it, then carried to the final head
    epochs, held_model = early_stopping_epochs(fit, held, int(tcfg.epochs), options)
    widening = calibrate_band(held_model, *held)
    model, history = fit_head(train_x, train_y, epochs=epochs, **options)
    model.band_widening.copy_(held_model.band_widening)
    with torch.no_grad():
        corrected = model(test_x.x, test_x.zone_index).point
    scores = {
        "physical_rmse": dict(zip(("wind_cf", "solar_cf"), _rmse(test_x.phys, test_y).tolist(), strict=True)),
        "head_rmse": dict(zip(("wind_cf", "solar_cf"), _rmse(corrected, test_y).tolist(), strict=True)),
        "epochs": epochs, "fit_on": f"hindcasts from splits {list(tcfg.splits)}",
        "tuned_on": "the last quarter (in time) of those hindcasts",
        "scored_on": "test split hindcasts", "final_loss": history["loss"][-1],
        "band_widening_logit": widening, "band_calibrated_on": "the last quarter (in time) of the fit hindcasts",
    }
    levels = list(model.quantile_levels)
    if 0.1 in levels and 0.9 in levels:
        scores["coverage_10_90"] = quantile_coverage(model, test_x, test_y, 0.1, 0.9)
    log.info("head on test hindcasts, RMSE physical -> corrected: " + ", ".join(
        f"{k} {scores['physical_rmse'][k]:.3f} -> {scores['head_rmse'][k]:.3f}" for k in ("wind_cf", "solar_cf")))
    if "coverage_10_90" in scores:
        cov = scores["coverage_10_90"]
        log.info("head 10-90 % band coverage on test hindcasts (calibrated: 0.80): " + ", ".join(
            f"{k} {cov[k]:.2f} (n={cov['n_' + k]})" for k in ("wind_cf", "solar_cf")))
    config = {"zone_ids": list(model.zone_ids), "n_features": int(train_x.x.shape[1]), "hidden": int(hcfg.hidden),
              "embed_dim": model.embedding.embedding_dim, "quantiles": list(model.quantile_levels)}
    path = save_package(
        Path(packages) / "head", model, kind="head", config=config, channels=[],
        grid=forecaster.grid, dt_hours=1, stats={},
        extra={"scores": scores, "turbine": forecaster.turbine, "inputs": ["u100", "v100", "ssrd", "t2m"]},
    )
    return path, scores
