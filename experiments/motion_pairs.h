/*
 * motion_pairs.h — frame pairs for training and evaluating GLOCAL
 * (glocal train-motion / eval-motion): rendered in memory by the synthetic
 * benchmark (with ground truth), cut from photographs with exact ground
 * truth (datasets/photo_pairs.h), read from a synthetic dataset folder
 * (videos + _gt.h5 ground truth, datasets/synth.h schema), or decoded from
 * any UCF-101-layout dataset (no ground truth). Lives in experiments/ because it
 * combines datasets/ with motion/.
 *
 * Ownership: motion_pairs_free releases everything. Errors: GL_E* codes with
 * a message naming the file.
 */
#ifndef GLOCAL_EXPERIMENTS_MOTION_PAIRS_H
#define GLOCAL_EXPERIMENTS_MOTION_PAIRS_H

#include <stdint.h>

#include "datasets/photo_pairs.h"
#include "datasets/synth.h"

typedef struct {
    int n, width, height;
    uint8_t *a, *b;          /* [n][H][W][3] RGB24: frame t, frame t+1 */
    /* Ground truth (NULL when the source has none). */
    double *homography;      /* [n][9] */
    float *global_flow;      /* [n][2][H][W] */
    float *local_flow;       /* [n][2][H][W] */
    uint8_t *mask;           /* [n][H][W] */
    long *frame;             /* [n] the index of frame a in its video (video pairs; else NULL) */
} motion_pairs;

void motion_pairs_free(motion_pairs *p);

/* n pairs rendered by synth_pair_render(seed + i) (in parallel). */
int motion_pairs_synth(motion_pairs *p, const synth_config *cfg, int n, uint64_t seed);

/* Pairs 0..n-1 of photo_pairs_render (in parallel) from the photos of
 * `photos` (a folder or a list file, opened with photo_set_open at
 * max_short_side). */
int motion_pairs_photos(motion_pairs *p, const char *photos, int max_short_side,
                        const photo_pairs_config *cfg, int n);

/* Appends q's pairs to p's (one pool from two sources, e.g. photo-crop and
 * rendered pairs) and frees q. The frames must be of one size; the ground
 * truth stays when both have it, else it is dropped. On error p and q are
 * as they were. */
int motion_pairs_append(motion_pairs *p, motion_pairs *q);

/* Up to pairs_per_clip consecutive pairs (t, t+1) of the first max_clips
 * clips of the test list of a synthetic dataset folder, with the ground truth
 * of DIR/<Class>/<clip>_gt.h5. */
int motion_pairs_synth_dir(motion_pairs *p, const char *dir, int max_clips, int pairs_per_clip);

/* n pairs (t, t + gap) from random clips of the train list of split `split`
 * (1..3) of a UCF-101-layout dataset (lists in `lists`, or root when NULL),
 * scaled so the short side is `size` and centre-cropped to size x size. */
int motion_pairs_dataset(motion_pairs *p, const char *root, const char *lists, int split, int n,
                         int size, int gap, uint64_t seed, int (*progress)(void *, long, long),
                         void *ctx);

/* Up to max_pairs pairs (t, t + gap) spread evenly over one video (no ground
 * truth; p->frame gets each pair's t), every frame scaled so its shorter side
 * is short_side (area filter, aspect kept; 0: the native size). GL_EFORMAT
 * naming the file when it has no more than gap frames. */
int motion_pairs_video(motion_pairs *p, const char *path, int short_side, int gap, int max_pairs);

#endif
