"""A site's round (train_site), the server's round arithmetic, plans, energy from what sites did, the run spec."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import xarray as xr

from carbonsync.core.errors import ConfigError
from carbonsync.federated.accounting import PowerModel, read_events
from carbonsync.federated.aggregation import ServerState
from carbonsync.federated.flower import _Server, exchange, mode_of, next_join, split_budget
from carbonsync.federated.node import RoundOrder, train_site
from carbonsync.federated.replay import summary
from carbonsync.federated.run import continuous_plans, curtailment_plans, plan_events, run_energy, train_spans
from carbonsync.federated.spec import RunSpec
from carbonsync.federated.windows import SiteInterval, SitePlan, WindowConfig
from carbonsync.federated.workload import SFNOWorkload

T0 = pd.Timestamp("2026-01-11T17:00")


def ts(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


WORLD = dict(days=8, spinup_days=1, nlat=9, nlon=16, lmax=6, model_lmax=4, embed_dim=8, num_layers=1, batch_size=4,
             shard_block_states=4)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    options = dict(WORLD, data_dir=str(tmp_path_factory.mktemp("fl_world")))
    SFNOWorkload(**options)                       # writes the world once
    return options


def spec_for(tmp_path, plans: dict[str, SitePlan], world: dict, **kw) -> RunSpec:
    base = dict(name="t", run_dir=str(tmp_path / "run"), sites=list(plans),
                plans={s: p.record() for s, p in plans.items()}, start=T0.isoformat(), end=ts(600).isoformat(),
                budget_steps=100, workload_options=world, trace_s_per_step={s: 60.0 for s in plans})
    base.update(kw)
    return RunSpec(**base)


# ------------------------------------------------------------------------------------- a site's round


def test_a_site_stops_at_the_step_boundary_where_its_window_closes(tmp_path, world):
    plan = SitePlan("A", band=[(ts(0), ts(10.5))], intervals=[SiteInterval(ts(0), ts(10.5), "train"),
                                                              SiteInterval(ts(10.5), ts(20), "idle")])
    spec = spec_for(tmp_path, {"A": plan}, world)
    work = SFNOWorkload(**world)
    order = RoundOrder(round=1, max_steps=50, lr_done=0, lr_stride=1, start=ts(0).isoformat(),
                       deadline=ts(30).isoformat(), wall_deadline=1e12, position=0)
    report = train_site(spec, "A", work.model().state_dict(), order, work)
    # steps start at 0, 1, ..., 10 minutes; the step that would start at 11 min is outside the window
    assert report.num_batches == 11
    assert report.stopped == "window"
    assert pd.Timestamp(report.trace_end) == ts(11)
    assert report.num_samples == 11 * work.samples_per_step
    assert (spec.site_dir("A") / "optimizer.pt").exists()      # resumed by the site's next round


def test_a_site_stops_before_a_step_would_pass_the_deadline_or_the_wall_bound(tmp_path, world):
    plan = SitePlan("A", band=[(ts(0), ts(600))], intervals=[SiteInterval(ts(0), ts(600), "train")])
    spec = spec_for(tmp_path, {"A": plan}, world)
    work = SFNOWorkload(**world)
    order = RoundOrder(round=1, max_steps=50, lr_done=0, lr_stride=1, start=ts(0).isoformat(),
                       deadline=ts(7.5).isoformat(), wall_deadline=1e12, position=0)
    report = train_site(spec, "A", work.model().state_dict(), order, work)
    assert (report.num_batches, report.stopped) == (7, "deadline")        # 7 one-minute steps fit in 7.5 min
    order.wall_deadline = 0.0                                             # already past: no step is taken
    report = train_site(spec, "A", work.model().state_dict(), order, work)
    assert (report.num_batches, report.stopped) == (0, "wall")
    order.wall_deadline, order.max_steps = 1e12, 3
    assert train_site(spec, "A", work.model().state_dict(), order, work).stopped == "max_steps"


# ------------------------------------------------------------------------------------- the server's arithmetic


def test_split_budget_is_proportional_to_speed_and_capped_by_what_fits():
    assert split_budget(90, {"A": 2.0, "B": 1.0}, {"A": 100, "B": 100}) == {"A": 60, "B": 30}
    assert split_budget(10, {"A": 1.0, "B": 1.0, "C": 1.0}, {"A": 9, "B": 9, "C": 9}) == {"A": 4, "B": 3, "C": 3}
    assert split_budget(100, {"A": 1.0, "B": 1.0}, {"A": 5, "B": 7}) == {"A": 5, "B": 7}    # all they can do
    assert split_budget(10, {"A": 1.0, "B": 1.0}, {"A": 2, "B": 50}) == {"A": 2, "B": 8}    # capped, rest moved
    assert split_budget(0, {"A": 1.0}, {"A": 5}) == {"A": 0}
    assert sum(split_budget(7, {"A": 0.3, "B": 0.3, "C": 0.4}, {"A": 9, "B": 9, "C": 9}).values()) == 7


def test_modes_and_the_next_join():
    assert [mode_of(s) for s in ([], ["A"], ["A", "B"])] == ["pause", "local", "federated"]
    plan = SitePlan("A", intervals=[SiteInterval(ts(0), ts(5), "provisioning"), SiteInterval(ts(5), ts(50), "train"),
                                    SiteInterval(ts(50), ts(60), "idle"), SiteInterval(ts(60), ts(70), "train")])
    assert next_join(plan, ts(-10)) == ts(5)
    assert next_join(plan, ts(5)) == ts(60)
    assert next_join(plan, ts(65)) is None


# ------------------------------------------------------------------------------------- plans and events


def test_plans_from_a_signal_and_continuous_plans():
    times = pd.date_range(T0, periods=24, freq="5min")
    values = [[500.0] * 4 + [50.0] * 10 + [500.0] * 10, [500.0] * 24]
    ds = xr.Dataset({"value": (("zone", "time"), values)}, coords={"zone": ["A", "B"], "time": times}).transpose()
    plans = curtailment_plans(ds, ["A", "B"], WindowConfig(off_delay_s=600, provisioning_s=300), end=times[-1])
    a = plans["A"]
    assert a.band == [(ts(20), ts(70))]
    assert [(i.start, i.end, i.state) for i in a.intervals] == [
        (ts(20), ts(25), "provisioning"), (ts(25), ts(70), "train"), (ts(70), ts(80), "idle")]
    assert plans["B"].intervals == []
    events = [(t, e) for t, e, d in plan_events(plans)]
    assert events == [(ts(20), "WINDOW_OPEN"), (ts(20), "PROVISION"), (ts(25), "READY"), (ts(70), "WINDOW_CLOSE"),
                      (ts(70), "IDLE"), (ts(80), "RELEASE")]
    cont = continuous_plans(["A", "B"], ts(0), ts(100), provisioning_s=300)
    assert [(i.start, i.end, i.state) for i in cont["B"].intervals] == [(ts(0), ts(5), "provisioning"),
                                                                         (ts(5), ts(100), "train")]


# ------------------------------------------------------------------------------------- energy


def test_energy_counts_training_where_sites_trained_and_idle_where_they_waited():
    plan = SitePlan("A", band=[(ts(0), ts(60))], intervals=[SiteInterval(ts(0), ts(6), "provisioning"),
                                                            SiteInterval(ts(6), ts(60), "train"),
                                                            SiteInterval(ts(60), ts(90), "idle")])
    rounds = [{"trace_start": ts(6).isoformat(), "site_end": {"A": ts(30).isoformat()}},
              {"trace_start": ts(42).isoformat(), "site_end": {"A": ts(60).isoformat(), "B": ts(50).isoformat()}}]
    spans = train_spans(rounds)
    assert spans == {"A": [(ts(6), ts(30)), (ts(42), ts(60))], "B": [(ts(42), ts(50))]}
    signal = pd.Series([100.0, 400.0], index=[ts(0), ts(30)])           # 100 g/kWh to 30 min, then 400
    power = PowerModel(train_kw=2.0, idle_kw=0.5)
    energy = run_energy({"A": plan}, spans, ts(75), {"A": signal}, power)["A"]
    # provisioning 6 min idle, training 24 + 18 min, waiting 12 min (30-42) idle, after the band 15 min idle
    kwh = [0.5 * 6 / 60, 2.0 * 24 / 60, 0.5 * 12 / 60, 2.0 * 18 / 60, 0.5 * 15 / 60]
    grams = [100, 100, 400, 400, 400]
    assert energy.energy_kwh == pytest.approx(sum(kwh))
    assert energy.emissions_kg == pytest.approx(sum(k * g for k, g in zip(kwh, grams, strict=True)) / 1000)
    assert energy.energy_in_windows_kwh == pytest.approx(sum(kwh[:4]))
    assert energy.train_hours == pytest.approx(42 / 60)


def test_summary_ratios():
    runs = {"centralised": {"val_loss": 2.0, "emissions_kg": None},
            "single_site_X": {"emissions_kg": 10.0}, "single_site_Y": {"emissions_kg": 4.0},
            "curtailment": {"emissions_kg": 1.0, "val_loss": 2.02}, "federated": {"val_loss": 2.1}}
    out = summary(runs)
    assert out["curtailment_vs_single_site_emissions"] == {"X": 0.1, "Y": 0.25}
    assert out["val_loss_vs_centralised"] == pytest.approx(1.01)
    assert out["federated_val_loss_vs_centralised"] == pytest.approx(1.05)


# ------------------------------------------------------------------------------------- the spec


def test_run_spec_round_trip_and_errors(tmp_path, world):
    plan = SitePlan("A", intervals=[SiteInterval(ts(0), ts(60), "train")])
    spec = spec_for(tmp_path, {"A": plan}, world)
    spec.save()
    again = RunSpec.load(spec.path)
    assert again == spec and again.site_plans()["A"].intervals == plan.intervals
    assert spec.shard("A") == (0, 1)
    with pytest.raises(ConfigError, match="site 'Z' is not in this run"):
        spec.shard("Z")
    with pytest.raises(ConfigError, match="plans"):
        spec_for(tmp_path, {"A": plan}, world, sites=["A", "B"])
    with pytest.raises(ConfigError, match="end"):
        spec_for(tmp_path, {"A": plan}, world, end=T0.isoformat())
    with pytest.raises(ConfigError, match="trace_s_per_step.A"):
        spec_for(tmp_path, {"A": plan}, world, trace_s_per_step={"A": 0.0})
    (tmp_path / "junk.json").write_text('{"name": 1}')
    with pytest.raises(ConfigError, match="not a carbonsync run spec"):
        RunSpec.load(tmp_path / "junk.json")
    assert math.isclose(spec.replay_clock().now().timestamp(), T0.timestamp())


class _Meta:
    def __init__(self, reply_to: str, src: int) -> None:
        self.reply_to_message_id, self.src_node_id = reply_to, src


class _Reply:
    def __init__(self, reply_to: str, src: int) -> None:
        self.metadata = _Meta(reply_to, src)


class _Grid:
    """Flower's Grid calls exchange() uses: push gives ids in order (None: not pushed); pull answers some."""

    def __init__(self, answers: dict[str, int]) -> None:
        self.answers, self.pulls = answers, 0

    def push_messages(self, messages):
        return [f"m{i}" if m != "unpushable" else None for i, m in enumerate(messages)]

    def pull_messages(self, ids):
        self.pulls += 1
        return [_Reply(mid, src) for mid, src in self.answers.items() if mid in ids]


def test_exchange_matches_replies_to_nodes_by_message_id():
    # node 11's reply is an error the SuperLink wrote (sent from its own id, 1); node 12 never answers
    grid = _Grid({"m0": 10, "m1": 1})
    replies = exchange(grid, {10: "a", 11: "b", 12: "c"}, timeout=0.3, poll_s=0.05)
    assert sorted(replies) == [10, 11]
    assert replies[11].metadata.src_node_id == 1
    assert grid.pulls >= 2                                   # kept polling for node 12 until the timeout
    assert exchange(_Grid({}), {5: "unpushable"}, timeout=5.0) == {}    # nothing pushed: nothing to wait for


def test_a_restarted_server_resumes_from_its_checkpoint(tmp_path, world):
    plan = SitePlan("A", intervals=[SiteInterval(ts(0), ts(60), "train")])
    spec = spec_for(tmp_path, {"A": plan}, world)
    spec.save()
    fresh = _Server(None, spec)
    weights = {k: v + 1.0 for k, v in fresh.state.weights.items()}
    ServerState(weights=weights, round=3, steps_done=42, samples_done=168, positions={"A": 42}).save(
        spec.checkpoint_path)
    resumed = _Server(None, spec)
    assert (resumed.state.round, resumed.state.steps_done, resumed.state.positions) == (3, 42, {"A": 42})
    for name, value in resumed.model.state_dict().items():
        assert value.equal(weights[name])
    assert [e["event"] for e in read_events(spec.events_path)] == ["RUN_START", "RUN_RESUME"]
