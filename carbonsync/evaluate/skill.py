"""Backbone skill the WeatherBench2 way: hindcasts scored against persistence and climatology.

* :func:`hindcast` rolls the backbone out from many init times: denormalised fields
  ``(init_time, lead_time, lat, lon)`` per channel, leads one backbone step (6 h) to ``lead_steps`` steps;
* :func:`evaluate_forecasts` scores them, and the two reference forecasts, against the truth: area-weighted
  RMSE, ACC (against the climatology) and bias per channel and lead time, plus RMSE skill scores;
* :func:`evaluate_backbone` does both for one data split of a run and writes
  ``evaluation/backbone_<split>.nc`` and ``plots/backbone_skill_<split>.png``.

The reference forecasts are *persistence* (the true state at the init time, held) and *climatology* (the
training-split climatology by hour of day and day of year at the valid time, see
:mod:`carbonsync.evaluate.climatology`). A climatology forecast has no anomaly, so its ACC is undefined
(0/0): it is reported as NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.core.checks import at_least, one_of
from carbonsync.core.fs import atomic_path, netcdf_engine
from carbonsync.core.layout import RunPaths
from carbonsync.core.logs import Progress, get_logger
from carbonsync.data import lexicon
from carbonsync.data.config import SPLIT_NAMES, Splits
from carbonsync.data.store import open_canonical
from carbonsync.evaluate import metrics
from carbonsync.evaluate.climatology import climatology_at, compute_climatology
from carbonsync.evaluate.plots import save_png
from carbonsync.forecast.rollout import Forecaster
from carbonsync.models.package import load_package
from carbonsync.physics.grid import Grid

log = get_logger(__name__)

MODELS = ("model", "persistence", "climatology")
BASELINES = ("persistence", "climatology")
ACC_NOTE = ("ACC is the area-weighted anomaly correlation against the training climatology, per init time, "
            "averaged over init times; the climatology forecast has zero anomaly, so its ACC is undefined "
            "and reported as NaN")


def hindcast(forecaster, weather: xr.Dataset, init_times: Sequence, lead_steps: int, progress: bool = False,
             clip_tcc: bool = True, damped: bool = True) -> xr.Dataset:
    """Denormalised backbone forecasts from each of ``init_times`` for ``lead_steps`` steps.

    One variable per backbone channel with dims ``(init_time, lead_time, lat, lon)``; ``lead_time`` runs from
    one step to ``lead_steps`` steps (lead 0, the initial state, is left out) and ``valid_time`` is a 2-D
    coordinate. ``tcc`` is clipped to [0, 1] as the forecast chain does (``clip_tcc``); the package's damping
    toward climatology is applied as the forecast chain applies it, unless ``damped=False``.
    """

    if lead_steps < 1:
        raise ValueError(f"lead_steps must be >= 1, got {lead_steps}")
    init_times = pd.DatetimeIndex(init_times)
    if init_times.empty:
        raise ValueError("hindcast needs at least one init time")
    channels, grid, dt = forecaster.channels, forecaster.grid, forecaster.dt_hours
    out = np.empty((init_times.size, lead_steps, len(channels), *grid.shape), np.float32)
    for i, init in enumerate(Progress(init_times, desc="hindcast", enabled=progress)):
        _, states = forecaster.rollout(forecaster.initial_state(weather, init), init, lead_steps, damped=damped)
        out[i] = forecaster.backbone.denormalise(states[1:]).numpy()
    lead_time = pd.to_timedelta(np.arange(1, lead_steps + 1) * dt, unit="h")
    data = {}
    for k, name in enumerate(channels):
        values = out[:, :, k]
        if clip_tcc and name == "tcc":
            values = np.clip(values, 0.0, 1.0)
        attrs = lexicon.get(name).attrs if name in lexicon.VARIABLES else {}
        data[name] = (("init_time", "lead_time", "lat", "lon"), values, attrs)
    ds = xr.Dataset(data, coords={"init_time": init_times.values, "lead_time": lead_time.values, **grid.coords()})
    ds = ds.assign_coords(valid_time=ds.init_time + ds.lead_time)
    ds.attrs.update({"grid": grid.attr(), "dt_hours": int(dt), "tcc_clipped": "yes" if clip_tcc else "no"})
    return ds


def _at_valid_times(truth: xr.Dataset, times: xr.DataArray, what: str) -> xr.Dataset:
    wanted = pd.DatetimeIndex(np.asarray(times.values).ravel())
    missing = wanted.difference(truth.indexes["time"])
    if not missing.empty:
        raise KeyError(f"{what}: {missing.size} needed times are not in the truth data, first {missing[0]}")
    out = truth.sel(time=times)
    return out.drop_vars([c for c in ("time", "valid_time") if c in out.coords])


def evaluate_forecasts(forecasts: xr.Dataset, truth: xr.Dataset, climatology: xr.Dataset,
                       weights: xr.DataArray) -> xr.Dataset:
    """RMSE, ACC and bias of ``forecasts``, persistence and climatology, dims (model, channel, lead_time).

    ``forecasts`` as from :func:`hindcast`; ``truth`` has a ``time`` dim covering every init and valid time;
    ``climatology`` is either the output of :func:`compute_climatology` (looked up at the valid times) or a
    dataset with a ``time`` dim already at the valid times; ``weights`` are area weights (lat, lon).

    Besides ``rmse``/``acc``/``bias`` the result has the RMSE skill scores ``1 - rmse / rmse_reference``
    of every forecast against each baseline (``rmse_skill_vs_persistence``, ``rmse_skill_vs_climatology``)
    and, for the model, against the better (lower-RMSE) baseline at each channel and lead
    (``model_rmse_skill_vs_best``, with ``best_baseline`` naming it).
    """
    channels = [str(c) for c in forecasts.data_vars]
    valid = forecasts.init_time + forecasts.lead_time
    fc = forecasts.drop_vars([c for c in ("valid_time",) if c in forecasts.coords])
    obs = _at_valid_times(truth[channels], valid, "valid times")
    persistence = _at_valid_times(truth[channels], forecasts.init_time, "init times")
    if "dayofyear" in climatology.dims:
        clim = climatology_at(climatology[channels], valid)
    else:
        clim = _at_valid_times(climatology[channels], valid, "climatology at valid times")
    clim = clim.drop_vars([c for c in ("time", "valid_time") if c in clim.coords])
    keep = ["lead_time"]
    candidates = {"model": fc, "persistence": persistence, "climatology": clim}

    def stack(per_model: dict[str, xr.Dataset]) -> xr.DataArray:
        arrays = [per_model[m][channels].to_dataarray("channel") for m in MODELS]
        return xr.concat(arrays, dim=pd.Index(list(MODELS), name="model")).transpose("model", "channel", "lead_time")

    lead = forecasts.lead_time
    rmse = stack({m: metrics.rmse(f, obs, weights, keep=keep).broadcast_like(lead) for m, f in candidates.items()})
    bias = stack({m: metrics.bias(f, obs, weights, keep=keep).broadcast_like(lead) for m, f in candidates.items()})
    acc_all = {m: metrics.acc(candidates[m], obs, clim, weights, keep=keep).broadcast_like(lead)
               for m in ("model", "persistence")}
    acc_all["climatology"] = xr.full_like(acc_all["model"], np.nan)
    acc = stack(acc_all)

    out = xr.Dataset({"rmse": rmse, "acc": acc, "bias": bias})
    for ref in BASELINES:
        out[f"rmse_skill_vs_{ref}"] = metrics.skill_score(rmse, rmse.sel(model=ref, drop=True))
    baseline_rmse = rmse.sel(model=list(BASELINES))
    best = np.array(BASELINES, dtype=object)[baseline_rmse.argmin("model").values]
    out["best_baseline"] = (("channel", "lead_time"), best)
    out["model_rmse_skill_vs_best"] = metrics.skill_score(rmse.sel(model="model", drop=True),
                                                          baseline_rmse.min("model"))
    units = [str(forecasts[c].attrs.get("units", "")) for c in channels]
    out = out.assign_coords(
        channel=channels, units=("channel", units),
        lead_hours=("lead_time", (lead.values / np.timedelta64(1, "h")).astype(np.int64)),
    )
    described = {
        "rmse": ("area-weighted root mean squared error: sqrt of the init-time mean of the global mean "
                 "squared error", "channel units"),
        "acc": (ACC_NOTE, "1"),
        "bias": ("area-weighted mean error (forecast minus truth), averaged over init times", "channel units"),
        "rmse_skill_vs_persistence": ("1 - rmse / rmse(persistence); > 0 is better than persistence", "1"),
        "rmse_skill_vs_climatology": ("1 - rmse / rmse(climatology); > 0 is better than climatology", "1"),
        "model_rmse_skill_vs_best": ("1 - rmse(model) / min(rmse(persistence), rmse(climatology))", "1"),
        "best_baseline": ("the reference forecast with the lower RMSE at this channel and lead", ""),
    }
    for name, (text, unit) in described.items():
        out[name].attrs = {"description": text, **({"units": unit} if unit else {})}
    out["model"].attrs["description"] = ("model: the forecasts evaluated; persistence: the true state at the init "
                                         "time held; climatology: the training climatology at the valid time")
    inits = pd.DatetimeIndex(forecasts.init_time.values)
    out.attrs.update({
        "n_init_times": int(inits.size),
        "first_init_time": str(inits[0]),
        "last_init_time": str(inits[-1]),
        "acc_note": ACC_NOTE,
        "climatology_acc": "undefined (zero anomaly): NaN",
        "area_weights": "grid quadrature weights",
    })
    for key, name in (("climatology_period", "climatology_period"), ("smoothing_days", "climatology_smoothing_days"),
                      ("method", "climatology_method")):
        if key in climatology.attrs:
            out.attrs[name] = climatology.attrs[key]
    return out


def _init_times(weather: xr.Dataset, split: str, span: tuple[pd.Timestamp, pd.Timestamp], every_hours: int,
                max_lead_hours: int, dt: int) -> pd.DatetimeIndex:
    """Init times every ``every_hours`` (on the step grid) whose whole forecast lies inside the split and data."""
    times = weather.indexes["time"]
    lo, hi = max(span[0], times[0]), min(span[1], times[-1])
    first = lo.ceil(f"{dt}h")
    last = hi - pd.Timedelta(hours=max_lead_hours)
    inits = pd.date_range(first, last, freq=f"{every_hours}h") if last >= first else pd.DatetimeIndex([])
    if not inits.empty:
        leads = pd.to_timedelta(np.arange(0, max_lead_hours + 1, dt), unit="h")
        ok = [all(t in times for t in init + leads) for init in inits]
        inits = inits[np.asarray(ok, dtype=bool)]
    if inits.empty:
        raise ValueError(
            f"split '{split}' ({span[0]} to {span[1]}; data {times[0]} to {times[-1]}) has no init time with "
            f"a complete {max_lead_hours} h forecast inside it: it spans {(hi - lo) / pd.Timedelta(hours=1):.0f} h "
            f"of data. Lower max_lead_hours or use a longer split"
        )
    return inits


def _lead_label(hours: int) -> str:
    return f"{hours // 24} d" if hours % 24 == 0 else f"{hours} h"


def format_table(scores: xr.Dataset) -> str:
    """Lead (days, or steps if all leads are under a day) x channel: model RMSE and skill vs the better baseline."""
    hours = scores.lead_hours.values
    rows = [i for i, h in enumerate(hours) if h % 24 == 0] or list(range(len(hours)))
    channels = [str(c) for c in scores.channel.values]
    width = 24
    head = f"{'lead':>5}  " + "".join(f"{c + ' [' + str(u) + ']':>{width}}" for c, u in
                                        zip(channels, scores.units.values, strict=True))
    lines = [head]
    for i in rows:
        cells = []
        for c in channels:
            rmse = float(scores.rmse.sel(model="model", channel=c).isel(lead_time=i))
            skill = float(scores.model_rmse_skill_vs_best.sel(channel=c).isel(lead_time=i))
            ref = str(scores.best_baseline.sel(channel=c).isel(lead_time=i).values)[:4]
            cells.append(f"{rmse:.4g} ({skill:+.2f} {ref})".rjust(width))
        lines.append(f"{_lead_label(int(hours[i])):>5}  " + "".join(cells))
    return "\n".join(lines)


def plot_skill(scores: xr.Dataset, path: str | Path, title: str = "") -> Path:
    """RMSE (top) and ACC (bottom) against lead time per channel: model, persistence and climatology."""
    from matplotlib.figure import Figure  # no pyplot: never switches the caller's backend


    channels = [str(c) for c in scores.channel.values]
    lead = scores.lead_hours.values / 24.0
    style = {"model": ("tab:blue", "-", "o"), "persistence": ("tab:orange", "--", "s"),
             "climatology": ("tab:gray", ":", "^")}
    fig = Figure(figsize=(3.2 * len(channels), 5.6))
    axes = fig.subplots(2, len(channels), squeeze=False, sharex=True)
    for j, (c, unit) in enumerate(zip(channels, scores.units.values, strict=True)):
        for row, metric in enumerate(("rmse", "acc")):
            ax = axes[row, j]
            for m in MODELS:
                values = scores[metric].sel(model=m, channel=c).values
                if np.isnan(values).all():
                    continue
                color, ls, marker = style[m]
                ax.plot(lead, values, color=color, ls=ls, marker=marker, ms=3, label=m)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(c)
                ax.set_ylabel(f"RMSE [{unit}]" if j == 0 else f"[{unit}]")
            else:
                ax.set_xlabel("lead time (days)")
                ax.set_ylabel("ACC" if j == 0 else "")
                ax.set_ylim(min(-0.1, float(np.nanmin(scores.acc.sel(channel=c).values))), 1.02)
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].text(0.02, 0.03, "climatology ACC undefined", transform=axes[1, 0].transAxes, fontsize=7,
                    color="tab:gray")
    fig.suptitle(title or "backbone skill", y=1.0)
    fig.tight_layout()
    return save_png(fig, path)


@dataclass
class EvaluateConfig:
    """The ``evaluate`` node (``carbonsync evaluate``): hindcasts every ``every_hours`` within ``split``, scored
    by lead time against persistence and a climatology computed from the training split only."""

    split: str = "test"
    every_hours: int = 24
    max_lead_hours: int = 120
    damped: bool = True  # false: score the raw model, without the package's damping toward climatology (*_undamped files)

    def __post_init__(self) -> None:
        one_of(self, "split", SPLIT_NAMES)
        at_least(self, 1, "every_hours", "max_lead_hours")


def evaluate_backbone(splits: Splits, run_dir: str | Path, split: str = "test", every_hours: int = 24,
                      max_lead_hours: int = 120, progress: bool = True, damped: bool = True) -> Path:
    """Hindcast the run's backbone over ``split`` and score it against persistence and climatology.

    Init times are every ``every_hours`` within the split such that init + ``max_lead_hours`` stays inside it;
    the climatology is computed from the training split only. Writes ``run_dir/evaluation/backbone_<split>.nc``
    (returned) and ``run_dir/plots/backbone_skill_<split>.png`` and prints a lead x channel table.
    Needs only ``data/weather.zarr`` and ``packages/backbone``. ``damped=False`` scores the raw model (without
    the package's damping toward climatology) and writes ``..._undamped`` files.
    """

    if split not in SPLIT_NAMES:
        raise ValueError(f"split '{split}' is not one of the configured splits {list(SPLIT_NAMES)} (data.splits)")
    p = RunPaths(Path(run_dir))
    for path, stage in ((p.weather, "sample-world"), (p.packages / "backbone", "train-backbone")):
        if not path.exists():
            raise FileNotFoundError(f"'{path}' is missing: run `carbonsync {stage}` with the same run_dir first")
    # Only the backbone is evaluated: the irradiance and head packages are neither needed nor loaded.
    forecaster = Forecaster(backbone=load_package(p.packages / "backbone"), irradiance=None)  # type: ignore[arg-type]
    dt = forecaster.dt_hours
    for name, value in (("max_lead_hours", max_lead_hours), ("every_hours", every_hours)):
        if value <= 0 or value % dt:
            raise ValueError(f"{name}={value} must be a positive multiple of the backbone step ({dt} h)")
    weather = open_canonical(p.weather, forecaster.channels)
    span = tuple(pd.Timestamp(t) for t in splits.period(split))
    inits = _init_times(weather, split, span, every_hours, max_lead_hours, dt)
    steps = max_lead_hours // dt

    channels = forecaster.channels
    leads = pd.to_timedelta(np.arange(steps + 1) * dt, unit="h")
    needed = pd.DatetimeIndex(np.unique(inits.values[:, None] + leads.values[None, :]))
    truth = weather[channels].sel(time=needed).load()
    train = splits.period("train")
    clim = compute_climatology(weather, train, channels, hours=range(0, 24, dt)).load()
    weights = Grid.infer(weather).quadrature_weights()

    forecasts = hindcast(forecaster, truth, inits, steps, progress=progress, damped=damped)
    damping = forecaster.backbone.metadata.get("extra", {}).get("damping", {})
    applied = damped and bool(damping.get("applied", False))
    scores = evaluate_forecasts(forecasts, truth, clim, weights)
    try:
        backbone_hash = forecaster.backbone.hash
    except Exception:  # noqa: BLE001 - provenance only
        backbone_hash = "unknown"
    attrs: dict[str, Any] = {
        "title": f"CarbonSync backbone skill on the {split} split",
        "split": split,
        "split_span": f"{span[0]} to {span[1]}",
        "every_hours": int(every_hours),
        "max_lead_hours": int(max_lead_hours),
        "dt_hours": int(dt),
        "in_sample": "yes: the climatology and the model saw this split" if split == "train" else "no",
        "data_source": str(weather.attrs.get("source", "unknown")),
        "synthetic": str(weather.attrs.get("synthetic", "no")),
        "grid": forecaster.grid.attr(),
        "backbone_package_sha256": backbone_hash,
        "tcc_clipped": forecasts.attrs.get("tcc_clipped", "no"),
        "damping_toward_climatology": (f"applied (fitted on {damping.get('fitted_on', '?')})" if applied else "not applied"),
        "Conventions": "CF-1.8",
    }
    scores.attrs.update(attrs)

    name = f"backbone_{split}" if damped else f"backbone_{split}_undamped"
    out = p.root / "evaluation" / f"{name}.nc"
    with atomic_path(out) as tmp:
        scores.to_netcdf(tmp, engine=netcdf_engine())
    first, last = inits[0], inits[-1]
    title = (f"backbone skill, {split} split: {inits.size} inits {first:%Y-%m-%d %H} to {last:%Y-%m-%d %H} UTC "
             f"every {every_hours} h ({attrs['data_source']}; damping {attrs['damping_toward_climatology']})")
    figure = p.plots / f"{name.replace('backbone_', 'backbone_skill_')}.png"
    plot_skill(scores, figure, title)
    log.info(f"{title}\nmodel RMSE (RMSE skill 1 - rmse/rmse_ref vs the better baseline: pers = persistence, "
          "clim = climatology)")
    log.info(format_table(scores))
    log.info(f"written {out} and {figure}")
    return out
