"""`ringbuf record`, `ringbuf play` and `ringbuf header` as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ringbuf import DadaHeader, RingReader, RingWriter, snapshot
from ringbuf.dadafile import read_dada_file
from ringbuf.file_segments import read_stream

REPO = Path(__file__).resolve().parents[2]
RINGBUF = [sys.executable, "-c", "from ringbuf.cli import main; main()"]


def ringbuf(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([*RINGBUF, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = ringbuf(*args)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for_reader(key: str, timeout: float = 30.0) -> None:
    """Wait until a reader process is attached to ring ``key`` (started, handlers set up)."""
    deadline = time.monotonic() + timeout
    while not any(r["alive"] for r in snapshot(key)["readers"]):
        assert time.monotonic() < deadline, f"no reader attached to ring {key}"
        time.sleep(0.05)


def ramp(nbytes: int, offset: int = 0) -> bytes:
    return ((np.arange(nbytes) + offset) % 256).astype(np.uint8).tobytes()


def test_record_then_play_round_trip(rings, kit, tmp_path):
    key = rings.single(bufsz=32768)
    rec = ringbuf("record", "-k", key, "-D", str(tmp_path / "rec"), "--file-size", "50000",
                  "--transfers", "1", "--timeout", "20", "--json")
    payload = kit.pattern(200_000, 7)
    header = DadaHeader({"HDR_SIZE": 4096, "UTC_START": "2024-01-02-03:04:05", "RESOLUTION": 4096,
                         "BYTES_PER_SECOND": 1e6, "TELESCOPE": "SKALow"})
    with RingWriter(key, timeout=20) as writer:
        with writer.open_transfer(header) as xfer:
            xfer.write(payload)
    out, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    summary = json.loads(out)
    assert summary["bytes"] == 200_000 and summary["transfers"] == 1
    assert summary["files"] == 4  # 50000 -> 53248 (13 x 4096): 3 full files and a short one
    sizes = [i.data_size for i in read_stream(tmp_path / "rec")]
    assert sizes == [53248, 53248, 53248, 200_000 - 3 * 53248]

    got = {}

    def read():
        with RingReader(key, timeout=20) as reader:
            xfer = reader.open_transfer()
            got["header"], got["data"] = xfer.header, xfer.read_all()

    thread = threading.Thread(target=read)
    thread.start()
    played = run("play", "-k", key, str(tmp_path / "rec"), "--json")
    thread.join(20)
    assert played.returncode == 0, played.stderr
    assert json.loads(played.stdout)["bytes"] == 200_000
    assert got["data"] == payload.tobytes()
    assert got["header"]["TELESCOPE"] == "SKALow" and got["header"]["RESOLUTION"] == "4096"

    first = sorted((tmp_path / "rec").iterdir())[0]
    shown = run("header", str(first))
    assert shown.returncode == 0
    assert "FILE_NUMBER         0\n" in shown.stdout and "FILE_SIZE           53248" in shown.stdout
    ring_header = run("header", key)
    assert ring_header.returncode == 0, ring_header.stderr
    assert "UTC_START           2024-01-02-03:04:05" in ring_header.stdout


def test_record_keeps_complete_files_when_the_writer_is_killed(rings, tmp_path):
    key = rings.single(bufsz=65536)
    header_file = tmp_path / "junk.hdr"
    header_file.write_text("HDR_SIZE 4096\nUTC_START 2024-03-03-00:00:00\nRESOLUTION 65536\n")
    rec = ringbuf("record", "-k", key, "-D", str(tmp_path / "rec"), "--file-size", "200000",
                  "--transfers", "1", "--json")
    wait_for_reader(key)
    junk = ringbuf("junk", "-k", key, str(header_file), "--seconds", "30", "--rate", "1")
    deadline = time.monotonic() + 30
    while snapshot(key)["writer"]["blocks_written"] < 3:  # a few blocks, mid-transfer
        assert time.monotonic() < deadline, "junk wrote nothing"
        time.sleep(0.05)
    junk.send_signal(signal.SIGKILL)
    junk.communicate(timeout=10)
    out, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    summary = json.loads(out)
    assert summary["incomplete"] == 1 and summary["bytes"] >= 65536
    names = os.listdir(tmp_path / "rec")
    assert not [n for n in names if n.startswith(".")], names  # no partial file left
    infos = read_stream(tmp_path / "rec")
    assert sum(i.data_size for i in infos) == summary["bytes"]
    for info in infos:
        assert info.header.get_int("FILE_SIZE") == info.data_size
        data = info.path.read_bytes()[info.hdr_size:]
        assert data == ramp(info.data_size, info.obs_offset)  # junk's ramp pattern


def test_record_stops_on_sigterm(rings, tmp_path):
    key = rings.single(bufsz=4096)
    rec = ringbuf("record", "-k", key, "-D", str(tmp_path), "--json")
    wait_for_reader(key)
    rec.send_signal(signal.SIGTERM)
    out, err = rec.communicate(timeout=10)
    assert rec.returncode == 0, err
    assert json.loads(out)["transfers"] == 0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"HDR_SIZE 4096\nOBS_OFFSET 0\n"), "truncated header"),
        (lambda p: p.write_bytes(b"HDR_SIZE 64\n" + b"K v\n" * 40), "longer than HDR_SIZE 64"),
        (lambda p: p.write_bytes(b"HDR_SIZE 4096\n".ljust(4096, b"\0")),
         "missing required key OBS_OFFSET"),
    ],
)
def test_play_bad_file_is_one_clear_line(rings, tmp_path, make, message):
    key = rings.single(bufsz=4096)
    bad = tmp_path / "bad.dada"
    make(bad)
    result = run("play", "-k", key, str(bad))
    assert result.returncode == 1
    assert message in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_play_pair_mismatch_names_files_and_writes_nothing(rings, kit, tmp_path):
    dpath, wpath, _, _ = kit.write_pst_pair(tmp_path, 3, extra_weights=kit.PST_WEIGHTS_RES)
    dkey, wkey = rings.pair(4 * kit.PST_DATA_RES, 4 * kit.PST_WEIGHTS_RES)
    result = run("play", "-k", dkey, "--weights-key", wkey, str(tmp_path))
    assert result.returncode == 1
    assert str(dpath) in result.stderr and str(wpath) in result.stderr
    assert "Traceback" not in result.stderr


def test_header_of_unknown_thing(tmp_path):
    result = run("header", str(tmp_path / "nothing.dada"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'nothing.dada'}: cannot read: No such file" in result.stderr
    result = run("header", "zzzz")
    assert result.returncode == 1 and "not 1-8 hexadecimal digits" in result.stderr


def test_help_has_examples():
    for command in ("record", "play", "header"):
        result = run(command, "--help")
        assert result.returncode == 0 and "Example" in result.stdout, command


def test_header_of_psrdada_file(kit, tmp_path):
    path = kit.write_raw_dada(tmp_path / "2026-01-01-00:00:00_0000000000000000.000000.dada",
                              "HDR_SIZE 4096\nOBS_OFFSET   0                      \n", b"x")
    result = run("header", str(path))
    assert result.returncode == 0
    assert result.stdout == "HDR_SIZE 4096\nOBS_OFFSET   0                      \n"
    assert read_dada_file(path).obs_offset == 0


def test_pair_record_and_play_through_the_cli(rings, kit, tmp_path):
    from ringbuf import RingPairReader, RingPairWriter

    dres, wres = kit.PST_DATA_RES, kit.PST_WEIGHTS_RES
    dkey, wkey = rings.pair(2 * dres, 2 * wres)
    data, weights = kit.pattern(9 * dres, 3), kit.pattern(9 * wres, 4)
    rec = ringbuf("record", "-k", dkey, "--weights-key", wkey, "-D", str(tmp_path),
                  "--file-size", str(4 * dres), "--transfers", "1", "--timeout", "20", "--json")
    with RingPairWriter(dkey, wkey, timeout=20) as writer:
        with writer.open_transfer(kit.pst_data_header(), kit.pst_weights_header()) as xfer:
            for first in range(0, 9, 2):
                n = min(2, 9 - first)
                with xfer.open_segment() as seg:
                    seg.data[: n * dres] = data[first * dres : (first + n) * dres]
                    seg.weights[: n * wres] = weights[first * wres : (first + n) * wres]
                    seg.commit(n * dres, n * wres)
    out, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    summary = json.loads(out)
    assert (summary["bytes"], summary["weights_bytes"], summary["files"]) == (9 * dres, 9 * wres, 6)
    assert sorted(os.listdir(tmp_path / "data")) == sorted(os.listdir(tmp_path / "weights"))

    got = {}

    def read():
        with RingPairReader(dkey, wkey, timeout=20) as reader:
            segs = list((s.data.tobytes(), s.weights.tobytes()) for s in reader.open_transfer())
            got["data"] = b"".join(s[0] for s in segs)
            got["weights"] = b"".join(s[1] for s in segs)

    thread = threading.Thread(target=read)
    thread.start()
    played = run("play", "-k", dkey, "--weights-key", wkey, str(tmp_path), "--rate", "50")
    thread.join(20)
    assert played.returncode == 0, played.stderr
    assert got["data"] == data.tobytes() and got["weights"] == weights.tobytes()


def test_play_pair_into_blocks_without_whole_heaps_is_one_clear_line(rings, kit, tmp_path):
    kit.write_pst_pair(tmp_path, 3)
    # 1.5 data heaps per block: the blocks do not hold a whole number of heaps
    dkey, wkey = rings.pair(3 * kit.PST_DATA_RES // 2, 2 * kit.PST_WEIGHTS_RES)
    result = run("play", "-k", dkey, "--weights-key", wkey, str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert f"ring pair {dkey}/{wkey}" in result.stderr
    assert "do not hold the same whole number of heaps" in result.stderr
