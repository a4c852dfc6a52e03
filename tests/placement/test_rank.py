"""Placement: job/site loading, window search, interruptible hours, greedy capacity-aware scheduling."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from carbonsync.placement import (
    PlacementError,
    Site,
    Weights,
    assess,
    baseline,
    best_hours,
    best_window,
    evaluate_assignment,
    format_table,
    load_queue,
    load_sites,
    rank_regions,
    schedule,
)
from carbonsync.placement.jobs import HOUR
from tests.helpers import REPO_ROOT
from tests.helpers.placement import START, job, make_forecast, random_forecast, random_queue, site

CONFIGS = REPO_ROOT / "configs" / "placement"


def write(tmp_path: Path, doc: object, name: str = "queue.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if name.endswith(".json") else yaml.safe_dump(doc, sort_keys=False))
    return path


# --- window search --------------------------------------------------------------------------------------


@pytest.mark.parametrize("hours", [1, 3, 7, 20])
def test_best_window_matches_brute_force(hours):
    rng = np.random.default_rng(hours)
    score = rng.uniform(0, 1, (5, 20))
    blocked = rng.uniform(0, 1, score.shape) < 0.1
    for mask in (None, blocked):
        start, total = best_window(score, hours, mask)
        for row in range(score.shape[0]):
            sums = [
                np.inf
                if mask is not None and mask[row, s : s + hours].any()
                else score[row, s : s + hours].sum()
                for s in range(20 - hours + 1)
            ]
            assert total[row] == pytest.approx(min(sums))
            if np.isfinite(min(sums)):
                assert start[row] == int(np.argmin(sums))


def test_rank_regions_window_equals_brute_force():
    zones = ["a", "b", "c"]
    forecast = random_forecast(48, zones, seed=3)
    sites = [site("a", pue=1.1), site("b", pue=1.4), site("c", pue=1.25, gpu_kw=0.5)]
    j = job(gpus=16, hours=5, earliest_start=START + 6 * HOUR, deadline=START + 40 * HOUR)
    frame = rank_regions(j, sites, forecast)
    assert list(frame["rank"]) == [1, 2, 3]
    assert frame["score"].is_monotonic_increasing
    for s in sites:
        intensity = forecast["carbon_intensity"].sel(zone=s.zone).values
        power = j.gpus * s.gpu_kw * s.pue
        starts = range(6, 40 - 5 + 1)
        emissions = [power * intensity[t : t + 5].sum() / 1000 for t in starts]
        row = frame.set_index("site").loc[s.id]
        assert row["start"] == START + starts[int(np.argmin(emissions))] * HOUR
        assert row["emissions_kg"] == pytest.approx(min(emissions))
        assert row["energy_kwh"] == pytest.approx(power * 5)
        assert row["cost_eur"] == pytest.approx(power * 5 / 1000 * 50.0)
        assert row["segments"] == 1


# --- interruptible jobs ---------------------------------------------------------------------------------


def brute_force_hours(score: np.ndarray, hours: int, restart: float) -> float:
    best = np.inf
    for combo in itertools.combinations(range(len(score)), hours):
        chosen = np.zeros(len(score), dtype=bool)
        chosen[list(combo)] = True
        resumes = (chosen & ~np.concatenate([[False], chosen[:-1]])).nonzero()[0][1:]
        best = min(best, score[chosen].sum() + restart * score[resumes].sum())
    return best


@pytest.mark.parametrize("restart", [0.0, 0.3, 2.0])
def test_best_hours_matches_brute_force(restart):
    rng = np.random.default_rng(int(restart * 10))
    score = rng.uniform(0.1, 1.0, (3, 11))
    chosen, total = best_hours(score, 4, restart * score)
    for row in range(3):
        assert chosen[row].sum() == 4
        assert total[row] == pytest.approx(brute_force_hours(score[row], 4, restart))


def test_interruptible_picks_cleanest_hours_and_pays_overhead():
    share = np.full((24, 1), 0.1)
    share[[3, 4, 15, 16], 0] = 0.9  # two clean spells, far apart
    forecast = make_forecast(share, ["z"], fossil=500.0)
    sites = [site("z", pue=1.0, gpu_kw=1.0)]
    power = 8.0  # 8 GPUs x 1 kW x PUE 1

    cheap = rank_regions(job(hours=4, interruptible=True, restart_overhead_h=0.5), sites, forecast).iloc[0]
    assert [t.hour for t in cheap["slots"]] == [3, 4, 15, 16]
    assert cheap["segments"] == 2
    clean, dirty = 0.1 * 500, 0.9 * 500  # g/kWh in the clean and the dirty hours
    assert cheap["energy_kwh"] == pytest.approx(power * 4.5)
    assert cheap["emissions_kg"] == pytest.approx(power * (4 * clean + 0.5 * clean) / 1000)
    assert cheap["mean_renewable_share"] == pytest.approx(0.9)

    # a restart (billed at the clean resume hour) dearer than two dirty hours instead of two clean ones:
    # one contiguous block (a clean spell and two dirty hours) wins
    overhead = 2 * (dirty - clean) / clean + 1.0
    dear_job = job(hours=4, interruptible=True, restart_overhead_h=overhead)
    dear = rank_regions(dear_job, sites, forecast).iloc[0]
    assert dear["segments"] == 1
    assert dear["emissions_kg"] == pytest.approx(power * (2 * clean + 2 * dirty) / 1000)

    rigid = rank_regions(job(hours=4), sites, forecast).iloc[0]
    assert rigid["segments"] == 1 and rigid["emissions_kg"] > cheap["emissions_kg"]


# --- scheduling -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_schedule_respects_capacity_deadlines_and_regions(seed):
    zones = ["a", "b", "c"]
    sites = [site("a", gpus=48), site("b", gpus=64), site("c", gpus=40)]
    forecast = random_forecast(72, zones, seed=seed)
    jobs = random_queue(14, 72, [s.id for s in sites], seed)
    plan = schedule(jobs, sites, forecast)

    usage = xr.zeros_like(plan.usage)
    for j in jobs:
        a = plan[j.id]
        assert a.hours == j.hours == len(set(a.slots))
        assert a.start >= j.earliest_start and a.end <= j.deadline
        assert not j.regions or a.site in j.regions
        if not j.interruptible:
            assert a.segments == 1 and a.end - a.start == j.hours * HOUR
        usage.loc[a.site, list(a.slots)] += j.gpus
    np.testing.assert_array_equal(usage.values, plan.usage.values)
    assert (plan.usage <= plan.capacity).all()
    assert set(plan.to_frame()["job"]) == {j.id for j in jobs}


def test_greedy_places_tightest_job_first_and_shares_the_clean_site():
    share = np.column_stack([np.full(24, 0.9), np.full(24, 0.2)])
    forecast = make_forecast(share, ["clean", "dirty"])
    sites = [site("clean", gpus=16), site("dirty", gpus=64)]
    loose = job("loose", gpus=16, hours=4, deadline=START + 24 * HOUR)
    tight = job("tight", gpus=16, hours=4, deadline=START + 4 * HOUR)
    plan = schedule([loose, tight], sites, forecast)
    assert plan.order == ("tight", "loose")
    assert plan["tight"].site == "clean" and plan["tight"].start == START
    assert plan["loose"].site == "clean" and plan["loose"].start >= START + 4 * HOUR
    assert (plan.usage <= plan.capacity).all()


def test_infeasible_queue_names_every_job():
    forecast = make_forecast(np.full((24, 2), 0.5), ["a", "b"])
    sites = [site("a", gpus=16), site("b", gpus=16)]
    window = {"hours": 6, "deadline": START + 6 * HOUR}
    jobs = [
        job("first", gpus=16, **window),
        job("second", gpus=16, **window),
        job("crowded-out", gpus=16, **window),
        job("too-big", gpus=32),
        job("fits", gpus=8, hours=2),
    ]
    with pytest.raises(PlacementError) as err:
        schedule(jobs, sites, forecast)
    message = str(err.value)
    assert "cannot place 2 job(s)" in message
    assert "'too-big' needs 32 GPUs, its largest allowed site has 16" in message
    # equal slack: ties go by id, so the third of the identical jobs is the one left without GPUs
    assert "'second' finds no allowed site with 16 free GPUs" in message
    assert "'first'" not in message and "'crowded-out'" not in message and "'fits'" not in message


def test_forecast_errors_are_clear():
    forecast = make_forecast(np.full((24, 1), 0.5), ["a"])
    with pytest.raises(PlacementError, match="site 'x' is in zone 'nowhere'"):
        rank_regions(job(), [site("x", zone="nowhere")], forecast)
    with pytest.raises(PlacementError, match="forecast covers .* but the job's window needs"):
        rank_regions(job(deadline=START + 30 * HOUR), [site("a")], forecast)
    with pytest.raises(PlacementError, match="missing variable"):
        rank_regions(job(), [site("a")], forecast.drop_vars("carbon_intensity"))
    with pytest.raises(PlacementError, match="dims"):
        rank_regions(job(), [site("a")], forecast.expand_dims(member=2))
    gappy = forecast.isel(time=[0, 1, 3])
    with pytest.raises(PlacementError, match="hourly"):
        rank_regions(job(hours=1, deadline=START + 2 * HOUR), [site("a")], gappy)


# --- weights, prices and explanations ------------------------------------------------------------------


def test_weights_change_the_ranking(tmp_path):
    share = np.column_stack([np.full(24, 0.8), np.full(24, 0.3)])
    forecast = make_forecast(share, ["green", "cheap"])
    sites = [site("green", price=120.0), site("cheap", price=30.0)]
    carbon_only = rank_regions(job(), sites, forecast, Weights(carbon=1.0, price=0.0))
    price_only = rank_regions(job(), sites, forecast, Weights(carbon=0.0, price=1.0))
    assert list(carbon_only["site"]) == ["green", "cheap"]
    assert list(price_only["site"]) == ["cheap", "green"]
    both = rank_regions(job(), sites, forecast, Weights(carbon=1.0, price=1.0))
    assert both["score"].iloc[0] == pytest.approx(both["carbon_score"].iloc[0] + both["price_score"].iloc[0])
    with pytest.raises(PlacementError, match="both 0"):
        Weights(carbon=0.0, price=0.0)


def test_price_csv_drives_the_window(tmp_path):
    times = pd.date_range(START, periods=24, freq="h")
    prices = np.full(24, 100.0)
    prices[10:14] = 5.0
    pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "price": prices}).to_csv(
        tmp_path / "prices.csv", index=False
    )
    spec = {"id": "s", "zone": "a", "gpus": 8, "pue": 1.0, "price": "prices.csv"}
    path = write(tmp_path, {"sites": [spec]}, "sites.yaml")
    sites = load_sites(path)
    forecast = make_forecast(np.full((24, 1), 0.5), ["a"])
    best = rank_regions(job(gpus=8), sites, forecast, Weights(carbon=0.0, price=1.0)).iloc[0]
    assert best["start"] == START + 10 * HOUR
    assert best["cost_eur"] == pytest.approx(8 * 0.7 * 4 / 1000 * 5.0)


def test_explanation_mentions_site_and_numbers():
    share = np.column_stack([np.full(24, 0.2), np.full(24, 0.7)])
    forecast = make_forecast(share, ["home", "north"])
    sites = [site("site-home", "home"), site("site-north", "north")]
    plan = schedule([job("llm-7", hours=12)], sites, forecast)
    a, base = plan["llm-7"], plan.baselines["llm-7"]
    text = plan.explain("llm-7")
    assert a.site == "site-north" and base.site == "site-home"
    assert "llm-7 runs at site 'site-north'" in text and "for 12 h" in text
    assert "70% vs 20%" in text and "site-home" in text
    saving = round(100 * (1 - a.emissions_kg / base.emissions_kg))
    assert f"{a.emissions_kg:,.0f} kg CO2e, {saving}% less than" in text
    assert evaluate_assignment(plan.jobs["llm-7"], sites[0], list(base.slots), forecast).emissions_kg == pytest.approx(
        base.emissions_kg
    )
    table = format_table(plan)
    assert "llm-7" in table and "site-north" in table and "less" in table
    with pytest.raises(KeyError, match="not in the schedule"):
        plan.explain("nope")


# --- loading --------------------------------------------------------------------------------------------

GOOD_JOB = {
    "id": "llm-7",
    "gpus": 8,
    "hours": 12,
    "earliest_start": "2020-01-01T00:00",
    "deadline": "2020-01-03T00:00",
    "interruptible": False,
    "restart_overhead_h": 0.0,
    "regions": ["s1"],
}
SITES = [Site(id="s1", zone="a", gpus=8, pue=1.2, price=50.0)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"deadline": "2020-01-01T06:00"},
            "job 'llm-7': deadline 2020-01-01T06:00 is before earliest_start + hours",
        ),
        ({"gpu": 8}, "job 'llm-7': unknown key(s) gpu"),
        ({"hours": None}, "job 'llm-7': missing key(s) hours"),
        ({"gpus": 0}, "job 'llm-7': gpus must be >= 1"),
        ({"gpus": "eight"}, "job 'llm-7': gpus must be an integer"),
        ({"hours": 2.5}, "job 'llm-7': hours must be an integer"),
        ({"interruptible": "sometimes"}, "job 'llm-7': interruptible must be true or false"),
        ({"restart_overhead_h": -1}, "job 'llm-7': restart_overhead_h must be >= 0"),
        ({"earliest_start": "next tuesday"}, "job 'llm-7': earliest_start is not an ISO datetime"),
        (
            {"earliest_start": "2020-01-01T00:30"},
            "job 'llm-7': earliest_start 2020-01-01T00:30:00 is not on a whole",
        ),
        ({"regions": ["s1", "mars"]}, "job 'llm-7': regions: unknown site id(s) 'mars'"),
        ({"regions": "s1"}, "job 'llm-7': regions must be a list"),
    ],
)
@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_bad_queue_names_file_job_and_field(tmp_path, change, expected, suffix):
    spec = {k: v for k, v in (GOOD_JOB | change).items() if v is not None}
    path = write(tmp_path, {"jobs": [spec]}, f"queue.{suffix}")
    with pytest.raises(PlacementError) as err:
        load_queue(path, sites=SITES)
    assert f"queue file '{path}'" in str(err.value)
    assert expected in str(err.value)


def test_bad_queue_documents(tmp_path):
    with pytest.raises(PlacementError, match="duplicated job id"):
        load_queue(write(tmp_path, {"jobs": [GOOD_JOB, GOOD_JOB]}))
    with pytest.raises(PlacementError, match="unknown top-level key"):
        load_queue(write(tmp_path, {"job": [GOOD_JOB]}))
    with pytest.raises(PlacementError, match="defines no jobs"):
        load_queue(write(tmp_path, {"jobs": []}))
    with pytest.raises(PlacementError, match="is not valid YAML"):
        bad = tmp_path / "broken.yaml"
        bad.write_text("jobs: [ {id: a, gpus: 1\n")
        load_queue(bad)
    with pytest.raises(PlacementError, match="does not exist"):
        load_queue(tmp_path / "missing.yaml")
    jobs = load_queue({"jobs": [GOOD_JOB | {"regions": []}, GOOD_JOB | {"id": "other"}]}, SITES)
    assert len(jobs) == 2 and jobs[0].regions == () and jobs[0].earliest_start == pd.Timestamp("2020-01-01")
    with pytest.raises(PlacementError, match="job 'other': deadline must be an ISO datetime"):
        load_queue([GOOD_JOB | {"id": "other", "deadline": None}])


def test_times_are_converted_to_utc():
    j = job(earliest_start="2020-11-20T02:00+02:00", deadline="2020-11-21T00:00Z")
    assert j.earliest_start == START and j.deadline == START + 24 * HOUR and j.slack_h == 20


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"pue": 0.9}, "site 's1': pue must be >= 1.0"),
        ({"gpus": -4}, "site 's1': gpus must be >= 1"),
        ({"price": "nope.csv"}, "site 's1': price file"),
        ({"cooling": "air"}, "site 's1': unknown key(s) cooling"),
        ({"zone": None}, "site 's1': missing key(s) zone"),
    ],
)
def test_bad_sites_name_the_field(tmp_path, change, expected):
    spec = {"id": "s1", "zone": "a", "gpus": 8, "pue": 1.2, "price": 50.0} | change
    spec = {k: v for k, v in spec.items() if v is not None}
    path = write(tmp_path, {"sites": [spec]}, "sites.yaml")
    with pytest.raises(PlacementError) as err:
        load_sites(path)
    assert f"sites file '{path}'" in str(err.value) and expected in str(err.value)


def test_sample_files_load_and_schedule():
    sites = load_sites(CONFIGS / "sample_sites.yaml")
    jobs = load_queue(CONFIGS / "sample_queue.yaml", sites=sites)
    zones = {"north_sea", "iberia", "sahara", "patagonia", "great_plains", "east_asia"}
    assert {s.zone for s in sites} == zones and len(sites) == len(zones)
    assert all(1.1 <= s.pue <= 1.5 and isinstance(s.price, float) for s in sites)
    assert len({s.gpus for s in sites}) > 1
    assert sum(j.gpus for j in jobs) > max(s.gpus for s in sites)
    assert 6 <= len(jobs) <= 10
    assert any(j.interruptible for j in jobs) and any(not j.interruptible for j in jobs)
    assert any(j.regions for j in jobs) and any(not j.regions for j in jobs)
    assert min(j.earliest_start for j in jobs) >= START
    assert max(j.deadline for j in jobs) <= START + 5 * 24 * HOUR

    forecast = random_forecast(5 * 24, [s.zone for s in sites], seed=7)
    plan = schedule(jobs, sites, forecast)
    assert (plan.usage <= plan.capacity).all()
    assert all(j.id in format_table(plan) for j in jobs)


def test_assess_scores_the_plan_on_realised_data():
    zones = ["a", "b", "c"]
    sites = [site("a", gpus=48), site("b", gpus=64), site("c", gpus=40)]
    forecast = random_forecast(48, zones, seed=4)
    truth = random_forecast(72, [*zones, "elsewhere"], seed=5)  # longer, one more zone, other values
    jobs = random_queue(10, 48, [s.id for s in sites], seed=4)
    plan = schedule(jobs, sites, forecast, solver="fast")
    same = assess(plan, forecast)
    assert same.realised_emissions_kg == pytest.approx(same.expected_emissions_kg)
    assert same.expected_emissions_kg == pytest.approx(sum(a.emissions_kg for a in plan))
    assert same.expected_baseline_kg == pytest.approx(sum(b.emissions_kg for b in plan.baselines.values()))
    outcome = assess(plan, truth)
    assert plan.assessment is outcome
    by_id = {s.id: s for s in sites}
    realised = sum(evaluate_assignment(j, by_id[plan[j.id].site], plan[j.id].slots, truth).emissions_kg for j in jobs)
    assert outcome.realised_emissions_kg == pytest.approx(realised)
    assert outcome.realised_baseline_kg == pytest.approx(sum(baseline(j, sites, truth).emissions_kg for j in jobs))
    assert outcome.realised_emissions_kg != pytest.approx(outcome.expected_emissions_kg)
    assert f"{outcome.realised_saving_pct:.1f}% saving) on the realised data" in outcome.summary()
    with pytest.raises(PlacementError, match="realised data: no values at"):
        assess(plan, truth.isel(time=slice(0, 30)))
    with pytest.raises(PlacementError, match="realised data: no zone"):
        assess(plan, truth.sel(zone=["a", "b"]))


def test_schedule_checks_ids_and_sites():
    forecast = make_forecast(np.full((24, 1), 0.5), ["a"])
    with pytest.raises(PlacementError, match="duplicated job id\\(s\\) x"):
        schedule([job("x"), job("x", hours=2)], [site("a")], forecast)
    with pytest.raises(PlacementError, match="duplicated site id\\(s\\) a"):
        schedule([job("x")], [site("a"), site("a")], forecast)
    with pytest.raises(PlacementError, match="no sites"):
        schedule([job("x")], [], forecast)
    with pytest.raises(PlacementError, match="home: unknown site id 'b'"):
        schedule([job("x", home="b")], [site("a")], forecast)
    with pytest.raises(PlacementError, match="home site 'b' is not one of its regions"):
        job("x", home="b", regions=["a"])


def test_expected_saving_is_the_schedule_against_its_baselines():
    zones = ["a", "b", "c"]
    plan = schedule(random_queue(6, 48, zones, 0), [site(z) for z in zones], random_forecast(48, zones))
    baseline = sum(b.emissions_kg for b in plan.baselines.values())
    assert plan.expected_saving_pct == pytest.approx(100.0 * (1.0 - plan.stats["emissions_kg"] / baseline))
    assert plan.expected_saving_pct > 0
