"""Test senders that frame CBF-SDP heaps as real ICD senders do, with stock spead2 only.

Each stream (UDP port) has its own ``spead2.send.ItemGroup`` of the ICD's eleven items,
declared with numpy dtypes as the SKA CBF-SDP emulator and the SKA SIP sender declare them
(``'<u4'`` immediates, which spead2 sends byte-swapped; ``'<u8'`` scan_id, an addressed item),
and every data heap is built with ``get_heap(descriptors='all', data=...)``, so descriptors
and addressed items share the payload of the visibilities. Nothing here calls ringpipe's
own senders.

Framings (:class:`Framing`):

* ``emulator``: start heap with all descriptors, every data heap ``descriptors='all',
  data='all'`` (so scan_id and every other item travel in each heap), end heap;
* ``sip``: as SIP's ``async_send.py``: one channel per stream, ``correlator_output_data`` of
  shape (baselines,), a bare start heap, data heaps ``descriptors='all'`` with spead2's
  default ``data='stale'`` (channel id, channel count and baseline count go in the first
  data heap only; scan_id, polarisation, phase bins and hardware id are never set);
* ``start-only``: baseline count, channel count and scan_id in the start heap only;
* options: big-endian immediates (``'>u4'``), scan_id declared after the visibilities,
  items declared in a shuffled order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import spead2
import spead2.send

from services.formats import cbf_sdp

T0 = 1_750_000_000  # Unix seconds of dump 0's centre (integer: the fraction is 0)
FREQ0_HZ, CHAN_WIDTH_HZ = 1.2e8, 2.5e5


@dataclass(frozen=True)
class Framing:
    """How one sender frames its heaps."""

    name: str
    data: str = "all"  # get_heap(data=...) of the data heaps
    bare_start: bool = False  # start heap without descriptors (SIP)
    one_dim: bool = False  # correlator_output_data shape (baselines,): one channel per heap
    start_only: tuple[str, ...] = ()  # items whose value goes in the start heap only
    big_endian: bool = False  # '>u4' immediates instead of the emulator's '<u4'
    scan_after_data: bool = False  # scan_id declared after correlator_output_data
    shuffled: bool = False  # items declared in a random order
    scan_id: int | None = 4242  # None: never set (SIP)
    fd: int = 0  # FD sent (0: not populated, as the emulator and SIP)
    descriptions: bool = True

    @property
    def byte_order(self) -> str:
        return "big" if self.big_endian else "little"


EMULATOR = Framing("emulator")
SIP = Framing("sip", data="stale", bare_start=True, one_dim=True, scan_id=None,
              descriptions=False)
START_ONLY = Framing("start-only", data="stale",
                     start_only=("visibility_baseline_count", "visibility_channel_count",
                                 "scan_id"))


def _items(framing: Framing, cps: int, nbl: int) -> list[tuple[int, str, str, object, tuple]]:
    u4, u2 = (">u4", ">u2") if framing.big_endian else ("<u4", "<u2")
    shape = (nbl,) if framing.one_dim else (cps, nbl)
    items = [
        (0x6000, "visibility_timestamp_count", "Timestamp count (seconds)", u4, ()),
        (0x6001, "visibility_timestamp_fraction", "Timestamp fraction", u4, ()),
        (0x6002, "visibility_channel_id", "First channel id", u4, ()),
        (0x6003, "visibility_channel_count", "Channel count", u4, ()),
        (0x6004, "visibility_polarisation_id", "Polarisation id", u4, ()),
        (0x6005, "visibility_baseline_count", "Baseline count", u4, ()),
        (0x6006, "phase_bin_id", "Phase bin id", u2, ()),
        (0x6007, "phase_bin_count", "Phase bin count", u2, ()),
        (0x6008, "scan_id", "Scan id", "<u8", ()),
        (0x6009, "visibility_hardware_id", "Hardware id", u4, ()),
        (0x600A, "correlator_output_data", "Visibilities, TCI and FD",
         [("TCI", "i1"), ("FD", "u1"), ("VIS", "<c8", 4)], shape),
    ]
    if framing.scan_after_data:
        items.append(items.pop(8))
    if framing.shuffled:
        random.Random(7).shuffle(items)
    if not framing.descriptions:
        items = [(i, n, "", d, s) for i, n, _, d, s in items]
    return items


def payload(ntime: int, nchan: int, nbl: int, fd: int) -> np.ndarray:
    """(time, channel, baseline) of VIS_DTYPE with distinct, exactly representable values."""
    p = np.zeros((ntime, nchan, nbl), cbf_sdp.VIS_DTYPE)
    t, c, b = np.meshgrid(np.arange(ntime), np.arange(nchan), np.arange(nbl), indexing="ij")
    base = (t * 1000 + c * 100 + b).astype(np.float32)
    p["VIS"] = (base[..., None] + 1j * np.arange(1, 5, dtype=np.float32)).astype(np.complex64)
    p["FD"] = fd
    return p


def send(framing: Framing, port: int, *, nchan: int, cps: int, nbl: int, vis: np.ndarray,
         int_time: float = 1.0, first_dump: int = 0, last_dump: int | None = None,
         start: bool = True, end: bool = True,
         rate: float = 2e7, max_packet_size: int = 8972) -> int:
    """Send dumps ``first_dump..last_dump`` (default: to the end) of ``vis`` (time, channel,
    baseline), stream i to ``port + i`` carrying channels ``i*cps..``; returns the data heaps
    sent."""
    nstreams = nchan // cps
    pool = spead2.ThreadPool()
    config = spead2.send.StreamConfig(max_packet_size=max_packet_size, rate=rate)
    streams, groups = [], []
    for i in range(nstreams):
        streams.append(spead2.send.UdpStream(pool, [("127.0.0.1", port + i)], config))
        ig = spead2.send.ItemGroup(flavour=cbf_sdp.FLAVOUR)
        for item_id, name, desc, dtype, shape in _items(framing, cps, nbl):
            ig.add_item(item_id, name, desc, shape=shape, dtype=dtype)
        groups.append(ig)
    static = {"visibility_channel_count": cps, "visibility_baseline_count": nbl,
              "visibility_polarisation_id": 0, "phase_bin_id": 0, "phase_bin_count": 1,
              "visibility_hardware_id": 3, "scan_id": framing.scan_id}
    if framing.name == "sip":  # SIP sets only these three before its start heap
        static = {k: static[k] for k in ("visibility_channel_count",
                                          "visibility_baseline_count")}
    for i, (stream, ig) in enumerate(zip(streams, groups, strict=True)):
        ig["visibility_channel_id"].value = i * cps
        for name, value in static.items():
            if value is not None:
                ig[name].value = value
        if start:
            if framing.bare_start:
                heap = ig.get_start()
            elif framing.start_only:  # every value set so far, never again (data='stale')
                heap = ig.get_heap(descriptors="all", data="stale")
                heap.add_start()
            else:
                heap = ig.get_heap(descriptors="all", data="none")
                heap.add_start()
            stream.send_heap(heap)
    sent = 0
    for t in range(first_dump, vis.shape[0] if last_dump is None else last_dump):
        ticks = round((T0 + t * int_time) * cbf_sdp.TICKS_PER_SECOND)
        for i, (stream, ig) in enumerate(zip(streams, groups, strict=True)):
            ig["visibility_timestamp_count"].value = ticks >> 32
            ig["visibility_timestamp_fraction"].value = ticks & 0xFFFFFFFF
            if framing.data == "stale" and framing.start_only:  # re-sent each heap
                ig["visibility_channel_id"].value = i * cps
            block = vis[t, i * cps:(i + 1) * cps]
            ig["correlator_output_data"].value = block[0] if framing.one_dim else block
            heap = ig.get_heap(descriptors="all", data=framing.data)
            if framing.start_only:
                for name in framing.start_only:
                    assert ig[name].id not in _item_ids(heap), name
            if framing.name == "sip" and t > first_dump:  # SIP: sent once, with data='stale'
                assert cbf_sdp.CHANNEL_ID not in _item_ids(heap)
            stream.send_heap(heap)
            sent += 1
    if end:
        for stream, ig in zip(streams, groups, strict=True):
            stream.send_heap(ig.get_end())
    return sent


def _item_ids(heap: spead2.send.Heap) -> set[int]:
    """Item ids a send heap carries (from its packets' item pointers)."""
    ids: set[int] = set()
    for pkt in spead2.send.PacketGenerator(heap, 1, 65000):
        raw = bytes(pkt)
        n = int.from_bytes(raw[6:8], "big")
        for k in range(n):
            ptr = int.from_bytes(raw[8 + 8 * k:16 + 8 * k], "big")
            ids.add((ptr >> 48) & 0x7FFF)
    return ids
