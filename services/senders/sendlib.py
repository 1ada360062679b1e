"""Shared sender machinery: pre-built spead2 heaps sent in rate-limited batches.

A :class:`HeapBatches` owns ``nslots`` slots; slot ``j`` holds one heap per substream (port),
built once with immediates that are 0-d views of a ``'>u8'`` array and payloads that are
views of numpy arrays, so refilling the arrays in place changes what is sent without
rebuilding heaps. Slots are reused only after their previous send has completed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import spead2
import spead2.send
import spead2.send.asyncio

from ringbuf.errors import HeaderError
from services.formats import spead_send

logger = logging.getLogger(__name__)


def make_stream(host: str, ports: Sequence[int], max_packet_size: int, rate: float,
                max_heaps: int, buffer_size: int = 4 << 20, interface_address: str = "",
                ttl: int = 1) -> spead2.send.asyncio.UdpStream:
    """One asyncio UDP stream with a substream per port (:func:`spead_send.udp_stream`)."""
    return make_stream_to([(host, port) for port in ports], max_packet_size, rate, max_heaps,
                          buffer_size, interface_address, ttl)


def make_stream_to(endpoints: Sequence[tuple[str, int]], max_packet_size: int, rate: float,
                   max_heaps: int, buffer_size: int = 4 << 20, interface_address: str = "",
                   ttl: int = 1) -> spead2.send.asyncio.UdpStream:
    """One asyncio UDP stream with a substream per ``(host, port)`` endpoint."""
    return spead_send.udp_stream(spead2.send.asyncio.UdpStream, endpoints, max_packet_size,
                                 rate, max_heaps, buffer_size, interface_address, ttl)


class HeapBatches:
    """Slots of pre-built heap lists sent with ``async_send_heaps`` (round robin over ports)."""

    def __init__(self, stream: spead2.send.asyncio.UdpStream,
                 slots: list[spead2.send.HeapReferenceList]) -> None:
        self.stream = stream
        self.slots = slots
        self.futures: list[asyncio.Future | None] = [None] * len(slots)
        self.heaps_sent = 0
        self.bytes_sent = 0

    async def wait_slot(self, j: int) -> None:
        """Wait until slot ``j`` may be refilled."""
        future = self.futures[j]
        if future is not None:
            self.bytes_sent += await future
            self.futures[j] = None

    def send_slot(self, j: int, heaps: int) -> None:
        self.futures[j] = self.stream.async_send_heaps(
            self.slots[j], spead2.send.GroupMode.ROUND_ROBIN)
        self.heaps_sent += heaps

    async def drain(self) -> None:
        for j in range(len(self.slots)):
            await self.wait_slot(j)


def control_heaps(ig: spead2.send.ItemGroup, meta_values: dict[str, object]) -> list:
    """Start heap, descriptor heap, metadata heap (in that order)."""
    return spead_send.control_heaps(
        ig, spead_send.metadata_heap([(ig[name], value) for name, value in meta_values.items()]))


def parse_pairs(text: str, key: str, form: str) -> set[tuple[int, int]]:
    """``"a:b,c:d"`` as ``{(a, b), (c, d)}`` (HeaderError naming ``key`` and ``form``,
    e.g. ``'heap:packet'``, for a part that is not two integers)."""
    pairs = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, second = part.partition(":")
        try:
            pairs.add((int(first), int(second)))
        except ValueError:
            raise HeaderError(f"{key}: {part!r} is not '{form}'") from None
    return pairs
