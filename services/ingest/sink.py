"""Where assembled blocks go: a ring pair, or numpy arrays (in-process tests).

A sink receives one transfer at a time: ``begin(data_header, weights_header)``, then
``segment()`` context managers (each yields writable uint8 ``data`` and ``weights`` views of one
block of each stream; an exception inside commits nothing), then ``end()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ringbuf import RingPairWriter
from ringbuf.errors import RingLayoutMismatch
from ringbuf.header import DadaHeader
from ringbuf.pair import PairWriteTransfer


@dataclass
class SegmentView:
    data: np.ndarray
    weights: np.ndarray


class BlockSink(Protocol):
    data_bufsz: int
    weights_bufsz: int
    blocked_s: float  # seconds spent waiting for the last segment

    def begin(self, data_header: DadaHeader, weights_header: DadaHeader) -> None: ...

    def segment(self) -> AbstractContextManager[SegmentView]: ...

    def end(self) -> None: ...


class RingPairSink:
    """Writes transfers into an attached :class:`ringbuf.RingPairWriter`."""

    def __init__(self, writer: RingPairWriter, stop: threading.Event | None = None) -> None:
        self.writer = writer
        self.stop = stop
        self.data_bufsz = writer.data.layout.bufsz
        self.weights_bufsz = writer.weights.layout.bufsz
        self.blocked_s = 0.0
        self._transfer: PairWriteTransfer | None = None

    def begin(self, data_header: DadaHeader, weights_header: DadaHeader) -> None:
        self._transfer = self.writer.open_transfer(data_header, weights_header)

    @contextmanager
    def segment(self) -> Iterator[SegmentView]:
        assert self._transfer is not None, "segment() outside a transfer"
        started = time.monotonic()
        with self._transfer.open_segment(None) as seg:
            self.blocked_s = time.monotonic() - started
            yield SegmentView(seg.data, seg.weights)

    def end(self) -> None:
        if self._transfer is not None:
            transfer, self._transfer = self._transfer, None
            transfer.end()


@dataclass
class MemoryTransfer:
    data_header: DadaHeader
    weights_header: DadaHeader
    data: list[np.ndarray] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    ended: bool = False


class MemorySink:
    """Keeps every block in memory (in-process tests of the receive path)."""

    def __init__(self, data_bufsz: int, weights_bufsz: int) -> None:
        self.data_bufsz = data_bufsz
        self.weights_bufsz = weights_bufsz
        self.blocked_s = 0.0
        self.transfers: list[MemoryTransfer] = []

    def begin(self, data_header: DadaHeader, weights_header: DadaHeader) -> None:
        self.transfers.append(MemoryTransfer(data_header, weights_header))

    @contextmanager
    def segment(self) -> Iterator[SegmentView]:
        # stale contents on purpose: the assembler must overwrite every byte
        view = SegmentView(np.full(self.data_bufsz, 0xA5, np.uint8),
                           np.full(self.weights_bufsz, 0xA5, np.uint8))
        yield view
        self.transfers[-1].data.append(view.data)
        self.transfers[-1].weights.append(view.weights)

    def end(self) -> None:
        self.transfers[-1].ended = True


def check_block_sizes(sink: BlockSink, data_bytes: int, weights_bytes: int, what: str) -> None:
    """The ring blocks must hold exactly one assembled block (a short block ends a transfer)."""
    if sink.data_bufsz != data_bytes or sink.weights_bufsz != weights_bytes:
        raise RingLayoutMismatch(
            f"{what}: needs data blocks of {data_bytes} bytes and weights blocks of "
            f"{weights_bytes} bytes, the rings have {sink.data_bufsz} and {sink.weights_bufsz}")
