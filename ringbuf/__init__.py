"""ringbuf: crash-safe DADA-style ring buffers in POSIX shared memory."""

from ringbuf.errors import (
    DadaFileError,
    EndOfData,
    HeaderError,
    Interrupted,
    Overwritten,
    RingBufError,
    RingBusy,
    RingExists,
    RingLayoutMismatch,
    RingNotFound,
    RingPermissionError,
    Timeout,
    WriterDied,
)
from ringbuf.header import DadaHeader
from ringbuf.layout import RingLayout
from ringbuf.logs import LOG_LEVELS, parse_level, setup_logging, toggle_debug
from ringbuf.pair import (
    RingPairReader,
    RingPairViewer,
    RingPairWriter,
    create_ring_pair,
    destroy_ring_pair,
)
from ringbuf.pairconfig import pair_keys
from ringbuf.reader import RingReader
from ringbuf.ring import create_ring, destroy_ring
from ringbuf.shm import normalise_key
from ringbuf.segment import Segment, SegmentProducer
from ringbuf.viewer import RingViewer
from ringbuf.writer import RingWriter

__all__ = [
    "DadaFileError", "DadaHeader", "EndOfData", "HeaderError", "Interrupted", "Overwritten",
    "RingBufError", "RingBusy", "RingExists", "RingLayout", "RingLayoutMismatch", "RingNotFound",
    "RingPairReader", "RingPairViewer", "RingPairWriter", "RingPermissionError", "RingReader",
    "RingViewer", "RingWriter", "Segment", "SegmentProducer", "Timeout", "WriterDied",
    "create_ring", "create_ring_pair", "destroy_ring", "destroy_ring_pair", "normalise_key",
    "pair_keys",
    "LOG_LEVELS", "parse_level", "setup_logging", "toggle_debug",
]
