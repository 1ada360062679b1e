"""RFI flagging per baseline and polarisation, along frequency, before averaging.

For each dump, baseline and polarisation the amplitude spectrum ``|V|`` is compared with a
background: the medians of consecutive ``FLAG_WINDOW``-channel blocks, joined by straight
lines (a running median sampled every FLAG_WINDOW channels). The residual's noise is the
median absolute residual x 1.4826 (taken on every ``NCHAN // 64``-th channel); a channel
whose residual is more than ``FLAG_SIGMA`` noise above the background is flagged
(narrow-band RFI). A dump whose spectrum level (the median of its block medians) stands
more than ``FLAG_SIGMA`` robust deviations above the levels of recent dumps of the same
baseline and polarisation is flagged entirely (broadband bursts; the reference is the last
``FLAG_HISTORY`` dumps plus the dumps of the block). Flags are dilated by ``FLAG_DILATE``
channels on each side, and a visibility is flagged (FD 0) if any of its four polarisations
is.

Input flags (FD 0) are kept, and their samples are left out of every statistic. The
per-spectrum work is one numba kernel (:mod:`services.avg.kernels`); the rest is numpy on
whole blocks.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d

from services.avg.kernels import narrow_flags

#: MAD -> standard deviation of a Gaussian
MAD_SCALE = 1.4826
#: threads running the kernel (it releases the GIL), each on its own range of baselines
THREADS = max(1, min(2, os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(THREADS, thread_name_prefix="flagger")


@dataclass(frozen=True)
class FlagSettings:
    """Flagger parameters (config keys FLAG_*)."""

    sigma: float = 5.0
    window: int = 17  # channels of the running median (odd)
    dilate: int = 1  # channels added on each side of a flagged one
    history: int = 16  # dumps of spectrum levels kept for the broadband test


class Flagger:
    """Stateful flagger: keeps the recent spectrum levels per baseline and polarisation."""

    def __init__(self, settings: FlagSettings) -> None:
        self.settings = settings
        self._levels: np.ndarray | None = None  # (history, nbl, 4) spectrum levels

    def reset(self) -> None:
        """Forget the history (a new transfer)."""
        self._levels = None

    def flags(self, data: np.ndarray, fd: np.ndarray) -> np.ndarray:
        """Boolean (n, nchan, nbl): True where RFI was found (input flags not included).

        ``data`` (n, nchan, nbl, 4) complex64, ``fd`` (n, nchan, nbl) uint8.
        """
        s = self.settings
        n, nchan, nbl, npol = data.shape
        bad = fd == 0
        window = min(s.window, nchan)
        rfi = np.zeros((n, nchan, nbl), np.bool_)
        level = np.empty((n, nbl, npol), np.float32)
        noise = np.empty((n, nbl, npol), np.float32)
        sigma = np.float32(s.sigma)
        edges = np.linspace(0, nbl, THREADS + 1).astype(int)
        jobs = [_POOL.submit(narrow_flags, data, fd, int(b0), int(b1), max(1, window), sigma,
                             rfi, level, noise) for b0, b1 in zip(edges, edges[1:], strict=False)
                if b1 > b0]
        for job in jobs:
            job.result()
        ngood = max(1, nchan - int(bad.sum(axis=1).max(initial=0)))
        # the scatter a spectrum's median has from noise alone (std of a median: 1.2533 s/√n)
        floor = (1.2533 / np.sqrt(ngood)) * noise
        broad: np.ndarray = np.asarray(self._broadband(level, floor).any(axis=2))  # (n, nbl)
        if broad.any():
            rfi |= broad[:, None, :]
        if s.dilate > 0 and rfi.any():
            rfi = maximum_filter1d(rfi.view(np.uint8), size=2 * s.dilate + 1, axis=1,
                                   mode="constant").astype(bool)
        rfi &= ~bad
        return rfi

    def _broadband(self, level: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """(n, nbl, 4) True where a dump's spectrum level stands out from recent dumps by
        more than sigma x (their robust scatter, at least ``floor``: the noise alone)."""
        s = self.settings
        ref = level if self._levels is None else np.concatenate([self._levels, level])
        if ref.shape[0] < 3:
            out = np.zeros(level.shape, bool)
        else:
            centre = np.median(ref, axis=0)
            spread = MAD_SCALE * np.median(np.abs(ref - centre), axis=0)
            spread = np.maximum(spread, floor)
            out = level - centre > s.sigma * spread
        # remember only unflagged levels, so a long burst does not become the reference
        keep = level if not out.any() else np.where(out, np.median(ref, axis=0), level)
        hist = keep if self._levels is None else np.concatenate([self._levels, keep])
        self._levels = hist[-s.history:]
        return out

    def apply(self, data: np.ndarray, weights: np.ndarray) -> int:
        """Flag ``weights`` in place (FD 0 where RFI was found); return how many."""
        rfi = self.flags(data, weights["FD"])
        count = int(np.count_nonzero(rfi))
        if count:
            weights["FD"][rfi] = 0
        return count
