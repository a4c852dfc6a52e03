"""The job power profile built from the Zeus V100 power-limit trace."""

from __future__ import annotations

import pytest

from carbonsync.control.decision import State
from carbonsync.control.profiles import ZEUS_V100_RESNET50, PowerCurve, resnet18_like_profile
from carbonsync.core.errors import ConfigError


def test_curve_is_monotone_and_sublinear():
    rates = [ZEUS_V100_RESNET50.relative_rate(c) for c in ZEUS_V100_RESNET50.caps_w]
    assert rates == sorted(rates) and rates[-1] == 1.0
    # throughput falls less than the cap: every lower cap does more work per watt of cap than the top one
    top = ZEUS_V100_RESNET50.caps_w[-1]
    assert all(r / c > 1.0 / top for r, c in zip(rates[:-1], ZEUS_V100_RESNET50.caps_w[:-1], strict=True))
    assert all(d <= c for d, c in zip(ZEUS_V100_RESNET50.draw_w, ZEUS_V100_RESNET50.caps_w, strict=True))


def test_profile_maps_the_prototype_levels():
    p = resnet18_like_profile()
    cap = ZEUS_V100_RESNET50.most_efficient_cap()
    assert (p.green_w, p.green_rate, p.red_w, p.pause) == (250.0, 1.0, 100.0, True)
    assert p.yellow_w == cap and p.yellow_rate == pytest.approx(ZEUS_V100_RESNET50.relative_rate(cap))
    assert p.rate(State.RED) == 0.0 and p.watts(State.RED) == p.idle_w
    # the YELLOW level takes less energy per unit of work than full power
    assert p.yellow_w / p.yellow_rate < p.green_w / p.green_rate


def test_draw_accounting_and_throttle():
    p = resnet18_like_profile(accounting="draw", pause=False)
    cap = ZEUS_V100_RESNET50.most_efficient_cap()
    assert p.green_w == ZEUS_V100_RESNET50.draw(250.0) and p.yellow_w == ZEUS_V100_RESNET50.draw(cap)
    assert p.red_w == ZEUS_V100_RESNET50.draw(100.0)
    assert p.red_rate == pytest.approx(ZEUS_V100_RESNET50.relative_rate(100.0)) and p.rate(State.RED) > 0


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="not in the sweep"):
        resnet18_like_profile(yellow_cap_w=160.0)
    with pytest.raises(ConfigError, match="accounting"):
        resnet18_like_profile(accounting="nameplate")
    with pytest.raises(ConfigError, match="must increase"):
        PowerCurve("x", "y", (2.0, 1.0), (1.0, 1.0), (1.0, 1.0))
