"""Creating, destroying and attaching to one ring in POSIX shared memory."""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import posix_ipc

from ringbuf import control as c
from ringbuf import shm
from ringbuf.errors import (
    Interrupted,
    RingExists,
    RingLayoutMismatch,
    RingNoSpace,
    RingNotFound,
    RingPermissionError,
    Timeout,
)
from ringbuf.layout import RingLayout

logger = logging.getLogger(__name__)

#: How long a blocked call sleeps before it re-checks peers' liveness and its stop event.
WAIT_SLICE_S = 0.1

#: How long a waiter polls the shm counters, yielding the CPU between polls, before it sleeps
#: on a semaphore (0: never). The peer is usually microseconds from publishing the next block
#: or freeing one; a futex sleep and wake-up per block costs far more, and yielding (instead of
#: busy polling) lets the peer run when both share a core.
SPIN_NS = 20_000


def _now_ns() -> int:
    return time.time_ns()


#: bytes zeroed at a time by ``page``, so a signal (SIGTERM) is handled promptly
_PAGE_CHUNK = 64 << 20


def check_free_space(key: str, layout: RingLayout) -> None:
    """Refuse a ring bigger than the free space in /dev/shm (before any page is touched)."""
    try:
        st = os.statvfs(shm.SHM_DIR)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if layout.total_nbytes > free:
        raise RingNoSpace(
            f"ring {key}: needs {layout.total_nbytes} bytes but {shm.SHM_DIR} has only {free} "
            f"free; destroy rings no longer needed (ringbuf list) or make a smaller ring")


def _sem_names(key: str, layout: RingLayout) -> list[str]:
    return [shm.sem_name(key, kind, slot) for slot in range(layout.nreaders) for kind in "ds"]


def create_ring(
    key: str | int,
    layout: RingLayout,
    mode: int = 0o600,
    page: bool = False,
    lock: bool = False,
) -> str:
    """Create ring ``key``; return its normalised key.

    ``page`` pre-faults every page; ``lock`` asks every attached process to mlock the ring.
    Every object gets exactly ``mode`` whatever the umask. Raises :class:`RingExists`
    (saying who owns the existing ring, or which semaphore is in the way) if any of its
    objects is already there, and :class:`RingNoSpace` if /dev/shm is too small. A create
    that fails (or is stopped by a signal turned into an exception) removes what it made, and
    only that.
    """
    key = shm.normalise_key(key)
    if not 0 <= mode <= 0o777:
        raise ValueError(f"ring {key}: mode {mode:o} is not a permission mode 0000-0777")
    if (shm.SHM_DIR / shm.shm_name(key)[1:]).exists():
        raise RingExists(f"ring {key} already exists: {describe_owner(key)}")
    for name in _sem_names(key, layout):
        if shm.sem_path(name).exists():
            raise RingExists(
                f"ring {key}: semaphore {name} already exists ({shm.sem_path(name)}, left by a "
                f"ring not fully removed); if no process uses it, 'ringbuf destroy -k {key}'")
    check_free_space(key, layout)
    try:
        mem = posix_ipc.SharedMemory(
            shm.shm_name(key), posix_ipc.O_CREX, mode=mode, size=layout.total_nbytes
        )
    except posix_ipc.ExistentialError:
        raise RingExists(f"ring {key} already exists: {describe_owner(key)}") from None
    except posix_ipc.PermissionsError as exc:
        raise RingPermissionError(f"ring {key}: cannot create: {exc}") from None
    made = [shm.shm_name(key)]
    try:
        os.fchmod(mem.fd, mode)  # the umask must not weaken or strengthen what was asked
        buf = mmap.mmap(mem.fd, layout.total_nbytes)
        words = np.ndarray((layout.meta_nwords,), np.int64, buf)
        me = os.getpid()
        words[c.C_VERSION] = c.VERSION
        words[c.C_NBUFS], words[c.C_BUFSZ] = layout.nbufs, layout.bufsz
        words[c.C_NREADERS], words[c.C_HDR_NBUFS] = layout.nreaders, layout.hdr_nbufs
        words[c.C_HDR_SIZE], words[c.C_TOTAL] = layout.hdr_size, layout.total_nbytes
        words[c.C_CREATOR_PID], words[c.C_CREATOR_START] = me, shm.process_start_ticks(me)
        words[c.C_BOOT_ID], words[c.C_CREATED_NS], words[c.C_MODE] = shm.boot_id(), _now_ns(), mode
        words[c.C_FLAGS] = c.FLAG_MLOCK if lock else 0
        words[c.C_XFER_OPEN] = -1
        for i in range(layout.hdr_nbufs):
            words[c.xfer_base(i) + c.X_ID] = -1
        for i in range(layout.nbufs):
            words[c.block_base(layout.hdr_nbufs, i) + c.B_ABS] = -1
        for slot in range(layout.nreaders):
            for kind, initial in (("d", 0), ("s", layout.nbufs)):
                name = shm.sem_name(key, kind, slot)
                try:
                    sem = posix_ipc.Semaphore(name, posix_ipc.O_CREX, mode=mode,
                                              initial_value=initial)
                except posix_ipc.ExistentialError:
                    raise RingExists(f"ring {key}: semaphore {name} appeared while creating "
                                     "the ring (another create?)") from None
                made.append(name)
                sem.close()
                os.chmod(shm.sem_path(name), mode)  # exact, whatever the umask
        if page:
            for start in range(layout.hdr_offset, layout.total_nbytes, _PAGE_CHUNK):
                n = min(_PAGE_CHUNK, layout.total_nbytes - start)
                np.ndarray((n,), np.uint8, buf, start).fill(0)
        words[c.C_MAGIC] = c.MAGIC  # last: the ring is usable from here on
        del words
        buf.close()
    except BaseException:
        shm.remove_names(made)
        raise
    finally:
        mem.close_fd()
    logger.info("created ring %s: %s", key, layout)
    return key


def missing_semaphores(key: str, layout: RingLayout) -> list[str]:
    """Names of the ring's semaphores that are not in /dev/shm (a damaged ring)."""
    return [name for name in _sem_names(key, layout) if not shm.sem_path(name).exists()]


def check_existing(key: str | int, layout: RingLayout) -> bool:
    """True if ring ``key`` exists, complete, with ``layout``; False if there is no ring;
    :class:`RingLayoutMismatch` (or the error of a half-made ring) otherwise."""
    key = shm.normalise_key(key)
    try:
        with Ring(key, data=False) as ring:
            found = ring.layout
    except RingNotFound:
        return False
    if found != layout:
        raise RingLayoutMismatch(f"ring {key} exists with another layout: {found}, "
                                 f"expected {layout}; destroy it first to change it")
    missing = missing_semaphores(key, layout)
    if missing:
        raise RingLayoutMismatch(f"ring {key} exists but semaphore {missing[0]} is missing; "
                                 f"destroy and recreate it ('ringbuf destroy -k {key}')")
    return True


def ensure_ring(key: str | int, layout: RingLayout, **options: Any) -> bool:
    """Create ring ``key`` unless it exists, complete, with this layout; True if created.

    An existing ring with another layout, half-made or with a semaphore missing raises
    :class:`RingLayoutMismatch` naming what differs; it is never changed.
    """
    key = shm.normalise_key(key)
    try:
        create_ring(key, layout, **options)
        return True
    except RingExists as exists:
        if not check_existing(key, layout):
            raise exists from None
    return False


def destroy_ring(key: str | int) -> bool:
    """Remove every POSIX object of ring ``key``. Idempotent; True if anything was removed."""
    return bool(shm.remove_objects(shm.normalise_key(key)))


def describe_owner(key: str) -> str:
    """A sentence about who created ring ``key``, when, and whether they are alive."""
    try:
        with Ring(key, data=False) as ring:
            pid = ring.word(c.C_CREATOR_PID)
            alive = shm.pid_alive(pid, ring.word(c.C_CREATOR_START))
            since = time.strftime("%Y-%m-%d %H:%M:%S",
                                  time.localtime(ring.word(c.C_CREATED_NS) / 1e9))
            owner = _owner_name(key)
            state = "alive" if alive else "no longer running"
            return f"created by pid {pid} (user {owner}) at {since}, creator {state}"
    except Exception as exc:  # a half-made or foreign object: still say something useful
        return f"unreadable ({exc})"


def _file_mode(path: os.PathLike[str] | str) -> str:
    try:
        return f"{os.stat(path).st_mode & 0o7777:04o}"
    except OSError:
        return "?"


def _owner_name(key: str) -> str:
    try:
        import pwd

        return pwd.getpwuid((shm.SHM_DIR / shm.shm_name(key)[1:]).stat().st_uid).pw_name
    except (KeyError, OSError):
        return "?"


class Ring:
    """One process's attachment to a ring: the mapping, the counters, the semaphores.

    Writers, readers and viewers are built on it (``data=True``: the whole ring is mapped,
    pre-faulted, and mlocked if the ring was created with ``lock``). Inspection
    (``data=False``: status, list, header) maps only the control words and the header ring,
    touches no data page and locks nothing. It is a context manager; :meth:`close` releases
    everything (never the ring itself).
    """

    def __init__(self, key: str | int, expect: RingLayout | None = None,
                 data: bool = True) -> None:
        self.key = shm.normalise_key(key)
        try:
            self._mem = posix_ipc.SharedMemory(shm.shm_name(self.key))
        except posix_ipc.ExistentialError:
            raise RingNotFound(
                f"ring {self.key} not found: create it with 'ringbuf create -k {self.key} ...'"
            ) from None
        except posix_ipc.PermissionsError:
            raise RingPermissionError(
                f"ring {self.key}: permission denied on {shm.SHM_DIR}{shm.shm_name(self.key)} "
                f"(owned by {_owner_name(self.key)}); run as that user or recreate with --mode 0660"
            ) from None
        self.fd = self._mem.fd
        self._sems: dict[tuple[str, int], posix_ipc.Semaphore] = {}
        self._buf: mmap.mmap | None = None
        try:
            self.layout = self._check_layout(expect)
            if data:
                # MAP_POPULATE maps every page now, so the data path takes no page faults later
                flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
                self._buf = mmap.mmap(self.fd, self.layout.total_nbytes, flags=flags)
            else:  # control words and header ring only, faulted in as they are read
                self._buf = mmap.mmap(self.fd, self.layout.data_offset, flags=mmap.MAP_SHARED)
        except BaseException:
            self._mem.close_fd()
            raise
        lay = self.layout
        self.has_data = data
        # memoryview item access is several times faster than numpy scalars on the hot path
        self.q = memoryview(self._buf)[: lay.meta_nwords * 8].cast("q")
        self.headers = np.ndarray((lay.hdr_nbufs, lay.hdr_size), np.uint8, self._buf,
                                  lay.hdr_offset)
        #: per-block views made once, indexed on the hot path (empty without ``data``)
        self.block_views: list[np.ndarray] = []
        if data:
            self.blocks = np.ndarray((lay.nbufs, lay.bufsz), np.uint8, self._buf, lay.data_offset)
            self.block_views = list(self.blocks)
        self.bb = c.blocks_base(lay.hdr_nbufs)
        self._mutex = threading.Lock()
        if data and self.word(c.C_FLAGS) & c.FLAG_MLOCK:
            self._mlock()

    def _check_layout(self, expect: RingLayout | None) -> RingLayout:
        size = os.fstat(self.fd).st_size
        head_nbytes = c.CTRL_NWORDS * 8
        if size < head_nbytes:
            raise RingLayoutMismatch(f"ring {self.key}: shm object is {size} bytes, too small")
        with mmap.mmap(self.fd, head_nbytes, prot=mmap.PROT_READ) as head:
            words = np.frombuffer(head, np.int64).copy()
        if words[c.C_MAGIC] != c.MAGIC:
            pid = int(words[c.C_CREATOR_PID])
            if pid and shm.pid_alive(pid, int(words[c.C_CREATOR_START])):
                raise RingLayoutMismatch(
                    f"ring {self.key}: still being created by pid {pid}; try again shortly")
            raise RingLayoutMismatch(
                f"ring {self.key}: half-made (its create was killed before finishing) or not a "
                f"ringpipe ring; remove it with 'ringbuf destroy -k {self.key}' and create it "
                "again")
        if words[c.C_VERSION] != c.VERSION:
            raise RingLayoutMismatch(
                f"ring {self.key}: protocol version {words[c.C_VERSION]}, this ringbuf speaks "
                f"{c.VERSION}; destroy and recreate it"
            )
        try:
            layout = RingLayout(
                nbufs=int(words[c.C_NBUFS]), bufsz=int(words[c.C_BUFSZ]),
                nreaders=int(words[c.C_NREADERS]), hdr_nbufs=int(words[c.C_HDR_NBUFS]),
                hdr_size=int(words[c.C_HDR_SIZE]),
            )
        except ValueError as exc:
            raise RingLayoutMismatch(
                f"ring {self.key}: damaged control block ({exc}); destroy and recreate it"
            ) from None
        if layout.total_nbytes != words[c.C_TOTAL] or size < layout.total_nbytes:
            raise RingLayoutMismatch(f"ring {self.key}: size {size} does not match its layout")
        if expect is not None and expect != layout:
            raise RingLayoutMismatch(f"ring {self.key}: layout is {layout}, expected {expect}")
        return layout

    def _mlock(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        assert self._buf is not None
        addr = ctypes.addressof(ctypes.c_char.from_buffer(self._buf))
        if libc.mlock(ctypes.c_void_p(addr), ctypes.c_size_t(self.layout.total_nbytes)) != 0:
            err = ctypes.get_errno()
            raise RingPermissionError(
                f"ring {self.key}: mlock of {self.layout.total_nbytes} bytes failed "
                f"({os.strerror(err)}); raise RLIMIT_MEMLOCK (ulimit -l, LimitMEMLOCK=) "
                "or drop --lock"
            )

    # --------------------------------------------------------------------------- plumbing
    def word(self, index: int) -> int:
        return self.q[index]

    def sem(self, kind: str, slot: int) -> posix_ipc.Semaphore:
        """Reader slot ``slot``'s semaphore: 'd' (data events) or 's' (space)."""
        sem = self._sems.get((kind, slot))
        if sem is None:
            name = shm.sem_name(self.key, kind, slot)
            try:
                sem = posix_ipc.Semaphore(name)
            except posix_ipc.ExistentialError:
                raise RingLayoutMismatch(
                    f"ring {self.key}: semaphore {name} is missing; destroy and recreate the "
                    f"ring ('ringbuf destroy -k {self.key}')"
                ) from None
            except posix_ipc.PermissionsError:
                path = shm.sem_path(name)
                raise RingPermissionError(
                    f"ring {self.key}: permission denied on {path} (mode "
                    f"{_file_mode(path)}, owner {_owner_name(self.key)}); run as that user or "
                    "recreate the ring with --mode 0660 for its group"
                ) from None
            self._sems[(kind, slot)] = sem
        return sem

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The ring-wide mutex (an OFD lock: released by the kernel if its holder dies)."""
        with self._mutex:
            shm.lock(self.fd, shm.MUTEX_BYTE)
            try:
                yield
            finally:
                shm.unlock(self.fd, shm.MUTEX_BYTE)

    def writer_alive(self) -> bool:
        return shm.is_locked(self.fd, shm.WRITER_BYTE)

    def reader_alive(self, slot: int) -> bool:
        return shm.is_locked(self.fd, shm.reader_byte(slot))

    def abort_if_writer_died(self, xfer_id: int) -> bool:
        """Mark transfer ``xfer_id`` aborted if it is open and its writer is gone; True if so.

        Every filled block stays readable: the transfer ends after the last one.
        """
        q, rec = self.q, self.xfer_record(xfer_id)
        if q[rec + c.X_ID] != xfer_id or q[rec + c.X_STATE] != c.XFER_OPEN or self.writer_alive():
            return False
        with self.locked():
            if q[rec + c.X_STATE] != c.XFER_OPEN or self.writer_alive():
                return False
            logger.warning("ring %s: writer pid %d died in transfer %d",
                           self.key, q[c.C_W_PID], xfer_id)
            q[rec + c.X_END_BLOCK] = q[c.C_W_FILLED]
            q[rec + c.X_STATE] = c.XFER_ABORTED
        return True

    def xfer_record(self, xfer_id: int) -> int:
        """Word index of the record of transfer ``xfer_id`` (check its X_ID before trusting)."""
        return c.xfer_base(xfer_id % self.layout.hdr_nbufs)

    def block_record(self, abs_index: int) -> int:
        return self.bb + (abs_index % self.layout.nbufs) * 8

    def header_bytes(self, xfer_id: int) -> bytes:
        rec = self.xfer_record(xfer_id)
        return bytes(self.headers[xfer_id % self.layout.hdr_nbufs, : self.q[rec + c.X_HDR_NBYTES]])

    def wait(
        self,
        sem: posix_ipc.Semaphore | None,
        ready: Callable[[], bool],
        timeout: float | None,
        stop: threading.Event | None,
        on_slice: Callable[[], None],
        what: str,
    ) -> bool:
        """Consume one wake-up token from ``sem`` and return once ``ready()`` is true.

        Tokens mirror the counters: a stale token is discarded, a missing one costs at most
        one slice, after which the counters alone decide. ``on_slice`` checks peers' liveness.
        Returns whether a token was consumed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if SPIN_NS and not ready():  # poll the counters before sleeping on the semaphore
            clock, give_way = time.perf_counter_ns, os.sched_yield
            give_up = clock() + SPIN_NS
            while not ready() and clock() < give_up:
                give_way()
        while True:
            slice_s = WAIT_SLICE_S
            if deadline is not None:
                slice_s = max(0.0, min(slice_s, deadline - time.monotonic()))
            if sem is not None:
                try:
                    sem.acquire(slice_s)
                    if ready():
                        return True
                    continue
                except (posix_ipc.BusyError, posix_ipc.SignalError):
                    pass  # a timeout, or a signal whose handler may have set ``stop``
            else:
                time.sleep(min(slice_s, 0.001))
            if ready():
                return False
            on_slice()
            if stop is not None and stop.is_set():
                raise Interrupted(f"ring {self.key}: stopped while waiting for {what}")
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(f"ring {self.key}: timed out after {timeout:g} s waiting for {what}")

    @staticmethod
    def take_token(sem: posix_ipc.Semaphore) -> bool:
        """Consume one token if there is one, without waiting."""
        try:
            sem.acquire(0)
        except posix_ipc.BusyError:
            return False
        return True

    def close(self) -> None:
        for sem in self._sems.values():
            sem.close()
        self._sems.clear()
        if self._buf is not None:
            del self.headers, self.block_views
            if self.has_data:
                del self.blocks
            self.q.release()
            try:
                self._buf.close()
            except BufferError:  # a caller still holds a view; the mapping dies with it
                logger.debug("ring %s: mapping still referenced at close", self.key)
            self._buf = None
            self._mem.close_fd()

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


C = TypeVar("C", bound="RingClient")


class RingClient:
    """Base of writers, readers and viewers: an attached :class:`Ring`, the default timeout
    of blocking calls and a stop event. Subclasses take their role in :meth:`_attach` and give
    it back in :meth:`_detach`; closing always releases the attachment."""

    #: writers and readers post and wait on the semaphores; viewers do not
    uses_semaphores = True

    def __init__(
        self,
        key: str | int,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.ring = Ring(key)
        self.key = self.ring.key
        self.layout = self.ring.layout
        self.timeout = timeout
        self.stop = stop
        try:
            if self.uses_semaphores:
                self._open_semaphores()
            self._attach()
        except BaseException:
            self.ring.close()
            raise

    def _open_semaphores(self) -> None:
        """Open every semaphore first, so a permission problem changes nothing in the ring."""
        for slot in range(self.layout.nreaders):
            for kind in "ds":
                self.ring.sem(kind, slot)

    def _attach(self) -> None:
        """Take this client's role in the ring (a viewer has none)."""

    def _detach(self) -> None:
        """Give the role back (the ring itself stays)."""

    def close(self) -> None:
        if self.ring is None:
            return
        try:
            self._detach()
        finally:
            self.ring.close()
            self.ring = None  # type: ignore[assignment]

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
