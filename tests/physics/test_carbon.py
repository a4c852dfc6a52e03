"""Carbon intensity from generation by fuel, with DACF's direct and the lifecycle emission factors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.physics.carbon import EMISSION_FACTORS, CarbonInputError, carbon_intensity, fuel_of

# the first row of DACF's CISO_2020 file (MW): coal, nat_gas, nuclear, oil, hydro, solar, wind, other
ROW = {"coal": 10.0, "nat_gas": 5233.0, "nuclear": 2271.0, "oil": 90.0, "hydro": 0.0, "solar": 1281.0,
       "wind": 2617.0, "other": 0.0}
TOTAL = sum(ROW.values())
DIRECT = (10 * 760 + 5233 * 370 + 90 * 406) / TOTAL
LIFECYCLE = (10 * 820 + 5233 * 490 + 2271 * 12 + 90 * 650 + 1281 * 45 + 2617 * 11) / TOTAL


def test_the_factor_tables_are_the_documented_ones():
    assert EMISSION_FACTORS["direct"] == {"coal": 760, "gas": 370, "oil": 406, "other": 575, "nuclear": 0, "hydro": 0,
                                          "solar": 0, "wind": 0}
    assert EMISSION_FACTORS["lifecycle"] == {"coal": 820, "gas": 490, "oil": 650, "other": 700, "nuclear": 12,
                                             "hydro": 24, "solar": 45, "wind": 11}


def test_a_mapping_a_frame_and_a_dataset_give_the_same_hand_computed_intensity():
    assert carbon_intensity(ROW) == pytest.approx(DIRECT)
    assert carbon_intensity(ROW, "lifecycle") == pytest.approx(LIFECYCLE)
    times = pd.date_range("2020-01-02", periods=3, freq="h")
    frame = pd.DataFrame([ROW, {**ROW, "nat_gas": 0.0, "coal": 0.0, "oil": 0.0}, dict.fromkeys(ROW, 0.0)], index=times)
    got = carbon_intensity(frame)
    assert got.iloc[0] == pytest.approx(DIRECT)
    assert got.iloc[1] == 0.0                                  # only zero-emission fuels left
    assert math.isnan(got.iloc[2])                            # nothing generated
    ds = xr.Dataset({c: ("time", frame[c].to_numpy()) for c in frame.columns}, coords={"time": times})
    da = carbon_intensity(ds, "lifecycle")
    assert da.dims == ("time",) and da.attrs["units"] == "gCO2eq kWh-1"
    assert float(da[0]) == pytest.approx(LIFECYCLE)
    assert np.isnan(float(da[2]))


def test_missing_values_count_as_no_generation_and_names_are_mapped():
    frame = pd.DataFrame({"Natural Gas": [100.0], "wind-onshore": [np.nan], "lignite": [100.0]})
    assert carbon_intensity(frame).iloc[0] == pytest.approx((100 * 370 + 100 * 760) / 200)
    assert [fuel_of(n) for n in ("nat_gas", "Hard Coal", "unknown", "sun")] == ["gas", "coal", "other", "solar"]


def test_bad_input_names_the_column_or_the_table():
    with pytest.raises(CarbonInputError, match="'biomass' is not a known fuel"):
        carbon_intensity({"biomass": 1.0})
    with pytest.raises(CarbonInputError, match="'hydro' is negative"):
        carbon_intensity(pd.DataFrame({"hydro": [-5.0], "gas": [10.0]}))
    with pytest.raises(CarbonInputError, match="factors must be one of"):
        carbon_intensity(ROW, "marginal")
    with pytest.raises(CarbonInputError, match="no fuel"):
        carbon_intensity(pd.DataFrame(index=[0]))
