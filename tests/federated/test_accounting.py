"""Replay clock, event log, power model and the energy and emissions of a site's intervals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from carbonsync.core.errors import ConfigError
from carbonsync.federated.accounting import EventLog, PowerModel, ReplayClock, SiteEnergy, read_events, site_energy

START = pd.Timestamp("2024-05-01T00:00")


def at(hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"2024-05-01T{hhmm}")


# ------------------------------------------------------------------------------------- the replay clock


def test_a_clock_without_a_file_reads_its_start(tmp_path):
    clock = ReplayClock(tmp_path / "clock.json", "2024-05-01T00:00")
    assert clock.now() == START
    assert not (tmp_path / "clock.json").exists()


def test_the_clock_keeps_the_time_it_was_set_to_in_a_json_file(tmp_path):
    path = tmp_path / "clock.json"
    clock = ReplayClock(path, START)
    clock.set(at("01:30"))
    assert clock.now() == at("01:30")
    assert ReplayClock(path, START).now() == at("01:30")          # another process reads the same time
    record = json.loads(path.read_text())
    assert record["trace_time"] == "2024-05-01T01:30:00" and isinstance(record["wall_time"], float)
    clock.set(at("01:30"))                                         # standing still is allowed
    assert [p.name for p in tmp_path.iterdir()] == ["clock.json"]  # written atomically: no temporary left


def test_the_clock_never_goes_back(tmp_path):
    clock = ReplayClock(tmp_path / "clock.json", START)
    clock.set(at("02:00"))
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(at("01:59"))
    assert clock.now() == at("02:00")


def test_a_clock_before_its_start_cannot_be_set(tmp_path):
    clock = ReplayClock(tmp_path / "clock.json", at("06:00"))
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(at("05:00"))


def test_an_unreadable_clock_file_is_named(tmp_path):
    path = tmp_path / "clock.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="clock.json is unreadable"):
        ReplayClock(path, START).now()


# ------------------------------------------------------------------------------------- the event log


def test_events_are_appended_as_json_lines(tmp_path):
    clock = ReplayClock(tmp_path / "clock.json", START)
    log = EventLog(tmp_path / "logs" / "events.jsonl", clock)      # the folder is made
    log.log("WINDOW_OPEN", site="north")
    clock.set(at("00:45"))
    returned = log.log("ROUND_END", round=3)
    log.log("NODE_STOP", trace_time=at("00:10"), site="south")
    lines = (tmp_path / "logs" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 3
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["WINDOW_OPEN", "ROUND_END", "NODE_STOP"]
    assert [e["trace_time"] for e in events] == ["2024-05-01T00:00:00", "2024-05-01T00:45:00", "2024-05-01T00:10:00"]
    assert events[0]["site"] == "north" and events[1]["round"] == 3 and events[2]["site"] == "south"
    assert all(set(e) >= {"trace_time", "wall_time", "event"} for e in events)
    assert pd.Timestamp(events[0]["wall_time"]).year >= 2024
    assert returned == events[1]
    assert read_events(tmp_path / "logs" / "events.jsonl") == events


def test_reading_events_skips_a_torn_last_line(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", ReplayClock(tmp_path / "clock.json", START))
    log.log("A")
    log.log("B")
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"trace_time": "2024-05-01T00:00:00", "ev')        # a writer killed mid-line
    assert [e["event"] for e in read_events(tmp_path / "events.jsonl")] == ["A", "B"]


# ------------------------------------------------------------------------------------- the power model


def test_power_per_state():
    power = PowerModel()
    assert power.kw("train") == 2.024
    assert power.kw("idle") == power.kw("provisioning") == 0.468
    assert power.kw("off") == 0.0
    assert PowerModel(train_kw=3.0, idle_kw=0.0).kw("idle") == 0.0


@pytest.mark.parametrize("field", ["train_kw", "idle_kw"])
def test_negative_power_is_refused(field):
    with pytest.raises(ConfigError, match=f"{field}=-1.0"):
        PowerModel(**{field: -1.0})


# ------------------------------------------------------------------------------------- energy and emissions

# g CO2e/kWh, each value holding from its label to the next (the last one to the end)
SIGNAL = pd.Series([100.0, 300.0, 200.0], index=[at("00:00"), at("01:00"), at("02:00")])
POWER = PowerModel(train_kw=2.0, idle_kw=1.0)


def test_site_energy_by_hand():
    intervals = [
        (at("00:30"), at("01:30"), "train", None),   # 0.5 h at 100 + 0.5 h at 300, 2 kW
        (at("01:30"), at("01:45"), "idle", None),    # 0.25 h at 300, 1 kW
        (at("01:45"), at("02:45"), "train", 3.0),    # measured 3 kWh over 1 h: 0.75 kWh at 300 + 2.25 kWh at 200
        (at("02:45"), at("02:45"), "train", None),   # empty: ignored
        (at("02:45"), at("03:00"), "off", None),     # no draw
    ]
    got = site_energy(intervals, SIGNAL, POWER, band=[(at("01:00"), at("02:30"))])
    assert got.energy_kwh == pytest.approx(2.0 + 0.25 + 3.0)
    # 1 kWh x 100 + 1 kWh x 300 + 0.25 kWh x 300 + 0.75 kWh x 300 + 2.25 kWh x 200, in kg
    assert got.emissions_kg == pytest.approx((100 + 300 + 75 + 225 + 450) / 1000)
    # inside the band: 0.5 h x 2 kW + 0.25 h x 1 kW + 0.75 h x 3 kW
    assert got.energy_in_windows_kwh == pytest.approx(1.0 + 0.25 + 2.25)
    assert got.train_hours == pytest.approx(2.0)


def test_measured_energy_replaces_the_power_model():
    modelled = site_energy([(at("00:00"), at("01:00"), "train", None)], SIGNAL, POWER)
    measured = site_energy([(at("00:00"), at("01:00"), "train", 0.5)], SIGNAL, POWER)
    assert modelled.energy_kwh == pytest.approx(2.0) and modelled.emissions_kg == pytest.approx(0.2)
    assert measured.energy_kwh == pytest.approx(0.5) and measured.emissions_kg == pytest.approx(0.05)
    assert measured.train_hours == modelled.train_hours == pytest.approx(1.0)


def test_an_unsorted_signal_is_sorted_and_a_missing_value_takes_the_mean():
    signal = pd.Series([300.0, np.nan, 100.0], index=[at("02:00"), at("01:00"), at("00:00")])   # NaN -> 200
    got = site_energy([(at("00:00"), at("03:00"), "idle", None)], signal, POWER)
    assert got.energy_kwh == pytest.approx(3.0)
    assert got.emissions_kg == pytest.approx((100 + 200 + 300) / 1000)
    assert got.energy_in_windows_kwh == 0.0 and got.train_hours == 0.0


def test_before_the_first_label_the_first_value_holds():
    got = site_energy([(pd.Timestamp("2024-04-30T23:30"), at("00:30"), "train", None)], SIGNAL, POWER)
    assert got.train_hours == pytest.approx(1.0)
    assert got.energy_kwh == pytest.approx(2.0)
    assert got.emissions_kg == pytest.approx(0.2)


def test_site_energies_add_field_by_field():
    total = SiteEnergy(1.0, 2.0, 3.0, 4.0) + SiteEnergy(0.5, 0.25, 0.125, 1.0)
    assert total == SiteEnergy(energy_kwh=1.5, emissions_kg=2.25, energy_in_windows_kwh=3.125, train_hours=5.0)
    assert sum([SiteEnergy(1.0), SiteEnergy(2.0)], SiteEnergy()).energy_kwh == 3.0
