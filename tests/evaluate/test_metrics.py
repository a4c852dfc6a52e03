"""Forecast metrics against hand computations (WeatherBench2 style: small arrays, exact numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from carbonsync.evaluate import metrics
from carbonsync.physics.grid import Grid

# A 2 x 2 "grid" with unequal area weights: the first latitude row weighs 3x the second.
LAT, LON = [10.0, 60.0], [0.0, 180.0]
WEIGHTS = xr.DataArray([[0.375, 0.375], [0.125, 0.125]], coords={"lat": LAT, "lon": LON}, dims=("lat", "lon"))


def field(values) -> xr.DataArray:
    """(lead, lat, lon) with lead 0 and 1."""
    return xr.DataArray(np.asarray(values, dtype=float), coords={"lead": [0, 1], "lat": LAT, "lon": LON},
                        dims=("lead", "lat", "lon"))


TRUTH = field(np.zeros((2, 2, 2)))
# errors: lead 0 -> rows [1, 1] and [3, 3]; lead 1 -> rows [-2, 2] and [0, 0]
FORECAST = field([[[1, 1], [3, 3]], [[-2, 2], [0, 0]]])


def test_rmse_unweighted() -> None:
    # squared errors: 1, 1, 9, 9, 4, 4, 0, 0 -> mean 28 / 8 = 3.5
    got = metrics.rmse(FORECAST, TRUTH)
    assert got.dims == ()
    assert float(got) == pytest.approx(np.sqrt(3.5))


def test_rmse_weighted() -> None:
    # lead 0: 0.75 * 1 + 0.25 * 9 = 3; lead 1: 0.75 * 4 + 0.25 * 0 = 3 -> sqrt(3)
    assert float(metrics.rmse(FORECAST, TRUTH, WEIGHTS)) == pytest.approx(np.sqrt(3.0))


def test_rmse_keep_dims() -> None:
    got = metrics.rmse(FORECAST, TRUTH, WEIGHTS, keep=["lead"])
    assert got.dims == ("lead",)
    np.testing.assert_allclose(got.values, [np.sqrt(3.0), np.sqrt(3.0)])
    got = metrics.rmse(FORECAST, TRUTH, keep=["lead"])
    np.testing.assert_allclose(got.values, [np.sqrt(5.0), np.sqrt(2.0)])
    got = metrics.rmse(FORECAST, TRUTH, keep=["lead", "lat"])
    assert got.dims == ("lead", "lat")
    np.testing.assert_allclose(got.values, [[1.0, 3.0], [2.0, 0.0]])


def test_rmse_is_sqrt_of_mean_not_mean_of_sqrt() -> None:
    # per lead: sqrt(5) and sqrt(2); the overall RMSE is sqrt(3.5), not their mean
    assert float(metrics.rmse(FORECAST, TRUTH)) != pytest.approx((np.sqrt(5) + np.sqrt(2)) / 2)


def test_mae() -> None:
    assert float(metrics.mae(FORECAST, TRUTH)) == pytest.approx(12 / 8)
    # lead 0: 0.75 * 1 + 0.25 * 3 = 1.5; lead 1: 0.75 * 2 = 1.5
    np.testing.assert_allclose(metrics.mae(FORECAST, TRUTH, WEIGHTS, keep=["lead"]).values, [1.5, 1.5])


def test_bias() -> None:
    # lead 0: mean 2, weighted 1.5; lead 1: mean 0, weighted 0
    np.testing.assert_allclose(metrics.bias(FORECAST, TRUTH, keep=["lead"]).values, [2.0, 0.0])
    np.testing.assert_allclose(metrics.bias(FORECAST, TRUTH, WEIGHTS, keep=["lead"]).values, [1.5, 0.0])
    assert float(metrics.bias(FORECAST, TRUTH)) == pytest.approx(1.0)
    assert float(metrics.bias(TRUTH, FORECAST)) == pytest.approx(-1.0)  # forecast minus truth


def test_metrics_on_datasets() -> None:
    fc = xr.Dataset({"a": FORECAST, "b": 2 * FORECAST})
    tr = xr.Dataset({"a": TRUTH, "b": TRUTH})
    got = metrics.rmse(fc, tr, WEIGHTS, keep=["lead"])
    np.testing.assert_allclose(got["a"].values, [np.sqrt(3.0)] * 2)
    np.testing.assert_allclose(got["b"].values, [2 * np.sqrt(3.0)] * 2)
    assert float(metrics.bias(fc, tr)["b"]) == pytest.approx(2.0)


def test_quadrature_weights_plug_in() -> None:
    grid = Grid(9, 16)
    w = grid.quadrature_weights()
    mu2 = np.sin(np.deg2rad(w.lat)) ** 2 * xr.ones_like(w)
    truth = xr.zeros_like(w)
    # area-weighted mean of sin^2(lat) over the sphere is 1/3
    assert float(metrics.bias(mu2, truth, w)) == pytest.approx(1 / 3, abs=1e-12)
    assert float(metrics.rmse(mu2, truth, w)) == pytest.approx(np.sqrt(1 / 5), abs=1e-12)


def _anomaly_setup(seed: int = 0, n: int = 8):
    grid = Grid(33, 64)
    w = grid.quadrature_weights()
    rng = np.random.default_rng(seed)
    coords = {"time": np.arange(n), **grid.coords()}
    clim = xr.DataArray(rng.normal(280, 10, grid.shape), coords=grid.coords(), dims=("lat", "lon"))
    truth = clim + xr.DataArray(rng.normal(size=(n, *grid.shape)), coords=coords, dims=("time", "lat", "lon"))
    return w, clim, truth, rng, coords


def test_acc_perfect_forecast_is_one() -> None:
    w, clim, truth, _, _ = _anomaly_setup()
    got = metrics.acc(truth, truth, clim, w, keep=["time"])
    assert got.dims == ("time",)
    np.testing.assert_allclose(got.values, 1.0, rtol=1e-12)
    assert float(metrics.acc(truth, truth, clim, w)) == pytest.approx(1.0)


def test_acc_scale_invariant_and_sign() -> None:
    w, clim, truth, _, _ = _anomaly_setup()
    scaled = clim + 3.0 * (truth - clim)
    assert float(metrics.acc(scaled, truth, clim, w)) == pytest.approx(1.0)
    flipped = clim - (truth - clim)
    assert float(metrics.acc(flipped, truth, clim, w)) == pytest.approx(-1.0)


def test_acc_independent_noise_is_near_zero() -> None:
    w, clim, truth, rng, coords = _anomaly_setup(n=16)
    noise = clim + xr.DataArray(rng.normal(size=truth.shape), coords=coords, dims=truth.dims)
    per_time = metrics.acc(noise, truth, clim, w, keep=["time"])
    # ~2000 cells with effective sample size ~1000 per time: |acc| is a few hundredths
    assert np.all(np.abs(per_time.values) < 0.15)
    assert abs(float(per_time.mean())) < 0.05


def test_acc_hand_computed() -> None:
    # anomalies per lead: forecast (1, 1, 3, 3) / (-2, 2, 0, 0), truth (1, 0, 1, 0) for both leads
    truth = field([[[1, 0], [1, 0]], [[1, 0], [1, 0]]])
    clim = xr.zeros_like(TRUTH.isel(lead=0, drop=True))
    got = metrics.acc(FORECAST, truth, clim, WEIGHTS, keep=["lead"])
    # lead 0: num = .375*1 + .125*3 = .75; |f|^2 = .375*2 + .125*18 = 3; |t|^2 = .375 + .125 = .5
    # lead 1: num = .375*(-2) = -.75;     |f|^2 = .375*8 = 3
    np.testing.assert_allclose(got.values, [0.75 / np.sqrt(1.5), -0.75 / np.sqrt(1.5)])


def test_skill_score_sign() -> None:
    assert metrics.skill_score(1.0, 2.0) == pytest.approx(0.5)  # better than the reference
    assert metrics.skill_score(2.0, 2.0) == pytest.approx(0.0)
    assert metrics.skill_score(3.0, 2.0) == pytest.approx(-0.5)  # worse
    assert metrics.skill_score(0.0, 2.0) == pytest.approx(1.0)  # perfect
    ours = metrics.rmse(FORECAST, TRUTH, WEIGHTS, keep=["lead"])
    reference = metrics.rmse(2 * FORECAST, TRUTH, WEIGHTS, keep=["lead"])
    np.testing.assert_allclose(metrics.skill_score(ours, reference).values, [0.5, 0.5])


def test_r2() -> None:
    truth = xr.DataArray([1.0, 2.0, 3.0, 4.0], dims="time")
    assert float(metrics.r2(truth, truth)) == pytest.approx(1.0)
    assert float(metrics.r2(xr.full_like(truth, 2.5), truth)) == pytest.approx(0.0)  # the mean scores 0
    # ss_res = 0.25 * 4 = 1, ss_tot = 5
    assert float(metrics.r2(truth + 0.5, truth)) == pytest.approx(0.8)
    assert float(metrics.r2(-truth, truth)) < 0  # worse than climatology


def test_r2_keep() -> None:
    truth = xr.DataArray([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]], dims=("zone", "time"), coords={"zone": ["a", "b"]})
    forecast = truth.copy(data=[[1.0, 2.0, 3.0], [1.0, 1.0, 2.0]])
    got = metrics.r2(forecast, truth, keep=["zone"])
    assert got.dims == ("zone",)
    # zone b: ss_res = 3, ss_tot = 1 + 1 + 4 = 6
    np.testing.assert_allclose(got.values, [1.0, 0.5])
