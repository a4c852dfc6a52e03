"""Replay carbon-aware placement policies hour by hour on real grid carbon-intensity traces.

    python benchmarks/placement_replay.py --traces ../shared/data/electricitymaps [--days 730 --jobs N --seed 0]

Reads every Electricity Maps portal CSV (one zone each; files of the same zone are merged) and every
ENTSO-E ``Time,Carbon Intensity`` CSV in ``--traces`` (other CSVs are skipped and listed), keeps the hours
all zones share, generates the seeded job queue of :mod:`carbonsync.placement.replay` over that span
(``--jobs``, default 4 per day), sizes one site per zone so that the cleanest cannot host every job at once,
and replays the policies carbon-agnostic, threshold, temporal (forecast), spatio-temporal (forecast) and
oracle. Prints one JSON object: per policy ``emissions_kg``, ``energy_kwh``, ``deadline_misses`` and
``oracle_savings_share`` (plus restarts, migrations and wall seconds), the sites, and the forecast's mean
absolute error against persistence. Progress goes to stderr. ``--write-queue DIR`` also writes the queue
and sites as YAML that ``carbonsync.placement.load_queue`` / ``load_sites`` read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from carbonsync.data.observations.electricitymaps import load_traces
from carbonsync.placement.replay import POLICIES, queue_documents, replay


def write_queue(out: dict, directory: Path) -> None:
    """The queue and sites as YAML files that ``load_queue`` / ``load_sites`` read (temp file, then rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, doc in zip(("queue.yaml", "sites.yaml"), queue_documents(out), strict=True):
        tmp = directory / f".{name}.tmp"
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        tmp.replace(directory / name)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=Path, required=True, help="directory of trace CSVs")
    parser.add_argument("--days", type=float, default=None, help="replay only the first DAYS of the shared span")
    parser.add_argument("--jobs", type=int, default=None, help="number of jobs (default 4 per day)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the job queue and site PUEs")
    parser.add_argument("--headroom", type=float, default=1.5, help="site capacity / carbon-agnostic peak use")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--write-queue", type=Path, default=None,
                        help="also write the generated queue and sites as DIR/queue.yaml and DIR/sites.yaml")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    traces = load_traces(args.traces)
    print(f"traces: zones {[str(z) for z in traces['zone'].values]}, {traces.sizes['time']} shared hours, "
          f"skipped {traces.attrs['skipped']}", file=sys.stderr)
    out = replay(traces, n_jobs=args.jobs, days=args.days, seed=args.seed, policies=args.policies, headroom=args.headroom)
    if args.write_queue is not None:
        write_queue(out, args.write_queue)
    for key in ("results", "queue", "site_list", "times", "intensity"):
        out.pop(key)
    out["traces"] = str(args.traces)
    out["skipped_files"] = json.loads(traces.attrs["skipped"])
    out["repairs"] = json.loads(traces.attrs["repairs"])
    out["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
