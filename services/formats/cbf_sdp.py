"""The SKA CBF-SDP visibility ICD: SPEAD item ids, payload dtypes and heap layout (docs/icd.md).

SPEAD-64-48, items 0x6000-0x600A, the revision used by the public SKA emulator-style senders
(see docs/icd.md for what is pinned), plus ringpipe's metadata extensions 0x6100-0x6103.
Voltage beams (one SPEAD heap per SKA PST packet) are described in :mod:`services.formats.pst`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import spead2

#: SPEAD-64-48: 48-bit immediates and heap addresses (the SKA ICD flavour; beams use it too).
FLAVOUR = spead2.Flavour(4, 64, 48, 0)

# ----------------------------------------------------------------------- visibilities (ICD)
TIMESTAMP_COUNT = 0x6000  # u32, integer seconds since 1970-01-01T00:00:00 UTC
TIMESTAMP_FRACTION = 0x6001  # u32, units of 2**-32 s; the pair is the centre of the dump
CHANNEL_ID = 0x6002  # u32, ICD channel id of the first channel in the heap
CHANNEL_COUNT = 0x6003  # u32, channels in the heap
POLARISATION_ID = 0x6004  # u32
BASELINE_COUNT = 0x6005  # u32, NANT*(NANT+1)/2
PHASE_BIN_ID = 0x6006  # u16
PHASE_BIN_COUNT = 0x6007  # u16
SCAN_ID = 0x6008  # u64 (addressed): metadata/start heaps, and data heaps of many senders
HARDWARE_ID = 0x6009  # u32
CORRELATOR_OUTPUT_DATA = 0x600A  # (channels, baselines) of VIS_DTYPE, addressed, anywhere in
# the payload (a data heap may carry descriptors and addressed items too)
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

#: The ICD name of every visibility item (a sender's item and descriptor names).
ITEM_NAMES = {
    TIMESTAMP_COUNT: "visibility_timestamp_count",
    TIMESTAMP_FRACTION: "visibility_timestamp_fraction",
    CHANNEL_ID: "visibility_channel_id",
    CHANNEL_COUNT: "visibility_channel_count",
    POLARISATION_ID: "visibility_polarisation_id",
    BASELINE_COUNT: "visibility_baseline_count",
    PHASE_BIN_ID: "phase_bin_id",
    PHASE_BIN_COUNT: "phase_bin_count",
    SCAN_ID: "scan_id",
    HARDWARE_ID: "visibility_hardware_id",
    CORRELATOR_OUTPUT_DATA: "correlator_output_data",
    FREQ0_HZ: "freq0_hz",
    CHAN_WIDTH_HZ: "chan_width_hz",
    INT_TIME: "int_time",
    NANT: "num_antennas",
}


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
