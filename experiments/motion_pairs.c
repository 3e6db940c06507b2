/* motion_pairs.c — frame pairs for GLOCAL training and evaluation. */
#include <stdio.h>
#include <string.h>

#include "datasets/ucf101.h"
#include "datasets/video.h"
#include "experiments/motion_pairs.h"
#include "nn/base.h"

void motion_pairs_free(motion_pairs *p)
{
    if (!p) return;
    gl_free(p->a);
    gl_free(p->b);
    gl_free(p->homography);
    gl_free(p->global_flow);
    gl_free(p->local_flow);
    gl_free(p->mask);
    gl_free(p->frame);
    memset(p, 0, sizeof *p);
}

static int pairs_alloc(motion_pairs *p, int n, int w, int h, int gt)
{
    memset(p, 0, sizeof *p);
    const size_t hw = (size_t)w * h;
    p->n = n;
    p->width = w;
    p->height = h;
    p->a = gl_malloc(n * hw * 3);
    p->b = gl_malloc(n * hw * 3);
    if (gt) {
        p->homography = gl_malloc(sizeof(double) * 9 * n);
        p->global_flow = gl_malloc(sizeof(float) * 2 * hw * n);
        p->local_flow = gl_malloc(sizeof(float) * 2 * hw * n);
        p->mask = gl_malloc(hw * n);
    }
    if (!p->a || !p->b ||
        (gt && (!p->homography || !p->global_flow || !p->local_flow || !p->mask))) {
        motion_pairs_free(p);
        return GL_ENOMEM;
    }
    return 0;
}

typedef struct {
    const synth *s;
    motion_pairs *p;
    uint64_t seed;
} synth_job;

static int synth_range(void *ctx, long begin, long end)
{
    synth_job *j = ctx;
    motion_pairs *p = j->p;
    const size_t hw = (size_t)p->width * p->height;
    for (long i = begin; i < end; i++) {
        synth_clip *c = NULL;
        int rc = synth_pair_render(j->s, j->seed + (uint64_t)i, &c);
        if (rc < 0) return rc;
        memcpy(p->a + i * hw * 3, c->rgb, hw * 3);
        memcpy(p->b + i * hw * 3, c->rgb + hw * 3, hw * 3);
        memcpy(p->homography + 9 * i, c->homography, sizeof(double) * 9);
        memcpy(p->global_flow + i * 2 * hw, c->global_flow, sizeof(float) * 2 * hw);
        memcpy(p->local_flow + i * 2 * hw, c->local_flow, sizeof(float) * 2 * hw);
        memcpy(p->mask + i * hw, c->mask, hw);
        synth_clip_free(&c);
    }
    return 0;
}

int motion_pairs_synth(motion_pairs *p, const synth_config *cfg, int n, uint64_t seed)
{
    synth *s = NULL;
    int rc = synth_new(cfg, &s);
    if (rc < 0) return rc;
    if ((rc = pairs_alloc(p, n, cfg->width, cfg->height, 1)) < 0) goto fail;
    synth_job j = { s, p, seed };
    if ((rc = gl_parallel_for(n, 4, synth_range, &j)) < 0) motion_pairs_free(p);
fail:
    synth_free(&s);
    return rc;
}

int motion_pairs_append(motion_pairs *p, motion_pairs *q)
{
    if (p->width != q->width || p->height != q->height)
        return gl_error(GL_EINVAL, "motion_pairs_append: %dx%d pairs with %dx%d ones", p->width, p->height,
                        q->width, q->height);
    const int gt = p->homography && q->homography;
    const size_t hw = (size_t)p->width * p->height;
    motion_pairs r;
    int rc = pairs_alloc(&r, p->n + q->n, p->width, p->height, gt);
    if (rc < 0) return rc;
    const motion_pairs *src[2] = { p, q };
    for (int k = 0, at = 0; k < 2; at += src[k]->n, k++) {
        const motion_pairs *s = src[k];
        memcpy(r.a + at * hw * 3, s->a, s->n * hw * 3);
        memcpy(r.b + at * hw * 3, s->b, s->n * hw * 3);
        if (!gt) continue;
        memcpy(r.homography + 9 * (size_t)at, s->homography, sizeof(double) * 9 * s->n);
        memcpy(r.global_flow + at * 2 * hw, s->global_flow, sizeof(float) * 2 * hw * s->n);
        memcpy(r.local_flow + at * 2 * hw, s->local_flow, sizeof(float) * 2 * hw * s->n);
        memcpy(r.mask + at * hw, s->mask, hw * s->n);
    }
    motion_pairs_free(p);
    motion_pairs_free(q);
    *p = r;
    return 0;
}

typedef struct {
    const photo_set *set;
    const photo_pairs_config *cfg;
    motion_pairs *p;
} photo_job;

static int photo_range(void *ctx, long begin, long end)
{
    photo_job *j = ctx;
    motion_pairs *p = j->p;
    const size_t hw = (size_t)p->width * p->height;
    photo_pair pp;
    int rc = photo_pair_alloc(&pp, p->width, p->height);
    for (long i = begin; i < end && rc == 0; i++) {
        if ((rc = photo_pairs_render(j->set, j->cfg, (uint64_t)i, &pp)) < 0) break;
        memcpy(p->a + i * hw * 3, pp.a, hw * 3);
        memcpy(p->b + i * hw * 3, pp.b, hw * 3);
        memcpy(p->homography + 9 * i, pp.homography, sizeof(double) * 9);
        memcpy(p->global_flow + i * 2 * hw, pp.global_flow, sizeof(float) * 2 * hw);
        memcpy(p->local_flow + i * 2 * hw, pp.local_flow, sizeof(float) * 2 * hw);
        memcpy(p->mask + i * hw, pp.mask, hw);
    }
    photo_pair_release(&pp);
    return rc;
}

int motion_pairs_photos(motion_pairs *p, const char *photos, int max_short_side,
                        const photo_pairs_config *cfg, int n)
{
    photo_set *set = NULL;
    memset(p, 0, sizeof *p);
    /* checked here: a worker thread's message would not reach the caller */
    int rc = photo_pairs_config_validate(cfg);
    if (rc < 0) return rc;
    if ((rc = photo_set_open(photos, max_short_side, &set)) < 0) return rc;
    if ((rc = pairs_alloc(p, n, cfg->width, cfg->height, 1)) < 0) goto fail;
    photo_job j = { set, cfg, p };
    if ((rc = gl_parallel_for(n, 1, photo_range, &j)) < 0) {
        gl_error(rc, "%s: rendering the photo pairs failed (%s)", photos, gl_strerror(rc));
        motion_pairs_free(p);
    }
fail:
    photo_set_free(&set);
    return rc;
}

int motion_pairs_synth_dir(motion_pairs *p, const char *dir, int max_clips, int pairs_per_clip)
{
    dataset_index *idx = NULL;
    uint8_t *frames = NULL;
    synth_clip *g = NULL;
    char *gt = NULL;
    int rc = dataset_index_load(&idx, dir, NULL, 1);
    memset(p, 0, sizeof *p);
    if (rc < 0) return rc;
    long first = idx->num_split[DATASET_TRAIN], ntest = idx->num_split[DATASET_TEST];
    int nclips = ntest < max_clips ? (int)ntest : max_clips;
    if (nclips < 1) {
        rc = gl_error(GL_ENOTFOUND, "%s: the test list has no clips", dir);
        goto fail;
    }
    int filled = 0, W = 0, H = 0;
    for (int c = 0; c < nclips; c++) {
        const dataset_clip *cl = &idx->clips[first + c];
        size_t L = strlen(cl->path);
        gl_free(gt);
        gt = gl_malloc(L + 8);
        if (!gt) { rc = GL_ENOMEM; goto fail; }
        memcpy(gt, cl->path, L + 1);
        char *dot = strrchr(gt, '.');
        if (!dot) dot = gt + L;
        strcpy(dot, "_gt.h5");
        long nf = 0;
        video_info vi;
        video_reader_opts vo = video_reader_opts_default();
        gl_free(frames);
        frames = NULL;
        if ((rc = video_decode_all(cl->path, &vo, 1, (void **)&frames, &nf, &vi)) < 0) goto fail;
        if (c == 0) {
            W = vi.out_width;
            H = vi.out_height;
            if ((rc = pairs_alloc(p, nclips * pairs_per_clip, W, H, 1)) < 0) goto fail;
            p->n = 0;
        } else if (vi.out_width != W || vi.out_height != H) {
            rc = gl_error(GL_EFORMAT, "%s: frames are %dx%d, the first clip's were %dx%d", cl->path,
                          vi.out_width, vi.out_height, W, H);
            goto fail;
        }
        const size_t hw = (size_t)W * H;
        synth_clip_free(&g);
        if ((rc = synth_gt_load(gt, &g)) < 0) goto fail;
        if (g->width != W || g->height != H || g->frames != nf) {
            rc = gl_error(GL_EFORMAT, "%s: ground truth for %d frames of %dx%d, the video has %ld of %dx%d",
                          gt, g->frames, g->width, g->height, nf, W, H);
            goto fail;
        }
        long np = nf - 1;
        /* Pairs spread over the clip. */
        int k = pairs_per_clip < np ? pairs_per_clip : (int)np;
        for (int i = 0; i < k; i++) {
            long t = k > 1 ? (long)i * (np - 1) / (k - 1) : 0;
            memcpy(p->a + filled * hw * 3, frames + t * hw * 3, hw * 3);
            memcpy(p->b + filled * hw * 3, frames + (t + 1) * hw * 3, hw * 3);
            memcpy(p->homography + 9 * filled, g->homography + 9 * t, sizeof(double) * 9);
            memcpy(p->global_flow + filled * 2 * hw, g->global_flow + t * 2 * hw, sizeof(float) * 2 * hw);
            memcpy(p->local_flow + filled * 2 * hw, g->local_flow + t * 2 * hw, sizeof(float) * 2 * hw);
            memcpy(p->mask + filled * hw, g->mask + t * hw, hw);
            filled++;
        }
        p->n = filled;
    }
    rc = 0;
fail:
    if (rc < 0) motion_pairs_free(p);
    synth_clip_free(&g);
    gl_free(gt);
    gl_free(frames);
    dataset_index_free(&idx);
    return rc;
}

int motion_pairs_dataset(motion_pairs *p, const char *root, const char *lists, int split, int n,
                         int size, int gap, uint64_t seed, int (*progress)(void *, long, long),
                         void *ctx)
{
    dataset_index *idx = NULL;
    uint8_t *two = NULL;
    long *have = NULL;
    int rc = dataset_index_load(&idx, root, lists, split);
    memset(p, 0, sizeof *p);
    if (rc < 0) return rc;
    /* Pairs come from the train clips that exist: a dataset with missing videos
     * (listed by `glocal dataset`) still trains on what is there. */
    long ntrain = 0;
    have = gl_malloc(sizeof *have * (size_t)(idx->num_clips + 1));
    if (!have) { rc = GL_ENOMEM; goto fail; }
    for (long i = 0; i < idx->num_clips; i++)
        if (idx->clips[i].split == DATASET_TRAIN && idx->clips[i].exists) have[ntrain++] = i;
    if (ntrain < 1) {
        rc = gl_error(GL_ENOTFOUND, "%s: none of the %ld clips of the train list exists", root,
                      idx->num_split[DATASET_TRAIN]);
        goto fail;
    }
    if ((rc = pairs_alloc(p, n, size, size, 0)) < 0) goto fail;
    const size_t fb = (size_t)size * size * 3;
    two = gl_malloc(2 * fb);
    if (!two) { rc = GL_ENOMEM; goto fail; }
    uint64_t st = seed;
    int filled = 0, failures = 0;
    while (filled < n) {
        const dataset_clip *cl = &idx->clips[have[gl_splitmix64(&st) % (uint64_t)ntrain]];
        video_reader_opts vo = video_reader_opts_default();
        vo.short_side = size;
        vo.width = vo.height = size;
        vo.scaler = VIDEO_SCALE_AREA;
        vo.threads = 1;
        video_reader *r = NULL;
        video_info vi;
        if (video_reader_open(&r, cl->path, &vo) < 0) {
            if (++failures > 100 + n) {
                rc = gl_error(GL_EIO, "%s: too many clips unreadable (last: %s)", root, cl->path);
                goto fail;
            }
            continue;
        }
        video_reader_info(r, &vi);
        video_reader_close(&r);
        if (vi.frames <= gap) continue;
        long t = (long)(gl_splitmix64(&st) % (uint64_t)(vi.frames - gap));
        long ind[2] = { t, t + gap };
        if (video_decode_frames(cl->path, &vo, ind, 2, two, NULL) < 0) {
            if (++failures > 100 + n) {
                rc = gl_error(GL_EIO, "%s: too many clips unreadable (last: %s)", root, cl->path);
                goto fail;
            }
            continue;
        }
        memcpy(p->a + filled * fb, two, fb);
        memcpy(p->b + filled * fb, two + fb, fb);
        filled++;
        if (progress && progress(ctx, filled, n)) { rc = GL_ECANCELED; goto fail; }
    }
    rc = 0;
fail:
    gl_free(have);
    if (rc < 0) motion_pairs_free(p);
    gl_free(two);
    dataset_index_free(&idx);
    return rc;
}

/* Frames t_i and t_i + gap of k pairs spread over starts = nf - gap start
 * frames, interleaved (a0, b0, a1, b1, ...). */
static void video_pair_indices(long nf, int gap, int k, long *ind)
{
    long starts = nf - gap;
    for (int i = 0; i < k; i++) {
        ind[2 * i] = k > 1 ? (long)i * (starts - 1) / (k - 1) : 0;
        ind[2 * i + 1] = ind[2 * i] + gap;
    }
}

int motion_pairs_video(motion_pairs *p, const char *path, int short_side, int gap, int max_pairs)
{
    uint8_t *frames = NULL;
    long *ind = NULL;
    video_info vi;
    video_reader_opts vo = video_reader_opts_default();
    vo.short_side = short_side;
    vo.scaler = VIDEO_SCALE_AREA;
    memset(p, 0, sizeof *p);
    if (gap < 1 || max_pairs < 1) return gl_error(GL_EINVAL, "%s: gap %d, %d pairs", path, gap, max_pairs);
    /* only the frames of the pairs are kept: a long video never sits in memory */
    video_reader *r = NULL;
    int rc = video_reader_open(&r, path, &vo);
    if (rc < 0) return rc;
    video_reader_info(r, &vi);
    video_reader_close(&r);
    long nf = vi.frames;
    for (int tries = 0; tries < 2; tries++) {
        if (nf <= gap) {
            rc = gl_error(GL_EFORMAT, "%s: %ld frame(s), a pair %d frame(s) apart needs more", path, nf, gap);
            goto done;
        }
        int k = max_pairs < nf - gap ? max_pairs : (int)(nf - gap);
        gl_free(ind);
        gl_free(frames);
        ind = gl_malloc(sizeof *ind * 2 * (size_t)k);
        frames = gl_malloc(vi.frame_bytes * 2 * (size_t)k);
        if (!ind || !frames) { rc = GL_ENOMEM; goto done; }
        video_pair_indices(nf, gap, k, ind);
        rc = video_decode_frames(path, &vo, ind, 2L * k, frames, NULL);
        /* a header that promised more frames than there are: count them, once */
        if (rc == GL_ENOTFOUND && tries == 0 && vi.frames_source != 1) {
            gl_clear_error();
            if ((rc = video_count_frames(path, &nf)) < 0) goto done;
            continue;
        }
        if (rc < 0) goto done;
        const size_t fb = vi.frame_bytes;
        if ((rc = pairs_alloc(p, k, vi.out_width, vi.out_height, 0)) < 0) goto done;
        if (!(p->frame = gl_malloc(sizeof *p->frame * (size_t)k))) {
            motion_pairs_free(p);
            rc = GL_ENOMEM;
            goto done;
        }
        for (int i = 0; i < k; i++) {
            memcpy(p->a + i * fb, frames + 2 * i * fb, fb);
            memcpy(p->b + i * fb, frames + (2 * i + 1) * fb, fb);
            p->frame[i] = ind[2 * i];
        }
        break;
    }
done:
    gl_free(ind);
    gl_free(frames);
    return rc;
}
