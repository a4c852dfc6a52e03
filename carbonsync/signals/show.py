"""A signal as a table, a summary, a file or a figure (what ``carbonsync signals show|fetch`` prints and saves)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from carbonsync.core.fs import atomic_path, netcdf_engine, write_text_atomic
from carbonsync.signals.base import SignalFormatError, check_signal

__all__ = ["SAVE_FORMATS", "describe", "plot_signal", "save_signal", "signal_frame"]

SAVE_FORMATS = (".nc", ".csv")


def signal_frame(ds: xr.Dataset) -> pd.DataFrame:
    """One row per value: ``[issued_at,] time, zone, value, estimated`` and ``q<level>`` columns for quantiles."""
    check_signal(ds)
    keys = [d for d in ("issued_at", "time", "zone") if d in ds.dims]
    frame = ds[["value", "estimated"]].to_dataframe().reset_index()[keys + ["value", "estimated"]]
    if "value_quantiles" in ds:
        q = ds["value_quantiles"].to_dataframe().reset_index().pivot_table(index=keys, columns="quantile",
                                                                          values="value_quantiles")
        q.columns = [f"q{c:g}" for c in q.columns]
        frame = frame.merge(q.reset_index(), on=keys, how="left")
    return frame.dropna(subset=["value"]).reset_index(drop=True)


def describe(ds: xr.Dataset, rows: int = 12) -> str:
    """A header naming the kind, units, provider, endpoint and retrieval time, then the first and last rows."""
    frame = signal_frame(ds)
    times = pd.DatetimeIndex(frame["time"]) if len(frame) else pd.DatetimeIndex([])
    span = f"{times.min()} to {times.max()}" if len(times) else "no values"
    method = f", {ds.attrs['method']}" if ds.attrs.get("method") else ""
    index = " (an index, not a physical quantity)" if ds.attrs.get("index") == "yes" else ""
    units = "fractions (1)" if ds.attrs["units"] == "1" else ds.attrs["units"]
    lines = [
        f"{ds.attrs['kind']} in {units}{index} from {ds.attrs.get('provider', '?')}{method}",
        f"  endpoint {ds.attrs.get('endpoint') or '-'}, retrieved {ds.attrs.get('retrieved_at', '?')}",
        f"  {len(frame)} value(s), {span}; {int(frame['estimated'].sum()) if len(frame) else 0} estimated",
    ]
    if len(frame):
        shown = frame if len(frame) <= rows else pd.concat([frame.head(rows // 2), frame.tail(rows - rows // 2)])
        table = shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        if len(frame) > rows:
            head, *rest = table.splitlines()
            body = rest[: rows // 2] + ["  ..."] + rest[rows // 2:]
            table = "\n".join([head, *body])
        lines.append(table)
    return "\n".join(lines)


def save_signal(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` atomically as NetCDF (``.nc``, the whole dataset) or CSV (``.csv``, :func:`signal_frame`)."""
    path = Path(path)
    if path.suffix not in SAVE_FORMATS:
        raise SignalFormatError(f"cannot save to '{path}': the name must end in {' or '.join(SAVE_FORMATS)}",
                                provider=str(ds.attrs.get("provider", "unknown")))
    check_signal(ds)
    if path.suffix == ".csv":
        return write_text_atomic(signal_frame(ds).to_csv(index=False), path)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=netcdf_engine())
    return path


def plot_signal(ds: xr.Dataset, path: str | Path) -> Path:
    """A line per zone (and per issue time of a forecast) of the value over time, with estimated values marked."""
    frame = signal_frame(ds)
    fig = Figure(figsize=(9, 3.5), layout="constrained")  # no pyplot: no global backend or open figures
    ax = fig.add_subplot()
    groups = frame.groupby(["zone", "issued_at"] if "issued_at" in frame else ["zone"])
    for key, part in groups:
        label = " issued ".join(map(str, key if isinstance(key, tuple) else (key,)))
        ax.plot(part["time"], part["value"], label=label, lw=1.2)
        est = part[part["estimated"]]
        if len(est):
            ax.plot(est["time"], est["value"], "x", ms=4, color="grey")
        qcols = sorted(c for c in part.columns if c.startswith("q"))
        if len(qcols) >= 2:
            ax.fill_between(part["time"], part[qcols[0]], part[qcols[-1]], alpha=0.2)
    ax.set_ylabel(f"{ds.attrs['kind'].replace('_', ' ')} ({ds.attrs['units']})")
    ax.set_title(f"{ds.attrs.get('provider', '')}: {ds.attrs['kind'].replace('_', ' ')}")
    if groups.ngroups <= 8:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    return path
