"""Evaluation: WeatherBench2-style metrics (small pure functions over xarray objects), the training-split
climatology, the backbone's skill by lead time against persistence and climatology, DACF's day-ahead
protocol with its anchors (persistence, hour-of-day climatology, the published forecasts), the renewables
model's rolling-origin evaluations on DACF and station data, quantile scores, and plots.
"""

from carbonsync.evaluate.climatology import climatology_at, compute_climatology
from carbonsync.evaluate.dayahead import (
    DayAheadError,
    ci_mape,
    dayahead_targets,
    evaluate_dayahead,
    score_anchors,
    share_rmse,
)
from carbonsync.evaluate.metrics import acc, bias, coverage, mae, pinball, quantile_crps, r2, rmse, skill_score
from carbonsync.evaluate.plots import plot_forecast, save_png
from carbonsync.evaluate.skill import EvaluateConfig, evaluate_backbone, evaluate_forecasts, format_table, hindcast
from carbonsync.evaluate.station import evaluate_station

__all__ = [
    "DayAheadError",
    "EvaluateConfig",
    "ci_mape",
    "dayahead_targets",
    "evaluate_dayahead",
    "evaluate_station",
    "coverage",
    "pinball",
    "quantile_crps",
    "score_anchors",
    "share_rmse",
    "acc",
    "bias",
    "climatology_at",
    "compute_climatology",
    "evaluate_backbone",
    "evaluate_forecasts",
    "format_table",
    "hindcast",
    "mae",
    "plot_forecast",
    "r2",
    "rmse",
    "save_png",
    "skill_score",
]
