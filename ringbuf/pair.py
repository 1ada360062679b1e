"""Ring pairs (SKA PST): a data ring and a weights ring whose block i covers the same span.

Both rings have the same nbufs; every transfer has a header in each; a segment is block i of
both, handed out together with its OBS_OFFSET (see :class:`ringbuf.segment.Segment`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import numpy as np

from ringbuf import control as c
from ringbuf.errors import (
    EndOfData,
    Interrupted,
    Overwritten,
    PairOutOfStep,
    RingBufError,
    RingLayoutMismatch,
    Timeout,
    WriterDied,
)
from ringbuf.header import DadaHeader
from ringbuf.layout import RingLayout
from ringbuf.reader import ReadBlock, ReadTransfer, RingReader
from ringbuf.ring import WAIT_SLICE_S, check_existing, create_ring, destroy_ring, ensure_ring
from ringbuf.segment import Segment
from ringbuf.status import snapshot
from ringbuf.viewer import RingViewer, TransferInfo, ViewBlock
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


def ensure_ring_pair(
    data_key: str | int, weights_key: str | int, data_layout: RingLayout,
    weights_layout: RingLayout, **options: Any,
) -> tuple[bool, bool]:
    """Create whichever ring of the pair is missing; an existing ring must have its layout
    (else :class:`RingLayoutMismatch`, nothing changed). Returns which rings were created."""
    if data_layout.nbufs != weights_layout.nbufs:
        raise RingLayoutMismatch(
            f"ring pair: data nbufs {data_layout.nbufs} != weights nbufs {weights_layout.nbufs}"
        )
    for key, layout in ((data_key, data_layout), (weights_key, weights_layout)):
        check_existing(key, layout)  # refuse a mismatch before making anything
    made_data = ensure_ring(data_key, data_layout, **options)
    try:
        made_weights = ensure_ring(weights_key, weights_layout, **options)
    except BaseException:
        if made_data:
            destroy_ring(data_key)
        raise
    return made_data, made_weights


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
        self.data: ClientT = self.client(data_key, timeout, stop)
        try:
            self.weights: ClientT = self.client(weights_key, timeout, stop)
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
    _transfer: PairReadTransfer | None = None

    @property
    def stop(self) -> threading.Event | None:
        """The event that interrupts every wait of both rings (:class:`Interrupted`)."""
        return self.data.stop

    @stop.setter
    def stop(self, event: threading.Event | None) -> None:
        self.data.stop = self.weights.stop = event

    def fill(self) -> dict[str, dict[str, Any]]:
        """How full each ring is for this reader (``full_blocks``: filled, not yet cleared by
        its slot), for a daemon's status; an unreadable ring gives ``error`` instead."""
        fill: dict[str, dict[str, Any]] = {}
        for name, reader in (("data", self.data), ("weights", self.weights)):
            try:
                snap = snapshot(reader.key)
            except RingBufError as exc:
                fill[name] = {"key": reader.key, "error": str(exc)}
                continue
            fill[name] = {"key": reader.key, "nbufs": snap["nbufs"],
                          "full_blocks": snap["readers"][reader.slot]["lag_blocks"],
                          "writer_alive": snap["writer"]["alive"]}
        return fill

    def open_transfer(self, timeout: float | None = -1.0) -> PairReadTransfer:
        """Wait for the next transfer of both rings.

        The rest of an unfinished previous transfer is drained first, both rings in step,
        after giving back what it held.
        """
        if self._transfer is not None and not self._transfer.finished:
            self._transfer.drain()
        self._transfer = PairReadTransfer(self.data.open_transfer(timeout),
                                          self.weights.open_transfer(timeout))
        return self._transfer


class PairReadTransfer:
    """One transfer of a pair: iterate for :class:`Segment` objects (each cleared on the
    next), or hold segments with :meth:`next_segment` and give them back with
    :meth:`clear_held` (a reader that dies holding them has them delivered to its successor).

    A wait that times out or is stopped never splits a pair: the block already read from the
    data ring is kept and paired on the next call.
    """

    def __init__(self, data: ReadTransfer, weights: ReadTransfer) -> None:
        self.data = data
        self.weights = weights
        self.data_header = data.header
        self.weights_header = weights.header
        self.resumed = data.resumed or weights.resumed
        self._pending_data: ReadBlock | None = None
        self._held: deque[ReadSegment] = deque()  # handed out by next_segment, in read order
        self._unpaired: list[ReadBlock] = []  # a block whose ring ran on past the other's end

    @property
    def finished(self) -> bool:
        """Both rings have reached the end of this transfer."""
        return self.data.finished and self.weights.finished

    @property
    def held(self) -> int:
        """Segments handed out by :meth:`next_segment` and not cleared yet."""
        return sum(not seg.cleared for seg in self._held)

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
        """The next segment, held until it (or :meth:`clear_held`) clears it; None at the end.

        Hold fewer than nbufs segments at once and clear them in the order they were read.
        Raises :class:`WriterDied` (after every committed block), :class:`Timeout`,
        :class:`Interrupted`, or :class:`PairOutOfStep` if one ring ended before the other.
        """
        while self._held and self._held[0].cleared:
            self._held.popleft()
        blocks = self._next_blocks(timeout)
        if blocks is None:
            return None
        data, weights = blocks
        held = ReadSegment(data, weights, Segment(data.data, weights.data, data.obs_offset,
                                                  weights.obs_offset, self.data_header,
                                                  self.weights_header))
        self._held.append(held)
        return held

    def clear_held(self) -> None:
        """Give back every held segment (and any unpaired block), in the order read."""
        held, self._held = self._held, deque()
        for seg in held:
            seg.clear()
        unpaired, self._unpaired = self._unpaired, []
        for block in unpaired:
            block.clear()

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
            except EndOfData as exc:  # WriterDied too
                blocks.append(None)
                ends.append(exc)
        if not ends:
            return blocks[0], blocks[1]  # type: ignore[return-value]
        for block in blocks:
            if block is not None:
                self._unpaired.append(block)
        if not self.held:  # no earlier segment waits to be cleared first: give it back now
            self.clear_held()
        died = [e for e in ends if isinstance(e, WriterDied)]
        if died:
            raise died[0]
        if len(ends) == 1:
            raise PairOutOfStep(f"ring pair {self.data.reader.key}/{self.weights.reader.key}: "
                                "one ring ended its transfer before the other")
        return None

    def drain(self, on_wait: Callable[[], None] | None = None,
              on_segment: Callable[[Segment], None] | None = None) -> None:
        """Give back what is held, then read and discard the rest of the transfer.

        Both rings are read in step (the writer fills them in step, so draining one ring
        first could stall it on the other). ``on_segment`` sees each segment before it is
        cleared. A wait that times out calls ``on_wait`` and waits again (without
        ``on_wait`` the :class:`Timeout` propagates). Ends quietly at the end of data, when
        the writer died, or when the rings are out of step; :class:`Interrupted` propagates
        and the drain can be resumed by calling it again.
        """
        self.clear_held()
        try:
            while True:
                try:
                    held = self.next_segment()
                except Timeout:
                    if on_wait is None:
                        raise
                    on_wait()
                    continue
                if held is None:
                    return
                try:
                    if on_segment is not None:
                        on_segment(held.segment)
                finally:
                    held.clear()
        except (WriterDied, PairOutOfStep):
            pass
        finally:
            self.clear_held()

    def skip(self) -> None:
        """Read and discard the rest of the transfer (:meth:`drain` without callbacks)."""
        self.drain()


class ReadSegment:
    """A segment being read and held: ``segment`` until :meth:`clear` gives both blocks back."""

    def __init__(self, data: ReadBlock, weights: ReadBlock, segment: Segment) -> None:
        self._blocks = (data, weights)
        self.segment = segment
        self.index = data.index

    @property
    def cleared(self) -> bool:
        return self._blocks[0].data is None and self._blocks[1].data is None

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
        return self._with_weights(self.data.latest_block(timeout), timeout)

    def next_segment(self, timeout: float | None = -1.0) -> PairViewSegment:
        """The segment after the last one seen (the oldest still in the rings if lapped)."""
        return self._with_weights(self.data.next_block(timeout), timeout)

    def _with_weights(self, data: ViewBlock, timeout: float | None) -> PairViewSegment:
        # the weights block of the same index is published right after the data block
        self.weights.last_index = data.index - 1
        try:
            weights = self.weights.next_block(timeout)
        except Timeout:
            self.data.last_index = data.index - 1  # not seen until both blocks are
            raise
        if weights.index != data.index:
            raise RingBufError(f"ring pair {self.data.key}/{self.weights.key}: weights ring is at "
                               f"block {weights.index}, data ring at {data.index}")
        return PairViewSegment(data, weights, self.data.transfer(data.xfer_id).header,
                               self.weights.transfer(weights.xfer_id).header)

    def open_transfer(self, timeout: float | None = -1.0) -> PairViewTransfer:
        """The newest transfer of the pair (waiting for one to start), to follow."""
        timeout = self.data.timeout if timeout == -1.0 else timeout
        qd, qw = self.data.ring.q, self.weights.ring.q
        self.data.ring.wait(None, lambda: qd[c.C_XFER_NEXT] > 0, timeout, self.data.stop,
                            lambda: None, "a transfer to start")
        info = self.data.transfer(qd[c.C_XFER_NEXT] - 1)
        self.weights.ring.wait(None, lambda: qw[c.C_XFER_NEXT] > info.xfer_id, timeout,
                               self.data.stop, lambda: None,
                               f"transfer {info.xfer_id} of the weights ring to start")
        return PairViewTransfer(self, info, self.weights.transfer(info.xfer_id).header)


class PairViewTransfer:
    """One transfer of a pair as a viewer follows it (a :class:`SegmentProducer`).

    :meth:`segments` yields a private copy of each segment of the transfer in order, checked
    after copying; segments the writer overwrote first are skipped and counted in
    ``missed_segments``. It ends with the transfer (also when its writer died).
    """

    def __init__(self, viewer: RingPairViewer, info: TransferInfo,
                 weights_header: DadaHeader) -> None:
        self.viewer = viewer
        self.xfer_id = info.xfer_id
        self.start_block = info.start_block
        self.data_header = info.header
        self.weights_header = weights_header
        self.missed_segments = 0

    def segments(self) -> Iterator[Segment]:
        """Copies of the transfer's segments; Timeout after the viewer's timeout of silence."""
        viewer, data = self.viewer, self.viewer.data
        data.last_index = max(data.last_index, self.start_block - 1)
        quiet_since = time.monotonic()
        while True:
            try:
                info = data.transfer(self.xfer_id)  # marks it aborted if its writer died
            except RingBufError:  # its header slot was reused: long over
                return
            if info.end_block >= 0 and data.last_index + 1 >= info.end_block:
                return
            try:
                view = viewer.next_segment(timeout=WAIT_SLICE_S)
            except Timeout:
                if data.timeout is not None and time.monotonic() - quiet_since >= data.timeout:
                    raise Timeout(f"ring pair {data.key}/{viewer.weights.key}: no segment of "
                                  f"transfer {self.xfer_id} for {data.timeout:g} s") from None
                continue
            except Overwritten as exc:
                self.missed_segments += exc.missed_blocks
                continue
            quiet_since = time.monotonic()
            if view.xfer_id != self.xfer_id:  # lapped past the end of the transfer
                return
            seg = view.segment
            copy = Segment(np.array(seg.data), np.array(seg.weights), seg.obs_offset,
                           seg.weights_obs_offset, seg.data_header, seg.weights_header)
            if not (view.data_block.intact() and view.weights_block.intact()):
                self.missed_segments += 1
                continue
            self.missed_segments += view.data_block.missed
            if copy.data.size:  # a 0-byte final block only marks the end
                yield copy

    __iter__ = segments


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
