/* loader_sources.c — the sample sources of datasets/loader.h: a caller's
 * array in memory, decoded video clips (RGB segments) and motion-cache
 * stacks. Each fills one sample per load() call from any worker thread;
 * the pool that calls them is loader.c's. */
#include "datasets/loader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/video.h"

/* ---- memory source ------------------------------------------------------------------------ */

typedef struct {
    const float *data;
    const int32_t *labels;
    size_t floats;
    int64_t shape[LOADER_MAX_DIMS];
    int ndim;
    loader_augment_fn hook;
    void *hook_ctx;
} mem_src;

static int mem_load(void *ctx, void *wctx, long item, uint64_t seed, float *out, int32_t *label)
{
    (void)wctx;
    mem_src *m = ctx;
    memcpy(out, m->data + (size_t)item * m->floats, m->floats * sizeof(float));
    *label = m->labels ? m->labels[item] : -1;
    return m->hook ? m->hook(m->hook_ctx, seed, out, m->shape, m->ndim) : 0;
}

static void plain_destroy(void *ctx) { gl_free(ctx); }

int loader_source_memory(loader_source *src, const float *data, const int32_t *labels, long count,
                         const int64_t *shape, int ndim, loader_augment_fn hook, void *hook_ctx)
{
    if (!src || !data || !shape) return gl_error(GL_EINVAL, "loader_source_memory: NULL argument");
    memset(src, 0, sizeof *src);
    if (ndim < 1 || ndim > LOADER_MAX_DIMS) return gl_error(GL_EINVAL, "loader_source_memory: rank %d, expected 1..%d", ndim, LOADER_MAX_DIMS);
    mem_src *m = gl_calloc(1, sizeof *m);
    if (!m) return GL_ENOMEM;
    m->data = data;
    m->labels = labels;
    m->floats = 1;
    m->ndim = ndim;
    for (int i = 0; i < ndim; i++) { m->shape[i] = shape[i]; m->floats *= (size_t)shape[i]; src->shape[i] = shape[i]; }
    m->hook = hook;
    m->hook_ctx = hook_ctx;
    src->ctx = m;
    src->count = count;
    src->ndim = ndim;
    src->load = mem_load;
    src->destroy = plain_destroy;
    return 0;
}

void loader_source_free(loader_source *src)
{
    if (!src) return;
    if (src->destroy && src->ctx) src->destroy(src->ctx);
    memset(src, 0, sizeof *src);
}

/* ---- video source -------------------------------------------------------------------------- */

typedef struct {
    loader_video_config cfg;
    long *clips;         /* index->clips rows of the split */
    long count;
    int views;
} video_src;

loader_video_config loader_video_config_default(const dataset_index *idx, dataset_split split)
{
    loader_video_config c = { .index = idx, .split = split, .segments = 3, .frames = 1,
                              .decode_w = 340, .decode_h = 256,
                              .mean = { 0.485f, 0.456f, 0.406f }, .std = { 0.229f, 0.224f, 0.225f },
                              .aug = loader_aug_default(224, 224) };
    return c;
}

static int video_load(void *ctx, void *wctx, long item, uint64_t seed, float *out, int32_t *label)
{
    (void)wctx;
    video_src *vs = ctx;
    const loader_video_config *c = &vs->cfg;
    const dataset_clip *clip = &c->index->clips[vs->clips[item]];
    *label = clip->label;
    int K = c->segments, F = c->frames, W = c->decode_w, H = c->decode_h;
    size_t fpx = (size_t)W * H;
    uint64_t rng = seed;
    video_reader *r = NULL;
    float *raw = NULL, *planes = NULL, *frame = NULL;
    long *starts = NULL;
    unsigned char *have = NULL;
    int rc;
    video_reader_opts o = video_reader_opts_default();
    o.width = W;
    o.height = H;
    o.dtype = VIDEO_F32;
    o.threads = 1; /* the loader's workers are the parallelism */
    if ((rc = video_reader_open(&r, clip->path, &o)) < 0) goto fail;
    video_info info;
    video_reader_info(r, &info);
    rc = GL_ENOMEM;
    if (!(starts = gl_malloc((size_t)K * sizeof *starts)) || !(raw = gl_malloc((size_t)K * F * fpx * 3 * sizeof *raw)) ||
        !(frame = gl_malloc(fpx * 3 * sizeof *frame)) || !(have = gl_calloc((size_t)K * F, 1)) ||
        !(planes = gl_malloc((size_t)3 * F * fpx * sizeof *planes)))
        goto fail;
    loader_view view;
    if (!c->aug.test_views) loader_view_draw(&c->aug, W, H, &rng, &view);
    loader_segment_starts(info.frames, F, K, c->aug.test_views ? NULL : &rng, starts);
    long last_needed = 0;
    for (int k = 0; k < K; k++)
        if (starts[k] + F - 1 > last_needed) last_needed = starts[k] + F - 1;
    int got_any = 0;
    for (long i = 0; i <= last_needed; i++) {
        int need = 0;
        for (int k = 0; k < K && !need; k++) need = i >= starts[k] && i < starts[k] + F;
        rc = need ? video_reader_read(r, frame, NULL) : video_reader_skip(r, NULL);
        if (rc == GL_EOF) break; /* the header over-counted: reuse the last frame below */
        if (rc < 0) goto fail;
        if (!need) continue;
        got_any = 1;
        for (int k = 0; k < K; k++)
            if (i >= starts[k] && i < starts[k] + F) {
                memcpy(raw + ((size_t)k * F + (size_t)(i - starts[k])) * fpx * 3, frame, fpx * 3 * sizeof *frame);
                have[k * F + (i - starts[k])] = 1;
            }
    }
    if (!got_any) { rc = gl_error(GL_EFORMAT, "%s: no frame decoded at the sampled positions", clip->path); goto fail; }
    /* Frames past a lying header's end: repeat the latest frame that exists. */
    for (int j = 0; j < K * F; j++)
        if (!have[j]) {
            int p = j;
            while (p > 0 && !have[p]) p--;
            if (!have[p]) for (p = 0; !have[p]; p++) {}
            memcpy(raw + (size_t)j * fpx * 3, raw + (size_t)p * fpx * 3, fpx * 3 * sizeof *raw);
        }
    int V = vs->views, OH = c->aug.out_h, OW = c->aug.out_w;
    size_t osz = (size_t)3 * F * OH * OW;
    for (int k = 0; k < K; k++) {
        /* HWC [0,1] -> normalised CHW planes, F frames stacked as channels */
        for (int f = 0; f < F; f++) {
            const float *src = raw + ((size_t)k * F + f) * fpx * 3;
            for (int ch = 0; ch < 3; ch++) {
                float *dst = planes + ((size_t)f * 3 + ch) * fpx;
                float m = c->mean[ch], s = 1.0f / c->std[ch];
                for (size_t p = 0; p < fpx; p++) dst[p] = (src[p * 3 + ch] - m) * s;
            }
        }
        for (int v = 0; v < V; v++) {
            if (c->aug.test_views) loader_view_test(&c->aug, W, H, v, &view);
            if ((rc = loader_view_apply(&view, planes, 3 * F, H, W, out + ((size_t)v * K + k) * osz, OH, OW, 0)) < 0)
                goto fail;
        }
    }
    rc = 0;
    if (c->hook) {
        int64_t shape[4] = { (int64_t)V * K, 3 * F, OH, OW };
        rc = c->hook(c->hook_ctx, seed, out, shape, 4);
    }
fail:
    gl_free(planes);
    gl_free(have);
    gl_free(frame);
    gl_free(raw);
    gl_free(starts);
    video_reader_close(&r);
    return rc;
}

static void video_destroy(void *ctx)
{
    video_src *vs = ctx;
    gl_free(vs->clips);
    gl_free(vs);
}

int loader_source_video(loader_source *src, const loader_video_config *cfg)
{
    if (!src || !cfg || !cfg->index) return gl_error(GL_EINVAL, "loader_source_video: NULL argument");
    memset(src, 0, sizeof *src);
    int rc = loader_aug_validate(&cfg->aug);
    if (rc < 0) return rc;
    if (cfg->segments < 1 || cfg->frames < 1)
        return gl_error(GL_EINVAL, "loader video source: segments %d and frames %d must be >= 1", cfg->segments, cfg->frames);
    if (cfg->decode_w < 1 || cfg->decode_h < 1)
        return gl_error(GL_EINVAL, "loader video source: decode size %dx%d, expected positive", cfg->decode_w, cfg->decode_h);
    for (int i = 0; i < 3; i++)
        if (!(cfg->std[i] > 0)) return gl_error(GL_EINVAL, "loader video source: std[%d] = %g, expected > 0", i, cfg->std[i]);
    video_src *vs = gl_calloc(1, sizeof *vs);
    if (!vs) return GL_ENOMEM;
    vs->cfg = *cfg;
    vs->views = cfg->aug.test_views ? cfg->aug.test_views : 1;
    const dataset_index *idx = cfg->index;
    if (!(vs->clips = gl_malloc((size_t)(idx->num_clips > 0 ? idx->num_clips : 1) * sizeof *vs->clips))) {
        gl_free(vs);
        return GL_ENOMEM;
    }
    long missing = 0;
    for (long i = 0; i < idx->num_clips; i++) {
        if (idx->clips[i].split != cfg->split) continue;
        if (!idx->clips[i].exists) { missing++; continue; }
        vs->clips[vs->count++] = i;
    }
    if (vs->count == 0) {
        video_destroy(vs);
        return gl_error(GL_ENOTFOUND, "loader video source: no %s clip found under %s (%ld listed but missing)",
                        dataset_split_name(cfg->split), idx->root, missing);
    }
    src->ctx = vs;
    src->count = vs->count;
    src->ndim = 4;
    src->shape[0] = (int64_t)vs->views * cfg->segments;
    src->shape[1] = 3 * cfg->frames;
    src->shape[2] = cfg->aug.out_h;
    src->shape[3] = cfg->aug.out_w;
    src->load = video_load;
    src->destroy = video_destroy;
    return 0;
}

/* ---- motion source ------------------------------------------------------------------------- */

typedef struct {
    loader_motion_config cfg;
    int views;
} motion_src;

static int motion_open_worker(void *ctx, int worker, void **wctx)
{
    motion_src *m = ctx;
    *wctx = NULL;
    return m->cfg.open_worker ? m->cfg.open_worker(m->cfg.ctx, worker, wctx) : 0;
}

static void motion_close_worker(void *ctx, void *wctx)
{
    motion_src *m = ctx;
    if (m->cfg.close_worker) m->cfg.close_worker(m->cfg.ctx, wctx);
}

static int motion_load(void *ctx, void *wctx, long item, uint64_t seed, float *out, int32_t *label)
{
    motion_src *m = ctx;
    const loader_motion_config *c = &m->cfg;
    int K = c->segments, L = c->L, W = c->field_w, H = c->field_h, CH = c->channels;
    size_t fsz = (size_t)CH * W * H;
    uint64_t rng = seed;
    *label = c->label ? c->label(c->ctx, item) : -1;
    long pairs = c->pairs(c->ctx, item);
    if (pairs < 1) return gl_error(GL_EFORMAT, "motion source: item %ld has no motion fields", item);
    int Le = pairs < L ? (int)pairs : L;
    long starts[64];
    float *stack = gl_malloc((size_t)L * fsz * sizeof *stack);
    if (!stack) return GL_ENOMEM;
    int rc = 0;
    loader_view view;
    if (!c->aug.test_views) loader_view_draw(&c->aug, W, H, &rng, &view);
    loader_segment_starts(pairs, Le, K, c->aug.test_views ? NULL : &rng, starts);
    int V = m->views, OH = c->aug.out_h, OW = c->aug.out_w;
    size_t osz = (size_t)CH * L * OH * OW;
    for (int k = 0; k < K; k++) {
        if ((rc = c->read(c->ctx, wctx, item, starts[k], Le, stack)) < 0) goto fail;
        /* a clip shorter than L: repeat its last field (rare; documented) */
        for (int l = Le; l < L; l++) memcpy(stack + (size_t)l * fsz, stack + (size_t)(Le - 1) * fsz, fsz * sizeof *stack);
        if (c->divide != 1.0f)
            for (size_t i = 0; i < (size_t)L * fsz; i++) stack[i] /= c->divide;
        for (int v = 0; v < V; v++) {
            if (c->aug.test_views) loader_view_test(&c->aug, W, H, v, &view);
            if ((rc = loader_view_apply(&view, stack, CH * L, H, W, out + ((size_t)v * K + k) * osz, OH, OW, CH == 2)) < 0)
                goto fail;
        }
    }
    if (c->hook) {
        int64_t shape[4] = { (int64_t)V * K, CH * L, OH, OW };
        rc = c->hook(c->hook_ctx, seed, out, shape, 4);
    }
fail:
    gl_free(stack);
    return rc;
}

int loader_source_motion(loader_source *src, const loader_motion_config *cfg)
{
    if (!src || !cfg) return gl_error(GL_EINVAL, "loader_source_motion: NULL argument");
    memset(src, 0, sizeof *src);
    int rc = loader_aug_validate(&cfg->aug);
    if (rc < 0) return rc;
    if (!cfg->read || !cfg->pairs) return gl_error(GL_EINVAL, "loader motion source: read and pairs functions are required");
    if (cfg->count < 1) return gl_error(GL_EINVAL, "loader motion source: no items");
    if (cfg->segments < 1 || cfg->segments > 64) return gl_error(GL_EINVAL, "loader motion source: segments %d, expected 1..64", cfg->segments);
    if (cfg->channels < 1) return gl_error(GL_EINVAL, "loader motion source: channels %d, expected >= 1", cfg->channels);
    if (cfg->L < 1) return gl_error(GL_EINVAL, "loader motion source: L %d, expected >= 1", cfg->L);
    if (cfg->field_w < 1 || cfg->field_h < 1) return gl_error(GL_EINVAL, "loader motion source: field size %dx%d", cfg->field_w, cfg->field_h);
    if (!(cfg->divide > 0)) return gl_error(GL_EINVAL, "loader motion source: divide %g, expected > 0", cfg->divide);
    motion_src *m = gl_calloc(1, sizeof *m);
    if (!m) return GL_ENOMEM;
    m->cfg = *cfg;
    m->views = cfg->aug.test_views ? cfg->aug.test_views : 1;
    src->ctx = m;
    src->count = cfg->count;
    src->ndim = 4;
    src->shape[0] = (int64_t)m->views * cfg->segments;
    src->shape[1] = cfg->channels * cfg->L;
    src->shape[2] = cfg->aug.out_h;
    src->shape[3] = cfg->aug.out_w;
    src->load = motion_load;
    src->open_worker = motion_open_worker;
    src->close_worker = motion_close_worker;
    src->destroy = plain_destroy;
    return 0;
}
