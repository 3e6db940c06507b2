/* libglocal.c — the public C API (experiments/libglocal.h, installed as
 * <glocal/glocal.h>) over motion/, datasets/ and nn/. Thin on purpose: it
 * checks arguments, adapts layouts (planar flows, double homographies,
 * caller-owned buffers) and hides the internal types behind opaque handles;
 * the work is done by the same functions the `glocal` command calls. */
#include <stdatomic.h>
#include <string.h>

#include "datasets/cache.h"
#include "datasets/video.h"
#include "experiments/libglocal.h"
#include "motion/flow.h"
#include "motion/glocal.h"
#include "nn/base.h"
#include "nn/nn.h"

/* The public codes are the internal ones under public names. */
_Static_assert((int)GLOCAL_OK == GL_OK && (int)GLOCAL_EOF == GL_EOF &&
                   (int)GLOCAL_ENOMEM == GL_ENOMEM && (int)GLOCAL_EINVAL == GL_EINVAL &&
                   (int)GLOCAL_EIO == GL_EIO && (int)GLOCAL_EFORMAT == GL_EFORMAT &&
                   (int)GLOCAL_ETORCH == GL_ETORCH && (int)GLOCAL_EUNSUPPORTED == GL_EUNSUPPORTED &&
                   (int)GLOCAL_ENOTFOUND == GL_ENOTFOUND && (int)GLOCAL_ECANCELED == GL_ECANCELED &&
                   (int)GLOCAL_ENUMERIC == GL_ENUMERIC && (int)GLOCAL_EFFMPEG == GL_EFFMPEG &&
                   (int)GLOCAL_EHDF5 == GL_EHDF5 && (int)GLOCAL_ESYSTEM == GL_ESYSTEM,
               "public and internal return codes differ");

#define STR2(x) #x
#define STR(x) STR2(x)

/* ---- the library ------------------------------------------------------------ */

static atomic_int initialised;

int glocal_init(int threads, const char *device)
{
    if (threads < 0) return gl_error(GL_EINVAL, "glocal_init: threads must be >= 0 (0 = every core), got %d", threads);
    gl_set_num_threads(threads);
    int rc = nn_runtime_init(gl_num_threads(), device);
    if (rc < 0) return gl_error_prefix(rc, "glocal_init");
    atomic_store(&initialised, 1);
    return 0;
}

const char *glocal_version(void)
{
    return STR(GLOCAL_VERSION_MAJOR) "." STR(GLOCAL_VERSION_MINOR) "." STR(GLOCAL_VERSION_PATCH);
}

const char *glocal_last_error(void) { return gl_last_error(); }

const char *glocal_strerror(int code) { return gl_strerror(code); }

/* ---- GLOCAL motion ---------------------------------------------------------- */

struct glocal_estimator {
    glocal_model *model; /* NULL: no network */
    glocal_infer_options opts;
};

int glocal_estimator_open(glocal_estimator **out, const char *model, unsigned flags)
{
    const unsigned known = GLOCAL_NO_REFINE | GLOCAL_LOCAL_LME | GLOCAL_LOCAL_UNGATED;
    if (!out) return gl_error(GL_EINVAL, "glocal_estimator_open: NULL handle pointer");
    *out = NULL;
    if (!atomic_load(&initialised))
        return gl_error(GL_EINVAL, "glocal_estimator_open: call glocal_init() first");
    if (flags & ~known)
        return gl_error(GL_EINVAL, "glocal_estimator_open: unknown flags 0x%x", flags & ~known);
    if (!model && (flags & (GLOCAL_NO_REFINE | GLOCAL_LOCAL_LME)))
        return gl_error(GL_EINVAL, "glocal_estimator_open: GLOCAL_NO_REFINE and GLOCAL_LOCAL_LME need a "
                        "model (without one, the refinement is the homography and TV-L1 the local flow)");
    glocal_estimator *e = gl_calloc(1, sizeof *e);
    if (!e) return GL_ENOMEM;
    glocal_infer_options_default(&e->opts);
    e->opts.refine = !(flags & GLOCAL_NO_REFINE);
    e->opts.local_tvl1 = !(flags & GLOCAL_LOCAL_LME);
    e->opts.local_gate = !(flags & GLOCAL_LOCAL_UNGATED);
    if (model) {
        int rc = glocal_model_load(&e->model, model, NULL);
        if (rc < 0) {
            gl_free(e);
            return rc;
        }
    } else {
        e->opts.use_network = 0;
        e->opts.lme = 0;
    }
    *out = e;
    return 0;
}

void glocal_estimator_close(glocal_estimator **e)
{
    if (!e || !*e) return;
    glocal_model_free(&(*e)->model);
    gl_free(*e);
    *e = NULL;
}

int glocal_estimator_size(const glocal_estimator *e)
{
    return e && e->model ? glocal_model_config(e->model)->size : 0;
}

int glocal_estimate(glocal_estimator *e, const uint8_t *const *a, const uint8_t *const *b, int n,
                    int width, int height, double *homographies, float *global_flow,
                    float *local_flow, float *mixed_flow, float *mask)
{
    if (!e || !a || !b) return gl_error(GL_EINVAL, "glocal_estimate: NULL estimator or frames");
    if (n < 1 || width < 8 || height < 8)
        return gl_error(GL_EINVAL, "glocal_estimate: need n >= 1 pairs of frames >= 8x8, got n=%d of %dx%d",
                        n, width, height);
    for (int i = 0; i < n; i++)
        if (!a[i] || !b[i]) return gl_error(GL_EINVAL, "glocal_estimate: frame pointer %d is NULL", i);
    glocal_result r = { 0 };
    int rc = glocal_infer(e->model, a, b, n, width, height, &e->opts, &r);
    if (rc < 0) return rc;
    const size_t hw = (size_t)width * height, nn = (size_t)n;
    if (homographies) memcpy(homographies, r.homography, nn * 9 * sizeof(double));
    if (global_flow) memcpy(global_flow, r.global_flow, nn * 2 * hw * sizeof(float));
    if (local_flow) memcpy(local_flow, r.local_flow, nn * 2 * hw * sizeof(float));
    if (mixed_flow) memcpy(mixed_flow, r.mixed_flow, nn * 2 * hw * sizeof(float));
    if (mask) memcpy(mask, r.mask, nn * hw * sizeof(float));
    glocal_result_free(&r);
    return 0;
}

/* ---- classical flow ------------------------------------------------------- */

static int flow_method(glocal_flow_method m, const char *fn, flow_method_fn *out)
{
    switch (m) {
    case GLOCAL_FLOW_TVL1: *out = flow_method_tvl1; return 0;
    case GLOCAL_FLOW_DIS: *out = flow_method_dis; return 0;
    }
    return gl_error(GL_EINVAL, "%s: method must be GLOCAL_FLOW_TVL1 or GLOCAL_FLOW_DIS, got %d", fn, (int)m);
}

static int check_pair(const char *fn, const uint8_t *a, const uint8_t *b, int width, int height)
{
    if (!a || !b) return gl_error(GL_EINVAL, "%s: NULL frame", fn);
    if (width < 4 || height < 4)
        return gl_error(GL_EINVAL, "%s: frames must be >= 4x4, got %dx%d", fn, width, height);
    return 0;
}

/* A field's u and v planes into a planar [2][H][W] buffer. */
static void planar_out(const flow_field *f, float *out)
{
    const size_t hw = (size_t)f->width * f->height;
    memcpy(out, f->u, hw * sizeof(float));
    memcpy(out + hw, f->v, hw * sizeof(float));
}

int glocal_flow(glocal_flow_method method, const uint8_t *a, const uint8_t *b, int width,
                int height, float *flow)
{
    flow_method_fn fn = NULL;
    int rc = flow_method(method, "glocal_flow", &fn);
    if (rc < 0 || (rc = check_pair("glocal_flow", a, b, width, height)) < 0) return rc;
    if (!flow) return gl_error(GL_EINVAL, "glocal_flow: NULL output");
    flow_field f = { 0 };
    if ((rc = flow_field_new(&f, width, height)) < 0) return rc;
    if ((rc = flow_from_rgb24(a, b, width, height, fn, NULL, &f)) == 0) planar_out(&f, flow);
    flow_field_free(&f);
    return rc;
}

int glocal_flow_baseline(glocal_flow_method method, const uint8_t *a, const uint8_t *b, int width,
                         int height, double *homography, float *global_flow, float *local_flow,
                         float *flow)
{
    flow_baseline_config c;
    flow_baseline_config_default(&c);
    int rc = flow_method(method, "glocal_flow_baseline", &c.method);
    if (rc < 0 || (rc = check_pair("glocal_flow_baseline", a, b, width, height)) < 0) return rc;
    flow_field g = { 0 }, l = { 0 }, f = { 0 };
    double h[9];
    if ((global_flow && (rc = flow_field_new(&g, width, height)) < 0) ||
        (local_flow && (rc = flow_field_new(&l, width, height)) < 0) ||
        (flow && (rc = flow_field_new(&f, width, height)) < 0))
        goto fail;
    rc = flow_baseline_rgb24(a, b, width, height, &c, h, flow ? &f : NULL, global_flow ? &g : NULL,
                             local_flow ? &l : NULL);
    if (rc < 0) goto fail;
    if (homography) memcpy(homography, h, sizeof h);
    if (global_flow) planar_out(&g, global_flow);
    if (local_flow) planar_out(&l, local_flow);
    if (flow) planar_out(&f, flow);
fail:
    flow_field_free(&f);
    flow_field_free(&l);
    flow_field_free(&g);
    return rc;
}

/* ---- video ---------------------------------------------------------------- */

struct glocal_video {
    video_reader *reader;
    video_info info;
};

int glocal_video_open(glocal_video **out, const char *path, int width, int height)
{
    if (!out) return gl_error(GL_EINVAL, "glocal_video_open: NULL handle pointer");
    *out = NULL;
    if (!path) return gl_error(GL_EINVAL, "glocal_video_open: NULL path");
    if (width < 0 || height < 0 || (width == 0) != (height == 0))
        return gl_error(GL_EINVAL, "glocal_video_open: %s: size %dx%d, expected both 0 (native) or both > 0",
                        path, width, height);
    video_reader_opts o = video_reader_opts_default();
    o.width = width;
    o.height = height;
    glocal_video *v = gl_calloc(1, sizeof *v);
    if (!v) return GL_ENOMEM;
    int rc = video_reader_open(&v->reader, path, &o);
    if (rc < 0) {
        gl_free(v);
        return rc;
    }
    video_reader_info(v->reader, &v->info);
    *out = v;
    return 0;
}

void glocal_video_close(glocal_video **v)
{
    if (!v || !*v) return;
    video_reader_close(&(*v)->reader);
    gl_free(*v);
    *v = NULL;
}

int glocal_video_info(const glocal_video *v, int *width, int *height, long *frames, double *fps)
{
    if (!v) return gl_error(GL_EINVAL, "glocal_video_info: NULL video");
    if (width) *width = v->info.out_width;
    if (height) *height = v->info.out_height;
    if (frames) *frames = v->info.frames;
    if (fps) *fps = v->info.fps;
    return 0;
}

int glocal_video_read(glocal_video *v, uint8_t *rgb)
{
    if (!v || !rgb) return gl_error(GL_EINVAL, "glocal_video_read: NULL video or buffer");
    return video_reader_read(v->reader, rgb, NULL);
}

int glocal_video_skip(glocal_video *v, long n)
{
    if (!v || n < 0) return gl_error(GL_EINVAL, "glocal_video_skip: NULL video or n < 0 (%ld)", n);
    for (long i = 0; i < n; i++) {
        int rc = video_reader_skip(v->reader, NULL);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- motion caches ---------------------------------------------------------- */

struct glocal_cache {
    cache *c;
    float *hbuf; /* float homographies, widened to double for the caller */
    long hcap;
};

int glocal_cache_open(glocal_cache **out, const char *path)
{
    if (!out) return gl_error(GL_EINVAL, "glocal_cache_open: NULL handle pointer");
    *out = NULL;
    if (!path) return gl_error(GL_EINVAL, "glocal_cache_open: NULL path");
    glocal_cache *c = gl_calloc(1, sizeof *c);
    if (!c) return GL_ENOMEM;
    int rc = cache_open(path, 0, &c->c);
    if (rc < 0) {
        gl_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void glocal_cache_close(glocal_cache **c)
{
    if (!c || !*c) return;
    cache_close(&(*c)->c);
    gl_free((*c)->hbuf);
    gl_free(*c);
    *c = NULL;
}

int glocal_cache_info(const glocal_cache *c, const char **method, int *channels, int *height,
                      int *width, long *clips)
{
    if (!c) return gl_error(GL_EINVAL, "glocal_cache_info: NULL cache");
    const cache_config *cfg = cache_get_config(c->c);
    if (method) *method = cfg->method;
    if (channels) *channels = cfg->channels;
    if (height) *height = cfg->height;
    if (width) *width = cfg->width;
    if (clips) *clips = cache_clip_count(c->c);
    return 0;
}

int glocal_cache_clip_name(const glocal_cache *c, long i, const char **name)
{
    if (!c || !name) return gl_error(GL_EINVAL, "glocal_cache_clip_name: NULL cache or name");
    const cache_clip *ci = cache_get_clip(c->c, i);
    if (!ci)
        return gl_error(GL_EINVAL, "glocal_cache_clip_name: clip %ld, expected 0..%ld", i,
                        cache_clip_count(c->c) - 1);
    *name = ci->name;
    return 0;
}

int glocal_cache_clip(const glocal_cache *c, const char *name, long *pairs, int *label)
{
    if (!c || !name) return gl_error(GL_EINVAL, "glocal_cache_clip: NULL cache or name");
    long row;
    int rc = cache_find_name(c->c, name, &row);
    if (rc < 0) return rc;
    const cache_clip *ci = cache_get_clip(c->c, row);
    if (pairs) *pairs = ci->pairs;
    if (label) *label = ci->label;
    return 0;
}

int glocal_cache_read(glocal_cache *c, const char *name, long first, long n, float *fields,
                      double *homographies)
{
    if (!c || !name) return gl_error(GL_EINVAL, "glocal_cache_read: NULL cache or name");
    long row;
    int rc = cache_find_name(c->c, name, &row);
    if (rc < 0) return rc;
    const cache_clip *ci = cache_get_clip(c->c, row);
    if (n < 1 || n > ci->pairs || first < 0 || first > ci->pairs - n)
        return gl_error(GL_EINVAL, "glocal_cache_read: pairs %ld..%ld of clip '%s', which has %d",
                        first, first + n - 1, name, ci->pairs);
    if (fields && (rc = cache_read_fields(c->c, row, first, (int)n, fields)) < 0) return rc;
    if (homographies) {
        if (n * 9 > c->hcap) {
            float *p = gl_realloc(c->hbuf, sizeof(float) * 9 * (size_t)n);
            if (!p) return GL_ENOMEM;
            c->hbuf = p;
            c->hcap = n * 9;
        }
        if ((rc = cache_read_homographies(c->c, row, first, (int)n, c->hbuf)) < 0) return rc;
        for (long i = 0; i < n * 9; i++) homographies[i] = c->hbuf[i];
    }
    return 0;
}
