/* config.c — experiment configs through libconfig, with a strict schema. */
#include "experiments/config.h"

#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/extract.h"
#include "nn/base.h"

/* Every source but rgb is a method of glocal extract (experiments/extract.h). */
static const char *const known_sources[] = { "rgb", "rgbdiff", "tvl1", "tvl1-minus-homography", "dis",
                                             "dis-minus-homography", "glocal-local", "glocal-residual",
                                             "glocal-global", "glocal-mixed", "glocal-tvl1-local",
                                             "glocal-tvl1-residual", "glocal-tvl1-mixed", "glocal-lme-local",
                                             "glocal-lme-residual", "glocal-lme-mixed" };

int exp_source_known(const char *s)
{
    for (size_t i = 0; i < sizeof known_sources / sizeof known_sources[0]; i++)
        if (strcmp(s, known_sources[i]) == 0) return 1;
    return 0;
}

void exp_config_default(exp_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "synthetic");
    snprintf(c->kind, sizeof c->kind, "synthetic");
    c->split = 1;
    c->labels = 11;
    c->classes = 8;
    c->clips_per_class = 12;
    c->frames = 20;
    c->width = c->height = 64;
    snprintf(c->camera, sizeof c->camera, "strong");
    c->dataset_seed = 1;
    c->motion_w = c->motion_h = 64;
    c->motion_minutes = 4.0;
    c->motion_steps = 0;
    c->motion_batch = 8;
    c->motion_lr = 1e-3;
    c->motion_seed = 1;
    c->motion_lme_start = 1000;
    c->motion_mask_start = 1500;
    snprintf(c->motion_teacher, sizeof c->motion_teacher, "tvl1");
    c->extract_w = c->extract_h = 64;
    c->extract_stride = 1;
    snprintf(c->arch, sizeof c->arch, "resnet10");
    c->width_mult = 16;
    c->flip = 0;
    c->decode_w = c->decode_h = 0;
    c->test_segments = 5;
    c->epochs = 8;
    c->batch = 16;
    c->segments = 3;
    c->stack = 5;
    c->test_crops = 1;
    c->crop_w = c->crop_h = 56;
    c->lr = 0.01;
    c->weight_decay = 5e-4;
    c->label_smoothing = 0.1;
    c->dropout = 0.5;
    snprintf(c->optimizer, sizeof c->optimizer, "sgd");
    c->classifier_seed = 1;
    const char *src[] = { "rgb", "tvl1", "tvl1-minus-homography", "glocal-local", "glocal-residual",
                          "glocal-mixed" };
    c->nsources = 6;
    for (int i = 0; i < 6; i++) snprintf(c->sources[i], sizeof c->sources[i], "%s", src[i]);
    c->ranks = 0;
    c->threads = 0;
}

/* ---- schema ------------------------------------------------------------------------ */

typedef enum { K_INT, K_FLOAT, K_STRING, K_SIZE, K_GROUP, K_ARRAY_STR, K_LIST, K_BOOL } kind;

typedef struct {
    const char *group; /* NULL: top level */
    const char *key;
    kind k;
    double lo, hi;     /* numbers */
    size_t off, off2;  /* where it goes (K_SIZE: width, height) */
    size_t cap;        /* strings */
    const char *const *choices; /* strings: allowed values (NULL-terminated) or NULL */
} field;

#define OFF(f) offsetof(exp_config, f)
#define STR(f) OFF(f), 0, sizeof(((exp_config *)0)->f)

static const char *const kinds[] = { "synthetic", "ucf101", "ncaa", NULL };
static const char *const cameras[] = { "none", "mild", "strong", NULL };
static const char *const teachers[] = { "tvl1", "dis", "none", NULL };
static const char *const optimizers[] = { "sgd", "adamw", NULL };
static const char *const archs[] = { "tiny", "small", "resnet10", "resnet18", "resnet34", "resnet50", NULL };

static const field schema[] = {
    { NULL, "name", K_STRING, 0, 0, STR(name), NULL },
    { NULL, "dataset", K_GROUP, 0, 0, 0, 0, 0, NULL },
    { NULL, "motion", K_GROUP, 0, 0, 0, 0, 0, NULL },
    { NULL, "extract", K_GROUP, 0, 0, 0, 0, 0, NULL },
    { NULL, "classifier", K_GROUP, 0, 0, 0, 0, 0, NULL },
    { NULL, "sources", K_ARRAY_STR, 0, 0, 0, 0, 0, NULL },
    { NULL, "fusions", K_LIST, 0, 0, 0, 0, 0, NULL },
    { NULL, "ranks", K_INT, 0, 64, OFF(ranks), 0, 0, NULL },
    { NULL, "threads", K_INT, 0, 4096, OFF(threads), 0, 0, NULL },
    { "dataset", "kind", K_STRING, 0, 0, STR(kind), kinds },
    { "dataset", "root", K_STRING, 0, 0, STR(root), NULL },
    { "dataset", "lists", K_STRING, 0, 0, STR(lists), NULL },
    { "dataset", "split", K_INT, 1, 3, OFF(split), 0, 0, NULL },
    { "dataset", "labels", K_INT, 6, 11, OFF(labels), 0, 0, NULL },
    { "dataset", "classes", K_INT, 2, 12, OFF(classes), 0, 0, NULL },
    { "dataset", "clips_per_class", K_INT, 2, 100000, OFF(clips_per_class), 0, 0, NULL },
    { "dataset", "frames", K_INT, 2, 100000, OFF(frames), 0, 0, NULL },
    { "dataset", "size", K_SIZE, 8, 4096, OFF(width), OFF(height), 0, NULL },
    { "dataset", "camera", K_STRING, 0, 0, STR(camera), cameras },
    { "dataset", "textures", K_STRING, 0, 0, STR(textures), NULL },
    { "dataset", "seed", K_INT, 0, 2147483647, OFF(dataset_seed), 0, 0, NULL },
    { "motion", "size", K_SIZE, 16, 4096, OFF(motion_w), OFF(motion_h), 0, NULL },
    { "motion", "minutes", K_FLOAT, 0, 1e6, OFF(motion_minutes), 0, 0, NULL },
    { "motion", "steps", K_INT, 0, 1e12, OFF(motion_steps), 0, 0, NULL },
    { "motion", "batch", K_INT, 1, 4096, OFF(motion_batch), 0, 0, NULL },
    { "motion", "lr", K_FLOAT, 1e-8, 10, OFF(motion_lr), 0, 0, NULL },
    { "motion", "seed", K_INT, 0, 2147483647, OFF(motion_seed), 0, 0, NULL },
    { "motion", "lme_start", K_INT, 0, 1e12, OFF(motion_lme_start), 0, 0, NULL },
    { "motion", "mask_start", K_INT, 0, 1e12, OFF(motion_mask_start), 0, 0, NULL },
    { "motion", "teacher", K_STRING, 0, 0, STR(motion_teacher), teachers },
    { "extract", "size", K_SIZE, 8, 4096, OFF(extract_w), OFF(extract_h), 0, NULL },
    { "extract", "stride", K_INT, 1, 1000, OFF(extract_stride), 0, 0, NULL },
    { "classifier", "arch", K_STRING, 0, 0, STR(arch), archs },
    { "classifier", "width", K_INT, 0, 512, OFF(width_mult), 0, 0, NULL },
    { "classifier", "flip", K_BOOL, 0, 0, OFF(flip), 0, 0, NULL },
    { "classifier", "decode", K_SIZE, 8, 4096, OFF(decode_w), OFF(decode_h), 0, NULL },
    { "classifier", "test_segments", K_INT, 1, 250, OFF(test_segments), 0, 0, NULL },
    { "classifier", "epochs", K_INT, 1, 100000, OFF(epochs), 0, 0, NULL },
    { "classifier", "batch", K_INT, 1, 4096, OFF(batch), 0, 0, NULL },
    { "classifier", "lr", K_FLOAT, 1e-8, 10, OFF(lr), 0, 0, NULL },
    { "classifier", "segments", K_INT, 1, 64, OFF(segments), 0, 0, NULL },
    { "classifier", "stack", K_INT, 1, 64, OFF(stack), 0, 0, NULL },
    { "classifier", "size", K_SIZE, 8, 4096, OFF(crop_w), OFF(crop_h), 0, NULL },
    { "classifier", "optimizer", K_STRING, 0, 0, STR(optimizer), optimizers },
    { "classifier", "weight_decay", K_FLOAT, 0, 1, OFF(weight_decay), 0, 0, NULL },
    { "classifier", "label_smoothing", K_FLOAT, 0, 0.99, OFF(label_smoothing), 0, 0, NULL },
    { "classifier", "dropout", K_FLOAT, 0, 0.99, OFF(dropout), 0, 0, NULL },
    { "classifier", "test_crops", K_INT, 1, 10, OFF(test_crops), 0, 0, NULL },
    { "classifier", "seed", K_INT, 0, 2147483647, OFF(classifier_seed), 0, 0, NULL },
};
static const int nschema = (int)(sizeof schema / sizeof schema[0]);

static const field *find_field(const char *group, const char *key)
{
    for (int i = 0; i < nschema; i++) {
        const field *f = &schema[i];
        if (((!group && !f->group) || (group && f->group && strcmp(group, f->group) == 0)) &&
            strcmp(key, f->key) == 0)
            return f;
    }
    return NULL;
}

static int where(const config_setting_t *s) { return (int)config_setting_source_line(s); }

static int bad(const char *path, const config_setting_t *s, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    return gl_error(GL_EINVAL, "%s:%d: %s", path, where(s), msg);
}

static int parse_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X')) return -1;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end) return -1;
    /* Saturate rather than wrap, so "4294967360x64" fails the range check
     * instead of passing as 64x64. */
    *w = a > INT_MAX ? INT_MAX : a < INT_MIN ? INT_MIN : (int)a;
    *h = b > INT_MAX ? INT_MAX : b < INT_MIN ? INT_MIN : (int)b;
    return 0;
}

static int apply(exp_config *c, const char *path, const field *f, const config_setting_t *s,
                 const char *qual)
{
    char *base = (char *)c;
    int type = config_setting_type(s);
    char range[128];
    switch (f->k) {
    case K_INT: {
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return bad(path, s, "%s must be a whole number%s", qual, "");
        long long v = config_setting_get_int64(s);
        if (v < f->lo || v > f->hi) {
            snprintf(range, sizeof range, " in [%.0f, %.0f], got %lld", f->lo, f->hi, v);
            return bad(path, s, "%s must be%s", qual, range);
        }
        if (f->off == OFF(motion_steps) || f->off == OFF(motion_lme_start) || f->off == OFF(motion_mask_start))
            *(long *)(base + f->off) = (long)v;
        else *(int *)(base + f->off) = (int)v;
        return 0;
    }
    case K_BOOL:
        if (type != CONFIG_TYPE_BOOL) return bad(path, s, "%s must be true or false%s", qual, "");
        *(int *)(base + f->off) = config_setting_get_bool(s);
        return 0;
    case K_FLOAT: {
        double v;
        if (type == CONFIG_TYPE_FLOAT) v = config_setting_get_float(s);
        else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) v = (double)config_setting_get_int64(s);
        else return bad(path, s, "%s must be a number%s", qual, "");
        if (v < f->lo || v > f->hi) {
            snprintf(range, sizeof range, " in [%g, %g], got %g", f->lo, f->hi, v);
            return bad(path, s, "%s must be%s", qual, range);
        }
        *(double *)(base + f->off) = v;
        return 0;
    }
    case K_STRING: {
        if (type != CONFIG_TYPE_STRING) return bad(path, s, "%s must be a string in quotes%s", qual, "");
        const char *v = config_setting_get_string(s);
        if (strlen(v) >= f->cap) return bad(path, s, "%s is too long%s", qual, "");
        if (f->choices) {
            int ok = 0;
            char list[256] = "";
            for (const char *const *ch = f->choices; *ch; ch++) {
                if (strcmp(*ch, v) == 0) ok = 1;
                strncat(list, list[0] ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, *ch, sizeof list - strlen(list) - 1);
            }
            if (!ok) {
                char what[400];
                snprintf(what, sizeof what, "must be one of %s, got \"%s\"", list, v);
                return bad(path, s, "%s %s", qual, what);
            }
        }
        snprintf(base + f->off, f->cap, "%s", v);
        return 0;
    }
    case K_SIZE: {
        int w, h;
        if (type != CONFIG_TYPE_STRING || parse_size(config_setting_get_string(s), &w, &h) < 0)
            return bad(path, s, "%s must be a string \"WxH\" such as \"64x64\"%s", qual, "");
        if (w < f->lo || h < f->lo || w > f->hi || h > f->hi) {
            snprintf(range, sizeof range, " between %.0f and %.0f pixels a side", f->lo, f->hi);
            return bad(path, s, "%s must be%s", qual, range);
        }
        *(int *)(base + f->off) = w;
        *(int *)(base + f->off2) = h;
        return 0;
    }
    default: return 0;
    }
}

static int load_sources(exp_config *c, const char *path, const config_setting_t *s)
{
    if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
        return bad(path, s, "sources must be an array of strings, e.g. [ \"rgb\", \"tvl1\" ]%s%s", "", "");
    int n = config_setting_length(s);
    if (n < 1 || n > EXP_MAX_SOURCES) return bad(path, s, "sources must list 1 to 8 motion sources%s%s", "", "");
    c->nsources = n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *v = config_setting_get_string(e);
        if (!v) return bad(path, e, "sources[%s] must be a string%s", "", "");
        if (!exp_source_known(v) && extract_method_known(v, NULL))
            return bad(path, e, "\"%s\" is a glocal extract output (the mask of a local flow), not a recognition "
                                "stream (glocal extract --method writes it)%s", v, "");
        if (!exp_source_known(v))
            return bad(path, e, "unknown motion source \"%s\" (known: rgb, rgbdiff, tvl1, tvl1-minus-homography, "
                                "dis, dis-minus-homography, glocal-local, glocal-residual, glocal-global, "
                                "glocal-mixed, glocal-tvl1-local, glocal-tvl1-residual, glocal-tvl1-mixed, "
                                "glocal-lme-local, glocal-lme-residual, glocal-lme-mixed)%s", v, "");
        for (int j = 0; j < i; j++)
            if (strcmp(c->sources[j], v) == 0) return bad(path, e, "source \"%s\" is listed twice%s", v, "");
        snprintf(c->sources[i], sizeof c->sources[i], "%s", v);
    }
    return 0;
}

static int load_fusions(exp_config *c, const char *path, const config_setting_t *s)
{
    if (config_setting_type(s) != CONFIG_TYPE_LIST)
        return bad(path, s, "fusions must be a list of groups: ( { name = ...; streams = [...]; weights = [...]; } )%s%s", "", "");
    int n = config_setting_length(s);
    if (n > EXP_MAX_FUSIONS) return bad(path, s, "at most 8 fusions%s%s", "", "");
    c->nfusions = n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
        exp_fusion *fu = &c->fusions[i];
        memset(fu, 0, sizeof *fu);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP)
            return bad(path, g, "each fusion must be a group { name = ...; streams = [...]; weights = [...]; }%s%s", "", "");
        const config_setting_t *st = NULL, *wt = NULL;
        for (int k = 0; k < config_setting_length(g); k++) {
            const config_setting_t *m = config_setting_get_elem(g, (unsigned)k);
            const char *nm = config_setting_name(m);
            if (strcmp(nm, "name") == 0) {
                const char *v = config_setting_get_string(m);
                if (!v || strlen(v) >= sizeof fu->name) return bad(path, m, "fusion name must be a short string%s%s", "", "");
                snprintf(fu->name, sizeof fu->name, "%s", v);
            } else if (strcmp(nm, "streams") == 0) {
                st = m;
            } else if (strcmp(nm, "weights") == 0) {
                wt = m;
            } else {
                return bad(path, m, "unknown key \"%s\" in a fusion (expected name, streams, weights)%s", nm, "");
            }
        }
        if (!st) return bad(path, g, "fusion needs streams = [ ... ]%s%s", "", "");
        int ns = config_setting_length(st);
        if (ns < 2 || ns > EXP_MAX_SOURCES) return bad(path, st, "a fusion combines 2 to 8 streams%s%s", "", "");
        fu->nstreams = ns;
        for (int k = 0; k < ns; k++) {
            const config_setting_t *e = config_setting_get_elem(st, (unsigned)k);
            const char *v = config_setting_get_string(e);
            if (!v) return bad(path, e, "streams must be strings%s%s", "", "");
            snprintf(fu->streams[k], sizeof fu->streams[k], "%s", v);
            fu->weights[k] = 1.0;
        }
        if (wt) {
            if (config_setting_length(wt) != ns)
                return bad(path, wt, "weights must have one number per stream%s%s", "", "");
            for (int k = 0; k < ns; k++) {
                const config_setting_t *e = config_setting_get_elem(wt, (unsigned)k);
                int ty = config_setting_type(e);
                double v = ty == CONFIG_TYPE_FLOAT ? config_setting_get_float(e)
                                                   : (double)config_setting_get_int64(e);
                if ((ty != CONFIG_TYPE_FLOAT && ty != CONFIG_TYPE_INT && ty != CONFIG_TYPE_INT64) || v < 0)
                    return bad(path, e, "weights must be numbers >= 0%s%s", "", "");
                fu->weights[k] = v;
            }
        }
        if (!fu->name[0]) {
            for (int k = 0; k < ns; k++) {
                strncat(fu->name, k ? "+" : "", sizeof fu->name - strlen(fu->name) - 1);
                strncat(fu->name, fu->streams[k], sizeof fu->name - strlen(fu->name) - 1);
            }
        }
    }
    return 0;
}

int exp_config_load(exp_config *c, const char *path)
{
    config_t cf;
    config_init(&cf);
    int rc = 0;
    if (!config_read_file(&cf, path)) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            rc = gl_error(GL_EIO, "%s: cannot read the config file", path);
        else
            rc = gl_error(GL_EFORMAT, "%s:%d: %s", path, config_error_line(&cf), config_error_text(&cf));
        goto done;
    }
    snprintf(c->path, sizeof c->path, "%s", path);
    config_setting_t *root = config_root_setting(&cf);
    const config_setting_t *sources = NULL, *fusions = NULL;
    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *key = config_setting_name(s);
        const field *f = find_field(NULL, key);
        if (!f) {
            rc = bad(path, s, "unknown key \"%s\" (expected name, dataset, motion, extract, classifier, "
                              "sources, fusions, ranks, threads)%s", key, "");
            goto done;
        }
        if (f->k == K_GROUP) {
            if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
                rc = bad(path, s, "%s must be a group { ... }%s", key, "");
                goto done;
            }
            for (int k = 0; k < config_setting_length(s); k++) {
                config_setting_t *m = config_setting_get_elem(s, (unsigned)k);
                const field *g = find_field(key, config_setting_name(m));
                char qual[128];
                snprintf(qual, sizeof qual, "%s.%s", key, config_setting_name(m));
                if (!g) {
                    rc = bad(path, m, "unknown key \"%s\"%s", qual, "");
                    goto done;
                }
                if ((rc = apply(c, path, g, m, qual)) < 0) goto done;
            }
        } else if (f->k == K_ARRAY_STR) {
            sources = s;
        } else if (f->k == K_LIST) {
            fusions = s;
        } else if ((rc = apply(c, path, f, s, key)) < 0) {
            goto done;
        }
    }
    if (sources && (rc = load_sources(c, path, sources)) < 0) goto done;
    if (fusions && (rc = load_fusions(c, path, fusions)) < 0) goto done;
    /* cross-field checks */
    if (c->ranks > 0 && c->motion_batch % c->ranks != 0) {
        rc = gl_error(GL_EINVAL, "%s: motion.batch (%d) must be a multiple of ranks (%d)", path, c->motion_batch, c->ranks);
        goto done;
    }
    for (int i = 0; i < c->nfusions; i++)
        for (int k = 0; k < c->fusions[i].nstreams; k++) {
            int found = 0;
            for (int j = 0; j < c->nsources; j++) found |= strcmp(c->sources[j], c->fusions[i].streams[k]) == 0;
            if (!found) {
                rc = bad(path, config_setting_get_elem(fusions, (unsigned)i),
                         "fusion stream \"%s\" is not one of the sources%s", c->fusions[i].streams[k], "");
                goto done;
            }
        }
done:
    config_destroy(&cf);
    return rc;
}

int exp_config_canonical(const exp_config *c, char *buf, size_t n)
{
    int k = snprintf(buf, n,
                     "name=%s\nkind=%s\nroot=%s\nlists=%s\nsplit=%d\nlabels=%d\nclasses=%d\nclips_per_class=%d\n"
                     "frames=%d\nsize=%dx%d\ncamera=%s\ntextures=%s\ndataset_seed=%d\n"
                     "motion_size=%dx%d\nmotion_minutes=%.17g\nmotion_steps=%ld\nmotion_batch=%d\n"
                     "motion_lr=%.17g\nmotion_seed=%d\nmotion_lme_start=%ld\nmotion_mask_start=%ld\nmotion_teacher=%s\nextract_size=%dx%d\nextract_stride=%d\n"
                     "arch=%s\nwidth=%d\nflip=%d\ndecode=%dx%d\ntest_segments=%d\nepochs=%d\nbatch=%d\nsegments=%d\nstack=%d\ntest_crops=%d\n"
                     "crop=%dx%d\nlr=%.17g\nweight_decay=%.17g\nlabel_smoothing=%.17g\ndropout=%.17g\n"
                     "optimizer=%s\nclassifier_seed=%d\nranks=%d\n",
                     c->name, c->kind, c->root, c->lists, c->split, c->labels, c->classes, c->clips_per_class,
                     c->frames, c->width, c->height, c->camera, c->textures, c->dataset_seed, c->motion_w,
                     c->motion_h, c->motion_minutes, c->motion_steps, c->motion_batch, c->motion_lr,
                     c->motion_seed, c->motion_lme_start, c->motion_mask_start, c->motion_teacher, c->extract_w, c->extract_h, c->extract_stride, c->arch,
                     c->width_mult, c->flip, c->decode_w, c->decode_h, c->test_segments, c->epochs, c->batch, c->segments, c->stack, c->test_crops,
                     c->crop_w, c->crop_h, c->lr, c->weight_decay, c->label_smoothing, c->dropout,
                     c->optimizer, c->classifier_seed, c->ranks);
    for (int i = 0; i < c->nsources && k > 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, "source=%s\n", c->sources[i]);
    for (int i = 0; i < c->nfusions && k > 0 && (size_t)k < n; i++) {
        k += snprintf(buf + k, n - (size_t)k, "fusion=%s", c->fusions[i].name);
        for (int j = 0; j < c->fusions[i].nstreams && (size_t)k < n; j++)
            k += snprintf(buf + k, n - (size_t)k, " %s:%.17g", c->fusions[i].streams[j], c->fusions[i].weights[j]);
        if ((size_t)k < n) k += snprintf(buf + k, n - (size_t)k, "\n");
    }
    if (k < 0 || (size_t)k >= n) return gl_error(GL_EINVAL, "config text does not fit in %zu bytes", n);
    return 0;
}
