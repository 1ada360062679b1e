"""svc-mswrite as a real process, fed through a real ring pair: autonomous and managed modes,
bad input, a killed ring writer, a full disk, SIGTERM and kill -9 of the daemon itself."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from services.common.processes import Process
from services.mswrite.metadata import PhaseCentre
from services.mswrite.sim_ms import Simulation, random_layout
from tests.mswrite.svc_helpers import (
    NANT,
    Rings,
    expected_rows,
    read_ms,
    small_stream,
    start_mswrite,
)

ROOT = Path(__file__).resolve().parents[2]
NAME = "scan{}_2024-06-01-12:00:00.ms"


@pytest.fixture
def antenna_file(tmp_path) -> Path:
    path = tmp_path / "stations.txt"
    random_layout(NANT, 1500.0, seed=4).save(path)
    return path


@pytest.fixture
def rings(key_factory):
    made: list[Rings] = []

    def make(stream=None, nbufs: int = 16) -> Rings:
        made.append(Rings(key_factory, stream or small_stream(), nbufs))
        return made[-1]

    yield make
    for r in made:
        r.destroy()


@pytest.fixture
def daemons(tmp_path):
    started: list[Process] = []

    def start(*args: str) -> Process:
        started.append(start_mswrite(tmp_path, list(args), name=f"msw{len(started)}"))
        return started[-1]

    yield start
    for d in started:
        d.stop()


def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir(exist_ok=True)
    return path


def check_ms(path: Path, stream, scan_id: int, dumps, lost=None) -> None:
    """The MS holds exactly ``dumps`` of scan ``scan_id``, values known (flags from ``lost``)."""
    got = read_ms(path)
    want_data, want_flag = expected_rows(stream, list(dumps), lost)
    np.testing.assert_array_equal(got["DATA"], want_data)
    np.testing.assert_array_equal(got["FLAG"], want_flag)
    a1, a2 = stream.baselines()
    np.testing.assert_array_equal(got["ANTENNA1"], np.tile(a1, len(dumps)))
    np.testing.assert_array_equal(got["ANTENNA2"], np.tile(a2, len(dumps)))
    np.testing.assert_allclose(got["TIME"], np.repeat(stream.dump_times_mjd(np.array(dumps)),
                                                      stream.nbaseline))
    assert set(got["SCAN_NUMBER"]) == {scan_id}


def test_autonomous_bad_header_writer_death_and_sigterm(tmp_path, rings, daemons, antenna_file):
    out = out_dir(tmp_path)
    r = rings()
    d = daemons("--autonomous", *r.options, "-o", f"MS_OUTPUT_DIR={out}",
                "-o", f"MS_ANTENNA_FILE={antenna_file}")

    # 1. a header without NCHAN: counted, the transfer drained (20 blocks > 16 buffers)
    with r.transfer(small_stream(scan_id=1), drop=("NCHAN",)) as put:
        for i in range(20):
            put(i)
    c = d.wait_counter("transfers_skipped_total", 1)
    assert c["errors_bad_header_total"] == 1
    # 2. the next transfer is written, value for value, lost heaps flagged
    lost = {3: 2, 4: -1}  # dump 3: channel 2 lost; dump 4: nothing arrived
    with r.transfer(small_stream(scan_id=2)) as put:
        for i in range(20):
            put(i, lost.get(i))
    c = d.wait_counter("ms_written_total", 1)
    check_ms(out / NAME.format(2), r.stream, 2, range(20), lost)
    assert (c["transfers_total"], c["dumps_written_total"], c["dumps_flagged_total"]) == (2, 20, 1)
    assert c["visibilities_flagged_total"] == r.stream.nbaseline * (1 + r.stream.nchan)
    assert c["blocks_total"] == 40
    assert c["bytes_total"] == 40 * (r.stream.data_dump_bytes + r.stream.weights_dump_bytes)
    with tables.table(str(out / NAME.format(2) / "HISTORY"), ack=False) as h:
        params = "\n".join(h.getcell("APP_PARAMS", 0))
    assert f"DATA_KEY {r.data_key}" in params and f"MS_OUTPUT_DIR {out}" in params
    status = d.request("status")
    assert status["health"]["state"] == "OK" and status["state"] == "Scanning"
    assert status["ring"]["data"]["full_blocks"] == 0

    # 3. the ring writer (svc-ingest) killed mid-transfer: what arrived is closed cleanly
    script = ("import sys, time; from tests.mswrite.svc_helpers import Rings, small_stream\n"
              "r = Rings.__new__(Rings); r.data_key, r.weights_key = sys.argv[1:3]\n"
              "r.stream = small_stream(scan_id=3)\n"
              "with r.transfer() as put:\n"
              "    [put(i) for i in range(6)]\n"
              "    print('ok', flush=True); time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, r.data_key, r.weights_key],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ok"
        d.wait_counter("dumps_written_total", 26)
    finally:
        writer.kill()
        writer.wait(10)
    c = d.wait_counter("ms_written_total", 2)  # the writer's death closes what arrived
    assert c["writer_died_total"] == 1
    check_ms(out / NAME.format(3), r.stream, 3, range(6))
    # a new writer, a new transfer: written as usual
    with r.transfer(small_stream(scan_id=4)) as put:
        put(0)
    d.wait_counter("ms_written_total", 3)

    # 4. SIGTERM while idle: a clean exit, nothing partial anywhere
    assert d.terminate() == 0
    assert sorted(p.name for p in out.iterdir()) == [NAME.format(i) for i in (2, 3, 4)]
    assert "final counters" in d.output()


def test_managed_scan_id_rollover_and_health(tmp_path, rings, daemons, antenna_file):
    out = out_dir(tmp_path)
    r = rings()
    d = daemons("--managed", "-o", "STALE_AFTER_S=1")
    assert d.request("status")["state"] == "Idle"
    assert d.request("configure_beam", {"DATA_KEY": r.data_key,
                                        "WEIGHTS_KEY": r.weights_key})["ok"]
    bad = d.request("configure_scan", {"MS_OUTPUT_DIR": str(out), "MS_DATA_MODEL": str(out),
                                       "MS_ANTENNA_FILE": str(antenna_file)})
    assert bad["reason"] == "invalid_config" and bad["state"] == "BeamConfigured"
    assert "exactly one of MS_DATA_MODEL and MS_ANTENNA_FILE" in bad["error"]
    assert d.request("configure_scan", {"MS_OUTPUT_DIR": str(out), "MS_ROLLOVER_DUMPS": 4,
                                        "MS_ANTENNA_FILE": str(antenna_file),
                                        "MS_FLUSH_INTERVAL_S": 0})["ok"]
    assert d.request("start_scan", {"SCAN_ID": 7})["ok"]
    time.sleep(1.6)
    health = d.request("status")["health"]
    assert health["state"] == "DEGRADED" and "no data" in health["reasons"][0]

    with r.transfer(small_stream(scan_id=6)) as put:  # not the started scan: drained
        for i in range(3):
            put(i)
    with r.transfer(small_stream(scan_id=7)) as put:
        for i in range(10):
            put(i, 1 if i == 5 else None)
    c = d.wait_counter("ms_written_total", 3)
    assert c["errors_scan_id_mismatch_total"] == 1 and c["transfers_total"] == 2
    parts = [out / NAME.format(7).replace(".ms", f"_part{k:03d}.ms") for k in range(3)]
    for part, dumps in zip(parts, (range(0, 4), range(4, 8), range(8, 10)), strict=True):
        check_ms(part, r.stream, 7, dumps, {5: 1})
    assert d.request("status")["health"]["state"] == "OK"
    for command in ("end_scan", "deconfigure_scan", "deconfigure_beam"):
        assert d.request(command)["ok"], command
    assert d.request("status")["state"] == "Idle"
    assert d.terminate() == 0


def test_kill_9_and_sigterm_mid_transfer_lose_nothing(tmp_path, rings, daemons, antenna_file):
    """kill -9 of svc-mswrite mid-transfer: the .partial MS opens with every dump written; the
    restarted daemon continues the transfer in a continuation MS. SIGTERM mid-transfer closes
    the MS cleanly; the next daemon continues again. Every dump is in one of them."""
    out = out_dir(tmp_path)
    r = rings()
    args = ("--autonomous", *r.options, "-o", f"MS_OUTPUT_DIR={out}",
            "-o", f"MS_ANTENNA_FILE={antenna_file}", "-o", "MS_FLUSH_INTERVAL_S=0")
    d = daemons(*args)
    with r.transfer(small_stream(scan_id=9)) as put:
        for i in range(5):
            put(i)
        d.wait_counter("dumps_written_total", 5)
        d.kill9()
        for i in range(5, 10):  # the ring keeps them for the next reader
            put(i)
        partial = out / (NAME.format(9) + ".partial")
        killed = read_ms(partial)  # the kill left an MS that opens
        assert len(killed["DATA"]) == 5 * r.stream.nbaseline
        check_ms(partial, r.stream, 9, range(5))

        d = daemons(*args)
        d.wait_counter("dumps_written_total", 5)
        assert d.counters()["transfers_resumed_total"] == 1
        assert d.terminate() == 0  # SIGTERM mid-transfer: the continuation is closed cleanly
        for i in range(10, 14):
            put(i)
        d = daemons(*args)
        d.wait_counter("dumps_written_total", 4)
    d.wait_counter("ms_written_total", 1)
    first_resumed = sorted(out.glob("*_resumed_d*.ms"),
                           key=lambda p: int(re.search(r"_d(\d+)", p.name).group(1)))
    assert len(first_resumed) == 2
    covered = set(range(5))
    for path in first_resumed:
        start = int(re.search(r"_resumed_d(\d+)\.ms$", path.name).group(1))
        ndump = len(read_ms(path)["DATA"]) // r.stream.nbaseline
        check_ms(path, r.stream, 9, range(start, start + ndump))
        assert start <= max(covered) + 1  # no hole between the MSs
        covered |= set(range(start, start + ndump))
    assert covered == set(range(14))
    assert not (out / NAME.format(9)).exists()  # the killed one never looks complete


def ms_dumps(path: Path, stream) -> list[int]:
    """The dump indices of an MS's rows, from TIME (one entry per dump)."""
    times = read_ms(path)["TIME"][::stream.nbaseline]
    table = stream.dump_times_mjd(np.arange(1000))
    dumps = [int(np.argmin(np.abs(table - t))) for t in times]
    np.testing.assert_allclose(times, table[dumps])
    return dumps


def test_kill_9_with_the_default_flush_interval_loses_and_doubles_nothing(
        tmp_path, rings, daemons, antenna_file):
    """MS_FLUSH_INTERVAL_S 1 (the default): svc-mswrite clears a ring block only after the
    flush that made its dumps durable, so two kill -9s mid-transfer (the second before the
    continuation flushed anything) lose no dump and write none twice."""
    out = out_dir(tmp_path)
    r = rings()
    args = ("--autonomous", *r.options, "-o", f"MS_OUTPUT_DIR={out}",
            "-o", f"MS_ANTENNA_FILE={antenna_file}")
    d = daemons(*args)
    with r.transfer(small_stream(scan_id=9)) as put:
        for i in range(3):
            put(i)
        d.wait_counter("dumps_written_total", 3)
        time.sleep(1.2)  # the next block's write flushes (interval passed)
        for i in range(3, 6):
            put(i)
        d.wait_counter("dumps_written_total", 6)
        held = d.request("status")["ring"]["data"]["full_blocks"]
        d.kill9()
        flushed = ms_dumps(out / (NAME.format(9) + ".partial"), r.stream)
        assert flushed == list(range(len(flushed))) and 4 <= len(flushed) < 6
        assert held >= 6 - len(flushed)  # the unflushed dumps' blocks were still held

        d = daemons(*args)  # continues at the first unflushed dump, delivered again
        for i in range(6, 8):
            put(i)
        d.wait_counter("dumps_written_total", 8 - len(flushed))
        assert d.counters()["transfers_resumed_total"] == 1
        d.kill9()  # within a second: its continuation has flushed nothing (or little)

        d = daemons(*args)
        for i in range(8, 12):
            put(i)
    d.wait_counter("ms_written_total", 1)
    closed = list(out.glob("*.ms"))
    assert len(closed) == 1 and "_resumed_d" in closed[0].name
    seen: list[int] = []
    for path in [*closed, *out.glob("*.ms.partial")]:
        dumps = ms_dumps(path, r.stream)
        if dumps:
            check_ms(path, r.stream, 9, dumps)  # exact values of every dump it holds
        seen += dumps
    assert sorted(seen) == list(range(12))  # every dump in exactly one MS


def test_held_blocks_never_stall_a_small_ring(tmp_path, rings, daemons, antenna_file):
    """A 4-buffer ring fed faster than the flush interval: the daemon flushes when it holds
    nbufs // 2 blocks, so the ring writer never waits for long."""
    out = out_dir(tmp_path)
    r = rings(nbufs=4)
    d = daemons("--autonomous", *r.options, "-o", f"MS_OUTPUT_DIR={out}",
                "-o", f"MS_ANTENNA_FILE={antenna_file}", "-o", "MS_FLUSH_INTERVAL_S=30")
    start = time.monotonic()
    with r.transfer(small_stream(scan_id=3)) as put:
        for i in range(12):
            put(i)
    assert time.monotonic() - start < 10  # with all 4 held it would stall until timeout
    d.wait_counter("ms_written_total", 1)
    check_ms(out / NAME.format(3), r.stream, 3, range(12))


def test_data_model_gives_uvw_and_a_mismatch_is_skipped(tmp_path, rings, daemons):
    """MS_DATA_MODEL: UVW and antennas from the model; a stream the model does not match
    (other channels) is counted as a metadata error, drained, and the daemon goes on."""
    sim = Simulation(antennas=random_layout(NANT, 1500.0, seed=5), nchan=8, ntime=4,
                     phase_centre=PhaseCentre.from_degrees(10.0, -30.0, "m"), scan_id=5)
    model = sim.write(tmp_path / "model.ms")
    stream = sim.stream()
    out = out_dir(tmp_path)
    r = rings(stream)
    d = daemons("--autonomous", *r.options, "-o", f"MS_OUTPUT_DIR={out}",
                "-o", f"MS_DATA_MODEL={model}")
    with r.transfer(dataclasses.replace(stream, scan_id=4, freq0_hz=300e6)) as put:
        for i in range(20):
            put(i)
    c = d.wait_counter("errors_metadata_total", 1)
    assert c["transfers_skipped_total"] == 1 and c["ms_written_total"] == 0
    with r.transfer() as put:
        for i in range(4):
            put(i)
    d.wait_counter("ms_written_total", 1)
    (path,) = out.iterdir()
    assert path.name == "scan5_2024-06-01-12:00:00.ms"
    check_ms(path, stream, 5, range(4))
    with tables.table(str(path), ack=False) as t, tables.table(str(model), ack=False) as m:
        np.testing.assert_array_equal(t.getcol("UVW"), m.getcol("UVW"))
    assert d.terminate() == 0


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    point = tmp_path / "disk"
    point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(point)],
                            capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_disk_full_is_counted_and_the_next_transfer_written(rings, daemons, antenna_file,
                                                             small_disk):
    r = rings()
    d = daemons("--autonomous", *r.options, "-o", f"MS_OUTPUT_DIR={small_disk}",
                "-o", f"MS_ANTENNA_FILE={antenna_file}", "-o", "MS_FLUSH_INTERVAL_S=0")
    filler = small_disk / "filler"
    with r.transfer(small_stream(scan_id=1)) as put:
        for i in range(3):
            put(i)
        d.wait_counter("dumps_written_total", 3)
        with open(filler, "wb") as f:  # leave less than the writer's 32 MB margin
            f.write(b"\0" * (20 << 20))
        for i in range(3, 25):  # the rest is drained, not blocking the writer
            put(i)
    c = d.wait_counter("errors_disk_full_total", 1)
    assert c["ms_aborted_total"] == 1 and c["ms_written_total"] == 0
    partial = small_disk / (NAME.format(1) + ".partial")
    check_ms(partial, r.stream, 1, range(3))  # every dump before the disk filled, flushed
    assert not (small_disk / NAME.format(1)).exists()
    assert "disk full" in d.output()
    filler.unlink()
    with r.transfer(small_stream(scan_id=2)) as put:
        put(0)
    d.wait_counter("ms_written_total", 1)
    check_ms(small_disk / NAME.format(2), r.stream, 2, [0])
    assert d.terminate() == 0


def test_a_scan_sent_again_gets_a_second_ms(tmp_path, rings, daemons, antenna_file):
    """Issue 12: re-sending a scan whose MS exists writes NAME_rep2.ms (logged, counted)."""
    out = out_dir(tmp_path)
    r = rings()
    d = daemons("--autonomous", *r.options, "-o", f"MS_OUTPUT_DIR={out}",
                "-o", f"MS_ANTENNA_FILE={antenna_file}")
    for sent in (1, 2):
        with r.transfer(small_stream(scan_id=7)) as put:
            for i in range(3):
                put(i)
        c = d.wait_counter("ms_written_total", sent)
    assert c["ms_suffixed_total"] == 1 and c["errors_output_exists_total"] == 0
    assert c["transfers_skipped_total"] == 0
    again = out / "scan7_2024-06-01-12:00:00_rep2.ms"
    for path in (out / NAME.format(7), again):
        check_ms(path, r.stream, 7, range(3))
    assert f"already exists (the scan was sent again): writing {again.name}" in d.output()
    assert d.terminate() == 0


@pytest.fixture
def tmpfs_100m(tmp_path):
    """A 100 MiB tmpfs (needs root; skips otherwise), unmounted in teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    point = tmp_path / "disk100"
    point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m", "tmpfs", str(point)],
                            capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_disk_filled_to_the_last_byte_by_another_process_mid_scan(rings, daemons, antenna_file,
                                                                  tmpfs_100m):
    """Issue 13.1: dd fills the disk mid-scan while rows are not flushed yet: the daemon
    survives (casacore used to abort it), counts it, keeps the ring drained, keeps every
    dump it had in the .partial, and writes the next scan once there is room again."""
    disk = tmpfs_100m
    r = rings()
    d = daemons("--autonomous", *r.options, "-o", f"MS_OUTPUT_DIR={disk}",
                "-o", f"MS_ANTENNA_FILE={antenna_file}", "-o", "MS_FLUSH_INTERVAL_S=60")
    filler = disk / "filler"
    with r.transfer(small_stream(scan_id=1)) as put:
        for i in range(3):
            put(i)
        d.wait_counter("dumps_written_total", 3)
        dd = subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"],
                            capture_output=True, text=True)
        assert "No space left" in dd.stderr and os.statvfs(disk).f_bavail == 0
        started = time.monotonic()
        for i in range(3, 40):  # more than the ring holds: drained, the writer never waits long
            put(i)
        assert time.monotonic() - started < 15
    c = d.wait_counter("blocks_total", 40)
    assert d.proc.poll() is None, d.tail()
    assert c["errors_disk_full_total"] == 1 and c["ms_aborted_total"] == 1
    assert c["ms_written_total"] == 0 and c["transfers_skipped_total"] == 1
    partial = disk / (NAME.format(1) + ".partial")
    with tables.table(str(partial), ack=False) as t:  # opens: the state of its last flush
        assert t.nrows() == 3 * r.stream.nbaseline
    check_ms(partial, r.stream, 1, range(3))
    assert "disk full" in d.output() and "Traceback" not in d.output()
    filler.unlink()
    with r.transfer(small_stream(scan_id=2)) as put:
        for i in range(2):
            put(i)
    d.wait_counter("ms_written_total", 1)
    check_ms(disk / NAME.format(2), r.stream, 2, range(2))
    assert not (disk / NAME.format(2) / "ringpipe.reserve").exists()
    assert d.terminate() == 0


@pytest.mark.parametrize("mode", ["autonomous", "managed"])
def test_sigterm_with_a_scan_loop_that_does_not_stop_in_time_exits_2(
        tmp_path, rings, daemons, antenna_file, mode):
    """Issue 13.2: STOP_TIMEOUT_S too short for the scan loop: exit 2, no crash (it closed
    the MS and the rings under the running scan thread: SIGSEGV, rc 139)."""
    out = out_dir(tmp_path)
    r = rings()
    keys = [*r.options, "-o", f"MS_OUTPUT_DIR={out}", "-o", f"MS_ANTENNA_FILE={antenna_file}"]
    if mode == "autonomous":
        d = daemons("--autonomous", *keys, "-o", "STOP_TIMEOUT_S=0.001")
    else:
        d = daemons(*keys, "-o", "STOP_TIMEOUT_S=0.001")
        for command, config in (("configure_beam", {}), ("configure_scan", {}),
                                ("start_scan", {"SCAN_ID": 42})):
            assert d.request(command, config)["ok"]
    with r.transfer() as put:
        for i in range(4):
            put(i)
        d.wait_counter("dumps_written_total", 4)
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 2
        # (no more blocks: a reader that exits without detaching keeps its slot, which gates
        # the writer until a successor takes it over, as after a kill -9)
    log = d.output()
    assert "scan loop did not stop within 0.001 s; nothing was undone while it runs" in log
    assert re.search(r"exiting with code 2( without closing what it uses)?\n", log)
    assert "final counters" in log and "Traceback" not in log


def test_bad_config_is_one_line_and_exit_1(tmp_path, antenna_file):
    def run(*options: str) -> str:
        args = [str(Path(sys.executable).parent / "svc-mswrite"), "--autonomous",
                "--socket", str(tmp_path / "x.sock")]
        for option in options:
            args += ["-o", option]
        result = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert not (tmp_path / "x.sock").exists()  # the daemon never started
        (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        return error

    error = run("DATA_KEY=a000", "WEIGHTS_KEY=a000", f"MS_OUTPUT_DIR={tmp_path}",
                "MS_NAME_TEMPLATE=x.MS", f"MS_ANTENNA_FILE={antenna_file}")
    assert "DATA_KEY and WEIGHTS_KEY must differ" in error
    assert "MS_NAME_TEMPLATE 'x.MS' (-o): must end in .ms" in error
    error = run("DATA_KEY=a000", "WEIGHTS_KEY=a010", f"MS_OUTPUT_DIR={tmp_path / 'nowhere'}",
                "PHASE_CENTRE_RA_DEG=10")
    for text in (f"MS_OUTPUT_DIR {tmp_path / 'nowhere'}: not a directory",
                 "exactly one of MS_DATA_MODEL and MS_ANTENNA_FILE (got neither)",
                 "both PHASE_CENTRE_RA_DEG and PHASE_CENTRE_DEC_DEG"):
        assert text in error


def test_a_300_character_output_dir_is_a_clean_refusal(tmp_path, rings, daemons, antenna_file):
    """Issue 13.14: configure_scan with a 300-character MS_OUTPUT_DIR: invalid_config naming
    the key (it was reason 'internal' with a traceback); the daemon keeps serving."""
    r = rings()
    d = daemons(*r.options, "-o", f"MS_ANTENNA_FILE={antenna_file}")
    assert d.request("configure_beam")["ok"]
    long_dir = "/tmp/" + "d" * 300
    reply = d.request("configure_scan", {"MS_OUTPUT_DIR": long_dir})
    assert (reply["ok"], reply["reason"], reply["state"]) == (False, "invalid_config",
                                                              "BeamConfigured")
    assert reply["error"] == ("configure_scan config: 1 problem: MS_OUTPUT_DIR /tmp/" + "d" * 35
                              + "..." + "d" * 30 + " (305 characters): File name too long")
    reply = d.request("configure_scan", {"MS_OUTPUT_DIR": "/tmp/a\0b"})
    assert reply["reason"] == "invalid_config" and "MS_OUTPUT_DIR" in reply["error"]
    out = out_dir(tmp_path)
    assert d.request("configure_scan", {"MS_OUTPUT_DIR": str(out)})["ok"]
    status = d.status()
    assert status["control"]["commands_refused_total"] == 2
    assert "Traceback" not in d.output() and "internal" not in d.output()
    assert d.terminate() == 0


@pytest.mark.parametrize(("option", "message"), [
    ("STOP_TIMEOUT_S=inf", "STOP_TIMEOUT_S 'inf' (-o): must be more than 0 and at most 86400 s"),
    ("CONTROL_SOCKET_MODE=7777", "CONTROL_SOCKET_MODE '7777' (-o): sets setuid, setgid or sticky"),
    ("CONTROL_SOCKET_MODE=-1", "CONTROL_SOCKET_MODE '-1' (-o): is not an octal file mode"),
    ("CONTROL_SOCKET_MODE=77777777", "CONTROL_SOCKET_MODE '77777777' (-o): is not an octal"),
    ("CONTROL_SOCKET_MODE=0666", "CONTROL_SOCKET_MODE '0666' (-o): lets every user on the host"),
])
def test_values_that_would_fail_later_are_refused_at_start_up(tmp_path, option, message):
    """Issue 13.11: exit 1 with one line before anything starts."""
    args = [str(Path(sys.executable).parent / "svc-mswrite"), "--socket",
            str(tmp_path / "x.sock"), "-o", option]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert message in error
    assert not (tmp_path / "x.sock").exists()
