"""The HDF5 file: the reference layout field by field, uint64 promotion, atomic write."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from ringbuf.segment import Segment
from services.formats.pst import PstLayout
from services.stat import hdf5_schema as schema
from services.stat.compute import compute_segment
from services.stat.config import stat_config
from services.stat.generate import BeamSpec, generate_heaps, pst_headers
from services.stat.hdf5_writer import write_hdf5

HEADER_LAYOUT = [  # pst-stat.md section 5, as reported by h5py
    (0, "EB_ID", "str"), (8, "TELESCOPE", "str"), (16, "SCAN_ID", "<u8"), (24, "BEAM_ID", "str"),
    (32, "UTC_START", "str"), (40, "T_MIN", "<f8"), (48, "T_MAX", "<f8"), (56, "FREQ", "<f8"),
    (64, "BW", "<f8"), (72, "START_CHAN", "<u4"), (76, "NPOL", "<u4"), (80, "NDIM", "<u4"),
    (84, "NCHAN", "<u4"), (88, "NBIN_HIST", "<u4"), (92, "NCHAN_DS", "<u4"),
    (96, "NDAT_DS", "<u4"), (100, "NREBIN", "<u4"), (104, "CHAN_FREQ", "vlen<f8"),
    (120, "FREQUENCY_BINS", "vlen<f8"), (136, "TIMESERIES_BINS", "vlen<f8"),
    (152, "NUM_SAMPLES", "<u4"), (156, "NUM_SAMPLES_RFI_EXCISED", "<u4"),
    (160, "NUM_SAMPLES_SPECTRUM", "vlen<u4"), (176, "NUM_INVALID_PACKETS", "<u4"),
]


@pytest.fixture(scope="module")
def result():
    data_h, weights_h = pst_headers("mid", FREQ_MASK="4905:4910", NMASK=1, PICOSECONDS=1234,
                                    OBS_OFFSET=0, STAT_REQ_TIME_BINS=8, STAT_REQ_FREQ_BINS=37)
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(layout, BeamSpec(nan_packets=frozenset({2})), 0, 8)
    return compute_segment(Segment(data, weights, 5 * 8880, 5 * 1122, data_h, weights_h),
                           stat_config(data_h))


def _kind(dt: np.dtype) -> str:
    if h5py.check_string_dtype(dt):
        return "str"
    base = h5py.check_vlen_dtype(dt)
    return f"vlen{np.dtype(base).str}" if base is not None else dt.str


def test_layout_field_by_field(tmp_path: Path, result) -> None:
    path = write_hdf5(result, tmp_path / "s.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no temporary left
    with h5py.File(path, "r") as f:
        assert f.id.get_create_plist().get_version()[0] == 0  # superblock version 0
        assert len(f.attrs) == 0
        names = [n for n in f]
        assert sorted(names) == sorted(
            [schema.FILE_FORMAT_VERSION_DATASET, schema.HEADER_DATASET]
            + [n for n, _ in schema.DATASETS])
        version = f["FILE_FORMAT_VERSION"]
        assert version.shape == () and version[()] == b"1.0.0"
        vtype = version.id.get_type()
        assert vtype.is_variable_str() and vtype.get_cset() == h5py.h5t.CSET_ASCII
        header = f["HEADER"]
        assert header.shape == (1,) and header.dtype.itemsize == schema.HEADER_ITEMSIZE == 184
        got = [(header.dtype.fields[n][1], n, _kind(header.dtype.fields[n][0]))
               for n in header.dtype.names]
        assert got == HEADER_LAYOUT
        ftype = header.id.get_type()
        for i, (offset, name, _member_kind) in enumerate(HEADER_LAYOUT):
            assert ftype.get_member_name(i).decode() == name
            assert ftype.get_member_offset(i) == offset
        for name, kind in schema.DATASETS:
            dset = f[name]
            assert dset.dtype == np.dtype("<" + kind), name
            assert dset.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS, name
            assert dset.compression is None and len(dset.attrs) == 0
            np.testing.assert_array_equal(dset[()], getattr(result, name.lower()), err_msg=name)
        # creation order is the reference's: object header addresses increase
        addresses = [f[n].id.get_offset() for n in
                     ["FILE_FORMAT_VERSION", "HEADER"] + [n for n, _ in schema.DATASETS]]
        assert addresses == sorted(addresses)
        h = header[0]
        assert h["EB_ID"] == b"eb-m001-20230921-12345" and h["TELESCOPE"] == b"SKAMid"
        assert h["SCAN_ID"] == 12345 and h["BEAM_ID"] == b"1"
        assert h["UTC_START"] == b"2023-02-14-22:15:37"
        # T_MIN = PICOSECONDS*1e-6 (quirk) + OBS_OFFSET / BYTES_PER_SECOND
        assert h["T_MIN"] == pytest.approx(1234e-6 + 5 * 8880 / 136396799.9972066, rel=1e-12)
        assert h["NBIN_HIST"] == 256 and h["NCHAN"] == 555 and h["NREBIN"] == 256
        assert (h["NCHAN_DS"], h["NDAT_DS"]) == (37, 8)
        assert h["NUM_INVALID_PACKETS"] == 1
        assert h["NUM_SAMPLES"] == result.num_samples == 555 * 32 - 185 * 4
        assert h["NUM_SAMPLES_RFI_EXCISED"] < h["NUM_SAMPLES"]
        np.testing.assert_array_equal(h["NUM_SAMPLES_SPECTRUM"], result.num_samples_spectrum)
        np.testing.assert_array_equal(h["CHAN_FREQ"], result.chan_freq)
        assert len(h["FREQUENCY_BINS"]) == 37 and len(h["TIMESERIES_BINS"]) == 8


def test_counts_above_uint32_are_written_as_uint64(tmp_path: Path, result) -> None:
    big = dataclasses.replace(
        result, num_samples=2**33,
        histogram_1d_freq_avg=result.histogram_1d_freq_avg + 2**32)
    with h5py.File(write_hdf5(big, tmp_path / "big.h5"), "r") as f:
        assert f["HISTOGRAM_1D_FREQ_AVG"].dtype == np.dtype("<u8")
        assert f["HISTOGRAM_1D_FREQ_AVG"][0, 0, 0] == 2**32 + result.histogram_1d_freq_avg[0, 0, 0]
        assert f["HISTOGRAM_REBINNED_2D_FREQ_AVG"].dtype == np.dtype("<u4")
        header = f["HEADER"]
        assert header.dtype["NUM_SAMPLES"] == np.dtype("<u8")
        assert header[0]["NUM_SAMPLES"] == 2**33


def test_failed_write_leaves_nothing(tmp_path: Path, result) -> None:
    broken = dataclasses.replace(result, spectrogram=np.array(["not a number"]))
    with pytest.raises(ValueError):
        write_hdf5(broken, tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []
