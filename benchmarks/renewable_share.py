"""Score the day-ahead renewable-share model against two baselines on DACF-format files, per balancing area.

    python benchmarks/renewable_share.py --train PATH --test PATH
    python benchmarks/renewable_share.py --train ../shared/data/dacf --split-date 2020-11-01
    python benchmarks/renewable_share.py --train ../shared/data/dacf --split-date 2020-09-01 --test-days 61  # dev

PATH is a file, a directory or a glob (quote it) of DACF-format CSVs, one balancing area per file (named by
an ``area`` column or the file name; several files of one area are joined). With ``--split-date`` the rows
before the date train and the rows from it test (the test files default to the training files). Options of
our model are chosen by rolling-origin validation inside the training rows only (``--folds`` blocks of
``--fold-days`` days, origins ``--step-days`` apart, the last block ending with the training rows); the
``--ensemble`` best options by mean fold RMSE are refitted on all training rows and their shares averaged.
The target is ``wind_solar_share``; the model sees only the GFS weather columns and the time of the rows it
forecasts (day-ahead, no observed share). Baselines, fitted on the same training rows: the mean share by UTC
hour of day, and least squares of the share on the five weather columns.

Prints one JSON object: per area ``model`` / ``climatology`` / ``linear_weather`` scores (rmse, mae, r2 on the
test rows), ``dayahead_anchors`` (DACF's protocol: share RMSE and direct carbon-intensity MAPE of persistence,
hour-of-day climatology and the file's published forecasts, :mod:`carbonsync.evaluate.dayahead`), the better
baseline by RMSE, our RMSE ratio to it, the folds, the chosen options and every candidate's fold RMSEs (with
the baselines' RMSEs on the same folds); and a summary. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# one BLAS thread: the ridge fits are small, and threaded BLAS is ~100x slower on a busy shared machine
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carbonsync.data.observations.dacf import DacfError, load_dacf_paths  # noqa: E402
from carbonsync.evaluate.dayahead import DayAheadError, score_anchors  # noqa: E402
from carbonsync.models.share import (  # noqa: E402
    DEFAULT_GRID,
    TARGET,
    WEATHER,
    HourOfDayClimatology,
    LinearWeatherBaseline,
    ShareModelError,
    rolling_folds,
    scores,
    tune,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", required=True, help="training file(s), directory or glob")
    parser.add_argument("--test", nargs="+", default=None, help="test file(s), directory or glob (default: the training paths)")
    parser.add_argument("--split-date", default=None, help="train on rows before this UTC date, test on rows from it")
    parser.add_argument("--test-days", type=float, default=None,
                        help="score only the first N days of the test rows (e.g. a dev period inside the training year)")
    parser.add_argument("--folds", type=int, default=4, help="rolling-origin validation folds inside the training rows")
    parser.add_argument("--fold-days", type=int, default=61, help="length of each validation block (days)")
    parser.add_argument("--step-days", type=int, default=30, help="days between the folds' origins")
    parser.add_argument("--ensemble", type=int, default=5, help="number of best options averaged")
    parser.add_argument("--areas", nargs="+", default=None, help="only these areas")
    parser.add_argument("--alphas", nargs="+", type=float, default=list(DEFAULT_GRID["alpha"]),
                        help="ridge penalties tried")
    parser.add_argument("--capacity-days", nargs="+", type=int, default=list(DEFAULT_GRID["capacity_days"]),
                        help="capacity windows (days) tried")
    parser.add_argument("--half-lives", nargs="+", type=float, default=None,
                        help="sample-weight half-lives (days) tried besides uniform weights "
                             f"(default {[h for h in DEFAULT_GRID['half_life_days'] if h is not None]}; 0 = uniform only)")
    parser.add_argument("--no-correction", action="store_true", help="do not try the ridge share correction")
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _split(train_areas, test_areas, split_date, test_days=None):
    pairs = {}
    for name, train in train_areas.items():
        if name not in test_areas:
            _log(f"{name}: no test data, skipped")
            continue
        train_frame, test_frame = train.frame, test_areas[name].frame
        if split_date is not None:
            cut = pd.Timestamp(split_date)
            train_frame, test_frame = train_frame[train_frame.index < cut], test_frame[test_frame.index >= cut]
        train_frame = train_frame.dropna(subset=[*WEATHER, TARGET, "total_generation"])
        test_frame = test_frame.dropna(subset=[*WEATHER, TARGET])
        if test_days is not None and not test_frame.empty:
            test_frame = test_frame[test_frame.index < test_frame.index[0] + pd.Timedelta(days=test_days)]
        if train_frame.empty or test_frame.empty:
            raise SystemExit(f"area {name}: {'training' if train_frame.empty else 'test'} rows are empty after the split")
        if test_frame.index[0] <= train_frame.index[-1]:
            raise SystemExit(
                f"area {name}: test rows start at {test_frame.index[0]}, not after the last training row "
                f"{train_frame.index[-1]}; give separate periods or --split-date"
            )
        pairs[name] = (train_frame, test_frame)
    missing = sorted(set(test_areas) - set(train_areas))
    if missing:
        _log(f"areas with test data but no training data, skipped: {missing}")
    if not pairs:
        raise SystemExit(f"no area has both training and test data (train: {sorted(train_areas)}, test: {sorted(test_areas)})")
    return pairs


def _baselines_on_folds(train: pd.DataFrame, args: argparse.Namespace) -> dict[str, list[float]]:
    """RMSE of both baselines on the same rolling-origin folds as the model's validation (training rows only)."""
    out: dict[str, list[float]] = {"climatology": [], "linear_weather": []}
    for origin, end in rolling_folds(train.index, args.folds, args.fold_days, args.step_days):
        fit_part, val_part = train[train.index <= origin], train[(train.index > origin) & (train.index <= end)]
        y = val_part[TARGET].to_numpy()
        for key, baseline in (("climatology", HourOfDayClimatology()), ("linear_weather", LinearWeatherBaseline())):
            out[key].append(round(scores(y, baseline.fit(fit_part).predict(val_part).to_numpy())["rmse"], 5))
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        train_areas = load_dacf_paths(args.train)
        test_areas = load_dacf_paths(args.test) if args.test else train_areas
    except DacfError as err:
        raise SystemExit(f"error: {err}") from None
    if args.areas:
        train_areas = {k: v for k, v in train_areas.items() if k in args.areas}
    pairs = _split(train_areas, test_areas, args.split_date, args.test_days)

    half_lives = DEFAULT_GRID["half_life_days"] if args.half_lives is None else \
        (None, *sorted({h for h in args.half_lives if h > 0}, reverse=True))
    grid = {"capacity": ("none", "recent"), "capacity_days": tuple(args.capacity_days), "alpha": tuple(args.alphas),
            "correction": (False,) if args.no_correction else (False, True), "half_life_days": tuple(half_lives)}
    results = {}
    for name, (train, test) in pairs.items():
        start = time.perf_counter()
        y = test[TARGET].to_numpy()
        try:
            model, report = tune(train, area=name, folds=args.folds, fold_days=args.fold_days, step_days=args.step_days,
                                 grid=grid, ensemble=args.ensemble)
        except ShareModelError as err:
            raise SystemExit(f"area {name}: {err}") from None
        report["baselines_fold_rmse"] = _baselines_on_folds(train, args)
        entry = {
            "model": scores(y, model.predict(test).to_numpy()),
            "climatology": scores(y, HourOfDayClimatology().fit(train).predict(test).to_numpy()),
            "linear_weather": scores(y, LinearWeatherBaseline().fit(train).predict(test).to_numpy()),
        }
        try:   # DACF's protocol (issue 00 UTC of D, hours D 01:00 ... D+1 00:00): share RMSE and CI MAPE
            entry["dayahead_anchors"] = score_anchors(test_areas[name], (train.index[0], train.index[-1]),
                                                      (test.index[0], test.index[-1]), train_area=train_areas[name])
        except DayAheadError as err:
            _log(f"{name}: no day-ahead anchors ({err})")
        better = min(("climatology", "linear_weather"), key=lambda k: entry[k]["rmse"])
        entry.update({
            "better_baseline": better,
            "rmse_ratio_vs_better_baseline": entry["model"]["rmse"] / entry[better]["rmse"],
            "beats_better_baseline": entry["model"]["rmse"] < entry[better]["rmse"],
            "train_period": [str(train.index[0]), str(train.index[-1])],
            "test_period": [str(test.index[0]), str(test.index[-1])],
            "test_hours": len(test),
            "tuning": report,
            "fitted": model.describe(),
            "repairs": train_areas[name].repairs,
        })
        results[name] = entry
        _log(f"{name}: model rmse {entry['model']['rmse']:.4f}, climatology {entry['climatology']['rmse']:.4f}, "
             f"linear {entry['linear_weather']['rmse']:.4f}; mean fold rmse {report['ensemble_mean_val_rmse']:.4f} "
             f"({time.perf_counter() - start:.1f} s)")
    ratios = [r["rmse_ratio_vs_better_baseline"] for r in results.values()]
    out = {
        "target": TARGET,
        "train": [str(p) for p in args.train],
        "test": [str(p) for p in (args.test or args.train)],
        "split_date": args.split_date,
        "test_days": args.test_days,
        "validation": {"folds": args.folds, "fold_days": args.fold_days, "step_days": args.step_days,
                       "ensemble": args.ensemble},
        "grid": grid,
        "areas": results,
        "summary": {
            "areas": len(results),
            "areas_beating_better_baseline": int(sum(r["beats_better_baseline"] for r in results.values())),
            "median_rmse_ratio_vs_better_baseline": float(np.median(ratios)),
            "max_rmse_ratio_vs_better_baseline": float(np.max(ratios)),
        },
    }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
