/* test_dist.c — nn/ distributed data-parallel (c10d, Gloo over loopback) and
 * `glocal launch`.
 *
 * Ranks are fork()ed children; the parent never touches libtorch (a child
 * forked after OpenMP started could hang), it only compares the files the
 * children write. Checks against independent truth:
 *   - 2 ranks, each on half of every batch, end with the parameters that one
 *     process training on the whole batch ends with (SGD with momentum);
 *   - a broadcast gives rank 1 exactly rank 0's values;
 *   - a rank that exits makes the other's collective fail, and a rank that
 *     stalls makes it fail after the timeout, not later, with a message;
 *   - environment parsing, shards and permutations by their definitions.
 * `glocal launch`, and train-motion under it, are test_launch.c's. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"
#include "tests/nn_testutil.h"

#include "motion/glocal.h"
#include "nn/nn.h"

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_dist_");
}

static int remove_dir(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* ---- child side: CHECK / COK from testutil.h (no cmocka asserts: they
 * would unwind into the parent's copy of the runner); the ranks run under
 * test_run_ranks (testutil.h) ---- */

/* All values of a table, in order, as float64. */
static int dump_params(const nn_params *p, const char *fmt, ...)
{
    char path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return test_dump_params(p, path);
}

/* ---- the tiny model -------------------------------------------------------------------- */

/* x (N, 2, 6, 6) -> conv 3x3 (4) -> tanh -> spatial mean (N, 4) -> linear (3)
 * -> times a float64 scale -> MSE against y (N, 3). "unused" never enters the
 * loss (its gradient stays undefined); "scale" is float64 so the gradients
 * span two dtypes (two bucket kinds). */
typedef struct {
    nn_params p;
    nn_tensor *cw, *cb, *lw, *lb, *scale;
} tiny_model;

static int tiny_init(tiny_model *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    nn_params_init(&m->p);
    nn_manual_seed(seed);
    int rc;
    int64_t s_cw[4] = { 4, 2, 3, 3 }, s4[1] = { 4 }, s_lw[2] = { 3, 4 }, s3[1] = { 3 }, s5[1] = { 5 };
    if ((rc = nn_params_new(&m->p, &m->cw, "conv.weight", s_cw, 4, NN_INIT_KAIMING_UNIFORM, 0)) < 0) return rc;
    if ((rc = nn_params_new(&m->p, &m->cb, "conv.bias", s4, 1, NN_INIT_NORMAL_SMALL, 1)) < 0) return rc;
    if ((rc = nn_params_new(&m->p, &m->lw, "fc.weight", s_lw, 2, NN_INIT_XAVIER_UNIFORM, 0)) < 0) return rc;
    if ((rc = nn_params_new(&m->p, &m->lb, "fc.bias", s3, 1, NN_INIT_NORMAL_SMALL, 1)) < 0) return rc;
    if ((rc = nn_params_new(&m->p, NULL, "unused", s5, 1, NN_INIT_NORMAL_SMALL, 0)) < 0) return rc;
    nn_tensor *sc = NULL;
    int64_t s1[1] = { 1 };
    if ((rc = nn_rand(&sc, s1, 1, NN_F64)) < 0) return rc;
    if ((rc = nn_add_scalar(&m->scale, sc, 0.5)) < 0) return nn_free(&sc), rc;
    nn_free(&sc);
    if ((rc = nn_set_requires_grad(m->scale, 1)) < 0) return nn_free(&m->scale), rc;
    rc = nn_params_add(&m->p, "scale", m->scale, 0, 1);
    /* A buffer (e.g. a running statistic): broadcast, never reduced. */
    nn_tensor *buf = NULL;
    if (rc == 0 && (rc = nn_randn(&buf, s3, 1, NN_F32)) == 0) rc = nn_params_add(&m->p, "stat", buf, 1, 1);
    return rc;
}

/* Sample j of step s: a fixed function of (s, j), independent of the rank. */
static void sample(int step, int j, float *x, float *y)
{
    uint64_t st = (uint64_t)step * 1000003u + (uint64_t)j * 7919u + 12345u;
    for (int i = 0; i < 2 * 6 * 6; i++) x[i] = (float)(2 * test_lcg_uniform(&st) - 1);
    for (int i = 0; i < 3; i++) y[i] = (float)sin(0.3 * step + 0.7 * j + i);
}

/* One SGD step on samples [j0, j0 + n) of `step`; mean loss over them. */
static int tiny_step(tiny_model *m, nn_optimizer *opt, nn_dist *d, int step, int j0, int n)
{
    float x[8 * 72], y[8 * 3];
    for (int j = 0; j < n; j++) sample(step, j0 + j, x + j * 72, y + j * 3);
    nn_scope *sc = NULL;
    int rc = nn_scope_begin(&sc);
    if (rc < 0) return rc;
    nn_tensor *tx, *ty, *h, *a, *mp, *o, *s32, *os, *diff, *sq, *loss;
    int64_t sx[4] = { n, 2, 6, 6 }, sy[2] = { n, 3 }, hw[2] = { 2, 3 };
    if ((rc = nn_optimizer_zero_grad(opt)) < 0 || (rc = nn_from_data(&tx, x, sx, 4, NN_F32)) < 0 ||
        (rc = nn_from_data(&ty, y, sy, 2, NN_F32)) < 0 ||
        (rc = nn_conv2d(&h, tx, m->cw, m->cb, 1, 1, 1, 1)) < 0 || (rc = nn_unary(&a, NN_TANH, h)) < 0 ||
        (rc = nn_mean(&mp, a, hw, 2, 0)) < 0 || (rc = nn_linear(&o, mp, m->lw, m->lb)) < 0 ||
        (rc = nn_to_dtype(&s32, m->scale, NN_F32)) < 0 || (rc = nn_mul(&os, o, s32)) < 0 ||
        (rc = nn_sub(&diff, os, ty)) < 0 || (rc = nn_unary(&sq, NN_SQUARE, diff)) < 0 ||
        (rc = nn_mean(&loss, sq, NULL, 0, 0)) < 0 || (rc = nn_backward(loss)) < 0 ||
        (rc = nn_dist_allreduce_grads(d, &m->p)) < 0 || (rc = nn_optimizer_step(opt)) < 0) {
        nn_scope_end(&sc);
        return rc;
    }
    nn_scope_end(&sc);
    return 0;
}

enum { STEPS = 4, BATCH = 8 };

typedef struct {
    double bucket_mb;
    const char *tag;
} train_ctx;

/* Rank r of `world` trains on samples [r * B/world, (r+1) * B/world) of each
 * step. world == 1 is the reference (no process group at all). */
static int train_rank(int rank, int world, int port, void *ctx_)
{
    const train_ctx *ctx = ctx_;
    nn_runtime_init(1, "cpu");
    tiny_model m;
    nn_dist *d = NULL;
    nn_optimizer *opt = NULL;
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = 20;
    o.bucket_mb = ctx->bucket_mb;
    COK(tiny_init(&m, 100 + (uint64_t)rank)); /* ranks start different */
    COK(nn_dist_init(&d, rank, world, rank, "127.0.0.1", port, &o));
    CHECK(nn_dist_rank(d) == rank && nn_dist_world_size(d) == world, "rank/world");
    CHECK(!strcmp(nn_dist_backend_name(d), world > 1 ? "gloo" : "none"), "backend %s",
          nn_dist_backend_name(d));
    COK(dump_params(&m.p, "%s/%s_w%d_r%d_before.bin", tmpdir, ctx->tag, world, rank));
    COK(nn_dist_broadcast_params(d, &m.p));
    COK(dump_params(&m.p, "%s/%s_w%d_r%d_after.bin", tmpdir, ctx->tag, world, rank));
    nn_opt_config oc = nn_opt_config_default(NN_OPT_SGD);
    oc.lr = 0.2;
    oc.momentum = 0.9;
    COK(nn_optimizer_new(&opt, &m.p, &oc));
    int per = BATCH / world;
    for (int s = 0; s < STEPS; s++) COK(tiny_step(&m, opt, d, s, rank * per, per));
    COK(dump_params(&m.p, "%s/%s_w%d_r%d_final.bin", tmpdir, ctx->tag, world, rank));
    nn_optimizer_free(&opt);
    nn_dist_free(&d);
    nn_params_free(&m.p);
    return 0;
}

static void check_training(const char *tag)
{
    char name[64];
    size_t n[7];
    double *v[7];
    const char *files[7] = { "w2_r0_before", "w2_r1_before", "w2_r0_after", "w2_r1_after",
                             "w2_r0_final", "w2_r1_final", "w1_r0_final" };
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof name, "%s_%s.bin", tag, files[i]);
        v[i] = test_read_doubles(tmpdir, name, &n[i]);
        assert_int_equal(n[i], n[0]);
    }
    size_t N = n[0];
    assert_int_equal(N, 4 * 18 + 4 + 12 + 3 + 5 + 1 + 3);
    /* The ranks started from different values; the broadcast gave rank 1
     * exactly rank 0's, and left rank 0's alone. */
    assert_true(test_max_diff(v[0], v[1], N) > 1e-3);
    assert_true(test_max_diff(v[3], v[0], N) == 0.0);
    assert_true(test_max_diff(v[2], v[0], N) == 0.0);
    /* Both ranks took identical steps (same averaged gradient, bit for bit). */
    assert_true(test_max_diff(v[4], v[5], N) == 0.0);
    /* ... and reached what one process on the whole batch reaches (the
     * reference starts from rank 0's seed). Training moved the weights far
     * more than the tolerance. */
    double moved = test_max_diff(v[4], v[2], N);
    double err = test_max_diff(v[4], v[6], N);
    print_message("%s: parameters moved by up to %.3g; 2 ranks vs 1 rank differ by %.3g\n", tag,
                  moved, err);
    assert_true(moved > 0.05);
    assert_true(err < 2e-6);
    /* "unused" (offset 4*18+4+12+3, 5 values) had zero gradient: unchanged. */
    size_t u = 4 * 18 + 4 + 12 + 3;
    assert_true(test_max_diff(v[4] + u, v[2] + u, 5) == 0.0);
    for (int i = 0; i < 7; i++) gl_free(v[i]);
}

static void test_two_ranks_match_one(void **state)
{
    (void)state;
    /* Small buckets: every tensor in a bucket of its own or split by dtype;
     * default buckets: one float32 bucket and one float64 bucket. */
    static train_ctx small = { 64.0 / 1048576.0, "small" }, big = { 25.0, "big" };
    train_ctx *ctxs[2] = { &small, &big };
    for (int c = 0; c < 2; c++) {
        int st[2];
        test_run_ranks(2, train_rank, ctxs[c], 60, st);
        test_assert_ranks_ok(st, 2);
        test_run_ranks(1, train_rank, ctxs[c], 60, st);
        test_assert_ranks_ok(st, 1);
        check_training(ctxs[c]->tag);
    }
}

/* ---- which tensors had a gradient ------------------------------------------------------------ */

/* Every element of t's gradient is `want` (g defined). */
static int grad_is(const nn_tensor *t, double want, const char *name)
{
    nn_tensor *g = NULL;
    double v[8];
    COK(nn_grad(&g, t));
    CHECK(g != NULL, "%s has no gradient", name);
    int64_t n = nn_numel(g);
    int rc = nn_copy_to(g, v, (size_t)n * sizeof(double), NN_F64);
    nn_free(&g);
    COK(rc);
    for (int64_t i = 0; i < n; i++) CHECK(v[i] == want, "%s: gradient %g, expected %g", name, v[i], want);
    return 0;
}

/* Rank r's loss: (r + 1) sum(both) + [r == 1] 3 sum(one) + [r == 0] 5 sum(dbl);
 * "none" is never used. After the all-reduce, as under DDP: both 1.5, one
 * 3/2 (rank 0 took part with zeros), dbl (float64: another bucket) 5/2, and
 * none without a gradient on both ranks, twice in a row (so an optimizer
 * skips it as one process would). bucket_mb as in test_two_ranks_match_one. */
static int flags_rank(int rank, int world, int port, void *ctx)
{
    nn_runtime_init(1, "cpu");
    nn_dist *d = NULL;
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = 20;
    o.bucket_mb = *(const double *)ctx;
    COK(nn_dist_init(&d, rank, world, rank, "127.0.0.1", port, &o));
    nn_params p;
    nn_params_init(&p);
    nn_tensor *both, *one, *none, *dbl = NULL;
    int64_t s4[1] = { 4 }, s3[1] = { 3 }, s2[1] = { 2 };
    COK(nn_params_new(&p, &both, "both", s4, 1, NN_INIT_ONES, 0));
    COK(nn_params_new(&p, &one, "one", s3, 1, NN_INIT_ONES, 0));
    COK(nn_params_new(&p, &none, "none", s2, 1, NN_INIT_ONES, 0));
    COK(nn_zeros(&dbl, s2, 1, NN_F64));
    COK(nn_set_requires_grad(dbl, 1));
    COK(nn_params_add(&p, "dbl", dbl, 0, 0));
    for (int step = 0; step < 2; step++) {
        nn_scope *sc = NULL;
        nn_tensor *l, *t;
        COK(nn_params_zero_grad(&p));
        COK(nn_scope_begin(&sc));
        COK(nn_sum(&l, both, NULL, 0, 0));
        COK(nn_mul_scalar(&l, l, rank + 1.0));
        if (rank == 1) {
            COK(nn_sum(&t, one, NULL, 0, 0));
            COK(nn_axpy(&l, l, 3.0, t));
        } else {
            COK(nn_sum(&t, dbl, NULL, 0, 0));
            COK(nn_to_dtype(&t, t, NN_F32));
            COK(nn_axpy(&l, l, 5.0, t));
        }
        COK(nn_backward(l));
        nn_scope_end(&sc);
        COK(nn_dist_allreduce_grads(d, &p));
        COK(grad_is(both, 1.5, "both"));
        COK(grad_is(one, 1.5, "one"));
        COK(grad_is(dbl, 2.5, "dbl"));
        nn_tensor *g = NULL;
        COK(nn_grad(&g, none));
        CHECK(g == NULL, "step %d: 'none', unused on every rank, has a gradient after the all-reduce", step);
    }
    nn_params_free(&p);
    nn_dist_free(&d);
    return 0;
}

static void test_unused_gradients(void **state)
{
    (void)state;
    static double small = 16.0 / 1048576.0, big = 25.0; /* a bucket per tensor; one per dtype */
    double *sizes[2] = { &small, &big };
    for (int k = 0; k < 2; k++) {
        int st[2];
        test_run_ranks(2, flags_rank, sizes[k], 60, st);
        test_assert_ranks_ok(st, 2);
    }
}

/* ---- environment, values, shards ---------------------------------------------------------- */

static const char *env_vars[] = { "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                                  "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID" };

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++) unsetenv(env_vars[i]);
}

/* Rank r contributes (r + 1, -r, 10 r); uses torchrun's variables (or
 * Slurm's for the "slurm" context); writes its shard of epochs 0 and 1. */
static int values_rank(int rank, int world, int port, void *ctx)
{
    const char *src = ctx;
    char v[32];
    nn_runtime_init(1, "cpu");
    clear_env();
    snprintf(v, sizeof v, "%d", rank);
    setenv(!strcmp(src, "slurm") ? "SLURM_PROCID" : "RANK", v, 1);
    setenv(!strcmp(src, "slurm") ? "SLURM_LOCALID" : "LOCAL_RANK", v, 1);
    snprintf(v, sizeof v, "%d", world);
    setenv(!strcmp(src, "slurm") ? "SLURM_NTASKS" : "WORLD_SIZE", v, 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    snprintf(v, sizeof v, "%d", port);
    setenv("MASTER_PORT", v, 1);
    nn_dist *d = NULL;
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = 20;
    COK(nn_dist_init_from_env(&d, &o));
    CHECK(nn_dist_rank(d) == rank && nn_dist_world_size(d) == world && nn_dist_local_rank(d) == rank,
          "rank %d world %d", nn_dist_rank(d), nn_dist_world_size(d));
    COK(nn_dist_barrier(d));
    double exp[4][3] = { { 3, -1, 10 }, { 1.5, -0.5, 5 }, { 1, -1, 0 }, { 2, 0, 10 } };
    nn_dist_reduce ops[4] = { NN_DIST_SUM, NN_DIST_MEAN, NN_DIST_MIN, NN_DIST_MAX };
    for (int k = 0; k < 4; k++) {
        double x[3] = { rank + 1, -rank, 10.0 * rank };
        COK(nn_dist_allreduce_values(d, x, 3, ops[k]));
        for (int i = 0; i < 3; i++) CHECK(x[i] == exp[k][i], "op %d value %d: %g != %g", k, i, x[i], exp[k][i]);
    }
    /* Shards of 11 items over 2 ranks: 6 each (one padded), epochs 0 and 1. */
    long idx[2][6], cnt;
    for (int e = 0; e < 2; e++) {
        CHECK(nn_dist_shard_count(d, 11) == 6, "count");
        COK(nn_dist_shard(d, 11, (uint64_t)e, 42, 1, idx[e], &cnt));
        CHECK(cnt == 6, "count %ld", cnt);
    }
    long range[2];
    COK(nn_dist_shard_range(d, 11, &range[0], &range[1]));
    char path[512];
    snprintf(path, sizeof path, "%s/%s_shard_r%d.bin", tmpdir, src, rank);
    COK(gl_write_file_atomic(path, idx, sizeof idx));
    snprintf(path, sizeof path, "%s/%s_range_r%d.bin", tmpdir, src, rank);
    COK(gl_write_file_atomic(path, range, sizeof range));
    /* Tables that differ between ranks are refused on every rank. */
    nn_params p;
    nn_params_init(&p);
    int64_t sh[1] = { 3 + rank };
    COK(nn_params_new(&p, NULL, "w", sh, 1, NN_INIT_ZEROS, 0));
    int rc = nn_dist_broadcast_params(d, &p);
    CHECK(rc == GL_EINVAL && strstr(gl_last_error(), "differs"), "mismatched tables gave %d", rc);
    nn_params_free(&p);
    nn_dist_free(&d);
    return 0;
}

static void test_env_values_shards(void **state)
{
    (void)state;
    const char *srcs[2] = { "torchrun", "slurm" };
    for (int s = 0; s < 2; s++) {
        int st[2];
        test_run_ranks(2, values_rank, (void *)srcs[s], 60, st);
        test_assert_ranks_ok(st, 2);
        char name[64];
        size_t n0, n1;
        snprintf(name, sizeof name, "%s_shard_r0.bin", srcs[s]);
        long *a = (long *)test_read_doubles(tmpdir, name, &n0);
        snprintf(name, sizeof name, "%s_shard_r1.bin", srcs[s]);
        long *b = (long *)test_read_doubles(tmpdir, name, &n1);
        assert_int_equal(n0, 12);
        assert_int_equal(n1, 12);
        /* Per epoch: the 12 slots hold each of the 11 items, one twice
         * (DistributedSampler pads by repeating the first of the order). */
        for (int e = 0; e < 2; e++) {
            int seen[11] = { 0 };
            for (int k = 0; k < 6; k++) {
                assert_in_range(a[e * 6 + k], 0, 10);
                assert_in_range(b[e * 6 + k], 0, 10);
                seen[a[e * 6 + k]]++;
                seen[b[e * 6 + k]]++;
            }
            int twice = 0;
            for (int i = 0; i < 11; i++) {
                assert_true(seen[i] >= 1 && seen[i] <= 2);
                twice += seen[i] == 2;
            }
            assert_int_equal(twice, 1);
            /* And it is exactly nn_dist_permutation's order, dealt out. */
            long perm[11];
            OK(nn_dist_permutation(11, (uint64_t)e, 42, perm));
            for (int k = 0; k < 6; k++) {
                assert_int_equal(a[e * 6 + k], perm[(2 * k) % 11]);
                assert_int_equal(b[e * 6 + k], perm[(2 * k + 1) % 11]);
            }
        }
        assert_memory_not_equal(a, a + 6, 6 * sizeof(long)); /* epochs differ */
        gl_free(a);
        gl_free(b);
        snprintf(name, sizeof name, "%s_range_r0.bin", srcs[s]);
        long *r0 = (long *)test_read_doubles(tmpdir, name, &n0);
        snprintf(name, sizeof name, "%s_range_r1.bin", srcs[s]);
        long *r1 = (long *)test_read_doubles(tmpdir, name, &n1);
        assert_int_equal(r0[0], 0);
        assert_int_equal(r0[1], 6);
        assert_int_equal(r1[0], 6);
        assert_int_equal(r1[1], 11);
        gl_free(r0);
        gl_free(r1);
    }
}

static void test_env_read(void **state)
{
    (void)state;
    nn_dist_env e;
    clear_env();
    OK(nn_dist_env_read(&e));
    assert_int_equal(e.world_size, 1);
    assert_int_equal(e.rank, 0);
    assert_string_equal(e.source, "none");

    setenv("RANK", "3", 1);
    setenv("WORLD_SIZE", "4", 1);
    setenv("LOCAL_RANK", "1", 1);
    setenv("MASTER_ADDR", "node7", 1);
    setenv("MASTER_PORT", "1234", 1);
    setenv("SLURM_PROCID", "0", 1); /* torchrun's variables win */
    setenv("SLURM_NTASKS", "8", 1);
    OK(nn_dist_env_read(&e));
    assert_int_equal(e.rank, 3);
    assert_int_equal(e.world_size, 4);
    assert_int_equal(e.local_rank, 1);
    assert_int_equal(e.master_port, 1234);
    assert_string_equal(e.master_addr, "node7");
    assert_string_equal(e.source, "torchrun");

    unsetenv("RANK");
    unsetenv("WORLD_SIZE");
    unsetenv("LOCAL_RANK");
    unsetenv("MASTER_PORT");
    setenv("SLURM_PROCID", "5", 1);
    setenv("SLURM_LOCALID", "1", 1);
    OK(nn_dist_env_read(&e));
    assert_int_equal(e.rank, 5);
    assert_int_equal(e.world_size, 8);
    assert_int_equal(e.local_rank, 1);
    assert_int_equal(e.master_port, 29500);
    assert_string_equal(e.source, "slurm");

    /* Errors name the variable. */
    setenv("SLURM_PROCID", "8", 1);
    assert_int_equal(nn_dist_env_read(&e), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "SLURM_PROCID=8"));
    clear_env();
    setenv("RANK", "0", 1);
    assert_int_equal(nn_dist_env_read(&e), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "WORLD_SIZE"));
    setenv("WORLD_SIZE", "2", 1);
    assert_int_equal(nn_dist_env_read(&e), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "MASTER_ADDR"));
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", "http", 1);
    assert_int_equal(nn_dist_env_read(&e), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "MASTER_PORT='http'"));
    setenv("MASTER_PORT", "29501", 1);
    setenv("RANK", "-1", 1);
    assert_int_equal(nn_dist_env_read(&e), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "RANK='-1'"));
    /* Single process: world 1 without an address is fine, and needs no torch. */
    setenv("RANK", "0", 1);
    setenv("WORLD_SIZE", "1", 1);
    unsetenv("MASTER_ADDR");
    nn_dist *d = NULL;
    OK(nn_dist_init_from_env(&d, NULL));
    assert_int_equal(nn_dist_world_size(d), 1);
    assert_string_equal(nn_dist_backend_name(d), "none");
    double x = 2.5;
    OK(nn_dist_allreduce_values(d, &x, 1, NN_DIST_MEAN));
    assert_true(x == 2.5);
    OK(nn_dist_barrier(d));
    nn_dist_free(&d);
    assert_null(d);
    nn_dist_free(&d);
    clear_env();

    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = 0;
    assert_int_equal(nn_dist_options_validate(&o), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "timeout_s"));
    o = nn_dist_options_default();
    o.rendezvous_timeout_s = -1;
    assert_int_equal(nn_dist_options_validate(&o), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "rendezvous_timeout_s"));
    o = nn_dist_options_default();
    o.bucket_mb = -1;
    assert_int_equal(nn_dist_init(&d, 0, 1, 0, NULL, 0, &o), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "bucket_mb"));
    assert_int_equal(nn_dist_init(&d, 2, 2, 0, "127.0.0.1", 1234, NULL), GL_EINVAL);
    assert_null(d);
}

static void test_permutation(void **state)
{
    (void)state;
    enum { N = 1000 };
    long a[N], b[N], c[N];
    OK(nn_dist_permutation(N, 3, 7, a));
    OK(nn_dist_permutation(N, 3, 7, b));
    OK(nn_dist_permutation(N, 4, 7, c));
    assert_memory_equal(a, b, sizeof a); /* deterministic */
    char seen[N] = { 0 };
    long fixed = 0, same = 0;
    for (int i = 0; i < N; i++) {
        assert_in_range(a[i], 0, N - 1);
        assert_int_equal(seen[a[i]], 0);
        seen[a[i]] = 1;
        fixed += a[i] == i;
        same += a[i] == c[i];
    }
    /* A uniform permutation has 1 fixed point on average (P(> 10) < 1e-7),
     * and two independent ones agree in about 1 place. */
    assert_true(fixed <= 10);
    assert_true(same <= 10);
    long one = -1;
    OK(nn_dist_permutation(1, 0, 0, &one));
    assert_int_equal(one, 0);
    OK(nn_dist_permutation(0, 0, 0, NULL));
    assert_int_equal(nn_dist_permutation(-1, 0, 0, a), GL_EINVAL);
    /* World 1 (NULL): the shard is the whole order; the range everything. */
    long cnt, beg, end;
    OK(nn_dist_shard(NULL, N, 3, 7, 1, b, &cnt));
    assert_int_equal(cnt, N);
    assert_memory_equal(a, b, sizeof a);
    OK(nn_dist_shard(NULL, 5, 3, 7, 0, b, &cnt));
    for (int i = 0; i < 5; i++) assert_int_equal(b[i], i);
    OK(nn_dist_shard_range(NULL, 17, &beg, &end));
    assert_int_equal(beg, 0);
    assert_int_equal(end, 17);
}

/* ---- failures: a dead rank, a stalled rank ------------------------------------------------- */

enum { STALL_S = 4 }; /* how long the stalled rank sleeps, s */

typedef struct {
    int stall;        /* 0: rank 1 exits at once; 1: rank 1 sleeps STALL_S s */
    double timeout_s;
} fail_ctx;

static int fail_rank(int rank, int world, int port, void *ctx_)
{
    const fail_ctx *ctx = ctx_;
    nn_runtime_init(1, "cpu");
    nn_dist *d = NULL;
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = ctx->timeout_s;
    o.rendezvous_timeout_s = 30; /* a busy machine may start rank 0 late */
    COK(nn_dist_init(&d, rank, world, rank, "127.0.0.1", port, &o));
    COK(nn_dist_barrier(d));
    if (rank == 1) {
        if (ctx->stall) {
            /* Alive but silent for longer than rank 0's timeout. */
            struct timespec ts = { STALL_S, 0 };
            nanosleep(&ts, NULL);
        }
        nn_dist_free(&d);
        return 0;
    }
    nn_params p;
    nn_params_init(&p);
    nn_tensor *w = NULL, *loss = NULL;
    int64_t sh[1] = { 10 };
    COK(nn_params_new(&p, &w, "w", sh, 1, NN_INIT_ONES, 0));
    COK(nn_sum(&loss, w, NULL, 0, 0));
    COK(nn_backward(loss));
    nn_free(&loss);
    if (!ctx->stall) {
        struct timespec ts = { 0, 300 * 1000 * 1000 }; /* let rank 1 go */
        nanosleep(&ts, NULL);
    }
    double t0 = gl_now();
    int rc = nn_dist_allreduce_grads(d, &p);
    double el = gl_now() - t0;
    const char *m = gl_last_error();
    fprintf(stderr, "rank 0 (%s peer): rc %d after %.2f s: %s\n", ctx->stall ? "stalled" : "dead", rc, el, m);
    CHECK(rc == GL_ESYSTEM, "expected GL_ESYSTEM, got %d", rc);
    CHECK(strstr(m, "all-reduce of gradients") && strstr(m, "rank 0 of 2") && strstr(m, "timeout"),
          "message '%s'", m);
    /* Within the timeout (plus the wait's own margin), never a hang; a stalled
     * peer is only given up on after the timeout. */
    CHECK(el < ctx->timeout_s + 4.0, "took %.2f s", el);
    if (ctx->stall) {
        CHECK(el > ctx->timeout_s * 0.5, "gave up after %.2f s, before the timeout", el);
        /* ... and it was the timeout, not the peer waking up and leaving. */
        CHECK(el < STALL_S - 0.5, "gave up after %.2f s, only when the peer left", el);
    }
    /* The group refuses further work at once. */
    t0 = gl_now();
    double x = 1;
    rc = nn_dist_allreduce_values(d, &x, 1, NN_DIST_SUM);
    CHECK(rc == GL_ESYSTEM && strstr(gl_last_error(), "unusable"), "second call gave %d", rc);
    CHECK(gl_now() - t0 < 1.0, "second call waited");
    nn_dist_free(&d);
    nn_params_free(&p);
    return 0;
}

static void test_dead_rank(void **state)
{
    (void)state;
    fail_ctx c = { 0, 3.0 };
    int st[2];
    test_run_ranks(2, fail_rank, &c, 40, st);
    test_assert_ranks_ok(st, 2);
}

static void test_stalled_rank(void **state)
{
    (void)state;
    fail_ctx c = { 1, 1.5 };
    int st[2];
    test_run_ranks(2, fail_rank, &c, 40, st);
    test_assert_ranks_ok(st, 2);
}

/* Rendezvous failures: rank 0's port is taken; rank 1 waits for a rank 0
 * that never comes. Both end with a message within the timeout. */
static int rendezvous_rank(int rank, int world, int port, void *ctx)
{
    (void)rank, (void)world, (void)ctx;
    nn_runtime_init(1, "cpu");
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = 1.0;
    nn_dist *d = NULL;
    /* Hold the port, as another job would. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 1) == 0, "holding port");
    int rc = nn_dist_init(&d, 0, 2, 0, "127.0.0.1", port, &o);
    CHECK(rc == GL_ESYSTEM && d == NULL, "rank 0 on a taken port gave %d", rc);
    CHECK(strstr(gl_last_error(), "rendezvous") && strstr(gl_last_error(), "already in use"), "message");
    close(s);
    /* Nobody listens now: rank 1 retries until its timeout. */
    double t0 = gl_now();
    rc = nn_dist_init(&d, 1, 2, 1, "127.0.0.1", port, &o);
    double el = gl_now() - t0;
    fprintf(stderr, "rank 1 without rank 0: rc %d after %.2f s: %s\n", rc, el, gl_last_error());
    CHECK(rc == GL_ESYSTEM && d == NULL, "rank 1 alone gave %d", rc);
    CHECK(strstr(gl_last_error(), "rank 1 of 2") && strstr(gl_last_error(), "is rank 0 running"), "message");
    CHECK(el < 10.0, "took %.2f s", el);
    return 0;
}

static void test_rendezvous_failures(void **state)
{
    (void)state;
    int st[1];
    test_run_ranks(1, rendezvous_rank, NULL, 40, st);
    test_assert_ranks_ok(st, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_permutation),
        cmocka_unit_test(test_env_read),
        cmocka_unit_test(test_env_values_shards),
        cmocka_unit_test(test_two_ranks_match_one),
        cmocka_unit_test(test_unused_gradients),
        cmocka_unit_test(test_dead_rank),
        cmocka_unit_test(test_stalled_rank),
        cmocka_unit_test(test_rendezvous_failures),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
