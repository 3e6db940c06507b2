/* dis_refine.c — DIS's variational refinement (Kroeger et al. 2016, sec.
 * 2.2, eq. 5) in the form of OpenCV's VariationalRefinement: fixed-point
 * iterations around red-black SOR on the split layout of dis_private.h
 * (dis.c's header comment gives the whole algorithm). */
#include <math.h>
#include <string.h>

#include "motion/dis_private.h"

#if defined(__GNUC__) && !defined(__clang__)
/* As in tvl1.c: GCC vectorises sqrtf only when it cannot set errno. Every
 * sqrtf here takes a sum of squares plus a positive constant. */
float sqrtf(float) __attribute__((const, nothrow, leaf));
#endif

/* The refinement's constants (OpenCV's VariationalRefinement): zeta
 * regularises the normalisation of the data terms, epsilon is the robust
 * penaliser's Psi(s^2) = sqrt(s^2 + epsilon^2). */
#define VAR_ZETA 0.1f
#define VAR_EPSILON 0.001f

/* The energy of eq. 5 (DeepFlow's, Weinzaepfel et al. ICCV 2013, with
 * OpenCV's discretisation and constants):
 *   E(U) = sum_x sigma Psi(E_I) + gamma Psi(E_G) + alpha Psi(|grad U|^2),
 * sigma being var_delta (OpenCV's name), E_I the normalised brightness
 * constancy and E_G the normalised gradient constancy, both linearised
 * around the incoming flow W (I1 warped once by W), and
 * Psi(s^2) = sqrt(s^2 + epsilon^2). Each fixed-point iteration freezes
 * the robust weights at W + dW and solves the linear system for the
 * increment dW with a few red-black SOR sweeps.
 *
 * Derivatives are OpenCV's: [-1 0 1] differences (not halved) of the
 * average of I0 and the warped I1 and of their difference, replicated
 * borders; the constants alpha, delta, gamma were tuned with that scale. */

/* Element 0 of row y (-1 .. h) of colour c of a split plane. */
static float *rb_row(float *plane, rb_geom g, int c, int y)
{
    return plane + (size_t)c * g.cp + (size_t)(y + 1) * g.cs + 1;
}

static int rb_len(rb_geom g, int c, int y) { return (g.w - ((y + c) & 1) + 1) / 2; }

/* Split a plane, pads zeroed. */
static void rb_split(const float *src, rb_geom g, float *dst)
{
    for (int c = 0; c < 2; c++) {
        memset(rb_row(dst, g, c, -1) - 1, 0, sizeof(float) * g.cs);
        memset(rb_row(dst, g, c, g.h) - 1, 0, sizeof(float) * g.cs);
        for (int y = 0; y < g.h; y++) {
            float *d = rb_row(dst, g, c, y);
            const float *s = src + (size_t)y * g.w + ((y + c) & 1);
            int n = rb_len(g, c, y);
            d[-1] = 0;
            for (int k = 0; k < n; k++) d[k] = s[2 * k];
            for (int k = n; k < g.cs - 1; k++) d[k] = 0;
        }
    }
}

/* Zero the pads of a split plane whose elements are written elsewhere. */
static void rb_clear_pads(float *plane, rb_geom g)
{
    for (int c = 0; c < 2; c++) {
        memset(rb_row(plane, g, c, -1) - 1, 0, sizeof(float) * g.cs);
        memset(rb_row(plane, g, c, g.h) - 1, 0, sizeof(float) * g.cs);
        for (int y = 0; y < g.h; y++) {
            float *d = rb_row(plane, g, c, y);
            d[-1] = 0;
            for (int k = rb_len(g, c, y); k < g.cs - 1; k++) d[k] = 0;
        }
    }
}

typedef struct {
    rb_geom g;
    /* split planes */
    float *wu, *wv, *du, *dv;                          /* W and dW */
    float *ix, *iy, *iz, *ixx, *ixy, *iyy, *ixz, *iyz; /* derivatives */
    float *ia11, *a12, *ia22, *b1, *b2;                /* the system, 1/diagonal */
    float *wr, *wd; /* smoothness weight of the edge to the right / below
                       (0 where that neighbour is outside the image) */
    float alpha2, delta2, gamma2, omega;
    int sor_colour; /* the colour a parallel SOR pass updates */
    float *halo;    /* per block of rows: weights of the row above it */
    long grain;     /* rows per block */
} var_ctx;

/* Robust smoothness weights alpha/2 Psi'(|grad(W + dW)|^2) of one colour
 * row with forward differences (zero across the last column: elements
 * k >= lim; hy = 0 on the last row): r = the right neighbours, d = the ones
 * below. (GCC honours restrict on parameters only, hence the long lists.) */
MOTION_KERNEL
static void var_weights_row(int n, int lim, float hy, float alpha2, const float *restrict wu,
                            const float *restrict du, const float *restrict wv,
                            const float *restrict dv, const float *restrict wur,
                            const float *restrict dur, const float *restrict wvr,
                            const float *restrict dvr, const float *restrict wud,
                            const float *restrict dud, const float *restrict wvd,
                            const float *restrict dvd, float *restrict wr, float *restrict wd)
{
    float e2 = VAR_EPSILON * VAR_EPSILON;
    for (int k = 0; k < n; k++) {
        float hx = k < lim ? 1.f : 0.f;
        float tu = wu[k] + du[k], tv = wv[k] + dv[k];
        float ux = hx * ((wur[k] + dur[k]) - tu), vx = hx * ((wvr[k] + dvr[k]) - tv);
        float uy = hy * ((wud[k] + dud[k]) - tu), vy = hy * ((wvd[k] + dvd[k]) - tv);
        float s = alpha2 / sqrtf(ux * ux + vx * vx + uy * uy + vy * vy + e2);
        wr[k] = hx * s;
        wd[k] = hy * s;
    }
}

/* The weights of image row y, both colours, into wr[c], wd[c]. */
static void var_weights_at(const var_ctx *v, int y, float *const wr[2], float *const wd[2])
{
    rb_geom g = v->g;
    for (int c = 0; c < 2; c++) {
        int p = (y + c) & 1, o = 1 - c;
        var_weights_row(rb_len(g, c, y), (g.w - p) / 2, y < g.h - 1 ? 1.f : 0.f, v->alpha2,
                        rb_row(v->wu, g, c, y), rb_row(v->du, g, c, y), rb_row(v->wv, g, c, y),
                        rb_row(v->dv, g, c, y), rb_row(v->wu, g, o, y) + p,
                        rb_row(v->du, g, o, y) + p, rb_row(v->wv, g, o, y) + p,
                        rb_row(v->dv, g, o, y) + p, rb_row(v->wu, g, o, y + 1),
                        rb_row(v->du, g, o, y + 1), rb_row(v->wv, g, o, y + 1),
                        rb_row(v->dv, g, o, y + 1), wr[c], wd[c]);
    }
}

/* The linear system of one fixed-point iteration for one colour row: data
 * terms (brightness and gradient constancy, each normalised by its gradient
 * magnitude, robust weight at W + dW) plus the smoothness couplings to the 4
 * neighbours. Stores the reciprocals of the diagonal. Neighbours in the
 * other colour: *l[k] left, *l[k + 1] right, *u above, *d below; er/eb the
 * pixel's own edge weights (right, below), el/ea its left and upper
 * neighbours'. */
MOTION_KERNEL
static void var_system_row(int n, float delta2, float gamma2, const float *restrict ix,
                           const float *restrict iy, const float *restrict iz,
                           const float *restrict ixx, const float *restrict ixy,
                           const float *restrict iyy, const float *restrict ixz,
                           const float *restrict iyz, const float *restrict du,
                           const float *restrict dv, const float *restrict wu,
                           const float *restrict wv, const float *restrict wr,
                           const float *restrict wd, const float *restrict wrl,
                           const float *restrict wdu, const float *restrict wul,
                           const float *restrict wvl, const float *restrict wuu,
                           const float *restrict wvu, const float *restrict wud,
                           const float *restrict wvd, float *restrict ia11, float *restrict a12,
                           float *restrict ia22, float *restrict b1, float *restrict b2)
{
    float z2 = VAR_ZETA * VAR_ZETA, e2 = VAR_EPSILON * VAR_EPSILON;
    for (int k = 0; k < n; k++) {
        /* brightness constancy, normalised by |grad I|^2 + zeta^2 */
        float rn = 1 / (ix[k] * ix[k] + iy[k] * iy[k] + z2);
        float ik = iz[k] + ix[k] * du[k] + iy[k] * dv[k];
        float wt = delta2 / sqrtf(ik * ik * rn + e2) * rn;
        float s11 = wt * ix[k] * ix[k] + z2, s12 = wt * ix[k] * iy[k];
        float s22 = wt * iy[k] * iy[k] + z2;
        float r1 = -wt * iz[k] * ix[k], r2 = -wt * iz[k] * iy[k];
        /* gradient constancy, each component normalised alike */
        float rx = 1 / (ixx[k] * ixx[k] + ixy[k] * ixy[k] + z2);
        float ry = 1 / (iyy[k] * iyy[k] + ixy[k] * ixy[k] + z2);
        float kx = ixz[k] + ixx[k] * du[k] + ixy[k] * dv[k];
        float ky = iyz[k] + ixy[k] * du[k] + iyy[k] * dv[k];
        float wg = gamma2 / sqrtf(kx * kx * rx + ky * ky * ry + e2);
        float gx = wg * rx, gy = wg * ry;
        s11 += gx * ixx[k] * ixx[k] + gy * ixy[k] * ixy[k];
        s12 += gx * ixx[k] * ixy[k] + gy * ixy[k] * iyy[k];
        s22 += gx * ixy[k] * ixy[k] + gy * iyy[k] * iyy[k];
        r1 -= gx * ixx[k] * ixz[k] + gy * ixy[k] * iyz[k];
        r2 -= gx * ixy[k] * ixz[k] + gy * iyy[k] * iyz[k];
        /* smoothness, acting on W; dW enters in the SOR */
        float er = wr[k], eb = wd[k], el = wrl[k], ea = wdu[k];
        float sw = er + eb + el + ea;
        r1 += er * (wul[k + 1] - wu[k]) - el * (wu[k] - wul[k]) + eb * (wud[k] - wu[k]) -
              ea * (wu[k] - wuu[k]);
        r2 += er * (wvl[k + 1] - wv[k]) - el * (wv[k] - wvl[k]) + eb * (wvd[k] - wv[k]) -
              ea * (wv[k] - wvu[k]);
        ia11[k] = 1 / (s11 + sw);
        a12[k] = s12;
        ia22[k] = 1 / (s22 + sw);
        b1[k] = r1;
        b2[k] = r2;
    }
}

/* Weights and system of rows [begin, end), row by row: the system of row y
 * needs the weights of rows y (left neighbours) and y - 1 (upper ones). The
 * upper neighbours of the block's first row belong to another block, which
 * may not have run: their weights are recomputed into this block's halo. */
static int var_linearise_range(void *vctx, long begin, long end)
{
    const var_ctx *v = vctx;
    rb_geom g = v->g;
    const float *above[2] = { NULL, NULL }; /* wd of row begin - 1, per colour */
    if (begin > 0) {
        float *halo = v->halo + (size_t)(begin / v->grain) * 4 * g.cs;
        float *hr[2] = { halo + 1, halo + g.cs + 1 }, *hd[2] = { halo + 2 * g.cs + 1,
                                                              halo + 3 * g.cs + 1 };
        var_weights_at(v, (int)begin - 1, hr, hd);
        above[0] = hd[0];
        above[1] = hd[1];
    }
    for (long yy = begin; yy < end; yy++) {
        int y = (int)yy;
        float *wr[2] = { rb_row(v->wr, g, 0, y), rb_row(v->wr, g, 1, y) };
        float *wd[2] = { rb_row(v->wd, g, 0, y), rb_row(v->wd, g, 1, y) };
        var_weights_at(v, y, wr, wd);
        for (int c = 0; c < 2; c++) {
            int p = (y + c) & 1, o = 1 - c;
            const float *wdu = y == begin && above[o] ? above[o] : rb_row(v->wd, g, o, y - 1);
#define OWN(P) rb_row(v->P, g, c, y)
            var_system_row(rb_len(g, c, y), v->delta2, v->gamma2, OWN(ix), OWN(iy), OWN(iz),
                           OWN(ixx), OWN(ixy), OWN(iyy), OWN(ixz), OWN(iyz), OWN(du), OWN(dv),
                           OWN(wu), OWN(wv), OWN(wr), OWN(wd), rb_row(v->wr, g, o, y) - 1 + p, wdu,
                           rb_row(v->wu, g, o, y) - 1 + p, rb_row(v->wv, g, o, y) - 1 + p,
                           rb_row(v->wu, g, o, y - 1), rb_row(v->wv, g, o, y - 1),
                           rb_row(v->wu, g, o, y + 1), rb_row(v->wv, g, o, y + 1), OWN(ia11),
                           OWN(a12), OWN(ia22), OWN(b1), OWN(b2));
#undef OWN
        }
    }
    return 0;
}

/* One SOR half-sweep of one colour row: dW at each pixel of that colour
 * from the other colour's (Gauss-Seidel on the 2x2 block, over-relaxed).
 * Neighbours in the other colour: *l[k] left, *l[k + 1] right, *u above,
 * *d below. */
MOTION_KERNEL
static void var_sor_kernel(int n, float om, const float *restrict wrl, const float *restrict dul,
                           const float *restrict dvl, const float *restrict wdu,
                           const float *restrict duu, const float *restrict dvu,
                           const float *restrict dud, const float *restrict dvd,
                           const float *restrict wr, const float *restrict wd,
                           const float *restrict ia11, const float *restrict a12,
                           const float *restrict ia22, const float *restrict b1,
                           const float *restrict b2, float *restrict du, float *restrict dv)
{
    for (int k = 0; k < n; k++) {
        float su = wrl[k] * dul[k] + wr[k] * dul[k + 1] + wdu[k] * duu[k] + wd[k] * dud[k];
        float sv = wrl[k] * dvl[k] + wr[k] * dvl[k + 1] + wdu[k] * dvu[k] + wd[k] * dvd[k];
        float a = du[k] + om * ((su + b1[k] - a12[k] * dv[k]) * ia11[k] - du[k]);
        du[k] = a;
        dv[k] = dv[k] + om * ((sv + b2[k] - a12[k] * a) * ia22[k] - dv[k]);
    }
}

static void var_sor_row(const var_ctx *v, int c, int y)
{
    rb_geom g = v->g;
    int p = (y + c) & 1, o = 1 - c;
    var_sor_kernel(rb_len(g, c, y), v->omega, rb_row(v->wr, g, o, y) - 1 + p,
                   rb_row(v->du, g, o, y) - 1 + p, rb_row(v->dv, g, o, y) - 1 + p,
                   rb_row(v->wd, g, o, y - 1), rb_row(v->du, g, o, y - 1),
                   rb_row(v->dv, g, o, y - 1), rb_row(v->du, g, o, y + 1),
                   rb_row(v->dv, g, o, y + 1), rb_row(v->wr, g, c, y), rb_row(v->wd, g, c, y),
                   rb_row(v->ia11, g, c, y), rb_row(v->a12, g, c, y), rb_row(v->ia22, g, c, y),
                   rb_row(v->b1, g, c, y), rb_row(v->b2, g, c, y), rb_row(v->du, g, c, y),
                   rb_row(v->dv, g, c, y));
}

static int var_sor_range(void *vctx, long begin, long end)
{
    const var_ctx *v = vctx;
    for (long y = begin; y < end; y++) var_sor_row(v, v->sor_colour, (int)y);
    return 0;
}

/* [-1 0 1] differences with replicated borders (OpenCV's Sobel, ksize 1). */
static void diff_x(const float *s, int w, int h, float *d)
{
    for (int y = 0; y < h; y++) {
        const float *r = s + (size_t)y * w;
        float *o = d + (size_t)y * w;
        if (w == 1) {
            o[0] = 0;
            continue;
        }
        o[0] = r[1] - r[0];
        for (int x = 1; x < w - 1; x++) o[x] = r[x + 1] - r[x - 1];
        o[w - 1] = r[w - 1] - r[w - 2];
    }
}

static void diff_y(const float *s, int w, int h, float *d)
{
    for (int y = 0; y < h; y++) {
        const float *u = s + (size_t)(y > 0 ? y - 1 : 0) * w;
        const float *n = s + (size_t)(y < h - 1 ? y + 1 : h - 1) * w;
        float *o = d + (size_t)y * w;
        for (int x = 0; x < w; x++) o[x] = n[x] - u[x];
    }
}

/* I1 warped by the flow, bilinear, each of the 4 taps clamped to the image
 * (OpenCV's remap with BORDER_REPLICATE); one row. With q32, positions are
 * rounded to 1/32 pixel first, as remap's interpolation tables do. */
MOTION_KERNEL MOTION_NOTRAP
static void warp_row(int w, int h, int y, const float *restrict i1, const float *restrict u,
                     const float *restrict v, int q32, float *restrict out)
{
    for (int x = 0; x < w; x++) {
        float xf = (float)x + u[x], yf = (float)y + v[x];
        if (q32) {
            xf = rintf(xf * 32) / 32;
            yf = rintf(yf * 32) / 32;
        }
        float fx0 = floorf(xf), fy0 = floorf(yf);
        float ax = xf - fx0, ay = yf - fy0;
        /* clamp in float first: the flow may point far outside (or be NaN) */
        fx0 = fx0 >= -1 ? (fx0 <= (float)w ? fx0 : (float)w) : -1;
        fy0 = fy0 >= -1 ? (fy0 <= (float)h ? fy0 : (float)h) : -1;
        int x0 = (int)fx0, y0 = (int)fy0;
        int xa = x0 < 0 ? 0 : x0, xb = x0 + 1 > w - 1 ? w - 1 : x0 + 1;
        int ya = y0 < 0 ? 0 : y0, yb = y0 + 1 > h - 1 ? h - 1 : y0 + 1;
        xa = xa > w - 1 ? w - 1 : xa;
        xb = xb < 0 ? 0 : xb;
        ya = ya > h - 1 ? h - 1 : ya;
        yb = yb < 0 ? 0 : yb;
        float p00 = i1[ya * w + xa], p01 = i1[ya * w + xb];
        float p10 = i1[yb * w + xa], p11 = i1[yb * w + xb];
        out[x] = (1 - ay) * ((1 - ax) * p00 + ax * p01) + ay * ((1 - ax) * p10 + ax * p11);
    }
}

static void warp(const float *i1, const float *u, const float *v, int w, int h, int q32,
                 float *out)
{
    for (int y = 0; y < h; y++)
        warp_row(w, h, y, i1, u + (size_t)y * w, v + (size_t)y * w, q32, out + (size_t)y * w);
}

/* Refines (u, v) in place: var_refine_iters fixed-point iterations of
 * var_sor_iters SOR sweeps. b: buffers sized for at least this scale and
 * nt threads. */
int dis_var_refine(const float *i0, const float *i1, int w, int h, float *u, float *v,
                   const dis_config *cfg, const var_buffers *b, int nt)
{
    rb_geom g = rb_make(w, h);
    var_ctx c = { .g = g };
    float **pl[19] = { &c.wu, &c.wv, &c.du, &c.dv, &c.ix, &c.iy, &c.iz, &c.ixx, &c.ixy, &c.iyy,
                       &c.ixz, &c.iyz, &c.ia11, &c.a12, &c.ia22, &c.b1, &c.b2, &c.wr, &c.wd };
    for (int k = 0; k < 19; k++) *pl[k] = b->split[k];
    c.alpha2 = cfg->var_alpha / 2;
    c.delta2 = cfg->var_delta / 2;
    c.gamma2 = cfg->var_gamma / 2;
    c.omega = cfg->var_omega;
    size_t n = (size_t)w * h;
    float *t0 = b->tmp[0], *t1 = b->tmp[1], *t2 = b->tmp[2], *t3 = b->tmp[3];

    /* I1 warped by W; the data terms are linearised around it. Derivatives
     * of the average (t0) and of the difference (t1). */
    warp(i1, u, v, w, h, cfg->opencv_rounding, t0);
    for (size_t i = 0; i < n; i++) {
        t1[i] = t0[i] - i0[i];
        t0[i] = 0.5f * i0[i] + 0.5f * t0[i];
    }
    rb_split(t1, g, c.iz);
    diff_x(t1, w, h, t2);
    rb_split(t2, g, c.ixz);
    diff_y(t1, w, h, t2);
    rb_split(t2, g, c.iyz);
    diff_x(t0, w, h, t1);
    rb_split(t1, g, c.ix);
    diff_y(t0, w, h, t3);
    rb_split(t3, g, c.iy);
    diff_x(t1, w, h, t2);
    rb_split(t2, g, c.ixx);
    diff_y(t1, w, h, t2);
    rb_split(t2, g, c.ixy);
    diff_y(t3, w, h, t2);
    rb_split(t2, g, c.iyy);
    rb_split(u, g, c.wu);
    rb_split(v, g, c.wv);
    memset(c.du, 0, sizeof(float) * 2 * g.cp);
    memset(c.dv, 0, sizeof(float) * 2 * g.cp);
    rb_clear_pads(c.wr, g);
    rb_clear_pads(c.wd, g);

    int big = nt > 1 && (long)w * h >= DIS_PAR_PIXELS;
    int sor_par = nt > 1 && (long)w * h >= DIS_PAR_BIG_PIXELS;
    c.halo = b->halo;
    c.grain = big ? (h + nt - 1) / nt : h;
    int rc;
    for (int it = 0; it < cfg->var_refine_iters; it++) {
        rc = big ? gl_parallel_for(h, c.grain, var_linearise_range, &c)
                 : var_linearise_range(&c, 0, h);
        if (rc < 0) return rc;
        int halves = 2 * cfg->var_sor_iters;
        if (sor_par) {
            for (int m = 0; m < halves; m++) {
                c.sor_colour = m & 1;
                if ((rc = gl_parallel_for(h, 0, var_sor_range, &c)) < 0) return rc;
            }
        } else {
            /* All half-sweeps as one wavefront: half-sweep m runs on row
             * t - m at step t, after half-sweep m - 1 has passed rows
             * t - m - 1 .. t - m + 1 and before m + 1 reaches them, so
             * every update sees exactly what the plain sweeps would. */
            for (int t = 0; t < h + halves - 1; t++)
                for (int m = 0; m < halves; m++) {
                    int r = t - m;
                    if (r >= 0 && r < h) var_sor_row(&c, m & 1, r);
                }
        }
    }
    /* W + dW back to the plain layout */
    for (int y = 0; y < h; y++)
        for (int col = 0; col < 2; col++) {
            const float *wu = rb_row(c.wu, g, col, y), *du = rb_row(c.du, g, col, y);
            const float *wv = rb_row(c.wv, g, col, y), *dv = rb_row(c.dv, g, col, y);
            int p = (y + col) & 1, m = rb_len(g, col, y);
            float *ou = u + (size_t)y * w + p, *ov = v + (size_t)y * w + p;
            for (int k = 0; k < m; k++) {
                ou[2 * k] = wu[k] + du[k];
                ov[2 * k] = wv[k] + dv[k];
            }
        }
    return 0;
}
