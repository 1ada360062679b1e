"""Averaging equals an independent numpy oracle of the rule (docs/avg.md) to float32
rounding: partial last groups in time and frequency, flagged and fully flagged inputs,
baseline-dependent factors, blocks of any size."""

from __future__ import annotations

import numpy as np
import pytest

from services.avg.average import WEIGHTS_DTYPE, Averager, AvgPlan

NPOL = 4


def make_input(rng: np.random.Generator, nin: int, nchan: int, nbl: int,
               flag_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    vis = (rng.normal(size=(nin, nchan, nbl, NPOL))
           + 1j * rng.normal(size=(nin, nchan, nbl, NPOL))).astype(np.complex64)
    w = np.zeros((nin, nchan, nbl), WEIGHTS_DTYPE)
    w["FD"] = rng.integers(1, 256, size=w.shape)
    w["FD"][rng.random(w.shape) < flag_fraction] = 0
    w["TCI"] = rng.integers(-60, 61, size=w.shape)
    return vis, w


def oracle(vis: np.ndarray, w: np.ndarray, n: int, m: int,
           factors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rule, one output sample at a time, in float64."""
    nin, nchan, nbl, _ = vis.shape
    nout, nco = -(-nin // n), -(-nchan // m)
    out = np.zeros((nout, nco, nbl, NPOL), np.complex128)
    fd = np.zeros((nout, nco, nbl), np.int64)
    tci = np.zeros((nout, nco, nbl), np.int64)
    for b in range(nbl):
        k = int(factors[b])
        for g0 in range(0, nout, k):
            length = min(k, nout - g0)
            slot = g0 + length // 2
            dumps = range(g0 * n, min((g0 + k) * n, nin))
            for c in range(nco):
                chans = range(c * m, min(c * m + m, nchan))
                wsum, vsum, tsum, fdsum = 0.0, np.zeros(NPOL, np.complex128), 0.0, 0
                for d in dumps:
                    for ch in chans:
                        weight = w["FD"][d, ch, b] / 255.0
                        wsum += weight
                        fdsum += int(w["FD"][d, ch, b])
                        vsum += weight * vis[d, ch, b].astype(np.complex128)
                        tsum += weight * (d + w["TCI"][d, ch, b] / 256.0)
                if wsum > 0:
                    out[slot, c, b] = vsum / wsum
                    fd[slot, c, b] = min(255, max(1, round(fdsum / (k * n * m))))
                    centre = slot * n + (n - 1) / 2
                    tci[slot, c, b] = min(127, max(-128, round((tsum / wsum - centre) * 256 / n)))
    return out, fd, tci


def run_averager(plan: AvgPlan, vis: np.ndarray, w: np.ndarray,
                 block_sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    avg = Averager(plan)
    outs = []
    pos, i = 0, 0
    while pos < vis.shape[0]:
        size = block_sizes[i % len(block_sizes)]
        outs += avg.add(vis[pos:pos + size], w[pos:pos + size], pos)
        pos += size
        i += 1
    outs += avg.finish()
    firsts = [o.first for o in outs]
    assert firsts == sorted(firsts) and firsts[0] == 0
    assert all(a.first + len(a) == b.first for a, b in zip(outs, outs[1:], strict=False))
    return (np.concatenate([o.data for o in outs]), np.concatenate([o.weights for o in outs]))


def check(plan: AvgPlan, vis: np.ndarray, w: np.ndarray, blocks: list[int]) -> None:
    data, weights = run_averager(plan, vis, w, blocks)
    want, want_fd, want_tci = oracle(vis, w, plan.time_factor, plan.chan_factor,
                                     plan.bl_factors)
    assert data.shape == want.shape and data.dtype == np.complex64
    scale = np.abs(want).max()
    np.testing.assert_allclose(data, want, rtol=0, atol=4e-6 * scale)
    fd = weights["FD"].astype(np.int64)
    assert np.array_equal(fd == 0, want_fd == 0)  # flagged exactly where the oracle says
    assert np.array_equal(fd, want_fd)
    assert np.abs(weights["TCI"].astype(np.int64) - want_tci).max() <= 1
    assert np.all(data[fd == 0] == 0)


@pytest.mark.parametrize("n,m,blocks", [(3, 4, [2]), (1, 1, [5]), (4, 3, [1, 3, 7]),
                                        (2, 10, [11])])
def test_plain_averaging_matches_the_oracle(n: int, m: int, blocks: list[int]) -> None:
    rng = np.random.default_rng(n * 10 + m)
    vis, w = make_input(rng, nin=11, nchan=10, nbl=6)  # 11 % n, 10 % m: partial groups
    check(AvgPlan(10, 6, n, m), vis, w, blocks)


def test_fully_flagged_groups_are_flagged_and_zero() -> None:
    rng = np.random.default_rng(7)
    vis, w = make_input(rng, nin=8, nchan=8, nbl=3, flag_fraction=0.0)
    w["FD"] = 255
    w["FD"][0:4, 0:4, 1] = 0  # output dump 0, channel 0 of baseline 1: every input flagged
    w["FD"][4:8, :, 2] = 0  # output dump 1 of baseline 2
    w["FD"][0:4, 4:8, 0] = 0
    w["FD"][1, 5, 0] = 200  # one input left: that output sample is not flagged
    data, weights = run_averager(AvgPlan(8, 3, 4, 4), vis, w, [3])
    fd = weights["FD"]
    assert fd[0, 0, 1] == 0 and np.all(data[0, 0, 1] == 0)
    assert np.all(fd[1, :, 2] == 0)
    assert fd[0, 1, 0] == max(1, round(255 * (200 / 255) / 16))
    np.testing.assert_allclose(data[0, 1, 0], vis[1, 5, 0], rtol=1e-6)
    assert fd[0, 0, 0] == 255 and fd[1, 1, 1] == 255  # all 16 inputs with FD 255
    check(AvgPlan(8, 3, 4, 4), vis, w, [3])


def test_unflagged_full_weights_give_fd_255_and_a_centred_tci() -> None:
    rng = np.random.default_rng(3)
    vis, w = make_input(rng, nin=6, nchan=4, nbl=3, flag_fraction=0.0)
    w["FD"], w["TCI"] = 255, 0
    data, weights = run_averager(AvgPlan(4, 3, 3, 2), vis, w, [6])
    assert np.all(weights["FD"] == 255) and np.all(weights["TCI"] == 0)
    np.testing.assert_allclose(data[1, 0], vis[3:6, 0:2].mean(axis=(0, 1)), rtol=1e-5)


def test_partial_last_time_group_centroid_is_early() -> None:
    rng = np.random.default_rng(4)
    vis, w = make_input(rng, nin=5, nchan=2, nbl=1, flag_fraction=0.0)
    w["FD"], w["TCI"] = 255, 0
    _, weights = run_averager(AvgPlan(2, 1, 4, 1), vis, w, [5])
    # output dump 1 holds input dump 4 only: FD 1/4, centroid 1.5 dumps before the centre
    assert weights["FD"][1, 0, 0] == round(255 / 4)
    assert weights["TCI"][1, 0, 0] == round(-1.5 * 256 / 4)


def test_baseline_dependent_factors_match_the_oracle() -> None:
    rng = np.random.default_rng(11)
    factors = np.array([4, 1, 2, 1, 4, 2])
    vis, w = make_input(rng, nin=23, nchan=6, nbl=6)  # 23 dumps, N 2: 12 out, K 4: 3 groups
    check(AvgPlan(6, 6, 2, 3, 4, factors), vis, w, [1, 2, 5])


def test_baseline_dependent_layout_carrying_dumps() -> None:
    rng = np.random.default_rng(12)
    vis, w = make_input(rng, nin=16, nchan=2, nbl=3, flag_fraction=0.0)
    w["FD"], w["TCI"] = 255, 0
    _, weights = run_averager(AvgPlan(2, 3, 2, 1, 4, np.array([4, 2, 1])), vis, w, [16])
    fd = weights["FD"][:, 0, :]
    assert list(np.flatnonzero(fd[:, 0])) == [2, 6]  # k 4: groups [0,4) [4,8), middle slot
    assert list(np.flatnonzero(fd[:, 1])) == [1, 3, 5, 7]
    assert list(np.flatnonzero(fd[:, 2])) == list(range(8))
    assert np.all(fd[fd > 0] == 255)
    assert np.all(weights["TCI"][[2, 6], 0, 0] == -128)  # centre is half a dump earlier
    assert np.all(weights["TCI"][:, 0, 2] == 0)


def test_resumed_start_skips_dumps_before_the_start() -> None:
    rng = np.random.default_rng(5)
    vis, w = make_input(rng, nin=12, nchan=4, nbl=3)
    avg = Averager(AvgPlan(4, 3, 3, 2), start_dump=6)
    outs = avg.add(vis[4:12], w[4:12], 4) + avg.finish()
    want, _, _ = oracle(vis[6:], w[6:], 3, 2, np.ones(3, int))
    assert outs[0].first == 2
    got = np.concatenate([o.data for o in outs])
    np.testing.assert_allclose(got, want, atol=4e-6 * np.abs(want).max())


def test_plan_rejects_a_factor_that_does_not_divide_the_maximum() -> None:
    with pytest.raises(ValueError, match="divide 4"):
        AvgPlan(4, 2, 1, 1, 4, np.array([3, 1]))
