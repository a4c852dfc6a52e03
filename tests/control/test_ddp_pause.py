"""Two gloo ranks of a DDP job pause together at the same step boundary for longer than the process group's
timeout, then resume and finish with working all-reduces and equal parameters."""

from __future__ import annotations

import datetime
import socket
import time
import traceback
from pathlib import Path

import pandas as pd
import pytest
import torch

from carbonsync.control.decision import Action, Decision, Reason, State
from carbonsync.control.training import DistributedGate, StepGate

WORLD = 2
STEPS = 8
PAUSE_AT_CALL = 3      # rank 0's 4th decision, at step 3
PAUSE_S = 6.0          # longer than the process group's timeout
PG_TIMEOUT_S = 3.0


class PauseOnce:
    """A scripted decide for rank 0: run, then pause for ``PAUSE_S`` of wall time from its 4th call on."""

    def __init__(self) -> None:
        self.calls = 0
        self.started: pd.Timestamp | None = None

    def __call__(self, now: pd.Timestamp) -> Decision:
        self.calls += 1
        if self.calls == PAUSE_AT_CALL + 1:
            self.started = now
        paused = self.started is not None and now - self.started < pd.Timedelta(seconds=PAUSE_S)
        state = State.RED if paused else State.GREEN
        return Decision(time=now, state=state, previous=None, action=Action.HOLD, reason=Reason.START,
                        power_w=100.0 if paused else 250.0, run=not paused)


class Caps:
    """An actuator that records the power caps it was asked for."""

    def __init__(self) -> None:
        self.applied: list[float | None] = []

    def apply(self, decision: Decision) -> None:
        self.applied.append(decision.power_w)


def _always_run(now: pd.Timestamp) -> Decision:
    return Decision(time=now, state=State.GREEN, previous=None, action=Action.HOLD, reason=Reason.START,
                    power_w=250.0, run=True)


def _worker(rank: int, port: int, out_dir: str, barrier, distributed: bool = True) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    out = Path(out_dir)
    torch.set_num_threads(1)
    try:
        barrier.wait(timeout=60)             # both ranks have imported everything: the short timeout is fair
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                                timeout=datetime.timedelta(seconds=PG_TIMEOUT_S))
        torch.manual_seed(rank)              # different initial weights: DDP's broadcast must align them
        model = DistributedDataParallel(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                                            torch.nn.Linear(8, 1)))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        rec: dict = {"pause": [], "resume": [], "steps": []}
        actuator = Caps()
        gate = StepGate(PauseOnce() if rank == 0 else _always_run, actuator, interval="0s", poll="0.1s",
                        on_pause=lambda s, d: rec["pause"].append((s, time.time(), d.state.value)),
                        on_resume=lambda s, d: rec["resume"].append((s, time.time(), d.state.value)))
        # the control: without DistributedGate, rank 0 pauses alone and rank 1 waits inside the all-reduce
        dgate = DistributedGate(gate, poll_s=0.01, pause_poll_s=0.05) if distributed else \
            DistributedGate(gate if rank == 0 else StepGate(_always_run), world_size=1)
        g = torch.Generator().manual_seed(100 + rank)
        for step in range(STEPS):
            dgate.step(step)
            x, y = torch.randn(8, 4, generator=g), torch.randn(8, 1, generator=g)
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()     # an all-reduce of the gradients
            opt.step()
            rec["steps"].append((step, time.time()))
        total = torch.tensor([float(rank + 1)])
        dist.all_reduce(total)
        rec["all_reduce"] = total.item()
        store = dgate.store
        rec["leftover_keys"] = [k for i in range(STEPS) for k in (f"carbonsync/gate/{i}", f"carbonsync/gate/{i}/resume",
                                                                f"carbonsync/gate/{i}/read") if store.check([k])]
        rec.update(caps=actuator.applied, pauses=gate.pauses, paused_s=gate.paused_s, decisions=gate.decisions, calls=dgate.calls,
                   params=[p.detach().clone() for p in model.parameters()])
        torch.save(rec, out / f"rank{rank}.pt")
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:
        (out / f"rank{rank}.err").write_text(traceback.format_exc())
        raise


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path: Path, distributed: bool) -> tuple[list[int | None], dict[str, str]]:
    """Both ranks in spawned processes (killed if still alive after a minute); exit codes and tracebacks."""
    ctx = torch.multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORLD)
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, str(tmp_path), barrier, distributed), daemon=True)
             for rank in range(WORLD)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 60
    try:
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            if any(p.exitcode not in (None, 0) for p in procs):
                break                       # one rank failed: do not wait for the other to time out
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(5)
    return [p.exitcode for p in procs], {f.stem: f.read_text() for f in tmp_path.glob("*.err")}


@pytest.mark.slow
def test_without_the_distributed_gate_a_lone_pause_times_the_job_out(tmp_path):
    """The control experiment: the timeout is real, so the test below means something."""
    exitcodes, errors = _run(tmp_path, distributed=False)
    assert exitcodes[1] != 0 and "rank1" in errors
    assert "timed out" in errors["rank1"].lower() or "timeout" in errors["rank1"].lower(), errors["rank1"]


@pytest.mark.slow
def test_ddp_ranks_pause_together_past_the_process_group_timeout(tmp_path):
    exitcodes, errors = _run(tmp_path, distributed=True)
    assert not errors, errors
    assert exitcodes == [0] * WORLD
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD))

    # both ranks paused once, at step 3, together, for longer than the process group's timeout
    for rec in (r0, r1):
        assert [(s, st) for s, _, st in rec["pause"]] == [(3, "red")]
        assert [(s, st) for s, _, st in rec["resume"]] == [(3, "green")]
        assert rec["pauses"] == 1 and rec["paused_s"] > PG_TIMEOUT_S
        assert rec["resume"][0][1] - rec["pause"][0][1] >= PAUSE_S - 0.2
        assert [s for s, _ in rec["steps"]] == list(range(STEPS))
        assert rec["steps"][3][1] > rec["resume"][0][1]          # step 3 trained after the pause, not before
        assert rec["all_reduce"] == 3.0
        assert rec["calls"] == STEPS
    assert abs(r0["pause"][0][1] - r1["pause"][0][1]) < 1.0
    assert abs(r0["resume"][0][1] - r1["resume"][0][1]) < 1.0
    # rank 0 decided at every step and every 0.1 s of the pause; rank 1 never called its own decide
    assert r0["decisions"] > STEPS and r1["decisions"] == 0
    assert r0["leftover_keys"] == [] and r1["leftover_keys"] == []
    # rank 1's actuator followed rank 0's power caps (full power, the pause's 100 W, full power again)
    assert r0["caps"] == r1["caps"] == [250.0, 100.0, 250.0]
    for a, b in zip(r0["params"], r1["params"], strict=True):
        assert torch.equal(a, b)
