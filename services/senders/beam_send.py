"""``beam-send``: generate and send a voltage beam as SPEAD heaps, one per SKA PST packet.

The stream shape uses the SKA PST header keys (NCHAN, UDP_NCHAN, UDP_NSAMP, WT_NSAMP, NBIT,
TSAMP, ...), so one PST-style config file (``configs/beam-ingest.hdr``) drives both
beam-send and svc-ingest. The signal: Gaussian noise (sigma ramping linearly from
``beam.sigma`` to ``beam.sigma_end`` over the channels), optional tones, clipped samples and
NaN-scale packets. A pool of ``beam.pool_heaps`` PST heaps is generated once and sent in turn
(PST heap ``n`` carries pool heap ``n % pool_heaps``), so the data are reproducible.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import click
import numpy as np
import spead2.send

from ringbuf.errors import HeaderError
from services.common.config import Config, non_negative, positive, setting
from services.formats import pst, spead_send
from services.senders import sendlib
from services.senders.command import SenderArgs, SenderKeys, sender_options

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BeamSendConfig(Config):
    nchan: int = setting("NCHAN", int, validator=positive, help="channels")
    start_channel: int = setting("START_CHANNEL", int, default=0, validator=non_negative,
                                 help="first channel number")
    udp_nchan: int = setting("UDP_NCHAN", int, validator=positive, help="channels per packet")
    udp_nsamp: int = setting("UDP_NSAMP", int, validator=positive, help="samples per packet")
    wt_nsamp: int = setting("WT_NSAMP", int, validator=positive, help="samples per weight")
    nbit: int = setting("NBIT", int, default=16, help="8 or 16")
    tsamp: float = setting("TSAMP", float, validator=positive, help="sample period, microseconds")
    scan_id: int = setting("SCAN_ID", int, default=1, validator=non_negative, help="scan id")
    host: str = setting("DATA_HOST", str, default="127.0.0.1", help="receiver address")
    port: int = setting("DATA_PORT", int, default=9510, validator=positive, help="first port")
    nstreams: int = setting("NSTREAMS", int, default=1, validator=positive,
                            help="ports DATA_PORT..; each carries a channel range")
    sigma: float = setting("beam.sigma", float, default=10.0, validator=non_negative,
                           help="noise sigma (per I and Q) in the first channel")
    sigma_end: float = setting("beam.sigma_end", float, default=-1.0,
                               help="noise sigma in the last channel (default beam.sigma)")
    tone_channels: str = setting("beam.tone_channels", str, default="",
                                 help="comma-separated channel indices with a tone")
    tone_amplitude: float = setting("beam.tone_amplitude", float, default=50.0,
                                    help="tone amplitude (integer units)")
    clip_fraction: float = setting("beam.clip_fraction", float, default=0.0,
                                   validator=non_negative, help="fraction of samples clipped")
    nan_every: int = setting("beam.nan_every", int, default=0, validator=non_negative,
                             help="every Nth packet gets a NaN scale (0: none)")
    scale: float = setting("beam.scale", float, default=1.0, help="scale of valid packets")
    duration_s: float = setting("beam.duration_s", float, default=1.0, validator=positive,
                                help="seconds of data (sample time) to send")
    rate: float = setting("beam.rate", float, default=0.0, validator=non_negative,
                          help="bytes/s (0: real time, the data rate of the beam)")
    ttl: int = setting("beam.ttl", int, default=1, validator=positive,
                       help="with a multicast DATA_HOST: multicast TTL")
    interface_address: str = setting(
        "beam.interface_address", str, default="",
        help="with a multicast DATA_HOST: address of the interface to send from")
    max_packet_size: int = setting("beam.max_packet_size", int, default=8972,
                                   validator=positive, help="UDP payload bytes")
    pool_heaps: int = setting("beam.pool_heaps", int, default=16, validator=positive,
                              help="distinct PST heaps generated and cycled")
    seed: int = setting("beam.seed", int, default=1, help="random seed")
    skip_packets: str = setting("beam.skip_packets", str, default="",
                                help="test aid: 'heap:packet,...' packets not sent")

    def check(self):
        if self.nbit not in (8, 16):
            yield f"NBIT {self.nbit}: must be 8 or 16"
        if self.nchan % self.udp_nchan:
            yield f"NCHAN {self.nchan} is not a multiple of UDP_NCHAN {self.udp_nchan}"
        elif (self.nchan // self.udp_nchan) % self.nstreams:
            yield f"NSTREAMS {self.nstreams} does not divide NCHAN / UDP_NCHAN"
        if self.udp_nsamp % self.wt_nsamp:
            yield f"UDP_NSAMP {self.udp_nsamp} is not a multiple of WT_NSAMP {self.wt_nsamp}"

    @property
    def layout(self) -> pst.PstLayout:
        return pst.PstLayout.from_shape(self.nchan, self.udp_nchan, self.udp_nsamp,
                                        self.wt_nsamp, self.nbit)


@dataclass
class BeamPool:
    """The generated packets: ``[pool heap, packet]`` scale, weights and data."""

    scale: np.ndarray  # (K, P, 1) float32
    weights: np.ndarray  # (K, P, nweights) uint16
    data: np.ndarray  # (K, P, 2, UDP_NCHAN, UDP_NSAMP, 2) int8|int16


def generate(cfg: BeamSendConfig) -> BeamPool:
    """Noise, tones, clipping and NaN scales, reproducible from ``beam.seed``."""
    lay, k = cfg.layout, cfg.pool_heaps
    pph = lay.packets_per_heap
    rng = np.random.default_rng(cfg.seed)
    sigma_end = cfg.sigma if cfg.sigma_end < 0 else cfg.sigma_end
    sigma = np.linspace(cfg.sigma, sigma_end, cfg.nchan).reshape(pph, 1, lay.udp_nchan, 1, 1)
    shape = (k, pph, 2, lay.udp_nchan, lay.udp_nsamp, 2)
    values = rng.standard_normal(shape) * sigma
    t = np.arange(k)[:, None] * lay.udp_nsamp + np.arange(lay.udp_nsamp)  # (K, UDP_NSAMP)
    for chan in _ints(cfg.tone_channels, "beam.tone_channels"):
        if not 0 <= chan < cfg.nchan:
            raise HeaderError(f"beam.tone_channels: channel {chan} outside 0..{cfg.nchan - 1}")
        phase = 2 * np.pi * 0.125 * t
        p, c = divmod(chan, lay.udp_nchan)
        values[:, p, :, c, :, 0] += cfg.tone_amplitude * np.cos(phase)[:, None, :]
        values[:, p, :, c, :, 1] += cfg.tone_amplitude * np.sin(phase)[:, None, :]
    info = np.iinfo(lay.sample_dtype)
    data = np.clip(np.rint(values), info.min, info.max).astype(lay.sample_dtype)
    if cfg.clip_fraction:
        clipped = rng.random(shape) < cfg.clip_fraction
        data[clipped] = np.where(rng.random(int(clipped.sum())) < 0.5, info.min, info.max)
    scale = np.full((k, pph, 1), cfg.scale, np.float32)
    if cfg.nan_every:
        flat = scale.reshape(-1)
        flat[cfg.nan_every - 1::cfg.nan_every] = np.nan
    weights = np.full((k, pph, lay.udp_nchan * (lay.udp_nsamp // lay.wt_nsamp)), 65535, np.uint16)
    return BeamPool(scale, weights, data)


def _ints(text: str, key: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise HeaderError(f"{key}: {text!r} is not a comma-separated list of integers") from None


class BeamSender:
    def __init__(self, cfg: BeamSendConfig, pool: BeamPool) -> None:
        lay = cfg.layout
        self.cfg, self.pool, self.lay = cfg, pool, lay
        self.pph = lay.packets_per_heap
        per_stream = self.pph // cfg.nstreams
        heap_s = lay.udp_nsamp * cfg.tsamp * 1e-6
        rate = cfg.rate or lay.spead_payload_bytes * self.pph / heap_s
        ports = [cfg.port + i for i in range(cfg.nstreams)]
        self.stream = sendlib.make_stream(cfg.host, ports, cfg.max_packet_size, rate,
                                          max_heaps=pool.data.shape[0] * self.pph + 8,
                                          interface_address=cfg.interface_address, ttl=cfg.ttl)
        k = pool.data.shape[0]
        # beam-send's own beam_data descriptor text, kept so its bytes are unchanged
        items = spead_send.PstBeamItems(pool.weights.shape[2], pool.data.shape[2:],
                                        lay.sample_dtype, "samples [pol][chan][samp][dim]")
        self.items = items
        self.ig = spead_send.descriptor_group([
            items.sample_count, items.first_channel, items.start_seconds,
            items.start_picoseconds, items.scan, items.scale, items.weights, items.data])
        # per heap: sample count (refilled), first channel, scale (the float32's 4 bytes)
        self.imm = np.zeros((k, self.pph, 3), ">u8")
        scale_bytes = pool.scale.astype("<f4", copy=False).view(np.uint8)
        self.imm[:, :, 2] = items.scale_immediates(scale_bytes)
        self.refs: list[list[spead2.send.HeapReference]] = []
        for j in range(k):
            refs = []
            for p in range(self.pph):
                self.imm[j, p, 1] = cfg.start_channel + p * lay.udp_nchan
                heap = items.data_heap(self.imm[j, p], pool.weights[j, p], pool.data[j, p])
                refs.append(spead2.send.HeapReference(heap, substream_index=p // per_stream))
            self.refs.append(refs)
        self.batches = sendlib.HeapBatches(
            self.stream, [spead2.send.HeapReferenceList(r) for r in self.refs])

    def nheaps(self) -> int:
        return max(1, round(self.cfg.duration_s / (self.lay.udp_nsamp * self.cfg.tsamp * 1e-6)))

    async def send(self) -> tuple[int, int]:
        cfg = self.cfg
        now_ps = time.time_ns() * 1000
        for heap in spead_send.control_heaps(self.ig,
                                             self.items.metadata_heap(cfg.scan_id, now_ps)):
            for i in range(cfg.nstreams):
                await self.stream.async_send_heap(heap, substream_index=i)
        skips = sendlib.parse_pairs(cfg.skip_packets, "beam.skip_packets", "heap:packet")
        k = len(self.refs)
        for n in range(self.nheaps()):
            j = n % k
            await self.batches.wait_slot(j)
            self.imm[j, :, 0] = n * self.lay.udp_nsamp
            skipped = {p for (heap, p) in skips if heap == n}
            if skipped:
                refs = [r for p, r in enumerate(self.refs[j]) if p not in skipped]
                if refs:
                    self.batches.bytes_sent += await self.stream.async_send_heaps(
                        spead2.send.HeapReferenceList(refs), spead2.send.GroupMode.ROUND_ROBIN)
                    self.batches.heaps_sent += len(refs)
            else:
                self.batches.send_slot(j, self.pph)
        await self.batches.drain()
        for i in range(cfg.nstreams):
            await self.stream.async_send_heap(self.ig.get_end(), substream_index=i)
        return self.batches.heaps_sent, self.batches.bytes_sent


def run(cfg: BeamSendConfig) -> tuple[int, int, float]:
    sender = BeamSender(cfg, generate(cfg))
    started = time.monotonic()
    heaps, nbytes = asyncio.run(sender.send())
    return heaps, nbytes, time.monotonic() - started


KEYS = SenderKeys(host="DATA_HOST", port="DATA_PORT", rate="beam.rate", ttl="beam.ttl",
                  interface="beam.interface_address")


@click.command(help=f"""Generate a voltage beam and send it as SPEAD heaps, one per SKA PST packet.

With NSTREAMS n, port --port + i carries the i-th of n equal channel ranges of every PST heap.

\b
Config keys (from -c files such as a PST header, RINGPIPE_<KEY> environment variables,
or -o KEY=VALUE):
{BeamSendConfig.keys_help()}

\b
Examples:
  beam-send -c configs/beam-ingest.hdr -o beam.duration_s=2 \\
      -o beam.tone_channels=100 -o beam.nan_every=50
  beam-send -c configs/beam-ingest.hdr --port 9600 --rate 5e8    # faster than real time
""")
@sender_options(KEYS)
def main(args: SenderArgs) -> None:
    heaps, nbytes, seconds = run(args.load(BeamSendConfig))
    click.echo(f"sent {heaps} packets, {nbytes} bytes in {seconds:.2f} s")
