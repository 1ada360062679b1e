"""StatComputer against an independent float64 numpy oracle, and on data of known statistics."""

from __future__ import annotations

import numpy as np
import pytest

from ringbuf import HeaderError, Segment
from services.formats.pst import PstLayout
from services.stat.compute import (
    FLT_MAX,
    SegmentError,
    StatComputer,
    StatInputs,
    calc_bins,
    compute_segment,
    requested_bins,
    rfi_mask,
)
from services.stat.config import StatConfig, stat_config
from services.stat.generate import BeamSpec, generate_heaps, pst_headers
from services.stat.scalar import scalar_stats


def oracle(data: np.ndarray, weights: np.ndarray, layout: PstLayout, nheap: int,
           mask: np.ndarray, ndat_ds: int, nchan_ds: int, nrebin: int) -> dict[str, np.ndarray]:
    """Straightforward float64 numpy statistics (the definitions of pst-stat.md section 2)."""
    raw = layout.data_view(data, nheap).astype(np.int64)
    scales = layout.scales_view(weights, nheap).astype(np.float32)
    with np.errstate(divide="ignore"):
        factor = np.where(scales == 0, np.float32(1), np.float32(1) / scales).astype(np.float32)
    ok = np.isfinite(factor)
    # -> (pol, chan, time, dim)
    r = raw.transpose(2, 1, 3, 0, 4, 5).reshape(2, layout.nchan, nheap * layout.udp_nsamp, 2)
    fac = np.repeat(np.repeat(factor.T, layout.udp_nchan, axis=0), layout.udp_nsamp, axis=1)
    valid = np.repeat(np.repeat(ok.T, layout.udp_nchan, axis=0), layout.udp_nsamp, axis=1)
    x = (r.astype(np.float32) * np.where(valid, fac, 0)[None, :, :, None]).astype(np.float64)
    power = (x ** 2).sum(axis=-1)
    n = valid.sum(axis=1)
    out: dict[str, np.ndarray] = {"num_samples_spectrum": n}
    out["mean_spectrum"] = (x.sum(axis=2) / np.maximum(n, 1)[None, :, None]).transpose(0, 2, 1)
    dev = (x - out["mean_spectrum"].transpose(0, 2, 1)[:, :, None, :]) * valid[None, :, :, None]
    out["variance_spectrum"] = ((dev ** 2).sum(axis=2) / np.maximum(n - 1, 1)[None, :, None]
                                ).transpose(0, 2, 1)
    out["mean_spectral_power"] = power.sum(axis=2) / np.maximum(n, 1)
    out["max_spectral_power"] = power.max(axis=2)
    for suffix, chans in (("", np.ones(layout.nchan, bool)), ("_rfi_excised", ~mask)):
        sel = valid & chans[:, None]
        xs = x[:, sel, :]  # (pol, samples, dim)
        out["mean_frequency_avg" + suffix] = xs.mean(axis=1)
        out["variance_frequency_avg" + suffix] = xs.var(axis=1, ddof=1)
        rs = r[:, sel, :]
        off = 1 << (layout.nbit - 1)
        out["histogram_1d_freq_avg" + suffix] = np.stack([np.stack(
            [np.bincount(rs[p, :, k] + off, minlength=2 * off) for k in range(2)])
            for p in range(2)])
        rb = np.clip(rs + 128, 0, nrebin - 1)
        out["histogram_rebinned_1d_freq_avg" + suffix] = np.stack([np.stack(
            [np.bincount(rb[p, :, k], minlength=nrebin) for k in range(2)]) for p in range(2)])
        out["histogram_rebinned_2d_freq_avg" + suffix] = np.stack([np.bincount(
            rb[p, :, 0] * nrebin + rb[p, :, 1], minlength=nrebin * nrebin
        ).reshape(nrebin, nrebin) for p in range(2)])
        clip = ((r == -off) | (r == off - 1)) & sel[None, :, :, None]
        out["num_clipped_samples" + suffix] = clip.sum(axis=(1, 2))
        ps = np.where(sel[None], power, np.nan).reshape(2, layout.nchan, ndat_ds, -1)
        ps = ps.transpose(0, 2, 1, 3).reshape(2, ndat_ds, -1)
        with np.errstate(all="ignore"):
            ts = np.stack([np.nanmax(ps, axis=2), np.nanmin(ps, axis=2), np.nanmean(ps, axis=2)],
                          axis=-1)
        ts[:, :, 1] = np.where(np.isnan(ts[:, :, 1]), FLT_MAX, ts[:, :, 1])
        out["timeseries" + suffix] = np.nan_to_num(ts, nan=0.0)
    out["num_clipped_samples_spectrum"] = (
        ((r == -off) | (r == off - 1)) & valid[None, :, :, None]).sum(axis=2).transpose(0, 2, 1)
    sp = (power * valid).reshape(2, nchan_ds, layout.nchan // nchan_ds, ndat_ds, -1)
    out["spectrogram"] = sp.sum(axis=(2, 4))
    out["num_invalid_packets"] = np.array((~ok).sum())
    return out


FLOAT_RTOL = {"timeseries": 1e-4, "timeseries_rfi_excised": 1e-4}


def check_against_oracle(profile: str, nchan: int, nheap: int, spec: BeamSpec, mask_text: str,
                         req_bins: tuple[int, int], nrebin: int, scales=None) -> None:
    data_h, weights_h = pst_headers(profile, NCHAN=nchan, FREQ_MASK=mask_text, NMASK=1,
                                    STAT_REQ_TIME_BINS=req_bins[0],
                                    STAT_REQ_FREQ_BINS=req_bins[1], STAT_NREBIN=nrebin)
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(layout, spec, 0, nheap)
    if scales is not None:
        recs = weights.reshape(nheap * layout.packets_per_heap, -1)
        keep_nan = np.isnan(recs[:, :4].copy().view("<f4")[:, 0])
        new = np.where(keep_nan, np.nan, scales(len(recs))).astype("<f4")
        recs[:, :4] = new.view(np.uint8).reshape(-1, 4)
    result = compute_segment(Segment(data, weights, 0, 0, data_h, weights_h), stat_config(data_h))
    mask = rfi_mask(data_h.get_float("FREQ"), data_h.get_float("BW"), nchan,
                    [tuple(map(float, mask_text.split(":")))])
    assert result.rfi_mask.tolist() == mask.tolist() and 0 < mask.sum() < nchan
    expected = oracle(data, weights, layout, nheap, mask, result.ndat_ds, result.nchan_ds, nrebin)
    for name, want in expected.items():
        got = np.asarray(getattr(result, name))
        assert got.shape == want.shape, name
        if want.dtype.kind in "iub":
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=FLOAT_RTOL.get(name, 1e-5), atol=1e-3,
                                       err_msg=name)
    # scalar publisher mirrors the frequency-averaged datasets
    scalars = scalar_stats(result)
    assert len(scalars) == 24
    assert scalars["imag_pol_b_mean_freq_avg_masked"] == pytest.approx(
        float(result.mean_frequency_avg_rfi_excised[1, 1]))
    assert scalars["real_pol_a_num_clipped_samples"] == int(result.num_clipped_samples[0, 0])


def test_mid_8bit_nan_packets_scales_mask_clipping() -> None:
    rng = np.random.default_rng(7)
    spec = BeamSpec(sigma=12.0, tones={4: 40.0}, clip_fraction=0.002,
                    nan_packets=frozenset({1, 5, 6, 20}), seed=3)
    check_against_oracle("mid", 555, 24, spec, "4905:4910", (102, 111), 256,
                         scales=lambda n: np.where(rng.random(n) < 0.1, 0.0,
                                                   rng.uniform(0.3, 3, n)))


def test_low_16bit_small_rebin() -> None:
    spec = BeamSpec(sigma=np.linspace(5, 300, 96), clip_fraction=0.001,
                    nan_packets=frozenset({2, 9}), seed=5)
    check_against_oracle("low", 96, 6, spec, "50:60", (2, 12), 64)  # heap-in-one-bin path


def test_pieces_give_the_same_numbers_as_one_segment() -> None:
    data_h, weights_h = pst_headers("low", NCHAN=48, FREQ_MASK="51:55", NMASK=1,
                                    STAT_REQ_TIME_BINS=3)
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(layout, BeamSpec(nan_packets=frozenset({3})), 0, 9)
    whole = compute_segment(Segment(data, weights, 0, 0, data_h, weights_h), stat_config(data_h))
    comp = StatComputer(StatInputs.from_headers(data_h, weights_h), 9, stat_config(data_h))
    for first, n in ((0, 2), (2, 1), (3, 6)):
        comp.add(data[first * layout.data_heap_stride:(first + n) * layout.data_heap_stride],
                 weights[first * layout.weights_heap_stride:
                         (first + n) * layout.weights_heap_stride])
    pieces = comp.result(0)
    for name in ("timeseries", "timeseries_rfi_excised", "spectrogram", "mean_spectrum",
                 "variance_frequency_avg_rfi_excised", "histogram_1d_freq_avg_rfi_excised"):
        np.testing.assert_array_equal(getattr(pieces, name), getattr(whole, name), err_msg=name)


def test_gaussian_noise_of_known_sigma() -> None:
    """Population statistics within the 6-sigma bounds of ska-pst-testutils assert_statistics."""
    sigma = 10.0
    data_h, weights_h = pst_headers("low", NCHAN=240)
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(layout, BeamSpec(sigma=sigma, seed=11), 0, 40)
    r = compute_segment(Segment(data, weights, 0, 0, data_h, weights_h), stat_config(data_h))
    n = r.num_samples_spectrum[0]
    assert n == 40 * 32
    s2 = sigma ** 2 + 1 / 12  # rounding to integers adds 1/12
    tol_mean = 6 * np.sqrt(s2 / n)
    tol_var = 6 * np.sqrt((3 * s2 ** 2 - (n - 3) / (n - 1) * s2 ** 2) / n)
    assert np.all(np.abs(r.mean_spectrum) < tol_mean)
    assert np.all(np.abs(r.variance_spectrum - s2) < tol_var)
    assert r.variance_frequency_avg == pytest.approx(np.full((2, 2), s2), rel=0.01)
    assert r.mean_spectral_power == pytest.approx(np.full((2, 240), 2 * s2), rel=0.2)
    assert not r.num_clipped_samples.any() and r.num_invalid_packets == 0


def test_all_zero_weights_mean_scale_one_and_empty_bins_keep_flt_max() -> None:
    data_h, weights_h = pst_headers("low", NCHAN=24, STAT_REQ_TIME_BINS=2)
    layout = PstLayout.from_headers(data_h, weights_h)
    data = np.zeros(2 * layout.data_heap_stride, np.uint8)
    weights = np.zeros(2 * layout.weights_heap_stride, np.uint8)
    r = compute_segment(Segment(data, weights, 0, 0, data_h, weights_h), stat_config(data_h))
    assert r.num_invalid_packets == 0 and r.num_samples == 24 * 64
    assert not r.mean_frequency_avg.any() and not r.variance_frequency_avg.any()
    # all packets NaN: no samples, min stays FLT_MAX, pooled variance 0 (N = 0)
    nan = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
    weights.reshape(2, -1)[:, :4] = nan
    r = compute_segment(Segment(data, weights, 0, 0, data_h, weights_h), stat_config(data_h))
    assert r.num_invalid_packets == 2 and r.num_samples == 0
    assert (r.timeseries[:, :, 1] == FLT_MAX).all() and not r.timeseries[:, :, [0, 2]].any()
    assert not r.variance_frequency_avg.any() and not r.variance_spectrum.any()


def test_calc_bins_examples() -> None:
    cases = {(20736, 1024): 1152, (20736, 100): 108, (555, 100): 111, (555, 555): 555,
             (612, 100): 102, (612, 1024): 612, (96, 1024): 96, (8, 4): 4, (4, 2): 2,
             (1184, 1024): 1184}
    for (n, req), want in cases.items():
        assert calc_bins(n, req) == want, (n, req)
    assert requested_bins(0, 32768) == 1024 and requested_bins(40000, 32768) == 1024
    assert requested_bins(2048, 2048) == 2048 and requested_bins(2049, 2048) == 1024


def test_mask_quirk_channel_containing_the_range_is_not_masked() -> None:
    # channels 800-900, 900-1000, 1000-1100, 1100-1200; 1020:1080 lies strictly inside chan 2
    assert rfi_mask(1000, 400, 4, [(1020, 1080)]).tolist() == [False] * 4
    assert rfi_mask(1000, 400, 4, [(850, 950)]).tolist() == [True, True, False, False]


def test_segment_and_header_errors() -> None:
    data_h, weights_h = pst_headers("low", NCHAN=24)
    layout = PstLayout.from_headers(data_h, weights_h)
    data, weights = generate_heaps(layout, BeamSpec(), 0, 2)
    with pytest.raises(SegmentError, match="2 whole data heaps and 1"):
        compute_segment(Segment(data, weights[: layout.weights_heap_stride], 0, 0,
                                data_h, weights_h), StatConfig())
    bad = data_h.copy()
    bad.set("TSAMP", 0)
    with pytest.raises(HeaderError, match="TSAMP"):
        StatInputs.from_headers(bad, weights_h)
    bad = data_h.copy()
    bad.delete("PICOSECONDS")
    with pytest.raises(HeaderError, match="PICOSECONDS"):
        StatInputs.from_headers(bad, weights_h)
    bad = data_h.copy()
    bad.set("FREQ_MASK", "100-200")
    with pytest.raises(HeaderError, match="FREQ_MASK"):
        StatInputs.from_headers(bad, weights_h)


def test_mid_8bit_several_heaps_per_time_bin_and_nrebin_above_256() -> None:
    spec = BeamSpec(sigma=30.0, clip_fraction=0.01, nan_packets=frozenset({0, 13}), seed=9)
    check_against_oracle("mid", 370, 16, spec, "4900:4903", (4, 5), 300)
