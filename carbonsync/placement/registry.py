"""Named registries of placement solvers and replay policies.

``Registry("solver")`` maps names to factories (a class or any callable returning an object that follows
the registry's protocol); :meth:`Registry.register` is a decorator, :meth:`Registry.get` builds one and
raises :class:`PlacementError` listing the known names. :mod:`carbonsync.placement.solvers` and
:mod:`carbonsync.placement.replay` each keep one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from carbonsync.placement.jobs import PlacementError

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories by name, in registration order; iterating (and ``in``) goes over the names."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind, self.plural = kind, plural or f"{kind}s"
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name`` (a name may be registered once)."""
        if not isinstance(name, str) or not name:
            raise PlacementError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise PlacementError(f"{self.kind} '{name}' is already registered")
            self._factories[name] = factory
            return factory

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. a test's own entry)."""
        self._factories.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._factories))

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __len__(self) -> int:
        return len(self._factories)

    def get(self, name: str, **options: Any) -> T:
        """A new ``name`` built with ``options``."""
        if name not in self._factories:
            raise PlacementError(f"unknown {self.kind} '{name}'; known {self.plural}: {', '.join(self._factories)}")
        try:
            return self._factories[name](**options)
        except TypeError as err:
            raise PlacementError(f"{self.kind} '{name}': bad options {sorted(options)}: {err}") from None
