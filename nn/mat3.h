/*
 * mat3.h — 3x3 matrices for homographies: row-major doubles acting on column
 * vectors (x, y, 1), the convention of motion/flow.h and datasets/synth.h;
 * and the 8 x 8 solve of a homography's 8 unknowns (gl_solve8).
 *
 * Why here: the synthetic benchmark (datasets/) renders scenes through
 * homographies and GLOCAL (motion/) composes and rescales them, and datasets/
 * may not include motion/ (experiments -> recognition, motion, datasets -> nn).
 * nn/ is below both; like nn/base.h this header is plain C and needs no
 * libtorch. Header-only (static inline): a handful of lines each, called in
 * per-pixel loops of the renderer.
 *
 * Out arguments may alias the inputs.
 */
#ifndef GLOCAL_NN_MAT3_H
#define GLOCAL_NN_MAT3_H

#include <math.h>
#include <string.h>

/* out = a b. */
static inline void gl_mat3_mul(const double a[9], const double b[9], double out[9])
{
    double t[9];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            t[3 * r + c] = a[3 * r] * b[c] + a[3 * r + 1] * b[3 + c] + a[3 * r + 2] * b[6 + c];
    memcpy(out, t, sizeof t);
}

/* out = m^-1 by the adjugate (cofactors over the determinant, expanded along
 * the first row). Returns -1 when |det| <= 1e-300 (out then holds the
 * adjugate divided by that determinant: infinities or NaN), 0 otherwise. */
static inline int gl_mat3_inverse(const double m[9], double out[9])
{
    double t[9] = { m[4] * m[8] - m[5] * m[7], m[2] * m[7] - m[1] * m[8], m[1] * m[5] - m[2] * m[4],
                    m[5] * m[6] - m[3] * m[8], m[0] * m[8] - m[2] * m[6], m[2] * m[3] - m[0] * m[5],
                    m[3] * m[7] - m[4] * m[6], m[1] * m[6] - m[0] * m[7], m[0] * m[4] - m[1] * m[3] };
    double det = m[0] * t[0] + m[1] * t[3] + m[2] * t[6];
    for (int i = 0; i < 9; i++) out[i] = t[i] / det;
    return fabs(det) > 1e-300 ? 0 : -1;
}

/* Scales h so that h[8] = 1 (left as it is when |h[8]| <= 1e-15: a
 * homography sending the origin to infinity). */
static inline void gl_mat3_normalize(double h[9])
{
    if (fabs(h[8]) > 1e-15) {
        double d = h[8];
        for (int i = 0; i < 9; i++) h[i] /= d;
    }
}

/* (u, v) = the image of (x, y): (h0 x + h1 y + h2) / w, (h3 x + h4 y + h5) / w,
 * w = h6 x + h7 y + h8 (no check for w = 0: motion/flow.h's homography_apply
 * is the checked version). */
static inline void gl_mat3_apply(const double h[9], double x, double y, double *u, double *v)
{
    double w = h[6] * x + h[7] * y + h[8];
    *u = (h[0] * x + h[1] * y + h[2]) / w;
    *v = (h[3] * x + h[4] * y + h[5]) / w;
}

/* The similarity x -> s R(theta) x + (tx, ty): scale s, rotation by theta
 * radians, then the translation. */
static inline void gl_mat3_similarity(double s, double theta, double tx, double ty, double out[9])
{
    double c = s * cos(theta), n = s * sin(theta);
    double t[9] = { c, -n, tx, n, c, ty, 0, 0, 1 };
    memcpy(out, t, sizeof t);
}

/* How far apart, in output units, the images of two points one unit apart
 * near (x, y) are at the most: the longer image of the unit steps in x and y
 * under h's Jacobian at (x, y). A renderer's texels per pixel, for picking a
 * mip level. */
static inline double gl_mat3_footprint(const double h[9], double x, double y)
{
    double w = h[6] * x + h[7] * y + h[8];
    double u = (h[0] * x + h[1] * y + h[2]) / w, v = (h[3] * x + h[4] * y + h[5]) / w;
    double ux = (h[0] - u * h[6]) / w, uy = (h[1] - u * h[7]) / w;
    double vx = (h[3] - v * h[6]) / w, vy = (h[4] - v * h[7]) / w;
    double a2 = ux * ux + vx * vx, b2 = uy * uy + vy * vy;
    return sqrt(a2 > b2 ? a2 : b2);
}

/* Solves the 8 x 8 system of the augmented matrix m = [A | b] in place
 * (Gaussian elimination with partial pivoting, then back substitution)
 * into x: the size of a homography's 8 unknowns (the 4-point homography
 * with h[8] = 1, H&Z eq. 4.1; a Gauss-Newton step over its 8 parameters).
 * Returns -1, x unspecified, when a pivot's magnitude is not above
 * min_pivot (a singular system for the caller's scale), 0 otherwise. */
static inline int gl_solve8(double m[8][9], double min_pivot, double x[8])
{
    for (int c = 0; c < 8; c++) {
        int piv = c;
        for (int r = c + 1; r < 8; r++)
            if (fabs(m[r][c]) > fabs(m[piv][c])) piv = r;
        if (!(fabs(m[piv][c]) > min_pivot)) return -1;
        if (piv != c)
            for (int k = c; k < 9; k++) {
                const double t = m[c][k];
                m[c][k] = m[piv][k];
                m[piv][k] = t;
            }
        for (int r = c + 1; r < 8; r++) {
            const double f = m[r][c] / m[c][c];
            for (int k = c; k < 9; k++) m[r][k] -= f * m[c][k];
        }
    }
    for (int r = 7; r >= 0; r--) {
        double v = m[r][8];
        for (int k = r + 1; k < 8; k++) v -= m[r][k] * x[k];
        x[r] = v / m[r][r];
    }
    return 0;
}

#endif
