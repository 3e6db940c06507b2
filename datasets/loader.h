/*
 * loader.h — a threaded, prefetching, deterministic batch loader, and the
 * augmentations two-stream training needs (TSN's scale-jittered corner crops,
 * horizontal flips that negate the x component of motion fields).
 *
 * Model. A `loader_source` turns an item number (a clip) and a 64-bit seed
 * into one sample: a float array of a fixed shape (e.g. [K, C, H, W]: K TSN
 * segments of C channels) and a label. The loader runs the source on worker
 * threads and hands out batches [B, shape...] in order.
 *
 *   Order and randomness. Epoch e visits the items in a permutation drawn
 *   from (seed, e) (or in order when shuffle is off); the sample at position
 *   p of epoch e gets the seed loader_sample_seed(seed, e, p). Nothing depends
 *   on the thread count or on timing, so the same seed gives the same batches
 *   in the same order with 1 or 16 workers.
 *
 *   Memory is bounded: the loader owns `prefetch + 1` batch buffers (the one
 *   the caller holds plus `prefetch` being filled) and workers never load a
 *   sample beyond them. Nothing else grows with the dataset.
 *
 *   Epochs run back to back (workers prefetch across the boundary);
 *   loader_next() returns GL_EOF once after the last batch of each epoch.
 *
 * Sources provided here (same header, same loader):
 *   loader_source_video  K segments of F consecutive frames (F = 1 frames,
 *                        F = 2 frame pairs) from the clips of a dataset_index
 *                        split, decoded with video.h: sample [K, 3F, H, W].
 *   loader_source_memory samples already in memory (tests, benchmarks).
 *   A source for cached motion stacks (datasets/cache.h: L consecutive fields
 *   [L, 2, h, w] -> [K, 2L, H, W]) is built from the same pieces with
 *   loader_source_motion (see its comment).
 *
 * Augmentation (loader_aug): at training time a crop is drawn per sample
 * (the same crop and flip for all K segments, as TSN's group transforms do),
 * then resized bilinearly to the output size; at test time a sample holds V
 * fixed views (1 centre crop, 3 crops along the longer side, or 10 = 4
 * corners + centre and their mirror images, TSN's test protocol) and the
 * shape becomes [V*K, C, H, W]. Resizing a motion field also rescales its
 * vectors (pixels of the output grid), and mirroring it negates u.
 *
 * Ownership. loader_open copies the source and config; the source's ctx must
 * outlive the loader. A batch returned by loader_next is the loader's and
 * stays valid until the next loader_next or loader_close. Sources made by
 * loader_source_* are released with loader_source_free().
 *
 * Errors. Negative GL_E* codes with a message. A source error surfaces from
 * loader_next at the batch that needed the failing sample, with the source's
 * message prefixed by the item number; the loader is then unusable (close it).
 */
#ifndef GLOCAL_DATASETS_LOADER_H
#define GLOCAL_DATASETS_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/ucf101.h"
#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LOADER_MAX_DIMS 6

/* ---- the loader ------------------------------------------------------------ */

typedef struct {
    void *ctx;
    long count;                      /* items */
    int ndim;                        /* sample rank, 1..LOADER_MAX_DIMS */
    int64_t shape[LOADER_MAX_DIMS];  /* sample shape (floats) */
    /* Fills out (prod(shape) floats) and *label for `item` using only `seed`
     * for randomness. Called concurrently from several workers; wctx is the
     * worker's own context from open_worker (NULL when there is none). */
    int (*load)(void *ctx, void *wctx, long item, uint64_t seed, float *out, int32_t *label);
    /* Optional per-worker state (e.g. a file handle that one thread may use
     * at a time); called on the worker's thread. */
    int (*open_worker)(void *ctx, int worker, void **wctx);
    void (*close_worker)(void *ctx, void *wctx);
    void (*destroy)(void *ctx);      /* releases ctx (loader_source_free); may be NULL */
} loader_source;

typedef struct {
    int batch_size;      /* samples per batch, >= 1 */
    int threads;         /* worker threads; 0 = gl_num_threads() */
    int prefetch;        /* batches filled ahead of the caller, >= 1 */
    uint64_t seed;
    int shuffle;         /* 1: a new permutation every epoch */
    int drop_last;       /* 1: drop an incomplete last batch */
    long start_epoch;    /* first epoch produced (resume) */
    long start_batch;    /* batches of start_epoch already taken (a resume in the middle of
                            an epoch): its first batch produced is this one, 0..batches-1;
                            the same batches, in the same order, as an uninterrupted run */
    long epochs;         /* epochs to produce; 0 = unlimited */
    /* Data parallelism (torch's DistributedSampler): this process is rank
     * `rank` of `world`. The epoch's visiting order is padded by wrapping
     * around to a multiple of world; global batch i covers padded positions
     * [i*batch_size, (i+1)*batch_size) and this rank takes those positions p
     * with p % world == rank, so it gets batch_size / world samples (the
     * per-rank batch; batch_size % world must be 0). A sample's seed stays
     * that of its global position, so the ranks' batches together are the
     * one-rank batches (plus the wrapped padding). Default 0 / 1. */
    int rank, world;
} loader_config;

/* batch 32, threads 0, prefetch 2, seed 0, shuffle 1, drop_last 0, epoch 0, unlimited,
 * rank 0 of 1. */
loader_config loader_config_default(void);
int loader_config_validate(const loader_config *cfg);

typedef struct {
    int n;               /* samples in the batch (the last may be short); with world > 1,
                            this rank's share */
    long epoch;
    long index;          /* batch number within the epoch */
    float *data;         /* [n, shape...] */
    int32_t *labels;     /* [n] */
    long *items;         /* [n] item numbers */
    uint64_t *seeds;     /* [n] sample seeds */
    long *positions;     /* [n] global positions in the epoch's (padded) order */
} loader_batch;

typedef struct loader loader;

/* Starts the workers. */
int loader_open(loader **out, const loader_source *src, const loader_config *cfg);
/* The next batch (0), GL_EOF once at the end of each epoch (and at the end of
 * the last epoch, for good), or a negative code. */
int loader_next(loader *l, const loader_batch **batch);
void loader_close(loader **l);
long loader_batches_per_epoch(const loader *l);
/* Items in an epoch's visiting order after padding to a multiple of world
 * (count itself when world is 1). */
long loader_padded_count(long count, int world);
size_t loader_sample_floats(const loader *l);
/* Samples loaded so far (for tests of the memory bound and for statistics). */
long loader_samples_loaded(loader *l);

/* The seed of the sample at position `pos` of epoch `epoch`. */
uint64_t loader_sample_seed(uint64_t seed, long epoch, long pos);
/* Uniform double in [0, 1) from a splitmix64 state (advances it). */
double loader_rand(uint64_t *state);

/* ---- augmentation ----------------------------------------------------------- */

typedef enum {
    LOADER_CROP_CENTER = 0,   /* centre crop of the largest scale (no jitter) */
    LOADER_CROP_CORNER,       /* TSN: scale-jittered crop at one of 5 fixed positions */
    LOADER_CROP_RANDOM,       /* scale-jittered crop at a uniformly random position */
} loader_crop_mode;

#define LOADER_MAX_SCALES 8

typedef struct {
    int out_w, out_h;         /* network input size */
    loader_crop_mode crop;    /* training crop */
    int nscales;              /* TSN: 4 scales 1, .875, .75, .66 of the shorter side */
    double scales[LOADER_MAX_SCALES];
    int max_distort;          /* TSN: 1 (width and height scales differ by at most one step) */
    int flip;                 /* training: mirror half of the samples */
    int test_views;           /* 0 training; 1, 3 or 10 fixed test views */
    double test_scale;        /* test crop: the largest rectangle of the output's aspect
                                 inside the input, times test_scale (TSN: 224/256) */
} loader_aug;

loader_aug loader_aug_default(int out_w, int out_h);
int loader_aug_validate(const loader_aug *a);

typedef struct {
    int x, y, w, h;           /* crop rectangle in input pixels */
    int flip;                 /* mirror after cropping */
} loader_view;

/* Training view of an in_w x in_h input, drawn from *rng. */
void loader_view_draw(const loader_aug *a, int in_w, int in_h, uint64_t *rng, loader_view *v);
/* Test view i (0 <= i < a->test_views). */
void loader_view_test(const loader_aug *a, int in_w, int in_h, int i, loader_view *v);
/* Crops v from planes [C, in_h, in_w] and resizes bilinearly (half-pixel
 * centres, as torch's align_corners=False) to [C, out_h, out_w]; mirrors when
 * v->flip. motion: the planes are (u, v) pairs in pixels; u is scaled by
 * out_w / v->w and v by out_h / v->h, and u is negated when mirrored. */
int loader_view_apply(const loader_view *v, const float *in, int C, int in_h, int in_w,
                      float *out, int out_h, int out_w, int motion);
/* In place: mirrors [L, 2, h, w] motion fields left-right and negates u. */
void loader_flip_motion(float *fields, int L, int h, int w);

/* Optional extra augmentation, run after the built-in one on each sample
 * (sample [V*K, C, H, W] floats; seed as given to the source). */
typedef int (*loader_augment_fn)(void *ctx, uint64_t seed, float *sample, const int64_t *shape,
                                 int ndim);

/* ---- sources ------------------------------------------------------------------ */

/* Video frames of one split of a dataset index. Each sample: K segments
 * (TSN: at training a random frame in each of K equal segments, at test the
 * centre frame), each `frames` consecutive frames (1: RGB, 2: pairs, ...)
 * stacked as channels: [V*K, 3*frames, out_h, out_w]. Frames are decoded at
 * decode_w x decode_h, scaled to [0, 1] and normalised by mean/std per
 * channel (ImageNet's by default). Labels are the clip labels. */
typedef struct {
    const dataset_index *index;   /* borrowed */
    dataset_split split;
    int segments;                 /* K >= 1 */
    int frames;                   /* consecutive frames per segment, >= 1 */
    int decode_w, decode_h;       /* decode size (TSN: 340x256) */
    float mean[3], std[3];
    loader_aug aug;
    loader_augment_fn hook;       /* may be NULL */
    void *hook_ctx;
} loader_video_config;

loader_video_config loader_video_config_default(const dataset_index *idx, dataset_split split);
int loader_source_video(loader_source *src, const loader_video_config *cfg);

/* Motion stacks from any reader of L consecutive fields: read(rctx_worker,
 * item, offset, L, out [L, 2, h, w]) reads fields offset..offset+L-1 of item
 * (for datasets/cache.h this is cache_read_fields on a per-worker handle).
 * pairs(ctx, item) gives the fields the item has. Each sample:
 * [V*K, 2L, out_h, out_w], u and v in pixels of the output grid (divided by
 * `divide`, e.g. 1 or a typical magnitude). */
typedef struct {
    void *ctx;
    long count;                   /* items */
    int field_w, field_h;         /* stored field size */
    int segments, L;
    int channels;                 /* per field: 2 = (u, v) flow (flips negate u); other
                                     values (e.g. 3, an RGB difference) are plain planes */
    float divide;                 /* > 0 */
    loader_aug aug;
    loader_augment_fn hook;
    void *hook_ctx;
    long (*pairs)(void *ctx, long item);
    int32_t (*label)(void *ctx, long item);
    int (*open_worker)(void *ctx, int worker, void **wctx);
    void (*close_worker)(void *ctx, void *wctx);
    int (*read)(void *ctx, void *wctx, long item, long offset, int L, float *out); /* [L, channels, h, w] */
} loader_motion_config;

int loader_source_motion(loader_source *src, const loader_motion_config *cfg);

/* Samples in memory: count x prod(shape) floats and count labels, borrowed
 * (must outlive the loader). Optional hook runs on a copy of each sample. */
int loader_source_memory(loader_source *src, const float *data, const int32_t *labels,
                         long count, const int64_t *shape, int ndim, loader_augment_fn hook,
                         void *hook_ctx);

/* Releases what loader_source_* allocated (NULL-safe; zeroes *src). */
void loader_source_free(loader_source *src);

/* TSN segment sampling over n positions (frames, or first fields of a stack
 * of length `span`): training picks a uniformly random start within each of
 * K equal segments of [0, n - span]; test (rng == NULL) picks each centre. */
void loader_segment_starts(long n, int span, int K, uint64_t *rng, long *out);

#ifdef __cplusplus
}
#endif
#endif
