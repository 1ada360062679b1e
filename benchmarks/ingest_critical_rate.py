"""Critical rate of the ICD visibility ingest on loopback, next to spead2's own bench.

Run:  .venv/bin/python benchmarks/ingest_critical_rate.py [--seconds 20]

A sender process (the emu-send machinery on synthetic ICD dumps: 64 antennas, 2080
baselines, 16 channels in 4 streams of 4 channels, 282 880-byte heaps, 8972-byte packets)
sends at a fixed rate to a ChunkReceiver that writes a real ring pair, drained by two
`ringbuf null` processes. Short trials sweep the rate upwards; the highest rate with zero lost
heaps is then confirmed for --seconds. spead2's bench (the spead2_bench.py console script of
spead2.tools.bench_asyncio, master/agent, 1 MiB heaps, upstream search cut at 45 s) runs in
the same invocation for the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NANT, NCHAN, CPS, NTIME = 64, 16, 4, 8
NBL = NANT * (NANT + 1) // 2
PORT = 47300


def send(rate: float, seconds: float, port: int) -> None:
    """Sender process body: synthetic dumps at ``rate`` bytes/s for ``seconds``."""
    from services.common.config import ConfigSource, build_config
    from services.formats import cbf_sdp
    from services.senders.emu_send import EmuSendConfig, MsDumps, VisSender

    heap_dump_bytes = NCHAN * NBL * cbf_sdp.VIS_BYTES
    repeats = max(1, round(rate * seconds / heap_dump_bytes / NTIME))
    cfg = build_config(EmuSendConfig, ConfigSource(overrides=(("bench", {
        "transmission.target_port_start": port, "transmission.channels_per_stream": CPS,
        "transmission.total_rate": rate, "transmission.max_packet_size": 8972,
        "reader.num_repeats": repeats}),)))
    payload = np.zeros((NTIME, NCHAN, NBL), cbf_sdp.VIS_DTYPE)
    payload["VIS"] = np.random.default_rng(1).standard_normal((NTIME, NCHAN, NBL, 4))
    payload["FD"] = 255
    dumps = MsDumps(payload, 1.7e9 + np.arange(NTIME) + 0.5, 1.0, NANT, 1e8, 1e5)
    heaps, nbytes = asyncio.run(VisSender(dumps, cfg, 0).send())
    print(f"SENT {heaps} {nbytes}", flush=True)


def trial(rate_gbps: float, seconds: float, keys: tuple[str, str],
          port: int) -> tuple[bool, float, int, int]:
    """(lossless, received Gb/s, heaps sent, heaps complete) of one run at ``rate_gbps``."""
    from ringbuf import RingPairWriter
    from services.common.config import ConfigSource, build_config
    from services.ingest.assemble import make_assembler
    from services.ingest.config import IngestConfig
    from services.ingest.receiver import ChunkReceiver, ReceiveSettings, UdpTransport
    from services.ingest.sink import RingPairSink

    cfg = build_config(IngestConfig, ConfigSource(overrides=(("bench", {
        "DATA_KEY": keys[0], "WEIGHTS_KEY": keys[1], "PORT_START": port, "NSTREAMS": NCHAN // CPS,
        "NANT": NANT, "NCHAN": NCHAN, "CHANNELS_PER_STREAM": CPS, "INT_TIME": 1.0,
        "STREAM_TIMEOUT_S": 2, "MAX_CHUNKS": 4}),)))
    nulls = [subprocess.Popen([BIN / "ringbuf", "null", "-k", k, "--transfers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k in keys]
    stop = threading.Event()
    with RingPairWriter(*keys, stop=stop) as writer:
        sink = RingPairSink(writer, stop)
        rx = ChunkReceiver(make_assembler(cfg, sink.data_bufsz),
                           ReceiveSettings(cfg.nstreams, cfg.max_chunks, cfg.max_time_jump,
                                           cfg.immediate_byte_order, cfg.stream_timeout_s),
                           UdpTransport("127.0.0.1", port, 9200, 8 << 20))
        thread = threading.Thread(target=rx.run_transfer, args=(sink, stop))
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        out = subprocess.run([sys.executable, __file__, "--send", str(rate_gbps * 1e9 / 8),
                              str(seconds), str(port)], capture_output=True, text=True,
                             timeout=seconds * 3 + 30)
        elapsed = time.monotonic() - started
        thread.join(seconds + 15)
        stop.set()
        thread.join()
    for p in nulls:
        p.wait(10)
    sent = int(re.search(r"SENT (\d+)", out.stdout).group(1))
    c = rx.counters
    complete = c.heaps_complete_total
    ok = complete == sent and c.heaps_lost_total == 0
    return ok, c.bytes_total * 8 / elapsed / 1e9, sent, complete


def spead2_bench(limit_s: float) -> float:
    """Sustainable rate from spead2's bench_asyncio (best GOOD rate if the search is cut)."""
    agent = subprocess.Popen([sys.executable, BIN / "spead2_bench.py", "agent", "47399"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        try:
            out = subprocess.run(
                [sys.executable, "-u", BIN / "spead2_bench.py", "master", "--heap-size",
                 str(1 << 20), "127.0.0.1:47399"],
                capture_output=True, text=True, timeout=limit_s).stdout
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        final = re.search(r"Sustainable rate: ([\d.]+)", out)
        if final:
            return float(final.group(1))
        good = [float(g) for g in re.findall(r"\(([\d.]+) actual\): GOOD", out)]
        return max(good, default=float("nan"))
    finally:
        agent.terminate()
        agent.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="confirmation run length")
    parser.add_argument("--trial-seconds", type=float, default=3.0, help="sweep trial length")
    parser.add_argument("--rates", default="1,2,3,4,5,6", help="Gb/s tried, ascending")
    parser.add_argument("--send", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        send(float(args.send[0]), float(args.send[1]), int(args.send[2]))
        return
    sys.path.insert(0, str(ROOT))
    from ringbuf import RingLayout, create_ring_pair, destroy_ring_pair

    keys = ("be9c0001", "be9c0002")
    destroy_ring_pair(*keys)
    create_ring_pair(*keys, RingLayout(nbufs=16, bufsz=NCHAN * NBL * 32),
                     RingLayout(nbufs=16, bufsz=NCHAN * NBL * 2))
    try:
        best = 0.0
        for i, rate in enumerate(float(r) for r in args.rates.split(",")):
            ok, got, sent, complete = trial(rate, args.trial_seconds, keys, PORT + 10 * i)
            print(f"trial {rate:.1f} Gb/s: received {got:.2f} Gb/s, {complete}/{sent} heaps "
                  f"{'LOSSLESS' if ok else 'LOSS'}", flush=True)
            if not ok:
                break
            best = rate
        confirmed = 0.0
        while best > 0:
            ok, got, sent, complete = trial(best, args.seconds, keys, PORT + 90)
            print(f"confirm {best:.1f} Gb/s for {args.seconds:g} s: received {got:.2f} Gb/s, "
                  f"{complete}/{sent} heaps {'LOSSLESS' if ok else 'LOSS'}", flush=True)
            if ok:
                confirmed = got
                break
            best -= 1.0
        baseline = spead2_bench(45.0)
        print(f"ingest critical rate (lossless, {args.seconds:g} s): {confirmed:.2f} Gb/s")
        print(f"spead2 bench sustainable rate (1 MiB heaps): {baseline:.2f} Gb/s")
        print(f"ratio: {confirmed / baseline:.2f} (goal >= 0.5 and >= 4 Gb/s)")
    finally:
        destroy_ring_pair(*keys)


if __name__ == "__main__":
    main()
