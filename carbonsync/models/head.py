"""The regional head: a small learned correction of the physical zone capacity factors, with quantiles.

For every (time, zone) sample the head sees the physical wind and solar CF, the zone-mean 100 m wind speed
and GHI, the UTC hour (as a sin/cos pair), the forecast lead time in days (0 for analyses and
observations) and a learned zone embedding. Lead time lets the correction widen and shrink with forecast
error; the day of year is deliberately not a feature: training periods are weeks long, and a seasonal
feature only extrapolates outside them. An MLP outputs,
per CF, a shift in logit space (``cf = sigmoid(logit(phys) + delta)``) and monotone quantiles
(``base + cumsum(softplus(offsets))``, also in logit space around the physical CF). Solar outputs are
exactly 0 whenever the physical solar CF is 0 (sun down).

Quantiles fitted on hindcasts are too narrow on new forecasts when the hindcasts' weather is partly
in-sample for the backbone. :func:`calibrate_band` widens them by split-conformal quantile regression
(Romano et al. 2019) on held-out rows; the widening (logit units, per target) is a buffer of the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.nn import functional as F

from carbonsync.physics.grid import Grid
from carbonsync.physics.renewables import (
    PhysicsInputError,
    renewable_share,
    solar_capacity_factor,
    wind_capacity_factor,
    zone_products,
)
from carbonsync.physics.zones import Zone

__all__ = [
    "build_head_features",
    "band_scale",
    "calibrate_band",
    "conformal_widening",
    "quantile_coverage",
    "FEATURES",
    "TARGETS",
    "HeadFeatures",
    "HeadOutput",
    "RegionalHead",
    "pinball_loss",
    "fit_head",
    "predict",
]

FEATURES = ("wind_cf", "solar_cf", "wind_speed", "ghi", "hour_sin", "hour_cos", "lead_days")
TARGETS = ("wind_cf", "solar_cf")
WIND_SPEED_SCALE = 10.0  # m s-1, wind speed feature = zone-mean speed / 10
GHI_SCALE = 1000.0  # W m-2
_STEP0 = float(np.log(np.expm1(0.5)))  # softplus(_STEP0) = 0.5


@dataclass
class HeadFeatures:
    """Feature matrix of the head: one row per (time, zone), time-major.

    ``x`` is ``(n, len(FEATURES))`` float32, ``zone_index`` indexes ``zone_ids``. ``zones`` (optional) carry
    the capacities and demand used by :func:`predict` for the renewable share.
    """

    x: torch.Tensor
    zone_index: torch.Tensor
    times: np.ndarray
    zone_ids: tuple[str, ...]
    zones: tuple[Zone, ...] | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def phys(self) -> torch.Tensor:
        """Physical ``(wind_cf, solar_cf)``, ``(n, 2)``."""
        return self.x[:, :2]

    @classmethod
    def from_products(
        cls,
        products: xr.Dataset,
        zones: Sequence[Zone] | None = None,
        wind_speed: xr.DataArray | None = None,
        ghi: xr.DataArray | None = None,
        lead_hours: np.ndarray | None = None,
    ) -> HeadFeatures:
        """Build features from a :func:`~carbonsync.physics.renewables.zone_products` Dataset.

        ``wind_speed`` (m s-1) and ``ghi`` (W m-2), both ``(time, zone)``, default to the Dataset's own
        ``wind_speed`` and ``ghi`` variables. ``lead_hours`` (one per time) is the forecast lead time;
        ``None`` means analyses or observations (lead 0).
        """
        wind_speed = products.get("wind_speed") if wind_speed is None else wind_speed
        ghi = products.get("ghi") if ghi is None else ghi
        for name, da in (("wind_cf", products.get("wind_cf")), ("solar_cf", products.get("solar_cf")),
                         ("wind_speed", wind_speed), ("ghi", ghi)):
            if da is None:
                raise KeyError(f"head features need '{name}' (time, zone); it is missing")
            if set(da.dims) != {"time", "zone"}:
                raise ValueError(f"'{name}' must have dims (time, zone), got {tuple(da.dims)}")
        ref = products["wind_cf"].transpose("time", "zone")
        times, zone_ids = ref["time"].values, tuple(str(z) for z in ref["zone"].values)

        def col(da: xr.DataArray) -> np.ndarray:
            return da.transpose("time", "zone").reindex_like(ref).values.astype(np.float64)

        t = xr.DataArray(np.asarray(times, dtype="datetime64[ns]"), dims="time")
        hour = (t.dt.hour + t.dt.minute / 60.0).values
        lead = np.zeros(len(times)) if lead_hours is None else np.asarray(lead_hours, dtype=np.float64)
        if lead.shape != (len(times),):
            raise ValueError(f"lead_hours has shape {lead.shape}, expected one value per time ({len(times)})")
        nz = len(zone_ids)
        per_time = [np.repeat(v[:, None], nz, axis=1) for v in (
            np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24), lead / 24.0)]
        cols = [np.clip(col(products["wind_cf"]), 0, 1), np.clip(col(products["solar_cf"]), 0, 1),
                col(wind_speed) / WIND_SPEED_SCALE, col(ghi) / GHI_SCALE, *per_time]
        x = np.stack([c.reshape(-1) for c in cols], axis=1)
        if not np.isfinite(x).all():
            raise ValueError("head features contain NaN or inf; fill or drop those times first")
        zone_index = np.tile(np.arange(nz), len(times))
        if zones is not None:
            by_id = {z.id: z for z in zones}
            missing = [z for z in zone_ids if z not in by_id]
            if missing:
                raise KeyError(f"zones {missing} of the products are not in the zone list")
            zones = tuple(by_id[z] for z in zone_ids)
        return cls(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(zone_index, dtype=torch.long),
                   np.asarray(times), zone_ids, zones)

    def targets(self, observed: xr.Dataset) -> torch.Tensor:
        """Observed ``(wind_cf, solar_cf)`` aligned to the feature rows, ``(n, 2)``; NaN where missing."""
        cols = []
        for name in TARGETS:
            if name not in observed:
                raise KeyError(f"observed targets need '{name}' (time, zone)")
            da = observed[name].transpose("time", "zone").reindex(time=self.times, zone=list(self.zone_ids))
            cols.append(da.values.reshape(-1))
        return torch.as_tensor(np.stack(cols, axis=1), dtype=torch.float32)


class HeadOutput(NamedTuple):
    """``point`` ``(n, 2)`` corrected CFs and ``quantiles`` ``(n, 2, n_quantiles)``, all in [0, 1]."""

    point: torch.Tensor
    quantiles: torch.Tensor


class RegionalHead(nn.Module):
    """MLP correction of physical CFs in logit space with a learned zone embedding and monotone quantiles."""

    def __init__(
        self,
        zone_ids: Sequence[str],
        n_features: int = len(FEATURES),
        hidden: int = 32,
        embed_dim: int = 4,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        eps: float = 1e-3,
    ) -> None:
        super().__init__()
        q = [float(v) for v in quantiles]
        if not q or any(not 0 < v < 1 for v in q) or any(b <= a for a, b in zip(q, q[1:], strict=False)):
            raise ValueError(f"quantiles must be strictly increasing in (0, 1), got {quantiles}")
        self.zone_ids = tuple(str(z) for z in zone_ids)
        self.quantile_levels = tuple(q)
        self.eps = eps
        self.embedding = nn.Embedding(len(self.zone_ids), embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(n_features + embed_dim, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
        )
        self.out = nn.Linear(hidden, len(TARGETS) * (1 + len(q)))
        nn.init.zeros_(self.out.weight)  # start from the physical CF
        nn.init.zeros_(self.out.bias)
        # conformal widening of the band, logit units at the outermost levels (set by calibrate_band)
        self.register_buffer("band_widening", torch.zeros(len(TARGETS)))
        self.register_buffer("band_scale", band_scale(q), persistent=False)

    def forward(self, x: torch.Tensor, zone_index: torch.Tensor) -> HeadOutput:
        phys = x[:, : len(TARGETS)].clamp(0.0, 1.0)
        base = torch.logit(phys.clamp(self.eps, 1.0 - self.eps))
        h = self.mlp(torch.cat([x, self.embedding(zone_index)], dim=1))
        raw = self.out(h).view(-1, len(TARGETS), 1 + len(self.quantile_levels))
        point = torch.sigmoid(base + raw[..., 0])
        nq = len(self.quantile_levels)
        if nq > 1:
            steps = F.softplus(raw[..., 2:] + _STEP0)  # adjacent quantiles start 0.5 apart in logit
            offsets = torch.cat([raw[..., 1:2] - 0.5 * steps.sum(-1, keepdim=True), steps], dim=-1)
            q_logit = base[..., None] + torch.cumsum(offsets, dim=-1)
        else:
            q_logit = base[..., None] + raw[..., 1:]
        q_logit = q_logit + self.band_widening[:, None] * self.band_scale  # levels keep their order
        quant = torch.sigmoid(q_logit)
        sun_up = (phys[:, 1] > 0).to(point.dtype)  # solar stays exactly 0 at night
        mask = torch.stack([torch.ones_like(sun_up), sun_up], dim=1)
        return HeadOutput(point * mask, quant * mask[..., None])


def band_scale(levels: Sequence[float]) -> torch.Tensor:
    """How far each quantile level moves, per logit unit of band widening: its normal quantile over the
    outermost one's (so -1 and +1 at symmetric outer levels, 0 at the median, and the order is kept)."""
    z = torch.tensor([NormalDist().inv_cdf(float(v)) for v in levels])
    return z / z.abs().max().clamp_min(1e-12)


def conformal_widening(y: torch.Tensor, low: torch.Tensor, high: torch.Tensor, coverage: float,
                       eps: float = 1e-3) -> float:
    """Split-conformal widening (logit units) of the band ``[low, high]`` so it covers ``coverage`` of ``y``.

    The conformity score of a row is how far its observation lies outside the band in logit space
    (negative inside); the widening is their finite-sample ``coverage (1 + 1/n)`` quantile (Romano et al.
    2019), never below 0. ``y``, ``low`` and ``high`` are 1-D over held-out rows, values in [0, 1].
    """
    if len(y) == 0:
        return 0.0
    y_logit, low_logit, high_logit = (torch.logit(torch.as_tensor(v).double().clamp(eps, 1.0 - eps))
                                      for v in (y, low, high))
    scores = torch.maximum(low_logit - y_logit, y_logit - high_logit)
    level = min(1.0, float(np.ceil((len(y) + 1) * coverage) / len(y)))
    return max(0.0, float(torch.quantile(scores, level)))


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Pinball loss per element: ``pred`` ``(..., Q)``, ``target`` ``(...)``, ``levels`` ``(Q,)``."""
    diff = target[..., None] - pred
    return torch.maximum(levels * diff, (levels - 1) * diff)


def _loss(model: RegionalHead, feats: HeadFeatures, y: torch.Tensor, mse_weight: float) -> torch.Tensor:
    out = model(feats.x, feats.zone_index)
    valid = torch.isfinite(y)
    valid[:, 1] &= feats.phys[:, 1] > 0  # night solar is fixed at 0: nothing to learn
    y0 = torch.where(valid, y, torch.zeros_like(y))
    w = valid.to(y0.dtype)
    n = w.sum().clamp(min=1.0)
    levels = torch.tensor(model.quantile_levels, dtype=y0.dtype)
    mse = (((out.point - y0) ** 2) * w).sum() / n
    pin = (pinball_loss(out.quantiles, y0, levels).mean(-1) * w).sum() / n
    return mse_weight * mse + pin


def _as_targets(feats: HeadFeatures, targets: xr.Dataset | torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(targets, xr.Dataset):
        targets = feats.targets(targets)
    y = torch.as_tensor(targets, dtype=torch.float32)
    if y.shape != (len(feats), len(TARGETS)):
        raise ValueError(f"targets have shape {tuple(y.shape)}, expected {(len(feats), len(TARGETS))}")
    return y


def fit_head(
    features: HeadFeatures,
    targets: xr.Dataset | torch.Tensor | np.ndarray,
    *,
    valid: tuple[HeadFeatures, xr.Dataset | torch.Tensor] | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    hidden: int = 32,
    embed_dim: int = 4,
    epochs: int = 300,
    lr: float = 2e-2,
    weight_decay: float = 1e-5,
    mse_weight: float = 1.0,
    seed: int = 0,
    num_threads: int | None = 1,
    restore_best: bool = False,
) -> tuple[RegionalHead, dict[str, list[float]]]:
    """Train a :class:`RegionalHead` full-batch with Adam on MSE (point) + pinball (quantiles) loss.

    ``targets`` are observed ``(wind_cf, solar_cf)``: a ``(time, zone)`` Dataset or an ``(n, 2)`` tensor
    aligned with ``features``; NaN targets are ignored. Deterministic for a given ``seed`` (the global
    torch RNG state is restored afterwards). The head is tiny, so training runs on ``num_threads`` intra-op
    threads (default 1, which suits a busy CPU; the same weights for the same count; ``None`` keeps
    torch's setting). Returns the model (in eval mode) and the per-epoch ``history`` (``loss`` and, with ``valid``,
    ``val_loss``). With ``valid`` and ``restore_best``, the model returned is the one after the epoch of
    lowest validation loss: the same weights as a fit of that many epochs.
    """
    y = _as_targets(features, targets)
    val = None if valid is None else (valid[0], _as_targets(valid[0], valid[1]))
    history: dict[str, list[float]] = {"loss": []} | ({} if val is None else {"val_loss": []})
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = RegionalHead(features.zone_ids, features.x.shape[1], hidden, embed_dim, quantiles)
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
            val_feats = None if val is None else _remap(model, val[0])
            best_loss, best_state = np.inf, None
            for _ in range(epochs):
                model.train()
                opt.zero_grad()
                loss = _loss(model, features, y, mse_weight)
                loss.backward()
                opt.step()
                history["loss"].append(float(loss.detach()))
                if val is not None:
                    model.eval()
                    with torch.no_grad():
                        history["val_loss"].append(float(_loss(model, val_feats, val[1], mse_weight)))
                    if restore_best and history["val_loss"][-1] < best_loss:  # the earliest of equal minima
                        best_loss = history["val_loss"][-1]
                        best_state = {k: v.clone() for k, v in model.state_dict().items()}
            if best_state is not None:
                model.load_state_dict(best_state)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return model, history


def _remap(model: RegionalHead, feats: HeadFeatures) -> HeadFeatures:
    """``feats`` with its zone indices translated to the model's zone order."""
    if feats.zone_ids == model.zone_ids:
        return feats
    pos = {z: i for i, z in enumerate(model.zone_ids)}
    missing = [z for z in feats.zone_ids if z not in pos]
    if missing:
        raise KeyError(f"the head was not trained on zones {missing}")
    lut = torch.tensor([pos[z] for z in feats.zone_ids], dtype=torch.long)
    return HeadFeatures(feats.x, lut[feats.zone_index], feats.times, feats.zone_ids, feats.zones)


def predict(model: RegionalHead, features: HeadFeatures, zones: Sequence[Zone] | None = None) -> xr.Dataset:
    """Corrected ``wind_cf``, ``solar_cf``, ``renewable_share`` ``(time, zone)`` and ``*_quantile`` variants.

    The quantile variants have a leading ``quantile`` dim. ``renewable_share_quantile`` combines the CF
    quantiles level by level (wind and solar taken as comonotone). ``zones`` default to ``features.zones``.
    """
    zones = features.zones if zones is None else zones
    if zones is None:
        raise ValueError("predict needs zones (capacities, demand): pass zones= or build features with them")
    feats = _remap(model, features)
    model.eval()
    with torch.no_grad():
        out = model(feats.x, feats.zone_index)
    nt, nz = len(features.times), len(features.zone_ids)
    coords = {"time": features.times, "zone": list(features.zone_ids)}
    qcoords = {"quantile": list(model.quantile_levels), **coords}
    point = out.point.numpy().astype(np.float64).reshape(nt, nz, len(TARGETS))
    quant = out.quantiles.numpy().astype(np.float64).reshape(nt, nz, len(TARGETS), -1).transpose(3, 0, 1, 2)
    ds = xr.Dataset()
    for k, name in enumerate(TARGETS):
        attrs = {"units": "1", "long_name": f"Corrected {name.replace('_cf', '')} capacity factor"}
        ds[name] = xr.DataArray(point[..., k], coords=coords, dims=("time", "zone"), attrs=attrs)
        ds[f"{name}_quantile"] = xr.DataArray(
            quant[..., k], coords=qcoords, dims=("quantile", "time", "zone"), attrs=attrs
        )
    ds["renewable_share"] = renewable_share(ds["wind_cf"], ds["solar_cf"], zones)
    ds["renewable_share_quantile"] = renewable_share(
        ds["wind_cf_quantile"], ds["solar_cf_quantile"], zones
    ).transpose("quantile", "time", "zone")
    return ds


# ----------------------------------------------------------------------------------- feature builders


def _concat_features(parts: Sequence[HeadFeatures]) -> HeadFeatures:
    first = parts[0]
    if any(p.zone_ids != first.zone_ids for p in parts):
        raise ValueError("head features to stack must share their zones")
    return HeadFeatures(torch.cat([p.x for p in parts]), torch.cat([p.zone_index for p in parts]),
                        np.concatenate([p.times for p in parts]), first.zone_ids, first.zones)


def _optional(ds: xr.Dataset, names: Sequence[str]) -> dict[str, xr.DataArray]:
    return {n: ds[n] for n in names if n in ds.data_vars}


def _gridded_products(ds: xr.Dataset, zones: Sequence[Zone], turbine: str, hub_height: float | None,
                      capacity: dict | None) -> xr.Dataset:
    grid = Grid.infer(ds)
    extra = _optional(ds, ("t2m", "u10", "v10", "fsr"))
    return zone_products(ds["u100"], ds["v100"], ds["ssrd"], zones, grid, t2m=extra.get("t2m"), turbine=turbine,
                         hub_height=hub_height, u10=extra.get("u10"), v10=extra.get("v10"), fsr=extra.get("fsr"),
                         capacity=capacity)


def _station_products(ds: xr.Dataset, zone: Zone, turbine: str, hub_height: float | None) -> xr.Dataset:
    """Physical products of one zone from a time series at one location (the zone's box centre by default)."""

    lat = float(ds["lat"]) if "lat" in ds.coords and ds["lat"].size == 1 else 0.5 * (zone.lat_min + zone.lat_max)
    lon = float(ds["lon"]) if "lon" in ds.coords and ds["lon"].size == 1 else 0.5 * (zone.lon_min + zone.lon_max)
    point = ds.drop_vars([c for c in ("lat", "lon") if c in ds.coords]).expand_dims(lat=[lat], lon=[lon % 360.0])
    point = point.transpose("time", "lat", "lon")
    extra = _optional(point, ("t2m", "u10", "v10", "fsr"))
    wind = wind_capacity_factor(point["u100"], point["v100"], turbine=turbine, hub_height=hub_height,
                                u10=extra.get("u10"), v10=extra.get("v10"), roughness=extra.get("fsr"))
    solar = solar_capacity_factor(point["ssrd"], t2m=extra.get("t2m"))
    speed = np.hypot(point["u100"], point["v100"])
    ghi = point["ssrd"].clip(min=0) / 3600.0
    out = xr.Dataset({name: da.isel(lat=0, lon=0, drop=True).expand_dims(zone=[zone.id], axis=1)
                      for name, da in (("wind_cf", wind), ("solar_cf", solar), ("wind_speed", speed), ("ghi", ghi))})
    out.attrs = {"station": f"{lat:.3f}N {lon:.3f}E"}
    return out


def build_head_features(
    weather: xr.Dataset,
    zones: Sequence[Zone],
    *,
    turbine: str = "E-126/4200",
    hub_height: float | None = None,
    capacity: dict[str, xr.DataArray] | None = None,
    lead_hours: np.ndarray | None = None,
) -> HeadFeatures:
    """Head features from any of the weather sources the head accepts, told apart by their dimensions.

    - **gridded** analyses or reanalyses (ERA5-like canonical data), dims ``(time, lat, lon)`` on a global
      grid: physical CFs per cell (:func:`~carbonsync.physics.renewables.zone_products`, optionally
      capacity-weighted), averaged over each zone; ``lead_hours`` as given (default 0).
    - **backbone forecasts**, dims ``(init_time, lead_time, lat, lon)`` (the forecast store's ``gridded``
      group): each init time as above at valid times ``init_time + lead_time`` with its lead hours,
      stacked init by init.
    - **station / NWP series** for one zone, dims ``(time,)`` (scalar ``lat``/``lon`` coordinates locate
      it, else the zone's box centre): physical CFs at that point stand for the zone.

    Needs ``u100``, ``v100`` (m s-1) and ``ssrd`` (J m-2 per hour); ``t2m``, ``u10``/``v10`` and ``fsr``
    are used when present.
    """
    zones = list(zones)
    missing = [v for v in ("u100", "v100", "ssrd") if v not in weather.data_vars]
    if missing:
        raise KeyError(f"head features need {missing}; the weather has {sorted(map(str, weather.data_vars))}")
    dims = set(weather["u100"].dims)
    if dims == {"init_time", "lead_time", "lat", "lon"}:
        parts = []
        for init in weather["init_time"].values:
            one = weather.sel(init_time=init, drop=True)
            hours = one["lead_time"].values / np.timedelta64(1, "h")
            one = one.drop_vars([c for c in one.coords if c not in ("lead_time", "lat", "lon")])
            one = one.assign_coords(lead_time=np.datetime64(init, "ns") + one["lead_time"].values.astype("m8[ns]"))
            one = one.rename(lead_time="time")
            products = _gridded_products(one, zones, turbine, hub_height, capacity)
            parts.append(HeadFeatures.from_products(products, zones, lead_hours=hours))
        if not parts:
            raise ValueError("the forecast dataset has no init_time")
        return _concat_features(parts)
    if dims == {"time", "lat", "lon"}:
        products = _gridded_products(weather, zones, turbine, hub_height, capacity)
        return HeadFeatures.from_products(products, zones, lead_hours=lead_hours)
    if dims == {"time"}:
        if len(zones) != 1:
            raise ValueError(f"a station series describes one zone; got {len(zones)} zones")
        if capacity:
            raise PhysicsInputError("capacity maps need gridded weather, not a station series")
        products = _station_products(weather, zones[0], turbine, hub_height)
        return HeadFeatures.from_products(products, zones, lead_hours=lead_hours)
    raise ValueError(
        f"'u100' has dims {tuple(weather['u100'].dims)}; expected (time, lat, lon), "
        "(init_time, lead_time, lat, lon) or (time,)"
    )


def _band(model: RegionalHead, features: HeadFeatures, targets: xr.Dataset | torch.Tensor,
          lower: float, upper: float, min_solar_cf: float
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Observations, the ``lower``/``upper`` quantiles and the rows that count, each ``(n, len(TARGETS))``.

    NaN observations do not count; solar counts only where the physical solar CF exceeds ``min_solar_cf``
    (around sunrise observed output has a point mass at 0).
    """
    levels = list(model.quantile_levels)
    for q in (lower, upper):
        if not any(abs(q - v) < 1e-9 for v in levels):
            raise ValueError(f"the head has no {q} quantile; its levels are {levels}")
    lo, hi = (min(range(len(levels)), key=lambda i, q=q: abs(levels[i] - q)) for q in (lower, upper))
    feats = _remap(model, features)
    y = _as_targets(features, targets)
    with torch.no_grad():
        quant = model(feats.x, feats.zone_index).quantiles
    use = torch.isfinite(y)
    use[:, TARGETS.index("solar_cf")] &= features.phys[:, 1] > min_solar_cf
    return y, quant[..., lo], quant[..., hi], use


def quantile_coverage(model: RegionalHead, features: HeadFeatures, targets: xr.Dataset | torch.Tensor,
                      lower: float = 0.1, upper: float = 0.9, min_solar_cf: float = 0.05) -> dict[str, float]:
    """Fraction of observations inside the head's ``[lower, upper]`` quantile band, per target.

    For a calibrated head this is close to ``upper - lower``. Solar counts only rows where the physical
    solar CF exceeds ``min_solar_cf`` (around sunrise observed output has a point mass at 0), and NaN
    observations are skipped. Also returns the number of rows used (``n_<target>``).
    """
    y, low, high, use = _band(model, features, targets, lower, upper, min_solar_cf)
    inside = (y >= low) & (y <= high)
    out: dict[str, float] = {}
    for k, name in enumerate(TARGETS):
        n = int(use[:, k].sum())
        out[name] = float(inside[:, k][use[:, k]].float().mean()) if n else float("nan")
        out[f"n_{name}"] = n
    return out


def calibrate_band(model: RegionalHead, features: HeadFeatures, targets: xr.Dataset | torch.Tensor,
                   lower: float = 0.1, upper: float = 0.9, min_solar_cf: float = 0.05) -> dict[str, float]:
    """Widen the head's quantiles so that ``[lower, upper]`` covers ``upper - lower`` of held-out rows.

    Split-conformal quantile regression in logit space (:func:`conformal_widening`); other levels move by
    :func:`band_scale`, so they keep their order. The band is never narrowed (that could cross quantiles).
    ``features`` and ``targets`` must be rows the head was not fitted on.
    Sets ``model.band_widening`` and returns it per target (with ``n_<target>``, the rows used).
    """
    if not lower < 0.5 < upper:
        raise ValueError(f"a band needs lower < 0.5 < upper, got [{lower}, {upper}]")
    y, low, high, use = _band(model, features, targets, lower, upper, min_solar_cf)
    widening = model.band_widening.clone()  # the band as it is now: widen it further
    out: dict[str, float] = {}
    for k, name in enumerate(TARGETS):
        rows = use[:, k]
        widening[k] += conformal_widening(y[rows, k], low[rows, k], high[rows, k], upper - lower, model.eps)
        out[name], out[f"n_{name}"] = float(widening[k]), int(rows.sum())
    model.band_widening.copy_(widening)
    return out
