"""TransferWriter in-process: names, rollover parts, continuations, gaps and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.mswrite.counters import MsWriteCounters
from services.mswrite.transfer import (
    ExistsPolicy,
    MsTarget,
    Reason,
    TransferError,
    TransferWriter,
    check_template,
    ms_name,
)
from tests.mswrite.svc_helpers import dump, expected_rows, read_ms, small_stream


def block(stream, dumps, lost=None):
    """Data and weights bytes of consecutive dumps as one block."""
    pairs = [dump(stream, d, (lost or {}).get(d)) for d in dumps]
    data = np.concatenate([v.view(np.uint8).reshape(-1) for v, _ in pairs])
    weights = np.concatenate([w.view(np.uint8).reshape(-1) for _, w in pairs])
    return data, weights


def writer_for(tmp_path, antennas, stream, resumed=False, **target):
    counters = MsWriteCounters()
    data_header, weights_header = stream.headers()
    target.setdefault("flush_interval_s", 0.0)
    w = TransferWriter(MsTarget(output_dir=tmp_path, antennas=antennas, **target), data_header,
                       weights_header, counters, resumed)
    return w, counters


def test_names():
    assert ms_name("scan{SCAN_ID}_{UTC_START}.ms", 7, "2024-06-01-12:00:00") == \
        "scan7_2024-06-01-12:00:00.ms"
    assert ms_name("s{SCAN_ID}.ms", 7, "x", part=3) == "s7_part003.ms"
    assert ms_name("s{SCAN_ID}.ms", 7, "x", part=2, resumed_from=17) == "s7_part002_resumed_d17.ms"
    for bad, why in (("scan.MS", "end in .ms"), ("a/{SCAN_ID}.ms", "file name"),
                     ("{SCAN}.ms", "placeholder")):
        with pytest.raises(ValueError, match=why):
            check_template(bad)


def test_rollover_parts_with_padding_and_empty_parts(tmp_path, antennas):
    """Rollover every 3 dumps with 2 dumps per block: blocks are split across parts; a
    continuation starting at dump 4 names itself, pads its part, and later parts are whole."""
    stream = small_stream(nant=6, dumps_per_block=2)
    w, c = writer_for(tmp_path, antennas, stream, resumed=True, rollover_dumps=3)
    w.start()  # a continuation opens nothing before its first block
    assert list(tmp_path.iterdir()) == []
    for first in (4, 6, 8):
        w.write(*block(stream, [first, first + 1]), first * stream.data_dump_bytes)
    paths = w.close()
    names = [p.name for p in paths]
    assert names == ["scan42_2024-06-01-12:00:00_part001_resumed_d4.ms",
                     "scan42_2024-06-01-12:00:00_part002.ms",
                     "scan42_2024-06-01-12:00:00_part003.ms"]
    first = read_ms(paths[0])  # dumps 4, 5 (part 1 = dumps 3..5; starts at 4)
    want_data, want_flag = expected_rows(stream, [4, 5])
    np.testing.assert_array_equal(first["DATA"], want_data)
    np.testing.assert_array_equal(first["FLAG"], want_flag)
    second = read_ms(paths[1])  # dumps 6, 7, 8
    np.testing.assert_array_equal(second["DATA"], expected_rows(stream, [6, 7, 8])[0])
    np.testing.assert_allclose(np.unique(second["TIME"]) - np.unique(first["TIME"])[0],
                               [2.0, 3.0, 4.0])
    assert len(read_ms(paths[2])["DATA"]) == stream.nbaseline  # dump 9: not padded (last part)
    assert (c.ms_written_total, c.dumps_written_total, c.dumps_flagged_total) == (3, 6, 0)


def test_parts_no_block_reached_are_written_flagged(tmp_path, antennas):
    stream = small_stream(nant=6)
    w, c = writer_for(tmp_path, antennas, stream, rollover_dumps=2)
    w.start()
    w.write(*block(stream, [0]), 0)
    w.write(*block(stream, [5]), 5 * stream.data_dump_bytes)  # dumps 1..4 never arrived
    paths = w.close()
    assert [p.name[-11:] for p in paths] == ["_part000.ms", "_part001.ms", "_part002.ms"]
    part0, part1, part2 = (read_ms(p) for p in paths)
    np.testing.assert_array_equal(part0["FLAG"], expected_rows(stream, [0, 1], missing=(1,))[1])
    assert part1["FLAG"].all() and not part1["DATA"].any() and len(part1["DATA"]) == 2 * 21
    np.testing.assert_array_equal(part2["DATA"], expected_rows(stream, [4, 5], missing=(4,))[0])
    assert c.dumps_flagged_total == 4
    assert c.visibilities_flagged_total == 4 * stream.nchan * stream.nbaseline


def test_lost_heaps_and_empty_dumps_are_counted(tmp_path, antennas):
    stream = small_stream(nant=6)
    w, c = writer_for(tmp_path, antennas, stream)
    w.start()
    lost = {0: 3, 1: -1}
    for d in range(3):
        w.write(*block(stream, [d], lost), d * stream.data_dump_bytes)
    (path,) = w.close()
    got = read_ms(path)
    want_data, want_flag = expected_rows(stream, [0, 1, 2], lost)
    np.testing.assert_array_equal(got["DATA"], want_data)
    np.testing.assert_array_equal(got["FLAG"], want_flag)
    assert c.dumps_flagged_total == 1  # dump 1 had no data at all
    assert c.visibilities_flagged_total == stream.nbaseline * (1 + stream.nchan)


def test_errors_have_reasons_and_leave_no_complete_ms(tmp_path, antennas):
    stream = small_stream(nant=6)
    (tmp_path / "scan42_2024-06-01-12:00:00.ms").mkdir()
    w, _ = writer_for(tmp_path, antennas, stream, exists=ExistsPolicy.REFUSE)
    with pytest.raises(TransferError, match="already exists") as info:
        w.start()
    assert info.value.reason is Reason.OUTPUT_EXISTS

    data_header, weights_header = stream.headers()
    data_header.delete("NCHAN")
    with pytest.raises(TransferError, match="NCHAN") as info:
        TransferWriter(MsTarget(output_dir=tmp_path, antennas=antennas), data_header,
                       weights_header, MsWriteCounters())
    assert info.value.reason is Reason.BAD_HEADER

    w, c = writer_for(tmp_path, antennas, stream, name_template="other{SCAN_ID}.ms")
    w.start()
    w.write(*block(stream, [0]), 0)
    data, weights = block(stream, [1])
    with pytest.raises(TransferError, match="not whole dumps") as info:
        w.write(data[:-8], weights, stream.data_dump_bytes)
    assert info.value.reason is Reason.BAD_BLOCK
    left = w.abort()
    assert left.name == "other42.ms.partial" and not (tmp_path / "other42.ms").exists()
    assert len(read_ms(left)["DATA"]) == stream.nbaseline  # the dump before the error is kept
    assert (c.ms_aborted_total, c.ms_written_total) == (1, 0)

    wrong = small_stream(nant=5)  # 5 antennas in the stream, 6 configured
    w, _ = writer_for(tmp_path, antennas, wrong, name_template="wrong{SCAN_ID}.ms")
    with pytest.raises(TransferError, match="NANT 5") as info:
        w.start()
    assert info.value.reason is Reason.METADATA
    assert not list(tmp_path.glob("wrong*"))


def test_every_counter_is_documented():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "mswrite.md").read_text()
    for name, kind, _ in MsWriteCounters.describe():
        assert f"| `{name}` | {kind} |" in docs, name


def test_a_continuation_never_writes_into_a_killed_continuations_partial(tmp_path, antennas):
    """A continuation killed before it cleared any block left ``..._resumed_d0.ms.partial``:
    the next continuation from the same dump takes the next free name."""
    stream = small_stream(nant=6)
    (tmp_path / "scan42_2024-06-01-12:00:00.ms.partial").mkdir()
    (tmp_path / "scan42_2024-06-01-12:00:00_resumed_d0.ms.partial").mkdir()
    w, c = writer_for(tmp_path, antennas, stream, resumed=True)
    w.start()
    w.write(*block(stream, [0]), 0)
    assert w.durable  # flush interval 0: flushed after the block
    [path] = w.close()
    assert path.name == "scan42_2024-06-01-12:00:00_resumed_d0_2.ms"
    want_data, _ = expected_rows(stream, [0])
    np.testing.assert_array_equal(read_ms(path)["DATA"], want_data)
    assert ms_name("s{SCAN_ID}.ms", 7, "x", resumed_from=17, attempt=3) == "s7_resumed_d17_3.ms"


def test_durable_follows_the_flushes(tmp_path, antennas):
    stream = small_stream(nant=6)
    w, _ = writer_for(tmp_path, antennas, stream, flush_interval_s=600.0)
    w.start()
    assert w.durable
    w.write(*block(stream, [0]), 0)
    assert not w.durable
    w.flush()
    assert w.durable
    w.write(*block(stream, [1]), stream.data_dump_bytes)
    assert not w.durable
    assert [p.name for p in w.close()] == ["scan42_2024-06-01-12:00:00.ms"]
    assert w.durable


def test_a_scan_sent_again_is_written_with_a_suffix_by_default(tmp_path, antennas, caplog):
    """Issue 12: a repeated scan never vanishes: MS_EXISTS suffix (default) writes
    NAME_rep2.ms, then _rep3; every rollover part keeps the transfer's suffix."""
    stream = small_stream(nant=6)
    names = []
    for expected_suffixed in (0, 1, 2):
        w, c = writer_for(tmp_path, antennas, stream)
        w.start()
        w.write(*block(stream, [0]), 0)
        names += [p.name for p in w.close()]
        assert (c.ms_suffixed_total, c.ms_written_total) == (min(expected_suffixed, 1), 1)
    assert names == ["scan42_2024-06-01-12:00:00.ms", "scan42_2024-06-01-12:00:00_rep2.ms",
                     "scan42_2024-06-01-12:00:00_rep3.ms"]
    for name in names:
        check = read_ms(tmp_path / name)
        np.testing.assert_array_equal(check["DATA"], expected_rows(stream, [0])[0])
    assert ("scan 42: " + str(tmp_path / names[0]) + " already exists (the scan was sent "
            "again): writing scan42_2024-06-01-12:00:00_rep3.ms (MS_EXISTS suffix)") in caplog.text
    w, c = writer_for(tmp_path, antennas, stream, rollover_dumps=1)
    w.start()
    w.write(*block(stream, [0]), 0)
    w.write(*block(stream, [1]), stream.data_dump_bytes)
    assert [p.name for p in w.close()] == ["scan42_2024-06-01-12:00:00_part000.ms",
                                           "scan42_2024-06-01-12:00:00_part001.ms"]
    w, c = writer_for(tmp_path, antennas, stream, rollover_dumps=1)
    w.start()
    w.write(*block(stream, [0]), 0)
    w.write(*block(stream, [1]), stream.data_dump_bytes)
    assert [p.name for p in w.close()] == ["scan42_2024-06-01-12:00:00_rep2_part000.ms",
                                           "scan42_2024-06-01-12:00:00_rep2_part001.ms"]
    assert c.ms_suffixed_total == 1


def test_a_scan_sent_again_refused_or_overwritten(tmp_path, antennas):
    stream = small_stream(nant=6)
    first = tmp_path / "scan42_2024-06-01-12:00:00.ms"
    w, _ = writer_for(tmp_path, antennas, stream)
    w.start()
    w.write(*block(stream, [0]), 0)
    w.close()
    w, c = writer_for(tmp_path, antennas, stream, exists=ExistsPolicy.REFUSE)
    with pytest.raises(TransferError, match="already exists") as info:
        w.start()
    assert info.value.reason is Reason.OUTPUT_EXISTS and c.ms_suffixed_total == 0
    w, c = writer_for(tmp_path, antennas, stream, exists=ExistsPolicy.OVERWRITE)
    w.start()
    w.write(*block(stream, [0, 1]), 0)
    assert w.close() == [first]
    assert c.ms_overwritten_total == 1
    assert len(read_ms(first)["TIME"]) == 2 * stream.nbaseline
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]
