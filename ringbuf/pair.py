"""Ring pairs (SKA PST): a data ring and a weights ring whose block i covers the same span.

Both rings have the same nbufs; every transfer has a header in each; a segment is block i of
both, handed out together with its OBS_OFFSET (see :class:`ringbuf.segment.Segment`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from ringbuf.errors import (
    EndOfData,
    Interrupted,
    RingBufError,
    RingLayoutMismatch,
    Timeout,
    WriterDied,
)
from ringbuf.header import DadaHeader
from ringbuf.layout import RingLayout
from ringbuf.reader import ReadBlock, ReadTransfer, RingReader
from ringbuf.ring import create_ring, destroy_ring
from ringbuf.segment import Segment
from ringbuf.viewer import RingViewer, ViewBlock
from ringbuf.writer import RingWriter, WriteBlock, WriteTransfer


def create_ring_pair(
    data_key: str | int, weights_key: str | int, data_layout: RingLayout,
    weights_layout: RingLayout, **options: Any,
) -> tuple[str, str]:
    """Create the data and weights rings of a pair (both or neither)."""
    if data_layout.nbufs != weights_layout.nbufs:
        raise RingLayoutMismatch(
            f"ring pair: data nbufs {data_layout.nbufs} != weights nbufs {weights_layout.nbufs}"
        )
    data = create_ring(data_key, data_layout, **options)
    try:
        weights = create_ring(weights_key, weights_layout, **options)
    except BaseException:
        destroy_ring(data)
        raise
    return data, weights


def destroy_ring_pair(data_key: str | int, weights_key: str | int) -> bool:
    removed_data = destroy_ring(data_key)
    return destroy_ring(weights_key) or removed_data


ClientT = TypeVar("ClientT", RingWriter, RingReader, RingViewer)
PairT = TypeVar("PairT", bound="_PairClient[Any]")


class _PairClient(Generic[ClientT]):
    """The same role (``client``) in the data ring and the weights ring of a pair, which must
    have the same nbufs; both are closed together (also if attaching the second fails)."""

    client: type[ClientT]

    def __init__(self, data_key: str | int, weights_key: str | int,
                 timeout: float | None = None, stop: threading.Event | None = None) -> None:
        self.data = self.client(data_key, timeout, stop)
        try:
            self.weights = self.client(weights_key, timeout, stop)
        except BaseException:
            self.data.close()
            raise
        if self.data.layout.nbufs != self.weights.layout.nbufs:
            message = (f"ring pair {self.data.key}/{self.weights.key}: nbufs differ "
                       f"({self.data.layout.nbufs} vs {self.weights.layout.nbufs})")
            self.close()
            raise RingLayoutMismatch(message)

    def close(self) -> None:
        try:
            self.data.close()
        finally:
            self.weights.close()

    def __enter__(self: PairT) -> PairT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RingPairWriter(_PairClient[RingWriter]):
    """Writes a data ring and a weights ring in step."""

    client = RingWriter

    def open_transfer(self, data_header: DadaHeader | Mapping[str, Any],
                      weights_header: DadaHeader | Mapping[str, Any],
                      obs_offset: int | None = None,
                      weights_obs_offset: int | None = None) -> PairWriteTransfer:
        return PairWriteTransfer(
            self.data.open_transfer(data_header, obs_offset),
            self.weights.open_transfer(weights_header, weights_obs_offset),
        )



class PairWriteTransfer:
    def __init__(self, data: WriteTransfer, weights: WriteTransfer) -> None:
        self.data = data
        self.weights = weights

    def open_segment(self, timeout: float | None = -1.0) -> WriteSegment:
        data = self.data.open_block(timeout)
        try:
            weights = self.weights.open_block(timeout)
        except BaseException:
            data.commit(0)
            raise
        return WriteSegment(data, weights)

    def end(self) -> None:
        try:
            self.data.end()
        finally:
            self.weights.end()

    def __enter__(self) -> PairWriteTransfer:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.data.abandon_open_blocks()
            self.weights.abandon_open_blocks()
        self.end()


class WriteSegment:
    """Block i of both rings, open for writing: ``data`` and ``weights`` writable views."""

    def __init__(self, data: WriteBlock, weights: WriteBlock) -> None:
        self.data_block = data
        self.weights_block = weights
        self.data = data.data
        self.weights = weights.data
        self.obs_offset = data.obs_offset
        self.weights_obs_offset = weights.obs_offset

    def commit(self, data_nbytes: int | None = None, weights_nbytes: int | None = None) -> None:
        """Publish both blocks (data first). Short blocks end the transfer in both rings."""
        self.data_block.commit(data_nbytes)
        self.weights_block.commit(weights_nbytes)

    def __enter__(self) -> WriteSegment:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.commit(0, 0)
        else:
            self.commit()


class RingPairReader(_PairClient[RingReader]):
    """A guaranteed reader of both rings of a pair."""

    client = RingReader

    def open_transfer(self, timeout: float | None = -1.0) -> PairReadTransfer:
        return PairReadTransfer(self.data.open_transfer(timeout), self.weights.open_transfer(timeout))



class PairReadTransfer:
    """One transfer of a pair; iterate for :class:`Segment` objects (each cleared on the next)."""

    def __init__(self, data: ReadTransfer, weights: ReadTransfer) -> None:
        self.data = data
        self.weights = weights
        self.data_header = data.header
        self.weights_header = weights.header
        self.resumed = data.resumed or weights.resumed
        self._pending_data: ReadBlock | None = None

    def segments(self) -> Iterator[Segment]:
        """Yield segments until end of data; each is cleared when the next is asked for."""
        while True:
            held = self.next_segment()
            if held is None:
                return
            try:
                yield held.segment
            finally:
                held.clear()

    __iter__ = segments

    def next_segment(self, timeout: float | None = -1.0) -> ReadSegment | None:
        """The next segment, held until its :meth:`ReadSegment.clear` (None at the end).

        Hold fewer than nbufs segments at once; clear them in the order they were read.
        """
        blocks = self._next_blocks(timeout)
        if blocks is None:
            return None
        data, weights = blocks
        return ReadSegment(data, weights, Segment(data.data, weights.data, data.obs_offset,
                                                  weights.obs_offset, self.data_header,
                                                  self.weights_header))

    def _next_blocks(self, timeout: float | None = -1.0) -> tuple[ReadBlock, ReadBlock] | None:
        ends = []
        blocks: list[ReadBlock | None] = []
        for transfer in (self.data, self.weights):
            if transfer is self.data and self._pending_data is not None:
                blocks.append(self._pending_data)  # read before a weights wait timed out
                self._pending_data = None
                continue
            try:
                blocks.append(transfer.next_block(timeout))
            except (Timeout, Interrupted):
                if blocks and blocks[0] is not None:  # keep the pair together for the retry
                    self._pending_data = blocks[0]
                raise
            except WriterDied as exc:
                blocks.append(None)
                ends.append(exc)
            except EndOfData as exc:
                blocks.append(None)
                ends.append(exc)
        if not ends:
            return blocks[0], blocks[1]  # type: ignore[return-value]
        for block in blocks:
            if block is not None:
                block.clear()
        died = [e for e in ends if isinstance(e, WriterDied)]
        if died:
            raise died[0]
        if len(ends) == 1:
            raise RingBufError("ring pair: one ring ended its transfer before the other")
        return None

    def skip(self) -> None:
        """Read and discard the rest of the transfer, both rings in step (the writer fills
        them in step, so draining one ring first could stall it on the other)."""
        try:
            for _ in self.segments():
                pass
        except WriterDied:
            pass


class ReadSegment:
    """A segment being read and held: ``segment`` until :meth:`clear` gives both blocks back."""

    def __init__(self, data: ReadBlock, weights: ReadBlock, segment: Segment) -> None:
        self._blocks = (data, weights)
        self.segment = segment
        self.index = data.index

    def clear(self) -> None:
        for block in self._blocks:
            block.clear()

    def __enter__(self) -> Segment:
        return self.segment

    def __exit__(self, *exc: object) -> None:
        self.clear()


class RingPairViewer(_PairClient[RingViewer]):
    """A viewer of both rings of a pair."""

    client = RingViewer

    def latest_segment(self, timeout: float | None = -1.0) -> PairViewSegment:
        """The most recent segment published in both rings."""
        data = self.data.latest_block(timeout)
        # the weights block of the same index is published right after the data block
        self.weights.last_index = data.index - 1
        weights = self.weights.next_block(timeout)
        if weights.index != data.index:
            raise RingBufError(f"ring pair {self.data.key}/{self.weights.key}: weights ring is at "
                               f"block {weights.index}, data ring at {data.index}")
        return PairViewSegment(data, weights, self.data.transfer(data.xfer_id).header,
                               self.weights.transfer(weights.xfer_id).header)



class PairViewSegment:
    """A viewed segment; ``segment`` is the :class:`Segment`; verified on ``with`` exit."""

    def __init__(self, data: ViewBlock, weights: ViewBlock, data_header: DadaHeader,
                 weights_header: DadaHeader) -> None:
        self.data_block = data
        self.weights_block = weights
        self.xfer_id = data.xfer_id
        self.index = data.index
        self.segment = Segment(data.data, weights.data, data.obs_offset, weights.obs_offset,
                               data_header, weights_header)

    def verify(self) -> None:
        self.data_block.verify()
        self.weights_block.verify()

    def __enter__(self) -> Segment:
        return self.segment

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.verify()
