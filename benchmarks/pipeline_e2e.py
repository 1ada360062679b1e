"""Critical rate of the whole visibility pipeline, next to the ingest-only rate in the same run.

Run:  .venv/bin/python benchmarks/pipeline_e2e.py [--rates 0.5,1,2,3,4] [--trial-seconds 6]
      .venv/bin/python benchmarks/pipeline_e2e.py --soak 60 --soak-rate 1   # steady 1 Gb/s

Each trial runs the real processes: a ring pair, `svc-ingest` (visibility profile) and either
two `ringbuf null` readers (ingest only) or `svc-mswrite` (the pipeline), fed by a synthetic
ICD sender (16 stations, 136 baselines, 1024 channels in 4 streams of 256 channels: 1.18 MB
heaps, 4.7 MB dumps). A rate passes when no heap is lost and, for the pipeline, the closed
MeasurementSet holds every dump sent with nothing flagged. The rate is raised until a trial
fails; the highest passing rate of each kind is printed, with their ratio (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NANT, NCHAN, CPS, NTIME, INT_TIME = 16, 1024, 256, 8, 1.0
NBL = NANT * (NANT + 1) // 2
NSTREAMS = NCHAN // CPS
DUMP_NBYTES = NCHAN * NBL * 34  # on the wire: TCI, FD and 4 complex64 per visibility


def send(rate: float, seconds: float, port: int) -> None:
    """Sender process: synthetic dumps at ``rate`` bytes/s for about ``seconds``."""
    from services.common.config import ConfigSource, build_config
    from services.formats import cbf_sdp
    from services.senders.emu_send import EmuSendConfig, MsDumps, VisSender

    repeats = max(1, math.ceil(rate * seconds / DUMP_NBYTES / NTIME))
    cfg = build_config(EmuSendConfig, ConfigSource(overrides=(("bench", {
        "transmission.target_port_start": port, "transmission.channels_per_stream": CPS,
        "transmission.total_rate": rate, "transmission.max_packet_size": 8972,
        "reader.num_repeats": repeats, "transmission.scan_id": 1}),)))
    payload = np.zeros((NTIME, NCHAN, NBL), cbf_sdp.VIS_DTYPE)
    payload["VIS"] = np.random.default_rng(1).standard_normal((NTIME, NCHAN, NBL, 4))
    payload["FD"] = 255
    dumps = MsDumps(payload, 1.7e9 + np.arange(NTIME) * INT_TIME + 0.5, INT_TIME, NANT, 1e8, 1e4)
    started = time.monotonic()
    heaps, nbytes = asyncio.run(VisSender(dumps, cfg, 0).send())
    print(f"SENT {heaps} {nbytes} {time.monotonic() - started:.6f}", flush=True)


def antenna_file(path: Path) -> Path:
    """16 stations within ~1 km around the SKA-Low site, in ITRF metres."""
    rng = np.random.default_rng(7)
    centre = np.array([-2565048.9, 5085773.5, -2861067.8])
    with open(path, "w") as fh:
        for i in range(NANT):
            x, y, z = centre + rng.uniform(-800, 800, 3) * np.array([1, 1, 0.5])
            fh.write(f"S{i:02d} {x:.3f} {y:.3f} {z:.3f} 38.0\n")
    return path


def trial(rate_gbps: float, seconds: float, pipeline: bool, work: Path,
          ms_dir: Path) -> tuple[bool, float, str]:
    """(passed, achieved Gb/s, note) of one run of the real processes at ``rate_gbps``."""
    from ringbuf import RingLayout
    from services.common.processes import ProcessGroup, free_udp_ports, options, tool
    from services.demo.vis_flow import wait_for_ms

    work.mkdir(parents=True, exist_ok=True)
    with ProcessGroup(work) as group:
        dk, wk = group.ring_pair(RingLayout(32, NCHAN * NBL * 32), RingLayout(32, NCHAN * NBL * 2))
        port = free_udp_ports(NSTREAMS)
        ingest = {"PROFILE": "vis", "DATA_KEY": dk, "WEIGHTS_KEY": wk, "BIND_HOST": "127.0.0.1",
                  "PORT_START": port, "NSTREAMS": NSTREAMS, "NANT": NANT, "NCHAN": NCHAN,
                  "CHANNELS_PER_STREAM": CPS, "INT_TIME": INT_TIME, "STREAM_TIMEOUT_S": 3,
                  "MAX_PACKET_SIZE": 9200, "RECV_BUFFER_BYTES": 8 << 20}
        sock = group.socket_path("ingest")
        group.start("svc-ingest", [tool("svc-ingest"), "--autonomous", "--socket", sock,
                                   *options(ingest)], sock)
        if pipeline:
            ms_dir.mkdir(parents=True, exist_ok=True)
            sock = group.socket_path("mswrite")
            group.start("svc-mswrite", [
                tool("svc-mswrite"), "--autonomous", "--socket", sock, *options({
                "DATA_KEY": dk, "WEIGHTS_KEY": wk, "MS_OUTPUT_DIR": ms_dir,
                "MS_ANTENNA_FILE": antenna_file(work / "stations.txt"), "PHASE_CENTRE_RA_DEG": 60,
                "PHASE_CENTRE_DEC_DEG": -30, "MS_NAME_TEMPLATE": "bench{SCAN_ID}.ms"})], sock)
        else:
            for key in (dk, wk):
                group.start(f"null-{key}", [tool("ringbuf"), "null", "-k", key, "--transfers", 1])
        time.sleep(0.5)
        out = subprocess.run([sys.executable, __file__, "--send", str(rate_gbps * 1e9 / 8),
                              str(seconds), str(port)], capture_output=True, text=True,
                             timeout=seconds * 4 + 60)
        sent = re.search(r"SENT (\d+) (\d+) ([\d.]+)", out.stdout)
        sent_heaps, sent_bytes, send_s = sent.groups()
        sent_heaps, achieved = int(sent_heaps), int(sent_bytes) * 8 / float(send_s) / 1e9
        deadline = time.monotonic() + 60
        while group.status("svc-ingest")["counters"]["transfers_total"] < 1 or \
                group.status("svc-ingest")["counters"].get("transfer_active", 0):
            if time.monotonic() > deadline:
                return False, achieved, "the transfer did not end"
            time.sleep(0.2)
        counters = group.status("svc-ingest")["counters"]
        complete, lost = counters["heaps_complete_total"], counters["heaps_lost_total"]
        if complete != sent_heaps or lost:
            return False, achieved, f"{complete}/{sent_heaps} heaps, {lost} lost"
        if not pipeline:
            return True, achieved, f"{complete}/{sent_heaps} heaps"
        _, ms = wait_for_ms(group, "svc-mswrite", ms_dir, "bench1.ms", timeout=120)
        dumps = sent_heaps // NSTREAMS
        ok = ms["dumps_written_total"] == dumps and ms["visibilities_flagged_total"] == 0
        written = ms["dumps_written_total"]
        return ok, achieved, f"{complete}/{sent_heaps} heaps, MS {written}/{dumps} dumps"


def sweep(rates: list[float], seconds: float, pipeline: bool, root: Path, ms_root: Path) -> float:
    best = 0.0
    for rate in rates:
        name = f"{'pipe' if pipeline else 'ingest'}-{rate}"
        ok, achieved, note = trial(rate, seconds, pipeline, root / name, ms_root / name)
        shutil.rmtree(ms_root / name, ignore_errors=True)
        print(f"  {'pipeline' if pipeline else 'ingest only'} at {rate:.2f} Gb/s: sent "
              f"{achieved:.2f} Gb/s, {note}: {'PASS' if ok else 'FAIL'}", flush=True)
        if not ok:
            break
        best = achieved
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="0.5,1,2,3,4,5", help="Gb/s tried, ascending")
    parser.add_argument("--trial-seconds", type=float, default=6.0)
    parser.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                        help="instead: run the pipeline at --soak-rate for this long")
    parser.add_argument("--soak-rate", type=float, default=1.0, help="Gb/s of the soak")
    parser.add_argument("--ms-dir", type=Path, default=None,
                        help="where the MeasurementSets go (default: a directory on the disk "
                             "next to this run; /dev/shm/... takes the disk out of the picture)")
    parser.add_argument("--send", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        send(float(args.send[0]), float(args.send[1]), int(args.send[2]))
        return
    with tempfile.TemporaryDirectory(prefix="pipe", dir=Path.cwd()) as tmp:
        root = Path(tmp)
        ms_root = Path(tempfile.mkdtemp(prefix="pipe-ms-", dir=args.ms_dir or root))
        if args.soak:
            ok, achieved, note = trial(args.soak_rate, args.soak, True, root / "soak", ms_root)
            shutil.rmtree(ms_root, ignore_errors=True)
            print(f"soak {args.soak:g} s at {args.soak_rate:g} Gb/s: sent {achieved:.2f} Gb/s, "
                  f"{note}: {'PASS' if ok else 'FAIL'}")
            raise SystemExit(0 if ok else 1)
        rates = [float(r) for r in args.rates.split(",")]
        ingest_only = sweep(rates, args.trial_seconds, False, root, ms_root)
        pipeline = sweep(rates, args.trial_seconds, True, root, ms_root)
        shutil.rmtree(ms_root, ignore_errors=True)
    print(f"ingest only (svc-ingest + ringbuf null), lossless: {ingest_only:.2f} Gb/s   [baseline]")
    print(f"whole pipeline (svc-ingest + svc-mswrite), lossless, complete MS: {pipeline:.2f} Gb/s "
          f"= {pipeline / ingest_only if ingest_only else float('nan'):.2f} x ingest only "
          "(goal >= 0.8)")


if __name__ == "__main__":
    main()
