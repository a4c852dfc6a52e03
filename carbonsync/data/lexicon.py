"""The lexicon: one canonical name, unit and CF description per variable, and how other sources call it.

Sources:
- ``era5``: ECMWF/CDS short names as found in ERA5 NetCDF/GRIB downloads (``u100``, ``ssrd``, ``z`` ...).
- ``arco``: Google's ARCO-ERA5 Zarr (``100m_u_component_of_wind``; pressure levels on a ``level`` dim).
- ``wb2``: WeatherBench2 Zarr (same long names as ARCO).
- ``earth2studio``: earth2studio's lexicon (``u100m``, ``z500`` ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from carbonsync.core.errors import CarbonSyncError

SOURCES = ("era5", "arco", "wb2", "earth2studio")
GRAVITY = 9.80665  # m s-2, WMO standard gravity used by ECMWF


class LexiconError(CarbonSyncError, KeyError):
    """A variable name or unit the lexicon does not know."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class Variable:
    """A canonical variable: name, CF description and its names in other sources."""

    name: str
    long_name: str
    units: str
    standard_name: str | None = None
    level_hpa: int | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    valid_range: tuple[float, float] | None = None

    @property
    def attrs(self) -> dict[str, str]:
        attrs = {"long_name": self.long_name, "units": self.units}
        if self.standard_name:
            attrs["standard_name"] = self.standard_name
        return attrs


def _long(name: str, arco: str, e2s: str | None = None, era5: str | None = None) -> dict[str, str]:
    return {"era5": era5 or name, "arco": arco, "wb2": arco, "earth2studio": e2s or name}


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in [
        Variable("u100", "100 metre U wind component", "m s-1", "eastward_wind",
                 aliases=_long("u100", "100m_u_component_of_wind", "u100m"), valid_range=(-150, 150)),
        Variable("v100", "100 metre V wind component", "m s-1", "northward_wind",
                 aliases=_long("v100", "100m_v_component_of_wind", "v100m"), valid_range=(-150, 150)),
        Variable("u10", "10 metre U wind component", "m s-1", "eastward_wind",
                 aliases=_long("u10", "10m_u_component_of_wind", "u10m"), valid_range=(-150, 150)),
        Variable("v10", "10 metre V wind component", "m s-1", "northward_wind",
                 aliases=_long("v10", "10m_v_component_of_wind", "v10m"), valid_range=(-150, 150)),
        Variable("t2m", "2 metre temperature", "K", "air_temperature",
                 aliases=_long("t2m", "2m_temperature"), valid_range=(150, 350)),
        Variable("z500", "Geopotential at 500 hPa", "m2 s-2", "geopotential", level_hpa=500,
                 aliases=_long("z", "geopotential", "z500", era5="z"), valid_range=(3e4, 7e4)),
        Variable("t850", "Temperature at 850 hPa", "K", "air_temperature", level_hpa=850,
                 aliases=_long("t", "temperature", "t850", era5="t"), valid_range=(150, 350)),
        Variable("tcc", "Total cloud cover", "1", "cloud_area_fraction",
                 aliases=_long("tcc", "total_cloud_cover"), valid_range=(0, 1)),
        Variable("ssrd", "Surface short-wave (solar) radiation downwards, hourly accumulation", "J m-2",
                 "surface_downwelling_shortwave_flux_in_air_accumulated",
                 aliases=_long("ssrd", "surface_solar_radiation_downwards"), valid_range=(0, 5e6)),
        Variable("tisr", "TOA incident solar radiation, hourly accumulation", "J m-2",
                 aliases=_long("tisr", "toa_incident_solar_radiation"), valid_range=(0, 5.5e6)),
        Variable("sp", "Surface pressure", "Pa", "surface_air_pressure",
                 aliases=_long("sp", "surface_pressure"), valid_range=(4e4, 1.1e5)),
        Variable("msl", "Mean sea level pressure", "Pa", "air_pressure_at_mean_sea_level",
                 aliases=_long("msl", "mean_sea_level_pressure"), valid_range=(8e4, 1.1e5)),
        Variable("fsr", "Forecast surface roughness", "m", "surface_roughness_length",
                 aliases=_long("fsr", "forecast_surface_roughness"), valid_range=(0, 10)),
        Variable("zs", "Geopotential at the surface (orography)", "m2 s-2", "surface_geopotential",
                 aliases=_long("z", "geopotential_at_surface", "z"), valid_range=(-1e4, 1e5)),
        Variable("lsm", "Land-sea mask", "1", "land_binary_mask",
                 aliases=_long("lsm", "land_sea_mask", "lsm"), valid_range=(0, 1)),
    ]
}

# Other names seen in the wild for the same quantity, with the unit they come in.
EXTRA_ALIASES: dict[str, tuple[str, str]] = {
    "msdwswrf": ("ssrd", "W m-2"),  # mean surface downward short-wave radiation flux (pvlib's ERA5 file)
    "mean_surface_downward_short_wave_radiation_flux": ("ssrd", "W m-2"),
    "u100m": ("u100", "m s-1"),
    "v100m": ("v100", "m s-1"),
    "u10m": ("u10", "m s-1"),
    "v10m": ("v10", "m s-1"),
}

_UNIT_SYNONYMS = {
    "m/s": "m s-1", "m s**-1": "m s-1", "ms-1": "m s-1",
    "J/m2": "J m-2", "J m**-2": "J m-2", "J/m^2": "J m-2",
    "W/m2": "W m-2", "W m**-2": "W m-2", "W/m^2": "W m-2",
    "m**2 s**-2": "m2 s-2", "m^2/s^2": "m2 s-2", "m2/s2": "m2 s-2",
    "(0 - 1)": "1", "0-1": "1", "fraction": "1", "": "1", "dimensionless": "1",
    "degC": "degC", "°C": "degC", "C": "degC", "K": "K", "Pa": "Pa", "hPa": "hPa", "%": "%", "m": "m",
    "kelvin": "K",
}

# (from, to) -> converter; ssrd in W m-2 is a mean flux over the hour, J m-2 its hourly accumulation.
_CONVERTERS: dict[tuple[str, str], Callable[[xr.DataArray], xr.DataArray]] = {
    ("W m-2", "J m-2"): lambda x: x * 3600.0,
    ("J m-2", "W m-2"): lambda x: x / 3600.0,
    ("degC", "K"): lambda x: x + 273.15,
    ("hPa", "Pa"): lambda x: x * 100.0,
    ("%", "1"): lambda x: x / 100.0,
    ("m", "m2 s-2"): lambda x: x * GRAVITY,
}


def normalise_units(units: str) -> str:
    """Map spellings such as ``m s**-1`` or ``J/m2`` to one CF form; unknown spellings pass unchanged."""
    return _UNIT_SYNONYMS.get(units.strip(), units.strip())


def get(name: str) -> Variable:
    """The canonical variable ``name``; raises LexiconError naming the unknown variable."""
    try:
        return VARIABLES[name]
    except KeyError:
        raise LexiconError(
            f"unknown variable '{name}'; the lexicon knows: {', '.join(sorted(VARIABLES))}"
        ) from None


def source_name(name: str, source: str) -> str:
    """The name that ``source`` uses for canonical variable ``name``."""
    if source not in SOURCES:
        raise LexiconError(f"unknown source '{source}'; expected one of {SOURCES}")
    return get(name).aliases[source]


def canonical_name(source_var: str, source: str | None = None) -> str:
    """The canonical name of a variable called ``source_var`` in ``source`` (any source when None)."""
    if source_var in VARIABLES and VARIABLES[source_var].level_hpa is None:
        return source_var
    if source_var in EXTRA_ALIASES:
        return EXTRA_ALIASES[source_var][0]
    sources = [source] if source else list(SOURCES)
    matches = {
        v.name for v in VARIABLES.values() for s in sources
        if v.aliases.get(s) == source_var and v.level_hpa is None
    }
    if len(matches) == 1:
        return matches.pop()
    raise LexiconError(f"variable '{source_var}' from source '{source or 'any'}' has no canonical name")


def convert_units(da: xr.DataArray, units: str, target: str, name: str = "") -> xr.DataArray:
    """Convert ``da`` from ``units`` to ``target``; an impossible conversion names the variable."""
    src, dst = normalise_units(units), normalise_units(target)
    if src == dst:
        return da
    try:
        return _CONVERTERS[(src, dst)](da)
    except KeyError:
        raise LexiconError(
            f"variable '{name or da.name}': cannot convert units '{units}' to '{target}'"
        ) from None


def to_canonical(
    ds: xr.Dataset,
    source: str,
    variables: Iterable[str] | None = None,
    level_dim: str = "level",
) -> xr.Dataset:
    """Rename ``ds`` from ``source`` names to canonical ones, select pressure levels and convert units.

    Only the requested canonical ``variables`` are returned (all that can be found when None). Units are
    read from each variable's ``units`` attribute; a variable without one is assumed to be in canonical
    units already.
    """
    wanted = list(variables) if variables is not None else list(VARIABLES)
    out: dict[str, xr.DataArray] = {}
    for name in wanted:
        var = get(name)
        candidates = [var.aliases.get(source, name)] if source in SOURCES else []
        candidates += [name] + [k for k, (canon, _) in EXTRA_ALIASES.items() if canon == name]
        found = next((c for c in candidates if c in ds.data_vars), None)
        if found is None:
            if variables is None:
                continue
            raise LexiconError(
                f"variable '{name}' (called '{candidates[0]}' in {source}) is missing; "
                f"the dataset has: {', '.join(map(str, ds.data_vars))}"
            )
        da = ds[found]
        if var.level_hpa is not None and level_dim in da.dims:
            levels = da[level_dim].values
            if var.level_hpa not in levels:
                raise LexiconError(
                    f"variable '{name}' needs level {var.level_hpa} hPa of '{found}'; levels: {levels.tolist()}"
                )
            da = da.sel({level_dim: var.level_hpa}, drop=True)
        elif var.level_hpa is None and level_dim in da.dims:
            continue
        units = da.attrs.get("units", EXTRA_ALIASES.get(found, (name, var.units))[1])
        da = convert_units(da, units, var.units, name=name)
        out[name] = da.astype(np.float32).rename(name).assign_attrs(var.attrs)
    return xr.Dataset(out, attrs=dict(ds.attrs))
