"""Global grids: latitudes north to south, longitudes 0 to 360, quadrature weights from torch-harmonics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import xarray as xr

from carbonsync.core.errors import CarbonSyncError

GRID_KINDS = ("equiangular", "legendre-gauss")


class GridError(CarbonSyncError, ValueError):
    """A dataset whose coordinates do not match the grid it is declared or expected to be on."""


@dataclass(frozen=True)
class Grid:
    """A global latitude/longitude grid as torch-harmonics lays it out.

    ``equiangular`` includes both poles (``nlat`` points from 90 to -90); ``legendre-gauss`` uses the
    Gauss nodes. Longitudes are ``nlon`` points from 0 (inclusive) to 360 (exclusive).
    """

    nlat: int
    nlon: int
    kind: str = "equiangular"

    def __post_init__(self) -> None:
        if self.kind not in GRID_KINDS:
            raise GridError(f"grid kind '{self.kind}' is not one of {GRID_KINDS}")
        if self.nlat < 3 or self.nlon < 4:
            raise GridError(f"grid {self.nlat}x{self.nlon} is too small (need nlat>=3, nlon>=4)")

    @cached_property
    def _nodes(self) -> tuple[np.ndarray, np.ndarray]:
        from torch_harmonics import quadrature

        if self.kind == "equiangular":
            cost, weights = quadrature.clenshaw_curtiss_weights(self.nlat, -1, 1)
        else:
            cost, weights = quadrature.legendre_gauss_weights(self.nlat, -1, 1)
        return cost.numpy(), weights.numpy()

    @property
    def lat(self) -> np.ndarray:
        """Latitudes in degrees, north to south (exact multiples of the spacing for equiangular grids)."""
        if self.kind == "equiangular":
            return np.linspace(90.0, -90.0, self.nlat)
        return np.rad2deg(-np.arcsin(self._nodes[0]))

    @property
    def lon(self) -> np.ndarray:
        """Longitudes in degrees east, 0 to 360 exclusive."""
        return np.arange(self.nlon) * (360.0 / self.nlon)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    def quadrature_weights(self) -> xr.DataArray:
        """Area weights per grid point (lat, lon), summing to 1 over the sphere."""
        w_lat = self._nodes[1] / self._nodes[1].sum()
        w = np.repeat(w_lat[:, None] / self.nlon, self.nlon, axis=1)
        return xr.DataArray(w, coords=self.coords(), dims=("lat", "lon"), name="area_weight")

    def coords(self) -> dict[str, xr.DataArray]:
        return {
            "lat": xr.DataArray(self.lat, dims="lat", attrs={"units": "degrees_north", "standard_name": "latitude"}),
            "lon": xr.DataArray(self.lon, dims="lon", attrs={"units": "degrees_east", "standard_name": "longitude"}),
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Grid:
        return cls(int(d["nlat"]), int(d["nlon"]), str(d.get("kind", "equiangular")))

    def attr(self) -> str:
        """The compact ``attrs['grid']`` string, e.g. ``equiangular 32x64``."""
        return f"{self.kind} {self.nlat}x{self.nlon}"

    @classmethod
    def from_attr(cls, text: str) -> Grid:
        try:
            kind, size = text.split()
            nlat, nlon = size.split("x")
            return cls(int(nlat), int(nlon), kind)
        except (ValueError, AttributeError):
            raise GridError(f"grid attribute '{text}' is not of the form '<kind> <nlat>x<nlon>'") from None

    def check(self, obj: xr.Dataset | xr.DataArray, what: str = "dataset") -> None:
        """Raise GridError unless ``obj``'s lat/lon coordinates are this grid's."""
        for dim, expected in (("lat", self.lat), ("lon", self.lon)):
            if dim not in obj.coords:
                raise GridError(f"{what} has no '{dim}' coordinate (expected grid {self.attr()})")
            got = np.asarray(obj[dim].values, dtype=float)
            if got.shape != expected.shape:
                raise GridError(
                    f"{what} has {got.size} {dim} points but grid {self.attr()} has {expected.size}"
                )
            if not np.allclose(got, expected, atol=1e-4):
                order = " (latitudes must run north to south)" if dim == "lat" and got[0] < got[-1] else ""
                raise GridError(f"{what} '{dim}' values differ from grid {self.attr()}{order}")

    @classmethod
    def infer(cls, obj: xr.Dataset | xr.DataArray) -> Grid:
        """The grid whose coordinates ``obj`` has; raises GridError if none matches."""
        nlat, nlon = obj.sizes.get("lat", 0), obj.sizes.get("lon", 0)
        errors = []
        for kind in GRID_KINDS:
            try:
                grid = cls(nlat, nlon, kind)
                grid.check(obj)
                return grid
            except GridError as err:
                errors.append(str(err))
        raise GridError("dataset is on no known global grid: " + "; ".join(errors))
