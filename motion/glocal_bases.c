/* glocal_bases.c — homography flow bases (BasesHomo, Ye et al., "Motion Basis
 * Learning for Unsupervised Deep Homography Estimation with Subspace
 * Projection", ICCV 2021), flow <-> homography, and the per-pair metrics. */
#include <math.h>
#include <string.h>

#include "motion/flow.h"
#include "motion/glocal.h"
#include "nn/mat3.h"

int glocal_bases_compute(int width, int height, float *bases)
{
    if (width < 2 || height < 2 || !bases)
        return gl_error(GL_EINVAL, "glocal_bases_compute: need a grid of at least 2x2, got %dx%d",
                        width, height);
    const long hw = (long)width * height, n = 2 * hw;
    double *v = gl_malloc(sizeof(double) * GLOCAL_NBASES * n);
    if (!v) return GL_ENOMEM;
    /* Centred coordinates scaled to [-1, 1] keep the 8 fields comparable. */
    const double cx = 0.5 * (width - 1), cy = 0.5 * (height - 1);
    const double s = 1.0 / (cx > cy ? cx : cy), e = 1e-3;
    static const int entry[GLOCAL_NBASES] = { 2, 5, 1, 3, 0, 4, 6, 7 };
    for (int k = 0; k < GLOCAL_NBASES; k++) {
        double hk[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
        hk[entry[k]] += e;
        double *vk = v + (long)k * n;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) {
                double xn = (x - cx) * s, yn = (y - cy) * s;
                double w = hk[6] * xn + hk[7] * yn + hk[8];
                double xo = (hk[0] * xn + hk[1] * yn + hk[2]) / w;
                double yo = (hk[3] * xn + hk[4] * yn + hk[5]) / w;
                vk[(long)y * width + x] = (xo - xn) / s;
                vk[hw + (long)y * width + x] = (yo - yn) / s;
            }
    }
    /* Modified Gram-Schmidt: the Q of a thin QR of the 2HW x 8 matrix. */
    for (int k = 0; k < GLOCAL_NBASES; k++) {
        double *vk = v + (long)k * n;
        for (int j = 0; j < k; j++) {
            const double *vj = v + (long)j * n;
            double d = 0;
            for (long i = 0; i < n; i++) d += vk[i] * vj[i];
            for (long i = 0; i < n; i++) vk[i] -= d * vj[i];
        }
        double nrm = 0;
        for (long i = 0; i < n; i++) nrm += vk[i] * vk[i];
        nrm = sqrt(nrm);
        if (!(nrm > 1e-12)) {
            gl_free(v);
            return gl_error(GL_ENUMERIC, "glocal_bases_compute: basis %d is degenerate at %dx%d",
                            k, width, height);
        }
        for (long i = 0; i < n; i++) vk[i] /= nrm;
    }
    for (int k = 0; k < GLOCAL_NBASES; k++) {
        const double *vk = v + (long)k * n;
        double mx = 0;
        for (long i = 0; i < n; i++) mx = fmax(mx, fabs(vk[i]));
        for (long i = 0; i < n; i++) bases[(long)k * n + i] = (float)(vk[i] / mx);
    }
    gl_free(v);
    return 0;
}

void glocal_bases_combine(const float *bases, const float coeffs[GLOCAL_NBASES], int width,
                          int height, float *flow)
{
    const long n = 2L * width * height;
    for (long i = 0; i < n; i++) flow[i] = 0;
    for (int k = 0; k < GLOCAL_NBASES; k++) {
        const float *bk = bases + (long)k * n;
        const float c = coeffs[k];
        for (long i = 0; i < n; i++) flow[i] += c * bk[i];
    }
}

int glocal_flow_to_homography(const float *flow, int width, int height, int step, double h[9])
{
    if (!flow || width < 2 || height < 2 || step < 1)
        return gl_error(GL_EINVAL, "glocal_flow_to_homography: bad size %dx%d or step %d", width,
                        height, step);
    int nx = (width - 1) / step + 1 + ((width - 1) % step != 0);
    int ny = (height - 1) / step + 1 + ((height - 1) % step != 0);
    double *src = gl_malloc(sizeof(double) * 4 * nx * ny);
    if (!src) return GL_ENOMEM;
    double *dst = src + 2 * nx * ny;
    int m = 0;
    const long hw = (long)width * height;
    for (int j = 0; j < ny; j++) {
        int y = j * step < height - 1 ? j * step : height - 1;
        for (int i = 0; i < nx; i++) {
            int x = i * step < width - 1 ? i * step : width - 1;
            long p = (long)y * width + x;
            src[2 * m] = x;
            src[2 * m + 1] = y;
            dst[2 * m] = x + (double)flow[p];
            dst[2 * m + 1] = y + (double)flow[hw + p];
            m++;
        }
    }
    int rc = homography_fit_dlt(src, dst, m, NULL, h);
    gl_free(src);
    if (rc < 0) return gl_error_prefix(rc, "glocal_flow_to_homography");
    return 0;
}

int glocal_homography_to_flow(const double h[9], int width, int height, float *flow)
{
    const long hw = (long)width * height;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            double w = h[6] * x + h[7] * y + h[8];
            if (!(fabs(w) > 1e-12))
                return gl_error(GL_ENUMERIC,
                                "glocal_homography_to_flow: pixel (%d, %d) maps to infinity", x, y);
            long p = (long)y * width + x;
            flow[p] = (float)((h[0] * x + h[1] * y + h[2]) / w - x);
            flow[hw + p] = (float)((h[3] * x + h[4] * y + h[5]) / w - y);
        }
    return 0;
}

void glocal_homography_rescale(const double h[9], int w0, int h0, int w1, int h1, double out[9])
{
    /* x1 = (x0 + 0.5) * w1 / w0 - 0.5: pixel centres map to pixel centres. */
    double sx = (double)w1 / w0, sy = (double)h1 / h0;
    double s[9] = { sx, 0, 0.5 * sx - 0.5, 0, sy, 0.5 * sy - 0.5, 0, 0, 1 };
    double si[9] = { 1 / sx, 0, (0.5 - 0.5 * sx) / sx, 0, 1 / sy, (0.5 - 0.5 * sy) / sy, 0, 0, 1 };
    double t[9];
    gl_mat3_mul(h, si, t);
    gl_mat3_mul(s, t, out);
    gl_mat3_normalize(out);
}

int glocal_metrics_pair(const double h_est[9], const double h_gt[9], const float *est_global,
                        const float *gt_global, const float *est_local, const float *gt_local,
                        const float *est_mask, const uint8_t *gt_mask, int width, int height,
                        glocal_pair_metrics *out)
{
    if (!h_est || !h_gt || !out || width < 2 || height < 2)
        return gl_error(GL_EINVAL, "glocal_metrics_pair: missing homography or bad size");
    int rc = homography_corner_error(h_est, h_gt, width, height, &out->corner);
    if (rc < 0) return rc;
    const long hw = (long)width * height;
    out->global_epe = out->local_epe_fg = out->leakage = out->iou = NAN;
    out->inter = out->uni = 0;
    if (est_global && gt_global) {
        double s = 0;
        for (long p = 0; p < hw; p++)
            s += hypot(est_global[p] - gt_global[p], est_global[hw + p] - gt_global[hw + p]);
        out->global_epe = s / hw;
    }
    if (est_local && gt_local && gt_mask) {
        double sf = 0, sb = 0;
        long nf = 0, nb = 0;
        for (long p = 0; p < hw; p++) {
            if (gt_mask[p]) {
                sf += hypot(est_local[p] - gt_local[p], est_local[hw + p] - gt_local[hw + p]);
                nf++;
            } else {
                sb += hypot(est_local[p], est_local[hw + p]);
                nb++;
            }
        }
        if (nf) out->local_epe_fg = sf / nf;
        if (nb) out->leakage = sb / nb;
    }
    if (est_mask && gt_mask) {
        long inter = 0, uni = 0;
        for (long p = 0; p < hw; p++) {
            int e = est_mask[p] >= 0.5f, g = gt_mask[p] != 0;
            inter += e && g;
            uni += e || g;
        }
        if (uni) out->iou = (double)inter / uni;
        out->inter = inter;
        out->uni = uni;
    }
    return 0;
}
