"""VisWriter on an averaged stream (svc-avg's header keys): summed weights from
AVG_WEIGHT_SCALE x k, BDA rows (TIME, INTERVAL, EXPOSURE, TIME_CENTROID, FLAG_ROW), and
the header keys checked. Expected values computed here from the rule in docs/avg.md."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from casacore import tables

from ringbuf.errors import HeaderError
from services.mswrite.stream import MJD_UNIX_OFFSET_S, NPOL, WEIGHTS_DTYPE, VisStream
from services.mswrite.writer import VisWriter


def bda_stream(stream: VisStream, scale: float, kmax: int) -> VisStream:
    """Factors cycling 1, 2, ..., kmax over the baselines."""
    nlog = kmax.bit_length()
    log2 = tuple(b % nlog for b in range(stream.nbaseline))
    return dataclasses.replace(stream, weight_scale=scale, bda_log2=log2,
                               dumps_per_block=kmax)


def write(path, stream, antennas, vis, weights, block: int):
    dh, wh = stream.headers()
    with VisWriter.open(path, dh, wh, antennas=antennas) as writer:
        for first in range(0, len(vis), block):
            writer.write_dumps(vis[first:first + block], weights[first:first + block], first)
    with tables.table(str(path), ack=False) as t:
        return {c: t.getcol(c) for c in ("TIME", "INTERVAL", "EXPOSURE", "TIME_CENTROID",
                                         "WEIGHT_SPECTRUM", "WEIGHT", "SIGMA", "FLAG_ROW")}


def bda_weights(stream: VisStream, ndump: int, rng: np.random.Generator):
    """FD > 0 only in each group's carrying dump (as svc-avg writes), random TCI there."""
    k = stream.bda_factors()
    w = np.zeros((ndump, stream.nchan, stream.nbaseline), WEIGHTS_DTYPE)
    carrying = np.zeros((ndump, stream.nbaseline), bool)
    for b in range(stream.nbaseline):
        for g0 in range(0, ndump, int(k[b])):
            carrying[g0 + min(int(k[b]), ndump - g0) // 2, b] = True
    fd = rng.integers(1, 256, size=w.shape)
    w["FD"] = np.where(carrying[:, None, :], fd, 0)
    w["TCI"] = np.where(carrying[:, None, :], rng.integers(-128, 128, size=w.shape), 0)
    return w, carrying


@pytest.mark.parametrize("ndump", [8, 7, 5])  # whole super-groups; short last groups
def test_bda_rows(tmp_path, stream, antennas, make_dumps, ndump):
    kmax = 4
    s = bda_stream(stream, 6.0, kmax)
    vis, _ = make_dumps(s, ndump, seed=2)
    weights, carrying = bda_weights(s, ndump, np.random.default_rng(4))
    got = write(tmp_path / "bda.ms", s, antennas, vis, weights, block=kmax)
    nbl, dt = s.nbaseline, s.int_time
    t0 = MJD_UNIX_OFFSET_S + s.time0_unix
    for d in range(ndump):
        for b in range(nbl):
            row, k = d * nbl + b, 1 << s.bda_log2[b]
            fd = weights["FD"][d, :, b].astype(float)
            if carrying[d, b]:
                g0 = d // k * k
                length = min(k, ndump - g0)
                want_time = t0 + (g0 + (length - 1) / 2) * dt
                want_interval = length * dt
                tci = weights["TCI"][d, :, b].astype(float)
                want_centroid = t0 + d * dt + (tci * fd).sum() / fd.sum() / 256 * dt
            else:
                want_time = want_centroid = t0 + d * dt
                want_interval = dt
            assert got["TIME"][row] == pytest.approx(want_time, abs=1e-6)
            assert got["INTERVAL"][row] == pytest.approx(want_interval)
            assert got["EXPOSURE"][row] == pytest.approx(want_interval)
            assert got["TIME_CENTROID"][row] == pytest.approx(want_centroid, abs=1e-6)
            assert got["FLAG_ROW"][row] == (not carrying[d, b])
            want_w = fd / 255 * 6.0 * k
            np.testing.assert_allclose(got["WEIGHT_SPECTRUM"][row],
                                       np.repeat(want_w[:, None], NPOL, axis=1), rtol=1e-6)
            assert got["WEIGHT"][row][0] == pytest.approx(want_w.mean(), rel=1e-5)


def test_complete_weights_are_scaled_too(tmp_path, stream, antennas, make_dumps):
    s = dataclasses.replace(stream, weight_scale=12.0)
    vis, _ = make_dumps(s, 4, seed=1)
    weights = np.zeros((4, s.nchan, s.nbaseline), WEIGHTS_DTYPE)
    weights["FD"] = 255
    got = write(tmp_path / "full.ms", s, antennas, vis, weights, block=2)
    assert (got["WEIGHT_SPECTRUM"] == 12.0).all() and (got["WEIGHT"] == 12.0).all()
    np.testing.assert_allclose(got["SIGMA"], 1 / np.sqrt(12.0), rtol=1e-6)
    np.testing.assert_allclose(got["INTERVAL"], s.int_time)
    assert not got["FLAG_ROW"].any()


def test_unaveraged_stream_has_no_scale(stream):
    dh, wh = stream.headers()
    again = VisStream.from_headers(dh, wh)
    assert again.weight_scale == 1.0 and not again.bda
    assert (again.baseline_weight_scale() == 1.0).all()


def test_averaged_headers_round_trip_and_bad_ones_are_refused(stream):
    s = bda_stream(stream, 4.0, 4)
    again = VisStream.from_headers(*s.headers())
    assert again.weight_scale == 4.0 and again.bda_log2 == s.bda_log2
    assert list(again.bda_factors()) == [1 << v for v in s.bda_log2]
    for extra, match in (({"BDA_LOG2_FACTORS": "0g" * (s.nbaseline // 2) + "0" *
                           (s.nbaseline % 2)}, "hex digit"),
                         ({"BDA_LOG2_FACTORS": "01"}, "digits"),
                         ({"BDA_MAX_FACTOR": 2}, "above BDA_MAX_FACTOR"),
                         ({"AVG_WEIGHT_SCALE": "0"}, "AVG_WEIGHT_SCALE")):
        with pytest.raises(HeaderError, match=match):
            VisStream.from_headers(*s.headers(extra))
