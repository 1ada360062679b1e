"""SKA PST heap/packet layout of a data stream and its weights stream.

A *heap* holds ``UDP_NSAMP`` samples of all ``NCHAN`` channels as ``NCHAN/UDP_NCHAN``
consecutive *packets*; packet ``p`` holds channels ``[p*UDP_NCHAN, (p+1)*UDP_NCHAN)`` in the
order ``[pol][chan][samp][I,Q]`` (little-endian int8 or int16, no packet headers).
The weights stream has one record per packet, in the same order:
``[scales: PACKET_SCALES_SIZE bytes][weights: PACKET_WEIGHTS_SIZE bytes]``; the first
float32 of the record is the packet's scale.

:class:`PstLayout` is the one description of that heap: it validates a data/weights header
pair with the rules of SKA PST's ``HeapLayout`` (:meth:`PstLayout.from_headers`) or is built
from a stream's shape (:meth:`PstLayout.from_shape`), and derives every stride. It does not
depend on the statistics code, so ingest, beam-send, svc-stat and the ``.dada`` file producer
use the same arithmetic.

On the wire (docs/icd.md section 2) a PST packet is one SPEAD heap (SPEAD-64-48, the flavour
of the CBF-SDP ICD) with ringpipe's items ``0x7000``-``0x7012`` below: the scale as an
immediate, the payload the packet's weights then its data (:attr:`PstLayout.spead_payload_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringbuf import DadaHeader
from ringbuf.errors import HeaderError

DEFAULT_PACKET_SCALES_SIZE = 4
#: Bits of a weight in the weights stream ringpipe writes (SKA PST's NBIT 16 weights header).
DEFAULT_WEIGHTS_NBIT = 16

# ----------------------------------------------------------------------- SPEAD items of a beam
BEAM_SAMPLE_COUNT = 0x7000  # u48 immediate: first time sample of the packet since the scan start
BEAM_FIRST_CHANNEL = 0x7001  # u32 immediate: first channel of the packet (absolute)
BEAM_SCALE = 0x7002  # immediate: float32 PST packet scale, its little-endian bytes in bytes 2-5
# of the 48-bit immediate (what spead2 sends for a '<f4' item); NaN = invalid packet
BEAM_WEIGHTS = 0x7003  # uint16[UDP_NCHAN * UDP_NSAMP / WT_NSAMP]
BEAM_DATA = 0x7004  # int8|int16 [NPOL=2][UDP_NCHAN][UDP_NSAMP][NDIM=2]
BEAM_SCAN_ID = 0x7010  # u64 (addressed), metadata heap only
BEAM_START_SECONDS = 0x7011  # u48 immediate: Unix seconds of sample 0
BEAM_START_PICOSECONDS = 0x7012  # u48 immediate: picoseconds past BEAM_START_SECONDS

#: Items a beam data heap carries (besides the SPEAD control items 0x01-0x06).
BEAM_DATA_ITEMS = (BEAM_SAMPLE_COUNT, BEAM_FIRST_CHANNEL, BEAM_SCALE, BEAM_WEIGHTS, BEAM_DATA)
#: Items read from a beam metadata heap.
BEAM_META_ITEMS = (BEAM_SCAN_ID, BEAM_START_SECONDS, BEAM_START_PICOSECONDS)
BEAM_KNOWN_ITEMS = BEAM_DATA_ITEMS + BEAM_META_ITEMS
# keys that must have the same (first-token) text in the data and the weights header
SHARED_KEYS = ("UDP_NSAMP", "UDP_NCHAN", "WT_NSAMP", "NCHAN")


def first_token(header: DadaHeader, key: str) -> str:
    """The first whitespace-separated token of a value (what SKA PST's AsciiHeader keeps)."""
    value = header.get_str(key).split()
    if not value:
        raise HeaderError(f"{header.source}: {key} has an empty value")
    return value[0]


def _positive(header: DadaHeader, key: str) -> int:
    value = header.get_int(key)
    if value <= 0:
        raise HeaderError(f"{header.source}: {key} {value} must be positive")
    return value


def _require(header: DadaHeader, key: str, allowed: tuple[int, ...]) -> int:
    value = header.get_int(key)
    if value not in allowed:
        choices = " or ".join(str(a) for a in allowed)
        raise HeaderError(f"{header.source}: {key} {value} is not supported (must be {choices})")
    return value


@dataclass(frozen=True)
class PstLayout:
    """Sizes and strides of one PST data stream and its weights stream (all in bytes)."""

    nchan: int
    nbit: int
    udp_nsamp: int
    udp_nchan: int
    wt_nsamp: int
    weights_nbit: int
    packet_scales_size: int
    packet_weights_size: int
    npol: int = 2
    ndim: int = 2

    # ------------------------------------------------------------------ derived sizes
    @property
    def packets_per_heap(self) -> int:
        return self.nchan // self.udp_nchan

    @property
    def packet_data_bytes(self) -> int:
        return self.udp_nsamp * self.udp_nchan * self.npol * self.ndim * self.nbit // 8

    @property
    def data_heap_stride(self) -> int:
        """Bytes of one heap of data: the data header's RESOLUTION."""
        return self.packet_data_bytes * self.packets_per_heap

    @property
    def weights_packet_stride(self) -> int:
        return self.packet_scales_size + self.packet_weights_size

    @property
    def weights_heap_stride(self) -> int:
        """Bytes of one heap of weights: the weights header's RESOLUTION."""
        return self.weights_packet_stride * self.packets_per_heap

    @property
    def sample_dtype(self) -> np.dtype:
        return np.dtype("<i1") if self.nbit == 8 else np.dtype("<i2")

    @property
    def bytes_per_sample_time(self) -> int:
        """Bytes of one time sample of every channel, pol and dim."""
        return self.nchan * self.npol * self.ndim * self.nbit // 8

    @property
    def spead_payload_bytes(self) -> int:
        """Payload of a packet's SPEAD heap: its weights, then its data (the scale is an
        immediate)."""
        return self.packet_weights_size + self.packet_data_bytes

    def heaps_in(self, data_nbytes: int, weights_nbytes: int) -> tuple[int, int]:
        """Whole heaps in a data span and in a weights span (trailing partial heaps ignored)."""
        return data_nbytes // self.data_heap_stride, weights_nbytes // self.weights_heap_stride

    # ------------------------------------------------------------------ views
    def data_view(self, data: np.ndarray, nheap: int) -> np.ndarray:
        """``data`` (uint8) as samples, shaped (nheap, packets, npol, udp_nchan, udp_nsamp, 2)."""
        body = data[: nheap * self.data_heap_stride].view(self.sample_dtype)
        return body.reshape(
            nheap, self.packets_per_heap, self.npol, self.udp_nchan, self.udp_nsamp, self.ndim
        )

    def scales_view(self, weights: np.ndarray, nheap: int) -> np.ndarray:
        """The float32 scale of every packet, shaped ``(nheap, packets)`` (a strided view)."""
        records = weights[: nheap * self.weights_heap_stride].reshape(
            nheap, self.packets_per_heap, self.weights_packet_stride
        )
        return records[:, :, :4].view("<f4")[:, :, 0]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_shape(cls, nchan: int, udp_nchan: int, udp_nsamp: int, wt_nsamp: int, nbit: int,
                   weights_nbit: int = DEFAULT_WEIGHTS_NBIT,
                   packet_scales_size: int = DEFAULT_PACKET_SCALES_SIZE) -> PstLayout:
        """The layout of a stream of this shape (the keys are assumed checked by the caller's
        config: NBIT 8 or 16, UDP_NSAMP a multiple of WT_NSAMP, NCHAN of UDP_NCHAN)."""
        weights_size = udp_nchan * (udp_nsamp // wt_nsamp) * weights_nbit // 8
        return cls(nchan, nbit, udp_nsamp, udp_nchan, wt_nsamp, weights_nbit,
                   packet_scales_size, weights_size)

    @classmethod
    def from_headers(cls, data_header: DadaHeader, weights_header: DadaHeader) -> PstLayout:
        """Validate a data/weights header pair (SKA PST ``HeapLayout`` rules) and build the layout.

        Raises :class:`HeaderError` naming the header's source and the key at fault.
        """
        dsrc, wsrc = data_header.source, weights_header.source
        for key in ("NPOL", "NDIM"):
            _require(data_header, key, (2,))
            _require(weights_header, key, (1,))
        nbit = _require(data_header, "NBIT", (8, 16))
        weights_nbit = _require(weights_header, "NBIT", (8, 16))
        for key in SHARED_KEYS:
            dval, wval = first_token(data_header, key), first_token(weights_header, key)
            if dval != wval:
                raise HeaderError(
                    f"{dsrc}: {key} {dval!r} does not match {key} {wval!r} of {wsrc}"
                )
        nchan = _positive(data_header, "NCHAN")
        udp_nsamp = _positive(data_header, "UDP_NSAMP")
        udp_nchan = _positive(data_header, "UDP_NCHAN")
        wt_nsamp = _positive(data_header, "WT_NSAMP")
        if udp_nsamp % wt_nsamp:
            raise HeaderError(
                f"{dsrc}: UDP_NSAMP {udp_nsamp} is not a multiple of WT_NSAMP {wt_nsamp}")
        if nchan % udp_nchan:
            raise HeaderError(f"{dsrc}: NCHAN {nchan} is not a multiple of UDP_NCHAN {udp_nchan}")
        scales_size = weights_header.get_int("PACKET_SCALES_SIZE", DEFAULT_PACKET_SCALES_SIZE)
        if scales_size < 4:
            raise HeaderError(
                f"{wsrc}: PACKET_SCALES_SIZE {scales_size} is too small for a float32 scale"
            )
        weights_size = udp_nchan * (udp_nsamp // wt_nsamp) * weights_nbit // 8
        if "PACKET_WEIGHTS_SIZE" in weights_header:
            declared = weights_header.get_int("PACKET_WEIGHTS_SIZE")
            if declared != weights_size:
                raise HeaderError(
                    f"{wsrc}: PACKET_WEIGHTS_SIZE {declared} does not match "
                    f"UDP_NCHAN*(UDP_NSAMP/WT_NSAMP)*NBIT/8 = {weights_size}"
                )
        layout = cls(nchan, nbit, udp_nsamp, udp_nchan, wt_nsamp, weights_nbit, scales_size,
                     weights_size)
        for header, expected in ((data_header, layout.data_heap_stride),
                                 (weights_header, layout.weights_heap_stride)):
            resolution = header.get_int("RESOLUTION")
            if resolution != expected:
                raise HeaderError(
                    f"{header.source}: RESOLUTION {resolution} does not match the heap size "
                    f"{expected} bytes implied by NCHAN, NBIT, UDP_NSAMP and UDP_NCHAN"
                )
        return layout

    def header_keys(self) -> tuple[dict[str, int], dict[str, int]]:
        """Derived keys for (data header, weights header), as PST's ``HeapLayout::initialise``."""
        data = {"RESOLUTION": self.data_heap_stride}
        weights = {
            "RESOLUTION": self.weights_heap_stride,
            "PACKET_WEIGHTS_SIZE": self.packet_weights_size,
            "PACKET_SCALES_SIZE": self.packet_scales_size,
            "BLOCK_HEADER_BYTES": self.packet_scales_size * self.packets_per_heap,
            "BLOCK_DATA_BYTES": self.packet_weights_size * self.packets_per_heap,
        }
        return data, weights
