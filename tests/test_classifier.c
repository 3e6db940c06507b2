/* test_classifier.c — the two-stream classifier (recognition/classifier.h):
 * metrics on hand-computed cases, a float64 finite-difference check of the
 * head, torchvision parameter counts, cross-modality init, a tiny motion
 * classifier on a separable synthetic set, exact resume, score files and
 * fusion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hdf5.h>
#include <json-c/json.h>
#include <sys/wait.h>

#include "datasets/loader.h"
#include "datasets/ucf101.h"
#include "recognition/classifier.h"
#include "tests/testutil.h"

static char tmpdir[256];

static void tmp_path(char *buf, size_t n, const char *name)
{
    test_tmp_path(tmpdir, sizeof tmpdir, "glocal_test_classifier_", buf, n, name);
}

/* ---- metrics ----------------------------------------------------------------------------- */

static void test_metrics_by_hand(void **state)
{
    (void)state;
    /* 6 classes, 5 clips (+ one unlabelled, skipped).
     * clip 0: true 0, best 0                      -> top1 hit
     * clip 1: true 1, best 2, true ranks 2nd      -> top5 hit
     * clip 2: true 2, true ranks 6th (lowest)     -> miss both
     * clip 3: true 2, best 2                      -> hit
     * clip 4: true 5, all tied: argmax 0, true ranks 6th by the tie rule -> miss both */
    float s[6][6] = {
        { 9, 1, 1, 1, 1, 1 },
        { 1, 5, 6, 0, 0, 0 },
        { 5, 4, 0, 3, 2, 1 },
        { 0, 0, 7, 1, 0, 0 },
        { 1, 1, 1, 1, 1, 1 },
        { 0, 9, 0, 0, 0, 0 },
    };
    int32_t y[6] = { 0, 1, 2, 2, 5, -1 };
    cls_metrics m;
    OK(cls_metrics_compute(&s[0][0], y, 6, 6, &m));
    assert_int_equal(m.n, 5);
    assert_double_equal(m.top1, 2.0 / 5, 1e-12);
    assert_double_equal(m.top5, 3.0 / 5, 1e-12);
    assert_double_equal(m.per_class[0], 1.0, 1e-12);
    assert_double_equal(m.per_class[1], 0.0, 1e-12);
    assert_double_equal(m.per_class[2], 0.5, 1e-12);
    assert_double_equal(m.per_class[5], 0.0, 1e-12);
    assert_true(isnan(m.per_class[3]));
    assert_double_equal(m.mean_class, (1.0 + 0 + 0.5 + 0) / 4, 1e-12);
    assert_int_equal(m.confusion[1 * 6 + 2], 1);
    assert_int_equal(m.confusion[2 * 6 + 0], 1);
    assert_int_equal(m.confusion[5 * 6 + 0], 1);
    assert_int_equal(m.class_count[2], 2);
    char *json;
    char *names[6] = { "a", "b", "c\"q", "d", "e", "f" };
    OK(cls_metrics_to_json(&m, names, &json));
    assert_non_null(strstr(json, "\"top1\": 0.4"));
    assert_non_null(strstr(json, "\"c\\\"q\": 0.5"));
    assert_non_null(strstr(json, "\"d\": null"));
    gl_free(json);
    char path[300], *text;
    size_t size;
    tmp_path(path, sizeof path, "confusion.csv");
    OK(cls_metrics_save_confusion_csv(path, &m, names));
    OK(gl_read_file(path, (void **)&text, &size));
    assert_non_null(strstr(text, "true\\pred,a,b,\"c\"\"q\",d,e,f\n"));
    assert_non_null(strstr(text, "\nb,0,0,1,0,0,0\n"));
    gl_free(text);
    tmp_path(path, sizeof path, "confusion.png");
    OK(cls_metrics_save_confusion_png(path, &m, 4));
    assert_int_equal(access(path, R_OK), 0);
    cls_metrics_free(&m);
    /* a label beyond the classes is an error */
    y[0] = 6;
    assert_int_equal(cls_metrics_compute(&s[0][0], y, 6, 6, &m), GL_EINVAL);
}

static void test_scores_file_and_fusion(void **state)
{
    (void)state;
    float a[3 * 2] = { 0.9f, 0.1f, 0.4f, 0.6f, 0.3f, 0.7f };
    float b[3 * 2] = { 0.6f, 0.4f, 0.8f, 0.2f, 0.1f, 0.9f };
    long items[3] = { 4, 7, 9 };
    int32_t labels[3] = { 0, 0, 1 };
    const char *names[3] = { "X/v_X_g01_c01.avi", "Y, with comma", "Z" };
    char *cn[2] = { "Left", "Right" };
    char path[300];
    tmp_path(path, sizeof path, "scores.csv");
    OK(cls_scores_save(path, 3, 2, items, names, labels, a, cn));
    long n, *it;
    int C;
    char **nm, **cnames;
    int32_t *lab;
    float *sc;
    OK(cls_scores_load(path, &n, &C, &it, &nm, &lab, &sc, &cnames));
    assert_int_equal(n, 3);
    assert_int_equal(C, 2);
    assert_int_equal(it[1], 7);
    assert_string_equal(nm[1], "Y, with comma");
    assert_string_equal(cnames[1], "Right");
    assert_int_equal(lab[2], 1);
    assert_memory_equal(sc, a, sizeof a);
    /* fusion 1:2 — clip 1: 0.4 + 1.6 = 2.0 vs 0.6 + 0.4 = 1.0 -> class 0 (right) */
    const float *streams[2] = { sc, b };
    double w[2] = { 1, 2 };
    float f[6];
    OK(cls_fuse(2, streams, w, 3, 2, f));
    assert_double_equal(f[2], 2.0, 1e-6);
    assert_double_equal(f[3], 1.0, 1e-6);
    cls_metrics m;
    OK(cls_metrics_compute(f, lab, 3, 2, &m));
    assert_double_equal(m.top1, 1.0, 1e-12); /* fused: all three right */
    cls_metrics_free(&m);
    OK(cls_metrics_compute(sc, lab, 3, 2, &m)); /* stream a alone misses clip 1 */
    assert_double_equal(m.top1, 2.0 / 3, 1e-12);
    cls_metrics_free(&m);
    gl_free(it);
    gl_free(lab);
    gl_free(sc);
    cls_names_free(nm, n);
    cls_names_free(cnames, C);
    /* a malformed file names the line */
    tmp_path(path, sizeof path, "bad.csv");
    const char *bad = "item,name,label,A,B\n0,x,0,0.5,0.5\n1,y,3,0.1,0.9\n";
    OK(gl_write_file_atomic(path, bad, strlen(bad)));
    assert_int_equal(cls_scores_load(path, &n, &C, &it, &nm, &lab, &sc, &cnames), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "bad.csv:3: label"));
}

/* ---- head gradient check (float64 central differences) --------------------------------------- */

static double head_loss(const nn_tensor *feat, const nn_tensor *w, const nn_tensor *b, const nn_tensor *y, int S)
{
    nn_scope *sc;
    OK(nn_scope_begin(&sc));
    nn_tensor *logits, *loss;
    OK(classifier_head(&logits, feat, w, b, S, 0.5, 0));
    OK(nn_cross_entropy(&loss, logits, y, 0.1));
    double v;
    OK(nn_item(loss, &v));
    nn_scope_end(&sc);
    return v;
}

static void gradcheck(nn_tensor *t, const nn_tensor *grad, const nn_tensor *feat, const nn_tensor *w,
                      const nn_tensor *b, const nn_tensor *y, int S)
{
    int64_t n = nn_numel(t);
    double *v = malloc((size_t)n * sizeof *v), *g = malloc((size_t)n * sizeof *g);
    OK(nn_copy_to(t, v, (size_t)n * 8, NN_F64));
    OK(nn_copy_to(grad, g, (size_t)n * 8, NN_F64));
    int64_t shape[NN_MAX_DIMS];
    int nd = nn_shape(t, shape);
    const double h = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double keep = v[i];
        nn_tensor *tmp;
        v[i] = keep + h;
        OK(nn_from_data(&tmp, v, shape, nd, NN_F64));
        OK(nn_copy_(t, tmp));
        nn_free(&tmp);
        double lp = head_loss(feat, w, b, y, S);
        v[i] = keep - h;
        OK(nn_from_data(&tmp, v, shape, nd, NN_F64));
        OK(nn_copy_(t, tmp));
        nn_free(&tmp);
        double lm = head_loss(feat, w, b, y, S);
        v[i] = keep;
        double fd = (lp - lm) / (2 * h);
        assert_double_equal(g[i], fd, 1e-7 + 1e-6 * fabs(fd));
    }
    nn_tensor *tmp;
    OK(nn_from_data(&tmp, v, shape, nd, NN_F64));
    OK(nn_copy_(t, tmp));
    nn_free(&tmp);
    free(v);
    free(g);
}

static void test_head_gradient(void **state)
{
    (void)state;
    nn_manual_seed(3);
    enum { N = 3, S = 2, F = 5, C = 4 };
    int64_t fs[2] = { N * S, F }, ws[2] = { C, F }, bs[1] = { C };
    nn_tensor *feat, *w, *b, *y, *logits, *loss, *gf, *gw, *gb;
    OK(nn_randn(&feat, fs, 2, NN_F64));
    OK(nn_randn(&w, ws, 2, NN_F64));
    OK(nn_randn(&b, bs, 1, NN_F64));
    int64_t lab[N] = { 0, 3, 1 }, ys[1] = { N };
    OK(nn_from_data(&y, lab, ys, 1, NN_I64));
    OK(nn_set_requires_grad(feat, 1));
    OK(nn_set_requires_grad(w, 1));
    OK(nn_set_requires_grad(b, 1));
    OK(classifier_head(&logits, feat, w, b, S, 0.5, 0));
    assert_int_equal(nn_size(logits, 0), N);
    assert_int_equal(nn_size(logits, 1), C);
    OK(nn_cross_entropy(&loss, logits, y, 0.1));
    OK(nn_backward(loss));
    OK(nn_grad(&gf, feat));
    OK(nn_grad(&gw, w));
    OK(nn_grad(&gb, b));
    int prev = nn_grad_mode_set(0);
    gradcheck(w, gw, feat, w, b, y, S);
    gradcheck(b, gb, feat, w, b, y, S);
    gradcheck(feat, gf, feat, w, b, y, S);
    nn_grad_mode_set(prev);
    /* consensus is the mean of the snippet logits: check one clip directly */
    double lg[N * C], snip[N * S * C];
    nn_tensor *one;
    OK(classifier_head(&one, feat, w, b, 1, 0.0, 0)); /* S = 1: per-snippet logits */
    OK(nn_copy_to(one, snip, sizeof snip, NN_F64));
    OK(nn_copy_to(logits, lg, sizeof lg, NN_F64));
    for (int c = 0; c < C; c++) assert_double_equal(lg[2 * C + c], 0.5 * (snip[4 * C + c] + snip[5 * C + c]), 1e-12);
    nn_tensor *bad = NULL;
    assert_int_equal(classifier_head(&bad, feat, w, b, 4, 0.0, 0), GL_EINVAL); /* 6 snippets, 4 segments */
    nn_free(&one);
    nn_free(&feat); nn_free(&w); nn_free(&b); nn_free(&y); nn_free(&logits); nn_free(&loss);
    nn_free(&gf); nn_free(&gw); nn_free(&gb);
}

/* ---- architectures ------------------------------------------------------------------------- */

static void test_presets_match_torchvision(void **state)
{
    (void)state;
    /* sum(p.numel() for p in torchvision.models.resnetXX().parameters()) */
    struct { const char *name; int64_t count; } want[] = { { "resnet18", 11689512 }, { "resnet50", 25557032 } };
    for (int i = 0; i < 2; i++) {
        classifier_config cfg;
        OK(classifier_config_preset(want[i].name, 3, 1000, &cfg));
        classifier *c;
        OK(classifier_new(&c, &cfg));
        assert_int_equal(nn_params_count(classifier_params(c)), want[i].count);
        nn_params *p = classifier_params(c);
        assert_non_null(nn_params_find(p, "layer1.0.bn1.running_var"));
        assert_non_null(nn_params_find(p, "layer4.0.downsample.0.weight"));
        assert_non_null(nn_params_find(p, "fc.bias"));
        /* the stem pool, strides and (for resnet50) bottlenecks run: [1, 2, 3, 32, 32] -> [1, 1000] */
        int64_t xs[5] = { 1, 2, 3, 32, 32 };
        nn_tensor *x, *logits;
        OK(nn_randn(&x, xs, 5, NN_F32));
        int prev = nn_grad_mode_set(0);
        OK(classifier_forward(&logits, c, x, 0));
        nn_grad_mode_set(prev);
        assert_int_equal(nn_size(logits, 1), 1000);
        double mx;
        nn_tensor *am;
        OK(nn_unary(&am, NN_ABS, logits));
        nn_tensor *mxt;
        OK(nn_max_all(&mxt, am));
        OK(nn_item(mxt, &mx));
        assert_true(isfinite(mx) && mx > 0);
        nn_free(&x); nn_free(&logits); nn_free(&am); nn_free(&mxt);
        classifier_free(&c);
        assert_null(c);
    }
    classifier_config cfg, back;
    OK(classifier_config_preset("small", 10, 7, &cfg));
    char json[1024];
    OK(classifier_config_to_json(&cfg, json, sizeof json));
    char wrapped[1200];
    snprintf(wrapped, sizeof wrapped, "{\"classifier\": %s, \"data\": {}}", json);
    OK(classifier_config_from_json(wrapped, &back));
    assert_memory_equal(&cfg, &back, sizeof cfg);
    assert_int_equal(classifier_config_preset("resnet7", 3, 2, &cfg), GL_ENOTFOUND);
    OK(classifier_config_preset("tiny", 3, 2, &cfg));
    cfg.dropout = 1.0;
    assert_int_equal(classifier_config_validate(&cfg), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "dropout"));
    /* a forward pass on the wrong channel count is refused with the shape */
    OK(classifier_config_preset("tiny", 4, 3, &cfg));
    classifier *c;
    OK(classifier_new(&c, &cfg));
    int64_t xs[5] = { 2, 3, 3, 8, 8 };
    nn_tensor *x, *logits = NULL;
    OK(nn_zeros(&x, xs, 5, NN_F32));
    assert_int_equal(classifier_forward(&logits, c, x, 0), GL_EINVAL);
    nn_free(&x);
    xs[2] = 4;
    OK(nn_zeros(&x, xs, 5, NN_F32));
    OK(classifier_forward(&logits, c, x, 0));
    assert_int_equal(nn_size(logits, 0), 2);
    assert_int_equal(nn_size(logits, 1), 3);
    nn_free(&x);
    nn_free(&logits);
    classifier_free(&c);
}

static void test_cross_modality_init(void **state)
{
    (void)state;
    classifier_config rc, mc;
    OK(classifier_config_preset("tiny", 3, 5, &rc));
    OK(classifier_config_preset("tiny", 6, 2, &mc)); /* motion: L = 3, other classes */
    classifier *rgb, *mot;
    nn_manual_seed(1);
    OK(classifier_new(&rgb, &rc));
    OK(classifier_new(&mot, &mc));
    char path[300];
    tmp_path(path, sizeof path, "rgb.h5");
    nn_checkpoint_meta meta = { .step = 0 };
    OK(nn_checkpoint_save(path, classifier_params(rgb), &meta));
    char report[1024];
    OK(classifier_load_pretrained(mot, path, report, sizeof report));
    assert_non_null(strstr(report, "conv1.weight: cross-modality"));
    assert_non_null(strstr(report, "skipped fc.weight"));
    /* conv1: every one of the 6 channels = the mean of the 3 RGB channels */
    float wr[8 * 3 * 9], wm[8 * 6 * 9];
    OK(nn_copy_to(nn_params_find(classifier_params(rgb), "conv1.weight"), wr, sizeof wr, NN_F32));
    OK(nn_copy_to(nn_params_find(classifier_params(mot), "conv1.weight"), wm, sizeof wm, NN_F32));
    for (int o = 0; o < 8; o++)
        for (int k = 0; k < 9; k++) {
            double mean = (wr[(o * 3 + 0) * 9 + k] + wr[(o * 3 + 1) * 9 + k] + wr[(o * 3 + 2) * 9 + k]) / 3.0;
            for (int c = 0; c < 6; c++) assert_double_equal(wm[(o * 6 + c) * 9 + k], mean, 1e-6);
        }
    /* the rest is copied as it is */
    double d;
    OK(nn_max_abs_diff(nn_params_find(classifier_params(rgb), "layer2.0.conv1.weight"),
                       nn_params_find(classifier_params(mot), "layer2.0.conv1.weight"), &d));
    assert_true(d == 0);
    /* a file as h5py writes it from a torchvision state_dict (recognition/README.md):
     * float32 / int64 datasets without dtype attributes, no root attributes */
    char tv[300];
    tmp_path(tv, sizeof tv, "torchvision_like.h5");
    hid_t f = H5Fcreate(tv, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t gp = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t gb = H5Gcreate2(f, "buffers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    nn_params *rp = classifier_params(rgb);
    for (int i = 0; i < rp->n; i++) {
        int64_t sh[NN_MAX_DIMS];
        int nd = nn_shape(rp->tensors[i], sh);
        hsize_t d[NN_MAX_DIMS];
        for (int k = 0; k < nd; k++) d[k] = (hsize_t)sh[k];
        int is_int = nn_get_dtype(rp->tensors[i]) == NN_I64;
        int64_t n = nn_numel(rp->tensors[i]);
        void *buf = malloc((size_t)n * 8 + 8);
        OK(nn_copy_to(rp->tensors[i], buf, (size_t)n * (is_int ? 8 : 4), is_int ? NN_I64 : NN_F32));
        hid_t sp = nd ? H5Screate_simple(nd, d, NULL) : H5Screate(H5S_SCALAR);
        hid_t ds = H5Dcreate2(rp->is_buffer[i] ? gb : gp, rp->names[i], is_int ? H5T_STD_I64LE : H5T_IEEE_F32LE, sp,
                              H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(ds >= 0);
        assert_true(H5Dwrite(ds, is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
        H5Dclose(ds);
        H5Sclose(sp);
        free(buf);
    }
    H5Gclose(gb);
    H5Gclose(gp);
    H5Fclose(f);
    classifier *mot2;
    nn_manual_seed(2);
    OK(classifier_new(&mot2, &mc));
    OK(classifier_load_pretrained(mot2, tv, NULL, 0));
    OK(nn_max_abs_diff(nn_params_find(classifier_params(mot), "conv1.weight"),
                       nn_params_find(classifier_params(mot2), "conv1.weight"), &d));
    assert_true(d == 0);
    OK(nn_max_abs_diff(nn_params_find(classifier_params(mot), "layer1.0.bn2.running_var"),
                       nn_params_find(classifier_params(mot2), "layer1.0.bn2.running_var"), &d));
    assert_true(d == 0);
    classifier_free(&mot2);
    /* a model of another shape is refused with the names */
    classifier_config big;
    OK(classifier_config_preset("small", 3, 5, &big));
    classifier *sm;
    OK(classifier_new(&sm, &big));
    assert_int_equal(classifier_load_pretrained(sm, path, NULL, 0), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "shape differs: params/conv1.weight"));
    classifier_free(&sm);
    assert_int_equal(classifier_load_pretrained(mot, "/nonexistent/w.h5", NULL, 0), GL_EIO);
    classifier_free(&rgb);
    classifier_free(&mot);
}

/* ---- training on a separable synthetic motion set ------------------------------------------- */

enum { SK = 2, SL = 2, SH = 16, SW = 16, SAMPLE = SK * 2 * SL * SH * SW };

/* Clip i: a 5x5 object at a random place moving 2 px right (label 1) or left
 * (label 0) in every field, small noise elsewhere; the camera is still. */
static void make_motion_set(float *x, int32_t *y, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        int right = rand_r(&seed) & 1;
        y[i] = right;
        float *s = x + (size_t)i * SAMPLE;
        for (int j = 0; j < SAMPLE; j++) s[j] = 0.3f * ((float)rand_r(&seed) / RAND_MAX - 0.5f);
        int oy = rand_r(&seed) % (SH - 5), ox = rand_r(&seed) % (SW - 5);
        for (int k = 0; k < SK; k++)
            for (int l = 0; l < SL; l++)
                for (int dy = 0; dy < 5; dy++)
                    for (int dx = 0; dx < 5; dx++)
                        s[(((size_t)k * 2 * SL + 2 * l) * SH + oy + dy) * SW + ox + dx] += right ? 2.0f : -2.0f;
    }
}

static cls_train_config small_train_config(void)
{
    cls_train_config tc = cls_train_config_default();
    tc.opt = nn_opt_config_default(NN_OPT_ADAMW);
    tc.opt.lr = 3e-3;
    tc.opt.weight_decay = 1e-4;
    tc.schedule = NN_LR_COSINE;
    tc.warmup_epochs = 0.5;
    tc.label_smoothing = 0.1;
    tc.batch_size = 16;
    tc.threads = 2;
    tc.seed = 9;
    return tc;
}

static void test_tiny_classifier_separates_motion(void **state)
{
    (void)state;
    enum { NTR = 128, NTE = 100 };
    float *xtr = malloc(sizeof(float) * SAMPLE * NTR), *xte = malloc(sizeof(float) * SAMPLE * NTE);
    int32_t ytr[NTR], yte[NTE];
    make_motion_set(xtr, ytr, NTR, 1);
    make_motion_set(xte, yte, NTE, 2);
    int64_t shape[4] = { SK, 2 * SL, SH, SW };
    loader_source tr, te;
    OK(loader_source_memory(&tr, xtr, ytr, NTR, shape, 4, NULL, NULL));
    OK(loader_source_memory(&te, xte, yte, NTE, shape, 4, NULL, NULL));
    classifier_config cfg;
    OK(classifier_config_preset("tiny", 2 * SL, 2, &cfg));
    nn_manual_seed(5);
    classifier *c;
    OK(classifier_new(&c, &cfg));
    cls_train_config tc = small_train_config();
    tc.epochs = 3;
    char logp[300];
    tmp_path(logp, sizeof logp, "train.jsonl");
    tc.log_path = logp;
    OK(cls_train(c, &tr, &tc, NULL, NULL));
    float scores[NTE * 2];
    int32_t lab[NTE];
    OK(cls_predict(c, &te, 32, 2, scores, lab, NULL, NULL, NULL));
    assert_memory_equal(lab, yte, sizeof yte);
    cls_metrics m;
    OK(cls_metrics_compute(scores, lab, NTE, 2, &m));
    if (getenv("GLOCAL_TEST_VERBOSE")) fprintf(stderr, "held-out top-1 %.3f\n", m.top1);
    assert_true(m.top1 >= 0.95);
    cls_metrics_free(&m);
    for (int i = 0; i < NTE; i++) assert_double_equal(scores[2 * i] + scores[2 * i + 1], 1.0, 1e-5);
    /* one JSON line per epoch, with the fields the issue asks for */
    char *text;
    size_t size;
    OK(gl_read_file(logp, (void **)&text, &size));
    int lines = 0;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    assert_int_equal(lines, 3);
    assert_non_null(strstr(text, "\"epoch\": 3"));
    assert_non_null(strstr(text, "\"clips_per_s\""));
    gl_free(text);
    /* a diverging run stops with a message */
    tc.opt.lr = 1e30;
    tc.clip_grad = 0;
    tc.epochs = 1;
    tc.log_path = NULL;
    int rc = cls_train(c, &tr, &tc, NULL, NULL);
    assert_int_equal(rc, GL_ENUMERIC);
    assert_non_null(strstr(gl_last_error(), "lower the learning rate"));
    classifier_free(&c);
    loader_source_free(&tr);
    loader_source_free(&te);
    free(xtr);
    free(xte);
}

static int stop_after_first_epoch(void *ctx, const cls_train_status *s)
{
    (void)ctx;
    return s->end_of_epoch && s->epoch == 0;
}

/* In the middle of epoch 2 (2 batches per epoch). */
static int stop_at_step_3(void *ctx, const cls_train_status *s)
{
    (void)ctx;
    return !s->end_of_epoch && s->step == 3;
}

static void test_resume_continues_identically(void **state)
{
    (void)state;
    enum { N = 32 };
    float *x = malloc(sizeof(float) * SAMPLE * N);
    int32_t y[N];
    make_motion_set(x, y, N, 3);
    int64_t shape[4] = { SK, 2 * SL, SH, SW };
    loader_source src;
    OK(loader_source_memory(&src, x, y, N, shape, 4, NULL, NULL));
    classifier_config cfg;
    OK(classifier_config_preset("tiny", 2 * SL, 2, &cfg));
    cfg.dropout = 0.3; /* exercises the dropout RNG across the resume */
    char a[300], b[300];
    tmp_path(a, sizeof a, "straight.h5");
    tmp_path(b, sizeof b, "split.h5");
    cls_train_config tc = small_train_config();
    tc.opt = nn_opt_config_default(NN_OPT_SGD);
    tc.opt.lr = 0.05;
    tc.opt.momentum = 0.9;
    tc.opt.weight_decay = 1e-4;
    classifier *c1, *c2, *c3;
    nn_manual_seed(7);
    OK(classifier_new(&c1, &cfg));
    tc.epochs = 2;
    tc.checkpoint = a;
    OK(cls_train(c1, &src, &tc, NULL, NULL));
    /* the same run interrupted after its first epoch (same schedule) */
    nn_manual_seed(7);
    OK(classifier_new(&c2, &cfg));
    tc.checkpoint = b;
    assert_int_equal(cls_train(c2, &src, &tc, stop_after_first_epoch, NULL), GL_ECANCELED);
    /* a fresh process would start from a different init: resume must not care */
    nn_manual_seed(99);
    OK(classifier_new(&c3, &cfg));
    tc.resume = b;
    char logp[300];
    tmp_path(logp, sizeof logp, "resume.jsonl");
    /* a log as a kill after epoch 2's line but before its checkpoint would leave it */
    const char *old = "{\"epoch\": 1, \"step\": 2}\n{\"epoch\": 2, \"step\": 4}\n";
    OK(gl_write_file_atomic(logp, old, strlen(old)));
    tc.log_path = logp;
    OK(cls_train(c3, &src, &tc, NULL, NULL));
    char *text;
    size_t size;
    OK(gl_read_file(logp, (void **)&text, &size));
    assert_non_null(strstr(text, "{\"epoch\": 1, \"step\": 2}\n{\"epoch\": 2, \"step\": 4, \"loss\""));
    assert_null(strstr(text, "{\"epoch\": 2, \"step\": 4}"));
    gl_free(text);
    nn_params *p1 = classifier_params(c1), *p3 = classifier_params(c3);
    assert_int_equal(p1->n, p3->n);
    for (int i = 0; i < p1->n; i++) {
        if (!nn_equal(p1->tensors[i], p3->tensors[i])) {
            double d;
            nn_max_abs_diff(p1->tensors[i], p3->tensors[i], &d);
            print_error("%s differs by %g after the resume\n", p1->names[i], d);
            fail();
        }
    }
    /* the loader's worker count changes nothing either */
    classifier *c4;
    nn_manual_seed(7);
    OK(classifier_new(&c4, &cfg));
    tc.resume = NULL;
    tc.log_path = NULL;
    tc.checkpoint = NULL;
    tc.threads = 3;
    OK(cls_train(c4, &src, &tc, NULL, NULL));
    for (int i = 0; i < p1->n; i++) assert_true(nn_equal(p1->tensors[i], classifier_params(c4)->tensors[i]));
    classifier_free(&c4);
    /* stopped inside an epoch: the checkpoint holds that step, and the resume
     * takes the epoch's remaining batch as the straight run did */
    char mid[300];
    tmp_path(mid, sizeof mid, "mid.h5");
    classifier *c5, *c6;
    nn_manual_seed(7);
    OK(classifier_new(&c5, &cfg));
    tc.threads = 2;
    tc.checkpoint = mid;
    assert_int_equal(cls_train(c5, &src, &tc, stop_at_step_3, NULL), GL_ECANCELED);
    int64_t mid_step = -1;
    nn_manual_seed(99);
    OK(classifier_new(&c6, &cfg));
    OK(nn_checkpoint_load(mid, classifier_params(c6), &mid_step, NULL, NULL));
    assert_int_equal(mid_step, 3);
    tc.resume = mid;
    OK(cls_train(c6, &src, &tc, NULL, NULL));
    for (int i = 0; i < p1->n; i++) {
        double d6;
        OK(nn_max_abs_diff(p1->tensors[i], classifier_params(c6)->tensors[i], &d6));
        if (!nn_equal(p1->tensors[i], classifier_params(c6)->tensors[i]))
            fail_msg("%s differs by %g after a resume inside an epoch", p1->names[i], d6);
    }
    classifier_free(&c5);
    classifier_free(&c6);
    tc.resume = NULL;
    /* and the epochs differ from one another (the test can fail) */
    double d;
    OK(nn_max_abs_diff(nn_params_find(classifier_params(c2), "fc.weight"), nn_params_find(p1, "fc.weight"), &d));
    assert_true(d > 0);
    classifier_free(&c1);
    classifier_free(&c2);
    classifier_free(&c3);
    loader_source_free(&src);
    free(x);
}


/* ---- the commands, end to end ------------------------------------------------------------------ */

/* Runs a shell command; returns its exit status and the last line of its stdout in last. */
static int run(const char *cmd, char *last, size_t n)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[8192];
    if (last) last[0] = 0;
    while (fgets(line, sizeof line, p))
        if (last) snprintf(last, n, "%s", line);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_commands_end_to_end(void **state)
{
    (void)state;
    char d[300], cmd[4096], last[8192];
    tmp_path(d, sizeof d, "e2e");
    const char *g = GLOCAL_BINARY " --threads 1";
    snprintf(cmd, sizeof cmd, "%s synth --out %s/data --classes 2 --clips-per-class 4 --frames 8 --size 32x32 "
             "--camera none --supersample 1 >/dev/null 2>&1", g, d);
    assert_int_equal(run(cmd, NULL, 0), 0);
    snprintf(cmd, sizeof cmd, "%s train-classifier --data %s/data --out %s/rgb --arch tiny --size 16x16 --decode 32x32 "
             "--segments 2 --epochs 2 --batch 2 --lr 0.01 2>/dev/null", g, d, d);
    assert_int_equal(run(cmd, last, sizeof last), 0);
    assert_non_null(strstr(last, "/rgb/checkpoint.h5"));
    snprintf(cmd, sizeof cmd, "%s/rgb/train.jsonl", d);
    char *text;
    size_t size;
    OK(gl_read_file(cmd, (void **)&text, &size));
    assert_non_null(strstr(text, "{\"epoch\": 2, "));
    gl_free(text);
    snprintf(cmd, sizeof cmd, "%s evaluate --checkpoint %s/rgb/checkpoint.h5 --data %s/data --out %s/eval "
             "--segments 2 --crops 3 --json 2>/dev/null", g, d, d, d);
    assert_int_equal(run(cmd, last, sizeof last), 0);
    json_object *j = json_tokener_parse(last), *v;
    assert_non_null(j);
    assert_true(json_object_object_get_ex(j, "clips", &v));
    dataset_index *idx;
    snprintf(cmd, sizeof cmd, "%s/data", d);
    OK(dataset_index_load(&idx, cmd, NULL, 1));
    assert_int_equal(json_object_get_int(v), idx->num_split[DATASET_TEST]);
    dataset_index_free(&idx);
    assert_true(json_object_object_get_ex(j, "top1", &v));
    double top1 = json_object_get_double(v);
    json_object_put(j);
    /* fusing a stream with itself at any weights changes nothing */
    snprintf(cmd, sizeof cmd, "%s fuse %s/eval/scores.csv %s/eval/scores.csv --weights 1,2.5 --json", g, d, d);
    assert_int_equal(run(cmd, last, sizeof last), 0);
    assert_non_null(j = json_tokener_parse(last));
    assert_true(json_object_object_get_ex(j, "top1", &v));
    assert_double_equal(json_object_get_double(v), top1, 1e-9);
    json_object_put(j);
    /* files that list other clips are refused, naming the row */
    snprintf(cmd, sizeof cmd, "sed '2s/^0,/99,/' %s/eval/scores.csv > %s/other.csv && %s fuse %s/eval/scores.csv %s/other.csv 2>&1",
             d, d, g, d, d);
    assert_int_equal(run(cmd, last, sizeof last), 1);
    assert_non_null(strstr(last, "row 1 differs"));
    /* a diverging run stops with a message; usage errors exit 2 */
    snprintf(cmd, sizeof cmd, "%s train-classifier --data %s/data --out %s/nan --arch tiny --size 16x16 --decode 32x32 "
             "--segments 1 --epochs 1 --batch 2 --lr 1e30 --clip-grad 0 2>&1", g, d, d);
    assert_int_equal(run(cmd, last, sizeof last), 1);
    assert_non_null(strstr(last, "lower the learning rate"));
    snprintf(cmd, sizeof cmd, "%s train-classifier --data %s/data --out %s/m --modality motion 2>&1", g, d, d);
    assert_int_equal(run(cmd, last, sizeof last), 1);
    assert_non_null(strstr(last, "--cache"));
    /* a model trained without flips is not tested on mirrored views */
    snprintf(cmd, sizeof cmd, "%s train-classifier --data %s/data --out %s/noflip --arch tiny --size 16x16 --decode 32x32 "
             "--segments 1 --epochs 1 --batch 2 --no-flip >/dev/null 2>&1 && %s evaluate --checkpoint %s/noflip/checkpoint.h5 "
             "--data %s/data --out %s/noflip/eval --crops 10 2>&1", g, d, d, g, d, d, d);
    assert_int_equal(run(cmd, last, sizeof last), 2);
    snprintf(cmd, sizeof cmd, "%s evaluate --checkpoint %s/noflip/checkpoint.h5 --data %s/data --out %s/noflip/eval --crops 10 2>&1 | head -1",
             g, d, d, d);
    run(cmd, last, sizeof last);
    assert_non_null(strstr(last, "--no-flip"));
    snprintf(cmd, sizeof cmd, "%s evaluate --crops 4 2>&1", g);
    assert_int_equal(run(cmd, NULL, 0), 2);
}

static int teardown_all(void **state)
{
    (void)state;
    return tmpdir[0] ? test_tmpdir_remove(tmpdir) : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]); /* e.g. "test_head*" */
    /* one libtorch thread: the suite runs test programs side by side on 2 cores,
     * where OpenMP threads waiting on each other cost more than they bring */
    nn_runtime_init(1, "cpu");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_by_hand),
        cmocka_unit_test(test_scores_file_and_fusion),
        cmocka_unit_test(test_head_gradient),
        cmocka_unit_test(test_presets_match_torchvision),
        cmocka_unit_test(test_cross_modality_init),
        cmocka_unit_test(test_tiny_classifier_separates_motion),
        cmocka_unit_test(test_resume_continues_identically),
        cmocka_unit_test(test_commands_end_to_end),
    };
    return cmocka_run_group_tests_name("classifier", tests, NULL, teardown_all);
}
