"""The physics leaf: grids and their quadrature, solar geometry, zones, wind and PV capacity factors and the
zone products (renewable share, carbon intensity). Imports nothing of CarbonSync but :mod:`carbonsync.core`.

- :mod:`~carbonsync.physics.grid`: :class:`Grid` (torch-harmonics layouts, quadrature weights)
- :mod:`~carbonsync.physics.solar`: solar position, hour-mean cos zenith, top-of-atmosphere and clear-sky sun
- :mod:`~carbonsync.physics.zones`: :class:`Zone` definitions, YAML loading, grid masks
- :mod:`~carbonsync.physics.renewables`: power curves, the PVWatts chain, zone averages and products
"""
