"""The Flower apps of a multi-site run: a ``ServerApp`` that follows the sites' windows and a ``ClientApp``.

Flower's Deployment Engine runs them on real processes: a SuperLink, one SuperNode per provisioned site
(started and stopped by a :class:`~carbonsync.federated.provisioner.Provisioner`), the ServerApp in the
SuperLink's ``flwr-serverapp`` process and each round's ClientApp in a ``flwr-clientapp`` process. Both
read the run's :class:`~carbonsync.federated.spec.RunSpec` (its path is the run config's ``spec``).

The ServerApp loop owns the run's :class:`~carbonsync.federated.accounting.ReplayClock`:

- **mode**: the sites whose plan says ``train`` now take part (the loop waits up to ``join_wait_s`` wall
  seconds for a planned site's SuperNode to connect). None: *pause*, and the clock moves to the next change
  of any site's plan; one: *local* training; several: *federated* rounds. The mode is logged when it changes.
- **a round** lasts at most ``round_s`` of trace time and ends early when another site becomes ready, so that
  it joins at once (live, the joining node's registration would end the round; in a replay its plan says
  when, and the plan is itself built causally from the signal). Each site gets its share of the
  remaining budget in proportion to its modelled speed and trains until its next step would pass the
  deadline, its share is done, or its window closes (it stops at a step boundary and returns what it did);
  the round ends at the deadline, or when the last site stopped. Every site also stops at the round's
  wall-clock bound, ``round_wall_s``.
- **aggregation** weights each site by the batches it processed, then takes the outer step (FedAvg, or
  DiLoCo's Nesterov outer step). A site that fails or does not reply within ``round_wall_s + reply_grace_s``
  (a node killed mid-round) is dropped from the round: its partial work is lost, its data position does not
  advance, its node is not used again, and the round finishes with the others.
- after each round the global model is scored on the validation split and the server state is checkpointed
  (atomically); a restarted ServerApp resumes from it. Nodes joining and leaving are found between rounds
  (``grid.get_node_ids()``, each new node asked its site once).
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import pandas as pd
import torch

from carbonsync.core.fs import write_json_atomic
from carbonsync.core.logs import get_logger
from carbonsync.core.optional import optional_import
from carbonsync.federated.aggregation import OuterOptimizer, ServerState, weighted_average
from carbonsync.federated.node import RoundOrder, SiteReport, train_site
from carbonsync.federated.spec import RunSpec
from carbonsync.federated.windows import SitePlan
from carbonsync.federated.workload import get_workload

_app = optional_import("flwr.app", "federated")
_serverapp = optional_import("flwr.serverapp", "federated")
_clientapp = optional_import("flwr.clientapp", "federated")
ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict = (
    _app.ArrayRecord, _app.ConfigRecord, _app.Message, _app.MetricRecord, _app.RecordDict)

__all__ = ["client_app", "mode_of", "next_join", "run_server", "server_app", "split_budget"]

log = get_logger(__name__)

QUERY_TIMEOUT_S = 30.0     # wall seconds a new node has to say which site it is


# ------------------------------------------------------------------------------------- pure round logic


def split_budget(remaining: int, speeds: dict[str, float], capacity: dict[str, int]) -> dict[str, int]:
    """Share ``remaining`` steps among sites in proportion to ``speeds`` (steps per trace second), no site
    more than its ``capacity`` (the steps it can do before the deadline): water-filling, then largest
    remainders."""
    shares = {site: 0 for site in speeds}
    if remaining <= 0 or not speeds:
        return shares
    if sum(capacity.values()) <= remaining:
        return {site: capacity[site] for site in speeds}
    exact = {site: 0.0 for site in speeds}
    open_sites, left = set(speeds), float(remaining)
    while open_sites and left > 1e-9:
        total = sum(speeds[s] for s in open_sites)
        offer = {s: left * speeds[s] / total for s in open_sites}
        capped = {s for s in open_sites if exact[s] + offer[s] >= capacity[s]}
        if not capped:
            for s in open_sites:
                exact[s] += offer[s]
            break
        for s in capped:
            left -= capacity[s] - exact[s]
            exact[s] = float(capacity[s])
        open_sites -= capped
    shares = {site: min(int(math.floor(value + 1e-9)), capacity[site]) for site, value in exact.items()}
    left_steps = remaining - sum(shares.values())
    for site in sorted(exact, key=lambda s: (math.floor(exact[s] + 1e-9) - exact[s], s)):
        if left_steps <= 0:
            break
        if shares[site] < capacity[site]:
            shares[site] += 1
            left_steps -= 1
    return shares


def next_join(plan: SitePlan, now: pd.Timestamp) -> pd.Timestamp | None:
    """When the site next starts training after ``now`` (None: it does not)."""
    return next((i.start for i in plan.intervals if i.state == "train" and i.start > now), None)


def mode_of(active: list[str]) -> str:
    return "pause" if not active else "local" if len(active) == 1 else "federated"


# ------------------------------------------------------------------------------------- messages


def _state_dict(record: Any) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in record.to_torch_state_dict().items()}


def _train_request(spec: RunSpec, weights: dict[str, torch.Tensor], order: RoundOrder) -> Any:
    config = {"spec": str(spec.path), **order.record()}
    return RecordDict({"arrays": ArrayRecord(weights), "config": ConfigRecord(config)})


def _report_from(reply: Any) -> SiteReport:
    config, metrics = reply.content["config"], reply.content["metrics"]
    energy = float(metrics["energy_j"]) if "energy_j" in metrics else None
    return SiteReport(site=str(config["site"]), weights=_state_dict(reply.content["arrays"]),
                      num_batches=int(metrics["num_batches"]), num_samples=int(metrics["num_samples"]),
                      mean_loss=float(metrics["loss"]), stopped=str(config["stopped"]),
                      trace_start=str(config["trace_start"]), trace_end=str(config["trace_end"]),
                      compute_s=float(metrics["compute_s"]), energy_j=energy)


def exchange(grid: Any, messages: dict[int, Any], timeout: float, poll_s: float = 0.5) -> dict[int, Any]:
    """Push one message per node (``{node id: message}``) and collect the replies by node until all are in
    or ``timeout`` wall seconds pass. Replies are matched by ``reply_to_message_id``, so an error reply the
    SuperLink writes for a lost node (sent from the SuperLink's own id) is still that node's."""
    nodes = list(messages)
    ids = list(grid.push_messages([messages[n] for n in nodes]))
    pending = {mid: node for mid, node in zip(ids, nodes, strict=True) if mid}
    replies: dict[int, Any] = {}
    give_up = time.time() + timeout
    while pending and time.time() < give_up:
        for reply in grid.pull_messages(list(pending)):
            node = pending.pop(reply.metadata.reply_to_message_id, None)
            if node is not None:
                replies[node] = reply
        if pending:
            time.sleep(poll_s)
    return replies


# ------------------------------------------------------------------------------------- the server


class _Server:
    """The ServerApp's loop over one run (see the module docstring)."""

    def __init__(self, grid: Any, spec: RunSpec) -> None:
        self.grid, self.spec = grid, spec
        self.clock, self.events = spec.replay_clock(), spec.event_log()
        self.plans = spec.site_plans()
        self.workload = get_workload(spec.workload, **spec.workload_options)
        self.model = self.workload.model()
        self.outer = OuterOptimizer(spec.outer_lr, spec.outer_momentum)
        self.nodes: dict[int, str] = {}          # node id -> site (insertion order: the newest node of a site last)
        self.lost: dict[int, str] = {}           # node id -> site of nodes that failed a round (see learn_nodes)
        self.asked: dict[int, float] = {}        # node id -> wall time it was last asked its site
        self.mode: str | None = None
        self.rounds: list[dict[str, Any]] = []
        if spec.checkpoint_path.exists():
            self.state = ServerState.load(spec.checkpoint_path)
            if spec.result_path.exists():
                self.rounds = list(_read_json(spec.result_path).get("rounds", []))
            self.events.log("RUN_RESUME", round=self.state.round, steps_done=self.state.steps_done)
        else:
            self.state = ServerState(weights={k: v.detach().clone() for k, v in self.model.state_dict().items()})
            self.events.log("RUN_START", sites=spec.sites, budget_steps=spec.budget_steps, run=spec.name)
        self.model.load_state_dict(self.state.weights)

    # -- nodes
    def learn_nodes(self) -> None:
        """Ask each new node which site it is (once; again after a minute if it did not answer). A node that
        failed a round is asked again only while its site has no other node (a killed node stays listed for
        a while; a slow one answers and is used again)."""
        ids = [int(n) for n in self.grid.get_node_ids()]
        for gone in [n for n in self.nodes if n not in ids]:
            self.events.log("NODE_LEFT", site=self.nodes.pop(gone), node_id=gone)
        for gone in [n for n in self.lost if n not in ids]:
            del self.lost[gone]
        now, sites = time.time(), set(self.nodes.values())
        new = [n for n in ids if n not in self.nodes and self.lost.get(n) not in sites
               and now - self.asked.get(n, -1e9) > 60.0]
        if not new:
            return
        for n in new:
            self.asked[n] = now
        messages = {n: Message(RecordDict({"config": ConfigRecord({"spec": str(self.spec.path)})}), dst_node_id=n,
                               message_type="query") for n in new}
        for node, reply in exchange(self.grid, messages, QUERY_TIMEOUT_S).items():
            if reply.has_error():
                log.warning("node %s did not say its site: %s", node, reply.error.reason)
                continue
            site = str(reply.content["config"]["site"])
            if site not in self.spec.sites:
                log.warning("node %s is site '%s', which is not in this run: ignored", node, site)
                continue
            self.nodes[node] = site
            self.events.log("NODE_JOINED" if self.lost.pop(node, None) is None else "NODE_BACK", site=site,
                            node_id=node)

    def connected(self) -> dict[str, int]:
        """Site -> its newest connected node."""
        return {site: node for node, site in self.nodes.items()}

    def wait_for(self, planned: list[str]) -> dict[str, int]:
        """The nodes of the ``planned`` sites, waiting up to ``join_wait_s`` (wall) for any not yet connected."""
        give_up = time.time() + self.spec.join_wait_s
        while True:
            self.learn_nodes()
            connected = self.connected()
            missing = [site for site in planned if site not in connected]
            if not missing or time.time() >= give_up:
                break
            time.sleep(self.spec.poll_s)
        for site in missing:
            self.events.log("NODE_MISSING", site=site, waited_s=self.spec.join_wait_s)
        return {site: connected[site] for site in sorted(planned) if site in connected}

    def next_change(self, now: pd.Timestamp) -> pd.Timestamp | None:
        """The first change of any site's plan after ``now`` (None: no plan changes again)."""
        times = [t for plan in self.plans.values() for i in plan.intervals for t in (i.start, i.end) if t > now]
        return min(times) if times else None

    # -- the loop
    def run(self) -> str:
        spec = self.spec
        while self.state.steps_done < spec.budget_steps:
            now = self.clock.now()
            if now >= spec.end_time:
                return "out_of_trace"
            planned = sorted(site for site, plan in self.plans.items() if plan.state_at(now) == "train")
            active = self.wait_for(planned) if planned else {}
            self.set_mode(list(active), now)
            if active:
                self.one_round(active)
                continue
            nxt = self.next_change(now)
            if nxt is None:
                return "out_of_trace"
            if not planned:
                time.sleep(spec.poll_s)      # the driver sees each change (it starts nodes as provisioning begins)
            self.clock.set(min(nxt, spec.end_time))
        return "done"

    def set_mode(self, active: list[str], now: pd.Timestamp) -> None:
        mode = mode_of(active)
        if mode != self.mode:
            self.events.log("MODE", trace_time=now, mode=mode, sites=active)
            self.mode = mode

    def one_round(self, active: dict[str, int]) -> None:
        spec, state = self.spec, self.state
        now = self.clock.now()
        deadline = min(now + pd.Timedelta(seconds=spec.round_s), spec.end_time)
        for plan in self.plans.values():        # a site (re)joining ends the round, an active one after a gap too
            join = next_join(plan, now)
            if join is not None:
                deadline = min(deadline, join)
        span_s = (deadline - now).total_seconds()
        speeds = {site: 1.0 / spec.trace_s_per_step[site] for site in active}
        capacity = {site: int(span_s * speeds[site] + 1e-9) for site in active}
        shares = split_budget(spec.budget_steps - state.steps_done, speeds, capacity)
        if not any(shares.values()):        # no step fits before the deadline (a site joins sooner): wait for it
            self.clock.set(deadline)
            return
        state.round += 1
        number = state.round
        self.events.log("ROUND_START", trace_time=now, round=number, sites=list(active), mode=mode_of(list(active)),
                        deadline=deadline.isoformat(), shares=shares)
        wall_deadline = time.time() + spec.round_wall_s
        messages = {}
        for site, node in active.items():
            order = RoundOrder(round=number, max_steps=shares[site], lr_done=state.steps_done,
                               lr_stride=len(active), start=now.isoformat(), deadline=deadline.isoformat(),
                               wall_deadline=wall_deadline, position=state.positions.get(site, 0))
            messages[node] = Message(_train_request(spec, state.weights, order), dst_node_id=node,
                                     message_type="train", group_id=str(number))
        site_of = {node: site for site, node in active.items()}
        reports, dropped = [], []
        replies = exchange(self.grid, messages, spec.round_wall_s + spec.reply_grace_s)
        for node, reply in replies.items():
            if reply.has_error():
                dropped.append((node, f"error: {reply.error.reason}"))
                continue
            report = _report_from(reply)
            if report.num_batches > 0:
                reports.append(report)
        dropped += [(node, "no reply in the round's wall-clock bound (node lost?)")
                    for node in active.values() if node not in replies]
        for node, why in dropped:
            self.lost[node] = site_of[node]
            self.nodes.pop(node, None)
            self.events.log("NODE_DROPPED", trace_time=now, round=number, site=site_of[node], node_id=node, why=why)
        self.aggregate(reports)
        val_loss = self.workload.evaluate(self.model)
        for r in reports:
            if r.stopped == "wall":
                log.warning("round %d: %s reached the round's wall-clock bound (%.0f s) after %d steps; raise "
                            "round_wall_s", number, r.site, spec.round_wall_s, r.num_batches)
        if any(r.stopped == "deadline" for r in reports) or not reports:
            end = deadline                  # (lost nodes were up and drawing power to the deadline)
        else:
            end = max(pd.Timestamp(r.trace_end) for r in reports)
        self.clock.set(max(end, now))
        state.trace_time = end.isoformat()
        record = {"round": number, "trace_start": now.isoformat(), "trace_end": end.isoformat(),
                  "mode": mode_of(list(active)), "sites": [r.site for r in reports],
                  "batches": {r.site: r.num_batches for r in reports},
                  "stopped": {r.site: r.stopped for r in reports},
                  "train_loss": {r.site: r.mean_loss for r in reports},
                  "compute_s": {r.site: r.compute_s for r in reports},
                  "site_end": {**{site_of[node]: end.isoformat() for node, _ in dropped},
                               **{r.site: r.trace_end for r in reports}},
                  "energy_j": {r.site: r.energy_j for r in reports if r.energy_j is not None},
                  "dropped": [site_of[node] for node, _ in dropped], "steps_done": state.steps_done,
                  "samples_done": state.samples_done, "val_loss": val_loss}
        self.rounds.append(record)
        state.save(spec.checkpoint_path)
        self.write_result("running")
        self.events.log("ROUND_END", trace_time=end,
                        **{k: v for k, v in record.items() if k not in ("trace_start", "trace_end")})

    def aggregate(self, reports: list[SiteReport]) -> None:
        if not reports:
            return
        state = self.state
        average = weighted_average([r.weights for r in reports], [r.num_batches for r in reports])
        state.weights = self.outer.step(state.weights, average, state.momentum)
        self.model.load_state_dict(state.weights)
        for report in reports:
            state.positions[report.site] = state.positions.get(report.site, 0) + report.num_batches
            state.steps_done += report.num_batches
            state.samples_done += report.num_samples

    def write_result(self, status: str, error: str | None = None) -> None:
        out = {"run": self.spec.name, "status": status, "error": error, "rounds": self.rounds,
               "steps_done": self.state.steps_done, "samples_done": self.state.samples_done,
               "budget_steps": self.spec.budget_steps, "finished_at": self.clock.now().isoformat(),
               "val_loss": self.rounds[-1]["val_loss"] if self.rounds else None, "pid": os.getpid()}
        write_json_atomic(out, self.spec.result_path)


def _read_json(path: Any) -> dict[str, Any]:
    return json.loads(path.read_text())


def run_server(grid: Any, spec: RunSpec) -> str:
    """Run ``spec`` to its budget (or the end of the trace) on ``grid``; returns the final status."""
    server = _Server(grid, spec)
    try:
        status = server.run()
    except Exception as err:
        server.write_result("failed", error=f"{type(err).__name__}: {err}")
        server.events.log("RUN_FAILED", error=f"{type(err).__name__}: {err}")
        raise
    server.write_result(status)
    server.events.log("RUN_END", status=status, steps_done=server.state.steps_done,
                      samples_done=server.state.samples_done)
    return status


server_app = _serverapp.ServerApp()


@server_app.main()
def _server_main(grid: Any, context: Any) -> None:
    run_server(grid, RunSpec.load(str(context.run_config["spec"])))


# ------------------------------------------------------------------------------------- the client

client_app = _clientapp.ClientApp()


def _site(context: Any) -> str:
    site = context.node_config.get("site")
    if not site:
        raise ValueError("this SuperNode has no site: start it with --node-config \"site='NAME'\"")
    return str(site)


@client_app.query()
def _client_query(msg: Any, context: Any) -> Any:
    return Message(RecordDict({"config": ConfigRecord({"site": _site(context), "pid": os.getpid()})}), reply_to=msg)


@client_app.train()
def _client_train(msg: Any, context: Any) -> Any:
    config = msg.content["config"]
    spec = RunSpec.load(str(config["spec"]))
    site = _site(context)
    order = RoundOrder(round=int(config["round"]), max_steps=int(config["max_steps"]),
                       lr_done=int(config["lr_done"]), lr_stride=int(config["lr_stride"]),
                       start=str(config["start"]), deadline=str(config["deadline"]),
                       wall_deadline=float(config["wall_deadline"]), position=int(config["position"]))
    events = spec.event_log()
    events.log("SITE_TRAIN_START", trace_time=pd.Timestamp(order.start), site=site, round=order.round,
               max_steps=order.max_steps)
    report = train_site(spec, site, _state_dict(msg.content["arrays"]), order)
    events.log("SITE_TRAIN_END", trace_time=pd.Timestamp(report.trace_end), site=site, round=order.round,
               batches=report.num_batches, stopped=report.stopped, loss=report.mean_loss)
    metrics = {"num_batches": report.num_batches, "num_samples": report.num_samples,
               "loss": report.mean_loss if math.isfinite(report.mean_loss) else -1.0, "compute_s": report.compute_s}
    if report.energy_j is not None:
        metrics["energy_j"] = report.energy_j
    content = RecordDict({"arrays": ArrayRecord(report.weights), "metrics": MetricRecord(metrics),
                          "config": ConfigRecord({"site": site, "stopped": report.stopped,
                                                  "trace_start": report.trace_start,
                                                  "trace_end": report.trace_end})})
    return Message(content, reply_to=msg)

