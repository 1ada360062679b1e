"""Fixtures for the service-framework tests: short socket paths, a notify socket, demo daemons."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.common.processes import Process, daemon_env
from tests.common.demo_service import COMMAND as DEMO

DEMO_BEAM = ["-o", "DATA_KEY=a000", "-o", "WEIGHTS_KEY=a010"]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="rp", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class NotifySocket:
    """A real AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[tuple[float, str]] = []

    def drain(self, timeout: float = 0.0) -> list[str]:
        """Collect what arrived (waiting up to ``timeout`` for the first datagram)."""
        self.sock.settimeout(timeout)  # 0: non-blocking
        new = []
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, TimeoutError):
                break
            new.append(data.decode())
            self.messages.append((time.monotonic(), data.decode()))
            self.sock.settimeout(0)
        return new

    def wait_for(self, line: str, timeout: float = 10.0) -> str:
        """Wait for a datagram with a line starting with ``line``; returns the datagram."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.drain(0.1):
                if any(x.startswith(line) for x in message.split("\n")):
                    return message
        raise AssertionError(f"no {line!r} within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(short_dir: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(short_dir / "notify")
    yield sock
    sock.close()


@pytest.fixture
def demo_factory(short_dir: Path) -> Iterator[Callable[..., Process]]:
    """Start demo daemons (tests/common/demo_service.py) in real subprocesses:
    ``demo_factory(*args, env={...}, ready=True)``."""
    started: list[Process] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Process:
        sock = short_dir / f"demo{len(started)}.sock"
        demo = Process("demo", [*DEMO, "--socket",
                                sock, *args], sock.with_suffix(".log"), sock,
                       {**daemon_env(), **(env or {})})
        started.append(demo)
        if ready:
            demo.wait_ready()
        return demo

    yield start
    for demo in started:
        demo.stop()
