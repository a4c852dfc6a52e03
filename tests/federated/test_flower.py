"""Real Flower processes: a SuperLink and one SuperNode per site on loopback; one node is SIGKILLed mid-round.

The run must finish its budget: the killed node's round is finished with the other sites (its partial work
dropped), the driver starts the site's node again, and the new node takes part in later rounds.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from carbonsync.federated.accounting import read_events
from carbonsync.federated.provisioner import FlowerError, flower_executable
from carbonsync.federated.run import continuous_plans, run_flower
from carbonsync.federated.spec import RunSpec
from carbonsync.federated.workload import SFNOWorkload

pytest.importorskip("flwr", reason="the 'federated' extra (flwr) is not installed")
try:
    for _name in ("flower-superlink", "flower-supernode", "flwr"):
        flower_executable(_name)
except FlowerError as _err:
    pytest.skip(str(_err), allow_module_level=True)

WORLD = dict(days=8, spinup_days=1, nlat=9, nlon=16, lmax=6, model_lmax=4, embed_dim=8, num_layers=1, batch_size=4,
             shard_block_states=4)
T0 = pd.Timestamp("2026-01-11T17:00")


def test_a_node_killed_mid_round_does_not_stall_the_run(tmp_path):
    world = dict(WORLD, data_dir=str(tmp_path / "world"))
    SFNOWorkload(**world)
    sites = ["A", "B", "C"]
    plans = continuous_plans(sites, T0, T0 + pd.Timedelta(hours=12), provisioning_s=300)
    spec = RunSpec(name="kill", run_dir=str(tmp_path / "run"), sites=sites,
                   plans={s: p.record() for s, p in plans.items()}, start=T0.isoformat(),
                   end=(T0 + pd.Timedelta(hours=12)).isoformat(), budget_steps=90, workload_options=world,
                   round_s=600, trace_s_per_step={"A": 60.0, "B": 60.0, "C": 120.0}, outer_lr=0.7,
                   outer_momentum=0.9, round_wall_s=40.0, reply_grace_s=10.0, join_wait_s=60.0, poll_s=0.2)
    killed: list[str] = []

    def kill_b_in_round_two(nodes, now, events):
        if killed:
            return
        started = [e for e in read_events(spec.events_path) if e["event"] == "ROUND_START" and e["round"] == 2]
        if started and "B" in nodes.running():
            nodes.kill("B")                      # SIGKILL the SuperNode and its ClientApp
            killed.append("B")
            events.log("TEST_KILLED", site="B")

    result = run_flower(spec, on_tick=kill_b_in_round_two, timeout_s=600)

    assert killed == ["B"]
    assert result["status"] == "done"
    assert result["steps_done"] == spec.budget_steps
    assert math.isfinite(result["val_loss"])
    events = read_events(spec.events_path)
    kinds = [e["event"] for e in events]
    dropped = [e for e in events if e["event"] == "NODE_DROPPED"]
    assert [(e["site"], e["round"]) for e in dropped] == [("B", 2)]
    rounds = {r["round"]: r for r in result["rounds"]}
    assert rounds[2]["dropped"] == ["B"] and "B" not in rounds[2]["batches"]
    assert set(rounds[2]["batches"]) == {"A", "C"}           # the round finished with the others
    assert "NODE_RESTART" in kinds
    rejoined = [e for e in events if e["event"] == "NODE_JOINED" and e["site"] == "B"]
    assert len(rejoined) == 2 and rejoined[0]["node_id"] != rejoined[1]["node_id"]
    later = [r for r in result["rounds"] if r["round"] > 2]
    assert any("B" in r["batches"] for r in later), "the restarted node never trained again"
    # work is weighted by batches: the slower site C does about half of A's steps in a round
    first = rounds[1]["batches"]
    assert first["A"] == 10 and first["C"] == 5 and first["B"] == 10
    # the data positions advanced only by the work that was aggregated
    b_work = sum(r["batches"].get("B", 0) for r in result["rounds"])
    assert sum(sum(r["batches"].values()) for r in result["rounds"]) == spec.budget_steps
    assert b_work < spec.budget_steps
    assert kinds[0] in ("SUBMITTED", "RUN_START", "NODE_START") and "RUN_END" in kinds
