"""The svc-ingest service: the scan lifecycle around :class:`ChunkReceiver`.

configure_beam attaches the ring-pair writer and checks the ring block sizes (a missing ring,
a second writer or wrong block sizes are refusals: state unchanged, exit 3 in autonomous
mode); start_scan receives transfers (one per stream start..end) until end_scan; autonomous
mode receives transfer after transfer. SCAN_ID of start_scan is used when neither the
stream's metadata heap nor its data heaps give one.
"""

from __future__ import annotations

import logging
import threading

from ringbuf import RingPairWriter
from ringbuf.errors import RingBusy, RingLayoutMismatch, RingNotFound, RingPermissionError
from services.common.lifecycle import Refused, Service
from services.ingest.assemble import make_assembler
from services.ingest.config import IngestConfig
from services.ingest.counters import IngestCounters
from services.ingest.receiver import ChunkReceiver, ReceiveSettings, UdpTransport
from services.ingest.sink import RingPairSink, check_block_sizes

logger = logging.getLogger(__name__)


class IngestService(Service):
    name = "svc-ingest"
    beam_config = IngestConfig

    def __init__(self, config: IngestConfig) -> None:
        super().__init__(config, IngestCounters())
        self.counters: IngestCounters
        self.ingest_config = config
        self.writer: RingPairWriter | None = None
        self._last_complete = 0

    def configure_beam(self, config: IngestConfig) -> None:
        """Attach the ring-pair writer; a missing ring, a ring pair that already has a writer
        or blocks of the wrong size are refusals (state unchanged), not failures."""
        try:
            writer = RingPairWriter(config.data_key, config.weights_key)
        except (RingNotFound, RingBusy, RingPermissionError) as exc:
            raise Refused(str(exc)) from None
        try:
            sink = RingPairSink(writer)
            asm = make_assembler(config, sink.data_bufsz)
            check_block_sizes(sink, asm.data_bytes, asm.weights_bytes,
                              f"rings {config.data_key}/{config.weights_key}")
        except RingLayoutMismatch as exc:
            writer.close()
            raise Refused(str(exc)) from None
        except BaseException:
            writer.close()
            raise
        self.ingest_config = config
        self.writer = writer

    def deconfigure_beam(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _receiver(self, scan_id: int,
                  stop: threading.Event) -> tuple[ChunkReceiver, RingPairSink]:
        cfg = self.ingest_config
        assert self.writer is not None, "configure_beam first"
        sink = RingPairSink(self.writer, stop, on_wait=self._tick)
        settings = ReceiveSettings(cfg.nstreams, cfg.max_chunks, cfg.max_time_jump,
                                   cfg.immediate_byte_order, cfg.stream_timeout_s, scan_id)
        transport = UdpTransport(cfg.bind_host, cfg.port_start, cfg.max_packet_size,
                                 cfg.recv_buffer_bytes, cfg.mcast_group, cfg.mcast_interface)
        return ChunkReceiver(make_assembler(cfg, sink.data_bufsz), settings, transport,
                             self.counters), sink

    def _tick(self) -> None:
        self.progress()
        complete = self.counters.heaps_complete_total
        if complete != self._last_complete:
            self._last_complete = complete
            self.health.data_seen()

    def start_scan(self, config, stop: threading.Event) -> None:
        receiver, sink = self._receiver(config.scan_id, stop)
        self.health.expect_data(True)
        try:
            while not stop.is_set():
                receiver.run_transfer(sink, stop, self._tick)
        finally:
            self.health.expect_data(False)

    def follow_transfer(self, stop: threading.Event) -> None:
        receiver, sink = self._receiver(self.ingest_config.scan_id, stop)
        receiver.run_transfer(sink, stop, self._tick)

    def status_line(self) -> str:
        c = self.counters
        return (f"scan {c.scan_id}: {c.heaps_complete_total} heaps, {c.heaps_lost_total} lost, "
                f"{c.blocks_total} blocks")
