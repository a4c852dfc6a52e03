"""Each package's ``__init__`` names its public API, and every name it lists exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["core", "physics", "data", "data.observations", "models", "forecast", "evaluate", "train", "interop",
            "placement", "signals", "control", "federated"]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_names_its_api(package):
    module = importlib.import_module(f"carbonsync.{package}")
    assert module.__doc__ and module.__doc__.strip()
    assert getattr(module, "__all__", None), f"carbonsync.{package} has no __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"carbonsync.{package}.__all__ names {missing}"
    assert len(set(module.__all__)) == len(module.__all__)


def test_every_library_error_derives_from_the_base_class():
    from carbonsync.core.errors import CarbonSyncError

    errors = []
    for package in PACKAGES:
        module = importlib.import_module(f"carbonsync.{package}")
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, Exception):
                errors.append(value)
    assert len(errors) >= 10
    assert [e for e in errors if not issubclass(e, CarbonSyncError)] == []
