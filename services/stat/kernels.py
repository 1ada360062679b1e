"""numba kernels of the statistics computation (see :mod:`services.stat.compute`).

The loops reproduce SKA PST ``StatComputer`` bit for bit: float32 arithmetic in the reference's
order (heap -> packet/channel ascending -> sample), a float32 reciprocal of the packet scale
applied as a multiply, float32 Welford per channel, float32 running means for the timeseries,
and the Chan et al. combination of the channels with its float64 delta^2 term.
Counters are int64.  Compiled with ``cache=True``; no fastmath (it would change the numbers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}


@njit(inline="always", **_JIT)
def _ts_update(pw, cnt, mean, mx, mn):
    cnt += 1
    mean = mean + (pw - mean) / np.float32(cnt)
    if pw > mx:
        mx = pw
    if pw < mn:
        mn = pw
    return cnt, mean, mx, mn


@njit(inline="always", **_JIT)
def _rebin(r, last):
    b = r + 128
    return 0 if b < 0 else (last if b > last else b)


@njit(inline="always", **_JIT)
def _is_clipped(r, code_min, code_max):
    return 1 if (r == code_min or r == code_max) else 0


@njit(**_JIT)
def accumulate(raw, factors, valid, pol, heap0, samples_per_tbin, chans_per_fbin, mask, any_mask,
               hist_offset, code_min, code_max, nrebin,
               nsamp_chan, wmean, wm2, psum, pmax, clipped,
               hist, rhist2, hist_m, rhist2_m,
               spec, ts_max, ts_min, ts_mean, ts_cnt, tsx_max, tsx_min, tsx_mean, tsx_cnt):
    """Add polarisation ``pol`` of ``raw`` (nheap, packets, 2, udp_nchan, udp_nsamp, 2).

    Everything of one pol is independent of the other, so the two pols can run on two
    threads (this function releases the GIL and writes only ``[pol]`` slices of the state).
    ``heap0`` is the index of ``raw``'s first heap within the segment; ``nsamp_chan`` (valid
    samples per channel before this call) is only read here.  Welford state ``wmean``/``wm2``
    is laid out (pol, chan*2 + dim).  ``*_m`` histograms collect masked channels only
    (excised = full - masked); the rebinned 1-D histograms are sums of the 2-D ones, and the
    1-D histograms collect only the codes the rebinned bins do not hold exactly (``r + 128``
    outside ``[1, nrebin - 2]``): the caller adds the rebinned marginals for the others.
    ``tsx_*`` (excised timeseries) is updated only when ``any_mask``.  Same numbers as the C
    kernel ``_kernels.c``.
    """
    nheap, npkt, _npol, unchan, unsamp, _ = raw.shape
    last = nrebin - 1
    width = 2 * unchan
    scratch = np.empty((unsamp, width), np.float32)
    pkt_count = np.empty(npkt, np.int64)
    for p in range(npkt):
        pkt_count[p] = nsamp_chan[p * unchan]
    heap_in_one_bin = samples_per_tbin % unsamp == 0
    hist_i = hist[pol, 0]
    hist_q = hist[pol, 1]
    rh2 = rhist2[pol]
    hist_mi = hist_m[pol, 0]
    hist_mq = hist_m[pol, 1]
    rh2_m = rhist2_m[pol]
    for h in range(nheap):
        tbase = (heap0 + h) * unsamp
        tb = tbase // samples_per_tbin
        # timeseries state of the heap's bin, used when the whole heap falls in one bin
        tc = ts_cnt[pol, tb]
        tm = ts_mean[pol, tb]
        tx = ts_max[pol, tb]
        tn = ts_min[pol, tb]
        xb = tb if any_mask else 0
        uc = tsx_cnt[pol, xb]
        um = tsx_mean[pol, xb]
        ux = tsx_max[pol, xb]
        un = tsx_min[pol, xb]
        for p in range(npkt):
            if not valid[h, p]:
                continue
            f = factors[h, p]
            c0 = p * unchan
            nbefore = pkt_count[p]
            pkt_count[p] = nbefore + unsamp
            # Welford per (chan, dim), vectorised across the packet's channels
            for ci in range(unchan):
                for s in range(unsamp):
                    scratch[s, 2 * ci] = np.float32(raw[h, p, pol, ci, s, 0]) * f
                    scratch[s, 2 * ci + 1] = np.float32(raw[h, p, pol, ci, s, 1]) * f
            wm = wmean[pol, 2 * c0:2 * c0 + width]
            wq = wm2[pol, 2 * c0:2 * c0 + width]
            for s in range(unsamp):
                nf = np.float32(nbefore + s + 1)
                for j in range(width):
                    x = scratch[s, j]
                    m = wm[j]
                    d = x - m
                    m = m + d / nf
                    wm[j] = m
                    wq[j] = wq[j] + (x - m) * d
            for ci in range(unchan):
                c = c0 + ci
                fbin = c // chans_per_fbin
                msk = mask[c]
                ps = psum[pol, c]
                pm = pmax[pol, c]
                sp = spec[pol, fbin, tb]
                k0 = 0
                k1 = 0
                for s in range(unsamp):
                    a0 = np.int64(raw[h, p, pol, ci, s, 0])
                    a1 = np.int64(raw[h, p, pol, ci, s, 1])
                    x0 = np.float32(a0) * f
                    x1 = np.float32(a1) * f
                    pw = x0 * x0 + x1 * x1
                    ps = ps + pw
                    pm = pw if pw > pm else pm
                    k0 += _is_clipped(a0, code_min, code_max)
                    k1 += _is_clipped(a1, code_min, code_max)
                    q0 = _rebin(a0, last)
                    q1 = _rebin(a1, last)
                    o0 = a0 + 128 < 1 or a0 + 128 >= last
                    o1 = a1 + 128 < 1 or a1 + 128 >= last
                    rh2[q0, q1] += 1
                    if o0:
                        hist_i[a0 + hist_offset] += 1
                    if o1:
                        hist_q[a1 + hist_offset] += 1
                    if msk:
                        rh2_m[q0, q1] += 1
                        if o0:
                            hist_mi[a0 + hist_offset] += 1
                        if o1:
                            hist_mq[a1 + hist_offset] += 1
                    if heap_in_one_bin:
                        sp = sp + pw
                        tc, tm, tx, tn = _ts_update(pw, tc, tm, tx, tn)
                        if any_mask and not msk:
                            uc, um, ux, un = _ts_update(pw, uc, um, ux, un)
                    else:
                        t = (tbase + s) // samples_per_tbin
                        spec[pol, fbin, t] += pw
                        (ts_cnt[pol, t], ts_mean[pol, t], ts_max[pol, t],
                         ts_min[pol, t]) = _ts_update(pw, ts_cnt[pol, t], ts_mean[pol, t],
                                                      ts_max[pol, t], ts_min[pol, t])
                        if any_mask and not msk:
                            (tsx_cnt[pol, t], tsx_mean[pol, t], tsx_max[pol, t],
                             tsx_min[pol, t]) = _ts_update(pw, tsx_cnt[pol, t], tsx_mean[pol, t],
                                                           tsx_max[pol, t], tsx_min[pol, t])
                psum[pol, c] = ps
                pmax[pol, c] = pm
                if heap_in_one_bin:
                    spec[pol, fbin, tb] = sp
                clipped[pol, 0, c] += k0
                clipped[pol, 1, c] += k1
        if heap_in_one_bin:
            ts_cnt[pol, tb] = tc
            ts_mean[pol, tb] = tm
            ts_max[pol, tb] = tx
            ts_min[pol, tb] = tn
            if any_mask:
                tsx_cnt[pol, tb] = uc
                tsx_mean[pol, tb] = um
                tsx_max[pol, tb] = ux
                tsx_min[pol, tb] = un


@njit(**_JIT)
def combine_channels(nsamp_chan, wmean, wm2, include):
    """Pooled mean and sample variance per (pol, dim) over the channels where ``include``.

    SKA PST 0.3.9+ order: the Chan et al. update in channel order, float32 state, the
    delta^2 term in float64.  Returns (mean, variance), float32 arrays shaped (npol, ndim).
    """
    npol, ndim, nchan = wmean.shape
    mean = np.zeros((npol, ndim), np.float32)
    var = np.zeros((npol, ndim), np.float32)
    for pol in range(npol):
        for k in range(ndim):
            big_m = np.float32(0.0)
            big_m2 = np.float32(0.0)
            big_n = np.int64(0)
            for c in range(nchan):
                nc = nsamp_chan[c]
                if nc == 0 or not include[c]:
                    continue
                mc = wmean[pol, k, c]
                delta = mc - big_m
                new_n = big_n + nc
                fn = np.float32(big_n)
                fnc = np.float32(nc)
                fnew = np.float32(new_n)
                big_m = (fn * big_m + fnc * mc) / fnew
                term = np.float64(delta) * np.float64(delta) * np.float64(fn) * np.float64(fnc)
                term = term / np.float64(fnew)
                big_m2 = np.float32(np.float64(big_m2) + (np.float64(wm2[pol, k, c]) + term))
                big_n = new_n
            mean[pol, k] = big_m
            if big_n > 0:
                var[pol, k] = big_m2 / np.float32(big_n - 1)
    return mean, var


@njit(**_JIT)
def finish_channels(nsamp_chan, wmean, wm2, psum):
    """Per-channel (variance, mean spectral power): M2/(n-1) and sum/n, 0 where n == 0."""
    npol, ndim, nchan = wmean.shape
    var = np.zeros((npol, ndim, nchan), np.float32)
    power = np.zeros((npol, nchan), np.float32)
    for c in range(nchan):
        nc = nsamp_chan[c]
        if nc == 0:
            continue
        fn1 = np.float32(nc - 1)
        fn = np.float32(nc)
        for pol in range(npol):
            for k in range(ndim):
                var[pol, k, c] = wm2[pol, k, c] / fn1
            power[pol, c] = psum[pol, c] / fn
    return var, power
