"""The service while things change under it: a store that grows while it serves, an export that is mid-write
(readers keep the last committed snapshot and never wait), decision logs that appear and grow line by line."""

from __future__ import annotations

import threading

import pandas as pd
from fastapi.testclient import TestClient

from carbonsync.control import DecisionLog
from carbonsync.forecast.export import export_forecasts
from carbonsync.forecast.synthetic import synthetic_forecast

from .conftest import INITS, ZONES, engine_decisions, log_decisions, make_app, write_store


def test_a_running_export_never_blocks_readers_and_its_batch_appears_whole(tmp_path):
    run_dir = tmp_path / "run"
    store = write_store(run_dir / "forecast.zarr", INITS[:2])
    written, release = threading.Event(), threading.Event()

    def hold(batch: list[pd.Timestamp]) -> None:      # chunks written, commit not yet made
        written.set()
        assert release.wait(60)

    def forecast(t):
        return synthetic_forecast(t, lead_hours=48, zones=ZONES)

    exporter = threading.Thread(target=export_forecasts, args=(store, [INITS[2]], forecast, {"data_source": "synthetic-test"}),
                                kwargs={"before_commit": hold}, daemon=True)
    with TestClient(make_app(run_dir)) as c:
        exporter.start()
        assert written.wait(60)
        for _ in range(3):   # mid-export: answered at once, from the last committed snapshot
            assert c.get("/health").json()["init_time"] == "2020-08-25T06:00:00+00:00"
            (fc,) = c.get("/emissions/forecasts/current", params={"location": "iberia"}).json()
            assert fc["generatedAt"] == "2020-08-25T06:00:00+00:00"
        release.set()
        exporter.join(60)
        assert not exporter.is_alive()
        (fc,) = c.get("/emissions/forecasts/current", params={"location": "iberia"}).json()
        assert fc["generatedAt"] == "2020-08-25T12:00:00+00:00"            # the new batch, whole
        metrics = c.get("/metrics").text
        assert "carbonsync_forecast_init_times 3.0" in metrics


def test_decision_logs_that_appear_and_grow_are_followed(tmp_path):
    run_dir = tmp_path / "run"
    write_store(run_dir / "forecast.zarr", INITS[:1])
    decisions = engine_decisions()
    with TestClient(make_app(run_dir)) as c:
        assert c.get("/controllers").json() == []
        log = DecisionLog(run_dir / "control" / "job-a.jsonl")
        log_decisions(log, decisions[:5])
        (a,) = c.get("/controllers").json()
        assert a["job"] == "job-a" and a["decisions_total"] == 5
        with log.path.open("a", encoding="utf-8") as f:       # a controller mid-write: half a line
            f.write('{"state": "red", "time": "2020-08-26T00:00:00", "sen')
        assert c.get("/controllers").json()[0]["decisions_total"] == 5
        with log.path.open("a", encoding="utf-8") as f:
            f.write('tence": "finished later"}\n')
        (a,) = c.get("/controllers").json()
        assert a["decisions_total"] == 6 and a["sentence"] == "finished later" and a["state"] == "red"
        log_decisions(DecisionLog(run_dir / "control" / "job-b" / "decisions.jsonl"), decisions[:2])
        assert [x["job"] for x in c.get("/controllers").json()] == ["job-a", "job-b"]
        log.path.write_text("not json\n", encoding="utf-8")   # replaced by something else: read anew, bad lines skipped
        jobs = {x["job"]: x for x in c.get("/controllers").json()}
        assert "job-a" not in jobs and c.get("/controllers/job-a/decisions").json() == []
