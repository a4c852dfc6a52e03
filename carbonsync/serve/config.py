"""The ``serve`` configuration node: where ``carbonsync serve`` listens and what it watches."""

from __future__ import annotations

from dataclasses import dataclass, field

from carbonsync.core.checks import fail, positive

__all__ = ["ServeConfig"]


@dataclass
class ServeConfig:
    """``carbonsync serve run_dir=DIR serve.port=PORT``.

    ``decisions``: glob patterns of controller decision logs (JSON lines) to watch; relative patterns are taken
    under the run directory. ``token_env`` names the environment variable that holds the optional bearer token
    of the write endpoint (``POST /schedule``); unset or empty: no token needed. Request limits bound what one
    request may ask for.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    decisions: list[str] = field(default_factory=lambda: ["control/*.jsonl", "control/*/*.jsonl"])
    refresh_s: float = 2.0            # how often the live dashboard's event stream sends an update
    token_env: str = "CARBONSYNC_SERVE_TOKEN"
    max_zones: int = 64
    max_jobs: int = 2000
    max_window_h: int = 24 * 31
    history: int = 2000               # decisions kept in memory per job
    log_level: str = "info"

    def __post_init__(self) -> None:
        positive(self, "refresh_s", "max_zones", "max_jobs", "max_window_h", "history")
        if not 0 < int(self.port) < 65536:
            raise fail("port", self.port, "must be a TCP port in 1..65535")
        if not str(self.host).strip():
            raise fail("host", self.host, "must be an address to bind, e.g. 127.0.0.1")
