/*
 * cache.c — the HDF5 motion cache (schema and crash-safety design in cache.h).
 */
#include "datasets/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CHUNK_CACHE ((size_t)64 << 20)
#define HOMOG_CHUNK 256 /* homographies per chunk (9 KiB) */
#define DEFLATE_LEVEL 4
#define MAX_SHARDS 100000

/* ---- HDF5 errors --------------------------------------------------------- */

/* HDF5 keeps one error stack per thread (thread-safe build); silence its
 * printing for the calling thread before any call. */
static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static herr_t h5_walk_first(unsigned n, const H5E_error2_t *e, void *ctx)
{
    if (n == 0 && e->desc) snprintf((char *)ctx, 256, "%s", e->desc);
    return 0;
}

/* GL_EHDF5 with "what (HDF5: innermost reason)". */
static int h5_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int h5_fail(const char *fmt, ...)
{
    char what[1536], why[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_first, why);
    H5Eclear2(H5E_DEFAULT);
    if (why[0]) return gl_error(GL_EHDF5, "%s (HDF5: %s)", what, why);
    return gl_error(GL_EHDF5, "%s", what);
}

/* ---- small helpers ----------------------------------------------------- */

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = gl_malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

static char *str_cat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *p = gl_malloc(n);
    if (p) snprintf(p, n, "%s%s", a, b);
    return p;
}

static int fsync_path(const char *path, int directory)
{
    int fd = open(path, O_RDONLY | (directory ? O_DIRECTORY : 0));
    if (fd < 0) return gl_error(GL_EIO, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc < 0 && !directory) return gl_error(GL_EIO, "%s: fsync failed: %s", path, strerror(e));
    return 0;
}

static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    copy_str(dir, sizeof dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash) copy_str(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    return fsync_path(dir, 1);
}

/* tmp (a closed file) becomes path: fsync, rename, and (sync_dir) fsync the
 * folder. The content is durable before the name appears, so even a power
 * cut never leaves a damaged file under the final name; without the folder
 * sync a spooled clip may vanish on a power cut, and is then recomputed. */
static int publish(const char *tmp, const char *path, int sync_dir)
{
    int rc = fsync_path(tmp, 0);
    if (rc < 0) return rc;
    if (rename(tmp, path) < 0)
        return gl_error(GL_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    return sync_dir ? fsync_parent(path) : 0;
}

/* ---- float16 (IEEE 754 binary16), round to nearest even ---------------- */

static uint16_t half_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, mant = x & 0x7fffffu;
    int exp = (int)((x >> 23) & 0xff);
    if (exp == 255) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
    int e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal half: value = m * 2^-24 */
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry rounds up the exponent */
    return (uint16_t)h;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, m = h & 0x3ffu, x;
    int e = (h >> 10) & 0x1f;
    if (e == 0) {
        float f = (float)m * (1.0f / 16777216.0f);
        memcpy(&x, &f, 4);
        x |= sign;
    } else if (e == 31) {
        x = sign | 0x7f800000u | (m << 13);
    } else {
        x = sign | ((uint32_t)(e - 15 + 127) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* The HDF5 type h5py reads as numpy float16. */
static hid_t f16_type_new(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* ---- configuration ------------------------------------------------------ */

void cache_config_default(cache_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->channels = 2;
    cfg->encoding = CACHE_INT16;
    cfg->scale = CACHE_INT16_SCALE;
    copy_str(cfg->shard, sizeof cfg->shard, "0/1");
}

/* "K1,K2,.../N" → n and a set of n flags (gl_malloc'ed). */
static int shard_parse(const char *s, int *n_out, uint8_t **set_out)
{
    const char *slash = strrchr(s, '/');
    char *end;
    uint8_t *set = NULL;
    if (!slash) goto bad;
    long n = strtol(slash + 1, &end, 10);
    if (end == slash + 1 || *end || n < 1 || n > MAX_SHARDS) goto bad;
    set = gl_calloc((size_t)n, 1);
    if (!set) return GL_ENOMEM;
    const char *p = s;
    while (p < slash) {
        long k = strtol(p, &end, 10);
        if (end == p || k < 0 || k >= n || (end != slash && *end != ',')) goto bad;
        set[k] = 1;
        p = end == slash ? slash : end + 1;
    }
    if (p != slash || s == slash) goto bad;
    *n_out = (int)n;
    *set_out = set;
    return 0;
bad:
    gl_free(set);
    return gl_error(GL_EINVAL, "shard '%s': expected K/N or K1,K2,.../N with 0 <= K < N <= %d", s,
                    MAX_SHARDS);
}

static int shard_format(char *buf, size_t size, int n, const uint8_t *set)
{
    int all = 1;
    for (int k = 0; k < n; k++) all &= set[k];
    if (all) return snprintf(buf, size, "0/1") < (int)size ? 0 : GL_EINVAL;
    size_t len = 0;
    buf[0] = 0;
    for (int k = 0; k < n; k++) {
        if (!set[k]) continue;
        int w = snprintf(buf + len, size - len, "%s%d", len ? "," : "", k);
        if (w < 0 || (size_t)w >= size - len) goto toolong;
        len += (size_t)w;
    }
    int w = snprintf(buf + len, size - len, "/%d", n);
    if (w < 0 || (size_t)w >= size - len) goto toolong;
    return 0;
toolong:
    return gl_error(GL_EINVAL, "shard list of %d shards does not fit in %zu characters", n, size);
}

int cache_config_set_shard(cache_config *cfg, int k, int n)
{
    if (n < 1 || n > MAX_SHARDS || k < 0 || k >= n)
        return gl_error(GL_EINVAL, "shard %d/%d: expected 0 <= K < N <= %d", k, n, MAX_SHARDS);
    snprintf(cfg->shard, sizeof cfg->shard, "%d/%d", k, n);
    return 0;
}

int cache_config_validate(const cache_config *cfg)
{
    if (!cfg->method[0]) return gl_error(GL_EINVAL, "cache config: method is empty");
    if (cfg->height < 1 || cfg->width < 1 || cfg->height > 8192 || cfg->width > 8192)
        return gl_error(GL_EINVAL, "cache config: height x width = %d x %d, expected 1..8192",
                        cfg->height, cfg->width);
    if (cfg->channels < 1 || cfg->channels > 16)
        return gl_error(GL_EINVAL, "cache config: channels %d, expected 1..16", cfg->channels);
    if (cfg->encoding != CACHE_INT16 && cfg->encoding != CACHE_FLOAT16)
        return gl_error(GL_EINVAL, "cache config: encoding %d is neither int16 nor float16",
                        (int)cfg->encoding);
    if (cfg->encoding == CACHE_INT16 && !(cfg->scale > 0 && isfinite(cfg->scale)))
        return gl_error(GL_EINVAL, "cache config: scale %g must be positive for int16", cfg->scale);
    if (cfg->encoding == CACHE_FLOAT16 && cfg->scale != 1.0f)
        return gl_error(GL_EINVAL, "cache config: scale must be 1 for float16, got %g", cfg->scale);
    if (cfg->total_clips < 1)
        return gl_error(GL_EINVAL, "cache config: total_clips %ld, expected >= 1", cfg->total_clips);
    if (cfg->has_homographies != 0 && cfg->has_homographies != 1)
        return gl_error(GL_EINVAL, "cache config: has_homographies must be 0 or 1");
    int n;
    uint8_t *set;
    int rc = shard_parse(cfg->shard, &n, &set);
    if (rc < 0) return gl_error_prefix(rc, "cache config");
    gl_free(set);
    return 0;
}

/* Name of the first field that differs, or NULL. */
static const char *config_diff(const cache_config *a, const cache_config *b, int with_shard)
{
    if (strcmp(a->method, b->method)) return "method";
    if (strcmp(a->params, b->params)) return "params";
    if (strcmp(a->model_sha256, b->model_sha256)) return "model_sha256";
    if (strcmp(a->source, b->source)) return "source";
    if (a->height != b->height || a->width != b->width) return "height x width";
    if (a->channels != b->channels) return "channels";
    if (a->has_homographies != b->has_homographies) return "has_homographies";
    if (a->encoding != b->encoding) return "encoding";
    if (a->scale != b->scale) return "scale";
    if (a->total_clips != b->total_clips) return "total_clips";
    if (with_shard && strcmp(a->shard, b->shard)) return "shard";
    return NULL;
}

/* ---- attributes ------------------------------------------------------------ */

static int attr_write_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1), s = -1, a = -1;
    int rc = GL_EHDF5;
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) goto fail;
    if ((s = H5Screate(H5S_SCALAR)) < 0) goto fail;
    if ((a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto fail;
    if (H5Awrite(a, t, &value) < 0) goto fail;
    rc = 0;
fail:
    if (rc < 0) rc = h5_fail("cannot write attribute '%s'", name);
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return rc;
}

static int attr_write_num(hid_t obj, const char *name, hid_t type, const void *value)
{
    hid_t s = H5Screate(H5S_SCALAR), a = -1;
    int rc = GL_EHDF5;
    if (s < 0) goto fail;
    if ((a = H5Acreate2(obj, name, type, s, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto fail;
    if (H5Awrite(a, type, value) < 0) goto fail;
    rc = 0;
fail:
    if (rc < 0) rc = h5_fail("cannot write attribute '%s'", name);
    if (a >= 0) H5Aclose(a);
    if (s >= 0) H5Sclose(s);
    return rc;
}

/* Reads a string attribute (fixed or variable length) into buf. */
static int attr_read_str(hid_t obj, const char *file, const char *name, char *buf, size_t size)
{
    hid_t a = -1, ft = -1, mt = -1;
    char *v = NULL;
    int rc = GL_EFORMAT;
    if (H5Aexists(obj, name) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return gl_error(GL_EFORMAT, "%s: attribute '%s' is missing (not a glocal motion cache?)",
                        file, name);
    }
    if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (ft = H5Aget_type(a)) < 0) goto h5fail;
    if (H5Tget_class(ft) != H5T_STRING) {
        rc = gl_error(GL_EFORMAT, "%s: attribute '%s' is not a string", file, name);
        goto fail;
    }
    if (H5Tis_variable_str(ft) > 0) {
        if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(ft)) < 0)
            goto h5fail;
        if (H5Aread(a, mt, &v) < 0) goto h5fail;
        copy_str(buf, size, v);
        H5free_memory(v);
    } else {
        size_t n = H5Tget_size(ft);
        char *tmp = gl_calloc(n + 1, 1);
        if (!tmp) { rc = GL_ENOMEM; goto fail; }
        if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, n + 1) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(ft)) < 0 || H5Aread(a, mt, tmp) < 0) {
            gl_free(tmp);
            goto h5fail;
        }
        copy_str(buf, size, tmp);
        gl_free(tmp);
    }
    rc = 0;
    goto fail;
h5fail:
    rc = h5_fail("%s: cannot read attribute '%s'", file, name);
fail:
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static int attr_read_num(hid_t obj, const char *file, const char *name, hid_t memtype, void *out)
{
    if (H5Aexists(obj, name) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return gl_error(GL_EFORMAT, "%s: attribute '%s' is missing (not a glocal motion cache?)",
                        file, name);
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, memtype, out) < 0) {
        if (a >= 0) H5Aclose(a);
        return h5_fail("%s: cannot read attribute '%s' as a number", file, name);
    }
    H5Aclose(a);
    return 0;
}

static int config_write(hid_t f, const cache_config *cfg)
{
    int rc;
    int32_t h = cfg->height, w = cfg->width, ch = cfg->channels;
    double scale = cfg->scale;
    int64_t total = cfg->total_clips;
    if ((rc = attr_write_str(f, "method", cfg->method)) < 0) return rc;
    if ((rc = attr_write_str(f, "params", cfg->params)) < 0) return rc;
    if ((rc = attr_write_str(f, "model_sha256", cfg->model_sha256)) < 0) return rc;
    if ((rc = attr_write_str(f, "glocal_version", GLOCAL_VERSION)) < 0) return rc;
    if ((rc = attr_write_str(f, "source", cfg->source)) < 0) return rc;
    if ((rc = attr_write_str(f, "encoding", cfg->encoding == CACHE_INT16 ? "int16" : "float16")) < 0)
        return rc;
    if ((rc = attr_write_str(f, "shard", cfg->shard)) < 0) return rc;
    if ((rc = attr_write_num(f, "height", H5T_STD_I32LE, &h)) < 0) return rc;
    if ((rc = attr_write_num(f, "width", H5T_STD_I32LE, &w)) < 0) return rc;
    if ((rc = attr_write_num(f, "channels", H5T_STD_I32LE, &ch)) < 0) return rc;
    if ((rc = attr_write_num(f, "scale", H5T_IEEE_F64LE, &scale)) < 0) return rc;
    if ((rc = attr_write_num(f, "total_clips", H5T_STD_I64LE, &total)) < 0) return rc;
    return 0;
}

static int config_read(hid_t f, const char *file, cache_config *cfg)
{
    int rc;
    char enc[32];
    int32_t h, w, ch;
    double scale;
    int64_t total;
    cache_config_default(cfg);
    if ((rc = attr_read_str(f, file, "method", cfg->method, sizeof cfg->method)) < 0) return rc;
    if ((rc = attr_read_str(f, file, "params", cfg->params, sizeof cfg->params)) < 0) return rc;
    if ((rc = attr_read_str(f, file, "model_sha256", cfg->model_sha256, sizeof cfg->model_sha256)) < 0)
        return rc;
    if ((rc = attr_read_str(f, file, "source", cfg->source, sizeof cfg->source)) < 0) return rc;
    if ((rc = attr_read_str(f, file, "glocal_version", cfg->glocal_version,
                            sizeof cfg->glocal_version)) < 0)
        return rc;
    if ((rc = attr_read_str(f, file, "encoding", enc, sizeof enc)) < 0) return rc;
    if ((rc = attr_read_str(f, file, "shard", cfg->shard, sizeof cfg->shard)) < 0) return rc;
    if ((rc = attr_read_num(f, file, "height", H5T_NATIVE_INT32, &h)) < 0) return rc;
    if ((rc = attr_read_num(f, file, "width", H5T_NATIVE_INT32, &w)) < 0) return rc;
    if ((rc = attr_read_num(f, file, "channels", H5T_NATIVE_INT32, &ch)) < 0) return rc;
    if ((rc = attr_read_num(f, file, "scale", H5T_NATIVE_DOUBLE, &scale)) < 0) return rc;
    if ((rc = attr_read_num(f, file, "total_clips", H5T_NATIVE_INT64, &total)) < 0) return rc;
    if (!strcmp(enc, "int16")) cfg->encoding = CACHE_INT16;
    else if (!strcmp(enc, "float16")) cfg->encoding = CACHE_FLOAT16;
    else return gl_error(GL_EFORMAT, "%s: encoding '%s' is neither int16 nor float16", file, enc);
    cfg->height = h;
    cfg->width = w;
    cfg->channels = ch;
    cfg->scale = (float)scale;
    cfg->total_clips = (long)total;
    htri_t has = H5Lexists(f, "homographies", H5P_DEFAULT);
    if (has < 0) return h5_fail("%s: cannot look for /homographies", file);
    cfg->has_homographies = has > 0;
    rc = cache_config_validate(cfg);
    if (rc == GL_ENOMEM) return rc;
    if (rc < 0) return gl_error_prefix(GL_EFORMAT, "%s", file);
    return 0;
}

/* ---- compound types of /clips and /errors ------------------------------ */

static hid_t str_type_new(size_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, n) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static hid_t clip_type_new(void)
{
    hid_t s = str_type_new(CACHE_NAME_MAX), t = -1;
    if (s < 0) return -1;
    t = H5Tcreate(H5T_COMPOUND, sizeof(cache_clip));
    if (t < 0 || H5Tinsert(t, "name", HOFFSET(cache_clip, name), s) < 0 ||
        H5Tinsert(t, "index", HOFFSET(cache_clip, index), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(t, "label", HOFFSET(cache_clip, label), H5T_NATIVE_INT32) < 0 ||
        H5Tinsert(t, "split", HOFFSET(cache_clip, split), H5T_NATIVE_INT32) < 0 ||
        H5Tinsert(t, "offset", HOFFSET(cache_clip, offset), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(t, "pairs", HOFFSET(cache_clip, pairs), H5T_NATIVE_INT32) < 0 ||
        H5Tinsert(t, "clipped", HOFFSET(cache_clip, clipped), H5T_NATIVE_INT32) < 0 ||
        H5Tinsert(t, "src_size", HOFFSET(cache_clip, src_size), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(t, "src_mtime", HOFFSET(cache_clip, src_mtime), H5T_NATIVE_INT64) < 0) {
        if (t >= 0) H5Tclose(t);
        t = -1;
    }
    H5Tclose(s);
    return t;
}

static hid_t error_type_new(void)
{
    hid_t s = str_type_new(CACHE_NAME_MAX), m = str_type_new(CACHE_MESSAGE_MAX), t = -1;
    if (s < 0 || m < 0) goto out;
    t = H5Tcreate(H5T_COMPOUND, sizeof(cache_error));
    if (t < 0 || H5Tinsert(t, "index", HOFFSET(cache_error, index), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(t, "name", HOFFSET(cache_error, name), s) < 0 ||
        H5Tinsert(t, "message", HOFFSET(cache_error, message), m) < 0) {
        if (t >= 0) H5Tclose(t);
        t = -1;
    }
out:
    if (s >= 0) H5Tclose(s);
    if (m >= 0) H5Tclose(m);
    return t;
}

/* Writes a whole 1-D compound table (n may be 0). */
static int table_write(hid_t f, const char *name, hid_t memtype, long n, const void *rows)
{
    hid_t ft = H5Tcopy(memtype), s = -1, d = -1;
    hsize_t dims[1] = { (hsize_t)n };
    int rc = GL_EHDF5;
    if (ft < 0 || H5Tpack(ft) < 0) goto fail;
    if ((s = H5Screate_simple(1, dims, NULL)) < 0) goto fail;
    if ((d = H5Dcreate2(f, name, ft, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto fail;
    if (n > 0 && H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0) goto fail;
    rc = 0;
fail:
    if (rc < 0) rc = h5_fail("cannot write /%s", name);
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Sclose(s);
    if (ft >= 0) H5Tclose(ft);
    return rc;
}

/* Reads a whole 1-D table into *rows (gl_malloc'ed, row_size each). */
static int table_read(hid_t f, const char *file, const char *name, hid_t memtype, size_t row_size,
                      void **rows, long *n)
{
    hid_t d = -1, s = -1;
    void *buf = NULL;
    int rc = GL_EHDF5;
    htri_t ex = H5Lexists(f, name, H5P_DEFAULT);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return gl_error(GL_EFORMAT, "%s: dataset /%s is missing (not a glocal motion cache?)", file,
                        name);
    }
    if ((d = H5Dopen2(f, name, H5P_DEFAULT)) < 0 || (s = H5Dget_space(d)) < 0) goto h5fail;
    hsize_t dims[1];
    if (H5Sget_simple_extent_ndims(s) != 1) {
        rc = gl_error(GL_EFORMAT, "%s: /%s is not a 1-D table", file, name);
        goto fail;
    }
    H5Sget_simple_extent_dims(s, dims, NULL);
    buf = gl_calloc(dims[0] ? dims[0] : 1, row_size);
    if (!buf) { rc = GL_ENOMEM; goto fail; }
    if (dims[0] > 0 && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) goto h5fail;
    *rows = buf;
    *n = (long)dims[0];
    buf = NULL;
    rc = 0;
    goto fail;
h5fail:
    rc = h5_fail("%s: cannot read /%s", file, name);
fail:
    gl_free(buf);
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* ---- an output file: create, append, close --------------------------- */

typedef struct {
    hid_t f, fields, homs, ftype;
    cache_config cfg;
    long pairs;
} h5out;

static void h5out_abort(h5out *o)
{
    if (o->homs >= 0) H5Dclose(o->homs);
    if (o->fields >= 0) H5Dclose(o->fields);
    if (o->ftype >= 0) H5Tclose(o->ftype);
    if (o->f >= 0) H5Fclose(o->f);
    o->f = o->fields = o->homs = o->ftype = -1;
}

static hid_t field_file_type(cache_encoding e)
{
    return e == CACHE_INT16 ? H5Tcopy(H5T_STD_I16LE) : f16_type_new();
}

/* Creates `path` (truncating) with the attributes and empty extendible datasets. */
static int h5out_create(h5out *o, const char *path, const cache_config *cfg)
{
    hid_t fapl = -1, sp = -1, dcpl = -1;
    int rc = GL_EHDF5;
    o->f = o->fields = o->homs = o->ftype = -1;
    o->cfg = *cfg;
    o->pairs = 0;
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0) goto fail;
    /* The latest format checksums every metadata block: damage is detected. */
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) goto fail;
    if ((o->f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0) goto fail;
    if ((rc = config_write(o->f, cfg)) < 0) goto fail;
    rc = GL_EHDF5;
    if ((o->ftype = field_file_type(cfg->encoding)) < 0) goto fail;
    hsize_t C = (hsize_t)cfg->channels, Hh = (hsize_t)cfg->height, Ww = (hsize_t)cfg->width;
    hsize_t dims[4] = { 0, C, Hh, Ww }, maxd[4] = { H5S_UNLIMITED, C, Hh, Ww };
    hsize_t chunk[4] = { 1, C, Hh, Ww };
    if ((sp = H5Screate_simple(4, dims, maxd)) < 0) goto fail;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, 4, chunk) < 0 ||
        H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, DEFLATE_LEVEL) < 0 ||
        H5Pset_fletcher32(dcpl) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)
        goto fail;
    if ((o->fields = H5Dcreate2(o->f, "fields", o->ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        goto fail;
    H5Sclose(sp);
    H5Pclose(dcpl);
    sp = dcpl = -1;
    if (cfg->has_homographies) {
        hsize_t hd[3] = { 0, 3, 3 }, hm[3] = { H5S_UNLIMITED, 3, 3 }, hc[3] = { HOMOG_CHUNK, 3, 3 };
        if ((sp = H5Screate_simple(3, hd, hm)) < 0) goto fail;
        if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, 3, hc) < 0 ||
            H5Pset_fletcher32(dcpl) < 0)
            goto fail;
        if ((o->homs = H5Dcreate2(o->f, "homographies", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl,
                                  H5P_DEFAULT)) < 0)
            goto fail;
    }
    rc = 0;
fail:
    if (rc == GL_EHDF5) rc = h5_fail("%s: cannot create the cache file", path);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (fapl >= 0) H5Pclose(fapl);
    if (rc < 0) h5out_abort(o);
    return rc;
}

/* Grows /fields (and /homographies) to `pairs` rows. */
static int h5out_extend(h5out *o, const char *path, long pairs)
{
    hsize_t dims[4] = { (hsize_t)pairs, (hsize_t)o->cfg.channels, (hsize_t)o->cfg.height,
                        (hsize_t)o->cfg.width };
    if (H5Dset_extent(o->fields, dims) < 0) return h5_fail("%s: cannot extend /fields", path);
    if (o->homs >= 0) {
        hsize_t hd[3] = { (hsize_t)pairs, 3, 3 };
        if (H5Dset_extent(o->homs, hd) < 0) return h5_fail("%s: cannot extend /homographies", path);
    }
    return 0;
}

/* Writes (write = 1) or reads rows [row, row+n) of a dataset of the given
 * rank: a hyperslab over the first dimension, whole rows. */
static int rows_io(hid_t d, hid_t memtype, int rank, long row, long n, void *buf, int write)
{
    hid_t fs = H5Dget_space(d), ms = -1;
    hsize_t start[4] = { (hsize_t)row, 0, 0, 0 }, count[4];
    int rc = GL_EHDF5;
    if (fs < 0) goto fail;
    H5Sget_simple_extent_dims(fs, count, NULL);
    count[0] = (hsize_t)n;
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0) goto fail;
    if ((ms = H5Screate_simple(rank, count, NULL)) < 0) goto fail;
    if ((write ? H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, buf) : H5Dread(d, memtype, ms, fs, H5P_DEFAULT, buf)) < 0)
        goto fail;
    rc = 0;
fail:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

static int rows_write(hid_t d, hid_t memtype, int rank, long row, long n, const void *buf)
{
    return rows_io(d, memtype, rank, row, n, (void *)buf, 1);
}

static int rows_read(hid_t d, hid_t memtype, int rank, long row, long n, void *buf)
{
    return rows_io(d, memtype, rank, row, n, buf, 0);
}

/* Writes the tables, closes, and publishes tmp as path. */
static int h5out_finish(h5out *o, const char *tmp, const char *path, long nclips,
                        const cache_clip *clips, long nerrors, const cache_error *errors,
                        int sync_dir)
{
    hid_t ct = clip_type_new(), et = error_type_new();
    int rc = GL_EHDF5;
    if (ct < 0 || et < 0) {
        rc = h5_fail("cannot build the table types");
        goto fail;
    }
    if ((rc = table_write(o->f, "clips", ct, nclips, clips)) < 0) goto fail;
    if ((rc = table_write(o->f, "errors", et, nerrors, errors)) < 0) goto fail;
    H5Dclose(o->fields);
    o->fields = -1;
    if (o->homs >= 0) H5Dclose(o->homs);
    o->homs = -1;
    herr_t cr = H5Fclose(o->f);
    o->f = -1;
    if (cr < 0) {
        rc = h5_fail("%s: cannot close", tmp);
        goto fail;
    }
    rc = publish(tmp, path, sync_dir);
fail:
    if (ct >= 0) H5Tclose(ct);
    if (et >= 0) H5Tclose(et);
    h5out_abort(o);
    return rc;
}

/* ---- reader --------------------------------------------------------------- */

struct cache {
    char *path;
    hid_t f, fields, homs, fspace, ftype;
    cache_config cfg;
    cache_clip *clips;
    long nclips;
    cache_error *errors;
    long nerrors;
    long *by_name;   /* rows sorted by name, built on the first cache_find_name */
    long npairs;
    int raw_ok;      /* /fields has the chunking and filters we write: chunks copy as they are */
    void *scratch;   /* quantised values of one read */
    size_t scratch_n;
};

void cache_close(cache **pc)
{
    cache *c = pc ? *pc : NULL;
    if (!c) return;
    h5_quiet();
    if (c->ftype >= 0) H5Tclose(c->ftype);
    if (c->fspace >= 0) H5Sclose(c->fspace);
    if (c->homs >= 0) H5Dclose(c->homs);
    if (c->fields >= 0) H5Dclose(c->fields);
    if (c->f >= 0) H5Fclose(c->f);
    gl_free(c->clips);
    gl_free(c->by_name);
    gl_free(c->errors);
    gl_free(c->scratch);
    gl_free(c->path);
    gl_free(c);
    *pc = NULL;
}

/* Is the /fields layout exactly the one h5out_create makes? */
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
    h5_quiet();
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
        rc = h5_fail("%s: HDF5 cannot open it (truncated or damaged?)", path);
        goto fail;
    }
    if ((rc = config_read(c->f, path, &c->cfg)) < 0) goto fail;
    if (H5Lexists(c->f, "fields", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        rc = gl_error(GL_EFORMAT, "%s: dataset /fields is missing", path);
        goto fail;
    }
    size_t bytes = chunk_cache_bytes ? chunk_cache_bytes : DEFAULT_CHUNK_CACHE;
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
        rc = h5_fail("%s: cannot open /fields", path);
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
    if ((c->ftype = field_file_type(c->cfg.encoding)) < 0) {
        rc = h5_fail("cannot build the field type");
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
            rc = h5_fail("%s: cannot open /homographies", path);
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
    if ((ct = clip_type_new()) < 0 || (et = error_type_new()) < 0) {
        rc = h5_fail("cannot build the table types");
        goto fail;
    }
    void *rows;
    if ((rc = table_read(c->f, path, "clips", ct, sizeof(cache_clip), &rows, &c->nclips)) < 0) goto fail;
    c->clips = rows;
    if ((rc = table_read(c->f, path, "errors", et, sizeof(cache_error), &rows, &c->nerrors)) < 0)
        goto fail;
    c->errors = rows;
    for (long i = 0; i < c->nclips; i++) c->clips[i].name[CACHE_NAME_MAX - 1] = 0;
    for (long i = 0; i < c->nerrors; i++) {
        c->errors[i].name[CACHE_NAME_MAX - 1] = 0;
        c->errors[i].message[CACHE_MESSAGE_MAX - 1] = 0;
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

const cache_clip *cache_get_clip(const cache *c, long i)
{
    return i >= 0 && i < c->nclips ? &c->clips[i] : NULL;
}

const cache_error *cache_get_error(const cache *c, long i)
{
    return i >= 0 && i < c->nerrors ? &c->errors[i] : NULL;
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
    if (ci->offset < 0 || ci->offset + offset + L > c->npairs)
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
static int fields_read_raw(cache *c, long row, long n, void *buf)
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
    if (rc < 0) rc = h5_fail("%s: cannot read /fields rows %ld..%ld (damaged chunk?)", c->path, row,
                             row + n - 1);
    return rc;
}

int cache_read_fields(cache *c, long clip, long offset, int L, float *out)
{
    long row = 0;
    h5_quiet();
    int rc = check_range(c, clip, offset, L, &row);
    if (rc < 0) return rc;
    size_t n = (size_t)L * (size_t)c->cfg.channels * (size_t)c->cfg.height * (size_t)c->cfg.width;
    uint16_t *q = scratch_get(c, n * 2);
    if (!q) return GL_ENOMEM;
    if ((rc = fields_read_raw(c, row, L, q)) < 0) return rc;
    if (c->cfg.encoding == CACHE_INT16) {
        const int16_t *s = (const int16_t *)q;
        float scale = c->cfg.scale;
        for (size_t i = 0; i < n; i++) out[i] = (float)s[i] * scale;
    } else {
        for (size_t i = 0; i < n; i++) out[i] = half_to_float(q[i]);
    }
    return 0;
}

int cache_read_homographies(cache *c, long clip, long offset, int L, float *out)
{
    long row = 0;
    h5_quiet();
    if (c->homs < 0) return gl_error(GL_ENOTFOUND, "%s: method '%s' stores no homographies", c->path,
                                     c->cfg.method);
    int rc = check_range(c, clip, offset, L, &row);
    if (rc < 0) return rc;
    if (rows_read(c->homs, H5T_NATIVE_FLOAT, 3, row, L, out) < 0)
        return h5_fail("%s: cannot read /homographies rows %ld..%ld", c->path, row, row + L - 1);
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

long cache_verify(cache *c, cache_report_fn fn, void *ctx)
{
    reporter r = { fn, ctx, 0 };
    int nshard;
    uint8_t *set = NULL;
    int64_t *all = NULL;
    float *buf = NULL;
    long rc;
    h5_quiet();
    if ((rc = shard_parse(c->cfg.shard, &nshard, &set)) < 0) return rc;
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
        next_offset = ci->offset + (ci->pairs > 0 ? ci->pairs : 0);
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
    /* every value readable and finite */
    size_t per = (size_t)c->cfg.channels * (size_t)c->cfg.height * (size_t)c->cfg.width;
    buf = gl_malloc(per * sizeof *buf);
    if (!buf) { rc = GL_ENOMEM; goto fail; }
    for (long i = 0; i < c->nclips; i++) {
        const cache_clip *ci = &c->clips[i];
        for (long p = 0; p < ci->pairs; p++) {
            if (ci->offset + p >= c->npairs) break;
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

/* ---- merge ---------------------------------------------------------------- */

typedef struct {
    cache_clip row;
    int input;
} merge_clip;

typedef struct {
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
static int copy_clip(h5out *o, const char *opath, cache *src, long i, void **buf, size_t *bufn)
{
    const cache_clip *ci = &src->clips[i];
    size_t per = (size_t)o->cfg.channels * (size_t)o->cfg.height * (size_t)o->cfg.width;
    int rc;
    if (ci->pairs < 0 || ci->offset < 0 || ci->offset + ci->pairs > src->npairs)
        return gl_error(GL_EFORMAT, "%s: clip '%s' rows %lld..%lld are outside /fields (%ld rows)",
                        src->path, ci->name, (long long)ci->offset,
                        (long long)(ci->offset + ci->pairs - 1), src->npairs);
    if ((rc = h5out_extend(o, opath, o->pairs + ci->pairs)) < 0) return rc;
    for (long p = 0; p < ci->pairs; p++) {
        hsize_t so[4] = { (hsize_t)(ci->offset + p), 0, 0, 0 }, dof[4] = { (hsize_t)(o->pairs + p), 0, 0, 0 };
        if (src->raw_ok) { /* the compressed, checksummed chunk as it is */
            hsize_t nbytes = 0;
            uint32_t mask = 0;
            if (H5Dget_chunk_storage_size(src->fields, so, &nbytes) < 0 || nbytes == 0)
                return h5_fail("%s: chunk of /fields row %lld is missing", src->path,
                               (long long)so[0]);
            if (*bufn < nbytes) {
                void *q = gl_realloc(*buf, nbytes);
                if (!q) return GL_ENOMEM;
                *buf = q;
                *bufn = nbytes;
            }
            if (H5Dread_chunk(src->fields, H5P_DEFAULT, so, &mask, *buf) < 0)
                return h5_fail("%s: cannot read the chunk of /fields row %lld", src->path,
                               (long long)so[0]);
            if (H5Dwrite_chunk(o->fields, H5P_DEFAULT, mask, dof, nbytes, *buf) < 0)
                return h5_fail("%s: cannot write the chunk of /fields row %lld", opath,
                               (long long)dof[0]);
        } else { /* another layout: decode and encode */
            if (*bufn < per * 2) {
                void *q = gl_realloc(*buf, per * 2);
                if (!q) return GL_ENOMEM;
                *buf = q;
                *bufn = per * 2;
            }
            if ((rc = fields_read_raw(src, (long)so[0], 1, *buf)) < 0) return rc;
            if (rows_write(o->fields, o->ftype, 4, (long)dof[0], 1, *buf) < 0)
                return h5_fail("%s: cannot write /fields row %lld", opath, (long long)dof[0]);
        }
    }
    if (o->homs >= 0 && ci->pairs > 0) {
        float *h = gl_malloc(sizeof *h * 9 * (size_t)ci->pairs);
        if (!h) return GL_ENOMEM;
        rc = 0;
        if (rows_read(src->homs, H5T_NATIVE_FLOAT, 3, (long)ci->offset, ci->pairs, h) < 0)
            rc = h5_fail("%s: cannot read the homographies of '%s'", src->path, ci->name);
        else if (rows_write(o->homs, H5T_NATIVE_FLOAT, 3, o->pairs, ci->pairs, h) < 0)
            rc = h5_fail("%s: cannot write homographies", opath);
        gl_free(h);
        if (rc < 0) return rc;
    }
    o->pairs += ci->pairs;
    return 0;
}

/* Merges inputs into tmp, then renames it to out. `expect` (may be NULL) is
 * the configuration the inputs must have, shard included. */
static int merge_impl(const char *out, const char *const *inputs, int n, const cache_config *expect)
{
    merge_clip *clips = NULL;
    merge_error *errs = NULL;
    cache_clip *orows = NULL;
    cache_error *oerrs = NULL;
    uint8_t *uni = NULL, *set = NULL;
    long nc = 0, ne = 0, capc = 0, cape = 0;
    cache *src = NULL;
    cache_config cfg;
    char *tmp = NULL;
    void *buf = NULL;
    size_t bufn = 0;
    int nshard = 0, rc, src_input = -1, created = 0;
    h5out o;
    memset(&o, 0, sizeof o);
    o.f = o.fields = o.homs = o.ftype = -1;
    if (n < 1) return gl_error(GL_EINVAL, "merge into %s: no inputs", out);
    /* pass 1: tables and configurations */
    for (int i = 0; i < n; i++) {
        if ((rc = cache_open(inputs[i], (size_t)1 << 20, &src)) < 0) goto fail;
        const cache_config *sc = cache_get_config(src);
        int sn;
        if ((rc = shard_parse(sc->shard, &sn, &set)) < 0) goto fail;
        if (i == 0) {
            cfg = *sc;
            nshard = sn;
            if (!(uni = gl_calloc((size_t)sn, 1))) { rc = GL_ENOMEM; goto fail; }
        }
        const char *diff = expect ? config_diff(expect, sc, 1) : config_diff(&cfg, sc, 0);
        if (diff) {
            rc = gl_error(GL_EINVAL, "%s: its %s differs from %s", inputs[i], diff,
                          expect ? "this run's" : inputs[0]);
            goto fail;
        }
        if (sn != nshard) {
            rc = gl_error(GL_EINVAL, "%s: shard %s is not one of /%d like %s", inputs[i], sc->shard,
                          nshard, inputs[0]);
            goto fail;
        }
        for (int k = 0; k < sn; k++) uni[k] |= set[k];
        gl_free(set);
        set = NULL;
        if (nc + src->nclips > capc) {
            long cap = (nc + src->nclips) * 2 + 16;
            merge_clip *p = gl_realloc(clips, sizeof *p * (size_t)cap);
            if (!p) { rc = GL_ENOMEM; goto fail; }
            clips = p;
            capc = cap;
        }
        if (ne + src->nerrors > cape) {
            long cap = (ne + src->nerrors) * 2 + 16;
            merge_error *p = gl_realloc(errs, sizeof *p * (size_t)cap);
            if (!p) { rc = GL_ENOMEM; goto fail; }
            errs = p;
            cape = cap;
        }
        for (long k = 0; k < src->nclips; k++) clips[nc++] = (merge_clip){ src->clips[k], i };
        for (long k = 0; k < src->nerrors; k++) errs[ne++] = (merge_error){ src->errors[k], i };
        cache_close(&src);
    }
    if (nc > 0) qsort(clips, (size_t)nc, sizeof *clips, cmp_merge_clip);
    if (ne > 0) qsort(errs, (size_t)ne, sizeof *errs, cmp_merge_error);
    for (long i = 1; i < nc; i++)
        if (clips[i].row.index == clips[i - 1].row.index) {
            rc = gl_error(GL_EINVAL, "clip %lld (%s) is in both %s and %s", (long long)clips[i].row.index,
                          clips[i].row.name, inputs[clips[i - 1].input], inputs[clips[i].input]);
            goto fail;
        }
    for (long i = 1; i < ne; i++)
        if (errs[i].row.index == errs[i - 1].row.index) {
            rc = gl_error(GL_EINVAL, "failed clip %lld (%s) is in both %s and %s",
                          (long long)errs[i].row.index, errs[i].row.name, inputs[errs[i - 1].input],
                          inputs[errs[i].input]);
            goto fail;
        }
    for (long i = 0, j = 0; i < nc && j < ne;) { /* a clip both done and failed */
        if (clips[i].row.index == errs[j].row.index) {
            rc = gl_error(GL_EINVAL, "clip %lld (%s) is stored in %s and recorded as failed in %s",
                          (long long)clips[i].row.index, clips[i].row.name, inputs[clips[i].input],
                          inputs[errs[j].input]);
            goto fail;
        }
        if (clips[i].row.index < errs[j].row.index) i++;
        else j++;
    }
    if ((rc = shard_format(cfg.shard, sizeof cfg.shard, nshard, uni)) < 0) goto fail;
    /* pass 2: copy in index order */
    if (!(tmp = str_cat(out, ".tmp"))) { rc = GL_ENOMEM; goto fail; }
    if ((rc = h5out_create(&o, tmp, &cfg)) < 0) goto fail;
    created = 1;
    orows = gl_malloc(sizeof *orows * (size_t)(nc + 1));
    oerrs = gl_malloc(sizeof *oerrs * (size_t)(ne + 1));
    if (!orows || !oerrs) { rc = GL_ENOMEM; goto fail; }
    for (long i = 0; i < nc; i++) {
        if (clips[i].input != src_input) {
            cache_close(&src);
            if ((rc = cache_open(inputs[clips[i].input], (size_t)1 << 20, &src)) < 0) goto fail;
            src_input = clips[i].input;
        }
        long row;
        if ((rc = cache_find_index(src, clips[i].row.index, &row)) < 0) goto fail;
        orows[i] = src->clips[row];
        orows[i].offset = o.pairs;
        if ((rc = copy_clip(&o, tmp, src, row, &buf, &bufn)) < 0) goto fail;
    }
    cache_close(&src);
    for (long i = 0; i < ne; i++) oerrs[i] = errs[i].row;
    rc = h5out_finish(&o, tmp, out, nc, orows, ne, oerrs, 1);
    if (rc == 0) created = 0;
fail:
    if (rc < 0) h5out_abort(&o);
    if (created && tmp) unlink(tmp);
    cache_close(&src);
    gl_free(buf);
    gl_free(tmp);
    gl_free(oerrs);
    gl_free(orows);
    gl_free(set);
    gl_free(uni);
    gl_free(errs);
    gl_free(clips);
    return rc;
}

int cache_merge(const char *out, const char *const *inputs, int n_inputs)
{
    h5_quiet();
    for (int i = 0; i < n_inputs; i++) {
        struct stat a, b;
        if (stat(out, &a) == 0 && stat(inputs[i], &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return gl_error(GL_EINVAL, "merge: the output %s is also input %d", out, i + 1);
    }
    return merge_impl(out, inputs, n_inputs, NULL);
}

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
    h5out o;
    char *tmp, *final;
    void *q;
    size_t qn;
};

/* Spool names: c<index>.h5 (a clip), e<index>.h5 (a failure), config.h5. */
static char *spool_name(const cache_writer *w, char kind, int64_t index, const char *suffix)
{
    char name[64];
    snprintf(name, sizeof name, "%c%012lld.h5%s", kind, (long long)index, suffix);
    return path_join(w->spool, name);
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
    char *tmp = str_cat(path, ".tmp");
    h5out o;
    if (!tmp) return GL_ENOMEM;
    int rc = h5out_create(&o, tmp, cfg);
    if (rc == 0) rc = h5out_finish(&o, tmp, path, 0, NULL, 0, NULL, 1);
    if (rc < 0) unlink(tmp);
    gl_free(tmp);
    return rc;
}

int cache_writer_open(const char *path, const cache_config *cfg, cache_writer **out)
{
    cache_writer *w = NULL;
    cache *prev = NULL;
    DIR *dir = NULL;
    char *p = NULL;
    int rc;
    *out = NULL;
    h5_quiet();
    if ((rc = cache_config_validate(cfg)) < 0) return rc;
    if (!(w = gl_calloc(1, sizeof *w))) return GL_ENOMEM;
    w->lock_fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    w->cfg = *cfg;
    if (!(w->path = gl_strdup(path)) || !(w->spool = str_cat(path, ".parts")) ||
        !(w->done = gl_calloc((size_t)cfg->total_clips, 1))) {
        rc = GL_ENOMEM;
        goto fail;
    }
    if ((rc = gl_mkdirs(w->spool)) < 0) goto fail;
    if (!(p = path_join(w->spool, "lock"))) { rc = GL_ENOMEM; goto fail; }
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
    if (!(p = path_join(w->spool, "config.h5"))) { rc = GL_ENOMEM; goto fail; }
    if (access(p, F_OK) == 0) {
        if ((rc = cache_open(p, 0, &prev)) < 0) goto fail;
        const char *diff = config_diff(cfg, cache_get_config(prev), 1);
        if (diff) {
            rc = gl_error(GL_EINVAL, "%s was started with a different %s; rerun with the same options "
                          "or delete %s to start over", w->spool, diff, w->spool);
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
        const char *diff = config_diff(cfg, cache_get_config(prev), 1);
        if (diff) {
            rc = gl_error(GL_EINVAL, "%s exists with a different %s; use another output or delete it",
                          path, diff);
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
            if (!(p = path_join(w->spool, de->d_name))) { rc = GL_ENOMEM; goto fail; }
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
    h5_quiet();
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
    if ((rc = h5out_create(&cw->o, cw->tmp, &w->cfg)) < 0) goto fail;
    *out = cw;
    return 0;
fail:
    cache_clip_abort(&cw);
    return rc;
}

int cache_clip_append(cache_clip_writer *cw, int n, const float *fields, const float *homs)
{
    h5_quiet();
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
            q[i] = half_from_float(fields[i]);
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
    int rc = h5out_extend(&cw->o, cw->tmp, row + n);
    if (rc < 0) return rc;
    if (rows_write(cw->o.fields, cw->o.ftype, 4, row, n, cw->q) < 0)
        return h5_fail("%s: cannot write fields", cw->tmp);
    if (homs && rows_write(cw->o.homs, H5T_NATIVE_FLOAT, 3, row, n, homs) < 0)
        return h5_fail("%s: cannot write homographies", cw->tmp);
    cw->o.pairs += n;
    cw->info.pairs += n;
    return 0;
}

int cache_clip_commit(cache_clip_writer **pcw)
{
    cache_clip_writer *cw = *pcw;
    h5_quiet();
    int rc = h5out_finish(&cw->o, cw->tmp, cw->final, 1, &cw->info, 0, NULL, 0);
    if (rc == 0) mark_done(cw->w, cw->info.index);
    cache_clip_abort(pcw);
    return rc;
}

void cache_clip_abort(cache_clip_writer **pcw)
{
    cache_clip_writer *cw = pcw ? *pcw : NULL;
    if (!cw) return;
    h5_quiet();
    h5out_abort(&cw->o);
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
    h5out o;
    char *tmp = NULL, *final = NULL;
    int rc;
    h5_quiet();
    if (w->finished) return gl_error(GL_EINVAL, "%s: the writer has finished", w->path);
    if (index < 0 || index >= w->cfg.total_clips)
        return gl_error(GL_EINVAL, "clip index %lld outside 0..%ld", (long long)index,
                        w->cfg.total_clips - 1);
    memset(&e, 0, sizeof e);
    e.index = index;
    copy_str(e.name, sizeof e.name, name);
    copy_str(e.message, sizeof e.message, message);
    if (!(tmp = spool_name(w, 'e', index, ".tmp")) || !(final = spool_name(w, 'e', index, ""))) {
        rc = GL_ENOMEM;
        goto fail;
    }
    if ((rc = h5out_create(&o, tmp, &w->cfg)) < 0) goto fail;
    if ((rc = h5out_finish(&o, tmp, final, 0, NULL, 1, &e, 0)) < 0) goto fail;
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
    h5_quiet();
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
        if (!(inputs[n] = path_join(w->spool, de->d_name))) { rc = GL_ENOMEM; goto fail; }
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
        inputs[0] = have_prev ? gl_strdup(w->path) : path_join(w->spool, "config.h5");
        if (!inputs[0]) { rc = GL_ENOMEM; goto fail; }
        if ((rc = merge_impl(w->path, (const char *const *)inputs, n, &w->cfg)) < 0) goto fail;
    }
    /* PATH is complete: the spool is no longer needed */
    for (int i = 0; i < n; i++)
        if (strncmp(inputs[i], w->spool, strlen(w->spool)) == 0) unlink(inputs[i]);
    char *p = path_join(w->spool, "config.h5");
    if (p) unlink(p);
    gl_free(p);
    if ((p = path_join(w->spool, "lock"))) unlink(p);
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
