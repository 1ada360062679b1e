"""svc-stat's counters (documented in docs/monitoring.md)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.common.counters import Counters, ReasonCounts, gauge, reasons, total


class BadSegment(enum.Enum):
    """Why a segment (or a whole transfer) was skipped."""

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
