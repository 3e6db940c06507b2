/*
 * extract.h — a motion method computed over every clip of a dataset into an
 * HDF5 motion cache (datasets/cache.h), resumably, in parallel: what
 * `glocal extract` runs for one shard (the command adds the options, the
 * printing, and the merge of the shards of several ranks).
 *
 * Pipeline. W worker threads each take the next clip, stream its frames
 * (FFmpeg, area-resized to the cache grid), run the method on batches of
 * pairs (frame t, frame t + stride) and append the fields to their own
 * spooled clip file; while one worker compresses and writes (HDF5 serialises
 * its calls), the others decode and compute. Memory per worker is a batch of
 * frames and fields, whatever the clip or dataset length. The calling thread
 * only reports progress.
 *
 * Methods (extract_method_names): tvl1 (TV-L1 flow, IPOL defaults, on grey
 * frames: 2 channels u, v in pixels of the grid); tvl1-minus-homography
 * (motion/flow.h's flow_baseline_rgb24 with a fit every 4 px: the local flow
 * and the homography per pair); dis, dis-minus-homography (the same with DIS
 * flow, OpenCV's medium preset; grids of at least 16x16); rgbdiff (TSN's RGB
 * difference, 3 channels in [-1, 1], stored exactly); and GLOCAL
 * (motion/glocal.h's glocal_infer with a checkpoint of glocal train-motion;
 * 2 channels and the refined homography per pair): glocal-local (the local
 * flow gated by the mask, mask >= 0.5), glocal-residual (the same local flow
 * before the gate), glocal-mixed (global + gated local), glocal-global (the
 * homography's flow: the homography of the same inference, refined on the
 * LME's background), glocal-mask (1 channel: the gate, 1 = foreground), and
 * glocal-tvl1-local, glocal-tvl1-residual, glocal-tvl1-mixed,
 * glocal-tvl1-mask (the same with the local flow forced to TV-L1 on the
 * pair aligned by GLOCAL's homography, glocal_infer_options.local_tvl1 = 1,
 * whatever the default: the hybrid, by name), and glocal-lme-local,
 * glocal-lme-residual, glocal-lme-mixed, glocal-lme-mask (the LME's own local
 * flow, no TV-L1: local_tvl1 = 0; for models whose LME learned one, lme_arch
 * 2). The masks are extract outputs, not recognition streams.
 *
 * One pass, several caches. Methods computed by one call share a pass
 * (extract_method_pass): every glocal-* method is one
 * glocal_infer with local_gate = 0 (a residual is its local flow; the gated
 * local flow is exactly residual * (mask >= 0.5) and mixed = global + gated
 * local, glocal.h), and with local_both when both local flows are asked for
 * (TV-L1's of the hybrid and the LME's own, each with its mask); every
 * other method is a pass of its own. A config may ask for several methods of
 * one pass (method/out plus more[]): each pair is computed once and every
 * output goes to its own cache, each identical in layout, provenance (the
 * method's own name and parameters) and resume behaviour to the cache a run
 * of that method alone writes, so either can resume or replace the other:
 *
 *     glocal extract --dataset D --model M --method glocal-local --out L.h5 \
 *                    --method glocal-residual --out R.h5 --method glocal-mixed --out X.h5
 *
 * A method alone is computed with its own options, as before (glocal-local
 * with the gate on, ...); tests/test_extract.c holds the caches of both ways
 * equal. Per cache, as for one: a clip any cache lacks is computed (and
 * stored in each cache that lacks it); a clip that fails is recorded in the
 * /errors of each; the caches are published one after the other at the end,
 * each atomically. A worker's memory is a batch of frames plus a batch of
 * fields per output. Reading the caches of one pass from Python, and the
 * relations between them: README.md, "Formats".
 *
 * Resume. Finished clips are spooled beside the cache; a run with the same
 * settings skips them, and the cache is published atomically at the end.
 * Clips that cannot be read (or whose fields are not finite) are recorded in
 * the cache's /errors; they do not stop the run. A damaged clip stored anyway
 * (strict 0) is a row of /warnings, committed with the clip, so the cache
 * lists it whichever run met it.
 *
 * Errors: negative GL_E* codes with a message; nothing here prints.
 */
#ifndef GLOCAL_EXPERIMENTS_EXTRACT_H
#define GLOCAL_EXPERIMENTS_EXTRACT_H

#define EXTRACT_MAX_OUTPUTS 10 /* caches one run writes (method/out and more[]) */

/* The longest --model path extract takes: the path is part of each cache's
 * parameter text (cache_config.params), which must hold it whole. */
#define EXTRACT_MODEL_PATH_MAX 1024

/* One more output of a run: a method and its cache. */
typedef struct {
    const char *method, *out;
} extract_output;

typedef struct {
    const char *dataset;      /* UCF-101 layout: DIR/Class/v_Class_gGG_cCC.avi */
    const char *lists;        /* folder of classInd.txt and the split lists; NULL = dataset */
    int split;                /* split whose lists are read, 1..99 */
    int only;                 /* -1: the clips of every list of the split; else one dataset_split */
    const char *list_file;    /* the list file the user named, for the cache's provenance; NULL = the split */
    const char *method;       /* one of extract_method_names() */
    const char *model;        /* glocal-* methods: a glocal train-motion checkpoint (NULL otherwise;
                                 a path of at most EXTRACT_MODEL_PATH_MAX characters) */
    const char *out;          /* method's cache; resumed when it holds the same settings */
    /* More outputs of method's pass, each into its own cache (more[k].method's
     * fields into more[k].out): every method and every path once. */
    int nmore;
    extract_output more[EXTRACT_MAX_OUTPUTS - 1];
    int width, height;        /* field grid, pixels (8..4096) */
    int stride;               /* frames between the two of a pair, and between pairs */
    int workers;              /* clips computed at once; 0 = gl_num_threads(); each method call
                                 then gets gl_num_threads() / workers threads */
    int shard_k, shard_n;     /* this run computes clips i with i % shard_n == shard_k */
    /* A damaged clip: FFmpeg reported decoding errors in it, or more than 2
     * frames fewer decode than its header says (a truncated download). */
    int strict;               /* 1: record it in /errors ("damaged: WHY") instead of storing it;
                                 0: store it with a row "damaged: WHY" in /warnings. Recorded
                                 in the cache's params: a resume with the other is refused */
} extract_config;

/* dataset/out/method NULL, no more outputs, split 1, only -1, 112 x 112,
 * stride 1, workers 0, shard 0/1. */
void extract_config_default(extract_config *c);
/* GL_EINVAL naming the first bad field (an unknown method, a model for a
 * method that takes none or none for a glocal-* one, an output of another
 * pass, the same method or path twice, ...). */
int extract_config_validate(const extract_config *c);

/* "tvl1, tvl1-minus-homography, dis, dis-minus-homography, rgbdiff,
 * glocal-local, glocal-residual, glocal-global, glocal-mixed, glocal-mask,
 * glocal-tvl1-local, ..., glocal-lme-mask" (every method, by name). */
const char *extract_method_names(void);
/* 1 for a known method name, 0 otherwise; *needs_model: a glocal-* method. */
int extract_method_known(const char *name, int *needs_model);
/* The pass a method is computed by: methods with the same pass can be
 * outputs of one run ("glocal" for every glocal-* method; the method's own
 * name for the others). NULL for an unknown method. */
const char *extract_method_pass(const char *name);

typedef struct {
    long total;               /* clips the lists select (all shards) */
    long assigned;            /* of those, this shard's */
    long resumed;             /* already stored when this run started (in every cache) */
    long done;                /* stored now (resumed ones included; in the cache with fewest) */
    long pairs;               /* pairs computed by this run */
    long failed;              /* clips that failed in this run */
    long damaged;             /* damaged clips met in this run (stored, or failed with strict) */
    double seconds;           /* since the workers started */
    int first, last;          /* the call before the workers start; the one after they stopped */
} extract_progress;

/* Called from the calling thread before the workers start, about every
 * 0.1 s while they run, and once after; nonzero asks to stop: the clips in
 * flight are dropped, the spool is kept (a rerun resumes). */
typedef int (*extract_progress_fn)(void *ctx, const extract_progress *p);

/* Runs the method's pass over this shard's clips into c->out (and each
 * more[k].out) and publishes them. Returns 0 (clips may have failed: see the
 * caches' /errors), GL_ECANCELED when progress asked to stop (nothing
 * published), GL_ENOTFOUND when the lists select no clip, or another
 * negative code (a cache write failed: the run stops, the clips already
 * spooled are kept). *summary (may be NULL) gets the last progress. */
int extract_run(const extract_config *c, extract_progress_fn progress, void *ctx,
                extract_progress *summary);

#endif
