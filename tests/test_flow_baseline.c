/* test_flow_baseline.c — motion/flow_baseline.c: flow of RGB frames through
 * a pluggable flow method, and the flow-minus-homography baseline built on
 * it. Checked against a stand-in method with a known answer (the grey levels
 * it must be given, the homography and moving block it returns), TV-L1 and
 * DIS on a known shift, and tvl1_flow / dis_flow on grey levels computed here. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "motion/flow.h"
#include "tests/testutil.h"

static const double H_TRUE[9] = { 1.02, 0.03, 4.5, -0.02, 0.98, -3.2, 2e-4, -1e-4, 1 };

/* A stand-in flow method for flow_baseline_rgb24: checks that it is handed
 * the BT.601 grey levels of the RGB frames (computed here from the weights)
 * and its own cfg, then answers the flow of a known homography plus a moving
 * block. The baseline must then find that homography and that block. */
typedef struct {
    const uint8_t *a, *b;
    int calls, grey_ok;
} fake_method_cfg;

static int fake_method(const float *i0, const float *i1, int w, int h, const void *cfg, flow_field *f)
{
    fake_method_cfg *c = (fake_method_cfg *)cfg;
    c->calls++;
    c->grey_ok = 1;
    for (int i = 0; i < w * h; i++) {
        double g0 = 0.299 * c->a[3 * i] + 0.587 * c->a[3 * i + 1] + 0.114 * c->a[3 * i + 2];
        double g1 = 0.299 * c->b[3 * i] + 0.587 * c->b[3 * i + 1] + 0.114 * c->b[3 * i + 2];
        if (fabs(i0[i] - g0) > 1e-3 || fabs(i1[i] - g1) > 1e-3) c->grey_ok = 0;
    }
    int rc = homography_to_flow(H_TRUE, f);
    for (int y = 20; y < 40; y++)
        for (int x = 30; x < 60; x++) {
            f->u[y * w + x] += 6;
            f->v[y * w + x] -= 2;
        }
    return rc;
}

static void test_flow_baseline(void **state)
{
    (void)state;
    const int w = 96, h = 72;
    uint8_t *a = malloc((size_t)w * h * 3), *b = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) {
        a[i] = (uint8_t)(i * 37 % 251);
        b[i] = (uint8_t)(i * 91 % 241);
    }
    fake_method_cfg mc = { a, b, 0, 0 };
    flow_baseline_config c;
    flow_baseline_config_default(&c);
    assert_int_equal(c.step, 2);
    assert_int_equal(c.zero_inliers, 1);
    assert_null(c.method); /* TV-L1 */
    c.method = fake_method;
    c.method_cfg = &mc;
    flow_field f, g, l;
    OK(flow_field_new(&f, w, h));
    OK(flow_field_new(&g, w, h));
    OK(flow_field_new(&l, w, h));
    double hfit[9], err;
    OK(flow_baseline_rgb24(a, b, w, h, &c, hfit, &f, &g, &l));
    assert_int_equal(mc.calls, 1);
    assert_true(mc.grey_ok);
    OK(homography_corner_error(hfit, H_TRUE, w, h, &err));
    assert_true(err < 1e-3);
    assert_double_equal(f.u[30 * w + 45] - g.u[30 * w + 45], 6, 1e-3);
    assert_double_equal(l.u[30 * w + 45], 6, 1e-3);
    assert_double_equal(l.v[30 * w + 45], -2, 1e-3);
    assert_true(l.u[5 * w + 5] == 0 && l.v[5 * w + 5] == 0); /* an inlier: exactly 0 */
    /* every output optional: the homography alone */
    double h2[9];
    OK(flow_baseline_rgb24(a, b, w, h, &c, h2, NULL, NULL, NULL));
    assert_memory_equal(h2, hfit, sizeof h2);
    /* TV-L1 (the default method) on a translated texture: the fitted
     * homography is that translation */
    float *g0 = malloc(sizeof(float) * w * h), *g1 = malloc(sizeof(float) * w * h);
    test_make_translation(g0, g1, w, h, 2.5, -1.5);
    for (int i = 0; i < w * h; i++)
        for (int k = 0; k < 3; k++) {
            a[3 * i + k] = (uint8_t)lrintf(g0[i]);
            b[3 * i + k] = (uint8_t)lrintf(g1[i]);
        }
    flow_baseline_config_default(&c);
    OK(flow_baseline_rgb24(a, b, w, h, &c, hfit, NULL, NULL, NULL));
    const double shift[9] = { 1, 0, 2.5, 0, 1, -1.5, 0, 0, 1 };
    OK(homography_corner_error(hfit, shift, w, h, &err));
    print_message("TV-L1 minus homography on a (2.5, -1.5) shift: corner error %.4f px\n", err);
    assert_true(err < 0.1);
    /* and with DIS (medium) as the method: the same translation, and a local
     * flow of about 0 away from the borders */
    c.method = flow_method_dis;
    OK(flow_baseline_rgb24(a, b, w, h, &c, hfit, NULL, NULL, &l));
    OK(homography_corner_error(hfit, shift, w, h, &err));
    double lsum = 0;
    int ln = 0;
    for (int y = 8; y < h - 8; y++)
        for (int x = 8; x < w - 8; x++, ln++) lsum += hypot(l.u[y * w + x], l.v[y * w + x]);
    print_message("DIS minus homography on a (2.5, -1.5) shift: corner error %.4f px, local %.4f px\n", err,
                  lsum / ln);
    assert_true(err < 0.1);
    assert_true(lsum / ln < 0.1);
    /* flow_from_rgb24 with the default method is TV-L1 on the grey frames */
    tvl1_config tc;
    tvl1_config_default(&tc);
    for (int i = 0; i < w * h; i++) {
        g0[i] = 0.299f * a[3 * i] + 0.587f * a[3 * i + 1] + 0.114f * a[3 * i + 2];
        g1[i] = 0.299f * b[3 * i] + 0.587f * b[3 * i + 1] + 0.114f * b[3 * i + 2];
    }
    OK(tvl1_flow(g0, g1, w, h, &tc, &g));
    OK(flow_from_rgb24(a, b, w, h, NULL, NULL, &f));
    assert_memory_equal(f.u, g.u, sizeof(float) * w * h);
    assert_memory_equal(f.v, g.v, sizeof(float) * w * h);
    /* ... and with flow_method_dis, dis_flow with the medium preset */
    dis_config dc;
    OK(dis_config_preset(&dc, "medium"));
    OK(dis_flow(g0, g1, w, h, &dc, &g));
    OK(flow_from_rgb24(a, b, w, h, flow_method_dis, NULL, &f));
    assert_memory_equal(f.u, g.u, sizeof(float) * w * h);
    assert_memory_equal(f.v, g.v, sizeof(float) * w * h);
    /* a field of another size is refused, naming both sizes */
    flow_field_free(&l);
    OK(flow_field_new(&l, w / 2, h));
    assert_int_equal(flow_from_rgb24(a, b, w, h, NULL, NULL, &l), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "48x72"));
    free(g0);
    free(g1);
    flow_field_free(&l);
    flow_field_free(&g);
    flow_field_free(&f);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flow_baseline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
