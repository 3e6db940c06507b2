/* glocal_testutil.h — what test_glocal.c (checkpoints, training, inference,
 * `glocal motion`) and test_glocal_ops.c (bases, warp, losses, robust
 * refinement) share, with test_glocal_arch2.c and test_glocal_train.c: the
 * libtorch runtime as the group setup, a small untrained model, a smooth
 * texture, and pairs of it under a known homography. Test-only: static
 * inline functions (not every includer uses each). */
#ifndef GLOCAL_TESTS_GLOCAL_TESTUTIL_H
#define GLOCAL_TESTS_GLOCAL_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "motion/glocal.h"
#include "nn/nn.h"
#include "tests/testutil.h"

static inline int glocal_test_setup(void **state)
{
    (void)state;
    return nn_runtime_init(1, "cpu") < 0 ? -1 : 0;
}

/* A smooth continuous texture: sums of sinusoids (values ~0..1). */
static inline double texture(double x, double y)
{
    return 0.5 + 0.18 * sin(0.31 * x + 0.7) + 0.12 * sin(0.23 * y - 0.4) +
           0.1 * sin(0.17 * x + 0.29 * y) + 0.08 * cos(0.41 * x - 0.19 * y + 1.3);
}

/* A small untrained model of size S (GME arch, feat features, one
 * iteration), its weights drawn from seed. */
static inline glocal_model *glocal_test_model(int S, int arch, int feat, uint64_t seed)
{
    glocal_config c = glocal_config_default(S);
    c.arch = arch;
    c.feat = feat;
    c.iters = 1;
    nn_manual_seed(seed);
    glocal_model *m = NULL;
    OK(glocal_model_new(&m, &c));
    return m;
}

static inline void apply_h(const double h[9], double x, double y, double *xo, double *yo)
{
    double w = h[6] * x + h[7] * y + h[8];
    *xo = (h[0] * x + h[1] * y + h[2]) / w;
    *yo = (h[3] * x + h[4] * y + h[5]) / w;
}

static inline void inv3(const double m[9], double o[9])
{
    double c0 = m[4] * m[8] - m[5] * m[7], c1 = m[5] * m[6] - m[3] * m[8], c2 = m[3] * m[7] - m[4] * m[6];
    double det = m[0] * c0 + m[1] * c1 + m[2] * c2;
    double t[9] = { c0, m[2] * m[7] - m[1] * m[8], m[1] * m[5] - m[2] * m[4],
                    c1, m[0] * m[8] - m[2] * m[6], m[2] * m[3] - m[0] * m[5],
                    c2, m[1] * m[6] - m[0] * m[7], m[0] * m[4] - m[1] * m[3] };
    for (int i = 0; i < 9; i++) o[i] = t[i] / det;
}

static inline void render_pair(const double hgt[9], int W, int H, float *a, float *b, int patch)
{
    double hi[9];
    inv3(hgt, hi);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            a[y * W + x] = (float)(255 * texture(x, y));
            double xs, ys;
            apply_h(hi, x, y, &xs, &ys); /* B(q) = A(H^-1 q): B(H p) = A(p) */
            b[y * W + x] = (float)(255 * texture(xs, ys));
        }
    if (patch) /* an independently moving square: an outlier region in B */
        for (int y = 10; y < 22; y++)
            for (int x = 30; x < 44; x++) b[y * W + x] = (float)(255 * (((x / 3 + y / 3) & 1) ? 0.9 : 0.1));
}

/* render_pair without the patch, as grey RGB24 frames (8-bit quantised). */
static inline void render_pair_rgb(const double hgt[9], int W, int H, uint8_t *ra, uint8_t *rb)
{
    float *a = malloc(sizeof(float) * W * H), *b = malloc(sizeof(float) * W * H);
    assert_non_null(a);
    assert_non_null(b);
    render_pair(hgt, W, H, a, b, 0);
    for (int p = 0; p < W * H; p++) {
        ra[3 * p] = ra[3 * p + 1] = ra[3 * p + 2] = (uint8_t)lrintf(a[p]);
        rb[3 * p] = rb[3 * p + 1] = rb[3 * p + 2] = (uint8_t)lrintf(b[p]);
    }
    free(a);
    free(b);
}

#endif
