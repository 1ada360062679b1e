"""Ring -> record -> files -> play -> ring, for single rings and ring pairs, byte for byte."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from ringbuf import DadaHeader, RingPairReader, RingPairWriter, RingReader, RingWriter
from ringbuf.dadafile import PER_FILE_KEYS, read_dada_file
from ringbuf.errors import DadaFileError, HeaderError, RingBufError
from ringbuf.file_segments import FileSegmentProducer, read_stream
from ringbuf.player import play
from ringbuf.recorder import record

UTC = ["2024-05-01-10:00:00", "2024-05-01-10:05:00", "2024-05-01-10:09:00"]


class Background:
    """Run a function in a thread; ``result()`` re-raises its exception."""

    def __init__(self, fn, *args):
        self.value = self.error = None

        def run():
            try:
                self.value = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 30.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background thread did not finish"
        if self.error is not None:
            raise self.error
        return self.value


def write_transfers(key, transfers):
    with RingWriter(key, timeout=10) as writer:
        for header, payload in transfers:
            with writer.open_transfer(header) as xfer:
                xfer.write(payload)


def read_transfers(key, count):
    out = []
    with RingReader(key, timeout=10) as reader:
        for _ in range(count):
            xfer = reader.open_transfer()
            out.append((xfer.header, xfer.read_all()))
    return out


def assert_same_keys(original: DadaHeader, replayed: DadaHeader):
    for k, v in original.items():
        if k not in PER_FILE_KEYS:
            assert replayed[k] == v, k


def test_single_ring_round_trip_with_rollover_and_several_transfers(rings, kit, tmp_path):
    key = rings.single(bufsz=65536)
    transfers = []
    for i, (nbytes, offset) in enumerate(((300_000, 0), (65536 * 2, 4096), (1000, 0))):
        header = DadaHeader({"HDR_SIZE": 4096, "UTC_START": UTC[i], "OBS_OFFSET": offset,
                             "RESOLUTION": 1024, "SOURCE": "J0437-4715 main pulse", "NBIT": 8})
        transfers.append((header, kit.pattern(nbytes, i)))
    writer = Background(write_transfers, key, transfers)
    summary = record(key, tmp_path, file_size=100_000, transfers=3, timeout=10)
    writer.result()
    assert summary.transfers == 3 and summary.bytes == 300_000 + 131072 + 1000
    assert summary.incomplete == 0
    # 100,000 rounds up to 100,352 (98 x 1024); the transfer at offset 4096 ends aligned
    infos = read_stream(tmp_path)
    layout = [(i.utc_start, i.obs_offset, i.data_size, i.header.get_int("FILE_NUMBER"))
              for i in infos]
    assert layout == [
        (UTC[0], 0, 100_352, 0), (UTC[0], 100_352, 100_352, 1), (UTC[0], 200_704, 99_296, 2),
        (UTC[1], 4096, 100_352, 0), (UTC[1], 104_448, 30_720, 1),
        (UTC[2], 0, 1000, 0),
    ]
    for info in infos:
        assert info.header.get_int("FILE_SIZE") == info.data_size
        assert info.path.name == (f"{info.utc_start}_{info.obs_offset:016d}_"
                                  f"{info.header.get_int('FILE_NUMBER'):06d}.dada")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]

    reader = Background(read_transfers, key, 3)
    played = play(key, tmp_path, timeout=10)
    got = reader.result()
    assert played.transfers == 3 and played.bytes == summary.bytes
    for (header, payload), (got_header, got_payload) in zip(transfers, got, strict=False):
        assert got_payload == payload.tobytes()
        assert_same_keys(header, got_header)
        assert "FILE_SIZE" not in got_header and "FILE_NUMBER" not in got_header


def test_pair_round_trip_rolls_over_at_the_same_heap(rings, kit, tmp_path):
    dres, wres = kit.PST_DATA_RES, kit.PST_WEIGHTS_RES
    dkey, wkey = rings.pair(4 * dres, 4 * wres)
    data, weights = kit.pattern(10 * dres, 1), kit.pattern(10 * wres, 2)
    dh, wh = kit.pst_data_header(), kit.pst_weights_header()

    def write_pair():
        with RingPairWriter(dkey, wkey, timeout=10) as writer:
            with writer.open_transfer(dh, wh) as xfer:
                for first in range(0, 10, 4):
                    n = min(4, 10 - first)
                    with xfer.open_segment() as seg:
                        seg.data[: n * dres] = data[first * dres : (first + n) * dres]
                        seg.weights[: n * wres] = weights[first * wres : (first + n) * wres]
                        seg.commit(n * dres, n * wres)

    writer = Background(write_pair)
    summary = record(dkey, tmp_path, weights_key=wkey, file_size=3 * dres - 5, transfers=1,
                     timeout=10)
    writer.result()
    assert (summary.bytes, summary.weights_bytes) == (10 * dres, 10 * wres)
    dnames = sorted(os.listdir(tmp_path / "data"))
    assert dnames == sorted(os.listdir(tmp_path / "weights"))
    assert dnames == [f"{dh['UTC_START']}_{h * dres:016d}_{n:06d}.dada"
                      for n, h in enumerate((0, 3, 6, 9))]
    for name, heaps in zip(dnames, (3, 3, 3, 1), strict=False):
        d, w = read_dada_file(tmp_path / "data" / name), read_dada_file(tmp_path / "weights" / name)
        assert (d.data_size, w.data_size) == (heaps * dres, heaps * wres)
        assert d.obs_offset // dres == w.obs_offset // wres
        assert d.header.get_int("FILE_SIZE") == d.data_size
        assert w.header.get_int("FILE_SIZE") == w.data_size
        assert w.header["NPOL"] == "1"
    # the recording is a valid input for the statistics producer
    producer = FileSegmentProducer(tmp_path / "data", segment_heaps=2)
    assert producer.nheaps == 10
    assert np.array_equal(np.concatenate([s.data for s in producer.segments()]), data)

    def read_pair():
        with RingPairReader(dkey, wkey, timeout=10) as reader:
            xfer = reader.open_transfer()
            segs = [(s.data.tobytes(), s.weights.tobytes()) for s in xfer]
            return xfer.data_header, xfer.weights_header, segs

    reader = Background(read_pair)
    played = play(dkey, [tmp_path], weights_key=wkey, timeout=10)
    got_dh, got_wh, segs = reader.result()
    assert played.transfers == 1
    assert b"".join(s[0] for s in segs) == data.tobytes()
    assert b"".join(s[1] for s in segs) == weights.tobytes()
    assert [len(s[0]) // dres for s in segs] == [4, 4, 2]
    assert_same_keys(dh, got_dh)
    assert_same_keys(wh, got_wh)


def test_play_psrdada_dbdisk_files(rings, kit, tmp_path):
    """Zero-copy dada_dbdisk quirks: FILE_SIZE lies, FILE_NUMBER is 0, `.NNNNNN.dada` names."""
    header = ("HDR_VERSION 1.0\nHDR_SIZE 4096\nUTC_START 2026-01-01-00:00:00\n"
              "OBS_OFFSET   {off:<20} \nNBIT 8\nNDIM 2\nNPOL 2\nNCHAN 256\nRESOLUTION 1024\n"
              "FILE_SIZE    10240                \nFILE_NUMBER  0                    \n")
    sizes = (16384, 16384, 5000, 16384)  # the last one follows a gap
    offsets = (0, 16384, 32768, 65536)
    payloads = [kit.pattern(n, i) for i, n in enumerate(sizes)]
    for off, payload in zip(offsets, payloads, strict=False):
        kit.write_raw_dada(tmp_path / f"2026-01-01-00:00:00_{off:016d}.000000.dada",
                           header.format(off=off), payload)
    key = rings.single(bufsz=8192)
    reader = Background(read_transfers, key, 2)
    played = play(key, tmp_path, timeout=10)
    (h1, d1), (h2, d2) = reader.result()
    assert played.transfers == 2
    assert d1 == b"".join(p.tobytes() for p in payloads[:3])  # real sizes, not FILE_SIZE
    assert d2 == payloads[3].tobytes()
    assert (h1.get_int("OBS_OFFSET"), h2.get_int("OBS_OFFSET")) == (0, 65536)
    assert "FILE_SIZE" not in h1 and h1["NCHAN"] == "256"


def test_play_checks_everything_before_writing(rings, kit, tmp_path):
    dres = kit.PST_DATA_RES
    kit.write_pst_pair(tmp_path, 3, extra_weights=kit.PST_WEIGHTS_RES)  # 3 vs 4 heaps
    dkey, wkey = rings.pair(4 * dres, 4 * kit.PST_WEIGHTS_RES)
    with pytest.raises(DadaFileError, match="different numbers of whole heaps"):
        play(dkey, tmp_path, weights_key=wkey, timeout=2)
    with RingReader(dkey, timeout=0.3) as reader:  # nothing was written
        with pytest.raises(RingBufError):
            reader.open_transfer()


def test_record_refuses_to_overwrite_and_leaves_no_partial_file(rings, kit, tmp_path):
    key = rings.single(bufsz=4096)
    header = DadaHeader({"UTC_START": UTC[0], "OBS_OFFSET": 0})
    (tmp_path / f"{UTC[0]}_{0:016d}_{0:06d}.dada").write_bytes(b"older recording")
    writer = Background(write_transfers, key, [(header, kit.pattern(10000, 0))])
    with pytest.raises(DadaFileError, match="already exists, refusing to overwrite"):
        record(key, tmp_path, transfers=1, timeout=10)
    writer.result()  # 10000 bytes fit in the ring: the writer finishes regardless
    assert sorted(os.listdir(tmp_path)) == [f"{UTC[0]}_{0:016d}_{0:06d}.dada"]


def test_record_needs_utc_start(rings, kit, tmp_path):
    key = rings.single(bufsz=4096)
    writer = Background(write_transfers, key, [(DadaHeader({"OBS_OFFSET": 0}), b"x" * 10)])
    with pytest.raises(HeaderError, match="missing required key UTC_START"):
        record(key, tmp_path, transfers=1, timeout=10)
    writer.result()
    assert os.listdir(tmp_path) == []


def test_record_timeout_without_writer_is_a_clean_end(rings, tmp_path):
    key = rings.single(bufsz=4096)
    summary = record(key, tmp_path, timeout=0.3)
    assert summary.transfers == 0 and summary.files == []
