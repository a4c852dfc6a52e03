"""DACF loader validation, the renewable-share model and its benchmark, on synthetic DACF-format files."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carbonsync.core.settings import PROJECT_ROOT
from carbonsync.data.observations.base import check_observations, detect_source, load_observations
from carbonsync.data.observations.dacf import DacfError, load_dacf, load_dacf_paths, resolve_paths
from carbonsync.models.share import (
    HourOfDayClimatology,
    LinearWeatherBaseline,
    RenewableShareModel,
    Ridge,
    ShareEnsemble,
    ShareModelConfig,
    ShareModelError,
    decay_weights,
    fit_members,
    rolling_folds,
    scores,
    tune,
)
from tests.helpers import requires_shared_data, shared_data_dir
from tests.helpers.dacf import synthetic_dacf


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def month() -> pd.DataFrame:
    return synthetic_dacf(start="2020-06-01", days=30, seed=1)


@pytest.fixture(scope="module")
def year_growing() -> pd.DataFrame:
    return synthetic_dacf(start="2020-03-01", days=240, seed=2, growth=1.0)


# -------------------------------------------------------------------------------------------- loader


def test_valid_file_loads_with_area_from_name(tmp_path, month):
    area = load_dacf(_write(month, tmp_path / "XYZ_2020.csv.gz"))
    assert area.area == "XYZ"
    assert area.generation_columns == ["nuclear", "nat_gas", "solar", "wind"]
    assert area.repairs == []
    assert len(area.frame) == 30 * 24 and area.frame.index.is_monotonic_increasing
    assert {"wind_speed_10m", "temperature", "dewpoint", "dswrf", "precipitation", "total_generation"} <= set(area.frame)
    np.testing.assert_allclose(area.frame["total_generation"], month[["nuclear", "nat_gas", "solar", "wind"]].sum(axis=1))
    assert list(area.operator_forecasts.columns) == ["avg_wind_production_forecast"]


def test_area_from_column_and_one_area_per_file(tmp_path, month):
    frame = month.assign(area="north")
    assert load_dacf(_write(frame, tmp_path / "whatever.csv")).area == "north"
    frame.loc[5, "area"] = "south"
    with pytest.raises(DacfError, match="names 2 areas"):
        load_dacf(_write(frame, tmp_path / "mixed.csv"))


def test_empty_and_header_only_files(tmp_path, month):
    (tmp_path / "A.csv").write_text("")
    with pytest.raises(DacfError, match="empty"):
        load_dacf(tmp_path / "A.csv")
    _write(month.iloc[:0], tmp_path / "B.csv")
    with pytest.raises(DacfError, match="no rows"):
        load_dacf(tmp_path / "B.csv")


def test_missing_columns_are_named(tmp_path, month):
    with pytest.raises(DacfError, match="forecast_avg_dswrf_wMean"):
        load_dacf(_write(month.drop(columns="forecast_avg_dswrf_wMean"), tmp_path / "A.csv"))
    with pytest.raises(DacfError, match="no 'wind' or 'solar'"):
        load_dacf(_write(month.drop(columns=["wind", "solar"]), tmp_path / "B.csv"))
    with pytest.raises(DacfError, match="no time column"):
        load_dacf(_write(month.drop(columns="UTC time"), tmp_path / "C.csv"))


def test_missing_share_column_is_computed(tmp_path, month):
    area = load_dacf(_write(month.drop(columns="wind_solar_share"), tmp_path / "A.csv"))
    assert any("computed 'wind_solar_share'" in r for r in area.repairs)
    np.testing.assert_allclose(area.frame["wind_solar_share"], month["wind_solar_share"], atol=1e-5)


def test_duplicates_exact_are_dropped_conflicting_raise(tmp_path, month):
    doubled = pd.concat([month, month.iloc[[10]]]).reset_index(drop=True)
    area = load_dacf(_write(doubled, tmp_path / "A.csv"))
    assert len(area.frame) == len(month) and any("exact duplicate row" in r for r in area.repairs)
    conflicting = month.iloc[[10]].copy()
    conflicting["wind"] += 50
    conflicting["wind_solar_share"] = np.nan
    with pytest.raises(DacfError, match="2020-06-01 10:00 appears twice with different values"):
        load_dacf(_write(pd.concat([month, conflicting]), tmp_path / "B.csv"))


def test_unsorted_rows_are_sorted(tmp_path, month):
    area = load_dacf(_write(month.iloc[::-1], tmp_path / "A.csv"))
    assert area.frame.index.is_monotonic_increasing and "sorted rows by time" in area.repairs


def test_short_gaps_filled_long_gaps_kept_or_rejected(tmp_path, month):
    area = load_dacf(_write(month.drop(index=[100, 101]), tmp_path / "A.csv"))
    assert len(area.frame) == len(month) and not area.frame.isna().any().any()
    assert any("filled 2 hours" in r for r in area.repairs)
    expected = (month.loc[99, "wind"] * 2 + month.loc[102, "wind"]) / 3
    assert area.frame["wind"].iloc[100] == pytest.approx(expected)

    long_gap = load_dacf(_write(month.drop(index=range(200, 230)), tmp_path / "B.csv"))
    assert long_gap.frame["wind"].isna().sum() == 30 and len(long_gap.valid()) == len(month) - 30
    with pytest.raises(DacfError, match="missing after filling"):
        load_dacf(_write(month.drop(index=range(100, 400)), tmp_path / "C.csv"))


def test_missing_values_inside_rows_are_gaps(tmp_path, month):
    frame = month.copy()
    frame.loc[50, "forecast_avg_temperature_wMean"] = np.nan
    area = load_dacf(_write(frame, tmp_path / "A.csv"))
    assert np.isfinite(area.frame["temperature"].iloc[50])


def test_utc_offsets_are_converted(tmp_path, month):
    frame = month.copy()
    local = pd.to_datetime(frame["UTC time"]) + pd.Timedelta(hours=2)
    frame["UTC time"] = local.dt.strftime("%Y-%m-%d %H:%M:%S") + "+02:00"
    area = load_dacf(_write(frame, tmp_path / "A.csv"))
    assert area.frame.index[0] == pd.Timestamp("2020-06-01 00:00")
    assert any("with a UTC offset (e.g. +02:00)" in r for r in area.repairs)


def test_dst_local_times_are_rejected(tmp_path):
    frame = synthetic_dacf(start="2020-10-20", days=20, seed=3)
    utc = pd.DatetimeIndex(pd.to_datetime(frame["UTC time"])).tz_localize("UTC")
    frame["UTC time"] = utc.tz_convert("America/New_York").tz_localize(None).strftime("%Y-%m-%d %H:%M:%S")
    with pytest.raises(DacfError, match="daylight-saving"):
        load_dacf(_write(frame, tmp_path / "A.csv"))


def test_dst_shifted_solar_is_rejected(tmp_path):
    frame = synthetic_dacf(days=365, seed=4)
    times = pd.to_datetime(frame["UTC time"])
    summer = ((times >= "2020-03-08") & (times < "2020-11-01")).to_numpy()
    shifted = frame["solar"].shift(-1).fillna(0.0)  # solar one hour early in summer: local daylight time as UTC
    frame.loc[summer, "solar"] = shifted[summer]
    frame["wind_solar_share"] = np.nan
    frame = frame.drop(columns="wind_solar_share")
    with pytest.raises(DacfError, match="daylight-saving"):
        load_dacf(_write(frame, tmp_path / "A.csv"))


def test_sub_hourly_rows_are_rejected(tmp_path, month):
    frame = month.copy()
    frame.loc[3, "UTC time"] = "2020-06-01 02:30:00"
    with pytest.raises(DacfError, match="not on a whole hour"):
        load_dacf(_write(frame, tmp_path / "A.csv"))


def test_unit_mixups_are_detected(tmp_path, month):
    gen = ["nuclear", "nat_gas", "solar", "wind"]
    whole_gw = month.copy()
    whole_gw[gen] = whole_gw[gen] / 1000.0
    with pytest.raises(DacfError, match="'wind' looks like it is in GW"):
        load_dacf(_write(whole_gw, tmp_path / "A.csv"))

    rows_gw = month.copy()
    rows_gw.loc[100:120, gen] = rows_gw.loc[100:120, gen] / 1000.0
    with pytest.raises(DacfError, match="unit mix-up"):
        load_dacf(_write(rows_gw, tmp_path / "B.csv"))

    column_gw = month.copy()
    column_gw["nat_gas"] = column_gw["nat_gas"] / 1000.0
    with pytest.raises(DacfError, match="'nat_gas' looks like it is in GW"):
        load_dacf(_write(column_gw, tmp_path / "C.csv"))

    wind_weeks_kw = month.drop(columns="wind_solar_share")
    wind_weeks_kw.loc[:167, "wind"] = wind_weeks_kw.loc[:167, "wind"] * 1000.0
    with pytest.raises(DacfError, match="'wind'|unit mix-up"):
        load_dacf(_write(wind_weeks_kw, tmp_path / "D.csv"))


def test_share_outside_unit_interval_and_percent(tmp_path, month):
    percent = month.assign(wind_solar_share=month["wind_solar_share"] * 100)
    with pytest.raises(DacfError, match="outside \\[0, 1\\].*percent"):
        load_dacf(_write(percent, tmp_path / "A.csv"))
    negative_total = month.copy()
    negative_total.loc[7, ["nuclear", "nat_gas", "solar", "wind"]] = [0, -5, 0, 0]
    with pytest.raises(DacfError, match="total generation is -5"):
        load_dacf(_write(negative_total, tmp_path / "B.csv"))


def test_weather_units_are_checked(tmp_path, month):
    celsius = month.assign(forecast_avg_temperature_wMean=month["forecast_avg_temperature_wMean"] - 273.15)
    with pytest.raises(DacfError, match="'temperature'.*°C"):
        load_dacf(_write(celsius, tmp_path / "A.csv"))
    negative = month.copy()
    negative.loc[3, "forecast_avg_dswrf_wMean"] = -50.0
    with pytest.raises(DacfError, match="'dswrf' = -50"):
        load_dacf(_write(negative, tmp_path / "B.csv"))


def test_paths_file_directory_glob_and_joined_years(tmp_path, month):
    _write(month, tmp_path / "AAA_2020.csv")
    later = synthetic_dacf(start="2020-07-01", days=10, seed=5)
    _write(later, tmp_path / "AAA_2021.csv.gz")
    _write(month.drop(columns="solar").assign(wind_solar_share=np.nan).drop(columns="wind_solar_share"),
           tmp_path / "BBB.csv")
    assert len(resolve_paths(tmp_path)) == 3
    assert len(resolve_paths(str(tmp_path / "AAA_*"))) == 2
    assert resolve_paths(tmp_path / "BBB.csv") == [tmp_path / "BBB.csv"]
    with pytest.raises(DacfError, match="no files match"):
        resolve_paths(str(tmp_path / "ZZZ*"))
    with pytest.raises(DacfError, match="is not a file"):
        resolve_paths(tmp_path / "nothing.csv")
    areas = load_dacf_paths(tmp_path)
    assert sorted(areas) == ["AAA", "BBB"]
    assert len(areas["AAA"].frame) == 40 * 24 and len(areas["AAA"].sources) == 2
    _write(month, tmp_path / "AAA_2019.csv")
    with pytest.raises(DacfError, match="overlap in time"):
        load_dacf_paths(tmp_path)


# --------------------------------------------------------------------------------------------- model


def _split(frame: pd.DataFrame, tmp_path: Path, cut: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    area = load_dacf(_write(frame, tmp_path / "SYN_2020.csv"))
    data = area.valid()
    return data[data.index < cut], data[data.index >= cut]


def test_capacity_growth_is_tracked(tmp_path, year_growing):
    train, test = _split(year_growing, tmp_path, "2020-09-27")  # the last 30 days are held out
    y = test["wind_solar_share"].to_numpy()
    configs = {"none": ShareModelConfig(capacity="none"), "recent": ShareModelConfig(capacity="recent"),
               "decay": ShareModelConfig(capacity="none", half_life_days=30.0)}
    models = dict(zip(configs, fit_members(train, list(configs.values()), area="SYN"), strict=True))
    rmse = {name: scores(y, model.predict(test).to_numpy())["rmse"] for name, model in models.items()}
    climatology = scores(y, HourOfDayClimatology().fit(train).predict(test).to_numpy())["rmse"]
    linear = scores(y, LinearWeatherBaseline().fit(train).predict(test).to_numpy())["rmse"]
    assert rmse["recent"] < 0.75 * rmse["none"], rmse
    assert rmse["decay"] < 0.75 * rmse["none"], rmse  # time-decay weights alone also follow the growth
    assert rmse["recent"] < min(climatology, linear)
    wind_capacity = models["recent"].components["wind"].capacity_mw  # true: 4000 * 1.875 at the end, 1.76 on average
    # over the last 56 days
    assert 4000 * 1.5 < wind_capacity < 4000 * 1.9


def test_weighted_ridge_equals_repeated_rows_and_clips_inputs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(0.0, 0.1, 200)
    weights = np.where(np.arange(200) < 50, 3.0, 1.0)
    repeated = np.r_[np.repeat(np.arange(50), 3), np.arange(50, 200)]
    weighted = Ridge(0.1).fit(X, y, weights)
    np.testing.assert_allclose(weighted.coef_, Ridge(0.1).fit(X[repeated], y[repeated]).coef_, rtol=1e-10)
    assert not np.allclose(weighted.coef_, Ridge(0.1).fit(X, y).coef_)
    clipped = Ridge(0.1, clip_inputs=True).fit(X, y)
    far = np.array([[100.0, 0.0, 0.0]])
    edge = np.array([[X[:, 0].max(), 0.0, 0.0]])
    assert clipped.predict(far) == pytest.approx(clipped.predict(edge))
    assert weighted.predict(far)[0] > clipped.predict(far)[0] + 50
    with pytest.raises(ShareModelError, match="sample weights"):
        Ridge().fit(X, y, -weights)


def test_decay_weights_and_rolling_folds():
    times = pd.date_range("2020-01-01", "2020-05-01", freq="h")
    weights = decay_weights(times, 30.0)
    assert weights.mean() == pytest.approx(1.0)
    back_30 = times.get_loc(times[-1] - pd.Timedelta(days=30))
    assert weights[back_30] / weights[-1] == pytest.approx(0.5)
    np.testing.assert_array_equal(decay_weights(times, None), np.ones(len(times)))
    folds = rolling_folds(times, folds=3, fold_days=20, step_days=10)
    assert folds == [(pd.Timestamp("2020-03-22"), pd.Timestamp("2020-04-11")),
                     (pd.Timestamp("2020-04-01"), pd.Timestamp("2020-04-21")),
                     (pd.Timestamp("2020-04-11"), pd.Timestamp("2020-05-01"))]
    assert rolling_folds(times, folds=2, fold_days=10)[0][1] == rolling_folds(times, folds=2, fold_days=10)[1][0]
    with pytest.raises(ShareModelError, match="folds"):
        rolling_folds(times, folds=0, fold_days=10)


def test_model_uses_weather_only(tmp_path, month):
    train, test = _split(synthetic_dacf(days=60, seed=6), tmp_path, "2020-02-15")
    model = RenewableShareModel(ShareModelConfig(capacity="none"), area="SYN").fit(train)
    full = model.predict(test)
    weather_only = model.predict(test[["wind_speed_10m", "temperature", "dewpoint", "dswrf", "precipitation"]])
    pd.testing.assert_series_equal(full, weather_only)
    assert full.between(0, 1).all() and full.index.equals(test.index)
    with pytest.raises(ShareModelError, match="lacks weather columns"):
        model.predict(test.drop(columns="dswrf"))


def test_tune_picks_on_rolling_folds_and_averages_the_best(tmp_path):
    frame = synthetic_dacf(days=70, seed=7, growth=0.5, solar=False)
    data = load_dacf(_write(frame, tmp_path / "SYN.csv")).valid()
    grid = {"capacity": ("none", "recent"), "capacity_days": (28,), "alpha": (1e-3,), "correction": (False,),
            "half_life_days": (None, 20.0)}
    model, report = tune(data, area="SYN", folds=2, fold_days=10, step_days=7, grid=grid, ensemble=2)
    assert len(report["candidates"]) == 4 and all(len(c["fold_rmse"]) == 2 for c in report["candidates"])
    assert report["folds"][-1][1] == str(data.index[-1])
    ranked = sorted(c["mean_val_rmse"] for c in report["candidates"])
    assert [c["mean_val_rmse"] for c in report["chosen"]] == ranked[:2]
    assert np.mean(report["ensemble_fold_rmse"]) == pytest.approx(report["ensemble_mean_val_rmse"], abs=1e-5)
    # with capacity doubling-ish over the period, tracking capacity must win the rolling validation
    assert report["chosen"][0]["capacity"] == "recent", report["candidates"]
    assert isinstance(model, ShareEnsemble) and len(model.members) == 2
    assert model.trained_until == data.index[-1] and model.sources == ["wind"]
    members = [m.predict(data.iloc[-48:]) for m in model.members]
    pd.testing.assert_series_equal(model.predict(data.iloc[-48:]), ((members[0] + members[1]) / 2).rename("share"))
    with pytest.raises(ShareModelError, match="too short"):
        tune(data.iloc[: 24 * 40], folds=3, fold_days=10, step_days=7, grid=grid)


def test_config_errors():
    with pytest.raises(ShareModelError, match="capacity must be"):
        ShareModelConfig(capacity="trend")
    with pytest.raises(ShareModelError, match="alpha"):
        ShareModelConfig(alpha=0)
    with pytest.raises(ShareModelError, match="half_life_days"):
        ShareModelConfig(half_life_days=-3.0)


# ----------------------------------------------------------------------------------------- benchmark


def test_benchmark_end_to_end(tmp_path):
    train_dir, test_dir = tmp_path / "train", tmp_path / "test"
    train_dir.mkdir()
    test_dir.mkdir()
    for name, seed, solar in (("AAA", 8, True), ("BBB", 9, False)):
        frame = synthetic_dacf(days=65, seed=seed, solar=solar, growth=0.3)
        cut = 50 * 24
        _write(frame.iloc[:cut], train_dir / f"{name}_2020.csv.gz")
        _write(frame.iloc[cut:], test_dir / f"{name}_2020.csv")
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "renewable_share.py"), "--train", str(train_dir),
         "--test", str(test_dir / "*.csv"), "--folds", "2", "--fold-days", "10", "--step-days", "5", "--ensemble", "2",
         "--alphas", "0.01", "--no-correction", "--half-lives", "20", "--test-days", "10"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert sorted(out["areas"]) == ["AAA", "BBB"]
    for entry in out["areas"].values():
        for kind in ("model", "climatology", "linear_weather"):
            assert set(entry[kind]) == {"rmse", "mae", "r2"} and all(np.isfinite(list(entry[kind].values())))
        assert entry["test_hours"] == 10 * 24 and entry["test_period"][1] == "2020-02-29 23:00:00"  # first 10 of 15 days
        anchors = entry["dayahead_anchors"]
        assert {"persistence", "climatology"} <= set(anchors)
        assert all(np.isfinite(v) for scores_ in anchors.values() for v in scores_.values())
        assert entry["rmse_ratio_vs_better_baseline"] == pytest.approx(
            entry["model"]["rmse"] / entry[entry["better_baseline"]]["rmse"])
        tuning = entry["tuning"]
        assert len(tuning["folds"]) == 2 and len(tuning["candidates"]) == 4 and len(tuning["chosen"]) == 2
        assert all(len(v) == 2 for v in tuning["baselines_fold_rmse"].values())
        assert tuning["folds"][-1][1] == entry["train_period"][1]
    assert out["summary"]["areas"] == 2
    assert out["grid"]["half_life_days"] == [None, 20.0]



def test_benchmark_rejects_overlapping_train_and_test(tmp_path):
    spec = importlib.util.spec_from_file_location("renewable_share_bench", PROJECT_ROOT / "benchmarks" / "renewable_share.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    _write(synthetic_dacf(days=35, seed=10), tmp_path / "AAA.csv")
    with pytest.raises(SystemExit, match="not after the last training row"):
        bench.main(["--train", str(tmp_path), "--test", str(tmp_path / "AAA.csv")])
    with pytest.raises(SystemExit, match="error: .*no files match"):
        bench.main(["--train", str(tmp_path / "nothing*.csv")])


# ----------------------------------------------------------------------------------------- real data


@requires_shared_data
def test_real_dacf_files_load_and_model_beats_climatology():
    directory = shared_data_dir() / "dacf"
    if not directory.is_dir():
        pytest.skip(f"no DACF files at {directory}")
    areas = load_dacf_paths(directory)
    assert {"CISO", "ERCO", "ISNE", "PJM", "SE"} <= set(areas)
    for area in areas.values():
        assert len(area.frame) == 8760 and area.repairs == []
    assert not areas["SE"].has_solar
    data = areas["ISNE"].valid()
    train, test = data[data.index < "2020-11-01"], data[data.index >= "2020-11-01"]
    model = RenewableShareModel(ShareModelConfig(capacity="none", alpha=0.1), area="ISNE").fit(train)
    y = test["wind_solar_share"].to_numpy()
    ours = scores(y, model.predict(test).to_numpy())["rmse"]
    climatology = scores(y, HourOfDayClimatology().fit(train).predict(test).to_numpy())["rmse"]
    assert ours < climatology


def test_dacf_source_gives_a_contract_dataset(tmp_path, month):
    path = _write(month.drop(index=range(200, 230)), tmp_path / "XYZ_2020.csv.gz")
    assert detect_source(path).name == "dacf"
    ds = load_observations(path)
    area = load_dacf(path)
    assert check_observations(ds) is ds and list(ds["zone"].values) == ["XYZ"] and ds.sizes["time"] == len(month)
    assert {f"generation_{c}" for c in area.generation_columns} <= set(ds.data_vars)
    assert ds["generation_wind"].attrs["units"] == "MW" and ds["temperature"].attrs["units"] == "K"
    assert ds["wind_solar_share"].attrs["units"] == "1" and ds.attrs["time_label"] == "unstated"
    assert "Apache-2.0" in ds.attrs["licence"] and json.loads(ds.attrs["repairs"]) == area.repairs
    np.testing.assert_allclose(ds["generation_wind"].values[:, 0], area.frame["wind"].to_numpy())
    assert int(ds["generation_wind"].isnull().sum()) == 30
