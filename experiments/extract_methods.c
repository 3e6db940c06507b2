/* extract_methods.c — the motion methods of glocal extract: adapters from
 * batches of RGB24 frame pairs to cache fields (TV-L1, DIS, with or without
 * the homography, RGB difference, GLOCAL) and the table that names them. The
 * worker pool that runs them is extract.c. See experiments/extract.h and
 * experiments/extract_private.h. */
#include <stdio.h>
#include <string.h>

#include "datasets/cache.h"
#include "experiments/extract.h"
#include "experiments/extract_private.h"
#include "motion/flow.h"
#include "motion/glocal.h"

/* ---- methods ---------------------------------------------------------------- */

/* The flow methods' state (TV-L1's and DIS's, with or without the homography). */
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

static int tvl1_init(void **out, const extract_config *c)
{
    const int w = c->width, h = c->height;
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

/* The flow of each pair by `method` with its defaults (tvl1 and dis). */
static int flow_pairs(flow_method_fn method, void *state, const uint8_t *const *a, const uint8_t *const *b,
                      int n, int w, int h, float *fields)
{
    tvl1_state *s = state;
    size_t hw = (size_t)w * h;
    for (int i = 0; i < n; i++) {
        int rc = flow_from_rgb24(a[i], b[i], w, h, method, NULL, &s->flow);
        if (rc < 0) return rc;
        memcpy(fields + (size_t)i * 2 * hw, s->flow.u, sizeof(float) * hw);
        memcpy(fields + (size_t)i * 2 * hw + hw, s->flow.v, sizeof(float) * hw);
    }
    return 0;
}

static int tvl1_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                      int h, const int *parts, int nparts, float *const *fields, float *homs)
{
    (void)parts, (void)nparts, (void)homs;
    return flow_pairs(flow_method_tvl1, state, a, b, n, w, h, fields[0]);
}

static int dis_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                     int h, const int *parts, int nparts, float *const *fields, float *homs)
{
    (void)parts, (void)nparts, (void)homs;
    return flow_pairs(flow_method_dis, state, a, b, n, w, h, fields[0]);
}

static void tvl1_describe(const extract_config *cfg, char *buf, size_t n)
{
    (void)cfg;
    tvl1_config c;
    tvl1_config_default(&c);
    snprintf(buf, n, "tvl1(IPOL): tau=%g lambda=%g theta=%g epsilon=%g zoom=%g scales=%d warps=%d "
             "iterations=%d median=%d presmooth=%g", c.tau, c.lambda, c.theta, c.epsilon, c.zoom,
             c.scales, c.warps, c.iterations, c.median, c.presmooth);
}

/* DIS with flow_method_dis's defaults: OpenCV's PRESET_MEDIUM. */
static void dis_describe(const extract_config *cfg, char *buf, size_t n)
{
    (void)cfg;
    dis_config c;
    dis_config_preset(&c, "medium");
    snprintf(buf, n, "dis(OpenCV PRESET_MEDIUM): finest_scale=%d coarsest_scale=%d patch_size=%d "
             "patch_stride=%d grad_descent_iters=%d var_refine_iters=%d var_sor_iters=%d alpha=%g delta=%g "
             "gamma=%g omega=%g mean_normalization=%d spatial_propagation=%d opencv_rounding=%d",
             c.finest_scale, c.coarsest_scale, c.patch_size, c.patch_stride, c.grad_descent_iters,
             c.var_refine_iters, c.var_sor_iters, c.var_alpha, c.var_delta, c.var_gamma, c.var_omega,
             c.use_mean_normalization, c.use_spatial_propagation, c.opencv_rounding);
}

/* The smallest grid side DIS's preset takes: a patch at its finest scale. */
int extract_dis_min_side(void)
{
    dis_config c;
    dis_config_preset(&c, "medium");
    return c.patch_size << c.finest_scale;
}

#define FMH_STEP 4 /* flow sampled every 4 px for the homography fit */

/* Flow minus homography (flow_baseline_rgb24) with `method`'s defaults. */
static int fmh_pairs(flow_method_fn method, void *state, const uint8_t *const *a, const uint8_t *const *b,
                     int n, int w, int h, float *fields, float *homs)
{
    tvl1_state *s = state;
    size_t hw = (size_t)w * h;
    flow_baseline_config c;
    flow_baseline_config_default(&c);
    c.method = method;
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

static int tvl1_fmh_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                          int h, const int *parts, int nparts, float *const *fields, float *homs)
{
    (void)parts, (void)nparts;
    return fmh_pairs(flow_method_tvl1, state, a, b, n, w, h, fields[0], homs);
}

static int dis_fmh_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int w,
                         int h, const int *parts, int nparts, float *const *fields, float *homs)
{
    (void)parts, (void)nparts;
    return fmh_pairs(flow_method_dis, state, a, b, n, w, h, fields[0], homs);
}

static void fmh_describe(void (*flow_describe)(const extract_config *, char *, size_t),
                         const extract_config *cfg, char *buf, size_t n)
{
    char t[512];
    homography_ransac_config c;
    homography_ransac_config_default(&c);
    flow_describe(cfg, t, sizeof t);
    snprintf(buf, n, "%s; minus homography: RANSAC threshold=%g iterations=%d confidence=%g seed=%llu "
             "refits=%d step=%d, local = flow - H flow", t, c.threshold, c.iterations, c.confidence,
             (unsigned long long)c.seed, c.refits, FMH_STEP);
}

static void tvl1_fmh_describe(const extract_config *cfg, char *buf, size_t n)
{
    fmh_describe(tvl1_describe, cfg, buf, n);
}

static void dis_fmh_describe(const extract_config *cfg, char *buf, size_t n)
{
    fmh_describe(dis_describe, cfg, buf, n);
}

static int rgbdiff_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n,
                         int w, int h, const int *parts, int nparts, float *const *fields, float *homs)
{
    (void)state, (void)parts, (void)nparts, (void)homs;
    for (int i = 0; i < n; i++) {
        int rc = rgbdiff_compute(a[i], b[i], w, h, fields[0] + (size_t)i * 3 * w * h);
        if (rc < 0) return rc;
    }
    return 0;
}

static void rgbdiff_describe(const extract_config *cfg, char *buf, size_t n)
{
    (void)cfg;
    snprintf(buf, n, "rgbdiff(TSN): (b - a) / 255 per RGB channel");
}

/* GLOCAL (motion/glocal.h): each worker loads its own copy of the checkpoint
 * c->model (small models; no sharing of libtorch state across threads). */

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

static int glocal_state_init(void **out, const extract_config *c)
{
    glocal_state *s = gl_calloc(1, sizeof *s);
    if (!s) return GL_ENOMEM;
    int rc = glocal_model_load(&s->m, c->model, NULL);
    if (rc < 0) {
        gl_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

typedef enum { GLOCAL_LOCAL, GLOCAL_RESIDUAL, GLOCAL_GLOBAL, GLOCAL_MIXED, GLOCAL_MASK } glocal_part;
/* Where a part's local flow (and its mask) comes from: glocal_infer's
 * default, TV-L1 on the aligned pair (the hybrid, by name), the LME's own
 * flow. A method's part is kind + 8 * source. */
enum { GLOCAL_DEFAULT, GLOCAL_TVL1, GLOCAL_LME };
#define GLOCAL_PART(kind, source) ((kind) + 8 * (source))
#define PART_KIND(part) ((part) % 8)
#define PART_SOURCE(part) ((part) / 8)

/* 1 when source's local flow is TV-L1 on the aligned pair (the default's as
 * glocal_infer resolves it for this model). */
static int source_tvl1(const glocal_state *s, int source)
{
    if (source != GLOCAL_DEFAULT) return source == GLOCAL_TVL1;
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    return glocal_infer_local_is_tvl1(s->m, &o);
}

/* One glocal_infer for the batch and every part asked for from it (every
 * part has the homography of the same inference: refined with the LME's
 * mask as its background). A part alone is computed with its own options: a
 * global flow with homography_only, a residual ungated, local and mixed
 * gated. Several parts come from one call with local_gate = 0: its local
 * flow is the residual, and (motion/glocal.h) the gated local flow is
 * exactly the residual where mask >= 0.5 and 0 elsewhere, and mixed = global
 * + gated local: the same numbers as the parts computed alone. Parts of both
 * local flows (TV-L1's and the LME's) take both from the one call
 * (local_both). */
static int glocal_pairs(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int w, int h,
                        const int *parts, int nparts, float *const *fields, float *homs)
{
    glocal_state *s = state;
    int want_tvl1 = 0, want_lme = 0;
    for (int k = 0; k < nparts; k++) {
        if (PART_KIND(parts[k]) == GLOCAL_GLOBAL) continue;
        if (source_tvl1(s, PART_SOURCE(parts[k]))) want_tvl1 = 1;
        else want_lme = 1;
    }
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.local_tvl1 = want_tvl1;
    o.local_both = want_tvl1 && want_lme;
    o.homography_only = !want_tvl1 && !want_lme;
    const int kind0 = PART_KIND(parts[0]);
    o.local_gate = nparts == 1 && (kind0 == GLOCAL_LOCAL || kind0 == GLOCAL_MIXED);
    glocal_result r = { 0 }; /* glocal_infer allocates it */
    int rc = glocal_infer(s->m, a, b, n, w, h, &o, &r);
    if (rc < 0) goto done;
    const size_t hw = (size_t)w * h, all = 2 * hw * (size_t)n;
    for (int k = 0; k < nparts; k++) {
        float *f = fields[k];
        const int part = PART_KIND(parts[k]), lme = o.local_both && !source_tvl1(s, PART_SOURCE(parts[k]));
        const float *local = lme ? r.lme_local_flow : r.local_flow, *mask = lme ? r.lme_mask : r.mask;
        if (part == GLOCAL_MASK) {
            memcpy(f, mask, sizeof(float) * hw * (size_t)n);
            continue;
        }
        if (part == GLOCAL_GLOBAL || part == GLOCAL_RESIDUAL || o.local_gate) {
            const float *src = part == GLOCAL_GLOBAL ? r.global_flow : part == GLOCAL_MIXED ? r.mixed_flow
                                                                                            : local;
            memcpy(f, src, sizeof(float) * all);
            continue;
        }
        /* the gated local flow (and the mixed flow) from the ungated one */
        for (int i = 0; i < n; i++)
            for (size_t p = 0; p < hw; p++) {
                const size_t u = (size_t)i * 2 * hw + p, v = u + hw;
                const int fg = mask[(size_t)i * hw + p] >= 0.5f;
                const float lu = fg ? local[u] : 0.0f, lv = fg ? local[v] : 0.0f;
                f[u] = part == GLOCAL_MIXED ? r.global_flow[u] + lu : lu;
                f[v] = part == GLOCAL_MIXED ? r.global_flow[v] + lv : lv;
            }
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 9; k++) homs[9 * i + k] = (float)r.homography[9 * i + k];
done:
    glocal_result_free(&r);
    return rc;
}

/* The inference (what glocal-global depends on) ... (a cache made before
 * the polish, before a DIS start won by the flow gave way to its
 * refinement, or before the search on every pair and the network's passes,
 * is refused on resume, not mixed) */
static void glocal_base_describe(const extract_config *c, char *buf, size_t n)
{
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    snprintf(buf, n, "glocal: model=%s (sha256 in model_sha256), network passes %d (0: the model's, 2 for arch 2), "
             "robust refinement=%d (DIS starts %d, search start %d on every pair, a start won by the flow gives way to "
             "its refinement, polish rounds %d), frames resized to the model size, flows rescaled to the grid",
             c->model ? c->model : "?", o.net_passes, o.refine, o.start_dis, o.start_search, o.rc.polish);
}

/* ... and the local outputs' mask (a cache made before view_margin or
 * mask_lme is refused on resume, not mixed). */
static void glocal_describe(const extract_config *c, char *buf, size_t n)
{
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    char t[3072];
    glocal_base_describe(c, t, sizeof t);
    snprintf(buf, n, "%s; mask: evidence = %s, none out of B's view (margin %g of the side)", t,
             o.mask_lme ? "motion or the LME's mask" : "motion", o.view_margin);
}

static void glocal_tvl1_describe(const extract_config *c, char *buf, size_t n)
{
    char t[3072];
    glocal_describe(c, t, sizeof t);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    snprintf(buf, n, "%s; local flow: TV-L1 (IPOL defaults)%s on the pair aligned (bicubic) by the refined homography, "
             "mapped into B's frame, foreground where the LME's own flow moves too (k %g)", t,
             o.local_fuse ? " fused with DIS (medium) by their 5x5 photometric error" : "", o.lme_agree_k);
}

static void glocal_lme_describe(const extract_config *c, char *buf, size_t n)
{
    char t[3072];
    glocal_describe(c, t, sizeof t);
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    snprintf(buf, n, "%s; local flow: the LME's own (no TV-L1), coarse to fine from 1/%d of the model size "
             "and on up to %d finer level(s) above it where the frames are that large, where that moves more than %g px "
             "(one pass elsewhere), finished by %d linearisations of DIS's "
             "variational refinement on the raw pair, carried in B's frame; foreground where it moves "
             "(k %g) and the unfinished flow too (k %g), and where it removes %g of the aligned pair's 7x7 "
             "residual or that residual is above %g x its median, none in flat windows (|grad| < %g) where the "
             "still flat background's residual is above %g", t, 1 << o.lme_coarse, o.lme_fine,
             o.lme_coarse_px, o.lme_finish, o.lme_thresh_k, o.lme_agree_k, o.lme_support, o.lme_support_k,
             o.lme_flat, o.lme_flat_noise);
}

static void glocal_global_describe(const extract_config *c, char *buf, size_t n)
{
    char t[3072];
    glocal_base_describe(c, t, sizeof t);
    snprintf(buf, n, "%s; the homography's flow, refined on the LME's background (the local outputs' own)", t);
}

/* A mask output: its local flow's description, and what the field holds. */
static void mask_describe(void (*base)(const extract_config *, char *, size_t), const extract_config *c, char *buf,
                          size_t n)
{
    char t[3072];
    base(c, t, sizeof t);
    snprintf(buf, n, "%s; output: the mask (1 = foreground), the gate of the local flow", t);
}

static void glocal_mask_describe(const extract_config *c, char *b, size_t n) { mask_describe(glocal_describe, c, b, n); }

static void glocal_tvl1_mask_describe(const extract_config *c, char *b, size_t n)
{
    mask_describe(glocal_tvl1_describe, c, b, n);
}

static void glocal_lme_mask_describe(const extract_config *c, char *b, size_t n)
{
    mask_describe(glocal_lme_describe, c, b, n);
}

#define GLOCAL_METHOD(name, describe, kind, source)                                                      \
    { name, (kind) == GLOCAL_MASK ? 1 : 2, 1, CACHE_INT16_SCALE, glocal_state_init, glocal_state_free,        \
      glocal_pairs, describe, "glocal", GLOCAL_PART(kind, source) }

static const motion_method methods[] = {
    { "tvl1", 2, 0, CACHE_INT16_SCALE, tvl1_init, tvl1_free, tvl1_pairs, tvl1_describe, NULL, 0 },
    { "tvl1-minus-homography", 2, 1, CACHE_INT16_SCALE, tvl1_init, tvl1_free, tvl1_fmh_pairs,
      tvl1_fmh_describe, NULL, 0 },
    { "dis", 2, 0, CACHE_INT16_SCALE, tvl1_init, tvl1_free, dis_pairs, dis_describe, NULL, 0 },
    { "dis-minus-homography", 2, 1, CACHE_INT16_SCALE, tvl1_init, tvl1_free, dis_fmh_pairs,
      dis_fmh_describe, NULL, 0 },
    /* 8-bit differences / 255 are stored exactly with a 1/255 step */
    { "rgbdiff", 3, 0, 1.0f / 255.0f, NULL, NULL, rgbdiff_pairs, rgbdiff_describe, NULL, 0 },
    GLOCAL_METHOD("glocal-local", glocal_describe, GLOCAL_LOCAL, GLOCAL_DEFAULT),
    GLOCAL_METHOD("glocal-residual", glocal_describe, GLOCAL_RESIDUAL, GLOCAL_DEFAULT),
    GLOCAL_METHOD("glocal-global", glocal_global_describe, GLOCAL_GLOBAL, GLOCAL_DEFAULT),
    GLOCAL_METHOD("glocal-mixed", glocal_describe, GLOCAL_MIXED, GLOCAL_DEFAULT),
    GLOCAL_METHOD("glocal-mask", glocal_mask_describe, GLOCAL_MASK, GLOCAL_DEFAULT),
    GLOCAL_METHOD("glocal-tvl1-local", glocal_tvl1_describe, GLOCAL_LOCAL, GLOCAL_TVL1),
    GLOCAL_METHOD("glocal-tvl1-residual", glocal_tvl1_describe, GLOCAL_RESIDUAL, GLOCAL_TVL1),
    GLOCAL_METHOD("glocal-tvl1-mixed", glocal_tvl1_describe, GLOCAL_MIXED, GLOCAL_TVL1),
    GLOCAL_METHOD("glocal-tvl1-mask", glocal_tvl1_mask_describe, GLOCAL_MASK, GLOCAL_TVL1),
    GLOCAL_METHOD("glocal-lme-local", glocal_lme_describe, GLOCAL_LOCAL, GLOCAL_LME),
    GLOCAL_METHOD("glocal-lme-residual", glocal_lme_describe, GLOCAL_RESIDUAL, GLOCAL_LME),
    GLOCAL_METHOD("glocal-lme-mixed", glocal_lme_describe, GLOCAL_MIXED, GLOCAL_LME),
    GLOCAL_METHOD("glocal-lme-mask", glocal_lme_mask_describe, GLOCAL_MASK, GLOCAL_LME),
};

/* ---- looking a method up ----------------------------------------------------- */

const char *extract_method_names(void)
{
    return "tvl1, tvl1-minus-homography, dis, dis-minus-homography, rgbdiff, glocal-local, glocal-residual, "
           "glocal-global, glocal-mixed, glocal-mask, glocal-tvl1-local, glocal-tvl1-residual, glocal-tvl1-mixed, "
           "glocal-tvl1-mask, glocal-lme-local, glocal-lme-residual, glocal-lme-mixed, glocal-lme-mask";
}

const motion_method *extract_method_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof methods / sizeof *methods; i++)
        if (!strcmp(methods[i].name, name)) return &methods[i];
    return NULL;
}

int extract_method_known(const char *name, int *needs_model)
{
    const motion_method *m = extract_method_find(name);
    if (needs_model) *needs_model = m && m->init == glocal_state_init;
    return m != NULL;
}

const char *extract_method_pass(const char *name)
{
    const motion_method *m = extract_method_find(name);
    return !m ? NULL : m->pass ? m->pass : m->name;
}
