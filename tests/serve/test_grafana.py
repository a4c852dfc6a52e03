"""The Grafana dashboard in deploy/grafana names only metrics the service exports, in a valid panel structure."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "carbonsync.json"


def test_every_panel_queries_metrics_the_service_exports(client):
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["schemaVersion"] >= 36 and dash["panels"]
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    client.get("/zones")                                   # so the latency histogram has a series
    exported = set(re.findall(r"^(carbonsync_\w+?)(?:\{| )", client.get("/metrics").text, flags=re.M))
    exported |= {re.sub(r"_(bucket|count|sum)$", "", name) for name in exported}
    for panel in dash["panels"]:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            names = re.findall(r"carbonsync_\w+", target["expr"])
            assert names, target
            for name in names:
                assert name in exported or re.sub(r"_(bucket|count|sum)$", "", name) in exported, (panel["title"], name)
