/* flow_fuse.c — two flows of one image pair fused pixel by pixel by their
 * windowed photometric error (see motion/flow.h). */
#include <math.h>
#include <string.h>

#include "motion/flow.h"
#include "motion/interp_private.h"

/* A target outside i1 costs the whole grey range: nothing there to compare. */
#define OUT_OF_VIEW 255.0f

/* e[p] = |i0(p) - i1(p + f(p))|, i1 sampled bilinearly. */
static void photo_error(const float *i0, const float *i1, int w, int h, const flow_field *f, float *e)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t p = (size_t)y * w + x;
            float s;
            e[p] = bilinear_inside(i1, w, h, x + f->u[p], y + f->v[p], &s) ? fabsf(i0[p] - s)
                                                                            : OUT_OF_VIEW; /* NaN flow too */
        }
}

int flow_fuse(const float *i0, const float *i1, int width, int height, int radius, flow_field *a,
              const flow_field *b)
{
    if (!i0 || !i1 || !a || !b || width < 2 || height < 2 || a->width != width || a->height != height ||
        b->width != width || b->height != height)
        return gl_error(GL_EINVAL, "flow_fuse: need two %dx%d flows of a %dx%d pair (got %dx%d and %dx%d)",
                        width, height, width, height, a ? a->width : 0, a ? a->height : 0, b ? b->width : 0,
                        b ? b->height : 0);
    if (radius < 0 || radius > 64) return gl_error(GL_EINVAL, "flow_fuse: radius %d, expected 0..64", radius);
    const size_t hw = (size_t)width * height;
    float *ea = gl_malloc(sizeof(float) * 3 * hw);
    if (!ea) return GL_ENOMEM;
    float *eb = ea + hw, *t = eb + hw;
    photo_error(i0, i1, width, height, a, ea);
    photo_error(i0, i1, width, height, b, eb);
    box_sum(ea, t, width, height, radius);
    box_sum(eb, t, width, height, radius);
    for (size_t p = 0; p < hw; p++)
        if (eb[p] < ea[p]) {
            a->u[p] = b->u[p];
            a->v[p] = b->v[p];
        }
    gl_free(ea);
    return 0;
}

int flow_method_fused(const float *i0, const float *i1, int width, int height, const void *cfg,
                      flow_field *flow)
{
    if (cfg) return gl_error(GL_EINVAL, "flow_method_fused: takes no settings (cfg must be NULL)");
    int rc = flow_method_tvl1(i0, i1, width, height, NULL, flow);
    /* DIS medium needs 16 px on a side (as the hybrid's fusion) */
    if (rc < 0 || width < 16 || height < 16) return rc;
    flow_field d;
    if ((rc = flow_field_new(&d, width, height)) < 0) return rc;
    if ((rc = flow_method_dis(i0, i1, width, height, NULL, &d)) >= 0)
        rc = flow_fuse(i0, i1, width, height, FLOW_FUSE_RADIUS, flow, &d);
    flow_field_free(&d);
    return rc;
}
