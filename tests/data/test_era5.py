"""The ERA5 path: ARCO/WB2 Zarr layouts, regridding, the canonical store and local ERA5 files (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.core import settings
from carbonsync.data import era5
from carbonsync.data.lexicon import LexiconError
from carbonsync.data.store import STATS_FILE
from carbonsync.data.validation import WeatherDataError
from carbonsync.physics.grid import Grid
from carbonsync.physics.zones import Zone
from tests.helpers.era5 import analytic, make_store

ERA5_DIR = settings.data_dir() / "era5"
needs_era5 = pytest.mark.skipif(
    not ERA5_DIR.is_dir(),
    reason=f"real ERA5 samples not found: {ERA5_DIR} does not exist (set CARBONSYNC_DATA_DIR)",
)
TRAIN = ("2020-01-01T00:00", "2020-01-01T23:00")


# ------------------------------------------------------------------------------------------------ fixtures


ARCO_LAT, ARCO_LON = np.linspace(90, -90, 19), np.arange(36) * 10.0  # 10 degree stand-in for 0.25
WB2_LAT, WB2_LON = -84.375 + 11.25 * np.arange(16), np.arange(32) * 11.25  # ascending, no poles
HOURLY = pd.date_range("2020-01-01", periods=48, freq="h")
SIX_HOURLY = pd.date_range("2020-01-01", periods=16, freq="6h")


@pytest.fixture(scope="module")
def arco_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("arco") / "arco.zarr", ARCO_LAT, ARCO_LON, HOURLY)


@pytest.fixture(scope="module")
def wb2_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wb2") / "wb2.zarr"
    # WB2 stores are ordered (time, [level,] longitude, latitude)
    return make_store(path, WB2_LAT, WB2_LON, SIX_HOURLY, (500, 850), spatial=("longitude", "latitude"))


def is_dask(ds: xr.Dataset) -> bool:
    return all(isinstance(v.data, dask.array.Array) for v in ds.data_vars.values())


# ------------------------------------------------------------------------------------------- open Zarr


def test_open_arco_is_lazy_and_normalised(arco_path: Path) -> None:
    ds = era5.open_arco(arco_path, ["u100", "t2m", "z500", "ssrd"])
    assert is_dask(ds)
    assert set(ds.data_vars) == {"100m_u_component_of_wind", "2m_temperature", "geopotential",
                                 "surface_solar_radiation_downwards"}
    assert ds["geopotential"].dims == ("time", "level", "lat", "lon")
    assert ds["level"].values.tolist() == [500]  # only the levels asked for
    assert ds["lat"].values[0] == 90 and np.all(np.diff(ds["lat"].values) < 0)
    assert ds["lon"].values[0] == 0 and np.all(np.diff(ds["lon"].values) > 0)
    assert ds.attrs["source"] == "arco" and ds.sizes["time"] == 48


def test_open_wb2_flips_latitude_and_transposes(wb2_path: Path) -> None:
    ds = era5.open_wb2(wb2_path, ["t2m", "t850"])
    assert is_dask(ds)
    assert ds["2m_temperature"].dims == ("time", "lat", "lon")
    assert ds["lat"].values[0] == pytest.approx(84.375) and np.all(np.diff(ds["lat"].values) < 0)
    expected = 280.0 + 10.0 * analytic(ds["lat"].values, ds["lon"].values)
    np.testing.assert_allclose(ds["2m_temperature"].isel(time=0).values, expected, atol=1e-3)


def test_open_selects_times_and_wrapping_region(arco_path: Path) -> None:
    hours = slice("2020-01-01T06", "2020-01-01T11")
    ds = era5.open_arco(arco_path, ["t2m"], time=hours, region=(30, 60, 350, 370))
    assert ds.sizes["time"] == 6 and pd.Timestamp(ds.time.values[0]) == pd.Timestamp("2020-01-01T06")
    assert ds["lat"].values.tolist() == [60, 50, 40, 30]
    assert ds["lon"].values.tolist() == [0, 10, 350]
    zone = Zone("x", "X", lat_min=30, lat_max=60, lon_min=-10, lon_max=10, wind_capacity_mw=1,
                solar_capacity_mw=1, demand_mw=1)
    by_zone = era5.open_arco(arco_path, ["t2m"], region=zone)
    assert by_zone["lon"].values.tolist() == [0, 10, 350]
    listed = era5.open_arco(arco_path, ["t2m"], time=["2020-01-01T03", "2020-01-02T03"])
    assert listed.sizes["time"] == 2


def test_remote_url_passes_through_without_network(monkeypatch: pytest.MonkeyPatch, arco_path: Path) -> None:
    calls: dict = {}
    imported: list[str] = []
    local = xr.open_zarr(arco_path)

    def fake_open_zarr(store, **kwargs):
        calls.update(store=store, **kwargs)
        return local

    monkeypatch.setattr(era5.xr, "open_zarr", fake_open_zarr)
    monkeypatch.setattr(era5, "optional_import", lambda module, extra: imported.append(module))
    ds = era5.open_arco("gs://bucket/arco.zarr", ["t2m"], storage_options={"project": "p"})
    assert calls["store"] == "gs://bucket/arco.zarr"
    assert calls["storage_options"] == {"project": "p", "token": "anon"}
    assert imported == ["fsspec", "gcsfs"]
    assert ds.attrs["source_path"] == "gs://bucket/arco.zarr"


# ---------------------------------------------------------------------------------------------- regrid


def synthetic(lat: np.ndarray, lon: np.ndarray, ntime: int = 2) -> xr.Dataset:
    f = np.broadcast_to(analytic(lat, lon), (ntime, len(lat), len(lon))).astype(np.float32)
    coords = {"time": HOURLY[:ntime], "lat": lat, "lon": lon}
    return xr.Dataset({"f": (("time", "lat", "lon"), f, {"units": "1"})}, coords=coords).chunk({"time": 1})


@pytest.mark.parametrize(
    "grid", [Grid(9, 16), Grid(9, 48), Grid(8, 16, "legendre-gauss"), Grid(19, 36)], ids=lambda g: g.attr()
)
def test_regrid_matches_analytic_field(grid: Grid) -> None:
    out = era5.regrid(synthetic(ARCO_LAT, ARCO_LON), grid)
    assert is_dask(out) and out["f"].dtype == np.float32
    assert out["f"].dims == ("time", "lat", "lon") and out.attrs["grid"] == grid.attr()
    grid.check(out)
    values = out["f"].values
    assert not np.isnan(values).any()
    np.testing.assert_allclose(values[0], analytic(grid.lat, grid.lon), atol=0.01)


def test_regrid_periodic_longitude_from_offset_source() -> None:
    lon = 5.0 + np.arange(36) * 10.0  # cell centres: 0 E lies between 355 and 5
    out = era5.regrid(synthetic(ARCO_LAT, lon), Grid(9, 16)).compute()
    np.testing.assert_allclose(out["f"].values[0], analytic(Grid(9, 16).lat, Grid(9, 16).lon), atol=0.01)


def test_regrid_pole_rows_for_source_without_poles() -> None:
    grid = Grid(9, 16)
    src = synthetic(WB2_LAT[::-1], WB2_LON)
    exact = analytic(grid.lat, grid.lon)
    nearest = era5.regrid(src, grid)["f"].values[0]
    mean = era5.regrid(src, grid, pole="mean")["f"].values[0]
    np.testing.assert_allclose(nearest[1:-1], exact[1:-1], atol=0.015)
    np.testing.assert_allclose(nearest[[0, -1]], exact[[0, -1]], atol=0.12)  # copies of the 84.4 deg rows
    np.testing.assert_allclose(mean[[0, -1]], exact[[0, -1]], atol=0.01)  # zonal mean: the scalar pole value


def test_regrid_rejects_regional_source_and_bad_method() -> None:
    with pytest.raises(WeatherDataError, match="around the globe"):
        era5.regrid(synthetic(ARCO_LAT, np.arange(10) * 5.0), Grid(9, 16))
    with pytest.raises(ValueError, match="regrid method 'spline'"):
        era5.regrid(synthetic(ARCO_LAT, ARCO_LON), Grid(9, 16), method="spline")


# ------------------------------------------------------------------------------------ canonical store


def weighted_stats(x: np.ndarray, grid: Grid) -> tuple[float, float]:
    w = np.broadcast_to(grid.quadrature_weights().values, x.shape)
    mean = float((w * x).sum() / w.sum())
    return mean, float(np.sqrt((w * (x - mean) ** 2).sum() / w.sum()))


def test_prepare_canonical_from_arco(arco_path: Path, tmp_path: Path) -> None:
    grid, variables = Grid(9, 16), ["u100", "v100", "t2m", "tcc", "ssrd", "z500", "t850"]
    src = era5.open_arco(arco_path, variables)
    out = era5.prepare_canonical(src, grid, variables, tmp_path / "c.zarr", TRAIN, progress=False)
    store = xr.open_zarr(out)
    assert is_dask(store) and set(store.data_vars) == set(variables)
    grid.check(store)
    assert store.attrs["source"] == "arco" and store.attrs["grid"] == grid.attr()
    assert "prepare_canonical" in store.attrs["history"]
    for name in variables:
        assert store[name].dims == ("time", "lat", "lon") and store[name].dtype == np.float32
    assert store["ssrd"].attrs["units"] == "J m-2" and store["z500"].attrs["units"] == "m2 s-2"
    z500 = store["z500"].isel(time=0).values
    np.testing.assert_allclose(z500, 9.80665 * (6200 + 100 * analytic(grid.lat, grid.lon)), rtol=2e-4)

    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["n_times"] == 24
    train = store.sel(time=slice(*TRAIN))
    for name in variables:
        mean, std = weighted_stats(train[name].values.astype(np.float64), grid)
        assert stats["variables"][name]["mean"] == pytest.approx(mean, rel=1e-6, abs=1e-9)
        assert stats["variables"][name]["std"] == pytest.approx(std, rel=1e-5)
    all_mean, _ = weighted_stats(store["t2m"].values.astype(np.float64), grid)
    assert stats["variables"]["t2m"]["mean"] == pytest.approx(all_mean - 1.2, abs=1e-3)  # 0.1 K/h trend


def test_prepare_canonical_from_wb2(wb2_path: Path, tmp_path: Path) -> None:
    grid = Grid(8, 16, "legendre-gauss")
    src = era5.open_wb2(wb2_path, ["t2m", "z500", "t850"], time=slice("2020-01-01", "2020-01-03"))
    out = era5.prepare_canonical(src, grid, ["t2m", "z500", "t850"], tmp_path / "w.zarr", TRAIN,
                                 progress=False)
    store = xr.open_zarr(out)
    grid.check(store)
    assert store.sizes["time"] == 12 and store.attrs["source"] == "wb2"
    assert json.loads((out / STATS_FILE).read_text())["n_times"] == 4


# ------------------------------------------------------------------------------------------- bad input


def test_missing_variable_is_named(arco_path: Path) -> None:
    with pytest.raises(WeatherDataError, match="'sp' \\(called 'surface_pressure' in arco\\) is missing"):
        era5.open_arco(arco_path, ["u100", "sp"])
    with pytest.raises(LexiconError, match="unknown variable 'u999'"):
        era5.open_arco(arco_path, ["u999"])


def test_missing_level_is_named(tmp_path: Path) -> None:
    path = make_store(tmp_path / "l.zarr", ARCO_LAT, ARCO_LON, HOURLY[:6], levels=(500, 1000))
    with pytest.raises(WeatherDataError, match="'t850' needs level 850 hPa of 'temperature'.*500, 1000"):
        era5.open_arco(path, ["t850"])


def test_wrong_units(tmp_path: Path) -> None:
    path = make_store(tmp_path / "u.zarr", ARCO_LAT, ARCO_LON, HOURLY[:6], units={"2m_temperature": "degF"})
    src = era5.open_arco(path, ["t2m"])
    with pytest.raises(LexiconError, match="'t2m': cannot convert units 'degF'"):
        era5.prepare_canonical(src, Grid(9, 16), ["t2m"], tmp_path / "c.zarr", TRAIN, progress=False)


def test_mislabelled_units_fail_range_check_and_leave_no_store(tmp_path: Path) -> None:
    path = make_store(tmp_path / "u.zarr", ARCO_LAT, ARCO_LON, HOURLY[:6],
                      units={"surface_solar_radiation_downwards": "W m**-2"})  # J m-2 values read as W m-2
    src = era5.open_arco(path, ["ssrd"])
    with pytest.raises(WeatherDataError, match="'ssrd' spans .* outside its physical range"):
        era5.prepare_canonical(src, Grid(9, 16), ["ssrd"], tmp_path / "c.zarr", TRAIN, progress=False)
    assert not (tmp_path / "c.zarr").exists()


def test_nan_is_reported(tmp_path: Path) -> None:
    path = make_store(tmp_path / "n.zarr", ARCO_LAT, ARCO_LON, HOURLY[:6], nan_in="2m_temperature")
    src = era5.open_arco(path, ["t2m"])
    with pytest.raises(WeatherDataError, match="'t2m' has .*NaN"):
        era5.prepare_canonical(src, Grid(19, 36), ["t2m"], tmp_path / "c.zarr", TRAIN, progress=False)


@pytest.mark.parametrize(
    ("times", "message"),
    [(HOURLY[[0, 2, 1, 3]], "not sorted"), (HOURLY[[0, 1, 1, 2]], "duplicated times")],
    ids=["unsorted", "duplicated"],
)
def test_bad_times(tmp_path: Path, times: pd.DatetimeIndex, message: str) -> None:
    path = make_store(tmp_path / "t.zarr", ARCO_LAT, ARCO_LON, times)
    with pytest.raises(WeatherDataError, match=message):
        era5.open_arco(path, ["t2m"])


def test_empty_time_selection_and_train_period(arco_path: Path, tmp_path: Path) -> None:
    with pytest.raises(WeatherDataError, match="selects no times; the data covers 2020-01-01T00:00:00"):
        era5.open_arco(arco_path, ["t2m"], time=slice("2031-01-01", "2031-12-31"))
    with pytest.raises(WeatherDataError, match="not in the data"):
        era5.open_arco(arco_path, ["t2m"], time=["2031-01-01"])
    src = era5.open_arco(arco_path, ["t2m"])
    with pytest.raises(WeatherDataError, match="training period .* selects no times"):
        era5.prepare_canonical(src, Grid(9, 16), ["t2m"], tmp_path / "c.zarr", ("2019-01-01", "2019-02-01"))


def test_missing_store_and_empty_region(arco_path: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        era5.open_arco(tmp_path / "nope.zarr", ["t2m"])
    with pytest.raises(WeatherDataError, match="contains no grid point"):
        era5.open_arco(arco_path, ["t2m"], region=(31, 39, 1, 9))


# ----------------------------------------------------------------------------- local files (synthetic)


def point_dataset(time_dim: str = "time") -> xr.Dataset:
    times = pd.date_range("2022-01-01", periods=6, freq="h")
    shape = (6, 1, 1)
    return xr.Dataset(
        {
            "t2m": ((time_dim, "latitude", "longitude"), np.full(shape, 275.0), {"units": "K"}),
            "msdwswrf": ((time_dim, "latitude", "longitude"), np.full(shape, 100.0), {"units": "W m**-2"}),
        },
        coords={time_dim: times, "latitude": [52.5], "longitude": [-0.25]},
    )


def test_read_new_cds_netcdf(tmp_path: Path) -> None:
    expver = ("valid_time", ["0001"] * 3 + ["0005"] * 3)  # ERA5 then ERA5T, as a coordinate
    ds = point_dataset("valid_time").assign_coords(number=0, expver=expver)
    ds.to_netcdf(tmp_path / "new.nc", engine="netcdf4")
    out = era5.read_era5_file(tmp_path / "new.nc")
    assert set(out.data_vars) == {"t2m", "ssrd"} and out["ssrd"].dims == ("time", "lat", "lon")
    np.testing.assert_allclose(out["ssrd"].values, 360000.0)  # 100 W m-2 over an hour
    assert out["lon"].values.tolist() == [359.75] and "grid" not in out.attrs


def test_read_old_expver_netcdf(tmp_path: Path) -> None:
    base = point_dataset()
    era5_final = base.where(base.time < np.datetime64("2022-01-01T03"))
    era5t = base.where(base.time >= np.datetime64("2022-01-01T03"))
    ds = xr.concat([era5_final, era5t], dim=pd.Index([1, 5], name="expver"))
    ds.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    out = era5.read_era5_file(tmp_path / "old.nc", ["t2m"])
    assert out["t2m"].dims == ("time", "lat", "lon") and not out["t2m"].isnull().any()


def test_grib_forecast_steps_become_valid_times() -> None:
    """cfgrib's layout for ERA5 accumulations: (time, step) with NaN for steps outside the request."""
    init = pd.to_datetime(["2022-01-01T06", "2022-01-01T18"])
    step = pd.to_timedelta([1, 2, 3], unit="h")
    values = np.arange(6.0).reshape(2, 3, 1, 1) * 1e5
    values[1, 2] = np.nan
    ds = xr.Dataset(
        {"ssrd": (("time", "step", "latitude", "longitude"), values, {"units": "J m**-2"})},
        coords={"time": init, "step": step, "latitude": [50.0], "longitude": [5.0], "number": 0,
                "valid_time": (("time", "step"), init.values[:, None] + step.values[None, :])},
    )
    out = era5._normalise_file(ds, None, "test")
    assert out["ssrd"].dims == ("time", "lat", "lon")
    assert out["time"].values.tolist() == pd.to_datetime(
        ["2022-01-01T07", "2022-01-01T08", "2022-01-01T09", "2022-01-01T19", "2022-01-01T20"]
    ).values.tolist()
    assert out["ssrd"].values.ravel().tolist() == [0, 1e5, 2e5, 3e5, 4e5]


def test_read_file_errors(tmp_path: Path) -> None:
    ds = point_dataset()
    ds["t2m"][2, 0, 0] = np.nan
    ds.to_netcdf(tmp_path / "nan.nc", engine="netcdf4")
    with pytest.raises(WeatherDataError, match="'t2m' has 1 NaN value\\(s\\), first at time=2022-01-01T02"):
        era5.read_era5_file(tmp_path / "nan.nc")
    with pytest.raises(WeatherDataError, match="'u100' \\(ERA5 'u100'\\) is missing"):
        era5.read_era5_file(tmp_path / "nan.nc", ["u100"])
    point_dataset().isel(time=[0, 2, 1]).to_netcdf(tmp_path / "unsorted.nc", engine="netcdf4")
    with pytest.raises(WeatherDataError, match="not sorted"):
        era5.read_era5_file(tmp_path / "unsorted.nc")
    (tmp_path / "junk.nc").write_bytes(b"junk")
    with pytest.raises(WeatherDataError, match="neither GRIB nor NetCDF"):
        era5.read_era5_file(tmp_path / "junk.nc")


# --------------------------------------------------------------------------------- local files (real)


def real_file(name: str) -> Path:
    path = ERA5_DIR / name
    if not path.is_file():
        pytest.skip(f"real ERA5 sample {path} not found")
    return path


@pytest.mark.shared_data
@needs_era5
def test_real_feedinlib_berlin() -> None:
    ds = era5.read_era5_file(real_file("feedinlib_berlin_2017.nc"))
    assert {"u100", "v100", "u10", "v10", "t2m", "ssrd", "sp", "fsr"} <= set(ds.data_vars)
    assert ds.sizes == {"time": 8760, "lat": 2, "lon": 3}
    assert ds["lat"].values.tolist() == pytest.approx([52.6, 52.35])
    assert ds["ssrd"].attrs["units"] == "J m-2" and 2e6 < float(ds["ssrd"].max()) < 4e6
    assert ds["u100"].dtype == np.float32 and "grid" not in ds.attrs


@pytest.mark.shared_data
@needs_era5
def test_real_pvlib_copenhagen_flux_to_accumulation() -> None:
    path = real_file("pvlib_copenhagen_2020.nc")
    ds = era5.read_era5_file(path, ["ssrd", "t2m"])
    with xr.open_dataset(path) as raw:
        flux = raw["msdwswrf"].values
    np.testing.assert_allclose(ds["ssrd"].values, flux * 3600.0, rtol=1e-6)
    assert ds["ssrd"].attrs["units"] == "J m-2" and ds.sizes["time"] == 8784


@pytest.mark.shared_data
@needs_era5
def test_real_grib_levels_and_members() -> None:
    path = real_file("cfgrib_era5-levels-members.grib")
    ds = era5.read_era5_file(path)
    assert set(ds.data_vars) == {"z500", "t850"}
    assert ds["z500"].dims == ("number", "time", "lat", "lon") and ds.sizes["number"] == 10
    assert ds.attrs["grid"] == "equiangular 61x120"
    assert 4.5e4 < float(ds["z500"].mean()) < 6e4 and 230 < float(ds["t850"].mean()) < 290
    one = era5.read_era5_file(path, ["t850"], member=3)
    assert one["t850"].dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(one["t850"].values, ds["t850"].sel(number=3).values)
    coarse = era5.regrid(one, Grid(9, 16)).compute()
    assert not coarse["t850"].isnull().any()
    with pytest.raises(WeatherDataError, match="member 42"):
        era5.read_era5_file(path, ["t850"], member=42)
