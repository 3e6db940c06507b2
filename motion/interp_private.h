/* interp_private.h — the interpolation the motion files share (and the
 * target clones of their row kernels, MOTION_KERNEL): the cubic
 * kernel of TV-L1's warps (tvl1.c) and of GLOCAL's alignment of the next
 * frame before the local flow (glocal_infer.c); bilinear sampling inside
 * the image for the robust refinement (glocal_refine.c) and the fusion of
 * two flows (flow_fuse.c); window sums for that fusion and for the LME's
 * support test (glocal_infer.c). Private to motion/. */
#ifndef GLOCAL_MOTION_INTERP_PRIVATE_H
#define GLOCAL_MOTION_INTERP_PRIVATE_H

/* The hot row kernels of motion/ (TV-L1's, DIS's, the refinement's normal
 * equations): the project is compiled for baseline x86-64, so GCC also
 * builds an AVX2 clone of each, picked at run time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MOTION_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define MOTION_KERNEL
#endif
/* ... and GCC if-converts a loop's comparisons into vector selects only
 * when it may assume they do not trap (no FP traps are enabled here; the
 * results are the same). */
#if defined(__GNUC__) && !defined(__clang__)
#define MOTION_NOTRAP __attribute__((optimize("no-trapping-math")))
#else
#define MOTION_NOTRAP
#endif

/* Keys' cubic convolution (a = -0.5, as IPOL's TV-L1): the weights of the
 * four samples at offsets -1, 0, 1, 2 from the left one, for a point t in
 * [0, 1) past it. */
static inline void cubic_weights(float t, float wt[4])
{
    wt[0] = ((-0.5f * t + 1.0f) * t - 0.5f) * t;
    wt[1] = (1.5f * t - 2.5f) * t * t + 1.0f;
    wt[2] = ((-1.5f * t + 2.0f) * t + 0.5f) * t;
    wt[3] = (0.5f * t - 0.5f) * t * t;
}

/* img (w x h, w, h >= 2) at (x, y), bilinear; *inside = 1 when the point
 * is in [0, w-1] x [0, h-1], else 0 (also for NaN), and then the value is
 * img's at (0, 0), to be ignored. No branches, so a loop over it vectorises
 * (glocal_refine.c's warp_row gathers; int offsets: images under 2^31
 * pixels). */
#if defined(__GNUC__)
__attribute__((always_inline)) /* also into MOTION_NOTRAP kernels, whose options differ */
#endif
static inline float bilinear_at(const float *img, int w, int h, double x, double y, int *inside)
{
    const int in = (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1);
    const double xc = in ? x : 0, yc = in ? y : 0;
    int x0 = (int)xc, y0 = (int)yc;
    x0 = x0 >= w - 1 ? w - 2 : x0;
    y0 = y0 >= h - 1 ? h - 2 : y0;
    const double fx = xc - x0, fy = yc - y0;
    const int o = y0 * w + x0;
    *inside = in;
    return (float)((1 - fy) * ((1 - fx) * img[o] + fx * img[o + 1]) + fy * ((1 - fx) * img[o + w] + fx * img[o + w + 1]));
}

/* *out = img at (x, y) as bilinear_at; 0 (and *out untouched) when the
 * point is outside or not a number, else 1. */
static inline int bilinear_inside(const float *img, int w, int h, double x, double y, float *out)
{
    int in;
    const float v = bilinear_at(img, w, h, x, y, &in);
    if (in) *out = v;
    return in;
}

/* 2x2 box average of src (w x h) into dst (w/2 x h/2); odd last rows and
 * columns are dropped. (glocal_refine.c's pyramid, glocal_search.c's
 * search level.) */
static inline void down2(const float *src, int w, int h, float *dst)
{
    int w2 = w / 2, h2 = h / 2;
    for (int y = 0; y < h2; y++)
        for (int x = 0; x < w2; x++) {
            const float *p = src + (long)(2 * y) * w + 2 * x;
            dst[(long)y * w2 + x] = 0.25f * (p[0] + p[1] + p[w] + p[w + 1]);
        }
}

/* Window sums of the (2r+1) x (2r+1) square around each pixel, clipped at
 * the border (running sums: a row pass into t, a column pass back into e).
 * (flow_fuse.c compares two flows' errors summed over the same windows;
 * glocal_infer.c's box_mean divides by the window's pixel count.) */
static inline void box_sum(float *e, float *t, int w, int h, int r)
{
    for (int y = 0; y < h; y++) {
        const float *row = e + (size_t)y * w;
        double s = 0;
        for (int x = 0; x <= r && x < w; x++) s += row[x];
        for (int x = 0; x < w; x++) {
            t[(size_t)y * w + x] = (float)s;
            if (x + r + 1 < w) s += row[x + r + 1];
            if (x - r >= 0) s -= row[x - r];
        }
    }
    for (int x = 0; x < w; x++) {
        double s = 0;
        for (int y = 0; y <= r && y < h; y++) s += t[(size_t)y * w + x];
        for (int y = 0; y < h; y++) {
            e[(size_t)y * w + x] = (float)s;
            if (y + r + 1 < h) s += t[(size_t)(y + r + 1) * w + x];
            if (y - r >= 0) s -= t[(size_t)(y - r) * w + x];
        }
    }
}

#endif
