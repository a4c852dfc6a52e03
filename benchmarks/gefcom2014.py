"""GEFCom2014 wind and solar by rolling origin: the renewables model against its physical prior alone, a
per-farm empirical power curve, climatology and persistence.

    D=../shared/data/gefcom2014
    python benchmarks/gefcom2014.py --track wind  --data $D/wind/gefcom2014_wind.csv.gz
    python benchmarks/gefcom2014.py --track solar --data $D/solar/gefcom2014_solar.csv.gz
    python benchmarks/gefcom2014.py --track wind  --data FILE --test-from 2013-01-01 [--test-until E] [--nwp-only]

FILE is any file in the format of ``gefcom2014/{wind,solar}/*.csv.gz`` (read by
:mod:`carbonsync.data.observations.gefcom`). The model is :mod:`carbonsync.models.renewables` through the
station adapter: windpowerlib's power curve (wind) or pvlib's PVWatts chain (solar) as the physical prior, a
learned correction from the NWP at the hour and its neighbours (all farms' winds for wind), the site, and
with autoregressive terms the observed output up to the daily 00 UTC issue (``--nwp-only`` drops them:
GEFCom's own task forecast a month ahead). The rule for the periods, the same for both tracks: the test runs
from the first month with at least six months of data before three selection months, to the end of the data
(``--test-from`` overrides it); the configuration is chosen on the three months before the test (each
predicted from the months before it), every test month is predicted by a fit on the months before it, and
the baselines are refitted the same way. Scored on every hour with observed power (night included for solar).

Prints one JSON object (:func:`carbonsync.evaluate.station.evaluate_station`): ``ours`` (rmse, mae, pinball,
crps, 10-90 % coverage, rmse by lead), ``physical_prior``, ``power_curve``, ``climatology``, ``persistence``,
the RMSE reductions, per-month scores and the selection report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carbonsync.data.observations.gefcom import load_gefcom  # noqa: E402
from carbonsync.evaluate.station import evaluate_station  # noqa: E402

# GEFCom2014 does not publish the solar sites' location ("three solar farms in Australia"); the hourly ssrd
# peaks near 02 UTC, i.e. solar noon at about 150 E. We assume south-eastern Australia near Canberra.
SOLAR_SITE = (-35.3, 149.1)
WARM_UP_MONTHS = 6
SELECTION_MONTHS = 3


def default_test_from(frame: pd.DataFrame) -> pd.Timestamp:
    """The first month start with ``WARM_UP_MONTHS`` of observed data before ``SELECTION_MONTHS`` selection months."""
    first = pd.DatetimeIndex(frame.loc[frame["capacity_factor"].notna(), "time"]).min() - pd.Timedelta(hours=1)
    return first.to_period("M").start_time + pd.DateOffset(months=WARM_UP_MONTHS + SELECTION_MONTHS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--track", choices=("wind", "solar"), required=True)
    p.add_argument("--data", type=Path, required=True, help="GEFCom2014-format CSV(.gz)")
    p.add_argument("--test-from", default=None, help="first test month (default: the rule in the docstring)")
    p.add_argument("--test-until", default=None, help="last test hour (default: the data's last observed hour)")
    p.add_argument("--folds", type=int, default=SELECTION_MONTHS, help="selection months before the test")
    p.add_argument("--nwp-only", action="store_true", help="no autoregressive terms (GEFCom's own task)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    start = time.perf_counter()
    frame = load_gefcom(args.data, args.track)
    for repair in frame.attrs.get("repairs", []):
        print(f"file repair: {repair}", file=sys.stderr)
    test_from = pd.Timestamp(args.test_from) if args.test_from else default_test_from(frame)
    result = evaluate_station(frame, args.track, test_from, args.test_until, folds=args.folds,
                              site=SOLAR_SITE if args.track == "solar" else None, autoregressive=not args.nwp_only)
    out = {"track": args.track, "data": str(args.data), "test_from": str(test_from.date()),
           **({"solar_site_lat_lon": list(SOLAR_SITE)} if args.track == "solar" else {}),
           **result, "wall_s": round(time.perf_counter() - start, 1)}
    print(f"{args.track}: rmse ours {result['ours']['rmse']:.4f}, power curve {result['power_curve']['rmse']:.4f} "
          f"({100 * result['rmse_reduction_vs_power_curve']:.1f} %), prior {result['physical_prior']['rmse']:.4f}",
          file=sys.stderr)
    print(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
