"""The daemon chain as real processes: ring A -> svc-avg -> ring B -> svc-mswrite -> MS, and
svc-avg killed with SIGKILL in the middle of a transfer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from ringbuf import DadaHeader, RingPairReader, WriterDied
from services.common.processes import ProcessGroup
from tests.avg.chain import (
    DT,
    FREQ0,
    NBL,
    NPOL,
    START,
    TIME0,
    WIDTH,
    feed,
    make_dumps,
    pair,
    start_avg,
    start_mswrite,
)
from tests.avg.test_average import oracle

MJD_UNIX = 40587 * 86400.0
pytestmark = pytest.mark.timeout(180)


def test_chain_writes_the_averaged_ms(tmp_path: Path) -> None:
    nin, nchan, n, m = 10, 16, 3, 4  # 10 dumps by 3: a partial last group
    vis, w = make_dumps(nin, nchan)
    want, want_fd, _ = oracle(vis, w, n, m, np.ones(NBL, int))
    with ProcessGroup(tmp_path) as group:
        a = pair(group, nchan, 32)
        b = pair(group, nchan // m, 8)
        avg = start_avg(group, "avg", (*a, *b), {"AVG_TIME_DUMPS": n, "AVG_CHANNELS": m,
                                                 "FLAG_ENABLE": "false"})
        msw = start_mswrite(group, b, tmp_path)
        feed(a, vis, w, nchan)
        msw.wait_counter("ms_written_total", 1, timeout=60)
        counters = avg.counters()
        assert counters["dumps_in_total"] == nin and counters["dumps_out_total"] == 4
        assert counters["blocks_out_total"] == 4 and counters["held_blocks"] == 0
    (ms,) = tmp_path.glob("*.ms")
    with tables.table(str(ms), ack=False) as t:
        data, flag = t.getcol("DATA"), t.getcol("FLAG")
        times, interval = t.getcol("TIME"), t.getcol("INTERVAL")
        weight_spectrum = t.getcol("WEIGHT_SPECTRUM")
    with tables.table(f"{ms}/SPECTRAL_WINDOW", ack=False) as spw:
        width, freqs = spw.getcol("CHAN_WIDTH")[0], spw.getcol("CHAN_FREQ")[0]
    rows = want.transpose(0, 2, 1, 3).reshape(-1, nchan // m, NPOL)  # (dump, baseline) rows
    fd_rows = want_fd.transpose(0, 2, 1).reshape(-1, nchan // m)
    assert data.shape == rows.shape
    np.testing.assert_allclose(data, rows, rtol=0, atol=4e-6 * np.abs(rows).max())
    assert np.array_equal(flag, np.repeat((fd_rows == 0)[..., None], NPOL, axis=2))
    # summed weights: FD / 255 x AVG_WEIGHT_SCALE (N M)
    np.testing.assert_allclose(weight_spectrum[..., 0], fd_rows / 255.0 * n * m, rtol=1e-6)
    np.testing.assert_allclose(width, WIDTH * m)
    first = FREQ0 + (START + (m - 1) / 2) * WIDTH  # centre of input channels 16..19
    np.testing.assert_allclose(freqs, first + np.arange(nchan // m) * WIDTH * m)
    np.testing.assert_allclose(interval, n * DT)
    dump_time = MJD_UNIX + TIME0 + (n - 1) / 2 * DT + np.arange(4) * n * DT
    np.testing.assert_allclose(times, np.repeat(dump_time, NBL), rtol=0, atol=1e-6)


def read_outputs(keys: tuple[str, str], transfers: int,
                 headers: list[DadaHeader] | None = None
                 ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(first output dump, data, weights) of each block of the next ``transfers`` transfers
    of ring pair B, read as a guaranteed reader (their data headers into ``headers``)."""
    out = []
    with RingPairReader(*keys, timeout=60) as reader:
        for _ in range(transfers):
            transfer = reader.open_transfer()
            if headers is not None:
                headers.append(transfer.data_header)
            res = transfer.data_header.get_int("RESOLUTION")
            wres = transfer.weights_header.get_int("RESOLUTION")
            try:
                for seg in transfer:
                    out.append((seg.obs_offset // res, np.array(seg.data), np.array(seg.weights)))
                    assert len(seg.weights) // wres == len(seg.data) // res
            except WriterDied:
                pass
    return out


def test_kill9_of_avg_loses_no_input_block(tmp_path: Path) -> None:
    import threading

    nin, nchan, n, m = 40, 8, 2, 2
    vis, w = make_dumps(nin, nchan, seed=3)
    want, want_fd, _ = oracle(vis, w, n, m, np.ones(NBL, int))
    results: list[tuple[int, np.ndarray, np.ndarray]] = []
    with ProcessGroup(tmp_path) as group:
        a = pair(group, nchan, 64)
        b = pair(group, nchan // m, 32, dumps=4)  # output blocks of 4 dumps: inputs held
        settings = {"AVG_TIME_DUMPS": n, "AVG_CHANNELS": m, "FLAG_ENABLE": "false"}
        start_avg(group, "avg1", (*a, *b), settings)
        reader = threading.Thread(target=lambda: results.extend(read_outputs(b, 2)))
        reader.start()
        killed = threading.Event()
        held: list[int] = []

        def pause(d: int) -> None:
            if d == 17:  # mid-transfer, mid-group (dump 17 of the group 16..17 ends it)
                time.sleep(1.0)
                held.append(group.processes["avg1"].counters()["held_blocks"])
                group.kill9("avg1")
                killed.set()
            elif d > 17:
                time.sleep(0.02)

        feeder = threading.Thread(target=feed, args=(a, vis, w, nchan), kwargs={"pause": pause})
        feeder.start()
        assert killed.wait(60)
        start_avg(group, "avg2", (*a, *b), settings)
        feeder.join(60)
        reader.join(90)
        assert not reader.is_alive()
        counters = group.processes["avg2"].counters()
        assert counters["transfers_resumed_total"] == 1
        assert held == [2]  # input dumps 16, 17: their output dump 8 not yet committed
        assert counters["dumps_in_total"] == nin - 16 and counters["dumps_skipped_total"] == 0
    got = {}
    res_w = (nchan // m) * NBL * 2
    for first, data, weights in results:
        k = len(data) // ((nchan // m) * NBL * NPOL * 8)
        dv = data.view(np.complex64).reshape(k, nchan // m, NBL, NPOL)
        wv = weights[:k * res_w].view([("TCI", "i1"), ("FD", "u1")]).reshape(k, nchan // m, NBL)
        for i in range(k):
            assert first + i not in got, f"output dump {first + i} written twice"
            got[first + i] = (dv[i], wv[i])
    assert sorted(got) == list(range(nin // n))  # every output dump exactly once
    for j, (dv, wv) in got.items():
        np.testing.assert_allclose(dv, want[j], rtol=0, atol=4e-6 * np.abs(want).max())
        assert np.array_equal(wv["FD"], want_fd[j])
