"""What one transfer looks like on the wire: the visibility (CBF-SDP ICD) and beam profiles.

A profile is built from a transfer's data and weights headers (which of the two the header
says: ``DATA_KIND VIS`` is visibilities, a PST header with ``UDP_NSAMP`` a voltage beam) and
owns the heaps of one ring segment, pre-built over staging arrays: :meth:`load` copies a
segment into them (one pass, block layout to wire layout) and sets the time immediates from
the segment's OBS_OFFSET, then the same heaps are sent again.

* visibilities: one heap per (dump, channel block), payload ``(CHANNELS_PER_STREAM,
  NBASELINE)`` of ``[TCI, FD, VIS x 4]`` (TCI and FD from the weights ring); stream ``i``
  carries channel blocks ``[i*n/NSTREAMS, (i+1)*n/NSTREAMS)``. The timestamp of dump ``k``
  is the transfer's first dump (TIME0_UNIX, in 2**-32 s ticks) plus ``k`` periods.
* voltage beams: one heap per SKA PST packet: sample count, first channel and the scale (its
  4 bytes from the weights record, as an immediate), then the packet's weights and data.

A header that describes no stream this sender knows raises :class:`HeaderError` naming the
key at fault.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import spead2
import spead2.send

from ringbuf import DadaHeader, Segment
from ringbuf.errors import HeaderError
from services.formats import cbf_sdp, pst, spead_send
from services.formats.cbf_sdp import ByteOrder

logger = logging.getLogger(__name__)

UTC_FORMAT = "%Y-%m-%d-%H:%M:%S"
#: Heaps handed to spead2 in one send call (the stream's queue holds one such group).
GROUP_HEAPS = 256


@dataclass(frozen=True)
class SendShape:
    """How heaps are spread over the streams, and how 32-bit immediates are packed."""

    nstreams: int
    byte_order: ByteOrder = ByteOrder.BIG
    hardware_id: int = 0

    def u32(self, value: int) -> int:
        return cbf_sdp.bswap32(value) if self.byte_order == ByteOrder.LITTLE else value


class Profile:
    """The common part of the two profiles (see the module docstring)."""

    kind = ""
    scan_id = 0
    data_step_bytes = 1  # the data header's RESOLUTION: one time step of every channel
    weights_step_bytes = 1
    heaps_per_step = 1

    def __init__(self, steps_per_block: int) -> None:
        self.steps_per_block = steps_per_block
        self.refs: list[spead2.send.HeapReference] = []
        self._lists: dict[int, list[tuple[spead2.send.HeapReferenceList, int]]] = {}

    def descriptors(self) -> spead2.send.ItemGroup:
        raise NotImplementedError

    def metadata(self) -> spead2.send.Heap:
        raise NotImplementedError

    def _fill(self, seg: Segment, first_step: int, steps: int) -> None:
        raise NotImplementedError

    def steps_in(self, seg: Segment) -> int:
        """Whole time steps in a segment (a transfer's last block may be short)."""
        steps = min(len(seg.data) // self.data_step_bytes,
                    len(seg.weights) // self.weights_step_bytes)
        return min(steps, self.steps_per_block)

    def load(self, seg: Segment) -> list[tuple[spead2.send.HeapReferenceList, int]]:
        """Copy ``seg`` into the staging arrays; its heaps to send, as groups of at most
        :data:`GROUP_HEAPS` heaps (each with its number of heaps)."""
        steps = self.steps_in(seg)
        first_step = seg.obs_offset // self.data_step_bytes
        self._fill(seg, first_step, steps)
        if steps not in self._lists:
            refs = self.refs[:steps * self.heaps_per_step]
            self._lists[steps] = [
                (spead2.send.HeapReferenceList(refs[i:i + GROUP_HEAPS]),
                 len(refs[i:i + GROUP_HEAPS])) for i in range(0, len(refs), GROUP_HEAPS)]
        return self._lists[steps]


def _positive(header: DadaHeader, key: str) -> int:
    value = header.get_int(key)
    if value <= 0:
        raise HeaderError(f"{header.source}: {key} {value} must be positive")
    return value


def first_ticks(time0_unix: float, period: int, dumps_per_block: int) -> int:
    """The 2**-32 s tick of a transfer's first dump, from its header's TIME0_UNIX.

    TIME0_UNIX is a float, so it names the tick only to within its rounding (about 1000 ticks
    today). svc-ingest starts a transfer at a ring block boundary (dump index a multiple of
    DUMPS_PER_BLOCK since its phase), so of the ticks that round to TIME0_UNIX the one that
    keeps that alignment is chosen: a receiver then rebuilds exactly the same blocks and
    TIME0_UNIX.
    """
    ticks = round(time0_unix * cbf_sdp.TICKS_PER_SECOND)
    span = period * dumps_per_block
    base = ticks - ticks % span
    if ticks - base < period:  # aligned as it is
        return ticks
    for candidate in (base + span, base + period - 1):
        if candidate / cbf_sdp.TICKS_PER_SECOND == time0_unix:
            return candidate
    logger.warning("TIME0_UNIX %r is not on a ring-block boundary (DUMPS_PER_BLOCK %d): a "
                   "receiving svc-ingest starts its first block %d dumps earlier, as holes",
                   time0_unix, dumps_per_block, (ticks - base) // period)
    return ticks


class VisProfile(Profile):
    """CBF-SDP ICD visibilities (docs/icd.md section 1)."""

    kind = "vis"

    def __init__(self, data_header: DadaHeader, weights_header: DadaHeader, data_bufsz: int,
                 shape: SendShape) -> None:
        h = data_header
        src = h.source
        if weights_header.get_str("DATA_KIND", "") != "VIS_WEIGHTS":
            raise HeaderError(f"{weights_header.source}: DATA_KIND is not VIS_WEIGHTS")
        nant, nchan = _positive(h, "NANT"), _positive(h, "NCHAN")
        nbl = h.get_int("NBASELINE", nant * (nant + 1) // 2)
        if nbl != nant * (nant + 1) // 2:
            raise HeaderError(f"{src}: NBASELINE {nbl} is not NANT*(NANT+1)/2 for NANT {nant}")
        if h.get_int("NPOL", 4) != 4:
            raise HeaderError(f"{src}: NPOL {h.get_int('NPOL')} (the ICD carries 4)")
        cps = h.get_int("CHANNELS_PER_STREAM", nchan)
        if cps <= 0 or nchan % cps:
            raise HeaderError(f"{src}: NCHAN {nchan} is not a multiple of "
                              f"CHANNELS_PER_STREAM {cps}")
        nblocks = nchan // cps
        if nblocks % shape.nstreams:
            raise HeaderError(f"{src}: NSTREAMS {shape.nstreams} does not divide the "
                              f"{nblocks} channel blocks (NCHAN / CHANNELS_PER_STREAM)")
        self.data_step_bytes = nchan * nbl * 32
        self.weights_step_bytes = nchan * nbl * 2
        for header, expected in ((h, self.data_step_bytes),
                                 (weights_header, self.weights_step_bytes)):
            if header.get_int("RESOLUTION", expected) != expected:
                raise HeaderError(f"{header.source}: RESOLUTION {header.get_int('RESOLUTION')}"
                                  f" is not the {expected} bytes of one dump")
        int_time = h.get_float("INT_TIME")
        if not int_time > 0:
            raise HeaderError(f"{src}: INT_TIME {int_time} must be positive")
        super().__init__(max(1, data_bufsz // self.data_step_bytes))
        self.period = round(int_time * cbf_sdp.TICKS_PER_SECOND)
        self.ticks0 = first_ticks(h.get_float("TIME0_UNIX"), self.period,
                                  h.get_int("DUMPS_PER_BLOCK", 1))
        self.scan_id = h.get_int("SCAN_ID", 0)
        self.nant, self.nchan, self.nbl, self.cps = nant, nchan, nbl, cps
        self.int_time = int_time
        self.freq0 = h.get_float("FREQ0_HZ", -1.0)
        self.width = h.get_float("CHAN_WIDTH_HZ", 0.0)
        self.start_channel = h.get_int("START_CHANNEL", 0)
        self.shape = shape
        self.heaps_per_step = nblocks
        self._items()
        self._build(nblocks)

    def _items(self) -> None:
        u48 = spead_send.vis_immediate
        self.count = u48(cbf_sdp.TIMESTAMP_COUNT)
        self.fraction = u48(cbf_sdp.TIMESTAMP_FRACTION)
        self.channel_id = u48(cbf_sdp.CHANNEL_ID)
        self.channel_count = u48(cbf_sdp.CHANNEL_COUNT)
        self.baseline_count = u48(cbf_sdp.BASELINE_COUNT)
        self.hardware_id = u48(cbf_sdp.HARDWARE_ID)
        self.num_antennas = u48(cbf_sdp.NANT)
        addressed = spead_send.vis_addressed_items(self.cps, self.nbl)
        self.scan = addressed[cbf_sdp.SCAN_ID]
        self.freq0_item = addressed[cbf_sdp.FREQ0_HZ]
        self.width_item = addressed[cbf_sdp.CHAN_WIDTH_HZ]
        self.int_time_item = addressed[cbf_sdp.INT_TIME]
        self.payload_item = addressed[cbf_sdp.CORRELATOR_OUTPUT_DATA]

    def _build(self, nblocks: int) -> None:
        spb, shape = self.steps_per_block, self.shape
        self.payload = np.zeros((spb, self.nchan, self.nbl), cbf_sdp.VIS_DTYPE)
        # per heap: count, fraction (refilled per block), channel id, channel count,
        # baseline count, hardware id
        self.imm = np.zeros((spb, nblocks, 6), ">u8")
        per_stream = nblocks // shape.nstreams
        for s in range(spb):
            for b in range(nblocks):
                imm = self.imm[s, b]
                imm[2:] = [shape.u32(self.start_channel + b * self.cps), shape.u32(self.cps),
                           shape.u32(self.nbl), shape.u32(shape.hardware_id)]
                heap = spead_send.build_heap([
                    (self.count, imm[0, ...]), (self.fraction, imm[1, ...]),
                    (self.channel_id, imm[2, ...]), (self.channel_count, imm[3, ...]),
                    (self.baseline_count, imm[4, ...]), (self.hardware_id, imm[5, ...]),
                    (self.payload_item, self.payload[s, b * self.cps:(b + 1) * self.cps])])
                self.refs.append(spead2.send.HeapReference(heap,
                                                           substream_index=b // per_stream))

    def descriptors(self) -> spead2.send.ItemGroup:
        items = [self.count, self.fraction, self.channel_id, self.channel_count,
                 self.baseline_count, self.hardware_id, self.num_antennas, self.scan,
                 self.int_time_item, self.payload_item]
        if self.freq0 >= 0 and self.width:
            items += [self.freq0_item, self.width_item]
        return spead_send.descriptor_group(items)

    def metadata(self) -> spead2.send.Heap:
        shape = self.shape
        values: list[tuple[spead2.Item, object]] = [
            (self.scan, np.uint64(self.scan_id)),
            (self.hardware_id, shape.u32(shape.hardware_id)),
            (self.int_time_item, np.float64(self.int_time)),
            (self.num_antennas, shape.u32(self.nant))]
        if self.freq0 >= 0 and self.width:
            values += [(self.freq0_item, np.float64(self.freq0)),
                       (self.width_item, np.float64(self.width))]
        return spead_send.metadata_heap(values)

    def _fill(self, seg: Segment, first_step: int, steps: int) -> None:
        shape = (steps, self.nchan, self.nbl)
        out = self.payload[:steps]
        out["VIS"] = seg.data[:steps * self.data_step_bytes].view(np.complex64).reshape(
            *shape, 4)
        wts = seg.weights[:steps * self.weights_step_bytes].view(cbf_sdp.WEIGHTS_DTYPE)
        wts = wts.reshape(shape)
        out["TCI"] = wts["TCI"]
        out["FD"] = wts["FD"]
        ticks = self.ticks0 + (first_step + np.arange(steps, dtype=object)) * self.period
        u32 = self.shape.u32
        for s, tick in enumerate(ticks):
            self.imm[s, :, 0] = u32(int(tick) >> 32)
            self.imm[s, :, 1] = u32(int(tick) & 0xFFFFFFFF)


class BeamProfile(Profile):
    """ringpipe's voltage-beam profile: one heap per SKA PST packet (docs/icd.md section 2)."""

    kind = "beam"

    def __init__(self, data_header: DadaHeader, weights_header: DadaHeader, data_bufsz: int,
                 shape: SendShape) -> None:
        lay = pst.PstLayout.from_headers(data_header, weights_header)
        if lay.packet_weights_size % 2 or lay.weights_nbit != 16:
            raise HeaderError(f"{weights_header.source}: NBIT {lay.weights_nbit}: the beam "
                              "profile carries 16-bit weights")
        pph = lay.packets_per_heap
        if pph % shape.nstreams:
            raise HeaderError(f"{data_header.source}: NSTREAMS {shape.nstreams} does not "
                              f"divide the {pph} packets of a PST heap (NCHAN / UDP_NCHAN)")
        self.lay = lay
        self.data_step_bytes = lay.data_heap_stride
        self.weights_step_bytes = lay.weights_heap_stride
        self.heaps_per_step = pph
        super().__init__(max(1, data_bufsz // lay.data_heap_stride))
        self.scan_id = data_header.get_int("SCAN_ID", 0)
        self.start_channel = data_header.get_int("START_CHANNEL", 0)
        self.start_ps = start_picoseconds(data_header)
        self.shape = shape
        self._items()
        self._build()

    def _items(self) -> None:
        lay = self.lay
        self.data_shape = (lay.npol, lay.udp_nchan, lay.udp_nsamp, lay.ndim)
        self.items = spead_send.PstBeamItems(lay.packet_weights_size // 2, self.data_shape,
                                             lay.sample_dtype)

    def _build(self) -> None:
        lay, spb, shape = self.lay, self.steps_per_block, self.shape
        pph = lay.packets_per_heap
        self.weights = np.zeros((spb, pph, lay.packet_weights_size // 2), "<u2")
        self.data = np.zeros((spb, pph, *self.data_shape), lay.sample_dtype)
        self.imm = np.zeros((spb, pph, 3), ">u8")  # sample count, first channel, scale
        per_stream = pph // shape.nstreams
        for s in range(spb):
            for p in range(pph):
                imm = self.imm[s, p]
                imm[1] = shape.u32(self.start_channel + p * lay.udp_nchan)
                heap = self.items.data_heap(imm, self.weights[s, p], self.data[s, p])
                self.refs.append(spead2.send.HeapReference(heap,
                                                           substream_index=p // per_stream))

    def descriptors(self) -> spead2.send.ItemGroup:
        it = self.items
        return spead_send.descriptor_group([
            it.sample_count, it.first_channel, it.scale, it.weights, it.data, it.scan,
            it.start_seconds, it.start_picoseconds])

    def metadata(self) -> spead2.send.Heap:
        return self.items.metadata_heap(self.scan_id, self.start_ps)

    def _fill(self, seg: Segment, first_step: int, steps: int) -> None:
        lay = self.lay
        pph = lay.packets_per_heap
        rec = seg.weights[:steps * self.weights_step_bytes].reshape(
            steps, pph, lay.weights_packet_stride)
        self.imm[:steps, :, 2] = self.items.scale_immediates(rec[:, :, :4])
        ns = lay.packet_scales_size
        self.weights[:steps] = np.ascontiguousarray(
            rec[:, :, ns:ns + lay.packet_weights_size]).view("<u2")
        self.data[:steps].reshape(steps, pph, -1).view(np.uint8)[:] = (
            seg.data[:steps * self.data_step_bytes].reshape(steps, pph, lay.packet_data_bytes))
        first = first_step * lay.udp_nsamp
        self.imm[:steps, :, 0] = (first + np.arange(steps) * lay.udp_nsamp)[:, None]


def start_picoseconds(header: DadaHeader) -> int:
    """UTC_START + PICOSECONDS of a PST header, in picoseconds since the Unix epoch."""
    text = header.get_str("UTC_START")
    try:
        when = dt.datetime.strptime(text, UTC_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise HeaderError(f"{header.source}: UTC_START {text!r} is not "
                          "YYYY-MM-DD-hh:mm:ss") from None
    return int(when.timestamp()) * 10**12 + header.get_int("PICOSECONDS", 0)


def profile_for(data_header: DadaHeader, weights_header: DadaHeader, data_bufsz: int,
                shape: SendShape) -> Profile:
    """The profile a transfer's headers describe (HeaderError if neither)."""
    kind = data_header.get_str("DATA_KIND", "")
    if kind == "VIS":
        return VisProfile(data_header, weights_header, data_bufsz, shape)
    if "UDP_NSAMP" in data_header:
        return BeamProfile(data_header, weights_header, data_bufsz, shape)
    raise HeaderError(f"{data_header.source}: neither visibilities (DATA_KIND VIS) nor a PST "
                      f"voltage beam (UDP_NSAMP): DATA_KIND {kind or '(none)'}")

