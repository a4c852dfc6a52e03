"""Batch export to the forecast store and the schedulers' reader: incremental appends, commits that a concurrent
reader or a SIGKILL cannot tear, repair on rerun, parallel (dask) export, and the `export` stage on the tiny run.

Most tests use :func:`carbonsync.forecast.synthetic.synthetic_forecast` (the chain's exact output layout, no
models) so they run without ``../shared`` or a trained run; the last ones use the session's tiny run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsync.forecast.export import (
    ForecastStoreError,
    committed_init_times,
    export_forecasts,
    latest_zone_forecast,
    open_forecast,
)
from carbonsync.forecast.reader import latest_forecast, reader_for
from carbonsync.forecast.synthetic import synthetic_forecast
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT
PROVENANCE = {"data_source": "synthetic-test", "backbone_package_sha256": "b" * 64, "grid": "equiangular 17x32"}
INITS = pd.date_range("2020-08-25", periods=6, freq="6h")
ZONES = ["north_sea", "iberia", "sahara", "nordics"]

# An export in a child process: `store n_inits pause_s kill_marker_batch marker`; after writing each batch's
# chunks and before committing it, the hook sleeps `pause_s` (a window for readers to race into), and on batch
# number `kill_marker_batch` it writes `marker` and sleeps for a long time so the test can SIGKILL it there.
CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import pandas as pd
    from carbonsync.forecast.export import export_forecasts
    from carbonsync.forecast.synthetic import synthetic_forecast
    store, n, pause, kill_batch, marker = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    inits = pd.date_range("2020-08-25", periods=n, freq="6h")
    batches = []
    def hook(batch):
        batches.append(batch)
        if len(batches) == kill_batch:
            Path(marker).write_text(json.dumps([str(t) for t in batch]))
            time.sleep(600)
        time.sleep(pause)
    export_forecasts(store, inits, synthetic_forecast, json.loads(sys.argv[6]), workers=2, before_commit=hook)
""")


def _child(store: Path, n: int, pause: float = 0.0, kill_batch: int = 0, marker: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(store), str(n), str(pause), str(kill_batch),
                             str(marker or ""), json.dumps(PROVENANCE)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _load(store: Path) -> dict[str, xr.Dataset]:
    return {g: open_forecast(store, g).load() for g in ("zones", "gridded")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, xr.Dataset]:
    """All of INITS exported serially in one uninterrupted run."""
    store = tmp_path_factory.mktemp("reference") / "fc.zarr"
    export_forecasts(store, INITS, synthetic_forecast, PROVENANCE, workers=1)
    return _load(store)


def _check_visible(store: Path, reference: dict[str, xr.Dataset]) -> list[pd.Timestamp]:
    """What a reader sees: committed init times only, a prefix of the full list, complete and equal to an
    uninterrupted export's values. Returns the init times of the zones group as opened (each open reads the
    commit current at that moment, so with an export running the two groups may be one commit apart)."""
    visible = {}
    for group in ("zones", "gridded"):
        ds = open_forecast(store, group).load()
        inits = list(pd.DatetimeIndex(ds.init_time.values))
        assert inits == list(INITS[: len(inits)]), group
        assert committed_init_times(store)[: len(inits)] == inits, group
        for name in ds.data_vars:
            assert np.isfinite(ds[name].values).all(), f"{group}/{name} has non-finite values"
        xr.testing.assert_equal(ds, reference[group].sel(init_time=inits))
        visible[group] = inits
    return visible["zones"]


def test_incremental_export_layout_units_and_provenance(tmp_path, reference):
    store = tmp_path / "fc.zarr"
    first = export_forecasts(store, INITS[:3], synthetic_forecast, PROVENANCE, workers=2)
    assert first.written == list(INITS[:3]) and first.committed == list(INITS[:3])
    again = export_forecasts(store, INITS[:5], synthetic_forecast, PROVENANCE, workers=2)
    assert again.skipped == list(INITS[:3]) and again.written == list(INITS[3:5])
    assert _check_visible(store, reference) == list(INITS[:5])

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
    root = json.loads((store / "zarr.json").read_text())
    assert root["attributes"]["committed_init_times"] == [t.isoformat() for t in INITS[:5]]
    assert "renewable_share(init_time, lead_time, zone) [1]" in root["attributes"]["layout_zones"]


def test_commit_writes_what_zarr_consolidation_writes(tmp_path):
    """Our one-file commit holds the same consolidated metadata as zarr.consolidate_metadata produces."""
    import warnings

    import zarr

    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:2], synthetic_forecast, PROVENANCE)
    ours = json.loads((store / "zarr.json").read_text())["consolidated_metadata"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(store))
    theirs = json.loads((store / "zarr.json").read_text())["consolidated_metadata"]
    assert ours == theirs


def test_parallel_export_equals_serial(tmp_path, reference):
    store = tmp_path / "fc.zarr"
    report = export_forecasts(store, INITS, synthetic_forecast, PROVENANCE, workers=3)
    assert report.workers == 3 and report.written == list(INITS)
    _check_visible(store, reference)


def test_reader_latest_forecast_selects_newest_covering_init(tmp_path, reference):
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:4], synthetic_forecast, PROVENANCE)   # 00, 06, 12, 18 UTC; 48 h leads
    fc = latest_forecast(store, ["sahara", "iberia"], "2020-08-25T20:00", "2020-08-26T08:00")
    assert fc.attrs["init_time"] == "2020-08-25 18:00:00"
    assert dict(fc.sizes) == {"time": 13, "zone": 2} and list(fc.zone.values) == ["sahara", "iberia"]
    assert pd.Timestamp(fc.time.values[0]) == pd.Timestamp("2020-08-25T20:00")
    expected = reference["zones"].sel(init_time="2020-08-25T18:00", zone=["sahara", "iberia"])
    np.testing.assert_array_equal(fc["renewable_share"].values, expected["renewable_share"].values[2:15])
    assert fc["carbon_intensity"].attrs["units"] == "gCO2eq kWh-1"
    # a window starting before the newest init takes an older one; a window ending past every forecast fails
    assert latest_forecast(store, ["iberia"], "2020-08-25T07:00", "2020-08-26T12:00").attrs["init_time"] == \
        "2020-08-25 06:00:00"
    with pytest.raises(ForecastStoreError, match="covers"):
        latest_forecast(store, ["iberia"], "2020-08-25T07:00", "2020-08-27T12:00")
    q = latest_forecast(store, ["nordics"], "2020-08-26", "2020-08-26T03:00", products=["wind_cf_quantile"])
    assert q["wind_cf_quantile"].dims == ("quantile", "time", "zone") and q.sizes["quantile"] == 3
    g = latest_forecast(store, None, "2020-08-26", "2020-08-26T05:00", products=["ssrd", "t2m"], group="gridded")
    assert g["ssrd"].dims == ("time", "lat", "lon") and g.sizes["time"] == 6
    np.testing.assert_array_equal(g["t2m"].values, reference["gridded"]["t2m"].sel(init_time=INITS[3]).values[6:12])
    with pytest.raises(ForecastStoreError, match="nowhere"):
        latest_forecast(store, ["nowhere"])
    with pytest.raises(ForecastStoreError, match="no_such_product"):
        latest_forecast(store, ["iberia"], products=["no_such_product"])
    with pytest.raises(ForecastStoreError, match="before its start"):
        latest_forecast(store, ["iberia"], "2020-08-26", "2020-08-25")
    # the compatibility name returns the same thing
    xr.testing.assert_identical(latest_zone_forecast(store, ["iberia"], "2020-08-26", "2020-08-26T04:00"),
                                latest_forecast(store, ["iberia"], "2020-08-26", "2020-08-26T04:00"))


def test_cached_reader_sees_each_new_commit(tmp_path):
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:1], synthetic_forecast, PROVENANCE)
    assert latest_forecast(store, ["iberia"]).attrs["init_time"] == str(INITS[0])
    snapshot = reader_for(store).snapshot()
    assert reader_for(store).snapshot() is snapshot   # no new commit: no re-read
    export_forecasts(store, INITS[:2], synthetic_forecast, PROVENANCE)
    assert latest_forecast(store, ["iberia"]).attrs["init_time"] == str(INITS[1])
    assert list(reader_for(store).committed_init_times()) == list(INITS[:2])


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
    assert committed_init_times(store) == list(INITS[2:4])
    legacy = tmp_path / "legacy.zarr"
    xr.Dataset(attrs={"title": "old"}).to_zarr(legacy, zarr_format=3, consolidated=False)
    with pytest.raises(ForecastStoreError, match="committed_init_times"):
        export_forecasts(legacy, INITS[:1], synthetic_forecast, PROVENANCE)


def test_failing_forecast_commits_the_prefix_and_names_its_init_time(tmp_path, reference):
    store = tmp_path / "fc.zarr"

    def flaky(t: pd.Timestamp):
        gridded, zones = synthetic_forecast(t)
        if t == INITS[4]:
            zones = zones.assign(solar_cf=zones["solar_cf"] + 2.0)
        return gridded, zones

    with pytest.raises(ForecastStoreError, match=r"2020-08-26 00:00:00.*solar_cf.*outside"):
        export_forecasts(store, INITS, flaky, PROVENANCE, workers=2)
    assert _check_visible(store, reference) == list(INITS[:4])
    report = export_forecasts(store, INITS, synthetic_forecast, PROVENANCE, workers=2)
    assert report.written == list(INITS[4:])
    _check_visible(store, reference)


def test_one_export_at_a_time(tmp_path):
    store = tmp_path / "fc.zarr"
    entered, release = threading.Event(), threading.Event()

    def hold(batch):
        entered.set()
        release.wait(20)

    worker = threading.Thread(target=export_forecasts, args=(store, INITS[:2], synthetic_forecast, PROVENANCE),
                              kwargs={"before_commit": hold})
    worker.start()
    try:
        assert entered.wait(20)
        with pytest.raises(ForecastStoreError, match="another export"):
            export_forecasts(store, INITS[2:3], synthetic_forecast, PROVENANCE)
    finally:
        release.set()
        worker.join()
    assert committed_init_times(store) == list(INITS[:2])


def test_concurrent_reader_sees_only_complete_committed_prefixes(tmp_path, reference):
    """A reader polling (xarray and latest_forecast) while another process exports 6 init times, pausing between
    writing each batch and committing it, never sees a partial or NaN-filled init time, only growing prefixes."""
    store = tmp_path / "fc.zarr"
    export_forecasts(store, INITS[:1], synthetic_forecast, PROVENANCE)
    child = _child(store, len(INITS), pause=0.3)
    seen: list[int] = []
    raced = 0
    try:
        while child.poll() is None or not seen or seen[-1] < len(INITS):
            on_disk = json.loads((store / "zones" / "renewable_share" / "zarr.json").read_text())["shape"][0]
            committed = _check_visible(store, reference)
            raced += on_disk > len(committed)   # uncommitted chunks were on disk while we read
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
    (seeded) moments; after each kill the store opens with complete committed init times only, and a rerun
    repairs it and completes it to the values of an uninterrupted export."""
    store, marker = tmp_path / "fc.zarr", tmp_path / "written"
    tic = time.monotonic()
    child = _child(store, len(INITS), kill_batch=3, marker=marker)   # batches: [0], [1, 2], [3, 4] <- killed here
    while not marker.exists() and child.poll() is None and time.monotonic() - tic < 60:
        time.sleep(0.02)
    assert marker.exists(), child.communicate()[1]
    child.send_signal(signal.SIGKILL)
    child.wait()
    to_marker = time.monotonic() - tic   # interpreter start, imports and three batches, on this machine now
    assert json.loads(marker.read_text()) == [str(INITS[3]), str(INITS[4])]
    assert _check_visible(store, reference) == list(INITS[:3])
    on_disk = json.loads((store / "gridded" / "u100" / "zarr.json").read_text())["shape"][0]
    assert on_disk == 5   # the killed batch's chunks are there, uncommitted

    rng = random.Random(5)
    for _ in range(2):
        child = _child(store, len(INITS), pause=0.05)
        time.sleep(rng.uniform(0.6, 1.1) * to_marker)
        child.send_signal(signal.SIGKILL)
        child.wait()
        _check_visible(store, reference)

    report = export_forecasts(store, INITS, synthetic_forecast, PROVENANCE, workers=2)
    assert report.committed == list(INITS)
    _check_visible(store, reference)
    assert not list(store.rglob("*.partial")) and not list(tmp_path.glob("fc.zarr.tmp-*"))


def test_rerun_after_a_kill_repairs_uncommitted_slots(tmp_path, reference):
    """The repair step on its own: chunks written for two init times but never committed are truncated."""
    store = tmp_path / "fc.zarr"

    def crash(batch):
        raise KeyboardInterrupt   # stands in for a kill between writing and committing

    with pytest.raises(KeyboardInterrupt):
        export_forecasts(store, INITS[:3], synthetic_forecast, PROVENANCE, workers=2,
                         before_commit=lambda b: crash(b) if len(b) == 2 else None)
    assert committed_init_times(store) == list(INITS[:1])
    assert json.loads((store / "zones" / "wind_cf" / "zarr.json").read_text())["shape"][0] == 3
    report = export_forecasts(store, INITS[:3], synthetic_forecast, PROVENANCE, workers=2)
    assert report.repaired_slots == 2 and report.skipped == list(INITS[:1]) and report.written == list(INITS[1:3])
    _check_visible(store, reference)


def test_export_stage_init_times_from_config():
    from carbonsync.config import compose
    from carbonsync.pipeline import export_init_times

    cfg = compose(["size=tiny"])
    assert export_init_times(cfg) == [pd.Timestamp(t) for t in cfg.forecast.init_times]
    cfg = compose(["size=tiny", "forecast.export.start=2020-08-24", "forecast.export.end=2020-08-25T12:00",
                   "forecast.export.every_hours=12"])
    assert export_init_times(cfg) == list(pd.date_range("2020-08-24", periods=4, freq="12h"))
    cfg = compose(["size=tiny", "forecast.export.init_times=[2020-08-26T06:00]", "forecast.export.start=2020-08-24"])
    assert export_init_times(cfg) == [pd.Timestamp("2020-08-26T06:00")]
    with pytest.raises(ValueError, match="together"):
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
