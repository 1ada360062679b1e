"""svc-mswrite's counters (see docs/monitoring.md)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.counters import Counters, ReasonCounts, gauge, reasons, total
from services.mswrite.transfer import Reason


@dataclass
class MsWriteCounters(Counters):
    transfers_total: int = total("transfers opened in the ring pair (one per scan)")
    transfers_resumed_total: int = total(
        "transfers picked up part-way: written into a continuation MS")
    transfers_skipped_total: int = total(
        "transfers (or their rest) drained without writing, after an error")
    ms_written_total: int = total("MeasurementSets closed cleanly (renamed NAME.ms)")
    ms_aborted_total: int = total("MeasurementSets given up and left as NAME.ms.partial")
    ms_suffixed_total: int = total(
        "transfers whose MS existed (the scan was sent again), written as NAME_rep<n>.ms")
    ms_overwritten_total: int = total(
        "transfers whose MS existed, written over it (MS_EXISTS overwrite)")
    blocks_total: int = total("ring block pairs read (written or drained)")
    bytes_total: int = total("ring bytes read, data + weights (written or drained)")
    dumps_written_total: int = total("dumps written from ring blocks")
    dumps_flagged_total: int = total(
        "dumps without any data (never arrived, or every FD 0), written as flagged rows")
    visibilities_flagged_total: int = total(
        "visibilities (dump x channel x baseline, 4 correlations each) written flagged: "
        "FD 0 or dump missing")
    writer_died_total: int = total(
        "transfers ended by the death of the ring writer (svc-ingest killed)")
    errors: ReasonCounts = reasons(Reason, "errors", "transfers given up, by reason")
    scan_id: int = gauge("SCAN_ID of the current or last transfer", default=-1)
    current_ms: str = gauge("path of the MS being written ('' when none)", default="")
    current_dumps: int = gauge("dumps with rows in the MS being written")
