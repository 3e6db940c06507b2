/* glocal_private.h — the GLOCAL model's layers, shared by glocal_*.c only. */
#ifndef GLOCAL_MOTION_GLOCAL_PRIVATE_H
#define GLOCAL_MOTION_GLOCAL_PRIVATE_H

#include "motion/glocal.h"

/* For functions with an `int rc` and one `fail:` label: runs call, keeps its
 * code in rc, and goes to fail when it is negative. */
#define TRY(call)                         \
    do {                                  \
        if ((rc = (call)) < 0) goto fail; \
    } while (0)

struct glocal_model {
    glocal_config cfg;
    nn_params p;
    nn_tensor *bases;          /* (8, 2*S*S), on the default device */
    /* GME */
    nn_conv enc1, enc2, enc3;  /* 1 -> 16 -> 32 (s2) -> feat (s2) */
    nn_conv head1, head2;      /* cost + coords + features -> 64 (s2) -> 64 (s2) */
    nn_conv implicit;          /* 1x1, 64 -> 16: the implicit bottleneck */
    nn_dense explicit_;        /* 16 (S/16)^2 -> 8 coefficients */
    /* GME, arch 2: encoder pyramid, then a head per level */
    nn_conv v_e1, v_e2, v_e2b, v_e3, v_e3b, v_e4, v_e4b;
    nn_conv v_h8a, v_h8b, v_h8c;   /* 1/8: cost + features + coords -> dense flow + weight */
    nn_conv v_h4a, v_h4b, v_h4c;   /* 1/4: the same on B's features warped by the estimate */
    nn_tensor *bases8, *bases4, *bases2; /* (8, 2 (S/k)^2), k = 8, 4, 2: the bases box-averaged */
    nn_tensor *eye8;               /* (8, 8) identity; arch 2's constants: glocal_gme2_constants */
    nn_tensor *sa_off8[2], *sa_off4[2]; /* soft argmax's x, y displacements at 1/8 and 1/4 */
    /* LME: attention U-Net */
    nn_conv l_e1, l_e1b, l_e2, l_e2b, l_e3, l_e3b;
    nn_conv l_cost;            /* cost volume of A and aligned B (GME encoder) + e3 -> 4C */
    nn_conv g2x, g2g, g2psi, l_d2;
    nn_conv g1x, g1g, g1psi, l_d1;
    nn_conv l_out;             /* -> 2 flow + 1 attention logit */
    /* LME arch 2: encoder at 1, 1/2, 1/4, 1/8; decoder with attention gates
     * on the skips; a flow head per level (residual to the upsampled
     * coarser flow) and a mask head at full size */
    nn_conv m_e1, m_e1b, m_e2, m_e2b, m_e3, m_e3b, m_e4, m_e4b;
    nn_conv m_s1, m_s2, m_s2b;  /* matching features of A and of aligned B alike, at 1/2 */
    nn_conv m_f8;
    nn_conv m_g3x, m_g3g, m_g3psi, m_d3, m_f4;
    nn_conv m_g2x, m_g2g, m_g2psi, m_d2, m_f2;
    nn_conv m_g1x, m_g1g, m_g1psi, m_d1, m_d1b, m_f1, m_mask;
};

/* LME arch 2's matching at 1/2 resolution: displacements -R..R there,
 * +-2R px at S. */
#define LME2_RADIUS 3

/* What the LME computes on A and B aligned by the global motion. */
typedef struct {
    nn_tensor *local;            /* (N, 2, S, S), pixels at S (arch 1: already times the attention) */
    nn_tensor *mask;             /* (N, 1, S, S) in [0, 1] */
    nn_tensor *levels[3];        /* arch 2: the coarser levels' flows (1/8, 1/4, 1/2) */
    int nlevels;
} glocal_lme_out;

/* LME on A and B already aligned by the global motion (either arch). In the
 * caller's nn scope. */
int glocal_lme_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *bw, int training,
                       glocal_lme_out *out);

/* glocal_forward with the GME's gradients recorded (gme_grad 1) or not.
 * With an alignment given and no GME gradient the GME does not run at all
 * (nglob = 0): nothing would use its estimate. */
int glocal_forward_ex(glocal_model *m, const nn_tensor *a, const nn_tensor *b, int with_lme,
                      const nn_tensor *align, int training, int gme_grad, glocal_outputs *out);

/* Arch 2's cost volume at 1/8: radius and feature channels. */
#define GME8_RADIUS 4
#define GME8_FEAT 64

/* Shared by both architectures (glocal_model.c): the correlation volume of
 * fa and fb (N, (2R+1)^2, h, w), features divided by their norm over
 * channels, normalised coordinates (N, 2, h, w), the global flow (N, 2, S, S)
 * of coefficients (N, 8). */
int glocal_cost_volume(const nn_tensor *fa, const nn_tensor *fb, int R, nn_tensor **out);
int glocal_l2norm(const nn_tensor *x, nn_tensor **out);
int glocal_coords(int64_t n, int64_t h, int64_t w, nn_tensor **out);
int glocal_coeffs_to_flow(glocal_model *m, const nn_tensor *coef, nn_tensor **out);

/* Arch 2 (glocal_gme2.c): the encoder's L2-normalised features at 1/4 and
 * (f8 not NULL) 1/8; the GME forward pass, filling out->glob and dense. */
int glocal_encode_pyramid(glocal_model *m, const nn_tensor *img, int training, nn_tensor **f4,
                          nn_tensor **f8);
int glocal_gme2_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *b, int training,
                        glocal_outputs *out);
/* Makes m->eye8, sa_off8 and sa_off4 (glocal_model_new, arch 2). */
int glocal_gme2_constants(glocal_model *m);

/* Arch 2's parts, exposed for tests (glocal_model.c has the details):
 * the expected displacement (N, 2, h, w), in level pixels, under the softmax
 * of a cost volume of radius R around its best match; the robust weighted
 * least-squares coefficients (N, 8) of a flow f (N, 2, h, w) on the pooled
 * bases (8, 2hw) with weights w (N, 1, h, w), outliers scaled by `scale` px;
 * one Gauss-Newton update (N, 2, S, S) of the estimate g on images a, b at a
 * level of bases_l with weights w. All in the caller's nn scope. */
int glocal_soft_argmax(const nn_tensor *cv, int R, nn_tensor **out);
int glocal_irls_coeffs(const nn_tensor *bases_l, const nn_tensor *f, const nn_tensor *w, double scale,
                       nn_tensor **coef);
int glocal_gn_step(glocal_model *m, const nn_tensor *a, const nn_tensor *b, const nn_tensor *bases_l,
                   const nn_tensor *g, const nn_tensor *w, nn_tensor **out);
/* A level's coefficients (N, 8) as the GME computes them: the robust fit
 * (glocal_irls_coeffs' scale), and unless training or with gradient, the
 * better of it and the same fit on the cells of the flow's RANSAC consensus
 * (glocal_gme2.c, GME_CONSENSUS_DIV). */
int glocal_level_coeffs(const glocal_model *m, const nn_tensor *bases_l, const nn_tensor *f, const nn_tensor *w,
                        double scale, int training, nn_tensor **coef);

/* Where A can be compared with B warped by fwd (N, 2, S, S): 1 where p +
 * fwd(p) is inside the frame and, bwd (B -> A, N, 2, S, S) given, the
 * forward-backward test holds, |fwd + bwd'|^2 <= 0.01 (|fwd|^2 + |bwd'|^2) +
 * 0.5 with bwd' = bwd sampled at p + fwd(p) (UnFlow's test and constants);
 * 0 elsewhere. (N, 1, S, S), no gradient, in the caller's nn scope. */
int glocal_visible(const nn_tensor *fwd, const nn_tensor *bwd, nn_tensor **out);

/* The inverse of a global flow g (A -> B, N, 2, S, S): the flow B -> A,
 * by the fixed point gi(q) = -g(q + gi(q)) (exact for a translation; for a
 * homography's smooth flow each iteration gains one order of |grad g|). */
int glocal_flow_inverse(const nn_tensor *g, int iters, nn_tensor **out);

/* glocal_infer_options.lme_support: clears the foreground evidence ev
 * (W x H, nonzero = evidence) where the local flow (u, v, in B's frame: p
 * goes to h p + l(p)) explains little of a residual that was small to
 * begin with. Over 7x7 windows, r0 = mean |A(p) - B(h p)| (no local
 * motion) and r1 = mean |A(p) - B(h p + l(p))| (grey A, B; bilinear; both 0
 * where either point is out of B's view); the evidence goes where
 * r0 - r1 < support x r0 and r0 < support_k x the frame's median r0 (its
 * noise and alignment floor); support 0: nothing. Before that, with flat
 * > 0, every window whose 7x7 mean |grad A| is below flat loses its
 * evidence if the median r0 of such windows that are not evidence (more
 * than W x H / 50 of them) is above flat_noise (glocal_infer_options.
 * lme_flat). scratch: 4 x W x H floats. */
void glocal_lme_support_clear(const float *ga, const float *gb, int W, int H, const double h[9], const float *u,
                              const float *v, double support, double support_k, double flat, double flat_noise,
                              float *scratch, uint8_t *ev);

/* Largest distance (px) between where a and b send a corner of a w x h
 * frame (glocal_refine.c). */
double glocal_corner_shift(const double a[9], const double b[9], int w, int h);

/* Homographies h[n][9] of W x H frames as global flows (n, 2, S, S) at the
 * model size, on the default device, in the caller's nn scope (glocal_infer.c). */
int glocal_homographies_to_flow(const double *h, int n, int W, int H, int S, nn_tensor **out);

/* The refinement's weighted Gauss-Newton system at one level of w x h
 * (glocal_refine.c): A = sum_p om J J^T (all 8 x 8 filled) and g = sum_p
 * om J r over the pixels p = (x, y) with r[p] not NaN and weight u > 0,
 * where J = [ex xn, ex yn, ex, ey xn, ey yn, ey, -xn t, -yn t] (the warp
 * increment's Jacobian in centred coordinates, xn = (x - cx) s, yn = (y -
 * cy) s, t = ex xn + ey yn, ex = gx[p], ey = gy[p]) and om = u / (1 +
 * (r / cs)^2) (Cauchy IRLS), u = wt[p] (wt NULL: 1). 0, or GL_ENOMEM. */
int glocal_normal_equations(const float *r, const float *wt, const float *gx, const float *gy, int w, int h,
                            double cx, double cy, double s, double cs, double A[8][8], double g[8]);

/* The k-th smallest (0-based) of v[0..n-1] (reorders v; -0 below +0, NaNs
 * above +inf); NaN unless 0 <= k < n. */
float glocal_kth_smallest(float *v, long n, long k);

/* Homographies from A to B found by search (glocal_search.c): zero-mean
 * normalised cross-correlation of A's 12 px blocks (every 6 px, textured
 * ones) over every displacement within +-0.16 of the frame's shorter side
 * in B, on a halving of the frame whose shorter side is at most 160 px;
 * RANSAC on the matches, then again on the matches left out while the fits
 * so far explain under half of them, up to max fits into hs[max][9].
 * inliers (max x width x height, or NULL): per fit, 1 on the pixels of the
 * blocks it explains, else 0. Returns how many fits (0 when too few blocks
 * are textured or agree, or the frame is under 24 x 24), or < 0 an error. */
int glocal_search_homography(const float *a, const float *b, int width, int height, int max, double *hs,
                             float *inliers);

#endif
