"""The step gate: pauses at step boundaries on a simulated clock, staggered resumes, bit-exact training across a
pause, and the Lightning and Hugging Face callbacks (skipped where the framework is not installed)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from carbonsync.control.decision import Action, Decision, Reason, State
from carbonsync.control.training import StepGate, hf_callback, lightning_callback
from carbonsync.core.errors import ConfigError

T0 = pd.Timestamp("2025-01-06 00:00")
MIN = pd.Timedelta("1min")
POWER = {State.GREEN: 250.0, State.YELLOW: 175.0, State.RED: 100.0}


class SimClock:
    """Simulated time: the loop advances it per step, the gate's ``sleep`` advances it while paused."""

    def __init__(self, start: pd.Timestamp = T0) -> None:
        self.t = start
        self.slept: list[float] = []

    def __call__(self) -> pd.Timestamp:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += pd.Timedelta(seconds=seconds)

    def advance(self, delta: pd.Timedelta = MIN) -> None:
        self.t += delta


def decision(now: pd.Timestamp, state: State) -> Decision:
    return Decision(time=now, state=state, previous=None, action=Action.HOLD, reason=Reason.START,
                    power_w=POWER[state], run=state != State.RED, sentence=f"{state.value} at {now}")


def scripted(t1: pd.Timestamp, t2: pd.Timestamp, yellow_from: pd.Timestamp | None = None):
    """GREEN, then YELLOW from ``yellow_from``, RED (pause) in [t1, t2), GREEN after; records each call's time."""
    calls: list[pd.Timestamp] = []

    def decide(now: pd.Timestamp) -> Decision:
        calls.append(now)
        if t1 <= now < t2:
            return decision(now, State.RED)
        if yellow_from is not None and yellow_from <= now < t1:
            return decision(now, State.YELLOW)
        return decision(now, State.GREEN)

    decide.calls = calls  # type: ignore[attr-defined]
    return decide


class RecordingActuator:
    def __init__(self) -> None:
        self.applied: list[float | None] = []
        self.restored = 0

    def apply(self, d: Decision) -> None:
        self.applied.append(d.power_w)

    def restore(self) -> None:
        self.restored += 1


def test_plain_loop_pauses_at_the_right_step_for_the_scripted_time():
    clock = SimClock()
    t1, t2 = T0 + 20 * MIN, T0 + pd.Timedelta("32min10s")
    decide = scripted(t1, t2, yellow_from=T0 + 10 * MIN)
    actuator = RecordingActuator()
    events: list[tuple[str, int, pd.Timestamp]] = []
    seen: list[Decision] = []
    steps_run: list[tuple[int, pd.Timestamp]] = []
    with StepGate(decide, actuator, interval="5min", poll="30s", clock=clock, sleep=clock.sleep,
                  on_pause=lambda s, d: events.append(("pause", s, clock())),
                  on_resume=lambda s, d: events.append(("resume", s, clock())),
                  on_decision=seen.append) as gate:
        for step in range(60):
            gate.step(step)
            steps_run.append((step, clock()))
            clock.advance(MIN)          # one training step takes a simulated minute
    resume_at = T0 + pd.Timedelta("32min30s")   # the first 30 s poll at or after t2
    assert events == [("pause", 20, t1), ("resume", 20, resume_at)]
    assert steps_run[19] == (19, T0 + 19 * MIN) and steps_run[20] == (20, resume_at)
    poll_s = 30.0
    assert gate.pauses == 1
    assert gate.paused_s == math.ceil((t2 - t1).total_seconds() / poll_s) * poll_s == 750.0
    assert clock.slept == [poll_s] * 25
    # every 5 min before the pause, every poll during it, every 5 min from the resume on
    before = [T0 + k * 5 * MIN for k in range(5)]
    during = [t1 + pd.Timedelta(seconds=30 * k) for k in range(1, 26)]
    after = [resume_at + k * 5 * MIN for k in range(1, 8)]
    assert decide.calls == before + during + after
    assert gate.decisions == len(decide.calls) == len(seen) == 37
    assert [d.time for d in seen] == decide.calls
    # the actuator sees only the changes: green, yellow, red, green
    assert actuator.applied == [250.0, 175.0, 100.0, 250.0]
    assert actuator.restored == 1


def test_no_actuator_and_a_decide_that_fails_runs_on():
    clock = SimClock()
    state = {"fail": True}

    def decide(now: pd.Timestamp) -> Decision:
        if state["fail"]:
            raise RuntimeError("signal down")
        return decision(now, State.RED)

    gate = StepGate(decide, interval="5min", clock=clock, sleep=clock.sleep)
    for step in range(3):
        assert gate.step(step) is None      # fail safe: no decision, the loop runs
        clock.advance(MIN)
    assert gate.errors == 1 and gate.decisions == 0 and gate.pauses == 0
    state["fail"] = False
    clock.advance(5 * MIN)
    gate.poll = pd.Timedelta("1min")
    seen = []

    def fail_during_pause(now: pd.Timestamp) -> Decision:
        seen.append(now)
        if len(seen) > 1:
            raise RuntimeError("signal down again")
        return decision(now, State.RED)

    gate.decide = fail_during_pause
    out = gate.step(3)                      # paused, then a failure during the pause ends it
    assert out is not None and not out.run and gate.pauses == 1 and gate.errors == 2
    assert gate.paused_s == 60.0


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="poll"):
        StepGate(lambda now: decision(now, State.GREEN), poll="0s")
    with pytest.raises(ConfigError, match="worker_index"):
        StepGate(lambda now: decision(now, State.GREEN), worker_index=-1)
    with pytest.raises(ConfigError, match="actuator"):
        StepGate(lambda now: decision(now, State.GREEN), actuator=object())  # type: ignore[arg-type]


def test_staggered_resume_spreads_workers_by_worker_index():
    t1, t2 = T0 + 10 * MIN, T0 + 20 * MIN
    stagger = pd.Timedelta("2min")
    resumed: dict[int, pd.Timestamp] = {}
    gates = []
    for index in range(4):
        clock = SimClock()
        gate = StepGate(scripted(t1, t2), interval="5min", poll="1min", clock=clock, sleep=clock.sleep,
                        stagger=stagger, worker_index=index,
                        on_resume=lambda s, d, i=index, c=clock: resumed.__setitem__(i, c()))
        for step in range(30):
            gate.step(step)
            clock.advance(MIN)
        gates.append(gate)
    assert resumed == {i: t2 + i * stagger for i in range(4)}
    assert [g.paused_s for g in gates] == [(t2 - t1 + i * stagger).total_seconds() for i in range(4)]
    assert all(g.pauses == 1 for g in gates)


def _batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 4, generator=g), torch.randn(8, 1, generator=g)) for _ in range(n)]


def _train(gate: StepGate | None, steps: int = 30, hooks: dict | None = None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if hooks is not None:
        hooks.update(model=model, opt=opt, params=list(model.parameters()))
    clock = gate.clock if gate is not None else None
    for step, (x, y) in enumerate(_batches(steps)):
        if gate is not None:
            gate.step(step)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        if clock is not None:
            clock.advance(MIN)
    return model, opt


def test_training_across_a_pause_is_bit_for_bit_the_uninterrupted_run():
    reference, _ = _train(None)
    clock = SimClock()
    hooks: dict = {}
    seen: dict[str, tuple] = {}

    def snapshot(name: str):
        def record(step: int, d: Decision) -> None:
            seen[name] = (step, hooks["model"], hooks["opt"], list(hooks["model"].parameters()),
                          [p.data_ptr() for p in hooks["model"].parameters()], hooks["opt"].state_dict()["state"][0])
        return record

    gate = StepGate(scripted(T0 + 15 * MIN, T0 + 3 * pd.Timedelta("1h")), interval="5min", poll="5min",
                    clock=clock, sleep=clock.sleep, on_pause=snapshot("pause"), on_resume=snapshot("resume"))
    model, opt = _train(gate, hooks=hooks)
    assert gate.pauses == 1 and gate.paused_s == pd.Timedelta("2h45min").total_seconds()
    assert seen["pause"][0] == seen["resume"][0] == 15
    p_step, p_model, p_opt, p_params, p_ptrs, p_momentum = seen["pause"]
    r_step, r_model, r_opt, r_params, r_ptrs, r_momentum = seen["resume"]
    assert p_model is r_model is model and p_opt is r_opt is opt          # the same objects, nothing reloaded
    assert all(a is b for a, b in zip(p_params, r_params, strict=True)) and p_ptrs == r_ptrs
    assert p_momentum["momentum_buffer"] is r_momentum["momentum_buffer"]
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_lightning_callback_pauses_the_trainer_and_checkpoints_on_pause(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    clock = SimClock()

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))

        def training_step(self, batch, batch_idx):
            clock.advance(MIN)
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    def fit(callbacks: list) -> Tiny:
        torch.manual_seed(0)
        model = Tiny()
        x, y = torch.cat([b[0] for b in _batches(12)]), torch.cat([b[1] for b in _batches(12)])
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
        trainer = pl.Trainer(max_steps=10, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
        trainer.fit(model, loader)
        assert trainer.global_step == 10
        return model

    reference = fit([])
    clock.t = T0
    events: list[tuple[str, int]] = []
    gate = StepGate(scripted(T0 + 4 * MIN, T0 + 30 * MIN), interval="2min", poll="1min", clock=clock,
                    sleep=clock.sleep, on_pause=lambda s, d: events.append(("pause", s)),
                    on_resume=lambda s, d: events.append(("resume", s)))
    model = fit([lightning_callback(gate)])
    assert isinstance(lightning_callback(StepGate(lambda now: decision(now, State.GREEN))), pl.Callback)
    assert events == [("pause", 4), ("resume", 4)] and gate.paused_s == 26 * 60
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)

    # checkpoint on pause: Lightning's own checkpoint, written as the pause begins, holds the weights of step 4
    clock.t = T0
    path = tmp_path / "paused.ckpt"
    at_pause: dict = {}
    gate = StepGate(scripted(T0 + 4 * MIN, T0 + 30 * MIN), interval="2min", poll="1min", clock=clock,
                    sleep=clock.sleep, on_pause=lambda s, d: at_pause.update(exists=path.exists()))
    callback = lightning_callback(gate, checkpoint_on_pause=path)
    snapshot: dict = {}
    gate.add_pause_hook(lambda s, d: snapshot.update({k: v.clone() for k, v in callback.trainer.lightning_module
                                                       .state_dict().items()}))
    fit([callback])
    assert at_pause == {"exists": False} and path.is_file()     # written by the pause, not before it
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 4
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in snapshot.items())
    clock.t = T0
    resumed = Tiny()
    trainer = pl.Trainer(max_steps=10, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    x, y = torch.cat([b[0] for b in _batches(12)]), torch.cat([b[1] for b in _batches(12)])
    trainer.fit(resumed, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8),
                ckpt_path=str(path))
    assert trainer.global_step == 10


def test_hf_callback_pauses_the_trainer(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    clock = SimClock()

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))

        def forward(self, x, y):
            clock.advance(MIN)
            return {"loss": torch.nn.functional.mse_loss(self.net(x), y)}

    class Data(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.rows = [(x[i], y[i]) for x, y in _batches(12) for i in range(len(x))]

        def __len__(self) -> int:
            return len(self.rows)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"x": self.rows[i][0], "y": self.rows[i][1]}

    def fit(callbacks: list) -> Tiny:
        torch.manual_seed(0)
        model = Tiny()
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path), max_steps=10, per_device_train_batch_size=8, learning_rate=0.05,
            report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", disable_tqdm=True,
            dataloader_num_workers=0, seed=0)
        transformers.Trainer(model=model, args=args, train_dataset=Data(), callbacks=callbacks).train()
        return model

    reference = fit([])
    clock.t = T0
    events: list[tuple[str, int]] = []
    gate = StepGate(scripted(T0 + 4 * MIN, T0 + 30 * MIN), interval="2min", poll="1min", clock=clock,
                    sleep=clock.sleep, on_pause=lambda s, d: events.append(("pause", s)),
                    on_resume=lambda s, d: events.append(("resume", s)))
    model = fit([hf_callback(gate)])
    assert isinstance(hf_callback(StepGate(lambda now: decision(now, State.GREEN))), transformers.TrainerCallback)
    assert events == [("pause", 4), ("resume", 4)] and gate.paused_s == 26 * 60
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)

    # checkpoint on pause: the Trainer's own layout, written as the pause begins; the Trainer resumes from it
    clock.t = T0
    saved_dir = tmp_path / "paused"
    snapshot: dict = {}
    gate = StepGate(scripted(T0 + 4 * MIN, T0 + 30 * MIN), interval="2min", poll="1min", clock=clock,
                    sleep=clock.sleep)
    callback = hf_callback(gate, checkpoint_on_pause=saved_dir)
    gate.add_pause_hook(lambda s, d: snapshot.update({k: v.clone() for k, v in callback.context[2]["model"]
                                                       .state_dict().items()}))
    fit([callback])
    checkpoint = saved_dir / "checkpoint-4"
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"} <= \
        {p.name for p in checkpoint.iterdir()}
    from safetensors.torch import load_file
    weights = load_file(checkpoint / "model.safetensors")
    assert weights.keys() == snapshot.keys() and all(torch.equal(weights[k], v) for k, v in snapshot.items())
    clock.t = T0
    torch.manual_seed(0)
    resumed = Tiny()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "resumed"), max_steps=10, per_device_train_batch_size=8, learning_rate=0.05,
        report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, seed=0)
    trainer = transformers.Trainer(model=resumed, args=args, train_dataset=Data())
    trainer.train(resume_from_checkpoint=str(checkpoint))
    assert trainer.state.global_step == 10
