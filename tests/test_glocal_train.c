/* test_glocal_train.c — motion/glocal_train.c, GLOCAL's training loop, in one
 * process (2 ranks: test_dist.c). Checked against:
 *   - a loop written here from glocal.h's definitions (the batch rule,
 *     linear warm-up from 0.1 lr, clipping, Adam): the same parameters after
 *     a few steps that reach every stage of the loss and engage clipping;
 *   - the criterion of test_glocal's hand-written loop: on textured pairs
 *     with known homographies, a tiny model brings the network's homography
 *     on held-out pairs well below the identity's error (fixed seed), and
 *     the loss falls; its log holds what the status reported;
 *   - a run resumed from its checkpoint ends where a straight run ends;
 *   - a stop request, bad settings and a failing source. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/testutil.h"
#include "tests/glocal_pairs.h"
#include "tests/glocal_testutil.h"

#include "motion/flow.h"
#include "motion/glocal.h"
#include "nn/nn.h"

enum { S = 32, NTRAIN = 64, NTEST = 24 };
#define FB ((size_t)S * S * 3)

static char tmpdir[256];
static uint8_t *frames_a, *frames_b; /* [NTRAIN + NTEST] pairs */
static double *homs;                 /* [NTRAIN + NTEST][9] */

static int setup(void **state)
{
    (void)state;
    if (nn_runtime_init(1, "cpu") < 0 || test_tmpdir_make(tmpdir, sizeof tmpdir, "test_glocal_train_") < 0) return -1;
    frames_a = malloc(FB * (NTRAIN + NTEST));
    frames_b = malloc(FB * (NTRAIN + NTEST));
    homs = malloc(sizeof(double) * 9 * (NTRAIN + NTEST));
    if (!frames_a || !frames_b || !homs) return -1;
    unsigned seed = 12345; /* test_glocal's pairs */
    for (int i = 0; i < NTRAIN + NTEST; i++)
        random_pair(&seed, S, frames_a + i * FB, frames_b + i * FB, homs + 9 * i);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(frames_a);
    free(frames_b);
    free(homs);
    return test_tmpdir_remove(tmpdir);
}

/* ---- the training pairs as a glocal_pair_source ---- */

typedef struct {
    long calls;
    int fail; /* nonzero: get() fails */
} source_ctx;

static int source_get(void *ctx, const long *index, int n, const uint8_t **a, const uint8_t **b)
{
    source_ctx *c = ctx;
    c->calls++;
    if (c->fail) return gl_error(GL_EIO, "test source: no pairs today");
    for (int i = 0; i < n; i++) {
        if (index[i] < 0 || index[i] >= NTRAIN) return gl_error(GL_EINVAL, "test source: pair %ld", index[i]);
        a[i] = frames_a + index[i] * FB;
        b[i] = frames_b + index[i] * FB;
    }
    return 0;
}

static glocal_pair_source source(source_ctx *c)
{
    memset(c, 0, sizeof *c);
    return (glocal_pair_source){ .count = NTRAIN, .width = S, .height = S, .get = source_get, .ctx = c };
}

static glocal_model *tiny_model(uint64_t seed) { return glocal_test_model(S, 1, 16, seed); }

static double max_param_diff(glocal_model *x, glocal_model *y)
{
    nn_params *p = glocal_model_params(x), *q = glocal_model_params(y);
    assert_int_equal(p->n, q->n);
    double m = 0, d;
    for (int i = 0; i < p->n; i++) {
        OK(nn_max_abs_diff(p->tensors[i], q->tensors[i], &d));
        m = fmax(m, d);
    }
    return m;
}

/* ---- against a loop written from the definitions ---- */

enum { REF_STEPS = 4, REF_BATCH = 4, REF_WARMUP = 3 };
#define REF_LR 2e-3
#define REF_CLIP 0.05
#define REF_SEED 5

/* lr_final > 0: the cosine decay after the warm-up (glocal.h), written here
 * from its definition. */
/* align: the GME frozen, the LME on the refined alignment
 * (lme_align_refine), computed here by glocal_infer without the LME. */
static void hand_loop(long steps, double lr_final, int align)
{
    glocal_train_config tc = glocal_train_config_default();
    tc.lr_final = lr_final;
    tc.loss.lme_start = 1; /* global only, then LME, then the mask: every stage */
    tc.loss.mask_start = 2;
    tc.opt.lr = REF_LR;
    tc.warmup_steps = REF_WARMUP;
    tc.clip_grad = REF_CLIP;
    tc.steps = steps;
    tc.batch_size = REF_BATCH;
    tc.seed = REF_SEED;
    tc.loss.train_gme = !align;
    tc.lme_align_refine = align;
    if (align) tc.loss.lme_start = 0, tc.loss.mask_start = 1; /* a frozen GME has no global stage */
    source_ctx sc;
    glocal_pair_source src = source(&sc);
    glocal_model *m = tiny_model(11);
    OK(glocal_train(m, &src, &tc, NULL, NULL));
    assert_int_equal(sc.calls, steps);

    glocal_model *r = tiny_model(11), *init = tiny_model(11);
    nn_optimizer *opt = NULL;
    nn_opt_config oc = nn_opt_config_default(NN_OPT_ADAM);
    oc.lr = REF_LR;
    OK(nn_optimizer_new(&opt, glocal_model_params(r), &oc));
    for (long step = 0; step < steps; step++) {
        const uint8_t *A[REF_BATCH], *B[REF_BATCH];
        uint64_t x = gl_mix64(REF_SEED * 0x100000001B3ull + (uint64_t)step);
        for (int i = 0; i < REF_BATCH; i++) {
            x = gl_mix64(x);
            long k = (long)(x % NTRAIN);
            int swap = (int)((x >> 40) & 1);
            A[i] = (swap ? frames_b : frames_a) + k * FB;
            B[i] = (swap ? frames_a : frames_b) + k * FB;
        }
        double lr = step < REF_WARMUP ? REF_LR * (0.1 + (1 - 0.1) * (double)step / REF_WARMUP) : REF_LR;
        if (lr_final > 0 && step >= REF_WARMUP)
            lr = lr_final + 0.5 * (REF_LR - lr_final) *
                                (1 + cos(M_PI * (double)(step - REF_WARMUP) / (double)(steps - REF_WARMUP)));
        nn_scope *scp;
        OK(nn_scope_begin(&scp));
        nn_tensor *ta, *tb, *loss;
        glocal_losses L;
        double gnorm;
        OK(nn_optimizer_set_lr(opt, lr));
        OK(glocal_frames_to_tensor(&ta, A, REF_BATCH, S, S, S));
        OK(glocal_frames_to_tensor(&tb, B, REF_BATCH, S, S, S));
        OK(nn_optimizer_zero_grad(opt));
        nn_tensor *al = NULL;
        if (align) {
            glocal_infer_options o;
            glocal_infer_options_default(&o);
            o.lme = 0;
            o.local_tvl1 = 0;
            glocal_result gr;
            OK(glocal_infer(r, A, B, REF_BATCH, S, S, &o, &gr));
            OK(nn_from_data(&al, gr.global_flow, (int64_t[]){ REF_BATCH, 2, S, S }, 4, NN_F32));
            glocal_result_free(&gr);
        }
        OK(glocal_loss_aligned(r, ta, tb, al, NULL, NULL, &tc.loss, step, &loss, &L));
        OK(nn_backward(loss));
        OK(nn_clip_grad_norm(glocal_model_params(r), REF_CLIP, &gnorm));
        assert_true(align || gnorm > REF_CLIP); /* clipping engaged, or the test would not see it */
        OK(nn_optimizer_step(opt));
        nn_scope_end(&scp);
    }
    double diff = max_param_diff(m, r), moved = max_param_diff(r, init);
    print_message("glocal_train vs the hand-written loop: %.3g (parameters moved by %.3g)\n", diff, moved);
    /* the same operations in the same order in one process: equal */
    assert_true(diff == 0);
    assert_true(moved > 1e-3);
    nn_optimizer_free(&opt);
    glocal_model_free(&m);
    glocal_model_free(&r);
    glocal_model_free(&init);
}

static void test_matches_hand_loop(void **state)
{
    (void)state;
    hand_loop(REF_STEPS, 0, 0);
}

/* The cosine decay: 4 steps after the warm-up at lr 2e-3, 1.7e-3, 1e-3, 3e-4 */
static void test_matches_hand_loop_cosine(void **state)
{
    (void)state;
    hand_loop(REF_WARMUP + 4, 1e-5, 0);
}

/* lme_align_refine: the frozen GME's homography refined by glocal_refine
 * aligns the LME's pairs; with the alignment refused while the GME trains. */
static void test_matches_hand_loop_align_refine(void **state)
{
    (void)state;
    hand_loop(REF_STEPS, 0, 1);
    glocal_train_config tc = glocal_train_config_default();
    tc.lme_align_refine = 1;
    source_ctx sc;
    glocal_pair_source src = source(&sc);
    glocal_model *m = tiny_model(11);
    assert_int_equal(glocal_train(m, &src, &tc, NULL, NULL), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "lme_align_refine"));
    glocal_model_free(&m);
}

/* ---- a tiny model trains ---- */

enum { TRAIN_STEPS = 300, TRAIN_BATCH = 8, LOG_EVERY = 50 };

typedef struct {
    long calls;
    double loss[TRAIN_STEPS + 1];   /* by step */
    int logged[TRAIN_STEPS + 1];
    int bad;                        /* a status field out of place */
    long stop_at;                   /* > 0: ask to stop at this step */
} record;

static int record_status(void *ctx, const glocal_train_status *s)
{
    record *r = ctx;
    r->calls++;
    if (s->step < 1 || s->step > TRAIN_STEPS || s->rank != 0 || s->world != 1 || !(s->elapsed_s >= 0) ||
        !isfinite(s->grad_norm) || !(s->lr > 0))
        r->bad = 1;
    else {
        r->loss[s->step] = s->losses.total;
        r->logged[s->step] = s->logged;
    }
    return r->stop_at > 0 && s->step >= r->stop_at;
}

static double corner_error(glocal_model *m, double *e_id)
{
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.refine = 0;
    o.lme = 0;
    o.local_tvl1 = 0;
    const uint8_t *pa[NTEST], *pb[NTEST];
    for (int i = 0; i < NTEST; i++) {
        pa[i] = frames_a + (NTRAIN + i) * FB;
        pb[i] = frames_b + (NTRAIN + i) * FB;
    }
    glocal_result r;
    OK(glocal_infer(m, pa, pb, NTEST, S, S, &o, &r));
    double e_net = 0, e;
    *e_id = 0;
    for (int i = 0; i < NTEST; i++) {
        double id[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
        OK(homography_corner_error(id, homs + 9 * (NTRAIN + i), S, S, &e));
        *e_id += e / NTEST;
        OK(homography_corner_error(r.homography + 9 * i, homs + 9 * (NTRAIN + i), S, S, &e));
        e_net += e / NTEST;
    }
    glocal_result_free(&r);
    return e_net;
}

static void test_tiny_model_trains(void **state)
{
    (void)state;
    char logp[512];
    snprintf(logp, sizeof logp, "%s/train.jsonl", tmpdir);
    glocal_train_config tc = glocal_train_config_default();
    tc.loss.lme_start = tc.loss.mask_start = 1000000; /* global motion only, as test_glocal */
    tc.opt.lr = 2e-3;
    tc.steps = TRAIN_STEPS;
    tc.batch_size = TRAIN_BATCH;
    tc.seed = 1;
    tc.log_path = logp;
    tc.log_every = LOG_EVERY;
    source_ctx sc;
    glocal_pair_source src = source(&sc);
    static record rec;
    memset(&rec, 0, sizeof rec);
    glocal_model *m = tiny_model(11);
    OK(glocal_train(m, &src, &tc, record_status, &rec));
    assert_int_equal(rec.calls, TRAIN_STEPS);
    assert_false(rec.bad);
    double e_id, e_net = corner_error(m, &e_id);
    double first = 0, last = 0;
    for (int s = 1; s <= 10; s++) first += rec.loss[s] / 10;
    for (int s = TRAIN_STEPS - 49; s <= TRAIN_STEPS; s++) last += rec.loss[s] / 50;
    print_message("glocal_train: identity %.3f px -> network %.3f px (held-out pairs); loss %.4f -> %.4f\n",
                  e_id, e_net, first, last);
    assert_true(e_net < 0.5 * e_id);
    assert_true(last < 0.7 * first);
    /* the log: one line per LOG_EVERY steps, with the losses the status gave */
    char *text = test_read_text(logp);
    assert_non_null(text);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_object *o = json_tokener_parse(line), *step, *loss;
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "step", &step) && json_object_object_get_ex(o, "loss", &loss));
        long s = (long)json_object_get_int64(step);
        lines++;
        assert_int_equal(s, (long)lines * LOG_EVERY);
        assert_true(rec.logged[s]);
        assert_double_equal(json_object_get_double(loss), rec.loss[s], 1e-5 * fabs(rec.loss[s])); /* %.6g */
        json_object_put(o);
    }
    assert_int_equal(lines, TRAIN_STEPS / LOG_EVERY);
    gl_free(text);
    glocal_model_free(&m);
}

/* ---- resume, stop, settings ---- */

static void test_resume_equals_straight_run(void **state)
{
    (void)state;
    char full[512], part[512], logp[512];
    snprintf(full, sizeof full, "%s/full.h5", tmpdir);
    snprintf(part, sizeof part, "%s/part.h5", tmpdir);
    snprintf(logp, sizeof logp, "%s/part.jsonl", tmpdir);
    glocal_train_config tc = glocal_train_config_default();
    tc.loss.lme_start = 2;
    tc.loss.mask_start = 4;
    tc.steps = 6;
    tc.batch_size = 4;
    tc.ckpt_every = 3;
    tc.log_every = 1;
    tc.checkpoint = full;
    source_ctx sc;
    glocal_pair_source src = source(&sc);
    glocal_model *a = tiny_model(3);
    OK(glocal_train(a, &src, &tc, NULL, NULL));
    /* 3 steps, then a new model from the checkpoint (as train-motion --resume) */
    tc.checkpoint = part;
    tc.log_path = logp;
    tc.steps = 3;
    glocal_model *b = tiny_model(3);
    OK(glocal_train(b, &src, &tc, NULL, NULL));
    glocal_model_free(&b);
    int64_t step = -1;
    OK(glocal_model_load(&b, part, &step));
    assert_int_equal(step, 3);
    tc.steps = 6;
    tc.resume = part;
    OK(glocal_train(b, &src, &tc, NULL, NULL));
    double diff = max_param_diff(a, b);
    print_message("6 steps vs 3 + resumed 3: %.3g\n", diff);
    assert_true(diff == 0); /* same batches, same Adam state */
    OK(nn_checkpoint_load(part, glocal_model_params(b), &step, NULL, NULL));
    assert_int_equal(step, 6);
    /* the resumed run appended to the log: steps 1..6 */
    char *text = test_read_text(logp);
    assert_non_null(text);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_object *o = json_tokener_parse(line), *s;
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "step", &s));
        assert_int_equal(json_object_get_int64(s), ++lines);
        json_object_put(o);
    }
    assert_int_equal(lines, 6);
    gl_free(text);
    glocal_model_free(&a);
    glocal_model_free(&b);
}

static void test_stop_and_bad_settings(void **state)
{
    (void)state;
    char ck[512];
    snprintf(ck, sizeof ck, "%s/stop.h5", tmpdir);
    glocal_train_config tc = glocal_train_config_default();
    tc.steps = 10;
    tc.batch_size = 2;
    tc.checkpoint = ck;
    source_ctx sc;
    glocal_pair_source src = source(&sc);
    glocal_model *m = tiny_model(1);
    static record rec;
    memset(&rec, 0, sizeof rec);
    rec.stop_at = 2;
    /* stops after the next forward pass, writes the checkpoint of step 2 */
    assert_int_equal(glocal_train(m, &src, &tc, record_status, &rec), GL_ECANCELED);
    assert_int_equal(rec.calls, 2);
    assert_non_null(strstr(gl_last_error(), "stopped on request at step 2"));
    int64_t step = -1;
    OK(nn_checkpoint_load(ck, glocal_model_params(m), &step, NULL, NULL));
    assert_int_equal(step, 2);

    /* the mask never starts before LME: an error naming both values */
    tc = glocal_train_config_default();
    tc.loss.lme_start = 700;
    tc.loss.mask_start = 400;
    assert_int_equal(glocal_train_config_validate(&tc), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "mask_start: 400"));
    assert_non_null(strstr(gl_last_error(), "lme_start 700"));
    assert_int_equal(glocal_train(m, &src, &tc, NULL, NULL), GL_EINVAL);
    tc = glocal_train_config_default();
    assert_int_equal(glocal_train_config_validate(&tc), 0);
    tc.clip_grad = 0;
    assert_int_equal(glocal_train_config_validate(&tc), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "clip_grad"));
    tc = glocal_train_config_default();
    tc.batch_size = 0;
    assert_int_equal(glocal_train_config_validate(&tc), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "batch_size"));
    tc = glocal_train_config_default();
    tc.log_every = 0;
    assert_int_equal(glocal_train_config_validate(&tc), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "log_every"));
    tc = glocal_train_config_default();
    tc.lr_final = 2 * tc.opt.lr; /* a decay that rises */
    assert_int_equal(glocal_train_config_validate(&tc), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "lr_final"));
    /* an empty source; a source that fails */
    tc = glocal_train_config_default();
    tc.steps = 3;
    tc.batch_size = 2;
    glocal_pair_source empty = src;
    empty.count = 0;
    assert_int_equal(glocal_train(m, &empty, &tc, NULL, NULL), GL_EINVAL);
    sc.fail = 1;
    assert_int_equal(glocal_train(m, &src, &tc, NULL, NULL), GL_EIO);
    assert_non_null(strstr(gl_last_error(), "step 0"));
    assert_non_null(strstr(gl_last_error(), "no pairs today"));
    /* a resume from a file that is not there names it */
    tc.resume = "/nonexistent/glocal.h5";
    sc.fail = 0;
    assert_true(glocal_train(m, &src, &tc, NULL, NULL) < 0);
    assert_non_null(strstr(gl_last_error(), "/nonexistent/glocal.h5"));
    glocal_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_hand_loop),
        cmocka_unit_test(test_matches_hand_loop_cosine),
        cmocka_unit_test(test_matches_hand_loop_align_refine),
        cmocka_unit_test(test_stop_and_bad_settings),
        cmocka_unit_test(test_resume_equals_straight_run),
        cmocka_unit_test(test_tiny_model_trains),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
