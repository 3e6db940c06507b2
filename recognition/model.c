/* model.c — the ResNet backbone, TSN head and consensus, configs, and loading
 * pretrained weights with TSN's cross-modality initialisation. */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "recognition/classifier.h"

/* ---- config -------------------------------------------------------------------- */

int classifier_config_preset(const char *name, int in_channels, int num_classes, classifier_config *c)
{
    memset(c, 0, sizeof *c);
    c->in_channels = in_channels;
    c->num_classes = num_classes;
    c->stem_kernel = 7;
    c->stem_stride = 2;
    c->stem_pool = 1;
    c->width = 64;
    c->stages = 4;
    c->dropout = 0.5;
    if (!name) return gl_error(GL_EINVAL, "classifier preset: NULL name");
    if (!strcmp(name, "tiny")) {
        c->width = 8; c->stages = 2; c->blocks[0] = c->blocks[1] = 1;
        c->stem_kernel = 3; c->stem_stride = 1; c->stem_pool = 0; c->dropout = 0;
    } else if (!strcmp(name, "small")) {
        c->width = 16; c->stages = 3; c->blocks[0] = c->blocks[1] = c->blocks[2] = 1;
        c->stem_kernel = 3; c->stem_stride = 1; c->stem_pool = 0; c->dropout = 0.2;
    } else if (!strcmp(name, "resnet10") || !strcmp(name, "resnet18")) {
        for (int i = 0; i < 4; i++) c->blocks[i] = name[6] == '1' && name[7] == '0' ? 1 : 2;
    } else if (!strcmp(name, "resnet34") || !strcmp(name, "resnet50")) {
        int b[4] = { 3, 4, 6, 3 };
        memcpy(c->blocks, b, sizeof b);
        c->bottleneck = name[6] == '5';
    } else {
        return gl_error(GL_ENOTFOUND, "unknown architecture '%s' (tiny, small, resnet10, resnet18, resnet34, resnet50)", name);
    }
    snprintf(c->arch, sizeof c->arch, "%s", name);
    return classifier_config_validate(c);
}

int classifier_config_validate(const classifier_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "classifier config: NULL");
    if (c->in_channels < 1) return gl_error(GL_EINVAL, "classifier config: in_channels %d, expected >= 1", c->in_channels);
    if (c->num_classes < 2) return gl_error(GL_EINVAL, "classifier config: num_classes %d, expected >= 2", c->num_classes);
    if (c->width < 1 || c->width > 4096) return gl_error(GL_EINVAL, "classifier config: width %d, expected 1..4096", c->width);
    if (c->stages < 1 || c->stages > 4) return gl_error(GL_EINVAL, "classifier config: stages %d, expected 1..4", c->stages);
    for (int s = 0; s < c->stages; s++)
        if (c->blocks[s] < 1 || c->blocks[s] > 64) return gl_error(GL_EINVAL, "classifier config: blocks[%d] = %d, expected 1..64", s, c->blocks[s]);
    if (c->stem_kernel < 1 || c->stem_kernel % 2 == 0) return gl_error(GL_EINVAL, "classifier config: stem_kernel %d, expected odd >= 1", c->stem_kernel);
    if (c->stem_stride < 1 || c->stem_stride > 4) return gl_error(GL_EINVAL, "classifier config: stem_stride %d, expected 1..4", c->stem_stride);
    if (!(c->dropout >= 0 && c->dropout < 1)) return gl_error(GL_EINVAL, "classifier config: dropout %g, expected in [0, 1)", c->dropout);
    return 0;
}

int classifier_config_to_json(const classifier_config *c, char *buf, size_t n)
{
    int k = snprintf(buf, n,
                     "{\"arch\": \"%s\", \"in_channels\": %d, \"num_classes\": %d, \"width\": %d, \"stages\": %d, "
                     "\"blocks\": [%d, %d, %d, %d], \"bottleneck\": %d, \"stem_kernel\": %d, \"stem_stride\": %d, "
                     "\"stem_pool\": %d, \"dropout\": %.17g}",
                     c->arch, c->in_channels, c->num_classes, c->width, c->stages, c->blocks[0], c->blocks[1],
                     c->blocks[2], c->blocks[3], c->bottleneck, c->stem_kernel, c->stem_stride, c->stem_pool,
                     c->dropout);
    if (k < 0 || (size_t)k >= n) return gl_error(GL_EINVAL, "classifier_config_to_json: buffer of %zu bytes too small", n);
    return 0;
}

static int json_int(json_object *o, const char *key, int *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return gl_error(GL_EFORMAT, "classifier config JSON: missing or non-integer \"%s\"", key);
    *out = json_object_get_int(v);
    return 0;
}

int classifier_config_from_json(const char *json, classifier_config *c)
{
    memset(c, 0, sizeof *c);
    json_object *root = json ? json_tokener_parse(json) : NULL;
    if (!root) return gl_error(GL_EFORMAT, "classifier config: not valid JSON");
    int rc = 0;
    json_object *o = root, *v;
    if (json_object_object_get_ex(root, "classifier", &v)) o = v;
    if ((rc = json_int(o, "in_channels", &c->in_channels)) < 0 || (rc = json_int(o, "num_classes", &c->num_classes)) < 0 ||
        (rc = json_int(o, "width", &c->width)) < 0 || (rc = json_int(o, "stages", &c->stages)) < 0 ||
        (rc = json_int(o, "bottleneck", &c->bottleneck)) < 0 || (rc = json_int(o, "stem_kernel", &c->stem_kernel)) < 0 ||
        (rc = json_int(o, "stem_stride", &c->stem_stride)) < 0 || (rc = json_int(o, "stem_pool", &c->stem_pool)) < 0)
        goto done;
    if (!json_object_object_get_ex(o, "blocks", &v) || !json_object_is_type(v, json_type_array) ||
        json_object_array_length(v) != 4) {
        rc = gl_error(GL_EFORMAT, "classifier config JSON: \"blocks\" must be an array of 4 integers");
        goto done;
    }
    for (int i = 0; i < 4; i++) c->blocks[i] = json_object_get_int(json_object_array_get_idx(v, (size_t)i));
    if (json_object_object_get_ex(o, "dropout", &v)) c->dropout = json_object_get_double(v);
    if (json_object_object_get_ex(o, "arch", &v)) snprintf(c->arch, sizeof c->arch, "%s", json_object_get_string(v));
    rc = classifier_config_validate(c);
done:
    json_object_put(root);
    return rc;
}

/* ---- model ----------------------------------------------------------------------- */

typedef struct {
    nn_tensor *w;                      /* (cout, cin, k, k), no bias */
    nn_tensor *g, *b, *rm, *rv, *nbt;  /* batch norm (cout) */
    int k, stride, pad;
} convbn;

typedef struct {
    convbn c1, c2, c3, down;
    int has_c3, has_down;
} block;

struct classifier {
    classifier_config cfg;
    nn_params p;
    convbn stem;
    block *blocks;
    int nblocks;
    nn_tensor *fc_w, *fc_b;           /* (classes, F), (classes) */
    int feat;
};

static int add_buffer(nn_params *p, nn_tensor **out, const char *name, int64_t n, double v, nn_dtype dt)
{
    int64_t s[1] = { n };
    nn_tensor *t = NULL;
    int rc = nn_full(&t, s, n < 0 ? 0 : 1, v, dt);
    if (rc < 0) return rc;
    *out = t;
    if ((rc = nn_params_add(p, name, t, 1, 1)) < 0) *out = NULL;
    return rc;
}

/* torchvision naming: <conv>.weight and <bn>.{weight,bias,running_mean,running_var,num_batches_tracked} */
static int convbn_init(convbn *c, nn_params *p, const char *conv, const char *bn, int cin, int cout, int k, int stride)
{
    memset(c, 0, sizeof *c);
    c->k = k;
    c->stride = stride;
    c->pad = k / 2;
    char name[256];
    int64_t ws[4] = { cout, cin, k, k }, cs[1] = { cout };
    int rc;
    snprintf(name, sizeof name, "%s.weight", conv);
    if ((rc = nn_params_new(p, &c->w, name, ws, 4, NN_INIT_KAIMING_NORMAL, 0)) < 0) return rc;
    snprintf(name, sizeof name, "%s.weight", bn);
    if ((rc = nn_params_new(p, &c->g, name, cs, 1, NN_INIT_ONES, 1)) < 0) return rc;
    snprintf(name, sizeof name, "%s.bias", bn);
    if ((rc = nn_params_new(p, &c->b, name, cs, 1, NN_INIT_ZEROS, 1)) < 0) return rc;
    snprintf(name, sizeof name, "%s.running_mean", bn);
    if ((rc = add_buffer(p, &c->rm, name, cout, 0.0, NN_F32)) < 0) return rc;
    snprintf(name, sizeof name, "%s.running_var", bn);
    if ((rc = add_buffer(p, &c->rv, name, cout, 1.0, NN_F32)) < 0) return rc;
    snprintf(name, sizeof name, "%s.num_batches_tracked", bn);
    return add_buffer(p, &c->nbt, name, -1, 0.0, NN_I64);
}

static int convbn_forward(nn_tensor **out, const convbn *c, const nn_tensor *x, int training, int relu)
{
    nn_tensor *y = NULL, *z = NULL;
    *out = NULL;
    int rc = nn_conv2d(&y, x, c->w, NULL, c->stride, c->pad, 1, 1);
    if (rc < 0) goto fail;
    if ((rc = nn_batch_norm(&z, y, c->g, c->b, c->rm, c->rv, training, 0.1, 1e-5)) < 0) goto fail;
    if (training) {
        nn_tensor *one = NULL;
        if ((rc = nn_ones_like(&one, c->nbt)) < 0) goto fail;
        rc = nn_add_(c->nbt, one, 1.0);
        nn_free(&one);
        if (rc < 0) goto fail;
    }
    if (relu) rc = nn_unary(out, NN_RELU, z);
    else { *out = z; z = NULL; }
fail:
    nn_free(&y);
    nn_free(&z);
    return rc;
}

int classifier_new(classifier **out, const classifier_config *cfg)
{
    if (!out) return gl_error(GL_EINVAL, "classifier_new: NULL argument");
    *out = NULL;
    int rc = classifier_config_validate(cfg);
    if (rc < 0) return rc;
    classifier *c = gl_calloc(1, sizeof *c);
    if (!c) return GL_ENOMEM;
    c->cfg = *cfg;
    nn_params_init(&c->p);
    int nb = 0;
    for (int s = 0; s < cfg->stages; s++) nb += cfg->blocks[s];
    rc = GL_ENOMEM;
    if (!(c->blocks = gl_calloc((size_t)nb, sizeof *c->blocks))) goto fail;
    if ((rc = convbn_init(&c->stem, &c->p, "conv1", "bn1", cfg->in_channels, cfg->width, cfg->stem_kernel, cfg->stem_stride)) < 0)
        goto fail;
    int exp = cfg->bottleneck ? 4 : 1, inplanes = cfg->width;
    for (int s = 0; s < cfg->stages; s++) {
        int planes = cfg->width << s;
        for (int j = 0; j < cfg->blocks[s]; j++) {
            block *b = &c->blocks[c->nblocks++];
            int stride = (s > 0 && j == 0) ? 2 : 1;
            char cv[64], bn[64];
#define NAMES(k) (snprintf(cv, sizeof cv, "layer%d.%d.conv%d", s + 1, j, k), snprintf(bn, sizeof bn, "layer%d.%d.bn%d", s + 1, j, k))
            if (cfg->bottleneck) {
                NAMES(1);
                if ((rc = convbn_init(&b->c1, &c->p, cv, bn, inplanes, planes, 1, 1)) < 0) goto fail;
                NAMES(2);
                if ((rc = convbn_init(&b->c2, &c->p, cv, bn, planes, planes, 3, stride)) < 0) goto fail;
                NAMES(3);
                if ((rc = convbn_init(&b->c3, &c->p, cv, bn, planes, planes * 4, 1, 1)) < 0) goto fail;
                b->has_c3 = 1;
            } else {
                NAMES(1);
                if ((rc = convbn_init(&b->c1, &c->p, cv, bn, inplanes, planes, 3, stride)) < 0) goto fail;
                NAMES(2);
                if ((rc = convbn_init(&b->c2, &c->p, cv, bn, planes, planes, 3, 1)) < 0) goto fail;
            }
#undef NAMES
            if (stride != 1 || inplanes != planes * exp) {
                snprintf(cv, sizeof cv, "layer%d.%d.downsample.0", s + 1, j);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", s + 1, j);
                if ((rc = convbn_init(&b->down, &c->p, cv, bn, inplanes, planes * exp, 1, stride)) < 0) goto fail;
                b->has_down = 1;
            }
            inplanes = planes * exp;
        }
    }
    c->feat = inplanes;
    int64_t ws[2] = { cfg->num_classes, inplanes }, bs[1] = { cfg->num_classes };
    if ((rc = nn_params_new(&c->p, &c->fc_w, "fc.weight", ws, 2, NN_INIT_KAIMING_UNIFORM, 0)) < 0) goto fail;
    /* torch.nn.Linear's bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    if ((rc = nn_params_new(&c->p, &c->fc_b, "fc.bias", bs, 1, NN_INIT_ZEROS, 1)) < 0) goto fail;
    double bound = 1.0 / sqrt((double)inplanes);
    if ((rc = nn_uniform_(c->fc_b, -bound, bound)) < 0) goto fail;
    *out = c;
    return 0;
fail:
    classifier_free(&c);
    return rc;
}

void classifier_free(classifier **cp)
{
    if (!cp || !*cp) return;
    nn_params_free(&(*cp)->p);
    gl_free((*cp)->blocks);
    gl_free(*cp);
    *cp = NULL;
}

const classifier_config *classifier_get_config(const classifier *c) { return &c->cfg; }
nn_params *classifier_params(classifier *c) { return &c->p; }
int classifier_feature_dim(const classifier *c) { return c->feat; }

int classifier_features(nn_tensor **feat, classifier *c, const nn_tensor *x, int training)
{
    *feat = NULL;
    nn_scope *sc = NULL;
    int rc = nn_scope_begin(&sc);
    if (rc < 0) return rc;
    nn_tensor *h, *t, *a, *r, *pooled;
    if ((rc = convbn_forward(&h, &c->stem, x, training, 1)) < 0) goto fail;
    if (c->cfg.stem_pool && (rc = nn_max_pool2d(&h, h, 3, 2, 1)) < 0) goto fail;
    for (int i = 0; i < c->nblocks; i++) {
        const block *b = &c->blocks[i];
        if ((rc = convbn_forward(&a, &b->c1, h, training, 1)) < 0) goto fail;
        if ((rc = convbn_forward(&t, &b->c2, a, training, b->has_c3)) < 0) goto fail;
        if (b->has_c3 && (rc = convbn_forward(&t, &b->c3, t, training, 0)) < 0) goto fail;
        if (b->has_down) {
            if ((rc = convbn_forward(&r, &b->down, h, training, 0)) < 0) goto fail;
        } else {
            r = h;
        }
        if ((rc = nn_add(&t, t, r)) < 0) goto fail;
        if ((rc = nn_unary(&h, NN_RELU, t)) < 0) goto fail;
    }
    if ((rc = nn_adaptive_avg_pool2d(&pooled, h, 1, 1)) < 0) goto fail;
    if ((rc = nn_flatten(feat, pooled, 1, -1)) < 0) goto fail;
    nn_scope_keep(sc, *feat);
fail:
    nn_scope_end(&sc);
    if (rc < 0) *feat = NULL;
    return rc;
}

int classifier_head(nn_tensor **logits, const nn_tensor *feat, const nn_tensor *w, const nn_tensor *b, int S,
                    double dropout, int training)
{
    *logits = NULL;
    int64_t M = nn_size(feat, 0);
    if (S < 1 || M % S) return gl_error(GL_EINVAL, "classifier_head: %lld snippets are not a multiple of %d segments", (long long)M, S);
    nn_scope *sc = NULL;
    int rc = nn_scope_begin(&sc);
    if (rc < 0) return rc;
    nn_tensor *d, *y, *v;
    if ((rc = nn_dropout(&d, feat, dropout, training && dropout > 0)) < 0) goto fail;
    if ((rc = nn_linear(&y, d, w, b)) < 0) goto fail;
    int64_t shape[3] = { M / S, S, nn_size(w, 0) };
    if ((rc = nn_reshape(&v, y, shape, 3)) < 0) goto fail;
    int64_t dim[1] = { 1 };
    if ((rc = nn_mean(logits, v, dim, 1, 0)) < 0) goto fail; /* TSN average consensus */
    nn_scope_keep(sc, *logits);
fail:
    nn_scope_end(&sc);
    if (rc < 0) *logits = NULL;
    return rc;
}

int classifier_forward(nn_tensor **logits, classifier *c, const nn_tensor *x, int training)
{
    *logits = NULL;
    int64_t sh[NN_MAX_DIMS];
    int nd = nn_shape(x, sh);
    if (nd != 5 || sh[2] != c->cfg.in_channels) {
        char b[128];
        return gl_error(GL_EINVAL, "classifier_forward: input %s, expected [N, S, %d, H, W]", nn_shape_str(x, b, sizeof b),
                        c->cfg.in_channels);
    }
    nn_scope *sc = NULL;
    int rc = nn_scope_begin(&sc);
    if (rc < 0) return rc;
    nn_tensor *flat, *feat;
    int64_t fs[4] = { sh[0] * sh[1], sh[2], sh[3], sh[4] };
    if ((rc = nn_reshape(&flat, x, fs, 4)) < 0) goto fail;
    if ((rc = classifier_features(&feat, c, flat, training)) < 0) goto fail;
    if ((rc = classifier_head(logits, feat, c->fc_w, c->fc_b, (int)sh[1], c->cfg.dropout, training)) < 0) goto fail;
    nn_scope_keep(sc, *logits);
fail:
    nn_scope_end(&sc);
    if (rc < 0) *logits = NULL;
    return rc;
}

/* ---- pretrained weights -------------------------------------------------------------- */

static void rep_add(char *report, size_t n, const char *fmt, const char *a, long long x, long long y)
{
    if (!report || !n) return;
    size_t len = strlen(report);
    if (len + 1 >= n) return;
    snprintf(report + len, n - len, fmt, a, x, y);
}

/* Adapts tensor *t read from the file to model tensor `dst` (name `name`)
 * and copies it in: the same shape as it is, conv1.weight of 3 input channels
 * by TSN's cross-modality init; anything else is a problem (listed in probs)
 * or, for the classifier (fc.*), skipped and reported. */
static int load_one(nn_tensor *dst, const char *name, const char *dpath, nn_tensor **t, char *report,
                    size_t rn, char *probs, size_t pn, int *problems)
{
    int64_t d[NN_MAX_DIMS], ms[NN_MAX_DIMS];
    int nd = nn_shape(*t, d), mnd = nn_shape(dst, ms);
    nn_tensor *m = NULL, *e = NULL, *c = NULL;
    int same = nd == mnd, rc = 0;
    for (int k = 0; same && k < nd; k++) same = d[k] == ms[k];
    int cross = !same && !strcmp(name, "conv1.weight") && nd == 4 && d[1] == 3 && d[0] == ms[0] &&
                d[2] == ms[2] && d[3] == ms[3];
    int fc_skip = !same && !strncmp(name, "fc.", 3) && nd >= 1 && nd == mnd;
    if (!same && !cross) {
        if (fc_skip) {
            rep_add(report, rn, "skipped %s: %lld classes in the file, %lld in the model (fresh init)\n", name,
                    (long long)d[0], (long long)ms[0]);
            return 0;
        }
        (*problems)++;
        size_t l = strlen(probs);
        snprintf(probs + l, pn - l, "\n  shape differs: %s (rank %d in the file)", dpath, nd);
        return 0;
    }
    /* the model's integer buffers (num_batches_tracked) as int64, the rest as float32 */
    nn_dtype dt = nn_get_dtype(dst) == NN_I64 ? NN_I64 : NN_F32;
    if (nn_get_dtype(*t) != dt) {
        if ((rc = nn_to_dtype(&c, *t, dt)) < 0) return rc;
        nn_free(t);
        *t = c;
    }
    if (cross) {
        /* TSN cross-modality init (Wang et al. 2016, sec. 3.2): average the
         * RGB filters over their 3 channels, replicate over the new ones. */
        int64_t dim[1] = { 1 };
        if ((rc = nn_mean(&m, *t, dim, 1, 1)) < 0) goto done;
        if ((rc = nn_expand(&e, m, ms, 4)) < 0) goto done;
        if ((rc = nn_contiguous(&c, e)) < 0) goto done;
        nn_free(t);
        *t = c;
        rep_add(report, rn, "%s: cross-modality init, RGB filters averaged over 3 channels and replicated over %lld channels\n",
                name, (long long)ms[1], 0LL);
    }
    int prev = nn_grad_mode_set(0);
    rc = nn_copy_(dst, *t);
    nn_grad_mode_set(prev);
done:
    nn_free(&m);
    nn_free(&e);
    return rc;
}

int classifier_load_pretrained(classifier *c, const char *path, char *report, size_t rn)
{
    if (!c || !path) return gl_error(GL_EINVAL, "classifier_load_pretrained: NULL argument");
    if (report && rn) report[0] = 0;
    if (access(path, R_OK) != 0) return gl_error(GL_EIO, "%s: cannot read the weights file", path);
    nn_params *p = &c->p;
    int rc = 0, problems = 0;
    char probs[2048] = "";
    char (*dpath)[300] = gl_calloc((size_t)p->n + 1, sizeof *dpath);
    const char **names = gl_calloc((size_t)p->n + 1, sizeof *names);
    nn_tensor **ts = gl_calloc((size_t)p->n + 1, sizeof *ts);
    if (!dpath || !names || !ts) { rc = GL_ENOMEM; goto done; }
    for (int i = 0; i < p->n; i++) {
        snprintf(dpath[i], sizeof dpath[i], "%s/%s", p->is_buffer[i] ? "buffers" : "params", p->names[i]);
        names[i] = dpath[i];
    }
    if ((rc = nn_checkpoint_read_tensors(path, names, p->n, ts)) < 0) goto done;
    for (int i = 0; i < p->n; i++) {
        const char *name = p->names[i];
        if (!ts[i]) {
            size_t nl = strlen(name), sl = strlen("num_batches_tracked");
            if (nl >= sl && !strcmp(name + nl - sl, "num_batches_tracked")) continue; /* older exports lack it */
            problems++;
            size_t l = strlen(probs);
            snprintf(probs + l, sizeof probs - l, "\n  missing: %s", dpath[i]);
            continue;
        }
        rc = load_one(p->tensors[i], name, dpath[i], &ts[i], report, rn, probs, sizeof probs, &problems);
        nn_free(&ts[i]);
        if (rc < 0) goto done;
    }
    if (problems) rc = gl_error(GL_EFORMAT, "%s: %d parameter%s do not fit the model:%s", path, problems, problems == 1 ? "" : "s", probs);
done:
    for (int i = 0; ts && i < p->n; i++) nn_free(&ts[i]);
    gl_free(ts);
    gl_free(names);
    gl_free(dpath);
    return rc;
}

int classifier_checkpoint_config(const char *path, char **json)
{
    return nn_checkpoint_read_config(path, json);
}
