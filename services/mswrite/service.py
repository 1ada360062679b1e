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
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ringbuf import (
    PairOutOfStep,
    PairReadTransfer,
    RingPairReader,
    Segment,
    Timeout,
    WriterDied,
    snapshot,
)
from ringbuf.errors import RingBufError
from services.common.config import (
    Config,
    DaemonConfig,
    RingPairConfig,
    non_negative,
    one_of,
    setting,
)
from services.common.counters import Counters, ReasonCounts, gauge, reasons, total
from services.common.lifecycle import Refused, Service, StartScanConfig
from services.mswrite.errors import MsWriteError
from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.transfer import (
    DEFAULT_NAME_TEMPLATE,
    ExistsPolicy,
    MsTarget,
    Reason,
    TransferError,
    TransferWriter,
    check_template,
)

logger = logging.getLogger(__name__)

#: seconds a ring wait lasts before the scan loop reports progress and waits again
POLL_S = 0.5


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True, kw_only=True)
class MsWriteConfig(DaemonConfig):
    """The daemon's own settings: only the common ones (see DaemonConfig)."""


@dataclass(frozen=True, kw_only=True)
class MsWriteBeamConfig(RingPairConfig):
    """configure_beam: the visibility ring pair."""


def _ra(value: float) -> None:
    if not 0.0 <= value < 360.0:
        raise ValueError("must be in [0, 360) degrees")


def _dec(value: float) -> None:
    if not -90.0 <= value <= 90.0:
        raise ValueError("must be in [-90, 90] degrees")


@dataclass(frozen=True, kw_only=True)
class MsWriteScanConfig(Config):
    """configure_scan: where the MeasurementSets go and where their metadata comes from."""

    output_dir: Path = setting("MS_OUTPUT_DIR", Path, help="directory the MSs are written in")
    name_template: str = setting(
        "MS_NAME_TEMPLATE", str, default=DEFAULT_NAME_TEMPLATE, validator=check_template,
        help="MS file name; placeholders {SCAN_ID} and {UTC_START}; ends in .ms")
    rollover_dumps: int = setting(
        "MS_ROLLOVER_DUMPS", int, default=0, validator=non_negative,
        help="start a new MS every this many dumps (0: one MS per transfer)")
    data_model: str = setting(
        "MS_DATA_MODEL", str, default="",
        help="an MS giving antennas, phase centre and UVW per time (or MS_ANTENNA_FILE)")
    antenna_file: str = setting(
        "MS_ANTENNA_FILE", str, default="",
        help="antenna positions: text file 'NAME X Y Z [DIAM]' (ITRF m) or an MS "
             "(or MS_DATA_MODEL)")
    ra_deg: float | None = setting(
        "PHASE_CENTRE_RA_DEG", float, default=None, validator=_ra,
        help="phase centre RA J2000 (with MS_ANTENNA_FILE; default: the header's)")
    dec_deg: float | None = setting(
        "PHASE_CENTRE_DEC_DEG", float, default=None, validator=_dec,
        help="phase centre Dec J2000 (with MS_ANTENNA_FILE; default: the header's)")
    telescope: str = setting("TELESCOPE", str, default="",
                             help="OBSERVATION TELESCOPE_NAME (default: header, then metadata)")
    flush_interval_s: float = setting(
        "MS_FLUSH_INTERVAL_S", float, default=1.0, validator=non_negative,
        help="flush the MS at most this often (0: after every block)")
    exists: str = setting(
        "MS_EXISTS", str, default=ExistsPolicy.SUFFIX.value,
        validator=one_of(*(p.value for p in ExistsPolicy)),
        help="the MS of a transfer exists (the scan was sent again): suffix (write "
             "NAME_rep2.ms, ...), refuse (drain it) or overwrite")

    def check(self) -> Iterable[str]:
        out = _unusable_path("MS_OUTPUT_DIR", self.output_dir)
        if out:
            yield out
        elif not self.output_dir.is_dir():
            yield f"MS_OUTPUT_DIR {self.output_dir}: not a directory"
        elif not os.access(self.output_dir, os.W_OK | os.X_OK):
            yield f"MS_OUTPUT_DIR {self.output_dir}: not writable"
        if bool(self.data_model) == bool(self.antenna_file):
            yield ("set exactly one of MS_DATA_MODEL and MS_ANTENNA_FILE "
                   f"(got {'both' if self.data_model else 'neither'})")
        if self.data_model:
            model = _unusable_path("MS_DATA_MODEL", Path(self.data_model) / "table.dat")
            if model:
                yield model
            elif not (Path(self.data_model) / "table.dat").is_file():
                yield f"MS_DATA_MODEL {self.data_model}: not a MeasurementSet (no table.dat)"
        if self.antenna_file:
            antennas = _unusable_path("MS_ANTENNA_FILE", Path(self.antenna_file))
            if antennas:
                yield antennas
            elif not Path(self.antenna_file).exists():
                yield f"MS_ANTENNA_FILE {self.antenna_file}: no such file or directory"
        if (self.ra_deg is None) != (self.dec_deg is None):
            yield "set both PHASE_CENTRE_RA_DEG and PHASE_CENTRE_DEC_DEG, or neither"

    def config_text(self, beam: Config | None) -> str:
        """``KEY value`` lines of the beam and scan settings (for the MS HISTORY)."""
        values = {**(beam.to_dict() if beam else {}), **self.to_dict()}
        return "\n".join(f"{key} {value}" for key, value in values.items()
                         if value not in ("", None))


def _unusable_path(key: str, path: Path) -> str:
    """A one-line problem if ``path`` cannot even be looked at (name too long, a file where
    a directory should be, no permission, a loop), else ''. Missing is not a problem here."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except OSError as exc:
        text = str(path)
        shown = text if len(text) <= 80 else f"{text[:40]}...{text[-30:]} ({len(text)} characters)"
        return f"{key} {shown}: {exc.strerror or exc}"
    except ValueError as exc:  # an embedded NUL
        return f"{key} {str(path)[:80]!r}: {exc}"
    return ""


# --------------------------------------------------------------------------- counters
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


# --------------------------------------------------------------------------- service
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
        if pair is None:
            return {}
        fill: dict[str, object] = {}
        for name, reader in (("data", pair.data), ("weights", pair.weights)):
            try:
                snap = snapshot(reader.key)
            except RingBufError as exc:
                fill[name] = {"key": reader.key, "error": str(exc)}
                continue
            lag = snap["readers"][reader.slot]["lag_blocks"]
            fill[name] = {"key": reader.key, "nbufs": snap["nbufs"], "full_blocks": lag,
                          "writer_alive": snap["writer"]["alive"]}
        return fill

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
