"""Ingest statistics come from one declaration, ``Stat``: spead2 statistics, callback slots and
counters."""

from __future__ import annotations

import numpy as np

from services.formats.cbf_sdp import ByteOrder
from services.ingest.counters import IngestCounters, Reject, Stat
from services.ingest.placement import DUP_WINDOW, SPEAD_CONTROL_ITEMS, PlaceParams


def test_every_statistic_is_one_documented_counter():
    described = {name: help_ for name, _, help_ in IngestCounters.describe()}
    assert {stat.counter for stat in Stat} <= set(described)
    rejects = [stat for stat in Stat if stat.reason is not None]
    assert [r.value for r in Reject] == [s.reason for s in rejects]
    assert {n for n in described if n.startswith("heaps_rejected_")} == {s.counter for s in rejects}
    assert Stat.REJECTED_BAD_VIS_SIZE.counter == "heaps_rejected_bad_vis_size_total"
    assert Stat.REJECTED_BAD_VIS_SIZE.reject is Reject("bad_vis_size")
    assert "heaps_rejected_bad_shape_total" not in described  # no catch-all reason
    assert Stat.HEAPS_RECEIVED.counter == "heaps_received_total"
    assert Stat.END_HEAPS.stat_name == "end_heaps"
    assert [int(s) for s in Stat] == list(range(len(Stat)))  # slots of the callback's table


def test_counters_of_each_reason_are_separate():
    c = IngestCounters()
    c.heaps_rejected.add(Stat.REJECTED_WRONG_CHANNEL.reject, 3)
    snap = c.snapshot()
    assert snap["heaps_rejected_wrong_channel_total"] == 3
    assert sum(v for k, v in snap.items() if k.startswith("heaps_rejected_")) == 3


def test_parameter_record_holds_named_fields():
    stat_indices = {stat: 20 + 2 * int(stat) for stat in Stat}
    params = PlaceParams.build(
        period=1 << 32, max_jump=100, block_lo=2, block_hi=4, start_channel=64,
        chans_per_heap=16, nblocks=4, steps_per_chunk=3, nbaseline=10, heap_bytes=5440,
        byte_order=ByteOrder.LITTLE, stat_indices=stat_indices, known_items=(0x6000, 0x6001),
        meta_ids=(0x6008,))
    r = params.record[0]
    assert r["stat_index"].tolist() == [stat_indices[s] for s in Stat]
    assert r["nstats"] == max(stat_indices.values()) + 1
    assert (r["block_lo"], r["block_hi"], r["start_channel"]) == (2, 4, 64)
    assert (r["heap_bytes"], r["bswap"], r["period"]) == (5440, 1, 1 << 32)
    assert r["known"][:r["nknown"]].tolist() == [0x6000, 0x6001, *SPEAD_CONTROL_ITEMS]
    assert r["meta_ids"][:r["nmeta"]].tolist() == [0x6008]
    assert r["dup_addr"] == params.dup.ctypes.data and r["dup_len"] == DUP_WINDOW * 2
    assert (params.dup == -1).all() and params.dup.dtype == np.int64
    assert params.phase == -1 and params.metadata() == {}
