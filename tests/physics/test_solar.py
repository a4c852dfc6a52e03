"""Solar geometry on grids against pvlib's solar position and numerical integrals over the hour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib
import pytest

from carbonsync.physics import solar

PLACES = [(51.5, 359.9), (-33.9, 151.2), (0.0, 0.0), (64.1, 338.1), (35.7, 139.7), (-54.8, 291.7), (78.2, 15.6)]
TIMES = pd.DatetimeIndex([
    "2020-01-15T06:30", "2020-03-20T12:00", "2020-03-20T21:00", "2020-06-21T18:45", "2020-09-01T09:10",
    "2020-12-21T23:00", "2021-07-04T03:20", "2023-10-10T15:55",
])


def fine_times(times: pd.DatetimeIndex, n: int = 360) -> pd.DatetimeIndex:
    """``n`` midpoints over the hour ending at each time, flattened time-major."""
    offsets = pd.to_timedelta((np.arange(n) + 0.5 - n) / n, unit="h")
    return pd.DatetimeIndex((times.values[:, None] + offsets.values[None, :]).ravel())


def pvlib_cos_zenith(times: pd.DatetimeIndex, lat: float, lon: float) -> np.ndarray:
    lon180 = (lon + 180.0) % 360.0 - 180.0
    zenith = pvlib.solarposition.get_solarposition(times.tz_localize("UTC"), lat, lon180)["zenith"].to_numpy()
    return np.cos(np.deg2rad(zenith))


def spencer_eccentricity(times: pd.DatetimeIndex) -> np.ndarray:
    """(r0/r)^2 from Spencer (1971), written out here independently of pvlib."""
    g = 2 * np.pi * (times.day_of_year.to_numpy() - 1) / 365.0
    return 1.000110 + 0.034221 * np.cos(g) + 0.001280 * np.sin(g) + 0.000719 * np.cos(2 * g) + 0.000077 * np.sin(2 * g)


@pytest.mark.parametrize("lat, lon", PLACES)
def test_cos_zenith_matches_pvlib_within_0p2_degree(lat: float, lon: float) -> None:
    cosz = solar.cos_zenith(TIMES, np.array([lat]), np.array([lon]))
    assert cosz.shape == (len(TIMES), 1, 1)
    zenith = np.rad2deg(np.arccos(cosz[:, 0, 0]))
    expected = np.rad2deg(np.arccos(pvlib_cos_zenith(TIMES, lat, lon)))
    np.testing.assert_allclose(zenith, expected, atol=0.2)


def test_cos_zenith_grid_layout() -> None:
    lat, lon = np.array([60.0, 0.0, -60.0]), np.array([0.0, 90.0, 180.0, 270.0])
    cosz = solar.cos_zenith(TIMES[:2], lat, lon)
    assert cosz.shape == (2, 3, 4)
    for i, la in enumerate(lat):
        for j, lo in enumerate(lon):
            np.testing.assert_allclose(cosz[:, i, j], solar.cos_zenith(TIMES[:2], [la], [lo])[:, 0, 0])
    # lon 360 is lon 0
    np.testing.assert_allclose(solar.cos_zenith(TIMES, [10.0], [360.0]), solar.cos_zenith(TIMES, [10.0], [0.0]),
                               atol=1e-12)


def test_cos_zenith_accepts_tz_aware_and_numpy_times() -> None:
    a = solar.cos_zenith(TIMES, [45.0], [7.0])
    b = solar.cos_zenith(TIMES.tz_localize("UTC"), [45.0], [7.0])
    c = solar.cos_zenith(TIMES.values.astype("datetime64[s]"), [45.0], [7.0])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_hourly_mean_cos_zenith_equals_fine_average() -> None:
    times = pd.date_range("2020-03-20", periods=24, freq="h").append(pd.date_range("2020-06-21", periods=24, freq="h"))
    lat, lon = np.array([-80.0, -45.0, 0.0, 30.0, 66.0, 89.0]), np.array([0.0, 90.0, 200.0, 355.0])
    mean = solar.hourly_mean_cos_zenith(times, lat, lon)
    assert mean.shape == (48, 6, 4)
    n = 360
    fine = solar.cos_zenith(fine_times(times, n), lat, lon).clip(min=0).reshape(48, n, 6, 4).mean(axis=1)
    np.testing.assert_allclose(mean, fine, atol=1e-3)
    assert mean.min() >= 0.0 and mean.max() <= 1.0


@pytest.mark.parametrize("lat, lon", [(0.0, 0.0), (45.0, 100.0), (-30.0, 300.0)])
def test_toa_hourly_is_solar_constant_times_integral(lat: float, lon: float) -> None:
    times = pd.date_range("2021-01-04", periods=48, freq="h")  # near perihelion: eccentricity ~1.035
    point = (np.array([lat]), np.array([lon]))
    toa = solar.toa_hourly(times, *point)[:, 0, 0]
    ecc = spencer_eccentricity(times)
    assert ecc[0] == pytest.approx(1.035, abs=1e-3)
    n = 360
    cosz = solar.cos_zenith(fine_times(times, n), *point).clip(min=0).reshape(48, n).mean(axis=1)
    expected = 1361.0 * ecc * cosz * 3600.0
    np.testing.assert_allclose(toa, expected, atol=2e-3 * expected.max())  # 6-point midpoint rule
    assert toa.sum() == pytest.approx(expected.sum(), rel=1e-3)
    # against pvlib's (SPA) sun: within 1 % of the peak per hour and per day (Spencer vs SPA)
    cosz_spa = pvlib_cos_zenith(fine_times(times, 120), lat, lon).clip(min=0).reshape(48, 120).mean(axis=1)
    expected_spa = 1361.0 * ecc * cosz_spa * 3600.0
    np.testing.assert_allclose(toa, expected_spa, atol=1e-2 * expected_spa.max())
    assert toa.sum() == pytest.approx(expected_spa.sum(), rel=1e-2)


def test_toa_daily_total_at_equator_equinox() -> None:
    # daily mean TOA flux at the equator at equinox is S0 / pi (times the eccentricity)
    times = pd.date_range("2021-03-20T01", periods=24, freq="h")
    toa = solar.toa_hourly(times, np.array([0.0]), np.array([0.0]))[:, 0, 0]
    expected = 1361.0 * spencer_eccentricity(times[:1])[0] / np.pi * 86400.0
    assert toa.sum() == pytest.approx(expected, rel=5e-3)


def test_toa_zero_in_polar_night() -> None:
    lon = np.arange(0.0, 360.0, 30.0)
    dec = pd.date_range("2020-12-21", periods=24, freq="h")
    jun = pd.date_range("2020-06-21", periods=24, freq="h")
    assert np.all(solar.toa_hourly(dec, np.array([80.0, 90.0]), lon) == 0.0)
    assert np.all(solar.toa_hourly(jun, np.array([-80.0, -90.0]), lon) == 0.0)
    # ... and polar day is lit every hour
    assert np.all(solar.toa_hourly(jun, np.array([80.0]), lon) > 0.0)


def test_clear_sky_zero_at_night_and_below_toa() -> None:
    times = pd.date_range("2020-06-21", periods=48, freq="h")
    lat, lon = np.linspace(90, -90, 13), np.arange(0.0, 360.0, 30.0)
    clear = solar.clear_sky_hourly(times, lat, lon)
    toa = solar.toa_hourly(times, lat, lon)
    mean_cosz = solar.hourly_mean_cos_zenith(times, lat, lon)
    assert clear.shape == toa.shape == (48, 13, 12)
    assert np.all(clear >= 0.0)
    assert np.all(clear[mean_cosz == 0.0] == 0.0)  # the sun stayed down all hour
    assert np.all(toa[mean_cosz == 0.0] == 0.0)
    assert np.all(clear <= toa)
    day = mean_cosz > 0.5
    assert day.any() and np.all(clear[day] > 0.5 * toa[day])  # a clear sky passes most of the sunlight


def test_clear_sky_matches_pvlib_haurwitz_at_noon() -> None:
    time = pd.DatetimeIndex(["2020-03-20T12:30"])
    n = 360
    zen = np.rad2deg(np.arccos(pvlib_cos_zenith(fine_times(time, n), 0.0, 0.0)))
    expected = pvlib.clearsky.haurwitz(pd.Series(zen))["ghi"].mean() * 3600.0
    got = solar.clear_sky_hourly(time, np.array([0.0]), np.array([0.0]))[0, 0, 0]
    assert got == pytest.approx(expected, rel=2e-3)


def test_era5_labelling_hour_ending_at_label() -> None:
    # Quito-like point on the equator at the equinox: sunrise near 06:07 UTC at lon 0.
    times = pd.date_range("2020-03-20T05", periods=3, freq="h")  # labels 05, 06, 07
    point = (np.array([0.0]), np.array([0.0]))
    toa = solar.toa_hourly(times, *point)[:, 0, 0]
    mean_cosz = solar.hourly_mean_cos_zenith(times, *point)[:, 0, 0]
    assert toa[0] == 0.0 and toa[1] == 0.0  # 04-05 and 05-06 are dark
    assert toa[2] > 0.0  # 06-07 has sunrise
    assert mean_cosz[1] == 0.0 and mean_cosz[2] > 0.0
    # the value labelled t integrates [t - 1h, t], not [t, t + 1h]
    n = 240
    label = pd.DatetimeIndex(["2020-03-20T10"])
    before = pvlib_cos_zenith(fine_times(label, n), 0.0, 0.0).clip(min=0).mean()
    after = pvlib_cos_zenith(fine_times(label + pd.Timedelta("1h"), n), 0.0, 0.0).clip(min=0).mean()
    got = solar.hourly_mean_cos_zenith(label, *point)[0, 0, 0]
    assert got == pytest.approx(before, abs=2e-3)
    assert abs(got - after) > 0.05


def test_as_dataarray() -> None:
    times = pd.date_range("2020-01-01", periods=2, freq="h")
    lat, lon = np.array([10.0, -10.0]), np.array([0.0, 180.0])
    da = solar.as_dataarray(solar.toa_hourly(times, lat, lon), times, lat, lon, "tisr", "J m-2", "TOA")
    assert da.dims == ("time", "lat", "lon")
    assert da.dtype == np.float32
    assert da.name == "tisr" and da.attrs == {"units": "J m-2", "long_name": "TOA"}
