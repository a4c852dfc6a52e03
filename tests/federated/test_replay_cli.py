"""``carbonsync curtail run`` on a small synthetic trace: the centralised and single-site runs (no Flower)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from carbonsync.cli import main
from carbonsync.core.errors import ConfigError
from carbonsync.federated.replay import ReplayConfig, load_trace, replay


def write_trace(path) -> pd.DatetimeIndex:
    times = pd.date_range("2026-01-11T17:00", periods=72, freq="5min", tz="UTC")    # 6 hours
    clean = np.where((np.arange(72) >= 12) & (np.arange(72) < 48), 40.0, 400.0)      # CAISO_NORTH clean 18:00-21:00
    frame = pd.DataFrame({"point_time": times, "CAISO_NORTH": clean, "SPP_TX": 600.0})
    frame.to_csv(path, index=False)
    return times


def test_curtail_run_prints_single_site_energy_against_the_trace(tmp_path, capsys):
    trace = tmp_path / "moer.csv"
    write_trace(trace)
    code = main(["-q", "curtail", "run", "--trace", str(trace), "--sites", "CAISO_NORTH", "SPP_TX",
                 "--runs", "centralised", "single_site",
                 "--budget-steps", "6", "--trace-s-per-step", "1800", "--provisioning-s", "300",
                 "--run-dir", str(tmp_path / "run"), "--world-days", "8", "--train-kw", "2", "--idle-kw", "0.5"])
    assert code == 0
    out = capsys.readouterr().out                       # -q: only the JSON object (no plot without a Flower run)
    result = json.loads(out)
    runs = result["runs"]
    assert set(runs) == {"centralised", "single_site_CAISO_NORTH", "single_site_SPP_TX"}
    # 6 steps of 30 min after 5 min of provisioning: 3 h of training at 2 kW, 5 min idle at 0.5 kW
    a, b = runs["single_site_CAISO_NORTH"], runs["single_site_SPP_TX"]
    assert a["energy_kwh"] == pytest.approx(6.0 + 0.5 * 5 / 60)
    assert a["trace_hours"] == pytest.approx(3 + 5 / 60)
    # CAISO_NORTH: 17:00-18:00 at 400 g/kWh (5 min idle + 55 min training), 18:00-20:05 at 40
    expected_a = (0.5 * 5 / 60 * 400 + 2 * 55 / 60 * 400 + 2 * 125 / 60 * 40) / 1000
    assert a["emissions_kg"] == pytest.approx(expected_a)
    assert a["energy_in_windows_share"] == pytest.approx(2 * 125 / 60 / a["energy_kwh"])
    assert b["emissions_kg"] == pytest.approx(b["energy_kwh"] * 0.6)
    assert b["energy_in_windows_share"] == 0.0
    assert a["val_loss"] == b["val_loss"] == runs["centralised"]["val_loss"] > 0
    saved = json.loads((tmp_path / "run" / "replay.json").read_text())
    assert saved["plans"]["CAISO_NORTH"]["band"] == [["2026-01-11T18:00:00", "2026-01-11T21:00:00"]]
    assert len(saved["runs"]["centralised"]["curve"]) == 6


def test_replay_names_a_site_the_trace_does_not_have(tmp_path):
    trace = tmp_path / "moer.csv"
    write_trace(trace)
    assert list(load_trace(trace)["zone"].values) == ["CAISO_NORTH", "SPP_TX"]
    with pytest.raises(ConfigError, match=r"sites \['NEM_SA'\] are not regions of the trace"):
        replay(ReplayConfig(trace=str(trace), sites=["CAISO_NORTH", "NEM_SA"], run_dir=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="does not exist"):
        replay(ReplayConfig(trace=str(tmp_path / "missing.csv"), run_dir=str(tmp_path / "run")))
    with pytest.raises(ConfigError, match="runs"):
        ReplayConfig(trace=str(trace), runs=["everything"])
