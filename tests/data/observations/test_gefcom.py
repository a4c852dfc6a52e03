"""GEFCom2014 loaders, the station/NWP power model and the GEFCom2014 benchmark script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carbonsync.data.observations.base import check_observations, detect_source, load_observations
from carbonsync.data.observations.gefcom import (
    GefcomDataError,
    hour_ending_month,
    is_gefcom_solar,
    last_observed_month,
    load_gefcom,
    load_gefcom_solar,
    load_gefcom_wind,
)
from carbonsync.models.renewables import RenewablesConfig, RenewablesModel
from carbonsync.models.renewables.station import station_design
from carbonsync.models.station import solar_features
from carbonsync.physics.solar import toa_hourly
from tests.helpers import REPO_ROOT, requires_shared_data, shared_data_dir

ROOT = REPO_ROOT
LAT, LON = -35.0, 149.0


# ------------------------------------------------------------------------------------------ synthetic files


def _smooth(rng: np.random.Generator, n: int, scale: float, phi: float = 0.97) -> np.ndarray:
    out = np.empty(n)
    out[0] = rng.normal(0, scale)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + rng.normal(0, scale * np.sqrt(1 - phi**2))
    return out


def wind_frame(zones: int = 2, days: int = 30, seed: int = 0, start: str = "2012-01-01 01:00") -> pd.DataFrame:
    """Hourly synthetic farms: power follows a farm-specific logistic curve of the 100 m speed, with a
    direction effect and a one-hour lag to the forecast that a plain power curve cannot represent."""
    rng = np.random.default_rng(seed)
    n = days * 24
    times = pd.date_range(start, periods=n, freq="h")
    rows = []
    for z in range(1, zones + 1):
        u100 = 4.0 + _smooth(rng, n, 5.0)
        v100 = _smooth(rng, n, 5.0)
        speed = np.hypot(u100, v100)
        lagged = np.concatenate([[speed[0]], speed[:-1]])
        direction_gain = 1.0 + 0.25 * np.sign(v100)
        power = 1 / (1 + np.exp(-(lagged * direction_gain - 7.0 - z) / 1.2))
        power = np.clip(power + rng.normal(0, 0.03, n), 0, 1)
        rows.append(pd.DataFrame({
            "zone": z, "time": times.strftime("%Y-%m-%d %H:%M"), "u10": 0.7 * u100, "v10": 0.7 * v100,
            "u100": u100, "v100": v100, "power_norm": power, "power_source": "synthetic",
        }))
    return pd.concat(rows, ignore_index=True)


def solar_frame(days: int = 20, seed: int = 0, start: str = "2013-01-01 01:00") -> pd.DataFrame:
    """Two synthetic PV sites in the GEFCom2014 solar layout (VAR169 accumulated since the 00 UTC run)."""
    rng = np.random.default_rng(seed)
    n = days * 24
    times = pd.date_range(start, periods=n, freq="h")
    toa = toa_hourly(times, np.array([LAT]), np.array([LON]))[:, 0, 0]
    rows = []
    for z in (1, 2):
        tcc = np.clip(0.5 + _smooth(rng, n, 0.4), 0, 1)
        ssrd = toa * 0.75 * (1 - 0.7 * tcc)  # J m-2 in the hour
        run = (times - pd.Timedelta(hours=1)).floor("D")
        acc = pd.Series(ssrd).groupby(run).cumsum().to_numpy()
        power = np.clip(0.9 * ssrd / 3600 / 1000 + rng.normal(0, 0.01, n) * (ssrd > 0), 0, 1)
        hourly_zero = np.zeros(n)
        rows.append(pd.DataFrame({
            "zone": z, "time": times.strftime("%Y-%m-%d %H:%M"), "VAR78": 0.05 * tcc, "VAR79": 0.01 * tcc,
            "VAR134": 95000.0, "VAR157": 60 + 20 * tcc, "VAR164": tcc, "VAR165": 2.0, "VAR166": -1.0,
            "VAR167": 293.0 + 5 * np.sin(np.arange(n) * 2 * np.pi / 24),
            "VAR169": acc, "VAR175": pd.Series(np.full(n, 1.2e6)).groupby(run).cumsum().to_numpy(),
            "VAR178": pd.Series(ssrd * 1.1).groupby(run).cumsum().to_numpy(),
            "VAR228": pd.Series(hourly_zero).groupby(run).cumsum().to_numpy(),
            "ssrd_hourly_Wm2": ssrd / 3600, "power_norm": power, "power_source": "synthetic",
        }))
    return pd.concat(rows, ignore_index=True)


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------------------- loaders


def test_wind_loader_reads_a_valid_file(tmp_path):
    frame = load_gefcom_wind(write(wind_frame(days=3), tmp_path / "w.csv"))
    assert list(frame.columns) == ["zone", "time", "u10", "v10", "u100", "v100", "capacity_factor"]
    assert frame["zone"].tolist()[:1] == ["1"] and len(frame) == 2 * 72
    assert frame["time"].dtype == np.dtype("datetime64[ns]")
    assert frame.attrs["track"] == "wind" and frame.attrs["repairs"] == []
    assert frame["capacity_factor"].between(0, 1).all()


def test_competition_headers_and_compact_times_are_accepted(tmp_path):
    raw = wind_frame(days=2)
    raw["time"] = pd.to_datetime(raw["time"]).dt.strftime("%Y%m%d %-H:%M")
    raw = raw.rename(columns={"zone": "ZONEID", "time": "TIMESTAMP", "power_norm": "TARGETVAR", "u10": "U10",
                              "v10": "V10", "u100": "U100", "v100": "V100"})
    frame = load_gefcom(write(raw, tmp_path / "w.csv"))
    assert frame.attrs["track"] == "wind"
    assert frame["time"].iloc[0] == pd.Timestamp("2012-01-01 01:00") and len(frame) == 96


@pytest.mark.parametrize("content, match", [
    ("", "file is empty"),
    ("zone,time,u10,v10,u100,v100,power_norm\n", "header .* but no rows"),
    ("zone,time,u10,v10,u100,power_norm\n1,2012-01-01 01:00,1,1,1,0.5\n", "missing column.*v100"),
    ("zone,time,u10,v10,u100,v100,power_norm\n1,yesterday,1,1,1,1,0.5\n", "row 2: cannot parse 'yesterday'"),
    ("zone,time,u10,v10,u100,v100,power_norm\n1,2012-01-01 01:00,1,1,1,x,0.5\n", "'v100' row 2: 'x' is not a number"),
])
def test_wind_loader_rejects_malformed_files(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(GefcomDataError, match=match) as err:
        load_gefcom_wind(path)
    assert "bad.csv" in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(GefcomDataError, match="nope.csv: file not found"):
        load_gefcom_wind(tmp_path / "nope.csv")


def test_duplicated_hours_exact_dropped_conflicting_an_error_with_a_dst_hint(tmp_path):
    raw = wind_frame(zones=1, days=2)
    exact = pd.concat([raw.iloc[:5], raw.iloc[4:5], raw.iloc[5:]], ignore_index=True)
    frame = load_gefcom_wind(write(exact, tmp_path / "exact.csv"))
    assert len(frame) == len(raw) and "dropped 1 exact duplicate row(s)" in frame.attrs["repairs"][0]
    conflict = raw.iloc[4:5].assign(u100=raw["u100"].iloc[4] + 1.0)
    other = pd.concat([raw.iloc[:5], conflict, raw.iloc[5:]], ignore_index=True)
    with pytest.raises(GefcomDataError, match=r"zone 1: column 'time': hour 2012-01-01 05:00 appears twice.*\(in u100\)$"):
        load_gefcom_wind(write(other, tmp_path / "conflict.csv"))
    # Australian daylight saving ends on Sunday 2012-04-01: local 02:00 repeated with other values
    autumn = wind_frame(zones=1, days=2, start="2012-03-31 01:00")
    local = pd.concat([autumn.iloc[:25], autumn.iloc[24:25].assign(u100=0.0), autumn.iloc[25:]], ignore_index=True)
    with pytest.raises(GefcomDataError, match=r"hour 2012-04-01 01:00 appears twice.*daylight-saving"):
        load_gefcom_wind(write(local, tmp_path / "dst.csv"))


def test_time_going_backwards_is_an_error(tmp_path):
    raw = wind_frame(zones=1, days=2)
    raw.iloc[[3, 4]] = raw.iloc[[4, 3]].to_numpy()
    with pytest.raises(GefcomDataError, match="time goes backwards, 2012-01-01 04:00:00 follows 2012-01-01 05:00:00"):
        load_gefcom_wind(write(raw, tmp_path / "w.csv"))


def test_percent_power_is_recognised(tmp_path):
    raw = wind_frame(zones=1, days=2)
    raw["power_norm"] *= 100
    with pytest.raises(GefcomDataError, match=r"'power_norm'.*looks like percent"):
        load_gefcom_wind(write(raw, tmp_path / "w.csv"))


def test_negative_power_is_an_error_and_tiny_excess_is_clipped(tmp_path):
    raw = wind_frame(zones=1, days=2)
    raw.loc[3, "power_norm"] = 1.004
    frame = load_gefcom_wind(write(raw, tmp_path / "w.csv"))
    assert frame["capacity_factor"].max() == 1.0
    assert any("clipped" in r for r in frame.attrs["repairs"])
    raw.loc[3, "power_norm"] = -0.2
    with pytest.raises(GefcomDataError, match="negative value -0.2"):
        load_gefcom_wind(write(raw, tmp_path / "w.csv"))


def test_wind_in_km_per_hour_is_an_error(tmp_path):
    raw = wind_frame(zones=1, days=2)
    raw["u100"] *= 3.6 * 10
    with pytest.raises(GefcomDataError, match=r"'u100' value .* outside \[-80, 80\]: m s-1 expected \(km/h"):
        load_gefcom_wind(write(raw, tmp_path / "w.csv"))


def test_short_gaps_are_interpolated_and_long_gaps_dropped(tmp_path):
    raw = wind_frame(zones=1, days=3)
    short = raw.drop(index=[10, 11])  # e.g. a spring-forward hour and its neighbour
    frame = load_gefcom_wind(write(short, tmp_path / "s.csv"))
    assert len(frame) == 72
    filled = frame.set_index("time").loc["2012-01-01 11:00"]
    expected = raw.loc[9, "u100"] + (raw.loc[12, "u100"] - raw.loc[9, "u100"]) / 3
    assert filled["u100"] == pytest.approx(expected) and np.isnan(filled["capacity_factor"])
    assert any("interpolated" in r for r in frame.attrs["repairs"])
    long = raw.drop(index=range(20, 26))
    frame = load_gefcom_wind(write(long, tmp_path / "l.csv"), max_fill_hours=3)
    assert len(frame) == 66 and any("dropped" in r for r in frame.attrs["repairs"])


def test_hour_ending_months_and_last_observed_month(tmp_path):
    months = hour_ending_month(pd.to_datetime(["2013-02-01 00:00", "2013-02-01 01:00"]))
    assert [str(m) for m in months] == ["2013-01", "2013-02"]
    raw = wind_frame(zones=2, days=70)
    raw.loc[(raw["zone"] == 2) & (pd.to_datetime(raw["time"]) > "2012-02-01 00:00"), "power_norm"] = np.nan
    frame = load_gefcom_wind(write(raw, tmp_path / "w.csv"))
    assert {z: str(m) for z, m in last_observed_month(frame).items()} == {"1": "2012-03", "2": "2012-01"}


def test_solar_loader_deaccumulates_and_renames(tmp_path):
    raw = solar_frame(days=3)
    frame = load_gefcom_solar(write(raw, tmp_path / "s.csv"))
    assert {"ssrd", "strd", "tsr", "tp", "tcc", "t2m"} <= set(frame.columns) and len(frame) == 144
    np.testing.assert_allclose(frame["ssrd"].to_numpy(), raw["ssrd_hourly_Wm2"].to_numpy() * 3600, atol=1e-3)
    np.testing.assert_allclose(frame["strd"], 1.2e6)
    only_hourly = raw.drop(columns=["VAR169"])
    frame2 = load_gefcom(write(only_hourly, tmp_path / "h.csv"))
    np.testing.assert_allclose(frame2["ssrd"], frame["ssrd"], atol=1e-3)


def test_solar_wrong_reset_hour_and_celsius_are_errors(tmp_path):
    raw = solar_frame(days=3)
    path = write(raw, tmp_path / "s.csv")
    with pytest.raises(GefcomDataError, match=r"accumulated column 'VAR169' drops by .* reset hour"):
        load_gefcom_solar(path, reset_hour=5)
    raw["VAR167"] -= 273.15
    with pytest.raises(GefcomDataError, match=r"'VAR167' \(t2m\) value .*degrees Celsius"):
        load_gefcom_solar(write(raw, tmp_path / "c.csv"))


# ---------------------------------------------------------------------------------------------------- model


def test_solar_features_and_model_are_zero_at_night(tmp_path):
    frame = load_gefcom_solar(write(solar_frame(days=20), tmp_path / "s.csv"))
    feats = solar_features(frame, LAT, LON)
    night = ~feats.active
    assert night.any() and (feats.prior[night] == 0).all()
    design = station_design(feats)
    fit = design.select(design.times <= "2013-01-15")
    model = RenewablesModel(RenewablesConfig(learner="lightgbm", params={"min_child_samples": 10})).fit(fit)
    out = model.predict(design)
    assert (out.loc[night, "capacity_factor"] == 0).all() and (out.loc[night, "capacity_factor_q0.9"] == 0).all()
    day = feats.active & (feats.target > 0.05)
    assert np.sqrt(np.mean((out["capacity_factor"].to_numpy() - feats.target)[day] ** 2)) < 0.1
    with pytest.raises(KeyError, match="needs column.*ssrd"):
        solar_features(frame.drop(columns=["ssrd"]), LAT, LON)


# ------------------------------------------------------------------------------------------------ benchmark


def test_benchmark_script_prints_json_on_a_tiny_wind_file(tmp_path):
    """Rolling origin over the months from --test-from; the configuration chosen on the two months before."""
    raw = wind_frame(zones=2, days=130)
    raw.loc[(raw["zone"] == 2) & (pd.to_datetime(raw["time"]) > "2012-04-20 00:00"), "power_norm"] = np.nan
    path = write(raw, tmp_path / "tiny_wind.csv")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gefcom2014.py"), "--track", "wind", "--data", str(path),
         "--test-from", "2012-04-01", "--folds", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {"ours", "physical_prior", "power_curve", "climatology", "persistence"} <= set(result)
    assert [m["month"] for m in result["test_months"]] == ["2012-04-01", "2012-05-01"]
    assert result["hours"] == sum(m["hours"] for m in result["test_months"]) == 30 * 24 + 19 * 24 + 9 * 24
    assert result["selection"]["folds"] == [["2012-02-01 00:00:00", "2012-03-01 00:00:00"],
                                            ["2012-03-01 00:00:00", "2012-04-01 00:00:00"]]
    # the farms' lagged, direction-dependent curves: learnable, beyond any function of the hour's own speed
    assert result["ours"]["rmse"] < 0.5 * min(result["power_curve"]["rmse"], result["physical_prior"]["rmse"])
    assert 0.5 < result["ours"]["coverage_0.1_0.9"] < 0.95


def test_benchmark_solar_with_nwp_only(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gefcom2014 as bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    path = write(solar_frame(days=75), tmp_path / "solar.csv")
    result = bench.main(["--track", "solar", "--data", str(path), "--test-from", "2013-03-01", "--folds", "1",
                         "--nwp-only"])
    assert result["hours"] == 2 * 16 * 24 and "persistence" not in result and not result["autoregressive"]
    assert result["ours"]["rmse"] < result["climatology"]["rmse"]
    assert "cf_at_issue" not in json.dumps(result["selection"])
    frame = load_gefcom_wind(write(wind_frame(zones=1, days=40), tmp_path / "w.csv"))
    assert bench.default_test_from(frame) == pd.Timestamp("2012-10-01")    # 6 months + 3 selection months


# ---------------------------------------------------------------------------------------------- real data


@requires_shared_data
def test_real_gefcom_files_load_and_validate():
    root = shared_data_dir() / "gefcom2014"
    wind = load_gefcom(root / "wind" / "gefcom2014_wind.csv.gz")
    assert wind.attrs["track"] == "wind" and wind["zone"].nunique() == 10 and wind.attrs["repairs"] == []
    months = {z: str(m) for z, m in last_observed_month(wind).items()}
    assert months.pop("1") == "2013-11" and set(months.values()) == {"2013-01"}
    solar = load_gefcom(root / "solar" / "gefcom2014_solar.csv.gz")
    assert solar.attrs["track"] == "solar" and solar["zone"].nunique() == 3
    assert {str(m) for m in last_observed_month(solar).values()} == {"2014-05"}
    assert solar["ssrd"].max() < 1300 * 3600 and solar["capacity_factor"].between(0, 1).all()


# ------------------------------------------------------------------------------------------ the contract


def test_gefcom_sources_give_contract_datasets(tmp_path):
    raw = wind_frame(zones=2, days=3)
    raw = raw.drop(index=range(20, 30))  # zone 1 loses 10 hours: dropped rows become NaN rows in the dataset
    path = write(raw, tmp_path / "w.csv")
    assert detect_source(path).name == "gefcom2014-wind" and not is_gefcom_solar(path)
    ds = load_observations(path)
    assert check_observations(ds) is ds and ds.attrs["source"] == "gefcom2014-wind"
    assert ds.attrs["time_label"] == "hour_end" and list(ds["zone"].values) == ["1", "2"]
    assert ds.sizes["time"] == 72 and ds["u100"].attrs["units"] == "m s-1" and ds["capacity_factor"].attrs["units"] == "1"
    frame = load_gefcom_wind(path)
    assert int(ds["u100"].sel(zone="1").isnull().sum()) == 72 - int((frame["zone"] == "1").sum())
    row = frame[frame["zone"] == "2"].iloc[5]
    assert float(ds["v100"].sel(zone="2", time=row["time"])) == pytest.approx(row["v100"])
    assert json.loads(ds.attrs["repairs"]) == frame.attrs["repairs"]
    solar = write(solar_frame(days=3), tmp_path / "s.csv")
    assert detect_source(solar).name == "gefcom2014-solar" and is_gefcom_solar(solar)
    sds = load_observations(solar)
    assert sds["ssrd"].attrs["units"] == "J m-2" and sds["t2m"].attrs["units"] == "K"
    assert sds.attrs["licence"] == "no data licence stated" and "GEFCom2014" in sds.attrs["origin"]
    with pytest.raises(GefcomDataError, match="track must be 'wind' or 'solar', got 'tidal'"):
        load_gefcom(path, track="tidal")
