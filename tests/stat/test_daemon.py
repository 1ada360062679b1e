"""svc-stat as a real process: a viewer of a real ring pair, real HDF5, real sockets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ringbuf import RingLayout, RingPairWriter, create_ring_pair, destroy_ring_pair
from ringbuf.segment import Segment
from services.common.control import ControlClient
from services.common.processes import Process, daemon_env
from services.formats.pst import PstLayout
from services.stat.compute import compute_segment
from services.stat.config import StatConfig
from services.stat.generate import BeamSpec, generate_heaps, pst_headers, write_pair
from services.stat.publish import subscribe
from services.stat.service import output_path

HEAPS_PER_BLOCK = 8
BIN = Path(sys.executable).parent


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="rps", dir="/tmp"))  # short: Unix socket paths
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pair(key_factory):
    data_header, weights_header = pst_headers("mid", NCHAN=555, SCAN_ID=42,
                                              EB_ID="eb-test-1", STAT_REQ_TIME_BINS=4)
    layout = PstLayout.from_headers(data_header, weights_header)
    dk, wk = key_factory(), key_factory()
    create_ring_pair(dk, wk, RingLayout(8, HEAPS_PER_BLOCK * layout.data_heap_stride, nreaders=0),
                     RingLayout(8, HEAPS_PER_BLOCK * layout.weights_heap_stride, nreaders=0))
    yield dk, wk, data_header, weights_header, layout
    destroy_ring_pair(dk, wk)


def start_daemon(workdir, dk, wk, *extra):
    cmd = [str(BIN / "svc-stat"), "--socket", str(workdir / "ctl.sock"),
           "-o", f"DATA_KEY={dk}", "-o", f"WEIGHTS_KEY={wk}", "-o", "STAT_PROC_DELAY_MS=0",
           "-o", f"STAT_BASE_PATH={workdir}", "-o", f"STAT_PUBLISH_SOCKET={workdir}/pub.sock",
           "-o", "STAT_REQ_TIME_BINS=4", *extra]
    proc = Process("svc-stat", cmd, workdir / "svc-stat.log", workdir / "ctl.sock", daemon_env())
    proc.wait_ready(20)
    return proc


def write_blocks(dk, wk, data_header, weights_header, layout, nblocks, spec, pause=0.3):
    with RingPairWriter(dk, wk, timeout=10) as writer:
        with writer.open_transfer(data_header, weights_header) as xfer:
            for block in range(nblocks):
                data, weights = generate_heaps(layout, spec, block * HEAPS_PER_BLOCK,
                                               HEAPS_PER_BLOCK)
                with xfer.open_segment() as seg:
                    seg.data[:] = data
                    seg.weights[:] = weights
                time.sleep(pause)


def stop(proc):
    assert proc.terminate() == 0, proc.output()


def test_autonomous_daemon_writes_pst_files_with_offline_numbers(workdir, pair):
    dk, wk, data_header, weights_header, layout = pair
    spec = BeamSpec(sigma=12.0, tones={100: 40.0}, nan_packets=frozenset({3}), seed=5)
    proc = start_daemon(workdir, dk, wk, "--autonomous")
    messages = []
    try:
        time.sleep(0.5)
        def listen():
            for message in subscribe(workdir / "pub.sock", 20):
                messages.append(message)
                if len(messages) == 2:
                    return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        write_blocks(dk, wk, data_header, weights_header, layout, 4, spec, pause=0.6)
        listener.join(20)
        with ControlClient(str(workdir / "ctl.sock")) as client:
            deadline = time.monotonic() + 20
            while True:
                status = client.request("status")
                if status["counters"]["segments_total"] >= 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert status["state"] == "Scanning"
        assert status["counters"]["segments_total"] >= 2  # a viewer may miss blocks
        assert status["counters"]["transfers_total"] == 1
    finally:
        stop(proc)
    # every file is named as SKA PST names it, and holds the numbers of the offline path
    files = sorted((workdir / "product" / "eb-test-1" / "pst-mid" / "42" / "monitoring_stats")
                   .glob("*.h5"))
    assert len(files) >= 2
    for number, path in enumerate(files):
        with h5py.File(path) as f:
            header = f["HEADER"][0]
            assert f["FILE_FORMAT_VERSION"][()] == b"1.0.0"
            obs_offset = round(header["T_MIN"] * data_header.get_float("BYTES_PER_SECOND"))
            block = obs_offset // (HEAPS_PER_BLOCK * layout.data_heap_stride)
            assert path == output_path(workdir, data_header, obs_offset, number)
            data, weights = generate_heaps(layout, spec, block * HEAPS_PER_BLOCK, HEAPS_PER_BLOCK)
            expected = compute_segment(Segment(data, weights, obs_offset, 0, data_header,
                                               weights_header),
                                       StatConfig(req_time_bins=4))
            np.testing.assert_array_equal(f["HISTOGRAM_1D_FREQ_AVG"][...],
                                          expected.histogram_1d_freq_avg)
            np.testing.assert_array_equal(f["MEAN_SPECTRUM"][...], expected.mean_spectrum)
            np.testing.assert_array_equal(f["SPECTROGRAM"][...], expected.spectrogram)
            assert header["NUM_INVALID_PACKETS"] == (1 if block == 0 else 0)
    assert len(messages) == 2
    assert set(messages[0]) >= {"real_pol_a_mean_freq_avg", "imag_pol_b_variance_freq_avg",
                                "real_pol_a_num_clipped_samples_masked", "scan_id", "obs_offset",
                                "file"}
    assert messages[0]["scan_id"] == "42"


def test_managed_lifecycle_follows_only_its_scan(workdir, pair):
    dk, wk, data_header, weights_header, layout = pair
    proc = start_daemon(workdir, dk, wk)
    try:
        with ControlClient(str(workdir / "ctl.sock")) as client:
            assert client.request("configure_beam")["ok"]
            assert client.request("configure_scan", {"EB_ID": "eb-test-1"})["ok"]
            refused = client.request("configure_beam")
            assert not refused["ok"] and "not allowed in state ScanConfigured" in refused["error"]
            assert client.request("start_scan", {"SCAN_ID": 42})["ok"]
            write_blocks(dk, wk, data_header, weights_header, layout, 2, BeamSpec(), pause=0.5)
            deadline = time.monotonic() + 20
            while client.request("status")["counters"]["segments_total"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert client.request("end_scan")["ok"]
            assert client.request("deconfigure_scan")["ok"]
            assert client.request("deconfigure_beam")["ok"]
            assert client.request("status")["state"] == "Idle"
    finally:
        stop(proc)


def test_missing_ring_is_refused_and_changes_nothing(workdir, key_factory):
    proc = start_daemon(workdir, key_factory(), key_factory())
    try:
        with ControlClient(str(workdir / "ctl.sock")) as client:
            reply = client.request("configure_beam")
            assert not reply["ok"] and "not found: create it" in reply["error"]
            assert client.request("status")["state"] == "Idle"
    finally:
        stop(proc)


WRITER = """
import sys, time
from ringbuf import RingPairWriter
from services.stat.generate import BeamSpec, generate_heaps, pst_headers
from services.formats.pst import PstLayout
dk, wk, heaps = sys.argv[1], sys.argv[2], int(sys.argv[3])
dh, wh = pst_headers("mid", NCHAN=555, SCAN_ID=42, EB_ID="eb-test-1", STAT_REQ_TIME_BINS=4)
layout = PstLayout.from_headers(dh, wh)
with RingPairWriter(dk, wk, timeout=10) as writer, writer.open_transfer(dh, wh) as xfer:
    for block in range(1000):
        data, weights = generate_heaps(layout, BeamSpec(), block * heaps, heaps)
        with xfer.open_segment() as seg:
            seg.data[:] = data
            seg.weights[:] = weights
        print(block, flush=True)
        time.sleep(0.2)
"""


def test_writer_death_is_counted_and_the_next_transfer_is_sampled(workdir, pair):
    dk, wk, data_header, weights_header, layout = pair
    proc = start_daemon(workdir, dk, wk, "--autonomous")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, dk, wk, str(HEAPS_PER_BLOCK)],
                              stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(4):
            assert writer.stdout.readline()
        writer.kill()
        writer.wait(10)
        with ControlClient(str(workdir / "ctl.sock")) as client:
            deadline = time.monotonic() + 20
            while client.request("status")["counters"]["writer_died_total"] < 1:
                assert time.monotonic() < deadline, "svc-stat did not notice the writer died"
                time.sleep(0.2)
            before = client.request("status")["counters"]["segments_total"]
            write_blocks(dk, wk, data_header, weights_header, layout, 3, BeamSpec(), pause=0.4)
            deadline = time.monotonic() + 20
            while client.request("status")["counters"]["transfers_total"] < 2 or \
                    client.request("status")["counters"]["segments_total"] <= before:
                assert time.monotonic() < deadline, "the next transfer was not sampled"
                time.sleep(0.2)
            assert client.request("status")["state"] == "Scanning"
    finally:
        writer.kill()
        stop(proc)


def wait_for(client, counter, at_least, timeout=20):
    deadline = time.monotonic() + timeout
    while (value := client.request("status")["counters"][counter]) < at_least:
        assert time.monotonic() < deadline, f"{counter} stayed at {value}"
        time.sleep(0.2)
    return value


def test_scalar_publishing_survives_deconfigure_and_reset(workdir, pair):
    """Defect 3: the scalar socket lives as long as the beam configuration, not the process."""
    dk, wk, data_header, weights_header, layout = pair
    proc = start_daemon(workdir, dk, wk)
    messages = []
    try:
        with ControlClient(str(workdir / "ctl.sock")) as client:
            assert client.request("configure_beam")["ok"]
            assert (workdir / "pub.sock").is_socket()
            assert client.request("deconfigure_beam")["ok"]
            assert not (workdir / "pub.sock").exists()
            assert client.request("configure_beam")["ok"]
            assert client.request("reset")["ok"]
            assert client.request("configure_beam")["ok"]
            assert client.request("configure_scan", {"EB_ID": "eb-test-1"})["ok"]
            assert client.request("start_scan", {"SCAN_ID": 42})["ok"]

            def listen():
                for message in subscribe(workdir / "pub.sock", 20):
                    messages.append(message)
                    return

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            time.sleep(0.3)
            write_blocks(dk, wk, data_header, weights_header, layout, 2, BeamSpec(), pause=0.5)
            listener.join(20)
            assert wait_for(client, "published_total", 1) >= 1
            assert client.request("end_scan")["ok"]
    finally:
        stop(proc)
    assert len(messages) == 1
    assert messages[0]["scan_id"] == "42"
    assert messages[0]["real_pol_a_num_clipped_samples"] >= 0
    assert Path(messages[0]["file"]).is_file()


def test_live_and_offline_bin_one_recording_alike(workdir, pair):
    """Defect 6: STAT_* keys are the data header's under the configuration, live and offline.

    The recording's header asks for 4 time and 5 frequency bins; the configuration overrides
    the time bins (8) and leaves the frequency bins to the header, in both tools.
    """
    dk, wk, _, _, layout = pair
    data_header, weights_header = pst_headers(
        "mid", NCHAN=555, SCAN_ID=42, EB_ID="eb-test-1", STAT_REQ_TIME_BINS=4,
        STAT_REQ_FREQ_BINS=5, UTC_START="2023-02-14-22:15:37", OBS_OFFSET=0)
    spec = BeamSpec(sigma=9.0, tones={30: 20.0}, seed=3)
    proc = start_daemon(workdir, dk, wk)
    try:
        with ControlClient(str(workdir / "ctl.sock")) as client:
            assert client.request("configure_beam")["ok"]
            assert client.request("configure_scan", {"STAT_REQ_TIME_BINS": 8})["ok"]
            assert client.request("start_scan", {"SCAN_ID": 42})["ok"]
            time.sleep(0.3)
            write_blocks(dk, wk, data_header, weights_header, layout, 3, spec, pause=0.6)
            wait_for(client, "segments_total", 1)
            assert client.request("end_scan")["ok"]
    finally:
        stop(proc)
    live = sorted((workdir / "product" / "eb-test-1" / "pst-mid" / "42" / "monitoring_stats")
                  .glob("*.h5"))
    assert len(live) >= 1

    recording = workdir / "rec"
    write_pair(recording, data_header, weights_header, 3 * HEAPS_PER_BLOCK, spec)
    out = subprocess.run(
        [str(BIN / "stat-file-processor"), str(recording / "data"), "--segment-heaps",
         str(HEAPS_PER_BLOCK), "-o", "STAT_REQ_TIME_BINS=8", "--output", str(workdir / "off")],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    offline = {p.name.split("_")[1]: p for p in (workdir / "off").glob("*.h5")}
    assert len(offline) == 3
    for path in live:
        with h5py.File(path) as f, h5py.File(offline[path.name.split("_")[1]]) as g:
            assert (f["HEADER"][0]["NDAT_DS"], f["HEADER"][0]["NCHAN_DS"]) == (8, 5)
            assert (g["HEADER"][0]["NDAT_DS"], g["HEADER"][0]["NCHAN_DS"]) == (8, 5)
            for name in ("SPECTROGRAM", "TIMESERIES", "MEAN_SPECTRUM", "HISTOGRAM_1D_FREQ_AVG"):
                np.testing.assert_array_equal(f[name][()], g[name][()], err_msg=name)


def test_bad_stat_key_in_the_transfer_header_skips_it_with_one_line(workdir, pair):
    """Defect 6, live: a STAT_* key of the data header is validated like a configured one."""
    dk, wk, _, _, layout = pair
    data_header, weights_header = pst_headers("mid", NCHAN=555, SCAN_ID=42, EB_ID="eb-test-1",
                                              STAT_NREBIN=0)
    proc = start_daemon(workdir, dk, wk, "--autonomous")
    try:
        time.sleep(0.3)
        write_blocks(dk, wk, data_header, weights_header, layout, 2, BeamSpec(), pause=0.3)
        with ControlClient(str(workdir / "ctl.sock")) as client:
            assert wait_for(client, "bad_segments_invalid_total", 1) == 1
            counters = client.request("status")["counters"]
            assert counters["segments_total"] == 0 and counters["transfers_total"] == 1
    finally:
        stop(proc)
    lines = [line for line in proc.output().splitlines() if "skipped" in line]
    assert len(lines) == 1
    assert "STAT_NREBIN '0' (data header" in lines[0] and "must be positive" in lines[0]
    assert not list(workdir.rglob("*.h5"))
