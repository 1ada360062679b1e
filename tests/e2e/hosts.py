"""Hosts for multi-host tests: Linux network namespaces on a bridge, each with its own IPC
namespace and its own /dev/shm, so their sockets, multicast memberships, shared memory and
semaphores are as separate as on separate machines.

A :class:`Lab` owns a "switch" namespace holding a bridge, and hosts joined to it by veth pairs
(``eth0`` inside the host, ``p-<host>`` on the bridge, MTU 9000), addressed in ``10.77.0.0/24``
with a multicast route on ``eth0``. Nothing is created in the caller's own network namespace.

A :class:`Host` is *up* while its holder process lives: ``unshare --ipc --mount`` inside the
host's network namespace, with a fresh tmpfs on /dev/shm (where POSIX shared memory and
posix_ipc semaphores live). Every command of that host is run with ``nsenter`` into the
holder's network, IPC and mount namespaces; the filesystem outside /dev/shm is shared, so
config files, outputs and control sockets keep their paths. :meth:`Host.down` kills every
process in the host's network namespace, holder included, which takes its /dev/shm with it,
and takes its link down (a host that crashed); :meth:`Host.boot` brings it back empty.

Leaving the ``with Lab(...)`` block (normally or on an error) kills every process in its
namespaces and deletes them. Namespaces left by a test process that was itself killed are
named after its pid and removed by the next Lab.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from services.common.processes import Process, ProcessGroup

SUBNET = "10.77.0"
PREFIX = "rph"  # namespace names: rph<pid>-<host>
MTU = 9000  # jumbo frames, as on a telescope's data network (PST packets are ~ 6 kB)
SHM_SIZE = "256m"  # the most a host's /dev/shm may hold
_NAME = re.compile(rf"^{PREFIX}(\d+)-")


class LabUnavailable(Exception):
    """Namespaces cannot be made here (not root, no iproute2/util-linux, or not allowed)."""


def _run(args: list[Any], timeout: float = 20.0,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
    return result


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def netns_pids(netns: str) -> list[int]:
    """Pids of every process in network namespace ``netns``."""
    out = _run(["ip", "netns", "pids", netns], check=False).stdout
    return [int(p) for p in out.split()]


def _kill_netns(netns: str, timeout: float = 5.0) -> None:
    """SIGKILL every process in ``netns`` and wait until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids = netns_pids(netns)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in {netns} survived SIGKILL")
        time.sleep(0.05)


def _delete_netns(netns: str) -> None:
    _kill_netns(netns)
    _run(["ip", "netns", "del", netns], check=False)


def remove_stale() -> None:
    """Delete the namespaces of Labs whose test process is gone."""
    for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            _delete_netns(name)


def check_available() -> None:
    """Raise :class:`LabUnavailable` with the reason if a Lab cannot be built here."""
    if os.geteuid() != 0:
        raise LabUnavailable("needs root (network, IPC and mount namespaces)")
    for command, package in (("ip", "iproute2"), ("unshare", "util-linux"),
                             ("nsenter", "util-linux")):
        if shutil.which(command) is None:
            raise LabUnavailable(f"needs {command} ({package})")
    probe = f"{PREFIX}{os.getpid()}-probe"
    result = _run(["ip", "netns", "add", probe], check=False)
    if result.returncode != 0:
        raise LabUnavailable(f"network namespaces not allowed: {result.stderr.strip()}")
    try:
        result = _run(["ip", "netns", "exec", probe, "unshare", "--ipc", "--mount",
                       "--propagation", "private", "sh", "-c",
                       "mount -t tmpfs tmpfs /dev/shm"], check=False)
        if result.returncode != 0:
            raise LabUnavailable(f"IPC/mount namespaces not allowed: {result.stderr.strip()}")
        result = _run(["ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name",
                       "v1"], check=False)
        if result.returncode != 0:
            raise LabUnavailable(f"veth pairs not allowed: {result.stderr.strip()}")
    finally:
        _delete_netns(probe)


class Host:
    """One "machine": a network namespace on the lab's bridge, and while up, its own IPC
    namespace and /dev/shm."""

    def __init__(self, lab: Lab, name: str, index: int) -> None:
        self.lab, self.name = lab, name
        self.netns = f"{PREFIX}{os.getpid()}-{name}"
        self.address = f"{SUBNET}.{index}"
        self.holder: subprocess.Popen[str] | None = None
        self.processes: list[Process] = []

    def create(self) -> None:
        """The namespace, its veth onto the bridge and its address."""
        lab, name = self.lab, self.name
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        _run(["ip", "-n", self.netns, "link", "add", "eth0", "mtu", MTU, "type", "veth", "peer",
              "name", f"p-{name}", "mtu", MTU, "netns", lab.switch])
        _run(["ip", "-n", lab.switch, "link", "set", f"p-{name}", "master", "br0", "up"])
        _run(["ip", "-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0"])

    # ------------------------------------------------------------------------------ life
    def boot(self) -> None:
        """Link up, multicast route, and a new IPC namespace with an empty /dev/shm."""
        if self.holder is not None:
            raise RuntimeError(f"{self.name} is already up")
        _run(["ip", "-n", self.netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", self.netns, "route", "replace", "224.0.0.0/4", "dev", "eth0"])
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--ipc", "--mount", "--propagation",
             "private", "sh", "-c", f"mount -t tmpfs -o mode=1777,size={SHM_SIZE} tmpfs /dev/shm "
             "&& echo up && exec cat"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != "up":
            self.holder.kill()
            _, err = self.holder.communicate(timeout=5)
            self.holder = None
            raise RuntimeError(f"{self.name}: could not make its IPC namespace: {err.strip()}")

    def down(self) -> None:
        """Crash the host: SIGKILL every process in it (its /dev/shm goes with the last one)
        and take its link down."""
        _kill_netns(self.netns)
        for process in self.processes:
            process.proc.wait(10)
        self.processes.clear()
        if self.holder is not None:
            self._reap_holder()
        _run(["ip", "-n", self.netns, "link", "set", "eth0", "down"])

    def _reap_holder(self) -> None:
        assert self.holder is not None
        self.holder.communicate(timeout=10)  # closes its pipes
        self.holder = None

    @property
    def up(self) -> bool:
        return self.holder is not None and self.holder.poll() is None

    # ------------------------------------------------------------------------------ commands
    def enter(self) -> list[str]:
        """The command prefix that runs a program on this host."""
        if not self.up:
            raise RuntimeError(f"{self.name} is down")
        assert self.holder is not None
        # entering a mount namespace moves to its root: keep the caller's working directory
        return ["nsenter", "--target", str(self.holder.pid), "--net", "--ipc", "--mount",
                f"--wd={os.getcwd()}", "--"]

    def run(self, args: list[Any], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command on this host to completion; raise with its stderr if it fails."""
        return _run([*self.enter(), *args], timeout)

    def start(self, group: ProcessGroup, name: str, args: list[Any],
              socket_path: Path | None = None) -> Process:
        """Start a process on this host in ``group`` (its log in the group's logs/)."""
        process = group.start(f"{self.name}-{name}", [*self.enter(), *args], socket_path)
        self.processes.append(process)
        return process

    def shm(self) -> set[str]:
        """Names in this host's /dev/shm."""
        return set(self.run(["ls", "-A", "/dev/shm"]).stdout.split())

    def close(self) -> None:
        _kill_netns(self.netns)
        if self.holder is not None:
            self._reap_holder()
        _run(["ip", "netns", "del", self.netns], check=False)


class Lab:
    """A bridge in a namespace of its own, and hosts on it (see the module docstring)."""

    def __init__(self) -> None:
        check_available()
        remove_stale()
        self.switch = f"{PREFIX}{os.getpid()}-switch"
        self.hosts: dict[str, Host] = {}
        try:
            _run(["ip", "netns", "add", self.switch])
            _run(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        """A new host, ``10.77.0.<n>`` (n = 1, 2, ...), booted."""
        host = Host(self, name, len(self.hosts) + 1)
        self.hosts[name] = host
        host.create()
        host.boot()
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            host.close()
        self.hosts.clear()
        _delete_netns(self.switch)
