/* glocal_lme_testutil.h — what test_glocal_lme.c and test_glocal_lme_learn.c
 * share: the runtime setup, a small GLOCAL model with the LME of a given
 * arch, synthetic pairs with a static camera at TS x TS, the training
 * config of the LME tests. Include after cmocka.h and tests/testutil.h. */
#ifndef GLOCAL_TESTS_GLOCAL_LME_TESTUTIL_H
#define GLOCAL_TESTS_GLOCAL_LME_TESTUTIL_H

#include "experiments/motion_pairs.h"
#include "motion/glocal.h"
#include "nn/nn.h"

static inline int setup(void **state)
{
    (void)state;
    return nn_runtime_init(1, "cpu") < 0 ? -1 : 0;
}

static inline glocal_model *model(int S, int lme_arch, uint64_t seed)
{
    glocal_config gc = glocal_config_default(S);
    gc.iters = 1;
    gc.feat = 16;
    gc.lme_arch = lme_arch;
    gc.lme_ch = 8;
    nn_manual_seed(seed);
    glocal_model *m = NULL;
    OK(glocal_model_new(&m, &gc));
    return m;
}

enum { TS = 48, NTRAIN = 256, NTEST = 24, STEPS = 300 };

static inline void pairs(motion_pairs *P, int n, uint64_t seed)
{
    synth_config sc = synth_config_default();
    sc.width = sc.height = TS;
    sc.camera = 0;
    sc.seed = seed;
    OK(motion_pairs_synth(P, &sc, n, seed));
}

static inline glocal_train_config train_config(void)
{
    glocal_train_config tc = glocal_train_config_default();
    tc.loss.lme_start = 0;
    tc.loss.mask_start = 0;
    tc.steps = STEPS;
    tc.batch_size = 8;
    tc.seed = 3;
    tc.opt.lr = 2e-3;
    tc.warmup_steps = 20;
    return tc;
}

/* pa[i], pb[i]: the frames of pair i of P, i < n. */
static inline void pair_ptrs(const motion_pairs *P, int n, const uint8_t **pa, const uint8_t **pb)
{
    const size_t fb = (size_t)TS * TS * 3;
    for (int i = 0; i < n; i++) {
        pa[i] = P->a + i * fb;
        pb[i] = P->b + i * fb;
    }
}

#endif
