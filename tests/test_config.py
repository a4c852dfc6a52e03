"""Typed configuration: the schema rejects unknown keys, wrong types and out-of-range values at compose time,
naming the key; defaults live in the dataclasses, the YAML files hold only what differs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from carbonsync.config import PipelineConfig, TrainConfig, compose, save_config, typed
from carbonsync.core.errors import ConfigError
from carbonsync.core.settings import config_dir
from carbonsync.data.config import ERA5DataConfig, SampleWorldDataConfig, Splits
from carbonsync.evaluate.skill import EvaluateConfig
from carbonsync.forecast.config import ForecastConfig
from carbonsync.placement.config import PlacementConfig
from carbonsync.train.backbone import BackboneModelConfig, BackboneTrainConfig
from carbonsync.train.common import LoggingConfig
from carbonsync.train.head import HeadModelConfig, HeadTrainConfig
from carbonsync.train.irradiance import IrradianceModelConfig

TINY = ["size=tiny"]


def test_compose_is_typed_and_validated():
    cfg = compose(TINY)
    assert OmegaConf.get_type(cfg) is PipelineConfig
    c = typed(cfg)
    assert isinstance(c, PipelineConfig) and isinstance(c.data, SampleWorldDataConfig)
    assert isinstance(c.data.splits, Splits) and isinstance(c.train, TrainConfig)
    assert isinstance(c.train.backbone, BackboneTrainConfig) and isinstance(c.backbone, BackboneModelConfig)
    assert isinstance(c.head, HeadModelConfig) and isinstance(c.train.head, HeadTrainConfig)
    assert (c.data.nlat, c.backbone.embed_dim, c.train.backbone.epochs) == (17, 8, 1)  # size=tiny
    assert c.train.head.splits == ["train", "val"]  # the one default (the code used to fall back to ["val"])
    assert isinstance(typed(compose(["data=era5_arco"])).data, ERA5DataConfig)
    assert typed(c) is c


@pytest.mark.parametrize("override, key", [
    ("train.backbone.epochz=3", "train.backbone.epochz"),
    ("+train.backbone.epochz=3", "train.backbone.epochz"),
    ("backbone.embed_dimm=3", "backbone.embed_dimm"),
    ("data.url=gs://x", "data.url"),  # an ERA5 key on the sample world
    ("nonsense.key=1", "nonsense.key"),
])
def test_unknown_key_fails_naming_it(override, key):
    with pytest.raises(ConfigError, match=rf"^{key}: unknown key"):
        compose([*TINY, override])


@pytest.mark.parametrize("override, key", [
    ("train.backbone.epochs=abc", "train.backbone.epochs=abc"),
    ("train.irradiance.lr=fast", "train.irradiance.lr=fast"),
    ("progress=maybe", "progress=maybe"),
    ("backbone.channels=u100", "backbone.channels=u100"),
])
def test_wrong_type_fails_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        compose([*TINY, override])


@pytest.mark.parametrize("override, message", [
    ("train.backbone.epochs=-1", "train.backbone.epochs=-1: must be >= 1"),
    ("train.backbone.epochs=0", "train.backbone.epochs=0: must be >= 1"),
    ("train.backbone.batch_size=0", "train.backbone.batch_size=0: must be >= 1"),
    ("train.backbone.lr=0", "train.backbone.lr=0.0: must be > 0"),
    ("train.backbone.finetune_lr=-1e-4", "train.backbone.finetune_lr=-0.0001: must be > 0"),
    ("train.backbone.rollout_steps=0", "train.backbone.rollout_steps=0: must be >= 1"),
    ("train.backbone.finetune_epochs=-1", "train.backbone.finetune_epochs=-1: must be >= 0"),
    ("train.backbone.grad_clip=0", "train.backbone.grad_clip=0.0: must be > 0"),
    ("train.backbone.channel_weights=equal", "train.backbone.channel_weights=equal: must be"),
    ("train.irradiance.epochs=0", "train.irradiance.epochs=0: must be >= 1"),
    ("train.irradiance.batch_size=0", "train.irradiance.batch_size=0: must be >= 1"),
    ("train.irradiance.lr=-0.1", "train.irradiance.lr=-0.1: must be > 0"),
    ("train.irradiance.hours_per_epoch=0", "train.irradiance.hours_per_epoch=0: must be >= 1"),
    ("train.irradiance.val_hours=0", "train.irradiance.val_hours=0: must be >= 1"),
    ("train.head.folds=0", "train.head.folds=0: must be >= 1"),
    ("train.head.selection_fraction=1", "train.head.selection_fraction=1.0: must be strictly between 0 and 1"),
    ("train.head.hindcast_every_h=0", "train.head.hindcast_every_h=0: must be >= 1"),
    ("train.head.splits=[val,test]", r"train.head.splits=\[val, test\]: must name train and/or val"),
    ("train.threads=0", "train.threads=0: must be >= 1"),
    ("data.nlat=0", "data.nlat=0: must be > 0"),
    ("data.nlon=-64", "data.nlon=-64: must be > 0"),
    ("data.days=0", "data.days=0: must be >= 1"),
    ("data.solver_dt_s=0", "data.solver_dt_s=0.0: must be > 0"),
    ("backbone.embed_dim=0", "backbone.embed_dim=0: must be >= 1"),
    ("backbone.dt_hours=0", "backbone.dt_hours=0: must be >= 1"),
    ("irradiance.patch_size=0", "irradiance.patch_size=0: must be >= 1"),
    ("head.learners=[forest]", r"head.learners=\[forest\]: \['forest'\] are not registered learners"),
    ("+head.params.mlp={hidden:8}", r"head.params=\[(lightgbm, )?mlp\]: \['mlp'\] are not among the learners"),
    ("head.quantiles=[0.9,0.1]", r"head.quantiles=\[0.9, 0.1\]: must be increasing"),
    ("forecast.lead_hours=0", "forecast.lead_hours=0: must be >= 1"),
    ("forecast.init_times=[]", r"forecast.init_times=\[\]: must not be empty"),
    ("forecast.init_times=[noon]", r"forecast.init_times=\[noon\]: not a time"),
    ("forecast.export.workers=0", "forecast.export.workers=0: must be >= 1"),
    ("forecast.export.every_hours=0", "forecast.export.every_hours=0: must be >= 1"),
    ("evaluate.every_hours=0", "evaluate.every_hours=0: must be >= 1"),
    ("evaluate.max_lead_hours=-6", "evaluate.max_lead_hours=-6: must be >= 1"),
    ("evaluate.max_lead_hours=9", "evaluate.max_lead_hours=9: must be a multiple of the backbone step"),
    ("evaluate.split=holdout", "evaluate.split=holdout: must be one of train, val, test"),
    ("placement.solver=simplex", "placement.solver=simplex: must be one of greedy, fast, milp"),
    ("placement.weights.price=-1", "placement.weights.price=-1.0: must be >= 0"),
    ("logging.backend=tensorboard", "logging.backend=tensorboard: must be one of none, wandb"),
])
def test_range_checks_name_the_key(override, message):
    with pytest.raises(ConfigError, match="^" + message):
        compose([*TINY, override])


@pytest.mark.parametrize("overrides, message", [
    (["data.splits.val=[2020-08-18,2020-08-23T23:00]"], r"data.splits.val=.*must start after train ends"),
    (["data.splits.test=[2020-08-20,2020-08-30T23:00]"], r"data.splits.test=.*must start after val ends"),
    (["data.splits.train=[2020-08-18T23:00,2020-08-01]"], r"data.splits.train=.*first is after last"),
    (["data.splits.val=[2020-08-19]"], r"data.splits.val=\[2020-08-19\]: must be \[first, last\]"),
    (["data.splits.train=[someday,2020-08-18T23:00]"], r"data.splits.train=.*not a time"),
    (["data.days=20"], r"data.splits=.*must lie within the sample world's hours"),
])
def test_splits_are_ordered_and_inside_the_data(overrides, message):
    with pytest.raises(ConfigError, match="^" + message):
        compose([*TINY, *overrides])


def test_export_window_checks():
    with pytest.raises(ConfigError, match="^forecast.export.start=2020-08-24: .*given together"):
        compose([*TINY, "forecast.export.start=2020-08-24"])
    with pytest.raises(ConfigError, match="^forecast.export.start=2020-08-25: is after forecast.export.end"):
        compose([*TINY, "forecast.export.start=2020-08-25", "forecast.export.end=2020-08-24"])
    # explicit init times win over a range, so a half range next to them is not used and not an error
    compose([*TINY, "forecast.export.init_times=[2020-08-26T06:00]", "forecast.export.start=2020-08-24"])


def test_cross_node_checks():
    with pytest.raises(ConfigError, match=r"^train.backbone.channel_weight_scale names \['u10'\]"):
        compose([*TINY, "+train.backbone.channel_weight_scale.u10=2"])
    with pytest.raises(ConfigError, match="^train.backbone.channel_weights has 2 values for the 5 backbone channels"):
        compose([*TINY, "train.backbone.channel_weights=[1,2]"])
    with pytest.raises(ConfigError, match="^data.url: missing value"):
        compose(["data=era5_arco", "data.url=???"])


def test_dataclasses_check_when_built_directly():
    with pytest.raises(ConfigError, match="^epochs=0: must be >= 1"):
        BackboneTrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="^val=.*must start after train ends"):
        Splits(train=["2020-01-01", "2020-01-10"], val=["2020-01-05", "2020-01-12"], test=["2020-02-01", "2020-02-02"])
    with pytest.raises(ConfigError, match="^lead_hours=0"):
        ForecastConfig(lead_hours=0)


def test_stages_validate_a_config_changed_after_compose(tmp_path):
    from carbonsync import pipeline

    cfg = compose([*TINY, f"run_dir={tmp_path}"])
    cfg.train.backbone.epochs = -1  # the type is checked on assignment, the range by the stage
    with pytest.raises(ConfigError, match="^train.backbone.epochs=-1: must be >= 1"):
        pipeline.train_backbone(cfg)
    with pytest.raises(ConfigError, match="^train.backbone.epochs=-1"):
        pipeline.run_all(cfg)
    assert not (tmp_path / "data").exists()  # nothing ran


def test_saved_config_round_trips(tmp_path):
    cfg = compose([*TINY, f"run_dir={tmp_path}", "train.backbone.epochs=3"])
    loaded = OmegaConf.load(save_config(cfg, tmp_path))
    assert typed(loaded) == typed(cfg)
    assert typed(OmegaConf.load(save_config(typed(cfg), tmp_path / "again"))) == typed(cfg)
    loaded.train.backbone.epochz = 3
    with pytest.raises(ConfigError, match="^train.backbone.epochz: unknown key"):
        typed(loaded)


SCHEMAS = {
    "data/sample_world.yaml": SampleWorldDataConfig, "data/era5_arco.yaml": ERA5DataConfig,
    "data/era5_wb2.yaml": ERA5DataConfig, "model/sfno_e32_l4.yaml": BackboneModelConfig,
    "model/afno_p4_e64.yaml": IrradianceModelConfig, "model/head_renewables.yaml": HeadModelConfig,
    "train/default.yaml": TrainConfig, "forecast/default.yaml": ForecastConfig,
    "placement/default.yaml": PlacementConfig, "evaluate/default.yaml": EvaluateConfig,
    "logging/none.yaml": LoggingConfig, "logging/wandb_offline.yaml": LoggingConfig,
}


def _leaves(node, prefix=""):
    """``(dotted key, value)`` of a config's leaves, unresolved (``???`` for a missing value)."""
    for key, value in (OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node).items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_group_files_hold_only_what_differs_from_the_schema(name):
    """Defaults in one place: a value in a group file that equals the dataclass default is a second copy."""
    values = OmegaConf.load(config_dir() / name)
    values.pop("defaults", None)
    defaults = dict(_leaves(OmegaConf.structured(SCHEMAS[name])))
    for key, value in _leaves(values):
        missing_parent = any(key.startswith(f"{k}.") and v == "???" for k, v in defaults.items())
        assert key in defaults or missing_parent, f"{name}: {key} is not in {SCHEMAS[name].__name__}"
        assert defaults.get(key) != value, f"{name}: {key}={value} repeats the default of {SCHEMAS[name].__name__}"


def test_every_group_file_has_a_schema():
    files = {str(p.relative_to(config_dir())) for p in config_dir().glob("*/*.yaml")}
    unchecked = files - set(SCHEMAS) - {"size/default.yaml", "size/tiny.yaml", "zones/sample_world.yaml"}
    unchecked -= {f for f in files if f.startswith("placement/") and f != "placement/default.yaml"}  # job/site files
    assert not unchecked, f"group files without a schema in this test: {sorted(unchecked)}"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "carbonsync.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("value, message", [
    ("abc", "train.backbone.epochs=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    ("-1", "train.backbone.epochs=-1: must be >= 1"),
])
def test_cli_names_the_key_without_a_traceback(tmp_path, value, message):
    out = _cli("train-backbone", "size=tiny", f"run_dir={tmp_path}", f"train.backbone.epochs={value}", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines()[0] == f"carbonsync: error: {message}"
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "data").exists() and not (tmp_path / "config.yaml").exists()


def test_cli_unknown_key_one_line(tmp_path):
    out = _cli("config", "train.backbone.epochz=3", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    first = out.stderr.splitlines()[0]
    assert first.startswith("carbonsync: error: train.backbone.epochz: unknown key; BackboneTrainConfig has: epochs")
