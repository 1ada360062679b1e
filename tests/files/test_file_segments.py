"""FileSegmentProducer: heap-aligned segments of data/weights recordings, checks, walking."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ringbuf.errors import DadaFileError, HeaderError
from ringbuf.file_segments import (
    FileSegmentProducer,
    read_stream,
    split_runs,
    weights_path_for,
)


def _collect(producer):
    data, weights, offsets = [], [], []
    for seg in producer.segments():
        assert not seg.data.flags.writeable and not seg.weights.flags.writeable
        data.append(seg.data.copy())
        weights.append(seg.weights.copy())
        offsets.append((seg.obs_offset, seg.weights_obs_offset, seg.data.size, seg.weights.size))
    return np.concatenate(data), np.concatenate(weights), offsets


def test_segments_of_n_heaps_last_one_shorter(tmp_path, kit):
    dpath, wpath, data, weights = kit.write_pst_pair(tmp_path, nheaps=7, first_heap=3)
    producer = FileSegmentProducer(dpath, wpath, segment_heaps=3)
    assert producer.nheaps == 7
    assert producer.data_header["OBS_OFFSET"] == str(3 * kit.PST_DATA_RES)
    got_d, got_w, offsets = _collect(producer)
    dr, wr = kit.PST_DATA_RES, kit.PST_WEIGHTS_RES
    assert offsets == [
        (3 * dr, 3 * wr, 3 * dr, 3 * wr),
        (6 * dr, 6 * wr, 3 * dr, 3 * wr),
        (9 * dr, 9 * wr, 1 * dr, 1 * wr),
    ]
    assert np.array_equal(got_d, data) and np.array_equal(got_w, weights)


def test_whole_file_is_one_segment_by_default_and_weights_found_by_name(tmp_path, kit):
    dpath, wpath, data, weights = kit.write_pst_pair(tmp_path, nheaps=4)
    assert weights_path_for(dpath) == wpath
    producer = FileSegmentProducer(dpath)
    segs = list(producer.segments())
    assert len(segs) == 1
    assert np.array_equal(segs[0].data, data) and np.array_equal(segs[0].weights, weights)
    assert segs[0].data_header["NPOL"] == "2" and segs[0].weights_header["NPOL"] == "1"


def test_missing_weights_file(tmp_path, kit):
    dpath, wpath, _, _ = kit.write_pst_pair(tmp_path, nheaps=1)
    wpath.unlink()
    with pytest.raises(DadaFileError, match=f"no weights file found \\(expected {wpath}\\)"):
        FileSegmentProducer(dpath)


def test_trailing_partial_heap_is_ignored_with_a_warning(tmp_path, kit, caplog):
    dpath, wpath, data, weights = kit.write_pst_pair(tmp_path, nheaps=5, extra_data=100)
    with caplog.at_level(logging.WARNING):
        producer = FileSegmentProducer(dpath, wpath, segment_heaps=2)
    assert f"{dpath}: ignoring a trailing partial heap of 100 bytes" in caplog.text
    got_d, got_w, _ = _collect(producer)
    assert np.array_equal(got_d, data[: 5 * kit.PST_DATA_RES])
    assert np.array_equal(got_w, weights)


def test_pair_with_different_whole_heaps(tmp_path, kit):
    # the reference's example: data of 152.5 heaps with weights of 153 heaps fails
    dpath, wpath, _, _ = kit.write_pst_pair(
        tmp_path, nheaps=4, extra_data=kit.PST_DATA_RES // 2, extra_weights=kit.PST_WEIGHTS_RES)
    with pytest.raises(DadaFileError) as excinfo:
        FileSegmentProducer(dpath, wpath)
    msg = str(excinfo.value)
    assert f"{dpath} has 4 (" in msg and f"{wpath} has 5 (" in msg
    assert f"RESOLUTION {kit.PST_DATA_RES}" in msg


def test_pair_not_heap_aligned_or_different_heaps(tmp_path, kit):
    dpath, wpath, data, weights = kit.write_pst_pair(tmp_path, nheaps=2, first_heap=1)
    header = kit.pst_weights_header(obs_offset=2 * kit.PST_WEIGHTS_RES)
    kit.write_raw_dada(wpath, header, weights)
    with pytest.raises(DadaFileError) as excinfo:
        FileSegmentProducer(dpath, wpath)
    assert "heap 1" in str(excinfo.value) and "heap 2" in str(excinfo.value)
    kit.write_raw_dada(wpath, kit.pst_weights_header(obs_offset=7), weights)
    with pytest.raises(DadaFileError, match=f"{wpath}: OBS_OFFSET 7 is not a multiple of "
                                            f"RESOLUTION {kit.PST_WEIGHTS_RES}"):
        FileSegmentProducer(dpath, wpath)


def test_missing_resolution_or_empty_data(tmp_path, kit):
    dpath, wpath, data, weights = kit.write_pst_pair(tmp_path, nheaps=1)
    header = kit.pst_data_header()
    header.delete("RESOLUTION")
    kit.write_raw_dada(dpath, header, data)
    with pytest.raises(HeaderError, match=f"{dpath}: missing required key RESOLUTION"):
        FileSegmentProducer(dpath, wpath)
    kit.write_raw_dada(dpath, kit.pst_data_header(), b"")
    with pytest.raises(DadaFileError, match=f"{dpath}: less than one heap of data \\(0 bytes"):
        FileSegmentProducer(dpath, wpath)
    dpath.write_bytes(b"HDR_SIZE 4096\n")
    with pytest.raises(DadaFileError, match=f"{dpath}: truncated header"):
        FileSegmentProducer(dpath, wpath)


def test_directory_walk_as_one_stream(tmp_path, kit):
    parts = []
    first = 0
    for number, nheaps in enumerate((3, 2, 4)):  # written out of order on purpose below
        parts.append(kit.write_pst_pair(tmp_path, nheaps, first, number, seed=number))
        first += nheaps
    producer = FileSegmentProducer(tmp_path / "data", tmp_path / "weights", segment_heaps=2)
    assert producer.nheaps == 9
    got_d, got_w, offsets = _collect(producer)
    assert np.array_equal(got_d, np.concatenate([p[2] for p in parts]))
    assert np.array_equal(got_w, np.concatenate([p[3] for p in parts]))
    dr = kit.PST_DATA_RES
    # segments never span files: 2+1, 2, 2+2 heaps
    assert [o[0] // dr for o in offsets] == [0, 2, 3, 5, 7]
    assert [o[2] // dr for o in offsets] == [2, 1, 2, 2, 2]
    # a list of data files works too, weights found by name
    listed = FileSegmentProducer([p[0] for p in reversed(parts)], segment_heaps=4)
    assert listed.nheaps == 9


def test_directory_walk_detects_a_gap(tmp_path, kit):
    kit.write_pst_pair(tmp_path, 3, 0, 0)
    d2, _, _, _ = kit.write_pst_pair(tmp_path, 2, 4, 1)  # heap 3 is missing
    with pytest.raises(DadaFileError) as excinfo:
        FileSegmentProducer(tmp_path / "data", tmp_path / "weights")
    msg = str(excinfo.value)
    assert str(d2) in msg and f"gap of {kit.PST_DATA_RES} bytes" in msg
    runs = split_runs(read_stream(tmp_path / "data"))
    assert [len(r) for r in runs] == [1, 1]


def test_directory_walk_with_unequal_file_counts(tmp_path, kit):
    kit.write_pst_pair(tmp_path, 3, 0, 0)
    _, w2, _, _ = kit.write_pst_pair(tmp_path, 2, 3, 1)
    (tmp_path / "data" / w2.name).unlink()
    with pytest.raises(DadaFileError, match="1 data files .* but 2 weights files"):
        FileSegmentProducer(tmp_path / "data", tmp_path / "weights")


def test_empty_directory_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DadaFileError, match="no .dada files in this directory"):
        FileSegmentProducer(tmp_path / "empty")
    with pytest.raises(DadaFileError, match="no such file or directory"):
        FileSegmentProducer(tmp_path / "missing.dada")


def test_constant_memory_on_a_large_sparse_pair(tmp_path, kit):
    """Walk a 600 MB (sparse) data file touching every page; RSS must stay small."""
    nheaps = 600_000_000 // kit.PST_DATA_RES
    dpath, wpath, _, _ = kit.write_pst_pair(tmp_path, 1)
    for path, res in ((dpath, kit.PST_DATA_RES), (wpath, kit.PST_WEIGHTS_RES)):
        with open(path, "r+b") as fh:
            fh.truncate(4096 + nheaps * res)
    script = textwrap.dedent(f"""
        import resource
        from ringbuf.file_segments import FileSegmentProducer
        def rss_mb():
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS"):
                        return int(line.split()[1]) / 1024
        producer = FileSegmentProducer({str(dpath)!r}, {str(wpath)!r}, segment_heaps=256)
        base = rss_mb(); peak = base; total = 0; checksum = 0
        for seg in producer.segments():
            checksum += int(seg.data[::4096].sum()) + int(seg.weights[::4096].sum())
            total += seg.data.size
            peak = max(peak, rss_mb())
        print(total, checksum, round(base), round(peak))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=100, check=True).stdout.split()
    total, checksum, base, peak = map(int, out)
    assert total == nheaps * kit.PST_DATA_RES
    assert checksum == int(kit.pattern(kit.PST_DATA_RES, 0)[::4096].sum()) + int(
        kit.pattern(kit.PST_WEIGHTS_RES, 1000)[::4096].sum())
    assert peak - base < 40, f"RSS grew from {base} MB to {peak} MB"
    print(f"RSS {base} -> {peak} MB")
