/* extract_private.h — what the files of glocal extract share:
 * extract_methods.c (the motion methods and their table) and extract.c (the
 * worker pool, the configuration, one run). Private to experiments/extract*.c. */
#ifndef GLOCAL_EXPERIMENTS_EXTRACT_PRIVATE_H
#define GLOCAL_EXPERIMENTS_EXTRACT_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "experiments/extract.h"

typedef struct {
    const char *name;
    int channels;          /* per field: 2 (flow u, v) or 3 (RGB difference) */
    int has_homographies;
    float scale;           /* int16 step of the stored values */
    /* Per-worker state (may stay NULL), for frames of c->width x c->height. */
    int (*init)(void **state, const extract_config *c);
    void (*free)(void *state);
    /* n pairs of RGB24 frames (width*height*3 bytes each) -> for k < nparts,
     * fields[k] [n, C, h, w] of output parts[k] of the pass, and when
     * has_homographies the pass's homographies [n, 9] (row-major, pixels of
     * the h x w grid, frame a -> frame b). Methods of one pass share `pass`
     * and this function, and differ by `part`; a pass of one method has
     * nparts = 1 and ignores parts. */
    int (*pairs)(void *state, const uint8_t *const *a, const uint8_t *const *b, int n, int width,
                 int height, const int *parts, int nparts, float *const *fields, float *homs);
    /* The method's parameters as text (recorded in the cache; resume checks them). */
    void (*describe)(const extract_config *c, char *buf, size_t n);
    const char *pass;      /* NULL: the method's name (a pass of its own) */
    int part;
} motion_method;

/* The method named `name` in the table; NULL for an unknown name (or NULL). */
const motion_method *extract_method_find(const char *name);

/* The smallest grid side DIS's preset takes: a patch at its finest scale. */
int extract_dis_min_side(void);

#endif
