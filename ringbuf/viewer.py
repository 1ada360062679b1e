"""Viewers: read blocks without ever blocking the writer (like PST STAT's DataBlockView).

A viewer takes no reader slot. Each block record carries a sequence number that the writer
makes odd while it rewrites the block and even once it is published (a seqlock), plus the
block's absolute index; a viewer checks both before and after it reads, so it always knows
whether what it read was overwritten, and how many blocks it skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringbuf import control as c
from ringbuf.errors import Overwritten, RingBufError
from ringbuf.header import DadaHeader
from ringbuf.ring import RingClient


@dataclass(frozen=True)
class TransferInfo:
    """What a viewer can learn about one transfer."""

    xfer_id: int
    state: str  # open | ended | aborted
    start_block: int
    end_block: int  # -1 while open
    header: DadaHeader


class RingViewer(RingClient):
    """A non-blocking observer of a ring (context manager)."""

    uses_semaphores = False

    def _attach(self) -> None:
        self.last_index = -1
        self.missed_blocks = 0
        self._header_cache: tuple[int, DadaHeader] | None = None

    @property
    def blocks_filled(self) -> int:
        return self.ring.q[c.C_W_FILLED]

    def latest_block(self, timeout: float | None = -1.0) -> ViewBlock:
        """The most recent published block, waiting for one newer than the last seen."""
        q = self.ring.q
        self._wait(lambda: q[c.C_W_FILLED] - 1 > self.last_index, timeout, "a new block")
        return self._view(q[c.C_W_FILLED] - 1)

    def next_block(self, timeout: float | None = -1.0) -> ViewBlock:
        """The block after the last one seen (or the oldest still in the ring if lapped)."""
        q = self.ring.q
        self._wait(lambda: q[c.C_W_FILLED] > self.last_index + 1, timeout, "the next block")
        oldest = max(0, q[c.C_W_OPENED] - self.layout.nbufs)
        return self._view(max(self.last_index + 1, oldest))

    def _wait(self, ready, timeout: float | None, what: str) -> None:  # type: ignore[no-untyped-def]
        timeout = self.timeout if timeout == -1.0 else timeout
        self.ring.wait(None, ready, timeout, self.stop, lambda: None, what)

    def _view(self, n: int) -> ViewBlock:
        q, rec = self.ring.q, self.ring.block_record(n)
        seq = q[rec + c.B_SEQ]
        nbytes, xfer_id, obs = q[rec + c.B_NBYTES], q[rec + c.B_XFER], q[rec + c.B_OBS_OFFSET]
        if seq % 2 or q[rec + c.B_ABS] != n or q[rec + c.B_SEQ] != seq:
            missed = n - self.last_index
            self.missed_blocks += missed
            self.last_index = n
            raise Overwritten(
                f"ring {self.key}: block {n} was overwritten before it could be viewed",
                              missed_blocks=missed)
        missed = n - self.last_index - 1
        self.missed_blocks += max(0, missed)
        self.last_index = n
        data = self.ring.blocks[n % self.layout.nbufs, :nbytes]
        data.flags.writeable = False
        return ViewBlock(self, n, data, obs, xfer_id, seq, max(0, missed))

    def transfer(self, xfer_id: int) -> TransferInfo:
        """The state and header of transfer ``xfer_id`` (if its header slot still holds it).

        An open transfer whose writer has died is reported (and marked) aborted.
        """
        q, rec = self.ring.q, self.ring.xfer_record(xfer_id)
        self.ring.abort_if_writer_died(xfer_id)
        if q[rec + c.X_ID] != xfer_id:
            raise RingBufError(
                f"ring {self.key}: transfer {xfer_id} is no longer in the header ring")
        if self._header_cache is None or self._header_cache[0] != xfer_id:
            text = self.ring.header_bytes(xfer_id)
            header = DadaHeader.from_bytes(text, f"ring {self.key} transfer {xfer_id}")
            self._header_cache = (xfer_id, header)
        return TransferInfo(
            xfer_id, c.XFER_STATE_NAMES[q[rec + c.X_STATE]], q[rec + c.X_START_BLOCK],
            q[rec + c.X_END_BLOCK], self._header_cache[1],
        )

    def current_transfer(self) -> TransferInfo | None:
        """The newest transfer the writer started, or None if there has been none."""
        next_id = self.ring.q[c.C_XFER_NEXT]
        return self.transfer(next_id - 1) if next_id > 0 else None

    @property
    def header(self) -> DadaHeader:
        """Header of the transfer of the last block seen (or of the newest transfer)."""
        if self.last_index >= 0:
            xfer_id = self.ring.q[self.ring.block_record(self.last_index) + c.B_XFER]
            return self.transfer(xfer_id).header
        info = self.current_transfer()
        if info is None:
            raise RingBufError(f"ring {self.key}: no transfer has started yet")
        return info.header


class ViewBlock:
    """A viewed block. ``data`` is a read-only zero-copy view; :meth:`verify` (run on exit of
    its ``with``) raises :class:`Overwritten` if the writer reused the block meanwhile."""

    def __init__(self, viewer: RingViewer, index: int, data: np.ndarray, obs_offset: int,
                 xfer_id: int, seq: int, missed: int):
        self.viewer = viewer
        self.index = index
        self.data = data
        self.obs_offset = obs_offset
        self.xfer_id = xfer_id
        self.nbytes = len(data)
        self.missed = missed
        self._seq = seq

    def intact(self) -> bool:
        q, rec = self.viewer.ring.q, self.viewer.ring.block_record(self.index)
        return q[rec + c.B_SEQ] == self._seq and q[rec + c.B_ABS] == self.index

    def verify(self) -> None:
        if not self.intact():
            raise Overwritten(
                f"ring {self.viewer.key}: block {self.index} was overwritten while viewed")

    def __enter__(self) -> ViewBlock:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                self.verify()
        finally:
            self.data = None  # type: ignore[assignment]
