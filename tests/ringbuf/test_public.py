"""The ``ringbuf`` public face is sorted and complete, and the segment producers satisfy
``SegmentProducer`` (tests/test_layers.py checks that services import only from it)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import ringbuf

REPO = Path(__file__).resolve().parents[2]


def test_all_is_sorted_and_complete():
    assert ringbuf.__all__ == sorted(ringbuf.__all__)
    assert all(hasattr(ringbuf, name) for name in ringbuf.__all__)
    errors = importlib.import_module("ringbuf.errors")
    for name, value in vars(errors).items():
        if (isinstance(value, type) and issubclass(value, Exception)
                and value.__module__ == errors.__name__):
            assert name in ringbuf.__all__, name


USAGE = '''
from collections.abc import Iterator

from ringbuf import (
    FileSegmentProducer,
    PairReadTransfer,
    PairViewTransfer,
    Segment,
    SegmentProducer,
)


def offsets(producer: SegmentProducer) -> Iterator[int]:
    for segment in producer.segments():
        yield segment.obs_offset


def both(files: FileSegmentProducer, ring: PairReadTransfer,
         view: PairViewTransfer) -> list[Segment]:
    list(offsets(files))
    list(offsets(ring))
    list(offsets(view))
    return list(files.segments()) + list(ring.segments())
'''


def test_file_ring_pair_reader_and_viewer_producers_are_segment_producers(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed")
    source = tmp_path / "usage.py"
    source.write_text(USAGE)
    result = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent",
                             "--ignore-missing-imports", "--no-incremental",
                             "--cache-dir", str(tmp_path / "cache"), str(source)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
