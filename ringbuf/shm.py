"""POSIX names, process identity and crash-proof liveness for rings.

Each ring with hex key K is one POSIX shared-memory object ``/ringpipe_K`` plus two
semaphores per reader slot (``/ringpipe_K.d<i>``: blocks and transfer events for reader i,
``/ringpipe_K.s<i>``: space given back by reader i).

Liveness does not rely on pids alone: every attached process holds an open-file-description
(OFD) lock on one byte of the shm object (byte 1 for the writer, byte 2+i for reader slot i).
The kernel drops such a lock when the process dies, however it dies, so "is the writer alive"
is a lock test, immune to pid reuse. Pids and start times are recorded too, for people.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
from pathlib import Path

import posix_ipc

from ringbuf.errors import RingPermissionError

PREFIX = "ringpipe_"
SHM_DIR = Path("/dev/shm")
_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{1,8}$")

MUTEX_BYTE = 0
WRITER_BYTE = 1


def reader_byte(slot: int) -> int:
    return 2 + slot


def normalise_key(key: str | int) -> str:
    """Return the canonical lower-case hex form of a DADA key ('0xDADA' -> 'dada')."""
    if isinstance(key, int):
        if not 0 <= key < 2**32:
            raise ValueError(f"ring key {key:#x} is not a 32-bit value")
        return f"{key:x}"
    text = str(key).strip()
    if not _KEY.match(text):
        raise ValueError(f"ring key {key!r} is not 1-8 hexadecimal digits (like 'dada' or 'a000')")
    return f"{int(text, 16):x}"


def shm_name(key: str) -> str:
    return f"/{PREFIX}{key}"


def sem_name(key: str, kind: str, slot: int) -> str:
    return f"/{PREFIX}{key}.{kind}{slot}"


def sem_path(name: str) -> Path:
    """Where Linux keeps the POSIX semaphore ``name`` (``/dev/shm/sem.<name>``)."""
    return SHM_DIR / f"sem.{name.lstrip('/')}"


def remove_names(names: list[str]) -> None:
    """Unlink the given shm object / semaphore names (those one create made), quietly."""
    for name in names:
        try:
            if "." in name:
                posix_ipc.unlink_semaphore(name)
            else:
                posix_ipc.unlink_shared_memory(name)
        except (posix_ipc.ExistentialError, posix_ipc.PermissionsError):
            pass


def existing_keys() -> list[str]:
    """Keys of every ring on this machine (from /dev/shm)."""
    keys = {p.name[len(PREFIX):] for p in SHM_DIR.glob(f"{PREFIX}*") if "." not in p.name}
    return sorted(keys)


def remove_objects(key: str) -> list[str]:
    """Unlink every POSIX object of ring ``key``; return the names removed."""
    removed = []
    try:
        posix_ipc.unlink_shared_memory(shm_name(key))
        removed.append(shm_name(key))
    except posix_ipc.ExistentialError:
        pass
    except posix_ipc.PermissionsError as exc:
        raise RingPermissionError(f"ring {key}: cannot remove {shm_name(key)}: {exc}") from None
    for path in SHM_DIR.glob(f"sem.{PREFIX}{key}.*"):
        name = "/" + path.name[len("sem."):]
        try:
            posix_ipc.unlink_semaphore(name)
            removed.append(name)
        except posix_ipc.ExistentialError:
            pass
        except posix_ipc.PermissionsError as exc:
            raise RingPermissionError(f"ring {key}: cannot remove {name}: {exc}") from None
    return removed


# ------------------------------------------------------------------------------- identity
def process_start_ticks(pid: int) -> int:
    """Start time of ``pid`` in clock ticks since boot (0 if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def boot_id() -> int:
    """A 63-bit number identifying this boot of the machine."""
    try:
        text = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
        return int(text[:15], 16)
    except (OSError, ValueError):
        return 0


def pid_alive(pid: int, start_ticks: int) -> bool:
    """True if ``pid`` is running and is the same process (same start time)."""
    return pid > 0 and process_start_ticks(pid) == start_ticks


# ------------------------------------------------------------------------------- OFD locks
_FLOCK = "hhqqi4x"  # struct flock on Linux x86-64 / aarch64 (32 bytes)


def _flock(fd: int, cmd: int, lock_type: int, byte: int) -> tuple[int, int]:
    arg = struct.pack(_FLOCK, lock_type, os.SEEK_SET, byte, 1, 0)
    out = fcntl.fcntl(fd, cmd, arg)
    l_type, _, _, _, l_pid = struct.unpack(_FLOCK, out)
    return l_type, l_pid


def try_lock(fd: int, byte: int) -> bool:
    """Take an exclusive OFD lock on one byte without waiting; False if someone holds it."""
    try:
        _flock(fd, fcntl.F_OFD_SETLK, fcntl.F_WRLCK, byte)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def lock(fd: int, byte: int) -> None:
    """Take an exclusive OFD lock on one byte, waiting as long as needed."""
    _flock(fd, fcntl.F_OFD_SETLKW, fcntl.F_WRLCK, byte)


def unlock(fd: int, byte: int) -> None:
    _flock(fd, fcntl.F_OFD_SETLK, fcntl.F_UNLCK, byte)


def is_locked(fd: int, byte: int) -> bool:
    """True if another open file description holds a lock on ``byte``."""
    l_type, _ = _flock(fd, fcntl.F_OFD_GETLK, fcntl.F_WRLCK, byte)
    return l_type != fcntl.F_UNLCK


# ------------------------------------------------------------------------------- semaphores
def set_semaphore(sem: posix_ipc.Semaphore, value: int) -> None:
    """Set a semaphore to ``value`` (races with concurrent posts are healed by the waiters)."""
    value = max(0, value)
    current = sem.value
    while current > value:
        try:
            sem.acquire(0)
        except posix_ipc.BusyError:
            break
        current -= 1
    for _ in range(value - current):
        sem.release()
