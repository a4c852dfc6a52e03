"""Replay a marginal-emissions trace: curtailment-aware training against single-site, federated and centralised.

:func:`replay` runs, at equal samples processed (``budget_steps`` optimizer steps of the same batch size):

- ``centralised``: the workload trained in this process on the whole training split (shard 0 of 1), with the
  same inner loop and learning-rate schedule as every other run: the reference for the validation loss;
- ``single_site_<REGION>``: that training placed in one region, continuously from the trace's start (one node
  provisioned, then training ``budget_steps`` steps at the modelled step time); its loss is the centralised
  run's, its energy and emissions those of the region;
- ``federated``: continuous federated training across the sites on Flower (every site up from the start);
- ``curtailment``: training that follows the sites' curtailment windows on Flower (pause, local, federated).

Energy comes from the power model (training and idle kW per node) over what each site did, times the
site's time-aligned signal; the share of energy inside windows counts a site's energy inside its in-band
stretches. :func:`summary` gives the benchmark's JSON object and :func:`plot_schedule` the schedule figure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from carbonsync.core.checks import at_least, fail, non_empty, positive
from carbonsync.core.errors import ConfigError
from carbonsync.core.fs import write_json_atomic
from carbonsync.core.logs import get_logger
from carbonsync.federated.accounting import PowerModel, SiteEnergy, read_events
from carbonsync.federated.run import continuous_plans, curtailment_plans, run_energy, run_flower, train_spans
from carbonsync.federated.spec import RunSpec
from carbonsync.federated.windows import SitePlan, WindowConfig, oracle_forecast, signal_series
from carbonsync.federated.workload import get_workload, train_steps
from carbonsync.signals.files import read_watttime_actuals

__all__ = ["ReplayConfig", "load_trace", "plot_schedule", "replay", "summary"]

log = get_logger(__name__)

STUDY_SITES = ["CAISO_NORTH", "SPP_TX", "NEM_SA"]


@dataclass
class ReplayConfig:
    """One replay of a trace (trace seconds unless named wall)."""

    trace: str                                   # WattTime-format CSV: point_time, one column per region
    run_dir: str = "curtailment_replay"
    sites: list[str] = field(default_factory=lambda: list(STUDY_SITES))
    regions: list[str] | None = None             # single-site baselines (default: every region of the trace)
    windows: WindowConfig = field(default_factory=WindowConfig)
    forecast_horizon_h: float = 6.0              # with windows.use_forecast: the oracle forecast's horizon
    power: PowerModel = field(default_factory=PowerModel)
    budget_steps: int = 1200
    trace_s_per_step: float = 30.0               # every site's modelled step time
    round_s: float = 1800.0
    outer_lr: float = 1.0                        # FedAvg (DiLoCo: 0.7 with momentum 0.9)
    outer_momentum: float = 0.0
    lr: float = 2.0e-3
    workload: str = "sfno-sample-world"
    workload_options: dict[str, Any] = field(default_factory=dict)
    runs: list[str] = field(default_factory=lambda: ["centralised", "single_site", "federated", "curtailment"])
    round_wall_s: float = 300.0
    join_wait_s: float = 90.0
    timeout_s: float = 6 * 3600.0                # wall bound of each Flower run

    def __post_init__(self) -> None:
        if isinstance(self.windows, dict):
            self.windows = WindowConfig(**self.windows)
        if isinstance(self.power, dict):
            self.power = PowerModel(**self.power)
        non_empty(self, "sites", "runs")
        at_least(self, 1, "budget_steps")
        positive(self, "trace_s_per_step", "round_s", "forecast_horizon_h")
        unknown = [r for r in self.runs if r not in ("centralised", "single_site", "federated", "curtailment")]
        if unknown:
            raise fail("runs", self.runs, f"names unknown runs {unknown}")

    def record(self) -> dict[str, Any]:
        return asdict(self)


def load_trace(path: str | Path) -> xr.Dataset:
    """A WattTime-format marginal-emissions trace ``(time, zone)`` in g CO2e/kWh, naive UTC times."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"the trace {path} does not exist")
    ds = read_watttime_actuals(path)
    times = pd.DatetimeIndex(ds["time"].values)
    if times.tz is not None:
        ds = ds.assign_coords(time=times.tz_convert("UTC").tz_localize(None))
    return ds


def _trace_span(ds: xr.Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    times = pd.DatetimeIndex(ds["time"].values)
    step = times[-1] - times[-2] if len(times) > 1 else pd.Timedelta(minutes=5)
    return times[0], times[-1] + step


def _spec(config: ReplayConfig, name: str, plans: dict[str, SitePlan], start: pd.Timestamp,
          end: pd.Timestamp) -> RunSpec:
    return RunSpec(name=name, run_dir=str(Path(config.run_dir) / name), sites=list(config.sites),
                   plans={site: plan.record() for site, plan in plans.items()}, start=start.isoformat(),
                   end=end.isoformat(), budget_steps=config.budget_steps, workload=config.workload,
                   workload_options=dict(config.workload_options), lr=config.lr, round_s=config.round_s,
                   trace_s_per_step={site: config.trace_s_per_step for site in config.sites},
                   outer_lr=config.outer_lr, outer_momentum=config.outer_momentum,
                   round_wall_s=config.round_wall_s, join_wait_s=config.join_wait_s)


def _energy_record(energies: dict[str, SiteEnergy], start: pd.Timestamp, finish: pd.Timestamp | None,
                   val_loss: float | None, **extra: Any) -> dict[str, Any]:
    total = SiteEnergy()
    for energy in energies.values():
        total = total + energy
    return {"energy_kwh": total.energy_kwh, "emissions_kg": total.emissions_kg,
            "energy_in_windows_share": total.energy_in_windows_kwh / total.energy_kwh if total.energy_kwh else None,
            "trace_hours": (finish - start).total_seconds() / 3600.0 if finish is not None else None,
            "val_loss": val_loss, "sites": {site: asdict(e) for site, e in energies.items()}, **extra}


def _centralised(config: ReplayConfig) -> dict[str, Any]:
    workload = get_workload(config.workload, **config.workload_options)
    model = workload.model()
    optimizer = workload.optimizer(model, config.lr)
    batches = workload.batches(0, 1)
    curve, every = [], max(config.budget_steps // 20, 1)
    done = 0
    while done < config.budget_steps:
        n = min(every, config.budget_steps - done)
        train_steps(workload, model, optimizer, batches, n, lr_base=config.lr, lr_done=done,
                    lr_total=config.budget_steps)
        done += n
        curve.append({"steps_done": done, "val_loss": workload.evaluate(model)})
        log.info("centralised: %d/%d steps, validation loss %.5f", done, config.budget_steps, curve[-1]["val_loss"])
    return {"val_loss": curve[-1]["val_loss"], "curve": curve}


def _flower_run(config: ReplayConfig, name: str, plans: dict[str, SitePlan], start: pd.Timestamp,
                end: pd.Timestamp, signals: dict[str, pd.Series], bands: dict[str, list]) -> dict[str, Any]:
    spec = _spec(config, name, plans, start, end)
    log.info("%s: replaying on Flower (%d sites, budget %d steps) in %s", name, len(spec.sites), spec.budget_steps,
             spec.directory)
    result = run_flower(spec, timeout_s=config.timeout_s)
    if result["status"] != "done":
        log.warning("%s: the trace ended after %d of %d steps", name, result["steps_done"], spec.budget_steps)
    finish = pd.Timestamp(result["finished_at"])
    energies = run_energy(plans, train_spans(result["rounds"]), finish, signals, config.power, bands)
    curve = [{"steps_done": r["steps_done"], "val_loss": r["val_loss"], "trace_time": r["trace_end"]}
             for r in result["rounds"]]
    return _energy_record(energies, start, finish, result["val_loss"], status=result["status"],
                          finished_at=finish.isoformat(),
                          steps_done=result["steps_done"], rounds=len(result["rounds"]), curve=curve,
                          run_dir=str(spec.directory))


def replay(config: ReplayConfig) -> dict[str, Any]:
    """Every run of ``config`` on its trace; the results (also written to ``run_dir/replay.json``)."""
    ds = load_trace(config.trace)
    zones = [str(z) for z in ds["zone"].values]
    missing = [s for s in config.sites if s not in zones]
    if missing:
        raise ConfigError(f"sites {missing} are not regions of the trace {config.trace} (it has {', '.join(zones)})")
    regions = list(config.regions) if config.regions is not None else zones
    start, end = _trace_span(ds)
    signals = {zone: signal_series(ds, zone) for zone in zones}
    forecasts = ({zone: oracle_forecast(signals[zone], pd.Timedelta(hours=config.forecast_horizon_h))
                  for zone in zones} if config.windows.use_forecast else None)
    windows = curtailment_plans(ds, zones, config.windows, forecasts, end)
    bands = {zone: plan.band for zone, plan in windows.items()}
    out: dict[str, Any] = {"config": config.record(), "trace": {"start": start.isoformat(), "end": end.isoformat(),
                                                                "zones": zones}, "runs": {},
                           "plans": {zone: plan.record() for zone, plan in windows.items()}}
    runs = out["runs"]
    provisioning = config.windows.provisioning_s
    if "centralised" in config.runs or "single_site" in config.runs:
        central = _centralised(config)
        finish = start + pd.Timedelta(seconds=provisioning + config.budget_steps * config.trace_s_per_step)
        if finish > end:
            log.warning("single-site runs end at %s, after the trace (%s): the last value holds", finish, end)
        if "centralised" in config.runs:
            runs["centralised"] = {"energy_kwh": config.power.train_kw * config.budget_steps
                                   * config.trace_s_per_step / 3600.0, "emissions_kg": None,
                                   "energy_in_windows_share": None,
                                   "trace_hours": (finish - start).total_seconds() / 3600.0,
                                   "val_loss": central["val_loss"], "curve": central["curve"]}
        if "single_site" in config.runs:
            for region in regions:
                plan = continuous_plans([region], start, finish, provisioning)
                trained = {region: [(start + pd.Timedelta(seconds=provisioning), finish)]}
                energies = run_energy(plan, trained, finish, {region: signals[region]}, config.power,
                                      {region: bands[region]})
                runs[f"single_site_{region}"] = _energy_record(energies, start, finish, central["val_loss"])
    if "federated" in config.runs:
        plans = continuous_plans(config.sites, start, end, provisioning)
        runs["federated"] = _flower_run(config, "federated", plans, start, end, signals, bands)
    if "curtailment" in config.runs:
        plans = {site: windows[site] for site in config.sites}
        runs["curtailment"] = _flower_run(config, "curtailment", plans, start, end, signals, bands)
    out.update(summary(runs))
    write_json_atomic(out, Path(config.run_dir) / "replay.json")
    return out


def summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ratios of the curtailment-aware run to each single-site run (emissions) and to centralised (loss)."""
    out: dict[str, Any] = {}
    curtail = runs.get("curtailment")
    if curtail is not None:
        out["curtailment_vs_single_site_emissions"] = {
            name.removeprefix("single_site_"): curtail["emissions_kg"] / run["emissions_kg"]
            for name, run in runs.items() if name.startswith("single_site_") and run["emissions_kg"]}
    central = runs.get("centralised")
    if central is not None and central.get("val_loss"):
        for name in ("curtailment", "federated"):
            if name in runs and runs[name].get("val_loss") is not None:
                key = "val_loss_vs_centralised" if name == "curtailment" else f"{name}_val_loss_vs_centralised"
                out[key] = runs[name]["val_loss"] / central["val_loss"]
    return out


def plot_schedule(result: dict[str, Any], path: str | Path, run: str = "curtailment") -> Path:
    """The schedule of ``run``: each site's signal and windows, its node states and training, the mode, and
    the validation loss of every run against samples processed."""
    record = result["runs"][run]
    plans = {site: SitePlan.from_record(p) for site, p in result["plans"].items() if site in result["config"]["sites"]}
    events = read_events(Path(record["run_dir"]) / "events.jsonl")
    threshold = result["config"]["windows"]["on_level"]
    trace = load_trace(result["config"]["trace"])
    fig = Figure(figsize=(11, 8.5))
    axes = fig.subplots(3, 1, sharex=False, gridspec_kw={"height_ratios": [2, 2, 1.6]})
    ax = axes[0]
    for site in plans:
        series = signal_series(trace, site)
        ax.plot(series.index, series.values, label=site, lw=1.2)
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g} g/kWh")
    ax.set_ylabel("marginal emissions\n(g CO2e/kWh)")
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    ax.set_title(f"{run}: windows, node states, training and modes")
    ax = axes[1]
    colours = {"provisioning": "#f0c36d", "idle": "#cccccc"}
    spans = train_spans(json.loads((Path(record["run_dir"]) / "result.json").read_text())["rounds"])
    for row, (site, plan) in enumerate(plans.items()):
        for a, b in plan.band:
            ax.barh(row + 0.3, (b - a), left=a, height=0.25, color="#9bd39b", label="in window" if row == 0 else None)
        for interval in plan.intervals:
            if interval.state in colours:
                ax.barh(row, interval.end - interval.start, left=interval.start, height=0.3,
                        color=colours[interval.state])
        for a, b in spans.get(site, []):
            ax.barh(row, b - a, left=a, height=0.3, color="#2b6cb0", label="training" if row == 0 else None)
    modes = [e for e in events if e["event"] == "MODE"]
    mode_colour = {"pause": "#eeeeee", "local": "#fbd38d", "federated": "#68d391"}
    for this, nxt in zip(modes, [*modes[1:], None], strict=True):
        a = pd.Timestamp(this["trace_time"])
        b = pd.Timestamp(nxt["trace_time"]) if nxt else pd.Timestamp(record["finished_at"])
        ax.barh(len(plans), b - a, left=a, height=0.5, color=mode_colour[this["mode"]])
    for e in events:
        if e["event"] == "ROUND_START":
            ax.axvline(pd.Timestamp(e["trace_time"]), color="#2b6cb0", lw=0.3, alpha=0.6)
    ax.set_yticks(range(len(plans) + 1), [*plans, "mode"])
    ax.set_ylim(-0.6, len(plans) + 1.5)          # room for the legend above the mode row
    handles = [Patch(color="#9bd39b", label="in window"), Patch(color=colours["provisioning"], label="provisioning"),
               Patch(color=colours["idle"], label="idle"), Patch(color="#2b6cb0", label="training"),
               *(Patch(color=c, label=f"mode: {m}") for m, c in mode_colour.items())]
    ax.legend(handles=handles, loc="upper right", fontsize=7, ncol=4)
    axes[0].sharex(ax)
    ax = axes[2]
    for name, rec in result["runs"].items():
        curve = rec.get("curve")
        if curve:
            ax.plot([c["steps_done"] for c in curve], [c["val_loss"] for c in curve], label=name,
                    marker="." if name != "centralised" else None)
    ax.set_xlabel("optimizer steps (equal samples per step)")
    ax.set_ylabel("validation loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
