"""Writer, readers and viewers in one process (threads): the protocol itself."""

import threading

import numpy as np
import pytest

from ringbuf import (
    RingLayout,
    RingReader,
    RingViewer,
    RingWriter,
    create_ring,
    destroy_ring,
)
from ringbuf import control as c
from ringbuf.errors import (
    EndOfData,
    HeaderError,
    Interrupted,
    Overwritten,
    RingBusy,
    RingExists,
    RingLayoutMismatch,
    RingNotFound,
    Timeout,
)
from ringbuf.ring import Ring


@pytest.fixture
def ring(key):
    create_ring(key, RingLayout(nbufs=4, bufsz=4096, nreaders=1))
    yield key
    destroy_ring(key)


def payload(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def read_transfers(key, count, out, **kw):
    with RingReader(key, timeout=10, **kw) as reader:
        for _ in range(count):
            xfer = reader.open_transfer()
            chunks, offsets = [], []
            for block in xfer:
                chunks.append(block.data.copy())
                offsets.append(block.obs_offset)
            data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
            out.append((xfer.header, data, offsets))


def test_transfers_wrap_around_and_keep_their_headers(ring):
    got = []
    reader = threading.Thread(target=read_transfers, args=(ring, 5, got))
    reader.start()
    sizes = [4096 * 10, 4096 * 3 + 17, 1, 4096 * 9, 0]
    with RingWriter(ring, timeout=10) as writer:
        for i, size in enumerate(sizes):
            header = {"NAME": f"obs{i}", "SOURCE": "J0437-4715 main pulse"}
            with writer.open_transfer(header) as xfer:
                xfer.write(payload(size, i))
    reader.join(20)
    assert [h["NAME"] for h, _, _ in got] == [f"obs{i}" for i in range(5)]
    assert all(h["SOURCE"] == "J0437-4715 main pulse" for h, _, _ in got)
    for i, (header, data, offsets) in enumerate(got):
        np.testing.assert_array_equal(data, payload(sizes[i], i))
        assert offsets == [4096 * j for j in range(len(offsets))]
        assert header.get_int("OBS_OFFSET") == 0


def test_every_guaranteed_reader_sees_every_block(key):
    create_ring(key, RingLayout(nbufs=3, bufsz=1024, nreaders=3))
    try:
        results = [[], [], []]
        threads = [threading.Thread(target=read_transfers, args=(key, 2, results[i]))
                   for i in range(3)]
        for t in threads:
            t.start()
        with RingWriter(key, timeout=10) as writer:
            for i in range(2):
                with writer.open_transfer({"N": i}) as xfer:
                    xfer.write(payload(1024 * 20 + 5, i))
        for t in threads:
            t.join(20)
        for result in results:
            assert [len(d) for _, d, _ in result] == [1024 * 20 + 5] * 2
            for i, (_, data, _) in enumerate(result):
                np.testing.assert_array_equal(data, payload(1024 * 20 + 5, i))
    finally:
        destroy_ring(key)


def test_slowest_reader_gates_the_writer(ring):
    with RingWriter(ring, timeout=0.3) as writer, writer.open_transfer({"A": 1}) as xfer:
        for _ in range(4):
            xfer.open_block().commit()
        with pytest.raises(Timeout, match="reader slot 0 to free a block"):
            xfer.open_block()


def test_exception_inside_block_commits_zero_bytes_and_ends_transfer(ring):
    got = []
    with RingWriter(ring, timeout=5) as writer:
        with pytest.raises(RuntimeError):
            with writer.open_transfer({"A": 1}) as xfer:
                with xfer.open_block() as block:
                    block.data[:] = 7
                with xfer.open_block() as block:
                    block.data[:] = 9
                    raise RuntimeError("detector fault")
    read_transfers(ring, 1, got)
    _, data, _ = got[0]
    assert len(data) == 4096 and (data == 7).all()


def test_several_open_blocks_commit_in_order(ring):
    with RingWriter(ring, timeout=5) as writer, writer.open_transfer({"A": 1}) as xfer:
        first, second = xfer.open_block(), xfer.open_block()
        with pytest.raises(Exception, match="in the order they were opened"):
            second.commit()
        first.commit()
        second.commit(100)
    got = []
    read_transfers(ring, 1, got)
    assert len(got[0][1]) == 4096 + 100


def test_header_larger_than_ring_header_block_changes_nothing(ring):
    with RingWriter(ring, timeout=1) as writer:
        with pytest.raises(HeaderError, match="does not fit"):
            writer.open_transfer({"BIG": "x" * 5000})
        with Ring(ring) as attached:
            assert attached.word(c.C_XFER_NEXT) == 0


def test_stop_event_interrupts_a_blocked_reader(ring):
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    with RingReader(ring, stop=stop) as reader, pytest.raises(Interrupted):
        reader.open_transfer()


def test_one_writer_only_and_reader_slots_are_limited(ring):
    with RingWriter(ring):
        with pytest.raises(RingBusy, match="already has a live writer"):
            RingWriter(ring)
    with RingReader(ring):
        with pytest.raises(RingBusy, match="all 1 reader slots are in use"):
            RingReader(ring)


def test_missing_existing_and_mismatched_rings(key_factory, ring):
    missing = key_factory()
    with pytest.raises(RingNotFound, match=f"ring {missing} not found: create it"):
        RingReader(missing)
    owner = r"created by pid \d+ .* creator (alive|no longer running)"
    with pytest.raises(RingExists, match=owner):
        create_ring(ring, RingLayout(nbufs=4, bufsz=4096))
    with pytest.raises(RingLayoutMismatch, match="expected"):
        Ring(ring, expect=RingLayout(nbufs=8, bufsz=4096))
    with Ring(ring) as attached:
        attached.q[c.C_VERSION] = 99
    with pytest.raises(RingLayoutMismatch, match="protocol version 99"):
        RingReader(ring)
    with pytest.raises(ValueError, match="not 1-8 hexadecimal digits"):
        create_ring("xyz!", RingLayout(nbufs=4, bufsz=16))
    with pytest.raises(ValueError, match="nbufs 1 must be at least 2"):
        RingLayout(nbufs=1, bufsz=16)


def test_destroy_is_idempotent_and_removes_everything(key):
    from ringbuf.shm import SHM_DIR

    create_ring(key, RingLayout(nbufs=2, bufsz=64, nreaders=2))
    assert len(list(SHM_DIR.glob(f"*ringpipe_{key}*"))) == 5  # shm + 2 x 2 semaphores
    assert destroy_ring(key) is True
    assert destroy_ring(key) is False
    assert not list(SHM_DIR.glob(f"*ringpipe_{key}*"))


def test_viewer_sees_latest_and_detects_overwrite(key):
    create_ring(key, RingLayout(nbufs=4, bufsz=256, nreaders=0))
    try:
        with RingWriter(key, timeout=1) as writer, RingViewer(key, timeout=1) as viewer:
            with writer.open_transfer({"NAME": "v"}) as xfer:
                for i in range(6):  # no reader slots: the writer never waits
                    with xfer.open_block() as block:
                        block.data[:] = i
                with viewer.latest_block() as view:
                    assert view.index == 5 and (view.data == 5).all()
                assert viewer.header["NAME"] == "v"
                assert viewer.missed_blocks == 5
                with xfer.open_block() as block:
                    block.data[:] = 6
                blk = viewer.latest_block()
                assert blk.index == 6 and blk.missed == 0
                for i in range(4):  # lap the viewed block
                    with xfer.open_block() as block:
                        block.data[:] = 7 + i
                with pytest.raises(Overwritten):
                    blk.verify()
                nxt = viewer.next_block()
                assert nxt.index == 7 and nxt.missed == 0 and (nxt.data == 7).all()
            info = viewer.current_transfer()
            assert info.state == "ended" and info.end_block == 11
    finally:
        destroy_ring(key)


def test_reader_resumes_from_header_ring_after_many_queued_transfers(key):
    create_ring(key, RingLayout(nbufs=16, bufsz=64, nreaders=1, hdr_nbufs=8))
    try:
        with RingWriter(key, timeout=0.5) as writer:
            for i in range(8):
                with writer.open_transfer({"I": i}) as xfer:
                    xfer.write(b"x" * 64)
            with pytest.raises(Timeout, match="header slot reuse"):
                writer.open_transfer({"I": 8})
        got = []
        read_transfers(key, 8, got)
        assert [h.get_int("I") for h, _, _ in got] == list(range(8))
        with RingReader(key, timeout=0.2) as reader, pytest.raises(Timeout):
            reader.open_transfer()
    finally:
        destroy_ring(key)


def test_end_of_data_is_sticky(ring):
    with RingWriter(ring, timeout=5) as writer, writer.open_transfer({"A": 1}) as xfer:
        xfer.write(b"abc")
    with RingReader(ring, timeout=5) as reader:
        xfer = reader.open_transfer()
        assert xfer.read_all() == b"abc"
        with pytest.raises(EndOfData):
            xfer.next_block()


def test_held_blocks_are_cleared_in_order_and_redelivered_after_close(ring):
    with RingWriter(ring, timeout=5) as writer, writer.open_transfer({"A": 1}) as xfer:
        for i in range(4):
            with xfer.open_block() as block:
                block.data[:] = i
        with RingReader(ring, timeout=5) as reader:
            rx = reader.open_transfer()
            first, second, third = rx.next_block(), rx.next_block(), rx.next_block()
            assert [b.index for b in (first, second, third)] == [0, 1, 2]
            with pytest.raises(Exception, match="cleared out of order"):
                second.clear()
            first.clear()
            xfer.open_block(timeout=0.2).commit()  # the one block cleared is free again
            with pytest.raises(Timeout):  # held and unread blocks fill the rest
                xfer.open_block(timeout=0.2)
        # the reader went away holding blocks 1 and 2: its successor gets them again
        with RingReader(ring, timeout=5) as successor:
            rx = successor.open_transfer()
            assert rx.resumed
            block = rx.next_block()
            assert block.index == 1 and (block.data == 1).all()


def test_a_transfer_is_resumed_when_the_slot_saw_its_header(ring):
    with RingWriter(ring, timeout=5) as writer, writer.open_transfer({"A": 1}) as xfer:
        xfer.write(b"x" * 4096 * 2)
        with RingReader(ring, timeout=5) as reader:
            rx = reader.open_transfer()
            assert not rx.resumed
            rx.next_block()  # held, never cleared
        with RingReader(ring, timeout=5) as successor:
            rx = successor.open_transfer()
            assert rx.resumed and rx.next_block().index == 0


def test_write_block_and_drain_move_blocks_without_per_block_objects(ring):
    """The junk/null fast paths: same counters, tokens and end of data as open/commit/clear."""
    counts = []

    def drain():
        with RingReader(ring, timeout=10) as reader:
            for _ in range(2):
                xfer = reader.open_transfer()
                counts.append((xfer.drain(), xfer.nbytes, xfer.finished))

    thread = threading.Thread(target=drain)
    thread.start()
    with RingWriter(ring, timeout=10) as writer:
        with writer.open_transfer({"A": 1}) as xfer:
            for i in range(25):  # wraps the 4-block ring several times
                xfer.write_block(lambda view, off, i=i: view.fill(i), 4096)
            xfer.write_block(lambda view, off: view.fill(1), 100)  # short: ends the transfer
            assert xfer.ended
        with writer.open_transfer({"A": 2}) as xfer:
            with pytest.raises(RuntimeError):
                xfer.write_block(lambda view, off: (_ for _ in ()).throw(RuntimeError("x")), 4096)
    thread.join(20)
    assert counts == [(26, 25 * 4096 + 100, True), (0, 0, True)]
    with Ring(ring, data=False) as r:
        assert r.word(c.reader_base(0) + c.R_BYTES) == 25 * 4096 + 100
        assert r.word(c.reader_base(0) + c.R_CLEARED) == r.word(c.C_W_FILLED)
