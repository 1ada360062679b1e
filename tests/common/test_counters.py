"""Counters, reason counters, delta logging and health."""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass

import pytest

from services.common.counters import (
    Counters,
    DeltaLogger,
    Health,
    HealthState,
    ReasonCounts,
    format_counters,
    format_deltas,
    gauge,
    reasons,
    total,
)


class Drop(enum.Enum):
    BAD_SHAPE = "bad_shape"
    TOO_OLD = "too_old"


@dataclass
class Sample(Counters):
    heaps_total: int = total("heaps received")
    ring_fill_blocks: int = gauge("full blocks")
    rejected: ReasonCounts = reasons(Drop, "heaps_rejected", "heaps rejected")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_snapshot_expands_reasons():
    c = Sample()
    c.heaps_total += 5
    c.ring_fill_blocks = 3
    c.rejected.add(Drop.TOO_OLD, 2)
    assert c.snapshot() == {
        "heaps_total": 5,
        "ring_fill_blocks": 3,
        "heaps_rejected_bad_shape_total": 0,
        "heaps_rejected_too_old_total": 2,
    }
    assert c.rejected[Drop.TOO_OLD] == 2


def test_describe_lists_every_counter_with_its_kind():
    assert Sample.describe() == [
        ("heaps_total", "total", "heaps received"),
        ("ring_fill_blocks", "gauge", "full blocks"),
        ("heaps_rejected_bad_shape_total", "total", "heaps rejected: bad_shape"),
        ("heaps_rejected_too_old_total", "total", "heaps rejected: too_old"),
    ]


def test_names_follow_the_total_and_gauge_convention():
    @dataclass
    class BadTotal(Counters):
        heaps: int = total("x")

    @dataclass
    class BadGauge(Counters):
        fill_total: int = gauge("x")

    with pytest.raises(TypeError, match="BadTotal.heaps: a total must end in _total"):
        BadTotal()
    with pytest.raises(TypeError, match="BadGauge.fill_total: a gauge must not end in _total"):
        BadGauge()


def test_add_is_exact_across_threads():
    c = Sample()

    def work() -> None:
        for _ in range(20000):
            c.add("heaps_total")
            c.rejected.add(Drop.BAD_SHAPE)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.heaps_total == 80000 and c.rejected[Drop.BAD_SHAPE] == 80000


def test_format_deltas_and_counters():
    before = {"a_total": 1, "b_total": 4, "fill": 2}
    after = {"a_total": 6, "b_total": 4, "fill": 3, "new_total": 2}
    assert format_deltas(before, after) == "a_total +5 new_total +2 | fill=3"
    assert format_deltas(after, after) == ""
    assert format_deltas({"fill": 1}, {"fill": 2}) == "fill=2"
    assert format_counters({"a_total": 6, "fill": 3}) == "a_total=6 fill=3"


def test_delta_logger_logs_every_interval(caplog):
    c = Sample()
    clock = Clock()
    deltas = DeltaLogger(c.snapshot, 10.0, logging.getLogger("t.deltas"), clock)
    caplog.set_level(logging.DEBUG, logger="t.deltas")
    c.heaps_total += 7
    clock.now += 5
    deltas.poll()
    assert caplog.messages == []  # interval not over
    clock.now += 5
    deltas.poll()
    assert caplog.messages == ["counters in the last 10.0 s: heaps_total +7"]
    clock.now += 10
    deltas.poll()
    assert caplog.records[-1].levelno == logging.DEBUG
    assert caplog.messages[-1] == "counters in the last 10.0 s: no change"


def test_health_staleness_only_while_expecting_data():
    clock = Clock()
    health = Health(stale_after_s=5.0, clock=clock)
    clock.now += 60
    assert health.report().state is HealthState.OK  # idle: no data expected
    health.expect_data(True)
    clock.now += 4
    assert health.report().state is HealthState.OK
    clock.now += 3
    report = health.report()
    assert report.state is HealthState.DEGRADED and report.reasons == ("no data for 7 s",)
    health.data_seen()
    assert health.report().state is HealthState.OK
    clock.now += 30
    health.expect_data(False)
    assert health.report().state is HealthState.OK


def test_health_takes_the_worst_problem():
    clock = Clock()
    health = Health(stale_after_s=1.0, clock=clock)
    health.set_problem("lag", HealthState.DEGRADED, "reader lags 5 blocks")
    assert health.report().state is HealthState.DEGRADED
    health.set_problem("disk", HealthState.FAIL, "output disk full")
    report = health.report()
    assert report.state is HealthState.FAIL
    assert report.reasons == ("reader lags 5 blocks", "output disk full")
    health.clear_problem("disk")
    health.clear_problem("lag")
    assert health.report().state is HealthState.OK
