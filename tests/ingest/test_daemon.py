"""svc-ingest as a real process (autonomous mode): UDP in, ring pair out, clean SIGTERM."""

from __future__ import annotations

import numpy as np

from ringbuf import RingLayout, RingPairReader, create_ring_pair, destroy_ring_pair
from services.common.processes import Process, options, tool
from services.senders.emu_send import read_ms
from tests.ingest.helpers import free_ports
from tests.ingest.test_vis_udp import CPS, NANT, NBL, NCHAN, NTIME, emu_send, ms  # noqa: F401


def test_daemon_round_trip_and_final_summary(ms, key_factory, tmp_path):  # noqa: F811
    dk, wk = key_factory(), key_factory()
    create_ring_pair(dk, wk, RingLayout(nbufs=8, bufsz=NCHAN * NBL * 32),
                     RingLayout(nbufs=8, bufsz=NCHAN * NBL * 2))
    port = free_ports(NCHAN // CPS)
    opts = {"DATA_KEY": dk, "WEIGHTS_KEY": wk, "PORT_START": port, "NSTREAMS": NCHAN // CPS,
            "NANT": NANT, "NCHAN": NCHAN, "CHANNELS_PER_STREAM": CPS, "INT_TIME": 1.0,
            "BIND_HOST": "127.0.0.1", "LOG_INTERVAL_S": 1}
    sock = tmp_path / "ingest.sock"
    daemon = Process("svc-ingest", [tool("svc-ingest"), "--autonomous", "--socket", sock,
                                    *options(opts)], tmp_path / "ingest.log", sock)
    try:
        daemon.wait_ready()
        with RingPairReader(dk, wk, timeout=30) as reader:
            assert emu_send(ms, port).returncode == 0
            px = reader.open_transfer()
            blocks = [seg.data.copy() for seg in px]
        expected = read_ms(str(ms), 0, 0, 0)
        assert len(blocks) == NTIME
        for k in range(NTIME):
            np.testing.assert_array_equal(
                blocks[k].view(np.complex64).reshape(NCHAN, NBL, 4), expected.payload["VIS"][k])
        assert px.data_header.get_int("SCAN_ID") == 77
        assert daemon.terminate() == 0, daemon.tail()
        log = daemon.output()
        assert f"heaps_complete_total={NTIME * NCHAN // CPS}" in log
        assert "heaps_lost_total=0" in log
    finally:
        daemon.stop()
        destroy_ring_pair(dk, wk)
