"""Carbon intensity of electricity generated inside an area, from generation by fuel and emission factors.

Two factor tables, in g CO2e per kWh generated:

- ``direct``: combustion only (nuclear, hydro, solar and wind 0), DACF's operational factors: coal 760,
  gas 370, oil 406, other/unknown 575;
- ``lifecycle``: including construction, fuel supply and decommissioning (IPCC AR5 WGIII Annex III medians, as
  DACF and CarbonCast use them): coal 820, gas 490, oil 650, nuclear 12, hydro 24, solar 45, wind 11, other 700.

The intensity is the generation-weighted mean factor of the area's own generation (imports ignored, as DACF
computes it). Marginal emissions (WattTime's MOER) are a different quantity and stay a separate signal.
Source of both tables: the DACF repository (Maji et al., "DACF: Day-ahead Carbon Intensity Forecasting of
Power Grids using Machine Learning", e-Energy 2022), checked in issue 15.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.errors import CarbonSyncError

__all__ = ["EMISSION_FACTORS", "FUEL_NAMES", "CarbonInputError", "carbon_intensity", "fuel_of"]

EMISSION_FACTORS: dict[str, dict[str, float]] = {
    "direct": {"coal": 760.0, "gas": 370.0, "oil": 406.0, "other": 575.0, "nuclear": 0.0, "hydro": 0.0,
               "solar": 0.0, "wind": 0.0},
    "lifecycle": {"coal": 820.0, "gas": 490.0, "oil": 650.0, "other": 700.0, "nuclear": 12.0, "hydro": 24.0,
                  "solar": 45.0, "wind": 11.0},
}

# column names used by the data sets CarbonSync reads (DACF, EIA, ENTSO-E, Electricity Maps) -> fuel
FUEL_NAMES: dict[str, str] = {
    "coal": "coal", "lignite": "coal", "hard_coal": "coal", "brown_coal": "coal",
    "gas": "gas", "nat_gas": "gas", "natural_gas": "gas", "ng": "gas",
    "oil": "oil", "petroleum": "oil",
    "nuclear": "nuclear", "hydro": "hydro", "water": "hydro", "solar": "solar", "sun": "solar",
    "wind": "wind", "wind_onshore": "wind", "wind_offshore": "wind",
    "other": "other", "unknown": "other", "others": "other",
}


class CarbonInputError(CarbonSyncError, ValueError):
    """Generation by fuel that cannot be turned into a carbon intensity (unknown fuel, negative values)."""


def fuel_of(name: str) -> str:
    """The fuel a generation column stands for (``nat_gas`` -> ``gas``); :class:`CarbonInputError` if unknown."""
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    if key not in FUEL_NAMES:
        raise CarbonInputError(f"generation column '{name}' is not a known fuel (known: {', '.join(sorted(FUEL_NAMES))})")
    return FUEL_NAMES[key]


def carbon_intensity(generation: pd.DataFrame | xr.Dataset | Mapping[str, float], factors: str = "direct"):
    """Carbon intensity (g CO2e/kWh) of generation by fuel, with the ``direct`` or ``lifecycle`` factors.

    ``generation`` is a DataFrame (one column per fuel, rows in time), an xarray Dataset (one variable per
    fuel) or a mapping of fuel to one value, in any common unit (MW or MWh: only shares matter). Columns are
    named as the data sets name them (:data:`FUEL_NAMES`). The result has the input's shape minus the fuel
    axis; where nothing is generated it is NaN. Missing values count as zero generation.
    """
    if factors not in EMISSION_FACTORS:
        raise CarbonInputError(f"factors must be one of {sorted(EMISSION_FACTORS)}, got '{factors}'")
    table = EMISSION_FACTORS[factors]
    if isinstance(generation, xr.Dataset):
        frame_vars = list(generation.data_vars)
        weighted = sum(generation[v].fillna(0.0) * table[fuel_of(v)] for v in frame_vars)
        total = sum(generation[v].fillna(0.0) for v in frame_vars)
        _check_non_negative({v: generation[v].values for v in frame_vars})
        out = (weighted / total.where(total > 0)).rename("carbon_intensity")
        out.attrs = {"long_name": f"carbon intensity of generation ({factors} factors)", "units": "gCO2eq kWh-1"}
        return out
    if isinstance(generation, pd.DataFrame):
        if generation.shape[1] == 0:
            raise CarbonInputError("generation has no fuel columns")
        values = generation.fillna(0.0).astype(float)
        _check_non_negative({c: values[c].to_numpy() for c in values.columns})
        weights = np.array([table[fuel_of(c)] for c in values.columns])
        total = values.sum(axis=1)
        return (values.to_numpy() @ weights / total.where(total > 0)).rename("carbon_intensity")
    values = {k: float(v) for k, v in dict(generation).items()}
    if not values:
        raise CarbonInputError("generation has no fuels")
    _check_non_negative({k: np.array([v]) for k, v in values.items()})
    total = sum(v for v in values.values() if np.isfinite(v))
    if total <= 0:
        return float("nan")
    return sum(v * table[fuel_of(k)] for k, v in values.items() if np.isfinite(v)) / total


def _check_non_negative(columns: Mapping[str, np.ndarray]) -> None:
    for name, values in columns.items():
        bad = np.asarray(values, dtype=float)
        if np.nanmin(bad, initial=0.0) < 0:
            raise CarbonInputError(f"generation '{name}' is negative ({float(np.nanmin(bad)):g}): clip or fix it first")
