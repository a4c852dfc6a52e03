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

import numpy as np
import pandas as pd

from carbonsync.core.errors import CarbonSyncError
from carbonsync.data.observations.dacf import SHARE_COLUMN, DacfArea, products

__all__ = ["DayAheadError", "ci_mape", "dayahead_targets", "hour_of_day_climatology", "persistence", "published",
           "score_anchors", "share_rmse"]

HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)


class DayAheadError(CarbonSyncError, ValueError):
    """Inputs that do not fit the day-ahead protocol (no complete day, misaligned series)."""


def dayahead_targets(times: pd.DatetimeIndex) -> pd.DataFrame:
    """``issue_time``, ``time`` (the target hour) and ``lead_h`` (1-24) of every day D whose 24 target hours
    D 01:00 ... D+1 00:00 are all in ``times`` (hourly, naive UTC)."""
    times = pd.DatetimeIndex(times)
    present = set(times)
    rows = []
    for day in pd.DatetimeIndex(sorted({t.floor("D") for t in times})):
        hours = [day + k * HOUR for k in range(1, 25)]
        if all(h in present for h in hours):
            rows += [(day, h, k) for k, h in enumerate(hours, start=1)]
    if not rows:
        raise DayAheadError(f"no complete day-ahead day (D 01:00 ... D+1 00:00) in {len(times)} times")
    return pd.DataFrame(rows, columns=["issue_time", "time", "lead_h"])


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
    return float(np.sqrt(np.mean((f - t) ** 2)))


def ci_mape(forecast: pd.Series, truth: pd.Series) -> float:
    """Mean absolute percentage error (%) of a carbon intensity, over times both have with truth > 0."""
    f, t = _aligned(forecast, truth)
    keep = t > 0
    if not keep.any():
        raise DayAheadError(f"'{truth.name}' is never positive: MAPE is undefined")
    return float(100.0 * np.mean(np.abs(f[keep] - t[keep]) / t[keep]))


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
