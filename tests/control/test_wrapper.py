"""`carbonsync control run -- CMD`: a child process paused in place (SIGSTOP/SIGCONT) while a replayed signal
spikes, resumed after, its exit status passed on."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from carbonsync.cli import main
from carbonsync.control.runtime import DecisionLog

START = pd.Timestamp("2024-05-01")
CHILD = """
import sys, time
out = open(sys.argv[1], "w")
for i in range(int(sys.argv[2])):
    out.write(f"{time.monotonic():.4f}\\n"); out.flush()
    time.sleep(0.05)
sys.exit(int(sys.argv[3]))
"""


def _recording(path, replay_start):
    times = pd.date_range(START, replay_start + pd.Timedelta(days=1), freq="5min", inclusive="left")
    values = 400.0 + 20 * np.sin(np.arange(len(times)) / 12)
    since = (times - replay_start) / pd.Timedelta(hours=1)
    values[(since >= 1) & (since < 2.5)] = 950.0   # a spike from 1 h to 2.5 h of replayed time
    pd.DataFrame({"point_time": times.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "CAISO_NORTH": values.round(2)}
                 ).to_csv(path, index=False)
    return path


def _run(tmp_path, steps: int, status: int) -> tuple[int, np.ndarray, list[dict]]:
    replay_start = START + pd.Timedelta(days=8)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ticks = tmp_path / "ticks.txt"
    code = main(["control", "run", f"run_dir={tmp_path}", "control.carbon.provider=file",
                 f"control.carbon.path={_recording(tmp_path / 'moer.csv', replay_start)}", "control.carbon.zone=caiso",
                 f"control.replay_start={replay_start.isoformat()}", "control.interval_s=300",
                 "control.actuator=dry-run", "--replay-speed", "3600",
                 "--", sys.executable, str(script), str(ticks), str(steps), str(status)])
    times = np.loadtxt(ticks) if ticks.stat().st_size else np.array([])
    return code, np.atleast_1d(times), DecisionLog(tmp_path / "control" / "decisions.jsonl").read()


def test_the_child_is_stopped_during_the_spike_and_continues_where_it_was(tmp_path):
    code, times, decisions = _run(tmp_path, steps=70, status=0)
    assert code == 0 and len(times) == 70   # every iteration ran, none lost or repeated
    gaps = np.diff(times)
    assert gaps.max() > 0.8, gaps.max()      # stopped for most of the 1.5 replayed hours (1.5 s of wall time)
    pauses = sum(1 for a, b in zip(decisions, decisions[1:], strict=False) if a["run"] and not b["run"])
    assert 1 <= sum(g > 0.4 for g in gaps) <= pauses   # the child stood still only while a pause was decided
    states = [d["run"] for d in decisions]
    assert False in states and states[states.index(False):].count(True) > 0
    paused = next(d for d in decisions if not d["run"])
    assert "paused" in paused["sentence"] and "950 g/kWh" in paused["sentence"]


def test_the_exit_status_is_passed_on(tmp_path):
    code, times, _ = _run(tmp_path, steps=3, status=7)
    assert code == 7 and len(times) == 3
