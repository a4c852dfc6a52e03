"""Electricity Maps portal exports: checks, repairs and the registered source (the live API is tested in tests/signals)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carbonsync.data.observations import electricitymaps as em
from carbonsync.data.observations.electricitymaps import ObservationError
from tests.helpers import requires_shared_data, shared_data_dir
from tests.helpers.portal import HEADER, portal_rows, write_portal


def test_portal_csv_reads_and_merges_years(tmp_path):
    a = write_portal(tmp_path / "ES_2021_hourly.csv", portal_rows("2021-12-31 00:00", 24))
    b = write_portal(tmp_path / "ES_2022_hourly.csv", portal_rows("2022-01-01 00:00", 24, base=200.0))
    frame = em.read_portal_csv(a)
    assert frame.attrs["zone"] == "ES" and len(frame) == 24 and frame.attrs["repairs"] == []
    assert frame["carbon_intensity"].iloc[3] == 103.0
    assert frame["carbon_intensity_lca"].iloc[3] == pytest.approx(1.4 * 103.0)
    assert frame["renewable_share"].iloc[3] == pytest.approx(0.53)
    assert not frame["estimated"].any()
    merged = em.load_zone([b, a])
    assert merged.index[0] == pd.Timestamp("2021-12-31") and len(merged) == 48
    assert merged.index.is_monotonic_increasing and merged["carbon_intensity"].iloc[24] == 200.0
    ds = em.load_traces(tmp_path)
    assert ds.sizes == {"time": 48, "zone": 1} and float(ds["carbon_intensity"][25, 0]) == 201.0


def test_duplicates_dst_and_gaps(tmp_path):
    rows = portal_rows("2021-03-01 00:00", 48)
    exact = write_portal(tmp_path / "exact.csv", rows[:10] + [rows[9]] + rows[10:])
    frame = em.read_portal_csv(exact)
    assert len(frame) == 48 and "dropped 1 exact duplicate row(s)" in frame.attrs["repairs"][0]

    conflicting = [*rows[:10], [rows[9][0], *rows[9][1:4], 999.0, *rows[9][5:]], *rows[10:]]
    with pytest.raises(ObservationError, match="2021-03-01 09:00 appears twice with different values"):
        em.read_portal_csv(write_portal(tmp_path / "conflict.csv", conflicting))

    # local time with DST in autumn: 02:00 twice with different values
    autumn = portal_rows("2021-10-31 00:00", 24)
    local = [*autumn[:3], [autumn[2][0], *autumn[2][1:4], 77.0, *autumn[2][5:]], *autumn[3:]]
    with pytest.raises(ObservationError, match="daylight-saving"):
        em.read_portal_csv(write_portal(tmp_path / "dst.csv", local))

    short_gap = write_portal(tmp_path / "gap.csv", rows[:5] + rows[8:])
    frame = em.read_portal_csv(short_gap)
    assert len(frame) == 48 and frame["carbon_intensity"].iloc[6] == pytest.approx(106.0)
    assert frame["estimated"].iloc[6] and "interpolated 3 missing hour(s)" in frame.attrs["repairs"][0]
    with pytest.raises(ObservationError, match="4 missing hour\\(s\\) in a row from 2021-03-01 05:00"):
        em.read_portal_csv(write_portal(tmp_path / "long_gap.csv", rows[:5] + rows[9:]))
    blank = [r if i != 7 else [*r[:4], "", *r[5:]] for i, r in enumerate(rows)]
    assert em.read_portal_csv(write_portal(tmp_path / "blank.csv", blank))["carbon_intensity"].iloc[7] == 107.0


def test_times_units_and_structure(tmp_path):
    rows = portal_rows("2021-06-01 00:00", 30)
    shifted = [[pd.Timestamp(r[0]).tz_localize("UTC").tz_convert("Europe/Madrid").isoformat(), *r[1:]] for r in rows]
    frame = em.read_portal_csv(write_portal(tmp_path / "offset.csv", shifted))
    assert frame.index[0] == pd.Timestamp("2021-06-01 00:00") and "UTC offset" in frame.attrs["repairs"][0]
    with pytest.raises(ObservationError, match="not on a whole hour"):
        half = [[r[0].replace(":00:00", ":30:00"), *r[1:]] for r in rows]
        em.read_portal_csv(write_portal(tmp_path / "half.csv", half))

    kg_header = HEADER.replace("gCO₂eq/kWh (direct)", "kgCO₂eq/kWh (direct)")
    kg_rows = [[*r[:4], r[4] / 1000, *r[5:]] for r in rows]
    frame = em.read_portal_csv(write_portal(tmp_path / "kg.csv", kg_rows, kg_header))
    assert frame["carbon_intensity"].iloc[2] == pytest.approx(102.0) and "kg to g" in frame.attrs["repairs"][0]
    with pytest.raises(ObservationError, match="look like kgCO2eq/kWh"):
        em.read_portal_csv(write_portal(tmp_path / "mixed.csv", kg_rows))
    low = write_portal(tmp_path / "ES_a.csv", [[*r[:4], 0.5 + r[4] / 1000, *r[5:]] for r in rows[:20]])
    high = write_portal(tmp_path / "ES_b.csv", portal_rows("2021-06-02 00:00", 20))
    with pytest.raises(ObservationError, match="unit mix-up between files"):
        em.load_zone([low, high])

    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ObservationError, match="is empty"):
        em.read_portal_csv(tmp_path / "empty.csv")
    with pytest.raises(ObservationError, match="header .* but no rows"):
        em.read_portal_csv(write_portal(tmp_path / "header_only.csv", []))
    no_renewable = HEADER.replace("Renewable Percentage", "Renewables")
    with pytest.raises(ObservationError, match="missing column\\(s\\) Renewable Percentage"):
        em.read_portal_csv(write_portal(tmp_path / "cols.csv", rows, no_renewable))
    two_zones = rows[:10] + portal_rows("2021-06-01 10:00", 5, zone="PT")
    with pytest.raises(ObservationError, match="one zone per file, found Zone Id ES, PT"):
        em.read_portal_csv(write_portal(tmp_path / "zones.csv", two_zones))
    with pytest.raises(ObservationError, match="nope.csv': file not found"):
        em.read_portal_csv(tmp_path / "nope.csv")


@requires_shared_data
def test_shared_traces_load():
    ds = em.load_traces(shared_data_dir() / "electricitymaps")
    assert list(ds["zone"].values) == ["BR", "ES", "NO", "US-CAL-CISO"]
    assert ds.sizes["time"] == 2 * 8760 and str(ds["time"].values[0])[:10] == "2021-01-01"
    assert np.isfinite(ds["carbon_intensity"]).all() and float(ds["carbon_intensity"].sel(zone="NO").mean()) < 20
