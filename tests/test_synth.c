/* test_synth.c — the synthetic benchmark (datasets/synth.h) against
 * independent truth: frames must agree with the ground-truth flow
 * photometrically (raw and after the codec), the homography with the
 * global flow at the corners, the object motion with the class by its
 * analytic signature (direction, curl, divergence), and the written dataset
 * with the UCF-101 list format, the group split and byte-for-byte
 * reproducibility. */
#include <dirent.h>
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

/* ---- helpers ------------------------------------------------------------- */

static synth_config tiny_config(int w, int h, int frames, double camera)
{
    synth_config c = synth_config_default();
    c.width = w;
    c.height = h;
    c.frames = frames;
    c.camera = camera;
    c.classes = SYNTH_MAX_CLASSES;
    c.seed = 7;
    return c;
}

static const double bt601[3] = { 0.299, 0.587, 0.114 };

static double bilinear(const uint8_t *img, int W, int H, int ch, double x, double y)
{
    int x0 = (int)floor(x), y0 = (int)floor(y);
    double ax = x - x0, ay = y - y0;
    const uint8_t *p00 = img + 3 * ((size_t)y0 * W + x0) + ch;
    double top = p00[0] + ax * (p00[3] - p00[0]);
    double bot = p00[3 * W] + ax * (p00[3 * W + 3] - p00[3 * W]);
    (void)H;
    return top + ay * (bot - top);
}

/* Backward warp I_t(p) ~ I_{t+1}(p + f(p)), f = global + local, on pixels we
 * can judge: target inside the image, p not at an object border in frame t,
 * the owner at the target in frame t+1 (3x3 around it) the same as p's
 * (which excludes occlusions). Returns mean abs error (per channel, 0..255)
 * of the warp and of no warp over the same pixels. */
static void warp_errors(const uint8_t *f0, const uint8_t *f1, const float *gflow,
                        const float *lflow, const uint8_t *m0, const uint8_t *m1, int W, int H,
                        int luma, double *err_warp, double *err_none, long *count)
{
    size_t hw = (size_t)W * H;
    double ew = 0, en = 0;
    long n = 0;
    for (int y = 1; y < H - 1; y++)
        for (int x = 1; x < W - 1; x++) {
            size_t i = (size_t)y * W + x;
            int own = m0[i], border = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    if (m0[i + dy * W + dx] != own) border = 1;
            if (border) continue;
            double u = x + gflow[i] + lflow[i], v = y + gflow[hw + i] + lflow[hw + i];
            if (u < 1 || v < 1 || u > W - 2 || v > H - 2) continue;
            int ux = (int)lround(u), vy = (int)lround(v);
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    if (m1[(size_t)(vy + dy) * W + ux + dx] != own) border = 1;
            if (border) continue;
            if (luma) { /* BT.601 luma: MPEG-4 keeps chroma at half resolution */
                double a = 0, b = 0, z = 0;
                for (int c = 0; c < 3; c++) {
                    a += bt601[c] * f0[3 * i + c];
                    b += bt601[c] * bilinear(f1, W, H, c, u, v);
                    z += bt601[c] * f1[3 * i + c];
                }
                ew += 3 * fabs(a - b);
                en += 3 * fabs(a - z);
            } else {
                for (int c = 0; c < 3; c++) {
                    double a = f0[3 * i + c];
                    ew += fabs(a - bilinear(f1, W, H, c, u, v));
                    en += fabs(a - f1[3 * i + c]);
                }
            }
            n++;
        }
    *err_warp = n ? ew / (3.0 * n) : 0;
    *err_none = n ? en / (3.0 * n) : 0;
    *count = n;
}

static char tmp_root[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/glocal_test_synth_%ld", (long)getpid());
    return gl_mkdirs(tmp_root) < 0 ? -1 : 0;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    char buf[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(buf, sizeof buf, "%s/%s", path, e->d_name);
        remove_tree(buf);
    }
    closedir(d);
    rmdir(path);
}

static int teardown_tmp(void **state)
{
    (void)state;
    remove_tree(tmp_root);
    return 0;
}

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
        cmocka_unit_test(test_config_validate),
        cmocka_unit_test(test_raw_frames_match_flow),
        cmocka_unit_test(test_photo_textures),
        cmocka_unit_test(test_homography_and_global_flow),
        cmocka_unit_test(test_local_flow_is_the_class),
        cmocka_unit_test(test_dataset_lists),
        cmocka_unit_test(test_video_matches_ground_truth),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_pair_render),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_bad_texture_folder),
        cmocka_unit_test(test_gt_load_rejects_bad_files),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
