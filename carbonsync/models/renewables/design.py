"""The table every renewables adapter produces and the model consumes: one row per (issue, target, zone).

A :class:`Design` makes issue time and lead explicit. Its frame has

- ``issue_time``, ``time`` (the target hour) and ``lead_h`` (whole hours ``time - issue_time``, >= 0: lead 0 is the
  analysis at the issue hour), ``zone``;
- ``prior_<target>`` for every target: the physical prior (windpowerlib, pvlib) or a forecast published by the
  issue time, which the learned part corrects;
- the feature columns, each known at the row's issue time (the adapter's contract, checked where it can be);
- the observed targets where known (NaN elsewhere), and optionally ``active`` (rows to predict; elsewhere the
  output is the prior) or ``active_<target>`` for one target (e.g. solar only while the sun is up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from carbonsync.core.errors import CarbonSyncError

__all__ = ["Design", "DesignError", "KEYS", "RenewablesError", "UNBOUNDED"]

KEYS = ("issue_time", "time", "lead_h", "zone")
UNBOUNDED = (None, None)


class RenewablesError(CarbonSyncError, ValueError):
    """Inputs or options the renewables model cannot use, naming the column, option or value."""


class DesignError(RenewablesError):
    """A design table that breaks the contract, naming the column or value."""


@dataclass(frozen=True)
class Design:
    """Rows of (issue, target, zone) with priors, issue-time features and observed targets."""

    frame: pd.DataFrame
    targets: tuple[str, ...]
    features: tuple[str, ...]
    bounds: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        frame = self.frame
        if not self.targets:
            raise DesignError("a design needs at least one target")
        needed = [*KEYS, *self.features, *(f"prior_{t}" for t in self.targets)]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DesignError(f"{self.source or 'design'}: frame lacks column(s) {missing}")
        clash = set(self.features) & {*KEYS, *self.targets}
        if clash:
            raise DesignError(f"{self.source or 'design'}: feature(s) {sorted(clash)} are keys or targets")
        if frame.empty:
            raise DesignError(f"{self.source or 'design'}: no rows")
        lead = (pd.DatetimeIndex(frame["time"]) - pd.DatetimeIndex(frame["issue_time"])) / pd.Timedelta(hours=1)
        if not np.array_equal(lead.to_numpy(), frame["lead_h"].to_numpy(dtype=float)):
            raise DesignError(f"{self.source or 'design'}: lead_h is not time - issue_time in hours")
        if (frame["lead_h"] < 0).any():
            row = frame[frame["lead_h"] < 0].iloc[0]
            raise DesignError(f"{self.source or 'design'}: target {row['time']} is before its issue {row['issue_time']}")
        if frame.duplicated(["issue_time", "time", "zone"]).any():
            row = frame[frame.duplicated(["issue_time", "time", "zone"])].iloc[0]
            raise DesignError(f"{self.source or 'design'}: ({row['issue_time']}, {row['time']}, {row['zone']}) repeats")
        for name in (*self.features, *(f"prior_{t}" for t in self.targets)):
            values = frame[name].to_numpy(dtype=float)
            if np.isinf(values).any():
                raise DesignError(f"{self.source or 'design'}: column {name!r} has infinite values")
        unknown = set(self.bounds) - set(self.targets)
        if unknown:
            raise DesignError(f"bounds given for {sorted(unknown)}, which are not targets {list(self.targets)}")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def issue_times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.frame["issue_time"])

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.frame["time"])

    @property
    def lead_h(self) -> np.ndarray:
        return self.frame["lead_h"].to_numpy(dtype=int)

    def active(self, target: str) -> np.ndarray:
        """Rows whose ``target`` is predicted (elsewhere it is the prior): ``active_<target>``, else ``active``."""
        for name in (f"active_{target}", "active"):
            if name in self.frame.columns:
                return self.frame[name].to_numpy(dtype=bool)
        return np.ones(len(self.frame), dtype=bool)

    def x(self, target: str) -> pd.DataFrame:
        """Inputs of ``target``'s learned part: the feature columns, the lead and the target's prior (float)."""
        return self.frame[[*self.features, "lead_h", f"prior_{target}"]].astype(float)

    def prior(self, target: str) -> np.ndarray:
        return self.frame[f"prior_{target}"].to_numpy(dtype=float)

    def observed(self, target: str) -> np.ndarray:
        if target not in self.frame.columns:
            return np.full(len(self.frame), np.nan)
        return self.frame[target].to_numpy(dtype=float)

    def select(self, mask: np.ndarray | pd.Series) -> Design:
        """The rows where ``mask`` is True (same targets, features and bounds)."""
        mask = np.asarray(mask, dtype=bool)
        return Design(self.frame.loc[mask].reset_index(drop=True), self.targets, self.features, self.bounds,
                      self.source)

    def with_prior(self, target: str, values: np.ndarray) -> Design:
        """A copy whose ``prior_<target>`` is ``values`` (e.g. an ablation's or another model's forecast)."""
        frame = self.frame.copy()
        frame[f"prior_{target}"] = np.asarray(values, dtype=float)
        return Design(frame, self.targets, self.features, self.bounds, self.source)
