"""StatProcessor: one driver, whether fed whole segments (svc-stat) or a file stream in pieces."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from ringbuf import Segment
from ringbuf.file_segments import FileSegmentProducer
from services.common.config import ConfigError, ConfigSource
from services.formats.pst import PstLayout
from services.stat.compute import StatResult
from services.stat.config import StatConfig
from services.stat.generate import BeamSpec, generate_heaps, pst_headers, write_pair
from services.stat.processor import StatProcessor
from services.stat.publish import Hdf5StatPublisher

SPEC = BeamSpec(sigma=11.0, tones={3: 25.0}, clip_fraction=0.002, nan_packets=frozenset({5}))


class Collected:
    """A StatPublisher that keeps what it is given."""

    def __init__(self) -> None:
        self.results: list[StatResult] = []

    def publish(self, result: StatResult) -> None:
        self.results.append(result)


def assert_same(a: StatResult, b: StatResult) -> None:
    for f in dataclasses.fields(StatResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


def test_stream_in_pieces_equals_whole_segments(tmp_path: Path) -> None:
    data_h, weights_h = pst_headers("mid", FREQ_MASK="4905:4910", NMASK=1, STAT_REQ_TIME_BINS=3)
    data, _ = write_pair(tmp_path, data_h, weights_h, 12, SPEC)
    collected = Collected()
    files = Hdf5StatPublisher(lambda result, n: tmp_path / "out" / f"{n}.h5")
    producer = FileSegmentProducer(data, segment_heaps=1)  # 1-heap pieces
    processor = StatProcessor.for_transfer(producer.data_header, producer.weights_header,
                                           publishers=[files, collected])
    assert processor.config.req_time_bins == 3  # from the data header
    assert processor.process_stream(producer, producer.nheaps, segment_heaps=6) == 2
    assert [p.name for p in files.paths] == ["0.h5", "1.h5"]

    layout = PstLayout.from_headers(data_h, weights_h)
    whole = StatProcessor.for_transfer(data_h, weights_h)
    for number, first in enumerate((0, 6)):
        d, w = generate_heaps(layout, SPEC, first, 6)
        expected = whole.process(Segment(d, w, first * layout.data_heap_stride, 0, data_h,
                                         weights_h))
        assert_same(collected.results[number], expected)
        with h5py.File(files.paths[number]) as f:
            np.testing.assert_array_equal(f["SPECTROGRAM"][()], expected.spectrogram)
            assert f["HEADER"][0]["NDAT_DS"] == 3


def test_config_layers_over_the_header_and_bad_header_values_name_the_key() -> None:
    data_h, weights_h = pst_headers("low", NCHAN=48, STAT_REQ_FREQ_BINS=2, STAT_NREBIN=16)
    source = ConfigSource(environ={}).with_overrides("-o", {"STAT_NREBIN": "8"})
    processor = StatProcessor.for_transfer(data_h, weights_h, source)
    assert processor.config == StatConfig(req_time_bins=1024, req_freq_bins=2, nrebin=8)
    data_h.set("STAT_REQ_TIME_BINS", "lots")
    with pytest.raises(ConfigError, match=r"STAT_REQ_TIME_BINS 'lots' \(data header"):
        StatProcessor.for_transfer(data_h, weights_h, source)
