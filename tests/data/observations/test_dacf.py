"""DACF loader validation and the day-ahead benchmark, on synthetic DACF-format files."""

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
from tests.helpers import requires_shared_data, shared_data_dir
from tests.helpers.dacf import synthetic_dacf


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def month() -> pd.DataFrame:
    return synthetic_dacf(start="2020-06-01", days=30, seed=1)


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


# ----------------------------------------------------------------------------------------- benchmark


def test_benchmark_end_to_end(tmp_path):
    """Separate training and test files through benchmarks/renewable_share.py. The synthetic files publish a
    forecast only for wind, so there is no DACF anchor and the prior is persistence."""
    train_dir, test_dir = tmp_path / "train", tmp_path / "test"
    train_dir.mkdir()
    test_dir.mkdir()
    for name, seed, solar in (("AAA", 8, True), ("BBB", 9, False)):
        frame = synthetic_dacf(start="2020-01-01", days=152, seed=seed, solar=solar)
        cut = 121 * 24                                          # Jan-Apr train, May test
        _write(frame.iloc[:cut], train_dir / f"{name}_2020.csv.gz")
        _write(frame.iloc[cut:], test_dir / f"{name}_2020.csv")
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "renewable_share.py"), "--train", str(train_dir),
         "--test", str(test_dir / "*.csv"), "--test-from", "2020-05-01", "--folds", "2"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert sorted(out["areas"]) == ["AAA", "BBB"]
    for entry in out["areas"].values():
        assert "dacf" not in entry                              # no published forecast for every fuel
        for kind in ("ours", "persistence", "climatology", "linear_weather"):
            assert all(np.isfinite(entry[kind][k]) for k in ("share_rmse", "ci_mape", "ci_lifecycle_mape"))
        assert entry["ours"]["share_rmse"] < entry["persistence"]["share_rmse"]
        assert entry["test_months"] == ["2020-05-01"] and entry["hours"] == 30 * 24   # May 31 lacks June 1 00:00
        assert [len(c["fold_scores"]) for c in entry["selection"]["targets"]["wind_solar_share"]["candidates"]] == [2] * 5
    assert out["summary"]["share_rmse"]["beats_persistence"] == 2
    assert "beats_dacf" not in out["summary"]["share_rmse"]


def test_benchmark_names_missing_files(tmp_path):
    spec = importlib.util.spec_from_file_location("renewable_share_bench", PROJECT_ROOT / "benchmarks" / "renewable_share.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(SystemExit, match="error: .*no files match"):
        bench.main(["--train", str(tmp_path / "nothing*.csv")])


# ----------------------------------------------------------------------------------------- real data


@requires_shared_data
def test_real_dacf_files_load():
    directory = shared_data_dir() / "dacf"
    if not directory.is_dir():
        pytest.skip(f"no DACF files at {directory}")
    areas = load_dacf_paths(directory)
    assert {"CISO", "ERCO", "ISNE", "PJM", "SE"} <= set(areas)
    for area in areas.values():
        assert len(area.frame) == 8760 and area.repairs == []
        assert area.published_generation() is not None
    assert not areas["SE"].has_solar


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
