"""Losses on the sphere: area-weighted (quadrature) squared error, relative L2 and the pinball loss.

Fields are (B, C, nlat, nlon). Quadrature weights are normalised to sum to one over the grid, so an
"integral over the sphere" is the area-weighted mean (torch-harmonics' ``dimensionless`` integral).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from carbonsync.physics.grid import Grid

WeightsLike = Grid | torch.Tensor | np.ndarray


@lru_cache(maxsize=32)
def _grid_weights(grid: Grid) -> torch.Tensor:
    return torch.as_tensor(grid.quadrature_weights().values, dtype=torch.float64)


def quadrature_weights(grid: Grid) -> torch.Tensor:
    """The grid's area weights as a float64 (nlat, nlon) tensor summing to one."""
    return _grid_weights(grid).clone()


def _weights_for(x: torch.Tensor, weights: WeightsLike) -> torch.Tensor:
    """``weights`` (Grid, or (nlat,) / (nlat, 1) / (nlat, nlon) array) as (nlat, nlon) summing to one."""
    w = _grid_weights(weights) if isinstance(weights, Grid) else torch.as_tensor(weights)
    w = w.to(device=x.device, dtype=x.dtype)
    nlat, nlon = x.shape[-2:]
    if w.dim() == 1:
        w = w[:, None]
    if w.dim() != 2 or w.shape[0] != nlat or w.shape[1] not in (1, nlon):
        raise ValueError(f"weights of shape {tuple(w.shape)} do not fit fields on a {nlat}x{nlon} grid")
    w = w.expand(nlat, nlon)
    total = w.sum()
    if not torch.isfinite(total) or total <= 0 or (w < 0).any():
        raise ValueError("quadrature weights must be finite and non-negative with a positive sum")
    return w / total


def integrate(x: torch.Tensor, weights: WeightsLike) -> torch.Tensor:
    """Area-weighted mean over the last two (lat, lon) dimensions."""
    return (x * _weights_for(x, weights)).sum(dim=(-2, -1))


def _channel_weights(cw: Sequence[float] | torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    if cw is None:
        return None
    cw = torch.as_tensor(cw, dtype=x.dtype, device=x.device).flatten()
    if cw.numel() != x.shape[1]:
        raise ValueError(f"{cw.numel()} channel weights given for {x.shape[1]} channels")
    if (cw < 0).any() or cw.sum() <= 0:
        raise ValueError("channel weights must be non-negative with a positive sum")
    return cw / cw.sum()


def spherical_l2(
    pred: torch.Tensor,
    target: torch.Tensor,
    weights: WeightsLike,
    channel_weights: Sequence[float] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Area-weighted mean squared error, channel-weighted mean over C, mean over the batch (scalar).

    ``loss = mean_b sum_c cw_c * sum_ij w_ij (pred - target)^2`` with ``w`` and ``cw`` normalised to sum to 1.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be (B, C, H, W)"
        )
    per_channel = integrate((pred - target) ** 2, weights)  # (B, C)
    cw = _channel_weights(channel_weights, pred)
    per_sample = per_channel.mean(dim=1) if cw is None else (per_channel * cw).sum(dim=1)
    return per_sample.mean()


def relative_l2(
    pred: torch.Tensor, target: torch.Tensor, weights: WeightsLike, squared: bool = False, eps: float = 1e-12
) -> torch.Tensor:
    """Relative L2 as in torch-harmonics' examples, averaged over the batch.

    Per sample ``sqrt(sum_c ∫(pred - target)^2 / sum_c ∫target^2)`` (without the root if ``squared``).
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be (B, C, H, W)"
        )
    num = integrate((pred - target) ** 2, weights).sum(dim=1)
    den = integrate(target**2, weights).sum(dim=1).clamp_min(eps)
    loss = num / den
    return (loss if squared else loss.sqrt()).mean()


def pinball_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    quantiles: Sequence[float] | torch.Tensor,
    dim: int = 1,
    weights: WeightsLike | None = None,
) -> torch.Tensor:
    """Mean quantile (pinball) loss; ``pred`` has a quantile dimension ``dim`` that ``target`` lacks.

    With ``weights`` the last two dimensions are (lat, lon) and are averaged with area weights.
    """
    q = torch.as_tensor(quantiles, dtype=pred.dtype, device=pred.device).flatten()
    if ((q <= 0) | (q >= 1)).any():
        raise ValueError(f"quantiles must lie in (0, 1), got {q.tolist()}")
    if pred.shape[dim] != q.numel():
        raise ValueError(
            f"pred has {pred.shape[dim]} entries along dim {dim} but {q.numel()} quantiles were given"
        )
    dim = dim % pred.dim()
    shape = [1] * pred.dim()
    shape[dim] = -1
    diff = target.unsqueeze(dim) - pred
    loss = torch.maximum(q.view(shape) * diff, (q.view(shape) - 1) * diff)
    if weights is None:
        return loss.mean()
    return integrate(loss, weights).mean()


class SphericalMSE(nn.Module):
    """:func:`spherical_l2` as a module holding the grid's quadrature weights and optional channel weights."""

    def __init__(
        self, grid: WeightsLike, channel_weights: Sequence[float] | torch.Tensor | None = None
    ) -> None:
        super().__init__()
        w = quadrature_weights(grid) if isinstance(grid, Grid) else torch.as_tensor(grid, dtype=torch.float32)
        self.register_buffer("weights", w)
        cw = None if channel_weights is None else torch.as_tensor(channel_weights, dtype=torch.float32)
        self.register_buffer("channel_weights", cw)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return spherical_l2(pred, target, self.weights, self.channel_weights)
