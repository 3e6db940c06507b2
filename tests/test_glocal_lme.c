/* test_glocal_lme.c — GLOCAL's LME, arch 2 (motion/glocal.h glocal_config.lme_arch):
 * a flow head and a mask head, the flow trained everywhere. Checked against:
 *   - the config: arch 2 by default, kept through JSON, old checkpoints
 *     (no "lme_arch") read as arch 1, anything else refused;
 *   - loading a GME from a checkpoint: copied exactly when the shapes match,
 *     refused (naming the file, nothing changed) when they do not;
 *   - the shapes of every level and the mask's range;
 *   - where the flow learns: with the mask shut (its logit at -30), arch 1's
 *     flow (attention x flow) gets no gradient, arch 2's gets one;
 *   - learning: tests/test_glocal_lme_learn.c (its own program);
 *   - no ground truth: the same training with every ground-truth array of the
 *     pairs overwritten by NaN ends with bit-identical weights;
 *   - occlusion (glocal_visible, glocal_flow_inverse): a square moving 4 px
 *     over a still background hides exactly the 4-column band it moves onto,
 *     a flow leaving the frame is out exactly where it leaves, and the
 *     inverse of a homography's flow is the flow of the inverse homography;
 *   - inference: the default local flow is still the hybrid's (TV-L1 on the
 *     aligned pair), "by the model" (-1) is the LME's for arch 2, the two
 *     differ, and the gated flow is the ungated one times (mask >= 0.5);
 *     the hybrid's mask is TV-L1's motion where the LME's flow moves too
 *     (lme_agree_k), recomputed from the LME's returned flow. */
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

#include "experiments/motion_pairs.h"
#include "datasets/photo_pairs.h"
#include "experiments/motion_source.h"
#include "motion/flow.h"
#include "motion/glocal.h"
#include "motion/glocal_private.h"
#include "nn/mat3.h"
#include "nn/nn.h"

static void test_config(void **state)
{
    (void)state;
    glocal_config c = glocal_config_default(64), d;
    assert_int_equal(c.lme_arch, 2);
    char json[512];
    OK(glocal_config_to_json(&c, json, sizeof json));
    OK(glocal_config_from_json(json, &d));
    assert_int_equal(d.lme_arch, 2);
    assert_int_equal(d.lme_ch, c.lme_ch);
    /* a checkpoint written before lme_arch existed */
    OK(glocal_config_from_json("{\"model\": \"glocal\", \"size\": 64, \"feat\": 32, \"radius\": 3, \"iters\": 2, "
                               "\"coef_scale\": 10, \"lme_ch\": 8, \"lme_scale\": 8}", &d));
    assert_int_equal(d.lme_arch, 1);
    assert_int_equal(d.arch, 1);
    assert_int_equal(glocal_config_from_json("{\"model\": \"glocal\", \"size\": 64, \"feat\": 32, \"radius\": 3, "
                                             "\"iters\": 2, \"coef_scale\": 10, \"lme_ch\": 8, \"lme_scale\": 8, "
                                             "\"lme_arch\": 3}", &d),
                     GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "lme_arch"));
}

/* Random grey frames (N, 1, S, S) in [0, 1]. */
static nn_tensor *frames(int N, int S)
{
    nn_tensor *t = NULL;
    int64_t sh[4] = { N, 1, S, S };
    OK(nn_rand(&t, sh, 4, NN_F32));
    return t;
}

static void test_shapes(void **state)
{
    (void)state;
    enum { N = 2, S = 32 };
    glocal_model *m = model(S, 2, 3);
    nn_tensor *a = frames(N, S), *b = frames(N, S);
    glocal_outputs o;
    OK(glocal_forward(m, a, b, 1, NULL, 0, &o));
    assert_int_equal(o.nlocal_levels, 3);
    const int k[3] = { 8, 4, 2 };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nn_ndim(o.local_levels[i]), 4);
        assert_int_equal(nn_size(o.local_levels[i], 1), 2);
        assert_int_equal(nn_size(o.local_levels[i], 2), S / k[i]);
        assert_int_equal(nn_size(o.local_levels[i], 3), S / k[i]);
    }
    assert_int_equal(nn_size(o.local, 0), N);
    assert_int_equal(nn_size(o.local, 1), 2);
    assert_int_equal(nn_size(o.local, 2), S);
    assert_int_equal(nn_size(o.mask, 1), 1);
    float mk[N * S * S];
    OK(nn_copy_to(o.mask, mk, sizeof mk, NN_F32));
    for (int i = 0; i < N * S * S; i++) assert_true(mk[i] > 0 && mk[i] < 1);
    glocal_outputs_free(&o);
    nn_free(&a);
    nn_free(&b);
    glocal_model_free(&m);
}

/* Sum of |gradient| of the loss over the named parameter. */
static double grad_abs(glocal_model *m, const char *name)
{
    nn_tensor *p = nn_params_find(glocal_model_params(m), name), *g = NULL, *ab = NULL, *s = NULL;
    assert_non_null(p);
    OK(nn_grad(&g, p));
    if (!g) return 0;
    double v;
    OK(nn_unary(&ab, NN_ABS, g));
    OK(nn_sum(&s, ab, NULL, 0, 0));
    OK(nn_item(s, &v));
    nn_free(&s);
    nn_free(&ab);
    nn_free(&g);
    return v;
}

/* The local reconstruction's gradient on the flow head, the mask shut. */
static double flow_grad_with_mask_shut(int lme_arch)
{
    enum { N = 2, S = 32 };
    glocal_model *m = model(S, lme_arch, 5);
    nn_params *P = glocal_model_params(m);
    /* arch 1: channel 2 of lme.out is the attention logit; arch 2: lme2.mask */
    if (lme_arch == 1) {
        float b[3] = { 0, 0, -30 };
        nn_tensor *t = NULL;
        int64_t sh[1] = { 3 };
        OK(nn_from_data(&t, b, sh, 1, NN_F32));
        OK(nn_copy_(nn_params_find(P, "lme.out.bias"), t));
        nn_free(&t);
    } else {
        OK(nn_fill_(nn_params_find(P, "lme2.mask.bias"), -30));
    }
    glocal_loss_config lc = glocal_loss_config_default();
    lc.lme_start = 0;
    lc.mask_start = 1000; /* the mask does not weight the global loss */
    lc.w_global = lc.w_mask = lc.w_sparse = lc.w_smooth = 0;
    nn_tensor *a = frames(N, S), *b = frames(N, S), *loss = NULL;
    OK(nn_params_zero_grad(P));
    OK(glocal_loss(m, a, b, NULL, NULL, &lc, 0, &loss, NULL));
    OK(nn_backward(loss));
    double g = grad_abs(m, lme_arch == 1 ? "lme.out.weight" : "lme2.f1.weight");
    nn_free(&loss);
    nn_free(&a);
    nn_free(&b);
    glocal_model_free(&m);
    return g;
}

static void test_flow_learns_where_the_mask_is_off(void **state)
{
    (void)state;
    double g1 = flow_grad_with_mask_shut(1), g2 = flow_grad_with_mask_shut(2);
    print_message("flow head |grad| with the mask shut: arch 1 %.3g, arch 2 %.3g\n", g1, g2);
    assert_true(g1 < 1e-9);
    assert_true(g2 > 1e-4);
}

/* (N, 2, S, S) from fl[N][2][S][S]. */
static nn_tensor *flow_tensor(const float *fl, int N, int S)
{
    nn_tensor *t = NULL;
    int64_t sh[4] = { N, 2, S, S };
    OK(nn_from_data(&t, fl, sh, 4, NN_F32));
    return t;
}

static void test_visible(void **state)
{
    (void)state;
    enum { N = 2, S = 32, D = 4, X0 = 8, X1 = 16 /* the square: rows and columns [X0, X1) */ };
    static float fwd[N][2][S][S], bwd[N][2][S][S], vis[N][S][S];
    for (int y = X0; y < X1; y++)
        for (int x = X0; x < X1; x++) {
            fwd[0][0][y][x] = D;      /* A's square moves D px right */
            bwd[0][0][y][x + D] = -D; /* B's square, D px right, comes back */
        }
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            fwd[1][0][y][x] = 3; /* everything 3 px right: the last 3 columns leave */
            bwd[1][0][y][x] = -3;
        }
    nn_tensor *f = flow_tensor(&fwd[0][0][0][0], N, S), *b = flow_tensor(&bwd[0][0][0][0], N, S), *v = NULL;
    /* border only */
    OK(glocal_visible(f, NULL, &v));
    OK(nn_copy_to(v, vis, sizeof vis, NN_F32));
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            assert_float_equal(vis[0][y][x], 1, 0);
            assert_float_equal(vis[1][y][x], x + 3 <= S - 1, 0);
        }
    nn_free(&v);
    /* forward-backward: the background band the square covers in B is out */
    OK(glocal_visible(f, b, &v));
    OK(nn_copy_to(v, vis, sizeof vis, NN_F32));
    long out0 = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            const int hidden = y >= X0 && y < X1 && x >= X1 && x < X1 + D;
            assert_float_equal(vis[0][y][x], !hidden, 0);
            assert_float_equal(vis[1][y][x], x + 3 <= S - 1, 0);
            out0 += vis[0][y][x] == 0;
        }
    assert_int_equal(out0, (X1 - X0) * D);
    nn_free(&v);
    /* shapes that do not match are refused */
    nn_tensor *small = flow_tensor(&fwd[0][0][0][0], 1, S);
    assert_int_equal(glocal_visible(f, small, &v), GL_EINVAL);
    assert_null(v);
    nn_free(&small);
    nn_free(&f);
    nn_free(&b);
}

static void test_flow_inverse(void **state)
{
    (void)state;
    enum { S = 32 };
    /* a homography moving the corners by up to ~4 px */
    const double h[9] = { 1.06, 0.02, -2.0, -0.015, 0.95, 1.5, 6e-4, -4e-4, 1 };
    double hi[9];
    assert_int_equal(gl_mat3_inverse(h, hi), 0);
    nn_tensor *g = NULL, *want = NULL, *gi = NULL;
    OK(glocal_homographies_to_flow(h, 1, S, S, S, &g));
    OK(glocal_homographies_to_flow(hi, 1, S, S, S, &want));
    OK(glocal_flow_inverse(g, 3, &gi));
    static float a[2][S][S], w[2][S][S], g0[2][S][S];
    OK(nn_copy_to(gi, a, sizeof a, NN_F32));
    OK(nn_copy_to(want, w, sizeof w, NN_F32));
    OK(nn_copy_to(g, g0, sizeof g0, NN_F32));
    double worst = 0, neg = 0; /* -g, the zeroth iterate, for scale */
    for (int c = 0; c < 2; c++)
        for (int y = 4; y < S - 4; y++) /* away from the border, where the warp clamps */
            for (int x = 4; x < S - 4; x++) {
                worst = fmax(worst, fabs(a[c][y][x] - w[c][y][x]));
                neg = fmax(neg, fabs(-g0[c][y][x] - w[c][y][x]));
            }
    print_message("inverse flow: worst error %.2g px (-g: %.2g px)\n", worst, neg);
    assert_true(neg > 0.05);
    assert_true(worst < 2e-3);
    nn_free(&g);
    nn_free(&want);
    nn_free(&gi);
}

/* The local reconstruction with lc.occlusion, B aligned by a 6 px shift
 * (its last 6 columns come from outside B); the loss. */
static double occlusion_loss(int occ)
{
    enum { N = 2, S = 32 };
    glocal_model *m = model(S, 2, 5);
    glocal_loss_config lc = glocal_loss_config_default();
    lc.lme_start = lc.mask_start = 0;
    lc.train_gme = 0;
    lc.occlusion = occ;
    nn_manual_seed(3);
    nn_tensor *a = frames(N, S), *b = frames(N, S), *al = NULL, *loss = NULL;
    int64_t sh[4] = { N, 2, S, S };
    OK(nn_zeros(&al, sh, 4, NN_F32));
    nn_tensor *u = NULL;
    OK(nn_narrow(&u, al, 1, 0, 1));
    OK(nn_fill_(u, 6.0));
    nn_free(&u);
    OK(glocal_loss_aligned(m, a, b, al, NULL, NULL, &lc, 0, &loss, NULL));
    OK(nn_backward(loss));
    double v;
    OK(nn_item(loss, &v));
    assert_true(grad_abs(m, "lme2.f1.weight") > 0);
    nn_free(&loss);
    nn_free(&al);
    nn_free(&a);
    nn_free(&b);
    glocal_model_free(&m);
    return v;
}

static void test_occlusion_reaches_the_loss(void **state)
{
    (void)state;
    const double none = occlusion_loss(GLOCAL_OCC_NONE), border = occlusion_loss(GLOCAL_OCC_BORDER),
                 fb = occlusion_loss(GLOCAL_OCC_FB);
    print_message("local loss, B shifted 6 px: none %.5f, border %.5f, fb %.5f\n", none, border, fb);
    assert_true(fabs(border - none) > 1e-4);
    assert_true(isfinite(fb));
    glocal_loss_config lc = glocal_loss_config_default();
    lc.occlusion = 3;
    assert_int_equal(glocal_loss_config_validate(&lc), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "occlusion"));
}

/* Trains a few steps with a DIS teacher on P (lme from step 0); the model. */
static glocal_model *train_with_teacher(const motion_pairs *P)
{
    motion_teacher t;
    OK(motion_teacher_compute(&t, P, flow_method_dis, NULL, NULL, NULL));
    glocal_pair_source src;
    motion_pairs_source_teacher(&t, &src);
    glocal_train_config tc = train_config();
    tc.steps = 4;
    tc.loss.w_teacher = 1;
    glocal_model *m = model(TS, 2, 9);
    OK(glocal_train(m, &src, &tc, NULL, NULL));
    motion_teacher_free(&t);
    return m;
}

static void test_training_reads_no_ground_truth(void **state)
{
    (void)state;
    motion_pairs P = { 0 };
    pairs(&P, 32, 1);
    glocal_model *m1 = train_with_teacher(&P);
    const size_t hw = (size_t)TS * TS;
    for (size_t i = 0; i < (size_t)P.n * 9; i++) P.homography[i] = NAN;
    for (size_t i = 0; i < (size_t)P.n * 2 * hw; i++) P.global_flow[i] = P.local_flow[i] = NAN;
    memset(P.mask, 0xA5, (size_t)P.n * hw);
    glocal_model *m2 = train_with_teacher(&P);
    nn_params *p = glocal_model_params(m1), *q = glocal_model_params(m2);
    for (int i = 0; i < p->n; i++) {
        double d;
        OK(nn_max_abs_diff(p->tensors[i], q->tensors[i], &d));
        assert_true(d == 0);
    }
    motion_pairs_free(&P);
    glocal_model_free(&m1);
    glocal_model_free(&m2);
}

static void test_infer_local_source(void **state)
{
    (void)state;
    motion_pairs T = { 0 };
    pairs(&T, 4, 4242);
    glocal_model *m = model(TS, 2, 11);
    const size_t hw = (size_t)TS * TS;
    const uint8_t *pa[4], *pb[4];
    pair_ptrs(&T, 4, pa, pb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    assert_int_equal(o.local_tvl1, 1); /* the hybrid, until the LME's flow is as good */
    glocal_result def, lme, hyb, ungated, byarch;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &def));
    o.local_tvl1 = -1; /* by the model: arch 2, so the LME's */
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &byarch));
    o.local_tvl1 = 0;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &lme));
    o.local_gate = 0;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &ungated));
    o.local_gate = 1;
    o.local_tvl1 = 1;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &hyb));
    double d_def = 0, d_lme = 0, d_arch = 0, d_gate = 0;
    for (size_t p = 0; p < 4 * 2 * hw; p++) {
        d_def = fmax(d_def, fabs(def.local_flow[p] - hyb.local_flow[p]));
        d_lme = fmax(d_lme, fabs(lme.local_flow[p] - hyb.local_flow[p]));
        d_arch = fmax(d_arch, fabs(byarch.local_flow[p] - lme.local_flow[p]));
        size_t i = p / (2 * hw), q = p % hw;
        float gate = ungated.mask[i * hw + q] >= 0.5f ? 1.0f : 0.0f;
        d_gate = fmax(d_gate, fabs(lme.local_flow[p] - gate * ungated.local_flow[p]));
        assert_true(lme.mixed_flow[p] == lme.global_flow[p] + lme.local_flow[p]);
    }
    assert_true(d_def == 0);
    assert_true(d_lme > 0);
    assert_true(d_arch == 0);
    assert_true(d_gate == 0);
    assert_memory_equal(lme.mask, ungated.mask, sizeof(float) * 4 * hw);
    glocal_result_free(&byarch);
    glocal_result_free(&def);
    glocal_result_free(&lme);
    glocal_result_free(&ungated);
    glocal_result_free(&hyb);
    motion_pairs_free(&T);
    glocal_model_free(&m);
}

/* The foreground evidence is the motion, not the LME's mask
 * (glocal_infer_options.mask_lme): with the mask head forced on everywhere
 * (bias +30), a still pair (B = A: no motion, so no foreground) gets an
 * empty hybrid mask and no local flow by default; with mask_lme = 1 the
 * LME's mask is evidence again and covers the frame. */
static void test_mask_evidence(void **state)
{
    (void)state;
    motion_pairs T = { 0 };
    pairs(&T, 2, 99);
    glocal_model *m = model(TS, 2, 17);
    OK(nn_fill_(nn_params_find(glocal_model_params(m), "lme2.mask.bias"), 30));
    const size_t hw = (size_t)TS * TS;
    const uint8_t *pa[2], *pb[2];
    pair_ptrs(&T, 2, pa, pb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    assert_int_equal(o.mask_lme, 0);
    assert_int_equal(o.local_tvl1, 1);
    glocal_result still, lmeev;
    OK(glocal_infer(m, pa, pa, 2, TS, TS, &o, &still)); /* B = A */
    o.mask_lme = 1;
    OK(glocal_infer(m, pa, pa, 2, TS, TS, &o, &lmeev));
    long on_still = 0, on_lme = 0;
    double flow = 0;
    for (size_t p = 0; p < 2 * hw; p++) {
        on_still += still.mask[p] >= 0.5f;
        on_lme += lmeev.mask[p] >= 0.5f;
    }
    for (size_t p = 0; p < 2 * 2 * hw; p++) flow = fmax(flow, fabs(still.local_flow[p]));
    print_message("still pair, LME mask forced on: %ld foreground pixels by default, %ld with mask_lme (of %zu); "
                  "largest local flow %g px\n", on_still, on_lme, 2 * hw, flow);
    assert_int_equal(on_still, 0);
    assert_true(flow == 0);
    assert_true(on_lme > 0.8 * 2 * hw); /* the frame less the view margin */
    glocal_result_free(&still);
    glocal_result_free(&lmeev);
    motion_pairs_free(&T);
    glocal_model_free(&m);
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

/* glocal_infer's motion threshold of the flow (u, v) (hw pixels): k x the
 * median |flow|, clamped to [tmin, tmax], recomputed with qsort. */
static double median_thresh(const float *u, const float *v, size_t hw, double k, double tmin, double tmax,
                            float *mag)
{
    for (size_t p = 0; p < hw; p++) mag[p] = hypotf(u[p], v[p]);
    qsort(mag, hw, sizeof *mag, cmp_float);
    return fmin(fmax(k * mag[hw / 2], tmin), tmax);
}

/* lme_thresh_k: the LME's own flow is foreground evidence where |flow| >
 * clamp(k x median |flow|, local_thresh_min, local_thresh) with k =
 * lme_thresh_k (0: local_thresh_k), recomputed here from the returned
 * (ungated) flow without the clean-up; the hybrid's mask does not change. */
static void test_lme_thresh_k(void **state)
{
    (void)state;
    motion_pairs T = { 0 };
    pairs(&T, 2, 777);
    glocal_model *m = model(TS, 2, 13);
    const size_t hw = (size_t)TS * TS;
    const uint8_t *pa[2], *pb[2];
    pair_ptrs(&T, 2, pa, pb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    assert_true(o.lme_thresh_k == 2.5);
    o.local_tvl1 = 0;
    o.local_gate = 0;     /* the flow as it is */
    o.mask_sigma = 0;     /* the mask is the evidence */
    o.view_margin = -1;   /* evidence everywhere */
    o.local_thresh_min = 0.001;
    o.lme_finish = 0;     /* the network's flow, judged alone (test_lme_finish) */
    float *mag = malloc(sizeof(float) * hw);
    assert_non_null(mag);
    const double ks[2] = { 0, 0.5 };
    long on[2] = { 0, 0 };
    for (int c = 0; c < 2; c++) {
        glocal_result r;
        o.lme_thresh_k = ks[c];
        OK(glocal_infer(m, pa, pb, 2, TS, TS, &o, &r));
        const double k = ks[c] > 0 ? ks[c] : o.local_thresh_k;
        for (int i = 0; i < 2; i++) {
            const float *u = r.local_flow + (size_t)i * 2 * hw, *v = u + hw;
            const double t = median_thresh(u, v, hw, k, o.local_thresh_min, o.local_thresh, mag);
            long bad = 0;
            for (size_t p = 0; p < hw; p++) {
                int fg = hypot(u[p], v[p]) > t;
                bad += fg != (r.mask[i * hw + p] >= 0.5f);
                on[c] += fg;
            }
            assert_int_equal(bad, 0);
        }
        glocal_result_free(&r);
    }
    print_message("the LME's flow: %ld foreground pixels with k = 5, %ld with lme_thresh_k 0.5 (of %zu)\n", on[0],
                  on[1], 2 * hw);
    assert_true(on[1] > on[0]);
    /* the hybrid's mask ignores lme_thresh_k */
    glocal_result h0, h1;
    glocal_infer_options_default(&o);
    OK(glocal_infer(m, pa, pb, 2, TS, TS, &o, &h0));
    o.lme_thresh_k = 0.5;
    OK(glocal_infer(m, pa, pb, 2, TS, TS, &o, &h1));
    assert_memory_equal(h0.mask, h1.mask, sizeof(float) * 2 * hw);
    glocal_result_free(&h0);
    glocal_result_free(&h1);
    free(mag);
    motion_pairs_free(&T);
    glocal_model_free(&m);
}

/* lme_agree_k: the hybrid's foreground evidence is TV-L1's motion where the
 * LME's own flow moves too, |LME flow| > clamp(k x its median,
 * local_thresh_min, local_thresh), recomputed here from the LME's flow the
 * same inference returns (local_both, ungated); without the clean-up the
 * mask is exactly TV-L1's evidence (lme_agree_k 0) AND that. Without the
 * LME there is nothing to agree with: the mask is TV-L1's. */
static void test_lme_agree_k(void **state)
{
    (void)state;
    motion_pairs T = { 0 };
    pairs(&T, 2, 778);
    glocal_model *m = model(TS, 2, 17);
    const size_t hw = (size_t)TS * TS;
    const uint8_t *pa[2], *pb[2];
    pair_ptrs(&T, 2, pa, pb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    assert_true(o.lme_agree_k > 0); /* on by default */
    o.local_gate = 0;     /* the flows as they are */
    o.mask_sigma = 0;     /* the mask is the evidence */
    o.view_margin = -1;   /* evidence everywhere */
    o.local_thresh_min = 0.001;
    o.local_both = 1;     /* the LME's own flow, from the same inference */
    o.lme_finish = 0;     /* the LME's flow as the rule reads it (unfinished) */
    o.lme_coarse = 0;     /* ... and one pass (the rule reads that; test_lme_coarse_reach) */
    const double k = 2.5;
    glocal_result r0, r1;
    o.lme_agree_k = 0;
    OK(glocal_infer(m, pa, pb, 2, TS, TS, &o, &r0));
    o.lme_agree_k = k;
    OK(glocal_infer(m, pa, pb, 2, TS, TS, &o, &r1));
    assert_memory_equal(r0.local_flow, r1.local_flow, sizeof(float) * 2 * 2 * hw); /* TV-L1's, unchanged */
    float *mag = malloc(sizeof(float) * hw);
    assert_non_null(mag);
    long tv = 0, both = 0, dropped = 0;
    for (int i = 0; i < 2; i++) {
        const float *u = r1.lme_local_flow + (size_t)i * 2 * hw, *v = u + hw;
        const double t = median_thresh(u, v, hw, k, o.local_thresh_min, o.local_thresh, mag);
        long bad = 0;
        for (size_t p = 0; p < hw; p++) {
            const int tvl1 = r0.mask[i * hw + p] >= 0.5f, lme = hypot(u[p], v[p]) > t;
            bad += (tvl1 && lme) != (r1.mask[i * hw + p] >= 0.5f);
            tv += tvl1;
            both += tvl1 && lme;
            dropped += tvl1 && !lme;
        }
        assert_int_equal(bad, 0);
    }
    print_message("TV-L1's motion: %ld foreground pixels; the LME's flow agrees on %ld (of %zu)\n", tv, both, 2 * hw);
    assert_true(both > 0 && dropped > 0); /* the rule kept some and dropped some */
    glocal_result_free(&r0);
    glocal_result_free(&r1);
    /* without the LME: TV-L1's motion alone, whatever lme_agree_k */
    o.lme = 0;
    o.local_both = 0;
    o.lme_agree_k = 0;
    OK(glocal_infer(m, pa, pb, 2, TS, TS, &o, &r0));
    o.lme_agree_k = k;
    OK(glocal_infer(m, pa, pb, 2, TS, TS, &o, &r1));
    assert_memory_equal(r0.mask, r1.mask, sizeof(float) * 2 * hw);
    glocal_result_free(&r0);
    glocal_result_free(&r1);
    o.lme = 1;
    o.lme_agree_k = -1;
    assert_int_equal(glocal_infer(m, pa, pb, 2, TS, TS, &o, &r0), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "lme_agree_k"));
    free(mag);
    motion_pairs_free(&T);
    glocal_model_free(&m);
}

/* lme_finish: the LME's own flow (here an untrained network's, which
 * starts near zero) refined on the raw pair comes closer to the true local
 * motion of the renderer's pairs (still camera: local = mixed); its mask is
 * the finished flow's motion where the unfinished flow moves too
 * (lme_agree_k, recomputed here); the hybrid's flow and mask, computed in
 * the same inference (local_both), are exactly the same with and without
 * it; out-of-range values are refused by name. */
static void test_lme_finish(void **state)
{
    (void)state;
    enum { N = 4 };
    motion_pairs T = { 0 };
    pairs(&T, N, 779);
    glocal_model *m = model(TS, 2, 19);
    const size_t hw = (size_t)TS * TS;
    const uint8_t *pa[N], *pb[N];
    pair_ptrs(&T, N, pa, pb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    assert_true(o.lme_finish > 0); /* on by default */
    o.local_gate = 0;
    o.local_both = 1;
    o.mask_sigma = 0;   /* the mask is the evidence */
    o.view_margin = -1; /* evidence everywhere */
    o.local_thresh_min = 0.001;
    o.lme_coarse = 0;   /* the finish from the single pass (an untrained network has no coarse flow to give) */
    glocal_result r[2];
    double epe[2];
    for (int k = 0; k < 2; k++) {
        o.lme_finish = k ? 10 : 0;
        OK(glocal_infer(m, pa, pb, N, TS, TS, &o, &r[k]));
        double e = 0;
        long n = 0;
        for (int i = 0; i < N; i++) {
            const float *gt = T.local_flow + i * 2 * hw, *est = r[k].lme_local_flow + i * 2 * hw;
            for (size_t p = 0; p < hw; p++) {
                if (!T.mask[i * hw + p]) continue;
                e += hypot(est[p] - gt[p], est[hw + p] - gt[hw + p]);
                n++;
            }
        }
        assert_true(n > 0);
        epe[k] = e / n;
    }
    print_message("untrained LME: object EPE %.3f px, finished %.3f px\n", epe[0], epe[1]);
    assert_true(epe[1] < 0.7 * epe[0]);
    assert_memory_equal(r[0].local_flow, r[1].local_flow, sizeof(float) * N * 2 * hw);
    assert_memory_equal(r[0].mask, r[1].mask, sizeof(float) * N * hw);
    float *mag = malloc(sizeof(float) * hw);
    assert_non_null(mag);
    long fg = 0, vetoed = 0;
    for (int i = 0; i < N; i++) {
        const float *u0 = r[0].lme_local_flow + (size_t)i * 2 * hw, *u1 = r[1].lme_local_flow + (size_t)i * 2 * hw;
        const double t0 = median_thresh(u0, u0 + hw, hw, o.lme_agree_k, o.local_thresh_min, o.local_thresh, mag);
        const double kf = o.lme_thresh_k > 0 ? o.lme_thresh_k : o.local_thresh_k;
        const double t1 = median_thresh(u1, u1 + hw, hw, kf, o.local_thresh_min, o.local_thresh, mag);
        long bad = 0;
        for (size_t p = 0; p < hw; p++) {
            const int moves = hypot(u1[p], u1[hw + p]) > t1, agrees = hypot(u0[p], u0[hw + p]) > t0;
            bad += (moves && agrees) != (r[1].lme_mask[i * hw + p] >= 0.5f);
            fg += moves && agrees;
            vetoed += moves && !agrees;
        }
        assert_int_equal(bad, 0);
    }
    print_message("finished flow's foreground: %ld pixels, %ld more vetoed by the unfinished flow\n", fg, vetoed);
    assert_true(fg > 0 && vetoed > 0); /* the rule kept some and dropped some */
    free(mag);
    glocal_result_free(&r[0]);
    glocal_result_free(&r[1]);
    glocal_result bad;
    o.lme_finish = -1;
    assert_int_equal(glocal_infer(m, pa, pb, N, TS, TS, &o, &bad), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "lme_finish"));
    o.lme_finish = 1001;
    assert_int_equal(glocal_infer(m, pa, pb, N, TS, TS, &o, &bad), GL_EINVAL);
    motion_pairs_free(&T);
    glocal_model_free(&m);
}

/* local_fuse: a still camera, a 24 px textured patch moving (10, 6) px over
 * a textured background — a large motion of a small region, where TV-L1's
 * pyramid loses the patch. The hybrid's local flow (ungated) against the
 * exact motion on the patch: fused with DIS's it is far closer than TV-L1's
 * alone, and the background stays still; the mask (TV-L1's evidence) is
 * the same. */
static void test_local_fuse(void **state)
{
    (void)state;
    enum { S = 96, P0 = 30, PS = 24, DX = 10, DY = 6 };
    uint8_t *a = malloc(3 * S * S), *b = malloc(3 * S * S);
    assert_non_null(a);
    assert_non_null(b);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            memset(a + 3 * (y * S + x), test_patch_scene(x, y, 0, P0, PS, DX, DY), 3);
            memset(b + 3 * (y * S + x), test_patch_scene(x, y, 1, P0, PS, DX, DY), 3);
        }
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    assert_int_equal(o.local_fuse, 1);
    o.use_network = 0; /* no model: the refinement from the identity and DIS */
    o.lme = 0;
    o.local_gate = 0;
    const uint8_t *pa[1] = { a }, *pb[1] = { b };
    double epe[2], bg[2];
    float *mask0 = malloc(sizeof(float) * S * S);
    assert_non_null(mask0);
    for (int k = 0; k < 2; k++) {
        glocal_result r;
        o.local_fuse = k;
        OK(glocal_infer(NULL, pa, pb, 1, S, S, &o, &r));
        if (k == 0) memcpy(mask0, r.mask, sizeof(float) * S * S);
        else assert_memory_equal(mask0, r.mask, sizeof(float) * S * S); /* the evidence is TV-L1's */
        test_patch_scores(r.local_flow, r.local_flow + S * S, S, P0, PS, DX, DY, &epe[k], &bg[k]);
        glocal_result_free(&r);
    }
    print_message("patch moving (%d, %d): local EPE TV-L1 %.3f px, fused with DIS %.3f px; "
                  "background %.3f / %.3f px\n", DX, DY, epe[0], epe[1], bg[0], bg[1]);
    assert_true(epe[1] < 2.0);
    assert_true(epe[1] < epe[0] / 4);
    assert_true(bg[1] < 0.1);
    free(mask0);
    free(a);
    free(b);
}

/* p mapped by the homography h. */
static void hmap(const double h[9], double x, double y, double *ox, double *oy)
{
    double d = h[6] * x + h[7] * y + h[8];
    *ox = (h[0] * x + h[1] * y + h[2]) / d;
    *oy = (h[3] * x + h[4] * y + h[5]) / d;
}

/* The local flow is in B's frame: a camera zooming 1.15x (and panning) and
 * a 32 px patch that moves d = (4, 3) px in B on top of it, so the exact
 * local motion on the patch is d and the global one H p - p. The hybrid
 * computes its flow on the aligned pair, where the patch moves H^-1 d
 * (0.65 px shorter); mapped into B's frame it is d again. Model-free
 * (refinement from the identity and DIS), ungated. */
static void test_local_in_frame_b(void **state)
{
    (void)state;
    enum { S = 96, P0 = 32, PS = 32 };
    const double zs = 1.15, c = (S - 1) / 2.0, tx = 1.5, ty = -1.0, dx = 4, dy = 3;
    const double h[9] = { zs, 0, c * (1 - zs) + tx, 0, zs, c * (1 - zs) + ty, 0, 0, 1 };
    uint8_t *a = malloc(3 * S * S), *b = malloc(3 * S * S);
    assert_non_null(a);
    assert_non_null(b);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            const int in_a = x >= P0 && x < P0 + PS && y >= P0 && y < P0 + PS;
            /* B(q): the patch where M^-1 q = H^-1 (q - d) falls in it, else the background at H^-1 q */
            const double px = (x - dx - h[2]) / zs, py = (y - dy - h[5]) / zs;
            const double bx = (x - h[2]) / zs, by = (y - h[5]) / zs;
            const int in_b = px >= P0 && px < P0 + PS && py >= P0 && py < P0 + PS;
            memset(a + 3 * (y * S + x), test_value_noise(x, y, in_a), 3);
            memset(b + 3 * (y * S + x), in_b ? test_value_noise(px, py, 1) : test_value_noise(bx, by, 0), 3);
        }
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.use_network = 0;
    o.lme = 0;
    o.local_gate = 0;
    const uint8_t *pa[1] = { a }, *pb[1] = { b };
    glocal_result r;
    OK(glocal_infer(NULL, pa, pb, 1, S, S, &o, &r));
    double corner;
    OK(homography_corner_error(r.homography, h, S, S, &corner));
    const float *u = r.local_flow, *v = u + S * S;
    double se = 0, sa = 0;
    long ne = 0;
    for (int y = P0 + 3; y < P0 + PS - 3; y++)
        for (int x = P0 + 3; x < P0 + PS - 3; x++) {
            const int p = y * S + x;
            se += hypot(u[p] - dx, v[p] - dy);
            sa += hypot(u[p] - dx / zs, v[p] - dy / zs); /* the aligned frame's motion */
            ne++;
            assert_true(fabsf(r.mixed_flow[p] - r.global_flow[p] - u[p]) < 1e-4f);
        }
    print_message("zoom %.2f: corner error %.3f px; local flow on the patch %.3f px from d, %.3f from H^-1 d\n", zs,
                  corner, se / ne, sa / ne);
    assert_true(corner < 0.2);
    assert_true(se / ne < 0.3);
    assert_true(se / ne < 0.5 * sa / ne); /* B's frame, not the aligned one */
    glocal_result_free(&r);
    free(a);
    free(b);
}

/* lme_passes = 1: one LME pass on the network's alignment H0, its flow
 * carried to the refined H1 so that every pixel still reaches the point of B
 * the LME found; the LME's flow is in B's frame (its loss compares A(p)
 * with B(p + g(p) + l(p))), so H1 p + l1(p) = H0 p + l0(p), with H0 and l0 from a run
 * without refinement; without refinement one pass and two agree; with
 * homography_only, one or two passes, the same H and no local flow. */
static void test_one_lme_pass(void **state)
{
    (void)state;
    motion_pairs T = { 0 };
    pairs(&T, 4, 777);
    glocal_model *m = model(TS, 2, 13);
    const size_t hw = (size_t)TS * TS;
    const uint8_t *pa[4], *pb[4];
    pair_ptrs(&T, 4, pa, pb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    assert_int_equal(o.lme_passes, 1);
    o.local_tvl1 = 0;
    o.local_gate = 0; /* the LME's flow as it is, not gated */
    o.refine = 0;
    o.lme_repass = 0; /* the carried flow on every pair (test_lme_repass) */
    o.rc.polish = 0;   /* polished, these pairs end within 0.01 px of H0: nothing to carry */
    o.lme_finish = 0;  /* the carried flow itself, not its finish */
    o.lme_coarse = 0;  /* ... nor the coarse-to-fine pass, run on the final alignment */
    glocal_result r0, r0two, r1;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &r0));
    o.lme_passes = 2;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &r0two));
    o.lme_passes = 1;
    o.refine = 1;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &r1));
    double d_two = 0, d_pt = 0, moved = 0;
    for (int i = 0; i < 4; i++) {
        const double *h0 = r0.homography + 9 * i, *h1 = r1.homography + 9 * i;
        for (size_t p = 0; p < hw; p++) {
            const size_t u = (size_t)i * 2 * hw + p, v = u + hw;
            const double x = (double)(p % TS), y = (double)(p / TS);
            double ax, ay, bx, by;
            hmap(h0, x, y, &ax, &ay);
            hmap(h1, x, y, &bx, &by);
            d_pt = fmax(d_pt, hypot(ax + r0.local_flow[u] - bx - r1.local_flow[u],
                                    ay + r0.local_flow[v] - by - r1.local_flow[v]));
            d_two = fmax(d_two, fmax(fabs(r0.local_flow[u] - r0two.local_flow[u]),
                                     fabs(r0.local_flow[v] - r0two.local_flow[v])));
            double gx, gy, fx, fy;
            hmap(h0, x, y, &gx, &gy);
            hmap(h1, x, y, &fx, &fy);
            moved = fmax(moved, hypot(gx - fx, gy - fy));
        }
    }
    print_message("one LME pass: max |H1 p + l1 - (H0 p + l0)| %.3g px, refinement moved pixels by up to %.3g px, "
                  "one vs two passes without refinement %.3g px\n", d_pt, moved, d_two);
    assert_true(moved > 0.05); /* the refinement changed H, or the test says nothing */
    assert_true(d_pt < 1e-3);
    assert_true(d_two < 1e-4);
    assert_memory_equal(r0.homography, r0two.homography, sizeof(double) * 9 * 4);
    /* homography_only: the same H as the full runs, no local flow */
    glocal_result ho;
    o.lme_passes = 1;
    o.homography_only = 1;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &ho));
    assert_memory_equal(ho.homography, r1.homography, sizeof(double) * 9 * 4);
    for (size_t p = 0; p < 4 * 2 * hw; p++) assert_true(ho.local_flow[p] == 0);
    glocal_result_free(&ho);
    o.lme_passes = 2;
    OK(glocal_infer(m, pa, pb, 4, TS, TS, &o, &ho));
    assert_memory_equal(ho.homography, r1.homography, sizeof(double) * 9 * 4);
    glocal_result_free(&ho);
    o.homography_only = 0;
    o.lme_passes = 3;
    glocal_result bad;
    assert_int_equal(glocal_infer(m, pa, pb, 4, TS, TS, &o, &bad), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "lme_passes"));
    /* local_both asks for the hybrid's TV-L1 flow and the LME's: without the
     * hybrid, or with no local flow at all, it is refused by name */
    o.lme_passes = 1;
    o.local_both = 1;
    o.local_tvl1 = 0;
    assert_int_equal(glocal_infer(m, pa, pb, 4, TS, TS, &o, &bad), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "local_both"));
    o.local_tvl1 = 1;
    o.homography_only = 1;
    assert_int_equal(glocal_infer(m, pa, pb, 4, TS, TS, &o, &bad), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "local_both"));
    glocal_result_free(&r0);
    glocal_result_free(&r0two);
    glocal_result_free(&r1);
    motion_pairs_free(&T);
    glocal_model_free(&m);
}

/* Largest distance between where h0 and h1 send a corner of the S x S frame. */
static double corner_moved(const double h0[9], const double h1[9], int S)
{
    double d = 0;
    for (int c = 0; c < 4; c++) {
        double x = c & 1 ? S - 1 : 0, y = c & 2 ? S - 1 : 0, ax, ay, bx, by;
        hmap(h0, x, y, &ax, &ay);
        hmap(h1, x, y, &bx, &by);
        d = fmax(d, hypot(ax - bx, ay - by));
    }
    return d;
}

/* lme_repass: with one pass, the pairs whose refinement moved a corner by
 * more than the threshold get the two-pass result (flow and mask), the
 * others the carried one; the threshold is put between the pairs' own
 * corner moves, measured here from a run without refinement (H0). */
static void test_lme_repass(void **state)
{
    (void)state;
    enum { N = 6 };
    motion_pairs T = { 0 };
    synth_config sc = synth_config_default();
    sc.width = sc.height = TS;
    sc.camera = 1; /* the untrained network's H0 is off by various amounts */
    sc.seed = 4242;
    OK(motion_pairs_synth(&T, &sc, N, 4242));
    glocal_model *m = model(TS, 2, 17);
    const size_t hw = (size_t)TS * TS;
    const uint8_t *pa[N], *pb[N];
    pair_ptrs(&T, N, pa, pb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    assert_true(o.lme_repass > 0); /* on by default */
    o.local_tvl1 = 0;
    o.local_gate = 0;
    o.refine = 0;
    glocal_result r0, one, two, mix;
    OK(glocal_infer(m, pa, pb, N, TS, TS, &o, &r0));
    o.refine = 1;
    o.lme_repass = 0;
    OK(glocal_infer(m, pa, pb, N, TS, TS, &o, &one));
    o.lme_passes = 2;
    OK(glocal_infer(m, pa, pb, N, TS, TS, &o, &two));
    double mv[N], sorted[N];
    for (int i = 0; i < N; i++) sorted[i] = mv[i] = corner_moved(r0.homography + 9 * i, one.homography + 9 * i, TS);
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    print_message("refinement moved the corners by %.3g .. %.3g px\n", sorted[0], sorted[N - 1]);
    assert_true(sorted[N / 2] - sorted[N / 2 - 1] > 1e-3); /* a threshold fits between them */
    o.lme_passes = 1;
    o.lme_repass = 0.5 * (sorted[N / 2 - 1] + sorted[N / 2]);
    OK(glocal_infer(m, pa, pb, N, TS, TS, &o, &mix));
    int redone = 0;
    double apart = 0; /* one vs two passes where they are told apart */
    for (int i = 0; i < N; i++) {
        const glocal_result *want = mv[i] > o.lme_repass ? &two : &one;
        redone += mv[i] > o.lme_repass;
        for (size_t p = 0; p < 2 * hw && want == &two; p++)
            apart = fmax(apart, fabs(one.local_flow[i * 2 * hw + p] - two.local_flow[i * 2 * hw + p]));
        assert_memory_equal(mix.homography + 9 * i, one.homography + 9 * i, sizeof(double) * 9);
        double d = 0;
        for (size_t p = 0; p < 2 * hw; p++)
            d = fmax(d, fabs(mix.local_flow[i * 2 * hw + p] - want->local_flow[i * 2 * hw + p]));
        for (size_t p = 0; p < hw; p++) d = fmax(d, fabs(mix.mask[i * hw + p] - want->mask[i * hw + p]));
        assert_true(d < 1e-4);
    }
    assert_int_equal(redone, N / 2);
    assert_true(apart > 1e-2);
    o.lme_repass = -1;
    glocal_result bad;
    assert_int_equal(glocal_infer(m, pa, pb, N, TS, TS, &o, &bad), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "lme_repass"));
    glocal_result_free(&r0);
    glocal_result_free(&one);
    glocal_result_free(&two);
    glocal_result_free(&mix);
    motion_pairs_free(&T);
    glocal_model_free(&m);
}

/* Largest |difference| over the parameters whose names start with prefix. */
static double params_diff(glocal_model *x, glocal_model *y, const char *prefix)
{
    nn_params *p = glocal_model_params(x), *q = glocal_model_params(y);
    double m = 0, d;
    for (int i = 0; i < p->n; i++) {
        if (strncmp(p->names[i], prefix, strlen(prefix))) continue;
        OK(nn_max_abs_diff(p->tensors[i], q->tensors[i], &d));
        m = fmax(m, d);
    }
    return m;
}

/* glocal_model_load_gme: the GME of a checkpoint of the same shape is
 * copied exactly and the LME is left alone; a checkpoint of another shape is
 * refused, naming the file, and changes nothing. */
/* Largest |difference| between x's parameters named prefix* and the
 * parameters of the same names in y (another model config). */
static double part_diff(glocal_model *x, glocal_model *y, const char *prefix)
{
    nn_params *p = glocal_model_params(x), *q = glocal_model_params(y);
    double m = 0, d;
    for (int i = 0; i < p->n; i++) {
        if (strncmp(p->names[i], prefix, strlen(prefix))) continue;
        const nn_tensor *t = nn_params_find(q, p->names[i]);
        assert_non_null(t);
        OK(nn_max_abs_diff(p->tensors[i], t, &d));
        m = fmax(m, d);
    }
    return m;
}

static void test_load_gme(void **state)
{
    (void)state;
    char dir[256], path[300], other[300], js[512];
    OK(test_tmpdir_make(dir, sizeof dir, "test_glocal_lme_"));
    snprintf(path, sizeof path, "%s/src.h5", dir);
    snprintf(other, sizeof other, "%s/other.h5", dir);
    glocal_model *src = model(32, 1, 21), *big = model(48, 1, 22), *dst = model(32, 2, 23), *ref = model(32, 2, 23);
    nn_checkpoint_meta meta = { 1, js, NULL, NULL };
    OK(glocal_config_to_json(glocal_model_config(src), js, sizeof js));
    OK(nn_checkpoint_save(path, glocal_model_params(src), &meta));
    OK(glocal_config_to_json(glocal_model_config(big), js, sizeof js));
    OK(nn_checkpoint_save(other, glocal_model_params(big), &meta));
    int copied = -1;
    assert_int_equal(glocal_model_load_gme(dst, other, &copied), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), other));
    assert_true(params_diff(dst, ref, "") == 0); /* nothing copied */
    OK(glocal_model_load_gme(dst, path, &copied));
    assert_true(copied > 0);
    assert_true(part_diff(dst, src, "gme.") == 0); /* the same names in both: same arch, size, feat */
    assert_true(params_diff(dst, ref, "lme") == 0);
    assert_true(params_diff(dst, ref, "gme.") > 0);
    /* the LME alone, from a model with another GME (size 48): the same LME
     * weights as that file's, the GME as it was; another lme_arch refused */
    glocal_model *lsrc = model(48, 2, 24), *ldst = model(32, 2, 25), *lref = model(32, 2, 25);
    OK(glocal_config_to_json(glocal_model_config(lsrc), js, sizeof js));
    OK(nn_checkpoint_save(other, glocal_model_params(lsrc), &meta));
    assert_int_equal(glocal_model_load_lme(ldst, path, &copied), GL_EFORMAT); /* src is lme_arch 1 */
    assert_non_null(strstr(gl_last_error(), "lme2."));
    assert_true(params_diff(ldst, lref, "") == 0);
    OK(glocal_model_load_lme(ldst, other, &copied));
    assert_true(copied > 0);
    assert_true(part_diff(ldst, lsrc, "lme2.") == 0);
    assert_true(params_diff(ldst, lref, "gme.") == 0);
    assert_true(params_diff(ldst, lref, "lme2.") > 0);
    glocal_model_free(&lsrc);
    glocal_model_free(&ldst);
    glocal_model_free(&lref);
    glocal_model_free(&src);
    glocal_model_free(&big);
    glocal_model_free(&dst);
    glocal_model_free(&ref);
    OK(test_tmpdir_remove(dir));
}

/* np S x S photo pairs from tests/data's CC0 photos, one patch covering
 * 12-20 % of the frame and moving patch_px_min..max px (no rotation or
 * scale), each corner within +-corner_px; pa / pb point at their frames. */
static void lme_photo_pairs(int S, int np, double corner_px, double patch_min, double patch_max, uint64_t seed,
                            photo_pair *p, const uint8_t **pa, const uint8_t **pb)
{
    photo_set *set = NULL;
    OK(photo_set_open(GLOCAL_DATA_DIR "/textures/cc0", 512, &set));
    photo_pairs_config c = photo_pairs_config_default();
    c.width = c.height = S;
    c.corner_px = corner_px;
    c.patches_min = c.patches_max = 1;
    c.coverage_min = 0.12;
    c.coverage_max = 0.2;
    c.patch_px_min = patch_min;
    c.patch_px_max = patch_max;
    c.patch_rotation = c.patch_scale = 0;
    c.seed = seed;
    for (int i = 0; i < np; i++) {
        OK(photo_pair_alloc(&p[i], S, S));
        OK(photo_pairs_render(set, &c, i, &p[i]));
        pa[i] = p[i].a;
        pb[i] = p[i].b;
    }
    photo_set_free(&set);
}

/* The LME's own local flow (no TV-L1), unfinished and ungated, with the
 * options o otherwise, against the generator's true local flow: mean end
 * point error on the patches (*fg) and on the background (*bg); *zero (may
 * be NULL): the zero flow's error on the patches. */
static void lme_photo_score(glocal_model *m, const photo_pair *p, const uint8_t **pa, const uint8_t **pb, int np,
                            int S, glocal_infer_options o, double *fg, double *bg, double *zero)
{
    const size_t hw = (size_t)S * S;
    o.local_tvl1 = 0;
    o.local_gate = 0;
    o.lme_finish = 0;
    glocal_result r;
    OK(glocal_infer(m, pa, pb, np, S, S, &o, &r));
    double f = 0, b = 0, z = 0;
    long nf = 0, nb = 0;
    for (int i = 0; i < np; i++) {
        const float *gt = p[i].local_flow, *est = r.local_flow + i * 2 * hw;
        for (size_t q = 0; q < hw; q++) {
            const double e = hypot(est[q] - gt[q], est[hw + q] - gt[hw + q]);
            if (p[i].mask[q]) {
                f += e;
                z += hypot(gt[q], gt[hw + q]);
                nf++;
            } else {
                b += e;
                nb++;
            }
        }
    }
    assert_true(nf > 0 && nb > 0);
    *fg = f / nf;
    *bg = b / nb;
    if (zero) *zero = z / nf;
    glocal_result_free(&r);
}

/* lme_coarse: the committed 128^2 model (trained on the renderer only, its
 * motions a pixel or two) on photo pairs (tests/data's CC0 photos) whose
 * patches move 9-12 px, beyond its matching's reach (+-3 at 1/2, about 6 px);
 * the camera moves little. Scored against the generator's true local flow
 * on the patches and on the background, the network's own flow unfinished
 * and ungated (lme_finish 0, local_gate 0), one pass against coarse to fine. */
static void test_lme_coarse_reach(void **state)
{
    (void)state;
    enum { S = 128, NP = 6 };
    glocal_model *m = NULL;
    OK(glocal_model_load(&m, GLOCAL_SOURCE_DIR "/results/motion/128/glocal.h5", NULL));
    photo_pair p[NP];
    const uint8_t *pa[NP], *pb[NP];
    lme_photo_pairs(S, NP, 2, 9, 12, 11, p, pa, pb);
    const size_t hw = (size_t)S * S;
    double fg[2], bg[2], zero;
    for (int k = 0; k < 2; k++) {
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        assert_true(o.lme_coarse > 0); /* on by default */
        o.lme_coarse = k;
        lme_photo_score(m, p, pa, pb, NP, S, o, &fg[k], &bg[k], k ? NULL : &zero);
    }
    print_message("patches moving 9-12 px: LME object EPE %.3f px one pass, %.3f coarse to fine (zero flow %.3f); "
                  "background %.3f / %.3f\n", fg[0], fg[1], zero, bg[0], bg[1]);
    assert_true(fg[0] > 0.5 * zero);  /* one pass: out of reach */
    assert_true(fg[1] < 0.4 * fg[0]);
    assert_true(fg[1] < 0.3 * zero);
    assert_true(bg[1] < 1.0);         /* the background stays near still */
    /* beside the hybrid (local_both), the coarse-to-fine flow is the LME's
     * set; the hybrid's flow and mask (its agreement rule reads the single
     * pass) are the same bits either way, and the LME's set is the flow the
     * LME alone gives */
    glocal_result h[2];
    for (int k = 0; k < 2; k++) {
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        o.local_both = 1;
        o.lme_coarse = k;
        OK(glocal_infer(m, pa, pb, 2, S, S, &o, &h[k]));
    }
    assert_memory_equal(h[0].local_flow, h[1].local_flow, sizeof(float) * 2 * 2 * hw);
    assert_memory_equal(h[0].mask, h[1].mask, sizeof(float) * 2 * hw);
    assert_memory_not_equal(h[0].lme_local_flow, h[1].lme_local_flow, sizeof(float) * 2 * 2 * hw);
    {
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        o.local_tvl1 = 0;
        glocal_result l;
        OK(glocal_infer(m, pa, pb, 2, S, S, &o, &l));
        assert_memory_equal(l.local_flow, h[1].lme_local_flow, sizeof(float) * 2 * 2 * hw);
        assert_memory_equal(l.mask, h[1].lme_mask, sizeof(float) * 2 * hw);
        glocal_result_free(&l);
        /* out of range: refused by name */
        o.lme_coarse = 4;
        assert_int_equal(glocal_infer(m, pa, pb, 2, S, S, &o, &l), GL_EINVAL);
        assert_non_null(strstr(gl_last_error(), "lme_coarse"));
        o.lme_coarse = 1;
        o.lme_coarse_px = NAN;
        assert_int_equal(glocal_infer(m, pa, pb, 2, S, S, &o, &l), GL_EINVAL);
        assert_non_null(strstr(gl_last_error(), "lme_coarse_px"));
    }
    glocal_result_free(&h[0]);
    glocal_result_free(&h[1]);
    for (int i = 0; i < NP; i++) photo_pair_release(&p[i]);
    glocal_model_free(&m);
}

/* lme_fine: the same model on 256^2 photo pairs (twice its size), patches
 * moving 6-10 px: the level at 2S, run on the frames at the input's
 * resolution, recovers what the model size loses (the patches' edges, the
 * texture's detail). Scored as above (unfinished, ungated), lme_fine 0
 * against 1; at the model size the level does not run (bit-identical). */
static void test_lme_fine_level(void **state)
{
    (void)state;
    enum { S = 256, NP = 4 };
    glocal_model *m = NULL;
    OK(glocal_model_load(&m, GLOCAL_SOURCE_DIR "/results/motion/128/glocal.h5", NULL));
    photo_pair p[NP];
    const uint8_t *pa[NP], *pb[NP];
    lme_photo_pairs(S, NP, 4, 6, 10, 23, p, pa, pb);
    double fg[2], bg[2];
    for (int k = 0; k < 2; k++) {
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        assert_true(o.lme_fine > 0); /* on by default */
        o.lme_fine = k;
        lme_photo_score(m, p, pa, pb, NP, S, o, &fg[k], &bg[k], NULL);
    }
    print_message("256^2, patches moving 6-10 px: LME object EPE %.3f px without the level at 2S, %.3f with it; "
                  "background %.3f / %.3f\n", fg[0], fg[1], bg[0], bg[1]);
    assert_true(fg[1] < 0.9 * fg[0]);
    assert_true(bg[1] < 1.1 * bg[0] + 0.02); /* the background no worse */
    /* at the model size there is no level above it */
    glocal_result r[2];
    for (int k = 0; k < 2; k++) {
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        o.local_tvl1 = 0;
        o.lme_fine = k;
        OK(glocal_infer(m, pa, pb, 1, 128, 128, &o, &r[k])); /* a 256^2 frame's first 128^2 pixels, as an image */
    }
    assert_memory_equal(r[0].local_flow, r[1].local_flow, sizeof(float) * 2 * 128 * 128);
    assert_memory_equal(r[0].mask, r[1].mask, sizeof(float) * 128 * 128);
    glocal_result_free(&r[0]);
    glocal_result_free(&r[1]);
    {
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        o.local_tvl1 = 0;
        o.lme_fine = 3;
        glocal_result l;
        assert_int_equal(glocal_infer(m, pa, pb, 1, S, S, &o, &l), GL_EINVAL);
        assert_non_null(strstr(gl_last_error(), "lme_fine"));
        o.lme_fine = 1;
        o.lme_support = 1; /* lme_support (test_lme_support_rule): a share below 1 */
        assert_int_equal(glocal_infer(m, pa, pb, 1, S, S, &o, &l), GL_EINVAL);
        assert_non_null(strstr(gl_last_error(), "lme_support"));
        o.lme_support = 0.4;
        o.lme_flat_noise = -1; /* lme_flat (test_lme_flat_rule): numbers >= 0 */
        assert_int_equal(glocal_infer(m, pa, pb, 1, S, S, &o, &l), GL_EINVAL);
        assert_non_null(strstr(gl_last_error(), "lme_flat"));
    }
    for (int i = 0; i < NP; i++) photo_pair_release(&p[i]);
    glocal_model_free(&m);
}

/* lme_support on constructed frames (camera still, h = I), 64x64: a
 * smooth background (a ramp, 1 grey level a pixel) with independent noise
 * in each frame (sigma 2), and against it (1) a textured patch that moves
 * by (2, 1), its flow given exactly; (2) a region of background given a
 * flow of (1, 0) it does not have (what the network claims in smooth
 * regions of coded clips); (3) a smooth noise-free patch moving half a
 * pixel, its flow given: a residual below the noise floor that the flow
 * explains. The rule keeps (1) and (3) and clears (2); support 0 clears
 * nothing. */
static double lme_tex(double x, double y, int kind)
{
    return kind == 1 ? 128 + 60 * sin(0.9 * x) * cos(0.7 * y) : 90 + 4 * x + 2 * y; /* (3): 4 grey levels a px */
}

/* The planes of glocal_lme_support_clear's tests: grey A and B, the flow
 * (u, v, zeroed), its scratch, the evidence and each pixel's region. */
typedef struct {
    float *ga, *gb, *u, *v, *scratch;
    uint8_t *ev, *region;
} support_planes;

static support_planes support_planes_new(size_t hw)
{
    support_planes s = { malloc(sizeof(float) * hw), malloc(sizeof(float) * hw), calloc(hw, sizeof(float)),
                         calloc(hw, sizeof(float)), malloc(sizeof(float) * 4 * hw), malloc(hw), malloc(hw) };
    assert_true(s.ga && s.gb && s.u && s.v && s.scratch && s.ev && s.region);
    return s;
}

static void support_planes_free(support_planes *s)
{
    free(s->ga);
    free(s->gb);
    free(s->u);
    free(s->v);
    free(s->scratch);
    free(s->ev);
    free(s->region);
}

static void test_lme_support_rule(void **state)
{
    (void)state;
    enum { W = 64, H = 64 };
    const size_t hw = (size_t)W * H;
    support_planes sp = support_planes_new(hw);
    float *ga = sp.ga, *gb = sp.gb, *u = sp.u, *v = sp.v, *scratch = sp.scratch;
    uint8_t *ev = sp.ev, *region = sp.region;
    uint64_t st = 7;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const size_t p = (size_t)y * W + x;
            double na = 0, nb = 0; /* Gaussian noise, sigma 2: sums of 12 uniforms */
            for (int k = 0; k < 12; k++) {
                na += test_lcg_uniform(&st);
                nb += test_lcg_uniform(&st);
            }
            ga[p] = (float)(60 + x + 2 * (na - 6));
            gb[p] = (float)(60 + x + 2 * (nb - 6));
            region[p] = 0;
            if (x >= 8 && x < 26 && y >= 8 && y < 26) { /* (1) in A at p, in B at p + (2, 1) */
                region[p] = 1;
                ga[p] = (float)lme_tex(x, y, 1);
                u[p] = 2;
                v[p] = 1;
            }
            if (x >= 40 && x < 58 && y >= 6 && y < 22) { /* (2) */
                region[p] = 2;
                u[p] = 1;
            }
            if (x >= 12 && x < 28 && y >= 38 && y < 56) { /* (3) in A at p, in B at p + (0.5, 0) */
                region[p] = 3;
                ga[p] = (float)lme_tex(x, y, 3);
                u[p] = 0.5f;
            }
        }
    for (int y = 0; y < H; y++) /* B: the patches moved */
        for (int x = 0; x < W; x++) {
            const size_t p = (size_t)y * W + x;
            if (x - 2 >= 8 && x - 2 < 26 && y - 1 >= 8 && y - 1 < 26) gb[p] = (float)lme_tex(x - 2, y - 1, 1);
            if (x - 0.5 >= 12 && x - 0.5 < 28 && y >= 38 && y < 56) gb[p] = (float)lme_tex(x - 0.5, y, 3);
        }
    const double id[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    for (int pass = 0; pass < 2; pass++) {
        for (size_t p = 0; p < hw; p++) ev[p] = region[p] != 0;
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        assert_true(o.lme_support > 0); /* on by default */
        glocal_lme_support_clear(ga, gb, W, H, id, u, v, pass ? o.lme_support : 0, o.lme_support_k, o.lme_flat,
                                 o.lme_flat_noise, scratch, ev);
        long kept[4] = { 0 }, n[4] = { 0 };
        for (size_t p = 0; p < hw; p++) {
            n[region[p]]++;
            kept[region[p]] += ev[p] != 0;
        }
        print_message("lme_support %s: evidence kept on the moving textured patch %.2f, on the claimed still "
                      "background %.2f, on the slow smooth patch %.2f\n", pass ? "on" : "off",
                      (double)kept[1] / n[1], (double)kept[2] / n[2], (double)kept[3] / n[3]);
        if (!pass) {
            assert_int_equal(kept[1] + kept[2] + kept[3], n[1] + n[2] + n[3]); /* 0: nothing cleared */
        } else {
            assert_true(kept[1] > 0.95 * n[1]);
            assert_true(kept[2] < 0.05 * n[2]);
            assert_true(kept[3] > 0.9 * n[3]);
        }
    }
    support_planes_free(&sp);
}

/* lme_flat on constructed frames (camera still, h = I), 64x64: A is a
 * flat ramp (half a grey level a pixel, below lme_flat's 1) with (1) a
 * textured patch that moves by (2, 1) and (2) a flat region whose content
 * moves by (1, 0) in B exactly, both flows given: the motion of (2) is
 * unobservable, but its flow explains the images perfectly (r1 = 0), so
 * the support test keeps it. B's still background is A's, plus (noisy
 * pair) independent noise (sigma 1: mean |A - B| ~ 0.8 grey there, as on
 * MPEG-4 clips) or (clean pair) none. The rule clears (2) on the noisy
 * pair and keeps it on the clean one; (1) stays on both; lme_flat 0 keeps
 * (2) on the noisy pair too. */
static void test_lme_flat_rule(void **state)
{
    (void)state;
    enum { W = 64, H = 64 };
    const size_t hw = (size_t)W * H;
    support_planes sp = support_planes_new(hw);
    float *ga = sp.ga, *gb = sp.gb, *u = sp.u, *v = sp.v, *scratch = sp.scratch;
    uint8_t *ev = sp.ev, *region = sp.region;
    const double id[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    for (int c = 0; c < 3; c++) { /* 0: noisy pair, 1: clean pair, 2: noisy pair, lme_flat 0 */
        uint64_t st = 11;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const size_t p = (size_t)y * W + x;
                double nb = 0; /* Gaussian noise, sigma 1: sums of 12 uniforms */
                for (int k = 0; k < 12; k++) nb += test_lcg_uniform(&st);
                ga[p] = (float)(100 + 0.5 * x);
                gb[p] = (float)(100 + 0.5 * x + (c == 1 ? 0 : nb - 6));
                region[p] = 0;
                u[p] = v[p] = 0;
                if (x >= 8 && x < 26 && y >= 8 && y < 26) { /* (1) in A at p, in B at p + (2, 1) */
                    region[p] = 1;
                    ga[p] = (float)lme_tex(x, y, 1);
                    u[p] = 2;
                    v[p] = 1;
                }
                if (x >= 36 && x < 56 && y >= 36 && y < 56) { /* (2) in A at p, in B at p + (1, 0) */
                    region[p] = 2;
                    u[p] = 1;
                }
            }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const size_t p = (size_t)y * W + x;
                if (x - 2 >= 8 && x - 2 < 26 && y - 1 >= 8 && y - 1 < 26) gb[p] = (float)lme_tex(x - 2, y - 1, 1);
                if (x - 1 >= 36 && x - 1 < 56 && y >= 36 && y < 56) gb[p] = ga[p - 1];
            }
        for (size_t p = 0; p < hw; p++) ev[p] = region[p] != 0;
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        assert_true(o.lme_flat > 0.5 && o.lme_flat_noise < 0.8); /* on by default, the ramp is flat, the noise above */
        glocal_lme_support_clear(ga, gb, W, H, id, u, v, o.lme_support, o.lme_support_k, c == 2 ? 0 : o.lme_flat,
                                 o.lme_flat_noise, scratch, ev);
        long kept[3] = { 0 }, n[3] = { 0 };
        for (size_t p = 0; p < hw; p++) {
            n[region[p]]++;
            kept[region[p]] += ev[p] != 0;
        }
        print_message("lme_flat, %s: evidence kept on the moving textured patch %.2f, on the moving flat region %.2f\n",
                      c == 0 ? "noisy pair" : c == 1 ? "clean pair" : "noisy pair, lme_flat 0", (double)kept[1] / n[1],
                      (double)kept[2] / n[2]);
        assert_true(kept[1] > 0.95 * n[1]);
        if (c == 0) assert_int_equal(kept[2], 0);
        else assert_true(kept[2] > 0.9 * n[2]); /* the support test clears a rim whose windows take in noise */
    }
    support_planes_free(&sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_visible),
        cmocka_unit_test(test_flow_inverse),
        cmocka_unit_test(test_occlusion_reaches_the_loss),
        cmocka_unit_test(test_load_gme),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_flow_learns_where_the_mask_is_off),
        cmocka_unit_test(test_infer_local_source),
        cmocka_unit_test(test_mask_evidence),
        cmocka_unit_test(test_lme_thresh_k),
        cmocka_unit_test(test_lme_agree_k),
        cmocka_unit_test(test_lme_finish),
        cmocka_unit_test(test_lme_coarse_reach),
        cmocka_unit_test(test_lme_fine_level),
        cmocka_unit_test(test_lme_support_rule),
        cmocka_unit_test(test_lme_flat_rule),
        cmocka_unit_test(test_local_fuse),
        cmocka_unit_test(test_local_in_frame_b),
        cmocka_unit_test(test_one_lme_pass),
        cmocka_unit_test(test_lme_repass),
        cmocka_unit_test(test_training_reads_no_ground_truth),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
