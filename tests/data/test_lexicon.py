"""The lexicon: canonical names, source aliases, unit normalisation/conversion and to_canonical."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from carbonsync.data import lexicon
from carbonsync.data.lexicon import LexiconError

# canonical -> name in (era5, arco, wb2, earth2studio)
EXPECTED_NAMES = {
    "u100": ("u100", "100m_u_component_of_wind", "100m_u_component_of_wind", "u100m"),
    "v100": ("v100", "100m_v_component_of_wind", "100m_v_component_of_wind", "v100m"),
    "u10": ("u10", "10m_u_component_of_wind", "10m_u_component_of_wind", "u10m"),
    "t2m": ("t2m", "2m_temperature", "2m_temperature", "t2m"),
    "z500": ("z", "geopotential", "geopotential", "z500"),
    "t850": ("t", "temperature", "temperature", "t850"),
    "tcc": ("tcc", "total_cloud_cover", "total_cloud_cover", "tcc"),
    "ssrd": ("ssrd", "surface_solar_radiation_downwards", "surface_solar_radiation_downwards", "ssrd"),
    "tisr": ("tisr", "toa_incident_solar_radiation", "toa_incident_solar_radiation", "tisr"),
    "msl": ("msl", "mean_sea_level_pressure", "mean_sea_level_pressure", "msl"),
}


def grid_da(values, name: str | None = None, units: str | None = None) -> xr.DataArray:
    values = np.asarray(values, dtype=np.float64)
    attrs = {} if units is None else {"units": units}
    return xr.DataArray(values, dims=("time", "lat", "lon")[-values.ndim:], name=name, attrs=attrs)


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
@pytest.mark.parametrize("i, source", list(enumerate(lexicon.SOURCES)))
def test_source_name_for_every_source(name: str, i: int, source: str) -> None:
    assert lexicon.source_name(name, source) == EXPECTED_NAMES[name][i]


@pytest.mark.parametrize("name", ["u100", "v100", "u10", "t2m", "tcc", "ssrd", "tisr", "msl"])
@pytest.mark.parametrize("i, source", list(enumerate(lexicon.SOURCES)))
def test_canonical_name_round_trips_surface_variables(name: str, i: int, source: str) -> None:
    assert lexicon.canonical_name(EXPECTED_NAMES[name][i], source) == name


def test_canonical_name_without_source_searches_all() -> None:
    assert lexicon.canonical_name("100m_u_component_of_wind") == "u100"
    assert lexicon.canonical_name("u100m") == "u100"
    assert lexicon.canonical_name("t2m") == "t2m"


def test_canonical_name_of_pressure_level_field_is_ambiguous() -> None:
    # 'geopotential' is a whole 3-D field: it is only canonical once a level is selected (to_canonical).
    with pytest.raises(LexiconError, match="'geopotential'.*no canonical name"):
        lexicon.canonical_name("geopotential", "arco")
    with pytest.raises(LexiconError, match="no canonical name"):
        lexicon.canonical_name("z500")


def test_canonical_name_unknown() -> None:
    with pytest.raises(LexiconError, match="'bogus' from source 'era5'"):
        lexicon.canonical_name("bogus", "era5")


@pytest.mark.parametrize("alias", ["msdwswrf", "mean_surface_downward_short_wave_radiation_flux"])
def test_extra_alias_flux_maps_to_ssrd(alias: str) -> None:
    assert lexicon.canonical_name(alias) == "ssrd"
    assert lexicon.EXTRA_ALIASES[alias] == ("ssrd", "W m-2")


def test_unknown_source() -> None:
    with pytest.raises(LexiconError, match="unknown source 'cmip6'"):
        lexicon.source_name("u100", "cmip6")


def test_unknown_variable_lists_known_ones() -> None:
    with pytest.raises(LexiconError) as info:
        lexicon.get("windspeed")
    msg = str(info.value)
    assert "unknown variable 'windspeed'" in msg
    for known in ("u100", "ssrd", "z500", "tcc"):
        assert known in msg
    assert not msg.startswith("'")  # not KeyError's quoted repr
    assert isinstance(info.value, KeyError)


def test_variable_attrs_are_cf() -> None:
    attrs = lexicon.get("ssrd").attrs
    assert attrs["units"] == "J m-2"
    assert attrs["standard_name"] == "surface_downwelling_shortwave_flux_in_air_accumulated"
    assert "standard_name" not in lexicon.get("tisr").attrs  # no CF standard name for it


@pytest.mark.parametrize(
    "spelling, expected",
    [("m/s", "m s-1"), ("m s**-1", "m s-1"), ("ms-1", "m s-1"), ("J/m2", "J m-2"), ("J m**-2", "J m-2"),
     ("W/m^2", "W m-2"), ("m**2 s**-2", "m2 s-2"), ("(0 - 1)", "1"), ("", "1"), ("fraction", "1"),
     (" K ", "K"), ("kelvin", "K"), ("°C", "degC"), ("furlongs", "furlongs")],
)
def test_normalise_units(spelling: str, expected: str) -> None:
    assert lexicon.normalise_units(spelling) == expected


@pytest.mark.parametrize(
    "src, dst, value, expected",
    [("W m-2", "J m-2", 100.0, 360000.0), ("J/m2", "W/m2", 7200.0, 2.0), ("degC", "K", 0.0, 273.15),
     ("hPa", "Pa", 1013.25, 101325.0), ("%", "(0 - 1)", 50.0, 0.5), ("m", "m**2 s**-2", 1.0, lexicon.GRAVITY),
     ("m s**-1", "m/s", 3.0, 3.0)],
)
def test_convert_units(src: str, dst: str, value: float, expected: float) -> None:
    out = lexicon.convert_units(xr.DataArray([value]), src, dst)
    np.testing.assert_allclose(out.values, [expected], rtol=1e-12)


def test_impossible_conversion_names_the_variable() -> None:
    with pytest.raises(LexiconError, match="variable 't2m': cannot convert units 'Pa' to 'K'"):
        lexicon.convert_units(xr.DataArray([1.0]), "Pa", "K", name="t2m")
    with pytest.raises(LexiconError, match="variable 'tcc'"):
        lexicon.convert_units(xr.DataArray([1.0], name="tcc"), "m", "1")


def test_to_canonical_renames_converts_and_sets_attrs() -> None:
    ds = xr.Dataset({
        "100m_u_component_of_wind": grid_da(np.full((2, 3, 4), 5.0), units="m s**-1"),
        "2m_temperature": grid_da(np.full((2, 3, 4), 10.0), units="degC"),
        "total_cloud_cover": grid_da(np.full((2, 3, 4), 40.0), units="%"),
    }, attrs={"history": "made in a test"})
    out = lexicon.to_canonical(ds, "arco", ["u100", "t2m", "tcc"])
    assert list(out.data_vars) == ["u100", "t2m", "tcc"]
    np.testing.assert_allclose(out["t2m"].values, 283.15, rtol=1e-6)
    np.testing.assert_allclose(out["tcc"].values, 0.4, rtol=1e-6)
    np.testing.assert_allclose(out["u100"].values, 5.0)
    for name in out.data_vars:
        assert out[name].dtype == np.float32
        assert out[name].attrs == lexicon.get(name).attrs
    assert out.attrs == {"history": "made in a test"}


def test_to_canonical_msdwswrf_flux_to_hourly_accumulation() -> None:
    # pvlib's ERA5 files carry the mean flux in W m-2; with and without a units attribute.
    flux = np.array([[[0.0, 250.0]]])
    for units in ("W m**-2", None):
        ds = xr.Dataset({"msdwswrf": grid_da(flux, units=units)})
        out = lexicon.to_canonical(ds, "era5", ["ssrd"])
        np.testing.assert_allclose(out["ssrd"].values, flux * 3600.0)
        assert out["ssrd"].attrs["units"] == "J m-2"


def test_to_canonical_selects_pressure_level() -> None:
    levels = [250, 500, 850]
    data = np.stack([np.full((2, 3, 4), 1000.0 * i) for i in (1, 5, 8)], axis=1)  # (time, level, lat, lon)
    ds = xr.Dataset({
        "geopotential": xr.DataArray(data, dims=("time", "level", "lat", "lon"), coords={"level": levels},
                                     attrs={"units": "m**2 s**-2"}),
    })
    out = lexicon.to_canonical(ds, "wb2", ["z500"])
    assert out["z500"].dims == ("time", "lat", "lon")
    assert "level" not in out["z500"].coords
    np.testing.assert_allclose(out["z500"].values, 5000.0)


def test_to_canonical_missing_level_names_the_level() -> None:
    ds = xr.Dataset({
        "z": xr.DataArray(np.zeros((1, 2, 3, 4)), dims=("time", "level", "lat", "lon"),
                          coords={"level": [250, 850]}, attrs={"units": "m2 s-2"}),
    })
    with pytest.raises(LexiconError, match=r"'z500' needs level 500 hPa of 'z'; levels: \[250, 850\]"):
        lexicon.to_canonical(ds, "era5", ["z500"])


def test_to_canonical_missing_variable_lists_dataset_variables() -> None:
    ds = xr.Dataset({"t2m": grid_da(np.zeros((1, 2, 2)), units="K")})
    with pytest.raises(LexiconError, match=r"'u100' \(called '100m_u_component_of_wind' in arco\) is missing.*t2m"):
        lexicon.to_canonical(ds, "arco", ["u100"])


def test_to_canonical_all_found_when_variables_none() -> None:
    ds = xr.Dataset({"t2m": grid_da(np.zeros((1, 2, 2)), units="K"), "not_a_variable": grid_da(np.zeros((1, 2, 2)))})
    out = lexicon.to_canonical(ds, "era5")
    assert list(out.data_vars) == ["t2m"]


def test_to_canonical_impossible_units_names_variable() -> None:
    ds = xr.Dataset({"u10": grid_da(np.zeros((1, 2, 2)), units="K")})
    with pytest.raises(LexiconError, match="variable 'u10': cannot convert units 'K' to 'm s-1'"):
        lexicon.to_canonical(ds, "era5", ["u10"])


def test_to_canonical_unknown_variable_lists_known() -> None:
    ds = xr.Dataset({"t2m": grid_da(np.zeros((1, 2, 2)), units="K")})
    with pytest.raises(LexiconError, match="unknown variable 'gust'; the lexicon knows: .*u100"):
        lexicon.to_canonical(ds, "era5", ["gust"])
