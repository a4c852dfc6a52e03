"""Model inputs built from time and grid alone: solar forcing and position encodings.

Training and inference call the same functions, so a model always sees what it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from carbonsync.physics import solar
from carbonsync.physics.grid import Grid

# J m-2: one hour at 10 W m-2, the unit of the irradiance loss. Errors near the end of training are a few
# W m-2; in units of 1000 W m-2 the loss (~1e-6) and its gradients were so small that Adam's epsilon (1e-8)
# damped the updates (val RMSE after 8 epochs 3.0 W m-2 against 1.8 with this unit).
SSRD_SCALE = 3.6e4


def zenith_forcing(times: pd.DatetimeIndex, grid: Grid) -> torch.Tensor:
    """Cosine of the solar zenith angle at each time, (T, 1, H, W): the backbone's forcing channel."""
    return torch.from_numpy(solar.cos_zenith(times, grid.lat, grid.lon).astype(np.float32)[:, None])


def _sun(offset_steps: int, clipped: bool) -> Callable[[pd.DatetimeIndex, Grid, float], torch.Tensor]:
    def forcing(times: pd.DatetimeIndex, grid: Grid, dt_hours: float) -> torch.Tensor:
        cosz = zenith_forcing(times + pd.Timedelta(hours=offset_steps * dt_hours), grid)
        return cosz.clamp_min(0.0) if clipped else cosz
    return forcing


def _insolation_change(times: pd.DatetimeIndex, grid: Grid, dt_hours: float) -> torch.Tensor:
    return _sun(1, True)(times, grid, dt_hours) - _sun(0, True)(times, grid, dt_hours)


# ``cos_zenith`` is the sun at the step's start, ``cos_zenith_next`` at its end; ``insolation`` is max(cos
# zenith, 0), the top-of-atmosphere sunlight in units of the solar constant (what ERA5-trained models get
# as tisr); ``insolation_change`` is its change over the step: it drives the diurnal cycle without telling
# the model the absolute sunlight, which a split in another season would make it extrapolate.
FORCINGS: dict[str, Callable[[pd.DatetimeIndex, Grid, float], torch.Tensor]] = {
    "cos_zenith": _sun(0, False), "cos_zenith_next": _sun(1, False),
    "insolation": _sun(0, True), "insolation_next": _sun(1, True), "insolation_change": _insolation_change,
}


def backbone_forcing(times: pd.DatetimeIndex, grid: Grid, names: list[str], dt_hours: float) -> torch.Tensor:
    """The backbone's forcing channels for steps starting at ``times``, (T, F, H, W).

    With the sun at both ends of a step (or its change), a step knows the sunlight its target is valid for
    (t2m's diurnal cycle), as GraphCast's forcings do.
    """
    unknown = [n for n in names if n not in FORCINGS]
    if unknown:
        raise ValueError(f"unknown backbone forcing {unknown}; known: {list(FORCINGS)}")
    times = pd.DatetimeIndex(times)
    parts = [FORCINGS[name](times, grid, dt_hours) for name in names]
    return torch.cat(parts, dim=1) if parts else torch.zeros(len(times), 0, grid.nlat, grid.nlon)


def interpolation_weights(times: pd.DatetimeIndex, dt_hours: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """For each hour, the preceding ``dt_hours`` step and the linear weight of the following one."""
    before = times.floor(f"{dt_hours}h")
    weight = (times - before) / pd.Timedelta(hours=dt_hours)
    return before, np.asarray(weight, dtype=np.float32)


def hour_state_weights(hours: pd.DatetimeIndex, state_times: pd.DatetimeIndex, dt_hours: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the state for each hourly accumulation comes from: the middle of the hour ending at ``hours``.

    ERA5 labels ssrd with the end of the hour it accumulates over, so the state that goes with it is the
    one half an hour earlier, interpolated linearly between the ``dt_hours`` state times around it (and
    clipped to the first state time). Returns the indices into ``state_times`` of the states before and
    after each mid-hour and the linear weight of the one after.
    """
    state_times = pd.DatetimeIndex(state_times)
    mid = pd.DatetimeIndex(hours - pd.Timedelta(minutes=30))
    mid = mid.where(mid >= state_times[0], state_times[0])
    before, weight = interpolation_weights(mid, dt_hours)
    i0 = state_times.get_indexer(before)
    if (i0 < 0).any():
        raise ValueError(f"no state at {before[i0 < 0][0]} for the hour ending {hours[i0 < 0][0]}")
    return i0, np.minimum(i0 + 1, len(state_times) - 1), weight


def irradiance_inputs(times: pd.DatetimeIndex, grid: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """Solar inputs of the irradiance diagnostic for hourly ``times`` (labels of the hour ending there).

    Returns the hour-mean cosine of the solar zenith angle (B, 1, H, W), its forcing channel, and the
    clear-sky irradiance accumulated over each hour (B, 1, H, W) in J m-2, zero when the sun is down.
    """
    cosz = solar.hourly_mean_cos_zenith(times, grid.lat, grid.lon).astype(np.float32)[:, None]
    clear = solar.clear_sky_hourly(times, grid.lat, grid.lon).astype(np.float32)[:, None]
    return torch.from_numpy(cosz), torch.from_numpy(clear)
