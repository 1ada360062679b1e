"""Two subbands on one host from configs/sb1*.hdr and configs/sb2*.hdr: two ingest instances on
separate port ranges, two ring pairs, two MS writers, each MS holding its own channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from ringbuf import RingLayout
from ringbuf.header import DadaHeader
from ringbuf.pairconfig import pair_config
from services.common.processes import ProcessGroup, free_udp_ports, options, run_tool, tool
from services.demo.vis_flow import wait_for_ms

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = pytest.mark.timeout(300)


def test_two_subbands_each_write_their_channels(tmp_path):
    model = tmp_path / "sky.ms"
    run_tool([tool("sim-ms"), model, "--layout", CONFIGS / "vis-stations.txt", "--nchan", 64,
              "--ntime", 4, "--ra", 187.0, "--dec", -26.8, "--seed", 5], timeout=300)
    port = free_udp_ports(4)
    with ProcessGroup(tmp_path) as group:
        stations = CONFIGS / "vis-stations.txt"
        for index, sb in enumerate(("sb1", "sb2")):
            rings = pair_config(DadaHeader.load(CONFIGS / f"{sb}.hdr"))
            data, weights = rings.data_layout, rings.weights_layout
            dk, wk = group.ring_pair(RingLayout(data.nbufs, data.bufsz),
                                     RingLayout(weights.nbufs, weights.bufsz))
            keys = {"DATA_KEY": dk, "WEIGHTS_KEY": wk}
            (tmp_path / sb).mkdir()
            sock = group.socket_path(f"ingest-{sb}")
            group.start(f"ingest-{sb}", [tool("svc-ingest"), "-c", CONFIGS / f"{sb}.hdr",
                                         "-c", CONFIGS / f"{sb}-ingest.hdr", "--socket", sock,
                                         *options({**keys, "PORT_START": port + 2 * index})], sock)
            sock = group.socket_path(f"mswrite-{sb}")
            group.start(f"mswrite-{sb}", [tool("svc-mswrite"), "-c", CONFIGS / f"{sb}.hdr",
                                          "-c", CONFIGS / f"{sb}-mswrite.hdr", "--socket", sock,
                                          *options({**keys, "MS_OUTPUT_DIR": tmp_path / sb,
                                                    "MS_ANTENNA_FILE": stations})],
                        sock)
        run_tool([tool("emu-send"), model, *options({
            "transmission.target_port_start": port, "transmission.channels_per_stream": 16,
            "transmission.time_interval": 0.1, "transmission.scan_id": 3})], timeout=120)
        outputs = {}
        for sb in ("sb1", "sb2"):
            outputs[sb], counters = wait_for_ms(group, f"mswrite-{sb}", tmp_path / sb,
                                                "scan3_*.ms", timeout=60)
            assert counters["dumps_written_total"] == 4
            assert group.status(f"ingest-{sb}")["counters"]["heaps_lost_total"] == 0
    with table(str(model), ack=False) as t:
        source = t.getcol("DATA")
        source_uvw = t.getcol("UVW")
    with table(str(model / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = spw.getcol("CHAN_FREQ")[0]
    for index, sb in enumerate(("sb1", "sb2")):
        channels = slice(32 * index, 32 * (index + 1))
        with table(str(outputs[sb]), ack=False) as t:
            np.testing.assert_array_equal(t.getcol("DATA"), source[:, channels])
            np.testing.assert_allclose(t.getcol("UVW"), source_uvw, atol=1e-3)
            assert sb in outputs[sb].name
        with table(str(outputs[sb] / "SPECTRAL_WINDOW"), ack=False) as spw:
            np.testing.assert_allclose(spw.getcol("CHAN_FREQ")[0], freqs[channels])
