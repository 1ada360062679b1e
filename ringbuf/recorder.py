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

from ringbuf.dadafile import RollingDadaWriter, default_file_size, file_end
from ringbuf.errors import DadaFileError, HeaderError, Interrupted, Timeout, WriterDied
from ringbuf.header import DadaHeader
from ringbuf.pair import PairReadTransfer, RingPairReader
from ringbuf.reader import ReadTransfer, RingReader

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



class StreamRecorder:
    """One transfer of a single ring into files of ``file_size`` bytes rounded to RESOLUTION."""

    def __init__(self, directory: Path, header: DadaHeader, file_size: int, sync: bool = True):
        self.resolution = _resolution(header, 1)
        self.file_size = file_size
        self.files = RollingDadaWriter(directory, header, sync)
        self._end = 0

    def write(self, obs_offset: int, data: np.ndarray) -> None:
        """Append a block that starts at ``obs_offset`` (a jump starts a new file)."""
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

    def finish(self) -> list[Path]:
        self.files.end_file()
        return self.files.paths

    def abort(self) -> None:
        self.files.abort()


class PairRecorder:
    """One transfer of a ring pair into ``data/`` and ``weights/``, rolling over both files at
    the same heap (data RESOLUTION and weights RESOLUTION bytes per heap)."""

    def __init__(self, directory: Path, data_header: DadaHeader, weights_header: DadaHeader,
                 file_size: int, sync: bool = True):
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
        self._end_heap = 0
        self._warned = False

    def write(self, obs_offset: int, data: np.ndarray, weights_obs_offset: int,
              weights: np.ndarray) -> None:
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

    def _end_files(self) -> None:
        self.data.end_file()
        self.weights.end_file()

    def finish(self) -> list[Path]:
        self._end_files()
        return self.data.paths + self.weights.paths

    def abort(self) -> None:
        self.data.abort()
        self.weights.abort()


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
    """
    root = _prepare_directory(directory)
    summary = Summary()
    started: float | None = None
    reader: RingReader | RingPairReader
    if weights_key is None:
        reader = RingReader(key, timeout=timeout, stop=stop)
    else:
        reader = RingPairReader(key, weights_key, timeout=timeout, stop=stop)
    with reader:
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
                if not _record_transfer(xfer, root, file_size, sync, summary):
                    break
            finally:
                summary.seconds = time.monotonic() - started
    return summary


def _record_transfer(xfer: ReadTransfer | PairReadTransfer, root: Path, file_size: int | None,
                     sync: bool, summary: Summary) -> bool:
    """Record one transfer; False if recording should stop (stop event)."""
    header = xfer.data_header if isinstance(xfer, PairReadTransfer) else xfer.header
    size = file_size if file_size is not None else default_file_size(header)
    recorder: StreamRecorder | PairRecorder
    if isinstance(xfer, PairReadTransfer):
        recorder = pair_rec = PairRecorder(root, header, xfer.weights_header, size, sync)
    else:
        recorder = stream_rec = StreamRecorder(root, header, size, sync)
    carry_on = True
    try:
        try:
            if isinstance(xfer, PairReadTransfer):
                for seg in xfer:
                    pair_rec.write(seg.obs_offset, seg.data, seg.weights_obs_offset, seg.weights)
                    summary.bytes += seg.data.size
                    summary.weights_bytes += seg.weights.size
            else:
                for blk in xfer:
                    stream_rec.write(blk.obs_offset, blk.data)
                    summary.bytes += blk.nbytes
        except WriterDied as exc:
            summary.incomplete += 1
            logger.warning("%s; keeping the %d files written", exc, len(recorder.finish()))
        except Interrupted:
            summary.incomplete += 1
            carry_on = False
        except Timeout:
            summary.incomplete += 1
            summary.files.extend(str(p) for p in recorder.finish())
            raise
    except BaseException:
        recorder.abort()
        raise
    summary.files.extend(str(p) for p in recorder.finish())
    summary.transfers += 1
    return carry_on
