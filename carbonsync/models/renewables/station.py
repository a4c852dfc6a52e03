"""Station / NWP-series adapter: per-site forecast weather (GEFCom2014, an ERA5 point series) as a :class:`Design`.

The physical prior and the features are those of :mod:`carbonsync.models.station`: wind, the 100 m speed at
hub height (the hour's 10-100 m shear) through windpowerlib's fleet-smoothed power curve; solar, pvlib's
PVWatts chain at the site. Rows are hour-ending labels of a daily NWP run issued at 00 UTC, so a row ending
at ``time`` was issued at the midnight before it (lead 1-24 h). Sites enter as one-hot columns. With
``autoregressive`` the observed capacity factor up to the issue time enters too: at the issue hour, its
error against the prior there, its means over the 6 and 24 h before, and the same hour of the last observed
day (GEFCom2014's own task, a month
ahead from NWP alone, is ``autoregressive=False``). Target:
``capacity_factor`` in [0, 1]; solar rows with the sun down are inactive (the output is the prior, 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carbonsync.models.renewables.design import Design
from carbonsync.models.station import StationFeatures

__all__ = ["STATION_TARGET", "station_design"]

STATION_TARGET = "capacity_factor"


def _at_issue(values: pd.Series, zones: np.ndarray, issue: pd.DatetimeIndex) -> np.ndarray:
    return values.reindex(pd.MultiIndex.from_arrays([zones, issue])).to_numpy(dtype=float)


def station_design(features: StationFeatures, issue_hour: int = 0, autoregressive: bool = True) -> Design:
    """The rows of ``features`` (from :func:`~carbonsync.models.station.wind_features` or ``solar_features``),
    issued at ``issue_hour`` UTC of the day before each hour-ending label."""
    times = pd.DatetimeIndex(features.times)
    issue = (times - pd.Timedelta(hours=1 + issue_hour)).floor("D") + pd.Timedelta(hours=issue_hour)
    frame = pd.DataFrame(features.x.astype(np.float64), columns=[f"nwp_{n}" for n in features.names])
    names = list(frame.columns)
    sites = sorted(set(features.site.tolist()))
    for site in sites:
        frame[f"site_{site}"] = (features.site == site).astype(float)
    frame["site_index"] = np.searchsorted(np.asarray(sites), features.site).astype(float)
    names += [f"site_{s}" for s in sites] + ["site_index"]
    if autoregressive:
        zones = features.site.astype(str)
        observed = pd.Series(features.target, index=pd.MultiIndex.from_arrays([zones, times])).sort_index()
        error = observed - pd.Series(features.prior, index=observed.index)
        by_zone = observed.groupby(level=0)
        for name, values in {
            "cf_at_issue": observed,
            "cf_error_at_issue": error,
            "cf_mean_6h": by_zone.transform(lambda s: s.rolling(6, min_periods=3).mean()),
            "cf_mean_24h": by_zone.transform(lambda s: s.rolling(24, min_periods=12).mean()),
        }.items():
            frame[name] = _at_issue(values, zones, issue)
            names.append(name)
        lead_days = np.ceil(np.asarray((times - issue) / pd.Timedelta(hours=1), dtype=float) / 24.0)
        last_day = times - pd.Timedelta(days=1) * lead_days
        frame["cf_last_day"] = _at_issue(observed, zones, pd.DatetimeIndex(last_day))   # the same hour, observed
        names.append("cf_last_day")
    frame.insert(0, "issue_time", issue)
    frame.insert(1, "time", times)
    frame.insert(2, "lead_h", ((times - issue) / pd.Timedelta(hours=1)).astype(int))
    frame.insert(3, "zone", features.site.astype(str))
    frame[f"prior_{STATION_TARGET}"] = features.prior
    frame[STATION_TARGET] = features.target
    frame["active"] = features.active
    return Design(frame, (STATION_TARGET,), tuple(names), {STATION_TARGET: (0.0, 1.0)},
                  source=f"station:{features.track}")
