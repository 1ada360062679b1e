"""A stalled reader never turns a stop into a failure (real processes: svc-ingest, a guaranteed
reader that attaches and never reads, beam-send).

The rings hold 2 blocks; the sender sends 20, so svc-ingest ends up waiting for a free block
that never comes. SIGTERM and end_scan must still stop it cleanly, well within STOP_TIMEOUT_S.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from ringbuf import RingLayout
from services.common.processes import Process, ProcessGroup, free_udp_ports, options, run_tool, tool

pytestmark = pytest.mark.timeout(120)

SHAPE = {"NCHAN": 48, "UDP_NCHAN": 24, "UDP_NSAMP": 32, "WT_NSAMP": 32, "NBIT": 16,
         "TSAMP": 207.36}
DATA_HEAP = 2 * (2 * 24 * 32 * 2 * 2)  # 2 packets of 16-bit samples
WEIGHTS_HEAP = 2 * (4 + 24 * 2)  # 2 packets of scale + weights
STOP_TIMEOUT_S = 8.0  # generous: a loaded machine must not fail the test, a hang still does
STALLED_READER = """
import sys, time
from ringbuf import RingPairReader
reader = RingPairReader(sys.argv[1], sys.argv[2])
print("attached", flush=True)
time.sleep(3600)
"""


def _start_blocked(group: ProcessGroup, tmp_path: Path, mode: str) -> tuple[Process, int]:
    """svc-ingest writing into a full ring pair whose only reader never reads."""
    keys = group.ring_pair(RingLayout(nbufs=2, bufsz=DATA_HEAP),
                           RingLayout(nbufs=2, bufsz=WEIGHTS_HEAP))
    reader = group.start("stalled-reader", [sys.executable, "-c", STALLED_READER, *keys])
    deadline = time.monotonic() + 20
    while "attached" not in reader.output():
        assert time.monotonic() < deadline, reader.tail()
        time.sleep(0.05)
    port = free_udp_ports(1)
    sock = group.socket_path("ingest")
    ingest = group.start("ingest", [tool("svc-ingest"), "--socket", sock, *options({
        "MODE": mode, "PROFILE": "beam", "DATA_KEY": keys[0], "WEIGHTS_KEY": keys[1],
        "PORT_START": port, "BIND_HOST": "127.0.0.1", "STOP_TIMEOUT_S": STOP_TIMEOUT_S,
        "STREAM_TIMEOUT_S": 2, **SHAPE})], sock)
    return ingest, port


def _send_and_wait_blocked(ingest: Process, port: int) -> None:
    run_tool([tool("beam-send"), *options({
        **SHAPE, "DATA_PORT": port, "beam.duration_s": 20 * 32 * 207.36e-6})], timeout=60)
    counters = ingest.wait_counter("blocks_total", 2)  # both ring blocks full
    time.sleep(1.0)  # ...and the writer waiting for a third
    assert counters["transfer_active"] == 1
    assert ingest.counters()["blocks_total"] == 2


def test_sigterm_stops_a_writer_waiting_on_a_stalled_reader(tmp_path):
    with ProcessGroup(tmp_path) as group:
        ingest, port = _start_blocked(group, tmp_path, "autonomous")
        _send_and_wait_blocked(ingest, port)
        started = time.monotonic()
        assert ingest.terminate(timeout=20) == 0, ingest.tail()
        assert time.monotonic() - started < STOP_TIMEOUT_S
        log = ingest.output()
        assert "RuntimeError" not in log and "did not stop" not in log, log[-3000:]
        assert "blocks_total=2" in log  # the final counters


def test_end_scan_completes_while_the_reader_is_stalled(tmp_path):
    with ProcessGroup(tmp_path) as group:
        ingest, port = _start_blocked(group, tmp_path, "managed")
        assert ingest.request("configure_beam")["ok"]
        assert ingest.request("configure_scan")["ok"]
        assert ingest.request("start_scan", {"SCAN_ID": 9})["ok"]
        time.sleep(0.5)
        _send_and_wait_blocked(ingest, port)
        assert ingest.status()["state"] == "Scanning"
        started = time.monotonic()
        reply = ingest.request("end_scan")
        assert reply["ok"], reply
        assert time.monotonic() - started < STOP_TIMEOUT_S
        assert ingest.status()["state"] == "ScanConfigured"
        assert ingest.counters()["transfer_active"] == 0
        assert ingest.terminate(timeout=20) == 0, ingest.tail()
