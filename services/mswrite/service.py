"""``svc-mswrite``: the visibility ring pair's transfers into MeasurementSets.

Beam (configure_beam): attach as a guaranteed reader of the ring pair DATA_KEY/WEIGHTS_KEY.
Scan (configure_scan): where and how to write (MS_* keys, metadata source).
Managed mode: start_scan runs the transfer loop until end_scan; a transfer whose SCAN_ID is
not the started one is drained unwritten. Autonomous mode: every transfer, from its header.

Per transfer, on the scan thread (all casacore I/O happens there)::

    header ok? -- no --> error counted, transfer drained (ingest never waits on us)
       | yes
    TransferWriter: block pairs -> MS (rollover, gaps flagged)
       |-- end of data ---------> close: NAME.ms
       |-- writer died (ingest killed) -> close what arrived: NAME.ms; writer_died_total
       |-- stop (end_scan, SIGTERM) ----> close: NAME.ms; the rest of the transfer stays in
       |                                  the ring for the next reader (a continuation MS)
       `-- error (disk full, ...) ------> NAME.ms.partial left, error counted, rest drained

A block pair written into the MS stays held (uncleared) in the ring until the flush that
makes it durable; the held pairs are cleared right after that flush (or at close, abort,
end of transfer). The MS is flushed every MS_FLUSH_INTERVAL_S, and at once when nbufs // 2
pairs are held, so the ring writer never waits on a flush. A kill -9 therefore loses
nothing: every block whose dumps are not in the killed daemon's ``.partial`` is delivered
again to the next reader of the slot.

A transfer already read part-way by this reader slot (``transfer.resumed``: the slot of a
killed svc-mswrite was reclaimed, or a scan was stopped in the middle) is continued in a new
MS whose name ends ``_resumed_d<first dump>`` (see :mod:`services.mswrite.transfer`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from ringbuf import (
    PairOutOfStep,
    PairReadTransfer,
    RingPairReader,
    Segment,
    Timeout,
    WriterDied,
)
from ringbuf.errors import RingBufError
from services.common.config import DaemonConfig
from services.common.lifecycle import Refused, Service, StartScanConfig
from services.mswrite.config import MsWriteBeamConfig, MsWriteScanConfig
from services.mswrite.counters import MsWriteCounters
from services.mswrite.errors import MsWriteError
from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.transfer import (
    ExistsPolicy,
    MsTarget,
    Reason,
    TransferError,
    TransferWriter,
)

logger = logging.getLogger(__name__)

#: seconds a ring wait lasts before the scan loop reports progress and waits again
POLL_S = 0.5


class MsWriteService(Service):
    """Reads the visibility ring pair and writes each transfer as MeasurementSets."""

    name = "svc-mswrite"
    beam_config = MsWriteBeamConfig
    scan_config = MsWriteScanConfig
    start_config = StartScanConfig

    def __init__(self, config: DaemonConfig) -> None:
        super().__init__(config, MsWriteCounters())
        self.counters: MsWriteCounters
        self.beam: MsWriteBeamConfig | None = None
        self.scan: MsWriteScanConfig | None = None
        self._reader: RingPairReader | None = None
        self._antennas: Antennas | None = None  # loaded on the scan thread when needed
        # a transfer left part-way by a stop, and whether it was being drained
        self._pending: tuple[PairReadTransfer, bool] | None = None

    # ------------------------------------------------------------------ lifecycle hooks
    def configure_beam(self, config: MsWriteBeamConfig) -> None:
        try:
            self._reader = RingPairReader(config.data_key, config.weights_key, timeout=POLL_S)
        except RingBufError as exc:
            raise Refused(str(exc)) from None
        self.beam = config
        logger.info("reading ring pair %s/%s (slot %d)", config.data_key, config.weights_key,
                    self._reader.data.slot)

    def configure_scan(self, config: MsWriteScanConfig) -> None:
        path = Path(config.antenna_file) if config.antenna_file else None
        if path is not None and not path.is_dir():  # a text file: parse now, no casacore
            try:
                self._antennas = Antennas.load(path, config.telescope)
            except MsWriteError as exc:
                raise Refused(str(exc)) from None
        else:
            self._antennas = None  # an MS: read on the scan thread
        self.scan = config

    def start_scan(self, config: StartScanConfig, stop: threading.Event) -> None:
        logger.info("scan %d: writing its transfers", config.scan_id)
        while not stop.is_set():
            self._follow(stop, expected_scan=config.scan_id)
            self.progress()

    def end_scan(self) -> None:
        self.counters.current_ms, self.counters.current_dumps = "", 0

    def deconfigure_scan(self) -> None:
        self.scan = None
        self._antennas = None

    def deconfigure_beam(self) -> None:
        reader, self._reader = self._reader, None
        self._pending = None
        self.beam = None
        if reader is not None:
            reader.close()

    def follow_transfer(self, stop: threading.Event) -> None:
        self.health.expect_data(False)  # between transfers, silence is normal
        try:
            self._follow(stop, expected_scan=None)
        finally:
            self.health.expect_data(False)

    def ring_fill(self) -> Mapping[str, object]:
        pair = self._reader  # the control thread may detach it meanwhile
        return {} if pair is None else pair.fill()

    def status_line(self) -> str:
        c = self.counters
        where = f"writing {Path(c.current_ms).name}" if c.current_ms else "waiting"
        return f"{where}; {c.ms_written_total} MS, {c.dumps_written_total} dumps"

    # ------------------------------------------------------------------ transfers
    def _follow(self, stop: threading.Event, expected_scan: int | None) -> None:
        """Write (or drain) the transfer left part-way by a stop, else wait up to POLL_S
        for the next transfer and write it."""
        reader = self._require_reader()
        reader.stop = stop  # a stop of this scan interrupts every ring wait
        if self._pending is not None:
            (transfer, draining), self._pending = self._pending, None
            if draining:
                self._drain(transfer)
            else:
                self._write_transfer(transfer, expected_scan, continuing=True)
            return
        try:
            transfer = reader.open_transfer(timeout=POLL_S)
        except Timeout:
            return
        self._write_transfer(transfer, expected_scan, continuing=False)

    def _write_transfer(self, transfer: PairReadTransfer, expected_scan: int | None,
                        continuing: bool) -> None:
        c = self.counters
        c.transfers_total += 1
        self.health.expect_data(True)
        resumed = transfer.resumed or continuing
        if resumed:
            c.transfers_resumed_total += 1
        try:
            writer = self._open_writer(transfer, expected_scan, resumed)
        except TransferError as exc:
            self._give_up(exc, transfer, None)
            return
        # segments written but not yet flushed stay held: a kill -9 has them delivered again
        most = max(1, self._require_reader().data.layout.nbufs // 2)
        try:
            for seg in self._segments(transfer):
                writer.write(seg.data, seg.weights, seg.obs_offset)
                if transfer.held >= most and not writer.durable:
                    writer.flush()  # before the ring writer has to wait for a block
                if writer.durable:
                    transfer.clear_held()
        except WriterDied:
            c.writer_died_total += 1
            logger.warning("scan %d: the ring writer died; closing what arrived",
                           writer.stream.scan_id)
            self._close(writer, transfer)
        except TransferError as exc:
            self._give_up(exc, transfer, writer)
        except (MsWriteError, OSError, RuntimeError) as exc:
            self._give_up(TransferError(Reason.WRITE_FAILED, _one_line(exc)), transfer, writer)
        except BaseException:  # stop (Interrupted) or a bug: keep what was written
            self._keep_pending(transfer, draining=False)
            self._close(writer, transfer)
            raise
        else:
            self._close(writer, transfer)

    def _open_writer(self, transfer: PairReadTransfer, expected_scan: int | None,
                     resumed: bool) -> TransferWriter:
        scan = self._require_scan()
        try:
            scan_id = transfer.data_header.get_int("SCAN_ID")
        except RingBufError as exc:
            raise TransferError(Reason.BAD_HEADER, str(exc)) from None
        self.counters.scan_id = scan_id
        if expected_scan is not None and scan_id != expected_scan:
            raise TransferError(Reason.SCAN_ID_MISMATCH,
                                f"transfer of SCAN_ID {scan_id} while scan {expected_scan} "
                                "runs: drained unwritten")
        if scan.antenna_file and self._antennas is None:
            try:
                self._antennas = Antennas.load(scan.antenna_file, scan.telescope)
            except MsWriteError as exc:
                raise TransferError(Reason.METADATA, str(exc)) from None
        centre = None
        if scan.ra_deg is not None and scan.dec_deg is not None:
            centre = PhaseCentre.from_degrees(scan.ra_deg, scan.dec_deg,
                                              transfer.data_header.get_str("SOURCE", "field"))
        target = MsTarget(
            output_dir=scan.output_dir, name_template=scan.name_template,
            rollover_dumps=scan.rollover_dumps,
            data_model=Path(scan.data_model) if scan.data_model else None,
            antennas=None if scan.data_model else self._antennas, phase_centre=centre,
            telescope=scan.telescope, flush_interval_s=scan.flush_interval_s,
            config_text=scan.config_text(self.beam), exists=ExistsPolicy(scan.exists))
        writer = TransferWriter(target, transfer.data_header, transfer.weights_header,
                                self.counters, resumed)
        writer.start()
        logger.info("scan %d: transfer started%s", scan_id,
                    " (continuation)" if writer.resumed else "")
        return writer

    def _segments(self, transfer: PairReadTransfer) -> Iterator[Segment]:
        """Segments until the end of the transfer, each left held (the caller clears them
        with ``transfer.clear_held()``). WriterDied and Interrupted propagate; a segment still
        held when the process dies is delivered again to the next reader.

        A ring wait that times out reports progress and waits again (the transfer keeps a
        pair together across it).
        """
        while True:
            try:
                held = transfer.next_segment()
            except Timeout:
                self.progress()
                continue
            except PairOutOfStep as exc:
                raise TransferError(Reason.BAD_BLOCK, str(exc)) from None
            if held is None:
                return
            self._count(held.segment)
            yield held.segment

    def _count(self, seg: Segment) -> None:
        c = self.counters
        c.blocks_total += 1
        c.bytes_total += seg.data.nbytes + seg.weights.nbytes
        self.health.data_seen()
        self.progress()

    def _drain(self, transfer: PairReadTransfer) -> None:
        """Read and discard the rest of a transfer (so ingest never waits on us), counting
        the blocks and reporting progress; a stop leaves the rest for the next scan loop."""
        try:
            transfer.drain(on_wait=self.progress, on_segment=self._count)
        except BaseException:  # stop: drain the rest at the next scan
            self._keep_pending(transfer, draining=True)
            raise

    def _keep_pending(self, transfer: PairReadTransfer, draining: bool) -> None:
        """Remember a transfer a stop left part-way (resumed by the next scan loop)."""
        if not transfer.finished:
            self._pending = (transfer, draining)

    def _give_up(self, exc: TransferError, transfer: PairReadTransfer,
                 writer: TransferWriter | None) -> None:
        c = self.counters
        c.errors.add(exc.reason)
        c.transfers_skipped_total += 1
        try:
            left = writer.abort() if writer is not None else None
        finally:
            transfer.clear_held()
        logger.error("%s%s; draining the rest of the transfer", exc,
                     f" (left {left})" if left else "")
        self._drain(transfer)

    def _close(self, writer: TransferWriter, transfer: PairReadTransfer) -> None:
        """Close the MS (flushing it), then clear the segments it held."""
        try:
            paths = writer.close()
        except TransferError as exc:
            self.counters.errors.add(exc.reason)
            logger.error("%s", exc)
            return
        finally:
            transfer.clear_held()
        logger.info("scan %d: wrote %s", writer.stream.scan_id,
                    ", ".join(str(p) for p in paths) or "nothing")

    def _require_reader(self) -> RingPairReader:
        if self._reader is None:
            raise RuntimeError("no ring pair attached (configure_beam first)")
        return self._reader

    def _require_scan(self) -> MsWriteScanConfig:
        if self.scan is None:
            raise RuntimeError("no scan configured (configure_scan first)")
        return self.scan


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
