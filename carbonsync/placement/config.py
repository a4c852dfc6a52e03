"""The ``placement`` configuration node (``configs/placement/default.yaml``): the queue, the sites, the
objective weights and the solver of ``carbonsync rank``."""

from __future__ import annotations

from dataclasses import dataclass, field

from carbonsync.core.checks import at_least, fail, one_of
from carbonsync.placement.rank import SOLVERS, Weights


@dataclass
class WeightsConfig:
    """``placement.weights``: the weights of the normalised objectives (see :class:`Weights`)."""

    carbon: float = Weights.carbon
    price: float = Weights.price

    def __post_init__(self) -> None:
        at_least(self, 0, "carbon", "price")
        if self.carbon + self.price == 0:
            raise fail("carbon", self.carbon, "carbon and price are both 0; at least one must be positive")

    def weights(self) -> Weights:
        return Weights(carbon=float(self.carbon), price=float(self.price))


@dataclass
class PlacementConfig:
    """The ``placement`` node. Queue and site files are YAML/JSON (``configs/placement/``)."""

    queue: str = "${config_dir}/placement/sample_queue.yaml"
    sites: str = "${config_dir}/placement/sample_sites.yaml"
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    # greedy (per job, tightest first), fast (queue-level heuristic, scales to 10k jobs) or milp (exact, moderate sizes)
    solver: str = "greedy"

    def __post_init__(self) -> None:
        one_of(self, "solver", SOLVERS)
