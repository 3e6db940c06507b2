/* test_synth_write.c — the synthetic benchmark as written to disk
 * (datasets/synth.h, synth_dataset_write and synth_gt_load): the videos
 * against the HDF5 ground truth photometrically (after the codec), the
 * lists against the UCF-101 format and the group split, byte-for-byte
 * reproducibility, and bad ground-truth files. test_synth.c has the
 * rendering. */
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "datasets/synth.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"
#include "tests/synth_testutil.h"

/* ---- the written dataset ---------------------------------------------------- */

static void write_set(const char *dir, uint64_t seed, int classes, int clips)
{
    synth_config cfg = tiny_config(32, 32, 6, 1.0);
    cfg.classes = classes;
    cfg.seed = seed;
    synth *s = NULL;
    assert_int_equal(synth_new(&cfg, &s), 0);
    synth_dataset_options opt = { .out_dir = dir, .clips_per_class = clips };
    int rc = synth_dataset_write(s, &opt);
    if (rc < 0) print_error("synth_dataset_write: %s\n", gl_last_error());
    assert_int_equal(rc, 0);
    synth_free(&s);
}

static char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    *size = got;
    return buf;
}

#define MAXL 64
typedef struct {
    int n;
    char path[MAXL][128];
    int label[MAXL];
} list;

/* Reads a CRLF list with plain C: "path[ label]\r\n" lines. */
static void read_list(const char *file, int with_label, list *l)
{
    size_t size;
    char *buf = read_all(file, &size);
    assert_non_null(buf);
    l->n = 0;
    char *p = buf;
    while (*p) {
        char *eol = strstr(p, "\r\n");
        assert_non_null(eol); /* every line ends with CRLF */
        *eol = 0;
        assert_true(l->n < MAXL);
        if (with_label) {
            char *sp = strrchr(p, ' ');
            assert_non_null(sp);
            *sp = 0;
            l->label[l->n] = atoi(sp + 1);
        } else {
            assert_null(strchr(p, ' '));
            l->label[l->n] = 0;
        }
        snprintf(l->path[l->n], sizeof l->path[0], "%s", p);
        l->n++;
        p = eol + 2;
    }
    free(buf);
}

static void test_dataset_lists(void **state)
{
    (void)state;
    char dir[300], file[700];
    snprintf(dir, sizeof dir, "%s/lists", tmp_root);
    const int classes = 3, clips = 5;
    write_set(dir, 11, classes, clips);

    /* classInd.txt: "1 TranslateRight" ... */
    snprintf(file, sizeof file, "%s/classInd.txt", dir);
    list ci;
    size_t size = 0;
    char *raw = read_all(file, &size);
    assert_non_null(raw);
    char names[SYNTH_MAX_CLASSES][32];
    int nc = 0;
    for (char *p = raw; *p;) {
        int idx;
        char name[32];
        assert_int_equal(sscanf(p, "%d %31s", &idx, name), 2);
        assert_int_equal(idx, nc + 1);
        snprintf(names[nc++], 32, "%s", name);
        p = strstr(p, "\r\n");
        assert_non_null(p);
        p += 2;
    }
    free(raw);
    (void)ci;
    assert_int_equal(nc, classes);

    list tr, te;
    snprintf(file, sizeof file, "%s/trainlist01.txt", dir);
    read_list(file, 1, &tr);
    snprintf(file, sizeof file, "%s/testlist01.txt", dir);
    read_list(file, 0, &te);
    assert_int_equal(tr.n + te.n, classes * clips);
    int ntr[SYNTH_MAX_CLASSES] = { 0 }, nte[SYNTH_MAX_CLASSES] = { 0 };
    int groups_train[SYNTH_MAX_CLASSES][100] = { { 0 } }, groups_test[SYNTH_MAX_CLASSES][100] = {
        { 0 }
    };
    for (int pass = 0; pass < 2; pass++) {
        list *l = pass ? &te : &tr;
        for (int i = 0; i < l->n; i++) {
            char cls[64], cls2[64];
            int g, k;
            /* Class/v_Class_gGG_cCC.avi */
            char *slash = strchr(l->path[i], '/');
            assert_non_null(slash);
            snprintf(cls, sizeof cls, "%.*s", (int)(slash - l->path[i]), l->path[i]);
            assert_int_equal(sscanf(slash + 1, "v_%63[^_]_g%d_c%d.avi", cls2, &g, &k), 3);
            assert_string_equal(cls, cls2);
            int c = -1;
            for (int j = 0; j < nc; j++)
                if (!strcmp(names[j], cls)) c = j;
            assert_true(c >= 0);
            if (!pass) assert_int_equal(tr.label[i], c + 1);
            assert_true(g >= 1 && g < 100 && k >= 1);
            (pass ? nte : ntr)[c]++;
            (pass ? groups_test : groups_train)[c][g] = 1;
            /* the video and its ground truth exist */
            struct stat st;
            snprintf(file, sizeof file, "%s/%s", dir, l->path[i]);
            assert_int_equal(stat(file, &st), 0);
            assert_true(st.st_size > 0);
            snprintf(file, sizeof file, "%s/%s/v_%s_g%02d_c%02d_gt.h5", dir, cls, cls, g, k);
            assert_int_equal(stat(file, &st), 0);
        }
    }
    /* the project's UCF-101 index reads it too: all files found, no group
     * in two splits */
    dataset_index *idx = NULL;
    assert_int_equal(dataset_index_load(&idx, dir, NULL, 1), 0);
    assert_int_equal(idx->num_classes, classes);
    assert_int_equal(idx->num_split[DATASET_TRAIN], tr.n);
    assert_int_equal(idx->num_split[DATASET_TEST], te.n);
    assert_int_equal(idx->num_missing, 0);
    dataset_index_free(&idx);
    for (int c = 0; c < classes; c++) {
        assert_int_equal(ntr[c], ntr[0]); /* balanced */
        assert_int_equal(nte[c], nte[0]);
        assert_true(nte[c] > 0 && ntr[c] > nte[c]);
        for (int g = 0; g < 100; g++) assert_false(groups_train[c][g] && groups_test[c][g]);
    }
}

/* ---- the written videos against the HDF5 ground truth ----------------------- */

static void h5_read(hid_t f, const char *name, hid_t type, void *out)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Dclose(d);
}

static uint64_t h5_attr_u64(hid_t f, const char *name)
{
    uint64_t v = 0;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Aread(a, H5T_NATIVE_UINT64, &v) >= 0);
    H5Aclose(a);
    return v;
}

/* Mean abs luma difference of two RGB24 frames. */
static double luma_mae(const uint8_t *a, const uint8_t *b, size_t hw)
{
    double e = 0;
    for (size_t i = 0; i < hw; i++) {
        double d = 0;
        for (int c = 0; c < 3; c++) d += bt601[c] * ((double)a[3 * i + c] - b[3 * i + c]);
        e += fabs(d);
    }
    return e / (double)hw;
}

static void test_video_matches_ground_truth(void **state)
{
    (void)state;
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/video", tmp_root);
    synth_config cfg = tiny_config(48, 48, 6, 1.0);
    cfg.classes = 2;
    cfg.seed = 3;
    synth *s = NULL;
    assert_int_equal(synth_new(&cfg, &s), 0);
    synth_dataset_options opt = { .out_dir = dir, .clips_per_class = 2 };
    assert_int_equal(synth_dataset_write(s, &opt), 0);
    const int W = 48, H = 48, T = 6;
    size_t hw = (size_t)W * H;
    uint8_t *rgb = malloc(3 * hw * T);
    float *gf = malloc(sizeof(float) * 2 * hw * (T - 1));
    float *lf = malloc(sizeof(float) * 2 * hw * (T - 1));
    uint8_t *mask = malloc(hw * (T - 1));
    double *hom = malloc(sizeof(double) * 9 * (T - 1));
    double worst = 0;
    for (int c = 0; c < 2; c++)
        for (int g = 1; g <= 2; g++) {
            const char *cls = synth_class_name(c);
            snprintf(path, sizeof path, "%s/%s/v_%s_g%02d_c01.avi", dir, cls, cls, g);
            video_reader *r = NULL;
            assert_int_equal(video_reader_open(&r, path, NULL), 0);
            video_info info;
            video_reader_info(r, &info);
            assert_int_equal(info.width, W);
            assert_int_equal(info.height, H);
            int t = 0;
            while (t < T && video_reader_read(r, rgb + 3 * hw * t, NULL) == 0) t++;
            assert_int_equal(t, T);
            assert_int_equal(video_reader_read(r, rgb, NULL), GL_EOF);
            video_reader_close(&r);

            snprintf(path, sizeof path, "%s/%s/v_%s_g%02d_c01_gt.h5", dir, cls, cls, g);
            hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
            assert_true(f >= 0);
            h5_read(f, "homography", H5T_NATIVE_DOUBLE, hom);
            h5_read(f, "global_flow", H5T_NATIVE_FLOAT, gf);
            h5_read(f, "local_flow", H5T_NATIVE_FLOAT, lf);
            h5_read(f, "mask", H5T_NATIVE_UINT8, mask);
            assert_int_equal((int)h5_attr_u64(f, "label"), c + 1);
            uint64_t scene_seed = h5_attr_u64(f, "scene_seed");
            uint64_t motion_seed = h5_attr_u64(f, "motion_seed");
            H5Fclose(f);

            /* the seeds in the file render the same clip again */
            synth_clip *raw = NULL;
            assert_int_equal(synth_clip_render(s, c, scene_seed, motion_seed, 0, &raw), 0);
            assert_memory_equal(raw->homography, hom, sizeof(double) * 9 * (T - 1));
            assert_memory_equal(raw->global_flow, gf, sizeof(float) * 2 * hw * (T - 1));
            assert_memory_equal(raw->local_flow, lf, sizeof(float) * 2 * hw * (T - 1));
            assert_memory_equal(raw->mask, mask, hw * (T - 1));
            /* and synth_gt_load reads back what the plain HDF5 calls read */
            synth_clip *gt = NULL;
            assert_int_equal(synth_gt_load(path, &gt), 0);
            assert_null(gt->rgb);
            assert_int_equal(gt->label, c);
            assert_int_equal(gt->frames, T);
            assert_int_equal(gt->objects, raw->objects);
            assert_true(gt->camera_px == raw->camera_px);
            assert_memory_equal(gt->homography, hom, sizeof(double) * 9 * (T - 1));
            assert_memory_equal(gt->local_flow, lf, sizeof(float) * 2 * hw * (T - 1));
            assert_memory_equal(gt->mask, mask, hw * (T - 1));
            synth_clip_free(&gt);

            double sum_warp = 0, sum_none = 0;
            for (int k = 0; k + 2 < T; k++) {
                double ew, en, rw, rn;
                long n, rnn;
                warp_errors(rgb + 3 * hw * k, rgb + 3 * hw * (k + 1), gf + 2 * hw * k,
                            lf + 2 * hw * k, mask + hw * k, mask + hw * (k + 1), W, H, 1, &ew,
                            &en, &n);
                warp_errors(raw->rgb + 3 * hw * k, raw->rgb + 3 * hw * (k + 1), gf + 2 * hw * k,
                            lf + 2 * hw * k, mask + hw * k, mask + hw * (k + 1), W, H, 1, &rw,
                            &rn, &rnn);
                /* the codec's own error on both frames (luma) */
                double codec = luma_mae(rgb + 3 * hw * k, raw->rgb + 3 * hw * k, hw) +
                               luma_mae(rgb + 3 * hw * (k + 1), raw->rgb + 3 * hw * (k + 1), hw);
                assert_true(n > (long)hw / 3);
                sum_warp += ew;
                sum_none += en;
                assert_true(ew <= rw + codec); /* within the codec's error */
            }
            /* clearly better than no warp (over the clip: single pairs with
             * little motion have little no-warp error to beat) */
            assert_true(sum_warp < 0.35 * sum_none);
            if (sum_warp / sum_none > worst) worst = sum_warp / sum_none;
            synth_clip_free(&raw);
        }
    print_message("decoded video (luma): worst clip's warp error %.3f of no-warp\n", worst);
    synth_free(&s);
    free(rgb);
    free(gf);
    free(lf);
    free(mask);
    free(hom);
}

/* ---- reproducibility -------------------------------------------------------- */

static int files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    int eq = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return eq;
}

static void test_same_seed_same_bytes(void **state)
{
    (void)state;
    char a[300], b[300], c[300], fa[400], fb[400], fc[400];
    snprintf(a, sizeof a, "%s/seed_a", tmp_root);
    snprintf(b, sizeof b, "%s/seed_b", tmp_root);
    snprintf(c, sizeof c, "%s/seed_c", tmp_root);
    /* one thread and three threads: the clip order on disk must not matter */
    int threads = gl_num_threads();
    gl_set_num_threads(1);
    write_set(a, 42, 2, 2);
    gl_set_num_threads(3);
    write_set(b, 42, 2, 2);
    gl_set_num_threads(threads);
    write_set(c, 43, 2, 2);
    const char *files[] = { "classInd.txt", "trainlist01.txt", "testlist01.txt",
                            "TranslateRight/v_TranslateRight_g01_c01.avi",
                            "TranslateRight/v_TranslateRight_g01_c01_gt.h5",
                            "TranslateLeft/v_TranslateLeft_g02_c01.avi",
                            "TranslateLeft/v_TranslateLeft_g02_c01_gt.h5" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[i]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[i]);
        snprintf(fc, sizeof fc, "%s/%s", c, files[i]);
        assert_true(files_equal(fa, fb));
        if (strstr(files[i], "/")) assert_false(files_equal(fa, fc));
    }
}

static void test_gt_load_rejects_bad_files(void **state)
{
    (void)state;
    char dir[300], good[400], path[400];
    snprintf(dir, sizeof dir, "%s/badgt", tmp_root);
    write_set(dir, 5, 1, 2);
    snprintf(good, sizeof good, "%s/TranslateRight/v_TranslateRight_g01_c01_gt.h5", dir);
    synth_clip *c = NULL;
    assert_int_equal(synth_gt_load(good, &c), 0);
    synth_clip_free(&c);

    snprintf(path, sizeof path, "%s/missing_gt.h5", dir);
    assert_int_equal(synth_gt_load(path, &c), GL_EIO);
    assert_null(c);

    /* not HDF5 at all */
    snprintf(path, sizeof path, "%s/text_gt.h5", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("hello", f);
    fclose(f);
    assert_int_equal(synth_gt_load(path, &c), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "text_gt.h5"));

    /* HDF5, but not ours */
    snprintf(path, sizeof path, "%s/other_gt.h5", dir);
    hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(h >= 0);
    H5Fclose(h);
    assert_int_equal(synth_gt_load(path, &c), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "glocal-synth-gt"));

    /* a real file cut short: an error, never a crash */
    size_t size = 0;
    char *bytes = read_all(good, &size);
    assert_non_null(bytes);
    snprintf(path, sizeof path, "%s/cut_gt.h5", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(bytes, 1, size / 2, f);
    fclose(f);
    free(bytes);
    assert_true(synth_gt_load(path, &c) < 0);
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_lists),
        cmocka_unit_test(test_video_matches_ground_truth),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_gt_load_rejects_bad_files),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
