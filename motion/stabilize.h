/*
 * stabilize.h — video stabilization from the global (camera) motion between
 * consecutive frames, and the measures stabilizers are compared by.
 *
 * Pipeline (the caller estimates the motion: GLOCAL, the robust refinement or
 * TV-L1 + RANSAC, experiments/stabilize_video.h):
 *   1. camera path   h[t] maps pixels of frame t to frame t+1 (motion/flow.h's
 *                    convention). F_t = the affine fit of h[t-1]^-1 (frame t to
 *                    frame t-1) and C_t = F_1 ... F_t (frame t to frame 0), as
 *                    in Grundmann, Kwatra & Essa, "Auto-Directed Video
 *                    Stabilization with Robust L1 Optimal Camera Paths", CVPR
 *                    2011 (sec. 2). Affine, not projective: the LP below needs
 *                    F B linear in B, and the perspective part of shake on
 *                    the frame sizes here is below a pixel.
 *   2. smooth path   P_t = C_t B_t; B_t, the update transform, maps a pixel of
 *                    the output (crop window) to frame t. Two smoothers:
 *                    - STAB_PATH_L1 (default): Grundmann's LP, minimising
 *                      w1 |D P|_1 + w2 |D^2 P|_1 + w3 |D^3 P|_1 (eq. 6 with the
 *                      residuals of eqs. 8-10: R_t = F_{t+1} B_{t+1} - B_t) over
 *                      the 6 affine parameters of every B_t, subject to the
 *                      proximity bounds of sec. 2.2 (zoom, skew) and the
 *                      inclusion constraint: the crop window mapped by B_t lies
 *                      inside frame t, so no undefined pixel ever shows. The
 *                      optimum is piecewise constant / linear / parabolic: a
 *                      still camera, a constant pan, an ease in or out. Solved
 *                      by GLPK's simplex, in overlapping windows of frames;
 *                      then, of the paths equally smooth, the one whose
 *                      windows sit nearest the frame centres (the largest
 *                      crop; a second LP with the cost held at its optimum).
 *                    - STAB_PATH_GAUSSIAN: P_t = the Gaussian average of C_s
 *                      (element-wise), kernel exp(-(s-t)^2 / (S/2)^2) over
 *                      |s - t| <= S, S = smoothing: the kernel of vid.stab's
 *                      vidstabtransform (campathoptimization.c, optalgo=gauss),
 *                      so `smoothing=S` there means the same. Ends are extended
 *                      by point reflection (C_{-k} = 2 C_0 - C_k), which keeps a
 *                      constant pan exactly (vid.stab truncates the kernel).
 *                      With a crop window, the update of a frame that would
 *                      show undefined pixels is shortened towards the identity
 *                      (B = I + a (B - I), the largest a that fits).
 *   3. crop          the window is the centred rectangle of `crop` times the
 *                    frame's sides; it is scaled back to the full frame size.
 *                    STAB_CROP_AUTO: the largest window every frame covers,
 *                    but at least crop_min (then L1 plans for crop_min, the
 *                    Gaussian path is shortened as above).
 *                    STAB_CROP_NONE: no zoom; the uncovered border is black
 *                    (L1 still plans with a crop_min window, or a pan would
 *                    leave the frame).
 *   4. warp          warp[t] maps an output pixel to frame t (= B_t times the
 *                    window's scaling, in pixels); stab_warp_rgb24 samples it
 *                    bilinearly.
 *
 * Measures (Liu, Yuan, Tan & Sun, "Bundled Camera Paths for Video
 * Stabilization", SIGGRAPH 2013, sec. 6, as the code published with later
 * benchmarks computes them — DIFRINT, Choi & Kweon 2020; StabNet, Wang et al.
 * 2018):
 *   stability   the path P_t = M_1 ... M_t of the homographies M_t between
 *               consecutive *output* frames; the signals |(P_02, P_12)|
 *               (translation, px) and atan2(P_10, P_00) (rotation); the share
 *               of the energy of frequencies 1..5 in the one-sided spectrum
 *               without DC; the mean of the two (1 = smoothest).
 *   cropping    mean over frames of 1 / |(M_00, M_01)| for M the homography
 *               input frame -> output frame (the scale it zoomed by).
 *   distortion  min over frames of sigma_2 / sigma_1 of M's 2x2 part (1 = no
 *               anisotropic stretch).
 *   ITF         inter-frame transformation fidelity: mean PSNR between
 *               consecutive output frames over a centred window.
 *
 * Ownership: stab_plan_compute allocates the plan's arrays (stab_plan_free).
 * Every other buffer is the caller's. Errors: negative GL_E* codes with a
 * message (gl_last_error()) naming the argument or frame; nothing here prints
 * (GLPK's terminal output is switched off around each solve). Pure C: needs
 * nn/base.h and GLPK, not libtorch.
 */
#ifndef GLOCAL_MOTION_STABILIZE_H
#define GLOCAL_MOTION_STABILIZE_H

#include <stddef.h>
#include <stdint.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { STAB_PATH_L1 = 0, STAB_PATH_GAUSSIAN = 1 } stab_path_kind;
typedef enum { STAB_CROP_AUTO = 0, STAB_CROP_FIXED = 1, STAB_CROP_NONE = 2 } stab_crop_mode;

typedef struct {
    stab_path_kind path;
    int smoothing;          /* Gaussian: frames on each side (vid.stab's smoothing), >= 1 */
    stab_crop_mode crop_mode;
    double crop;            /* FIXED: window side / frame side, in (0, 1] */
    double crop_min;        /* AUTO and NONE: the smallest window allowed, in (0, 1] */
    /* L1 (Grundmann et al. 2011, sec. 2.1): weights of the first, second and
     * third differences (10, 1, 100), and of the 4 linear parameters against
     * the 2 translations (pixels); 0 = half the frame diagonal (px in
     * centred coordinates), so a unit of either moves a corner by about as
     * many pixels. */
    double w1, w2, w3;
    double linear_weight;
    /* L1: weight of |B_t's linear part - I| per frame (1; ours, not the
     * paper's): keeps a constant zoom-in, which the difference terms do not
     * see, from buying translation room at the price of the crop; and, at a
     * tenth of it per pixel, of |B_t's translation|: of paths equally smooth
     * the one nearest the centre (the largest crop). */
    double w0;
    /* L1 proximity (sec. 2.2): |a - 1|, |d - 1| <= max_zoom, |b|, |c| <=
     * max_skew, |b + c| <= max_skew_sum, |a - d| <= max_aniso (0.1, 0.1, 0.05, 0.1). */
    double max_zoom, max_skew, max_skew_sum, max_aniso;
    /* L1 windows: frames per LP and frames shared by consecutive LPs (120,
     * 30: 4-5 s of lookahead at 25-30 fps, about 10 ms a frame to solve);
     * the first 3 frames of a window keep the previous LP's values, so the
     * first three differences stay continuous. */
    int window, overlap;
} stab_config;

/* L1, smoothing 15 (FFmpeg's vidstabtransform default), crop AUTO with
 * crop_min 0.8, the paper's weights and bounds, windows of 120 / 30. */
stab_config stab_config_default(void);
/* GL_EINVAL naming the first bad field. */
int stab_config_validate(const stab_config *c);

typedef struct {
    int n, width, height;
    double crop;            /* the window used (1 with STAB_CROP_NONE) */
    double *update;         /* [n][9] B_t: window pixel -> frame t pixel (affine) */
    double *warp;           /* [n][9] output pixel -> frame t pixel (affine) */
    int limited;            /* Gaussian: frames whose update was shortened to fit the window */
} stab_plan;

/* The plan for n >= 1 frames of width x height (>= 8 each) from the n-1
 * homographies h[t] (frame t -> t+1, [n-1][9]; finite, invertible).
 * GL_ENUMERIC when the LP cannot be solved (GLPK's status in the message). */
int stab_plan_compute(const double *h, int n, int width, int height, const stab_config *c,
                      stab_plan *out);
void stab_plan_free(stab_plan *p);

/* Output pixel q <- frame pixel warp(q), bilinear; points outside the frame
 * (beyond half a pixel) are black. Rows in parallel (gl_parallel_for). */
int stab_warp_rgb24(const uint8_t *in, int width, int height, const double warp[9], uint8_t *out);

/* ---- geometry helpers ----------------------------------------------------------- */

/* Least-squares affine fit (last row 0 0 1) of homography h on a 5 x 5 grid
 * of points spanning the width x height frame. GL_ENUMERIC if h sends one of
 * them to infinity. */
int stab_affine_fit(const double h[9], int width, int height, double a[9]);

/* The largest s in [0, 1] such that the centred window of s times the frame's
 * sides, mapped by the affine m (window pixel -> frame pixel, pixels), lies
 * inside the frame's pixel centres [0, W-1] x [0, H-1]. 0 when even its
 * centre falls outside. */
double stab_window_fit(const double m[9], int width, int height);

/* Box (area) reduction of an RGB24 frame by an integer factor k >= 1: out is
 * (width / k) x (height / k) (the last width % k columns and height % k rows
 * are dropped, so homographies rescale with glocal_homography_rescale from
 * (k * (width / k), k * (height / k))). */
int stab_reduce_rgb24(const uint8_t *in, int width, int height, int k, uint8_t *out);

/* ---- measures ------------------------------------------------------------------- */

/* Stability score from the n homographies m[t] between consecutive output
 * frames (t -> t+1, [n][9]), as above: *translation and *rotation in [0, 1]
 * (may be NULL), *score their mean. n >= 2 (with fewer than 12 a spectrum of
 * 5 frequencies is most of it: the score says little). A signal with no
 * energy at all (a perfectly still path) scores 1. */
int stab_stability_score(const double *m, int n, double *score, double *translation,
                         double *rotation);

/* Cropping ratio (mean, capped at 1) and distortion (minimum) of the n
 * homographies m[t], input frame t -> output frame t. */
int stab_crop_distortion(const double *m, int n, double *cropping, double *distortion);

/* PSNR (dB, peak 255, over the 3 channels) of two RGB24 frames on the centred
 * window of `window` (0, 1] times their sides; 99 when they are identical
 * there. */
int stab_psnr_rgb24(const uint8_t *a, const uint8_t *b, int width, int height, double window,
                    double *psnr);

/* Residual motion of a path against a reference path (both [n][9], mapping
 * the same source frame, width x height, to frame t): for each t the mean
 * over the 4 frame corners c of |ref_t^-1 path_t (c) - c|, in pixels of the
 * source frame (so a zoom of the output does not scale it); *mean over t,
 * *max over t (either may be NULL). */
int stab_path_residual(const double *path, const double *ref, int n, int width, int height,
                       double *mean, double *max);

/* Element-wise mean of n homographies (each normalised to h[8] = 1): the
 * reference of a path that should be constant. */
int stab_path_mean(const double *path, int n, double out[9]);

/* The path of a still camera from the n-1 true homographies h[t] (frame t ->
 * t+1) of an n-frame clip: j[t] maps frame 0's pixels (the still view) to
 * frame t's, j[0] = I, j[t+1] = h[t] j[t] (normalised): the same
 * convention as stab_jitter_make's steady -> shaken, so a clip's camera
 * ground truth (glocal synth) scores like a known shake. GL_EINVAL when a
 * product is not finite. */
int stab_path_from_motion(const double *h, int n, double *j);

/* Its inverse: the n-1 steps h[t] = p[t+1] p[t]^-1 (normalised) of a path
 * p ([n][9], frame 0 -> frame t, or any common source -> frame t).
 * GL_ENUMERIC naming the frame when p[t] is singular. */
int stab_motion_from_path(const double *p, int n, double *h);

/* Element-wise Gaussian smoothing of a path ([n][9], each normalised to
 * h[8] = 1) with vid.stab's kernel and point-reflected ends, as
 * STAB_PATH_GAUSSIAN smooths C_t. */
int stab_path_gaussian(const double *path, int n, int smoothing, double *out);

/* ---- known shake ---------------------------------------------------------------- */

typedef struct {
    double shift;      /* translation amplitude, px (uniform in [-shift, shift] per axis) */
    double angle;      /* rotation amplitude, radians, about the frame centre */
    double zoom;       /* zoom amplitude: scale exp(u), u uniform in [-zoom, zoom] */
    uint64_t seed;
} stab_jitter_config;

/* n homographies j[t] (steady frame t -> shaken frame t, pixels): i.i.d.
 * shift, rotation and zoom about the centre per frame (a SplitMix64 stream of
 * the seed), and one common zoom-in chosen so that every shaken
 * frame is covered by its steady frame (no undefined border). *base_zoom (may
 * be NULL) gets that zoom (>= 1). */
int stab_jitter_make(const stab_jitter_config *c, int n, int width, int height, double *j,
                     double *base_zoom);

#ifdef __cplusplus
}
#endif
#endif
