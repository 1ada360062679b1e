"""Where assembled blocks go: :class:`RingPairSink` writes a ring pair; anything with the
:class:`BlockSink` shape will do (the tests keep blocks in memory).

A sink receives one transfer at a time: ``begin(data_header, weights_header)``, then
``open_segment()`` (an :class:`OpenSegment`: writable uint8 ``data`` and ``weights`` views of
one block of each stream), then ``end()``. Several segments may be open at once; they are
committed in the order they were opened with ``commit(data_nbytes, weights_nbytes)`` (default:
full blocks). As in the ring, a short segment (fewer bytes than a block) ends the transfer;
``commit(0, 0)`` throws a segment away and ends the transfer too. Used as a context manager a
segment commits full on success and 0 bytes on an exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from ringbuf import (
    DadaHeader,
    PairWriteTransfer,
    RingPairWriter,
    Timeout,
    WriteBlock,
    WriteSegment,
    WriteTransfer,
)
from ringbuf.errors import RingLayoutMismatch


class OpenSegment(Protocol):
    data: np.ndarray
    weights: np.ndarray

    def commit(self, data_nbytes: int | None = None, weights_nbytes: int | None = None) -> None: ...

    def __enter__(self) -> OpenSegment: ...

    def __exit__(self, exc_type: object, *exc: object) -> None: ...


class BlockSink(Protocol):
    data_bufsz: int
    weights_bufsz: int
    blocked_s: float  # seconds spent waiting for the last segment opened

    def begin(self, data_header: DadaHeader, weights_header: DadaHeader) -> None: ...

    def open_segment(self) -> OpenSegment: ...

    def end(self) -> None: ...


#: Longest single wait for a free ring block before the sink reports progress and waits again.
WAIT_SLICE_S = 0.5


class RingPairSink:
    """Writes transfers into an attached :class:`ringbuf.RingPairWriter`.

    Every ring wait of the writer (a free block, a free header slot) is abandoned with
    :class:`ringbuf.Interrupted` as soon as ``stop`` is set, so a reader that stops reading
    never turns a stop into a hang. While waiting for a free block, ``on_wait`` is called
    every :data:`WAIT_SLICE_S` (the service reports progress from it).
    """

    def __init__(self, writer: RingPairWriter, stop: threading.Event | None = None,
                 on_wait: Callable[[], None] | None = None) -> None:
        self.writer = writer
        for ring in (writer.data, writer.weights):
            ring.stop = stop
        self.on_wait = on_wait
        self.data_bufsz = writer.data.layout.bufsz
        self.weights_bufsz = writer.weights.layout.bufsz
        self.blocked_s = 0.0
        self._transfer: PairWriteTransfer | None = None

    def begin(self, data_header: DadaHeader, weights_header: DadaHeader) -> None:
        self._transfer = self.writer.open_transfer(data_header, weights_header)

    def open_segment(self) -> OpenSegment:
        """The next block of both rings; each ring is waited for in slices, so a slice that
        ends between the two blocks never splits the pair."""
        transfer = self._transfer
        assert transfer is not None, "open_segment() outside a transfer"
        started = time.monotonic()
        data = self._open_block(transfer.data)
        try:
            weights = self._open_block(transfer.weights)
        except BaseException:
            data.commit(0)
            raise
        self.blocked_s = time.monotonic() - started
        return WriteSegment(data, weights)

    def _open_block(self, transfer: WriteTransfer) -> WriteBlock:
        while True:
            try:
                return transfer.open_block(WAIT_SLICE_S)
            except Timeout:
                if self.on_wait is not None:
                    self.on_wait()

    def end(self) -> None:
        if self._transfer is not None:
            transfer, self._transfer = self._transfer, None
            transfer.end()


def check_block_sizes(sink: BlockSink, data_bytes: int, weights_bytes: int, what: str) -> None:
    """The ring blocks must hold exactly one assembled block (a short block ends a transfer)."""
    if sink.data_bufsz != data_bytes or sink.weights_bufsz != weights_bytes:
        raise RingLayoutMismatch(
            f"{what}: needs data blocks of {data_bytes} bytes and weights blocks of "
            f"{weights_bytes} bytes, the rings have {sink.data_bufsz} and {sink.weights_bufsz}")
