"""The learned part of the renewables model: a residual regressor behind a small protocol, chosen by name.

- ``prior``: no correction (the physical prior or published forecast alone: the ablation and the anchor);
- ``ridge``: scikit-learn's ``Ridge`` on standardised features (inputs clipped to their training range, so
  squared or interaction features cannot extrapolate);
- ``lightgbm``: LightGBM's gradient-boosted trees (``LGBMRegressor``);
- ``mlp``: a small torch MLP on standardised features, early-stopped on a random tenth of the rows.

scikit-learn and LightGBM are imported when a learner is built, with a message naming the ``renewables`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
from torch import nn

from carbonsync.core.optional import optional_import
from carbonsync.models.renewables.design import RenewablesError

__all__ = ["LEARNERS", "Learner", "build_learner", "register_learner"]


@runtime_checkable
class Learner(Protocol):
    """Fits the residual ``y`` (observed - prior) on features and predicts it."""

    def fit(self, x: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> Learner: ...

    def predict(self, x: pd.DataFrame) -> np.ndarray: ...


class PriorOnly:
    """No correction: the residual is predicted as 0."""

    def fit(self, x: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> PriorOnly:
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(x))


class ClippedRidge:
    """scikit-learn ``StandardScaler`` + ``Ridge`` with inputs clipped to the training range before predicting.

    NaN inputs are filled with the training mean (the learner of choice for gaps is ``lightgbm``).
    """

    def __init__(self, alpha: float = 1.0) -> None:
        linear_model = optional_import("sklearn.linear_model", "renewables")
        pipeline = optional_import("sklearn.pipeline", "renewables")
        preprocessing = optional_import("sklearn.preprocessing", "renewables")
        self.model = pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.Ridge(alpha=float(alpha)))

    def _filled(self, x: pd.DataFrame) -> np.ndarray:
        values = x.to_numpy(dtype=float)
        return np.where(np.isnan(values), self.mean_, np.clip(values, self.low_, self.high_))

    def fit(self, x: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> ClippedRidge:
        values = x.to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            self.mean_ = np.nan_to_num(np.nanmean(values, axis=0))
            self.low_, self.high_ = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        self.low_, self.high_ = np.nan_to_num(self.low_), np.nan_to_num(self.high_)
        self.model.fit(np.where(np.isnan(values), self.mean_, values), y, ridge__sample_weight=sample_weight)
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.model.predict(self._filled(x))


class GradientBoosting:
    """LightGBM ``LGBMRegressor`` (NaN inputs handled natively); keyword arguments go to LightGBM."""

    DEFAULTS = {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 40,
                "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                "n_jobs": 1, "verbose": -1, "random_state": 0}

    def __init__(self, **params: Any) -> None:
        lightgbm = optional_import("lightgbm", "renewables")
        self.model = lightgbm.LGBMRegressor(**(self.DEFAULTS | params))

    def fit(self, x: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> GradientBoosting:
        self.model.fit(x, y, sample_weight=sample_weight)
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(x), dtype=float)


class NeuralNet:
    """A torch MLP (SiLU) on standardised features (NaN filled with the training mean), MSE with Adam, the
    last layer zero-initialised (an untrained net predicts no correction), early-stopped on held-out rows."""

    def __init__(self, hidden: int = 64, layers: int = 2, epochs: int = 40, lr: float = 2e-3,
                 weight_decay: float = 1e-4, batch_size: int = 512, patience: int = 4, holdout: float = 0.1,
                 seed: int = 0) -> None:
        self.hidden, self.layers, self.epochs, self.lr = hidden, layers, epochs, lr
        self.weight_decay, self.batch_size, self.patience = weight_decay, batch_size, patience
        self.holdout, self.seed = holdout, seed

    def _inputs(self, x: pd.DataFrame) -> torch.Tensor:
        values = x.to_numpy(dtype=np.float64)
        values = np.where(np.isnan(values), self.mean_, values)
        return torch.as_tensor((values - self.mean_) / self.scale_, dtype=torch.float32)

    def fit(self, x: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> NeuralNet:
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        values = x.to_numpy(dtype=np.float64)
        with np.errstate(all="ignore"):
            self.mean_ = np.nan_to_num(np.nanmean(values, axis=0))
            self.scale_ = np.nan_to_num(np.nanstd(values, axis=0), nan=1.0)
        self.scale_[self.scale_ < 1e-9] = 1.0
        inputs, target = self._inputs(x), torch.as_tensor(np.asarray(y, dtype=np.float32))
        weights = torch.ones(len(target)) if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.float32)
        order = torch.randperm(len(target), generator=generator)
        held = order[: max(1, int(self.holdout * len(target)))]
        train = order[len(held):]
        blocks: list[nn.Module] = []
        width = inputs.shape[1]
        for _ in range(self.layers):
            blocks += [nn.Linear(width, self.hidden), nn.SiLU()]
            width = self.hidden
        last = nn.Linear(width, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*blocks, last)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best, best_state, stale = float("inf"), None, 0
        for _ in range(self.epochs):
            self.net.train()
            for batch in train[torch.randperm(len(train), generator=generator)].split(self.batch_size):
                loss = (weights[batch] * (self.net(inputs[batch])[:, 0] - target[batch]) ** 2).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            self.net.eval()
            with torch.no_grad():
                score = float((weights[held] * (self.net(inputs[held])[:, 0] - target[held]) ** 2).mean())
            if score < best - 1e-9:
                best, best_state, stale = score, {k: v.clone() for k, v in self.net.state_dict().items()}, 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            self.net.load_state_dict(best_state)
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            return self.net(self._inputs(x))[:, 0].numpy().astype(float)


LEARNERS: dict[str, Callable[..., Learner]] = {
    "prior": PriorOnly,
    "ridge": ClippedRidge,
    "lightgbm": GradientBoosting,
    "mlp": NeuralNet,
}


def register_learner(name: str, factory: Callable[..., Learner]) -> None:
    """Make ``factory(**params)`` available as the learner ``name``."""
    LEARNERS[name] = factory


def build_learner(name: str, params: dict[str, Any] | None = None) -> Learner:
    """The learner registered as ``name`` built with ``params``."""
    if name not in LEARNERS:
        raise RenewablesError(f"unknown learner {name!r}; registered: {sorted(LEARNERS)}")
    return LEARNERS[name](**(params or {}))
