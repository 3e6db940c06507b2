/* DIS optical flow: Kroeger, Timofte, Dai & Van Gool, "Fast Optical Flow
 * using Dense Inverse Search", ECCV 2016 (section and equation numbers below
 * are that paper's), with the choices of OpenCV 4.x's DISOpticalFlow and
 * VariationalRefinement, the implementation glocal is measured against:
 * its presets, its coarsest-scale rule, patch mean normalisation, spatial
 * propagation in 8 fixed stripes, its densification weights and its
 * variational refinement (a DeepFlow-style energy solved by fixed-point
 * iterations around red-black SOR). See motion/flow.h for the parameters.
 *
 * Per scale s, from the coarsest to the finest (paper Algorithm 1):
 *   1. a uniform grid of patches (patch_size, patch_stride apart);
 *   2. inverse search (sec. 2.1, eq. 1-3) for each patch's displacement,
 *      started from the coarser scale's dense flow, with spatial
 *      propagation (OpenCV) of the neighbours' displacements;
 *   3. densification (sec. 2.2, eq. 4): each pixel averages the
 *      displacements of the patches covering it, weighted by
 *      1 / max(1, |I1(x + u_i) - I0(x)|);
 *   4. variational refinement (sec. 2.2, eq. 5) of the dense field;
 *   5. bilinear upsampling (x2) to the next scale.
 *
 * Speed: every image is a float32 plane (SoA). The patch kernels work a
 * patch row at a time with per-column accumulators, so an 8-pixel row is one
 * AVX2 vector; the SOR of the refinement keeps its unknowns in a red-black
 * split layout (each colour's pixels contiguous) so a colour pass reads only
 * the other colour and vectorises, and runs all of its half-iterations as
 * one wavefront over the rows (the rows in flight stay in cache). On x86-64
 * GCC also builds AVX2 clones picked at run time (target_clones), as in
 * tvl1.c. Threads (gl_parallel_for) take whole stripes of patches, rows of
 * pixels or rows of one SOR colour; nothing depends on how the work is
 * split, so the result is bit-identical for any thread count. */
#include <math.h>
#include <string.h>

#include "motion/flow.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DIS_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define DIS_KERNEL
#endif

#if defined(__GNUC__)
#define DIS_INLINE static inline __attribute__((always_inline))
#else
#define DIS_INLINE static inline
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define DIS_NOTRAP __attribute__((optimize("no-trapping-math")))
#else
#define DIS_NOTRAP
#endif

#if defined(__GNUC__) && !defined(__clang__)
/* As in tvl1.c: GCC vectorises sqrtf only when it cannot set errno. Every
 * sqrtf here takes a sum of squares plus a positive constant. */
float sqrtf(float) __attribute__((const, nothrow, leaf));
#endif

#define DIS_MAX_PATCH 32
#define DIS_MAX_SCALES 24
/* OpenCV's EPS: floor of the structure tensor's determinant, and the margin
 * that keeps densification's bilinear reads inside the image. */
#define DIS_EPS 0.001f
/* Spatial propagation runs in this many stripes of patch rows whatever the
 * thread count, so that the result does not depend on it (OpenCV: 8). */
#define DIS_STRIPES 8
/* The refinement's constants (OpenCV's VariationalRefinement): zeta
 * regularises the normalisation of the data terms, epsilon is the robust
 * penaliser's Psi(s^2) = sqrt(s^2 + epsilon^2). */
#define VAR_ZETA 0.1f
#define VAR_EPSILON 0.001f

/* Below these sizes a pass runs on the calling thread: gl_parallel_for
 * creates its threads on every call (about 25 us here when a core is free,
 * milliseconds when other jobs hold the cores), so only passes of a
 * millisecond or more are split: the patch search from 2048 patches, the
 * densification and the refinement's system from 64k pixels, the SOR
 * sweeps (one call per half-sweep) and the upsampling from 256k. */
#define DIS_PAR_PATCHES 2048
#define DIS_PAR_PIXELS 65536
#define DIS_PAR_BIG_PIXELS 262144

static int mini(int a, int b) { return a < b ? a : b; }
static int clampi(int x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : x; }

/* ---- configuration ------------------------------------------------------ */

int dis_config_preset(dis_config *c, const char *name)
{
    if (!c) return gl_error(GL_EINVAL, "dis_config_preset: NULL config");
    int preset = !name ? -1
                 : !strcmp(name, "ultrafast") ? 0
                 : !strcmp(name, "fast")      ? 1
                 : !strcmp(name, "medium")    ? 2
                                              : -1;
    if (preset < 0)
        return gl_error(GL_EINVAL, "dis preset '%s': expected ultrafast, fast or medium",
                        name ? name : "(null)");
    /* OpenCV's DISOpticalFlow::create(PRESET_*): patch 8, stride 4 (3 for
     * medium), finest scale 2 (1 for medium), 12 / 16 / 25 gradient descent
     * iterations, refinement off for ultrafast, else 5 fixed-point x 5 SOR
     * iterations with alpha 20, delta 5, gamma 10, omega 1.6. */
    c->finest_scale = preset == 2 ? 1 : 2;
    c->coarsest_scale = -1;
    c->patch_size = 8;
    c->patch_stride = preset == 2 ? 3 : 4;
    c->grad_descent_iters = preset == 0 ? 12 : preset == 1 ? 16 : 25;
    c->var_refine_iters = preset == 0 ? 0 : 5;
    c->var_sor_iters = 5;
    c->var_alpha = 20.f;
    c->var_delta = 5.f;
    c->var_gamma = 10.f;
    c->var_omega = 1.6f;
    c->use_mean_normalization = 1;
    c->use_spatial_propagation = 1;
    c->opencv_rounding = 1;
    return 0;
}

int dis_config_validate(const dis_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "dis config: NULL");
    if (c->finest_scale < 0 || c->finest_scale > 10)
        return gl_error(GL_EINVAL, "dis config: finest_scale = %d, expected 0 .. 10",
                        c->finest_scale);
    if (c->coarsest_scale != -1 &&
        (c->coarsest_scale < c->finest_scale || c->coarsest_scale >= DIS_MAX_SCALES))
        return gl_error(GL_EINVAL,
                        "dis config: coarsest_scale = %d, expected -1 (auto) or finest_scale "
                        "(%d) .. %d",
                        c->coarsest_scale, c->finest_scale, DIS_MAX_SCALES - 1);
    if (c->patch_size < 4 || c->patch_size > DIS_MAX_PATCH)
        return gl_error(GL_EINVAL, "dis config: patch_size = %d, expected 4 .. %d",
                        c->patch_size, DIS_MAX_PATCH);
    if (c->patch_stride < 1 || c->patch_stride > c->patch_size)
        return gl_error(GL_EINVAL, "dis config: patch_stride = %d, expected 1 .. patch_size (%d)",
                        c->patch_stride, c->patch_size);
    if (c->grad_descent_iters < 0 || c->grad_descent_iters > 1000)
        return gl_error(GL_EINVAL, "dis config: grad_descent_iters = %d, expected 0 .. 1000",
                        c->grad_descent_iters);
    if (c->var_refine_iters < 0 || c->var_refine_iters > 1000)
        return gl_error(GL_EINVAL, "dis config: var_refine_iters = %d, expected 0 (off) .. 1000",
                        c->var_refine_iters);
    if (c->var_sor_iters < 1 || c->var_sor_iters > 1000)
        return gl_error(GL_EINVAL, "dis config: var_sor_iters = %d, expected 1 .. 1000",
                        c->var_sor_iters);
    if (!(c->var_alpha >= 0 && isfinite(c->var_alpha)))
        return gl_error(GL_EINVAL, "dis config: var_alpha = %g, expected >= 0", c->var_alpha);
    if (!(c->var_delta >= 0 && isfinite(c->var_delta)))
        return gl_error(GL_EINVAL, "dis config: var_delta = %g, expected >= 0", c->var_delta);
    if (!(c->var_gamma >= 0 && isfinite(c->var_gamma)))
        return gl_error(GL_EINVAL, "dis config: var_gamma = %g, expected >= 0", c->var_gamma);
    if (!(c->var_omega > 0 && c->var_omega < 2))
        return gl_error(GL_EINVAL, "dis config: var_omega = %g, expected 0 < omega < 2",
                        c->var_omega);
    if (c->use_mean_normalization != 0 && c->use_mean_normalization != 1)
        return gl_error(GL_EINVAL, "dis config: use_mean_normalization = %d, expected 0 or 1",
                        c->use_mean_normalization);
    if (c->use_spatial_propagation != 0 && c->use_spatial_propagation != 1)
        return gl_error(GL_EINVAL, "dis config: use_spatial_propagation = %d, expected 0 or 1",
                        c->use_spatial_propagation);
    if (c->opencv_rounding != 0 && c->opencv_rounding != 1)
        return gl_error(GL_EINVAL, "dis config: opencv_rounding = %d, expected 0 or 1",
                        c->opencv_rounding);
    return 0;
}

/* ---- resampling (OpenCV's conventions, so both see the same pyramid) ---- */

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
 * rows at s (stride sw), rounded when round (see area_resize). */
DIS_KERNEL
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
static int area_resize(const float *src, int sw, int sh, float *dst, int dw, int dh, int round)
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
DIS_KERNEL
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

DIS_KERNEL
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
static int upsample(const float *su, const float *sv, int sw, int sh, float *du, float *dv, int dw,
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

/* ---- per-scale inputs of the inverse search ----------------------------- */

/* 3x3 Sobel of I0 (OpenCV's spatialGradient: reflected border, and no 1/8
 * normalisation). The missing 1/8 matters: the Gauss-Newton step of eq. 3,
 * H'^-1 sum S'^T [I1(x + u) - T(x)], scales as 1 / |grad|, so every step is
 * 1/8 of the undamped one. We keep OpenCV's scale: its accuracy is the
 * target, and the damped steps with the stop on a rising SSD (below) are
 * what its presets were tuned with. */
DIS_KERNEL
static void sobel3_row(int w, const float *restrict u, const float *restrict m,
                       const float *restrict d, float *restrict ox, float *restrict oy)
{
    for (int x = 1; x < w - 1; x++) {
        ox[x] = (u[x + 1] - u[x - 1]) + 2 * (m[x + 1] - m[x - 1]) + (d[x + 1] - d[x - 1]);
        oy[x] = (d[x - 1] + 2 * d[x] + d[x + 1]) - (u[x - 1] + 2 * u[x] + u[x + 1]);
    }
}

static void sobel3(const float *img, int w, int h, float *gx, float *gy)
{
    for (int y = 0; y < h; y++) {
        const float *u = img + (size_t)(y > 0 ? y - 1 : 1) * w;
        const float *m = img + (size_t)y * w;
        const float *d = img + (size_t)(y < h - 1 ? y + 1 : h - 2) * w;
        float *ox = gx + (size_t)y * w, *oy = gy + (size_t)y * w;
        sobel3_row(w, u, m, d, ox, oy);
        for (int x = 0; x < w; x += w - 1) { /* the reflected ends */
            int l = x > 0 ? x - 1 : 1, r = x < w - 1 ? x + 1 : w - 2;
            ox[x] = (u[r] - u[l]) + 2 * (m[r] - m[l]) + (d[r] - d[l]);
            oy[x] = (d[l] + 2 * d[x] + d[r]) - (u[l] + 2 * u[x] + u[r]);
        }
    }
}

/* I1 with a replicated border of b pixels on every side. */
static void extend(const float *img, int w, int h, int b, float *ext)
{
    int we = w + 2 * b;
    for (int y = -b; y < h + b; y++) {
        const float *s = img + (size_t)clampi(y, 0, h - 1) * w;
        float *d = ext + (size_t)(y + b) * we + b;
        for (int x = -b; x < 0; x++) d[x] = s[0];
        memcpy(d, s, sizeof(float) * (size_t)w);
        for (int x = w; x < w + b; x++) d[x] = s[w - 1];
    }
}

/* ---- inverse search (sec. 2.1) ------------------------------------------ */

typedef struct {
    int w, h, ws, hs, psz, stride, b, we;
    const float *i0, *i1e, *gx, *gy; /* I0, I1 with a border of b, Sobel of I0 */
    const float *ux, *uy;            /* dense flow of the coarser scale (initial values) */
    /* per patch: the structure tensor sum S'^T S' of eq. 3 (xx, xy, yy)
     * and the sums of the gradients (for mean normalisation) */
    float *txx, *txy, *tyy, *tx, *ty;
    float *sx, *sy;                  /* per patch: its displacement */
    int passes, inner, mean_norm, propagate, stripe;
} search_ctx;

/* The structure tensor and gradient sums of the patches of rows
 * [begin, end). */
DIS_KERNEL
static void tensor_rows(const search_ctx *c, long begin, long end)
{
    int w = c->w, psz = c->psz;
    for (long is = begin; is < end; is++)
        for (int js = 0; js < c->ws; js++) {
            const float *gx = c->gx + (size_t)is * c->stride * w + (size_t)js * c->stride;
            const float *gy = c->gy + (size_t)is * c->stride * w + (size_t)js * c->stride;
            float xx = 0, xy = 0, yy = 0, sx = 0, sy = 0;
            for (int r = 0; r < psz; r++)
                for (int j = 0; j < psz; j++) {
                    float a = gx[(size_t)r * w + j], b = gy[(size_t)r * w + j];
                    xx += a * a;
                    xy += a * b;
                    yy += b * b;
                    sx += a;
                    sy += b;
                }
            size_t k = (size_t)is * c->ws + js;
            c->txx[k] = xx;
            c->txy[k] = xy;
            c->tyy[k] = yy;
            c->tx[k] = sx;
            c->ty[k] = sy;
        }
}

/* The patch residual of eq. 1 at one bilinear position: returns the SSD of
 * d = I1(x + u) - T(x) over the patch (with mean normalisation, of d minus
 * its mean: the patch's brightness offset is ignored) and, when grad, the
 * sums *bx, *by of d times the template's gradient (with mean
 * normalisation, of d minus its mean). t: template (stride ts, with its
 * gradients gx, gy at the same stride); q: top-left of the 2x2 cell in I1
 * (stride qs). Accumulates per patch column so a row is one vector; the
 * column sums are added in a fixed order. */
DIS_INLINE float tree8(const float *a)
{
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* The sums over the patch, accumulated per column (arrays of P >= N
 * columns, P a constant so that for 8x8 patches they live in vector
 * registers), then added across columns in a fixed order. */
#define PATCH_ACCUMULATE(P, N)                                                                   \
    do {                                                                                         \
        float ad[P], add[P], ax[P], ay[P];                                                       \
        for (int j = 0; j < (N); j++) ad[j] = add[j] = ax[j] = ay[j] = 0;                        \
        for (int r = 0; r < psz; r++) {                                                          \
            const float *q0 = q + (size_t)r * qs, *q1 = q0 + qs, *tr = t + (size_t)r * ts;       \
            const float *gxr = gx + (size_t)r * ts, *gyr = gy + (size_t)r * ts;                  \
            for (int j = 0; j < (N); j++) {                                                      \
                float d = w00 * q0[j] + w01 * q0[j + 1] + w10 * q1[j] + w11 * q1[j + 1] - tr[j]; \
                ad[j] += d;                                                                      \
                add[j] += d * d;                                                                 \
                if (grad) {                                                                      \
                    ax[j] += d * gxr[j];                                                         \
                    ay[j] += d * gyr[j];                                                         \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        if ((P) == 8) { /* a tree: 3 dependent adds instead of 8 */                              \
            sd = tree8(ad);                                                                      \
            sdd = tree8(add);                                                                    \
            sx = tree8(ax);                                                                      \
            sy = tree8(ay);                                                                      \
        } else {                                                                                 \
            for (int j = 0; j < (N); j++) {                                                      \
                sd += ad[j];                                                                     \
                sdd += add[j];                                                                   \
                sx += ax[j];                                                                     \
                sy += ay[j];                                                                     \
            }                                                                                    \
        }                                                                                        \
    } while (0)

DIS_INLINE float patch_residual(const float *restrict t, const float *restrict gx,
                                const float *restrict gy, int ts, const float *restrict q, int qs,
                                int psz, float w00, float w01, float w10, float w11, int grad,
                                int mean_norm, float sgx, float sgy, float *bx, float *by)
{
    float sd = 0, sdd = 0, sx = 0, sy = 0;
    if (psz == 8) PATCH_ACCUMULATE(8, 8);
    else PATCH_ACCUMULATE(DIS_MAX_PATCH, psz);
    if (mean_norm) {
        float n = (float)(psz * psz);
        sdd -= sd * sd / n;
        sx -= sd * sgx / n;
        sy -= sd * sgy / n;
    }
    if (grad) {
        *bx = sx;
        *by = sy;
    }
    return sdd;
}
#undef PATCH_ACCUMULATE

/* Where a displacement puts the patch in the extended I1: its cell and
 * bilinear weights. As OpenCV, the patch is kept overlapping the image by
 * at least one pixel (I1 is replicated beyond). */
typedef struct {
    const float *q;
    float w00, w01, w10, w11;
} patch_pos;

DIS_INLINE patch_pos patch_locate(const search_ctx *c, int i, int j, float u, float v)
{
    float lo_y = (float)(c->b - c->psz + 1), hi_y = (float)(c->b + c->h - 1);
    float lo_x = (float)(c->b - c->psz + 1), hi_x = (float)(c->b + c->w - 1);
    float y = (float)i + v + (float)c->b, x = (float)j + u + (float)c->b;
    /* written so that a NaN lands on the low end */
    y = y >= lo_y ? y : lo_y;
    y = y <= hi_y ? y : hi_y;
    x = x >= lo_x ? x : lo_x;
    x = x <= hi_x ? x : hi_x;
    int iy = (int)y, ix = (int)x; /* positive: truncation is floor */
    float fy = y - (float)iy, fx = x - (float)ix;
    patch_pos p = { c->i1e + (size_t)iy * c->we + ix, (1 - fy) * (1 - fx), (1 - fy) * fx,
                    fy * (1 - fx), fy * fx };
    return p;
}

DIS_INLINE float patch_ssd(const search_ctx *c, int i, int j, float u, float v, int psz)
{
    patch_pos p = patch_locate(c, i, j, u, v);
    size_t o = (size_t)i * c->w + j;
    return patch_residual(c->i0 + o, c->gx + o, c->gy + o, c->w, p.q, c->we, psz, p.w00, p.w01,
                          p.w10, p.w11, 0, c->mean_norm, 0, 0, NULL, NULL);
}

/* One patch: pick the best of its current displacement and its two
 * already-visited neighbours' (spatial propagation, OpenCV), then
 * inverse-compositional Gauss-Newton steps (eq. 2-3): with the template's
 * Hessian H' fixed, u <- u - H'^-1 sum S'^T d. As OpenCV, a step is taken
 * before the test, and the descent stops once the SSD stops decreasing;
 * a result more than a patch size away from its start is discarded. */
DIS_INLINE void search_patch(const search_ctx *c, int is, int js, int pass, int dir, int first_row,
                             int first_col, int psz)
{
    int i = is * c->stride, j = js * c->stride, ws = c->ws;
    size_t k = (size_t)is * ws + js;
    float *sx = c->sx, *sy = c->sy;
    if (pass == 0) {
        size_t o = (size_t)(i + psz / 2) * c->w + j + psz / 2;
        sx[k] = c->ux[o];
        sy[k] = c->uy[o];
    }
    if (c->propagate) {
        float best = patch_ssd(c, i, j, sx[k], sy[k], psz);
        if (!first_col) {
            size_t n = (size_t)((long)k - dir);
            float e = patch_ssd(c, i, j, sx[n], sy[n], psz);
            if (e < best) {
                best = e;
                sx[k] = sx[n];
                sy[k] = sy[n];
            }
        }
        if (!first_row) {
            size_t n = (size_t)((long)k - (long)dir * ws);
            float e = patch_ssd(c, i, j, sx[n], sy[n], psz);
            if (e < best) {
                sx[k] = sx[n];
                sy[k] = sy[n];
            }
        }
    }
    float u0 = sx[k], v0 = sy[k], u = u0, v = v0;
    float det = c->txx[k] * c->tyy[k] - c->txy[k] * c->txy[k];
    if (fabsf(det) < DIS_EPS) det = DIS_EPS;
    float h11 = c->tyy[k] / det, h12 = -c->txy[k] / det, h22 = c->txx[k] / det;
    float sgx = c->tx[k], sgy = c->ty[k], prev = INFINITY;
    size_t o = (size_t)i * c->w + j;
    for (int t = 0; t < c->inner; t++) {
        patch_pos p = patch_locate(c, i, j, u, v);
        float bx, by;
        float e = patch_residual(c->i0 + o, c->gx + o, c->gy + o, c->w, p.q, c->we, psz, p.w00,
                                 p.w01, p.w10, p.w11, 1, c->mean_norm, sgx, sgy, &bx, &by);
        u -= h11 * bx + h12 * by;
        v -= h12 * bx + h22 * by;
        if (e >= prev) break;
        prev = e;
    }
    if ((u - u0) * (u - u0) + (v - v0) * (v - v0) <= (float)(psz * psz)) {
        sx[k] = u;
        sy[k] = v;
    }
}

/* Stripes [begin, end) of patch rows. With propagation each stripe runs a
 * forward pass (top-left to bottom-right) then a backward one, the
 * descent iterations split between them (OpenCV); propagation never
 * crosses a stripe, which is what makes stripes independent. */
DIS_KERNEL
static int search_range(void *vctx, long begin, long end)
{
    const search_ctx *c = vctx;
    for (long s = begin; s < end; s++) {
        int is0 = (int)s * c->stripe, is1 = mini(is0 + c->stripe, c->hs);
        if (is0 < is1) tensor_rows(c, is0, is1);
        for (int pass = 0; pass < c->passes; pass++) {
            int dir = pass % 2 ? -1 : 1;
            for (int n = 0; n < is1 - is0; n++) {
                int is = dir > 0 ? is0 + n : is1 - 1 - n;
                for (int m = 0; m < c->ws; m++) {
                    int js = dir > 0 ? m : c->ws - 1 - m;
                    if (c->psz == 8)
                        search_patch(c, is, js, pass, dir, n == 0, m == 0, 8);
                    else
                        search_patch(c, is, js, pass, dir, n == 0, m == 0, c->psz);
                }
            }
        }
    }
    return 0;
}

/* ---- densification (sec. 2.2, eq. 4) ------------------------------------ */

typedef struct {
    int w, h, ws, hs, psz, stride;
    const float *i0, *i1, *sx, *sy;
    float *ux, *uy;
    float *acc;  /* 3 rows of w floats per block of rows */
    long grain;  /* rows per block */
} densify_ctx;

/* The patches (along one axis) that cover pixel x: [*lo, *hi]. Pixels past
 * the last patch (when the stride does not divide the size) take the last
 * one, as OpenCV's. */
static void cover(int x, int n, int psz, int stride, int *lo, int *hi)
{
    int h = mini(x / stride, n - 1);
    int l = x >= psz ? (x - psz) / stride + 1 : 0;
    *lo = mini(l, h);
    *hi = h;
}

/* One patch's votes on a run of n pixels of one row, its displacement
 * (pu, pv) landing inside the image: the bilinear weights are the same for
 * the whole run. r0, r1: I1's rows around the landing point, t: I0. (With
 * trapping math GCC keeps max(|d|, 1) a branch; nothing here reads the
 * floating-point exception flags.) */
DIS_KERNEL DIS_NOTRAP
static void densify_run(int n, const float *restrict r0, const float *restrict r1,
                        const float *restrict t, float w00, float w01, float w10, float w11,
                        float pu, float pv, float *restrict su, float *restrict sv,
                        float *restrict sw)
{
    for (int x = 0; x < n; x++) {
        float d = w00 * r0[x] + w01 * r0[x + 1] + w10 * r1[x] + w11 * r1[x + 1] - t[x];
        float a = fabsf(d);
        float wt = 1 / (a > 1 ? a : 1);
        su[x] += wt * pu;
        sv[x] += wt * pv;
        sw[x] += wt;
    }
}

/* U(x) = sum_i w_i u_i / sum_i w_i over the patches i covering x, with
 * w_i = 1 / max(1, |I1(x + u_i) - I0(x)|) (eq. 4; I1 bilinear, clamped to
 * the image). Each pixel adds its patches' votes in the order of the patch
 * grid, whatever the split into runs. */
static int densify_range(void *vctx, long begin, long end)
{
    const densify_ctx *c = vctx;
    int w = c->w, h = c->h, ws = c->ws;
    float xmax = (float)w - 1 - DIS_EPS, ymax = (float)h - 1 - DIS_EPS;
    float *su = c->acc + (size_t)(begin / c->grain) * 3 * w, *sv = su + w, *sw = sv + w;
    for (long yy = begin; yy < end; yy++) {
        int y = (int)yy, ilo, ihi;
        cover(y, c->hs, c->psz, c->stride, &ilo, &ihi);
        for (int x = 0; x < w; x++) su[x] = sv[x] = sw[x] = 0;
        const float *t = c->i0 + (size_t)y * w;
        for (int is = ilo; is <= ihi; is++)
            for (int js = 0; js < ws; js++) {
                size_t k = (size_t)is * ws + js;
                float pu = c->sx[k], pv = c->sy[k];
                int x0 = js * c->stride, x1 = js == ws - 1 ? w : x0 + c->psz;
                float ym = (float)y + pv;
                float fxo = floorf(pu);
                if (ym >= 0 && ym <= ymax && (float)x0 + fxo >= 0 &&
                    (float)(x1 - 1) + fxo + 1 <= xmax) {
                    /* inside: one set of weights for the run */
                    int yl = (int)ym, xo = (int)fxo;
                    float fy = ym - (float)yl, fx = pu - fxo;
                    const float *r0 = c->i1 + (size_t)yl * w + x0 + xo;
                    densify_run(x1 - x0, r0, r0 + w, t + x0, (1 - fy) * (1 - fx), (1 - fy) * fx,
                                fy * (1 - fx), fy * fx, pu, pv, su + x0, sv + x0, sw + x0);
                    continue;
                }
                for (int x = x0; x < x1; x++) {
                    float xm = (float)x + pu, yc = ym;
                    xm = xm >= 0 ? (xm <= xmax ? xm : xmax) : 0; /* NaN: 0 */
                    yc = yc >= 0 ? (yc <= ymax ? yc : ymax) : 0;
                    int xl = (int)xm, yl = (int)yc;
                    float fx = xm - (float)xl, fy = yc - (float)yl;
                    const float *r0 = c->i1 + (size_t)yl * w + xl, *r1 = r0 + w;
                    float d = (1 - fy) * ((1 - fx) * r0[0] + fx * r0[1]) +
                              fy * ((1 - fx) * r1[0] + fx * r1[1]) - t[x];
                    float a = fabsf(d);
                    float wt = 1 / (a > 1 ? a : 1);
                    su[x] += wt * pu;
                    sv[x] += wt * pv;
                    sw[x] += wt;
                }
            }
        float *ou = c->ux + (size_t)y * w, *ov = c->uy + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            ou[x] = su[x] / sw[x];
            ov[x] = sv[x] / sw[x];
        }
    }
    return 0;
}

/* ---- variational refinement (sec. 2.2, eq. 5) --------------------------- */

/* The energy of eq. 5 (DeepFlow's, Weinzaepfel et al. ICCV 2013, with
 * OpenCV's discretisation and constants):
 *   E(U) = sum_x sigma Psi(E_I) + gamma Psi(E_G) + alpha Psi(|grad U|^2),
 * sigma being var_delta (OpenCV's name), E_I the normalised brightness
 * constancy and E_G the normalised gradient constancy, both linearised
 * around the incoming flow W (I1 warped once by W), and
 * Psi(s^2) = sqrt(s^2 + epsilon^2). Each fixed-point iteration freezes
 * the robust weights at W + dW and solves the linear system for the
 * increment dW with a few red-black SOR sweeps.
 *
 * Derivatives are OpenCV's: [-1 0 1] differences (not halved) of the
 * average of I0 and the warped I1 and of their difference, replicated
 * borders; the constants alpha, delta, gamma were tuned with that scale. */

/* The red-black split layout: pixel (x, y) is "red" (colour 0) when x + y
 * is even. Each colour is a plane of its own whose row y holds that
 * colour's pixels of image row y, x = 2k + p, p = (y + colour) & 1; its
 * neighbours are the other colour's elements k - 1 + p (left), k + p
 * (right) in the same row and k in the rows above and below. Every row has
 * a zero pad element on both sides and every plane a zero pad row above and
 * below, so the missing neighbours of border pixels read zeros, always
 * multiplied by a zero weight. */
typedef struct {
    int w, h, cs;  /* cs: floats per colour row, pads included */
    size_t cp;     /* floats per colour plane, pad rows included */
} rb_geom;

static rb_geom rb_make(int w, int h)
{
    rb_geom g = { w, h, (w + 1) / 2 + 2, 0 };
    g.cp = (size_t)(h + 2) * g.cs;
    return g;
}

/* Element 0 of row y (-1 .. h) of colour c of a split plane. */
static float *rb_row(float *plane, rb_geom g, int c, int y)
{
    return plane + (size_t)c * g.cp + (size_t)(y + 1) * g.cs + 1;
}

static int rb_len(rb_geom g, int c, int y) { return (g.w - ((y + c) & 1) + 1) / 2; }

/* Split a plane, pads zeroed. */
static void rb_split(const float *src, rb_geom g, float *dst)
{
    for (int c = 0; c < 2; c++) {
        memset(rb_row(dst, g, c, -1) - 1, 0, sizeof(float) * g.cs);
        memset(rb_row(dst, g, c, g.h) - 1, 0, sizeof(float) * g.cs);
        for (int y = 0; y < g.h; y++) {
            float *d = rb_row(dst, g, c, y);
            const float *s = src + (size_t)y * g.w + ((y + c) & 1);
            int n = rb_len(g, c, y);
            d[-1] = 0;
            for (int k = 0; k < n; k++) d[k] = s[2 * k];
            for (int k = n; k < g.cs - 1; k++) d[k] = 0;
        }
    }
}

/* Zero the pads of a split plane whose elements are written elsewhere. */
static void rb_clear_pads(float *plane, rb_geom g)
{
    for (int c = 0; c < 2; c++) {
        memset(rb_row(plane, g, c, -1) - 1, 0, sizeof(float) * g.cs);
        memset(rb_row(plane, g, c, g.h) - 1, 0, sizeof(float) * g.cs);
        for (int y = 0; y < g.h; y++) {
            float *d = rb_row(plane, g, c, y);
            d[-1] = 0;
            for (int k = rb_len(g, c, y); k < g.cs - 1; k++) d[k] = 0;
        }
    }
}

typedef struct {
    rb_geom g;
    /* split planes */
    float *wu, *wv, *du, *dv;                          /* W and dW */
    float *ix, *iy, *iz, *ixx, *ixy, *iyy, *ixz, *iyz; /* derivatives */
    float *ia11, *a12, *ia22, *b1, *b2;                /* the system, 1/diagonal */
    float *wr, *wd; /* smoothness weight of the edge to the right / below
                       (0 where that neighbour is outside the image) */
    float alpha2, delta2, gamma2, omega;
    int sor_colour; /* the colour a parallel SOR pass updates */
    float *halo;    /* per block of rows: weights of the row above it */
    long grain;     /* rows per block */
} var_ctx;

/* Robust smoothness weights alpha/2 Psi'(|grad(W + dW)|^2) of one colour
 * row with forward differences (zero across the last column: elements
 * k >= lim; hy = 0 on the last row): r = the right neighbours, d = the ones
 * below. (GCC honours restrict on parameters only, hence the long lists.) */
DIS_KERNEL
static void var_weights_row(int n, int lim, float hy, float alpha2, const float *restrict wu,
                            const float *restrict du, const float *restrict wv,
                            const float *restrict dv, const float *restrict wur,
                            const float *restrict dur, const float *restrict wvr,
                            const float *restrict dvr, const float *restrict wud,
                            const float *restrict dud, const float *restrict wvd,
                            const float *restrict dvd, float *restrict wr, float *restrict wd)
{
    float e2 = VAR_EPSILON * VAR_EPSILON;
    for (int k = 0; k < n; k++) {
        float hx = k < lim ? 1.f : 0.f;
        float tu = wu[k] + du[k], tv = wv[k] + dv[k];
        float ux = hx * ((wur[k] + dur[k]) - tu), vx = hx * ((wvr[k] + dvr[k]) - tv);
        float uy = hy * ((wud[k] + dud[k]) - tu), vy = hy * ((wvd[k] + dvd[k]) - tv);
        float s = alpha2 / sqrtf(ux * ux + vx * vx + uy * uy + vy * vy + e2);
        wr[k] = hx * s;
        wd[k] = hy * s;
    }
}

/* The weights of image row y, both colours, into wr[c], wd[c]. */
static void var_weights_at(const var_ctx *v, int y, float *const wr[2], float *const wd[2])
{
    rb_geom g = v->g;
    for (int c = 0; c < 2; c++) {
        int p = (y + c) & 1, o = 1 - c;
        var_weights_row(rb_len(g, c, y), (g.w - p) / 2, y < g.h - 1 ? 1.f : 0.f, v->alpha2,
                        rb_row(v->wu, g, c, y), rb_row(v->du, g, c, y), rb_row(v->wv, g, c, y),
                        rb_row(v->dv, g, c, y), rb_row(v->wu, g, o, y) + p,
                        rb_row(v->du, g, o, y) + p, rb_row(v->wv, g, o, y) + p,
                        rb_row(v->dv, g, o, y) + p, rb_row(v->wu, g, o, y + 1),
                        rb_row(v->du, g, o, y + 1), rb_row(v->wv, g, o, y + 1),
                        rb_row(v->dv, g, o, y + 1), wr[c], wd[c]);
    }
}

/* The linear system of one fixed-point iteration for one colour row: data
 * terms (brightness and gradient constancy, each normalised by its gradient
 * magnitude, robust weight at W + dW) plus the smoothness couplings to the 4
 * neighbours. Stores the reciprocals of the diagonal. Neighbours in the
 * other colour: *l[k] left, *l[k + 1] right, *u above, *d below; er/eb the
 * pixel's own edge weights (right, below), el/ea its left and upper
 * neighbours'. */
DIS_KERNEL
static void var_system_row(int n, float delta2, float gamma2, const float *restrict ix,
                           const float *restrict iy, const float *restrict iz,
                           const float *restrict ixx, const float *restrict ixy,
                           const float *restrict iyy, const float *restrict ixz,
                           const float *restrict iyz, const float *restrict du,
                           const float *restrict dv, const float *restrict wu,
                           const float *restrict wv, const float *restrict wr,
                           const float *restrict wd, const float *restrict wrl,
                           const float *restrict wdu, const float *restrict wul,
                           const float *restrict wvl, const float *restrict wuu,
                           const float *restrict wvu, const float *restrict wud,
                           const float *restrict wvd, float *restrict ia11, float *restrict a12,
                           float *restrict ia22, float *restrict b1, float *restrict b2)
{
    float z2 = VAR_ZETA * VAR_ZETA, e2 = VAR_EPSILON * VAR_EPSILON;
    for (int k = 0; k < n; k++) {
        /* brightness constancy, normalised by |grad I|^2 + zeta^2 */
        float rn = 1 / (ix[k] * ix[k] + iy[k] * iy[k] + z2);
        float ik = iz[k] + ix[k] * du[k] + iy[k] * dv[k];
        float wt = delta2 / sqrtf(ik * ik * rn + e2) * rn;
        float s11 = wt * ix[k] * ix[k] + z2, s12 = wt * ix[k] * iy[k];
        float s22 = wt * iy[k] * iy[k] + z2;
        float r1 = -wt * iz[k] * ix[k], r2 = -wt * iz[k] * iy[k];
        /* gradient constancy, each component normalised alike */
        float rx = 1 / (ixx[k] * ixx[k] + ixy[k] * ixy[k] + z2);
        float ry = 1 / (iyy[k] * iyy[k] + ixy[k] * ixy[k] + z2);
        float kx = ixz[k] + ixx[k] * du[k] + ixy[k] * dv[k];
        float ky = iyz[k] + ixy[k] * du[k] + iyy[k] * dv[k];
        float wg = gamma2 / sqrtf(kx * kx * rx + ky * ky * ry + e2);
        float gx = wg * rx, gy = wg * ry;
        s11 += gx * ixx[k] * ixx[k] + gy * ixy[k] * ixy[k];
        s12 += gx * ixx[k] * ixy[k] + gy * ixy[k] * iyy[k];
        s22 += gx * ixy[k] * ixy[k] + gy * iyy[k] * iyy[k];
        r1 -= gx * ixx[k] * ixz[k] + gy * ixy[k] * iyz[k];
        r2 -= gx * ixy[k] * ixz[k] + gy * iyy[k] * iyz[k];
        /* smoothness, acting on W; dW enters in the SOR */
        float er = wr[k], eb = wd[k], el = wrl[k], ea = wdu[k];
        float sw = er + eb + el + ea;
        r1 += er * (wul[k + 1] - wu[k]) - el * (wu[k] - wul[k]) + eb * (wud[k] - wu[k]) -
              ea * (wu[k] - wuu[k]);
        r2 += er * (wvl[k + 1] - wv[k]) - el * (wv[k] - wvl[k]) + eb * (wvd[k] - wv[k]) -
              ea * (wv[k] - wvu[k]);
        ia11[k] = 1 / (s11 + sw);
        a12[k] = s12;
        ia22[k] = 1 / (s22 + sw);
        b1[k] = r1;
        b2[k] = r2;
    }
}

/* Weights and system of rows [begin, end), row by row: the system of row y
 * needs the weights of rows y (left neighbours) and y - 1 (upper ones). The
 * upper neighbours of the block's first row belong to another block, which
 * may not have run: their weights are recomputed into this block's halo. */
static int var_linearise_range(void *vctx, long begin, long end)
{
    const var_ctx *v = vctx;
    rb_geom g = v->g;
    const float *above[2] = { NULL, NULL }; /* wd of row begin - 1, per colour */
    if (begin > 0) {
        float *halo = v->halo + (size_t)(begin / v->grain) * 4 * g.cs;
        float *hr[2] = { halo + 1, halo + g.cs + 1 }, *hd[2] = { halo + 2 * g.cs + 1,
                                                              halo + 3 * g.cs + 1 };
        var_weights_at(v, (int)begin - 1, hr, hd);
        above[0] = hd[0];
        above[1] = hd[1];
    }
    for (long yy = begin; yy < end; yy++) {
        int y = (int)yy;
        float *wr[2] = { rb_row(v->wr, g, 0, y), rb_row(v->wr, g, 1, y) };
        float *wd[2] = { rb_row(v->wd, g, 0, y), rb_row(v->wd, g, 1, y) };
        var_weights_at(v, y, wr, wd);
        for (int c = 0; c < 2; c++) {
            int p = (y + c) & 1, o = 1 - c;
            const float *wdu = y == begin && above[o] ? above[o] : rb_row(v->wd, g, o, y - 1);
#define OWN(P) rb_row(v->P, g, c, y)
            var_system_row(rb_len(g, c, y), v->delta2, v->gamma2, OWN(ix), OWN(iy), OWN(iz),
                           OWN(ixx), OWN(ixy), OWN(iyy), OWN(ixz), OWN(iyz), OWN(du), OWN(dv),
                           OWN(wu), OWN(wv), OWN(wr), OWN(wd), rb_row(v->wr, g, o, y) - 1 + p, wdu,
                           rb_row(v->wu, g, o, y) - 1 + p, rb_row(v->wv, g, o, y) - 1 + p,
                           rb_row(v->wu, g, o, y - 1), rb_row(v->wv, g, o, y - 1),
                           rb_row(v->wu, g, o, y + 1), rb_row(v->wv, g, o, y + 1), OWN(ia11),
                           OWN(a12), OWN(ia22), OWN(b1), OWN(b2));
#undef OWN
        }
    }
    return 0;
}

/* One SOR half-sweep of one colour row: dW at each pixel of that colour
 * from the other colour's (Gauss-Seidel on the 2x2 block, over-relaxed).
 * Neighbours in the other colour: *l[k] left, *l[k + 1] right, *u above,
 * *d below. */
DIS_KERNEL
static void var_sor_kernel(int n, float om, const float *restrict wrl, const float *restrict dul,
                           const float *restrict dvl, const float *restrict wdu,
                           const float *restrict duu, const float *restrict dvu,
                           const float *restrict dud, const float *restrict dvd,
                           const float *restrict wr, const float *restrict wd,
                           const float *restrict ia11, const float *restrict a12,
                           const float *restrict ia22, const float *restrict b1,
                           const float *restrict b2, float *restrict du, float *restrict dv)
{
    for (int k = 0; k < n; k++) {
        float su = wrl[k] * dul[k] + wr[k] * dul[k + 1] + wdu[k] * duu[k] + wd[k] * dud[k];
        float sv = wrl[k] * dvl[k] + wr[k] * dvl[k + 1] + wdu[k] * dvu[k] + wd[k] * dvd[k];
        float a = du[k] + om * ((su + b1[k] - a12[k] * dv[k]) * ia11[k] - du[k]);
        du[k] = a;
        dv[k] = dv[k] + om * ((sv + b2[k] - a12[k] * a) * ia22[k] - dv[k]);
    }
}

static void var_sor_row(const var_ctx *v, int c, int y)
{
    rb_geom g = v->g;
    int p = (y + c) & 1, o = 1 - c;
    var_sor_kernel(rb_len(g, c, y), v->omega, rb_row(v->wr, g, o, y) - 1 + p,
                   rb_row(v->du, g, o, y) - 1 + p, rb_row(v->dv, g, o, y) - 1 + p,
                   rb_row(v->wd, g, o, y - 1), rb_row(v->du, g, o, y - 1),
                   rb_row(v->dv, g, o, y - 1), rb_row(v->du, g, o, y + 1),
                   rb_row(v->dv, g, o, y + 1), rb_row(v->wr, g, c, y), rb_row(v->wd, g, c, y),
                   rb_row(v->ia11, g, c, y), rb_row(v->a12, g, c, y), rb_row(v->ia22, g, c, y),
                   rb_row(v->b1, g, c, y), rb_row(v->b2, g, c, y), rb_row(v->du, g, c, y),
                   rb_row(v->dv, g, c, y));
}

static int var_sor_range(void *vctx, long begin, long end)
{
    const var_ctx *v = vctx;
    for (long y = begin; y < end; y++) var_sor_row(v, v->sor_colour, (int)y);
    return 0;
}

/* [-1 0 1] differences with replicated borders (OpenCV's Sobel, ksize 1). */
static void diff_x(const float *s, int w, int h, float *d)
{
    for (int y = 0; y < h; y++) {
        const float *r = s + (size_t)y * w;
        float *o = d + (size_t)y * w;
        if (w == 1) {
            o[0] = 0;
            continue;
        }
        o[0] = r[1] - r[0];
        for (int x = 1; x < w - 1; x++) o[x] = r[x + 1] - r[x - 1];
        o[w - 1] = r[w - 1] - r[w - 2];
    }
}

static void diff_y(const float *s, int w, int h, float *d)
{
    for (int y = 0; y < h; y++) {
        const float *u = s + (size_t)(y > 0 ? y - 1 : 0) * w;
        const float *n = s + (size_t)(y < h - 1 ? y + 1 : h - 1) * w;
        float *o = d + (size_t)y * w;
        for (int x = 0; x < w; x++) o[x] = n[x] - u[x];
    }
}

/* I1 warped by the flow, bilinear, each of the 4 taps clamped to the image
 * (OpenCV's remap with BORDER_REPLICATE); one row. With q32, positions are
 * rounded to 1/32 pixel first, as remap's interpolation tables do. */
DIS_KERNEL DIS_NOTRAP
static void warp_row(int w, int h, int y, const float *restrict i1, const float *restrict u,
                     const float *restrict v, int q32, float *restrict out)
{
    for (int x = 0; x < w; x++) {
        float xf = (float)x + u[x], yf = (float)y + v[x];
        if (q32) {
            xf = rintf(xf * 32) / 32;
            yf = rintf(yf * 32) / 32;
        }
        float fx0 = floorf(xf), fy0 = floorf(yf);
        float ax = xf - fx0, ay = yf - fy0;
        /* clamp in float first: the flow may point far outside (or be NaN) */
        fx0 = fx0 >= -1 ? (fx0 <= (float)w ? fx0 : (float)w) : -1;
        fy0 = fy0 >= -1 ? (fy0 <= (float)h ? fy0 : (float)h) : -1;
        int x0 = (int)fx0, y0 = (int)fy0;
        int xa = x0 < 0 ? 0 : x0, xb = x0 + 1 > w - 1 ? w - 1 : x0 + 1;
        int ya = y0 < 0 ? 0 : y0, yb = y0 + 1 > h - 1 ? h - 1 : y0 + 1;
        xa = xa > w - 1 ? w - 1 : xa;
        xb = xb < 0 ? 0 : xb;
        ya = ya > h - 1 ? h - 1 : ya;
        yb = yb < 0 ? 0 : yb;
        float p00 = i1[ya * w + xa], p01 = i1[ya * w + xb];
        float p10 = i1[yb * w + xa], p11 = i1[yb * w + xb];
        out[x] = (1 - ay) * ((1 - ax) * p00 + ax * p01) + ay * ((1 - ax) * p10 + ax * p11);
    }
}

static void warp(const float *i1, const float *u, const float *v, int w, int h, int q32,
                 float *out)
{
    for (int y = 0; y < h; y++)
        warp_row(w, h, y, i1, u + (size_t)y * w, v + (size_t)y * w, q32, out + (size_t)y * w);
}

typedef struct {
    float *split[19]; /* the var_ctx planes, each 2 colour planes */
    float *tmp[4];    /* full planes */
    float *halo;      /* 4 colour rows per thread */
} var_buffers;

/* Refines (u, v) in place: var_refine_iters fixed-point iterations of
 * var_sor_iters SOR sweeps. b: buffers sized for at least this scale and
 * nt threads. */
static int var_refine(const float *i0, const float *i1, int w, int h, float *u, float *v,
                      const dis_config *cfg, const var_buffers *b, int nt)
{
    rb_geom g = rb_make(w, h);
    var_ctx c = { .g = g };
    float **pl[19] = { &c.wu, &c.wv, &c.du, &c.dv, &c.ix, &c.iy, &c.iz, &c.ixx, &c.ixy, &c.iyy,
                       &c.ixz, &c.iyz, &c.ia11, &c.a12, &c.ia22, &c.b1, &c.b2, &c.wr, &c.wd };
    for (int k = 0; k < 19; k++) *pl[k] = b->split[k];
    c.alpha2 = cfg->var_alpha / 2;
    c.delta2 = cfg->var_delta / 2;
    c.gamma2 = cfg->var_gamma / 2;
    c.omega = cfg->var_omega;
    size_t n = (size_t)w * h;
    float *t0 = b->tmp[0], *t1 = b->tmp[1], *t2 = b->tmp[2], *t3 = b->tmp[3];

    /* I1 warped by W; the data terms are linearised around it. Derivatives
     * of the average (t0) and of the difference (t1). */
    warp(i1, u, v, w, h, cfg->opencv_rounding, t0);
    for (size_t i = 0; i < n; i++) {
        t1[i] = t0[i] - i0[i];
        t0[i] = 0.5f * i0[i] + 0.5f * t0[i];
    }
    rb_split(t1, g, c.iz);
    diff_x(t1, w, h, t2);
    rb_split(t2, g, c.ixz);
    diff_y(t1, w, h, t2);
    rb_split(t2, g, c.iyz);
    diff_x(t0, w, h, t1);
    rb_split(t1, g, c.ix);
    diff_y(t0, w, h, t3);
    rb_split(t3, g, c.iy);
    diff_x(t1, w, h, t2);
    rb_split(t2, g, c.ixx);
    diff_y(t1, w, h, t2);
    rb_split(t2, g, c.ixy);
    diff_y(t3, w, h, t2);
    rb_split(t2, g, c.iyy);
    rb_split(u, g, c.wu);
    rb_split(v, g, c.wv);
    memset(c.du, 0, sizeof(float) * 2 * g.cp);
    memset(c.dv, 0, sizeof(float) * 2 * g.cp);
    rb_clear_pads(c.wr, g);
    rb_clear_pads(c.wd, g);

    int big = nt > 1 && (long)w * h >= DIS_PAR_PIXELS;
    int sor_par = nt > 1 && (long)w * h >= DIS_PAR_BIG_PIXELS;
    c.halo = b->halo;
    c.grain = big ? (h + nt - 1) / nt : h;
    int rc;
    for (int it = 0; it < cfg->var_refine_iters; it++) {
        rc = big ? gl_parallel_for(h, c.grain, var_linearise_range, &c)
                 : var_linearise_range(&c, 0, h);
        if (rc < 0) return rc;
        int halves = 2 * cfg->var_sor_iters;
        if (sor_par) {
            for (int m = 0; m < halves; m++) {
                c.sor_colour = m & 1;
                if ((rc = gl_parallel_for(h, 0, var_sor_range, &c)) < 0) return rc;
            }
        } else {
            /* All half-sweeps as one wavefront: half-sweep m runs on row
             * t - m at step t, after half-sweep m - 1 has passed rows
             * t - m - 1 .. t - m + 1 and before m + 1 reaches them, so
             * every update sees exactly what the plain sweeps would. */
            for (int t = 0; t < h + halves - 1; t++)
                for (int m = 0; m < halves; m++) {
                    int r = t - m;
                    if (r >= 0 && r < h) var_sor_row(&c, m & 1, r);
                }
        }
    }
    /* W + dW back to the plain layout */
    for (int y = 0; y < h; y++)
        for (int col = 0; col < 2; col++) {
            const float *wu = rb_row(c.wu, g, col, y), *du = rb_row(c.du, g, col, y);
            const float *wv = rb_row(c.wv, g, col, y), *dv = rb_row(c.dv, g, col, y);
            int p = (y + col) & 1, m = rb_len(g, col, y);
            float *ou = u + (size_t)y * w + p, *ov = v + (size_t)y * w + p;
            for (int k = 0; k < m; k++) {
                ou[2 * k] = wu[k] + du[k];
                ov[2 * k] = wv[k] + dv[k];
            }
        }
    return 0;
}

/* ---- the coarse-to-fine loop (Algorithm 1) ------------------------------ */

int dis_flow(const float *i0, const float *i1, int width, int height, const dis_config *cfg,
             flow_field *flow)
{
    int rc = dis_config_validate(cfg);
    if (rc < 0) return rc;
    if (!i0 || !i1 || !flow || !flow->u || !flow->v)
        return gl_error(GL_EINVAL, "dis_flow: NULL image or empty flow field");
    if (width <= 0 || height <= 0)
        return gl_error(GL_EINVAL, "dis_flow: image size %dx%d", width, height);
    if (flow->width != width || flow->height != height)
        return gl_error(GL_EINVAL, "dis_flow: flow field is %dx%d, images are %dx%d",
                        flow->width, flow->height, width, height);
    int fs = cfg->finest_scale, psz = cfg->patch_size, stride = cfg->patch_stride;
    int lw[DIS_MAX_SCALES], lh[DIS_MAX_SCALES];
    lw[fs] = width >> fs;
    lh[fs] = height >> fs;
    if (lw[fs] < psz || lh[fs] < psz)
        return gl_error(GL_EINVAL,
                        "dis_flow: image %dx%d is %dx%d at finest_scale %d, smaller than "
                        "patch_size %d",
                        width, height, lw[fs], lh[fs], fs, psz);
    for (size_t i = 0, n = (size_t)width * height; i < n; i++)
        if (!isfinite(i0[i]) || !isfinite(i1[i]))
            return gl_error(GL_EINVAL, "dis_flow: pixel %zu of an image is not finite", i);

    /* Coarsest scale: OpenCV's rule, a patch spans about a quarter of the
     * larger side there (its comment: the original code searches motions
     * up to a quarter of the width) and the smaller side keeps at least
     * one patch; then never a scale smaller than a patch. */
    int cs = cfg->coarsest_scale;
    if (cs < 0) {
        int a = (int)(log(fmax(width, height) / (4.0 * psz)) / log(2.0) + 0.5);
        int b = (int)(log(fmin(width, height) / (double)psz) / log(2.0));
        cs = mini(a, b);
    }
    cs = clampi(cs, fs, DIS_MAX_SCALES - 1);
    for (int s = fs + 1; s <= cs; s++) {
        lw[s] = lw[s - 1] / 2;
        lh[s] = lh[s - 1] / 2;
        if (lw[s] < psz || lh[s] < psz) {
            cs = s - 1;
            break;
        }
    }

    /* One arena: the pyramid, then the work planes sized for the finest
     * scale and reused at every scale. */
    int w0 = lw[fs], h0 = lh[fs];
    size_t n0 = (size_t)w0 * h0;
    size_t np = (size_t)(1 + (w0 - psz) / stride) * (size_t)(1 + (h0 - psz) / stride);
    size_t ne = (size_t)(w0 + 2 * psz) * (size_t)(h0 + 2 * psz);
    rb_geom g0 = rb_make(w0, h0);
    int refine = cfg->var_refine_iters > 0;
    size_t total = 0;
    for (int s = fs; s <= cs; s++) total += 2 * (size_t)lw[s] * lh[s];
    int nt = gl_num_threads();
    total += 6 * n0 + ne + 7 * np + 3 * (size_t)w0 * nt;
    if (refine) total += 19 * 2 * g0.cp + 4 * n0 + 4 * (size_t)g0.cs * nt;
    float *arena = gl_malloc(sizeof(float) * total);
    if (!arena) return GL_ENOMEM;
    float *next = arena;
#define TAKE(count) (next += (count), next - (count))
    float *p0[DIS_MAX_SCALES], *p1[DIS_MAX_SCALES];
    for (int s = fs; s <= cs; s++) {
        p0[s] = TAKE((size_t)lw[s] * lh[s]);
        p1[s] = TAKE((size_t)lw[s] * lh[s]);
    }
    float *gx = TAKE(n0), *gy = TAKE(n0), *ua = TAKE(n0), *va = TAKE(n0), *ub = TAKE(n0),
          *vb = TAKE(n0), *i1e = TAKE(ne), *acc = TAKE(3 * (size_t)w0 * nt);
    search_ctx sc = { 0 };
    sc.txx = TAKE(np);
    sc.txy = TAKE(np);
    sc.tyy = TAKE(np);
    sc.tx = TAKE(np);
    sc.ty = TAKE(np);
    sc.sx = TAKE(np);
    sc.sy = TAKE(np);
    var_buffers vb_ = { { 0 }, { 0 }, NULL };
    if (refine) {
        for (int k = 0; k < 19; k++) vb_.split[k] = TAKE(2 * g0.cp);
        for (int k = 0; k < 4; k++) vb_.tmp[k] = TAKE(n0);
        vb_.halo = TAKE(4 * (size_t)g0.cs * nt);
    }
#undef TAKE

    /* Pyramid (OpenCV: area averaging, straight from the input to the
     * finest scale, then by halves). */
    int q = cfg->opencv_rounding;
    if (fs == 0) {
        for (size_t i = 0; i < n0; i++) {
            p0[0][i] = q ? rintf(i0[i]) : i0[i];
            p1[0][i] = q ? rintf(i1[i]) : i1[i];
        }
    } else {
        if ((rc = area_resize(i0, width, height, p0[fs], w0, h0, q)) < 0) goto fail;
        if ((rc = area_resize(i1, width, height, p1[fs], w0, h0, q)) < 0) goto fail;
    }
    for (int s = fs + 1; s <= cs; s++) {
        rc = area_resize(p0[s - 1], lw[s - 1], lh[s - 1], p0[s], lw[s], lh[s], q);
        if (rc < 0) goto fail;
        rc = area_resize(p1[s - 1], lw[s - 1], lh[s - 1], p1[s], lw[s], lh[s], q);
        if (rc < 0) goto fail;
    }

    int prop = cfg->use_spatial_propagation;
    sc.psz = psz;
    sc.stride = stride;
    sc.b = psz;
    sc.passes = prop ? 2 : 1;
    sc.inner = cfg->grad_descent_iters / sc.passes;
    sc.mean_norm = cfg->use_mean_normalization;
    sc.propagate = prop;
    memset(ua, 0, sizeof(float) * (size_t)lw[cs] * lh[cs]);
    memset(va, 0, sizeof(float) * (size_t)lw[cs] * lh[cs]);
    for (int s = cs; s >= fs; s--) {
        int w = lw[s], h = lh[s];
        sc.w = w;
        sc.h = h;
        sc.ws = 1 + (w - psz) / stride;
        sc.hs = 1 + (h - psz) / stride;
        sc.we = w + 2 * psz;
        sc.i0 = p0[s];
        sc.i1e = i1e;
        sc.gx = gx;
        sc.gy = gy;
        sc.ux = ua;
        sc.uy = va;
        sobel3(p0[s], w, h, gx, gy);
        extend(p1[s], w, h, psz, i1e);
        int par = nt > 1 && (long)sc.ws * sc.hs >= DIS_PAR_PATCHES;
        int stripes = prop ? DIS_STRIPES : sc.hs;
        sc.stripe = prop ? (sc.hs + DIS_STRIPES - 1) / DIS_STRIPES : 1;
        rc = par ? gl_parallel_for(stripes, 1, search_range, &sc)
                 : search_range(&sc, 0, stripes);
        if (rc < 0) goto fail;
        densify_ctx dc = { .w = w, .h = h, .ws = sc.ws, .hs = sc.hs, .psz = psz, .stride = stride,
                           .i0 = p0[s], .i1 = p1[s], .sx = sc.sx, .sy = sc.sy, .ux = ua,
                           .uy = va, .acc = acc, .grain = h };
        if (nt > 1 && (long)w * h >= DIS_PAR_PIXELS) {
            dc.grain = (h + nt - 1) / nt;
            rc = gl_parallel_for(h, dc.grain, densify_range, &dc);
        } else {
            rc = densify_range(&dc, 0, h);
        }
        if (rc < 0) goto fail;
        if (refine && (rc = var_refine(p0[s], p1[s], w, h, ua, va, cfg, &vb_, nt)) < 0) goto fail;
        if (s > fs) {
            if ((rc = upsample(ua, va, w, h, ub, vb, lw[s - 1], lh[s - 1], 2.f)) < 0) goto fail;
            float *t = ua;
            ua = ub;
            ub = t;
            t = va;
            va = vb;
            vb = t;
        }
    }
    if (fs == 0) {
        memcpy(flow->u, ua, sizeof(float) * n0);
        memcpy(flow->v, va, sizeof(float) * n0);
    } else {
        rc = upsample(ua, va, w0, h0, flow->u, flow->v, width, height, (float)(1 << fs));
        if (rc < 0) goto fail;
    }
    rc = 0;
fail:
    gl_free(arena);
    return rc;
}

int flow_method_dis(const float *i0, const float *i1, int width, int height, const void *cfg,
                    flow_field *flow)
{
    dis_config def;
    if (!cfg) {
        dis_config_preset(&def, "medium");
        cfg = &def;
    }
    return dis_flow(i0, i1, width, height, cfg, flow);
}
