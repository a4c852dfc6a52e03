"""ENTSO-E based files: carbon-intensity traces and generation by production type, and their sources."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from carbonsync.data.observations import electricitymaps as em
from carbonsync.data.observations import entsoe
from carbonsync.data.observations.base import ObservationError, check_observations, detect_source
from tests.helpers import requires_shared_data, shared_data_dir


def test_entsoe_half_hourly_to_hourly_with_production_share(tmp_path):
    times = pd.date_range("2020-01-01", periods=8, freq="30min")
    times = times.append(pd.date_range("2020-01-01 04:00", periods=8, freq="15min"))  # resolution changes
    values = np.arange(len(times), dtype=float) * 10 + 100
    ci = pd.DataFrame({"Time": times.strftime("%Y-%m-%d %H:%M:%S"), "Carbon Intensity": values})
    ci.to_csv(tmp_path / "gb_ci.csv", index=False)
    prod_times = pd.date_range("2020-01-01", periods=8, freq="30min")
    production = pd.DataFrame(
        {"Fossil Gas": 300.0, "Wind Onshore": 100.0, "Solar": 0.0, "Hydro Pumped Storage": -50.0, "FR": 999.0}, index=prod_times
    )
    production.to_csv(tmp_path / "gb_production.csv")
    frame = entsoe.read_ci_csv(tmp_path / "gb_ci.csv")
    assert frame.attrs["zone"] == "GB" and list(frame.index.hour) == [0, 1, 2, 3, 4, 5]
    assert frame["carbon_intensity"].iloc[0] == pytest.approx(105.0)  # mean of 100, 110
    assert frame["carbon_intensity"].iloc[4] == pytest.approx(np.mean(values[8:12]))
    assert frame["renewable_share"].iloc[0] == pytest.approx(0.25)  # wind / (gas + wind), flows and pumping out
    assert np.isnan(frame["renewable_share"].iloc[-1])  # production file ends earlier
    ds = em.load_traces(tmp_path)
    assert list(ds["zone"].values) == ["GB"] and json.loads(ds.attrs["skipped"]) == ["gb_production.csv"]

    pd.DataFrame({"Time": ["2020-01-01 00:10:00"], "Carbon Intensity": [1.0]}).to_csv(tmp_path / "x_ci.csv", index=False)
    with pytest.raises(ObservationError, match="not on a 15-minute boundary"):
        entsoe.read_ci_csv(tmp_path / "x_ci.csv")
    pd.DataFrame({"Time": times.strftime("%Y-%m-%d %H:%M:%S"), "Intensity": values}).to_csv(tmp_path / "y_ci.csv", index=False)
    with pytest.raises(ObservationError, match="missing column\\(s\\) Carbon Intensity"):
        entsoe.read_ci_csv(tmp_path / "y_ci.csv")


def test_production_source_dataset_and_detection(tmp_path):
    times = pd.date_range("2020-01-01", periods=6, freq="h")
    production = pd.DataFrame({"Fossil Gas": 300.0, "Wind Onshore": 100.0, "FR": -20.0}, index=times)
    production.to_csv(tmp_path / "gb_production.csv")
    assert detect_source(tmp_path / "gb_production.csv").name == "entsoe-production"
    ds = entsoe.PRODUCTION_SOURCE.load(tmp_path / "gb_production.csv")
    assert check_observations(ds) is ds and list(ds["zone"].values) == ["GB"]
    assert set(ds.data_vars) == {"generation_fossil_gas", "generation_wind_onshore", "flow_fr", "renewable_share"}
    assert ds["generation_fossil_gas"].attrs["units"] == "MW" and float(ds["flow_fr"][0, 0]) == -20.0
    assert float(ds["renewable_share"][0, 0]) == pytest.approx(0.25)
    pd.DataFrame({"Fossil Gas": ["300", "lots"]}, index=times[:2]).to_csv(tmp_path / "x_production.csv")
    with pytest.raises(ObservationError, match="column 'Fossil Gas' row 3: 'lots' is not a number"):
        entsoe.read_production_csv(tmp_path / "x_production.csv")
    pd.DataFrame({"Price": [1.0]}, index=times[:1]).to_csv(tmp_path / "prices.csv")
    assert not entsoe.is_production_csv(tmp_path / "prices.csv")


@requires_shared_data
def test_shared_entsoe_files():
    fr = entsoe.read_ci_csv(shared_data_dir() / "entsoe" / "fr_ci.csv")
    gb = entsoe.read_ci_csv(shared_data_dir() / "entsoe" / "gb_ci.csv")
    assert fr.index.freq is None or fr.index.freqstr == "h"
    assert (np.diff(gb.index.values) == np.timedelta64(1, "h")).all() and len(gb) > 9000
    assert 0 < gb["renewable_share"].mean() < 1
    assert gb.attrs["files"][1].endswith("gb_production.csv")
