/* motion_source.c — motion_pairs as a glocal_pair_source (no copies). */
#include "experiments/motion_source.h"

static int pairs_get(void *ctx, const long *index, int n, const uint8_t **a, const uint8_t **b)
{
    const motion_pairs *p = ctx;
    const size_t fb = (size_t)p->width * p->height * 3;
    for (int i = 0; i < n; i++) {
        if (index[i] < 0 || index[i] >= p->n)
            return gl_error(GL_EINVAL, "motion_pairs_source: pair %ld of %d", index[i], p->n);
        a[i] = p->a + (size_t)index[i] * fb;
        b[i] = p->b + (size_t)index[i] * fb;
    }
    return 0;
}

void motion_pairs_source(const motion_pairs *p, glocal_pair_source *src)
{
    src->count = p->n;
    src->width = p->width;
    src->height = p->height;
    src->get = pairs_get;
    src->ctx = (void *)p;
}
