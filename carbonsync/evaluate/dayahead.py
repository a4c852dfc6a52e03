"""Day-ahead forecasts under DACF's protocol, and the anchors a renewables model is scored against.

The protocol: a forecast issued at 00 UTC of day D covers the hours D 01:00 ... D+1 00:00 (leads 1-24 h) and
may use only what is known at the issue time. :func:`dayahead_targets` lists the (issue, target, lead) rows of
the complete days of an hourly index. The anchors, each a Series indexed by target time:

- :func:`persistence`: the last observed day (the value 24 h before the target, observed by the issue time);
- :func:`hour_of_day_climatology`: the mean by UTC hour of a training period;
- the published forecasts in a DACF file (:func:`published`), e.g. the operators' own for CISO and SE.

:func:`share_rmse` and :func:`ci_mape` are the two scores (pure functions over aligned Series, NaN rows
dropped), and :func:`score_anchors` scores all anchors of one area on a test period.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from carbonsync.core.errors import CarbonSyncError
from carbonsync.data.observations.dacf import SHARE_COLUMN, DacfArea, products
from carbonsync.evaluate.metrics import coverage, quantile_crps
from carbonsync.models.renewables import (
    RenewablesConfig,
    RenewablesError,
    RenewablesModel,
    build_learner,
    monthly_origins,
    rolling_origin,
    select,
)
from carbonsync.models.renewables.dacf import WEATHER, dacf_design, issue_rows

__all__ = ["DEFAULT_CANDIDATES", "DayAheadError", "ci_mape", "dayahead_targets", "evaluate_dayahead",
            "hour_of_day_climatology", "persistence", "published",
           "score_anchors", "share_rmse"]

DAY = pd.Timedelta(days=1)


class DayAheadError(CarbonSyncError, ValueError):
    """Inputs that do not fit the day-ahead protocol (no complete day, misaligned series)."""


def dayahead_targets(times: pd.DatetimeIndex) -> pd.DataFrame:
    """``issue_time``, ``time`` (the target hour) and ``lead_h`` (1-24) of every day D whose 24 target hours
    D 01:00 ... D+1 00:00 are all in ``times`` (hourly, naive UTC)."""
    try:
        return issue_rows(pd.DatetimeIndex(times), issue_hour=0)
    except RenewablesError:
        raise DayAheadError(f"no complete day-ahead day (D 01:00 ... D+1 00:00) in {len(times)} times") from None


def persistence(observed: pd.Series, targets: pd.DataFrame) -> pd.Series:
    """The last observed day: each target's value 24 h earlier (observed by its issue time)."""
    source = targets["time"] - DAY                                # <= the issue time: leads are 1-24 h
    return pd.Series(observed.reindex(pd.DatetimeIndex(source)).to_numpy(), index=pd.DatetimeIndex(targets["time"]),
                     name=f"persistence_{observed.name}")


def hour_of_day_climatology(train: pd.Series, targets: pd.DataFrame) -> pd.Series:
    """The training period's mean of each UTC hour of day, at every target."""
    means = train.groupby(pd.DatetimeIndex(train.index).hour).mean()
    hours = pd.DatetimeIndex(targets["time"]).hour
    return pd.Series(means.reindex(hours).to_numpy(), index=pd.DatetimeIndex(targets["time"]),
                     name=f"climatology_{train.name}")


def published(area: DacfArea) -> pd.DataFrame | None:
    """``carbon_intensity`` and ``wind_solar_share`` of the day-ahead production forecasts published in the
    file (None if not every fuel has one)."""
    generation = area.published_generation()
    return None if generation is None else products(generation)


def _aligned(forecast: pd.Series, truth: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    joined = pd.concat([forecast.rename("f"), truth.rename("t")], axis=1, join="inner").dropna()
    if joined.empty:
        raise DayAheadError(f"'{forecast.name}' and '{truth.name}' share no valid time")
    return joined["f"].to_numpy(float), joined["t"].to_numpy(float)


def share_rmse(forecast: pd.Series, truth: pd.Series) -> float:
    """Root mean squared error of a share (0-1) over the times both have."""
    f, t = _aligned(forecast, truth)
    return _rmse(t, f)


def ci_mape(forecast: pd.Series, truth: pd.Series) -> float:
    """Mean absolute percentage error (%) of a carbon intensity, over times both have with truth > 0."""
    f, t = _aligned(forecast, truth)
    if not (t > 0).any():
        raise DayAheadError(f"'{truth.name}' is never positive: MAPE is undefined")
    return _mape(t, f)


def score_anchors(area: DacfArea, train: tuple[pd.Timestamp, pd.Timestamp],
                  test: tuple[pd.Timestamp, pd.Timestamp],
                  train_area: DacfArea | None = None) -> dict[str, dict[str, float]]:
    """``{anchor: {"share_rmse", "ci_mape"}}`` of persistence, hour-of-day climatology (fit on ``train`` of
    ``train_area``, default ``area``) and the file's published forecasts (when present) on the complete days of
    ``test`` (inclusive bounds) of ``area``."""
    truth = products(area.frame[area.generation_columns])
    history = truth if train_area is None else products(train_area.frame[train_area.generation_columns])
    in_test = truth.loc[test[0]:test[1]]
    targets = dayahead_targets(pd.DatetimeIndex(in_test.dropna().index))
    at = pd.DatetimeIndex(targets["time"])
    truth_at = truth.reindex(at)
    train_rows = history.loc[train[0]:train[1]]
    if train_rows.dropna().empty:
        raise DayAheadError(f"{area.area}: no training rows in {train[0]} ... {train[1]}")
    forecasts = {
        "persistence": {c: persistence(truth[c], targets) for c in truth.columns},
        "climatology": {c: hour_of_day_climatology(train_rows[c], targets) for c in truth.columns},
    }
    issued = published(area)
    if issued is not None:
        forecasts["dacf"] = {c: issued[c].reindex(at) for c in truth.columns}
    return {name: {"share_rmse": share_rmse(f[SHARE_COLUMN], truth_at[SHARE_COLUMN]),
                   "ci_mape": ci_mape(f["carbon_intensity"], truth_at["carbon_intensity"])}
            for name, f in forecasts.items()}


# ------------------------------------------------------------------------ the renewables model vs anchors


TARGET_SCORES = {SHARE_COLUMN: "share_rmse", "carbon_intensity": "ci_mape", "carbon_intensity_lifecycle": "ci_lifecycle_mape"}
DEFAULT_CANDIDATES = (
    RenewablesConfig(learner="prior"),
    RenewablesConfig(learner="ridge", params={"alpha": 10.0}),
    RenewablesConfig(learner="lightgbm"),
    RenewablesConfig(learner="lightgbm", params={"n_estimators": 800, "num_leaves": 31}),
    RenewablesConfig(learner="mlp"),
)


def _mape(observed: np.ndarray, predicted: np.ndarray) -> float:
    keep = np.isfinite(observed) & np.isfinite(predicted) & (observed > 0)
    if not keep.any():
        raise DayAheadError("no row with a positive observation to compute a MAPE on")
    return float(100.0 * np.mean(np.abs(predicted[keep] - observed[keep]) / observed[keep]))


def _rmse(observed: np.ndarray, predicted: np.ndarray) -> float:
    keep = np.isfinite(observed) & np.isfinite(predicted)
    if not keep.any():
        raise DayAheadError("no row with both an observation and a forecast")
    return float(np.sqrt(np.mean((predicted[keep] - observed[keep]) ** 2)))


SCORES = {SHARE_COLUMN: _rmse, "carbon_intensity": _mape, "carbon_intensity_lifecycle": _mape}


def _scored(observed: pd.DataFrame, forecast: pd.DataFrame) -> dict[str, float]:
    return {TARGET_SCORES[t]: SCORES[t](observed[t].to_numpy(float), forecast[t].to_numpy(float))
            for t in TARGET_SCORES if t in forecast.columns}


def _linear_weather(weather: pd.DataFrame, train_rows: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Least squares of each target on the five GFS columns at the target hour (fit on ``train_rows``)."""
    out = pd.DataFrame(index=rows.index)
    x_train = weather.reindex(pd.DatetimeIndex(train_rows["time"])).reset_index(drop=True)
    x_test = weather.reindex(pd.DatetimeIndex(rows["time"])).reset_index(drop=True)
    for target in TARGET_SCORES:
        y = train_rows[target].to_numpy(float)
        ok = np.isfinite(y) & np.isfinite(x_train.to_numpy(float)).all(axis=1)
        model = build_learner("ridge", {"alpha": 1e-6}).fit(x_train[ok].reset_index(drop=True), y[ok])
        out[target] = model.predict(x_test)
    out[SHARE_COLUMN] = out[SHARE_COLUMN].clip(0.0, 1.0)
    return out


def _joined(train: DacfArea, test: DacfArea, test_from: pd.Timestamp) -> DacfArea:
    """One area of the training file's rows before ``test_from`` and the test file's rows from it on."""
    if train.generation_columns != test.generation_columns:
        raise DayAheadError(f"{test.area}: training fuels {train.generation_columns} differ from the test file's "
                            f"{test.generation_columns}")

    def cut(before: pd.DataFrame | None, after: pd.DataFrame | None) -> pd.DataFrame | None:
        if before is None or after is None:
            return None
        return pd.concat([before[before.index < test_from], after[after.index >= test_from]]).sort_index()

    return DacfArea(test.area, cut(train.frame, test.frame), list(test.generation_columns),
                    [*train.sources, *test.sources], [*train.repairs, *test.repairs],
                    cut(train.operator_forecasts, test.operator_forecasts))


def evaluate_dayahead(area: DacfArea, test_from: str | pd.Timestamp, test_until: str | pd.Timestamp | None = None,
                      train_area: DacfArea | None = None, folds: int = 3,
                      candidates: Sequence[RenewablesConfig] = DEFAULT_CANDIDATES, issue_hour: int = 0) -> dict:
    """The renewables model against DACF's anchors on the months from ``test_from`` (to ``test_until``).

    The model's configuration per target is chosen among ``candidates`` by rolling origin on the ``folds``
    months before ``test_from`` (each predicted by a fit on the months before it); each test month is then
    predicted by that configuration fitted on every row observed before the month. ``train_area`` supplies
    the rows before ``test_from`` when training and test data are separate files. Returns per forecast
    (``ours``, ``dacf``, ``persistence``, ``climatology``, ``linear_weather``) ``share_rmse``, ``ci_mape`` and
    ``ci_lifecycle_mape`` (``dacf`` only where the file publishes a forecast for every fuel); for ours also
    CRPS and 10-90 % coverage, and share RMSE by lead.
    """
    test_from = pd.Timestamp(test_from)
    if train_area is not None and train_area is not area:
        area = _joined(train_area, area, test_from)
    design = dacf_design(area, issue_hour)
    weather = area.frame[list(WEATHER)]
    end = pd.Timestamp(test_until) if test_until is not None else (design.issue_times.max() + DAY).floor("D")
    test_origins = monthly_origins(test_from, (end + pd.offsets.MonthBegin(0)) if end.day != 1 else end)
    selection_origins = monthly_origins(test_from - pd.DateOffset(months=folds), test_from)
    history = design.select(design.times < test_from)
    if history.issue_times.min() > selection_origins[0] - pd.DateOffset(months=1):
        raise DayAheadError(f"{area.area}: need at least a month of rows before the first of {folds} selection "
                            f"folds ({selection_origins[0].date()})")
    chosen, selection = select(history, candidates, selection_origins,
                               {t: SCORES[t] for t in design.targets})
    predictions = rolling_origin(design, lambda: RenewablesModel(configs=chosen), test_origins)
    predictions = predictions[predictions["time"] <= end].reset_index(drop=True)
    keys = ["issue_time", "time", "zone"]
    rows = predictions[keys].merge(design.frame, on=keys, how="left")
    observed = rows[list(design.targets)]

    train_truth = history.frame.drop_duplicates("time").set_index("time")
    climatology = pd.DataFrame({t: hour_of_day_climatology(train_truth[t], rows).to_numpy() for t in design.targets})
    forecasts = {
        "ours": predictions[list(design.targets)],
        "persistence": rows[[f"{t}_last_day" for t in design.targets]].set_axis(list(design.targets), axis=1),
        "climatology": climatology,
        "linear_weather": _linear_weather(weather, history.frame, rows),
    }
    if area.published_generation() is not None:         # the prior is the published forecast (else persistence)
        forecasts["dacf"] = rows[[f"prior_{t}" for t in design.targets]].set_axis(list(design.targets), axis=1)
    out: dict = {name: _scored(observed, f) for name, f in forecasts.items()}
    levels = chosen[SHARE_COLUMN].levels
    for target, key in TARGET_SCORES.items():
        q = predictions[[f"{target}_q{level:g}" for level in levels]].to_numpy(float)
        y = observed[target].to_numpy(float)
        ok = np.isfinite(y)
        prefix = key.split("_")[0] if target == SHARE_COLUMN else key.rsplit("_", 1)[0]
        out["ours"][f"{prefix}_crps"] = quantile_crps(y[ok], q[ok], levels)
        out["ours"][f"{prefix}_coverage_{levels[0]:g}_{levels[-1]:g}"] = coverage(y[ok], q[ok, 0], q[ok, -1])
    lead = predictions["lead_h"].to_numpy()
    out["ours"]["share_rmse_by_lead"] = {
        f"{a}-{b}h": _rmse(observed[SHARE_COLUMN].to_numpy(float)[(lead >= a) & (lead <= b)],
                           predictions[SHARE_COLUMN].to_numpy(float)[(lead >= a) & (lead <= b)])
        for a, b in ((1, 6), (7, 12), (13, 18), (19, 24)) if ((lead >= a) & (lead <= b)).any()}
    return {
        **out,
        "period": [str(rows["time"].min()), str(rows["time"].max())],
        "hours": int(len(rows)),
        "issue_hour_utc": issue_hour,
        "test_months": [str(o.date()) for o in test_origins[:-1]],
        "selection": selection,
        "chosen": {t: c.describe() for t, c in chosen.items()},
    }

