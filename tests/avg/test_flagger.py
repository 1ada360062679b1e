"""The RFI flagger finds >= 95 % of injected RFI (narrow-band lines and broadband bursts at
known positions) with <= 1 % false flags on Gaussian noise."""

from __future__ import annotations

import numpy as np

from services.avg.average import WEIGHTS_DTYPE
from services.avg.flagger import Flagger, FlagSettings

NDUMP, NCHAN, NBL, NPOL = 24, 256, 10, 4


def noise(rng: np.random.Generator) -> np.ndarray:
    shape = (NDUMP, NCHAN, NBL, NPOL)
    return ((rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2)).astype(
        np.complex64)


def full_weights() -> np.ndarray:
    w = np.zeros((NDUMP, NCHAN, NBL), WEIGHTS_DTYPE)
    w["FD"] = 255
    return w


def run(flagger: Flagger, vis: np.ndarray, w: np.ndarray, block: int) -> np.ndarray:
    """Flag in blocks of ``block`` dumps (as ring blocks arrive); return the RFI mask."""
    return np.concatenate([flagger.flags(vis[i:i + block], w["FD"][i:i + block])
                           for i in range(0, NDUMP, block)])


def inject(rng: np.random.Generator, vis: np.ndarray) -> np.ndarray:
    """Lines (one channel, some dumps, one baseline and polarisation) and broadband bursts
    (every channel of one dump, one baseline, every polarisation); returns the truth mask."""
    truth = np.zeros((NDUMP, NCHAN, NBL), bool)
    phase = np.exp(2j * np.pi * rng.random(vis.shape)).astype(np.complex64)
    for _ in range(40):  # narrow-band lines, 8..30 sigma, 1..6 dumps long
        d0, c, b, p = (rng.integers(0, NDUMP - 6), rng.integers(0, NCHAN), rng.integers(0, NBL),
                       rng.integers(0, NPOL))
        length = rng.integers(1, 7)
        amp = rng.uniform(8, 30)
        vis[d0:d0 + length, c, b, p] += amp * phase[d0:d0 + length, c, b, p]
        truth[d0:d0 + length, c, b] = True
    for _ in range(6):  # broadband bursts, 1.5..4 sigma in every channel
        d, b = rng.integers(3, NDUMP), rng.integers(0, NBL)
        vis[d, :, b, :] += rng.uniform(1.5, 4) * phase[d, :, b, :]
        truth[d, :, b] = True
    return truth


def test_finds_95_percent_of_injected_rfi_with_few_false_flags() -> None:
    rng = np.random.default_rng(2024)
    vis = noise(rng)
    truth = inject(rng, vis)
    found = run(Flagger(FlagSettings(sigma=5.0, window=17, dilate=0)), vis, full_weights(), 1)
    detected = np.count_nonzero(found & truth) / np.count_nonzero(truth)
    false = np.count_nonzero(found & ~truth) / np.count_nonzero(~truth)
    assert detected >= 0.95, detected
    assert false <= 0.01, false


def test_lines_and_bursts_each_found() -> None:
    rng = np.random.default_rng(9)
    vis = noise(rng)
    vis[5, 100, 3, 1] += 12.0  # a line in one polarisation of one baseline
    vis[8, :, 6, :] += 3.0  # a burst on baseline 6
    found = run(Flagger(FlagSettings(dilate=1)), vis, full_weights(), 4)
    assert found[5, 99:102, 3].all()  # the line and its dilation, every polarisation's FD
    assert found[8, :, 6].mean() == 1.0
    assert not found[8, :, 5].any()


def test_false_flags_on_pure_noise_at_most_1_percent() -> None:
    rng = np.random.default_rng(77)
    vis = noise(rng) * np.float32(3.0)  # any noise level
    found = run(Flagger(FlagSettings()), vis, full_weights(), 3)
    assert found.mean() <= 0.01, found.mean()


def test_input_flags_are_kept_and_left_out_of_the_statistics() -> None:
    rng = np.random.default_rng(5)
    vis = noise(rng)
    w = full_weights()
    w["FD"][:, 10:20, 2] = 0
    vis[:, 10:20, 2, :] = 1000.0  # garbage under input flags: must not bias anything
    flagger = Flagger(FlagSettings())
    found = run(flagger, vis, w, 2)
    assert not found[:, 10:20, 2].any()  # reported as RFI only where not already flagged
    assert found[:, :, 2].mean() <= 0.01
    weights = full_weights()
    weights["FD"][0, 7, 1] = 0
    vis2 = noise(rng)
    vis2[0, 50, 1, 0] += 20
    count = Flagger(FlagSettings(dilate=0)).apply(vis2[:1], weights[:1])
    assert count >= 1 and weights["FD"][0, 50, 1] == 0 and weights["FD"][0, 7, 1] == 0
