/* stabilize_path.c — the smooth camera path of video stabilization:
 * Gaussian smoothing, and the L1-optimal path (Grundmann et al. 2011) as a
 * linear program solved by GLPK. The plan, warp and measures are
 * stabilize.c; the centred coordinates are motion/stabilize_private.h's. */
#include <glpk.h>
#include <math.h>
#include <string.h>

#include "motion/stabilize.h"
#include "motion/stabilize_private.h"
#include "nn/mat3.h"

/* ---- Gaussian path ----------------------------------------------------------------- */

/* Element-wise kernel average with point-reflected ends (any [n][9] stack). */
void stab_gaussian_stack(const double *p, int n, int smoothing, double *out)
{
    const int S = smoothing;
    const double sigma2 = (S / 2.0) * (S / 2.0);
    for (int t = 0; t < n; t++) {
        double acc[9] = { 0 }, wsum = 0;
        for (int d = -S; d <= S; d++) {
            double w = exp(-(double)d * d / sigma2);
            int j = t + d;
            for (int e = 0; e < 9; e++) {
                double v;
                if (j < 0) {
                    int jj = -j < n ? -j : n - 1;
                    v = 2 * p[e] - p[9 * jj + e];
                } else if (j > n - 1) {
                    int jj = 2 * (n - 1) - j;
                    if (jj < 0) jj = 0;
                    v = 2 * p[9 * (n - 1) + e] - p[9 * jj + e];
                } else {
                    v = p[9 * j + e];
                }
                acc[e] += w * v;
            }
            wsum += w;
        }
        for (int e = 0; e < 9; e++) out[9 * t + e] = acc[e] / wsum;
    }
}

int stab_path_gaussian(const double *path, int n, int smoothing, double *out)
{
    if (!path || !out || n < 1 || smoothing < 1)
        return gl_error(GL_EINVAL, "stab_path_gaussian: need n >= 1 homographies and smoothing >= 1 (got %d, %d)",
                        n, smoothing);
    double *p = gl_malloc(sizeof(double) * 9 * (size_t)n);
    if (!p) return GL_ENOMEM;
    for (int t = 0; t < n; t++) {
        memcpy(p + 9 * t, path + 9 * t, 9 * sizeof(double));
        gl_mat3_normalize(p + 9 * t);
    }
    stab_gaussian_stack(p, n, smoothing, out);
    gl_free(p);
    return 0;
}

/* ---- L1-optimal path (Grundmann et al. 2011) ---------------------------------------- */

/* Parameters of B in the LP, k = 0..5: tx, ty, a, b, c, d for
 * B = [a b tx; c d ty; 0 0 1]. */
static void params_to_mat(const double p[6], double m[9])
{
    double t[9] = { p[2], p[3], p[0], p[4], p[5], p[1], 0, 0, 1 };
    memcpy(m, t, sizeof t);
}

/* A linear expression over LP columns (1-based) plus a constant. */
typedef struct {
    int col[24];
    double val[24];
    int n;
    double cst;
} lin_expr;

/* Coefficients below this are rounding noise (the off-diagonal of a fitted
 * pure translation comes out ~1e-17): kept, they stretch the matrix's range
 * of magnitudes to 1e18, and GLPK's scaling and simplex fail on it
 * (GLP_EFAIL after 40 s on 120 frames; 0.9 s without them). */
#define LP_TINY 1e-12

static void expr_add(lin_expr *e, int col, double v)
{
    if (fabs(v) < LP_TINY) return;
    for (int i = 0; i < e->n; i++)
        if (e->col[i] == col) {
            e->val[i] += v;
            return;
        }
    e->col[e->n] = col;
    e->val[e->n++] = v;
}

typedef struct {
    const double *F;   /* [n][9] centred affine F_t (frame t -> t-1); F[0] unused */
    int s0;            /* first frame of the window */
} lp_ctx;

static int pcol(const lp_ctx *x, int t, int k) { return 1 + 6 * (t - x->s0) + k; }

/* e += scale * R_t[k], R_t = F_{t+1} B_{t+1} - B_t (Grundmann eq. 8). */
static void add_residual(const lp_ctx *x, int t, int k, double scale, lin_expr *e)
{
    const double *f = x->F + 9 * (t + 1);
    /* (F B) entries: row r of F times column of B. Parameter k picks the entry:
     * k 0: (0,2), 1: (1,2), 2: (0,0), 3: (0,1), 4: (1,0), 5: (1,1). */
    static const int row_of[6] = { 0, 1, 0, 0, 1, 1 }, colB[6] = { 2, 2, 0, 1, 0, 1 };
    const int r = row_of[k], c = colB[k];
    const double f0 = f[3 * r], f1 = f[3 * r + 1];
    /* B's column c: (B_0c, B_1c); params: col 0 = (a, c) = k 2, 4; col 1 =
     * (b, d) = k 3, 5; col 2 = (tx, ty) = k 0, 1. */
    static const int top[3] = { 2, 3, 0 }, bot[3] = { 4, 5, 1 };
    expr_add(e, pcol(x, t + 1, top[c]), scale * f0);
    expr_add(e, pcol(x, t + 1, bot[c]), scale * f1);
    if (c == 2) e->cst += scale * f[3 * r + 2];
    expr_add(e, pcol(x, t, k), -scale);
}

/* Appends entry (row, col, v) to the triplet arrays. */
#define PUT(r_, c_, v_) do { ne++; ia[ne] = (r_); ja[ne] = (c_); ar[ne] = (v_); } while (0)

/* l1_window's second stage, on its solved LP (parm as it used it; ncols
 * its columns so far). Paths equally smooth differ (a still camera's output
 * may sit anywhere its jitter allows, and the simplex stops at some corner
 * of that set); of them take the one nearest the frame's centre, min
 * sum |tx| + |ty| over the free frames, which leaves the largest crop. One
 * more row holds the smoothness cost at its optimum (plus 1e-5 of it: at
 * 1e-7 the simplex found the row infeasible on a real clip's path, and 1e-5
 * moves a pan by under 1e-4 px); columns u >= 0 with u >= +-tx carry the new
 * objective; the primal simplex goes on from the optimal basis. If it fails,
 * B keeps the first stage's path. */
static int l1_centre(glp_prob *lp, glp_smcp *parm, const lp_ctx *x, int s0, int e, int fixed, int ncols,
                     double *B)
{
    const double fopt = glp_get_obj_val(lp);
    const int nfree = e - s0 - fixed;
    int *ind = gl_malloc(sizeof(int) * (ncols + 1));
    double *val = gl_malloc(sizeof(double) * (ncols + 1));
    if (!ind || !val) {
        gl_free(ind);
        gl_free(val);
        return GL_ENOMEM;
    }
    int nz = 0;
    for (int j = 1; j <= ncols; j++) {
        double w = glp_get_obj_coef(lp, j);
        if (w != 0) {
            nz++;
            ind[nz] = j;
            val[nz] = w;
        }
        glp_set_obj_coef(lp, j, 0);
    }
    int r2 = glp_add_rows(lp, 1 + 4 * nfree);
    glp_set_mat_row(lp, r2, nz, ind, val);
    glp_set_row_bnds(lp, r2, GLP_UP, 0, fopt + 1e-5 * fabs(fopt) + 1e-9);
    gl_free(ind);
    gl_free(val);
    int u = glp_add_cols(lp, 2 * nfree);
    for (int t = s0 + fixed; t < e; t++)
        for (int k = 0; k < 2; k++, u++) {
            glp_set_col_bnds(lp, u, GLP_LO, 0, 0);
            glp_set_obj_coef(lp, u, 1);
            for (int sg = -1; sg <= 1; sg += 2) {
                int ri = ++r2, id2[3] = { 0, u, pcol(x, t, k) };
                double v2[3] = { 0, 1, sg };
                glp_set_mat_row(lp, ri, 2, id2, v2);
                glp_set_row_bnds(lp, ri, GLP_LO, 0, 0);
            }
        }
    parm->presolve = GLP_OFF;
    parm->meth = GLP_PRIMAL;
    int prev = glp_term_out(GLP_OFF);
    int ret = glp_simplex(lp, parm);
    glp_term_out(prev);
    if (ret == 0 && glp_get_status(lp) == GLP_OPT)
        for (int t = s0 + fixed; t < e; t++)
            for (int k = 0; k < 6; k++) B[6 * t + k] = glp_get_col_prim(lp, pcol(x, t, k));
    return 0;
}

/* Solves frames [s0, e) with the first `fixed` of them held at B (centred
 * params [n][6]), writing the rest into B.
 *
 * The LP in its sparse form (the same optimum as eq. 11 with a slack per
 * residual and two inequality rows, measured 3-8x faster by GLPK's simplex
 * on 164-300 frames): free columns r_t = R_t (eq. 8) defined by equality
 * rows, and each cost term |y| as y = y+ - y-, y+, y- >= 0, one equality row
 * each, so every row holds a handful of entries. Long (~155 lines): the
 * LP's columns and rows in the paper's order (eqs. 8-10, proximity,
 * inclusion), then one solve, one error path. */
static int l1_window(const double *F, int s0, int e, int fixed, double hx, double hy, double s,
                     const stab_config *c, double lw, double *B)
{
    const int L = e - s0;
    const int n1 = L - 1 > 0 ? L - 1 : 0, n2 = L - 2 > 0 ? L - 2 : 0, n3 = L - 3 > 0 ? L - 3 : 0;
    const int nterms = 6 * (n1 + n2 + n3) + 4 * L;          /* |.| terms, a +/- column pair each */
    const int ncols = 6 * L + 6 * n1 + 2 * nterms;
    const int nrows = 6 * n1 + nterms + 10 * L;
    const size_t cap = (size_t)6 * n1 * 6 + (size_t)6 * (n1 * 3 + n2 * 4 + n3 * 5) + (size_t)4 * L * 3 +
                       (size_t)L * (2 * 2 + 8 * 3) + 16;
    int rc = 0, row = 0;
    size_t ne = 0;
    int *ia = gl_malloc(sizeof(int) * (cap + 1)), *ja = gl_malloc(sizeof(int) * (cap + 1));
    double *ar = gl_malloc(sizeof(double) * (cap + 1));
    glp_prob *lp = NULL;
    if (!ia || !ja || !ar) { rc = GL_ENOMEM; goto done; }
    lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    glp_add_cols(lp, ncols);
    glp_add_rows(lp, nrows);
    lp_ctx x = { F, s0 };
    /* parameter columns */
    for (int t = s0; t < e; t++)
        for (int k = 0; k < 6; k++) {
            int col = pcol(&x, t, k);
            if (t - s0 < fixed) {
                glp_set_col_bnds(lp, col, GLP_FX, B[6 * t + k], B[6 * t + k]);
            } else if (k < 2) {
                glp_set_col_bnds(lp, col, GLP_FR, 0, 0);
            } else if (k == 2 || k == 5) {
                glp_set_col_bnds(lp, col, GLP_DB, 1 - c->max_zoom, 1 + c->max_zoom);
            } else {
                glp_set_col_bnds(lp, col, GLP_DB, -c->max_skew, c->max_skew);
            }
        }
    /* residual columns r_{t,k}, t = s0 .. e-2, and their defining rows
     * r - (F_{t+1} B_{t+1} - B_t) = cst */
    const int rcol0 = 6 * L + 1;
    for (int i = 0; i < n1; i++)
        for (int k = 0; k < 6; k++) {
            int col = rcol0 + 6 * i + k;
            lin_expr ex = { .n = 0 };
            add_residual(&x, s0 + i, k, 1, &ex);
            glp_set_col_bnds(lp, col, GLP_FR, 0, 0);
            row++;
            PUT(row, col, 1);
            for (int j = 0; j < ex.n; j++) PUT(row, ex.col[j], -ex.val[j]);
            glp_set_row_bnds(lp, row, GLP_FX, ex.cst, ex.cst);
        }
    /* the cost terms: y - y+ + y- = cst, cost w (y+ + y-) */
    int tcol = rcol0 + 6 * n1;
    const int counts[3] = { n1, n2, n3 };
    const double wo[3] = { c->w1, c->w2, c->w3 };
    static const double stencil[3][3] = { { 1, 0, 0 }, { -1, 1, 0 }, { 1, -2, 1 } };  /* eqs. 8-10 */
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < counts[o]; i++)
            for (int k = 0; k < 6; k++, tcol += 2) {
                row++;
                for (int d = 0; d <= o; d++) PUT(row, rcol0 + 6 * (i + d) + k, stencil[o][d]);
                PUT(row, tcol, -1);
                PUT(row, tcol + 1, 1);
                glp_set_row_bnds(lp, row, GLP_FX, 0, 0);
                double w = wo[o] * (k < 2 ? 1 : lw);
                glp_set_col_bnds(lp, tcol, GLP_LO, 0, 0);
                glp_set_col_bnds(lp, tcol + 1, GLP_LO, 0, 0);
                glp_set_obj_coef(lp, tcol, w);
                glp_set_obj_coef(lp, tcol + 1, w);
            }
    /* w0 (|a - 1| + |b| + |c| + |d - 1|) per frame: without it a constant
     * zoom (free for the difference terms) buys translation room at the
     * price of a tighter crop, and the LP takes it. */
    for (int t = s0; t < e; t++)
        for (int k = 2; k < 6; k++, tcol += 2) {
            double id = (k == 2 || k == 5) ? 1 : 0;
            row++;
            PUT(row, pcol(&x, t, k), 1);
            PUT(row, tcol, -1);
            PUT(row, tcol + 1, 1);
            glp_set_row_bnds(lp, row, GLP_FX, id, id);
            glp_set_col_bnds(lp, tcol, GLP_LO, 0, 0);
            glp_set_col_bnds(lp, tcol + 1, GLP_LO, 0, 0);
            glp_set_obj_coef(lp, tcol, c->w0 * lw);
            glp_set_obj_coef(lp, tcol + 1, c->w0 * lw);
        }
    /* proximity and inclusion rows of the free frames; the rows of held
     * frames stay free (bounds GLP_FR) so the row count is fixed */
    for (int t = s0; t < e; t++) {
        int held = t - s0 < fixed;
        /* b + c, a - d */
        row++;
        PUT(row, pcol(&x, t, 3), 1);
        PUT(row, pcol(&x, t, 4), 1);
        if (held) glp_set_row_bnds(lp, row, GLP_FR, 0, 0);
        else glp_set_row_bnds(lp, row, GLP_DB, -c->max_skew_sum, c->max_skew_sum);
        row++;
        PUT(row, pcol(&x, t, 2), 1);
        PUT(row, pcol(&x, t, 5), -1);
        if (held) glp_set_row_bnds(lp, row, GLP_FR, 0, 0);
        else glp_set_row_bnds(lp, row, GLP_DB, -c->max_aniso, c->max_aniso);
        /* the window's corners (+-s hx, +-s hy) stay inside [-hx, hx] x [-hy, hy] */
        for (int corner = 0; corner < 4; corner++) {
            double rx = (corner & 1 ? 1 : -1) * s * hx, ry = (corner & 2 ? 1 : -1) * s * hy;
            for (int axis = 0; axis < 2; axis++) {
                row++;
                int ka = axis ? 4 : 2, kb = axis ? 5 : 3, kt = axis;
                PUT(row, pcol(&x, t, ka), rx);
                PUT(row, pcol(&x, t, kb), ry);
                PUT(row, pcol(&x, t, kt), 1);
                double hh = axis ? hy : hx;
                if (held) glp_set_row_bnds(lp, row, GLP_FR, 0, 0);
                else glp_set_row_bnds(lp, row, GLP_DB, -hh, hh);
            }
        }
    }
    if (row != nrows || tcol != ncols + 1 || ne > cap) {
        rc = gl_error(GL_EINVAL, "stab_plan_compute: LP of frames %d..%d built %d rows, %d columns, %zu entries "
                      "(%d, %d, at most %zu expected)", s0, e - 1, row, tcol - 1, ne, nrows, ncols, cap);
        goto done;
    }
    glp_load_matrix(lp, (int)ne, ia, ja, ar);
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.presolve = GLP_ON;
    /* The dual simplex is about 3x faster than the primal here (300 frames:
     * 5 s against 17, one core), but now and then stops with GLP_EFAIL
     * (numerical trouble; GLP_DUALP does not fall back on that): then the
     * primal solves it from scratch. */
    parm.meth = GLP_DUAL;
    int prev = glp_term_out(GLP_OFF);
    glp_scale_prob(lp, GLP_SF_AUTO);
    int ret = glp_simplex(lp, &parm);
    int status = ret == 0 ? glp_get_status(lp) : 0;
    if (ret != 0 || status != GLP_OPT) {
        parm.meth = GLP_PRIMAL;
        ret = glp_simplex(lp, &parm);
        status = ret == 0 ? glp_get_status(lp) : 0;
    }
    glp_term_out(prev);
    if (ret != 0 || status != GLP_OPT) {
        rc = gl_error(GL_ENUMERIC, "stab_plan_compute: the L1 path LP of frames %d..%d has no optimum "
                      "(GLPK glp_simplex returned %d, status %d)", s0, e - 1, ret, status);
        goto done;
    }
    for (int t = s0 + fixed; t < e; t++)
        for (int k = 0; k < 6; k++) B[6 * t + k] = glp_get_col_prim(lp, pcol(&x, t, k));
    if ((rc = l1_centre(lp, &parm, &x, s0, e, fixed, ncols, B)) < 0) goto done;
done:
    if (lp) glp_delete_prob(lp);
    gl_free(ia);
    gl_free(ja);
    gl_free(ar);
    return rc;
}
#undef PUT

int stab_l1_path(const double *F, int n, double hx, double hy, double s, const stab_config *c,
                 double *Bc /* [n][9] centred */)
{
    if (n == 1) {
        stab_mat_identity(Bc);
        return 0;
    }
    const double lw = c->linear_weight > 0 ? c->linear_weight : 0.5 * hypot(2 * hx, 2 * hy);
    double *B = gl_calloc((size_t)6 * n, sizeof(double));
    if (!B) return GL_ENOMEM;
    int rc = 0, s0 = 0;
    for (;;) {
        int e = s0 + c->window < n ? s0 + c->window : n;
        int fixed = s0 > 0 ? 3 : 0;
        if ((rc = l1_window(F, s0, e, fixed, hx, hy, s, c, lw, B)) < 0) break;
        if (e == n) break;
        s0 = e - c->overlap - 3;
    }
    for (int t = 0; rc == 0 && t < n; t++) params_to_mat(B + 6 * t, Bc + 9 * t);
    gl_free(B);
    return rc;
}
