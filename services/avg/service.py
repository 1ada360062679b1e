"""``svc-avg``: a visibility ring pair, RFI-flagged and averaged, into another ring pair.

Beam (configure_beam): guaranteed reader of DATA_KEY/WEIGHTS_KEY, writer of
OUT_DATA_KEY/OUT_WEIGHTS_KEY. Scan (configure_scan): AVG_*, FLAG_*, BDA_* keys. Managed mode:
start_scan averages every transfer of its SCAN_ID until end_scan (others are drained);
autonomous mode: every transfer, from its header.

Per input transfer, on the scan thread::

    headers ok, output ring fits? -- no --> error counted, input transfer drained
       | yes
    blocks: flag (FD 0 where RFI) -> Averager -> whole super-groups of output dumps
       -> output ring (a block committed when full)
       |-- end of data / writer died --> partial last group emitted, output transfer ended
       |-- stop (end_scan, SIGTERM) ----> the same; the rest stays in the input ring and
       |                                  is taken up at the next super-group boundary
       `-- bad block -------------------> output ended, error counted, rest drained

Lossless under kill -9: an input block pair stays held (uncleared) until every output dump
its dumps contribute to is committed in the output ring, i.e. until every super-group
(``BDA_MAX_FACTOR * AVG_TIME_DUMPS`` dumps) it touches is committed. A restarted svc-avg
takes the reader slot back and is handed the first uncleared block; the dumps before the
next super-group boundary are already in the output (they belong to a super-group whose
earlier dumps were in a cleared block) and are skipped, so every input dump is in exactly
one output transfer.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping

import numpy as np

from ringbuf import (
    PairOutOfStep,
    PairReadTransfer,
    PairWriteTransfer,
    ReadSegment,
    RingPairReader,
    RingPairWriter,
    Timeout,
    WriterDied,
)
from ringbuf.errors import HeaderError, RingBufError
from services.avg.average import NPOL, WEIGHTS_DTYPE, Averager, AvgOutput, AvgPlan
from services.avg.bda import baseline_lengths, load_positions, time_factors
from services.avg.config import AvgBeamConfig, AvgConfig, AvgScanConfig
from services.avg.counters import AvgCounters, Reason
from services.avg.flagger import Flagger, FlagSettings
from services.avg.stream import InputStream, output_headers
from services.common.errors import ServiceError
from services.common.lifecycle import Refused, Service, StartScanConfig

logger = logging.getLogger(__name__)

__all__ = ["AvgConfig", "AvgService"]

#: seconds a ring wait lasts before the scan loop reports progress and waits again
POLL_S = 0.5


class TransferError(ServiceError):
    """An input transfer cannot be averaged (further); ``reason`` says why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AvgService(Service):
    """Reads a visibility ring pair and writes its flagged, averaged transfers to another."""

    name = "svc-avg"
    beam_config = AvgBeamConfig
    scan_config = AvgScanConfig
    start_config = StartScanConfig

    def __init__(self, config: AvgConfig) -> None:
        super().__init__(config, AvgCounters())
        self.counters: AvgCounters
        self.beam: AvgBeamConfig | None = None
        self.scan: AvgScanConfig | None = None
        self._reader: RingPairReader | None = None
        self._writer: RingPairWriter | None = None
        self._positions: np.ndarray | None = None
        self._pending: PairReadTransfer | None = None

    # ------------------------------------------------------------------ lifecycle hooks
    def configure_beam(self, config: AvgBeamConfig) -> None:
        try:
            self._reader = RingPairReader(config.data_key, config.weights_key, timeout=POLL_S)
            try:
                self._writer = RingPairWriter(config.out_data_key, config.out_weights_key,
                                              timeout=POLL_S)
            except BaseException:
                self._reader.close()
                self._reader = None
                raise
        except RingBufError as exc:
            raise Refused(str(exc)) from None
        self.beam = config
        logger.info("averaging ring pair %s/%s into %s/%s", config.data_key,
                    config.weights_key, config.out_data_key, config.out_weights_key)

    def configure_scan(self, config: AvgScanConfig) -> None:
        self._positions = None
        if config.bda_max_factor > 1:
            try:
                self._positions = load_positions(config.bda_antenna_file)
            except ServiceError as exc:
                raise Refused(str(exc)) from None
        self.scan = config

    def start_scan(self, config: StartScanConfig, stop: threading.Event) -> None:
        logger.info("scan %d: averaging its transfers", config.scan_id)
        self.health.expect_data(True)
        try:
            while not stop.is_set():
                self._follow(stop, expected_scan=config.scan_id)
                self.progress()
        finally:
            self.health.expect_data(False)

    def deconfigure_scan(self) -> None:
        self.scan = None
        self._positions = None

    def deconfigure_beam(self) -> None:
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        self._pending = None
        self.beam = None
        try:
            if reader is not None:
                reader.close()
        finally:
            if writer is not None:
                writer.close()

    def follow_transfer(self, stop: threading.Event) -> None:
        self.health.expect_data(False)
        try:
            self._follow(stop, expected_scan=None)
        finally:
            self.health.expect_data(False)

    def ring_fill(self) -> Mapping[str, object]:
        pair = self._reader  # the control thread may detach it meanwhile
        return {} if pair is None else pair.fill()

    def status_line(self) -> str:
        c = self.counters
        return (f"scan {c.scan_id}: {c.dumps_in_total} dumps in, {c.dumps_out_total} out, "
                f"{c.visibilities_rfi_total} RFI flags")

    # ------------------------------------------------------------------ transfers
    def _follow(self, stop: threading.Event, expected_scan: int | None) -> None:
        reader = self._require(self._reader, "configure_beam")
        reader.stop = stop
        if self._writer is not None:
            self._writer.data.stop = self._writer.weights.stop = stop
        if self._pending is not None:
            transfer, self._pending = self._pending, None
            self._run(transfer, expected_scan, resumed=True)
            return
        try:
            transfer = reader.open_transfer(timeout=POLL_S)
        except Timeout:
            return
        self._run(transfer, expected_scan, resumed=transfer.resumed)

    def _run(self, transfer: PairReadTransfer, expected_scan: int | None,
             resumed: bool) -> None:
        c = self.counters
        c.transfers_total += 1
        c.transfers_resumed_total += int(resumed)
        self.health.expect_data(True)
        try:
            job = _TransferJob(self, transfer, expected_scan, resumed)
        except TransferError as exc:
            self._give_up(exc, transfer)
            return
        try:
            job.run()
        except WriterDied:
            c.writer_died_total += 1
            logger.warning("scan %d: the input ring writer died; ending the averaged transfer",
                           job.stream.scan_id)
            job.finish()
        except TransferError as exc:
            job.finish()
            self._give_up(exc, transfer)
        except BaseException:  # stop (Interrupted) or a bug
            if not transfer.finished:
                self._pending = transfer
            job.finish()
            raise
        else:
            job.finish()

    def _give_up(self, exc: TransferError, transfer: PairReadTransfer) -> None:
        c = self.counters
        c.errors.add(exc.reason)
        c.transfers_skipped_total += 1
        logger.error("%s; draining the rest of the transfer", exc)
        transfer.clear_held()
        try:
            transfer.drain(on_wait=self.progress, on_segment=lambda _seg: self.progress())
        except BaseException:
            if not transfer.finished:
                self._pending = transfer
            raise

    @staticmethod
    def _require(value: object, what: str) -> RingPairReader:
        if value is None:
            raise RuntimeError(f"not configured ({what} first)")
        return value  # type: ignore[return-value]


class _TransferJob:
    """One input transfer being averaged into one output transfer."""

    def __init__(self, service: AvgService, transfer: PairReadTransfer,
                 expected_scan: int | None, resumed: bool) -> None:
        self.service = service
        self.counters = service.counters
        self.transfer = transfer
        self.resumed = resumed
        scan = service.scan
        writer = service._writer
        reader = service._reader
        if scan is None or writer is None or reader is None:
            raise RuntimeError("not configured (configure_beam and configure_scan first)")
        self.scan, self.writer = scan, writer
        try:
            self.stream = InputStream.from_headers(transfer.data_header, transfer.weights_header)
        except HeaderError as exc:
            raise TransferError(Reason.BAD_HEADER, str(exc)) from None
        s = self.stream
        self.counters.scan_id = s.scan_id
        if expected_scan is not None and s.scan_id != expected_scan:
            raise TransferError(Reason.BAD_HEADER, f"transfer of SCAN_ID {s.scan_id} while "
                                f"scan {expected_scan} runs: drained")
        self.plan = self._plan(s, scan, service._positions)
        nco, nbl = self.plan.nchan_out, s.nbaseline
        self.res_out = nco * nbl * NPOL * 8
        self.wres_out = nco * nbl * WEIGHTS_DTYPE.itemsize
        bufsz, wbufsz = writer.data.layout.bufsz, writer.weights.layout.bufsz
        self.dpb_out = bufsz // self.res_out
        if bufsz % self.res_out or wbufsz != self.dpb_out * self.wres_out or not self.dpb_out:
            raise TransferError(Reason.OUTPUT, f"output rings {writer.data.key}/"
                                f"{writer.weights.key}: block sizes {bufsz}/{wbufsz} are not "
                                f"whole output dumps of {self.res_out}/{self.wres_out} bytes")
        if self.dpb_out % self.plan.max_factor:
            raise TransferError(Reason.OUTPUT, f"output rings {writer.data.key}/"
                                f"{writer.weights.key}: {self.dpb_out} dumps per block is not "
                                f"a multiple of BDA_MAX_FACTOR {self.plan.max_factor}")
        dpb_in = max(1, reader.data.layout.bufsz // s.dump_bytes)
        need = -(-(2 * self.plan.group_dumps + self.dpb_out * self.plan.time_factor)
                 // dpb_in) + 2
        if need >= reader.data.layout.nbufs:
            raise TransferError(Reason.OUTPUT, f"input ring {reader.data.key}: "
                                f"{reader.data.layout.nbufs} blocks; averaging may hold {need}"
                                " (make DB_NBUFS larger or the output blocks smaller)")
        self.flagger = Flagger(FlagSettings(scan.flag_sigma, scan.flag_window,
                                            scan.flag_dilate, scan.flag_history))
        self.averager: Averager | None = None
        self.out: PairWriteTransfer | None = None
        self.out_written = 0  # output dumps written into the output transfer
        self.out_first = 0
        self.held: deque[tuple[ReadSegment, int]] = deque()  # (segment, end input dump)

    @staticmethod
    def _plan(s: InputStream, scan: AvgScanConfig, positions: np.ndarray | None) -> AvgPlan:
        factors = np.ones(s.nbaseline, np.int64)
        if scan.bda_max_factor > 1 and positions is not None:
            if positions.shape[0] != s.nant:
                raise TransferError(Reason.BAD_HEADER, f"BDA_ANTENNA_FILE has "
                                    f"{positions.shape[0]} antennas, the stream NANT {s.nant}")
            factors = time_factors(baseline_lengths(positions),
                                   scan.time_dumps * s.int_time, scan.bda_max_factor,
                                   s.max_freq_hz(), scan.bda_fov_deg, scan.bda_max_smearing)
        return AvgPlan(s.nchan, s.nbaseline, scan.time_dumps, scan.channels,
                       scan.bda_max_factor, factors)

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        svc, c, s = self.service, self.counters, self.stream
        while True:
            try:
                held = self.transfer.next_segment()
            except Timeout:
                svc.progress()
                continue
            except PairOutOfStep as exc:
                raise TransferError(Reason.BAD_BLOCK, str(exc)) from None
            if held is None:
                return
            seg = held.segment
            c.blocks_in_total += 1
            c.bytes_in_total += seg.data.nbytes + seg.weights.nbytes
            svc.health.data_seen()
            svc.progress()
            nd, rest = divmod(seg.data.nbytes, s.dump_bytes)
            first, orest = divmod(seg.obs_offset, s.dump_bytes)
            if rest or orest or seg.weights.nbytes != nd * s.weights_dump_bytes:
                raise TransferError(Reason.BAD_BLOCK, f"block at OBS_OFFSET {seg.obs_offset}: "
                                    f"{seg.data.nbytes}/{seg.weights.nbytes} bytes are not "
                                    "whole dumps")
            self.held.append((held, first + nd))
            if nd:
                self._block(seg.data, seg.weights, first, nd)
            self._clear_done()

    def _block(self, raw: np.ndarray, raw_w: np.ndarray, first: int, nd: int) -> None:
        c, s, p = self.counters, self.stream, self.plan
        if self.averager is None:
            g = p.group_dumps
            start = -(-first // g) * g if self.resumed else first
            self.averager = Averager(p, start)
            c.dumps_skipped_total += min(nd, start - first)
        data = raw.view(np.complex64).reshape(nd, s.nchan, s.nbaseline, NPOL)
        weights = np.array(raw_w.view(WEIGHTS_DTYPE).reshape(nd, s.nchan, s.nbaseline))
        skip = max(0, self.averager.start_dump - first)
        live = slice(skip, nd)
        c.visibilities_flagged_in_total += int(np.count_nonzero(weights["FD"][live] == 0))
        if self.scan.flag and skip < nd:
            c.visibilities_rfi_total += self.flagger.apply(data[live], weights[live])
        c.dumps_in_total += max(0, nd - skip)
        for out in self.averager.add(data, weights, first):
            self._write(out)

    def _write(self, out: AvgOutput) -> None:
        c = self.counters
        if self.out is None:
            self.out_first = out.first
            dh, wh = output_headers(self.transfer.data_header, self.transfer.weights_header,
                                    self.stream, self.plan, self.dpb_out, out.first,
                                    "on" if self.scan.flag else "off")
            try:
                self.out = self.writer.open_transfer(dh, wh)
            except (HeaderError, RingBufError) as exc:
                raise TransferError(Reason.OUTPUT, str(exc)) from None
        before = self.out_written // self.dpb_out
        for i in range(len(out)):  # a dump never spans two blocks: a Timeout copies nothing
            for ring, part in ((self.out.data, out.data[i]), (self.out.weights, out.weights[i])):
                while True:
                    try:
                        ring.write(np.ascontiguousarray(part))
                        break
                    except Timeout:  # the output ring is full: its reader is behind
                        self.service.progress()
        self.out_written += len(out)
        c.dumps_out_total += len(out)
        c.blocks_out_total += self.out_written // self.dpb_out - before
        c.visibilities_flagged_out_total += int(np.count_nonzero(out.weights["FD"] == 0))

    def _clear_done(self) -> None:
        """Clear the held input blocks whose every super-group is committed."""
        p = self.plan
        committed = self.out_first + (self.out_written // self.dpb_out) * self.dpb_out
        done = (committed // p.max_factor) * p.group_dumps  # input dumps fully in the output
        if self.averager is None:
            done = 0
        while self.held and (self.held[0][1] <= done or self.held[0][1] <= self._skip_end()):
            self.held.popleft()[0].clear()
        self.counters.held_blocks = len(self.held)

    def _skip_end(self) -> int:
        """Input dumps before the averager's start (skipped on resume) need no output."""
        return self.averager.start_dump if self.averager is not None else 0

    def finish(self) -> None:
        """Emit the partial last group, end the output transfer, clear what is held."""
        try:
            if self.averager is not None:
                for out in self.averager.finish():
                    self._write(out)
            if self.out is not None:
                tail = self.out_written % self.dpb_out
                self.out.end()
                self.counters.blocks_out_total += int(tail > 0)
        finally:
            while self.held:
                self.held.popleft()[0].clear()
            self.transfer.clear_held()
            self.counters.held_blocks = 0
            logger.info("scan %d: %d output dumps written from dump %d", self.stream.scan_id,
                        self.out_written, self.out_first)
