"""load_traces: every trace file of a directory, read by the registered trace sources and merged per zone."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from carbonsync.data.observations import electricitymaps as em
from carbonsync.data.observations import traces
from carbonsync.data.observations.base import ObservationError, check_observations
from tests.helpers.portal import portal_rows, write_portal


def test_load_traces_inner_join_and_disjoint_spans(tmp_path):
    write_portal(tmp_path / "ES_x.csv", portal_rows("2021-01-01 00:00", 48))
    write_portal(tmp_path / "NO_x.csv", portal_rows("2021-01-01 12:00", 48, zone="NO", base=10.0))
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    ds = em.load_traces(tmp_path)
    assert list(ds["zone"].values) == ["ES", "NO"] and ds.sizes["time"] == 36
    assert json.loads(ds.attrs["skipped"]) == ["notes.csv"]
    assert em.load_traces(tmp_path, join="outer").sizes["time"] == 60
    write_portal(tmp_path / "BR_x.csv", portal_rows("2022-01-01 00:00", 24, zone="BR"))
    with pytest.raises(ObservationError, match="share no hours"):
        em.load_traces(tmp_path)


def test_load_traces_is_the_same_function_in_electricitymaps(tmp_path):
    assert em.load_traces is traces.load_traces and em.merge_zone is traces.merge_zone
    with pytest.raises(ObservationError, match="trace directory .* does not exist"):
        traces.load_traces(tmp_path / "nowhere")
    write_portal(tmp_path / "ES_x.csv", portal_rows("2021-01-01 00:00", 30))
    with pytest.raises(ObservationError, match="join must be 'inner' or 'outer', got 'left'"):
        traces.load_traces(tmp_path, join="left")
    (tmp_path / "ES_x.csv").unlink()
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ObservationError, match="has no Electricity Maps or ENTSO-E carbon-intensity CSVs"):
        traces.load_traces(tmp_path)


def test_load_traces_meets_the_contract_and_keeps_its_layout(tmp_path):
    write_portal(tmp_path / "ES_x.csv", portal_rows("2021-01-01 00:00", 30))
    pd.DataFrame({"Time": pd.date_range("2021-01-01", periods=60, freq="30min").strftime("%Y-%m-%d %H:%M:%S"),
                  "Carbon Intensity": 200.0}).to_csv(tmp_path / "gb_ci.csv", index=False)
    ds = traces.load_traces(tmp_path)
    assert check_observations(ds) is ds and list(ds.data_vars) == ["carbon_intensity", "renewable_share"]
    assert list(ds["zone"].values) == ["ES", "GB"] and ds.sizes["time"] == 30
    assert ds["carbon_intensity"].attrs["units"] == "g CO2e/kWh" and ds["renewable_share"].attrs["units"] == "1"
    assert ds.attrs["source"] == "electricitymaps+entsoe-ci" and ds.attrs["path"] == str(tmp_path)
    assert set(json.loads(ds.attrs["files"])) == {"ES", "GB"} and json.loads(ds.attrs["skipped"]) == []
    assert json.loads(ds.attrs["repairs"]) == {"ES": [], "GB": []}
    assert "ODbL" in ds.attrs["licence"] and "ENTSO-E" in ds.attrs["licence"]
    assert ds["renewable_share"].sel(zone="GB").isnull().all()  # no gb_production.csv: no share, not an error
    assert float(ds["renewable_share"].sel(zone="ES")[0]) == pytest.approx(0.5)
