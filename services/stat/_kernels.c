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
};

#define TS_UPDATE(pw, cnt, mean, mx, mn)                                  \
    do {                                                                  \
        (cnt) += 1;                                                       \
        (mean) = (mean) + ((pw) - (mean)) / (float)(cnt);                 \
        if ((pw) > (mx)) (mx) = (pw);                                     \
        if ((pw) < (mn)) (mn) = (pw);                                     \
    } while (0)

#define DEFINE_ACCUMULATE(NAME, T)                                                              \
static int NAME(const struct acc_args *a)                                                       \
{                                                                                               \
    const T *raw = (const T *)a->raw;                                                           \
    const int64_t npkt = a->npkt, unchan = a->unchan, unsamp = a->unsamp, width = 2 * unchan;   \
    const int64_t spt = a->spt, cpf = a->cpf, nrebin = a->nrebin, ndat = a->ndat_ds;            \
    const int64_t last = nrebin - 1, off = a->hist_offset;                                      \
    const int64_t cmin = a->code_min, cmax = a->code_max;                                       \
    const int any_mask = (int)a->any_mask;                                                      \
    const int one_bin = spt % unsamp == 0;                                                      \
    float *xs = malloc(sizeof(float) * (size_t)(unsamp * width));                               \
    float *pw_s = malloc(sizeof(float) * (size_t)(unsamp * unchan));                            \
    int64_t *pkt_count = malloc(sizeof(int64_t) * (size_t)npkt);                                \
    if (!xs || !pw_s || !pkt_count) {                                                           \
        free(xs); free(pw_s); free(pkt_count);                                                  \
        return -1;                                                                              \
    }                                                                                           \
    for (int64_t p = 0; p < npkt; p++) pkt_count[p] = a->nsamp_chan[p * unchan];                \
    for (int64_t h = 0; h < a->nheap; h++) {                                                    \
        const int64_t tbase = (a->heap0 + h) * unsamp;                                          \
        const int64_t tb = tbase / spt;                                                         \
        const int64_t xb = any_mask ? tb : 0;                                                   \
        int64_t tc = a->ts_cnt[tb], uc = a->tsx_cnt[xb];                                        \
        float tm = a->ts_mean[tb], tx = a->ts_max[tb], tn = a->ts_min[tb];                      \
        float um = a->tsx_mean[xb], ux = a->tsx_max[xb], un = a->tsx_min[xb];                   \
        for (int64_t p = 0; p < npkt; p++) {                                                    \
            if (!a->valid[h * npkt + p]) continue;                                              \
            const float f = a->factors[h * npkt + p];                                           \
            const int64_t c0 = p * unchan;                                                      \
            const T *pk = raw + (((h * npkt + p) * 2 + a->pol) * unchan) * unsamp * 2;          \
            const int64_t nbefore = pkt_count[p];                                               \
            pkt_count[p] = nbefore + unsamp;                                                    \
            /* scaled samples, (samp, chan*2 + dim), and their power, (samp, chan) */           \
            for (int64_t ci = 0; ci < unchan; ci++) {                                           \
                const T *src = pk + ci * unsamp * 2;                                            \
                for (int64_t s = 0; s < unsamp; s++) {                                          \
                    xs[s * width + 2 * ci] = (float)src[2 * s] * f;                             \
                    xs[s * width + 2 * ci + 1] = (float)src[2 * s + 1] * f;                     \
                }                                                                               \
            }                                                                                   \
            for (int64_t s = 0; s < unsamp; s++) {                                              \
                const float *x = xs + s * width;                                                \
                float *q = pw_s + s * unchan;                                                   \
                for (int64_t ci = 0; ci < unchan; ci++) {                                       \
                    const float x0 = x[2 * ci], x1 = x[2 * ci + 1];                             \
                    const float a0 = x0 * x0, a1 = x1 * x1;                                     \
                    q[ci] = a0 + a1;                                                            \
                }                                                                               \
            }                                                                                   \
            /* Welford per (chan, dim), in time order */                                        \
            float *restrict wm = a->wmean + 2 * c0;                                             \
            float *restrict wq = a->wm2 + 2 * c0;                                               \
            for (int64_t s = 0; s < unsamp; s++) {                                              \
                const float nf = (float)(nbefore + s + 1);                                      \
                const float *restrict x = xs + s * width;                                       \
                for (int64_t j = 0; j < width; j++) {                                           \
                    const float m0 = wm[j];                                                     \
                    const float d = x[j] - m0;                                                  \
                    const float m = m0 + d / nf;                                                \
                    const float e = x[j] - m;                                                   \
                    const float g = e * d;                                                      \
                    wm[j] = m;                                                                  \
                    wq[j] = wq[j] + g;                                                          \
                }                                                                               \
            }                                                                                   \
            /* power sum and maximum per channel, in time order */                              \
            float *restrict ps = a->psum + c0;                                                  \
            float *restrict pm = a->pmax + c0;                                                  \
            for (int64_t s = 0; s < unsamp; s++) {                                              \
                const float *restrict q = pw_s + s * unchan;                                    \
                for (int64_t ci = 0; ci < unchan; ci++) {                                       \
                    ps[ci] = ps[ci] + q[ci];                                                    \
                    pm[ci] = q[ci] > pm[ci] ? q[ci] : pm[ci];                                   \
                }                                                                               \
            }                                                                                   \
            /* histograms and clipping, on the raw integers */                                  \
            for (int64_t ci = 0; ci < unchan; ci++) {                                           \
                const int64_t c = c0 + ci;                                                      \
                const int msk = a->mask[c];                                                     \
                const T *src = pk + ci * unsamp * 2;                                            \
                int64_t k0 = 0, k1 = 0;                                                         \
                for (int64_t s = 0; s < unsamp; s++) {                                          \
                    const int64_t r0 = src[2 * s], r1 = src[2 * s + 1];                         \
                    k0 += (r0 == cmin) | (r0 == cmax);                                          \
                    k1 += (r1 == cmin) | (r1 == cmax);                                          \
                    const int64_t b0 = r0 + 128, b1 = r1 + 128;                                 \
                    const int64_t q0 = b0 < 0 ? 0 : (b0 > last ? last : b0);                    \
                    const int64_t q1 = b1 < 0 ? 0 : (b1 > last ? last : b1);                    \
                    const int o0 = b0 < 1 || b0 >= last, o1 = b1 < 1 || b1 >= last;             \
                    a->rh2[q0 * nrebin + q1] += 1;                                              \
                    if (o0) a->hist_i[r0 + off] += 1;                                           \
                    if (o1) a->hist_q[r1 + off] += 1;                                           \
                    if (msk) {                                                                  \
                        a->rh2_m[q0 * nrebin + q1] += 1;                                        \
                        if (o0) a->hist_mi[r0 + off] += 1;                                      \
                        if (o1) a->hist_mq[r1 + off] += 1;                                      \
                    }                                                                           \
                }                                                                               \
                a->clip_i[c] += k0;                                                             \
                a->clip_q[c] += k1;                                                             \
            }                                                                                   \
            /* spectrogram and timeseries, heap -> channel -> sample */                         \
            for (int64_t ci = 0; ci < unchan; ci++) {                                           \
                const int64_t c = c0 + ci;                                                      \
                const int64_t fbin = c / cpf;                                                   \
                const int ex = any_mask && !a->mask[c];                                         \
                if (one_bin) {                                                                  \
                    float sp = a->spec[fbin * ndat + tb];                                       \
                    for (int64_t s = 0; s < unsamp; s++) {                                      \
                        const float pw = pw_s[s * unchan + ci];                                 \
                        sp = sp + pw;                                                           \
                        TS_UPDATE(pw, tc, tm, tx, tn);                                          \
                        if (ex) TS_UPDATE(pw, uc, um, ux, un);                                  \
                    }                                                                           \
                    a->spec[fbin * ndat + tb] = sp;                                             \
                } else {                                                                        \
                    for (int64_t s = 0; s < unsamp; s++) {                                      \
                        const float pw = pw_s[s * unchan + ci];                                 \
                        const int64_t t = (tbase + s) / spt;                                    \
                        a->spec[fbin * ndat + t] = a->spec[fbin * ndat + t] + pw;               \
                        TS_UPDATE(pw, a->ts_cnt[t], a->ts_mean[t], a->ts_max[t], a->ts_min[t]); \
                        if (ex) TS_UPDATE(pw, a->tsx_cnt[t], a->tsx_mean[t], a->tsx_max[t],     \
                                          a->tsx_min[t]);                                       \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        if (one_bin) {                                                                          \
            a->ts_cnt[tb] = tc; a->ts_mean[tb] = tm; a->ts_max[tb] = tx; a->ts_min[tb] = tn;    \
            if (any_mask) {                                                                     \
                a->tsx_cnt[tb] = uc; a->tsx_mean[tb] = um;                                      \
                a->tsx_max[tb] = ux; a->tsx_min[tb] = un;                                       \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    free(xs); free(pw_s); free(pkt_count);                                                      \
    return 0;                                                                                   \
}

DEFINE_ACCUMULATE(accumulate_i8, int8_t)
DEFINE_ACCUMULATE(accumulate_i16, int16_t)

/* Add one polarisation of a run of heaps; nbit 8 or 16.  0 on success, -1 out of memory. */
int stat_accumulate(const struct acc_args *a, int64_t nbit)
{
    return nbit == 8 ? accumulate_i8(a) : accumulate_i16(a);
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
