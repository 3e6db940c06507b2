/* test_synth.c — the synthetic benchmark's rendering (datasets/synth.h)
 * against independent truth: frames must agree with the ground-truth flow
 * photometrically, the homography with the global flow at the corners, and
 * the object motion with the class by its analytic signature (direction,
 * curl, divergence); configs, textures and allocation failures.
 * test_synth_write.c has the written dataset. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "datasets/synth.h"
#include "tests/synth_testutil.h"

/* ---- config -------------------------------------------------------------- */

static void test_config_validate(void **state)
{
    (void)state;
    synth_config c = synth_config_default();
    assert_int_equal(synth_config_validate(&c), 0);
    c.width = 33;
    assert_int_equal(synth_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "width"));
    c = synth_config_default();
    c.frames = 1;
    assert_int_equal(synth_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "frames"));
    c = synth_config_default();
    c.classes = SYNTH_MAX_CLASSES + 1;
    assert_int_equal(synth_config_validate(&c), GL_EINVAL);
    c = synth_config_default();
    c.camera = -1;
    assert_int_equal(synth_config_validate(&c), GL_EINVAL);
    synth *s = NULL;
    c = synth_config_default();
    c.textures = "/nonexistent/glocal/textures";
    assert_true(synth_new(&c, &s) < 0);
    assert_null(s);
    assert_non_null(strstr(gl_last_error(), "/nonexistent/glocal/textures"));
}

/* ---- raw frames against the ground truth ---------------------------------- */

/* Renders one clip and adds its warp / no-warp errors (sums over pairs of the
 * per-pair means) and the worst per-pair warp error. */
static void check_raw_clip(const synth *s, int label, uint64_t seed, double *sum_warp,
                           double *sum_none, double *worst_err)
{
    synth_clip *c = NULL;
    assert_int_equal(synth_clip_render(s, label, seed, seed + 1, 0, &c), 0);
    int W = c->width, H = c->height;
    size_t hw = (size_t)W * H;
    for (int t = 0; t + 2 < c->frames; t++) {
        double ew, en;
        long n;
        warp_errors(c->rgb + 3 * hw * t, c->rgb + 3 * hw * (t + 1), c->global_flow + 2 * hw * t,
                    c->local_flow + 2 * hw * t, c->mask + hw * t, c->mask + hw * (t + 1), W, H,
                    0, &ew, &en, &n);
        assert_true(n > (long)hw / 3);
        *sum_warp += ew;
        *sum_none += en;
        if (ew > *worst_err) *worst_err = ew;
    }
    synth_clip_free(&c);
}

static void test_raw_frames_match_flow(void **state)
{
    (void)state;
    synth_config cfg = tiny_config(48, 48, 6, 1.0);
    synth *s = NULL;
    assert_int_equal(synth_new(&cfg, &s), 0);
    double sw = 0, sn = 0, worst = 0;
    for (int label = 0; label < SYNTH_MAX_CLASSES; label++)
        check_raw_clip(s, label, 100 + (uint64_t)label, &sw, &sn, &worst);
    print_message("raw frames, procedural: warp error %.3f of no-warp, worst pair %.2f/255\n",
                  sw / sn, worst);
    assert_true(sw < 0.2 * sn);
    assert_true(worst < 2.5);
    synth_free(&s);
}

static void test_photo_textures(void **state)
{
    (void)state;
    synth_config cfg = tiny_config(48, 48, 6, 1.0);
    cfg.textures = GLOCAL_DATA_DIR "/textures/cc0";
    synth *s = NULL;
    assert_int_equal(synth_new(&cfg, &s), 0);
    double sw = 0, sn = 0, worst = 0;
    for (int label = 0; label < 4; label++)
        check_raw_clip(s, 3 * label, 200 + (uint64_t)label, &sw, &sn, &worst);
    print_message("raw frames, photos: warp error %.3f of no-warp, worst pair %.2f/255\n",
                  sw / sn, worst);
    assert_true(sw < 0.25 * sn);
    assert_true(worst < 5.0);
    synth_free(&s);
}

/* ---- the camera ------------------------------------------------------------ */

static void test_homography_and_global_flow(void **state)
{
    (void)state;
    const double levels[3] = { 0.0, 0.5, 1.0 };
    for (int lv = 0; lv < 3; lv++) {
        synth_config cfg = tiny_config(32, 32, 8, levels[lv]);
        synth *s = NULL;
        assert_int_equal(synth_new(&cfg, &s), 0);
        synth_clip *c = NULL;
        assert_int_equal(synth_clip_render(s, SYNTH_CIRCLE, 5, 6, 0, &c), 0);
        int W = c->width, H = c->height;
        size_t hw = (size_t)W * H;
        double expect = levels[lv] * 32 / 16.0, dmax = 0;
        for (int t = 0; t + 1 < c->frames; t++) {
            const double *h = c->homography + 9 * t;
            assert_true(fabs(h[8] - 1.0) < 1e-12);
            /* corner pixels: H p - p equals the dense global flow there */
            const int cx[4] = { 0, W - 1, 0, W - 1 }, cy[4] = { 0, 0, H - 1, H - 1 };
            for (int k = 0; k < 4; k++) {
                double w = h[6] * cx[k] + h[7] * cy[k] + h[8];
                double u = (h[0] * cx[k] + h[1] * cy[k] + h[2]) / w - cx[k];
                double v = (h[3] * cx[k] + h[4] * cy[k] + h[5]) / w - cy[k];
                size_t i = (size_t)cy[k] * W + cx[k];
                assert_true(fabs(u - c->global_flow[2 * hw * t + i]) < 1e-4);
                assert_true(fabs(v - c->global_flow[2 * hw * t + hw + i]) < 1e-4);
            }
            /* image corners (pixel edges): displacement bounded by the level */
            const double ex[4] = { -0.5, W - 0.5, -0.5, W - 0.5 };
            const double ey[4] = { -0.5, -0.5, H - 0.5, H - 0.5 };
            for (int k = 0; k < 4; k++) {
                double w = h[6] * ex[k] + h[7] * ey[k] + h[8];
                double d = hypot((h[0] * ex[k] + h[1] * ey[k] + h[2]) / w - ex[k],
                                 (h[3] * ex[k] + h[4] * ey[k] + h[5]) / w - ey[k]);
                if (d > dmax) dmax = d;
            }
        }
        /* strong = S/16 per frame at its largest, mild half, none zero */
        assert_true(fabs(dmax - expect) < 1e-6 + 1e-6 * expect);
        if (levels[lv] == 0.0)
            for (size_t i = 0; i < 2 * hw * (c->frames - 1); i++)
                assert_true(c->global_flow[i] == 0.0f);
        synth_clip_free(&c);
        synth_free(&s);
    }
}

/* ---- object motion = class ------------------------------------------------ */

/* Mean local flow, curl and divergence over object pixels of pair t (central
 * differences where all 4 neighbours are on the same object). */
static void local_stats(const synth_clip *c, int t, double *mx, double *my, double *curl,
                        double *div, long *n)
{
    int W = c->width, H = c->height;
    size_t hw = (size_t)W * H;
    const float *lx = c->local_flow + 2 * hw * t, *ly = lx + hw;
    const uint8_t *m = c->mask + hw * t;
    double sx = 0, sy = 0, sc = 0, sd = 0;
    long k = 0, kd = 0;
    for (int y = 1; y < H - 1; y++)
        for (int x = 1; x < W - 1; x++) {
            size_t i = (size_t)y * W + x;
            if (!m[i]) {
                assert_true(lx[i] == 0.0f && ly[i] == 0.0f);
                continue;
            }
            sx += lx[i];
            sy += ly[i];
            k++;
            if (m[i - 1] != m[i] || m[i + 1] != m[i] || m[i - W] != m[i] || m[i + W] != m[i])
                continue;
            double dvx = 0.5 * (ly[i + 1] - ly[i - 1]), duy = 0.5 * (lx[i + W] - lx[i - W]);
            double dux = 0.5 * (lx[i + 1] - lx[i - 1]), dvy = 0.5 * (ly[i + W] - ly[i - W]);
            sc += dvx - duy;
            sd += dux + dvy;
            kd++;
        }
    *mx = k ? sx / k : 0;
    *my = k ? sy / k : 0;
    *curl = kd ? sc / kd : 0;
    *div = kd ? sd / kd : 0;
    *n = k;
}

static void test_local_flow_is_the_class(void **state)
{
    (void)state;
    synth_config cfg = tiny_config(48, 48, 4, 1.0);
    cfg.supersample = 1; /* only the ground truth is looked at */
    synth *s = NULL;
    assert_int_equal(synth_new(&cfg, &s), 0);
    for (uint64_t seed = 1; seed <= 3; seed++)
        for (int label = 0; label < SYNTH_MAX_CLASSES; label++) {
            synth_clip *c = NULL;
            assert_int_equal(synth_clip_render(s, label, seed, seed * 31, 0, &c), 0);
            double mx, my, curl, div;
            long n;
            local_stats(c, 1, &mx, &my, &curl, &div, &n);
            if (n < 20) { /* object out of view: nothing to judge */
                synth_clip_free(&c);
                continue;
            }
            /* camera zoom/rotation changes the object's image scale only a
             * little, so the signs are those of the world motion */
            switch (label) {
            case SYNTH_TRANSLATE_RIGHT: assert_true(mx > 0.3 && fabs(my) < mx); break;
            case SYNTH_TRANSLATE_LEFT: assert_true(mx < -0.3 && fabs(my) < -mx); break;
            case SYNTH_TRANSLATE_UP: assert_true(my < -0.3 && fabs(mx) < -my); break;
            case SYNTH_TRANSLATE_DOWN: assert_true(my > 0.3 && fabs(mx) < my); break;
            case SYNTH_ROTATE_CW: assert_true(curl > 0.05); break;  /* y down: cw = +curl */
            case SYNTH_ROTATE_CCW: assert_true(curl < -0.05); break;
            case SYNTH_GROW: assert_true(div > 0.03); break;
            case SYNTH_SHRINK: assert_true(div < -0.03); break;
            case SYNTH_STILL: /* the object moves with the scene: local flow ~ 0 */
                assert_true(fabs(mx) < 1e-3 && fabs(my) < 1e-3);
                break;
            default: break;
            }
            synth_clip_free(&c);
        }
    synth_free(&s);
}

static void test_pair_render(void **state)
{
    (void)state;
    synth_config cfg = tiny_config(32, 32, 24, 0.5);
    cfg.classes = 10;
    synth *s = NULL;
    assert_int_equal(synth_new(&cfg, &s), 0);
    synth_clip *p = NULL, *q = NULL;
    int seen[SYNTH_MAX_CLASSES] = { 0 };
    for (uint64_t seed = 0; seed < 40; seed++) {
        assert_int_equal(synth_pair_render(s, seed, &p), 0);
        assert_int_equal(p->frames, 2);
        assert_true(p->label >= 0 && p->label < 10);
        seen[p->label] = 1;
        if (seed == 0) {
            assert_int_equal(synth_pair_render(s, seed, &q), 0);
            assert_int_equal(q->label, p->label);
            assert_memory_equal(q->rgb, p->rgb, 2 * 32 * 32 * 3);
            assert_memory_equal(q->local_flow, p->local_flow, sizeof(float) * 2 * 32 * 32);
            synth_clip_free(&q);
        }
        synth_clip_free(&p);
    }
    int distinct = 0;
    for (int i = 0; i < SYNTH_MAX_CLASSES; i++) distinct += seen[i];
    assert_true(distinct >= 6);
    assert_int_equal(synth_clip_render(s, SYNTH_MAX_CLASSES, 1, 1, 0, &p), GL_EINVAL);
    assert_null(p);
    synth_free(&s);
}


/* Every allocation failure is reported and cleaned up (ASan checks the
 * leaks): fail the n-th gl_ allocation for n = 0, 1, ... until all succeed. */
static void test_allocation_failures(void **state)
{
    (void)state;
    synth_config cfg = tiny_config(16, 16, 3, 1.0);
    cfg.classes = 2;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/allocfail", tmp_root);
    int done = 0;
    for (long n = 0; n < 2000 && !done; n++) {
        synth *s = NULL;
        synth_clip *c = NULL;
        gl_alloc_fail_after(n);
        int rc = synth_new(&cfg, &s);
        if (rc == 0) rc = synth_clip_render(s, SYNTH_CIRCLE, 1, 2, 0, &c);
        if (rc == 0) {
            synth_dataset_options opt = { .out_dir = dir, .clips_per_class = 2 };
            rc = synth_dataset_write(s, &opt);
        }
        gl_alloc_fail_after(-1);
        if (rc == 0) {
            done = 1;
            assert_non_null(c);
        } else {
            assert_true(rc < 0);
            assert_true(gl_last_error()[0] != 0);
        }
        synth_clip_free(&c);
        synth_free(&s);
        assert_null(s);
    }
    assert_true(done);
}

static void test_bad_texture_folder(void **state)
{
    (void)state;
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/badtex", tmp_root);
    assert_int_equal(gl_mkdirs(dir), 0);
    synth_config cfg = tiny_config(32, 32, 4, 1.0);
    cfg.textures = dir;
    synth *s = NULL;
    assert_int_equal(synth_new(&cfg, &s), GL_ENOTFOUND); /* empty */
    snprintf(path, sizeof path, "%s/broken.png", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("not an image", f);
    fclose(f);
    assert_true(synth_new(&cfg, &s) < 0);
    assert_null(s);
    assert_non_null(strstr(gl_last_error(), "broken.png"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_validate),
        cmocka_unit_test(test_raw_frames_match_flow),
        cmocka_unit_test(test_photo_textures),
        cmocka_unit_test(test_homography_and_global_flow),
        cmocka_unit_test(test_local_flow_is_the_class),
        cmocka_unit_test(test_pair_render),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_bad_texture_folder),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
