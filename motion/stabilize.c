/* Video stabilization: the plan (camera path, crop window), the warp, and the
 * comparison measures. The smooth path itself, L1-optimal (GLPK) or Gaussian,
 * is stabilize_path.c. See motion/stabilize.h.
 *
 * Transforms inside are affine 3x3 matrices in centred pixel coordinates
 * (motion/stabilize_private.h). The API speaks plain pixel coordinates
 * (motion/flow.h). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "motion/stabilize.h"
#include "motion/stabilize_private.h"
#include "nn/mat3.h"

stab_config stab_config_default(void)
{
    return (stab_config){
        .path = STAB_PATH_L1, .smoothing = 15, .crop_mode = STAB_CROP_AUTO, .crop = 0.8,
        .crop_min = 0.8, .w0 = 1, .w1 = 10, .w2 = 1, .w3 = 100, .linear_weight = 0,
        .max_zoom = 0.1, .max_skew = 0.1, .max_skew_sum = 0.05, .max_aniso = 0.1,
        .window = 120, .overlap = 30,
    };
}

int stab_config_validate(const stab_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "stab_config: NULL");
    if (c->path != STAB_PATH_L1 && c->path != STAB_PATH_GAUSSIAN)
        return gl_error(GL_EINVAL, "stab_config.path: expected STAB_PATH_L1 or STAB_PATH_GAUSSIAN, got %d", (int)c->path);
    if (c->smoothing < 1 || c->smoothing > 1000)
        return gl_error(GL_EINVAL, "stab_config.smoothing: expected 1..1000 frames, got %d", c->smoothing);
    if (c->crop_mode != STAB_CROP_AUTO && c->crop_mode != STAB_CROP_FIXED && c->crop_mode != STAB_CROP_NONE)
        return gl_error(GL_EINVAL, "stab_config.crop_mode: expected AUTO, FIXED or NONE, got %d", (int)c->crop_mode);
    if (!(c->crop > 0 && c->crop <= 1))
        return gl_error(GL_EINVAL, "stab_config.crop: expected a fraction in (0, 1], got %g", c->crop);
    if (!(c->crop_min > 0 && c->crop_min <= 1))
        return gl_error(GL_EINVAL, "stab_config.crop_min: expected a fraction in (0, 1], got %g", c->crop_min);
    if (!(c->w0 >= 0 && c->w1 >= 0 && c->w2 >= 0 && c->w3 >= 0 && isfinite(c->w0 + c->w1 + c->w2 + c->w3) &&
          c->w1 + c->w2 + c->w3 > 0))
        return gl_error(GL_EINVAL, "stab_config.w0, w1, w2, w3: expected finite weights >= 0, w1..w3 not all 0 "
                        "(got %g, %g, %g, %g)", c->w0, c->w1, c->w2, c->w3);
    if (!(c->linear_weight >= 0 && isfinite(c->linear_weight)))
        return gl_error(GL_EINVAL, "stab_config.linear_weight: expected >= 0 (0 = half the diagonal), got %g",
                        c->linear_weight);
    if (!(c->max_zoom >= 0 && c->max_zoom < 1 && c->max_skew >= 0 && c->max_skew < 1 &&
          c->max_skew_sum >= 0 && c->max_skew_sum < 2 && c->max_aniso >= 0 && c->max_aniso < 2))
        return gl_error(GL_EINVAL, "stab_config: proximity bounds max_zoom %g, max_skew %g, max_skew_sum %g, "
                        "max_aniso %g: expected [0, 1), [0, 1), [0, 2), [0, 2)",
                        c->max_zoom, c->max_skew, c->max_skew_sum, c->max_aniso);
    if (c->window < 16 || c->overlap < 0 || c->window - c->overlap < 8)
        return gl_error(GL_EINVAL, "stab_config.window %d, overlap %d: expected window >= 16 and "
                        "window - overlap >= 8", c->window, c->overlap);
    return 0;
}

void stab_plan_free(stab_plan *p)
{
    if (!p) return;
    gl_free(p->update);
    gl_free(p->warp);
    memset(p, 0, sizeof *p);
}

/* ---- geometry ---------------------------------------------------------------------- */

/* pixel -> centred: m_c = T m T^-1, T = translation by (-cx, -cy). */
static void to_centred(const double m[9], double cx, double cy, double out[9])
{
    double t[9] = { 1, 0, -cx, 0, 1, -cy, 0, 0, 1 }, ti[9] = { 1, 0, cx, 0, 1, cy, 0, 0, 1 }, u[9];
    gl_mat3_mul(m, ti, u);
    gl_mat3_mul(t, u, out);
}

static void from_centred(const double m[9], double cx, double cy, double out[9])
{
    to_centred(m, -cx, -cy, out);
}

static int finite9(const double m[9])
{
    for (int i = 0; i < 9; i++)
        if (!isfinite(m[i])) return 0;
    return 1;
}

int stab_affine_fit(const double h[9], int width, int height, double a[9])
{
    if (!h || !a || width < 2 || height < 2)
        return gl_error(GL_EINVAL, "stab_affine_fit: need a homography and a frame >= 2x2 (got %dx%d)", width, height);
    /* Centred grid: its normal matrix is diagonal, so the solve is exact and
     * well conditioned for any frame size. */
    const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
    double sxx = 0, syy = 0, n = 0, bx[3] = { 0 }, by[3] = { 0 };
    for (int j = 0; j < 5; j++)
        for (int i = 0; i < 5; i++) {
            double x = (width - 1) * i / 4.0, y = (height - 1) * j / 4.0;
            double w = h[6] * x + h[7] * y + h[8];
            if (!(fabs(w) > 1e-12) || !isfinite(w))
                return gl_error(GL_ENUMERIC, "stab_affine_fit: the homography sends (%g, %g) to infinity", x, y);
            double u = (h[0] * x + h[1] * y + h[2]) / w - cx, v = (h[3] * x + h[4] * y + h[5]) / w - cy;
            double xc = x - cx, yc = y - cy;
            sxx += xc * xc;
            syy += yc * yc;
            n += 1;
            bx[0] += u * xc; bx[1] += u * yc; bx[2] += u;
            by[0] += v * xc; by[1] += v * yc; by[2] += v;
        }
    double ac[9] = { bx[0] / sxx, bx[1] / syy, bx[2] / n, by[0] / sxx, by[1] / syy, by[2] / n, 0, 0, 1 };
    /* ac maps centred -> centred; back to pixels */
    from_centred(ac, cx, cy, a);
    a[6] = a[7] = 0;
    a[8] = 1;
    return finite9(a) ? 0 : gl_error(GL_ENUMERIC, "stab_affine_fit: not finite");
}

/* stab_window_fit on a centred affine m with half sides hx, hy. */
static double window_fit_c(const double m[9], double hx, double hy)
{
    const double eps = 1e-9;
    double s = 1;
    for (int axis = 0; axis < 2; axis++) {
        double b = m[3 * axis + 2], hh = axis ? hy : hx;
        if (!(fabs(b) <= hh + eps)) return 0;
        for (int c = 0; c < 4; c++) {
            double rx = (c & 1) ? hx : -hx, ry = (c & 2) ? hy : -hy;
            double k = m[3 * axis] * rx + m[3 * axis + 1] * ry;
            double lim = k > 0 ? (hh - b) / k : k < 0 ? (hh + b) / -k : INFINITY;
            if (lim < s) s = lim;
        }
    }
    return s < 0 ? 0 : s;
}

double stab_window_fit(const double m[9], int width, int height)
{
    if (!m || width < 2 || height < 2 || !finite9(m)) return 0;
    const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
    double mc[9];
    to_centred(m, cx, cy, mc);
    return window_fit_c(mc, cx, cy);
}

/* ---- the plan ---------------------------------------------------------------------- */

/* Shortens a centred update towards the identity until window s fits:
 * the largest a in [0, 1] (bisection) with fit(I + a (B - I)) >= s. */
static int shorten(double B[9], double s, double hx, double hy)
{
    if (window_fit_c(B, hx, hy) >= s) return 0;
    double lo = 0, hi = 1, I[9], m[9];
    stab_mat_identity(I);
    for (int it = 0; it < 50; it++) {
        double a = 0.5 * (lo + hi);
        for (int e = 0; e < 9; e++) m[e] = I[e] + a * (B[e] - I[e]);
        if (window_fit_c(m, hx, hy) >= s) lo = a;
        else hi = a;
    }
    for (int e = 0; e < 9; e++) B[e] = I[e] + lo * (B[e] - I[e]);
    return 1;
}

int stab_plan_compute(const double *h, int n, int width, int height, const stab_config *c,
                      stab_plan *out)
{
    int rc;
    if (!out) return gl_error(GL_EINVAL, "stab_plan_compute: out is NULL");
    memset(out, 0, sizeof *out);
    if (n < 1 || width < 8 || height < 8 || (n > 1 && !h))
        return gl_error(GL_EINVAL, "stab_plan_compute: need n >= 1 frames of >= 8x8 and n-1 homographies "
                        "(got n=%d, %dx%d)", n, width, height);
    if ((rc = stab_config_validate(c)) < 0) return rc;
    const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
    double *F = gl_calloc((size_t)9 * n, sizeof(double));
    double *C = gl_calloc((size_t)9 * n, sizeof(double));
    double *Bc = gl_calloc((size_t)9 * n, sizeof(double));
    double *P = gl_calloc((size_t)9 * n, sizeof(double));
    out->update = gl_calloc((size_t)9 * n, sizeof(double));
    out->warp = gl_calloc((size_t)9 * n, sizeof(double));
    if (!F || !C || !Bc || !P || !out->update || !out->warp) { rc = GL_ENOMEM; goto fail; }
    /* 1. F_t = aff(h[t-1]^-1) centred; C_t = C_{t-1} F_t */
    stab_mat_identity(F);
    stab_mat_identity(C);
    for (int t = 1; t < n; t++) {
        const double *ht = h + 9 * (t - 1);
        double inv[9], a[9];
        if (!finite9(ht) || gl_mat3_inverse(ht, inv) < 0 || !finite9(inv))
            { rc = gl_error(GL_EINVAL, "stab_plan_compute: homography %d (frame %d -> %d) is not finite and "
                            "invertible", t - 1, t - 1, t); goto fail; }
        if ((rc = stab_affine_fit(inv, width, height, a)) < 0)
            { gl_error_prefix(rc, "stab_plan_compute: homography %d", t - 1); goto fail; }
        to_centred(a, cx, cy, F + 9 * t);
        gl_mat3_mul(C + 9 * (t - 1), F + 9 * t, C + 9 * t);
    }
    /* 2. the smooth path and the updates */
    double s = c->crop_mode == STAB_CROP_FIXED ? c->crop : c->crop_min;
    if (c->path == STAB_PATH_L1) {
        if ((rc = stab_l1_path(F, n, cx, cy, s, c, Bc)) < 0) goto fail;
    } else {
        stab_gaussian_stack(C, n, c->smoothing, P);
        for (int t = 0; t < n; t++) {
            double ci[9];
            if (gl_mat3_inverse(C + 9 * t, ci) < 0 || !finite9(ci))
                { rc = gl_error(GL_ENUMERIC, "stab_plan_compute: the camera path is singular at frame %d", t); goto fail; }
            gl_mat3_mul(ci, P + 9 * t, Bc + 9 * t);
        }
    }
    /* 3. the window */
    double all = 1;
    for (int t = 0; t < n; t++) {
        double f = window_fit_c(Bc + 9 * t, cx, cy);
        if (f < all) all = f;
    }
    if (c->crop_mode == STAB_CROP_NONE) s = 1;
    else if (c->crop_mode == STAB_CROP_AUTO) s = all > c->crop_min ? all : c->crop_min;
    if (c->path == STAB_PATH_GAUSSIAN && c->crop_mode != STAB_CROP_NONE)
        for (int t = 0; t < n; t++) out->limited += shorten(Bc + 9 * t, s, cx, cy);
    /* 4. the maps */
    const double S[9] = { s, 0, 0, 0, s, 0, 0, 0, 1 };
    for (int t = 0; t < n; t++) {
        double w[9];
        from_centred(Bc + 9 * t, cx, cy, out->update + 9 * t);
        gl_mat3_mul(Bc + 9 * t, S, w);
        from_centred(w, cx, cy, out->warp + 9 * t);
        if (!finite9(out->warp + 9 * t))
            { rc = gl_error(GL_ENUMERIC, "stab_plan_compute: the warp of frame %d is not finite", t); goto fail; }
    }
    out->n = n;
    out->width = width;
    out->height = height;
    out->crop = s;
    rc = 0;
fail:
    gl_free(F);
    gl_free(C);
    gl_free(Bc);
    gl_free(P);
    if (rc < 0) stab_plan_free(out);
    return rc;
}

/* ---- warp -------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *in;
    uint8_t *out;
    int W, H;
    const double *m;
} warp_job;

static int warp_rows(void *ctx, long y0, long y1)
{
    const warp_job *j = ctx;
    const int W = j->W, H = j->H;
    const double *m = j->m;
    for (long y = y0; y < y1; y++) {
        uint8_t *o = j->out + (size_t)y * W * 3;
        for (int x = 0; x < W; x++, o += 3) {
            double w = m[6] * x + m[7] * y + m[8];
            double px = (m[0] * x + m[1] * y + m[2]) / w, py = (m[3] * x + m[4] * y + m[5]) / w;
            if (!(px >= -0.5 && px <= W - 0.5 && py >= -0.5 && py <= H - 0.5)) {
                o[0] = o[1] = o[2] = 0;
                continue;
            }
            if (px < 0) px = 0;
            if (py < 0) py = 0;
            if (px > W - 1) px = W - 1;
            if (py > H - 1) py = H - 1;
            int x0 = (int)px, y0i = (int)py;
            int x1 = x0 + 1 < W ? x0 + 1 : x0, y1i = y0i + 1 < H ? y0i + 1 : y0i;
            double fx = px - x0, fy = py - y0i;
            const uint8_t *a = j->in + ((size_t)y0i * W + x0) * 3, *b = j->in + ((size_t)y0i * W + x1) * 3;
            const uint8_t *c = j->in + ((size_t)y1i * W + x0) * 3, *d = j->in + ((size_t)y1i * W + x1) * 3;
            for (int ch = 0; ch < 3; ch++) {
                double v = (1 - fy) * ((1 - fx) * a[ch] + fx * b[ch]) + fy * ((1 - fx) * c[ch] + fx * d[ch]);
                o[ch] = (uint8_t)(v + 0.5);
            }
        }
    }
    return 0;
}

int stab_warp_rgb24(const uint8_t *in, int width, int height, const double warp[9], uint8_t *out)
{
    if (!in || !out || !warp || width < 1 || height < 1)
        return gl_error(GL_EINVAL, "stab_warp_rgb24: need frames and a warp (got %dx%d)", width, height);
    if (!finite9(warp)) return gl_error(GL_EINVAL, "stab_warp_rgb24: the warp is not finite");
    warp_job j = { in, out, width, height, warp };
    return gl_parallel_for(height, 16, warp_rows, &j);
}

int stab_reduce_rgb24(const uint8_t *in, int width, int height, int k, uint8_t *out)
{
    if (!in || !out || k < 1 || width / k < 1 || height / k < 1)
        return gl_error(GL_EINVAL, "stab_reduce_rgb24: cannot reduce %dx%d by %d", width, height, k);
    const int w = width / k, h = height / k;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++) {
                unsigned sum = 0;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++)
                        sum += in[(((size_t)y * k + dy) * width + (size_t)x * k + dx) * 3 + ch];
                out[((size_t)y * w + x) * 3 + ch] = (uint8_t)((sum + k * k / 2) / (k * k));
            }
    return 0;
}

/* ---- measures ---------------------------------------------------------------------- */

/* Share of frequencies 1..5 in the one-sided power spectrum without DC
 * (numpy: |fft|^2, delete [0], keep the first (n-1)//2). */
static double low_freq_share(const double *x, int n)
{
    int half = (n - 1) / 2;
    double low = 0, all = 0;
    for (int k = 1; k <= half; k++) {
        double re = 0, im = 0;
        for (int t = 0; t < n; t++) {
            double a = -2 * M_PI * (double)k * t / n;
            re += x[t] * cos(a);
            im += x[t] * sin(a);
        }
        double p = re * re + im * im;
        all += p;
        if (k <= 5) low += p;
    }
    return all > 0 ? low / all : 1.0;
}

int stab_stability_score(const double *m, int n, double *score, double *translation,
                         double *rotation)
{
    if (!m || n < 2)
        return gl_error(GL_EINVAL, "stab_stability_score: need >= 2 homographies (got %d)", n);
    double *tr = gl_malloc(sizeof(double) * 2 * (size_t)n);
    if (!tr) return GL_ENOMEM;
    double *ro = tr + n, P[9];
    stab_mat_identity(P);
    for (int t = 0; t < n; t++) {
        if (!finite9(m + 9 * t)) {
            gl_free(tr);
            return gl_error(GL_EINVAL, "stab_stability_score: homography %d is not finite", t);
        }
        gl_mat3_mul(P, m + 9 * t, P);
        gl_mat3_normalize(P);
        tr[t] = hypot(P[2], P[5]);
        ro[t] = atan2(P[3], P[0]) * 180 / M_PI;
    }
    double st = low_freq_share(tr, n), sr = low_freq_share(ro, n);
    gl_free(tr);
    if (translation) *translation = st;
    if (rotation) *rotation = sr;
    if (score) *score = 0.5 * (st + sr);
    return 0;
}

int stab_crop_distortion(const double *m, int n, double *cropping, double *distortion)
{
    if (!m || n < 1) return gl_error(GL_EINVAL, "stab_crop_distortion: need >= 1 homography (got %d)", n);
    double cr = 0, dv = 1;
    for (int t = 0; t < n; t++) {
        double h[9];
        memcpy(h, m + 9 * t, sizeof h);
        gl_mat3_normalize(h);
        if (!finite9(h)) return gl_error(GL_EINVAL, "stab_crop_distortion: homography %d is not finite", t);
        double sc = hypot(h[0], h[1]);
        cr += sc > 0 ? 1 / sc : 0;
        /* singular values of [a b; c d] */
        double a = h[0], b = h[1], c = h[3], d = h[4];
        double T = a * a + b * b + c * c + d * d, D = a * d - b * c;
        double r = sqrt(fmax(T * T - 4 * D * D, 0));
        double s1 = sqrt(0.5 * (T + r)), s2 = sqrt(fmax(0.5 * (T - r), 0));
        double ratio = s1 > 0 ? s2 / s1 : 0;
        if (ratio < dv) dv = ratio;
    }
    cr /= n;
    if (cropping) *cropping = cr < 1 ? cr : 1;
    if (distortion) *distortion = dv;
    return 0;
}

int stab_psnr_rgb24(const uint8_t *a, const uint8_t *b, int width, int height, double window,
                    double *psnr)
{
    if (!a || !b || !psnr || width < 1 || height < 1 || !(window > 0 && window <= 1))
        return gl_error(GL_EINVAL, "stab_psnr_rgb24: need two frames and a window in (0, 1] (got %g)", window);
    int w = (int)lround(window * width), h = (int)lround(window * height);
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    int x0 = (width - w) / 2, y0 = (height - h) / 2;
    double se = 0;
    for (int y = y0; y < y0 + h; y++) {
        const uint8_t *pa = a + ((size_t)y * width + x0) * 3, *pb = b + ((size_t)y * width + x0) * 3;
        for (int i = 0; i < 3 * w; i++) {
            double d = (double)pa[i] - pb[i];
            se += d * d;
        }
    }
    double mse = se / (3.0 * w * h);
    *psnr = mse > 0 ? 10 * log10(255.0 * 255.0 / mse) : 99.0;
    if (*psnr > 99) *psnr = 99;
    return 0;
}

int stab_path_residual(const double *path, const double *ref, int n, int width, int height,
                       double *mean, double *max)
{
    if (!path || !ref || n < 1 || width < 2 || height < 2)
        return gl_error(GL_EINVAL, "stab_path_residual: need n >= 1 and a frame >= 2x2 (got %d, %dx%d)", n,
                        width, height);
    double sum = 0, mx = 0;
    const double cs[4][2] = { { 0, 0 }, { width - 1, 0 }, { 0, height - 1 }, { width - 1, height - 1 } };
    for (int t = 0; t < n; t++) {
        double ri[9], d[9];
        if (gl_mat3_inverse(ref + 9 * t, ri) < 0 || !finite9(ri) || !finite9(path + 9 * t))
            return gl_error(GL_EINVAL, "stab_path_residual: frame %d: reference not invertible or path not finite", t);
        gl_mat3_mul(ri, path + 9 * t, d);
        double e = 0;
        for (int k = 0; k < 4; k++) {
            double u, v;
            gl_mat3_apply(d, cs[k][0], cs[k][1], &u, &v);
            e += hypot(u - cs[k][0], v - cs[k][1]);
        }
        e /= 4;
        if (!isfinite(e)) return gl_error(GL_ENUMERIC, "stab_path_residual: frame %d maps a corner to infinity", t);
        sum += e;
        if (e > mx) mx = e;
    }
    if (mean) *mean = sum / n;
    if (max) *max = mx;
    return 0;
}

int stab_path_mean(const double *path, int n, double out[9])
{
    if (!path || !out || n < 1) return gl_error(GL_EINVAL, "stab_path_mean: need n >= 1 (got %d)", n);
    double acc[9] = { 0 };
    for (int t = 0; t < n; t++) {
        double h[9];
        memcpy(h, path + 9 * t, sizeof h);
        gl_mat3_normalize(h);
        for (int e = 0; e < 9; e++) acc[e] += h[e];
    }
    for (int e = 0; e < 9; e++) out[e] = acc[e] / n;
    return finite9(out) ? 0 : gl_error(GL_EINVAL, "stab_path_mean: not finite");
}

int stab_path_from_motion(const double *h, int n, double *j)
{
    if (!j || n < 1 || (n > 1 && !h)) return gl_error(GL_EINVAL, "stab_path_from_motion: need n >= 1 and n-1 homographies");
    static const double id[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    memcpy(j, id, sizeof id);
    for (int t = 0; t + 1 < n; t++) {
        gl_mat3_mul(h + 9 * t, j + 9 * t, j + 9 * (t + 1));
        gl_mat3_normalize(j + 9 * (t + 1));
        if (!finite9(j + 9 * (t + 1)))
            return gl_error(GL_EINVAL, "stab_path_from_motion: the path to frame %d is not finite", t + 1);
    }
    return 0;
}

int stab_motion_from_path(const double *p, int n, double *h)
{
    if (!p || !h || n < 1) return gl_error(GL_EINVAL, "stab_motion_from_path: need a path of n >= 1 frames");
    for (int t = 0; t + 1 < n; t++) {
        double inv[9];
        if (gl_mat3_inverse(p + 9 * t, inv) < 0 || !finite9(inv))
            return gl_error(GL_ENUMERIC, "stab_motion_from_path: frame %d of the path is singular", t);
        gl_mat3_mul(p + 9 * (t + 1), inv, h + 9 * t);
        gl_mat3_normalize(h + 9 * t);
    }
    return 0;
}

/* ---- known shake ------------------------------------------------------------------- */

static double uniform_pm1(uint64_t *state)
{
    return (double)(gl_splitmix64(state) >> 11) * 0x1.0p-53 * 2 - 1;
}

int stab_jitter_make(const stab_jitter_config *c, int n, int width, int height, double *j,
                     double *base_zoom)
{
    if (!c || !j || n < 1 || width < 8 || height < 8)
        return gl_error(GL_EINVAL, "stab_jitter_make: need a config, n >= 1 and a frame >= 8x8");
    if (!(c->shift >= 0 && c->angle >= 0 && c->zoom >= 0 && c->angle < 0.5 && c->zoom < 0.5 &&
          c->shift < 0.25 * (width < height ? width : height)))
        return gl_error(GL_EINVAL, "stab_jitter_make: amplitudes shift %g px, angle %g rad, zoom %g: expected "
                        ">= 0, shift < a quarter of the shorter side, angle and zoom < 0.5",
                        c->shift, c->angle, c->zoom);
    const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
    uint64_t st = c->seed;
    double worst = 1;
    for (int t = 0; t < n; t++) {
        double dx = c->shift * uniform_pm1(&st), dy = c->shift * uniform_pm1(&st);
        double th = c->angle * uniform_pm1(&st), z = exp(c->zoom * uniform_pm1(&st));
        double m[9] = { z * cos(th), -z * sin(th), dx, z * sin(th), z * cos(th), dy, 0, 0, 1 }, mi[9];
        memcpy(j + 9 * t, m, sizeof m);
        gl_mat3_inverse(m, mi);
        /* shaken pixel -> steady pixel is m^-1: the window it may show */
        double f = window_fit_c(mi, cx, cy);
        if (f < worst) worst = f;
    }
    if (!(worst > 0.2))
        return gl_error(GL_EINVAL, "stab_jitter_make: the jitter leaves only %.3g of the frame covered", worst);
    const double Z = 1 / worst;
    for (int t = 0; t < n; t++) {
        double zc[9] = { Z, 0, 0, 0, Z, 0, 0, 0, 1 }, m[9];
        gl_mat3_mul(zc, j + 9 * t, m);
        from_centred(m, cx, cy, j + 9 * t);
    }
    if (base_zoom) *base_zoom = Z;
    return 0;
}
