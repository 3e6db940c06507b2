/* test_glocal_train_dist.c — data-parallel glocal_train (motion/glocal.h
 * with an nn_dist from nn/nn.h: Gloo over loopback, 2 forked ranks), called
 * directly (test_dist.c runs `glocal launch -n 2 -- glocal train-motion`).
 *
 * Independent truth. The pairs are train-motion --synth's (32x32, seed 3).
 *   - While the loss is a mean over pairs, 2 ranks each training on half of
 *     every batch end with the parameters of ONE process running glocal_train
 *     on the whole batch: in the global stage (before lme_start), and through
 *     the LME stage with the terms below switched off (w_mask 0, mask_start
 *     after the last step). LME's weights have no gradient before lme_start
 *     on any rank, and nn_dist_allreduce_grads leaves them without one, as
 *     DDP does, so Adam starts counting their steps at lme_start on 2 ranks
 *     as in one process (when the all-reduce gave them zeros, the first LME
 *     updates differed by 1.4e-4 here).
 *   - Once the mask trains and weights the global loss, two terms use
 *     statistics of the batch: the mask target's threshold (tau0 + tau_k x
 *     the median residual) and the mask-weighted global loss (divided by the
 *     batch's weight sum). Those stay per rank, as batch norm's do under DDP,
 *     so the reference for every stage is written here from the definitions
 *     (its own loop, no glocal_train): per step the batch of glocal.h's rule,
 *     glocal_loss on each rank's half, each scaled by 1/2 and the gradients
 *     accumulated, then clipping (low enough to engage: the gradient must be
 *     averaged BEFORE clipping) and Adam at the warm-up learning rate.
 * Also: both ranks end bit-identical; the checkpoint is rank 0's parameters;
 * rank 0's log holds the mean of the ranks' losses; a stop asked on one rank
 * stops both after the same step; a global batch the ranks cannot share is
 * refused.
 *
 * Ranks are fork()ed children (test_run_ranks); the parent never touches
 * libtorch, it compares the files the children write. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/testutil.h"
#include "tests/nn_testutil.h"

#include "datasets/synth.h"
#include "experiments/motion_pairs.h"
#include "experiments/motion_source.h"
#include "motion/glocal.h"
#include "nn/nn.h"

enum { SIZE = 32, POOL = 16, BATCH = 4, STEPS = 4, SEED = 3 };
#define CLIP 0.2

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_glocal_train_dist_");
}

static int remove_dir(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

/* ---- child side: CHECK / COK from testutil.h, no cmocka asserts ---- */

/* All parameter values, in order, as float64, to tmpdir/name. */
static int dump_params(glocal_model *m, const char *name)
{
    char path[512];
    path_of(path, sizeof path, name);
    return test_dump_params(glocal_model_params(m), path);
}

/* train-motion --synth's pairs and a model initialised from init_seed. */
/* The model of every run. LME arch 1: with arch 2, 2 ranks and 1 process
 * end the LME stage's 4 steps 1.6e-5 apart (arch 1: 4.5e-8, the tolerance
 * below is 1e-6). The likely cause, not isolated: arch 2's match
 * (glocal_soft_argmax) restricts the softmax to a window around a hard,
 * detached argmax, where a different float summation order can flip a
 * near-tie. The data parallelism checked here is the same for both. */
static glocal_config run_config(void)
{
    glocal_config gc = glocal_config_default(SIZE);
    gc.lme_arch = 1;
    return gc;
}

static int setup_run(motion_pairs *P, glocal_pair_source *src, glocal_model **m, uint64_t init_seed)
{
    synth_config sc = synth_config_default();
    sc.width = sc.height = SIZE;
    sc.seed = SEED;
    int rc = motion_pairs_synth(P, &sc, POOL, 1000003ull * SEED);
    if (rc < 0) return rc;
    motion_pairs_source(P, src);
    glocal_config gc = run_config();
    nn_manual_seed(init_seed);
    return glocal_model_new(m, &gc);
}

/* The stages a run covers. */
enum {
    GLOBAL_ONLY, /* lme_start after the last step: every term a mean over pairs */
    LME_NO_BATCH_STATS, /* LME from step 1, the mask neither trained (w_mask 0) nor weighting */
    ALL_STAGES,  /* LME from step 1, the mask from step 2 */
};

static glocal_train_config train_config(int stages)
{
    glocal_train_config tc = glocal_train_config_default();
    tc.loss.lme_start = stages == GLOBAL_ONLY ? 1000 : 1;
    tc.loss.mask_start = stages == ALL_STAGES ? 2 : 1000;
    if (stages == LME_NO_BATCH_STATS) tc.loss.w_mask = 0;
    tc.clip_grad = CLIP;
    tc.steps = STEPS;
    tc.batch_size = BATCH;
    tc.seed = SEED;
    tc.log_every = 1;
    return tc;
}

static int stop_on_rank1(void *ctx, const glocal_train_status *s)
{
    ++*(int *)ctx;
    return s->rank == 1 && s->step == 2; /* rank 1 alone asks */
}

static int rank_main(int rank, int world, int port, void *ctx)
{
    (void)ctx;
    nn_runtime_init(1, "cpu");
    nn_dist *d = NULL;
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = 20;
    COK(nn_dist_init(&d, rank, world, rank, "127.0.0.1", port, &o));
    motion_pairs P = { 0 };
    glocal_pair_source src;
    glocal_model *m = NULL;
    char ck[512], logp[512], name[64];
    /* the global stage, then LME without batch statistics; ranks start from
     * different weights (the broadcast gives rank 0's) */
    COK(setup_run(&P, &src, &m, 100 + (uint64_t)rank));
    glocal_train_config tc = train_config(GLOBAL_ONLY);
    tc.dist = d;
    COK(glocal_train(m, &src, &tc, NULL, NULL));
    snprintf(name, sizeof name, "global_w2_r%d.bin", rank);
    COK(dump_params(m, name));
    glocal_model_free(&m);
    glocal_config gc = run_config();
    nn_manual_seed(100 + (uint64_t)rank);
    COK(glocal_model_new(&m, &gc));
    tc = train_config(LME_NO_BATCH_STATS);
    tc.dist = d;
    COK(glocal_train(m, &src, &tc, NULL, NULL));
    snprintf(name, sizeof name, "lme_w2_r%d.bin", rank);
    COK(dump_params(m, name));
    glocal_model_free(&m);
    /* every stage, with a checkpoint and a log */
    nn_manual_seed(100 + (uint64_t)rank);
    COK(glocal_model_new(&m, &gc));
    path_of(ck, sizeof ck, "stages.h5");
    path_of(logp, sizeof logp, "stages.jsonl");
    tc = train_config(ALL_STAGES);
    tc.dist = d;
    tc.checkpoint = ck;
    tc.log_path = logp;
    COK(glocal_train(m, &src, &tc, NULL, NULL));
    snprintf(name, sizeof name, "stages_w2_r%d.bin", rank);
    COK(dump_params(m, name));
    if (rank == 0) { /* on disk before any rank returned; rank 0's values */
        glocal_model *c = NULL;
        int64_t step = -1;
        COK(glocal_model_load(&c, ck, &step));
        CHECK(step == STEPS, "checkpoint at step %lld", (long long)step);
        nn_params *p = glocal_model_params(m), *q = glocal_model_params(c);
        for (int i = 0; i < p->n; i++) CHECK(nn_equal(p->tensors[i], q->tensors[i]) == 1, "%s", p->names[i]);
        glocal_model_free(&c);
    }
    /* a stop asked on rank 1 alone stops both ranks after the same step */
    int calls = 0;
    tc.steps = 10;
    tc.log_path = NULL;
    path_of(ck, sizeof ck, "stop.h5");
    int rc = glocal_train(m, &src, &tc, stop_on_rank1, &calls);
    CHECK(rc == GL_ECANCELED, "a stop asked on rank 1 gave %d on rank %d", rc, rank);
    CHECK(calls == 2, "rank %d took %d steps", rank, calls);
    /* a global batch the ranks cannot share */
    tc.batch_size = 3;
    CHECK(glocal_train(m, &src, &tc, NULL, NULL) == GL_EINVAL, "batch of 3 on 2 ranks accepted");
    CHECK(strstr(gl_last_error(), "multiple of the 2 ranks") != NULL, "message");
    glocal_model_free(&m);
    motion_pairs_free(&P);
    nn_dist_free(&d);
    return 0;
}

/* The reference for every stage (see the header comment): per-rank halves,
 * each loss x 1/2, gradients accumulated, then clip and Adam. Writes the
 * parameters and, per step, the mean of the two halves' losses. */
static int reference_stages(motion_pairs *P, glocal_model *m)
{
    glocal_train_config tc = train_config(ALL_STAGES);
    nn_params *p = glocal_model_params(m);
    nn_optimizer *opt = NULL;
    COK(nn_optimizer_new(&opt, p, &tc.opt));
    const size_t fb = (size_t)SIZE * SIZE * 3;
    const int per = BATCH / 2;
    double losses[STEPS];
    for (long step = 0; step < STEPS; step++) {
        const uint8_t *A[BATCH], *B[BATCH];
        uint64_t r = gl_mix64(SEED * 0x100000001B3ull + (uint64_t)step);
        for (int i = 0; i < BATCH; i++) {
            r = gl_mix64(r);
            long k = (long)(r % POOL);
            int swap = (int)((r >> 40) & 1);
            A[i] = (swap ? P->b : P->a) + k * fb;
            B[i] = (swap ? P->a : P->b) + k * fb;
        }
        double lr = step < tc.warmup_steps ? tc.opt.lr * (0.1 + (1 - 0.1) * (double)step / tc.warmup_steps) : tc.opt.lr;
        COK(nn_optimizer_set_lr(opt, lr));
        COK(nn_optimizer_zero_grad(opt));
        losses[step] = 0;
        for (int h = 0; h < 2; h++) {
            nn_scope *sc = NULL;
            COK(nn_scope_begin(&sc));
            nn_tensor *ta, *tb, *loss, *half;
            glocal_losses L;
            int ok = glocal_frames_to_tensor(&ta, A + h * per, per, SIZE, SIZE, SIZE) == 0 &&
                     glocal_frames_to_tensor(&tb, B + h * per, per, SIZE, SIZE, SIZE) == 0 &&
                     glocal_loss(m, ta, tb, NULL, NULL, &tc.loss, step, &loss, &L) == 0 &&
                     nn_mul_scalar(&half, loss, 0.5) == 0 && nn_backward(half) == 0;
            nn_scope_end(&sc);
            CHECK(ok, "reference step %ld half %d", step, h);
            losses[step] += 0.5 * L.total;
        }
        double gnorm = 0;
        COK(nn_clip_grad_norm(p, CLIP, &gnorm));
        CHECK(gnorm > CLIP, "gradient norm %g does not reach the clip %g at step %ld: the test would not see "
              "the clipping order", gnorm, CLIP, step);
        COK(nn_optimizer_step(opt));
    }
    nn_optimizer_free(&opt);
    char path[512];
    path_of(path, sizeof path, "stages_ref_losses.bin");
    COK(gl_write_file_atomic(path, losses, sizeof losses));
    return dump_params(m, "stages_ref.bin");
}

/* The largest change of LME's weights (names "lme.*", "lme2.*") from a to b. */
static double lme_moved(glocal_model *a, glocal_model *b)
{
    nn_params *p = glocal_model_params(a), *q = glocal_model_params(b);
    double moved = 0, d;
    for (int i = 0; i < p->n; i++)
        if (!strncmp(p->names[i], "lme", 3) && nn_max_abs_diff(p->tensors[i], q->tensors[i], &d) == 0)
            moved = fmax(moved, d);
    return moved;
}

/* One process: glocal_train on the whole batch (global stage; LME without
 * batch statistics), and the written-out reference for every stage; all from
 * rank 0's initial weights. */
static int reference_main(int rank, int world, int port, void *ctx)
{
    (void)rank, (void)world, (void)port, (void)ctx;
    nn_runtime_init(1, "cpu");
    motion_pairs P = { 0 };
    glocal_pair_source src;
    glocal_model *m = NULL, *m0 = NULL;
    COK(setup_run(&P, &src, &m, 100));
    COK(dump_params(m, "start.bin"));
    glocal_train_config tc = train_config(GLOBAL_ONLY);
    COK(glocal_train(m, &src, &tc, NULL, NULL));
    COK(dump_params(m, "global_w1.bin"));
    glocal_model_free(&m);
    glocal_config gc = run_config();
    nn_manual_seed(100);
    COK(glocal_model_new(&m0, &gc));
    nn_manual_seed(100);
    COK(glocal_model_new(&m, &gc));
    tc = train_config(LME_NO_BATCH_STATS);
    COK(glocal_train(m, &src, &tc, NULL, NULL));
    COK(dump_params(m, "lme_w1.bin"));
    /* the comparison covers LME's updates: its weights moved */
    double moved = lme_moved(m0, m);
    fprintf(stderr, "LME stage: LME's weights moved by %.3g\n", moved);
    CHECK(moved > 1e-4, "LME's weights moved by only %g", moved);
    glocal_model_free(&m);
    glocal_model_free(&m0);
    nn_manual_seed(100);
    COK(glocal_model_new(&m, &gc));
    COK(reference_stages(&P, m));
    glocal_model_free(&m);
    motion_pairs_free(&P);
    return 0;
}

/* ---- parent side ---- */

static void test_two_ranks_match_one_process(void **state)
{
    (void)state;
    int st[2];
    test_run_ranks(2, rank_main, NULL, 180, st);
    test_assert_ranks_ok(st, 2);
    test_run_ranks(1, reference_main, NULL, 180, st);
    test_assert_ranks_ok(st, 1);
    enum { G0, G1, G_REF, L0, L1, L_REF, S0, S1, S_REF, START, NF };
    const char *files[NF] = { "global_w2_r0.bin", "global_w2_r1.bin", "global_w1.bin",    "lme_w2_r0.bin",
                              "lme_w2_r1.bin",    "lme_w1.bin",       "stages_w2_r0.bin", "stages_w2_r1.bin",
                              "stages_ref.bin",   "start.bin" };
    double *v[NF];
    size_t n[NF];
    for (int i = 0; i < NF; i++) {
        v[i] = test_read_doubles(tmpdir, files[i], &n[i]);
        assert_int_equal(n[i], n[0]);
    }
    const size_t N = n[0];
    /* both ranks took identical steps (the same averaged gradient, bit for bit) */
    assert_true(test_max_diff(v[G0], v[G1], N) == 0.0);
    assert_true(test_max_diff(v[L0], v[L1], N) == 0.0);
    assert_true(test_max_diff(v[S0], v[S1], N) == 0.0);
    double moved_g = test_max_diff(v[G_REF], v[START], N), err_g = test_max_diff(v[G0], v[G_REF], N);
    double moved_l = test_max_diff(v[L_REF], v[START], N), err_l = test_max_diff(v[L0], v[L_REF], N);
    double moved_s = test_max_diff(v[S_REF], v[START], N), err_s = test_max_diff(v[S0], v[S_REF], N);
    print_message("global stage: moved %.3g, 2 ranks vs 1 process on the whole batch %.3g\n", moved_g, err_g);
    print_message("LME stage, no batch statistics: moved %.3g, 2 ranks vs 1 process %.3g\n", moved_l, err_l);
    print_message("every stage: moved %.3g, 2 ranks vs the per-rank reference %.3g\n", moved_s, err_s);
    /* Tolerance. Without batch statistics the 2 ranks' step differs from one
     * process's only by float32 summation order: the averaged gradient
     * changes in its 7th significant digit. Adam moves a parameter by
     * lr * m / (sqrt(v) + eps), at most about lr (1e-4 to 1.3e-4 during these
     * 4 warm-up steps); that ratio changes by a relative 1e-7 where the
     * gradient is well above eps, and where the gradient is near eps = 1e-8
     * the change can reach about 1e-3 of lr. Over 4 steps that stays below
     * 4 x 1.3e-4 x 1e-3 ~ 5e-7, so 1e-6 allows it while being ~100x below
     * how far training moved the parameters. (The binary-level
     * test_train_motion_two_ranks, global stage too, measures ~6e-8.) */
    assert_true(moved_g > 1e-4 && moved_l > 1e-4 && moved_s > 1e-4);
    assert_true(err_g < 1e-6);
    assert_true(err_l < 1e-6);
    assert_true(err_s < 1e-6);
    /* rank 0 logged the mean over the ranks of their losses: the reference's
     * mean of the two halves, printed with 6 digits (%.6g) */
    size_t nl;
    double *ref = test_read_doubles(tmpdir, "stages_ref_losses.bin", &nl);
    assert_int_equal(nl, STEPS);
    char path[512];
    path_of(path, sizeof path, "stages.jsonl");
    char *text = test_read_text(path);
    assert_non_null(text);
    int k = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_object *o = json_tokener_parse(line), *loss;
        assert_true(k < STEPS);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "loss", &loss));
        assert_double_equal(json_object_get_double(loss), ref[k], 2e-5 * fabs(ref[k]));
        json_object_put(o);
        k++;
    }
    assert_int_equal(k, STEPS); /* one line per step, from rank 0 alone */
    gl_free(text);
    gl_free(ref);
    for (int i = 0; i < NF; i++) gl_free(v[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ranks_match_one_process),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
