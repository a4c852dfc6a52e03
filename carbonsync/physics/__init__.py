"""The physics leaf: grids and their quadrature, solar geometry, zones, wind and PV capacity factors and the
zone products (renewable share, carbon intensity). Imports nothing of CarbonSync but :mod:`carbonsync.core`.

- :mod:`~carbonsync.physics.grid`: :class:`Grid` (torch-harmonics layouts, quadrature weights)
- :mod:`~carbonsync.physics.solar`: solar position, hour-mean cos zenith, top-of-atmosphere and clear-sky sun
- :mod:`~carbonsync.physics.zones`: :class:`Zone` definitions, YAML loading, grid masks
- :mod:`~carbonsync.physics.renewables`: power curves, the PVWatts chain, zone averages and products
- :mod:`~carbonsync.physics.carbon`: carbon intensity from generation by fuel (direct and lifecycle factors)
"""

from carbonsync.physics.carbon import EMISSION_FACTORS, CarbonInputError, carbon_intensity, fuel_of
from carbonsync.physics.grid import Grid, GridError
from carbonsync.physics.renewables import (
    PhysicsInputError,
    capacity_masks,
    hub_height_speed,
    power_curve,
    renewable_share,
    solar_capacity_factor,
    wind_capacity_factor,
    zone_average,
    zone_products,
)
from carbonsync.physics.solar import clear_sky_hourly, cos_zenith, hourly_mean_cos_zenith, solar_position, toa_hourly
from carbonsync.physics.zones import Zone, ZoneError, load_zones, zone_masks, zones_to_dicts

__all__ = [
    "EMISSION_FACTORS", "CarbonInputError", "carbon_intensity", "fuel_of",
    "Grid", "GridError", "PhysicsInputError", "Zone", "ZoneError", "capacity_masks", "clear_sky_hourly", "cos_zenith",
    "hourly_mean_cos_zenith", "hub_height_speed", "load_zones", "power_curve", "renewable_share",
    "solar_capacity_factor", "solar_position", "toa_hourly", "wind_capacity_factor", "zone_average", "zone_masks",
    "zone_products", "zones_to_dicts",
]
