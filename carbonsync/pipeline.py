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
from omegaconf import DictConfig

from carbonsync.config import PipelineConfig, save_config, typed
from carbonsync.control.session import control_session
from carbonsync.core.errors import InputNotFoundError
from carbonsync.core.layout import RunPaths
from carbonsync.core.logs import get_logger
from carbonsync.data import era5
from carbonsync.data.sample_world import write_sample_world, write_zone_files
from carbonsync.data.store import open_canonical, open_zone_truth
from carbonsync.evaluate.plots import plot_forecast
from carbonsync.evaluate.skill import evaluate_backbone
from carbonsync.forecast.export import export_forecasts
from carbonsync.forecast.reader import latest_zone_forecast
from carbonsync.forecast.rollout import Forecaster
from carbonsync.forecast.store import StoreLocation
from carbonsync.physics.grid import Grid
from carbonsync.physics.zones import load_zones, zones_to_dicts
from carbonsync.placement import PlacementError, assess, format_table, load_queue, load_sites, schedule
from carbonsync.serve.app import create_app
from carbonsync.serve.app import serve as serve_app
from carbonsync.train import backbone as backbone_training
from carbonsync.train import head as head_training
from carbonsync.train import irradiance as irradiance_training

log = get_logger(__name__)

# What a stage takes: the composed config (carbonsync.config.compose), a run's loaded config.yaml, or the typed
# PipelineConfig. Each stage validates it (carbonsync.config.typed) and passes typed dataclasses on.
StageConfig = PipelineConfig | DictConfig


def paths(cfg: StageConfig) -> RunPaths:
    return RunPaths(Path(cfg.run_dir))


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise InputNotFoundError(f"'{path}' is missing: run `carbonsync {stage}` with the same run_dir first")
    return path


def make_data(cfg: StageConfig) -> dict[str, Path]:
    """Stage ``sample-world`` (or ``prepare`` for ERA5): the canonical store, zones and zone truth."""
    p, checked = paths(cfg), typed(cfg)
    save_config(cfg, p.root)
    cfg = checked
    if cfg.data.kind == "sample_world":
        world = cfg.data.world(zones_to_dicts(load_zones(cfg.data.zones_file)))
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


def train_backbone(cfg: StageConfig) -> Path:
    """Train the backbone; with ``control.enabled=true`` under the runtime controller (pauses at step boundaries)."""
    p, cfg = paths(cfg), typed(cfg)

    def run(step_hook=None) -> Path:
        return backbone_training.train_backbone(cfg.backbone, cfg.train.backbone, cfg.data.splits,
                                                _need(p.weather, "sample-world"), p.root, settings=cfg.train,
                                                tracking=cfg.logging, progress=cfg.progress, step_hook=step_hook)

    if not cfg.control.enabled:
        return run()
    with control_session(cfg.control, p.root) as hook:
        return run(hook)


def train_irradiance(cfg: StageConfig) -> Path:

    p, cfg = paths(cfg), typed(cfg)
    return irradiance_training.train_irradiance(cfg.irradiance, cfg.train.irradiance, cfg.data.splits,
                                                _need(p.weather, "sample-world"), p.root,
                                                state_dt_hours=cfg.backbone.dt_hours, settings=cfg.train,
                                                tracking=cfg.logging, progress=cfg.progress)


def train_head(cfg: StageConfig) -> tuple[Path, dict]:

    p, cfg = paths(cfg), typed(cfg)
    _need(p.packages / "irradiance", "train-irradiance")
    return head_training.train_head(
        cfg.head, cfg.train.head, cfg.data.splits, _need(p.weather, "sample-world"), _need(p.truth, "sample-world"),
        load_zones(_need(p.zones, "sample-world")), _need(p.packages / "backbone", "train-backbone").parent,
        lead_hours=cfg.forecast.lead_hours, seed=cfg.train.seed, threads=cfg.train.threads, progress=cfg.progress)


def _forecast_source(cfg: StageConfig):
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


def forecast(cfg: StageConfig) -> Path:
    """Stage ``forecast``: run the chain for each of ``forecast.init_times`` and write a new forecast store
    (replacing the old one atomically), ``forecast.export.workers`` init times at a time."""

    forecast_fn, provenance = _forecast_source(cfg)
    workers = int(typed(cfg).forecast.export.workers)
    report = export_forecasts(cfg.forecast.store, list(cfg.forecast.init_times), forecast_fn, provenance,
                              workers=workers, replace=True, progress=cfg.progress)
    return report.store


def export_init_times(cfg: StageConfig) -> list[pd.Timestamp]:
    """The init times of stage ``export``: ``forecast.export.init_times`` if given, else every
    ``forecast.export.every_hours`` from ``start`` to ``end`` if given, else ``forecast.init_times``."""
    fcfg = typed(cfg).forecast  # validated: start and end together, start not after end, every_hours >= 1
    ecfg = fcfg.export
    if ecfg.init_times:
        return [pd.Timestamp(t) for t in ecfg.init_times]
    if ecfg.start is not None:
        return list(pd.date_range(pd.Timestamp(ecfg.start), pd.Timestamp(ecfg.end), freq=f"{ecfg.every_hours}h"))
    return fcfg.init_timestamps()


def export(cfg: StageConfig):
    """Stage ``export``: append forecasts for new init times to ``forecast.export.store`` (incremental,
    crash-safe: init times already committed are skipped, a killed export's leftovers are repaired)."""

    forecast_fn, provenance = _forecast_source(cfg)
    ecfg = typed(cfg).forecast.export
    return export_forecasts(ecfg.store, export_init_times(cfg), forecast_fn, provenance,
                            workers=int(ecfg.workers), progress=cfg.progress)


def rank(cfg: StageConfig, print_table: bool = True) -> Any:
    """Stage ``rank``: place the job queue on the sites using the latest zone forecast, then score the plan on
    the realised zone truth (both savings are logged)."""
    jobs = load_queue(cfg.placement.queue)
    sites = load_sites(cfg.placement.sites)
    start = min(j.earliest_start for j in jobs)
    end = max(j.deadline for j in jobs)
    zone_ids = sorted({s.zone for s in sites})
    store = cfg.forecast.store
    fc = latest_zone_forecast(_need(Path(store), "forecast") if StoreLocation.parse(store).is_local else store,
                              zone_ids, start, end,
                              products=("renewable_share", "carbon_intensity"))
    pcfg = typed(cfg).placement
    plan = schedule(jobs, sites, fc, pcfg.weights.weights(), solver=pcfg.solver)
    if print_table:
        log.info("%s", format_table(plan))
    truth = paths(cfg).truth
    try:  # the same plan scored on the realised zone truth (the sample world's observations)
        outcome = assess(plan, open_zone_truth(_need(truth, "sample-world"), ["renewable_share", "carbon_intensity"]))
        log.info("placement: %s", outcome.summary())
    except (PlacementError, InputNotFoundError) as err:
        log.warning("placement: expected saving %.1f%% on the forecast; not assessed on realised data: %s",
                    plan.expected_saving_pct, err)
    return plan


def serve(cfg: StageConfig) -> None:
    """``carbonsync serve``: the forecast API, metrics and live dashboard of the run (blocks until stopped)."""
    typed_cfg = typed(cfg)
    app = create_app(typed_cfg.forecast.store, typed_cfg.run_dir, typed_cfg.serve,
                     queue=typed_cfg.placement.queue, sites=typed_cfg.placement.sites,
                     weights=typed_cfg.placement.weights.weights(), solver=typed_cfg.placement.solver)
    serve_app(app, typed_cfg.serve)


def evaluate(cfg: StageConfig) -> Path:
    """Stage ``evaluate``: WeatherBench2-style scores of the backbone by lead time (NetCDF + plot)."""
    cfg = typed(cfg)
    _need(paths(cfg).packages / "backbone", "train-backbone")
    ecfg = cfg.evaluate
    return evaluate_backbone(cfg.data.splits, cfg.run_dir, split=ecfg.split, every_hours=ecfg.every_hours,
                             max_lead_hours=ecfg.max_lead_hours, progress=cfg.progress, damped=ecfg.damped)


def plots(cfg: StageConfig) -> list[Path]:
    """Stage ``plot``: global maps and zone renewable share against the truth, from the forecast store."""
    p = paths(cfg)
    return plot_forecast(p.forecast, p.truth, p.plots)


def run_all(cfg: StageConfig) -> dict[str, Any]:
    """The main job: data → backbone (+ its evaluation) → irradiance → head → forecast store → ranking → plots."""
    typed(cfg)  # every key checked before the first stage runs
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
    scfg = typed(cfg).serve
    log.info(f"== serve it: carbonsync serve run_dir={cfg.run_dir}  (then open http://{scfg.host}:{scfg.port}/)")
    return out
