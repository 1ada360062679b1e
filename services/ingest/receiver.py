"""The chunk receive loop: one spead2 ChunkStreamRingGroup per transfer, blocks into a sink.

State machine of :meth:`ChunkReceiver.run_transfer`::

    LISTENING --first chunk with a heap--> OPEN (begin: headers from config + metadata heaps)
    OPEN --chunk--> OPEN (commit the held segment full, missing chunks as hole segments, then
                          hold the new chunk's segment open)
    OPEN/LISTENING --end heaps on every stream--> ENDED
    OPEN --no packet for STREAM_TIMEOUT_S--> ENDED (end heaps injected into every stream's
                                                   own socket/queue, which flushes the window)
    any --stop event--> ENDED (group stopped; blocks still in the reorder window are dropped)

The newest segment is held open because only the end of the transfer tells whether it is the
last one: then it is committed trimmed to the whole time steps up to its last step with any
heap (a short block, which ends the transfer in the ring), so the transfer is exactly as long
as what was sent. On an exception it is committed with 0 bytes.

Each stream (UDP port) is one group member with its own single-thread pool and its own
place-callback parameters; chunks are shared, members write disjoint channel blocks. The
group is rebuilt for the next transfer (sockets are re-bound; packets sent in between are lost).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import spead2
import spead2.recv as recv
import spead2.send

from services.formats import cbf_sdp, pst
from services.ingest import placement
from services.ingest.assemble import Assembler, last_present_step
from services.ingest.counters import (
    DatagramRejectCounter,
    IngestCounters,
    Stat,
    install_datagram_counter,
    udp_rcvbuf_errors,
)
from services.ingest.sink import BlockSink, OpenSegment, check_block_sizes

logger = logging.getLogger(__name__)



class Transport(Protocol):
    """How the streams get their packets: :class:`UdpTransport` in the product; the tests
    plug in spead2's in-process queues."""

    def add(self, index: int, member: recv.ChunkStreamGroupMember) -> None:
        """Add the reader(s) of stream ``index`` to its group member."""

    def inject_end(self, index: int) -> None:
        """Deliver an end-of-stream heap to stream ``index`` (flushes its window)."""


def end_packets() -> list[bytes]:
    """The packets of an end-of-stream heap (what :meth:`Transport.inject_end` delivers)."""
    ig = spead2.send.ItemGroup(flavour=cbf_sdp.FLAVOUR)
    return [bytes(p) for p in spead2.send.PacketGenerator(ig.get_end(), 1, 1472)]

#: spead2's own stream statistics, and the counter each is folded into.
_SPEAD2_COUNTERS = {
    "too_old_heaps": "heaps_too_old_total",
    "incomplete_heaps_evicted": "heaps_incomplete_total",
    "incomplete_heaps_flushed": "heaps_incomplete_total",
    "packets": "packets_total",
    "worker_blocked": "chunk_pool_blocked_total",
}
_STATS = {stat.stat_name: stat for stat in Stat}
_U32_META = (cbf_sdp.HARDWARE_ID, cbf_sdp.NANT)
POLL_S = 0.1


@dataclass(frozen=True)
class ReceiveSettings:
    nstreams: int
    max_chunks: int
    max_time_jump: int
    byte_order: cbf_sdp.ByteOrder
    stream_timeout_s: float
    default_scan_id: int = 0


@dataclass(frozen=True)
class TransferResult:
    scan_id: int
    blocks: int
    reason: str  # "end", "timeout" or "stop"


class UdpTransport:
    """Stream i listens on UDP port ``port_start + i`` (unicast or a multicast group)."""

    def __init__(self, bind_host: str, port_start: int, max_packet_size: int, buffer_size: int,
                 mcast_group: str = "", mcast_interface: str = "0.0.0.0") -> None:
        self.bind_host, self.port_start = bind_host, port_start
        self.max_packet_size, self.buffer_size = max_packet_size, buffer_size
        self.mcast_group, self.mcast_interface = mcast_group, mcast_interface

    def add(self, index: int, member: recv.ChunkStreamGroupMember) -> None:
        port = self.port_start + index
        if self.mcast_group:
            member.add_udp_reader(self.mcast_group, port, self.max_packet_size, self.buffer_size,
                                  self.mcast_interface)
        else:
            member.add_udp_reader(port, self.max_packet_size, self.buffer_size, self.bind_host)

    def inject_end(self, index: int) -> None:
        host = self.mcast_group or (self.bind_host if self.bind_host not in ("", "0.0.0.0")
                                    else "127.0.0.1")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            if self.mcast_group:  # TTL 0: the end heaps never leave this host
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                socket.inet_aton(self.mcast_interface))
            for packet in end_packets():
                sock.sendto(packet, (host, self.port_start + index))


class _Group:
    """One ChunkStreamRingGroup with its members' place parameters and chunk buffers."""

    def __init__(self, assembler: Assembler, settings: ReceiveSettings,
                 transport: Transport) -> None:
        spec = assembler.spec
        nchunks = settings.max_chunks + 4
        self.data_ring = recv.ChunkRingbuffer(nchunks)
        free_ring = recv.ChunkRingbuffer(nchunks)
        config = recv.ChunkStreamGroupConfig(
            max_chunks=settings.max_chunks,
            eviction_mode=recv.ChunkStreamGroupConfig.EvictionMode.LOSSY)
        self.group = recv.ChunkStreamRingGroup(config, self.data_ring, free_ring)
        self.params: list[placement.PlaceParams] = []
        per_stream = spec.nblocks // settings.nstreams
        for i in range(settings.nstreams):
            stream_config = recv.StreamConfig(max_heaps=8, stream_id=i)
            stat_indices = {stat: stream_config.add_stat(stat.stat_name) for stat in Stat}
            params = placement.PlaceParams.build(
                period=spec.period, max_jump=settings.max_time_jump, block_lo=i * per_stream,
                block_hi=(i + 1) * per_stream, start_channel=spec.start_channel,
                chans_per_heap=spec.chans_per_heap, nblocks=spec.nblocks,
                steps_per_chunk=spec.steps_per_chunk, nbaseline=spec.nbaseline,
                heap_bytes=spec.heap_bytes, byte_order=settings.byte_order,
                stat_indices=stat_indices, known_items=spec.known_items, meta_ids=spec.meta_ids,
                slot_bytes=spec.slot_bytes, data_item=spec.data_item, scan_item=spec.scan_item)
            chunk_config = recv.ChunkStreamConfig(
                items=list(spec.items), max_chunks=settings.max_chunks,
                place=params.low_level_callable(spec.cfunc), max_heap_extra=spec.extra_bytes)
            self.group.emplace_back(spead2.ThreadPool(1), stream_config, chunk_config)
            self.params.append(params)
        for _ in range(nchunks):
            extra = (np.zeros(assembler.heaps_per_chunk * spec.extra_bytes, np.uint8)
                     if spec.extra_bytes else None)
            self.group.add_free_chunk(recv.Chunk(
                data=np.zeros(assembler.heaps_per_chunk * assembler.slot_bytes, np.uint8),
                present=np.zeros(assembler.heaps_per_chunk, np.uint8), extra=extra))
        for i, member in enumerate(self.group):
            transport.add(i, member)
        self.stopped_by_us = False

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for member in self.group:
            for name, value in member.stats.items():
                out[name] = out.get(name, 0) + value
        return out

    def stop(self) -> None:
        """Stop at once: chunks still in the window are dropped."""
        self.stopped_by_us = True
        self.group.stop()

    def phase(self) -> int:
        return max((p.phase for p in self.params), default=-1)

    def metadata(self, byte_order: cbf_sdp.ByteOrder) -> dict[int, int]:
        """Metadata item values from the newest metadata heap of any stream."""
        out: dict[int, int] = {}
        for params in sorted(self.params, key=lambda p: p.meta_seq):
            for item_id, (kind, raw) in params.metadata().items():
                if kind == 1 and item_id in _U32_META and byte_order == cbf_sdp.ByteOrder.LITTLE:
                    raw = cbf_sdp.bswap32(raw)
                out[item_id] = raw
        return out


class ChunkReceiver:
    """Receives transfers of one stream profile into a :class:`BlockSink`."""

    def __init__(self, assembler: Assembler, settings: ReceiveSettings, transport: Transport,
                 counters: IngestCounters | None = None) -> None:
        self.assembler = assembler
        self.settings = settings
        self.transport = transport
        self.counters = counters or IngestCounters()
        self._last_stats: dict[str, int] = {}
        self._last_rejected_datagrams = DatagramRejectCounter.count
        self._last_rcvbuf = udp_rcvbuf_errors()
        self._lock = threading.Lock()
        self._previous: TransferResult | None = None  # the last transfer received
        install_datagram_counter()

    # ------------------------------------------------------------------ counters
    def refresh_counters(self, group: _Group) -> None:
        """Fold new spead2 statistics into the counters (called from the receive thread)."""
        with self._lock:
            c = self.counters
            stats = group.stats()
            for name, value in stats.items():
                delta = value - self._last_stats.get(name, 0)
                if not delta:
                    continue
                stat = _STATS.get(name)
                if stat is not None and stat.reason is not None:
                    c.heaps_rejected.add(stat.reject, delta)
                elif stat is not None:
                    c.add(stat.counter, delta)
                elif name in _SPEAD2_COUNTERS:
                    c.add(_SPEAD2_COUNTERS[name], delta)
            self._last_stats = stats
            rejected = DatagramRejectCounter.count
            c.add("datagrams_rejected_total", rejected - self._last_rejected_datagrams)
            self._last_rejected_datagrams = rejected
            rcvbuf = udp_rcvbuf_errors()
            c.add("udp_rcvbuf_errors_total", max(0, rcvbuf - self._last_rcvbuf))
            self._last_rcvbuf = rcvbuf

    # ------------------------------------------------------------------ one transfer
    def run_transfer(self, sink: BlockSink, stop: threading.Event,
                     tick: Callable[[], None] | None = None) -> TransferResult | None:
        """Listen, write one transfer, return when it ends (None if none started before stop)."""
        asm = self.assembler
        check_block_sizes(sink, asm.data_bytes, asm.weights_bytes,
                          f"{type(asm).__name__} ({asm.heaps_per_chunk} heaps per block)")
        group = _Group(asm, self.settings, self.transport)
        self._last_stats = {}
        state = _TransferState()
        try:
            reason = self._loop(group, sink, stop, tick, state)
            self._commit_held(state, trim=True)
        finally:
            group.stop()
            while True:  # drop anything still queued if the loop was left by an exception
                try:
                    group.group.add_free_chunk(group.data_ring.get_nowait())
                except (spead2.Stopped, spead2.Empty):
                    break
            self.refresh_counters(group)
            try:
                if state.held is not None:  # the loop was left by an exception
                    held, state.held = state.held, None
                    held.segment.commit(0, 0)
            finally:
                if state.open:
                    sink.end()
                    self.counters.transfer_active = 0
        if not state.open:
            return None
        logger.info("transfer of scan %d ended (%s) after %d blocks",
                    state.scan_id, reason, state.blocks)
        self._previous = TransferResult(state.scan_id, state.blocks, reason)
        return self._previous

    def _loop(self, group: _Group, sink: BlockSink, stop: threading.Event,
              tick: Callable[[], None] | None, state: _TransferState) -> str:
        reason = "end"
        last_packets = 0
        last_activity = time.monotonic()
        injected = False
        fd = group.data_ring.data_fd
        while True:
            if stop.is_set() and not group.stopped_by_us:
                reason = "stop"
                group.stop()  # the blocks still in the reorder window are dropped
            select.select([fd], [], [], POLL_S)
            try:
                chunk = group.data_ring.get_nowait()
            except spead2.Empty:
                self.refresh_counters(group)
                packets = self._last_stats.get("packets", 0)
                now = time.monotonic()
                if packets != last_packets:
                    last_packets, last_activity = packets, now
                elif (packets and not group.stopped_by_us
                      and now - last_activity > self.settings.stream_timeout_s):
                    if not injected:
                        logger.warning("no packets for %.1f s: ending the transfer without end "
                                       "heaps", now - last_activity)
                        self.counters.add("stream_timeouts_total")
                        reason, injected = "timeout", True
                        for i in range(self.settings.nstreams):  # flushes the windows
                            self.transport.inject_end(i)
                            self.counters.add("end_heaps_injected_total")
                        last_activity = now
                    else:
                        group.stop()
                if tick is not None:
                    tick()
                continue
            except spead2.Stopped:
                return reason
            try:
                self._write_chunk(group, chunk, sink, state)
            finally:
                group.group.add_free_chunk(chunk)
            last_activity = time.monotonic()
            if tick is not None:
                tick()

    def _write_chunk(self, group: _Group, chunk: recv.Chunk, sink: BlockSink,
                     state: _TransferState) -> None:
        asm, c = self.assembler, self.counters
        present = np.asarray(chunk.present)
        logger.debug("chunk %d: %d of %d heaps", chunk.chunk_id, present.sum(), present.size)
        chunk_id = chunk.chunk_id
        if not present.any():
            # spead2 hands out empty chunks ahead of the first heap's window, and for blocks
            # whose heaps all failed: a later chunk writes those as holes, a trailing one is
            # not part of the transfer
            return
        extra = None if chunk.extra is None else np.asarray(chunk.extra)
        if not state.open:
            data_scan = asm.scan_id(np.asarray(chunk.data), present, extra)
            self._begin(group, sink, state, chunk_id, data_scan)
        if chunk_id < state.next_chunk:
            c.add("heaps_too_old_total", int(present.sum()))
            return
        max_gap = self.settings.max_time_jump // asm.spec.steps_per_chunk + 1
        if chunk_id - state.next_chunk > max_gap:
            c.heaps_rejected.add(Stat.REJECTED_BAD_TIMESTAMP.reject, int(present.sum()))
            return
        self._commit_held(state, trim=False)
        while state.next_chunk < chunk_id:
            with self._open_segment(sink) as seg:
                asm.fill_hole(seg.data, seg.weights)
            self._account_block(state, asm.heaps_per_chunk, 0)
            state.next_chunk += 1
        seg = self._open_segment(sink)
        try:
            unpopulated = asm.fill(np.asarray(chunk.data), present, extra, seg.data, seg.weights)
        except BaseException:
            seg.commit(0, 0)
            raise
        complete = int(present.sum())
        if unpopulated:
            c.add("heaps_fd_unpopulated_total", unpopulated)
        c.add("heaps_complete_total", complete)
        c.add("bytes_total", complete * asm.heap_bytes)
        state.held = _Held(seg, complete, last_present_step(present, asm.steps_per_chunk))
        state.next_chunk += 1

    def _open_segment(self, sink: BlockSink) -> OpenSegment:
        seg = sink.open_segment()
        if sink.blocked_s > 1e-3:
            self.counters.add("ring_full_total")
        self.counters.add("writer_blocked_seconds_total", sink.blocked_s)
        return seg

    def _commit_held(self, state: _TransferState, trim: bool) -> None:
        """Commit the held segment: full, or (end of transfer) up to its last present step."""
        held, state.held = state.held, None
        if held is None:
            return
        asm = self.assembler
        steps = held.last_step + 1 if trim else asm.steps_per_chunk
        if steps == asm.steps_per_chunk:
            held.segment.commit()
        else:  # a short block: ends the transfer in the ring
            held.segment.commit(steps * asm.data_step_bytes, steps * asm.weights_step_bytes)
        self._account_block(state, steps * asm.heaps_per_step - held.complete,
                            (asm.steps_per_chunk - steps) * asm.heaps_per_step)

    def _account_block(self, state: _TransferState, lost: int, padding: int) -> None:
        self.counters.add("heaps_lost_total", lost)
        self.counters.add("heaps_padding_skipped_total", padding)
        self.counters.add("blocks_total")
        state.blocks += 1

    def _begin(self, group: _Group, sink: BlockSink, state: _TransferState, chunk_id: int,
               data_scan: int | None) -> None:
        meta = group.metadata(self.settings.byte_order)
        raw_scan = meta.get(cbf_sdp.SCAN_ID, meta.get(pst.BEAM_SCAN_ID))
        if raw_scan is None:
            raw_scan = data_scan
        scan_id = self.settings.default_scan_id if raw_scan is None else raw_scan % (1 << 64)
        if not group.stats().get(Stat.START_HEAPS.stat_name, 0):
            previous = self._previous
            if previous is not None and previous.reason == "end" and previous.scan_id == scan_id:
                # the scan went on after end heaps: a stray or forged end heap split it
                self.counters.add("transfers_split_total")
                logger.warning("scan %d continues after the end heaps that ended its last "
                               "transfer (a stray or forged end heap?): a new transfer starts",
                               scan_id)
            self.counters.add("transfers_missed_start_total")
            logger.warning(
                "transfer opened without a start heap (receiver started mid-scan): scan id %d "
                "from %s, frequencies from the stream or config", scan_id,
                "the metadata heap" if cbf_sdp.SCAN_ID in meta or pst.BEAM_SCAN_ID in meta
                else "the data heaps" if data_scan is not None else "config")
        data_header, weights_header = self.assembler.headers(chunk_id, group.phase(), meta, scan_id)
        sink.begin(data_header, weights_header)
        state.open, state.scan_id, state.next_chunk = True, scan_id, chunk_id
        self.counters.add("transfers_total")
        self.counters.transfer_active = 1
        self.counters.scan_id = scan_id
        logger.info("transfer of scan %d started: UTC_START %s", scan_id,
                    data_header.get_str("UTC_START"))


@dataclass
class _Held:
    """The newest segment, open until the next chunk arrives or the transfer ends."""

    segment: OpenSegment
    complete: int  # heaps present in it
    last_step: int  # its last time step with any heap present


class _TransferState:
    def __init__(self) -> None:
        self.open = False
        self.scan_id = 0
        self.next_chunk = 0  # chunk id of the next segment to open
        self.blocks = 0
        self.held: _Held | None = None
