"""svc-ingest counters (defined for operators in docs/ingest.md, "Counters")."""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass

from services.common.counters import Counters, ReasonCounts, gauge, reasons, total


class Stat(enum.IntEnum):
    """What the place callbacks count: the one declaration of every heap statistic they keep.

    The value is the statistic's slot in the callbacks' parameter record
    (``stat_index[Stat.X]`` holds the spead2 index). Each member is registered on every stream
    as the spead2 custom statistic :attr:`stat_name` and folded into one counter,
    :attr:`counter`: a ``REJECTED_<REASON>`` member into the :data:`Reject` reason
    ``heaps_rejected_<reason>_total`` (the reasons are made from these members), any other
    into the total ``<name>_total`` of :class:`IngestCounters`.
    """

    HEAPS_RECEIVED = 0  # a heap's first packet reached the callback (control heaps included)
    METADATA_HEAPS = 1  # start, descriptor and metadata heaps
    START_HEAPS = 2  # start-of-stream heaps
    END_HEAPS = 3  # end-of-stream heaps
    HEAPS_DUPLICATE = 4  # a second copy of a (time, channel block) heap
    REJECTED_BAD_HEAP_LENGTH = 5  # beam: heap length not the configured PST packet payload
    REJECTED_UNKNOWN_ITEM = 6  # an item id outside the profile's ICD
    REJECTED_BAD_TIMESTAMP = 7  # misaligned, or too far from the newest heap
    REJECTED_WRONG_CHANNEL = 8  # a channel block this port does not carry
    REJECTED_BAD_FLAVOUR = 9  # not SPEAD-64-48
    REJECTED_BAD_CHANNEL_COUNT = 10  # vis: visibility_channel_count sent and not as configured
    REJECTED_BAD_BASELINE_COUNT = 11  # vis: visibility_baseline_count sent and not as configured
    REJECTED_BAD_VIS_SIZE = 12  # vis: correlator_output_data not channels x baselines x 34 B
    REJECTED_MISSING_ITEM = 13  # a placement item (channel id, visibilities, scale) not in
    # the heap's first packet
    REJECTED_HEAP_TOO_LARGE = 14  # vis: payload longer than the chunk slot
    # (visibilities + MAX_HEAP_METADATA_BYTES)
    DATA_HEAPS_WITH_METADATA = 15  # vis: data heaps that also carried descriptors or
    # addressed items besides the visibilities (accepted)

    @property
    def stat_name(self) -> str:
        """Name of the spead2 custom stream statistic."""
        return self.name.lower()

    @property
    def reason(self) -> str | None:
        """The reject reason (``bad_vis_size``, ...); None if the member is not a rejection."""
        prefix = "REJECTED_"
        return self.name[len(prefix):].lower() if self.name.startswith(prefix) else None

    @property
    def reject(self) -> enum.Enum:
        """The :data:`Reject` reason of a ``REJECTED_*`` member (ValueError for any other)."""
        if self.reason is None:
            raise ValueError(f"{self.name} is not a rejection")
        return Reject(self.reason)

    @property
    def counter(self) -> str:
        """The counter this statistic is folded into."""
        reason = self.reason
        return f"heaps_rejected_{reason}_total" if reason else f"{self.stat_name}_total"


#: Why a heap was rejected before it reached a ring block: one reason per ``Stat.REJECTED_*``
#: (``Stat.REJECTED_BAD_VIS_SIZE.reject`` is ``Reject("bad_vis_size")``). Made from Stat, so mypy
#: cannot list its members: code reaches them through :attr:`Stat.reject`.
Reject = enum.Enum(  # type: ignore[misc]
    "Reject", [(s.reason.upper(), s.reason) for s in Stat if s.reason is not None])


@dataclass
class IngestCounters(Counters):
    heaps_received_total: int = total("heaps whose first packet reached the place callback")
    heaps_complete_total: int = total("data heaps that landed complete in a ring block")
    heaps_incomplete_total: int = total("heaps spead2 dropped because packets were missing")
    heaps_lost_total: int = total("expected data heaps written as holes (never complete)")
    heaps_padding_skipped_total: int = total(
        "expected heaps after the last time step sent, trimmed from a transfer's last block")
    heaps_too_old_total: int = total("heaps for a ring block already written")
    heaps_duplicate_total: int = total("second copies of a (time, channel block) heap")
    heaps_rejected: ReasonCounts = reasons(Reject, "heaps_rejected", "heaps rejected")
    data_heaps_with_metadata_total: int = total(
        "data heaps that also carried descriptors or addressed items (accepted)")
    heaps_fd_unpopulated_total: int = total(
        "data heaps with all-zero FD and non-zero visibilities, taken as valid (FD_POLICY auto)")
    transfers_missed_start_total: int = total(
        "transfers that opened without a start heap (receiver started mid-scan): metadata "
        "from data heaps and config")
    transfers_split_total: int = total(
        "transfers of a scan that went on after end heaps had ended its previous transfer "
        "(a stray or forged end heap split the scan)")
    metadata_heaps_total: int = total("start, descriptor and metadata heaps")
    start_heaps_total: int = total("start-of-stream heaps")
    end_heaps_total: int = total("end-of-stream heaps, the injected ones included")
    end_heaps_injected_total: int = total(
        "end-of-stream heaps svc-ingest sent itself to end a transfer after STREAM_TIMEOUT_S")
    stream_timeouts_total: int = total("transfers ended by STREAM_TIMEOUT_S without end heaps")
    datagrams_rejected_total: int = total("datagrams spead2 could not decode (process-wide)")
    packets_total: int = total("SPEAD packets decoded")
    bytes_total: int = total("payload bytes of complete data heaps")
    blocks_total: int = total("ring segments written (data + weights)")
    transfers_total: int = total("transfers (scans) written")
    ring_full_total: int = total("segments that waited more than 1 ms for a free ring block")
    writer_blocked_seconds_total: float = total("seconds spent waiting for free ring blocks")
    chunk_pool_blocked_total: int = total("times spead2 waited for a free chunk (worker_blocked)")
    udp_rcvbuf_errors_total: int = total("kernel UDP receive-buffer drops (host-wide, /proc)")
    transfer_active: int = gauge("1 while a transfer is open")
    scan_id: int = gauge("SCAN_ID of the current or last transfer")


class DatagramRejectCounter(logging.Filter):
    """Counts spead2's "packet rejected" log records (garbage datagrams) and hides them.

    spead2 reports undecodable packets only through its log; the count is process-wide.
    """

    _lock = threading.Lock()
    count = 0

    def __init__(self, pass_level: int) -> None:
        super().__init__()
        self.pass_level = pass_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("packet rejected"):
            with self._lock:
                DatagramRejectCounter.count += 1
            return False
        return record.levelno >= self.pass_level


_installed = False


def install_datagram_counter() -> None:
    """Attach the counter to the ``spead2`` logger once per process.

    The logger is set to INFO so the records exist; other records below the level that was
    in effect before are still dropped.
    """
    global _installed
    if not _installed:
        spead2_logger = logging.getLogger("spead2")
        pass_level = spead2_logger.getEffectiveLevel()
        spead2_logger.setLevel(min(pass_level, logging.INFO))
        spead2_logger.addFilter(DatagramRejectCounter(pass_level))
        _installed = True


def udp_rcvbuf_errors() -> int:
    """Host-wide UDP RcvbufErrors from /proc/net/snmp (0 where unavailable)."""
    try:
        with open("/proc/net/snmp") as fh:
            lines = [line.split() for line in fh if line.startswith("Udp:")]
        names, values = lines[0], lines[1]
        return int(values[names.index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return 0
