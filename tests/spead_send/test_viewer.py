"""READ_MODE viewer: svc-spead-send never slows the ring writer; what it could not read in
time is counted as skipped, and what it sends is the right data for its timestamps."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from ringbuf import RingPairWriter, destroy_ring_pair
from services.common.processes import free_udp_ports
from tests.spead_send.helpers import (
    item_group_receiver,
    make_pair,
    start_spead_send,
    vis_blocks,
    vis_dumps,
    vis_headers,
)

pytestmark = pytest.mark.timeout(120)

NANT, NCHAN, NDUMPS = 3, 64, 40
NBL = NANT * (NANT + 1) // 2
TIME0 = 1796104800.5


def test_viewer_never_blocks_the_writer_and_counts_skipped_blocks(key_factory, tmp_path):
    dumps = vis_dumps(NDUMPS, NCHAN, NBL, seed=11)
    # no reader slots: only viewers, so nothing can gate the writer
    dk, wk = make_pair(key_factory, NCHAN * NBL * 32, NCHAN * NBL * 2, nbufs=4, nreaders=0)
    port = free_udp_ports(1)
    out, thread = item_group_receiver(port)
    proc = start_spead_send(tmp_path, "spead-send", {
        "DATA_KEY": dk, "WEIGHTS_KEY": wk, "DEST_PORT": port, "READ_MODE": "viewer",
        "SEND_RATE": 1e5})  # ~0.13 s per block, while the writer makes one every 10 ms
    waits = []
    try:
        with RingPairWriter(dk, wk, timeout=5) as writer:
            with writer.open_transfer(*vis_headers(NANT, NCHAN, NCHAN, 1, 1.0, TIME0, 8)) as xfer:
                for data, weights in vis_blocks(dumps, 1):
                    started = time.monotonic()
                    with xfer.open_segment() as seg:
                        waits.append(time.monotonic() - started)
                        seg.data[:] = np.frombuffer(data, np.uint8)
                        seg.weights[:] = np.frombuffer(weights, np.uint8)
                    time.sleep(0.01)
        thread.join(60)
        counters = proc.wait_counter("transfers_total", 1)
    finally:
        proc.stop()
        destroy_ring_pair(dk, wk)
    assert max(waits) < 0.05  # the writer never waited for a free block
    sent, skipped = counters["blocks_sent_total"], counters["blocks_skipped_total"]
    assert skipped > 0 and sent > 0 and sent + skipped == NDUMPS
    assert not out.errors and out.starts == 1
    data = [h for h in out.heaps if "correlator_output_data" in h]
    assert len(data) == sent == counters["data_heaps_sent_total"]
    ticks0 = round(TIME0 * 2**32)
    got = set()
    for h in data:
        dump, rest = divmod((h["visibility_timestamp_count"] << 32)
                            + h["visibility_timestamp_fraction"] - ticks0, 2**32)
        assert rest == 0
        np.testing.assert_array_equal(h["correlator_output_data"], dumps[dump])
        got.add(dump)
    assert len(got) == sent and max(got) == NDUMPS - 1  # the newest blocks are never lost


def test_viewer_survives_a_writer_lapping_it_block_after_block(key_factory, tmp_path):
    """A 2-block ring written as fast as Python can: the viewer is lapped all the time (also
    between viewing a data block and its weights block) and keeps going; every block is
    either sent or counted as skipped."""
    nblocks, nchan, nbl = 3000, 1, 1
    dumps = vis_dumps(nblocks, nchan, nbl, seed=2)
    dk, wk = make_pair(key_factory, nchan * nbl * 32, nchan * nbl * 2, nbufs=2, nreaders=0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:  # absorbs the stream
        sink.bind(("127.0.0.1", 0))
        proc = start_spead_send(tmp_path, "spead-send", {
            "DATA_KEY": dk, "WEIGHTS_KEY": wk, "DEST_PORT": sink.getsockname()[1],
            "READ_MODE": "viewer", "SEND_RATE": 0})
        try:
            with RingPairWriter(dk, wk, timeout=5) as writer:
                headers = vis_headers(1, nchan, nchan, 1, 1.0, TIME0, 5)
                with writer.open_transfer(*headers) as xfer:
                    for data, weights in vis_blocks(dumps, 1):
                        with xfer.open_segment() as seg:
                            seg.data[:] = np.frombuffer(data, np.uint8)
                            seg.weights[:] = np.frombuffer(weights, np.uint8)
                        time.sleep(0.0005)  # about as fast as the viewer: it is lapped often
            counters = proc.wait_counter("transfers_total", 1)
            state = proc.status()["state"]
        finally:
            proc.stop()
            destroy_ring_pair(dk, wk)
    assert state == "Scanning"
    assert counters["blocks_sent_total"] + counters["blocks_skipped_total"] == nblocks
    assert counters["blocks_skipped_total"] > 0 and counters["send_errors_total"] == 0
