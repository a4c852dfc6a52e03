"""Processes of a Flower deployment on this machine: the SuperLink, and a provisioner that starts and stops
one SuperNode per site as its windows open and close.

:class:`Provisioner` is the seam (a cloud provisioner would create and delete machines); registered by
name (:func:`get_provisioner`). :class:`SubprocessProvisioner` runs ``flower-supernode`` processes on
loopback, each with its own Runtime API port and ``--node-config "site='NAME'"``; ``stop`` ends a node
gracefully (SIGTERM, then SIGKILL), ``kill`` SIGKILLs it (a node lost mid-round). :class:`SuperLinkProcess`
runs ``flower-superlink`` (insecure, 127.0.0.1 only) and submits a run to it with ``flwr run``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from carbonsync.core.errors import CarbonSyncError, ConfigError
from carbonsync.core.logs import get_logger

__all__ = ["FlowerError", "Provisioner", "SubprocessProvisioner", "SuperLinkProcess", "flower_executable", "free_port",
           "get_provisioner",
           "known_provisioners", "register_provisioner"]

log = get_logger(__name__)

HOST = "127.0.0.1"


class FlowerError(CarbonSyncError):
    """A Flower process did not start, or a run could not be submitted (the message names the log file)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def flower_executable(name: str) -> str:
    """A Flower executable (``flower-superlink``, ``flower-supernode``, ``flwr``) beside this Python, else on
    PATH; :class:`FlowerError` naming the extra if it is not installed."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FlowerError(f"'{name}' is not installed: pip install 'carbonsync[federated]'")
    return found


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"   # flwr-serverapp/-clientapp
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env.update(extra or {})
    return env


def _wait_port(port: int, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FlowerError(f"the process exited with code {process.returncode} before listening; see {log_path}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise FlowerError(f"nothing listened on {HOST}:{port} within {timeout_s:.0f} s; see {log_path}")


def _end(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace_s``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


class SuperLinkProcess:
    """``flower-superlink`` on 127.0.0.1 (insecure, in-memory state), with a Flower config for ``flwr run``."""

    def __init__(self, directory: str | Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.home = self.directory / "flwr_home"
        self.log_path = self.directory / "superlink.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> SuperLinkProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "carbonsync"\n\n[superlink.carbonsync]\naddress = "{self.address}"\n'
            "insecure = true\n")
        command = [flower_executable("flower-superlink"), "--insecure", "--host", HOST, "--port", str(self.port)]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.env(),
                                            start_new_session=True)
        _wait_port(self.port, self.process, self.log_path, timeout_s)
        log.info("SuperLink on %s (log %s)", self.address, self.log_path)
        return self

    def env(self) -> dict[str, str]:
        return _env({"FLWR_HOME": str(self.home)})

    def submit(self, app_dir: str | Path, run_config: dict[str, Any], timeout_s: float = 120.0) -> int:
        """``flwr run APP carbonsync --run-config ...``: the run id."""
        pairs = " ".join(f"{k}={_toml(v)}" for k, v in run_config.items())
        command = [flower_executable("flwr"), "run", str(Path(app_dir).resolve()), "carbonsync", "--run-config", pairs]
        done = subprocess.run(command, capture_output=True, text=True, env=self.env(), timeout=timeout_s,
                              cwd=str(self.directory))
        text = done.stdout + done.stderr
        found = re.search(r"started run (\d+)", text)
        if done.returncode != 0 or found is None:
            raise FlowerError(f"flwr run failed (exit {done.returncode}): {text.strip()[-2000:]}")
        return int(found.group(1))

    def stop(self) -> None:
        if self.process is not None:
            _end(self.process, grace_s=10.0)
            self.process = None

    def __enter__(self) -> SuperLinkProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


@runtime_checkable
class Provisioner(Protocol):
    """Brings a site's node up and down."""

    def start(self, site: str) -> None: ...

    def stop(self, site: str) -> None: ...

    def running(self) -> list[str]:
        """Sites whose node is up."""
        ...

    def close(self) -> None:
        """Stop every node."""
        ...


@dataclass
class _Node:
    site: str
    process: subprocess.Popen
    port: int
    log_path: Path


class SubprocessProvisioner:
    """One ``flower-supernode`` process per site on loopback, connected to ``superlink`` (host:port)."""

    def __init__(self, superlink: str, directory: str | Path, env: dict[str, str] | None = None,
                 stop_grace_s: float = 10.0) -> None:
        self.superlink = superlink
        self.directory = Path(directory)
        self.extra_env = dict(env or {})
        self.stop_grace_s = stop_grace_s
        self.nodes: dict[str, _Node] = {}
        self.started = 0

    def start(self, site: str) -> None:
        if site in self.nodes and self.nodes[site].process.poll() is None:
            return
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", site):
            raise ConfigError(f"site name '{site}' must be letters, digits, '_', '.' or '-'")
        self.directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.started += 1
        log_path = self.directory / f"{site}-{self.started}.log"
        command = [flower_executable("flower-supernode"), "--insecure", "--superlink", self.superlink, "--host", HOST,
                   "--port", str(port), "--node-config", f"site='{site}'"]
        with open(log_path, "ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=_env(self.extra_env),
                                       start_new_session=True)
        self.nodes[site] = _Node(site, process, port, log_path)
        log.info("SuperNode for %s started (pid %d, log %s)", site, process.pid, log_path)

    def stop(self, site: str) -> None:
        node = self.nodes.pop(site, None)
        if node is not None:
            _end(node.process, self.stop_grace_s)
            log.info("SuperNode for %s stopped", site)

    def kill(self, site: str) -> None:
        """SIGKILL the site's node and its ClientApp (a node lost mid-round)."""
        node = self.nodes.get(site)
        if node is not None and node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=10)
            log.info("SuperNode for %s killed", site)

    def running(self) -> list[str]:
        return sorted(site for site, node in self.nodes.items() if node.process.poll() is None)

    def dead(self) -> list[str]:
        """Sites whose node was started and has exited without being stopped."""
        return sorted(site for site, node in self.nodes.items() if node.process.poll() is not None)

    def close(self) -> None:
        for site in list(self.nodes):
            self.stop(site)


_PROVISIONERS: dict[str, Callable[..., Provisioner]] = {"subprocess": SubprocessProvisioner}


def register_provisioner(name: str, factory: Callable[..., Provisioner], *, replace: bool = False) -> None:
    """``factory(superlink, directory, **options)`` builds the provisioner named ``name``."""
    if name in _PROVISIONERS and not replace:
        raise ValueError(f"a provisioner named '{name}' is already registered")
    _PROVISIONERS[name] = factory


def known_provisioners() -> tuple[str, ...]:
    return tuple(sorted(_PROVISIONERS))


def get_provisioner(name: str, superlink: str, directory: str | Path, **options: Any) -> Provisioner:
    if name not in _PROVISIONERS:
        raise ConfigError(f"no provisioner named '{name}'; known: {', '.join(known_provisioners())}")
    return _PROVISIONERS[name](superlink, directory, **options)
