"""Inspection (status, list, header) maps only the control words and header ring of a ring.

Every command runs as a real process; its peak resident memory (which counts the shared-memory
pages it mapped) must stay far below the size of the ring's data, and a ring created with
``--lock`` must not make inspection mlock anything (RLIMIT_MEMLOCK is set to 64 KiB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ringbuf import RingLayout, RingPermissionError, RingWriter, create_ring, destroy_ring

REPO = Path(__file__).resolve().parents[2]
RINGBUF = [sys.executable, "-c", "from ringbuf.cli import main; main()"]
BLOCK = 128 << 20  # 2 x 128 MiB of data: far more than a Python process needs to inspect it


# A small launcher: RLIMIT_MEMLOCK 64 KiB, run the command, write its peak RSS (KiB) to argv[1].
# The command is started from this small interpreter, not forked from pytest (a fork from a big
# parent would count the parent's pages in the child's peak).
LAUNCH = """import resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 << 10, 64 << 10))
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_measured(tmp_path: Path, *args: str) -> tuple[int, str, str, int]:
    """Run ``ringbuf ARGS``; return exit code, stdout, stderr and peak RSS in bytes."""
    peak = tmp_path / "peak.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", LAUNCH, peak, *RINGBUF, *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr, int(peak.read_text()) * 1024


@pytest.fixture
def big_locked_ring(key):
    create_ring(key, RingLayout(nbufs=2, bufsz=BLOCK, nreaders=1), lock=True)
    try:
        try:
            with RingWriter(key, timeout=5) as writer:
                with writer.open_transfer({"SOURCE": "J0437-4715", "SCAN_ID": 7}) as xfer:
                    xfer.write(b"\x01" * 4096)
        except RingPermissionError as exc:
            pytest.skip(f"this user cannot mlock a 256 MiB ring to set it up: {exc}")
        yield key
    finally:
        destroy_ring(key)


@pytest.mark.parametrize("command", [
    ("status", "-k", "{key}"),
    ("status", "-k", "{key}", "--json"),
    ("list", "--json"),
    ("header", "{key}"),
])
def test_inspection_touches_no_data_page_and_locks_nothing(big_locked_ring, tmp_path, command):
    key = big_locked_ring
    code, out, err, peak = run_measured(tmp_path, *(a.format(key=key) for a in command))
    assert code == 0, err
    assert err == ""
    assert peak < BLOCK, f"ringbuf {' '.join(command)} peaked at {peak >> 20} MiB"
    if command[0] == "header":
        assert "SOURCE              J0437-4715" in out and "SCAN_ID             7" in out
    elif command[0] == "list":
        listed = {r["key"]: r for r in json.loads(out)}
        assert listed[key]["nbufs"] == 2 and listed[key]["bufsz"] == BLOCK
    elif "--json" in command:
        snap = json.loads(out)
        assert snap["key"] == key and snap["writer"]["bytes_written"] == 4096
        assert snap["transfer"]["state"] == "ended"
    else:
        assert f"ring {key}: 2 x {BLOCK} bytes" in out


def test_status_of_a_ring_with_no_transfer_and_header_says_so(key, tmp_path):
    create_ring(key, RingLayout(nbufs=2, bufsz=4096))
    try:
        code, out, _, _ = run_measured(tmp_path, "status", "-k", key, "--json")
        assert code == 0 and json.loads(out)["transfer"] is None
        code, _, err, _ = run_measured(tmp_path, "header", key)
        assert code == 1
        assert err.strip() == f"Error: ring {key}: no transfer has started yet"
    finally:
        destroy_ring(key)
