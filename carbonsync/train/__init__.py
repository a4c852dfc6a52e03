"""Training: the backbone, the irradiance diagnostic and the regional head, spherical losses, checkpoints
(tensors only, resumed only when model and recipe match) and experiment tracking that never fails a run.
"""

from carbonsync.train.backbone import BackboneModelConfig, BackboneTrainConfig, train_backbone
from carbonsync.train.common import Checkpointer, CheckpointError, LoggingConfig, Tracker, TrainingError, TrainSettings
from carbonsync.train.head import HeadModelConfig, HeadTrainConfig, train_head
from carbonsync.train.irradiance import IrradianceModelConfig, IrradianceTrainConfig, train_irradiance
from carbonsync.train.losses import SphericalMSE, pinball_loss, relative_l2, spherical_l2

__all__ = [
    "BackboneModelConfig",
    "BackboneTrainConfig",
    "CheckpointError",
    "Checkpointer",
    "HeadModelConfig",
    "HeadTrainConfig",
    "IrradianceModelConfig",
    "IrradianceTrainConfig",
    "LoggingConfig",
    "SphericalMSE",
    "Tracker",
    "TrainSettings",
    "TrainingError",
    "pinball_loss",
    "relative_l2",
    "spherical_l2",
    "train_backbone",
    "train_head",
    "train_irradiance",
]
