/* dis_private.h — what the files of DIS (motion/flow.h: dis_flow) share:
 * dis.c (configuration, inverse search, densification, the coarse-to-fine
 * loop), dis_resample.c (the pyramid and the upsampling, in OpenCV's
 * conventions) and dis_refine.c (the variational refinement). Private to
 * motion/dis*.c. */
#ifndef GLOCAL_MOTION_DIS_PRIVATE_H
#define GLOCAL_MOTION_DIS_PRIVATE_H

#include <stddef.h>

#include "motion/flow.h"
#include "motion/interp_private.h"

#if defined(__GNUC__)
#define DIS_INLINE static inline __attribute__((always_inline))
#else
#define DIS_INLINE static inline
#endif

/* Below these sizes a pass runs on the calling thread: gl_parallel_for
 * creates its threads on every call (about 25 us here when a core is free,
 * milliseconds when other jobs hold the cores), so only passes of a
 * millisecond or more are split: the patch search from 2048 patches, the
 * densification and the refinement's system from 64k pixels, the SOR
 * sweeps (one call per half-sweep) and the upsampling from 256k. */
#define DIS_PAR_PATCHES 2048
#define DIS_PAR_PIXELS 65536
#define DIS_PAR_BIG_PIXELS 262144

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

static inline rb_geom rb_make(int w, int h)
{
    rb_geom g = { w, h, (w + 1) / 2 + 2, 0 };
    g.cp = (size_t)(h + 2) * g.cs;
    return g;
}

/* The refinement's work planes (dis_flow takes them from its arena). */
typedef struct {
    float *split[19]; /* the var_ctx planes, each 2 colour planes */
    float *tmp[4];    /* full planes */
    float *halo;      /* 4 colour rows per thread */
} var_buffers;

/* dst (dw x dh) = area average of src (sw x sh), dw <= sw, dh <= sh. With
 * round, to whole grey levels as OpenCV's 8-bit pyramid: halves up at an
 * exact halving (its (a + b + c + d + 2) >> 2), else to nearest even (its
 * saturate_cast). */
int dis_area_resize(const float *src, int sw, int sh, float *dst, int dw, int dh, int round);

/* du, dv (dw x dh) = scale * bilinear(su, sv (sw x sh)). */
int dis_upsample(const float *su, const float *sv, int sw, int sh, float *du, float *dv, int dw,
                 int dh, float scale);

/* Refines (u, v) in place: var_refine_iters fixed-point iterations of
 * var_sor_iters SOR sweeps. b: buffers sized for at least this scale and
 * nt threads. */
int dis_var_refine(const float *i0, const float *i1, int w, int h, float *u, float *v,
                   const dis_config *cfg, const var_buffers *b, int nt);

#endif
