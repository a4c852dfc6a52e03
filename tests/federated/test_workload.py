"""Workloads: the registry, the cosine learning rate, the shared inner loop, and the SFNO sample-world workload."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from carbonsync.core.errors import ConfigError
from carbonsync.federated import workload as workload_module
from carbonsync.federated.workload import (
    SFNOWorkload,
    Workload,
    cosine_lr,
    get_workload,
    known_workloads,
    register_workload,
    train_steps,
)

Batch = tuple[torch.Tensor, torch.Tensor]


class LinearWorkload:
    """Least squares y = 2 x0 - x1 + 0.5 on a seeded stream of batches of 4: a workload small enough to check."""

    samples_per_step = 4

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return torch.nn.Linear(2, 1)

    def optimizer(self, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=lr)

    def batches(self, shard: int = 0, shards: int = 1, position: int = 0) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(1000 * self.seed + shard)
        for i in itertools.count():
            x = torch.randn(4, 2, generator=generator)
            if i >= position:
                yield x, x @ torch.tensor([[2.0], [-1.0]]) + 0.5

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    def evaluate(self, model: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(self.loss(model, next(self.batches(shard=99))))


def params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the workload registry (the built-in workloads stay registered)."""
    copy = dict(workload_module._REGISTRY)
    monkeypatch.setattr(workload_module, "_REGISTRY", copy)
    return copy


# ------------------------------------------------------------------------------------- the registry


def test_the_sfno_workload_is_registered():
    assert "sfno-sample-world" in known_workloads()
    assert list(known_workloads()) == sorted(known_workloads())


def test_a_registered_workload_is_built_with_its_options(registry):
    register_workload("linear", LinearWorkload)
    assert "linear" in known_workloads()
    built = get_workload("linear", seed=3)
    assert isinstance(built, LinearWorkload) and isinstance(built, Workload) and built.seed == 3


def test_registering_a_name_twice_needs_replace(registry):
    register_workload("linear", LinearWorkload)
    with pytest.raises(ValueError, match="'linear' is already registered"):
        register_workload("linear", lambda **options: LinearWorkload(seed=1))
    assert get_workload("linear").seed == 0
    register_workload("linear", lambda **options: LinearWorkload(seed=1), replace=True)
    assert get_workload("linear").seed == 1


def test_an_unknown_workload_is_named(registry):
    with pytest.raises(ConfigError, match="no workload named 'gpt-huge'; known: .*sfno-sample-world"):
        get_workload("gpt-huge")


def test_a_factory_that_builds_no_workload_is_refused(registry):
    register_workload("nothing", lambda **options: object())
    with pytest.raises(ConfigError, match="workload 'nothing' built object, which lacks the Workload methods"):
        get_workload("nothing")


def test_a_workload_named_as_module_and_factory(tmp_path, monkeypatch, registry):
    (tmp_path / "cs_fed_test_workloads.py").write_text(
        "from tests.federated.test_workload import LinearWorkload\n\n"
        "def make(seed=0):\n    return LinearWorkload(seed=seed)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built = get_workload("cs_fed_test_workloads:make", seed=5)
    assert isinstance(built, LinearWorkload) and built.seed == 5
    assert "cs_fed_test_workloads:make" not in known_workloads()
    with pytest.raises(ConfigError, match="workload 'cs_fed_test_workloads:missing' cannot be imported"):
        get_workload("cs_fed_test_workloads:missing")
    with pytest.raises(ConfigError, match="workload 'cs_no_such_module_xyz:make' cannot be imported"):
        get_workload("cs_no_such_module_xyz:make")


# ------------------------------------------------------------------------------------- the cosine schedule


def test_cosine_lr_by_hand():
    assert cosine_lr(1.0, 0, 10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 5, 10) == pytest.approx(0.5)
    assert cosine_lr(1.0, 10, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(0.2, 2.5, 10) == pytest.approx(0.2 * 0.5 * (1 + math.sqrt(0.5)))   # cos(pi / 4)
    assert cosine_lr(1.0, 5, 10, floor=0.1) == pytest.approx(0.55)
    assert cosine_lr(1.0, 10, 10, floor=0.1) == pytest.approx(0.1)


def test_cosine_lr_holds_outside_the_run():
    assert cosine_lr(1.0, 15, 10) == pytest.approx(0.0, abs=1e-12)        # past the end: the floor
    assert cosine_lr(1.0, -3, 10) == pytest.approx(1.0)                   # before the start: the base
    assert cosine_lr(0.3, 0, 0) == pytest.approx(0.3)                     # no total: no division by zero


# ------------------------------------------------------------------------------------- the inner loop


def run(max_steps: int, **options):
    work = LinearWorkload()
    model = work.model()
    optimizer = work.optimizer(model, lr=0.05)
    options = {"lr_base": 0.05, "lr_done": 0, "lr_total": 100, **options}
    report = train_steps(work, model, optimizer, work.batches(), max_steps, **options)
    return report, model, optimizer


def test_train_steps_runs_max_steps():
    start = params(LinearWorkload().model())
    report, model, _ = run(6)
    assert report.steps == 6 and report.stopped == "max_steps"
    assert len(report.losses) == 6 and all(math.isfinite(v) for v in report.losses)
    assert report.mean_loss == pytest.approx(float(np.mean(report.losses)))
    assert report.losses[-1] < report.losses[0]                           # it learns
    assert not torch.equal(params(model), start)
    assert 0.0 < report.compute_s <= report.wall_s


def test_a_stop_reason_ends_the_loop_at_a_step_boundary():
    asked: list[int] = []

    def stop(k: int) -> str | None:
        asked.append(k)
        return "window" if k == 3 else None

    report, model, _ = run(10, stop=stop)
    assert asked == [0, 1, 2, 3]
    assert report.steps == 3 and report.stopped == "window" and len(report.losses) == 3
    _, three, _ = run(3)                                                  # the same as three steps and no more
    assert torch.equal(params(model), params(three))


def test_stopping_before_the_first_step_leaves_the_model():
    report, model, _ = run(5, stop=lambda k: "deadline")
    assert report.steps == 0 and report.stopped == "deadline" and math.isnan(report.mean_loss)
    assert torch.equal(params(model), params(LinearWorkload().model()))


def test_the_learning_rate_follows_the_global_cosine():
    seen: dict[int, float] = {}
    optimizer_box: list[torch.optim.Optimizer] = []

    def stop(k: int) -> None:
        if k > 0:                                                         # the lr that step k - 1 used
            seen[k - 1] = optimizer_box[0].param_groups[0]["lr"]
        return None

    work = LinearWorkload()
    model = work.model()
    optimizer_box.append(work.optimizer(model, lr=123.0))
    report = train_steps(work, model, optimizer_box[0], work.batches(), 4, lr_base=0.1, lr_done=2, lr_total=20,
                         lr_stride=3, stop=stop)
    seen[3] = optimizer_box[0].param_groups[0]["lr"]
    assert report.steps == 4
    # step k at global step 2 + 3 k of 20: 0.05 x (1 + cos(pi x (2 + 3 k) / 20))
    assert seen[0] == pytest.approx(0.0975528258)   # cos(0.10 pi) = 0.9510565163
    assert seen[1] == pytest.approx(0.0853553391)   # cos(0.25 pi) = 0.7071067812
    assert seen[2] == pytest.approx(0.0654508497)   # cos(0.40 pi) = 0.3090169944
    assert seen[3] == pytest.approx(0.0421782767)   # cos(0.55 pi) = -0.1564344650


def test_a_non_finite_loss_stops_without_stepping():
    work = LinearWorkload()
    good = list(itertools.islice(work.batches(), 2))
    x, y = next(work.batches(position=2))
    bad = (x, torch.full_like(y, float("nan")))
    stream = iter([*good, bad, *itertools.islice(work.batches(position=3), 5)])
    model = work.model()
    report = train_steps(work, model, work.optimizer(model, 0.05), stream, 6, lr_base=0.05, lr_done=0, lr_total=100)
    assert report.steps == 2 and report.stopped == "error" and len(report.losses) == 2
    two = run(2)[1]
    assert torch.equal(params(model), params(two))                        # the NaN step was not taken
    assert next(stream)[0].shape == (4, 2)                                # the bad batch was the last one read


def test_gradients_are_clipped_to_grad_clip():
    class Steep(LinearWorkload):
        def loss(self, model, batch):
            return 1.0e4 * model(batch[0]).sum()

    work = Steep()
    model = work.model()
    before = params(model)
    train_steps(work, model, work.optimizer(model, 1.0), work.batches(), 1, lr_base=1.0, lr_done=0, lr_total=10,
                grad_clip=0.5)
    assert torch.linalg.vector_norm(params(model) - before).item() == pytest.approx(0.5, rel=1e-4)


# ------------------------------------------------------------------------------------- the SFNO workload


@pytest.fixture(scope="module")
def sfno(tmp_path_factory) -> SFNOWorkload:
    """The SFNO on an 8-day 9x16 sample world: 20 six-hourly training states, 19 one-step starts."""
    return SFNOWorkload(data_dir=str(tmp_path_factory.mktemp("sfno_world")), days=8, spinup_days=1, nlat=9, nlon=16,
                        lmax=6, model_lmax=4, embed_dim=8, num_layers=1, batch_size=4, shard_block_states=4,
                        train=["2020-08-01", "2020-08-05T23:00"], val=["2020-08-06", "2020-08-07T05:00"],
                        test=["2020-08-07T06:00", "2020-08-08T23:00"])


def test_sfno_shards_are_disjoint_and_cover_the_training_starts(sfno):
    starts = sfno.train_source.starts(1)
    assert starts.tolist() == list(range(19))
    # blocks of 4 consecutive states dealt round-robin
    assert sfno.shard_starts(0, 2).tolist() == [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18]
    assert sfno.shard_starts(1, 2).tolist() == [4, 5, 6, 7, 12, 13, 14, 15]
    for shards in (1, 2, 3):
        parts = [set(sfno.shard_starts(i, shards).tolist()) for i in range(shards)]
        assert sum(len(p) for p in parts) == len(starts)                  # disjoint ...
        assert set().union(*parts) == set(starts.tolist())                # ... and complete
    with pytest.raises(ConfigError, match=r"shard 2 is not in \[0, 2\)"):
        sfno.shard_starts(2, 2)
    with pytest.raises(ConfigError, match="shard 5 of 6 holds no training sample"):
        sfno.shard_starts(5, 6)


def test_sfno_batches_resume_at_a_position(sfno):
    per_epoch = math.ceil(11 / 4)                                         # shard 0 of 2: 11 starts in batches of 4
    reference = list(itertools.islice(sfno.batches(0, 2), 2 * per_epoch + 2))
    assert [b.x.shape[0] for b in reference[:per_epoch]] == [4, 4, 3]
    assert not torch.equal(reference[0].x, reference[per_epoch].x)       # each epoch is reshuffled
    for position in (0, 2, per_epoch, per_epoch + 1):                     # within the first epoch and after it
        resumed = list(itertools.islice(sfno.batches(0, 2, position=position), 4))
        for got, want in zip(resumed, reference[position:position + 4], strict=True):
            assert torch.equal(got.x, want.x) and torch.equal(got.targets, want.targets)
            assert torch.equal(got.forcing, want.forcing)
    other = next(sfno.batches(1, 2))
    assert not torch.equal(other.x, reference[0].x)


def test_sfno_models_start_identical_and_train(sfno):
    first, second = sfno.model(), sfno.model()
    assert first.state_dict().keys() == second.state_dict().keys()
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    before = sfno.evaluate(first)
    assert isinstance(before, float) and math.isfinite(before)
    report = train_steps(sfno, first, sfno.optimizer(first, 1e-3), sfno.batches(0, 2), 2, lr_base=1e-3, lr_done=0,
                         lr_total=10)
    assert report.steps == 2 and report.stopped == "max_steps" and all(math.isfinite(v) for v in report.losses)
    assert math.isfinite(sfno.evaluate(first)) and first.training                # evaluate restores train mode
