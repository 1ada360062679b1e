"""Fixtures for the service-framework tests: short socket paths, a notify socket, demo daemons."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.common.control import ControlClient, ControlError

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


class Demo:
    """A demo daemon (``python -m services.common.testing``) in a real subprocess."""

    def __init__(self, socket_path: Path, args: list[str], env: dict[str, str]) -> None:
        self.socket = str(socket_path)
        self.log = socket_path.with_suffix(".log")
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.common.testing", "--socket", self.socket, *args],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited with {self.proc.returncode}: {self.output()}")
            try:
                with ControlClient(self.socket, timeout=2.0) as client:
                    client.request("status")
                return
            except ControlError:
                time.sleep(0.05)
        raise AssertionError(f"demo not ready within {timeout} s: {self.output()}")

    def request(self, command: str, config: dict[str, object] | None = None) -> dict:
        with ControlClient(self.socket, timeout=10.0) as client:
            return client.request(command, config)

    def wait_state(self, state: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.request("status")
            if reply["state"] == state:
                return reply
            time.sleep(0.05)
        raise AssertionError(f"state never became {state}: {reply}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()


@pytest.fixture
def demo_factory(short_dir: Path) -> Iterator[Callable[..., Demo]]:
    """Start demo daemons: ``demo_factory(*args, env={...}, ready=True)``."""
    started: list[Demo] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Demo:
        full_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RINGPIPE_", "NOTIFY_", "WATCHDOG_"))
        }
        full_env.update(env or {})
        demo = Demo(short_dir / f"demo{len(started)}.sock", list(args), full_env)
        started.append(demo)
        if ready:
            demo.wait_ready()
        return demo

    yield start
    for demo in started:
        demo.stop()
