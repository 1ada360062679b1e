"""Recordings open in another DADA reader: baseband (``baseband.dada``), for single rings and
SKA PST data/weights pairs; its header values and samples must equal what was written."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ringbuf import DadaHeader, RingPairWriter, RingWriter
from ringbuf.file_segments import read_stream
from ringbuf.recorder import record

dada = pytest.importorskip("baseband.dada", reason="baseband (pip install baseband) not installed")

COMMON = """HEADER              DADA
HDR_VERSION         1.0
HDR_SIZE            4096
DADA_VERSION        1.0
TELESCOPE           PKS
INSTRUMENT          CASPSR
SOURCE              J0437-4715
FREQ                1400.0
BW                  16.0
TSAMP               0.0625
UTC_START           2024-06-01-12:00:00
MJD_START           60462.500000000000
OBS_OFFSET          0
NBIT                8
NDIM                2
"""
END = "# end of header\n"


def run_writer(fn) -> threading.Thread:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.errors = errors  # type: ignore[attr-defined]
    return thread


def expected_samples(raw: np.ndarray, npol: int, nchan: int) -> np.ndarray:
    """8-bit complex DADA samples, (time, pol, chan), as PSRDADA lays them out."""
    pairs = raw.view(np.int8).astype(np.float32).reshape(-1, npol, nchan, 2)
    return pairs[..., 0] + 1j * pairs[..., 1]


@pytest.mark.timeout(60)
def test_single_ring_recording_opens_in_baseband(rings, kit, tmp_path):
    npol, nchan = 2, 4
    bytes_per_sample = npol * nchan * 2
    header = DadaHeader.parse(COMMON + f"NPOL                {npol}\nNCHAN               {nchan}\n"
                              f"RESOLUTION          {bytes_per_sample}\n" + END)
    key = rings.single(bufsz=1600)
    payload = kit.pattern(300 * bytes_per_sample, 21)

    def write() -> None:
        with RingWriter(key, timeout=30) as writer, writer.open_transfer(header) as xfer:
            xfer.write(payload.tobytes())

    writer = run_writer(write)
    record(key, tmp_path, file_size=100 * bytes_per_sample, transfers=1, timeout=30)
    writer.join(30)
    assert not writer.errors  # type: ignore[attr-defined]
    infos = read_stream(tmp_path)
    assert len(infos) == 3
    for number, info in enumerate(infos):
        with dada.open(str(info.path), "rs") as fh:
            h = fh.header0
            assert h["FILE_SIZE"] == info.data_size == 100 * bytes_per_sample
            assert h["FILE_NUMBER"] == number
            assert h["OBS_OFFSET"] == info.obs_offset == number * 100 * bytes_per_sample
            assert (h["SOURCE"], h["NCHAN"], h["NPOL"]) == ("J0437-4715", nchan, npol)
            assert h["HDR_SIZE"] == 4096
            samples = fh.read()
        start = info.obs_offset
        want = expected_samples(payload[start : start + info.data_size], npol, nchan)
        assert samples.shape == (100, npol, nchan)
        assert np.array_equal(samples, want)
    with dada.open([str(i.path) for i in infos], "rs") as fh:  # the files as one stream
        assert np.array_equal(fh.read(), expected_samples(payload, npol, nchan))


@pytest.mark.timeout(60)
def test_pst_pair_recording_opens_in_baseband(rings, kit, tmp_path):
    npol, nchan, nsamp = 2, 48, 32
    dres = nsamp * nchan * npol * 2  # one 8-bit heap
    wres = kit.PST_WEIGHTS_RES
    dh = DadaHeader.parse(COMMON + f"NPOL                {npol}\nNCHAN               {nchan}\n"
                          f"UDP_NSAMP           {nsamp}\nRESOLUTION          {dres}\n" + END)
    wh = DadaHeader.parse(COMMON.replace("NBIT                8", "NBIT                16")
                          .replace("NDIM                2", "NDIM                1")
                          + f"NPOL                1\nNCHAN               {nchan}\n"
                          f"RESOLUTION          {wres}\n" + END)
    dkey, wkey = rings.pair(2 * dres, 2 * wres)
    nheaps = 10
    data, weights = kit.pattern(nheaps * dres, 1), kit.pattern(nheaps * wres, 2)

    def write() -> None:
        with RingPairWriter(dkey, wkey, timeout=30) as writer:
            with writer.open_transfer(dh, wh) as xfer:
                for first in range(0, nheaps, 2):
                    with xfer.open_segment() as seg:
                        seg.data[: 2 * dres] = data[first * dres : (first + 2) * dres]
                        seg.weights[: 2 * wres] = weights[first * wres : (first + 2) * wres]
                        seg.commit(2 * dres, 2 * wres)

    writer = run_writer(write)
    record(dkey, tmp_path, weights_key=wkey, file_size=4 * dres, transfers=1, timeout=30)
    writer.join(30)
    assert not writer.errors  # type: ignore[attr-defined]
    dinfos, winfos = read_stream(tmp_path / "data"), read_stream(tmp_path / "weights")
    assert len(dinfos) == len(winfos) == 3
    for number, (dinfo, winfo) in enumerate(zip(dinfos, winfos, strict=True)):
        with dada.open(str(dinfo.path), "rs") as fh:
            h = fh.header0
            assert (h["FILE_NUMBER"], h["OBS_OFFSET"]) == (number, dinfo.obs_offset)
            assert h["FILE_SIZE"] == dinfo.data_size and h["RESOLUTION"] == dres
            samples = fh.read()
        start = dinfo.obs_offset
        want = expected_samples(data[start : start + dinfo.data_size], npol, nchan)
        assert np.array_equal(samples, want)
        with dada.open(str(winfo.path), "rb") as fh:  # 16-bit weights: baseband reads raw words
            h = fh.read_header()
            assert (h["FILE_NUMBER"], h["NBIT"], h["NPOL"]) == (number, 16, 1)
            assert h["OBS_OFFSET"] == winfo.obs_offset == dinfo.obs_offset // dres * wres
            assert h["FILE_SIZE"] == winfo.data_size
            raw = np.frombuffer(fh.read(h["FILE_SIZE"]), np.uint8)
        start = winfo.obs_offset
        assert np.array_equal(raw, weights[start : start + winfo.data_size])


def test_keys_set_on_a_header_stay_before_its_end_of_header_comment():
    header = DadaHeader.parse("HDR_SIZE 4096\nOBS_OFFSET 0\n# end of header\n")
    header.set("FILE_SIZE", 10)
    header.set("FILE_NUMBER", 2)
    assert header.text.splitlines()[-1] == "# end of header"
    assert DadaHeader.parse(header.text) == {"HDR_SIZE": "4096", "OBS_OFFSET": "0",
                                             "FILE_SIZE": "10", "FILE_NUMBER": "2"}
    header.delete("OBS_OFFSET")
    header.set("SOURCE", "B1937+21")
    assert header["FILE_NUMBER"] == "2" and header["SOURCE"] == "B1937+21"
