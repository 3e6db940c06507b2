/* synth_gt.c — the ground-truth HDF5 file of one synthetic clip: writing
 * (atomic, no timestamps) and reading back. Schema: synth.h. */
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "datasets/synth_private.h"
#include "nn/hdf5_util.h"

/* ---- ground truth HDF5 -------------------------------------------------- */

static const char gt_convention[] =
    "forward flow at pixel centres (pixel (i,j) centre = (x=i, y=j), y down): pixel p of frame t "
    "moves to p + flow(p) in frame t+1; channel 0 = x, 1 = y, pixels. homography[t] maps frame t "
    "pixel coordinates to frame t+1 (row-major, acting on (x, y, 1)). global_flow = "
    "homography[t] p - p everywhere; local_flow = total flow - global flow on pixels owned by an "
    "object, 0 elsewhere; mask[t] = 0 background, k = object k (1-based, drawn back to front) "
    "owns the pixel in frame t";

/* A scalar attribute stored as file_type, written from *v of mem_type. */
static herr_t attr_scalar(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mem_type, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e;
}

static herr_t attr_int(hid_t loc, const char *name, long long v)
{
    return attr_scalar(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v);
}

static herr_t attr_u64(hid_t loc, const char *name, uint64_t v)
{
    return attr_scalar(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

static herr_t attr_double(hid_t loc, const char *name, double v)
{
    return attr_scalar(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static herr_t attr_text(hid_t loc, const char *name, const char *s)
{
    hid_t ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, strlen(s) + 1);
    H5Tset_strpad(ty, H5T_STR_NULLTERM);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, ty, s);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(ty);
    return e;
}

/* One dataset, chunked one frame pair at a time, shuffle + gzip. */
static herr_t write_dataset(hid_t file, const char *name, hid_t file_type, hid_t mem_type, int rank,
                            const hsize_t *dims, int compress, const void *data)
{
    herr_t e = -1;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    if (sp < 0 || dcpl < 0) goto done;
    H5Pset_obj_track_times(dcpl, 0);
    if (compress) {
        hsize_t chunk[4];
        for (int i = 0; i < rank; i++) chunk[i] = i == 0 ? 1 : dims[i];
        if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
            H5Pset_deflate(dcpl, 4) < 0)
            goto done;
    }
    ds = H5Dcreate2(file, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0) goto done;
    e = H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
done:
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return e;
}

int synth_gt_write(const char *path, const synth_clip *c, const char *cls, uint64_t scene_seed,
                    uint64_t motion_seed)
{
    int rc = 0;
    size_t n = strlen(path) + 8;
    char *tmp = gl_malloc(n);
    if (!tmp) return GL_ENOMEM;
    snprintf(tmp, n, "%s.tmp", path);
    hid_t fcpl = -1, fapl = -1, f = -1;
    gl_h5_quiet q = gl_h5_quiet_begin();
    fcpl = H5Pcreate(H5P_FILE_CREATE);
    fapl = gl_h5_fapl_new(); /* a full disk: an error here, not a crash at exit */
    if (fcpl < 0 || fapl < 0) goto hfail;
    /* no modification times anywhere: same input, same bytes */
    H5Pset_obj_track_times(fcpl, 0);
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (f < 0) {
        rc = gl_error(GL_EIO, "%s: cannot create the file", tmp);
        goto done;
    }
    hsize_t P = (hsize_t)c->frames - 1, H = (hsize_t)c->height, W = (hsize_t)c->width;
    hsize_t dh[3] = { P, 3, 3 }, df[4] = { P, 2, H, W }, dm[3] = { P, H, W };
    if (write_dataset(f, "homography", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, dh, 0,
                      c->homography) < 0 ||
        write_dataset(f, "global_flow", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, df, 1,
                      c->global_flow) < 0 ||
        write_dataset(f, "local_flow", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, df, 1,
                      c->local_flow) < 0 ||
        write_dataset(f, "mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, dm, 1, c->mask) < 0)
        goto hfail;
    if (attr_text(f, "format", "glocal-synth-gt") < 0 || attr_int(f, "version", 1) < 0 ||
        attr_text(f, "convention", gt_convention) < 0 ||
        attr_int(f, "label", c->label + 1) < 0 || attr_text(f, "class", cls) < 0 ||
        attr_int(f, "frames", c->frames) < 0 || attr_int(f, "width", c->width) < 0 ||
        attr_int(f, "height", c->height) < 0 || attr_int(f, "objects", c->objects) < 0 ||
        attr_double(f, "camera_px", c->camera_px) < 0 || attr_u64(f, "scene_seed", scene_seed) < 0 ||
        attr_u64(f, "motion_seed", motion_seed) < 0)
        goto hfail;
    rc = gl_h5_close(f, tmp);
    f = -1;
    if (rc == GL_EHDF5) goto hfail;
    goto done;
hfail:
    rc = gl_error(GL_EHDF5, "%s: HDF5 could not write the ground truth", tmp);
done:
    if (f >= 0) H5Fclose(f);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    gl_h5_quiet_end(q);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = gl_error(GL_EIO, "%s: cannot rename the temporary file into place", path);
    if (rc < 0) unlink(tmp);
    gl_free(tmp);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

static int read_attr_i64(hid_t f, const char *path, const char *name, long long *v)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_LLONG, v);
    if (a >= 0) H5Aclose(a);
    return e < 0 ? gl_error(GL_EFORMAT, "%s: integer attribute '%s' missing or unreadable", path,
                            name)
                 : 0;
}

static int check_format(hid_t f, const char *path)
{
    char buf[32] = { 0 };
    hid_t a = H5Aopen(f, "format", H5P_DEFAULT);
    hid_t ty = a < 0 ? -1 : H5Aget_type(a);
    int ok = ty >= 0 && H5Tget_class(ty) == H5T_STRING && H5Tis_variable_str(ty) == 0 &&
             H5Tget_size(ty) < sizeof buf && H5Aread(a, ty, buf) >= 0 &&
             !strcmp(buf, "glocal-synth-gt");
    if (ty >= 0) H5Tclose(ty);
    if (a >= 0) H5Aclose(a);
    return ok ? 0
              : gl_error(GL_EFORMAT, "%s: not a glocal synth ground-truth file (attribute "
                                     "format = \"glocal-synth-gt\" expected)",
                         path);
}

/* Reads dataset `name`, which must have exactly the dims given. */
static int read_dataset(hid_t f, const char *path, const char *name, hid_t mem_type, int rank,
                        const hsize_t *dims, void *out)
{
    int rc = 0;
    hsize_t got[8];
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    if (sp < 0) {
        rc = gl_error(GL_EFORMAT, "%s: dataset '%s' is missing", path, name);
        goto done;
    }
    int r = H5Sget_simple_extent_ndims(sp);
    int same = r == rank;
    if (same) {
        H5Sget_simple_extent_dims(sp, got, NULL);
        for (int i = 0; i < rank; i++) same = same && got[i] == dims[i];
    }
    if (!same) {
        char want[96];
        int n = 0;
        for (int i = 0; i < rank; i++)
            n += snprintf(want + n, sizeof want - n, "%s%llu", i ? ", " : "",
                          (unsigned long long)dims[i]);
        rc = gl_error(GL_EFORMAT, "%s: dataset '%s' has the wrong shape (expected [%s])", path,
                      name, want);
        goto done;
    }
    if (H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = gl_error(GL_EHDF5, "%s: cannot read dataset '%s'", path, name);
done:
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return rc;
}

int synth_gt_load(const char *path, synth_clip **out)
{
    *out = NULL;
    int rc = 0;
    synth_clip *c = NULL;
    hid_t f = -1;
    gl_h5_quiet q = gl_h5_quiet_begin();
    if (access(path, R_OK) != 0) {
        rc = gl_error(GL_EIO, "%s: cannot read the file", path);
        goto done;
    }
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        rc = gl_error(GL_EFORMAT, "%s: not an HDF5 file", path);
        goto done;
    }
    if ((rc = check_format(f, path)) < 0) goto done;
    long long T, W, H, label, objects;
    if ((rc = read_attr_i64(f, path, "frames", &T)) < 0 ||
        (rc = read_attr_i64(f, path, "width", &W)) < 0 ||
        (rc = read_attr_i64(f, path, "height", &H)) < 0 ||
        (rc = read_attr_i64(f, path, "label", &label)) < 0 ||
        (rc = read_attr_i64(f, path, "objects", &objects)) < 0)
        goto done;
    if (T < 2 || T > 10000 || W < 1 || W > 4096 || H < 1 || H > 4096 || label < 1 ||
        label > SYNTH_MAX_CLASSES || objects < 1 || objects > SYNTH_MAX_OBJECTS) {
        rc = gl_error(GL_EFORMAT,
                      "%s: attributes out of range (frames %lld, width %lld, height %lld, "
                      "label %lld, objects %lld)",
                      path, T, W, H, label, objects);
        goto done;
    }
    c = gl_calloc(1, sizeof *c);
    if (!c) {
        rc = GL_ENOMEM;
        goto done;
    }
    c->frames = (int)T;
    c->width = (int)W;
    c->height = (int)H;
    c->label = (int)label - 1;
    c->objects = (int)objects;
    hid_t a = H5Aopen(f, "camera_px", H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &c->camera_px) < 0) {
        if (a >= 0) H5Aclose(a);
        rc = gl_error(GL_EFORMAT, "%s: attribute 'camera_px' missing or unreadable", path);
        goto done;
    }
    H5Aclose(a);
    size_t hw = (size_t)W * H, P = (size_t)T - 1;
    c->homography = gl_malloc(sizeof(double) * 9 * P);
    c->global_flow = gl_malloc(sizeof(float) * 2 * hw * P);
    c->local_flow = gl_malloc(sizeof(float) * 2 * hw * P);
    c->mask = gl_malloc(hw * P);
    if (!c->homography || !c->global_flow || !c->local_flow || !c->mask) {
        rc = GL_ENOMEM;
        goto done;
    }
    hsize_t dh[3] = { P, 3, 3 }, df[4] = { P, 2, (hsize_t)H, (hsize_t)W },
            dm[3] = { P, (hsize_t)H, (hsize_t)W };
    if ((rc = read_dataset(f, path, "homography", H5T_NATIVE_DOUBLE, 3, dh, c->homography)) <
            0 ||
        (rc = read_dataset(f, path, "global_flow", H5T_NATIVE_FLOAT, 4, df, c->global_flow)) <
            0 ||
        (rc = read_dataset(f, path, "local_flow", H5T_NATIVE_FLOAT, 4, df, c->local_flow)) <
            0 ||
        (rc = read_dataset(f, path, "mask", H5T_NATIVE_UINT8, 3, dm, c->mask)) < 0)
        goto done;
done:
    if (f >= 0) H5Fclose(f);
    gl_h5_quiet_end(q);
    if (rc < 0) {
        synth_clip_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}
