"""``deploy/grafana/carbonsync.json`` is a valid Grafana dashboard that queries only metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "carbonsync.json"
DS_UID = "${DS_PROMETHEUS}"
NAME = re.compile(r"\bcarbonsync_[A-Za-z0-9_]+")
SUFFIX = re.compile(r"_(bucket|count|sum)$")
PANEL_TYPES = {"timeseries", "stat", "state-timeline", "gauge", "bargauge", "table", "text"}
# every metric the brief names, each must be queried by some panel
WANTED = {
    "carbonsync_controller_state", "carbonsync_controller_power_cap_watts", "carbonsync_controller_power_draw_watts",
    "carbonsync_controller_energy_joules_total", "carbonsync_grid_carbon_intensity_grams_per_kilowatt_hour",
    "carbonsync_grid_price_per_megawatt_hour", "carbonsync_grid_signal_age_seconds",
    "carbonsync_controller_decisions_total", "carbonsync_forecast_latest_init_age_seconds",
    "carbonsync_forecast_store_up", "carbonsync_http_request_duration_seconds_bucket",
    "carbonsync_http_request_duration_seconds_count",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, rows' collapsed children included (rows themselves hold no query)."""
    out = []
    for p in dash["panels"]:
        out.extend(p.get("panels", []) if p.get("type") == "row" else [p])
    return out


def referenced(dash: dict[str, Any]) -> set[str]:
    return {name for p in panels(dash) for t in p["targets"] for name in NAME.findall(t["expr"])}


def exported_names(text: str) -> set[str]:
    """Metric families (``# TYPE`` lines) and sample names in Prometheus text."""
    names = set(re.findall(r"^# TYPE (carbonsync_\w+) ", text, flags=re.M))
    return names | set(re.findall(r"^(carbonsync_\w+)(?:\{| )", text, flags=re.M))


def test_every_queried_metric_is_served_by_metrics(dashboard, client):
    client.get("/zones")                       # one observed request, so the latency histogram has samples
    served = client.get("/metrics")
    assert served.status_code == 200
    exported = exported_names(served.text)
    names = referenced(dashboard)
    assert names, "the dashboard queries no carbonsync_ metric"
    missing = {n for n in names if n not in exported and SUFFIX.sub("", n) not in exported}
    assert not missing, f"queried but not in /metrics: {sorted(missing)}"
    assert names >= WANTED, f"metrics with no panel: {sorted(WANTED - names)}"


def test_dashboard_structure(dashboard):
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"] and dashboard["uid"]
    assert any(i["name"] == "DS_PROMETHEUS" and i["type"] == "datasource" and i["pluginId"] == "prometheus"
               for i in dashboard["__inputs"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    job = variables["job"]
    assert job["type"] == "query" and job["datasource"]["uid"] == DS_UID
    query = job["query"]["query"] if isinstance(job["query"], dict) else job["query"]
    assert query == "label_values(carbonsync_controller_state, job)"

    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        where = p.get("title")
        assert p["type"] in PANEL_TYPES, where
        assert p["datasource"] == {"type": "prometheus", "uid": DS_UID}, where
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, where
        assert p["targets"], where
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), where
        for t in p["targets"]:
            assert t["datasource"]["uid"] == DS_UID and t["expr"].strip(), where
            assert t["expr"].count("(") == t["expr"].count(")"), (where, t["expr"])
    timeline = [p for p in panels(dashboard) if p["type"] == "state-timeline"]
    assert timeline and 'carbonsync_controller_state{job=~"$job"}' in timeline[0]["targets"][0]["expr"]
