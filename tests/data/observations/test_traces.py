"""load_traces: every trace file of a directory, read by the registered trace sources and merged per zone."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from carbonsync.data.observations import electricitymaps as em
from carbonsync.data.observations import traces
from carbonsync.data.observations.base import ObservationError, check_observations
from tests.helpers.portal import HEADER, portal_rows, write_portal


def write_production(path, hours: int):
    times = pd.date_range("2021-01-01", periods=hours, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"": times, "Solar": 10.0, "Fossil Gas": 30.0}).to_csv(path, index=False)


def test_load_traces_inner_join_and_disjoint_spans(tmp_path):
    write_portal(tmp_path / "ES_x.csv", portal_rows("2021-01-01 00:00", 48))
    write_portal(tmp_path / "NO_x.csv", portal_rows("2021-01-01 12:00", 48, zone="NO", base=10.0))
    write_production(tmp_path / "es_production.csv", 48)
    ds = em.load_traces(tmp_path)
    assert list(ds["zone"].values) == ["ES", "NO"] and ds.sizes["time"] == 36
    assert json.loads(ds.attrs["skipped"]) == ["es_production.csv"]  # another registered format: skipped
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
    write_production(tmp_path / "es_production.csv", 30)
    with pytest.raises(ObservationError, match="has no Electricity Maps or ENTSO-E carbon-intensity CSVs "
                                               r"\(it has es_production.csv\)"):
        traces.load_traces(tmp_path)


def test_load_traces_meets_the_contract_and_keeps_its_layout(tmp_path):
    write_portal(tmp_path / "ES_x.csv", portal_rows("2021-01-01 00:00", 30))
    pd.DataFrame({"Time": pd.date_range("2021-01-01", periods=60, freq="30min").strftime("%Y-%m-%d %H:%M:%S"),
                  "Carbon Intensity": 200.0}).to_csv(tmp_path / "gb_ci.csv", index=False)
    ds = traces.load_traces(tmp_path)
    assert check_observations(ds) is ds and list(ds.data_vars) == ["carbon_intensity", "renewable_share", "estimated"]
    assert list(ds["zone"].values) == ["ES", "GB"] and ds.sizes["time"] == 30
    assert ds["carbon_intensity"].attrs["units"] == "g CO2e/kWh" and ds["renewable_share"].attrs["units"] == "1"
    assert ds.attrs["source"] == "electricitymaps+entsoe-ci" and ds.attrs["path"] == str(tmp_path)
    assert set(json.loads(ds.attrs["files"])) == {"ES", "GB"} and json.loads(ds.attrs["skipped"]) == []
    assert json.loads(ds.attrs["repairs"]) == {"ES": [], "GB": []}
    assert "ODbL" in ds.attrs["licence"] and "ENTSO-E" in ds.attrs["licence"]
    assert ds["renewable_share"].sel(zone="GB").isnull().all()  # no gb_production.csv: no share, not an error
    assert float(ds["renewable_share"].sel(zone="ES")[0]) == pytest.approx(0.5)


# --- the bad-input trials of issue 11: each one an error naming the file (and column and row), never a skip


def _trial_dir(tmp_path):
    write_portal(tmp_path / "NO_2021.csv", portal_rows("2021-01-01 00:00", 48, zone="NO", base=10.0))
    return tmp_path


def test_an_unknown_file_is_an_error_not_a_silent_skip(tmp_path):
    (_trial_dir(tmp_path) / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ObservationError, match=r"file 'notes.csv' is in none of the known formats \(its columns: a, b\)"):
        traces.load_traces(tmp_path)


@pytest.mark.parametrize("encoding, match", [
    ("utf-16", "not UTF-8 text .* a UTF-16 file .* save it as UTF-8"),
    ("latin-1", "not UTF-8 text .* Latin-1"),
])
def test_a_file_in_another_encoding_is_an_error(tmp_path, encoding, match):
    text = "\n".join([HEADER.replace("₂", "²")] + [",".join(map(str, r)) for r in portal_rows("2021-01-01", 48)])
    (_trial_dir(tmp_path) / "ES_2021.csv").write_text(text.replace("Spain", "España"), encoding=encoding)
    with pytest.raises(ObservationError, match=f"file 'ES_2021.csv' cannot be read: it is {match}"):
        traces.load_traces(tmp_path)


def test_truncated_and_misnamed_gzip_are_errors(tmp_path):
    rows = "\n".join([HEADER] + [",".join(map(str, r)) for r in portal_rows("2021-01-01", 2000)]).encode()
    packed = gzip.compress(rows)
    (_trial_dir(tmp_path) / "ES_2021.csv.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ObservationError, match="ES_2021.csv.gz.*(cannot be read|end-of-stream)"):
        traces.load_traces(tmp_path)
    (tmp_path / "ES_2021.csv.gz").unlink()
    (tmp_path / "ES_2021.csv").write_bytes(packed)
    with pytest.raises(ObservationError, match="'ES_2021.csv' cannot be read: it is gzip-compressed but its name"):
        traces.load_traces(tmp_path)
    (tmp_path / "ES_2021.csv").unlink()
    (tmp_path / "ES_2021.csv.gz").write_bytes(packed)  # a whole gzip with the right name is read
    assert list(traces.load_traces(tmp_path)["zone"].values) == ["ES", "NO"]


def test_kg_header_over_g_values_inf_and_fraction_percentages_are_errors(tmp_path):
    rows = portal_rows("2021-01-01 00:00", 48, base=300.0)
    write_portal(_trial_dir(tmp_path) / "ES_2021.csv", rows, header=HEADER.replace("gCO₂eq/kWh (direct)", "kgCO₂eq/kWh (direct)"))
    with pytest.raises(ObservationError, match=r"ES_2021.csv': column 'Carbon Intensity kgCO₂eq/kWh \(direct\)' row 2: "
                                               r"300000 g CO2e/kWh is outside \[0, 3000\] \(the header says kg"):
        traces.load_traces(tmp_path)
    rows[5][4] = "inf"
    write_portal(tmp_path / "ES_2021.csv", rows)
    with pytest.raises(ObservationError, match=r"column 'Carbon Intensity gCO₂eq/kWh \(direct\)' row 7: 'inf' is not a finite"):
        traces.load_traces(tmp_path)
    rows = portal_rows("2021-01-01 00:00", 48)
    for row in rows:
        row[7] = round(row[7] / 100, 4)
    write_portal(tmp_path / "ES_2021.csv", rows)
    with pytest.raises(ObservationError, match="'Renewable Percentage' is a percentage but its largest value is 0.59; "
                                               "the values look like fractions"):
        traces.load_traces(tmp_path)


def test_an_entsoe_file_alone_loads_without_a_share(tmp_path):
    times = pd.date_range("2021-01-01", periods=24 * 400, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"Time": times, "Carbon Intensity": 55.0}).to_csv(tmp_path / "fr_ci.csv", index=False)
    ds = traces.load_traces(tmp_path)
    assert ds.sizes["time"] == 24 * 400 and ds["renewable_share"].isnull().all()
    assert float(ds["carbon_intensity"].mean()) == 55.0
