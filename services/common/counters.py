"""Counters, drop reasons and health: the monitoring API every service shares.

A service declares its counters as a dataclass::

    class Drop(enum.Enum):
        BAD_VIS_SIZE = "bad_vis_size"
        TOO_OLD = "too_old"

    @dataclass
    class IngestCounters(Counters):
        heaps_total: int = total("heaps received")
        ring_fill_blocks: int = gauge("blocks of the data ring that are full")
        heaps_rejected: ReasonCounts = reasons(Drop, "heaps_rejected", "heaps rejected")

* a **total** only grows; its name ends in ``_total``;
* a **gauge** is a current value; its name does not end in ``_total``;
* :func:`reasons` makes one total per member of a reason enum
  (``heaps_rejected_bad_vis_size_total``, ``heaps_rejected_too_old_total``).

A field with a single writer thread may be updated in place (``c.heaps_total += n``); a
counter written by several threads uses :meth:`Counters.add`, which takes a lock.
:meth:`Counters.snapshot` gives a flat ``{name: value}`` map, which the status command serves
and :class:`DeltaLogger` logs as deltas.

:class:`Health` turns faults and staleness into one value, OK / DEGRADED / FAIL: while data is
expected (a scan runs), no data for ``stale_after_s`` seconds makes it DEGRADED.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

E = TypeVar("E", bound=enum.Enum)
Number = int | float

_META = "ringpipe.counter"


@dataclass(frozen=True)
class CounterSpec:
    kind: str  # "total", "gauge" or "reasons"
    help: str


def total(help: str) -> Any:
    """Declare a total (a count that only grows); the field name must end in ``_total``."""
    return field(default=0, metadata={_META: CounterSpec("total", help)})


def gauge(help: str, default: Number | str = 0) -> Any:
    """Declare a gauge (a current value, a number or a short text such as a path); the field
    name must not end in ``_total``."""
    return field(default=default, metadata={_META: CounterSpec("gauge", help)})


def reasons(reason_enum: type[E], prefix: str, help: str) -> Any:
    """Declare one total per member of ``reason_enum``, named ``<prefix>_<value>_total``."""
    return field(
        default_factory=lambda: ReasonCounts(reason_enum, prefix),
        metadata={_META: CounterSpec("reasons", help)},
    )


class ReasonCounts(Generic[E]):
    """Totals keyed by the members of a reason enum (thread-safe ``add``)."""

    def __init__(self, reason_enum: type[E], prefix: str) -> None:
        self.reason_enum = reason_enum
        self.prefix = prefix
        self._counts: dict[E, int] = {member: 0 for member in reason_enum}
        self._lock = threading.Lock()

    def add(self, reason: E, n: int = 1) -> None:
        with self._lock:
            self._counts[reason] += n

    def __getitem__(self, reason: E) -> int:
        return self._counts[reason]

    def name(self, reason: E) -> str:
        return f"{self.prefix}_{reason.value}_total"

    def snapshot(self) -> dict[str, int]:
        return {self.name(member): count for member, count in self._counts.items()}


@dataclass
class Counters:
    """Base class of a service's counters (see the module docstring)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        for f in fields(self):
            spec = f.metadata.get(_META)
            if spec is None:
                raise TypeError(f"{type(self).__name__}.{f.name}: declare with total/gauge/reasons")
            if spec.kind == "total" and not f.name.endswith("_total"):
                raise TypeError(f"{type(self).__name__}.{f.name}: a total must end in _total")
            if spec.kind == "gauge" and f.name.endswith("_total"):
                raise TypeError(f"{type(self).__name__}.{f.name}: a gauge must not end in _total")

    def add(self, name: str, n: Number = 1) -> None:
        """Add ``n`` to counter ``name`` under a lock (for counters written by several threads)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, Number]:
        """Every counter by name; reason counters expanded to one total per reason."""
        out: dict[str, Number] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ReasonCounts):
                out.update(value.snapshot())
            else:
                out[f.name] = value
        return out

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """``(name, "total"|"gauge", help)`` for every counter, for docs and tests."""
        rows = []
        for f in fields(cls):
            spec: CounterSpec = f.metadata[_META]
            if spec.kind == "reasons":
                counts = f.default_factory()  # type: ignore[misc,operator]
                for member in counts.reason_enum:
                    rows.append((counts.name(member), "total", f"{spec.help}: {member.value}"))
            else:
                rows.append((f.name, spec.kind, spec.help))
        return rows


def is_total(name: str) -> bool:
    return name.endswith("_total")


def format_deltas(before: Mapping[str, Number], after: Mapping[str, Number]) -> str:
    """``"a_total +5 b_total +2 | fill_blocks=3"``: changed totals and changed gauges."""
    parts = []
    gauges = []
    for name, value in after.items():
        old = before.get(name, 0)
        if is_total(name):
            if value != old:
                parts.append(f"{name} +{value - old}")
        elif value != old:
            gauges.append(f"{name}={value}")
    text = " ".join(parts)
    if gauges:
        text = f"{text} | {' '.join(gauges)}" if text else " ".join(gauges)
    return text


def format_counters(values: Mapping[str, Number]) -> str:
    """``"a_total=5 b_total=0 fill_blocks=3"``: every counter, for the final summary."""
    return " ".join(f"{name}={value}" for name, value in values.items())


class DeltaLogger:
    """Logs what changed in a snapshot every ``interval_s`` seconds (INFO; DEBUG if idle)."""

    def __init__(
        self,
        snapshot: Callable[[], Mapping[str, Number]],
        interval_s: float,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot = snapshot
        self._interval_s = interval_s
        self._logger = logger
        self._clock = clock
        self._last = dict(snapshot())
        self._last_time = clock()

    def poll(self) -> None:
        """Log if the interval has passed (call this from the main loop)."""
        now = self._clock()
        if now - self._last_time < self._interval_s:
            return
        current = dict(self._snapshot())
        text = format_deltas(self._last, current)
        elapsed = now - self._last_time
        if text:
            self._logger.info("counters in the last %.1f s: %s", elapsed, text)
        else:
            self._logger.debug("counters in the last %.1f s: no change", elapsed)
        self._last = current
        self._last_time = now


class HealthState(str, enum.Enum):
    OK = "OK"
    DEGRADED = "DEGRADED"
    FAIL = "FAIL"


_SEVERITY = {HealthState.OK: 0, HealthState.DEGRADED: 1, HealthState.FAIL: 2}


@dataclass(frozen=True)
class HealthReport:
    state: HealthState
    reasons: tuple[str, ...] = ()


class Health:
    """A service's health: named problems plus a data-staleness check.

    ``set_problem("disk", HealthState.FAIL, "output disk full")`` until ``clear_problem``;
    ``expect_data(True)`` starts the staleness clock, ``data_seen()`` resets it.
    """

    def __init__(self, stale_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._problems: dict[str, tuple[HealthState, str]] = {}
        self._expecting = False
        self._last_data = clock()
        self._lock = threading.Lock()

    def data_seen(self) -> None:
        self._last_data = self._clock()

    def expect_data(self, expecting: bool) -> None:
        if expecting and not self._expecting:
            self._last_data = self._clock()
        self._expecting = expecting

    def set_problem(self, name: str, state: HealthState, reason: str) -> None:
        with self._lock:
            self._problems[name] = (state, reason)

    def clear_problem(self, name: str) -> None:
        with self._lock:
            self._problems.pop(name, None)

    def report(self) -> HealthReport:
        with self._lock:
            problems = list(self._problems.values())
        if self._expecting:
            idle = self._clock() - self._last_data
            if idle > self.stale_after_s:
                problems.append((HealthState.DEGRADED, f"no data for {idle:.0f} s"))
        if not problems:
            return HealthReport(HealthState.OK)
        worst = max((state for state, _ in problems), key=_SEVERITY.__getitem__)
        return HealthReport(worst, tuple(reason for _, reason in problems))
