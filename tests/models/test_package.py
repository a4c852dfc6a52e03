"""SFNO, AFNO / irradiance head, spherical losses and model packages (offline, small grids)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from carbonsync.models import package as pkg
from carbonsync.models.afno import AFNOConfig, AFNODiagnostic, IrradianceDiagnostic
from carbonsync.models.head import fit_head
from carbonsync.models.package import PackageError, load_package, package_hash, save_package
from carbonsync.models.renewables import RenewablesConfig
from carbonsync.models.renewables.gridded import gridded_design
from carbonsync.models.sfno import SFNO, SFNOConfig, _SpectralConvS2
from carbonsync.physics.grid import Grid
from carbonsync.train.losses import SphericalMSE, pinball_loss, relative_l2, spherical_l2

CHANNELS = ["t2m", "u10m", "v10m"]


STATS = {
    "train_period": ["2020-01-01", "2020-12-31"],
    "variables": {
        "t2m": {"mean": 280.0, "std": 15.0},
        "u10m": {"mean": 0.5, "std": 5.0},
        "v10m": {"mean": -0.2, "std": 4.0},
        "unused": {"mean": 1.0, "std": 1.0},
    },
}


def small_sfno(grid: str = "equiangular", nlat: int = 17, nlon: int = 32, **kw) -> SFNO:
    kw = {"embed_dim": 16, "num_layers": 2, **kw}
    return SFNO(SFNOConfig(in_channels=3, nlat=nlat, nlon=nlon, grid=grid, **kw))


def small_afno(**kw) -> AFNOConfig:
    base = {"state_channels": 3, "nlat": 33, "nlon": 64, "patch_size": 4, "embed_dim": 16, "num_layers": 2}
    return AFNOConfig(**{**base, "num_blocks": 4, **kw})


# --- SFNO -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["equiangular", "legendre-gauss"])
@pytest.mark.parametrize("scale_factor", [1, 2])
def test_sfno_shapes(grid: str, scale_factor: int) -> None:
    model = small_sfno(grid, nlat=33, nlon=64, scale_factor=scale_factor, forcing_channels=2, out_channels=4)
    y = model(torch.randn(2, 3, 33, 64), torch.randn(2, 2, 33, 64))
    assert y.shape == (2, 4, 33, 64)
    assert torch.isfinite(y).all()
    h, w = model.config.internal_shape
    assert (h, w) == ((33 - 1) // scale_factor + 1, 64 // scale_factor)
    assert model.trans.nlat == h and model.trans.grid == "legendre-gauss"


def test_sfno_lmax_mmax_are_explicit_and_respected() -> None:
    model = small_sfno(lmax=10, mmax=7)
    for t in (model.trans_down, model.itrans_up, model.trans, model.itrans):
        assert (t.lmax, t.mmax) == (10, 7)
    assert model.blocks[0].global_conv.weight.shape[-1] == 10
    default = SFNOConfig(in_channels=1, nlat=33, nlon=64, scale_factor=2)
    assert (default.lmax, default.mmax) == (16, 16)  # resolved, never None
    assert SFNOConfig.from_dict(default.to_dict()) == default


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"lmax": 18}, "lmax=18"),
        ({"lmax": 0}, "lmax=0"),
        ({"mmax": 18}, "mmax=18"),
        ({"scale_factor": 2, "lmax": 10}, "internal"),
        ({"grid": "healpix"}, "healpix"),
        ({"out_channels": 2}, "residual prediction"),
    ],
)
def test_sfno_bad_config_raises(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SFNOConfig(in_channels=3, nlat=17, nlon=32, **kw)


def test_sfno_input_checks() -> None:
    model = small_sfno(forcing_channels=1)
    with pytest.raises(ValueError, match="forcing is None"):
        model(torch.randn(1, 3, 17, 32))
    with pytest.raises(ValueError, match="state of shape"):
        model(torch.randn(1, 2, 17, 32), torch.randn(1, 1, 17, 32))


def test_sfno_gradients_flow() -> None:
    model = small_sfno("legendre-gauss", scale_factor=2, forcing_channels=1)
    x, f = torch.randn(2, 3, 17, 32), torch.randn(2, 1, 17, 32)
    model(x, f).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_sfno_residual_prediction_is_identity_at_zero_output() -> None:
    model = small_sfno(output_gain=0.0)
    x = torch.randn(2, 3, 17, 32)
    torch.testing.assert_close(model(x), x)
    assert not torch.allclose(small_sfno(residual_prediction=False, output_gain=0.0)(x), x)


def test_sfno_overfits_tiny_batch() -> None:
    torch.manual_seed(0)
    model = small_sfno("legendre-gauss", nlat=16, nlon=32)
    x = torch.randn(4, 3, 16, 32)
    y = 0.5 * torch.roll(x, 2, dims=-1) + 0.3
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = spherical_l2(model(x), y, Grid(16, 32, "legendre-gauss"))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5


def test_sfno_is_equivariant_to_longitude_shifts() -> None:
    model = small_sfno(scale_factor=2).eval()
    x = torch.randn(1, 3, 17, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            model(torch.roll(x, 4, -1)), torch.roll(model(x), 4, -1), atol=1e-4, rtol=0
        )


def test_fallback_spectral_conv_matches_torch_harmonics() -> None:
    model = small_sfno(scale_factor=2)
    th_conv = model.blocks[0].global_conv
    own = _SpectralConvS2(th_conv.forward_transform, th_conv.inverse_transform, 16, 16)
    own.load_state_dict(th_conv.state_dict())
    x = torch.randn(1, 16, 17, 32)
    for a, b in zip(own(x), th_conv(x), strict=True):
        torch.testing.assert_close(a, b)


# --- AFNO ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nlat", "nlon", "patch"), [(33, 64, 4), (33, 64, 8), (31, 60, (4, 8)), (32, 64, 4), (17, 32, 16)]
)
def test_afno_shapes_with_padding(nlat: int, nlon: int, patch) -> None:
    model = AFNODiagnostic(
        small_afno(nlat=nlat, nlon=nlon, patch_size=patch, static_channels=2, out_channels=2)
    )
    assert model.config.in_channels == 3 + 1 + 4 + 2
    y = model(torch.randn(2, 3, nlat, nlon), torch.randn(2, 1, nlat, nlon), torch.randn(1, 2, nlat, nlon))
    assert y.shape == (2, 2, nlat, nlon)
    assert torch.isfinite(y).all()
    y.mean().backward()
    assert model.pos_embed.grad is not None


def test_afno_hard_thresholding_and_input_checks() -> None:
    model = AFNODiagnostic(small_afno(hard_thresholding_fraction=0.5, forcing_channels=0))
    assert model(torch.randn(1, 3, 33, 64)).shape == (1, 1, 33, 64)
    with pytest.raises(ValueError, match="no forcing"):
        model(torch.randn(1, 3, 33, 64), torch.randn(1, 1, 33, 64))
    with pytest.raises(ValueError, match="divisible"):
        small_afno(embed_dim=18)
    cfg = small_afno(patch_size=(4, 8))
    assert AFNOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_irradiance_is_nonnegative_and_zero_at_night() -> None:
    model = IrradianceDiagnostic(small_afno())
    clear_sky = torch.rand(2, 1, 33, 64) * 3.6e6
    clear_sky[..., :24] = 0.0  # night side
    x = 10 * torch.randn(2, 3, 33, 64)
    y = model(x, clear_sky, torch.randn(2, 1, 33, 64))
    assert (y >= 0).all()
    assert (y[..., :24] == 0).all()
    assert (y[..., 24:] > 0).all()
    assert (y <= 1.2 * clear_sky).all()
    with pytest.raises(ValueError, match="out_channels=1"):
        IrradianceDiagnostic(small_afno(out_channels=2))


# --- losses -------------------------------------------------------------------------------------------------


def test_spherical_l2_matches_hand_computed_weighted_mean() -> None:
    grid = Grid(9, 16, "equiangular")
    pred, target = (
        torch.randn(3, 2, 9, 16, dtype=torch.float64),
        torch.randn(3, 2, 9, 16, dtype=torch.float64),
    )
    w = grid.quadrature_weights().values
    sq = ((pred - target) ** 2).numpy()
    per_channel = (sq * w).sum(axis=(-2, -1)) / w.sum()  # (B, C)
    expected = (per_channel * np.array([0.25, 0.75])).sum(axis=1).mean()
    got = spherical_l2(pred, target, grid, channel_weights=[1.0, 3.0])
    assert math.isclose(got.item(), expected, rel_tol=1e-10)
    assert math.isclose(spherical_l2(pred, target, grid).item(), per_channel.mean(), rel_tol=1e-10)
    # latitude-only weights give the same answer
    lat_w = torch.as_tensor(w[:, 0])
    assert math.isclose(spherical_l2(pred, target, lat_w).item(), per_channel.mean(), rel_tol=1e-10)
    assert spherical_l2(pred, pred, grid).item() == 0.0
    assert SphericalMSE(grid)(pred.float(), pred.float()).item() == 0.0
    assert math.isclose(SphericalMSE(grid, [1.0, 3.0])(pred, target).item(), expected, rel_tol=1e-6)
    with pytest.raises(ValueError, match="do not fit"):
        spherical_l2(pred, target, Grid(8, 16))


def test_relative_l2_and_pinball() -> None:
    grid = Grid(9, 16, "legendre-gauss")
    target = torch.randn(2, 3, 9, 16, dtype=torch.float64)
    assert relative_l2(target, target, grid).item() == 0.0
    assert math.isclose(relative_l2(2 * target, target, grid).item(), 1.0, rel_tol=1e-12)
    assert math.isclose(relative_l2(torch.zeros_like(target), target, grid, squared=True).item(), 1.0)

    q = [0.1, 0.5, 0.9]
    t = torch.zeros(4, 9, 16)
    pred = torch.ones(4, 3, 9, 16)  # over-prediction by 1 costs (1 - q)
    assert math.isclose(pinball_loss(pred, t, q).item(), np.mean([0.9, 0.5, 0.1]), rel_tol=1e-6)
    assert math.isclose(pinball_loss(-pred, t, q, weights=grid).item(), np.mean(q), rel_tol=1e-6)
    with pytest.raises(ValueError, match="quantiles"):
        pinball_loss(pred, t, [0.5, 1.0, 0.2])


# --- packages -----------------------------------------------------------------------------------------------


def _save_sfno(tmp_path, **kw):
    model = small_sfno(forcing_channels=1, scale_factor=2)
    path = tmp_path / "sfno-pkg"
    extra = {"epochs": 3, "loss": np.float32(0.5), "bad": float("nan"), "dir": tmp_path}
    args = {"forcing_channels": ["cos_zenith"], "data_hash": "abc123", "extra": extra, **kw}
    save_package(path, model, "sfno", model.config, CHANNELS, Grid(17, 32), 6, STATS, **args)
    return model, path


def test_package_roundtrip_sfno(tmp_path) -> None:
    model, path = _save_sfno(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["hash.json", "metadata.json", "stats.json", "weights.pt"]
    assert not list(tmp_path.glob("*.tmp-*"))
    loaded = load_package(path)
    assert isinstance(loaded.model, SFNO) and not loaded.model.training
    meta = loaded.metadata
    assert meta["kind"] == "sfno" and meta["lmax"] == model.config.lmax and meta["mmax"] == model.config.mmax
    assert meta["channels"] == CHANNELS and meta["forcing_channels"] == ["cos_zenith"]
    assert (
        meta["dt_hours"] == 6.0
        and meta["data_hash"] == "abc123"
        and meta["extra"] == {"epochs": 3, "loss": 0.5, "bad": None, "dir": str(tmp_path)}
    )
    assert meta["grid"] == {"nlat": 17, "nlon": 32, "kind": "equiangular"} and "carbonsync_version" in meta
    assert "unused" not in loaded.stats["variables"] and loaded.stats["train_period"] == STATS["train_period"]
    model.eval()
    x, f = torch.randn(2, 3, 17, 32), torch.randn(2, 1, 17, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, f), model(x, f), rtol=0, atol=0)
    assert len(package_hash(path)) == 64 and loaded.hash == package_hash(path)


def test_package_normalise_roundtrip(tmp_path) -> None:
    _, path = _save_sfno(tmp_path)
    loaded = load_package(path)
    raw = torch.stack([torch.full((17, 32), v) for v in (295.0, 0.5, 4.0)])[None]
    norm = loaded.normalise(raw)
    torch.testing.assert_close(norm[0, :, 0, 0], torch.tensor([1.0, 0.0, 1.05]))
    torch.testing.assert_close(loaded.denormalise(norm), raw)
    with pytest.raises(ValueError, match="expected 3"):
        loaded.normalise(torch.zeros(1, 2, 17, 32))


def test_package_roundtrip_irradiance(tmp_path) -> None:
    model = IrradianceDiagnostic(small_afno())
    path = save_package(tmp_path / "ssrd", model, "afno", None, CHANNELS, Grid(33, 64), 1, STATS,
                        forcing_channels=["cos_zenith"], output_channels=["ssrd"])  # fmt: skip
    loaded = load_package(path)
    assert isinstance(loaded.model, IrradianceDiagnostic)
    x, cs, f = torch.randn(1, 3, 33, 64), torch.rand(1, 1, 33, 64), torch.randn(1, 1, 33, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, cs, f), model.eval()(x, cs, f), rtol=0, atol=0)
    with pytest.raises(PackageError, match="ssrd"):
        loaded.denormalise(torch.zeros(1, 1, 33, 64))  # no stats for the physical output


def test_package_roundtrip_config_dict_model(tmp_path) -> None:
    """Models without a config dataclass (the regional head) are rebuilt as ``cls(**config)``."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=24 * 7, freq="h")
    products = xr.Dataset({name: (("time", "zone"), rng.uniform(0, 1, (len(times), 2)))
                           for name in ("wind_cf", "solar_cf", "wind_speed", "ghi")}, coords={"time": times, "zone": ["a", "b"]})
    design = gridded_design(products, observed=(products[["wind_cf", "solar_cf"]] ** 2))
    model = fit_head(design, RenewablesConfig(learner="ridge"))
    path = save_package(tmp_path / "head", model, "head", None, [], Grid(17, 32), 1, {})
    loaded = load_package(path)
    pd.testing.assert_frame_equal(loaded.model(design), model(design))
    with pytest.raises(PackageError, match="config"):
        save_package(tmp_path / "head2", model, "head", {"zone_ids": ["a"]}, [], Grid(17, 32), 1, {})


def test_package_weights_loaded_with_weights_only(tmp_path, monkeypatch) -> None:
    _, path = _save_sfno(tmp_path)
    calls = []
    real_load = torch.load
    monkeypatch.setattr(pkg.torch, "load", lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    load_package(path)
    assert calls and all(kw.get("weights_only") is True for kw in calls)
    monkeypatch.undo()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, path / "weights.pt")
    with pytest.raises(PackageError, match="weights.pt \\(changed\\)"):  # the hash check comes first
        load_package(path)
    pkg._write_hash(path)  # even with a matching hash, the pickle is refused
    with pytest.raises(PackageError, match="weights_only"):
        load_package(path)


def test_package_check_compatible(tmp_path) -> None:
    _, path = _save_sfno(tmp_path)
    loaded = load_package(path)
    loaded.check_compatible(CHANNELS, Grid(17, 32), ["cos_zenith"])
    with pytest.raises(PackageError, match=r"missing \['v10m'\].*unexpected \['msl'\]"):
        loaded.check_compatible(["t2m", "u10m", "msl"], Grid(17, 32))
    with pytest.raises(PackageError, match="order differs"):
        loaded.check_compatible(["u10m", "t2m", "v10m"])
    with pytest.raises(PackageError, match="equiangular 17x32.*legendre-gauss 17x32"):
        loaded.check_compatible(CHANNELS, Grid(17, 32, "legendre-gauss"))
    with pytest.raises(PackageError, match="forcing channels"):
        loaded.check_compatible(CHANNELS, forcing_channels=["cos_zenith", "lsm"])


def test_package_save_rejects_bad_inputs(tmp_path) -> None:
    model = small_sfno()
    with pytest.raises(PackageError, match=r"no normalisation stats for channel\(s\) \['msl'\]"):
        save_package(
            tmp_path / "p", model, "sfno", model.config, ["t2m", "u10m", "msl"], Grid(17, 32), 6, STATS
        )
    with pytest.raises(PackageError, match="state channels"):
        save_package(tmp_path / "p", model, "sfno", model.config, ["t2m"], Grid(17, 32), 6, STATS)
    with pytest.raises(PackageError, match="grid"):
        save_package(tmp_path / "p", model, "sfno", model.config, CHANNELS, Grid(33, 64), 6, STATS)
    with pytest.raises(PackageError, match="kind 'afno'"):
        save_package(tmp_path / "p", model, "afno", model.config, CHANNELS, Grid(17, 32), 6, STATS)
    assert not (tmp_path / "p").exists()


def test_failed_save_leaves_nothing(tmp_path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pkg.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        _save_sfno(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_old_package(tmp_path, monkeypatch) -> None:
    _, path = _save_sfno(tmp_path)
    before = package_hash(path)
    monkeypatch.setattr(pkg.torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        _save_sfno(tmp_path)
    assert package_hash(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["sfno-pkg"]


def test_corrupt_package_raises(tmp_path) -> None:
    _, path = _save_sfno(tmp_path)
    meta = json.loads((path / "metadata.json").read_text())
    meta["config"]["embed_dim"] = 32
    (path / "metadata.json").write_text(json.dumps(meta))
    pkg._write_hash(path)  # consistent hashes, inconsistent contents
    with pytest.raises(PackageError, match="do not fit"):
        load_package(path)
    with pytest.raises(PackageError, match="does not exist"):
        load_package(tmp_path / "nope")


# --- package integrity ------------------------------------------------------------------------------------


def _edit_metadata(path, change) -> None:
    meta = json.loads((path / "metadata.json").read_text())
    change(meta)
    (path / "metadata.json").write_text(json.dumps(meta, indent=2))


@pytest.mark.parametrize("change", [
    lambda m: m.update(channels=list(reversed(m["channels"]))),  # swapped channels: silently wrong forecasts
    lambda m: m.update(dt_hours=3.0),  # a 6-hourly model labelled 3-hourly
    lambda m: m.update(extra={}),
], ids=["channels", "dt_hours", "extra"])
def test_edited_metadata_fails_the_package_hash(tmp_path, change) -> None:
    _, path = _save_sfno(tmp_path)
    saved = json.loads((path / "hash.json").read_text())
    assert saved["sha256"] == package_hash(path) and set(saved["files"]) == {"weights.pt", "metadata.json", "stats.json"}
    _edit_metadata(path, change)
    expected = rf"model package '{path}' does not match its package hash: metadata.json \(changed\)"
    with pytest.raises(PackageError, match=expected):
        load_package(path)


def test_edited_stats_tensors_or_missing_hash_are_refused(tmp_path) -> None:
    model = small_sfno()
    tensors = {"damping": torch.ones(3, 4)}
    path = save_package(tmp_path / "p", model, "sfno", None, CHANNELS, Grid(17, 32), 6, STATS, tensors=tensors)
    load_package(path)
    torch.save({"damping": torch.zeros(3, 4)}, path / "tensors.pt")
    with pytest.raises(PackageError, match=r"tensors.pt \(changed\)"):
        load_package(path)
    (path / "tensors.pt").unlink()
    with pytest.raises(PackageError, match=r"tensors.pt \(not in the package\)"):
        load_package(path)
    path = save_package(tmp_path / "q", model, "sfno", None, CHANNELS, Grid(17, 32), 6, STATS)
    torch.save({"damping": torch.zeros(3, 4)}, path / "tensors.pt")  # planted
    with pytest.raises(PackageError, match=r"tensors.pt \(not recorded\)"):
        load_package(path)
    (path / "tensors.pt").unlink()
    stats = json.loads((path / "stats.json").read_text())
    stats["variables"]["t2m"]["mean"] = 0.0
    (path / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(PackageError, match=r"stats.json \(changed\)"):
        load_package(path)
    (path / "hash.json").unlink()
    with pytest.raises(PackageError, match=f"model package '{path}' has no hash.json"):
        load_package(path)


def test_non_finite_weights_are_not_saved(tmp_path) -> None:
    _, path = _save_sfno(tmp_path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    model = small_sfno(forcing_channels=1, scale_factor=2)
    with torch.no_grad():
        next(model.parameters())[..., 0] = float("nan")
    with pytest.raises(PackageError, match=r"weights of the SFNO: \d+ of \d+ values are NaN or inf"):
        save_package(path, model, "sfno", None, CHANNELS, Grid(17, 32), 6, STATS, forcing_channels=["cos_zenith"])
    with pytest.raises(PackageError, match="tensors saved with the SFNO"):
        save_package(path, small_sfno(forcing_channels=1, scale_factor=2), "sfno", None, CHANNELS, Grid(17, 32), 6,
                     STATS, forcing_channels=["cos_zenith"], tensors={"damping": torch.tensor([1.0, float("inf")])})
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before  # the old package is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["sfno-pkg"]
