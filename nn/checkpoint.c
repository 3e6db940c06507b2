/* checkpoint.c — model checkpoints as HDF5 files (readable with h5py).
 *
 * Layout in nn.h. Every tensor is stored at its own dtype (float16 as its
 * raw uint16 bits, bool as uint8) with a "dtype" attribute naming the
 * nn_dtype, so a round trip is bit-exact. Files are written to a temp name in
 * the same folder and renamed into place: a crash never leaves a half file. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nn/hdf5_util.h"
#include "nn/nn.h"

#define CKPT_MAGIC "glocal-checkpoint"
#define CKPT_FORMAT 1

static hid_t h5_type(nn_dtype dt)
{
    switch (dt) {
    case NN_F32: return H5T_NATIVE_FLOAT;
    case NN_F64: return H5T_NATIVE_DOUBLE;
    case NN_F16: return H5T_NATIVE_UINT16;
    case NN_I64: return H5T_NATIVE_INT64;
    case NN_I32: return H5T_NATIVE_INT32;
    case NN_I16: return H5T_NATIVE_INT16;
    case NN_I8: return H5T_NATIVE_INT8;
    case NN_U8: return H5T_NATIVE_UINT8;
    case NN_BOOL: return H5T_NATIVE_UINT8;
    }
    return H5T_NATIVE_FLOAT;
}

static int write_str_attr(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, &value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    return e < 0 ? -1 : 0;
}

static int write_i64_attr(hid_t obj, const char *name, int64_t v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_NATIVE_INT64, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    return e < 0 ? -1 : 0;
}

/* *out is gl_malloc'ed. */
static int read_str_attr(hid_t obj, const char *name, char **out)
{
    *out = NULL;
    if (H5Aexists(obj, name) <= 0) return GL_ENOTFOUND;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return GL_EHDF5;
    hid_t ft = H5Aget_type(a);
    int rc = GL_EFORMAT;
    if (H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t t = H5Tcopy(ft); /* same character set: no conversion path is needed */
            char *v = NULL;
            if (H5Aread(a, t, &v) >= 0 && v) {
                *out = gl_strdup(v);
                rc = *out ? 0 : GL_ENOMEM;
                H5free_memory(v);
            }
            H5Tclose(t);
        } else {
            size_t n = H5Tget_size(ft);
            char *v = gl_calloc(n + 1, 1);
            if (!v) rc = GL_ENOMEM;
            else if (H5Aread(a, ft, v) >= 0) { *out = v; rc = 0; }
            else gl_free(v);
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int write_tensor(hid_t group, const char *name, const nn_tensor *t, hid_t dcpl)
{
    int64_t shape[NN_MAX_DIMS];
    int nd = nn_shape(t, shape);
    if (nd < 0) return nd;
    nn_dtype dt = nn_get_dtype(t);
    int64_t n = nn_numel(t);
    size_t nbytes = (size_t)n * nn_dtype_size(dt);
    void *buf = gl_malloc(nbytes);
    if (!buf) return GL_ENOMEM;
    int rc = nn_copy_to(t, buf, nbytes, dt);
    if (rc < 0) { gl_free(buf); return rc; }
    hsize_t dims[NN_MAX_DIMS];
    for (int i = 0; i < nd; i++) dims[i] = (hsize_t)shape[i];
    hid_t space = nd == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(nd, dims, NULL);
    hid_t ds = H5Dcreate2(group, name, h5_type(dt), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t e = ds < 0 ? -1 : H5Dwrite(ds, h5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (e >= 0) e = write_str_attr(ds, "dtype", nn_dtype_name(dt));
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    gl_free(buf);
    return e < 0 ? gl_error(GL_EHDF5, "cannot write tensor '%s'", name) : 0;
}

int nn_checkpoint_save(const char *path, const nn_params *p, const nn_checkpoint_meta *meta)
{
    if (!path || !p) return gl_error(GL_EINVAL, "nn_checkpoint_save: NULL argument");
    gl_h5_quiet q = gl_h5_quiet_begin();
    int rc = 0;
    size_t n = strlen(path) + 32;
    char *tmp = gl_malloc(n);
    hid_t f = -1, gp = -1, gb = -1, go = -1, fcpl = -1, dcpl = -1, fapl = -1;
    if (!tmp) { rc = GL_ENOMEM; goto fail; }
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    fcpl = H5Pcreate(H5P_FILE_CREATE);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0); /* same content, same bytes */
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    fapl = gl_h5_fapl_new(); /* a full disk: an error here, not a crash at exit */
    f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (f < 0) {
        H5Pclose(gcpl);
        rc = gl_error(GL_EIO, "%s: cannot create checkpoint file: %s", tmp, strerror(errno));
        goto fail;
    }
    gp = H5Gcreate2(f, "params", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    gb = H5Gcreate2(f, "buffers", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (meta && meta->optimizer_state) go = H5Gcreate2(f, "optimizer", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (gp < 0 || gb < 0 || (meta && meta->optimizer_state && go < 0)) {
        rc = gl_error(GL_EHDF5, "%s: cannot create groups", tmp);
        goto fail;
    }
    if (write_str_attr(f, "magic", CKPT_MAGIC) < 0 || write_i64_attr(f, "format_version", CKPT_FORMAT) < 0 ||
        write_str_attr(f, "glocal_version", GLOCAL_VERSION) < 0 ||
        write_i64_attr(f, "step", meta ? meta->step : 0) < 0 ||
        (meta && meta->config_json && write_str_attr(f, "config", meta->config_json) < 0) ||
        (meta && meta->optimizer_kind && go >= 0 && write_str_attr(go, "kind", meta->optimizer_kind) < 0)) {
        rc = gl_error(GL_EHDF5, "%s: cannot write attributes", tmp);
        goto fail;
    }
    for (int i = 0; i < p->n; i++)
        if ((rc = write_tensor(p->is_buffer[i] ? gb : gp, p->names[i], p->tensors[i], dcpl)) < 0) goto fail;
    if (go >= 0) {
        const nn_params *s = meta->optimizer_state;
        for (int i = 0; i < s->n; i++)
            if ((rc = write_tensor(go, s->names[i], s->tensors[i], dcpl)) < 0) goto fail;
    }
    if (go >= 0) { H5Gclose(go); go = -1; }
    H5Gclose(gb); gb = -1;
    H5Gclose(gp); gp = -1;
    rc = gl_h5_close(f, tmp);
    f = -1;
    if (rc < 0) goto fail;
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        rc = gl_error(GL_EIO, "%s: cannot flush: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        goto fail;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        rc = gl_error(GL_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
        goto fail;
    }
    gl_free(tmp);
    H5Pclose(dcpl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    gl_h5_quiet_end(q);
    return 0;
fail:
    if (go >= 0) H5Gclose(go);
    if (gb >= 0) H5Gclose(gb);
    if (gp >= 0) H5Gclose(gp);
    if (f >= 0) H5Fclose(f);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (fapl >= 0) H5Pclose(fapl);
    if (tmp) { unlink(tmp); gl_free(tmp); }
    gl_h5_quiet_end(q);
    if (rc < 0 && strstr(gl_last_error(), path) == NULL)
        gl_error_prefix(rc, "%s", path);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int count;
} strbuf;

static void sb_add(strbuf *s, const char *fmt, const char *a, const char *b, const char *c)
{
    char line[512];
    snprintf(line, sizeof line, fmt, a, b, c);
    size_t n = strlen(line);
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->cap ? s->cap * 2 : 256) + n;
        char *nb = gl_realloc(s->buf, cap);
        if (!nb) return;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, line, n + 1);
    s->len += n;
    s->count++;
}

static void shape_text(char *buf, size_t n, const hsize_t *d, int nd)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++) o += (size_t)snprintf(buf + o, n - o, i ? ", %llu" : "%llu", (unsigned long long)d[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

typedef struct {
    const nn_params *p;
    int buffers;
    strbuf *diff;
} extra_ctx;

static herr_t find_extra(hid_t g, const char *name, const H5L_info_t *info, void *vctx)
{
    (void)g; (void)info;
    extra_ctx *c = vctx;
    nn_tensor *t = NULL;
    for (int i = 0; i < c->p->n; i++)
        if (c->p->is_buffer[i] == c->buffers && strcmp(c->p->names[i], name) == 0) t = c->p->tensors[i];
    if (!t) sb_add(c->diff, "\n  unexpected in the file: %s%s%s", c->buffers ? "buffers/" : "params/", name, "");
    return 0;
}

/* The dtype of dataset ds: its "dtype" attribute's. A dataset without one
 * (need_dtype 0: a file h5py wrote from a PyTorch state_dict) is read by its
 * HDF5 class: float as float32, integer as int64. */
static int dataset_dtype(hid_t ds, const char *name, const char *path, int need_dtype, nn_dtype *dt)
{
    char *dts = NULL;
    int rc = read_str_attr(ds, "dtype", &dts);
    *dt = NN_F32;
    if (rc == 0) {
        int found = 0;
        for (int k = 0; k <= NN_BOOL; k++)
            if (strcmp(dts, nn_dtype_name((nn_dtype)k)) == 0) { *dt = (nn_dtype)k; found = 1; }
        if (!found) rc = gl_error(GL_EFORMAT, "%s: dataset '%s' has unknown dtype '%s'", path, name, dts);
    } else if (rc == GL_ENOMEM) {
        /* the message is set */
    } else if (need_dtype || rc != GL_ENOTFOUND) {
        rc = gl_error(GL_EFORMAT, "%s: dataset '%s' has no dtype attribute", path, name);
    } else {
        hid_t ft = H5Dget_type(ds);
        H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
        if (ft >= 0) H5Tclose(ft);
        rc = 0;
        if (cls == H5T_INTEGER) *dt = NN_I64;
        else if (cls != H5T_FLOAT)
            rc = gl_error(GL_EFORMAT, "%s: dataset '%s' holds neither floats nor integers", path, name);
    }
    gl_free(dts);
    return rc;
}

/* Reads dataset `name` of group g into a new CPU tensor of the file's dtype
 * (dataset_dtype). */
static int read_tensor(hid_t g, const char *name, nn_tensor **out, const char *path, int need_dtype)
{
    *out = NULL;
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0) return gl_error(GL_EFORMAT, "%s: cannot open dataset '%s'", path, name);
    nn_dtype dt;
    int rc = dataset_dtype(ds, name, path, need_dtype, &dt);
    hid_t sp = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t d[NN_MAX_DIMS];
    int64_t shape[NN_MAX_DIMS];
    void *buf = NULL;
    if (rc < 0) goto done;
    if (nd < 0 || nd > NN_MAX_DIMS) { rc = gl_error(GL_EFORMAT, "%s: dataset '%s' has bad rank", path, name); goto done; }
    H5Sget_simple_extent_dims(sp, d, NULL);
    size_t n = 1;
    for (int i = 0; i < nd; i++) { shape[i] = (int64_t)d[i]; n *= (size_t)d[i]; }
    buf = gl_malloc(n * nn_dtype_size(dt));
    if (!buf) { rc = GL_ENOMEM; goto done; }
    if (H5Dread(ds, h5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        rc = gl_error(GL_EFORMAT, "%s: cannot read dataset '%s' (truncated or corrupt file?)", path, name);
        goto done;
    }
    rc = nn_from_data(out, buf, shape, nd, dt);
done:
    gl_free(buf);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

static herr_t load_opt(hid_t g, const char *name, const H5L_info_t *info, void *vctx)
{
    (void)info;
    void **c = vctx;
    nn_params *st = c[0];
    const char *path = c[1];
    nn_tensor *t = NULL;
    int rc = read_tensor(g, name, &t, path, 1);
    if (rc < 0 || (rc = nn_params_add(st, name, t, 1, 1)) < 0) {
        *(int *)c[2] = rc;
        return -1;
    }
    return 0;
}

int nn_checkpoint_load(const char *path, nn_params *p, int64_t *step, char **config, nn_params *opt_state)
{
    if (!path || !p) return gl_error(GL_EINVAL, "nn_checkpoint_load: NULL argument");
    if (config) *config = NULL;
    if (access(path, R_OK) != 0) return gl_error(GL_EIO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    gl_h5_quiet q = gl_h5_quiet_begin();
    int rc = 0;
    hid_t f = -1, gp = -1, gb = -1;
    char *magic = NULL;
    strbuf diff = { 0 };
    nn_tensor *t = NULL;
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        rc = gl_error(GL_EFORMAT, "%s: not a glocal checkpoint (not a readable HDF5 file: truncated or corrupt?)", path);
        goto done;
    }
    if (read_str_attr(f, "magic", &magic) < 0 || strcmp(magic, CKPT_MAGIC) != 0) {
        rc = gl_error(GL_EFORMAT, "%s: not a glocal checkpoint (magic attribute '%s' expected)", path, CKPT_MAGIC);
        goto done;
    }
    int64_t fmt = 0;
    hid_t a = H5Aexists(f, "format_version") > 0 ? H5Aopen(f, "format_version", H5P_DEFAULT) : -1;
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT64, &fmt) < 0 || fmt != CKPT_FORMAT) {
        if (a >= 0) H5Aclose(a);
        rc = gl_error(GL_EFORMAT, "%s: checkpoint format_version %lld, this glocal reads %d", path,
                      (long long)fmt, CKPT_FORMAT);
        goto done;
    }
    H5Aclose(a);
    gp = H5Gopen2(f, "params", H5P_DEFAULT);
    gb = H5Gopen2(f, "buffers", H5P_DEFAULT);
    if (gp < 0 || gb < 0) {
        rc = gl_error(GL_EFORMAT, "%s: checkpoint has no params/ or buffers/ group", path);
        goto done;
    }
    /* First compare names and shapes, all of them, so the message lists every difference. */
    for (int i = 0; i < p->n; i++) {
        hid_t g = p->is_buffer[i] ? gb : gp;
        const char *grp = p->is_buffer[i] ? "buffers/" : "params/";
        if (H5Lexists(g, p->names[i], H5P_DEFAULT) <= 0) {
            sb_add(&diff, "\n  missing from the file: %s%s%s", grp, p->names[i], "");
            continue;
        }
        hid_t ds = H5Dopen2(g, p->names[i], H5P_DEFAULT);
        if (ds < 0) { sb_add(&diff, "\n  unreadable: %s%s%s", grp, p->names[i], ""); continue; }
        hid_t sp = H5Dget_space(ds);
        hsize_t d[NN_MAX_DIMS];
        int nd = H5Sget_simple_extent_ndims(sp);
        if (nd >= 0 && nd <= NN_MAX_DIMS) H5Sget_simple_extent_dims(sp, d, NULL);
        int64_t ms[NN_MAX_DIMS];
        int mnd = nn_shape(p->tensors[i], ms);
        int same = nd == mnd;
        for (int k = 0; same && k < nd; k++) same = (int64_t)d[k] == ms[k];
        if (!same) {
            char fs[128], mss[128];
            shape_text(fs, sizeof fs, d, nd < 0 || nd > NN_MAX_DIMS ? 0 : nd);
            nn_shape_str(p->tensors[i], mss, sizeof mss);
            char nm[300];
            snprintf(nm, sizeof nm, "%s%s", grp, p->names[i]);
            sb_add(&diff, "\n  shape differs: %s is %s in the file, %s in the model", nm, fs, mss);
        }
        H5Sclose(sp);
        H5Dclose(ds);
    }
    extra_ctx ec = { p, 0, &diff };
    H5Literate(gp, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, find_extra, &ec);
    ec.buffers = 1;
    H5Literate(gb, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, find_extra, &ec);
    if (diff.count) {
        rc = gl_error(GL_EFORMAT, "%s: checkpoint does not match the model (%d difference%s):%s", path,
                      diff.count, diff.count == 1 ? "" : "s", diff.buf ? diff.buf : "");
        goto done;
    }
    for (int i = 0; i < p->n; i++) {
        if ((rc = read_tensor(p->is_buffer[i] ? gb : gp, p->names[i], &t, path, 1)) < 0) goto done;
        if ((rc = nn_copy_(p->tensors[i], t)) < 0) {
            gl_error_prefix(rc, "%s: loading '%s'", path, p->names[i]);
            goto done;
        }
        nn_free(&t);
    }
    if (step) {
        *step = 0;
        if (H5Aexists(f, "step") > 0 && (a = H5Aopen(f, "step", H5P_DEFAULT)) >= 0) {
            H5Aread(a, H5T_NATIVE_INT64, step);
            H5Aclose(a);
        }
    }
    if (config && read_str_attr(f, "config", config) == GL_ENOMEM) { rc = GL_ENOMEM; goto done; }
    if (opt_state && H5Lexists(f, "optimizer", H5P_DEFAULT) > 0) {
        hid_t go = H5Gopen2(f, "optimizer", H5P_DEFAULT);
        int orc = 0;
        void *ctx[3] = { opt_state, (void *)path, &orc };
        if (go < 0 || H5Literate(go, H5_INDEX_NAME, H5_ITER_INC, NULL, load_opt, ctx) < 0) {
            rc = orc < 0 ? orc : gl_error(GL_EFORMAT, "%s: cannot read optimizer state", path);
        }
        if (go >= 0) H5Gclose(go);
        if (rc < 0) goto done;
    }
done:
    nn_free(&t);
    gl_free(diff.buf);
    gl_free(magic);
    if (gb >= 0) H5Gclose(gb);
    if (gp >= 0) H5Gclose(gp);
    if (f >= 0) H5Fclose(f);
    gl_h5_quiet_end(q);
    if (rc < 0 && config && *config) { gl_free(*config); *config = NULL; }
    return rc;
}

/* ---- reading parts ------------------------------------------------------------------ */

int nn_checkpoint_read_config(const char *path, char **config)
{
    if (!path || !config) return gl_error(GL_EINVAL, "nn_checkpoint_read_config: NULL argument");
    *config = NULL;
    if (access(path, R_OK) != 0) return gl_error(GL_EIO, "%s: cannot read the checkpoint: %s", path, strerror(errno));
    gl_h5_quiet q = gl_h5_quiet_begin();
    int rc = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        rc = gl_error(GL_EFORMAT, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
        goto done;
    }
    rc = read_str_attr(f, "config", config);
    if (rc == GL_ENOTFOUND) rc = gl_error(GL_ENOTFOUND, "%s: checkpoint has no config attribute", path);
    else if (rc == GL_EFORMAT) rc = gl_error(GL_EFORMAT, "%s: the config attribute is not readable text", path);
    else if (rc < 0 && rc != GL_ENOMEM) rc = gl_error(rc, "%s: cannot read the config attribute", path);
done:
    if (f >= 0) H5Fclose(f);
    gl_h5_quiet_end(q);
    return rc;
}

/* One of nn_checkpoint_read_tensors' names: the dataset GROUP/NAME of f
 * into *out, left NULL when the file has no such dataset. */
static int read_named(hid_t f, const char *path, const char *gname, nn_tensor **out)
{
    const char *slash = strchr(gname, '/');
    char group[64];
    if (!slash || slash == gname || !slash[1] || (size_t)(slash - gname) >= sizeof group)
        return gl_error(GL_EINVAL, "nn_checkpoint_read_tensors: '%s' is not GROUP/NAME", gname);
    snprintf(group, sizeof group, "%.*s", (int)(slash - gname), gname);
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0) return 0;
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0) return gl_error(GL_EFORMAT, "%s: '%s' is not a group", path, group);
    int rc = H5Lexists(g, slash + 1, H5P_DEFAULT) > 0 ? read_tensor(g, slash + 1, out, path, 0) : 0;
    H5Gclose(g);
    return rc;
}

int nn_checkpoint_read_tensors(const char *path, const char *const *names, int n, nn_tensor **out)
{
    if (!path || n < 0 || (n > 0 && (!names || !out)))
        return gl_error(GL_EINVAL, "nn_checkpoint_read_tensors: NULL argument or n < 0");
    for (int i = 0; i < n; i++) out[i] = NULL;
    if (access(path, R_OK) != 0) return gl_error(GL_EIO, "%s: cannot read the checkpoint: %s", path, strerror(errno));
    gl_h5_quiet q = gl_h5_quiet_begin();
    int rc = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) rc = gl_error(GL_EFORMAT, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
    for (int i = 0; rc == 0 && i < n; i++) rc = read_named(f, path, names[i], &out[i]);
    if (f >= 0) H5Fclose(f);
    gl_h5_quiet_end(q);
    if (rc < 0)
        for (int i = 0; i < n; i++) nn_free(&out[i]);
    return rc;
}
