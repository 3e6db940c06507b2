/* bench_tvl1 — glocal's TV-L1 on two FlyingChairs-format pairs (512x384), for the
 * interleaved comparison with OpenCV's DualTVL1 that scripts/bench runs
 * (bench/tvl1_opencv.py does the same on the same frames).
 *
 *   bench_tvl1 frames DATA OUT
 *       reads DATA/000000{0,1}-img{0,1}.ppm, converts to grey (BT.601) and
 *       writes OUT/pair{0,1}_WxH_{0,1}.png at 512x384, 320x240 and 128x128
 *       (bilinear, anti-aliased): both programs read exactly these frames.
 *   bench_tvl1 run FRAMES WxH THREADS CONFIG REPEAT [DATA]
 *       CONFIG is default (IPOL) or opencv; prints one JSON line with the
 *       median ms per pair over REPEAT rounds of both pairs and, at 512x384
 *       with DATA given, the EPE of each pair against the -gt.flo files.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/flow_bench.h"
#include "datasets/image.h"
#include "motion/flow.h"

static const int sizes[3][2] = { { 512, 384 }, { 320, 240 }, { 128, 128 } };

/* Bilinear resize after a box pre-filter of the scale ratio (cheap
 * anti-aliasing); a benchmark input, not part of the library. */
static void resize(const float *src, int w, int h, float *dst, int wd, int hd)
{
    float sx = (float)w / wd, sy = (float)h / hd;
    for (int y = 0; y < hd; y++)
        for (int x = 0; x < wd; x++) {
            float x0 = x * sx, y0 = y * sy, acc = 0;
            int cnt = 0;
            for (float yy = y0; yy < y0 + sy - 1e-4f; yy += 1)
                for (float xx = x0; xx < x0 + sx - 1e-4f; xx += 1) {
                    int xi = (int)xx, yi = (int)yy;
                    int x1 = xi + 1 < w ? xi + 1 : xi, y1 = yi + 1 < h ? yi + 1 : yi;
                    float fx = xx - xi, fy = yy - yi;
                    acc += (1 - fy) * ((1 - fx) * src[yi * w + xi] + fx * src[yi * w + x1]) +
                           fy * ((1 - fx) * src[y1 * w + xi] + fx * src[y1 * w + x1]);
                    cnt++;
                }
            dst[y * wd + x] = acc / cnt;
        }
}

static int cmd_frames(const char *data, const char *out)
{
    int rc = gl_mkdirs(out);
    if (rc < 0) return rc;
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 2; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/000000%d-img%d.ppm", data, p, k);
            image img = { 0 };
            if ((rc = image_load(&img, path, 3)) < 0) return rc;
            float *g = malloc(sizeof(float) * img.width * img.height);
            float *r = malloc(sizeof(float) * 512 * 384);
            uint8_t *b = malloc(512 * 384);
            if (!g || !r || !b) return GL_ENOMEM;
            flow_gray_from_rgb24(img.data, img.width, img.height, g);
            for (int s = 0; s < 3 && rc >= 0; s++) {
                int w = sizes[s][0], h = sizes[s][1];
                resize(g, img.width, img.height, r, w, h);
                for (int i = 0; i < w * h; i++) b[i] = (uint8_t)lrintf(r[i]);
                snprintf(path, sizeof path, "%s/pair%d_%dx%d_%d.png", out, p, w, h, k);
                rc = image_save_png(path, b, w, h, 1);
            }
            free(b);
            free(r);
            free(g);
            image_release(&img);
            if (rc < 0) return rc;
        }
    return 0;
}

static int tvl1_pair(void *ctx, const float *a, const float *b, flow_field *f)
{
    return tvl1_flow(a, b, f->width, f->height, ctx, f);
}

static int cmd_run(const char *frames, int w, int h, int threads, const char *config, int repeat,
                   const char *data)
{
    tvl1_config cfg;
    if (!strcmp(config, "default"))
        tvl1_config_default(&cfg);
    else if (!strcmp(config, "opencv"))
        tvl1_config_opencv(&cfg);
    else
        return gl_error(GL_EINVAL, "config '%s': expected default or opencv", config);
    gl_set_num_threads(threads);
    float *img[2][2] = { { 0 } };
    flow_field f[2] = { { 0 } };
    int rc = 0;
    for (int p = 0; p < 2; p++) {
        for (int k = 0; k < 2; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/pair%d_%dx%d_%d.png", frames, p, w, h, k);
            image im = { 0 };
            if ((rc = image_load(&im, path, 1)) < 0) return rc;
            img[p][k] = malloc(sizeof(float) * w * h);
            if (!img[p][k]) return GL_ENOMEM;
            for (int i = 0; i < w * h; i++) img[p][k][i] = im.data[i];
            image_release(&im);
        }
        if ((rc = flow_field_new(&f[p], w, h)) < 0) return rc;
    }
    double ms;
    if ((rc = bench_time_pairs(tvl1_pair, &cfg, img, f, 2, repeat, &ms)) < 0) return rc;
    printf("{\"impl\": \"glocal\", \"config\": \"%s\", \"size\": \"%dx%d\", \"threads\": %d, "
           "\"ms_per_pair\": %.1f",
           config, w, h, threads, ms);
    if (data && w == 512 && h == 384) {
        char gt[2][4096];
        const char *gtp[2] = { gt[0], gt[1] };
        for (int p = 0; p < 2; p++) snprintf(gt[p], sizeof gt[p], "%s/000000%d-gt.flo", data, p);
        if ((rc = bench_print_epe(f, gtp, 2, 3)) < 0) return rc;
    }
    printf("}\n");
    bench_free_pairs(img, f, 2);
    return 0;
}

int main(int argc, char **argv)
{
    int rc;
    if (argc == 4 && !strcmp(argv[1], "frames")) {
        rc = cmd_frames(argv[2], argv[3]);
    } else if ((argc == 7 || argc == 8) && !strcmp(argv[1], "run")) {
        int w, h;
        if (sscanf(argv[3], "%dx%d", &w, &h) != 2) {
            fprintf(stderr, "bench_tvl1: size '%s': expected WxH\n", argv[3]);
            return 2;
        }
        rc = cmd_run(argv[2], w, h, atoi(argv[4]), argv[5], atoi(argv[6]) > 0 ? atoi(argv[6]) : 1,
                     argc == 8 ? argv[7] : NULL);
    } else {
        fprintf(stderr, "usage: bench_tvl1 frames DATA OUT\n"
                        "       bench_tvl1 run FRAMES WxH THREADS default|opencv REPEAT [DATA]\n");
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "bench_tvl1: %s\n", gl_last_error());
        return 1;
    }
    return 0;
}
