"""Compiled spead2 place callbacks (numba ``cfunc``) for the two stream profiles.

spead2 calls the callback from its receive thread once per heap, with the immediate items
listed in :data:`VIS_ITEMS` / :data:`BEAM_ITEMS` and the heap's first packet. The callback:

* checks the packet flavour and that every item id is known (``bad_flavour``, ``unknown_item``);
* treats a heap without a time item as a metadata/start heap: it copies the values of the
  metadata items (:attr:`PlaceParams.meta_ids`) into the parameter record, where the Python side
  reads them, counts it, and discards it (``chunk_id = -1``);
* validates a data heap (counts when sent, the visibilities' size, channel range of this
  port, timestamp alignment and jump, duplicates) and maps it to ``chunk_id`` (a ring block),
  ``heap_index`` and ``heap_offset``. A visibility heap may carry descriptors and addressed
  items besides the visibilities (as the SKA CBF-SDP emulator sends them): its whole payload
  lands in a slot of ``slot_bytes``, and the visibilities' address in that payload (from the
  first packet's item pointers) and the scan id's go into the chunk's ``extra``
  (:data:`VIS_EXTRA_BYTES`), where the copy into the ring finds them.

Every outcome increments a spead2 custom stream statistic (:class:`~services.ingest.counters.Stat`);
no Python runs per heap. Each stream (port) has its own :class:`PlaceParams` record (fields
named in :data:`PARAMS_DTYPE`), so the callback is single-threaded per record.
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import scipy
import spead2
from numba import types
from spead2.numba import intp_to_voidptr
from spead2.recv.numba import chunk_place_data

from services.formats import cbf_sdp, pst
from services.ingest.counters import Stat


class VisItem(enum.IntEnum):
    """Position of each immediate item in the visibility callback's ``items`` array."""

    HEAP_LENGTH = 0
    STREAM_CTRL = 1
    TIMESTAMP_COUNT = 2
    TIMESTAMP_FRACTION = 3
    CHANNEL_ID = 4
    CHANNEL_COUNT = 5
    BASELINE_COUNT = 6


class BeamItem(enum.IntEnum):
    """Position of each immediate item in the beam callback's ``items`` array."""

    HEAP_LENGTH = 0
    STREAM_CTRL = 1
    SAMPLE_COUNT = 2
    FIRST_CHANNEL = 3
    SCALE = 4


#: Immediate items passed to the visibility callback, in :class:`VisItem` order.
VIS_ITEMS = (
    spead2.HEAP_LENGTH_ID, spead2.STREAM_CTRL_ID, cbf_sdp.TIMESTAMP_COUNT,
    cbf_sdp.TIMESTAMP_FRACTION, cbf_sdp.CHANNEL_ID, cbf_sdp.CHANNEL_COUNT, cbf_sdp.BASELINE_COUNT,
)
#: Immediate items passed to the beam callback, in :class:`BeamItem` order.
BEAM_ITEMS = (spead2.HEAP_LENGTH_ID, spead2.STREAM_CTRL_ID, pst.BEAM_SAMPLE_COUNT,
              pst.BEAM_FIRST_CHANNEL, pst.BEAM_SCALE)
N_VIS_ITEMS, N_BEAM_ITEMS = len(VisItem), len(BeamItem)
assert len(VIS_ITEMS) == N_VIS_ITEMS and len(BEAM_ITEMS) == N_BEAM_ITEMS
#: Bytes of chunk ``extra`` per beam heap: the packet scale (float32, little-endian).
BEAM_EXTRA_BYTES = 4
#: Bytes of chunk ``extra`` per visibility heap: two int64, the payload addresses of the
#: visibilities and of the scan id (-1: not in the heap).
VIS_EXTRA_BYTES = 16
#: SPEAD's own items (padding, heap cnt/length, payload offset/length, descriptor, stream control).
SPEAD_CONTROL_ITEMS = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06)

MAX_KNOWN = 32  # item ids a stream may carry
MAX_META = 8  # metadata items remembered
DUP_WINDOW = 64  # time steps remembered for duplicate detection

#: The place callbacks' parameters and state: one record per stream, read by field name.
PARAMS_DTYPE = np.dtype([
    ("period", np.int64),  # vis: ticks per dump; beam: samples per PST heap
    ("phase", np.int64),  # vis: timestamp phase (ticks) learnt from the first data heap, or -1
    ("max_step", np.int64),  # newest time step placed, or -1
    ("max_jump", np.int64),  # time steps a heap may be away from max_step
    ("block_lo", np.int64),  # channel blocks [block_lo, block_hi) are this stream's
    ("block_hi", np.int64),
    ("start_channel", np.int64),
    ("chans_per_heap", np.int64),
    ("nblocks", np.int64),  # channel blocks (heaps) per time step, all streams
    ("steps_per_chunk", np.int64),
    ("nbaseline", np.int64),
    ("heap_bytes", np.int64),  # vis: bytes of the visibility item; beam: heap length
    ("slot_bytes", np.int64),  # chunk bytes per heap (vis: room for descriptors etc. too)
    ("data_item", np.int64),  # vis: the item placed (correlator_output_data), else -1
    ("scan_item", np.int64),  # vis: the addressed scan id item, else -1
    ("cur_data_off", np.int64),  # scratch, the heap being placed: data item address or -1
    ("cur_data_len", np.int64),  # its length (up to the next address or the heap's end)
    ("cur_scan_off", np.int64),  # address of the scan id item, or -1
    ("cur_others", np.int64),  # other addressed items (descriptors, metadata) in the heap
    ("bswap", np.int64),  # 1: 32-bit immediates are byte-swapped (IMMEDIATE_BYTE_ORDER little)
    ("stat_index", np.int64, (len(Stat),)),  # spead2 statistic index of each Stat
    ("nstats", np.int64),  # statistics of the stream (the batch_stats length)
    ("nknown", np.int64),
    ("known", np.int64, (MAX_KNOWN,)),  # item ids accepted
    ("nmeta", np.int64),
    ("meta_ids", np.int64, (MAX_META,)),  # metadata items whose values are kept
    ("meta_kind", np.int64, (MAX_META,)),  # 0 unset, 1 immediate, 2 addressed (8 bytes, LE)
    ("meta_vals", np.int64, (MAX_META,)),
    ("meta_seq", np.int64),  # metadata heaps stored so far
    ("dup_len", np.int64),  # the duplicate table: DUP_WINDOW steps x this stream's blocks
    ("dup_addr", np.intp),
], align=True)
PARAMS_RECORD = numba.from_dtype(PARAMS_DTYPE)


@dataclass
class PlaceParams:
    """The per-stream parameter record shared by a place callback and the Python side."""

    record: np.ndarray  # shape (1,), PARAMS_DTYPE
    dup: np.ndarray  # the duplicate table the record points to (kept alive here)
    meta_ids: tuple[int, ...] = field(default=())

    @classmethod
    def build(
        cls, *, period: int, max_jump: int, block_lo: int, block_hi: int, start_channel: int,
        chans_per_heap: int, nblocks: int, steps_per_chunk: int, nbaseline: int,
        heap_bytes: int, byte_order: cbf_sdp.ByteOrder, stat_indices: dict[Stat, int],
        known_items: tuple[int, ...], meta_ids: tuple[int, ...], slot_bytes: int = 0,
        data_item: int = -1, scan_item: int = -1,
    ) -> PlaceParams:
        known = tuple(known_items) + SPEAD_CONTROL_ITEMS
        if len(known) > MAX_KNOWN or len(meta_ids) > MAX_META:
            raise ValueError(f"at most {MAX_KNOWN} known items and {MAX_META} metadata items")
        dup = np.full(DUP_WINDOW * (block_hi - block_lo), -1, np.int64)
        rec = np.zeros(1, PARAMS_DTYPE)
        r = rec[0]
        r["period"], r["phase"], r["max_step"], r["max_jump"] = period, -1, -1, max_jump
        r["block_lo"], r["block_hi"], r["start_channel"] = block_lo, block_hi, start_channel
        r["chans_per_heap"], r["nblocks"] = chans_per_heap, nblocks
        r["steps_per_chunk"], r["nbaseline"] = steps_per_chunk, nbaseline
        r["heap_bytes"] = heap_bytes
        r["slot_bytes"] = slot_bytes or heap_bytes
        r["data_item"], r["scan_item"] = data_item, scan_item
        r["bswap"] = 1 if byte_order == cbf_sdp.ByteOrder.LITTLE else 0
        r["stat_index"] = [stat_indices[stat] for stat in Stat]
        r["nstats"] = max(stat_indices.values()) + 1
        r["nknown"] = len(known)
        r["known"][:len(known)] = known
        r["nmeta"] = len(meta_ids)
        r["meta_ids"][:len(meta_ids)] = meta_ids
        r["dup_len"], r["dup_addr"] = dup.size, dup.ctypes.data
        return cls(rec, dup, tuple(meta_ids))

    @property
    def phase(self) -> int:
        """Timestamp phase (ticks) learnt from the first data heap, or -1."""
        return int(self.record[0]["phase"])

    @property
    def meta_seq(self) -> int:
        return int(self.record[0]["meta_seq"])

    def metadata(self) -> dict[int, tuple[int, int]]:
        """Item id -> (kind, raw value) of the metadata items seen so far (kind 1 immediate,
        2 addressed: the raw value holds the item's first 8 bytes, little-endian)."""
        r = self.record[0]
        out = {}
        for i, item_id in enumerate(self.meta_ids):
            kind = int(r["meta_kind"][i])
            if kind:
                out[item_id] = (kind, int(r["meta_vals"][i]))
        return out

    def low_level_callable(self, cfunc: Any) -> scipy.LowLevelCallable:
        return scipy.LowLevelCallable(
            cfunc.ctypes, self.record.ctypes.data_as(ctypes.c_void_p),
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
def _count(p, stats, stat):
    stats[p.stat_index[stat]] += 1


@numba.njit(cache=True)
def _scan_packet(pkt, p, is_meta):
    """0 ok, 1 wrong flavour, 2 unknown item. For a metadata heap, store metadata values; for
    a data heap, find the data item's address and length and the scan id's address."""
    n = pkt.shape[0]
    if n < 8 or pkt[0] != 0x53 or pkt[1] != 4 or pkt[2] != 2 or pkt[3] != 6:
        return 1
    nitems = (np.int64(pkt[6]) << 8) | np.int64(pkt[7])
    if n < 8 + 8 * nitems:
        return 1
    payload_start = 8 + 8 * nitems
    payload_offset = np.int64(-1)
    heap_length = np.int64(-1)
    data_off = np.int64(-1)
    scan_off = np.int64(-1)
    others = np.int64(0)
    stored = False
    for i in range(nitems):
        ptr = _be64(pkt, 8 + 8 * i)
        imm = (ptr >> np.uint64(63)) != 0
        item_id = np.int64((ptr >> np.uint64(48)) & np.uint64(0x7FFF))
        value = np.int64(ptr & np.uint64(0xFFFFFFFFFFFF))
        if item_id == 0x03:
            payload_offset = value
        elif item_id == 0x02:
            heap_length = value
        known = False
        for k in range(p.nknown):
            if p.known[k] == item_id:
                known = True
        if not known:
            return 2
        if not imm and item_id != 0:
            if item_id == p.data_item:
                data_off = value
            elif item_id == p.scan_item:
                scan_off = value
                others += 1
            else:
                others += 1
        if is_meta:
            for k in range(p.nmeta):
                if p.meta_ids[k] == item_id:
                    if imm:
                        p.meta_kind[k] = 1
                        p.meta_vals[k] = value
                        stored = True
                    elif payload_offset == 0 and payload_start + value + 8 <= n:
                        p.meta_kind[k] = 2
                        p.meta_vals[k] = _le64(pkt, payload_start + value)
                        stored = True
    if stored:
        p.meta_seq += 1
    data_end = heap_length
    if data_off >= 0:
        for i in range(nitems):  # the data item ends where the next addressed item starts
            ptr = _be64(pkt, 8 + 8 * i)
            if (ptr >> np.uint64(63)) == 0:
                item_id = np.int64((ptr >> np.uint64(48)) & np.uint64(0x7FFF))
                addr = np.int64(ptr & np.uint64(0xFFFFFFFFFFFF))
                if item_id != 0 and data_off < addr < data_end:
                    data_end = addr
    p.cur_data_off = data_off
    p.cur_data_len = data_end - data_off if data_off >= 0 and data_end >= 0 else -1
    p.cur_scan_off = scan_off
    p.cur_others = others
    return 0


@numba.njit(cache=True)
def _prologue(d, p, stats, is_meta):
    """Common checks; returns True if the heap should be considered further."""
    _count(p, stats, Stat.HEAPS_RECEIVED)
    pkt = numba.carray(intp_to_voidptr(d.packet), d.packet_size, dtype=np.uint8)
    code = _scan_packet(pkt, p, is_meta)
    if code == 1:
        _count(p, stats, Stat.REJECTED_BAD_FLAVOUR)
        return False
    if code == 2:
        _count(p, stats, Stat.REJECTED_UNKNOWN_ITEM)
        return False
    return True


@numba.njit(cache=True)
def _place_step(d, p, stats, step, block):
    """Window, duplicate and placement of a heap of time step ``step``, block ``block``;
    True if placed."""
    max_step = p.max_step
    if max_step >= 0 and (step > max_step + p.max_jump or step < max_step - p.max_jump):
        _count(p, stats, Stat.REJECTED_BAD_TIMESTAMP)
        return False
    if step > max_step:
        p.max_step = step
    dup = numba.carray(intp_to_voidptr(p.dup_addr), p.dup_len, dtype=np.int64)
    slot = (step % DUP_WINDOW) * (p.block_hi - p.block_lo) + (block - p.block_lo)
    if dup[slot] == step:
        _count(p, stats, Stat.HEAPS_DUPLICATE)
        return False
    dup[slot] = step
    spc = p.steps_per_chunk
    heap_index = (step % spc) * p.nblocks + block
    d.chunk_id = step // spc
    d.heap_index = heap_index
    d.heap_offset = heap_index * p.slot_bytes
    return True


@numba.njit(cache=True)
def _count_control(p, stats, ctrl):
    _count(p, stats, Stat.METADATA_HEAPS)
    if ctrl == spead2.CTRL_STREAM_START:
        _count(p, stats, Stat.START_HEAPS)
    elif ctrl == spead2.CTRL_STREAM_STOP:
        _count(p, stats, Stat.END_HEAPS)


@numba.njit(cache=True)
def _block_of(p, stats, channel):
    """The channel block of a heap's first channel, or -1 (counted) if not this stream's."""
    rel = channel - p.start_channel
    cph = p.chans_per_heap
    block = rel // cph
    if rel < 0 or rel % cph != 0 or block < p.block_lo or block >= p.block_hi:
        _count(p, stats, Stat.REJECTED_WRONG_CHANNEL)
        return -1
    return block


_SIG = types.void(types.CPointer(chunk_place_data), types.size_t, types.CPointer(PARAMS_RECORD))


@numba.cfunc(_SIG, cache=True)
def place_vis(data_ptr, data_size, params_ptr):  # pragma: no cover - runs in spead2's thread
    p = numba.carray(params_ptr, 1)[0]
    d = numba.carray(data_ptr, 1)[0]
    items = numba.carray(intp_to_voidptr(d.items), N_VIS_ITEMS, dtype=np.int64)
    stats = numba.carray(intp_to_voidptr(d.batch_stats), p.nstats, dtype=np.uint64)
    bswap = p.bswap
    is_meta = (items[VisItem.TIMESTAMP_COUNT] < 0 or items[VisItem.TIMESTAMP_FRACTION] < 0
               or items[VisItem.STREAM_CTRL] >= 0)
    if not _prologue(d, p, stats, is_meta):
        return
    if is_meta:
        _count_control(p, stats, items[VisItem.STREAM_CTRL])
        return
    # channel and baseline counts are checked when sent (a sender may send them only once)
    chan_count = items[VisItem.CHANNEL_COUNT]
    if chan_count >= 0 and _u32(chan_count, bswap) != p.chans_per_heap:
        _count(p, stats, Stat.REJECTED_BAD_CHANNEL_COUNT)
        return
    nbl = items[VisItem.BASELINE_COUNT]
    if nbl >= 0 and _u32(nbl, bswap) != p.nbaseline:
        _count(p, stats, Stat.REJECTED_BAD_BASELINE_COUNT)
        return
    # without a channel id (a sender may send it only once), a stream of one channel block
    # can only be carrying that block
    single = p.block_hi - p.block_lo == 1
    if p.cur_data_off < 0 or (items[VisItem.CHANNEL_ID] < 0 and not single):
        _count(p, stats, Stat.REJECTED_MISSING_ITEM)
        return
    if p.cur_data_len != p.heap_bytes:
        _count(p, stats, Stat.REJECTED_BAD_VIS_SIZE)
        return
    if items[VisItem.HEAP_LENGTH] < 0 or items[VisItem.HEAP_LENGTH] > p.slot_bytes:
        _count(p, stats, Stat.REJECTED_HEAP_TOO_LARGE)
        return
    if items[VisItem.CHANNEL_ID] < 0:
        block = p.block_lo
    else:
        block = _block_of(p, stats, _u32(items[VisItem.CHANNEL_ID], bswap))
        if block < 0:
            return
    ticks = ((_u32(items[VisItem.TIMESTAMP_COUNT], bswap) << 32)
             | _u32(items[VisItem.TIMESTAMP_FRACTION], bswap))
    period = p.period
    if p.phase < 0:
        p.phase = ticks % period
    rel_t = ticks - p.phase
    step = (rel_t + period // 2) // period
    resid = rel_t - step * period
    if rel_t < 0 or resid > period // 8 or resid < -(period // 8):
        _count(p, stats, Stat.REJECTED_BAD_TIMESTAMP)
        return
    if _place_step(d, p, stats, step, block):
        if p.cur_others > 0:
            _count(p, stats, Stat.DATA_HEAPS_WITH_METADATA)
        extra = numba.carray(intp_to_voidptr(d.extra), VIS_EXTRA_BYTES // 8, dtype=np.int64)
        extra[0] = p.cur_data_off
        extra[1] = p.cur_scan_off
        d.extra_offset = d.heap_index * VIS_EXTRA_BYTES
        d.extra_size = VIS_EXTRA_BYTES


@numba.cfunc(_SIG, cache=True)
def place_beam(data_ptr, data_size, params_ptr):  # pragma: no cover - runs in spead2's thread
    p = numba.carray(params_ptr, 1)[0]
    d = numba.carray(data_ptr, 1)[0]
    items = numba.carray(intp_to_voidptr(d.items), N_BEAM_ITEMS, dtype=np.int64)
    stats = numba.carray(intp_to_voidptr(d.batch_stats), p.nstats, dtype=np.uint64)
    is_meta = items[BeamItem.SAMPLE_COUNT] < 0
    if not _prologue(d, p, stats, is_meta):
        return
    if is_meta:
        _count_control(p, stats, items[BeamItem.STREAM_CTRL])
        return
    if items[BeamItem.FIRST_CHANNEL] < 0 or items[BeamItem.SCALE] < 0:
        _count(p, stats, Stat.REJECTED_MISSING_ITEM)
        return
    if items[BeamItem.HEAP_LENGTH] != p.heap_bytes:
        _count(p, stats, Stat.REJECTED_BAD_HEAP_LENGTH)
        return
    block = _block_of(p, stats, _u32(items[BeamItem.FIRST_CHANNEL], p.bswap))
    if block < 0:
        return
    sample = items[BeamItem.SAMPLE_COUNT]
    if sample % p.period != 0:
        _count(p, stats, Stat.REJECTED_BAD_TIMESTAMP)
        return
    if _place_step(d, p, stats, sample // p.period, block):
        scale = numba.carray(intp_to_voidptr(d.extra), BEAM_EXTRA_BYTES, dtype=np.uint8)
        raw = items[BeamItem.SCALE]
        for i in range(BEAM_EXTRA_BYTES):
            scale[i] = (raw >> (24 - 8 * i)) & 0xFF
        d.extra_offset = d.heap_index * BEAM_EXTRA_BYTES
        d.extra_size = BEAM_EXTRA_BYTES
