/* glocal_loss.c — GLOCAL's self-supervised losses and the training loss. */
#include <math.h>
#include <string.h>

#include "motion/glocal.h"
#include "motion/glocal_private.h"

int glocal_loss_charbonnier(nn_tensor **out, const nn_tensor *a, const nn_tensor *b,
                            const nn_tensor *weight, double eps)
{
    int rc;
    nn_scope *sc = NULL;
    nn_tensor *d, *d2, *c, *s, *den, *r;
    *out = NULL;
    TRY(nn_scope_begin(&sc));
    TRY(nn_sub(&d, a, b));
    TRY(nn_unary(&d2, NN_SQUARE, d));
    TRY(nn_add_scalar(&d2, d2, eps * eps));
    TRY(nn_unary(&c, NN_SQRT, d2));
    TRY(nn_add_scalar(&c, c, -eps));
    if (weight) {
        nn_tensor *cw, *we;
        int64_t shape[NN_MAX_DIMS];
        int nd = nn_shape(c, shape);
        TRY(nn_mul(&cw, c, weight));
        TRY(nn_sum(&s, cw, NULL, 0, 0));
        TRY(nn_expand(&we, weight, shape, nd));
        TRY(nn_sum(&den, we, NULL, 0, 0));
        TRY(nn_add_scalar(&den, den, 1e-6));
        TRY(nn_div(&r, s, den));
    } else {
        TRY(nn_mean(&r, c, NULL, 0, 0));
    }
    nn_scope_keep(sc, r);
    nn_scope_end(&sc);
    *out = r;
    return 0;
fail:
    nn_scope_end(&sc);
    return gl_error_prefix(rc, "glocal_loss_charbonnier");
}

/* Soft census descriptor of a 3x3 neighbourhood: 8 channels t / sqrt(0.81 + t^2),
 * t the neighbour minus the centre in grey levels 0..255 (UnFlow's constants). */
static int census(const nn_tensor *img, nn_tensor **out)
{
    int rc;
    const int64_t H = nn_size(img, 2), W = nn_size(img, 3);
    nn_tensor *pad, *ch[8];
    TRY(nn_pad2d(&pad, img, 1, 1, 1, 1, NN_PAD_REPLICATE, 0.0));
    for (int dy = -1, k = 0; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            if (!dx && !dy) continue;
            nn_tensor *r1, *r2, *t, *t2, *den;
            TRY(nn_narrow(&r1, pad, 2, 1 + dy, H));
            TRY(nn_narrow(&r2, r1, 3, 1 + dx, W));
            TRY(nn_sub(&t, r2, img));
            TRY(nn_mul_scalar(&t, t, 255.0));
            TRY(nn_unary(&t2, NN_SQUARE, t));
            TRY(nn_add_scalar(&t2, t2, 0.81));
            TRY(nn_unary(&den, NN_RSQRT, t2));
            TRY(nn_mul(&ch[k++], t, den));
        }
    TRY(nn_cat(out, ch, 8, 1));
fail:
    return rc;
}

int glocal_loss_census(nn_tensor **out, const nn_tensor *a, const nn_tensor *b,
                       const nn_tensor *weight)
{
    int rc;
    nn_scope *sc = NULL;
    nn_tensor *ca, *cb, *d, *d2, *den, *q, *dist, *r;
    int64_t d1[1] = { 1 };
    *out = NULL;
    if (nn_ndim(a) != 4 || nn_size(a, 1) != 1)
        return gl_error(GL_EINVAL, "glocal_loss_census: need grey images (N, 1, H, W)");
    TRY(nn_scope_begin(&sc));
    TRY(census(a, &ca));
    TRY(census(b, &cb));
    TRY(nn_sub(&d, ca, cb));
    TRY(nn_unary(&d2, NN_SQUARE, d));
    TRY(nn_add_scalar(&den, d2, 0.1));
    TRY(nn_div(&q, d2, den));
    TRY(nn_mean(&dist, q, d1, 1, 1));
    if (weight) {
        nn_tensor *dw, *s, *ws;
        TRY(nn_mul(&dw, dist, weight));
        TRY(nn_sum(&s, dw, NULL, 0, 0));
        TRY(nn_sum(&ws, weight, NULL, 0, 0));
        TRY(nn_add_scalar(&ws, ws, 1e-6));
        TRY(nn_div(&r, s, ws));
    } else {
        TRY(nn_mean(&r, dist, NULL, 0, 0));
    }
    nn_scope_keep(sc, r);
    nn_scope_end(&sc);
    *out = r;
    return 0;
fail:
    nn_scope_end(&sc);
    return gl_error_prefix(rc, "glocal_loss_census");
}

static int grad_pair(const nn_tensor *t, int dim, nn_tensor **d)
{
    int rc;
    nn_tensor *a, *b;
    int64_t n = nn_size(t, dim);
    TRY(nn_narrow(&a, t, dim, 1, n - 1));
    TRY(nn_narrow(&b, t, dim, 0, n - 1));
    TRY(nn_sub(d, a, b));
fail:
    return rc;
}

int glocal_loss_smooth(nn_tensor **out, const nn_tensor *flow, const nn_tensor *img, double alpha)
{
    int rc;
    nn_scope *sc = NULL;
    nn_tensor *r = NULL;
    *out = NULL;
    TRY(nn_scope_begin(&sc));
    for (int dim = 2; dim <= 3; dim++) {
        nn_tensor *df, *di, *af, *ai, *w, *p, *m;
        TRY(grad_pair(flow, dim, &df));
        TRY(grad_pair(img, dim, &di));
        TRY(nn_unary(&af, NN_ABS, df));
        TRY(nn_unary(&ai, NN_ABS, di));
        TRY(nn_mul_scalar(&ai, ai, -alpha));
        TRY(nn_unary(&w, NN_EXP, ai));
        TRY(nn_mul(&p, af, w));
        TRY(nn_mean(&m, p, NULL, 0, 0));
        if (r) TRY(nn_add(&r, r, m));
        else r = m;
    }
    nn_scope_keep(sc, r);
    nn_scope_end(&sc);
    *out = r;
    return 0;
fail:
    nn_scope_end(&sc);
    return gl_error_prefix(rc, "glocal_loss_smooth");
}

glocal_loss_config glocal_loss_config_default(void)
{
    glocal_loss_config c;
    c.w_global = 1.0;
    c.w_census = 0.0;
    c.w_local = 1.0;
    c.w_smooth = 0.05;
    c.w_sparse = 0.01;
    c.w_mask = 0.5;
    c.w_dense = 0.5;
    c.w_teacher = 0.0;
    c.w_lcensus = 1.0;
    c.charb_eps = 0.01;
    c.smooth_alpha = 10.0;
    c.tau0 = 0.02;
    c.tau_k = 2.0;
    c.mask_start = 400;
    c.lme_start = 200;
    c.train_gme = 1;
    c.occlusion = GLOCAL_OCC_NONE;
    return c;
}

int glocal_loss_config_validate(const glocal_loss_config *c)
{
    const double w[9] = { c->w_global, c->w_census, c->w_local, c->w_smooth, c->w_sparse, c->w_mask,
                          c->w_dense, c->w_teacher, c->w_lcensus };
    static const char *names[9] = { "w_global", "w_census", "w_local", "w_smooth", "w_sparse", "w_mask",
                                    "w_dense", "w_teacher", "w_lcensus" };
    for (int i = 0; i < 9; i++)
        if (!(w[i] >= 0 && w[i] < 1e6))
            return gl_error(GL_EINVAL, "glocal_loss_config.%s: %g not in [0, 1e6)", names[i], w[i]);
    if (!(c->charb_eps > 0)) return gl_error(GL_EINVAL, "glocal_loss_config.charb_eps: %g <= 0", c->charb_eps);
    if (!(c->smooth_alpha >= 0))
        return gl_error(GL_EINVAL, "glocal_loss_config.smooth_alpha: %g < 0", c->smooth_alpha);
    if (!(c->tau0 >= 0) || !(c->tau_k >= 0))
        return gl_error(GL_EINVAL, "glocal_loss_config.tau0/tau_k: must be >= 0");
    if (c->occlusion < GLOCAL_OCC_NONE || c->occlusion > GLOCAL_OCC_FB)
        return gl_error(GL_EINVAL, "glocal_loss_config.occlusion: %d is not NONE (0), BORDER (1) or FB (2)",
                        c->occlusion);
    if (c->mask_start < 0 || c->lme_start < 0)
        return gl_error(GL_EINVAL, "glocal_loss_config.mask_start/lme_start: must be >= 0");
    if (c->mask_start < c->lme_start)
        return gl_error(GL_EINVAL, "glocal_loss_config.mask_start: %ld is before lme_start %ld (the "
                        "mask comes from LME)", c->mask_start, c->lme_start);
    return 0;
}

static int scalar_of(const nn_tensor *t, double *v)
{
    return nn_item(t, v);
}

/* Multi-scale reconstruction: at scale s, A and B are box-downsampled and B is
 * warped by the flow averaged and divided by s, so a coarse level sees large
 * displacements as small ones (widening the basin, as coarse-to-fine does). */
static int multiscale_loss(const nn_tensor *a, const nn_tensor *b, const nn_tensor *flow,
                           const nn_tensor *weight, const glocal_loss_config *lc, nn_tensor **out)
{
    int rc;
    nn_tensor *sum = NULL;
    static const int scales[3] = { 4, 2, 1 };
    for (int i = 0; i < 3; i++) {
        int s = scales[i];
        nn_tensor *as = (nn_tensor *)a, *bs = (nn_tensor *)b, *fs = (nn_tensor *)flow,
                  *ws = (nn_tensor *)weight, *bw, *l;
        if (s > 1) {
            TRY(nn_avg_pool2d(&as, a, s, s, 0));
            TRY(nn_avg_pool2d(&bs, b, s, s, 0));
            TRY(nn_avg_pool2d(&fs, flow, s, s, 0));
            TRY(nn_mul_scalar(&fs, fs, 1.0 / s));
            if (weight) TRY(nn_avg_pool2d(&ws, weight, s, s, 0));
        }
        TRY(glocal_warp(&bw, bs, fs));
        TRY(glocal_loss_charbonnier(&l, as, bw, ws, lc->charb_eps));
        if (s == 1 && lc->w_census > 0) {
            nn_tensor *cl;
            TRY(glocal_loss_census(&cl, as, bw, ws));
            TRY(nn_axpy(&l, l, lc->w_census, cl));
        }
        if (sum) TRY(nn_add(&sum, sum, l));
        else sum = l;
    }
    *out = sum;
fail:
    return rc;
}

/* Distillation: each dense flow (N, 2, h, w) against the teacher box-averaged
 * to its grid, Charbonnier per pixel, weighted by the averaged confidence. */
static int teacher_loss(const glocal_outputs *o, const nn_tensor *teacher, const nn_tensor *tconf,
                        nn_tensor **out)
{
    int rc;
    nn_tensor *sum = NULL;
    const int64_t S = nn_size(teacher, 2);
    for (int k = 0; k < o->ndense; k++) {
        const int s = (int)(S / nn_size(o->dense[k], 2));
        nn_tensor *t = (nn_tensor *)teacher, *c = (nn_tensor *)tconf, *l;
        if (s > 1) {
            TRY(nn_avg_pool2d(&t, teacher, s, s, 0));
            TRY(nn_avg_pool2d(&c, tconf, s, s, 0));
        }
        TRY(glocal_loss_charbonnier(&l, o->dense[k], t, c, 0.1)); /* eps 0.1 px */
        if (sum) TRY(nn_add(&sum, sum, l));
        else sum = l;
    }
    *out = sum;
fail:
    return rc;
}

/* 1 where x (N, 1, H, W) lies in [lo, hi], else 0, as dt. */
static int in_range(const nn_tensor *x, double lo, double hi, nn_dtype dt, nn_tensor **out)
{
    int rc;
    nn_tensor *c, *eq;
    TRY(nn_clamp(&c, x, lo, hi));
    TRY(nn_compare(&eq, NN_EQ, c, x));
    TRY(nn_to_dtype(out, eq, dt));
fail:
    return rc;
}

/* |f|^2 over the two channels, (N, 1, H, W). */
static int norm2(const nn_tensor *f, nn_tensor **out)
{
    int rc;
    nn_tensor *sq;
    int64_t d1[1] = { 1 };
    TRY(nn_unary(&sq, NN_SQUARE, f));
    TRY(nn_sum(out, sq, d1, 1, 1));
fail:
    return rc;
}

int glocal_visible(const nn_tensor *fwd, const nn_tensor *bwd, nn_tensor **out)
{
    int rc;
    nn_scope *sc = NULL;
    *out = NULL;
    if (nn_ndim(fwd) != 4 || nn_size(fwd, 1) != 2 ||
        (bwd && (nn_ndim(bwd) != 4 || nn_size(bwd, 0) != nn_size(fwd, 0) || nn_size(bwd, 1) != 2 ||
                 nn_size(bwd, 2) != nn_size(fwd, 2) || nn_size(bwd, 3) != nn_size(fwd, 3))))
        return gl_error(GL_EINVAL, "glocal_visible: need flows (N, 2, H, W) of one size");
    const int64_t H = nn_size(fwd, 2), W = nn_size(fwd, 3);
    const nn_dtype dt = nn_get_dtype(fwd);
    const int prev = nn_grad_mode_set(0);
    TRY(nn_scope_begin(&sc));
    nn_tensor *xs, *ys, *u, *v, *x, *y, *ix, *iy, *vis;
    int64_t sx[4] = { 1, 1, 1, W }, sy[4] = { 1, 1, H, 1 };
    TRY(nn_arange(&xs, 0, (double)W, 1, dt));
    TRY(nn_arange(&ys, 0, (double)H, 1, dt));
    TRY(nn_view(&xs, xs, sx, 4));
    TRY(nn_view(&ys, ys, sy, 4));
    TRY(nn_narrow(&u, fwd, 1, 0, 1));
    TRY(nn_narrow(&v, fwd, 1, 1, 1));
    TRY(nn_add(&x, u, xs));
    TRY(nn_add(&y, v, ys));
    TRY(in_range(x, 0, (double)(W - 1), dt, &ix));
    TRY(in_range(y, 0, (double)(H - 1), dt, &iy));
    TRY(nn_mul(&vis, ix, iy));
    if (bwd) {
        nn_tensor *bw, *s, *d, *nf, *nb, *rhs, *ok;
        TRY(glocal_warp(&bw, bwd, fwd));
        TRY(nn_add(&s, fwd, bw));
        TRY(norm2(s, &d));
        TRY(norm2(fwd, &nf));
        TRY(norm2(bw, &nb));
        TRY(nn_add(&rhs, nf, nb));
        TRY(nn_mul_scalar(&rhs, rhs, 0.01));
        TRY(nn_add_scalar(&rhs, rhs, 0.5));
        TRY(nn_compare(&ok, NN_LE, d, rhs));
        TRY(nn_to_dtype(&ok, ok, dt));
        TRY(nn_mul(&vis, vis, ok));
    }
    nn_scope_keep(sc, vis);
    nn_scope_end(&sc);
    nn_grad_mode_set(prev);
    *out = vis;
    return 0;
fail:
    nn_scope_end(&sc);
    nn_grad_mode_set(prev);
    return gl_error_prefix(rc, "glocal_visible");
}

int glocal_flow_inverse(const nn_tensor *g, int iters, nn_tensor **out)
{
    int rc;
    nn_scope *sc = NULL;
    nn_tensor *gi;
    *out = NULL;
    TRY(nn_scope_begin(&sc));
    TRY(nn_mul_scalar(&gi, g, -1.0));
    for (int i = 0; i < iters; i++) {
        TRY(glocal_warp(&gi, g, gi));
        TRY(nn_mul_scalar(&gi, gi, -1.0));
    }
    nn_scope_keep(sc, gi);
    nn_scope_end(&sc);
    *out = gi;
    return 0;
fail:
    nn_scope_end(&sc);
    return gl_error_prefix(rc, "glocal_flow_inverse");
}

/* The pixels the local reconstruction compares (lc->occlusion): NULL for
 * NONE; else glocal_visible of the mixed flow gd + local, with FB against
 * the mixed flow of the reversed pair: B aligned to A by the inverse of gd,
 * the LME run on it without gradient. In the caller's scope. */
static int lme_visible(glocal_model *m, const glocal_outputs *o, const nn_tensor *a, const nn_tensor *b,
                       const nn_tensor *gd, const glocal_loss_config *lc, nn_tensor **out)
{
    int rc;
    nn_tensor *loc, *fwd, *bwd = NULL;
    *out = NULL;
    if (lc->occlusion == GLOCAL_OCC_NONE) return 0;
    TRY(nn_detach(&loc, o->local));
    TRY(nn_add(&fwd, gd, loc));
    if (lc->occlusion == GLOCAL_OCC_FB) {
        glocal_outputs ob;
        nn_tensor *gi;
        TRY(glocal_flow_inverse(gd, 3, &gi));
        const int prev = nn_grad_mode_set(0);
        rc = glocal_forward_ex(m, b, a, 1, gi, 1, 0, &ob);
        if (rc >= 0) rc = nn_add(&bwd, gi, ob.local);
        glocal_outputs_free(&ob);
        nn_grad_mode_set(prev);
        if (rc < 0) goto fail;
    }
    TRY(glocal_visible(fwd, bwd, out));
fail:
    return rc;
}

/* LME arch 2's flow terms, every level upsampled to S: the reconstruction
 * of A by B warped by the detached global flow plus the local flow
 * (Charbonnier + census, all pixels but those vis (may be NULL) marks
 * occluded: the flow learns everywhere, not through the mask), edge-aware smoothness of the finest flow, and with a teacher
 * its local part (teacher - global) where confident. Coarser levels count
 * half as much as the next finer one. */
static int lme2_loss(const glocal_outputs *o, const nn_tensor *a, const nn_tensor *b, const nn_tensor *gd,
                     const nn_tensor *vis, const nn_tensor *teacher, const nn_tensor *tconf,
                     const glocal_loss_config *lc, nn_tensor **photo, nn_tensor **tloss)
{
    int rc;
    const int64_t S = nn_size(a, 2);
    const int L = o->nlocal_levels + 1;
    nn_tensor *ph = NULL, *tl = NULL, *target = NULL;
    if (teacher) TRY(nn_sub(&target, teacher, gd));
    for (int k = 0; k < L; k++) {
        const nn_tensor *f = k < L - 1 ? o->local_levels[k] : o->local;
        const double wk = pow(0.5, L - 1 - k);
        nn_tensor *up = (nn_tensor *)f, *mixed, *bw, *l, *cl;
        if (nn_size(f, 2) != S) TRY(nn_interpolate(&up, f, S, S, NN_BILINEAR, 0));
        TRY(nn_add(&mixed, gd, up));
        TRY(glocal_warp(&bw, b, mixed));
        TRY(glocal_loss_charbonnier(&l, a, bw, vis, lc->charb_eps));
        TRY(nn_mul_scalar(&l, l, lc->w_local));
        if (lc->w_lcensus > 0) {
            TRY(glocal_loss_census(&cl, a, bw, vis));
            TRY(nn_axpy(&l, l, lc->w_lcensus, cl));
        }
        TRY(nn_mul_scalar(&l, l, wk));
        if (ph) TRY(nn_add(&ph, ph, l));
        else ph = l;
        if (target) {
            TRY(glocal_loss_charbonnier(&l, up, target, tconf, 0.1)); /* eps 0.1 px */
            TRY(nn_mul_scalar(&l, l, wk));
            if (tl) TRY(nn_add(&tl, tl, l));
            else tl = l;
        }
    }
    *photo = ph;
    *tloss = tl;
fail:
    return rc;
}

int glocal_loss(glocal_model *m, const nn_tensor *a, const nn_tensor *b, const nn_tensor *teacher,
                const nn_tensor *tconf, const glocal_loss_config *lc, long step, nn_tensor **loss,
                glocal_losses *parts)
{
    return glocal_loss_aligned(m, a, b, NULL, teacher, tconf, lc, step, loss, parts);
}

int glocal_loss_aligned(glocal_model *m, const nn_tensor *a, const nn_tensor *b, const nn_tensor *align,
                        const nn_tensor *teacher, const nn_tensor *tconf, const glocal_loss_config *lc,
                        long step, nn_tensor **loss, glocal_losses *parts)
{
    int rc;
    nn_scope *sc = NULL;
    glocal_outputs o = { 0 };
    glocal_losses P = { 0 };
    *loss = NULL;
    TRY(glocal_loss_config_validate(lc));
    if (align && lc->train_gme) {
        rc = gl_error(GL_EINVAL, "an alignment for the LME needs the GME frozen (train_gme = 0)");
        goto fail;
    }
    TRY(nn_scope_begin(&sc));
    const int with_lme = step >= lc->lme_start;
    TRY(glocal_forward_ex(m, a, b, with_lme, align, 1, lc->train_gme, &o));
    nn_tensor *weight = NULL, *total = NULL, *glob = NULL;
    double lteacher = 0;
    if (with_lme && step >= lc->mask_start) {
        nn_tensor *md;
        TRY(nn_detach(&md, o.mask));
        TRY(nn_binary_scalar(&weight, NN_SUB, md, 1.0, 1));
    }
    const int K = o.nglob;
    if (!lc->train_gme) {
        /* the GME is fixed: no global terms (they would have no gradient) */
        TRY(nn_scalar(&total, 0.0, nn_get_dtype(a)));
        goto lme;
    }
    for (int it = 0; it < K; it++) {
        nn_tensor *l;
        TRY(multiscale_loss(a, b, o.glob[it], weight, lc, &l));
        TRY(nn_mul_scalar(&l, l, pow(0.5, K - 1 - it)));
        if (glob) TRY(nn_add(&glob, glob, l));
        else glob = l;
    }
    TRY(nn_mul_scalar(&total, glob, lc->w_global));
    TRY(scalar_of(glob, &P.global));
    if (o.ndense > 0 && lc->w_dense > 0) {
        /* Arch 2's dense mixed flows (objects included), each upsampled to S:
         * plain unsupervised optical flow (census + Charbonnier), so the
         * heads predict real displacements for the projection to weigh. */
        nn_tensor *dsum = NULL;
        for (int k = 0; k < o.ndense; k++) {
            nn_tensor *up, *bw, *l, *cl;
            TRY(nn_interpolate(&up, o.dense[k], m->cfg.size, m->cfg.size, NN_BILINEAR, 0));
            TRY(glocal_warp(&bw, b, up));
            TRY(glocal_loss_charbonnier(&l, a, bw, NULL, lc->charb_eps));
            TRY(glocal_loss_census(&cl, a, bw, NULL));
            TRY(nn_add(&l, l, cl));
            if (dsum) TRY(nn_add(&dsum, dsum, l));
            else dsum = l;
        }
        TRY(nn_axpy(&total, total, lc->w_dense, dsum));
        TRY(scalar_of(dsum, &P.dense));
    }
    if (o.ndense > 0 && teacher && tconf && lc->w_teacher > 0) {
        nn_tensor *tl;
        TRY(teacher_loss(&o, teacher, tconf, &tl));
        TRY(nn_axpy(&total, total, lc->w_teacher, tl));
        TRY(scalar_of(tl, &P.teacher));
    }
lme:
    if (with_lme) {
        nn_tensor *gd, *vis, *mixed, *bwl, *bwg, *ll, *sm, *sp, *r, *rb, *med, *tau, *tgt, *mc, *lm, *l1m,
            *t1, *t2, *t3, *bce;
        TRY(nn_detach(&gd, align ? align : o.glob[K - 1]));
        TRY(lme_visible(m, &o, a, b, gd, lc, &vis));
        if (m->cfg.lme_arch == 2) {
            nn_tensor *lt = NULL;
            const int use_t = teacher && tconf && lc->w_teacher > 0;
            TRY(lme2_loss(&o, a, b, gd, vis, use_t ? teacher : NULL, tconf, lc, &ll, &lt));
            if (lt) {
                TRY(nn_axpy(&total, total, lc->w_teacher, lt));
                TRY(scalar_of(lt, &lteacher));
            }
        } else {
            TRY(nn_add(&mixed, gd, o.local));
            TRY(glocal_warp(&bwl, b, mixed));
            TRY(glocal_loss_charbonnier(&ll, a, bwl, vis, lc->charb_eps));
        }
        TRY(glocal_loss_smooth(&sm, o.local, a, lc->smooth_alpha));
        TRY(nn_mean(&sp, o.mask, NULL, 0, 0));
        /* Mask target (detached): residual after global alignment, blurred,
         * above tau = tau0 + tau_k * median (relative to the median residual:
         * the target does not collapse as the residuals shrink). */
        TRY(glocal_warp(&bwg, b, gd));
        TRY(nn_sub(&r, a, bwg));
        TRY(nn_unary(&r, NN_ABS, r));
        TRY(nn_avg_pool2d(&rb, r, 3, 1, 1));
        TRY(nn_median_all(&med, rb));
        TRY(nn_mul_scalar(&tau, med, lc->tau_k));
        TRY(nn_add_scalar(&tau, tau, lc->tau0));
        TRY(nn_compare(&tgt, NN_GT, rb, tau));
        TRY(nn_to_dtype(&tgt, tgt, nn_get_dtype(o.mask)));
        TRY(nn_clamp(&mc, o.mask, 1e-4, 1 - 1e-4));
        TRY(nn_unary(&lm, NN_LOG, mc));
        TRY(nn_binary_scalar(&l1m, NN_SUB, mc, 1.0, 1));
        TRY(nn_unary(&l1m, NN_LOG, l1m));
        TRY(nn_mul(&t1, tgt, lm));
        TRY(nn_binary_scalar(&t2, NN_SUB, tgt, 1.0, 1));
        TRY(nn_mul(&t2, t2, l1m));
        TRY(nn_add(&t3, t1, t2));
        TRY(nn_mean(&bce, t3, NULL, 0, 0));
        TRY(nn_mul_scalar(&bce, bce, -1.0));
        /* arch 2's reconstruction carries its weights already */
        TRY(nn_axpy(&total, total, m->cfg.lme_arch == 2 ? 1.0 : lc->w_local, ll));
        TRY(nn_axpy(&total, total, lc->w_smooth, sm));
        TRY(nn_axpy(&total, total, lc->w_sparse, sp));
        TRY(nn_axpy(&total, total, lc->w_mask, bce));
        TRY(scalar_of(ll, &P.local));
        TRY(scalar_of(sm, &P.smooth));
        TRY(scalar_of(sp, &P.sparse));
        TRY(scalar_of(bce, &P.mask));
        P.mask_mean = P.sparse;
        P.teacher += lteacher;
    }
    TRY(scalar_of(total, &P.total));
    nn_scope_keep(sc, total);
    glocal_outputs_free(&o); /* before the scope ends: they are recorded in it */
    nn_scope_end(&sc);
    *loss = total;
    if (parts) *parts = P;
    return 0;
fail:
    glocal_outputs_free(&o);
    nn_scope_end(&sc);
    return gl_error_prefix(rc, "glocal_loss");
}
