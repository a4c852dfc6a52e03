"""Models: the SFNO backbone, the AFNO irradiance diagnostic, the regional head, the station and renewable-share
models, the inputs they are built from, and model packages (what training writes and inference loads).

The names below are the public API; each loads its module on first use (``carbonsync.models.X`` does not
import every model, so ``import carbonsync.models.inputs`` stays light).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it
_API = {
    # packages: saving, loading, verifying
    "ModelPackage": "package", "PackageError": "package", "load_package": "package", "save_package": "package",
    "verify_package": "package", "package_hash": "package", "register_model_class": "package",
    # backbone and irradiance diagnostic
    "SFNO": "sfno", "SFNOConfig": "sfno",
    "AFNOConfig": "afno", "AFNODiagnostic": "afno", "IrradianceDiagnostic": "afno",
    # inputs computed from time and grid
    "FORCINGS": "inputs", "backbone_forcing": "inputs", "zenith_forcing": "inputs", "irradiance_inputs": "inputs",
    "interpolation_weights": "inputs", "hour_state_weights": "inputs",
    # regional head
    "RegionalHead": "head", "HeadFeatures": "head", "HeadOutput": "head", "fit_head": "head", "predict": "head",
    "build_head_features": "head", "calibrate_band": "head", "quantile_coverage": "head",
    # station and renewable-share models
    "StationModel": "station", "StationFeatures": "station", "fit_station_model": "station",
    "RenewableShareModel": "share", "ShareModelConfig": "share", "ShareEnsemble": "share",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'carbonsync.models' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"carbonsync.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
