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
 * split, so the result is bit-identical for any thread count.
 *
 * Files: this one (configuration, inverse search, densification, the
 * coarse-to-fine loop), dis_resample.c (pyramid, upsampling), dis_refine.c
 * (variational refinement); what they share is in dis_private.h. */
#include <math.h>
#include <string.h>

#include "motion/dis_private.h"

#define DIS_MAX_PATCH 32
#define DIS_MAX_SCALES 24
/* OpenCV's EPS: floor of the structure tensor's determinant, and the margin
 * that keeps densification's bilinear reads inside the image. */
#define DIS_EPS 0.001f
/* Spatial propagation runs in this many stripes of patch rows whatever the
 * thread count, so that the result does not depend on it (OpenCV: 8). */
#define DIS_STRIPES 8

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

/* ---- per-scale inputs of the inverse search ----------------------------- */

/* 3x3 Sobel of I0 (OpenCV's spatialGradient: reflected border, and no 1/8
 * normalisation). The missing 1/8 matters: the Gauss-Newton step of eq. 3,
 * H'^-1 sum S'^T [I1(x + u) - T(x)], scales as 1 / |grad|, so every step is
 * 1/8 of the undamped one. We keep OpenCV's scale: its accuracy is the
 * target, and the damped steps with the stop on a rising SSD (below) are
 * what its presets were tuned with. */
MOTION_KERNEL
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
MOTION_KERNEL
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
MOTION_KERNEL
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
MOTION_KERNEL MOTION_NOTRAP
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

/* ---- the coarse-to-fine loop (Algorithm 1) ------------------------------ */

/* Long (~170 lines) on purpose: Algorithm 1 of Kroeger et al. (2016) as one
 * loop over the scales, its steps in the paper's order. */
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
        if ((rc = dis_area_resize(i0, width, height, p0[fs], w0, h0, q)) < 0) goto fail;
        if ((rc = dis_area_resize(i1, width, height, p1[fs], w0, h0, q)) < 0) goto fail;
    }
    for (int s = fs + 1; s <= cs; s++) {
        rc = dis_area_resize(p0[s - 1], lw[s - 1], lh[s - 1], p0[s], lw[s], lh[s], q);
        if (rc < 0) goto fail;
        rc = dis_area_resize(p1[s - 1], lw[s - 1], lh[s - 1], p1[s], lw[s], lh[s], q);
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
        if (refine && (rc = dis_var_refine(p0[s], p1[s], w, h, ua, va, cfg, &vb_, nt)) < 0)
            goto fail;
        if (s > fs) {
            if ((rc = dis_upsample(ua, va, w, h, ub, vb, lw[s - 1], lh[s - 1], 2.f)) < 0) goto fail;
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
        rc = dis_upsample(ua, va, w0, h0, flow->u, flow->v, width, height, (float)(1 << fs));
        if (rc < 0) goto fail;
    }
    rc = 0;
fail:
    gl_free(arena);
    return rc;
}

/* One level of dis_refine_flow: `lins` linearisations around (u, v) in
 * place; the work planes come from `arena`, sized for the full level. */
static int refine_level(const float *i0, const float *i1, int w, int h, const dis_config *cfg, int lins,
                        float *u, float *v, float *arena, int nt)
{
    const rb_geom g = rb_make(w, h);
    var_buffers vb = { { 0 }, { 0 }, NULL };
    float *next = arena;
    for (int k = 0; k < 19; k++, next += 2 * g.cp) vb.split[k] = next;
    for (int k = 0; k < 4; k++, next += (size_t)w * h) vb.tmp[k] = next;
    vb.halo = next;
    int rc = 0;
    for (int k = 0; k < lins && rc >= 0; k++) rc = dis_var_refine(i0, i1, w, h, u, v, cfg, &vb, nt);
    return rc;
}

int dis_refine_flow(const float *i0, const float *i1, int width, int height, const dis_config *cfg,
                    int linearisations, int levels, flow_field *flow)
{
    int rc = dis_config_validate(cfg);
    if (rc < 0) return rc;
    if (!i0 || !i1 || !flow || !flow->u || !flow->v)
        return gl_error(GL_EINVAL, "dis_refine_flow: NULL image or empty flow field");
    if (width < 2 || height < 2)
        return gl_error(GL_EINVAL, "dis_refine_flow: image size %dx%d, expected at least 2x2", width, height);
    if (flow->width != width || flow->height != height)
        return gl_error(GL_EINVAL, "dis_refine_flow: flow field is %dx%d, images are %dx%d", flow->width,
                        flow->height, width, height);
    if (linearisations < 0 || linearisations > 1000 || levels < 1 || levels > DIS_MAX_SCALES)
        return gl_error(GL_EINVAL, "dis_refine_flow: %d linearisations at %d levels, expected 0 .. 1000 at 1 .. %d",
                        linearisations, levels, DIS_MAX_SCALES);
    const size_t n = (size_t)width * height;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(i0[i]) || !isfinite(i1[i]))
            return gl_error(GL_EINVAL, "dis_refine_flow: pixel %zu of an image is not finite", i);
        if (!isfinite(flow->u[i]) || !isfinite(flow->v[i]))
            return gl_error(GL_EINVAL, "dis_refine_flow: the flow at pixel %zu is not finite", i);
    }
    if (cfg->var_refine_iters == 0 || linearisations == 0) return 0;
    /* One arena: the refinement's planes sized for the full level (every
     * coarser level fits in them), then the coarse levels' images and flows
     * (sized for the 1/2 level) and the upsampled correction. */
    const int nt = gl_num_threads();
    const rb_geom g = rb_make(width, height);
    const size_t work = 19 * 2 * g.cp + 4 * n + 4 * (size_t)g.cs * nt;
    const size_t m1 = levels > 1 ? (size_t)(width >> 1) * (height >> 1) : 0;
    float *arena = gl_malloc(sizeof(float) * (work + (levels > 1 ? 6 * m1 + 2 * n : 0)));
    if (!arena) return GL_ENOMEM;
    /* coarse levels: the images area-averaged, the flow too (scaled); each
     * level's correction, upsampled, is added to the full-size flow */
    for (int s = levels - 1; s >= 1 && rc >= 0; s--) {
        const int lw = width >> s, lh = height >> s;
        if (lw < 8 || lh < 8) continue;
        const size_t m = (size_t)lw * lh;
        float *c0 = arena + work, *c1 = c0 + m, *u0 = c1 + m, *v0 = u0 + m, *u = v0 + m, *v = u + m,
              *up = c0 + 6 * m1;
        const float k = 1.0f / (float)(1 << s);
        if ((rc = dis_area_resize(i0, width, height, c0, lw, lh, 0)) >= 0 &&
            (rc = dis_area_resize(i1, width, height, c1, lw, lh, 0)) >= 0 &&
            (rc = dis_area_resize(flow->u, width, height, u0, lw, lh, 0)) >= 0 &&
            (rc = dis_area_resize(flow->v, width, height, v0, lw, lh, 0)) >= 0) {
            for (size_t p = 0; p < m; p++) {
                u[p] = u0[p] *= k;
                v[p] = v0[p] *= k;
            }
            rc = refine_level(c0, c1, lw, lh, cfg, linearisations, u, v, arena, nt);
        }
        if (rc >= 0) {
            for (size_t p = 0; p < m; p++) {
                u[p] -= u0[p];
                v[p] -= v0[p];
            }
            rc = dis_upsample(u, v, lw, lh, up, up + n, width, height, (float)(1 << s));
        }
        for (size_t p = 0; rc >= 0 && p < n; p++) {
            flow->u[p] += up[p];
            flow->v[p] += up[n + p];
        }
    }
    if (rc >= 0) rc = refine_level(i0, i1, width, height, cfg, linearisations, flow->u, flow->v, arena, nt);
    gl_free(arena);
    return rc < 0 ? rc : 0;
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
