/* glocal extract — computes a motion method over every clip of a dataset
 * into an HDF5 motion cache (datasets/cache.h), resumably, in parallel.
 *
 * Pipeline. W worker threads each take the next clip, stream its frames
 * (FFmpeg, resized to the cache grid), run the method on batches of pairs
 * and append the fields to their own spooled clip file; while one worker
 * compresses and writes (HDF5 serialises its calls), the others decode and
 * compute, so decoding, motion and writing overlap. Memory per worker is a
 * batch of frames and fields, whatever the clip or dataset length. The main
 * thread only draws the progress line.
 *
 * Methods plug in through `motion_method`: a per-worker state and a
 * function that turns n frame pairs into n fields (and homographies). The
 * GLOCAL methods (glocal-local|residual|global|mixed) run motion/glocal.h's
 * glocal_infer on the batch: the local (masked), residual (local before the
 * mask), global or mixed flow is stored, and the refined homography of every
 * pair.
 */
#include <signal.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datasets/cache.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "motion/flow.h"
#include "motion/glocal.h"
#include "nn/nn.h"

#include <libavutil/mem.h>
#include <libavutil/sha.h>

GLOCAL_COMMAND(extract, "extract", "compute motion (GLOCAL, TV-L1, flow minus homography, RGB difference) into an HDF5 cache")

#define BATCH 8 /* pairs per method call and per append */

/* ---- methods ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    int channels;          /* per field: 2 (flow u, v) or 3 (RGB difference) */
    int has_homographies;
    float scale;           /* int16 step of the stored values */
    /* Per-worker state (may stay NULL). */
    int (*init)(void **state, int width, int height);
    void (*free)(void *state);
    /* n pairs of RGB24 frames (width*height*3 bytes each) -> fields [n, C, h, w]
     * and, when has_homographies, homographies [n, 9] (row-major, pixels of
     * the h x w grid, frame a -> frame b). */
    int (*pairs)(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int width,
                 int height, float *fields, float *homs);
    /* The method's parameters as text (recorded in the cache; resume checks them). */
    void (*describe)(char *buf, size_t n);
} motion_method;

typedef struct {
    flow_field flow, local;
} tvl1_state;

static void tvl1_free(void *p)
{
    tvl1_state *s = p;
    if (!s) return;
    flow_field_free(&s->flow);
    flow_field_free(&s->local);
    gl_free(s);
}

static int tvl1_init(void **out, int w, int h)
{
    tvl1_state *s = gl_calloc(1, sizeof *s);
    if (!s) return GL_ENOMEM;
    int rc;
    if ((rc = flow_field_new(&s->flow, w, h)) < 0 || (rc = flow_field_new(&s->local, w, h)) < 0) {
        tvl1_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int tvl1_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                      int h, float *fields, float *homs)
{
    (void)homs;
    tvl1_state *s = state;
    size_t hw = (size_t)w * h;
    for (int i = 0; i < n; i++) {
        int rc = flow_from_rgb24(a[i], b[i], w, h, flow_method_tvl1, NULL, &s->flow);
        if (rc < 0) return rc;
        memcpy(fields + (size_t)i * 2 * hw, s->flow.u, sizeof(float) * hw);
        memcpy(fields + (size_t)i * 2 * hw + hw, s->flow.v, sizeof(float) * hw);
    }
    return 0;
}

static void tvl1_describe(char *buf, size_t n)
{
    tvl1_config c;
    tvl1_config_default(&c);
    snprintf(buf, n, "tvl1(IPOL): tau=%g lambda=%g theta=%g epsilon=%g zoom=%g scales=%d warps=%d "
             "iterations=%d median=%d presmooth=%g", c.tau, c.lambda, c.theta, c.epsilon, c.zoom,
             c.scales, c.warps, c.iterations, c.median, c.presmooth);
}

#define FMH_STEP 4 /* flow sampled every 4 px for the homography fit */

static int fmh_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                     int h, float *fields, float *homs)
{
    tvl1_state *s = state;
    size_t hw = (size_t)w * h;
    flow_baseline_config c;
    flow_baseline_config_default(&c);
    c.step = FMH_STEP;
    c.zero_inliers = 0;
    for (int i = 0; i < n; i++) {
        double H[9];
        int rc = flow_baseline_rgb24(a[i], b[i], w, h, &c, H, &s->flow, NULL, &s->local);
        if (rc < 0) return rc;
        memcpy(fields + (size_t)i * 2 * hw, s->local.u, sizeof(float) * hw);
        memcpy(fields + (size_t)i * 2 * hw + hw, s->local.v, sizeof(float) * hw);
        for (int k = 0; k < 9; k++) homs[9 * i + k] = (float)H[k];
    }
    return 0;
}

static void fmh_describe(char *buf, size_t n)
{
    char t[512];
    homography_ransac_config c;
    homography_ransac_config_default(&c);
    tvl1_describe(t, sizeof t);
    snprintf(buf, n, "%s; minus homography: RANSAC threshold=%g iterations=%d confidence=%g seed=%llu "
             "refits=%d step=%d, local = flow - H flow", t, c.threshold, c.iterations, c.confidence,
             (unsigned long long)c.seed, c.refits, FMH_STEP);
}

static int rgbdiff_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n,
                         int w, int h, float *fields, float *homs)
{
    (void)state;
    (void)homs;
    for (int i = 0; i < n; i++) {
        int rc = rgbdiff_compute(a[i], b[i], w, h, fields + (size_t)i * 3 * w * h);
        if (rc < 0) return rc;
    }
    return 0;
}

static void rgbdiff_describe(char *buf, size_t n)
{
    snprintf(buf, n, "rgbdiff(TSN): (b - a) / 255 per RGB channel");
}

/* GLOCAL (motion/glocal.h): each worker loads its own copy of the checkpoint
 * given by --model (small models; no sharing of libtorch state across threads). */
static const char *glocal_model_path;

typedef struct {
    glocal_model *m;
} glocal_state;

static void glocal_state_free(void *p)
{
    glocal_state *s = p;
    if (!s) return;
    glocal_model_free(&s->m);
    gl_free(s);
}

static int glocal_state_init(void **out, int w, int h)
{
    (void)w;
    (void)h;
    glocal_state *s = gl_calloc(1, sizeof *s);
    if (!s) return GL_ENOMEM;
    int rc = glocal_model_load(&s->m, glocal_model_path, NULL);
    if (rc < 0) {
        gl_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

typedef enum { GLOCAL_LOCAL, GLOCAL_RESIDUAL, GLOCAL_GLOBAL, GLOCAL_MIXED } glocal_part;

static int glocal_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                        int h, float *fields, float *homs, glocal_part part)
{
    glocal_state *s = state;
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.lme = part != GLOCAL_GLOBAL;
    o.local_gate = part != GLOCAL_RESIDUAL;
    glocal_result r = { 0 }; /* glocal_infer allocates it */
    int rc = glocal_infer(s->m, a, b, n, w, h, &o, &r);
    if (rc < 0) goto done;
    size_t per = (size_t)2 * w * h;
    const float *src = part == GLOCAL_GLOBAL ? r.global_flow : part == GLOCAL_MIXED ? r.mixed_flow : r.local_flow;
    memcpy(fields, src, sizeof(float) * per * (size_t)n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 9; k++) homs[9 * i + k] = (float)r.homography[9 * i + k];
done:
    glocal_result_free(&r);
    return rc;
}

static int glocal_local_pairs(void *st, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                              int h, float *fields, float *homs)
{
    return glocal_pairs(st, a, b, n, w, h, fields, homs, GLOCAL_LOCAL);
}

static int glocal_residual_pairs(void *st, const uint8_t *const *a, const uint8_t *const *b, int n,
                                 int w, int h, float *fields, float *homs)
{
    return glocal_pairs(st, a, b, n, w, h, fields, homs, GLOCAL_RESIDUAL);
}

static int glocal_global_pairs(void *st, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                               int h, float *fields, float *homs)
{
    return glocal_pairs(st, a, b, n, w, h, fields, homs, GLOCAL_GLOBAL);
}

static int glocal_mixed_pairs(void *st, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                              int h, float *fields, float *homs)
{
    return glocal_pairs(st, a, b, n, w, h, fields, homs, GLOCAL_MIXED);
}

static void glocal_describe(char *buf, size_t n)
{
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    snprintf(buf, n, "glocal: model=%s (sha256 in model_sha256), robust refinement=%d, frames resized "
             "to the model size, flows rescaled to the grid", glocal_model_path ? glocal_model_path : "?",
             o.refine);
}

static const motion_method methods[] = {
    { "tvl1", 2, 0, CACHE_INT16_SCALE, tvl1_init, tvl1_free, tvl1_pairs, tvl1_describe },
    { "tvl1-minus-homography", 2, 1, CACHE_INT16_SCALE, tvl1_init, tvl1_free, fmh_pairs,
      fmh_describe },
    /* 8-bit differences / 255 are stored exactly with a 1/255 step */
    { "rgbdiff", 3, 0, 1.0f / 255.0f, NULL, NULL, rgbdiff_pairs, rgbdiff_describe },
    { "glocal-local", 2, 1, CACHE_INT16_SCALE, glocal_state_init, glocal_state_free, glocal_local_pairs,
      glocal_describe },
    { "glocal-residual", 2, 1, CACHE_INT16_SCALE, glocal_state_init, glocal_state_free,
      glocal_residual_pairs, glocal_describe },
    { "glocal-global", 2, 1, CACHE_INT16_SCALE, glocal_state_init, glocal_state_free, glocal_global_pairs,
      glocal_describe },
    { "glocal-mixed", 2, 1, CACHE_INT16_SCALE, glocal_state_init, glocal_state_free, glocal_mixed_pairs,
      glocal_describe },
};

/* Hex SHA-256 of a file (libavutil's implementation), for the cache's provenance. */
static int file_sha256(const char *path, char hex[65])
{
    void *data;
    size_t n;
    int rc = gl_read_file(path, &data, &n);
    if (rc < 0) return rc;
    struct AVSHA *sha = av_sha_alloc();
    if (!sha) { gl_free(data); return gl_error(GL_ENOMEM, "out of memory"); }
    uint8_t d[32];
    av_sha_init(sha, 256);
    av_sha_update(sha, data, n);
    av_sha_final(sha, d);
    av_free(sha);
    gl_free(data);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

/* ---- the run ---------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct {
    const motion_method *m;
    const dataset_index *idx;
    const long *sel;       /* dataset position -> index into idx->clips */
    const long *jobs;      /* dataset positions still to compute */
    long njobs;
    atomic_long next;      /* next job */
    atomic_long pairs;     /* pairs computed in this run */
    atomic_long failed;    /* clips that failed in this run */
    atomic_int fatal;      /* a cache write failed: stop */
    atomic_int running;    /* workers still running */
    char fatal_msg[1024];
    pthread_mutex_t mu;
    cache_writer *w;
    int width, height, stride;
} run_ctx;

static void set_fatal(run_ctx *x, int rc)
{
    pthread_mutex_lock(&x->mu);
    if (!atomic_load(&x->fatal)) {
        snprintf(x->fatal_msg, sizeof x->fatal_msg, "%s", gl_last_error());
        atomic_store(&x->fatal, rc);
    }
    pthread_mutex_unlock(&x->mu);
}

/* A clip failed for a reason of its own (unreadable video, ...): record it. */
static int clip_failed(run_ctx *x, long pos, const char *name, const char *why)
{
    atomic_fetch_add(&x->failed, 1);
    char msg[CACHE_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "%s", why[0] ? why : "failed");
    int rc = cache_writer_put_error(x->w, pos, name, msg);
    if (rc < 0) set_fatal(x, rc);
    return rc;
}

typedef struct {
    uint8_t *frames[BATCH + 1];
    float *fields, *homs;
    void *state;
} worker_bufs;

/* Computes clip `pos`. Returns < 0 only for fatal (cache) errors. */
static int do_clip(run_ctx *x, worker_bufs *wb, long pos)
{
    const dataset_clip *dc = &x->idx->clips[x->sel[pos]];
    const char *name = dc->rel_path;
    video_reader *r = NULL;
    cache_clip_writer *cw = NULL;
    char why[CACHE_MESSAGE_MAX] = "";
    int rc = 0, n = 0, have_first = 0, eof = 0;
    long clip_pairs = 0;
    if (strlen(name) >= CACHE_NAME_MAX) {
        snprintf(why, sizeof why, "name longer than %d bytes", CACHE_NAME_MAX - 1);
        goto failed;
    }
    struct stat st;
    if (!dc->exists || stat(dc->path, &st) < 0) {
        snprintf(why, sizeof why, "%s: file not found", dc->path);
        goto failed;
    }
    video_reader_opts o = video_reader_opts_default();
    o.width = x->width;
    o.height = x->height;
    o.threads = 1;
    o.scaler = VIDEO_SCALE_AREA;
    if ((rc = video_reader_open(&r, dc->path, &o)) < 0) {
        snprintf(why, sizeof why, "%s", gl_last_error());
        goto failed;
    }
    cache_clip info;
    memset(&info, 0, sizeof info);
    snprintf(info.name, sizeof info.name, "%s", name);
    info.index = pos;
    info.label = dc->label;
    info.split = (int)dc->split;
    info.src_size = (int64_t)st.st_size;
    info.src_mtime = (int64_t)st.st_mtime;
    if ((rc = cache_clip_begin(x->w, &info, &cw)) < 0) {
        set_fatal(x, rc);
        goto out;
    }
    while (!eof) {
        /* frames[0] is the previous batch's last frame */
        while (n < BATCH && !eof) {
            uint8_t *dst = wb->frames[have_first ? n + 1 : 0];
            if (have_first)
                for (int s = 1; s < x->stride && !eof; s++) {
                    rc = video_reader_skip(r, NULL);
                    if (rc == GL_EOF) eof = 1;
                    else if (rc < 0) goto decode_error;
                }
            if (eof) break;
            rc = video_reader_read(r, dst, NULL);
            if (rc == GL_EOF) { eof = 1; break; }
            if (rc < 0) goto decode_error;
            if (have_first) n++;
            have_first = 1;
        }
        if (interrupted || atomic_load(&x->fatal)) goto out;
        if (n == 0) break;
        if ((rc = x->m->pairs(wb->state, (const uint8_t *const *)wb->frames,
                              (const uint8_t *const *)wb->frames + 1, n, x->width, x->height,
                              wb->fields, x->m->has_homographies ? wb->homs : NULL)) < 0) {
            if (rc == GL_ENOMEM) { set_fatal(x, rc); goto out; }
            snprintf(why, sizeof why, "%s: %s", x->m->name, gl_last_error());
            goto failed;
        }
        if ((rc = cache_clip_append(cw, n, wb->fields, x->m->has_homographies ? wb->homs : NULL)) < 0) {
            if (rc == GL_ENUMERIC) { /* the method produced NaN: this clip's problem */
                snprintf(why, sizeof why, "%s", gl_last_error());
                goto failed;
            }
            set_fatal(x, rc);
            goto out;
        }
        atomic_fetch_add(&x->pairs, n);
        clip_pairs += n;
        uint8_t *t = wb->frames[0];
        wb->frames[0] = wb->frames[n];
        wb->frames[n] = t;
        n = 0;
    }
    if (clip_pairs == 0) {
        snprintf(why, sizeof why, "fewer than 2 frames at stride %d", x->stride);
        goto failed;
    }
    if ((rc = cache_clip_commit(&cw)) < 0) set_fatal(x, rc);
    goto out;
decode_error:
    snprintf(why, sizeof why, "decoding: %s", gl_last_error());
failed:
    cache_clip_abort(&cw);
    video_reader_close(&r);
    return clip_failed(x, pos, name, why);
out:
    cache_clip_abort(&cw);
    video_reader_close(&r);
    return atomic_load(&x->fatal);
}

static void *worker_main(void *arg)
{
    run_ctx *x = arg;
    worker_bufs wb;
    memset(&wb, 0, sizeof wb);
    size_t fb = (size_t)x->width * x->height * 3;
    int rc = 0;
    for (int i = 0; i <= BATCH; i++)
        if (!(wb.frames[i] = gl_malloc(fb))) rc = GL_ENOMEM;
    if (rc == 0 && !(wb.fields = gl_malloc(sizeof(float) * BATCH * x->m->channels * (size_t)x->width *
                                           x->height)))
        rc = GL_ENOMEM;
    if (rc == 0 && !(wb.homs = gl_malloc(sizeof(float) * BATCH * 9))) rc = GL_ENOMEM;
    if (rc == 0 && x->m->init) rc = x->m->init(&wb.state, x->width, x->height);
    if (rc < 0) set_fatal(x, rc);
    while (rc >= 0 && !interrupted && !atomic_load(&x->fatal)) {
        long j = atomic_fetch_add(&x->next, 1);
        if (j >= x->njobs) break;
        rc = do_clip(x, &wb, x->jobs[j]);
    }
    if (x->m->free) x->m->free(wb.state);
    for (int i = 0; i <= BATCH; i++) gl_free(wb.frames[i]);
    gl_free(wb.fields);
    gl_free(wb.homs);
    atomic_fetch_sub(&x->running, 1);
    return NULL;
}

static const char *usage =
    "usage: glocal extract --dataset DIR [--lists DIR] [--split-file F | --split N]\n"
    "                      --method METHOD --out CACHE.h5 [--size HxW] [--stride S]\n"
    "                      [--shard K/N] [--workers W] [--model CKPT] [--dist-timeout S]\n"
    "\n"
    "Computes METHOD between frames t and t+S of every clip and stores the fields\n"
    "in an HDF5 motion cache (schema: datasets/cache.h; `glocal cache info` shows it).\n"
    "\n"
    "  --dataset DIR     clips in the UCF-101 layout (DIR/Class/v_Class_gGG_cCC.avi)\n"
    "  --lists DIR       folder of classInd.txt and the split lists (default DIR)\n"
    "  --split N         all clips of split N (train, test and val lists; default 1)\n"
    "  --split-file F    only the clips of list F (e.g. .../testlist01.txt)\n"
    "  --method M        tvl1 | tvl1-minus-homography | rgbdiff\n"
    "                    glocal-local | glocal-residual | glocal-global | glocal-mixed\n"
    "                    (GLOCAL, needs --model; glocal-residual = the local flow before the\n"
    "                    mask: TV-L1 on the pair aligned by GLOCAL's homography)\n"
    "  --out CACHE.h5    the cache; rerunning the same command resumes it\n"
    "  --size HxW        field grid: frames are resized to it (default 112x112)\n"
    "  --stride S        frames between the two of a pair, and between pairs (default 1)\n"
    "  --shard K/N       compute only clips i with i %% N == K (0 <= K < N); join the\n"
    "                    shards with `glocal cache merge`\n"
    "  --workers W       clips computed at once (default: --threads); each method call\n"
    "                    then gets threads / W threads\n"
    "\n"
    "Methods: tvl1 = TV-L1 flow (IPOL defaults) on grey frames, 2 channels (u, v) in\n"
    "pixels of the grid; tvl1-minus-homography = TV-L1 minus the RANSAC homography\n"
    "of the flow (local motion) plus the homography per pair; rgbdiff = TSN's RGB\n"
    "difference, 3 channels in [-1, 1], stored exactly.\n"
    "\n"
    "Several ranks (glocal launch -n N, torchrun, srun) without --shard: rank K\n"
    "computes shard K/N into CACHE.h5.shardKofN.h5; the ranks meet at a barrier\n"
    "(c10d) and rank 0 merges the shards into CACHE.h5. A rank that dies makes the\n"
    "others stop at once (exit 1; finished shards are kept, rerun to resume); one\n"
    "that hangs, after --dist-timeout seconds (default 604800: shards may differ in\n"
    "length by hours).\n"
    "\n"
    "Crash safety: each finished clip is spooled in CACHE.h5.parts/ and the cache is\n"
    "published atomically at the end; kill -9 loses only the clips in flight.\n"
    "Ctrl-C stops after the clips in flight are dropped; rerun to resume.\n"
    "Clips that cannot be read are recorded in the cache's /errors and listed at the\n"
    "end. Exit status: 0 all clips stored, 1 some clips failed or an error, 2 usage,\n"
    "130 interrupted.\n";

/* "trainlist01.txt" -> split 1, DATASET_TRAIN. */
static int parse_list_name(const char *file, int *split_no, dataset_split *kind)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    static const struct { const char *prefix; dataset_split s; } kinds[] = {
        { "trainlist", DATASET_TRAIN }, { "testlist", DATASET_TEST }, { "vallist", DATASET_VAL } };
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(kinds[i].prefix);
        if (!strncmp(base, kinds[i].prefix, n) && base[n] >= '0' && base[n] <= '9' &&
            base[n + 1] >= '0' && base[n + 1] <= '9' && !strcmp(base + n + 2, ".txt")) {
            *split_no = (base[n] - '0') * 10 + (base[n + 1] - '0');
            *kind = kinds[i].s;
            return 0;
        }
    }
    return -1;
}

int cmd_extract(int argc, char **argv)
{
    const char *cmd = "extract", *dataset = NULL, *lists = NULL, *split_file = NULL, *method = NULL;
    const char *out = NULL, *model = NULL;
    long split = 0, stride = 1, workers = 0;
    int height = 112, width = 112, shard_k = 0, shard_n = 1, shard_given = 0;
    double dist_timeout = 604800;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf(usage);
            return CLI_OK;
        }
        if (a[0] != '-' || a[1] != '-') return cli_usage_error(cmd, "unexpected argument '%s'", a);
        if (i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--dataset")) dataset = v;
        else if (!strcmp(a, "--lists")) lists = v;
        else if (!strcmp(a, "--split-file")) split_file = v;
        else if (!strcmp(a, "--split")) {
            if (cli_parse_int(cmd, a, v, 1, 99, &split) < 0) return CLI_USAGE;
        } else if (!strcmp(a, "--method")) method = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--dist-timeout")) {
            if (cli_parse_double(cmd, a, v, &dist_timeout) < 0) return CLI_USAGE;
            if (!(dist_timeout > 0)) return cli_usage_error(cmd, "--dist-timeout must be > 0 seconds");
        }
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--size")) {
            if (cli_parse_size(cmd, a, v, "hw", &height, &width) < 0) return CLI_USAGE;
            if (height < 8 || width < 8 || height > 4096 || width > 4096)
                return cli_usage_error(cmd, "--size: each side in 8..4096, got %s", v);
        } else if (!strcmp(a, "--stride")) {
            if (cli_parse_int(cmd, a, v, 1, 1000, &stride) < 0) return CLI_USAGE;
        } else if (!strcmp(a, "--workers")) {
            if (cli_parse_int(cmd, a, v, 1, 256, &workers) < 0) return CLI_USAGE;
        } else if (!strcmp(a, "--shard")) {
            char *end;
            long k = strtol(v, &end, 10), n = -1;
            if (end != v && *end == '/') n = strtol(end + 1, &end, 10);
            if (*end || n < 1 || n > 100000 || k < 0 || k >= n)
                return cli_usage_error(cmd, "--shard expects K/N with 0 <= K < N, got '%s'", v);
            shard_k = (int)k;
            shard_n = (int)n;
            shard_given = 1;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (!dataset) return cli_usage_error(cmd, "--dataset is required");
    if (!out) return cli_usage_error(cmd, "--out is required");
    /* Under glocal launch / torchrun / srun without --shard, rank K of N computes
     * shard K/N into its own cache OUT.shardKofN.h5 (published on its own, so a
     * rank that dies loses none of the others' work), and rank 0 then merges
     * every shard into OUT. */
    char shard_out[4096], final_out[4096] = "";
    int dist_rank = 0, dist_world = 1;
    nn_dist *dist = NULL;
    if (!shard_given) {
        nn_dist_env e;
        int erc = nn_dist_env_read(&e);
        if (erc < 0) return cli_fail(cmd, erc, "distributed environment");
        if (e.world_size > 1) {
            dist_rank = e.rank;
            dist_world = e.world_size;
            shard_k = e.rank;
            shard_n = e.world_size;
            snprintf(final_out, sizeof final_out, "%s", out);
            snprintf(shard_out, sizeof shard_out, "%s.shard%dof%d.h5", out, shard_k, shard_n);
            out = shard_out;
        }
    }
    if (!method) return cli_usage_error(cmd, "--method is required");
    if (split_file && split) return cli_usage_error(cmd, "give --split or --split-file, not both");
    const motion_method *m = NULL;
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
        if (!strcmp(methods[i].name, method)) m = &methods[i];
    if (!m)
        return cli_usage_error(cmd, "--method: unknown '%s' (tvl1, tvl1-minus-homography, rgbdiff, "
                               "glocal-local, glocal-residual, glocal-global, glocal-mixed)", method);
    int is_glocal = !strncmp(method, "glocal-", 7);
    if (model && !is_glocal) return cli_usage_error(cmd, "--model applies to the glocal-* methods only");
    if (is_glocal && !model)
        return cli_usage_error(cmd, "--method %s needs --model CKPT (a checkpoint of glocal train-motion)", method);
    glocal_model_path = model;

    /* the clip list */
    int split_no = split ? (int)split : 1, only = -1;
    char lists_dir[4096];
    if (split_file) {
        dataset_split kind;
        if (parse_list_name(split_file, &split_no, &kind) < 0)
            return cli_usage_error(cmd, "--split-file: '%s' is not named trainlistNN.txt, "
                                   "testlistNN.txt or vallistNN.txt", split_file);
        only = (int)kind;
        snprintf(lists_dir, sizeof lists_dir, "%s", split_file);
        char *slash = strrchr(lists_dir, '/');
        if (slash) *slash = 0;
        else snprintf(lists_dir, sizeof lists_dir, ".");
        if (lists) return cli_usage_error(cmd, "--split-file names its folder: drop --lists");
        lists = lists_dir;
    }
    dataset_index *idx = NULL;
    cache_writer *w = NULL;
    long *sel = NULL, *jobs = NULL;
    pthread_t *tids = NULL;
    int code = CLI_FAIL, nthreads = 0, rc;
    run_ctx x;
    memset(&x, 0, sizeof x);
    pthread_mutex_init(&x.mu, NULL);
    if (dist_world > 1) {
        /* Joined before any work, so a rank that fails anywhere later is seen
         * by the others at the final barrier instead of being waited for. */
        nn_dist_options dopt = nn_dist_options_default();
        dopt.timeout_s = dist_timeout;
        dopt.rendezvous_timeout_s = 300;
        if ((rc = nn_dist_init_from_env(&dist, &dopt)) < 0) {
            cli_fail(cmd, rc, "cannot join the distributed job");
            goto done;
        }
    }
    if ((rc = dataset_index_load(&idx, dataset, lists, split_no)) < 0) {
        cli_fail(cmd, rc, "cannot read the dataset");
        goto done;
    }
    sel = gl_malloc(sizeof *sel * (size_t)(idx->num_clips + 1));
    jobs = gl_malloc(sizeof *jobs * (size_t)(idx->num_clips + 1));
    if (!sel || !jobs) {
        cli_fail(cmd, GL_ENOMEM, "out of memory");
        goto done;
    }
    long total = 0;
    for (long i = 0; i < idx->num_clips; i++)
        if (only < 0 || (int)idx->clips[i].split == only) sel[total++] = i;
    if (total == 0) {
        fprintf(stderr, "glocal extract: no clips selected\n");
        goto done;
    }
    cache_config cfg;
    cache_config_default(&cfg);
    snprintf(cfg.method, sizeof cfg.method, "%s", m->name);
    char desc[800];
    m->describe(desc, sizeof desc);
    snprintf(cfg.params, sizeof cfg.params, "size=%dx%d stride=%ld frames=RGB24 area-resized; %s",
             height, width, stride, desc);
    if (split_file)
        snprintf(cfg.source, sizeof cfg.source, "dataset=%.480s list=%.480s", dataset, split_file);
    else
        snprintf(cfg.source, sizeof cfg.source, "dataset=%.480s lists=%.480s split=%d (all lists)",
                 dataset, lists ? lists : dataset, split_no);
    if (model && (rc = file_sha256(model, cfg.model_sha256)) < 0) {
        cli_fail(cmd, rc, "--model");
        goto done;
    }
    cfg.height = height;
    cfg.width = width;
    cfg.channels = m->channels;
    cfg.has_homographies = m->has_homographies;
    cfg.scale = m->scale;
    cfg.total_clips = total;
    cache_config_set_shard(&cfg, shard_k, shard_n);
    if ((rc = cache_writer_open(out, &cfg, &w)) < 0) {
        cli_fail(cmd, rc, "cannot open the cache");
        goto done;
    }
    long assigned = 0, njobs = 0;
    for (long p = shard_k; p < total; p += shard_n) {
        assigned++;
        if (!cache_writer_is_done(w, p)) jobs[njobs++] = p;
    }
    x.m = m;
    x.idx = idx;
    x.sel = sel;
    x.jobs = jobs;
    x.njobs = njobs;
    x.w = w;
    x.width = width;
    x.height = height;
    x.stride = (int)stride;
    int threads = gl_num_threads();
    nthreads = workers ? (int)workers : threads;
    if (nthreads > njobs) nthreads = njobs > 0 ? (int)njobs : 1;
    gl_set_num_threads(threads / nthreads > 1 ? threads / nthreads : 1);
    if (njobs < assigned)
        fprintf(stderr, "glocal extract: resuming %s: %ld of %ld clips already done\n", out,
                assigned - njobs, assigned);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    tids = gl_calloc((size_t)nthreads, sizeof *tids);
    int started = 0;
    atomic_store(&x.running, nthreads);
    if (tids)
        for (; started < nthreads; started++)
            if (pthread_create(&tids[started], NULL, worker_main, &x) != 0) break;
    atomic_fetch_sub(&x.running, nthreads - started);
    cli_progress bar;
    cli_progress_start(&bar, "extract", assigned);
    double t0 = gl_now();
    for (;;) {
        int last = atomic_load(&x.running) == 0;
        long done = cache_writer_done_count(w);
        double el = gl_now() - t0;
        char extra[128];
        snprintf(extra, sizeof extra, "clips, %.1f pairs/s, %ld failed",
                 el > 0 ? (double)atomic_load(&x.pairs) / el : 0.0, (long)atomic_load(&x.failed));
        if (last) {
            cli_progress_end(&bar, done, extra);
            break;
        }
        cli_progress_update(&bar, done, extra);
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    gl_set_num_threads(threads);
    double el = gl_now() - t0;
    long pairs = atomic_load(&x.pairs);
    if (started == 0 && njobs > 0) {
        cli_fail(cmd, GL_ESYSTEM, "cannot start worker threads");
        goto done;
    }
    if (atomic_load(&x.fatal)) {
        fprintf(stderr, "glocal extract: stopped: %s\n", x.fatal_msg);
        goto done;
    }
    if (interrupted) {
        fprintf(stderr, "glocal extract: interrupted; %ld of %ld clips are spooled in %s.parts: run "
                "the same command again to resume\n", cache_writer_done_count(w), assigned, out);
        code = 130;
        goto done;
    }
    if ((rc = cache_writer_finish(w)) < 0) {
        cli_fail(cmd, rc, "cannot publish %s", out);
        goto done;
    }
    cache *c = NULL;
    if ((rc = cache_open(out, 0, &c)) < 0) {
        cli_fail(cmd, rc, "cannot reopen %s", out);
        goto done;
    }
    printf("%s: %ld clips, %ld pairs (%ld pairs this run in %.1f s, %.1f pairs/s), %ld failed\n", out,
           cache_clip_count(c), cache_pair_count(c), pairs, el, el > 0 ? pairs / el : 0.0,
           cache_error_count(c));
    for (long i = 0; i < cache_error_count(c); i++) {
        const cache_error *e = cache_get_error(c, i);
        fprintf(stderr, "failed: %s: %s\n", e->name, e->message);
    }
    code = cache_error_count(c) > 0 ? CLI_FAIL : CLI_OK;
    cache_close(&c);
    if (dist_world > 1) {
        /* Every rank's shard is published: meet, then rank 0 merges. A rank
         * that died (or failed before this point) makes the barrier fail here
         * at once on the others. */
        if ((rc = nn_dist_barrier(dist)) < 0) {
            cli_fail(cmd, rc, "another rank stopped before finishing its shard; the finished "
                     "shards are kept: rerun the same command to resume");
            code = CLI_FAIL;
            goto done;
        }
        /* Failed clips are recorded in the shard and reported by rank 0 after
         * the merge; a non-zero exit here would make glocal launch stop rank 0. */
        if (dist_rank != 0) { code = CLI_OK; goto done; }
        const char *ins[256];
        char names[256][4096];
        if (dist_world > 256) { cli_fail(cmd, GL_EINVAL, "at most 256 ranks"); code = CLI_FAIL; goto done; }
        for (int k = 0; k < dist_world; k++) {
            snprintf(names[k], sizeof names[k], "%s.shard%dof%d.h5", final_out, k, dist_world);
            ins[k] = names[k];
        }
        /* the shards are published by rename before the barrier: a file that
         * exists is complete (a shared file system may show it a little later) */
        for (int k = 1; k < dist_world && !interrupted; k++)
            for (int t = 0; access(ins[k], R_OK) != 0 && !interrupted; t++) {
                if (t == 120) {
                    cli_fail(cmd, GL_EIO, "%s: not visible 120 s after its rank finished", ins[k]);
                    code = CLI_FAIL;
                    goto done;
                }
                sleep(1);
            }
        if (interrupted) { code = 130; goto done; }
        if ((rc = cache_merge(final_out, ins, dist_world)) < 0) {
            cli_fail(cmd, rc, "cannot merge the shards into %s", final_out);
            code = CLI_FAIL;
            goto done;
        }
        if ((rc = cache_open(final_out, 0, &c)) < 0) { cli_fail(cmd, rc, "cannot reopen %s", final_out); code = CLI_FAIL; goto done; }
        printf("%s: %ld clips, %ld pairs, %ld failed (merged from %d shards)\n", final_out, cache_clip_count(c),
               cache_pair_count(c), cache_error_count(c), dist_world);
        for (long i = 0; i < cache_error_count(c); i++) {
            const cache_error *e = cache_get_error(c, i);
            fprintf(stderr, "failed: %s: %s\n", e->name, e->message);
        }
        code = cache_error_count(c) > 0 ? CLI_FAIL : CLI_OK;
        cache_close(&c);
    }
done:
    nn_dist_free(&dist);
    gl_free(tids);
    cache_writer_close(&w);
    gl_free(jobs);
    gl_free(sel);
    dataset_index_free(&idx);
    pthread_mutex_destroy(&x.mu);
    return code;
}
