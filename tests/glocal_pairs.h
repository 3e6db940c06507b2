/* glocal_pairs.h — RGB24 frame pairs of a texture under random homographies
 * (known motion), for the GLOCAL training tests (test_glocal's hand-written
 * loop, test_glocal_train's glocal_train). Test-only: static functions. */
#ifndef GLOCAL_TESTS_GLOCAL_PAIRS_H
#define GLOCAL_TESTS_GLOCAL_PAIRS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "nn/mat3.h"

/* Finer texture for the training test: features of 5-12 px. */
static double texture2(double x, double y)
{
    return 0.5 + 0.15 * sin(0.83 * x + 0.2 * y) + 0.15 * sin(0.61 * y - 0.35 * x + 0.4) +
           0.1 * sin(1.07 * x - 0.52 * y + 2.0) + 0.1 * cos(0.37 * x + 0.93 * y + 1.3);
}

/* A textured pair under a random homography (translation up to +-3 px, small
 * rotation/scale/perspective), with a random texture phase, in RGB24. */
static void random_pair(unsigned *seed, int S, uint8_t *ra, uint8_t *rb, double h[9])
{
#define U(lo, hi) ((lo) + ((hi) - (lo)) * (rand_r(seed) / (double)RAND_MAX))
    double tx = U(-3, 3), ty = U(-3, 3), rot = U(-0.03, 0.03), sc = U(0.97, 1.03);
    double px = U(-3e-4, 3e-4), py = U(-3e-4, 3e-4), ox = U(0, 100), oy = U(0, 100);
#undef U
    double c = 0.5 * (S - 1);
    /* about the centre: p' = c + sc R (p - c) + t, then a mild perspective */
    double a = sc * cos(rot), b = sc * sin(rot);
    double h0[9] = { a, -b, c - a * c + b * c + tx, b, a, c - b * c - a * c + ty, px, py, 1 - px * c - py * c };
    for (int i = 0; i < 9; i++) h[i] = h0[i] / h0[8];
    double hi[9];
    gl_mat3_inverse(h, hi);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double xs, ys;
            gl_mat3_apply(hi, x, y, &xs, &ys);
            uint8_t va = (uint8_t)lrint(255 * texture2(x + ox, y + oy));
            uint8_t vb = (uint8_t)lrint(255 * texture2(xs + ox, ys + oy));
            for (int k = 0; k < 3; k++) {
                ra[3 * (y * S + x) + k] = va;
                rb[3 * (y * S + x) + k] = vb;
            }
        }
}

#endif
