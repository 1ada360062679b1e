"""The writer side of a ring: transfers (each with its own header) made of blocks.

States of a transfer record: empty -> open -> ended (clean end of data) | aborted (its writer
died; set by whoever notices). A block is published by ``commit``: metadata first, then the
W_FILLED counter, then a wake-up to every reader slot. A short block ends the transfer.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from posix_ipc import BusyError, Semaphore

from ringbuf import control as c
from ringbuf import shm
from ringbuf.errors import HeaderError, RingBufError, RingBusy
from ringbuf.header import DadaHeader
from ringbuf.layout import BLOCK_NWORDS
from ringbuf.ring import SPIN_NS, Ring, RingClient, _now_ns

logger = logging.getLogger(__name__)

# word indices used on every block, as module constants (one lookup instead of two)
_W_OPENED, _W_FILLED, _BYTES_WRITTEN = c.C_W_OPENED, c.C_W_FILLED, c.C_BYTES_WRITTEN
_B_SEQ, _B_ABS, _B_XFER, _B_NBYTES, _B_OBS_OFFSET = (c.B_SEQ, c.B_ABS, c.B_XFER, c.B_NBYTES,
                                                     c.B_OBS_OFFSET)


class RingWriter(RingClient):
    """The single writer of a ring. Refuses to attach while another live writer is attached;
    takes over cleanly from a dead one (its open transfer is marked aborted)."""

    def _attach(self) -> None:
        self._transfer: WriteTransfer | None = None
        ring, q = self.ring, self.ring.q
        if not shm.try_lock(ring.fd, shm.WRITER_BYTE):
            pid = q[c.C_W_PID]
            raise RingBusy(f"ring {self.key} already has a live writer (pid {pid})")
        with ring.locked():
            if q[c.C_XFER_OPEN] >= 0:  # the previous writer died mid-transfer
                dead = q[c.C_XFER_OPEN]
                logger.warning("ring %s: writer pid %d died in transfer %d; marking it aborted",
                               self.key, q[c.C_W_PID], dead)
                _end_record(ring, dead, c.XFER_ABORTED, q[c.C_W_FILLED], posted=False)
                q[c.C_XFER_OPEN] = -1
            if q[c.C_W_OPENED] != q[c.C_W_FILLED]:  # discard blocks opened but never filled
                for n in range(q[c.C_W_FILLED], q[c.C_W_OPENED]):
                    rec = ring.block_record(n)
                    if q[rec + c.B_SEQ] % 2:
                        q[rec + c.B_SEQ] += 1
                q[c.C_W_OPENED] = q[c.C_W_FILLED]
            me = os.getpid()
            q[c.C_W_PID], q[c.C_W_START] = me, shm.process_start_ticks(me)
            q[c.C_W_SINCE_NS] = _now_ns()
            q[c.C_W_ATTACHES] += 1
            for slot in range(self.layout.nreaders):  # repair the space semaphores
                base = c.reader_base(slot)
                free = self.layout.nbufs - (q[c.C_W_OPENED] - q[base + c.R_CLEARED])
                shm.set_semaphore(ring.sem("s", slot), free)
        # what the per-block path needs, looked up once
        self._q, self._bb, self._views = ring.q, ring.bb, ring.block_views
        self._nbufs, self._bufsz = self.layout.nbufs, self.layout.bufsz
        self._space = [ring.sem("s", i) for i in range(self.layout.nreaders)]
        self._cleared_words = [c.reader_base(i) + c.R_CLEARED for i in range(self.layout.nreaders)]
        self._data = [ring.sem("d", i) for i in range(self.layout.nreaders)]

    # ----------------------------------------------------------------------------- transfers
    def open_transfer(self, header: DadaHeader | Mapping[str, Any],
                      obs_offset: int | None = None) -> WriteTransfer:
        """Start a transfer: write its header and return it (a context manager that ends it).

        The transfer starts at the header's OBS_OFFSET (set from ``obs_offset`` if given, 0 if
        absent); every block's ``obs_offset`` is that plus the bytes before it in the transfer.
        """
        if self._transfer is not None and not self._transfer.ended:
            raise RingBufError(f"ring {self.key}: a transfer is already open; end it first")
        hdr = header.copy() if isinstance(header, DadaHeader) else DadaHeader(header)
        if "HDR_SIZE" not in hdr:
            hdr.set("HDR_SIZE", self.layout.hdr_size)
        elif hdr.hdr_size > self.layout.hdr_size:
            raise HeaderError(
                f"ring {self.key}: header HDR_SIZE {hdr.hdr_size} exceeds the ring's header "
                f"block size {self.layout.hdr_size}"
            )
        if obs_offset is not None or "OBS_OFFSET" not in hdr:
            hdr.set("OBS_OFFSET", obs_offset or 0)
        obs_offset = hdr.get_int("OBS_OFFSET")
        if not 0 <= obs_offset < 2**63:
            raise HeaderError(f"ring {self.key}: OBS_OFFSET {obs_offset} must be 0 .. 2^63-1")
        text = hdr.to_bytes(self.layout.hdr_size).split(b"\x00", 1)[0]
        ring, q = self.ring, self.ring.q
        xfer_id = q[c.C_XFER_NEXT]
        rec = ring.xfer_record(xfer_id)
        self._wait_header_slot(xfer_id, rec)
        slot = xfer_id % self.layout.hdr_nbufs
        ring.headers[slot, : len(text)] = np.frombuffer(text, np.uint8)
        ring.headers[slot, len(text) :] = 0
        q[rec + c.X_STATE] = c.XFER_EMPTY
        q[rec + c.X_ID] = xfer_id
        q[rec + c.X_START_BLOCK] = q[c.C_W_OPENED]
        q[rec + c.X_END_BLOCK] = -1
        q[rec + c.X_OBS_OFFSET] = obs_offset
        q[rec + c.X_HDR_NBYTES] = len(text)
        q[rec + c.X_END_POSTED] = 0
        q[rec + c.X_STARTED_NS], q[rec + c.X_ENDED_NS] = _now_ns(), 0
        q[rec + c.X_STATE] = c.XFER_OPEN
        q[c.C_XFER_OPEN] = xfer_id
        q[c.C_XFER_NEXT] = xfer_id + 1
        self._post_all()
        self._transfer = WriteTransfer(self, xfer_id, hdr, obs_offset)
        return self._transfer

    def _wait_header_slot(self, xfer_id: int, rec: int) -> None:
        """Wait until every reader has finished the transfer whose header slot we reuse."""
        q = self.ring.q
        old = q[rec + c.X_ID]
        if old < 0:
            return
        slots = range(self.layout.nreaders)
        self.ring.wait(
            None,
            lambda: all(q[c.reader_base(i) + c.R_XFER] > old for i in slots),
            self.timeout, self.stop, lambda: None,
            f"readers to finish transfer {old} (header slot reuse)",
        )

    def _post_all(self) -> None:
        for sem in self._data:
            sem.release()

    # ----------------------------------------------------------------------------- blocks
    def _open_block(self, timeout: float | None) -> int:
        q, nbufs = self._q, self._nbufs
        n = q[_W_OPENED]
        for slot, cleared in enumerate(self._cleared_words):
            sem = self._space[slot]
            if n - q[cleared] >= nbufs and SPIN_NS:  # the reader is a little behind: poll
                clock = time.perf_counter_ns
                give_up = clock() + SPIN_NS
                while n - q[cleared] >= nbufs and clock() < give_up:
                    os.sched_yield()
            if n - q[cleared] < nbufs:
                try:
                    sem.acquire(0)  # the fast path: space is there and so is its token
                    continue
                except BusyError:
                    pass
            self._wait_for_space(slot, sem, n, timeout)
        rec = self._bb + (n % nbufs) * BLOCK_NWORDS
        q[rec + _B_SEQ] += 1  # odd: being written
        q[rec + _B_ABS] = n
        q[_W_OPENED] = n + 1
        return n

    def _wait_for_space(self, slot: int, sem: Semaphore, n: int, timeout: float | None) -> None:
        q, cleared, nbufs = self.ring.q, self._cleared_words[slot], self.layout.nbufs
        started = time.monotonic_ns()
        self.ring.wait(sem, lambda: n - q[cleared] < nbufs, timeout, self.stop, lambda: None,
                       f"reader slot {slot} to free a block")
        q[c.C_W_BLOCKED_NS] += time.monotonic_ns() - started

    def _commit(self, n: int, xfer: WriteTransfer, nbytes: int, obs_offset: int) -> None:
        q = self._q
        rec = self._bb + (n % self._nbufs) * BLOCK_NWORDS
        q[rec + _B_XFER] = xfer.xfer_id
        q[rec + _B_NBYTES] = nbytes
        q[rec + _B_OBS_OFFSET] = obs_offset
        q[rec + _B_SEQ] += 1  # even: stable
        q[_BYTES_WRITTEN] += nbytes
        if nbytes < self._bufsz:  # recorded before publishing, so readers never wait for it
            _end_record(self.ring, xfer.xfer_id, c.XFER_ENDED, n + 1, posted=False)
            q[c.C_XFER_OPEN] = -1
            xfer.ended = True
        q[_W_FILLED] = n + 1
        for sem in self._data:
            sem.release()

    def _end(self, xfer: WriteTransfer) -> None:
        q = self.ring.q
        if q[c.C_W_OPENED] != q[c.C_W_FILLED]:
            raise RingBufError(f"ring {self.key}: cannot end transfer with uncommitted blocks")
        _end_record(self.ring, xfer.xfer_id, c.XFER_ENDED, q[c.C_W_FILLED], posted=True)
        q[c.C_XFER_OPEN] = -1
        self._post_all()

    # ----------------------------------------------------------------------------- lifetime
    def _detach(self) -> None:
        """End any open transfer, then give up the writer role."""
        try:
            if self._transfer is not None and not self._transfer.ended:
                self._transfer.abandon_open_blocks()
                self._transfer.end()
        finally:
            self.ring.q[c.C_W_PID] = 0
            shm.unlock(self.ring.fd, shm.WRITER_BYTE)


def _end_record(ring: Ring, xfer_id: int, state: int, end_block: int, posted: bool) -> None:
    q = ring.q
    rec = ring.xfer_record(xfer_id)
    if q[rec + c.X_ID] != xfer_id or q[rec + c.X_STATE] != c.XFER_OPEN:
        return
    q[rec + c.X_END_BLOCK] = end_block
    q[rec + c.X_END_POSTED] = 1 if posted else 0
    q[rec + c.X_ENDED_NS] = _now_ns()
    q[rec + c.X_STATE] = state


class WriteTransfer:
    """One transfer being written. Ends (end of data) when its ``with`` block exits."""

    def __init__(self, writer: RingWriter, xfer_id: int, header: DadaHeader, obs_offset: int):
        self.writer = writer
        self.xfer_id = xfer_id
        self.header = header
        self.obs_offset = obs_offset  # of the next block to open
        self.ended = False
        self._open: deque[WriteBlock] = deque()
        self._partial: WriteBlock | None = None
        self._partial_fill = 0

    def open_block(self, timeout: float | None = -1.0) -> WriteBlock:
        """Open the next block for writing (waits for space; ``timeout=-1`` uses the writer's)."""
        if self.ended:
            raise RingBufError(f"ring {self.writer.key}: transfer {self.xfer_id} has ended")
        writer = self.writer
        n = writer._open_block(writer.timeout if timeout == -1.0 else timeout)
        block = WriteBlock(self, n, writer.ring.block_views[n % writer.layout.nbufs],
                           self.obs_offset)
        self.obs_offset += writer.layout.bufsz
        self._open.append(block)
        return block

    def write_block(self, fill: Callable[[np.ndarray, int], object], nbytes: int,
                    timeout: float | None = -1.0) -> None:
        """Open the next block, let ``fill(view, obs_offset)`` write its first ``nbytes`` in
        place, and commit them (fewer than a block ends the transfer).

        The same as ``open_block`` + ``commit`` without a WriteBlock per block; blocks opened
        with ``open_block`` must be committed first. If ``fill`` raises, the block is
        committed with 0 bytes.
        """
        writer = self.writer
        bufsz = writer._bufsz
        if self.ended or self._open or self._partial is not None or not 0 <= nbytes <= bufsz:
            self._refuse(nbytes)
        n = writer._open_block(writer.timeout if timeout == -1.0 else timeout)
        obs_offset = self.obs_offset
        self.obs_offset = obs_offset + bufsz
        view = writer._views[n % writer._nbufs]
        try:
            fill(view if nbytes == bufsz else view[:nbytes], obs_offset)
        except BaseException:
            writer._commit(n, self, 0, obs_offset)
            raise
        writer._commit(n, self, nbytes, obs_offset)

    def _refuse(self, nbytes: int) -> None:
        key, bufsz = self.writer.key, self.writer._bufsz
        if self.ended:
            raise RingBufError(f"ring {key}: transfer {self.xfer_id} has ended")
        if self._open or self._partial is not None:
            raise RingBufError(f"ring {key}: commit the blocks already open first")
        raise ValueError(f"write_block of {nbytes} bytes: must be 0..{bufsz}")

    def _commit(self, block: WriteBlock, nbytes: int) -> None:
        if self._open[0] is not block:
            raise RingBufError(
                f"ring {self.writer.key}: blocks must be committed in the order they were opened"
            )
        if not 0 <= nbytes <= self.writer.layout.bufsz:
            raise ValueError(f"commit of {nbytes} bytes: must be 0..{self.writer.layout.bufsz}")
        self._open.popleft()
        self.writer._commit(block.index, self, nbytes, block.obs_offset)

    def write(self, payload: np.ndarray | bytes | bytearray | memoryview) -> None:
        """Copy ``payload`` into the ring, filling blocks one after another."""
        if isinstance(payload, np.ndarray):
            src = payload.reshape(-1).view(np.uint8)
        else:
            src = np.frombuffer(payload, np.uint8)
        bufsz = self.writer.layout.bufsz
        pos = 0
        while pos < len(src):
            if self._partial is None:
                self._partial, self._partial_fill = self.open_block(), 0
            take = min(bufsz - self._partial_fill, len(src) - pos)
            fill = self._partial_fill
            self._partial.data[fill : fill + take] = src[pos : pos + take]
            self._partial_fill += take
            pos += take
            if self._partial_fill == bufsz:
                self._partial.commit(bufsz)
                self._partial = None

    def abandon_open_blocks(self) -> None:
        """Commit any open blocks with 0 bytes (used when a writer gives up)."""
        for block in list(self._open):
            block.commit(0)
        self._partial = None

    def end(self) -> None:
        """End of data: flush a partly written block (a short block ends the transfer)."""
        if self.ended:
            return
        if self._partial is not None:
            block, fill = self._partial, self._partial_fill
            self._partial = None
            block.commit(fill)
            if fill < self.writer.layout.bufsz:
                return
        self.writer._end(self)
        self.ended = True

    def __enter__(self) -> WriteTransfer:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abandon_open_blocks()
        self.end()


class WriteBlock:
    """An open block: ``data`` is a writable view of the whole block."""

    __slots__ = ("transfer", "index", "data", "obs_offset", "committed")

    def __init__(self, transfer: WriteTransfer, index: int, data: np.ndarray, obs_offset: int):
        self.transfer = transfer
        self.index = index
        self.data = data
        self.obs_offset = obs_offset
        self.committed = False

    def commit(self, nbytes: int | None = None) -> None:
        """Publish the block with ``nbytes`` valid bytes (default: all). Short ends the transfer."""
        if self.committed:
            return
        self.transfer._commit(self, len(self.data) if nbytes is None else nbytes)
        self.committed = True
        self.data = None  # type: ignore[assignment]

    def __enter__(self) -> WriteBlock:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            logger.warning("ring %s: exception in block %d: committing 0 bytes",
                           self.transfer.writer.key, self.index)
            self.commit(0)
        else:
            self.commit()
