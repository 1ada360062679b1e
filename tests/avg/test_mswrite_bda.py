"""svc-mswrite writes svc-avg's output right: summed weights (AVG_WEIGHT_SCALE x k) and,
with baseline-dependent averaging, per-row TIME, INTERVAL, EXPOSURE and UVW of the carrying
rows and flagged non-carrying rows. Real processes: ring A -> svc-avg -> ring B ->
svc-mswrite -> MS, read back with casacore; every expected value computed here from the
BDA rule of docs/avg.md, one row at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from services.avg.bda import baseline_lengths, load_positions, time_factors
from services.common.processes import ProcessGroup
from tests.avg.chain import (
    DT,
    FREQ0,
    NBL,
    NPOL,
    START,
    STATIONS,
    TIME0,
    WIDTH,
    feed,
    make_dumps,
    pair,
    start_avg,
    start_mswrite,
)
from tests.avg.test_average import oracle
from tests.mswrite.test_casa_convention import casacore_uvw

MJD_UNIX = 40587 * 86400.0
RA0, DEC0 = 187.0, -26.8  # the chain headers' phase centre
pytestmark = pytest.mark.timeout(180)


def run_chain(tmp_path: Path, nin: int, nchan: int, settings: dict[str, object],
              out_dumps_per_block: int) -> Path:
    vis, w = make_dumps(nin, nchan, seed=5)
    m = int(settings["AVG_CHANNELS"])  # type: ignore[call-overload]
    with ProcessGroup(tmp_path) as group:
        a = pair(group, nchan, 64)
        b = pair(group, nchan // m, 16, dumps=out_dumps_per_block)
        start_avg(group, "avg", (*a, *b), settings)
        msw = start_mswrite(group, b, tmp_path)
        feed(a, vis, w, nchan)
        msw.wait_counter("ms_written_total", 1, timeout=60)
    (ms,) = tmp_path.glob("*.ms")
    return ms


def expected_rows(nout: int, factors: np.ndarray, t0: float, dt: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TIME, INTERVAL and "carries data" of every (output dump, baseline) row."""
    time = np.empty((nout, NBL))
    interval = np.empty((nout, NBL))
    carrying = np.zeros((nout, NBL), bool)
    for b in range(NBL):
        k = int(factors[b])
        for d in range(nout):
            time[d, b], interval[d, b] = t0 + d * dt, dt  # a flagged placeholder row
        for g0 in range(0, nout, k):
            length = min(k, nout - g0)
            slot = g0 + length // 2
            start, end = t0 + (g0 - 0.5) * dt, t0 + (g0 + length - 0.5) * dt
            time[slot, b], interval[slot, b] = (start + end) / 2, end - start
            carrying[slot, b] = True
    return time.reshape(-1), interval.reshape(-1), carrying.reshape(-1)


def test_bda_rows_time_interval_weights_uvw(tmp_path: Path) -> None:
    nin, nchan, n, m, kmax = 37, 8, 2, 2, 4  # 19 output dumps: a short last group
    settings = {"AVG_TIME_DUMPS": n, "AVG_CHANNELS": m, "FLAG_ENABLE": "false",
                "BDA_MAX_FACTOR": kmax, "BDA_ANTENNA_FILE": STATIONS, "BDA_FOV_DEG": 90,
                "BDA_MAX_SMEARING": 0.01}
    positions = load_positions(STATIONS)
    freq_max = FREQ0 + (START + nchan - 1) * WIDTH
    factors = time_factors(baseline_lengths(positions), n * DT, kmax, freq_max, 90.0, 0.01)
    assert set(factors.tolist()) >= {1, 2, 4}  # the example stations give every kind
    vis, w = make_dumps(nin, nchan, seed=5)
    want, want_fd, _ = oracle(vis, w, n, m, factors)
    nout, nco = -(-nin // n), nchan // m
    ms = run_chain(tmp_path, nin, nchan, settings, out_dumps_per_block=kmax)
    with tables.table(str(ms), ack=False) as t:
        cols = {c: t.getcol(c) for c in ("TIME", "INTERVAL", "EXPOSURE", "TIME_CENTROID",
                                         "FLAG_ROW", "FLAG", "DATA", "WEIGHT_SPECTRUM",
                                         "WEIGHT", "UVW", "ANTENNA1", "ANTENNA2")}
    assert len(cols["TIME"]) == nout * NBL
    t0 = MJD_UNIX + TIME0 + (n - 1) / 2 * DT  # centre of output dump 0
    time, interval, carrying = expected_rows(nout, factors, t0, n * DT)
    np.testing.assert_allclose(cols["TIME"], time, rtol=0, atol=1e-6)
    np.testing.assert_allclose(cols["INTERVAL"], interval, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cols["EXPOSURE"], interval, rtol=0, atol=1e-9)
    # every row whose slot does not carry its group is flagged; carrying rows have data
    fd_rows = want_fd.transpose(0, 2, 1).reshape(-1, nco)
    assert not (fd_rows[~carrying] > 0).any()
    assert cols["FLAG_ROW"][~carrying].all()
    assert np.array_equal(cols["FLAG_ROW"], (fd_rows == 0).all(axis=1))
    assert (~cols["FLAG_ROW"][carrying]).sum() > 0.9 * carrying.sum()
    # summed weights: FD / 255 x N M k
    k_rows = np.tile(factors, nout)
    want_ws = fd_rows / 255.0 * (n * m) * k_rows[:, None]
    np.testing.assert_allclose(cols["WEIGHT_SPECTRUM"],
                               np.repeat(want_ws[..., None], NPOL, axis=2), rtol=1e-6)
    np.testing.assert_allclose(cols["WEIGHT"][:, 0], want_ws.mean(axis=1), rtol=1e-5)
    rows = want.transpose(0, 2, 1, 3).reshape(-1, nco, NPOL)
    np.testing.assert_allclose(cols["DATA"], rows, rtol=0, atol=4e-6 * np.abs(rows).max())
    # TIME_CENTROID of a carrying row lies inside its interval
    live = ~cols["FLAG_ROW"]
    assert (np.abs(cols["TIME_CENTROID"][live] - cols["TIME"][live])
            <= cols["INTERVAL"][live] / 2 + 1e-6).all()
    # UVW at the row's TIME, by casacore.measures alone (the rows of every 4th dump)
    for d in range(0, nout, 3):
        sel = slice(d * NBL, (d + 1) * NBL)
        for r in range(d * NBL, (d + 1) * NBL):
            want_uvw = casacore_uvw(positions, cols["ANTENNA1"][r:r + 1],
                                    cols["ANTENNA2"][r:r + 1], cols["TIME"][r], RA0, DEC0)
            np.testing.assert_allclose(cols["UVW"][r], want_uvw[0], rtol=0, atol=1e-3)
        assert len(cols["UVW"][sel]) == NBL


def test_averaged_without_bda_scales_weights_only(tmp_path: Path) -> None:
    nin, nchan, n, m = 12, 8, 3, 2
    settings = {"AVG_TIME_DUMPS": n, "AVG_CHANNELS": m, "FLAG_ENABLE": "false"}
    vis, w = make_dumps(nin, nchan, seed=5)
    _, want_fd, _ = oracle(vis, w, n, m, np.ones(NBL, int))
    ms = run_chain(tmp_path, nin, nchan, settings, out_dumps_per_block=1)
    with tables.table(str(ms), ack=False) as t:
        ws, interval = t.getcol("WEIGHT_SPECTRUM"), t.getcol("EXPOSURE")
        times, flag_row = t.getcol("TIME"), t.getcol("FLAG_ROW")
    fd_rows = want_fd.transpose(0, 2, 1).reshape(-1, nchan // m)
    np.testing.assert_allclose(ws[..., 0], fd_rows / 255.0 * n * m, rtol=1e-6)
    np.testing.assert_allclose(interval, n * DT)
    t0 = MJD_UNIX + TIME0 + (n - 1) / 2 * DT
    np.testing.assert_allclose(times, np.repeat(t0 + np.arange(nin // n) * n * DT, NBL),
                               rtol=0, atol=1e-6)
    assert np.array_equal(flag_row, (fd_rows == 0).all(axis=1))
