/* Tests for DIS optical flow (motion/dis*.c, declared in motion/flow.h):
 * the presets and their validation, and the flow against references that
 * do not come from DIS: a sub-pixel translation of a real photograph (exact
 * by construction: box-filtered shifts of a 4x larger image), a known
 * homography (its analytic flow, and flow_minus_homography recovering it
 * from DIS's output), a patch moving over a static photo, the shipped
 * FlyingChairs-style pairs with exact flow; bit-identical results for 1, 2
 * and 3 threads, bad arguments and failed allocations. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "datasets/image.h"
#include "motion/flow.h"
#include "tests/testutil.h"

#define TEXTURES GLOCAL_DATA_DIR "/textures/cc0"

static void load_gray(const char *path, image *img)
{
    OK(image_load(img, path, 1));
    assert_true(img->width >= 300 && img->height >= 300);
}

/* ---- configuration -------------------------------------------------------- */

static void test_dis_presets(void **state)
{
    (void)state;
    dis_config c;
    /* OpenCV 4.x DISOpticalFlow::create(PRESET_*): finest scale, stride,
     * gradient descent iterations, refinement iterations. */
    static const struct {
        const char *name;
        int finest, stride, iters, var;
    } p[] = { { "ultrafast", 2, 4, 12, 0 }, { "fast", 2, 4, 16, 5 }, { "medium", 1, 3, 25, 5 } };
    for (int i = 0; i < 3; i++) {
        OK(dis_config_preset(&c, p[i].name));
        OK(dis_config_validate(&c));
        assert_int_equal(c.finest_scale, p[i].finest);
        assert_int_equal(c.patch_stride, p[i].stride);
        assert_int_equal(c.grad_descent_iters, p[i].iters);
        assert_int_equal(c.var_refine_iters, p[i].var);
        assert_int_equal(c.patch_size, 8);
        assert_int_equal(c.coarsest_scale, -1);
        assert_true(c.var_alpha == 20 && c.var_delta == 5 && c.var_gamma == 10);
    }
    /* An unknown name is an error that names it, and leaves *c alone. */
    dis_config before = c;
    assert_int_equal(dis_config_preset(&c, "slow"), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "'slow'"));
    assert_non_null(strstr(gl_last_error(), "medium"));
    assert_memory_equal(&c, &before, sizeof c);
    assert_int_equal(dis_config_preset(&c, NULL), GL_EINVAL);
    assert_int_equal(dis_config_preset(NULL, "fast"), GL_EINVAL);
}

static void test_dis_validate(void **state)
{
    (void)state;
    static const struct {
        size_t off;
        int is_float;
        float value;
        const char *field;
    } bad[] = {
        { offsetof(dis_config, finest_scale), 0, -1, "finest_scale" },
        { offsetof(dis_config, coarsest_scale), 0, 1, "coarsest_scale" }, /* < finest (2) */
        { offsetof(dis_config, coarsest_scale), 0, -2, "coarsest_scale" },
        { offsetof(dis_config, patch_size), 0, 3, "patch_size" },
        { offsetof(dis_config, patch_size), 0, 33, "patch_size" },
        { offsetof(dis_config, patch_stride), 0, 0, "patch_stride" },
        { offsetof(dis_config, patch_stride), 0, 9, "patch_stride" }, /* > patch_size */
        { offsetof(dis_config, grad_descent_iters), 0, -1, "grad_descent_iters" },
        { offsetof(dis_config, var_refine_iters), 0, -1, "var_refine_iters" },
        { offsetof(dis_config, var_sor_iters), 0, 0, "var_sor_iters" },
        { offsetof(dis_config, var_alpha), 1, -1, "var_alpha" },
        { offsetof(dis_config, var_delta), 1, NAN, "var_delta" },
        { offsetof(dis_config, var_gamma), 1, INFINITY, "var_gamma" },
        { offsetof(dis_config, var_omega), 1, 2, "var_omega" },
        { offsetof(dis_config, var_omega), 1, 0, "var_omega" },
        { offsetof(dis_config, use_mean_normalization), 0, 2, "use_mean_normalization" },
        { offsetof(dis_config, use_spatial_propagation), 0, -1, "use_spatial_propagation" },
        { offsetof(dis_config, opencv_rounding), 0, 3, "opencv_rounding" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dis_config c;
        OK(dis_config_preset(&c, "fast"));
        if (bad[i].is_float) *(float *)((char *)&c + bad[i].off) = bad[i].value;
        else *(int *)((char *)&c + bad[i].off) = (int)bad[i].value;
        assert_int_equal(dis_config_validate(&c), GL_EINVAL);
        if (!strstr(gl_last_error(), bad[i].field)) {
            print_error("field %s: message '%s'\n", bad[i].field, gl_last_error());
            fail();
        }
        /* dis_flow validates too, before touching anything */
        float img[64] = { 0 };
        flow_field f;
        OK(flow_field_new(&f, 8, 8));
        assert_int_equal(dis_flow(img, img, 8, 8, &c, &f), GL_EINVAL);
        flow_field_free(&f);
    }
    assert_int_equal(dis_config_validate(NULL), GL_EINVAL);
}

/* ---- accuracy against independent references ---------------------------- */

/* A real photo moved by (su/4, sv/4) pixels: both frames are 4x4 box
 * averages of the photo, I1's blocks taken (su, sv) full-resolution pixels
 * up-left of I0's, so I1(x + (su, sv)/4) shows what I0(x) shows. */
static void make_subpixel_pair(const image *photo, int w, int h, int su, int sv, float *i0,
                               float *i1)
{
    const int ox = 40, oy = 40;
    assert_true(ox + 4 * w + 8 <= photo->width && oy + 4 * h + 8 <= photo->height);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float a = 0, b = 0;
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 4; i++) {
                    a += photo->data[(size_t)(oy + 4 * y + j) * photo->width + ox + 4 * x + i];
                    b += photo->data[(size_t)(oy + 4 * y + j - sv) * photo->width + ox + 4 * x +
                                     i - su];
                }
            i0[y * w + x] = a / 16;
            i1[y * w + x] = b / 16;
        }
}

static void test_dis_subpixel_translation(void **state)
{
    (void)state;
    image photo = { 0 };
    load_gray(TEXTURES "/astronaut.png", &photo);
    const int w = 96, h = 72;
    float *i0 = malloc(sizeof(float) * w * h), *i1 = malloc(sizeof(float) * w * h);
    assert_non_null(i0);
    assert_non_null(i1);
    make_subpixel_pair(&photo, w, h, 5, -3, i0, i1); /* (1.25, -0.75) px */
    flow_field f;
    OK(flow_field_new(&f, w, h));
    /* Limits about twice the EPEs measured with GCC 12 on x86-64 (0.120,
     * 0.061, 0.063, 0.060): the flow is found at 1/4 (1/2 for medium) of the
     * size and upsampled, so it is smooth but not exact. */
    static const struct {
        const char *preset;
        int rounding;
        double limit;
    } runs[] = { { "ultrafast", 1, 0.25 }, { "fast", 1, 0.12 }, { "medium", 1, 0.12 },
                 { "medium", 0, 0.12 } };
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        dis_config c;
        OK(dis_config_preset(&c, runs[r].preset));
        c.opencv_rounding = runs[r].rounding;
        OK(dis_flow(i0, i1, w, h, &c, &f));
        double epe = test_interior_epe(f.u, f.v, f.width, f.height, 1.25, -0.75, 8);
        print_message("astronaut 96x72 moved (1.25, -0.75) px, %s%s: interior EPE %.4f px\n",
                      runs[r].preset, runs[r].rounding ? "" : " (float pyramid)", epe);
        assert_true(epe < runs[r].limit);
    }
    flow_field_free(&f);
    free(i1);
    free(i0);
    image_release(&photo);
}

/* Odd sizes take the general paths: area averaging and bilinear
 * enlargement by factors other than 2 and 4, red-black rows of unequal
 * length in the refinement, patch grids that leave pixels past the last
 * patch. */
static void test_dis_odd_size(void **state)
{
    (void)state;
    image photo = { 0 };
    load_gray(TEXTURES "/astronaut.png", &photo);
    const int w = 101, h = 77;
    float *i0 = malloc(sizeof(float) * w * h), *i1 = malloc(sizeof(float) * w * h);
    assert_non_null(i0);
    assert_non_null(i1);
    make_subpixel_pair(&photo, w, h, -3, 2, i0, i1); /* (-0.75, 0.5) px */
    flow_field f;
    OK(flow_field_new(&f, w, h));
    for (int k = 0; k < 3; k++) {
        dis_config c;
        OK(dis_config_preset(&c, k == 1 ? "fast" : "medium"));
        if (k == 2) c.finest_scale = 0; /* refinement at 101x77 */
        OK(dis_flow(i0, i1, w, h, &c, &f));
        double epe = test_interior_epe(f.u, f.v, f.width, f.height, -0.75, 0.5, 8);
        print_message("astronaut 101x77 moved (-0.75, 0.5) px, %s, finest scale %d: EPE %.4f px\n",
                      k == 1 ? "fast" : "medium", c.finest_scale, epe);
        assert_true(epe < 0.15); /* measured 0.052, 0.073, 0.033 */
    }
    flow_field_free(&f);
    free(i1);
    free(i0);
    image_release(&photo);
}

/* H maps I0's pixel (x, y) to I1's: a small rotation and zoom, a shift and
 * a little perspective. */
static const double H_TRUE[9] = { 1.02 * 0.99939, -1.02 * 0.0349, 2.5,
                                  1.02 * 0.0349,  1.02 * 0.99939, -1.5,
                                  1.5e-4,         -1.0e-4,        1 };

static float bilinear(const image *p, double x, double y)
{
    int x0 = (int)floor(x), y0 = (int)floor(y);
    double fx = x - x0, fy = y - y0;
    const uint8_t *r0 = p->data + (size_t)y0 * p->width + x0, *r1 = r0 + p->width;
    return (float)((1 - fy) * ((1 - fx) * r0[0] + fx * r0[1]) +
                   fy * ((1 - fx) * r1[0] + fx * r1[1]));
}

/* I1(H(x)) = I0(x): I1 samples the photo at H^-1 of its pixels. */
static void make_homography_pair(const image *photo, int w, int h, float *i0, float *i1)
{
    const int ox = 150, oy = 120;
    double hi[9], det;
    /* the inverse by cofactors */
    const double *m = H_TRUE;
    hi[0] = m[4] * m[8] - m[5] * m[7];
    hi[1] = m[2] * m[7] - m[1] * m[8];
    hi[2] = m[1] * m[5] - m[2] * m[4];
    hi[3] = m[5] * m[6] - m[3] * m[8];
    hi[4] = m[0] * m[8] - m[2] * m[6];
    hi[5] = m[2] * m[3] - m[0] * m[5];
    hi[6] = m[3] * m[7] - m[4] * m[6];
    hi[7] = m[1] * m[6] - m[0] * m[7];
    hi[8] = m[0] * m[4] - m[1] * m[3];
    det = m[0] * hi[0] + m[1] * hi[3] + m[2] * hi[6];
    for (int k = 0; k < 9; k++) hi[k] /= det;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double xs, ys;
            OK(homography_apply(hi, x, y, &xs, &ys));
            i0[y * w + x] = photo->data[(size_t)(oy + y) * photo->width + ox + x];
            i1[y * w + x] = bilinear(photo, ox + xs, oy + ys);
        }
}

/* The homography pair of camera.png (128 x 96: I1(H x) = I0(x)), its
 * analytic flow, and an empty flow field of the same size. */
typedef struct {
    int w, h;
    float *i0, *i1;
    flow_field truth, f;
} homography_case;

static void homography_case_new(homography_case *hc)
{
    image photo = { 0 };
    load_gray(TEXTURES "/camera.png", &photo);
    hc->w = 128;
    hc->h = 96;
    hc->i0 = malloc(sizeof(float) * hc->w * hc->h);
    hc->i1 = malloc(sizeof(float) * hc->w * hc->h);
    assert_non_null(hc->i0);
    assert_non_null(hc->i1);
    make_homography_pair(&photo, hc->w, hc->h, hc->i0, hc->i1);
    image_release(&photo);
    OK(flow_field_new(&hc->f, hc->w, hc->h));
    OK(flow_field_new(&hc->truth, hc->w, hc->h));
    OK(homography_to_flow(H_TRUE, &hc->truth));
}

static void homography_case_free(homography_case *hc)
{
    flow_field_free(&hc->truth);
    flow_field_free(&hc->f);
    free(hc->i1);
    free(hc->i0);
}

static void test_dis_homography(void **state)
{
    (void)state;
    homography_case hc;
    homography_case_new(&hc);
    const int w = hc.w, h = hc.h;
    const float *i0 = hc.i0, *i1 = hc.i1;
    flow_field f = hc.f, truth = hc.truth, local;
    OK(flow_field_new(&local, w, h));
    dis_config c;
    OK(dis_config_preset(&c, "medium"));
    OK(dis_flow(i0, i1, w, h, &c, &f));
    /* EPE against the analytic flow, away from the edges where the
     * matches leave the image. The true flow spans 0.8 .. 5.8 px. */
    double s = 0, s0 = 0;
    long n = 0;
    for (int y = 8; y < h - 8; y++)
        for (int x = 8; x < w - 8; x++) {
            size_t i = (size_t)y * w + x;
            s += hypot(f.u[i] - truth.u[i], f.v[i] - truth.v[i]);
            s0 += hypot(truth.u[i], truth.v[i]);
            n++;
        }
    print_message("homography on camera.png 128x96, medium: EPE %.3f px (zero flow %.3f)\n",
                  s / n, s0 / n);
    assert_true(s / n < 0.25); /* measured 0.127 */
    /* "Flow minus homography" on DIS's flow finds H again (the baseline's
     * global motion), and what is left is small. */
    homography_ransac_config rc;
    homography_ransac_config_default(&rc);
    double hfit[9], err;
    OK(flow_minus_homography(&f, 4, &rc, 0, hfit, NULL, &local));
    OK(homography_corner_error(hfit, H_TRUE, w, h, &err));
    double res = test_interior_epe(local.u, local.v, local.width, local.height, 0, 0, 8);
    print_message("flow minus homography: corner error %.3f px, mean local motion %.3f px\n",
                  err, res);
    assert_true(err < 0.6); /* measured 0.305 */
    assert_true(res < 0.25); /* measured 0.126 */
    /* The same through the baseline's own API: DIS as its flow method, on
     * RGB frames (grey replicated; rounding to 8 bits changes I1 a little). */
    OK(flow_method_dis(i0, i1, w, h, NULL, &local)); /* NULL: the medium preset */
    assert_memory_equal(local.u, f.u, sizeof(float) * w * h);
    assert_memory_equal(local.v, f.v, sizeof(float) * w * h);
    uint8_t *ra = malloc((size_t)3 * w * h), *rb = malloc((size_t)3 * w * h);
    assert_non_null(ra);
    assert_non_null(rb);
    for (int i = 0; i < w * h; i++)
        for (int k = 0; k < 3; k++) {
            ra[3 * i + k] = (uint8_t)lrintf(i0[i]);
            rb[3 * i + k] = (uint8_t)lrintf(i1[i]);
        }
    flow_baseline_config bc;
    flow_baseline_config_default(&bc);
    bc.method = flow_method_dis;
    OK(flow_baseline_rgb24(ra, rb, w, h, &bc, hfit, NULL, NULL, NULL));
    OK(homography_corner_error(hfit, H_TRUE, w, h, &err));
    print_message("flow_baseline_rgb24 with flow_method_dis: corner error %.3f px\n", err);
    assert_true(err < 0.6); /* measured 0.286 */
    free(rb);
    free(ra);
    flow_field_free(&local);
    homography_case_free(&hc);
}

/* Mean |(u, v) - (tu, tv)| over the pixels at least `border` from the edges. */
static double test_interior_epe_to(const float *u, const float *v, const float *tu, const float *tv, int w, int h,
                                   int border)
{
    double s = 0;
    long n = 0;
    for (int y = border; y < h - border; y++)
        for (int x = border; x < w - border; x++) {
            size_t i = (size_t)y * w + x;
            s += hypot(u[i] - tu[i], v[i] - tv[i]);
            n++;
        }
    return s / n;
}

/* dis_refine_flow finishes a flow that is close: the homography pair of
 * test_dis_homography, started from the analytic flow off by (0.8, -0.6)
 * px everywhere. One call is one linearisation around the incoming flow
 * (5 fixed-point iterations): it removes part of the offset; called again
 * around its own result (as glocal's lme_finish does) it comes back near
 * the analytic flow. 0 iterations change nothing; bad input is refused by
 * name. */
static void test_dis_refine_flow(void **state)
{
    (void)state;
    homography_case hc;
    homography_case_new(&hc);
    const int w = hc.w, h = hc.h;
    const float *i0 = hc.i0, *i1 = hc.i1;
    flow_field f = hc.f, truth = hc.truth;
    dis_config c;
    OK(dis_config_preset(&c, "medium"));
    c.opencv_rounding = 0;
    double epe[3];
    const int calls[3] = { 1, 1, 10 };
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < w * h; i++) {
            f.u[i] = truth.u[i] + 0.8f;
            f.v[i] = truth.v[i] - 0.6f;
        }
        c.var_refine_iters = k ? 5 : 0;
        OK(dis_refine_flow(i0, i1, w, h, &c, calls[k], 1, &f));
        epe[k] = test_interior_epe_to(f.u, f.v, truth.u, truth.v, w, h, 8);
    }
    print_message("refinement from the analytic flow + (0.8, -0.6): EPE %.3f px -> %.3f (one call) -> %.3f px "
                  "(ten)\n", epe[0], epe[1], epe[2]);
    assert_true(fabs(epe[0] - 1.0) < 1e-4); /* 0 iterations: untouched */
    assert_true(epe[1] < 0.8);
    assert_true(epe[2] < 0.2);
    /* 4 px off: beyond one level's reach; a coarser level first gets there */
    double far[2];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < w * h; i++) {
            f.u[i] = truth.u[i] + 3.2f;
            f.v[i] = truth.v[i] - 2.4f;
        }
        OK(dis_refine_flow(i0, i1, w, h, &c, 10, k ? 3 : 1, &f));
        far[k] = test_interior_epe_to(f.u, f.v, truth.u, truth.v, w, h, 8);
    }
    print_message("from the analytic flow + (3.2, -2.4): EPE 4.000 px -> %.3f (one level) / %.3f px (three)\n",
                  far[0], far[1]);
    assert_true(far[1] < 0.5 * far[0]);
    assert_true(far[1] < 0.5);
    /* bad input */
    f.u[5] = NAN;
    c.var_refine_iters = 5;
    assert_int_equal(dis_refine_flow(i0, i1, w, h, &c, 1, 1, &f), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "flow at pixel 5"));
    f.u[5] = 0;
    assert_int_equal(dis_refine_flow(i0, i1, w - 1, h, &c, 1, 1, &f), GL_EINVAL);
    assert_int_equal(dis_refine_flow(i0, i1, w, h, &c, 1, 0, &f), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "levels"));
    assert_int_equal(dis_refine_flow(i0, i1, w, h, &c, -1, 1, &f), GL_EINVAL);
    c.var_sor_iters = 0;
    assert_int_equal(dis_refine_flow(i0, i1, w, h, &c, 1, 1, &f), GL_EINVAL);
    homography_case_free(&hc);
}

/* A 48x48 piece of one photo moving by (3, -2) px over another, static,
 * photo: the flow is (3, -2) on the piece and 0 well away from it. */
static void test_dis_moving_patch(void **state)
{
    (void)state;
    image bg = { 0 }, fg = { 0 };
    load_gray(TEXTURES "/camera.png", &bg);
    load_gray(TEXTURES "/astronaut.png", &fg);
    const int w = 128, h = 96, px = 40, py = 24, ps = 48, du = 3, dv = -2;
    float *i0 = malloc(sizeof(float) * w * h), *i1 = malloc(sizeof(float) * w * h);
    assert_non_null(i0);
    assert_non_null(i1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            i0[y * w + x] = i1[y * w + x] = bg.data[(size_t)(200 + y) * bg.width + 180 + x];
    for (int y = 0; y < ps; y++)
        for (int x = 0; x < ps; x++) {
            float v = fg.data[(size_t)(60 + y) * fg.width + 180 + x];
            i0[(py + y) * w + px + x] = v;
            i1[(py + dv + y) * w + px + du + x] = v;
        }
    flow_field f;
    OK(flow_field_new(&f, w, h));
    dis_config c;
    OK(dis_config_preset(&c, "medium"));
    OK(dis_flow(i0, i1, w, h, &c, &f));
    /* the piece, 8 px in from its edges */
    double su = 0, sv = 0;
    int n = 0;
    for (int y = py + 8; y < py + ps - 8; y++)
        for (int x = px + 8; x < px + ps - 8; x++) {
            su += f.u[y * w + x];
            sv += f.v[y * w + x];
            n++;
        }
    su /= n;
    sv /= n;
    /* the background, 12 px or more away from the piece and the edges */
    double sb = 0;
    int nb = 0;
    for (int y = 4; y < h - 4; y++)
        for (int x = 4; x < w - 4; x++)
            if (x < px - 12 || x >= px + ps + 12 || y < py - 12 || y >= py + ps + 12) {
                sb += hypot(f.u[y * w + x], f.v[y * w + x]);
                nb++;
            }
    sb /= nb;
    print_message("moving piece (3, -2): mean flow on it (%.3f, %.3f), background %.3f px\n", su,
                  sv, sb);
    assert_true(fabs(su - du) < 0.25 && fabs(sv - dv) < 0.25); /* measured within 0.07 */
    assert_true(sb < 0.1); /* measured 0.004 */
    flow_field_free(&f);
    free(i1);
    free(i0);
    image_release(&fg);
    image_release(&bg);
}

/* The shipped FlyingChairs-style pairs (tests/data/flow/generated: photo
 * cut-outs under their own affine motions, exact flow rendered by
 * scripts/flow-pairs, not by glocal): DIS must recover most of the motion. */
static void test_dis_generated_pairs(void **state)
{
    (void)state;
    /* measured EPE / zero-flow EPE: ultrafast 0.34, 0.29; medium 0.17, 0.15 */
    static const struct {
        const char *preset;
        double ratio;
    } runs[] = { { "ultrafast", 0.5 }, { "medium", 0.3 } };
    for (int p = 0; p < 2; p++) {
        char path[512];
        image a = { 0 }, b = { 0 };
        snprintf(path, sizeof path, GLOCAL_DATA_DIR "/flow/generated/000000%d-img0.ppm", p);
        OK(image_load(&a, path, 3));
        snprintf(path, sizeof path, GLOCAL_DATA_DIR "/flow/generated/000000%d-img1.ppm", p);
        OK(image_load(&b, path, 3));
        int w = a.width, h = a.height;
        float *g0 = malloc(sizeof(float) * w * h), *g1 = malloc(sizeof(float) * w * h);
        assert_non_null(g0);
        assert_non_null(g1);
        OK(flow_gray_from_rgb24(a.data, w, h, g0));
        OK(flow_gray_from_rgb24(b.data, w, h, g1));
        flow_field gt, f, zero;
        snprintf(path, sizeof path, GLOCAL_DATA_DIR "/flow/generated/000000%d-gt.flo", p);
        OK(flow_read_flo(path, &gt));
        assert_int_equal(gt.width, w);
        assert_int_equal(gt.height, h);
        OK(flow_field_new(&f, w, h));
        OK(flow_field_new(&zero, w, h));
        double epe0;
        OK(flow_epe(&zero, &gt, 0, &epe0, NULL));
        for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
            dis_config c;
            OK(dis_config_preset(&c, runs[r].preset));
            OK(dis_flow(g0, g1, w, h, &c, &f));
            double epe;
            OK(flow_epe(&f, &gt, 0, &epe, NULL));
            print_message("generated pair %d (%dx%d), %s: EPE %.3f px (zero flow %.3f)\n", p, w,
                          h, runs[r].preset, epe, epe0);
            assert_true(epe < runs[r].ratio * epe0);
        }
        flow_field_free(&zero);
        flow_field_free(&f);
        flow_field_free(&gt);
        free(g1);
        free(g0);
        image_release(&b);
        image_release(&a);
    }
}

/* ---- threads, bad input, allocation failures ------------------------------ */

static void test_dis_threads_identical(void **state)
{
    (void)state;
    image photo = { 0 };
    load_gray(TEXTURES "/astronaut.png", &photo);
    /* At full resolution (finest_scale 0) and this size every parallel pass
     * runs threaded: patches, densification, the refinement's system and
     * its SOR sweeps. */
    const int w = 512, h = 512;
    float *i0 = malloc(sizeof(float) * w * h), *i1 = malloc(sizeof(float) * w * h);
    assert_non_null(i0);
    assert_non_null(i1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            i0[y * w + x] = photo.data[(size_t)y * w + x];
            /* moved by (2, 1) with the edge replicated */
            int xs = x - 2 < 0 ? 0 : x - 2, ys = y - 1 < 0 ? 0 : y - 1;
            i1[y * w + x] = photo.data[(size_t)ys * w + xs];
        }
    flow_field a, b;
    OK(flow_field_new(&a, w, h));
    OK(flow_field_new(&b, w, h));
    dis_config c;
    OK(dis_config_preset(&c, "fast"));
    c.finest_scale = 0;
    c.var_refine_iters = 1;
    c.var_sor_iters = 2;
    int nt = gl_num_threads();
    gl_set_num_threads(1);
    OK(dis_flow(i0, i1, w, h, &c, &a));
    /* 2 threads, and 3 (blocks of uneven size) */
    for (int t = 2; t <= 3; t++) {
        gl_set_num_threads(t);
        OK(dis_flow(i0, i1, w, h, &c, &b));
        assert_memory_equal(a.u, b.u, sizeof(float) * w * h);
        assert_memory_equal(a.v, b.v, sizeof(float) * w * h);
    }
    gl_set_num_threads(nt);
    double epe = test_interior_epe(a.u, a.v, a.width, a.height, 2, 1, 16);
    print_message("astronaut 512x512 moved (2, 1) px, full resolution: EPE %.4f px\n", epe);
    assert_true(epe < 0.1);
    flow_field_free(&b);
    flow_field_free(&a);
    free(i1);
    free(i0);
    image_release(&photo);
}

static void test_dis_bad_input(void **state)
{
    (void)state;
    dis_config c;
    OK(dis_config_preset(&c, "medium"));
    float img[32 * 32];
    for (int i = 0; i < 32 * 32; i++) img[i] = 7;
    flow_field f;
    OK(flow_field_new(&f, 32, 32));
    assert_int_equal(dis_flow(NULL, img, 32, 32, &c, &f), GL_EINVAL);
    assert_int_equal(dis_flow(img, NULL, 32, 32, &c, &f), GL_EINVAL);
    assert_int_equal(dis_flow(img, img, 32, 32, &c, NULL), GL_EINVAL);
    assert_int_equal(dis_flow(img, img, 32, 32, NULL, &f), GL_EINVAL);
    assert_int_equal(dis_flow(img, img, 32, 24, &c, &f), GL_EINVAL); /* size mismatch */
    assert_non_null(strstr(gl_last_error(), "32x24"));
    assert_int_equal(dis_flow(img, img, 0, 32, &c, &f), GL_EINVAL);
    /* 32x32 at finest scale 2 is 8x8, one patch; at 3 it would be 4x4 */
    OK(dis_config_preset(&c, "fast"));
    OK(dis_flow(img, img, 32, 32, &c, &f));
    c.finest_scale = 3;
    assert_int_equal(dis_flow(img, img, 32, 32, &c, &f), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "patch_size"));
    OK(dis_config_preset(&c, "medium"));
    img[100] = NAN;
    assert_int_equal(dis_flow(img, img, 32, 32, &c, &f), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "finite"));
    /* Constant images: nothing to match, no crash, and the flow is zero
     * (no gradient moves a patch; the refinement has no data to follow). */
    img[100] = 7;
    for (int i = 0; i < 32 * 32; i++) f.u[i] = f.v[i] = 99;
    OK(dis_flow(img, img, 32, 32, &c, &f));
    for (int i = 0; i < 32 * 32; i++) assert_true(f.u[i] == 0 && f.v[i] == 0);
    flow_field_free(&f);
}

/* Every allocation DIS makes can fail: it reports GL_ENOMEM and frees the
 * rest (ASan's leak check sees the leaks). */
static void test_dis_alloc_failures(void **state)
{
    (void)state;
    const int w = 40, h = 36;
    float i0[40 * 36], i1[40 * 36];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            i0[y * w + x] = (float)(128 + 60 * sin(0.4 * x) * cos(0.3 * y));
            i1[y * w + x] = (float)(128 + 60 * sin(0.4 * (x - 1)) * cos(0.3 * y));
        }
    flow_field f;
    OK(flow_field_new(&f, w, h));
    dis_config c;
    OK(dis_config_preset(&c, "medium"));
    int nt = gl_num_threads();
    gl_set_num_threads(1); /* the failure hook is not thread-safe */
    int failures = 0;
    for (long n = 0; n < 200; n++) {
        gl_alloc_fail_after(n);
        int rc = dis_flow(i0, i1, w, h, &c, &f);
        gl_alloc_fail_after(-1);
        if (rc == 0) break;
        assert_int_equal(rc, GL_ENOMEM);
        failures++;
    }
    gl_set_num_threads(nt);
    assert_true(failures >= 5);
    OK(dis_flow(i0, i1, w, h, &c, &f));
    flow_field_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dis_presets),
        cmocka_unit_test(test_dis_validate),
        cmocka_unit_test(test_dis_subpixel_translation),
        cmocka_unit_test(test_dis_odd_size),
        cmocka_unit_test(test_dis_homography),
        cmocka_unit_test(test_dis_refine_flow),
        cmocka_unit_test(test_dis_moving_patch),
        cmocka_unit_test(test_dis_generated_pairs),
        cmocka_unit_test(test_dis_threads_identical),
        cmocka_unit_test(test_dis_bad_input),
        cmocka_unit_test(test_dis_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
