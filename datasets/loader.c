/* loader.c — the threaded prefetching loader (design in loader.h).
 *
 * Slots. The loader owns nslots = prefetch + 1 batch buffers. Global batch g
 * (counted from start_epoch) always lives in slot g % nslots: slot s starts
 * with batch s, and when the caller hands back the batch it held, that slot
 * is given batch g + nslots. Workers claim single samples of the lowest
 * batch that still has unclaimed ones, so a big batch is filled by all
 * workers at once. Only the caller's thread assigns batches (and computes
 * the epoch permutations), so the order never depends on the workers. */
#include "datasets/loader.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers (gl_splitmix64, nn/base.h) ------------------------------------- */

double loader_rand(uint64_t *state) { return (double)(gl_splitmix64(state) >> 11) * 0x1.0p-53; }

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = a;
    uint64_t x = gl_splitmix64(&s);
    s = x ^ b;
    x = gl_splitmix64(&s);
    s = x ^ c;
    return gl_splitmix64(&s);
}

uint64_t loader_sample_seed(uint64_t seed, long epoch, long pos)
{
    return mix3(seed, (uint64_t)epoch, (uint64_t)pos ^ 0x5A5A5A5A00000000ull);
}

/* ---- config -------------------------------------------------------------------------- */

loader_config loader_config_default(void)
{
    loader_config c = { .batch_size = 32, .threads = 0, .prefetch = 2, .seed = 0, .shuffle = 1,
                        .drop_last = 0, .start_epoch = 0, .start_batch = 0, .epochs = 0, .rank = 0, .world = 1 };
    return c;
}

int loader_config_validate(const loader_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "loader config: NULL");
    if (c->batch_size < 1) return gl_error(GL_EINVAL, "loader config: batch_size %d, expected >= 1", c->batch_size);
    if (c->threads < 0 || c->threads > 256) return gl_error(GL_EINVAL, "loader config: threads %d, expected 0..256", c->threads);
    if (c->prefetch < 1 || c->prefetch > 64) return gl_error(GL_EINVAL, "loader config: prefetch %d, expected 1..64", c->prefetch);
    if (c->start_epoch < 0) return gl_error(GL_EINVAL, "loader config: start_epoch %ld, expected >= 0", c->start_epoch);
    if (c->start_batch < 0) return gl_error(GL_EINVAL, "loader config: start_batch %ld, expected >= 0", c->start_batch);
    if (c->epochs < 0) return gl_error(GL_EINVAL, "loader config: epochs %ld, expected >= 0", c->epochs);
    if (c->world < 1) return gl_error(GL_EINVAL, "loader config: world %d, expected >= 1", c->world);
    if (c->rank < 0 || c->rank >= c->world)
        return gl_error(GL_EINVAL, "loader config: rank %d, expected 0..%d (world %d)", c->rank, c->world - 1, c->world);
    if (c->batch_size % c->world)
        return gl_error(GL_EINVAL, "loader config: batch_size %d is not a multiple of the world size %d "
                        "(each rank takes batch_size / world samples)", c->batch_size, c->world);
    return 0;
}

/* ---- the loader ------------------------------------------------------------------------ */

typedef struct {
    long g;              /* global batch number, -1 = idle (past the last epoch) */
    long epoch, index;
    int n, claimed, filled;
    int rc;
    char msg[512];
    float *data;
    int32_t *labels;
    long *items;
    uint64_t *seeds;
    long *positions;
} slot;

struct loader {
    loader_source src;
    loader_config cfg;
    size_t sample_floats;
    long padded;         /* items in an epoch's order, padded to a multiple of world */
    int rank_batch;      /* samples per full batch on this rank: batch_size / world */
    long nb;             /* batches per epoch */
    long total;          /* batches in all epochs (LONG_MAX: unlimited) */
    int nslots;
    slot *slots;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    int mu_ok, stop;
    pthread_t *tids;
    int nthreads;
    long cur;            /* next global batch the caller gets */
    int held;            /* slot the caller holds, -1 none */
    int eof_pending;
    long perm_epoch;     /* epoch whose permutation is in perm, -1 none */
    long *perm;
    long loaded;
    int worker_rc;
    char worker_msg[512];
    loader_batch out;
};

static void perm_make(loader *l, long epoch)
{
    long n = l->src.count;
    for (long i = 0; i < n; i++) l->perm[i] = i;
    if (l->cfg.shuffle) {
        uint64_t s = mix3(l->cfg.seed, (uint64_t)epoch, 0x7065726D75746521ull);
        for (long i = n - 1; i > 0; i--) { /* Fisher-Yates */
            long j = (long)(gl_splitmix64(&s) % (uint64_t)(i + 1));
            long t = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = t;
        }
    }
    l->perm_epoch = epoch;
}

/* Gives slot s batch g (caller's thread, lock held or no workers yet). */
static void slot_assign(loader *l, slot *s, long g)
{
    s->claimed = s->filled = 0;
    s->rc = 0;
    s->msg[0] = 0;
    if (g >= l->total) { s->g = -1; s->n = 0; return; }
    long epoch = l->cfg.start_epoch + g / l->nb, index = g % l->nb;
    if (epoch != l->perm_epoch) perm_make(l, epoch);
    long first = index * l->cfg.batch_size;
    long n = l->padded - first; /* a multiple of world: so are padded and first */
    if (n > l->cfg.batch_size) n = l->cfg.batch_size;
    int W = l->cfg.world;
    n /= W;
    s->g = g;
    s->epoch = epoch;
    s->index = index;
    s->n = (int)n;
    for (long j = 0; j < n; j++) {
        long pos = first + j * W + l->cfg.rank; /* global position; past count: wrap around */
        s->items[j] = l->perm[pos % l->src.count];
        s->seeds[j] = loader_sample_seed(l->cfg.seed, epoch, pos);
        s->positions[j] = pos;
    }
}

static void *worker_main(void *arg)
{
    void **a = arg;
    loader *l = a[0];
    int id = (int)(intptr_t)a[1];
    gl_free(arg);
    void *wctx = NULL;
    if (l->src.open_worker) {
        int rc = l->src.open_worker(l->src.ctx, id, &wctx);
        if (rc < 0) {
            pthread_mutex_lock(&l->mu);
            if (l->worker_rc == 0) {
                l->worker_rc = rc;
                snprintf(l->worker_msg, sizeof l->worker_msg, "loader worker %d: %s", id, gl_last_error());
            }
            pthread_cond_broadcast(&l->done_cv);
            pthread_mutex_unlock(&l->mu);
            return NULL;
        }
    }
    pthread_mutex_lock(&l->mu);
    for (;;) {
        slot *best = NULL;
        while (!l->stop) {
            for (int i = 0; i < l->nslots; i++) {
                slot *s = &l->slots[i];
                if (s->g >= 0 && s->claimed < s->n && s->rc == 0 && (!best || s->g < best->g)) best = s;
            }
            if (best) break;
            pthread_cond_wait(&l->work_cv, &l->mu);
        }
        if (l->stop) break;
        int j = best->claimed++;
        long item = best->items[j];
        uint64_t seed = best->seeds[j];
        float *dst = best->data + (size_t)j * l->sample_floats;
        pthread_mutex_unlock(&l->mu);
        int32_t label = -1;
        gl_clear_error();
        int rc = l->src.load(l->src.ctx, wctx, item, seed, dst, &label);
        pthread_mutex_lock(&l->mu);
        best->labels[j] = label;
        l->loaded++;
        if (rc < 0 && best->rc == 0) {
            best->rc = rc;
            snprintf(best->msg, sizeof best->msg, "item %ld: %s", item, gl_last_error());
        }
        best->filled++;
        if (best->filled == best->n || rc < 0) pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    if (l->src.close_worker) l->src.close_worker(l->src.ctx, wctx);
    return NULL;
}

int loader_open(loader **out, const loader_source *src, const loader_config *cfg)
{
    if (!out || !src || !cfg) return gl_error(GL_EINVAL, "loader_open: NULL argument");
    *out = NULL;
    int rc = loader_config_validate(cfg);
    if (rc < 0) return rc;
    if (!src->load) return gl_error(GL_EINVAL, "loader_open: the source has no load function");
    if (src->count < 1) return gl_error(GL_EINVAL, "loader_open: the source has no items (count %ld)", src->count);
    if (src->ndim < 1 || src->ndim > LOADER_MAX_DIMS)
        return gl_error(GL_EINVAL, "loader_open: sample rank %d, expected 1..%d", src->ndim, LOADER_MAX_DIMS);
    size_t sf = 1;
    for (int i = 0; i < src->ndim; i++) {
        if (src->shape[i] < 1) return gl_error(GL_EINVAL, "loader_open: sample dimension %d is %lld", i, (long long)src->shape[i]);
        sf *= (size_t)src->shape[i];
    }
    loader *l = gl_calloc(1, sizeof *l);
    if (!l) return GL_ENOMEM;
    l->src = *src;
    l->cfg = *cfg;
    l->sample_floats = sf;
    l->held = -1;
    l->perm_epoch = -1;
    long B = cfg->batch_size;
    l->padded = loader_padded_count(src->count, cfg->world);
    l->rank_batch = (int)(B / cfg->world);
    l->nb = cfg->drop_last ? l->padded / B : (l->padded + B - 1) / B;
    if (l->nb < 1) {
        gl_free(l);
        return gl_error(GL_EINVAL, "loader_open: %ld items make no full batch of %ld (drop_last)", src->count, B);
    }
    l->total = cfg->epochs > 0 && cfg->epochs < LONG_MAX / l->nb ? cfg->epochs * l->nb : LONG_MAX;
    if (cfg->start_batch >= l->nb) {
        long nb = l->nb;
        gl_free(l);
        return gl_error(GL_EINVAL, "loader_open: start_batch %ld, expected 0..%ld (batches per epoch)", cfg->start_batch,
                        nb - 1);
    }
    l->cur = cfg->start_batch; /* global batch g lives in slot g % nslots: the first is start_batch */
    l->nslots = cfg->prefetch + 1;
    l->nthreads = cfg->threads > 0 ? cfg->threads : gl_num_threads();
    if (l->nthreads < 1) l->nthreads = 1;
    rc = GL_ENOMEM;
    if (!(l->perm = gl_malloc((size_t)src->count * sizeof *l->perm))) goto fail;
    if (!(l->slots = gl_calloc((size_t)l->nslots, sizeof *l->slots))) goto fail;
    for (int i = 0; i < l->nslots; i++) {
        slot *s = &l->slots[i];
        size_t rb = (size_t)l->rank_batch;
        if (!(s->data = gl_malloc(rb * sf * sizeof(float))) ||
            !(s->labels = gl_malloc(rb * sizeof *s->labels)) ||
            !(s->items = gl_malloc(rb * sizeof *s->items)) ||
            !(s->seeds = gl_malloc(rb * sizeof *s->seeds)) ||
            !(s->positions = gl_malloc(rb * sizeof *s->positions)))
            goto fail;
    }
    for (int i = 0; i < l->nslots; i++) {
        long g = cfg->start_batch + i;
        slot_assign(l, &l->slots[g % l->nslots], g);
    }
    if (!(l->tids = gl_calloc((size_t)l->nthreads, sizeof *l->tids))) goto fail;
    if (pthread_mutex_init(&l->mu, NULL) != 0) { rc = gl_error(GL_ESYSTEM, "loader_open: cannot create a mutex"); goto fail; }
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    l->mu_ok = 1;
    int started = 0;
    for (int t = 0; t < l->nthreads; t++) {
        void **arg = gl_malloc(2 * sizeof *arg);
        if (!arg) {
            l->nthreads = started; /* loader_close stops and joins these */
            rc = GL_ENOMEM;
            goto fail;
        }
        arg[0] = l;
        arg[1] = (void *)(intptr_t)t;
        if (pthread_create(&l->tids[t], NULL, worker_main, arg) != 0) {
            gl_free(arg);
            break;
        }
        started++;
    }
    l->nthreads = started;
    if (started == 0) { rc = gl_error(GL_ESYSTEM, "loader_open: cannot start worker threads"); goto fail; }
    *out = l;
    return 0;
fail:
    loader_close(&l);
    return rc;
}

int loader_next(loader *l, const loader_batch **batch)
{
    if (!l || !batch) return gl_error(GL_EINVAL, "loader_next: NULL argument");
    *batch = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->held >= 0) {
        slot *s = &l->slots[l->held];
        slot_assign(l, s, s->g + l->nslots);
        l->held = -1;
        pthread_cond_broadcast(&l->work_cv);
    }
    if (l->eof_pending) {
        l->eof_pending = 0;
        pthread_mutex_unlock(&l->mu);
        return GL_EOF;
    }
    if (l->cur >= l->total) {
        pthread_mutex_unlock(&l->mu);
        return GL_EOF;
    }
    int si = (int)(l->cur % l->nslots);
    slot *s = &l->slots[si];
    while (s->filled < s->n && s->rc == 0 && l->worker_rc == 0) pthread_cond_wait(&l->done_cv, &l->mu);
    int rc = 0;
    if (s->rc < 0) rc = gl_error(s->rc, "loader: batch %ld of epoch %ld: %s", s->index, s->epoch, s->msg);
    else if (l->worker_rc < 0 && s->filled < s->n) rc = gl_error(l->worker_rc, "%s", l->worker_msg);
    if (rc == 0) {
        l->held = si;
        l->cur++;
        if (l->cur % l->nb == 0) l->eof_pending = 1;
        l->out = (loader_batch){ .n = s->n, .epoch = s->epoch, .index = s->index, .data = s->data,
                                 .labels = s->labels, .items = s->items, .seeds = s->seeds,
                                 .positions = s->positions };
        *batch = &l->out;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void loader_close(loader **lp)
{
    if (!lp || !*lp) return;
    loader *l = *lp;
    if (l->mu_ok) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
        for (int t = 0; t < l->nthreads; t++) pthread_join(l->tids[t], NULL);
        pthread_cond_destroy(&l->work_cv);
        pthread_cond_destroy(&l->done_cv);
        pthread_mutex_destroy(&l->mu);
    }
    if (l->slots)
        for (int i = 0; i < l->nslots; i++) {
            gl_free(l->slots[i].data);
            gl_free(l->slots[i].labels);
            gl_free(l->slots[i].items);
            gl_free(l->slots[i].seeds);
            gl_free(l->slots[i].positions);
        }
    gl_free(l->slots);
    gl_free(l->tids);
    gl_free(l->perm);
    gl_free(l);
    *lp = NULL;
}

long loader_batches_per_epoch(const loader *l) { return l ? l->nb : 0; }

long loader_padded_count(long count, int world)
{
    if (world < 1) world = 1;
    return (count + world - 1) / world * world;
}
size_t loader_sample_floats(const loader *l) { return l ? l->sample_floats : 0; }

long loader_samples_loaded(loader *l)
{
    pthread_mutex_lock(&l->mu);
    long n = l->loaded;
    pthread_mutex_unlock(&l->mu);
    return n;
}

/* ---- augmentation ------------------------------------------------------------------------- */

loader_aug loader_aug_default(int out_w, int out_h)
{
    loader_aug a = { .out_w = out_w, .out_h = out_h, .crop = LOADER_CROP_CORNER, .nscales = 4,
                     .scales = { 1.0, 0.875, 0.75, 0.66 }, .max_distort = 1, .flip = 1,
                     .test_views = 0, .test_scale = 224.0 / 256.0 };
    return a;
}

int loader_aug_validate(const loader_aug *a)
{
    if (!a) return gl_error(GL_EINVAL, "loader aug: NULL");
    if (a->out_w < 1 || a->out_h < 1) return gl_error(GL_EINVAL, "loader aug: out size %dx%d, expected positive", a->out_w, a->out_h);
    if (a->crop < LOADER_CROP_CENTER || a->crop > LOADER_CROP_RANDOM) return gl_error(GL_EINVAL, "loader aug: unknown crop mode %d", (int)a->crop);
    if (a->nscales < 1 || a->nscales > LOADER_MAX_SCALES) return gl_error(GL_EINVAL, "loader aug: nscales %d, expected 1..%d", a->nscales, LOADER_MAX_SCALES);
    for (int i = 0; i < a->nscales; i++)
        if (!(a->scales[i] > 0 && a->scales[i] <= 1)) return gl_error(GL_EINVAL, "loader aug: scales[%d] = %g, expected in (0, 1]", i, a->scales[i]);
    if (a->max_distort < 0) return gl_error(GL_EINVAL, "loader aug: max_distort %d, expected >= 0", a->max_distort);
    if (a->test_views != 0 && a->test_views != 1 && a->test_views != 3 && a->test_views != 10)
        return gl_error(GL_EINVAL, "loader aug: test_views %d, expected 0 (training), 1, 3 or 10", a->test_views);
    if (!(a->test_scale > 0 && a->test_scale <= 1)) return gl_error(GL_EINVAL, "loader aug: test_scale %g, expected in (0, 1]", a->test_scale);
    return 0;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void loader_view_draw(const loader_aug *a, int in_w, int in_h, uint64_t *rng, loader_view *v)
{
    if (a->crop == LOADER_CROP_CENTER) {
        loader_view_test(a, in_w, in_h, 0, v);
    } else {
        /* TSN GroupMultiScaleCrop (Wang et al. 2016, sec. 3.2): width and height
         * each one of the scaled shorter sides, at most max_distort steps apart. */
        int base = in_w < in_h ? in_w : in_h;
        int pairs[LOADER_MAX_SCALES * LOADER_MAX_SCALES][2], np = 0;
        for (int i = 0; i < a->nscales; i++)
            for (int j = 0; j < a->nscales; j++)
                if (abs(i - j) <= a->max_distort) { pairs[np][0] = i; pairs[np][1] = j; np++; }
        int k = (int)(loader_rand(rng) * np);
        if (k >= np) k = np - 1;
        v->w = clampi((int)lrint(base * a->scales[pairs[k][0]]), 1, in_w);
        v->h = clampi((int)lrint(base * a->scales[pairs[k][1]]), 1, in_h);
        int dx = in_w - v->w, dy = in_h - v->h;
        if (a->crop == LOADER_CROP_CORNER) {
            int c = (int)(loader_rand(rng) * 5);
            static const int cx[5] = { 0, 4, 0, 4, 2 }, cy[5] = { 0, 0, 4, 4, 2 };
            if (c > 4) c = 4;
            v->x = dx * cx[c] / 4;
            v->y = dy * cy[c] / 4;
        } else {
            v->x = clampi((int)(loader_rand(rng) * (dx + 1)), 0, dx);
            v->y = clampi((int)(loader_rand(rng) * (dy + 1)), 0, dy);
        }
        v->flip = 0;
    }
    v->flip = a->flip ? loader_rand(rng) < 0.5 : 0;
}

void loader_view_test(const loader_aug *a, int in_w, int in_h, int i, loader_view *v)
{
    /* the largest rectangle of the output's aspect inside the input, scaled */
    double sx = (double)in_w / a->out_w, sy = (double)in_h / a->out_h, s = (sx < sy ? sx : sy) * a->test_scale;
    v->w = clampi((int)lrint(a->out_w * s), 1, in_w);
    v->h = clampi((int)lrint(a->out_h * s), 1, in_h);
    int dx = in_w - v->w, dy = in_h - v->h;
    v->x = dx / 2;
    v->y = dy / 2;
    v->flip = 0;
    if (a->test_views == 3) {
        /* three crops along the longer side: start, centre, end */
        if (dx >= dy) v->x = i == 0 ? 0 : i == 1 ? dx / 2 : dx;
        else v->y = i == 0 ? 0 : i == 1 ? dy / 2 : dy;
    } else if (a->test_views == 10) {
        /* TSN GroupOverSample: 4 corners + centre, then the same mirrored */
        int c = i % 5;
        static const int cx[5] = { 0, 2, 0, 2, 1 }, cy[5] = { 0, 0, 2, 2, 1 };
        v->x = dx * cx[c] / 2;
        v->y = dy * cy[c] / 2;
        v->flip = i >= 5;
    }
}

int loader_view_apply(const loader_view *v, const float *in, int C, int in_h, int in_w, float *out,
                      int out_h, int out_w, int motion)
{
    if (v->w < 1 || v->h < 1 || v->x < 0 || v->y < 0 || v->x + v->w > in_w || v->y + v->h > in_h)
        return gl_error(GL_EINVAL, "loader_view_apply: crop %dx%d+%d+%d outside %dx%d", v->w, v->h, v->x, v->y, in_w, in_h);
    if (motion && C % 2) return gl_error(GL_EINVAL, "loader_view_apply: motion planes %d, expected (u, v) pairs", C);
    double sx = (double)v->w / out_w, sy = (double)v->h / out_h;
    float us = (float)(out_w / (double)v->w) * (v->flip ? -1.0f : 1.0f), vs = (float)(out_h / (double)v->h);
    /* Column taps once per call (half-pixel centres, as torch interpolate with
     * align_corners=False); then plane by plane, row by row, for locality. */
    int *xi = gl_malloc((size_t)out_w * 2 * sizeof *xi);
    float *xw = gl_malloc((size_t)out_w * sizeof *xw);
    if (!xi || !xw) {
        gl_free(xi);
        gl_free(xw);
        return GL_ENOMEM;
    }
    for (int ox = 0; ox < out_w; ox++) {
        int sxo = v->flip ? out_w - 1 - ox : ox;
        double fx = (sxo + 0.5) * sx - 0.5;
        if (fx < 0) fx = 0;
        int x0 = (int)fx;
        if (x0 > v->w - 1) x0 = v->w - 1;
        int x1 = x0 + 1 < v->w ? x0 + 1 : x0;
        xi[2 * ox] = v->x + x0;
        xi[2 * ox + 1] = v->x + x1;
        xw[ox] = (float)(fx - x0);
    }
    for (int c = 0; c < C; c++) {
        const float *p = in + (size_t)c * in_h * in_w;
        float scale = motion ? ((c % 2 == 0) ? us : vs) : 1.0f;
        for (int oy = 0; oy < out_h; oy++) {
            double fy = (oy + 0.5) * sy - 0.5;
            if (fy < 0) fy = 0;
            int y0 = (int)fy;
            if (y0 > v->h - 1) y0 = v->h - 1;
            int y1 = y0 + 1 < v->h ? y0 + 1 : y0;
            float wy = (float)(fy - y0);
            const float *r0 = p + (size_t)(v->y + y0) * in_w, *r1 = p + (size_t)(v->y + y1) * in_w;
            float *o = out + ((size_t)c * out_h + oy) * out_w;
            for (int ox = 0; ox < out_w; ox++) {
                float wx = xw[ox];
                int a0 = xi[2 * ox], a1 = xi[2 * ox + 1];
                float val = (1 - wy) * ((1 - wx) * r0[a0] + wx * r0[a1]) + wy * ((1 - wx) * r1[a0] + wx * r1[a1]);
                o[ox] = motion ? val * scale : val;
            }
        }
    }
    gl_free(xi);
    gl_free(xw);
    return 0;
}

void loader_flip_motion(float *f, int L, int h, int w)
{
    for (int l = 0; l < L; l++)
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < h; y++) {
                float *row = f + (((size_t)l * 2 + c) * h + y) * w;
                for (int x = 0; x < w / 2; x++) {
                    float t = row[x];
                    row[x] = row[w - 1 - x];
                    row[w - 1 - x] = t;
                }
                if (c == 0)
                    for (int x = 0; x < w; x++) row[x] = -row[x];
            }
}

void loader_segment_starts(long n, int span, int K, uint64_t *rng, long *out)
{
    long avail = n - span + 1;
    if (avail < 1) avail = 1;
    for (int k = 0; k < K; k++) {
        double u = rng ? loader_rand(rng) : 0.5;
        long s = (long)floor((k + u) * (double)avail / K);
        out[k] = s < 0 ? 0 : s >= avail ? avail - 1 : s;
    }
}
