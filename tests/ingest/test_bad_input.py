"""Bad input through an in-process spead2 transport: every case counted, no block corrupted."""

from __future__ import annotations

import threading

import numpy as np
import spead2
import spead2.send

from services.formats import cbf_sdp
from services.ingest.assemble import make_assembler
from services.ingest.receiver import ChunkReceiver
from tests.ingest.fakes import InprocTransport, MemorySink
from tests.ingest.helpers import ingest_config, settings_of

NANT, NCHAN, CPS = 2, 4, 2
NBL = 3
T0 = 1_700_000_000


def make_ig(flavour=cbf_sdp.FLAVOUR, shape=(CPS, NBL), extra_item=False):
    ig = spead2.send.ItemGroup(flavour=flavour)
    for item_id, name in ((cbf_sdp.TIMESTAMP_COUNT, "count"), (cbf_sdp.TIMESTAMP_FRACTION, "frac"),
                          (cbf_sdp.CHANNEL_ID, "chan"), (cbf_sdp.CHANNEL_COUNT, "nchan"),
                          (cbf_sdp.BASELINE_COUNT, "nbl")):
        ig.add_item(item_id, name, name, shape=(), format=[("u", flavour.heap_address_bits)])
    if extra_item:
        ig.add_item(0x6500, "mystery", "unknown", shape=(), format=[("u", 48)])
    ig.add_item(cbf_sdp.CORRELATOR_OUTPUT_DATA, "data", "data", shape=shape,
                dtype=cbf_sdp.VIS_DTYPE)
    return ig


def payload(dump: int, block: int, shape=(CPS, NBL)) -> np.ndarray:
    p = np.zeros(shape, cbf_sdp.VIS_DTYPE)
    p["VIS"] = (dump * 100 + block * 10 + np.arange(p.size).reshape(shape))[..., None]
    p["FD"] = 255
    p["TCI"] = 3
    return p


def heap(ig, dump, block, ts=None, chan=None, nchan=CPS, shape=(CPS, NBL), **extra):
    values = {"count": T0 + dump if ts is None else ts[0], "frac": 0 if ts is None else ts[1],
              "chan": block * CPS if chan is None else chan, "nchan": nchan, "nbl": NBL,
              "data": payload(dump, block, shape), **extra}
    for name, value in values.items():
        ig[name].value = value
    h = ig.get_heap(descriptors="none", data="all")
    h.repeat_pointers = True
    return h


def test_bad_input_is_counted_and_never_corrupts(key_factory):
    cfg = ingest_config(DATA_KEY=key_factory(), WEIGHTS_KEY=key_factory(), PORT_START=1,
                        NSTREAMS=2, NANT=NANT, NCHAN=NCHAN, CHANNELS_PER_STREAM=CPS, INT_TIME=1,
                        MAX_TIME_JUMP=1000, STREAM_TIMEOUT_S=30, MAX_HEAP_METADATA_BYTES=256)
    queues = [spead2.InprocQueue(), spead2.InprocQueue()]
    sink = MemorySink(NCHAN * NBL * 32, NCHAN * NBL * 2)
    receiver = ChunkReceiver(make_assembler(cfg, sink.data_bufsz), settings_of(cfg),
                             InprocTransport(queues))
    stop = threading.Event()
    result = {}
    rx = threading.Thread(target=lambda: result.setdefault("r", receiver.run_transfer(sink, stop)))
    rx.start()
    pool = spead2.ThreadPool()
    streams = [spead2.send.InprocStream(pool, [q]) for q in queues]
    ig = make_ig()
    good = [(d, b) for d in range(4) for b in range(2) if (d, b) != (2, 1)]
    for d, b in good:
        streams[b].send_heap(heap(ig, d, b))
    # every kind of bad input, on stream 0, after dump 0 is known
    queues[0].add_packet(b"not a SPEAD packet at all")  # garbage
    streams[0].send_heap(heap(ig, 1, 0))  # duplicate of (1, 0)
    streams[0].send_heap(heap(make_ig(shape=(CPS + 1, NBL)), 2, 0, nchan=CPS + 1,
                              shape=(CPS + 1, NBL)))  # bad shape
    streams[0].send_heap(heap(ig, 3, 1))  # channel block of stream 1 on stream 0: wrong channel
    streams[0].send_heap(heap(ig, 3, 0, chan=1))  # misaligned channel id
    streams[0].send_heap(heap(ig, 0, 0, ts=(T0 + 10**6, 0)))  # far from the window
    streams[0].send_heap(heap(ig, 0, 0, ts=(T0 + 1, 1 << 31)))  # half a dump off: misaligned
    streams[0].send_heap(heap(make_ig(extra_item=True), 3, 0, mystery=5))  # unknown item
    streams[0].send_heap(heap(ig, 3, 0, nbl=NBL + 1))  # baseline count
    streams[0].send_heap(heap(make_ig(shape=(CPS, NBL + 1)), 3, 0,
                              shape=(CPS, NBL + 1)))  # counts right, visibilities too long
    no_data = make_ig()
    for name, value in (("count", T0 + 3), ("frac", 0), ("chan", 0), ("nchan", CPS), ("nbl", NBL)):
        no_data[name].value = value
    streams[0].send_heap(no_data.get_heap(descriptors="all", data="all"))  # no visibilities
    heap(ig, 3, 0)
    streams[0].send_heap(ig.get_heap(descriptors="all", data="all"))  # > 256 B of descriptors
    flavour_40 = spead2.Flavour(4, 64, 40, 0)
    streams[0].send_heap(heap(make_ig(flavour=flavour_40), 3, 0))  # wrong flavour
    for s in streams:
        s.send_heap(ig.get_end())
    rx.join(20)
    assert not rx.is_alive()
    c = receiver.counters
    assert result["r"].reason == "end"
    assert c.heaps_complete_total == len(good) and c.heaps_lost_total == 1
    assert c.heaps_duplicate_total == 1
    assert c.datagrams_rejected_total >= 1
    snap = c.snapshot()
    assert snap["heaps_rejected_bad_channel_count_total"] == 1
    assert snap["heaps_rejected_bad_baseline_count_total"] == 1
    assert snap["heaps_rejected_bad_vis_size_total"] == 1
    assert snap["heaps_rejected_missing_item_total"] == 1
    assert snap["heaps_rejected_heap_too_large_total"] == 1
    assert snap["heaps_rejected_bad_heap_length_total"] == 0  # beams only
    assert snap["heaps_rejected_wrong_channel_total"] == 2
    assert snap["heaps_rejected_bad_timestamp_total"] == 2
    assert snap["heaps_rejected_unknown_item_total"] == 1
    assert snap["heaps_rejected_bad_flavour_total"] == 1
    (transfer,) = sink.transfers
    assert transfer.ended and len(transfer.data) == 4
    for d in range(4):
        vis = transfer.data[d].view(np.complex64).reshape(2, CPS, NBL, 4)
        wts = transfer.weights[d].view(cbf_sdp.WEIGHTS_DTYPE).reshape(2, CPS, NBL)
        for b in range(2):
            if (d, b) == (2, 1):
                assert not vis[b].any() and not wts[b]["FD"].any() and not wts[b]["TCI"].any()
            else:
                exp = payload(d, b)
                np.testing.assert_array_equal(vis[b], exp["VIS"])
                np.testing.assert_array_equal(wts[b]["FD"], 255)
                np.testing.assert_array_equal(wts[b]["TCI"], 3)


def test_stream_without_end_heap_times_out(key_factory):
    cfg = ingest_config(DATA_KEY=key_factory(), WEIGHTS_KEY=key_factory(), PORT_START=1,
                        NSTREAMS=1, NANT=NANT, NCHAN=CPS, CHANNELS_PER_STREAM=CPS, INT_TIME=1,
                        STREAM_TIMEOUT_S=0.5)
    queue = spead2.InprocQueue()
    sink = MemorySink(CPS * NBL * 32, CPS * NBL * 2)
    receiver = ChunkReceiver(make_assembler(cfg, sink.data_bufsz), settings_of(cfg),
                             InprocTransport([queue]))
    stream = spead2.send.InprocStream(spead2.ThreadPool(), [queue])
    ig = make_ig()
    for d in range(3):
        stream.send_heap(heap(ig, d, 0))
    seen: list[dict[str, float]] = []
    result = receiver.run_transfer(sink, threading.Event(),
                                   lambda: seen.append(receiver.counters.snapshot()))
    assert result is not None and result.reason == "timeout" and result.blocks == 3
    c = receiver.counters
    assert c.stream_timeouts_total == 1
    assert c.end_heaps_injected_total == 1  # the one ingest sent itself...
    assert c.end_heaps_total == 1  # ...is an end heap the stream saw, counted once
    seen.append(c.snapshot())
    for before, after in zip(seen, seen[1:], strict=False):  # a total never goes down
        grown = [after[k] >= v for k, v in before.items() if k.endswith("_total")]
        assert all(grown), (before, after)
    assert sink.transfers[0].ended
    queue.stop()
