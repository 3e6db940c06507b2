/* motion_source.c — motion_pairs as a glocal_pair_source (no copies), and a
 * classical teacher's flows of the same pairs. */
#include <math.h>
#include <string.h>

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
    src->teacher = NULL;
    src->ctx = (void *)p;
}

static inline float bilinear(const float *img, int w, int h, float x, float y)
{
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x0 > w - 2) x0 = w - 2;
    if (y0 > h - 2) y0 = h - 2;
    float fx = x - x0, fy = y - y0;
    const float *q = img + (long)y0 * w + x0;
    return (1 - fy) * ((1 - fx) * q[0] + fx * q[1]) + fy * ((1 - fx) * q[w] + fx * q[w + 1]);
}

/* conf of flow f (A -> B) given the other direction r (B -> A) and the grey
 * frames ga, gb. */
static void confidence(const float *f, const float *r, const float *ga, const float *gb, int w,
                       int h, float *conf)
{
    const long n = (long)w * h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            long i = (long)y * w + x;
            float u = f[i], v = f[n + i], qx = x + u, qy = y + v;
            int ok = qx >= 0 && qy >= 0 && qx <= w - 1 && qy <= h - 1;
            if (ok) {
                float bu = bilinear(r, w, h, qx, qy), bv = bilinear(r + n, w, h, qx, qy);
                float du = u + bu, dv = v + bv;
                ok = du * du + dv * dv < 0.01f * (u * u + v * v + bu * bu + bv * bv) + 0.5f &&
                     fabsf(ga[i] - bilinear(gb, w, h, qx, qy)) < 20.0f;
            }
            conf[i] = ok ? 1.0f : 0.0f;
        }
}

int motion_teacher_compute(motion_teacher *t, const motion_pairs *p, flow_method_fn method,
                           const void *cfg, int (*progress)(void *, long, long), void *ctx)
{
    memset(t, 0, sizeof *t);
    const int w = p->width, h = p->height;
    const size_t plane = (size_t)w * h, fb = plane * 3;
    int rc = 0;
    flow_field f = { 0 }, r = { 0 };
    float *ga = gl_malloc(sizeof(float) * plane), *gb = gl_malloc(sizeof(float) * plane);
    t->p = p;
    t->flow = gl_malloc(sizeof(float) * 4 * plane * (size_t)p->n);
    t->conf = gl_malloc(sizeof(float) * 2 * plane * (size_t)p->n);
    if (!ga || !gb || !t->flow || !t->conf) { rc = GL_ENOMEM; goto fail; }
    if ((rc = flow_field_new(&f, w, h)) < 0 || (rc = flow_field_new(&r, w, h)) < 0) goto fail;
    for (long k = 0; k < p->n; k++) {
        const uint8_t *a = p->a + (size_t)k * fb, *b = p->b + (size_t)k * fb;
        float *fw = t->flow + 4 * plane * (size_t)k, *bw = fw + 2 * plane;
        if ((rc = flow_from_rgb24(a, b, w, h, method, cfg, &f)) < 0 ||
            (rc = flow_from_rgb24(b, a, w, h, method, cfg, &r)) < 0)
            goto fail;
        memcpy(fw, f.u, sizeof(float) * plane);
        memcpy(fw + plane, f.v, sizeof(float) * plane);
        memcpy(bw, r.u, sizeof(float) * plane);
        memcpy(bw + plane, r.v, sizeof(float) * plane);
        if ((rc = flow_gray_from_rgb24(a, w, h, ga)) < 0 || (rc = flow_gray_from_rgb24(b, w, h, gb)) < 0)
            goto fail;
        float *cf = t->conf + 2 * plane * (size_t)k;
        confidence(fw, bw, ga, gb, w, h, cf);
        confidence(bw, fw, gb, ga, w, h, cf + plane);
        if (progress && (rc = progress(ctx, k + 1, p->n)) != 0) {
            if (rc > 0) rc = gl_error(GL_ECANCELED, "teacher flows: stopped");
            goto fail;
        }
    }
    rc = 0;
fail:
    flow_field_free(&f);
    flow_field_free(&r);
    gl_free(ga);
    gl_free(gb);
    if (rc < 0) motion_teacher_free(t);
    return rc;
}

int motion_teacher_truth(motion_teacher *t, const motion_pairs *p)
{
    memset(t, 0, sizeof *t);
    if (!p->global_flow || !p->local_flow)
        return gl_error(GL_EINVAL, "ground-truth teacher: the pairs have no ground truth (only rendered "
                        "synthetic pairs and photo-crop pairs have)");
    const int w = p->width, h = p->height;
    const size_t plane = (size_t)w * h;
    t->p = p;
    t->flow = gl_calloc(4 * plane * (size_t)p->n, sizeof(float));
    t->conf = gl_calloc(2 * plane * (size_t)p->n, sizeof(float));
    if (!t->flow || !t->conf) {
        motion_teacher_free(t);
        return GL_ENOMEM;
    }
    for (long k = 0; k < p->n; k++) {
        const float *g = p->global_flow + 2 * plane * (size_t)k, *l = p->local_flow + 2 * plane * (size_t)k;
        float *fw = t->flow + 4 * plane * (size_t)k, *cf = t->conf + 2 * plane * (size_t)k;
        for (size_t i = 0; i < 2 * plane; i++) fw[i] = g[i] + l[i];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const size_t i = (size_t)y * w + x;
                const float qx = x + fw[i], qy = y + fw[plane + i];
                cf[i] = qx >= 0 && qy >= 0 && qx <= w - 1 && qy <= h - 1; /* backward: stays 0 */
            }
    }
    return 0;
}

void motion_teacher_free(motion_teacher *t)
{
    gl_free(t->flow);
    gl_free(t->conf);
    memset(t, 0, sizeof *t);
}

static int teacher_get(void *ctx, const long *index, const unsigned char *swap, int n,
                       const float **flow, const float **conf)
{
    const motion_teacher *t = ctx;
    const size_t plane = (size_t)t->p->width * t->p->height;
    for (int i = 0; i < n; i++) {
        if (index[i] < 0 || index[i] >= t->p->n)
            return gl_error(GL_EINVAL, "motion_teacher: pair %ld of %d", index[i], t->p->n);
        const int d = swap[i] ? 1 : 0;
        flow[i] = t->flow + (4 * (size_t)index[i] + 2 * d) * plane;
        conf[i] = t->conf + (2 * (size_t)index[i] + d) * plane;
    }
    return 0;
}

static int teacher_pairs_get(void *ctx, const long *index, int n, const uint8_t **a, const uint8_t **b)
{
    const motion_teacher *t = ctx;
    return pairs_get((void *)t->p, index, n, a, b);
}

void motion_pairs_source_teacher(const motion_teacher *t, glocal_pair_source *src)
{
    motion_pairs_source(t->p, src);
    src->get = teacher_pairs_get;
    src->teacher = teacher_get;
    src->ctx = (void *)t;
}
