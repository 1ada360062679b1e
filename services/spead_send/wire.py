"""SPEAD send helpers: the UDP stream, items and pre-built heaps whose values are refilled.

A data heap is built once per transfer with item values that are views of numpy staging
arrays (immediates: 0-d views of a ``'>u8'`` array), so refilling the arrays in place changes
what the next send carries without rebuilding heaps. Heaps repeat their item pointers in
every packet (the ICD asks for the placement immediates in every packet).

These helpers duplicate part of ``services/senders/sendlib.py`` (a sibling package a service
may not import); they belong in ``services/formats`` once both use them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import numpy as np
import spead2
import spead2.send

from services.formats import cbf_sdp

FLAVOUR = cbf_sdp.FLAVOUR
#: The format of a 48-bit immediate item (SPEAD-64-48).
IMMEDIATE = [("u", FLAVOUR.heap_address_bits)]


class AddressedItem(spead2.Item):
    """An item always sent in the payload, even when it would fit in an immediate."""

    def allow_immediate(self) -> bool:  # type: ignore[override]  # a method at run time
        return False


def make_stream(host: str, ports: Sequence[int], max_packet_size: int, rate: float,
                max_heaps: int, buffer_size: int, interface_address: str = "",
                ttl: int = 1) -> spead2.send.UdpStream:
    """One UDP stream with a substream per port, sharing one rate limiter (bytes/s, 0 = none).

    To a multicast group, packets go out with ``ttl`` through ``interface_address`` (the
    kernel's choice when empty). OSError if the socket cannot be set up.
    """
    config = spead2.send.StreamConfig(max_packet_size=max_packet_size, rate=rate,
                                      max_heaps=max_heaps)
    endpoints = [(host, port) for port in ports]
    pool = spead2.ThreadPool(1)
    if not ipaddress.ip_address(host).is_multicast:
        return spead2.send.UdpStream(pool, endpoints, config, buffer_size)
    if interface_address:
        return spead2.send.UdpStream(pool, endpoints, config, buffer_size, ttl=ttl,
                                     interface_address=interface_address)
    return spead2.send.UdpStream(pool, endpoints, config, buffer_size, ttl=ttl)


def immediate(item_id: int, name: str, description: str = "") -> spead2.Item:
    """A 48-bit unsigned immediate item."""
    return spead2.Item(item_id, name, description or name, (), format=IMMEDIATE)


def addressed(item_id: int, name: str, description: str, shape: tuple[int, ...],
              dtype: np.dtype | str) -> spead2.Item:
    """An item of a numpy dtype carried in the heap payload."""
    return AddressedItem(item_id, name, description, shape, dtype=dtype)


def build_heap(values: Sequence[tuple[spead2.Item, object]]) -> spead2.send.Heap:
    """A heap of ``(item, value)`` pairs (payload in this order), pointers in every packet.

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
