"""Day-ahead wind + solar share and carbon intensity per balancing area: the renewables model against DACF's
published forecasts, persistence, hour-of-day climatology and a linear-in-weather baseline, in one run.

    CARBONSYNC_DATA_DIR=../shared/data python benchmarks/renewable_share.py --train ../shared/data/dacf
    python benchmarks/renewable_share.py --train PATH --test PATH [--test-from DATE] [--test-until DATE]

PATH is a file, a directory or a glob (quoted) of DACF-format CSVs, one area per file. The protocol is DACF's:
a forecast issued at 00 UTC of day D for the hours D 01:00 ... D+1 00:00, using only what is known then
(:mod:`carbonsync.models.renewables.dacf`: the published production forecasts by fuel as the prior, observed
generation up to the issue time, calendar, clear-sky irradiance; not the GFS columns, published ~05 UTC).
Test months from ``--test-from`` (default 2020-07-01) are each predicted by a model fitted on every row
observed before the month (rolling origin); its configuration per target is chosen on the ``--folds`` months
before ``--test-from`` (each predicted from the months before it), never on test months. With ``--test``,
rows before ``--test-from`` come from the training files and rows from it on from the test files.

Prints one JSON object ``{"areas": {AREA: {"ours": {"share_rmse", "ci_mape", ...}, "dacf": {...},
"persistence": {...}, "climatology": {...}, "linear_weather": {...}, ...}}, "summary": {...}}``
(:func:`carbonsync.evaluate.dayahead.evaluate_dayahead`). ``linear_weather`` uses the GFS columns at the
target hour, which a 00 UTC issue would not have yet. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carbonsync.data.observations.dacf import DacfError, load_dacf_paths  # noqa: E402
from carbonsync.evaluate.dayahead import DayAheadError, evaluate_dayahead  # noqa: E402
from carbonsync.models.renewables import RenewablesError  # noqa: E402

ANCHORS = ("dacf", "persistence", "climatology", "linear_weather")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", required=True, help="training file(s), directory or glob")
    parser.add_argument("--test", nargs="+", default=None, help="test file(s) (default: the training files)")
    parser.add_argument("--test-from", default="2020-07-01", help="first test month (UTC date)")
    parser.add_argument("--test-until", default=None, help="last test hour (default: the data's end)")
    parser.add_argument("--folds", type=int, default=3, help="selection months before --test-from")
    parser.add_argument("--issue-hour", type=int, default=0, help="UTC hour of issue (>= 5 adds the GFS columns)")
    parser.add_argument("--areas", nargs="+", default=None, help="only these areas")
    return parser.parse_args(argv)


def summary(areas: dict[str, dict]) -> dict:
    """How many areas the model beats each anchor in, per score."""
    out = {"areas": len(areas)}
    for score in ("share_rmse", "ci_mape", "ci_lifecycle_mape"):
        out[score] = {f"beats_{anchor}": sum(r["ours"][score] < r[anchor][score] for r in areas.values())
                      for anchor in ANCHORS if all(anchor in r for r in areas.values())}
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        train_areas = load_dacf_paths(args.train)
        test_areas = load_dacf_paths(args.test) if args.test else train_areas
    except DacfError as err:
        raise SystemExit(f"error: {err}") from None
    names = [n for n in test_areas if n in train_areas and (not args.areas or n in args.areas)]
    if not names:
        raise SystemExit(f"no area has both training and test data (train {sorted(train_areas)}, "
                         f"test {sorted(test_areas)})")
    results = {}
    for name in names:
        start = time.perf_counter()
        try:
            results[name] = evaluate_dayahead(test_areas[name], args.test_from, args.test_until,
                                              train_area=train_areas[name], folds=args.folds,
                                              issue_hour=args.issue_hour)
        except (DayAheadError, RenewablesError) as err:
            raise SystemExit(f"area {name}: {err}") from None
        r = results[name]
        line = "; ".join(f"{key} " + " ".join(f"{name} {r[name][key]:.4g}" for name in ("ours", *ANCHORS) if name in r)
                         for key in ("share_rmse", "ci_mape"))
        print(f"{name}: {line} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    out = {"protocol": f"issue {args.issue_hour:02d} UTC of D, hours after it to D+1 00:00",
           "train": args.train, "test": args.test or args.train, "test_from": args.test_from,
           "test_until": args.test_until, "selection_folds": args.folds, "areas": results,
           "summary": summary(results)}
    print(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
