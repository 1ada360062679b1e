"""Field indices of the control area: a flat array of int64 words at the start of the shm.

Layout (each name is a word index; see docs/ringbuf.md)::

    control  [0, 64)                       magic, version, layout, creator, writer state
    readers  [64, 64 + 16*16)              one 16-word record per reader slot
    xfers    [.., + hdr_nbufs*16)          one record per header slot (transfer id % hdr_nbufs)
    blocks   [.., + nbufs*8)               one record per data block

Every counter is an absolute count that only grows, written by one process: the writer owns
W_OPENED/W_FILLED/XFER_*; reader i owns its OPENED/CLEARED/XFER. Semaphores merely wake
waiters; these counters are the truth, so semaphore values can always be recomputed.
"""

from __future__ import annotations

from ringbuf.layout import BLOCK_NWORDS, CTRL_NWORDS, MAX_READERS, READER_NWORDS, XFER_NWORDS

MAGIC = int.from_bytes(b"RINGPIPE", "little")
VERSION = 1

# control words
C_MAGIC, C_VERSION, C_NBUFS, C_BUFSZ, C_NREADERS, C_HDR_NBUFS, C_HDR_SIZE, C_TOTAL = range(8)
C_CREATOR_PID, C_CREATOR_START, C_BOOT_ID, C_CREATED_NS, C_MODE, C_FLAGS = range(8, 14)
C_W_PID, C_W_START, C_W_SINCE_NS, C_W_OPENED, C_W_FILLED = range(16, 21)
C_XFER_NEXT, C_XFER_OPEN, C_BYTES_WRITTEN, C_W_BLOCKED_NS, C_W_ATTACHES = range(21, 26)

FLAG_MLOCK = 1

# reader slot words (relative)
R_STATE, R_PID, R_START, R_SINCE_NS, R_OPENED, R_CLEARED, R_XFER, R_BYTES, R_ATTACHES = range(9)
R_HDR_SEEN = 9  # 1 + id of the last transfer whose header this slot delivered (0: none)
SLOT_HELD = 0  # no process attached; the slot keeps its position and gates the writer
SLOT_ATTACHED = 1

# transfer record words (relative)
X_ID, X_STATE, X_START_BLOCK, X_END_BLOCK, X_OBS_OFFSET, X_HDR_NBYTES = range(6)
X_END_POSTED, X_STARTED_NS, X_ENDED_NS = range(6, 9)
XFER_EMPTY, XFER_OPEN, XFER_ENDED, XFER_ABORTED = range(4)
XFER_STATE_NAMES = {XFER_EMPTY: "empty", XFER_OPEN: "open", XFER_ENDED: "ended",
                    XFER_ABORTED: "aborted"}

# block record words (relative)
B_SEQ, B_ABS, B_XFER, B_NBYTES, B_OBS_OFFSET, B_FILLED_NS = range(6)

READERS_BASE = CTRL_NWORDS
XFERS_BASE = READERS_BASE + MAX_READERS * READER_NWORDS


def reader_base(slot: int) -> int:
    return READERS_BASE + slot * READER_NWORDS


def xfer_base(hdr_slot: int) -> int:
    return XFERS_BASE + hdr_slot * XFER_NWORDS


def blocks_base(hdr_nbufs: int) -> int:
    return XFERS_BASE + hdr_nbufs * XFER_NWORDS


def block_base(hdr_nbufs: int, index: int) -> int:
    return blocks_base(hdr_nbufs) + index * BLOCK_NWORDS
