"""Batch export to the Icechunk forecast store: incremental appends in init-time order, one commit per batch,
commits that a concurrent reader or a SIGKILL cannot tear, resume on rerun, parallel (dask) export, replace,
and the `export` stage on the tiny run.

Most tests use :func:`carbonsync.forecast.synthetic.synthetic_forecast` (the chain's exact output layout, no
models) so they run without ``../shared`` or a trained run; the last ones use the session's tiny run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import icechunk
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from carbonsync.forecast.export import ForecastStoreError, export_forecasts, write_forecast_store
from carbonsync.forecast.reader import committed_init_times, latest_forecast, open_forecast
from carbonsync.forecast.store import history, open_repository
from carbonsync.forecast.synthetic import synthetic_forecast
from tests.helpers.forecast_store import (
    INITS,
    PROVENANCE,
    ZONES,
    check_visible,
    child_export,
    orphaned_chunks,
    wait_for,
)


def test_incremental_export_layout_units_and_provenance(tmp_path, reference):
    store = tmp_path / "fc.zarr"
    first = export_forecasts(store, INITS[:3], synthetic_forecast, PROVENANCE, workers=2)
    assert first.written == list(INITS[:3]) and first.committed == list(INITS[:3])
    again = export_forecasts(store, INITS[:5], synthetic_forecast, PROVENANCE, workers=2)
    assert again.skipped == list(INITS[:3]) and again.written == list(INITS[3:5])
    assert check_visible(store, reference) == list(INITS[:5])
    assert committed_init_times(store) == list(INITS[:5])

    zones, gridded = open_forecast(store, "zones"), open_forecast(store, "gridded")
    assert zones["renewable_share"].dims == ("init_time", "lead_time", "zone")
    assert zones["wind_cf_quantile"].dims == ("init_time", "quantile", "lead_time", "zone")
    assert gridded["ssrd"].dims == ("init_time", "lead_time", "lat", "lon")
    assert zones["renewable_share"].encoding["chunks"] == (1, 49, 4)   # one zone chunk per init time
    assert gridded["u100"].encoding["chunks"] == (1, 24, 17, 32)
    assert zones["init_time"].encoding["units"] == "minutes since 1970-01-01"
    assert zones["init_time"].attrs["standard_name"] == "forecast_reference_time"
    assert zones["lead_time"].attrs["standard_name"] == "forecast_period"
    assert gridded["ssrd"].attrs["units"] == "J m-2" and zones["carbon_intensity"].attrs["units"] == "gCO2eq kWh-1"
    np.testing.assert_array_equal(zones.valid_time.values, zones.init_time.values[:, None] + zones.lead_time.values)
    for attrs in (zones.attrs, gridded.attrs):
        assert attrs["Conventions"] == "CF-1.8" and attrs["data_source"] == "synthetic-test"
        assert attrs["backbone_package_sha256"] == "b" * 64 and attrs["code_version"].startswith("carbonsync")
        assert attrs["code_commit"]
    # one Icechunk commit per batch: [0] (schema + first init time), [1, 2], then [3, 4]; each names its init times
    commits = history(store)
    assert [c["message"].split(":")[0] for c in commits] == ["export 2 init time(s)", "export 2 init time(s)",
                                                             "export 1 init time(s)", "Repository initialized"]
    assert commits[0]["metadata"]["init_times"] == [t.isoformat() for t in INITS[3:5]]
    assert again.snapshots == [commits[0]["id"]]
    assert again.snapshot_id == commits[0]["id"] and first.snapshots == [commits[2]["id"], commits[1]["id"]]
    # the store is plain Icechunk + Zarr: readable without carbonsync, as the module docstrings say
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    session = repo.readonly_session("main")
    plain = xr.open_zarr(session.store, group="zones", consolidated=False)
    xr.testing.assert_identical(plain.load(), zones.load())
    root = zarr.open_group(session.store, mode="r")
    assert "renewable_share(init_time, lead_time, zone) [1]" in root.attrs["layout_zones"]


def test_parallel_export_equals_serial(tmp_path, reference):
    store = tmp_path / "fc.zarr"
    report = export_forecasts(store, INITS, synthetic_forecast, PROVENANCE, workers=3)
    assert report.workers == 3 and report.written == list(INITS)
    assert len(report.snapshots) == 3   # [0], [1, 2, 3], [4, 5]
    check_visible(store, reference)


def test_export_rejects_bad_appends(tmp_path):
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[2:4], synthetic_forecast, PROVENANCE)
    with pytest.raises(ForecastStoreError, match="not after the store's last committed"):
        export_forecasts(store, INITS[:1], synthetic_forecast, PROVENANCE)
    with pytest.raises(ForecastStoreError, match="backbone_package_sha256"):
        export_forecasts(store, INITS[4:5], synthetic_forecast, {**PROVENANCE, "backbone_package_sha256": "c" * 64})
    with pytest.raises(ForecastStoreError, match="zone"):
        export_forecasts(store, INITS[4:5], lambda t: synthetic_forecast(t, zones=ZONES[:3]), PROVENANCE)
    with pytest.raises(ForecastStoreError, match="lead_time"):
        export_forecasts(store, INITS[4:5], lambda t: synthetic_forecast(t, lead_hours=24), PROVENANCE)
    with pytest.raises(ForecastStoreError, match="not a date-time"):
        export_forecasts(store, ["yesterday-ish"], synthetic_forecast, PROVENANCE)
    with pytest.raises(ForecastStoreError, match="at least 1"):
        export_forecasts(store, INITS[4:5], synthetic_forecast, PROVENANCE, workers=0)
    assert committed_init_times(store) == list(INITS[2:4])
    assert len(history(store)) == 3   # nothing of the rejected exports was committed
    legacy = tmp_path / "legacy.zarr"   # a plain Zarr store, as carbonsync wrote before Icechunk
    xr.Dataset(attrs={"title": "old"}).to_zarr(legacy, zarr_format=3, consolidated=False)
    with pytest.raises(ForecastStoreError, match="not an Icechunk forecast store"):
        export_forecasts(legacy, INITS[:1], synthetic_forecast, PROVENANCE)
    with pytest.raises(ForecastStoreError, match="not an Icechunk forecast store"):
        latest_forecast(legacy, ["iberia"])
    with pytest.raises(ForecastStoreError, match="does not exist"):
        open_forecast(tmp_path / "nowhere.zarr")


def test_failing_forecast_commits_the_prefix_and_names_its_init_time(tmp_path, reference):
    store = tmp_path / "fc.zarr"

    def flaky(t: pd.Timestamp):
        gridded, zones = synthetic_forecast(t)
        if t == INITS[4]:
            zones = zones.assign(solar_cf=zones["solar_cf"] + 2.0)
        return gridded, zones

    with pytest.raises(ForecastStoreError, match=r"2020-08-26 00:00:00.*solar_cf.*outside"):
        export_forecasts(store, INITS, flaky, PROVENANCE, workers=2)   # batches [0], [1, 2], [3, 4 <- fails]
    assert check_visible(store, reference) == list(INITS[:4])
    report = export_forecasts(store, INITS, synthetic_forecast, PROVENANCE, workers=2)
    assert report.written == list(INITS[4:]) and report.skipped == list(INITS[:4])
    check_visible(store, reference)


def test_concurrent_reader_sees_only_complete_committed_snapshots(tmp_path, reference):
    """A reader polling (xarray and latest_forecast) while another process exports 6 init times, pausing between
    writing each batch and committing it, never sees a partial or NaN-filled init time, only growing prefixes,
    while chunks of uncommitted batches are already in the repository."""
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:1], synthetic_forecast, PROVENANCE)
    repo = open_repository(store)
    child = child_export(store, len(INITS), pause=0.3)
    seen: list[int] = []
    chunk_files: dict[str, int] = {}   # snapshot id -> chunk objects on disk when first seen
    raced = 0
    try:
        while child.poll() is None or not seen or seen[-1] < len(INITS):
            tip = repo.lookup_branch("main")
            files = len(os.listdir(store / "chunks"))
            raced += files > chunk_files.setdefault(tip, files)   # new chunks, no new commit: a batch in flight
            committed = check_visible(store, reference)
            fc = latest_forecast(store, ZONES)
            init = pd.Timestamp(fc.attrs["init_time"])
            assert init in committed or init > committed[-1]   # the reader may have caught a later commit
            np.testing.assert_array_equal(fc["renewable_share"].values,
                                          reference["zones"]["renewable_share"].sel(init_time=init).values)
            assert not seen or len(committed) >= seen[-1]
            seen.append(len(committed))
            if child.poll() is not None and child.returncode != 0:
                break
            time.sleep(0.02)   # leave the writer some CPU on a busy machine
    finally:
        child.kill()
        _, err = child.communicate()
    assert child.returncode == 0, err
    assert len(set(seen)) >= 3, f"the reader saw too few commits: {seen}"
    assert raced > 0, "the reader never overlapped a written-but-uncommitted batch"


def test_killed_exports_leave_complete_init_times_and_a_rerun_completes(tmp_path, reference):
    """SIGKILL an export (a) between writing a batch's chunks and committing them, then (b) twice at random
    (seeded) moments; after each kill the store shows only committed init times, all complete, and a rerun
    resumes after them and completes the store to the values of an uninterrupted export."""
    store, marker = tmp_path / "fc.zarr", tmp_path / "written"
    tic = time.monotonic()
    child = child_export(store, len(INITS), kill_batch=3, marker=marker)   # batches: [0], [1, 2], [3, 4] <- killed
    wait_for(marker, child)
    child.send_signal(signal.SIGKILL)
    child.wait()
    to_marker = time.monotonic() - tic   # interpreter start, imports and three batches, on this machine now
    assert json.loads(marker.read_text()) == [str(INITS[3]), str(INITS[4])]
    assert check_visible(store, reference) == list(INITS[:3])
    assert committed_init_times(store) == list(INITS[:3])
    assert orphaned_chunks(store) > 0   # the killed batch's chunks were written, and no snapshot points to them
    assert len(history(store)) == 3     # initialized, [0], [1, 2]

    rng = random.Random(5)
    for _ in range(2):
        child = child_export(store, len(INITS), pause=0.05)
        time.sleep(rng.uniform(0.6, 1.1) * to_marker)
        child.send_signal(signal.SIGKILL)
        child.wait()
        check_visible(store, reference)

    before = committed_init_times(store)
    report = export_forecasts(store, INITS, synthetic_forecast, PROVENANCE, workers=2)
    assert report.skipped == before and report.written == [t for t in INITS if t not in before]
    assert report.committed == list(INITS)
    check_visible(store, reference)
    assert not list(tmp_path.glob("fc.zarr.tmp-*"))


def test_replace_is_invisible_until_done_and_a_failed_one_changes_nothing(tmp_path, reference):
    """``replace=True`` (the forecast stage): readers keep seeing the old store while the new one is written,
    then see the new one whole; a replace that fails midway leaves the old store and no branch behind; old
    snapshots stay readable by id."""
    store = tmp_path / "fc.zarr"
    old = export_forecasts(store, INITS[:4], synthetic_forecast, PROVENANCE, workers=2)
    during: list[str] = []

    def look(batch):
        during.append(latest_forecast(store, ["iberia"]).attrs["init_time"])

    new = export_forecasts(store, INITS[:3], synthetic_forecast, PROVENANCE, workers=2, replace=True,
                           before_commit=look)
    assert during == [str(INITS[3])] * 2   # both batches of the replace: still the old store's newest init time
    assert new.written == list(INITS[:3]) and committed_init_times(store) == list(INITS[:3])
    check_visible(store, reference)
    assert open_repository(store).list_branches() == {"main"}
    assert committed_init_times(store, snapshot=old.snapshot_id) == list(INITS[:4])   # history is kept

    def broken(t: pd.Timestamp):
        gridded, zones = synthetic_forecast(t)
        return (gridded.assign(t2m=gridded["t2m"] * np.nan), zones) if t == INITS[2] else (gridded, zones)

    with pytest.raises(ForecastStoreError, match="t2m.*non-finite"):
        export_forecasts(store, INITS, broken, PROVENANCE, workers=2, replace=True)
    assert committed_init_times(store) == list(INITS[:3]) and open_repository(store).list_branches() == {"main"}
    assert open_repository(store).lookup_branch("main") == new.snapshot_id
    # a replace into a new path that fails leaves nothing there
    with pytest.raises(ForecastStoreError, match="t2m.*non-finite"):
        write_forecast_store([(t, *broken(t)) for t in INITS[:3]], tmp_path / "new.zarr", PROVENANCE)
    assert not list(tmp_path.glob("new.zarr*"))


def test_replace_rewrites_a_store_of_the_old_format(tmp_path, reference):
    """The forecast stage on a run directory written before Icechunk: the plain Zarr store is replaced."""
    store = tmp_path / "fc.zarr"
    xr.Dataset({"x": ("t", np.arange(3))}, attrs={"title": "old"}).to_zarr(store, zarr_format=3, consolidated=False)
    report = export_forecasts(store, INITS[:2], synthetic_forecast, PROVENANCE, replace=True)
    assert report.committed == list(INITS[:2])
    check_visible(store, reference)
    assert not list(tmp_path.glob("fc.zarr.tmp-*"))


def test_export_stage_init_times_from_config():
    from carbonsync.config import compose
    from carbonsync.pipeline import export_init_times

    cfg = compose(["size=tiny"])
    assert export_init_times(cfg) == [pd.Timestamp(t) for t in cfg.forecast.init_times]
    cfg = compose(["size=tiny", "forecast.export.start=2020-08-24", "forecast.export.end=2020-08-25T12:00",
                   "forecast.export.every_hours=12"])
    assert export_init_times(cfg) == list(pd.date_range("2020-08-24", periods=4, freq="12h"))
    cfg = compose(["size=tiny", "forecast.export.init_times=[2020-08-26T06:00]", "forecast.export.start=2020-08-24",
                   "forecast.export.end=2020-08-25"])   # explicit init times win over a range
    assert export_init_times(cfg) == [pd.Timestamp("2020-08-26T06:00")]
    with pytest.raises(ValueError, match="together"):   # (the typed config rejects it when composed)
        export_init_times(compose(["size=tiny", "forecast.export.start=2020-08-24"]))
    with pytest.raises(ValueError, match="after"):
        export_init_times(compose(["size=tiny", "forecast.export.start=2020-08-25", "forecast.export.end=2020-08-24"]))


# ------------------------------------------------------------------------------------------------------------
# on the tiny run: the real chain through the `export` stage and the CLI


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_export_stage_appends_real_forecasts(run, tmp_path):
    from carbonsync.cli import main
    from carbonsync.core.layout import RunPaths
    from carbonsync.models.package import load_package

    store = tmp_path / "exported.zarr"
    first = pd.Timestamp(run.cfg.forecast.init_times[0])
    common = [f"run_dir={run.run_dir}", "size=tiny", "progress=false", f"forecast.export.store={store}"]
    main(["export", *common, f"forecast.export.init_times=[{first.isoformat()}]"])
    main(["export", *common, f"forecast.export.start={first.isoformat()}",
          f"forecast.export.end={(first + pd.Timedelta(hours=12)).isoformat()}", "forecast.export.every_hours=6"])
    assert committed_init_times(store) == [first + pd.Timedelta(hours=h) for h in (0, 6, 12)]
    ours, stage = open_forecast(store, "zones"), open_forecast(RunPaths(run.run_dir).forecast, "zones")
    np.testing.assert_allclose(ours["renewable_share"].sel(init_time=first).values,
                               stage["renewable_share"].sel(init_time=first).values, rtol=1e-6)
    assert ours.attrs["head_package_sha256"] == load_package(RunPaths(run.run_dir).packages / "head").hash
    window = latest_forecast(store, ["iberia"], first + pd.Timedelta(hours=14), first + pd.Timedelta(hours=30))
    assert window.attrs["init_time"] == str(first + pd.Timedelta(hours=12))
    assert np.isfinite(window["renewable_share"].values).all()
