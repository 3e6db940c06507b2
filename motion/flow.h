/*
 * flow.h — the classical motion inputs glocal compares GLOCAL against:
 *
 *   - TV-L1 optical flow (Zach, Pock & Bischof, "A Duality Based Approach for
 *     Realtime TV-L1 Optical Flow", DAGM 2007), implemented as analysed in
 *     Sánchez, Meinhardt-Llopis & Facciolo, "TV-L1 Optical Flow Estimation",
 *     IPOL 2013 (equation numbers below refer to that paper): coarse-to-fine
 *     pyramid, warps, primal-dual iterations, optional median filtering
 *     (Wedel et al. 2009, as in OpenCV's DualTVL1).
 *   - Middlebury .flo files (Baker et al., "A Database and Evaluation
 *     Methodology for Optical Flow", IJCV 2011): "PIEH" = float 202021.25,
 *     int32 width, int32 height, then width*height (u, v) float32 pairs,
 *     row-major, all little-endian; |value| > 1e9 means "unknown".
 *   - The Middlebury colour coding of a flow field (same paper's colour wheel).
 *   - Homography fitting (normalised DLT, Hartley & Zisserman 2nd ed., alg.
 *     4.2; RANSAC, alg. 4.6) and "flow minus homography": the homography that
 *     best explains a flow field is its global (camera) motion, the rest is
 *     local motion. GLOCAL reuses the homography functions.
 *   - RGB difference (Wang et al., "Temporal Segment Networks", ECCV 2016),
 *     the cheapest motion input.
 *
 * Units: images are float grey levels (0..255 for 8-bit input), flow is in
 * pixels, u to the right (+x), v downwards (+y): I1(x + u, y + v) ~ I0(x, y).
 * Homographies are 3x3 row-major doubles mapping (x, y, 1) of image 0 to
 * image 1, pixel (x, y) being the centre of column x, row y.
 *
 * Ownership: a flow_field owns its planes (flow_field_new / flow_field_free);
 * every other buffer is the caller's. Nothing here keeps a pointer after it
 * returns.
 *
 * Errors: functions return 0 or a negative GL_E* code with a message
 * (gl_last_error()) that names the file or argument and what was expected.
 * Nothing here prints. The classical part needs only nn/base.h (no libtorch).
 */
#ifndef GLOCAL_MOTION_FLOW_H
#define GLOCAL_MOTION_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- flow fields -------------------------------------------------------- */

/* A dense flow field, planar (structure of arrays): u and v each hold
 * width*height floats, row-major, in pixels. */
typedef struct {
    int width, height;
    float *u; /* horizontal displacement, + right */
    float *v; /* vertical displacement, + down */
} flow_field;

/* Values whose magnitude is above this are "unknown" in .flo files. */
#define FLOW_UNKNOWN_THRESH 1e9f

/* Allocates a zero field. On failure *f is left empty ({0}). */
int flow_field_new(flow_field *f, int width, int height);
/* Frees the planes and zeroes *f; accepts an empty field. */
void flow_field_free(flow_field *f);

/* Middlebury .flo. read allocates *f (caller frees with flow_field_free);
 * write is atomic (temp file + rename). Both are bit exact. */
int flow_read_flo(const char *path, flow_field *f);
int flow_write_flo(const char *path, const flow_field *f);

/* Average end-point error sqrt((u-ug)^2 + (v-vg)^2) over the pixels whose
 * ground truth is known, ignoring `border` pixels on each side. *count (may
 * be NULL) gets the number of pixels averaged. */
int flow_epe(const flow_field *est, const flow_field *gt, int border, double *epe, long *count);

/* Middlebury colour coding into rgb (width*height*3 bytes, RGB24): hue is the
 * direction, saturation the magnitude relative to max_radius pixels (<= 0:
 * the largest known magnitude in the field). Unknown pixels are black. */
int flow_colorize(const flow_field *f, float max_radius, uint8_t *rgb);

/* Grey level of an RGB24 image, ITU-R BT.601 luma weights (as OpenCV's
 * RGB2GRAY), 0..255. */
int flow_gray_from_rgb24(const uint8_t *rgb, int width, int height, float *gray);

/* ---- TV-L1 -------------------------------------------------------------- */

typedef struct {
    float tau;        /* primal-dual time step (IPOL eq. 25), 0 < tau <= 0.25 */
    float lambda;     /* weight of the data term (eq. 3) */
    float theta;      /* coupling of u and v (eq. 7); smaller = tighter */
    float epsilon;    /* stop a warp when the mean squared flow update is below
                         epsilon^2 (pixels^2) (IPOL sec. 4) */
    float zoom;       /* down-sampling factor between scales, in (0, 1) */
    int scales;       /* number of scales; 0 = as many as the image allows
                         (IPOL: coarsest diagonal >= 16 px). Always capped. */
    int warps;        /* warpings per scale */
    int iterations;   /* maximum primal-dual iterations per warping */
    int median;       /* median filter size on the flow (3 or 5); 0 = none */
    int median_every; /* 0: filter once after each warping's iterations;
                         n > 0: before the first and every n iterations
                         (OpenCV's inner/outer loops) */
    float presmooth;  /* Gaussian sigma (px) applied to both images first */
    int normalize;    /* 1 = stretch both images jointly to 0..255 (IPOL) */
    int antialias;    /* 1 = Gaussian blur before each down-sampling (IPOL);
                         0 = plain bilinear resampling (OpenCV) */
} tvl1_config;

/* IPOL defaults: tau 0.25, lambda 0.15, theta 0.3, epsilon 0.01, zoom 0.5,
 * scales 0 (all the image allows), warps 5, iterations 300, no median,
 * presmooth 0.8, normalize 1, antialias 1. The half-size pyramid reaches displacements
 * that OpenCV's 5 scales at 0.8 (3x smaller coarsest image) do not. */
void tvl1_config_default(tvl1_config *c);
/* OpenCV 4.x cv::optflow::DualTVL1OpticalFlow defaults: tau 0.25, lambda
 * 0.15, theta 0.3, epsilon 0.01, 5 scales at zoom 0.8, 5 warps, 10 outer x 30
 * inner iterations (= iterations 300, median 5 every 30), no presmoothing,
 * no normalisation, no anti-aliasing in the pyramid. Differences that
 * remain: points warped outside the image switch the data term off (IPOL)
 * where OpenCV replicates the border; the pyramid samples pixel corners. */
void tvl1_config_opencv(tvl1_config *c);
/* Returns GL_EINVAL naming the first bad field. */
int tvl1_config_validate(const tvl1_config *c);

/* Flow from grey image i0 to i1 (width*height floats each, >= 4x4, finite).
 * *flow must be a field of the same size (its content is overwritten). Uses
 * up to gl_num_threads() threads (gl_parallel_for over rows; scales under
 * 64k pixels run on the calling thread); the result is bit-identical for any
 * thread count. Memory: about 17 planes of width*height floats.
 * GL_ENUMERIC if the iterations diverge (they do not for valid configs). */
int tvl1_flow(const float *i0, const float *i1, int width, int height, const tvl1_config *c,
              flow_field *flow);

/* Median filter of one plane (size 3, 5 or 7; edges replicated), in place.
 * Exposed for tests and GLOCAL's post-processing. */
int flow_median_filter(float *plane, int width, int height, int size);

/* ---- DIS ------------------------------------------------------------------ */

/* Dense Inverse Search (Kroeger, Timofte, Dai & Van Gool, "Fast Optical Flow
 * using Dense Inverse Search", ECCV 2016), with the choices of OpenCV 4.x's
 * cv::DISOpticalFlow, the implementation it is measured against: patch
 * mean normalisation, spatial propagation, and its variational refinement
 * (cv::VariationalRefinement). The paper's parameter names in brackets. */
typedef struct {
    int finest_scale;     /* [theta_sf] the flow is computed at 1/2^finest_scale of
                             the image and upsampled; 0 = full resolution. 0 .. 10 */
    int coarsest_scale;   /* [theta_ss] -1 = OpenCV's rule (patches span about a
                             quarter of the larger side); else >= finest_scale.
                             Always capped to the scales at least a patch wide. */
    int patch_size;       /* [theta_ps] pixels, 4 .. 32 */
    int patch_stride;     /* pixels between patches, 1 .. patch_size (the paper's
                             overlap theta_ov = 1 - stride / size) */
    int grad_descent_iters; /* [theta_it] Gauss-Newton iterations per patch (split
                               between the two passes with spatial propagation) */
    int var_refine_iters; /* [theta_vo] fixed-point iterations of the variational
                             refinement per scale; 0 = no refinement */
    int var_sor_iters;    /* [theta_vi] SOR sweeps per fixed-point iteration */
    float var_alpha;      /* [alpha] smoothness weight */
    float var_delta;      /* [sigma] brightness constancy weight (OpenCV: delta) */
    float var_gamma;      /* [gamma] gradient constancy weight */
    float var_omega;      /* SOR over-relaxation, 0 < omega < 2 */
    int use_mean_normalization;  /* 1 = patches compared after removing their mean
                                    brightness (robust to illumination changes) */
    int use_spatial_propagation; /* 1 = each patch also tries its neighbours'
                                    displacements (forward, then backward pass) */
    int opencv_rounding;  /* 1 = round as OpenCV's 8-bit implementation does: every
                             pyramid level to whole grey levels (images in 0..255)
                             and the refinement's warp to 1/32 pixel. Then the
                             flow matches OpenCV's up to float rounding; 0 keeps
                             float precision (no more accurate on FlyingChairs). */
} dis_config;

/* OpenCV's presets (cv::DISOpticalFlow::create): "ultrafast" (finest scale 2,
 * stride 4, 12 iterations, no refinement), "fast" (finest 2, stride 4, 16
 * iterations, refinement) or "medium" (finest 1, stride 3, 25 iterations,
 * refinement). All: patch 8, coarsest auto, refinement 5 x 5 SOR with alpha
 * 20, delta 5, gamma 10, omega 1.6, mean normalisation, propagation and
 * opencv_rounding on.
 * GL_EINVAL naming the value for any other name (*c is left as it was). */
int dis_config_preset(dis_config *c, const char *name);
/* Returns GL_EINVAL naming the first bad field. */
int dis_config_validate(const dis_config *c);

/* Flow from grey image i0 to i1 (width*height floats each, finite; the
 * finest scale must be at least patch_size on each side). *flow must be a
 * field of the same size (its content is overwritten). Uses up to
 * gl_num_threads() threads (small scales run on the calling thread); the
 * result is bit-identical for any thread count. Memory: about 34 planes of
 * the finest scale's size with refinement, 11 without. */
int dis_flow(const float *i0, const float *i1, int width, int height, const dis_config *c,
             flow_field *flow);

/* DIS's variational refinement alone (Kroeger et al. 2016, sec. 2.2: the
 * energy of DeepFlow, brightness and gradient constancy plus smoothness, in
 * OpenCV's form), starting from the flow already in *flow and replacing it:
 * at each level, `linearisations` times a linearisation around the flow so
 * far followed by cfg->var_refine_iters fixed-point iterations of
 * cfg->var_sor_iters SOR sweeps with cfg's weights (the patch and pyramid
 * fields are ignored). levels 1: at the images' size only; L > 1: first at
 * 1/2^(L-1), ..., 1/2 of it (images and flow area-averaged; each level's
 * correction upsampled and added to the flow), then at full size. It
 * finishes a flow that is already close — one linearisation removes about
 * 40 % of a 1 px offset, several most of it; a coarse level reaches 2^s
 * times as far — e.g. the LME's (glocal_infer_options.lme_finish). Images
 * grey 0..255, finite; the flow finite. 0 linearisations leave *flow as it
 * is. Threads and bit-identity as dis_flow. */
int dis_refine_flow(const float *i0, const float *i1, int width, int height, const dis_config *cfg,
                    int linearisations, int levels, flow_field *flow);

/* dis_flow as a flow_method_fn (below), for flow_from_rgb24 and the
 * flow-minus-homography baseline: cfg is a const dis_config * (NULL: the
 * "medium" preset; OpenCV's own default is "fast"). */
int flow_method_dis(const float *i0, const float *i1, int width, int height, const void *cfg,
                    flow_field *flow);

/* ---- fusion --------------------------------------------------------------- */

/* Two flows a and b from grey image i0 to i1 (width x height each), fused
 * pixel by pixel: where b's photometric error |i0(p) - i1(p + b(p))|
 * (bilinear; a target outside i1, or a NaN vector, costs 255), summed over
 * the (2 radius + 1)^2 window around p, is below a's, a takes b's vector
 * (ties keep a). A local form of fusion moves (Lempitsky, Roth and Rother,
 * "FusionFlow", CVPR 2008, without their graph cut): two methods that fail
 * in different places — TV-L1 on large motions of small regions, DIS on
 * fine detail — each keep where they explain the images better. radius
 * 0..64. GL_EINVAL names a size mismatch or a bad radius. */
int flow_fuse(const float *i0, const float *i1, int width, int height, int radius, flow_field *a,
              const flow_field *b);

/* The window radius GLOCAL's hybrid fuses with (5 x 5), and the one
 * flow_method_fused uses. */
#define FLOW_FUSE_RADIUS 2

/* TV-L1 (defaults) fused with DIS (medium) by flow_fuse at FLOW_FUSE_RADIUS,
 * as a flow_method_fn (cfg must be NULL): the local flow GLOCAL's hybrid
 * computes, for a pair of any frames (e.g. train-motion's teacher). */
int flow_method_fused(const float *i0, const float *i1, int width, int height, const void *cfg,
                      flow_field *flow);

/* ---- homographies -------------------------------------------------------- */

/* x' = (h0 x + h1 y + h2) / (h6 x + h7 y + h8), y' likewise with h3..h5.
 * Returns GL_ENUMERIC when (x, y) maps to infinity. */
int homography_apply(const double h[9], double x, double y, double *xo, double *yo);

/* Normalised DLT (Hartley & Zisserman alg. 4.2) on n >= 4 point pairs
 * src[2i], src[2i+1] -> dst[2i], dst[2i+1] (pixels); with mask != NULL only
 * pairs with mask[i] != 0 count. Least squares in the algebraic error when
 * n > 4. h is scaled so that h[8] = 1 (or |h| = 1 if h[8] ~ 0). GL_ENUMERIC
 * when the points are degenerate (collinear, repeated). */
int homography_fit_dlt(const double *src, const double *dst, int n, const uint8_t *mask,
                       double h[9]);

typedef struct {
    double threshold;  /* inlier distance |H(src) - dst| in pixels */
    int iterations;    /* maximum RANSAC samples */
    double confidence; /* stop when P(an all-inlier sample was drawn) >= this */
    uint64_t seed;     /* RANSAC is deterministic for a given seed */
    int refits;        /* least-squares refits on the inliers (>= 1) */
} homography_ransac_config;

/* threshold 1 px, 2000 iterations, confidence 0.999, seed 1, 2 refits. */
void homography_ransac_config_default(homography_ransac_config *c);

/* RANSAC over 4-point samples, then DLT refits on the inliers. inliers (may
 * be NULL) gets n flags; *n_inliers (may be NULL) their count. */
int homography_fit_ransac(const double *src, const double *dst, int n,
                          const homography_ransac_config *c, double h[9], uint8_t *inliers,
                          int *n_inliers);

/* The flow of a homography: f(x, y) = H(x, y) - (x, y). *f gives the size. */
int homography_to_flow(const double h[9], flow_field *f);

/* Mean distance (pixels) between where a and b send the 4 image corners
 * (0,0), (w-1,0), (0,h-1), (w-1,h-1) — the usual homography benchmark error. */
int homography_corner_error(const double a[9], const double b[9], int width, int height,
                            double *err);

/* The share of the flow's known vectors, sampled every `step` pixels (as
 * flow_minus_homography samples them), that h explains within `threshold`
 * px: h's inlier share among the flow's vectors (a point h sends to
 * infinity is an outlier). 0 when the flow has no known vector there. */
double homography_flow_agreement(const flow_field *flow, int step, const double h[9], double threshold);

/* Flow minus homography: fits H to the flow sampled every `step` pixels
 * (RANSAC, then refits), writes global = H's flow and local = flow - global
 * (set to exactly 0 where a pixel is an inlier when zero_inliers). global,
 * local (same size as flow) and h may each be NULL when not wanted. */
int flow_minus_homography(const flow_field *flow, int step, const homography_ransac_config *c,
                          int zero_inliers, double h[9], flow_field *global, flow_field *local);

/* ---- flow of RGB frames, and the flow-minus-homography baseline ------------ */

/* A flow method: grey frames i0 -> i1 (width*height floats, 0..255) into
 * *flow (a width x height field, overwritten); cfg is the method's own config
 * (NULL: its defaults). TV-L1 is flow_method_tvl1, DIS flow_method_dis
 * (above); another method plugs into the functions below with an adapter of
 * this shape. */
typedef int (*flow_method_fn)(const float *i0, const float *i1, int width, int height,
                              const void *cfg, flow_field *flow);

/* tvl1_flow as a flow_method_fn: cfg is a const tvl1_config * (NULL:
 * tvl1_config_default). */
int flow_method_tvl1(const float *i0, const float *i1, int width, int height, const void *cfg,
                     flow_field *flow);

/* Flow from RGB24 frame a to b (width*height*3 bytes each): their grey levels
 * (flow_gray_from_rgb24), then method (NULL: flow_method_tvl1) with cfg.
 * *flow must be a width x height field. */
int flow_from_rgb24(const uint8_t *a, const uint8_t *b, int width, int height,
                    flow_method_fn method, const void *cfg, flow_field *flow);

/* The classical global/local split GLOCAL is compared with: the flow of the
 * pair, a RANSAC homography of it as the global motion, the rest as the
 * local motion (flow_minus_homography). */
typedef struct {
    flow_method_fn method;              /* NULL: flow_method_tvl1 */
    const void *method_cfg;             /* NULL: the method's defaults */
    int step;                           /* homography fit on every step-th pixel in x and y */
    homography_ransac_config ransac;
    int zero_inliers;                   /* local flow exactly 0 on the homography's inliers */
} flow_baseline_config;

/* TV-L1 with its defaults, step 2, RANSAC defaults, zero_inliers 1: the
 * baseline of glocal eval-motion and eval-dhe. */
void flow_baseline_config_default(flow_baseline_config *c);

/* RGB24 pair -> grey -> flow -> flow_minus_homography with c. Every output
 * may be NULL when not wanted: h (the homography, frame a -> b), flow (the
 * whole flow), global and local; the fields given must be width x height. */
int flow_baseline_rgb24(const uint8_t *a, const uint8_t *b, int width, int height,
                        const flow_baseline_config *c, double h[9], flow_field *flow,
                        flow_field *global, flow_field *local);

/* ---- RGB difference ------------------------------------------------------- */

/* TSN's RGBDiff: out = (b - a) / 255 per channel, planar (3 planes of
 * width*height: R, G, B), in [-1, 1]. a and b are RGB24. */
int rgbdiff_compute(const uint8_t *a, const uint8_t *b, int width, int height, float *out);

#ifdef __cplusplus
}
#endif
#endif
