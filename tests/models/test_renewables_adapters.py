"""The DACF and station adapters: targets from generation by fuel, issue times, and that every feature of a
row is known at its issue time (changing anything after the issue leaves the row's features alone)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carbonsync.data.observations.dacf import DacfArea, products
from carbonsync.evaluate.dayahead import evaluate_dayahead
from carbonsync.models.renewables import RenewablesConfig, RenewablesError
from carbonsync.models.renewables.dacf import DACF_TARGETS, dacf_design, issue_rows
from carbonsync.models.renewables.station import station_design
from carbonsync.models.station import wind_features

FUELS = ("wind", "solar", "gas", "coal", "nuclear")
WEATHER = ("wind_speed_10m", "temperature", "dewpoint", "dswrf", "precipitation")


def synthetic_area(start: str = "2020-01-01", end: str = "2020-08-31T23:00", seed: int = 0) -> DacfArea:
    """An area whose published wind forecast has a slowly decaying (AR(1)) error: learnable from the error at
    the issue hour, which persistence and the published forecast cannot use."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, end, freq="h")
    n = len(times)
    hour = times.hour.to_numpy()
    wind = 3000 * (0.5 + 0.35 * np.sin(np.cumsum(rng.normal(0, 0.08, n))))
    solar = 2000 * np.clip(np.cos(2 * np.pi * (hour - 20) / 24), 0, None) * rng.uniform(0.6, 1.0, n)
    demand = 20000 + 3000 * np.sin(2 * np.pi * (hour - 2) / 24)
    nuclear = np.full(n, 5000.0)
    coal = 0.3 * (demand - wind - solar - nuclear)
    gas = demand - wind - solar - nuclear - coal
    frame = pd.DataFrame({"wind": wind, "solar": solar, "gas": gas, "coal": coal, "nuclear": nuclear}, index=times)
    for name in WEATHER:
        frame[name] = rng.normal(size=n)
    error = np.zeros(n)
    for k in range(1, n):
        error[k] = 0.97 * error[k - 1] + rng.normal(0, 120)
    published = frame[list(FUELS)].copy()
    published["wind"] = wind + error
    published["solar"] = solar * rng.uniform(0.9, 1.1, n)
    operator = published.set_axis([f"avg_{f}_production_forecast" for f in FUELS], axis=1)
    frame["total_generation"] = frame[list(FUELS)].sum(axis=1)
    frame["wind_solar_share"] = (wind + solar) / frame["total_generation"]
    return DacfArea("TEST", frame, list(FUELS), [], operator_forecasts=operator)


def test_products_follow_the_emission_factor_table():
    generation = pd.DataFrame({"wind": [50.0], "coal": [50.0]})
    got = products(generation).iloc[0]
    assert got["wind_solar_share"] == 0.5
    assert got["carbon_intensity"] == pytest.approx(380.0)             # (0 + 760) / 2
    assert got["carbon_intensity_lifecycle"] == pytest.approx(415.5)   # (11 + 820) / 2


def test_issue_rows_cover_the_hours_after_the_issue_to_midnight():
    times = pd.date_range("2020-01-01", "2020-01-03T00:00", freq="h")
    rows = issue_rows(times, issue_hour=6)
    assert len(rows) == 2 * 18 and rows["lead_h"].min() == 1 and rows["lead_h"].max() == 18
    assert rows.iloc[0]["time"] == pd.Timestamp("2020-01-01T07:00")
    with pytest.raises(RenewablesError, match="issue_hour"):
        issue_rows(times, issue_hour=24)


def test_dacf_features_use_only_what_is_known_at_the_issue_time():
    area = synthetic_area(end="2020-01-20T23:00")
    design = dacf_design(area)
    assert design.targets == DACF_TARGETS
    assert not {"wind_speed_10m", "dswrf"} & set(design.features)     # GFS is not published by 00 UTC
    issue = pd.Timestamp("2020-01-10")
    changed = synthetic_area(end="2020-01-20T23:00")
    after = changed.frame.index > issue
    for fuel in ("wind", "coal"):
        changed.frame.loc[after, fuel] *= 1.5                           # observed generation after the issue
    changed.operator_forecasts.loc[changed.frame.index > issue + pd.Timedelta(days=1)] *= 2.0
    other = dacf_design(changed)
    rows = design.frame["issue_time"] == issue
    pd.testing.assert_frame_equal(design.frame.loc[rows, list(design.features)],
                                  other.frame.loc[rows, list(design.features)])
    assert not np.allclose(design.frame.loc[rows, "carbon_intensity"], other.frame.loc[rows, "carbon_intensity"])
    with pytest.raises(RenewablesError, match="not known at an issue hour of 00 UTC"):
        dacf_design(area, weather=True)
    assert "wind_power_curve" in dacf_design(area, issue_hour=6).features


def test_station_autoregressive_terms_stop_at_the_issue_time():
    times = pd.date_range("2012-01-01T01:00", periods=24 * 6, freq="h")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"zone": "1", "time": times, "u10": rng.normal(3, 1, len(times)),
                          "v10": rng.normal(3, 1, len(times)), "u100": rng.normal(6, 2, len(times)),
                          "v100": rng.normal(6, 2, len(times)), "capacity_factor": rng.uniform(0, 1, len(times))})
    design = station_design(wind_features(frame, context_sites=()))
    row = design.frame.iloc[30]                                     # issued 2012-01-02 00:00, lead 7 h
    assert row["issue_time"] == pd.Timestamp("2012-01-02") and row["lead_h"] == 7
    assert row["cf_at_issue"] == frame.set_index("time").loc[pd.Timestamp("2012-01-02"), "capacity_factor"]
    later = frame.assign(capacity_factor=np.where(frame["time"] > "2012-01-02", 0.0, frame["capacity_factor"]))
    again = station_design(wind_features(later, context_sites=()))
    ar = ["cf_at_issue", "cf_error_at_issue", "cf_mean_6h", "cf_mean_24h", "cf_last_day"]
    assert row["cf_last_day"] == frame.set_index("time").loc[pd.Timestamp("2012-01-01T07:00"), "capacity_factor"]
    pd.testing.assert_series_equal(design.frame.loc[30, ar], again.frame.loc[30, ar])
    assert "cf_at_issue" not in station_design(wind_features(frame, context_sites=()), autoregressive=False).features


def test_evaluate_dayahead_beats_the_published_forecast_when_its_error_persists():
    candidates = (RenewablesConfig(learner="prior"), RenewablesConfig(learner="lightgbm", params={"n_estimators": 150}))
    result = evaluate_dayahead(synthetic_area(), "2020-07-01", folds=2, candidates=candidates)
    assert result["test_months"] == ["2020-07-01", "2020-08-01"]
    assert result["chosen"]["wind_solar_share"]["learner"] == "lightgbm"
    assert result["ours"]["share_rmse"] < 0.9 * result["dacf"]["share_rmse"]
    assert result["ours"]["share_rmse"] < result["persistence"]["share_rmse"]
    by_lead = result["ours"]["share_rmse_by_lead"]
    assert by_lead["1-6h"] < by_lead["19-24h"]                       # the error at the issue fades with lead
    for name in ("dacf", "persistence", "climatology", "linear_weather"):
        assert set(result[name]) == {"share_rmse", "ci_mape", "ci_lifecycle_mape"}
    assert 0.6 < result["ours"]["share_coverage_0.1_0.9"] < 0.95
