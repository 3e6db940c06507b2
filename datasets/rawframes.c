/* rawframes.c — flow caches to and from mmaction2's rawframes / denseflow
 * layout (see rawframes.h). */
#include "datasets/rawframes.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "datasets/image.h"
#include "datasets/video.h"

uint8_t rawframes_flow_to_u8(float f, double bound)
{
    /* denseflow: v > H ? 255 : v < L ? 0 : cvRound(255 (v - L) / (H - L)),
     * in double; cvRound rounds half to even, as lrint does by default. */
    if (!(f >= -bound)) return 0; /* NaN too */
    if (f > bound) return 255;
    long v = lrint(255.0 * ((double)f + bound) / (2.0 * bound));
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

float rawframes_u8_to_flow(uint8_t v, double bound) { return (float)(v * (2.0 * bound) / 255.0 - bound); }

int rawframes_write_jpeg(const char *path, const uint8_t *data, int w, int h, int channels, int quality)
{
    if (!path || !data || w < 1 || h < 1 || (channels != 1 && channels != 3) || quality < 1 || quality > 100)
        return gl_error(GL_EINVAL, "rawframes_write_jpeg: bad arguments for %s", path ? path : "(null)");
    tjhandle tj = tjInitCompress();
    if (!tj) return gl_error(GL_ENOMEM, "%s: cannot start the JPEG encoder: %s", path, tjGetErrorStr2(NULL));
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    int rc = 0;
    if (tjCompress2(tj, data, w, 0, h, channels == 1 ? TJPF_GRAY : TJPF_RGB, &jpg, &size,
                    channels == 1 ? TJSAMP_GRAY : TJSAMP_420, quality, TJFLAG_ACCURATEDCT) != 0) {
        rc = gl_error(GL_EFORMAT, "%s: JPEG encoding failed: %s", path, tjGetErrorStr2(tj));
        goto done;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = gl_error(GL_EIO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    size_t put = fwrite(jpg, 1, size, f);
    if (fclose(f) != 0 || put != size) rc = gl_error(GL_EIO, "%s: write failed: %s", path, strerror(errno));
done:
    tjFree(jpg);
    tjDestroy(tj);
    return rc;
}

rawframes_export_options rawframes_export_options_default(void)
{
    return (rawframes_export_options){ .bound = RAWFRAMES_BOUND_DEFAULT, .quality = RAWFRAMES_QUALITY_DEFAULT,
                                       .name = "ucf101", .split_no = 1, .workers = 1 };
}

/* "Class/v_x.avi" -> "Class/v_x" into out. */
static int clip_folder_name(const char *name, char *out, size_t n)
{
    if ((size_t)snprintf(out, n, "%s", name) >= n) return gl_error(GL_EINVAL, "%s: clip name too long", name);
    char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (dot && (!slash || dot > slash + 1)) *dot = 0;
    return 0;
}

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Empties and removes a folder of plain files (a .partial left by a kill). */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[PATH_MAX + 300];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* OUT/<Class>/.<clip>.partial for final folder OUT/<Class>/<clip>. */
static int partial_name(const char *final, char *out, size_t n)
{
    const char *slash = strrchr(final, '/');
    size_t head = slash ? (size_t)(slash - final + 1) : 0;
    if ((size_t)snprintf(out, n, "%.*s.%s.partial", (int)head, final, final + head) >= n)
        return gl_error(GL_EINVAL, "%s: path too long", final);
    return 0;
}

/* Every frame of the video root/name as dir/img_%05d.jpg (from 1), RGB at h x w. */
static int export_frames(const char *root, const char *name, const char *dir, int h, int w, int quality)
{
    char path[PATH_MAX + CACHE_NAME_MAX], p[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", root, name);
    video_reader_opts o = video_reader_opts_default();
    o.width = w;
    o.height = h;
    o.threads = 1;
    video_reader *r = NULL;
    int rc = video_reader_open(&r, path, &o);
    if (rc < 0) return rc;
    uint8_t *rgb = gl_malloc((size_t)h * (size_t)w * 3);
    if (!rgb) {
        video_reader_close(&r);
        return GL_ENOMEM;
    }
    for (long k = 0; (rc = video_reader_read(r, rgb, NULL)) == 0; k++) {
        snprintf(p, sizeof p, "%s/img_%05ld.jpg", dir, k + 1);
        if ((rc = rawframes_write_jpeg(p, rgb, w, h, 3, quality)) < 0) break;
    }
    gl_free(rgb);
    video_reader_close(&r);
    return rc == GL_EOF ? 0 : rc;
}

/* One clip: every pair's u and v as flow_x / flow_y JPEGs into a .partial
 * folder, renamed to `final` when whole. */
static int export_clip(cache *c, long row, const char *final, const rawframes_export_options *opt, float *field,
                       uint8_t *img, rawframes_summary *sum)
{
    const cache_config *cfg = cache_get_config(c);
    const cache_clip *cl = cache_get_clip(c, row);
    const long hw = (long)cfg->height * cfg->width;
    char tmp[PATH_MAX], p[PATH_MAX + 32];
    int rc = partial_name(final, tmp, sizeof tmp);
    if (rc < 0) return rc;
    remove_flat_dir(tmp);
    if ((rc = gl_mkdirs(tmp)) < 0) return rc;
    long saturated = 0;
    for (int k = 0; k < cl->pairs; k++) {
        if ((rc = cache_read_fields(c, row, k, 1, field)) < 0) goto fail;
        for (int ch = 0; ch < 2; ch++) {
            const float *f = field + ch * hw;
            for (long i = 0; i < hw; i++) {
                saturated += fabsf(f[i]) > opt->bound;
                img[i] = rawframes_flow_to_u8(f[i], opt->bound);
            }
            snprintf(p, sizeof p, "%s/flow_%c_%05d.jpg", tmp, ch ? 'y' : 'x', k + 1);
            if ((rc = rawframes_write_jpeg(p, img, cfg->width, cfg->height, 1, opt->quality)) < 0) goto fail;
        }
    }
    if (opt->frames && (rc = export_frames(opt->frames, cl->name, tmp, cfg->height, cfg->width, opt->quality)) < 0)
        goto fail;
    if (rename(tmp, final) != 0) {
        rc = gl_error(GL_EIO, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        goto fail;
    }
    sum->frames += cl->pairs;
    sum->saturated += saturated;
    return 0;
fail:
    remove_flat_dir(tmp);
    return rc;
}

/* The annotation files: train list and test list ("val" for mmaction2). */
static int write_annotations(cache *c, const char *out, const rawframes_export_options *opt,
                             const unsigned char *complete)
{
    static const struct { int split; const char *as; } files[] = { { DATASET_TRAIN, "train" },
                                                                    { DATASET_TEST, "val" } };
    int rc = 0;
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        size_t cap = 4096, len = 0;
        char *buf = gl_malloc(cap);
        if (!buf) return GL_ENOMEM;
        for (long i = 0; i < cache_clip_count(c); i++) {
            const cache_clip *cl = cache_get_clip(c, i);
            if (cl->split != files[k].split || !complete[i]) continue;
            char folder[CACHE_NAME_MAX];
            if (clip_folder_name(cl->name, folder, sizeof folder) < 0) continue;
            char line[CACHE_NAME_MAX + 64];
            int n = snprintf(line, sizeof line, "%s %d %d\n", folder, cl->pairs, cl->label);
            if (len + (size_t)n + 1 > cap) {
                cap = 2 * cap + (size_t)n;
                char *nb = gl_realloc(buf, cap);
                if (!nb) {
                    gl_free(buf);
                    return GL_ENOMEM;
                }
                buf = nb;
            }
            memcpy(buf + len, line, (size_t)n);
            len += (size_t)n;
        }
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s_%s_split_%d_rawframes.txt", out, opt->name, files[k].as, opt->split_no);
        rc = gl_write_file_atomic(path, buf, len);
        gl_free(buf);
        if (rc < 0) return rc;
    }
    return 0;
}

/* The export's shared state: workers take clips in order from `next`. */
typedef struct {
    const char *cache_path, *out;
    const rawframes_export_options *opt;
    rawframes_report_fn report;
    void *ctx;
    pthread_mutex_t mu;      /* next, sum, rc, msg and the report callback */
    long next, nclips;
    unsigned char *complete; /* [nclips]: the clip's folder is whole (each entry one worker's) */
    rawframes_summary sum;
    int rc;                  /* first error that stops the export (memory, an unreadable cache) */
    char msg[CACHE_MESSAGE_MAX];
} export_job;

static void export_failed(export_job *j, const char *clip, const char *why)
{
    pthread_mutex_lock(&j->mu);
    j->sum.failed++;
    if (j->report) j->report(j->ctx, clip, why);
    pthread_mutex_unlock(&j->mu);
}

/* One worker: its own cache handle and buffers (a reader is for one thread). */
static void *export_worker(void *arg)
{
    export_job *j = arg;
    cache *c = NULL;
    float *field = NULL;
    uint8_t *img = NULL;
    rawframes_summary s = { 0 };
    int rc = cache_open(j->cache_path, 0, &c);
    if (rc >= 0) {
        const cache_config *cfg = cache_get_config(c);
        const long hw = (long)cfg->height * cfg->width;
        field = gl_malloc((size_t)(2 * hw) * sizeof *field);
        img = gl_malloc((size_t)hw);
        if (!field || !img) rc = GL_ENOMEM;
    }
    while (rc >= 0) {
        pthread_mutex_lock(&j->mu);
        long i = j->rc < 0 ? j->nclips : j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->nclips) break;
        const cache_clip *cl = cache_get_clip(c, i);
        char folder[CACHE_NAME_MAX], final[PATH_MAX];
        if ((rc = clip_folder_name(cl->name, folder, sizeof folder)) < 0 ||
            (size_t)snprintf(final, sizeof final, "%s/%s", j->out, folder) >= sizeof final) {
            export_failed(j, cl->name, rc < 0 ? gl_last_error() : "path too long");
            rc = 0;
            continue;
        }
        if (is_dir(final)) {
            j->complete[i] = 1;
            s.skipped++;
            continue;
        }
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", final);
        *strrchr(parent, '/') = 0;
        if ((rc = gl_mkdirs(parent)) < 0 || (rc = export_clip(c, i, final, j->opt, field, img, &s)) < 0) {
            if (rc == GL_ENOMEM) break;
            export_failed(j, cl->name, gl_last_error());
            rc = 0;
            continue;
        }
        j->complete[i] = 1;
        s.clips++;
    }
    pthread_mutex_lock(&j->mu);
    j->sum.clips += s.clips;
    j->sum.skipped += s.skipped;
    j->sum.frames += s.frames;
    j->sum.saturated += s.saturated;
    if (rc < 0 && j->rc >= 0) {
        j->rc = rc;
        snprintf(j->msg, sizeof j->msg, "%s", gl_last_error());
    }
    pthread_mutex_unlock(&j->mu);
    gl_free(img);
    gl_free(field);
    cache_close(&c);
    return NULL;
}

int rawframes_export(const char *cache_path, const char *out, const rawframes_export_options *opt,
                     rawframes_report_fn report, void *ctx, rawframes_summary *sum)
{
    *sum = (rawframes_summary){ 0 };
    if (!(opt->bound > 0) || opt->quality < 1 || opt->quality > 100 || !opt->name || !opt->name[0])
        return gl_error(GL_EINVAL, "export: bound must be > 0 and quality in 1..100 (got %g, %d)", opt->bound,
                        opt->quality);
    cache *c = NULL;
    int rc = cache_open(cache_path, 0, &c);
    if (rc < 0) return rc;
    const cache_config *cfg = cache_get_config(c);
    export_job j = { .cache_path = cache_path, .out = out, .opt = opt, .report = report, .ctx = ctx,
                     .nclips = cache_clip_count(c) };
    if (cfg->channels != 2) {
        rc = gl_error(GL_EINVAL, "%s: method %s has %d channels; denseflow images hold flow (2 channels: u, v)",
                      cache_path, cfg->method, cfg->channels);
        goto done;
    }
    if (!(j.complete = gl_calloc((size_t)j.nclips + 1, 1))) {
        rc = GL_ENOMEM;
        goto done;
    }
    if ((rc = gl_mkdirs(out)) < 0) goto done;
    pthread_mutex_init(&j.mu, NULL);
    int nw = opt->workers > 1 ? opt->workers : 1, started = 0;
    if (nw > j.nclips) nw = j.nclips > 0 ? (int)j.nclips : 1;
    pthread_t t[256];
    if (nw > 256) nw = 256;
    for (; nw > 1 && started < nw; started++)
        if (pthread_create(&t[started], NULL, export_worker, &j) != 0) break;
    if (!started) export_worker(&j); /* one worker, or no thread could start: this one */
    for (int k = 0; k < started; k++) pthread_join(t[k], NULL);
    pthread_mutex_destroy(&j.mu);
    *sum = j.sum;
    if (j.rc < 0) {
        rc = gl_error(j.rc, "%s", j.msg);
        goto done;
    }
    if ((rc = write_annotations(c, out, opt, j.complete)) < 0) goto done;
    rc = sum->failed > 0;
done:
    gl_free(j.complete);
    cache_close(&c);
    return rc;
}

/* ---- import ----------------------------------------------------------------- */

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

int rawframes_read_flow(const char *dir, double bound, float **fields, int *n, int *h, int *w)
{
    *fields = NULL;
    *n = *h = *w = 0;
    char px[PATH_MAX + 32], py[PATH_MAX + 32];
    /* denseflow's (and mmaction2's UCF-101 recipe) flow_x_, or the x_ of
     * mmaction2's other flow template "{}_{:05d}.jpg" */
    const char *pre = "flow_";
    snprintf(px, sizeof px, "%s/flow_x_00001.jpg", dir);
    if (!file_exists(px)) pre = "";
    int count = 0;
    for (;; count++) {
        snprintf(px, sizeof px, "%s/%sx_%05d.jpg", dir, pre, count + 1);
        if (!file_exists(px)) break;
    }
    if (!count) return gl_error(GL_ENOTFOUND, "%s: no flow_x_00001.jpg (or x_00001.jpg)", dir);
    float *f = NULL;
    image ix = { 0 }, iy = { 0 };
    int rc = 0;
    size_t hw = 0;
    for (int k = 0; k < count; k++) {
        snprintf(px, sizeof px, "%s/%sx_%05d.jpg", dir, pre, k + 1);
        snprintf(py, sizeof py, "%s/%sy_%05d.jpg", dir, pre, k + 1);
        if ((rc = image_load(&ix, px, 1)) < 0 || (rc = image_load(&iy, py, 1)) < 0) goto fail;
        if (!f) {
            *h = ix.height;
            *w = ix.width;
            hw = (size_t)ix.height * (size_t)ix.width;
            if (!(f = gl_malloc((size_t)count * 2 * hw * sizeof *f))) {
                rc = GL_ENOMEM;
                goto fail;
            }
        }
        if (ix.width != *w || ix.height != *h || iy.width != *w || iy.height != *h) {
            rc = gl_error(GL_EFORMAT, "%s: %dx%d, but the first image is %dx%d", ix.width != *w ||
                          ix.height != *h ? px : py, ix.width != *w || ix.height != *h ? ix.width : iy.width,
                          ix.width != *w || ix.height != *h ? ix.height : iy.height, *w, *h);
            goto fail;
        }
        float *dst = f + (size_t)k * 2 * hw;
        for (size_t i = 0; i < hw; i++) {
            dst[i] = rawframes_u8_to_flow(ix.data[i], bound);
            dst[hw + i] = rawframes_u8_to_flow(iy.data[i], bound);
        }
        image_release(&ix);
        image_release(&iy);
    }
    *fields = f;
    *n = count;
    return 0;
fail:
    image_release(&ix);
    image_release(&iy);
    gl_free(f);
    *n = *h = *w = 0;
    return rc;
}

/* Size of the first clip folder that has flow: the cache's grid. */
static int first_size(const char *dir, const dataset_index *idx, int *h, int *w)
{
    for (long i = 0; i < idx->num_clips; i++) {
        char folder[CACHE_NAME_MAX], p[PATH_MAX + CACHE_NAME_MAX + 32];
        if (clip_folder_name(idx->clips[i].rel_path, folder, sizeof folder) < 0) continue;
        snprintf(p, sizeof p, "%s/%s/flow_x_00001.jpg", dir, folder);
        if (!file_exists(p)) snprintf(p, sizeof p, "%s/%s/x_00001.jpg", dir, folder);
        if (!file_exists(p)) continue;
        image im = { 0 };
        int rc = image_load(&im, p, 1);
        if (rc < 0) continue;
        *h = im.height;
        *w = im.width;
        image_release(&im);
        return 0;
    }
    return gl_error(GL_ENOTFOUND, "%s: none of the %ld listed clips has a folder <Class>/<clip>/flow_x_00001.jpg",
                    dir, idx->num_clips);
}

int rawframes_import(const char *dir, const dataset_index *idx, double bound, const char *method, const char *out,
                     rawframes_report_fn report, void *ctx, rawframes_summary *sum)
{
    *sum = (rawframes_summary){ 0 };
    if (!(bound > 0)) return gl_error(GL_EINVAL, "import: bound must be > 0, got %g", bound);
    cache_config cfg;
    cache_config_default(&cfg);
    int rc = first_size(dir, idx, &cfg.height, &cfg.width);
    if (rc < 0) return rc;
    snprintf(cfg.method, sizeof cfg.method, "%s", method ? method : "denseflow");
    snprintf(cfg.params, sizeof cfg.params, "imported from denseflow JPEGs, bound=%g", bound);
    snprintf(cfg.source, sizeof cfg.source, "denseflow=%.400s lists=%.400s split=%d", dir, idx->lists,
             idx->split_no);
    cfg.channels = 2;
    cfg.total_clips = idx->num_clips;
    cache_writer *wr = NULL;
    if ((rc = cache_writer_open(out, &cfg, &wr)) < 0) return rc;
    for (long i = 0; i < idx->num_clips; i++) {
        const dataset_clip *dc = &idx->clips[i];
        if (cache_writer_is_done(wr, i)) {
            sum->skipped++;
            continue;
        }
        char folder[CACHE_NAME_MAX], p[PATH_MAX + CACHE_NAME_MAX];
        float *fields = NULL;
        int n = 0, h = 0, w = 0;
        if ((rc = clip_folder_name(dc->rel_path, folder, sizeof folder)) >= 0) {
            snprintf(p, sizeof p, "%s/%s", dir, folder);
            rc = rawframes_read_flow(p, bound, &fields, &n, &h, &w);
        }
        if (rc >= 0 && (h != cfg.height || w != cfg.width))
            rc = gl_error(GL_EFORMAT, "%s: %dx%d, but the cache's grid (the first clip's) is %dx%d", p, w, h,
                          cfg.width, cfg.height);
        if (rc == GL_ENOMEM) {
            gl_free(fields);
            goto fail;
        }
        if (rc < 0) {
            char why[CACHE_MESSAGE_MAX];
            snprintf(why, sizeof why, "%s", gl_last_error());
            if (report) report(ctx, dc->rel_path, why);
            sum->failed++;
            gl_free(fields);
            if ((rc = cache_writer_put_error(wr, i, dc->rel_path, why)) < 0) goto fail;
            continue;
        }
        cache_clip info = { .index = i, .label = dc->label, .split = (int32_t)dc->split };
        snprintf(info.name, sizeof info.name, "%s", dc->rel_path);
        cache_clip_writer *cw = NULL;
        if ((rc = cache_clip_begin(wr, &info, &cw)) < 0 || (rc = cache_clip_append(cw, n, fields, NULL)) < 0 ||
            (rc = cache_clip_commit(&cw)) < 0) {
            cache_clip_abort(&cw);
            gl_free(fields);
            goto fail;
        }
        gl_free(fields);
        sum->clips++;
        sum->frames += n;
    }
    if ((rc = cache_writer_finish(wr)) < 0) goto fail;
    cache_writer_close(&wr);
    return sum->failed > 0;
fail:
    cache_writer_close(&wr);
    return rc;
}
