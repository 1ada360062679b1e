/* Statistics kernels of services.stat (SKA PST STAT), compiled on first use by ckernels.py.
 *
 * Same arithmetic, in the same order, as services/stat/kernels.py (the numba fallback): float32
 * throughout, float32 Welford per channel in time order, the float32 reciprocal of the packet
 * scale applied as a multiply, float32 running means for the timeseries in heap -> channel ->
 * sample order, and the Chan et al. channel combination with its float64 delta^2 term.
 * Must be compiled without fast-math and with -ffp-contract=off (no fused multiply-add), or
 * the numbers change.
 *
 * One call handles one polarisation of a run of heaps; the two pols share no state, so two
 * threads may run concurrently on the two pols.  Counters are int64.  The 1-D histograms only
 * collect the codes that the rebinned histogram does not hold exactly (its first and last bin
 * and beyond); the caller adds the rebinned marginals for the rest.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

struct acc_args {
    const void *raw;        /* (nheap, npkt, 2, unchan, unsamp, 2) int8 or int16 */
    const float *factors;   /* (nheap, npkt) */
    const uint8_t *valid;   /* (nheap, npkt) */
    const uint8_t *mask;    /* (nchan) */
    const int64_t *nsamp_chan; /* (nchan) valid samples per channel before this call */
    int64_t nheap, npkt, unchan, unsamp, pol, heap0, spt, cpf, any_mask;
    int64_t hist_offset, code_min, code_max, nrebin, ndat_ds;
    /* state of polarisation pol */
    float *wmean, *wm2;     /* (nchan, 2) */
    float *psum, *pmax;     /* (nchan) */
    int64_t *clip_i, *clip_q; /* (nchan) */
    int64_t *hist_i, *hist_q, *hist_mi, *hist_mq; /* (2^nbit); masked ones only if any_mask */
    int64_t *rh2, *rh2_m;   /* (nrebin, nrebin) */
    float *spec;            /* (nchan_ds, ndat_ds) */
    float *ts_max, *ts_min, *ts_mean; int64_t *ts_cnt;     /* (ndat_ds) */
    float *tsx_max, *tsx_min, *tsx_mean; int64_t *tsx_cnt; /* (ndat_ds) if any_mask */
    int64_t *joint, *joint_m; /* 8-bit: (65536) counts of each (I, Q) byte pair, all channels
                                 and masked ones; the rebinned and 1-D histograms are then
                                 left to the caller */
};

#define LANES 8
#define GROUP_FLOATS (4 << 20) /* P values of one group of heaps, at most (unless one heap) */

/* Working memory of one call. */
struct work {
    float *xs;        /* (unsamp, 2 * unchan) scaled samples of one packet */
    float *pw_s;      /* (unsamp, unchan) their power */
    int64_t *pkt_count; /* (npkt) valid samples so far of each packet's channels */
    float *pbuf;      /* (group, unsamp, nchan) power of every sample of a group of heaps */
    uint8_t *vch;     /* (group, nchan) 1 where the channel's packet is valid */
    float *streams;   /* (longest chain, LANES) timeseries chains of LANES bins, interleaved */
    int64_t group, stream_len;
    /* 32-bit working counts of the pair histogram (8-bit: a->joint; 16-bit: a->rh2 when
     * NREBIN <= MAX_REBIN32), flushed into the int64 ones before they could overflow; the
     * small table stays in the L1 cache where the int64 one would not */
    uint32_t *joint32, *joint32_m;
    int64_t *joint_out, *joint_out_m, joint_bins;
    int64_t joint_pending;         /* pairs counted since the last flush */
};
#define MAX_REBIN32 1024

/* Add the 32-bit pair counts into the int64 ones and clear them. */
static void flush_joint(const struct acc_args *a, struct work *w)
{
    for (int64_t i = 0; i < w->joint_bins; i++) {
        w->joint_out[i] += w->joint32[i];
        w->joint32[i] = 0;
    }
    if (a->any_mask)
        for (int64_t i = 0; i < w->joint_bins; i++) {
            w->joint_out_m[i] += w->joint32_m[i];
            w->joint32_m[i] = 0;
        }
    w->joint_pending = 0;
}

/* One heap: Welford, power sum and maximum, histograms and clipping; power into pbuf. */
#define SAMPLE(p, i) \
    (nbit == 8 ? (int32_t)((const int8_t *)(p))[i] : (int32_t)((const int16_t *)(p))[i])

static inline __attribute__((always_inline)) void
heap_pass(const struct acc_args *a, struct work *w, int64_t h, float *restrict pout,
          uint8_t *restrict vout, const int nbit)
{
    const char *raw = (const char *)a->raw;
    const int64_t bytes = nbit / 8;
    const int64_t npkt = a->npkt, unchan = a->unchan, unsamp = a->unsamp, width = 2 * unchan;
    const int64_t nchan = npkt * unchan;
    const int64_t nrebin = a->nrebin, last = nrebin - 1, off = a->hist_offset;
    const int32_t cmin = (int32_t)a->code_min, cmax = (int32_t)a->code_max;
    const int any_mask = (int)a->any_mask;
    const uint8_t *restrict cmask = a->mask;
    int64_t *restrict hist_i = a->hist_i, *restrict hist_q = a->hist_q;
    int64_t *restrict hist_mi = a->hist_mi, *restrict hist_mq = a->hist_mq;
    int64_t *restrict rh2 = a->rh2, *restrict rh2_m = a->rh2_m;
    float *restrict xs = w->xs, *restrict pw_s = w->pw_s;
    for (int64_t p = 0; p < npkt; p++) {
        const int64_t c0 = p * unchan;
        const int ok = a->valid[h * npkt + p] != 0;
        for (int64_t ci = 0; ci < unchan; ci++) vout[c0 + ci] = (uint8_t)ok;
        if (!ok) continue;
        const float f = a->factors[h * npkt + p];
        const char *pk = raw + bytes * ((((h * npkt + p) * 2 + a->pol) * unchan) * unsamp * 2);
        const int64_t nbefore = w->pkt_count[p];
        w->pkt_count[p] = nbefore + unsamp;
        /* scaled samples, (samp, chan*2 + dim), and their power, (samp, chan) */
        for (int64_t s = 0; s < unsamp; s++) {
            float *restrict x = xs + s * width;
            for (int64_t ci = 0; ci < unchan; ci++) {
                x[2 * ci] = (float)SAMPLE(pk, (ci * unsamp + s) * 2) * f;
                x[2 * ci + 1] = (float)SAMPLE(pk, (ci * unsamp + s) * 2 + 1) * f;
            }
        }
        for (int64_t s = 0; s < unsamp; s++) {
            const float *x = xs + s * width;
            float *q = pw_s + s * unchan;
            for (int64_t ci = 0; ci < unchan; ci++) {
                const float x0 = x[2 * ci], x1 = x[2 * ci + 1];
                const float a0 = x0 * x0, a1 = x1 * x1;
                q[ci] = a0 + a1;
            }
        }
        for (int64_t s = 0; s < unsamp; s++)
            for (int64_t ci = 0; ci < unchan; ci++)
                pout[s * nchan + c0 + ci] = pw_s[s * unchan + ci];
        /* Welford per (chan, dim), in time order */
        float *restrict wm = a->wmean + 2 * c0;
        float *restrict wq = a->wm2 + 2 * c0;
        for (int64_t s = 0; s < unsamp; s++) {
            const float nf = (float)(nbefore + s + 1);
            const float *restrict x = xs + s * width;
            for (int64_t j = 0; j < width; j++) {
                const float m0 = wm[j];
                const float d = x[j] - m0;
                const float m = m0 + d / nf;
                const float e = x[j] - m;
                const float g = e * d;
                wm[j] = m;
                wq[j] = wq[j] + g;
            }
        }
        /* power sum and maximum per channel, in time order */
        float *restrict ps = a->psum + c0;
        float *restrict pm = a->pmax + c0;
        for (int64_t s = 0; s < unsamp; s++) {
            const float *restrict q = pw_s + s * unchan;
            for (int64_t ci = 0; ci < unchan; ci++) {
                ps[ci] = ps[ci] + q[ci];
                pm[ci] = q[ci] > pm[ci] ? q[ci] : pm[ci];
            }
        }
        /* clipping, on the raw integers: a quick scan, then per channel if any */
        const int64_t npair = unchan * unsamp;
        int clip_any = 0;
        for (int64_t i = 0; i < 2 * npair; i++) {
            const int32_t r = SAMPLE(pk, i);
            clip_any |= (r == cmin) | (r == cmax);
        }
        if (clip_any) {
            for (int64_t ci = 0; ci < unchan; ci++) {
                const char *src = pk + bytes * (ci * unsamp * 2);
                int64_t k0 = 0, k1 = 0;
                for (int64_t s = 0; s < unsamp; s++) {
                    const int32_t r0 = SAMPLE(src, 2 * s), r1 = SAMPLE(src, 2 * s + 1);
                    k0 += (r0 == cmin) | (r0 == cmax);
                    k1 += (r1 == cmin) | (r1 == cmax);
                }
                a->clip_i[c0 + ci] += k0;
                a->clip_q[c0 + ci] += k1;
            }
        }
        /* histograms: 8-bit, counts of each (I, Q) byte pair; 16-bit, rebinned 2-D and the
         * 1-D codes the rebinned bins do not hold exactly */
        const int64_t mstart = any_mask ? 0 : unchan;
        if (nbit == 8) {
            const uint8_t *src = (const uint8_t *)pk;
            uint32_t *restrict joint = w->joint32, *restrict joint_m = w->joint32_m;
            for (int64_t i = 0; i < npair; i++) joint[src[2 * i] | (src[2 * i + 1] << 8)] += 1;
            w->joint_pending += npair;
            for (int64_t ci = mstart; ci < unchan; ci++) {
                if (!cmask[c0 + ci]) continue;
                const uint8_t *sc = src + ci * unsamp * 2;
                for (int64_t s = 0; s < unsamp; s++)
                    joint_m[sc[2 * s] | (sc[2 * s + 1] << 8)] += 1;
            }
            continue;
        }
        uint32_t *restrict rh32 = w->joint32;
        const uint32_t inner = last > 0 ? (uint32_t)(last - 1) : 0; /* exact bins 1 .. last-1 */
        for (int64_t i = 0; i < npair; i++) {
            const int32_t r0 = SAMPLE(pk, 2 * i), r1 = SAMPLE(pk, 2 * i + 1);
            const int32_t b0 = r0 + 128, b1 = r1 + 128;
            if (rh32 && ((uint32_t)(b0 - 1) < inner) & ((uint32_t)(b1 - 1) < inner)) {
                rh32[b0 * nrebin + b1] += 1; /* the common case: no clamping, no 1-D count */
                continue;
            }
            const int32_t q0 = b0 < 0 ? 0 : (b0 > last ? (int32_t)last : b0);
            const int32_t q1 = b1 < 0 ? 0 : (b1 > last ? (int32_t)last : b1);
            if (rh32) rh32[q0 * nrebin + q1] += 1;
            else rh2[q0 * nrebin + q1] += 1;
            if (b0 < 1 || b0 >= last) hist_i[r0 + off] += 1;
            if (b1 < 1 || b1 >= last) hist_q[r1 + off] += 1;
        }
        w->joint_pending += npair;
        for (int64_t ci = mstart; ci < unchan; ci++) {
            if (!cmask[c0 + ci]) continue;
            const char *src = pk + bytes * (ci * unsamp * 2);
            for (int64_t s = 0; s < unsamp; s++) {
                const int32_t r0 = SAMPLE(src, 2 * s), r1 = SAMPLE(src, 2 * s + 1);
                const int32_t b0 = r0 + 128, b1 = r1 + 128;
                const int32_t q0 = b0 < 0 ? 0 : (b0 > last ? (int32_t)last : b0);
                const int32_t q1 = b1 < 0 ? 0 : (b1 > last ? (int32_t)last : b1);
                if (rh32) w->joint32_m[q0 * nrebin + q1] += 1;
                else rh2_m[q0 * nrebin + q1] += 1;
                if (b0 < 1 || b0 >= last) hist_mi[r0 + off] += 1;
                if (b1 < 1 || b1 >= last) hist_mq[r1 + off] += 1;
            }
        }
    }
}

static void heap_pass_i8(const struct acc_args *a, struct work *w, int64_t h, float *pout,
                         uint8_t *vout)
{
    heap_pass(a, w, h, pout, vout, 8);
}

static void heap_pass_i16(const struct acc_args *a, struct work *w, int64_t h, float *pout,
                          uint8_t *vout)
{
    heap_pass(a, w, h, pout, vout, 16);
}

static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static int64_t max64(int64_t x, int64_t y) { return x > y ? x : y; }

/* SPECTROGRAM of heaps [h0, h0 + n): each cell summed in heap -> channel -> sample order;
 * LANES frequency bins at a time (independent sums, so the adds overlap). */
static void spectrogram(const struct acc_args *a, const struct work *w, int64_t h0, int64_t n)
{
    const int64_t nchan = a->npkt * a->unchan, unsamp = a->unsamp, cpf = a->cpf;
    const int64_t spt = a->spt, ndat = a->ndat_ds, nfbin = nchan / cpf;
    float *restrict spec = a->spec;
    for (int64_t hl = 0; hl < n; hl++) {
        const float *restrict pb = w->pbuf + hl * nchan * unsamp;
        const uint8_t *restrict vc = w->vch + hl * nchan;
        const int64_t tbase = (a->heap0 + h0 + hl) * unsamp;
        for (int64_t s0 = 0; s0 < unsamp;) {  /* runs of samples in one time bin */
            const int64_t t = (tbase + s0) / spt;
            const int64_t s1 = min64(unsamp, (t + 1) * spt - tbase);
            for (int64_t fb0 = 0; fb0 < nfbin; fb0 += LANES) {
                const int64_t nl = min64(LANES, nfbin - fb0);
                float acc[LANES];
                for (int64_t j = 0; j < nl; j++) acc[j] = spec[(fb0 + j) * ndat + t];
                if (nl == LANES) {
                    for (int64_t ci = 0; ci < cpf; ci++)
                        for (int64_t s = s0; s < s1; s++)
                            for (int64_t j = 0; j < LANES; j++) {
                                const int64_t c = (fb0 + j) * cpf + ci;
                                const float pw = pb[s * nchan + c];
                                acc[j] = acc[j] + (vc[c] ? pw : 0.0f);
                            }
                } else {
                    for (int64_t ci = 0; ci < cpf; ci++)
                        for (int64_t s = s0; s < s1; s++)
                            for (int64_t j = 0; j < nl; j++) {
                                const int64_t c = (fb0 + j) * cpf + ci;
                                const float pw = pb[s * nchan + c];
                                acc[j] = acc[j] + (vc[c] ? pw : 0.0f);
                            }
                }
                for (int64_t j = 0; j < nl; j++) spec[(fb0 + j) * ndat + t] = acc[j];
            }
            s0 = s1;
        }
    }
}

/* Running means of LANES whole bins starting at group-local sample tau0, in place (see
 * timeseries): lane j's chain is heap segment -> channel -> sample from tau0 + j * spt. */
static void timeseries_direct(const struct acc_args *a, const struct work *w, int64_t tau0,
                              int excised, float *tmax, float *tmin, float *tmean,
                              int64_t *tcnt, int64_t b0)
{
    const int64_t nchan = a->npkt * a->unchan, unsamp = a->unsamp, spt = a->spt;
    const int64_t seglen = min64(spt, unsamp), nseg = spt / seglen;
    const uint8_t *restrict cmask = a->mask;
    const float *restrict pbuf = w->pbuf;
    double cnt[LANES];
    float mean[LANES], mx[LANES], mn[LANES];
    for (int64_t j = 0; j < LANES; j++) {
        cnt[j] = (double)tcnt[b0 + j];
        mean[j] = tmean[b0 + j];
        mx[j] = tmax[b0 + j];
        mn[j] = tmin[b0 + j];
    }
    for (int64_t seg = 0; seg < nseg; seg++) {
        const float *row[LANES];
        const uint8_t *vrow[LANES];
        for (int64_t j = 0; j < LANES; j++) {
            const int64_t tau = tau0 + j * spt + seg * seglen;
            row[j] = pbuf + tau * nchan;
            vrow[j] = w->vch + (tau / unsamp) * nchan;
        }
        for (int64_t c = 0; c < nchan; c++) {
            if (excised && cmask[c]) continue;
            for (int64_t s = 0; s < seglen; s++) {
                for (int64_t j = 0; j < LANES; j++) {
                    const float pw = row[j][s * nchan + c];
                    const int ok = vrow[j][c] != 0;
                    cnt[j] = cnt[j] + (ok ? 1.0 : 0.0);
                    const float nf = (float)cnt[j];
                    const float d = pw - mean[j];
                    const float q = d / nf;
                    const float m = mean[j] + q;
                    mean[j] = ok ? m : mean[j];
                    mx[j] = ok && pw > mx[j] ? pw : mx[j];
                    mn[j] = ok && pw < mn[j] ? pw : mn[j];
                }
            }
        }
    }
    for (int64_t j = 0; j < LANES; j++) {
        tcnt[b0 + j] = (int64_t)cnt[j];
        tmean[b0 + j] = mean[j];
        tmax[b0 + j] = mx[j];
        tmin[b0 + j] = mn[j];
    }
}

/* TIMESERIES (or, with excised, TIMESERIES_RFI_EXCISED) of heaps [h0, h0 + n).  Each time
 * bin is a float32 running mean over its samples in heap -> channel -> sample order, a serial
 * chain; LANES bins run side by side: their chains are copied into interleaved streams
 * (padded with NaN, which no power value is) and advanced together. */
static void timeseries(const struct acc_args *a, struct work *w, int64_t h0, int64_t n,
                       int excised)
{
    const int64_t nchan = a->npkt * a->unchan, unsamp = a->unsamp, spt = a->spt;
    float *restrict tmax = excised ? a->tsx_max : a->ts_max;
    float *restrict tmin = excised ? a->tsx_min : a->ts_min;
    float *restrict tmean = excised ? a->tsx_mean : a->ts_mean;
    int64_t *restrict tcnt = excised ? a->tsx_cnt : a->ts_cnt;
    const uint8_t *restrict cmask = a->mask;
    float *restrict st = w->streams;
    const int64_t tfirst = (a->heap0 + h0) * unsamp;     /* first sample of the group */
    const int64_t tend = tfirst + n * unsamp;
    const int64_t b_lo = tfirst / spt, b_hi = (tend - 1) / spt;
    /* bins that never straddle a heap boundary, or span whole heaps: the chains of LANES
     * whole bins are translates of each other in pbuf, read in place */
    const int regular = unsamp % spt == 0 || spt % unsamp == 0;
    for (int64_t b0 = b_lo; b0 <= b_hi; b0 += LANES) {
        const int64_t nl = min64(LANES, b_hi - b0 + 1);
        if (regular && nl == LANES && b0 * spt >= tfirst && (b0 + LANES) * spt <= tend) {
            timeseries_direct(a, w, b0 * spt - tfirst, excised, tmax, tmin, tmean, tcnt, b0);
            continue;
        }
        int64_t len[LANES] = {0}, longest = 0;
        for (int64_t j = 0; j < nl; j++) {
            const int64_t b = b0 + j;
            const int64_t lo = max64(b * spt, tfirst), hi = min64((b + 1) * spt, tend);
            int64_t k = 0;
            for (int64_t t = lo; t < hi;) {  /* heap by heap */
                const int64_t hl = t / unsamp - (a->heap0 + h0);
                const int64_t hs = (a->heap0 + h0 + hl) * unsamp;
                const int64_t s0 = t - hs, s1 = min64(unsamp, hi - hs);
                const float *pb = w->pbuf + hl * nchan * unsamp;
                const uint8_t *vc = w->vch + hl * nchan;
                for (int64_t c = 0; c < nchan; c++) {
                    if (!vc[c] || (excised && cmask[c])) continue;
                    for (int64_t s = s0; s < s1; s++) st[(k++) * LANES + j] = pb[s * nchan + c];
                }
                t = hs + s1;
            }
            len[j] = k;
            longest = max64(longest, k);
        }
        for (int64_t j = 0; j < LANES; j++)
            for (int64_t k = j < nl ? len[j] : 0; k < longest; k++) st[k * LANES + j] = NAN;
        double cnt[LANES];
        float mean[LANES], mx[LANES], mn[LANES];
        for (int64_t j = 0; j < LANES; j++) {
            const int64_t b = j < nl ? b0 + j : b0;
            cnt[j] = (double)tcnt[b];
            mean[j] = tmean[b];
            mx[j] = tmax[b];
            mn[j] = tmin[b];
        }
        for (int64_t k = 0; k < longest; k++) {
            const float *restrict pk = st + k * LANES;
            for (int64_t j = 0; j < LANES; j++) {
                const float pw = pk[j];
                const int ok = pw == pw;
                cnt[j] = cnt[j] + (ok ? 1.0 : 0.0);
                const float nf = (float)cnt[j];
                const float d = pw - mean[j];
                const float q = d / nf;
                const float m = mean[j] + q;
                mean[j] = ok ? m : mean[j];
                mx[j] = pw > mx[j] ? pw : mx[j];
                mn[j] = pw < mn[j] ? pw : mn[j];
            }
        }
        for (int64_t j = 0; j < nl; j++) {
            tcnt[b0 + j] = (int64_t)cnt[j];
            tmean[b0 + j] = mean[j];
            tmax[b0 + j] = mx[j];
            tmin[b0 + j] = mn[j];
        }
    }
}

/* Add one polarisation of a run of heaps; nbit 8 or 16.  0 on success, -1 out of memory. */
int stat_accumulate(const struct acc_args *a, int64_t nbit)
{
    const int64_t npkt = a->npkt, unchan = a->unchan, unsamp = a->unsamp;
    const int64_t nchan = npkt * unchan, heap_floats = nchan * unsamp;
    struct work w = {0};
    /* heaps per group: LANES time bins' worth (whole bins when the group starts on a bin),
     * within the memory bound */
    int64_t group = (LANES * a->spt + unsamp - 1) / unsamp;
    group = max64(1, min64(min64(group, GROUP_FLOATS / heap_floats), a->nheap));
    w.group = group;
    w.stream_len = min64(a->spt, group * unsamp) * nchan;
    w.xs = malloc(sizeof(float) * (size_t)(unsamp * 2 * unchan));
    w.pw_s = malloc(sizeof(float) * (size_t)(unsamp * unchan));
    w.pkt_count = malloc(sizeof(int64_t) * (size_t)npkt);
    w.pbuf = malloc(sizeof(float) * (size_t)(group * heap_floats));
    w.vch = malloc((size_t)(group * nchan));
    w.streams = malloc(sizeof(float) * (size_t)(w.stream_len * LANES));
    const int eight = nbit == 8;
    const int pairs32 = eight || a->nrebin <= MAX_REBIN32;
    w.joint_bins = eight ? 65536 : a->nrebin * a->nrebin;
    w.joint_out = eight ? a->joint : a->rh2;
    w.joint_out_m = eight ? a->joint_m : a->rh2_m;
    w.joint32 = pairs32 ? calloc((size_t)w.joint_bins, sizeof(uint32_t)) : NULL;
    w.joint32_m = pairs32 && a->any_mask ? calloc((size_t)w.joint_bins, sizeof(uint32_t))
                                         : w.joint32;
    int status = -1;
    if (w.xs && w.pw_s && w.pkt_count && w.pbuf && w.vch && w.streams
        && (!pairs32 || (w.joint32 && w.joint32_m))) {
        for (int64_t p = 0; p < npkt; p++) w.pkt_count[p] = a->nsamp_chan[p * unchan];
        for (int64_t h0 = 0; h0 < a->nheap; h0 += group) {
            const int64_t n = min64(group, a->nheap - h0);
            for (int64_t hl = 0; hl < n; hl++) {
                float *pout = w.pbuf + hl * heap_floats;
                uint8_t *vout = w.vch + hl * nchan;
                if (nbit == 8) heap_pass_i8(a, &w, h0 + hl, pout, vout);
                else heap_pass_i16(a, &w, h0 + hl, pout, vout);
            }
            if (pairs32 && w.joint_pending + group * nchan * unsamp >= ((int64_t)1 << 31))
                flush_joint(a, &w);
            spectrogram(a, &w, h0, n);
            timeseries(a, &w, h0, n, 0);
            if (a->any_mask) timeseries(a, &w, h0, n, 1);
        }
        if (pairs32) flush_joint(a, &w);
        status = 0;
    }
    if (w.joint32_m != w.joint32) free(w.joint32_m);
    free(w.joint32);
    free(w.xs); free(w.pw_s); free(w.pkt_count); free(w.pbuf); free(w.vch); free(w.streams);
    return status;
}

/* Pooled mean and variance per (pol, dim) over the included channels (Chan et al., channel
 * order, float32 state, float64 delta^2 term).  wmean/wm2 are (npol, ndim, nchan). */
void stat_combine(const int64_t *nsamp_chan, const float *wmean, const float *wm2,
                  const uint8_t *include, int64_t npol, int64_t ndim, int64_t nchan,
                  float *mean, float *var)
{
    for (int64_t k = 0; k < npol * ndim; k++) {
        const float *wm = wmean + k * nchan, *wq = wm2 + k * nchan;
        float big_m = 0.0f, big_m2 = 0.0f;
        int64_t big_n = 0;
        for (int64_t c = 0; c < nchan; c++) {
            const int64_t nc = nsamp_chan[c];
            if (nc == 0 || !include[c]) continue;
            const float mc = wm[c];
            const float delta = mc - big_m;
            const int64_t new_n = big_n + nc;
            const float fn = (float)big_n, fnc = (float)nc, fnew = (float)new_n;
            const float s1 = fn * big_m, s2 = fnc * mc;
            big_m = (s1 + s2) / fnew;
            double term = (double)delta * (double)delta * (double)fn * (double)fnc;
            term = term / (double)fnew;
            const double inner = (double)wq[c] + term;
            big_m2 = (float)((double)big_m2 + inner);
            big_n = new_n;
        }
        mean[k] = big_m;
        var[k] = big_n > 0 ? big_m2 / (float)(big_n - 1) : 0.0f;
    }
}
