/* synth_testutil.h — what test_synth.c (rendering) and test_synth_write.c
 * (the written dataset) share: a small config, the photometric check of
 * frames against a flow, and a temporary folder per program. Test-only:
 * static functions. */
#ifndef GLOCAL_TESTS_SYNTH_TESTUTIL_H
#define GLOCAL_TESTS_SYNTH_TESTUTIL_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "datasets/synth.h"

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

#endif
