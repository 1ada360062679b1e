"""A stock spead2 ItemGroup receiver decodes every item svc-spead-send sends, with the values
of the ring pair it read (real rings, a real process, real UDP on 127.0.0.1)."""

from __future__ import annotations

import numpy as np
import pytest

from ringbuf import destroy_ring_pair
from services.common.processes import free_udp_ports
from services.formats import cbf_sdp
from tests.spead_send.helpers import (
    beam,
    beam_blocks,
    beam_headers,
    item_group_receiver,
    make_pair,
    start_spead_send,
    vis_blocks,
    vis_dumps,
    vis_headers,
    write_transfer,
)

pytestmark = pytest.mark.timeout(120)

NANT, NCHAN, CPS, DPB, NDUMPS, NSTREAMS = 3, 8, 2, 2, 5, 2
NBL = NANT * (NANT + 1) // 2
INT_TIME = 0.5
TIME0 = 1796104800.25  # centre of dump 0, Unix seconds (2026-12-01)


def test_vis_items_decode_with_the_ring_values(key_factory, tmp_path):
    dumps = vis_dumps(NDUMPS, NCHAN, NBL)
    dk, wk = make_pair(key_factory, DPB * NCHAN * NBL * 32, DPB * NCHAN * NBL * 2)
    port = free_udp_ports(NSTREAMS)
    received = [item_group_receiver(port + i) for i in range(NSTREAMS)]
    proc = start_spead_send(tmp_path, "spead-send", {
        "DATA_KEY": dk, "WEIGHTS_KEY": wk, "DEST_PORT": port, "NSTREAMS": NSTREAMS,
        "SEND_RATE": 5e6, "HARDWARE_ID": 9})
    try:
        write_transfer(dk, wk, vis_headers(NANT, NCHAN, CPS, DPB, INT_TIME, TIME0, 4242),
                       vis_blocks(dumps, DPB))
        for _, thread in received:
            thread.join(30)
        counters = proc.wait_counter("transfers_total", 1)
    finally:
        proc.stop()
        destroy_ring_pair(dk, wk)
    period = round(INT_TIME * 2**32)
    ticks0 = round(TIME0 * 2**32)
    nblocks = NCHAN // CPS
    seen = {}
    for stream, (out, _) in enumerate(received):
        assert not out.errors and out.starts == 1
        meta = [h for h in out.heaps if "scan_id" in h]
        assert len(meta) == 1
        assert meta[0]["scan_id"] == 4242 and meta[0]["num_antennas"] == NANT
        assert meta[0]["int_time"] == INT_TIME and meta[0]["freq0_hz"] == 150e6
        assert meta[0]["chan_width_hz"] == 100e3 and meta[0]["visibility_hardware_id"] == 9
        for h in (h for h in out.heaps if "correlator_output_data" in h):
            ticks = (h["visibility_timestamp_count"] << 32) + h["visibility_timestamp_fraction"]
            dump, rest = divmod(ticks - ticks0, period)
            block = h["visibility_channel_id"] // CPS
            assert rest == 0 and block // (nblocks // NSTREAMS) == stream
            assert h["visibility_channel_count"] == CPS
            assert h["visibility_baseline_count"] == NBL
            assert h["visibility_hardware_id"] == 9
            seen[dump, block] = h["correlator_output_data"]
    assert sorted(seen) == [(d, b) for d in range(NDUMPS) for b in range(nblocks)]
    for (d, b), payload in seen.items():
        assert payload.dtype == cbf_sdp.VIS_DTYPE and payload.shape == (CPS, NBL)
        np.testing.assert_array_equal(payload, dumps[d, b * CPS:(b + 1) * CPS])
    assert counters["data_heaps_sent_total"] == NDUMPS * nblocks
    assert counters["heaps_sent_total"] == NDUMPS * nblocks + 4 * NSTREAMS
    assert counters["blocks_sent_total"] == 3 and counters["blocks_skipped_total"] == 0
    assert counters["send_errors_total"] == 0 and counters["scan_id"] == 4242
    assert counters["bytes_sent_total"] > NDUMPS * NCHAN * NBL * 34


def test_beam_items_decode_with_the_ring_values(key_factory, tmp_path):
    b = beam(7)
    lay, hpb = b.layout, 3
    dk, wk = make_pair(key_factory, hpb * lay.data_heap_stride, hpb * lay.weights_heap_stride)
    port = free_udp_ports(1)
    out, thread = item_group_receiver(port)
    proc = start_spead_send(tmp_path, "spead-send", {
        "DATA_KEY": dk, "WEIGHTS_KEY": wk, "DEST_PORT": port, "SEND_RATE": 5e6})
    try:
        write_transfer(dk, wk, beam_headers(b, 31), beam_blocks(b, hpb))
        thread.join(30)
        counters = proc.wait_counter("transfers_total", 1)
    finally:
        proc.stop()
        destroy_ring_pair(dk, wk)
    assert not out.errors and out.starts == 1
    meta = [h for h in out.heaps if "beam_scan_id" in h]
    assert len(meta) == 1 and meta[0]["beam_scan_id"] == 31
    assert meta[0]["beam_start_seconds"] == 1796106600  # 2026-12-01-06:30:00 UTC
    assert meta[0]["beam_start_picoseconds"] == 123456789
    packets = [h for h in out.heaps if "beam_data" in h]
    pph = lay.packets_per_heap
    assert len(packets) == 7 * pph
    for h in packets:
        n, rest = divmod(h["beam_sample_count"], lay.udp_nsamp)
        p, crest = divmod(h["beam_first_channel"], lay.udp_nchan)
        assert rest == 0 and crest == 0
        assert np.float32(h["beam_scale"]).tobytes() == b.scale[n, p].tobytes()
        np.testing.assert_array_equal(h["beam_weights"], b.weights[n, p])
        assert h["beam_data"].dtype == lay.sample_dtype
        np.testing.assert_array_equal(h["beam_data"], b.data[n, p])
    assert {(h["beam_sample_count"], h["beam_first_channel"]) for h in packets} == {
        (n * lay.udp_nsamp, p * lay.udp_nchan) for n in range(7) for p in range(pph)}
    assert counters["data_heaps_sent_total"] == 7 * pph and counters["blocks_sent_total"] == 3


def test_multicast_reaches_every_receiver_that_joined(key_factory, tmp_path):
    group, b = "239.10.0.78", beam(4)
    lay = b.layout
    dk, wk = make_pair(key_factory, 2 * lay.data_heap_stride, 2 * lay.weights_heap_stride)
    port = free_udp_ports(2)
    receivers = [item_group_receiver(port + i, group) for i in (0, 1)]
    receivers.append(item_group_receiver(port, group))  # a second host on stream 0
    proc = start_spead_send(tmp_path, "spead-send", {
        "DATA_KEY": dk, "WEIGHTS_KEY": wk, "DEST_HOST": group, "DEST_PORT": port,
        "NSTREAMS": 2, "MCAST_TTL": 1, "MCAST_INTERFACE": "127.0.0.1", "SEND_RATE": 5e6})
    try:
        write_transfer(dk, wk, beam_headers(b, 9), beam_blocks(b, 2))
        for _, thread in receivers:
            thread.join(30)
        proc.wait_counter("transfers_total", 1)
    finally:
        proc.stop()
        destroy_ring_pair(dk, wk)
    for stream, (out, thread) in zip((0, 1, 0), receivers, strict=True):
        assert not thread.is_alive() and not out.errors and out.starts == 1
        packets = [h for h in out.heaps if "beam_data" in h]
        assert len(packets) == 4  # packet `stream` of each of the 4 PST heaps
        for h in packets:
            n = h["beam_sample_count"] // lay.udp_nsamp
            assert h["beam_first_channel"] == stream * lay.udp_nchan
            np.testing.assert_array_equal(h["beam_data"], b.data[n, stream])
