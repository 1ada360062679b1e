"""Ring pairs: data and weights rings in step."""

import pytest

from ringbuf import RingLayout, RingPairReader, RingPairWriter, create_ring_pair, destroy_ring_pair
from ringbuf.errors import Timeout


@pytest.fixture
def pair(key_factory):
    keys = key_factory(), key_factory()
    create_ring_pair(*keys, RingLayout(4, 1024), RingLayout(4, 64))
    yield keys
    destroy_ring_pair(*keys)


def test_segments_pair_block_i_of_both_rings(pair):
    with RingPairWriter(*pair, timeout=5) as writer:
        with writer.open_transfer({"KIND": "data"}, {"KIND": "weights"}) as px:
            for i in range(3):
                with px.open_segment() as seg:
                    seg.data[:] = i
                    seg.weights[:] = 10 + i
    with RingPairReader(*pair, timeout=5) as reader:
        px = reader.open_transfer()
        assert (px.data_header["KIND"], px.weights_header["KIND"]) == ("data", "weights")
        got = [(s.obs_offset, s.weights_obs_offset, int(s.data[0]), int(s.weights[0])) for s in px]
    assert got == [(0, 0, 0, 10), (1024, 64, 1, 11), (2048, 128, 2, 12)]


def test_fill_counts_what_the_reader_has_not_cleared(pair):
    with RingPairReader(*pair, timeout=5) as reader, RingPairWriter(*pair, timeout=5) as writer:
        empty = reader.fill()
        assert {name: v["full_blocks"] for name, v in empty.items()} == {"data": 0, "weights": 0}
        with writer.open_transfer({"A": 1}, {"A": 1}) as px:
            for _ in range(3):
                with px.open_segment():
                    pass
            fill = reader.fill()
            assert fill["data"] == {"key": pair[0], "nbufs": 4, "full_blocks": 3,
                                    "writer_alive": True}
            assert fill["weights"]["full_blocks"] == 3 and fill["weights"]["key"] == pair[1]
            rx = reader.open_transfer()
            held = rx.next_segment(timeout=1)
            held.clear()
            assert reader.fill()["data"]["full_blocks"] == 2


def test_a_weights_timeout_does_not_split_a_pair(pair):
    with RingPairWriter(*pair, timeout=5) as writer, RingPairReader(*pair, timeout=5) as reader:
        px = writer.open_transfer({"A": 1}, {"A": 1})
        seg = px.open_segment()
        seg.data[:] = 7
        seg.data_block.commit()  # the weights block is not published yet
        rx = reader.open_transfer()
        with pytest.raises(Timeout):
            rx.next_segment(timeout=0.2)
        seg.weights[:] = 8
        seg.weights_block.commit()
        held = rx.next_segment(timeout=1)
        assert (int(held.segment.data[0]), int(held.segment.weights[0])) == (7, 8)
        held.clear()
        px.end()


def test_rings_of_different_nbufs_are_refused_and_released(key_factory):
    from ringbuf import RingLayout, RingWriter, create_ring, destroy_ring
    from ringbuf.errors import RingLayoutMismatch

    dk, wk = key_factory(), key_factory()
    create_ring(dk, RingLayout(4, 1024))
    create_ring(wk, RingLayout(8, 64))
    try:
        with pytest.raises(RingLayoutMismatch, match="nbufs differ .4 vs 8."):
            RingPairWriter(dk, wk)
        with RingWriter(dk), RingWriter(wk):  # both writer roles were given back
            pass
    finally:
        destroy_ring(dk)
        destroy_ring(wk)


def _write_segments(pair, values, end=True, pause=0.0):
    """One transfer of len(values) full segments: data block i all values[i], weights 100+."""
    import time

    with RingPairWriter(*pair, timeout=10) as writer:
        px = writer.open_transfer({"A": 1}, {"A": 1})
        for value in values:
            time.sleep(pause)
            with px.open_segment() as seg:
                seg.data[:] = value
                seg.weights[:] = 100 + value
        if end:
            px.end()


def test_held_segments_are_given_back_in_order_and_then_reused(pair):
    import threading

    writer = threading.Thread(target=_write_segments, args=(pair, range(6)))
    writer.start()
    with RingPairReader(*pair, timeout=10) as reader:
        px = reader.open_transfer()
        got = []
        for _ in range(3):  # nbufs 4: hold 3, the writer fills the 4th and waits
            held = px.next_segment()
            assert held is not None
            got.append((int(held.segment.data[0]), int(held.segment.weights[0])))
        assert px.held == 3
        px.clear_held()
        assert px.held == 0
        got += [(int(s.data[0]), int(s.weights[0])) for s in px]
        assert px.finished
    writer.join(10)
    assert not writer.is_alive()
    assert got == [(i, 100 + i) for i in range(6)]


HOLDER = """
import os, sys
from ringbuf import RingPairReader
with RingPairReader(sys.argv[1], sys.argv[2], timeout=10) as reader:
    px = reader.open_transfer()
    for _ in range(2):
        held = px.next_segment()
        print(int(held.segment.data[0]), flush=True)
    os.kill(os.getpid(), 9)  # dies holding both segments
"""


def test_segments_held_by_a_killed_reader_are_delivered_again(pair):
    import subprocess
    import sys

    _write_segments(pair, range(3))
    proc = subprocess.run([sys.executable, "-c", HOLDER, *pair], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -9 and proc.stdout.split() == ["0", "1"]
    with RingPairReader(*pair, timeout=5) as reader:
        px = reader.open_transfer()
        assert px.resumed
        assert [(int(s.data[0]), int(s.weights[0])) for s in px] == [(0, 100), (1, 101), (2, 102)]


def test_drain_waits_again_after_a_timeout_and_sees_every_segment(pair):
    import threading

    writer = threading.Thread(target=_write_segments, args=(pair, range(4)),
                              kwargs={"pause": 0.3})
    writer.start()
    waits, seen = [], []
    with RingPairReader(*pair, timeout=0.1) as reader:
        px = reader.open_transfer(timeout=10)
        px.drain(on_wait=lambda: waits.append(1),
                 on_segment=lambda s: seen.append((s.obs_offset, int(s.weights[0]))))
        assert px.finished and px.held == 0
    writer.join(10)
    assert seen == [(0, 100), (1024, 101), (2048, 102), (3072, 103)]
    assert len(waits) >= 4  # 0.3 s between segments, 0.1 s waits


def test_drain_without_on_wait_lets_the_timeout_through(pair):
    with RingPairWriter(*pair, timeout=5) as writer, RingPairReader(*pair, timeout=0.2) as reader:
        px = writer.open_transfer({"A": 1}, {"A": 1})
        rx = reader.open_transfer()
        with pytest.raises(Timeout):
            rx.drain()
        px.end()
        rx.drain()
        assert rx.finished


def test_stop_interrupts_a_wait_and_the_pair_stays_together(pair):
    import threading

    from ringbuf.errors import Interrupted

    stop = threading.Event()
    with RingPairWriter(*pair, timeout=5) as writer, RingPairReader(*pair, timeout=None) as reader:
        reader.stop = stop
        assert reader.data.stop is stop and reader.weights.stop is stop
        px = writer.open_transfer({"A": 1}, {"A": 1})
        seg = px.open_segment()
        seg.data[:] = 5
        seg.data_block.commit()  # the weights block is not published yet
        rx = reader.open_transfer()
        threading.Timer(0.2, stop.set).start()
        with pytest.raises(Interrupted):
            rx.next_segment()
        assert not rx.finished and rx.held == 0
        stop.clear()
        seg.weights[:] = 6
        seg.weights_block.commit()
        held = rx.next_segment()
        assert (int(held.segment.data[0]), int(held.segment.weights[0])) == (5, 6)
        px.end()
        assert rx.next_segment() is None
        rx.clear_held()


def test_one_ring_ending_first_is_out_of_step_and_held_segments_are_kept(pair):
    from ringbuf import PairOutOfStep

    with RingPairWriter(*pair, timeout=5) as writer, RingPairReader(*pair, timeout=5) as reader:
        px = writer.open_transfer({"A": 1}, {"A": 1})
        with px.open_segment() as seg:
            seg.data[:] = 1
            seg.weights[:] = 2
        px.data.end()  # the data ring ends, the weights ring runs on
        block = px.weights.open_block()
        block.data[:] = 3
        block.commit()
        rx = reader.open_transfer()
        held = rx.next_segment()
        assert int(held.segment.data[0]) == 1
        with pytest.raises(PairOutOfStep, match=f"ring pair {pair[0]}/{pair[1]}: one ring ended"):
            rx.next_segment()
        assert rx.held == 1  # still held: the caller decides when it is safe to give back
        rx.clear_held()  # the first segment, then the unpaired weights block: in order
        assert rx.held == 0
        px.weights.end()


def test_a_viewer_follows_a_transfer_segment_by_segment(pair):
    import threading

    from ringbuf import RingPairViewer

    writer = threading.Thread(target=_write_segments, args=(pair, range(5)),
                              kwargs={"pause": 0.15})
    with RingPairReader(*pair, timeout=10) as reader, \
            RingPairViewer(*pair, timeout=5) as viewer:
        writer.start()
        follow = viewer.open_transfer()
        assert follow.data_header["A"] == "1" and follow.weights_header["A"] == "1"
        drained = threading.Thread(target=lambda: reader.open_transfer(timeout=10).skip())
        drained.start()
        got = [(s.obs_offset, int(s.data[0]), int(s.weights[0])) for s in follow.segments()]
        drained.join(10)
    writer.join(10)
    assert got == [(1024 * i, i, 100 + i) for i in range(5)]
    assert follow.missed_segments == 0


def test_a_lapped_viewer_gets_what_is_left_and_counts_the_rest(key_factory):
    from ringbuf import RingPairViewer

    keys = key_factory(), key_factory()
    create_ring_pair(*keys, RingLayout(4, 1024, nreaders=0), RingLayout(4, 64, nreaders=0))
    try:
        _write_segments(keys, range(10))
        with RingPairViewer(*keys, timeout=1) as viewer:
            follow = viewer.open_transfer()
            got = [int(s.data[0]) for s in follow]
        assert got == [6, 7, 8, 9] and follow.missed_segments == 6
    finally:
        destroy_ring_pair(*keys)


def test_the_next_transfer_drains_the_rest_of_one_left_holding_segments(pair):
    import threading

    def write():
        with RingPairWriter(*pair, timeout=10) as writer:
            for name in ("first", "second"):
                with writer.open_transfer({"NAME": name}, {"NAME": name}) as px:
                    for value in range(3):
                        with px.open_segment() as seg:
                            seg.data[:] = value
                            seg.weights[:] = 100 + value

    thread = threading.Thread(target=write)
    with RingPairReader(*pair, timeout=10) as reader:
        thread.start()
        first = reader.open_transfer()
        assert first.next_segment() is not None and first.held == 1  # left holding it
        second = reader.open_transfer()
        assert first.finished and first.held == 0
        assert second.data_header["NAME"] == "second"
        assert [int(s.data[0]) for s in second] == [0, 1, 2]
    thread.join(10)
    assert not thread.is_alive()
