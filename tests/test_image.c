/* test_image.c — datasets/image.h against independent parses of real files. */
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

#include "datasets/image.h"

/* A binary P6 PPM written by numpy (scripts/flow-pairs), 256x192. */
#define CHAIRS GLOCAL_DATA_DIR "/flow/generated/0000000-img0.ppm"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_image.");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* A minimal P6 parser (Netpbm spec: magic, whitespace, width, height, maxval,
 * one whitespace byte, raster), written here so the test does not trust the
 * code under test. */
static uint8_t *parse_p6(const uint8_t *b, size_t n, int *w, int *h)
{
    size_t i = 2;
    int v[3];
    if (n < 2 || b[0] != 'P' || b[1] != '6') return NULL;
    for (int k = 0; k < 3; k++) {
        while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t' || b[i] == '#')) {
            if (b[i] == '#') while (i < n && b[i] != '\n') i++;
            else i++;
        }
        v[k] = 0;
        while (i < n && b[i] >= '0' && b[i] <= '9') v[k] = v[k] * 10 + (b[i++] - '0');
    }
    i++;
    if (v[2] != 255 || i + (size_t)v[0] * v[1] * 3 > n) return NULL;
    *w = v[0];
    *h = v[1];
    return (uint8_t *)b + i;
}

static void test_ppm_matches_direct_parse(void **state)
{
    (void)state;
    void *bytes;
    size_t n;
    assert_int_equal(gl_read_file(CHAIRS, &bytes, &n), 0);
    int w = 0, h = 0;
    const uint8_t *ref = parse_p6(bytes, n, &w, &h);
    assert_non_null(ref);
    assert_int_equal(w, 256);
    assert_int_equal(h, 192);

    image img;
    assert_int_equal(image_load(&img, CHAIRS, 3), 0);
    assert_int_equal(img.width, 256);
    assert_int_equal(img.height, 192);
    assert_int_equal(img.channels, 3);
    assert_memory_equal(img.data, ref, (size_t)w * h * 3);
    image_release(&img);
    assert_null(img.data);

    /* Gray: BT.601 luma of the same pixels, within rounding. */
    assert_int_equal(image_load(&img, CHAIRS, 1), 0);
    assert_int_equal(img.channels, 1);
    int worst = 0;
    for (int i = 0; i < w * h; i++) {
        double y = 0.299 * ref[3 * i] + 0.587 * ref[3 * i + 1] + 0.114 * ref[3 * i + 2];
        int d = abs((int)img.data[i] - (int)(y + 0.5));
        if (d > worst) worst = d;
    }
    assert_true(worst <= 2);
    image_release(&img);
    gl_free(bytes);
}

static void test_png_roundtrip_exact(void **state)
{
    (void)state;
    const int W = 37, H = 23; /* odd sizes on purpose */
    for (int ch = 1; ch <= 3; ch += 2) {
        uint8_t *px = malloc((size_t)W * H * ch);
        uint32_t s = 12345u + (uint32_t)ch;
        for (int i = 0; i < W * H * ch; i++) {
            s = s * 1664525u + 1013904223u;
            px[i] = (uint8_t)(s >> 24);
        }
        char path[300];
        snprintf(path, sizeof path, "%s/rt%d.png", tmpdir, ch);
        assert_int_equal(image_save_png(path, px, W, H, ch), 0);
        image img;
        assert_int_equal(image_load(&img, path, ch), 0);
        assert_int_equal(img.width, W);
        assert_int_equal(img.height, H);
        assert_memory_equal(img.data, px, (size_t)W * H * ch);
        image_release(&img);
        if (ch == 1) {
            /* A gray PNG loaded as RGB repeats the value in each channel. */
            assert_int_equal(image_load(&img, path, 3), 0);
            for (int i = 0; i < W * H; i++)
                for (int k = 0; k < 3; k++) assert_int_equal(img.data[3 * i + k], px[i]);
            image_release(&img);
        }
        free(px);
    }
}

static void test_real_png_and_jpeg(void **state)
{
    (void)state;
    image img;
    /* Sizes from the images themselves: `file` reports 512x512 (astronaut),
     * 512x512 (camera, gray) and 427x640 (rocket JPEG). */
    assert_int_equal(image_load(&img, GLOCAL_DATA_DIR "/textures/cc0/astronaut.png", 3), 0);
    assert_int_equal(img.width, 512);
    assert_int_equal(img.height, 512);
    image_release(&img);
    assert_int_equal(image_load(&img, GLOCAL_DATA_DIR "/textures/cc0/camera.png", 1), 0);
    assert_int_equal(img.width, 512);
    assert_int_equal(img.height, 512);
    image_release(&img);
    assert_int_equal(image_load(&img, GLOCAL_DATA_DIR "/textures/cc0/rocket.jpg", 3), 0);
    assert_int_equal(img.width, 640);
    assert_int_equal(img.height, 427);
    /* A JPEG has no exact reference here; its mean must be a plausible photo. */
    double mean = 0;
    for (int i = 0; i < img.width * img.height * 3; i++) mean += img.data[i];
    mean /= img.width * img.height * 3.0;
    assert_true(mean > 20 && mean < 235);
    image_release(&img);
}

static void test_bad_files(void **state)
{
    (void)state;
    image img;
    char path[300];
    assert_int_equal(image_load(&img, "/nonexistent/x.png", 3), GL_EIO);
    assert_non_null(strstr(gl_last_error(), "/nonexistent/x.png"));

    snprintf(path, sizeof path, "%s/empty.png", tmpdir);
    assert_int_equal(gl_write_file_atomic(path, "", 0), 0);
    assert_int_equal(image_load(&img, path, 3), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "empty.png"));

    snprintf(path, sizeof path, "%s/garbage.jpg", tmpdir);
    assert_int_equal(gl_write_file_atomic(path, "hello, not an image", 19), 0);
    assert_int_equal(image_load(&img, path, 3), GL_EFORMAT);

    /* Truncated PNG and PPM: a clear error, never a crash. */
    void *bytes;
    size_t n;
    assert_int_equal(gl_read_file(GLOCAL_DATA_DIR "/textures/cc0/brick.png", &bytes, &n), 0);
    assert_true(image_load_memory(&img, bytes, 100, "brick-100.png", 3) < 0);
    assert_null(img.data);
    gl_free(bytes);
    assert_int_equal(gl_read_file(CHAIRS, &bytes, &n), 0);
    assert_true(image_load_memory(&img, bytes, 1000, "chairs-1000.ppm", 3) < 0);
    assert_true(image_load_memory(&img, bytes, 5, "chairs-5.ppm", 3) < 0);
    gl_free(bytes);

    assert_int_equal(image_load(&img, CHAIRS, 2), GL_EINVAL);
    uint8_t px[12] = { 0 };
    assert_int_equal(image_save_png("/nonexistent/dir/x.png", px, 2, 2, 3), GL_EIO);
    assert_int_equal(image_save_png(path, px, 0, 2, 3), GL_EINVAL);
}

/* Our allocations failing give GL_ENOMEM and leak nothing (LSan). */
static void test_alloc_failures(void **state)
{
    (void)state;
    int enomem = 0;
    for (long n = 0; n < 6; n++) {
        image img;
        gl_alloc_fail_after(n);
        int rc = image_load(&img, CHAIRS, 3);
        gl_alloc_fail_after(-1);
        assert_true(rc == 0 || rc == GL_ENOMEM);
        enomem += rc == GL_ENOMEM;
        if (rc == 0) {
            char path[300];
            snprintf(path, sizeof path, "%s/alloc.png", tmpdir);
            gl_alloc_fail_after(n);
            rc = image_save_png(path, img.data, img.width, img.height, 3);
            gl_alloc_fail_after(-1);
            assert_true(rc == 0 || rc == GL_ENOMEM);
        }
        image_release(&img);
    }
    assert_true(enomem >= 2);   /* file buffer, pixel buffer */
}

/* Mutated copies (bit flips, overwritten runs, truncations) of a real PNG,
 * JPEG and PPM, fixed seed: each loads or fails with a message, never
 * crashes (ASan/UBSan). */
static void test_fuzz(void **state)
{
    (void)state;
    static const char *const files[] = {
        GLOCAL_DATA_DIR "/textures/cc0/brick.png",
        GLOCAL_DATA_DIR "/textures/cc0/rocket.jpg",
        CHAIRS,
    };
    uint64_t x = 99991;
    int loaded = 0, rejected = 0;
    for (int f = 0; f < 3; f++) {
        void *orig;
        size_t n;
        assert_int_equal(gl_read_file(files[f], &orig, &n), 0);
        uint8_t *buf = malloc(n);
        for (int i = 0; i < 30; i++) {
            memcpy(buf, orig, n);
            size_t m = n;
            for (int k = 0; k < 1 + i % 3; k++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                size_t at = (size_t)(x >> 33) % (i & 1 ? 2048 : m);
                switch ((x >> 20) % 3) {
                case 0: buf[at] ^= (uint8_t)(1u << ((x >> 8) % 8)); break;
                case 1: for (size_t j = at; j < at + 8 && j < m; j++) buf[j] = (uint8_t)(x >> (j % 56)); break;
                default: m = at + 1; break;
                }
            }
            image img;
            int rc = image_load_memory(&img, buf, m, "mutant", 3);
            if (rc == 0) {
                assert_true(img.width > 0 && img.height > 0);
                loaded++;
            } else {
                assert_true(rc < 0);
                assert_non_null(strstr(gl_last_error(), "mutant"));
                rejected++;
            }
            image_release(&img);
        }
        free(buf);
        gl_free(orig);
    }
    print_message("image fuzz: %d loaded, %d rejected\n", loaded, rejected);
    assert_int_equal(loaded + rejected, 90);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ppm_matches_direct_parse),
        cmocka_unit_test(test_png_roundtrip_exact),
        cmocka_unit_test(test_real_png_and_jpeg),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
