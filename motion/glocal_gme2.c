/* glocal_gme2.c — GLOCAL's GME, architecture 2 (glocal_config.arch = 2).
 *
 * A feature pyramid; at 1/8 and then 1/4 resolution a cost volume, read by a
 * soft argmax around its best match, plus a small head's correction gives a
 * dense (mixed) flow and per-pixel weights; the explicit bottleneck is the
 * robust weighted least-squares projection of that flow onto the 8
 * homography bases (BasesHomo's bases, Ye et al. 2021), so the weights learn
 * to leave out moving objects and flat regions. Gauss-Newton steps on the
 * images at 1/2 and full model resolution, weighted by the last level's
 * weights, finish the estimate. Every step is differentiable in the
 * features and weights; the layers are built in glocal_model_new(). */
#include <math.h>
#include <string.h>

#include "motion/flow.h"
#include "motion/glocal.h"
#include "motion/glocal_private.h"

/* Gauss-Newton steps at full model resolution after the one at 1/2. */
#define GME_GN_FULL 2
/* gn 2: Gauss-Newton steps at 1/2 and again at full model resolution. */
#define GME_GN2_STEPS 3

/* Arch 2's encoder: L2-normalised features at 1/4 (feat channels) and, when
 * f8 is not NULL, at 1/8 (GME8_FEAT channels). */
int glocal_encode_pyramid(glocal_model *m, const nn_tensor *img, int training, nn_tensor **f4,
                          nn_tensor **f8)
{
    int rc;
    nn_tensor *x1, *x2, *x2b, *x3, *x3b, *x4, *x4b;
    TRY(nn_conv_forward(&x1, &m->v_e1, img, training));
    TRY(nn_conv_forward(&x2, &m->v_e2, x1, training));
    TRY(nn_conv_forward(&x2b, &m->v_e2b, x2, training));
    TRY(nn_conv_forward(&x3, &m->v_e3, x2b, training));
    TRY(nn_conv_forward(&x3b, &m->v_e3b, x3, training));
    TRY(glocal_l2norm(x3b, f4));
    if (f8) {
        TRY(nn_conv_forward(&x4, &m->v_e4, x3b, training));
        TRY(nn_conv_forward(&x4b, &m->v_e4b, x4, training));
        TRY(glocal_l2norm(x4b, f8));
    }
fail:
    return rc;
}


/* ---- constants: made once per model (glocal_model_new), on the default device ---- */

/* The 8x8 identity (the damping of the 8x8 normal equations). */
static int make_eye(nn_tensor **eye)
{
    float id[GLOCAL_NBASES * GLOCAL_NBASES] = { 0 };
    for (int i = 0; i < GLOCAL_NBASES; i++) id[i * GLOCAL_NBASES + i] = 1;
    int64_t se[2] = { GLOCAL_NBASES, GLOCAL_NBASES };
    nn_tensor *cpu = NULL;
    int rc = nn_from_data(&cpu, id, se, 2, NN_F32);
    if (rc >= 0) rc = nn_to_device(eye, cpu, nn_default_device());
    nn_free(&cpu);
    return rc;
}

/* The soft argmax's displacements: channel k of a cost volume of radius R is
 * the match at (k % (2R+1) - R, k / (2R+1) - R), as (1, (2R+1)^2, 1, 1) each. */
static int make_offsets(int R, nn_tensor *off[2])
{
    const int n = (2 * R + 1) * (2 * R + 1);
    float *d = gl_malloc(sizeof(float) * 2 * n);
    if (!d) return GL_ENOMEM;
    for (int k = 0; k < n; k++) {
        d[k] = (float)(k % (2 * R + 1) - R);
        d[n + k] = (float)(k / (2 * R + 1) - R);
    }
    int64_t sh[4] = { 1, n, 1, 1 };
    int rc = 0;
    for (int i = 0; i < 2 && rc >= 0; i++) {
        nn_tensor *cpu = NULL;
        rc = nn_from_data(&cpu, d + i * n, sh, 4, NN_F32);
        if (rc >= 0) rc = nn_to_device(&off[i], cpu, nn_default_device());
        nn_free(&cpu);
    }
    gl_free(d);
    return rc;
}

int glocal_gme2_constants(glocal_model *m)
{
    int rc;
    TRY(make_eye(&m->eye8));
    TRY(make_offsets(GME8_RADIUS, m->sa_off8));
    TRY(make_offsets(m->cfg.radius, m->sa_off4));
fail:
    return rc;
}

/* The explicit bottleneck of arch 2: the coefficients c (N, 8) minimising
 * sum_p w_p |B_p c - f_p|^2 over the pixels p of a level, f (N, 2, h, w) in
 * pixels at S, w (N, 1, h, w) >= 0, bases_l (8, 2hw) the pooled bases:
 * c = (B W B^T + lambda I)^-1 B W f. lambda = 1e-4 * sum(w) keeps the 8x8
 * system regular when the weights vanish (then c -> 0, the identity). */
static int wls_coeffs(const nn_tensor *eye, const nn_tensor *bases_l, const nn_tensor *f, const nn_tensor *w,
                      nn_tensor **coef)
{
    int rc;
    const int64_t N = nn_size(f, 0), P2 = 2 * nn_size(f, 2) * nn_size(f, 3);
    nn_tensor *ww, *w2, *fv, *b3, *X, *bt, *M, *r, *ws, *lam, *li, *Ml, *c;
    nn_tensor *two[2] = { (nn_tensor *)w, (nn_tensor *)w };
    int64_t shw[3] = { N, 1, P2 }, shf[3] = { N, P2, 1 }, shl[3] = { N, 1, 1 }, sh8[2] = { N, GLOCAL_NBASES };
    int64_t dall[3] = { 1, 2, 3 };
    TRY(nn_cat(&ww, two, 2, 1));
    TRY(nn_reshape(&w2, ww, shw, 3));
    TRY(nn_reshape(&fv, f, shf, 3));
    TRY(nn_unsqueeze(&b3, bases_l, 0));          /* (1, 8, 2hw) */
    TRY(nn_mul(&X, b3, w2));                     /* (N, 8, 2hw) */
    TRY(nn_transpose(&bt, bases_l, 0, 1));       /* (2hw, 8) */
    TRY(nn_matmul(&M, X, bt));                   /* (N, 8, 8) */
    TRY(nn_matmul(&r, X, fv));                   /* (N, 8, 1) */
    TRY(nn_sum(&ws, w, dall, 3, 0));
    TRY(nn_reshape(&lam, ws, shl, 3));
    TRY(nn_mul_scalar(&lam, lam, 1e-4));
    TRY(nn_add_scalar(&lam, lam, 1e-6));
    TRY(nn_mul(&li, eye, lam));                  /* (N, 8, 8) */
    TRY(nn_add(&Ml, M, li));
    TRY(nn_linalg_solve(&c, Ml, r));             /* (N, 8, 1) */
    TRY(nn_reshape(coef, c, sh8, 2));
fail:
    return rc;
}

/* Sharpness of the soft argmax: the cost is a cosine in [-1, 1], so a peak
 * 0.1 above its neighbours gets e^2 times their probability. */
#define GME_SOFTARGMAX_BETA 20.0

/* The expected displacement under softmax(beta * cost) over the (2R+1)^2
 * channels of cost_volume(): (N, 2, h, w) in pixels of the level. This is
 * the matching itself, with no parameters: from the first step the head
 * only corrects it (sub-pixel, occlusions) and weighs it. */
static int soft_argmax_fused(const nn_tensor *cv, int R, nn_tensor **out);

/* Whether soft_argmax takes the one-pass path (no gradient, CPU), which needs
 * no offset tensors. */
static int soft_argmax_is_fused(const nn_tensor *cv)
{
    return !nn_requires_grad(cv) && nn_get_device(cv) == NN_CPU;
}

static int soft_argmax(const nn_tensor *cv, int R, nn_tensor *const off[2], nn_tensor **out)
{
    int rc;
    if (soft_argmax_is_fused(cv)) return soft_argmax_fused(cv, R, out);
    const int n = (2 * R + 1) * (2 * R + 1);
    nn_tensor *sc, *p, *px, *py, *fx, *fy;
    const int64_t N = nn_size(cv, 0), h = nn_size(cv, 2), w = nn_size(cv, 3);
    int64_t d1[1] = { 1 }, hw[4] = { N * h * w, 1, 2 * R + 1, 2 * R + 1 },
            back[4] = { N, h, w, n }, nhwc[4] = { 0, 2, 3, 1 }, nchw[4] = { 0, 3, 1, 2 };
    nn_tensor *mx, *pk, *pkf, *pp, *pc, *pv, *win, *wv, *wc, *wb, *pm, *ps;
    TRY(nn_mul_scalar(&sc, cv, GME_SOFTARGMAX_BETA));
    TRY(nn_softmax(&p, sc, 1));
    /* Restricted to the 3x3 displacements around the best match (the window
     * found without gradient), so a flat tail of poor matches does not pull
     * the estimate towards zero displacement. */
    TRY(nn_max_dim(&mx, NULL, cv, 1, 1));
    TRY(nn_compare(&pk, NN_GE, cv, mx));
    TRY(nn_to_dtype(&pkf, pk, NN_F32));
    TRY(nn_permute(&pp, pkf, nhwc, 4));
    TRY(nn_contiguous(&pc, pp));
    TRY(nn_view(&pv, pc, hw, 4));
    TRY(nn_max_pool2d(&win, pv, 3, 1, 1));
    TRY(nn_view(&wv, win, back, 4));
    TRY(nn_permute(&wc, wv, nchw, 4));
    TRY(nn_detach(&wb, wc));
    TRY(nn_mul(&pm, p, wb));
    TRY(nn_sum(&ps, pm, d1, 1, 1));
    TRY(nn_add_scalar(&ps, ps, 1e-12));
    TRY(nn_div(&p, pm, ps));
    TRY(nn_mul(&px, p, off[0]));
    TRY(nn_mul(&py, p, off[1]));
    TRY(nn_sum(&fx, px, d1, 1, 1));
    TRY(nn_sum(&fy, py, d1, 1, 1));
    nn_tensor *two[2] = { fx, fy };
    TRY(nn_cat(out, two, 2, 1));
fail:
    return rc;
}

/* soft_argmax without gradient on the CPU, in one pass over the volume
 * (channels last, so a pixel's costs are contiguous): the same estimate per
 * pixel, where the tensor ops above make fifteen passes over (N, (2R+1)^2,
 * h, w) and a max pool over N h w tiny grids. The softmax's normaliser
 * cancels in the renormalisation over the window (up to the 1e-12 there,
 * below float precision as the best match's term is 1), so only the window's
 * terms are exponentiated. Equal to the tensor ops to float rounding
 * (test_glocal_arch2); bench/README.md, "Worker threads", has the cost. */
static int soft_argmax_fused(const nn_tensor *cv, int R, nn_tensor **out)
{
    const int D = 2 * R + 1, n = D * D;
    if (nn_ndim(cv) != 4 || nn_size(cv, 1) != n) {
        char sh[96];
        return gl_error(GL_EINVAL, "soft_argmax: expected a cost volume (N, %d, h, w) for radius %d, got %s", n, R,
                        nn_shape_str(cv, sh, sizeof sh));
    }
    const int64_t N = nn_size(cv, 0), h = nn_size(cv, 2), w = nn_size(cv, 3), hw = h * w;
    const size_t nc = (size_t)N * hw * n;
    const int64_t nhwc[4] = { 0, 2, 3, 1 };
    float *c = gl_malloc(sizeof(float) * nc), *o = gl_malloc(sizeof(float) * 2 * N * hw);
    unsigned char *win = gl_malloc(n);
    nn_tensor *t = NULL;
    int rc = (c && o && win) ? 0 : GL_ENOMEM;
    if (rc >= 0) rc = nn_permute(&t, cv, nhwc, 4);
    if (rc >= 0) rc = nn_copy_to(t, c, sizeof(float) * nc, NN_F32);
    nn_free(&t);
    for (int64_t i = 0; rc >= 0 && i < N * hw; i++) {
        const float *ci = c + (size_t)i * n;
        float mx = ci[0];
        for (int k = 1; k < n; k++) mx = fmaxf(mx, ci[k]);
        memset(win, 0, n);
        for (int k = 0; k < n; k++) {
            if (!(ci[k] >= mx)) continue;
            const int ky = k / D, kx = k % D; /* a best match: its 3x3 window */
            for (int y = ky > 0 ? ky - 1 : 0; y <= ky + 1 && y < D; y++)
                for (int x = kx > 0 ? kx - 1 : 0; x <= kx + 1 && x < D; x++) win[y * D + x] = 1;
        }
        double s = 0, sx = 0, sy = 0;
        for (int k = 0; k < n; k++) {
            if (!win[k]) continue;
            const double e = expf((float)GME_SOFTARGMAX_BETA * (ci[k] - mx));
            s += e;
            sx += e * (k % D - R);
            sy += e * (k / D - R);
        }
        const int64_t b = i / hw, q = i % hw;
        o[(size_t)b * 2 * hw + q] = (float)(sx / s);
        o[(size_t)b * 2 * hw + hw + q] = (float)(sy / s);
    }
    if (rc >= 0) {
        int64_t sh[4] = { N, 2, h, w };
        rc = nn_from_data(out, o, sh, 4, NN_F32);
    }
    gl_free(c);
    gl_free(o);
    gl_free(win);
    return rc;
}

/* The same with offsets made for this call (the LME's matching, tests),
 * unless the one-pass path needs none. */
int glocal_soft_argmax(const nn_tensor *cv, int R, nn_tensor **out)
{
    if (soft_argmax_is_fused(cv)) return soft_argmax_fused(cv, R, out);
    nn_tensor *off[2] = { NULL, NULL };
    int rc = make_offsets(R, off);
    if (rc >= 0 && nn_get_device(cv) != nn_get_device(off[0])) {
        if ((rc = nn_to_device(&off[0], off[0], nn_get_device(cv))) >= 0)
            rc = nn_to_device(&off[1], off[1], nn_get_device(cv));
    }
    if (rc >= 0) rc = soft_argmax(cv, R, off, out);
    return rc;
}

/* wls_coeffs made robust: GME_IRLS reweightings of w by a Geman-McClure
 * function 1 / (1 + (d / s)^2)^2 of each pixel's distance d between f and the
 * fitted flow (detached), with s going from 2 * scale down to scale / 2 (px
 * at S), so moving objects and mismatches drop out as RANSAC would drop them,
 * but differentiably in f and w. */
#define GME_IRLS 5
static int irls_coeffs(const nn_tensor *eye, const nn_tensor *bases_l, const nn_tensor *f, const nn_tensor *w,
                       double scale, nn_tensor **coef)
{
    int rc;
    nn_tensor *c, *fit, *d, *dd, *sq, *ss, *rw, *wk;
    const int64_t N = nn_size(f, 0), h = nn_size(f, 2), wd = nn_size(f, 3);
    int64_t sh[4] = { N, 2, h, wd }, d1[1] = { 1 };
    TRY(wls_coeffs(eye, bases_l, f, w, &c));
    for (int it = 0; it < GME_IRLS; it++) {
        const double s = scale * 2.0 * pow(0.25, (double)it / (GME_IRLS - 1));
        TRY(nn_matmul(&fit, c, bases_l));
        TRY(nn_view(&fit, fit, sh, 4));
        TRY(nn_sub(&d, f, fit));
        TRY(nn_detach(&dd, d));
        TRY(nn_mul_scalar(&dd, dd, 1.0 / s));
        TRY(nn_unary(&sq, NN_SQUARE, dd));
        TRY(nn_sum(&ss, sq, d1, 1, 1));
        TRY(nn_add_scalar(&ss, ss, 1.0));
        TRY(nn_unary(&ss, NN_SQUARE, ss));
        TRY(nn_unary(&rw, NN_RECIPROCAL, ss));
        TRY(nn_mul(&wk, w, rw));
        TRY(wls_coeffs(eye, bases_l, f, wk, &c));
    }
    *coef = c;
fail:
    return rc;
}

/* The same with an identity made for this call (tests: no model at hand). */
int glocal_irls_coeffs(const nn_tensor *bases_l, const nn_tensor *f, const nn_tensor *w, double scale,
                       nn_tensor **coef)
{
    nn_tensor *eye = NULL;
    int rc = make_eye(&eye);
    if (rc >= 0 && nn_get_device(f) != nn_get_device(eye)) rc = nn_to_device(&eye, eye, nn_get_device(f));
    if (rc >= 0) rc = irls_coeffs(eye, bases_l, f, w, scale, coef);
    return rc;
}

/* A level's projection at inference: the robust fit above starts from the
 * weighted least-squares fit of every cell, so where mismatches (a smooth
 * background, a large textured patch) outweigh the camera's cells it can
 * settle in their basin. RANSAC (motion/homography.c) over the cells' flow
 * vectors finds the largest set that one homography explains within
 * S / GME_CONSENSUS_DIV px; the robust fit is then also run on the weights
 * times that set, and the fit that explains more cells within the same
 * distance is kept (the consensus fit on a tie). Counted without the learned
 * weights: weighting the count kept the plain fit on the pairs it had lost
 * (training photos, 128^2, +-16 px, seed 779: the network alone 3.44 ->
 * 3.29 px weighted, 2.45 unweighted). S / 32 (4 px at 128^2): seed 778,
 * the 1/8 level alone, 3.38 px without it, 2.35 / 2.26 / 2.32 / 2.88 at
 * 2 / 3 / 4 / 8 px; both levels 1.74 (1/4 at 2 px: 1.68, within noise).
 * Without gradient only: a choice between fits has none, and training
 * keeps the differentiable fit. */
#define GME_CONSENSUS_DIV 32

/* How many cells of flow ff (host, N x 2 x P; px at S) each pair's fit c
 * (N, 8) on bases_l explains within thr px: cnt (N). */
static int consensus_count(const nn_tensor *bases_l, const float *ff, int64_t N, int64_t P, const nn_tensor *c,
                           double thr, int *cnt)
{
    int rc;
    nn_tensor *fit;
    float *fc = gl_malloc(sizeof(float) * 2 * N * P);
    if (!fc) return GL_ENOMEM;
    TRY(nn_matmul(&fit, c, bases_l));            /* (N, 2P) */
    TRY(nn_copy_to(fit, fc, sizeof(float) * 2 * N * P, NN_F32));
    for (int64_t b = 0; b < N; b++) {
        const float *u = ff + b * 2 * P, *v = fc + b * 2 * P;
        cnt[b] = 0;
        for (int64_t q = 0; q < P; q++) {
            const double ex = u[q] - v[q], ey = u[P + q] - v[P + q];
            cnt[b] += ex * ex + ey * ey < thr * thr;
        }
    }
fail:
    gl_free(fc);
    return rc;
}

/* The weights w (N, 1, h, wd) with every cell outside the RANSAC consensus
 * of its pair's flow ff (host, N x 2 x h wd; px at S) zeroed, into *out; a
 * pair whose RANSAC finds no model keeps its weights. */
static int consensus_weights(const float *ff, const nn_tensor *w, int S, double thr, nn_tensor **out)
{
    int rc = 0;
    const int64_t N = nn_size(w, 0), h = nn_size(w, 2), wd = nn_size(w, 3), P = h * wd;
    const double k = (double)S / (double)wd;
    float *fw = gl_malloc(sizeof(float) * N * P);
    double *src = gl_malloc(sizeof(double) * 2 * P), *dst = gl_malloc(sizeof(double) * 2 * P);
    uint8_t *in = gl_malloc((size_t)P);
    if (!fw || !src || !dst || !in) {
        rc = GL_ENOMEM;
        goto fail;
    }
    TRY(nn_copy_to(w, fw, sizeof(float) * N * P, NN_F32));
    homography_ransac_config rc_cfg;
    homography_ransac_config_default(&rc_cfg);
    rc_cfg.threshold = thr;
    rc_cfg.refits = 1;
    /* 500 samples, not RANSAC's 2000: the forward 0.47x -> 0.67x of the plain
     * projection's speed (bench_glocal gme2_*), the network alone on the
     * training photos within noise (128^2 +-16, seeds 779 / 778: 2.45 / 1.98
     * px with 2000, 2.10 / 1.98 with 500; bench/README.md). */
    rc_cfg.iterations = 500;
    for (int64_t b = 0; b < N; b++) {
        for (int64_t q = 0; q < P; q++) { /* a cell's centre, px at S */
            const double x = ((double)(q % wd) + 0.5) * k - 0.5, y = ((double)(q / wd) + 0.5) * k - 0.5;
            src[2 * q] = x;
            src[2 * q + 1] = y;
            dst[2 * q] = x + ff[b * 2 * P + q];
            dst[2 * q + 1] = y + ff[b * 2 * P + P + q];
        }
        double hm[9];
        int ni = 0;
        if (homography_fit_ransac(src, dst, (int)P, &rc_cfg, hm, in, &ni) < 0 || ni < 8) continue;
        for (int64_t q = 0; q < P; q++)
            if (!in[q]) fw[b * P + q] = 0;
    }
    int64_t sh[4] = { N, 1, h, wd };
    TRY(nn_from_data(out, fw, sh, 4, NN_F32));
    if (nn_get_device(*out) != nn_get_device(w)) TRY(nn_to_device(out, *out, nn_get_device(w)));
fail:
    gl_free(fw);
    gl_free(src);
    gl_free(dst);
    gl_free(in);
    return rc;
}

int glocal_level_coeffs(const glocal_model *m, const nn_tensor *bases_l, const nn_tensor *f, const nn_tensor *w,
                        double scale, int training, nn_tensor **coef)
{
    int rc, *n0 = NULL;
    float *c0 = NULL, *ff = NULL;
    nn_tensor *wc, *cc;
    TRY(irls_coeffs(m->eye8, bases_l, f, w, scale, coef));
    if (training || nn_requires_grad(f) || nn_requires_grad(w)) return 0;
    const int64_t N = nn_size(f, 0), P = nn_size(f, 2) * nn_size(f, 3);
    const double thr = (double)m->cfg.size / GME_CONSENSUS_DIV;
    n0 = gl_malloc(sizeof(int) * 2 * N);
    c0 = gl_malloc(sizeof(float) * 2 * GLOCAL_NBASES * N);
    ff = gl_malloc(sizeof(float) * 2 * N * P);
    if (!n0 || !c0 || !ff) {
        rc = GL_ENOMEM;
        goto fail;
    }
    int *n1 = n0 + N;
    float *c1 = c0 + GLOCAL_NBASES * N;
    TRY(nn_copy_to(f, ff, sizeof(float) * 2 * N * P, NN_F32)); /* once, for the RANSAC and both counts */
    TRY(consensus_weights(ff, w, m->cfg.size, thr, &wc));
    TRY(irls_coeffs(m->eye8, bases_l, f, wc, scale, &cc));
    TRY(consensus_count(bases_l, ff, N, P, *coef, thr, n0));
    TRY(consensus_count(bases_l, ff, N, P, cc, thr, n1));
    TRY(nn_copy_to(*coef, c0, sizeof(float) * GLOCAL_NBASES * N, NN_F32));
    TRY(nn_copy_to(cc, c1, sizeof(float) * GLOCAL_NBASES * N, NN_F32));
    for (int64_t b = 0; b < N; b++) /* the consensus fit wins unless the plain one explains more cells */
        if (n1[b] >= n0[b]) memcpy(c0 + GLOCAL_NBASES * b, c1 + GLOCAL_NBASES * b, sizeof(float) * GLOCAL_NBASES);
    int64_t sh[2] = { N, GLOCAL_NBASES };
    TRY(nn_from_data(coef, c0, sh, 2, NN_F32));
    if (nn_get_device(*coef) != nn_get_device(cc)) TRY(nn_to_device(coef, *coef, nn_get_device(cc)));
fail:
    gl_free(n0);
    gl_free(c0);
    gl_free(ff);
    return rc;
}

/* One level's head: the soft argmax of the level's cost volume cv (radius R)
 * plus a conv stack's correction -> dense flow (pixels at S: level pixels
 * times `unit`), and weights in (0, 1). */
static int level_head(const nn_conv *ha, const nn_conv *hb, const nn_conv *hc, const nn_tensor *x,
                      const nn_tensor *cv, int R, nn_tensor *const off[2], double unit, int training,
                      nn_tensor **flow, nn_tensor **w)
{
    int rc;
    nn_tensor *h1, *h2, *h3, *fr, *wl, *sa, *fl;
    TRY(nn_conv_forward(&h1, ha, x, training));
    TRY(nn_conv_forward(&h2, hb, h1, training));
    TRY(nn_conv_forward(&h3, hc, h2, training));
    TRY(nn_narrow(&fr, h3, 1, 0, 2));
    TRY(soft_argmax(cv, R, off, &sa));
    TRY(nn_add(&fl, sa, fr));
    TRY(nn_mul_scalar(flow, fl, unit));
    TRY(nn_narrow(&wl, h3, 1, 2, 1));
    TRY(nn_unary(w, NN_SIGMOID, wl));
fail:
    return rc;
}

/* Gauss-Newton on the 8 basis coefficients at one scale: images a, b
 * (N, 1, h, w) at the level (k = S / h), bases_l (8, 2hw) in pixels at S,
 * g (N, 2, S, S) the detached estimate, w (N, 1, h, w) the learned
 * per-pixel weights or NULL (uniform). Linearises B(p + g + sum_j c_j
 * basis_j) about c = 0 and solves the weighted normal equations (J W J^T +
 * lambda I) c = J W (A - B(p + g)), with W also down-weighting large
 * residuals (Cauchy, detached): the inverse-compositional step of
 * Lucas-Kanade on the homography bases (Baker & Matthews 2004),
 * differentiable in w. *out gets the update's flow (N, 2, S, S).
 * The Cauchy scale is K times the pair's mean |residual|, not a fixed grey
 * level: with a fixed 0.1 the residuals of a moving patch on a photograph
 * kept most of their weight, and three steps started from the true
 * homography drifted 0.55, 0.92, 1.22 px (training photos, 128^2, +-8 px,
 * uniform w); a scale relative to the pair's own residual follows its
 * contrast and how far the estimate still is. The classical refinement
 * scales by the MAD instead (glocal_refine_config.cauchy_k, on host
 * arrays); here the scale must be per pair of a batch on the device, and
 * nn's median (nn_median_all) is over the whole tensor, so the per-pair mean
 * |residual| stands in for it.
 * gn 1: K 0.25 (0.5 and 1 worse; an arch-2 model trained 8 min, training
 * photos: the network alone 2.57 -> 1.70 px), weights from the residual at
 * the step's start. That start residual is mostly the displacement still to
 * find, so the pixels that carry it lose their weight and the step comes out
 * short: from 2 px off, each step removed only ~30 % of the error.
 * gn 2 re-weights GME_GN2_IRLS times from the residual the step leaves
 * (r - J^T c, linearised), so the background that moved regains its weight
 * and a moving patch keeps its low one (iteratively reweighted least
 * squares). K 0.15: gme-arch2-gn128's model on the training photos, 128^2,
 * 3 + 3 steps on blurred images, uniform weights, K 0.1 / 0.15 / 0.2 ->
 * 0.82 / 0.84 / 0.92 px at +-8 px and 3.65 / 3.71 / 3.78 at +-16 (with its
 * learned weights 0.91 / 1.00 / - and 0.25 1.17); 0.1 was measured after
 * the first gn-2 model had trained with 0.15, and the gain is within noise. */
#define GME_GN1_CAUCHY_K 0.25
#define GME_GN2_CAUCHY_K 0.15
#define GME_GN2_IRLS 3
int glocal_gn_step(glocal_model *m, const nn_tensor *al, const nn_tensor *bl, const nn_tensor *bases_l,
                   const nn_tensor *g, const nn_tensor *w, nn_tensor **out)
{
    int rc;
    const int64_t N = nn_size(al, 0), h = nn_size(al, 2), wd = nn_size(al, 3), P = h * wd;
    const double k = (double)m->cfg.size / (double)h;
    nn_tensor *gl, *gk, *bw, *pad, *xr, *xl, *yd, *yu, *gx, *gy, *r, *rs, *b3, *bx, *by, *gxv, *gyv, *jx, *jy,
        *J, *Jw, *Jt, *rv, *c = NULL, *c8;
    const nn_tensor *eye = m->eye8;
    if (!eye) return gl_error(GL_EINVAL, "glocal_gn_step: the model is not of arch 2");
    int64_t shp[3] = { N, 1, P }, shb[3] = { GLOCAL_NBASES, 2, P }, shr[3] = { N, P, 1 },
            shl[3] = { N, 1, 1 }, sh8[2] = { N, GLOCAL_NBASES }, dall[2] = { 1, 2 };
    if (k > 1) TRY(nn_avg_pool2d(&gl, g, (int)k, (int)k, 0));
    else gl = (nn_tensor *)g;
    TRY(nn_mul_scalar(&gk, gl, 1.0 / k));        /* pixels of the level */
    TRY(glocal_warp(&bw, bl, gk));
    /* central differences of the warped B, per pixel at S */
    TRY(nn_pad2d(&pad, bw, 1, 1, 1, 1, NN_PAD_REPLICATE, 0.0));
    TRY(nn_narrow(&xr, pad, 3, 2, wd));
    TRY(nn_narrow(&xr, xr, 2, 1, h));
    TRY(nn_narrow(&xl, pad, 3, 0, wd));
    TRY(nn_narrow(&xl, xl, 2, 1, h));
    TRY(nn_narrow(&yd, pad, 2, 2, h));
    TRY(nn_narrow(&yd, yd, 3, 1, wd));
    TRY(nn_narrow(&yu, pad, 2, 0, h));
    TRY(nn_narrow(&yu, yu, 3, 1, wd));
    TRY(nn_sub(&gx, xr, xl));
    TRY(nn_mul_scalar(&gx, gx, 0.5 / k));
    TRY(nn_sub(&gy, yd, yu));
    TRY(nn_mul_scalar(&gy, gy, 0.5 / k));
    TRY(nn_sub(&r, al, bw));
    TRY(nn_detach(&rs, r));
    TRY(nn_reshape(&rv, r, shr, 3));
    /* J (N, 8, P): d B(p + g + basis c) / d c = grad B . basis */
    TRY(nn_view(&b3, bases_l, shb, 3));
    TRY(nn_select(&bx, b3, 1, 0));               /* (8, P) */
    TRY(nn_select(&by, b3, 1, 1));
    TRY(nn_reshape(&gxv, gx, shp, 3));
    TRY(nn_reshape(&gyv, gy, shp, 3));
    TRY(nn_mul(&jx, gxv, bx));
    TRY(nn_mul(&jy, gyv, by));
    TRY(nn_add(&J, jx, jy));
    TRY(nn_transpose(&Jt, J, 1, 2));             /* (N, P, 8) */
    const int gn2 = m->cfg.gn == 2;
    for (int it = 0; it < (gn2 ? GME_GN2_IRLS : 1); it++) {
        /* weights: learned x Cauchy(r' / scale) (detached), scale = K mean
         * |r'|, r' the residual left by the last solve (linearised) */
        nn_tensor *rl = rs, *ra, *rm, *q, *cw, *rw, *ww, *M, *rhs, *dg, *e3, *tr, *lam, *li, *Ml;
        int64_t d3[3] = { 1, 2, 3 }, shq[4] = { N, 1, h, wd };
        if (it > 0) {
            nn_tensor *pr;
            TRY(nn_matmul(&pr, Jt, c));           /* (N, P, 1) */
            TRY(nn_detach(&pr, pr));
            TRY(nn_reshape(&pr, pr, shq, 4));
            TRY(nn_sub(&rl, rs, pr));
        }
        TRY(nn_unary(&ra, NN_ABS, rl));
        TRY(nn_mean(&rm, ra, d3, 3, 1));
        TRY(nn_mul_scalar(&rm, rm, gn2 ? GME_GN2_CAUCHY_K : GME_GN1_CAUCHY_K));
        TRY(nn_add_scalar(&rm, rm, 1e-4));
        TRY(nn_div(&q, rl, rm));
        TRY(nn_unary(&q, NN_SQUARE, q));
        TRY(nn_add_scalar(&q, q, 1.0));
        TRY(nn_unary(&cw, NN_RECIPROCAL, q));
        if (w) TRY(nn_mul(&rw, w, cw));
        else rw = cw;
        TRY(nn_reshape(&ww, rw, shp, 3));        /* (N, 1, P) */
        TRY(nn_mul(&Jw, J, ww));
        TRY(nn_matmul(&M, Jw, Jt));              /* (N, 8, 8) */
        TRY(nn_matmul(&rhs, Jw, rv));            /* (N, 8, 1) */
        /* Levenberg damping: 1e-3 of the mean diagonal, plus a floor */
        TRY(nn_mul(&e3, M, eye));
        TRY(nn_sum(&dg, e3, dall, 2, 0));
        TRY(nn_reshape(&tr, dg, shl, 3));
        TRY(nn_mul_scalar(&lam, tr, 1e-3 / GLOCAL_NBASES));
        TRY(nn_add_scalar(&lam, lam, 1e-6));
        TRY(nn_mul(&li, eye, lam));
        TRY(nn_add(&Ml, M, li));
        TRY(nn_linalg_solve(&c, Ml, rhs));
    }
    TRY(nn_reshape(&c8, c, sh8, 2));
    TRY(glocal_coeffs_to_flow(m, c8, out));
fail:
    return rc;
}

/* A 3x3 box blur of x (N, C, h, w), the border replicated. */
static int box3(const nn_tensor *x, nn_tensor **out)
{
    int rc;
    nn_tensor *pad;
    TRY(nn_pad2d(&pad, x, 1, 1, 1, 1, NN_PAD_REPLICATE, 0.0));
    TRY(nn_avg_pool2d(out, pad, 3, 1, 0));
fail:
    return rc;
}

/* GME arch 2 (glocal_config.arch): coarse estimate at 1/8, then `iters`
 * residual estimates at 1/4 on B's features warped by the (detached)
 * estimate. Fills out->glob / dense (recorded in the caller's scope). */
int glocal_gme2_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *b, int training,
                        glocal_outputs *out)
{
    int rc;
    const int64_t N = nn_size(a, 0), S = m->cfg.size;
    nn_tensor *f4a, *f8a, *f4b, *f8b, *xy8, *xy4, *cv8, *x8, *d8, *w8, *c8, *g, *wlast;
    TRY(glocal_encode_pyramid(m, a, training, &f4a, &f8a));
    TRY(glocal_encode_pyramid(m, b, training, &f4b, &f8b));
    TRY(glocal_coords(N, S / 8, S / 8, &xy8));
    TRY(glocal_coords(N, S / 4, S / 4, &xy4));
    TRY(glocal_cost_volume(f8a, f8b, GME8_RADIUS, &cv8));
    nn_tensor *in8[3] = { cv8, f8a, xy8 };
    TRY(nn_cat(&x8, in8, 3, 1));
    TRY(level_head(&m->v_h8a, &m->v_h8b, &m->v_h8c, x8, cv8, GME8_RADIUS, m->sa_off8, 8.0, training, &d8, &w8));
    TRY(glocal_level_coeffs(m, m->bases8, d8, w8, 8.0, training, &c8));
    TRY(glocal_coeffs_to_flow(m, c8, &g));
    out->glob[0] = g;
    out->dense[0] = d8;
    wlast = w8;
    for (int it = 0; it < m->cfg.iters; it++) {
        nn_tensor *gd, *g4, *g4l, *fbw, *cv4, *x4, *gin, *d4, *w4, *c4, *dg, *dense;
        TRY(nn_detach(&gd, g));
        TRY(nn_avg_pool2d(&g4, gd, 4, 4, 0));        /* pixels at S, on the 1/4 grid */
        TRY(nn_mul_scalar(&g4l, g4, 0.25));          /* pixels of the 1/4 grid */
        TRY(glocal_warp(&fbw, f4b, g4l));
        TRY(glocal_cost_volume(f4a, fbw, m->cfg.radius, &cv4));
        TRY(nn_mul_scalar(&gin, g4, 1.0 / (double)S * 8.0));
        nn_tensor *in4[4] = { cv4, f4a, xy4, gin };
        TRY(nn_cat(&x4, in4, 4, 1));
        TRY(level_head(&m->v_h4a, &m->v_h4b, &m->v_h4c, x4, cv4, m->cfg.radius, m->sa_off4, 4.0, training, &d4,
                       &w4));
        TRY(glocal_level_coeffs(m, m->bases4, d4, w4, 4.0, training, &c4));
        TRY(glocal_coeffs_to_flow(m, c4, &dg));
        TRY(nn_add(&g, g, dg));
        TRY(nn_add(&dense, g4, d4));
        out->glob[it + 1] = g;
        out->dense[it + 1] = dense;
        wlast = w4;
    }
    out->ndense = m->cfg.iters + 1;
    out->nglob = m->cfg.iters + 1;
    /* Gauss-Newton on the images (glocal_config.gn): gn 1 one step at 1/2
     * and GME_GN_FULL at S, weighted by the last level's weights; gn 2
     * GME_GN2_STEPS at 1/2 and at S on images blurred by a 3x3 box (a wider
     * basin for the linearisation: 1.14 -> 1.00 px on the training photos,
     * 128^2 +-8 px, learned weights), uniformly weighted: the learned
     * weights, trained for the dense flow's projection, made the steps worse
     * (0.85 -> 1.00 px; 128^2 +-16 px 3.72 -> 3.90, 256^2 1.73 -> 2.00). gn 2
     * records a stage per level in out->glob, gn 1 one per step. */
    {
        const int gn2 = m->cfg.gn == 2;
        for (int lv = 0; lv < 2; lv++) {
            const int k = lv == 0 ? 2 : 1, steps = gn2 ? GME_GN2_STEPS : lv == 0 ? 1 : GME_GN_FULL;
            nn_tensor *al = (nn_tensor *)a, *bl = (nn_tensor *)b, *wl = NULL;
            if (k > 1) {
                TRY(nn_avg_pool2d(&al, a, k, k, 0));
                TRY(nn_avg_pool2d(&bl, b, k, k, 0));
            }
            if (gn2) {
                TRY(box3(al, &al));
                TRY(box3(bl, &bl));
            } else TRY(nn_interpolate(&wl, wlast, S / k, S / k, NN_BILINEAR, 0));
            for (int it = 0; it < steps; it++) {
                nn_tensor *gd, *dg;
                TRY(nn_detach(&gd, g));
                TRY(glocal_gn_step(m, al, bl, k > 1 ? m->bases2 : m->bases, gd, wl, &dg));
                TRY(nn_add(&g, g, dg));
                if (!gn2) out->glob[out->nglob++] = g;
            }
            if (gn2) out->glob[out->nglob++] = g; /* a stage per level */
        }
    }
fail:
    return rc;
}

