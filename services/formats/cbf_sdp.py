"""Wire formats: SPEAD item ids and heap layouts of the two stream profiles (see docs/icd.md).

Visibilities follow the SKA CBF-SDP ICD (SPEAD-64-48, items 0x6000-0x600A, the revision
used by the public SKA emulator-style senders; see docs/icd.md for what is pinned).
Voltage beams use ringpipe's own item ids 0x7000-0x7012, one heap per SKA PST packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import spead2

#: SPEAD-64-48: 48-bit immediates and heap addresses (the SKA ICD flavour).
FLAVOUR = spead2.Flavour(4, 64, 48, 0)
#: Bytes of an item pointer and of a heap address in the SPEAD-64-48 packet header.
ITEM_POINTER_BYTES = 8
HEAP_ADDRESS_BYTES = 6

# ----------------------------------------------------------------------- visibilities (ICD)
TIMESTAMP_COUNT = 0x6000  # u32, integer seconds since 1970-01-01T00:00:00 UTC
TIMESTAMP_FRACTION = 0x6001  # u32, units of 2**-32 s; the pair is the centre of the dump
CHANNEL_ID = 0x6002  # u32, ICD channel id of the first channel in the heap
CHANNEL_COUNT = 0x6003  # u32, channels in the heap
POLARISATION_ID = 0x6004  # u32
BASELINE_COUNT = 0x6005  # u32, NANT*(NANT+1)/2
PHASE_BIN_ID = 0x6006  # u16
PHASE_BIN_COUNT = 0x6007  # u16
SCAN_ID = 0x6008  # u64 (addressed), metadata heap only
HARDWARE_ID = 0x6009  # u32
CORRELATOR_OUTPUT_DATA = 0x600A  # (channels, baselines) of VIS_DTYPE
# ringpipe extensions, sent only in the metadata heap (receivers that do not know them ignore them)
FREQ0_HZ = 0x6100  # f64, centre frequency of ICD channel id 0
CHAN_WIDTH_HZ = 0x6101  # f64, channel spacing
INT_TIME = 0x6102  # f64, dump period in seconds
NANT = 0x6103  # u32, antennas

VIS_DTYPE = np.dtype([("TCI", "i1"), ("FD", "u1"), ("VIS", "<c8", (4,))])
WEIGHTS_DTYPE = np.dtype([("TCI", "i1"), ("FD", "u1")])
VIS_BYTES = VIS_DTYPE.itemsize  # 34 bytes per (channel, baseline)
TICKS_PER_SECOND = 1 << 32

#: Items a visibility data heap may carry (besides the SPEAD control items 0x01-0x06).
VIS_DATA_ITEMS = (
    TIMESTAMP_COUNT, TIMESTAMP_FRACTION, CHANNEL_ID, CHANNEL_COUNT, POLARISATION_ID,
    BASELINE_COUNT, PHASE_BIN_ID, PHASE_BIN_COUNT, HARDWARE_ID, CORRELATOR_OUTPUT_DATA,
)
#: Items read from a visibility metadata heap.
VIS_META_ITEMS = (SCAN_ID, HARDWARE_ID, FREQ0_HZ, CHAN_WIDTH_HZ, INT_TIME, NANT)
VIS_KNOWN_ITEMS = VIS_DATA_ITEMS + (SCAN_ID, FREQ0_HZ, CHAN_WIDTH_HZ, INT_TIME, NANT)

# ----------------------------------------------------------------------- voltage beam
BEAM_SAMPLE_COUNT = 0x7000  # u48 immediate: first time sample of the packet since the scan start
BEAM_FIRST_CHANNEL = 0x7001  # u32 immediate: first channel of the packet (absolute)
BEAM_SCALE = 0x7002  # immediate: float32 PST packet scale, its little-endian bytes in bytes 2-5
# of the 48-bit immediate (what spead2 sends for a '<f4' item); NaN = invalid packet
BEAM_WEIGHTS = 0x7003  # uint16[UDP_NCHAN * UDP_NSAMP / WT_NSAMP]
BEAM_DATA = 0x7004  # int8|int16 [NPOL=2][UDP_NCHAN][UDP_NSAMP][NDIM=2]
BEAM_SCAN_ID = 0x7010  # u64 (addressed), metadata heap only
BEAM_START_SECONDS = 0x7011  # u48 immediate: Unix seconds of sample 0
BEAM_START_PICOSECONDS = 0x7012  # u48 immediate: picoseconds past BEAM_START_SECONDS

BEAM_DATA_ITEMS = (BEAM_SAMPLE_COUNT, BEAM_FIRST_CHANNEL, BEAM_SCALE, BEAM_WEIGHTS, BEAM_DATA)
BEAM_META_ITEMS = (BEAM_SCAN_ID, BEAM_START_SECONDS, BEAM_START_PICOSECONDS)
BEAM_KNOWN_ITEMS = BEAM_DATA_ITEMS + BEAM_META_ITEMS


class ByteOrder(str, Enum):
    """How a sender packs a 32-bit value into a 48-bit immediate.

    ``big``: the SPEAD rule (the immediate equals the value; spead2 ``format=[('u', 32)]``).
    ``little``: what spead2 does for a ``'<u4'`` dtype item (the 4 little-endian bytes are
    left-padded, so the raw immediate is the value byte-swapped).
    """

    BIG = "big"
    LITTLE = "little"


def bswap32(value: int) -> int:
    """Swap the 4 low bytes of ``value``."""
    return int.from_bytes((value & 0xFFFFFFFF).to_bytes(4, "little"), "big")


@dataclass(frozen=True)
class VisLayout:
    """Shape of one ingest instance's visibility stream and ring blocks."""

    nant: int
    nchan: int  # channels of this instance (its ring)
    start_channel: int  # ICD channel id of the first channel
    channels_per_heap: int  # channels_per_stream of the sender
    nstreams: int  # ports; each carries nblocks/nstreams consecutive channel blocks
    dumps_per_block: int
    int_time: float

    @property
    def nbaseline(self) -> int:
        return self.nant * (self.nant + 1) // 2

    @property
    def nblocks(self) -> int:
        """Heaps (channel blocks) per dump."""
        return self.nchan // self.channels_per_heap

    @property
    def heap_bytes(self) -> int:
        return self.channels_per_heap * self.nbaseline * VIS_BYTES

    @property
    def heaps_per_chunk(self) -> int:
        return self.dumps_per_block * self.nblocks

    @property
    def data_resolution(self) -> int:
        return self.nchan * self.nbaseline * 32

    @property
    def weights_resolution(self) -> int:
        return self.nchan * self.nbaseline * 2

    @property
    def period_ticks(self) -> int:
        return round(self.int_time * TICKS_PER_SECOND)


@dataclass(frozen=True)
class BeamLayout:
    """Shape of a voltage-beam stream in SKA PST terms (pst-stat.md section 1)."""

    nchan: int
    start_channel: int
    udp_nchan: int
    udp_nsamp: int
    wt_nsamp: int
    nbit: int  # 8 or 16
    nstreams: int
    heaps_per_block: int  # PST heaps (UDP_NSAMP samples of all channels) per ring block

    @property
    def packets_per_heap(self) -> int:
        return self.nchan // self.udp_nchan

    @property
    def packet_data_bytes(self) -> int:
        return self.udp_nsamp * self.udp_nchan * 2 * 2 * self.nbit // 8

    @property
    def packet_weights_bytes(self) -> int:
        return self.udp_nchan * (self.udp_nsamp // self.wt_nsamp) * 2

    @property
    def packet_scales_bytes(self) -> int:
        return 4

    @property
    def weights_record_bytes(self) -> int:
        return self.packet_scales_bytes + self.packet_weights_bytes

    @property
    def packet_bytes(self) -> int:
        """SPEAD heap payload: weights then data (the scale is an immediate)."""
        return self.packet_weights_bytes + self.packet_data_bytes

    @property
    def data_resolution(self) -> int:
        return self.packet_data_bytes * self.packets_per_heap

    @property
    def weights_resolution(self) -> int:
        return self.weights_record_bytes * self.packets_per_heap

    @property
    def packets_per_chunk(self) -> int:
        return self.packets_per_heap * self.heaps_per_block

    @property
    def sample_dtype(self) -> np.dtype:
        return np.dtype("<i1") if self.nbit == 8 else np.dtype("<i2")
