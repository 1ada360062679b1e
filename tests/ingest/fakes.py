"""Test doubles at the edges of the receive path: spead2 in-process queues instead of UDP
sockets, and numpy arrays instead of a ring pair. They plug into the product's seams
(:class:`services.ingest.receiver.Transport`, :class:`services.ingest.sink.BlockSink`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import spead2
import spead2.recv as recv

from ringbuf.errors import RingBufError
from ringbuf.header import DadaHeader
from services.ingest.receiver import end_packets


class InprocTransport:
    """Stream i reads in-process queue i (tests)."""

    def __init__(self, queues: list[spead2.InprocQueue]) -> None:
        self.queues = queues

    def add(self, index: int, member: recv.ChunkStreamGroupMember) -> None:
        member.add_inproc_reader(self.queues[index])

    def inject_end(self, index: int) -> None:
        for packet in end_packets():
            self.queues[index].add_packet(packet)


@dataclass
class MemoryTransfer:
    data_header: DadaHeader
    weights_header: DadaHeader
    data: list[np.ndarray] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    ended: bool = False


class MemorySegment:
    """One open block of a :class:`MemorySink`; committed blocks keep only their valid bytes."""

    def __init__(self, sink: MemorySink, transfer: MemoryTransfer) -> None:
        self.sink, self.transfer = sink, transfer
        # stale contents on purpose: the assembler must overwrite every byte
        self.data = np.full(sink.data_bufsz, 0xA5, np.uint8)
        self.weights = np.full(sink.weights_bufsz, 0xA5, np.uint8)
        self.committed = False

    def commit(self, data_nbytes: int | None = None, weights_nbytes: int | None = None) -> None:
        if self.committed:
            return
        if self.sink.open[0] is not self:
            raise RingBufError("memory sink: segments must be committed in opening order")
        if self.transfer.ended:
            raise RingBufError("memory sink: segment committed after the end of its transfer")
        self.sink.open.pop(0)
        self.committed = True
        nd = self.sink.data_bufsz if data_nbytes is None else data_nbytes
        nw = self.sink.weights_bufsz if weights_nbytes is None else weights_nbytes
        if nd or nw:
            self.transfer.data.append(self.data[:nd].copy())
            self.transfer.weights.append(self.weights[:nw].copy())
        if nd < self.sink.data_bufsz or nw < self.sink.weights_bufsz:
            self.transfer.ended = True  # a short block ends the transfer

    def __enter__(self) -> MemorySegment:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.commit(0, 0)
        else:
            self.commit()


class MemorySink:
    """Keeps every committed block in memory (in-process tests of the receive path)."""

    def __init__(self, data_bufsz: int, weights_bufsz: int) -> None:
        self.data_bufsz = data_bufsz
        self.weights_bufsz = weights_bufsz
        self.blocked_s = 0.0
        self.transfers: list[MemoryTransfer] = []
        self.open: list[MemorySegment] = []

    def begin(self, data_header: DadaHeader, weights_header: DadaHeader) -> None:
        self.transfers.append(MemoryTransfer(data_header, weights_header))

    def open_segment(self) -> MemorySegment:
        if self.transfers[-1].ended:
            raise RingBufError("memory sink: the transfer has ended (short block)")
        seg = MemorySegment(self, self.transfers[-1])
        self.open.append(seg)
        return seg

    def end(self) -> None:
        if self.open:
            raise RingBufError("memory sink: cannot end a transfer with uncommitted segments")
        self.transfers[-1].ended = True
