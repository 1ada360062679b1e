"""Sending SPEAD-64-48 heaps: the UDP stream, item declarations and heaps whose values are refilled.

Shared by the senders (``services/senders``: emu-send, beam-send) and svc-spead-send
(``services/spead_send``), which may not import each other.

A data heap is built once with item values that are views of numpy staging arrays
(immediates: 0-d views of a ``'>u8'`` array), so refilling the arrays in place changes what
the next send carries without rebuilding heaps. Data heaps repeat their item pointers in
every packet (the ICD asks for the placement immediates in every packet).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import spead2
import spead2.send

from services.formats import cbf_sdp, pst

FLAVOUR = cbf_sdp.FLAVOUR
#: The format of a 48-bit immediate item (SPEAD-64-48).
IMMEDIATE = [("u", FLAVOUR.heap_address_bits)]

S = TypeVar("S")


def udp_stream(stream_class: Callable[..., S], endpoints: Iterable[tuple[str, int]],
               max_packet_size: int, rate: float, max_heaps: int, buffer_size: int,
               interface_address: str = "", ttl: int = 1) -> S:
    """One UDP stream with a substream per ``(host, port)`` endpoint, sharing one rate limiter
    (bytes/s, 0 = none).

    ``stream_class`` is ``spead2.send.UdpStream`` or ``spead2.send.asyncio.UdpStream``. To a
    multicast group (the first endpoint's host), packets go out with ``ttl`` through
    ``interface_address`` (the kernel's choice when empty). OSError if the socket cannot be
    set up.
    """
    config = spead2.send.StreamConfig(max_packet_size=max_packet_size, rate=rate,
                                      max_heaps=max_heaps)
    endpoints = list(endpoints)
    pool = spead2.ThreadPool(1)
    if not ipaddress.ip_address(endpoints[0][0]).is_multicast:
        return stream_class(pool, endpoints, config, buffer_size)
    if interface_address:
        return stream_class(pool, endpoints, config, buffer_size, ttl=ttl,
                            interface_address=interface_address)
    return stream_class(pool, endpoints, config, buffer_size, ttl=ttl)


class AddressedItem(spead2.Item):
    """An item always sent in the payload, even when it would fit in an immediate."""

    def allow_immediate(self) -> bool:  # type: ignore[override]  # a method at run time
        return False


def immediate(item_id: int, name: str, description: str = "") -> spead2.Item:
    """A 48-bit unsigned immediate item."""
    return spead2.Item(item_id, name, description or name, (), format=IMMEDIATE)


def add_immediate(ig: spead2.send.ItemGroup, item_id: int, name: str) -> None:
    """Declare a 48-bit unsigned immediate item in an item group."""
    ig.add_item(item_id, name, name, shape=(), format=IMMEDIATE)


def addressed(item_id: int, name: str, description: str, shape: tuple[int, ...],
              dtype: np.dtype | str) -> spead2.Item:
    """An item of a numpy dtype carried in the heap payload."""
    return AddressedItem(item_id, name, description, shape, dtype=dtype)


def build_heap(values: Sequence[tuple[spead2.Item, object]]) -> spead2.send.Heap:
    """A data heap of ``(item, value)`` pairs (payload in this order), pointers in every packet.

    The values are kept by reference: refilling a numpy value in place changes the heap.
    """
    heap = spead2.send.Heap(FLAVOUR)
    heap.repeat_pointers = True
    for item, value in values:
        item.value = value
        heap.add_item(item)
    return heap


def metadata_heap(values: Sequence[tuple[spead2.Item, object]]) -> spead2.send.Heap:
    """A metadata heap (immediates and small addressed items; fits in one packet)."""
    heap = spead2.send.Heap(FLAVOUR)
    for item, value in values:
        item.value = value
        heap.add_item(item)
    return heap


def descriptor_group(items: Sequence[spead2.Item]) -> spead2.send.ItemGroup:
    """An item group holding the descriptors a stock spead2 receiver needs."""
    group = spead2.send.ItemGroup(flavour=FLAVOUR)
    for item in items:
        if item.dtype is not None:
            group.add_item(item.id, item.name, item.description, item.shape, dtype=item.dtype)
        else:
            group.add_item(item.id, item.name, item.description, item.shape,
                           format=item.format)
    return group


def control_heaps(group: spead2.send.ItemGroup,
                  metadata: spead2.send.Heap) -> list[spead2.send.Heap]:
    """Start heap, descriptor heap (every item of ``group``), ``metadata`` (in that order)."""
    return [group.get_start(), group.get_heap(descriptors="all", data="none"), metadata]


def vis_immediate(item_id: int) -> spead2.Item:
    """A CBF-SDP visibility item (:data:`cbf_sdp.ITEM_NAMES`) as a 48-bit immediate."""
    return immediate(item_id, cbf_sdp.ITEM_NAMES[item_id])


def vis_addressed_items(channels: int, nbaseline: int,
                        descriptions: Mapping[int, str] | None = None) -> dict[int, spead2.Item]:
    """The addressed items of a visibility stream (docs/icd.md section 1), by item id:
    scan id, the metadata extensions and the ``(channels, nbaseline)`` payload.

    ``descriptions`` replaces the descriptor text of some items (a sender whose descriptor
    bytes must stay as they were); ids, names, shapes and dtypes are always these.
    """
    descriptions = descriptions or {}
    declared = (
        (cbf_sdp.SCAN_ID, "scan id", (), "<u8"),
        (cbf_sdp.FREQ0_HZ, "centre frequency of ICD channel 0 (Hz)", (), "<f8"),
        (cbf_sdp.CHAN_WIDTH_HZ, "channel spacing (Hz)", (), "<f8"),
        (cbf_sdp.INT_TIME, "dump period (s)", (), "<f8"),
        (cbf_sdp.CORRELATOR_OUTPUT_DATA, "TCI, FD and 4 polarisations per channel and baseline",
         (channels, nbaseline), cbf_sdp.VIS_DTYPE))
    return {item_id: addressed(item_id, cbf_sdp.ITEM_NAMES[item_id],
                               descriptions.get(item_id, description), shape, dtype)
            for item_id, description, shape, dtype in declared}


class PstBeamItems:
    """The items of ringpipe's PST beam profile (docs/icd.md section 2), for every beam sender.

    A data heap (:meth:`data_heap`) is one PST packet: sample count, first channel and the
    scale as immediates, then the packet's weights and data in the payload. The scale is sent
    as its exact 4 bytes (NaN payloads kept): an immediate whose low 4 bytes are the float32's
    little-endian bytes (:meth:`scale_immediates`), described as ``'<f4'``.
    ``data_description`` replaces the descriptor text of ``beam_data`` (a sender whose
    descriptor bytes must stay as they were).
    """

    def __init__(self, nweights: int, data_shape: tuple[int, ...],
                 sample_dtype: np.dtype | str,
                 data_description: str = "samples [pol][chan][samp][I,Q]") -> None:
        self.sample_count = immediate(pst.BEAM_SAMPLE_COUNT, "beam_sample_count")
        self.first_channel = immediate(pst.BEAM_FIRST_CHANNEL, "beam_first_channel")
        self.scale_raw = immediate(pst.BEAM_SCALE, "beam_scale")
        self.scale = spead2.Item(pst.BEAM_SCALE, "beam_scale", "packet scale", (), dtype="<f4")
        self.weights = addressed(pst.BEAM_WEIGHTS, "beam_weights", "relative weights",
                                 (nweights,), "<u2")
        self.data = addressed(pst.BEAM_DATA, "beam_data", data_description, data_shape,
                              sample_dtype)
        self.scan = addressed(pst.BEAM_SCAN_ID, "beam_scan_id", "scan id", (), "<u8")
        self.start_seconds = immediate(pst.BEAM_START_SECONDS, "beam_start_seconds")
        self.start_picoseconds = immediate(pst.BEAM_START_PICOSECONDS, "beam_start_picoseconds")

    @staticmethod
    def scale_immediates(scale_bytes: np.ndarray) -> np.ndarray:
        """The immediate values (``'>u4'``, for a ``'>u8'`` staging array) of scales given as
        their 4 little-endian bytes (a uint8 array whose last axis is those 4 bytes)."""
        return np.ascontiguousarray(scale_bytes).view(">u4")[..., 0]

    def data_heap(self, imm: np.ndarray, weights: np.ndarray,
                  data: np.ndarray) -> spead2.send.Heap:
        """One packet's heap over staging arrays: ``imm`` a ``'>u8'`` row of sample count,
        first channel and scale immediate; the packet's weights and data."""
        return build_heap([
            (self.sample_count, imm[0, ...]), (self.first_channel, imm[1, ...]),
            (self.scale_raw, imm[2, ...]), (self.weights, weights), (self.data, data)])

    def metadata_heap(self, scan_id: int, start_ps: int) -> spead2.send.Heap:
        """The metadata heap: scan id and the time of sample 0 (picoseconds since the epoch)."""
        return metadata_heap([
            (self.scan, np.uint64(scan_id)),
            (self.start_seconds, start_ps // 10**12),
            (self.start_picoseconds, start_ps % 10**12)])
