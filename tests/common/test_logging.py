"""One-line log records, level selection, and excepthooks in a real process."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ringbuf.logs import OnelineFormatter, parse_level


def _record(msg: str, exc_info=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord("ringpipe.x", logging.WARNING, __file__, 1, msg, None, exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_record_with_extra_fields_is_one_line():
    line = OnelineFormatter(timestamps=False).format(_record("two\nlines", ring="a000", block=7))
    assert line == "WARNING ringpipe.x: two\\nlines ring=a000 block=7"


def test_traceback_is_kept_on_the_same_line():
    try:
        raise ValueError("boom")
    except ValueError:
        line = OnelineFormatter(timestamps=False).format(_record("failed", sys.exc_info()))
    assert "\n" not in line
    assert line.startswith("WARNING ringpipe.x: failed\\nTraceback")
    assert line.endswith("ValueError: boom")


def test_timestamp_is_utc_iso_with_milliseconds():
    line = OnelineFormatter().format(_record("x"))
    stamp = line.split(" ")[0]
    assert len(stamp) == len("2025-01-01T00:00:00.000Z") and stamp.endswith("Z")


def test_parse_level(monkeypatch):
    monkeypatch.delenv("RINGPIPE_LOG_LEVEL", raising=False)
    assert parse_level(None) == logging.INFO
    assert parse_level("debug") == logging.DEBUG
    monkeypatch.setenv("RINGPIPE_LOG_LEVEL", "WARNING")
    assert parse_level(None) == logging.WARNING
    assert parse_level("ERROR") == logging.ERROR  # the argument wins over the environment
    with pytest.raises(ValueError, match="'loud' is not one of DEBUG"):
        parse_level("loud")


def test_uncaught_exceptions_are_logged_as_one_record_each():
    code = (
        "import threading, logging\n"
        "from ringbuf import setup_logging\n"
        "setup_logging()\n"
        "logging.getLogger('t').debug('hidden')\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='worker'); t.start(); t.join()\n"
        "raise RuntimeError('main failed')\n"
    )
    env = dict(os.environ, RINGPIPE_LOG_LEVEL="INFO")
    env.pop("JOURNAL_STREAM", None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    lines = result.stderr.strip().split("\n")
    assert result.returncode == 1
    assert len(lines) == 2, result.stderr
    assert "ERROR ringpipe: uncaught exception in thread worker\\nTraceback" in lines[0]
    assert lines[0].endswith("ZeroDivisionError: division by zero")
    assert "CRITICAL ringpipe: uncaught exception\\nTraceback" in lines[1]
    assert lines[1].endswith("RuntimeError: main failed")


def test_no_command_configures_logging_its_own_way():
    # every console script (ringbuf, the daemons, the tools, the demo) calls setup_logging
    root = Path(__file__).resolve().parents[2]
    calls = []
    for path in sorted([*root.glob("ringbuf/**/*.py"), *root.glob("services/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "basicConfig"):
                calls.append(f"{path.relative_to(root)}:{node.lineno}")
    assert calls == []
