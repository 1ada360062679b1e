"""One visibility transfer of a ring pair into one MeasurementSet, or one per N dumps.

Naming (``MS_NAME_TEMPLATE`` with ``{SCAN_ID}`` and ``{UTC_START}``, ending in ``.ms``)::

    scan42_2024-06-01-12:00:00.ms                     one MS per transfer
    scan42_2024-06-01-12:00:00_part003.ms             rollover: dumps [3N, 4N)
    scan42_2024-06-01-12:00:00_resumed_d17.ms         continuation from dump 17
    scan42_2024-06-01-12:00:00_part002_resumed_d17.ms continuation inside a rollover part
    scan42_2024-06-01-12:00:00_resumed_d17_2.ms       2nd continuation from dump 17
    scan42_2024-06-01-12:00:00_rep2.ms                the same scan sent again (MS_EXISTS suffix)

A *continuation* MS holds the rest of a transfer that an earlier reader (a killed
svc-mswrite, or a scan stopped part-way) had started: it begins at the first dump delivered
and keeps the dumps before it out (they are in the earlier MS). With rollover, the parts
after it are named as usual. The ring tells a reader that it continues a transfer
(``transfer.resumed``: its slot already delivered the header to a reader now gone). If that
earlier reader was itself a continuation killed before it cleared any block, its ``.partial``
has the name this continuation would take: the next free name is used (``_2``, ``_3``, ...).
The service clears a block only once the MS holding it is flushed, so such a ``.partial``
holds none of the dumps delivered again.

A transfer whose first MS name is taken (not a continuation: the same scan sent again)
follows ``MS_EXISTS`` (:class:`ExistsPolicy`): ``suffix`` (default) writes it under the next
free ``_rep<n>`` name (n = 2, 3, ...; every part of the transfer keeps the same n),
``refuse`` drains it (``output_exists``), ``overwrite`` deletes the old MS first.

Rows exist for every dump from the MS's first dump to the last one seen; a rollover part
that was left for the next one is padded with flagged rows up to its last dump, and a part
that no block reached is written entirely flagged. Every failure is a
:class:`TransferError` with a :class:`Reason`; the current MS is then left as
``NAME.ms.partial`` (:meth:`TransferWriter.abort`).
"""

from __future__ import annotations

import enum
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ringbuf import DadaHeader
from ringbuf.errors import HeaderError
from services.mswrite.errors import MsWriteError
from services.mswrite.metadata import Antennas, PhaseCentre
from services.mswrite.stream import VisStream
from services.mswrite.writer import PARTIAL_SUFFIX, VisWriter

logger = logging.getLogger(__name__)

DEFAULT_NAME_TEMPLATE = "scan{SCAN_ID}_{UTC_START}.ms"


class ExistsPolicy(enum.Enum):
    """What to do when the MS of a (not continued) transfer already exists."""

    SUFFIX = "suffix"  # write it under the next free NAME_rep<n>.ms
    REFUSE = "refuse"  # drain the transfer unwritten (errors_output_exists_total)
    OVERWRITE = "overwrite"  # delete NAME.ms and NAME.ms.partial, then write NAME.ms


class Reason(enum.Enum):
    """Why a transfer (or the rest of it) was not written."""

    BAD_HEADER = "bad_header"  # a header key missing, malformed or off-contract
    SCAN_ID_MISMATCH = "scan_id_mismatch"  # managed mode: not the scan that was started
    METADATA = "metadata"  # data model / antennas do not match the stream
    OUTPUT_EXISTS = "output_exists"  # NAME.ms or NAME.ms.partial already there
    OUTPUT_UNWRITABLE = "output_unwritable"  # directory missing or not writable
    DISK_FULL = "disk_full"  # not enough free space for the next dumps
    BAD_BLOCK = "bad_block"  # a block that is not whole dumps, or out of order
    WRITE_FAILED = "write_failed"  # casacore or the file system failed otherwise


class TransferError(MsWriteError):
    """A transfer cannot be written (further); ``reason`` says why, the message names it."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FlagCounters(Protocol):
    """The counters a :class:`TransferWriter` keeps up to date."""

    ms_written_total: int
    ms_aborted_total: int
    ms_suffixed_total: int
    ms_overwritten_total: int
    dumps_written_total: int
    dumps_flagged_total: int
    visibilities_flagged_total: int
    current_ms: str
    current_dumps: int


@dataclass(frozen=True)
class MsTarget:
    """Where and how the MeasurementSets of a scan are written (from the scan config)."""

    output_dir: Path
    name_template: str = DEFAULT_NAME_TEMPLATE
    rollover_dumps: int = 0
    data_model: Path | None = None
    antennas: Antennas | None = None
    phase_centre: PhaseCentre | None = None
    telescope: str = ""
    flush_interval_s: float = 1.0
    config_text: str = ""
    exists: ExistsPolicy = ExistsPolicy.SUFFIX


def check_template(template: str) -> None:
    """Validator of MS_NAME_TEMPLATE: placeholders {SCAN_ID} and {UTC_START}, ends in .ms."""
    if not template.endswith(".ms") or len(template) <= 3:
        raise ValueError("must end in .ms (e.g. scan{SCAN_ID}_{UTC_START}.ms)")
    if "/" in template:
        raise ValueError("must be a file name, not a path (set MS_OUTPUT_DIR)")
    try:
        template.format(SCAN_ID=1, UTC_START="2024-01-01-00:00:00")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"bad placeholder {exc}: use {{SCAN_ID}} and {{UTC_START}}") from None


def ms_name(template: str, scan_id: int, utc_start: str, part: int | None = None,
            resumed_from: int | None = None, attempt: int = 1, repeat: int = 1) -> str:
    """The MS file name of a transfer, a rollover part and/or a continuation (its
    ``attempt``-th from that dump), of the ``repeat``-th transfer of that name: see the
    module doc."""
    name = template.format(SCAN_ID=scan_id, UTC_START=utc_start)
    if "/" in name or name in (".ms", "..ms"):
        raise HeaderError(f"UTC_START {utc_start!r} makes the MS name {name!r} unusable")
    stem = name[:-3]
    if repeat > 1:
        stem += f"_rep{repeat}"
    if part is not None:
        stem += f"_part{part:03d}"
    if resumed_from is not None:
        stem += f"_resumed_d{resumed_from}"
        if attempt > 1:
            stem += f"_{attempt}"
    return stem + ".ms"


class TransferWriter:
    """Write the blocks of one transfer; rollover, gaps and continuations handled here.

    ``start()`` opens the first MS at once (so a bad header, data model or output shows
    before any block); a continuation opens it at its first block. ``write()`` per block
    pair, then ``close()`` (clean: NAME.ms) or ``abort()`` (NAME.ms.partial stays).
    All casacore I/O happens in the calling thread.
    """

    def __init__(self, target: MsTarget, data_header: DadaHeader, weights_header: DadaHeader,
                 counters: FlagCounters, resumed: bool = False) -> None:
        try:
            self.stream = VisStream.from_headers(data_header, weights_header)
            ms_name(target.name_template, self.stream.scan_id, self.stream.utc_start)
        except HeaderError as exc:
            raise TransferError(Reason.BAD_HEADER, str(exc)) from None
        self.target = target
        self.headers = (data_header, weights_header)
        self.counters = counters
        self.resumed = resumed
        self.paths: list[Path] = []  # MSs closed cleanly
        self._writer: VisWriter | None = None
        self._part = 0
        self._opened_any = False
        self._repeat = 1  # > 1: the scan was sent again, written under NAME_rep<n>

    @property
    def durable(self) -> bool:
        """True when every dump written so far is on disk (a kill -9 now loses none)."""
        return self._writer is None or self._writer.flushed

    def flush(self) -> None:
        """Flush the MS being written now (the parts before it are closed already)."""
        if self._writer is not None:
            try:
                self._writer.flush()
            except MsWriteError as exc:
                raise _write_error(exc) from None

    @property
    def current_path(self) -> Path | None:
        """The MS being written (its final name), if one is open."""
        return self._writer.path if self._writer is not None else None

    # ------------------------------------------------------------------ writing
    def start(self) -> None:
        """Open the first MS now, unless this is a continuation (opened at its first block)."""
        if not self.resumed:
            self._open(0, 0)

    def write(self, data: np.ndarray, weights: np.ndarray, obs_offset: int) -> None:
        """Write one block pair (uint8 views of whole dumps) that starts at ``obs_offset``."""
        s = self.stream
        dd, wd = s.data_dump_bytes, s.weights_dump_bytes
        ndump, rest = divmod(data.nbytes, dd)
        if rest or weights.nbytes != ndump * wd or obs_offset % dd:
            raise TransferError(Reason.BAD_BLOCK, f"scan {s.scan_id}: block at OBS_OFFSET "
                                f"{obs_offset} of {data.nbytes} data and {weights.nbytes} weights "
                                f"bytes is not whole dumps of {dd} + {wd} bytes")
        first = obs_offset // dd
        n = self.target.rollover_dumps
        k = 0
        while k < ndump:
            dump = first + k
            count = ndump - k if not n else min(ndump - k, n - dump % n)
            writer = self._writer_for(dump)
            before = writer.dumps_written
            try:
                writer.write_block(data[k * dd:(k + count) * dd],
                                   weights[k * wd:(k + count) * wd], dump)
            except MsWriteError as exc:
                raise _write_error(exc) from None
            gap = max(0, writer.dumps_written - before - count)
            missing = weights[k * wd + 1:(k + count) * wd:2].reshape(count, -1) == 0  # FD 0
            empty = int(np.count_nonzero(missing.all(axis=1)))
            others = int(np.count_nonzero(missing)) - empty * missing.shape[1]
            self._count(count, gap + empty, others)
            k += count

    def close(self) -> list[Path]:
        """Close the current MS cleanly (renamed to NAME.ms); returns every MS closed."""
        self._close_current(pad=False)
        return self.paths

    def abort(self) -> Path | None:
        """Give up the current MS: it stays as NAME.ms.partial. Returns its path."""
        writer, self._writer = self._writer, None
        self.counters.current_ms, self.counters.current_dumps = "", 0
        if writer is None:
            return None
        self.counters.ms_aborted_total += 1
        return writer.abort()

    # ------------------------------------------------------------------ parts
    def _writer_for(self, dump: int) -> VisWriter:
        n = self.target.rollover_dumps
        part = dump // n if n else 0
        if self._writer is not None:
            if part == self._part:
                return self._writer
            if part < self._part:
                raise TransferError(Reason.BAD_BLOCK, f"scan {self.stream.scan_id}: dump {dump} "
                                    f"arrived after part {self._part} was started")
            self._close_current(pad=True)
            for empty in range(self._part + 1, part):  # parts no block reached: all flagged
                self._open(empty, empty * n)
                self._close_current(pad=True)
        # a continuation starts at its first delivered dump; anything else at its part's start
        self._open(part, dump if self.resumed and not self._opened_any else part * n)
        assert self._writer is not None
        return self._writer

    def _open(self, part: int, first_dump: int) -> None:
        t, s = self.target, self.stream
        resumed_from = first_dump if self.resumed and not self._opened_any else None
        part_no = part if t.rollover_dumps else None
        attempt = 1

        def name() -> Path:
            return t.output_dir / ms_name(t.name_template, s.scan_id, s.utc_start, part_no,
                                          resumed_from, attempt, self._repeat)

        path = name()
        while resumed_from is not None and _is_killed_partial(path):
            attempt += 1
            path = name()
        if not self._opened_any and resumed_from is None and _exists(path):
            path = self._repeated(path, name)
        _check_output(path)
        try:
            self._writer = VisWriter.open(
                path, *self.headers, data_model=t.data_model, antennas=t.antennas,
                phase_centre=t.phase_centre, telescope=t.telescope or None,
                dump_offset=first_dump, config_text=t.config_text,
                flush_interval_s=t.flush_interval_s)
        except HeaderError as exc:
            raise TransferError(Reason.BAD_HEADER, str(exc)) from None
        except MsWriteError as exc:
            reason = Reason.DISK_FULL if "disk full" in str(exc) else Reason.METADATA
            raise TransferError(reason, str(exc)) from None
        self._part = part
        self._opened_any = True
        self.counters.current_ms = str(path)
        self.counters.current_dumps = 0

    def _repeated(self, path: Path, name: Callable[[], Path]) -> Path:
        """The first MS of a transfer whose name is taken: apply MS_EXISTS."""
        policy, scan_id = self.target.exists, self.stream.scan_id
        if policy is ExistsPolicy.REFUSE:
            return path  # _check_output refuses it
        if policy is ExistsPolicy.OVERWRITE:
            for old in (path, path.with_name(path.name + PARTIAL_SUFFIX)):
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old)
                elif os.path.lexists(old):
                    old.unlink()
            logger.warning("scan %d: %s already existed (the scan was sent again): "
                           "overwritten (MS_EXISTS overwrite)", scan_id, path)
            self.counters.ms_overwritten_total += 1
            return path
        first = path
        while _exists(path):
            self._repeat += 1
            path = name()
        logger.warning("scan %d: %s already exists (the scan was sent again): writing %s "
                       "(MS_EXISTS suffix)", scan_id, first, path.name)
        self.counters.ms_suffixed_total += 1
        return path

    def _close_current(self, pad: bool) -> None:
        writer = self._writer
        if writer is None:
            return
        n = self.target.rollover_dumps
        if pad and n:
            writer.expected_dumps = (self._part + 1) * n - writer.dump_offset
            self._count(0, max(0, writer.expected_dumps - writer.dumps_written), 0)
        try:
            path = writer.close()
        except MsWriteError as exc:
            self._writer = None
            self.counters.ms_aborted_total += 1
            raise _write_error(exc) from None
        self._writer = None
        self.paths.append(path)
        self.counters.ms_written_total += 1
        self.counters.current_ms, self.counters.current_dumps = "", 0

    def _count(self, written: int, missing: int, flagged_vis: int) -> None:
        """Count dumps written, dumps without any data (``missing``: never arrived or every
        FD 0) and the other flagged visibilities (``flagged_vis``)."""
        c, s = self.counters, self.stream
        c.dumps_written_total += written
        c.dumps_flagged_total += missing
        c.visibilities_flagged_total += flagged_vis + missing * s.nchan * s.nbaseline
        if self._writer is not None:
            c.current_dumps = self._writer.dumps_written


def _write_error(exc: MsWriteError) -> TransferError:
    text = str(exc)
    if "disk full" in text:
        return TransferError(Reason.DISK_FULL, text)
    if "not a whole number of dumps" in text or "before the first dump" in text:
        return TransferError(Reason.BAD_BLOCK, text)
    return TransferError(Reason.WRITE_FAILED, text)


def _exists(path: Path) -> bool:
    """``path`` or ``path.partial`` exists."""
    return os.path.lexists(path) or os.path.lexists(path.with_name(path.name + PARTIAL_SUFFIX))


def _is_killed_partial(path: Path) -> bool:
    """``path.partial`` exists and ``path`` does not: an MS whose writer never closed it."""
    return (os.path.lexists(path.with_name(path.name + PARTIAL_SUFFIX))
            and not os.path.lexists(path))


def _check_output(path: Path) -> None:
    """Refuse an output that exists or a directory that cannot take it (with a reason)."""
    for candidate in (path, path.with_name(path.name + PARTIAL_SUFFIX)):
        if os.path.lexists(candidate):
            raise TransferError(Reason.OUTPUT_EXISTS, f"{candidate}: output already exists")
    if not path.parent.is_dir():
        raise TransferError(Reason.OUTPUT_UNWRITABLE,
                            f"{path}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise TransferError(Reason.OUTPUT_UNWRITABLE,
                            f"{path}: directory {path.parent} is not writable")
