"""Multicast: two receivers (as two hosts would) join one group and each get the whole stream."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ringbuf import RingLayout, RingPairReader
from services.common.processes import ProcessGroup, free_udp_ports, options, run_tool, tool
from services.demo.vis_flow import VisParams, simulate
from services.senders.emu_send import read_ms

GROUP = "239.10.0.77"
pytestmark = pytest.mark.timeout(180)


def read_blocks(keys, out):
    with RingPairReader(*keys, timeout=60) as reader:
        out.extend(seg.data.copy() for seg in reader.open_transfer())


def test_two_receivers_take_the_same_multicast_stream(tmp_path):
    params = VisParams(nant=6, nchan=8, ntime=5, channels_per_stream=4, image=False)
    model = tmp_path / "sky.ms"
    simulate(model, params)
    nbl, port = params.nbaseline, free_udp_ports(2)
    received = [[], []]
    with ProcessGroup(tmp_path) as group:
        readers = []
        for i in range(2):
            keys = group.ring_pair(RingLayout(8, params.nchan * nbl * 32),
                                   RingLayout(8, params.nchan * nbl * 2))
            sock = group.socket_path(f"ingest{i}")
            settings = options({
                "PROFILE": "vis", "DATA_KEY": keys[0], "WEIGHTS_KEY": keys[1], "MCAST_GROUP": GROUP,
                "MCAST_INTERFACE": "127.0.0.1", "PORT_START": port, "NSTREAMS": 2,
                "NANT": params.nant, "NCHAN": params.nchan, "CHANNELS_PER_STREAM": 4,
                "INT_TIME": 1.0})
            group.start(f"ingest{i}",
                        [tool("svc-ingest"), "--autonomous", "--socket", sock, *settings], sock)
            readers.append(threading.Thread(target=read_blocks, args=(keys, received[i])))
            readers[-1].start()
        run_tool([tool("emu-send"), model, *options({
            "transmission.target_host": GROUP, "transmission.interface_address": "127.0.0.1",
            "transmission.target_port_start": port, "transmission.channels_per_stream": 4,
            "transmission.time_interval": 0.05})], timeout=60)
        for reader in readers:
            reader.join(60)
        counters = [group.status(f"ingest{i}")["counters"] for i in range(2)]
    expected = read_ms(str(model), 0, 0, 0).payload["VIS"]
    for blocks, c in zip(received, counters, strict=True):
        assert c["heaps_complete_total"] == 10 and c["heaps_lost_total"] == 0
        assert len(blocks) == params.ntime
        for k, block in enumerate(blocks):
            vis = block.view(np.complex64).reshape(params.nchan, nbl, 4)
            np.testing.assert_array_equal(vis, expected[k])
