/* TV-L1 optical flow (Zach, Pock & Bischof, DAGM 2007), following the
 * analysis and reference code of Sánchez, Meinhardt-Llopis & Facciolo,
 * "TV-L1 Optical Flow Estimation", IPOL 2013 (equation numbers below are
 * that paper's). See motion/flow.h for the parameters.
 *
 * Speed: every image is a separate float32 plane (SoA). One primal-dual
 * iteration is one pass over the rows, split across threads with
 * gl_parallel_for: per row the primal step (thresholding + divergence + u
 * update) and, one row behind, the dual step (forward gradient +
 * projection), so a row is reused while in cache. The row kernels take
 * restrict pointers and have no branches in the inner loop, so the compiler
 * vectorises them, with an AVX2 clone picked at run time (MOTION_KERNEL). */
#include <math.h>
#include <string.h>

#include "motion/flow.h"
#include "motion/interp_private.h"

#if defined(__GNUC__) && !defined(__clang__)
/* GCC vectorises sqrtf only when it cannot set errno; the project builds
 * with -fmath-errno and the optimize attribute does not change builtins.
 * Every sqrtf in this file takes a sum of squares or a positive constant,
 * so it never sets errno and declaring it const is true here. */
float sqrtf(float) __attribute__((const, nothrow, leaf));
#endif

/* Below this squared gradient the data term gives no direction (IPOL's
 * GRAD_IS_ZERO). */
#define GRAD_IS_ZERO 1e-10f

void tvl1_config_default(tvl1_config *c)
{
    c->tau = 0.25f;
    c->lambda = 0.15f;
    c->theta = 0.3f;
    c->epsilon = 0.01f;
    c->zoom = 0.5f;
    c->scales = 0;
    c->warps = 5;
    c->iterations = 300;
    c->median = 0;
    c->median_every = 0;
    c->presmooth = 0.8f;
    c->normalize = 1;
    c->antialias = 1;
}

void tvl1_config_opencv(tvl1_config *c)
{
    tvl1_config_default(c);
    c->zoom = 0.8f;
    c->scales = 5;
    c->iterations = 300; /* outerIterations 10 x innerIterations 30 */
    c->median = 5;
    c->median_every = 30;
    c->presmooth = 0;
    c->normalize = 0;
    c->antialias = 0;
}

int tvl1_config_validate(const tvl1_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "tvl1 config: NULL");
    if (!(c->tau > 0 && c->tau <= 0.25f))
        return gl_error(GL_EINVAL, "tvl1 config: tau = %g, expected 0 < tau <= 0.25", c->tau);
    if (!(c->lambda > 0 && isfinite(c->lambda)))
        return gl_error(GL_EINVAL, "tvl1 config: lambda = %g, expected > 0", c->lambda);
    if (!(c->theta > 0 && isfinite(c->theta)))
        return gl_error(GL_EINVAL, "tvl1 config: theta = %g, expected > 0", c->theta);
    if (!(c->epsilon > 0 && isfinite(c->epsilon)))
        return gl_error(GL_EINVAL, "tvl1 config: epsilon = %g, expected > 0", c->epsilon);
    if (!(c->zoom > 0 && c->zoom < 1))
        return gl_error(GL_EINVAL, "tvl1 config: zoom = %g, expected 0 < zoom < 1", c->zoom);
    if (c->scales < 0 || c->scales > 100)
        return gl_error(GL_EINVAL, "tvl1 config: scales = %d, expected 0 (auto) .. 100",
                        c->scales);
    if (c->warps < 1 || c->warps > 1000)
        return gl_error(GL_EINVAL, "tvl1 config: warps = %d, expected 1 .. 1000", c->warps);
    if (c->iterations < 1 || c->iterations > 100000)
        return gl_error(GL_EINVAL, "tvl1 config: iterations = %d, expected 1 .. 100000",
                        c->iterations);
    if (!(c->median == 0 || c->median == 3 || c->median == 5))
        return gl_error(GL_EINVAL, "tvl1 config: median = %d, expected 0 (off), 3 or 5",
                        c->median);
    if (c->median_every < 0)
        return gl_error(GL_EINVAL, "tvl1 config: median_every = %d, expected >= 0",
                        c->median_every);
    if (!(c->presmooth >= 0 && c->presmooth <= 10))
        return gl_error(GL_EINVAL, "tvl1 config: presmooth = %g, expected 0 .. 10 px",
                        c->presmooth);
    if (c->normalize != 0 && c->normalize != 1)
        return gl_error(GL_EINVAL, "tvl1 config: normalize = %d, expected 0 or 1", c->normalize);
    if (c->antialias != 0 && c->antialias != 1)
        return gl_error(GL_EINVAL, "tvl1 config: antialias = %d, expected 0 or 1", c->antialias);
    return 0;
}

/* ---- image helpers (once per scale: not the hot path) ------------------- */

static int clampi(int x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : x; }

/* Separable Gaussian blur, edges replicated. tmp: w*h floats. */
static int gaussian_blur(float *img, int w, int h, float sigma)
{
    if (!(sigma > 0)) return 0;
    int r = (int)ceilf(3 * sigma);
    if (r < 1) r = 1;
    float *k = gl_malloc(sizeof(float) * (size_t)(2 * r + 1));
    float *tmp = gl_malloc(sizeof(float) * (size_t)w * h);
    if (!k || !tmp) {
        gl_free(tmp);
        gl_free(k);
        return GL_ENOMEM;
    }
    float s = 0;
    for (int i = -r; i <= r; i++) s += k[i + r] = expf(-0.5f * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= s;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float a = 0;
            for (int i = -r; i <= r; i++) a += k[i + r] * img[(size_t)y * w + clampi(x + i, 0, w - 1)];
            tmp[(size_t)y * w + x] = a;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float a = 0;
            for (int i = -r; i <= r; i++) a += k[i + r] * tmp[(size_t)clampi(y + i, 0, h - 1) * w + x];
            img[(size_t)y * w + x] = a;
        }
    gl_free(tmp);
    gl_free(k);
    return 0;
}

static float bilinear(const float *img, int w, int h, float x, float y)
{
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > w - 1) x = (float)(w - 1);
    if (y > h - 1) y = (float)(h - 1);
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    float fx = x - x0, fy = y - y0;
    const float *r0 = img + (size_t)y0 * w, *r1 = img + (size_t)y1 * w;
    return (1 - fy) * ((1 - fx) * r0[x0] + fx * r0[x1]) + fy * ((1 - fx) * r1[x0] + fx * r1[x1]);
}

/* IPOL zoom_out: anti-alias with sigma = 0.6 sqrt(1/z^2 - 1) (OpenCV skips
 * this), then sample the source at (x / fx, y / fy), fx = dst width / src
 * width. */
static int zoom_out(const float *src, int w, int h, float *dst, int wd, int hd, float zoom,
                    int antialias)
{
    float *tmp = gl_malloc(sizeof(float) * (size_t)w * h);
    if (!tmp) return GL_ENOMEM;
    memcpy(tmp, src, sizeof(float) * (size_t)w * h);
    int rc = antialias ? gaussian_blur(tmp, w, h, 0.6f * sqrtf(1 / (zoom * zoom) - 1)) : 0;
    if (rc < 0) {
        gl_free(tmp);
        return rc;
    }
    float fx = (float)wd / w, fy = (float)hd / h;
    for (int y = 0; y < hd; y++)
        for (int x = 0; x < wd; x++) dst[(size_t)y * wd + x] = bilinear(tmp, w, h, x / fx, y / fy);
    gl_free(tmp);
    return 0;
}

/* Centred differences, one-sided (halved) at the edges as in IPOL's
 * centered_gradient. */
static void centered_gradient(const float *img, int w, int h, float *gx, float *gy)
{
    for (int y = 0; y < h; y++) {
        const float *r = img + (size_t)y * w;
        const float *ru = img + (size_t)clampi(y - 1, 0, h - 1) * w;
        const float *rd = img + (size_t)clampi(y + 1, 0, h - 1) * w;
        for (int x = 0; x < w; x++) {
            gx[(size_t)y * w + x] = 0.5f * (r[clampi(x + 1, 0, w - 1)] - r[clampi(x - 1, 0, w - 1)]);
            gy[(size_t)y * w + x] = 0.5f * (rd[x] - ru[x]);
        }
    }
}

/* ---- median filter: a sorting network applied across a whole row -------- */

/* Batcher's odd-even merge sort network for n (a power of two) inputs,
 * keeping only the comparators among the first m (the rest hold +inf and
 * never move), then only those the median position depends on. */
static int median_network(int m, int (*cmp)[2], int max_cmp)
{
    int n = 1;
    while (n < m) n <<= 1;
    int cnt = 0;
    for (int p = 1; p < n; p <<= 1)
        for (int k = p; k >= 1; k >>= 1)
            for (int j = k % p; j + k < n; j += 2 * k)
                for (int i = 0; i < k && i + j + k < n; i++)
                    if ((i + j) / (2 * p) == (i + j + k) / (2 * p) && i + j + k < m) {
                        if (cnt == max_cmp) return -1;
                        cmp[cnt][0] = i + j;
                        cmp[cnt][1] = i + j + k;
                        cnt++;
                    }
    /* Backward pass: drop comparators that cannot reach position m/2. */
    uint64_t need = 1ull << (m / 2);
    int kept = 0;
    for (int c = cnt - 1; c >= 0; c--) {
        uint64_t bits = 1ull << cmp[c][0] | 1ull << cmp[c][1];
        if (need & bits) {
            need |= bits;
            cmp[c][0] |= 1 << 16; /* mark kept */
            kept++;
        }
    }
    int o = 0;
    for (int c = 0; c < cnt; c++)
        if (cmp[c][0] & 1 << 16) {
            cmp[o][0] = cmp[c][0] & 0xffff;
            cmp[o][1] = cmp[c][1];
            o++;
        }
    return kept;
}

MOTION_KERNEL
static void minmax_row(float *restrict a, float *restrict b, int w)
{
    for (int x = 0; x < w; x++) {
        float lo = a[x] < b[x] ? a[x] : b[x];
        float hi = a[x] < b[x] ? b[x] : a[x];
        a[x] = lo;
        b[x] = hi;
    }
}

typedef struct {
    const float *src;
    float *dst;
    float *scratch; /* per block: size*size rows of w floats */
    int w, h, size, grain, ncmp;
    int (*cmp)[2];
} median_ctx;

static int median_range(void *vctx, long begin, long end)
{
    median_ctx *m = vctx;
    int w = m->w, r = m->size / 2, taps = m->size * m->size;
    float *rows = m->scratch + (size_t)(begin / m->grain) * taps * w;
    for (long y = begin; y < end; y++) {
        int t = 0;
        for (int dy = -r; dy <= r; dy++) {
            const float *s = m->src + (size_t)clampi((int)y + dy, 0, m->h - 1) * w;
            for (int dx = -r; dx <= r; dx++, t++) {
                float *d = rows + (size_t)t * w;
                /* the row shifted by dx, edges replicated */
                int lo = dx < 0 ? -dx : 0, hi = dx > 0 ? w - dx : w;
                if (lo > w) lo = w;
                if (hi < lo) hi = lo;
                for (int x = 0; x < lo; x++) d[x] = s[clampi(x + dx, 0, w - 1)];
                memcpy(d + lo, s + lo + dx, sizeof(float) * (size_t)(hi - lo));
                for (int x = hi; x < w; x++) d[x] = s[clampi(x + dx, 0, w - 1)];
            }
        }
        for (int c = 0; c < m->ncmp; c++)
            minmax_row(rows + (size_t)m->cmp[c][0] * w, rows + (size_t)m->cmp[c][1] * w, w);
        memcpy(m->dst + (size_t)y * w, rows + (size_t)(taps / 2) * w, sizeof(float) * w);
    }
    return 0;
}

int flow_median_filter(float *plane, int width, int height, int size)
{
    if (!plane || width <= 0 || height <= 0)
        return gl_error(GL_EINVAL, "flow_median_filter: bad plane %dx%d", width, height);
    if (size != 3 && size != 5 && size != 7)
        return gl_error(GL_EINVAL, "flow_median_filter: size %d, expected 3, 5 or 7", size);
    int cmp[1024][2];
    int ncmp = median_network(size * size, cmp, 1024);
    if (ncmp < 0) return gl_error(GL_EINVAL, "flow_median_filter: network too large");
    int nt = gl_num_threads();
    /* a small plane is not worth starting threads for */
    int grain = (long)width * height < 16384 ? height : (height + nt - 1) / nt;
    int blocks = (height + grain - 1) / grain;
    size_t n = (size_t)width * height;
    float *src = gl_malloc(sizeof(float) * n);
    float *scratch = gl_malloc(sizeof(float) * (size_t)blocks * size * size * width);
    int rc = 0;
    if (!src || !scratch) {
        rc = GL_ENOMEM;
        goto fail;
    }
    memcpy(src, plane, sizeof(float) * n);
    median_ctx m = { .src = src, .dst = plane, .scratch = scratch, .w = width, .h = height,
                     .size = size, .grain = grain, .ncmp = ncmp, .cmp = cmp };
    rc = gl_parallel_for(height, grain, median_range, &m);
fail:
    gl_free(scratch);
    gl_free(src);
    return rc;
}

/* ---- the primal-dual iterations (the hot path) -------------------------- */

typedef struct {
    int w, h;
    const float *i0, *i1, *i1x, *i1y; /* this scale */
    float *u, *v;
    float *p11, *p12, *p21, *p22;     /* p12, p22: a zero row sits before row 0 */
    float *ix, *iy, *igrad, *rhoc;    /* I1w_x, I1w_y, 1/max(|grad I1w|^2, GRAD_IS_ZERO),
                                         rho_c (eq. 27) */
    float *e;                         /* per block: one row of squared updates */
    double *err_row;                  /* per row: sum of squared updates */
    long grain;                       /* rows per parallel block */
    float lt, theta, taut;
} tvl1_ctx;

/* Warp I1 and its gradient by the current flow (bicubic), then the
 * linearisation constants of eq. 27. Points warped outside the image get a
 * zero gradient: the data term is off there and only the TV term acts (IPOL's
 * border_out). */
static int warp_range(void *vctx, long begin, long end)
{
    tvl1_ctx *c = vctx;
    int w = c->w, h = c->h;
    for (long y = begin; y < end; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            float xw = x + c->u[i], yw = (float)y + c->v[i];
            if (!(xw >= 0 && xw <= w - 1 && yw >= 0 && yw <= h - 1)) {
                c->ix[i] = c->iy[i] = 0;
                c->igrad[i] = 1 / GRAD_IS_ZERO;
                c->rhoc[i] = -c->i0[i];
                continue;
            }
            int x0 = (int)xw, y0 = (int)yw;
            float wx[4], wy[4];
            cubic_weights(xw - x0, wx);
            cubic_weights(yw - y0, wy);
            int xs[4];
            for (int k = 0; k < 4; k++) xs[k] = clampi(x0 - 1 + k, 0, w - 1);
            float a = 0, ax = 0, ay = 0;
            for (int j = 0; j < 4; j++) {
                size_t row = (size_t)clampi(y0 - 1 + j, 0, h - 1) * w;
                float ra = 0, rx = 0, ry = 0;
                for (int k = 0; k < 4; k++) {
                    ra += wx[k] * c->i1[row + xs[k]];
                    rx += wx[k] * c->i1x[row + xs[k]];
                    ry += wx[k] * c->i1y[row + xs[k]];
                }
                a += wy[j] * ra;
                ax += wy[j] * rx;
                ay += wy[j] * ry;
            }
            c->ix[i] = ax;
            c->iy[i] = ay;
            float g = ax * ax + ay * ay;
            c->igrad[i] = 1 / (g > GRAD_IS_ZERO ? g : GRAD_IS_ZERO);
            c->rhoc[i] = a - ax * c->u[i] - ay * c->v[i] - c->i0[i];
        }
    return 0;
}

/* One pixel of the primal step: thresholding (eq. 31-32) gives v, then
 * u = v + theta div p (eq. 24), div p by backward differences with p = 0
 * outside the image (IPOL's divergence); L1/L2 are p11/p21 one pixel to the
 * left. The three cases of eq. 31 are one clamp: v = u + f grad I1 with
 * f = clamp(-rho / |grad I1|^2, -lambda theta, lambda theta), which the
 * compiler turns into selects (branches would not vectorise); the reciprocal
 * is computed once per warp. Where |grad I1|^2 < GRAD_IS_ZERO, f*grad is ~0
 * as IPOL's d = 0. A macro, not a function: an inline function would not be
 * inlined into the target clones. */
#define PRIMAL_PX(x, L1, L2)                                                                 \
    do {                                                                                     \
        float u0 = u[x], v0 = v[x];                                                          \
        float rho = rhoc[x] + ix[x] * u0 + iy[x] * v0;                                       \
        float f = -rho * igrad[x];                                                           \
        f = f < -lt ? -lt : f;                                                               \
        f = f > lt ? lt : f;                                                                 \
        float u1 = u0 + f * ix[x] + theta * ((p11[x] - (L1)) + (p12[x] - p12u[x]));          \
        float u2 = v0 + f * iy[x] + theta * ((p21[x] - (L2)) + (p22[x] - p22u[x]));          \
        e[x] = (u1 - u0) * (u1 - u0) + (u2 - v0) * (u2 - v0);                                \
        u[x] = u1;                                                                           \
        v[x] = u2;                                                                           \
    } while (0)

MOTION_KERNEL
static void primal_row(int w, const float *restrict rhoc, const float *restrict ix,
                       const float *restrict iy, const float *restrict igrad,
                       const float *restrict p11, const float *restrict p12,
                       const float *restrict p12u, const float *restrict p21,
                       const float *restrict p22, const float *restrict p22u, float *restrict u,
                       float *restrict v, float *restrict e, float lt, float theta)
{
    PRIMAL_PX(0, 0.f, 0.f);
    for (int x = 1; x < w; x++) PRIMAL_PX(x, p11[x - 1], p21[x - 1]);
}

/* Forward gradient of u (zero across the last column / row) and the dual
 * projection p = (p + taut grad u) / (1 + taut |grad u|) (eq. 26). */
MOTION_KERNEL
static void dual_row(int w, const float *restrict u, const float *restrict ud,
                     const float *restrict v, const float *restrict vd, float *restrict p11,
                     float *restrict p12, float *restrict p21, float *restrict p22, float taut)
{
    for (int x = 0; x < w - 1; x++) {
        float ux = u[x + 1] - u[x], uy = ud[x] - u[x];
        float vx = v[x + 1] - v[x], vy = vd[x] - v[x];
        float n1 = 1 / (1 + taut * sqrtf(ux * ux + uy * uy));
        float n2 = 1 / (1 + taut * sqrtf(vx * vx + vy * vy));
        p11[x] = (p11[x] + taut * ux) * n1;
        p12[x] = (p12[x] + taut * uy) * n1;
        p21[x] = (p21[x] + taut * vx) * n2;
        p22[x] = (p22[x] + taut * vy) * n2;
    }
    int x = w - 1;
    float uy = ud[x] - u[x], vy = vd[x] - v[x];
    float n1 = 1 / (1 + taut * fabsf(uy)), n2 = 1 / (1 + taut * fabsf(vy));
    p11[x] = p11[x] * n1;
    p12[x] = (p12[x] + taut * uy) * n1;
    p21[x] = p21[x] * n2;
    p22[x] = (p22[x] + taut * vy) * n2;
}

/* Sum with 16 independent lanes, so it vectorises without reassociating. */
MOTION_KERNEL
static double row_sum(const float *restrict e, int w)
{
    float acc[16] = { 0 };
    int x = 0;
    for (; x + 16 <= w; x += 16)
        for (int k = 0; k < 16; k++) acc[k] += e[x + k];
    double s = 0;
    for (; x < w; x++) s += e[x];
    for (int k = 0; k < 16; k++) s += acc[k];
    return s;
}

static void dual_at(tvl1_ctx *c, long y)
{
    int w = c->w;
    size_t o = (size_t)y * w, od = y + 1 < c->h ? o + w : o; /* last row: d/dy = 0 */
    dual_row(w, c->u + o, c->u + od, c->v + o, c->v + od, c->p11 + o, c->p12 + o, c->p21 + o,
             c->p22 + o, c->taut);
}

/* One iteration over a block of rows, primal and dual fused with a one-row
 * lag so that each row is still in cache for the dual step: primal(y) reads
 * p at rows y and y-1 before dual(y-1) updates row y-1, and dual(y-1) reads
 * u at rows y-1 and y after primal(y) wrote them — the same values as two
 * separate passes. The block's last row needs u from the next block: its
 * dual step waits for dual_block_ends. */
static int iterate_range(void *vctx, long begin, long end)
{
    tvl1_ctx *c = vctx;
    int w = c->w;
    float *e = c->e + (size_t)(begin / c->grain) * w;
    for (long y = begin; y < end; y++) {
        size_t o = (size_t)y * w;
        primal_row(w, c->rhoc + o, c->ix + o, c->iy + o, c->igrad + o, c->p11 + o, c->p12 + o,
                   c->p12 + o - w, c->p21 + o, c->p22 + o, c->p22 + o - w, c->u + o, c->v + o,
                   e, c->lt, c->theta);
        c->err_row[y] = row_sum(e, w);
        if (y > begin) dual_at(c, y - 1);
    }
    return 0;
}

static void dual_block_ends(tvl1_ctx *c)
{
    for (long b = 0; b < c->h; b += c->grain) {
        long last = b + c->grain < c->h ? b + c->grain - 1 : c->h - 1;
        dual_at(c, last);
    }
}

/* Rows per parallel block: one block per thread. gl_parallel_for starts
 * its threads on every call and an iteration costs a few ns per pixel, so
 * coarse scales (under 64k pixels, i.e. under ~100 us of work) stay on the
 * calling thread. */
#define TVL1_PARALLEL_MIN_PIXELS 65536

static long row_grain(int w, int h)
{
    int nt = gl_num_threads();
    if (nt <= 1 || (long)w * h < TVL1_PARALLEL_MIN_PIXELS) return h;
    return (h + nt - 1) / nt;
}

/* The iterations of one scale (IPOL alg. 1 inner loops). */
static int tvl1_scale(tvl1_ctx *c, const tvl1_config *cfg)
{
    int w = c->w, h = c->h;
    size_t n = (size_t)w * h;
    long grain = c->grain = row_grain(w, h);
    memset(c->p11, 0, sizeof(float) * n);
    memset(c->p21, 0, sizeof(float) * n);
    memset(c->p12 - w, 0, sizeof(float) * (n + w));
    memset(c->p22 - w, 0, sizeof(float) * (n + w));
    double eps2 = (double)cfg->epsilon * cfg->epsilon;
    int rc;
    for (int warp = 0; warp < cfg->warps; warp++) {
        rc = gl_parallel_for(h, grain, warp_range, c);
        if (rc < 0) return rc;
        double err = INFINITY;
        for (int it = 0; it < cfg->iterations && err > eps2; it++) {
            if (cfg->median && cfg->median_every > 0 && it % cfg->median_every == 0) {
                if ((rc = flow_median_filter(c->u, w, h, cfg->median)) < 0) return rc;
                if ((rc = flow_median_filter(c->v, w, h, cfg->median)) < 0) return rc;
            }
            if ((rc = gl_parallel_for(h, grain, iterate_range, c)) < 0) return rc;
            dual_block_ends(c);
            err = 0;
            for (int y = 0; y < h; y++) err += c->err_row[y];
            err /= (double)n;
            if (!isfinite(err))
                return gl_error(GL_ENUMERIC, "tvl1_flow: iterations diverged at %dx%d", w, h);
        }
        if (cfg->median && cfg->median_every == 0) {
            if ((rc = flow_median_filter(c->u, w, h, cfg->median)) < 0) return rc;
            if ((rc = flow_median_filter(c->v, w, h, cfg->median)) < 0) return rc;
        }
    }
    return 0;
}

#define MAX_SCALES 100

/* Long (~150 lines) on purpose: one pass of the paper's pyramid / warp /
 * iterate loop, read top to bottom next to Zach, Pock & Bischof (2007). */
int tvl1_flow(const float *i0, const float *i1, int width, int height, const tvl1_config *cfg,
              flow_field *flow)
{
    int rc = tvl1_config_validate(cfg);
    if (rc < 0) return rc;
    if (!i0 || !i1 || !flow || !flow->u)
        return gl_error(GL_EINVAL, "tvl1_flow: NULL image or empty flow field");
    if (width < 4 || height < 4)
        return gl_error(GL_EINVAL, "tvl1_flow: image %dx%d is smaller than 4x4", width, height);
    if (flow->width != width || flow->height != height)
        return gl_error(GL_EINVAL, "tvl1_flow: flow field is %dx%d, images are %dx%d",
                        flow->width, flow->height, width, height);
    for (size_t i = 0, n = (size_t)width * height; i < n; i++)
        if (!isfinite(i0[i]) || !isfinite(i1[i]))
            return gl_error(GL_EINVAL, "tvl1_flow: pixel %zu of an image is not finite", i);

    /* Scale count: IPOL's cap (coarsest diagonal about 16 px), and never a
     * side under 8 px. */
    int ns = (int)(1 + log(hypot(width, height) / 16.0) / log(1.0 / cfg->zoom));
    if (ns < 1) ns = 1;
    if (cfg->scales > 0 && cfg->scales < ns) ns = cfg->scales;
    if (ns > MAX_SCALES) ns = MAX_SCALES;
    int ws[MAX_SCALES], hs[MAX_SCALES];
    ws[0] = width;
    hs[0] = height;
    for (int s = 1; s < ns; s++) {
        ws[s] = (int)(ws[s - 1] * cfg->zoom + 0.5f);
        hs[s] = (int)(hs[s - 1] * cfg->zoom + 0.5f);
        if (ws[s] < 8 || hs[s] < 8) {
            ns = s;
            break;
        }
    }

    size_t n = (size_t)width * height;
    float *i0s[MAX_SCALES] = { 0 }, *i1s[MAX_SCALES] = { 0 };
    float *work = NULL, *uc = NULL, *e = NULL;
    double *err_row = NULL;
    tvl1_ctx c = { 0 };
    /* Pyramid (SoA planes). */
    for (int s = 0; s < ns; s++) {
        size_t m = (size_t)ws[s] * hs[s];
        i0s[s] = gl_malloc(sizeof(float) * m);
        i1s[s] = gl_malloc(sizeof(float) * m);
        if (!i0s[s] || !i1s[s]) {
            rc = GL_ENOMEM;
            goto fail;
        }
    }
    memcpy(i0s[0], i0, sizeof(float) * n);
    memcpy(i1s[0], i1, sizeof(float) * n);
    if (cfg->normalize) {
        float lo = i0[0], hi = i0[0];
        for (size_t i = 0; i < n; i++) {
            lo = fminf(lo, fminf(i0[i], i1[i]));
            hi = fmaxf(hi, fmaxf(i0[i], i1[i]));
        }
        if (hi > lo) {
            float k = 255.f / (hi - lo);
            for (size_t i = 0; i < n; i++) {
                i0s[0][i] = (i0[i] - lo) * k;
                i1s[0][i] = (i1[i] - lo) * k;
            }
        }
    }
    if ((rc = gaussian_blur(i0s[0], width, height, cfg->presmooth)) < 0) goto fail;
    if ((rc = gaussian_blur(i1s[0], width, height, cfg->presmooth)) < 0) goto fail;
    for (int s = 1; s < ns; s++) {
        rc = zoom_out(i0s[s - 1], ws[s - 1], hs[s - 1], i0s[s], ws[s], hs[s], cfg->zoom,
                      cfg->antialias);
        if (rc < 0) goto fail;
        rc = zoom_out(i1s[s - 1], ws[s - 1], hs[s - 1], i1s[s], ws[s], hs[s], cfg->zoom,
                      cfg->antialias);
        if (rc < 0) goto fail;
    }

    /* Working planes sized for the finest scale, reused at every scale. */
    enum { U, V, P11, P21, IX, IY, IGRAD, RHOC, I1X, I1Y, P12, P22, NPLANES };
    size_t stride = n + (size_t)width; /* room for the zero row of p12/p22 */
    work = gl_calloc(stride * NPLANES, sizeof(float));
    uc = gl_malloc(sizeof(float) * 2 * n);
    err_row = gl_malloc(sizeof(double) * (size_t)height);
    /* one row of squared updates per block; at most one block per thread */
    e = gl_malloc(sizeof(float) * (size_t)width * (size_t)(gl_num_threads() + 1));
    if (!work || !uc || !err_row || !e) {
        rc = GL_ENOMEM;
        goto fail;
    }
    c.u = work + U * stride;
    c.v = work + V * stride;
    c.p11 = work + P11 * stride;
    c.p21 = work + P21 * stride;
    c.ix = work + IX * stride;
    c.iy = work + IY * stride;
    c.igrad = work + IGRAD * stride;
    c.rhoc = work + RHOC * stride;
    c.e = e;
    c.err_row = err_row;
    float *i1x = work + I1X * stride, *i1y = work + I1Y * stride;
    c.lt = cfg->lambda * cfg->theta;
    c.theta = cfg->theta;
    c.taut = cfg->tau / cfg->theta;

    for (int s = ns - 1; s >= 0; s--) {
        int w = ws[s], h = hs[s];
        c.w = w;
        c.h = h;
        c.i0 = i0s[s];
        c.i1 = i1s[s];
        c.p12 = work + P12 * stride + w;
        c.p22 = work + P22 * stride + w;
        if (s == ns - 1) {
            memset(c.u, 0, sizeof(float) * (size_t)w * h);
            memset(c.v, 0, sizeof(float) * (size_t)w * h);
        } else {
            /* Upsample the coarser flow (IPOL zoom_in) and rescale it to
             * this scale's pixels. */
            int wc = ws[s + 1], hc = hs[s + 1];
            size_t mc = (size_t)wc * hc;
            memcpy(uc, c.u, sizeof(float) * mc);
            memcpy(uc + mc, c.v, sizeof(float) * mc);
            float fx = (float)wc / w, fy = (float)hc / h;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    size_t i = (size_t)y * w + x;
                    c.u[i] = bilinear(uc, wc, hc, x * fx, y * fy) / fx;
                    c.v[i] = bilinear(uc + mc, wc, hc, x * fx, y * fy) / fy;
                }
        }
        centered_gradient(c.i1, w, h, i1x, i1y);
        c.i1x = i1x;
        c.i1y = i1y;
        rc = tvl1_scale(&c, cfg);
        if (rc < 0) goto fail;
    }
    memcpy(flow->u, c.u, sizeof(float) * n);
    memcpy(flow->v, c.v, sizeof(float) * n);
    rc = 0;
fail:
    gl_free(e);
    gl_free(err_row);
    gl_free(uc);
    gl_free(work);
    for (int s = 0; s < ns; s++) {
        gl_free(i1s[s]);
        gl_free(i0s[s]);
    }
    return rc;
}
