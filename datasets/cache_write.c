/*
 * cache_write.c — the motion cache's writer: the spool PATH.parts/ of one
 * small file per finished clip or recorded error (written whole or not at
 * all), resuming, and publishing PATH at finish (cache.h, "Crash safety").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "datasets/cache_private.h"

/* ---- writer ------------------------------------------------------------- */

struct cache_writer {
    char *path, *spool;
    cache_config cfg;
    int lock_fd;
    pthread_mutex_t mu;
    uint8_t *done; /* per dataset index: 1 committed or failed */
    long ndone;
    int finished;
};

struct cache_clip_writer {
    cache_writer *w;
    cache_clip info;
    cache_warning warning; /* stored with the clip when has_warning */
    int has_warning;
    cache_out o;
    char *tmp, *final;
    void *q;
    size_t qn;
};

/* Spool names: c<index>.h5 (a clip), e<index>.h5 (a failure), config.h5. */
static char *spool_name(const cache_writer *w, char kind, int64_t index, const char *suffix)
{
    char name[64];
    snprintf(name, sizeof name, "%c%012lld.h5%s", kind, (long long)index, suffix);
    return cache_path_join(w->spool, name);
}

/* Parses "c000000000012.h5" → kind 'c', index 12. */
static int spool_parse(const char *name, char *kind, int64_t *index)
{
    if ((name[0] != 'c' && name[0] != 'e') || strlen(name) != 16 || strcmp(name + 13, ".h5")) return 0;
    char *end;
    long long v = strtoll(name + 1, &end, 10);
    if (end != name + 13 || v < 0) return 0;
    *kind = name[0];
    *index = v;
    return 1;
}

static void mark_done(cache_writer *w, int64_t index)
{
    pthread_mutex_lock(&w->mu);
    if (index >= 0 && index < w->cfg.total_clips && !w->done[index]) {
        w->done[index] = 1;
        w->ndone++;
    }
    pthread_mutex_unlock(&w->mu);
}

int cache_writer_is_done(cache_writer *w, int64_t index)
{
    pthread_mutex_lock(&w->mu);
    int d = index >= 0 && index < w->cfg.total_clips && w->done[index];
    pthread_mutex_unlock(&w->mu);
    return d;
}

long cache_writer_done_count(cache_writer *w)
{
    pthread_mutex_lock(&w->mu);
    long n = w->ndone;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void cache_writer_close(cache_writer **pw)
{
    cache_writer *w = pw ? *pw : NULL;
    if (!w) return;
    if (w->lock_fd >= 0) close(w->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&w->mu);
    gl_free(w->done);
    gl_free(w->spool);
    gl_free(w->path);
    gl_free(w);
    *pw = NULL;
}

/* Writes an empty cache with cfg (the spool's record of the configuration). */
static int write_empty(const char *path, const cache_config *cfg)
{
    char *tmp = cache_str_cat(path, ".tmp");
    cache_out o;
    if (!tmp) return GL_ENOMEM;
    int rc = cache_out_create(&o, tmp, cfg);
    const cache_rows none = { 0 };
    if (rc == 0) rc = cache_out_finish(&o, tmp, path, &none, 1);
    if (rc < 0) unlink(tmp);
    gl_free(tmp);
    return rc;
}

/* The field that differs for a message: with both values when it is text
 * ("params ('A' there, 'B' in this run)"), since a setting of the method
 * (stride, strict, ...) is a word of params. */
static void describe_diff(char *buf, size_t n, const char *field, const cache_config *run,
                          const cache_config *there)
{
    const char *a = NULL, *b = NULL;
    if (!strcmp(field, "method")) a = there->method, b = run->method;
    else if (!strcmp(field, "params")) a = there->params, b = run->params;
    else if (!strcmp(field, "model_sha256")) a = there->model_sha256, b = run->model_sha256;
    else if (!strcmp(field, "source")) a = there->source, b = run->source;
    else if (!strcmp(field, "shard")) a = there->shard, b = run->shard;
    if (a) snprintf(buf, n, "%s ('%.400s' there, '%.400s' in this run)", field, a, b);
    else snprintf(buf, n, "%s", field);
}

int cache_writer_open(const char *path, const cache_config *cfg, cache_writer **out)
{
    cache_writer *w = NULL;
    cache *prev = NULL;
    DIR *dir = NULL;
    char *p = NULL, what[1024];
    int rc;
    *out = NULL;
    gl_h5_silence();
    if ((rc = cache_config_validate(cfg)) < 0) return rc;
    if (!(w = gl_calloc(1, sizeof *w))) return GL_ENOMEM;
    w->lock_fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    w->cfg = *cfg;
    if (!(w->path = gl_strdup(path)) || !(w->spool = cache_str_cat(path, ".parts")) ||
        !(w->done = gl_calloc((size_t)cfg->total_clips, 1))) {
        rc = GL_ENOMEM;
        goto fail;
    }
    if ((rc = gl_mkdirs(w->spool)) < 0) goto fail;
    if (!(p = cache_path_join(w->spool, "lock"))) { rc = GL_ENOMEM; goto fail; }
    if ((w->lock_fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0644)) < 0) {
        rc = gl_error(GL_EIO, "%s: cannot create: %s", p, strerror(errno));
        goto fail;
    }
    if (flock(w->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = gl_error(GL_EIO, "%s: another process is writing this cache (%s is locked)", path, p);
        goto fail;
    }
    gl_free(p);
    p = NULL;
    /* the configuration this spool was started with */
    if (!(p = cache_path_join(w->spool, "config.h5"))) { rc = GL_ENOMEM; goto fail; }
    if (access(p, F_OK) == 0) {
        if ((rc = cache_open(p, 0, &prev)) < 0) goto fail;
        const char *diff = cache_config_diff(cfg, cache_get_config(prev), 1);
        if (diff) {
            describe_diff(what, sizeof what, diff, cfg, cache_get_config(prev));
            rc = gl_error(GL_EINVAL, "%s was started with a different %s; rerun with the same options "
                          "or delete %s to start over", w->spool, what, w->spool);
            goto fail;
        }
        cache_close(&prev);
    } else if ((rc = write_empty(p, cfg)) < 0) {
        goto fail;
    }
    gl_free(p);
    p = NULL;
    /* a previous result */
    if (access(path, F_OK) == 0) {
        if ((rc = cache_open(path, 0, &prev)) < 0) goto fail;
        const char *diff = cache_config_diff(cfg, cache_get_config(prev), 1);
        if (diff) {
            describe_diff(what, sizeof what, diff, cfg, cache_get_config(prev));
            rc = gl_error(GL_EINVAL, "%s exists with a different %s; use another output or delete it",
                          path, what);
            goto fail;
        }
        for (long i = 0; i < prev->nclips; i++) mark_done(w, prev->clips[i].index);
        for (long i = 0; i < prev->nerrors; i++) mark_done(w, prev->errors[i].index);
    }
    /* the spool: drop temp files (a kill's leftovers) and parts already in PATH */
    if (!(dir = opendir(w->spool))) {
        rc = gl_error(GL_EIO, "%s: cannot list: %s", w->spool, strerror(errno));
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(dir))) {
        char kind;
        int64_t index;
        size_t len = strlen(de->d_name);
        int is_tmp = len > 4 && !strcmp(de->d_name + len - 4, ".tmp");
        if (!is_tmp && !spool_parse(de->d_name, &kind, &index)) continue;
        if (!is_tmp && index >= cfg->total_clips) {
            rc = gl_error(GL_EFORMAT, "%s/%s: clip index beyond the %ld clips of this run", w->spool,
                          de->d_name, cfg->total_clips);
            goto fail;
        }
        if (is_tmp || (prev && w->done[index])) {
            if (!(p = cache_path_join(w->spool, de->d_name))) { rc = GL_ENOMEM; goto fail; }
            if (unlink(p) < 0 && errno != ENOENT) {
                rc = gl_error(GL_EIO, "%s: cannot remove: %s", p, strerror(errno));
                goto fail;
            }
            gl_free(p);
            p = NULL;
            continue;
        }
        mark_done(w, index);
    }
    *out = w;
    w = NULL;
    rc = 0;
fail:
    if (dir) closedir(dir);
    cache_close(&prev);
    gl_free(p);
    cache_writer_close(&w);
    return rc;
}

int cache_clip_begin(cache_writer *w, const cache_clip *info, cache_clip_writer **out)
{
    cache_clip_writer *cw;
    int rc;
    *out = NULL;
    gl_h5_silence();
    if (w->finished) return gl_error(GL_EINVAL, "%s: the writer has finished", w->path);
    if (info->index < 0 || info->index >= w->cfg.total_clips)
        return gl_error(GL_EINVAL, "clip index %lld outside 0..%ld", (long long)info->index,
                        w->cfg.total_clips - 1);
    if (!memchr(info->name, 0, CACHE_NAME_MAX) || !info->name[0])
        return gl_error(GL_EINVAL, "clip %lld: name empty or longer than %d bytes",
                        (long long)info->index, CACHE_NAME_MAX - 1);
    if (!(cw = gl_calloc(1, sizeof *cw))) return GL_ENOMEM;
    cw->w = w;
    cw->info = *info;
    cw->info.offset = 0;
    cw->info.pairs = 0;
    cw->info.clipped = 0;
    cw->o.f = cw->o.fields = cw->o.homs = cw->o.ftype = -1;
    if (!(cw->final = spool_name(w, 'c', info->index, "")) ||
        !(cw->tmp = spool_name(w, 'c', info->index, ".tmp"))) {
        rc = GL_ENOMEM;
        goto fail;
    }
    if ((rc = cache_out_create(&cw->o, cw->tmp, &w->cfg)) < 0) goto fail;
    *out = cw;
    return 0;
fail:
    cache_clip_abort(&cw);
    return rc;
}

int cache_clip_append(cache_clip_writer *cw, int n, const float *fields, const float *homs)
{
    gl_h5_silence();
    const cache_config *cfg = &cw->w->cfg;
    if (n < 1) return gl_error(GL_EINVAL, "append: %d fields", n);
    if (cfg->has_homographies != (homs != NULL))
        return gl_error(GL_EINVAL, "append: this cache %s homographies", cfg->has_homographies ?
                        "needs" : "stores no");
    size_t m = (size_t)n * (size_t)cfg->channels * (size_t)cfg->height * (size_t)cfg->width;
    if (cw->qn < m) {
        void *p = gl_realloc(cw->q, m * 2);
        if (!p) return GL_ENOMEM;
        cw->q = p;
        cw->qn = m;
    }
    if (cfg->encoding == CACHE_INT16) {
        int16_t *q = cw->q;
        float inv = 1.0f / cfg->scale;
        for (size_t i = 0; i < m; i++) {
            float v = fields[i];
            if (!isfinite(v))
                return gl_error(GL_ENUMERIC, "clip '%s': field value %zu is not finite",
                                cw->info.name, i);
            float s = rintf(v * inv);
            if (s > 32767.0f) { s = 32767.0f; cw->info.clipped++; }
            if (s < -32767.0f) { s = -32767.0f; cw->info.clipped++; }
            q[i] = (int16_t)s;
        }
    } else {
        uint16_t *q = cw->q;
        for (size_t i = 0; i < m; i++) {
            if (!isfinite(fields[i]))
                return gl_error(GL_ENUMERIC, "clip '%s': field value %zu is not finite",
                                cw->info.name, i);
            q[i] = cache_half_from_float(fields[i]);
            if ((q[i] & 0x7c00u) == 0x7c00u) { /* beyond ±65504: keep it finite */
                q[i] = (uint16_t)((q[i] & 0x8000u) | 0x7bffu);
                cw->info.clipped++;
            }
        }
    }
    if (homs)
        for (int i = 0; i < 9 * n; i++)
            if (!isfinite(homs[i]))
                return gl_error(GL_ENUMERIC, "clip '%s': homography %d is not finite", cw->info.name,
                                i / 9);
    long row = cw->o.pairs;
    int rc = cache_out_extend(&cw->o, cw->tmp, row + n);
    if (rc < 0) return rc;
    if (cache_rows_write(cw->o.fields, cw->o.ftype, 4, row, n, cw->q) < 0)
        return cache_h5_fail("%s: cannot write fields", cw->tmp);
    if (homs && cache_rows_write(cw->o.homs, H5T_NATIVE_FLOAT, 3, row, n, homs) < 0)
        return cache_h5_fail("%s: cannot write homographies", cw->tmp);
    cw->o.pairs += n;
    cw->info.pairs += n;
    return 0;
}

int cache_clip_warn(cache_clip_writer *cw, const char *message)
{
    if (!message) return gl_error(GL_EINVAL, "clip '%s': NULL warning", cw->info.name);
    memset(&cw->warning, 0, sizeof cw->warning);
    cw->warning.index = cw->info.index;
    cache_copy_str(cw->warning.name, sizeof cw->warning.name, cw->info.name);
    cache_copy_str(cw->warning.message, sizeof cw->warning.message, message);
    cw->has_warning = 1;
    return 0;
}

int cache_clip_commit(cache_clip_writer **pcw)
{
    cache_clip_writer *cw = *pcw;
    gl_h5_silence();
    const cache_rows rows = { .nclips = 1, .clips = &cw->info, .nwarnings = cw->has_warning,
                              .warnings = &cw->warning };
    int rc = cache_out_finish(&cw->o, cw->tmp, cw->final, &rows, 0);
    if (rc == 0) mark_done(cw->w, cw->info.index);
    cache_clip_abort(pcw);
    return rc;
}

void cache_clip_abort(cache_clip_writer **pcw)
{
    cache_clip_writer *cw = pcw ? *pcw : NULL;
    if (!cw) return;
    gl_h5_silence();
    cache_out_abort(&cw->o);
    if (cw->tmp) unlink(cw->tmp); /* no-op after a commit renamed it */
    gl_free(cw->q);
    gl_free(cw->tmp);
    gl_free(cw->final);
    gl_free(cw);
    *pcw = NULL;
}

int cache_writer_put_error(cache_writer *w, int64_t index, const char *name, const char *message)
{
    cache_error e;
    cache_out o;
    char *tmp = NULL, *final = NULL;
    int rc;
    gl_h5_silence();
    if (w->finished) return gl_error(GL_EINVAL, "%s: the writer has finished", w->path);
    if (index < 0 || index >= w->cfg.total_clips)
        return gl_error(GL_EINVAL, "clip index %lld outside 0..%ld", (long long)index,
                        w->cfg.total_clips - 1);
    memset(&e, 0, sizeof e);
    e.index = index;
    cache_copy_str(e.name, sizeof e.name, name);
    cache_copy_str(e.message, sizeof e.message, message);
    if (!(tmp = spool_name(w, 'e', index, ".tmp")) || !(final = spool_name(w, 'e', index, ""))) {
        rc = GL_ENOMEM;
        goto fail;
    }
    if ((rc = cache_out_create(&o, tmp, &w->cfg)) < 0) goto fail;
    const cache_rows rows = { .nerrors = 1, .errors = &e };
    if ((rc = cache_out_finish(&o, tmp, final, &rows, 0)) < 0) goto fail;
    mark_done(w, index);
fail:
    if (rc < 0 && tmp) unlink(tmp);
    gl_free(tmp);
    gl_free(final);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cache_writer_finish(cache_writer *w)
{
    char **inputs = NULL;
    int n = 0, cap = 0, rc, have_prev = access(w->path, F_OK) == 0;
    DIR *dir = NULL;
    gl_h5_silence();
    if (w->finished) return 0;
    if (!(dir = opendir(w->spool))) return gl_error(GL_EIO, "%s: cannot list: %s", w->spool,
                                                    strerror(errno));
    struct dirent *de;
    char kind;
    int64_t index;
    while ((de = readdir(dir))) {
        if (!spool_parse(de->d_name, &kind, &index)) continue;
        if (n + 2 > cap) {
            cap = cap * 2 + 64;
            char **p = gl_realloc(inputs, sizeof *p * (size_t)cap);
            if (!p) { rc = GL_ENOMEM; goto fail; }
            inputs = p;
        }
        if (!(inputs[n] = cache_path_join(w->spool, de->d_name))) { rc = GL_ENOMEM; goto fail; }
        n++;
    }
    closedir(dir);
    dir = NULL;
    if (n > 0) qsort(inputs, (size_t)n, sizeof *inputs, cmp_str);
    if (n > 0 || !have_prev) {
        /* the spool's own record (no clips) gives an empty cache when nothing ran */
        if (n + 2 > cap) {
            char **p = gl_realloc(inputs, sizeof *p * (size_t)(n + 2));
            if (!p) { rc = GL_ENOMEM; goto fail; }
            inputs = p;
        }
        memmove(inputs + 1, inputs, sizeof *inputs * (size_t)n);
        n++;
        inputs[0] = have_prev ? gl_strdup(w->path) : cache_path_join(w->spool, "config.h5");
        if (!inputs[0]) { rc = GL_ENOMEM; goto fail; }
        if ((rc = cache_merge_into(w->path, (const char *const *)inputs, n, &w->cfg)) < 0) goto fail;
    }
    /* PATH is complete: the spool is no longer needed */
    for (int i = 0; i < n; i++)
        if (strncmp(inputs[i], w->spool, strlen(w->spool)) == 0) unlink(inputs[i]);
    char *p = cache_path_join(w->spool, "config.h5");
    if (p) unlink(p);
    gl_free(p);
    if ((p = cache_path_join(w->spool, "lock"))) unlink(p);
    gl_free(p);
    rmdir(w->spool);
    w->finished = 1;
    rc = 0;
fail:
    if (dir) closedir(dir);
    for (int i = 0; i < n; i++) gl_free(inputs[i]);
    gl_free(inputs);
    return rc;
}
