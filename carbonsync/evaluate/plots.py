"""PNG plots of a forecast store: global maps and zone renewable share against truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from carbonsync.core.fs import atomic_path
from carbonsync.data.store import open_zone_truth
from carbonsync.forecast.reader import open_forecast


def save_png(fig, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def plot_forecast(store: str | Path, truth: str | Path | None, out_dir: str | Path, lead_hours: int = 24) -> list[Path]:
    """Write ``forecast_maps.png`` (wind speed and ssrd at ``lead_hours`` of the last init) and
    ``renewable_share.png`` (zone forecasts with their 10-90 % band against truth, where given)."""
    from matplotlib.figure import Figure  # no pyplot: never switches the caller's backend

    out_dir = Path(out_dir)
    gridded, zones = open_forecast(store, "gridded"), open_forecast(store, "zones")
    init = gridded.init_time.values[-1]
    lead = np.timedelta64(min(lead_hours, int(gridded.lead_time.values[-1] / np.timedelta64(1, "h"))), "h")
    g = gridded.sel(init_time=init, lead_time=lead).load()
    valid = pd.Timestamp(init) + pd.Timedelta(lead)
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 2)
    speed = np.hypot(g.u100, g.v100)
    for ax, field, title, cmap, unit in (
        (axes[0], speed, "100 m wind speed", "viridis", "m s-1"),
        (axes[1], g.ssrd / 3600.0, "surface solar radiation (hour mean)", "magma", "W m-2"),
    ):
        lon = np.append(field.lon.values, 360.0)
        values = np.concatenate([field.values, field.values[:, :1]], axis=1)
        mesh = ax.pcolormesh(lon, field.lat.values, values, cmap=cmap, shading="nearest")
        fig.colorbar(mesh, ax=ax, label=unit, shrink=0.85)
        ax.set(title=f"{title}\nvalid {valid:%Y-%m-%d %H:%M} UTC (+{int(lead / np.timedelta64(1, 'h'))} h)",
               xlabel="longitude (deg E)", ylabel="latitude (deg N)", xlim=(0, 360), ylim=(-90, 90))
    fig.suptitle(f"CarbonSync forecast ({gridded.attrs.get('data_source', '')})", y=1.02)
    paths = [save_png(fig, out_dir / "forecast_maps.png")]

    obs = open_zone_truth(truth, ["renewable_share"]) if truth is not None and Path(truth).exists() else None
    z = zones.sel(init_time=init).load()
    times = pd.DatetimeIndex(pd.Timestamp(init) + pd.TimedeltaIndex(z.lead_time.values))
    n = z.sizes["zone"]
    rows = int(np.ceil(n / 2))
    fig = Figure(figsize=(13, 2.4 * rows))
    axes = fig.subplots(rows, 2, sharex=True, squeeze=False)
    for ax, zone in zip(axes.ravel(), z.zone.values, strict=False):
        share = z.renewable_share.sel(zone=zone)
        ax.plot(times, share, color="tab:green", label="forecast")
        if "renewable_share_quantile" in z:
            q = z.renewable_share_quantile.sel(zone=zone)
            ax.fill_between(times, q.isel(quantile=0), q.isel(quantile=-1), color="tab:green", alpha=0.2,
                            label=f"{float(q['quantile'][0]):.0%}-{float(q['quantile'][-1]):.0%}")
        if obs is not None:
            ax.plot(times, obs.renewable_share.sel(zone=zone, time=times), color="black", lw=1, label="truth")
        ax.set(title=str(z.zone_name.sel(zone=zone).values) if "zone_name" in z.coords else str(zone),
               ylim=(0, 1), ylabel="renewable share")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    fig.suptitle(f"Zone renewable share, init {pd.Timestamp(init):%Y-%m-%d %H:%M} UTC")
    fig.tight_layout()
    paths.append(save_png(fig, out_dir / "renewable_share.png"))
    return paths
