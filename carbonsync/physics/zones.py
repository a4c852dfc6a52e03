"""Grid zones: named regions with installed wind and solar capacity and a demand profile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from carbonsync.core.errors import CarbonSyncError
from carbonsync.physics.grid import Grid


class ZoneError(CarbonSyncError, ValueError):
    """A zone definition that is incomplete or inconsistent."""


@dataclass(frozen=True)
class Zone:
    """A zone: a lat/lon box (``lon`` in 0..360, may wrap past 360) and its renewable fleet.

    ``demand_mw`` is the mean demand; the hourly profile is built from it (see ``demand_profile``).
    ``fossil_intensity`` is the carbon intensity of the non-renewable remainder in gCO2eq/kWh.
    """

    id: str
    name: str
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    wind_capacity_mw: float
    solar_capacity_mw: float
    demand_mw: float
    fossil_intensity: float = 450.0
    utc_offset_h: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not -90 <= self.lat_min < self.lat_max <= 90:
            raise ZoneError(f"zone '{self.id}': need -90 <= lat_min < lat_max <= 90, got {self.lat_min}, {self.lat_max}")
        if self.lon_min >= self.lon_max or self.lon_max - self.lon_min > 360:
            raise ZoneError(f"zone '{self.id}': need lon_min < lon_max within 360 degrees, got {self.lon_min}, {self.lon_max}")
        for key in ("wind_capacity_mw", "solar_capacity_mw", "demand_mw"):
            if getattr(self, key) < 0:
                raise ZoneError(f"zone '{self.id}': {key} must be >= 0, got {getattr(self, key)}")
        if self.demand_mw <= 0:
            raise ZoneError(f"zone '{self.id}': demand_mw must be > 0")

    def mask(self, grid: Grid) -> xr.DataArray:
        """Area weights of the grid cells inside the zone, normalised to sum to 1."""
        lat, lon = grid.lat[:, None], grid.lon[None, :]
        lon_rel = (lon - self.lon_min) % 360.0
        inside = (lat >= self.lat_min) & (lat <= self.lat_max) & (lon_rel <= self.lon_max - self.lon_min)
        weights = grid.quadrature_weights().values * inside
        if weights.sum() == 0:
            raise ZoneError(f"zone '{self.id}' covers no cell of grid {grid.attr()}; widen its box")
        return xr.DataArray(weights / weights.sum(), coords=grid.coords(), dims=("lat", "lon"))

    def demand_profile(self, times: np.ndarray) -> np.ndarray:
        """Hourly demand (MW): a daily double peak in local time and a weekday/weekend cycle."""
        t = xr.DataArray(np.asarray(times, dtype="datetime64[ns]"), dims="time")
        local_hour = (t.dt.hour + t.dt.minute / 60.0 + self.utc_offset_h) % 24
        daily = 1.0 + 0.12 * np.cos(2 * np.pi * (local_hour - 19) / 24) + 0.06 * np.cos(4 * np.pi * (local_hour - 11) / 24)
        weekend = np.where(t.dt.dayofweek >= 5, 0.9, 1.0)
        return (self.demand_mw * daily * weekend).values.astype(np.float64)


def load_zones(source: str | Path | Sequence[dict]) -> list[Zone]:
    """Zones from a YAML file (a list under ``zones:``) or from a list of dicts."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ZoneError(f"zone file '{path}' does not exist")
        doc = yaml.safe_load(path.read_text()) or {}
        items = doc.get("zones") if isinstance(doc, dict) else doc
        where = f"zone file '{path}'"
    else:
        items, where = list(source), "zone list"
    if not items:
        raise ZoneError(f"{where} defines no zones")
    zones = []
    for i, item in enumerate(items):
        item = dict(item)
        try:
            zones.append(Zone(**item))
        except TypeError as err:
            raise ZoneError(f"{where}, entry {i} ({item.get('id', '?')}): {err}") from None
    ids = [z.id for z in zones]
    if len(set(ids)) != len(ids):
        raise ZoneError(f"{where}: duplicated zone ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return zones


def zone_masks(zones: Sequence[Zone], grid: Grid) -> xr.DataArray:
    """Stacked masks ``(zone, lat, lon)``; a fresh copy of the masks cached per (zones, grid)."""
    return _stacked_masks(tuple(zones), grid).copy(deep=True)


@lru_cache(maxsize=32)
def _stacked_masks(zones: tuple[Zone, ...], grid: Grid) -> xr.DataArray:
    """The masks of :func:`zone_masks`, keyed on the frozen zones' and grid's fields; never handed out as is."""
    masks = xr.concat([z.mask(grid) for z in zones], dim="zone")
    masks = masks.assign_coords(zone=[z.id for z in zones])
    masks.values.setflags(write=False)
    return masks


def zones_to_dicts(zones: Sequence[Zone]) -> list[dict]:
    return [asdict(z) for z in zones]
