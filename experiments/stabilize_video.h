/*
 * stabilize_video.h — `glocal stabilize` and `glocal eval-stabilize` over
 * video files: the camera motion between consecutive frames by one of the
 * global-motion methods, the warped output through the video writer
 * (motion/stabilize.h makes the plan), a steady clip shaken by a seeded
 * jitter, and the scores of any stabilized video against its input.
 *
 * Here, not in motion/, because it needs datasets/ (FFmpeg) and motion/
 * together (experiments -> motion, datasets).
 *
 * Homographies follow motion/flow.h: 3x3 row-major, pixel centres at
 * integers, h[t] maps pixels of frame t to frame t+1, in native pixels of the
 * video (estimates at a smaller work size are rescaled).
 *
 * Ownership: functions that say "allocates" return gl_malloc'ed arrays (free
 * with gl_free); writers and models are the caller's. Errors: negative GL_E*
 * codes with a message naming the file and frame; nothing here prints
 * (progress goes through the callback).
 */
#ifndef GLOCAL_EXPERIMENTS_STABILIZE_VIDEO_H
#define GLOCAL_EXPERIMENTS_STABILIZE_VIDEO_H

#include <stdint.h>

#include "datasets/video.h"
#include "motion/glocal.h"
#include "motion/stabilize.h"

typedef enum {
    STAB_MOTION_GLOCAL = 0, /* GLOCAL's network at its size, then the robust refinement at the
                               work size weighted by the LME's background (glocal_infer) */
    STAB_MOTION_REFINE,     /* the robust refinement alone, from the identity */
    STAB_MOTION_TVL1,       /* TV-L1 flow, RANSAC homography (flow_baseline_rgb24) */
    STAB_MOTION_DIS,        /* DIS flow ("medium"), RANSAC homography */
    STAB_MOTION_N
} stab_motion_method;

/* "glocal", "refine", "tvl1-ransac", "dis-ransac", then NULL (a CLI_CHOICE list). */
extern const char *const stab_motion_names[];

typedef struct {
    stab_motion_method method;
    glocal_model *model;         /* STAB_MOTION_GLOCAL: borrowed; NULL otherwise */
    int work_width, work_height; /* frames are area-resized to this for the estimate; 0, 0: native */
    int batch;                   /* pairs per glocal_infer call, >= 1 */
    /* TV-L1 / DIS: then the robust refinement (glocal_refine_homography)
     * from their RANSAC estimate: a flow's homography is a pixel grid's fit,
     * the refinement matches the pixels themselves (sub-pixel). */
    int polish;
} stab_motion_config;

/* refine, native size, batch 8, no polish. */
stab_motion_config stab_motion_config_default(void);

/* The commands' motion config: the default with `method` and the work size
 * (0, 0: native); with model_path (may be NULL) the GLOCAL model loaded from
 * it into *model (the caller's: glocal_model_free) and set as c->model.
 * Returns 0, or glocal_model_load's error. */
int stab_motion_config_setup(stab_motion_config *c, stab_motion_method method, int work_width, int work_height,
                             const char *model_path, glocal_model **model);

/* h[i] (frame a[i] -> b[i]) for n pairs of RGB24 frames of width x height. */
int stab_motion_pairs(const stab_motion_config *c, const uint8_t *const *a, const uint8_t *const *b,
                      int n, int width, int height, double *h);

/* stage 0: motion (total = pairs), 1: writing (total = frames), 2: scoring
 * (total = frames). Nonzero asks to stop: the function returns
 * GL_ECANCELED at once (writers are left for the caller to abort). */
typedef int (*stab_progress_fn)(void *ctx, int stage, long done, long total);

/* Pass 1: decodes `path` at the work size and estimates the n-1 homographies
 * between consecutive frames, in native pixels. Allocates *h ([n-1][9]; NULL
 * when n = 1). *info gets the native stream's info, info->frames the count
 * decoded. GL_EFORMAT when the file is truncated or damaged
 * (video_reader_damage: decoding errors, rejected packets, or more than 2
 * frames fewer than its header states), saying which. */
int stab_video_motion(const char *path, const stab_motion_config *c, stab_progress_fn fn, void *ctx,
                      double **h, long *n, video_info *info);

/* Pass 2: decodes `path` again at its native size, warps frame t by
 * p->warp[t] (stab_warp_rgb24) and writes it to out; with compare non-NULL
 * also writes input | output side by side (twice the width) there. The
 * writers stay open (the caller closes them: that is what renames the files
 * into place). GL_EFORMAT when the file now decodes to another frame count
 * than the plan's. */
int stab_video_render(const char *path, const stab_plan *p, video_writer *out, video_writer *compare,
                      stab_progress_fn fn, void *ctx);

/* The steady clip `path` shaken by the seeded jitter c: frame t of the output
 * is frame t of the input warped by j[t] (steady pixel -> shaken pixel;
 * stab_jitter_make), written to w (left open). Allocates *j ([n][9]). */
int stab_video_shake(const char *path, const stab_jitter_config *c, video_writer *w, double **j, long *n);

typedef struct {
    long frames;
    double itf;             /* dB: mean PSNR of consecutive output frames on the centred window */
    double stability;       /* Liu et al. 2013 (stab_stability_score), the mean of the two below */
    double stability_translation, stability_rotation;
    double cropping;        /* mean 1 / scale of input -> output (stab_crop_distortion) */
    double distortion;      /* min anisotropy of input -> output */
    /* With the jitter truth (else NAN): the path steady -> output, R_t =
     * (input -> output)_t j[t], between consecutive frames (jitter_step:
     * the shake a viewer sees) and against its mean (jitter: the camera was
     * still, so slow drift counts too): mean over frames of the mean
     * 4-corner distance, pixels of the steady frame. */
    double jitter, jitter_step;
    /* With the truth (else NAN): the ideal output is the default plan
     * (stab_config_default: L1, automatic crop) computed from the TRUE
     * motion of the input, j[t+1] j[t]^-1; off_ideal = mean over frames of
     * the 4-corner distance (px of the output frame) between the output's
     * frame-to-frame motion (R_{t+1} R_t^-1) and the ideal's: the camera
     * motion left against the ideal smoothed path. off_ideal_gauss: the
     * same against the Gaussian path of smoothing 15 (vid.stab's default
     * smoother) of the true motion. ideal_step = the L1 ideal's own
     * jitter_step (the same for every video of one input). */
    double off_ideal, off_ideal_gauss, ideal_step;
} stab_scores;

/* Scores `output` (a stabilized `input`: same size and frame count) with
 * the estimator c (glocal eval-stabilize: DIS + RANSAC, polished): input t ->
 * output t and output t -> t+1 at the work size,
 * PSNR at the native size on the centred `window` (0, 1] of the frame.
 * truth: [n][9] steady -> input homographies (stab_video_shake's j) or NULL.
 * output == input scores the input itself (no stabilization: its
 * registration is the identity). */
int stab_video_score(const char *input, const char *output, const stab_motion_config *c, double window,
                     const double *truth, long truth_n, stab_progress_fn fn, void *ctx, stab_scores *s);

/* The truth for stab_video_score: a text file of stab_homographies_write
 * (eval-stabilize shake's steady -> shaken homographies), or, for a path
 * ending in .h5, a glocal synth ground-truth file (datasets/synth.h), whose
 * camera homographies give the path of a still camera (stab_path_from_motion).
 * Allocates *j ([*n][9]). */
int stab_truth_read(const char *path, double **j, long *n);

/* Text file of n homographies, one per line: "t h0 h1 ... h8" (%.17g),
 * written atomically; read back with the count checked (n_expected > 0) or
 * taken from the file (n_expected = 0). Read allocates *h. */
int stab_homographies_write(const char *path, const double *h, long n);
int stab_homographies_read(const char *path, long n_expected, double **h, long *n);

#endif
