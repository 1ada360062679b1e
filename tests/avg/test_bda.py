"""Baseline-dependent time factors: within the user's smearing limit, short baselines longer;
the whole chain through svc-avg with the factors of the example stations."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest

from ringbuf import DadaHeader
from services.avg.bda import (
    baseline_lengths,
    decode_factors,
    encode_factors,
    load_positions,
    time_factors,
)
from services.common.processes import ProcessGroup
from services.formats.stations import StationsFileError
from tests.avg.chain import (
    FREQ0,
    NBL,
    NPOL,
    START,
    STATIONS,
    WIDTH,
    feed,
    make_dumps,
    pair,
    start_avg,
)
from tests.avg.test_average import oracle
from tests.avg.test_chain import read_outputs

OMEGA = 7.2921150e-5


def smearing_loss(length: float, seconds: float, freq: float, fov_deg: float) -> float:
    """1 - sinc(phi/2) of a fringe turning through phi radians (exact, not the series)."""
    phi = 2 * math.pi * OMEGA * length * freq / 299792458.0 * math.sin(math.radians(fov_deg))
    x = phi * seconds / 2
    return 0.0 if x == 0 else 1 - math.sin(x) / x


def test_factors_keep_smearing_under_the_limit_and_no_lower_than_needed() -> None:
    lengths = np.array([0.0, 100.0, 1e3, 4e3, 1.2e4, 4e4, 1e5, 1e6])
    base, limit, freq, fov = 2.0, 0.01, 1.4e9, 1.0
    k = time_factors(lengths, base, 16, freq, fov, limit)
    assert k[0] == 16 and k[-1] == 1  # autocorrelation: longest; 1000 km: no extra averaging
    assert list(k) == sorted(k, reverse=True)
    for length, factor in zip(lengths, k, strict=True):
        assert factor & (factor - 1) == 0
        if factor > 1:
            assert smearing_loss(length, factor * base, freq, fov) <= limit * 1.01
        if factor < 16 and length < 1e6:
            assert smearing_loss(length, 2 * factor * base, freq, fov) > limit * 0.99


def test_encoding_round_trips_and_positions_load() -> None:
    factors = np.array([1, 2, 4, 8, 16, 1, 32768])
    assert encode_factors(factors) == "012340f"
    assert list(decode_factors(encode_factors(factors))) == list(factors)
    pos = load_positions(STATIONS)
    assert pos.shape == (4, 3)
    lengths = baseline_lengths(pos)
    assert lengths.shape == (NBL,) and lengths[0] == 0 and lengths[4] == 0  # autos 0-0, 1-1
    np.testing.assert_allclose(lengths[1], np.linalg.norm(pos[0] - pos[1]))


def test_a_bad_antenna_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "ants.txt"
    bad.write_text("S0 1 2 3\nS1 1 two 3\n")
    with pytest.raises(StationsFileError, match=r"ants.txt:2: expected 'NAME X Y Z") as exc:
        load_positions(bad)
    assert "\n" not in str(exc.value)
    with pytest.raises(StationsFileError, match="No such file"):
        load_positions(tmp_path / "missing.txt")


@pytest.mark.timeout(180)
def test_chain_with_baseline_dependent_averaging(tmp_path: Path) -> None:
    nin, nchan, n, m, kmax = 37, 8, 2, 2, 4  # 19 output dumps: a partial super-group at the end
    settings = {"AVG_TIME_DUMPS": n, "AVG_CHANNELS": m, "FLAG_ENABLE": "false",
                "BDA_MAX_FACTOR": kmax, "BDA_ANTENNA_FILE": STATIONS, "BDA_FOV_DEG": 90,
                "BDA_MAX_SMEARING": 0.01}
    freq_max = FREQ0 + (START + nchan - 1) * WIDTH
    factors = time_factors(baseline_lengths(load_positions(STATIONS)), n * 1.0, kmax,
                           freq_max, 90.0, 0.01)
    assert len(set(factors.tolist())) >= 2  # the example stations give a mix
    vis, w = make_dumps(nin, nchan, seed=5)
    want, want_fd, want_tci = oracle(vis, w, n, m, factors)
    results: list[tuple[int, np.ndarray, np.ndarray]] = []
    headers: list[DadaHeader] = []
    with ProcessGroup(tmp_path) as group:
        a = pair(group, nchan, 64)
        b = pair(group, nchan // m, 16, dumps=kmax)
        start_avg(group, "avg", (*a, *b), settings)
        reader = threading.Thread(target=lambda: results.extend(read_outputs(b, 1, headers)))
        reader.start()
        feed(a, vis, w, nchan)
        reader.join(60)
        assert not reader.is_alive()
    nco = nchan // m
    data = np.concatenate([r[1] for r in results]).view(np.complex64).reshape(-1, nco, NBL, NPOL)
    weights = np.concatenate([r[2] for r in results]).view(
        [("TCI", "i1"), ("FD", "u1")]).reshape(-1, nco, NBL)
    assert data.shape[0] == -(-nin // n)
    (header,) = headers
    assert list(decode_factors(header["BDA_LOG2_FACTORS"])) == list(factors)
    assert header.get_int("BDA_MAX_FACTOR") == kmax and header.get_int("AVG_WEIGHT_SCALE") == 4
    assert header.get_float("INT_TIME") == n * 1.0 and header.get_int("NCHAN") == nco
    np.testing.assert_allclose(data, want, rtol=0, atol=4e-6 * np.abs(want).max())
    assert np.array_equal(weights["FD"], want_fd)
    assert np.abs(weights["TCI"].astype(int) - want_tci).max() <= 1
