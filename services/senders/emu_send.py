"""``emu-send MS``: send a MeasurementSet as the CBF-SDP ICD visibility stream.

A drop-in for the SKA CBF-SDP emulator's ``emu-send`` (docs/emulator.md): the same option
names, defaults and meanings (``reader.*``, ``transmission.*``, ``payload.*``), read from the
emulator's INI files (``-c sender.conf``) or ringpipe ``KEY value`` files,
``RINGPIPE_READER_START_CHAN``-style environment variables and ``-o KEY=VALUE``; a key it
does not know is an error naming the key. Stream ``i`` (port ``target_port_start + i``)
carries channels ``start_chan + i*channels_per_stream ..`` of every dump, one heap per dump,
with every ICD item (0x6000-0x600A); ``transmission.framing`` says where descriptors and
``scan_id`` travel.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import spead2.send

from ringbuf.errors import HeaderError
from services.common.config import Config, non_negative, one_of, positive, setting
from services.formats import cbf_sdp, spead_send
from services.senders import sendlib
from services.senders.command import SenderArgs, SenderKeys, sender_options

logger = logging.getLogger(__name__)

MJD_UNIX_OFFSET_S = 3506716800.0  # MJD 40587 (1970-01-01) in MJD seconds
FD_FULL = 255  # FD of a fully valid visibility (fraction of data in 1/255 units)
#: u32 immediates of a data heap, in the order of the per-slot value arrays
U32_ITEMS = tuple((item_id, cbf_sdp.ITEM_NAMES[item_id]) for item_id in (
    cbf_sdp.TIMESTAMP_COUNT, cbf_sdp.TIMESTAMP_FRACTION, cbf_sdp.CHANNEL_ID,
    cbf_sdp.CHANNEL_COUNT, cbf_sdp.POLARISATION_ID, cbf_sdp.BASELINE_COUNT,
    cbf_sdp.HARDWARE_ID))
#: emu-send's own descriptor texts, kept so its descriptor heaps are byte-for-byte unchanged
DESCRIPTIONS = {cbf_sdp.FREQ0_HZ: "centre of channel 0", cbf_sdp.CHAN_WIDTH_HZ: "channel spacing"}
#: u16 immediates of a data heap
U16_ITEMS = tuple((item_id, cbf_sdp.ITEM_NAMES[item_id])
                  for item_id in (cbf_sdp.PHASE_BIN_ID, cbf_sdp.PHASE_BIN_COUNT))


class Framing(str, enum.Enum):
    """Where descriptors and ``scan_id`` travel.

    ``separate``: in a descriptor heap and a metadata heap after the start heap; data heaps
    carry the immediates and ``correlator_output_data`` alone (what svc-ingest has always
    accepted). ``every_heap``: as the emulator's transmitter does, every data heap also
    carries every descriptor and the addressed ``scan_id``.
    """

    SEPARATE = "separate"
    EVERY_HEAP = "every_heap"


@dataclass(frozen=True, kw_only=True)
class EmuSendConfig(Config):
    start_chan: int = setting("reader.start_chan", int, default=0, validator=non_negative,
                              help="first MS channel sent (beyond the MS: error)")
    num_chan: int = setting("reader.num_chan", int, default=0, validator=non_negative,
                            help="channels sent (0: all from start_chan; clamped to the MS)")
    num_timestamps: int = setting("reader.num_timestamps", int, default=0,
                                  validator=non_negative, help="dumps read (0: all)")
    num_repeats: int = setting("reader.num_repeats", int, default=1, validator=positive,
                               help="times the dumps are sent (TIME keeps advancing)")
    method: str = setting("transmission.method", str, default="spead2",
                          validator=one_of("spead2", "spead2_transmitters"),
                          help="transmitter (only spead2)")
    transport_protocol: str = setting("transmission.transport_protocol", str, default="udp",
                                      validator=one_of("udp"), help="only udp")
    target_host: str = setting("transmission.target_host", str, default="127.0.0.1",
                               help="receiver address")
    target_port_start: int = setting("transmission.target_port_start", int, default=41000,
                                     validator=positive, help="port of stream 0")
    endpoints: str = setting("transmission.endpoints", str, default="",
                             help="'host:port' or 'host:p0-p1', comma separated, one per "
                                  "stream; overrides target_host and target_port_start")
    interface_address: str = setting(
        "transmission.interface_address", str, default="",
        help="with a multicast target_host: address of the interface to send from")
    ttl: int = setting("transmission.ttl", int, default=1, validator=positive,
                       help="with a multicast target_host: multicast TTL")
    channels_per_stream: int = setting("transmission.channels_per_stream", int, default=0,
                                       validator=non_negative,
                                       help="channels per heap/stream (0: all in one stream)")
    max_packet_size: int = setting("transmission.max_packet_size", int, default=1472,
                                   validator=positive,
                                   help="largest UDP payload (spead2's default; 8972 for "
                                        "9000-byte MTUs)")
    buffer_size: int = setting("transmission.buffer_size", int, default=4 << 20,
                               validator=positive, help="socket send buffer bytes")
    rate: float = setting("transmission.rate", float, default=1e9, validator=non_negative,
                          help="bytes per second of each stream, as the emulator (0: unlimited)")
    total_rate: float = setting("transmission.total_rate", float, default=0.0,
                                validator=non_negative,
                                help="bytes per second over all streams; > 0 replaces "
                                     "transmission.rate (--rate sets it)")
    time_interval: float = setting(
        "transmission.time_interval", float, default=-1.0,
        help=">0: seconds between dumps; 0: the MS TIME steps; <0: as fast as the rate allows")
    scan_id: int = setting("transmission.scan_id", int, default=1, validator=non_negative,
                           help="scan id of every payload")
    framing: Framing = setting("transmission.framing", Framing, default=Framing.SEPARATE,
                               help="separate (descriptor and metadata heaps) or every_heap "
                                    "(descriptors and scan_id in every data heap)")
    hardware_id: int = setting("transmission.hardware_id", int, default=0,
                               validator=non_negative, help="visibility_hardware_id")
    byte_order: cbf_sdp.ByteOrder = setting(
        "transmission.immediate_byte_order", cbf_sdp.ByteOrder, default=cbf_sdp.ByteOrder.BIG,
        help="big (SPEAD, format u32) or little (dtype '<u4', as the emulator declares them)")
    skip_heaps: str = setting("transmission.skip_heaps", str, default="",
                              help="test aid: 'dump:stream,...' heaps not sent "
                                   "(dump counts repeats)")
    payload_method: str = setting("payload.method", str, default="icd",
                                  validator=one_of("icd"), help="payload layout (only icd)")
    polarisation_id: int = setting("payload.polarisation_id", int, default=0,
                                   validator=non_negative, help="visibility_polarisation_id")
    phase_bin_id: int = setting("payload.phase_bin_id", int, default=0, validator=non_negative,
                                help="phase_bin_id")
    phase_bin_count: int = setting("payload.phase_bin_count", int, default=1,
                                   validator=non_negative, help="phase_bin_count")

    def check(self) -> Iterable[str]:
        if self.endpoints:
            try:
                parse_endpoints(self.endpoints)
            except ValueError as exc:
                yield f"transmission.endpoints {self.endpoints!r}: {exc}"
        for key, value, bits in (("payload.polarisation_id", self.polarisation_id, 32),
                                 ("transmission.hardware_id", self.hardware_id, 32),
                                 ("payload.phase_bin_id", self.phase_bin_id, 16),
                                 ("payload.phase_bin_count", self.phase_bin_count, 16)):
            if value >= 1 << bits:
                yield f"{key} {value}: must fit in {bits} bits"


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """``"h:p,h:p0-p1"`` -> ``[(h, p), (h, p0), ..., (h, p1)]`` (ranges inclusive)."""
    out: list[tuple[str, int]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        host, sep, ports = part.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{part!r} is not host:port or host:start-end")
        first, _, last = ports.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"{part!r}: bad port") from None
        if not 0 < lo <= hi < 65536:
            raise ValueError(f"{part!r}: bad port range")
        out += [(host, port) for port in range(lo, hi + 1)]
    if not out:
        raise ValueError("no endpoint")
    return out


@dataclass
class MsDumps:
    """Dumps of a MeasurementSet in ICD order: (time, channel, baseline) with TCI/FD/VIS."""

    payload: np.ndarray  # (ntime, nchan, nbaseline) VIS_DTYPE
    times_unix: np.ndarray  # (ntime,) centre of each dump, Unix seconds
    int_time: float
    nant: int
    freq0_hz: float  # centre frequency of MS channel 0
    chan_width_hz: float


def baseline_index(a1: np.ndarray, a2: np.ndarray, nant: int) -> np.ndarray:
    """Upper-triangle-with-autos index of (a1 <= a2): for a1: for a2 in a1..nant-1."""
    return a1 * nant - a1 * (a1 - 1) // 2 + (a2 - a1)


def read_ms(path: str, start_chan: int, num_chan: int, num_timestamps: int) -> MsDumps:
    """DATA/FLAG of the first DATA_DESC_ID of an MS in ICD order (HeaderError if unusable)."""
    from casacore import tables

    if not Path(path, "table.dat").exists():
        raise HeaderError(f"{path}: not a MeasurementSet (no table.dat)")
    with tables.table(path, ack=False) as ms:
        nant = tables.table(ms.getkeyword("ANTENNA"), ack=False).nrows()
        spw = tables.table(ms.getkeyword("SPECTRAL_WINDOW"), ack=False)
        freqs = spw.getcol("CHAN_FREQ")[0]
        spw.close()
        nchan_ms = freqs.shape[0]
        num_chan = clamp_channels(path, nchan_ms, start_chan, num_chan)
        time_col = ms.getcol("TIME")
        times = np.unique(time_col)
        if num_timestamps:
            times = times[:num_timestamps]
        nrows = int(np.searchsorted(time_col, times[-1], side="right"))
        a1 = ms.getcol("ANTENNA1", 0, nrows)
        a2 = ms.getcol("ANTENNA2", 0, nrows)
        chans = slice(start_chan, start_chan + num_chan)
        data = ms.getcol("DATA", 0, nrows)[:, chans]
        flag = ms.getcol("FLAG", 0, nrows)[:, chans]
        interval = float(ms.getcol("INTERVAL", 0, 1)[0])
    if data.shape[2] != 4:
        raise HeaderError(f"{path}: DATA has {data.shape[2]} polarisations, the ICD needs 4")
    lo, hi = np.minimum(a1, a2), np.maximum(a1, a2)
    nbl = nant * (nant + 1) // 2
    payload = np.zeros((len(times), num_chan, nbl), cbf_sdp.VIS_DTYPE)
    t_index = np.searchsorted(times, time_col[:nrows])
    b_index = baseline_index(lo, hi, nant)
    vis = data.astype(np.complex64)
    swapped = a1 > a2
    vis[swapped] = np.conj(vis[swapped][:, :, [0, 2, 1, 3]])
    payload["VIS"][t_index, :, b_index] = vis
    payload["FD"][t_index, :, b_index] = np.where(flag.all(axis=2), 0, FD_FULL)
    width = float(freqs[1] - freqs[0]) if nchan_ms > 1 else 0.0
    return MsDumps(payload, times - MJD_UNIX_OFFSET_S, interval, nant, float(freqs[0]), width)


def clamp_channels(path: str, nchan_ms: int, start_chan: int, num_chan: int) -> int:
    """Channels sent, as the emulator reads them: ``start_chan`` beyond the MS is an error,
    ``num_chan`` 0 means all, and a ``num_chan`` past the end is cut to the MS's channels."""
    if start_chan >= nchan_ms:
        raise HeaderError(f"{path}: reader.start_chan {start_chan} is beyond the {nchan_ms} "
                          "channels of the MS")
    available = nchan_ms - start_chan
    if num_chan > available:
        logger.info("reader.num_chan %d adjusted to %d (the MS has %d channels from %d)",
                    num_chan, available, nchan_ms, start_chan)
    return min(num_chan, available) if num_chan else available


def ticks_of(unix_seconds: float) -> tuple[int, int]:
    """(timestamp_count, timestamp_fraction) of a Unix time."""
    count = int(unix_seconds // 1)
    frac = round((unix_seconds - count) * cbf_sdp.TICKS_PER_SECOND)
    if frac == cbf_sdp.TICKS_PER_SECOND:
        count, frac = count + 1, 0
    return count, frac


class VisSender:
    """Sends :class:`MsDumps` as ICD heaps (one heap per dump per stream)."""

    def __init__(self, dumps: MsDumps, cfg: EmuSendConfig, start_chan: int) -> None:
        cps = cfg.channels_per_stream or dumps.payload.shape[1]
        nchan = dumps.payload.shape[1]
        if nchan % cps:
            raise HeaderError(f"reader.num_chan {nchan} is not a multiple of "
                              f"transmission.channels_per_stream {cps}")
        self.dumps, self.cfg, self.cps = dumps, cfg, cps
        self.nstreams = nchan // cps
        self.ntime, _, self.nbl = dumps.payload.shape
        self.start_chan = start_chan
        self.stream = sendlib.make_stream_to(
            self._endpoints(), cfg.max_packet_size, self.total_rate(),
            max_heaps=(self.ntime + 2) * self.nstreams + 8, buffer_size=cfg.buffer_size,
            interface_address=cfg.interface_address, ttl=cfg.ttl)
        self.ig = self._item_group()
        little = cfg.byte_order == cbf_sdp.ByteOrder.LITTLE
        # per-slot immediates, updated in place: 0-d views of these are the heaps' values
        self.u32 = np.zeros((self.ntime, self.nstreams, len(U32_ITEMS)),
                            "<u4" if little else ">u4")
        self.u16 = np.zeros((self.ntime, self.nstreams, len(U16_ITEMS)),
                            "<u2" if little else ">u2")
        self.payload = dumps.payload.reshape(self.ntime, self.nstreams, cps, self.nbl)
        self.heaps = [self._slot(j) for j in range(self.ntime)]
        self.batches = sendlib.HeapBatches(
            self.stream, [spead2.send.HeapReferenceList(refs) for refs in self.heaps])

    def total_rate(self) -> float:
        """Bytes/s of the one rate limiter all streams share (0: unlimited)."""
        return self.cfg.total_rate or self.cfg.rate * self.nstreams

    def _endpoints(self) -> list[tuple[str, int]]:
        cfg = self.cfg
        if not cfg.endpoints:
            return [(cfg.target_host, cfg.target_port_start + i) for i in range(self.nstreams)]
        endpoints = parse_endpoints(cfg.endpoints)
        if len(endpoints) != self.nstreams:
            raise HeaderError(f"transmission.endpoints: {len(endpoints)} endpoints for "
                              f"{self.nstreams} streams (reader.num_chan / "
                              "transmission.channels_per_stream)")
        return endpoints

    def _item_group(self) -> spead2.send.ItemGroup:
        """Every ICD item, declared as its ICD type in the configured immediate byte order."""
        little = self.cfg.byte_order == cbf_sdp.ByteOrder.LITTLE
        ig = spead2.send.ItemGroup(flavour=cbf_sdp.FLAVOUR)

        def immediate(item_id: int, name: str, bits: int) -> None:
            if little:
                ig.add_item(item_id, name, name, shape=(), dtype=f"<u{bits // 8}")
            else:
                ig.add_item(item_id, name, name, shape=(), format=[("u", bits)])

        for item_id, name in U32_ITEMS:
            immediate(item_id, name, 32)
        for item_id, name in U16_ITEMS:
            immediate(item_id, name, 16)
        addressed = spead_send.vis_addressed_items(self.cps, self.nbl, DESCRIPTIONS)

        def add(item_id: int) -> None:
            item = addressed[item_id]
            ig.add_item(item.id, item.name, item.description, shape=item.shape, dtype=item.dtype)

        add(cbf_sdp.SCAN_ID)
        add(cbf_sdp.CORRELATOR_OUTPUT_DATA)
        immediate(cbf_sdp.NANT, cbf_sdp.ITEM_NAMES[cbf_sdp.NANT], 32)
        add(cbf_sdp.FREQ0_HZ)
        add(cbf_sdp.CHAN_WIDTH_HZ)
        add(cbf_sdp.INT_TIME)
        ig["scan_id"].value = np.uint64(self.cfg.scan_id)
        return ig

    def _slot(self, j: int) -> list[spead2.send.HeapReference]:
        cfg = self.cfg
        every_heap = cfg.framing == Framing.EVERY_HEAP
        refs = []
        for i in range(self.nstreams):
            u32, u16 = self.u32[j, i], self.u16[j, i]
            u32[2:] = [self.start_chan + i * self.cps, self.cps, cfg.polarisation_id, self.nbl,
                       cfg.hardware_id]
            u16[:] = [cfg.phase_bin_id, cfg.phase_bin_count]
            heap = spead2.send.Heap(cbf_sdp.FLAVOUR)
            heap.repeat_pointers = True
            if every_heap:
                for item in self.ig.values():
                    heap.add_descriptor(item)
            values: dict[str, object] = {name: u32[k, ...] for k, (_, name) in enumerate(U32_ITEMS)}
            values.update({name: u16[k, ...] for k, (_, name) in enumerate(U16_ITEMS)})
            if every_heap:
                values["scan_id"] = self.ig["scan_id"].value
            values["correlator_output_data"] = self.payload[j, i]
            for name, value in values.items():
                item = self.ig[name]
                item.value = value
                heap.add_item(item)
            refs.append(spead2.send.HeapReference(heap, substream_index=i))
        return refs

    async def send(self) -> tuple[int, int]:
        """Send everything; returns (heaps sent, bytes sent)."""
        cfg, d = self.cfg, self.dumps
        word = self.u32.dtype
        meta = {"scan_id": np.uint64(cfg.scan_id),
                "visibility_hardware_id": np.array(cfg.hardware_id, word),
                "freq0_hz": d.freq0_hz, "chan_width_hz": d.chan_width_hz, "int_time": d.int_time,
                "num_antennas": np.array(d.nant, word)}
        for heap in sendlib.control_heaps(self.ig, meta):
            for i in range(self.nstreams):
                await self.stream.async_send_heap(heap, substream_index=i)
        skips = sendlib.parse_pairs(cfg.skip_heaps, "transmission.skip_heaps", "dump:stream")
        span = self.ntime * d.int_time
        t_start = time.monotonic()
        for r in range(cfg.num_repeats):
            for j in range(self.ntime):
                k = r * self.ntime + j
                await self.batches.wait_slot(j)
                count, frac = ticks_of(d.times_unix[j] + r * span)
                self.u32[j, :, 0] = count
                self.u32[j, :, 1] = frac
                await self._pace(k, t_start)
                skipped = {i for (dump, i) in skips if dump == k}
                if skipped:
                    await self._send_some(j, skipped)
                else:
                    self.batches.send_slot(j, self.nstreams)
        await self.batches.drain()
        for i in range(self.nstreams):
            await self.stream.async_send_heap(self.ig.get_end(), substream_index=i)
        return self.batches.heaps_sent, self.batches.bytes_sent

    async def _send_some(self, j: int, skipped: set[int]) -> None:
        heaps = [ref for i, ref in enumerate(self.heaps[j]) if i not in skipped]
        if heaps:
            self.batches.bytes_sent += await self.stream.async_send_heaps(
                spead2.send.HeapReferenceList(heaps), spead2.send.GroupMode.ROUND_ROBIN)
            self.batches.heaps_sent += len(heaps)

    async def _pace(self, k: int, t_start: float) -> None:
        interval = self.cfg.time_interval
        if interval == 0:
            interval = self.dumps.int_time
        if interval > 0:
            delay = t_start + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


def run(ms_path: str, cfg: EmuSendConfig) -> tuple[int, int, float]:
    """Read the MS and send it; returns (heaps, bytes, seconds)."""
    dumps = read_ms(ms_path, cfg.start_chan, cfg.num_chan, cfg.num_timestamps)
    sender = VisSender(dumps, cfg, cfg.start_chan)
    started = time.monotonic()
    heaps, nbytes = asyncio.run(sender.send())
    return heaps, nbytes, time.monotonic() - started


KEYS = SenderKeys(host="transmission.target_host", port="transmission.target_port_start",
                  rate="transmission.total_rate", ttl="transmission.ttl",
                  interface="transmission.interface_address")


@click.command(help=f"""Send the MeasurementSet MS as a CBF-SDP ICD visibility stream (SPEAD-64-48).

A drop-in for the SKA CBF-SDP emulator's emu-send: its INI files ([reader],
[transmission], [payload]) and its keys, defaults and meanings; docs/emulator.md maps
every key. Stream i goes to UDP port --port + i and carries channels
reader.start_chan + i*transmission.channels_per_stream .. of every dump. A key that is
not listed below is an error.

\b
Config keys (from -c files, RINGPIPE_<KEY> environment variables, or -o KEY=VALUE):
{EmuSendConfig.keys_help()}

\b
Examples:
  emu-send -c sender.conf sim.ms                 # the emulator's INI file
  emu-send sim.ms --port 41000 --rate 2e8 -o transmission.channels_per_stream=4
  emu-send sim.ms -o transmission.framing=every_heap -o reader.num_repeats=3
  emu-send sim.ms --host 239.10.0.1 --interface 10.0.0.5 --ttl 2 \\
      -o transmission.time_interval=0      # multicast, paced like the MS
""")
@click.argument("ms", type=click.Path(exists=True, file_okay=False))
@sender_options(KEYS)
def main(args: SenderArgs, ms: str) -> None:
    heaps, nbytes, seconds = run(ms, args.load(EmuSendConfig, strict=True))
    rate = nbytes * 8 / seconds / 1e9 if seconds > 0 else 0.0
    click.echo(f"sent {heaps} heaps, {nbytes} bytes in {seconds:.2f} s ({rate:.2f} Gb/s)")
