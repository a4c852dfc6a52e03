"""Hydra configuration: compose ``configs/pipeline.yaml`` with command-line overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from carbonsync.core.fs import atomic_path
from carbonsync.core.settings import config_dir


def compose(overrides: Sequence[str] = (), config_name: str = "pipeline") -> DictConfig:
    """The composed config with ``overrides`` (Hydra syntax: ``train.backbone.epochs=2``, ``size=tiny``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    root = config_dir()
    if not (root / f"{config_name}.yaml").is_file():
        raise FileNotFoundError(f"config '{config_name}.yaml' not found in {root}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(root), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    cfg.config_dir = str(root)
    cfg.run_dir = str(Path(cfg.run_dir).expanduser().resolve())
    OmegaConf.resolve(cfg)
    return cfg


def save_config(cfg: DictConfig, run_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config into the run directory (one record of what ran)."""

    path = Path(run_dir) / name
    with atomic_path(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(cfg))
    return path
