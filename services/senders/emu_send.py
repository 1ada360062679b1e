"""``emu-send MS``: send a MeasurementSet as the CBF-SDP ICD visibility stream.

Option names follow the SKA CBF-SDP emulator (``reader.*``, ``transmission.*``); they are
config keys (a ``KEY value`` file, ``RINGPIPE_READER_START_CHAN``-style environment
variables, ``-o KEY=VALUE``). Stream ``i`` (port ``target_port_start + i``) carries channels
``start_chan + i*channels_per_stream ..`` of every dump, one heap per dump.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import spead2.send

from ringbuf.errors import HeaderError
from services.common.config import (
    Config,
    ConfigSource,
    build_config,
    non_negative,
    positive,
    setting,
)
from services.formats import cbf_sdp
from services.senders import sendlib

logger = logging.getLogger(__name__)

MJD_UNIX_OFFSET_S = 3506716800.0  # MJD 40587 (1970-01-01) in MJD seconds
FD_FULL = 255  # FD of a fully valid visibility (fraction of data in 1/255 units)


@dataclass(frozen=True, kw_only=True)
class EmuSendConfig(Config):
    start_chan: int = setting("reader.start_chan", int, default=0, validator=non_negative,
                              help="first MS channel sent")
    num_chan: int = setting("reader.num_chan", int, default=0, validator=non_negative,
                            help="channels sent (0: all from start_chan)")
    num_timestamps: int = setting("reader.num_timestamps", int, default=0,
                                  validator=non_negative, help="dumps read (0: all)")
    num_repeats: int = setting("reader.num_repeats", int, default=1, validator=positive,
                               help="times the dumps are sent (time keeps advancing)")
    target_host: str = setting("transmission.target_host", str, default="127.0.0.1",
                               help="receiver address")
    interface_address: str = setting(
        "transmission.interface_address", str, default="",
        help="with a multicast target_host: address of the interface to send from")
    ttl: int = setting("transmission.ttl", int, default=1, validator=positive,
                       help="with a multicast target_host: multicast TTL")
    target_port_start: int = setting("transmission.target_port_start", int, default=41000,
                                     validator=positive, help="port of stream 0")
    channels_per_stream: int = setting("transmission.channels_per_stream", int, default=0,
                                       validator=non_negative,
                                       help="channels per heap/stream (0: all in one stream)")
    max_packet_size: int = setting("transmission.max_packet_size", int, default=8972,
                                   validator=positive, help="UDP payload bytes per packet")
    rate: float = setting("transmission.rate", float, default=1e9, validator=non_negative,
                          help="bytes per second over all streams (0: unlimited)")
    time_interval: float = setting(
        "transmission.time_interval", float, default=-1.0,
        help=">0: seconds between dumps; 0: the MS TIME steps; <0: as fast as the rate allows")
    scan_id: int = setting("transmission.scan_id", int, default=1, validator=non_negative,
                           help="scan id sent in the metadata heap")
    hardware_id: int = setting("transmission.hardware_id", int, default=0,
                               validator=non_negative, help="visibility_hardware_id")
    byte_order: cbf_sdp.ByteOrder = setting(
        "transmission.immediate_byte_order", cbf_sdp.ByteOrder, default=cbf_sdp.ByteOrder.BIG,
        help="big (SPEAD) or little (as spead2 sends '<u4' items)")
    skip_heaps: str = setting("transmission.skip_heaps", str, default="",
                              help="test aid: 'dump:stream,...' heaps not sent (dump counts repeats)")


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
    """Read DATA/FLAG of the first DATA_DESC_ID of an MS into ICD order (HeaderError if unusable)."""
    from casacore import tables

    if not Path(path, "table.dat").exists():
        raise HeaderError(f"{path}: not a MeasurementSet (no table.dat)")
    with tables.table(path, ack=False) as ms:
        nant = tables.table(ms.getkeyword("ANTENNA"), ack=False).nrows()
        spw = tables.table(ms.getkeyword("SPECTRAL_WINDOW"), ack=False)
        freqs = spw.getcol("CHAN_FREQ")[0]
        spw.close()
        nchan_ms = freqs.shape[0]
        num_chan = num_chan or nchan_ms - start_chan
        if start_chan + num_chan > nchan_ms or num_chan <= 0:
            raise HeaderError(f"{path}: reader.start_chan {start_chan} + reader.num_chan "
                              f"{num_chan} exceeds the {nchan_ms} channels of the MS")
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


def parse_skips(text: str) -> set[tuple[int, int]]:
    skips = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        dump, _, stream = part.partition(":")
        try:
            skips.add((int(dump), int(stream)))
        except ValueError:
            raise HeaderError(f"transmission.skip_heaps: {part!r} is not 'dump:stream'") from None
    return skips


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
        ports = [cfg.target_port_start + i for i in range(self.nstreams)]
        self.stream = sendlib.make_stream(cfg.target_host, ports, cfg.max_packet_size, cfg.rate,
                                          max_heaps=(self.ntime + 2) * self.nstreams + 8,
                                          interface_address=cfg.interface_address, ttl=cfg.ttl)
        self.ig = spead2.send.ItemGroup(flavour=cbf_sdp.FLAVOUR)
        for item_id, name in ((cbf_sdp.TIMESTAMP_COUNT, "visibility_timestamp_count"),
                              (cbf_sdp.TIMESTAMP_FRACTION, "visibility_timestamp_fraction"),
                              (cbf_sdp.CHANNEL_ID, "visibility_channel_id"),
                              (cbf_sdp.CHANNEL_COUNT, "visibility_channel_count"),
                              (cbf_sdp.BASELINE_COUNT, "visibility_baseline_count"),
                              (cbf_sdp.HARDWARE_ID, "visibility_hardware_id"),
                              (cbf_sdp.NANT, "num_antennas")):
            sendlib.immediate_item(self.ig, item_id, name)
        self.ig.add_item(cbf_sdp.SCAN_ID, "scan_id", "scan id", shape=(), dtype="<u8")
        self.ig.add_item(cbf_sdp.FREQ0_HZ, "freq0_hz", "centre of channel 0", shape=(), dtype="<f8")
        self.ig.add_item(cbf_sdp.CHAN_WIDTH_HZ, "chan_width_hz", "channel spacing", shape=(),
                         dtype="<f8")
        self.ig.add_item(cbf_sdp.INT_TIME, "int_time", "dump period (s)", shape=(), dtype="<f8")
        self.ig.add_item(cbf_sdp.CORRELATOR_OUTPUT_DATA, "correlator_output_data",
                         "TCI, FD and 4 polarisations per channel and baseline",
                         shape=(cps, self.nbl), dtype=cbf_sdp.VIS_DTYPE)
        # per-slot immediates: count, fraction (changing) and channel id/count, bl count, hw id
        self.imm = np.zeros((self.ntime, self.nstreams, 6), ">u8")
        self.payload = dumps.payload.reshape(self.ntime, self.nstreams, cps, self.nbl)
        self.heaps = [self._slot(j) for j in range(self.ntime)]
        self.batches = sendlib.HeapBatches(
            self.stream, [spead2.send.HeapReferenceList(refs) for refs in self.heaps])

    def _u32(self, value: int) -> int:
        return cbf_sdp.bswap32(value) if self.cfg.byte_order == cbf_sdp.ByteOrder.LITTLE else value

    def _slot(self, j: int) -> list[spead2.send.HeapReference]:
        refs = []
        for i in range(self.nstreams):
            imm = self.imm[j, i]
            imm[2:] = [self._u32(self.start_chan + i * self.cps), self._u32(self.cps),
                       self._u32(self.nbl), self._u32(self.cfg.hardware_id)]
            heap = sendlib.build_heap(self.ig, {
                "visibility_timestamp_count": imm[0, ...], "visibility_timestamp_fraction": imm[1, ...],
                "visibility_channel_id": imm[2, ...], "visibility_channel_count": imm[3, ...],
                "visibility_baseline_count": imm[4, ...], "visibility_hardware_id": imm[5, ...],
                "correlator_output_data": self.payload[j, i]})
            refs.append(spead2.send.HeapReference(heap, substream_index=i))
        return refs

    async def send(self) -> tuple[int, int]:
        """Send everything; returns (heaps sent, bytes sent)."""
        cfg, d = self.cfg, self.dumps
        meta = {"scan_id": np.uint64(cfg.scan_id), "visibility_hardware_id": self._u32(cfg.hardware_id),
                "freq0_hz": d.freq0_hz, "chan_width_hz": d.chan_width_hz, "int_time": d.int_time,
                "num_antennas": self._u32(d.nant)}
        for heap in sendlib.control_heaps(self.ig, meta):
            for i in range(self.nstreams):
                await self.stream.async_send_heap(heap, substream_index=i)
        skips = parse_skips(cfg.skip_heaps)
        span = self.ntime * d.int_time
        t_start = time.monotonic()
        for r in range(cfg.num_repeats):
            for j in range(self.ntime):
                k = r * self.ntime + j
                await self.batches.wait_slot(j)
                count, frac = ticks_of(d.times_unix[j] + r * span)
                self.imm[j, :, 0] = self._u32(count)
                self.imm[j, :, 1] = self._u32(frac)
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


def load_config(config_files: tuple[str, ...], overrides: tuple[str, ...]) -> EmuSendConfig:
    return build_config(EmuSendConfig, ConfigSource.load(config_files, overrides))


def run(ms_path: str, cfg: EmuSendConfig) -> tuple[int, int, float]:
    """Read the MS and send it; returns (heaps, bytes, seconds)."""
    dumps = read_ms(ms_path, cfg.start_chan, cfg.num_chan, cfg.num_timestamps)
    sender = VisSender(dumps, cfg, cfg.start_chan)
    started = time.monotonic()
    heaps, nbytes = asyncio.run(sender.send())
    return heaps, nbytes, time.monotonic() - started


_KEYS_HELP = EmuSendConfig.keys_help()


@click.command(help=f"""Send the MeasurementSet MS as a CBF-SDP ICD visibility stream (SPEAD-64-48).

\b
Config keys (from -c files, RINGPIPE_<KEY> environment variables, or -o KEY=VALUE):
{_KEYS_HELP}

\b
Example:
  emu-send sim.ms -o transmission.target_port_start=41000 \\
      -o transmission.channels_per_stream=4 -o transmission.rate=2e8
""")
@click.argument("ms", type=click.Path(exists=True, file_okay=False))
@click.option("-c", "--config", "config_files", multiple=True, type=click.Path(dir_okay=False),
              help="KEY value config file (repeatable; later files win)")
@click.option("-o", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="override a config key (repeatable)")
def main(ms: str, config_files: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    try:
        cfg = load_config(config_files, overrides)
        heaps, nbytes, seconds = run(ms, cfg)
    except HeaderError as exc:
        raise click.ClickException(str(exc)) from None
    rate = nbytes * 8 / seconds / 1e9 if seconds > 0 else 0.0
    click.echo(f"sent {heaps} heaps, {nbytes} bytes in {seconds:.2f} s ({rate:.2f} Gb/s)")
