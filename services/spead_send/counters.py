"""svc-spead-send counters (defined for operators in docs/spead-send.md, "Counters")."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.common.counters import Counters, ReasonCounts, gauge, reasons, total


class Skip(enum.Enum):
    """Why a whole transfer was not sent."""

    BAD_HEADER = "bad_header"  # its headers describe no stream this sender knows
    WRONG_SCAN = "wrong_scan"  # managed mode: its SCAN_ID is not the started scan's


@dataclass
class SpeadSendCounters(Counters):
    heaps_sent_total: int = total("SPEAD heaps sent (data and control heaps, every stream)")
    data_heaps_sent_total: int = total("SPEAD data heaps sent")
    bytes_sent_total: int = total("bytes sent (SPEAD packets, headers included)")
    blocks_sent_total: int = total(
        "ring segments (data + weights block) whose every heap was sent")
    blocks_skipped_total: int = total(
        "viewer mode: ring segments overwritten by the writer before they could be read")
    send_errors_total: int = total(
        "failed sends (a control heap on one stream, or up to 256 data heaps of a segment)")
    transfers_total: int = total(
        "transfers sent, start heap to end heaps (those cut short by a stop or a dead writer too)")
    transfers_skipped: ReasonCounts = reasons(Skip, "transfers_skipped",
                                              "transfers not sent")
    writer_died_total: int = total("transfers cut short by the death of the ring writer")
    transfer_active: int = gauge("1 while a transfer is being sent")
    scan_id: int = gauge("SCAN_ID of the current or last transfer", default=-1)
