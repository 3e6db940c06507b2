/* extract.c — the engine of glocal extract: the pool of worker threads that
 * computes one shard of a dataset into a motion cache with one of the motion
 * methods (extract_methods.c: adapters from batches of RGB24 frame pairs to
 * cache fields). See experiments/extract.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <libavutil/mem.h>
#include <libavutil/sha.h>

#include "datasets/cache.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"
#include "experiments/extract.h"
#include "experiments/extract_private.h"

#define BATCH 8 /* pairs per method call and per append */

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

/* ---- the worker pool ---------------------------------------------------------- */

typedef struct {
    const motion_method *m[EXTRACT_MAX_OUTPUTS]; /* the outputs' methods, of one pass */
    int parts[EXTRACT_MAX_OUTPUTS];              /* their parts of the pass */
    int nout;
    const dataset_index *idx;
    const long *sel;       /* dataset position -> index into idx->clips */
    const long *jobs;      /* dataset positions still to compute */
    const unsigned *need;  /* per job: bit k = cache k lacks the clip */
    long njobs;
    atomic_long next;      /* next job */
    atomic_long pairs;     /* pairs computed in this run */
    atomic_long failed;    /* clips that failed in this run */
    atomic_long damaged;   /* damaged clips met in this run */
    atomic_int fatal;      /* a cache write failed: stop */
    atomic_int stop;       /* asked to stop: drop the clips in flight */
    atomic_int running;    /* workers still running */
    char fatal_msg[1024];
    pthread_mutex_t mu;
    cache_writer *w[EXTRACT_MAX_OUTPUTS];
    const extract_config *cfg;
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

/* A clip failed for a reason of its own (unreadable video, ...): record it
 * in each cache that lacks it. */
static int clip_failed(run_ctx *x, long pos, unsigned need, const char *name, const char *why)
{
    atomic_fetch_add(&x->failed, 1);
    char msg[CACHE_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "%s", why[0] ? why : "failed");
    for (int k = 0; k < x->nout; k++) {
        if (!(need >> k & 1)) continue;
        int rc = cache_writer_put_error(x->w[k], pos, name, msg);
        if (rc < 0) {
            set_fatal(x, rc);
            return rc;
        }
    }
    return 0;
}

typedef struct {
    uint8_t *frames[BATCH + 1];
    float *fields[EXTRACT_MAX_OUTPUTS], *homs;
    void *state;
} worker_bufs;

static void clips_abort(cache_clip_writer **cw, int n)
{
    for (int k = 0; k < n; k++) cache_clip_abort(&cw[k]);
}

/* Computes job j (clip x->jobs[j]) into each cache that lacks it. Returns
 * < 0 only for fatal (cache) errors. */
static int do_clip(run_ctx *x, worker_bufs *wb, long j)
{
    const long pos = x->jobs[j];
    const unsigned need = x->need[j];
    const dataset_clip *dc = &x->idx->clips[x->sel[pos]];
    const char *name = dc->rel_path;
    const motion_method *m = x->m[0];
    video_reader *r = NULL;
    cache_clip_writer *cw[EXTRACT_MAX_OUTPUTS] = { 0 };
    char why[CACHE_MESSAGE_MAX] = "";
    int rc = 0, n = 0, have_first = 0, eof = 0;
    long clip_pairs = 0, frames = 0;
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
    for (int k = 0; k < x->nout; k++)
        if ((need >> k & 1) && (rc = cache_clip_begin(x->w[k], &info, &cw[k])) < 0) {
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
                    else frames++;
                }
            if (eof) break;
            rc = video_reader_read(r, dst, NULL);
            if (rc == GL_EOF) { eof = 1; break; }
            if (rc < 0) goto decode_error;
            frames++;
            if (have_first) n++;
            have_first = 1;
        }
        if (atomic_load(&x->stop) || atomic_load(&x->fatal)) goto out;
        if (n == 0) break;
        if ((rc = m->pairs(wb->state, (const uint8_t *const *)wb->frames, (const uint8_t *const *)wb->frames + 1,
                           n, x->width, x->height, x->parts, x->nout, wb->fields,
                           m->has_homographies ? wb->homs : NULL)) < 0) {
            if (rc == GL_ENOMEM) { set_fatal(x, rc); goto out; }
            snprintf(why, sizeof why, "%s: %s", m->name, gl_last_error());
            goto failed;
        }
        for (int k = 0; k < x->nout; k++) {
            if (!cw[k]) continue;
            if ((rc = cache_clip_append(cw[k], n, wb->fields[k], m->has_homographies ? wb->homs : NULL)) < 0) {
                if (rc == GL_ENUMERIC) { /* the method produced NaN: this clip's problem (in every cache) */
                    snprintf(why, sizeof why, "%s", gl_last_error());
                    goto failed;
                }
                set_fatal(x, rc);
                goto out;
            }
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
    char damage[CACHE_MESSAGE_MAX - 16];
    if (video_reader_damage(r, frames, damage, sizeof damage)) {
        atomic_fetch_add(&x->damaged, 1);
        snprintf(why, sizeof why, "damaged: %s", damage);
        if (x->cfg->strict) goto failed;
        /* stored, with the warning in the same commit: a resumed run still reports it */
        for (int k = 0; k < x->nout; k++)
            if (cw[k] && (rc = cache_clip_warn(cw[k], why)) < 0) {
                set_fatal(x, rc);
                goto out;
            }
    }
    for (int k = 0; k < x->nout; k++)
        if (cw[k] && (rc = cache_clip_commit(&cw[k])) < 0) {
            set_fatal(x, rc);
            break;
        }
    goto out;
decode_error:
    snprintf(why, sizeof why, "decoding: %s", gl_last_error());
failed:
    clips_abort(cw, x->nout);
    video_reader_close(&r);
    return clip_failed(x, pos, need, name, why);
out:
    clips_abort(cw, x->nout);
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
    for (int k = 0; k < x->nout; k++)
        if (rc == 0 && !(wb.fields[k] = gl_malloc(sizeof(float) * BATCH * x->m[k]->channels * (size_t)x->width *
                                                  x->height)))
            rc = GL_ENOMEM;
    if (rc == 0 && !(wb.homs = gl_malloc(sizeof(float) * BATCH * 9))) rc = GL_ENOMEM;
    if (rc == 0 && x->m[0]->init) rc = x->m[0]->init(&wb.state, x->cfg);
    if (rc < 0) set_fatal(x, rc);
    while (rc >= 0 && !atomic_load(&x->stop) && !atomic_load(&x->fatal)) {
        long j = atomic_fetch_add(&x->next, 1);
        if (j >= x->njobs) break;
        rc = do_clip(x, &wb, j);
    }
    if (x->m[0]->free) x->m[0]->free(wb.state);
    for (int i = 0; i <= BATCH; i++) gl_free(wb.frames[i]);
    for (int k = 0; k < x->nout; k++) gl_free(wb.fields[k]);
    gl_free(wb.homs);
    atomic_fetch_sub(&x->running, 1);
    return NULL;
}

/* ---- the configuration ------------------------------------------------------ */

void extract_config_default(extract_config *c)
{
    memset(c, 0, sizeof *c);
    c->split = 1;
    c->only = -1;
    c->width = c->height = 112;
    c->stride = 1;
    c->shard_n = 1;
}

/* The outputs of a config: out[k] into path[k]; returns how many (>= 1). */
static int config_outputs(const extract_config *c, const char **method, const char **path)
{
    method[0] = c->method;
    path[0] = c->out;
    int n = 1;
    for (int k = 0; k < c->nmore && k < EXTRACT_MAX_OUTPUTS - 1; k++, n++) {
        method[n] = c->more[k].method;
        path[n] = c->more[k].out;
    }
    return n;
}

/* The outputs beyond the first: of method's pass, each method and path once. */
static int validate_more(const extract_config *c)
{
    if (c->nmore < 0 || c->nmore > EXTRACT_MAX_OUTPUTS - 1)
        return gl_error(GL_EINVAL, "extract_config.nmore: %d, expected 0..%d", c->nmore, EXTRACT_MAX_OUTPUTS - 1);
    const char *method[EXTRACT_MAX_OUTPUTS], *path[EXTRACT_MAX_OUTPUTS];
    const int n = config_outputs(c, method, path);
    const char *pass = extract_method_pass(c->method);
    for (int k = 1; k < n; k++) {
        if (!path[k]) return gl_error(GL_EINVAL, "extract_config.more[%d].out: missing", k - 1);
        const char *pk = extract_method_pass(method[k]);
        if (!pk)
            return gl_error(GL_EINVAL, "extract_config.more[%d].method: unknown '%s' (%s)", k - 1,
                            method[k] ? method[k] : "(none)", extract_method_names());
        if (strcmp(pk, pass) != 0)
            return gl_error(GL_EINVAL, "extract_config.more[%d].method: %s is not computed by the pass of %s "
                            "(one run computes one pass: the glocal-* methods)", k - 1, method[k], c->method);
        for (int i = 0; i < k; i++) {
            if (!strcmp(method[i], method[k]))
                return gl_error(GL_EINVAL, "extract_config.more[%d].method: %s asked for twice", k - 1, method[k]);
            if (!strcmp(path[i], path[k]))
                return gl_error(GL_EINVAL, "extract_config.more[%d].out: %s is also the cache of %s", k - 1,
                                path[k], method[i]);
        }
    }
    return 0;
}

int extract_config_validate(const extract_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "extract_config: NULL");
    if (!c->dataset) return gl_error(GL_EINVAL, "extract_config.dataset: missing");
    if (!c->out) return gl_error(GL_EINVAL, "extract_config.out: missing");
    int glocal;
    if (!extract_method_known(c->method, &glocal))
        return gl_error(GL_EINVAL, "extract_config.method: unknown '%s' (%s)", c->method ? c->method : "(none)",
                        extract_method_names());
    if (glocal && !c->model)
        return gl_error(GL_EINVAL, "extract_config.model: method %s needs a checkpoint of glocal train-motion",
                        c->method);
    if (!glocal && c->model)
        return gl_error(GL_EINVAL, "extract_config.model: only the glocal-* methods take a model, not %s", c->method);
    if (c->model && strlen(c->model) > EXTRACT_MODEL_PATH_MAX) /* it is part of the cache's parameter text */
        return gl_error(GL_EINVAL, "extract_config.model: a path of %zu characters, expected at most %d",
                        strlen(c->model), EXTRACT_MODEL_PATH_MAX);
    int rc = validate_more(c);
    if (rc < 0) return rc;
    if (c->split < 1 || c->split > 99) return gl_error(GL_EINVAL, "extract_config.split: %d, expected 1..99", c->split);
    if (c->only < -1 || c->only >= DATASET_NUM_SPLITS)
        return gl_error(GL_EINVAL, "extract_config.only: %d, expected -1 or a dataset_split", c->only);
    if (c->width < 8 || c->height < 8 || c->width > 4096 || c->height > 4096)
        return gl_error(GL_EINVAL, "extract_config.width/height: %dx%d, each side expected in 8..4096", c->width,
                        c->height);
    if (!strncmp(c->method, "dis", 3) && (c->width < extract_dis_min_side() || c->height < extract_dis_min_side()))
        return gl_error(GL_EINVAL, "extract_config.width/height: %dx%d, method %s needs each side >= %d (a DIS "
                        "patch at its finest scale)", c->width, c->height, c->method, extract_dis_min_side());
    if (c->stride < 1) return gl_error(GL_EINVAL, "extract_config.stride: %d, expected >= 1", c->stride);
    if (c->workers < 0) return gl_error(GL_EINVAL, "extract_config.workers: %d, expected >= 0", c->workers);
    if (c->shard_n < 1 || c->shard_k < 0 || c->shard_k >= c->shard_n)
        return gl_error(GL_EINVAL, "extract_config.shard_k/shard_n: %d/%d, expected 0 <= k < n", c->shard_k,
                        c->shard_n);
    return 0;
}

/* ---- one run ----------------------------------------------------------------- */

/* What the cache records: the method, its parameters (and the run's settings:
 * a resume with others is refused), the source, the grid. */
static int cache_config_of(const extract_config *c, const motion_method *m, long total, cache_config *cfg)
{
    cache_config_default(cfg);
    snprintf(cfg->method, sizeof cfg->method, "%s", m->name);
    char desc[3072];
    m->describe(c, desc, sizeof desc);
    /* strict only when set, so that caches of earlier versions (which did not
     * record it) resume when it is not */
    const int len = snprintf(cfg->params, sizeof cfg->params, "size=%dx%d stride=%d frames=RGB24 area-resized%s; %s",
                             c->height, c->width, c->stride, c->strict ? " strict (damaged clips fail)" : "", desc);
    /* a cut text would let a resume past the rules it lost (a long model path) */
    if (strlen(desc) + 1 >= sizeof desc || len < 0 || (size_t)len >= sizeof cfg->params)
        return gl_error(GL_EINVAL, "extract: the parameters of %s do not fit the cache's record (%zu characters; "
                        "a shorter --model path?)", m->name, sizeof cfg->params - 1);
    if (c->list_file)
        snprintf(cfg->source, sizeof cfg->source, "dataset=%.480s list=%.480s", c->dataset, c->list_file);
    else
        snprintf(cfg->source, sizeof cfg->source, "dataset=%.480s lists=%.480s split=%d (all lists)", c->dataset,
                 c->lists ? c->lists : c->dataset, c->split);
    int rc;
    if (c->model && (rc = file_sha256(c->model, cfg->model_sha256)) < 0) return gl_error_prefix(rc, "model");
    cfg->height = c->height;
    cfg->width = c->width;
    cfg->channels = m->channels;
    cfg->has_homographies = m->has_homographies;
    cfg->scale = m->scale;
    cfg->total_clips = total;
    return cache_config_set_shard(cfg, c->shard_k, c->shard_n);
}

/* Clips done in the cache that has fewest (the one cache of one output). */
static long done_count(run_ctx *x)
{
    long done = cache_writer_done_count(x->w[0]);
    for (int k = 1; k < x->nout; k++) {
        long d = cache_writer_done_count(x->w[k]);
        if (d < done) done = d;
    }
    return done;
}

/* Starts the workers on x's jobs and reports progress until they all
 * stopped. Returns the number started (0 when none could be). */
static int run_workers(run_ctx *x, int nthreads, pthread_t *tids, extract_progress_fn progress, void *ctx,
                       extract_progress *pr)
{
    int started = 0;
    atomic_store(&x->running, nthreads);
    for (; started < nthreads; started++)
        if (pthread_create(&tids[started], NULL, worker_main, x) != 0) break;
    atomic_fetch_sub(&x->running, nthreads - started);
    double t0 = gl_now();
    pr->first = 0;
    for (;;) {
        int last = atomic_load(&x->running) == 0;
        pr->done = done_count(x);
        pr->pairs = atomic_load(&x->pairs);
        pr->failed = atomic_load(&x->failed);
        pr->damaged = atomic_load(&x->damaged);
        pr->seconds = gl_now() - t0;
        pr->last = last;
        if (progress && progress(ctx, pr) && !last) atomic_store(&x->stop, 1);
        if (last) break;
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < started; i++) pthread_join(tids[i], NULL);
    pr->seconds = gl_now() - t0;
    return started;
}

/* The positions (into idx->clips) of the clips the config selects. */
static int select_clips(const extract_config *c, const dataset_index *idx, long **sel, long *total)
{
    *sel = gl_malloc(sizeof **sel * (size_t)(idx->num_clips + 1));
    if (!*sel) return GL_ENOMEM;
    *total = 0;
    for (long i = 0; i < idx->num_clips; i++)
        if (c->only < 0 || (int)idx->clips[i].split == c->only) (*sel)[(*total)++] = i;
    if (*total == 0) return gl_error(GL_ENOTFOUND, "no clips selected");
    return 0;
}

int extract_run(const extract_config *c, extract_progress_fn progress, void *ctx, extract_progress *summary)
{
    int rc = extract_config_validate(c);
    if (rc < 0) return rc;
    const char *method[EXTRACT_MAX_OUTPUTS], *path[EXTRACT_MAX_OUTPUTS];
    const int nout = config_outputs(c, method, path);
    dataset_index *idx = NULL;
    long *sel = NULL, *jobs = NULL, total = 0;
    unsigned *need = NULL;
    pthread_t *tids = NULL;
    const int threads = gl_num_threads();
    extract_progress pr = { 0 };
    run_ctx x;
    memset(&x, 0, sizeof x);
    pthread_mutex_init(&x.mu, NULL);
    x.nout = nout;
    if ((rc = dataset_index_load(&idx, c->dataset, c->lists, c->split)) < 0) {
        gl_error_prefix(rc, "cannot read the dataset");
        goto fail;
    }
    if ((rc = select_clips(c, idx, &sel, &total)) < 0) goto fail;
    for (int k = 0; k < nout; k++) {
        x.m[k] = extract_method_find(method[k]);
        x.parts[k] = x.m[k]->part;
        cache_config cfg;
        if ((rc = cache_config_of(c, x.m[k], total, &cfg)) < 0) goto fail;
        if ((rc = cache_writer_open(path[k], &cfg, &x.w[k])) < 0) {
            gl_error_prefix(rc, "cannot open the cache");
            goto fail;
        }
    }
    if (!(jobs = gl_malloc(sizeof *jobs * (size_t)(total + 1))) ||
        !(need = gl_malloc(sizeof *need * (size_t)(total + 1)))) {
        rc = GL_ENOMEM;
        goto fail;
    }
    /* a clip is computed when any cache lacks it, and stored in those that do */
    long njobs = 0;
    for (long p = c->shard_k; p < total; p += c->shard_n) {
        pr.assigned++;
        unsigned bits = 0;
        for (int k = 0; k < nout; k++)
            if (!cache_writer_is_done(x.w[k], p)) bits |= 1u << k;
        if (bits) {
            need[njobs] = bits;
            jobs[njobs++] = p;
        }
    }
    x.idx = idx;
    x.sel = sel;
    x.jobs = jobs;
    x.need = need;
    x.njobs = njobs;
    x.cfg = c;
    x.width = c->width;
    x.height = c->height;
    x.stride = c->stride;
    int nthreads = c->workers ? c->workers : threads;
    if (nthreads > njobs) nthreads = njobs > 0 ? (int)njobs : 1;
    pr.total = total;
    pr.resumed = pr.assigned - njobs;
    pr.done = done_count(&x);
    pr.first = 1;
    if (progress && progress(ctx, &pr)) {
        rc = gl_error(GL_ECANCELED, "interrupted before the first clip");
        goto fail;
    }
    if (!(tids = gl_calloc((size_t)nthreads, sizeof *tids))) { rc = GL_ENOMEM; goto fail; }
    gl_set_num_threads(threads / nthreads > 1 ? threads / nthreads : 1);
    int started = run_workers(&x, nthreads, tids, progress, ctx, &pr);
    gl_set_num_threads(threads);
    if (started == 0 && njobs > 0) {
        rc = gl_error(GL_ESYSTEM, "cannot start worker threads");
    } else if (atomic_load(&x.fatal)) {
        rc = gl_error(atomic_load(&x.fatal), "stopped: %s", x.fatal_msg);
    } else if (atomic_load(&x.stop)) {
        rc = gl_error(GL_ECANCELED, "interrupted; %ld of %ld clips are spooled in %s.parts%s: run the same command "
                      "again to resume", done_count(&x), pr.assigned, c->out,
                      nout > 1 ? " (and the other caches' spools)" : "");
    } else {
        for (int k = 0; k < nout && rc >= 0; k++)
            if ((rc = cache_writer_finish(x.w[k])) < 0) gl_error_prefix(rc, "cannot publish %s", path[k]);
    }
fail:
    if (summary) *summary = pr;
    gl_free(tids);
    for (int k = 0; k < nout; k++) cache_writer_close(&x.w[k]);
    gl_free(need);
    gl_free(jobs);
    gl_free(sel);
    dataset_index_free(&idx);
    pthread_mutex_destroy(&x.mu);
    return rc;
}
