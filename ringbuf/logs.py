"""Logging for every ringpipe command (the ring CLI, the daemons, the tools): set up once,
one line per record.

Configuration (the first that is set wins):

* the ``level`` argument (``--log-level``; daemons also the ``LOG_LEVEL`` config key),
* the environment variable ``RINGPIPE_LOG_LEVEL`` (``DEBUG``, ``INFO``, ``WARNING``, ...),
* ``INFO``.

Records go to stderr as one line each: ``<UTC time> <LEVEL> <logger>: <message> key=value ...``.
Fields passed with ``extra=`` (``logger.info("attached", extra={"ring": "a000"})``) are appended
as ``key=value``. Newlines in messages and tracebacks are escaped as ``\\n`` so that a record is
never split across journal entries. When stderr is the systemd journal (``$JOURNAL_STREAM``)
the timestamp is left out, since journald adds its own.

Uncaught exceptions, in the main thread and in other threads, are logged as one record.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

ENV_LEVEL = "RINGPIPE_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_HANDLER_NAME = "ringpipe"


class OnelineFormatter(logging.Formatter):
    """Format a record, its ``extra`` fields and any traceback on a single line."""

    converter = time.gmtime  # type: ignore[assignment]  # UTC timestamps

    def __init__(self, timestamps: bool = True) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        if timestamps:
            fmt = "%(asctime)s.%(msecs)03dZ " + fmt
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [
            f"{key}={value}" for key, value in vars(record).items() if key not in _STANDARD_ATTRS
        ]
        if extras:
            text = f"{text} {' '.join(extras)}"
        return text.replace("\r", "").replace("\n", "\\n")


def parse_level(level: str | int | None) -> int:
    """Turn ``"debug"``, ``"INFO"``, ``10`` or None (environment, then INFO) into a level."""
    if level is None or level == "":
        level = os.environ.get(ENV_LEVEL, "") or "INFO"
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return getattr(logging, name)


def setup_logging(level: str | int | None = None, stream: TextIO | None = None) -> None:
    """Configure the root logger (once; later calls only change the level).

    Raises ValueError naming the level if it is not a known level name.
    """
    root = logging.getLogger()
    root.setLevel(parse_level(level))
    if any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        return
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(OnelineFormatter(timestamps=not os.environ.get("JOURNAL_STREAM")))
    root.addHandler(handler)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def toggle_debug(base_level: int) -> int:
    """Switch the root logger between DEBUG and ``base_level``; returns the new level."""
    root = logging.getLogger()
    new = base_level if root.level == logging.DEBUG else logging.DEBUG
    root.setLevel(new)
    return new


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("ringpipe").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("ringpipe").error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
