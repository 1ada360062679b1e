"""svc-ingest refuses what it cannot use (issue 13 item 8): a missing ring, a ring pair that
already has a writer, blocks of the wrong size. ``refused``, state unchanged, exit 3 in
autonomous mode, one line and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from services.demo.processes import Process, options, tool

from ringbuf import RingLayout, RingPairWriter, create_ring_pair, destroy_ring_pair
from tests.ingest.helpers import free_ports

NANT, NCHAN, CPS = 2, 4, 2
NBL = 3
GOOD = (NCHAN * NBL * 32, NCHAN * NBL * 2)


def ingest_opts(dk: str, wk: str) -> dict[str, object]:
    return {"DATA_KEY": dk, "WEIGHTS_KEY": wk, "PORT_START": free_ports(1), "NANT": NANT,
            "NCHAN": NCHAN, "CHANNELS_PER_STREAM": CPS, "INT_TIME": 1.0,
            "BIND_HOST": "127.0.0.1"}


def run_autonomous(tmp_path: Path, dk: str, wk: str) -> tuple[int, str]:
    sock = tmp_path / f"{dk}.sock"
    proc = Process("svc-ingest", [tool("svc-ingest"), "--autonomous", "--socket", sock,
                                  *options(ingest_opts(dk, wk))], tmp_path / f"{dk}.log")
    try:
        return proc.wait(30), proc.output()
    finally:
        proc.stop()


@pytest.mark.parametrize("case", ["missing ring", "second writer", "wrong block size"])
def test_autonomous_refusal_exits_3_without_traceback(case, tmp_path, key_factory):
    dk, wk = key_factory(), key_factory()
    sizes = (GOOD[0] + 8, GOOD[1]) if case == "wrong block size" else GOOD
    if case != "missing ring":
        create_ring_pair(dk, wk, RingLayout(nbufs=2, bufsz=sizes[0]),
                         RingLayout(nbufs=2, bufsz=sizes[1]))
    holder = RingPairWriter(dk, wk) if case == "second writer" else None
    try:
        code, log = run_autonomous(tmp_path, dk, wk)
    finally:
        if holder is not None:
            holder.close()
        if case != "missing ring":
            destroy_ring_pair(dk, wk)
    assert code == 3, log
    assert "Traceback" not in log and "RuntimeError" not in log
    assert "configure_beam refused" in log
    expected = {"missing ring": "not found", "second writer": "writer",
                "wrong block size": "bytes"}[case]
    assert expected in log


def test_managed_refusal_leaves_state_unchanged(tmp_path, key_factory):
    dk, wk = key_factory(), key_factory()
    sock = tmp_path / "managed.sock"
    daemon = Process("svc-ingest", [tool("svc-ingest"), "--socket", sock,
                                    *options(ingest_opts(dk, wk))],
                     tmp_path / "managed.log", sock)
    try:
        daemon.wait_ready()
        reply = daemon.request("configure_beam")
        assert reply["ok"] is False and reply["reason"] == "refused", reply
        assert "not found" in reply["error"]
        assert daemon.status()["state"] == "Idle"
        create_ring_pair(dk, wk, RingLayout(nbufs=2, bufsz=GOOD[0]),
                         RingLayout(nbufs=2, bufsz=GOOD[1]))
        try:  # the daemon kept serving: now the same command succeeds
            reply = daemon.request("configure_beam")
            assert reply["ok"] is True, reply
            assert daemon.status()["state"] == "BeamConfigured"
            assert daemon.terminate() == 0
        finally:
            destroy_ring_pair(dk, wk)
        assert "Traceback" not in daemon.output()
    finally:
        daemon.stop()
