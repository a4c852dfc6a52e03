"""``/metrics`` parses as Prometheus text format and says what the decision log and the store say."""

from __future__ import annotations

import re

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from carbonsync.control import DecisionLog


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict, name: str, **labels: str) -> float:
    family = fams[name]
    hits = [s.value for s in family.samples if s.name.startswith(name) and all(s.labels.get(k) == v
                                                                              for k, v in labels.items())]
    assert len(hits) == 1, (name, labels, family.samples)
    return hits[0]


def test_metrics_parse_and_follow_the_last_decision(client, served_run):
    client.get("/zones")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = families(r.text)
    last = DecisionLog(served_run / "control" / "resnet.jsonl").read()[-1]
    assert value(fams, "carbonsync_controller_state", job="resnet", state=last["state"]) == 1.0
    assert sum(value(fams, "carbonsync_controller_state", job="resnet", state=s) for s in ("green", "yellow", "red")) == 1
    assert value(fams, "carbonsync_controller_power_cap_watts", job="resnet") == last["power_w"]
    assert value(fams, "carbonsync_controller_power_draw_watts", job="resnet") == last["draw_w"]
    assert fams["carbonsync_controller_energy_joules"].type == "counter"
    assert value(fams, "carbonsync_controller_energy_joules", job="resnet") == last["energy_j"]
    records = DecisionLog(served_run / "control" / "resnet.jsonl").read()
    assert value(fams, "carbonsync_controller_decisions", job="resnet", state="red") == \
        sum(r["state"] == "red" for r in records) > 0
    assert value(fams, "carbonsync_grid_carbon_intensity_grams_per_kilowatt_hour", job="resnet") == \
        last["inputs"]["carbon"]
    assert value(fams, "carbonsync_grid_signal_age_seconds", job="resnet", signal="carbon") == 300.0
    assert value(fams, "carbonsync_forecast_store_up") == 1.0
    assert value(fams, "carbonsync_forecast_latest_init_time_seconds") == pd.Timestamp("2020-08-25T18:00").timestamp()
    assert value(fams, "carbonsync_forecast_latest_init_age_seconds") > 0
    latency = fams["carbonsync_http_request_duration_seconds"]
    assert latency.type == "histogram"
    routes = {s.labels["route"] for s in latency.samples if s.name.endswith("_count")}
    assert "/zones" in routes and not any(re.search(r"iberia|\d{4}-", r) for r in routes)   # templates, not paths


def test_names_follow_prometheus_conventions(client):
    fams = families(client.get("/metrics").text)
    for name, family in fams.items():
        assert name.startswith("carbonsync_"), name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name
        for s in family.samples:
            assert set(s.labels) <= {"job", "state", "signal", "method", "route", "status", "le"}, s
    assert not any("milliseconds" in n or "kilowatts" in n for n in fams)
