"""The learned part of the renewables model: a residual regressor behind a small protocol, chosen by name.

- ``prior``: no correction (the physical prior or published forecast alone: the ablation and the anchor);
- ``ridge``: scikit-learn's ``Ridge`` on standardised features (inputs clipped to their training range, so
  squared or interaction features cannot extrapolate);
- ``lightgbm``: LightGBM's gradient-boosted trees (``LGBMRegressor``);
- ``mlp``: a small torch MLP on standardised features, early-stopped on a random tenth of the rows.

scikit-learn and LightGBM are imported when a learner is built, with a message naming the ``renewables`` extra.
A fitted learner's :meth:`~Learner.state` is plain arrays (LightGBM's model text as bytes, the ridge's
coefficients, the net's weights) that :meth:`~Learner.load_state` restores: model packages hold no pickle.
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

    def state(self) -> dict[str, np.ndarray]:
        """The fitted learner as named arrays (numbers or bytes, never pickled objects)."""
        ...

    def load_state(self, arrays: dict[str, np.ndarray]) -> Learner:
        """Restore what :meth:`state` returned into a learner built with the same parameters."""
        ...


def _need(arrays: dict[str, np.ndarray], *names: str) -> list[np.ndarray]:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise RenewablesError(f"learner state lacks array(s) {missing}; it has {sorted(arrays)}")
    return [np.asarray(arrays[n]) for n in names]


class PriorOnly:
    """No correction: the residual is predicted as 0."""

    def fit(self, x: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> PriorOnly:
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(x))

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, arrays: dict[str, np.ndarray]) -> PriorOnly:
        return self


class ClippedRidge:
    """scikit-learn ``StandardScaler`` + ``Ridge`` with inputs clipped to the training range before predicting.

    NaN inputs are filled with the training mean (the learner of choice for gaps is ``lightgbm``). After
    fitting, prediction is the fitted affine map itself (``(x - center) / scale @ coef + intercept``), which is
    also what :meth:`state` holds.
    """

    ARRAYS = ("mean", "low", "high", "center", "scale", "coef", "intercept")

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)

    def _filled(self, x: pd.DataFrame) -> np.ndarray:
        values = x.to_numpy(dtype=float)
        return np.where(np.isnan(values), self.mean_, np.clip(values, self.low_, self.high_))

    def fit(self, x: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> ClippedRidge:
        linear_model = optional_import("sklearn.linear_model", "renewables")
        pipeline = optional_import("sklearn.pipeline", "renewables")
        preprocessing = optional_import("sklearn.preprocessing", "renewables")
        model = pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.Ridge(alpha=self.alpha))
        values = x.to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            self.mean_ = np.nan_to_num(np.nanmean(values, axis=0))
            self.low_, self.high_ = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        self.low_, self.high_ = np.nan_to_num(self.low_), np.nan_to_num(self.high_)
        model.fit(np.where(np.isnan(values), self.mean_, values), y, ridge__sample_weight=sample_weight)
        scaler, ridge = model[0], model[1]
        self.center_, self.scale_ = scaler.mean_.astype(float), scaler.scale_.astype(float)
        self.coef_, self.intercept_ = np.asarray(ridge.coef_, float), np.atleast_1d(float(ridge.intercept_))
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return (self._filled(x) - self.center_) / self.scale_ @ self.coef_ + self.intercept_[0]

    def state(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(getattr(self, f"{name}_"), dtype=float) for name in self.ARRAYS}

    def load_state(self, arrays: dict[str, np.ndarray]) -> ClippedRidge:
        for name, value in zip(self.ARRAYS, _need(arrays, *self.ARRAYS), strict=True):
            setattr(self, f"{name}_", value.astype(float))
        return self


class GradientBoosting:
    """LightGBM ``LGBMRegressor`` (NaN inputs handled natively); keyword arguments go to LightGBM."""

    DEFAULTS = {"n_estimators": 300, "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 40,
                "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                "n_jobs": 1, "verbose": -1, "random_state": 0}

    def __init__(self, **params: Any) -> None:
        self.lightgbm = optional_import("lightgbm", "renewables")
        self.params = self.DEFAULTS | params

    def fit(self, x: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> GradientBoosting:
        model = self.lightgbm.LGBMRegressor(**self.params)
        model.fit(x, y, sample_weight=sample_weight)
        self.booster_ = model.booster_
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(x.to_numpy(dtype=float)), dtype=float)

    def state(self) -> dict[str, np.ndarray]:
        """LightGBM's own model text (``Booster.model_to_string``) as UTF-8 bytes."""
        return {"model_text": np.frombuffer(self.booster_.model_to_string().encode("utf-8"), dtype=np.uint8)}

    def load_state(self, arrays: dict[str, np.ndarray]) -> GradientBoosting:
        (text,) = _need(arrays, "model_text")
        self.booster_ = self.lightgbm.Booster(model_str=text.astype(np.uint8).tobytes().decode("utf-8"))
        return self


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
        self.net = self._build(inputs.shape[1])
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

    def _build(self, width: int) -> nn.Sequential:
        blocks: list[nn.Module] = []
        for _ in range(self.layers):
            blocks += [nn.Linear(width, self.hidden), nn.SiLU()]
            width = self.hidden
        last = nn.Linear(width, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        return nn.Sequential(*blocks, last)

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        self.net.eval()
        with torch.no_grad():
            return self.net(self._inputs(x))[:, 0].numpy().astype(float)

    def state(self) -> dict[str, np.ndarray]:
        weights = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        return {"mean": self.mean_, "scale": self.scale_, **weights}

    def load_state(self, arrays: dict[str, np.ndarray]) -> NeuralNet:
        self.mean_, self.scale_ = (v.astype(np.float64) for v in _need(arrays, "mean", "scale"))
        self.net = self._build(len(self.mean_))
        names = [f"net.{k}" for k in self.net.state_dict()]
        weights = _need(arrays, *names)
        try:
            self.net.load_state_dict({n[4:]: torch.as_tensor(w) for n, w in zip(names, weights, strict=True)})
        except RuntimeError as err:
            raise RenewablesError(f"the net's weights do not fit hidden={self.hidden}, layers={self.layers}: {err}") from None
        return self


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
