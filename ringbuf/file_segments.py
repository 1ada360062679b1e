"""Reading recordings: walking .dada files as streams, and a SegmentProducer over file pairs.

A *stream* is a list of .dada files sorted by OBS_OFFSET in which each file starts where the
previous one ends (same UTC_START, OBS_OFFSET = previous OBS_OFFSET + previous real data size).
:class:`FileSegmentProducer` pairs a data stream with its weights stream (SKA PST) and yields
heap-aligned :class:`~ringbuf.segment.Segment` views mapped from the files with ``mmap``, one
window per segment, so memory use does not grow with the size of the files.
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ringbuf.dadafile import DADA_SUFFIX, DadaFileInfo, read_dada_file
from ringbuf.errors import DadaFileError
from ringbuf.header import DadaHeader
from ringbuf.segment import Segment

logger = logging.getLogger(__name__)

PathArg = str | os.PathLike[str]
PathsArg = PathArg | Sequence[PathArg]


def list_dada_files(paths: PathsArg) -> list[Path]:
    """Expand files and directories (their ``*.dada`` files, hidden ones excluded)."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if p.name.endswith(DADA_SUFFIX) and not p.name.startswith(".") and p.is_file()
            )
            if not found:
                raise DadaFileError(f"{path}: no .dada files in this directory")
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise DadaFileError(f"{path}: no such file or directory")
    if not out:
        raise DadaFileError("no .dada files given")
    return out


def weights_path_for(data_path: PathArg) -> Path:
    """The weights file of a data file: the same name under the sibling ``weights/`` folder."""
    data_path = Path(data_path)
    candidate = data_path.parent.parent / "weights" / data_path.name
    if not candidate.is_file():
        raise DadaFileError(f"{data_path}: no weights file found (expected {candidate})")
    return candidate


def read_stream(paths: PathsArg) -> list[DadaFileInfo]:
    """Headers of the given files/directories, sorted by OBS_OFFSET (no contiguity check)."""
    infos = [read_dada_file(p) for p in list_dada_files(paths)]
    infos.sort(key=lambda info: (info.utc_start or "", info.obs_offset))
    return infos


def _follows(prev: DadaFileInfo, nxt: DadaFileInfo) -> bool:
    return nxt.utc_start == prev.utc_start and nxt.obs_offset == prev.obs_end


def split_runs(infos: Sequence[DadaFileInfo]) -> list[list[DadaFileInfo]]:
    """Split sorted files into runs of contiguous files (each run is one transfer)."""
    runs: list[list[DadaFileInfo]] = []
    for info in infos:
        if runs and _follows(runs[-1][-1], info):
            runs[-1].append(info)
        else:
            runs.append([info])
    return runs


def check_contiguous(infos: Sequence[DadaFileInfo]) -> None:
    """DadaFileError naming the first pair of files that do not follow on."""
    for prev, nxt in zip(infos, infos[1:], strict=False):
        if nxt.utc_start != prev.utc_start:
            raise DadaFileError(
                f"{nxt.path}: UTC_START {nxt.utc_start} differs from {prev.utc_start} "
                f"in {prev.path}"
            )
        if nxt.obs_offset != prev.obs_end:
            what = "gap" if nxt.obs_offset > prev.obs_end else "overlap"
            raise DadaFileError(
                f"{nxt.path}: OBS_OFFSET {nxt.obs_offset} does not follow {prev.path} "
                f"(OBS_OFFSET {prev.obs_offset} + {prev.data_size} data bytes = {prev.obs_end}): "
                f"{what} of {abs(nxt.obs_offset - prev.obs_end)} bytes"
            )


@dataclass(frozen=True)
class FilePair:
    """A data file, its weights file, and the whole heaps they share."""

    data: DadaFileInfo
    weights: DadaFileInfo
    data_resolution: int
    weights_resolution: int
    first_heap: int
    nheaps: int


def pair_files(data: DadaFileInfo, weights: DadaFileInfo) -> FilePair:
    """Check a data/weights file pair by SKA PST's rules; DadaFileError says what differs."""
    dres, wres = data.resolution(), weights.resolution()
    for info, res in ((data, dres), (weights, wres)):
        if info.obs_offset % res:
            raise DadaFileError(
                f"{info.path}: OBS_OFFSET {info.obs_offset} is not a multiple of RESOLUTION {res} "
                f"(not heap aligned)"
            )
    dheap, wheap = data.obs_offset // dres, weights.obs_offset // wres
    if dheap != wheap:
        raise DadaFileError(
            f"data/weights pair does not start at the same heap: {data.path} OBS_OFFSET "
            f"{data.obs_offset} / RESOLUTION {dres} = heap {dheap}, {weights.path} OBS_OFFSET "
            f"{weights.obs_offset} / RESOLUTION {wres} = heap {wheap}"
        )
    for info, res in ((data, dres), (weights, wres)):
        if info.data_size < res:
            raise DadaFileError(
                f"{info.path}: less than one heap of data ({info.data_size} bytes, "
                f"RESOLUTION {res})"
            )
    dn, wn = data.data_size // dres, weights.data_size // wres
    if dn != wn:
        raise DadaFileError(
            f"data/weights pair has different numbers of whole heaps: {data.path} has {dn} "
            f"({data.data_size} bytes / RESOLUTION {dres}), {weights.path} has {wn} "
            f"({weights.data_size} bytes / RESOLUTION {wres})"
        )
    for info, res in ((data, dres), (weights, wres)):
        if info.data_size % res:
            logger.warning(
                "%s: ignoring a trailing partial heap of %d bytes (RESOLUTION %d)",
                info.path, info.data_size % res, res,
            )
    return FilePair(data, weights, dres, wres, dheap, dn)


def map_view(path: Path, fd: int, start: int, length: int) -> np.ndarray:
    """A read-only uint8 view of ``length`` bytes at ``start`` of an open file, by mmap.

    The mapping lives as long as the returned array (and anything viewing it).
    """
    base = start - start % mmap.ALLOCATIONGRANULARITY
    try:
        mm = mmap.mmap(fd, length + start - base, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ,
                       offset=base)
    except (OSError, ValueError) as exc:
        raise DadaFileError(f"{path}: cannot map bytes {start}..{start + length}: {exc}") from None
    if hasattr(mm, "madvise"):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    return np.frombuffer(mm, dtype=np.uint8, count=length, offset=start - base)


class FileSegmentProducer:
    """Heap-aligned segments of a .dada data/weights recording (a SegmentProducer).

    ``data_path`` is a data file, a directory of data files, or a list of either; the files are
    read as one stream sorted by OBS_OFFSET, and must be contiguous. ``weights_path`` is the
    same for the weights stream; None takes each data file's namesake under the sibling
    ``weights/`` folder. The i-th data file pairs with the i-th weights file; each pair must
    hold the same number of whole heaps from the same heap index (heap strides are each
    header's RESOLUTION); a trailing partial heap is ignored with a warning.

    ``segment_heaps`` is the number of heaps per segment; None gives one segment per file.
    Segments never span files, so the last segment of each file may be shorter. Everything is
    checked in the constructor, before any segment is produced.
    """

    def __init__(
        self,
        data_path: PathsArg,
        weights_path: PathsArg | None = None,
        segment_heaps: int | None = None,
    ) -> None:
        if segment_heaps is not None and segment_heaps < 1:
            raise ValueError(f"segment_heaps must be at least 1, got {segment_heaps}")
        self.segment_heaps = segment_heaps
        data = read_stream(data_path)
        if weights_path is None:
            weights = [read_dada_file(weights_path_for(info.path)) for info in data]
        else:
            weights = read_stream(weights_path)
        if len(data) != len(weights):
            raise DadaFileError(
                f"{len(data)} data files ({data[0].path.parent}) but {len(weights)} weights files "
                f"({weights[0].path.parent})"
            )
        check_contiguous(data)
        check_contiguous(weights)
        self.pairs: list[FilePair] = [pair_files(d, w) for d, w in zip(data, weights, strict=True)]
        self.data_header: DadaHeader = data[0].header
        self.weights_header: DadaHeader = weights[0].header

    @property
    def nheaps(self) -> int:
        """Whole heaps in the recording (the number the segments cover together)."""
        return sum(pair.nheaps for pair in self.pairs)

    def segments(self) -> Iterator[Segment]:
        for pair in self.pairs:
            yield from self._file_segments(pair)

    def _file_segments(self, pair: FilePair) -> Iterator[Segment]:
        step = self.segment_heaps or pair.nheaps
        with _open(pair.data.path) as dfd, _open(pair.weights.path) as wfd:
            for first in range(0, pair.nheaps, step):
                n = min(step, pair.nheaps - first)
                dstart = first * pair.data_resolution
                wstart = first * pair.weights_resolution
                yield Segment(
                    data=map_view(pair.data.path, dfd, pair.data.hdr_size + dstart,
                                  n * pair.data_resolution),
                    weights=map_view(pair.weights.path, wfd, pair.weights.hdr_size + wstart,
                                     n * pair.weights_resolution),
                    obs_offset=pair.data.obs_offset + dstart,
                    weights_obs_offset=pair.weights.obs_offset + wstart,
                    data_header=pair.data.header,
                    weights_header=pair.weights.header,
                )


@contextmanager
def _open(path: Path) -> Iterator[int]:
    """A read-only file descriptor (DadaFileError on failure)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DadaFileError(f"{path}: cannot open: {exc.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)
