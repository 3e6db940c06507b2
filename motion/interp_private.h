/* interp_private.h — the interpolation the motion files share: the cubic
 * kernel of TV-L1's warps (tvl1.c) and of GLOCAL's alignment of the next
 * frame before the local flow (glocal_infer.c); bilinear sampling inside
 * the image for the robust refinement (glocal_refine.c) and the fusion of
 * two flows (flow_fuse.c). Private to motion/. */
#ifndef GLOCAL_MOTION_INTERP_PRIVATE_H
#define GLOCAL_MOTION_INTERP_PRIVATE_H

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

/* *out = img (w x h, w, h >= 2) at (x, y), bilinear; 0 (and *out untouched)
 * when the point is outside [0, w-1] x [0, h-1] or not a number, else 1. */
static inline int bilinear_inside(const float *img, int w, int h, double x, double y, float *out)
{
    if (!(x >= 0 && y >= 0 && x <= w - 1 && y <= h - 1)) return 0;
    int x0 = (int)x, y0 = (int)y;
    if (x0 >= w - 1) x0 = w - 2;
    if (y0 >= h - 1) y0 = h - 2;
    double fx = x - x0, fy = y - y0;
    const float *p = img + (long)y0 * w + x0;
    *out = (float)((1 - fy) * ((1 - fx) * p[0] + fx * p[1]) + fy * ((1 - fx) * p[w] + fx * p[w + 1]));
    return 1;
}

#endif
