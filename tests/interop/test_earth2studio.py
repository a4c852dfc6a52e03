"""earth2studio interop: a tiny SFNO package runs in ``earth2studio.run.deterministic`` on a local canonical store."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from carbonsync.data.store import write_canonical
from carbonsync.forecast import chain
from carbonsync.forecast.rollout import Forecaster
from carbonsync.models.inputs import zenith_forcing
from carbonsync.models.package import load_package, save_package
from carbonsync.models.sfno import SFNO, SFNOConfig
from carbonsync.physics.grid import Grid
from tests.helpers.chain import tiny_weather

pytest.importorskip("earth2studio", reason="earth2studio is not installed (pip install 'carbonsync[earth2studio]')")

from carbonsync.interop.earth2studio import (  # noqa: E402
    CanonicalStoreSource,
    CarbonSyncPrognostic,
    CoordinateError,
    canonical_names,
    e2s_names,
)

CHANNELS = ["u100", "v100", "z500", "tcc", "t2m"]
E2S = ["u100m", "v100m", "z500", "tcc", "t2m"]
GRID = Grid(17, 32)
INIT = pd.Timestamp("2024-03-01T06:00")
NSTEPS = 4

# a compiled dependency of earth2studio warns about numpy's ABI on import; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:numpy.ndarray size changed:RuntimeWarning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    """A canonical store and a backbone package carrying a damping toward climatology."""
    root = tmp_path_factory.mktemp("e2s")
    ds = tiny_weather()
    store = write_canonical(ds, root / "canonical.zarr")
    torch.manual_seed(0)
    model = SFNO(SFNOConfig(in_channels=5, nlat=17, nlon=32, forcing_channels=1, embed_dim=8, num_layers=2, lmax=8, mmax=8))
    stats = {v: {"mean": float(ds[v].mean()), "std": float(ds[v].std())} for v in CHANNELS}
    gen = torch.Generator().manual_seed(1)
    tensors = {"damping": 0.3 + 0.6 * torch.rand(3, len(CHANNELS), generator=gen),
               "damping_climatology": torch.randn(4, len(CHANNELS), *GRID.shape, generator=gen)}
    package = save_package(root / "backbone", model, kind="sfno", config=None, channels=CHANNELS, grid=GRID, dt_hours=6,
                           stats=stats, extra={"forcing": ["cos_zenith"]}, forcing_channels=["cos_zenith"], tensors=tensors)
    return root, ds, store, package


def hand_rollout(package_path, ds: xr.Dataset) -> np.ndarray:
    """The backbone by hand, normalised: x_{k+1} = SFNO(x_k, cos zenith at t_k), reported damped toward climatology."""
    pkg = load_package(package_path)
    x = pkg.normalise(torch.from_numpy(ds[CHANNELS].sel(time=INIT).to_array("channel").values.astype(np.float32))[None])
    times = pd.date_range(INIT, periods=NSTEPS + 1, freq="6h")
    damping, clim = pkg.tensors["damping"], pkg.tensors["damping_climatology"]
    out = [x[0]]
    with torch.no_grad():
        for k in range(NSTEPS):
            x = pkg.model(x, zenith_forcing(times[k : k + 1], pkg.grid))
            base = clim[times[k + 1].hour // 6]
            out.append(base + damping[min(k, len(damping) - 1)][:, None, None] * (x[0] - base))
    return pkg.denormalise(torch.stack(out)).numpy()  # (lead, C, H, W)


def forecaster_rollout(package_path, ds: xr.Dataset) -> np.ndarray:
    """What the pipeline's Forecaster reports for the same init time, denormalised (lead, C, H, W)."""
    forecaster = Forecaster(load_package(package_path), None)
    _, states = forecaster.rollout(forecaster.initial_state(ds, INIT), INIT, NSTEPS)
    return forecaster.backbone.denormalise(states).numpy()


def run_deterministic(root, store, package, name: str) -> np.ndarray:
    from earth2studio.io import ZarrBackend
    from earth2studio.run import deterministic

    out_path = root / name
    io = deterministic([INIT.to_datetime64()], NSTEPS, CarbonSyncPrognostic.from_package(package), CanonicalStoreSource(store),
                       ZarrBackend(str(out_path)), device=torch.device("cpu"), verbose=False)
    assert set(E2S) <= set(io)
    written = xr.open_zarr(out_path, consolidated=False)  # what the backend put on disk
    for v in E2S:
        assert written[v].dims == ("time", "lead_time", "lat", "lon")
    np.testing.assert_array_equal(written.time.values, [INIT.to_datetime64()])
    np.testing.assert_array_equal(written.lead_time.values, np.arange(0, 25, 6).astype("timedelta64[h]"))
    np.testing.assert_allclose(written.lat.values, GRID.lat)
    np.testing.assert_allclose(written.lon.values, GRID.lon)
    return np.stack([written[v].values[0] for v in E2S], axis=1)  # (lead, C, H, W)


def test_deterministic_gives_the_forecasters_states(setup) -> None:
    """earth2studio's workflow and the pipeline's Forecaster run one rollout: identical states, damping included."""
    root, ds, store, package = setup
    forecast = run_deterministic(root, store, package, "forecast.zarr")
    assert np.isfinite(forecast).all()
    np.testing.assert_array_equal(forecast[0], ds[CHANNELS].sel(time=INIT).to_array().values)  # lead 0 = source
    np.testing.assert_array_equal(forecast[1:], forecaster_rollout(package, ds)[1:])
    assert np.abs(forecast[1:] - forecast[:1]).max() > 0  # the model did step
    # and numerically what the steps written out by hand give
    std = np.array([float(ds[v].std()) for v in CHANNELS])[None, :, None, None]
    np.testing.assert_allclose(forecast / std, hand_rollout(package, ds) / std, rtol=0, atol=1e-5)


def test_iterator_and_forecaster_step_through_rollout_states(setup, monkeypatch) -> None:
    """Both go through carbonsync.forecast.chain.rollout_states: a change there shows up in both."""
    root, ds, store, package = setup
    real = chain.rollout_states
    calls = []

    def shifted(prognostic, state, times, steps=None, **kw):
        calls.append((type(prognostic).__name__, steps, kw.get("damped")))
        for k, t, s in real(prognostic, state, times, steps, **kw):
            yield k, t, s + 0.5 * k  # half a standard deviation per lead

    monkeypatch.setattr(chain, "rollout_states", shifted)
    through_e2s = run_deterministic(root, store, package, "shifted.zarr")
    through_forecaster = forecaster_rollout(package, ds)
    assert ("PackagePrognostic", None, True) in calls and ("PackagePrognostic", NSTEPS, True) in calls
    np.testing.assert_array_equal(through_e2s[1:], through_forecaster[1:])
    monkeypatch.setattr(chain, "rollout_states", real)
    std = np.array([float(ds[v].std()) for v in CHANNELS])[None, :, None, None]
    shift = (through_e2s - forecaster_rollout(package, ds)) / std
    np.testing.assert_allclose(shift[1:], np.broadcast_to(0.5 * np.arange(1, NSTEPS + 1)[:, None, None, None], shift[1:].shape),
                               rtol=0, atol=1e-4)


def test_coords_use_earth2studio_names(setup) -> None:
    from earth2studio.data.base import DataSource
    from earth2studio.models.px.base import PrognosticModel

    _, _, store, package = setup
    prognostic = CarbonSyncPrognostic.from_package(package)
    assert isinstance(prognostic, PrognosticModel)
    assert isinstance(CanonicalStoreSource(store), DataSource)
    ic = prognostic.input_coords()
    assert list(ic) == ["batch", "time", "lead_time", "variable", "lat", "lon"]
    assert ic["variable"].tolist() == E2S == e2s_names(CHANNELS)
    assert canonical_names(E2S) == CHANNELS
    np.testing.assert_array_equal(ic["lead_time"], [np.timedelta64(0, "h")])
    np.testing.assert_array_equal(ic["lat"], GRID.lat)
    oc = prognostic.output_coords(ic)
    np.testing.assert_array_equal(oc["lead_time"], [np.timedelta64(6, "h")])
    assert oc["variable"].tolist() == E2S


def test_call_iterator_and_hooks(setup) -> None:
    _, ds, store, package = setup
    prognostic = CarbonSyncPrognostic.from_package(package)
    da = CanonicalStoreSource(store)(np.array([INIT.to_datetime64()]), E2S)
    assert da.dims == ("time", "variable", "lat", "lon") and da["variable"].values.tolist() == E2S
    x = torch.from_numpy(da.values)[:, None]  # (time, lead_time, variable, lat, lon)
    coords = OrderedDict(time=da.time.values, lead_time=np.array([np.timedelta64(0, "h")]), variable=da["variable"].values,
                         lat=da.lat.values, lon=da.lon.values)
    y, ycoords = prognostic(x, coords)
    assert y.shape == x.shape and list(ycoords) == list(coords)
    np.testing.assert_array_equal(ycoords["lead_time"], [np.timedelta64(6, "h")])

    # extra leading dims (an ensemble) and several times: each time gets the forcing of its own valid time
    later = INIT + pd.Timedelta(hours=6)
    x_later = torch.from_numpy(CanonicalStoreSource(ds)([later], E2S).values)[:, None]
    y_later, _ = prognostic(x_later, OrderedDict(coords, time=np.array([later.to_datetime64()])))
    xs = torch.cat([x, x_later]).expand(3, -1, -1, -1, -1, -1)
    ys, yscoords = prognostic(xs, OrderedDict(ensemble=np.arange(3), **OrderedDict(coords, time=np.array(
        [INIT.to_datetime64(), later.to_datetime64()]))))
    assert list(yscoords) == ["ensemble", *coords] and ys.shape == xs.shape
    for member in ys:
        torch.testing.assert_close(member, torch.cat([y, y_later]))

    calls = []
    prognostic.rear_hook = lambda x, c: (calls.append(c["lead_time"][0]) or x, c)
    steps = prognostic.create_iterator(x, coords)
    x0, c0 = next(steps)
    torch.testing.assert_close(x0, x)
    x1, c1 = next(steps)
    # the iterator reports the raw step damped toward climatology (the package's damping, lead 1, valid 12 UTC)
    pkg = prognostic.package
    clim = pkg.tensors["damping_climatology"][(INIT.hour + 6) // 6]
    a = pkg.tensors["damping"][0][:, None, None]
    damped = pkg.denormalise(clim + a * (pkg.normalise(y[0, 0]) - clim))
    torch.testing.assert_close(x1[0, 0], damped, rtol=0, atol=1e-3)
    assert not torch.allclose(x1, y)
    x2, c2 = next(steps)
    np.testing.assert_array_equal(c2["lead_time"], [np.timedelta64(12, "h")])
    assert calls == [np.timedelta64(6, "h"), np.timedelta64(12, "h")]

    # a front hook changes the state the model steps; one that changes the times is refused
    prognostic.rear_hook = prognostic._default_hook
    plain_steps = prognostic.create_iterator(x, coords)
    next(plain_steps)
    plain, _ = next(plain_steps)  # stepped before the hook is set
    prognostic.front_hook = lambda x, c: (x + torch.tensor([1.0, 0, 0, 0, 0])[:, None, None], c)  # +1 m/s u100
    nudged = prognostic.create_iterator(x, coords)
    next(nudged)
    assert not torch.allclose(next(nudged)[0], plain)
    prognostic.front_hook = lambda x, c: (x, OrderedDict(c, time=c["time"] + np.timedelta64(1, "h")))
    with pytest.raises(CoordinateError, match="not its shape or times"):
        list(zip(range(2), prognostic.create_iterator(x, coords), strict=False))

    # wrong variable order / grid: clear errors from the handshake
    with pytest.raises(CoordinateError, match="order differs"):
        prognostic(x.flip(2), OrderedDict(coords, variable=coords["variable"][::-1]))
    with pytest.raises(CoordinateError, match="missing \\['t2m'\\]"):
        prognostic(x[:, :, :4], OrderedDict(coords, variable=coords["variable"][:4]))
    with pytest.raises(CoordinateError, match="grid equiangular 17x32"):
        prognostic(x[..., :16], OrderedDict(coords, lon=coords["lon"][:16]))


def test_source_lacking_a_variable(setup) -> None:
    from earth2studio.io import ZarrBackend
    from earth2studio.run import deterministic

    _, _, _, package = setup
    source = CanonicalStoreSource(tiny_weather(variables=["u100", "v100", "z500", "t2m"]))  # an in-memory dataset, no tcc
    with pytest.raises(KeyError, match="has no variable 'tcc'"):
        source([INIT.to_pydatetime()], ["u100m", "tcc"])
    with pytest.raises(KeyError, match="'u100m' \\(CarbonSync 'u100'\\)"):
        CanonicalStoreSource(tiny_weather(variables=["v100"]))(INIT, "u100m")
    with pytest.raises(KeyError, match="has no variable 'tcc'"):
        deterministic([INIT.to_datetime64()], 1, CarbonSyncPrognostic.from_package(package), source, ZarrBackend(),
                      device=torch.device("cpu"), verbose=False)
    with pytest.raises(ValueError, match="no data at 2025-01-01"):
        source(["2025-01-01T00:00"], ["u100m"])
    with pytest.raises(KeyError, match="no CarbonSync name"):
        source(INIT, ["not_a_variable"])


def test_import_does_not_load_earth2studio() -> None:
    code = "import sys, carbonsync.interop.earth2studio; sys.exit('earth2studio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
