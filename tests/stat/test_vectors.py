"""SKA PST StatComputerTest vectors (pst-stat.md section 8.1-8.5) through StatComputer."""

from __future__ import annotations

import numpy as np
import pytest

from ringbuf.header import DadaHeader
from ringbuf.segment import Segment
from services.stat.compute import compute_segment
from services.stat.config import stat_config

# pst-stat.md section 8: base sequence S (int16)
S = np.array([
    -4, 19, 17, 6, -2, 2, 0, 15, 15, 3, 15, 8, -11, -21, -18, 2, -11, 9, -3, 5, -4, -13, 12, -1,
    5, 10, 21, 0, 25, -2, 0, 12,
    8, -6, -8, 23, -11, -6, 28, 3, 32, -2, 17, 6, -8, 4, -9, 0, 12, 6, -9, -18, -5, 0, -12, 1,
    12, 9, -18, 8, 9, 2, 0, -8,
    4, 9, 0, 14, 24, 0, 17, 2, -5, 0, 7, 11, 8, -3, 2, 12, 8, 8, 19, 3, 13, 22, -2, -10, -13,
    19, -1, 16, -2, 2, 0, -3,
    1, -23, -1, 32, 1, 15, 5, 10, -1, 20, -1, 6, 15, -13, -4, 5, -1, 5, -1, 1, 12, -3, -6, -6,
    0, -5, 15, 12, 20, 13, -2, 21,
], dtype=np.int16)
assert S.size == 128

V82 = np.array([
    -4, 19, 17, 6, -2, 2, 0, 15, 15, 3, 15, 8, -11, -21, -18, 2, 4, 9, 0, 14, 24, 0, 17, 2, -5,
    0, 7, 11, 8, -3, 2, 12,
    -11, 9, -3, 5, -4, -13, 12, -1, 5, 10, 21, 0, 25, -2, 0, 12, 8, 8, 19, 3, 13, 22, -2, -10,
    -13, 19, -1, 16, -2, 2, 0, -3,
    8, -6, -8, 23, -11, -6, 28, 3, 32, -2, 17, 6, -8, 4, -9, 0, 1, -23, -1, 32, 1, 15, 5, 10,
    -1, 20, -1, 6, 15, -13, -4, 5,
    12, 6, -9, -18, -5, 0, -12, 1, 12, 9, -18, 8, 9, 2, 0, -8, -1, 5, -1, 1, 12, -3, -6, -6, 0,
    -5, 15, 12, 20, 13, -2, 21,
], dtype=np.int16)

CLIPS = [(0, -32768), (17, 32767), (34, -32768), (51, 32767), (68, 32767), (85, 32767),
         (102, 32767), (119, -32768)]


def headers(nchan: int, udp_nsamp: int, bps: float, mask: str | None = None,
            bins: tuple[int, int] = (1, 1), nrebin: int = 256) -> tuple[DadaHeader, DadaHeader]:
    """The StatComputerTest config headers (one packet per heap, 16-bit)."""
    wsize = nchan * 2
    common = {"NCHAN": nchan, "UDP_NSAMP": udp_nsamp, "UDP_NCHAN": nchan, "WT_NSAMP": udp_nsamp}
    data = DadaHeader({
        "HDR_SIZE": 4096, "NPOL": 2, "NDIM": 2, "NBIT": 16, **common, "FREQ": 1000, "BW": 400,
        "TSAMP": 207.36, "PICOSECONDS": 1234, "BYTES_PER_SECOND": bps, "START_CHANNEL": 0,
        "RESOLUTION": nchan * udp_nsamp * 8, "STAT_NREBIN": nrebin,
        "STAT_REQ_TIME_BINS": bins[0], "STAT_REQ_FREQ_BINS": bins[1],
    }, source="data_config.txt")
    if mask:
        data.update({"NMASK": 1, "FREQ_MASK": mask})
    weights = DadaHeader({
        "HDR_SIZE": 4096, "NPOL": 1, "NDIM": 1, "NBIT": 16, **common,
        "PACKET_WEIGHTS_SIZE": wsize, "PACKET_SCALES_SIZE": 4, "RESOLUTION": wsize + 4,
    }, source="weights_config.txt")
    return data, weights


def weights_records(scales: list[float], nchan: int) -> np.ndarray:
    rec = np.dtype([("scale", "<f4"), ("w", "<u2", (nchan,))])
    out = np.zeros(len(scales), rec)
    out["scale"] = scales
    out["w"][:, 0] = 1
    return out.view(np.uint8)


def run(data_values: np.ndarray, hdrs, scales: list[float], nchan: int, **kw):
    seg = Segment(data_values.view(np.uint8), weights_records(scales, nchan), 0, 0, *hdrs)
    config = stat_config(hdrs[0])
    return compute_segment(seg, config)


def f32(values) -> np.ndarray:
    return np.array(values, np.float32)


def assert_float_eq(actual, expected) -> None:
    """gtest ASSERT_FLOAT_EQ: within 4 ULP (expected values are given to ~10 digits)."""
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=2e-7, atol=1e-6)


def test_expected_values_8_1() -> None:
    r = run(S, headers(1, 32, 38580.2469135802, nrebin=1), [1.0], 1)
    assert r.num_samples == 32 and r.num_samples_rfi_excised == 32
    assert list(r.num_samples_spectrum) == [32]
    mean = [[2.96875, 2.375], [4.09375, 6]]
    var = [[185.0635081, 87.98387097], [75.50705645, 130.5806452]]
    for out in (r.mean_frequency_avg, r.mean_frequency_avg_rfi_excised, r.mean_spectrum[:, :, 0]):
        assert_float_eq(out, mean)
    for out in (r.variance_frequency_avg, r.variance_frequency_avg_rfi_excised,
                r.variance_spectrum[:, :, 0]):
        assert_float_eq(out, var)
    assert_float_eq(r.mean_spectral_power[:, 0], [278.96875, 252.40625])
    assert_float_eq(r.max_spectral_power[:, 0], [1028, 1025])
    assert not r.num_clipped_samples.any() and not r.num_clipped_samples_spectrum.any()
    assert r.num_invalid_packets == 0
    assert r.histogram_rebinned_1d_freq_avg.tolist() == [[[32], [32]], [[32], [32]]]
    assert r.t_min == pytest.approx(0.001234, rel=1e-15)


def test_invalid_packets_8_2() -> None:
    r = run(V82, headers(2, 4, 38580.2469135802), [float("nan"), 1.0, 1.0, 1.0], 2)
    assert r.num_samples == 24 and r.num_samples_rfi_excised == 24
    assert list(r.num_samples_spectrum) == [12, 12]
    assert r.num_invalid_packets == 1
    mean = [[3.458333333, 1.75], [3.083333333, 6.125]]
    var = [[196.8677536, 73.5], [70.6884058, 162.8097826]]
    for out in (r.mean_frequency_avg, r.mean_frequency_avg_rfi_excised):
        assert_float_eq(out, mean)
    for out in (r.variance_frequency_avg, r.variance_frequency_avg_rfi_excised):
        assert_float_eq(out, var)
    chan_mean = {(0, 0, 0): -0.25, (1, 0, 0): 4, (1, 1, 0): 4.5,
                 (0, 0, 1): 7.166666667, (0, 1, 1): 3.25, (1, 0, 1): 2.166666667, (1, 1, 1): 7.75}
    chan_var = {(0, 0, 0): 156.0227273, (0, 1, 0): 113.2954545, (1, 0, 0): 56,
                (1, 1, 0): 214.8181818, (0, 0, 1): 225.6060606, (0, 1, 1): 35.47727273,
                (1, 0, 1): 89.96969697, (1, 1, 1): 119.8409091}
    for idx, value in chan_mean.items():
        assert_float_eq(r.mean_spectrum[idx], value)
    assert abs(r.mean_spectrum[0, 1, 0] - 0.25) < 1e-5  # ASSERT_NEAR in the reference
    for idx, value in chan_var.items():
        assert_float_eq(r.variance_spectrum[idx], value)
    assert_float_eq(r.mean_spectral_power, [[247, 301.25], [284.5, 257.0833333]])
    assert_float_eq(r.max_spectral_power, [[793, 1028], [1025, 569]])
    assert not r.num_clipped_samples.any()
    # the NaN heap adds nothing to any histogram
    assert r.histogram_1d_freq_avg.sum(axis=2).tolist() == [[24, 24], [24, 24]]


def masked_4chan():
    return headers(4, 8, 154320.987654321, mask="850:950", bins=(4, 2))


def test_rfi_excised_channels_8_3() -> None:
    r = run(S, masked_4chan(), [1.0], 4)
    assert r.nchan_ds == 2 and r.ndat_ds == 4
    assert r.rfi_mask.tolist() == [True, True, False, False]
    assert r.num_samples == 32 and r.num_samples_rfi_excised == 16
    assert list(r.num_samples_spectrum) == [8, 8, 8, 8]
    assert_float_eq(r.mean_frequency_avg, [[2.96875, 2.375], [4.09375, 6]])
    assert_float_eq(r.variance_frequency_avg,
                    [[185.0635081, 87.98387097], [75.50705645, 130.5806452]])
    assert_float_eq(r.mean_frequency_avg_rfi_excised, [[2.375, 1.375], [3.25, 5.625]])
    assert_float_eq(r.variance_frequency_avg_rfi_excised,
                    [[222.9166667, 80.65], [60.86666667, 190.1166667]])
    means = [[1.5, 4.25, 7.125, 5.625], [5.625, 2.5, 2.75, 7.125], [6.125, 2.75, 1.875, 6.5],
             [-1.375, 0, 4.625, 4.75]]
    variances = [[169.4285714, 142.7857143, 88.125, 43.125],
                 [161.125, 67.71428571, 101.6428571, 125.8392857],
                 [312.9821429, 86.5, 34.69642857, 310],
                 [132.5535714, 82, 91.41071429, 95.64285714]]
    power = [[293.5, 197.25], [238.125, 257.375], [394.625, 347.375], [189.625, 207.625]]
    pmax = [[562, 576], [629, 653], [1028, 1025], [405, 569]]
    for c in range(4):
        assert_float_eq(r.mean_spectrum[:, :, c].ravel(), means[c])
        assert_float_eq(r.variance_spectrum[:, :, c].ravel(), variances[c])
        assert_float_eq(r.mean_spectral_power[:, c], power[c])
        assert_float_eq(r.max_spectral_power[:, c], pmax[c])
    assert_float_eq(r.spectrogram, [[[938, 563, 1089, 1663], [1278, 1120, 1966, 310]],
                                    [[791, 1626, 982, 238], [1583, 576, 832, 1449]]])
    assert_float_eq(r.timeseries, [
        [(593, 34, 277), (793, 8, 210.375), (1028, 125, 381.875), (629, 64, 246.625)],
        [(1025, 2, 296.75), (653, 72, 275.25), (530, 25, 226.75), (569, 8, 210.875)]])
    assert_float_eq(r.timeseries_rfi_excised, [
        [(593, 100, 319.5), (793, 25, 280), (1028, 225, 491.5), (85, 64, 77.5)],
        [(1025, 2, 395.75), (226, 72, 144), (401, 25, 208), (569, 41, 362.25)]])
    assert r.t_min == pytest.approx(0.001234, rel=1e-15)
    # excised histograms hold the 16 samples per (pol, dim) of channels 2 and 3
    assert r.histogram_1d_freq_avg_rfi_excised.sum(axis=2).tolist() == [[16, 16], [16, 16]]
    assert r.histogram_rebinned_2d_freq_avg_rfi_excised.sum(axis=(1, 2)).tolist() == [16, 16]


def clipped_data() -> np.ndarray:
    data = S.copy()
    for index, value in CLIPS:
        data[index] = value
    return data


@pytest.mark.parametrize("masked", [False, True])
def test_clipped_channels_8_4(masked: bool) -> None:
    hdrs = masked_4chan() if masked else headers(4, 8, 154320.987654321)
    r = run(clipped_data(), hdrs, [1.0], 4)
    assert r.num_clipped_samples.tolist() == [[2, 2], [2, 2]]
    excised = 1 if masked else 2
    assert r.num_clipped_samples_rfi_excised.tolist() == [[excised] * 2] * 2
    spectrum = r.num_clipped_samples_spectrum
    expected = {0: [1, 0, 1, 0], 1: [0, 1, 0, 1], 2: [1, 0, 1, 0], 3: [0, 1, 0, 1]}
    for c, values in expected.items():
        assert spectrum[:, :, c].ravel().tolist() == values
    # clipped codes land in the first and last 16-bit histogram bins
    hist = r.histogram_1d_freq_avg
    assert hist[:, :, 0].sum() + hist[:, :, -1].sum() == 8


def test_compute_8_5_frequency_and_time_bins() -> None:
    """test_compute: 20736 channels, one heap, bins 4 (time) and 1152 (frequency)."""
    nchan, nsamp = 20736, 32
    data = DadaHeader({
        "NPOL": 2, "NDIM": 2, "NBIT": 16, "NCHAN": nchan, "UDP_NSAMP": nsamp, "UDP_NCHAN": 24,
        "WT_NSAMP": nsamp, "FREQ": 1000, "BW": 800, "TSAMP": 207.36, "PICOSECONDS": 0,
        "BYTES_PER_SECOND": 8e8, "START_CHANNEL": 0, "RESOLUTION": nchan * nsamp * 8,
        "STAT_REQ_TIME_BINS": 4, "STAT_REQ_FREQ_BINS": 1152})
    weights = DadaHeader({
        "NPOL": 1, "NDIM": 1, "NBIT": 16, "NCHAN": nchan, "UDP_NSAMP": nsamp, "UDP_NCHAN": 24,
        "WT_NSAMP": nsamp, "RESOLUTION": 52 * nchan // 24})
    rng = np.random.default_rng(1)
    samples = np.clip(np.rint(rng.normal(0, 200, nchan * nsamp * 4)), -32768, 32767)
    recs = np.zeros((nchan // 24, 52), np.uint8)
    recs[:, :4] = np.frombuffer(np.float32(1).tobytes(), np.uint8)
    seg = Segment(samples.astype(np.int16).view(np.uint8), recs.ravel(), 0, 0, data, weights)
    r = compute_segment(seg, stat_config(data))
    assert (r.nchan_ds, r.ndat_ds) == (1152, 4)
    f = np.arange(1152)
    np.testing.assert_allclose(r.frequency_bins, (1000 - 400) + (800 / 1152) * (2 * f + 1) / 2,
                               rtol=4 * np.finfo(float).eps)
    total = 207.36 * nsamp * 1e-6
    assert r.t_max - r.t_min == pytest.approx(total, rel=1e-15)
    np.testing.assert_allclose(r.timeseries_bins, (np.arange(4) + 0.5) * total / 4, rtol=1e-15)
    assert r.num_samples == nchan * nsamp


def test_rfi_excised_channels_8_3_through_the_file_processor(tmp_path) -> None:
    """The 8.3 vector as a .dada data + weights pair gives the same numbers, T_MIN 0.001234."""
    import h5py
    from click.testing import CliRunner

    from services.stat.file_processor import main

    data_h, weights_h = masked_4chan()
    for header in (data_h, weights_h):
        header.update({"OBS_OFFSET": 0, "UTC_START": "2023-02-14-22:15:37"})
    for sub, header, body in (("data", data_h, S.tobytes()),
                              ("weights", weights_h, weights_records([1.0], 4).tobytes())):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "v.dada").write_bytes(header.to_bytes() + body)
    res = CliRunner().invoke(main, [str(tmp_path / "data" / "v.dada")])
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "stat" / "v.h5", "r") as f:
        header = f["HEADER"][0]
        assert header["T_MIN"] == pytest.approx(0.001234, rel=1e-15)
        assert header["NUM_SAMPLES"] == 32 and header["NUM_SAMPLES_RFI_EXCISED"] == 16
        assert_float_eq(f["VARIANCE_FREQUENCY_AVG_RFI_EXCISED"][()],
                        [[222.9166667, 80.65], [60.86666667, 190.1166667]])
        assert_float_eq(f["SPECTROGRAM"][0, 0], [938, 563, 1089, 1663])
        assert_float_eq(f["TIMESERIES_RFI_EXCISED"][1, 3], (569, 41, 362.25))
