/* test_glocal_lme_learn.c — the LME (arch 2) learns local flow: trained on
 * synthetic pairs with a static camera with train-motion's default recipe
 * (photometric terms and a TV-L1 teacher computed from the frames, no ground
 * truth), its own local flow on held-out pairs (other render seeds) comes
 * well below zero flow's error on the objects, scored against the renderer's
 * ground truth. Its own program (split from test_glocal_lme.c): 300 training
 * steps take most of a sanitizer build's time limit. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/testutil.h"
#include "tests/glocal_lme_testutil.h"

#include "experiments/motion_source.h"
#include "motion/flow.h"

/* Mean EPE on the true objects' pixels of the LME's ungated flow (net) and
 * of zero flow, on the held-out pairs; finish: glocal_infer_options.
 * lme_finish (0: the network's flow as it is). */
static double object_epe(glocal_model *m, const motion_pairs *T, int finish, double *zero)
{
    const size_t hw = (size_t)TS * TS;
    const uint8_t *pa[NTEST], *pb[NTEST];
    pair_ptrs(T, NTEST, pa, pb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.local_tvl1 = 0;
    o.local_gate = 0;
    o.lme_finish = finish;
    o.lme_coarse = 0; /* what the training taught the single pass (coarse to fine: test_lme_coarse_reach) */
    glocal_result r;
    OK(glocal_infer(m, pa, pb, NTEST, TS, TS, &o, &r));
    double e = 0, z = 0;
    long n = 0;
    for (int i = 0; i < NTEST; i++) {
        const float *gt = T->local_flow + i * 2 * hw, *est = r.local_flow + i * 2 * hw;
        for (size_t p = 0; p < hw; p++) {
            if (!T->mask[i * hw + p]) continue;
            e += hypot(est[p] - gt[p], est[hw + p] - gt[hw + p]);
            z += hypot(gt[p], gt[hw + p]);
            n++;
        }
    }
    glocal_result_free(&r);
    assert_true(n > 0);
    *zero = z / n;
    return e / n;
}

static void test_lme_learns_local_flow(void **state)
{
    (void)state;
    motion_pairs P = { 0 }, T = { 0 };
    pairs(&P, NTRAIN, 1);
    pairs(&T, NTEST, 777777); /* other render seeds */
    /* train-motion's default recipe: photometric terms and a TV-L1 teacher
     * computed from the frames (no ground truth) */
    motion_teacher t;
    OK(motion_teacher_compute(&t, &P, flow_method_tvl1, NULL, NULL, NULL));
    glocal_pair_source src;
    motion_pairs_source_teacher(&t, &src);
    glocal_train_config tc = train_config();
    tc.loss.w_teacher = 1;
    glocal_model *m = model(TS, 2, 7);
    double z, e0 = object_epe(m, &T, 0, &z);
    OK(glocal_train(m, &src, &tc, NULL, NULL));
    double e = object_epe(m, &T, 0, &z);
    /* the variational finish starts from what the network learned */
    double ef = object_epe(m, &T, 10, &z);
    print_message("LME arch 2, %d steps: object EPE %.3f px on held-out pairs (untrained %.3f, zero flow %.3f); "
                  "with the variational finish %.3f\n", STEPS, e, e0, z, ef);
    assert_true(e < 0.6 * z);
    assert_true(ef < e);
    motion_teacher_free(&t);
    motion_pairs_free(&P);
    motion_pairs_free(&T);
    glocal_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lme_learns_local_flow),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
