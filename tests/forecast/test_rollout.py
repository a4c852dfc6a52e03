"""The one rollout: ``rollout_states`` on a protocol model, and the Forecaster's chain against hand-written steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from carbonsync.data import lexicon
from carbonsync.data.validation import WeatherDataError
from carbonsync.forecast import chain
from carbonsync.forecast.chain import Damping, PrognosticModel, rollout_states
from carbonsync.forecast.rollout import Forecaster
from carbonsync.models.inputs import hour_state_weights, irradiance_inputs, zenith_forcing
from carbonsync.models.package import load_package
from carbonsync.physics.grid import Grid
from carbonsync.physics.zones import load_zones, zone_masks
from tests.helpers.chain import CHANNELS, GRID, INIT, save_backbone, save_irradiance, tiny_weather

ZONES = load_zones(Path(__file__).resolve().parents[2] / "configs" / "zones" / "sample_world.yaml")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, xr.Dataset]:
    root = tmp_path_factory.mktemp("chain")
    ds = tiny_weather()
    save_backbone(root / "backbone", ds, damped=True)
    save_backbone(root / "undamped", ds, damped=False)
    save_irradiance(root / "irradiance", ds)
    return root, ds


# --- rollout_states on a protocol model --------------------------------------------------------------


class Doubling:
    """A protocol model that doubles the state and adds the hour of day of each state's valid time."""

    channels = ["a"]
    grid = Grid(3, 4)
    dt_hours = 6.0

    def __init__(self, damping: Damping | None = None) -> None:
        self.damping = damping
        self.seen: list[torch.Tensor] = []

    def step(self, state: torch.Tensor, times: pd.DatetimeIndex) -> torch.Tensor:
        self.seen.append(state.clone())
        return 2 * state + torch.as_tensor(np.asarray(times.hour, np.float32))[:, None, None, None]

    def normalise(self, physical: torch.Tensor) -> torch.Tensor:
        return physical

    def denormalise(self, state: torch.Tensor) -> torch.Tensor:
        return state


def test_rollout_states_steps_undamped_and_reports_damped() -> None:
    damping = Damping(climatology=torch.arange(4.0)[:, None, None, None].expand(4, 1, 3, 4).clone(),
                      factors=torch.tensor([[0.5], [0.25]]))
    model = Doubling(damping)
    assert isinstance(model, PrognosticModel)
    x0 = torch.ones(2, 1, 3, 4)
    times = pd.DatetimeIndex(["2024-01-01T00:00", "2024-01-01T06:00"])
    out = list(rollout_states(model, x0, times, 3))
    assert [k for k, _, _ in out] == [0, 1, 2, 3]
    assert out[0][2] is x0 and out[3][1].equals(times + pd.Timedelta(hours=18))
    # the model steps its own undamped state: 1 -> 2 + h0 -> ...
    raw1 = 2 * x0 + torch.tensor([0.0, 6.0])[:, None, None, None]
    raw2 = 2 * raw1 + torch.tensor([6.0, 12.0])[:, None, None, None]
    torch.testing.assert_close(model.seen[1], raw1)
    torch.testing.assert_close(model.seen[2], raw2)
    # reported: climatology of the valid hour's slot + factor of the lead (the last factor past the fitted leads)
    clim1 = torch.tensor([1.0, 2.0])[:, None, None, None]  # valid 06 and 12 UTC: slots 1 and 2
    torch.testing.assert_close(out[1][2], clim1 + 0.5 * (raw1 - clim1))
    clim2 = torch.tensor([2.0, 3.0])[:, None, None, None]
    torch.testing.assert_close(out[2][2], clim2 + 0.25 * (raw2 - clim2))
    raw3 = 2 * raw2 + torch.tensor([12.0, 18.0])[:, None, None, None]
    clim3 = torch.tensor([3.0, 0.0])[:, None, None, None]
    torch.testing.assert_close(out[3][2], clim3 + 0.25 * (raw3 - clim3))
    # undamped, and hooks around every step act on the stepped state
    plain = list(rollout_states(Doubling(damping), x0, times, 2, damped=False))
    torch.testing.assert_close(plain[2][2], raw2)
    hooked = list(rollout_states(Doubling(), x0, times, 1, before_step=lambda s, k: s + 1, after_step=lambda s, k: -s))
    torch.testing.assert_close(hooked[1][2], -(2 * (x0 + 1) + torch.tensor([0.0, 6.0])[:, None, None, None]))


def test_rollout_states_is_lazy_and_checks_its_input() -> None:
    model = Doubling()
    steps = rollout_states(model, torch.zeros(1, 1, 3, 4), [INIT], None)
    for _ in range(5):
        next(steps)
    assert len(model.seen) == 4  # unbounded, one step per item after the first
    with pytest.raises(ValueError, match="one valid time per state"):
        next(rollout_states(model, torch.zeros(2, 1, 3, 4), [INIT], 1))
    with pytest.raises(ValueError, match="steps must be >= 0"):
        next(rollout_states(model, torch.zeros(1, 1, 3, 4), [INIT], -1))


# --- the Forecaster --------------------------------------------------------------------------------


def hand_rollout(package_path: Path, ds: xr.Dataset, steps: int) -> np.ndarray:
    """The backbone by hand, in normalised units: x_{k+1} = SFNO(x_k, cos zenith at t_k); reported damped."""
    pkg = load_package(package_path)
    x = pkg.normalise(torch.from_numpy(ds[CHANNELS].sel(time=INIT).to_array("channel").values.astype(np.float32))[None])
    times = pd.date_range(INIT, periods=steps + 1, freq="6h")
    tensors = pkg.tensors
    out = [x[0]]
    with torch.no_grad():
        for k in range(steps):
            x = pkg.model(x, zenith_forcing(times[k : k + 1], GRID))
            a = tensors["damping"][min(k, tensors["damping"].shape[0] - 1)][:, None, None]
            clim = tensors["damping_climatology"][times[k + 1].hour // 6]
            out.append(clim + a * (x[0] - clim))
    return pkg.denormalise(torch.stack(out)).numpy()


def test_forecaster_rollout_matches_the_hand_written_steps(packages) -> None:
    root, ds = packages
    forecaster = Forecaster(load_package(root / "backbone"), None)
    steps = 5  # past the 3 fitted damping leads
    times, states = forecaster.rollout(forecaster.initial_state(ds, INIT), INIT, steps)
    assert times.equals(pd.date_range(INIT, periods=steps + 1, freq="6h"))
    got = forecaster.backbone.denormalise(states).numpy()
    expected = hand_rollout(root / "backbone", ds, steps)
    std = np.array([float(ds[v].std()) for v in CHANNELS])[None, :, None, None]
    np.testing.assert_allclose(got / std, expected / std, rtol=0, atol=1e-6)
    assert np.abs(got[1:] - got[:1]).max() > 0
    # damped=False: the raw model; it differs from the damped forecast
    _, raw = forecaster.rollout(forecaster.initial_state(ds, INIT), INIT, steps, damped=False)
    torch.testing.assert_close(raw[0], states[0])
    assert not torch.allclose(raw[1:], states[1:])


def test_forecaster_and_protocol_parts_share_the_one_rollout(packages, monkeypatch) -> None:
    root, ds = packages
    forecaster = Forecaster(load_package(root / "backbone"), None)
    assert isinstance(forecaster.prognostic, PrognosticModel) and forecaster.diagnostic is None
    real = chain.rollout_states
    calls = []

    def spy(prognostic, state, times, steps=None, **kw):
        calls.append((prognostic, steps, kw.get("damped")))
        for k, t, s in real(prognostic, state, times, steps, **kw):
            yield k, t, s + k  # marks what went through here

    monkeypatch.setattr(chain, "rollout_states", spy)
    _, marked = forecaster.rollout(forecaster.initial_state(ds, INIT), INIT, 2, damped=False)
    monkeypatch.setattr(chain, "rollout_states", real)
    _, plain = forecaster.rollout(forecaster.initial_state(ds, INIT), INIT, 2, damped=False)
    assert calls == [(forecaster.prognostic, 2, False)]
    torch.testing.assert_close(marked, plain + torch.arange(3.0)[:, None, None, None])


def test_hourly_ssrd_comes_from_the_diagnostic_at_mid_hour(packages) -> None:
    root, ds = packages
    forecaster = Forecaster(load_package(root / "undamped"), load_package(root / "irradiance"))
    times6, states = forecaster.rollout(forecaster.initial_state(ds, INIT), INIT, 2)
    hourly = forecaster.hourly(times6, states)
    assert list(hourly.data_vars) == [*CHANNELS, "ssrd"] and hourly.sizes["time"] == 13
    assert hourly["ssrd"].attrs == lexicon.get("ssrd").attrs and hourly["ssrd"].dtype == np.float32
    assert float(hourly["tcc"].min()) >= 0 and float(hourly["tcc"].max()) <= 1
    # the irradiance model on the state interpolated to the middle of each hour (unclipped tcc), by hand
    hours = pd.DatetimeIndex(hourly.time.values)
    i0, i1, w = hour_state_weights(hours, times6, 6)
    w = torch.from_numpy(w)[:, None, None, None]
    mid = forecaster.backbone.denormalise((1 - w) * states[i0] + w * states[i1])[:, [CHANNELS.index("tcc")]]
    irr = forecaster.irradiance
    cosz, clear = irradiance_inputs(hours, GRID)
    with torch.no_grad():
        expected = irr.model(irr.normalise(mid), clear, cosz)[:, 0].numpy()
    scale = float(np.abs(expected).max())
    assert scale > 0
    np.testing.assert_allclose(hourly["ssrd"].values, expected, rtol=0, atol=1e-5 * scale)
    with pytest.raises(ValueError, match="no irradiance package"):
        Forecaster(load_package(root / "undamped"), None).hourly(times6, states)


def test_batched_forecasts_equal_the_one_at_a_time_ones(packages, monkeypatch) -> None:
    root, _ = packages
    ds = tiny_weather(periods=6)
    forecaster = Forecaster(load_package(root / "backbone"), load_package(root / "irradiance"))
    inits = list(pd.DatetimeIndex(ds.time.values[1:5]))
    real, calls = chain.rollout_states, []

    def spy(prognostic, state, times, steps=None, **kw):
        calls.append(len(times))
        yield from real(prognostic, state, times, steps, **kw)

    monkeypatch.setattr(chain, "rollout_states", spy)
    batched = list(forecaster.forecasts(ds, inits, 12, ZONES, batch=3))
    assert calls == [3, 1]  # one rollout per batch of initial states
    assert [t for t, _, _ in batched] == inits
    for init, gridded, products in batched:
        one_gridded, one_products = forecaster.forecast(ds, init, 12, ZONES)
        assert pd.Timestamp(gridded.time.values[0]) == init and gridded.sizes["time"] == 13
        for want, got in ((one_gridded, gridded), (one_products, products)):
            assert list(got.data_vars) == list(want.data_vars)
            for v in want.data_vars:
                np.testing.assert_allclose(got[v].values, want[v].values, rtol=1e-5, atol=1e-6 * float(
                    np.abs(want[v].values).max()), err_msg=f"{init} {v}")
            xr.testing.assert_equal(got.coords.to_dataset(), want.coords.to_dataset())
    assert len(calls) == 2 + len(inits)
    with pytest.raises(WeatherDataError, match="not in the weather data"):
        next(forecaster.forecasts(ds, [inits[0], pd.Timestamp("1999-01-01")], 12, ZONES))
    with pytest.raises(ValueError, match="multiple of the backbone step"):
        next(forecaster.forecasts(ds, inits, 7, ZONES))


def test_zone_masks_are_cached_but_not_shared() -> None:
    first = zone_masks(ZONES, GRID)
    first.values[:] = -1.0
    first.attrs["touched"] = True
    again = zone_masks(ZONES, GRID)
    assert "touched" not in again.attrs and again.values.flags.writeable
    np.testing.assert_allclose(again.sum(("lat", "lon")).values, 1.0)
    xr.testing.assert_identical(again, xr.concat([z.mask(GRID) for z in ZONES], "zone").assign_coords(
        zone=[z.id for z in ZONES]))
