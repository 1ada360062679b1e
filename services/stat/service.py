"""``svc-stat``: SKA PST STAT statistics of a live data+weights ring pair.

State machine (the framework's SKA PST lifecycle)::

    Idle --configure_beam (DATA_KEY, WEIGHTS_KEY: attach a viewer)--> BeamConfigured
         --configure_scan (EB_ID, STAT_*)--> ScanConfigured
         --start_scan (SCAN_ID)--> Scanning: sample the transfer of that scan
         --end_scan--> ScanConfigured ... --deconfigure_*--> Idle

While scanning, every STAT_PROC_DELAY_MS the service takes the latest complete segment (block
*i* of both rings), copies it out, checks the writer did not overwrite it meanwhile, computes
every statistic, writes one HDF5 file named as SKA PST names them, and publishes the scalar
statistics. It is a viewer: it never slows the writer. A bad segment is counted and skipped;
the end of the transfer (or its writer dying) ends the scan loop (autonomous mode: it goes
back to waiting for the next transfer).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ringbuf.errors import HeaderError, Overwritten, RingBufError, RingNotFound, Timeout
from ringbuf.pair import RingPairViewer
from ringbuf.segment import Segment
from services.common.config import (
    Config,
    DaemonConfig,
    RingPairConfig,
    non_negative,
    positive,
    setting,
)
from services.common.counters import Counters, ReasonCounts, gauge, reasons, total
from services.common.lifecycle import Refused, Service, StartScanConfig
from services.stat.compute import StatConfig, compute_segment
from services.stat.hdf5_writer import write_hdf5
from services.stat.publish import ScalarPublisher
from services.stat.scalar import scalar_stats

logger = logging.getLogger(__name__)

SUBSYSTEMS = {"SKALow": "pst-low", "SKAMid": "pst-mid"}
_POLL_S = 0.25


class BadSegment(enum.Enum):
    OVERWRITTEN = "overwritten"
    INVALID = "invalid"
    WRONG_SCAN = "wrong_scan"
    WRITE_FAILED = "write_failed"


@dataclass
class StatCounters(Counters):
    transfers_total: int = total("transfers (scans) sampled")
    segments_total: int = total("segments processed and written")
    bytes_total: int = total("data+weights bytes processed")
    files_total: int = total("HDF5 files written")
    published_total: int = total("scalar messages sent to subscribers")
    bad_segments: ReasonCounts = reasons(BadSegment, "bad_segments", "segments skipped, by reason")
    writer_died_total: int = total("transfers whose writer died")
    compute_seconds: float = gauge("time the last segment took to compute and write")
    subscribers: int = gauge("scalar subscribers connected")
    last_obs_offset: int = gauge("OBS_OFFSET of the last segment processed", default=-1)


@dataclass(frozen=True, kw_only=True)
class StatDaemonConfig(DaemonConfig):
    publish_socket: str = setting(
        "STAT_PUBLISH_SOCKET", str, default="",
        help="Unix socket where scalar statistics are published (empty: off)",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StatBeamConfig(RingPairConfig):
    """configure_beam: the ring pair to view."""


@dataclass(frozen=True, kw_only=True)
class StatScanConfig(Config):
    eb_id: str = setting("EB_ID", str, default="", help="execution block id (managed mode: must match the data header)")
    proc_delay_ms: int = setting("STAT_PROC_DELAY_MS", int, default=5000, validator=non_negative,
                                 help="wait between two processed segments")
    req_freq_bins: int = setting("STAT_REQ_FREQ_BINS", int, default=1024, validator=non_negative,
                                 help="requested frequency bins of the spectrogram")
    req_time_bins: int = setting("STAT_REQ_TIME_BINS", int, default=1024, validator=non_negative,
                                 help="requested time bins of spectrogram and timeseries")
    nrebin: int = setting("STAT_NREBIN", int, default=256, validator=positive,
                          help="bins of the rebinned histograms")
    base_path: str = setting("STAT_BASE_PATH", str, default="/tmp",
                             help="root of the output tree <base>/product/<EB_ID>/...")

    @property
    def stat_config(self) -> StatConfig:
        return StatConfig(self.req_time_bins, self.req_freq_bins, self.nrebin)


def output_path(base: str | Path, header: Mapping[str, str], obs_offset: int, file_number: int) -> Path:
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
        self.viewer: RingPairViewer | None = None
        self.scan: StatScanConfig | None = None
        self.publisher = ScalarPublisher(config.publish_socket) if config.publish_socket else None
        self.file_number = 0
        self.last_transfer = -1
        self.last_file: Path | None = None

    # ------------------------------------------------------------------------------- hooks
    def configure_beam(self, config: StatBeamConfig) -> None:
        try:
            self.viewer = RingPairViewer(config.data_key, config.weights_key, timeout=_POLL_S)
        except RingNotFound as exc:
            raise Refused(str(exc)) from None
        # transfers already in the rings are history: follow only new ones
        info = self.viewer.data.current_transfer()
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
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None

    def ring_fill(self) -> Mapping[str, object]:
        if self.viewer is None:
            return {}
        return {name: {"key": v.key, "nbufs": v.layout.nbufs, "blocks_written": v.blocks_filled,
                       "missed_blocks": v.missed_blocks}
                for name, v in (("data", self.viewer.data), ("weights", self.viewer.weights))}

    def status_line(self) -> str:
        return f"{self.counters.segments_total} segments, last {self.last_file.name if self.last_file else '-'}"

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
                if self.scan is not None and self.scan.eb_id and info.header.get("EB_ID") != self.scan.eb_id:
                    logger.warning("transfer %d has EB_ID %s, configured %s: ignored",
                                   info.xfer_id, info.header.get("EB_ID"), self.scan.eb_id)
                    self.counters.bad_segments.add(BadSegment.WRONG_SCAN)
                    continue
                self.counters.transfers_total += 1
                self.file_number = 0
                return info.xfer_id
            stop.wait(_POLL_S)
        return None

    def _sample_transfer(self, xfer_id: int, stop: threading.Event) -> None:
        assert self.viewer is not None and self.scan is not None
        logger.info("sampling transfer %d of rings %s/%s", xfer_id, self.viewer.data.key,
                    self.viewer.weights.key)
        delay_s = self.scan.proc_delay_ms / 1000
        next_due = 0.0
        while not stop.is_set():
            self.progress()
            info = self.viewer.data.transfer(xfer_id)
            if time.monotonic() >= next_due:
                segment = self._latest_segment(xfer_id)
                if segment is not None:
                    self._process(segment)
                    next_due = time.monotonic() + delay_s
                    continue
            if info.state != "open" and self.viewer.data.blocks_filled - 1 <= self.viewer.data.last_index:
                if info.state == "aborted":
                    self.counters.writer_died_total += 1
                    logger.warning("the writer of transfer %d died", xfer_id)
                logger.info("transfer %d %s", xfer_id, info.state)
                return
            stop.wait(min(_POLL_S, max(0.0, next_due - time.monotonic())) or _POLL_S)

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

    def _process(self, segment: Segment) -> None:
        assert self.scan is not None
        started = time.monotonic()
        try:
            result = compute_segment(segment, self.scan.stat_config)
            path = output_path(self.scan.base_path, segment.data_header, segment.obs_offset,
                               self.file_number)
        except (RingBufError, ValueError) as exc:
            logger.warning("bad segment at OBS_OFFSET %d: %s", segment.obs_offset, exc)
            self.counters.bad_segments.add(BadSegment.INVALID)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_hdf5(result, path)
        except OSError as exc:
            logger.error("cannot write %s: %s", path, exc)
            self.counters.bad_segments.add(BadSegment.WRITE_FAILED)
            return
        self.file_number += 1
        self.last_file = path
        self.health.data_seen()
        self.counters.segments_total += 1
        self.counters.files_total += 1
        self.counters.bytes_total += len(segment.data) + len(segment.weights)
        self.counters.last_obs_offset = segment.obs_offset
        self.counters.compute_seconds = round(time.monotonic() - started, 4)
        logger.info("wrote %s (%.2f s)", path, self.counters.compute_seconds)
        if self.publisher is not None:
            message = dict(scalar_stats(result))
            message.update(scan_id=segment.data_header.get("SCAN_ID", "0"),
                           obs_offset=segment.obs_offset, file=str(path), time=time.time())
            self.counters.published_total += self.publisher.publish(message)
            self.counters.subscribers = self.publisher.subscribers
