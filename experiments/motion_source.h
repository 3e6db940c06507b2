/*
 * motion_source.h — frame pairs held in memory (experiments/motion_pairs.h:
 * the synthetic benchmark, photo pairs or a UCF-101-layout dataset) as the
 * pair source GLOCAL's training loop reads (motion/glocal.h,
 * glocal_pair_source), optionally with an unsupervised teacher: a classical
 * flow method's dense flow of every pair, both directions, and where to trust
 * it. Lives in experiments/ because motion/ may not include datasets/.
 *
 * Ownership: the source borrows the pairs (and the teacher); they must
 * outlive it. motion_teacher_free releases a teacher.
 */
#ifndef GLOCAL_EXPERIMENTS_MOTION_SOURCE_H
#define GLOCAL_EXPERIMENTS_MOTION_SOURCE_H

#include "experiments/motion_pairs.h"
#include "motion/flow.h"
#include "motion/glocal.h"

/* Fills *src: pair k is (p->a[k], p->b[k]); no teacher. */
void motion_pairs_source(const motion_pairs *p, glocal_pair_source *src);

/* A teacher's flows of every pair of p: forward (A -> B) and backward, and a
 * confidence per pixel of each: 1 where the two directions agree (UnFlow's
 * test, |f + b(p + f)|^2 < 0.01 (|f|^2 + |b|^2) + 0.5) and the warped grey
 * levels differ by under 20 (of 255), 0 elsewhere. */
typedef struct {
    const motion_pairs *p;
    float *flow;   /* [n][2 directions][2][H][W], pixels */
    float *conf;   /* [n][2 directions][H][W] */
} motion_teacher;

/* Runs method (flow_method_fn, motion/flow.h; cfg its settings or NULL) on
 * both directions of every pair; progress (may be NULL) after each pair. */
int motion_teacher_compute(motion_teacher *t, const motion_pairs *p, flow_method_fn method,
                           const void *cfg, int (*progress)(void *, long, long), void *ctx);
void motion_teacher_free(motion_teacher *t);

/* Supervised pre-training (train-motion --pretrain-gt, never the default):
 * the "teacher" is p's ground truth, the exact flow A -> B (global + local),
 * trusted wherever it stays inside the frame; the backward direction (the
 * pairs drawn swapped) is not known exactly and is trusted nowhere.
 * GL_EINVAL when p has no ground truth (pairs from videos). */
int motion_teacher_truth(motion_teacher *t, const motion_pairs *p);

/* Like motion_pairs_source, with t's flows as the source's teacher. */
void motion_pairs_source_teacher(const motion_teacher *t, glocal_pair_source *src);

#endif
