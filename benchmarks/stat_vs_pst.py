"""stat-file-processor against the SKA PST C++ file processor, same files, same run.

Generates Low-like (16-bit, 20736 channels) and Mid-like (8-bit, 11655 channels) recordings of
about 250 MB and about 1 GB (``--sizes``), checks that ``stat-file-processor`` and SKA PST's
``stat_file_proc`` write the same statistics (every dataset and HEADER member, bit for bit),
then times the whole command of each (start-up included, files in the page cache) in
interleaved rounds, on both cores and pinned to one (``taskset -c 0``).  Prints min and
median wall seconds of each, and the median of the per-round ratios anchor / ours.
Goals (issue 14): >= 3x on two cores, >= 2x on one.

The anchor is ``$ANCHORS_DIR/pst/stat_file_proc`` (default ``/tmp/anchors``; build it with
``shared/anchors/build.sh``) or ``--anchor PATH``; without it the benchmark prints one line
saying so and nothing else.

Run: ``.venv/bin/python benchmarks/stat_vs_pst.py [--rounds 5] [--sizes 250,1000]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from services.formats.pst import PstLayout
from services.stat.generate import BeamSpec, pst_headers, write_pair

ROOT = Path(__file__).resolve().parent.parent
OURS = [str(Path(sys.executable).parent / "stat-file-processor")]  # the installed command
SHAPES = {"low": {}, "mid": {"NCHAN": 11655}}
LABELS = {"low": "Low 16-bit 20736 ch", "mid": "Mid 8-bit 11655 ch"}


def anchor_path(given: str | None) -> Path:
    if given:
        return Path(given)
    return Path(os.environ.get("ANCHORS_DIR", "/tmp/anchors")) / "pst" / "stat_file_proc"


def generate(root: Path, profile: str, mbytes: int) -> Path:
    """A data + weights pair of about ``mbytes`` MB under ``root``; returns the data path."""
    data_h, weights_h = pst_headers(profile, **SHAPES[profile])
    layout = PstLayout.from_headers(data_h, weights_h)
    nheap = max(1, round(mbytes * 1e6 / layout.data_heap_stride))
    chunk = max(1, (32 << 20) // layout.data_heap_stride)
    spec = BeamSpec(sigma=10.0, tones={5: 20.0}, clip_fraction=1e-4,
                    nan_packets=frozenset(range(0, nheap * layout.packets_per_heap, 997)))
    data, _ = write_pair(root, data_h, weights_h, nheap, spec, chunk_heaps=chunk,
                         unique_heaps=chunk)
    return data


def same_file(ours: Path, theirs: Path) -> list[str]:
    """Names of the datasets (or HEADER members) that differ, bit for bit."""
    bad = []
    with h5py.File(ours) as a, h5py.File(theirs) as b:
        if sorted(a) != sorted(b):
            return ["dataset names"]
        for name in a:
            x, y = a[name][()], b[name][()]
            if name == "HEADER":
                bad += [f"HEADER.{m}" for m in x.dtype.names
                        if not _equal(x[m][0], y[m][0])]
            elif not _equal(x, y):
                bad.append(name)
    return bad


def _equal(x: object, y: object) -> bool:
    if isinstance(x, np.ndarray) and x.dtype.kind in "fiu":
        return (isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape
                and x.tobytes() == y.tobytes())
    if isinstance(x, np.ndarray):
        return bool(np.array_equal(x, y))
    return x == y


def commands(data: Path, anchor: Path, pin: bool) -> tuple[list[str], list[str]]:
    weights = data.parent.parent / "weights" / data.name
    out = data.parent.parent / "stat" / "ours.h5"
    ours = [*OURS, "-d", str(data), "-w", str(weights), "--output", str(out)]
    theirs = [str(anchor), "-d", str(data), "-w", str(weights)]
    if pin:
        ours, theirs = ["taskset", "-c", "0", *ours], ["taskset", "-c", "0", *theirs]
    return ours, theirs


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=ROOT)
    return time.perf_counter() - start


def measure(label: str, data: Path, anchor: Path, rounds: int, pin: bool) -> float:
    """Interleaved rounds; prints the figures and returns the median ratio anchor / ours."""
    ours, theirs = commands(data, anchor, pin)
    wall(ours), wall(theirs)  # warm-up: page cache, kernel build
    t_ours, t_theirs = [], []
    for i in range(rounds):
        pair = [(ours, t_ours), (theirs, t_theirs)]
        for cmd, times in pair if i % 2 == 0 else reversed(pair):
            times.append(wall(cmd))
    ratios = [b / a for a, b in zip(t_ours, t_theirs, strict=True)]
    ratio = statistics.median(ratios)
    print(f"  {label:<22} ours {min(t_ours):5.2f} / {statistics.median(t_ours):5.2f} s   "
          f"PST C++ {min(t_theirs):5.2f} / {statistics.median(t_theirs):5.2f} s   "
          f"x{ratio:.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", help="stat_file_proc [default: $ANCHORS_DIR/pst/...]")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case")
    parser.add_argument("--sizes", default="250,1000", help="file sizes in MB, comma separated")
    parser.add_argument("--shapes", default="low,mid", help="low, mid or both")
    parser.add_argument("--no-pin", action="store_true", help="skip the one-core runs")
    parser.add_argument("--workdir", help="where to generate files [default: a temp dir]")
    args = parser.parse_args()
    anchor = anchor_path(args.anchor)
    if not os.access(anchor, os.X_OK):
        print(f"stat_vs_pst: SKA PST stat_file_proc not built at {anchor} "
              "(shared/anchors/build.sh); nothing measured")
        return 0
    subprocess.run([sys.executable, "-m", "compileall", "-q", "services", "ringbuf"],
                   cwd=ROOT, check=False)  # .pyc files, as an installed package has
    load = os.getloadavg()
    print(f"stat-file-processor vs SKA PST stat_file_proc ({anchor}); wall s of the whole "
          f"command, min / median of {args.rounds} interleaved rounds; ratio = PST / ours "
          f"(median of rounds); load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
          f"{os.cpu_count()} cpus")
    base = Path(tempfile.mkdtemp(prefix="stat-vs-pst-", dir=args.workdir))
    failed = False
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            for profile in args.shapes.split(","):
                root = base / f"{profile}-{size}"
                data = generate(root, profile, size)
                mb = data.stat().st_size / 1e6
                ours, theirs = commands(data, anchor, pin=False)
                wall(ours), wall(theirs)
                bad = same_file(root / "stat" / "ours.h5", root / "stat" / f"{data.stem}.h5")
                print(f"{LABELS[profile]}, {mb:.0f} MB: outputs "
                      f"{'bit-identical' if not bad else 'DIFFER: ' + ', '.join(bad)}")
                failed |= bool(bad)
                two = measure("2 cores", data, anchor, args.rounds, pin=False)
                print(f"    goal >= 3x on 2 cores: {'met' if two >= 3 else 'NOT met'}")
                if not args.no_pin:
                    one = measure("1 core (taskset -c 0)", data, anchor, args.rounds, pin=True)
                    print(f"    goal >= 2x on 1 core: {'met' if one >= 2 else 'NOT met'}")
                shutil.rmtree(root)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
