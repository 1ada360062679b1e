"""svc-avg counters (defined for operators in docs/avg.md, "Counters")."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.common.counters import Counters, ReasonCounts, gauge, reasons, total


class Reason(enum.Enum):
    """Why a transfer (or the rest of it) was not averaged."""

    BAD_HEADER = "bad_header"  # an input header key missing, malformed or off-contract
    BAD_BLOCK = "bad_block"  # a block that is not whole dumps, or the rings out of step
    OUTPUT = "output"  # the output ring pair refused the transfer (layout, header size)


@dataclass
class AvgCounters(Counters):
    transfers_total: int = total("input transfers opened")
    transfers_resumed_total: int = total("input transfers picked up part-way (a restart)")
    transfers_skipped_total: int = total("input transfers (or their rest) drained, not averaged")
    writer_died_total: int = total("input transfers ended by the death of their writer")
    blocks_in_total: int = total("input block pairs read")
    bytes_in_total: int = total("input bytes read (data + weights)")
    dumps_in_total: int = total("input dumps averaged")
    dumps_skipped_total: int = total(
        "input dumps skipped on resume (already in the output before a restart)")
    dumps_out_total: int = total("output dumps written")
    blocks_out_total: int = total("output block pairs committed")
    visibilities_rfi_total: int = total("input visibilities flagged by the RFI flagger")
    visibilities_flagged_in_total: int = total("input visibilities already flagged (FD 0)")
    visibilities_flagged_out_total: int = total(
        "output visibilities flagged (FD 0): every input flagged, or not a carrying dump")
    errors: ReasonCounts = reasons(Reason, "errors", "transfers given up, by reason")
    scan_id: int = gauge("SCAN_ID of the current or last transfer", default=-1)
    held_blocks: int = gauge("input block pairs held until their output is committed")
