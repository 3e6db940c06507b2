/*
 * cache_merge.c — joining motion caches: cache_merge, and the merge that
 * cache_writer_finish runs over the spool. Chunks of /fields are copied as
 * they are (compressed and checksummed) when the source has our layout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/cache_private.h"

/* ---- merge ---------------------------------------------------------------- */

typedef struct {
    cache_clip row;
    int input;
} merge_clip;

typedef struct { /* a row of /errors or /warnings */
    cache_error row;
    int input;
} merge_error;

static int cmp_merge_clip(const void *a, const void *b)
{
    const merge_clip *x = a, *y = b;
    return (x->row.index > y->row.index) - (x->row.index < y->row.index);
}

static int cmp_merge_error(const void *a, const void *b)
{
    const merge_error *x = a, *y = b;
    return (x->row.index > y->row.index) - (x->row.index < y->row.index);
}

/* Copies the fields (and homographies) of row `i` of src to the end of o. */
static int copy_clip(cache_out *o, const char *opath, cache *src, long i, void **buf, size_t *bufn)
{
    const cache_clip *ci = &src->clips[i];
    size_t per = (size_t)o->cfg.channels * (size_t)o->cfg.height * (size_t)o->cfg.width;
    int rc;
    if (ci->pairs < 0 || ci->offset < 0 || ci->offset + ci->pairs > src->npairs)
        return gl_error(GL_EFORMAT, "%s: clip '%s' rows %lld..%lld are outside /fields (%ld rows)",
                        src->path, ci->name, (long long)ci->offset,
                        (long long)(ci->offset + ci->pairs - 1), src->npairs);
    if ((rc = cache_out_extend(o, opath, o->pairs + ci->pairs)) < 0) return rc;
    for (long p = 0; p < ci->pairs; p++) {
        hsize_t so[4] = { (hsize_t)(ci->offset + p), 0, 0, 0 }, dof[4] = { (hsize_t)(o->pairs + p), 0, 0, 0 };
        if (src->raw_ok) { /* the compressed, checksummed chunk as it is */
            hsize_t nbytes = 0;
            uint32_t mask = 0;
            if (H5Dget_chunk_storage_size(src->fields, so, &nbytes) < 0 || nbytes == 0)
                return cache_h5_fail("%s: chunk of /fields row %lld is missing", src->path,
                               (long long)so[0]);
            if (*bufn < nbytes) {
                void *q = gl_realloc(*buf, nbytes);
                if (!q) return GL_ENOMEM;
                *buf = q;
                *bufn = nbytes;
            }
            if (H5Dread_chunk(src->fields, H5P_DEFAULT, so, &mask, *buf) < 0)
                return cache_h5_fail("%s: cannot read the chunk of /fields row %lld", src->path,
                               (long long)so[0]);
            if (H5Dwrite_chunk(o->fields, H5P_DEFAULT, mask, dof, nbytes, *buf) < 0)
                return cache_h5_fail("%s: cannot write the chunk of /fields row %lld", opath,
                               (long long)dof[0]);
        } else { /* another layout: decode and encode */
            if (*bufn < per * 2) {
                void *q = gl_realloc(*buf, per * 2);
                if (!q) return GL_ENOMEM;
                *buf = q;
                *bufn = per * 2;
            }
            if ((rc = cache_fields_read_raw(src, (long)so[0], 1, *buf)) < 0) return rc;
            if (cache_rows_write(o->fields, o->ftype, 4, (long)dof[0], 1, *buf) < 0)
                return cache_h5_fail("%s: cannot write /fields row %lld", opath, (long long)dof[0]);
        }
    }
    if (o->homs >= 0 && ci->pairs > 0) {
        float *h = gl_malloc(sizeof *h * 9 * (size_t)ci->pairs);
        if (!h) return GL_ENOMEM;
        rc = 0;
        if (cache_rows_read(src->homs, H5T_NATIVE_FLOAT, 3, (long)ci->offset, ci->pairs, h) < 0)
            rc = cache_h5_fail("%s: cannot read the homographies of '%s'", src->path, ci->name);
        else if (cache_rows_write(o->homs, H5T_NATIVE_FLOAT, 3, o->pairs, ci->pairs, h) < 0)
            rc = cache_h5_fail("%s: cannot write homographies", opath);
        gl_free(h);
        if (rc < 0) return rc;
    }
    o->pairs += ci->pairs;
    return 0;
}

/* What pass 1 of a merge learns from the inputs' tables. */
typedef struct {
    merge_clip *clips;   /* every input's clips, then sorted by index */
    merge_error *errs;   /* idem, the recorded failures */
    merge_error *warns;  /* idem, the warnings about stored clips */
    long nc, ne, nw, capc, cape, capw;
    cache_config cfg;    /* the first input's, shard set to the union */
    int nshard;
    uint8_t *uni;        /* union of the inputs' shard sets */
} merge_plan;

static void merge_plan_free(merge_plan *m)
{
    gl_free(m->uni);
    gl_free(m->warns);
    gl_free(m->errs);
    gl_free(m->clips);
    memset(m, 0, sizeof *m);
}

/* rows (capacity *cap) with room for `need` rows of `size` bytes: rows
 * itself, or a larger (never a NULL) block; NULL only when out of memory
 * (rows stays valid). */
static void *grow(void *rows, long *cap, long need, size_t size)
{
    if (rows && need <= *cap) return rows;
    long n = need * 2 + 16;
    void *p = gl_realloc(rows, size * (size_t)n);
    if (p) *cap = n;
    return p;
}

/* Adds the tables of one open input (number i) to the plan. */
static int merge_add_input(merge_plan *m, const cache *src, int i)
{
    merge_clip *c = grow(m->clips, &m->capc, m->nc + src->nclips, sizeof *c);
    if (!c) return GL_ENOMEM;
    m->clips = c;
    merge_error *e = grow(m->errs, &m->cape, m->ne + src->nerrors, sizeof *e);
    if (!e) return GL_ENOMEM;
    m->errs = e;
    merge_error *w = grow(m->warns, &m->capw, m->nw + src->nwarnings, sizeof *w);
    if (!w) return GL_ENOMEM;
    m->warns = w;
    for (long k = 0; k < src->nclips; k++) m->clips[m->nc++] = (merge_clip){ src->clips[k], i };
    for (long k = 0; k < src->nerrors; k++) m->errs[m->ne++] = (merge_error){ src->errors[k], i };
    for (long k = 0; k < src->nwarnings; k++) m->warns[m->nw++] = (merge_error){ src->warnings[k], i };
    return 0;
}

/* Pass 1: reads every input's configuration and tables; they must agree
 * with `expect` (shard included) or, without it, with the first input. */
static int merge_gather(merge_plan *m, const char *const *inputs, int n, const cache_config *expect)
{
    cache *src = NULL;
    uint8_t *set = NULL;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if ((rc = cache_open(inputs[i], (size_t)1 << 20, &src)) < 0) goto fail;
        const cache_config *sc = cache_get_config(src);
        int sn;
        if ((rc = cache_shard_parse(sc->shard, &sn, &set)) < 0) goto fail;
        if (i == 0) {
            m->cfg = *sc;
            m->nshard = sn;
            if (!(m->uni = gl_calloc((size_t)sn, 1))) { rc = GL_ENOMEM; goto fail; }
        }
        const char *diff = expect ? cache_config_diff(expect, sc, 1) : cache_config_diff(&m->cfg, sc, 0);
        if (diff) {
            rc = gl_error(GL_EINVAL, "%s: its %s differs from %s", inputs[i], diff,
                          expect ? "this run's" : inputs[0]);
            goto fail;
        }
        if (sn != m->nshard) {
            rc = gl_error(GL_EINVAL, "%s: shard %s is not one of /%d like %s", inputs[i], sc->shard,
                          m->nshard, inputs[0]);
            goto fail;
        }
        for (int k = 0; k < sn; k++) m->uni[k] |= set[k];
        gl_free(set);
        set = NULL;
        if ((rc = merge_add_input(m, src, i)) < 0) goto fail;
        cache_close(&src);
    }
fail:
    gl_free(set);
    cache_close(&src);
    return rc;
}

/* Sorts the plan's rows by index and refuses a clip found twice, or both
 * stored and recorded as failed, and a warning twice or about a clip no input
 * stores; then sets the union shard. */
static int merge_check(merge_plan *m, const char *const *inputs)
{
    merge_clip *clips = m->clips;
    merge_error *errs = m->errs, *warns = m->warns;
    long nc = m->nc, ne = m->ne, nw = m->nw;
    if (nc > 0) qsort(clips, (size_t)nc, sizeof *clips, cmp_merge_clip);
    if (ne > 0) qsort(errs, (size_t)ne, sizeof *errs, cmp_merge_error);
    if (nw > 0) qsort(warns, (size_t)nw, sizeof *warns, cmp_merge_error);
    for (long i = 1; i < nc; i++)
        if (clips[i].row.index == clips[i - 1].row.index)
            return gl_error(GL_EINVAL, "clip %lld (%s) is in both %s and %s", (long long)clips[i].row.index,
                            clips[i].row.name, inputs[clips[i - 1].input], inputs[clips[i].input]);
    for (long i = 1; i < ne; i++)
        if (errs[i].row.index == errs[i - 1].row.index)
            return gl_error(GL_EINVAL, "failed clip %lld (%s) is in both %s and %s",
                            (long long)errs[i].row.index, errs[i].row.name, inputs[errs[i - 1].input],
                            inputs[errs[i].input]);
    for (long i = 0, j = 0; i < nc && j < ne;) { /* a clip both done and failed */
        if (clips[i].row.index == errs[j].row.index)
            return gl_error(GL_EINVAL, "clip %lld (%s) is stored in %s and recorded as failed in %s",
                            (long long)clips[i].row.index, clips[i].row.name, inputs[clips[i].input],
                            inputs[errs[j].input]);
        if (clips[i].row.index < errs[j].row.index) i++;
        else j++;
    }
    for (long i = 0, j = 0; j < nw; j++) { /* each warning: once, about a stored clip */
        if (j > 0 && warns[j].row.index == warns[j - 1].row.index)
            return gl_error(GL_EINVAL, "the warning about clip %lld (%s) is in both %s and %s",
                            (long long)warns[j].row.index, warns[j].row.name, inputs[warns[j - 1].input],
                            inputs[warns[j].input]);
        while (i < nc && clips[i].row.index < warns[j].row.index) i++;
        if (i == nc || clips[i].row.index != warns[j].row.index)
            return gl_error(GL_EINVAL, "%s: a warning about clip %lld (%s), which no input stores",
                            inputs[warns[j].input], (long long)warns[j].row.index, warns[j].row.name);
    }
    return cache_shard_format(m->cfg.shard, sizeof m->cfg.shard, m->nshard, m->uni);
}

int cache_merge_into(const char *out, const char *const *inputs, int n, const cache_config *expect)
{
    merge_plan m;
    cache_clip *orows = NULL;
    cache_error *oerrs = NULL, *owarns = NULL;
    cache *src = NULL;
    char *tmp = NULL;
    void *buf = NULL;
    size_t bufn = 0;
    int rc, src_input = -1, created = 0;
    cache_out o;
    memset(&m, 0, sizeof m);
    memset(&o, 0, sizeof o);
    o.f = o.fields = o.homs = o.ftype = -1;
    if (n < 1) return gl_error(GL_EINVAL, "merge into %s: no inputs", out);
    if ((rc = merge_gather(&m, inputs, n, expect)) < 0 || (rc = merge_check(&m, inputs)) < 0) goto fail;
    /* pass 2: copy in index order */
    if (!(tmp = cache_str_cat(out, ".tmp"))) { rc = GL_ENOMEM; goto fail; }
    if ((rc = cache_out_create(&o, tmp, &m.cfg)) < 0) goto fail;
    created = 1;
    orows = gl_malloc(sizeof *orows * (size_t)(m.nc + 1));
    oerrs = gl_malloc(sizeof *oerrs * (size_t)(m.ne + 1));
    owarns = gl_malloc(sizeof *owarns * (size_t)(m.nw + 1));
    if (!orows || !oerrs || !owarns) { rc = GL_ENOMEM; goto fail; }
    for (long i = 0; i < m.nc; i++) {
        if (m.clips[i].input != src_input) {
            cache_close(&src);
            if ((rc = cache_open(inputs[m.clips[i].input], (size_t)1 << 20, &src)) < 0) goto fail;
            src_input = m.clips[i].input;
        }
        long row;
        if ((rc = cache_find_index(src, m.clips[i].row.index, &row)) < 0) goto fail;
        orows[i] = src->clips[row];
        orows[i].offset = o.pairs;
        if ((rc = copy_clip(&o, tmp, src, row, &buf, &bufn)) < 0) goto fail;
    }
    cache_close(&src);
    for (long i = 0; i < m.ne; i++) oerrs[i] = m.errs[i].row;
    for (long i = 0; i < m.nw; i++) owarns[i] = m.warns[i].row;
    const cache_rows rows = { .nclips = m.nc, .clips = orows, .nerrors = m.ne, .errors = oerrs,
                              .nwarnings = m.nw, .warnings = owarns };
    rc = cache_out_finish(&o, tmp, out, &rows, 1);
    if (rc == 0) created = 0;
fail:
    if (rc < 0) cache_out_abort(&o);
    if (created && tmp) unlink(tmp);
    cache_close(&src);
    gl_free(buf);
    gl_free(tmp);
    gl_free(owarns);
    gl_free(oerrs);
    gl_free(orows);
    merge_plan_free(&m);
    return rc;
}

int cache_merge(const char *out, const char *const *inputs, int n_inputs)
{
    gl_h5_silence();
    for (int i = 0; i < n_inputs; i++) {
        struct stat a, b;
        if (stat(out, &a) == 0 && stat(inputs[i], &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return gl_error(GL_EINVAL, "merge: the output %s is also input %d", out, i + 1);
    }
    return cache_merge_into(out, inputs, n_inputs, NULL);
}
