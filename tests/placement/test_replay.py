"""Hour-by-hour policy replay: causal forecast, queue and sites, engine accounting, policies, benchmark CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.core.time import HOUR
from carbonsync.placement import Job, PlacementError, Site, load_queue, load_sites
from carbonsync.placement.replay import (
    HISTORY_H,
    POLICIES,
    Forecaster,
    ReplayState,
    generate_queue,
    get_policy,
    hour_index,
    register_policy,
    replay,
    simulate,
    size_sites,
)
from carbonsync.placement.replay import POLICIES_REGISTRY as registry
from tests.helpers import REPO_ROOT, requires_shared_data, shared_data_dir

ROOT = REPO_ROOT


def synthetic_traces(days: int = 21, seed: int = 0) -> xr.Dataset:
    """Three zones with daily cycles at different levels and noise."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2021-03-01", periods=24 * days, freq="h")
    hours = np.arange(len(times))
    levels = np.array([300.0, 150.0, 40.0])
    phases = np.array([0.0, 8.0, 16.0])
    cycle = 1 + 0.35 * np.sin(2 * np.pi * (hours[None, :] - phases[:, None]) / 24)
    noise = np.cumsum(rng.normal(0, 0.02, (3, len(times))), axis=1)
    intensity = levels[:, None] * np.clip(cycle + noise, 0.2, None)
    return xr.Dataset(
        {"carbon_intensity": (("time", "zone"), intensity.T), "renewable_share": (("time", "zone"), 0.5 + 0 * intensity.T)},
        coords={"time": times, "zone": ["dirty", "middle", "clean"]},
    )


def test_forecast_uses_only_the_past():
    ds = synthetic_traces()
    intensity = ds["carbon_intensity"].values.T.copy()
    times = pd.DatetimeIndex(ds["time"].values)
    t = HISTORY_H + 50
    before = Forecaster(intensity, times).forecast(t, 48)
    tampered = intensity.copy()
    tampered[:, t:] *= 10.0
    after = Forecaster(tampered, times).forecast(t, 48)
    np.testing.assert_allclose(before, after)
    assert before.shape == (3, 48) and (before >= 0).all()
    # better than persistence at 6 h on a daily cycle
    errors, persistence = [], []
    for t in range(HISTORY_H + 10, len(times) - 6, 7):
        errors.append(np.abs(Forecaster(intensity, times).forecast(t, 6)[:, 5] - intensity[:, t + 5]).mean())
        persistence.append(np.abs(intensity[:, t - 1] - intensity[:, t + 5]).mean())
    assert np.mean(errors) < np.mean(persistence)
    with pytest.raises(PlacementError, match="needs"):
        Forecaster(intensity, times).forecast(10, 5)


def test_generated_queue_and_sites():
    times = pd.date_range("2021-03-01", periods=24 * 60, freq="h")
    ids = ["site-dirty", "site-middle", "site-clean"]
    jobs = generate_queue(400, times, ids, seed=3)
    assert jobs == generate_queue(400, times, ids, seed=3) and jobs != generate_queue(400, times, ids, seed=4)
    arrival = [hour_index(times, j.earliest_start) for j in jobs]
    assert arrival == sorted(arrival)
    deadlines = [hour_index(times, j.deadline) for j in jobs]
    assert all(a > HISTORY_H and a + j.hours <= d <= 24 * 60 for a, d, j in zip(arrival, deadlines, jobs, strict=True))
    assert all(j.home in ids and (not j.regions or j.regions == (j.home,)) and 1 <= j.hours <= 48 for j in jobs)
    assert 0.35 < np.mean([j.interruptible for j in jobs]) < 0.65
    assert 0.2 < np.mean([len(j.regions) == 1 for j in jobs]) < 0.4
    assert all(j.restart_overhead_h == 0 for j in jobs if not j.interruptible)
    intensity = synthetic_traces(60)["carbon_intensity"].values.T
    sites = size_sites(["dirty", "middle", "clean"], times, intensity, jobs)
    assert [s.id for s in sites] == ids and all(s.price == 0.0 for s in sites)
    use = np.zeros((3, intensity.shape[1] + 1))
    for a, j in zip(arrival, jobs, strict=True):
        use[ids.index(j.home), a : a + j.hours] += j.gpus
    assert sites[2].gpus < use.sum(axis=0).max()  # the cleanest site cannot host every job at once
    assert all(s.gpus % 8 == 0 and 1.1 <= s.pue <= 1.4 for s in sites)


TIMES = pd.date_range("2021-03-01", periods=HISTORY_H + 60, freq="h")


def replay_job(job_id: str, gpus: int, hours: int, arrival: int, deadline: int, interruptible: bool, overhead: float,
               home: str, regions: tuple[str, ...]) -> Job:
    """A job at hour indices into ``TIMES``."""
    return Job(id=job_id, gpus=gpus, hours=hours, earliest_start=TIMES[0] + arrival * HOUR,
               deadline=TIMES[0] + deadline * HOUR, interruptible=interruptible, restart_overhead_h=overhead,
               regions=regions, home=home)


def test_engine_bills_energy_pauses_and_deadlines():
    intensity = np.zeros((2, HISTORY_H + 60))
    intensity[0] = 100.0
    intensity[1] = 20.0
    intensity[0, HISTORY_H + 1] = 900.0  # one dirty hour at home
    sites = [Site("home", "a", 64, 1.0, 0.0, 1.0), Site("away", "b", 64, 1.5, 0.0, 1.0)]
    job = replay_job("j", 8, 3, HISTORY_H, HISTORY_H + 3, True, 0.5, "home", ("home",))
    agnostic = simulate("carbon_agnostic", [job], sites, TIMES, intensity)
    assert agnostic.energy_kwh == pytest.approx(8 * 3)
    assert agnostic.emissions_kg == pytest.approx(8 * (100 + 900 + 100) / 1000)
    assert agnostic.deadline_misses == 0 and agnostic.finish == {"j": HISTORY_H + 3}
    # with slack the threshold policy pauses in the dirty hour (observed one hour late) and pays a restart
    loose = replay_job("j", 8, 3, HISTORY_H, HISTORY_H + 10, True, 0.5, "home", ())
    oracle = simulate("oracle", [loose], sites, TIMES, intensity)
    assert oracle.emissions_kg == pytest.approx(8 * 1.5 * 3 * 20 / 1000)  # the clean site, PUE 1.5
    threshold = simulate("threshold", [loose], sites, TIMES, intensity)
    assert threshold.deadline_misses == 0 and threshold.energy_kwh >= 8 * 3
    tight = replay_job("t", 8, 3, HISTORY_H, HISTORY_H + 2 + 1, False, 0.0, "home", ("home",))
    assert simulate("threshold", [tight], sites, TIMES, intensity).deadline_misses == 0  # no slack: runs anyway
    with pytest.raises(PlacementError, match="unknown policy 'psychic'; known policies: carbon_agnostic, threshold"):
        simulate("psychic", [job], sites, TIMES, intensity)
    with pytest.raises(PlacementError, match="needs a forecaster"):
        simulate("temporal", [loose], sites, TIMES, intensity)


def test_policy_registry_and_protocol():
    assert POLICIES == ("carbon_agnostic", "threshold", "temporal", "spatiotemporal", "oracle")
    assert get_policy("spatiotemporal", reserve=0.0).reserve == 0.0

    class Never:
        """Runs nothing until a job has no slack left, then at home."""

        def decide(self, state: ReplayState, t: int) -> dict[int, int]:
            decisions = state.committed(t)
            state.fill(decisions, state.active(t), lambda i: state.home[i] if state.slack(i, t) <= 0 else None)
            return decisions

    intensity = np.full((1, HISTORY_H + 60), 100.0)
    sites = [Site("home", "a", 64, 1.0, 0.0, 1.0)]
    job = replay_job("j", 8, 3, HISTORY_H, HISTORY_H + 8, False, 0.0, "home", ())
    register_policy("test-last-minute")(Never)
    try:
        for policy in ("test-last-minute", Never()):
            result = simulate(policy, [job], sites, TIMES, intensity)
            assert result.finish == {"j": HISTORY_H + 8} and result.deadline_misses == 0
    finally:
        registry.unregister("test-last-minute")


def test_policies_on_synthetic_traces():
    out = replay(synthetic_traces(21), n_jobs=50, seed=1)
    policies = out["policies"]
    assert set(policies) == {"carbon_agnostic", "threshold", "temporal", "spatiotemporal", "oracle"}
    for name, p in policies.items():
        assert p["deadline_misses"] == 0, name
        assert p["energy_kwh"] > 0 and p["emissions_kg"] > 0
    base, oracle = policies["carbon_agnostic"]["emissions_kg"], policies["oracle"]["emissions_kg"]
    assert oracle < base and policies["oracle"]["oracle_savings_share"] == 1.0
    assert policies["carbon_agnostic"]["oracle_savings_share"] == 0.0
    assert policies["spatiotemporal"]["emissions_kg"] < policies["temporal"]["emissions_kg"] < base
    assert policies["spatiotemporal"]["oracle_savings_share"] > 0.6
    results = out["results"]
    for name, r in results.items():
        assert (r.usage <= np.array([s["gpus"] for s in out["sites"].values()])[:, None]).all(), name
        assert len(r.finish) == 50
    assert out["forecast_mae"]["forecast"]["lead_6h"] < out["forecast_mae"]["persistence"]["lead_6h"]


def write_portal(directory: Path, ds: xr.Dataset) -> None:
    """The synthetic traces as Electricity Maps portal CSVs, one file per zone and month."""
    for zone in ds["zone"].values:
        series = ds["carbon_intensity"].sel(zone=zone).to_series()
        for month, part in series.groupby(series.index.month):
            frame = pd.DataFrame({
                "Datetime (UTC)": part.index.strftime("%Y-%m-%d %H:%M:%S"), "Country": "X", "Zone Name": zone,
                "Zone Id": zone, "Carbon Intensity gCO₂eq/kWh (direct)": part.round(3).values,
                "Carbon Intensity gCO₂eq/kWh (LCA)": part.round(3).values * 1.3, "Low Carbon Percentage": 50.0,
                "Renewable Percentage": 40.0, "Data Source": "", "Data Estimated": "false", "Data Estimation Method": "",
            })
            frame.to_csv(directory / f"{zone}_{month:02d}_hourly.csv", index=False)


def test_benchmark_cli_prints_one_json_object(tmp_path):
    write_portal(tmp_path, synthetic_traces(16))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "placement_replay.py"), "--traces", str(tmp_path), "--jobs", "20",
         "--days", "15", "--policies", "carbon_agnostic", "spatiotemporal", "oracle"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["zones"] == ["clean", "dirty", "middle"] and out["hours"] == 15 * 24 and out["jobs"] == 20
    for name in ("carbon_agnostic", "spatiotemporal", "oracle"):
        assert {"emissions_kg", "energy_kwh", "deadline_misses", "oracle_savings_share"} <= set(out["policies"][name])
    again = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "placement_replay.py"), "--traces", str(tmp_path), "--jobs", "20",
         "--days", "15", "--policies", "carbon_agnostic", "--write-queue", str(tmp_path / "queue")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert again.returncode == 0, again.stderr
    sites = load_sites(tmp_path / "queue" / "sites.yaml")
    jobs = load_queue(tmp_path / "queue" / "queue.yaml", sites)
    assert len(jobs) == 20 and [s.gpus for s in sites] == [v["gpus"] for v in out["sites"].values()]
    assert min(j.earliest_start for j in jobs) >= pd.Timestamp("2021-03-08")  # after a week of history
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "placement_replay.py"), "--traces", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode != 0 and "does not exist" in bad.stderr


@requires_shared_data
def test_electricitymaps_month_meets_the_target():
    from carbonsync.data.observations.electricitymaps import load_traces

    out = replay(load_traces(shared_data_dir() / "electricitymaps"), days=45, seed=0)
    spatial = out["policies"]["spatiotemporal"]
    assert spatial["deadline_misses"] == 0 and spatial["oracle_savings_share"] >= 0.6
    assert out["sites"]["site-NO"]["gpus"] < out["peak_concurrent_gpus"]["carbon_agnostic"]
