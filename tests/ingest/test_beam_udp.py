"""Voltage-beam profile over real UDP: beam-send (process) -> receiver -> SKA PST ring pair."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from services.common.config import ConfigSource, build_config
from services.formats.pst import PstLayout
from services.senders.beam_send import BeamSendConfig, generate
from tests.ingest.helpers import free_ports, ingest_config, ingest_on_rings

BIN = Path(sys.executable).parent
SHAPE = {"NCHAN": 48, "UDP_NCHAN": 24, "UDP_NSAMP": 32, "WT_NSAMP": 32, "NBIT": 16,
         "TSAMP": 207.36}
NHEAPS, HPB = 8, 2
GEN = {"beam.duration_s": NHEAPS * 32 * 207.36e-6, "beam.nan_every": 5, "beam.pool_heaps": 3,
       "beam.tone_channels": "30", "beam.clip_fraction": 0.01, "beam.sigma": 20,
       "beam.sigma_end": 40, "SCAN_ID": 4242}
SKIP = "3:1,6:0"


def test_beam_byte_for_byte_with_dropped_and_nan_packets(key_factory):
    port = free_ports(1)
    cfg = ingest_config(PROFILE="beam", DATA_KEY=key_factory(), WEIGHTS_KEY=key_factory(),
                        PORT_START=port, BIND_HOST="127.0.0.1", STREAM_TIMEOUT_S=3,
                        TELESCOPE="SKALow", FREQ=87.5, BW=1.5625, **SHAPE)
    send_values = {**SHAPE, **GEN, "DATA_PORT": port, "beam.skip_packets": SKIP}
    packet_data = 2 * 24 * 32 * 2 * 2
    with ingest_on_rings(cfg, HPB * 2 * packet_data, HPB * 2 * 52) as (out, rx, reader):
        time.sleep(0.5)
        args = [BIN / "beam-send"]
        for k, v in send_values.items():
            args += ["-o", f"{k}={v}"]
        sent = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        rx.join(20)
        reader.join(20)
    assert not out.errors, out.errors
    pool = generate(build_config(BeamSendConfig, ConfigSource(overrides=(("t", send_values),))))
    skipped = {(3, 1), (6, 0)}
    data = np.concatenate(out.data).reshape(NHEAPS, 2, packet_data)
    weights = np.concatenate(out.weights).reshape(NHEAPS, 2, 52)
    for n in range(NHEAPS):
        for p in range(2):
            scale = weights[n, p, :4].view(np.float32)[0]
            if (n, p) in skipped:
                assert not data[n, p].any() and not weights[n, p, 4:].any()
                assert np.isnan(scale)
                continue
            assert data[n, p].tobytes() == pool.data[n % 3, p].tobytes()
            assert weights[n, p, 4:].tobytes() == pool.weights[n % 3, p].tobytes()
            assert scale.tobytes() == pool.scale[n % 3, p].tobytes()
    assert np.isnan(pool.scale).sum() > 0  # NaN packets really were sent
    h, w = out.data_header, out.weights_header
    assert h.get_int("RESOLUTION") == 2 * packet_data and w.get_int("RESOLUTION") == 2 * 52
    assert h.get_int("NBIT") == 16 and h.get_int("NPOL") == 2 and h.get_int("NDIM") == 2
    assert w.get_int("NBIT") == 16 and w.get_int("NPOL") == 1 and w.get_int("NDIM") == 1
    for key in ("UDP_NSAMP", "UDP_NCHAN", "WT_NSAMP", "NCHAN"):
        assert h[key] == w[key]
    assert w.get_int("PACKET_WEIGHTS_SIZE") == 48 and w.get_int("PACKET_SCALES_SIZE") == 4
    assert h.get_int("SCAN_ID") == 4242 and h["TELESCOPE"] == "SKALow"
    assert h.get_float("BYTES_PER_SECOND") == 2 * packet_data / (32 * 207.36e-6)
    # the headers ingest writes describe the one PST layout svc-stat reads them with
    assert PstLayout.from_headers(h, w) == PstLayout.from_shape(48, 24, 32, 32, 16)
    c = out.receiver.counters
    assert c.heaps_lost_total == 2 and c.heaps_complete_total == NHEAPS * 2 - 2
