"""Forecast metrics as small pure functions over xarray objects (the WeatherBench2 way).

Gridded metrics weight by the grid's quadrature (area) weights over ``lat``/``lon``; every other
dimension not listed in ``keep`` is averaged too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from carbonsync.core.optional import optional_import


def _reduce_dims(da: xr.DataArray, keep: Sequence[str]) -> list[str]:
    return [d for d in da.dims if d not in keep]


def rmse(forecast: xr.DataArray | xr.Dataset, truth, weights: xr.DataArray | None = None,
         keep: Sequence[str] = ()) -> xr.DataArray | xr.Dataset:
    """Root mean squared error, area-weighted when ``weights`` (lat, lon) are given."""
    err2 = (forecast - truth) ** 2
    if weights is not None:
        err2 = err2.weighted(weights).mean(("lat", "lon"))
    dims = [d for d in err2.dims if d not in keep]
    return np.sqrt(err2.mean(dims))


def mae(forecast, truth, weights: xr.DataArray | None = None, keep: Sequence[str] = ()):
    """Mean absolute error, area-weighted when ``weights`` are given."""
    err = abs(forecast - truth)
    if weights is not None:
        err = err.weighted(weights).mean(("lat", "lon"))
    return err.mean([d for d in err.dims if d not in keep])


def bias(forecast, truth, weights: xr.DataArray | None = None, keep: Sequence[str] = ()):
    """Mean error (forecast minus truth), area-weighted when ``weights`` are given."""
    err = forecast - truth
    if weights is not None:
        err = err.weighted(weights).mean(("lat", "lon"))
    return err.mean([d for d in err.dims if d not in keep])


def acc(forecast, truth, climatology, weights: xr.DataArray, keep: Sequence[str] = ()):
    """Anomaly correlation coefficient against ``climatology`` (area-weighted, per non-spatial sample)."""
    fa, ta = forecast - climatology, truth - climatology
    num = (fa * ta).weighted(weights).sum(("lat", "lon"))
    den = np.sqrt((fa**2).weighted(weights).sum(("lat", "lon")) * (ta**2).weighted(weights).sum(("lat", "lon")))
    score = num / den
    return score.mean([d for d in score.dims if d not in keep])


def skill_score(score, reference):
    """1 - score/reference: positive when better than the reference (for error metrics)."""
    return 1.0 - score / reference


def r2(forecast, truth, keep: Sequence[str] = ()):
    """Coefficient of determination over all dims not in ``keep``."""
    dims = [d for d in truth.dims if d not in keep]
    ss_res = ((truth - forecast) ** 2).sum(dims)
    ss_tot = ((truth - truth.mean(dims)) ** 2).sum(dims)
    return 1.0 - ss_res / ss_tot


# ----------------------------------------------------------------------------- quantile forecasts (numpy)


def pinball(observed: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> float:
    """Mean pinball (quantile) loss of ``quantiles`` ``(n, len(levels))`` over rows and levels."""
    y = np.asarray(observed, float)[:, None]
    q, tau = np.asarray(quantiles, float), np.asarray(levels, float)
    diff = y - q
    return float(np.mean(np.maximum(tau * diff, (tau - 1.0) * diff)))


def quantile_crps(observed: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> float:
    """Mean CRPS of forecasts given as quantiles (scoringrules' ``crps_quantile``: twice the mean pinball)."""
    scoringrules = optional_import("scoringrules", "renewables")
    values = scoringrules.crps_quantile(np.asarray(observed, float), np.asarray(quantiles, float),
                                        np.asarray(levels, float))
    return float(np.mean(values))


def coverage(observed: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Fraction of ``observed`` inside ``[low, high]``."""
    y = np.asarray(observed, float)
    return float(np.mean((y >= np.asarray(low, float)) & (y <= np.asarray(high, float))))
