"""Record and play throughput next to dd's write and read bandwidth of the same disk.

Prints, from one run on the same directory:
  * dd write  : ``dd if=/dev/zero bs=4M conv=fdatasync`` (data reaches the disk);
  * record    : ``ringbuf junk`` (another process) -> ring -> ``recorder.record`` -> files
                (every file is fdatasync'ed before it is renamed, as in normal use);
  * dd read   : ``dd of=/dev/null bs=4M`` of the recorded files, evicted from the page cache;
  * play      : the recorded files (evicted from the page cache) -> ``player.play`` -> ring
                -> ``ringbuf null`` (another process).
Goal: record >= 0.8 x dd write and play >= 0.8 x dd read.

Usage: .venv/bin/python benchmarks/record_throughput.py [--size-mb 1024] [--rounds 3] [--dir DIR]
Medians of interleaved rounds; ratios are medians of per-round ratios (this VM's disk swings
a lot between runs, and play needs two busy processes on a 2-core machine). Stops starting
rounds after --max-seconds (60); cleans up files and rings.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ringbuf import RingLayout, create_ring, destroy_ring, play, record

REPO = Path(__file__).resolve().parents[1]
RINGBUF = [sys.executable, "-c", "from ringbuf.cli import main; main()"]
BLOCK = 16 << 20
MB = 1e6


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache (so reads come from the disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def dd(*args: str) -> float:
    started = time.monotonic()
    subprocess.run(["dd", *args, "status=none"], check=True)
    return time.monotonic() - started


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*RINGBUF, *args], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def dd_read(files: list[Path]) -> tuple[str, float]:
    seconds = sum(dd(f"if={path}", "of=/dev/null", "bs=4M") for path in files)
    return "ddr", sum(path.stat().st_size for path in files) / MB / seconds


def play_once(key: str, directory: Path, nbytes: int,
              procs: list[subprocess.Popen]) -> tuple[str, float]:
    procs.append(spawn("null", "-k", key, "--transfers", "1", "--json", "--timeout", "60"))
    time.sleep(0.5)  # let the reader attach
    summary = play(key, directory, timeout=60)
    out, _ = procs[-1].communicate(timeout=60)
    assert json.loads(out)["bytes"] == nbytes and summary.bytes == nbytes
    return "play", summary.bytes / MB / summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="MiB per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--max-seconds", type=float, default=60,
                        help="start no new round after this long")
    parser.add_argument("--dir", type=Path, default=REPO / "out",
                        help="directory on the disk to measure (default: the repo's out/)")
    opts = parser.parse_args()
    nbytes = opts.size_mb << 20
    opts.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-record-", dir=opts.dir))
    key = secrets.token_hex(4)
    procs: list[subprocess.Popen] = []
    try:
        create_ring(key, RingLayout(nbufs=8, bufsz=BLOCK, nreaders=1))
        header = work / "bench.hdr"
        header.write_text("HDR_SIZE 4096\nUTC_START 2024-01-01-00:00:00\nRESOLUTION 4096\n"
                          "BYTES_PER_SECOND 800000000\n")
        rates: dict[str, list[float]] = {"ddw": [], "rec": [], "ddr": [], "play": []}
        deadline = time.monotonic() + opts.max_seconds
        for _ in range(opts.rounds):  # interleaved, so disk-cache swings hit both sides
            ddfile = work / "dd.bin"
            t = dd("if=/dev/zero", f"of={ddfile}", "bs=4M", f"count={nbytes >> 22}",
                   "conv=fdatasync")
            rates["ddw"].append(nbytes / MB / t)
            ddfile.unlink()

            rec_dir = work / "rec"
            procs.append(spawn("junk", "-k", key, str(header), "--bytes", str(nbytes),
                               "--pattern", "noise"))
            rec = record(key, rec_dir, file_size=256 << 20, transfers=1, timeout=60)
            procs[-1].wait(60)
            assert rec.bytes == nbytes, rec.as_dict()
            rates["rec"].append(rec.bytes / MB / rec.seconds)

            files = sorted(rec_dir.iterdir())
            readers = [lambda files=files: dd_read(files),
                       lambda rec_dir=rec_dir: play_once(key, rec_dir, nbytes, procs)]
            if len(rates["rec"]) % 2 == 0:  # alternate the order, so neither gains from it
                readers.reverse()
            for measure in readers:
                for path in files:  # both read the recorded files from the disk
                    evict(path)
                name, rate = measure()
                rates[name].append(rate)
            shutil.rmtree(rec_dir)
            print(f"round {len(rates['rec'])}: dd write {rates['ddw'][-1]:.0f}, record "
                  f"{rates['rec'][-1]:.0f}, dd read {rates['ddr'][-1]:.0f}, play "
                  f"{rates['play'][-1]:.0f} MB/s", flush=True)
            if time.monotonic() > deadline:
                break

        med = {name: statistics.median(values) for name, values in rates.items()}
        # paired ratios: each round's record/play against the dd run next to it
        rec_ratio = statistics.median(
            r / d for r, d in zip(rates["rec"], rates["ddw"], strict=False))
        play_ratio = statistics.median(
            p / d for p, d in zip(rates["play"], rates["ddr"], strict=False))
        runs = len(rates["rec"])
        print(f"disk: {work} ({opts.size_mb} MiB per measurement, medians of {runs} rounds)")
        print(f"dd write (fdatasync) {med['ddw']:9.1f} MB/s")
        print(f"record               {med['rec']:9.1f} MB/s   ratio {rec_ratio:5.2f} (goal >= 0.8)")
        print(f"dd read (uncached)   {med['ddr']:9.1f} MB/s")
        print(f"play                 {med['play']:9.1f} MB/s   "
              f"ratio {play_ratio:5.2f} (goal >= 0.8)")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        destroy_ring(key)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
