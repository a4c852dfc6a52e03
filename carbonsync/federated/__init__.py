"""Training that follows renewable-curtailment windows across sites, on Flower.

- :mod:`~carbonsync.federated.windows`: curtailment windows from any ``carbonsync.signals`` series (hysteresis,
  off-delay, provisioning delay, optional forecast skip) and each site's node plan;
- :mod:`~carbonsync.federated.workload`: the model-agnostic :class:`Workload` protocol, its registry, the SFNO
  backbone on the sample world, and :func:`train_steps`, the one inner loop;
- :mod:`~carbonsync.federated.aggregation`: weighting by work done, the FedAvg / DiLoCo outer step, checkpoints;
- :mod:`~carbonsync.federated.node` / :mod:`~carbonsync.federated.flower`: a site's round and the Flower
  ``ServerApp`` / ``ClientApp`` (``flwr`` is the ``federated`` extra; that module imports it);
- :mod:`~carbonsync.federated.provisioner` / :mod:`~carbonsync.federated.run`: SuperLink and SuperNode
  processes on loopback, and the driver of one run;
- :mod:`~carbonsync.federated.accounting` / :mod:`~carbonsync.federated.replay`: the replay clock, the event log,
  the power model, and the replay of a trace against single-site, federated and centralised training.
"""

from carbonsync.federated.accounting import EventLog, PowerModel, ReplayClock, SiteEnergy, read_events
from carbonsync.federated.aggregation import OuterOptimizer, ServerState, weighted_average
from carbonsync.federated.provisioner import (
    FlowerError,
    Provisioner,
    SubprocessProvisioner,
    SuperLinkProcess,
    get_provisioner,
    known_provisioners,
    register_provisioner,
)
from carbonsync.federated.replay import ReplayConfig, plot_schedule, replay
from carbonsync.federated.run import continuous_plans, curtailment_plans, run_energy, run_flower
from carbonsync.federated.spec import RunSpec
from carbonsync.federated.windows import SitePlan, SiteWindows, WindowConfig, oracle_forecast, site_plan
from carbonsync.federated.workload import (
    SFNOWorkload,
    Workload,
    get_workload,
    known_workloads,
    register_workload,
    train_steps,
)

__all__ = ["EventLog", "FlowerError", "OuterOptimizer", "PowerModel", "Provisioner", "ReplayClock", "ReplayConfig",
           "RunSpec", "SFNOWorkload", "ServerState", "SiteEnergy", "SitePlan", "SiteWindows", "SubprocessProvisioner",
           "SuperLinkProcess", "WindowConfig", "Workload", "continuous_plans", "curtailment_plans", "get_provisioner",
           "get_workload", "known_provisioners", "known_workloads", "oracle_forecast", "plot_schedule",
           "read_events", "register_provisioner", "register_workload", "replay", "run_energy", "run_flower",
           "site_plan", "train_steps", "weighted_average"]
