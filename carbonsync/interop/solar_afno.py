"""Hourly irradiance diagnostics behind one protocol: ours (a model package) and earth2studio's SolarRadiationAFNO1H.

A :class:`SsrdDiagnostic` maps hourly weather (an ``xarray.Dataset`` with dims ``(time, lat, lon)`` in
physical units) to ``ssrd``: J m-2 accumulated over the hour ending at each time label, as ERA5 labels it.

- :class:`PackageSsrd` runs a CarbonSync irradiance package (:mod:`carbonsync.models.afno`) on the
  package's channels in the middle of each hour, computing the sun itself.
- :class:`SolarAFNO1H` runs NVIDIA's pretrained ``SolarRadiationAFNO1H`` from earth2studio on its 24
  ERA5 channels at 0.25 degrees (721 x 1440). It needs earth2studio's ``solarradiation-afno`` extra
  (physicsnemo) and downloads its weights from NGC on first use; neither is part of the test environment,
  so it is imported lazily and a missing dependency raises an ImportError naming what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
import xarray as xr

from carbonsync.core.optional import optional_import
from carbonsync.data import lexicon
from carbonsync.data.validation import WeatherDataError
from carbonsync.interop.earth2studio import canonical_names
from carbonsync.models.inputs import irradiance_inputs
from carbonsync.models.package import ModelPackage, load_package
from carbonsync.physics.grid import Grid

__all__ = ["SsrdDiagnostic", "PackageSsrd", "SolarAFNO1H", "EXTRA", "solar_afno_available"]

EXTRA = "solar-afno"  # carbonsync extra: earth2studio[solarradiation-afno] (physicsnemo)
INSTALL = f"pip install 'carbonsync[{EXTRA}]' (earth2studio's 'solarradiation-afno' extra: nvidia-physicsnemo)"


@runtime_checkable
class SsrdDiagnostic(Protocol):
    """Hourly weather ``(time, lat, lon)`` in physical units → hourly ``ssrd`` (J m-2, hour ending at the label)."""

    @property
    def variables(self) -> list[str]:
        """Names of the input variables the diagnostic reads from the weather dataset."""
        ...

    def __call__(self, weather: xr.Dataset) -> xr.DataArray: ...


def _ssrd_dataarray(values: np.ndarray, times: Any, lat: np.ndarray, lon: np.ndarray, source: str) -> xr.DataArray:
    attrs = {**lexicon.get("ssrd").attrs, "diagnostic": source}
    return xr.DataArray(values.astype(np.float32), name="ssrd", dims=("time", "lat", "lon"),
                        coords={"time": np.asarray(times, dtype="datetime64[ns]"), "lat": lat, "lon": lon}, attrs=attrs)


class PackageSsrd:
    """A CarbonSync irradiance package (``packages/irradiance``) as an :class:`SsrdDiagnostic`."""

    def __init__(self, package: Any, batch: int = 24) -> None:

        self.package: ModelPackage = package if isinstance(package, ModelPackage) else load_package(Path(package))
        if self.package.kind != "afno":
            raise ValueError(f"package '{self.package.path}' is a '{self.package.kind}' model, not an irradiance AFNO")
        self.batch = batch

    @property
    def variables(self) -> list[str]:
        return list(self.package.metadata["channels"])

    @torch.no_grad()
    def __call__(self, weather: xr.Dataset) -> xr.DataArray:
        missing = [v for v in self.variables if v not in weather.data_vars]
        if missing:
            have = sorted(map(str, weather.data_vars))
            raise WeatherDataError(f"the irradiance package needs {missing}; the weather has {have}")
        grid = Grid.infer(weather)
        self.package.check_compatible(self.variables, grid)
        times = pd.DatetimeIndex(weather["time"].values)
        model = self.package.model.eval()
        # the model sees the middle of each accumulation hour: the mean of the states at the label and one
        # hour before it, where the weather has that hour (else the state at the label)
        here = np.arange(len(times))
        before = times.get_indexer(times - pd.Timedelta(hours=1))
        before = np.where(before >= 0, before, here)
        fields = weather[self.variables].to_array("channel").transpose("time", "channel", "lat", "lon")
        out = []
        for start in range(0, len(times), self.batch):
            sl = slice(start, start + self.batch)
            values = 0.5 * (fields.isel(time=here[sl]).values + fields.isel(time=before[sl]).values)
            x = self.package.normalise(torch.from_numpy(values.astype(np.float32)))
            cosz, clear = irradiance_inputs(times[sl], grid)
            out.append(model(x, clear, cosz)[:, 0].numpy())
        return _ssrd_dataarray(np.concatenate(out), times, grid.lat, grid.lon, f"carbonsync package {self.package.path}")


def solar_afno_available() -> tuple[bool, str]:
    """Whether :class:`SolarAFNO1H` can run here, and if not, why (the message names what to install)."""
    try:
        _solar_afno_class()
    except ImportError as err:
        return False, str(err)
    return True, "earth2studio SolarRadiationAFNO1H and physicsnemo are importable"


def _solar_afno_class() -> type:
    # find_spec first: importing earth2studio's model zoo takes many seconds, pointless without physicsnemo
    missing = [m for m in ("earth2studio", "physicsnemo") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"earth2studio's SolarRadiationAFNO1H cannot run here (missing {', '.join(missing)}): {INSTALL}")
    dx = optional_import("earth2studio.models.dx", "earth2studio")
    try:
        importlib.import_module("earth2studio.models.nn.afno_ssrd")  # the network itself (physicsnemo, torchvision)
    except ImportError as err:
        raise ImportError(f"earth2studio's SolarRadiationAFNO1H cannot run here ({err}): {INSTALL}") from err
    return dx.SolarRadiationAFNO1H


class SolarAFNO1H:
    """earth2studio's ``SolarRadiationAFNO1H`` (NVIDIA, ERA5-trained) as an :class:`SsrdDiagnostic`.

    ``weather`` holds the model's 24 input variables (earth2studio names such as ``t2m``, ``sp``, ``tcwv``,
    ``z500``, ``q850``; CarbonSync canonical names are accepted where the lexicon maps them) on the 0.25
    degree grid, latitude 90 to -90 and longitude 0 to 359.75. The model computes the sun itself. ``model``
    is a loaded earth2studio model; by default the pretrained package is fetched (network access, ~GB).
    """

    def __init__(self, model: Any | None = None, device: str = "cpu") -> None:
        cls = _solar_afno_class()
        if model is None:
            model = cls.load_model(cls.load_default_package())
        self.model = model.to(device)
        self.device = device

    @property
    def variables(self) -> list[str]:
        return [str(v) for v in self.model.input_coords()["variable"]]

    def _field(self, weather: xr.Dataset, name: str) -> xr.DataArray:
        if name in weather.data_vars:
            return weather[name]

        canonical = canonical_names([name])[0]
        if canonical in weather.data_vars:
            return weather[canonical]
        raise WeatherDataError(f"SolarRadiationAFNO1H needs '{name}'; the weather has {sorted(map(str, weather.data_vars))}")

    @torch.no_grad()
    def __call__(self, weather: xr.Dataset) -> xr.DataArray:
        expected = self.model.input_coords()
        lat, lon = weather["lat"].values, weather["lon"].values
        if lat.shape != expected["lat"].shape or not np.allclose(lat, expected["lat"]) or \
                lon.shape != expected["lon"].shape or not np.allclose(lon, expected["lon"]):
            raise WeatherDataError(
                f"SolarRadiationAFNO1H runs on its 0.25 degree grid ({expected['lat'].size}x{expected['lon'].size}); "
                f"the weather is {lat.size}x{lon.size}: regrid it first"
            )
        fields = [self._field(weather, v).transpose("time", "lat", "lon").values for v in self.variables]
        x = torch.as_tensor(np.stack(fields, axis=1)[:, None], dtype=torch.float32, device=self.device)
        coords = OrderedDict({
            "time": np.asarray(weather["time"].values, dtype="datetime64[ns]"),
            "lead_time": np.array([np.timedelta64(0, "h")]),
            "variable": np.array(self.variables),
            "lat": expected["lat"], "lon": expected["lon"],
        })
        out, _ = self.model(x, coords)
        values = out.reshape(len(coords["time"]), len(lat), len(lon)).cpu().numpy()
        return _ssrd_dataarray(values, coords["time"], lat, lon, "earth2studio SolarRadiationAFNO1H")
