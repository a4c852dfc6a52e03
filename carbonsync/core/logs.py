"""The ``carbonsync`` logger and progress reporting that suits where the output goes.

Library code logs through :data:`logger` (or a child, ``logging.getLogger("carbonsync.<module>")``) and never
prints; the CLI attaches the handlers (:func:`configure`). :class:`Progress` draws a tqdm bar only when
stderr is a terminal; otherwise it logs one status line at most every ``interval_s`` seconds, so a log file
holds readable lines instead of carriage-return frames.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

logger = logging.getLogger("carbonsync")
T = TypeVar("T")
STATUS_INTERVAL_S = 30.0


def get_logger(name: str) -> logging.Logger:
    """The child logger for module ``name`` (``carbonsync.x.y`` stays as is, anything else goes under it)."""
    return logging.getLogger(name if name.startswith("carbonsync") else f"carbonsync.{name}")


def configure(verbosity: int = 0, stream: Any = None) -> None:
    """Send ``carbonsync`` records to ``stream`` (stdout, the run's report, so ``carbonsync run > log`` keeps it):
    WARNING at -1 (``-q``), INFO at 0, DEBUG at 1+ (``-v``). Progress bars and errors stay on stderr."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(stream or sys.stdout)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbosity > 0 else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    detach()
    handler._carbonsync_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def detach() -> None:
    """Remove the handlers :func:`configure` attached (the library's own records then propagate again)."""
    for old in list(logger.handlers):
        if getattr(old, "_carbonsync_cli", False):
            logger.removeHandler(old)
    logger.propagate = True


def on_terminal() -> bool:
    """Whether stderr is an interactive terminal (where a redrawn progress bar belongs)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress over ``total`` steps: a tqdm bar on a terminal, else a periodic one-line status in the log.

    Use as an iterator wrapper (``for x in Progress(xs, desc="...")``) or call :meth:`update`. Disabled
    (``enabled=False``) it only passes items through.
    """

    def __init__(self, iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
                 enabled: bool = True, unit: str = "it", interval_s: float = STATUS_INTERVAL_S,
                 log: logging.Logger | None = None) -> None:
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.unit, self.interval_s = desc, unit, interval_s
        self.enabled = enabled
        self.count = 0
        self.postfix: dict[str, Any] = {}
        self._log = log or logger
        self._start = self._last = time.monotonic()
        self._bar = None
        if enabled and on_terminal():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False)

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("Progress was built without an iterable: call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values
        if self._bar is not None:
            self._bar.set_postfix(**values, refresh=False)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval_s:
            self._last = now
            self._log.info("%s", self.status())

    def status(self) -> str:
        """``desc: 40/100 it (40 %), 12 s, loss=0.0123``."""
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        pct = f" ({self.count / self.total:.0%})" if self.total else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {done} {self.unit}{pct}, {time.monotonic() - self._start:.0f} s{extra}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
