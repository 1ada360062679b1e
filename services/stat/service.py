"""``svc-stat``: SKA PST STAT statistics of a live data+weights ring pair.

State machine (the framework's SKA PST lifecycle)::

    Idle --configure_beam (DATA_KEY, WEIGHTS_KEY: attach a viewer)--> BeamConfigured
         --configure_scan (EB_ID, STAT_*)--> ScanConfigured
         --start_scan (SCAN_ID)--> Scanning: sample the transfer of that scan
         --end_scan--> ScanConfigured ... --deconfigure_*--> Idle

While scanning, every STAT_PROC_DELAY_MS the service takes the latest complete segment (block
*i* of both rings), copies it out, checks the writer did not overwrite it meanwhile, and hands
it to the transfer's :class:`~services.stat.processor.StatProcessor` (built on the first
segment: headers parsed and STAT_* keys resolved once per transfer), which computes every
statistic, writes one HDF5 file named as SKA PST names them, and publishes the scalar
statistics to the subscribers of STAT_PUBLISH_SOCKET (open while a beam is configured). It is
a viewer: it never slows the writer. A bad segment is counted and skipped; a transfer whose
headers are bad is skipped whole (one log line); the end of the transfer (or its writer dying)
ends the scan loop (autonomous mode: it goes back to waiting for the next transfer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ringbuf import (
    HeaderError,
    Overwritten,
    RingBufError,
    RingNotFound,
    RingPairViewer,
    Segment,
    Timeout,
)
from services.common.config import ConfigError
from services.common.lifecycle import Refused, Service, StartScanConfig
from services.stat.compute import StatResult, warm_up
from services.stat.config import StatBeamConfig, StatDaemonConfig, StatScanConfig
from services.stat.counters import BadSegment, StatCounters
from services.stat.processor import StatProcessor
from services.stat.publish import Hdf5StatPublisher, ScalarSocket, ScalarStatPublisher

logger = logging.getLogger(__name__)

SUBSYSTEMS = {"SKALow": "pst-low", "SKAMid": "pst-mid"}
_POLL_S = 0.25


@dataclass(frozen=True)
class _Transfer:
    """The processor of one sampled transfer and its publishers."""

    processor: StatProcessor
    files: Hdf5StatPublisher
    scalar: ScalarStatPublisher | None


def output_path(base: str | Path, header: Mapping[str, str], obs_offset: int,
                file_number: int) -> Path:
    """SKA PST's ring-mode name: ``<base>/product/<EB_ID>/<pst-low|pst-mid>/<SCAN_ID>/
    monitoring_stats/<UTC_START>_<OBS_OFFSET 16 digits>_<file number 6 digits>.h5``."""
    telescope = header.get("TELESCOPE", "")
    if telescope not in SUBSYSTEMS:
        raise HeaderError(f"data header: TELESCOPE {telescope!r} is not SKALow or SKAMid")
    return (Path(base) / "product" / header.get("EB_ID", "unknown") / SUBSYSTEMS[telescope]
            / header.get("SCAN_ID", "0") / "monitoring_stats"
            / f"{header.get('UTC_START', 'unknown')}_{obs_offset:016d}_{file_number:06d}.h5")


class StatService(Service):
    """Samples a ring pair and writes SKA PST STAT files."""

    name = "svc-stat"
    beam_config = StatBeamConfig
    scan_config = StatScanConfig
    start_config = StartScanConfig

    def __init__(self, config: StatDaemonConfig) -> None:
        super().__init__(config, StatCounters())
        self.counters: StatCounters
        # numba loads (or compiles) the kernels now, not on the first segment of a scan
        threading.Thread(target=warm_up, name="stat-warm-up", daemon=True).start()
        self.publish_socket = config.publish_socket
        self.viewer: RingPairViewer | None = None
        self.scalar_socket: ScalarSocket | None = None  # lives as long as the beam configuration
        self.scan: StatScanConfig | None = None
        self.last_transfer = -1
        self.last_file: Path | None = None

    # ------------------------------------------------------------------------------- hooks
    def configure_beam(self, config: StatBeamConfig) -> None:
        try:
            viewer = RingPairViewer(config.data_key, config.weights_key, timeout=_POLL_S)
        except RingNotFound as exc:
            raise Refused(str(exc)) from None
        if self.publish_socket:
            try:
                self.scalar_socket = ScalarSocket(self.publish_socket)
            except OSError as exc:
                viewer.close()
                raise Refused(f"STAT_PUBLISH_SOCKET {self.publish_socket}: {exc}") from None
        self.viewer = viewer
        # transfers already in the rings are history: follow only new ones
        info = viewer.data.current_transfer()
        self.last_transfer = info.xfer_id if info is not None and info.state != "open" else -1

    def configure_scan(self, config: StatScanConfig) -> None:
        self.scan = config

    def start_scan(self, config: StartScanConfig, stop: threading.Event) -> None:
        xfer_id = self._wait_for_transfer(stop, scan_id=config.scan_id)
        if xfer_id is not None:
            self._sample_transfer(xfer_id, stop)

    def follow_transfer(self, stop: threading.Event) -> None:
        xfer_id = self._wait_for_transfer(stop, scan_id=None)
        if xfer_id is not None:
            self._sample_transfer(xfer_id, stop)

    def deconfigure_scan(self) -> None:
        self.scan = None

    def deconfigure_beam(self) -> None:
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None
        if self.scalar_socket is not None:
            self.scalar_socket.close()
            self.scalar_socket = None
            self.counters.subscribers = 0

    def ring_fill(self) -> Mapping[str, object]:
        if self.viewer is None:
            return {}
        return {name: {"key": v.key, "nbufs": v.layout.nbufs, "blocks_written": v.blocks_filled,
                       "missed_blocks": v.missed_blocks}
                for name, v in (("data", self.viewer.data), ("weights", self.viewer.weights))}

    def status_line(self) -> str:
        last = self.last_file.name if self.last_file else "-"
        return f"{self.counters.segments_total} segments, last {last}"

    # ------------------------------------------------------------------------------- work
    def _wait_for_transfer(self, stop: threading.Event, scan_id: int | None) -> int | None:
        """Wait for a transfer newer than the last one sampled (of ``scan_id`` if given)."""
        assert self.viewer is not None
        while not stop.is_set():
            self.progress()
            info = self.viewer.data.current_transfer()
            if info is not None and info.xfer_id > self.last_transfer:
                self.last_transfer = info.xfer_id
                header_scan = info.header.get("SCAN_ID")
                if scan_id is not None and header_scan != str(scan_id):
                    logger.warning("transfer %d has SCAN_ID %s, the scan is %d: ignored",
                                   info.xfer_id, header_scan, scan_id)
                    self.counters.bad_segments.add(BadSegment.WRONG_SCAN)
                    continue
                eb_id = self.scan.eb_id if self.scan is not None else ""
                if eb_id and info.header.get("EB_ID") != eb_id:
                    logger.warning("transfer %d has EB_ID %s, configured %s: ignored",
                                   info.xfer_id, info.header.get("EB_ID"), eb_id)
                    self.counters.bad_segments.add(BadSegment.WRONG_SCAN)
                    continue
                self.counters.transfers_total += 1
                return info.xfer_id
            stop.wait(_POLL_S)
        return None

    def _sample_transfer(self, xfer_id: int, stop: threading.Event) -> None:
        """Process the latest segment every STAT_PROC_DELAY_MS until the transfer ends."""
        assert self.viewer is not None and self.scan is not None
        logger.info("sampling transfer %d of rings %s/%s", xfer_id, self.viewer.data.key,
                    self.viewer.weights.key)
        delay_s = self.scan.proc_delay_ms / 1000
        next_due = 0.0
        transfer: _Transfer | None = None
        while not stop.is_set():
            self.progress()
            info = self.viewer.data.transfer(xfer_id)
            if time.monotonic() >= next_due:
                segment = self._latest_segment(xfer_id)
                if segment is not None:
                    if transfer is None:
                        transfer = self._open_transfer(xfer_id, segment)
                        if transfer is None:
                            return
                    self._process(transfer, segment)
                    next_due = time.monotonic() + delay_s
                    continue
            data = self.viewer.data
            if info.state != "open" and data.blocks_filled - 1 <= data.last_index:
                if info.state == "aborted":
                    self.counters.writer_died_total += 1
                    logger.warning("the writer of transfer %d died", xfer_id)
                logger.info("transfer %d %s", xfer_id, info.state)
                return
            stop.wait(min(_POLL_S, max(0.0, next_due - time.monotonic())) or _POLL_S)

    def _open_transfer(self, xfer_id: int, segment: Segment) -> _Transfer | None:
        """The processor of a transfer (its headers parsed once), or None if they are bad."""
        assert self.scan is not None
        base, header = self.scan.base_path, segment.data_header

        def name(result: StatResult, number: int) -> Path:
            return output_path(base, header, result.obs_offset, number)

        files = Hdf5StatPublisher(name)
        scalar = None
        if self.scalar_socket is not None:
            scalar = ScalarStatPublisher(self.scalar_socket, files)
        try:
            output_path(base, header, 0, 0)
            processor = StatProcessor.for_transfer(
                header, segment.weights_header, self.scan.source,
                [files] if scalar is None else [files, scalar])
            return _Transfer(processor, files, scalar)
        except (HeaderError, ConfigError) as exc:
            logger.error("transfer %d skipped: %s", xfer_id, exc)
            self.counters.bad_segments.add(BadSegment.INVALID)
            return None

    def _latest_segment(self, xfer_id: int) -> Segment | None:
        """A private copy of the latest segment of ``xfer_id``, or None if there is none new."""
        assert self.viewer is not None
        try:
            view = self.viewer.latest_segment(timeout=0)
        except Timeout:
            return None
        except Overwritten:
            self.counters.bad_segments.add(BadSegment.OVERWRITTEN)
            return None
        except RingBufError as exc:
            logger.warning("bad segment: %s", exc)
            self.counters.bad_segments.add(BadSegment.INVALID)
            return None
        if view.xfer_id != xfer_id:
            return None
        seg = view.segment
        copy = Segment(np.array(seg.data), np.array(seg.weights), seg.obs_offset,
                       seg.weights_obs_offset, seg.data_header, seg.weights_header)
        try:
            view.verify()
        except Overwritten:
            self.counters.bad_segments.add(BadSegment.OVERWRITTEN)
            return None
        return copy

    def _process(self, transfer: _Transfer, segment: Segment) -> None:
        started = time.monotonic()
        scalar = transfer.scalar
        sent_before = scalar.sent_total if scalar is not None else 0
        try:
            transfer.processor.process(segment)
        except OSError as exc:
            logger.error("cannot write the statistics at OBS_OFFSET %d: %s", segment.obs_offset,
                         exc)
            self.counters.bad_segments.add(BadSegment.WRITE_FAILED)
            return
        except (RingBufError, ValueError) as exc:
            logger.warning("bad segment at OBS_OFFSET %d: %s", segment.obs_offset, exc)
            self.counters.bad_segments.add(BadSegment.INVALID)
            return
        self.last_file = transfer.files.last_path
        self.health.data_seen()
        self.counters.segments_total += 1
        self.counters.files_total += 1
        self.counters.bytes_total += len(segment.data) + len(segment.weights)
        self.counters.last_obs_offset = segment.obs_offset
        self.counters.compute_seconds = round(time.monotonic() - started, 4)
        logger.info("wrote %s (%.2f s)", self.last_file, self.counters.compute_seconds)
        if scalar is not None and self.scalar_socket is not None:
            self.counters.published_total += scalar.sent_total - sent_before
            self.counters.subscribers = self.scalar_socket.subscribers
