"""The ``carbonsync`` command: one subcommand per pipeline stage, each taking Hydra overrides.

    carbonsync run                       # the main job on the sample world
    carbonsync run size=tiny run_dir=outputs/tiny
    carbonsync -v train-backbone run_dir=outputs/main train.backbone.epochs=2
    carbonsync signals show --provider watttime --zone caiso --horizon 2h
    carbonsync signals fetch --provider file --path ../shared/data/caiso/caiso_np15_lmp_2024.zip --zone caiso \
        --start 2024-06-01 --end 2024-06-08 --out np15.csv
    carbonsync curtail run --trace ../shared/data/watttime/moer_4regions_2026-01-11.csv \
        --sites CAISO_NORTH SPP_TX NEM_SA --run-dir outputs/curtail

The run's report goes through the ``carbonsync`` logger to stdout (``-q`` warnings only, ``-v`` debug and
tracebacks), followed by the stage's result; progress bars (on a terminal only) and errors go to stderr. Errors
print ``carbonsync: error: <message>`` and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence

import pandas as pd
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from carbonsync import pipeline
from carbonsync.config import compose, typed
from carbonsync.control.actuators import restore_from_state_file
from carbonsync.control.wrapper import run_wrapped
from carbonsync.core.errors import CarbonSyncError
from carbonsync.core.logs import configure, detach
from carbonsync.core.time import utc_naive
from carbonsync.federated.accounting import PowerModel
from carbonsync.federated.replay import ReplayConfig, plot_schedule, replay
from carbonsync.federated.windows import WindowConfig
from carbonsync.signals import RECORDING_FORMATS, ReplayClock, SignalFormatError, get_signal, known_signals
from carbonsync.signals.show import describe, plot_signal, save_signal

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
    "serve": (pipeline.serve, "serve the run: forecast API (carbon-aware-sdk shaped), /metrics and a live dashboard "
                              "(serve.host, serve.port)"),
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
    _signal_parser(sub)
    _control_parser(sub)
    _curtail_parser(sub)
    return parser


def add_replay_arguments(p: argparse.ArgumentParser, trace_default: str | None = None) -> None:
    """The flags of a curtailment replay (``carbonsync curtail run`` and ``benchmarks/curtailment_replay.py``)."""
    d, w, pw = ReplayConfig(trace=""), WindowConfig(), PowerModel()
    p.add_argument("--trace", required=trace_default is None, default=trace_default,
                   help="marginal-emissions trace: CSV with point_time and one column per region (g CO2e/kWh)")
    p.add_argument("--sites", nargs="+", default=d.sites, help="the regions whose sites train (default: %(default)s)")
    p.add_argument("--regions", nargs="+", help="single-site baselines (default: every region of the trace)")
    p.add_argument("--runs", nargs="+", default=d.runs, choices=d.runs, help="which runs (default: all)")
    p.add_argument("--run-dir", default=d.run_dir, help="where the runs write (default: %(default)s)")
    p.add_argument("--budget-steps", type=int, default=d.budget_steps, help="optimizer steps of every run")
    p.add_argument("--trace-s-per-step", type=float, default=d.trace_s_per_step, help="modelled step time (trace s)")
    p.add_argument("--round-s", type=float, default=d.round_s, help="longest round (trace s)")
    p.add_argument("--outer-lr", type=float, default=d.outer_lr, help="outer learning rate (1: FedAvg)")
    p.add_argument("--outer-momentum", type=float, default=d.outer_momentum, help="outer Nesterov momentum")
    p.add_argument("--lr", type=float, default=d.lr, help="inner AdamW learning rate (cosine schedule)")
    p.add_argument("--on-level", type=float, default=w.on_level, help="enter the window below this (g/kWh)")
    p.add_argument("--off-level", type=float, default=w.off_level, help="leave the window above this (g/kWh)")
    p.add_argument("--off-delay-s", type=float, default=w.off_delay_s, help="out of window this long before release")
    p.add_argument("--provisioning-s", type=float, default=w.provisioning_s, help="provisioning delay")
    p.add_argument("--use-forecast", action="store_true",
                   help="skip windows the (perfect) forecast says are shorter than provisioning + --min-train-s")
    p.add_argument("--min-train-s", type=float, default=w.min_train_s)
    p.add_argument("--train-kw", type=float, default=pw.train_kw, help="node draw while training (kW)")
    p.add_argument("--idle-kw", type=float, default=pw.idle_kw, help="node draw while provisioned and idle (kW)")
    p.add_argument("--world-dir", help="the sample world of the SFNO workload (default: RUN_DIR/sample_world)")
    p.add_argument("--world-days", type=int, help="days of that sample world")
    p.add_argument("--plot", help="save the schedule figure here (default: RUN_DIR/schedule.png)")


def replay_config_from_args(args: argparse.Namespace) -> ReplayConfig:
    world = args.world_dir or os.path.join(args.run_dir, "sample_world")
    options: dict[str, object] = {"data_dir": os.path.abspath(world)}    # read by every process of the run
    if args.world_days:
        options["days"] = args.world_days
    windows = WindowConfig(on_level=args.on_level, off_level=args.off_level, off_delay_s=args.off_delay_s,
                           provisioning_s=args.provisioning_s, use_forecast=args.use_forecast,
                           min_train_s=args.min_train_s)
    return ReplayConfig(trace=args.trace, run_dir=args.run_dir, sites=list(args.sites), regions=args.regions,
                        windows=windows, power=PowerModel(args.train_kw, args.idle_kw), budget_steps=args.budget_steps,
                        trace_s_per_step=args.trace_s_per_step, round_s=args.round_s, outer_lr=args.outer_lr,
                        outer_momentum=args.outer_momentum, lr=args.lr, workload_options=options, runs=list(args.runs))


def replay_json(result: dict[str, object]) -> str:
    """The replay's JSON object without the per-round curves and plans (those stay in RUN_DIR/replay.json)."""
    runs = {name: {k: v for k, v in run.items() if k != "curve"} for name, run in result["runs"].items()}
    return json.dumps({**{k: v for k, v in result.items() if k not in ("plans", "runs")}, "runs": runs}, indent=1)


def _curtail_parser(sub: argparse._SubParsersAction) -> None:
    help_text = "training that follows renewable-curtailment windows across sites, replayed on Flower"
    curtail = sub.add_parser("curtail", help=help_text, description=help_text)
    actions = curtail.add_subparsers(dest="action", metavar="ACTION", required=True)
    text = ("replay a marginal-emissions trace: centralised, single-site (each region), continuous federated and "
            "curtailment-aware training at equal samples; prints one JSON object and plots the schedule")
    add_replay_arguments(actions.add_parser("run", help=text, description=text))


def _curtail(args: argparse.Namespace) -> int:
    config = replay_config_from_args(args)
    result = replay(config)
    sys.stdout.write(replay_json(result) + "\n")
    if "curtailment" in config.runs:
        path = plot_schedule(result, args.plot or os.path.join(config.run_dir, "schedule.png"))
        sys.stdout.write(f"plotted {path}\n")
    return 0


def _control_parser(sub: argparse._SubParsersAction) -> None:
    help_text = "the runtime controller: run a training command under it, or restore GPU power limits"
    control = sub.add_parser("control", help=help_text, description=help_text)
    actions = control.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser("run", help="run a command under the controller: carbonsync control run [overrides] -- CMD",
                           description="Runs CMD (after --) as a child process; pauses it in place (SIGSTOP/SIGCONT) "
                           "and caps GPU power as the controller decides. Overrides set the control node, e.g. "
                           "control.carbon.provider=watttime control.carbon.zone=caiso.")
    p.add_argument("overrides", nargs="*", help="Hydra overrides (control.*, run_dir=...)")
    p.add_argument("--replay-speed", type=float, default=1.0,
                   help="with control.replay_start: simulated seconds per wall-clock second")
    p = actions.add_parser("restore", help="put back the GPU power limits a killed controller left changed")
    p.add_argument("--state-file", help="the controller's state file (default: CARBONSYNC_CONTROL_STATE or "
                   "~/.cache/carbonsync/power_limits.json)")


def _control(args: argparse.Namespace, command: list[str]) -> int:
    if args.action == "restore":
        for line in restore_from_state_file(args.state_file):
            sys.stdout.write(line + "\n")
        return 0
    cfg = compose(list(args.overrides))
    return run_wrapped(command, typed(cfg).control, cfg.run_dir, replay_speed=args.replay_speed)


def _signal_parser(sub: argparse._SubParsersAction) -> None:
    help_text = "show, plot or save a grid signal (carbon intensity, marginal emissions, price, share, curtailment)"
    signals = sub.add_parser("signals", help=help_text, description=help_text + ". Credentials come from the "
                             "providers' environment variables (WATTTIME_USERNAME/WATTTIME_PASSWORD, "
                             "ELECTRICITYMAPS_API_KEY, ENTSOE_API_KEY).")
    actions = signals.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the providers and recorded file formats")
    for action, text in (("show", "print a signal (and plot it with --plot)"), ("fetch", "save a signal to --out")):
        p = actions.add_parser(action, help=text, description=text + ". With --horizon: a forecast; with "
                               "--start/--end: history; otherwise the latest value.")
        p.add_argument("--provider", required=True, help="a registered provider: " + ", ".join(known_signals()))
        p.add_argument("--zone", required=True, help="a lexicon zone (caiso, spain, ...) or the provider's own code")
        p.add_argument("--kind", help="signal kind (default: the provider's first)")
        p.add_argument("--start", help="history start (UTC)")
        p.add_argument("--end", help="history end (UTC, exclusive; default now)")
        p.add_argument("--horizon", help="forecast horizon, e.g. 24h")
        p.add_argument("--issued-before", help="the newest forecast issued before this time (UTC)")
        p.add_argument("--path", help="provider 'file': the recording (a file or directory)")
        p.add_argument("--store", help="provider 'carbonsync': the forecast store")
        p.add_argument("--at", help="replay the file or store as of this time (UTC; default now)")
        p.add_argument("--base-url", help="a live provider's base URL (e.g. a test server)")
        p.add_argument("--plot", help="also save a figure (.png, .svg, .pdf)")
        if action == "fetch":
            p.add_argument("--out", required=True, help="the file to write (.nc or .csv)")


def _signals(args: argparse.Namespace) -> int:
    if args.action == "list":
        sys.stdout.write("providers: " + ", ".join(known_signals()) + "\nrecorded formats (provider 'file'):\n")
        for fmt in RECORDING_FORMATS.values():
            sys.stdout.write(f"  {fmt.name}: {fmt.description}\n")
        return 0
    options: dict[str, object] = {}
    if args.provider in ("file", "carbonsync"):
        clock = ReplayClock(utc_naive(args.at) if args.at else utc_naive(pd.Timestamp.now("UTC")))
        if args.provider == "file":
            if not args.path:
                raise SignalFormatError("--provider file needs --path", provider="file")
            options.update(path=args.path, clock=clock)
        else:
            if not args.store:
                raise SignalFormatError("--provider carbonsync needs --store", provider="carbonsync")
            options.update(store=args.store, clock=clock)
    elif args.at:
        raise SignalFormatError("--at replays a recording; live providers answer as of now", provider=args.provider)
    if args.base_url:
        options["base_url"] = args.base_url
    signal = get_signal(args.provider, **options)
    if args.horizon:
        issued = utc_naive(args.issued_before) if args.issued_before else None
        ds = signal.forecast(args.zone, pd.Timedelta(args.horizon), issued_before=issued, kind=args.kind)
    elif args.start:
        end = utc_naive(args.end) if args.end else utc_naive(pd.Timestamp.now("UTC"))
        ds = signal.history(args.zone, utc_naive(args.start), end, kind=args.kind)
    else:
        ds = signal.latest(args.zone, kind=args.kind)
    if args.action == "fetch":
        sys.stdout.write(f"wrote {save_signal(ds, args.out)}\n")
    sys.stdout.write(describe(ds) + "\n")
    if args.plot:
        sys.stdout.write(f"plotted {plot_signal(ds, args.plot)}\n")
    return 0


def _run(args: argparse.Namespace, command: list[str] | None = None) -> int:
    if args.stage == "signals":
        return _signals(args)
    if args.stage == "control":
        return _control(args, command or [])
    if args.stage == "curtail":
        return _curtail(args)
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
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:  # `carbonsync control run [overrides] -- CMD ...`: CMD is not ours to parse
        command, argv = argv[argv.index("--") + 1:], argv[:argv.index("--")]
    args = build_parser().parse_args(argv)
    verbosity = -1 if args.quiet else args.verbose
    configure(verbosity)
    try:
        return _run(args, command)
    except KeyboardInterrupt:
        sys.stderr.write("carbonsync: interrupted\n")
        return 130
    except BrokenPipeError:  # the reader went away (`carbonsync signals show ... | head`): not a failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # as the Python docs advise
        return 0
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
