"""Recording rings to .dada files (like dada_dbdisk).

A guaranteed reader writes each transfer to files in a directory, rolling over at a file size
rounded to whole RESOLUTION units. Each file's header is the transfer header with OBS_OFFSET,
FILE_SIZE (the bytes really in the file) and FILE_NUMBER set. A ring pair is recorded into
``data/`` and ``weights/`` with the same names, rolling over at the same heap.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ringbuf.dadafile import (
    DADA_SUFFIX,
    DadaFileInfo,
    RollingDadaWriter,
    default_file_size,
    file_end,
    parse_dada_file_name,
    read_dada_file,
    recover_partials,
)
from ringbuf.errors import (
    DadaFileError,
    EndOfData,
    HeaderError,
    Interrupted,
    Timeout,
    WriterDied,
)
from ringbuf.header import DadaHeader
from ringbuf.pair import PairReadTransfer, RingPairReader
from ringbuf.reader import ReadBlock, ReadTransfer, RingReader

logger = logging.getLogger(__name__)

_MB = 1e6


@dataclass
class Summary:
    """What a record or play run did (``as_dict`` is the CLI's JSON summary)."""

    transfers: int = 0
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    weights_bytes: int = 0
    seconds: float = 0.0
    incomplete: int = 0  # transfers whose writer died, or cut short by stop/timeout

    def as_dict(self) -> dict[str, object]:
        total = self.bytes + self.weights_bytes
        return {
            "transfers": self.transfers,
            "files": len(self.files),
            "bytes": self.bytes,
            "weights_bytes": self.weights_bytes,
            "seconds": round(self.seconds, 6),
            "mbps": round(total / _MB / self.seconds, 3) if self.seconds > 0 else 0.0,
            "incomplete": self.incomplete,
            "paths": self.files,
        }


def _header_offset(header: DadaHeader) -> int:
    return header.get_int("OBS_OFFSET", 0)


def _resolution(header: DadaHeader, default: int | None = None) -> int:
    value = header.get_int("RESOLUTION", default)
    if value <= 0:
        raise HeaderError(f"{header.source}: RESOLUTION {value} must be positive")
    return value



@dataclass(frozen=True)
class Continuation:
    """Where an earlier recorder of the same transfer left off: data before ``obs_end`` (and
    ``weights_end`` for a pair) is already in files; the next file is ``file_number``."""

    obs_end: int
    weights_end: int
    file_number: int


def find_continuation(directory: Path, utc_start: str,
                      weights_directory: Path | None = None) -> Continuation | None:
    """The end of the files already recorded for ``utc_start`` in ``directory``, if any."""
    last: DadaFileInfo | None = None
    number = -1
    for path in directory.glob(f"*{DADA_SUFFIX}"):
        name = parse_dada_file_name(path.name)
        if name is None or name.utc_start != utc_start:
            continue
        info = read_dada_file(path)
        number = max(number, name.file_number)
        if last is None or info.obs_end > last.obs_end:
            last = info
    if last is None:
        return None
    weights_end = 0
    if weights_directory is not None:
        weights_end = read_dada_file(weights_directory / last.path.name).obs_end
    return Continuation(last.obs_end, weights_end, number + 1)


def _trim(obs_offset: int, data: np.ndarray, done_until: int) -> tuple[int, np.ndarray]:
    """Drop the bytes before ``done_until`` (already recorded by a predecessor)."""
    if obs_offset >= done_until:
        return obs_offset, data
    cut = min(len(data), done_until - obs_offset)
    return obs_offset + cut, data[cut:]


class StreamRecorder:
    """One transfer of a single ring into files of ``file_size`` bytes rounded to RESOLUTION.

    With ``resume``, bytes a predecessor already recorded are skipped and numbering goes on.
    """

    def __init__(self, directory: Path, header: DadaHeader, file_size: int, sync: bool = True,
                 resume: Continuation | None = None):
        self.resolution = _resolution(header, 1)
        self.file_size = file_size
        self.files = RollingDadaWriter(directory, header, sync)
        self._done_until = -1
        if resume is not None:
            self.files.offset, self.files.file_number = resume.obs_end, resume.file_number
            self._done_until = resume.obs_end
        self._end = 0

    def write(self, obs_offset: int, data: np.ndarray) -> int:
        """Append a block that starts at ``obs_offset`` (a jump starts a new file); the bytes
        written (fewer if a predecessor had recorded some)."""
        obs_offset, data = _trim(obs_offset, data, self._done_until)
        if not len(data):
            return 0
        files = self.files
        if obs_offset != files.offset:
            logger.warning("%s: data jumps from OBS_OFFSET %d to %d; starting a new file",
                           files.directory, files.offset, obs_offset)
            files.end_file()
            files.offset = obs_offset
        pos = 0
        while pos < len(data):
            if not files.in_file:
                self._end = file_end(files.offset, self.file_size, self.resolution)
                files.begin_file(self._end - files.offset)
            take = min(len(data) - pos, self._end - files.offset)
            files.write(data[pos : pos + take])
            pos += take
            if files.offset == self._end:
                files.end_file()
        return len(data)

    def sync(self) -> None:
        self.files.sync()

    def finish(self) -> list[Path]:
        self.files.end_file()
        return self.files.paths

    def salvage(self) -> list[Path]:
        self.files.salvage()
        return self.files.paths


class PairRecorder:
    """One transfer of a ring pair into ``data/`` and ``weights/``, rolling over both files at
    the same heap (data RESOLUTION and weights RESOLUTION bytes per heap)."""

    def __init__(self, directory: Path, data_header: DadaHeader, weights_header: DadaHeader,
                 file_size: int, sync: bool = True, resume: Continuation | None = None):
        self.dres, self.wres = _resolution(data_header), _resolution(weights_header)
        doff, woff = _header_offset(data_header), _header_offset(weights_header)
        if doff % self.dres or woff % self.wres or doff // self.dres != woff // self.wres:
            raise DadaFileError(
                f"ring pair headers do not start at the same heap: data OBS_OFFSET {doff} "
                f"RESOLUTION {self.dres}, weights OBS_OFFSET {woff} RESOLUTION {self.wres}"
            )
        (directory / "data").mkdir(exist_ok=True)
        (directory / "weights").mkdir(exist_ok=True)
        self.file_size = file_size
        self.data = RollingDadaWriter(directory / "data", data_header, sync)
        self.weights = RollingDadaWriter(directory / "weights", weights_header, sync)
        self._done = (-1, -1)
        if resume is not None:
            self.data.offset, self.weights.offset = resume.obs_end, resume.weights_end
            self.data.file_number = self.weights.file_number = resume.file_number
            self._done = (resume.obs_end, resume.weights_end)
        self._end_heap = 0
        self._warned = False

    def write(self, obs_offset: int, data: np.ndarray, weights_obs_offset: int,
              weights: np.ndarray) -> tuple[int, int]:
        """Append a segment; the data and weights bytes written."""
        obs_offset, data = _trim(obs_offset, data, self._done[0])
        weights_obs_offset, weights = _trim(weights_obs_offset, weights, self._done[1])
        if not len(data) and not len(weights):
            return 0, 0
        d, w = self.data, self.weights
        if obs_offset != d.offset or weights_obs_offset != w.offset:
            logger.warning("%s: data jumps from OBS_OFFSET %d/%d to %d/%d; starting new files",
                           d.directory.parent, d.offset, w.offset, obs_offset, weights_obs_offset)
            self._end_files()
            d.offset, w.offset = obs_offset, weights_obs_offset
        if len(data) * self.wres != len(weights) * self.dres and not self._warned:
            self._warned = True
            logger.warning("%s: a segment has %d data and %d weights bytes, not the same heaps",
                           d.directory.parent, len(data), len(weights))
        dpos = wpos = 0
        while dpos < len(data) or wpos < len(weights):
            if not d.in_file:
                end = file_end(d.offset, self.file_size, self.dres)
                self._end_heap = end // self.dres
                d.begin_file(end - d.offset)
                w.begin_file(self._end_heap * self.wres - w.offset, name_offset=d.offset)
            dtake = max(0, min(len(data) - dpos, self._end_heap * self.dres - d.offset))
            wtake = max(0, min(len(weights) - wpos, self._end_heap * self.wres - w.offset))
            if dtake == 0 and wtake == 0:  # streams out of step: keep the rest, no split
                dtake, wtake = len(data) - dpos, len(weights) - wpos
            d.write(data[dpos : dpos + dtake])
            w.write(weights[wpos : wpos + wtake])
            dpos += dtake
            wpos += wtake
            if d.offset >= self._end_heap * self.dres or w.offset >= self._end_heap * self.wres:
                self._end_files()
        return len(data), len(weights)

    def _end_files(self) -> None:
        self.data.end_file()
        self.weights.end_file()

    def sync(self) -> None:
        self.data.sync()
        self.weights.sync()

    def finish(self) -> list[Path]:
        self._end_files()
        return self.data.paths + self.weights.paths

    def salvage(self) -> list[Path]:
        """Publish only what is synced in both streams (whole segments were synced together)."""
        self.data.salvage()
        self.weights.salvage()
        return self.data.paths + self.weights.paths


def _prepare_directory(directory: str | os.PathLike[str]) -> Path:
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DadaFileError(f"{path}: cannot create directory: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DadaFileError(f"{path}: directory is not writable")
    return path


def record(
    key: str,
    directory: str | os.PathLike[str],
    weights_key: str | None = None,
    file_size: int | None = None,
    transfers: int | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    sync: bool = True,
) -> Summary:
    """Record transfers of ring ``key`` (and ``weights_key`` as a pair) into ``directory``.

    Stops after ``transfers`` transfers, when ``stop`` is set, or when no transfer starts within
    ``timeout`` seconds (a normal end). A transfer that stalls for ``timeout`` seconds raises
    Timeout after its files so far are finished. Files already finished are always valid.

    Blocks are cleared only once their bytes are synced to disk, so after a crash or an error
    the ring still holds every byte not in a file; a recorder started again on the same
    directory finishes the files left behind and carries on where they end.
    """
    summary = Summary()
    started: float | None = None
    reader: RingReader | RingPairReader
    if weights_key is None:
        reader = RingReader(key, timeout=timeout, stop=stop)
    else:
        reader = RingPairReader(key, weights_key, timeout=timeout, stop=stop)
    with reader:
        root = _prepare_directory(directory)
        if weights_key is None:
            recover_partials(root)
        elif (root / "data").is_dir() and (root / "weights").is_dir():
            recover_partials(root / "data", root / "weights")
        nbufs = (reader.layout if isinstance(reader, RingReader) else reader.data.layout).nbufs
        hold = max(1, nbufs // 2)
        while transfers is None or summary.transfers < transfers:
            try:
                xfer = reader.open_transfer(timeout)
            except Timeout:
                logger.info("ring %s: no transfer within %s s; stopping", key, timeout)
                break
            except Interrupted:
                break
            started = started or time.monotonic()
            try:
                if not _record_transfer(xfer, root, file_size, sync, summary, hold):
                    break
            finally:
                summary.seconds = time.monotonic() - started
    return summary


def _continuation(xfer: ReadTransfer | PairReadTransfer, root: Path,
                  header: DadaHeader) -> Continuation | None:
    if not xfer.resumed or "UTC_START" not in header:
        return None
    if isinstance(xfer, PairReadTransfer):
        found = find_continuation(root / "data", header["UTC_START"], root / "weights")
    else:
        found = find_continuation(root, header["UTC_START"])
    if found is not None:
        logger.warning("%s: continuing a recording left unfinished at OBS_OFFSET %d (file %d)",
                       root, found.obs_end, found.file_number)
    return found


def _record_transfer(xfer: ReadTransfer | PairReadTransfer, root: Path, file_size: int | None,
                     sync: bool, summary: Summary, hold: int) -> bool:
    """Record one transfer; False if recording should stop (stop event).

    Up to ``hold`` blocks are held; then the files are synced and the blocks cleared. On any
    error the synced part of the current file is published and nothing unsynced is cleared.
    """
    header = xfer.data_header if isinstance(xfer, PairReadTransfer) else xfer.header
    size = file_size if file_size is not None else default_file_size(header)
    resume = _continuation(xfer, root, header)
    recorder: StreamRecorder | PairRecorder
    if isinstance(xfer, PairReadTransfer):
        recorder = PairRecorder(root, header, xfer.weights_header, size, sync, resume)
    else:
        recorder = StreamRecorder(root, header, size, sync, resume)
    held: list[ReadBlock] = []

    def clear_held() -> None:
        if isinstance(xfer, PairReadTransfer):
            xfer.clear_held()
        else:
            for block in held:
                block.clear()
        held.clear()

    carry_on = True
    try:
        try:
            while True:
                if isinstance(xfer, PairReadTransfer):
                    assert isinstance(recorder, PairRecorder)
                    seg = xfer.next_segment()
                    if seg is None:
                        break
                    s = seg.segment
                    nd, nw = recorder.write(s.obs_offset, s.data, s.weights_obs_offset, s.weights)
                    summary.bytes += nd
                    summary.weights_bytes += nw
                    count = xfer.held
                else:
                    assert isinstance(recorder, StreamRecorder)
                    try:
                        blk = xfer.next_block()
                    except WriterDied:
                        raise
                    except EndOfData:
                        break
                    held.append(blk)
                    summary.bytes += recorder.write(blk.obs_offset, blk.data)
                    count = len(held)
                if count >= hold:
                    recorder.sync()
                    clear_held()
        except WriterDied as exc:
            summary.incomplete += 1
            logger.warning("%s; keeping the files written", exc)
        except Interrupted:
            summary.incomplete += 1
            carry_on = False
        except Timeout:
            summary.incomplete += 1
            summary.files.extend(str(p) for p in recorder.finish())
            clear_held()
            raise
    except BaseException:
        kept = recorder.salvage()  # held blocks stay in the ring for the next recorder
        summary.files.extend(str(p) for p in kept if str(p) not in summary.files)
        raise
    summary.files.extend(str(p) for p in recorder.finish())
    clear_held()
    summary.transfers += 1
    return carry_on
