/* Tests for datasets/udhn.h (the CA-UDHN "DHE" benchmark), scripts/udhn-points
 * and `glocal eval-dhe`: the real Test/Val lists (counts per category derived
 * from the list with awk, not from this code), malformed lists, the pair error
 * against analytic answers, the .npy converter on files numpy writes here,
 * and the command end to end on a tiny folder of photos warped by known
 * homographies. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "datasets/image.h"
#include "datasets/udhn.h"
#include "motion/glocal.h"
#include "nn/nn.h"
#include "tests/testutil.h"
#include "tests/glocal_pairs.h"

#define LISTS GLOCAL_DATA_DIR "/homography/ca_udhn_lists"
#define PHOTOS GLOCAL_DATA_DIR "/textures/cc0"
#define PY "/usr/bin/python3"

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- lists ---------------------------------------------------------------------- */

static void test_list_real(void **state)
{
    (void)state;
    udhn_list L;
    OK(udhn_list_read(&L, LISTS "/Test_List.txt"));
    assert_int_equal(L.n, 4200); /* wc -l */
    /* Pairs per category, counted from the list with
     *   awk '{split($1,a,"/"); print a[1]}' Test_List.txt | sort | uniq -c
     * and summed over the category table by hand: RE 28+223+46+67+87+297+82+85,
     * LT 74+169+159+228+66+196+179+70, LL 226+150+207+47+35+155,
     * SF 57+56+157+117+69, LF 54+213+130+67+182+222. */
    const int expect[UDHN_NCATS] = { 915, 1141, 820, 456, 868 };
    int count[UDHN_NCATS] = { 0 }, none = 0, lm = 0;
    for (int i = 0; i < L.n; i++) {
        const udhn_pair *p = &L.pairs[i];
        if (p->category == UDHN_NONE) none++;
        else count[p->category]++;
        lm += strstr(p->key, "LM") != NULL;
        assert_null(strstr(p->image_a, "LM"));
        assert_null(strstr(p->image_b, "LM"));
        assert_int_equal(p->line, i + 1);
    }
    for (int c = 0; c < UDHN_NCATS; c++) assert_int_equal(count[c], expect[c]);
    assert_int_equal(none, 0);
    assert_int_equal(lm, 1893); /* grep -c LM Test_List.txt (both names marked on those lines) */
    /* Line 1 has no marker, line 2 has one on both names. */
    assert_string_equal(L.pairs[0].video, "00000238");
    assert_string_equal(L.pairs[0].image_a, "00000238/00000238_10153.jpg");
    assert_string_equal(L.pairs[0].key, "00000238_10153.jpg_00000238_10156.jpg");
    assert_int_equal(L.pairs[0].category, UDHN_LT);
    assert_string_equal(L.pairs[1].video, "00000100");
    assert_string_equal(L.pairs[1].image_a, "00000100/00000100_10036.jpg");
    assert_string_equal(L.pairs[1].image_b, "00000100/00000100_10043.jpg");
    assert_string_equal(L.pairs[1].key, "00000100_10036.jpgLM_00000100_10043.jpgLM");
    assert_int_equal(L.pairs[1].category, UDHN_LL);
    /* The last line (tail -1). */
    assert_string_equal(L.pairs[4199].key, "00000226_10147.jpgLM_00000226_10153.jpgLM");
    assert_int_equal(L.pairs[4199].category, UDHN_LL);
    udhn_list_free(&L);
    udhn_list_free(&L); /* idempotent */
    /* Val_List: 18,200 pairs, none of its videos is in the (test) category table
     * (awk over its first column finds no category video). */
    OK(udhn_list_read(&L, LISTS "/Val_List.txt"));
    assert_int_equal(L.n, 18200);
    none = 0;
    for (int i = 0; i < L.n; i++) none += L.pairs[i].category == UDHN_NONE;
    assert_int_equal(none, 18200);
    udhn_list_free(&L);
}

static void test_categories(void **state)
{
    (void)state;
    assert_int_equal(udhn_category_of_video("0000011"), UDHN_RE);
    assert_int_equal(udhn_category_of_video("0000030"), UDHN_RE);
    assert_int_equal(udhn_category_of_video("00000181"), UDHN_LT);
    assert_int_equal(udhn_category_of_video("0000085"), UDHN_LL);
    assert_int_equal(udhn_category_of_video("00000115"), UDHN_SF);
    assert_int_equal(udhn_category_of_video("00000200"), UDHN_LF);
    /* Exact names: the zero padding is part of them. */
    assert_int_equal(udhn_category_of_video("11"), UDHN_NONE);
    assert_int_equal(udhn_category_of_video("00000011"), UDHN_NONE);
    assert_int_equal(udhn_category_of_video(""), UDHN_NONE);
    assert_int_equal(udhn_category_of_video(NULL), UDHN_NONE);
    assert_string_equal(udhn_category_name(UDHN_RE), "RE");
    assert_string_equal(udhn_category_name(UDHN_LF), "LF");
    assert_null(udhn_category_name(UDHN_NONE));
    assert_null(udhn_category_name(UDHN_NCATS));
}

/* The list in `text` must fail with a message holding `where` (file:line). */
static void expect_bad_list(const char *dir, const char *text, const char *where)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bad.txt", dir);
    write_text(path, text);
    udhn_list L;
    int rc = udhn_list_read(&L, path);
    assert_int_equal(rc, GL_EFORMAT);
    if (!strstr(gl_last_error(), where)) {
        print_error("message '%s' does not name '%s'\n", gl_last_error(), where);
        fail();
    }
    assert_int_equal(L.n, 0);
    assert_null(L.pairs);
}

static void test_list_formats(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "udhn_list_"), 0);
    /* CRLF, a blank line, tabs, no final newline. */
    snprintf(path, sizeof path, "%s/ok.txt", dir);
    write_text(path, "0000026/a.jpgLM 0000026/b.jpgLM\r\n\r\n77/x.png\t77/y.png\r\n"
                     "00000104/c.jpg   00000104/dLM.jpg");
    udhn_list L;
    OK(udhn_list_read(&L, path));
    assert_int_equal(L.n, 3);
    assert_string_equal(L.pairs[0].image_b, "0000026/b.jpg");
    assert_string_equal(L.pairs[0].key, "a.jpgLM_b.jpgLM");
    assert_int_equal(L.pairs[0].category, UDHN_SF);
    assert_int_equal(L.pairs[0].line, 1);
    assert_string_equal(L.pairs[1].video, "77");
    assert_int_equal(L.pairs[1].category, UDHN_NONE);
    assert_int_equal(L.pairs[1].line, 3);
    /* "LM" inside a name is not the marker. */
    assert_string_equal(L.pairs[2].image_b, "00000104/dLM.jpg");
    assert_string_equal(L.pairs[2].key, "c.jpg_dLM.jpg");
    assert_int_equal(L.pairs[2].category, UDHN_LF);
    assert_int_equal(L.pairs[2].line, 4);
    udhn_list_free(&L);
    /* Different videos. */
    expect_bad_list(dir, "77/x.png 77/y.png\n77/x.png y77/y.png\n", "bad.txt:2:");
    /* One field, three fields. */
    expect_bad_list(dir, "0000026/a.jpg 0000026/b.jpg\n\n0000026/a.jpg\n", "bad.txt:3:");
    expect_bad_list(dir, "0000026/a.jpg 0000026/b.jpg 0000026/c.jpg\n", "bad.txt:1:");
    /* No video folder, an empty name, a nested path, leaving the folder. */
    expect_bad_list(dir, "a.jpg b.jpg\n", "bad.txt:1:");
    expect_bad_list(dir, "0000026/a.jpg 0000026/\n", "bad.txt:1:");
    expect_bad_list(dir, "x/0000026/a.jpg x/0000026/b.jpg\n", "bad.txt:1:");
    expect_bad_list(dir, "../a.jpg ../b.jpg\n", "bad.txt:1:");
    /* No pairs at all. */
    expect_bad_list(dir, "\r\n\n", "no pairs");
    /* A binary file. */
    snprintf(path, sizeof path, "%s/bin.txt", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("0000026/a 0000026/b\n\0\1\2\n", 1, 24, f);
    fclose(f);
    assert_int_equal(udhn_list_read(&L, path), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "bin.txt:2:"));
    /* Missing file. */
    snprintf(path, sizeof path, "%s/none.txt", dir);
    assert_int_equal(udhn_list_read(&L, path), GL_EIO);
    assert_non_null(strstr(gl_last_error(), "none.txt"));
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

/* Every allocation failure on the real list cleans up (ASan checks the leaks). */
static void test_list_alloc_failures(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "udhn_oom_"), 0);
    snprintf(path, sizeof path, "%s/l.txt", dir);
    write_text(path, "0000026/a.jpgLM 0000026/b.jpgLM\n0000031/c.jpg 0000031/d.jpg\n");
    char pp[512];
    snprintf(pp, sizeof pp, "%s/p.txt", dir);
    write_text(pp, "k1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\n"
                   "k0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\n");
    int failed = 0;
    for (long k = 0; k < 40; k++) {
        udhn_list L;
        udhn_points_table T;
        gl_alloc_fail_after(k);
        int r1 = udhn_list_read(&L, path);
        gl_alloc_fail_after(k);
        int r2 = udhn_points_read(&T, pp);
        gl_alloc_fail_after(-1);
        assert_true(r1 == 0 || r1 == GL_ENOMEM);
        assert_true(r2 == 0 || r2 == GL_ENOMEM);
        failed += r1 < 0 || r2 < 0;
        if (r1 == 0) assert_int_equal(L.n, 2);
        if (r2 == 0) assert_int_equal(T.n, 2);
        udhn_list_free(&L);
        udhn_points_free(&T);
    }
    assert_true(failed > 0);
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

/* ---- the pair error --------------------------------------------------------------- */

static void apply_h(const double h[9], double x, double y, double *xo, double *yo)
{
    double w = h[6] * x + h[7] * y + h[8];
    *xo = (h[0] * x + h[1] * y + h[2]) / w;
    *yo = (h[3] * x + h[4] * y + h[5]) / w;
}

static void test_pair_error(void **state)
{
    (void)state;
    const double I[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    /* Identity on points moved by known displacements: the mean length. */
    const double d[UDHN_NPOINTS][2] = { { 3, 4 }, { -6, 8 }, { 0, -2 }, { 1, 0 }, { 5, 12 }, { -8, -15 } };
    const double len[UDHN_NPOINTS] = { 5, 10, 2, 1, 13, 17 };
    udhn_points p, s;
    double expect = 0, e;
    for (int i = 0; i < UDHN_NPOINTS; i++) {
        p.a[i][0] = 50 + 90 * i;
        p.a[i][1] = 30 + 50 * i;
        p.b[i][0] = p.a[i][0] + d[i][0];
        p.b[i][1] = p.a[i][1] + d[i][1];
        expect += len[i] / UDHN_NPOINTS;
        /* The same points with the order of each pair swapped. */
        memcpy(s.a[i], p.b[i], sizeof p.b[i]);
        memcpy(s.b[i], p.a[i], sizeof p.a[i]);
    }
    OK(udhn_pair_error(I, &p, &e));
    assert_double_equal(e, 8.0, 1e-12);
    assert_double_equal(e, expect, 1e-12);
    OK(udhn_pair_error(I, &s, &e));
    assert_double_equal(e, 8.0, 1e-12);

    /* A projective H and points b = H a: 0, in either order of the pair. */
    const double H[9] = { 1.02, 0.03, -7.5, -0.02, 0.99, 4.25, 2e-5, -3e-5, 1 };
    for (int i = 0; i < UDHN_NPOINTS; i++) {
        apply_h(H, p.a[i][0], p.a[i][1], &p.b[i][0], &p.b[i][1]);
        /* swapped: first the point in B (= H q), then q in A */
        s.b[i][0] = p.a[i][0];
        s.b[i][1] = p.a[i][1];
        memcpy(s.a[i], p.b[i], sizeof p.b[i]);
    }
    OK(udhn_pair_error(H, &p, &e));
    assert_double_equal(e, 0, 1e-9);
    OK(udhn_pair_error(H, &s, &e));
    assert_double_equal(e, 0, 1e-9);

    /* The min picks the better order per point: H = translation t = (3, 4);
     * b = a + 2t gives |b - Ha| = 5 < |a - Hb| = 15; b = a - t gives
     * |a - Hb| = 0 < |b - Ha| = 10. Three of each: mean (3*5 + 3*0) / 6. */
    const double T[9] = { 1, 0, 3, 0, 1, 4, 0, 0, 1 };
    for (int i = 0; i < UDHN_NPOINTS; i++) {
        double k = i % 2 ? 2 : -1;
        p.b[i][0] = p.a[i][0] + k * 3;
        p.b[i][1] = p.a[i][1] + k * 4;
    }
    OK(udhn_pair_error(T, &p, &e));
    assert_double_equal(e, 2.5, 1e-12);

    /* A homography that sends a point to infinity: an error, not a number. */
    double bad[9] = { 1, 0, 0, 0, 1, 0, 1, 0, 0 }; /* w = x */
    p.a[0][0] = 0;
    assert_int_equal(udhn_pair_error(bad, &p, &e), GL_ENUMERIC);
}

/* ---- the points file ---------------------------------------------------------------- */

static void test_points_file(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "udhn_pts_"), 0);
    snprintf(path, sizeof path, "%s/udhn_points.txt", dir);
    udhn_points_table T;
    /* Missing: the message says how to make it. */
    assert_int_equal(udhn_points_read(&T, path), GL_EIO);
    assert_non_null(strstr(gl_last_error(), "scripts/udhn-points"));
    assert_non_null(strstr(gl_last_error(), "udhn_points.txt"));
    write_text(path, "# comment\r\n"
                     "zz.jpgLM_b.jpgLM 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\r\n"
                     "\n"
                     "  aa.jpg_b.jpg -1.5 2e1 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24.25");
    OK(udhn_points_read(&T, path));
    assert_int_equal(T.n, 2);
    const udhn_points *q;
    OK(udhn_points_find(&T, "aa.jpg_b.jpg", &q));
    assert_double_equal(q->a[0][0], -1.5, 0);
    assert_double_equal(q->a[0][1], 20, 0);
    assert_double_equal(q->b[0][0], 3, 0);
    assert_double_equal(q->b[0][1], 4, 0);
    assert_double_equal(q->a[1][0], 5, 0);
    assert_double_equal(q->b[5][1], 24.25, 0);
    OK(udhn_points_find(&T, "zz.jpgLM_b.jpgLM", &q));
    assert_double_equal(q->a[5][0], 21, 0);
    assert_double_equal(q->b[5][0], 23, 0);
    assert_int_equal(udhn_points_find(&T, "zz.jpg_b.jpg", &q), GL_ENOTFOUND);
    assert_null(q);
    udhn_points_free(&T);
    /* Too few numbers, a word, too many, a NaN, a key given twice. */
    const char *bad[] = {
        "# x\nk 1 2 3\n",
        "# x\n\nk 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 x\n",
        "k 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25\n",
        "k 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 nan\n",
        "k 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\n"
        "j 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\n"
        "k 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\n",
        "key-only\n",
    };
    const char *where[] = { "udhn_points.txt:2:", "udhn_points.txt:3:", "udhn_points.txt:1:",
                            "udhn_points.txt:1:", "udhn_points.txt:3:", "udhn_points.txt:1:" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_text(path, bad[i]);
        assert_int_equal(udhn_points_read(&T, path), GL_EFORMAT);
        if (!strstr(gl_last_error(), where[i])) {
            print_error("case %zu: message '%s' does not name '%s'\n", i, gl_last_error(), where[i]);
            fail();
        }
        assert_int_equal(T.n, 0);
    }
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

/* ---- frames ------------------------------------------------------------------------ */

/* A linear ramp survives a bilinear resize with half-pixel centres exactly
 * (up to rounding) away from the clamped border: dst x samples src at
 * (x + 0.5) * sw / dw - 0.5. */
static void test_frame_load(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "udhn_frame_"), 0);
    const int sw = 64, sh = 36;
    uint8_t *src = malloc((size_t)sw * sh * 3);
    assert_non_null(src);
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++) {
            src[(y * sw + x) * 3 + 0] = (uint8_t)(3 * x + 10);
            src[(y * sw + x) * 3 + 1] = (uint8_t)(5 * y + 20);
            src[(y * sw + x) * 3 + 2] = 77;
        }
    snprintf(path, sizeof path, "%s/small.png", dir);
    OK(image_save_png(path, src, sw, sh, 3));
    uint8_t *rgb = NULL;
    int w0 = 0, h0 = 0;
    OK(udhn_frame_load(path, &rgb, &w0, &h0));
    assert_int_equal(w0, sw);
    assert_int_equal(h0, sh);
    for (int y = 0; y < UDHN_HEIGHT; y += 7)
        for (int x = 0; x < UDHN_WIDTH; x += 5) {
            double fx = (x + 0.5) * sw / UDHN_WIDTH - 0.5, fy = (y + 0.5) * sh / UDHN_HEIGHT - 0.5;
            fx = fx < 0 ? 0 : fx > sw - 1 ? sw - 1 : fx;
            fy = fy < 0 ? 0 : fy > sh - 1 ? sh - 1 : fy;
            const uint8_t *o = rgb + ((size_t)y * UDHN_WIDTH + x) * 3;
            assert_double_equal(o[0], 3 * fx + 10, 0.5 + 1e-9);
            assert_double_equal(o[1], 5 * fy + 20, 0.5 + 1e-9);
            assert_int_equal(o[2], 77);
        }
    gl_free(rgb);
    /* A 640x360 image comes back unchanged. */
    uint8_t *big = malloc((size_t)UDHN_WIDTH * UDHN_HEIGHT * 3);
    assert_non_null(big);
    for (size_t i = 0; i < (size_t)UDHN_WIDTH * UDHN_HEIGHT * 3; i++) big[i] = (uint8_t)(i * 7 % 251);
    snprintf(path, sizeof path, "%s/big.png", dir);
    OK(image_save_png(path, big, UDHN_WIDTH, UDHN_HEIGHT, 3));
    OK(udhn_frame_load(path, &rgb, NULL, NULL));
    assert_memory_equal(rgb, big, (size_t)UDHN_WIDTH * UDHN_HEIGHT * 3);
    gl_free(rgb);
    /* Missing file: an error naming it, nothing allocated. */
    snprintf(path, sizeof path, "%s/none.png", dir);
    assert_int_equal(udhn_frame_load(path, &rgb, NULL, NULL), GL_EIO);
    assert_null(rgb);
    assert_non_null(strstr(gl_last_error(), "none.png"));
    assert_int_equal(udhn_rgb_resize(src, 0, sh, big, 10, 10), GL_EINVAL);
    free(big);
    free(src);
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

/* ---- scripts/udhn-points -------------------------------------------------------------- */

static int have_numpy(void)
{
    if (access(PY, X_OK) != 0) return 0;
    return system(PY " -c 'import numpy' >/dev/null 2>&1") == 0;
}

static int run(const char *cmd)
{
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static void test_converter(void **state)
{
    (void)state;
    if (!have_numpy()) {
        print_message("skipped: " PY " with numpy is not installed\n");
        skip();
    }
    char dir[256], cmd[2048], out[512];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "udhn_npy_"), 0);
    /* Two pickled dicts the way the benchmark stores them (0-d object arrays),
     * values chosen here: point i of pair k is (k*100 + 10 i + 0.25, ...). */
    snprintf(cmd, sizeof cmd,
             PY " -c \"import numpy as np, os\n"
             "os.makedirs('%s/Coordinate-v2')\n"
             "for k, key in enumerate(['0000011_1.jpgLM_0000011_2.jpgLM', '0000031_5.jpg_0000031_9.jpg']):\n"
             "    pts = [[[k*100 + 10*i + 0.25, 7.5 + i], [k*100 + 10*i + 3, 5.0 - i]] for i in range(6)]\n"
             "    np.save('%s/Coordinate-v2/' + key + '.npy', np.array({'matche_pts': pts, 'x': 1}, dtype=object))\n"
             "\"",
             dir, dir);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s/scripts/udhn-points' '%s' > /dev/null", GLOCAL_SOURCE_DIR, dir);
    assert_int_equal(run(cmd), 0);
    snprintf(out, sizeof out, "%s/udhn_points.txt", dir);
    udhn_points_table T;
    OK(udhn_points_read(&T, out));
    assert_int_equal(T.n, 2);
    for (int k = 0; k < 2; k++) {
        const udhn_points *q;
        OK(udhn_points_find(&T, k ? "0000031_5.jpg_0000031_9.jpg" : "0000011_1.jpgLM_0000011_2.jpgLM", &q));
        for (int i = 0; i < UDHN_NPOINTS; i++) {
            assert_double_equal(q->a[i][0], k * 100 + 10 * i + 0.25, 0);
            assert_double_equal(q->a[i][1], 7.5 + i, 0);
            assert_double_equal(q->b[i][0], k * 100 + 10 * i + 3, 0);
            assert_double_equal(q->b[i][1], 5.0 - i, 0);
        }
    }
    udhn_points_free(&T);
    /* A bad .npy (5 points) and a non-numpy file: named, exit 1, nothing written. */
    unlink(out);
    snprintf(cmd, sizeof cmd,
             PY " -c \"import numpy as np\n"
             "np.save('%s/Coordinate-v2/short.npy', np.array({'matche_pts': [[[1, 2], [3, 4]]] * 5}, dtype=object))\n"
             "open('%s/Coordinate-v2/junk.npy', 'w').write('junk')\n\"",
             dir, dir);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s/scripts/udhn-points' '%s' > /dev/null 2> '%s/err.txt'",
             GLOCAL_SOURCE_DIR, dir, dir);
    assert_int_equal(run(cmd), 1);
    assert_false(file_exists(out));
    char errp[512];
    snprintf(errp, sizeof errp, "%s/err.txt", dir);
    char *data = test_read_text(errp);
    assert_non_null(data);
    assert_non_null(strstr(data, "Coordinate-v2/short.npy"));
    assert_non_null(strstr(data, "(6, 2, 2)"));
    assert_non_null(strstr(data, "Coordinate-v2/junk.npy"));
    gl_free(data);
    /* No Coordinate-v2 folder. */
    snprintf(cmd, sizeof cmd, "'%s/scripts/udhn-points' '%s/nothing' 2>/dev/null", GLOCAL_SOURCE_DIR, dir);
    assert_int_equal(run(cmd), 1);
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

/* ---- glocal eval-dhe end to end --------------------------------------------------------- */

/* Bilinear sample of an RGB24 photo at (x, y), edge-clamped. */
static void sample(const image *p, double x, double y, uint8_t out[3])
{
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > p->width - 1) x = p->width - 1;
    if (y > p->height - 1) y = p->height - 1;
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < p->width ? x0 + 1 : x0, y1 = y0 + 1 < p->height ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    for (int c = 0; c < 3; c++) {
        double v = (1 - fy) * ((1 - fx) * p->data[(y0 * p->width + x0) * 3 + c] +
                               fx * p->data[(y0 * p->width + x1) * 3 + c]) +
                   fy * ((1 - fx) * p->data[(y1 * p->width + x0) * 3 + c] +
                         fx * p->data[(y1 * p->width + x1) * 3 + c]);
        out[c] = (uint8_t)(v + 0.5);
    }
}

static void invert3(const double h[9], double o[9])
{
    double det = h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6]) +
                 h[2] * (h[3] * h[7] - h[4] * h[6]);
    o[0] = (h[4] * h[8] - h[5] * h[7]) / det;
    o[1] = (h[2] * h[7] - h[1] * h[8]) / det;
    o[2] = (h[1] * h[5] - h[2] * h[4]) / det;
    o[3] = (h[5] * h[6] - h[3] * h[8]) / det;
    o[4] = (h[0] * h[8] - h[2] * h[6]) / det;
    o[5] = (h[2] * h[3] - h[0] * h[5]) / det;
    o[6] = (h[3] * h[7] - h[4] * h[6]) / det;
    o[7] = (h[1] * h[6] - h[0] * h[7]) / det;
    o[8] = (h[0] * h[4] - h[1] * h[3]) / det;
}

/* A (w x h) = the photo stretched to w x h; B(x) = A(H^-1 x), so B(H p) = A(p).
 * Both are sampled from the photo directly (one interpolation each). */
static void make_pair(const char *photo, const double H[9], int w, int h, const char *pa, const char *pb)
{
    image p = { 0 };
    OK(image_load(&p, photo, 3));
    uint8_t *a = malloc((size_t)w * h * 3), *b = malloc((size_t)w * h * 3);
    assert_non_null(a);
    assert_non_null(b);
    double Hi[9];
    invert3(H, Hi);
    const double sx = (double)(p.width - 1) / (w - 1), sy = (double)(p.height - 1) / (h - 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double u, v;
            sample(&p, x * sx, y * sy, a + ((size_t)y * w + x) * 3);
            apply_h(Hi, x, y, &u, &v);
            sample(&p, u * sx, v * sy, b + ((size_t)y * w + x) * 3);
        }
    OK(image_save_png(pa, a, w, h, 3));
    OK(image_save_png(pb, b, w, h, 3));
    free(a);
    free(b);
    image_release(&p);
}

/* "KEY x y x y ..." for points p_i and H p_i (swapped: H p_i first); returns
 * the analytic identity error, mean |H p - p|. */
static double points_line(char *buf, size_t n, const char *key, const double H[9], int swapped)
{
    const double px[UDHN_NPOINTS] = { 100, 520, 300, 150, 480, 330 };
    const double py[UDHN_NPOINTS] = { 80, 70, 180, 290, 280, 120 };
    size_t o = (size_t)snprintf(buf, n, "%s", key);
    double mean = 0;
    for (int i = 0; i < UDHN_NPOINTS; i++) {
        double qx, qy;
        apply_h(H, px[i], py[i], &qx, &qy);
        mean += hypot(qx - px[i], qy - py[i]) / UDHN_NPOINTS;
        if (swapped) o += (size_t)snprintf(buf + o, n - o, " %.10f %.10f %.10f %.10f", qx, qy, px[i], py[i]);
        else o += (size_t)snprintf(buf + o, n - o, " %.10f %.10f %.10f %.10f", px[i], py[i], qx, qy);
    }
    snprintf(buf + o, n - o, "\n");
    return mean;
}

static double jget(json_object *o, const char *method, const char *field)
{
    json_object *m, *ms, *v;
    assert_true(json_object_object_get_ex(o, "methods", &ms));
    assert_true(json_object_object_get_ex(ms, method, &m));
    if (!json_object_object_get_ex(m, field, &v) || json_object_is_type(v, json_type_null)) return NAN;
    return json_object_get_double(v);
}

/* The JSON object on the last line of DIR/out.txt (the caller puts it). */
static json_object *last_json(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/out.txt", dir);
    char *txt = test_read_text(p);
    assert_non_null(txt);
    size_t size = strlen(txt);
    while (size && txt[size - 1] == '\n') txt[--size] = 0;
    char *last = strrchr(txt, '\n');
    json_object *o = json_tokener_parse(last ? last + 1 : txt);
    if (!o) print_error("no JSON on the last line of:\n%s\n", txt);
    gl_free(txt);
    assert_non_null(o);
    return o;
}

static void test_command(void **state)
{
    (void)state;
    char dir[256], p[600], q[600], cmd[2048];
    assert_int_equal(test_tmpdir_make(dir, sizeof dir, "udhn_cmd_"), 0);
    /* Frames at the benchmark size 640x360, the methods run at that size. A
     * second run at --work-size 320x180 checks that H is rescaled to 640x360
     * pixels before scoring. */
    const int W = UDHN_WIDTH, Hh = UDHN_HEIGHT;
    /* RE pair: rotation 0.8 deg + scale 1.01 + shift (4, -3); LL pair: a mild
     * perspective with shift (-5, 2). At most ~9 px of motion. */
    const double c = cos(0.8 * M_PI / 180) * 1.01, s = sin(0.8 * M_PI / 180) * 1.01;
    const double H1[9] = { c, -s, 4 + 320 - c * 320 + s * 180, s, c, -3 + 180 - s * 320 - c * 180, 0, 0, 1 };
    const double H2[9] = { 1.0, 0.004, -5, -0.003, 1.0, 2, 1.5e-5, -1e-5, 1 };
    /* A pair of a video in no category: a translation (2.5, -1.5). */
    const double H3[9] = { 1, 0, 2.5, 0, 1, -1.5, 0, 0, 1 };
    snprintf(p, sizeof p, "%s/Test/0000011", dir);
    assert_int_equal(gl_mkdirs(p), 0);
    snprintf(p, sizeof p, "%s/Test/0000777", dir);
    assert_int_equal(gl_mkdirs(p), 0);
    snprintf(p, sizeof p, "%s/Test/00000100", dir);
    assert_int_equal(gl_mkdirs(p), 0);
    snprintf(p, sizeof p, "%s/Test/0000011/0000011_1.png", dir);
    snprintf(q, sizeof q, "%s/Test/0000011/0000011_2.png", dir);
    make_pair(PHOTOS "/coffee.png", H1, W, Hh, p, q);
    snprintf(p, sizeof p, "%s/Test/00000100/00000100_7.png", dir);
    snprintf(q, sizeof q, "%s/Test/00000100/00000100_9.png", dir);
    make_pair(PHOTOS "/astronaut.png", H2, W, Hh, p, q);
    snprintf(p, sizeof p, "%s/Test/0000777/a.png", dir);
    snprintf(q, sizeof q, "%s/Test/0000777/b.png", dir);
    make_pair(PHOTOS "/chelsea.png", H3, W, Hh, p, q);
    snprintf(p, sizeof p, "%s/Test/00000100/bad.png", dir);
    write_text(p, "not an image\n");
    /* The list: LM markers on the first pair, CRLF; then a pair whose image B
     * is missing, one whose image A is not an image (both have points) and
     * one without points. */
    snprintf(p, sizeof p, "%s/Test_List.txt", dir);
    write_text(p, "0000011/0000011_1.pngLM 0000011/0000011_2.pngLM\r\n"
                  "00000100/00000100_7.png 00000100/00000100_9.png\r\n"
                  "0000777/a.png 0000777/b.png\r\n"
                  "00000100/00000100_7.png 00000100/00000100_404.png\r\n"
                  "00000100/bad.png 00000100/00000100_9.png\r\n"
                  "00000100/00000100_9.png 00000100/00000100_7.png\r\n");
    char pts[4096], line[1024];
    double e1 = points_line(line, sizeof line, "0000011_1.pngLM_0000011_2.pngLM", H1, 0);
    snprintf(pts, sizeof pts, "# test points\n%s", line);
    double e2 = points_line(line, sizeof line, "00000100_7.png_00000100_9.png", H2, 1);
    strcat(pts, line);
    double e3 = points_line(line, sizeof line, "a.png_b.png", H3, 0);
    strcat(pts, line);
    assert_double_equal(e3, hypot(2.5, 1.5), 1e-9);
    points_line(line, sizeof line, "00000100_7.png_00000100_404.png", H2, 0);
    strcat(pts, line);
    points_line(line, sizeof line, "bad.png_00000100_9.png", H2, 0);
    strcat(pts, line);
    snprintf(p, sizeof p, "%s/udhn_points.txt", dir);
    write_text(p, pts);
    assert_true(e1 > 3 && e2 > 3); /* the identity is clearly wrong */

    snprintf(cmd, sizeof cmd,
             "'%s' --threads 2 eval-dhe '%s' --json > '%s/out.txt' 2> '%s/err.txt'",
             GLOCAL_BINARY, dir, dir, dir);
    assert_int_equal(run(cmd), 1); /* pairs skipped */
    char *data;
    json_object *o = last_json(dir);
    json_object *v, *pc;
    assert_true(json_object_object_get_ex(o, "skipped", &v));
    assert_int_equal(json_object_get_int(v), 3);
    assert_true(json_object_object_get_ex(o, "evaluated", &v));
    assert_int_equal(json_object_get_int(v), 3);
    assert_true(json_object_object_get_ex(o, "pairs", &pc));
    assert_true(json_object_object_get_ex(pc, "RE", &v));
    assert_int_equal(json_object_get_int(v), 1);
    assert_true(json_object_object_get_ex(pc, "LL", &v));
    assert_int_equal(json_object_get_int(v), 1);
    assert_true(json_object_object_get_ex(pc, "SF", &v));
    assert_int_equal(json_object_get_int(v), 0);
    assert_true(json_object_object_get_ex(pc, "all", &v));
    assert_int_equal(json_object_get_int(v), 3);
    /* Identity: exactly the analytic mean displacement (JSON keeps 6 digits). */
    assert_double_equal(jget(o, "identity", "RE"), e1, 1e-4 * e1);
    assert_double_equal(jget(o, "identity", "LL"), e2, 1e-4 * e2);
    assert_double_equal(jget(o, "identity", "mean"), (e1 + e2) / 2, 1e-4 * e1);
    assert_double_equal(jget(o, "identity", "all"), (e1 + e2 + e3) / 3, 1e-4 * e1);
    assert_true(isnan(jget(o, "identity", "SF")));
    /* The estimators recover the homographies to under a pixel. */
    const char *good[] = { "refine", "tvl1-ransac", "dis-ransac" };
    for (int k = 0; k < 3; k++)
        for (int cat = 0; cat < 3; cat++) {
            const char *col = cat == 0 ? "RE" : cat == 1 ? "LL" : "all";
            double e = jget(o, good[k], col);
            if (!(e < 1.0)) {
                print_error("%s %s error %g px, expected < 1\n", good[k], col, e);
                fail();
            }
        }
    json_object_put(o);
    /* The skipped pairs are named on stderr with their list lines and why. */
    snprintf(p, sizeof p, "%s/err.txt", dir);
    data = test_read_text(p);
    assert_non_null(data);
    if (!strstr(data, "Test_List.txt:4 00000100_7.png_00000100_404.png") ||
        !strstr(data, "00000100_404.png: cannot open") ||
        !strstr(data, "Test_List.txt:5 bad.png_00000100_9.png") ||
        !strstr(data, "Test_List.txt:6 00000100_9.png_00000100_7.png") ||
        !strstr(data, "no point entry in")) {
        print_error("stderr does not name the skipped pair:\n%s\n", (char *)data);
        fail();
    }
    gl_free(data);
    /* Without the bad line: exit 0 (through the `eval-motion --dhe DIR` spelling);
     * without the points file: exit 1 and the hint. */
    snprintf(p, sizeof p, "%s/Test_List.txt", dir);
    write_text(p, "0000011/0000011_1.pngLM 0000011/0000011_2.pngLM\n");
    snprintf(cmd, sizeof cmd,
             "'%s' --threads 2 eval-motion --work-size 320x180 --dhe '%s' --json > '%s/out.txt' 2> /dev/null",
             GLOCAL_BINARY, dir, dir);
    assert_int_equal(run(cmd), 0);
    o = last_json(dir);
    assert_double_equal(jget(o, "identity", "RE"), e1, 1e-4 * e1);
    for (int k = 0; k < 2; k++) {
        double e = jget(o, good[k], "RE");
        if (!(e < 1.0)) {
            print_error("%s at 320x180: error %g px at 640x360, expected < 1\n", good[k], e);
            fail();
        }
    }
    json_object_put(o);
    /* With a model (an untrained tiny one: its network H is near the identity,
     * so only "glocal" = network + refinement has a known answer): both rows. */
    snprintf(p, sizeof p, "%s/m.h5", dir);
    OK(glocal_tiny_checkpoint(p));
    snprintf(cmd, sizeof cmd,
             "'%s' --threads 2 eval-dhe '%s' --model '%s' --no-tvl1 --work-size 320x180 --json "
             "> '%s/out.txt' 2> /dev/null",
             GLOCAL_BINARY, dir, p, dir);
    assert_int_equal(run(cmd), 0);
    o = last_json(dir);
    assert_true(jget(o, "glocal", "RE") < 1.0);
    assert_true(isfinite(jget(o, "glocal-net", "RE")));
    assert_true(isnan(jget(o, "glocal-net", "LL")));
    json_object *ms, *tv;
    assert_true(json_object_object_get_ex(o, "methods", &ms));
    assert_false(json_object_object_get_ex(ms, "tvl1-ransac", &tv)); /* --no-tvl1 */
    assert_true(json_object_object_get_ex(ms, "dis-ransac", &tv));
    json_object_put(o);
    snprintf(p, sizeof p, "%s/udhn_points.txt", dir);
    unlink(p);
    snprintf(cmd, sizeof cmd, "'%s' eval-dhe '%s' --no-tvl1 2> '%s/err.txt' > /dev/null", GLOCAL_BINARY,
             dir, dir);
    assert_int_equal(run(cmd), 1);
    snprintf(p, sizeof p, "%s/err.txt", dir);
    data = test_read_text(p);
    assert_non_null(data);
    assert_non_null(strstr(data, "scripts/udhn-points"));
    gl_free(data);
    /* Usage errors: exit 2. */
    snprintf(cmd, sizeof cmd, "'%s' eval-dhe 2>/dev/null", GLOCAL_BINARY);
    assert_int_equal(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' eval-dhe '%s' --work-size 10x10 2>/dev/null", GLOCAL_BINARY, dir);
    assert_int_equal(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' eval-dhe --help > /dev/null", GLOCAL_BINARY);
    assert_int_equal(run(cmd), 0);
    assert_int_equal(test_tmpdir_remove(dir), 0);
}

static int setup(void **state)
{
    (void)state;
    return nn_runtime_init(1, "cpu") < 0 ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_real),
        cmocka_unit_test(test_categories),
        cmocka_unit_test(test_list_formats),
        cmocka_unit_test(test_list_alloc_failures),
        cmocka_unit_test(test_pair_error),
        cmocka_unit_test(test_points_file),
        cmocka_unit_test(test_frame_load),
        cmocka_unit_test(test_converter),
        cmocka_unit_test(test_command),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
