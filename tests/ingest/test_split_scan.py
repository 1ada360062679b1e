"""A forged end heap in the middle of a scan (issue 13 item 18): the scan's data after it
become a second transfer, and that split is counted."""

from __future__ import annotations

import threading
import time

import numpy as np
import spead2
import spead2.send

from services.formats import cbf_sdp
from services.ingest.assemble import make_assembler
from services.ingest.receiver import ChunkReceiver, end_packets
from tests.ingest.fakes import InprocTransport, MemorySink
from tests.ingest.helpers import ingest_config, settings_of
from tests.ingest.test_bad_input import CPS, NBL, heap, make_ig, payload


def test_forged_end_heap_split_is_counted():
    cfg = ingest_config(DATA_KEY="a0", WEIGHTS_KEY="a2", PORT_START=1, NSTREAMS=1, NANT=2,
                        NCHAN=CPS, CHANNELS_PER_STREAM=CPS, INT_TIME=1, SCAN_ID=31,
                        STREAM_TIMEOUT_S=30)
    queue = spead2.InprocQueue()
    sink = MemorySink(CPS * NBL * 32, CPS * NBL * 2)
    receiver = ChunkReceiver(make_assembler(cfg, sink.data_bufsz), settings_of(cfg),
                             InprocTransport([queue]))
    stream = spead2.send.InprocStream(spead2.ThreadPool(), [queue])
    ig = make_ig()
    results = []

    def one_transfer() -> threading.Thread:
        t = threading.Thread(target=lambda: results.append(
            receiver.run_transfer(sink, threading.Event())))
        t.start()
        time.sleep(0.3)  # the group is listening
        return t

    rx = one_transfer()
    stream.send_heap(ig.get_start())
    for dump in (0, 1):
        stream.send_heap(heap(ig, dump, 0))
    forged = end_packets()
    assert len(forged) == 1 and len(forged[0]) < 64  # one small datagram
    queue.add_packet(forged[0])
    rx.join(20)
    assert not rx.is_alive()
    c = receiver.counters
    assert c.transfers_split_total == 0  # nothing to tell yet: a scan may end like this
    rx = one_transfer()
    for dump in (2, 3):
        stream.send_heap(heap(ig, dump, 0))
    stream.send_heap(ig.get_end())
    rx.join(20)
    assert not rx.is_alive()
    assert [(r.scan_id, r.blocks, r.reason) for r in results] == [(31, 2, "end"), (31, 2, "end")]
    assert c.transfers_split_total == 1
    assert c.transfers_missed_start_total == 1
    assert c.transfers_total == 2
    second = sink.transfers[1]
    for k, dump in enumerate((2, 3)):  # the rest of the scan is intact
        vis = second.data[k].view(np.complex64).reshape(CPS, NBL, 4)
        np.testing.assert_array_equal(vis, payload(dump, 0)["VIS"])
    assert second.data_header.get_float("TIME0_UNIX") == sink.transfers[0].data_header.get_float(
        "TIME0_UNIX") + 2
    queue.stop()
    assert cbf_sdp.VIS_BYTES == 34
