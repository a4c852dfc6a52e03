"""validate_weather, the canonical Zarr store (atomic writes) and the training-period statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.data import lexicon
from carbonsync.data.store import (
    STATS_FILE,
    atomic_path,
    compute_stats,
    open_canonical,
    open_zone_truth,
    read_stats,
    to_zarr,
    write_canonical,
    write_json_atomic,
    write_stats,
)
from carbonsync.data.validation import WeatherDataError, check_times, validate_weather
from carbonsync.physics.grid import Grid

GRID = Grid(9, 16)
pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part:UserWarning")


def weather(n_times: int = 6, grid: Grid = GRID, start: str = "2021-03-01") -> xr.Dataset:
    """A small valid canonical dataset with a smooth, latitude-dependent field per variable."""
    times = pd.date_range(start, periods=n_times, freq="h")
    shape = (n_times, *grid.shape)
    mu = np.sin(np.deg2rad(grid.lat))[None, :, None]
    rng = np.random.default_rng(0)
    values = {
        "u100": 10.0 * mu**2 + 0.1 * rng.standard_normal(shape),
        "t2m": np.broadcast_to(280.0 + 10.0 * (1 - mu**2), shape),
        "tcc": np.broadcast_to(0.5, shape),
    }
    return xr.Dataset(
        {k: xr.DataArray(np.asarray(v, np.float32).copy(), dims=("time", "lat", "lon"), attrs=lexicon.get(k).attrs)
         for k, v in values.items()},
        coords={"time": times, **grid.coords()},
    )


# ------------------------------------------------------------------------------------ validation


def test_valid_dataset_returns_its_grid() -> None:
    assert validate_weather(weather()) == GRID
    assert validate_weather(weather(), ["u100"], grid=GRID) == GRID


def test_legendre_gauss_grid_inferred() -> None:
    grid = Grid(8, 16, "legendre-gauss")
    assert validate_weather(weather(grid=grid)) == grid


def test_missing_variable() -> None:
    with pytest.raises(WeatherDataError, match="missing variable\\(s\\) ssrd, z500; it has u100, t2m, tcc"):
        validate_weather(weather(), ["u100", "ssrd", "z500"])


def test_wrong_dims() -> None:
    ds = weather()
    ds["t2m"] = ds["t2m"].transpose("lat", "time", "lon")
    with pytest.raises(WeatherDataError, match=r"'t2m' has dims \('lat', 'time', 'lon'\), expected \('time', 'lat', 'lon'\)"):
        validate_weather(ds)


def test_missing_dim() -> None:
    ds = weather()
    ds["t2m"] = ds["t2m"].isel(time=0, drop=True)
    with pytest.raises(WeatherDataError, match="'t2m' has dims \\('lat', 'lon'\\)"):
        validate_weather(ds)


@pytest.mark.parametrize("units", ["degC", None])
def test_wrong_or_missing_units(units: str | None) -> None:
    ds = weather()
    ds["t2m"].attrs = {} if units is None else {"units": units}
    with pytest.raises(WeatherDataError, match=f"'t2m' has units '{units}', expected 'K'"):
        validate_weather(ds)


def test_unit_spelling_is_normalised() -> None:
    ds = weather()
    ds["u100"].attrs["units"] = "m s**-1"
    validate_weather(ds)


def test_nan_message_says_where() -> None:
    ds = weather()
    ds["u100"][3, 2, 5] = np.nan
    ds["u100"][4, 0, 0] = np.nan
    with pytest.raises(WeatherDataError) as info:
        validate_weather(ds)
    msg = str(info.value)
    assert "'u100' has 2 NaN value(s), first at" in msg
    assert "time=2021-03-01T03:00" in msg
    assert f"lat={GRID.lat[2]}" in msg and f"lon={GRID.lon[5]}" in msg


def test_nan_not_checked_without_check_values() -> None:
    ds = weather()
    ds["u100"][0, 0, 0] = np.nan
    validate_weather(ds, check_values=False)


def test_out_of_range_suggests_wrong_units() -> None:
    ds = weather()
    ds["t2m"] = ds["t2m"] - 273.15  # Celsius values labelled K
    ds["t2m"].attrs = {"units": "K"}
    expected = r"'t2m' spans \[.*\], outside its physical range \[150, 350\] K \(wrong units\?\)"
    with pytest.raises(WeatherDataError, match=expected):
        validate_weather(ds)


def test_tcc_in_percent_is_out_of_range() -> None:
    ds = weather()
    ds["tcc"] = ds["tcc"] * 100
    ds["tcc"].attrs = {"units": "1"}
    with pytest.raises(WeatherDataError, match="'tcc' spans \\[50, 50\\]"):
        validate_weather(ds)


def test_duplicated_times() -> None:
    ds = weather()
    times = ds.time.values.copy()
    times[3] = times[2]
    with pytest.raises(WeatherDataError, match="duplicated times, e.g. 2021-03-01T02:00:00"):
        validate_weather(ds.assign_coords(time=times))


def test_unsorted_times() -> None:
    ds = weather()
    times = ds.time.values.copy()
    times[[2, 3]] = times[[3, 2]]
    with pytest.raises(WeatherDataError, match="times are not sorted: 2021-03-01T02:00:00 follows 2021-03-01T03:00:00"):
        validate_weather(ds.assign_coords(time=times))


def test_nat_time() -> None:
    times = pd.DatetimeIndex(["2021-01-01", None])
    with pytest.raises(WeatherDataError, match="missing values \\(NaT\\)"):
        check_times(times, "x")


def test_check_times_returns_index() -> None:
    idx = check_times(np.array(["2021-01-01T00", "2021-01-01T01"], dtype="datetime64[ns]"))
    assert isinstance(idx, pd.DatetimeIndex) and len(idx) == 2


def test_mismatched_grid() -> None:
    with pytest.raises(WeatherDataError, match="weather dataset: .*has 9 lat points but grid equiangular 17x32 has 17"):
        validate_weather(weather(), grid=Grid(17, 32))


def test_unknown_grid() -> None:
    ds = weather().assign_coords(lon=GRID.lon + 1.0)
    with pytest.raises(WeatherDataError, match="no known global grid"):
        validate_weather(ds)


def test_ascending_latitudes() -> None:
    ds = weather().isel(lat=slice(None, None, -1))
    with pytest.raises(WeatherDataError, match="north to south"):
        validate_weather(ds, grid=GRID)


# ------------------------------------------------------------------------------------------ store


def test_write_canonical_round_trip(tmp_path: Path) -> None:
    ds = weather(n_times=30)
    ds.attrs = {"source": "test", "grid": GRID.attr()}
    path = write_canonical(ds, tmp_path / "weather.zarr", chunks={"time": 7})
    assert path == tmp_path / "weather.zarr"
    assert (path / "zarr.json").is_file()
    reopened = xr.open_zarr(path)  # consolidated metadata is present
    assert reopened["u100"].chunks[0][0] == 7
    xr.testing.assert_identical(reopened.load(), ds)
    assert [p.name for p in tmp_path.iterdir()] == ["weather.zarr"]  # no temporary left over
    opened = open_canonical(path, ["u100", "t2m"])
    xr.testing.assert_identical(opened.load(), ds)


def test_write_canonical_validates_first(tmp_path: Path) -> None:
    ds = weather()
    ds["t2m"].attrs["units"] = "degC"
    with pytest.raises(WeatherDataError, match="'t2m' has units 'degC'"):
        write_canonical(ds, tmp_path / "weather.zarr")
    assert list(tmp_path.iterdir()) == []


def test_open_canonical_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="canonical store '.*nope.zarr' does not exist"):
        open_canonical(tmp_path / "nope.zarr")


def test_atomic_path_failure_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "store.zarr"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(final) as tmp:
        assert tmp != final and tmp.parent == final.parent
        tmp.mkdir()
        (tmp / "chunk").write_text("partial")
        raise RuntimeError("boom")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_keeps_existing(tmp_path: Path) -> None:
    final = tmp_path / "store.zarr"
    final.mkdir()
    (final / "old").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
        raise KeyboardInterrupt
    assert [p.name for p in final.iterdir()] == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]


def test_atomic_path_success_replaces_existing(tmp_path: Path) -> None:
    final = tmp_path / "store.zarr"
    final.mkdir()
    (final / "old").write_text("old")
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
        assert (final / "old").exists()  # nothing replaced until the body succeeds
    assert [p.name for p in final.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]  # no .old- or .tmp- leftovers


def test_atomic_file_replacement(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.json"
    write_json_atomic({"x": 1}, path)
    write_json_atomic({"x": 2}, path)
    assert path.read_text().replace(" ", "").replace("\n", "") == '{"x":2}'
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_stats_use_training_period_only() -> None:
    ds = weather(n_times=48)
    ds["t2m"][:24] = 280.0
    ds["t2m"][24:] = 320.0  # a warmer later period must not leak into the statistics
    stats = compute_stats(ds, ("2021-03-01T00", "2021-03-01T23"))
    assert stats["n_times"] == 24
    assert stats["variables"]["t2m"]["mean"] == pytest.approx(280.0)
    assert stats["variables"]["t2m"]["std"] == pytest.approx(1e-6)  # constant field: floored std
    full = compute_stats(ds, ("2021-03-01", "2021-03-02T23"))
    assert full["variables"]["t2m"]["mean"] == pytest.approx(300.0)
    assert full["variables"]["t2m"]["std"] == pytest.approx(20.0)
    assert set(stats["variables"]) == {"u100", "t2m", "tcc"}
    assert stats["train_period"] == ["2021-03-01 00:00:00", "2021-03-01 23:00:00"]


def test_stats_are_area_weighted() -> None:
    ds = weather(n_times=4)
    mu2 = np.sin(np.deg2rad(GRID.lat))[None, :, None] ** 2
    ds["u100"][:] = np.broadcast_to(10.0 * mu2, ds["u100"].shape)
    stats = compute_stats(ds, ("2021-03-01", "2021-03-02"), variables=["u100"])
    assert list(stats["variables"]) == ["u100"]
    # sphere means: <mu^2> = 1/3, <mu^4> = 1/5
    assert stats["variables"]["u100"]["mean"] == pytest.approx(10.0 / 3.0, rel=1e-5)
    assert stats["variables"]["u100"]["std"] == pytest.approx(10.0 * np.sqrt(1 / 5 - 1 / 9), rel=1e-5)
    assert float(ds["u100"].mean()) != pytest.approx(10.0 / 3.0, rel=1e-2)  # an unweighted mean differs


def test_stats_empty_training_period() -> None:
    ds = weather(n_times=5)
    with pytest.raises(WeatherDataError) as info:
        compute_stats(ds, ("2030-01-01", "2030-12-31"))
    msg = str(info.value)
    assert "training period 2030-01-01 00:00:00 to 2030-12-31 00:00:00 selects no times" in msg
    assert "data covers 2021-03-01 00:00:00 to 2021-03-01 04:00:00" in msg


def test_stats_round_trip(tmp_path: Path) -> None:
    stats = compute_stats(weather(), ("2021-03-01", "2021-03-02"))
    path = write_stats(stats, tmp_path / "weather.zarr")
    assert path == tmp_path / "weather.zarr" / STATS_FILE
    assert read_stats(tmp_path / "weather.zarr") == stats


def test_read_stats_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"normalisation statistics '.*{STATS_FILE}' not found"):
        read_stats(tmp_path)


# ------------------------------------------------------------------------------ store values on open


def _store(tmp_path: Path) -> Path:
    ds = weather(n_times=30)
    ds.attrs = {"source": "test", "grid": GRID.attr()}
    return write_canonical(ds, tmp_path / "weather.zarr", chunks={"time": 6})


def _set(path: Path, name: str, index: tuple[int, int, int], value: float) -> None:
    import zarr

    zarr.open_group(str(path), mode="r+")[name][index] = value


@pytest.mark.parametrize(("value", "match"), [
    (np.nan, r"variable 'u100' has 1 NaN value\(s\), first at time=2021-03-01T07:00:00, lat=.*: nan"),
    (np.inf, r"variable 'u100' has 1 non-finite value\(s\) \(0 NaN, 1 inf\), first at time=2021-03-01T07:00:00.*: inf"),
    (1e4, r"variable 'u100' spans .* outside its physical range \[-150, 150\].*first at time=2021-03-01T07:00:00.*: 10000"),
])
def test_open_canonical_checks_values(tmp_path: Path, value: float, match: str) -> None:
    path = _store(tmp_path)
    open_canonical(path)  # passes, and is remembered as checked ...
    _set(path, "u100", (7, 2, 5), value)
    with pytest.raises(WeatherDataError, match=match):  # ... until its files change
        open_canonical(path)
    with pytest.raises(WeatherDataError, match="u100"):
        open_canonical(path, ["u100"])
    open_canonical(path, ["t2m", "tcc"])  # the other variables are fine
    assert open_canonical(path, check_values=False)["u100"].isnull().sum() == int(np.isnan(value))


def test_open_canonical_names_a_deleted_chunk(tmp_path: Path) -> None:
    path = _store(tmp_path)
    (path / "t2m" / "c" / "2" / "0" / "0").unlink()
    expected = (r"variable 't2m' is missing 1 of its 5 chunk files, e.g. 't2m/c/2/0/0' "
                r"\(times 2021-03-01T12:00:00 to 2021-03-01T17:00:00\)")
    with pytest.raises(WeatherDataError, match=expected):
        open_canonical(path)


def test_missing_chunk_is_named_by_the_value_check(tmp_path: Path) -> None:
    """Even when the chunk listing is not consulted, the NaN the missing chunk reads as names the file."""
    from carbonsync.data.validation import check_values

    path = _store(tmp_path)
    (path / "tcc" / "c" / "1" / "0" / "0").unlink()
    expected = r"'tcc' has 864 NaN.*time=2021-03-01T06:00:00.*chunk file 'tcc/c/1/0/0' is missing"
    with pytest.raises(WeatherDataError, match=expected):
        check_values(xr.open_zarr(path), ["tcc"], "store", store=path)


def test_each_variable_is_read_once_per_process_while_unchanged(tmp_path: Path, monkeypatch) -> None:
    from carbonsync.data import store

    path = _store(tmp_path)
    checked = []
    real = store.check_weather_values
    monkeypatch.setattr(store, "check_weather_values",
                        lambda ds, names, *a, **kw: checked.append(names) or real(ds, names, *a, **kw))
    open_canonical(path, ["u100"])
    open_canonical(path)  # only the variables not yet checked are read
    open_canonical(path, ["t2m", "u100"])  # nothing new
    assert checked == [["u100"], ["t2m", "tcc"]]
    _set(path, "tcc", (0, 0, 0), 0.25)  # a valid change still means a new read, of that variable only
    open_canonical(path)
    assert checked[-1] == ["tcc"]


def zone_truth(n_times: int = 48) -> xr.Dataset:
    times = pd.date_range("2020-06-01", periods=n_times, freq="h")
    rng = np.random.default_rng(0)
    share = rng.uniform(0.1, 0.9, (n_times, 2))
    return xr.Dataset(
        {"renewable_share": (("time", "zone"), share, {"units": "1"}),
         "carbon_intensity": (("time", "zone"), 500.0 * (1 - share), {"units": "g CO2e/kWh"})},
        coords={"time": times, "zone": ["north", "south"]})


def test_zone_truth_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "zone_truth.zarr"
    to_zarr(zone_truth(), path)
    xr.testing.assert_allclose(open_zone_truth(path).load(), zone_truth())


@pytest.mark.parametrize("spoil, message", [
    (lambda ds: ds["renewable_share"].values.__setitem__((5, 1), np.nan), r"'renewable_share' has 1 NaN.*zone=south"),
    (lambda ds: ds["carbon_intensity"].values.__setitem__((7, 0), np.inf), r"'carbon_intensity' has 1 non-finite"),
    (lambda ds: ds["carbon_intensity"].values.__imul__(1000.0), r"'carbon_intensity' spans .* outside .*\[0, 2000\]"),
    (lambda ds: ds["renewable_share"].values.__imul__(100.0), r"'renewable_share' spans .* outside .*\[0, 1\]"),
])
def test_zone_truth_values_are_checked(tmp_path: Path, spoil, message) -> None:
    ds = zone_truth()
    spoil(ds)
    path = tmp_path / "zone_truth.zarr"
    to_zarr(ds, path)
    with pytest.raises(WeatherDataError, match=message):
        open_zone_truth(path)


def test_zone_truth_layout_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "zone_truth.zarr"
    to_zarr(zone_truth().transpose("zone", "time"), path)
    with pytest.raises(WeatherDataError, match=r"dims \('zone', 'time'\), expected \('time', 'zone'\)"):
        open_zone_truth(path)
    to_zarr(zone_truth(), path)
    with pytest.raises(WeatherDataError, match=r"lacks \['wind_cf'\]"):
        open_zone_truth(path, ["wind_cf"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_zone_truth(tmp_path / "absent.zarr")
