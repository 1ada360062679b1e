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
