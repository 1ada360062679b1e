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
from collections.abc import Callable
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


class Process:
    """A process started for real, its output in a log file. A daemon also has a control
    socket, through which it is driven (:meth:`request`, :meth:`status`, :meth:`wait_counter`).
    """

    def __init__(self, name: str, args: list[Any], log: Path, socket_path: Path | str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        self.socket = str(socket_path) if socket_path is not None else None
        with open(log, "ab") as sink:
            self.proc = subprocess.Popen([str(a) for a in args], stdout=sink,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, nbytes: int = 3000) -> str:
        try:
            return self.log.read_bytes()[-nbytes:].decode(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------------------ control
    def request(self, command: str, config: dict[str, object] | None = None) -> dict[str, Any]:
        if self.socket is None:
            raise RuntimeError(f"{self.name} has no control socket")
        with ControlClient(self.socket, timeout=10.0) as client:
            return client.request(command, config)

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def counters(self) -> dict[str, Any]:
        return self.status()["counters"]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the control socket answers (RuntimeError if the process exits first)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                self.status()
                return
            except ControlError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer on {self.socket} in {timeout:g} s: "
                                   f"{self.tail()}")
            time.sleep(0.05)

    def wait_state(self, state: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the daemon reports ``state``; its status."""
        return self._wait_status(lambda s: s["state"] == state, timeout, f"state {state}")

    def wait_counter(self, name: str, value: int, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until counter ``name`` reaches ``value``; every counter."""
        status = self._wait_status(lambda s: s["counters"][name] >= value, timeout,
                                   f"{name} >= {value}")
        return status["counters"]

    def _wait_status(self, done: Callable[[dict[str, Any]], bool], timeout: float,
                     what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {what} within {timeout:g} s: "
                                   f"{status.get('state')} {status.get('counters')}\n{self.tail()}")
            time.sleep(0.05)

    # ------------------------------------------------------------------------------ lifetime
    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit by itself; its exit code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"{self.name} still running after {timeout:g} s: {self.tail()}") from None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for the exit code (RuntimeError if it does not exit in time)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %g s; killing it", self.name, timeout)
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def daemon_env() -> dict[str, str]:
    """This environment without the keys that would configure a daemon behind a test's back."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("RINGPIPE_", "NOTIFY_", "WATCHDOG_"))}


@dataclass
class ProcessGroup:
    """Processes and ring pairs of one run, cleaned up on exit."""

    workdir: Path
    processes: dict[str, Process] = field(default_factory=dict)
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

    def ring_pair(self, data: RingLayout, weights: RingLayout) -> tuple[str, str]:
        dk, wk = unique_key(), unique_key()
        create_ring_pair(dk, wk, data, weights)
        self.pairs.append((dk, wk))
        return dk, wk

    def start(self, name: str, args: list[Any], socket_path: Path | None = None,
              ready_timeout: float = 30.0) -> Process:
        """Start ``args`` with its output in ``logs/<name>.log``; wait for its control socket."""
        process = Process(name, args, self.workdir / "logs" / f"{name}.log", socket_path)
        self.processes[name] = process
        if socket_path is not None:
            process.wait_ready(ready_timeout)
        return process

    def status(self, name: str) -> dict[str, Any]:
        return self.processes[name].status()

    def wait(self, name: str, timeout: float) -> int:
        return self.processes[name].wait(timeout)

    def kill9(self, name: str) -> None:
        self.processes[name].kill9()

    def tail(self, name: str) -> str:
        return self.processes[name].tail()

    def close(self) -> None:
        for process in reversed(list(self.processes.values())):
            try:
                process.stop()
            except Exception:  # keep cleaning up whatever happens
                logger.exception("stopping %s", process.name)
        for dk, wk in self.pairs:
            destroy_ring_pair(dk, wk)
        self.pairs.clear()
        shutil.rmtree(self.sockdir, ignore_errors=True)


def run_tool(
    args: list[Any], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; raise with its stderr if it fails."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout, cwd=cwd, env=dict(os.environ))
    if result.returncode != 0:
        raise RuntimeError(f"{Path(str(args[0])).name} failed ({result.returncode}): "
                           f"{result.stderr.strip()[-2000:]}")
    return result
