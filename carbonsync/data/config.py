"""The ``data`` configuration node (``configs/data/*.yaml``): where the weather comes from, its grid and splits.

One dataclass per data source, each a schema in Hydra's ConfigStore (see :mod:`carbonsync.config`): the
sample world (:class:`SampleWorldDataConfig`, which extends :class:`SampleWorldConfig`) and ERA5 from a
public Zarr store (:class:`ERA5DataConfig`). Defaults live here; a YAML file in ``configs/data/`` holds only
what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pandas as pd
from omegaconf import MISSING

from carbonsync.core.checks import at_least, fail, non_empty, one_of, positive
from carbonsync.data.sample_world import WEATHER_VARIABLES, SampleWorldConfig

SPLIT_NAMES = ("train", "val", "test")
ZONES_FILE = "${config_dir}/zones/sample_world.yaml"


@dataclass
class Splits:
    """Data splits by time, each ``[first, last]`` (inclusive, UTC), in order and without overlap.

    Normalisation statistics use the train split only; hyperparameters are tuned on val; the test split is
    used only for scores.
    """

    train: list[str] = MISSING
    val: list[str] = MISSING
    test: list[str] = MISSING

    def __post_init__(self) -> None:
        bounds = {}
        for name in SPLIT_NAMES:
            period = getattr(self, name)
            if len(period) != 2:
                raise fail(name, period, "must be [first, last]")
            try:
                first, last = (pd.Timestamp(t) for t in period)
            except (ValueError, TypeError) as err:
                raise fail(name, period, f"not a time: {err}") from None
            if first > last:
                raise fail(name, period, "first is after last")
            bounds[name] = (first, last)
        for before, after in zip(SPLIT_NAMES, SPLIT_NAMES[1:], strict=False):
            if bounds[after][0] <= bounds[before][1]:
                raise fail(after, getattr(self, after),
                           f"must start after {before} ends ({getattr(self, before)[1]}): splits are ordered "
                           f"{' < '.join(SPLIT_NAMES)} and do not overlap")

    def period(self, name: str) -> tuple[str, str]:
        """The ``(first, last)`` of split ``name`` (``train``, ``val`` or ``test``)."""
        if name not in SPLIT_NAMES:
            raise fail("split", name, f"must be one of {', '.join(SPLIT_NAMES)}")
        first, last = getattr(self, name)
        return str(first), str(last)


@dataclass
class DataConfig:
    """What every data source has: its kind, the training grid, the zones and the splits."""

    kind: str = MISSING
    dir: str = "${run_dir}/data"  # informational: the data stage writes to <run_dir>/data (core.layout.RunPaths)
    nlat: int = 33                # training grid (equiangular, poles included)
    nlon: int = 64
    zones_file: str = ZONES_FILE
    splits: Splits = MISSING

    def __post_init__(self) -> None:
        positive(self, "nlat", "nlon")


@dataclass
class SampleWorldDataConfig(SampleWorldConfig, DataConfig):
    """The embedded default: a deterministic synthetic planet (see :mod:`carbonsync.data.sample_world`).

    The world's own parameters (``jet_speed``, ``relax_days``, ``stirring`` ...) are those of
    :class:`SampleWorldConfig`; the defaults below are the main job's. ``zones`` (a list of zone dicts) is
    empty to read ``zones_file``.
    """

    kind: str = "sample_world"
    start: str = "2020-04-01"
    days: int = 252
    splits: Splits = field(default_factory=lambda: Splits(
        train=["2020-04-01", "2020-10-20T23:00"],
        val=["2020-10-21", "2020-11-09T23:00"],
        test=["2020-11-10", "2020-12-08T23:00"],
    ))

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self, "kind", ["sample_world"])
        at_least(self, 1, "lmax", "days")
        at_least(self, 0, "spinup_days")
        positive(self, "solver_dt_s", "wind_scale", "relax_days", "stirring_memory_days")
        try:
            start = pd.Timestamp(self.start)
        except (ValueError, TypeError) as err:
            raise fail("start", self.start, f"not a time: {err}") from None
        end = start + pd.Timedelta(days=self.days) - pd.Timedelta(hours=1)
        last = pd.Timestamp(self.splits.test[1])
        if pd.Timestamp(self.splits.train[0]) < start or last > end:
            raise fail("splits", [self.splits.train[0], self.splits.test[1]],
                       f"must lie within the sample world's hours, {start} to {end} (start + days)")

    def world(self, zones: list[dict]) -> SampleWorldConfig:
        """The :class:`SampleWorldConfig` these settings generate, with ``zones`` (unless given inline)."""
        values = {f.name: getattr(self, f.name) for f in fields(SampleWorldConfig)}
        return SampleWorldConfig(**{**values, "zones": list(self.zones or zones)})


@dataclass
class ERA5DataConfig(DataConfig):
    """ERA5 from a public Zarr store (ARCO-ERA5 or WeatherBench2), regridded to the training grid (needs
    network and gcsfs). ``url`` and ``splits`` come from the YAML file of the store."""

    kind: str = MISSING  # era5_arco or era5_wb2
    url: str = MISSING
    variables: list[str] = field(default_factory=lambda: list(WEATHER_VARIABLES))

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self, "kind", ["era5_arco", "era5_wb2"])
        non_empty(self, "variables")
