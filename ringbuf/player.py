"""Playing .dada files into rings (like dada_diskdb).

Files are sorted by OBS_OFFSET and split into runs of contiguous files (same UTC_START, each
starting where the previous one's real data ends); each run becomes one transfer whose header
is its first file's header without FILE_SIZE and FILE_NUMBER. A ring pair is played from data
files and their namesakes under the sibling ``weights/``.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ringbuf.dadafile import DadaFileInfo, read_dada_file
from ringbuf.errors import DadaFileError, Interrupted, RingBufError
from ringbuf.file_segments import (
    PathsArg,
    check_contiguous,
    pair_files,
    read_stream,
    split_runs,
    weights_path_for,
)
from ringbuf.header import DadaHeader
from ringbuf.pacer import Pacer
from ringbuf.pair import RingPairWriter
from ringbuf.recorder import Summary
from ringbuf.writer import RingWriter

_MB = 1e6
_READ_CHUNK = 4 << 20  # read() size when playing; like dd bs=4M, kinder to readahead


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
            while self._left == 0:  # also skips files with no data (header only)
                if not self._next_file():
                    return filled
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
    pacer = Pacer(rate_mb_s * _MB if rate_mb_s else None, stop)
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


def _play_run(writer: RingWriter, run: list[DadaFileInfo], pacer: Pacer, summary: Summary) -> None:
    source = _RunReader(run)
    bufsz = writer.layout.bufsz
    try:
        with writer.open_transfer(transfer_header(run[0])) as xfer:
            while True:
                with xfer.open_block() as blk:
                    n = source.readinto(blk.data.data)
                    blk.commit(n)
                summary.bytes += n
                if not pacer.account(n):
                    raise Interrupted("play: stopped")
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
            f"ring pair {writer.data.key}/{writer.weights.key}: blocks of {dbuf} and {wbuf} "
            f"bytes do not hold the same whole number of heaps (data RESOLUTION {dres}, "
            f"weights RESOLUTION {wres})"
        )


def _play_pair_run(writer: RingPairWriter, data_run: list[DadaFileInfo],
                   weights_run: list[DadaFileInfo], heaps: list[int], pacer: Pacer,
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
                    dn = dsrc.readinto(seg.data.data[: per_block * dres])
                    wn = wsrc.readinto(seg.weights.data[: per_block * wres])
                    seg.commit(dn, wn)
                summary.bytes += dn
                summary.weights_bytes += wn
                if not pacer.account(dn + wn):
                    raise Interrupted("play: stopped")
                if dn < per_block * dres:
                    break
    finally:
        dsrc.close()
        wsrc.close()
    summary.transfers += 1
    summary.files.extend(str(info.path) for info in data_run + weights_run)
