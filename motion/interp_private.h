/* interp_private.h — the cubic interpolation kernel the motion files share:
 * TV-L1's warps (tvl1.c) and GLOCAL's alignment of the next frame before
 * the local flow (glocal_infer.c). Private to motion/. */
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

#endif
