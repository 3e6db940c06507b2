/* synth_write.c — writes the synthetic benchmark to disk in the UCF-101
 * layout: videos (datasets/video.h), one ground-truth HDF5 file per clip and
 * the split lists. Layout and schema: synth.h. */
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "datasets/synth_private.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"

#define SYNTH_FPS 25.0

void synth_dataset_groups(int n, int *groups, int *per_group, int *test_groups)
{
    /* UCF-101 has 25 groups of 4-7 clips, 7 of them test in split 1 (28%) */
    int per = n / 4;
    if (per < 1) per = 1;
    if (per > 4) per = 4;
    int g = (n + per - 1) / per;
    int test = (int)(0.28 * g + 0.5);
    if (test < 1) test = 1;
    if (test > g - 1) test = g - 1;
    *groups = g;
    *per_group = per;
    *test_groups = test;
}

/* "v_<Class>_gGG_cCC" for a 0-based group and clip. */
static void clip_stem(char *buf, size_t n, const char *cls, int group, int clip)
{
    snprintf(buf, n, "v_%s_g%02d_c%02d", cls, group + 1, clip + 1);
}

/* ---- ground truth HDF5 -------------------------------------------------- */

static const char gt_convention[] =
    "forward flow at pixel centres (pixel (i,j) centre = (x=i, y=j), y down): pixel p of frame t "
    "moves to p + flow(p) in frame t+1; channel 0 = x, 1 = y, pixels. homography[t] maps frame t "
    "pixel coordinates to frame t+1 (row-major, acting on (x, y, 1)). global_flow = "
    "homography[t] p - p everywhere; local_flow = total flow - global flow on pixels owned by an "
    "object, 0 elsewhere; mask[t] = 0 background, k = object k (1-based, drawn back to front) "
    "owns the pixel in frame t";

static herr_t attr_int(hid_t loc, const char *name, long long v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_LLONG, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e;
}

static herr_t attr_u64(hid_t loc, const char *name, uint64_t v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_UINT64, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e;
}

static herr_t attr_double(hid_t loc, const char *name, double v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e;
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

static int gt_write(const char *path, const synth_clip *c, const char *cls, uint64_t scene_seed,
                    uint64_t motion_seed)
{
    int rc = 0;
    size_t n = strlen(path) + 8;
    char *tmp = gl_malloc(n);
    if (!tmp) return GL_ENOMEM;
    snprintf(tmp, n, "%s.tmp", path);
    hid_t fcpl = -1, fapl = -1, f = -1;
    H5E_BEGIN_TRY
    {
        fcpl = H5Pcreate(H5P_FILE_CREATE);
        fapl = H5Pcreate(H5P_FILE_ACCESS);
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
        herr_t e = H5Fclose(f);
        f = -1;
        if (e < 0) goto hfail;
        goto done;
    hfail:
        rc = gl_error(GL_EHDF5, "%s: HDF5 could not write the ground truth", tmp);
    done:
        if (f >= 0) H5Fclose(f);
        if (fapl >= 0) H5Pclose(fapl);
        if (fcpl >= 0) H5Pclose(fcpl);
    }
    H5E_END_TRY;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = gl_error(GL_EIO, "%s: cannot rename the temporary file into place", path);
    if (rc < 0) unlink(tmp);
    gl_free(tmp);
    return rc;
}

/* ---- clips in parallel --------------------------------------------------- */

typedef struct {
    const synth *s;
    const synth_dataset_options *opt;
    int groups, per_group;
    long total, done;
    int canceled;
    int err;               /* first failure and its message: workers' messages */
    char msg[512];         /* are thread-local, so the caller re-raises them */
    pthread_mutex_t lock;
} job;

static int clip_write(job *j, long i)
{
    const synth_config *cfg = &j->s->cfg;
    int n = j->opt->clips_per_class;
    int label = (int)(i / n), within = (int)(i % n);
    int group = within / j->per_group, clip = within % j->per_group;
    const char *cls = synth_class_name(label);
    uint64_t scene_seed = synth_seed2(synth_seed2(cfg->seed, (uint64_t)label), (uint64_t)group);
    uint64_t motion_seed = synth_seed2(scene_seed, 0x100 + (uint64_t)clip);
    synth_clip *c = NULL;
    video_writer *w = NULL;
    char stem[96];
    clip_stem(stem, sizeof stem, cls, group, clip);
    size_t plen = strlen(j->opt->out_dir) + 2 * sizeof stem + 16;
    char *path = gl_malloc(plen);
    if (!path) return GL_ENOMEM;
    int rc = synth_clip_render(j->s, label, scene_seed, motion_seed, 0, &c);
    if (rc < 0) goto fail;
    snprintf(path, plen, "%s/%s/%s.avi", j->opt->out_dir, cls, stem);
    rc = video_writer_open(&w, path, c->width, c->height, SYNTH_FPS, NULL);
    if (rc < 0) goto fail;
    for (int t = 0; t < c->frames && rc >= 0; t++)
        rc = video_writer_write_rgb(w, c->rgb + (size_t)3 * c->width * c->height * t);
    if (rc < 0) {
        video_writer_abort(&w);
        goto fail;
    }
    rc = video_writer_close(&w);
    if (rc < 0) goto fail;
    snprintf(path, plen, "%s/%s/%s_gt.h5", j->opt->out_dir, cls, stem);
    rc = gt_write(path, c, cls, scene_seed, motion_seed);
fail:
    synth_clip_free(&c);
    gl_free(path);
    return rc;
}

static int clip_range(void *ctx, long begin, long end)
{
    job *j = ctx;
    for (long i = begin; i < end; i++) {
        int rc = clip_write(j, i);
        if (rc < 0) {
            pthread_mutex_lock(&j->lock);
            if (!j->err) {
                j->err = rc;
                snprintf(j->msg, sizeof j->msg, "%s", gl_last_error());
            }
            pthread_mutex_unlock(&j->lock);
            return rc;
        }
        pthread_mutex_lock(&j->lock);
        long done = ++j->done;
        int stop = j->canceled;
        if (!stop && j->opt->progress && j->opt->progress(j->opt->progress_ctx, done, j->total))
            stop = j->canceled = 1;
        pthread_mutex_unlock(&j->lock);
        if (stop) {
            rc = gl_error(GL_ECANCELED, "synth dataset: canceled");
            pthread_mutex_lock(&j->lock);
            if (!j->err) {
                j->err = rc;
                snprintf(j->msg, sizeof j->msg, "%s", gl_last_error());
            }
            pthread_mutex_unlock(&j->lock);
            return rc;
        }
    }
    return 0;
}

/* ---- lists (the shared UCF-101 list writer, datasets/ucf101.h) ----------- */

static int lists_write(const synth *s, const synth_dataset_options *opt, int per,
                       int test_groups)
{
    int rc = 0, n = opt->clips_per_class, nc = s->cfg.classes;
    long total = (long)nc * n;
    dataset_clip *clips = gl_calloc((size_t)total, sizeof *clips);
    char *paths = gl_malloc((size_t)total * 96);
    char *names[SYNTH_MAX_CLASSES];
    if (!clips || !paths) {
        rc = GL_ENOMEM;
        goto fail;
    }
    for (int c = 0; c < nc; c++) names[c] = (char *)synth_class_name(c);
    for (long i = 0; i < total; i++) {
        int c = (int)(i / n), k = (int)(i % n), g = k / per;
        char stem[80];
        clip_stem(stem, sizeof stem, names[c], g, k % per);
        snprintf(paths + 96 * i, 96, "%s/%s.avi", names[c], stem);
        clips[i].rel_path = paths + 96 * i;
        clips[i].label = c;
        clips[i].group = g + 1;
        clips[i].clip = k % per + 1;
        clips[i].split = g < test_groups ? DATASET_TEST : DATASET_TRAIN;
    }
    rc = dataset_lists_write(opt->out_dir, 1, nc, names, total, clips);
fail:
    gl_free(paths);
    gl_free(clips);
    return rc;
}

int synth_dataset_write(const synth *s, const synth_dataset_options *opt)
{
    if (!s || !opt || !opt->out_dir || !opt->out_dir[0])
        return gl_error(GL_EINVAL, "synth_dataset_write: no output folder");
    if (opt->clips_per_class < 2 || opt->clips_per_class > 99 * 4)
        return gl_error(GL_EINVAL,
                        "synth_dataset_write: clips_per_class must be in [2, 396] (two groups "
                        "at least, so that train and test both exist), got %d",
                        opt->clips_per_class);
    int groups, per, test;
    synth_dataset_groups(opt->clips_per_class, &groups, &per, &test);
    int rc = gl_mkdirs(opt->out_dir);
    if (rc < 0) return rc;
    size_t plen = strlen(opt->out_dir) + 64;
    char *path = gl_malloc(plen);
    if (!path) return GL_ENOMEM;
    for (int c = 0; c < s->cfg.classes; c++) {
        snprintf(path, plen, "%s/%s", opt->out_dir, synth_class_name(c));
        if ((rc = gl_mkdirs(path)) < 0) break;
    }
    gl_free(path);
    if (rc < 0) return rc;
    job j = { .s = s, .opt = opt, .groups = groups, .per_group = per,
              .total = (long)s->cfg.classes * opt->clips_per_class };
    pthread_mutex_init(&j.lock, NULL);
    rc = gl_parallel_for(j.total, 1, clip_range, &j);
    pthread_mutex_destroy(&j.lock);
    if (j.err < 0) return gl_error(j.err, "%s", j.msg);
    if (rc < 0) return rc;
    return lists_write(s, opt, per, test);
}
