"""Compiled spead2 place callbacks (numba ``cfunc``) for the two stream profiles.

spead2 calls the callback from its receive thread once per heap, with the immediate items
listed in :data:`VIS_ITEMS` / :data:`BEAM_ITEMS` and the heap's first packet. The callback:

* checks the packet flavour and that every item id is known (``bad_flavour``, ``unknown_item``);
* treats a heap without a time item as a metadata/start heap: it copies the values of the
  metadata items (:attr:`PlaceParams.meta_ids`) into the user-data array, where the Python side
  reads them, counts it, and discards it (``chunk_id = -1``);
* validates a data heap (shape, channel range of this port, timestamp alignment and jump,
  duplicates) and maps it to ``chunk_id`` (a ring block), ``heap_index`` and ``heap_offset``.

Every rejection increments a spead2 custom stream statistic; no Python runs per heap.
Each stream (port) has its own :class:`PlaceParams` array, so the callback is single-threaded
per array.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy
import spead2
from numba import types
from spead2.numba import intp_to_voidptr
from spead2.recv.numba import chunk_place_data

from services.formats import cbf_sdp

#: Immediate items passed to the visibility callback, in this order.
VIS_ITEMS = (
    spead2.HEAP_LENGTH_ID, spead2.STREAM_CTRL_ID, cbf_sdp.TIMESTAMP_COUNT, cbf_sdp.TIMESTAMP_FRACTION,
    cbf_sdp.CHANNEL_ID, cbf_sdp.CHANNEL_COUNT, cbf_sdp.BASELINE_COUNT,
)
#: Immediate items passed to the beam callback, in this order.
BEAM_ITEMS = (spead2.HEAP_LENGTH_ID, spead2.STREAM_CTRL_ID, cbf_sdp.BEAM_SAMPLE_COUNT,
              cbf_sdp.BEAM_FIRST_CHANNEL, cbf_sdp.BEAM_SCALE)
#: Bytes of chunk ``extra`` per beam heap: the packet scale (float32, little-endian).
BEAM_EXTRA_BYTES = 4
#: SPEAD's own items (padding, heap cnt/length, payload offset/length, descriptor, stream control).
SPEAD_CONTROL_ITEMS = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06)

#: Custom spead2 statistics the callback increments (registered on each StreamConfig).
STATS = ("heaps_seen", "metadata_heaps", "start_heaps", "end_heaps", "rejected_bad_flavour",
         "rejected_unknown_item", "rejected_bad_shape", "rejected_bad_timestamp",
         "rejected_wrong_channel", "duplicate_heaps")

# user-data layout (int64 slots)
U_LEN, U_PERIOD, U_PHASE, U_MAXSTEP, U_MAXJUMP, U_BLOCK_LO, U_BLOCK_HI = 0, 1, 2, 3, 4, 5, 6
U_START_CHAN, U_CHANS_PER_HEAP, U_NBLOCKS, U_STEPS_PER_CHUNK, U_NBL = 7, 8, 9, 10, 11
U_HEAP_BYTES, U_BSWAP = 12, 13
U_STAT = 14  # len(STATS) slots: the spead2 stat index of each
U_NSTATS = U_STAT + len(STATS)
U_NKNOWN = U_NSTATS + 1
MAX_KNOWN = 32
U_KNOWN = U_NKNOWN + 1
U_NMETA = U_KNOWN + MAX_KNOWN
MAX_META = 8
U_META_IDS = U_NMETA + 1
U_META_KIND = U_META_IDS + MAX_META  # 0 unset, 1 immediate, 2 addressed (8 bytes little-endian)
U_META_VALS = U_META_KIND + MAX_META
U_META_SEQ = U_META_VALS + MAX_META
U_DUP_W = U_META_SEQ + 1
U_DUP = U_DUP_W + 1
DUP_WINDOW = 64  # steps remembered for duplicate detection

(S_SEEN, S_META, S_START, S_END, S_FLAVOUR, S_UNKNOWN, S_SHAPE, S_TIME, S_CHAN,
 S_DUP) = range(len(STATS))


@dataclass
class PlaceParams:
    """The per-stream user-data array shared by a place callback and the Python side."""

    array: np.ndarray
    meta_ids: tuple[int, ...] = field(default=())

    @classmethod
    def build(
        cls, *, period: int, max_jump: int, block_lo: int, block_hi: int, start_channel: int,
        chans_per_heap: int, nblocks: int, steps_per_chunk: int, nbaseline: int,
        heap_bytes: int, byte_order: cbf_sdp.ByteOrder, stat_indices: list[int],
        known_items: tuple[int, ...], meta_ids: tuple[int, ...],
    ) -> PlaceParams:
        nslots = U_DUP + DUP_WINDOW * (block_hi - block_lo)
        u = np.zeros(nslots, np.int64)
        u[U_LEN], u[U_PERIOD], u[U_PHASE], u[U_MAXSTEP], u[U_MAXJUMP] = nslots, period, -1, -1, max_jump
        u[U_BLOCK_LO], u[U_BLOCK_HI], u[U_START_CHAN] = block_lo, block_hi, start_channel
        u[U_CHANS_PER_HEAP], u[U_NBLOCKS], u[U_STEPS_PER_CHUNK] = chans_per_heap, nblocks, steps_per_chunk
        u[U_NBL], u[U_HEAP_BYTES] = nbaseline, heap_bytes
        u[U_BSWAP] = 1 if byte_order == cbf_sdp.ByteOrder.LITTLE else 0
        u[U_STAT:U_STAT + len(STATS)] = stat_indices
        u[U_NSTATS] = max(stat_indices) + 1
        known = tuple(known_items) + SPEAD_CONTROL_ITEMS
        u[U_NKNOWN] = len(known)
        u[U_KNOWN:U_KNOWN + len(known)] = known
        u[U_NMETA] = len(meta_ids)
        u[U_META_IDS:U_META_IDS + len(meta_ids)] = meta_ids
        u[U_DUP_W] = DUP_WINDOW
        u[U_DUP:] = -1
        return cls(u, tuple(meta_ids))

    @property
    def phase(self) -> int:
        """Timestamp phase (ticks) learnt from the first data heap, or -1."""
        return int(self.array[U_PHASE])

    @property
    def meta_seq(self) -> int:
        return int(self.array[U_META_SEQ])

    def metadata(self) -> dict[int, tuple[int, int]]:
        """Item id -> (kind, raw value) of the metadata items seen so far (kind 1 immediate,
        2 addressed: the raw value holds the item's first 8 bytes, little-endian)."""
        out = {}
        for i, item_id in enumerate(self.meta_ids):
            kind = int(self.array[U_META_KIND + i])
            if kind:
                out[item_id] = (kind, int(self.array[U_META_VALS + i]))
        return out

    def low_level_callable(self, cfunc) -> scipy.LowLevelCallable:
        return scipy.LowLevelCallable(
            cfunc.ctypes, self.array.ctypes.data_as(ctypes.c_void_p),
            "void (void *, size_t, void *)")


@numba.njit(cache=True)
def _be64(p, off):
    v = np.uint64(0)
    for i in range(8):
        v = (v << np.uint64(8)) | np.uint64(p[off + i])
    return v


@numba.njit(cache=True)
def _le64(p, off):
    v = np.uint64(0)
    for i in range(7, -1, -1):
        v = (v << np.uint64(8)) | np.uint64(p[off + i])
    return np.int64(v)


@numba.njit(cache=True)
def _bswap32(v):
    v = v & 0xFFFFFFFF
    return ((v & 0xFF) << 24) | (((v >> 8) & 0xFF) << 16) | (((v >> 16) & 0xFF) << 8) | (v >> 24)


@numba.njit(cache=True)
def _u32(raw, bswap):
    if raw < 0:
        return np.int64(-1)
    if bswap:
        return np.int64(_bswap32(raw))
    return np.int64(raw)


@numba.njit(cache=True)
def _scan_packet(pkt, u, is_meta):
    """0 ok, 1 wrong flavour, 2 unknown item. For a metadata heap, store metadata values."""
    n = pkt.shape[0]
    if n < 8 or pkt[0] != 0x53 or pkt[1] != 4 or pkt[2] != 2 or pkt[3] != 6:
        return 1
    nitems = (np.int64(pkt[6]) << 8) | np.int64(pkt[7])
    if n < 8 + 8 * nitems:
        return 1
    payload_start = 8 + 8 * nitems
    payload_offset = np.int64(-1)
    stored = False
    for i in range(nitems):
        ptr = _be64(pkt, 8 + 8 * i)
        imm = (ptr >> np.uint64(63)) != 0
        item_id = np.int64((ptr >> np.uint64(48)) & np.uint64(0x7FFF))
        value = np.int64(ptr & np.uint64(0xFFFFFFFFFFFF))
        if item_id == 0x03:
            payload_offset = value
        known = False
        for k in range(u[U_NKNOWN]):
            if u[U_KNOWN + k] == item_id:
                known = True
        if not known:
            return 2
        if is_meta:
            for k in range(u[U_NMETA]):
                if u[U_META_IDS + k] == item_id:
                    if imm:
                        u[U_META_KIND + k] = 1
                        u[U_META_VALS + k] = value
                        stored = True
                    elif payload_offset == 0 and payload_start + value + 8 <= n:
                        u[U_META_KIND + k] = 2
                        u[U_META_VALS + k] = _le64(pkt, payload_start + value)
                        stored = True
    if stored:
        u[U_META_SEQ] += 1
    return 0


@numba.njit(cache=True)
def _prologue(d, u, stats, is_meta):
    """Common checks; returns True if the heap should be considered further."""
    stats[u[U_STAT + S_SEEN]] += 1
    pkt = numba.carray(intp_to_voidptr(d.packet), d.packet_size, dtype=np.uint8)
    code = _scan_packet(pkt, u, is_meta)
    if code == 1:
        stats[u[U_STAT + S_FLAVOUR]] += 1
        return False
    if code == 2:
        stats[u[U_STAT + S_UNKNOWN]] += 1
        return False
    return True


@numba.njit(cache=True)
def _place_step(d, u, stats, step, block):
    """Window, duplicate and placement of a heap of time step ``step``, block ``block``;
    True if placed."""
    maxstep = u[U_MAXSTEP]
    if maxstep >= 0 and (step > maxstep + u[U_MAXJUMP] or step < maxstep - u[U_MAXJUMP]):
        stats[u[U_STAT + S_TIME]] += 1
        return False
    if step > maxstep:
        u[U_MAXSTEP] = step
    slot = U_DUP + (step % u[U_DUP_W]) * (u[U_BLOCK_HI] - u[U_BLOCK_LO]) + (block - u[U_BLOCK_LO])
    if u[slot] == step:
        stats[u[U_STAT + S_DUP]] += 1
        return False
    u[slot] = step
    spc = u[U_STEPS_PER_CHUNK]
    heap_index = (step % spc) * u[U_NBLOCKS] + block
    d.chunk_id = step // spc
    d.heap_index = heap_index
    d.heap_offset = heap_index * u[U_HEAP_BYTES]
    return True


@numba.njit(cache=True)
def _count_control(u, stats, ctrl):
    if ctrl == spead2.CTRL_STREAM_START:
        stats[u[U_STAT + S_START]] += 1
    elif ctrl == spead2.CTRL_STREAM_STOP:
        stats[u[U_STAT + S_END]] += 1


_SIG = types.void(types.CPointer(chunk_place_data), types.size_t, types.CPointer(types.int64))


@numba.cfunc(_SIG, nopython=True, cache=True)
def place_vis(data_ptr, data_size, user_ptr):  # pragma: no cover - runs in spead2's thread
    u = numba.carray(user_ptr, 1)
    u = numba.carray(user_ptr, u[0])
    d = numba.carray(data_ptr, 1)
    items = numba.carray(intp_to_voidptr(d[0].items), 7, dtype=np.int64)
    stats = numba.carray(intp_to_voidptr(d[0].batch_stats), u[U_NSTATS], dtype=np.uint64)
    bswap = u[U_BSWAP]
    is_meta = items[2] < 0 or items[3] < 0
    if not _prologue(d[0], u, stats, is_meta):
        return
    if is_meta:
        stats[u[U_STAT + S_META]] += 1
        _count_control(u, stats, items[1])
        return
    if (_u32(items[5], bswap) != u[U_CHANS_PER_HEAP] or _u32(items[6], bswap) != u[U_NBL]
            or items[0] != u[U_HEAP_BYTES]):
        stats[u[U_STAT + S_SHAPE]] += 1
        return
    rel = _u32(items[4], bswap) - u[U_START_CHAN]
    cph = u[U_CHANS_PER_HEAP]
    block = rel // cph
    if rel < 0 or rel % cph != 0 or block < u[U_BLOCK_LO] or block >= u[U_BLOCK_HI]:
        stats[u[U_STAT + S_CHAN]] += 1
        return
    ticks = (_u32(items[2], bswap) << 32) | _u32(items[3], bswap)
    period = u[U_PERIOD]
    if u[U_PHASE] < 0:
        u[U_PHASE] = ticks % period
    rel_t = ticks - u[U_PHASE]
    step = (rel_t + period // 2) // period
    resid = rel_t - step * period
    if rel_t < 0 or resid > period // 8 or resid < -(period // 8):
        stats[u[U_STAT + S_TIME]] += 1
        return
    _place_step(d[0], u, stats, step, block)


@numba.cfunc(_SIG, nopython=True, cache=True)
def place_beam(data_ptr, data_size, user_ptr):  # pragma: no cover - runs in spead2's thread
    u = numba.carray(user_ptr, 1)
    u = numba.carray(user_ptr, u[0])
    d = numba.carray(data_ptr, 1)
    items = numba.carray(intp_to_voidptr(d[0].items), 5, dtype=np.int64)
    stats = numba.carray(intp_to_voidptr(d[0].batch_stats), u[U_NSTATS], dtype=np.uint64)
    is_meta = items[2] < 0
    if not _prologue(d[0], u, stats, is_meta):
        return
    if is_meta:
        stats[u[U_STAT + S_META]] += 1
        _count_control(u, stats, items[1])
        return
    if items[0] != u[U_HEAP_BYTES] or items[3] < 0 or items[4] < 0:
        stats[u[U_STAT + S_SHAPE]] += 1
        return
    rel = _u32(items[3], u[U_BSWAP]) - u[U_START_CHAN]
    cph = u[U_CHANS_PER_HEAP]
    block = rel // cph
    if rel < 0 or rel % cph != 0 or block < u[U_BLOCK_LO] or block >= u[U_BLOCK_HI]:
        stats[u[U_STAT + S_CHAN]] += 1
        return
    sample = items[2]
    if sample % u[U_PERIOD] != 0:
        stats[u[U_STAT + S_TIME]] += 1
        return
    if _place_step(d[0], u, stats, sample // u[U_PERIOD], block):
        scale = numba.carray(intp_to_voidptr(d[0].extra), 4, dtype=np.uint8)
        raw = items[4]
        for i in range(4):
            scale[i] = (raw >> (24 - 8 * i)) & 0xFF
        d[0].extra_offset = d[0].heap_index * 4
        d[0].extra_size = 4
