/* synth_write.c — writes the synthetic benchmark to disk in the UCF-101
 * layout: videos (datasets/video.h), one ground-truth HDF5 file per clip and
 * the split lists. Layout and schema: synth.h. */
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
    rc = synth_gt_write(path, c, cls, scene_seed, motion_seed);
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
