/* bench_cache — the motion cache's size, error and speed (datasets/cache.h).
 *
 *   bench_cache DATA_DIR [--tvl1-pairs N] [--seconds S] [--dir TMP]
 *
 * 1. Size and error of int16 (scale 1/128) and float16 against float32 raw,
 *    on three kinds of flow:
 *      chairs-gt    the two FlyingChairs-style exact flows of the sample data
 *                   (DATA/flow/generated, 256x192, scripts/flow-pairs)
 *      smooth+noise 56x56, 400 fields: a sum of 4 random low-frequency
 *                   sinusoids (amplitude up to 12 px per axis) plus Gaussian
 *                   noise of sigma 0.05 px (sensor-level texture of a
 *                   real estimator's output)
 *      tvl1-ucf101  TV-L1 (IPOL defaults) between consecutive frames of the
 *                   real UCF-101 clip v_ApplyEyeMakeup_g01_c01, scaled to 56x56
 *    "file" is the whole file over pairs * C * h * w * 4 bytes.
 * 2. Reads of 2x56x56 fields from a 2,000-field cache (200 clips): warm
 *    (every chunk in HDF5's chunk cache) random single fields, random runs of
 *    16, and cold (chunk cache off: every read inflates its chunk).
 * 3. Writing: fields/s through the spool, and the merge at finish.
 * Prints one JSON object per line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/cache.h"
#include "datasets/video.h"
#include "motion/flow.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
    double a = urand(), b = urand();
    return sqrt(-2 * log(a + 1e-300)) * cos(2 * M_PI * b);
}

static void smooth_noise(float *f, int h, int w, double noise)
{
    for (int c = 0; c < 2; c++) {
        double amp[4], fx[4], fy[4], ph[4];
        for (int k = 0; k < 4; k++) {
            amp[k] = 3.0 * urand();
            fx[k] = urand() * 2.0 / w;
            fy[k] = urand() * 2.0 / h;
            ph[k] = 2 * M_PI * urand();
        }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = 0;
                for (int k = 0; k < 4; k++) v += amp[k] * sin(2 * M_PI * (fx[k] * x + fy[k] * y) + ph[k]);
                f[(c * h + y) * w + x] = (float)(v + noise * nrand());
            }
    }
}

static long long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* Writes n fields as one clip; returns the file size and the errors. */
static int store(const char *path, cache_encoding enc, int h, int w, int n, const float *fields,
                 long long *bytes, double *maxerr, double *meanerr)
{
    cache_config cfg;
    cache_config_default(&cfg);
    snprintf(cfg.method, sizeof cfg.method, "bench");
    cfg.height = h;
    cfg.width = w;
    cfg.total_clips = 1;
    cfg.encoding = enc;
    cfg.scale = enc == CACHE_INT16 ? CACHE_INT16_SCALE : 1.0f;
    cache_writer *wr = NULL;
    cache_clip_writer *cw = NULL;
    cache_clip info;
    memset(&info, 0, sizeof info);
    snprintf(info.name, sizeof info.name, "clip");
    unlink(path);
    int rc;
    if ((rc = cache_writer_open(path, &cfg, &wr)) < 0) return rc;
    if ((rc = cache_clip_begin(wr, &info, &cw)) < 0) goto out;
    for (int i = 0; i < n; i++)
        if ((rc = cache_clip_append(cw, 1, fields + (size_t)i * 2 * h * w, NULL)) < 0) goto out;
    if ((rc = cache_clip_commit(&cw)) < 0) goto out;
    if ((rc = cache_writer_finish(wr)) < 0) goto out;
    *bytes = file_size(path);
    cache *c = NULL;
    if ((rc = cache_open(path, 0, &c)) < 0) goto out;
    float *back = malloc(sizeof *back * (size_t)n * 2 * h * w);
    rc = cache_read_fields(c, 0, 0, n, back);
    double mx = 0, sum = 0;
    size_t m = (size_t)n * 2 * h * w;
    for (size_t i = 0; i < m; i++) {
        double e = fabs((double)back[i] - fields[i]);
        mx = fmax(mx, e);
        sum += e;
    }
    *maxerr = mx;
    *meanerr = sum / (double)m;
    free(back);
    cache_close(&c);
out:
    cache_clip_abort(&cw);
    cache_writer_close(&wr);
    return rc;
}

static int size_report(const char *dir, const char *what, int h, int w, int n, const float *f)
{
    char path[4096];
    double maxmag = 0;
    for (size_t i = 0; i < (size_t)n * 2 * h * w; i++) maxmag = fmax(maxmag, fabs(f[i]));
    for (int e = 0; e < 2; e++) {
        snprintf(path, sizeof path, "%s/size_%s_%d.h5", dir, what, e);
        long long bytes;
        double mx, mean;
        int rc = store(path, e ? CACHE_FLOAT16 : CACHE_INT16, h, w, n, f, &bytes, &mx, &mean);
        if (rc < 0) return rc;
        double raw = (double)n * 2 * h * w * 4;
        printf("{\"section\":\"size\",\"flow\":\"%s\",\"fields\":%d,\"h\":%d,\"w\":%d,\"max_abs_px\":%.2f,"
               "\"encoding\":\"%s\",\"bytes\":%lld,\"pct_of_float32\":%.1f,\"max_err_px\":%.5f,"
               "\"mean_err_px\":%.5f}\n",
               what, n, h, w, maxmag, e ? "float16" : "int16", bytes, 100.0 * (double)bytes / raw,
               mx, mean);
        fflush(stdout);
        unlink(path);
    }
    return 0;
}

static int tvl1_fields(const char *data, int n, float **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi", data);
    video_reader_opts o = video_reader_opts_default();
    o.channels = 1;
    o.dtype = VIDEO_F32;
    o.width = 56;
    o.height = 56;
    o.scaler = VIDEO_SCALE_AREA;
    void *frames = NULL;
    long nf = 0;
    int rc = video_decode_all(path, &o, 1, &frames, &nf, NULL);
    if (rc < 0) return rc;
    if (nf < n + 1) n = (int)nf - 1;
    float *f = malloc(sizeof *f * (size_t)n * 2 * 56 * 56), *g0 = malloc(sizeof *g0 * 56 * 56),
          *g1 = malloc(sizeof *g1 * 56 * 56);
    tvl1_config tc;
    tvl1_config_default(&tc);
    flow_field fl = { 0 };
    if ((rc = flow_field_new(&fl, 56, 56)) < 0) goto out;
    for (int i = 0; i < n; i++) {
        const float *a = (const float *)frames + (size_t)i * 56 * 56, *b = a + 56 * 56;
        for (int k = 0; k < 56 * 56; k++) {
            g0[k] = a[k] * 255.0f;
            g1[k] = b[k] * 255.0f;
        }
        if ((rc = tvl1_flow(g0, g1, 56, 56, &tc, &fl)) < 0) goto out;
        memcpy(f + (size_t)i * 2 * 56 * 56, fl.u, sizeof(float) * 56 * 56);
        memcpy(f + (size_t)i * 2 * 56 * 56 + 56 * 56, fl.v, sizeof(float) * 56 * 56);
    }
    *out = f;
    f = NULL;
    rc = n;
out:
    flow_field_free(&fl);
    free(f);
    free(g0);
    free(g1);
    gl_free(frames);
    return rc;
}

static int read_report(const char *dir, double seconds)
{
    enum { CLIPS = 200, PAIRS = 10, HH = 56, WW = 56, PER = 2 * HH * WW };
    char path[4096];
    snprintf(path, sizeof path, "%.4000s/read.h5", dir);
    unlink(path);
    cache_config cfg;
    cache_config_default(&cfg);
    snprintf(cfg.method, sizeof cfg.method, "bench");
    cfg.height = HH;
    cfg.width = WW;
    cfg.total_clips = CLIPS;
    cache_writer *w = NULL;
    cache_clip_writer *cw = NULL;
    float *f = malloc(sizeof *f * PER * 16);
    int rc = cache_writer_open(path, &cfg, &w);
    if (rc < 0) return rc;
    double t0 = gl_now();
    for (int c = 0; c < CLIPS; c++) {
        cache_clip info;
        memset(&info, 0, sizeof info);
        snprintf(info.name, sizeof info.name, "c%03d", c);
        info.index = c;
        if ((rc = cache_clip_begin(w, &info, &cw)) < 0) return rc;
        for (int p = 0; p < PAIRS; p++) {
            smooth_noise(f, HH, WW, 0.05);
            if ((rc = cache_clip_append(cw, 1, f, NULL)) < 0) return rc;
        }
        if ((rc = cache_clip_commit(&cw)) < 0) return rc;
    }
    double t1 = gl_now();
    if ((rc = cache_writer_finish(w)) < 0) return rc;
    double t2 = gl_now();
    cache_writer_close(&w);
    printf("{\"section\":\"write\",\"fields\":%d,\"h\":%d,\"w\":%d,\"spool_fields_per_s\":%.0f,"
           "\"finish_fields_per_s\":%.0f}\n",
           CLIPS * PAIRS, HH, WW, CLIPS * PAIRS / (t1 - t0), CLIPS * PAIRS / (t2 - t1));
    for (int mode = 0; mode < 3; mode++) {
        cache *c = NULL;
        /* cold: a 1-byte chunk cache keeps nothing */
        if ((rc = cache_open(path, mode == 2 ? 1 : 0, &c)) < 0) return rc;
        if (mode < 2)
            for (int i = 0; i < CLIPS; i++)
                if ((rc = cache_read_fields(c, i, 0, PAIRS, f)) < 0) return rc;
        int L = mode == 1 ? 16 : 1;
        long fields = 0;
        double s0 = gl_now(), el;
        do {
            for (int k = 0; k < 256; k++) {
                long clip = (long)(urand() * CLIPS);
                int LL = L > PAIRS ? PAIRS : L;
                long off = (long)(urand() * (PAIRS - LL + 1));
                if ((rc = cache_read_fields(c, clip, off, LL, f)) < 0) return rc;
                fields += LL;
            }
            el = gl_now() - s0;
        } while (el < seconds);
        static const char *names[3] = { "warm_random_1", "warm_random_run", "cold_random_1" };
        printf("{\"section\":\"read\",\"mode\":\"%s\",\"run\":%d,\"h\":%d,\"w\":%d,"
               "\"fields_per_s\":%.0f}\n",
               names[mode], L > PAIRS ? PAIRS : L, HH, WW, fields / el);
        fflush(stdout);
        cache_close(&c);
    }
    free(f);
    unlink(path);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_cache DATA_DIR [--tvl1-pairs N] [--seconds S] [--dir TMP]\n");
        return 2;
    }
    const char *data = argv[1], *dir = "/tmp";
    int tvl1_pairs = 30;
    double seconds = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tvl1-pairs")) tvl1_pairs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/bench_cache.%d", dir, (int)getpid());
    int rc = gl_mkdirs(tmp);
    if (rc < 0) goto fail;
    /* 1. size and error */
    {
        float *f = NULL;
        int fw = 0, fh = 0;
        for (int p = 0; p < 2; p++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/flow/generated/000000%d-gt.flo", data, p);
            flow_field fl = { 0 };
            if ((rc = flow_read_flo(path, &fl)) < 0) goto fail;
            if (!f) {
                fw = fl.width, fh = fl.height;
                f = malloc(sizeof *f * 2 * 2 * (size_t)fw * fh);
            } else if (fl.width != fw || fl.height != fh) {
                fprintf(stderr, "%s: expected %dx%d like pair 0\n", path, fw, fh);
                return 1;
            }
            const size_t plane = (size_t)fw * fh;
            memcpy(f + (size_t)p * 2 * plane, fl.u, sizeof(float) * plane);
            memcpy(f + (size_t)p * 2 * plane + plane, fl.v, sizeof(float) * plane);
            flow_field_free(&fl);
        }
        if ((rc = size_report(tmp, "chairs-gt", fh, fw, 2, f)) < 0) goto fail;
        free(f);
        f = malloc(sizeof *f * 400 * 2 * 56 * 56);
        for (int i = 0; i < 400; i++) smooth_noise(f + (size_t)i * 2 * 56 * 56, 56, 56, 0.05);
        if ((rc = size_report(tmp, "smooth+noise", 56, 56, 400, f)) < 0) goto fail;
        free(f);
        f = NULL;
        if (tvl1_pairs > 0) {
            double t0 = gl_now();
            int n = tvl1_fields(data, tvl1_pairs, &f);
            if ((rc = n) < 0) goto fail;
            fprintf(stderr, "tvl1: %d pairs at 56x56 in %.1f s\n", n, gl_now() - t0);
            if ((rc = size_report(tmp, "tvl1-ucf101", 56, 56, n, f)) < 0) goto fail;
            free(f);
        }
    }
    /* 2, 3. reading and writing */
    if ((rc = read_report(tmp, seconds)) < 0) goto fail;
    rmdir(tmp);
    return 0;
fail:
    fprintf(stderr, "bench_cache: %s (%s)\n", gl_last_error(), gl_strerror(rc));
    return 1;
}
