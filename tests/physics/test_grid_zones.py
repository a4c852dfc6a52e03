"""Global grids (coordinates, quadrature weights, checks) and zones (validation, masks, demand, YAML)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from carbonsync.physics.grid import Grid, GridError
from carbonsync.physics.zones import Zone, ZoneError, load_zones, zone_masks, zones_to_dicts
from tests.helpers import REPO_ROOT

ZONES_YAML = REPO_ROOT / "configs" / "zones" / "sample_world.yaml"


def on_grid(grid: Grid, lat=None, lon=None) -> xr.DataArray:
    lat = grid.lat if lat is None else lat
    lon = grid.lon if lon is None else lon
    return xr.DataArray(np.zeros((len(lat), len(lon))), coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))


def zone(**overrides) -> Zone:
    kwargs = dict(id="z1", name="Zone one", lat_min=40.0, lat_max=60.0, lon_min=0.0, lon_max=20.0,
                  wind_capacity_mw=100.0, solar_capacity_mw=50.0, demand_mw=200.0)
    kwargs.update(overrides)
    return Zone(**kwargs)


# ---------------------------------------------------------------------------------------------- grid


def test_equiangular_includes_both_poles_north_to_south() -> None:
    grid = Grid(19, 36)
    assert grid.lat[0] == pytest.approx(90.0)
    assert grid.lat[-1] == pytest.approx(-90.0)
    assert np.all(np.diff(grid.lat) < 0)
    np.testing.assert_allclose(grid.lat, np.linspace(90, -90, 19), atol=1e-9)
    assert grid.shape == (19, 36)


def test_longitudes_from_zero_exclusive_of_360() -> None:
    grid = Grid(5, 8)
    np.testing.assert_array_equal(grid.lon, [0, 45, 90, 135, 180, 225, 270, 315])


@pytest.mark.parametrize("nlat", [4, 8, 15])
def test_legendre_gauss_nodes_match_numpy(nlat: int) -> None:
    grid = Grid(nlat, 16, "legendre-gauss")
    nodes, weights = np.polynomial.legendre.leggauss(nlat)
    assert np.all(np.diff(grid.lat) < 0)  # north to south
    assert abs(grid.lat[0]) < 90  # no poles
    np.testing.assert_allclose(np.sin(np.deg2rad(grid.lat)), nodes[::-1], atol=1e-12)
    w_lat = grid.quadrature_weights().sum("lon").values
    np.testing.assert_allclose(w_lat, weights[::-1] / 2.0, atol=1e-12)


@pytest.mark.parametrize("kind", ["equiangular", "legendre-gauss"])
def test_weights_sum_to_one_and_integrate_exactly(kind: str) -> None:
    grid = Grid(17, 32, kind)
    w = grid.quadrature_weights()
    assert w.dims == ("lat", "lon")
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert np.all(w.values >= 0)
    # each longitude gets the same weight; the mean of sin^2(lat) over the sphere is 1/3
    np.testing.assert_allclose(w.values, w.values[:, :1].repeat(32, axis=1))
    mu2 = np.sin(np.deg2rad(w["lat"])) ** 2
    assert float((w * mu2).sum()) == pytest.approx(1.0 / 3.0, abs=1e-10)


def test_weights_approximate_area_of_latitude_band() -> None:
    grid = Grid(181, 360)  # 1 degree; cells centred on integer latitudes
    w = grid.quadrature_weights().sum("lon")
    band = float(w.where((w.lat > 20.5) & (w.lat < 50.5), 0).sum())
    exact = (np.sin(np.deg2rad(50.5)) - np.sin(np.deg2rad(20.5))) / 2.0
    assert band == pytest.approx(exact, rel=1e-4)
    # poles carry far less weight than the equator
    assert float(w[0]) < 0.01 * float(w[90])


def test_weights_symmetric_about_equator() -> None:
    w = Grid(17, 32).quadrature_weights().sum("lon").values
    np.testing.assert_allclose(w, w[::-1], rtol=1e-12)


def test_grid_rejects_bad_kind_and_size() -> None:
    with pytest.raises(GridError, match="grid kind 'gaussian'"):
        Grid(8, 16, "gaussian")
    with pytest.raises(GridError, match="2x16 is too small"):
        Grid(2, 16)


def test_check_accepts_own_coordinates() -> None:
    grid = Grid(9, 16)
    grid.check(on_grid(grid))
    grid.check(xr.Dataset({"x": on_grid(grid)}))


def test_check_wrong_size() -> None:
    grid = Grid(9, 16)
    with pytest.raises(GridError, match="has 10 lat points but grid equiangular 9x16 has 9"):
        grid.check(on_grid(grid, lat=np.linspace(90, -90, 10)))
    with pytest.raises(GridError, match="has 15 lon points"):
        grid.check(on_grid(grid, lon=np.arange(15) * 24.0))


def test_check_ascending_latitudes_says_north_to_south() -> None:
    grid = Grid(9, 16)
    with pytest.raises(GridError, match="latitudes must run north to south"):
        grid.check(on_grid(grid, lat=grid.lat[::-1]), what="my data")


def test_check_shifted_longitudes() -> None:
    grid = Grid(9, 16)
    with pytest.raises(GridError, match="'lon' values differ from grid equiangular 9x16") as info:
        grid.check(on_grid(grid, lon=grid.lon - 180.0))
    assert "north to south" not in str(info.value)


def test_check_missing_coordinate() -> None:
    grid = Grid(9, 16)
    da = xr.DataArray(np.zeros((9, 16)), dims=("y", "x"))
    with pytest.raises(GridError, match="my field has no 'lat' coordinate"):
        grid.check(da, what="my field")


@pytest.mark.parametrize("kind", ["equiangular", "legendre-gauss"])
def test_infer(kind: str) -> None:
    grid = Grid(12, 24, kind)
    assert Grid.infer(on_grid(grid)) == grid


def test_infer_fails_on_unknown_grid() -> None:
    grid = Grid(12, 24)
    with pytest.raises(GridError, match="no known global grid"):
        Grid.infer(on_grid(grid, lat=np.linspace(89, -89, 12)))


@pytest.mark.parametrize("grid", [Grid(33, 64), Grid(8, 16, "legendre-gauss")])
def test_attr_and_dict_round_trip(grid: Grid) -> None:
    assert Grid.from_attr(grid.attr()) == grid
    assert Grid.from_dict(grid.to_dict()) == grid
    assert Grid(33, 64).attr() == "equiangular 33x64"


@pytest.mark.parametrize("text", ["equiangular", "equiangular 33by64", "33x64 equiangular extra", ""])
def test_from_attr_rejects_malformed(text: str) -> None:
    with pytest.raises(GridError, match="is not of the form"):
        Grid.from_attr(text)


# ---------------------------------------------------------------------------------------------- zones


@pytest.mark.parametrize(
    "overrides, field",
    [({"lat_min": 60.0, "lat_max": 40.0}, "lat_min"), ({"lat_max": 91.0}, "lat_max"),
     ({"lon_min": 30.0, "lon_max": 20.0}, "lon_min"), ({"lon_min": 0.0, "lon_max": 361.0}, "lon_max"),
     ({"wind_capacity_mw": -1.0}, "wind_capacity_mw"), ({"solar_capacity_mw": -5.0}, "solar_capacity_mw"),
     ({"demand_mw": 0.0}, "demand_mw"), ({"demand_mw": -3.0}, "demand_mw")],
)
def test_zone_validation_names_zone_and_field(overrides: dict, field: str) -> None:
    with pytest.raises(ZoneError) as info:
        zone(id="bad_zone", **overrides)
    assert "zone 'bad_zone'" in str(info.value)
    assert field in str(info.value)


def test_mask_sums_to_one_and_covers_box() -> None:
    grid = Grid(19, 36)  # 10 degrees
    mask = zone(lat_min=35, lat_max=65, lon_min=-5, lon_max=25).mask(grid)
    assert mask.dims == ("lat", "lon")
    assert float(mask.sum()) == pytest.approx(1.0)
    inside = mask > 0
    np.testing.assert_allclose(sorted(mask.lat.values[inside.any("lon").values]), [40.0, 50.0, 60.0])
    np.testing.assert_allclose(sorted(mask.lon.values[inside.any("lat").values]), [0.0, 10.0, 20.0])
    # area weighting: the 40N row weighs more than the 60N row
    assert float(mask.sel(lat=40, lon=10, method="nearest")) > float(mask.sel(lat=60, lon=10, method="nearest"))


def test_mask_wraps_across_360() -> None:
    grid = Grid(91, 180)  # 2 degrees
    mask = zone(lon_min=355.0, lon_max=375.0).mask(grid)
    assert float(mask.sum()) == pytest.approx(1.0)
    cols = mask.lon.values[(mask > 0).any("lat").values]
    np.testing.assert_allclose(np.sort(cols), [0, 2, 4, 6, 8, 10, 12, 14, 356, 358])  # includes lon 0 and 10


def test_mask_edges_inclusive_despite_rounded_latitudes() -> None:
    # grid latitudes carry rounding errors (60.00000000000001): box edges on grid rows are still inside
    for nlat, nlon in ((19, 36), (181, 360)):
        grid = Grid(nlat, nlon)
        mask = zone(lat_min=40, lat_max=60, lon_min=10, lon_max=30).mask(grid)
        rows = mask.lat.values[(mask > 0).any("lon").values]
        cols = mask.lon.values[(mask > 0).any("lat").values]
        step = 180.0 / (nlat - 1)
        assert len(rows) == round(20 / step) + 1
        assert len(cols) == round(20 / step) + 1


def test_mask_wrapped_equals_unwrapped_box() -> None:
    grid = Grid(19, 36)
    a = zone(lon_min=350.0, lon_max=370.0).mask(grid)
    b = zone(lon_min=-10.0, lon_max=10.0).mask(grid)
    xr.testing.assert_allclose(a, b)


def test_too_small_box_raises_naming_zone() -> None:
    grid = Grid(19, 36)
    with pytest.raises(ZoneError, match="zone 'tiny' covers no cell of grid equiangular 19x36"):
        zone(id="tiny", lat_min=41, lat_max=44, lon_min=1, lon_max=4).mask(grid)


def test_zone_masks_stack() -> None:
    grid = Grid(19, 36)
    masks = zone_masks([zone(id="a"), zone(id="b", lat_min=-30, lat_max=0)], grid)
    assert masks.dims == ("zone", "lat", "lon")
    assert list(masks.zone.values) == ["a", "b"]
    np.testing.assert_allclose(masks.sum(("lat", "lon")).values, [1.0, 1.0])


def test_demand_profile_daily_shape() -> None:
    times = pd.date_range("2024-01-08", periods=24, freq="h")  # a Monday, UTC
    demand = zone(demand_mw=1000.0, utc_offset_h=0.0).demand_profile(times.values)
    assert demand.shape == (24,)
    assert demand.dtype == np.float64
    assert 18 <= np.argmax(demand) <= 23  # evening peak
    assert 2 <= np.argmin(demand) <= 7  # night trough
    assert demand.mean() == pytest.approx(1000.0, rel=1e-12)  # the cosines average out over a day
    assert np.all(demand > 0)


def test_demand_profile_weekly_shape() -> None:
    times = pd.date_range("2024-01-08", periods=24 * 7, freq="h")  # Monday..Sunday
    demand = zone(demand_mw=1000.0).demand_profile(times)
    days = demand.reshape(7, 24)
    np.testing.assert_allclose(days[1:5], np.broadcast_to(days[0], (4, 24)))
    np.testing.assert_allclose(days[5], 0.9 * days[0])  # Saturday
    np.testing.assert_allclose(days[6], 0.9 * days[0])  # Sunday
    assert demand.mean() == pytest.approx(1000.0 * (5 + 2 * 0.9) / 7)


def test_demand_profile_follows_local_time() -> None:
    times = pd.date_range("2024-01-09", periods=24, freq="h")  # Tuesday: no weekend edge
    utc = zone(utc_offset_h=0.0).demand_profile(times)
    east = zone(utc_offset_h=3.0).demand_profile(times)
    np.testing.assert_allclose(east, np.roll(utc, -3))


def test_load_zones_from_repo_yaml() -> None:
    zones = load_zones(ZONES_YAML)
    ids = [z.id for z in zones]
    assert "north_sea" in ids and len(ids) == len(set(ids)) >= 2
    north_sea = zones[ids.index("north_sea")]
    assert (north_sea.lon_min, north_sea.lon_max) == (355, 375)
    # every zone holds cells of the small sample-world grid
    for z in zones:
        assert float(z.mask(Grid(17, 32)).sum()) == pytest.approx(1.0)


def test_load_zones_from_dicts_round_trip(tmp_path: Path) -> None:
    zones = [zone(id="a"), zone(id="b", utc_offset_h=-3.0)]
    assert load_zones(zones_to_dicts(zones)) == zones
    path = tmp_path / "zones.yaml"
    path.write_text(yaml.safe_dump({"zones": zones_to_dicts(zones)}))
    assert load_zones(path) == zones
    path.write_text(yaml.safe_dump(zones_to_dicts(zones)))  # a bare list works too
    assert load_zones(str(path)) == zones


def test_load_zones_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ZoneError, match="zone file '.*nope.yaml' does not exist"):
        load_zones(tmp_path / "nope.yaml")


def test_load_zones_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "zones.yaml"
    path.write_text(yaml.safe_dump({"zones": zones_to_dicts([zone(id="a"), zone(id="b"), zone(id="a")])}))
    with pytest.raises(ZoneError, match=r"duplicated zone ids \['a'\]"):
        load_zones(path)


def test_load_zones_unknown_key(tmp_path: Path) -> None:
    item = zones_to_dicts([zone(id="a"), zone(id="b")])
    item[1]["hydro_capacity_mw"] = 5.0
    path = tmp_path / "zones.yaml"
    path.write_text(yaml.safe_dump({"zones": item}))
    with pytest.raises(ZoneError, match=r"entry 1 \(b\).*hydro_capacity_mw"):
        load_zones(path)


def test_load_zones_missing_key() -> None:
    item = zones_to_dicts([zone(id="a")])[0]
    del item["demand_mw"]
    with pytest.raises(ZoneError, match=r"zone list, entry 0 \(a\).*demand_mw"):
        load_zones([item])


@pytest.mark.parametrize("text", ["", "zones: []\n", "zones:\n"])
def test_load_zones_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "zones.yaml"
    path.write_text(text)
    with pytest.raises(ZoneError, match="defines no zones"):
        load_zones(path)
