"""File names, header reading (PSRDADA and SKA PST quirks) and the safe single-file writer."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ringbuf.dadafile import (
    DadaFileWriter,
    DadaName,
    RollingDadaWriter,
    dada_file_name,
    default_file_size,
    file_end,
    parse_dada_file_name,
    read_dada_file,
)
from ringbuf.errors import DadaFileError, HeaderError
from ringbuf.header import DadaHeader

# The header dada_dbdisk wrote (see docs/files.md): keys it rewrote have padded values.
PSRDADA_HEADER = (
    "HDR_VERSION 1.0\nHDR_SIZE 4096\nUTC_START 2026-01-01-00:00:00\n"
    "OBS_OFFSET   0                      \nNBIT 8\nNDIM 2\nNPOL 2\nNCHAN 256\nRESOLUTION 1024\n"
    "FILE_SIZE    10000384               \nFILE_NUMBER  0                      \n"
)


def test_names_ours_and_psrdada():
    assert dada_file_name("2023-02-14-22:15:37", 5308416, 3) == (
        "2023-02-14-22:15:37_0000000005308416_000003.dada"
    )
    assert parse_dada_file_name("2023-02-14-22:15:37_0000000005308416_000003.dada") == DadaName(
        "2023-02-14-22:15:37", 5308416, 3
    )
    assert parse_dada_file_name("2026-01-01-00:00:00_0000000010000384.000000.dada") == DadaName(
        "2026-01-01-00:00:00", 10000384, 0
    )
    assert parse_dada_file_name("notes.txt") is None
    assert parse_dada_file_name("x_123_000001.dada") is None  # offset must have 16 digits
    with pytest.raises(HeaderError, match="UTC_START 'a/b'"):
        dada_file_name("a/b", 0, 0)


def test_reads_psrdada_dbdisk_file_with_padded_keys_and_wrong_file_size(tmp_path, kit):
    # zero-copy dada_dbdisk: header FILE_SIZE 10000384, but the file holds a whole 1 MiB block
    data = kit.pattern(1 << 20, 1)
    path = kit.write_raw_dada(tmp_path / "2026-01-01-00:00:00_0000000000000000.000000.dada",
                              PSRDADA_HEADER, data)
    info = read_dada_file(path)
    assert info.obs_offset == 0
    assert info.data_size == 1 << 20  # stat size - HDR_SIZE, not FILE_SIZE
    assert info.header["FILE_SIZE"] == "10000384"  # padded value, trimmed
    assert info.header.get_int("FILE_NUMBER") == 0
    assert info.resolution() == 1024
    assert info.utc_start == "2026-01-01-00:00:00"
    assert info.obs_end == 1 << 20


def test_reads_pst_header_width_20_and_large_offsets(tmp_path, kit):
    header = kit.pst_data_header(obs_offset=2**33 * kit.PST_DATA_RES)
    path = kit.write_raw_dada(tmp_path / "f.dada", header, b"\x01" * 100)
    info = read_dada_file(path)
    assert info.obs_offset == 2**33 * kit.PST_DATA_RES  # beyond 2^32, unlike PST's get_uint32
    assert info.header["UDP_FORMAT"] == "LowPST"
    assert info.data_size == 100


def test_hdr_size_other_than_4096(tmp_path, kit):
    header = DadaHeader.parse("HDR_SIZE 8192\nOBS_OFFSET 0\nUTC_START 2020-01-01-00:00:00\n")
    header.set("PADDING", "x" * 5000)  # text longer than 4096 but within 8192
    path = kit.write_raw_dada(tmp_path / "big.dada", header, b"abc", hdr_size=8192)
    info = read_dada_file(path)
    assert info.hdr_size == 8192 and info.data_size == 3
    assert info.header["PADDING"] == "x" * 5000


@pytest.mark.parametrize(
    "content, error, message",
    [
        (b"", DadaFileError, "empty file"),
        (b"HDR_SIZE 4096\nOBS_OFFSET 0\n\x00\x00", DadaFileError,
         "truncated header: the file has 29 bytes, HDR_SIZE is 4096"),
        (b"HDR_SIZE 64\nOBS_OFFSET 0\n" + b"KEY value\n" * 10 + b"\x00", HeaderError,
         "header text is longer than HDR_SIZE 64"),
        (b"HDR_SIZE 4096\nUTC_START x\n".ljust(4096, b"\x00") + b"data", HeaderError,
         "missing required key OBS_OFFSET"),
        (b"HDR_SIZE 4096\nOBS_OFFSET -5\n".ljust(4096, b"\x00"), HeaderError,
         "OBS_OFFSET -5 must be 0 .. 2^63-1"),
        (b"HDR_SIZE 4096\nOBS_OFFSET zero\n".ljust(4096, b"\x00"), HeaderError,
         "OBS_OFFSET 'zero' is not an integer"),
    ],
)
def test_bad_files_give_one_clear_error_naming_the_file(tmp_path, content, error, message):
    path = tmp_path / "bad.dada"
    path.write_bytes(content)
    with pytest.raises(error) as excinfo:
        read_dada_file(path)
    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_missing_file(tmp_path):
    with pytest.raises(DadaFileError, match="cannot read: No such file"):
        read_dada_file(tmp_path / "nope.dada")


def test_writer_publishes_complete_files_only(tmp_path):
    header = DadaHeader.parse("HDR_SIZE 4096\nUTC_START 2020-01-01-00:00:00\nOBS_OFFSET 0\n")
    path = tmp_path / dada_file_name("2020-01-01-00:00:00", 4096, 2)
    writer = DadaFileWriter(path, header, obs_offset=4096, file_number=2, planned_size=1 << 20)
    writer.write(np.arange(1000, dtype=np.uint8))
    writer.write(b"xyz")
    # while writing, only a hidden .partial file exists
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{path.name}.partial"]
    assert writer.close() == path
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    info = read_dada_file(path)
    assert info.header.get_int("FILE_SIZE") == 1003 == info.data_size
    assert info.header.get_int("OBS_OFFSET") == 4096
    assert info.header.get_int("FILE_NUMBER") == 2
    assert "FILE_SIZE           1003\n" in info.header.text  # keys left-justified to width 20
    assert path.read_bytes()[4096:] == bytes(np.arange(1000, dtype=np.uint8)) + b"xyz"


def test_writer_refuses_to_overwrite_and_abort_leaves_nothing(tmp_path):
    header = DadaHeader.parse("UTC_START 2020-01-01-00:00:00\nOBS_OFFSET 0\n")
    path = tmp_path / "x.dada"
    path.write_bytes(b"precious")
    with pytest.raises(DadaFileError, match="already exists"):
        DadaFileWriter(path, header, 0, 0, 10)
    assert path.read_bytes() == b"precious"
    other = DadaFileWriter(tmp_path / "y.dada", header, 0, 0, 10)
    other.write(b"abc")
    other.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dada"]


def test_writer_grows_hdr_size_when_the_per_file_keys_do_not_fit(tmp_path):
    """A transfer header that fills its HDR_SIZE still makes a valid file (issue 13, item 3)."""
    header = DadaHeader.parse("HDR_SIZE 64\nUTC_START 2020-01-01-00:00:00\nOBS_OFFSET 0\n")
    writer = DadaFileWriter(tmp_path / "z.dada", header, 0, 0, 10)
    writer.write(b"0123456789")
    writer.close()
    info = read_dada_file(tmp_path / "z.dada")
    assert info.hdr_size == 4096 and info.header.get_int("HDR_SIZE") == 4096
    assert info.data_size == 10 and info.header.get_int("FILE_SIZE") == 10
    assert (tmp_path / "z.dada").read_bytes()[4096:] == b"0123456789"


def test_file_size_rules():
    assert default_file_size(DadaHeader({"FILE_SIZE": 1234})) == 1234
    assert default_file_size(DadaHeader({"BYTES_PER_SECOND": 1000.5})) == 10005
    assert default_file_size(DadaHeader()) == 640_000_000  # dada_dbdisk's 64e6 B/s x 10 s
    # dada_dbdisk observed: requested 10,000,000 -> 10,000,384 with RESOLUTION 1024
    assert file_end(0, 10_000_000, 1024) == 10_000_384
    assert file_end(10_000_384, 10_000_000, 1024) == 20_000_768
    assert file_end(100, 1000, 1024) == 2048  # unaligned start: the end is aligned


def test_rolling_writer_names_offsets_numbers(tmp_path):
    header = DadaHeader.parse("UTC_START 2020-01-01-00:00:00\nOBS_OFFSET 1000\nA b c\n")
    roll = RollingDadaWriter(tmp_path, header, sync=False)
    for chunk in (b"a" * 10, b"b" * 7):
        roll.begin_file(planned_size=10)
        roll.write(chunk)
        roll.end_file()
    roll.begin_file(planned_size=10)
    assert roll.end_file() is None  # an empty file is not kept
    names = [p.name for p in roll.paths]
    assert names == ["2020-01-01-00:00:00_0000000000001000_000000.dada",
                     "2020-01-01-00:00:00_0000000000001010_000001.dada"]
    second = read_dada_file(roll.paths[1])
    assert (second.obs_offset, second.data_size) == (1010, 7)
    assert second.header.get_int("FILE_NUMBER") == 1
    assert second.header["A"] == "b c"
    assert sorted(os.listdir(tmp_path)) == names
