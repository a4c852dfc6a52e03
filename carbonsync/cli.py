"""The ``carbonsync`` command: one subcommand per pipeline stage, each taking Hydra overrides.

    carbonsync run                       # the main job on the sample world
    carbonsync run size=tiny run_dir=outputs/tiny
    carbonsync train-backbone run_dir=outputs/main train.backbone.epochs=2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

STAGES: dict[str, tuple[str, str]] = {
    "sample-world": ("make_data", "generate the sample world (canonical store, zones, zone truth)"),
    "prepare": ("make_data", "build the canonical store from ERA5 (data=era5_arco or data=era5_wb2)"),
    "train-backbone": ("train_backbone", "train the SFNO backbone (6-hourly steps)"),
    "train-irradiance": ("train_irradiance", "train the AFNO hourly irradiance diagnostic"),
    "train-head": ("train_head", "train the regional head on hindcasts"),
    "forecast": ("forecast", "run forecasts and export them to the forecast Zarr store"),
    "export": ("export", "append forecasts for new init times to a forecast store (incremental, crash-safe; "
                         "forecast.export.{init_times | start,end,every_hours}, .store, .workers)"),
    "rank": ("rank", "rank regions and schedule the job queue from the latest forecast"),
    "plot": ("plots", "plot maps and zone renewable share from the forecast store"),
    "evaluate": ("evaluate", "score the backbone by lead time against persistence and climatology (test split)"),
    "run": ("run_all", "the main job: every stage above, end to end"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carbonsync",
        description="Weather-aware compute: forecast renewable share and place training jobs.",
        epilog="Overrides use Hydra syntax, e.g. `carbonsync run size=tiny run_dir=outputs/tiny`; "
               "`carbonsync config` prints the composed configuration.",
    )
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (_, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("overrides", nargs="*", help="Hydra overrides (key=value, group=option)")
    p = sub.add_parser("config", help="print the composed configuration")
    p.add_argument("overrides", nargs="*")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from omegaconf import OmegaConf

    from carbonsync.config import compose

    overrides = list(args.overrides)
    if args.stage == "prepare" and not any(o.startswith("data=") for o in overrides):
        overrides.append("data=era5_arco")
    cfg = compose(overrides)
    if args.stage == "config":
        print(OmegaConf.to_yaml(cfg))
        return 0
    from carbonsync import pipeline

    stage: Callable = getattr(pipeline, STAGES[args.stage][0])
    result = stage(cfg)
    if args.stage not in ("run", "rank") and result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
