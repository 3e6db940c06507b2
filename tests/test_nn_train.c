/* test_nn_train.c — nn/'s training side: layers, optimizers, learning-rate
 * schedules, gradient clipping, a tiny model that must learn, checkpoints
 * (nn/layers.c, nn/params.c, nn/optim.c, nn/torch_optim.cpp,
 * nn/checkpoint.c) and allocation failures. The tensor ops: test_nn_ops.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "nn/nn.h"

#include "tests/nn_testutil.h"

/* ---- layers, optimizers, schedules ---------------------------------------------------------------- */

static void test_lr_schedules(void **state)
{
    (void)state;
    nn_lr_schedule s = nn_lr_schedule_default();
    s.kind = NN_LR_COSINE;
    s.base_lr = 0.1;
    s.warmup_steps = 10;
    s.total_steps = 110;
    s.min_lr = 0.001;
    assert_double_equal(nn_lr_at(&s, 0), 0, 1e-15);
    assert_double_equal(nn_lr_at(&s, 5), 0.05, 1e-15);
    assert_double_equal(nn_lr_at(&s, 10), 0.1, 1e-15);
    assert_double_equal(nn_lr_at(&s, 60), 0.001 + 0.5 * 0.099, 1e-12); /* cos(pi/2) = 0 */
    assert_double_equal(nn_lr_at(&s, 110), 0.001, 1e-15);
    assert_double_equal(nn_lr_at(&s, 500), 0.001, 1e-15);
    s.kind = NN_LR_STEP;
    s.warmup_steps = 0;
    s.step_size = 30;
    s.gamma = 0.1;
    assert_double_equal(nn_lr_at(&s, 29), 0.1, 1e-15);
    assert_double_equal(nn_lr_at(&s, 30), 0.01, 1e-15);
    assert_double_equal(nn_lr_at(&s, 65), 0.001, 1e-15);
    nn_opt_config c = nn_opt_config_default(NN_OPT_SGD);
    OK(nn_opt_config_validate(&c));
    c.lr = -1;
    assert_int_equal(nn_opt_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "lr"));
}

/* A tiny CNN written with the API: classify whether a bright square sits in the
 * left or right half of a noisy 16x16 image. */
typedef struct {
    nn_params p;
    nn_conv c1, c2;
    nn_dense fc;
} tiny_net;

static int tiny_init(tiny_net *n)
{
    nn_params_init(&n->p);
    int rc;
    if ((rc = nn_conv_init(&n->c1, &n->p, "c1", 1, 8, 3, 2, 1, NN_NORM_BATCH, NN_ACT_RELU)) < 0) return rc;
    if ((rc = nn_conv_init(&n->c2, &n->p, "c2", 8, 8, 3, 2, 1, NN_NORM_GROUP, NN_ACT_RELU)) < 0) return rc;
    return nn_dense_init(&n->fc, &n->p, "fc", 8 * 4 * 4, 2);
}

static int tiny_forward(nn_tensor **logits, tiny_net *n, const nn_tensor *x, int training)
{
    nn_tensor *a, *b, *f;
    int rc;
    if ((rc = nn_conv_forward(&a, &n->c1, x, training)) < 0) return rc;
    if ((rc = nn_conv_forward(&b, &n->c2, a, training)) < 0) return rc;
    if ((rc = nn_flatten(&f, b, 1, -1)) < 0) return rc;
    return nn_dense_forward(logits, &n->fc, f);
}

static void make_batch(nn_tensor **x, nn_tensor **y, int n, unsigned *seed)
{
    float *img = calloc((size_t)n * 256, sizeof *img);
    int64_t *lab = calloc((size_t)n, sizeof *lab);
    for (int k = 0; k < n; k++) {
        int right = rand_r(seed) & 1;
        lab[k] = right;
        for (int i = 0; i < 256; i++) img[k * 256 + i] = 0.3f * ((float)rand_r(seed) / RAND_MAX - 0.5f);
        int r0 = rand_r(seed) % 12, c0 = (right ? 8 : 0) + rand_r(seed) % 5;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) img[k * 256 + (r0 + i) * 16 + c0 + j] += 1.0f;
    }
    int64_t xs[4] = { n, 1, 16, 16 }, ys[1] = { n };
    OK(nn_from_data(x, img, xs, 4, NN_F32));
    OK(nn_from_data(y, lab, ys, 1, NN_I64));
    free(img);
    free(lab);
}

static double train_tiny(nn_opt_kind kind, double lr, int steps, double *first, tiny_net *net, nn_optimizer **opt_out)
{
    nn_manual_seed(11);
    OK(tiny_init(net));
    nn_opt_config oc = nn_opt_config_default(kind);
    oc.lr = lr;
    oc.weight_decay = 1e-4;
    nn_optimizer *opt;
    OK(nn_optimizer_new(&opt, &net->p, &oc));
    unsigned seed = 5;
    double last = 0;
    for (int it = 0; it < steps; it++) {
        nn_scope *s;
        OK(nn_scope_begin(&s));
        nn_tensor *x, *y, *logits, *loss;
        make_batch(&x, &y, 32, &seed);
        OK(nn_optimizer_zero_grad(opt));
        OK(tiny_forward(&logits, net, x, 1));
        OK(nn_cross_entropy(&loss, logits, y, 0.0));
        OK(nn_backward(loss));
        double norm;
        OK(nn_clip_grad_norm(&net->p, 10.0, &norm));
        assert_true(isfinite(norm));
        OK(nn_optimizer_step(opt));
        double l = item(loss);
        if (it == 0) *first = l;
        last = l;
        nn_scope_end(&s);
    }
    if (opt_out) *opt_out = opt;
    else nn_optimizer_free(&opt);
    return last;
}

static double eval_acc(tiny_net *net, unsigned seed)
{
    nn_scope *s;
    OK(nn_scope_begin(&s));
    nn_tensor *x, *y, *logits, *pred, *eq, *eqf, *m;
    make_batch(&x, &y, 200, &seed);
    int prev = nn_grad_mode_set(0);
    OK(tiny_forward(&logits, net, x, 0));
    nn_grad_mode_set(prev);
    OK(nn_argmax(&pred, logits, 1, 0));
    OK(nn_compare(&eq, NN_EQ, pred, y));
    OK(nn_to_dtype(&eqf, eq, NN_F64));
    OK(nn_mean(&m, eqf, NULL, 0, 0));
    double acc = item(m);
    nn_scope_end(&s);
    return acc;
}

static void test_tiny_model_trains(void **state)
{
    (void)state;
    nn_opt_kind kinds[3] = { NN_OPT_SGD, NN_OPT_ADAM, NN_OPT_ADAMW };
    double lrs[3] = { 0.05, 3e-3, 3e-3 };
    for (int k = 0; k < 3; k++) {
        tiny_net net;
        double first, last = train_tiny(kinds[k], lrs[k], 60, &first, &net, NULL);
        /* loss starts near ln 2 and must fall at least 5x; held-out accuracy ≥ 95% */
        assert_true(first > 0.4);
        assert_true(last < first / 5);
        assert_true(eval_acc(&net, 999) >= 0.95);
        nn_params_free(&net.p);
    }
}

static void test_clip_grad_norm(void **state)
{
    (void)state;
    nn_params p;
    nn_params_init(&p);
    nn_tensor *a, *b, *l1, *l2, *l, *ga;
    int64_t s2[1] = { 2 };
    OK(nn_params_new(&p, &a, "a", s2, 1, NN_INIT_ONES, 0));
    OK(nn_params_new(&p, &b, "b", s2, 1, NN_INIT_ONES, 0));
    nn_scope *s;
    OK(nn_scope_begin(&s));
    /* loss = 3 sum(a) + 4 sum(b): gradient norm = sqrt(2*9 + 2*16) = sqrt(50) */
    nn_tensor *t1, *t2;
    OK(nn_mul_scalar(&t1, a, 3));
    OK(nn_mul_scalar(&t2, b, 4));
    OK(nn_sum(&l1, t1, NULL, 0, 0));
    OK(nn_sum(&l2, t2, NULL, 0, 0));
    OK(nn_add(&l, l1, l2));
    OK(nn_backward(l));
    double norm;
    OK(nn_clip_grad_norm(&p, 1.0, &norm));
    assert_double_equal(norm, sqrt(50.0), 1e-5);
    OK(nn_grad(&ga, a));
    double g[2];
    to_f64(ga, g, 2);
    assert_double_equal(g[0], 3 / sqrt(50.0), 1e-5);
    nn_scope_end(&s);
    assert_int_equal(nn_params_count(&p), 4);
    nn_params_free(&p);
}

/* ---- checkpoints ---------------------------------------------------------------------------------- */

static char tmpdir[256];

static void tmp_path(char *buf, size_t n, const char *name)
{
    test_tmp_path(tmpdir, sizeof tmpdir, "glocal_test_nn_", buf, n, name);
}

static void test_checkpoint_round_trip(void **state)
{
    (void)state;
    tiny_net net, net2;
    nn_optimizer *opt, *opt2;
    double first;
    train_tiny(NN_OPT_ADAMW, 3e-3, 5, &first, &net, &opt);
    nn_params st;
    nn_params_init(&st);
    OK(nn_optimizer_state_export(opt, &st));
    assert_true(st.n > 0);
    assert_non_null(nn_params_find(&st, "c1.weight.exp_avg"));
    char path[512];
    tmp_path(path, sizeof path, "tiny.ckpt.h5");
    nn_checkpoint_meta meta = { .step = 5, .config_json = "{\"model\": \"tiny\"}", .optimizer_state = &st,
                                .optimizer_kind = "adamw" };
    OK(nn_checkpoint_save(path, &net.p, &meta));
    /* a fresh model with other values loads everything bit-exactly */
    nn_manual_seed(12345);
    OK(tiny_init(&net2));
    assert_int_equal(nn_equal(net.p.tensors[0], net2.p.tensors[0]), 0);
    int64_t step;
    char *cfg;
    nn_params st2;
    nn_params_init(&st2);
    OK(nn_checkpoint_load(path, &net2.p, &step, &cfg, &st2));
    assert_int_equal(step, 5);
    assert_string_equal(cfg, "{\"model\": \"tiny\"}");
    gl_free(cfg);
    for (int i = 0; i < net.p.n; i++) {
        assert_string_equal(net.p.names[i], net2.p.names[i]);
        assert_int_equal(nn_equal(net.p.tensors[i], net2.p.tensors[i]), 1);
    }
    assert_int_equal(st2.n, st.n);
    for (int i = 0; i < st.n; i++)
        assert_int_equal(nn_equal(st.tensors[i], nn_params_find(&st2, st.names[i])), 1);
    /* the restored optimizer continues exactly like the original */
    nn_opt_config oc = nn_opt_config_default(NN_OPT_ADAMW);
    oc.lr = 3e-3;
    oc.weight_decay = 1e-4;
    OK(nn_optimizer_new(&opt2, &net2.p, &oc));
    OK(nn_optimizer_state_import(opt2, &st2));
    tiny_net *nets[2] = { &net, &net2 };
    nn_optimizer *opts[2] = { opt, opt2 };
    for (int k = 0; k < 2; k++) {
        unsigned seed = 77;
        nn_scope *s;
        OK(nn_scope_begin(&s));
        nn_tensor *x, *y, *logits, *loss;
        make_batch(&x, &y, 16, &seed);
        OK(nn_optimizer_zero_grad(opts[k]));
        OK(tiny_forward(&logits, nets[k], x, 1));
        OK(nn_cross_entropy(&loss, logits, y, 0));
        OK(nn_backward(loss));
        OK(nn_optimizer_step(opts[k]));
        nn_scope_end(&s);
    }
    for (int i = 0; i < net.p.n; i++) assert_int_equal(nn_equal(net.p.tensors[i], net2.p.tensors[i]), 1);
    nn_optimizer_free(&opt);
    nn_optimizer_free(&opt2);
    assert_null(opt);
    nn_params_free(&st);
    nn_params_free(&st2);
    nn_params_free(&net.p);
    nn_params_free(&net2.p);
}

static void test_checkpoint_bad_files(void **state)
{
    (void)state;
    tiny_net net;
    OK(tiny_init(&net));
    char path[512], bad[512];
    tmp_path(path, sizeof path, "good.ckpt.h5");
    OK(nn_checkpoint_save(path, &net.p, NULL));
    /* missing */
    tmp_path(bad, sizeof bad, "missing.h5");
    assert_int_equal(nn_checkpoint_load(bad, &net.p, NULL, NULL, NULL), GL_EIO);
    assert_non_null(strstr(gl_last_error(), "missing.h5"));
    /* truncated to half */
    void *data;
    size_t size;
    OK(gl_read_file(path, &data, &size));
    tmp_path(bad, sizeof bad, "truncated.h5");
    OK(gl_write_file_atomic(bad, data, size / 2));
    int rc = nn_checkpoint_load(bad, &net.p, NULL, NULL, NULL);
    assert_int_equal(rc, GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "truncated.h5"));
    /* garbage bytes */
    memset(data, 0x5a, size);
    tmp_path(bad, sizeof bad, "garbage.h5");
    OK(gl_write_file_atomic(bad, data, size));
    assert_int_equal(nn_checkpoint_load(bad, &net.p, NULL, NULL, NULL), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "not a glocal checkpoint"));
    gl_free(data);
    /* a model with a different layer: the message lists every difference */
    nn_params other;
    nn_params_init(&other);
    nn_conv c1;
    nn_dense fc;
    OK(nn_conv_init(&c1, &other, "c1", 1, 4, 3, 2, 1, NN_NORM_BATCH, NN_ACT_RELU)); /* 4 channels, not 8 */
    OK(nn_dense_init(&fc, &other, "head", 8, 2));                                     /* renamed */
    rc = nn_checkpoint_load(path, &other, NULL, NULL, NULL);
    assert_int_equal(rc, GL_EFORMAT);
    const char *m = gl_last_error();
    assert_non_null(strstr(m, "shape differs: params/c1.weight is [8, 1, 3, 3] in the file, [4, 1, 3, 3] in the model"));
    assert_non_null(strstr(m, "missing from the file: params/head.weight"));
    assert_non_null(strstr(m, "unexpected in the file: params/fc.weight"));
    assert_non_null(strstr(m, "unexpected in the file: params/c2.weight"));
    nn_params_free(&other);
    /* saving into a folder that does not exist fails cleanly and leaves nothing */
    assert_int_equal(nn_checkpoint_save("/nonexistent-dir/x.h5", &net.p, NULL), GL_EIO);
    nn_params_free(&net.p);
}

static void test_checkpoint_readable_by_h5py(void **state)
{
    (void)state;
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") != 0) skip();
    nn_params p;
    nn_params_init(&p);
    nn_tensor *w;
    int64_t sh[2] = { 2, 3 };
    OK(nn_params_new(&p, &w, "layer.weight", sh, 2, NN_INIT_ZEROS, 0));
    nn_tensor *src;
    OK(nn_arange(&src, 0, 6, 1, NN_F32));
    nn_tensor *v;
    OK(nn_view(&v, src, sh, 2));
    OK(nn_copy_(w, v));
    char path[512], cmd[1200];
    tmp_path(path, sizeof path, "py.ckpt.h5");
    nn_checkpoint_meta meta = { .step = 42 };
    OK(nn_checkpoint_save(path, &p, &meta));
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import h5py,sys; f=h5py.File('%s','r'); w=f['params']['layer.weight'][()];"
             " sys.exit(0 if w.shape==(2,3) and w[1,2]==5.0 and f.attrs['step']==42 else 1)\"",
             path);
    assert_int_equal(system(cmd), 0);
    nn_free(&src);
    nn_free(&v);
    nn_params_free(&p);
}

/* nn_checkpoint_read_config and nn_checkpoint_read_tensors: the pieces a
 * model's loader reads before (or instead of) nn_checkpoint_load. */
static void test_checkpoint_read_parts(void **state)
{
    (void)state;
    nn_params p;
    nn_params_init(&p);
    nn_tensor *w, *nbt;
    int64_t sh[2] = { 2, 3 };
    OK(nn_params_new(&p, &w, "layer.weight", sh, 2, NN_INIT_ZEROS, 0));
    OK(nn_fill_(w, 1.5));
    OK(nn_scalar(&nbt, 7, NN_I64));
    OK(nn_params_add(&p, "bn.num_batches_tracked", nbt, 1, 1));
    char path[512], bare[512];
    tmp_path(path, sizeof path, "parts.ckpt.h5");
    nn_checkpoint_meta meta = { .step = 3, .config_json = "{\"model\": \"parts\"}" };
    OK(nn_checkpoint_save(path, &p, &meta));
    char *cfg = NULL;
    OK(nn_checkpoint_read_config(path, &cfg));
    assert_string_equal(cfg, "{\"model\": \"parts\"}");
    gl_free(cfg);
    const char *names[4] = { "params/layer.weight", "buffers/bn.num_batches_tracked", "params/absent",
                             "optimizer/layer.weight" };
    nn_tensor *t[4];
    OK(nn_checkpoint_read_tensors(path, names, 4, t));
    assert_int_equal(nn_equal(t[0], w), 1);
    assert_int_equal(nn_get_dtype(t[1]), NN_I64);
    double v;
    OK(nn_item(t[1], &v));
    assert_true(v == 7);
    assert_null(t[2]); /* no such dataset */
    assert_null(t[3]); /* no such group */
    nn_free(&t[0]);
    nn_free(&t[1]);
    const char *bad[1] = { "no-group" };
    assert_int_equal(nn_checkpoint_read_tensors(path, bad, 1, t), GL_EINVAL);
    assert_null(t[0]);
    /* a checkpoint without a config, a missing file, a file that is not HDF5 */
    tmp_path(bare, sizeof bare, "bare.ckpt.h5");
    nn_checkpoint_meta none = { .step = 0 };
    OK(nn_checkpoint_save(bare, &p, &none));
    assert_int_equal(nn_checkpoint_read_config(bare, &cfg), GL_ENOTFOUND);
    assert_null(cfg);
    assert_int_equal(nn_checkpoint_read_config("/nonexistent/x.h5", &cfg), GL_EIO);
    assert_int_equal(nn_checkpoint_read_tensors("/nonexistent/x.h5", names, 1, t), GL_EIO);
    FILE *f = fopen(bare, "wb");
    assert_non_null(f);
    fputs("not hdf5", f);
    fclose(f);
    assert_int_equal(nn_checkpoint_read_config(bare, &cfg), GL_EFORMAT);
    assert_int_equal(nn_checkpoint_read_tensors(bare, names, 1, t), GL_EFORMAT);
    assert_null(t[0]);
    unlink(bare);
    unlink(path);
    nn_params_free(&p);
}

static void test_alloc_failures_clean_up(void **state)
{
    (void)state;
    /* Make each allocation in turn fail while building a parameter table:
     * while k is below the number of allocations the call makes, allocation k
     * fails and the call must say GL_ENOMEM (and leak nothing: ASan checks);
     * from that number on it must succeed and build the whole table. */
    long k;
    int rc = GL_ENOMEM;
    for (k = 0; rc < 0; k++) {
        assert_true(k < 1000); /* the call must succeed once allocations do */
        nn_params p;
        nn_params_init(&p);
        nn_conv c;
        gl_alloc_fail_after(k);
        rc = nn_conv_init(&c, &p, "c", 2, 4, 3, 1, 1, NN_NORM_BATCH, NN_ACT_RELU);
        gl_alloc_fail_after(-1);
        if (rc < 0) {
            assert_int_equal(rc, GL_ENOMEM);
            assert_non_null(strstr(gl_last_error(), "out of memory"));
        } else {
            /* weight, norm weight and bias, running mean and var, batches tracked */
            assert_int_equal(p.n, 6);
            assert_ptr_equal(nn_params_find(&p, "c.norm.num_batches_tracked"), c.nbt);
        }
        nn_params_free(&p);
    }
    assert_int_equal(rc, 0);
    assert_true(k > 1); /* the first try (k = 0) failed: allocations did fail */
}

static int teardown_all(void **state)
{
    (void)state;
    return tmpdir[0] ? test_tmpdir_remove(tmpdir) : 0;
}

int main(void)
{
    nn_runtime_init(2, "cpu");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lr_schedules),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_tiny_model_trains),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_checkpoint_bad_files),
        cmocka_unit_test(test_checkpoint_readable_by_h5py),
        cmocka_unit_test(test_checkpoint_read_parts),
        cmocka_unit_test(test_alloc_failures_clean_up),
    };
    return cmocka_run_group_tests_name("nn_train", tests, NULL, teardown_all);
}
