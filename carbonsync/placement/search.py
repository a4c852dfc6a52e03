"""Searches over one job's options: the best window, the best set of hours, the best option under capacity.

All work on a ``(rows, slots)`` array of per-slot costs (rows are sites), vectorised over rows.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from carbonsync.placement.jobs import PlacementError


def best_window(
    score: np.ndarray, hours: int, blocked: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best contiguous block of ``hours`` slots in each row of ``score`` (sites, time).

    Returns the start index and the block's summed score per row; the sum is ``inf`` (start 0) when every
    block contains a ``blocked`` slot. Sliding sums come from a cumulative sum; ties go to the earliest.
    """
    score = np.atleast_2d(np.asarray(score, dtype=np.float64))
    n_rows, n_slots = score.shape
    if not 1 <= hours <= n_slots:
        raise PlacementError(f"a block of {hours} h does not fit in {n_slots} slots")
    zeros = np.zeros((n_rows, 1))
    csum = np.concatenate([zeros, np.cumsum(score, axis=1)], axis=1)
    sums = csum[:, hours:] - csum[:, :-hours]
    if blocked is not None:
        blocked = np.atleast_2d(np.asarray(blocked, dtype=np.int64))
        bsum = np.concatenate([zeros.astype(np.int64), np.cumsum(blocked, axis=1)], axis=1)
        sums = np.where(bsum[:, hours:] - bsum[:, :-hours] > 0, np.inf, sums)
    best = sums.min(axis=1, keepdims=True)
    # earliest start among blocks equal up to rounding (cumsum differences are not exact)
    start = np.argmax(sums <= best + 1e-9 * np.maximum(1.0, np.abs(best)), axis=1)
    return start, sums[np.arange(n_rows), start]


def best_hours(
    score: np.ndarray, hours: int, restart: np.ndarray | float = 0.0, blocked: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest set of ``hours`` slots per row of ``score`` (sites, time) when a job may pause.

    Each contiguous segment after the first adds ``restart`` at the slot where it resumes. Solved exactly
    by dynamic programming over (slots used, running or paused), vectorised over rows and slot counts.
    Returns a boolean mask of chosen slots and the total (``inf`` and an empty mask when infeasible).
    """
    score = np.atleast_2d(np.asarray(score, dtype=np.float64))
    n_rows, n_slots = score.shape
    if not 1 <= hours <= n_slots:
        raise PlacementError(f"{hours} h do not fit in {n_slots} slots")
    restart = np.broadcast_to(np.asarray(restart, dtype=np.float64), score.shape)
    if blocked is not None:
        score = np.where(np.atleast_2d(blocked), np.inf, score)
    inf = np.full((n_rows, hours + 1), np.inf)
    running, paused = inf.copy(), inf.copy()  # best totals after a slot, by slots used
    from_paused = np.zeros((n_slots, n_rows, hours + 1), dtype=bool)  # a running state resumed here
    from_running = np.zeros((n_slots, n_rows, hours + 1), dtype=bool)  # a paused state stopped here
    for t in range(n_slots):
        resume = paused[:, :-1] + restart[:, t, None]
        keep = running[:, :-1]
        from_paused[t, :, 1:] = resume < keep
        prev = np.minimum(keep, resume)
        prev[:, 0] = 0.0  # the first segment starts from nothing, without overhead
        new_running = inf.copy()
        new_running[:, 1:] = prev + score[:, t, None]
        from_running[t] = running <= paused
        paused = np.minimum(running, paused)
        running = new_running
    total = np.minimum(running[:, hours], paused[:, hours])
    chosen = np.zeros(score.shape, dtype=bool)
    for row in np.flatnonzero(np.isfinite(total)):
        state, used = ("running" if running[row, hours] <= paused[row, hours] else "paused"), hours
        for t in range(n_slots - 1, -1, -1):
            if state == "running":
                chosen[row, t] = True
                if used == 1:
                    break
                state = "paused" if from_paused[t, row, used] else "running"
                used -= 1
            else:
                state = "running" if from_running[t, row, used] else "paused"
    return chosen, total


def window_sums(values: np.ndarray, hours: int) -> np.ndarray:
    """Sums of every ``hours``-long block of each row of ``values`` (R, W) -> (R, W - hours + 1).

    Short blocks (up to 7 h, where numpy's reduction adds in order too) by shifted additions, which is
    cheaper than a reduction over a sliding window view and gives bit-identical sums."""
    if hours > 7:
        return sliding_window_view(values, hours, axis=1).sum(axis=2)
    n = values.shape[1] - hours + 1
    out = values[:, :n].copy()
    for k in range(1, hours):
        out += values[:, k : k + n]
    return out


def best_option(
    cost: np.ndarray,
    blocked: np.ndarray,
    hours: int,
    interruptible: bool,
    overhead: float,
    first_cost: np.ndarray | None = None,
    exact: bool = False,
) -> tuple[float, int, np.ndarray | int]:
    """Cheapest placement of one job over candidate rows (sites) and window slots.

    ``cost`` (R, W) is the job's cost per slot, ``blocked`` where it cannot run, ``first_cost`` (R, W) an
    extra cost for the first segment starting at a slot (e.g. resuming a paused job). An interruptible job
    takes the better of the best block and its ``hours`` cheapest free slots (plus restart overheads), or,
    with ``exact`` (and no ``first_cost``), the optimal set of hours by dynamic programming
    (:func:`best_hours`, one Python step per slot). Returns ``(total,
    row, start)`` for a contiguous block or ``(total, row, mask)`` for a set of hours; ``total`` is inf
    when nothing fits.
    """
    n_rows, width = cost.shape
    if hours > width or n_rows == 0:
        return np.inf, -1, 0
    masked = np.where(blocked, np.inf, cost)
    sums = window_sums(masked, hours)  # inf where a block hits a blocked slot
    if first_cost is not None:
        sums = sums + first_cost[:, : width - hours + 1]
    flat = int(np.argmin(sums))
    row, start = divmod(flat, sums.shape[1])
    best: tuple[float, int, np.ndarray | int] = (float(sums[row, start]), row, start)
    if interruptible and hours < width and exact and first_cost is None:
        chosen, totals = best_hours(masked, hours, overhead * cost)
        r = int(np.argmin(totals))
        if _better(totals[r], best[0]):
            best = (float(totals[r]), r, chosen[r])
    elif interruptible and hours < width:
        kth = np.partition(masked, hours - 1, axis=1)[:, hours - 1 : hours]
        chosen = masked <= kth
        # ties at a finite threshold: pick exactly `hours` (rows whose threshold is inf cannot run)
        if ((chosen.sum(axis=1) != hours) & np.isfinite(kth[:, 0])).any():
            pick = np.argpartition(masked, hours - 1, axis=1)[:, :hours]
            chosen = np.zeros((n_rows, width), dtype=bool)
            chosen[np.arange(n_rows)[:, None], pick] = True
        begins = chosen.copy()
        begins[:, 1:] &= ~chosen[:, :-1]
        first = np.argmax(begins, axis=1)
        first_value = cost[np.arange(n_rows), first]
        totals = np.where(chosen, masked, 0.0).sum(axis=1) + overhead * (np.where(begins, cost, 0.0).sum(axis=1) - first_value)
        totals[~np.isfinite(kth[:, 0])] = np.inf
        if first_cost is not None:
            totals = totals + first_cost[np.arange(n_rows), first]
        r = int(np.argmin(totals))
        if _better(totals[r], best[0]):
            best = (float(totals[r]), r, chosen[r])
    return best


def _better(candidate: float, incumbent: float) -> bool:
    """``candidate`` is lower than ``incumbent`` by more than rounding (any finite value beats inf)."""
    if not np.isfinite(incumbent):
        return bool(np.isfinite(candidate))
    return bool(candidate < incumbent - 1e-12 * max(1.0, abs(incumbent)))
