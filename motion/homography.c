/* Homography fitting: normalised DLT (Hartley & Zisserman, "Multiple View
 * Geometry", 2nd ed., alg. 4.2), RANSAC (alg. 4.6, adaptive sample count
 * eq. 4.18) with least-squares refits on the inliers, and "flow minus
 * homography" (global motion = the homography's flow, local = the rest).
 * All the geometry is in double; pixels throughout. See motion/flow.h. */
#include <math.h>
#include <string.h>

#include "motion/flow.h"
#include "nn/mat3.h"

int homography_apply(const double h[9], double x, double y, double *xo, double *yo)
{
    double w = h[6] * x + h[7] * y + h[8];
    if (!(fabs(w) > 1e-12))
        return gl_error(GL_ENUMERIC, "homography_apply: (%g, %g) maps to infinity", x, y);
    *xo = (h[0] * x + h[1] * y + h[2]) / w;
    *yo = (h[3] * x + h[4] * y + h[5]) / w;
    return 0;
}

/* Eigen-decomposition of a symmetric 9x9 matrix by cyclic Jacobi rotations
 * (Golub & Van Loan, alg. 8.4.3). a is destroyed; on return its diagonal
 * holds the eigenvalues and the columns of v the eigenvectors. */
static void jacobi9(double a[9][9], double v[9][9])
{
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 9; j++) v[i][j] = i == j;
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < 9; i++) {
            diag += a[i][i] * a[i][i];
            for (int j = i + 1; j < 9; j++) off += a[i][j] * a[i][j];
        }
        if (off <= 1e-30 * diag || off == 0) break;
        for (int p = 0; p < 8; p++)
            for (int q = p + 1; q < 9; q++) {
                if (a[p][q] == 0) continue;
                double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < 9; k++) { /* columns p, q */
                    double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 9; k++) { /* rows p, q */
                    double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 9; k++) {
                    double vkp = v[k][p], vkq = v[k][q];
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
    }
}

/* Hartley normalisation: centroid to the origin, mean distance sqrt(2).
 * t = (s, tx, ty): x_n = s x + tx. */
static int normalisation(const double *p, int n, const uint8_t *mask, double t[3])
{
    double cx = 0, cy = 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!mask || mask[i]) {
            cx += p[2 * i];
            cy += p[2 * i + 1];
            m++;
        }
    cx /= m;
    cy /= m;
    double d = 0;
    for (int i = 0; i < n; i++)
        if (!mask || mask[i]) d += hypot(p[2 * i] - cx, p[2 * i + 1] - cy);
    d /= m;
    if (!(d > 1e-12)) return GL_ENUMERIC;
    double s = sqrt(2.0) / d;
    t[0] = s;
    t[1] = -s * cx;
    t[2] = -s * cy;
    return 0;
}

/* h = Td^-1 hn Ts (hn found on points normalised by ts, td), scaled to
 * h[8] = 1 (|h| = 1 if h[8] ~ 0). */
static void denormalise(const double hn[9], const double ts[3], const double td[3], double h[9])
{
    const double tsm[9] = { ts[0], 0, ts[1], 0, ts[0], ts[2], 0, 0, 1 };
    const double tdi[9] = { 1 / td[0], 0, -td[1] / td[0], 0, 1 / td[0], -td[2] / td[0], 0, 0, 1 };
    double out[9];
    gl_mat3_mul(hn, tsm, out);
    gl_mat3_mul(tdi, out, out);
    double scale = out[8];
    if (fabs(scale) < 1e-12) {
        scale = 0;
        for (int i = 0; i < 9; i++) scale += out[i] * out[i];
        scale = sqrt(scale);
    }
    for (int i = 0; i < 9; i++) h[i] = out[i] / scale;
}

int homography_fit_dlt(const double *src, const double *dst, int n, const uint8_t *mask,
                       double h[9])
{
    if (!src || !dst || !h || n < 4)
        return gl_error(GL_EINVAL, "homography_fit_dlt: need >= 4 point pairs, got %d", n);
    int m = 0;
    for (int i = 0; i < n; i++) m += !mask || mask[i];
    if (m < 4)
        return gl_error(GL_EINVAL, "homography_fit_dlt: need >= 4 selected pairs, got %d", m);
    double ts[3], td[3];
    if (normalisation(src, n, mask, ts) < 0 || normalisation(dst, n, mask, td) < 0)
        return gl_error(GL_ENUMERIC, "homography_fit_dlt: all points coincide");
    /* M = A^T A, A having two rows per pair (H&Z eq. 4.3). */
    double a[9][9] = { { 0 } };
    for (int i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        double x = ts[0] * src[2 * i] + ts[1], y = ts[0] * src[2 * i + 1] + ts[2];
        double xp = td[0] * dst[2 * i] + td[1], yp = td[0] * dst[2 * i + 1] + td[2];
        double r1[9] = { 0, 0, 0, -x, -y, -1, yp * x, yp * y, yp };
        double r2[9] = { x, y, 1, 0, 0, 0, -xp * x, -xp * y, -xp };
        for (int j = 0; j < 9; j++)
            for (int k = j; k < 9; k++) a[j][k] += r1[j] * r1[k] + r2[j] * r2[k];
    }
    for (int j = 0; j < 9; j++)
        for (int k = 0; k < j; k++) a[j][k] = a[k][j];
    double v[9][9];
    jacobi9(a, v);
    int order[9];
    for (int i = 0; i < 9; i++) order[i] = i;
    for (int i = 1; i < 9; i++) /* insertion sort by eigenvalue */
        for (int j = i; j > 0 && a[order[j]][order[j]] < a[order[j - 1]][order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double lmax = a[order[8]][order[8]], l1 = a[order[1]][order[1]];
    /* A second (near) null vector means the pairs do not pin H down. */
    if (!(lmax > 0) || l1 < 1e-13 * lmax)
        return gl_error(GL_ENUMERIC,
                        "homography_fit_dlt: degenerate points (collinear or repeated)");
    double hn[9];
    for (int i = 0; i < 9; i++) hn[i] = v[i][order[0]];
    denormalise(hn, ts, td, h);
    return 0;
}

/* RANSAC's minimal solver: the homography of exactly 4 pairs, from the
 * 8 x 8 system of H&Z eq. 4.1 with h[8] = 1 on Hartley-normalised points
 * (h[8] = 0 would send the points' centroid to infinity: a sample folding
 * its quadrilateral, no camera's motion) by gl_solve8: the DLT's answer
 * (the 4 pairs determine H) without its 9 x 9 eigendecomposition, which
 * dominated a RANSAC over a few hundred matches with few inliers (the
 * search start, glocal_search.c). GL_ENUMERIC when the system is singular
 * (collinear or repeated points); no error message set (a failed sample is
 * expected). */
static int homography_fit_4(const double *src, const double *dst, double h[9])
{
    double ts[3], td[3];
    if (normalisation(src, 4, NULL, ts) < 0 || normalisation(dst, 4, NULL, td) < 0) return GL_ENUMERIC;
    double m[8][9]; /* [A | b] */
    for (int i = 0; i < 4; i++) {
        const double x = ts[0] * src[2 * i] + ts[1], y = ts[0] * src[2 * i + 1] + ts[2];
        const double xp = td[0] * dst[2 * i] + td[1], yp = td[0] * dst[2 * i + 1] + td[2];
        const double r1[9] = { x, y, 1, 0, 0, 0, -xp * x, -xp * y, xp };
        const double r2[9] = { 0, 0, 0, x, y, 1, -yp * x, -yp * y, yp };
        memcpy(m[2 * i], r1, sizeof r1);
        memcpy(m[2 * i + 1], r2, sizeof r2);
    }
    double hn[9];
    if (gl_solve8(m, 1e-10, hn) < 0) return GL_ENUMERIC;
    hn[8] = 1;
    for (int i = 0; i < 9; i++)
        if (!isfinite(hn[i])) return GL_ENUMERIC;
    denormalise(hn, ts, td, h);
    return 0;
}

void homography_ransac_config_default(homography_ransac_config *c)
{
    c->threshold = 1.0;
    c->iterations = 2000;
    c->confidence = 0.999;
    c->seed = 1;
    c->refits = 2;
}

/* Squared transfer error |H(src) - dst|^2, +inf where H sends src to infinity. */
static double transfer_err2(const double h[9], const double *s, const double *d)
{
    double w = h[6] * s[0] + h[7] * s[1] + h[8];
    if (!(fabs(w) > 1e-12)) return INFINITY;
    double ex = (h[0] * s[0] + h[1] * s[1] + h[2]) / w - d[0];
    double ey = (h[3] * s[0] + h[4] * s[1] + h[5]) / w - d[1];
    return ex * ex + ey * ey;
}

static int count_inliers(const double h[9], const double *src, const double *dst, int n,
                         double t2, uint8_t *flags)
{
    int cnt = 0;
    for (int i = 0; i < n; i++) {
        int in = transfer_err2(h, src + 2 * i, dst + 2 * i) < t2;
        if (flags) flags[i] = (uint8_t)in;
        cnt += in;
    }
    return cnt;
}

/* Twice the area of triangle abc. */
static double area2(const double *a, const double *b, const double *c)
{
    return fabs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]));
}

int homography_fit_ransac(const double *src, const double *dst, int n,
                          const homography_ransac_config *c, double h[9], uint8_t *inliers,
                          int *n_inliers)
{
    if (!src || !dst || !h || !c || n < 4)
        return gl_error(GL_EINVAL, "homography_fit_ransac: need >= 4 point pairs, got %d", n);
    if (!(c->threshold > 0) || c->iterations < 1 || !(c->confidence > 0 && c->confidence < 1) ||
        c->refits < 1)
        return gl_error(GL_EINVAL,
                        "homography_fit_ransac: config needs threshold > 0, iterations >= 1, "
                        "0 < confidence < 1, refits >= 1");
    uint8_t *best = gl_malloc((size_t)n), *cur = gl_malloc((size_t)n);
    int rc = 0;
    if (!best || !cur) {
        rc = GL_ENOMEM;
        goto fail;
    }
    double t2 = c->threshold * c->threshold;
    uint64_t rng = c->seed;
    int best_cnt = -1;
    double best_h[9];
    long needed = c->iterations;
    /* Minimum triangle area for a sample: avoids near-collinear quadruples
     * whose homography is ill-conditioned. */
    const double min_area2 = 1e-6;
    for (long it = 0; it < needed && it < c->iterations; it++) {
        int idx[4];
        for (int k = 0; k < 4; k++) {
            int again;
            do {
                idx[k] = (int)(gl_splitmix64(&rng) % (uint64_t)n);
                again = 0;
                for (int j = 0; j < k; j++) again |= idx[j] == idx[k];
            } while (again);
        }
        double s4[8], d4[8];
        for (int k = 0; k < 4; k++) {
            s4[2 * k] = src[2 * idx[k]];
            s4[2 * k + 1] = src[2 * idx[k] + 1];
            d4[2 * k] = dst[2 * idx[k]];
            d4[2 * k + 1] = dst[2 * idx[k] + 1];
        }
        int degenerate = 0;
        for (int a = 0; a < 4 && !degenerate; a++)
            for (int b = a + 1; b < 4 && !degenerate; b++)
                for (int e = b + 1; e < 4; e++)
                    if (area2(s4 + 2 * a, s4 + 2 * b, s4 + 2 * e) < min_area2 ||
                        area2(d4 + 2 * a, d4 + 2 * b, d4 + 2 * e) < min_area2) {
                        degenerate = 1;
                        break;
                    }
        if (degenerate) continue;
        double hs[9];
        if (homography_fit_4(s4, d4, hs) < 0) continue;
        int cnt = count_inliers(hs, src, dst, n, t2, NULL);
        if (cnt > best_cnt) {
            best_cnt = cnt;
            memcpy(best_h, hs, sizeof best_h);
            /* H&Z eq. 4.18: samples needed for `confidence` of one clean draw. */
            double w = (double)cnt / n, w4 = w * w * w * w;
            if (w4 >= 1)
                needed = it + 1;
            else if (w4 > 0) {
                double nd = log(1 - c->confidence) / log(1 - w4);
                if (nd < needed) needed = (long)ceil(nd);
            }
        }
    }
    gl_clear_error(); /* failed samples are expected */
    if (best_cnt < 4) {
        rc = gl_error(GL_ENUMERIC,
                      "homography_fit_ransac: no homography fits 4 or more of %d pairs within "
                      "%g px",
                      n, c->threshold);
        goto fail;
    }
    best_cnt = count_inliers(best_h, src, dst, n, t2, best);
    for (int r = 0; r < c->refits; r++) {
        double hr[9];
        if (homography_fit_dlt(src, dst, n, best, hr) < 0) break;
        int cnt = count_inliers(hr, src, dst, n, t2, cur);
        if (cnt < best_cnt) break; /* the refit did not help: keep the sample's */
        memcpy(best_h, hr, sizeof best_h);
        memcpy(best, cur, (size_t)n);
        best_cnt = cnt;
    }
    gl_clear_error();
    memcpy(h, best_h, sizeof best_h);
    if (inliers) memcpy(inliers, best, (size_t)n);
    if (n_inliers) *n_inliers = best_cnt;
fail:
    gl_free(cur);
    gl_free(best);
    return rc;
}

int homography_to_flow(const double h[9], flow_field *f)
{
    if (!h || !f || !f->u) return gl_error(GL_EINVAL, "homography_to_flow: empty flow field");
    for (int y = 0; y < f->height; y++)
        for (int x = 0; x < f->width; x++) {
            double xo = 0, yo = 0;
            int rc = homography_apply(h, x, y, &xo, &yo);
            if (rc < 0) return rc;
            size_t i = (size_t)y * f->width + x;
            f->u[i] = (float)(xo - x);
            f->v[i] = (float)(yo - y);
        }
    return 0;
}

int homography_corner_error(const double a[9], const double b[9], int width, int height,
                            double *err)
{
    if (width <= 0 || height <= 0)
        return gl_error(GL_EINVAL, "homography_corner_error: bad size %dx%d", width, height);
    const double cx[4] = { 0, width - 1, 0, width - 1 }, cy[4] = { 0, 0, height - 1, height - 1 };
    double sum = 0;
    for (int k = 0; k < 4; k++) {
        double ax = 0, ay = 0, bx = 0, by = 0;
        int rc = homography_apply(a, cx[k], cy[k], &ax, &ay);
        if (rc < 0) return rc;
        rc = homography_apply(b, cx[k], cy[k], &bx, &by);
        if (rc < 0) return rc;
        sum += hypot(ax - bx, ay - by);
    }
    *err = sum / 4;
    return 0;
}

/* A flow vector the fit can use (not NaN, not a .flo "unknown"). */
static int flow_known(float u, float v)
{
    return isfinite(u) && isfinite(v) && fabsf(u) <= FLOW_UNKNOWN_THRESH && fabsf(v) <= FLOW_UNKNOWN_THRESH;
}

double homography_flow_agreement(const flow_field *flow, int step, const double h[9], double threshold)
{
    long in = 0, n = 0;
    const double t2 = threshold * threshold;
    for (int y = 0; y < flow->height; y += step)
        for (int x = 0; x < flow->width; x += step) {
            const size_t i = (size_t)y * flow->width + x;
            if (!flow_known(flow->u[i], flow->v[i])) continue;
            n++;
            double xo = 0, yo = 0;
            if (homography_apply(h, x, y, &xo, &yo) < 0) continue;
            const double eu = flow->u[i] - (xo - x), ev = flow->v[i] - (yo - y);
            in += eu * eu + ev * ev < t2;
        }
    return n ? (double)in / n : 0;
}

int flow_minus_homography(const flow_field *flow, int step, const homography_ransac_config *c,
                          int zero_inliers, double h[9], flow_field *global, flow_field *local)
{
    if (!flow || !flow->u || !c) return gl_error(GL_EINVAL, "flow_minus_homography: empty flow");
    if (step < 1) return gl_error(GL_EINVAL, "flow_minus_homography: step %d < 1", step);
    int w = flow->width, hh = flow->height;
    for (int k = 0; k < 2; k++) {
        const flow_field *o = k ? local : global;
        if (o && (!o->u || o->width != w || o->height != hh))
            return gl_error(GL_EINVAL, "flow_minus_homography: %s field is not %dx%d",
                            k ? "local" : "global", w, hh);
    }
    long cap = (long)((w + step - 1) / step) * ((hh + step - 1) / step);
    double *src = gl_malloc(sizeof(double) * 2 * (size_t)cap);
    double *dst = gl_malloc(sizeof(double) * 2 * (size_t)cap);
    int rc = 0;
    if (!src || !dst) {
        rc = GL_ENOMEM;
        goto fail;
    }
    int n = 0;
    for (int y = 0; y < hh; y += step)
        for (int x = 0; x < w; x += step) {
            size_t i = (size_t)y * w + x;
            float u = flow->u[i], v = flow->v[i];
            if (!flow_known(u, v)) continue;
            src[2 * n] = x;
            src[2 * n + 1] = y;
            dst[2 * n] = x + (double)u;
            dst[2 * n + 1] = y + (double)v;
            n++;
        }
    if (n < 4) {
        rc = gl_error(GL_EINVAL, "flow_minus_homography: %d known flow vectors, need >= 4", n);
        goto fail;
    }
    double hm[9];
    rc = homography_fit_ransac(src, dst, n, c, hm, NULL, NULL);
    if (rc < 0) goto fail;
    double t2 = c->threshold * c->threshold;
    for (int y = 0; y < hh; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double xo = 0, yo = 0;
            rc = homography_apply(hm, x, y, &xo, &yo);
            if (rc < 0) goto fail;
            float gu = (float)(xo - x), gv = (float)(yo - y);
            if (global) {
                global->u[i] = gu;
                global->v[i] = gv;
            }
            if (local) {
                double eu = flow->u[i] - (xo - x), ev = flow->v[i] - (yo - y);
                int in = eu * eu + ev * ev < t2;
                local->u[i] = zero_inliers && in ? 0.f : flow->u[i] - gu;
                local->v[i] = zero_inliers && in ? 0.f : flow->v[i] - gv;
            }
        }
    if (h) memcpy(h, hm, sizeof hm);
fail:
    gl_free(dst);
    gl_free(src);
    return rc;
}
