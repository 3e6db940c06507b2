/* bench_dis — glocal's DIS flow on sample pairs, for the interleaved
 * comparison with OpenCV's DISOpticalFlow that scripts/bench runs
 * (bench/dis_opencv.py does the same on the same frames).
 *
 *   bench_dis frames PAIRS OUT
 *       for every PAIRS/NAME-img0.ppm with its NAME-img1.ppm and NAME-gt.flo
 *       (FlyingChairs naming; any image format datasets/image.h reads),
 *       sorted by name: converts to grey (BT.601, rounded to 8 bits) and
 *       writes OUT/pairK_full_{0,1}.png at the native size and
 *       OUT/pairK_half_{0,1}.png at half size (2x2 means, rounded), and
 *       OUT/pairs.txt, one line "K NAME WIDTH HEIGHT GT" per pair: both
 *       programs read exactly these frames.
 *   bench_dis run FRAMES full|half THREADS PRESET REPEAT [FIELD=VALUE...]
 *       PRESET is ultrafast, fast or medium; FIELD=VALUE overrides an int
 *       field of dis_config (finest_scale, coarsest_scale, patch_size,
 *       patch_stride, grad_descent_iters, var_refine_iters, var_sor_iters,
 *       use_mean_normalization, use_spatial_propagation, opencv_rounding).
 *       Prints one JSON line with the median ms per pair over REPEAT rounds
 *       of all pairs and, at full size, the EPE of each pair against its
 *       ground truth.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/flow_bench.h"
#include "datasets/image.h"
#include "motion/flow.h"

#define MAX_PAIRS 64

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dis_pair(void *ctx, const float *a, const float *b, flow_field *f)
{
    return dis_flow(a, b, f->width, f->height, ctx, f);
}

static int save_gray(const char *path, const float *g, int w, int h)
{
    uint8_t *b = malloc((size_t)w * h);
    if (!b) return GL_ENOMEM;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float v = g[i] < 0 ? 0 : g[i] > 255 ? 255 : g[i];
        b[i] = (uint8_t)lrintf(v);
    }
    int rc = image_save_png(path, b, w, h, 1);
    free(b);
    return rc;
}

static int cmd_frames(const char *pairs, const char *out)
{
    int rc = gl_mkdirs(out);
    if (rc < 0) return rc;
    DIR *d = opendir(pairs);
    if (!d) return gl_error(GL_EIO, "%s: cannot open the folder of pairs", pairs);
    char *names[MAX_PAIRS];
    int n = 0;
    struct dirent *e;
    const char *suffix = "-img0.ppm";
    size_t ls = strlen(suffix);
    while ((e = readdir(d)) && n < MAX_PAIRS) {
        size_t l = strlen(e->d_name);
        if (l > ls && !strcmp(e->d_name + l - ls, suffix)) {
            names[n] = strdup(e->d_name);
            if (!names[n]) break;
            names[n][l - ls] = 0;
            n++;
        }
    }
    closedir(d);
    if (n == 0) return gl_error(GL_ENOTFOUND, "%s: no NAME-img0.ppm pairs", pairs);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    char list[4096];
    snprintf(list, sizeof list, "%s/pairs.txt", out);
    FILE *lf = fopen(list, "w");
    if (!lf) return gl_error(GL_EIO, "%s: cannot write", list);
    for (int p = 0; p < n && rc >= 0; p++) {
        for (int k = 0; k < 2 && rc >= 0; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s-img%d.ppm", pairs, names[p], k);
            image img = { 0 };
            if ((rc = image_load(&img, path, 3)) < 0) break;
            int w = img.width, h = img.height, hw = w / 2, hh = h / 2;
            float *g = malloc(sizeof(float) * w * h), *r = malloc(sizeof(float) * hw * hh);
            if (!g || !r) rc = GL_ENOMEM;
            if (rc >= 0) rc = flow_gray_from_rgb24(img.data, w, h, g);
            /* the 8-bit frame both programs see, then its half */
            for (size_t i = 0; rc >= 0 && i < (size_t)w * h; i++) g[i] = (float)lrintf(g[i]);
            for (int y = 0; rc >= 0 && y < hh; y++)
                for (int x = 0; x < hw; x++) {
                    const float *a = g + (size_t)2 * y * w + 2 * x;
                    r[y * hw + x] = 0.25f * (a[0] + a[1] + a[w] + a[w + 1]);
                }
            if (rc >= 0) {
                snprintf(path, sizeof path, "%s/pair%d_full_%d.png", out, p, k);
                rc = save_gray(path, g, w, h);
            }
            if (rc >= 0) {
                snprintf(path, sizeof path, "%s/pair%d_half_%d.png", out, p, k);
                rc = save_gray(path, r, hw, hh);
            }
            if (rc >= 0 && k == 0)
                fprintf(lf, "%d %s %d %d %s/%s-gt.flo\n", p, names[p], w, h, pairs, names[p]);
            free(r);
            free(g);
            image_release(&img);
        }
    }
    fclose(lf);
    for (int p = 0; p < n; p++) free(names[p]);
    return rc;
}

static int set_field(dis_config *c, const char *kv)
{
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        { "finest_scale", offsetof(dis_config, finest_scale) },
        { "coarsest_scale", offsetof(dis_config, coarsest_scale) },
        { "patch_size", offsetof(dis_config, patch_size) },
        { "patch_stride", offsetof(dis_config, patch_stride) },
        { "grad_descent_iters", offsetof(dis_config, grad_descent_iters) },
        { "var_refine_iters", offsetof(dis_config, var_refine_iters) },
        { "var_sor_iters", offsetof(dis_config, var_sor_iters) },
        { "use_mean_normalization", offsetof(dis_config, use_mean_normalization) },
        { "use_spatial_propagation", offsetof(dis_config, use_spatial_propagation) },
        { "opencv_rounding", offsetof(dis_config, opencv_rounding) },
    };
    const char *eq = strchr(kv, '=');
    for (size_t i = 0; eq && i < sizeof fields / sizeof *fields; i++)
        if (strlen(fields[i].name) == (size_t)(eq - kv) && !strncmp(kv, fields[i].name, eq - kv)) {
            *(int *)((char *)c + fields[i].off) = atoi(eq + 1);
            return 0;
        }
    return gl_error(GL_EINVAL, "override '%s': expected FIELD=VALUE with an int dis_config field",
                    kv);
}

static int cmd_run(const char *frames, const char *which, int threads, const char *preset,
                   int repeat, char **overrides, int noverrides)
{
    dis_config cfg;
    int rc = dis_config_preset(&cfg, preset);
    for (int i = 0; rc >= 0 && i < noverrides; i++) rc = set_field(&cfg, overrides[i]);
    if (rc < 0) return rc;
    if (strcmp(which, "full") && strcmp(which, "half"))
        return gl_error(GL_EINVAL, "size '%s': expected full or half", which);
    int full = !strcmp(which, "full");
    gl_set_num_threads(threads);
    char list[4096];
    snprintf(list, sizeof list, "%s/pairs.txt", frames);
    FILE *lf = fopen(list, "r");
    if (!lf) return gl_error(GL_EIO, "%s: cannot read (run bench_dis frames first)", list);
    float *img[MAX_PAIRS][2] = { { 0 } };
    flow_field f[MAX_PAIRS] = { { 0 } };
    char gt[MAX_PAIRS][4096];
    int n = 0, w0 = 0, h0 = 0, same = 1;
    char line[8192];
    while (n < MAX_PAIRS && fgets(line, sizeof line, lf)) {
        int k, w, h;
        char name[1024];
        if (sscanf(line, "%d %1023s %d %d %4095s", &k, name, &w, &h, gt[n]) != 5) continue;
        for (int j = 0; j < 2; j++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/pair%d_%s_%d.png", frames, k, which, j);
            image im = { 0 };
            if ((rc = image_load(&im, path, 1)) < 0) return rc;
            w = im.width;
            h = im.height;
            img[n][j] = malloc(sizeof(float) * w * h);
            if (!img[n][j]) return GL_ENOMEM;
            for (int i = 0; i < w * h; i++) img[n][j][i] = im.data[i];
            image_release(&im);
        }
        if ((rc = flow_field_new(&f[n], w, h)) < 0) return rc;
        if (n == 0) {
            w0 = w;
            h0 = h;
        } else if (w != w0 || h != h0) {
            same = 0;
        }
        n++;
    }
    fclose(lf);
    if (n == 0) return gl_error(GL_EFORMAT, "%s: no pairs", list);
    double ms;
    if ((rc = bench_time_pairs(dis_pair, &cfg, img, f, n, repeat, &ms)) < 0) return rc;
    char size[64];
    if (same) snprintf(size, sizeof size, "%dx%d", w0, h0);
    else snprintf(size, sizeof size, "native");
    printf("{\"impl\": \"glocal\", \"preset\": \"%s\", \"size\": \"%s\", \"threads\": %d, "
           "\"ms_per_pair\": %.2f",
           preset, size, threads, ms);
    if (full) {
        const char *gtp[MAX_PAIRS];
        for (int p = 0; p < n; p++) gtp[p] = gt[p];
        if ((rc = bench_print_epe(f, gtp, n, 4)) < 0) return rc;
    }
    printf("}\n");
    bench_free_pairs(img, f, n);
    return 0;
}

int main(int argc, char **argv)
{
    int rc;
    if (argc == 4 && !strcmp(argv[1], "frames")) {
        rc = cmd_frames(argv[2], argv[3]);
    } else if (argc >= 7 && !strcmp(argv[1], "run")) {
        rc = cmd_run(argv[2], argv[3], atoi(argv[4]), argv[5],
                     atoi(argv[6]) > 0 ? atoi(argv[6]) : 1, argv + 7, argc - 7);
    } else {
        fprintf(stderr, "usage: bench_dis frames PAIRS OUT\n"
                        "       bench_dis run FRAMES full|half THREADS ultrafast|fast|medium "
                        "REPEAT [FIELD=VALUE...]\n");
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "bench_dis: %s\n", gl_last_error());
        return 1;
    }
    return 0;
}
