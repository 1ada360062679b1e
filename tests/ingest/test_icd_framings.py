"""Every framing real ICD senders use, over real UDP into a real svc-ingest process.

The senders (:mod:`tests.ingest.icd_senders`) reproduce how the SKA CBF-SDP emulator and the
SKA SIP sender build heaps with stock spead2 (descriptors and addressed items in every data
heap, baseline count in the start heap only, items in any order, both immediate byte
orders, FD never populated); the ring pair must hold the sent visibilities exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from services.demo.processes import Process, options, tool

from ringbuf import RingLayout, RingPairReader, create_ring_pair, destroy_ring_pair
from services.formats import cbf_sdp
from tests.ingest import icd_senders
from tests.ingest.helpers import free_ports

NANT, NCHAN, NTIME = 4, 8, 4
NBL = NANT * (NANT + 1) // 2
FALLBACK_FREQ0, FALLBACK_WIDTH = 1.5e8, 1e5


@contextmanager
def svc_ingest(tmp_path: Path, key_factory, cps: int, port: int | None = None,
               **extra: object) -> Iterator[
        tuple[Process, str, str, int]]:
    """A ring pair (one dump per block) and an autonomous svc-ingest process on it."""
    dk, wk = key_factory(), key_factory()
    create_ring_pair(dk, wk, RingLayout(nbufs=8, bufsz=NCHAN * NBL * 32),
                     RingLayout(nbufs=8, bufsz=NCHAN * NBL * 2))
    port = free_ports(NCHAN // cps) if port is None else port
    opts = {"DATA_KEY": dk, "WEIGHTS_KEY": wk, "PORT_START": port, "NSTREAMS": NCHAN // cps,
            "NANT": NANT, "NCHAN": NCHAN, "CHANNELS_PER_STREAM": cps, "INT_TIME": 1.0,
            "BIND_HOST": "127.0.0.1", "STREAM_TIMEOUT_S": 2, "SCAN_ID": 9,
            "FALLBACK_FREQ0_HZ": FALLBACK_FREQ0, "FALLBACK_CHAN_WIDTH_HZ": FALLBACK_WIDTH,
            **extra}
    sock = tmp_path / f"ingest-{dk}.sock"
    daemon = Process("svc-ingest", [tool("svc-ingest"), "--autonomous", "--socket", sock,
                                    *options(opts)], tmp_path / f"ingest-{dk}.log", sock)
    try:
        daemon.wait_ready()
        yield daemon, dk, wk, port
    finally:
        daemon.stop()
        destroy_ring_pair(dk, wk)


def read_transfer(dk: str, wk: str, out: dict, ready: threading.Event) -> None:
    """Reader thread: one transfer, its headers and blocks, into ``out``."""
    try:
        with RingPairReader(dk, wk, timeout=30) as reader:
            ready.set()
            px = reader.open_transfer()
            out["headers"] = (px.data_header, px.weights_header)
            out["blocks"] = [(seg.data.copy(), seg.weights.copy()) for seg in px]
    except BaseException as exc:  # reported by the test
        out["error"] = exc
        ready.set()


def stacked(blocks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    vis = np.stack([d.view(np.complex64).reshape(NCHAN, NBL, 4) for d, _ in blocks])
    wts = np.stack([w.view(cbf_sdp.WEIGHTS_DTYPE).reshape(NCHAN, NBL) for _, w in blocks])
    return vis, wts


FRAMINGS = {
    "emulator": (icd_senders.EMULATOR, 2),
    "emulator-big-endian-scan-after-data": (
        replace(icd_senders.EMULATOR, big_endian=True, scan_after_data=True), 2),
    "emulator-items-shuffled": (replace(icd_senders.EMULATOR, shuffled=True), 2),
    "emulator-small-packets": (icd_senders.EMULATOR, 4),
    "sip": (icd_senders.SIP, 1),
    "baseline-count-in-start-heap-only": (icd_senders.START_ONLY, 2),
}


@pytest.mark.parametrize("name", list(FRAMINGS))
def test_real_sender_framing_lands_exactly(name, tmp_path, key_factory):
    framing, cps = FRAMINGS[name]
    packet = 1472 if name == "emulator-small-packets" else 8972
    vis = icd_senders.payload(NTIME, NCHAN, NBL, framing.fd)
    with svc_ingest(tmp_path, key_factory, cps,
                    IMMEDIATE_BYTE_ORDER=framing.byte_order) as (daemon, dk, wk, port):
        out: dict = {}
        ready = threading.Event()
        reader = threading.Thread(target=read_transfer, args=(dk, wk, out, ready))
        reader.start()
        ready.wait(10)
        time.sleep(0.2)
        sent = icd_senders.send(framing, port, nchan=NCHAN, cps=cps, nbl=NBL, vis=vis,
                                max_packet_size=packet)
        reader.join(30)
        counters = daemon.counters()
    assert "error" not in out, out.get("error")
    assert sent == NTIME * NCHAN // cps
    got_vis, got_wts = stacked(out["blocks"])
    np.testing.assert_array_equal(got_vis, vis["VIS"])
    np.testing.assert_array_equal(got_wts["TCI"], 0)
    np.testing.assert_array_equal(got_wts["FD"], 255)  # FD_POLICY auto: unpopulated FD
    data_header, weights_header = out["headers"]
    expected_scan = 9 if framing.scan_id is None else framing.scan_id
    assert data_header.get_int("SCAN_ID") == expected_scan
    assert weights_header.get_int("SCAN_ID") == expected_scan
    assert data_header.get_float("FREQ0_HZ") == FALLBACK_FREQ0
    assert data_header.get_float("CHAN_WIDTH_HZ") == FALLBACK_WIDTH
    assert data_header["FD_POLICY"] == "auto"
    assert abs(data_header.get_float("TIME0_UNIX") - icd_senders.T0) < 1e-6
    assert counters["heaps_complete_total"] == sent
    assert counters["heaps_lost_total"] == 0
    assert counters["heaps_fd_unpopulated_total"] == sent
    assert counters["data_heaps_with_metadata_total"] == sent  # descriptors in every heap
    assert counters["start_heaps_total"] == NCHAN // cps
    assert counters["transfers_missed_start_total"] == 0
    rejected = {k: v for k, v in counters.items() if k.startswith("heaps_rejected_") and v}
    assert rejected == {}


def test_late_start_writes_the_rest_of_the_scan(tmp_path, key_factory):
    """svc-ingest started after the start heap and the first dumps: the rest of the scan is
    written, scan id from the data heaps, frequencies from config, the miss counted."""
    framing = replace(icd_senders.EMULATOR, scan_after_data=True)  # scan id past the data
    cps, missed = 2, 2
    vis = icd_senders.payload(NTIME, NCHAN, NBL, 255)
    port = free_ports(NCHAN // cps)
    early = icd_senders.send(framing, port, nchan=NCHAN, cps=cps, nbl=NBL, vis=vis,
                             last_dump=missed, end=False)  # nobody listening yet
    assert early == missed * NCHAN // cps
    with svc_ingest(tmp_path, key_factory, cps, port,
                    IMMEDIATE_BYTE_ORDER="little") as (daemon, dk, wk, _):
        out: dict = {}
        ready = threading.Event()
        reader = threading.Thread(target=read_transfer, args=(dk, wk, out, ready))
        reader.start()
        ready.wait(10)
        time.sleep(0.2)
        late = icd_senders.send(framing, port, nchan=NCHAN, cps=cps, nbl=NBL, vis=vis,
                                first_dump=missed, start=False)
        reader.join(30)
        counters = daemon.counters()
        log = daemon.output()
    assert "error" not in out, out.get("error")
    got_vis, got_wts = stacked(out["blocks"])
    assert got_vis.shape[0] == NTIME - missed
    np.testing.assert_array_equal(got_vis, vis["VIS"][missed:])
    np.testing.assert_array_equal(got_wts["FD"], 255)
    data_header, _ = out["headers"]
    assert data_header.get_int("SCAN_ID") == framing.scan_id  # from the data heaps, not 9
    assert data_header.get_float("FREQ0_HZ") == FALLBACK_FREQ0
    assert data_header.get_float("CHAN_WIDTH_HZ") == FALLBACK_WIDTH
    assert data_header.get_float("INT_TIME") == 1.0
    assert abs(data_header.get_float("TIME0_UNIX") - (icd_senders.T0 + missed)) < 1e-6
    assert counters["transfers_missed_start_total"] == 1
    assert counters["start_heaps_total"] == 0
    assert counters["heaps_complete_total"] == late
    assert "without a start heap" in log and "from the data heaps" in log
