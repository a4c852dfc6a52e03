"""The run directory's layout: where each stage reads and writes its artefacts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    """Fixed places of a run's artefacts under ``root`` (``cfg.run_dir``)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def weather(self) -> Path:
        return self.data / "weather.zarr"

    @property
    def truth(self) -> Path:
        return self.data / "zone_truth.zarr"

    @property
    def zones(self) -> Path:
        return self.data / "zones.yaml"

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    @property
    def forecast(self) -> Path:
        return self.root / "forecast.zarr"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"
