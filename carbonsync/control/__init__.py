"""The runtime controller: a training job follows price and carbon while it runs. It sits above ``signals``
and ``placement`` and below ``serve``.

- :mod:`.decision`: the decision record (state GREEN / YELLOW / RED, action, reason code, inputs, thresholds,
  a plain-words sentence) every part shares;
- :mod:`.engine`: the decision engine (pure): weekly-percentile score of price and carbon, hysteresis bands,
  minimum dwell, forecast awareness, a deadline guard;
- :mod:`.policies`: policies by name (``continuous``, the prototype's ``two_state``, ``engine``,
  ``engine_forecast``);
- :mod:`.replay`: a job replayed on recorded traces, and the exact offline optimum it is judged against;
- :mod:`.nvml` and :mod:`.actuators`: GPU power caps through NVML with typed errors, original limits restored
  (state file for ``carbonsync control restore``), dry-run and pause-only actuators, by name;
- :mod:`.training`: pause and resume in place at step boundaries (:class:`StepGate`), DDP
  (:class:`DistributedGate`), Lightning and Hugging Face callbacks;
- :mod:`.runtime` and :mod:`.session`: the controller reading :mod:`carbonsync.signals`, its decision log, and
  a training run under the ``control`` configuration node; :mod:`.wrapper`: ``carbonsync control run -- CMD``.
"""

from carbonsync.control.actuators import (
    DryRunActuator,
    PauseOnlyActuator,
    get_actuator,
    open_actuator,
    restore_from_state_file,
)
from carbonsync.control.config import ControlConfig, SignalSpec
from carbonsync.control.decision import Action, Decision, Reason, State
from carbonsync.control.engine import Engine, EngineConfig, JobState, Observation, PowerProfile
from carbonsync.control.nvml import GpuError, NvmlActuator, NvmlUnavailable
from carbonsync.control.policies import ContinuousPolicy, Policy, TwoStatePolicy, get_policy, known_policies
from carbonsync.control.replay import ReplayResult, objective, offline_optimum, replay_policy
from carbonsync.control.runtime import Controller, DecisionLog, JobTracker, SignalInput
from carbonsync.control.session import control_session
from carbonsync.control.training import DistributedGate, StepGate, hf_callback, lightning_callback
from carbonsync.control.wrapper import run_wrapped

__all__ = [
    "Action", "ContinuousPolicy", "ControlConfig", "Controller", "Decision", "DecisionLog", "DistributedGate",
    "DryRunActuator", "Engine", "EngineConfig", "GpuError", "JobState", "JobTracker", "NvmlActuator",
    "NvmlUnavailable", "Observation", "PauseOnlyActuator", "Policy", "PowerProfile", "Reason", "ReplayResult",
    "SignalInput", "SignalSpec", "State", "StepGate", "TwoStatePolicy", "control_session", "get_actuator",
    "get_policy", "hf_callback", "known_policies", "lightning_callback", "objective", "offline_optimum",
    "open_actuator", "replay_policy", "restore_from_state_file", "run_wrapped",
]
