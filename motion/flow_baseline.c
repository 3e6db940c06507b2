/* flow_baseline.c — flow of RGB frames through a pluggable flow method, and
 * the flow-minus-homography baseline (flow, RANSAC homography of it, the
 * rest as local motion) that glocal extract, eval-motion, eval-dhe and flow
 * share. See motion/flow.h. */
#include "motion/flow.h"

int flow_method_tvl1(const float *i0, const float *i1, int width, int height, const void *cfg,
                     flow_field *flow)
{
    tvl1_config def;
    if (!cfg) {
        tvl1_config_default(&def);
        cfg = &def;
    }
    return tvl1_flow(i0, i1, width, height, cfg, flow);
}

int flow_from_rgb24(const uint8_t *a, const uint8_t *b, int width, int height,
                    flow_method_fn method, const void *cfg, flow_field *flow)
{
    if (!a || !b || !flow || width <= 0 || height <= 0)
        return gl_error(GL_EINVAL, "flow_from_rgb24: missing frame or field, or bad size %dx%d",
                        width, height);
    if (flow->width != width || flow->height != height || !flow->u)
        return gl_error(GL_EINVAL, "flow_from_rgb24: the flow field is %dx%d, the frames %dx%d",
                        flow->width, flow->height, width, height);
    const size_t hw = (size_t)width * height;
    float *g = gl_malloc(sizeof(float) * hw * 2);
    if (!g) return GL_ENOMEM;
    int rc;
    if ((rc = flow_gray_from_rgb24(a, width, height, g)) < 0 ||
        (rc = flow_gray_from_rgb24(b, width, height, g + hw)) < 0)
        goto fail;
    rc = (method ? method : flow_method_tvl1)(g, g + hw, width, height, cfg, flow);
fail:
    gl_free(g);
    return rc;
}

void flow_baseline_config_default(flow_baseline_config *c)
{
    c->method = NULL;
    c->method_cfg = NULL;
    c->step = 2;
    homography_ransac_config_default(&c->ransac);
    c->zero_inliers = 1;
}

int flow_baseline_rgb24(const uint8_t *a, const uint8_t *b, int width, int height,
                        const flow_baseline_config *c, double h[9], flow_field *flow,
                        flow_field *global, flow_field *local)
{
    if (!c) return gl_error(GL_EINVAL, "flow_baseline_rgb24: NULL config");
    flow_field own = { 0 };
    int rc = 0;
    if (!flow) {
        if ((rc = flow_field_new(&own, width, height)) < 0) return rc;
        flow = &own;
    }
    if ((rc = flow_from_rgb24(a, b, width, height, c->method, c->method_cfg, flow)) < 0) goto fail;
    rc = flow_minus_homography(flow, c->step, &c->ransac, c->zero_inliers, h, global, local);
fail:
    flow_field_free(&own);
    return rc;
}
