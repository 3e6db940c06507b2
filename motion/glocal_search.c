/* glocal_search.c — a start for the robust refinement found by search, not
 * by descent: block matching over a wide window, then RANSAC.
 *
 * The refinement (glocal_refine.c) descends from its starts: the network's
 * homography and DIS + RANSAC fits, which DIS reaches coarse to fine by
 * gradient steps too. Pairs whose camera moved far in perspective (corners
 * 12-17 px at 128^2) leave every one of those starts outside the basin of
 * the true alignment, although the truth has the wider photometric
 * consensus and a refinement started at it stays there (so diagnosed on
 * the training photos' failed pairs). Here each small block of A
 * is looked for in B over every displacement within +-SEARCH_RANGE of the
 * frame (zero-mean normalised cross-correlation, exhaustive), so a block
 * finds its match however far the descent would have had to go; RANSAC
 * then keeps the blocks that one homography explains. Small blocks because
 * perspective distorts a large one (a prototype with OpenCV's
 * matchTemplate on 10 failed pairs of the training photos, 128^2 +-16 px:
 * blocks of 12 px every 6 brought 8 within 1.8 px, of 16 px every 8 five,
 * of 32 px every 16 two). */
#include <math.h>
#include <string.h>

#include "motion/flow.h"
#include "motion/glocal_private.h"
#include "motion/interp_private.h"

/* The search runs on the first halving of the frame whose shorter side is
 * at most SEARCH_SIDE (128^2: the frame itself; 256^2: 128^2). */
#define SEARCH_SIDE 160
#define SEARCH_BLOCK 12
#define SEARCH_STEP 6
/* displacements within +-SEARCH_RANGE of the searched level's shorter side
 * in x and y (20 px at 128^2; the benchmark's largest corner motion is
 * 1/8 of the side) */
#define SEARCH_RANGE 0.16
/* a block whose grey levels (0..255) vary by less than this (standard
 * deviation) matches anything: skipped */
#define SEARCH_FLAT 2.0
/* RANSAC's inlier distance at the searched level, px */
#define SEARCH_RANSAC_PX 2.0
/* fewer inlier blocks than this: no start */
#define SEARCH_MIN_INLIERS 12
/* a further fit while the fits so far explain under this share of the
 * matched blocks */
#define SEARCH_AGAIN_BELOW 0.5

/* acc[j][i] = sum over the block t (k x k, row stride k) of t * B at the
 * block's place shifted by (i, j): b points at B's sample for shift (0, 0)
 * of the block's top-left, ni shifts in x, nj in y. */
MOTION_KERNEL
static void correlate(const float *t, int k, const float *b, int stride, int ni, int nj, float *acc)
{
    for (int j = 0; j < nj; j++) {
        float *aj = acc + (size_t)j * ni;
        for (int i = 0; i < ni; i++) aj[i] = 0;
        for (int ty = 0; ty < k; ty++) {
            const float *row = b + (size_t)(j + ty) * stride;
            for (int tx = 0; tx < k; tx++) {
                const float c = t[ty * k + tx], *r = row + tx;
                for (int i = 0; i < ni; i++) aj[i] += c * r[i];
            }
        }
    }
}

/* img (width x height) halved until 1/f of its size (f a power of 2 > 1),
 * as a new buffer; NULL when out of memory. */
static float *level_of(const float *img, int width, int height, int f)
{
    float *cur = NULL;
    const float *s = img;
    for (int g = 1, w = width, h = height; g < f; g *= 2, w /= 2, h /= 2) {
        float *o = gl_malloc(sizeof(float) * (size_t)(w / 2) * (h / 2));
        if (o) down2(s, w, h, o);
        gl_free(cur);
        if (!(cur = o)) return NULL;
        s = cur;
    }
    return cur;
}

/* The vertex of the parabola through (-1, l), (0, c), (1, r), in [-0.5, 0.5]. */
static double parabola_peak(double l, double c, double r)
{
    const double d = l - 2 * c + r;
    if (!(d < 0)) return 0;
    double s = 0.5 * (l - r) / d;
    return s < -0.5 ? -0.5 : s > 0.5 ? 0.5 : s;
}

int glocal_search_homography(const float *a, const float *b, int width, int height, int max, double *hs,
                              float *inliers)
{
    if (!a || !b || !hs || max < 1 || width < 1 || height < 1)
        return gl_error(GL_EINVAL, "glocal_search_homography: need two frames (got %dx%d) and max >= 1 (got %d)",
                        width, height, max);
    if (width < 2 * SEARCH_BLOCK || height < 2 * SEARCH_BLOCK) return 0; /* too small to search */
    int f = 1, w = width, hh = height;
    while ((w < hh ? w : hh) > SEARCH_SIDE && (w / 2 < hh / 2 ? w / 2 : hh / 2) >= 2 * SEARCH_BLOCK) {
        w /= 2;
        hh /= 2;
        f *= 2;
    }
    const int K = SEARCH_BLOCK, R = (int)lround(SEARCH_RANGE * (w < hh ? w : hh)), side = 2 * R + 1;
    const int nbx = (w - K) / SEARCH_STEP + 1, nby = (hh - K) / SEARCH_STEP + 1, nb = nbx * nby;
    float *la = NULL, *lb = NULL, *acc = gl_malloc(sizeof(float) * side * side);
    double *s1 = gl_malloc(sizeof(double) * (w + 1) * (hh + 1)), *s2 = gl_malloc(sizeof(double) * (w + 1) * (hh + 1));
    double *src = gl_malloc(sizeof(double) * 4 * nb), *dst = gl_malloc(sizeof(double) * 4 * nb);
    int *where = gl_malloc(sizeof(int) * 3 * nb);
    uint8_t *in = gl_malloc((size_t)nb);
    float t[SEARCH_BLOCK * SEARCH_BLOCK];
    int rc = GL_ENOMEM, m = 0;
    if (!acc || !s1 || !s2 || !src || !dst || !where || !in) goto fail;
    if (f == 1) {
        la = (float *)a;
        lb = (float *)b;
    } else if (!(la = level_of(a, width, height, f)) || !(lb = level_of(b, width, height, f))) {
        goto fail;
    }
    /* integral images of B and B^2 at the level: each window's sum and energy */
    for (int x = 0; x <= w; x++) s1[x] = s2[x] = 0;
    for (int y = 0; y < hh; y++) {
        double r1 = 0, r2 = 0;
        double *p1 = s1 + (size_t)(y + 1) * (w + 1), *p2 = s2 + (size_t)(y + 1) * (w + 1);
        p1[0] = p2[0] = 0;
        for (int x = 0; x < w; x++) {
            const double v = lb[(size_t)y * w + x];
            r1 += v;
            r2 += v * v;
            p1[x + 1] = p1[x + 1 - (w + 1)] + r1;
            p2[x + 1] = p2[x + 1 - (w + 1)] + r2;
        }
    }
    const double kk = (double)K * K;
    for (int by = 0; by < nby; by++)
        for (int bx = 0; bx < nbx; bx++) {
            const int x0 = bx * SEARCH_STEP, y0 = by * SEARCH_STEP;
            double mean = 0, var = 0;
            for (int y = 0; y < K; y++)
                for (int x = 0; x < K; x++) mean += la[(size_t)(y0 + y) * w + x0 + x];
            mean /= kk;
            for (int y = 0; y < K; y++)
                for (int x = 0; x < K; x++) {
                    const double d = la[(size_t)(y0 + y) * w + x0 + x] - mean;
                    t[y * K + x] = (float)d;
                    var += d * d;
                }
            if (!(var >= SEARCH_FLAT * SEARCH_FLAT * kk)) continue;
            /* shifts keeping the block inside B */
            const int dx0 = -x0 > -R ? -x0 : -R, dx1 = w - K - x0 < R ? w - K - x0 : R;
            const int dy0 = -y0 > -R ? -y0 : -R, dy1 = hh - K - y0 < R ? hh - K - y0 : R;
            const int ni = dx1 - dx0 + 1, nj = dy1 - dy0 + 1;
            correlate(t, K, lb + (size_t)(y0 + dy0) * w + x0 + dx0, w, ni, nj, acc);
            /* normalised: acc / (|t| |B window - its mean|) */
            int bi = -1, bj = -1;
            double best = -2;
            for (int j = 0; j < nj; j++)
                for (int i = 0; i < ni; i++) {
                    const int X = x0 + dx0 + i, Y = y0 + dy0 + j;
                    const size_t o00 = (size_t)Y * (w + 1) + X, o11 = (size_t)(Y + K) * (w + 1) + X + K;
                    const size_t o01 = (size_t)Y * (w + 1) + X + K, o10 = (size_t)(Y + K) * (w + 1) + X;
                    const double sb = s1[o11] - s1[o01] - s1[o10] + s1[o00];
                    const double eb = s2[o11] - s2[o01] - s2[o10] + s2[o00] - sb * sb / kk;
                    const float z = eb > 1e-6 * kk ? (float)(acc[(size_t)j * ni + i] / sqrt(var * eb)) : -1.0f;
                    acc[(size_t)j * ni + i] = z;
                    if (z > best) {
                        best = z;
                        bi = i;
                        bj = j;
                    }
                }
            if (bi < 0) continue;
            const float *z = acc + (size_t)bj * ni + bi;
            const double sx = bi > 0 && bi < ni - 1 ? parabola_peak(z[-1], z[0], z[1]) : 0;
            const double sy = bj > 0 && bj < nj - 1 ? parabola_peak(z[-ni], z[0], z[ni]) : 0;
            /* centres, level pixels -> frame pixels (a level pixel is the
             * centre of its f x f box) */
            const double cx = x0 + 0.5 * (K - 1), cy = y0 + 0.5 * (K - 1);
            src[2 * m] = cx * f + 0.5 * (f - 1);
            src[2 * m + 1] = cy * f + 0.5 * (f - 1);
            dst[2 * m] = (cx + dx0 + bi + sx) * f + 0.5 * (f - 1);
            dst[2 * m + 1] = (cy + dy0 + bj + sy) * f + 0.5 * (f - 1);
            where[2 * m] = x0;
            where[2 * m + 1] = y0;
            m++;
        }
    rc = 0;
    if (m < SEARCH_MIN_INLIERS) goto fail; /* too few textured blocks: no start */
    homography_ransac_config c;
    homography_ransac_config_default(&c);
    c.threshold = SEARCH_RANSAC_PX * f;
    /* sequential RANSAC: a further fit to the matches the fits so far left
     * out, while those explain under SEARCH_AGAIN_BELOW of them (a textured
     * moving patch can outvote the camera) */
    int used = 0, left = m;
    int *idx = where + 2 * nb; /* the matches left: idx[0..left) */
    for (int i = 0; i < m; i++) idx[i] = i;
    while (rc < max && left >= SEARCH_MIN_INLIERS && (rc == 0 || used < SEARCH_AGAIN_BELOW * m)) {
        double *sl = src + 2 * m, *dl = dst + 2 * m; /* the left matches, packed after the first m */
        for (int i = 0; i < left; i++) {
            memcpy(sl + 2 * i, src + 2 * idx[i], 2 * sizeof(double));
            memcpy(dl + 2 * i, dst + 2 * idx[i], 2 * sizeof(double));
        }
        int nin = 0;
        if (homography_fit_ransac(sl, dl, left, &c, hs + 9 * rc, in, &nin) < 0) {
            gl_clear_error();
            break;
        }
        if (nin < SEARCH_MIN_INLIERS) break;
        if (inliers) { /* the frame pixels of the inlier blocks */
            float *o = inliers + (size_t)rc * width * height;
            memset(o, 0, sizeof(float) * (size_t)width * height);
            for (int i = 0; i < left; i++) {
                if (!in[i]) continue;
                const int X0 = where[2 * idx[i]] * f, Y0 = where[2 * idx[i] + 1] * f;
                for (int y = Y0; y < Y0 + K * f && y < height; y++)
                    for (int x = X0; x < X0 + K * f && x < width; x++) o[(size_t)y * width + x] = 1;
            }
        }
        int k = 0;
        for (int i = 0; i < left; i++)
            if (!in[i]) idx[k++] = idx[i];
        left = k;
        used += nin;
        rc++;
    }
fail:
    if (f > 1) {
        gl_free(la);
        gl_free(lb);
    }
    gl_free(acc);
    gl_free(s1);
    gl_free(s2);
    gl_free(src);
    gl_free(dst);
    gl_free(where);
    gl_free(in);
    return rc;
}
