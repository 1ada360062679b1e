"""``svc-spead-send``: the transfers of a ring pair sent onwards as SPEAD streams.

State machine (the framework's SKA PST lifecycle)::

    Idle --configure_beam (DATA_KEY, WEIGHTS_KEY, READ_MODE: attach a reader or viewer)-->
    BeamConfigured --configure_scan (DEST_*, SEND_*: open the UDP stream)--> ScanConfigured
    --start_scan (SCAN_ID)--> Scanning: send the transfers of that scan
    --end_scan--> ScanConfigured ... --deconfigure_*--> Idle

Per transfer, on the scan thread::

    headers describe a known stream? -- no --> logged (one line), transfers_skipped
       | yes                                   (bad_header), rest drained (reader mode)
    start, descriptor, metadata heaps on every stream
    segment after segment: data heaps ----- writer died --> end heaps (writer_died_total)
       |                                 `- stop --------> end heaps; the rest of the
       |                                                   transfer is not sent
    end of data: end heaps, TRANSFER_GAP_S pause

Managed mode sends only transfers whose SCAN_ID is the started scan's (others are skipped:
wrong_scan); autonomous mode sends every transfer. READ_MODE reader gates the ring writer
while it sends (every block is sent); viewer never does (blocks the writer overwrote first
are skipped and counted in blocks_skipped_total; the receiver writes them as holes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from ringbuf import HeaderError, PairOutOfStep, RingBufError, WriterDied
from services.common.lifecycle import Refused, Service, StartScanConfig
from services.spead_send.config import (
    ReadMode,
    SpeadSendBeamConfig,
    SpeadSendConfig,
    SpeadSendScanConfig,
)
from services.spead_send.counters import Skip, SpeadSendCounters
from services.spead_send.profiles import profile_for
from services.spead_send.sender import SendError, StreamSender
from services.spead_send.source import OpenTransfer, PairSource, ReaderSource, ViewerSource

logger = logging.getLogger(__name__)


class SpeadSendService(Service):
    """Reads a ring pair and sends each transfer as a SPEAD stream."""

    name = "svc-spead-send"
    beam_config = SpeadSendBeamConfig
    scan_config = SpeadSendScanConfig
    start_config = StartScanConfig

    def __init__(self, config: SpeadSendConfig) -> None:
        super().__init__(config, SpeadSendCounters())
        self.counters: SpeadSendCounters
        self.source: PairSource | None = None
        self.sender: StreamSender | None = None
        self.beam: SpeadSendBeamConfig | None = None

    # ------------------------------------------------------------------ lifecycle hooks
    def configure_beam(self, config: SpeadSendBeamConfig) -> None:
        try:
            if config.read_mode is ReadMode.VIEWER:
                self.source = ViewerSource(config.data_key, config.weights_key)
            else:
                self.source = ReaderSource(config.data_key, config.weights_key)
        except RingBufError as exc:
            raise Refused(str(exc)) from None
        self.beam = config
        logger.info("reading ring pair %s/%s as a %s", config.data_key, config.weights_key,
                    config.read_mode.value)

    def configure_scan(self, config: SpeadSendScanConfig) -> None:
        try:
            self.sender = StreamSender(config, self.counters)
        except SendError as exc:
            raise Refused(str(exc)) from None
        logger.info("sending to %s:%d (%d streams, %g bytes/s)", config.dest_host,
                    config.dest_port, config.nstreams, config.rate)

    def start_scan(self, config: StartScanConfig, stop: threading.Event) -> None:
        logger.info("scan %d: sending its transfers", config.scan_id)
        while not stop.is_set():
            self._follow(stop, expected_scan=config.scan_id)
            self.progress()

    def follow_transfer(self, stop: threading.Event) -> None:
        self._follow(stop, expected_scan=None)

    def deconfigure_scan(self) -> None:
        if self.sender is not None:
            self.sender.close()
            self.sender = None

    def deconfigure_beam(self) -> None:
        source, self.source = self.source, None
        self.beam = None
        if source is not None:
            source.close()

    def ring_fill(self) -> Mapping[str, object]:
        beam = self.beam
        if beam is None:
            return {}
        return {"data": {"key": beam.data_key}, "weights": {"key": beam.weights_key},
                "read_mode": beam.read_mode.value}

    def status_line(self) -> str:
        c = self.counters
        return (f"scan {c.scan_id}: {c.blocks_sent_total} blocks, {c.heaps_sent_total} heaps "
                f"sent, {c.blocks_skipped_total} skipped")

    # ------------------------------------------------------------------ transfers
    def _follow(self, stop: threading.Event, expected_scan: int | None) -> None:
        """Wait up to a poll interval for the next transfer and send it."""
        source = self.source
        if source is None or self.sender is None:
            raise RuntimeError("configure_beam and configure_scan first")
        transfer = source.open_transfer(stop)
        if transfer is not None:
            self._send(transfer, source, self.sender, stop, expected_scan)

    def _send(self, transfer: OpenTransfer, source: PairSource, sender: StreamSender,
              stop: threading.Event, expected_scan: int | None) -> None:
        c = self.counters
        try:
            profile = profile_for(transfer.data_header, transfer.weights_header,
                                  source.data_bufsz, sender.shape)
        except HeaderError as exc:
            logger.error("transfer not sent: %s", exc)
            c.transfers_skipped.add(Skip.BAD_HEADER)
            transfer.discard(self.progress)
            return
        if expected_scan is not None and profile.scan_id != expected_scan:
            logger.warning("transfer of SCAN_ID %d while scan %d runs: not sent",
                           profile.scan_id, expected_scan)
            c.transfers_skipped.add(Skip.WRONG_SCAN)
            transfer.discard(self.progress)
            return
        c.scan_id, c.transfer_active = profile.scan_id, 1
        self.health.expect_data(True)
        logger.info("scan %d: sending a %s transfer", profile.scan_id, profile.kind)
        skipped = 0
        sender.begin(profile)
        try:
            for seg in transfer.segments(self.progress):
                sender.send_segment(profile, seg)
                c.blocks_skipped_total += transfer.skipped - skipped
                skipped = transfer.skipped
                self.health.data_seen()
                self.progress()
                if stop.is_set():  # the rest of the transfer is not sent
                    logger.info("scan %d: stopped; ending the stream", profile.scan_id)
                    break
        except WriterDied:
            c.writer_died_total += 1
            logger.warning("scan %d: the ring writer died; ending the stream", profile.scan_id)
        except PairOutOfStep as exc:
            logger.error("scan %d: %s; ending the stream", profile.scan_id, exc)
        finally:
            c.blocks_skipped_total += transfer.skipped - skipped
            sender.end()
            c.transfer_active = 0
            self.health.expect_data(False)
        c.transfers_total += 1
        logger.info("scan %d: transfer sent (%d blocks so far, %d skipped)", profile.scan_id,
                    c.blocks_sent_total, c.blocks_skipped_total)
        stop.wait(sender.config.transfer_gap_s)
