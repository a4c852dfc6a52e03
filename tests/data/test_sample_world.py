"""The sample world: deterministic, canonical, physically plausible, and written as reopenable stores."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from carbonsync.data import lexicon
from carbonsync.data.sample_world import (
    WEATHER_VARIABLES,
    SampleWorldConfig,
    generate_weather,
    write_sample_world,
    zone_truth,
)
from carbonsync.data.store import compute_stats, read_stats
from carbonsync.data.validation import validate_weather
from carbonsync.physics import solar
from carbonsync.physics.grid import Grid
from carbonsync.physics.zones import load_zones
from tests.helpers import REPO_ROOT

ZONES_YAML = REPO_ROOT / "configs" / "zones" / "sample_world.yaml"
TRAIN = ("2020-08-01T00", "2020-08-02T23")  # the first two of three days

pytestmark = [
    pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning"),
    pytest.mark.filterwarnings("ignore:The inplace keyword:Warning"),  # inside windpowerlib
    pytest.mark.filterwarnings("ignore:The data type .* does not have a Zarr V3 specification"),  # zone ids
]


@pytest.fixture(scope="module")
def cfg() -> SampleWorldConfig:
    zones = yaml.safe_load(ZONES_YAML.read_text())["zones"]
    return SampleWorldConfig(nlat=17, nlon=32, lmax=12, days=3, spinup_days=1, zones=zones)


@pytest.fixture(scope="module")
def written(cfg: SampleWorldConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_sample_world(cfg, tmp_path_factory.mktemp("sample_world"), TRAIN, progress=False)


@pytest.fixture(scope="module")
def weather(cfg: SampleWorldConfig) -> xr.Dataset:
    return generate_weather(cfg, progress=False)


def test_deterministic_bit_identical(cfg: SampleWorldConfig, weather: xr.Dataset, written: dict[str, Path]) -> None:
    # the store was generated independently of the in-memory dataset, from an equal config
    again = xr.open_zarr(written["weather"]).load()
    xr.testing.assert_identical(again, weather)
    for name in WEATHER_VARIABLES:
        np.testing.assert_array_equal(again[name].values, weather[name].values)


def test_different_seed_differs(cfg: SampleWorldConfig, weather: xr.Dataset) -> None:
    other = generate_weather(replace(cfg, seed=1), progress=False)
    assert other.attrs["seed"] == 1
    assert not np.array_equal(other["u100"].values, weather["u100"].values)
    assert not np.array_equal(other["tcc"].values, weather["tcc"].values)
    # the geometry-only fields do not depend on the seed
    np.testing.assert_array_equal(other["tisr"].values, weather["tisr"].values)


def test_canonical_layout_validates(cfg: SampleWorldConfig, weather: xr.Dataset) -> None:
    assert validate_weather(weather, WEATHER_VARIABLES, grid=cfg.grid) == Grid(17, 32)
    assert tuple(weather.data_vars) == WEATHER_VARIABLES
    assert dict(weather.sizes) == {"time": 72, "lat": 17, "lon": 32}
    times = weather.indexes["time"]
    assert times[0].isoformat() == "2020-08-01T00:00:00"
    assert (np.diff(times.values) == np.timedelta64(1, "h")).all()
    for name in WEATHER_VARIABLES:
        assert weather[name].dtype == np.float32
        assert weather[name].attrs == lexicon.get(name).attrs


def test_attrs_say_synthetic(weather: xr.Dataset) -> None:
    attrs = weather.attrs
    assert "synthetic" in attrs["title"].lower()
    assert attrs["synthetic"].startswith("yes")
    assert attrs["source"] == "sample_world"
    assert attrs["grid"] == "equiangular 17x32"
    assert Grid.from_attr(attrs["grid"]) == Grid(17, 32)
    assert attrs["seed"] == 0
    assert "hour ending" in attrs["note"]


def test_physical_ranges(weather: xr.Dataset) -> None:
    tcc = weather["tcc"].values
    assert tcc.min() >= 0.0 and tcc.max() <= 1.0
    assert tcc.std() > 0.05  # clouds vary
    speed = np.hypot(weather["u100"].values, weather["v100"].values)
    assert speed.max() < 60.0
    assert speed.mean() > 0.5  # not a calm planet
    t2m = weather["t2m"].values
    assert t2m.min() > 200.0 and t2m.max() < 330.0
    z500 = weather["z500"].values
    assert z500.min() > 4.5e4 and z500.max() < 6.5e4
    for name in WEATHER_VARIABLES:
        assert np.isfinite(weather[name].values).all(), name


def test_ssrd_bounded_by_geometry(weather: xr.Dataset) -> None:
    ssrd, tisr = weather["ssrd"].values, weather["tisr"].values
    clear = solar.clear_sky_hourly(weather["time"].values, weather["lat"].values, weather["lon"].values)
    assert ssrd.min() >= 0.0
    assert np.all(ssrd <= tisr)
    assert np.all(ssrd <= clear.astype(np.float32))
    night = clear == 0.0
    assert night.any() and (~night).any()
    assert np.all(ssrd[night] == 0.0)
    assert np.all(ssrd[tisr == 0.0] == 0.0)
    # Kasten-Czeplak: cloud removes at most 75 % of the clear-sky irradiance
    lit = clear > 1e5
    assert np.all(ssrd[lit] >= 0.25 * clear[lit] * (1 - 1e-5))
    np.testing.assert_allclose(tisr, solar.toa_hourly(weather["time"].values, weather["lat"].values,
                                                      weather["lon"].values).astype(np.float32))


def test_northern_summer_is_lit_at_the_north_pole(weather: xr.Dataset) -> None:
    # August: polar day in the north, polar night in the south
    assert (weather["tisr"].isel(lat=0) > 0).all()
    assert (weather["tisr"].isel(lat=-1) == 0).all()


def test_winds_evolve_and_stay_finite(weather: xr.Dataset) -> None:
    u = weather["u100"].values
    assert np.isfinite(u).all() and np.isfinite(weather["v100"].values).all()
    change = np.abs(u[-1] - u[0]).max()
    assert change > 0.5  # m s-1 over three days: not frozen
    hourly = np.abs(np.diff(u, axis=0)).max(axis=(1, 2))
    assert np.all(hourly > 0)  # every hour moves
    assert hourly.max() < 10.0  # but smoothly


def test_zone_truth(cfg: SampleWorldConfig, weather: xr.Dataset) -> None:
    zones = load_zones(cfg.zones)
    truth = zone_truth(weather, zones)
    assert list(truth["zone"].values) == [z.id for z in zones]
    for name in ("wind_cf", "solar_cf", "renewable_share"):
        da = truth[name]
        assert da.dims == ("time", "zone")
        assert da.sizes == {"time": 72, "zone": len(zones)}
        assert np.isfinite(da.values).all()
        assert float(da.min()) >= 0.0 and float(da.max()) <= 1.0, name
    np.testing.assert_array_equal(truth["time"].values, weather["time"].values)
    assert float(truth["solar_cf"].max()) > 0.1  # the sun shines somewhere
    assert float(truth["solar_cf"].min()) == 0.0  # and sets
    assert truth.attrs["source"] == "sample_world" and "synthetic" in truth.attrs


def test_written_files(cfg: SampleWorldConfig, weather: xr.Dataset, written: dict[str, Path]) -> None:
    out = written["weather"].parent
    assert sorted(p.name for p in out.iterdir()) == ["weather.zarr", "zone_truth.zarr", "zones.yaml"]
    assert written["zone_truth"] == out / "zone_truth.zarr"
    assert (written["weather"] / "normalisation.json").is_file()
    truth = xr.open_zarr(written["zone_truth"]).load()
    xr.testing.assert_allclose(truth, zone_truth(weather, load_zones(cfg.zones)))
    assert load_zones(written["zones"]) == load_zones(cfg.zones)


def test_written_stats_use_train_period_only(weather: xr.Dataset, written: dict[str, Path]) -> None:
    stats = read_stats(written["weather"])
    assert stats["n_times"] == 48
    assert set(stats["variables"]) == set(WEATHER_VARIABLES)
    expected = compute_stats(weather.isel(time=slice(0, 48)), ("2020-01-01", "2021-01-01"))
    full = compute_stats(weather, ("2020-01-01", "2021-01-01"))
    for name in WEATHER_VARIABLES:
        got = stats["variables"][name]
        assert got["mean"] == pytest.approx(expected["variables"][name]["mean"], rel=1e-12)
        assert got["std"] == pytest.approx(expected["variables"][name]["std"], rel=1e-12)
        assert got["std"] > 0
    assert stats["variables"]["u100"]["mean"] != pytest.approx(full["variables"]["u100"]["mean"], rel=1e-6)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="lmax=20 exceeds nlat=17"):
        generate_weather(SampleWorldConfig(nlat=17, nlon=32, lmax=20, days=1, spinup_days=0), progress=False)
    with pytest.raises(ValueError, match="solver_dt_s=700.0 must divide one hour"):
        generate_weather(SampleWorldConfig(nlat=17, nlon=32, lmax=12, days=1, spinup_days=0, solver_dt_s=700.0),
                         progress=False)
