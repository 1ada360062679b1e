"""spead-send -> ingest reproduces the source rings exactly.

emu-send (or beam-send) -> svc-ingest #1 -> ring pair A -> svc-spead-send -> svc-ingest #2 (another
port) -> ring pair B, all real processes on 127.0.0.1. A's blocks (read by a second
guaranteed reader) and B's are equal byte for byte, holes included, and so are their
transfer headers (but for the ring keys a beam header names).
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ringbuf import DadaHeader, RingPairReader, destroy_ring_pair
from services.common.processes import Process, daemon_env, free_udp_ports, options, tool
from tests.spead_send.helpers import make_pair, start_spead_send

pytestmark = pytest.mark.timeout(240)

NANT, NCHAN, NTIME, CPS, DPB = 4, 8, 5, 2, 2
NBL = NANT * (NANT + 1) // 2


@dataclass
class Recorded:
    data_header: DadaHeader | None = None
    weights_header: DadaHeader | None = None
    blocks: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def record(dk: str, wk: str) -> tuple[Recorded, threading.Thread, threading.Event]:
    """A guaranteed reader thread keeping one transfer of a ring pair."""
    out, ready = Recorded(), threading.Event()

    def run() -> None:
        try:
            with RingPairReader(dk, wk, timeout=60) as reader:
                ready.set()
                transfer = reader.open_transfer()
                out.data_header, out.weights_header = (transfer.data_header,
                                                       transfer.weights_header)
                for seg in transfer:
                    out.blocks.append((seg.obs_offset, seg.data.tobytes(),
                                       seg.weights.tobytes()))
        except BaseException as exc:  # reported by the test
            out.errors.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    return out, thread, ready


def start_ingest(tmp_path: Path, name: str, values: dict[str, object]) -> Process:
    sock = tmp_path / f"{name}.sock"
    proc = Process(name, [tool("svc-ingest"), "--autonomous", "--socket", sock,
                          *options(values)], tmp_path / f"{name}.log", sock, env=daemon_env())
    proc.wait_ready()
    return proc


def assert_same(a: Recorded, b: Recorded, ignore: tuple[str, ...] = ()) -> None:
    assert not a.errors and not b.errors, (a.errors, b.errors)
    assert a.data_header is not None and b.data_header is not None
    assert a.weights_header is not None and b.weights_header is not None
    for ha, hb in ((a.data_header, b.data_header), (a.weights_header, b.weights_header)):
        keys = [k for k in ha if k not in ignore]
        assert keys == [k for k in hb if k not in ignore]
        assert {k: ha[k] for k in keys} == {k: hb[k] for k in keys}
    assert len(a.blocks) == len(b.blocks)
    for (oa, da, wa), (ob, db, wb) in zip(a.blocks, b.blocks, strict=True):
        assert oa == ob and len(da) == len(db) and len(wa) == len(wb)
        assert da == db and wa == wb


@pytest.fixture(scope="module")
def ms(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ms") / "sim.ms"
    subprocess.run([tool("sim-ms"), str(out), "--nant", str(NANT), "--nchan", str(NCHAN),
                    "--ntime", str(NTIME), "--source", "2,0,0", "--noise-jy", "0.1"],
                   check=True, capture_output=True)
    return out


def test_vis_chain_reproduces_ring_pair_a_in_b(ms, key_factory, tmp_path):
    res = NCHAN * NBL * 32
    a_keys = make_pair(key_factory, DPB * res, DPB * res // 16, nreaders=2)
    b_keys = make_pair(key_factory, DPB * res, DPB * res // 16)
    port_a, port_b = free_udp_ports(NCHAN // CPS), free_udp_ports(NCHAN // CPS)
    shared = {"NSTREAMS": NCHAN // CPS, "NANT": NANT, "NCHAN": NCHAN,
              "CHANNELS_PER_STREAM": CPS, "INT_TIME": 1.0, "BIND_HOST": "127.0.0.1",
              "STREAM_TIMEOUT_S": 3, "TELESCOPE": "SKA-Low", "PHASE_CENTRE_RA_DEG": 187.0,
              "PHASE_CENTRE_DEC_DEG": -26.8}
    procs: list[Process] = []
    try:
        procs.append(start_ingest(tmp_path, "ingest-a", {
            "DATA_KEY": a_keys[0], "WEIGHTS_KEY": a_keys[1], "PORT_START": port_a, **shared}))
        procs.append(start_ingest(tmp_path, "ingest-b", {
            "DATA_KEY": b_keys[0], "WEIGHTS_KEY": b_keys[1], "PORT_START": port_b, **shared}))
        a, a_thread, _ = record(*a_keys)
        b, b_thread, _ = record(*b_keys)
        procs.append(start_spead_send(tmp_path, "spead-send", {
            "DATA_KEY": a_keys[0], "WEIGHTS_KEY": a_keys[1], "DEST_PORT": port_b,
            "NSTREAMS": NCHAN // CPS, "SEND_RATE": 2e7}))
        sent = subprocess.run(
            [tool("emu-send"), str(ms), *options({
                "transmission.target_port_start": port_a,
                "transmission.channels_per_stream": CPS, "transmission.rate": 2e7,
                "transmission.scan_id": 77, "transmission.skip_heaps": "1:0,4:3"})],
            capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        a_thread.join(60)
        b_thread.join(60)
        send_counters = procs[2].wait_counter("transfers_total", 1)
        b_counters = procs[1].counters()
    finally:
        for proc in reversed(procs):
            proc.stop()
        destroy_ring_pair(*a_keys)
        destroy_ring_pair(*b_keys)
    assert_same(a, b)
    assert len(a.blocks) == 3 and len(a.blocks[-1][1]) == res  # 2 + 2 + 1 dumps
    fd = np.frombuffer(a.blocks[0][2], np.uint8).reshape(DPB, NCHAN, NBL, 2)[..., 1]
    assert not fd[1, :CPS].any() and fd[1, CPS:].all()  # dump 1 block 0: a hole, sent as one
    assert a.data_header is not None and a.data_header.get_int("SCAN_ID") == 77
    assert send_counters["data_heaps_sent_total"] == NTIME * NCHAN // CPS
    assert send_counters["blocks_sent_total"] == 3 and send_counters["send_errors_total"] == 0
    assert b_counters["heaps_complete_total"] == NTIME * NCHAN // CPS
    assert b_counters["heaps_lost_total"] == 0 and b_counters["end_heaps_total"] == NCHAN // CPS


BEAM = {"NCHAN": 48, "UDP_NCHAN": 24, "UDP_NSAMP": 32, "WT_NSAMP": 16, "NBIT": 16,
        "TSAMP": "207.36", "START_CHANNEL": 0}
PASS = {"TELESCOPE": "SKALow", "SOURCE": "J0437-4715", "EB_ID": "eb-m001", "FREQ": "87.5",
        "BW": "1.5625", "BEAM_ID": 1}


def test_beam_chain_reproduces_ring_pair_a_in_b(key_factory, tmp_path):
    hpb, data_heap = 4, 48 * 32 * 4 * 2
    weights_heap = 2 * (4 + 24 * 2 * 2)
    a_keys = make_pair(key_factory, hpb * data_heap, hpb * weights_heap, nreaders=2)
    b_keys = make_pair(key_factory, hpb * data_heap, hpb * weights_heap)
    port_a, port_b = free_udp_ports(1), free_udp_ports(2)
    shared = {"PROFILE": "beam", "BIND_HOST": "127.0.0.1", "STREAM_TIMEOUT_S": 3, **BEAM,
              **PASS}
    procs: list[Process] = []
    try:
        procs.append(start_ingest(tmp_path, "ingest-a", {
            "DATA_KEY": a_keys[0], "WEIGHTS_KEY": a_keys[1], "PORT_START": port_a, **shared}))
        procs.append(start_ingest(tmp_path, "ingest-b", {
            "DATA_KEY": b_keys[0], "WEIGHTS_KEY": b_keys[1], "PORT_START": port_b,
            "NSTREAMS": 2, **shared}))
        a, a_thread, _ = record(*a_keys)
        b, b_thread, _ = record(*b_keys)
        procs.append(start_spead_send(tmp_path, "spead-send", {
            "DATA_KEY": a_keys[0], "WEIGHTS_KEY": a_keys[1], "DEST_PORT": port_b,
            "NSTREAMS": 2, "SEND_RATE": 2e7}))
        sent = subprocess.run(
            [tool("beam-send"), *options({
                **BEAM, "SCAN_ID": 55, "DATA_PORT": port_a, "beam.duration_s": 0.2,
                "beam.rate": 2e7, "beam.nan_every": 7, "beam.skip_packets": "3:1"})],
            capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        a_thread.join(60)
        b_thread.join(60)
        send_counters = procs[2].wait_counter("transfers_total", 1)
    finally:
        for proc in reversed(procs):
            proc.stop()
        destroy_ring_pair(*a_keys)
        destroy_ring_pair(*b_keys)
    assert_same(a, b, ignore=("DATA_KEY", "WEIGHTS_KEY"))
    nheaps = round(0.2 / (32 * 207.36e-6))  # 30 PST heaps: 7 blocks of 4 and one of 2
    assert len(a.blocks) == 8 and len(a.blocks[-1][1]) == 2 * data_heap
    rec = np.frombuffer(a.blocks[0][2], np.uint8).reshape(hpb, 2, 4 + 96)
    scale = np.ascontiguousarray(rec[:, :, :4]).view("<f4")[..., 0]
    assert np.isnan(scale[3, 1]) and not rec[3, 1, 4:].any()  # the skipped packet: a hole
    assert np.isnan(scale).sum() == 1 + 1  # the hole and the one NaN packet among 8
    assert a.data_header is not None and a.data_header.get_int("SCAN_ID") == 55
    assert send_counters["data_heaps_sent_total"] == nheaps * 2
    assert send_counters["blocks_sent_total"] == 8


def test_transfers_back_to_back_arrive_as_transfers(key_factory, tmp_path):
    """Two transfers written straight after each other reach ring pair B as two transfers
    with A's blocks and times (TRANSFER_GAP_S lets svc-ingest re-arm in between)."""
    from tests.spead_send.helpers import vis_blocks, vis_dumps, vis_headers, write_transfer

    nant, nchan, cps, dpb, int_time = 3, 8, 2, 2, 0.5
    nbl = nant * (nant + 1) // 2
    res = nchan * nbl * 32
    a_keys = make_pair(key_factory, dpb * res, dpb * res // 16)
    b_keys = make_pair(key_factory, dpb * res, dpb * res // 16)
    port_b = free_udp_ports(nchan // cps)
    # any phase, with the first dump on a block boundary as svc-ingest writes it
    firsts = (1796104800.123456, 1796104901.387654)
    dumps = [vis_dumps(5, nchan, nbl, seed=s) for s in (1, 2)]
    got: list[tuple[DadaHeader, list[bytes]]] = []
    errors: list[BaseException] = []

    def read_b() -> None:
        try:
            with RingPairReader(*b_keys, timeout=60) as reader:
                for _ in range(2):
                    transfer = reader.open_transfer()
                    got.append((transfer.data_header, [seg.data.tobytes() + seg.weights.tobytes()
                                                       for seg in transfer]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    procs: list[Process] = []
    try:
        procs.append(start_ingest(tmp_path, "ingest-b", {
            "DATA_KEY": b_keys[0], "WEIGHTS_KEY": b_keys[1], "PORT_START": port_b,
            "NSTREAMS": nchan // cps, "NANT": nant, "NCHAN": nchan, "CHANNELS_PER_STREAM": cps,
            "INT_TIME": int_time, "BIND_HOST": "127.0.0.1", "STREAM_TIMEOUT_S": 3}))
        reader = threading.Thread(target=read_b, daemon=True)
        reader.start()
        procs.append(start_spead_send(tmp_path, "spead-send", {
            "DATA_KEY": a_keys[0], "WEIGHTS_KEY": a_keys[1], "DEST_PORT": port_b,
            "NSTREAMS": nchan // cps, "SEND_RATE": 2e7}))
        for k in range(2):
            write_transfer(*a_keys, vis_headers(nant, nchan, cps, dpb, int_time, firsts[k],
                                                 100 + k), vis_blocks(dumps[k], dpb))
        reader.join(60)
    finally:
        for proc in reversed(procs):
            proc.stop()
        destroy_ring_pair(*a_keys)
        destroy_ring_pair(*b_keys)
    assert not errors, errors
    assert len(got) == 2
    for k, (header, blocks) in enumerate(got):
        assert header.get_int("SCAN_ID") == 100 + k
        assert header["TIME0_UNIX"] == repr(firsts[k])
        assert header.get_float("FREQ0_HZ") == 150e6
        assert blocks == [d + w for d, w in vis_blocks(dumps[k], dpb)]
