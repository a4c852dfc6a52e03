"""The service's HTTP API through httpx against the app: carbon-aware-sdk shaped answers computed from the forecast
store, CarbonSync's own routes, and every error class as an RFC 7807 problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from carbonsync.forecast.reader import latest_forecast

from .conftest import INITS, make_app, write_store

PROBLEM = "application/problem+json"


def problem(response, status: int, parameter: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["type"].startswith("/problems/") and body["title"] and body["detail"]
    assert body["instance"] == response.request.url.path
    if parameter is not None:
        assert body["parameter"] == parameter, body
    return body


def test_emissions_by_locations_are_the_newest_forecast_carbon_intensity(client, served_run):
    r = client.get("/emissions/bylocations", params={"location": ["iberia", "nordics"], "time": "2020-08-25T18:00Z",
                                                     "toTime": "2020-08-25T23:00Z"})
    assert r.status_code == 200
    rows = r.json()
    expected = latest_forecast(served_run / "forecast.zarr", ["iberia", "nordics"], "2020-08-25T18:00",
                               "2020-08-25T23:00", products=["carbon_intensity"])
    assert len(rows) == 2 * 6 and {r["duration"] for r in rows} == {"01:00:00"}
    iberia = [row["rating"] for row in rows if row["location"] == "iberia"]
    np.testing.assert_allclose(iberia, expected["carbon_intensity"].sel(zone="iberia").values, rtol=1e-6)
    assert rows[0]["time"] == "2020-08-25T18:00:00+00:00"
    # the SDK's older spelling ?locations= works too
    assert client.get("/emissions/bylocations", params={"locations": "iberia", "time": "2020-08-25T18:00Z",
                                                        "toTime": "2020-08-25T23:00Z"}).json() == \
        [row for row in rows if row["location"] == "iberia"]


def test_best_is_the_lowest_rating_over_the_zones_and_hours(client):
    params = {"location": ["iberia", "nordics", "sahara"]}
    every = client.get("/emissions/bylocations", params=params).json()
    best = client.get("/emissions/bylocations/best", params=params).json()
    assert best and all(b["rating"] == min(r["rating"] for r in every) for b in best)


def test_current_forecast_finds_the_lowest_mean_window(client, served_run):
    params = {"location": "iberia", "dataStartAt": "2020-08-25T18:00:00Z", "dataEndAt": "2020-08-26T18:00:00Z",
              "windowSize": 180}
    (fc,) = client.get("/emissions/forecasts/current", params=params).json()
    assert fc["location"] == "iberia" and fc["windowSize"] == 180
    assert fc["generatedAt"] == "2020-08-25T18:00:00+00:00"             # the newest committed init time
    assert fc["dataStartAt"] == "2020-08-25T18:00:00+00:00" and fc["dataEndAt"] == "2020-08-26T18:00:00+00:00"
    truth = latest_forecast(served_run / "forecast.zarr", ["iberia"], "2020-08-25T18:00", "2020-08-26T18:00",
                            products=["carbon_intensity"])["carbon_intensity"].values[:, 0]
    means = np.convolve(truth, np.ones(3) / 3, mode="valid")               # 3-hour windows from each hour
    np.testing.assert_allclose([p["value"] for p in fc["forecastData"]], means, rtol=1e-6)
    (best,) = fc["optimalDataPoints"]
    assert best["value"] == pytest.approx(means.min()) and best["duration"] == 180
    assert pd.Timestamp(best["timestamp"]) == pd.Timestamp("2020-08-25T18:00Z") + pd.Timedelta(hours=int(means.argmin()))


def test_zone_forecast_has_quantiles_and_the_schedule_explains_itself(client):
    body = client.get("/zones/iberia/forecast", params={"start": "2020-08-25T18:00", "end": "2020-08-26T00:00",
                                                        "products": "renewable_share"}).json()
    share = body["products"]["renewable_share"]
    assert len(body["time"]) == len(share["values"]) == 7 and set(share["quantiles"]) == {"0.1", "0.5", "0.9"}
    lo, hi = np.array(share["quantiles"]["0.1"]), np.array(share["quantiles"]["0.9"])
    assert (lo <= hi).all()
    jobs = [{"id": "train-a", "gpus": 8, "hours": 4, "earliest_start": "2020-08-25T18:00",
             "deadline": "2020-08-26T18:00"}]
    placed = client.post("/schedule", json={"jobs": jobs}).json()
    (a,) = placed["assignments"]
    assert a["job"] == "train-a" and a["site"] in {"madrid", "oslo"} and a["explanation"].startswith("train-a runs at")
    assert placed["init_time"] == "2020-08-25T18:00:00+00:00"
    # sites in the request replace the run's
    mine = client.post("/schedule", json={"jobs": jobs, "sites": [{"id": "sahara-dc", "zone": "sahara", "gpus": 16,
                                                                   "price": 30.0}]}).json()
    assert mine["assignments"][0]["site"] == "sahara-dc"


def test_controllers_come_from_the_decision_log(client):
    (c,) = client.get("/controllers").json()
    assert c["job"] == "resnet" and c["state"] in {"green", "yellow", "red"} and "because" in c["sentence"]
    assert "red" in c["history"]["state"] and len(c["decisions"]) <= 50
    last = client.get("/controllers/resnet/decisions", params={"limit": 3}).json()
    assert len(last) == 3 and last[-1]["sentence"] == c["sentence"]


def test_bad_requests_name_the_parameter(client):
    problem(client.get("/emissions/bylocations"), 400, "location")
    problem(client.get("/emissions/bylocations", params={"location": "iberia", "time": "yesterday-ish"}), 400, "time")
    problem(client.get("/emissions/bylocations", params={"location": "iberia", "time": "2020-08-26T00:00Z",
                                                         "toTime": "2020-08-25T00:00Z"}), 400, "toTime")
    problem(client.get("/emissions/forecasts/current", params={"location": "iberia", "windowSize": 0}), 400,
            "windowSize")
    problem(client.get("/emissions/forecasts/current", params={"location": "iberia", "windowSize": "ten"}), 400,
            "windowSize")
    problem(client.get("/zones/iberia/forecast", params={"products": "wind_speed"}), 400, "products")
    bad_job = {"id": "x", "gpus": 0, "hours": 2, "earliest_start": "2020-08-25T18:00", "deadline": "2020-08-26T00:00"}
    problem(client.post("/schedule", json={"jobs": [bad_job]}), 400, "jobs[0].gpus")
    late = {**bad_job, "gpus": 1, "deadline": "2020-08-25T19:00"}          # deadline before start + hours
    assert "deadline" in problem(client.post("/schedule", json={"jobs": [late]}), 400, "jobs")["detail"]
    problem(client.post("/schedule", json={"jobs": [], "sites": None}), 400, "jobs")
    problem(client.post("/schedule", json={"jobs": [{**bad_job, "gpus": 1}], "sites": [{"id": "s", "zone": "iberia",
                                                                                       "gpus": 1, "price": "/etc/passwd"}]}),
            400, "sites[0].price")


def test_limits_on_zones_jobs_and_window(served_run):
    with TestClient(make_app(served_run, max_zones=2, max_jobs=2, max_window_h=12)) as c:
        problem(c.get("/emissions/bylocations", params={"location": ["iberia", "nordics", "sahara"]}), 400, "location")
        problem(c.get("/emissions/bylocations", params={"location": "iberia", "time": "2020-08-25T18:00Z",
                                                        "toTime": "2020-08-26T18:00Z"}), 400, "toTime")
        jobs = [{"id": f"j{i}", "gpus": 1, "hours": 1, "earliest_start": "2020-08-25T18:00",
                 "deadline": "2020-08-25T22:00"} for i in range(3)]
        problem(c.post("/schedule", json={"jobs": jobs}), 400, "jobs")


def test_unknown_zone_and_job_are_404(client):
    body = problem(client.get("/emissions/bylocations", params={"location": ["iberia", "atlantis"]}), 404, "location")
    assert "atlantis" in body["detail"] and "iberia" in body["detail"]
    problem(client.get("/zones/atlantis/forecast"), 404, "zone")
    problem(client.get("/controllers/nobody/decisions"), 404, "job")
    problem(client.get("/no/such/route"), 404)


def test_no_committed_init_time_is_503_until_the_store_appears(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with TestClient(make_app(run_dir)) as c:
        r = c.get("/emissions/forecasts/current", params={"location": "iberia"})
        assert "forecast" in problem(r, 503)["detail"] and r.headers["retry-after"] == "30"
        problem(c.get("/zones"), 503)
        assert c.get("/health").json()["store"] == "missing"
        assert c.get("/api/dashboard").json()["store"]["status"] == "missing"    # the page still renders
        write_store(run_dir / "forecast.zarr", INITS[:1])                       # an export lands
        assert c.get("/zones").status_code == 200
        assert c.get("/health").json()["init_time"] == "2020-08-25T00:00:00+00:00"


def test_the_write_endpoint_takes_a_bearer_token_from_the_environment(served_run, monkeypatch, caplog):
    monkeypatch.setenv("CARBONSYNC_SERVE_TOKEN", "s3cret-token-value")
    job = {"id": "t", "gpus": 1, "hours": 1, "earliest_start": "2020-08-25T18:00", "deadline": "2020-08-25T22:00"}
    with TestClient(make_app(served_run)) as c:
        r = c.post("/schedule", json={"jobs": [job]})
        assert problem(r, 401)["type"] == "/problems/unauthorized" and r.headers["www-authenticate"].startswith("Bearer")
        problem(c.post("/schedule", json={"jobs": [job]}, headers={"Authorization": "Bearer wrong"}), 401)
        ok = c.post("/schedule", json={"jobs": [job]}, headers={"Authorization": "Bearer s3cret-token-value"})
        assert ok.status_code == 200
        assert c.get("/zones").status_code == 200                               # reads need no token
    assert "s3cret-token-value" not in caplog.text and "s3cret-token-value" not in r.text


def test_openapi_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    for route in ("/emissions/bylocations", "/emissions/bylocations/best", "/emissions/forecasts/current",
                  "/zones/{zone}/forecast", "/schedule", "/controllers", "/metrics"):
        assert route in spec["paths"], route
    assert client.get("/docs").status_code == 200


def test_the_event_stream_sends_dashboard_updates(client):
    with client.stream("GET", "/events", params={"limit": 2}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [block for block in text.split("\n\n") if block.strip()]
    assert len(events) == 2 and all(e.startswith("event: update\ndata: {") for e in events)
    assert '"controllers"' in events[0] and '"zones"' in events[0]
