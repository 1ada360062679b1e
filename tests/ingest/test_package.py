"""svc-ingest has the shape of every service, and ships nothing that exists only for tests."""

from __future__ import annotations

import ast
from pathlib import Path

import services.ingest
from services.ingest import receiver, sink

PACKAGE = Path(services.ingest.__file__).parent


def test_ingest_has_the_service_files():
    names = {p.name for p in PACKAGE.glob("*.py")}
    assert {"main.py", "config.py", "counters.py", "service.py"} <= names


def test_test_doubles_live_under_tests():
    assert not hasattr(sink, "MemorySink") and not hasattr(receiver, "InprocTransport")
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        calls = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert "add_inproc_reader" not in calls, f"{path.name} reads spead2 in-process queues"
