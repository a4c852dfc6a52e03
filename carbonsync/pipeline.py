"""The pipeline's stages, each a function of the composed config; ``run_all`` is the main job.

Every stage reads and writes artefacts at fixed places in ``cfg.run_dir``, so stages can run one by one
(``carbonsync sample-world``, ``carbonsync train-backbone`` ...) or all at once (``carbonsync run``):

    data/weather.zarr (+ normalisation.json)   data/zone_truth.zarr   data/zones.yaml
    packages/{backbone,irradiance,head}/         checkpoints/           forecast.zarr   plots/*.png

``export`` (not part of ``run``) appends forecasts for more init times to a forecast store incrementally.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from carbonsync.config import save_config
from carbonsync.core.errors import InputNotFoundError
from carbonsync.core.layout import RunPaths
from carbonsync.core.logs import get_logger
from carbonsync.data import era5
from carbonsync.data.sample_world import SampleWorldConfig, write_sample_world, write_zone_files
from carbonsync.data.store import open_canonical
from carbonsync.evaluate.plots import plot_forecast
from carbonsync.evaluate.skill import evaluate_backbone
from carbonsync.forecast.export import export_forecasts
from carbonsync.forecast.reader import latest_zone_forecast
from carbonsync.forecast.rollout import Forecaster
from carbonsync.forecast.store import StoreLocation
from carbonsync.physics.grid import Grid
from carbonsync.physics.zones import load_zones, zones_to_dicts
from carbonsync.placement import Weights, format_table, load_queue, load_sites, schedule
from carbonsync.train import backbone as backbone_training
from carbonsync.train import head as head_training
from carbonsync.train import irradiance as irradiance_training

log = get_logger(__name__)


def paths(cfg: DictConfig) -> RunPaths:
    return RunPaths(Path(cfg.run_dir))


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise InputNotFoundError(f"'{path}' is missing: run `carbonsync {stage}` with the same run_dir first")
    return path


def make_data(cfg: DictConfig) -> dict[str, Path]:
    """Stage ``sample-world`` (or ``prepare`` for ERA5): the canonical store, zones and zone truth."""
    p = paths(cfg)
    save_config(cfg, p.root)
    if cfg.data.kind == "sample_world":

        keys = {"nlat", "nlon", "lmax", "start", "days", "spinup_days", "seed", "solver_dt_s", "wind_scale"}
        world = SampleWorldConfig(**{k: cfg.data[k] for k in keys},
                                  zones=zones_to_dicts(load_zones(cfg.data.zones_file)))
        return write_sample_world(world, p.data, tuple(cfg.data.splits.train), progress=cfg.progress)

    openers = {"era5_arco": era5.open_arco, "era5_wb2": era5.open_wb2}
    if cfg.data.kind not in openers:
        raise ValueError(f"data.kind '{cfg.data.kind}' is not one of: sample_world, {', '.join(openers)}")
    span = slice(cfg.data.splits.train[0], cfg.data.splits.test[1])
    source = openers[cfg.data.kind](cfg.data.url, list(cfg.data.variables), time=span)
    era5.prepare_canonical(source, Grid(cfg.data.nlat, cfg.data.nlon), list(cfg.data.variables), p.weather,
                           tuple(cfg.data.splits.train), progress=cfg.progress)
    zones = load_zones(cfg.data.zones_file)
    return {"weather": p.weather, **write_zone_files(open_canonical(p.weather), zones, p.data)}


def train_backbone(cfg: DictConfig) -> Path:

    p = paths(cfg)
    return backbone_training.train_backbone(cfg, _need(p.weather, "sample-world"), p.root, progress=cfg.progress)


def train_irradiance(cfg: DictConfig) -> Path:

    p = paths(cfg)
    return irradiance_training.train_irradiance(cfg, _need(p.weather, "sample-world"), p.root, progress=cfg.progress)


def train_head(cfg: DictConfig) -> tuple[Path, dict]:

    p = paths(cfg)
    _need(p.packages / "irradiance", "train-irradiance")
    return head_training.train_head(cfg, _need(p.weather, "sample-world"), _need(p.truth, "sample-world"),
                 load_zones(_need(p.zones, "sample-world")), _need(p.packages / "backbone", "train-backbone").parent,
                 progress=cfg.progress)


def _forecast_source(cfg: DictConfig):
    """The trained chain as ``init_time -> (gridded, zones)`` and the provenance of what it reads."""

    p = paths(cfg)
    forecaster = Forecaster.from_dir(_need(p.packages / "head", "train-head").parent)
    weather = open_canonical(_need(p.weather, "sample-world"))
    zones = load_zones(p.zones)
    lead_hours = int(cfg.forecast.lead_hours)
    provenance = {
        "data_source": weather.attrs.get("source", "unknown"),
        "synthetic": weather.attrs.get("synthetic", "no"),
        "backbone_package_sha256": forecaster.backbone.hash,
        "irradiance_package_sha256": forecaster.irradiance.hash,
        "head_package_sha256": forecaster.head.hash if forecaster.head else "none",
        "grid": forecaster.grid.attr(),
    }
    return (lambda init: forecaster.forecast(weather, init, lead_hours, zones)), provenance


def forecast(cfg: DictConfig) -> Path:
    """Stage ``forecast``: run the chain for each of ``forecast.init_times`` and write a new forecast store
    (replacing the old one atomically), ``forecast.export.workers`` init times at a time."""

    forecast_fn, provenance = _forecast_source(cfg)
    workers = int(cfg.forecast.get("export", {}).get("workers", 1))
    report = export_forecasts(cfg.forecast.store, list(cfg.forecast.init_times), forecast_fn, provenance,
                              workers=workers, replace=True, progress=cfg.progress)
    return report.store


def export_init_times(cfg: DictConfig) -> list[pd.Timestamp]:
    """The init times of stage ``export``: ``forecast.export.init_times`` if given, else every
    ``forecast.export.every_hours`` from ``start`` to ``end`` if given, else ``forecast.init_times``."""
    ecfg = cfg.forecast.get("export", {}) or {}
    if ecfg.get("init_times"):
        return [pd.Timestamp(t) for t in ecfg.init_times]
    if ecfg.get("start") is not None or ecfg.get("end") is not None:
        if ecfg.get("start") is None or ecfg.get("end") is None:
            raise ValueError("forecast.export.start and forecast.export.end must be given together")
        every = int(ecfg.get("every_hours", 24))
        if every <= 0:
            raise ValueError(f"forecast.export.every_hours={every} must be positive")
        times = pd.date_range(pd.Timestamp(ecfg.start), pd.Timestamp(ecfg.end), freq=f"{every}h")
        if len(times) == 0:
            raise ValueError(f"forecast.export.start={ecfg.start} is after forecast.export.end={ecfg.end}")
        return list(times)
    return [pd.Timestamp(t) for t in cfg.forecast.init_times]


def export(cfg: DictConfig):
    """Stage ``export``: append forecasts for new init times to ``forecast.export.store`` (incremental,
    crash-safe: init times already committed are skipped, a killed export's leftovers are repaired)."""

    forecast_fn, provenance = _forecast_source(cfg)
    ecfg = cfg.forecast.get("export", {}) or {}
    return export_forecasts(ecfg.get("store", cfg.forecast.store), export_init_times(cfg), forecast_fn, provenance,
                            workers=int(ecfg.get("workers", 1)), progress=cfg.progress)


def rank(cfg: DictConfig, print_table: bool = True) -> Any:
    """Stage ``rank``: place the job queue on the sites using the latest zone forecast."""

    jobs = load_queue(cfg.placement.queue)
    sites = load_sites(cfg.placement.sites)
    start = min(j.earliest_start for j in jobs)
    end = max(j.deadline for j in jobs)
    zone_ids = sorted({s.zone for s in sites})
    store = cfg.forecast.store
    fc = latest_zone_forecast(_need(Path(store), "forecast") if StoreLocation.parse(store).is_local else store,
                              zone_ids, start, end,
                              products=("renewable_share", "carbon_intensity"))
    plan = schedule(jobs, sites, fc, Weights(**OmegaConf.to_container(cfg.placement.weights)),
                    solver=str(cfg.placement.get("solver", "greedy")))
    if print_table:
        log.info("%s", format_table(plan))
    return plan


def evaluate(cfg: DictConfig) -> Path:
    """Stage ``evaluate``: WeatherBench2-style scores of the backbone by lead time (NetCDF + plot)."""

    _need(paths(cfg).packages / "backbone", "train-backbone")
    ecfg = cfg.get("evaluate", {})
    return evaluate_backbone(cfg, cfg.run_dir, split=ecfg.get("split", "test"), every_hours=int(ecfg.get("every_hours", 24)),
                             max_lead_hours=int(ecfg.get("max_lead_hours", 120)), progress=cfg.progress,
                             damped=bool(ecfg.get("damped", True)))


def plots(cfg: DictConfig) -> list[Path]:

    p = paths(cfg)
    return plot_forecast(p.forecast, p.truth, p.plots)


def run_all(cfg: DictConfig) -> dict[str, Any]:
    """The main job: data → backbone (+ its evaluation) → irradiance → head → forecast store → ranking → plots."""
    timings: dict[str, float] = {}
    out: dict[str, Any] = {}
    stages = [("data", make_data), ("backbone", train_backbone), ("evaluate", evaluate),
              ("irradiance", train_irradiance), ("head", train_head), ("forecast", forecast), ("placement", rank)]
    if cfg.plots:
        stages.append(("plots", plots))
    for name, stage in stages:
        tic = time.perf_counter()
        log.info("== %s", name)
        out[name] = stage(cfg)
        timings[name] = time.perf_counter() - tic
    out["timings_s"] = timings
    summary = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    log.info(f"== done in {sum(timings.values()):.0f} s ({summary}); outputs in {cfg.run_dir}")
    return out
