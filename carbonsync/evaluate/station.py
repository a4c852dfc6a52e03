"""Station-series renewables (GEFCom2014 format) by rolling origin: the renewables model against its physical
prior alone, a per-farm empirical power curve, climatology and persistence.

The baselines are small pure functions of a training and a test frame (rows ``zone``, ``time``, weather,
``capacity_factor``). :func:`evaluate_station` chooses the model's configuration on the ``folds`` months
before ``test_from`` (each predicted by a fit on the months before it), then predicts every test month with a
model fitted on the rows observed before that month; the baselines are refitted the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from carbonsync.core.errors import CarbonSyncError
from carbonsync.evaluate.metrics import coverage, pinball, quantile_crps
from carbonsync.models.renewables import RenewablesConfig, RenewablesModel, monthly_origins, rolling_origin, select
from carbonsync.models.renewables.station import STATION_TARGET, station_design
from carbonsync.models.station import solar_features, wind_features

__all__ = ["DEFAULT_CANDIDATES", "StationEvaluationError", "climatology_baseline", "evaluate_station",
           "power_curve_baseline"]

POWER_CURVE_BIN = 0.5  # m s-1
MIN_BIN_HOURS = 5
DEFAULT_CANDIDATES = (
    RenewablesConfig(learner="ridge", params={"alpha": 10.0}),
    RenewablesConfig(learner="lightgbm"),
    RenewablesConfig(learner="lightgbm", params={"n_estimators": 800, "num_leaves": 31}),
    RenewablesConfig(learner="mlp"),
)


class StationEvaluationError(CarbonSyncError, ValueError):
    """A station evaluation that cannot run: no rows in a period, unknown track."""


def power_curve_baseline(train: pd.DataFrame, test: pd.DataFrame, track: str) -> np.ndarray:
    """Per-farm binned empirical power curve of the 100 m speed (wind) or a line on ssrd (solar), clipped."""
    pred = np.full(len(test), np.nan)
    test = test.reset_index(drop=True)
    for zone, rows in test.groupby("zone").groups.items():
        fit = train[train["zone"] == zone]
        if fit.empty:
            fit = train  # a farm unseen in training gets the pooled fit
        y = fit["capacity_factor"].to_numpy(float)
        if track == "wind":
            x = np.hypot(fit["u100"], fit["v100"]).to_numpy()
            stats = pd.DataFrame({"bin": np.floor(x / POWER_CURVE_BIN).astype(int), "y": y}).groupby("bin")["y"].agg(
                ["mean", "size"])
            stats = stats[stats["size"] >= MIN_BIN_HOURS]
            centres = (stats.index.to_numpy() + 0.5) * POWER_CURVE_BIN
            speed = np.hypot(test.loc[rows, "u100"], test.loc[rows, "v100"]).to_numpy()
            pred[np.asarray(rows)] = np.interp(speed, centres, stats["mean"].to_numpy())
        else:
            slope, intercept = np.polyfit(fit["ssrd"].to_numpy(float) / 3600.0, y, 1)
            pred[np.asarray(rows)] = np.clip(intercept + slope * test.loc[rows, "ssrd"].to_numpy(float) / 3600.0, 0, 1)
    return pred


def climatology_baseline(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Per-farm mean by hour of day and calendar month, falling back to hour of day, then the overall mean."""

    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        t = pd.DatetimeIndex(frame["time"])
        y = frame["capacity_factor"].to_numpy(float) if "capacity_factor" in frame else np.nan
        return pd.DataFrame({"zone": frame["zone"].to_numpy(), "hour": t.hour, "month": (t - pd.Timedelta(hours=1)).month,
                             "y": y})

    fit, rows = keyed(train), keyed(test)
    by_month = fit.groupby(["zone", "hour", "month"])["y"].mean().rename("m")
    by_hour = fit.groupby(["zone", "hour"])["y"].mean().rename("h")
    rows = rows.join(by_month, on=["zone", "hour", "month"]).join(by_hour, on=["zone", "hour"])
    return rows["m"].fillna(rows["h"]).fillna(fit["y"].mean()).to_numpy()


def _features(frame: pd.DataFrame, track: str, site: tuple[float, float] | None):
    if track == "wind":
        return wind_features(frame, context_sites=tuple(sorted(frame["zone"].astype(str).unique())))
    if track == "solar":
        if site is None:
            raise StationEvaluationError("solar needs the site (lat, lon) of the PVWatts prior")
        return solar_features(frame, *site)
    raise StationEvaluationError(f"track must be 'wind' or 'solar', got {track!r}")


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(y) & np.isfinite(p)
    err = p[ok] - y[ok]
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def evaluate_station(frame: pd.DataFrame, track: str, test_from: str | pd.Timestamp,
                     test_until: str | pd.Timestamp | None = None, folds: int = 3,
                     candidates: Sequence[RenewablesConfig] = DEFAULT_CANDIDATES,
                     site: tuple[float, float] | None = None, autoregressive: bool = True) -> dict:
    """Rolling-origin scores of the model and the baselines on the months from ``test_from``."""
    frame = frame.copy()
    frame["zone"] = frame["zone"].astype(str)
    frame["time"] = pd.DatetimeIndex(frame["time"]).astype("datetime64[ns]")
    frame = frame.sort_values(["zone", "time"], kind="stable").reset_index(drop=True)
    design = station_design(_features(frame, track, site), autoregressive=autoregressive)
    test_from = pd.Timestamp(test_from)
    observed_end = design.times[np.isfinite(design.observed(STATION_TARGET))].max()
    end = pd.Timestamp(test_until) if test_until is not None else observed_end
    test_origins = monthly_origins(test_from, end.ceil("D") + pd.offsets.MonthBegin(0))
    selection_origins = monthly_origins(test_from - pd.DateOffset(months=folds), test_from)
    history = design.select(design.times < test_from)
    chosen, selection = select(history, candidates, selection_origins)
    config = chosen[STATION_TARGET]
    predictions = rolling_origin(design, lambda: RenewablesModel(config), test_origins)
    keys = ["issue_time", "time", "zone"]
    rows = predictions[keys].merge(design.frame, on=keys, how="left")
    keep = np.isfinite(rows[STATION_TARGET].to_numpy(float)) & (rows["time"] <= end).to_numpy()
    predictions, rows = predictions[keep].reset_index(drop=True), rows[keep].reset_index(drop=True)
    y = rows[STATION_TARGET].to_numpy(float)

    power_curve = np.full(len(rows), np.nan)
    climatology = np.full(len(rows), np.nan)
    weather = rows[["zone", "time"]].merge(frame, on=["zone", "time"], how="left")
    for k in np.unique(predictions["fold"]):
        in_fold = (predictions["fold"] == k).to_numpy()
        fit = frame[(frame["time"] < test_origins[k]) & frame["capacity_factor"].notna()]
        power_curve[in_fold] = power_curve_baseline(fit, weather[in_fold], track)
        climatology[in_fold] = climatology_baseline(fit, weather[in_fold])
    forecasts = {
        "ours": predictions[STATION_TARGET].to_numpy(float),
        "physical_prior": rows[f"prior_{STATION_TARGET}"].to_numpy(float),
        "power_curve": power_curve,
        "climatology": climatology,
    }
    if autoregressive:
        forecasts["persistence"] = rows["cf_last_day"].to_numpy(float)     # the same hour of the last observed day
    out = {name: _scores(y, p) for name, p in forecasts.items()}
    levels = config.levels
    q = predictions[[f"{STATION_TARGET}_q{level:g}" for level in levels]].to_numpy(float)
    out["ours"] |= {"pinball": pinball(y, q, levels), "crps": quantile_crps(y, q, levels),
                    f"coverage_{levels[0]:g}_{levels[-1]:g}": coverage(y, q[:, 0], q[:, -1])}
    lead = predictions["lead_h"].to_numpy()
    out["ours"]["rmse_by_lead"] = {f"{a}-{b}h": _scores(y[(lead >= a) & (lead <= b)],
                                                        forecasts["ours"][(lead >= a) & (lead <= b)])["rmse"]
                                   for a, b in ((1, 6), (7, 12), (13, 18), (19, 24))}
    folds_out = []
    for k in np.unique(predictions["fold"]):
        m = (predictions["fold"] == k).to_numpy()
        folds_out.append({"month": str(test_origins[k].date()), "hours": int(m.sum()),
                          **{name: round(_scores(y[m], p[m])["rmse"], 5) for name, p in forecasts.items()}})
    return {
        **out,
        "rmse_reduction_vs_power_curve": 1.0 - out["ours"]["rmse"] / out["power_curve"]["rmse"],
        "rmse_reduction_vs_physical_prior": 1.0 - out["ours"]["rmse"] / out["physical_prior"]["rmse"],
        "rmse_reduction_vs_climatology": 1.0 - out["ours"]["rmse"] / out["climatology"]["rmse"],
        "hours": int(len(y)), "period": [str(rows["time"].min()), str(rows["time"].max())],
        "autoregressive": autoregressive, "test_months": folds_out, "selection": selection,
        "chosen": config.describe(),
    }
