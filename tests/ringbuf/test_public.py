"""The ``ringbuf`` public face: every name a service or benchmark takes from a ringbuf module is
exported by ``ringbuf`` itself, and the segment producers satisfy ``SegmentProducer``."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import ringbuf

REPO = Path(__file__).resolve().parents[2]


def _imported_from_ringbuf_modules() -> set[tuple[str, str]]:
    found = set()
    for root in ("services", "benchmarks"):
        for path in (REPO / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.ImportFrom) and node.module
                        and node.module.startswith("ringbuf.")
                        and node.module not in ("ringbuf.errors", "ringbuf.cli")):
                    found.update((node.module, alias.name) for alias in node.names)
    return found


def test_every_name_services_take_from_a_ringbuf_module_is_exported():
    names = _imported_from_ringbuf_modules()
    assert ("ringbuf.header", "DadaHeader") in names  # the scan finds imports at all
    for module, name in sorted(names):
        assert name in ringbuf.__all__, f"{module}.{name} is not exported by ringbuf"
        assert getattr(ringbuf, name) is getattr(importlib.import_module(module), name)


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
