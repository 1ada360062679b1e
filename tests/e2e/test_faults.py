"""Faults while running, with real processes: kill -9 of each daemon, a sender that vanishes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from casacore.tables import table

from services.demo.beam_flow import BeamParams, send, start_beam_chain
from services.demo.processes import ProcessGroup, options, tool
from services.demo.vis_flow import VisParams, simulate, start_vis_chain, wait_for_ms

pytestmark = pytest.mark.timeout(300)
SLOW = VisParams(nant=8, nchan=8, ntime=24, channels_per_stream=4, time_interval=0.25, image=False)


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_sender(group: ProcessGroup, model: Path, port: int, params: VisParams, scan_id: int) -> None:
    group.start(f"emu-send-{scan_id}", [tool("emu-send"), model, *options({
        "transmission.target_port_start": port,
        "transmission.channels_per_stream": params.channels_per_stream,
        "transmission.time_interval": params.time_interval, "transmission.scan_id": scan_id})])


def dumps_in(ms: Path) -> int:
    with table(str(ms), ack=False) as t:
        return len(set(t.getcol("TIME")))


def test_ingest_killed_consumers_see_the_end_and_keep_what_they_got(tmp_path):
    with ProcessGroup(tmp_path) as group:
        model = tmp_path / "sky.ms"
        simulate(model, SLOW)
        port = start_vis_chain(group, SLOW, model, tmp_path / "out")
        start_sender(group, model, port, SLOW, scan_id=5)
        wait_until(lambda: group.status("svc-mswrite")["counters"]["dumps_written_total"] >= 4,
                   30, "dumps written")
        group.kill9("svc-ingest")
        killed_at = time.monotonic()
        ms, counters = wait_for_ms(group, "svc-mswrite", tmp_path / "out", "scan5.ms", timeout=10)
        assert time.monotonic() - killed_at < 5  # no hang: the transfer ended within seconds
        assert counters["writer_died_total"] == 1
        assert 4 <= dumps_in(ms) < SLOW.ntime  # every dump received is in a cleanly closed MS
        assert group.status("svc-mswrite")["state"] == "Scanning"  # waiting for the next one


def test_sender_without_end_heaps_is_closed_after_the_stream_timeout(tmp_path):
    with ProcessGroup(tmp_path) as group:
        model = tmp_path / "sky.ms"
        simulate(model, SLOW)
        port = start_vis_chain(group, SLOW, model, tmp_path / "out", extra_ingest={"STREAM_TIMEOUT_S": 1.5})
        start_sender(group, model, port, SLOW, scan_id=6)
        wait_until(lambda: group.status("svc-ingest")["counters"]["heaps_complete_total"] >= 8,
                   30, "heaps received")
        group.kill9("emu-send-6")  # no end heaps will ever come
        ms, counters = wait_for_ms(group, "svc-mswrite", tmp_path / "out", "scan6.ms", timeout=20)
        ingest = group.status("svc-ingest")["counters"]
        assert ingest["stream_timeouts_total"] == 1
        assert dumps_in(ms) == counters["dumps_written_total"] >= 4
        assert counters["writer_died_total"] == 0  # a clean end of data, not a crash


def test_stat_killed_and_restarted_takes_the_next_scan(tmp_path):
    params = BeamParams(duration_s=1.5, stat_delay_ms=200)
    with ProcessGroup(tmp_path) as group:
        port, dk, wk = start_beam_chain(group, params, tmp_path / "beam")
        group.kill9("svc-stat")  # before anything arrives: ingest and record never notice
        send(port, params)
        group.wait("ringbuf-record", timeout=60)
        stat_args = [tool("svc-stat"), "--autonomous", "--socket", group.socket_path("stat2"),
                     *options({"DATA_KEY": dk, "WEIGHTS_KEY": wk, "STAT_PROC_DELAY_MS": 200,
                               "STAT_BASE_PATH": tmp_path / "live2"})]
        group.start("svc-stat-2", stat_args, group.socket_path("stat2"))
        send(port, BeamParams(duration_s=1.5, scan_id=12))
        wait_until(lambda: group.status("svc-stat-2")["counters"]["files_total"] >= 2, 30, "stat files")
        ingest = group.status("svc-ingest-beam")["counters"]
        assert ingest["transfers_total"] == 2 and ingest["heaps_lost_total"] == 0
        scans = {p.parts[-3] for p in (tmp_path / "live2").rglob("*.h5")}
        assert scans == {"12"}  # the restarted service sampled the new scan only
    record = json.loads(group.processes["ringbuf-record"].log.read_text().splitlines()[-1])
    assert record["transfers"] == 1 and record["incomplete"] == 0
