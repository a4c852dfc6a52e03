"""Damping toward climatology by lead time: the backbone's forecasts made MSE-optimal at long leads.

A deterministic model trained on short rollouts keeps predicting sharp weather at lead times where the
atmosphere (real or sample) has forgotten its initial state; its error then grows past that of climatology.
The MSE-optimal correction for this, used in statistical post-processing since Murphy (1988), is to shrink
each forecast anomaly toward climatology by a factor per channel and lead time:

    output(k) = clim(valid hour) + a[k, c] * (forecast(k) - clim(valid hour)),   0 <= a <= 1,

with ``a = <f', o'> / <f', f'>`` (anomalies against climatology, area-weighted) fitted on hindcasts of a
split the model did not train on (the val split). The climatology is the training split's mean by hour of
day, in normalised units. The rolled-out state fed back into the model is never damped: only what is
reported is. Both tensors travel in the backbone's model package, so inference needs nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

__all__ = ["hour_of_day_climatology", "fit_damping", "apply_damping"]


def hour_of_day_climatology(blocks: Iterable[tuple[pd.DatetimeIndex, torch.Tensor]], dt_hours: int) -> torch.Tensor:
    """Mean state by hour of day, ``(24 // dt_hours, C, H, W)``: row ``i`` holds hour ``i * dt_hours`` UTC.

    ``blocks`` are ``(times, states)`` pieces of a split (one piece, or many read one after another from a
    store), accumulated in float64.
    """
    slots = 24 // dt_hours
    sums: torch.Tensor | None = None
    counts = np.zeros(slots, np.int64)
    for times, states in blocks:
        times = pd.DatetimeIndex(times)
        if len(times) != states.shape[0]:
            raise ValueError(f"{len(times)} times for {states.shape[0]} states")
        if (times.hour % dt_hours).any() or (times.minute != 0).any():
            raise ValueError(f"states must lie on the {dt_hours}-hourly grid (00 UTC onwards)")
        slot = np.asarray(times.hour // dt_hours)
        if sums is None:
            sums = torch.zeros(slots, *states.shape[1:], dtype=torch.float64)
        for s in np.unique(slot):
            pick = torch.as_tensor(np.flatnonzero(slot == s))
            sums[s] += states[pick].double().sum(0)
            counts[s] += pick.numel()
    missing = [int(m) * dt_hours for m in np.flatnonzero(counts == 0)]
    if sums is None or missing:
        raise ValueError(f"no training state at hour(s) {missing or 'any'} UTC for the climatology")
    return (sums / torch.as_tensor(counts, dtype=torch.float64)[:, None, None, None]).float()


def _slots(valid_times: pd.DatetimeIndex, clim: torch.Tensor) -> torch.Tensor:
    dt_hours = 24 // clim.shape[0]
    return torch.as_tensor(np.asarray(pd.DatetimeIndex(valid_times).hour // dt_hours))


def apply_damping(states: torch.Tensor, valid_times: pd.DatetimeIndex, clim: torch.Tensor,
                  damping: torch.Tensor, leads: torch.Tensor | None = None) -> torch.Tensor:
    """Damp normalised forecasts ``(K, C, H, W)`` valid at ``valid_times`` toward ``clim``.

    ``leads`` are the lead steps (>= 1) of the K states, by default 1..K (one forecast); a batch of states
    at one lead passes that lead K times. Leads past the fitted ones use the last factor.
    """
    k = states.shape[0]
    if len(valid_times) != k:
        raise ValueError(f"{len(valid_times)} valid times for {k} states")
    if k == 0:
        return states
    if leads is None:
        leads = torch.arange(1, k + 1)
    leads = torch.as_tensor(leads, dtype=torch.long).cpu()
    if leads.shape != (k,) or bool((leads < 1).any()):
        raise ValueError(f"leads must be {k} lead steps >= 1, got {leads.tolist()}")
    lead = torch.clamp(leads - 1, max=damping.shape[0] - 1)
    factor = damping[lead][:, :, None, None].to(states.dtype)
    base = clim[_slots(valid_times, clim)].to(states.dtype)
    return base + factor * (states - base)


def fit_damping(hindcasts: Iterable[tuple[int, pd.DatetimeIndex, torch.Tensor, torch.Tensor]], clim: torch.Tensor,
                area_weights: torch.Tensor, lead_steps: int) -> torch.Tensor:
    """Least-squares damping factors ``(lead_steps, C)`` in [0, 1] from hindcasts.

    ``hindcasts`` yields ``(lead_step, valid_times, forecast, observed)``: normalised undamped forecasts
    ``(N, C, H, W)`` at lead ``lead_step`` (1 .. ``lead_steps``) and the states they verify against, as
    :func:`carbonsync.forecast.chain.rollout_states` run with ``damped=False`` gives them. Every lead needs
    at least one hindcast.
    """
    w = area_weights[None, None]
    fo = torch.zeros(lead_steps, clim.shape[1], dtype=torch.float64)
    ff = torch.zeros_like(fo)
    seen = np.zeros(lead_steps, bool)
    for lead, valid, forecast, observed in hindcasts:
        if not 1 <= lead <= lead_steps:
            raise ValueError(f"lead step {lead} is outside 1..{lead_steps}")
        base = clim[_slots(valid, clim)]
        f_anom, o_anom = forecast - base, observed - base
        fo[lead - 1] += (f_anom * o_anom * w).sum((0, 2, 3)).double()
        ff[lead - 1] += (f_anom * f_anom * w).sum((0, 2, 3)).double()
        seen[lead - 1] = True
    if not seen.all():
        raise ValueError(f"no hindcast reaches lead step(s) {(np.flatnonzero(~seen) + 1).tolist()} to fit damping on")
    return (fo / ff.clamp_min(1e-12)).clamp(0.0, 1.0).float()
