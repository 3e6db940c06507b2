/* test_extract.c — `glocal extract` end to end on real UCF-101 clips (plus a
 * damaged and a missing one): fields against frames decoded here and an
 * RGB difference computed here, failures recorded, shards + merge equal to
 * one run, kill -9 and resume equal to an uninterrupted run; and
 * experiments/extract.h's extract_run called directly, against TV-L1 and DIS
 * and the homography fit run here, and GLOCAL's one pass (several caches from
 * one inference) against runs of each method alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "datasets/cache.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"
#include "experiments/extract.h"
#include "motion/flow.h"
#include "motion/glocal.h"
#include "tests/testutil.h"

#define VIDEOS GLOCAL_DATA_DIR "/ucf101/videos"
/* The shipped GLOCAL checkpoint (trained on the synthetic benchmark, 64x64). */
#define MODEL GLOCAL_SOURCE_DIR "/results/motion/64/glocal.h5"
/* A second real clip (OpenCV's vtest.avi, cut; tests/data/README.md) stands in
 * for a BabyCrawling one. */
#define CLIP2 GLOCAL_DATA_DIR "/video/vtest_50.avi"

static char tmpdir[256], ds[300];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A UCF-101 layout: two real clips (train), a damaged one and a missing one (test). */
static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_extract.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(ds, sizeof ds, "%s/ds", tmpdir);
    const char *dirs[] = { "ApplyEyeMakeup", "BabyCrawling", "Bad", "Missing" };
    char p[600], q[600];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", ds, dirs[i]);
        if (gl_mkdirs(p) < 0) return -1;
    }
    snprintf(p, sizeof p, "%s/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", ds);
    if (symlink(VIDEOS "/v_ApplyEyeMakeup_g01_c01.avi", p) < 0) return -1;
    snprintf(p, sizeof p, "%s/BabyCrawling/v_BabyCrawling_g02_c01.avi", ds);
    if (symlink(CLIP2, p) < 0) return -1;
    /* damaged: the first 3000 bytes of a real AVI, the rest cut off */
    snprintf(p, sizeof p, "%s/Bad/v_Bad_g03_c01.avi", ds);
    FILE *a = fopen(VIDEOS "/v_ApplyEyeMakeup_g01_c01.avi", "rb"), *b = fopen(p, "wb");
    if (!a || !b) return -1;
    char buf[3000];
    size_t n = fread(buf, 1, sizeof buf, a);
    fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
    snprintf(q, sizeof q, "%s/classInd.txt", ds);
    write_text(q, "1 ApplyEyeMakeup\r\n2 BabyCrawling\r\n3 Bad\r\n4 Missing\r\n");
    snprintf(q, sizeof q, "%s/trainlist01.txt", ds);
    write_text(q, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\r\nBabyCrawling/v_BabyCrawling_g02_c01.avi 2\r\n");
    snprintf(q, sizeof q, "%s/testlist01.txt", ds);
    write_text(q, "Bad/v_Bad_g03_c01.avi\r\nMissing/v_Missing_g04_c01.avi\r\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* In the child: rank rank_env[0] of a torchrun-style job of rank_env[1]
 * ranks on loopback port rank_env[2]. */
static void set_rank_env(void *ctx)
{
    const int *e = ctx;
    char v[32];
    snprintf(v, sizeof v, "%d", e[0]);
    setenv("RANK", v, 1);
    setenv("LOCAL_RANK", v, 1);
    snprintf(v, sizeof v, "%d", e[1]);
    setenv("WORLD_SIZE", v, 1);
    snprintf(v, sizeof v, "%d", e[2]);
    setenv("MASTER_PORT", v, 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
}

/* Starts `glocal ARGS...` (output appended to tmpdir/log.txt); returns the
 * pid. With world > 1, as rank `rank` of a torchrun-style job on loopback
 * port `port`. */
static pid_t spawn_rank(const char *const *args, int rank, int world, int port)
{
    char log[300];
    snprintf(log, sizeof log, "%s/log.txt", tmpdir);
    int env[3] = { rank, world, port };
    return test_spawn(GLOCAL_BINARY, log, 1, args, world > 1 ? set_rank_env : NULL, env);
}

static pid_t spawn(const char *const *args) { return spawn_rank(args, 0, 1, 0); }

static int run(const char *const *args) { return test_wait_status(spawn(args)); }

/* The largest |a - b| over the field values of two caches of the same
 * clips; with homographies, those are equal to float. */
static double max_abs_diff(const char *pa, const char *pb)
{
    cache *a = NULL, *b = NULL;
    OK(cache_open(pa, 0, &a));
    OK(cache_open(pb, 0, &b));
    const cache_config *ca = cache_get_config(a);
    assert_int_equal(cache_clip_count(a), cache_clip_count(b));
    const size_t per = (size_t)ca->channels * ca->height * ca->width;
    float *fa = malloc(sizeof *fa * per), *fb = malloc(sizeof *fb * per), ha[9], hb[9];
    double worst = 0;
    for (long i = 0; i < cache_clip_count(a); i++)
        for (long p = 0; p < cache_get_clip(a, i)->pairs; p++) {
            OK(cache_read_fields(a, i, p, 1, fa));
            OK(cache_read_fields(b, i, p, 1, fb));
            for (size_t k = 0; k < per; k++) worst = fmax(worst, fabs(fa[k] - fb[k]));
            if (ca->has_homographies && cache_get_config(b)->has_homographies) {
                OK(cache_read_homographies(a, i, p, 1, ha));
                OK(cache_read_homographies(b, i, p, 1, hb));
                for (int k = 0; k < 9; k++) assert_double_equal(ha[k], hb[k], 1e-6 * fmax(1, fabs(ha[k])));
            }
        }
    free(fa);
    free(fb);
    cache_close(&a);
    cache_close(&b);
    return worst;
}

/* Caches a and b hold the same clips, errors and provenance (method names
 * aside), fields within `tol` px and homographies to float. Returns the
 * largest field difference. */
static double assert_close(const char *pa, const char *pb, double tol)
{
    cache *a = NULL, *b = NULL;
    OK(cache_open(pa, 0, &a));
    OK(cache_open(pb, 0, &b));
    const cache_config *ca = cache_get_config(a), *cb = cache_get_config(b);
    assert_string_equal(ca->params, cb->params);
    assert_string_equal(ca->model_sha256, cb->model_sha256);
    assert_string_equal(ca->source, cb->source);
    assert_string_equal(ca->shard, cb->shard);
    assert_int_equal(ca->has_homographies, cb->has_homographies);
    assert_int_equal(cache_clip_count(a), cache_clip_count(b));
    assert_int_equal(cache_error_count(a), cache_error_count(b));
    for (long i = 0; i < cache_clip_count(a); i++)
        assert_memory_equal(cache_get_clip(a, i), cache_get_clip(b, i), sizeof(cache_clip));
    for (long i = 0; i < cache_error_count(a); i++)
        assert_memory_equal(cache_get_error(a, i), cache_get_error(b, i), sizeof(cache_error));
    cache_close(&a);
    cache_close(&b);
    const double worst = max_abs_diff(pa, pb);
    assert_true(worst <= tol);
    return worst;
}

/* The same caches, to the bit. */
static void assert_same(const char *pa, const char *pb) { assert_close(pa, pb, 0); }

static void test_rgbdiff_against_decoded_frames(void **state)
{
    (void)state;
    char out[300];
    snprintf(out, sizeof out, "%s/rgb.h5", tmpdir);
    const char *args[] = { "--threads", "2", "extract", "--dataset", ds, "--method", "rgbdiff",
                           "--size", "16x24", "--stride", "5", "--out", out, NULL };
    assert_int_equal(run(args), 1); /* two clips failed */
    cache *c = NULL;
    OK(cache_open(out, 0, &c));
    assert_int_equal(cache_verify(c, NULL, NULL), 0);
    const cache_config *cfg = cache_get_config(c);
    assert_int_equal(cfg->channels, 3);
    assert_int_equal(cfg->height, 16);
    assert_int_equal(cfg->width, 24);
    assert_int_equal(cfg->total_clips, 4);
    assert_int_equal(cache_clip_count(c), 2);
    assert_int_equal(cache_error_count(c), 2);
    assert_int_equal(cache_get_error(c, 0)->index, 2);
    assert_string_equal(cache_get_error(c, 0)->name, "Bad/v_Bad_g03_c01.avi");
    assert_int_equal(cache_get_error(c, 1)->index, 3);
    assert_non_null(strstr(cache_get_error(c, 1)->message, "not found"));
    const char *files[2] = { VIDEOS "/v_ApplyEyeMakeup_g01_c01.avi", CLIP2 };
    for (int k = 0; k < 2; k++) {
        const cache_clip *ci = cache_get_clip(c, k);
        assert_int_equal(ci->index, k);
        assert_int_equal(ci->label, k);
        struct stat st;
        assert_int_equal(stat(files[k], &st), 0);
        assert_int_equal(ci->src_size, st.st_size);
        /* frames 0, 5, 10, ... decoded here; pairs are consecutive ones */
        long nframes;
        OK(video_count_frames(files[k], &nframes));
        long want_pairs = (nframes - 1) / 5;
        assert_int_equal(ci->pairs, want_pairs);
        long *idx = malloc(sizeof *idx * (size_t)(want_pairs + 1));
        for (long i = 0; i <= want_pairs; i++) idx[i] = 5 * i;
        video_reader_opts o = video_reader_opts_default();
        o.width = 24;
        o.height = 16;
        o.scaler = VIDEO_SCALE_AREA;
        o.threads = 1;
        uint8_t *fr = malloc((size_t)(want_pairs + 1) * 16 * 24 * 3);
        OK(video_decode_frames(files[k], &o, idx, want_pairs + 1, fr, NULL));
        float got[3 * 16 * 24];
        for (long p = 0; p < want_pairs; p += 7) {
            OK(cache_read_fields(c, k, p, 1, got));
            const uint8_t *a = fr + (size_t)p * 16 * 24 * 3, *b = a + 16 * 24 * 3;
            for (int ch = 0; ch < 3; ch++)
                for (int i = 0; i < 16 * 24; i++)
                    assert_double_equal(got[ch * 16 * 24 + i], (b[3 * i + ch] - a[3 * i + ch]) / 255.0,
                                        1e-6);
        }
        free(fr);
        free(idx);
    }
    cache_close(&c);
    /* shards + merge = one run */
    char s0[300], s1[300], merged[300];
    snprintf(s0, sizeof s0, "%s/rgb_s0.h5", tmpdir);
    snprintf(s1, sizeof s1, "%s/rgb_s1.h5", tmpdir);
    snprintf(merged, sizeof merged, "%s/rgb_merged.h5", tmpdir);
    const char *a0[] = { "--threads", "1", "extract", "--dataset", ds, "--method", "rgbdiff", "--size",
                         "16x24", "--stride", "5", "--out", s0, "--shard", "0/2", NULL };
    const char *a1[] = { "--threads", "1", "extract", "--dataset", ds, "--method", "rgbdiff", "--size",
                         "16x24", "--stride", "5", "--out", s1, "--shard", "1/2", NULL };
    assert_int_equal(run(a0), 1); /* Bad (index 2) is in shard 0 */
    assert_int_equal(run(a1), 1); /* Missing (index 3) is in shard 1 */
    const char *am[] = { "cache", "merge", merged, s1, s0, NULL };
    assert_int_equal(run(am), 0);
    assert_same(merged, out);
    cache *m = NULL;
    OK(cache_open(merged, 0, &m));
    assert_int_equal(cache_verify(m, NULL, NULL), 0);
    cache_close(&m);
    /* the same under glocal launch -n 2 (no --shard): rank K computes shard K/2,
     * rank 0 merges; the failed clips make rank 0, hence launch, exit 1 */
    char dist_out[300];
    snprintf(dist_out, sizeof dist_out, "%s/rgb_dist.h5", tmpdir);
    const char *ad[] = { "launch", "-n", "2", "--", "glocal", "extract", "--dataset", ds, "--method",
                         "rgbdiff", "--size", "16x24", "--stride", "5", "--out", dist_out, NULL };
    assert_int_equal(run(ad), 1);
    assert_same(dist_out, out);
    /* a different --size cannot resume into the same cache */
    const char *bad[] = { "extract", "--dataset", ds, "--method", "rgbdiff", "--size", "16x16",
                          "--stride", "5", "--out", out, NULL };
    assert_int_equal(run(bad), 1);
}

/* ---- extract_run called directly (no child process) ---- */

typedef struct {
    int calls, firsts, lasts, bad;
    long last_done;
    int stop;              /* ask to stop at the first call */
} progress_log;

static int log_progress(void *ctx, const extract_progress *p)
{
    progress_log *l = ctx;
    l->calls++;
    l->firsts += p->first;
    l->lasts += p->last;
    if (p->done < l->last_done || p->done > p->assigned || (p->first && l->calls != 1)) l->bad = 1;
    l->last_done = p->done;
    return l->stop;
}

/* Frames f0 and f1 of a clip decoded here, area-resized to w x h as
 * extract does, as BT.601 grey levels (computed here from the weights). */
static void decode_grey_pair(const char *file, int w, int h, long f0, long f1, float *g0, float *g1)
{
    video_reader_opts o = video_reader_opts_default();
    o.width = w;
    o.height = h;
    o.scaler = VIDEO_SCALE_AREA;
    o.threads = 1;
    long idx[2] = { f0, f1 };
    uint8_t *fr = malloc((size_t)2 * w * h * 3);
    assert_non_null(fr);
    OK(video_decode_frames(file, &o, idx, 2, fr, NULL));
    for (int i = 0; i < w * h; i++) {
        const uint8_t *a = fr + 3 * i, *b = fr + 3 * ((size_t)w * h + i);
        g0[i] = 0.299f * a[0] + 0.587f * a[1] + 0.114f * a[2];
        g1[i] = 0.299f * b[0] + 0.587f * b[1] + 0.114f * b[2];
    }
    free(fr);
}

/* TV-L1 minus homography through extract_run on the sample clips, against
 * TV-L1 and the homography fit run here on frames decoded here: fields to
 * the int16 step (1/128 px, so within 1/256 px), homographies to float. */
static void test_extract_run_against_tvl1(void **state)
{
    (void)state;
    enum { H = 16, W = 24, STRIDE = 4 };
    char out[300];
    snprintf(out, sizeof out, "%s/direct.h5", tmpdir);
    extract_config c;
    extract_config_default(&c);
    c.dataset = ds;
    c.method = "tvl1-minus-homography";
    c.out = out;
    c.width = W;
    c.height = H;
    c.stride = STRIDE;
    c.workers = 2;
    progress_log pl = { 0 };
    extract_progress sum;
    OK(extract_run(&c, log_progress, &pl, &sum));
    assert_int_equal(pl.firsts, 1);
    assert_int_equal(pl.lasts, 1);
    assert_false(pl.bad);
    assert_int_equal(sum.total, 4);
    assert_int_equal(sum.assigned, 4);
    assert_int_equal(sum.resumed, 0);
    assert_int_equal(sum.done, 4); /* stored: 2 clips and 2 errors */
    assert_int_equal(sum.failed, 2);
    cache *cc = NULL;
    OK(cache_open(out, 0, &cc));
    assert_int_equal(cache_clip_count(cc), 2);
    assert_int_equal(cache_error_count(cc), 2);
    assert_int_equal(sum.pairs, cache_pair_count(cc));
    assert_true(cache_get_config(cc)->has_homographies);
    const char *files[2] = { VIDEOS "/v_ApplyEyeMakeup_g01_c01.avi", CLIP2 };
    tvl1_config tc;
    tvl1_config_default(&tc);
    homography_ransac_config rc;
    homography_ransac_config_default(&rc);
    flow_field f, local;
    OK(flow_field_new(&f, W, H));
    OK(flow_field_new(&local, W, H));
    float g0[H * W], g1[H * W], got[2 * H * W], hom[9];
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        long nframes;
        OK(video_count_frames(files[k], &nframes));
        long pairs = (nframes - 1) / STRIDE;
        assert_int_equal(cache_get_clip(cc, k)->pairs, pairs);
        for (long p = 0; p < pairs; p += 9) {
            decode_grey_pair(files[k], W, H, p * STRIDE, p * STRIDE + STRIDE, g0, g1);
            double h[9];
            OK(tvl1_flow(g0, g1, W, H, &tc, &f));
            OK(flow_minus_homography(&f, 4, &rc, 0, h, NULL, &local));
            OK(cache_read_fields(cc, k, p, 1, got));
            OK(cache_read_homographies(cc, k, p, 1, hom));
            for (int i = 0; i < H * W; i++) {
                worst = fmax(worst, fabs(got[i] - local.u[i]));
                worst = fmax(worst, fabs(got[H * W + i] - local.v[i]));
            }
            for (int i = 0; i < 9; i++) assert_double_equal(hom[i], h[i], 1e-6 * fmax(1, fabs(h[i])));
        }
    }
    print_message("extract_run vs TV-L1 minus homography computed here: %.4g px\n", worst);
    assert_true(worst <= 1.0 / 256 + 1e-6);
    cache_close(&cc);
    flow_field_free(&f);
    flow_field_free(&local);

    /* a second run resumes: nothing left to do, the same cache */
    memset(&pl, 0, sizeof pl);
    OK(extract_run(&c, log_progress, &pl, &sum));
    assert_int_equal(sum.resumed, 4);
    assert_int_equal(sum.pairs, 0);
    /* asked to stop before the first clip: nothing is published */
    char out2[300];
    snprintf(out2, sizeof out2, "%s/stopped.h5", tmpdir);
    c.out = out2;
    memset(&pl, 0, sizeof pl);
    pl.stop = 1;
    assert_int_equal(extract_run(&c, log_progress, &pl, &sum), GL_ECANCELED);
    assert_int_equal(access(out2, F_OK), -1);
    /* settings that name what is wrong */
    c.method = "tvl2";
    assert_int_equal(extract_run(&c, NULL, NULL, NULL), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "method: unknown 'tvl2'"));
    c.method = "glocal-local";
    assert_int_equal(extract_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "model"));
    c.method = "rgbdiff";
    c.only = DATASET_VAL; /* the sample has no validation list */
    assert_int_equal(extract_run(&c, NULL, NULL, NULL), GL_ENOTFOUND);
    assert_non_null(strstr(gl_last_error(), "no clips selected"));
}

/* DIS through extract_run: dis (the flow) and dis-minus-homography (the
 * local flow and the homography), against dis_flow with OpenCV's medium
 * preset and the homography fit run here on frames decoded here (fields to
 * the int16 step, homographies to float); the cache records DIS's
 * parameters; a grid smaller than a DIS patch at the finest scale is
 * refused up front. */
static void test_extract_run_dis(void **state)
{
    (void)state;
    enum { H = 32, W = 48, STRIDE = 6 };
    const char *names[2] = { "dis", "dis-minus-homography" };
    const char *files[2] = { VIDEOS "/v_ApplyEyeMakeup_g01_c01.avi", CLIP2 };
    dis_config dc;
    OK(dis_config_preset(&dc, "medium"));
    homography_ransac_config rc;
    homography_ransac_config_default(&rc);
    flow_field f, local;
    OK(flow_field_new(&f, W, H));
    OK(flow_field_new(&local, W, H));
    for (int m = 0; m < 2; m++) {
        char out[300];
        snprintf(out, sizeof out, "%s/%s.h5", tmpdir, names[m]);
        extract_config c;
        extract_config_default(&c);
        c.dataset = ds;
        c.method = names[m];
        c.out = out;
        c.width = W;
        c.height = H;
        c.stride = STRIDE;
        extract_progress sum;
        OK(extract_run(&c, NULL, NULL, &sum));
        assert_int_equal(sum.failed, 2); /* the damaged and the missing clip */
        cache *cc = NULL;
        OK(cache_open(out, 0, &cc));
        const cache_config *cfg = cache_get_config(cc);
        assert_string_equal(cfg->method, names[m]);
        assert_int_equal(cfg->has_homographies, m == 1);
        assert_non_null(strstr(cfg->params, "dis(OpenCV PRESET_MEDIUM): finest_scale=1 "));
        assert_non_null(strstr(cfg->params, "patch_size=8 patch_stride=3 grad_descent_iters=25"));
        assert_true((strstr(cfg->params, "minus homography") != NULL) == (m == 1));
        assert_int_equal(cache_clip_count(cc), 2);
        double worst = 0;
        float g0[H * W], g1[H * W], got[2 * H * W], hom[9];
        for (int k = 0; k < 2; k++) {
            long nframes;
            OK(video_count_frames(files[k], &nframes));
            long pairs = (nframes - 1) / STRIDE;
            assert_int_equal(cache_get_clip(cc, k)->pairs, pairs);
            for (long p = 0; p < pairs; p += 5) {
                decode_grey_pair(files[k], W, H, p * STRIDE, p * STRIDE + STRIDE, g0, g1);
                OK(dis_flow(g0, g1, W, H, &dc, &f));
                const flow_field *want = &f;
                double h[9];
                if (m == 1) {
                    OK(flow_minus_homography(&f, 4, &rc, 0, h, NULL, &local));
                    want = &local;
                    OK(cache_read_homographies(cc, k, p, 1, hom));
                    for (int i = 0; i < 9; i++) assert_double_equal(hom[i], h[i], 1e-6 * fmax(1, fabs(h[i])));
                }
                OK(cache_read_fields(cc, k, p, 1, got));
                for (int i = 0; i < H * W; i++) {
                    worst = fmax(worst, fabs(got[i] - want->u[i]));
                    worst = fmax(worst, fabs(got[H * W + i] - want->v[i]));
                }
            }
        }
        print_message("extract_run %s vs DIS computed here: %.4g px\n", names[m], worst);
        assert_true(worst <= 1.0 / 256 + 1e-6);
        cache_close(&cc);
        /* too small for DIS: refused before any clip is read */
        c.width = c.height = 12;
        assert_int_equal(extract_config_validate(&c), GL_EINVAL);
        assert_non_null(strstr(gl_last_error(), "needs each side >= 16"));
    }
    flow_field_free(&f);
    flow_field_free(&local);
}

/* The flow of homography h (row-major, float as cached) at pixel (x, y): H p - p. */
static void h_flow(const float h[9], int x, int y, double *u, double *v)
{
    const double d = h[6] * x + h[7] * y + h[8];
    *u = (h[0] * x + h[1] * y + h[2]) / d - x;
    *v = (h[3] * x + h[4] * y + h[5]) / d - y;
}

/* In the caches of one pass (local, residual, mixed of one run): the local
 * flow is, per pixel, the residual (both components) or zero (the gate), and
 * both happen; the mixed flow is the homography's flow, computed here from the
 * stored homography (H p - p), plus the local flow, within the two int16
 * steps of rounding. */
static void assert_pass_consistent(const char *local, const char *residual, const char *mixed)
{
    cache *l = NULL, *r = NULL, *m = NULL;
    OK(cache_open(local, 0, &l));
    OK(cache_open(residual, 0, &r));
    OK(cache_open(mixed, 0, &m));
    const cache_config *cfg = cache_get_config(l);
    const int W = cfg->width, H = cfg->height, hw = W * H;
    float *fl = malloc(sizeof(float) * 2 * hw), *fr = malloc(sizeof(float) * 2 * hw),
          *fm = malloc(sizeof(float) * 2 * hw), h[9];
    long kept = 0, gated = 0;
    double worst_mixed = 0;
    assert_int_equal(cache_pair_count(l), cache_pair_count(r));
    assert_int_equal(cache_pair_count(l), cache_pair_count(m));
    for (long i = 0; i < cache_clip_count(l); i++)
        for (long p = 0; p < cache_get_clip(l, i)->pairs; p++) {
            OK(cache_read_fields(l, i, p, 1, fl));
            OK(cache_read_fields(r, i, p, 1, fr));
            OK(cache_read_fields(m, i, p, 1, fm));
            OK(cache_read_homographies(m, i, p, 1, h));
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    const int q = y * W + x;
                    const int zero = fl[q] == 0 && fl[hw + q] == 0;
                    if (!zero) {
                        assert_true(fl[q] == fr[q] && fl[hw + q] == fr[hw + q]);
                        kept++;
                    } else if (fr[q] != 0 || fr[hw + q] != 0) {
                        gated++;
                    }
                    double gu, gv;
                    h_flow(h, x, y, &gu, &gv);
                    worst_mixed = fmax(worst_mixed, fabs(fm[q] - (gu + fl[q])));
                    worst_mixed = fmax(worst_mixed, fabs(fm[hw + q] - (gv + fl[hw + q])));
                }
        }
    print_message("one pass: %ld local pixels kept, %ld gated to 0; mixed - (H flow + local) <= %.4g px\n", kept,
                  gated, worst_mixed);
    assert_true(kept > 0);
    assert_true(gated > 0);
    assert_true(worst_mixed <= 2.0 / 256 + 1e-3);
    free(fl);
    free(fr);
    free(fm);
    cache_close(&l);
    cache_close(&r);
    cache_close(&m);
}

/* Caches of one pass: glocal-mask's values are 0 or 1 and gate the local
 * flow (local = residual where 1, 0 where 0); glocal-global's flow is the
 * stored homography's, H p - p, within the int16 step. */
static void assert_mask_global(const char *mask, const char *global, const char *local, const char *residual)
{
    cache *m = NULL, *g = NULL, *l = NULL, *r = NULL;
    OK(cache_open(mask, 0, &m));
    OK(cache_open(global, 0, &g));
    OK(cache_open(local, 0, &l));
    OK(cache_open(residual, 0, &r));
    const cache_config *cfg = cache_get_config(l);
    const int W = cfg->width, H = cfg->height, hw = W * H;
    float *fm = malloc(sizeof(float) * hw), *fg = malloc(sizeof(float) * 2 * hw), *fl = malloc(sizeof(float) * 2 * hw),
          *fr = malloc(sizeof(float) * 2 * hw), h[9];
    long fore = 0, back = 0;
    double worst = 0;
    for (long i = 0; i < cache_clip_count(l); i++)
        for (long p = 0; p < cache_get_clip(l, i)->pairs; p++) {
            OK(cache_read_fields(m, i, p, 1, fm));
            OK(cache_read_fields(g, i, p, 1, fg));
            OK(cache_read_fields(l, i, p, 1, fl));
            OK(cache_read_fields(r, i, p, 1, fr));
            OK(cache_read_homographies(g, i, p, 1, h));
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    const int q = y * W + x;
                    assert_true(fm[q] == 0 || fm[q] == 1);
                    if (fm[q] == 1) {
                        assert_true(fl[q] == fr[q] && fl[hw + q] == fr[hw + q]);
                        fore++;
                    } else {
                        assert_true(fl[q] == 0 && fl[hw + q] == 0);
                        back++;
                    }
                    double gu, gv;
                    h_flow(h, x, y, &gu, &gv);
                    worst = fmax(worst, fmax(fabs(fg[q] - gu), fabs(fg[hw + q] - gv)));
                }
        }
    print_message("mask: %ld foreground, %ld background pixels; global - H flow <= %.4g px\n", fore, back, worst);
    assert_true(fore > 0 && back > 0);
    assert_true(worst <= CACHE_INT16_SCALE / 2 + 1e-3);
    free(fm);
    free(fg);
    free(fl);
    free(fr);
    cache_close(&m);
    cache_close(&g);
    cache_close(&l);
    cache_close(&r);
}

/* GLOCAL's one pass: glocal-local, glocal-residual and glocal-mixed from one
 * extract_run into three caches, each equal (to the int16 step) to the cache
 * of a run of its method alone, with the same name and provenance; a one-pass
 * run resumes a cache made alone; the hybrid names; outputs that cannot share
 * a pass are refused by name. */
static void test_extract_run_glocal_one_pass(void **state)
{
    (void)state;
    enum { H = 24, W = 32, STRIDE = 8 };
    const char *names[3] = { "glocal-local", "glocal-residual", "glocal-mixed" };
    char alone[3][300], pass[3][300];
    extract_config c;
    extract_config_default(&c);
    c.dataset = ds;
    c.model = MODEL;
    c.width = W;
    c.height = H;
    c.stride = STRIDE;
    c.workers = 2;
    extract_progress sum;
    for (int k = 0; k < 3; k++) {
        snprintf(alone[k], sizeof alone[k], "%s/alone-%s.h5", tmpdir, names[k]);
        snprintf(pass[k], sizeof pass[k], "%s/pass-%s.h5", tmpdir, names[k]);
        c.method = names[k];
        c.out = alone[k];
        OK(extract_run(&c, NULL, NULL, &sum));
        assert_int_equal(sum.failed, 2); /* the damaged and the missing clip */
    }
    c.method = names[0];
    c.out = pass[0];
    c.nmore = 2;
    for (int k = 1; k < 3; k++) {
        c.more[k - 1].method = names[k];
        c.more[k - 1].out = pass[k];
    }
    progress_log pl = { 0 };
    OK(extract_run(&c, log_progress, &pl, &sum));
    assert_false(pl.bad);
    assert_int_equal(pl.lasts, 1);
    assert_int_equal(sum.done, 4);
    assert_int_equal(sum.failed, 2); /* once per clip, recorded in each cache */
    for (int k = 0; k < 3; k++) {
        cache *cc = NULL;
        OK(cache_open(pass[k], 0, &cc));
        assert_string_equal(cache_get_config(cc)->method, names[k]);
        assert_int_equal(cache_verify(cc, NULL, NULL), 0);
        assert_int_equal(cache_error_count(cc), 2);
        assert_int_equal(sum.pairs, cache_pair_count(cc)); /* each pair computed once for the three */
        cache_close(&cc);
        double worst = assert_close(pass[k], alone[k], CACHE_INT16_SCALE + 1e-6);
        print_message("one pass vs %s alone: %.4g px\n", names[k], worst);
    }
    assert_pass_consistent(pass[0], pass[1], pass[2]);
    /* a cache made alone is resumed by a one-pass run (same name and settings):
     * nothing is recomputed for it, the other two are computed */
    char more1[300], more2[300];
    snprintf(more1, sizeof more1, "%s/pass2-residual.h5", tmpdir);
    snprintf(more2, sizeof more2, "%s/pass2-mixed.h5", tmpdir);
    c.out = alone[0];
    c.more[0].out = more1;
    c.more[1].out = more2;
    OK(extract_run(&c, NULL, NULL, &sum));
    assert_int_equal(sum.resumed, 0); /* the two new caches lack every clip */
    assert_close(more1, alone[1], CACHE_INT16_SCALE + 1e-6);
    assert_close(more2, alone[2], CACHE_INT16_SCALE + 1e-6);
    /* and once every cache has every clip, nothing is left to do */
    OK(extract_run(&c, NULL, NULL, &sum));
    assert_int_equal(sum.resumed, 4);
    assert_int_equal(sum.pairs, 0);
    /* the hybrid (TV-L1 local flow on GLOCAL's alignment) by name, the
     * network alone (the LME's own local flow), the global flow and the mask:
     * eight caches from one pass (local_both), each equal to its run alone */
    const char *lme[5] = { "glocal-lme-local", "glocal-lme-residual", "glocal-lme-mixed", "glocal-global",
                           "glocal-mask" };
    char hl[300], hm[300], hr[300], lp[5][300], la[5][300];
    snprintf(hl, sizeof hl, "%s/tvl1-local.h5", tmpdir);
    snprintf(hr, sizeof hr, "%s/tvl1-residual.h5", tmpdir);
    snprintf(hm, sizeof hm, "%s/tvl1-mixed.h5", tmpdir);
    c.nmore = 0;
    for (int k = 0; k < 5; k++) {
        snprintf(lp[k], sizeof lp[k], "%s/pass-%s.h5", tmpdir, lme[k]);
        snprintf(la[k], sizeof la[k], "%s/alone-%s.h5", tmpdir, lme[k]);
        c.method = lme[k];
        c.out = la[k];
        OK(extract_run(&c, NULL, NULL, &sum));
    }
    c.method = "glocal-tvl1-local";
    c.out = hl;
    c.nmore = 7;
    c.more[0] = (extract_output){ "glocal-tvl1-residual", hr };
    c.more[1] = (extract_output){ "glocal-tvl1-mixed", hm };
    for (int k = 0; k < 5; k++) c.more[2 + k] = (extract_output){ lme[k], lp[k] };
    OK(extract_run(&c, NULL, NULL, &sum));
    cache *cc = NULL;
    OK(cache_open(hm, 0, &cc));
    assert_string_equal(cache_get_config(cc)->method, "glocal-tvl1-mixed");
    assert_non_null(strstr(cache_get_config(cc)->params, "local flow: TV-L1"));
    {   /* the refinement's rules are recorded, so a cache made under others is refused on resume */
        glocal_refine_config rc;
        glocal_refine_config_default(&rc);
        char want[64];
        snprintf(want, sizeof want, "gives way to its refinement, polish rounds %d)", rc.polish);
        assert_non_null(strstr(cache_get_config(cc)->params, want));
        glocal_infer_options io;
        glocal_infer_options_default(&io);
        snprintf(want, sizeof want, "network passes %d (0: the model's", io.net_passes);
        assert_non_null(strstr(cache_get_config(cc)->params, want));
        assert_non_null(strstr(cache_get_config(cc)->params, "search start 1 on every pair"));
        snprintf(want, sizeof want, "where the LME's own flow moves too (k %g)", io.lme_agree_k);
        assert_non_null(strstr(cache_get_config(cc)->params, want));
        assert_true(io.local_fuse);
        assert_non_null(strstr(cache_get_config(cc)->params, "fused with DIS (medium)"));
        assert_non_null(strstr(cache_get_config(cc)->params, "aligned (bicubic)"));
        assert_non_null(strstr(cache_get_config(cc)->params, "mapped into B's frame"));
    }
    assert_int_equal(sum.pairs, cache_pair_count(cc)); /* each pair computed once for the eight */
    cache_close(&cc);
    assert_pass_consistent(hl, hr, hm);
    assert_pass_consistent(lp[0], lp[1], lp[2]);
    for (int k = 0; k < 5; k++) {
        OK(cache_open(lp[k], 0, &cc));
        assert_string_equal(cache_get_config(cc)->method, lme[k]);
        assert_int_equal(cache_get_config(cc)->channels, k == 4 ? 1 : 2);
        if (k < 3) assert_non_null(strstr(cache_get_config(cc)->params, "the LME's own"));
        if (k < 3) assert_non_null(strstr(cache_get_config(cc)->params, "variational refinement on the raw pair"));
        if (k < 3) assert_non_null(strstr(cache_get_config(cc)->params, "and the unfinished flow too"));
        if (k < 3) assert_non_null(strstr(cache_get_config(cc)->params, "coarse to fine from 1/2 of the model size"));
        /* the text's last rules are recorded whole (it once ran past the cache's 800-character copy) */
        if (k < 3) assert_non_null(strstr(cache_get_config(cc)->params, "x its median, none in flat windows"));
        if (k < 3) { /* ... to its last number: the default lme_flat_noise ends it */
            glocal_infer_options io;
            glocal_infer_options_default(&io);
            char want[64];
            snprintf(want, sizeof want, "residual is above %g", io.lme_flat_noise);
            const char *pt = cache_get_config(cc)->params;
            assert_true(strlen(pt) > strlen(want));
            assert_string_equal(pt + strlen(pt) - strlen(want), want);
        }
        cache_close(&cc);
        double worst = assert_close(lp[k], la[k], CACHE_INT16_SCALE + 1e-6);
        print_message("one pass with the hybrid vs %s alone: %.4g px\n", lme[k], worst);
    }
    /* the global flow is the homography's (H p - p from the stored H), and
     * the mask is the local flow's gate: 0 or 1, the residual where 1, 0 where 0 */
    assert_mask_global(lp[4], lp[3], hl, hr);
    /* and the two local flows are not the same flow */
    assert_true(max_abs_diff(hr, lp[1]) > 0.1);
    assert_string_equal(extract_method_pass("glocal-tvl1-residual"), "glocal");
    assert_string_equal(extract_method_pass("glocal-lme-mixed"), "glocal");
    assert_string_equal(extract_method_pass("glocal-mixed"), "glocal");
    assert_string_equal(extract_method_pass("glocal-global"), "glocal");
    assert_string_equal(extract_method_pass("glocal-lme-mask"), "glocal");
    assert_string_equal(extract_method_pass("tvl1"), "tvl1");
    assert_null(extract_method_pass("tvl2"));
    /* outputs that one pass does not give, named */
    c.method = "glocal-local";
    c.out = pass[0];
    c.nmore = 1;
    c.more[0] = (extract_output){ "tvl1-minus-homography", pass[1] };
    assert_int_equal(extract_config_validate(&c), GL_EINVAL);
    assert_non_null(
        strstr(gl_last_error(), "more[0].method: tvl1-minus-homography is not computed by the pass of glocal-local"));
    c.more[0] = (extract_output){ "glocal-local", pass[1] };
    assert_int_equal(extract_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "asked for twice"));
    c.more[0] = (extract_output){ "glocal-mixed", pass[0] };
    assert_int_equal(extract_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "is also the cache of glocal-local"));
    c.more[0] = (extract_output){ "glocal-mixed", NULL };
    assert_int_equal(extract_config_validate(&c), GL_EINVAL);
    c.more[0] = (extract_output){ "glocal-mixed", pass[2] };
    OK(extract_config_validate(&c));
    /* a model path the cache's parameter text could not hold whole */
    char longpath[EXTRACT_MODEL_PATH_MAX + 2];
    memset(longpath, 'm', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    const char *model = c.model;
    c.model = longpath;
    assert_int_equal(extract_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "extract_config.model: a path of 1025 characters"));
    c.model = model;
}

/* Waits for pid at most `seconds`; the exit status, or -1 (killed) on timeout. */
static int wait_for(pid_t pid, int seconds)
{
    int st;
    for (int t = 0; t < 10 * seconds; t++) {
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* Distributed extract without a supervisor (torchrun / srun style): rank 1
 * fails after joining (its dataset folder does not exist). Rank 0 finishes
 * its shard and stops at the barrier at once, exit 1, saying why, instead of
 * waiting for rank 1's shard forever; its own shard is kept for a rerun. */
static void test_dead_rank_stops_the_job(void **state)
{
    (void)state;
    char out[300], nowhere[300], shard0[340], logp[300];
    snprintf(out, sizeof out, "%s/dead.h5", tmpdir);
    snprintf(nowhere, sizeof nowhere, "%s/no-such-dataset", tmpdir);
    snprintf(shard0, sizeof shard0, "%s.shard0of2.h5", out);
    snprintf(logp, sizeof logp, "%s/log.txt", tmpdir);
    unlink(logp);
    const char *a0[] = { "--threads", "1", "extract", "--dataset", ds, "--method", "rgbdiff", "--size",
                         "16x24", "--stride", "5", "--out", out, NULL };
    const char *a1[] = { "--threads", "1", "extract", "--dataset", nowhere, "--method", "rgbdiff", "--size",
                         "16x24", "--stride", "5", "--out", out, NULL };
    int port = test_free_port();
    pid_t p0 = spawn_rank(a0, 0, 2, port), p1 = spawn_rank(a1, 1, 2, port);
    int r1 = wait_for(p1, 120), r0 = wait_for(p0, 120);
    assert_int_equal(r1, 1);
    assert_int_equal(r0, 1); /* not -1: it did not hang */
    assert_int_equal(access(shard0, R_OK), 0);
    assert_int_not_equal(access(out, F_OK), 0);
    char *log = test_read_text(logp);
    assert_non_null(log);
    if (!strstr(log, "another rank stopped before finishing its shard")) {
        print_error("rank 0 did not say why it stopped:\n%s\n", log);
        fail();
    }
    gl_free(log);
}

static int spool_clips(const char *spool)
{
    DIR *d = opendir(spool);
    int n = 0;
    struct dirent *e;
    if (!d) return 0;
    while ((e = readdir(d)))
        if (e->d_name[0] == 'c' && strlen(e->d_name) == 16) n++;
    closedir(d);
    return n;
}

static void test_kill_and_resume(void **state)
{
    (void)state;
    char ref[300], out[300], spool[320];
    snprintf(ref, sizeof ref, "%s/tvl1_ref.h5", tmpdir);
    snprintf(out, sizeof out, "%s/tvl1.h5", tmpdir);
    snprintf(spool, sizeof spool, "%s.parts", out);
#define TVL1_ARGS(o) { "--threads", "1", "extract", "--dataset", ds, "--method", "tvl1-minus-homography", \
                       "--size", "16x16", "--stride", "3", "--workers", "1", "--out", o, NULL }
    const char *aref[] = TVL1_ARGS(ref);
    const char *aout[] = TVL1_ARGS(out);
    assert_int_equal(run(aref), 1);
    /* kill -9 once the first clip is spooled, while the second is computed */
    pid_t pid = spawn(aout);
    int st, exited = 0;
    while (!exited && spool_clips(spool) < 1) {
        exited = waitpid(pid, &st, WNOHANG) == pid;
        usleep(1000);
    }
    assert_false(exited);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(access(out, F_OK), -1); /* nothing half-written is visible */
    /* Ctrl-C: the clip in flight is dropped, the spool kept, exit 130 */
    char inflight[400];
    snprintf(inflight, sizeof inflight, "%s/c000000000001.h5.tmp", spool);
    unlink(inflight); /* the killed run's; the next run makes its own */
    pid = spawn(aout);
    exited = 0;
    while (!exited && access(inflight, F_OK) != 0) { /* the second clip has begun */
        exited = waitpid(pid, &st, WNOHANG) == pid;
        usleep(1000);
    }
    if (!exited) {
        kill(pid, SIGINT);
        assert_int_equal(waitpid(pid, &st, 0), pid);
    }
    assert_true(WIFEXITED(st));
    print_message("after SIGINT: exit status %d\n", WEXITSTATUS(st));
    if (WEXITSTATUS(st) == 130) {
        assert_int_equal(access(out, F_OK), -1);
        assert_int_equal(access(spool, F_OK), 0);
    } else {
        assert_int_equal(WEXITSTATUS(st), 1); /* it had finished before the signal */
    }
    assert_int_equal(run(aout), 1);          /* resumes (and reports the 2 failures) */
    assert_same(out, ref);
    cache *c = NULL;
    OK(cache_open(out, 0, &c));
    assert_int_equal(cache_verify(c, NULL, NULL), 0);
    assert_true(cache_get_config(c)->has_homographies);
    float h[9];
    OK(cache_read_homographies(c, 0, 0, 1, h));
    assert_true(fabs(h[8] - 1.0) < 1e-6); /* normalised so that h[8] = 1 */
    cache_close(&c);
}

static void test_usage_errors(void **state)
{
    (void)state;
    char out[300];
    snprintf(out, sizeof out, "%s/x.h5", tmpdir);
    const char *a1[] = { "extract", "--dataset", ds, "--method", "glocal-local", "--out", out, NULL };
    assert_int_equal(run(a1), 2);
    /* several outputs: one --out per --method, all of one pass */
    const char *a2[] = { "extract", "--dataset", ds, "--model", MODEL, "--method", "glocal-local", "--out", out,
                         "--method", "glocal-residual", NULL };
    assert_int_equal(run(a2), 2);
    const char *a4[] = { "extract", "--dataset", ds, "--model", MODEL, "--method", "glocal-local", "--out", out,
                         "--method", "tvl1", "--out", "/tmp/g.h5", NULL };
    assert_int_equal(run(a4), 2);
    const char *a3[] = { "extract", "--dataset", ds, "--method", "rgbdiff", "--out", out,
                         "--split-file", "/tmp/mylist.txt", NULL };
    assert_int_equal(run(a3), 2);
    const char *a5[] = { "extract", "--dataset", "/nonexistent", "--method", "rgbdiff", "--out", out,
                         NULL };
    assert_int_equal(run(a5), 1);
    /* (each run starts libtorch: usage checks are kept few) */
    /* --split-file: only the test list (both fail: exit 1, cache with 2 errors) */
    char list[400];
    snprintf(list, sizeof list, "%s/testlist01.txt", ds);
    const char *a7[] = { "extract", "--dataset", ds, "--method", "rgbdiff", "--out", out,
                         "--split-file", list, "--size", "8x8", NULL };
    assert_int_equal(run(a7), 1);
    cache *c = NULL;
    OK(cache_open(out, 0, &c));
    assert_int_equal(cache_get_config(c)->total_clips, 2);
    assert_int_equal(cache_clip_count(c), 0);
    assert_int_equal(cache_error_count(c), 2);
    cache_close(&c);
}

int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rgbdiff_against_decoded_frames),
        cmocka_unit_test(test_extract_run_against_tvl1),
        cmocka_unit_test(test_extract_run_dis),
        cmocka_unit_test(test_extract_run_glocal_one_pass),
        cmocka_unit_test(test_kill_and_resume),
        cmocka_unit_test(test_dead_rank_stops_the_job),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
