"""The chain's parts: protocols, the registry by package kind, the zone heads, the Forecaster built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
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
from carbonsync.models.head import fit_head
from carbonsync.models.package import PackageError, load_package, save_package
from carbonsync.models.renewables import RenewablesConfig
from carbonsync.models.renewables.gridded import gridded_design
from carbonsync.physics.renewables import zone_products
from carbonsync.physics.zones import load_zones
from tests.helpers.chain import GRID, INIT, save_backbone, save_irradiance, tiny_weather

ZONES = load_zones(Path(__file__).resolve().parents[2] / "configs" / "zones" / "sample_world.yaml")


def prior_design():
    """A week of made-up zone products of the sample-world zones with noisy observations."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=24 * 7, freq="h")
    shape, ids = (len(times), len(ZONES)), [z.id for z in ZONES]
    products = xr.Dataset({name: (("time", "zone"), rng.uniform(0, 1, shape))
                           for name in ("wind_cf", "solar_cf", "wind_speed", "ghi")}, coords={"time": times, "zone": ids})
    observed = (products[["wind_cf", "solar_cf"]] + rng.normal(0, 0.05, shape)).clip(0, 1)
    return gridded_design(products, observed=observed)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, xr.Dataset]:
    root = tmp_path_factory.mktemp("parts")
    ds = tiny_weather(periods=5)
    save_backbone(root / "backbone", ds, damped=True)
    save_irradiance(root / "irradiance", ds)
    head = fit_head(prior_design(), RenewablesConfig(learner="prior", levels=(0.1, 0.5, 0.9)))  # the physical CFs
    save_package(root / "head", head, kind="head", config=None, channels=[], grid=GRID, dt_hours=1, stats={},
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
    # a head that learned no correction (the `prior` learner) returns the physical CFs, within [0, 1]
    physical = zone_products(gridded["u100"], gridded["v100"], gridded["ssrd"], ZONES, GRID, t2m=gridded["t2m"])
    for cf in ("wind_cf", "solar_cf"):
        np.testing.assert_allclose(zones[cf].values, physical[cf].clip(0, 1).values, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(zones[f"physical_{cf}"].values, physical[cf].clip(0, 1).values)
        assert bool((zones[f"{cf}_quantile"].diff("quantile") >= 0).all())
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
    assert {"load_package", "SFNO", "IrradianceDiagnostic", "RenewablesHead"} <= set(models.__all__)
    assert {"Forecaster", "rollout_states", "load_part", "PrognosticModel"} <= set(forecast.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = models.nope
