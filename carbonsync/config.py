"""Typed Hydra configuration: compose ``configs/pipeline.yaml`` with command-line overrides and validate it.

The schema is :class:`PipelineConfig`, assembled from the dataclass each library package defines for the
node it consumes (one place for every default and its documentation):

    data         carbonsync.data.config       SampleWorldDataConfig | ERA5DataConfig (+ Splits)
    backbone     carbonsync.train.backbone    BackboneModelConfig       train.backbone    BackboneTrainConfig
    irradiance   carbonsync.train.irradiance  IrradianceModelConfig     train.irradiance  IrradianceTrainConfig
    head         carbonsync.train.head        HeadModelConfig           train.head        HeadTrainConfig
    train        carbonsync.train.common      TrainSettings (seed, device, threads)
    forecast     carbonsync.forecast.config   ForecastConfig (+ ExportConfig)
    placement    carbonsync.placement.config  PlacementConfig (+ WeightsConfig)
    evaluate     carbonsync.evaluate.skill    EvaluateConfig
    logging      carbonsync.train.common      LoggingConfig
    control      carbonsync.control.config    ControlConfig (+ SignalSpec for price and carbon)

The schemas are registered in Hydra's ConfigStore (``pipeline_schema``, ``data/sample_world_schema``,
``data/era5_schema``); the YAML files under ``configs/`` hold only the group choices and the values that
differ from the dataclasses. An unknown key, a value of the wrong type or out of range fails in
:func:`compose` with a :class:`ConfigError` naming the key (``train.backbone.epochs=-1: must be >= 1``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from carbonsync.control.config import ControlConfig
from carbonsync.core.errors import ConfigError
from carbonsync.core.fs import atomic_path
from carbonsync.core.settings import config_dir
from carbonsync.data.config import DataConfig, ERA5DataConfig, SampleWorldDataConfig
from carbonsync.evaluate.skill import EvaluateConfig
from carbonsync.forecast.config import ForecastConfig
from carbonsync.placement.config import PlacementConfig
from carbonsync.serve.config import ServeConfig
from carbonsync.train.backbone import BackboneModelConfig, BackboneTrainConfig
from carbonsync.train.common import LoggingConfig, TrainSettings
from carbonsync.train.head import HeadModelConfig, HeadTrainConfig
from carbonsync.train.irradiance import IrradianceModelConfig, IrradianceTrainConfig


@dataclass
class TrainConfig(TrainSettings):
    """The ``train`` node: settings shared by every training stage and one node per stage."""

    backbone: BackboneTrainConfig = field(default_factory=BackboneTrainConfig)
    irradiance: IrradianceTrainConfig = field(default_factory=IrradianceTrainConfig)
    head: HeadTrainConfig = field(default_factory=HeadTrainConfig)


@dataclass
class PipelineConfig:
    """The whole configuration of a run (``configs/pipeline.yaml``)."""

    data: DataConfig = MISSING                 # group data/: sample_world, era5_arco, era5_wb2
    backbone: BackboneModelConfig = MISSING    # group model@backbone: sfno_e32_l4
    irradiance: IrradianceModelConfig = MISSING  # group model@irradiance: afno_p4_e64
    head: HeadModelConfig = field(default_factory=HeadModelConfig)  # group model@head: head_renewables
    train: TrainConfig = field(default_factory=TrainConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)  # group logging/: none, wandb_offline
    control: ControlConfig = field(default_factory=ControlConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    run_dir: str = "outputs/main"
    config_dir: str = MISSING  # filled in by compose with the config tree's location
    progress: bool = True
    plots: bool = True

    def __post_init__(self) -> None:
        for name in ("data", "backbone", "irradiance"):
            if getattr(self, name) == MISSING:
                raise ConfigError(f"{name}: missing value (choose it in the defaults list, e.g. data=sample_world)")
        channels = list(self.backbone.channels)
        unknown = sorted(set(self.train.backbone.channel_weight_scale) - set(channels))
        if unknown:
            raise ConfigError(f"train.backbone.channel_weight_scale names {unknown}, which are not backbone channels "
                              f"{channels} (backbone.channels)")
        weights = self.train.backbone.channel_weights
        if isinstance(weights, (list, tuple)) and len(weights) != len(channels):
            raise ConfigError(f"train.backbone.channel_weights has {len(weights)} values for the {len(channels)} "
                              f"backbone channels {channels}")
        dt = int(self.backbone.dt_hours)
        for name in ("every_hours", "max_lead_hours"):
            value = getattr(self.evaluate, name)
            if value % dt:
                raise ConfigError(f"evaluate.{name}={value}: must be a multiple of the backbone step "
                                  f"(backbone.dt_hours={dt})")


DATA_SCHEMAS: dict[str, type[DataConfig]] = {
    "sample_world": SampleWorldDataConfig, "era5_arco": ERA5DataConfig, "era5_wb2": ERA5DataConfig}


def register() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="pipeline_schema", node=PipelineConfig)
    store.store(group="data", name="sample_world_schema", node=SampleWorldDataConfig)
    store.store(group="data", name="era5_schema", node=ERA5DataConfig)


# ------------------------------------------------------------------------------------------ errors


def _omegaconf_cause(err: BaseException) -> OmegaConfBaseException | None:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OmegaConfBaseException):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _fields_of(object_type: Any) -> str:
    if isinstance(object_type, type) and dataclasses.is_dataclass(object_type):
        return f"; {object_type.__name__} has: {', '.join(f.name for f in dataclasses.fields(object_type))}"
    return ""


def config_error_message(err: BaseException) -> str:
    """One line naming the key for a Hydra composition or OmegaConf error."""
    text = str(err)
    override = re.search(r"override '([^']+)'|override (\S+?)=", text)
    override_key = next((g for g in override.groups() if g), None) if override else None
    cause = _omegaconf_cause(err)
    if cause is None:
        return " ".join(text.split("Config search path")[0].split())
    reason = str(getattr(cause, "msg", None) or cause).strip().split("\n")[0].strip() or type(cause).__name__
    key = getattr(cause, "full_key", None) or override_key
    if re.search(r"not in '|is not in struct", reason):
        key = override_key or key
        return f"{key}: unknown key{_fields_of(getattr(cause, 'object_type', None))}"
    if re.search(r"missing mandatory value", reason, re.IGNORECASE):
        return f"{key}: missing value (??? in the configuration; set it, e.g. {key}=...)"
    if key is None:
        return reason
    value = getattr(cause, "value", None)
    shown = f"{key}={value}" if value is not None and not isinstance(value, (dict, list, DictConfig)) else key
    return f"{shown}: {reason}"


# ------------------------------------------------------------------------------------------ typing


def _check_keys(node: DictConfig, path: str) -> None:
    """Keys added with ``+key=value`` that the schema does not have are errors too."""
    object_type = OmegaConf.get_type(node)
    names = {f.name for f in dataclasses.fields(object_type)} if dataclasses.is_dataclass(object_type) else None
    for key in node:
        if names is not None and key not in names:
            raise ConfigError(f"{path}{key}: unknown key{_fields_of(object_type)}")
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            _check_keys(child, f"{path}{key}.")


def _to_object(node: DictConfig, path: str) -> Any:
    """``OmegaConf.to_object`` with the path of the failing node in front of a range check's message."""
    try:
        return OmegaConf.to_object(node)
    except ConfigError as err:
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(child)):
                _to_object(child, f"{path}{key}.")
        raise ConfigError(f"{path}{err}") from err
    except OmegaConfBaseException as err:
        raise ConfigError(config_error_message(err)) from err


def _structured(cfg: DictConfig) -> DictConfig:
    """A plain config (e.g. a run's saved ``config.yaml``) merged into the schema."""
    kind = OmegaConf.select(cfg, "data.kind")
    if kind not in DATA_SCHEMAS:
        raise ConfigError(f"data.kind={kind}: must be one of {', '.join(DATA_SCHEMAS)}")
    schema = OmegaConf.structured(PipelineConfig)
    schema.data = OmegaConf.structured(DATA_SCHEMAS[kind])
    try:
        return OmegaConf.merge(schema, cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(config_error_message(err)) from err


def typed(cfg: PipelineConfig | DictConfig) -> PipelineConfig:
    """The validated, typed :class:`PipelineConfig` of ``cfg`` (composed, or loaded from a run's config.yaml).

    Raises ConfigError naming the key of an unknown key, a wrong type or a value out of range.
    """
    if isinstance(cfg, PipelineConfig):
        return cfg
    if OmegaConf.get_type(cfg) is not PipelineConfig:
        cfg = _structured(cfg)
    _check_keys(cfg, "")
    return _to_object(cfg, "")


# ------------------------------------------------------------------------------------------ compose


def compose(overrides: Sequence[str] = (), config_name: str = "pipeline") -> DictConfig:
    """The composed, validated config with ``overrides`` (Hydra syntax: ``train.backbone.epochs=2``,
    ``size=tiny``), as a DictConfig typed by :class:`PipelineConfig` (the stages take it, or :func:`typed`'s
    dataclasses). Raises ConfigError naming the key for an unknown key, a wrong type or a value out of range.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    root = config_dir()
    if not (root / f"{config_name}.yaml").is_file():
        raise FileNotFoundError(f"config '{config_name}.yaml' not found in {root}")
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(root), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
        cfg.config_dir = str(root)
        cfg.run_dir = str(Path(cfg.run_dir).expanduser().resolve())
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(config_error_message(err)) from err
    finally:
        GlobalHydra.instance().clear()
    if OmegaConf.get_type(cfg) is PipelineConfig:
        typed(cfg)  # validates: range checks name the key
    return cfg


def save_config(cfg: PipelineConfig | DictConfig, run_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config into the run directory (one record of what ran)."""

    path = Path(run_dir) / name
    with atomic_path(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(cfg))
    return path
