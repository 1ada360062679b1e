"""Ring speed next to PSRDADA, timed in the same run: `ringbuf junk -> ringbuf null` against
`dada_junkdb -z -> dada_dbnull -z` on the same geometry and bytes.

Usage: python benchmarks/ring_throughput.py [--gib 8] [--rounds 3] [--handoff-blocks 200000]
                                            [--anchors DIR]

1. throughput: an 8 x 16 MiB ring (pre-faulted: `ringbuf create --page`, `dada_db -p`), one
   transfer of --gib GiB. Both writers copy every byte from a cached 4 MiB source; both readers
   touch no data byte (`dada_dbnull -z` without -l, `ringbuf null`). GB/s is timed by the
   reader from the header to end of data, as dada_dbnull reports it; the wall time of the
   whole pair (writer start-up included, reader already attached) is printed too.
2. hand-off: an 8 x 4 KiB ring, --handoff-blocks blocks through the same two pairs of
   commands: microseconds per block from the readers' own times.

Rounds interleave ours and the anchor (ours, PSRDADA, ours, PSRDADA, ...); medians are quoted.
PSRDADA is looked for in --anchors (default $ANCHORS_DIR, else ${TMPDIR:-/tmp}/anchors, as
built by the anchors' build.sh); when it is missing one line says so and only ours is timed.

The last lines are machine-readable, one per figure (benchmarks/summary.py reads them):
  BENCH <name> <value> <unit> <anchor value|-> <ratio|-> <goal> <anchor, free text>
ratio is ours / anchor in the figure's unit; goal is a condition on the ratio
(``ratio>=1.0``, ``ratio<=1.5``) or ``-``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = """HDR_VERSION 1.0
HDR_SIZE    4096
TELESCOPE   TEST
INSTRUMENT  junk
SOURCE      J0000+0000
MODE        PSR
FREQ        1400
BW          -256
NCHAN       256
NBIT        8
NDIM        2
NPOL        2
TSAMP       1.0
RESOLUTION  1024
OBS_OFFSET  0
UTC_START   2026-01-01-00:00:00
"""

RINGBUF = str(Path(sys.executable).with_name("ringbuf"))
_TRANSFERRED = re.compile(r"(\d+) bytes transferred in ([0-9.]+)s")


def default_anchors() -> Path:
    env = os.environ.get("ANCHORS_DIR")
    return Path(env) if env else Path(os.environ.get("TMPDIR", "/tmp")) / "anchors"


def _wait_reader_attached(key: str, deadline_s: float = 20.0) -> None:
    from ringbuf import control as c
    from ringbuf.ring import Ring

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with Ring(key, data=False) as ring:
            if ring.word(c.reader_base(0) + c.R_STATE) == c.SLOT_ATTACHED:
                return
        time.sleep(0.01)
    raise RuntimeError(f"ring {key}: ringbuf null did not attach within {deadline_s:g} s")


def run_ours(bufsz: int, nbufs: int, nbytes: int, header: str) -> dict[str, float]:
    """ringbuf junk -> ringbuf null; reader seconds (header to end) and pair wall seconds."""
    key = secrets.token_hex(4)
    subprocess.run([RINGBUF, "create", "-k", key, "-b", str(bufsz), "-n", str(nbufs), "--page"],
                   check=True)
    try:
        null = subprocess.Popen([RINGBUF, "null", "-k", key, "--transfers", "1", "--json",
                                 "--timeout", "120"], stdout=subprocess.PIPE, text=True)
        _wait_reader_attached(key)
        t0 = time.perf_counter()
        subprocess.run([RINGBUF, "junk", "-k", key, header, "--bytes", str(nbytes),
                        "--pattern", "noise", "--timeout", "120"], check=True)
        out = null.communicate(timeout=180)[0]
        wall = time.perf_counter() - t0
        res = json.loads(out)
        if res["bytes"] != nbytes:
            raise RuntimeError(f"ringbuf null read {res['bytes']} bytes, expected {nbytes}")
        return {"seconds": res["seconds"], "wall": wall, "blocks": res["blocks"]}
    finally:
        subprocess.run([RINGBUF, "destroy", "-k", key], check=False)


def run_psrdada(apps: Path, bufsz: int, nbufs: int, nbytes: int,
                header: str) -> dict[str, float]:
    """dada_junkdb -z -> dada_dbnull -z: dbnull's own seconds and the pair's wall seconds."""
    key = f"{secrets.randbelow(0xEFFF) + 0x1000:x}"
    subprocess.run([str(apps / "dada_db"), "-k", key, "-b", str(bufsz), "-n", str(nbufs), "-p"],
                   check=True, capture_output=True)
    try:
        null = subprocess.Popen([str(apps / "dada_dbnull"), "-k", key, "-s", "-z"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)  # let it attach as the reader (it prints nothing until the header)
        t0 = time.perf_counter()
        # -r 1e6 MB/s: no pacing (junkdb paces to -r); it copies from a 4 MiB source
        subprocess.run([str(apps / "dada_junkdb"), "-k", key, "-z", "-r", "1000000",
                        "-b", str(nbytes), header], check=True, capture_output=True)
        out = null.communicate(timeout=180)[0]
        wall = time.perf_counter() - t0
        found = _TRANSFERRED.findall(out)
        if not found or int(found[-1][0]) != nbytes:
            raise RuntimeError(f"dada_dbnull did not report {nbytes} bytes: {out[-300:]!r}")
        return {"seconds": float(found[-1][1]), "wall": wall, "blocks": nbytes / bufsz}
    finally:
        subprocess.run([str(apps / "dada_db"), "-k", key, "-d"], check=False, capture_output=True)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_line(name: str, value: float, unit: str, anchor: float | None, goal: str,
               label: str) -> str:
    if anchor is None:
        return f"BENCH {name} {value:.4g} {unit} - - {goal} {label} (not built)"
    return f"BENCH {name} {value:.4g} {unit} {anchor:.4g} {value / anchor:.3f} {goal} {label}"


def runs(values: list[float], fmt: str = "{:.2f}") -> str:
    return ", ".join(fmt.format(v) for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=8.0, help="GiB per throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--handoff-blocks", type=int, default=200_000)
    parser.add_argument("--anchors", type=Path, default=default_anchors(),
                        help="where the anchors' build.sh put PSRDADA")
    args = parser.parse_args()

    apps: Path | None = args.anchors / "psrdada" / "apps"
    assert apps is not None
    if not all((apps / p).exists() for p in ("dada_db", "dada_junkdb", "dada_dbnull")):
        print(f"PSRDADA anchor not built under {args.anchors} (build it with the anchors' "
              "build.sh): timing ringpipe alone")
        apps = None

    big_bytes = int(args.gib * (1 << 30)) // (16 << 20) * (16 << 20)
    small_bytes = args.handoff_blocks * 4096
    ours_t: list[dict[str, float]] = []
    dada_t: list[dict[str, float]] = []
    ours_h: list[dict[str, float]] = []
    dada_h: list[dict[str, float]] = []
    print(f"start: {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        header = str(Path(tmp) / "header.txt")
        Path(header).write_text(HEADER)
        for _ in range(args.rounds):
            ours_t.append(run_ours(16 << 20, 8, big_bytes, header))
            if apps:
                dada_t.append(run_psrdada(apps, 16 << 20, 8, big_bytes, header))
            ours_h.append(run_ours(4096, 8, small_bytes, header))
            if apps:
                dada_h.append(run_psrdada(apps, 4096, 8, small_bytes, header))
    print(f"end: {load()}")

    def gbps(rs: list[dict[str, float]], key: str) -> list[float]:
        return [big_bytes / r[key] / 1e9 for r in rs]

    def usb(rs: list[dict[str, float]]) -> list[float]:
        return [r["seconds"] / r["blocks"] * 1e6 for r in rs]

    med = statistics.median
    o_gb, o_wall, o_us = gbps(ours_t, "seconds"), gbps(ours_t, "wall"), usb(ours_h)
    d_gb = gbps(dada_t, "seconds") if apps else []
    d_wall = gbps(dada_t, "wall") if apps else []
    d_us = usb(dada_h) if apps else []
    gib = big_bytes / (1 << 30)
    print(f"\nthroughput, 8 x 16 MiB, {gib:g} GiB, reader-timed (header to end of data):")
    print(f"  ringbuf junk -> ringbuf null        median {med(o_gb):6.2f} GB/s  "
          f"(runs {runs(o_gb)})")
    if apps:
        print(f"  dada_junkdb -z -> dada_dbnull -z    median {med(d_gb):6.2f} GB/s  "
              f"(runs {runs(d_gb)})   ratio {med(o_gb) / med(d_gb):.2f}")
    print("  the same, wall time of the pair (writer start-up included):")
    print(f"  ringbuf                             median {med(o_wall):6.2f} GB/s  "
          f"(runs {runs(o_wall)})")
    if apps:
        print(f"  PSRDADA                             median {med(d_wall):6.2f} GB/s  "
              f"(runs {runs(d_wall)})   ratio {med(o_wall) / med(d_wall):.2f}")
    print(f"hand-off, 8 x 4 KiB, {args.handoff_blocks} blocks, reader-timed:")
    print(f"  ringbuf junk -> ringbuf null        median {med(o_us):6.2f} us/block "
          f"(min {min(o_us):.2f}; runs {runs(o_us)})")
    if apps:
        print(f"  dada_junkdb -z -> dada_dbnull -z    median {med(d_us):6.2f} us/block "
              f"(min {min(d_us):.2f}; runs {runs(d_us)})   ratio {med(o_us) / med(d_us):.2f}")
    if apps:  # each round's pair ran back to back: their ratios drift less with the load
        pairs_t = [o / d for o, d in zip(o_gb, d_gb, strict=True)]
        pairs_h = [o / d for o, d in zip(o_us, d_us, strict=True)]
        print(f"ratios round by round: throughput {runs(pairs_t)} (median {med(pairs_t):.2f}); "
              f"hand-off {runs(pairs_h)} (median {med(pairs_h):.2f})")
    anchor = "dada_junkdb -z -> dada_dbnull -z, same run"
    print(bench_line("ring_junk_null_16MiB", med(o_gb), "GB/s", med(d_gb) if apps else None,
                     "ratio>=1.0", anchor + " (reader-timed)"))
    print(bench_line("ring_junk_null_16MiB_wall", med(o_wall), "GB/s",
                     med(d_wall) if apps else None, "-", anchor + " (wall, start-up included)"))
    print(bench_line("ring_handoff_4KiB", med(o_us), "us/block", med(d_us) if apps else None,
                     "ratio<=1.5", anchor + ", 4 KiB blocks"))


if __name__ == "__main__":
    main()
