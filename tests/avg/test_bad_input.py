"""Bad input is one line and a counter: a bad config stops svc-avg before it starts, a bad
header or an output ring that does not fit drains the transfer, and the next one is
averaged."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ringbuf import RingLayout, RingPairWriter
from services.common.processes import ProcessGroup, daemon_env
from tests.avg.chain import NBL, feed, headers, make_dumps, pair, start_avg
from tests.avg.test_chain import read_outputs

pytestmark = pytest.mark.timeout(120)


def test_bad_config_is_one_line_and_exit_1(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "services.avg.main", "--autonomous", "--socket",
            tmp_path / "a.sock", "-o", "DATA_KEY=a000", "-o", "WEIGHTS_KEY=a010",
            "-o", "OUT_DATA_KEY=b000", "-o", "OUT_WEIGHTS_KEY=b010",
            "-o", "AVG_TIME_DUMPS=0", "-o", "BDA_MAX_FACTOR=3"]
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60,
                            env=daemon_env())
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "AVG_TIME_DUMPS '0' (-o): must be positive" in lines[0]
    assert "BDA_MAX_FACTOR '3' (-o): must be a power of two" in lines[0]


def test_bad_header_is_counted_and_drained_then_the_next_transfer_works(
        tmp_path: Path) -> None:
    nchan = 8
    vis, w = make_dumps(4, nchan)
    results: list[tuple[int, np.ndarray, np.ndarray]] = []
    with ProcessGroup(tmp_path) as group:
        a = pair(group, nchan, 16)
        b = pair(group, nchan // 2, 8)
        avg = start_avg(group, "avg", (*a, *b), {"AVG_TIME_DUMPS": 2, "AVG_CHANNELS": 2})
        reader = threading.Thread(target=lambda: results.extend(read_outputs(b, 1)))
        reader.start()
        dh, wh = headers(nchan)
        dh.set("POL_ORDER", "RR,RL,LR,LL")
        with RingPairWriter(*a, timeout=30) as writer, writer.open_transfer(dh, wh) as xfer:
            for d in range(4):
                with xfer.open_segment() as seg:
                    seg.data[:] = vis[d].view(np.uint8).reshape(-1)
                    seg.weights[:] = w[d].view(np.uint8).reshape(-1)
        avg.wait_counter("errors_bad_header_total", 1)
        feed(a, vis, w, nchan)
        reader.join(60)
        counters = avg.wait_counter("dumps_out_total", 2)
        assert counters["transfers_skipped_total"] == 1 and counters["transfers_total"] == 2
        assert counters["dumps_in_total"] == 4
    assert len(results) == 2 and [r[0] for r in results] == [0, 1]
    log = (tmp_path / "logs" / "avg.log").read_text()
    (line,) = [x for x in log.splitlines() if "POL_ORDER" in x]
    assert "expected 'XX,XY,YX,YY'" in line and "draining" in line


def test_output_ring_of_the_wrong_block_size_is_refused_per_transfer(tmp_path: Path) -> None:
    nchan = 8
    vis, w = make_dumps(3, nchan)
    with ProcessGroup(tmp_path) as group:
        a = pair(group, nchan, 16)
        b_bad = group.ring_pair(*_layouts(nchan // 2, extra=16))  # not whole output dumps
        avg = start_avg(group, "avg", (*a, *b_bad), {"AVG_CHANNELS": 2})
        feed(a, vis, w, nchan)
        counters = avg.wait_counter("errors_output_total", 1)
        assert counters["dumps_out_total"] == 0 and counters["transfers_skipped_total"] == 1
    log = (tmp_path / "logs" / "avg.log").read_text()
    assert "are not whole output dumps" in log


def _layouts(nchan: int, extra: int) -> tuple[RingLayout, RingLayout]:
    return (RingLayout(nbufs=8, bufsz=nchan * NBL * 32 + extra),
            RingLayout(nbufs=8, bufsz=nchan * NBL * 2))
