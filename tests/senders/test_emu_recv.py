"""emu-recv end to end: emulator INI files -> emu-send -> emu-recv (real processes) -> MS.

emu-recv is run as ``python -m services.senders.emu_recv``; every check reads what was
really written (casacore tables, the ring objects in /dev/shm, /proc).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from services.common.processes import free_udp_ports
from services.demo.vis_flow import compare

BIN = Path(sys.executable).parent
NANT, NCHAN, NTIME, CPS = 4, 8, 4, 4
NBL = NANT * (NANT + 1) // 2
NSTREAMS = NCHAN // CPS
RECV = [sys.executable, "-m", "services.senders.emu_recv"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("emurecv") / "model.ms"
    subprocess.run([BIN / "sim-ms", str(out), "--nant", str(NANT), "--nchan", str(NCHAN),
                    "--ntime", str(NTIME), "--source", "2,0,0", "--source", "1,5,-3",
                    "--noise-jy", "0.1"], check=True, capture_output=True)
    return out


def write_confs(tmp: Path, model: Path, port: int, consumer: str, output: Path,
                sender_extra: str = "") -> tuple[Path, Path]:
    """(receiver.conf, sender.conf) as an emulator user writes them."""
    receiver = tmp / "receiver.conf"
    receiver.write_text(f"""[reception]
method = spead2_receivers
bind_hostname = 127.0.0.1
receiver_port_start = {port}
consumer = {consumer}
datamodel = {model}
outputfilename = {output}
ring_heaps = 8

[transmission]
channels_per_stream = {CPS}
""")
    sender = tmp / "sender.conf"
    sender.write_text(f"""[reader]
num_repeats = 1

[transmission]
target_host = 127.0.0.1
target_port_start = {port}
channels_per_stream = {CPS}
rate = 20000000
scan_id = 31
{sender_extra}
[payload]
method = icd
""")
    return receiver, sender


class RecvProcess:
    """emu-recv running; its stderr collected by a thread."""

    def __init__(self, receiver: Path, *args: str) -> None:
        self.proc = subprocess.Popen([*RECV, "-v", "-c", str(receiver), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.listening = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            if "listening on" in line:
                self.listening.set()

    def wait_listening(self, timeout: float = 90) -> None:
        assert self.listening.wait(timeout), "".join(self.err)

    def children(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def ring_keys(self) -> list[str]:
        for line in self.err:
            found = re.search(r"ring pair (\w+)/(\w+)", line)
            if found:
                return [found.group(1), found.group(2)]
        raise AssertionError("no ring pair logged: " + "".join(self.err))

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        self.proc.wait(timeout)
        self.thread.join(5)
        assert self.proc.stdout is not None
        return self.proc.returncode, self.proc.stdout.read()


def assert_nothing_left(keys: list[str], pids: list[int]) -> None:
    shm = [p.name for p in Path("/dev/shm").iterdir() if any(k in p.name for k in keys)]
    assert shm == [], shm
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def send(model: Path, sender: Path) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "emu-send", "-c", str(sender), str(model)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("framing", ["separate", "every_heap"])
def test_emu_send_to_emu_recv_mswriter_gives_the_input_ms(model, tmp_path, framing):
    port = free_udp_ports(NSTREAMS)
    output = tmp_path / "received.ms"
    receiver, sender = write_confs(tmp_path, model, port, "mswriter", output,
                                   f"framing = {framing}\n")
    recv = RecvProcess(receiver)
    recv.wait_listening()
    pids, keys = recv.children(), recv.ring_keys()
    assert len(pids) == 2  # svc-mswrite and svc-ingest
    sent = send(model, sender)
    assert sent.returncode == 0, sent.stderr
    code, stdout = recv.wait()
    assert code == 0, "".join(recv.err)
    assert f"{NTIME * NSTREAMS} heaps received, 0 lost, scan 31; wrote {output}" in stdout
    data_err, uvw_err, time_err, rows = compare(model, output)
    assert (data_err, rows) == (0.0, NTIME * NBL)
    assert uvw_err < 1e-3 and time_err < 1e-3
    with table(str(output), ack=False) as t:
        assert not t.getcol("FLAG").any()
        assert set(t.getcol("SCAN_NUMBER")) == {31}
    assert_nothing_left(keys, pids)


def test_class_consumer_reads_the_ring_pair(model, tmp_path):
    port = free_udp_ports(NSTREAMS)
    output = tmp_path / "stats.json"
    receiver, sender = write_confs(tmp_path, model, port, "tests.senders.stats_consumer.Stats",
                                   output)
    recv = RecvProcess(receiver)
    recv.wait_listening()
    pids, keys = recv.children(), recv.ring_keys()
    assert send(model, sender).returncode == 0
    code, _ = recv.wait()
    assert code == 0, "".join(recv.err)
    stats = json.loads(output.read_text())
    with table(str(model), ack=False) as t:
        expected = float(np.abs(t.getcol("DATA").astype(np.complex64)).sum())
    assert stats["dumps"] == NTIME and stats["nchan"] == NCHAN and stats["scan_id"] == 31
    assert stats["fd_sum"] == 255 * NTIME * NCHAN * NBL
    assert stats["vis_sum"] == pytest.approx(expected, rel=1e-5)
    assert_nothing_left(keys, pids)


def test_null_consumer_exits_when_the_stream_ends(model, tmp_path):
    port = free_udp_ports(NSTREAMS)
    receiver, sender = write_confs(tmp_path, model, port, "null", tmp_path / "unused.ms")
    recv = RecvProcess(receiver)
    recv.wait_listening()
    pids, keys = recv.children(), recv.ring_keys()
    assert len(pids) == 3  # ringbuf null x 2, svc-ingest
    assert send(model, sender).returncode == 0
    code, stdout = recv.wait()
    assert code == 0, "".join(recv.err)
    assert f"{NTIME * NSTREAMS} heaps received, 0 lost" in stdout
    assert_nothing_left(keys, pids)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_stream_leaves_no_rings_and_no_processes(model, tmp_path, signum):
    port = free_udp_ports(NSTREAMS)
    output = tmp_path / "cut.ms"
    receiver, sender = write_confs(tmp_path, model, port, "mswriter", output,
                                   "time_interval = 0.5\n")
    (tmp_path / "sender.conf").write_text(
        sender.read_text().replace("num_repeats = 1", "num_repeats = 10"))
    recv = RecvProcess(receiver)
    recv.wait_listening()
    pids, keys = recv.children(), recv.ring_keys()
    sender_proc = subprocess.Popen([BIN / "emu-send", "-c", str(sender), str(model)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)  # a few dumps in
        assert recv.proc.poll() is None
        os.kill(recv.proc.pid, signum)
        code, _ = recv.wait(60)
    finally:
        sender_proc.kill()
        sender_proc.wait()
    assert code == 128 + signum, "".join(recv.err)
    assert f"{signal.Signals(signum).name}: stopped, rings removed" in "".join(recv.err)
    assert_nothing_left(keys, pids)


@pytest.mark.parametrize("line,message", [
    ("consumer = mswriter\nnum_port = 2\n", "reception.num_port"),
    ("consumer = nosuch\n", "reception.consumer 'nosuch'"),
    ("consumer = mswriter\nmethod = tcp\n", "reception.method"),
    ("consumer = no_such_pkg.Consumer\n", "reception.consumer 'no_such_pkg.Consumer'"),
    ("consumer = mswriter\nmax_payloads = 3\n", "reception.max_payloads"),
])
def test_bad_receiver_config_is_one_line_naming_the_key(model, tmp_path, line, message):
    conf = tmp_path / "receiver.conf"
    conf.write_text(f"[reception]\ndatamodel = {model}\noutputfilename = {tmp_path}/o.ms\n"
                    f"receiver_port_start = 9\n{line}")
    out = subprocess.run([*RECV, "-c", str(conf)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], out.stderr


def test_help_has_examples():
    out = subprocess.run([*RECV, "--help"], capture_output=True, text=True, check=True)
    assert "Examples:" in out.stdout and "emu-recv -c receiver.conf" in out.stdout


def test_a_consumer_that_dies_ends_emu_recv_with_one_line_and_no_rings(model, tmp_path):
    port = free_udp_ports(NSTREAMS)
    receiver, sender = write_confs(tmp_path, model, port, "tests.senders.stats_consumer.Broken",
                                   tmp_path / "x.json")
    recv = RecvProcess(receiver)
    recv.wait_listening()
    pids, keys = recv.children(), recv.ring_keys()
    assert send(model, sender).returncode == 0
    code, _ = recv.wait()
    assert code == 1
    errors = [line for line in recv.err if line.startswith("Error: ")]
    assert len(errors) == 1 and "consumer exited with 1" in errors[0], "".join(recv.err)
    assert "ValueError: broken consumer" in errors[0] and "logs in" in errors[0]
    logs = Path(errors[0].rsplit("logs in ", 1)[1].rstrip(")\n"))
    assert (logs / "consumer.log").is_file()  # kept for the user to read
    shutil.rmtree(logs.parent)
    assert_nothing_left(keys, pids)
