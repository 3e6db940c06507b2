/*
 * photo_pairs.h — frame pairs cut from real photographs with exact ground
 * truth: a benchmark of camera (global) and object (local) motion on real
 * image content, and the generator to train on it.
 *
 * A pair is made the way HomographyNet (DeTone et al. 2016), BasesHomo (Ye
 * et al., ICCV 2021) and CA-UDHN (Zhang et al., ECCV 2020) make theirs: a
 * random crop of a photo is frame A; each of A's four corners moves by
 * (dx, dy), each uniform in [-corner_px, corner_px], and the homography H
 * that takes the corners to their moved places is the camera motion; frame B
 * is the photo seen through H. On top, as in GLOCAL's synthetic pairs (Zheng
 * et al. 2024), 1-2 patches (ellipses or star-shaped polygons) cut from
 * *other* photos of the set cover coverage_min..coverage_max of frame A and
 * move on their own (a similarity: translation, rotation, scale) composed
 * with the camera's motion; they occlude the background in both frames.
 *
 * Geometry (pixels). Pixel (i, j) — column i, row j — has its centre at
 * (x, y) = (i, j), as motion/flow.h and datasets/synth.h; y points down.
 *   T        frame-A pixel -> photo texel: scale k (the frame's shorter side
 *            spans crop_min..crop_max of the photo's), roll, translation;
 *            chosen so both frames (and the filter's support) lie inside the
 *            photo.
 *   H        frame-A pixel -> frame-B pixel (3x3 row-major, h[8] = 1); the
 *            corners are the corner pixels' centres (0, 0), (W-1, 0),
 *            (W-1, H-1), (0, H-1); frame B pixel q shows photo point T H^-1 q.
 *   P_k      patch k's local coordinates -> frame-A pixel (a similarity).
 *   D_k      patch k's own motion in frame-A pixels (a similarity about its
 *            centre); its image motion A -> B is M_k = H D_k.
 * Flows are forward flows of frame A evaluated at pixel centres: pixel p of A
 * moves to p + flow(p) in B, whether or not it is visible there.
 *   global flow  g(p) = H p - p                       (every pixel)
 *   local flow   l(p) = M_k p - H p on pixels of patch k, exactly 0 elsewhere
 *   mask         k (1-based) where patch k is the front-most patch whose
 *                shape contains the pixel centre in frame A, 0 elsewhere.
 * So frame A warped by g + l reproduces frame B wherever nothing occludes.
 *
 * Rendering is by inverse mapping through these exact homographies, with
 * datasets/synth.h's anti-aliased sampler: each output pixel is a
 * tent-weighted average (radius 1 px) of supersample x supersample samples,
 * each a trilinear read of the photo's 2x2 box mip pyramid at the level
 * where one sample's footprint is <= 1 texel (the patch edges are hard and
 * anti-aliased by the same samples).
 *
 * Augmentations (photo_pairs_aug, all off by default) act on the rendered
 * frames, each frame drawn on its own (so they also change between A and
 * B: illumination change); the ground truth and the geometry do not depend
 * on them. In order: contrast, brightness and gamma jitter, a linear
 * illumination ramp, Gaussian blur, Gaussian noise, rounding to 8 bits, JPEG
 * re-coding (FFmpeg's mjpeg encoder, decoded by datasets/image.h).
 *
 * Reproducibility: pair `index` is a pure function of (the photo set, the
 * config, index): not of threads, timing or earlier calls.
 *
 * Photos: photo_set_open reads a folder (every .png/.jpg/.jpeg/.ppm, in
 * sorted name order) or a list file (one path a line, relative to the list's
 * folder; blank lines and lines starting with '#' skipped), through
 * datasets/image.h, area-downscales each so its shorter side is at most
 * max_short_side, and keeps it as a float RGB mip pyramid (16 bytes a
 * pixel: about 5 MB for 683x512) centre-cropped to a multiple of the
 * pyramid's coarsest step (under 64 px lost in each direction).
 *
 * Ownership: photo_set_open returns a set the caller frees with
 * photo_set_free; it is read-only afterwards, so several threads may render
 * from it at once. photo_pair_alloc / photo_pair_release own a pair's arrays;
 * photo_pairs_render fills a pair the caller allocated (reusable).
 *
 * Errors: negative GL_E* codes with a message (gl_last_error()) naming the
 * folder or file and what was expected, or the config field; nothing here
 * prints.
 */
#ifndef GLOCAL_DATASETS_PHOTO_PAIRS_H
#define GLOCAL_DATASETS_PHOTO_PAIRS_H

#include <stdint.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PHOTO_PAIRS_MAX_PATCHES 4

/* ---- the photo set -------------------------------------------------------- */

typedef struct photo_set photo_set;

/* path: a folder of photos, or a text file listing them. GL_EIO: cannot
 * open (a listed photo missing); GL_ENOTFOUND: no photo in it; GL_EFORMAT: a
 * photo that does not decode or is smaller than 16x16 (the message names
 * it). max_short_side: 16..8192 (eval-motion's default is 512). */
int photo_set_open(const char *path, int max_short_side, photo_set **out);
void photo_set_free(photo_set **s);
int photo_set_count(const photo_set *s);
/* The file name of photo i (as listed), NULL when out of range. */
const char *photo_set_name(const photo_set *s, int i);
/* The size photo i is kept at (after downscaling and the pyramid's crop). */
void photo_set_size(const photo_set *s, int i, int *width, int *height);

/* ---- the pair generator --------------------------------------------------- */

typedef struct {
    double contrast;     /* gain exp(u) about grey 128, u uniform in [-contrast, contrast] */
    double brightness;   /* offset uniform in [-brightness, brightness] grey levels (0..255) */
    double gamma;        /* exponent exp(u), u uniform in [-gamma, gamma], on [0, 1] values */
    double illumination; /* gain 1 + a * (distance along a random direction) / (half the
                            longer side), a uniform in [-illumination, illumination], < 1 */
    double blur;         /* Gaussian blur, sigma uniform in [0, blur] px */
    double noise;        /* Gaussian noise, sigma uniform in [0, noise] grey levels */
    int jpeg_q_min, jpeg_q_max; /* JPEG re-coding at FFmpeg mjpeg's qscale (as ffmpeg
                            -q:v: 2 best .. 31 worst) uniform in [min, max]; 0, 0 = off */
} photo_pairs_aug;

typedef struct {
    int width, height;            /* frame size in pixels, 16..4096 each */
    double corner_px;             /* each corner coordinate moves uniformly within
                                     +-corner_px (HomographyNet's rho); 0..min(W, H)/4 */
    double still;                 /* share of pairs whose camera does not move (H = I;
                                     the patches still move), 0..1: consecutive video
                                     frames mostly have little camera motion. 0 (default)
                                     draws exactly the pairs it drew before it existed */
    double crop_min, crop_max;    /* the frame's shorter side spans this fraction of
                                     the photo's shorter side, 0.05..1 (less when the
                                     moved frame would not fit) */
    double rotation;              /* roll of the crop, uniform in +-rotation rad, 0..pi */
    int patches_min, patches_max; /* moving patches per pair, 0..PHOTO_PAIRS_MAX_PATCHES */
    double coverage_min, coverage_max; /* fraction of frame A the patches cover
                                     together, 0.01..0.5 (when patches_max > 0) */
    double patch_px_min, patch_px_max; /* a patch's own translation, px (frame A) */
    double patch_rotation;        /* its own rotation, uniform in +-patch_rotation rad */
    double patch_scale;           /* its own scale exp(u), u uniform in +-patch_scale */
    int supersample;              /* samples per pixel side, 1..8 */
    uint64_t seed;
    photo_pairs_aug aug;
} photo_pairs_config;

/* 128x128, corner_px 8 (S/16), crop 0.4..0.8, no roll, 1-2 patches covering
 * 10-25 %, their own translation 2..8 px, rotation +-0.1 rad, scale +-0.05,
 * supersample 4, seed 1, no augmentation. */
photo_pairs_config photo_pairs_config_default(void);

/* The protocol of `glocal eval-motion --photos`: size x size frames,
 * corner_px = magnitude * size (1/16 or 1/8 in the literature), the patches'
 * own translation magnitude * size / 4 .. magnitude * size, the rest default. */
photo_pairs_config photo_pairs_config_benchmark(int size, double magnitude, uint64_t seed);

/* The augmentation of `glocal train-motion --augment`: the two frames of a
 * pair look as if taken by different cameras: contrast 0.2, brightness 10,
 * gamma 0.15, illumination 0.1, blur 0.8 px, noise 3, JPEG qscale 2..12. */
photo_pairs_aug photo_pairs_aug_cameras(void);

/* GL_EINVAL with a message naming the bad field. */
int photo_pairs_config_validate(const photo_pairs_config *c);

typedef struct {
    int width, height;
    uint8_t *a, *b;            /* [H][W][3] RGB24, after augmentation */
    float *grey;               /* [2][H][W]: BT.601 luma of a, then of b, 0..255 */
    double homography[9];      /* H: frame-A pixel -> frame-B pixel, row-major, h[8] = 1 */
    float *global_flow;        /* [2][H][W] g, channel 0 = x, 1 = y, pixels */
    float *local_flow;         /* [2][H][W] l, exactly 0 off the patches */
    uint8_t *mask;             /* [H][W] 0 background, k = patch k owns the pixel in A */
    int photo;                 /* index of the background photo */
    int patches;               /* number of patches */
    int patch_photo[PHOTO_PAIRS_MAX_PATCHES];
    double patch_motion[PHOTO_PAIRS_MAX_PATCHES][9]; /* M_k = H D_k, h[8] = 1 */
} photo_pair;

int photo_pair_alloc(photo_pair *p, int width, int height);
void photo_pair_release(photo_pair *p);

/* Renders pair `index` into p (allocated at the config's size). GL_EINVAL:
 * bad config or p of another size. */
int photo_pairs_render(const photo_set *s, const photo_pairs_config *c, uint64_t index,
                       photo_pair *p);

#ifdef __cplusplus
}
#endif
#endif
