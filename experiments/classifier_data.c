/* classifier_data.c — data options and sources of the classifier commands. */
#include "experiments/classifier_data.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

void cls_data_opts_default(cls_data_opts *o)
{
    memset(o, 0, sizeof *o);
    o->split_no = 1;
    snprintf(o->modality, sizeof o->modality, "rgb");
    o->stack = 5;      /* TSN flow stacks */
    o->frames = 1;
    o->segments = 3;   /* TSN training */
    o->size_w = o->size_h = 224;
    o->decode_w = 340;
    o->decode_h = 256;
    o->divide = 1.0;
    o->flip = 1;
}

static long m_pairs(void *ctx, long item) { return ((cls_data *)ctx)->pairs[item]; }
static int32_t m_label(void *ctx, long item) { return ((cls_data *)ctx)->labels[item]; }

static int m_open_worker(void *ctx, int worker, void **wctx)
{
    (void)worker;
    cache *c = NULL;
    int rc = cache_open(((cls_data *)ctx)->cache_path, (size_t)16 << 20, &c);
    *wctx = c;
    return rc;
}

static void m_close_worker(void *ctx, void *wctx)
{
    (void)ctx;
    cache *c = wctx;
    cache_close(&c);
}

static int m_read(void *ctx, void *wctx, long item, long off, int L, float *out)
{
    return cache_read_fields(wctx, ((cls_data *)ctx)->rows[item], off, L, out);
}

int cls_data_open(cls_data *d, const cls_data_opts *o, dataset_split split, const loader_aug *aug)
{
    memset(d, 0, sizeof *d);
    int rc = dataset_index_load(&d->idx, o->data, o->lists, o->split_no);
    if (rc < 0) return rc;
    if (!strcmp(o->modality, "rgb")) {
        loader_video_config vc = loader_video_config_default(d->idx, split);
        vc.segments = o->segments;
        vc.frames = o->frames;
        vc.decode_w = o->decode_w;
        vc.decode_h = o->decode_h;
        vc.aug = *aug;
        if ((rc = loader_source_video(&d->src, &vc)) < 0) goto fail;
        d->count = d->src.count;
        d->channels = 3 * o->frames;
        rc = GL_ENOMEM;
        if (!(d->clip_of = gl_malloc((size_t)d->count * sizeof *d->clip_of))) goto fail;
        long n = 0;
        for (long i = 0; i < d->idx->num_clips; i++) /* the source's order (loader_sources.c) */
            if (d->idx->clips[i].split == split && d->idx->clips[i].exists) d->clip_of[n++] = i;
        return 0;
    }
    if (strcmp(o->modality, "motion")) {
        rc = gl_error(GL_EINVAL, "modality '%s', expected rgb or motion", o->modality);
        goto fail;
    }
    if (!o->cache) {
        rc = gl_error(GL_EINVAL, "the motion stream needs a cache (--cache FILE)");
        goto fail;
    }
    cache *c = NULL;
    if ((rc = cache_open(o->cache, 0, &c)) < 0) goto fail;
    const cache_config *cc = cache_get_config(c);
    long n = d->idx->num_split[split];
    rc = GL_ENOMEM;
    if (!(d->cache_path = gl_strdup(o->cache)) || !(d->rows = gl_malloc((size_t)(n + 1) * sizeof *d->rows)) ||
        !(d->pairs = gl_malloc((size_t)(n + 1) * sizeof *d->pairs)) ||
        !(d->labels = gl_malloc((size_t)(n + 1) * sizeof *d->labels)) ||
        !(d->clip_of = gl_malloc((size_t)(n + 1) * sizeof *d->clip_of))) {
        cache_close(&c);
        goto fail;
    }
    for (long i = 0; i < d->idx->num_clips; i++) {
        const dataset_clip *cl = &d->idx->clips[i];
        if (cl->split != split) continue;
        long row;
        if (cache_find_name(c, cl->rel_path, &row) < 0 && cache_find_index(c, i, &row) < 0) {
            d->missing++;
            continue;
        }
        const cache_clip *cr = cache_get_clip(c, row);
        if (cr->pairs < 1) { d->missing++; continue; }
        d->rows[d->count] = row;
        d->pairs[d->count] = cr->pairs;
        d->labels[d->count] = cl->label;
        d->clip_of[d->count] = i;
        d->count++;
    }
    d->cache_channels = cc->channels;
    int fw = cc->width, fh = cc->height;
    cache_close(&c);
    gl_clear_error();
    if (d->count == 0) {
        rc = gl_error(GL_ENOTFOUND, "%s: none of the %ld %s clips of %s is in the cache", o->cache, n,
                      dataset_split_name(split), o->data);
        goto fail;
    }
    loader_motion_config mc = { .ctx = d, .count = d->count, .field_w = fw, .field_h = fh, .segments = o->segments,
                                .L = o->stack, .channels = d->cache_channels, .divide = (float)o->divide,
                                .aug = *aug, .pairs = m_pairs, .label = m_label, .open_worker = m_open_worker,
                                .close_worker = m_close_worker, .read = m_read };
    if ((rc = loader_source_motion(&d->src, &mc)) < 0) goto fail;
    d->channels = d->cache_channels * o->stack;
    return 0;
fail:
    cls_data_close(d);
    return rc;
}

void cls_data_close(cls_data *d)
{
    loader_source_free(&d->src);
    dataset_index_free(&d->idx);
    gl_free(d->clip_of);
    gl_free(d->cache_path);
    gl_free(d->rows);
    gl_free(d->pairs);
    gl_free(d->labels);
    memset(d, 0, sizeof *d);
}

const char *cls_data_item_name(const cls_data *d, long item)
{
    return d->idx->clips[d->clip_of[item]].rel_path;
}

int cls_data_opts_to_json(const cls_data_opts *o, char *buf, size_t n)
{
    int k = snprintf(buf, n,
                     "{\"modality\": \"%s\", \"split\": %d, \"stack\": %d, \"frames\": %d, \"segments\": %d, "
                     "\"size\": [%d, %d], \"decode\": [%d, %d], \"divide\": %.17g, \"flip\": %d}",
                     o->modality, o->split_no, o->stack, o->frames, o->segments, o->size_w, o->size_h, o->decode_w,
                     o->decode_h, o->divide, o->flip);
    return k < 0 || (size_t)k >= n ? gl_error(GL_EINVAL, "data options JSON: buffer too small") : 0;
}

int cls_data_opts_from_json(const char *json, cls_data_opts *o)
{
    json_object *root = json ? json_tokener_parse(json) : NULL, *d, *v;
    if (!root) return gl_error(GL_EFORMAT, "checkpoint config: not valid JSON");
    if (!json_object_object_get_ex(root, "data", &d)) {
        json_object_put(root);
        return gl_error(GL_EFORMAT, "checkpoint config: no \"data\" object (not written by glocal train-classifier?)");
    }
    if (json_object_object_get_ex(d, "modality", &v)) snprintf(o->modality, sizeof o->modality, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(d, "split", &v)) o->split_no = json_object_get_int(v);
    if (json_object_object_get_ex(d, "stack", &v)) o->stack = json_object_get_int(v);
    if (json_object_object_get_ex(d, "frames", &v)) o->frames = json_object_get_int(v);
    if (json_object_object_get_ex(d, "segments", &v)) o->segments = json_object_get_int(v);
    if (json_object_object_get_ex(d, "divide", &v)) o->divide = json_object_get_double(v);
    if (json_object_object_get_ex(d, "flip", &v)) o->flip = json_object_get_int(v);
    if (json_object_object_get_ex(d, "size", &v) && json_object_array_length(v) == 2) {
        o->size_w = json_object_get_int(json_object_array_get_idx(v, 0));
        o->size_h = json_object_get_int(json_object_array_get_idx(v, 1));
    }
    if (json_object_object_get_ex(d, "decode", &v) && json_object_array_length(v) == 2) {
        o->decode_w = json_object_get_int(json_object_array_get_idx(v, 0));
        o->decode_h = json_object_get_int(json_object_array_get_idx(v, 1));
    }
    json_object_put(root);
    return 0;
}
