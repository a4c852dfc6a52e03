"""Damping toward climatology: the climatology, the least-squares factors and their application."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from carbonsync.forecast.calibration import apply_damping, fit_damping, hour_of_day_climatology
from carbonsync.models.package import load_package, save_package
from carbonsync.models.sfno import SFNO
from carbonsync.physics.grid import Grid


def _grid() -> Grid:
    return Grid(nlat=9, nlon=16, kind="equiangular")


def _ar1(rho: float, n: int, channels: int = 2, seed: int = 0) -> torch.Tensor:
    """States that are AR(1) anomalies around zero with unit variance (stationary)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, channels, 9, 16)
    x[0] = torch.randn(channels, 9, 16, generator=g)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + np.sqrt(1 - rho**2) * torch.randn(channels, 9, 16, generator=g)
    return x


def test_hour_of_day_climatology_means_each_synoptic_hour_over_blocks():
    times = pd.date_range("2020-01-01", periods=8, freq="6h")
    states = torch.arange(8, dtype=torch.float32)[:, None, None, None].expand(8, 1, 2, 2)
    clim = hour_of_day_climatology([(times[:3], states[:3]), (times[3:], states[3:])], 6)
    assert clim.shape == (4, 1, 2, 2)
    np.testing.assert_allclose(clim[:, 0, 0, 0].numpy(), [2.0, 3.0, 4.0, 5.0])


def test_hour_of_day_climatology_names_missing_hours():
    times = pd.date_range("2020-01-01", periods=3, freq="6h")
    with pytest.raises(ValueError, match=r"hour\(s\) \[18\] UTC"):
        hour_of_day_climatology([(times, torch.zeros(3, 1, 2, 2))], 6)


def test_apply_damping_between_climatology_and_forecast_and_past_the_fitted_leads():
    clim = torch.zeros(4, 1, 2, 2)
    clim[2] = 10.0  # 12 UTC
    states = torch.full((3, 1, 2, 2), 20.0)
    valid = pd.DatetimeIndex(["2020-01-01T06", "2020-01-01T12", "2020-01-01T18"])
    damping = torch.tensor([[1.0], [0.5]])
    out = apply_damping(states, valid, clim, damping)
    assert out[0].eq(20.0).all()  # factor 1: the forecast
    assert out[1].eq(15.0).all()  # halfway to the 12 UTC climatology
    assert out[2].eq(10.0).all()  # third lead reuses the last factor, toward the 18 UTC climatology (0)
    # a batch of states at given leads: each state damped with its own lead's factor
    batch = apply_damping(states, valid, clim, damping, leads=torch.tensor([2, 2, 1]))
    assert batch[0].eq(10.0).all() and batch[1].eq(15.0).all() and batch[2].eq(20.0).all()
    torch.testing.assert_close(apply_damping(states, valid, clim, damping, leads=torch.tensor([1, 2, 3])), out)
    with pytest.raises(ValueError, match="lead steps >= 1"):
        apply_damping(states, valid, clim, damping, leads=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="2 valid times for 3 states"):
        apply_damping(states, valid[:2], clim, damping)


def persistence_hindcasts(states: torch.Tensor, times: pd.DatetimeIndex, lead: int):
    """(lead_step, valid_times, forecast, observed) of persistence forecasts from every state with ``lead`` successors."""
    idx = np.arange(states.shape[0] - lead)
    for k in range(1, lead + 1):
        yield k, times[idx + k], states[idx], states[idx + k]


def test_fit_damping_recovers_the_optimal_shrinkage_of_persistence():
    rho, n, lead = 0.8, 1200, 4
    states = _ar1(rho, n)
    times = pd.date_range("2020-01-01", periods=n, freq="6h")
    clim = torch.zeros(4, 2, 9, 16)
    weights = torch.as_tensor(_grid().quadrature_weights().values, dtype=torch.float32)
    damping = fit_damping(persistence_hindcasts(states, times, lead), clim, weights, lead)
    assert damping.shape == (lead, 2)
    np.testing.assert_allclose(damping.numpy(), np.repeat(rho ** np.arange(1, lead + 1)[:, None], 2, 1), atol=0.03)


def test_fit_damping_names_leads_without_hindcasts():
    states = torch.zeros(8, 1, 9, 16)
    times = pd.date_range("2020-01-01", periods=8, freq="6h")
    hindcasts = (h for h in persistence_hindcasts(states, times, 3) if h[0] != 2)
    with pytest.raises(ValueError, match=r"lead step\(s\) \[2\]"):
        fit_damping(hindcasts, torch.zeros(4, 1, 9, 16), torch.ones(9, 16), 3)
    with pytest.raises(ValueError, match="outside 1..2"):
        fit_damping(persistence_hindcasts(states, times, 3), torch.zeros(4, 1, 9, 16), torch.ones(9, 16), 2)


def test_package_carries_damping_tensors(tmp_path):
    grid = _grid()
    model = SFNO(in_channels=2, nlat=9, nlon=16, embed_dim=4, num_layers=1, lmax=5, mmax=5)
    tensors = {"damping": torch.rand(3, 2), "damping_climatology": torch.randn(4, 2, 9, 16)}
    stats = {"variables": {"a": {"mean": 0.0, "std": 1.0}, "b": {"mean": 0.0, "std": 1.0}}}
    path = save_package(tmp_path / "pkg", model, "sfno", None, ["a", "b"], grid, 6, stats, tensors=tensors)
    loaded = load_package(path)
    assert set(loaded.tensors) == set(tensors)
    for name, value in tensors.items():
        torch.testing.assert_close(loaded.tensors[name], value)
    plain = load_package(save_package(tmp_path / "plain", model, "sfno", None, ["a", "b"], grid, 6, stats))
    assert plain.tensors == {} and plain.hash != loaded.hash
