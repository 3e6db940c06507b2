/*
 * cache_h5.c — the motion cache's HDF5 helpers (cache_private.h): errors,
 * paths and durable renames, float16, the configuration and its root
 * attributes, the /clips, /errors and /warnings tables, and output files
 * (create, extend, write the tables and publish).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/cache_private.h"

/* ---- HDF5 errors --------------------------------------------------------- */

static herr_t h5_walk_first(unsigned n, const H5E_error2_t *e, void *ctx)
{
    if (n == 0 && e->desc) snprintf((char *)ctx, 256, "%s", e->desc);
    return 0;
}

/* GL_EHDF5 with "what (HDF5: innermost reason)". */
int cache_h5_fail(const char *fmt, ...)
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

void cache_copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

char *cache_path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = gl_malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

char *cache_str_cat(const char *a, const char *b)
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
    cache_copy_str(dir, sizeof dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash) cache_copy_str(dir, sizeof dir, ".");
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

uint16_t cache_half_from_float(float f)
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

float cache_half_to_float(uint16_t h)
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
    cache_copy_str(cfg->shard, sizeof cfg->shard, "0/1");
}

/* "K1,K2,.../N" → n and a set of n flags (gl_malloc'ed). */
int cache_shard_parse(const char *s, int *n_out, uint8_t **set_out)
{
    const char *slash = strrchr(s, '/');
    char *end;
    uint8_t *set = NULL;
    if (!slash) goto bad;
    long n = strtol(slash + 1, &end, 10);
    if (end == slash + 1 || *end || n < 1 || n > CACHE_MAX_SHARDS) goto bad;
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
                    CACHE_MAX_SHARDS);
}

int cache_shard_format(char *buf, size_t size, int n, const uint8_t *set)
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
    if (n < 1 || n > CACHE_MAX_SHARDS || k < 0 || k >= n)
        return gl_error(GL_EINVAL, "shard %d/%d: expected 0 <= K < N <= %d", k, n, CACHE_MAX_SHARDS);
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
    int rc = cache_shard_parse(cfg->shard, &n, &set);
    if (rc < 0) return gl_error_prefix(rc, "cache config");
    gl_free(set);
    return 0;
}

/* Name of the first field that differs, or NULL. */
const char *cache_config_diff(const cache_config *a, const cache_config *b, int with_shard)
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

/* A fixed-length string (its bytes and the NUL): the value lives in the
 * object header, which the latest format checksums. A variable-length string
 * would live in the global heap, which carries no checksum and whose damaged
 * object sizes libhdf5 1.10 trusts (tests/fuzz/README.md: reads of ~2^40
 * bytes, endless loops). attr_read_str still reads both kinds. */
static int attr_write_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1), s = -1, a = -1;
    int rc = GL_EHDF5;
    if (t < 0 || H5Tset_size(t, strlen(value) + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0)
        goto fail;
    if ((s = H5Screate(H5S_SCALAR)) < 0) goto fail;
    if ((a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto fail;
    if (H5Awrite(a, t, value) < 0) goto fail;
    rc = 0;
fail:
    if (rc < 0) rc = cache_h5_fail("cannot write attribute '%s'", name);
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
    if (rc < 0) rc = cache_h5_fail("cannot write attribute '%s'", name);
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
        cache_copy_str(buf, size, v);
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
        cache_copy_str(buf, size, tmp);
        gl_free(tmp);
    }
    rc = 0;
    goto fail;
h5fail:
    rc = cache_h5_fail("%s: cannot read attribute '%s'", file, name);
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
        return cache_h5_fail("%s: cannot read attribute '%s' as a number", file, name);
    }
    H5Aclose(a);
    return 0;
}

static int config_write(hid_t f, const cache_config *cfg)
{
    int rc;
    int32_t h = cfg->height, w = cfg->width, ch = cfg->channels, version = CACHE_FORMAT_VERSION;
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
    if ((rc = attr_write_num(f, "format_version", H5T_STD_I32LE, &version)) < 0) return rc;
    return 0;
}

int cache_config_read(hid_t f, const char *file, cache_config *cfg)
{
    int rc;
    char enc[32];
    int32_t h, w, ch, version = 1; /* format 1 has no format_version */
    double scale;
    int64_t total;
    cache_config_default(cfg);
    htri_t has_version = H5Aexists(f, "format_version");
    if (has_version < 0) return cache_h5_fail("%s: cannot look for attribute 'format_version'", file);
    if (has_version && (rc = attr_read_num(f, file, "format_version", H5T_NATIVE_INT32, &version)) < 0)
        return rc;
    if (version < 1 || version > CACHE_FORMAT_VERSION)
        return gl_error(GL_EFORMAT, "%s: cache format_version %d, this glocal reads 1..%d", file,
                        (int)version, CACHE_FORMAT_VERSION);
    cfg->format_version = version;
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
    if (has < 0) return cache_h5_fail("%s: cannot look for /homographies", file);
    cfg->has_homographies = has > 0;
    rc = cache_config_validate(cfg);
    if (rc == GL_ENOMEM) return rc;
    if (rc < 0) return gl_error_prefix(GL_EFORMAT, "%s", file);
    return 0;
}

/* ---- compound types of /clips, /errors and /warnings ------------------- */

static hid_t str_type_new(size_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, n) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

hid_t cache_clip_h5type(void)
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

hid_t cache_error_h5type(void)
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
    if (rc < 0) rc = cache_h5_fail("cannot write /%s", name);
    if (d >= 0) H5Dclose(d);
    if (s >= 0) H5Sclose(s);
    if (ft >= 0) H5Tclose(ft);
    return rc;
}

/* Reads a whole 1-D table into *rows (gl_malloc'ed, row_size each). */
int cache_table_read(hid_t f, const char *file, const char *name, hid_t memtype, size_t row_size,
                     int optional, void **rows, long *n)
{
    hid_t d = -1, s = -1;
    void *buf = NULL;
    int rc = GL_EHDF5;
    htri_t ex = H5Lexists(f, name, H5P_DEFAULT);
    if (ex == 0 && optional) {
        if (!(*rows = gl_calloc(1, row_size))) return GL_ENOMEM;
        *n = 0;
        return 0;
    }
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
    rc = cache_h5_fail("%s: cannot read /%s", file, name);
fail:
    gl_free(buf);
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* ---- an output file: create, append, close --------------------------- */
void cache_out_abort(cache_out *o)
{
    if (o->homs >= 0) H5Dclose(o->homs);
    if (o->fields >= 0) H5Dclose(o->fields);
    if (o->ftype >= 0) H5Tclose(o->ftype);
    if (o->f >= 0) H5Fclose(o->f);
    o->f = o->fields = o->homs = o->ftype = -1;
}

hid_t cache_field_h5type(cache_encoding e)
{
    return e == CACHE_INT16 ? H5Tcopy(H5T_STD_I16LE) : f16_type_new();
}

/* Creates `path` (truncating) with the attributes and empty extendible datasets. */
int cache_out_create(cache_out *o, const char *path, const cache_config *cfg)
{
    hid_t fapl = -1, sp = -1, dcpl = -1;
    int rc = GL_EHDF5;
    o->f = o->fields = o->homs = o->ftype = -1;
    o->cfg = *cfg;
    o->pairs = 0;
    if ((fapl = gl_h5_fapl_new()) < 0) goto fail; /* survives a full disk */
    /* The latest format checksums every metadata block: damage is detected. */
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) goto fail;
    if ((o->f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0) goto fail;
    if ((rc = config_write(o->f, cfg)) < 0) goto fail;
    rc = GL_EHDF5;
    if ((o->ftype = cache_field_h5type(cfg->encoding)) < 0) goto fail;
    hsize_t C = (hsize_t)cfg->channels, Hh = (hsize_t)cfg->height, Ww = (hsize_t)cfg->width;
    hsize_t dims[4] = { 0, C, Hh, Ww }, maxd[4] = { H5S_UNLIMITED, C, Hh, Ww };
    hsize_t chunk[4] = { 1, C, Hh, Ww };
    if ((sp = H5Screate_simple(4, dims, maxd)) < 0) goto fail;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, 4, chunk) < 0 ||
        H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, CACHE_DEFLATE_LEVEL) < 0 ||
        H5Pset_fletcher32(dcpl) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)
        goto fail;
    if ((o->fields = H5Dcreate2(o->f, "fields", o->ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        goto fail;
    H5Sclose(sp);
    H5Pclose(dcpl);
    sp = dcpl = -1;
    if (cfg->has_homographies) {
        hsize_t hd[3] = { 0, 3, 3 }, hm[3] = { H5S_UNLIMITED, 3, 3 }, hc[3] = { CACHE_HOMOG_CHUNK, 3, 3 };
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
    if (rc == GL_EHDF5) rc = cache_h5_fail("%s: cannot create the cache file", path);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (fapl >= 0) H5Pclose(fapl);
    if (rc < 0) cache_out_abort(o);
    return rc;
}

/* Grows /fields (and /homographies) to `pairs` rows. */
int cache_out_extend(cache_out *o, const char *path, long pairs)
{
    hsize_t dims[4] = { (hsize_t)pairs, (hsize_t)o->cfg.channels, (hsize_t)o->cfg.height,
                        (hsize_t)o->cfg.width };
    int e = gl_h5_write_errno(o->f);
    if (e) return gl_error(GL_EIO, "%s: %s", path, strerror(e));
    if (H5Dset_extent(o->fields, dims) < 0) return cache_h5_fail("%s: cannot extend /fields", path);
    if (o->homs >= 0) {
        hsize_t hd[3] = { (hsize_t)pairs, 3, 3 };
        if (H5Dset_extent(o->homs, hd) < 0) return cache_h5_fail("%s: cannot extend /homographies", path);
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

int cache_rows_write(hid_t d, hid_t memtype, int rank, long row, long n, const void *buf)
{
    return rows_io(d, memtype, rank, row, n, (void *)buf, 1);
}

int cache_rows_read(hid_t d, hid_t memtype, int rank, long row, long n, void *buf)
{
    return rows_io(d, memtype, rank, row, n, buf, 0);
}

/* Writes the tables, closes, and publishes tmp as path. */
int cache_out_finish(cache_out *o, const char *tmp, const char *path, const cache_rows *rows,
                     int sync_dir)
{
    hid_t ct = cache_clip_h5type(), et = cache_error_h5type();
    int rc = GL_EHDF5;
    if (ct < 0 || et < 0) {
        rc = cache_h5_fail("cannot build the table types");
        goto fail;
    }
    if ((rc = table_write(o->f, "clips", ct, rows->nclips, rows->clips)) < 0) goto fail;
    if ((rc = table_write(o->f, "errors", et, rows->nerrors, rows->errors)) < 0) goto fail;
    if ((rc = table_write(o->f, "warnings", et, rows->nwarnings, rows->warnings)) < 0) goto fail;
    H5Dclose(o->fields);
    o->fields = -1;
    if (o->homs >= 0) H5Dclose(o->homs);
    o->homs = -1;
    hid_t f = o->f;
    o->f = -1;
    if ((rc = gl_h5_close(f, tmp)) < 0) {
        if (rc == GL_EHDF5) rc = cache_h5_fail("%s: cannot close", tmp);
        goto fail;
    }
    rc = publish(tmp, path, sync_dir);
fail:
    if (ct >= 0) H5Tclose(ct);
    if (et >= 0) H5Tclose(et);
    cache_out_abort(o);
    return rc;
}
