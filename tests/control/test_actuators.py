"""GPU power actuators: NVML error mapping, capability detection, clamping, the state file and every path that
restores the original limits (normal exit, exception, SIGTERM/SIGINT, SIGKILL + restore), on a fake NVML
that raises the real ``pynvml.NVMLError`` codes; and the real ``pynvml`` on this GPU-less machine."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pynvml
import pytest

from carbonsync.control import actuators
from carbonsync.control.actuators import (
    Actuator,
    DryRunActuator,
    PauseOnlyActuator,
    get_actuator,
    open_actuator,
    register_actuator,
    restore_from_state_file,
)
from carbonsync.control.decision import Action, Decision, Reason, State
from carbonsync.control.nvml import (
    ControllerBusy,
    GpuInvalidArgument,
    GpuLost,
    GpuNoPermission,
    GpuNotSupported,
    GpuUnknownError,
    NvmlActuator,
    NvmlDevices,
    NvmlUnavailable,
    StateFileError,
    default_state_file,
    nvml_error,
    read_state_file,
)
from carbonsync.core.errors import CarbonSyncError, ConfigError, InvalidValuesError
from tests.control.fake_nvml import FakeGpu, FakeNvml, fleet

REPO = Path(__file__).resolve().parents[2]


def decision(power_w: float | None, state: State = State.YELLOW, run: bool = True) -> Decision:
    return Decision(time=pd.Timestamp("2025-03-01 12:00"), state=state, previous=None, action=Action.CAP,
                    reason=Reason.SCORE_IN_BAND, power_w=power_w, run=run)


def two_gpus(**kwargs) -> FakeNvml:
    return FakeNvml([FakeGpu("GPU-a", limit_mw=350_000), FakeGpu("GPU-b", limit_mw=300_000)], **kwargs)


# ------------------------------------------------------------------------------------------ error mapping

@pytest.mark.parametrize(("code", "cls", "name"), [
    (pynvml.NVML_ERROR_NOT_SUPPORTED, GpuNotSupported, "NVML_ERROR_NOT_SUPPORTED"),
    (pynvml.NVML_ERROR_NO_PERMISSION, GpuNoPermission, "NVML_ERROR_NO_PERMISSION"),
    (pynvml.NVML_ERROR_GPU_IS_LOST, GpuLost, "NVML_ERROR_GPU_IS_LOST"),
    (pynvml.NVML_ERROR_INVALID_ARGUMENT, GpuInvalidArgument, "NVML_ERROR_INVALID_ARGUMENT"),
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, NvmlUnavailable, "NVML_ERROR_LIBRARY_NOT_FOUND"),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, NvmlUnavailable, "NVML_ERROR_DRIVER_NOT_LOADED"),
    (pynvml.NVML_ERROR_UNINITIALIZED, NvmlUnavailable, "NVML_ERROR_UNINITIALIZED"),
    (pynvml.NVML_ERROR_TIMEOUT, GpuUnknownError, "NVML_ERROR_TIMEOUT"),
    (4242, GpuUnknownError, "NVML_ERROR_4242"),
])
def test_every_nvml_error_maps_to_one_typed_error_naming_gpu_call_and_code(code, cls, name):
    err = nvml_error(pynvml.NVMLError(code), index=3, call="nvmlDeviceSetPowerManagementLimit")
    assert type(err) is cls and isinstance(err, CarbonSyncError)
    assert err.code == code and err.index == 3
    assert "GPU 3" in str(err) and "nvmlDeviceSetPowerManagementLimit" in str(err) and name in str(err)


def test_device_layer_speaks_watts_and_joules_and_types_nvml_errors():
    fake = two_gpus()
    devices = NvmlDevices(fake)
    with pytest.raises(NvmlUnavailable, match="NVML_ERROR_UNINITIALIZED"):
        devices.count()  # before nvmlInit, as NVML
    devices.init()
    devices.set_power_limit_w(0, 212.5)
    assert fake.gpus[0].limit_mw == 212_500 and devices.power_limit_w(0) == 212.5
    assert devices.limit_constraints_w(0) == (100.0, 400.0)
    assert devices.total_energy_j(0) == 5_000.0 and devices.power_usage_w(0) == 212.5
    with pytest.raises(GpuInvalidArgument, match=r"GPU 1: nvmlDeviceSetPowerManagementLimit .*INVALID_ARGUMENT"):
        devices.set_power_limit_w(1, 401)
    fake.gpus[1].lost = True
    with pytest.raises(GpuLost, match="GPU 1"):
        devices.power_limit_w(1)
    devices.shutdown()
    assert fake.initialized == 0


# --------------------------------------------------------------------------------------------- capabilities

def test_capabilities_of_a_mixed_fleet_and_one_warning_per_uncontrollable_gpu(tmp_path, caplog):
    fake = fleet()
    with caplog.at_level(logging.WARNING, logger="carbonsync"):
        act = NvmlActuator(fake, state_file=tmp_path / "state.json").open()
    normal, nopm, mig, noperm = act.capabilities()
    assert (normal.power_management, normal.can_set, normal.mig, normal.controllable) == (True, True, False, True)
    assert (normal.min_w, normal.max_w, normal.default_w, normal.current_w) == (100.0, 400.0, 400.0, 350.0)
    assert normal.energy_counter and normal.uuid == "GPU-0000-normal" and normal.name.startswith("NVIDIA")
    assert not nopm.power_management and not nopm.energy_counter and not nopm.controllable
    assert "power management is not supported" in nopm.reason
    assert mig.mig and mig.power_management and not mig.controllable and "MIG" in mig.reason
    assert noperm.power_management and not noperm.can_set and "permission" in noperm.reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(w.split(":")[0] for w in warnings) == [f"degrading to pause-only for GPU {i}" for i in (1, 2, 3)]
    assert not act.pause_only
    # the permission test set the current limit to itself: nothing changed
    assert fake.limits_w() == [350.0, 400.0, 400.0, 400.0]
    act.restore()


def test_a_fleet_with_nothing_controllable_is_pause_only_and_writes_no_state_file(tmp_path):
    fake = fleet()
    fake.gpus = fake.gpus[1:]
    state = tmp_path / "state.json"
    with NvmlActuator(fake, state_file=state) as act:
        assert act.pause_only
        assert not state.exists()
        result = act.apply(decision(150))
        assert result.gpus == () and result.pause_only
    assert fake.limits_w() == [400.0, 400.0, 400.0]


# ------------------------------------------------------------------------------------------------ apply

def test_apply_clamps_to_the_constraints_and_touches_only_controllable_gpus(tmp_path):
    fake = fleet()
    with NvmlActuator(fake, state_file=tmp_path / "s.json") as act:
        low = act.apply(decision(50))
        assert [(g.index, g.requested_w, g.applied_w, g.clamped) for g in low.gpus] == [(0, 50, 100.0, True)]
        assert fake.limits_w() == [100.0, 400.0, 400.0, 400.0]
        high = act.apply(decision(1000))
        assert (high.gpus[0].applied_w, high.gpus[0].clamped) == (400.0, True)
        mid = act.apply(decision(212.5))
        assert (mid.gpus[0].applied_w, mid.gpus[0].clamped, mid.gpus[0].error) == (212.5, False, None)
        assert fake.gpus[0].limit_mw == 212_500
        sets = fake.calls.count("nvmlDeviceSetPowerManagementLimit")
        same = act.apply(decision(212.5))          # already there: no privileged call
        keep = act.apply(decision(None))           # None: leave the limit as it is
        assert fake.calls.count("nvmlDeviceSetPowerManagementLimit") == sets
        assert same.gpus[0].applied_w == 212.5 and keep.gpus[0].applied_w is None
        assert fake.limits_w()[1:] == [400.0, 400.0, 400.0]
        with pytest.raises(InvalidValuesError, match="power_w"):
            act.apply(decision(float("nan")))
        record = json.loads(json.dumps(mid.record()))
        assert record["actuator"] == "nvml" and record["state"] == "yellow" and record["time"].startswith("2025-03-01")


def test_apply_before_open_is_an_error():
    with pytest.raises(CarbonSyncError, match="not open"):
        NvmlActuator(two_gpus()).apply(decision(200))


def test_a_gpu_lost_mid_run_raises_once_and_is_then_left_out(tmp_path, caplog):
    fake = two_gpus()
    state = tmp_path / "s.json"
    act = NvmlActuator(fake, state_file=state).open()
    act.apply(decision(250))
    fake.gpus[0].lost = True
    with pytest.raises(GpuLost, match="GPU 0") as info:
        act.apply(decision(200))
    partial = info.value.actuation
    assert [(g.index, g.applied_w, g.error is not None) for g in partial.gpus] == [(0, None, True), (1, 200.0, False)]
    again = act.apply(decision(150))               # no second raise: GPU 0 is out
    assert [(g.index, g.applied_w) for g in again.gpus] == [(1, 150.0)]
    assert not act.pause_only
    with caplog.at_level(logging.WARNING, logger="carbonsync"):
        act.restore()
    assert fake.gpus[1].limit_mw == 300_000 and fake.gpus[0].limit_mw == 250_000
    assert any("GPU 0 is lost" in r.getMessage() for r in caplog.records)
    assert not state.exists()


# ----------------------------------------------------------------------------------------- energy, power

def test_energy_from_the_nvml_counters_since_open_and_power_draw(tmp_path):
    fake = fleet()                                 # GPU 1 has no energy counter and no power reading
    with NvmlActuator(fake, state_file=tmp_path / "s.json") as act:
        assert act.energy_j() == 0.0
        assert act.power_w() == pytest.approx(3 * 300.0)
        fake.advance(10)                           # every GPU draws 300 W (below its limit)
        assert act.energy_j() == pytest.approx(3 * 300.0 * 10)
        act.apply(decision(200))                   # GPU 0 capped: it draws 200 W
        fake.advance(10)
        assert act.energy_j() == pytest.approx(3 * 300.0 * 10 + (200.0 + 2 * 300.0) * 10)
        assert act.power_w() == pytest.approx(200.0 + 2 * 300.0)
        fake.gpus[2].lost = True                   # its energy so far still counts
        with pytest.raises(GpuLost):
            act.energy_j()
        fake.advance(10)
        assert act.energy_j() == pytest.approx(3 * 300.0 * 10 + (200.0 + 2 * 300.0) * 10 + (200.0 + 300.0) * 10)
        final = act.energy_j()
    assert act.energy_j() == final and act.power_w() is None     # after restore: the total at that moment


def test_energy_and_power_are_none_without_counters(tmp_path):
    fake = FakeNvml([FakeGpu("GPU-old", energy_counter=False, power_reading=False)])
    with NvmlActuator(fake, state_file=tmp_path / "s.json") as act:
        fake.advance(10)
        assert act.energy_j() is None and act.power_w() is None
        assert not act.capabilities()[0].energy_counter


# ----------------------------------------------------------------------------------- state file, restore

class _CheckingNvml(FakeNvml):
    """Fails a test if a limit changes before the state file holds the original."""

    state_path: Path | None = None

    def nvmlDeviceSetPowerManagementLimit(self, handle, limit):
        gpu = self.gpus[handle.index]
        if limit != gpu.limit_mw:
            saved = json.loads(self.state_path.read_text())
            assert {g["uuid"]: g["original_w"] for g in saved["gpus"]}[gpu.uuid] == 350.0
        super().nvmlDeviceSetPowerManagementLimit(handle, limit)


def test_the_state_file_is_json_written_before_any_change(tmp_path):
    fake = _CheckingNvml(fleet().gpus)
    fake.state_path = tmp_path / "state.json"
    with NvmlActuator(fake, state_file=fake.state_path) as act:
        saved = json.loads(fake.state_path.read_text())
        assert saved["pid"] == os.getpid() and saved["format"] == "carbonsync.power_limits"
        assert pd.Timestamp(saved["started"]).tzinfo is not None
        assert saved["gpus"] == [{"uuid": "GPU-0000-normal", "index": 0, "original_w": 350.0,
                                  "name": "NVIDIA A100-SXM4-80GB"}]
        act.apply(decision(200))
        assert fake.gpus[0].limit_mw == 200_000
    assert not fake.state_path.exists()


def test_original_limits_restored_on_normal_exit_and_restore_is_idempotent(tmp_path):
    fake = two_gpus()
    state = tmp_path / "s.json"
    with NvmlActuator(fake, state_file=state) as act:
        act.apply(decision(150))
        assert fake.limits_w() == [150.0, 150.0]
    assert fake.limits_w() == [350.0, 300.0] and not state.exists() and fake.initialized == 0
    calls = len(fake.calls)
    act.restore()
    assert len(fake.calls) == calls


def test_original_limits_restored_after_an_exception_inside_with(tmp_path):
    fake = two_gpus()
    state = tmp_path / "s.json"
    with pytest.raises(RuntimeError, match="training crashed"), NvmlActuator(fake, state_file=state) as act:
        act.apply(decision(150))
        raise RuntimeError("training crashed")
    assert fake.limits_w() == [350.0, 300.0] and not state.exists()


def test_signal_handler_restores_then_chains_to_the_previous_handler(tmp_path):
    fake = two_gpus()
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        act = NvmlActuator(fake, state_file=tmp_path / "s.json").open()
        act.install_signal_handlers()
        act.apply(decision(150))
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]                      # the previous handler ran
        assert fake.limits_w() == [350.0, 300.0]             # after the limits were restored
        assert signal.getsignal(signal.SIGTERM) is not act._on_signal   # and is back in place
    finally:
        signal.signal(signal.SIGTERM, previous)


CHILD = textwrap.dedent("""
    import signal, sys, time
    import pandas as pd
    from carbonsync.control.decision import Action, Decision, Reason, State
    from carbonsync.control.nvml import NvmlActuator
    from tests.control.fake_nvml import FakeNvml

    # a background job (``make test &``) inherits SIGINT ignored; restore Python's handler, as a training script has
    signal.signal(signal.SIGINT, signal.default_int_handler)
    act = NvmlActuator(FakeNvml.load(sys.argv[1]), state_file=sys.argv[2]).open()
    act.install_signal_handlers()
    act.apply(Decision(time=pd.Timestamp("2025-03-01"), state=State.YELLOW, previous=None, action=Action.CAP,
                       reason=Reason.SCORE_IN_BAND, power_w=200.0, run=True))
    print("ready", flush=True)
    try:
        time.sleep(30)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(7)
""")


def _start_child(tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    fake_file, state = tmp_path / "fake.json", tmp_path / "state.json"
    two_gpus().save(fake_file)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(fake_file), str(state)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    if not ready or proc.stdout.readline().strip() != "ready":
        proc.kill()
        pytest.fail(f"the child did not start: {proc.communicate()[1]}")
    assert FakeNvml.load(fake_file).limits_w() == [200.0, 200.0] and state.exists()
    return proc, fake_file, state


@pytest.mark.parametrize(("signum", "returncode"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 7)])
def test_a_signal_to_a_child_process_restores_its_limits(tmp_path, signum, returncode):
    proc, fake_file, state = _start_child(tmp_path)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=20)
    # SIGTERM: the default disposition, death by the signal; SIGINT: Python's KeyboardInterrupt, caught by the child
    assert proc.returncode == returncode, err
    assert ("interrupted" in out) == (signum == signal.SIGINT)
    assert FakeNvml.load(fake_file).limits_w() == [350.0, 300.0]
    assert not state.exists()


def test_after_sigkill_the_state_file_remains_and_restore_from_it_puts_the_limits_back(tmp_path):
    proc, fake_file, state = _start_child(tmp_path)
    proc.kill()
    proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGKILL
    assert FakeNvml.load(fake_file).limits_w() == [200.0, 200.0] and state.exists()
    fake = FakeNvml.load(fake_file)
    fake.gpus.reverse()                      # the GPUs are matched by UUID, not by index
    lines = restore_from_state_file(state, devices=fake)
    assert fake.limits_w() == [300.0, 350.0] and fake.initialized == 0
    assert not state.exists()
    text = "\n".join(lines)
    assert "GPU 1 (GPU-a): power limit 200 W -> 350 W" in text and "GPU 0 (GPU-b): power limit 200 W -> 300 W" in text
    assert restore_from_state_file(state, devices=fake) == [f"nothing to restore: no power-limit state file at {state}"]


def test_a_stale_state_file_is_restored_first_so_the_originals_stay_true(tmp_path, caplog):
    fake = two_gpus()
    state = tmp_path / "s.json"
    NvmlActuator(fake, state_file=state).open().apply(decision(200))   # never restored
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    saved = json.loads(state.read_text())
    saved["pid"] = int(dead.stdout)
    state.write_text(json.dumps(saved))
    with caplog.at_level(logging.WARNING, logger="carbonsync"), NvmlActuator(fake, state_file=state) as act:
        assert [c.current_w for c in act.capabilities()] == [350.0, 300.0]
        assert [g["original_w"] for g in json.loads(state.read_text())["gpus"]] == [350.0, 300.0]
        act.apply(decision(150))
    assert fake.limits_w() == [350.0, 300.0]
    assert any("without restoring" in r.getMessage() for r in caplog.records)


def test_a_state_file_of_a_running_controller_is_refused(tmp_path):
    fake = two_gpus()
    state = tmp_path / "s.json"
    NvmlActuator(fake, state_file=state).open()
    saved = json.loads(state.read_text())
    saved["pid"] = os.getppid()                 # alive, and not this process
    state.write_text(json.dumps(saved))
    with pytest.raises(ControllerBusy, match=f"pid {os.getppid()}"):
        NvmlActuator(fake, state_file=state).open()
    assert fake.initialized == 1                # the refused open shut its NVML session down again


@pytest.mark.parametrize(("text", "match"), [
    ("{not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"format": "carbonsync.power_limits", "version": 1, "host": "h", "started": "s", "gpus": []}', "'pid' is missing"),
    ('{"format": "carbonsync.power_limits", "version": 1, "pid": "12", "host": "h", "started": "s", "gpus": []}',
     "'pid' has the wrong type"),
    ('{"format": "carbonsync.power_limits", "version": 1, "pid": 1, "host": "h", "started": "s",'
     ' "gpus": [{"uuid": "GPU-a", "index": 0, "original_w": -5}]}', "'gpus\\[0\\].original_w' must be a positive"),
    ('{"format": "carbonsync.power_limits", "version": 1, "pid": 1, "host": "h", "started": "s",'
     ' "gpus": [{"uuid": "GPU-a", "original_w": 300}]}', "'gpus\\[0\\].index' is missing"),
    ('{"format": "pickle", "version": 1}', "'format'"),
])
def test_a_corrupted_state_file_gives_an_error_naming_the_field(tmp_path, text, match):
    state = tmp_path / "s.json"
    state.write_text(text)
    with pytest.raises(StateFileError, match=match):
        read_state_file(state)
    with pytest.raises(StateFileError, match=match):
        restore_from_state_file(state, devices=two_gpus())
    with pytest.raises(StateFileError, match=match):       # never overwritten: the originals may be in it
        NvmlActuator(two_gpus(), state_file=state).open()
    assert state.read_text() == text


def test_restore_keeps_the_state_file_when_a_gpu_cannot_be_restored(tmp_path):
    fake = two_gpus()
    state = tmp_path / "s.json"
    NvmlActuator(fake, state_file=state).open().apply(decision(200))
    fake.gpus[1].permission = False
    lines = restore_from_state_file(state, devices=fake)
    assert fake.limits_w() == [350.0, 200.0] and state.exists()
    assert any("NVML_ERROR_NO_PERMISSION" in line for line in lines) and "kept" in lines[-1]


def test_default_state_file_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CARBONSYNC_CONTROL_STATE", raising=False)
    assert default_state_file() == Path.home() / ".cache" / "carbonsync" / "power_limits.json"
    monkeypatch.setenv("CARBONSYNC_CONTROL_STATE", str(tmp_path / "mine.json"))
    assert default_state_file() == tmp_path / "mine.json"
    assert NvmlActuator(two_gpus()).state_file == tmp_path / "mine.json"


# --------------------------------------------------------------------------------- registry, fallbacks

def test_registry_names_and_protocol(monkeypatch):
    monkeypatch.setattr(actuators, "_REGISTRY", dict(actuators._REGISTRY))
    assert actuators.actuator_names() == ["dry-run", "nvml", "pause-only"]
    for name in ("nvml", "dry-run", "pause-only"):
        assert isinstance(get_actuator(name), Actuator)
    assert isinstance(get_actuator("nvml", devices=two_gpus(), state_file="x.json"), NvmlActuator)
    with pytest.raises(ConfigError, match="unknown actuator 'zeus'; known: dry-run, nvml, pause-only"):
        get_actuator("zeus")
    register_actuator("mine", DryRunActuator)
    assert isinstance(get_actuator("mine"), DryRunActuator)
    with pytest.raises(ConfigError, match="already registered"):
        register_actuator("mine", PauseOnlyActuator)


def test_dry_run_logs_what_it_would_set_and_keeps_the_actuations(caplog):
    act = DryRunActuator().open()
    with caplog.at_level(logging.INFO, logger="carbonsync"):
        act.apply(decision(250))
        act.apply(decision(None, state=State.RED, run=False))
    assert [(a.requested_w, a.run, a.state) for a in act.actuations] == [(250, True, "yellow"), (None, False, "red")]
    messages = [r.getMessage() for r in caplog.records]
    assert "would set the power limit to 250 W per GPU" in messages[0]
    assert "leave the power limits as they are" in messages[1] and "training paused" in messages[1]
    assert act.energy_j() is None and act.capabilities() == [] and not act.pause_only


def test_pause_only_logs_once_and_sets_nothing(caplog):
    act = PauseOnlyActuator()
    with caplog.at_level(logging.INFO, logger="carbonsync"):
        act.open()
        act.open()
        result = act.apply(decision(100))
    assert len([r for r in caplog.records if "pause-only" in r.getMessage()]) == 1
    assert act.pause_only and result.pause_only and result.gpus == ()


def test_open_actuator_falls_back_to_pause_only_when_nvml_fails_to_init(tmp_path, caplog):
    fake = two_gpus(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with caplog.at_level(logging.WARNING, logger="carbonsync"):
        act = open_actuator(devices=fake, state_file=tmp_path / "s.json")
    assert isinstance(act, PauseOnlyActuator)
    assert "NVML is not available (NVML_ERROR_DRIVER_NOT_LOADED): running pause-only, no power caps" in caplog.text
    with pytest.raises(NvmlUnavailable, match="DRIVER_NOT_LOADED"):
        open_actuator(devices=fake, state_file=tmp_path / "s.json", fallback=None)
    assert isinstance(open_actuator(devices=two_gpus(), state_file=tmp_path / "s.json"), NvmlActuator)


def _real_nvml_init_error() -> int | None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return exc.value
    pynvml.nvmlShutdown()
    return None


REAL_NVML_ERROR = _real_nvml_init_error()
needs_no_nvml = pytest.mark.skipif(REAL_NVML_ERROR is None, reason="NVML works on this machine")


@needs_no_nvml
def test_the_real_pynvml_here_is_unavailable(tmp_path):
    with pytest.raises(NvmlUnavailable) as info:
        NvmlActuator(state_file=tmp_path / "s.json").open()
    assert info.value.code == REAL_NVML_ERROR
    assert "NVML is not available here" in str(info.value) and "pause-only" in str(info.value)
    assert not (tmp_path / "s.json").exists()


@needs_no_nvml
def test_open_actuator_on_this_machine_is_pause_only_with_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("CARBONSYNC_CONTROL_STATE", str(tmp_path / "s.json"))
    with caplog.at_level(logging.WARNING, logger="carbonsync"):
        act = open_actuator()
    assert isinstance(act, PauseOnlyActuator) and act.pause_only
    name = {12: "NVML_ERROR_LIBRARY_NOT_FOUND", 9: "NVML_ERROR_DRIVER_NOT_LOADED"}.get(REAL_NVML_ERROR, "NVML_ERROR_")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith(f"NVML is not available ({name}")
    assert warnings[0].getMessage().endswith("running pause-only, no power caps")
