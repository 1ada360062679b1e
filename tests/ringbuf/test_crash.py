"""Real processes and real kill -9: where PSRDADA hangs or splices, ringbuf must not."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from ringbuf import RingLayout, RingReader, RingWriter, create_ring, destroy_ring, shm
from ringbuf import control as c
from ringbuf.errors import WriterDied
from ringbuf.ring import Ring


def ramp_errors(data: np.ndarray, obs_offset: int) -> int:
    """How many bytes of ``data`` differ from junk's ramp pattern at ``obs_offset``."""
    expected = ((np.arange(len(data)) + obs_offset) % 256).astype(np.uint8)
    return int(np.count_nonzero(data != expected))


WRITER = textwrap.dedent("""
    import sys, time
    from ringbuf import RingWriter
    from ringbuf.patterns import PatternSource
    key, name, nblocks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with RingWriter(key, timeout=30) as writer:
        source = PatternSource("ramp", writer.layout.bufsz)
        with writer.open_transfer({"NAME": name}) as xfer:
            for i in range(nblocks):
                with xfer.open_block() as block:
                    source.fill(block.data, block.obs_offset)
                print(i, flush=True)
                time.sleep(0.02)
""")

READER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from ringbuf import RingReader
    def ramp_errors(data, obs_offset):
        expected = ((np.arange(len(data)) + obs_offset) % 256).astype(np.uint8)
        return int(np.count_nonzero(data != expected))
    key = sys.argv[1]
    with RingReader(key, timeout=30) as reader:
        xfer = reader.open_transfer()
        print("header", xfer.header["NAME"], int(xfer.resumed), flush=True)
        for block in xfer:
            assert ramp_errors(block.data, block.obs_offset) == 0
            print(block.obs_offset, flush=True)
            time.sleep(0.05)
""")


def spawn(script, *args):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, text=True)


def wait_lines(proc, count, timeout=20):
    lines = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        assert time.monotonic() < deadline, f"only got {lines}"
        line = proc.stdout.readline()
        assert line, f"process ended early after {lines}"
        lines.append(line.strip())
    return lines


@pytest.fixture
def ring(key):
    create_ring(key, RingLayout(nbufs=8, bufsz=65536, nreaders=1))
    yield key
    destroy_ring(key)


def kill9(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_reader_gets_writer_died_quickly_and_keeps_everything_filled(ring):
    writer = spawn(WRITER, ring, "doomed", 1000)
    try:
        filled = int(wait_lines(writer, 5)[-1]) + 1
        with RingReader(ring, timeout=30) as reader:
            xfer = reader.open_transfer()
            kill9(writer)
            with Ring(ring) as attached:
                committed = attached.word(c.C_W_FILLED)
            assert committed >= filled
            got = 0
            started = time.monotonic()
            with pytest.raises(WriterDied):
                for block in xfer:
                    assert ramp_errors(block.data, block.obs_offset) == 0
                    got += 1
            assert time.monotonic() - started < 2.0
            assert got == committed  # everything marked filled is still readable
    finally:
        writer.kill()
        writer.wait()


def test_new_writer_never_splices_into_a_dead_writers_transfer(ring):
    writer = spawn(WRITER, ring, "first", 1000)
    try:
        wait_lines(writer, 3)
        kill9(writer)
    finally:
        writer.kill()
        writer.wait()
    with RingWriter(ring, timeout=5) as new_writer:
        with new_writer.open_transfer({"NAME": "second"}) as xfer:
            xfer.write(np.arange(65536 * 2, dtype=np.uint8))
    with RingReader(ring, timeout=5) as reader:
        first = reader.open_transfer()
        assert first.header["NAME"] == "first"
        with pytest.raises(WriterDied):
            for _ in first:
                pass
        second = reader.open_transfer()
        assert second.header["NAME"] == "second" and not second.resumed
        data = second.read_all()
        assert data == np.arange(65536 * 2, dtype=np.uint8).tobytes()


def test_dead_readers_slot_is_reclaimed_and_data_resumes(ring):
    writer = spawn(WRITER, ring, "obs", 40)
    reader1 = spawn(READER, ring)
    try:
        lines = wait_lines(reader1, 6)
        assert lines[0] == "header obs 0"
        seen = [int(x) for x in lines[1:]]
        kill9(reader1)
        reader2 = spawn(READER, ring)
        out, _ = reader2.communicate(timeout=60)
        lines2 = out.split("\n")
        assert lines2[0] == "header obs 1"  # a resumed transfer
        offsets = [int(x) for x in lines2[1:] if x]
        # the successor starts at the first block the dead reader had not cleared
        assert offsets[0] in (seen[-1], seen[-1] + 65536)
        assert offsets[-1] == 39 * 65536
        assert offsets == list(range(offsets[0], 40 * 65536, 65536))
        assert writer.wait(30) == 0
    finally:
        for proc in (writer, reader1):
            proc.kill()
            proc.wait()


def test_semaphores_are_repaired_from_the_counters(ring):
    with RingWriter(ring, timeout=5) as writer, writer.open_transfer({"A": 1}) as xfer:
        for _ in range(3):
            xfer.open_block().commit()
    with Ring(ring) as attached:  # wreck the semaphores
        shm.set_semaphore(attached.sem("d", 0), 50)
        shm.set_semaphore(attached.sem("s", 0), 0)
    with RingReader(ring, timeout=5) as reader:
        with Ring(ring) as attached:
            # one start token, three blocks and the end token
            assert attached.sem("d", 0).value == 5
        assert len(reader.open_transfer().read_all()) == 3 * 65536
    with Ring(ring) as attached:
        assert attached.sem("s", 0).value == 8


def test_junk_and_null_as_processes(ring, tmp_path):
    header = tmp_path / "h.txt"
    header.write_text("HDR_VERSION 1.0\nNBIT 8\nRESOLUTION 1024\n")
    null = subprocess.Popen(["ringbuf", "null", "-k", ring, "--transfers", "1", "--json",
                             "--timeout", "20"], stdout=subprocess.PIPE, text=True,
                            env=_venv_env())
    junk = subprocess.run(["ringbuf", "junk", "-k", ring, str(header), "--bytes", "10000000"],
                          capture_output=True, text=True, env=_venv_env(), timeout=60)
    assert junk.returncode == 0, junk.stderr
    summary = json.loads(null.communicate(timeout=30)[0])
    assert summary["bytes"] == 10000000 and summary["transfers"] == 1
    assert summary["gbps"] > 0 and summary["seconds"] > 0


def _venv_env():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def test_a_viewer_sees_the_transfer_of_a_dead_writer_as_aborted(ring):
    from ringbuf import RingViewer

    writer = spawn(WRITER, ring, "doomed", 5)
    try:
        wait_lines(writer, 2)
        with RingViewer(ring, timeout=5) as viewer:
            assert viewer.current_transfer().state == "open"
            kill9(writer)
            info = viewer.current_transfer()
            assert info.state == "aborted" and info.end_block >= 2
            with viewer.latest_block() as block:  # what was filled stays viewable
                assert ramp_errors(block.data, block.obs_offset) == 0
    finally:
        writer.kill()
        writer.wait()
