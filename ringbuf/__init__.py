"""ringbuf: crash-safe DADA-style ring buffers in POSIX shared memory.

The public face: services import names from ``ringbuf`` (and ``ringbuf.errors``) only.
"""

from ringbuf.dadafile import DadaFileInfo, dada_file_name, read_dada_file
from ringbuf.errors import (
    DadaFileError,
    EndOfData,
    HeaderError,
    Interrupted,
    Overwritten,
    PairOutOfStep,
    RingBufError,
    RingBusy,
    RingExists,
    RingLayoutMismatch,
    RingNoSpace,
    RingNotFound,
    RingPermissionError,
    Timeout,
    WriterDied,
)
from ringbuf.file_segments import FileSegmentProducer, list_dada_files
from ringbuf.header import DadaHeader
from ringbuf.layout import RingLayout
from ringbuf.logs import LOG_LEVELS, parse_level, setup_logging, toggle_debug
from ringbuf.pair import (
    PairReadTransfer,
    PairViewSegment,
    PairViewTransfer,
    PairWriteTransfer,
    ReadSegment,
    RingPairReader,
    RingPairViewer,
    RingPairWriter,
    WriteSegment,
    create_ring_pair,
    destroy_ring_pair,
    ensure_ring_pair,
)
from ringbuf.pairconfig import pair_keys
from ringbuf.player import play
from ringbuf.reader import ReadBlock, ReadTransfer, RingReader
from ringbuf.recorder import Summary, record
from ringbuf.ring import create_ring, destroy_ring, ensure_ring
from ringbuf.segment import Segment, SegmentProducer
from ringbuf.shm import normalise_key
from ringbuf.status import current_header, list_rings, snapshot
from ringbuf.viewer import RingViewer, ViewBlock
from ringbuf.writer import RingWriter, WriteBlock, WriteTransfer

__all__ = [
    "DadaFileError",
    "DadaFileInfo",
    "DadaHeader",
    "EndOfData",
    "FileSegmentProducer",
    "HeaderError",
    "Interrupted",
    "LOG_LEVELS",
    "Overwritten",
    "PairOutOfStep",
    "PairReadTransfer",
    "PairViewSegment",
    "PairViewTransfer",
    "PairWriteTransfer",
    "ReadBlock",
    "ReadSegment",
    "ReadTransfer",
    "RingBufError",
    "RingBusy",
    "RingExists",
    "RingLayout",
    "RingLayoutMismatch",
    "RingNoSpace",
    "RingNotFound",
    "RingPairReader",
    "RingPairViewer",
    "RingPairWriter",
    "RingPermissionError",
    "RingReader",
    "RingViewer",
    "RingWriter",
    "Segment",
    "SegmentProducer",
    "Summary",
    "Timeout",
    "ViewBlock",
    "WriteBlock",
    "WriteSegment",
    "WriteTransfer",
    "WriterDied",
    "create_ring",
    "create_ring_pair",
    "current_header",
    "dada_file_name",
    "destroy_ring",
    "destroy_ring_pair",
    "ensure_ring",
    "ensure_ring_pair",
    "list_dada_files",
    "list_rings",
    "normalise_key",
    "pair_keys",
    "parse_level",
    "play",
    "read_dada_file",
    "record",
    "setup_logging",
    "snapshot",
    "toggle_debug",
]
