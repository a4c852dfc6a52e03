"""The ``forecast`` configuration node (``configs/forecast/``): init times, lead time and the export store."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from carbonsync.core.checks import at_least, fail, non_empty


def _times(name: str, values: list[str]) -> list[pd.Timestamp]:
    try:
        return [pd.Timestamp(t) for t in values]
    except (ValueError, TypeError) as err:
        raise fail(name, values, f"not a time: {err}") from None


@dataclass
class ExportConfig:
    """``carbonsync export``: append forecasts for more init times to a store (committed ones are skipped).

    Init times: ``init_times`` if set, else every ``every_hours`` from ``start`` to ``end``, else
    ``forecast.init_times``.
    """

    init_times: list[str] | None = None
    start: str | None = None
    end: str | None = None
    every_hours: int = 24
    store: str = "${forecast.store}"
    workers: int = 2  # init times forecast (and written) at once on dask's threaded scheduler; `forecast` uses it too

    def __post_init__(self) -> None:
        at_least(self, 1, "every_hours", "workers")
        if self.init_times is not None:
            _times("init_times", self.init_times)
        if self.init_times:  # explicit init times win; start/end are not used
            return
        if (self.start is None) != (self.end is None):
            given = "start" if self.start is not None else "end"
            raise fail(given, getattr(self, given), "forecast.export.start and forecast.export.end must be given together")
        if self.start is not None:
            start, end = _times("start", [self.start, self.end])
            if start > end:
                raise fail("start", self.start, f"is after forecast.export.end={self.end}")


@dataclass
class ForecastConfig:
    """The ``forecast`` node: forecasts for the export store, by init time (UTC) and lead time; chunked for
    schedulers' reads. The default init times lie in the sample world's test split."""

    init_times: list[str] = field(default_factory=lambda: ["2020-11-18T00:00", "2020-11-20T00:00"])
    lead_hours: int = 120
    store: str = "${run_dir}/forecast.zarr"
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self) -> None:
        at_least(self, 1, "lead_hours")
        non_empty(self, "init_times")
        _times("init_times", self.init_times)

    def init_timestamps(self) -> list[pd.Timestamp]:
        return _times("init_times", self.init_times)
