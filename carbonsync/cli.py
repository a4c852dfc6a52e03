"""The ``carbonsync`` command: one subcommand per pipeline stage, each taking Hydra overrides.

    carbonsync run                       # the main job on the sample world
    carbonsync run size=tiny run_dir=outputs/tiny
    carbonsync -v train-backbone run_dir=outputs/main train.backbone.epochs=2

The run's report goes through the ``carbonsync`` logger to stdout (``-q`` warnings only, ``-v`` debug and
tracebacks), followed by the stage's result; progress bars (on a terminal only) and errors go to stderr. Errors
print ``carbonsync: error: <message>`` and exit 1.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from carbonsync import pipeline
from carbonsync.config import compose
from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.logs import configure, detach

STAGES: dict[str, tuple[Callable, str]] = {
    "sample-world": (pipeline.make_data, "generate the sample world (canonical store, zones, zone truth)"),
    "prepare": (pipeline.make_data, "build the canonical store from ERA5 (data=era5_arco or data=era5_wb2)"),
    "train-backbone": (pipeline.train_backbone, "train the SFNO backbone (6-hourly steps)"),
    "train-irradiance": (pipeline.train_irradiance, "train the AFNO hourly irradiance diagnostic"),
    "train-head": (pipeline.train_head, "train the regional head on hindcasts"),
    "forecast": (pipeline.forecast, "run forecasts and write them to the forecast store (an Icechunk repository of Zarr groups)"),
    "export": (pipeline.export, "append forecasts for new init times to a forecast store (incremental, crash-safe; "
                                "forecast.export.{init_times | start,end,every_hours}, .store, .workers)"),
    "rank": (pipeline.rank, "rank regions and schedule the job queue from the latest forecast"),
    "plot": (pipeline.plots, "plot maps and zone renewable share from the forecast store"),
    "evaluate": (pipeline.evaluate, "score the backbone by lead time against persistence and climatology (test split)"),
    "run": (pipeline.run_all, "the main job: every stage above, end to end"),
}
# Errors whose message says what is wrong: printed as one line (the traceback only under -v).
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (CarbonSyncError, HydraException, OmegaConfBaseException, FileNotFoundError,
                                                    ValueError, KeyError, ImportError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carbonsync",
        description="Weather-aware compute: forecast renewable share and place training jobs.",
        epilog="Overrides use Hydra syntax, e.g. `carbonsync run size=tiny run_dir=outputs/tiny`; "
               "`carbonsync config` prints the composed configuration.",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="debug output and tracebacks")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (_, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("overrides", nargs="*", help="Hydra overrides (key=value, group=option)")
    p = sub.add_parser("config", help="print the composed configuration")
    p.add_argument("overrides", nargs="*")
    return parser


def _run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.stage == "prepare" and not any(o.startswith("data=") for o in overrides):
        overrides.append("data=era5_arco")
    cfg = compose(overrides)
    if args.stage == "config":
        sys.stdout.write(OmegaConf.to_yaml(cfg))
        return 0
    result = STAGES[args.stage][0](cfg)
    if args.stage not in ("run", "rank") and result is not None:
        sys.stdout.write(f"{result}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbosity = -1 if args.quiet else args.verbose
    configure(verbosity)
    try:
        return _run(args)
    except KeyboardInterrupt:
        sys.stderr.write("carbonsync: interrupted\n")
        return 130
    except EXPECTED_ERRORS as err:
        if verbosity > 0:
            traceback.print_exc(file=sys.stderr)
        message = " ".join(str(err).split()) or type(err).__name__  # one line
        if isinstance(err, KeyError) and not isinstance(err, CarbonSyncError):
            message = f"unknown key {err}"
        sys.stderr.write(f"carbonsync: error: {message}\n")
        if verbosity <= 0:
            sys.stderr.write("(run with -v for the traceback)\n")
        return 1
    except Exception as err:  # an unexpected failure: still one line unless -v, but say it is unexpected
        if verbosity > 0:
            traceback.print_exc(file=sys.stderr)
        message = " ".join(str(err).split())
        sys.stderr.write(f"carbonsync: error: unexpected {type(err).__name__}: {message}\n(run with -v for the traceback)\n")
        return 1
    finally:
        detach()

if __name__ == "__main__":
    sys.exit(main())
