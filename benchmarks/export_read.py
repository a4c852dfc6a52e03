"""Forecast store throughput: batch export (init times/s, MB/s) and the schedulers' reader (reads/s, MB/s).

    python benchmarks/export_read.py [--inits 8 --lead-hours 120 --nlat 33 --nlon 64 --repeats 3]
                                     [--run-dir outputs/main]   # also time the real forecast chain

Prints one JSON object. Everything is measured against a baseline run in the same process, interleaved:

- **export**: ``export_forecasts`` (append-only into an Icechunk repository, one commit per batch, ``workers``
  init times at a time on dask's threaded scheduler) against a plain ``xarray.Dataset.to_zarr(append_dim=
  "init_time")`` per init time into a plain Zarr directory (no transactions; a reader can see it half-written). Forecasts are
  precomputed synthetic ones with the chain's exact layout, so this times the store, not the models.
  ``--run-dir`` adds the real chain (packages and weather of a finished run) with 1 and 2 workers.
- **read**: ``latest_forecast(store, 3 zones, 48 h window)`` (4 products; metadata cached per snapshot, one
  look-up of ``main``'s tip per call, zone chunks from the reader's slab cache after the first call), the same
  with the slab cache off (``ForecastReader(store, cache_bytes=0)``: one chunk read through Icechunk per
  product per call), against the same selection through ``xarray.open_zarr(session.store, ...).sel(...)
  .load()`` on a fresh Icechunk session per call (what one would write with xarray alone); a cold call
  (fresh reader: repository opened, metadata parsed, chunks read) too; and a gridded read (all 6 fields,
  24 h, global) in MB/s.
- **zone chunking**: the same reads, slab cache off, on a store whose zone products are chunked one zone per
  chunk.

``export_read_throughput(tmp_dir)`` returns the figures as a dict (``benchmarks/placement_scale.py`` imports
it); sizes default to a fast configuration (about 20-40 s on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from carbonsync.forecast.export import _with_valid_time, export_forecasts, to_lead_time  # noqa: E402
from carbonsync.forecast.reader import ForecastReader, latest_forecast  # noqa: E402
from carbonsync.forecast.store import ZONE_PRODUCTS, readonly_session  # noqa: E402
from carbonsync.forecast.synthetic import synthetic_forecast  # noqa: E402
from carbonsync.physics.grid import Grid  # noqa: E402

ZONES = ("north_sea", "iberia", "sahara", "patagonia", "great_plains", "east_asia")
PROVENANCE = {"data_source": "synthetic-benchmark", "backbone_package_sha256": "0" * 64}


def _median_rate(fn, n: int) -> tuple[float, float]:
    """Median seconds per call of ``fn`` over ``n`` calls, and its result's size in bytes."""
    times, nbytes = [], 0
    for _ in range(n):
        tic = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - tic)
        nbytes = out.nbytes
    return statistics.median(times), nbytes


def _baseline_export(path: Path, forecasts: dict) -> None:
    """Plain xarray appends along init_time, no commit protocol."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (t, (g, z)) in enumerate(forecasts.items()):
            for group, ds in (("gridded", g), ("zones", z)):
                ds = _with_valid_time(to_lead_time(ds, t))
                ds = ds.assign_coords({k: ds[k].astype(object) for k in ds.coords if ds[k].dtype.kind == "U"})
                if i == 0:
                    enc = {"init_time": {"units": "minutes since 1970-01-01", "dtype": "int64"},
                           "valid_time": {"units": "minutes since 1970-01-01", "dtype": "int64"}}
                    ds.to_zarr(path, group=group, mode="a", zarr_format=3, consolidated=False, encoding=enc)
                else:
                    ds.to_zarr(path, group=group, append_dim="init_time", zarr_format=3, consolidated=False)
            import zarr

            zarr.consolidate_metadata(str(path))


def _xarray_read(store: Path, zones: list[str], start: pd.Timestamp, end: pd.Timestamp) -> xr.Dataset:
    """The selection latest_forecast makes, done with xarray.open_zarr on a new Icechunk session per call."""
    ds = xr.open_zarr(readonly_session(store).store, group="zones", consolidated=False)
    inits = pd.DatetimeIndex(ds.init_time.values)
    ok = (inits <= start) & (inits + pd.Timedelta(ds.lead_time.values[-1]) >= end)
    one = ds[list(ZONE_PRODUCTS)].sel(init_time=inits[np.flatnonzero(ok)[-1]], zone=zones)
    lead = slice(start - inits[np.flatnonzero(ok)[-1]], end - inits[np.flatnonzero(ok)[-1]])
    return one.sel(lead_time=lead).load()


def export_read_throughput(tmp_dir: Path, inits: int = 6, lead_hours: int = 120, nlat: int = 33, nlon: int = 64,
                           repeats: int = 1, reads: int = 200, run_dir: str | Path | None = None) -> dict:
    """Export and read throughput of the forecast store (see the module docstring); a dict of figures."""
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    grid = Grid(nlat, nlon)
    times = pd.date_range("2020-11-18", periods=inits, freq="6h")
    forecasts = {t: synthetic_forecast(t, lead_hours, grid, ZONES) for t in times}
    mb_per_init = sum(ds.nbytes for ds in forecasts[times[0]]) / 1e6
    out: dict = {"config": {"inits": inits, "lead_hours": lead_hours, "grid": grid.attr(), "zones": len(ZONES),
                            "repeats": repeats, "reads": reads, "mb_per_init_time": round(mb_per_init, 2)}}

    # export: ours with 1 and 2 workers against plain xarray appends, interleaved
    walls: dict[str, list[float]] = {"ours_1_worker": [], "ours_2_workers": [], "xarray_append": []}
    store = tmp_dir / "ours.zarr"
    export_forecasts(tmp_dir / "warmup.zarr", times[:2], forecasts.__getitem__, PROVENANCE, workers=2)  # first-use costs
    _baseline_export(tmp_dir / "warmup_xr.zarr", dict(list(forecasts.items())[:2]))
    labels = list(walls)
    for r in range(repeats):
        for label in labels[r % 3:] + labels[: r % 3]:  # rotate the order so machine load hits all alike
            path = tmp_dir / f"{label}.zarr"
            shutil.rmtree(path, ignore_errors=True)
            tic = time.perf_counter()
            if label == "xarray_append":
                _baseline_export(path, forecasts)
            else:
                export_forecasts(path, times, forecasts.__getitem__, PROVENANCE, workers=1 if "1" in label else 2)
            walls[label].append(time.perf_counter() - tic)
    shutil.rmtree(tmp_dir / "xarray_append.zarr", ignore_errors=True)
    shutil.rmtree(tmp_dir / "ours_1_worker.zarr", ignore_errors=True)
    shutil.move(tmp_dir / "ours_2_workers.zarr", store)
    med = {k: statistics.median(v) for k, v in walls.items()}
    out["export"] = {
        **{f"{k}_init_times_per_s": round(inits / v, 2) for k, v in med.items()},
        **{f"{k}_mb_per_s": round(inits * mb_per_init / v, 1) for k, v in med.items()},
        "ratio_ours_2_workers_over_xarray_append_time": round(med["ours_2_workers"] / med["xarray_append"], 2),
        "ratio_ours_1_worker_over_xarray_append_time": round(med["ours_1_worker"] / med["xarray_append"], 2),
        "speedup_2_workers": round(med["ours_1_worker"] / med["ours_2_workers"], 2),
    }

    # read: the reader API against xarray per call, interleaved in blocks
    zones = ["iberia", "north_sea", "east_asia"]
    start = times[-1] + pd.Timedelta(hours=3)
    end = start + pd.Timedelta(hours=48)
    latest_forecast(store, zones, start, end)
    uncached = ForecastReader(store, cache_bytes=0)
    uncached.latest(zones, start, end)
    ours_s, nocache_s, xr_s, ours_bytes = [], [], [], 0
    for _ in range(5):
        t, ours_bytes = _median_rate(lambda: latest_forecast(store, zones, start, end), reads // 5)
        ours_s.append(t)
        nocache_s.append(_median_rate(lambda: uncached.latest(zones, start, end), reads // 5)[0])
        xr_s.append(_median_rate(lambda: _xarray_read(store, zones, start, end), max(2, reads // 50))[0])
    np.testing.assert_array_equal(latest_forecast(store, zones, start, end)["renewable_share"].values,
                                  _xarray_read(store, zones, start, end)["renewable_share"].values)
    cold, _ = _median_rate(lambda: ForecastReader(store).latest(zones, start, end), 10)
    grid_s, grid_bytes = _median_rate(lambda: latest_forecast(store, None, start, start + pd.Timedelta(hours=23),
                                                              group="gridded"), 20)
    ours, nocache, base = statistics.median(ours_s), statistics.median(nocache_s), statistics.median(xr_s)
    out["read"] = {
        "latest_forecast_reads_per_s": round(1 / ours, 1), "latest_forecast_ms": round(ours * 1e3, 2),
        "uncached_reads_per_s": round(1 / nocache, 1), "uncached_ms": round(nocache * 1e3, 2),
        "latest_forecast_mb_per_s": round(ours_bytes / ours / 1e6, 3), "bytes_per_read": int(ours_bytes),
        "xarray_open_sel_reads_per_s": round(1 / base, 1), "speedup_over_xarray_open_sel": round(base / ours, 1),
        "cold_call_ms": round(cold * 1e3, 1),
        "gridded_24h_global_mb_per_s": round(grid_bytes / grid_s / 1e6, 1), "gridded_read_ms": round(grid_s * 1e3, 1),
    }

    # zone chunking: one zone per chunk against all zones in one chunk
    one_zone = tmp_dir / "zone_chunk_1.zarr"
    export_forecasts(one_zone, times[-2:], forecasts.__getitem__, PROVENANCE, workers=1, zone_chunk=1)
    cases = {f"{label}_{which}": (path, sel)
             for label, path in (("all_zones_per_chunk", store), ("one_zone_per_chunk", one_zone))
             for which, sel in (("1_zone", zones[:1]), ("all_zones", list(ZONES)))}
    blocks: dict[str, list[float]] = {k: [] for k in cases}
    readers = {path: ForecastReader(path, cache_bytes=0) for path in (store, one_zone)}
    for path, sel in cases.values():
        readers[path].latest(sel, start, end)
    for _ in range(5):  # interleaved blocks
        for key, (path, sel) in cases.items():
            blocks[key].append(_median_rate(lambda r=readers[path], z=sel: r.latest(z, start, end), reads // 10)[0])
    out["zone_chunking"] = {f"{k}_reads_per_s": round(1 / statistics.median(v), 1) for k, v in blocks.items()}

    if run_dir is not None:
        out["real_chain"] = _real_chain(Path(run_dir), tmp_dir, repeats)
    return out


def _real_chain(run_dir: Path, tmp_dir: Path, repeats: int) -> dict:
    """Export with the real forecast chain of a finished run: 1 against 2 workers (torch on 1 thread each)."""
    import torch
    from omegaconf import OmegaConf

    from carbonsync.pipeline import _forecast_source

    cfg = OmegaConf.load(run_dir / "config.yaml")
    forecast_fn, provenance = _forecast_source(cfg)
    first = pd.Timestamp(cfg.forecast.init_times[0])
    times = pd.date_range(first, periods=4, freq="6h")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    forecast_fn(times[0])  # warm up
    walls: dict[str, list[float]] = {"1_worker": [], "2_workers": []}
    try:
        for _ in range(repeats):
            for label in walls:
                path = tmp_dir / f"real_{label}.zarr"
                shutil.rmtree(path, ignore_errors=True)
                tic = time.perf_counter()
                export_forecasts(path, times, forecast_fn, provenance, workers=1 if label == "1_worker" else 2)
                walls[label].append(time.perf_counter() - tic)
    finally:
        torch.set_num_threads(threads)
    med = {k: statistics.median(v) for k, v in walls.items()}
    return {"run_dir": str(run_dir), "inits": len(times), "lead_hours": int(cfg.forecast.lead_hours),
            **{f"{k}_init_times_per_s": round(len(times) / v, 3) for k, v in med.items()},
            "speedup_2_workers": round(med["1_worker"] / med["2_workers"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=8)
    parser.add_argument("--lead-hours", type=int, default=120)
    parser.add_argument("--nlat", type=int, default=33)
    parser.add_argument("--nlon", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--run-dir", default=None, help="a finished run: also time the real chain's export")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="export_read_") as tmp:
        figures = export_read_throughput(Path(tmp), args.inits, args.lead_hours, args.nlat, args.nlon, args.repeats,
                                         args.reads, args.run_dir)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
