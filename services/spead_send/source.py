"""Where the segments come from: a guaranteed reader or a viewer of the ring pair.

Both hand out one transfer at a time (:meth:`open_transfer` waits up to :data:`POLL_S`), whose
:meth:`segments` yields each segment in order; a segment stays valid until the next is asked
for. The reader sees every block (and gates the writer while it sends); the viewer never
slows the writer, yields private copies, and counts in ``skipped`` the segments the writer
overwrote before they could be copied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from ringbuf import (
    DadaHeader,
    PairReadTransfer,
    PairViewTransfer,
    RingBufError,
    RingPairReader,
    RingPairViewer,
    Segment,
    Timeout,
)

#: Longest single ring wait: the scan loop reports progress between waits.
POLL_S = 0.5


class OpenTransfer(Protocol):
    data_header: DadaHeader
    weights_header: DadaHeader
    skipped: int

    def segments(self, on_wait: Callable[[], None]) -> Iterator[Segment]: ...

    def discard(self, on_wait: Callable[[], None]) -> None: ...


class PairSource(Protocol):
    data_bufsz: int

    def open_transfer(self, stop: threading.Event) -> OpenTransfer | None: ...

    def close(self) -> None: ...


class ReaderTransfer:
    """A transfer read by a guaranteed reader."""

    skipped = 0

    def __init__(self, transfer: PairReadTransfer) -> None:
        self.transfer = transfer
        self.data_header = transfer.data_header
        self.weights_header = transfer.weights_header

    def segments(self, on_wait: Callable[[], None]) -> Iterator[Segment]:
        """Segments until the end of data; each is cleared when the next is asked for.

        WriterDied, PairOutOfStep and Interrupted (a stop) propagate.
        """
        while True:
            try:
                held = self.transfer.next_segment(timeout=POLL_S)
            except Timeout:
                on_wait()
                continue
            if held is None:
                return
            try:
                yield held.segment
            finally:
                held.clear()

    def discard(self, on_wait: Callable[[], None]) -> None:
        """Read and drop the rest (so the writer never waits on a transfer not sent)."""
        self.transfer.drain(on_wait=on_wait)


class ReaderSource:
    """A guaranteed reader of the ring pair."""

    def __init__(self, data_key: str, weights_key: str) -> None:
        self.pair = RingPairReader(data_key, weights_key, timeout=POLL_S)
        self.data_bufsz = self.pair.data.layout.bufsz

    def open_transfer(self, stop: threading.Event) -> OpenTransfer | None:
        self.pair.stop = stop
        try:
            return ReaderTransfer(self.pair.open_transfer(timeout=POLL_S))
        except Timeout:
            return None

    def close(self) -> None:
        self.pair.close()


class ViewerTransfer:
    """A transfer followed by a viewer (copies; overwritten segments skipped and counted).

    A segment's place in the transfer is its OBS_OFFSET over the block size (every block but
    a transfer's last is full), so ``skipped`` counts the gaps between the segments yielded,
    and at the end the blocks after the last one yielded.
    """

    def __init__(self, viewer: RingPairViewer, xfer_id: int, weights_header: DadaHeader) -> None:
        self.viewer = viewer
        self.xfer_id = xfer_id
        self.info = viewer.data.transfer(xfer_id)
        self.data_header = self.info.header
        self.weights_header = weights_header
        self.skipped = 0
        self._bufsz = viewer.data.layout.bufsz
        self._origin = self.info.header.get_int("OBS_OFFSET", 0)
        self._last = -1  # place of the last segment yielded

    def segments(self, on_wait: Callable[[], None]) -> Iterator[Segment]:
        """Copies of the segments until the transfer ends (also when its writer died)."""
        while True:
            follow = PairViewTransfer(self.viewer, self.info, self.weights_header)
            try:
                for seg in follow.segments():
                    place = (seg.obs_offset - self._origin) // self._bufsz
                    self.skipped += max(0, place - self._last - 1)
                    self._last = max(self._last, place)
                    yield seg
            except Timeout:  # a quiet spell: report progress and carry on where it left off
                on_wait()
                continue
            except RingBufError as exc:
                if type(exc) is not RingBufError:  # Interrupted (a stop), EndOfData, ...
                    raise
                # the writer overwrote the weights block between viewing the data block and
                # viewing its weights block (the pair viewer reports that as a plain error):
                # a gap, counted with the next segment
                continue
            self._count_tail()
            return

    def _count_tail(self) -> None:
        try:
            info = self.viewer.data.transfer(self.xfer_id)
        except RingBufError:  # its header slot was reused: long over, the tail unknown
            return
        if info.end_block >= 0:
            self.skipped += max(0, info.end_block - info.start_block - self._last - 1)

    def discard(self, on_wait: Callable[[], None]) -> None:
        """Nothing to give back: a viewer holds no blocks."""


class ViewerSource:
    """A viewer of the ring pair: follows the newest transfer, never slows the writer.

    Transfers already over when it attaches are history; an open one is followed.
    """

    def __init__(self, data_key: str, weights_key: str) -> None:
        self.viewer = RingPairViewer(data_key, weights_key, timeout=POLL_S)
        self.data_bufsz = self.viewer.data.layout.bufsz
        info = self.viewer.data.current_transfer()
        self.last = info.xfer_id if info is not None and info.state != "open" else -1

    def open_transfer(self, stop: threading.Event) -> OpenTransfer | None:
        self.viewer.data.stop = self.viewer.weights.stop = stop
        info = self.viewer.data.current_transfer()
        if info is not None and info.xfer_id > self.last:
            try:
                weights_header = self.viewer.weights.transfer(info.xfer_id).header
            except RingBufError:  # the weights ring has not started it yet
                weights_header = None
            if weights_header is not None:
                self.last = info.xfer_id
                return ViewerTransfer(self.viewer, info.xfer_id, weights_header)
        stop.wait(POLL_S / 5)
        return None

    def close(self) -> None:
        self.viewer.close()
