"""Throughput of stat-file-processor (mmap read + every statistic + HDF5 write), in MB/s.

Generates a Low-like 16-bit recording (20736 channels) and a Mid-like 8-bit one (11655
channels, UDP 4 x 185) in a temporary directory, then times ``services.stat.file_processor.
process`` on each (best of ``--repeats``), next to a baseline measured in the same run on the
same mapped bytes: numpy's int -> float32 conversion plus a sum (roughly the memory-bandwidth
cost of touching every sample once).  This times the library call only (no start-up); the
whole command against SKA PST's C++ file processor is ``benchmarks/stat_vs_pst.py``.

The kernels are built (C, first use) or loaded before timing; that one-off time is reported
separately.  Files are read from the page cache (just written).

Run: ``.venv/bin/python benchmarks/stat_throughput.py [--low-heaps 48] [--mid-heaps 1024]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ringbuf.file_segments import FileSegmentProducer
from services.formats.pst import PstLayout
from services.stat import file_processor
from services.stat.generate import BeamSpec, pst_headers, write_pair

GOAL_MB_S = 400.0


def baseline(data_path: Path) -> float:
    """Seconds for numpy to convert every sample of the recording to float32 and sum it."""
    producer = FileSegmentProducer(data_path, segment_heaps=16)
    layout = PstLayout.from_headers(producer.data_header, producer.weights_header)
    start = time.perf_counter()
    total = 0.0
    for seg in producer.segments():
        total += float(seg.data.view(layout.sample_dtype).astype(np.float32).sum())
    return time.perf_counter() - start


def measure(label: str, root: Path, profile: str, nheap: int, repeats: int,
            **header_keys: object) -> None:
    data_h, weights_h = pst_headers(profile, **header_keys)
    layout = PstLayout.from_headers(data_h, weights_h)
    chunk = max(1, (32 << 20) // layout.data_heap_stride)
    spec = BeamSpec(sigma=10.0, tones={5: 20.0}, clip_fraction=1e-4,
                    nan_packets=frozenset(range(0, nheap * layout.packets_per_heap, 997)))
    t0 = time.perf_counter()
    data, _ = write_pair(root / profile, data_h, weights_h, nheap, spec, chunk_heaps=chunk,
                         unique_heaps=chunk)
    gen = time.perf_counter() - t0
    mbytes = nheap * layout.data_heap_stride / 1e6
    out = root / f"{profile}.h5"
    best = min(_timed(lambda: file_processor.process(data, None, out)) for _ in range(repeats))
    base = min(baseline(data) for _ in range(repeats))
    rate, base_rate = mbytes / best, mbytes / base
    print(f"{label}: {mbytes:.0f} MB ({nheap} heaps, generated in {gen:.1f} s)")
    print(f"  stat-file-processor   {rate:7.0f} MB/s  ({best:.2f} s, every output on)")
    print(f"  numpy f32 convert+sum {base_rate:7.0f} MB/s  (baseline, same bytes, same run)")
    print(f"  ratio to baseline {rate / base_rate:.2f}; goal {GOAL_MB_S:.0f} MB/s "
          f"{'met' if rate >= GOAL_MB_S else 'NOT met'}")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def warm_up(root: Path) -> float:
    """Build (or load) the kernels and run 8- and 16-bit data once; returns seconds."""
    start = time.perf_counter()
    for profile, nchan in (("low", 48), ("mid", 370)):
        data_h, weights_h = pst_headers(profile, NCHAN=nchan, FREQ_MASK="1:2", NMASK=1)
        data, _ = write_pair(root / f"warm-{profile}", data_h, weights_h, 2)
        file_processor.process(data, None, root / f"warm-{profile}.h5")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--low-heaps", type=int, default=48, help="Low heaps (5.3 MB each)")
    parser.add_argument("--mid-heaps", type=int, default=1024, help="Mid heaps (186 kB each)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stat-bench-") as tmp:
        root = Path(tmp)
        print(f"kernel build / load: {warm_up(root):.1f} s (not in the figures below)")
        measure("Low AA0.5-like, 16-bit, 20736 channels", root, "low", args.low_heaps,
                args.repeats)
        measure("Mid Band5a-like, 8-bit, 11655 channels", root, "mid", args.mid_heaps,
                args.repeats, NCHAN=11655)


if __name__ == "__main__":
    main()
