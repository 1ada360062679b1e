"""svc-spead-send as a daemon: bad config is one line, a bad transfer header one log line and
a counter, failed sends are counted, managed mode sends only the started scan."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest

from ringbuf import DadaHeader, destroy_ring_pair
from services.common.processes import Process, daemon_env, free_udp_ports, options
from tests.spead_send.helpers import (
    SPEAD_SEND,
    item_group_receiver,
    make_pair,
    start_spead_send,
    vis_blocks,
    vis_dumps,
    vis_headers,
    write_transfer,
)

pytestmark = pytest.mark.timeout(120)

NANT, NCHAN = 2, 4
NBL = NANT * (NANT + 1) // 2
RES = NCHAN * NBL * 32


@pytest.mark.parametrize(("values", "problem"), [
    ({"READ_MODE": "sometimes"}, "READ_MODE 'sometimes' (-o): is not one of reader, viewer"),
    ({"DEST_PORT": 70000}, "DEST_PORT '70000' (-o): is not a UDP port (1..65535)"),
    ({"DEST_HOST": "example"}, "DEST_HOST 'example' (-o): is not an IPv4 address"),
    ({"SEND_RATE": -1}, "SEND_RATE '-1' (-o): must not be negative"),
    ({"NO_SUCH_KEY": 1}, "NO_SUCH_KEY (-o): unknown key"),
])
def test_bad_config_is_one_line(tmp_path, values, problem):
    args = [*SPEAD_SEND, "--autonomous", "--socket", tmp_path / "s.sock", *options(
        {"DATA_KEY": "a000", "WEIGHTS_KEY": "a010", "DEST_PORT": 9000, **values})]
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=60, env=daemon_env())
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: config: 1 problem: ") and lines[0].endswith(problem)
    assert not (tmp_path / "s.sock").exists()


def test_missing_ring_is_one_line(key_factory, tmp_path):
    args = [*SPEAD_SEND, "--autonomous", "--socket", tmp_path / "s.sock", *options(
        {"DATA_KEY": key_factory(), "WEIGHTS_KEY": key_factory(), "DEST_PORT": 9000})]
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=60, env=daemon_env())
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "configure_beam refused" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_header_is_skipped_counted_and_the_next_transfer_sent(key_factory, tmp_path):
    dumps = vis_dumps(3, NCHAN, NBL)
    dk, wk = make_pair(key_factory, RES, RES // 16)
    port = free_udp_ports(1)
    out, thread = item_group_receiver(port)
    proc = start_spead_send(tmp_path, "spead-send", {
        "DATA_KEY": dk, "WEIGHTS_KEY": wk, "DEST_PORT": port, "SEND_RATE": 1e7,
        "TRANSFER_GAP_S": 0})
    try:
        bad = (DadaHeader({"HDR_SIZE": 4096, "DATA_KIND": "SPECTRA", "NCHAN": NCHAN}),
               DadaHeader({"HDR_SIZE": 4096, "DATA_KIND": "SPECTRA_WEIGHTS"}))
        write_transfer(dk, wk, bad, vis_blocks(dumps, 1))  # drained, never blocks the writer
        good = vis_headers(NANT, NCHAN, NCHAN, 1, 1.0, 1796104800.5, 6)
        write_transfer(dk, wk, good, vis_blocks(dumps, 1))
        thread.join(30)
        counters = proc.wait_counter("transfers_total", 1)
    finally:
        proc.stop()
        destroy_ring_pair(dk, wk)
    assert counters["transfers_skipped_bad_header_total"] == 1
    assert counters["transfers_total"] == 1 and counters["blocks_sent_total"] == 3
    log = proc.output()
    bad_lines = [line for line in log.splitlines() if "transfer not sent" in line]
    assert len(bad_lines) == 1 and "DATA_KIND SPECTRA" in bad_lines[0]
    data = [h["correlator_output_data"] for h in out.heaps if "correlator_output_data" in h]
    assert len(data) == 3
    for k in range(3):
        np.testing.assert_array_equal(data[k], dumps[k])


def test_failed_sends_are_counted_and_the_daemon_carries_on(key_factory, tmp_path):
    dumps = vis_dumps(2, NCHAN, NBL)
    dk, wk = make_pair(key_factory, RES, RES // 16)
    # the limited broadcast address without SO_BROADCAST: every send fails with EACCES
    proc = start_spead_send(tmp_path, "spead-send", {
        "DATA_KEY": dk, "WEIGHTS_KEY": wk, "DEST_HOST": "255.255.255.255", "DEST_PORT": 9,
        "TRANSFER_GAP_S": 0})
    try:
        headers = vis_headers(NANT, NCHAN, NCHAN, 1, 1.0, 1796104800.5, 6)
        write_transfer(dk, wk, headers, vis_blocks(dumps, 1))
        write_transfer(dk, wk, headers, vis_blocks(dumps, 1))
        counters = proc.wait_counter("transfers_total", 2)
        assert proc.status()["state"] == "Scanning"
    finally:
        proc.stop()
        destroy_ring_pair(dk, wk)
    # per transfer: 3 control heaps + 2 blocks + 1 end heap, each one failed send
    assert counters["send_errors_total"] == 2 * 6
    assert counters["heaps_sent_total"] == 0 and counters["blocks_sent_total"] == 0
    warnings = [line for line in proc.output().splitlines() if "send to 255" in line]
    assert len(warnings) == 2  # one line per transfer, the rest only counted


def test_managed_mode_sends_only_the_started_scan(key_factory, tmp_path):
    dumps = vis_dumps(2, NCHAN, NBL)
    dk, wk = make_pair(key_factory, RES, RES // 16)
    port = free_udp_ports(1)
    out, thread = item_group_receiver(port)
    sock = tmp_path / "m.sock"
    proc = Process("spead-send", [*SPEAD_SEND, "--socket", sock], tmp_path / "m.log", sock,
                   env=daemon_env())
    try:
        proc.wait_ready()
        assert proc.request("configure_beam", {"DATA_KEY": dk, "WEIGHTS_KEY": wk})["ok"]
        bad = proc.request("configure_scan", {"DEST_PORT": 0})
        assert not bad["ok"] and "DEST_PORT" in bad["error"]
        assert proc.request("configure_scan", {"DEST_PORT": port, "TRANSFER_GAP_S": 0})["ok"]
        assert proc.request("start_scan", {"SCAN_ID": 12})["ok"]
        write_transfer(dk, wk, vis_headers(NANT, NCHAN, NCHAN, 1, 1.0, 1796104800.5, 11),
                       vis_blocks(dumps, 1))
        write_transfer(dk, wk, vis_headers(NANT, NCHAN, NCHAN, 1, 1.0, 1796104900.5, 12),
                       vis_blocks(dumps, 1))
        thread.join(30)
        counters = proc.wait_counter("transfers_total", 1)
        for command in ("end_scan", "deconfigure_scan", "deconfigure_beam"):
            assert proc.request(command)["ok"], command
    finally:
        proc.stop()
        destroy_ring_pair(dk, wk)
    assert counters["transfers_skipped_wrong_scan_total"] == 1
    assert counters["transfers_total"] == 1 and counters["scan_id"] == 12
    meta = [h for h in out.heaps if "scan_id" in h]
    assert [h["scan_id"] for h in meta] == [12]
    assert len([h for h in out.heaps if "correlator_output_data" in h]) == 2


def test_sigterm_mid_transfer_ends_the_stream_and_exits_cleanly(key_factory, tmp_path):
    nchan = 256
    res = nchan * NBL * 32
    dumps = vis_dumps(10, nchan, NBL)
    dk, wk = make_pair(key_factory, res, res // 16, nbufs=16)
    port = free_udp_ports(1)
    out, thread = item_group_receiver(port)
    proc = start_spead_send(tmp_path, "spead-send", {
        "DATA_KEY": dk, "WEIGHTS_KEY": wk, "DEST_PORT": port, "SEND_RATE": 1e5})
    try:  # 27 kB blocks at 100 kB/s: the whole transfer would take 2.7 s
        write_transfer(dk, wk, vis_headers(NANT, nchan, nchan, 1, 1.0, 1796104800.5, 3),
                       vis_blocks(dumps, 1))
        proc.wait_counter("blocks_sent_total", 2)
        started = time.monotonic()
        assert proc.terminate() == 0, proc.tail()
        assert time.monotonic() - started < 2.0
        thread.join(10)
    finally:
        proc.stop()
        destroy_ring_pair(dk, wk)
    assert not thread.is_alive()  # the end heap arrived
    data = [h["correlator_output_data"] for h in out.heaps if "correlator_output_data" in h]
    assert 2 <= len(data) < 8
    for k, payload in enumerate(data):
        np.testing.assert_array_equal(payload, dumps[k])
    assert "stopped; ending the stream" in proc.output()
