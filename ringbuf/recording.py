"""Recording rings to .dada files (like dada_dbdisk) and playing files into rings (dada_diskdb).

Recording: a guaranteed reader writes each transfer to files in a directory, rolling over at a
file size rounded to whole RESOLUTION units. Each file's header is the transfer header with
OBS_OFFSET, FILE_SIZE (the bytes really in the file) and FILE_NUMBER set. A ring pair is
recorded into ``data/`` and ``weights/`` with the same names, rolling over at the same heap.

Playing: files are sorted by OBS_OFFSET and split into runs of contiguous files (same
UTC_START, each starting where the previous one's real data ends); each run becomes one
transfer whose header is its first file's header without FILE_SIZE and FILE_NUMBER.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ringbuf.dadafile import (
    DadaFileInfo,
    RollingDadaWriter,
    default_file_size,
    file_end,
    read_dada_file,
)
from ringbuf.errors import (
    DadaFileError,
    HeaderError,
    Interrupted,
    RingBufError,
    Timeout,
    WriterDied,
)
from ringbuf.file_segments import (
    PathsArg,
    check_contiguous,
    pair_files,
    read_stream,
    split_runs,
    weights_path_for,
)
from ringbuf.header import DadaHeader
from ringbuf.pair import PairReadTransfer, RingPairReader, RingPairWriter
from ringbuf.reader import ReadTransfer, RingReader
from ringbuf.writer import RingWriter

logger = logging.getLogger(__name__)

_MB = 1e6
_READ_CHUNK = 4 << 20  # read() size when playing; like dd bs=4M, kinder to readahead


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


# ------------------------------------------------------------------------------ recording
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


# ------------------------------------------------------------------------------ playing
def transfer_header(info: DadaFileInfo) -> DadaHeader:
    """The header a run of files is played with: the first file's, minus the per-file keys."""
    header = info.header.copy()
    header.delete("FILE_SIZE")
    header.delete("FILE_NUMBER")
    header.set("OBS_OFFSET", info.obs_offset)
    return header


class _RunReader:
    """Reads the data parts of a run of files as one byte stream (``readinto``)."""

    def __init__(self, infos: Sequence[DadaFileInfo], limits: Sequence[int] | None = None):
        self._infos = list(infos)
        self._limits = list(limits) if limits is not None else [i.data_size for i in infos]
        self._index = -1
        self._fh: io.FileIO | None = None
        self._left = 0

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` as far as the run allows; returns the bytes read (0 at the end)."""
        filled = 0
        while filled < len(view):
            if self._left == 0 and not self._next_file():
                break
            want = min(len(view) - filled, self._left, _READ_CHUNK)
            assert self._fh is not None
            n = self._fh.readinto(view[filled : filled + want])
            if not n:
                info = self._infos[self._index]
                raise DadaFileError(f"{info.path}: file shrank while being read")
            filled += n
            self._left -= n
        return filled

    def _next_file(self) -> bool:
        self.close()
        self._index += 1
        if self._index >= len(self._infos):
            return False
        info = self._infos[self._index]
        try:
            self._fh = io.FileIO(info.path, "r")
            # a sequential read: let the kernel read further ahead (it doubles the window)
            os.posix_fadvise(self._fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            self._fh.seek(info.hdr_size)
        except OSError as exc:
            raise DadaFileError(f"{info.path}: cannot read: {exc.strerror}") from None
        self._left = self._limits[self._index]
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _Pacer:
    """Sleeps so that no more than ``rate`` bytes per second go out (None: no limit)."""

    def __init__(self, rate: float | None, stop: threading.Event | None) -> None:
        self.rate = rate
        self.stop = stop
        self.start = time.monotonic()
        self.sent = 0

    def account(self, nbytes: int) -> None:
        self.sent += nbytes
        if not self.rate:
            return
        ahead = self.sent / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            if self.stop is not None:
                if self.stop.wait(ahead):
                    raise Interrupted("play: stopped")
            else:
                time.sleep(ahead)


def play(
    key: str,
    paths: PathsArg,
    weights_key: str | None = None,
    rate_mb_s: float | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Write .dada files (files or directories) into ring ``key`` (and ``weights_key``).

    For a pair, ``paths`` are data files/directories (or recording directories holding
    ``data/`` and ``weights/``); each data file's weights file is its namesake under the
    sibling ``weights/``. ``rate_mb_s`` limits the rate (MB/s of data plus weights).
    Everything is checked before the first transfer starts.
    """
    summary = Summary()
    pacer = _Pacer(rate_mb_s * _MB if rate_mb_s else None, stop)
    started = time.monotonic()
    if weights_key is None:
        runs = split_runs(read_stream(paths))
        with RingWriter(key, timeout=timeout, stop=stop) as writer:
            for run in runs:
                _play_run(writer, run, pacer, summary)
    else:
        pair_runs = _pair_runs(paths)
        with RingPairWriter(key, weights_key, timeout=timeout, stop=stop) as pair_writer:
            data_run, weights_run, _ = pair_runs[0]
            _check_pair_layout(pair_writer, data_run[0].resolution(), weights_run[0].resolution())
            for data_run, weights_run, heaps in pair_runs:
                _play_pair_run(pair_writer, data_run, weights_run, heaps, pacer, summary)
    summary.seconds = time.monotonic() - started
    return summary


def _play_run(writer: RingWriter, run: list[DadaFileInfo], pacer: _Pacer, summary: Summary) -> None:
    source = _RunReader(run)
    bufsz = writer.layout.bufsz
    try:
        with writer.open_transfer(transfer_header(run[0])) as xfer:
            while True:
                with xfer.open_block() as blk:
                    n = source.readinto(memoryview(blk.data))
                    blk.commit(n)
                summary.bytes += n
                pacer.account(n)
                if n < bufsz:
                    break
    finally:
        source.close()
    summary.transfers += 1
    summary.files.extend(str(info.path) for info in run)


def _pair_runs(paths: PathsArg) -> list[tuple[list[DadaFileInfo], list[DadaFileInfo], list[int]]]:
    """Runs of (data files, weights files, whole heaps per file pair), all checked."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    expanded: list[Path] = []
    for item in items:
        path = Path(item)
        expanded.append(path / "data" if (path / "data").is_dir() else path)
    data = read_stream(expanded)
    runs = []
    for data_run in split_runs(data):
        weights_run = [_weights_info(info) for info in data_run]
        check_contiguous(weights_run)
        pairs = [pair_files(d, w) for d, w in zip(data_run, weights_run, strict=False)]
        for pair in pairs[:-1]:
            if pair.data.data_size % pair.data_resolution:
                raise DadaFileError(f"{pair.data.path}: partial heap in the middle of a run")
        runs.append((data_run, weights_run, [pair.nheaps for pair in pairs]))
    return runs


def _weights_info(data: DadaFileInfo) -> DadaFileInfo:
    return read_dada_file(weights_path_for(data.path))


def _check_pair_layout(writer: RingPairWriter, dres: int, wres: int) -> None:
    """The rings' blocks must hold the same whole number of heaps of data and weights."""
    dbuf, wbuf = writer.data.layout.bufsz, writer.weights.layout.bufsz
    if dbuf % dres or wbuf % wres or dbuf // dres != wbuf // wres:
        raise RingBufError(
            f"ring pair {writer.data.key}/{writer.weights.key}: blocks of {dbuf} and {wbuf} bytes do not hold the same "
            f"whole number of heaps (data RESOLUTION {dres}, weights RESOLUTION {wres})"
        )


def _play_pair_run(writer: RingPairWriter, data_run: list[DadaFileInfo],
                   weights_run: list[DadaFileInfo], heaps: list[int], pacer: _Pacer,
                   summary: Summary) -> None:
    dres, wres = data_run[0].resolution(), weights_run[0].resolution()
    dsrc = _RunReader(data_run, [n * dres for n in heaps])
    wsrc = _RunReader(weights_run, [n * wres for n in heaps])
    per_block = writer.data.layout.bufsz // dres
    try:
        with writer.open_transfer(transfer_header(data_run[0]),
                                  transfer_header(weights_run[0])) as xfer:
            while True:
                with xfer.open_segment() as seg:
                    dn = dsrc.readinto(memoryview(seg.data)[: per_block * dres])
                    wn = wsrc.readinto(memoryview(seg.weights)[: per_block * wres])
                    seg.commit(dn, wn)
                summary.bytes += dn
                summary.weights_bytes += wn
                pacer.account(dn + wn)
                if dn < per_block * dres:
                    break
    finally:
        dsrc.close()
        wsrc.close()
    summary.transfers += 1
    summary.files.extend(str(info.path) for info in data_run + weights_run)
