"""MB/s of VisWriter turning ring-shaped blocks into a MeasurementSet, next to a plain
python-casacore putcol of the same arrays into the same table layout, and dd, on one disk.

Each measurement writes the same dumps: complex64 (dumps, nchan, nbaseline, 4) visibilities
plus (TCI, FD) weights, one dump per block. MB/s counts ring bytes (data + weights) per
second, from the first block to a closed MS after ``os.sync()``.

* writer (all FD 255): VisWriter.write_block per block (transpose, flags, weights, UVW
  from casacore.measures, flush per block), then close and rename.
* writer (flush 1 s): the same as the first, flushing at most once a second.
* writer (10 % lost): the same with 10 % of the visibilities FD 0 (flag + zero path).
* plain putcol: the arrays already in row order, one putcol per column per block into a
  table of the same layout (ms.create_ms), no per-block flush, then close.
* dd: ``dd bs=4M conv=fdatasync`` of the same number of bytes.
* daemon (flush 1 s / flush per block): the deployed path. A feeder process (this script
  with ``--feed``) writes the same dumps as one transfer into a real ring pair (4 buffers)
  through RingPairWriter; a running ``svc-mswrite --autonomous`` (MS_FLUSH_INTERVAL_S 1.0,
  the default, or 0) reads them and writes the MS. Timed from the feeder's go to the
  renamed NAME.ms after ``os.sync()``.

Usage: python benchmarks/mswrite_throughput.py [--dir DIR] [--nant 64] [--nchan 256] [--dumps 16]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from casacore import tables

from ringbuf import RingLayout, RingPairWriter, create_ring_pair, destroy_ring_pair
from services.common.processes import Process
from services.mswrite.metadata import PhaseCentre
from services.mswrite.ms import CONSTANT_COLUMNS, MsSpec, create_ms
from services.mswrite.sim_ms import random_layout
from services.mswrite.stream import FD_FULL, NPOL, WEIGHTS_DTYPE, VisStream
from services.mswrite.writer import VisWriter

TIME_LIMIT_S = 100.0
RING_NBUFS = 4
SVC_MSWRITE = Path(sys.executable).parent / "svc-mswrite"


def make_blocks(stream: VisStream, ndump: int, lost: float) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    shape = (1, stream.nchan, stream.nbaseline, NPOL)
    vis = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    blocks = []
    for d in range(ndump):
        weights = np.zeros(shape[:3], WEIGHTS_DTYPE)
        weights["FD"] = FD_FULL
        if lost:
            weights["FD"][rng.random(shape[:3]) < lost] = 0
        blocks.append(((vis + d).view(np.uint8).reshape(-1), weights.view(np.uint8).reshape(-1)))
    return blocks


def run_writer(path: Path, stream: VisStream, antennas, blocks, flush_s: float = 0.0) -> float:
    data_header, weights_header = stream.headers()
    writer = VisWriter.open(path, data_header, weights_header, antennas=antennas,
                            flush_interval_s=flush_s)
    start = time.perf_counter()
    for i, (data, weights) in enumerate(blocks):
        writer.write_block(data, weights, i)
    writer.close()
    os.sync()
    return time.perf_counter() - start


def run_plain(path: Path, stream: VisStream, antennas, blocks) -> float:
    spec = MsSpec(stream.chan_freqs(), stream.chan_width_hz, antennas,
                  PhaseCentre.from_degrees(*stream.phase_centre_deg), stream.int_time,
                  stream.scan_id, 5e9)
    create_ms(path, spec)
    nbl, nchan = stream.nbaseline, stream.nchan
    a1, a2 = stream.baselines()
    rows = [np.ascontiguousarray(np.frombuffer(d, np.complex64)
                                 .reshape(nchan, nbl, NPOL).transpose(1, 0, 2)) for d, _ in blocks]
    flag = np.zeros((nbl, nchan, NPOL), bool)
    wspec = np.ones((nbl, nchan, NPOL), np.float32)
    ones4 = np.ones((nbl, NPOL), np.float32)
    uvw = np.zeros((nbl, 3))
    table = tables.table(str(path), readonly=False, ack=False)
    start = time.perf_counter()
    for i, data in enumerate(rows):
        r = i * nbl
        table.addrows(nbl)
        for name, value in CONSTANT_COLUMNS.items():
            table.putcol(name, np.full(nbl, value, np.int32), r, nbl)
        for name in ("SCAN_NUMBER",):
            table.putcol(name, np.full(nbl, 1, np.int32), r, nbl)
        for name in ("INTERVAL", "EXPOSURE", "TIME", "TIME_CENTROID"):
            table.putcol(name, np.full(nbl, 5e9 + i), r, nbl)
        table.putcol("ANTENNA1", a1, r, nbl)
        table.putcol("ANTENNA2", a2, r, nbl)
        table.putcol("UVW", uvw, r, nbl)
        table.putcol("WEIGHT", ones4, r, nbl)
        table.putcol("SIGMA", ones4, r, nbl)
        table.putcol("FLAG_ROW", np.zeros(nbl, bool), r, nbl)
        table.putcol("DATA", data, r, nbl)
        table.putcol("FLAG", flag, r, nbl)
        table.putcol("WEIGHT_SPECTRUM", wspec, r, nbl)
    table.close()
    os.sync()
    return time.perf_counter() - start


def run_dd(path: Path, nbytes: int) -> float:
    count = max(1, nbytes // (4 << 20))
    start = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=4M", f"count={count}",
                    "conv=fdatasync"], check=True, capture_output=True)
    return (time.perf_counter() - start) * nbytes / (count * (4 << 20))


def bench_stream(nant: int, nchan: int, scan_id: int = 1) -> VisStream:
    return VisStream(scan_id=scan_id, utc_start="2024-06-01-12:00:00", time0_unix=1717243200.5,
                     int_time=1.0, nant=nant, nchan=nchan, start_channel=0,
                     freq0_hz=1e8, chan_width_hz=1e5, phase_centre_deg=(187.0, -26.8))


def feed(keys: list[str], nant: int, nchan: int, ndump: int) -> None:
    """Feeder process: on each 'go SCAN_ID' line of stdin, write one transfer of ``ndump``
    dumps (the values of make_blocks, all FD 255) into the ring pair; 'quit' ends."""
    stream = bench_stream(nant, nchan)
    rng = np.random.default_rng(0)
    shape = (stream.nchan, stream.nbaseline, NPOL)
    vis = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    weights = np.zeros(shape[:2], WEIGHTS_DTYPE)
    weights["FD"] = FD_FULL
    with RingPairWriter(keys[0], keys[1], timeout=60) as writer:
        print("ready", flush=True)
        for line in sys.stdin:
            if not line.startswith("go"):
                break
            data_header, weights_header = bench_stream(nant, nchan, int(line.split()[1])).headers()
            with writer.open_transfer(data_header, weights_header) as transfer:
                for d in range(ndump):
                    with transfer.open_segment(timeout=60) as seg:
                        np.add(vis, d, out=seg.data.view(np.complex64).reshape(shape))
                        seg.weights[:] = weights.view(np.uint8).reshape(-1)
            print("sent", flush=True)


class DaemonPath:
    """A ring pair, a running svc-mswrite on it and a feeder process: one MS per run()."""

    def __init__(self, out: Path, stream: VisStream, antenna_file: Path, ndump: int,
                 flush_s: float) -> None:
        self.out, self.stream = out, stream
        self.keys = [secrets.token_hex(4) for _ in range(2)]
        create_ring_pair(*self.keys, RingLayout(nbufs=RING_NBUFS, bufsz=stream.data_dump_bytes),
                         RingLayout(nbufs=RING_NBUFS, bufsz=stream.weights_dump_bytes))
        socket = out / "svc.sock"
        self.daemon = Process(
            "svc-mswrite",
            [SVC_MSWRITE, "--autonomous", "--socket", socket, "--log-level", "warning",
             "-o", f"DATA_KEY={self.keys[0]}", "-o", f"WEIGHTS_KEY={self.keys[1]}",
             "-o", f"MS_OUTPUT_DIR={out}", "-o", f"MS_ANTENNA_FILE={antenna_file}",
             "-o", f"MS_FLUSH_INTERVAL_S={flush_s}"], out / "svc-mswrite.log", socket)
        self.feeder = subprocess.Popen(
            [sys.executable, __file__, "--feed", *self.keys, "--nant", str(stream.nant),
             "--nchan", str(stream.nchan), "--dumps", str(ndump)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.feeder.stdout is not None and self.feeder.stdout.readline() == "ready\n"
        self.daemon.wait_ready()
        self.scan_id = 0

    def run(self, _path: Path) -> float:
        self.scan_id += 1
        final = self.out / f"scan{self.scan_id}_{self.stream.utc_start}.ms"
        assert self.feeder.stdin is not None and self.feeder.stdout is not None
        start = time.perf_counter()
        self.feeder.stdin.write(f"go {self.scan_id}\n")
        self.feeder.stdin.flush()
        while not final.exists():
            if self.daemon.proc.poll() is not None:
                raise RuntimeError(f"svc-mswrite exited: {self.daemon.tail()}")
            time.sleep(0.002)
        os.sync()
        elapsed = time.perf_counter() - start
        self.feeder.stdout.readline()
        shutil.rmtree(final)
        return elapsed

    def close(self) -> None:
        if self.feeder.stdin is not None:
            self.feeder.stdin.write("quit\n")
            self.feeder.stdin.close()
        self.feeder.wait(30)
        self.daemon.stop(30)
        destroy_ring_pair(*self.keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="directory on the disk to measure")
    parser.add_argument("--nant", type=int, default=64)
    parser.add_argument("--nchan", type=int, default=256)
    parser.add_argument("--dumps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--feed", nargs=2, metavar=("DATA_KEY", "WEIGHTS_KEY"),
                        help=argparse.SUPPRESS)  # the feeder process of the daemon path
    args = parser.parse_args()
    if args.feed:
        feed(args.feed, args.nant, args.nchan, args.dumps)
        return
    stream = bench_stream(args.nant, args.nchan)
    antennas = random_layout(args.nant, 3000.0, 1)
    nbytes = args.dumps * (stream.data_dump_bytes + stream.weights_dump_bytes)
    print(f"{args.nant} antennas ({stream.nbaseline} baselines), {args.nchan} channels, "
          f"{args.dumps} dumps of {(stream.data_dump_bytes + stream.weights_dump_bytes) / 1e6:.1f} "
          f"MB: {nbytes / 1e6:.0f} MB of ring blocks per run, {args.repeats} interleaved runs")
    full = make_blocks(stream, args.dumps, 0.0)
    lossy = make_blocks(stream, args.dumps, 0.1)
    results: dict[str, list[float]] = {
        "writer (all FD 255)": [], "writer (10% lost)": [], "writer (flush 1 s)": [],
        "daemon (flush 1 s)": [], "daemon (flush/block)": [], "plain putcol": [], "dd": []}
    deadline = time.monotonic() + TIME_LIMIT_S
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="mswrite-bench-") as tmp:
        antenna_file = Path(tmp) / "stations.txt"
        antennas.save(antenna_file)
        paths = []
        try:
            for flush_s in (1.0, 0.0):
                out = Path(tmp) / f"daemon-flush{flush_s:g}"
                out.mkdir()
                paths.append(DaemonPath(out, stream, antenna_file, args.dumps, flush_s))
            for rep in range(args.repeats):
                if time.monotonic() > deadline:
                    break
                for name, run in (
                        ("plain putcol", lambda p: run_plain(p, stream, antennas, full)),
                        ("writer (all FD 255)", lambda p: run_writer(p, stream, antennas, full)),
                        ("writer (10% lost)", lambda p: run_writer(p, stream, antennas, lossy)),
                        ("writer (flush 1 s)", lambda p: run_writer(p, stream, antennas, full,
                                                                    1.0)),
                        ("daemon (flush 1 s)", paths[0].run),
                        ("daemon (flush/block)", paths[1].run),
                        ("dd", lambda p: run_dd(p, nbytes))):
                    path = Path(tmp) / f"run{rep}-{len(results[name])}-{name.split()[0]}.ms"
                    results[name].append(nbytes / run(path) / 1e6)
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif path.exists():
                        path.unlink()
        finally:
            for daemon_path in paths:
                daemon_path.close()
    plain = float(np.median(results["plain putcol"]))
    for name, rates in results.items():
        median = float(np.median(rates))
        print(f"{name:22s} median {median:6.0f} MB/s ({median / plain:4.2f} x plain putcol), "
              f"best {max(rates):6.0f}   runs: {', '.join(f'{r:.0f}' for r in rates)}")
    for name in ("writer (all FD 255)", "daemon (flush 1 s)"):
        ratio = float(np.median(results[name])) / plain
        print(f"goal {name} >= 0.8 x plain putcol (medians): "
              f"{'MET' if ratio >= 0.8 else 'NOT MET'} ({ratio:.2f})")


if __name__ == "__main__":
    main()
