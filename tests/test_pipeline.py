"""End to end on the tiny configuration: every stage's output is opened and checked, plus the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.cli import STAGES
from carbonsync.config import compose
from carbonsync.core.layout import RunPaths
from carbonsync.data.store import open_canonical, read_stats
from carbonsync.data.validation import WeatherDataError
from carbonsync.forecast.export import ForecastStoreError, write_forecast_store
from carbonsync.forecast.reader import latest_zone_forecast, open_forecast
from carbonsync.forecast.rollout import Forecaster
from carbonsync.forecast.store import readonly_session
from carbonsync.models.package import PackageError, load_package
from carbonsync.physics.grid import Grid
from carbonsync.physics.zones import load_zones
from tests.helpers.era5 import make_store


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_canonical_store_and_training_stats(run):
    paths = RunPaths(run.run_dir)
    ds = open_canonical(paths.weather)
    assert ds.attrs["source"] == "sample_world" and "synthetic" in ds.attrs
    assert ds["ssrd"].attrs["units"] == "J m-2" and tuple(ds["ssrd"].dims) == ("time", "lat", "lon")
    stats = read_stats(paths.weather)
    train = ds.sel(time=slice(*run.cfg.data.splits.train))
    assert stats["n_times"] == train.sizes["time"] < ds.sizes["time"]
    weights = Grid.infer(ds).quadrature_weights()
    expected = float(train["t2m"].astype(np.float64).weighted(weights).mean())
    assert stats["variables"]["t2m"]["mean"] == pytest.approx(expected, rel=1e-6)


def test_packages_load_without_training_config(run):
    packages = RunPaths(run.run_dir).packages
    backbone = load_package(packages / "backbone")
    meta = backbone.metadata
    assert meta["channels"] == list(run.cfg.backbone.channels)
    assert (meta["lmax"], meta["mmax"]) == (run.cfg.backbone.lmax, run.cfg.backbone.mmax)
    assert meta["grid"] == Grid(run.cfg.data.nlat, run.cfg.data.nlon).to_dict()
    assert meta["dt_hours"] == 6
    assert load_package(packages / "irradiance").metadata["extra"]["output_units"] == "J m-2"
    head = load_package(packages / "head")
    assert set(head.metadata["extra"]["scores"]) >= {"physical_rmse", "head_rmse"}
    with pytest.raises(PackageError, match="t2m"):
        backbone.check_compatible(["u100", "v100", "z500", "tcc"], backbone.grid)
    with pytest.raises(PackageError, match="grid"):
        backbone.check_compatible(meta["channels"], Grid(9, 16))


def test_forecast_store_layout_units_and_provenance(run):
    store = Path(run.cfg.forecast.store)
    gridded = open_forecast(store, "gridded")
    zones = open_forecast(store, "zones")
    lead_hours = run.cfg.forecast.lead_hours
    assert dict(gridded.sizes) == {"init_time": len(run.cfg.forecast.init_times), "lead_time": lead_hours + 1,
                                   "lat": run.cfg.data.nlat, "lon": run.cfg.data.nlon}
    for name in ("u100", "v100", "ssrd"):
        assert gridded[name].dims == ("init_time", "lead_time", "lat", "lon")
        assert gridded[name].attrs["units"] and gridded[name].attrs["long_name"]
    assert gridded["ssrd"].attrs["units"] == "J m-2"
    np.testing.assert_array_equal(gridded.valid_time.values[0], gridded.init_time.values[0] + gridded.lead_time.values)
    for name in ("wind_cf", "solar_cf", "renewable_share"):
        values = zones[name].values
        assert zones[name].dims == ("init_time", "lead_time", "zone")
        assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    quantiles = zones["renewable_share_quantile"]
    assert np.all(np.diff(quantiles.transpose(..., "quantile").values, axis=-1) >= -1e-6)
    assert float(np.abs(gridded["ssrd"]).max()) > 0
    for attrs in (gridded.attrs, zones.attrs):
        assert attrs["data_source"] == "sample_world"
        assert len(attrs["backbone_package_sha256"]) == 64
        assert attrs["code_version"].startswith("carbonsync")
    assert set(zones.zone.values) == {z.id for z in load_zones(RunPaths(run.run_dir).zones)}
    root = xr.open_zarr(readonly_session(store).store, consolidated=False)   # the Icechunk repository's root
    assert "renewable_share(init_time, lead_time, zone) [1]" in root.attrs["layout_zones"]
    assert "ssrd(init_time, lead_time, lat, lon) [J m-2]" in root.attrs["layout_gridded"]


def test_forecast_is_deterministic_and_solar_is_dark_at_night(run):
    paths = RunPaths(run.run_dir)
    forecaster = Forecaster.from_dir(paths.packages)
    weather = open_canonical(paths.weather)
    zones = load_zones(paths.zones)
    init = run.cfg.forecast.init_times[0]
    g1, z1 = forecaster.forecast(weather, init, 12, zones)
    g2, z2 = forecaster.forecast(weather, init, 12, zones)
    xr.testing.assert_identical(z1, z2)
    stored = open_forecast(paths.forecast, "zones").sel(init_time=pd.Timestamp(init)).isel(lead_time=slice(0, 13))
    np.testing.assert_allclose(stored["renewable_share"].values, z1["renewable_share"].values, rtol=1e-5, atol=1e-6)
    from carbonsync.physics.solar import clear_sky_hourly

    clear = clear_sky_hourly(g1.time.values, g1.lat.values, g1.lon.values)
    assert np.all(g1["ssrd"].values[clear == 0] == 0)


def test_forecast_rejects_bad_requests(run):
    paths = RunPaths(run.run_dir)
    forecaster = Forecaster.from_dir(paths.packages)
    weather = open_canonical(paths.weather)
    zones = load_zones(paths.zones)
    with pytest.raises(WeatherDataError, match="1999"):
        forecaster.forecast(weather, "1999-01-01", 12, zones)
    with pytest.raises(ValueError, match="multiple"):
        forecaster.forecast(weather, run.cfg.forecast.init_times[0], 7, zones)
    with pytest.raises(PackageError, match="t2m"):
        forecaster.forecast(weather.drop_vars("t2m"), run.cfg.forecast.init_times[0], 6, zones)


@pytest.fixture(scope="module")
def two_forecasts(run):
    """Two 12-hour forecasts, six hours apart, from the tiny run's chain."""
    paths = RunPaths(run.run_dir)
    forecaster = Forecaster.from_dir(paths.packages)
    weather = open_canonical(paths.weather)
    zones = load_zones(paths.zones)
    init = pd.Timestamp(run.cfg.forecast.init_times[0])
    return [(t, *forecaster.forecast(weather, t, 12, zones)) for t in (init, init + pd.Timedelta(hours=6))]


def test_reader_picks_latest_covering_forecast(two_forecasts, tmp_path):
    store = write_forecast_store(two_forecasts, tmp_path / "two.zarr", {"data_source": "test"})
    init = two_forecasts[0][0]
    zone = str(two_forecasts[0][2].zone.values[0])
    window = latest_zone_forecast(store, [zone], init + pd.Timedelta(hours=6), init + pd.Timedelta(hours=12))
    assert window.attrs["init_time"] == str(init + pd.Timedelta(hours=6))
    assert window.sizes == {"time": 7, "zone": 1}
    expected = two_forecasts[1][2]["renewable_share"].sel(zone=zone).values[:7]
    np.testing.assert_allclose(window["renewable_share"].values[:, 0], expected, rtol=1e-6)
    early = latest_zone_forecast(store, [zone], init, init + pd.Timedelta(hours=12))
    assert early.attrs["init_time"] == str(init)
    with pytest.raises(ForecastStoreError, match="nowhere"):
        latest_zone_forecast(store, ["nowhere"])
    with pytest.raises(ForecastStoreError, match="covers"):
        latest_zone_forecast(store, [zone], init, init + pd.Timedelta(days=30))


def test_failed_export_leaves_no_store(two_forecasts, tmp_path):
    init, gridded, zones = two_forecasts[0]
    target = tmp_path / "bad.zarr"
    with pytest.raises(ForecastStoreError, match="carbon_intensity"):
        write_forecast_store([(init, gridded, zones.drop_vars("carbon_intensity"))], target, {})
    assert not list(tmp_path.glob("bad.zarr*"))


def test_export_rejects_out_of_range_products(two_forecasts, tmp_path):
    init, gridded, zones = two_forecasts[0]
    broken = zones.assign(renewable_share=zones["renewable_share"] * 0 + 1.5)
    with pytest.raises(ForecastStoreError, match=r"renewable_share.*outside"):
        write_forecast_store([(init, gridded, broken)], tmp_path / "bad.zarr", {})
    nan = zones.assign(wind_cf=zones["wind_cf"].where(zones["wind_cf"] < 0))
    with pytest.raises(ForecastStoreError, match="wind_cf.*non-finite"):
        write_forecast_store([(init, gridded, nan)], tmp_path / "bad.zarr", {})


def test_wandb_offline_tracking(tmp_path):
    from omegaconf import OmegaConf

    from carbonsync.train.common import LoggingConfig, Tracker

    tracker = Tracker(LoggingConfig(backend="wandb", project="carbonsync-test", mode="offline"),
                      tmp_path, "unit", {"lr": 1e-3})
    tracker.log({"train/loss": 1.0}, step=0)
    tracker.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    with pytest.raises(ValueError, match="backend=tensorboard: must be one of none, wandb"):
        LoggingConfig(backend="tensorboard")
    with pytest.raises(ValueError, match="tensorboard"):  # an untyped config is checked by the tracker too
        Tracker(OmegaConf.create({"backend": "tensorboard"}), tmp_path, "unit")


def test_placement_and_plots(run):
    plan = run.result["placement"]
    table = plan.to_frame()
    assert list(table["job"]) == ["tiny-pretrain", "tiny-finetune", "tiny-eval"]
    assert bool((plan.usage <= plan.capacity).all())
    assert table["emissions_kg"].sum() <= table["baseline_emissions_kg"].sum()
    for job_id in table["job"]:
        assert job_id in plan.explain(job_id) and plan[job_id].site in plan.explain(job_id)
    for png in ("forecast_maps.png", "renewable_share.png"):
        data = (RunPaths(run.run_dir).plots / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_stage_without_inputs_names_missing_artefact(tmp_path):
    from carbonsync.pipeline import train_backbone

    cfg = compose(["size=tiny", f"run_dir={tmp_path}", "progress=false"])
    with pytest.raises(FileNotFoundError, match="weather.zarr.*sample-world"):
        train_backbone(cfg)


def test_cli_help_lists_every_stage():
    out = subprocess.run([sys.executable, "-m", "carbonsync.cli", "--help"], capture_output=True, text=True, check=True)
    for stage in STAGES:
        assert stage in out.stdout


def test_cli_config_applies_overrides():
    out = subprocess.run([sys.executable, "-m", "carbonsync.cli", "config", "size=tiny", "train.backbone.epochs=3"],
                         capture_output=True, text=True, check=True)
    assert "nlat: 17" in out.stdout and "epochs: 3" in out.stdout


def test_cli_rejects_unknown_override():
    out = subprocess.run([sys.executable, "-m", "carbonsync.cli", "config", "nonsense.key=1"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "nonsense" in out.stderr


@pytest.mark.parametrize("overrides", [[], ["size=tiny"]], ids=["default", "tiny"])
def test_config_is_consistent(overrides):
    """The splits, forecasts and job queue fit inside the sample world the configuration generates."""
    cfg = compose(overrides)
    start = pd.Timestamp(cfg.data.start)
    end = start + pd.Timedelta(days=cfg.data.days) - pd.Timedelta(hours=1)
    splits = {k: tuple(pd.Timestamp(t) for t in v) for k, v in cfg.data.splits.items()}
    assert splits["train"][0] >= start and splits["test"][1] <= end
    assert splits["train"][1] < splits["val"][0] and splits["val"][1] < splits["test"][0]
    for init in cfg.forecast.init_times:
        t = pd.Timestamp(init)
        assert splits["test"][0] <= t and t + pd.Timedelta(hours=cfg.forecast.lead_hours) <= splits["test"][1]
    from carbonsync.placement import load_queue

    jobs = load_queue(cfg.placement.queue)
    last_init = max(pd.Timestamp(t) for t in cfg.forecast.init_times)
    assert max(j.deadline for j in jobs) <= last_init + pd.Timedelta(hours=cfg.forecast.lead_hours)


def test_prepare_era5_arco_layout_through_the_cli(tmp_path):
    """`carbonsync prepare data=era5_arco` on a local store in the ARCO layout: canonical store,
    training-split statistics and reanalysis-derived zone truth, all checked."""
    from carbonsync.cli import main

    times = pd.date_range("2021-01-01", periods=72, freq="h")
    source = make_store(tmp_path / "arco.zarr", np.linspace(90, -90, 19), np.arange(36) * 10.0, times)
    run_dir = tmp_path / "run"
    main(["prepare", "data=era5_arco", f"data.url={source}", f"run_dir={run_dir}", "progress=false",
          "data.nlat=17", "data.nlon=32", "data.variables=[u100,v100,z500,tcc,t2m,ssrd]",
          "data.splits.train=[2021-01-01,2021-01-01T23:00]", "data.splits.val=[2021-01-02,2021-01-02T11:00]",
          "data.splits.test=[2021-01-02T12:00,2021-01-03T23:00]"])
    paths = RunPaths(run_dir)
    weather = open_canonical(paths.weather, ["u100", "v100", "z500", "tcc", "t2m", "ssrd"])
    assert Grid.infer(weather) == Grid(17, 32) and weather.sizes["time"] == 72
    stats = read_stats(paths.weather)
    assert stats["n_times"] == 24
    t2m_train = weather["t2m"].isel(time=slice(0, 24)).astype(np.float64).weighted(Grid(17, 32).quadrature_weights())
    assert stats["variables"]["t2m"]["mean"] == pytest.approx(float(t2m_train.mean()), rel=1e-6)
    truth = xr.open_zarr(paths.truth)
    assert truth["renewable_share"].dims == ("time", "zone") and truth.sizes["time"] == 72
    assert float(truth["wind_cf"].max()) <= 1 and float(truth["solar_cf"].min()) >= 0
