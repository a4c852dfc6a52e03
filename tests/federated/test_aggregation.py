"""Aggregation: the weighted average by work done, the DiLoCo outer step, and the server checkpoint."""

from __future__ import annotations

import pytest
import torch

from carbonsync.core.errors import ConfigError
from carbonsync.federated.aggregation import OuterOptimizer, ServerState, weighted_average


def t(*values: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


# ------------------------------------------------------------------------------------- the weighted average


def test_the_average_is_weighted_by_batches():
    states = [{"w": t(1.0, 2.0, dtype=torch.float32), "count": torch.tensor(3)},
              {"w": t(4.0, 8.0, dtype=torch.float32), "count": torch.tensor(7)}]
    out = weighted_average(states, [1, 3])
    # (1 x [1, 2] + 3 x [4, 8]) / 4
    assert torch.equal(out["w"], t(3.25, 6.5, dtype=torch.float32))
    assert out["w"].dtype == torch.float32
    assert out["count"].item() == 3                                        # integer buffers from the first site
    assert out["count"] is not states[0]["count"]
    assert torch.equal(states[0]["w"], t(1.0, 2.0, dtype=torch.float32))  # inputs untouched


def test_a_site_without_work_does_not_move_the_average():
    states = [{"w": t(1.0, 2.0)}, {"w": t(5.0, 6.0)}, {"w": t(100.0, 100.0)}]
    assert torch.equal(weighted_average(states, [0, 2, 0])["w"], t(5.0, 6.0))
    assert torch.allclose(weighted_average(states[:2], [1.0, 1.0])["w"], t(3.0, 4.0))


@pytest.mark.parametrize("states, weights, match", [
    ([], [], "no site returned work"),
    ([{"w": t(1.0)}], [1, 2], "1 states but 2 weights"),
    ([{"w": t(1.0)}, {"w": t(2.0)}], [0, 0], "positive sum"),
    ([{"w": t(1.0)}, {"w": t(2.0)}], [2, -1], "non-negative"),
    ([{"w": t(1.0)}, {"v": t(2.0)}], [1, 1], r"site 1 returned different tensors from site 0: \['v', 'w'\]"),
])
def test_bad_aggregation_inputs_are_refused(states, weights, match):
    with pytest.raises(ConfigError, match=match):
        weighted_average(states, weights)


# ------------------------------------------------------------------------------------- the outer step


@pytest.mark.parametrize("options, match", [({"lr": 0.0}, "lr=0.0"), ({"momentum": -0.1}, "momentum=-0.1"),
                                            ({"momentum": 1.0}, "below 1")])
def test_outer_optimizer_checks_its_settings(options, match):
    with pytest.raises(ConfigError, match=match):
        OuterOptimizer(**options)


def test_lr_one_without_momentum_is_fedavg():
    outer = OuterOptimizer(lr=1.0, momentum=0.0)
    assert outer.is_fedavg and not OuterOptimizer(lr=0.7).is_fedavg and not OuterOptimizer(momentum=0.5).is_fedavg
    average, momentum = {"w": t(0.25, 0.5), "n": torch.tensor(4)}, {}
    out = outer.step({"w": t(1.0, 1.0), "n": torch.tensor(1)}, average, momentum)
    assert torch.equal(out["w"], average["w"]) and out["w"] is not average["w"]
    assert out["n"].item() == 4 and momentum == {}


def test_outer_sgd_without_momentum_moves_part_of_the_way():
    out = OuterOptimizer(lr=0.5).step({"w": t(1.0, -2.0)}, {"w": t(0.0, 2.0)}, {})
    assert torch.allclose(out["w"], t(0.5, 0.0))                          # global - 0.5 x (global - average)


def test_nesterov_outer_steps_by_hand():
    outer, momentum = OuterOptimizer(lr=0.5, momentum=0.9, nesterov=True), {}
    # round 1: delta = 1.0 - 0.6 = 0.4; m = 0.4; step = 0.4 + 0.9 x 0.4 = 0.76; new = 1.0 - 0.5 x 0.76 = 0.62
    g1 = outer.step({"w": t(1.0), "n": torch.tensor(1)}, {"w": t(0.6), "n": torch.tensor(2)}, momentum)
    assert g1["w"].item() == pytest.approx(0.62)
    assert momentum["w"].item() == pytest.approx(0.4)
    assert g1["n"].item() == 2 and set(momentum) == {"w"}                   # integer buffers: the average's
    # round 2: delta = 0.62 - 0.42 = 0.2; m = 0.9 x 0.4 + 0.2 = 0.56; step = 0.2 + 0.9 x 0.56 = 0.704;
    # new = 0.62 - 0.5 x 0.704 = 0.268
    g2 = outer.step(g1, {"w": t(0.42), "n": torch.tensor(2)}, momentum)
    assert g2["w"].item() == pytest.approx(0.268)
    assert momentum["w"].item() == pytest.approx(0.56)


def test_heavy_ball_outer_steps_by_hand():
    outer, momentum = OuterOptimizer(lr=0.5, momentum=0.9, nesterov=False), {}
    g1 = outer.step({"w": t(1.0)}, {"w": t(0.6)}, momentum)               # m = 0.4; 1 - 0.5 x 0.4
    assert g1["w"].item() == pytest.approx(0.8)
    g2 = outer.step(g1, {"w": t(0.6)}, momentum)                          # m = 0.36 + 0.2 = 0.56; 0.8 - 0.28
    assert g2["w"].item() == pytest.approx(0.52)


@pytest.mark.parametrize("nesterov", [True, False])
def test_the_outer_step_is_torch_sgd_on_the_pseudo_gradient(nesterov):
    """DiLoCo's outer optimiser: SGD (with Nesterov momentum) whose gradient is ``global - average``."""
    outer, momentum = OuterOptimizer(lr=0.7, momentum=0.8, nesterov=nesterov), {}
    param = torch.nn.Parameter(t(1.0, -1.0, 0.5))
    sgd = torch.optim.SGD([param], lr=0.7, momentum=0.8, nesterov=nesterov)
    state = {"w": param.detach().clone()}
    for average in (t(0.5, -0.5, 0.0), t(0.2, 0.1, 0.3), t(-0.4, 0.6, 0.3)):
        param.grad = param.detach() - average
        sgd.step()
        state = outer.step(state, {"w": average}, momentum)
        assert torch.allclose(state["w"], param.detach())


# ------------------------------------------------------------------------------------- the checkpoint


def test_the_server_state_round_trips(tmp_path):
    state = ServerState(weights={"w": t(1.0, 2.0, dtype=torch.float32), "n": torch.tensor(5)},
                        momentum={"w": t(0.1, 0.2, dtype=torch.float32)}, round=3, samples_done=96, steps_done=12,
                        positions={"north": 4, "south": 7}, trace_time="2024-05-01T01:30:00")
    path = state.save(tmp_path / "server" / "state.pt")                   # the folder is made
    assert path == tmp_path / "server" / "state.pt"
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]        # atomic: no temporary left behind
    back = ServerState.load(path)
    assert (back.round, back.samples_done, back.steps_done) == (3, 96, 12)
    assert back.positions == {"north": 4, "south": 7} and back.trace_time == "2024-05-01T01:30:00"
    assert back.weights.keys() == state.weights.keys() and back.momentum.keys() == {"w"}
    assert all(torch.equal(back.weights[k], state.weights[k]) for k in state.weights)
    assert torch.equal(back.momentum["w"], state.momentum["w"])
    payload = torch.load(path, weights_only=True)                         # plain tensors and numbers only
    assert payload["round"] == 3


def test_a_failed_save_keeps_the_last_good_checkpoint(tmp_path):
    path = ServerState(weights={"w": t(1.0)}, round=1).save(tmp_path / "state.pt")
    with pytest.raises(Exception):  # noqa: B017 -- whatever pickling raises
        ServerState(weights={"w": lambda: None}, round=2).save(path)      # a lambda cannot be saved
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    assert ServerState.load(path).round == 1


def test_loading_something_that_is_not_a_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read the server checkpoint .*notes.pt"):
        ServerState.load(path)
    with pytest.raises(ConfigError, match="cannot read the server checkpoint"):
        ServerState.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("payload", [{"model": {}}, [1, 2]])
def test_loading_another_torch_file_names_the_file(tmp_path, payload):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(ConfigError, match="other.pt"):
        ServerState.load(path)
