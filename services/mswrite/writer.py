"""Turn ring blocks of visibility dumps into MeasurementSet rows.

State machine of one :class:`VisWriter` (one MS)::

    open() --checks pass--> WRITING --write_block()*--> close() --> CLOSED (NAME.ms)
       |                       |  error / abort() / kill -9
       v                       v
    MsWriteError,          NAME.ms.partial stays: it opens and holds every dump
    nothing created        written before the last flush (:attr:`VisWriter.flushed`)

Row layout: dump *d* (counted from ``dump_offset``) occupies rows
``[d * NBASELINE, (d + 1) * NBASELINE)`` in the stream's baseline order. Dumps that never
arrived (a gap before a block, or up to ``expected_dumps`` at close) get rows too, with
DATA 0, FLAG true, weights 0.

Per visibility (channel c, baseline b) of a dump, from the weights ring:

* FD == 0 (no data): FLAG true for the four correlations, DATA set to 0.
* WEIGHT_SPECTRUM = FD / 255 for each correlation (FD 255 = all data contributed), times
  AVG_WEIGHT_SCALE x k for svc-avg's output (k: the baseline's BDA factor).
* WEIGHT = mean of WEIGHT_SPECTRUM over channels; SIGMA = 1 / sqrt(WEIGHT) (0 if
  WEIGHT is 0); FLAG_ROW when every channel of the row is flagged.
* TIME = centre of the dump = TIME0_UNIX + dump * INT_TIME (as MJD seconds);
  TIME_CENTROID = TIME + INT_TIME * <TCI>_FD / 256, where <TCI>_FD is the FD-weighted mean
  TCI of the row's channels (TCI is the centroid offset in units of INT_TIME / 256).
* With BDA_LOG2_FACTORS, the row carrying a group's average gets TIME = the group's centre,
  INTERVAL = EXPOSURE = its length and UVW at that TIME; the other rows of the group are
  flagged placeholders (:meth:`VisWriter._bda_rows`, docs/mswrite.md).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ringbuf import DadaHeader
from services.mswrite.datamodel import DataModel
from services.mswrite.errors import MsWriteError
from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.ms import MsSpec, MsTable, RowBlock
from services.mswrite.stream import FD_FULL, NPOL, TCI_SCALE, WEIGHTS_DTYPE, VisStream
from services.mswrite.uvw import MeasuresUvw, UvwSource

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
#: a weights element read as one little-endian word: TCI in the low byte, FD in the high one
_WEIGHT_WORD = np.dtype("<u2")
_COMPLETE_WORD = FD_FULL << 8  # FD 255, TCI 0
#: WEIGHT_SPECTRUM of each FD value
_FD_WEIGHT = (np.arange(256) / FD_FULL).astype(np.float32)
#: free space (bytes) kept beyond what the next dumps need (table metadata, partial tiles)
FREE_SPACE_MARGIN = 32 << 20
#: a file of this size inside ``NAME.ms.partial``, deleted just before the MS is closed, so
#: that closing (table.dat, the last tiles) finds room even when another process filled
#: the disk meanwhile
RESERVE_BYTES = 8 << 20
RESERVE_NAME = "ringpipe.reserve"


def _one_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left" in text or "disk quota" in text


class VisWriter:
    """Write one visibility transfer (or a part of it) into one MeasurementSet.

    Use :meth:`open`; then :meth:`write_block` per ring block and :meth:`close`.
    As a context manager, leaving on an exception calls :meth:`abort` instead of close.
    """

    def __init__(self, path: Path, stream: VisStream, spec: MsSpec, uvw: UvwSource,
                 dump_offset: int = 0, expected_dumps: int | None = None,
                 flush_interval_s: float = 0.0) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self._last_flush = time.monotonic()
        self._unflushed = False  # rows written since the last flush
        self.partial_path = path.with_name(path.name + PARTIAL_SUFFIX)
        self.stream = stream
        self.dump_offset = dump_offset
        self.expected_dumps = expected_dumps
        self._uvw = uvw
        self._ant1, self._ant2 = stream.baselines()
        self._dumps = 0  # dumps (from dump_offset) that have rows
        self._scratch: dict[int, RowBlock] = {}
        self._buffers_complete = False  # scratch buffers hold the all-complete weights
        self._unflushed_dumps = 0  # dumps given rows since the last flush
        self._table: MsTable | None = MsTable(self.partial_path, spec)
        self._reserve = self.partial_path / RESERVE_NAME
        try:
            _make_reserve(self._reserve)
        except MsWriteError:
            table, self._table = self._table, None
            try:
                table.close()  # abandons the tables if even that fails
            except (RuntimeError, OSError):
                pass
            raise
        logger.info("writing %s (%d antennas, %d channels, scan %d)", self.partial_path,
                    stream.nant, stream.nchan, stream.scan_id)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str], data_header: DadaHeader,
             weights_header: DadaHeader, *, data_model: str | os.PathLike[str] | None = None,
             antennas: Antennas | None = None, phase_centre: PhaseCentre | None = None,
             telescope: str | None = None, dump_offset: int = 0,
             expected_dumps: int | None = None, config_text: str = "",
             application: str = "ringpipe svc-mswrite",
             flush_interval_s: float = 0.0) -> VisWriter:
        """Check everything, then create ``path + '.partial'`` and return a writer.

        Metadata comes from ``data_model`` (an MS: antennas, phase centre, UVW per time)
        or, without one, from ``antennas`` and ``phase_centre`` (falling back to the
        headers' PHASE_CENTRE_RA_DEG/DEC_DEG), with UVW computed by casacore.measures.
        ``config_text`` goes into HISTORY with both headers. The MS is flushed after
        every block, or at most every ``flush_interval_s`` seconds if that is > 0 (a
        caller that must lose nothing keeps its input until :attr:`flushed`, or calls
        :meth:`flush`). Raises :class:`MsWriteError`
        or :class:`ringbuf.errors.HeaderError` before creating anything.
        """
        path = Path(path)
        stream = VisStream.from_headers(data_header, weights_header)
        _check_output(path, stream, expected_dumps)
        uvw: UvwSource
        if data_model is not None:
            model = DataModel(data_model, stream)
            antennas, phase_centre, uvw = model.antennas, model.phase_centre, model
            telescope = telescope or stream.telescope or model.telescope
        else:
            if antennas is None:
                raise MsWriteError("no data model and no antenna positions configured")
            if len(antennas) != stream.nant:
                raise MsWriteError(f"{len(antennas)} antennas configured but the stream has "
                                   f"NANT {stream.nant}")
            if phase_centre is None:
                if stream.phase_centre_deg is None:
                    raise MsWriteError("no data model, no phase centre configured and no "
                                       "PHASE_CENTRE_RA_DEG/DEC_DEG in the header")
                phase_centre = PhaseCentre.from_degrees(*stream.phase_centre_deg,
                                                        stream.source or "field")
            uvw = MeasuresUvw(antennas, phase_centre, *stream.baselines())
            telescope = telescope or stream.telescope or antennas.telescope
        source = f"data model {data_model}" if data_model is not None else \
            "configured antennas, UVW from casacore.measures"
        history = (f"written by {application} from scan {stream.scan_id}, metadata: {source}",
                   "data header:\n" + data_header.text,
                   "weights header:\n" + weights_header.text)
        spec = MsSpec(
            chan_freqs=stream.chan_freqs(), chan_width_hz=stream.chan_width_hz,
            antennas=antennas, phase_centre=phase_centre, int_time=stream.int_time,
            scan_number=stream.scan_id,
            start_time_mjd_s=float(stream.dump_times_mjd(np.array([dump_offset]))[0]),
            telescope=telescope or "", observer=application, project="",
            application=application, history=history,
            app_params=tuple(line for line in config_text.splitlines() if line.strip()))
        try:
            return cls(path, stream, spec, uvw, dump_offset, expected_dumps, flush_interval_s)
        except MsWriteError:
            shutil.rmtree(path.with_name(path.name + PARTIAL_SUFFIX), ignore_errors=True)
            raise
        except (RuntimeError, OSError) as exc:
            shutil.rmtree(path.with_name(path.name + PARTIAL_SUFFIX), ignore_errors=True)
            raise MsWriteError(f"{path}: cannot create MeasurementSet: {_one_line(exc)}") \
                from None

    # ------------------------------------------------------------------ writing
    @property
    def dumps_written(self) -> int:
        """Dumps (from ``dump_offset``) that have rows in the MS, written or gap-filled."""
        return self._dumps

    def write_block(self, data: np.ndarray, weights: np.ndarray, first_dump: int) -> None:
        """Write one ring block pair: uint8 views of whole dumps, then flush (see open).

        ``first_dump`` is the dump index of the block's first dump in the transfer
        (``obs_offset // RESOLUTION`` of the data ring).
        """
        s = self.stream
        ndump, rest = divmod(data.nbytes, s.data_dump_bytes)
        if rest or weights.nbytes != ndump * s.weights_dump_bytes:
            raise MsWriteError(f"{self.partial_path}: block of {data.nbytes} data bytes and "
                               f"{weights.nbytes} weights bytes is not a whole number of dumps "
                               f"({s.data_dump_bytes} + {s.weights_dump_bytes} bytes each)")
        vis = np.frombuffer(data, np.complex64).reshape(ndump, s.nchan, s.nbaseline, NPOL)
        w = np.frombuffer(weights, WEIGHTS_DTYPE).reshape(ndump, s.nchan, s.nbaseline)
        self.write_dumps(vis, w, first_dump)

    def write_dumps(self, vis: np.ndarray, weights: np.ndarray, first_dump: int) -> None:
        """Write dumps given as arrays: complex64 ``(ndump, nchan, nbaseline, 4)`` and
        :data:`WEIGHTS_DTYPE` ``(ndump, nchan, nbaseline)``, then flush (see open)."""
        table = self._require_open()
        start = first_dump - self.dump_offset
        if start < 0:
            raise MsWriteError(f"{self.partial_path}: dump {first_dump} is before the first "
                               f"dump {self.dump_offset} of this MS")
        new_dumps = max(start + len(vis) - self._dumps, 0)
        # the dumps not flushed yet still need their room on disk too
        _check_space(self.partial_path, self.stream, new_dumps + self._unflushed_dumps,
                     self._dumps, flushed=not self._unflushed)
        try:
            self._unflushed = True
            self._unflushed_dumps += max(len(vis), new_dumps)
            if start > self._dumps:
                logger.warning("%s: dumps %d..%d never arrived; writing them flagged",
                               self.partial_path, self.dump_offset + self._dumps, first_dump - 1)
                self._fill_missing(start)
            rows = self._rows(vis, weights, first_dump)
            table.put_rows(start * self.stream.nbaseline, rows)
            self._dumps = max(self._dumps, start + len(vis))
        except (RuntimeError, OSError) as exc:
            raise self._write_error(exc) from None
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    @property
    def flushed(self) -> bool:
        """True when every row written so far is on disk (a kill -9 now loses none)."""
        return not self._unflushed

    def flush(self) -> None:
        """Write every row so far to disk now: ``NAME.ms.partial`` then opens with them."""
        table = self._require_open()
        try:
            table.flush()
        except (RuntimeError, OSError) as exc:
            raise self._write_error(exc) from None
        self._unflushed = False
        self._unflushed_dumps = 0
        self._last_flush = time.monotonic()

    def _fill_missing(self, upto: int) -> None:
        """Give flagged, zeroed rows to the dumps from the current end up to ``upto``."""
        s = self.stream
        step = max(1, s.dumps_per_block)
        vis = np.zeros((step, s.nchan, s.nbaseline, NPOL), np.complex64)
        weights = np.zeros((step, s.nchan, s.nbaseline), WEIGHTS_DTYPE)
        while self._dumps < upto:
            n = min(step, upto - self._dumps)
            rows = self._rows(vis[:n], weights[:n], self.dump_offset + self._dumps)
            self._require_open().put_rows(self._dumps * s.nbaseline, rows)
            self._dumps += n

    def _block_buffers(self, ndump: int) -> RowBlock:
        """Row arrays for ``ndump`` dumps, allocated once per block size and reused."""
        block = self._scratch.get(ndump)
        if block is None:
            s = self.stream
            nrow = ndump * s.nbaseline
            block = RowBlock(
                time=np.empty(nrow), time_centroid=np.empty(nrow),
                antenna1=np.tile(self._ant1, ndump), antenna2=np.tile(self._ant2, ndump),
                uvw=np.empty((nrow, 3)),
                data=np.empty((nrow, s.nchan, NPOL), np.complex64),
                flag=np.empty((nrow, s.nchan, NPOL), bool),
                weight_spectrum=np.empty((nrow, s.nchan, NPOL), np.float32),
                weight=np.empty((nrow, NPOL), np.float32), sigma=np.empty((nrow, NPOL), np.float32),
                flag_row=np.empty(nrow, bool))
            self._scratch = {ndump: block}  # keep one size: blocks rarely change size
            self._buffers_complete = False
        return block

    def _rows(self, vis: np.ndarray, weights: np.ndarray, first_dump: int) -> RowBlock:
        """Dumps (time, channel, baseline[, pol]) as rows (time x baseline, channel, pol)."""
        s = self.stream
        ndump = len(vis)
        rows = self._block_buffers(ndump)
        dumps = np.arange(first_dump, first_dump + ndump)
        times = s.dump_times_mjd(dumps)
        rows.time.reshape(ndump, s.nbaseline)[:] = times[:, None]
        rows.uvw.reshape(ndump, s.nbaseline, 3)[:] = self._uvw.uvw(dumps, times)
        # the centre of the dump each row's data sit in (TCI counts from there)
        dump_time = rows.time.copy() if s.bda else rows.time
        if s.bda:
            self._bda_rows(rows, dumps, times)
        # transpose channel <-> baseline, moving each (4 x complex64) visibility as one item
        data4 = rows.data.reshape(ndump, s.nbaseline, s.nchan, NPOL)
        np.copyto(data4.view("V32")[..., 0], vis.view("V32")[..., 0].transpose(0, 2, 1))
        weights = np.ascontiguousarray(weights)
        if (weights.view(_WEIGHT_WORD) == _COMPLETE_WORD).all():
            self._fill_complete(rows, dump_time)
        else:
            self._fill_partial(rows, weights, dump_time)
        return rows

    def _bda_rows(self, rows: RowBlock, dumps: np.ndarray, times: np.ndarray) -> None:
        """TIME, INTERVAL and UVW of the rows of a BDA stream (see docs/mswrite.md).

        Baseline b with factor k is averaged over the dumps ``[g, g + L)``, ``g`` a multiple
        of k and L = k (fewer for the group the block ends in the middle of: the short last
        group of a transfer); the average sits in the carrying dump ``g + L // 2``. Its row
        gets TIME = the centre of the L dumps, INTERVAL = EXPOSURE = L x INT_TIME and UVW at
        that TIME; the other rows of the group (FD 0) keep their dump's TIME and INT_TIME
        and are flagged (FLAG_ROW) by their FD 0.
        """
        s = self.stream
        ndump = len(dumps)
        k = s.bda_factors()[None, :]
        d = dumps[:, None]
        start = (d // k) * k
        length = np.minimum(k, dumps[-1] + 1 - start)
        carrying = d == start + length // 2
        # centre of [start, start + L) minus the carrying dump's centre, in dumps: 0 or -1/2
        shift = np.where(carrying, (length - 1) / 2 - length // 2, 0.0)
        interval = np.where(carrying, length, 1) * s.int_time
        rows.interval = interval.reshape(-1)
        time = rows.time.reshape(ndump, s.nbaseline)
        time += shift * s.int_time
        moved = shift != 0
        which = np.nonzero(moved.any(axis=1))[0]
        if len(which):
            uvw = rows.uvw.reshape(ndump, s.nbaseline, 3)
            half = self._uvw.uvw(dumps[which], times[which] - s.int_time / 2)
            uvw[which] = np.where(moved[which][..., None], half, uvw[which])

    def _fill_complete(self, rows: RowBlock, dump_time: np.ndarray) -> None:
        """Every visibility has FD 255 and TCI 0 (the usual case): constant weights."""
        if not self._buffers_complete:  # the reused buffers still hold these values
            s = self.stream
            scale = np.tile(s.baseline_weight_scale(), len(rows) // s.nbaseline)
            rows.flag.fill(False)
            rows.weight_spectrum[:] = scale[:, None, None]
            rows.weight[:] = scale[:, None]
            rows.sigma[:] = (1 / np.sqrt(scale))[:, None]
            rows.flag_row.fill(False)
            self._buffers_complete = True
        rows.time_centroid[:] = dump_time

    def _fill_partial(self, rows: RowBlock, weights: np.ndarray, dump_time: np.ndarray) -> None:
        """Flags, weights and time centroids from FD and TCI of every visibility.

        The weights are FD / 255 times the baseline's summed-weight scale
        (:meth:`VisStream.baseline_weight_scale`: 1 for a stream that is not averaged)."""
        self._buffers_complete = False
        s = self.stream
        ndump = len(weights)
        nrow = ndump * s.nbaseline
        fd = weights["FD"]  # (dump, channel, baseline)
        fd_sum = fd.sum(axis=1, dtype=np.int64).reshape(nrow)
        spectrum = _FD_WEIGHT[fd.transpose(0, 2, 1)].reshape(nrow, s.nchan)
        missing = spectrum == 0
        mean_weight = (fd_sum / (FD_FULL * s.nchan)).astype(np.float32)
        if s.weight_scale != 1.0 or s.bda:
            scale = np.tile(s.baseline_weight_scale(), ndump).astype(np.float32)
            spectrum = spectrum * scale[:, None]
            mean_weight = mean_weight * scale
        np.copyto(rows.weight_spectrum, spectrum[..., None])
        np.copyto(rows.flag, missing[..., None])
        rows.data[missing] = 0
        rows.weight[:] = mean_weight[:, None]
        with np.errstate(divide="ignore"):
            rows.sigma[:] = np.where(mean_weight > 0, 1 / np.sqrt(mean_weight), 0)[:, None]
        np.equal(fd_sum, 0, out=rows.flag_row)
        tci = weights["TCI"]
        if tci.any():
            tci_fd = np.einsum("dcb,dcb->db", tci.astype(np.int64),
                               fd.astype(np.int64)).reshape(nrow)
            centroid = np.divide(tci_fd, fd_sum, out=np.zeros(nrow), where=fd_sum > 0)
            rows.time_centroid[:] = dump_time + centroid * (s.int_time / TCI_SCALE)
        else:
            rows.time_centroid[:] = dump_time
        if s.bda:  # a row without data: its centroid is its TIME
            np.copyto(rows.time_centroid, rows.time, where=fd_sum == 0)

    # ------------------------------------------------------------------ closing
    def close(self) -> Path:
        """Give rows to missing dumps up to ``expected_dumps``, flush, close, and rename
        ``NAME.ms.partial`` to ``NAME.ms``. Returns the final path."""
        table = self._require_open()
        try:
            if self.expected_dumps is not None and self._dumps < self.expected_dumps:
                logger.warning("%s: %d of %d expected dumps never arrived; writing them flagged",
                               self.partial_path, self.expected_dumps - self._dumps,
                               self.expected_dumps)
                self._fill_missing(self.expected_dumps)
            _remove_reserve(self._reserve)
            table.close()
            self._unflushed = False
        except (RuntimeError, OSError) as exc:
            raise self._write_error(exc) from None
        finally:
            self._table = None
        os.rename(self.partial_path, self.path)
        logger.info("closed %s: %d dumps, %d rows", self.path, self._dumps,
                    self._dumps * self.stream.nbaseline)
        return self.path

    def abort(self) -> Path:
        """Flush what can be flushed and close, leaving ``NAME.ms.partial`` (never renamed)."""
        if self._table is not None:
            _remove_reserve(self._reserve)  # room for the last write, whoever filled the disk
            try:
                self._table.close()
            except (RuntimeError, OSError) as exc:
                logger.error("%s: closing after an error failed (the MS keeps the dumps of its "
                             "last flush): %s", self.partial_path, _one_line(exc))
            else:
                logger.warning("left incomplete MS %s (%d dumps)", self.partial_path,
                               self._dumps)
            finally:
                self._table = None
        return self.partial_path

    def __enter__(self) -> VisWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _require_open(self) -> MsTable:
        if self._table is None:
            raise MsWriteError(f"{self.partial_path}: the MS writer is closed")
        return self._table

    def _write_error(self, exc: BaseException) -> MsWriteError:
        # casacore does not always pass ENOSPC on ("write error ...: Success"): a disk with
        # less than the margin left at this moment is taken as the cause
        if _is_disk_full(exc) or _free_bytes(self.partial_path.parent) < FREE_SPACE_MARGIN:
            return MsWriteError(f"{self.partial_path}: disk full after {self._dumps} dumps "
                                f"({_one_line(exc)}); the partial MS keeps the dumps flushed "
                                "before")
        return MsWriteError(f"{self.partial_path}: write failed after {self._dumps} dumps: "
                            f"{_one_line(exc)}")


def _free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use in ``directory`` (a large number if it
    cannot say)."""
    try:
        stat = os.statvfs(directory if str(directory) else Path("."))
    except OSError:
        return 1 << 62
    return stat.f_bavail * stat.f_frsize


def _bytes_needed(stream: VisStream, ndumps: int) -> int:
    """Disk bytes that ``ndumps`` more dumps take, plus :data:`FREE_SPACE_MARGIN`."""
    row_bytes = stream.nchan * NPOL * (8 + 4 + 1 / 8) + 100
    return int(ndumps * stream.nbaseline * row_bytes) + FREE_SPACE_MARGIN


def _make_reserve(path: Path) -> None:
    """Create the reserve file (see :data:`RESERVE_BYTES`); where the file system cannot
    allocate ahead, its bytes are written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.write(fd, bytes(RESERVE_BYTES))
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        raise MsWriteError(f"{path.parent}: disk full: cannot reserve "
                           f"{RESERVE_BYTES >> 20} MiB for closing the MS: {exc.strerror}") \
            from None
    os.close(fd)


def _remove_reserve(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _check_space(path: Path, stream: VisStream, ndumps: int, written: int | None = None,
                 flushed: bool = True) -> None:
    """Refuse to write ``ndumps`` more dumps when the disk cannot hold them (with margin).

    Stopping before casacore meets ENOSPC keeps every table closable: a table whose flush
    failed cannot be closed cleanly.
    """
    directory = path.parent if str(path.parent) else Path(".")
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    needed = _bytes_needed(stream, ndumps)
    if free < needed:
        done = "" if written is None else \
            f" (stopped after {written} dumps{', all flushed' if flushed else ''})"
        raise MsWriteError(f"{path}: disk full: only {free / 1e6:.1f} MB free in {directory}, "
                           f"need at least {needed / 1e6:.1f} MB{done}")


def _check_output(path: Path, stream: VisStream, expected_dumps: int | None) -> None:
    """Refuse an output that exists or cannot be written, or a disk without room."""
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    for candidate in (path, partial):
        if os.path.lexists(candidate):
            raise MsWriteError(f"{candidate}: output already exists")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MsWriteError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MsWriteError(f"{path}: directory {parent} is not writable")
    _check_space(path, stream, expected_dumps if expected_dumps is not None
                 else stream.dumps_per_block)
