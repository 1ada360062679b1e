"""The SPEAD side: one UDP stream (a substream per port) and a transfer sent on it.

Per transfer, on every stream: a start heap, a descriptor heap, a metadata heap (in that
order, as docs/icd.md asks), then the data heaps of each ring segment, then an end heap.
Sends are synchronous (the rate limiter paces them). A send that fails (an OSError from
the socket) is counted in ``send_errors_total``, logged (once per transfer) and skipped:
the receiver sees the missing heaps as lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import spead2
import spead2.send

from ringbuf import Segment
from services.common.errors import ServiceError
from services.formats import spead_send
from services.spead_send.config import SpeadSendScanConfig
from services.spead_send.counters import SpeadSendCounters
from services.spead_send.profiles import GROUP_HEAPS, Profile, SendShape

logger = logging.getLogger(__name__)


class SendError(ServiceError):
    """The destination cannot be sent to (bad address, interface, ...)."""


class StreamSender:
    """Sends transfers to DEST_HOST:DEST_PORT.. as configured by configure_scan."""

    def __init__(self, config: SpeadSendScanConfig, counters: SpeadSendCounters) -> None:
        self.config = config
        self.counters = counters
        self.shape = SendShape(config.nstreams, config.immediate_byte_order, config.hardware_id)
        ports = [config.dest_port + i for i in range(config.nstreams)]
        try:
            self.stream = spead_send.udp_stream(
                spead2.send.UdpStream, [(config.dest_host, port) for port in ports],
                config.max_packet_size, config.rate,
                max_heaps=GROUP_HEAPS + 2 * config.nstreams + 8,
                buffer_size=config.buffer_bytes, interface_address=config.interface_address,
                ttl=config.ttl)
        except (OSError, ValueError) as exc:
            raise SendError(f"cannot send to {config.dest_host}:{config.dest_port}: "
                            f"{exc}") from None
        # spead2's stubs say None; both return the bytes sent
        self._send_heaps = cast(Callable[..., int], self.stream.send_heaps)
        self._send_heap = cast(Callable[..., int], self.stream.send_heap)
        self._failed = False

    def close(self) -> None:
        """Release the stream (its socket)."""
        self.__dict__.pop("stream", None)
        self.__dict__.pop("_send_heaps", None)
        self.__dict__.pop("_send_heap", None)

    def begin(self, profile: Profile) -> None:
        """Start heap, descriptor heap and metadata heap on every stream."""
        self._failed = False
        group = profile.descriptors()
        self._control = group
        for heap in spead_send.control_heaps(group, profile.metadata()):
            self._control_heap(heap)

    def send_segment(self, profile: Profile, seg: Segment) -> None:
        """The data heaps of one ring segment."""
        c = self.counters
        complete = True
        for refs, nheaps in profile.load(seg):
            try:
                c.bytes_sent_total += self._send_heaps(refs, spead2.send.GroupMode.SERIAL)
            except OSError as exc:
                self._error(exc)
                complete = False
                continue
            c.heaps_sent_total += nheaps
            c.data_heaps_sent_total += nheaps
        if complete:
            c.blocks_sent_total += 1

    def end(self) -> None:
        """An end-of-stream heap on every stream."""
        self._control_heap(self._control.get_end())

    def _control_heap(self, heap: spead2.send.Heap) -> None:
        c = self.counters
        for i in range(self.config.nstreams):
            try:
                c.bytes_sent_total += self._send_heap(heap, substream_index=i)
            except OSError as exc:
                self._error(exc)
                continue
            c.heaps_sent_total += 1

    def _error(self, exc: OSError) -> None:
        self.counters.send_errors_total += 1
        if not self._failed:
            self._failed = True
            logger.warning("send to %s:%d failed: %s (further failures of this transfer are "
                           "only counted)", self.config.dest_host, self.config.dest_port, exc)
