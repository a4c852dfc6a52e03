"""The run-time controller: replayed grid signals in, decisions out and logged, failing signals left out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carbonsync.control.decision import Reason, State
from carbonsync.control.policies import get_policy
from carbonsync.control.runtime import Controller, DecisionLog, JobTracker, SignalInput
from carbonsync.signals import ReplayClock, open_recording

START = pd.Timestamp("2024-05-01")


def write_moer(path, days: int = 10, spike_at: pd.Timestamp | None = None):
    """A WattTime-style 5-min MOER CSV: a daily cycle, and a plateau of 900 g/kWh from ``spike_at`` for 3 h."""
    times = pd.date_range(START, periods=days * 288, freq="5min")
    values = np.asarray(400 + 150 * np.sin(2 * np.pi * (times.hour + times.minute / 60) / 24), dtype=float)
    if spike_at is not None:
        values[(times >= spike_at) & (times < spike_at + pd.Timedelta(hours=3))] = 900.0
    pd.DataFrame({"point_time": times.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "CAISO_NORTH": values.round(2)}
                 ).to_csv(path, index=False)
    return path


def test_decisions_follow_the_replayed_signal_and_are_logged(tmp_path):
    spike = START + pd.Timedelta(days=8, hours=2)
    clock = ReplayClock(START + pd.Timedelta(days=8))
    carbon = SignalInput(open_recording(write_moer(tmp_path / "moer.csv", spike_at=spike), clock), "caiso")
    log = DecisionLog(tmp_path / "control" / "decisions.jsonl")
    controller = Controller(get_policy("engine", min_dwell=pd.Timedelta(0)), JobTracker(10_000, 0.001),
                            carbon=carbon, decisions=log, telemetry=lambda: {"draw_w": 180.0, "energy_j": 5.0e4})
    states = []
    for _ in range(6 * 12):
        states.append(controller.decide(clock.now).state)
        clock.advance("5min")
    # the spike is seen once its first 5-min value is published (5 minutes after it starts)
    assert State.RED in states and states.index(State.RED) == 2 * 12 + 1
    records = log.read()
    assert len(records) == 72 and records[0]["reason"] == "start" and {"step", "decide_ms"} <= set(records[0])
    assert all(r["inputs"]["carbon"] is not None for r in records)
    # each record says how old the signal value was (the replayed 5-min series: published at its end) and what
    # the actuator read, for the service's metrics
    assert {r["signals"]["carbon"]["age_s"] for r in records} <= {0.0, 300.0}
    assert records[0]["signals"]["carbon"]["units"] == "g CO2e/kWh" and records[0]["draw_w"] == 180.0


def test_a_failing_signal_is_left_out_and_full_power_is_the_fail_safe(tmp_path, caplog):
    clock = ReplayClock(START - pd.Timedelta(days=1))   # before the recording: nothing is published yet
    carbon = SignalInput(open_recording(write_moer(tmp_path / "moer.csv"), clock), "caiso")
    controller = Controller(get_policy("engine"), JobTracker(10, 0.1), carbon=carbon)
    with caplog.at_level("WARNING", logger="carbonsync"):
        decision = controller.decide(clock.now)
    assert decision.state == State.GREEN and decision.reason == Reason.NO_SIGNAL
    assert "control: no current value" in caplog.text and "nothing was published" in caplog.text
