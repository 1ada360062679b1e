"""Ring geometry: a frozen description of a ring's sizes and where everything lives in shm."""

from __future__ import annotations

import mmap
from dataclasses import dataclass

from ringbuf.header import DEFAULT_HDR_SIZE

PAGE_NBYTES = mmap.PAGESIZE
MAX_READERS = 16
MIN_HDR_NBUFS = 8

# The control area is a flat array of int64 words; see ringbuf/control.py for the fields.
CTRL_NWORDS = 64
READER_NWORDS = 16
XFER_NWORDS = 16
BLOCK_NWORDS = 8


def _page_align(nbytes: int) -> int:
    return (nbytes + PAGE_NBYTES - 1) // PAGE_NBYTES * PAGE_NBYTES


@dataclass(frozen=True)
class RingLayout:
    """Sizes of one ring: ``nbufs`` data blocks of ``bufsz`` bytes, and a header ring of
    ``hdr_nbufs`` blocks of ``hdr_size`` bytes, with ``nreaders`` guaranteed-reader slots."""

    nbufs: int
    bufsz: int
    nreaders: int = 1
    hdr_nbufs: int = MIN_HDR_NBUFS
    hdr_size: int = DEFAULT_HDR_SIZE

    def __post_init__(self) -> None:
        problems = []
        if self.nbufs < 2:
            problems.append(f"nbufs {self.nbufs} must be at least 2")
        if self.bufsz < 1:
            problems.append(f"bufsz {self.bufsz} must be positive")
        if not 0 <= self.nreaders <= MAX_READERS:
            problems.append(f"nreaders {self.nreaders} must be 0..{MAX_READERS}")
        if self.hdr_nbufs < MIN_HDR_NBUFS:
            problems.append(f"hdr_nbufs {self.hdr_nbufs} must be at least {MIN_HDR_NBUFS}")
        if self.hdr_size < 64:
            problems.append(f"hdr_size {self.hdr_size} must be at least 64")
        if problems:
            raise ValueError("invalid ring layout: " + "; ".join(problems))

    @property
    def meta_nwords(self) -> int:
        """int64 words of control, reader, transfer and block metadata."""
        return (
            CTRL_NWORDS
            + MAX_READERS * READER_NWORDS
            + self.hdr_nbufs * XFER_NWORDS
            + self.nbufs * BLOCK_NWORDS
        )

    @property
    def hdr_offset(self) -> int:
        return _page_align(self.meta_nwords * 8)

    @property
    def data_offset(self) -> int:
        return _page_align(self.hdr_offset + self.hdr_nbufs * self.hdr_size)

    @property
    def data_nbytes(self) -> int:
        return self.nbufs * self.bufsz

    @property
    def total_nbytes(self) -> int:
        return _page_align(self.data_offset + self.data_nbytes)
