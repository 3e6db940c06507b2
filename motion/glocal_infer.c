/* glocal_infer.c — GLOCAL inference on RGB frames of any size: network at the
 * model size, DLT homography, robust refinement at the input size, LME on the
 * refined alignment, everything rescaled to input pixels. */
#include <math.h>
#include <string.h>

#include "motion/flow.h"
#include "motion/glocal.h"
#include "motion/glocal_private.h"
#include "motion/interp_private.h"
#include "nn/mat3.h"

void glocal_infer_options_default(glocal_infer_options *o)
{
    memset(o, 0, sizeof *o);
    o->refine = 1;
    glocal_refine_config_default(&o->rc);
    o->lme = 1;
    o->use_network = 1;
    o->net_passes = 0;
    o->start_dis = 2;
    o->start_search = 1;
    o->lme_passes = 1;
    o->lme_repass = 1.0;
    o->local_tvl1 = 1; /* the hybrid, until the LME's own flow is as good: see glocal.h */
    o->local_fuse = 1;
    o->local_thresh = 0.5;
    o->local_thresh_k = 5;
    o->local_thresh_min = 0.1;
    o->lme_thresh_k = 2.5;
    o->lme_agree_k = 2.5;
    o->lme_finish = 10;
    o->lme_coarse = 1;
    o->lme_coarse_px = 2;
    o->lme_fine = 1;
    o->lme_support = 0.4;
    o->lme_support_k = 1.5;
    o->lme_flat = 1;
    o->lme_flat_noise = 0.25;
    o->mask_sigma = 1.0 / 16;
    o->mask_range = 20;
    o->view_margin = 1.0 / 32;
    o->mask_lme = 0;
    o->local_gate = 1;
}

/* B aligned to A by h: out(p) = B(h p), bicubic (Keys), edge-clamped. The
 * local flow compares A with it: bilinear resampling blurs B by up to a
 * [1/2 1/2] filter where h falls between pixels, which both flows then
 * see as a difference. Training photos (seed 777, 30 pairs; 128 +-8,
 * 128 +-16, 256 +-16, 256 +-32), clips of the training photos, renderer
 * seeds 777.. (128^2, 64^2), hybrid object EPE / mask IoU, bilinear ->
 * bicubic: 0.741 / 0.818 -> 0.729 / 0.824, 2.133 / 0.730 -> 2.133 /
 * 0.732, 1.117 / 0.774 -> 1.085 / 0.777, 4.035 / 0.689 -> 4.009 / 0.690;
 * 0.761 / 0.674 -> 0.764 / 0.675; 0.437 / 0.807 -> 0.430 / 0.809, 0.395
 * / 0.655 -> 0.392 / 0.668. */
static void warp_gray(const float *b, int w, int hgt, const double h[9], float *out)
{
    for (int y = 0; y < hgt; y++)
        for (int x = 0; x < w; x++) {
            double d = h[6] * x + h[7] * y + h[8];
            double xs = (h[0] * x + h[1] * y + h[2]) / d, ys = (h[3] * x + h[4] * y + h[5]) / d;
            xs = xs < 0 ? 0 : (xs > w - 1 ? w - 1 : xs);
            ys = ys < 0 ? 0 : (ys > hgt - 1 ? hgt - 1 : ys);
            const int x0 = (int)xs, y0 = (int)ys;
            float wx[4], wy[4];
            cubic_weights((float)(xs - x0), wx);
            cubic_weights((float)(ys - y0), wy);
            int xi[4];
            for (int k = 0; k < 4; k++) {
                const int q = x0 - 1 + k;
                xi[k] = q < 0 ? 0 : q > w - 1 ? w - 1 : q;
            }
            float acc = 0;
            for (int j = 0; j < 4; j++) {
                const int q = y0 - 1 + j;
                const float *row = b + (size_t)(q < 0 ? 0 : q > hgt - 1 ? hgt - 1 : q) * w;
                acc += wy[j] * (wx[0] * row[xi[0]] + wx[1] * row[xi[1]] + wx[2] * row[xi[2]] + wx[3] * row[xi[3]]);
            }
            out[(size_t)y * w + x] = acc;
        }
}

/* Edge-aware clean-up of a binary mask: a joint (cross) bilateral filter
 * guided by the grey frame (Tomasi & Manduchi 1998; Petschnigg et al. and
 * Eisemann & Durand 2004), m'(p) = sum_q w m(q) / sum_q w with
 * w = exp(-|p - q|^2 / 2 ss^2) exp(-(I(p) - I(q))^2 / 2 sr^2), kept >= 0.5.
 * Motion evidence spills into flat background (TV regularisation) and misses
 * the slow parts of objects; averaging it within regions of similar grey
 * level snaps it to the object's edges. Separable (Pham & van Vliet 2005): a
 * horizontal pass, then a vertical one over its result, each guided by I —
 * 2 (2R + 1) taps a pixel instead of (2R + 1)^2 (at 128x128, R = 16: 66
 * against 1089). sw: 2R + 1 + 256 + W H floats. */
static void mask_bilateral(const float *grey, int W, int H, int R, double ss, double sr,
                           const uint8_t *in, uint8_t *out, float *sw)
{
    float *rw = sw + 2 * R + 1, *mid = rw + 256;
    for (int d = -R; d <= R; d++) sw[d + R] = (float)exp(-(double)d * d / (2 * ss * ss));
    for (int d = 0; d < 256; d++) rw[d] = (float)exp(-(double)d * d / (2 * sr * sr));
    for (int y = 0; y < H; y++) {
        const float *g = grey + (size_t)y * W;
        const uint8_t *m = in + (size_t)y * W;
        for (int x = 0; x < W; x++) {
            float s = 0, sm = 0;
            for (int xx = x - R < 0 ? 0 : x - R; xx <= x + R && xx < W; xx++) {
                int d = (int)(fabsf(g[xx] - g[x]) + 0.5f);
                float w = sw[xx - x + R] * rw[d > 255 ? 255 : d];
                s += w;
                sm += m[xx] ? w : 0.0f;
            }
            mid[(size_t)y * W + x] = sm / s;
        }
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const float g = grey[(size_t)y * W + x];
            float s = 0, sm = 0;
            for (int yy = y - R < 0 ? 0 : y - R; yy <= y + R && yy < H; yy++) {
                int d = (int)(fabsf(grey[(size_t)yy * W + x] - g) + 0.5f);
                float w = sw[yy - y + R] * rw[d > 255 ? 255 : d];
                s += w;
                sm += w * mid[(size_t)yy * W + x];
            }
            out[(size_t)y * W + x] = sm >= 0.5f * s;
        }
}

/* A flow l_a computed on the aligned pair (A, B(H .)) into B's frame, the
 * convention of the local flow (glocal.h, glocal_result): pixel p of A goes
 * to H(p + l_a(p)) in B, so its local motion is H(p + l_a(p)) - H(p), and
 * global + local is the mixed flow exactly. l_a itself is off by
 * (dH - I) l_a: on photo pairs with corners moved by 1/8 of the side,
 * pixels of a patch's motion. A vector H sends to infinity stays. */
static void aligned_to_frame_b(const double h[9], int width, int height, flow_field *f)
{
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            const size_t p = (size_t)y * width + x;
            double x0, y0, x1, y1;
            if (homography_apply(h, x, y, &x0, &y0) < 0 ||
                homography_apply(h, x + f->u[p], y + f->v[p], &x1, &y1) < 0)
                continue;
            f->u[p] = (float)(x1 - x0);
            f->v[p] = (float)(y1 - y0);
        }
}

/* The local flow's post-processing (glocal_infer_options.local_tvl1): the
 * flow (TV-L1 on the aligned pair, or the LME's already in r->local_flow),
 * the foreground evidence, its bilateral clean-up, the gate. */
typedef struct {
    const uint8_t *const *a, *const *b;
    int tvl1;               /* 1: TV-L1 on the aligned pair; 0: the LME's flow already in flow */
    int fuse;               /* with tvl1: fused with DIS's (glocal_infer_options.local_fuse) */
    int width, height, have_mask, gate; /* have_mask: the LME's mask in `mask` is evidence too */
    double thresh, thresh_k, thresh_min, mask_sigma, mask_range, view_margin;
    double agree_k;         /* > 0 (with tvl1 or finished): the LME's flow in `flow` must move
                               too, k of its own threshold (glocal_infer_options.lme_agree_k) */
    const double *homography; /* [n][9], the alignment */
    float *flow, *mask;       /* [n][2][H][W] and [n][H][W]: the LME's in, the result out */
    const float *finished;    /* NULL, or (without tvl1) [n][2][H][W]: the LME's flow finished
                                 (lme_finish), the flow to judge and gate; agree_k then reads `flow` */
    double support, support_k; /* with finished: glocal_infer_options.lme_support(_k); 0: off */
    double flat, flat_noise;   /* with support: glocal_infer_options.lme_flat(_noise) */
    const float *grey_b;       /* with finished: [n][H][W] grey B (glocal_infer's, made for the finish) */
} local_job;

/* The motion threshold of flow (u, v): k x the median |flow|, clamped to
 * [thresh_min, thresh]; k = 0: thresh. scratch: width x height floats. */
static double motion_thresh(const local_job *j, double k, const float *u, const float *v, float *scratch)
{
    const long hw = (long)j->width * j->height;
    if (k <= 0) return j->thresh;
    for (long p = 0; p < hw; p++) scratch[p] = hypotf(u[p], v[p]);
    const double t = k * glocal_kth_smallest(scratch, hw, hw / 2);
    return t < j->thresh_min ? j->thresh_min : t > j->thresh ? j->thresh : t;
}

/* Window means of the (2r+1)^2 square around each pixel, clipped at the
 * border: box_sum, then each sum over its window's pixel count. t:
 * scratch, w x h. */
static void box_mean(float *e, float *t, int w, int h, int r)
{
    box_sum(e, t, w, h, r);
    for (int y = 0; y < h; y++) {
        const int ny = (y + r < h ? y + r : h - 1) - (y - r > 0 ? y - r : 0) + 1;
        for (int x = 0; x < w; x++) {
            const int nx = (x + r < w ? x + r : w - 1) - (x - r > 0 ? x - r : 0) + 1;
            e[(size_t)y * w + x] /= (float)(nx * ny);
        }
    }
}

/* glocal_infer_options.lme_support (glocal_private.h). */
void glocal_lme_support_clear(const float *ga, const float *gb, int W, int H, const double h[9], const float *u,
                              const float *v, double support, double support_k, double flat, double flat_noise,
                              float *scratch, uint8_t *ev)
{
    if (!(support > 0)) return; /* off */
    enum { R = 3 };
    const size_t hw = (size_t)W * H;
    float *r0 = scratch, *r1 = scratch + hw, *m0 = scratch + 2 * hw;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const size_t p = (size_t)y * W + x;
            double X, Y;
            float b0, b1;
            r0[p] = r1[p] = 0;
            if (homography_apply(h, x, y, &X, &Y) < 0 || !bilinear_inside(gb, W, H, X, Y, &b0) ||
                !bilinear_inside(gb, W, H, X + u[p], Y + v[p], &b1))
                continue;
            r0[p] = fabsf(ga[p] - b0);
            r1[p] = fabsf(ga[p] - b1);
        }
    box_mean(r0, m0, W, H, R); /* window means in place, m0 as scratch */
    box_mean(r1, m0, W, H, R);
    if (flat > 0) { /* glocal_infer_options.lme_flat: g = the 7x7 mean |grad A|, 1 where below flat */
        float *g = scratch + 3 * hw;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int xm = x > 0 ? x - 1 : 0, xp = x < W - 1 ? x + 1 : W - 1;
                const int ym = y > 0 ? y - 1 : 0, yp = y < H - 1 ? y + 1 : H - 1;
                const float gx = xp > xm ? (ga[(size_t)y * W + xp] - ga[(size_t)y * W + xm]) / (float)(xp - xm) : 0;
                const float gy = yp > ym ? (ga[(size_t)yp * W + x] - ga[(size_t)ym * W + x]) / (float)(yp - ym) : 0;
                g[(size_t)y * W + x] = hypotf(gx, gy);
            }
        box_mean(g, m0, W, H, R);
        size_t nf = 0; /* m0: r0 of the flat windows that are not evidence (the still background) */
        for (size_t p = 0; p < hw; p++) {
            g[p] = g[p] < flat;
            if (g[p] > 0 && !ev[p]) m0[nf++] = r0[p];
        }
        if (nf > hw / 50 && glocal_kth_smallest(m0, nf, nf / 2) > flat_noise)
            for (size_t p = 0; p < hw; p++)
                if (g[p] > 0) ev[p] = 0;
    }
    memcpy(m0, r0, sizeof(float) * hw);
    const double noise_floor = support_k * glocal_kth_smallest(m0, hw, hw / 2);
    for (size_t p = 0; p < hw; p++) {
        if (!ev[p]) continue;
        const double a0 = r0[p], a1 = r1[p];
        if (a0 - a1 < support * a0 && a0 < noise_floor) ev[p] = 0;
    }
}

static int local_range(void *ctx, long begin, long end)
{
    local_job *j = ctx;
    const int W = j->width, H = j->height;
    const size_t hw = (size_t)W * H;
    double ss = j->mask_sigma * (W < H ? W : H);
    const int R = ss > 0 ? (int)ceil(2 * ss) < 16 ? (int)ceil(2 * ss) : 16 : 0;
    float *buf = gl_malloc(sizeof(float) * 3 * hw);
    float *sw = gl_malloc(sizeof(float) * (2 * R + 1 + 256 + hw));
    uint8_t *ev = gl_malloc(2 * hw);
    const int use_agree = (j->tvl1 || j->finished) && j->agree_k > 0;
    uint8_t *agree = use_agree ? gl_malloc(hw) : NULL;
    const int use_support = !j->tvl1 && j->finished && j->grey_b && j->support > 0;
    float *sup = use_support ? gl_malloc(sizeof(float) * 4 * hw) : NULL; /* the support test's scratch */
    flow_field f = { 0 }, g = { 0 };
    int rc = GL_ENOMEM;
    if (!buf || !sw || !ev || (use_agree && !agree) || (use_support && !sup)) goto fail;
    if ((rc = flow_field_new(&f, W, H)) < 0) goto fail;
    /* DIS (medium) needs a patch at half size: frames of 16 px and more */
    const int fuse = j->tvl1 && j->fuse && W >= 16 && H >= 16;
    if (fuse && (rc = flow_field_new(&g, W, H)) < 0) goto fail;
    tvl1_config tc;
    tvl1_config_default(&tc);
    for (long i = begin; i < end; i++) {
        float *lu = j->flow + i * 2 * hw, *lv = lu + hw, *mk = j->mask + i * hw;
        if (agree) { /* where the LME's flow moves, before TV-L1's or the finished one takes its place */
            const double t = motion_thresh(j, j->agree_k, lu, lv, buf);
            for (size_t p = 0; p < hw; p++) agree[p] = hypot(lu[p], lv[p]) > t;
        }
        if ((rc = flow_gray_from_rgb24(j->a[i], W, H, buf)) < 0) goto fail;
        if (j->tvl1) {
            if ((rc = flow_gray_from_rgb24(j->b[i], W, H, buf + hw)) < 0) goto fail;
            warp_gray(buf + hw, W, H, j->homography + 9 * i, buf + 2 * hw);
            if ((rc = tvl1_flow(buf, buf + 2 * hw, W, H, &tc, &f)) < 0) goto fail;
        } else {
            const float *src = j->finished ? j->finished + i * 2 * hw : lu;
            memcpy(f.u, src, sizeof(float) * hw);
            memcpy(f.v, src + hw, sizeof(float) * hw);
        }
        /* grey B (if any) is no longer needed */
        const double t = motion_thresh(j, j->thresh_k, f.u, f.v, buf + hw);
        /* foreground evidence: moving (with agree_k, in the LME's flow too;
         * or, with mask_lme, the LME's mask); none out of B's view
         * (glocal_infer_options.view_margin) */
        glocal_view_mask(j->homography + 9 * i, W, H, j->view_margin, ev);
        for (size_t p = 0; p < hw; p++)
            ev[p] = ev[p] && ((hypot(f.u[p], f.v[p]) > t && (!agree || agree[p])) ||
                              (j->have_mask && mk[p] >= 0.5f));
        if (use_support) /* grey A is in buf */
            glocal_lme_support_clear(buf, j->grey_b + i * hw, W, H, j->homography + 9 * i, f.u, f.v, j->support,
                                     j->support_k, j->flat, j->flat_noise, sup, ev);
        /* the evidence is TV-L1's motion, whose noise its threshold follows;
         * the flow the mask gates is the fused one (local_fuse) */
        if (fuse && ((rc = flow_method_dis(buf, buf + 2 * hw, W, H, NULL, &g)) < 0 ||
                     (rc = flow_fuse(buf, buf + 2 * hw, W, H, FLOW_FUSE_RADIUS, &f, &g)) < 0))
            goto fail;
        if (j->tvl1) aligned_to_frame_b(j->homography + 9 * i, W, H, &f);
        const uint8_t *fgm = ev;
        if (R > 0) {
            mask_bilateral(buf, W, H, R, ss, j->mask_range, ev, ev + hw, sw);
            fgm = ev + hw;
        }
        for (size_t p = 0; p < hw; p++) {
            int fg = !j->gate || fgm[p];
            lu[p] = fg ? f.u[p] : 0.0f;
            lv[p] = fg ? f.v[p] : 0.0f;
            mk[p] = fgm[p] ? 1.0f : 0.0f;
        }
    }
    rc = 0;
fail:
    flow_field_free(&f);
    flow_field_free(&g);
    gl_free(buf);
    gl_free(sw);
    gl_free(ev);
    gl_free(agree);
    gl_free(sup);
    return rc;
}

void glocal_view_mask(const double h[9], int width, int height, double view_margin, uint8_t *seen)
{
    const double m = view_margin * (width < height ? width : height);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            double xs, ys;
            seen[(size_t)y * width + x] =
                view_margin < 0 || (homography_apply(h, x, y, &xs, &ys) == 0 && xs >= m && xs <= width - 1 - m &&
                                    ys >= m && ys <= height - 1 - m);
        }
}

int glocal_infer_local_is_tvl1(const glocal_model *m, const glocal_infer_options *o)
{
    if (o->local_tvl1 >= 0) return o->local_tvl1 != 0;
    return !(o->lme && m && m->cfg.lme_arch == 2);
}

int glocal_result_alloc(glocal_result *r, int n, int width, int height)
{
    memset(r, 0, sizeof *r);
    if (n < 1 || width < 2 || height < 2)
        return gl_error(GL_EINVAL, "glocal_result_alloc: bad size n=%d %dx%d", n, width, height);
    const size_t hw = (size_t)width * height;
    r->n = n;
    r->width = width;
    r->height = height;
    r->homography = gl_calloc((size_t)n * 9, sizeof(double));
    r->global_flow = gl_calloc((size_t)n * 2 * hw, sizeof(float));
    r->local_flow = gl_calloc((size_t)n * 2 * hw, sizeof(float));
    r->mixed_flow = gl_calloc((size_t)n * 2 * hw, sizeof(float));
    r->mask = gl_calloc((size_t)n * hw, sizeof(float));
    if (!r->homography || !r->global_flow || !r->local_flow || !r->mixed_flow || !r->mask) {
        glocal_result_free(r);
        return GL_ENOMEM;
    }
    return 0;
}

void glocal_result_free(glocal_result *r)
{
    if (!r) return;
    gl_free(r->homography);
    gl_free(r->global_flow);
    gl_free(r->local_flow);
    gl_free(r->mixed_flow);
    gl_free(r->mask);
    gl_free(r->lme_local_flow);
    gl_free(r->lme_mask);
    memset(r, 0, sizeof *r);
}

int glocal_frames_to_tensor(nn_tensor **out, const uint8_t *const *frames, int n, int width,
                            int height, int size)
{
    int rc;
    *out = NULL;
    const size_t hw = (size_t)width * height;
    float *g = gl_malloc(sizeof(float) * n * hw);
    nn_tensor *t = NULL, *d = NULL, *r = NULL;
    if (!g) return GL_ENOMEM;
    for (int i = 0; i < n; i++) {
        TRY(flow_gray_from_rgb24(frames[i], width, height, g + i * hw));
        for (size_t p = 0; p < hw; p++) g[i * hw + p] *= 1.0f / 255.0f;
    }
    int64_t sh[4] = { n, 1, height, width };
    TRY(nn_from_data(&t, g, sh, 4, NN_F32));
    TRY(nn_to_device(&d, t, nn_default_device()));
    if (width == size && height == size) {
        r = d;
        d = NULL;
    } else {
        int down = width >= size && height >= size;
        TRY(nn_interpolate(&r, d, size, size, down ? NN_AREA : NN_BILINEAR, 0));
    }
    *out = r;
    rc = 0;
fail:
    nn_free(&t);
    nn_free(&d);
    gl_free(g);
    return rc;
}

/* (N, C, S, S) -> (N, C, H, W) bilinear, channel c of a flow scaled by W/S or H/S. */
static int to_input_size(const nn_tensor *t, int width, int height, int is_flow, float *dst)
{
    int rc;
    nn_scope *sc = NULL;
    TRY(nn_scope_begin(&sc));
    nn_tensor *u = (nn_tensor *)t;
    const int64_t S = nn_size(t, 3);
    if (width != S || height != S) TRY(nn_interpolate(&u, t, height, width, NN_BILINEAR, 0));
    if (is_flow) {
        nn_tensor *x, *y, *xy[2];
        TRY(nn_narrow(&x, u, 1, 0, 1));
        TRY(nn_narrow(&y, u, 1, 1, 1));
        TRY(nn_mul_scalar(&xy[0], x, (double)width / S));
        TRY(nn_mul_scalar(&xy[1], y, (double)height / S));
        TRY(nn_cat(&u, xy, 2, 1));
    }
    TRY(nn_copy_to(u, dst, sizeof(float) * nn_numel(u), NN_F32));
fail:
    nn_scope_end(&sc);
    return rc;
}

typedef struct {
    const float *ga, *gb;   /* grey input frames [n][H][W] */
    const float *weights;   /* [n][H][W] or NULL */
    int width, height;
    const glocal_refine_config *rc;
    int start_dis;          /* glocal_infer_options.start_dis */
    int start_search;       /* glocal_infer_options.start_search */
    double *h;              /* [n][9] */
} refine_job;

/* The DIS + RANSAC homography of grey frames a, b (eval-motion's dis-ransac)
 * and its background: weight 1 on RANSAC's inliers (the DIS flow within its
 * threshold of H's), 0 elsewhere (w*h floats). f, l: flow fields of w x h.
 * *share: the inliers' share of the frame. */
static int dis_homography(const float *a, const float *b, int w, int h, flow_field *f, flow_field *l,
                          double H[9], float *background, double *share)
{
    homography_ransac_config rc;
    homography_ransac_config_default(&rc);
    int r = flow_method_dis(a, b, w, h, NULL, f);
    if (r >= 0) r = flow_minus_homography(f, 2, &rc, 1, H, NULL, l);
    if (r < 0) return r;
    long in = 0;
    for (size_t p = 0; p < (size_t)w * h; p++) in += (background[p] = l->u[p] == 0 && l->v[p] == 0) != 0;
    *share = (double)in / ((double)w * h);
    return 0;
}

/* glocal_infer_options.start_dis 2: the first DIS fit explains under half
 * of the frame (the background is most of it). */
#define DIS_SECOND_BELOW 0.5
/* ... the second fit counts when it explains at least this share. */
#define DIS_SECOND_MIN 0.05

/* Sequential RANSAC: the homography of the DIS flow f without the first
 * fit's inliers (bg1 != 0), and its own inliers in bg2; 1 when it explains
 * at least DIS_SECOND_MIN of the frame, else 0. f2, l2: scratch fields. */
static int dis_second_homography(const flow_field *f, const float *bg1, flow_field *f2, flow_field *l2,
                                 double H[9], float *bg2)
{
    const size_t hw = (size_t)f->width * f->height;
    for (size_t p = 0; p < hw; p++) {
        f2->u[p] = bg1[p] != 0 ? NAN : f->u[p]; /* unknown: left out of the fit */
        f2->v[p] = bg1[p] != 0 ? NAN : f->v[p];
    }
    homography_ransac_config rc;
    homography_ransac_config_default(&rc);
    if (flow_minus_homography(f2, 2, &rc, 1, H, NULL, l2) < 0) {
        gl_clear_error(); /* too few vectors left: no second start */
        return 0;
    }
    long in = 0;
    for (size_t p = 0; p < hw; p++) in += (bg2[p] = l2->u[p] == 0 && l2->v[p] == 0) != 0; /* NaN != 0 */
    return in >= DIS_SECOND_MIN * (double)hw;
}

static int refine_range(void *ctx, long begin, long end)
{
    refine_job *j = ctx;
    const size_t hw = (size_t)j->width * j->height;
    /* DIS's flow, its part off the homography, and the second fit's */
    flow_field f = { 0 }, l = { 0 }, f2 = { 0 }, l2 = { 0 };
    float *bg = NULL;  /* [2][H][W]: each DIS start's inliers */
    int rc = 0;
    if (j->start_dis) {
        if ((rc = flow_field_new(&f, j->width, j->height)) >= 0 && (rc = flow_field_new(&l, j->width, j->height)) >= 0 &&
            (j->start_dis < 2 || ((rc = flow_field_new(&f2, j->width, j->height)) >= 0 &&
                                  (rc = flow_field_new(&l2, j->width, j->height)) >= 0)) &&
            !(bg = gl_malloc(sizeof(float) * 2 * hw)))
            rc = GL_ENOMEM;
    }
    for (long i = begin; i < end && rc >= 0; i++) {
        const float *a = j->ga + i * hw, *b = j->gb + i * hw, *w = j->weights ? j->weights + i * hw : NULL;
        double hd[18], share = 1;
        int nmore = 0;
        if (j->start_dis) {
            /* a pair DIS cannot fit (too few matches) keeps the network's start alone */
            nmore = dis_homography(a, b, j->width, j->height, &f, &l, hd, bg, &share) >= 0;
            gl_clear_error();
        }
        if (nmore && j->start_dis >= 2 && share < DIS_SECOND_BELOW)
            nmore += dis_second_homography(&f, bg, &f2, &l2, hd + 9, bg + hw);
        const int search = j->start_search ? GLOCAL_REFINE_SEARCH_MAX : 0;
        rc = glocal_refine_homography_starts(a, b, j->width, j->height, w, j->rc, j->h + 9 * i, hd, bg, nmore,
                                             search, nmore ? f.u : NULL, NULL, NULL);
        if (rc < 0) rc = gl_error_prefix(rc, "pair %ld", i);
    }
    flow_field_free(&f);
    flow_field_free(&l);
    flow_field_free(&f2);
    flow_field_free(&l2);
    gl_free(bg);
    return rc;
}

int glocal_homographies_to_flow(const double *h, int n, int W, int H, int S, nn_tensor **out)
{
    int rc = 0;
    const size_t ss = (size_t)S * S;
    float *f = gl_malloc(sizeof(float) * n * 2 * ss);
    nn_tensor *cpu = NULL;
    if (!f) return GL_ENOMEM;
    for (int i = 0; i < n && rc >= 0; i++) {
        double hs[9];
        glocal_homography_rescale(h + 9 * i, W, H, S, S, hs);
        rc = glocal_homography_to_flow(hs, S, S, f + (size_t)i * 2 * ss);
    }
    int64_t sh[4] = { n, 2, S, S };
    if (rc >= 0) rc = nn_from_data(&cpu, f, sh, 4, NN_F32);
    if (rc >= 0) rc = nn_to_device(out, cpu, nn_default_device());
    nn_free(&cpu);
    gl_free(f);
    return rc;
}

/* The flow `fine` found on B warped by `c` (both N x 2 x S x S), composed
 * with c: A(p) = Bc(p + f(p)) = B(p + f(p) + c(p + f(p))). */
static int compose_flow(const nn_tensor *fine, const nn_tensor *c, nn_tensor **out)
{
    int rc;
    nn_tensor *cw;
    TRY(glocal_warp(&cw, c, fine));
    TRY(nn_add(out, fine, cw));
fail:
    return rc;
}

/* c (N x 2 x h x w, pixels) resampled to s x s, its vectors scaled with it. */
static int flow_to_size(const nn_tensor *c, int64_t s, nn_tensor **out)
{
    int rc;
    nn_tensor *u;
    TRY(nn_interpolate(&u, c, s, s, NN_BILINEAR, 0));
    TRY(nn_mul_scalar(out, u, (double)s / nn_size(c, 3)));
fail:
    return rc;
}

/* LME on B aligned by the homographies h[n][9] (input pixels): its local
 * flow [n][2][H][W] and mask [n][H][W], rescaled to the input size. */
static int lme_into(glocal_model *m, const nn_tensor *ta, const nn_tensor *tb, const double *h,
                    int n, int width, int height, float *flow, float *mask)
{
    int rc;
    nn_tensor *al = NULL, *bw = NULL;
    glocal_lme_out lo = { 0 };
    TRY(glocal_homographies_to_flow(h, n, width, height, m->cfg.size, &al));
    TRY(glocal_warp(&bw, tb, al));
    TRY(glocal_lme_forward(m, ta, bw, 0, &lo));
    TRY(to_input_size(lo.local, width, height, 1, flow));
    TRY(to_input_size(lo.mask, width, height, 0, mask));
fail:
    nn_free(&lo.local);
    nn_free(&lo.mask);
    nn_free(&bw);
    nn_free(&al);
    return rc;
}

/* One level above the model size, s = 2^k S: the LME on A and B (from the
 * input frames, area-resized to s, B aligned by h and warped by the flow so
 * far, c) and its flow composed with c, into *out (N x 2 x s x s). In
 * sub-batches of about 2 x 256^2 pixels: at 256^2 a batch of 8 runs 2-4x
 * slower a pair than one of 2 (memory; one thread, AMD EPYC). */
static int lme_above(glocal_model *m, const uint8_t *const *a, const uint8_t *const *b, const double *h, int n,
                     int64_t s, int width, int height, const nn_tensor *c, nn_tensor **out)
{
    int rc = 0;
    const int step = s * s < (1 << 17) ? (int)((1 << 17) / (s * s)) : 1;
    const int nk = (n + step - 1) / step;
    nn_tensor **parts = gl_calloc(nk, sizeof *parts);
    if (!parts) return GL_ENOMEM;
    for (int j = 0, k = 0; j < n; j += step, k++) {
        const int len = n - j < step ? n - j : step;
        nn_tensor *as, *bs, *al, *cj, *cs;
        glocal_lme_out lo = { 0 };
        TRY(glocal_frames_to_tensor(&as, a + j, len, width, height, (int)s));
        TRY(glocal_frames_to_tensor(&bs, b + j, len, width, height, (int)s));
        TRY(glocal_homographies_to_flow(h + 9 * j, len, width, height, (int)s, &al));
        TRY(glocal_warp(&bs, bs, al));
        TRY(nn_narrow(&cj, c, 0, j, len));
        TRY(flow_to_size(cj, s, &cs));
        TRY(glocal_warp(&bs, bs, cs));
        TRY(glocal_lme_forward(m, as, bs, 0, &lo));
        TRY(compose_flow(lo.local, cs, &parts[k]));
    }
    TRY(nn_cat(out, parts, nk, 0));
fail:
    gl_free(parts);
    return rc;
}

/* glocal_infer_options.lme_coarse / lme_fine: the LME's flow on A and B
 * aligned by h[n][9] (input pixels), coarse to fine — at S / 2^levels first
 * (both frames area-averaged), then on each finer level with B warped by the
 * flow so far and the result composed with it (compose_flow), up to S, then
 * on `fine` levels above S (2S, 4S: the frames a, b area-resized from the
 * input, B aligned there). flow [n][2][H][W] holds the single pass at S on
 * the same alignment; it is replaced where the coarser levels' flow moves
 * by more than px model pixels. */
static int lme_pyramid(glocal_model *m, const uint8_t *const *a, const uint8_t *const *b, const nn_tensor *ta,
                       const nn_tensor *tb, const double *h, int n, int levels, int fine, double px, int width,
                       int height, float *flow)
{
    int rc;
    const int64_t S = m->cfg.size;
    const size_t hw = (size_t)width * height, plane = (size_t)n * 2 * hw;
    float *buf = gl_malloc(sizeof(float) * 2 * plane); /* the composed flow, the coarser levels' */
    nn_scope *sc = NULL;
    if (!buf) return GL_ENOMEM;
    TRY(nn_scope_begin(&sc));
    nn_tensor *al, *bw, *c = NULL, *cs = NULL;
    TRY(glocal_homographies_to_flow(h, n, width, height, S, &al));
    TRY(glocal_warp(&bw, tb, al));
    for (int lev = levels; lev >= 0; lev--) {
        const int64_t s = S >> lev;
        nn_tensor *as = (nn_tensor *)ta, *bs = bw;
        glocal_lme_out lo = { 0 };
        if (lev) {
            TRY(nn_interpolate(&as, ta, s, s, NN_AREA, 0));
            TRY(nn_interpolate(&bs, bw, s, s, NN_AREA, 0));
        }
        if (c) { /* B warped by the coarser levels' flow */
            TRY(flow_to_size(c, s, &cs));
            TRY(glocal_warp(&bs, bs, cs));
        }
        TRY(glocal_lme_forward(m, as, bs, 0, &lo));
        if (c) TRY(compose_flow(lo.local, cs, &c));
        else c = lo.local;
    }
    for (int k = 1; k <= fine; k++) /* above S, from the input frames */
        TRY(lme_above(m, a, b, h, n, S << k, width, height, c, &c));
    TRY(to_input_size(c, width, height, 1, buf));
    TRY(to_input_size(cs, width, height, 1, buf + plane)); /* cs: the coarser levels' flow at S */
    const double sx = (double)S / width, sy = (double)S / height;
    for (int i = 0; i < n; i++) {
        const float *cu = buf + i * 2 * hw, *cv = cu + hw, *ku = buf + plane + i * 2 * hw, *kv = ku + hw;
        float *u = flow + i * 2 * hw, *v = u + hw;
        for (size_t p = 0; p < hw; p++)
            if (hypot(ku[p] * sx, kv[p] * sy) > px) {
                u[p] = cu[p];
                v[p] = cv[p];
            }
    }
fail:
    nn_scope_end(&sc);
    gl_free(buf);
    return rc;
}

/* The LME's local flow l0 (u, v planes, W x H), found on B aligned by h0,
 * carried to the alignment h1. Its flow is in B's frame (the local loss
 * compares A(p) with B(p + g(p) + l(p)), g the flow of h0): p goes to
 * h0 p + l0(p) in B. That point stays where it is: l1(p) = h0 p + l0(p) -
 * h1 p, so global + local is the same mixed flow under either alignment
 * (exact). */
static void local_realign(float *u, float *v, int W, int H, const double h0[9], const double h1[9])
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const size_t p = (size_t)y * W + x;
            const double d0 = h0[6] * x + h0[7] * y + h0[8], d1 = h1[6] * x + h1[7] * y + h1[8];
            u[p] += (float)((h0[0] * x + h0[1] * y + h0[2]) / d0 - (h1[0] * x + h1[1] * y + h1[2]) / d1);
            v[p] += (float)((h0[3] * x + h0[4] * y + h0[5]) / d0 - (h1[3] * x + h1[4] * y + h1[5]) / d1);
        }
}

/* glocal_infer_options.lme_repass: the LME again, on the refined alignment,
 * for the pairs whose refinement moved a corner by more than px model
 * pixels from h0 (one sub-batch); their flow and mask replace the carried ones. */
static int lme_repass(glocal_model *m, const nn_tensor *ta, const nn_tensor *tb, const double *h0,
                      double px, glocal_result *r)
{
    int rc = 0, k = 0;
    const int n = r->n, W = r->width, H = r->height, S = m->cfg.size;
    const size_t hw = (size_t)W * H;
    int64_t *sel = gl_malloc(sizeof(int64_t) * n);
    double *h = gl_malloc(sizeof(double) * 9 * n);
    float *buf = NULL;
    nn_tensor *cpu = NULL, *idx = NULL, *sa = NULL, *sb = NULL;
    if (!sel || !h) { rc = GL_ENOMEM; goto fail; }
    for (int i = 0; i < n; i++) {
        double a[9], b[9]; /* in pixels of the model size */
        glocal_homography_rescale(h0 + 9 * i, W, H, S, S, a);
        glocal_homography_rescale(r->homography + 9 * i, W, H, S, S, b);
        if (glocal_corner_shift(a, b, S, S) > px) {
            memcpy(h + 9 * k, r->homography + 9 * i, sizeof(double) * 9);
            sel[k++] = i;
        }
    }
    if (k == 0) goto fail;
    if (!(buf = gl_malloc(sizeof(float) * 3 * hw * k))) { rc = GL_ENOMEM; goto fail; }
    int64_t sh[1] = { k };
    TRY(nn_from_data(&cpu, sel, sh, 1, NN_I64));
    TRY(nn_to_device(&idx, cpu, nn_default_device()));
    TRY(nn_index_select(&sa, ta, 0, idx));
    TRY(nn_index_select(&sb, tb, 0, idx));
    TRY(lme_into(m, sa, sb, h, k, W, H, buf, buf + 2 * hw * k));
    for (int j = 0; j < k; j++) {
        memcpy(r->local_flow + sel[j] * 2 * hw, buf + j * 2 * hw, sizeof(float) * 2 * hw);
        memcpy(r->mask + sel[j] * hw, buf + 2 * hw * k + j * hw, sizeof(float) * hw);
    }
fail:
    nn_free(&sa);
    nn_free(&sb);
    nn_free(&idx);
    nn_free(&cpu);
    gl_free(buf);
    gl_free(h);
    gl_free(sel);
    return rc;
}

/* glocal_infer_options.lme_finish: the LME's flow l (B's frame) finished
 * on the raw grey pair, pair by pair: the mixed flow g + l refined by DIS's
 * variational refinement (dis_refine_flow), `lins` linearisations per
 * level, l = refined - g. The LME saw the frames at the model size S: the
 * refinement starts at the level nearest that size (frames of 2S: at 1/2,
 * then at full size). */
typedef struct {
    const float *ga, *gb, *global; /* [n][H][W] grey A, B; [n][2][H][W] */
    float *local;                  /* [n][2][H][W], in place */
    int width, height, lins, levels;
} finish_job;

static int finish_range(void *ctx, long begin, long end)
{
    const finish_job *j = ctx;
    const size_t hw = (size_t)j->width * j->height;
    dis_config dc;
    int rc = dis_config_preset(&dc, "medium");
    flow_field f = { 0 };
    if (rc < 0 || (rc = flow_field_new(&f, j->width, j->height)) < 0) return rc;
    dc.opencv_rounding = 0; /* float warps: nothing to match OpenCV's bits against here */
    for (long i = begin; i < end && rc >= 0; i++) {
        const float *gu = j->global + i * 2 * hw, *gv = gu + hw;
        float *lu = j->local + i * 2 * hw, *lv = lu + hw;
        for (size_t p = 0; p < hw; p++) {
            f.u[p] = gu[p] + lu[p];
            f.v[p] = gv[p] + lv[p];
        }
        rc = dis_refine_flow(j->ga + i * hw, j->gb + i * hw, j->width, j->height, &dc, j->lins, j->levels, &f);
        for (size_t p = 0; rc >= 0 && p < hw; p++) {
            lu[p] = f.u[p] - gu[p];
            lv[p] = f.v[p] - gv[p];
        }
    }
    flow_field_free(&f);
    return rc < 0 ? rc : 0;
}

/* *out = a new copy of the LME's flow `local` ([n][2][H][W]), finished
 * (finish_range); the caller frees it. */
static int lme_finished(const float *ga, const float *gb, const float *global, const float *local, int n, int width,
                        int height, int lins, int levels, float **out)
{
    const size_t sz = sizeof(float) * (size_t)n * 2 * width * height;
    float *fin = gl_malloc(sz);
    if (!fin) return GL_ENOMEM;
    memcpy(fin, local, sz);
    finish_job fj = { ga, gb, global, fin, width, height, lins, levels };
    int rc = gl_parallel_for(n, 1, finish_range, &fj);
    if (rc < 0) {
        gl_free(fin);
        return rc;
    }
    *out = fin;
    return 0;
}

int glocal_infer(glocal_model *m, const uint8_t *const *a, const uint8_t *const *b, int n,
                 int width, int height, const glocal_infer_options *o, glocal_result *r)
{
    int rc;
    nn_scope *sc = NULL;
    float *ga = NULL, *gb = NULL, *wts = NULL, *gs = NULL, *fin = NULL;
    double *h0 = NULL, *hsn = NULL;
    const size_t hw = (size_t)width * height;
    if (!a || !b || n < 1 || width < 8 || height < 8 || !o || !r)
        return gl_error(GL_EINVAL, "glocal_infer: need n >= 1 pairs of frames >= 8x8 (got n=%d %dx%d)",
                        n, width, height);
    if (!m && (o->use_network || o->lme))
        return gl_error(GL_EINVAL, "glocal_infer: no model, but use_network or lme is set");
    if (o->refine && (rc = glocal_refine_config_validate(&o->rc)) < 0) return rc;
    if (o->use_network && (o->net_passes < 0 || o->net_passes > 4))
        return gl_error(GL_EINVAL, "glocal_infer: net_passes %d, expected 0 (the model's) .. 4", o->net_passes);
    const int net_passes = o->net_passes ? o->net_passes : m && m->cfg.arch == 2 ? 2 : 1;
    if (o->lme_passes != 1 && o->lme_passes != 2)
        return gl_error(GL_EINVAL, "glocal_infer: lme_passes %d, expected 1 or 2", o->lme_passes);
    if (!(o->lme_repass >= 0 && o->lme_repass < INFINITY))
        return gl_error(GL_EINVAL, "glocal_infer: lme_repass %g, expected a finite number >= 0", o->lme_repass);
    if (o->start_dis < 0 || o->start_dis > 2)
        return gl_error(GL_EINVAL, "glocal_infer: start_dis %d, expected 0, 1 or 2", o->start_dis);
    if (o->start_search < 0 || o->start_search > 1)
        return gl_error(GL_EINVAL, "glocal_infer: start_search %d, expected 0 or 1", o->start_search);
    if (o->lme_finish < 0 || o->lme_finish > 1000)
        return gl_error(GL_EINVAL, "glocal_infer: lme_finish %d, expected 0 (off) .. 1000 linearisations", o->lme_finish);
    /* the local flow: TV-L1 on the aligned pair (1), the LME's own flow
     * (0), or by the model (-1): the LME's where it learned one (arch 2) */
    const int lme2 = o->lme && m && m->cfg.lme_arch == 2;
    const int tvl1 = glocal_infer_local_is_tvl1(m, o);
    const int post = (tvl1 || lme2) && !o->homography_only;
    const int both = o->local_both != 0;
    /* the LME's own flow is an output (alone or beside the hybrid's) and
     * gets the variational finish */
    const int finish = lme2 && o->lme_finish > 0 && !o->homography_only && (!tvl1 || both);
    /* ... and is found coarse to fine (lme_coarse) */
    const int coarse = lme2 && o->lme_coarse > 0 && !o->homography_only && (!tvl1 || both);
    if (lme2 && (o->lme_coarse < 0 || o->lme_coarse > 3 || (m->cfg.size >> o->lme_coarse) < 16))
        return gl_error(GL_EINVAL, "glocal_infer: lme_coarse %d, expected 0..3 with the model size %d / 2^lme_coarse >= 16",
                        o->lme_coarse, m->cfg.size);
    if (lme2 && !(o->lme_coarse_px >= 0 && o->lme_coarse_px < INFINITY))
        return gl_error(GL_EINVAL, "glocal_infer: lme_coarse_px %g, expected a finite number >= 0", o->lme_coarse_px);
    const double zoom = m ? (width > height ? width : height) / (double)m->cfg.size : 1;
    if (post && !(o->lme_support >= 0 && o->lme_support < 1 && o->lme_support_k >= 0 && o->lme_support_k < INFINITY))
        return gl_error(GL_EINVAL, "glocal_infer: lme_support %g / lme_support_k %g, expected 0 <= lme_support < 1 "
                        "and a finite lme_support_k >= 0", o->lme_support, o->lme_support_k);
    if (post && !(o->lme_flat >= 0 && o->lme_flat < INFINITY && o->lme_flat_noise >= 0 && o->lme_flat_noise < INFINITY))
        return gl_error(GL_EINVAL, "glocal_infer: lme_flat %g / lme_flat_noise %g, expected finite numbers >= 0",
                        o->lme_flat, o->lme_flat_noise);
    if (lme2 && (o->lme_fine < 0 || o->lme_fine > 2))
        return gl_error(GL_EINVAL, "glocal_infer: lme_fine %d, expected 0..2", o->lme_fine);
    int fine = 0; /* levels above S: 2^fine S <= the longer side */
    while (fine < o->lme_fine && zoom >= (double)(2 << fine)) fine++;
    const int flevels = 1 + (zoom > 1 ? (int)lround(log2(zoom)) : 0);
    if (both && !(tvl1 && o->lme && !o->homography_only))
        return gl_error(GL_EINVAL, "glocal_infer: local_both needs the hybrid's TV-L1 local flow and the LME "
                        "(local_tvl1 %d, lme %d, homography_only %d)", o->local_tvl1, o->lme, o->homography_only);
    if (post && !(o->lme_thresh_k >= 0 && o->lme_thresh_k < INFINITY))
        return gl_error(GL_EINVAL, "glocal_infer: lme_thresh_k %g, expected a finite number >= 0", o->lme_thresh_k);
    const double lme_k = o->lme_thresh_k > 0 ? o->lme_thresh_k : o->local_thresh_k;
    if (post && !(o->lme_agree_k >= 0 && o->lme_agree_k < INFINITY))
        return gl_error(GL_EINVAL, "glocal_infer: lme_agree_k %g, expected a finite number >= 0", o->lme_agree_k);
    if (post && !(o->local_thresh >= 0 && o->local_thresh_k >= 0 && o->local_thresh_min >= 0 &&
                  o->local_thresh_min <= o->local_thresh))
        return gl_error(GL_EINVAL, "glocal_infer: need 0 <= local_thresh_min <= local_thresh and "
                        "local_thresh_k >= 0 (got %g, %g, %g)", o->local_thresh_min, o->local_thresh,
                        o->local_thresh_k);
    if (post && !(o->mask_sigma >= 0 && o->mask_sigma <= 1 && o->mask_range > 0))
        return gl_error(GL_EINVAL, "glocal_infer: need 0 <= mask_sigma <= 1 and mask_range > 0 (got %g, %g)",
                        o->mask_sigma, o->mask_range);
    if (post && !(o->view_margin < 0.5))
        return gl_error(GL_EINVAL, "glocal_infer: view_margin %g: expected < 0.5 (a fraction of the shorter side; "
                        "< 0 = evidence everywhere)", o->view_margin);
    if ((rc = glocal_result_alloc(r, n, width, height)) < 0) return rc;
    const int S = m ? m->cfg.size : 0;
    int prev_grad = nn_grad_mode_set(0);
    TRY(nn_scope_begin(&sc));
    nn_tensor *ta = NULL, *tb = NULL;
    if (m) {
        TRY(glocal_frames_to_tensor(&ta, a, n, width, height, S));
        TRY(glocal_frames_to_tensor(&tb, b, n, width, height, S));
    }
    for (int i = 0; i < n; i++) {
        double *h = r->homography + 9 * i;
        memset(h, 0, 9 * sizeof *h);
        h[0] = h[4] = h[8] = 1;
    }
    /* 1. Network estimate: the DLT fit of the GME flow, rescaled to the input. */
    if (o->use_network) {
        /* at the model size; pass k > 1 on B warped by the estimate so far */
        if (!(hsn = gl_malloc(sizeof(double) * 9 * n))) { rc = GL_ENOMEM; goto fail; }
        gs = gl_malloc(sizeof(float) * n * 2 * S * S);
        if (!gs) { rc = GL_ENOMEM; goto fail; }
        for (int pass = 0; pass < net_passes; pass++) {
            glocal_outputs out;
            const nn_tensor *tbp = tb;
            if (pass > 0) {
                nn_tensor *fl, *tbw;
                TRY(glocal_homographies_to_flow(hsn, n, S, S, S, &fl));
                TRY(glocal_warp(&tbw, tb, fl));
                tbp = tbw;
            }
            TRY(glocal_forward(m, ta, tbp, 0, NULL, 0, &out));
            rc = nn_copy_to(out.glob[out.nglob - 1], gs, sizeof(float) * n * 2 * S * S, NN_F32);
            glocal_outputs_free(&out);
            if (rc < 0) goto fail;
            for (int i = 0; i < n; i++) {
                double hs[9];
                TRY(glocal_flow_to_homography(gs + (size_t)i * 2 * S * S, S, S, 4, hs));
                if (pass == 0) memcpy(hsn + 9 * i, hs, sizeof hs);
                else gl_mat3_mul(hsn + 9 * i, hs, hsn + 9 * i); /* H_prev H_k (in place: gl_mat3_mul allows it) */
            }
        }
        for (int i = 0; i < n; i++) glocal_homography_rescale(hsn + 9 * i, S, S, width, height, r->homography + 9 * i);
    }
    /* The first LME pass, on the network's alignment (or the identity without
     * the network): its mask weights the refinement; with one pass
     * (lme_passes = 1) its flow is also the result, carried to the refined
     * alignment below; with two it is redone on the refined alignment. */
    const int one_pass = o->lme && o->use_network && o->lme_passes == 1;
    if (o->lme && (o->refine || (one_pass && !o->homography_only))) {
        if (one_pass) {
            if (!(h0 = gl_malloc(sizeof(double) * 9 * n))) { rc = GL_ENOMEM; goto fail; }
            memcpy(h0, r->homography, sizeof(double) * 9 * n);
        }
        TRY(lme_into(m, ta, tb, r->homography, n, width, height, r->local_flow, r->mask));
    }
    /* 2. Robust refinement at the input size, weighted by the background of
     * the first LME pass. */
    if (o->refine || finish) {
        ga = gl_malloc(sizeof(float) * n * hw);
        gb = gl_malloc(sizeof(float) * n * hw);
        if (!ga || !gb) { rc = GL_ENOMEM; goto fail; }
        for (int i = 0; i < n; i++) {
            TRY(flow_gray_from_rgb24(a[i], width, height, ga + i * hw));
            TRY(flow_gray_from_rgb24(b[i], width, height, gb + i * hw));
        }
    }
    if (o->refine) {
        if (o->lme) {
            if (!(wts = gl_malloc(sizeof(float) * n * hw))) { rc = GL_ENOMEM; goto fail; }
            for (size_t p = 0; p < n * hw; p++) wts[p] = 1.0f - r->mask[p];
        }
        refine_job job = { ga, gb, wts, width, height, &o->rc, o->start_dis, o->start_search, r->homography };
        TRY(gl_parallel_for(n, 1, refine_range, &job));
    }
    /* 3. Exact global flow of H; LME on the final alignment. */
    for (int i = 0; i < n; i++)
        TRY(glocal_homography_to_flow(r->homography + 9 * i, width, height,
                                      r->global_flow + (size_t)i * 2 * hw));
    if (o->homography_only) {
        memset(r->local_flow, 0, sizeof(float) * n * 2 * hw);
    } else if (one_pass) {
        for (int i = 0; i < n; i++) {
            float *u = r->local_flow + (size_t)i * 2 * hw;
            local_realign(u, u + hw, width, height, h0 + 9 * i, r->homography + 9 * i);
        }
        if (o->refine && o->lme_repass > 0) TRY(lme_repass(m, ta, tb, h0, o->lme_repass, r));
    } else if (o->lme) {
        TRY(lme_into(m, ta, tb, r->homography, n, width, height, r->local_flow, r->mask));
    }
    /* The coarse-to-fine flow, once, on the final alignment: where the
     * coarser levels move, it replaces the single pass — in the result's
     * local flow (the LME alone), or in the LME's own set beside the hybrid
     * (whose agreement rule reads the single pass) */
    if (coarse) {
        if (tvl1) {
            if (!(r->lme_local_flow = gl_malloc(sizeof(float) * n * 2 * hw))) { rc = GL_ENOMEM; goto fail; }
            memcpy(r->lme_local_flow, r->local_flow, sizeof(float) * n * 2 * hw);
        }
        TRY(lme_pyramid(m, a, b, ta, tb, r->homography, n, o->lme_coarse, fine, o->lme_coarse_px, width, height,
                        tvl1 ? r->lme_local_flow : r->local_flow));
    }
    /* The LME's own flow and mask, before the hybrid replaces them: what
     * local_tvl1 = 0 would post-process (its arch-1 flow is kept as it is). */
    if (both) {
        if (!r->lme_local_flow) { /* unless coarse to fine made it above */
            if (!(r->lme_local_flow = gl_malloc(sizeof(float) * n * 2 * hw))) { rc = GL_ENOMEM; goto fail; }
            memcpy(r->lme_local_flow, r->local_flow, sizeof(float) * n * 2 * hw);
        }
        if (!(r->lme_mask = gl_malloc(sizeof(float) * n * hw))) { rc = GL_ENOMEM; goto fail; }
        memcpy(r->lme_mask, r->mask, sizeof(float) * n * hw);
        if (finish)
            TRY(lme_finished(ga, gb, r->global_flow, r->lme_local_flow, n, width, height, o->lme_finish, flevels,
                             &fin));
        if (lme2) {
            local_job lj = { a, b, 0, 0, width, height, o->mask_lme != 0, o->local_gate != 0, o->local_thresh, lme_k,
                             o->local_thresh_min, o->mask_sigma, o->mask_range, o->view_margin,
                             fin ? o->lme_agree_k : 0, r->homography, r->lme_local_flow, r->lme_mask, fin,
                             o->lme_support, o->lme_support_k, o->lme_flat, o->lme_flat_noise, gb };
            TRY(gl_parallel_for(n, 1, local_range, &lj));
        }
    }
    if (finish && !tvl1)
        TRY(lme_finished(ga, gb, r->global_flow, r->local_flow, n, width, height, o->lme_finish, flevels, &fin));
    if (post) {
        /* the hybrid's evidence needs the LME's own flow to move too
         * (lme_agree_k), where the LME learned a flow */
        local_job lj = { a, b, tvl1, o->local_fuse != 0, width, height, o->lme && o->mask_lme, o->local_gate != 0, o->local_thresh,
                         tvl1 ? o->local_thresh_k : lme_k, o->local_thresh_min, o->mask_sigma, o->mask_range,
                         o->view_margin, (tvl1 && lme2) || (fin && !tvl1) ? o->lme_agree_k : 0, r->homography,
                         r->local_flow, r->mask, tvl1 ? NULL : fin, o->lme_support, o->lme_support_k, o->lme_flat,
                         o->lme_flat_noise, gb };
        TRY(gl_parallel_for(n, 1, local_range, &lj));
    }
    for (size_t p = 0; p < (size_t)n * 2 * hw; p++)
        r->mixed_flow[p] = r->global_flow[p] + r->local_flow[p];
    rc = 0;
fail:
    nn_scope_end(&sc);
    nn_grad_mode_set(prev_grad);
    gl_free(ga);
    gl_free(gb);
    gl_free(wts);
    gl_free(gs);
    gl_free(h0);
    gl_free(hsn);
    gl_free(fin);
    if (rc < 0) glocal_result_free(r);
    return rc;
}
