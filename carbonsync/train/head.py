"""Train the regional head on hindcasts: forecast weather → physical CFs → corrected CFs vs zone truth.

The head is the renewables model family (:mod:`carbonsync.models.head`) on the gridded adapter: it learns to
correct the chain's forecasts (model output statistics on reforecasts). It trains on hindcasts over
``train.head.splits``; the learner of each target is chosen among ``head.learners`` by its mean RMSE over
``train.head.folds`` rolling-origin folds on the latest of those hindcasts (each fold predicts later issue times
from a model fitted on earlier ones); the quantiles are calibrated by lead inside the fit
(split-conformal). It is scored on hindcasts from the test split, which neither step sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.checks import at_least, fail, non_empty, one_of
from carbonsync.core.logs import Progress, get_logger
from carbonsync.data.config import Splits
from carbonsync.data.store import open_canonical, open_zone_truth
from carbonsync.forecast.rollout import Forecaster
from carbonsync.models.head import TARGETS, RenewablesHead, fit_head
from carbonsync.models.package import save_package
from carbonsync.models.renewables import LEARNERS, Design, RenewablesConfig, rmse, select
from carbonsync.models.renewables.gridded import concat_designs
from carbonsync.physics.zones import Zone

log = get_logger(__name__)


def hindcast_init_times(period: tuple[str, str], every_h: int, lead_hours: int) -> pd.DatetimeIndex:
    """Init times every ``every_h`` hours whose whole forecast stays inside ``period``."""
    start, end = pd.Timestamp(period[0]), pd.Timestamp(period[1])
    last = end - pd.Timedelta(hours=lead_hours)
    if last < start:
        raise ValueError(f"period {period} is shorter than the lead time ({lead_hours} h)")
    return pd.date_range(start, last, freq=f"{every_h}h")


def hindcast_design(forecaster: Forecaster, weather: xr.Dataset, truth: xr.Dataset, zones: list[Zone],
                    init_times: pd.DatetimeIndex, lead_hours: int, progress: bool = True, batch: int = 16) -> Design:
    """The head's design stacked over hindcasts, with observed targets (the backbone steps ``batch`` at a time)."""
    parts = []
    hindcasts = forecaster.forecasts(weather, init_times, lead_hours, zones, batch=batch)
    for _, _, physical in Progress(hindcasts, total=len(init_times), desc="head: hindcasts", enabled=progress):
        parts.append(forecaster.head_design(physical, [z.id for z in zones], truth))
    return concat_designs(parts)


def fold_origins(issue_times: pd.DatetimeIndex, folds: int, fraction: float) -> list[pd.Timestamp]:
    """``folds`` + 1 origins splitting the latest ``fraction`` of the issue times into ``folds`` blocks; the last
    origin is just after the last issue time."""
    issues = pd.DatetimeIndex(sorted(issue_times.unique()))
    first = int(np.floor(len(issues) * (1.0 - fraction)))
    if first < 2 or len(issues) - first < folds:
        raise ValueError(f"{len(issues)} hindcast issue times cannot give {folds} selection folds over their "
                         f"latest {fraction:.0%}; hindcast more often (train.head.hindcast_every_h) or use fewer folds")
    cuts = [issues[first + (len(issues) - first) * k // folds] for k in range(folds)]
    return [*cuts, issues[-1] + pd.Timedelta(hours=1)]


@dataclass
class HeadModelConfig:
    """The ``head`` node (``model@head``, ``configs/model/head_renewables.yaml``): physical capacity factors
    (windpowerlib, pvlib) plus a learned correction (the renewables family) with quantiles calibrated by lead."""

    kind: str = "head"
    turbine: str = "E-126/4200"   # windpowerlib turbine type of every zone's wind farms
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])
    # candidate learners (carbonsync.models.renewables.LEARNERS), one chosen per target by rolling-origin folds
    learners: list[str] = field(default_factory=lambda: ["prior", "ridge", "lightgbm"])
    params: dict[str, Any] = field(default_factory=dict)   # per learner name, keyword arguments of the learner
    lead_edges_h: list[int] = field(default_factory=lambda: [6, 12, 24, 48, 96])   # quantile calibration buckets

    def __post_init__(self) -> None:
        one_of(self, "kind", ["head"])
        non_empty(self, "turbine", "quantiles", "learners")
        q = list(self.quantiles)
        if any(not 0 < v < 1 for v in q) or any(b <= a for a, b in zip(q, q[1:], strict=False)):
            raise fail("quantiles", q, "must be increasing and strictly between 0 and 1")
        unknown = [name for name in self.learners if name not in LEARNERS]
        if unknown:
            raise fail("learners", list(self.learners), f"{unknown} are not registered learners {sorted(LEARNERS)}")
        stray = [name for name in self.params if name not in self.learners]
        if stray:
            raise fail("params", sorted(self.params), f"{stray} are not among the learners {list(self.learners)}")
        edges = list(self.lead_edges_h)
        if edges != sorted(set(edges)) or any(e < 1 for e in edges):
            raise fail("lead_edges_h", edges, "must be increasing whole hours >= 1")

    def candidates(self, seed: int = 0, threads: int = 1) -> list[RenewablesConfig]:
        """One :class:`RenewablesConfig` per learner, seeded (LightGBM's ``random_state``, the net's ``seed``)."""
        seeded = {"lightgbm": {"random_state": seed, "n_jobs": threads}, "mlp": {"seed": seed}}
        return [RenewablesConfig(learner=name, params={**seeded.get(name, {}), **dict(self.params.get(name) or {})},
                                 levels=tuple(float(v) for v in self.quantiles),
                                 lead_edges_h=tuple(int(e) for e in self.lead_edges_h))
                for name in self.learners]


@dataclass
class HeadTrainConfig:
    """The ``train.head`` node."""

    hindcast_every_h: int = 48   # init times of the head's training and test hindcasts
    # Hindcasts to fit the head on (MOS on reforecasts). The backbone trained on the train split, so those
    # forecasts are a little too good; the learner is chosen on the latest of them (which cover the val split).
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    folds: int = 3                    # rolling-origin folds that choose the learner of each target
    selection_fraction: float = 0.4   # the latest share of the fit hindcasts' issue times the folds predict

    def __post_init__(self) -> None:
        at_least(self, 1, "hindcast_every_h", "folds")
        non_empty(self, "splits")
        if any(s not in ("train", "val") for s in self.splits) or len(set(self.splits)) != len(self.splits):
            raise fail("splits", list(self.splits), "must name train and/or val, once each (the head is scored on test)")
        if not 0.0 < float(self.selection_fraction) < 1.0:
            raise fail("selection_fraction", self.selection_fraction, "must be strictly between 0 and 1")


def _scores(head: RenewablesHead, test: Design) -> dict[str, Any]:
    """RMSE of the physical CFs and of the head, by lead bucket too, and the 10-90 % band coverage."""
    predicted = head(test)
    levels = list(head.levels)
    edges = list(head.model.config_of(TARGETS[0]).lead_edges_h)
    buckets = np.searchsorted(np.asarray(edges), test.lead_h, side="left")
    names = [f"<={e}h" for e in edges] + [f">{edges[-1]}h"]
    scores: dict[str, Any] = {"physical_rmse": {}, "head_rmse": {}, "head_rmse_by_lead": {}, "physical_rmse_by_lead": {}}
    for target in TARGETS:
        y, prior, point = test.observed(target), test.prior(target), predicted[target].to_numpy(float)
        scores["physical_rmse"][target], scores["head_rmse"][target] = rmse(y, prior), rmse(y, point)
        for key, values in (("head_rmse_by_lead", point), ("physical_rmse_by_lead", prior)):
            scores[key][target] = {names[b]: rmse(y[buckets == b], values[buckets == b]) for b in np.unique(buckets)}
    if 0.1 in levels and 0.9 in levels:
        coverage: dict[str, float] = {}
        for target in TARGETS:
            y = test.observed(target)
            use = np.isfinite(y) & (test.prior(target) > 0.05 if target == "solar_cf" else True)
            low, high = predicted[f"{target}_q0.1"].to_numpy(float), predicted[f"{target}_q0.9"].to_numpy(float)
            coverage[target] = float(np.mean((y[use] >= low[use]) & (y[use] <= high[use])))
            coverage[f"n_{target}"] = int(use.sum())
        scores["coverage_10_90"] = coverage
    return scores


def train_head(model_cfg: HeadModelConfig, train_cfg: HeadTrainConfig, splits: Splits, weather_path: str | Path,
               truth_path: str | Path, zones: list[Zone], packages: str | Path, *, lead_hours: int, seed: int = 0,
               threads: int = 1, progress: bool = True) -> tuple[Path, dict]:
    """Fit the head on hindcasts (``train.head.splits``), the learner of each target chosen by rolling-origin
    folds on the latest of them; score it against the physical CFs on test hindcasts of ``lead_hours`` (the
    forecast's lead time)."""
    hcfg, tcfg = model_cfg, train_cfg
    forecaster = Forecaster.from_dir(packages, with_head=False)
    forecaster.turbine = str(hcfg.turbine)
    weather = open_canonical(weather_path)
    truth = open_zone_truth(truth_path, list(TARGETS)).load()  # the head's targets, checked (no NaN/inf, in [0, 1])
    lead = int(lead_hours)
    fit_inits = pd.DatetimeIndex(np.concatenate([
        hindcast_init_times(splits.period(s), int(tcfg.hindcast_every_h), lead).values for s in tcfg.splits]))
    fit_design = hindcast_design(forecaster, weather, truth, zones, fit_inits, lead, progress)
    test_inits = hindcast_init_times(splits.period("test"), int(tcfg.hindcast_every_h), lead)
    test_design = hindcast_design(forecaster, weather, truth, zones, test_inits, lead, progress)
    candidates = hcfg.candidates(seed=int(seed), threads=int(threads))
    origins = fold_origins(fit_design.issue_times, int(tcfg.folds), float(tcfg.selection_fraction))
    log.info("head: choosing among %s per target over %d rolling-origin folds from %s", list(hcfg.learners),
             int(tcfg.folds), origins[0])
    chosen, selection = select(fit_design, candidates, origins)
    head = fit_head(fit_design, chosen)
    scores = {
        **_scores(head, test_design),
        "chosen": {t: chosen[t].describe() for t in TARGETS}, "selection": selection,
        "model": head.model.describe(),
        "fit_on": f"hindcasts from splits {list(tcfg.splits)} ({len(fit_inits)} init times)",
        "tuned_on": f"{int(tcfg.folds)} rolling-origin folds over the latest {float(tcfg.selection_fraction):.0%} "
                    "of those hindcasts' issue times",
        "band_calibrated_on": "the latest quarter (in issue time) of the fit hindcasts, by lead",
        "scored_on": f"test split hindcasts ({len(test_inits)} init times)",
    }
    log.info("head on test hindcasts, RMSE physical -> corrected: " + ", ".join(
        f"{k} {scores['physical_rmse'][k]:.3f} -> {scores['head_rmse'][k]:.3f} ({chosen[k].learner})" for k in TARGETS))
    if "coverage_10_90" in scores:
        cov = scores["coverage_10_90"]
        log.info("head 10-90 %% band coverage on test hindcasts (calibrated: 0.80): %s", ", ".join(
            f"{k} {cov[k]:.2f} (n={cov['n_' + k]})" for k in TARGETS))
    path = save_package(
        Path(packages) / "head", head, kind="head", config=None, channels=[],
        grid=forecaster.grid, dt_hours=1, stats={},
        extra={"scores": scores, "turbine": forecaster.turbine, "inputs": ["u100", "v100", "ssrd", "t2m"]},
    )
    return path, scores
