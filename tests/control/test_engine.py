"""The decision engine: scores and normalisation, hysteresis, dwell, forecasts, the deadline guard and the
sentences; property tests on noisy signals (no change faster than the dwell time; a feasible deadline is never
missed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonsync.control.decision import Reason, State
from carbonsync.control.engine import Engine, EngineConfig, JobState, Observation, PowerProfile, percentile
from carbonsync.control.policies import get_policy, known_policies
from carbonsync.control.replay import objective, offline_optimum, replay_policy
from carbonsync.core.errors import ConfigError
from tests.helpers.control import daily_cycle_trace

T0 = pd.Timestamp("2024-03-01")
STEP = pd.Timedelta(minutes=5)


def _warm(engine: Engine) -> None:
    """A week of history: prices 0..99 and carbon 100..199, once each (so percentiles are easy to read)."""
    for i in range(100):
        engine.observe(T0 - pd.Timedelta(minutes=100 * (100 - i)), price=float(i), carbon=100.0 + i)


def test_percentile_is_the_mid_rank():
    history = np.array([1.0, 2.0, 3.0, 4.0])
    assert percentile(0.0, history) == 0.0 and percentile(5.0, history) == 1.0
    assert percentile(2.0, history) == pytest.approx(0.375) and percentile(7.0, np.array([])) == 0.5


def test_thresholds_with_hysteresis_and_dwell():
    engine = Engine(EngineConfig(alpha=1.0, beta=0.0, green=0.35, red=0.65, band=0.05,
                                 min_dwell=pd.Timedelta(minutes=30)))
    _warm(engine)
    job = JobState(remaining=1000.0)
    first = engine.decide(Observation(T0, price=90.0), job)
    assert first.state == State.RED and not first.run and first.reason == Reason.START
    # a value just below red but inside its band: RED holds by hysteresis
    d = engine.decide(Observation(T0 + pd.Timedelta(hours=1), price=62.0), job)
    assert d.state == State.RED and d.reason == Reason.HYSTERESIS
    # clean and cheap, but 10 minutes after a change would be too soon... first leave RED properly
    d = engine.decide(Observation(T0 + pd.Timedelta(hours=2), price=10.0), job)
    assert d.state == State.GREEN and d.action.value == "boost" and d.power_w == 250.0
    d = engine.decide(Observation(T0 + pd.Timedelta(hours=2, minutes=10), price=95.0), job)
    assert d.state == State.GREEN and d.reason == Reason.DWELL
    d = engine.decide(Observation(T0 + pd.Timedelta(hours=2, minutes=40), price=95.0), job)
    assert d.state == State.RED and "above the red threshold 0.65" in d.sentence


def test_the_sentence_says_why_with_the_numbers_and_when_it_expects_to_resume():
    engine = Engine(EngineConfig(alpha=0.5, beta=0.5, min_dwell=pd.Timedelta(0)))
    _warm(engine)
    engine.decide(Observation(T0 - STEP, price=50.0, carbon=150.0), JobState(remaining=100.0))
    forecast = pd.DataFrame({"price": [99.0, 99.0, 5.0, 5.0], "carbon": [199.0, 199.0, 105.0, 105.0]},
                            index=pd.date_range(T0 + pd.Timedelta(hours=1), periods=4, freq="h"))
    d = engine.decide(Observation(T0, price=98.0, carbon=198.0, forecast=forecast), JobState(remaining=100.0))
    assert d.state == State.RED and d.expected_change == T0 + pd.Timedelta(hours=3)
    assert "price 98.0 at the 99th percentile of the past week" in d.sentence
    assert "carbon 198 g/kWh at the 99th percentile" in d.sentence
    assert "expects to resume about 2024-03-01 03:00" in d.sentence
    record = d.record()
    assert record["state"] == "red" and record["reason"] == "score_above_red" and record["inputs"]["price"] == 98.0


def test_a_short_spike_is_capped_not_paused_and_a_short_dip_does_not_resume():
    config = EngineConfig(alpha=1.0, beta=0.0, min_pause=pd.Timedelta(hours=2), min_run=pd.Timedelta(hours=2),
                          min_dwell=pd.Timedelta(0))
    engine = Engine(config)
    _warm(engine)
    job = JobState(remaining=100.0)
    engine.decide(Observation(T0, price=50.0), job)
    spike = pd.DataFrame({"price": [95.0, 20.0, 20.0]}, index=pd.date_range(T0 + pd.Timedelta(minutes=35), periods=3,
                                                                              freq="30min"))
    d = engine.decide(Observation(T0 + pd.Timedelta(minutes=30), price=97.0, forecast=spike), job)
    assert d.state == State.YELLOW and d.reason == Reason.SPIKE_TOO_SHORT and d.run
    long_spike = pd.DataFrame({"price": [95.0] * 6 + [20.0]},
                              index=pd.date_range(T0 + pd.Timedelta(minutes=65), periods=7, freq="30min"))
    d = engine.decide(Observation(T0 + pd.Timedelta(hours=1), price=97.0, forecast=long_spike), job)
    assert d.state == State.RED and d.reason == Reason.SCORE_ABOVE_RED
    dip = pd.DataFrame({"price": [10.0, 96.0, 96.0]}, index=pd.date_range(T0 + pd.Timedelta(minutes=95), periods=3,
                                                                           freq="30min"))
    d = engine.decide(Observation(T0 + pd.Timedelta(minutes=90), price=10.0, forecast=dip), job)
    assert d.state == State.RED and d.reason == Reason.DIP_TOO_SHORT and not d.run


def test_no_signal_runs_at_full_power_and_bad_configs_are_named():
    d = Engine().decide(Observation(T0), JobState(remaining=1.0))
    assert d.state == State.GREEN and d.reason == Reason.NO_SIGNAL and "no price or carbon signal" in d.sentence
    with pytest.raises(ConfigError, match="green=0.7, red=0.6"):
        EngineConfig(green=0.7, red=0.6)
    with pytest.raises(ConfigError, match="alpha=0, beta=0"):
        EngineConfig(alpha=0, beta=0)
    with pytest.raises(ConfigError, match="yellow_rate=2"):
        PowerProfile(yellow_rate=2)
    engine = Engine()
    engine.decide(Observation(T0, price=1.0), JobState(remaining=1.0))
    with pytest.raises(ValueError, match="before the current state's start"):
        engine.decide(Observation(T0 - pd.Timedelta(hours=1), price=1.0), JobState(remaining=1.0))


def test_the_deadline_forces_full_power():
    engine = Engine(EngineConfig(alpha=1.0, beta=0.0))
    _warm(engine)
    # 10 h of work and 10.4 h left: holding a pause for 30 min would make it infeasible
    d = engine.decide(Observation(T0, price=99.0), JobState(remaining=10.0, deadline=T0 + pd.Timedelta(hours=10.4)))
    assert d.state == State.GREEN and d.reason == Reason.DEADLINE and d.slack_h == pytest.approx(0.4)
    assert "the deadline leaves no slack" in d.sentence


# ----------------------------------------------------------------------------------------- properties

noisy = st.lists(st.floats(min_value=0.0, max_value=200.0, allow_nan=False), min_size=30, max_size=200)


@settings(max_examples=60, deadline=None)
@given(prices=noisy, carbons=noisy, dwell_min=st.integers(0, 90), seed=st.integers(0, 10))
def test_no_state_lasts_less_than_the_dwell_time_unless_the_deadline_forces_it(prices, carbons, dwell_min, seed):
    engine = Engine(EngineConfig(min_dwell=pd.Timedelta(minutes=dwell_min)))
    rng = np.random.default_rng(seed)
    job = JobState(remaining=1e6)   # no deadline pressure
    last_change = None
    n = min(len(prices), len(carbons))
    t = T0
    for i in range(n):
        t = t + pd.Timedelta(minutes=int(rng.integers(1, 15)))
        d = engine.decide(Observation(t, prices[i], carbons[i]), job)
        if d.changed:
            assert d.reason != Reason.DWELL
            if last_change is not None:
                assert t - last_change >= pd.Timedelta(minutes=dwell_min)
            last_change = t


@settings(max_examples=40, deadline=None)
@given(prices=noisy, carbons=noisy, work_h=st.floats(1.0, 12.0), factor=st.floats(1.0, 2.5),
       forecast=st.booleans(), pause=st.booleans())
def test_a_feasible_deadline_is_never_missed(prices, carbons, work_h, factor, forecast, pause):
    profile = PowerProfile(pause=pause, red_rate=0.0 if pause else 0.4, pause_overhead_h=0.05)
    n = 24 * 12 * 3
    times = pd.date_range(T0, periods=n, freq=STEP)
    def repeat(values):
        return np.tile(values, int(np.ceil(n / len(values))))[:n]

    trace = pd.DataFrame({"price": repeat(prices), "carbon": repeat(carbons)}, index=times)
    deadline = T0 + pd.Timedelta(hours=work_h * factor + profile.pause_overhead_h)   # feasible at full power
    policy = get_policy("engine_forecast" if forecast else "engine", profile, interval=STEP,
                        min_dwell=pd.Timedelta(minutes=20))
    fc = (lambda now: trace[(trace.index > now) & (trace.index <= now + pd.Timedelta(hours=6))]) if forecast else None
    result = replay_policy(policy, trace, work_h, T0, deadline, warmup="0h", forecast_fn=fc)
    assert result.deadline_met, (result.completion_h, (deadline - T0) / pd.Timedelta(hours=1))


def test_the_policies_and_the_optimum_on_a_daily_cycle():
    assert set(known_policies()) == {"continuous", "two_state", "engine", "engine_forecast"}
    trace = daily_cycle_trace("2024-01-01", days=14)
    times = trace.index
    profile, start, work = PowerProfile(), times[24 * 8], 24.0
    base = replay_policy(get_policy("continuous", profile), trace, work, start, None)
    assert base.completion_h == pytest.approx(work) and base.energy_kwh == pytest.approx(work * 0.25)
    deadline = start + pd.Timedelta(hours=1.5 * work)
    best = offline_optimum(trace, profile, work, start, deadline, base, 0.5, 0.5)
    shares = {}
    for name in ("engine", "engine_forecast"):
        fc = (lambda now: trace[(trace.index > now) & (trace.index <= now + pd.Timedelta(hours=48))]) \
            if name == "engine_forecast" else None
        result = replay_policy(get_policy(name, profile, interval=pd.Timedelta("1h")), trace, work, start, deadline,
                               forecast_fn=fc)
        assert result.deadline_met
        j = objective(result, base, 0.5, 0.5)
        assert objective(best, base, 0.5, 0.5) <= j + 1e-9   # the optimum is a lower bound
        shares[name] = (1 - j) / (1 - objective(best, base, 0.5, 0.5))
    assert shares["engine_forecast"] > shares["engine"] > 0.2 and shares["engine_forecast"] > 0.8
    two = replay_policy(get_policy("two_state", profile), trace, work, start, deadline)
    assert not two.deadline_met   # the prototype knows no deadline


def test_the_optimum_finishes_early_when_waiting_costs_more_than_it_saves():
    # idle draw as high as the cap: pausing to wait for the cheap hours costs more than it saves after the job
    # is done, so the optimum must be no worse than finishing at every possible earlier time and than a
    # fixed cap that finishes early; and the reported completion must be consistent with its state hours
    times = pd.date_range("2024-01-01", periods=48, freq="h")
    trace = pd.DataFrame({"price": np.r_[np.full(12, 60.0), np.full(36, 50.0)],
                          "carbon": np.r_[np.full(12, 300.0), np.full(36, 280.0)]}, index=times)
    profile = PowerProfile(idle_w=170.0, pause_overhead_h=0.0)
    base = replay_policy(get_policy("continuous", profile), trace, 6.0, times[0], None)
    deadline = times[0] + pd.Timedelta(hours=40)
    best = offline_optimum(trace, profile, 6.0, times[0], deadline, base, 0.5, 0.5)
    value = objective(best, base, 0.5, 0.5)
    for hours in range(6, 41):
        earlier = offline_optimum(trace, profile, 6.0, times[0], times[0] + pd.Timedelta(hours=hours), base, 0.5,
                                  0.5)
        assert value <= objective(earlier, base, 0.5, 0.5) + 1e-6, hours
    worked = best.state_hours["green"] + best.state_hours["yellow"]
    assert best.completion_h < 40 and best.state_hours["green"] + 0.85 * best.state_hours["yellow"] == \
        pytest.approx(6.0)
    assert best.completion_h == pytest.approx(worked + best.state_hours["red"])
    # with no idle draw, waiting for the cheaper hours is free: the optimum runs only there
    free = offline_optimum(trace, PowerProfile(idle_w=0.0), 6.0, times[0], deadline, base, 0.5, 0.5)
    assert objective(free, base, 0.5, 0.5) < value and free.completion_h > 12


def test_the_two_state_rule_runs_at_minimum_power_when_the_profile_does_not_pause():
    policy = get_policy("two_state", PowerProfile(pause=False, red_rate=0.4), price_threshold=50.0)
    d = policy.decide(Observation(T0, price=80.0), JobState(remaining=1.0))
    assert d.state == State.RED and d.run and d.power_w == 100.0
    d = get_policy("two_state", PowerProfile(), price_threshold=50.0).decide(Observation(T0, price=80.0),
                                                                             JobState(remaining=1.0))
    assert d.state == State.RED and not d.run
