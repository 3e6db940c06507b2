/* dis_resample.c — DIS's image pyramid (area averaging) and the bilinear
 * upsampling of the flow from one scale to the next, in OpenCV's
 * conventions so that glocal and cv2.DISOpticalFlow see the same pyramid
 * (dis.c's header comment gives the algorithm; dis_private.h the calls). */
#include <math.h>

#include "motion/dis_private.h"

/* Area-averaging weights from ss source samples to ds <= ss (OpenCV's
 * INTER_AREA): destination d covers [d s, (d + 1) s), s = ss / ds, and each
 * source sample weighs its overlap; slivers under 1e-3 are dropped as
 * OpenCV does. first[d] is the first sample, wt[d * k ...] the k weights. */
static void area_weights(int ss, int ds, int k, int *first, float *wt)
{
    double scale = (double)ss / ds;
    for (int d = 0; d < ds; d++) {
        double a = d * scale, b = a + scale;
        if (b > ss) b = ss;
        int s0 = (int)floor(a);
        first[d] = s0;
        for (int j = 0; j < k; j++) {
            int s = s0 + j;
            double o = fmin(b, s + 1.0) - fmax(a, (double)s);
            wt[d * k + j] = (s < ss && o > 1e-3) ? (float)(o / (b - a)) : 0.f;
        }
    }
}

/* One row of an exact 2x or 4x reduction: means of f x f blocks of the f
 * rows at s (stride sw), rounded when round (see dis_area_resize). */
MOTION_KERNEL
static void area_whole_row(const float *restrict s, int sw, float *restrict d, int dw, int f,
                           int round)
{
    if (f == 2) {
        const float *restrict s1 = s + sw;
        for (int x = 0; x < dw; x++)
            d[x] = 0.25f * ((s[2 * x] + s[2 * x + 1]) + (s1[2 * x] + s1[2 * x + 1]));
    } else {
        for (int x = 0; x < dw; x++) {
            float a = 0;
            for (int j = 0; j < 4; j++)
                a += (s[j * sw + 4 * x] + s[j * sw + 4 * x + 1]) +
                     (s[j * sw + 4 * x + 2] + s[j * sw + 4 * x + 3]);
            d[x] = a * (1.f / 16);
        }
    }
    if (round && f == 2)
        for (int x = 0; x < dw; x++) d[x] = floorf(d[x] + 0.5f);
    else if (round)
        for (int x = 0; x < dw; x++) d[x] = rintf(d[x]);
}

/* dst (dw x dh) = area average of src (sw x sh), dw <= sw, dh <= sh. With
 * round, to whole grey levels as OpenCV's 8-bit pyramid: halves up at an
 * exact halving (its (a + b + c + d + 2) >> 2), else to nearest even (its
 * saturate_cast). */
int dis_area_resize(const float *src, int sw, int sh, float *dst, int dw, int dh, int round)
{
    int kx = (int)ceil((double)sw / dw) + 1, ky = (int)ceil((double)sh / dh) + 1;
    int *fx = gl_malloc(sizeof(int) * (size_t)(dw + dh));
    float *wx = gl_malloc(sizeof(float) * ((size_t)dw * kx + (size_t)dh * ky));
    float *row = gl_malloc(sizeof(float) * (size_t)dw);
    if (!fx || !wx || !row) {
        gl_free(row);
        gl_free(wx);
        gl_free(fx);
        return GL_ENOMEM;
    }
    int *fy = fx + dw;
    float *wy = wx + (size_t)dw * kx;
    if ((sw == 2 * dw && sh == 2 * dh) || (sw == 4 * dw && sh == 4 * dh)) {
        for (int y = 0; y < dh; y++)
            area_whole_row(src + (size_t)y * (sw / dw) * sw, sw, dst + (size_t)y * dw, dw, sw / dw,
                           round);
        gl_free(row);
        gl_free(wx);
        gl_free(fx);
        return 0;
    }
    area_weights(sw, dw, kx, fx, wx);
    area_weights(sh, dh, ky, fy, wy);
    for (int y = 0; y < dh; y++) {
        float *d = dst + (size_t)y * dw;
        for (int x = 0; x < dw; x++) d[x] = 0;
        for (int j = 0; j < ky; j++) {
            float a = wy[y * ky + j];
            if (a == 0) continue;
            const float *s = src + (size_t)(fy[y] + j) * sw;
            for (int x = 0; x < dw; x++) {
                float acc = 0;
                for (int i = 0; i < kx; i++) {
                    int xs = fx[x] + i;
                    if (xs < sw) acc += wx[x * kx + i] * s[xs];
                }
                row[x] = acc;
            }
            for (int x = 0; x < dw; x++) d[x] += a * row[x];
        }
        if (round && sw == 2 * dw && sh == 2 * dh)
            for (int x = 0; x < dw; x++) d[x] = floorf(d[x] + 0.5f);
        else if (round)
            for (int x = 0; x < dw; x++) d[x] = rintf(d[x]);
    }
    gl_free(row);
    gl_free(wx);
    gl_free(fx);
    return 0;
}

/* Bilinear resampling with pixel centres aligned (OpenCV's INTER_LINEAR:
 * source x = (d + 0.5) ss / ds - 0.5, clamped to the edge), times `scale`:
 * how a flow moves to a finer scale, in that scale's pixels. As OpenCV,
 * rows are interpolated horizontally first, then blended vertically. */
static void linear_tab(int ss, int ds, int *o, float *a)
{
    double sc = (double)ss / ds;
    for (int d = 0; d < ds; d++) {
        float f = (float)((d + 0.5) * sc - 0.5);
        int s = (int)floorf(f);
        f -= s;
        if (s < 0) {
            s = 0;
            f = 0;
        }
        if (s >= ss - 1) {
            s = ss - 1;
            f = 0;
        }
        o[d] = s;
        a[d] = f;
    }
}

typedef struct {
    const float *src[2];
    float *dst[2];
    float *rows;  /* per block of output rows: 2 planes x 2 source rows of dw */
    long grain;   /* output rows per block */
    int sw, sh, dw, dh, factor; /* factor: dw / sw when a whole 2 or 4, else 0 */
    float scale;
    const int *xo, *yo;
    const float *xa, *ya;
} upsample_ctx;

/* Interior groups of an exact 2x or 4x enlargement of a row: output f i + k
 * blends source i + o_k and i + o_k + 1 with the same weight for every i,
 * so the loop vectorises. */
DIS_INLINE void hexpand_whole(const float *restrict t, float *restrict d, int sw, int f,
                              const int *restrict o, const float *restrict a)
{
    for (int i = 1; i < sw - 1; i++)
        for (int k = 0; k < f; k++) {
            int j = i + o[k];
            d[f * i + k] = t[j] * (1 - a[k]) + t[j + 1] * a[k];
        }
}

/* One source row interpolated horizontally to dw samples. */
MOTION_KERNEL
static void upsample_hz(const upsample_ctx *c, const float *t, float *d)
{
    int sw = c->sw, dw = c->dw, f = c->factor;
    int lo = dw, hi = dw; /* the outputs hexpand_whole did: [lo, hi) */
    if (f && sw > 2) {
        int o[4];
        float a[4];
        for (int k = 0; k < f; k++) {
            o[k] = c->xo[f + k] - 1; /* from the group of i = 1 */
            a[k] = c->xa[f + k];
        }
        if (f == 2) hexpand_whole(t, d, sw, 2, o, a);
        else hexpand_whole(t, d, sw, 4, o, a);
        lo = f;
        hi = f * (sw - 1);
    }
    for (int x = 0; x < dw; x++) {
        if (x == lo) x = hi;
        if (x >= dw) break;
        int xo = c->xo[x], x1 = xo + 1 < sw ? xo + 1 : xo;
        d[x] = t[xo] * (1 - c->xa[x]) + t[x1] * c->xa[x];
    }
}

MOTION_KERNEL
static void upsample_vt(int n, float sc, float g, float f, const float *restrict r0,
                        const float *restrict r1, float *restrict d)
{
    for (int x = 0; x < n; x++) d[x] = sc * (r0[x] * g + r1[x] * f);
}

/* Output rows [begin, end): the two source rows each needs, interpolated
 * horizontally (kept while the next output rows use them), blended. */
static int upsample_range(void *vctx, long begin, long end)
{
    const upsample_ctx *c = vctx;
    int dw = c->dw;
    float *rows = c->rows + (size_t)(begin / c->grain) * 4 * dw;
    int have[2] = { -1, -1 }; /* the source row in each slot */
    for (long y = begin; y < end; y++) {
        int s = c->yo[y], s1 = s + 1 < c->sh ? s + 1 : s, need[2] = { s, s1 };
        for (int k = 0; k < 2; k++) {
            int slot = need[k] & 1;
            if (have[slot] == need[k]) continue;
            for (int p = 0; p < 2; p++)
                upsample_hz(c, c->src[p] + (size_t)need[k] * c->sw,
                            rows + (size_t)(2 * p + slot) * dw);
            have[slot] = need[k];
        }
        for (int p = 0; p < 2; p++)
            upsample_vt(dw, c->scale, 1 - c->ya[y], c->ya[y], rows + (size_t)(2 * p + (s & 1)) * dw,
                        rows + (size_t)(2 * p + (s1 & 1)) * dw, c->dst[p] + (size_t)y * dw);
    }
    return 0;
}

/* du, dv (dw x dh) = scale * bilinear(su, sv (sw x sh)). */
int dis_upsample(const float *su, const float *sv, int sw, int sh, float *du, float *dv, int dw,
                 int dh, float scale)
{
    int nt = gl_num_threads() > 1 && (long)dw * dh >= DIS_PAR_BIG_PIXELS ? gl_num_threads() : 1;
    int *o = gl_malloc(sizeof(int) * (size_t)(dw + dh));
    float *a = gl_malloc(sizeof(float) * ((size_t)dw + dh + (size_t)4 * dw * nt));
    if (!o || !a) {
        gl_free(a);
        gl_free(o);
        return GL_ENOMEM;
    }
    linear_tab(sw, dw, o, a);
    linear_tab(sh, dh, o + dw, a + dw);
    upsample_ctx c = { .src = { su, sv }, .dst = { du, dv }, .rows = a + dw + dh, .grain = dh,
                       .sw = sw, .sh = sh, .dw = dw, .dh = dh,
                       .factor = dw == 2 * sw ? 2 : dw == 4 * sw ? 4 : 0, .scale = scale,
                       .xo = o, .yo = o + dw, .xa = a, .ya = a + dw };
    int rc;
    if (nt > 1) {
        c.grain = (dh + nt - 1) / nt;
        rc = gl_parallel_for(dh, c.grain, upsample_range, &c);
    } else {
        rc = upsample_range(&c, 0, dh);
    }
    gl_free(a);
    gl_free(o);
    return rc;
}
