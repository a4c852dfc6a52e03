"""The backbone's input pipeline: block-local epoch order, grouped streamed reads, split statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from carbonsync.physics.grid import Grid
from carbonsync.train.backbone import StateSource, epoch_order, loss_channel_weights

CHANNELS = ["u100", "t2m"]
STATS = {"variables": {"u100": {"mean": 1.0, "std": 2.0}, "t2m": {"mean": 280.0, "std": 10.0}}}


def _dataset(days: int = 12) -> xr.Dataset:
    grid = Grid(nlat=5, nlon=8, kind="equiangular")
    times = pd.date_range("2020-06-01", periods=days * 24, freq="h")
    rng = np.random.default_rng(0)
    data = {c: (("time", "lat", "lon"), rng.normal(STATS["variables"][c]["mean"], 3.0, (times.size, 5, 8)).astype(np.float32))
            for c in CHANNELS}
    return xr.Dataset(data, coords={"time": times, **grid.coords()})


def _source(stream: bool, read_windows: int = 16) -> StateSource:
    ds = _dataset()
    period = (str(ds.time.values[0]), str(ds.time.values[-1]))
    return StateSource(ds, CHANNELS, STATS, period, 6, Grid.infer(ds), ["cos_zenith"], stream=stream,
                       read_windows=read_windows)


def test_epoch_order_is_a_seeded_block_local_permutation():
    starts = np.arange(100)
    order = epoch_order(starts, torch.Generator().manual_seed(1), block_states=10, mix_blocks=2)
    assert sorted(order.tolist()) == starts.tolist()
    again = epoch_order(starts, torch.Generator().manual_seed(1), block_states=10, mix_blocks=2)
    np.testing.assert_array_equal(order, again)
    for run in order.reshape(5, 20):  # every run of 2 blocks draws from exactly 2 blocks
        assert len(set((run // 10).tolist())) == 2
    plain = epoch_order(starts, torch.Generator().manual_seed(1))
    assert len(set((plain[:20] // 10).tolist())) > 2


def test_streamed_batches_equal_in_memory_batches():
    memory, streamed = _source(False), _source(True, read_windows=12)
    starts = memory.starts(3)
    order = epoch_order(starts, torch.Generator().manual_seed(0), block_states=8, mix_blocks=2)
    a = list(memory.batches(order, 4, 3))
    b = list(streamed.batches(order, 4, 3))
    assert len(a) == len(b) == int(np.ceil(len(order) / 4))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x.x, y.x)
        torch.testing.assert_close(x.targets, y.targets)
        torch.testing.assert_close(x.forcing, y.forcing)
    first = a[0]
    np.testing.assert_allclose(first.targets[0], memory.states[torch.as_tensor(order[:4] + 1)])


def test_tendency_variance_by_blocks_equals_the_whole_split():
    memory, streamed = _source(False), _source(True)
    weights = torch.full((5, 8), 1.0 / 40)
    whole = loss_channel_weights("tendency", memory.states, memory.starts(1), weights)
    for source in (memory, streamed):
        blocked = 1.0 / source.tendency_variance(weights, size=7)
        torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=0)


def test_blocks_cover_the_split_in_order():
    source = _source(True)
    pieces = list(source.blocks(size=10))
    times = pd.DatetimeIndex(np.concatenate([t.values for t, _ in pieces]))
    assert times.equals(source.times)
    states = torch.cat([s for _, s in pieces])
    torch.testing.assert_close(states, _source(False).states)


@pytest.mark.parametrize("size", [1, 3])
def test_read_groups_ramp_up(size):
    source = _source(True, read_windows=8 * size)
    order = source.starts(1)
    assert sum(b.x.shape[0] for b in source.batches(order, 2, 1)) == len(order)
