"""GEFCom2014 wind/solar benchmark: our station model against a power-curve baseline and climatology.

    python benchmarks/gefcom2014.py --track wind --train PATH --test PATH [--holdout last-month]
    python benchmarks/gefcom2014.py --track solar --train PATH --test PATH --test-from 2014-05-01

PATH is any file in the format of ``gefcom2014/{wind,solar}/*.csv.gz`` of the shared data (read by
:mod:`carbonsync.data.observations.gefcom`). Test rows are the test file's hours with observed power inside
the test window, scored for every hour (night hours included for solar, as GEFCom did):

- ``--holdout last-month``: each farm's last calendar month with observed power (hour-ending labels, so
  the hour ending 00:00 on the 1st belongs to the previous month). Farms sharing a month form one window.
- ``--test-from D [--test-until E]``: hours ending after D (and at or before E), all farms.
- neither: every observed hour of the test file (for a separately prepared test file).

For each window a model is trained only on the train file's observed hours ending at or before the
window start (rolling origin: nothing from the window or after it, for any farm). The last calendar month
of that training period is the validation month (early stopping, and split-conformal widening of the
quantile band: ``StationModel.calibrate``); the model is fitted on the months before it. ``--tune``
moves everything one month earlier — it scores the validation month with a model fitted on the months
before it — and is what the hyper-parameters were chosen with; the test month is never used.

Baselines, fitted on the whole training period of each window: ``power_curve`` — wind: per-farm binned
empirical power curve of the 100 m speed (0.5 m/s bins with >= 5 hours, linear between bin centres);
solar: per-farm least-squares line ``cf = a + b * ssrd`` (W m-2), clipped to [0, 1]. ``climatology`` —
per-farm mean by hour of day and calendar month (hour of day alone where the month is absent from training).

Prints one JSON object on stdout (progress on stderr): ``rmse``, ``mae``, quantile scores of our model,
``baselines`` with their ``rmse``/``mae``, ratios, and per-window details.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from carbonsync.data.observations.gefcom import hour_ending_month, last_observed_month, load_gefcom  # noqa: E402
from carbonsync.models.station import StationFeatures, fit_station_model, solar_features, wind_features  # noqa: E402

# GEFCom2014 does not publish the solar sites' location ("three solar farms in Australia"); the hourly ssrd
# peaks near 02 UTC, i.e. solar noon at about 150 E. We assume south-eastern Australia near Canberra.
SOLAR_SITE = (-35.3, 149.1)
# chosen with --tune on the validation months (see benchmarks/README.md)
MODEL_DEFAULTS = {
    "wind": {"members": 5, "hidden": 64, "layers": 2, "embed_dim": 16, "epochs": 30, "patience": 5, "lr": 2e-3,
             "weight_decay": 1e-4, "batch_size": 1024},
    "solar": {"members": 3, "hidden": 64, "layers": 2, "embed_dim": 4, "epochs": 30, "patience": 5, "lr": 3e-3,
              "weight_decay": 1e-4, "batch_size": 512},
}
POWER_CURVE_BIN = 0.5  # m s-1
MIN_BIN_HOURS = 5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- baselines


def power_curve_baseline(train: pd.DataFrame, test: pd.DataFrame, track: str) -> np.ndarray:
    """Per-farm binned empirical power curve of the 100 m speed (wind) or linear fit on ssrd (solar)."""
    pred = np.full(len(test), np.nan)
    for zone, rows in test.groupby("zone").groups.items():
        tr = train[train["zone"] == zone]
        if tr.empty:
            tr = train  # a farm unseen in training gets the pooled fit
        y = tr["capacity_factor"].to_numpy()
        if track == "wind":
            x, xt = np.hypot(tr["u100"], tr["v100"]).to_numpy(), np.hypot(test.loc[rows, "u100"], test.loc[rows, "v100"])
            bins = np.floor(x / POWER_CURVE_BIN).astype(int)
            stats = pd.DataFrame({"bin": bins, "y": y}).groupby("bin")["y"].agg(["mean", "size"])
            stats = stats[stats["size"] >= MIN_BIN_HOURS]
            centres = (stats.index.to_numpy() + 0.5) * POWER_CURVE_BIN
            pred[test.index.get_indexer(rows)] = np.interp(xt.to_numpy(), centres, stats["mean"].to_numpy())
        else:
            x, xt = tr["ssrd"].to_numpy() / 3600.0, test.loc[rows, "ssrd"].to_numpy() / 3600.0
            b, a = np.polyfit(x, y, 1)
            pred[test.index.get_indexer(rows)] = np.clip(a + b * xt, 0.0, 1.0)
    return pred


def climatology_baseline(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Per-farm mean by hour of day and calendar month, falling back to hour of day, then the farm mean."""

    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        t = pd.DatetimeIndex(frame["time"])
        return pd.DataFrame({"zone": frame["zone"].to_numpy(), "hour": t.hour, "month": (t - pd.Timedelta(hours=1)).month,
                             "y": frame["capacity_factor"].to_numpy() if "capacity_factor" in frame else np.nan})

    tr, te = keyed(train), keyed(test)
    by_month = tr.groupby(["zone", "hour", "month"])["y"].mean().rename("m")
    by_hour = tr.groupby(["zone", "hour"])["y"].mean().rename("h")
    te = te.join(by_month, on=["zone", "hour", "month"]).join(by_hour, on=["zone", "hour"])
    return te["m"].fillna(te["h"]).fillna(tr["y"].mean()).to_numpy()


# ------------------------------------------------------------------------------------------------ helpers


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    err = pred - y
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def quantile_scores(quant: np.ndarray, levels: tuple[float, ...], y: np.ndarray) -> dict[str, float]:
    diff = y[:, None] - quant
    pinball = np.maximum(np.asarray(levels) * diff, (np.asarray(levels) - 1) * diff).mean()
    lo, hi = levels.index(min(levels)), levels.index(max(levels))
    coverage = float(np.mean((y >= quant[:, lo]) & (y <= quant[:, hi])))
    return {"pinball": float(pinball), f"coverage_{levels[lo]:g}_{levels[hi]:g}": coverage}


def month_before(start: pd.Timestamp) -> pd.Timestamp:
    """The start (hour-ending label) of the calendar month before the month starting at ``start``."""
    return start - pd.DateOffset(months=1)


def build_features(frame: pd.DataFrame, track: str, context: tuple[str, ...] | None = None) -> StationFeatures:
    if track == "wind":
        return wind_features(frame, context_sites=context)
    return solar_features(frame, *SOLAR_SITE)


def windows(test: pd.DataFrame, args: argparse.Namespace) -> list[tuple[pd.Timestamp | None, pd.Timestamp | None, list[str]]]:
    """Test windows ``(start, end, zones)``: hours ending in ``(start, end]``."""
    if args.holdout == "last-month":
        by_month: dict[pd.Period, list[str]] = {}
        for zone, month in last_observed_month(test).items():
            by_month.setdefault(month, []).append(zone)
        return [(month.start_time, (month + 1).start_time, sorted(z)) for month, z in sorted(by_month.items())]
    zones = sorted(test.loc[test["capacity_factor"].notna(), "zone"].unique())
    start = pd.Timestamp(args.test_from) if args.test_from else None
    end = pd.Timestamp(args.test_until) if args.test_until else None
    return [(start, end, zones)]


def in_window(times: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp | None) -> np.ndarray:
    mask = np.ones(len(times), dtype=bool)
    if start is not None:
        mask &= (times > start).to_numpy()
    if end is not None:
        mask &= (times <= end).to_numpy()
    return mask


# ---------------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    track = args.track
    train_df = load_gefcom(args.train, track)
    test_df = train_df if Path(args.test).resolve() == Path(args.train).resolve() else load_gefcom(args.test, track)
    log(f"loaded {args.train} ({len(train_df)} rows) and {args.test} ({len(test_df)} rows)")
    for name, frame in (("train", train_df), ("test", test_df)):
        for repair in frame.attrs.get("repairs", []):
            log(f"{name} file repair: {repair}")
    config = dict(MODEL_DEFAULTS[track])
    for key in ("members", "epochs", "hidden", "layers", "embed_dim", "lr", "weight_decay", "patience", "batch_size"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    context = tuple(sorted(train_df["zone"].unique())) if track == "wind" and not args.no_context else ()
    train_feats = build_features(train_df, track, context if track == "wind" else None)
    test_feats = train_feats if test_df is train_df else build_features(test_df, track, context if track == "wind" else None)
    # feature rows are sorted by (zone, time); align frames to them
    key = ["zone", "time"]
    train_sorted = train_df.sort_values(key, kind="stable").reset_index(drop=True)
    test_sorted = test_df.sort_values(key, kind="stable").reset_index(drop=True)
    train_observed = np.isfinite(train_feats.target)

    all_y, ours, ours_q, pc, clim, details = [], [], [], [], [], []
    levels: tuple[float, ...] = ()
    for start, end, zones in windows(test_sorted, args):
        if args.tune:  # score the validation month instead: shift the window one month earlier
            if start is None:  # separate test file: the train file's last month plays the test month
                start = hour_ending_month(train_sorted.loc[train_observed, "time"]).max().start_time
                end = start + pd.DateOffset(months=1)
            else:
                start, end = month_before(start), start
        train_time = train_sorted["time"]
        history = train_observed & (in_window(train_time, None, start) if start is not None else True)
        if start is None and test_df is train_df:
            raise SystemExit("test file = train file needs --holdout last-month or --test-from")
        last = hour_ending_month(train_sorted.loc[history, "time"]).max()
        val_mask = history & in_window(train_time, last.start_time, (last + 1).start_time)
        fit_mask = history & ~val_mask
        score_feats, score_sorted = (train_feats, train_sorted) if args.tune else (test_feats, test_sorted)
        test_mask = np.isfinite(score_feats.target) & in_window(score_sorted["time"], start, end)
        test_mask &= score_sorted["zone"].isin(zones).to_numpy()
        if not test_mask.any():
            raise SystemExit(f"no observed test hours in window ({start}, {end}] for zones {zones}")
        if not fit_mask.any():
            raise SystemExit(f"no training hours before the validation month {last} (window starting {start})")
        log(f"window ({start}, {end}] zones {','.join(zones)}: fit {int(fit_mask.sum())} h, "
            f"validation {last} {int(val_mask.sum())} h, test {int(test_mask.sum())} h")
        tw = time.perf_counter()
        model = fit_station_model(train_feats.subset(fit_mask), train_feats.subset(val_mask), seed=args.seed,
                                  num_threads=args.threads, **config)
        widening = model.calibrate(train_feats.subset(val_mask))  # conformal band on the validation month
        point, quant = model.predict(score_feats.subset(test_mask))
        levels = model.quantile_levels
        y = score_feats.target[test_mask]
        base_train = train_sorted[history]
        test_rows = score_sorted[test_mask].reset_index(drop=True)
        pc_pred = power_curve_baseline(base_train, test_rows, track)
        clim_pred = climatology_baseline(base_train, test_rows)
        epochs = [len(h["val_rmse"]) for h in model.history]
        details.append({
            "window": [None if start is None else str(start), None if end is None else str(end)], "zones": zones,
            "fit_hours": int(fit_mask.sum()), "validation_month": str(last), "validation_hours": int(val_mask.sum()),
            "test_hours": int(test_mask.sum()), "epochs_run": epochs,
            "best_val_rmse": [float(min(h["val_rmse"])) for h in model.history if h["val_rmse"]],
            "band_widening_logit": widening,
            "ours": scores(point, y), "power_curve": scores(pc_pred, y), "climatology": scores(clim_pred, y),
            "fit_s": round(time.perf_counter() - tw, 1),
        })
        log(f"  ours {details[-1]['ours']}  power_curve {details[-1]['power_curve']}  ({details[-1]['fit_s']} s)")
        all_y.append(y)
        ours.append(point)
        ours_q.append(quant)
        pc.append(pc_pred)
        clim.append(clim_pred)

    y = np.concatenate(all_y)
    ours_s, pc_s, clim_s = (scores(np.concatenate(p), y) for p in (ours, pc, clim))
    return {
        "track": track, "train": str(args.train), "test": str(args.test),
        "split": "validation months (--tune)" if args.tune else (
            "each farm's last month of observed power" if args.holdout == "last-month" else
            f"test hours in ({args.test_from}, {args.test_until}]"),
        "n_test_hours": int(len(y)), **ours_s, **quantile_scores(np.concatenate(ours_q), levels, y),
        "baselines": {"power_curve": pc_s, "climatology": clim_s},
        "rmse_reduction_vs_power_curve": 1.0 - ours_s["rmse"] / pc_s["rmse"],
        "rmse_reduction_vs_climatology": 1.0 - ours_s["rmse"] / clim_s["rmse"],
        "model": config | {"seed": args.seed, "context_sites": list(context),
                           **({"solar_site_lat_lon": list(SOLAR_SITE)} if track == "solar" else {})},
        "windows": details, "wall_s": round(time.perf_counter() - t0, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--track", choices=("wind", "solar"), required=True)
    p.add_argument("--train", type=Path, required=True, help="GEFCom2014-format CSV(.gz) to train on")
    p.add_argument("--test", type=Path, required=True, help="GEFCom2014-format CSV(.gz) to score (may be --train)")
    p.add_argument("--holdout", choices=("last-month",), default=None, help="each farm's last month of observed power")
    p.add_argument("--test-from", default=None, help="score hours ending after this time (UTC)")
    p.add_argument("--test-until", default=None, help="... and at or before this time")
    p.add_argument("--tune", action="store_true", help="score the validation month before each window instead")
    p.add_argument("--no-context", action="store_true", help="wind: no other sites' forecasts as features")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    for name, typ in (("members", int), ("epochs", int), ("hidden", int), ("layers", int), ("embed_dim", int),
                      ("lr", float), ("weight_decay", float), ("patience", int), ("batch_size", int)):
        p.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None, help="override the tuned default")
    args = p.parse_args(argv)
    if args.holdout and (args.test_from or args.test_until):
        p.error("--holdout and --test-from/--test-until are exclusive")
    return args


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(run(parse_args(argv)), indent=1))


if __name__ == "__main__":
    main()
