"""The observation seam: the source protocol, the registry and the (time, zone) contract every source meets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import carbonsync.data.observations as obs
from carbonsync.core.errors import CarbonSyncError
from carbonsync.data.observations import base
from carbonsync.data.observations.base import (
    FileSource,
    ObservationError,
    ObservationSource,
    check_observations,
    detect_source,
    get_source,
    known_sources,
    load_observations,
    register_source,
)
from tests.helpers import requires_shared_data, shared_data_dir
from tests.helpers.portal import portal_rows, write_portal

BUILT_IN = {
    "electricitymaps": "trace", "entsoe-ci": "trace", "entsoe-production": "generation",
    "gefcom2014-wind": "power", "gefcom2014-solar": "power", "dacf": "generation",
}


def contract_dataset(**changes) -> xr.Dataset:
    times = pd.date_range("2021-01-01", periods=4, freq="h")
    ds = xr.Dataset(
        {"carbon_intensity": (("time", "zone"), np.full((4, 2), 100.0), {"units": "g CO2e/kWh"}),
         "renewable_share": (("time", "zone"), np.full((4, 2), 0.5), {"units": "1"})},
        coords={"time": times, "zone": ["A", "B"]},
        attrs={"source": "test", "path": "x.csv", "files": "[]", "repairs": "[]", "time_label": "hour_start"},
    )
    for key, value in changes.items():
        value(ds) if callable(value) else ds.attrs.update({key: value})
    return ds


def test_public_api_and_error_classes():
    assert set(obs.__all__) >= {"ObservationSource", "register_source", "detect_source", "get_source",
                                "check_observations", "load_observations", "load_traces"}
    for name in obs.__all__:
        assert hasattr(obs, name), name
    for error in (obs.ObservationError, obs.GefcomDataError, obs.DacfError):
        assert issubclass(error, CarbonSyncError) and issubclass(error, ValueError)
    assert issubclass(obs.GefcomDataError, ObservationError) and issubclass(obs.DacfError, ObservationError)


def test_every_built_in_source_is_registered_and_meets_the_protocol():
    assert {name: get_source(name).kind for name in BUILT_IN} == BUILT_IN
    for name in known_sources():
        assert isinstance(get_source(name), ObservationSource)
    assert set(known_sources("trace")) == {"electricitymaps", "entsoe-ci"}
    with pytest.raises(ObservationError, match="unknown observation source 'watttime'; known: .*dacf .*gefcom2014-wind"):
        get_source("watttime")


def test_registry_rejects_bad_sources_and_name_clashes(monkeypatch):
    monkeypatch.setattr(base, "_SOURCES", dict(base._SOURCES))
    with pytest.raises(ObservationError, match="is not an observation source"):
        register_source(object())
    loader = lambda path: contract_dataset()  # noqa: E731
    with pytest.raises(ObservationError, match="kind must be one of trace, generation, power"):
        register_source(FileSource("odd", "weather", "odd files", lambda p: False, loader))
    with pytest.raises(ObservationError, match="named 'dacf' is registered already"):
        register_source(FileSource("dacf", "generation", "another", lambda p: False, loader))
    replacement = FileSource("dacf", "generation", "another", lambda p: False, loader)
    assert register_source(replacement, replace=True) is get_source("dacf")


def test_detection_by_header_lists_known_formats_and_refuses_ambiguity(tmp_path, monkeypatch):
    portal = write_portal(tmp_path / "ES_2021_hourly.csv", portal_rows("2021-01-01", 30))
    assert detect_source(portal).name == "electricitymaps"
    other = tmp_path / "notes.csv"
    other.write_text("price,volume\n1,2\n")
    assert detect_source(other, kind="trace", required=False) is None
    with pytest.raises(ObservationError, match=r"notes.csv' is in none of the known formats \(its columns: price, volume\); "
                                               r"known: .*electricitymaps \(Electricity Maps"):
        detect_source(other)
    with pytest.raises(ObservationError, match="does not exist"):
        detect_source(tmp_path / "nope.csv")
    monkeypatch.setattr(base, "_SOURCES", dict(base._SOURCES))
    register_source(FileSource("copycat", "trace", "anything with a Zone Id", lambda p: "Zone Id" in p.read_text(),
                               lambda p: contract_dataset()))
    with pytest.raises(ObservationError, match="matches several formats: electricitymaps, copycat"):
        detect_source(portal)


def test_load_observations_detects_checks_and_names_the_source(tmp_path):
    path = write_portal(tmp_path / "ES_2021_hourly.csv", portal_rows("2021-06-01 00:00", 30))
    ds = load_observations(path)
    assert ds is check_observations(ds)
    assert ds.attrs["source"] == "electricitymaps" and ds.attrs["path"] == str(path)
    assert json.loads(ds.attrs["files"]) == [str(path)] and json.loads(ds.attrs["repairs"]) == []
    assert "ODbL" in ds.attrs["licence"] and ds.attrs["time_label"] == "hour_start"
    assert ds["carbon_intensity"].attrs["units"] == "g CO2e/kWh" and ds["renewable_share"].attrs["units"] == "1"
    assert list(ds["zone"].values) == ["ES"] and float(ds["carbon_intensity"][3, 0]) == 103.0
    assert load_observations(path, source="electricitymaps").identical(ds)
    with pytest.raises(ObservationError, match="missing column"):
        load_observations(path, source="entsoe-ci")


def test_file_source_load_enforces_the_contract(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    broken = FileSource("broken", "trace", "no units", lambda p: True,
                        lambda p: contract_dataset(units=lambda ds: ds["renewable_share"].attrs.clear()))
    with pytest.raises(ObservationError, match="variable 'renewable_share' has no 'units'"):
        broken.load(path)


@pytest.mark.parametrize("change, match", [
    (lambda ds: ds["renewable_share"].attrs.update(units=""), "'renewable_share' has no 'units'"),
    (lambda ds: ds["renewable_share"].values.__setitem__((0, 0), 1.5), "units '1' \\(a fraction\\) but spans 0.5..1.5"),
    (lambda ds: ds.attrs.pop("time_label"), "attribute 'time_label' is missing"),
    (lambda ds: ds.attrs.update(time_label="hour_middle"), "'time_label' must be one of hour_start, hour_end, unstated"),
    (lambda ds: ds.attrs.update(repairs="{oops"), "'repairs' is not JSON"),
    (lambda ds: ds.attrs.pop("source"), "attribute 'source' is missing"),
])
def test_check_observations_names_each_breach(change, match):
    ds = contract_dataset()
    change(ds)
    with pytest.raises(ObservationError, match=match):
        check_observations(ds)


def test_check_observations_on_times_zones_and_dimensions():
    good = contract_dataset()
    assert check_observations(good) is good
    gap = good.isel(time=[0, 1, 3])
    with pytest.raises(ObservationError, match="not regular hourly .*03:00:00 follows .*01:00:00.*row of NaN"):
        check_observations(gap)
    with pytest.raises(ObservationError, match="not sorted and unique"):
        check_observations(good.isel(time=[1, 0, 2, 3]))
    with pytest.raises(ObservationError, match="not on a whole hour"):
        check_observations(good.assign_coords(time=good["time"].values + np.timedelta64(30, "m")))
    with pytest.raises(ObservationError, match="unique non-empty names"):
        check_observations(good.assign_coords(zone=["A", "A"]))
    with pytest.raises(ObservationError, match=r"dimensions \('zone', 'time'\)"):
        check_observations(good.transpose("zone", "time"))
    with pytest.raises(ObservationError, match="must be an xarray Dataset"):
        check_observations(good["carbon_intensity"])
    with pytest.raises(ObservationError, match="'time' is int64, not naive datetime64"):
        check_observations(good.assign_coords(time=np.arange(4)))


@requires_shared_data
@pytest.mark.parametrize("relative, name", [
    ("electricitymaps/NO_2022_hourly.csv", "electricitymaps"),
    ("entsoe/fr_ci.csv", "entsoe-ci"),
    ("entsoe/gb_production.csv", "entsoe-production"),
    ("gefcom2014/wind/gefcom2014_wind.csv.gz", "gefcom2014-wind"),
    ("gefcom2014/solar/gefcom2014_solar.csv.gz", "gefcom2014-solar"),
    ("dacf/ERCO_2020.csv.gz", "dacf"),
])
def test_every_source_output_on_the_shared_data_meets_the_contract(relative, name):
    path = shared_data_dir() / relative
    source = detect_source(path)
    assert source.name == name
    ds = source.load(path)
    assert check_observations(ds) is ds and ds.attrs["source"] == name
    assert ds.sizes["time"] > 1000 and all(ds[v].attrs["units"] for v in ds.data_vars)
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    finite = {v: bool(np.isfinite(ds[v].values.astype(float)).any()) for v in ds.data_vars}
    assert sum(finite.values()) >= 2, finite
    assert ds.attrs["time_label"] == {"gefcom2014-wind": "hour_end", "gefcom2014-solar": "hour_end", "dacf": "unstated"}.get(
        name, "hour_start")
