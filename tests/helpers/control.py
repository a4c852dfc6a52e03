"""A price and carbon trace for controller tests: a daily cycle with seeded noise."""

from __future__ import annotations

import numpy as np
import pandas as pd


def daily_cycle_trace(start: str | pd.Timestamp, days: int, seed: int = 0) -> pd.DataFrame:
    """Hourly ``price`` (highest at 12:00) and ``carbon`` (highest at 13:00) from ``start``."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=24 * days, freq="h")
    hours = times.hour.to_numpy()
    return pd.DataFrame({"price": 50 + 30 * np.sin((hours - 6) / 24 * 2 * np.pi) + rng.normal(0, 5, len(times)),
                         "carbon": 300 + 100 * np.cos((hours - 13) / 24 * 2 * np.pi) + rng.normal(0, 10, len(times))},
                        index=times)
