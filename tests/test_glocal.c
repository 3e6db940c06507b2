/* test_glocal.c — motion/glocal*: GLOCAL's config and checkpoints, a short
 * training run on synthetic pairs with known motion, inference, and `glocal
 * motion` (experiments/cmd_motion.c) end to end. The bases, warp, losses and
 * robust refinement: test_glocal_ops.c. */
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

#include "tests/testutil.h"
#include "tests/glocal_pairs.h"
#include "tests/glocal_testutil.h"

#include "datasets/image.h"
#include "datasets/synth.h"
#include "motion/flow.h"
#include "motion/glocal.h"
#include "nn/nn.h"

/* ---- config, checkpoint, training ------------------------------------------------- */

static void test_config_and_checkpoint(void **state)
{
    (void)state;
    glocal_config c = glocal_config_default(32), d;
    c.iters = 1;
    c.feat = 8;
    char js[512];
    OK(glocal_config_to_json(&c, js, sizeof js));
    OK(glocal_config_from_json(js, &d));
    assert_int_equal(d.size, 32);
    assert_int_equal(d.iters, 1);
    assert_int_equal(d.feat, 8);
    assert_double_equal(d.coef_scale, c.coef_scale, 0);
    glocal_config bad = c;
    bad.size = 40;
    assert_int_equal(glocal_config_validate(&bad), GL_EINVAL);
    assert_int_equal(glocal_config_from_json("{\"size\": 32}", &d), GL_EFORMAT);

    nn_manual_seed(3);
    glocal_model *m = NULL, *m2 = NULL;
    OK(glocal_model_new(&m, &c));
    /* perturb the zero-initialised output so the forward pass is not trivial */
    nn_params *p = glocal_model_params(m);
    for (int i = 0; i < p->n; i++)
        if (strstr(p->names[i], "explicit.weight")) OK(nn_normal_(p->tensors[i], 0, 0.01));
    char dir[] = "/tmp/test_glocal_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/m.h5", dir);
    nn_checkpoint_meta meta = { 7, js, NULL, NULL };
    OK(nn_checkpoint_save(path, p, &meta));
    int64_t step = 0;
    OK(glocal_model_load(&m2, path, &step));
    assert_int_equal(step, 7);
    int64_t sh[4] = { 2, 1, 32, 32 };
    nn_tensor *x, *y;
    OK(nn_rand(&x, sh, 4, NN_F32));
    OK(nn_rand(&y, sh, 4, NN_F32));
    glocal_outputs o1, o2;
    OK(glocal_forward(m, x, y, 1, NULL, 0, &o1));
    OK(glocal_forward(m2, x, y, 1, NULL, 0, &o2));
    double diff;
    OK(nn_max_abs_diff(o1.glob[0], o2.glob[0], &diff));
    assert_true(diff == 0);
    OK(nn_max_abs_diff(o1.mask, o2.mask, &diff));
    assert_true(diff == 0);
    assert_int_equal(nn_size(o1.local, 1), 2);
    glocal_outputs_free(&o1);
    glocal_outputs_free(&o2);
    /* wrong input size */
    int64_t bad_sh[4] = { 2, 1, 16, 16 };
    nn_tensor *z;
    OK(nn_rand(&z, bad_sh, 4, NN_F32));
    assert_int_equal(glocal_forward(m, z, z, 0, NULL, 0, &o1), GL_EINVAL);
    nn_free(&z); nn_free(&x); nn_free(&y);
    /* a file that is not a GLOCAL checkpoint */
    snprintf(path, sizeof path, "%s/junk.h5", dir);
    FILE *f = fopen(path, "wb");
    fputs("not hdf5", f);
    fclose(f);
    glocal_model *m3 = NULL;
    assert_true(glocal_model_load(&m3, path, NULL) < 0);
    assert_null(m3);
    unlink(path);
    snprintf(path, sizeof path, "%s/m.h5", dir);
    unlink(path);
    rmdir(dir);
    glocal_model_free(&m);
    glocal_model_free(&m2);
}

/* A tiny model on textured pairs with known homographies: a short, seeded run
 * must bring the network's DLT homography well below the identity's error. */
static void test_tiny_training(void **state)
{
    (void)state;
    enum { S = 32, NTRAIN = 64, NTEST = 24, BATCH = 8, STEPS = 300 };
    const size_t fb = (size_t)S * S * 3;
    uint8_t *fa = malloc(fb * (NTRAIN + NTEST)), *fbuf = malloc(fb * (NTRAIN + NTEST));
    double *hs = malloc(sizeof(double) * 9 * (NTRAIN + NTEST));
    unsigned seed = 12345;
    for (int i = 0; i < NTRAIN + NTEST; i++) random_pair(&seed, S, fa + i * fb, fbuf + i * fb, hs + 9 * i);
    glocal_config gc = glocal_config_default(S);
    gc.iters = 1;
    gc.feat = 16;
    nn_manual_seed(11);
    glocal_model *m = NULL;
    OK(glocal_model_new(&m, &gc));
    nn_opt_config oc = nn_opt_config_default(NN_OPT_ADAM);
    oc.lr = 2e-3;
    nn_optimizer *opt = NULL;
    OK(nn_optimizer_new(&opt, glocal_model_params(m), &oc));
    glocal_loss_config lc = glocal_loss_config_default();
    lc.lme_start = lc.mask_start = 1000000; /* global motion only */
    const uint8_t *A[BATCH], *B[BATCH];
    for (int step = 0; step < STEPS; step++) {
        for (int j = 0; j < BATCH; j++) {
            int k = (step * BATCH + j) % NTRAIN;
            A[j] = fa + k * fb;
            B[j] = fbuf + k * fb;
        }
        nn_scope *scp;
        OK(nn_scope_begin(&scp));
        nn_tensor *ta, *tb, *loss;
        glocal_losses L;
        OK(glocal_frames_to_tensor(&ta, A, BATCH, S, S, S));
        OK(glocal_frames_to_tensor(&tb, B, BATCH, S, S, S));
        OK(nn_optimizer_zero_grad(opt));
        OK(glocal_loss(m, ta, tb, NULL, NULL, &lc, step, &loss, &L));
        assert_true(isfinite(L.total));
        OK(nn_backward(loss));
        OK(nn_optimizer_step(opt));
        nn_scope_end(&scp);
    }
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.refine = 0;
    o.lme = 0;
    o.local_tvl1 = 0;
    double e_id = 0, e_net = 0;
    const uint8_t *pa[NTEST], *pb[NTEST];
    for (int i = 0; i < NTEST; i++) {
        pa[i] = fa + (NTRAIN + i) * fb;
        pb[i] = fbuf + (NTRAIN + i) * fb;
    }
    glocal_result r;
    OK(glocal_infer(m, pa, pb, NTEST, S, S, &o, &r));
    for (int i = 0; i < NTEST; i++) {
        double id[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 }, e;
        OK(homography_corner_error(id, hs + 9 * (NTRAIN + i), S, S, &e));
        e_id += e / NTEST;
        OK(homography_corner_error(r.homography + 9 * i, hs + 9 * (NTRAIN + i), S, S, &e));
        e_net += e / NTEST;
    }
    glocal_result_free(&r);
    print_message("tiny training: identity %.3f px -> network %.3f px (held-out pairs)\n", e_id, e_net);
    assert_true(e_net < 0.5 * e_id);
    nn_optimizer_free(&opt);
    glocal_model_free(&m);
    free(fa);
    free(fbuf);
    free(hs);
}

/* Inference API: any input size, refinement-only mode, bad arguments. */
static void test_infer_api(void **state)
{
    (void)state;
    const int W = 48, H = 40;
    double hgt[9] = { 1.0, 0.01, 1.5, -0.01, 1.0, 0.8, 0, 0, 1 };
    uint8_t *ra = malloc(W * H * 3), *rb = malloc(W * H * 3);
    render_pair_rgb(hgt, W, H, ra, rb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    glocal_result r;
    const uint8_t *pa = ra, *pb = rb;
    assert_int_equal(glocal_infer(NULL, &pa, &pb, 1, W, H, &o, &r), GL_EINVAL);
    o.use_network = 0;
    o.lme = 0;
    o.local_tvl1 = 0;
    OK(glocal_infer(NULL, &pa, &pb, 1, W, H, &o, &r));
    double e;
    OK(homography_corner_error(r.homography, hgt, W, H, &e));
    assert_true(e < 0.1); /* 8-bit quantisation of the frames */
    /* global flow is the homography's flow, mixed = global when there is no local */
    double xo, yo;
    apply_h(r.homography, 10, 20, &xo, &yo);
    assert_double_equal(r.global_flow[20 * W + 10], xo - 10, 1e-4);
    assert_double_equal(r.mixed_flow[W * H + 20 * W + 10], yo - 20, 1e-4);
    glocal_result_free(&r);
    free(ra); free(rb);
}

/* Local motion: a textured square moving by d over a background under a known
 * homography. With the default TV-L1 local flow on the refined alignment, the
 * local flow inside the square is d - (H p - p) and ~0 far from it. */
static void render_square_scene(const double hgt[9], double dx, double dy, int W, int H, int x0,
                                int y0, int side, uint8_t *ra, uint8_t *rb)
{
    double hi[9];
    inv3(hgt, hi);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double xs, ys, va, vb;
            apply_h(hi, x, y, &xs, &ys);
            va = texture(x, y);
            vb = texture(xs, ys);
            if (x >= x0 && x < x0 + side && y >= y0 && y < y0 + side)
                va = texture2(x - x0 + 50, y - y0 + 50);
            double ox = x - dx, oy = y - dy; /* object pixel of B came from (ox, oy) of A */
            if (ox >= x0 && ox < x0 + side && oy >= y0 && oy < y0 + side)
                vb = texture2(ox - x0 + 50, oy - y0 + 50);
            for (int k = 0; k < 3; k++) {
                ra[3 * (y * W + x) + k] = (uint8_t)lrint(255 * va);
                rb[3 * (y * W + x) + k] = (uint8_t)lrint(255 * vb);
            }
        }
}

static void test_local_motion(void **state)
{
    (void)state;
    const int W = 64, H = 64, x0 = 22, y0 = 20, side = 16;
    const double dx = 2.0, dy = -1.5;
    double hgt[9] = { 1.01, 0.01, 1.2, -0.01, 1.0, 0.7, 0, 0, 1 };
    uint8_t *ra = malloc(W * H * 3), *rb = malloc(W * H * 3);
    render_square_scene(hgt, dx, dy, W, H, x0, y0, side, ra, rb);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.use_network = 0;
    o.lme = 0;
    assert_int_equal(o.local_tvl1, 1);
    glocal_result r;
    const uint8_t *pa = ra, *pb = rb;
    OK(glocal_infer(NULL, &pa, &pb, 1, W, H, &o, &r));
    double e;
    OK(homography_corner_error(r.homography, hgt, W, H, &e));
    assert_true(e < 0.2); /* the square (6% of the frame) is an outlier */
    double epe = 0, leak = 0;
    int nin = 0, nout = 0, fg_hits = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double gx, gy;
            apply_h(hgt, x, y, &gx, &gy);
            float lu = r.local_flow[y * W + x], lv = r.local_flow[W * H + y * W + x];
            if (x >= x0 + 3 && x < x0 + side - 3 && y >= y0 + 3 && y < y0 + side - 3) {
                epe += hypot(lu - (dx - (gx - x)), lv - (dy - (gy - y)));
                fg_hits += r.mask[y * W + x] >= 0.5f;
                nin++;
            } else if (x < x0 - 6 || x >= x0 + side + 6 || y < y0 - 6 || y >= y0 + side + 6) {
                leak += hypot(lu, lv);
                nout++;
            }
        }
    epe /= nin;
    leak /= nout;
    print_message("local motion: EPE %.3f px inside the square, leakage %.4f px outside\n", epe, leak);
    assert_true(epe < 0.5);
    assert_true(leak < 0.05);
    assert_true(fg_hits > 0.8 * nin);
    /* The mask against the true square, with and without the edge-aware
     * clean-up (mask_sigma = 0): the clean-up snaps it to the square. (The
     * view margin off in both: it takes the same border evidence out of
     * either, test_view_margin.) */
    double iou[2];
    for (int k = 0; k < 2; k++) {
        glocal_infer_options ok = o;
        ok.view_margin = -1;
        if (k) ok.mask_sigma = 0;
        glocal_result rk;
        OK(glocal_infer(NULL, &pa, &pb, 1, W, H, &ok, &rk));
        long in = 0, un = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int g = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side, e = rk.mask[y * W + x] >= 0.5f;
                in += g && e;
                un += g || e;
            }
        iou[k] = (double)in / un;
        glocal_result_free(&rk);
    }
    print_message("mask IoU with the true square: %.3f (without the clean-up %.3f)\n", iou[0], iou[1]);
    assert_true(iou[0] > 0.55);          /* the square moves 2.5 px: its trail counts as moving */
    assert_true(iou[0] > iou[1] + 0.05);
    /* Ungated (local_gate = 0): the whole residual on the same alignment. Where
     * the gate was open the flow is the same; where it was closed the gated
     * flow is exactly 0 and the ungated one is the residual, small but not all
     * zero; inside the square it still matches the ground truth. */
    glocal_result u;
    o.local_gate = 0;
    OK(glocal_infer(NULL, &pa, &pb, 1, W, H, &o, &u));
    double epe_u = 0, leak_u = 0;
    long closed = 0, closed_nonzero = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t p = (size_t)y * W + x, q = (size_t)W * H + p;
            double gx, gy;
            apply_h(hgt, x, y, &gx, &gy);
            if (r.mask[p] >= 0.5f) {
                assert_float_equal(u.local_flow[p], r.local_flow[p], 1e-6);
                assert_float_equal(u.local_flow[q], r.local_flow[q], 1e-6);
            } else {
                assert_true(r.local_flow[p] == 0.0f && r.local_flow[q] == 0.0f);
                closed++;
                closed_nonzero += u.local_flow[p] != 0.0f || u.local_flow[q] != 0.0f;
            }
            if (x >= x0 + 3 && x < x0 + side - 3 && y >= y0 + 3 && y < y0 + side - 3)
                epe_u += hypot(u.local_flow[p] - (dx - (gx - x)), u.local_flow[q] - (dy - (gy - y)));
            else if (x < x0 - 6 || x >= x0 + side + 6 || y < y0 - 6 || y >= y0 + side + 6)
                leak_u += hypot(u.local_flow[p], u.local_flow[q]);
        }
    epe_u /= nin;
    leak_u /= nout;
    print_message("ungated: EPE %.3f px inside, leakage %.4f px outside (%ld of %ld closed pixels nonzero)\n",
                  epe_u, leak_u, closed_nonzero, closed);
    assert_true(epe_u < 0.5);
    assert_true(leak_u >= leak);
    assert_true(closed_nonzero > 0);
    glocal_result_free(&u);
    glocal_result_free(&r);
    free(ra);
    free(rb);
}

/* Out of B's view: a camera zooming in by 15 % about the centre takes a band
 * of A's border out of B; the aligned B repeats its border there and TV-L1
 * finds motion in it. With the default view_margin no pixel whose aligned
 * position lies outside B (or within the margin) is foreground; with
 * view_margin < 0 (evidence everywhere) some are, and the mask's IoU with
 * the true square is lower. */
static void test_view_margin(void **state)
{
    (void)state;
    const int W = 64, H = 64, x0 = 24, y0 = 24, side = 16;
    const double z = 1.15, c = 31.5;
    double hgt[9] = { z, 0, c - z * c, 0, z, c - z * c, 0, 0, 1 };
    uint8_t *ra = malloc(W * H * 3), *rb = malloc(W * H * 3);
    render_square_scene(hgt, 2.0, -1.5, W, H, x0, y0, side, ra, rb);
    const uint8_t *pa = ra, *pb = rb;
    long out_fg[2] = { 0, 0 }, nout = 0;
    double iou[2];
    for (int k = 0; k < 2; k++) {
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        o.use_network = 0;
        o.lme = 0;
        assert_true(o.view_margin > 0);
        if (k) o.view_margin = -1;
        glocal_result r;
        OK(glocal_infer(NULL, &pa, &pb, 1, W, H, &o, &r));
        double e;
        OK(homography_corner_error(r.homography, hgt, W, H, &e));
        assert_true(e < 0.3);
        const double m = o.view_margin * W;
        long in = 0, un = 0;
        nout = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double gx, gy;
                apply_h(hgt, x, y, &gx, &gy);
                int fg = r.mask[y * W + x] >= 0.5f, sq = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
                if (gx < 0 || gx > W - 1 || gy < 0 || gy > H - 1) {   /* out of B, by the truth */
                    out_fg[k] += fg;
                    nout++;
                }
                if (!k && fg) {   /* the estimate's view, with the margin */
                    apply_h(r.homography, x, y, &gx, &gy);
                    assert_true(gx >= m && gx <= W - 1 - m && gy >= m && gy <= H - 1 - m);
                }
                in += fg && sq;
                un += fg || sq;
            }
        iou[k] = (double)in / un;
        glocal_result_free(&r);
    }
    print_message("zoom 1.15: %ld pixels of A out of B's view; foreground there: %ld with view_margin, %ld "
                  "without; mask IoU with the square %.3f against %.3f\n", nout, out_fg[0], out_fg[1], iou[0],
                  iou[1]);
    /* a margin that leaves nothing in view is refused by name */
    glocal_infer_options bad;
    glocal_infer_options_default(&bad);
    bad.use_network = 0;
    bad.lme = 0;
    bad.view_margin = 0.5;
    glocal_result rb_;
    assert_int_equal(glocal_infer(NULL, &pa, &pb, 1, W, H, &bad, &rb_), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "view_margin"));
    assert_true(nout > 0.2 * W * H);
    assert_int_equal(out_fg[0], 0);
    assert_true(out_fg[1] > 0);
    assert_true(iou[0] > iou[1]);
    free(ra);
    free(rb);
}

/* The gate's threshold follows the noise of the residual flow: a square moving
 * 0.36 px (below the fixed 0.5 px) over a still background is found by the
 * adaptive threshold on clean frames, and missed by the fixed one; the
 * background stays closed. (A still camera: the renderer moves the square by
 * d in the frame, so its local motion is d only when the camera is still.) */
static void test_local_threshold_adapts(void **state)
{
    (void)state;
    const int W = 64, H = 64, x0 = 22, y0 = 20, side = 16;
    double hgt[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    uint8_t *ra = malloc(W * H * 3), *rb = malloc(W * H * 3);
    render_square_scene(hgt, 0.3, 0.2, W, H, x0, y0, side, ra, rb);
    const uint8_t *pa = ra, *pb = rb;
    long hits[2] = { 0, 0 }, bg_open[2] = { 0, 0 }, nin = 0, nout = 0;
    for (int fixed = 0; fixed < 2; fixed++) {
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        o.use_network = 0;
        o.lme = 0;
        if (fixed) o.local_thresh_k = 0;
        glocal_result r;
        OK(glocal_infer(NULL, &pa, &pb, 1, W, H, &o, &r));
        nin = nout = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float mk = r.mask[y * W + x];
                if (x >= x0 + 3 && x < x0 + side - 3 && y >= y0 + 3 && y < y0 + side - 3) {
                    hits[fixed] += mk >= 0.5f;
                    nin++;
                } else if (x < x0 - 6 || x >= x0 + side + 6 || y < y0 - 6 || y >= y0 + side + 6) {
                    bg_open[fixed] += mk >= 0.5f;
                    nout++;
                }
            }
        glocal_result_free(&r);
    }
    print_message("0.36 px square: adaptive gate opens %ld of %ld object pixels (%ld of %ld background), "
                  "fixed 0.5 px %ld (%ld)\n", hits[0], nin, bg_open[0], nout, hits[1], bg_open[1]);
    assert_true(hits[0] > 0.8 * nin);
    assert_true(hits[1] < 0.2 * nin);
    assert_true(bg_open[0] < 0.02 * nout);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.use_network = 0;
    o.lme = 0;
    o.local_thresh_min = 0.6; /* above local_thresh */
    glocal_result r;
    assert_int_equal(glocal_infer(NULL, &pa, &pb, 1, W, H, &o, &r), GL_EINVAL);
    free(ra);
    free(rb);
}

/* ---- glocal motion end to end ------------------------------------------------------- */

/* Interior (margin m) end-point error of a .flo against the flow of h. */
static double flo_epe_vs_h(const char *path, const double h[9], int W, int H, int m)
{
    flow_field f = { 0 };
    OK(flow_read_flo(path, &f));
    assert_int_equal(f.width, W);
    assert_int_equal(f.height, H);
    double e = 0;
    long n = 0;
    for (int y = m; y < H - m; y++)
        for (int x = m; x < W - m; x++) {
            double xo, yo;
            apply_h(h, x, y, &xo, &yo);
            e += hypot(f.u[y * W + x] - (xo - x), f.v[y * W + x] - (yo - y));
            n++;
        }
    flow_field_free(&f);
    return e / n;
}

/* `glocal motion` with an untrained tiny model on a pair under a known
 * homography (no object): the refined H is that homography, global.flo is
 * its flow, the strip starts with frame A (zoomed) and ends with a grey mask;
 * usage and input errors exit 2 and 1. */
static void test_cmd_motion(void **state)
{
    (void)state;
    const int W = 48, H = 40, Z = 2;
    const double hgt[9] = { 1.0, 0.01, 1.5, -0.01, 1.0, 0.8, 0, 0, 1 };
    uint8_t *ra = malloc(W * H * 3), *rb = malloc(W * H * 3);
    render_pair_rgb(hgt, W, H, ra, rb);
    char dir[64], pa[128], pb[128], model[128], out[128], path[256], cmd[1024];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "test_glocal_motion_"), 0);
    snprintf(pa, sizeof pa, "%s/a.png", dir);
    snprintf(pb, sizeof pb, "%s/b.png", dir);
    snprintf(model, sizeof model, "%s/m.h5", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    OK(image_save_png(pa, ra, W, H, 3));
    OK(image_save_png(pb, rb, W, H, 3));
    OK(glocal_tiny_checkpoint(model));

    snprintf(cmd, sizeof cmd, "'%s' --threads 2 motion --model '%s' --out '%s' --zoom %d '%s' '%s' > /dev/null",
             GLOCAL_BINARY, model, out, Z, pa, pb);
    assert_int_equal(system(cmd), 0);
    /* homography.txt: 3 rows of 3, the known homography up to quantisation */
    snprintf(path, sizeof path, "%s/homography.txt", out);
    char *txt = test_read_text(path);
    assert_non_null(txt);
    double h[9], e;
    assert_int_equal(sscanf(txt, "%lf %lf %lf %lf %lf %lf %lf %lf %lf", &h[0], &h[1], &h[2], &h[3], &h[4],
                            &h[5], &h[6], &h[7], &h[8]), 9);
    gl_free(txt);
    OK(homography_corner_error(h, hgt, W, H, &e));
    print_message("glocal motion: corner error %.3f px\n", e);
    assert_true(e < 0.25); /* measured 0.06 */
    /* global.flo is the known homography's flow; mixed.flo too (no object) */
    snprintf(path, sizeof path, "%s/global.flo", out);
    e = flo_epe_vs_h(path, hgt, W, H, 0);
    print_message("global.flo: EPE %.3f px against the known homography\n", e);
    assert_true(e < 0.2); /* measured 0.02 */
    snprintf(path, sizeof path, "%s/mixed.flo", out);
    e = flo_epe_vs_h(path, hgt, W, H, 8);
    print_message("mixed.flo: interior EPE %.3f px against the known homography\n", e);
    assert_true(e < 0.2); /* measured 0.02 */
    snprintf(path, sizeof path, "%s/local.flo", out);
    const double ident[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    e = flo_epe_vs_h(path, ident, W, H, 8);
    print_message("local.flo: interior mean |flow| %.3f px\n", e);
    assert_true(e < 0.2); /* measured 0.00 */
    /* strip.png: 6 panels, zoomed; the first is frame A, the last a grey mask */
    image st = { 0 };
    snprintf(path, sizeof path, "%s/strip.png", out);
    OK(image_load(&st, path, 3));
    assert_int_equal(st.width, 6 * W * Z);
    assert_int_equal(st.height, H * Z);
    for (int y = 0; y < H * Z; y++)
        for (int x = 0; x < W * Z; x++) {
            assert_int_equal(st.data[3 * ((size_t)y * st.width + x)], ra[3 * ((y / Z) * W + x / Z)]);
            const uint8_t *q = st.data + 3 * ((size_t)y * st.width + 5 * W * Z + x);
            assert_true(q[0] == q[1] && q[1] == q[2]);
        }
    image_release(&st);

    /* one image: usage error; frames of two sizes, a missing file: failures */
    snprintf(cmd, sizeof cmd, "'%s' motion --model '%s' --out '%s' '%s' 2> /dev/null", GLOCAL_BINARY, model,
             out, pa);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    snprintf(path, sizeof path, "%s/small.png", dir);
    OK(image_save_png(path, ra, W / 2, H / 2, 3));
    snprintf(cmd, sizeof cmd, "'%s' motion --model '%s' --out '%s' '%s' '%s' 2> /dev/null", GLOCAL_BINARY, model,
             out, pa, path);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    snprintf(cmd, sizeof cmd, "'%s' motion --model '%s/none.h5' --out '%s' '%s' '%s' 2> /dev/null",
             GLOCAL_BINARY, dir, out, pa, pb);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    assert_int_equal(test_tmpdir_remove(dir), 0);
    free(ra); free(rb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_checkpoint),
        cmocka_unit_test(test_infer_api),
        cmocka_unit_test(test_local_motion),
        cmocka_unit_test(test_local_threshold_adapts),
        cmocka_unit_test(test_view_margin),
        cmocka_unit_test(test_tiny_training),
        cmocka_unit_test(test_cmd_motion),
    };
    return cmocka_run_group_tests(tests, glocal_test_setup, NULL);
}
