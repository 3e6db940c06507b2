/* stabilize_private.h — what the files of video stabilization
 * (motion/stabilize.h) share: stabilize.c (the plan, the warp, the measures)
 * and stabilize_path.c (the smooth camera path). Private to
 * motion/stabilize*.c.
 *
 * Inside these files transforms are affine 3x3 matrices in *centred* pixel
 * coordinates (x - (W-1)/2, y - (H-1)/2): the crop window is then a scaling
 * about the origin, and a rotation of the frame about its centre has no
 * translation part, so the L1 cost does not mix the two. The API speaks plain
 * pixel coordinates (motion/flow.h). */
#ifndef GLOCAL_MOTION_STABILIZE_PRIVATE_H
#define GLOCAL_MOTION_STABILIZE_PRIVATE_H

#include <string.h>

#include "motion/stabilize.h"

static inline void stab_mat_identity(double m[9])
{
    memset(m, 0, 9 * sizeof *m);
    m[0] = m[4] = m[8] = 1;
}

/* Element-wise kernel average with point-reflected ends (any [n][9] stack):
 * the Gaussian path of `smoothing` frames a side. */
void stab_gaussian_stack(const double *p, int n, int smoothing, double *out);

/* The L1-optimal smooth path (Grundmann et al. 2011) of the centred affine
 * frame-to-frame motions F [n][9] (F_t: frame t -> t-1; F[0] unused), with
 * the crop window s of half sides hx, hy inside every frame: the centred
 * updates Bc [n][9], solved window by window (c->window, c->overlap). */
int stab_l1_path(const double *F, int n, double hx, double hy, double s, const stab_config *c, double *Bc);

#endif
