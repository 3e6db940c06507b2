/* glocal_pairs.h — RGB24 frame pairs of a texture under random homographies
 * (known motion), for the GLOCAL training tests (test_glocal's hand-written
 * loop, test_glocal_train's glocal_train), and an untrained tiny model's
 * checkpoint for the commands that load one (test_glocal's `glocal motion`,
 * test_udhn's eval-dhe). Test-only: static inline functions (not every
 * includer uses each). */
#ifndef GLOCAL_TESTS_GLOCAL_PAIRS_H
#define GLOCAL_TESTS_GLOCAL_PAIRS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "motion/glocal.h"
#include "nn/mat3.h"
#include "nn/nn.h"

/* Finer texture for the training test: features of 5-12 px. */
static inline double texture2(double x, double y)
{
    return 0.5 + 0.15 * sin(0.83 * x + 0.2 * y) + 0.15 * sin(0.61 * y - 0.35 * x + 0.4) +
           0.1 * sin(1.07 * x - 0.52 * y + 2.0) + 0.1 * cos(0.37 * x + 0.93 * y + 1.3);
}

/* A textured pair under a random homography (translation up to +-3 px, small
 * rotation/scale/perspective), with a random texture phase, in RGB24. */
static inline void random_pair(unsigned *seed, int S, uint8_t *ra, uint8_t *rb, double h[9])
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

/* An untrained tiny GLOCAL model (32 px, 1 iteration, 8 features, seed 5)
 * saved at path as a checkpoint of step 1. Its network H is near the
 * identity, so only what the refinement adds has a known answer. 0 or the
 * failing call's code. */
static inline int glocal_tiny_checkpoint(const char *path)
{
    glocal_config gc = glocal_config_default(32);
    gc.iters = 1;
    gc.feat = 8;
    gc.lme_arch = 1; /* untrained: its local flow is TV-L1's (an untrained arch-2 LME's is noise) */
    char js[512];
    glocal_model *m = NULL;
    int rc = glocal_config_to_json(&gc, js, sizeof js);
    nn_manual_seed(5);
    if (rc >= 0) rc = glocal_model_new(&m, &gc);
    nn_checkpoint_meta meta = { 1, js, NULL, NULL };
    if (rc >= 0) rc = nn_checkpoint_save(path, glocal_model_params(m), &meta);
    glocal_model_free(&m);
    return rc;
}

#endif
