"""The chain's parts: protocols, the registry by package kind, the zone heads, the Forecaster built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import carbonsync.forecast as forecast
import carbonsync.interop as interop
import carbonsync.models as models
from carbonsync.forecast import chain
from carbonsync.forecast.chain import (
    ChainPartError,
    PackagePrognostic,
    PackageSsrd,
    PackageZoneHead,
    PhysicalZoneHead,
    PrognosticModel,
    SsrdDiagnostic,
    ZoneHead,
    load_part,
    part_kinds,
    register_part,
)
from carbonsync.forecast.rollout import Forecaster
from carbonsync.models.head import RegionalHead
from carbonsync.models.package import PackageError, load_package, save_package
from carbonsync.physics.renewables import zone_products
from carbonsync.physics.zones import load_zones
from tests.helpers.chain import GRID, INIT, save_backbone, save_irradiance, tiny_weather

ZONES = load_zones(Path(__file__).resolve().parents[2] / "configs" / "zones" / "sample_world.yaml")


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, xr.Dataset]:
    root = tmp_path_factory.mktemp("parts")
    ds = tiny_weather(periods=5)
    save_backbone(root / "backbone", ds, damped=True)
    save_irradiance(root / "irradiance", ds)
    head = RegionalHead([z.id for z in ZONES])  # its output layer starts at zero: the physical CFs
    config = {"zone_ids": list(head.zone_ids), "n_features": head.mlp[0].in_features - head.embedding.embedding_dim,
              "hidden": 32, "embed_dim": head.embedding.embedding_dim, "quantiles": list(head.quantile_levels)}
    save_package(root / "head", head, kind="head", config=config, channels=[], grid=GRID, dt_hours=1, stats={},
                 extra={"turbine": "E-126/4200"})
    return root, ds


def test_registry_loads_each_part_by_kind(packages) -> None:
    root, _ = packages
    assert part_kinds() == {"sfno": "PrognosticModel", "afno": "SsrdDiagnostic", "head": "ZoneHead"}
    backbone, irradiance, head = (load_part(root / name) for name in ("backbone", "irradiance", "head"))
    assert isinstance(backbone, PackagePrognostic) and isinstance(backbone, PrognosticModel)
    assert backbone.dt_hours == 6 and backbone.channels == ["u100", "v100", "z500", "tcc", "t2m"]
    assert backbone.damping is not None and backbone.damping.factors.shape == (3, 5)
    assert isinstance(irradiance, PackageSsrd) and isinstance(irradiance, SsrdDiagnostic) and irradiance.variables == ["tcc"]
    assert isinstance(head, PackageZoneHead) and isinstance(head, ZoneHead) and head.turbine == "E-126/4200"
    # a package loaded already, and the role checked when asked for
    assert isinstance(load_part(load_package(root / "backbone"), PrognosticModel), PackagePrognostic)
    with pytest.raises(ChainPartError, match="is a SsrdDiagnostic, not a PrognosticModel"):
        load_part(root / "irradiance", PrognosticModel)
    # the adapters refuse a package of another kind by name
    with pytest.raises(PackageError, match="'afno' model, not a prognostic backbone"):
        PackagePrognostic(root / "irradiance")
    with pytest.raises(PackageError, match="'sfno' model, not an irradiance diagnostic"):
        PackageSsrd(root / "backbone")


def test_registering_a_part(packages, monkeypatch) -> None:
    root, _ = packages
    monkeypatch.setattr(chain, "_PARTS", dict(chain._PARTS))  # this test's registrations stay here

    class Wrapped(PackagePrognostic):
        pass

    register_part("sfno", PrognosticModel, Wrapped)
    assert type(load_part(root / "backbone")) is Wrapped
    register_part("sfno", PrognosticModel, lambda package: object())
    with pytest.raises(ChainPartError, match="which is not a PrognosticModel"):
        load_part(root / "backbone")
    with pytest.raises(ChainPartError, match="not one of the chain's protocols"):
        register_part("sfno", int, Wrapped)
    del chain._PARTS["head"]
    with pytest.raises(ChainPartError, match="no chain part is registered for package kind 'head'"):
        load_part(root / "head")


def test_forecaster_runs_the_parts(packages) -> None:
    root, ds = packages
    full = Forecaster.from_dir(root)
    assert isinstance(full.zone_head, PackageZoneHead) and isinstance(full.diagnostic, PackageSsrd)
    gridded, zones = full.forecast(ds, INIT, 12, ZONES)
    assert gridded.sizes == {"time": 13, "lat": GRID.nlat, "lon": GRID.nlon}
    assert zones.sizes["zone"] == len(ZONES) and "renewable_share_quantile" in zones
    # a head whose correction is zero returns the physical CFs (clamped to its logit eps)
    physical = zone_products(gridded["u100"], gridded["v100"], gridded["ssrd"], ZONES, GRID, t2m=gridded["t2m"])
    for cf in ("wind_cf", "solar_cf"):
        np.testing.assert_allclose(zones[cf].values, physical[cf].values, rtol=0, atol=1.001e-3)
        np.testing.assert_array_equal(zones[f"physical_{cf}"].values, physical[cf].values)
    fossil = np.array([z.fossil_intensity for z in ZONES])
    np.testing.assert_allclose(zones["carbon_intensity"].values, (1 - zones["renewable_share"].values) * fossil, rtol=1e-6)
    # without a head: the physical zone head, the same products as zone_products
    bare = Forecaster.from_dir(root, with_head=False)
    assert isinstance(bare.zone_head, PhysicalZoneHead)
    xr.testing.assert_identical(bare.zone_products(gridded, ZONES), PhysicalZoneHead()(gridded, ZONES))
    xr.testing.assert_allclose(bare.zone_products(gridded, ZONES), physical)
    with pytest.raises(ValueError, match=r"zone products need \['ssrd'\]"):
        bare.zone_products(gridded.drop_vars("ssrd"), ZONES)


def test_package_ssrd_names_what_is_missing(packages) -> None:
    root, ds = packages
    diagnostic = PackageSsrd(root / "irradiance")
    hourly = Forecaster.from_dir(root, with_head=False).forecast(ds, INIT, 6, ZONES)[0]
    ssrd = diagnostic(hourly)
    assert ssrd.dims == ("time", "lat", "lon") and ssrd.attrs["units"] == "J m-2" and bool((ssrd >= 0).all())
    with pytest.raises(ValueError, match=r"needs \['tcc'\]"):
        diagnostic(hourly.drop_vars("tcc"))
    assert torch.is_grad_enabled()  # the diagnostic ran under no_grad and left the global mode alone


def test_public_names_resolve() -> None:
    for module in (models, interop, forecast):
        unresolved = [n for n in module.__all__ if getattr(module, n, None) is None]
        assert not unresolved, f"{module.__name__}.__all__ names {unresolved}"
    assert {"load_package", "SFNO", "IrradianceDiagnostic", "RegionalHead"} <= set(models.__all__)
    assert {"Forecaster", "rollout_states", "load_part", "PrognosticModel"} <= set(forecast.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = models.nope
