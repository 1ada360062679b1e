"""MB/s of svc-avg (RFI flagging + averaging) next to svc-mswrite on the same dumps, in the
same run, and next to a plain numpy reshape-mean of the same arrays.

Every measurement takes the same dumps (complex64 (dumps, nchan, nbaseline, 4) plus (TCI, FD)
weights, one dump per ring block, the values of benchmarks/mswrite_throughput.py) and counts
input ring bytes (data + weights) per second:

* compute, flag + average: Flagger.apply then Averager.add per block, in this process.
* compute, average only: Averager.add per block.
* numpy reshape-mean: ``data.reshape(...).mean(axis=(1, 3))`` of the whole run at once (no
  weights, no flags: the floor any averaging pays).
* svc-avg daemon (flag on / off): the deployed path. A feeder process writes the dumps as
  one transfer into a ring pair (16 buffers); a running ``svc-avg --autonomous`` averages
  them into a second pair (8 buffers); a guaranteed reader in this process drains that.
  Timed from the feeder's go to the end of the averaged transfer.
* svc-mswrite daemon (flush 1 s): mswrite_throughput's daemon path (a feeder, a 4-buffer
  pair, ``svc-mswrite --autonomous``), timed to the renamed MS after ``os.sync()``.

svc-avg keeps up with the chain when its daemon rate is at least svc-mswrite's (its output is
AVG_TIME_DUMPS x AVG_CHANNELS smaller than what svc-mswrite writes here).

Usage: python benchmarks/avg_throughput.py [--dir DIR] [--nant 64] [--nchan 256] [--dumps 16]
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mswrite_throughput as msw  # noqa: E402  (the sibling benchmark: same data, same feeder)

from ringbuf import RingLayout, RingPairReader, create_ring_pair, destroy_ring_pair  # noqa: E402
from services.avg.average import WEIGHTS_DTYPE, Averager, AvgPlan  # noqa: E402
from services.avg.flagger import Flagger, FlagSettings  # noqa: E402
from services.common.processes import Process  # noqa: E402
from services.mswrite.sim_ms import random_layout  # noqa: E402

TIME_LIMIT_S = 150.0


def make_blocks(nant: int, nchan: int, ndump: int) -> tuple[np.ndarray, np.ndarray]:
    """The dumps the feeder writes (mswrite_throughput.feed): VIS + d, every FD 255."""
    stream = msw.bench_stream(nant, nchan)
    rng = np.random.default_rng(0)
    shape = (stream.nchan, stream.nbaseline, 4)
    vis = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    data = np.stack([vis + np.complex64(d) for d in range(ndump)])
    weights = np.zeros((ndump, *shape[:2]), WEIGHTS_DTYPE)
    weights["FD"] = 255
    return data, weights


def run_compute(data: np.ndarray, weights: np.ndarray, n: int, m: int, flag: bool) -> float:
    nd, nchan, nbl, _ = data.shape
    start = time.perf_counter()
    avg = Averager(AvgPlan(nchan, nbl, n, m))
    flagger = Flagger(FlagSettings())
    for d in range(nd):
        w = np.array(weights[d:d + 1])
        if flag:
            flagger.apply(data[d:d + 1], w)
        avg.add(data[d:d + 1], w, d)
    avg.finish()
    return time.perf_counter() - start


def run_reshape_mean(data: np.ndarray, n: int, m: int) -> float:
    nd, nchan, nbl, _ = data.shape
    start = time.perf_counter()
    data.reshape(nd // n, n, nchan // m, m, nbl, 4).mean(axis=(1, 3))
    return time.perf_counter() - start


class AvgDaemonPath:
    """Ring pairs A and B, svc-avg between them, a feeder into A and a drain of B."""

    def __init__(self, out: Path, nant: int, nchan: int, ndump: int, n: int, m: int,
                 flag: bool) -> None:
        stream = msw.bench_stream(nant, nchan)
        self.keys = [secrets.token_hex(4) for _ in range(4)]
        nco = nchan // m
        create_ring_pair(*self.keys[:2], RingLayout(nbufs=16, bufsz=stream.data_dump_bytes),
                         RingLayout(nbufs=16, bufsz=stream.weights_dump_bytes))
        create_ring_pair(*self.keys[2:], RingLayout(nbufs=8, bufsz=nco * stream.nbaseline * 32),
                         RingLayout(nbufs=8, bufsz=nco * stream.nbaseline * 2))
        socket = out / f"avg{int(flag)}.sock"
        self.daemon = Process(
            "svc-avg",
            [sys.executable, "-m", "services.avg.main", "--autonomous", "--socket", socket,
             "--log-level", "warning", "-o", f"DATA_KEY={self.keys[0]}",
             "-o", f"WEIGHTS_KEY={self.keys[1]}", "-o", f"OUT_DATA_KEY={self.keys[2]}",
             "-o", f"OUT_WEIGHTS_KEY={self.keys[3]}", "-o", f"AVG_TIME_DUMPS={n}",
             "-o", f"AVG_CHANNELS={m}", "-o", f"FLAG_ENABLE={str(flag).lower()}"],
            out / f"avg{int(flag)}.log", socket)
        self.feeder = subprocess.Popen(
            [sys.executable, msw.__file__, "--feed", *self.keys[:2], "--nant", str(nant),
             "--nchan", str(nchan), "--dumps", str(ndump)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.feeder.stdout is not None and self.feeder.stdout.readline() == "ready\n"
        self.reader = RingPairReader(*self.keys[2:], timeout=60)
        self.daemon.wait_ready()
        self.scan_id = 0

    def run(self) -> float:
        self.scan_id += 1
        assert self.feeder.stdin is not None and self.feeder.stdout is not None
        done = threading.Event()

        def drain() -> None:
            transfer = self.reader.open_transfer()
            for _seg in transfer:
                pass
            done.set()

        thread = threading.Thread(target=drain)
        thread.start()
        start = time.perf_counter()
        self.feeder.stdin.write(f"go {self.scan_id}\n")
        self.feeder.stdin.flush()
        thread.join(120)
        if not done.is_set():
            raise RuntimeError("svc-avg produced no complete transfer")
        elapsed = time.perf_counter() - start
        self.feeder.stdout.readline()
        return elapsed

    def close(self) -> None:
        self.reader.close()
        if self.feeder.stdin is not None:
            self.feeder.stdin.write("quit\n")
            self.feeder.stdin.close()
        self.feeder.wait(30)
        self.daemon.stop(30)
        destroy_ring_pair(*self.keys[:2])
        destroy_ring_pair(*self.keys[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="directory for svc-mswrite's MS")
    parser.add_argument("--nant", type=int, default=64)
    parser.add_argument("--nchan", type=int, default=256)
    parser.add_argument("--dumps", type=int, default=16)
    parser.add_argument("--time-dumps", type=int, default=4)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, m = args.time_dumps, args.channels
    data, weights = make_blocks(args.nant, args.nchan, args.dumps)
    nbytes = data.nbytes + weights.nbytes
    nbl = data.shape[2]
    print(f"{args.nant} antennas ({nbl} baselines), {args.nchan} channels, {args.dumps} dumps: "
          f"{nbytes / 1e6:.0f} MB of ring blocks per run; averaging {n} dumps x {m} channels; "
          f"{args.repeats} interleaved runs")
    results: dict[str, list[float]] = {
        "svc-avg daemon (flag on)": [], "svc-avg daemon (flag off)": [],
        "svc-mswrite daemon (flush 1 s)": [], "compute: flag + average": [],
        "compute: average only": [], "numpy reshape-mean": []}
    deadline = time.monotonic() + TIME_LIMIT_S
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="avg-bench-") as tmp:
        antenna_file = Path(tmp) / "stations.txt"
        random_layout(args.nant, 3000.0, 1).save(antenna_file)
        msw_out = Path(tmp) / "ms"
        msw_out.mkdir()
        paths: list[AvgDaemonPath] = []
        msw_path = None
        try:
            paths = [AvgDaemonPath(Path(tmp), args.nant, args.nchan, args.dumps, n, m, flag)
                     for flag in (True, False)]
            msw_path = msw.DaemonPath(msw_out, msw.bench_stream(args.nant, args.nchan),
                                      antenna_file, args.dumps, 1.0)
            for _rep in range(args.repeats):
                if time.monotonic() > deadline:
                    break
                for name, run in (
                        ("svc-avg daemon (flag on)", paths[0].run),
                        ("svc-mswrite daemon (flush 1 s)",
                         lambda: msw_path.run(Path(tmp))),  # type: ignore[union-attr]
                        ("svc-avg daemon (flag off)", paths[1].run),
                        ("compute: flag + average",
                         lambda: run_compute(data, weights, n, m, True)),
                        ("compute: average only",
                         lambda: run_compute(data, weights, n, m, False)),
                        ("numpy reshape-mean", lambda: run_reshape_mean(data, n, m))):
                    results[name].append(nbytes / run() / 1e6)
        finally:
            for path in paths:
                path.close()
            if msw_path is not None:
                msw_path.close()
    ref = float(np.median(results["svc-mswrite daemon (flush 1 s)"]))
    for name, rates in results.items():
        median = float(np.median(rates))
        print(f"{name:32s} median {median:7.0f} MB/s ({median / ref:5.2f} x svc-mswrite)  "
              f"runs: {', '.join(f'{r:.0f}' for r in rates)}")
    ratio = float(np.median(results["svc-avg daemon (flag on)"])) / ref
    print(f"goal svc-avg (flag on) >= svc-mswrite (medians, same data, same run): "
          f"{'MET' if ratio >= 1.0 else 'NOT MET'} ({ratio:.2f})")


if __name__ == "__main__":
    main()
