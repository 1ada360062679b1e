"""The one pacer shared by ``ringbuf play`` and ``ringbuf junk``."""

from __future__ import annotations

import threading
import time

from ringbuf.pacer import Pacer


def test_pacer_holds_the_rate():
    pacer = Pacer(1e6)
    started = time.monotonic()
    assert pacer.account(200_000) and pacer.account(200_000)
    elapsed = time.monotonic() - started
    assert 0.39 <= elapsed < 1.0
    assert pacer.sent == 400_000


def test_pacer_without_a_rate_never_waits():
    pacer = Pacer(None)
    started = time.monotonic()
    assert all(pacer.account(1 << 30) for _ in range(100))
    assert time.monotonic() - started < 0.1


def test_pacer_wait_is_cut_short_by_stop():
    stop = threading.Event()
    pacer = Pacer(1e3, stop)
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert pacer.account(10_000) is False  # 10 s due; stopped after 0.2 s
    assert time.monotonic() - started < 2.0
