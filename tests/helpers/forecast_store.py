"""Forecast-store test helpers: synthetic export runs (in-process and in a child process) and what a reader sees."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import icechunk
import numpy as np
import pandas as pd
import xarray as xr

from carbonsync.forecast.reader import open_forecast
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


def child_export(store: Path, n: int, pause: float = 0.0, kill_batch: int = 0,
                 marker: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(store), str(n), str(pause), str(kill_batch),
                             str(marker or ""), json.dumps(PROVENANCE)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(marker: Path, child: subprocess.Popen, timeout: float = 90) -> None:
    tic = time.monotonic()
    while not marker.exists() and child.poll() is None and time.monotonic() - tic < timeout:
        time.sleep(0.02)
    assert marker.exists(), child.communicate()[1]


def load_store(store: Path) -> dict[str, xr.Dataset]:
    return {g: open_forecast(store, g).load() for g in ("zones", "gridded")}


def check_visible(store: Path, reference: dict[str, xr.Dataset]) -> list[pd.Timestamp]:
    """What a reader sees: a prefix of INITS, complete and equal to an uninterrupted export's values. Returns
    the init times of the zones group as opened (each open reads the snapshot current at that moment, so with
    an export running the two groups may be one commit apart)."""
    visible = {}
    for group in ("zones", "gridded"):
        ds = open_forecast(store, group).load()
        inits = list(pd.DatetimeIndex(ds.init_time.values))
        assert inits == list(INITS[: len(inits)]), group
        for name in ds.data_vars:
            assert np.isfinite(ds[name].values).all(), f"{group}/{name} has non-finite values"
        xr.testing.assert_equal(ds, reference[group].sel(init_time=inits))
        visible[group] = inits
    return visible["zones"]


def orphaned_chunks(store: Path) -> int:
    """Chunk objects that no branch or tag reaches (written by an export that never committed them)."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    return repo.garbage_collect(dt.datetime.now(dt.timezone.utc), dry_run=True).chunks_deleted
