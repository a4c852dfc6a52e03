"""Models: the SFNO backbone, the AFNO irradiance diagnostic, the regional head, the station model, the
renewables model family (:mod:`carbonsync.models.renewables`), the inputs they are built from, and model
packages (what training writes and inference loads).

The names below are the public API.
"""

from carbonsync.models.afno import AFNOConfig, AFNODiagnostic, IrradianceDiagnostic
from carbonsync.models.head import RenewablesHead, build_head_design, fit_head, physical_products, predict
from carbonsync.models.inputs import (
    FORCINGS,
    backbone_forcing,
    hour_state_weights,
    interpolation_weights,
    irradiance_inputs,
    zenith_forcing,
)
from carbonsync.models.package import (
    ModelPackage,
    PackageError,
    load_package,
    package_hash,
    register_model_class,
    save_package,
    verify_package,
)
from carbonsync.models.sfno import SFNO, SFNOConfig
from carbonsync.models.station import StationFeatures, solar_features, wind_features

__all__ = [
    "AFNOConfig",
    "AFNODiagnostic",
    "FORCINGS",
    "IrradianceDiagnostic",
    "ModelPackage",
    "PackageError",
    "RenewablesHead",
    "SFNO",
    "SFNOConfig",
    "StationFeatures",
    "backbone_forcing",
    "build_head_design",
    "fit_head",
    "hour_state_weights",
    "interpolation_weights",
    "irradiance_inputs",
    "load_package",
    "package_hash",
    "physical_products",
    "predict",
    "register_model_class",
    "save_package",
    "solar_features",
    "verify_package",
    "wind_features",
    "zenith_forcing",
]
