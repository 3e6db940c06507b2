/* test_libglocal.c — experiments/libglocal.c, the public C API (installed as
 * <glocal/glocal.h>), through its own names only where it can: errors and
 * their thread-local message, flows and motion on frames with a known
 * translation (plane order, units, homography direction), the video reader
 * on the shipped clip (whose size, count and rate the data README gives), and
 * a motion cache written here with known values. tests/check_install.sh
 * checks the installed library itself (exports, pkg-config, CMake package). */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "datasets/cache.h"
#include "experiments/libglocal.h"
#include "tests/testutil.h"

#define VTEST GLOCAL_DATA_DIR "/video/vtest_50.avi"
#define MODEL GLOCAL_SOURCE_DIR "/results/motion/64/glocal.h5"

/* A smooth band-limited texture, evaluated anywhere: shifting it is exact
 * (up to the 8-bit rounding). */
static double texture(double x, double y)
{
    return 128 + 40 * sin(0.31 * x + 0.17 * y) + 30 * cos(0.13 * x - 0.29 * y) +
           20 * sin(0.07 * x + 0.11 * y + 1.0) + 15 * cos(0.23 * x + 0.37 * y + 0.5);
}

/* RGB24 frames a(x, y) = T(x, y), b(x, y) = T(x - du, y - dv): the content
 * at p in a is at p + (du, dv) in b, so the forward flow is (du, dv) and the
 * homography a -> b a translation by (du, dv). Grey in all three channels. */
static void make_pair(uint8_t *a, uint8_t *b, int w, int h, double du, double dv)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                a[3 * (y * w + x) + c] = (uint8_t)lrint(texture(x, y));
                b[3 * (y * w + x) + c] = (uint8_t)lrint(texture(x - du, y - dv));
            }
}

/* Mean of plane `p` of a planar [2][h][w] field over the pixels at least
 * `m` from the border (where the content of a is also in b). */
static double interior_mean(const float *f, int p, int w, int h, int m)
{
    double s = 0;
    long n = 0;
    for (int y = m; y < h - m; y++)
        for (int x = m; x < w - m; x++, n++) s += f[(size_t)p * w * h + (size_t)y * w + x];
    return s / n;
}

/* Runs first: the library knows nothing yet. */
static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(glocal_version(), GLOCAL_VERSION);
    assert_string_equal(glocal_strerror(GLOCAL_ENOTFOUND), gl_strerror(GL_ENOTFOUND));
    glocal_estimator *e = (glocal_estimator *)&e; /* must come back NULL */
    assert_int_equal(glocal_estimator_open(&e, NULL, 0), GLOCAL_EINVAL);
    assert_null(e);
    assert_non_null(strstr(glocal_last_error(), "glocal_init"));
    assert_int_equal(glocal_init(-1, NULL), GLOCAL_EINVAL);
    assert_int_equal(glocal_init(1, "tpu"), GLOCAL_EINVAL);
    assert_non_null(strstr(glocal_last_error(), "tpu"));
    OK(glocal_init(2, "cpu"));
    assert_int_equal(glocal_estimator_open(&e, NULL, GLOCAL_NO_REFINE), GLOCAL_EINVAL);
    assert_int_equal(glocal_estimator_open(&e, NULL, 0x80), GLOCAL_EINVAL);
    assert_int_equal(glocal_estimator_open(&e, GLOCAL_DATA_DIR "/none.h5", 0), GLOCAL_EIO);
    assert_non_null(strstr(glocal_last_error(), "none.h5"));
    glocal_estimator_close(&e);
    glocal_estimator_close(NULL);
}

static void *fail_in_thread(void *arg)
{
    glocal_video *v = NULL;
    *(int *)arg = glocal_video_open(&v, "/nonexistent/thread.avi", 0, 0);
    return strstr(glocal_last_error(), "thread.avi") ? (void *)1 : NULL;
}

/* The message belongs to the thread whose call failed. */
static void test_error_is_per_thread(void **state)
{
    (void)state;
    glocal_video *v = NULL;
    assert_true(glocal_video_open(&v, "/nonexistent/main.avi", 0, 0) < 0);
    assert_null(v);
    assert_non_null(strstr(glocal_last_error(), "main.avi"));
    pthread_t t;
    int rc = 0;
    void *named = NULL;
    assert_int_equal(pthread_create(&t, NULL, fail_in_thread, &rc), 0);
    pthread_join(t, &named);
    assert_true(rc < 0);
    assert_non_null(named);
    assert_non_null(strstr(glocal_last_error(), "main.avi"));
    assert_null(strstr(glocal_last_error(), "thread.avi"));
}

/* Both flows on a known translation: plane 0 is u (x), plane 1 is v (y), in
 * pixels, forward. The baseline's homography is that translation and the
 * local flow is what is left: nothing. */
static void test_flows(void **state)
{
    (void)state;
    const int w = 80, h = 60, m = 8;
    const double du = 2.0, dv = -1.0;
    uint8_t *a = malloc((size_t)w * h * 3), *b = malloc((size_t)w * h * 3);
    float *f = malloc(sizeof(float) * 2 * w * h), *g = malloc(sizeof(float) * 2 * w * h);
    float *l = malloc(sizeof(float) * 2 * w * h);
    make_pair(a, b, w, h, du, dv);
    const glocal_flow_method methods[2] = { GLOCAL_FLOW_TVL1, GLOCAL_FLOW_DIS };
    for (int k = 0; k < 2; k++) {
        OK(glocal_flow(methods[k], a, b, w, h, f));
        assert_double_equal(interior_mean(f, 0, w, h, m), du, 0.15);
        assert_double_equal(interior_mean(f, 1, w, h, m), dv, 0.15);
        double H[9];
        OK(glocal_flow_baseline(methods[k], a, b, w, h, H, g, l, NULL));
        assert_double_equal(H[2] / H[8], du, 0.15);
        assert_double_equal(H[5] / H[8], dv, 0.15);
        assert_double_equal(H[0] / H[8], 1, 0.01);
        assert_double_equal(H[4] / H[8], 1, 0.01);
        /* the global flow is H's: at the centre, the translation */
        assert_double_equal(g[(h / 2) * w + w / 2], du, 0.15);
        assert_double_equal(g[w * h + (h / 2) * w + w / 2], dv, 0.15);
        assert_double_equal(interior_mean(l, 0, w, h, m), 0, 0.05);
        assert_double_equal(interior_mean(l, 1, w, h, m), 0, 0.05);
        /* every output may be left out */
        OK(glocal_flow_baseline(methods[k], a, b, w, h, NULL, NULL, NULL, NULL));
    }
    assert_int_equal(glocal_flow((glocal_flow_method)7, a, b, w, h, f), GLOCAL_EINVAL);
    assert_int_equal(glocal_flow(GLOCAL_FLOW_TVL1, a, NULL, w, h, f), GLOCAL_EINVAL);
    assert_int_equal(glocal_flow(GLOCAL_FLOW_TVL1, a, b, 3, 3, f), GLOCAL_EINVAL);
    assert_int_equal(glocal_flow_baseline(GLOCAL_FLOW_DIS, a, b, 0, h, NULL, NULL, NULL, NULL),
                     GLOCAL_EINVAL);
    free(l), free(g), free(f), free(b), free(a);
}

/* A batch of two pairs, the translation and a frame with itself, at a size
 * the model was not trained at (64 x 64): the homography is the translation,
 * then the identity; the global flow is the homography's; mixed = global +
 * local. With the shipped model, and with none (the robust refinement from
 * the identity). */
static void test_estimate(void **state)
{
    (void)state;
    const int w = 96, h = 72, m = 8;
    const size_t hw = (size_t)w * h;
    const double du = 1.5, dv = 1.0;
    uint8_t *a = malloc(hw * 3), *b = malloc(hw * 3);
    float *g = malloc(sizeof(float) * 2 * 2 * hw), *l = malloc(sizeof(float) * 2 * 2 * hw);
    float *mx = malloc(sizeof(float) * 2 * 2 * hw), *mask = malloc(sizeof(float) * 2 * hw);
    make_pair(a, b, w, h, du, dv);
    const uint8_t *pa[2] = { a, a }, *pb[2] = { b, a };
    for (int with_model = 0; with_model < 2; with_model++) {
        glocal_estimator *e = NULL;
        OK(glocal_estimator_open(&e, with_model ? MODEL : NULL, 0));
        assert_int_equal(glocal_estimator_size(e), with_model ? 64 : 0);
        double H[18];
        OK(glocal_estimate(e, pa, pb, 2, w, h, H, g, l, mx, mask));
        assert_double_equal(H[2] / H[8], du, 0.1);
        assert_double_equal(H[5] / H[8], dv, 0.1);
        for (int i = 0; i < 9; i++) assert_double_equal(H[9 + i] / H[17], i % 4 == 0, 1e-3);
        assert_double_equal(interior_mean(g, 0, w, h, m), du, 0.1);
        assert_double_equal(interior_mean(g, 1, w, h, m), dv, 0.1);
        assert_double_equal(interior_mean(g + 2 * hw, 0, w, h, m), 0, 1e-3);
        for (size_t p = 0; p < 2 * 2 * hw; p++) assert_true(mx[p] == g[p] + l[p]);
        for (size_t p = 0; p < 2 * hw; p++) assert_true(mask[p] >= 0 && mask[p] <= 1);
        /* a pure translation moves nothing on top of the camera */
        assert_double_equal(interior_mean(l, 0, w, h, m), 0, 0.05);
        assert_double_equal(interior_mean(l, 1, w, h, m), 0, 0.05);
        /* only the homography */
        OK(glocal_estimate(e, pa, pb, 1, w, h, H, NULL, NULL, NULL, NULL));
        assert_double_equal(H[2] / H[8], du, 0.1);
        assert_int_equal(glocal_estimate(e, pa, pb, 0, w, h, H, NULL, NULL, NULL, NULL), GLOCAL_EINVAL);
        assert_int_equal(glocal_estimate(e, pa, pb, 1, 4, 4, H, NULL, NULL, NULL, NULL), GLOCAL_EINVAL);
        glocal_estimator_close(&e);
        assert_null(e);
    }
    free(mask), free(mx), free(l), free(g), free(b), free(a);
}

/* video/vtest_50.avi: 768x576, 50 frames at 10 fps (tests/data/README.md). */
static void test_video(void **state)
{
    (void)state;
    glocal_video *v = NULL;
    int w, h;
    long frames;
    double fps;
    OK(glocal_video_open(&v, VTEST, 0, 0));
    OK(glocal_video_info(v, &w, &h, &frames, &fps));
    assert_int_equal(w, 768);
    assert_int_equal(h, 576);
    assert_int_equal(frames, 50);
    assert_double_equal(fps, 10, 1e-6);
    uint8_t *full = malloc((size_t)w * h * 3), *small = malloc(192 * 144 * 3);
    OK(glocal_video_read(v, full));
    OK(glocal_video_skip(v, 46));
    for (int i = 47; i < 50; i++) OK(glocal_video_read(v, full));
    assert_int_equal(glocal_video_read(v, full), GLOCAL_EOF);
    assert_int_equal(glocal_video_skip(v, 1), GLOCAL_EOF);
    glocal_video_close(&v);
    assert_null(v);
    /* scaled: the same picture, so the same mean grey level */
    OK(glocal_video_open(&v, VTEST, 192, 144));
    OK(glocal_video_info(v, &w, &h, NULL, NULL));
    assert_int_equal(w, 192);
    assert_int_equal(h, 144);
    OK(glocal_video_read(v, small));
    glocal_video_close(&v);
    OK(glocal_video_open(&v, VTEST, 0, 0));
    OK(glocal_video_read(v, full));
    glocal_video_close(&v);
    double ms = 0, mf = 0;
    for (int i = 0; i < 192 * 144 * 3; i++) ms += small[i];
    for (int i = 0; i < 768 * 576 * 3; i++) mf += full[i];
    assert_double_equal(ms / (192 * 144 * 3), mf / (768 * 576 * 3), 1.0);
    assert_int_equal(glocal_video_open(&v, VTEST, 0, 100), GLOCAL_EINVAL);
    assert_int_equal(glocal_video_skip(NULL, 1), GLOCAL_EINVAL);
    free(small), free(full);
}

/* A cache of two clips written with the module's writer, values on the
 * int16 grid (exact after quantisation), read back by name. */
static void test_cache(void **state)
{
    (void)state;
    char dir[256] = "", path[300];
    test_tmp_path(dir, sizeof dir, "libglocal", path, sizeof path, "c.h5");
    const int ch = 2, ch_h = 6, ch_w = 8, n0 = 3, n1 = 5;
    const size_t fs = (size_t)ch * ch_h * ch_w;
    cache_config cfg;
    cache_config_default(&cfg);
    snprintf(cfg.method, sizeof cfg.method, "tvl1");
    cfg.height = ch_h;
    cfg.width = ch_w;
    cfg.channels = ch;
    cfg.has_homographies = 1;
    cfg.total_clips = 2;
    float *fields = malloc(sizeof(float) * fs * n1), hom[9 * 5];
    cache_writer *wr = NULL;
    OK(cache_writer_open(path, &cfg, &wr));
    const char *names[2] = { "A/v_a.avi", "B/v_b.avi" };
    for (int c = 0; c < 2; c++) {
        int n = c ? n1 : n0;
        for (size_t i = 0; i < fs * n; i++) fields[i] = (float)((long)(i * 7 % 97) - 48 + 100 * c) / 128.0f;
        for (int i = 0; i < 9 * n; i++) hom[i] = (float)(i + c) * 0.25f;
        cache_clip info;
        memset(&info, 0, sizeof info);
        snprintf(info.name, sizeof info.name, "%s", names[c]);
        info.index = c;
        info.label = 10 + c;
        cache_clip_writer *cw = NULL;
        OK(cache_clip_begin(wr, &info, &cw));
        OK(cache_clip_append(cw, n, fields, hom));
        OK(cache_clip_commit(&cw));
    }
    OK(cache_writer_finish(wr));
    cache_writer_close(&wr);

    glocal_cache *c = NULL;
    OK(glocal_cache_open(&c, path));
    const char *method, *name;
    int channels, gh, gw, label;
    long clips, pairs;
    OK(glocal_cache_info(c, &method, &channels, &gh, &gw, &clips));
    assert_string_equal(method, "tvl1");
    assert_int_equal(channels, ch);
    assert_int_equal(gh, ch_h);
    assert_int_equal(gw, ch_w);
    assert_int_equal(clips, 2);
    OK(glocal_cache_clip_name(c, 1, &name));
    assert_string_equal(name, names[1]);
    assert_int_equal(glocal_cache_clip_name(c, 2, &name), GLOCAL_EINVAL);
    OK(glocal_cache_clip(c, names[1], &pairs, &label));
    assert_int_equal(pairs, n1);
    assert_int_equal(label, 11);
    float *back = malloc(sizeof(float) * fs * 2);
    double hb[18];
    OK(glocal_cache_read(c, names[1], 2, 2, back, hb)); /* clip 1 was written last: fields, hom hold it */
    for (size_t i = 0; i < fs * 2; i++) assert_true(back[i] == fields[2 * fs + i]);
    for (int i = 0; i < 18; i++) assert_true(hb[i] == (double)hom[18 + i]);
    assert_int_equal(glocal_cache_read(c, names[1], 4, 2, back, NULL), GLOCAL_EINVAL);
    assert_int_equal(glocal_cache_read(c, "C/v_c.avi", 0, 1, back, NULL), GLOCAL_ENOTFOUND);
    assert_int_equal(glocal_cache_clip(c, "C/v_c.avi", NULL, NULL), GLOCAL_ENOTFOUND);
    glocal_cache_close(&c);
    assert_null(c);
    assert_true(glocal_cache_open(&c, GLOCAL_DATA_DIR "/none.h5") < 0);
    assert_null(c);
    free(back), free(fields);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_error_is_per_thread),
        cmocka_unit_test(test_flows),        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_video),        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
