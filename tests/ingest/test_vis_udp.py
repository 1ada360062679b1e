"""Visibility profile over real UDP: sim-ms -> emu-send (process) -> receiver -> ring pair."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from services.formats import cbf_sdp
from services.senders.emu_send import MJD_UNIX_OFFSET_S, read_ms
from tests.ingest.helpers import free_ports, ingest_config, ingest_on_rings

BIN = Path(sys.executable).parent
NANT, NCHAN, NTIME, CPS = 4, 8, 4, 2
NBL = NANT * (NANT + 1) // 2


@pytest.fixture(scope="module")
def ms(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ms") / "sim.ms"
    subprocess.run([BIN / "sim-ms", str(out), "--nant", str(NANT), "--nchan", str(NCHAN),
                    "--ntime", str(NTIME), "--source", "2,0,0", "--source", "1,5,-3",
                    "--noise-jy", "0.1"], check=True, capture_output=True)
    return out


def emu_send(ms: Path, port: int, *options: str) -> subprocess.CompletedProcess:
    args = [BIN / "emu-send", str(ms), "-o", f"transmission.target_port_start={port}",
            "-o", f"transmission.channels_per_stream={CPS}", "-o", "transmission.rate=2e7",
            "-o", "transmission.scan_id=77"]
    for opt in options:
        args += ["-o", opt]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def vis_config(key_factory, port: int, **extra):
    return ingest_config(DATA_KEY=key_factory(), WEIGHTS_KEY=key_factory(), PORT_START=port,
                         NSTREAMS=NCHAN // CPS, NANT=NANT, NCHAN=NCHAN, CHANNELS_PER_STREAM=CPS,
                         INT_TIME=1.0, BIND_HOST="127.0.0.1", STREAM_TIMEOUT_S=3, **extra)


@pytest.mark.parametrize("byte_order", ["big", "little"])
def test_round_trip_value_for_value(ms, key_factory, byte_order):
    port = free_ports(NCHAN // CPS)
    cfg = vis_config(key_factory, port, IMMEDIATE_BYTE_ORDER=byte_order)
    with ingest_on_rings(cfg, NCHAN * NBL * 32, NCHAN * NBL * 2) as (out, rx, reader):
        time.sleep(0.5)
        sent = emu_send(ms, port, f"transmission.immediate_byte_order={byte_order}")
        assert sent.returncode == 0, sent.stderr
        rx.join(20)
        reader.join(20)
    assert not out.errors, out.errors
    assert out.result is not None and out.result.reason == "end"
    expected = read_ms(str(ms), 0, 0, 0)
    assert len(out.data) == NTIME
    for k in range(NTIME):
        vis = out.data[k].view(np.complex64).reshape(NCHAN, NBL, 4)
        np.testing.assert_array_equal(vis, expected.payload["VIS"][k])
        wts = out.weights[k].view(cbf_sdp.WEIGHTS_DTYPE).reshape(NCHAN, NBL)
        np.testing.assert_array_equal(wts["FD"], expected.payload["FD"][k])
        np.testing.assert_array_equal(wts["TCI"], 0)
        assert out.offsets[k] == k * NCHAN * NBL * 32
    h = out.data_header
    assert h["DATA_KIND"] == "VIS" and out.weights_header["DATA_KIND"] == "VIS_WEIGHTS"
    assert h.get_int("SCAN_ID") == 77
    assert h.get_int("NBASELINE") == NBL and h.get_int("NCHAN") == NCHAN
    assert h["BASELINE_ORDER"] == "upper-triangle-with-autos" and h["ICD_EPOCH"] == "UNIX"
    from casacore import tables
    with tables.table(str(ms), ack=False) as t:
        t0 = t.getcol("TIME")[0] - MJD_UNIX_OFFSET_S
    assert abs(h.get_float("TIME0_UNIX") - t0) < 1e-5
    assert h.get_float("FREQ0_HZ") == pytest.approx(150e6)
    assert h.get_float("CHAN_WIDTH_HZ") == pytest.approx(100e3)
    assert h.get_int("RESOLUTION") == NCHAN * NBL * 32
    assert out.weights_header.get_int("RESOLUTION") == NCHAN * NBL * 2
    c = out.receiver.counters
    assert c.heaps_complete_total == NTIME * NCHAN // CPS
    assert c.heaps_lost_total == 0 and c.start_heaps_total == NCHAN // CPS
    assert c.end_heaps_total == NCHAN // CPS


def test_dropped_heaps_are_flagged_holes(ms, key_factory):
    port = free_ports(NCHAN // CPS)
    cfg = vis_config(key_factory, port)
    with ingest_on_rings(cfg, NCHAN * NBL * 32, NCHAN * NBL * 2) as (out, rx, reader):
        time.sleep(0.5)
        sent = emu_send(ms, port, "transmission.skip_heaps=1:0,2:3,2:1")
        assert sent.returncode == 0, sent.stderr
        rx.join(20)
        reader.join(20)
    assert not out.errors, out.errors
    expected = read_ms(str(ms), 0, 0, 0)
    holes = {(1, 0), (2, 3), (2, 1)}
    for k in range(NTIME):
        vis = out.data[k].view(np.complex64).reshape(NCHAN // CPS, CPS, NBL, 4)
        fd = out.weights[k].view(cbf_sdp.WEIGHTS_DTYPE).reshape(NCHAN // CPS, CPS, NBL)["FD"]
        exp = expected.payload.reshape(NTIME, NCHAN // CPS, CPS, NBL)[k]
        for s in range(NCHAN // CPS):
            if (k, s) in holes:
                assert not vis[s].any() and not fd[s].any()
            else:
                np.testing.assert_array_equal(vis[s], exp["VIS"][s])
                np.testing.assert_array_equal(fd[s], exp["FD"][s])
    c = out.receiver.counters
    assert c.heaps_lost_total == 3
    assert c.heaps_complete_total == NTIME * NCHAN // CPS - 3


def test_emu_send_bad_input_is_one_line(tmp_path):
    result = subprocess.run([BIN / "emu-send", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "not a MeasurementSet" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([BIN / "emu-send", str(tmp_path), "-o", "reader.num_chan=x"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "reader.num_chan" in result.stderr
    assert "Traceback" not in result.stderr
