"""Curtailment-aware multi-site training on a marginal-emissions trace, against single-site and federated runs.

    python benchmarks/curtailment_replay.py                       # the study's 4-region trace, defaults below
    python benchmarks/curtailment_replay.py --trace FILE --sites A B C --budget-steps 2000

Runs ``carbonsync.federated.replay.replay`` (the code behind ``carbonsync curtail run``) at equal samples
processed: ``centralised`` (one process, the whole training split), ``single_site_<REGION>`` (that training
placed in each region of the trace, continuously from its start), ``federated`` (continuous federated training
across ``--sites`` on Flower) and ``curtailment`` (training that follows the sites' windows on Flower: real
SuperLink and SuperNode processes on loopback, one ClientApp process per site and round). The workload is
CarbonSync's SFNO backbone on a sample world (each site its own shard of the training split); every site's
step takes ``--trace-s-per-step`` seconds of trace time (the replay clock advances by modelled work, so the
figures do not depend on this machine's speed; wall time does). Energy is the power model's (training and
idle kW per node, the study's 2.024 and 0.468) times each site's time-aligned signal.

Prints one JSON object (``runs``: energy_kwh, emissions_kg, energy_in_windows_share, trace_hours, val_loss
per run; ``curtailment_vs_single_site_emissions`` per region; ``val_loss_vs_centralised``) and writes the
schedule figure (``--plot``, default ``RUN_DIR/schedule.png``); the full record, with per-round curves and
the plans, is ``RUN_DIR/replay.json``. With the study's result curves present (``curtail_llm/results``), their
final losses, perplexities, times and rounds are added under ``study``. The trace is not committed (no licence): it is read from
``$CARBONSYNC_DATA_DIR/watttime/moer_4regions_2026-01-11.csv``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from carbonsync.cli import add_replay_arguments, replay_config_from_args, replay_json
from carbonsync.core.settings import data_dir
from carbonsync.federated.replay import plot_schedule, replay

STUDY_TRACE = "watttime/moer_4regions_2026-01-11.csv"
STUDY_RESULTS = "curtail_llm/results"


def study_figures(results: Path, tail: int = 200) -> dict[str, Any]:
    """The study's own curves: per run the last step, its time (s), and the loss and perplexity averaged over
    the last ``tail`` logged steps (the curves are per-batch training losses); rounds from its event log."""
    out: dict[str, Any] = {}
    for path in sorted(results.glob("*.csv")):
        if path.stem.endswith("events"):
            events = pd.read_csv(path)
            kinds = events["event_type"].value_counts()
            out[path.stem] = {"rounds": int(kinds.get("ROUND_END", 0)), "elapsed_s": float(events["elapsed_s"].max()),
                              "provisionings": int(kinds.get("PROVISION_COMPLETE", 0))}
            continue
        curve = pd.read_csv(path)
        last = curve.tail(tail)
        out[path.stem] = {"last_step": int(curve["step"].iloc[-1]), "time_s": float(curve["time"].iloc[-1]),
                          "loss": float(last["loss"].mean()), "perplexity": float(math.exp(last["loss"].mean()))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_replay_arguments(parser, trace_default=str(data_dir() / STUDY_TRACE))
    parser.set_defaults(run_dir="outputs/curtailment_replay", budget_steps=2000, world_days=365)
    args = parser.parse_args(argv)
    if not os.path.exists(args.trace):
        parser.error(f"the trace {args.trace} does not exist (set CARBONSYNC_DATA_DIR or pass --trace)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    config = replay_config_from_args(args)
    tic = time.perf_counter()
    result = replay(config)
    result["wall_s"] = time.perf_counter() - tic
    if (data_dir() / STUDY_RESULTS).is_dir():
        result["study"] = study_figures(data_dir() / STUDY_RESULTS)
    print(replay_json(result))
    if "curtailment" in config.runs:
        path = plot_schedule(result, args.plot or os.path.join(config.run_dir, "schedule.png"))
        print(f"plotted {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
