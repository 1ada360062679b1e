"""kill -9 in the middle of writing, and a disk that fills up (a real small tmpfs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from casacore import tables

from services.mswrite.errors import MsWriteError
from services.mswrite.sim_ms import random_layout
from services.mswrite.stream import NPOL, WEIGHTS_DTYPE, VisStream
from services.mswrite.writer import VisWriter

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from services.mswrite.sim_ms import random_layout
    from services.mswrite.stream import VisStream, WEIGHTS_DTYPE
    from services.mswrite.writer import VisWriter
    stream = VisStream(scan_id=1, utc_start="2024-06-01-12:00:00", time0_unix=1717243200.5,
                       int_time=1.0, nant=8, nchan=16, start_channel=0, freq0_hz=1e8,
                       chan_width_hz=1e5, phase_centre_deg=(10.0, -30.0))
    d, w = stream.headers()
    writer = VisWriter.open(sys.argv[1], d, w, antennas=random_layout(8, 1000.0, 1))
    c, b, p = np.meshgrid(np.arange(16), np.arange(36), np.arange(4), indexing="ij")
    weights = np.zeros((1, 16, 36), WEIGHTS_DTYPE)
    weights["FD"] = 255
    for dump in range(100000):
        vis = (dump + 1j * (c * 1000 + b * 4 + p)).astype(np.complex64)[None]
        writer.write_dumps(vis, weights, dump)
        print("flushed", dump + 1, flush=True)
        time.sleep(0.01)
""")


def test_kill_9_leaves_an_ms_with_every_flushed_dump(tmp_path):
    out = tmp_path / "killed.ms"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], stdout=subprocess.PIPE,
                             text=True)
    try:
        flushed = 0
        while flushed < 5:
            line = child.stdout.readline()
            assert line, "writer process ended early"
            flushed = int(line.split()[1])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
    assert not out.exists()  # never renamed: it does not look complete
    with tables.table(str(out) + ".partial", ack=False) as t:
        assert t.nrows() >= flushed * 36
        data = t.getcol("DATA", 0, flushed * 36)
        times = t.getcol("TIME", 0, flushed * 36)
    c, b, p = np.meshgrid(np.arange(16), np.arange(36), np.arange(4), indexing="ij")
    for dump in range(flushed):
        want = (dump + 1j * (c * 1000 + b * 4 + p)).astype(np.complex64).transpose(1, 0, 2)
        np.testing.assert_array_equal(data[dump * 36:(dump + 1) * 36], want)
    np.testing.assert_allclose(np.unique(times) - times[0], np.arange(flushed), atol=1e-6)


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of a given size in MB (needs root to mount; skips otherwise)."""
    mounts = []

    def mount(size_mb: int):
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs to fill needs root")
        point = tmp_path / f"disk{len(mounts)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                                 str(point)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], check=False)


def big_stream() -> VisStream:
    return VisStream(scan_id=1, utc_start="2024-06-01-12:00:00", time0_unix=1717243200.5,
                     int_time=1.0, nant=32, nchan=256, start_channel=0, freq0_hz=1e8,
                     chan_width_hz=1e5, phase_centre_deg=(10.0, -30.0))


def test_disk_without_room_is_refused_before_writing(small_disk):
    disk = small_disk(16)  # less than the 32 MB margin
    data_header, weights_header = big_stream().headers()
    with pytest.raises(MsWriteError, match=r"x\.ms: disk full: only 16\.\d MB free in .*, need"):
        VisWriter.open(disk / "x.ms", data_header, weights_header,
                       antennas=random_layout(32, 2000.0, 1))
    assert list(disk.iterdir()) == []


def test_disk_filling_up_while_writing(small_disk):
    disk = small_disk(80)
    stream = big_stream()
    data_header, weights_header = stream.headers()
    writer = VisWriter.open(disk / "x.ms", data_header, weights_header,
                            antennas=random_layout(32, 2000.0, 1))
    vis = np.ones((1, stream.nchan, stream.nbaseline, NPOL), np.complex64)
    weights = np.zeros(vis.shape[:3], WEIGHTS_DTYPE)
    weights["FD"] = 255
    with pytest.raises(MsWriteError, match=r"x\.ms\.partial: disk full: .*stopped after \d+"):
        for dump in range(40):  # 40 dumps need about 260 MB
            writer.write_dumps(vis, weights, dump)
    written = writer.dumps_written
    assert 5 <= written < 40
    writer.abort()  # closes cleanly: the writer stopped before casacore met ENOSPC
    assert not (disk / "x.ms").exists()
    with tables.table(str(disk / "x.ms.partial"), ack=False) as t:
        assert t.nrows() == written * stream.nbaseline
        assert (t.getcol("DATA", (written - 1) * stream.nbaseline) == 1).all()


FILL_CHILD = textwrap.dedent("""
    import gc, subprocess, sys
    import numpy as np
    import services.mswrite.writer as w
    from services.mswrite.errors import MsWriteError
    from services.mswrite.sim_ms import random_layout
    from services.mswrite.stream import NPOL, WEIGHTS_DTYPE, VisStream
    disk, reserve = sys.argv[1], int(sys.argv[2])
    w.RESERVE_BYTES = reserve
    stream = VisStream(scan_id=1, utc_start="2024-06-01-12:00:00", time0_unix=1717243200.5,
                       int_time=1.0, nant=32, nchan=256, start_channel=0, freq0_hz=1e8,
                       chan_width_hz=1e5, phase_centre_deg=(10.0, -30.0))
    writer = w.VisWriter.open(disk + "/x.ms", *stream.headers(),
                              antennas=random_layout(32, 2000.0, 1), flush_interval_s=60)
    vis = np.ones((1, stream.nchan, stream.nbaseline, NPOL), np.complex64)
    weights = np.zeros(vis.shape[:3], WEIGHTS_DTYPE)
    weights["FD"] = 255
    for dump in range(3):
        writer.write_dumps(vis, weights, dump)
    subprocess.run(["dd", "if=/dev/zero", "of=" + disk + "/fill", "bs=1M"],
                   capture_output=True)
    try:
        writer.write_dumps(vis, weights, 3)
    except MsWriteError as exc:
        print("refused:", exc, flush=True)
    writer.abort()
    del writer
    gc.collect()
    print("survived", flush=True)
""")


@pytest.mark.parametrize("reserve", [8 << 20, 4096])
def test_abort_on_a_disk_another_process_filled_never_aborts_the_process(small_disk, reserve):
    """Issue 13.1: with unflushed rows and not one free byte left, abort() must not end the
    process (casacore throws from a destructor: std::terminate). With the default reserve
    the .partial gets every dump; with a reserve too small for the unflushed tiles, the
    tables are abandoned and the .partial keeps its last flush (none here)."""
    disk = small_disk(100)
    result = subprocess.run([sys.executable, "-c", FILL_CHILD, str(disk), str(reserve)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused:" in result.stdout and "disk full" in result.stdout
    assert "survived" in result.stdout
    with tables.table(str(disk / "x.ms.partial"), ack=False) as t:
        assert t.nrows() == (3 * 528 if reserve > 4096 else 0)
