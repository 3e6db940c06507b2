/*
 * motion_source.h — frame pairs held in memory (experiments/motion_pairs.h:
 * the synthetic benchmark or a UCF-101-layout dataset) as the pair source
 * GLOCAL's training loop reads (motion/glocal.h, glocal_pair_source). Lives in
 * experiments/ because motion/ may not include datasets/.
 *
 * Ownership: the source borrows the pairs; they must outlive it.
 */
#ifndef GLOCAL_EXPERIMENTS_MOTION_SOURCE_H
#define GLOCAL_EXPERIMENTS_MOTION_SOURCE_H

#include "experiments/motion_pairs.h"
#include "motion/glocal.h"

/* Fills *src: pair k is (p->a[k], p->b[k]). */
void motion_pairs_source(const motion_pairs *p, glocal_pair_source *src);

#endif
