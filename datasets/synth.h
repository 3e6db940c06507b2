/*
 * synth.h — a synthetic action benchmark with exact ground-truth motion.
 *
 * Each clip shows a textured background plane seen by a moving camera and one
 * to three textured objects lying on that plane. The objects' motion pattern is
 * the class label (translate right/left/up/down, rotate cw/ccw, grow, shrink,
 * oscillate, circle, bounce, still); the camera moves independently of the
 * class, so the mixed (total) flow is a confound and the local (object) flow
 * is the signal, as in GLOCAL (Zheng et al. 2024).
 *
 * Geometry (all in pixels). Pixel (i, j) — column i, row j — has its centre at
 * (x, y) = (i, j); the image spans [-0.5, W-0.5] x [-0.5, H-0.5]; y points
 * down, so a positive rotation angle turns clockwise on screen.
 *   C_t       frame-t pixel -> world (the plane), C_0 = identity: world
 *             coordinates are frame-0 pixel coordinates.
 *   H_t       = C_{t+1}^-1 C_t: the camera homography, frame t -> frame t+1.
 *             The four image corners move by at most `camera_px` pixels
 *             (the clip's largest corner displacement equals camera_px when
 *             camera_px > 0); pan, zoom, rotation and two keystone
 *             (perspective) components vary as sinusoids of 16-40 frames.
 *   A_k,t     object k's pose: object-local -> world, X = c + s R(theta) q.
 *   M_k,t     = C_{t+1}^-1 A_k,t+1 A_k,t^-1 C_t: image motion of object k.
 * Flows are forward flows evaluated at pixel centres: pixel p of frame t
 * moves to p + flow(p) in frame t+1, whether or not it is visible there.
 *   global flow  g(p) = H_t p - p                       (every pixel)
 *   total flow   f(p) = M_k,t p - p on pixels owned by object k, g elsewhere
 *   local flow   l(p) = f(p) - g(p) on object pixels, exactly 0 on background
 * Pixel p is owned by object k when k is the front-most object whose alpha at
 * the pixel centre is >= 0.5 (objects are drawn back to front, k = 1..n).
 *
 * Rendering: every layer is an exact homography image -> texture; each output
 * pixel is a tent-weighted average (radius 1 pixel) of supersample x
 * supersample samples (default 4x4, spacing 2/N pixels), and each sample reads
 * a trilinear mip-mapped texture (2x2 box pyramid) at the level where one
 * sample's footprint is <= 1 texel. Textures repeat by mirroring. So minified
 * photos do not alias and the frames agree with the ground truth up to
 * interpolation error. (The tent rather than a box over the pixel: it leaves
 * less aliasing, and the mean error of warping frame t+1 back by the ground
 * truth drops from 0.17 to 0.13 of the no-warp error at 48x48, strong camera.)
 *
 * Classes (object motion in world pixels, S = min(W, H), t in frames, all
 * objects of a clip follow the class with their own draws):
 *   TranslateRight/Left/Up/Down  constant velocity S/48..S/24 per frame
 *   RotateCW/CCW    0.06..0.15 rad per frame about the object's centre
 *   Grow/Shrink     scale exp(+-k t), k 0.045..0.08 (0.4x..2.5x at most)
 *   Oscillate       amplitude S/10..S/6 along a random line, period 8..16
 *   Circle          radius S/10..S/6, either direction, period 12..24
 *   Bounce          hops of height S/8..S/5, period 8..14, slow drift
 *   Still           none: the objects move only with the camera
 * (the default 10 classes are the first ten).
 *
 * Dataset layout written by synth_dataset_write (UCF-101 layout, split 1):
 *   DIR/classInd.txt                     "1 TranslateRight\r\n" ... (CRLF)
 *   DIR/trainlist01.txt                  "Class/v_Class_gGG_cCC.avi LABEL\r\n"
 *   DIR/testlist01.txt                   "Class/v_Class_gGG_cCC.avi\r\n"
 *   DIR/<Class>/v_<Class>_gGG_cCC.avi    MPEG-4 Part 2, XVID tag, AVI, 25 fps
 *   DIR/<Class>/v_<Class>_gGG_cCC_gt.h5  ground truth of that clip
 * Labels are 1-based. Clips of one group share the scene (background
 * texture and its placement, object texture); the first ~28% of the groups
 * of every class (as g01-g07 of 25 in UCF-101) form the test list, so a
 * group never straddles the split.
 *
 * Ground-truth HDF5 schema (one file per clip, T = frames):
 *   /homography   float64 [T-1, 3, 3]      H_t, row-major, H[2][2] = 1
 *   /global_flow  float32 [T-1, 2, H, W]   g, channel 0 = x, 1 = y, pixels
 *   /local_flow   float32 [T-1, 2, H, W]   l, channel 0 = x, 1 = y, pixels
 *   /mask         uint8   [T-1, H, W]      0 background, k = owner object k
 *                                          (nonzero = foreground), frame t
 *   root attributes: format ("glocal-synth-gt"), version (int 1), convention
 *   (text), label (int, 1-based), class (text), frames, width, height,
 *   objects (int), camera_px (double), scene_seed and motion_seed (uint64:
 *   synth_clip_render with these, the label and the same config renders the
 *   clip again, frames included). Flows are gzip +
 *   shuffle compressed, one chunk per frame pair; no timestamps are stored,
 *   so the same seed gives byte-identical files.
 *
 * Ownership: synth_new returns a generator the caller frees with synth_free;
 * it is read-only afterwards, so several threads may render from it at once.
 * synth_clip_render returns a clip the caller frees with synth_clip_free.
 * Errors: negative GL_E* codes with a message (gl_last_error()).
 */
#ifndef GLOCAL_DATASETS_SYNTH_H
#define GLOCAL_DATASETS_SYNTH_H

#include <stdint.h>

#include "nn/base.h"

#define SYNTH_MAX_CLASSES 12
#define SYNTH_MAX_OBJECTS 3

typedef enum {
    SYNTH_TRANSLATE_RIGHT, SYNTH_TRANSLATE_LEFT, SYNTH_TRANSLATE_UP, SYNTH_TRANSLATE_DOWN,
    SYNTH_ROTATE_CW, SYNTH_ROTATE_CCW, SYNTH_GROW, SYNTH_SHRINK,
    SYNTH_OSCILLATE, SYNTH_CIRCLE, SYNTH_BOUNCE, SYNTH_STILL,
} synth_class;

typedef struct {
    int width, height;      /* frame size in pixels (even, >= 16) */
    int frames;             /* frames per clip (>= 2) */
    int classes;            /* number of classes used, 1..SYNTH_MAX_CLASSES */
    double camera;          /* camera strength: 0 none, 0.5 mild, 1 strong; the
                               largest corner displacement per frame is
                               camera * min(W, H) / 16 pixels */
    int supersample;        /* samples per pixel side, 1..8 (default 4) */
    const char *textures;   /* folder of .png/.jpg photos, or NULL: procedural */
    uint64_t seed;          /* seed of the procedural textures and the dataset */
} synth_config;

/* Default: 64x64, 24 frames, 10 classes, camera 1 (strong), 4x4, procedural. */
synth_config synth_config_default(void);
/* GL_EINVAL with a message naming the bad field. */
int synth_config_validate(const synth_config *cfg);

/* Class names in CamelCase ("TranslateRight", ...); NULL when out of range. */
const char *synth_class_name(int label0);

typedef struct synth synth;

/* Validates cfg, loads (or generates) the textures and builds their mipmaps.
 * Reports GL_EIO / GL_EFORMAT for an unreadable texture folder or file. */
int synth_new(const synth_config *cfg, synth **out);
void synth_free(synth **s);
const synth_config *synth_get_config(const synth *s);

typedef struct {
    int width, height, frames;
    int label;              /* 0-based class */
    int objects;            /* 1..SYNTH_MAX_OBJECTS */
    double camera_px;       /* largest corner displacement per frame, pixels */
    uint8_t *rgb;           /* [frames][H][W][3], RGB24 */
    double *homography;     /* [frames-1][3][3] */
    float *global_flow;     /* [frames-1][2][H][W] */
    float *local_flow;      /* [frames-1][2][H][W] */
    uint8_t *mask;          /* [frames-1][H][W] */
} synth_clip;

/* Renders one clip of `frames` frames (0 = cfg->frames) of class label0.
 * scene_seed picks the textures and their placement, motion_seed the camera
 * trajectory and the objects; the output depends on nothing else (not on
 * threads or timing). */
int synth_clip_render(const synth *s, int label0, uint64_t scene_seed, uint64_t motion_seed,
                      int frames, synth_clip **out);
void synth_clip_free(synth_clip **clip);

/* A training pair for models that learn from memory: a 2-frame clip whose
 * class, scene and motion are drawn from `seed` (class uniform over
 * cfg->classes; the camera's corner displacement uniform in [0, camera_px]). */
int synth_pair_render(const synth *s, uint64_t seed, synth_clip **out);

/* Reads one ground-truth file (schema above) into a clip without frames
 * (rgb = NULL; free with synth_clip_free). GL_EIO: unreadable; GL_EFORMAT:
 * not HDF5, not a glocal-synth-gt file, or a dataset of the wrong shape
 * (the message names the file and the dataset). */
int synth_gt_load(const char *path, synth_clip **out);

/* Dataset writing (videos + ground truth + lists, layout above). */
typedef struct {
    const char *out_dir;
    int clips_per_class;    /* >= 2 */
    /* Optional progress report after each clip (any thread, serialised);
     * return nonzero to cancel (GL_ECANCELED). */
    int (*progress)(void *ctx, long done, long total);
    void *progress_ctx;
} synth_dataset_options;

/* Groups per class and clips per group for n clips per class (UCF-101-like:
 * up to 4 clips a group, at least 2 groups), and how many groups are test. */
void synth_dataset_groups(int clips_per_class, int *groups, int *per_group, int *test_groups);

/* Writes the whole dataset; clips render in parallel (gl_parallel_for) and
 * every file is written atomically. Same config and options, same bytes. */
int synth_dataset_write(const synth *s, const synth_dataset_options *opt);

#endif
