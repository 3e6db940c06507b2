/* test_photo_pairs.c — photo-crop pairs (datasets/photo_pairs.h) against
 * independent truth: frame A warped by the ground-truth flow reproduces
 * frame B (bilinear warp written here), the homography moves A's corners
 * within the configured range, the global flow is H p - p and the local flow
 * M_k p - H p recomputed here, the mask covers the configured share, pairs
 * are reproducible, augmentation changes pixels and not the ground truth,
 * bad input fails with a message naming it; and `glocal eval-motion
 * --photos` reports an identity row equal to the corner displacement
 * computed here from the homographies. Photos: the 8 CC0 photos of
 * GLOCAL_DATA_DIR/textures/cc0. */
#include <json-c/json.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "datasets/photo_pairs.h"
#include "testutil.h"

#define PHOTOS GLOCAL_DATA_DIR "/textures/cc0"

static photo_set *set; /* opened once for the tests that only read it */
static char tmp[256];

static int setup(void **state)
{
    (void)state;
    if (photo_set_open(PHOTOS, 256, &set) < 0) {
        fprintf(stderr, "cannot open %s: %s\n", PHOTOS, gl_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    photo_set_free(&set);
    if (tmp[0]) test_tmpdir_remove(tmp);
    return 0;
}

static photo_pairs_config small_config(void)
{
    photo_pairs_config c = photo_pairs_config_default();
    c.width = c.height = 64;
    c.corner_px = 4;  /* S/16 */
    c.patch_px_min = 1;
    c.patch_px_max = 4;
    c.seed = 7;
    return c;
}

static void apply_h(const double h[9], double x, double y, double *u, double *v)
{
    double w = h[6] * x + h[7] * y + h[8];
    *u = (h[0] * x + h[1] * y + h[2]) / w;
    *v = (h[3] * x + h[4] * y + h[5]) / w;
}

/* Bilinear read of a grey plane (x, y inside [0, W-1] x [0, H-1]). */
static double bilinear(const float *g, int W, double x, double y)
{
    int x0 = (int)floor(x), y0 = (int)floor(y);
    double ax = x - x0, ay = y - y0;
    const float *p = g + (size_t)y0 * W + x0;
    double top = p[0] + ax * (p[1] - p[0]), bot = p[W] + ax * (p[W + 1] - p[W]);
    return top + ay * (bot - top);
}

/* ---- the photo set ------------------------------------------------------- */

static void test_set_sorted_and_bounded(void **state)
{
    (void)state;
    assert_int_equal(photo_set_count(set), 8);
    for (int i = 1; i < photo_set_count(set); i++)
        assert_true(strcmp(photo_set_name(set, i - 1), photo_set_name(set, i)) < 0);
    assert_string_equal(photo_set_name(set, 0), "astronaut.png");
    assert_null(photo_set_name(set, 8));
    for (int i = 0; i < photo_set_count(set); i++) {
        int w, h;
        photo_set_size(set, i, &w, &h);
        assert_true((w < h ? w : h) <= 256);
        assert_true(w >= 16 && h >= 16);
    }
}

/* A list file: comments, blank lines, relative and absolute paths, its order. */
static void test_set_from_list(void **state)
{
    (void)state;
    char list[512];
    test_tmp_path(tmp, sizeof tmp, "photo_pairs_", list, sizeof list, "list.txt");
    FILE *f = fopen(list, "w");
    assert_non_null(f);
    fprintf(f, "# test photos\n\n%s/rocket.jpg\n  %s/chelsea.png  \r\n", PHOTOS, PHOTOS);
    fclose(f);
    photo_set *s = NULL;
    OK(photo_set_open(list, 128, &s));
    assert_int_equal(photo_set_count(s), 2);
    assert_non_null(strstr(photo_set_name(s, 0), "rocket.jpg"));
    assert_non_null(strstr(photo_set_name(s, 1), "chelsea.png"));
    photo_pairs_config c = small_config();
    photo_pair p;
    OK(photo_pair_alloc(&p, c.width, c.height));
    OK(photo_pairs_render(s, &c, 3, &p));
    photo_pair_release(&p);
    photo_set_free(&s);
}

static void expect_open_error(const char *path, int code, const char *needle)
{
    photo_set *s = NULL;
    int rc = photo_set_open(path, 256, &s);
    if (rc != code || !strstr(gl_last_error(), needle))
        print_error("photo_set_open(%s) = %d \"%s\", expected %d naming \"%s\"\n", path, rc,
                    gl_last_error(), code, needle);
    assert_int_equal(rc, code);
    assert_non_null(strstr(gl_last_error(), needle));
    assert_null(s);
}

static void test_set_errors(void **state)
{
    (void)state;
    char dir[512], p[600];
    test_tmp_path(tmp, sizeof tmp, "photo_pairs_", dir, sizeof dir, "empty");
    assert_int_equal(mkdir(dir, 0755), 0);
    /* a folder without photos (other files are not photos) */
    snprintf(p, sizeof p, "%s/README.txt", dir);
    FILE *f = fopen(p, "w");
    fputs("not a photo\n", f);
    fclose(f);
    expect_open_error(dir, GL_ENOTFOUND, dir);
    /* a file named like a photo that is none */
    snprintf(p, sizeof p, "%s/bad.jpg", dir);
    f = fopen(p, "w");
    fputs("not a photo either\n", f);
    fclose(f);
    expect_open_error(dir, GL_EFORMAT, "bad.jpg");
    /* a missing folder, a list naming a missing photo */
    snprintf(p, sizeof p, "%s/missing", dir);
    expect_open_error(p, GL_EIO, p);
    snprintf(p, sizeof p, "%s/list.txt", dir);
    f = fopen(p, "w");
    fprintf(f, "%s/astronaut.png\nnowhere.png\n", PHOTOS);
    fclose(f);
    expect_open_error(p, GL_EIO, "nowhere.png");
    photo_set *s = NULL;
    assert_int_equal(photo_set_open(PHOTOS, 4, &s), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "max_short_side"));
}

/* Every allocation failure while opening and rendering is reported and leaks
 * nothing (ASan checks the leaks). */
static void test_allocation_failures(void **state)
{
    (void)state;
    char list[512];
    test_tmp_path(tmp, sizeof tmp, "photo_pairs_", list, sizeof list, "one.txt");
    FILE *f = fopen(list, "w");
    fprintf(f, "%s/coffee.png\n%s/brick.png\n", PHOTOS, PHOTOS);
    fclose(f);
    photo_pairs_config c = small_config();
    c.width = c.height = 32;
    c.corner_px = 2;
    c.patch_px_max = 2;
    int failed = 0;
    for (long n = 0;; n++) {
        photo_set *s = NULL;
        photo_pair p = { 0 };
        gl_alloc_fail_after(n);
        int rc = photo_set_open(list, 64, &s);
        if (rc == 0) rc = photo_pair_alloc(&p, 32, 32);
        if (rc == 0) rc = photo_pairs_render(s, &c, 1, &p);
        gl_alloc_fail_after(-1);
        photo_pair_release(&p);
        photo_set_free(&s);
        if (rc == 0) break;
        assert_int_equal(rc, GL_ENOMEM);
        failed++;
        assert_true(n < 10000);
    }
    assert_true(failed > 5);
}

/* ---- the config ----------------------------------------------------------- */

static void expect_bad(photo_pairs_config c, const char *field)
{
    int rc = photo_pairs_config_validate(&c);
    if (rc != GL_EINVAL || !strstr(gl_last_error(), field))
        print_error("validate = %d \"%s\", expected GL_EINVAL naming %s\n", rc, gl_last_error(), field);
    assert_int_equal(rc, GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), field));
    photo_pair p;
    OK(photo_pair_alloc(&p, 64, 64));
    assert_int_equal(photo_pairs_render(set, &c, 0, &p), GL_EINVAL);
    photo_pair_release(&p);
}

static void test_config(void **state)
{
    (void)state;
    photo_pairs_config d = photo_pairs_config_default();
    OK(photo_pairs_config_validate(&d));
    assert_int_equal(d.aug.jpeg_q_max, 0);
    assert_true(d.aug.contrast == 0 && d.aug.brightness == 0 && d.aug.gamma == 0 &&
                d.aug.illumination == 0 && d.aug.blur == 0 && d.aug.noise == 0);
    photo_pairs_config b = photo_pairs_config_benchmark(256, 1.0 / 8, 3);
    assert_int_equal(b.width, 256);
    assert_double_equal(b.corner_px, 32, 0);
    OK(photo_pairs_config_validate(&b));
    photo_pairs_config c = small_config();
    c.width = 63;
    expect_bad(c, "width");
    c = small_config();
    c.corner_px = 17;
    expect_bad(c, "corner_px");
    c = small_config();
    c.coverage_max = 0.8;
    expect_bad(c, "coverage");
    c = small_config();
    c.patches_max = PHOTO_PAIRS_MAX_PATCHES + 1;
    expect_bad(c, "patches");
    c = small_config();
    c.crop_min = 0.9;
    c.crop_max = 0.5;
    expect_bad(c, "crop");
    c = small_config();
    c.aug.jpeg_q_min = 1;
    c.aug.jpeg_q_max = 5;
    expect_bad(c, "jpeg");
    c = small_config();
    c.aug.illumination = 1.5;
    expect_bad(c, "illumination");
    /* a pair of another size */
    c = small_config();
    photo_pair p;
    OK(photo_pair_alloc(&p, 32, 32));
    assert_int_equal(photo_pairs_render(set, &c, 0, &p), GL_EINVAL);
    photo_pair_release(&p);
}

/* ---- geometry and ground truth ---------------------------------------------- */

/* H takes A's corner pixel centres to within +-corner_px per coordinate, and
 * the draws do use the range. */
static void test_corners(void **state)
{
    (void)state;
    photo_pairs_config c = small_config();
    photo_pair p;
    OK(photo_pair_alloc(&p, c.width, c.height));
    const double cx[4] = { 0, 63, 63, 0 }, cy[4] = { 0, 0, 63, 63 };
    double biggest = 0;
    for (int i = 0; i < 12; i++) {
        OK(photo_pairs_render(set, &c, (uint64_t)i, &p));
        assert_double_equal(p.homography[8], 1.0, 1e-12);
        for (int k = 0; k < 4; k++) {
            double u, v;
            apply_h(p.homography, cx[k], cy[k], &u, &v);
            assert_true(fabs(u - cx[k]) <= c.corner_px + 1e-9);
            assert_true(fabs(v - cy[k]) <= c.corner_px + 1e-9);
            biggest = fmax(biggest, fmax(fabs(u - cx[k]), fabs(v - cy[k])));
        }
    }
    assert_true(biggest > 0.75 * c.corner_px);
    photo_pair_release(&p);
}

/* global = H p - p everywhere; local = M_k p - H p on patch k, exactly 0 off
 * the patches and clearly nonzero on them. */
static void test_flows(void **state)
{
    (void)state;
    photo_pairs_config c = small_config();
    photo_pair p;
    OK(photo_pair_alloc(&p, c.width, c.height));
    const int W = c.width, H = c.height;
    const size_t hw = (size_t)W * H;
    for (int i = 0; i < 6; i++) {
        OK(photo_pairs_render(set, &c, (uint64_t)i, &p));
        long fg = 0, moving = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t q = (size_t)y * W + x;
                double u, v;
                apply_h(p.homography, x, y, &u, &v);
                assert_double_equal(p.global_flow[q], u - x, 1e-4);
                assert_double_equal(p.global_flow[hw + q], v - y, 1e-4);
                int k = p.mask[q];
                assert_true(k <= p.patches);
                if (!k) {
                    assert_true(p.local_flow[q] == 0.0f && p.local_flow[hw + q] == 0.0f);
                    continue;
                }
                double fu, fv;
                apply_h(p.patch_motion[k - 1], x, y, &fu, &fv);
                assert_double_equal(p.local_flow[q], fu - u, 1e-4);
                assert_double_equal(p.local_flow[hw + q], fv - v, 1e-4);
                fg++;
                moving += hypot(p.local_flow[q], p.local_flow[hw + q]) > 0.1;
            }
        assert_true(fg > 0);
        assert_true(moving >= 0.95 * fg);
    }
    photo_pair_release(&p);
}

/* Frame A warped by the ground truth gives frame B: |B(p + f(p)) - A(p)| on
 * pixels that neither border a patch in A nor land near one in B (where a
 * moved patch may cover them: B's patch pixels are the forward images of A's,
 * dilated by 2 px), against |B(p) - A(p)| on the same pixels. */
static void test_warp_reproduces_b(void **state)
{
    (void)state;
    photo_pairs_config c = small_config();
    photo_pair p;
    OK(photo_pair_alloc(&p, c.width, c.height));
    const int W = c.width, H = c.height;
    const size_t hw = (size_t)W * H;
    uint8_t *near = malloc(hw);
    double bg_warp = 0, bg_none = 0, fg_warp = 0, fg_none = 0;
    long nbg = 0, nfg = 0;
    for (int i = 0; i < 6; i++) {
        OK(photo_pairs_render(set, &c, (uint64_t)i, &p));
        const float *ga = p.grey, *gb = p.grey + hw;
        memset(near, 0, hw);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t q = (size_t)y * W + x;
                if (!p.mask[q]) continue;
                int u = (int)lround(x + p.global_flow[q] + p.local_flow[q]);
                int v = (int)lround(y + p.global_flow[hw + q] + p.local_flow[hw + q]);
                for (int dy = -2; dy <= 2; dy++)
                    for (int dx = -2; dx <= 2; dx++)
                        if (u + dx >= 0 && u + dx < W && v + dy >= 0 && v + dy < H)
                            near[(size_t)(v + dy) * W + u + dx] = 1;
            }
        for (int y = 1; y < H - 1; y++)
            for (int x = 1; x < W - 1; x++) {
                size_t q = (size_t)y * W + x;
                int own = p.mask[q], edge = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) edge |= p.mask[q + dy * W + dx] != own;
                if (edge) continue;
                double u = x + p.global_flow[q] + p.local_flow[q];
                double v = y + p.global_flow[hw + q] + p.local_flow[hw + q];
                if (u < 1 || v < 1 || u > W - 2 || v > H - 2) continue;
                int ui = (int)lround(u), vi = (int)lround(v);
                if (!own && near[(size_t)vi * W + ui]) continue;
                double w = fabs(bilinear(gb, W, u, v) - ga[q]), n = fabs(gb[q] - ga[q]);
                if (own) fg_warp += w, fg_none += n, nfg++;
                else bg_warp += w, bg_none += n, nbg++;
            }
    }
    assert_true(nbg > 6 * 1000 && nfg > 6 * 100);
    bg_warp /= nbg, bg_none /= nbg, fg_warp /= nfg, fg_none /= nfg;
    if (!(bg_warp < 0.2 * bg_none && fg_warp < 0.25 * fg_none && bg_none > 5))
        print_error("background: warp %.3f, none %.3f (%ld px); patches: warp %.3f, none %.3f (%ld px)\n",
                    bg_warp, bg_none, nbg, fg_warp, fg_none, nfg);
    assert_true(bg_none > 5);  /* the pairs do move */
    assert_true(bg_warp < 0.2 * bg_none);
    assert_true(fg_warp < 0.25 * fg_none);
    free(near);
    photo_pair_release(&p);
}

/* The patches: their count, their share of frame A and their photos. */
static void test_patches_and_coverage(void **state)
{
    (void)state;
    photo_pairs_config c = small_config();
    c.coverage_min = 0.12;
    c.coverage_max = 0.2;
    photo_pair p;
    OK(photo_pair_alloc(&p, c.width, c.height));
    const size_t hw = (size_t)c.width * c.height;
    int seen[3] = { 0, 0, 0 }, bg_seen[8] = { 0 };
    for (int i = 0; i < 16; i++) {
        OK(photo_pairs_render(set, &c, (uint64_t)i, &p));
        assert_true(p.patches >= 1 && p.patches <= 2);
        seen[p.patches]++;
        bg_seen[p.photo]++;
        long cov = 0;
        for (size_t q = 0; q < hw; q++) cov += p.mask[q] != 0;
        double share = (double)cov / hw;
        if (share < c.coverage_min || share > c.coverage_max)
            print_error("pair %d: coverage %.4f outside [%g, %g]\n", i, share, c.coverage_min,
                        c.coverage_max);
        assert_true(share >= c.coverage_min && share <= c.coverage_max);
        for (int k = 0; k < p.patches; k++) assert_true(p.patch_photo[k] != p.photo);
    }
    assert_true(seen[1] > 0 && seen[2] > 0);
    for (int j = 0; j < 8; j++) assert_int_equal(bg_seen[j], 2); /* every photo twice in 16 */
    /* no patches: no mask, no local flow */
    c.patches_min = c.patches_max = 0;
    OK(photo_pairs_render(set, &c, 5, &p));
    assert_int_equal(p.patches, 0);
    for (size_t q = 0; q < hw; q++) {
        assert_int_equal(p.mask[q], 0);
        assert_true(p.local_flow[q] == 0.0f && p.local_flow[hw + q] == 0.0f);
    }
    photo_pair_release(&p);
}

static int pairs_equal(const photo_pair *x, const photo_pair *y)
{
    const size_t hw = (size_t)x->width * x->height;
    return !memcmp(x->a, y->a, 3 * hw) && !memcmp(x->b, y->b, 3 * hw) &&
           !memcmp(x->homography, y->homography, sizeof x->homography) &&
           !memcmp(x->global_flow, y->global_flow, sizeof(float) * 2 * hw) &&
           !memcmp(x->local_flow, y->local_flow, sizeof(float) * 2 * hw) &&
           !memcmp(x->mask, y->mask, hw);
}

typedef struct {
    const photo_pairs_config *c;
    photo_pair *pairs;
} par_job;

static int render_range(void *ctx, long begin, long end)
{
    par_job *j = ctx;
    for (long i = begin; i < end; i++) {
        int rc = photo_pairs_render(set, j->c, (uint64_t)i, &j->pairs[i]);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Same (set, config, index): the same bytes, from another set object, in
 * any order and on any thread; another index or seed: another pair. */
static void test_determinism(void **state)
{
    (void)state;
    photo_pairs_config c = small_config();
    c.aug.noise = 2;
    c.aug.jpeg_q_min = 3;
    c.aug.jpeg_q_max = 8;
    photo_set *again = NULL;
    OK(photo_set_open(PHOTOS, 256, &again));
    photo_pair x, y, par[4];
    OK(photo_pair_alloc(&x, 64, 64));
    OK(photo_pair_alloc(&y, 64, 64));
    for (int i = 0; i < 4; i++) OK(photo_pair_alloc(&par[i], 64, 64));
    OK(photo_pairs_render(set, &c, 2, &x));
    OK(photo_pairs_render(set, &c, 9, &y));
    OK(photo_pairs_render(again, &c, 2, &y));
    assert_true(pairs_equal(&x, &y));
    OK(photo_pairs_render(set, &c, 3, &y));
    assert_false(pairs_equal(&x, &y));
    assert_true(memcmp(x.homography, y.homography, sizeof x.homography) != 0);
    c.seed = 8;
    OK(photo_pairs_render(set, &c, 2, &y));
    assert_true(memcmp(x.homography, y.homography, sizeof x.homography) != 0);
    c.seed = 7;
    int threads = gl_num_threads();
    gl_set_num_threads(2);
    par_job j = { &c, par };
    OK(gl_parallel_for(4, 1, render_range, &j));
    gl_set_num_threads(threads);
    assert_true(pairs_equal(&x, &par[2]));
    for (int i = 0; i < 4; i++) photo_pair_release(&par[i]);
    photo_pair_release(&x);
    photo_pair_release(&y);
    photo_set_free(&again);
}

/* still: a share of the pairs has a still camera (H = I exactly, no global
 * flow) while the patches still move; still = 1 every pair, 0.5 about half
 * of 40 (a binomial count in 10..30), the default none; out of [0, 1]
 * refused. */
static void test_still_camera(void **state)
{
    (void)state;
    photo_pairs_config c = small_config();
    photo_pair p;
    OK(photo_pair_alloc(&p, c.width, c.height));
    const size_t hw = (size_t)c.width * c.height;
    const double I[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    int counts[2] = { 0, 0 };
    for (int k = 0; k < 2; k++) {
        c.still = k ? 0.5 : 1.0;
        for (int i = 0; i < 40; i++) {
            OK(photo_pairs_render(set, &c, (uint64_t)i, &p));
            int still = 1;
            for (int j = 0; j < 9; j++) still &= fabs(p.homography[j] - I[j]) < 1e-12;
            if (!still) continue;
            counts[k]++;
            double moving = 0;
            for (size_t x = 0; x < 2 * hw; x++) {
                assert_true(fabs(p.global_flow[x]) < 1e-4);
                moving = fmax(moving, fabs(p.local_flow[x]));
            }
            assert_true(moving > 1); /* the patches move */
        }
    }
    print_message("still pairs of 40: %d with still = 1, %d with still = 0.5\n", counts[0], counts[1]);
    assert_int_equal(counts[0], 40);
    assert_true(counts[1] >= 10 && counts[1] <= 30);
    assert_true(small_config().still == 0 && photo_pairs_config_default().still == 0);
    c.still = 1.5;
    assert_int_equal(photo_pairs_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "still"));
    photo_pair_release(&p);
}

/* Augmentation (train-motion's --augment) changes the frames (A and B
 * differently) and nothing else. */
static void test_augmentation(void **state)
{
    (void)state;
    photo_pairs_config plain = small_config(), aug = plain;
    aug.aug = photo_pairs_aug_cameras();
    OK(photo_pairs_config_validate(&aug));
    photo_pair x, y;
    OK(photo_pair_alloc(&x, 64, 64));
    OK(photo_pair_alloc(&y, 64, 64));
    const size_t hw = 64 * 64;
    for (int i = 0; i < 3; i++) {
        OK(photo_pairs_render(set, &plain, (uint64_t)i, &x));
        OK(photo_pairs_render(set, &aug, (uint64_t)i, &y));
        assert_memory_equal(x.homography, y.homography, sizeof x.homography);
        assert_memory_equal(x.global_flow, y.global_flow, sizeof(float) * 2 * hw);
        assert_memory_equal(x.local_flow, y.local_flow, sizeof(float) * 2 * hw);
        assert_memory_equal(x.mask, y.mask, hw);
        assert_int_equal(x.photo, y.photo);
        double da = 0, db = 0;
        for (size_t q = 0; q < 3 * hw; q++) {
            da += abs((int)x.a[q] - (int)y.a[q]);
            db += abs((int)x.b[q] - (int)y.b[q]);
        }
        assert_true(da / (3 * hw) > 1.0);
        assert_true(db / (3 * hw) > 1.0);
    }
    /* JPEG alone: close to the uncoded frame, not equal to it */
    photo_pairs_config jp = plain;
    jp.aug.jpeg_q_min = jp.aug.jpeg_q_max = 4;
    OK(photo_pairs_render(set, &plain, 1, &x));
    OK(photo_pairs_render(set, &jp, 1, &y));
    double d = 0;
    for (size_t q = 0; q < 3 * hw; q++) d += abs((int)x.a[q] - (int)y.a[q]);
    d /= 3 * hw;
    assert_true(d > 0.2 && d < 8);
    /* the grey planes are the frames' luma */
    for (size_t q = 0; q < hw; q++)
        assert_double_equal(y.grey[hw + q], 0.299 * y.b[3 * q] + 0.587 * y.b[3 * q + 1] + 0.114 * y.b[3 * q + 2],
                            1e-3);
    photo_pair_release(&x);
    photo_pair_release(&y);
}

/* ---- glocal eval-motion --photos -------------------------------------------- */

static double jget(json_object *o, const char *k)
{
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v)) return NAN;
    return json_object_get_double(v);
}

/* The identity row's corner error is the mean corner displacement of the
 * generated homographies (computed here), and --per-pair's identity rows are
 * each pair's, every row with its pair's textured background (computed here
 * from the rendered pair); refine, TV-L1 + RANSAC and DIS + RANSAC do better than the
 * identity. */
static void test_eval_motion_photos(void **state)
{
    (void)state;
    char out[512], csv[512], cmd[2048];
    test_tmp_path(tmp, sizeof tmp, "photo_pairs_", out, sizeof out, "eval.txt");
    test_tmp_path(tmp, sizeof tmp, "photo_pairs_", csv, sizeof csv, "pairs.csv");
    const int N = 4, S = 48;
    /* batches of 3: the second batch's identity row must not see the first's
     * flows; --photo-side as `set` was opened, so the pairs' pixels are these */
    snprintf(cmd, sizeof cmd,
             "'%s' --threads 2 eval-motion --photos '%s' --photo-side 256 --size %d --magnitude 1/8 "
             "--pairs %d --seed 5 --batch 3 --json --per-pair '%s' > '%s' 2>&1",
             GLOCAL_BINARY, PHOTOS, S, N, csv, out);
    int st = system(cmd);
    char *text = test_read_text(out);
    assert_non_null(text);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) print_error("%s\n%s\n", cmd, text);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *last = strrchr(text, '{');
    while (last > text && last[-1] != '\n') last--;
    json_object *j = json_tokener_parse(last), *methods, *id, *rf, *tv, *ds;
    assert_non_null(j);
    assert_int_equal((int)jget(j, "pairs"), N);
    assert_true(json_object_object_get_ex(j, "methods", &methods));
    assert_true(json_object_object_get_ex(methods, "identity", &id));
    assert_true(json_object_object_get_ex(methods, "refine", &rf));
    assert_true(json_object_object_get_ex(methods, "tvl1-ransac", &tv));
    assert_true(json_object_object_get_ex(methods, "dis-ransac", &ds));
    /* the expectation: pairs 0..N-1 of the benchmark config */
    photo_pairs_config c = photo_pairs_config_benchmark(S, 1.0 / 8, 5);
    photo_pair p;
    OK(photo_pair_alloc(&p, S, S));
    const double cx[4] = { 0, S - 1, 0, S - 1 }, cy[4] = { 0, 0, S - 1, S - 1 };
    double mean = 0, over2 = 0, over5 = 0, global_epe = 0, each[4], tex[4];
    assert_true(N <= 4);
    for (int i = 0; i < N; i++) {
        OK(photo_pairs_render(set, &c, (uint64_t)i, &p));
        /* bg_texture: background pixels of a (one in from the border) whose
         * luma gradient, by central differences, exceeds 2 levels a pixel */
        long t = 0, bg = 0;
        for (int y = 1; y < S - 1; y++)
            for (int x = 1; x < S - 1; x++) {
                double g[4];
                const int q[4] = { y * S + x - 1, y * S + x + 1, (y - 1) * S + x, (y + 1) * S + x };
                for (int k = 0; k < 4; k++)
                    g[k] = 0.299 * p.a[3 * q[k]] + 0.587 * p.a[3 * q[k] + 1] + 0.114 * p.a[3 * q[k] + 2];
                bg += !p.mask[y * S + x];
                t += !p.mask[y * S + x] && hypot(g[1] - g[0], g[3] - g[2]) / 2 > 2;
            }
        tex[i] = (double)t / ((S - 2) * (S - 2));
        assert_true(t <= bg && bg > 0);
        double e = 0;
        for (int k = 0; k < 4; k++) {
            double u, v;
            apply_h(p.homography, cx[k], cy[k], &u, &v);
            e += hypot(u - cx[k], v - cy[k]) / 4;
        }
        each[i] = e;
        mean += e / N;
        over2 += (e > 2) / (double)N;
        over5 += (e > 5) / (double)N;
        double g = 0;
        for (int q = 0; q < S * S; q++) g += hypot(p.global_flow[q], p.global_flow[S * S + q]);
        global_epe += g / (S * S) / N;
    }
    photo_pair_release(&p);
    /* the column's check below means something only on textured pairs */
    double tex_max = 0;
    for (int i = 0; i < N; i++) tex_max = fmax(tex_max, tex[i]);
    assert_true(tex_max > 0.1);
    assert_double_equal(jget(id, "corner_mean"), mean, 1e-5 * mean + 1e-6);
    assert_double_equal(jget(id, "corner_over_2px"), over2, 1e-9);
    assert_double_equal(jget(id, "corner_over_5px"), over5, 1e-9);
    assert_double_equal(jget(id, "corner_under_1px"), 0, 1e-9);
    assert_double_equal(jget(id, "leakage"), 0, 1e-9);
    assert_double_equal(jget(id, "global_epe"), global_epe, 1e-5 * global_epe);
    assert_true(mean > 2 && mean < 6);  /* corners move within +-6 px */
    assert_true(jget(rf, "corner_mean") < mean);
    assert_true(jget(tv, "corner_mean") < mean);
    assert_true(jget(ds, "corner_mean") < mean);
    double iou = jget(tv, "mask_iou");
    assert_true(iou >= 0 && iou <= 1);
    assert_non_null(strstr(text, "identity"));
    json_object_put(j);
    gl_free(text);
    /* --per-pair: N rows a method, in the pairs' order; identity's are the
     * generator's corner displacements; refine has no mask */
    text = test_read_text(csv);
    assert_non_null(text);
    assert_memory_equal(text, "pair,method,corner,", 19);
    int rows[4] = { 0 }, nrefine = 0;
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        int pair, n = 0;
        char method[32];
        double corner;
        assert_int_equal(sscanf(line + 1, "%d,%31[^,],%lf%n", &pair, method, &corner, &n), 3);
        assert_true(pair >= 0 && pair < N);
        /* the last field: the pair's textured background, every method alike */
        const char *end = strchr(line + 1, '\n'), *last = end;
        assert_non_null(end);
        while (last[-1] != ',') last--;
        /* within 2 pixels' share: a gradient at the threshold may round
         * either way between the product's float luma and this double one */
        assert_double_equal(strtod(last, NULL), tex[pair], 2.0 / ((S - 2) * (S - 2)));
        if (!strcmp(method, "identity")) {
            assert_double_equal(corner, each[pair], 1e-5 * each[pair] + 1e-6);
            assert_int_equal(rows[pair]++, 0);
        }
        if (!strcmp(method, "refine")) {
            nrefine++;
            assert_true(last[-2] == ',');   /* mask_iou, the field before, empty */
        }
    }
    for (int i = 0; i < N; i++) assert_int_equal(rows[i], 1);
    assert_int_equal(nrefine, N);
    gl_free(text);
    /* an unwritable --per-pair folder is refused before any work */
    snprintf(cmd, sizeof cmd, "'%s' eval-motion --photos '%s' --per-pair '%s/no/such/dir/p.csv' > '%s' 2>&1",
             GLOCAL_BINARY, PHOTOS, tmp, out);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    text = test_read_text(out);
    assert_non_null(strstr(text, "no/such/dir"));
    gl_free(text);
    /* a CSV that cannot be written after the evaluation (its name is a
     * folder): exit 1 naming it, the table still printed */
    snprintf(csv, sizeof csv, "%s/a_folder.csv", tmp);
    assert_int_equal(mkdir(csv, 0755), 0);
    snprintf(cmd, sizeof cmd, "'%s' eval-motion --photos '%s' --size %d --pairs 1 --no-tvl1 --per-pair '%s' > '%s' 2>&1",
             GLOCAL_BINARY, PHOTOS, S, csv, out);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    text = test_read_text(out);
    assert_non_null(strstr(text, "a_folder.csv"));
    assert_non_null(strstr(text, "dis-ransac"));
    gl_free(text);
    /* a bad magnitude is a usage error */
    snprintf(cmd, sizeof cmd, "'%s' eval-motion --photos '%s' --magnitude 1/2 > '%s' 2>&1", GLOCAL_BINARY,
             PHOTOS, out);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    text = test_read_text(out);
    assert_non_null(strstr(text, "--magnitude"));
    gl_free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_sorted_and_bounded),
        cmocka_unit_test(test_set_from_list),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_corners),
        cmocka_unit_test(test_flows),
        cmocka_unit_test(test_still_camera),
        cmocka_unit_test(test_warp_reproduces_b),
        cmocka_unit_test(test_patches_and_coverage),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_augmentation),
        cmocka_unit_test(test_eval_motion_photos),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
