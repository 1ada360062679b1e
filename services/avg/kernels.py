"""The flagger's per-spectrum kernel in numba: background, MAD threshold, in one pass.

numpy's medians along an axis and scipy's ``median_filter`` cost about 2 s per dump of
2080 baselines x 256 channels x 4 polarisations (benchmarks/avg_throughput.py); this kernel
does the work per spectrum without allocating: medians by in-place selection, the
background as the medians of consecutive ``window``-channel blocks joined by straight lines
(a running median sampled every ``window`` channels), two selections per channel in all.
Semantics as :mod:`services.avg.flagger` documents.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _select(buf: np.ndarray, n: int, k: int) -> float:
    """The k-th smallest of ``buf[:n]`` (reorders ``buf[:n]``): Hoare's selection."""
    lo, hi = 0, n - 1
    while lo < hi:
        pivot = buf[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return buf[k]


@njit(cache=True, nogil=True)
def _median(buf: np.ndarray, n: int) -> float:
    """Median of ``buf[:n]`` (reorders it); 0 when n is 0."""
    if n == 0:
        return 0.0
    if n <= 32:  # a block: insertion sort beats selection
        for i in range(1, n):
            v = buf[i]
            j = i - 1
            while j >= 0 and buf[j] > v:
                buf[j + 1] = buf[j]
                j -= 1
            buf[j + 1] = v
        return buf[n // 2] if n % 2 else 0.5 * (buf[n // 2 - 1] + buf[n // 2])
    upper = _select(buf, n, n // 2)
    if n % 2:
        return upper
    lower = buf[0]
    for i in range(1, n // 2):  # the largest of the lower half (all <= upper after selection)
        if buf[i] > lower:
            lower = buf[i]
    return 0.5 * (lower + upper)


@njit(cache=True, nogil=True)
def narrow_flags(data: np.ndarray, fd: np.ndarray, bl0: int, bl1: int, window: int,
                 sigma: float, flags: np.ndarray, level: np.ndarray, noise: np.ndarray) -> None:
    """For each spectrum ``|data[d, :, b, p]|`` of baselines ``bl0 <= b < bl1`` (input
    flags: ``fd[d, :, b] == 0``): the background (medians of the unflagged channels of
    consecutive ``window``-channel blocks, joined by straight lines), the level (median of
    the block medians) into ``level[d, b, p]``, the noise (1.4826 x the median absolute
    residual of the unflagged channels, every ``nchan // 64``-th one) into
    ``noise[d, b, p]``, and
    ``flags[d, c, b] |= residual > sigma * noise`` (any polarisation)."""
    ndump, nchan, _nbl, npol = data.shape
    nblock = max(1, nchan // window)
    stride = max(1, nchan // 64)  # the noise from at most ~64 channels: a quarter of the cost
    amp = np.empty(nchan, np.float32)
    resid = np.empty(nchan, np.float32)
    tmp = np.empty(nchan, np.float32)
    centre = np.empty(nblock, np.float32)
    value = np.empty(nblock, np.float32)
    for d in range(ndump):
        for bl in range(bl0, bl1):
            for p in range(npol):
                for c in range(nchan):  # |V| without hypot's overflow care (5x faster)
                    v = data[d, c, bl, p]
                    amp[c] = np.sqrt(v.real * v.real + v.imag * v.imag)
                nvalid = 0
                for k in range(nblock):  # the last block takes the channels left over
                    c0 = k * window
                    c1 = nchan if k == nblock - 1 else c0 + window
                    n = 0
                    for c in range(c0, c1):
                        if fd[d, c, bl]:
                            tmp[n] = amp[c]
                            n += 1
                    if n:
                        value[nvalid] = _median(tmp, n)
                        centre[nvalid] = 0.5 * (c0 + c1 - 1)
                        nvalid += 1
                for k in range(nvalid):
                    tmp[k] = value[k]
                level[d, bl, p] = _median(tmp, nvalid)
                k = 0
                ngood = 0
                for c in range(nchan):
                    if nvalid <= 1 or c <= centre[0]:
                        bg = value[0] if nvalid else 0.0
                    elif c >= centre[nvalid - 1]:
                        bg = value[nvalid - 1]
                    else:
                        while centre[k + 1] < c:
                            k += 1
                        t = (c - centre[k]) / (centre[k + 1] - centre[k])
                        bg = value[k] + t * (value[k + 1] - value[k])
                    if fd[d, c, bl]:
                        resid[c] = amp[c] - bg
                        if c % stride == 0:
                            tmp[ngood] = abs(resid[c])
                            ngood += 1
                    else:
                        resid[c] = 0.0
                nz = max(np.float32(1.4826) * np.float32(_median(tmp, ngood)),
                         np.float32(1e-30))
                noise[d, bl, p] = nz
                thr = sigma * nz
                for c in range(nchan):
                    if resid[c] > thr:
                        flags[d, c, bl] = True
