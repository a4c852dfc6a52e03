"""Range checks for the typed configuration dataclasses: each raises :class:`ConfigError` naming the field.

The dataclasses call these from ``__post_init__`` with field names relative to themselves
(``epochs=-1: must be >= 1``); :func:`carbonsync.config.typed` prefixes the node's path, so the CLI
reports ``train.backbone.epochs=-1: must be >= 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from carbonsync.core.errors import ConfigError


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def fail(name: str, value: Any, why: str) -> ConfigError:
    """The error for field ``name`` holding ``value``: ``name=value: why``."""
    return ConfigError(f"{name}={_show(value)}: {why}")


def _number(obj: Any, name: str) -> float:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(name, value, "must be a finite number")
    return value


def at_least(obj: Any, minimum: float, *names: str) -> None:
    """Each field in ``names`` is a number ``>= minimum``."""
    for name in names:
        if _number(obj, name) < minimum:
            raise fail(name, getattr(obj, name), f"must be >= {minimum}")


def positive(obj: Any, *names: str) -> None:
    """Each field in ``names`` is a number ``> 0``."""
    for name in names:
        if _number(obj, name) <= 0:
            raise fail(name, getattr(obj, name), "must be > 0")


def one_of(obj: Any, name: str, choices: Iterable[Any]) -> None:
    """Field ``name`` is one of ``choices``."""
    choices = list(choices)
    if getattr(obj, name) not in choices:
        raise fail(name, getattr(obj, name), f"must be one of {', '.join(map(str, choices))}")


def non_empty(obj: Any, *names: str) -> None:
    """Each field in ``names`` is a non-empty sequence."""
    for name in names:
        if not getattr(obj, name):
            raise fail(name, getattr(obj, name), "must not be empty")
