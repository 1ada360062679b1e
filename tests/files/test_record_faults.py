"""`ringbuf record` under faults (issue 13, item 3): kill -9, a full disk, a header that only
fits the ring. A recorder holds blocks until their bytes are synced into a file a successor
finds; a successor finishes what a dead recorder left and continues the same files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from ringbuf import DadaHeader, RingPairWriter, RingWriter, snapshot
from ringbuf.file_segments import FileSegmentProducer, read_stream

REPO = Path(__file__).resolve().parents[2]
UTC = "2024-06-01-12:00:00"


def ringbuf(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", "from ringbuf.cli import main; main()", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_until(cond, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def reader_attached(key: str) -> bool:
    return any(r["alive"] for r in snapshot(key)["readers"])


def blocks_written(key: str) -> int:
    return snapshot(key)["writer"]["blocks_written"]


class Background(threading.Thread):
    def __init__(self, fn) -> None:
        super().__init__(daemon=True)
        self.fn, self.error = fn, None
        self.start()

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            self.error = exc

    def result(self, timeout: float = 60.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), "writer did not finish"
        if self.error is not None:
            raise self.error


def assert_one_contiguous_recording(directory: Path, expected: bytes, first_offset: int = 0):
    """Files in ``directory`` hold ``expected`` exactly once, in order, numbered on."""
    names = os.listdir(directory)
    assert not [n for n in names if n.startswith(".")], names  # no partial file left
    infos = read_stream(directory)
    assert infos, "no files"
    offset = first_offset
    numbers = []
    for info in infos:
        assert info.obs_offset == offset, (info.path, offset)
        assert info.header.get_int("FILE_SIZE") == info.data_size
        numbers.append(info.header.get_int("FILE_NUMBER"))
        offset = info.obs_end
    assert numbers == sorted(set(numbers)), numbers
    data = b"".join(i.path.read_bytes()[i.hdr_size:] for i in infos)
    assert len(data) == len(expected)
    assert data == expected


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kill_after", [(6,), (5, 14)])
def test_record_successor_after_kill_9_continues_without_loss(rings, kit, tmp_path, kill_after):
    """kill -9 mid-transfer (once, twice): the next recorder finishes the dead one's file and
    writes the rest into files that follow on, every byte exactly once."""
    bufsz, nblocks = 65536, 24
    key = rings.single(bufsz=bufsz, nbufs=4)
    payload = kit.pattern(nblocks * bufsz, 7).tobytes()
    header = DadaHeader({"UTC_START": UTC, "RESOLUTION": 1000, "OBS_OFFSET": 0})
    out = tmp_path / "rec"
    args = ("record", "-k", key, "-D", str(out), "--file-size", "150000", "--transfers", "1")

    def write() -> None:
        with RingWriter(key, timeout=60) as writer, writer.open_transfer(header) as xfer:
            for i in range(nblocks):
                xfer.write(payload[i * bufsz : (i + 1) * bufsz])
                time.sleep(0.02)

    rec = ringbuf(*args)
    wait_until(lambda: reader_attached(key), "the recorder")
    writer = Background(write)
    for after in kill_after:
        wait_until(lambda a=after: blocks_written(key) >= a, f"{after} blocks")
        rec.send_signal(signal.SIGKILL)
        rec.communicate(timeout=10)
        rec = ringbuf(*args)
    writer.result()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    assert "continuing a recording left unfinished" in err
    assert_one_contiguous_recording(out, payload)


@pytest.mark.timeout(180)
def test_pair_record_successor_after_kill_9_keeps_files_paired(rings, kit, tmp_path):
    dres, wres = kit.PST_DATA_RES, kit.PST_WEIGHTS_RES
    nseg, heaps_per_seg = 16, 2
    dkey, wkey = rings.pair(heaps_per_seg * dres, heaps_per_seg * wres)
    data = kit.pattern(nseg * heaps_per_seg * dres, 3)
    weights = kit.pattern(nseg * heaps_per_seg * wres, 4)
    out = tmp_path / "scan"
    args = ("record", "-k", dkey, "--weights-key", wkey, "-D", str(out),
            "--file-size", str(3 * dres), "--transfers", "1")

    def write() -> None:
        with RingPairWriter(dkey, wkey, timeout=60) as writer:
            with writer.open_transfer(kit.pst_data_header(), kit.pst_weights_header()) as xfer:
                d, w = heaps_per_seg * dres, heaps_per_seg * wres
                for i in range(nseg):
                    with xfer.open_segment() as seg:
                        seg.data[:d] = data[i * d : (i + 1) * d]
                        seg.weights[:w] = weights[i * w : (i + 1) * w]
                        seg.commit(d, w)
                    time.sleep(0.03)

    rec = ringbuf(*args)
    wait_until(lambda: reader_attached(dkey) and reader_attached(wkey), "the recorder")
    writer = Background(write)
    wait_until(lambda: blocks_written(dkey) >= 7, "7 segments")
    rec.send_signal(signal.SIGKILL)
    rec.communicate(timeout=10)
    rec = ringbuf(*args)
    writer.result()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    assert_one_contiguous_recording(out / "data", data.tobytes())
    assert_one_contiguous_recording(out / "weights", weights.tobytes())
    assert sorted(os.listdir(out / "data")) == sorted(os.listdir(out / "weights"))
    producer = FileSegmentProducer(out / "data")  # each file pair covers the same heaps
    assert np.array_equal(np.concatenate([s.weights for s in producer.segments()]), weights)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.timeout(120)
def test_record_on_a_full_disk_fails_in_one_line_and_clears_nothing_unsaved(
        rings, kit, small_disk):
    """Disk full: one line naming the file, exit 1, and what is not in a file stays in the
    ring; once there is space, a new recorder continues and nothing is lost."""
    bufsz, nblocks = 65536, 40  # 2.5 MiB into a 1 MiB disk
    key = rings.single(bufsz=bufsz, nbufs=4)
    payload = kit.pattern(nblocks * bufsz, 11).tobytes()
    header = DadaHeader({"UTC_START": UTC, "RESOLUTION": 1, "OBS_OFFSET": 0})
    out = small_disk / "rec"
    args = ("record", "-k", key, "-D", str(out), "--file-size", "400000", "--transfers", "1")

    def write() -> None:
        with RingWriter(key, timeout=60) as writer, writer.open_transfer(header) as xfer:
            xfer.write(payload)

    rec = ringbuf(*args)
    wait_until(lambda: reader_attached(key), "the recorder")
    writer = Background(write)
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "No space left on device" in lines[0] and str(out) in lines[0], err
    on_disk = sum(i.data_size for i in read_stream(out))
    assert 0 < on_disk < 1 << 20
    reader = snapshot(key)["readers"][0]
    assert 0 < reader["bytes_read"] <= on_disk  # nothing cleared that is not in a file
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    rec = ringbuf(*args)
    writer.result()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    assert_one_contiguous_recording(out, payload)


@pytest.mark.timeout(60)
def test_record_a_header_that_fills_the_ring_header_block(kit, tmp_path, key_factory):
    """A header that fits the ring but not with FILE_SIZE/FILE_NUMBER is still recorded (the
    file gets a bigger HDR_SIZE) and no block is lost."""
    from ringbuf import RingLayout, create_ring, destroy_ring
    from ringbuf.recorder import record

    key = key_factory()
    create_ring(key, RingLayout(nbufs=4, bufsz=4096, nreaders=1, hdr_size=4096))
    try:
        header = DadaHeader({"UTC_START": UTC, "OBS_OFFSET": 0})
        header.set("COMMENT", "x" * (4000 - len(header.text)))
        assert 3990 < len(header.text) < 4096 - 60
        payload = kit.pattern(3 * 4096, 5).tobytes()

        def write() -> None:
            with RingWriter(key, timeout=30) as writer, writer.open_transfer(header) as xfer:
                xfer.write(payload)

        writer = Background(write)
        summary = record(key, tmp_path, transfers=1, timeout=30)
        writer.result()
        assert summary.bytes == len(payload) and summary.transfers == 1
        (info,) = read_stream(tmp_path)
        assert info.hdr_size == 8192 and info.header["COMMENT"] == header["COMMENT"]
        assert info.path.read_bytes()[8192:] == payload
    finally:
        destroy_ring(key)


def test_record_clears_no_block_before_its_bytes_are_synced(rings, kit, tmp_path, monkeypatch):
    """At every clear, the bytes cleared so far are already fdatasync'ed into files."""
    from ringbuf import dadafile
    from ringbuf.reader import RingReader
    from ringbuf.recorder import record

    bufsz, nblocks = 8192, 40
    key = rings.single(bufsz=bufsz, nbufs=8)
    payload = kit.pattern(nblocks * bufsz, 9).tobytes()
    synced: dict[int, int] = {}  # inode -> data bytes on disk
    real_sync, real_clear = os.fdatasync, RingReader._clear
    cleared = [0]

    def fdatasync(fd: int) -> None:
        real_sync(fd)
        st = os.fstat(fd)
        synced[st.st_ino] = st.st_size - 4096

    def clear(self, block) -> None:
        cleared[0] += block.nbytes
        assert cleared[0] <= sum(synced.values()), "cleared a block not yet on disk"
        real_clear(self, block)

    monkeypatch.setattr(dadafile.os, "fdatasync", fdatasync)
    monkeypatch.setattr(RingReader, "_clear", clear)
    header = DadaHeader({"UTC_START": UTC, "RESOLUTION": 1, "OBS_OFFSET": 0})

    def write() -> None:
        with RingWriter(key, timeout=30) as writer, writer.open_transfer(header) as xfer:
            xfer.write(payload)

    writer = Background(write)
    summary = record(key, tmp_path, file_size=50000, transfers=1, timeout=30)
    writer.result()
    assert summary.bytes == len(payload) and cleared[0] == len(payload)
    assert_one_contiguous_recording(tmp_path, payload)


def test_a_failed_file_creation_consumes_no_block(rings, kit, tmp_path):
    """Any error while recording (here: a file in the way) gives back nothing unsaved."""
    from ringbuf.errors import DadaFileError
    from ringbuf.recorder import record

    key = rings.single(bufsz=4096, nbufs=4)
    payload = kit.pattern(3 * 4096, 13).tobytes()
    header = DadaHeader({"UTC_START": UTC, "OBS_OFFSET": 0})
    blocker = tmp_path / f"{UTC}_{0:016d}_{0:06d}.dada"
    blocker.write_bytes(b"someone else's file")

    def write() -> None:
        with RingWriter(key, timeout=30) as writer, writer.open_transfer(header) as xfer:
            xfer.write(payload)

    writer = Background(write)
    for problem in ("already exists, refusing to overwrite", "truncated header"):
        with pytest.raises(DadaFileError, match=problem) as info:  # each attempt fails on
            record(key, tmp_path, transfers=1, timeout=10)          # the file in the way
        assert str(blocker) in str(info.value)
        assert snapshot(key)["readers"][0]["bytes_read"] == 0  # and consumes nothing
    blocker.unlink()
    summary = record(key, tmp_path, transfers=1, timeout=10)
    writer.result()
    assert summary.bytes == len(payload)
    assert_one_contiguous_recording(tmp_path, payload)
