"""Physical wind/solar capacity factors and zone products."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib
import pytest
import xarray as xr

from carbonsync.physics import renewables as ph
from carbonsync.physics.grid import Grid, GridError
from carbonsync.physics.solar import solar_position
from carbonsync.physics.zones import Zone, zone_masks

GRID = Grid(19, 36)  # 10 degree equiangular
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")  # inside windpowerlib


def field(values: np.ndarray, times: pd.DatetimeIndex, units: str | None, grid: Grid = GRID) -> xr.DataArray:
    attrs = {} if units is None else {"units": units}
    coords = {"time": times, "lat": grid.lat, "lon": grid.lon}
    return xr.DataArray(values, coords=coords, dims=("time", "lat", "lon"), attrs=attrs)


def point_field(values, lat: float, lon: float, times, units: str) -> xr.DataArray:
    values = np.asarray(values, dtype=float).reshape(len(times), 1, 1)
    return xr.DataArray(values, coords={"time": times, "lat": [lat], "lon": [lon]},
                        dims=("time", "lat", "lon"), attrs={"units": units})


def speeds_to_cf(speeds, **kwargs) -> np.ndarray:
    s = xr.DataArray(np.asarray(speeds, dtype=float), dims="x", attrs={"units": "m s-1"})
    return ph.wind_capacity_factor(s, xr.zeros_like(s), **kwargs).values


@pytest.fixture(scope="module")
def zones() -> list[Zone]:
    return [
        Zone("N", "north", 40, 60, 0, 30, wind_capacity_mw=1000, solar_capacity_mw=500, demand_mw=800),
        Zone("S", "south", -40, -20, 350, 380, wind_capacity_mw=300, solar_capacity_mw=900, demand_mw=600,
             fossil_intensity=700),
    ]


@pytest.fixture(scope="module")
def weather() -> dict[str, xr.DataArray]:
    rng = np.random.default_rng(1)
    times = pd.date_range("2024-06-20", periods=48, freq="h")
    shape = (len(times), *GRID.shape)
    return {
        "u100": field(rng.normal(2, 7, shape), times, "m s-1"),
        "v100": field(rng.normal(0, 7, shape), times, "m s-1"),
        "ssrd": field(rng.uniform(0, 2.5e6, shape), times, "J m-2"),
        "t2m": field(rng.normal(290, 8, shape), times, "K"),
    }


# ------------------------------------------------------------------------------------------------ wind


def test_raw_power_curve_cut_in_rated_cut_out():
    cf = speeds_to_cf([0.0, 1.0, 1.9, 2.0, 25.01, 26.0, 30.0, 45.0], smoothing_std=None)  # cut-in 2 m s-1
    assert np.all(cf == 0.0)
    rated = speeds_to_cf([17.0, 20.0, 24.9, 25.0], smoothing_std=None)
    np.testing.assert_allclose(rated, 1.0, atol=1e-6)
    ramp = speeds_to_cf(np.linspace(2.0, 17.0, 200), smoothing_std=None)
    assert np.all(np.diff(ramp) >= 0) and ramp[0] == 0 and ramp[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("std", [(0.2, 0.6), (0.15, 0.6), (0.1, 0.0)])
def test_smoothed_curve_in_unit_interval(std):
    cf = speeds_to_cf(np.linspace(0, 60, 601), smoothing_std=std)
    assert cf.min() >= 0.0 and cf.max() <= 1.0
    assert 0.85 < cf.max() < 1.0  # smoothing shaves the rated plateau
    assert cf[-1] == 0.0


def test_vectorised_smoothing_matches_windpowerlib():
    from windpowerlib.power_curves import smooth_power_curve
    from windpowerlib.wind_turbine import WindTurbine

    curve = WindTurbine(turbine_type="E-126/4200", hub_height=100).power_curve
    ref = smooth_power_curve(
        curve["wind_speed"], curve["value"], standard_deviation_method="Staffell_Pfenninger"
    )
    raw = curve["wind_speed"].to_numpy(float), curve["value"].to_numpy(float)
    speeds, values = ph._gauss_smooth(*raw, (0.2, 0.6))
    np.testing.assert_allclose(speeds, ref["wind_speed"].to_numpy(float))
    np.testing.assert_allclose(values, ref["value"].to_numpy(float), rtol=1e-10, atol=1e-6)


def test_wind_vectorised_equals_pointwise(weather):
    from windpowerlib.power_curves import smooth_power_curve
    from windpowerlib.wind_turbine import WindTurbine

    turbine = WindTurbine(turbine_type="E-126/4200", hub_height=135)
    sm = smooth_power_curve(turbine.power_curve["wind_speed"], turbine.power_curve["value"],
                            standard_deviation_method="Staffell_Pfenninger")
    cf = ph.wind_capacity_factor(weather["u100"], weather["v100"], hub_height=135)
    assert cf.name == "wind_cf" and cf.attrs["units"] == "1" and cf.dims == ("time", "lat", "lon")
    for t, i, j in [(0, 3, 4), (5, 10, 0), (47, 18, 35), (20, 9, 17)]:
        u, v = float(weather["u100"][t, i, j]), float(weather["v100"][t, i, j])
        speed = np.hypot(u, v) * 1.35 ** (1 / 7)
        expected = np.interp(speed, sm["wind_speed"], sm["value"], right=0) / turbine.nominal_power
        assert float(cf[t, i, j]) == pytest.approx(expected, abs=1e-9)


def test_wind_dask_matches_numpy(weather):
    u, v = weather["u100"], weather["v100"]
    eager = ph.wind_capacity_factor(u, v)
    lazy = ph.wind_capacity_factor(u.chunk(time=8), v.chunk(time=8))
    assert lazy.chunks is not None
    xr.testing.assert_allclose(eager, lazy.compute())


def test_unknown_turbine():
    with pytest.raises(ValueError, match="NoSuchTurbine"):
        ph.power_curve("NoSuchTurbine/1")


# ----------------------------------------------------------------------------------------------- solar


def clear_sky_ssrd(times: pd.DatetimeIndex, lat: float, lon: float) -> np.ndarray:
    mid = times - pd.Timedelta(minutes=30)
    pos = pvlib.solarposition.get_solarposition(mid, lat, lon)
    return np.clip(np.cos(np.deg2rad(pos["zenith"].to_numpy())), 0, None) * 900.0 * 3600.0


def test_solar_zero_at_night_and_without_sun():
    times = pd.date_range("2024-06-21", periods=24, freq="h")
    ssrd = point_field(clear_sky_ssrd(times, 45.0, 90.0), 45.0, 90.0, times, "J m-2")
    cf = ph.solar_capacity_factor(ssrd).squeeze()
    assert cf.name == "solar_cf" and cf.attrs["units"] == "1"
    assert float(cf.min()) >= 0.0 and float(cf.max()) <= 1.0
    night = ssrd.squeeze().values == 0
    assert night.any() and np.all(cf.values[night] == 0.0)
    # solar noon at 90E is ~06:00 UTC: the hours ending 06:00 and 07:00 straddle it
    assert int(np.argmax(cf.values)) in (6, 7)
    assert 0.5 < float(cf.max()) < 0.9
    # an ssrd of 0 with the sun up gives 0; so does irradiance reported while the sun is down
    dark = ph.solar_capacity_factor(xr.zeros_like(ssrd)).values
    assert np.all(dark == 0.0)
    bogus = ph.solar_capacity_factor(xr.full_like(ssrd, 1e6)).squeeze().values
    assert np.all(bogus[night] == 0.0)


def test_solar_position_matches_pvlib():
    times = pd.DatetimeIndex(["2024-03-05 09:10", "2024-06-21 12:00", "2024-09-30 16:45", "2024-12-21 03:30"])
    for lat, lon in [(52.0, 5.0), (-33.9, 18.4), (35.0, 250.0), (10.0, 120.0)]:
        ref = pvlib.solarposition.get_solarposition(times, lat, lon)
        hour = (times.hour + times.minute / 60).to_numpy(float)
        zen, az = solar_position(times.day_of_year.to_numpy(float), hour, lat, lon)
        up = ref["zenith"].to_numpy() < 85
        np.testing.assert_allclose(zen, ref["zenith"].to_numpy(), atol=1.0)
        daz = (az - ref["azimuth"].to_numpy() + 180) % 360 - 180
        assert np.all(np.abs(daz[up]) < 1.5)


def test_solar_dask_matches_numpy(weather):
    eager = ph.solar_capacity_factor(weather["ssrd"], t2m=weather["t2m"])
    lazy = ph.solar_capacity_factor(weather["ssrd"].chunk(time=10), t2m=weather["t2m"].chunk(time=10))
    assert lazy.chunks is not None
    xr.testing.assert_allclose(eager, lazy.compute())
    assert eager.dims == ("time", "lat", "lon")
    assert float(eager.min()) >= 0 and float(eager.max()) <= 1


def test_solar_temperature_and_hemisphere():
    times = pd.date_range("2024-06-21", periods=24, freq="h")  # southern winter
    ssrd = point_field(clear_sky_ssrd(times, -35.0, 20.0), -35.0, 20.0, times, "J m-2")
    base = ph.solar_capacity_factor(ssrd)
    hot = ph.solar_capacity_factor(ssrd, t2m=xr.full_like(ssrd, 313.15).assign_attrs(units="K"))
    assert float(hot.sum()) < float(base.sum())
    # azimuth=0 is mirrored to 180 south of the equator, i.e. a pole-facing module: less yield
    steep = dict(tilt=40.0)
    assert float(ph.solar_capacity_factor(ssrd, azimuth=0.0, **steep).sum()) < float(
        ph.solar_capacity_factor(ssrd, **steep).sum())
    np.testing.assert_allclose(ph.default_tilt([0.0, -30.0, 70.0]), [3.1, 25.9, 40.0])


# ----------------------------------------------------------------------------------------------- zones


def test_zone_average_matches_hand_computation(zones):
    rng = np.random.default_rng(3)
    times = pd.date_range("2024-01-01", periods=3, freq="h")
    f = field(rng.uniform(size=(3, *GRID.shape)), times, "1").rename("x")
    masks = zone_masks(zones, GRID)
    got = ph.zone_average(f, masks)
    assert got.dims == ("time", "zone") and list(got.zone.values) == ["N", "S"]
    w = GRID.quadrature_weights().values
    for k, z in enumerate(zones):
        inside = np.zeros(GRID.shape, bool)
        for i, la in enumerate(GRID.lat):
            for j, lo in enumerate(GRID.lon):
                in_lon = (lo - z.lon_min) % 360 <= z.lon_max - z.lon_min
                inside[i, j] = z.lat_min <= la <= z.lat_max and in_lon
        for t in range(3):
            expected = (f.values[t] * w * inside).sum() / (w * inside).sum()
            assert float(got[t, k]) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ph.PhysicsInputError, match="lat"):
        ph.zone_average(f.isel(lat=slice(1, None)), masks)


def test_renewable_share_clipped(zones):
    times = pd.date_range("2024-01-06", periods=4, freq="6h")
    coords = {"time": times, "zone": ["N", "S"]}
    full = xr.DataArray(np.ones((4, 2)), coords=coords, dims=("time", "zone"))
    assert np.all(ph.renewable_share(full, full, zones).values == 1.0)  # supply > demand
    assert np.all(ph.renewable_share(0 * full, 0 * full, zones).values == 0.0)
    wind = 0.3 * full
    solar = 0.1 * full
    share = ph.renewable_share(wind, solar, zones, times)
    demand = np.stack([z.demand_profile(times) for z in zones], axis=1)
    expected = np.clip((0.3 * np.array([1000, 300]) + 0.1 * np.array([500, 900])) / demand, 0, 1)
    np.testing.assert_allclose(share.values, expected)
    assert share.name == "renewable_share"
    # zones are matched by id, not by position
    np.testing.assert_allclose(ph.renewable_share(wind, solar, zones[::-1]).values, expected)


def test_zone_products(weather, zones):
    ds = ph.zone_products(weather["u100"], weather["v100"], weather["ssrd"], zones, GRID, t2m=weather["t2m"])
    for name in ("wind_cf", "solar_cf", "renewable_share", "carbon_intensity", "wind_speed", "ghi"):
        assert ds[name].dims == ("time", "zone")
        assert np.isfinite(ds[name].values).all()
    for name in ("wind_cf", "solar_cf", "renewable_share"):
        assert float(ds[name].min()) >= 0 and float(ds[name].max()) <= 1
    fossil = xr.DataArray([450.0, 700.0], dims="zone", coords={"zone": ds.zone})
    expected = ((1 - ds.renewable_share) * fossil).rename("carbon_intensity")
    xr.testing.assert_allclose(ds.carbon_intensity, expected)
    assert ds.carbon_intensity.attrs["units"] == "gCO2eq kWh-1"
    # dims in another order are accepted
    ds2 = ph.zone_products(weather["u100"].transpose("lat", "time", "lon"), weather["v100"], weather["ssrd"],
                           zones, GRID)
    assert ds2.wind_cf.dims == ("time", "zone")


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("ssrd", lambda da: da.assign_attrs(units="W m-2"), "'ssrd' has units 'W m-2'"),
        ("u100", lambda da: da.assign_attrs(units="km h-1"), "'u100' has units"),
        ("v100", lambda da: da.drop_attrs(), "'v100' has no 'units'"),
        ("u100", lambda da: da.isel(time=0), "'u100' has dims"),
        ("t2m", lambda da: da.assign_attrs(units="degC"), "'t2m' has units"),
        ("ssrd", lambda da: da.rename(lon="longitude"), "'ssrd' has dims"),
    ],
)
def test_bad_inputs_name_the_variable(weather, zones, name, change, message):
    args = dict(weather)
    args[name] = change(args[name])
    with pytest.raises(ph.PhysicsInputError, match=message):
        ph.zone_products(args["u100"], args["v100"], args["ssrd"], zones, GRID, t2m=args["t2m"])


def test_grid_and_time_mismatch_name_the_variable(weather, zones):
    other = Grid(19, 36, "legendre-gauss")
    ssrd = weather["ssrd"].assign_coords(lat=other.lat)
    with pytest.raises(GridError, match="'ssrd'"):
        ph.zone_products(weather["u100"], weather["v100"], ssrd, zones, GRID)
    shifted = weather["v100"].assign_coords(time=weather["v100"].time + np.timedelta64(1, "h"))
    with pytest.raises(ph.PhysicsInputError, match="'v100' has different times"):
        ph.zone_products(weather["u100"], shifted, weather["ssrd"], zones, GRID)
    with pytest.raises(ph.PhysicsInputError, match="'ssrd' must be an xarray.DataArray"):
        ph.zone_products(weather["u100"], weather["v100"], weather["ssrd"].values, zones, GRID)


# ------------------------------------------------------------------------- hub height, dask, capacity


class _NoCompute:
    """A dask scheduler that fails: whatever runs under it must stay lazy."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("a dask graph was computed eagerly")


def test_log_law_with_roughness_matches_windpowerlib(weather):
    from windpowerlib.wind_speed import logarithmic_profile

    rng = np.random.default_rng(5)
    fsr = xr.DataArray(rng.uniform(0.0002, 1.0, GRID.shape), coords=GRID.coords(), dims=("lat", "lon"),
                       attrs={"units": "m"})
    speed = np.hypot(weather["u100"], weather["v100"])
    got = ph.hub_height_speed(speed, 140.0, roughness=fsr)
    for t, i, j in [(0, 3, 4), (7, 10, 20), (47, 18, 35)]:
        ref = logarithmic_profile(float(speed[t, i, j]), 100.0, 140.0, float(fsr[i, j]))
        assert float(got[t, i, j]) == pytest.approx(ref, rel=1e-12)
    cf = ph.wind_capacity_factor(weather["u100"], weather["v100"], hub_height=140.0, roughness=fsr)
    assert cf.attrs["hub_height_extrapolation"] == "log law with roughness length fsr"
    expected = ph.wind_capacity_factor(got.assign_attrs(units="m s-1"), xr.zeros_like(got).assign_attrs(units="m s-1"))
    xr.testing.assert_allclose(cf, expected)
    # rough land lifts the wind more between 100 m and 140 m than smooth sea
    smooth, rough = (ph.hub_height_speed(speed, 140.0, roughness=xr.full_like(fsr, z)) for z in (1e-4, 1.0))
    assert bool((rough >= smooth).all())


def test_power_law_shear_from_u10_matches_windpowerlib(weather):
    from windpowerlib.wind_speed import hellman

    rng = np.random.default_rng(6)
    ratio = rng.uniform(0.5, 0.95, weather["u100"].shape)  # 10 m winds are weaker
    u10 = (weather["u100"] * ratio).assign_attrs(units="m s-1")
    v10 = (weather["v100"] * ratio).assign_attrs(units="m s-1")
    alpha = ph.shear_exponent_from_winds(u10, v10, weather["u100"], weather["v100"])
    s10 = np.hypot(u10, v10).values
    expected = np.where(s10 >= 0.5, np.clip(-np.log(ratio) / np.log(10.0), 0.0, 0.6), 1 / 7)  # calm: default
    np.testing.assert_allclose(alpha.values, expected, atol=1e-9)
    assert (s10 >= 0.5).mean() > 0.9
    cf = ph.wind_capacity_factor(weather["u100"], weather["v100"], hub_height=150.0, u10=u10, v10=v10)
    speeds, curve = ph.power_curve()
    for t, i, j in [(1, 2, 3), (30, 9, 9), (46, 17, 30)]:
        s100 = float(np.hypot(weather["u100"][t, i, j], weather["v100"][t, i, j]))
        hub = hellman(s100, 100.0, 150.0, hellman_exponent=float(alpha[t, i, j]))
        assert float(cf[t, i, j]) == pytest.approx(np.interp(hub, speeds, curve, right=0.0), abs=1e-6)
    calm = ph.shear_exponent_from_winds(0 * u10, 0 * v10, weather["u100"], weather["v100"])
    np.testing.assert_allclose(calm.values, 1 / 7)  # no usable profile: the default exponent
    with pytest.raises(ph.PhysicsInputError, match="both 'u10' and 'v10'"):
        ph.wind_capacity_factor(weather["u100"], weather["v100"], hub_height=150.0, u10=u10)


def test_zone_products_stay_lazy_and_match_numpy(weather, zones):
    import dask

    rng = np.random.default_rng(7)
    fsr = xr.DataArray(rng.uniform(0.001, 0.5, GRID.shape), coords=GRID.coords(), dims=("lat", "lon"),
                       attrs={"units": "m"})
    kwargs = dict(hub_height=120.0, fsr=fsr)
    eager = ph.zone_products(weather["u100"], weather["v100"], weather["ssrd"], zones, GRID, t2m=weather["t2m"],
                             **kwargs)
    chunked = {k: v.chunk(time=12) for k, v in weather.items()}
    with dask.config.set(scheduler=_NoCompute()):
        lazy = ph.zone_products(chunked["u100"], chunked["v100"], chunked["ssrd"], zones, GRID, t2m=chunked["t2m"],
                                **kwargs)
        wind = ph.wind_capacity_factor(chunked["u100"], chunked["v100"], hub_height=120.0, u10=chunked["u100"] * 0.8,
                                       v10=chunked["v100"] * 0.8)
        solar = ph.solar_capacity_factor(chunked["ssrd"], t2m=chunked["t2m"])
    for name in ("wind_cf", "solar_cf", "wind_speed", "ghi", "renewable_share"):
        assert lazy[name].chunks is not None, name
    assert wind.chunks is not None and solar.chunks is not None
    xr.testing.assert_allclose(eager, lazy.compute())
    assert eager.attrs["hub_height_extrapolation"] == "log law with roughness length fsr"


def test_capacity_weighted_masks(weather, zones):
    speed = np.hypot(weather["u100"], weather["v100"]).assign_attrs(units="m s-1")
    area = ph.capacity_masks(zones, GRID)
    xr.testing.assert_equal(area, zone_masks(zones, GRID))
    # all of zone N's wind capacity in one cell, zone S's spread over its cells in proportion 1:3
    capacity = xr.zeros_like(area.isel(zone=0, drop=True))
    north = np.argwhere(area.sel(zone="N").values > 0)
    south = np.argwhere(area.sel(zone="S").values > 0)
    capacity[tuple(north[0])] = 500.0
    capacity[tuple(south[0])] = 100.0
    capacity[tuple(south[1])] = 300.0
    masks = ph.capacity_masks(zones, GRID, capacity)
    np.testing.assert_allclose(masks.sum(("lat", "lon")).values, 1.0)
    mean = ph.zone_average(speed.rename("s"), masks)
    np.testing.assert_allclose(mean.sel(zone="N").values, speed.values[:, north[0][0], north[0][1]], rtol=1e-12)
    expected_s = 0.25 * speed.values[:, south[0][0], south[0][1]] + 0.75 * speed.values[:, south[1][0], south[1][1]]
    np.testing.assert_allclose(mean.sel(zone="S").values, expected_s, rtol=1e-12)
    # a zone whose box holds no capacity falls back to its area mask
    only_north = capacity.where(area.sel(zone="N", drop=True) > 0, 0.0)
    xr.testing.assert_allclose(ph.capacity_masks(zones, GRID, only_north).sel(zone="S"), area.sel(zone="S"))
    # zone_products weights wind by wind capacity and solar by area unless a solar map is given
    ds = ph.zone_products(weather["u100"], weather["v100"], weather["ssrd"], zones, GRID, capacity={"wind": capacity})
    np.testing.assert_allclose(ds.wind_speed.sel(zone="N").values, speed.values[:, north[0][0], north[0][1]], rtol=1e-6)
    plain = ph.zone_products(weather["u100"], weather["v100"], weather["ssrd"], zones, GRID)
    xr.testing.assert_allclose(ds.solar_cf, plain.solar_cf)
    assert ds.attrs["zone_weights"] == "wind: capacity, solar: area"
    with pytest.raises(ph.PhysicsInputError, match="'wind' or 'solar'"):
        ph.zone_products(weather["u100"], weather["v100"], weather["ssrd"], zones, GRID, capacity={"hydro": capacity})
    with pytest.raises(ph.PhysicsInputError, match=">= 0"):
        ph.capacity_masks(zones, GRID, -capacity)
    with pytest.raises(ph.PhysicsInputError, match=r"dims \(lat, lon\)"):
        ph.capacity_masks(zones, GRID, capacity.expand_dims(time=1))


def test_solar_cf_matches_pvlib_chain_pointwise(weather):
    """The vectorised kernel equals pvlib's own chain (Erbs, Hay-Davies, Faiman, PVWatts) run point by point."""
    ssrd, t2m = weather["ssrd"], weather["t2m"]
    cf = ph.solar_capacity_factor(ssrd, t2m=t2m, wind_speed=2.0)
    checked, night = 0, 0
    rng = np.random.default_rng(8)
    for t, i, j in zip(rng.integers(0, 48, 40), rng.integers(1, 18, 40), rng.integers(0, 36, 40), strict=True):
        time = pd.Timestamp(ssrd.time.values[t]) - pd.Timedelta(minutes=30)  # middle of the hour
        lat, lon = float(ssrd.lat[i]), float(ssrd.lon[j])
        zen, az = solar_position(float(time.day_of_year), time.hour + time.minute / 60, lat, lon)
        ghi = float(ssrd[t, i, j]) / 3600.0
        if zen >= 90:
            assert float(cf[t, i, j]) == 0.0
            night += 1
            continue
        dni_extra = float(pvlib.irradiance.get_extra_radiation(time.day_of_year))
        erbs = pvlib.irradiance.erbs(ghi, zen, time.day_of_year)
        tilt = float(ph.default_tilt(lat))
        azimuth = 180.0 if lat >= 0 else 0.0
        poa = pvlib.irradiance.get_total_irradiance(tilt, azimuth, zen, az, erbs["dni"], ghi, erbs["dhi"],
                                                    dni_extra=dni_extra, albedo=0.25, model="haydavies")["poa_global"]
        cell = pvlib.temperature.faiman(poa, float(t2m[t, i, j]) - 273.15, 2.0)
        pdc = pvlib.pvsystem.pvwatts_dc(poa, cell, pdc0=1.0, gamma_pdc=-0.004) * (1 - 0.14)
        pac = pvlib.inverter.pvwatts(pdc, pdc0=1.0 / 0.96, eta_inv_nom=0.96)
        assert float(cf[t, i, j]) == pytest.approx(float(np.clip(pac, 0, 1)), rel=1e-5, abs=1e-7)
        checked += 1
    assert checked >= 10 and night >= 5
