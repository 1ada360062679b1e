"""Helpers of the svc-avg process tests: input headers, a feeder, starting the daemons."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from ringbuf import DadaHeader, RingLayout, RingPairWriter
from services.avg.average import WEIGHTS_DTYPE
from services.common.processes import ProcessGroup, options, tool

ROOT = Path(__file__).resolve().parents[2]
STATIONS = ROOT / "configs" / "vis-stations.txt"
NANT, NBL, NPOL = 4, 10, 4
TIME0, DT, FREQ0, WIDTH, START = 1717243200.5, 1.0, 100e6, 200e3, 16


def headers(nchan: int, scan_id: int = 7) -> tuple[DadaHeader, DadaHeader]:
    """Data and weights headers as svc-ingest writes them (docs/ingest.md)."""
    common: dict[str, object] = {
        "SCAN_ID": scan_id, "UTC_START": "2024-06-01-12:00:00", "TIME0_UNIX": repr(TIME0),
        "INT_TIME": repr(DT), "ICD_EPOCH": "UNIX", "NANT": NANT, "NBASELINE": NBL,
        "BASELINE_ORDER": "upper-triangle-with-autos", "NCHAN": nchan, "START_CHANNEL": START,
        "FREQ0_HZ": repr(FREQ0), "CHAN_WIDTH_HZ": repr(WIDTH), "NPOL": NPOL,
        "POL_ORDER": "XX,XY,YX,YY", "NDIM": 2, "DUMPS_PER_BLOCK": 1, "TELESCOPE": "SKA-Low",
        "PHASE_CENTRE_RA_DEG": "187.0", "PHASE_CENTRE_DEC_DEG": "-26.8"}
    data = DadaHeader({"DATA_KIND": "VIS", **common, "NBIT": 32,
                       "RESOLUTION": nchan * NBL * NPOL * 8}, source="data header")
    weights = DadaHeader({"DATA_KIND": "VIS_WEIGHTS", **common, "NBIT": 8,
                          "RESOLUTION": nchan * NBL * 2}, source="weights header")
    return data, weights


def make_dumps(nin: int, nchan: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (nin, nchan, NBL, NPOL)
    vis = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    w = np.zeros((nin, nchan, NBL), WEIGHTS_DTYPE)
    w["FD"] = rng.integers(1, 256, size=w.shape)
    w["FD"][rng.random(w.shape) < 0.15] = 0
    w["FD"][2, :, 3] = 0  # one whole dump of baseline 3 lost
    return vis, w


def pair(group: ProcessGroup, nchan: int, nbufs: int, dumps: int = 1) -> tuple[str, str]:
    return group.ring_pair(RingLayout(nbufs=nbufs, bufsz=dumps * nchan * NBL * NPOL * 8),
                           RingLayout(nbufs=nbufs, bufsz=dumps * nchan * NBL * 2))


def start_avg(group: ProcessGroup, name: str, keys: tuple[str, str, str, str],
              settings: dict[str, Any]) -> Any:
    dk, wk, odk, owk = keys
    sock = group.socket_path(name)
    args = [sys.executable, "-m", "services.avg.main", "--socket", sock, "--autonomous",
            *options({"DATA_KEY": dk, "WEIGHTS_KEY": wk, "OUT_DATA_KEY": odk,
                      "OUT_WEIGHTS_KEY": owk, **settings})]
    return group.start(name, args, sock)


def start_mswrite(group: ProcessGroup, keys: tuple[str, str], outdir: Path) -> Any:
    sock = group.socket_path("msw")
    args = [tool("svc-mswrite"), "--socket", sock, "--autonomous",
            *options({"DATA_KEY": keys[0], "WEIGHTS_KEY": keys[1], "MS_OUTPUT_DIR": outdir,
                      "MS_ANTENNA_FILE": STATIONS, "MS_FLUSH_INTERVAL_S": 0})]
    return group.start("msw", args, sock)


def feed(keys: tuple[str, str], vis: np.ndarray, w: np.ndarray, nchan: int,
         scan_id: int = 7, pause: Any = None) -> None:
    """Write the dumps into the ring pair as one transfer, one dump per block."""
    dh, wh = headers(nchan, scan_id)
    with RingPairWriter(keys[0], keys[1], timeout=30) as writer:
        with writer.open_transfer(dh, wh) as transfer:
            for d in range(vis.shape[0]):
                with transfer.open_segment(timeout=30) as seg:
                    seg.data[:] = vis[d].view(np.uint8).reshape(-1)
                    seg.weights[:] = w[d].view(np.uint8).reshape(-1)
                if pause is not None:
                    pause(d)
