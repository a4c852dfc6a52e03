"""The renewables model: prior + learned residual per target, quantiles calibrated by lead, rolling origin.

``forecast = clip(prior + learner(features, prior))`` for every target of a :class:`Design`. The quantiles
are the point forecast plus empirical quantiles of out-of-sample residuals in lead buckets
(split-conformal): :meth:`RenewablesModel.fit` holds out the latest ``calibration_fraction`` of issue times,
fits the learner on the rows observed before them, measures on the held-out part how far to trust it (with ``shrink``, the
least-squares scale in [0, 1] of its correction: prior + scale * correction) and the residuals' quantiles by
lead, then refits the learner on all rows. :func:`rolling_origin` predicts each block of issue times with a model fitted
only on rows observed before the block; :func:`select` chooses a configuration per target by its mean score
over several such folds, so validation always predicts a later period. :meth:`RenewablesModel.state` is JSON
metadata plus named arrays (:meth:`RenewablesModel.from_state` restores it), for model packages without pickle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from carbonsync.models.renewables.design import Design, RenewablesError
from carbonsync.models.renewables.learners import Learner, build_learner

__all__ = ["RenewablesConfig", "RenewablesModel", "monthly_origins", "rmse", "rolling_origin", "select"]

Score = Callable[[np.ndarray, np.ndarray], float]
MIN_BUCKET_ROWS = 48


def rmse(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error over the rows where both are finite."""
    ok = np.isfinite(observed) & np.isfinite(predicted)
    if not ok.any():
        raise RenewablesError("no row has both an observation and a prediction")
    return float(np.sqrt(np.mean((predicted[ok] - observed[ok]) ** 2)))


@dataclass(frozen=True)
class RenewablesConfig:
    """One configuration of the model's learned part and of its quantile calibration.

    ``lead_edges_h`` are the upper edges of the lead buckets the quantiles are calibrated in (the last bucket
    is open); ``half_life_days`` weights training rows by recency (``None``: uniform).
    """

    learner: str = "lightgbm"
    params: Mapping[str, Any] = field(default_factory=dict)
    levels: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
    lead_edges_h: tuple[int, ...] = (6, 12, 24, 48, 96)
    calibration_fraction: float = 0.25
    half_life_days: float | None = None
    shrink: bool = True

    def __post_init__(self) -> None:
        if not all(0.0 < q < 1.0 for q in self.levels) or list(self.levels) != sorted(set(self.levels)):
            raise RenewablesError(f"levels must be increasing and inside (0, 1), got {self.levels}")
        if not 0.0 < self.calibration_fraction < 1.0:
            raise RenewablesError(f"calibration_fraction must be inside (0, 1), got {self.calibration_fraction}")
        if list(self.lead_edges_h) != sorted(set(self.lead_edges_h)) or any(e < 1 for e in self.lead_edges_h):
            raise RenewablesError(f"lead_edges_h must be increasing whole hours >= 1, got {self.lead_edges_h}")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise RenewablesError(f"half_life_days must be positive or None, got {self.half_life_days}")

    def describe(self) -> dict[str, Any]:
        return {"learner": self.learner, **dict(self.params),
                **({"half_life_days": self.half_life_days} if self.half_life_days else {})}

    def to_dict(self) -> dict[str, Any]:
        return {"learner": self.learner, "params": dict(self.params), "levels": list(self.levels),
                "lead_edges_h": list(self.lead_edges_h), "calibration_fraction": self.calibration_fraction,
                "half_life_days": self.half_life_days, "shrink": self.shrink}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RenewablesConfig:
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise RenewablesError(f"unknown RenewablesConfig key(s) {sorted(unknown)}")
        data = dict(data)
        for key in ("levels", "lead_edges_h"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def _bucket(lead_h: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges), lead_h, side="left")


def _recency_weights(issue_times: pd.DatetimeIndex, half_life_days: float | None) -> np.ndarray | None:
    if half_life_days is None:
        return None
    age_days = (issue_times.max() - issue_times) / pd.Timedelta(days=1)
    weights = 0.5 ** (np.asarray(age_days, dtype=float) / half_life_days)
    return weights / weights.mean()


def _conformal_quantiles(residuals: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Split-conformal quantiles of residuals: level q taken at rank ceil((n + 1) q) (clamped to the sample)."""
    r = np.sort(residuals)
    n = len(r)
    ranks = np.clip(np.ceil((n + 1) * np.asarray(levels)) - 1, 0, n - 1).astype(int)
    low = np.asarray(levels) < 0.5
    ranks[low] = np.clip(np.floor((n + 1) * np.asarray(levels)[low]) - 1, 0, n - 1).astype(int)
    return r[ranks]


class _TargetModel:
    """The learned part and the residual quantiles by lead bucket of one target."""

    def __init__(self, config: RenewablesConfig) -> None:
        self.config = config

    def _fit_learner(self, design: Design, target: str, rows: np.ndarray) -> Learner:
        learner = build_learner(self.config.learner, dict(self.config.params))
        residual = design.observed(target) - design.prior(target)
        weights = _recency_weights(design.issue_times[rows], self.config.half_life_days)
        return learner.fit(design.x(target)[rows].reset_index(drop=True), residual[rows], weights)

    def fit(self, design: Design, target: str) -> _TargetModel:
        y, prior = design.observed(target), design.prior(target)
        rows = np.isfinite(y) & np.isfinite(prior) & design.active(target)
        if rows.sum() < 2 * MIN_BUCKET_ROWS:
            raise RenewablesError(f"target {target!r}: {int(rows.sum())} training rows with an observation and a "
                                  f"prior; at least {2 * MIN_BUCKET_ROWS} are needed")
        issues = np.sort(design.issue_times[rows].unique())
        cut = issues[int(np.floor(len(issues) * (1.0 - self.config.calibration_fraction)))]
        # the learner that is calibrated sees only targets observed before the first held-out issue
        early, late = rows & (design.times < cut), rows & (design.issue_times >= cut)
        if early.sum() < MIN_BUCKET_ROWS or late.sum() < MIN_BUCKET_ROWS:
            raise RenewablesError(f"target {target!r}: too few issue times to hold out a calibration part")
        learner = self._fit_learner(design, target, early)
        held = design.select(late)
        self.scale = 1.0
        if self.config.shrink:
            correction = learner.predict(held.x(target))
            wanted = held.observed(target) - held.prior(target)
            power = float(np.dot(correction, correction))
            self.scale = float(np.clip(np.dot(wanted, correction) / power, 0.0, 1.0)) if power > 0 else 0.0
        residual = held.observed(target) - self._point(learner, held, target)
        buckets = _bucket(held.lead_h, self.config.lead_edges_h)
        pooled = _conformal_quantiles(residual, self.config.levels)
        self.offsets = np.tile(pooled, (len(self.config.lead_edges_h) + 1, 1))
        self.bucket_rows = np.zeros(len(self.config.lead_edges_h) + 1, dtype=int)
        for b in np.unique(buckets):
            in_bucket = buckets == b
            self.bucket_rows[b] = int(in_bucket.sum())
            if in_bucket.sum() >= MIN_BUCKET_ROWS:
                self.offsets[b] = _conformal_quantiles(residual[in_bucket], self.config.levels)
        self.learner = self._fit_learner(design, target, rows)
        self.bounds = design.bounds.get(target, (None, None))
        self.rows = int(rows.sum())
        return self

    def state(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"config": self.config.to_dict(), "scale": self.scale, "bounds": list(self.bounds), "rows": self.rows}
        arrays = {f"{prefix}offsets": self.offsets, f"{prefix}bucket_rows": self.bucket_rows,
                  **{f"{prefix}learner.{k}": v for k, v in self.learner.state().items()}}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str) -> _TargetModel:
        try:
            part = cls(RenewablesConfig.from_dict(meta["config"]))
            part.scale, part.rows = float(meta["scale"]), int(meta["rows"])
            part.bounds = tuple(meta["bounds"])
            part.offsets = np.asarray(arrays[f"{prefix}offsets"], dtype=float)
            part.bucket_rows = np.asarray(arrays[f"{prefix}bucket_rows"], dtype=int)
        except KeyError as err:
            raise RenewablesError(f"renewables model state lacks {err} for {prefix.rstrip('/')!r}") from None
        expected = (len(part.config.lead_edges_h) + 1, len(part.config.levels))
        if part.offsets.shape != expected:
            raise RenewablesError(f"{prefix}offsets has shape {part.offsets.shape}, expected {expected}")
        own = {k[len(f"{prefix}learner."):]: v for k, v in arrays.items() if k.startswith(f"{prefix}learner.")}
        part.learner = build_learner(part.config.learner, dict(part.config.params)).load_state(own)
        return part

    def _point(self, learner: Learner, design: Design, target: str) -> np.ndarray:
        prior = design.prior(target)
        point = prior + self.scale * learner.predict(design.x(target))
        low, high = design.bounds.get(target, (None, None))
        point = np.clip(point, low, high)
        return np.where(design.active(target), point, prior)

    def predict(self, design: Design, target: str) -> tuple[np.ndarray, np.ndarray]:
        point = self._point(self.learner, design, target)
        offsets = self.offsets[_bucket(design.lead_h, self.config.lead_edges_h)]
        quantiles = np.sort(point[:, None] + offsets, axis=1)
        quantiles = np.clip(quantiles, *self.bounds)
        inactive = ~design.active(target)
        quantiles[inactive] = design.prior(target)[inactive, None]
        return point, quantiles


class RenewablesModel:
    """Prior + learned residual for each target of a :class:`Design`, with lead-calibrated quantiles.

    ``configs`` maps targets to their :class:`RenewablesConfig`; ``config`` serves the others.
    """

    def __init__(self, config: RenewablesConfig | None = None,
                 configs: Mapping[str, RenewablesConfig] | None = None) -> None:
        self.config = config or RenewablesConfig()
        self.configs = dict(configs or {})

    def config_of(self, target: str) -> RenewablesConfig:
        return self.configs.get(target, self.config)

    def fit(self, design: Design) -> RenewablesModel:
        """Fit every target on the rows of ``design`` that have an observation."""
        self.targets = design.targets
        self.features = design.features
        self.parts = {t: _TargetModel(self.config_of(t)).fit(design, t) for t in design.targets}
        self.trained_until = design.times[np.isfinite(design.frame[list(design.targets)].to_numpy(float)).any(axis=1)].max()
        return self

    def _check(self, design: Design) -> None:
        if not hasattr(self, "parts"):
            raise RenewablesError("the model is not fitted")
        if design.features != self.features:
            raise RenewablesError(f"design features {list(design.features)} differ from the fitted "
                                  f"{list(self.features)}")
        missing = set(self.targets) - set(design.targets)
        if missing:
            raise RenewablesError(f"design lacks the fitted target(s) {sorted(missing)}")

    def predict(self, design: Design) -> pd.DataFrame:
        """The keys, and per target the point forecast ``<target>`` and quantiles ``<target>_q<level>``."""
        self._check(design)
        out = design.frame[["issue_time", "time", "lead_h", "zone"]].copy()
        for target, part in self.parts.items():
            point, quantiles = part.predict(design, target)
            out[target] = point
            for j, level in enumerate(part.config.levels):
                out[f"{target}_q{level:g}"] = quantiles[:, j]
        return out

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted model as JSON-able metadata and named arrays (no pickled objects)."""
        if not hasattr(self, "parts"):
            raise RenewablesError("the model is not fitted")
        meta: dict[str, Any] = {"targets": list(self.targets), "features": list(self.features),
                                "trained_until": str(self.trained_until), "parts": {}}
        arrays: dict[str, np.ndarray] = {}
        for target, part in self.parts.items():
            meta["parts"][target], own = part.state(f"{target}/")
            arrays.update(own)
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> RenewablesModel:
        """The model :meth:`state` described."""
        try:
            parts = {t: _TargetModel.from_state(meta["parts"][t], arrays, f"{t}/") for t in meta["targets"]}
            model = cls(configs={t: p.config for t, p in parts.items()})
            model.targets, model.features = tuple(meta["targets"]), tuple(meta["features"])
            model.trained_until = pd.Timestamp(meta["trained_until"])
        except KeyError as err:
            raise RenewablesError(f"renewables model state lacks {err}") from None
        model.parts = parts
        return model

    def describe(self) -> dict[str, Any]:
        return {"trained_until": str(self.trained_until),
                "targets": {t: {**p.config.describe(), "rows": p.rows, "scale": round(p.scale, 4),
                                "calibration_rows_by_lead": dict(zip(
                                    [f"<={e}h" for e in p.config.lead_edges_h] + [f">{p.config.lead_edges_h[-1]}h"],
                                    p.bucket_rows.tolist(), strict=True))}
                            for t, p in self.parts.items()}}


# --------------------------------------------------------------------------------------- rolling origin


def monthly_origins(start: str | pd.Timestamp, end: str | pd.Timestamp) -> list[pd.Timestamp]:
    """Month starts from ``start`` up to and including ``end`` (the last is the end of the last block)."""
    origins = list(pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="MS"))
    if len(origins) < 2:
        raise RenewablesError(f"need at least one whole month between {start} and {end}")
    return origins


def rolling_origin(design: Design, model: Callable[[], RenewablesModel],
                   origins: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """Out-of-sample predictions of the issue times in ``[origins[k], origins[k + 1])`` for every k, each by
    ``model()`` fitted on the rows whose target time is before ``origins[k]`` (observed by then)."""
    blocks = []
    for k, (origin, end) in enumerate(zip(origins[:-1], origins[1:], strict=True)):
        fit_rows = design.times < origin
        test_rows = (design.issue_times >= origin) & (design.issue_times < end)
        if not test_rows.any():
            continue
        fitted = model().fit(design.select(fit_rows))
        block = fitted.predict(design.select(test_rows))
        block.insert(0, "fold", k)
        blocks.append(block)
    if not blocks:
        raise RenewablesError(f"no issue time of the design falls in {origins[0]} ... {origins[-1]}")
    return pd.concat(blocks, ignore_index=True)


def _observed_at(design: Design, predictions: pd.DataFrame, target: str) -> np.ndarray:
    keys = ["issue_time", "time", "zone"]
    truth = design.frame[[*keys, target]] if target in design.frame.columns else design.frame[keys].assign(**{target: np.nan})
    return predictions[keys].merge(truth, on=keys, how="left")[target].to_numpy(dtype=float)


def select(design: Design, candidates: Sequence[RenewablesConfig], origins: Sequence[pd.Timestamp],
           scores: Mapping[str, Score] | None = None) -> tuple[dict[str, RenewablesConfig], dict[str, Any]]:
    """Per target, the candidate with the best mean score over the rolling-origin folds of ``origins``.

    ``scores`` maps targets to ``score(observed, predicted)`` (lower is better; default :func:`rmse`). Returns
    the chosen configuration per target and a report of every candidate's fold scores.
    """
    if not candidates:
        raise RenewablesError("select needs at least one candidate configuration")
    scores = dict(scores or {})
    table: dict[str, list[list[float]]] = {t: [] for t in design.targets}
    for config in candidates:
        predictions = rolling_origin(design, lambda config=config: RenewablesModel(config), origins)
        for target in design.targets:
            score = scores.get(target, rmse)
            observed = _observed_at(design, predictions, target)
            folds = []
            for _, rows in predictions.groupby("fold").groups.items():
                folds.append(score(observed[rows], predictions[target].to_numpy(float)[rows]))
            table[target].append(folds)
    chosen, report = {}, {"folds": [[str(a), str(b)] for a, b in zip(origins[:-1], origins[1:], strict=True)],
                          "targets": {}}
    for target, rows in table.items():
        means = [float(np.mean(r)) for r in rows]
        best = int(np.argmin(means))
        chosen[target] = candidates[best]
        report["targets"][target] = {"chosen": candidates[best].describe(), "candidates": [
            {**c.describe(), "fold_scores": [round(s, 5) for s in r], "mean": round(m, 5)}
            for c, r, m in zip(candidates, rows, means, strict=True)]}
    return chosen, report

