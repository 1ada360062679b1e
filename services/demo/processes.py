"""Starting, watching and stopping the pipeline's processes, with nothing left behind.

A :class:`ProcessGroup` owns every process and ring pair it started; leaving its ``with``
block (normally, on an error, or on Ctrl-C) stops the processes (SIGTERM, then SIGKILL) and
destroys the rings.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringbuf import RingLayout, create_ring_pair, destroy_ring_pair
from services.common.control import ControlClient, ControlError

logger = logging.getLogger(__name__)

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Path of one of the project's console scripts (next to this Python)."""
    return str(BIN / name)


def free_udp_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive free UDP ports on ``host``."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            base = probe.getsockname()[1]
        if base + count >= 65000:
            continue
        held = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no {count} consecutive free UDP ports on {host}")


def unique_key() -> str:
    """A ring key nobody else is using (8 hex digits, first never 0)."""
    return "f" + uuid.uuid4().hex[:7]


def options(values: dict[str, Any]) -> list[str]:
    """``-o KEY=VALUE`` arguments for a daemon or sender."""
    args: list[str] = []
    for key, value in values.items():
        args += ["-o", f"{key}={value}"]
    return args


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    socket: Path | None = None


@dataclass
class ProcessGroup:
    """Processes and ring pairs of one run, cleaned up on exit."""

    workdir: Path
    processes: dict[str, Managed] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to 107 bytes: keep them in a short directory
        self.sockdir = Path(tempfile.mkdtemp(prefix="rp", dir="/tmp"))

    def socket_path(self, name: str) -> Path:
        return self.sockdir / f"{name}.sock"

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ rings
    def ring_pair(self, data: RingLayout, weights: RingLayout) -> tuple[str, str]:
        dk, wk = unique_key(), unique_key()
        create_ring_pair(dk, wk, data, weights)
        self.pairs.append((dk, wk))
        return dk, wk

    # ------------------------------------------------------------------------------ processes
    def start(self, name: str, args: list[str], socket_path: Path | None = None,
              ready_timeout: float = 30.0) -> Managed:
        """Start ``args`` with its stderr in ``logs/<name>.log``; wait for its control socket."""
        log = self.workdir / "logs" / f"{name}.log"
        with open(log, "ab") as sink:
            proc = subprocess.Popen([str(a) for a in args], stdout=sink, stderr=sink,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        managed = Managed(name, proc, log, socket_path)
        self.processes[name] = managed
        if socket_path is not None:
            self.wait_for_socket(managed, ready_timeout)
        return managed

    def wait_for_socket(self, managed: Managed, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert managed.socket is not None
        while True:
            if managed.proc.poll() is not None:
                raise RuntimeError(f"{managed.name} exited with {managed.proc.returncode}: "
                                   f"{self.tail(managed.name)}")
            if managed.socket.exists():
                try:
                    self.status(managed.name)
                    return
                except ControlError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{managed.name} did not open {managed.socket} in {timeout:g} s")
            time.sleep(0.05)

    def status(self, name: str) -> dict[str, Any]:
        managed = self.processes[name]
        assert managed.socket is not None
        with ControlClient(str(managed.socket), timeout=10) as client:
            return client.request("status")

    def wait(self, name: str, timeout: float) -> int:
        """Wait for a process to exit by itself; its exit code."""
        managed = self.processes[name]
        try:
            return managed.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} still running after {timeout:g} s: {self.tail(name)}") from None

    def stop(self, name: str, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        managed = self.processes[name]
        if managed.proc.poll() is None:
            managed.proc.send_signal(signal.SIGTERM)
            try:
                managed.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %g s; killing it", name, timeout)
                managed.proc.kill()
                managed.proc.wait()
        return managed.proc.returncode

    def kill9(self, name: str) -> None:
        managed = self.processes[name]
        managed.proc.send_signal(signal.SIGKILL)
        managed.proc.wait(10)

    def tail(self, name: str, nbytes: int = 3000) -> str:
        try:
            return self.processes[name].log.read_bytes()[-nbytes:].decode(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        for name in reversed(list(self.processes)):
            try:
                self.stop(name, timeout=20)
            except Exception:  # keep cleaning up whatever happens
                logger.exception("stopping %s", name)
        for dk, wk in self.pairs:
            destroy_ring_pair(dk, wk)
        self.pairs.clear()
        shutil.rmtree(self.sockdir, ignore_errors=True)


def run_tool(args: list[Any], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; raise with its stderr if it fails."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout, cwd=cwd, env=dict(os.environ))
    if result.returncode != 0:
        raise RuntimeError(f"{Path(str(args[0])).name} failed ({result.returncode}): "
                           f"{result.stderr.strip()[-2000:]}")
    return result
