"""The voltage-beam flow: beam-send -> svc-ingest -> ring pair -> svc-stat + ringbuf record.

svc-stat samples the live ring pair into HDF5 files; ``stat-file-processor`` then processes
the recording offline, segment for segment, and every live file must hold the same numbers as
the offline file of the same OBS_OFFSET; ``stat-plot`` draws one of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ringbuf import RingLayout
from services.common.processes import ProcessGroup, free_udp_ports, options, run_tool, tool
from services.stat.hdf5_schema import DATASETS

# a small SKA-Low-like beam: 432 channels, 16-bit, PST packets of 24 channels x 32 samples
SHAPE: dict[str, Any] = {
    "NCHAN": 432, "NBIT": 16, "UDP_NCHAN": 24, "UDP_NSAMP": 32, "WT_NSAMP": 32,
    "TSAMP": 207.36, "FREQ": 87.5, "BW": 1.5625, "TELESCOPE": "SKALow",
    "EB_ID": "eb-demo-20261121-00001", "BEAM_ID": 1, "SOURCE": "J0437-4715",
}


@dataclass(frozen=True)
class BeamParams:
    duration_s: float = 3.0
    heaps_per_block: int = 16
    nbufs: int = 32
    scan_id: int = 11
    sigma: float = 10.0
    tone_channel: int = 100
    nan_every: int = 97
    stat_delay_ms: int = 300

    @property
    def data_heap_nbytes(self) -> int:
        return SHAPE["UDP_NSAMP"] * SHAPE["NCHAN"] * 2 * 2 * SHAPE["NBIT"] // 8

    @property
    def weights_heap_nbytes(self) -> int:
        packets = SHAPE["NCHAN"] // SHAPE["UDP_NCHAN"]
        return packets * (4 + SHAPE["UDP_NCHAN"] * SHAPE["UDP_NSAMP"] // SHAPE["WT_NSAMP"] * 2)


@dataclass
class BeamReport:
    ingest: dict[str, int]
    stat: dict[str, int]
    recorded: dict[str, object]
    live_files: list[Path]
    offline_files: list[Path]
    compared: int
    mismatches: list[str] = field(default_factory=list)
    plot: Path | None = None

    @property
    def ok(self) -> bool:
        lost = self.ingest.get("heaps_lost_total", 1)
        return self.compared > 0 and not self.mismatches and lost == 0


def start_beam_chain(group: ProcessGroup, params: BeamParams, work: Path) -> tuple[int, str, str]:
    """Rings, svc-ingest (beam), svc-stat and ringbuf record; (port, data key, weights key)."""
    dk, wk = group.ring_pair(
        RingLayout(params.nbufs, params.heaps_per_block * params.data_heap_nbytes),
        RingLayout(params.nbufs, params.heaps_per_block * params.weights_heap_nbytes))
    port = free_udp_ports(1)
    ingest = {"PROFILE": "beam", "DATA_KEY": dk, "WEIGHTS_KEY": wk, "BIND_HOST": "127.0.0.1",
              "PORT_START": port, "STREAM_TIMEOUT_S": 3, "LOG_INTERVAL_S": 5, **SHAPE}
    sock = group.socket_path("ingest-beam")
    group.start("svc-ingest-beam",
                [tool("svc-ingest"), "--autonomous", "--socket", sock, *options(ingest)], sock)
    stat = {"DATA_KEY": dk, "WEIGHTS_KEY": wk, "STAT_PROC_DELAY_MS": params.stat_delay_ms,
            "STAT_BASE_PATH": work / "live", "LOG_INTERVAL_S": 5}
    group.start("svc-stat", [tool("svc-stat"), "--autonomous", "--socket",
                group.socket_path("stat"), *options(stat)], group.socket_path("stat"))
    group.start("ringbuf-record", [tool("ringbuf"), "record", "-k", dk, "--weights-key", wk,
                                   "-D", work / "rec", "--transfers", 1, "--json"])
    return port, dk, wk


def beam_options(port: int, params: BeamParams) -> list[str]:
    """beam-send's options for this beam: noise, a tone and NaN-scale packets."""
    return options({
        **{k: v for k, v in SHAPE.items() if k not in ("EB_ID", "BEAM_ID", "SOURCE")},
        "DATA_HOST": "127.0.0.1", "DATA_PORT": port, "SCAN_ID": params.scan_id,
        "beam.sigma": params.sigma, "beam.tone_channels": params.tone_channel,
        "beam.nan_every": params.nan_every, "beam.duration_s": params.duration_s,
    })


def send(port: int, params: BeamParams) -> None:
    run_tool([tool("beam-send"), *beam_options(port, params)], timeout=120 + 3 * params.duration_s)


def compare_files(live: list[Path], offline: list[Path]) -> tuple[int, list[str]]:
    """Compare each live file with the offline file of the same OBS_OFFSET, dataset by dataset."""
    by_offset = {path.stem.split("_")[1]: path for path in offline}
    compared, mismatches = 0, []
    for path in live:
        twin = by_offset.get(path.stem.split("_")[1])
        if twin is None:
            mismatches.append(f"{path.name}: no offline file for its OBS_OFFSET")
            continue
        with h5py.File(path) as a, h5py.File(twin) as b:
            for name, _ in DATASETS:
                if not np.array_equal(a[name][...], b[name][...], equal_nan=True):
                    mismatches.append(f"{path.name}: {name} differs from {twin.name}")
            for member in ("NUM_SAMPLES", "NUM_INVALID_PACKETS", "T_MIN", "NCHAN_DS", "NDAT_DS"):
                if a["HEADER"][0][member] != b["HEADER"][0][member]:
                    mismatches.append(f"{path.name}: HEADER {member} differs from {twin.name}")
        compared += 1
    return compared, mismatches


def run_beam_flow(group: ProcessGroup, params: BeamParams) -> BeamReport:
    work = group.workdir / "beam"
    work.mkdir(parents=True, exist_ok=True)
    port, _, _ = start_beam_chain(group, params, work)
    time.sleep(0.5)
    send(port, params)
    group.wait("ringbuf-record", timeout=60)
    record_log = group.processes["ringbuf-record"].log.read_text()
    recorded = json.loads(record_log.strip().splitlines()[-1])
    deadline = time.monotonic() + 30
    while group.status("svc-stat")["counters"]["transfers_total"] < 1 or \
            group.status("svc-stat")["state"] != "Scanning":
        if time.monotonic() > deadline:
            raise RuntimeError(f"svc-stat saw no transfer: {group.tail('svc-stat')}")
        time.sleep(0.2)
    time.sleep(1.0 + params.stat_delay_ms / 1000)  # let it finish the last sample
    stat = group.status("svc-stat")["counters"]
    ingest = group.status("svc-ingest-beam")["counters"]
    live = sorted((work / "live").rglob("*.h5"))
    run_tool([tool("stat-file-processor"), work / "rec" / "data", "--segment-heaps",
              params.heaps_per_block, "--output", work / "offline", "--no-progress"], timeout=300)
    offline = sorted((work / "offline").glob("*.h5"))
    compared, mismatches = compare_files(live, offline)
    report = BeamReport(ingest, stat, recorded, live, offline, compared, mismatches)
    if live:
        report.plot = work / "summary.png"
        run_tool([tool("stat-plot"), live[len(live) // 2], "--output", report.plot], timeout=120)
    return report
