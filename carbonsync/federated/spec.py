"""The description of one replayed multi-site run that every process of it reads: driver, ServerApp, nodes.

A :class:`RunSpec` is written once (``spec.json`` in the run directory) before the run starts; the ServerApp
and each node's ClientApp load it by path (the Flower run config carries the path). It names the sites, each
site's plan (:class:`~carbonsync.federated.windows.SitePlan`), the trace span, the workload, the budget of
optimizer steps, the round length and each site's modelled speed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from carbonsync.core.checks import at_least, fail, non_empty, positive
from carbonsync.core.errors import ConfigError
from carbonsync.core.fs import write_json_atomic
from carbonsync.federated.accounting import EventLog, ReplayClock
from carbonsync.federated.windows import SitePlan

__all__ = ["RunSpec"]


@dataclass
class RunSpec:
    """One run: sites and their plans, trace span, workload, budget, rounds (trace seconds unless named wall)."""

    name: str
    run_dir: str
    sites: list[str]
    plans: dict[str, dict[str, Any]]
    start: str                                  # trace time the run starts
    end: str                                    # trace time the run may not pass
    budget_steps: int
    workload: str = "sfno-sample-world"
    workload_options: dict[str, Any] = field(default_factory=dict)
    lr: float = 2.0e-3                          # train-backbone's pretraining learning rate
    grad_clip: float = 1.0
    round_s: float = 1800.0                     # a round lasts at most this long (trace seconds)
    trace_s_per_step: dict[str, float] = field(default_factory=dict)   # each site's modelled step time
    outer_lr: float = 1.0                       # 1 and momentum 0: FedAvg; DiLoCo used 0.7 and 0.9
    outer_momentum: float = 0.0
    round_wall_s: float = 300.0                 # wall seconds a site may train in one round
    reply_grace_s: float = 30.0                 # wall seconds a round waits for replies past that
    join_wait_s: float = 90.0                   # wall seconds a round waits for a planned site's node
    poll_s: float = 0.5                         # wall seconds between looks for nodes

    def __post_init__(self) -> None:
        non_empty(self, "name", "sites")
        self.run_dir = str(Path(self.run_dir).resolve())     # every process of the run reads the same paths
        if len(set(self.sites)) != len(self.sites):
            raise fail("sites", self.sites, "names a site twice")
        missing = [s for s in self.sites if s not in self.plans]
        if missing:
            raise fail("plans", sorted(self.plans), f"has no plan for {', '.join(missing)}")
        at_least(self, 1, "budget_steps")
        positive(self, "lr", "grad_clip", "round_s", "round_wall_s", "poll_s")
        at_least(self, 0, "reply_grace_s", "join_wait_s")
        if self.end_time <= self.start_time:
            raise fail("end", self.end, f"must be after start {self.start}")
        for site in self.sites:
            step_s = self.trace_s_per_step.setdefault(site, 1.0)
            if not step_s > 0:
                raise fail(f"trace_s_per_step.{site}", step_s, "must be > 0")

    # -- derived --------------------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return Path(self.run_dir)

    @property
    def path(self) -> Path:
        return self.directory / "spec.json"

    @property
    def events_path(self) -> Path:
        return self.directory / "events.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        return self.directory / "server_state.pt"

    @property
    def result_path(self) -> Path:
        return self.directory / "result.json"

    def site_dir(self, site: str) -> Path:
        return self.directory / "sites" / site

    @property
    def clock_path(self) -> Path:
        return self.directory / "clock.json"

    def replay_clock(self) -> ReplayClock:
        return ReplayClock(self.clock_path, self.start)

    def event_log(self) -> EventLog:
        return EventLog(self.events_path, self.replay_clock())

    def site_plans(self) -> dict[str, SitePlan]:
        return {site: SitePlan.from_record(self.plans[site]) for site in self.sites}

    def shard(self, site: str) -> tuple[int, int]:
        """``(shard, shards)``: each site trains on its own shard of the training split."""
        if site not in self.sites:
            raise ConfigError(f"site '{site}' is not in this run (sites: {', '.join(self.sites)})")
        return self.sites.index(site), len(self.sites)

    @property
    def start_time(self) -> pd.Timestamp:
        return pd.Timestamp(self.start)

    @property
    def end_time(self) -> pd.Timestamp:
        return pd.Timestamp(self.end)

    # -- persistence ----------------------------------------------------------------------------------------

    def save(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return write_json_atomic(asdict(self), self.path)

    @classmethod
    def load(cls, path: str | Path) -> RunSpec:
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read the run spec {path}: {err}") from err
        try:
            return cls(**record)
        except TypeError as err:
            raise ConfigError(f"the run spec {path} is not a carbonsync run spec: {err}") from err
