"""Hostile .dada files (issue 13, items 6 and 15): one line naming the file, key and value,
never a traceback, and nothing written to a ring before the problem is found."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ringbuf import DadaHeader, RingReader, RingWriter, snapshot
from ringbuf.errors import HeaderError
from ringbuf.player import play

REPO = Path(__file__).resolve().parents[2]
UTC = "2024-01-01-00:00:00"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", "from ringbuf.cli import main; main()", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("hdr_size", [10**20, 10**12, 2**63, 2**31])
def test_a_huge_hdr_size_is_one_line_for_header_and_play(rings, kit, tmp_path, hdr_size):
    path = kit.write_raw_dada(tmp_path / "huge.dada",
                              f"HDR_SIZE {hdr_size}\nOBS_OFFSET 0\nUTC_START {UTC}\n", b"x" * 100)
    want = f"Error: {path}: HDR_SIZE {hdr_size} is not plausible (more than 16777216 bytes)"
    assert one_line_error(cli("header", str(path))) == want
    key = rings.single(bufsz=4096)
    assert one_line_error(cli("play", "-k", key, str(path))) == want
    assert snapshot(key)["writer"]["attaches"] == 0  # checked before attaching


def test_an_hdr_size_beyond_the_file_is_a_truncated_header(kit, tmp_path):
    path = kit.write_raw_dada(tmp_path / "short.dada",
                              f"HDR_SIZE 1048576\nOBS_OFFSET 0\nUTC_START {UTC}\n", b"x" * 100)
    line = one_line_error(cli("header", str(path)))
    assert line == (f"Error: {path}: truncated header: the file has 4196 bytes, "
                    "HDR_SIZE is 1048576")


@pytest.mark.parametrize("offset", [2**70, 2**63, -1])
def test_an_obs_offset_beyond_64_bits_is_one_line(rings, kit, tmp_path, offset):
    path = kit.write_raw_dada(tmp_path / "far.dada",
                              f"HDR_SIZE 4096\nOBS_OFFSET {offset}\nUTC_START {UTC}\n", b"x" * 64)
    want = f"Error: {path}: OBS_OFFSET {offset} must be 0 .. 2^63-1"
    assert one_line_error(cli("header", str(path))) == want
    key = rings.single(bufsz=4096)
    assert one_line_error(cli("play", "-k", key, str(path))) == want


def test_a_writer_refuses_an_obs_offset_beyond_64_bits_before_starting(rings):
    key = rings.single(bufsz=4096)
    with RingWriter(key, timeout=5) as writer:
        with pytest.raises(HeaderError, match=rf"ring {key}: OBS_OFFSET {2**70} must be"):
            writer.open_transfer({"UTC_START": UTC, "OBS_OFFSET": 2**70})
        with writer.open_transfer({"UTC_START": UTC, "OBS_OFFSET": 2**62}) as xfer:
            xfer.write(b"y" * 10)  # the writer is still usable
    with RingReader(key, timeout=5) as reader:  # and the refused one never started
        xfer = reader.open_transfer()
        assert xfer.xfer_id == 0 and xfer.header.get_int("OBS_OFFSET") == 2**62
        assert xfer.read_all() == b"y" * 10


def test_play_of_a_header_only_file_is_one_empty_transfer(rings, kit, tmp_path):
    key = rings.single(bufsz=4096)
    header = DadaHeader({"HDR_SIZE": 4096, "OBS_OFFSET": 0, "UTC_START": UTC, "SOURCE": "x"})
    path = kit.write_raw_dada(tmp_path / "empty.dada", header, b"")
    summary = play(key, [path], timeout=5)
    assert (summary.transfers, summary.bytes) == (1, 0)
    done = cli("play", "-k", key, str(path))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert snapshot(key)["writer"]["bytes_written"] == 0
    with RingReader(key, timeout=5) as reader:  # both plays: a header and no data, each
        for _ in range(2):
            xfer = reader.open_transfer()
            assert xfer.header["SOURCE"] == "x" and xfer.read_all() == b""


def test_play_skips_an_empty_file_inside_a_run(rings, kit, tmp_path):
    key = rings.single(bufsz=4096, nbufs=8)
    data = kit.pattern(6000, 3).tobytes()
    for number, (offset, chunk) in enumerate([(0, data[:5000]), (5000, b""),
                                              (5000, data[5000:])]):
        header = DadaHeader({"HDR_SIZE": 4096, "OBS_OFFSET": offset, "UTC_START": UTC,
                             "FILE_NUMBER": number})
        kit.write_raw_dada(tmp_path / f"{UTC}_{offset:016d}_{number:06d}.dada", header, chunk)
    with RingReader(key, timeout=10) as reader:
        summary = play(key, [tmp_path], timeout=5)
        assert summary.transfers == 1 and summary.bytes == 6000
        assert reader.open_transfer().read_all() == data


def _mutations():
    from hypothesis import strategies as st

    good = (b"HDR_SIZE 4096\nOBS_OFFSET 0\nUTC_START 2024-01-01-00:00:00\n"
            b"RESOLUTION 16\n").ljust(4096, b"\0") + bytes(range(64))
    edits = st.lists(st.tuples(st.integers(0, len(good) - 1), st.binary(min_size=1, max_size=24)),
                     max_size=4)
    return st.one_of(
        st.binary(max_size=300),
        edits.map(lambda changes: _apply(good, changes)),
        st.integers(0, len(good)).map(lambda n: good[:n]),
        st.from_regex(rb"\AHDR_SIZE [0-9]{1,30}\nOBS_OFFSET -?[0-9]{1,25}\n\Z").map(
            lambda head: head.ljust(4096, b"\0") + b"data"),
    )


def _apply(data: bytes, changes) -> bytes:
    out = bytearray(data)
    for at, new in changes:
        out[at : at + len(new)] = new
    return bytes(out)


def test_any_damaged_file_is_a_dada_file_error_or_header_error(tmp_path_factory):
    """Fuzzed .dada files (random, truncated, overwritten, odd sizes): read_dada_file and the
    segment producer raise only DadaFileError or HeaderError (bounded in time)."""
    from hypothesis import given, settings

    from ringbuf.dadafile import read_dada_file
    from ringbuf.errors import DadaFileError
    from ringbuf.file_segments import FileSegmentProducer

    folder = tmp_path_factory.mktemp("fuzz")

    @settings(max_examples=150, deadline=500)
    @given(_mutations())
    def check(content: bytes) -> None:
        path = folder / "f.dada"
        path.write_bytes(content)
        try:
            info = read_dada_file(path)
        except (DadaFileError, HeaderError):
            return
        assert 0 <= info.obs_offset < 2**63 and info.data_size == len(content) - info.hdr_size
        try:
            for segment in FileSegmentProducer(path, path).segments():
                assert len(segment.data) % info.resolution() == 0
        except (DadaFileError, HeaderError):
            pass

    check()
