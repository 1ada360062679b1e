"""Guaranteed readers: every reader slot sees every block; the slowest gates the writer.

A reader takes a free slot (one whose previous process, if any, is gone) and resumes from
the slot's position, so a reader that was killed is replaced without any scrubbing: the
block it had open but not cleared is delivered again to its successor.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

import numpy as np
from posix_ipc import BusyError

from ringbuf import control as c
from ringbuf import shm
from ringbuf.errors import EndOfData, RingBufError, RingBusy, WriterDied
from ringbuf.header import DadaHeader
from ringbuf.layout import BLOCK_NWORDS
from ringbuf.ring import SPIN_NS, RingClient, _now_ns

logger = logging.getLogger(__name__)


class RingReader(RingClient):
    """A guaranteed reader of a ring (context manager)."""

    def _attach(self) -> None:
        self.slot = self._claim_slot()
        self.base = c.reader_base(self.slot)
        self._data = self.ring.sem("d", self.slot)
        self._space = self.ring.sem("s", self.slot)
        self._transfer: ReadTransfer | None = None
        self._silent_clear_at: int | None = None  # a 0-byte final block waiting to be cleared
        self._views = []  # read-only view of each block, made once
        for view in self.ring.blocks:
            view.flags.writeable = False
            self._views.append(view)

    def _claim_slot(self) -> int:
        ring, q = self.ring, self.ring.q
        if self.layout.nreaders == 0:
            raise RingBusy(f"ring {self.key} has no reader slots (created with -r 0); use a viewer")
        with ring.locked():
            free = [s for s in range(self.layout.nreaders)
                    if shm.try_lock(ring.fd, shm.reader_byte(s))]
            if not free:
                pids = [q[c.reader_base(s) + c.R_PID] for s in range(self.layout.nreaders)]
                raise RingBusy(f"ring {self.key}: all {self.layout.nreaders} reader slots are in "
                               f"use (pids {pids})")
            # take the slot furthest behind (its data is retained for us), release the others
            slot = min(free, key=lambda s: q[c.reader_base(s) + c.R_CLEARED])
            for other in free:
                if other != slot:
                    shm.unlock(ring.fd, shm.reader_byte(other))
            base = c.reader_base(slot)
            if q[base + c.R_STATE] == c.SLOT_ATTACHED:
                logger.warning("ring %s: reclaiming reader slot %d of dead pid %d at block %d",
                               self.key, slot, q[base + c.R_PID], q[base + c.R_CLEARED])
            me = os.getpid()
            q[base + c.R_PID], q[base + c.R_START] = me, shm.process_start_ticks(me)
            q[base + c.R_SINCE_NS] = _now_ns()
            q[base + c.R_OPENED] = q[base + c.R_CLEARED]
            q[base + c.R_ATTACHES] += 1
            q[base + c.R_STATE] = c.SLOT_ATTACHED
            # repair semaphores from the counters
            pending = max(0, q[c.C_W_FILLED] - q[base + c.R_CLEARED])
            for xfer_id in range(q[base + c.R_XFER], q[c.C_XFER_NEXT]):
                rec = ring.xfer_record(xfer_id)
                pending += 1 + q[rec + c.X_END_POSTED]
            shm.set_semaphore(ring.sem("d", slot), pending)
            space = self.layout.nbufs - (q[c.C_W_OPENED] - q[base + c.R_CLEARED])
            shm.set_semaphore(ring.sem("s", slot), space)
        return slot

    # ----------------------------------------------------------------------------- transfers
    def open_transfer(self, timeout: float | None = -1.0) -> ReadTransfer:
        """Wait for the next transfer (or the one this slot is in the middle of)."""
        if self._transfer is not None and not self._transfer.finished:
            self._transfer.skip()
        timeout = self.timeout if timeout == -1.0 else timeout
        ring, q = self.ring, self.ring.q
        xfer_id = q[self.base + c.R_XFER]
        rec = ring.xfer_record(xfer_id)
        ring.wait(
            self._data,
            lambda: q[rec + c.X_ID] == xfer_id and q[rec + c.X_STATE] != c.XFER_EMPTY,
            timeout, self.stop, lambda: None, f"transfer {xfer_id} to start",
        )
        header = DadaHeader.from_bytes(ring.header_bytes(xfer_id),
                                       source=f"ring {self.key} transfer {xfer_id}")
        start = q[rec + c.X_START_BLOCK]
        # resumed: this slot already delivered this transfer's header (to a reader now gone)
        resumed = q[self.base + c.R_HDR_SEEN] == xfer_id + 1 or q[self.base + c.R_CLEARED] > start
        q[self.base + c.R_HDR_SEEN] = xfer_id + 1
        if q[self.base + c.R_CLEARED] < start:  # blocks nobody needs (held ones are given up)
            skipped = start - q[self.base + c.R_CLEARED]
            q[self.base + c.R_CLEARED] = q[self.base + c.R_OPENED] = start
            self._silent_clear_at = None
            for _ in range(skipped):
                self._space.release()
        self._transfer = ReadTransfer(self, xfer_id, header, resumed)
        return self._transfer

    def transfers(self, timeout: float | None = -1.0) -> Iterator[ReadTransfer]:
        """Yield transfers for as long as the ring lives (until timeout, stop or close)."""
        while True:
            yield self.open_transfer(timeout)

    # ----------------------------------------------------------------------------- blocks
    def _next_block(self, xfer: ReadTransfer, timeout: float | None) -> ReadBlock:
        ring, q, base = self.ring, self.ring.q, self.base
        n = q[base + c.R_OPENED]
        if n < q[c.C_W_FILLED]:  # the fast path: a block of this transfer and its token
            brec = ring.bb + (n % self.layout.nbufs) * BLOCK_NWORDS
            nbytes = q[brec + c.B_NBYTES]
            if nbytes and q[brec + c.B_XFER] == xfer.xfer_id:
                try:
                    self._data.acquire(0)
                except BusyError:
                    return self._next_block_slow(xfer, timeout)
                q[base + c.R_OPENED] = n + 1
                view = self._views[n % self.layout.nbufs]
                return ReadBlock(self, n, view if nbytes == self.layout.bufsz else view[:nbytes],
                                 q[brec + c.B_OBS_OFFSET])
        return self._next_block_slow(xfer, timeout)

    def _next_block_slow(self, xfer: ReadTransfer, timeout: float | None) -> ReadBlock:
        ring, q, base = self.ring, self.ring.q, self.base
        rec = ring.xfer_record(xfer.xfer_id)
        n = q[base + c.R_OPENED]

        def at_end() -> bool:
            return (q[rec + c.X_STATE] in (c.XFER_ENDED, c.XFER_ABORTED)
                    and n >= q[rec + c.X_END_BLOCK])

        def ready() -> bool:
            return n < q[c.C_W_FILLED] or at_end()

        def check_writer() -> None:
            ring.abort_if_writer_died(xfer.xfer_id)

        took_token = False
        if not at_end():
            took_token = ring.wait(self._data, ready, timeout, self.stop, check_writer,
                                   f"block {n} of transfer {xfer.xfer_id}")
        brec = ring.block_record(n)
        if at_end() or q[brec + c.B_XFER] != xfer.xfer_id or (
            q[brec + c.B_NBYTES] == 0 and n + 1 >= q[rec + c.X_END_BLOCK] >= 0
        ):
            self._finish(xfer, rec, end_token_taken=took_token and n >= q[c.C_W_FILLED])
            if q[rec + c.X_STATE] == c.XFER_ABORTED:
                raise WriterDied(f"ring {self.key}: the writer died during transfer {xfer.xfer_id}")
            raise EndOfData(f"ring {self.key}: end of transfer {xfer.xfer_id}")
        q[base + c.R_OPENED] = n + 1
        nbytes = q[brec + c.B_NBYTES]
        return ReadBlock(self, n, self._views[n % self.layout.nbufs][:nbytes],
                         q[brec + c.B_OBS_OFFSET])

    def _finish(self, xfer: ReadTransfer, rec: int, end_token_taken: bool = False) -> None:
        """Account for the end of ``xfer`` and let the writer reuse its header slot."""
        q, base = self.ring.q, self.base
        end = q[rec + c.X_END_BLOCK]
        if q[base + c.R_OPENED] < end:  # a 0-byte final block: consume it silently,
            q[base + c.R_OPENED] = end  # once every block still held before it is cleared
            self._silent_clear_at = end - 1
            self._clear_silent_block()
        if q[rec + c.X_END_POSTED] and not end_token_taken:
            self.ring.take_token(self._data)
        q[base + c.R_XFER] = xfer.xfer_id + 1
        xfer.finished = True

    def _clear(self, block: ReadBlock) -> None:
        q, base = self.ring.q, self.base
        if block.index != q[base + c.R_CLEARED]:
            raise RingBufError(f"ring {self.key}: block {block.index} cleared out of order "
                               f"(next to clear is {q[base + c.R_CLEARED]})")
        q[base + c.R_BYTES] += block.nbytes
        q[base + c.R_CLEARED] = block.index + 1
        self._space.release()
        self._clear_silent_block()

    def _clear_silent_block(self) -> None:
        q, base = self.ring.q, self.base
        if self._silent_clear_at is not None and q[base + c.R_CLEARED] == self._silent_clear_at:
            q[base + c.R_CLEARED] = self._silent_clear_at + 1
            self._silent_clear_at = None
            self._space.release()

    def _detach(self) -> None:
        """The slot keeps its position (and keeps gating the writer) for a successor."""
        q = self.ring.q
        q[self.base + c.R_OPENED] = q[self.base + c.R_CLEARED]
        q[self.base + c.R_PID] = 0
        q[self.base + c.R_STATE] = c.SLOT_HELD
        shm.unlock(self.ring.fd, shm.reader_byte(self.slot))


class ReadTransfer:
    """One transfer being read: ``header``, and its blocks by iteration or :meth:`next_block`.

    ``resumed`` is true when this slot had already read part of the transfer (a replaced
    reader): the first block is then not at the transfer's start.
    """

    def __init__(self, reader: RingReader, xfer_id: int, header: DadaHeader, resumed: bool):
        self.reader = reader
        self.xfer_id = xfer_id
        self.header = header
        self.resumed = resumed
        self.finished = False
        #: bytes of the blocks :meth:`drain` discarded
        self.nbytes = 0

    def next_block(self, timeout: float | None = -1.0) -> ReadBlock:
        """The next block (a context manager that clears it). Raises EndOfData at the end.

        Several blocks may be held at once (fewer than nbufs, or the writer stalls) and are
        cleared in the order they were read; a reader that dies holding blocks has them
        delivered again to its successor.
        """
        if self.finished:
            raise EndOfData(f"ring {self.reader.key}: transfer {self.xfer_id} already ended")
        timeout = self.reader.timeout if timeout == -1.0 else timeout
        return self.reader._next_block(self, timeout)

    def __iter__(self) -> Iterator[ReadBlock]:
        """Yield blocks until end of data; each is cleared when the next is asked for.
        WriterDied propagates (it is an EndOfData the caller should know about)."""
        while True:
            try:
                block = self.next_block()
            except WriterDied:
                raise
            except EndOfData:
                return
            try:
                yield block
            finally:
                block.clear()

    def drain(self) -> int:
        """Read and discard the rest of this transfer without touching its data; return the
        number of blocks (like ``dada_dbnull -z``). ``nbytes`` counts their bytes as it goes,
        so it is right even when WriterDied propagates.

        Each block costs a few shm words and no allocation: the counters of a ready block are
        read, its wake-up token taken and its space given back, as ``next_block`` + ``clear``
        would do; anything else (a wait, the end) goes through ``next_block``.
        """
        reader = self.reader
        ring, q, base, xfer_id = reader.ring, reader.ring.q, reader.base, self.xfer_id
        bb, nbufs, data_sem, space_sem = ring.bb, reader.layout.nbufs, reader._data, reader._space
        opened_ix, cleared_ix, bytes_ix = base + c.R_OPENED, base + c.R_CLEARED, base + c.R_BYTES
        filled_ix, nbytes_w, xfer_w = c.C_W_FILLED, c.B_NBYTES, c.B_XFER
        clock, give_way = time.perf_counter_ns, os.sched_yield
        blocks = 0
        while not self.finished:
            n = q[opened_ix]
            if n >= q[filled_ix] and SPIN_NS:  # the writer is a little behind: poll, yielding
                give_up = clock() + SPIN_NS
                while q[filled_ix] <= n and clock() < give_up:
                    give_way()
            if (n < q[filled_ix] and q[cleared_ix] == n and reader._silent_clear_at is None):
                brec = bb + (n % nbufs) * BLOCK_NWORDS
                nbytes = q[brec + nbytes_w]
                if nbytes and q[brec + xfer_w] == xfer_id:
                    try:
                        data_sem.acquire(0)
                    except BusyError:
                        pass
                    else:
                        q[opened_ix] = n + 1
                        q[bytes_ix] += nbytes
                        q[cleared_ix] = n + 1
                        space_sem.release()
                        self.nbytes += nbytes
                        blocks += 1
                        continue
            try:
                block = self.next_block()
            except WriterDied:
                raise
            except EndOfData:
                break
            self.nbytes += block.nbytes
            blocks += 1
            block.clear()
        return blocks

    def skip(self) -> None:
        """Read and discard the rest of this transfer."""
        try:
            for _ in self:
                pass
        except WriterDied:
            pass

    def read_all(self) -> bytes:
        """The rest of the transfer as bytes (for small transfers and tests)."""
        return b"".join(block.data.tobytes() for block in self)


class ReadBlock:
    """A block being read: ``data`` is a read-only view of its valid bytes (zero copy)."""

    __slots__ = ("reader", "index", "data", "obs_offset", "nbytes")

    def __init__(self, reader: RingReader, index: int, data: np.ndarray, obs_offset: int):
        self.reader = reader
        self.index = index
        self.data = data
        self.obs_offset = obs_offset
        self.nbytes = len(data)

    def clear(self) -> None:
        """Give the block back to the writer. The view must not be used afterwards."""
        if self.data is None:
            return
        self.reader._clear(self)
        self.data = None  # type: ignore[assignment]

    def __enter__(self) -> ReadBlock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
