"""Fixtures shared by the forecast-store tests."""

from __future__ import annotations

import pytest
import xarray as xr

from carbonsync.forecast.export import export_forecasts
from carbonsync.forecast.synthetic import synthetic_forecast
from tests.helpers.forecast_store import INITS, PROVENANCE, load_store


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, xr.Dataset]:
    """All of INITS exported serially in one uninterrupted run."""
    store = tmp_path_factory.mktemp("reference") / "fc.zarr"
    export_forecasts(store, INITS, synthetic_forecast, PROVENANCE, workers=1)
    return load_store(store)
