/*
 * cache_read.c — the motion cache's reader: opening and checking a file,
 * looking clips up by index or name, reading fields and homographies, and
 * cache_verify.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/cache_private.h"

/* ---- reader --------------------------------------------------------------- */
void cache_close(cache **pc)
{
    cache *c = pc ? *pc : NULL;
    if (!c) return;
    gl_h5_silence();
    if (c->ftype >= 0) H5Tclose(c->ftype);
    if (c->fspace >= 0) H5Sclose(c->fspace);
    if (c->homs >= 0) H5Dclose(c->homs);
    if (c->fields >= 0) H5Dclose(c->fields);
    if (c->f >= 0) H5Fclose(c->f);
    gl_free(c->clips);
    gl_free(c->by_name);
    gl_free(c->errors);
    gl_free(c->warnings);
    gl_free(c->scratch);
    gl_free(c->path);
    gl_free(c);
    *pc = NULL;
}

/* Is the /fields layout exactly the one cache_out_create makes? */
static int layout_is_ours(hid_t d, const cache_config *cfg)
{
    hid_t dcpl = H5Dget_create_plist(d);
    int ok = 0;
    if (dcpl < 0) return 0;
    hsize_t ch[4];
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 4, ch) == 4 && ch[0] == 1 &&
        ch[1] == (hsize_t)cfg->channels && ch[2] == (hsize_t)cfg->height && ch[3] == (hsize_t)cfg->width &&
        H5Pget_nfilters(dcpl) == 3) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        ok = H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, NULL) == H5Z_FILTER_SHUFFLE;
        ncd = 8;
        ok = ok && H5Pget_filter2(dcpl, 1, &flags, &ncd, cd, 0, NULL, NULL) == H5Z_FILTER_DEFLATE;
        ncd = 8;
        ok = ok && H5Pget_filter2(dcpl, 2, &flags, &ncd, cd, 0, NULL, NULL) == H5Z_FILTER_FLETCHER32;
    }
    H5Pclose(dcpl);
    H5Eclear2(H5E_DEFAULT);
    return ok;
}

int cache_open(const char *path, size_t chunk_cache_bytes, cache **out)
{
    cache *c = NULL;
    hid_t dapl = -1, t = -1, ct = -1, et = -1;
    int rc;
    *out = NULL;
    gl_h5_silence();
    struct stat st;
    if (stat(path, &st) < 0) return gl_error(GL_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return gl_error(GL_EIO, "%s: not a regular file", path);
    if (H5Fis_hdf5(path) <= 0) { /* H5Fis_accessible is 1.12+ */
        H5Eclear2(H5E_DEFAULT);
        return gl_error(GL_EFORMAT, "%s: not an HDF5 file (no HDF5 signature: truncated at the "
                        "start, damaged, or another format)", path);
    }
    c = gl_calloc(1, sizeof *c);
    if (!c) return GL_ENOMEM;
    c->f = c->fields = c->homs = c->fspace = c->ftype = -1;
    if (!(c->path = gl_strdup(path))) { rc = GL_ENOMEM; goto fail; }
    if ((c->f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        rc = cache_h5_fail("%s: HDF5 cannot open it (truncated or damaged?)", path);
        goto fail;
    }
    if ((rc = cache_config_read(c->f, path, &c->cfg)) < 0) goto fail;
    if (H5Lexists(c->f, "fields", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        rc = gl_error(GL_EFORMAT, "%s: dataset /fields is missing", path);
        goto fail;
    }
    size_t bytes = chunk_cache_bytes ? chunk_cache_bytes : CACHE_DEFAULT_CHUNK_CACHE;
    /* HDF5 hashes chunk numbers into nslots: ~10 slots per chunk that fits
     * keeps collisions (which evict) rare; odd, as HDF5 advises a prime. */
    size_t chunk = (size_t)c->cfg.channels * c->cfg.height * c->cfg.width * 2;
    size_t nslots = bytes / chunk * 10 + 1;
    if (nslots < 521) nslots = 521;
    if (nslots > 1000003) nslots = 1000003;
    nslots |= 1;
    if ((dapl = H5Pcreate(H5P_DATASET_ACCESS)) < 0 ||
        H5Pset_chunk_cache(dapl, nslots, bytes, 1.0) < 0 ||
        (c->fields = H5Dopen2(c->f, "fields", dapl)) < 0 || (c->fspace = H5Dget_space(c->fields)) < 0 ||
        (t = H5Dget_type(c->fields)) < 0) {
        rc = cache_h5_fail("%s: cannot open /fields", path);
        goto fail;
    }
    hsize_t dims[4];
    if (H5Sget_simple_extent_ndims(c->fspace) != 4 || H5Sget_simple_extent_dims(c->fspace, dims, NULL) < 0 ||
        dims[1] != (hsize_t)c->cfg.channels || dims[2] != (hsize_t)c->cfg.height ||
        dims[3] != (hsize_t)c->cfg.width) {
        rc = gl_error(GL_EFORMAT, "%s: /fields is not [pairs, %d, %d, %d]", path, c->cfg.channels,
                      c->cfg.height,
                      c->cfg.width);
        goto fail;
    }
    c->npairs = (long)dims[0];
    if ((c->ftype = cache_field_h5type(c->cfg.encoding)) < 0) {
        rc = cache_h5_fail("cannot build the field type");
        goto fail;
    }
    if (H5Tequal(t, c->ftype) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        rc = gl_error(GL_EFORMAT, "%s: /fields does not hold %s values as its 'encoding' says", path,
                      c->cfg.encoding == CACHE_INT16 ? "int16" : "float16");
        goto fail;
    }
    c->raw_ok = layout_is_ours(c->fields, &c->cfg);
    if (c->cfg.has_homographies) {
        hid_t hs = -1;
        hsize_t hd[3];
        if ((c->homs = H5Dopen2(c->f, "homographies", H5P_DEFAULT)) < 0 ||
            (hs = H5Dget_space(c->homs)) < 0) {
            rc = cache_h5_fail("%s: cannot open /homographies", path);
            goto fail;
        }
        int ok = H5Sget_simple_extent_ndims(hs) == 3 && H5Sget_simple_extent_dims(hs, hd, NULL) >= 0 &&
                 hd[1] == 3 && hd[2] == 3;
        H5Sclose(hs);
        if (!ok) {
            rc = gl_error(GL_EFORMAT, "%s: /homographies is not [pairs, 3, 3]", path);
            goto fail;
        }
    }
    if ((ct = cache_clip_h5type()) < 0 || (et = cache_error_h5type()) < 0) {
        rc = cache_h5_fail("cannot build the table types");
        goto fail;
    }
    void *rows;
    if ((rc = cache_table_read(c->f, path, "clips", ct, sizeof(cache_clip), 0, &rows, &c->nclips)) < 0)
        goto fail;
    c->clips = rows;
    if ((rc = cache_table_read(c->f, path, "errors", et, sizeof(cache_error), 0, &rows, &c->nerrors)) < 0)
        goto fail;
    c->errors = rows;
    /* format 1 (before /warnings) has none */
    if ((rc = cache_table_read(c->f, path, "warnings", et, sizeof(cache_warning), 1, &rows,
                               &c->nwarnings)) < 0)
        goto fail;
    c->warnings = rows;
    for (long i = 0; i < c->nclips; i++) c->clips[i].name[CACHE_NAME_MAX - 1] = 0;
    for (long i = 0; i < c->nerrors; i++) {
        c->errors[i].name[CACHE_NAME_MAX - 1] = 0;
        c->errors[i].message[CACHE_MESSAGE_MAX - 1] = 0;
    }
    for (long i = 0; i < c->nwarnings; i++) {
        c->warnings[i].name[CACHE_NAME_MAX - 1] = 0;
        c->warnings[i].message[CACHE_MESSAGE_MAX - 1] = 0;
    }
    *out = c;
    c = NULL;
    rc = 0;
fail:
    if (et >= 0) H5Tclose(et);
    if (ct >= 0) H5Tclose(ct);
    if (t >= 0) H5Tclose(t);
    if (dapl >= 0) H5Pclose(dapl);
    cache_close(&c);
    return rc;
}

const cache_config *cache_get_config(const cache *c) { return &c->cfg; }
long cache_clip_count(const cache *c) { return c->nclips; }
long cache_pair_count(const cache *c) { return c->npairs; }
long cache_error_count(const cache *c) { return c->nerrors; }
long cache_warning_count(const cache *c) { return c->nwarnings; }

const cache_clip *cache_get_clip(const cache *c, long i)
{
    return i >= 0 && i < c->nclips ? &c->clips[i] : NULL;
}

const cache_error *cache_get_error(const cache *c, long i)
{
    return i >= 0 && i < c->nerrors ? &c->errors[i] : NULL;
}

const cache_warning *cache_get_warning(const cache *c, long i)
{
    return i >= 0 && i < c->nwarnings ? &c->warnings[i] : NULL;
}

int cache_find_index(const cache *c, int64_t index, long *row)
{
    long lo = 0, hi = c->nclips - 1;
    while (lo <= hi) { /* /clips is sorted by index (verify checks it) */
        long mid = lo + (hi - lo) / 2;
        if (c->clips[mid].index == index) {
            *row = mid;
            return 0;
        }
        if (c->clips[mid].index < index) lo = mid + 1;
        else hi = mid - 1;
    }
    return gl_error(GL_ENOTFOUND, "%s: no clip with index %lld", c->path, (long long)index);
}

static const cache_clip *sort_base; /* qsort has no context argument */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int cmp_row_name(const void *a, const void *b)
{
    return strcmp(sort_base[*(const long *)a].name, sort_base[*(const long *)b].name);
}

int cache_find_name(const cache *cc, const char *name, long *row)
{
    cache *c = (cache *)cc; /* the name index is a lazily built cache, not state */
    if (!c->by_name && c->nclips > 0) {
        long *ix = gl_malloc(sizeof *ix * (size_t)c->nclips);
        if (!ix) return GL_ENOMEM;
        for (long i = 0; i < c->nclips; i++) ix[i] = i;
        pthread_mutex_lock(&sort_mu);
        sort_base = c->clips;
        qsort(ix, (size_t)c->nclips, sizeof *ix, cmp_row_name);
        pthread_mutex_unlock(&sort_mu);
        c->by_name = ix;
    }
    long lo = 0, hi = c->nclips - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        int d = strcmp(c->clips[c->by_name[mid]].name, name);
        if (d == 0) {
            *row = c->by_name[mid];
            return 0;
        }
        if (d < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return gl_error(GL_ENOTFOUND, "%s: no clip named '%s'", c->path, name);
}

static int check_range(const cache *c, long clip, long offset, int L, long *row)
{
    if (clip < 0 || clip >= c->nclips)
        return gl_error(GL_EINVAL, "%s: clip row %ld, expected 0..%ld", c->path, clip, c->nclips - 1);
    const cache_clip *ci = &c->clips[clip];
    if (L < 1 || offset < 0 || offset + L > ci->pairs)
        return gl_error(GL_EINVAL, "%s: fields %ld..%ld of clip '%s', which has %d", c->path, offset,
                        offset + L - 1, ci->name, ci->pairs);
    if (ci->offset < 0 || ci->offset > (int64_t)c->npairs - (offset + L)) /* no overflow: a row may lie */
        return gl_error(GL_EFORMAT, "%s: clip '%s' points past the end of /fields (%ld rows)",
                        c->path, ci->name, c->npairs);
    *row = (long)ci->offset + offset;
    return 0;
}

static void *scratch_get(cache *c, size_t bytes)
{
    if (c->scratch_n < bytes) {
        void *p = gl_realloc(c->scratch, bytes);
        if (!p) return NULL;
        c->scratch = p;
        c->scratch_n = bytes;
    }
    return c->scratch;
}

/* Reads rows of /fields in their stored encoding (2 bytes each) into buf. */
int cache_fields_read_raw(cache *c, long row, long n, void *buf)
{
    hsize_t start[4] = { (hsize_t)row, 0, 0, 0 };
    hsize_t count[4] = { (hsize_t)n, (hsize_t)c->cfg.channels, (hsize_t)c->cfg.height,
                         (hsize_t)c->cfg.width };
    hid_t ms = -1;
    int rc = GL_EHDF5;
    if (H5Sselect_hyperslab(c->fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0) goto fail;
    /* the same shape in memory keeps HDF5 on its fast contiguous-copy path */
    if ((ms = H5Screate_simple(4, count, NULL)) < 0) goto fail;
    if (H5Dread(c->fields, c->ftype, ms, c->fspace, H5P_DEFAULT, buf) < 0) goto fail;
    rc = 0;
fail:
    if (ms >= 0) H5Sclose(ms);
    if (rc < 0) rc = cache_h5_fail("%s: cannot read /fields rows %ld..%ld (damaged chunk?)", c->path, row,
                             row + n - 1);
    return rc;
}

int cache_read_fields(cache *c, long clip, long offset, int L, float *out)
{
    long row = 0;
    gl_h5_silence();
    int rc = check_range(c, clip, offset, L, &row);
    if (rc < 0) return rc;
    size_t n = (size_t)L * (size_t)c->cfg.channels * (size_t)c->cfg.height * (size_t)c->cfg.width;
    uint16_t *q = scratch_get(c, n * 2);
    if (!q) return GL_ENOMEM;
    if ((rc = cache_fields_read_raw(c, row, L, q)) < 0) return rc;
    if (c->cfg.encoding == CACHE_INT16) {
        const int16_t *s = (const int16_t *)q;
        float scale = c->cfg.scale;
        for (size_t i = 0; i < n; i++) out[i] = (float)s[i] * scale;
    } else {
        for (size_t i = 0; i < n; i++) out[i] = cache_half_to_float(q[i]);
    }
    return 0;
}

int cache_read_homographies(cache *c, long clip, long offset, int L, float *out)
{
    long row = 0;
    gl_h5_silence();
    if (c->homs < 0) return gl_error(GL_ENOTFOUND, "%s: method '%s' stores no homographies", c->path,
                                     c->cfg.method);
    int rc = check_range(c, clip, offset, L, &row);
    if (rc < 0) return rc;
    if (cache_rows_read(c->homs, H5T_NATIVE_FLOAT, 3, row, L, out) < 0)
        return cache_h5_fail("%s: cannot read /homographies rows %ld..%ld", c->path, row, row + L - 1);
    return 0;
}

/* ---- verify --------------------------------------------------------------- */

typedef struct {
    cache_report_fn fn;
    void *ctx;
    long n;
} reporter;

static void report(reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(reporter *r, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->n++;
    if (r->fn) r->fn(r->ctx, msg);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* A key (int64_t) against a /clips row's index. */
static int cmp_clip_index(const void *key, const void *row)
{
    int64_t x = *(const int64_t *)key, y = ((const cache_clip *)row)->index;
    return (x > y) - (x < y);
}

long cache_verify(cache *c, cache_report_fn fn, void *ctx)
{
    reporter r = { fn, ctx, 0 };
    int nshard;
    uint8_t *set = NULL;
    int64_t *all = NULL;
    float *buf = NULL;
    long rc;
    gl_h5_silence();
    if ((rc = cache_shard_parse(c->cfg.shard, &nshard, &set)) < 0) return rc;
    /* the table rows */
    long expect = 0;
    for (int k = 0; k < nshard; k++)
        if (set[k] && k < c->cfg.total_clips) expect += (c->cfg.total_clips - k + nshard - 1) / nshard;
    int64_t next_offset = 0;
    for (long i = 0; i < c->nclips; i++) {
        const cache_clip *ci = &c->clips[i];
        if (!ci->name[0]) report(&r, "clip row %ld: empty name", i);
        if (ci->index < 0 || ci->index >= c->cfg.total_clips)
            report(&r, "clip row %ld (%s): index %lld outside 0..%ld", i, ci->name,
                   (long long)ci->index, c->cfg.total_clips - 1);
        else if (!set[ci->index % nshard])
            report(&r, "clip row %ld (%s): index %lld is not in shard %s", i, ci->name,
                   (long long)ci->index, c->cfg.shard);
        if (i > 0 && ci->index <= c->clips[i - 1].index)
            report(&r, "clip row %ld (%s): index %lld does not follow %lld (rows must be sorted, "
                   "unique)", i, ci->name, (long long)ci->index, (long long)c->clips[i - 1].index);
        if (ci->pairs < 0) report(&r, "clip row %ld (%s): %d pairs", i, ci->name, ci->pairs);
        if (ci->offset != next_offset)
            report(&r, "clip row %ld (%s): offset %lld, expected %lld (rows must be contiguous)", i,
                   ci->name, (long long)ci->offset, (long long)next_offset);
        int64_t n = ci->pairs > 0 ? ci->pairs : 0;
        next_offset = ci->offset > INT64_MAX - n ? INT64_MAX : ci->offset + n;
    }
    if (next_offset != c->npairs)
        report(&r, "/clips accounts for %lld pairs, /fields holds %ld", (long long)next_offset,
               c->npairs);
    if (c->homs >= 0) {
        hid_t hs = H5Dget_space(c->homs);
        hsize_t hd[3] = { 0, 0, 0 };
        if (hs >= 0) {
            H5Sget_simple_extent_dims(hs, hd, NULL);
            H5Sclose(hs);
        }
        if ((long)hd[0] != c->npairs)
            report(&r, "/homographies holds %llu rows, /fields %ld", (unsigned long long)hd[0],
                   c->npairs);
    }
    /* errors: in the shard, unique, not also a clip */
    all = gl_malloc(sizeof *all * (size_t)(c->nclips + c->nerrors + 1));
    if (!all) { rc = GL_ENOMEM; goto fail; }
    for (long i = 0; i < c->nclips; i++) all[i] = c->clips[i].index;
    for (long i = 0; i < c->nerrors; i++) {
        const cache_error *e = &c->errors[i];
        all[c->nclips + i] = e->index;
        if (e->index < 0 || e->index >= c->cfg.total_clips || !set[e->index % nshard])
            report(&r, "error row %ld (%s): index %lld is not in shard %s of %ld clips", i, e->name,
                   (long long)e->index, c->cfg.shard, c->cfg.total_clips);
    }
    qsort(all, (size_t)(c->nclips + c->nerrors), sizeof *all, cmp_i64);
    for (long i = 1; i < c->nclips + c->nerrors; i++)
        if (all[i] == all[i - 1])
            report(&r, "clip index %lld appears twice (in /clips or /errors)", (long long)all[i]);
    if (c->nclips + c->nerrors != expect)
        report(&r, "%ld clips + %ld errors, but shard %s of %ld clips holds %ld", c->nclips,
               c->nerrors, c->cfg.shard, c->cfg.total_clips, expect);
    /* warnings: sorted, each about a stored clip */
    for (long i = 0; i < c->nwarnings; i++) {
        const cache_warning *wr = &c->warnings[i];
        if (i > 0 && wr->index <= c->warnings[i - 1].index)
            report(&r, "warning row %ld (%s): index %lld does not follow %lld (rows must be sorted, "
                   "unique)", i, wr->name, (long long)wr->index, (long long)c->warnings[i - 1].index);
        if (!bsearch(&wr->index, c->clips, (size_t)c->nclips, sizeof *c->clips, cmp_clip_index))
            report(&r, "warning row %ld (%s): no stored clip has index %lld", i, wr->name,
                   (long long)wr->index);
    }
    /* every value readable and finite */
    size_t per = (size_t)c->cfg.channels * (size_t)c->cfg.height * (size_t)c->cfg.width;
    buf = gl_malloc(per * sizeof *buf);
    if (!buf) { rc = GL_ENOMEM; goto fail; }
    for (long i = 0; i < c->nclips; i++) {
        const cache_clip *ci = &c->clips[i];
        /* A row outside /fields is reported above; reading it pair by pair
         * would only repeat that (2^31 times for a damaged row). */
        if (ci->offset < 0 || ci->offset >= c->npairs) continue;
        for (long p = 0; p < ci->pairs && ci->offset + p < c->npairs; p++) {
            int e = cache_read_fields(c, i, p, 1, buf);
            if (e < 0) {
                report(&r, "clip %lld (%s) field %ld: %s", (long long)ci->index, ci->name, p,
                       gl_last_error());
                continue;
            }
            for (size_t k = 0; k < per; k++)
                if (!isfinite(buf[k])) {
                    report(&r, "clip %lld (%s) field %ld: value %zu is not finite",
                           (long long)ci->index, ci->name, p, k);
                    break;
                }
            if (c->homs >= 0) {
                float h[9];
                e = cache_read_homographies(c, i, p, 1, h);
                if (e < 0) {
                    report(&r, "clip %lld (%s) homography %ld: %s", (long long)ci->index, ci->name, p,
                           gl_last_error());
                    continue;
                }
                for (int k = 0; k < 9; k++)
                    if (!isfinite(h[k])) {
                        report(&r, "clip %lld (%s) homography %ld is not finite",
                               (long long)ci->index, ci->name, p);
                        break;
                    }
            }
        }
    }
    rc = r.n;
fail:
    gl_free(buf);
    gl_free(all);
    gl_free(set);
    return rc;
}
