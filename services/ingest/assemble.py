"""Profile assemblers: turn one received spead2 chunk into one ring segment, and build headers.

A chunk holds the payloads of every heap of one ring block, back to back, in ring order
(visibilities: dump, channel block; beams: PST heap, packet). One copy splits it into the
data block and the weights block; heaps that never arrived are filled explicitly, so a
recycled chunk can never leak stale data into a block:

* visibilities: VIS 0, TCI 0, FD 0 (FD 0 = "no data");
* voltage beams: data 0, scale NaN, weights 0 (SKA PST's dropped packet).

A block is ``steps_per_chunk`` whole time steps (a dump, or a PST heap) of ``heaps_per_step``
heaps each, step-major; ``data_step_bytes`` / ``weights_step_bytes`` (the rings' RESOLUTION)
let the receiver commit the last block of a transfer trimmed to whole steps.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np

from ringbuf import DadaHeader
from services.formats import cbf_sdp, pst
from services.ingest import placement
from services.ingest.config import FdPolicy, IngestConfig, Profile

logger = logging.getLogger(__name__)

ICD_REVISION = ("CBF-SDP ICD, SPEAD-64-48 items 0x6000-0x600A (emulator revision, "
                "see docs/icd.md)")


def utc_string(seconds: float) -> str:
    """DADA UTC_START format of a Unix time, floored to the second."""
    when = dt.datetime.fromtimestamp(int(seconds // 1), dt.timezone.utc)
    return when.strftime("%Y-%m-%d-%H:%M:%S")


@dataclass(frozen=True)
class PlaceSpec:
    """What the receiver needs to configure the place callback of stream (port) ``i``."""

    items: tuple[int, ...]
    cfunc: object
    period: int
    chans_per_heap: int
    nblocks: int  # channel blocks per time step
    steps_per_chunk: int
    nbaseline: int
    heap_bytes: int
    known_items: tuple[int, ...]
    meta_ids: tuple[int, ...]
    extra_bytes: int = 0  # chunk ``extra`` bytes per heap
    start_channel: int = 0  # first channel of this instance (channel block 0)
    slot_bytes: int = 0  # chunk bytes per heap (0: heap_bytes)
    data_item: int = -1  # the addressed item placed (vis), found from the item pointers
    scan_item: int = -1  # the addressed scan id item whose address is kept (vis)


class VisAssembler:
    """The CBF-SDP visibility profile (see the ring-pair contract in docs/ingest.md)."""

    def __init__(self, config: IngestConfig, data_bufsz: int) -> None:
        data_resolution = config.nchan * (config.nant * (config.nant + 1) // 2) * 32
        dpb = config.dumps_per_block or max(1, data_bufsz // data_resolution)
        self.config = config
        self.layout = cbf_sdp.VisLayout(
            nant=config.nant, nchan=config.nchan, start_channel=config.start_channel,
            channels_per_heap=config.channels_per_stream,
            dumps_per_block=dpb, int_time=config.int_time)
        lay = self.layout
        self.heaps_per_chunk = lay.heaps_per_chunk
        self.heap_bytes = lay.heap_bytes
        # a heap's payload may hold descriptors and addressed items besides the visibilities
        self.slot_bytes = lay.heap_bytes + config.max_heap_metadata_bytes
        self.steps_per_chunk, self.heaps_per_step = dpb, lay.nblocks
        self.data_step_bytes = lay.data_resolution
        self.weights_step_bytes = lay.weights_resolution
        self.data_bytes = dpb * lay.data_resolution
        self.weights_bytes = dpb * lay.weights_resolution
        self.spec = PlaceSpec(
            placement.VIS_ITEMS, placement.place_vis, lay.period_ticks, lay.channels_per_heap,
            lay.nblocks, dpb, lay.nbaseline, lay.heap_bytes, cbf_sdp.VIS_KNOWN_ITEMS,
            cbf_sdp.VIS_META_ITEMS, placement.VIS_EXTRA_BYTES, lay.start_channel,
            self.slot_bytes, cbf_sdp.CORRELATOR_OUTPUT_DATA, cbf_sdp.SCAN_ID)

    def _offsets(self, extra: np.ndarray | None) -> np.ndarray:
        """Per heap: (visibility address, scan id address or -1) in its payload."""
        assert extra is not None, "the visibility callback records addresses in extra"
        return extra.view(np.int64).reshape(self.heaps_per_chunk, 2)

    def fill(self, chunk: np.ndarray, present: np.ndarray, extra: np.ndarray | None,
             data: np.ndarray, weights: np.ndarray) -> int:
        """Deinterleave (TCI, FD, VIS) into the data and weights blocks; zero the holes.

        Each heap's visibilities start at the address its item pointer gave (recorded by the
        callback in ``extra``); one strided copy per distinct address (one for a sender that
        frames every heap alike). Returns the heaps whose FD was taken as unpopulated.
        """
        nheap, hb = self.heaps_per_chunk, self.heap_bytes
        slots = chunk[:nheap * self.slot_bytes].reshape(nheap, self.slot_bytes)
        dat = data.view(np.complex64).reshape(nheap, -1, 4)
        wts = weights.view(cbf_sdp.WEIGHTS_DTYPE).reshape(nheap, -1)
        missing = present == 0
        vis_off = self._offsets(extra)[:, 0]
        offsets = np.unique(vis_off[~missing])
        for off in offsets.tolist():
            src = slots[:, off:off + hb].view(cbf_sdp.VIS_DTYPE)
            if offsets.size == 1:
                dat[:] = src["VIS"]
                wts["TCI"] = src["TCI"]
                wts["FD"] = src["FD"]
            else:
                rows = np.flatnonzero((vis_off == off) & ~missing)
                part = src[rows]
                dat[rows] = part["VIS"]
                wts["TCI"][rows] = part["TCI"]
                wts["FD"][rows] = part["FD"]
        if missing.any():
            data.reshape(nheap, -1)[missing] = 0
            weights.reshape(nheap, -1)[missing] = 0
        return self._apply_fd_policy(wts["FD"], dat, ~missing)

    def _apply_fd_policy(self, fd: np.ndarray, vis: np.ndarray, present: np.ndarray) -> int:
        """FD_POLICY on the block's FD (heaps x visibilities); returns heaps taken as
        unpopulated (auto)."""
        policy = self.config.fd_policy
        if policy == FdPolicy.ICD or not present.any():
            return 0
        if policy == FdPolicy.IGNORE:
            fd[present] = 255
            return 0
        candidates = np.flatnonzero(present & ~fd.any(axis=1))
        if not candidates.size:
            return 0
        unpopulated = candidates[vis[candidates].reshape(candidates.size, -1).any(axis=1)]
        fd[unpopulated] = 255
        return int(unpopulated.size)

    def scan_id(self, chunk: np.ndarray, present: np.ndarray,
                extra: np.ndarray | None) -> int | None:
        """The u64 scan id carried by the chunk's first heap that has one, or None."""
        scan_off = self._offsets(extra)[:, 1]
        for heap in np.flatnonzero((present != 0) & (scan_off >= 0)).tolist():
            start = heap * self.slot_bytes + int(scan_off[heap])
            raw = chunk[start:start + 8]
            if raw.size == 8:
                return int(raw.view("<u8")[0])
        return None

    def fill_hole(self, data: np.ndarray, weights: np.ndarray) -> None:
        data[:] = 0
        weights[:] = 0

    def headers(self, first_chunk: int, phase: int, meta: dict[int, int],
                scan_id: int) -> tuple[DadaHeader, DadaHeader]:
        cfg, lay = self.config, self.layout
        first_dump = first_chunk * lay.dumps_per_block
        time0 = (first_dump * lay.period_ticks + phase) / cbf_sdp.TICKS_PER_SECOND
        freq0 = cfg.freq0_hz if cfg.freq0_hz >= 0 else _f64(meta.get(cbf_sdp.FREQ0_HZ))
        width = cfg.chan_width_hz or _f64(meta.get(cbf_sdp.CHAN_WIDTH_HZ))
        if freq0 is None and cfg.fallback_freq0_hz >= 0:
            freq0 = cfg.fallback_freq0_hz
        if not width and cfg.fallback_chan_width_hz:
            width = cfg.fallback_chan_width_hz
        shared: dict[str, object] = {
            "HDR_SIZE": 4096, "SCAN_ID": scan_id,
            "UTC_START": utc_string(time0 - lay.int_time / 2), "TIME0_UNIX": repr(time0),
            "INT_TIME": repr(lay.int_time), "ICD_EPOCH": "UNIX", "ICD_REVISION": ICD_REVISION,
            "NANT": lay.nant, "NBASELINE": lay.nbaseline,
            "BASELINE_ORDER": "upper-triangle-with-autos", "NCHAN": lay.nchan,
            "START_CHANNEL": lay.start_channel, "CHANNELS_PER_STREAM": lay.channels_per_heap,
        }
        if freq0 is not None and width:
            shared["FREQ0_HZ"] = repr(freq0)
            shared["CHAN_WIDTH_HZ"] = repr(width)
        else:
            logger.warning("FREQ0_HZ/CHAN_WIDTH_HZ unknown (not configured, not in the stream): "
                           "the transfer header has no frequencies")
        shared.update({"NPOL": 4, "POL_ORDER": "XX,XY,YX,YY", "NDIM": 2,
                       "DUMPS_PER_BLOCK": lay.dumps_per_block, "FD_POLICY": cfg.fd_policy.value})
        shared.update(cfg.passthrough())
        data = DadaHeader({"DATA_KIND": "VIS", **shared, "NBIT": 32,
                           "RESOLUTION": lay.data_resolution, "OBS_OFFSET": 0})
        wts = DadaHeader({"DATA_KIND": "VIS_WEIGHTS", **shared, "NBIT": 8,
                          "RESOLUTION": lay.weights_resolution, "OBS_OFFSET": 0})
        return data, wts


class BeamAssembler:
    """The voltage-beam profile: ring blocks in the exact SKA PST data + weights layout."""

    def __init__(self, config: IngestConfig, data_bufsz: int) -> None:
        self.config = config
        self.layout = lay = pst.PstLayout.from_shape(
            config.nchan, config.udp_nchan, config.udp_nsamp, config.wt_nsamp, config.nbit)
        hpb = max(1, data_bufsz // lay.data_heap_stride)
        self.heaps_per_block = hpb
        self.heaps_per_chunk = hpb * lay.packets_per_heap
        self.heap_bytes = self.slot_bytes = lay.spead_payload_bytes
        self.steps_per_chunk, self.heaps_per_step = hpb, lay.packets_per_heap
        self.data_step_bytes = lay.data_heap_stride
        self.weights_step_bytes = lay.weights_heap_stride
        self.data_bytes = hpb * lay.data_heap_stride
        self.weights_bytes = hpb * lay.weights_heap_stride
        self.spec = PlaceSpec(
            placement.BEAM_ITEMS, placement.place_beam, lay.udp_nsamp, lay.udp_nchan,
            lay.packets_per_heap, hpb, 0, lay.spead_payload_bytes, pst.BEAM_KNOWN_ITEMS,
            pst.BEAM_META_ITEMS, placement.BEAM_EXTRA_BYTES, config.start_channel)

    def fill(self, chunk: np.ndarray, present: np.ndarray, extra: np.ndarray | None,
             data: np.ndarray, weights: np.ndarray) -> int:
        """Scale (from the chunk extra), weights and data into PST records; NaN the holes."""
        lay = self.layout
        npk, nw, ns = self.heaps_per_chunk, lay.packet_weights_size, lay.packet_scales_size
        src = chunk.reshape(npk, lay.spead_payload_bytes)
        wts = weights.reshape(npk, lay.weights_packet_stride)
        dat = data.reshape(npk, lay.packet_data_bytes)
        if extra is not None:
            wts[:, :ns] = extra.reshape(npk, placement.BEAM_EXTRA_BYTES)
        wts[:, ns:] = src[:, :nw]
        dat[:] = src[:, nw:]
        missing = present == 0
        if missing.any():
            dat[missing] = 0
            wts[missing] = 0
            wts[missing, :ns] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
        return 0

    def scan_id(self, chunk: np.ndarray, present: np.ndarray,
                extra: np.ndarray | None) -> int | None:
        """Beam data heaps carry no scan id."""
        return None

    def fill_hole(self, data: np.ndarray, weights: np.ndarray) -> None:
        self.fill(np.zeros(self.heaps_per_chunk * self.slot_bytes, np.uint8),
                  np.zeros(self.heaps_per_chunk, np.uint8), None, data, weights)

    def headers(self, first_chunk: int, phase: int, meta: dict[int, int],
                scan_id: int) -> tuple[DadaHeader, DadaHeader]:
        cfg, lay = self.config, self.layout
        tsamp_us = float(cfg.tsamp)
        first_sample = first_chunk * self.heaps_per_block * lay.udp_nsamp
        if pst.BEAM_START_SECONDS in meta:
            start_ps = (meta[pst.BEAM_START_SECONDS] * 10**12
                        + meta.get(pst.BEAM_START_PICOSECONDS, 0))
        else:
            logger.warning("no start time in the beam stream: UTC_START is the local clock")
            start_ps = int(dt.datetime.now(dt.timezone.utc).timestamp()) * 10**12
        start_ps += round(first_sample * tsamp_us * 10**6)
        heap_seconds = lay.udp_nsamp * tsamp_us * 1e-6
        start_channel = cfg.start_channel
        shared: dict[str, object] = {"HDR_SIZE": 4096}
        shared.update(cfg.passthrough())
        shared.update({
            "NANT": 1, "TSAMP": cfg.tsamp, "WT_NSAMP": lay.wt_nsamp, "UDP_NSAMP": lay.udp_nsamp,
            "UDP_NCHAN": lay.udp_nchan, "NCHAN": lay.nchan, "START_CHANNEL": start_channel,
            "END_CHANNEL": start_channel + lay.nchan, "OBS_OFFSET": 0,
            "DATA_KEY": cfg.data_key, "WEIGHTS_KEY": cfg.weights_key,
            "UTC_START": utc_string(start_ps // 10**12), "PICOSECONDS": start_ps % 10**12,
            "SCAN_ID": scan_id,
        })
        data_keys, weights_keys = lay.header_keys()
        data = DadaHeader({**shared, "NBIT": lay.nbit, "NPOL": lay.npol, "NDIM": lay.ndim,
                           "RESOLUTION": data_keys["RESOLUTION"],
                           "BYTES_PER_SECOND": repr(lay.data_heap_stride / heap_seconds)})
        wts = DadaHeader({
            "PACKET_WEIGHTS_SIZE": weights_keys["PACKET_WEIGHTS_SIZE"],
            "PACKET_SCALES_SIZE": weights_keys["PACKET_SCALES_SIZE"], **shared,
            "NBIT": lay.weights_nbit, "NPOL": 1, "NDIM": 1,
            "RESOLUTION": weights_keys["RESOLUTION"],
            "BYTES_PER_SECOND": repr(lay.weights_heap_stride / heap_seconds),
            "BLOCK_HEADER_BYTES": weights_keys["BLOCK_HEADER_BYTES"],
            "BLOCK_DATA_BYTES": weights_keys["BLOCK_DATA_BYTES"],
        })
        return data, wts


def last_present_step(present: np.ndarray, steps_per_chunk: int) -> int:
    """Index of the last time step of a chunk with any heap present (-1 if none)."""
    steps = np.flatnonzero(present.reshape(steps_per_chunk, -1).any(axis=1))
    return int(steps[-1]) if steps.size else -1


def _f64(raw: int | None) -> float | None:
    if raw is None:
        return None
    return float(np.array([raw], np.int64).view(np.float64)[0])


Assembler = VisAssembler | BeamAssembler


def make_assembler(config: IngestConfig, data_bufsz: int) -> Assembler:
    """The assembler of the config's PROFILE for ring blocks of ``data_bufsz`` bytes."""
    if config.profile == Profile.VIS:
        return VisAssembler(config, data_bufsz)
    return BeamAssembler(config, data_bufsz)
