"""One model family for zone renewables: a prior (physical or published) plus a learned residual.

Adapters turn gridded weather, region-mean NWP series (DACF) or station series (GEFCom2014) into a
:class:`Design`; :class:`RenewablesModel` fits and predicts it with quantiles calibrated by lead.
"""

from carbonsync.models.renewables.design import Design, DesignError, RenewablesError
from carbonsync.models.renewables.learners import LEARNERS, Learner, build_learner, register_learner
from carbonsync.models.renewables.model import (
    RenewablesConfig,
    RenewablesModel,
    monthly_origins,
    rmse,
    rolling_origin,
    select,
)

__all__ = [
    "Design",
    "DesignError",
    "LEARNERS",
    "Learner",
    "RenewablesConfig",
    "RenewablesError",
    "RenewablesModel",
    "build_learner",
    "monthly_origins",
    "register_learner",
    "rmse",
    "rolling_origin",
    "select",
]
