/*
 * glocal.h — glocal as a C library (libglocal, installed as <glocal/glocal.h>):
 * GLOCAL motion estimation (Zheng et al., "GLOCAL: A self-supervised learning
 * framework for global and local motion estimation", Pattern Recognition
 * Letters 178, 2024) — the camera's motion between two frames as a
 * homography, the objects' motion as a masked local flow — the classical
 * flows it is measured against (TV-L1, DIS, flow minus a RANSAC homography),
 * video decoding, and the HDF5 motion caches `glocal extract` writes.
 *
 * Build: `cc app.c $(pkg-config --cflags --libs glocal)`, or in CMake
 * `find_package(glocal)` and link `glocal::glocal`. The header is C11 and
 * C++-clean; it includes only <stdint.h>.
 *
 * Start-up: call glocal_init() once before anything that runs a model
 * (glocal_estimator_open); the rest work without it.
 *
 * Pixels and units (the same everywhere):
 *   frames        RGB24, packed, rows top to bottom: width*height*3 bytes.
 *   flows         planar float [2][height][width] in pixels: plane 0 = u
 *                 (x, right), plane 1 = v (y, down); forward: B(p + f(p)) ~ A(p).
 *   homographies  3x3 row-major doubles mapping a pixel (x, y, 1) of frame A to
 *                 frame B, pixel centres at integer coordinates.
 *   masks         float [height][width] in [0, 1]; 1 = a moving object.
 * A batch of n of any of these is n of them back to back.
 *
 * Ownership: a handle (glocal_estimator, glocal_video, glocal_cache) comes
 * from its _open and is released by its _close(&h), which accepts a pointer
 * to NULL and sets the handle to NULL. Every buffer is the caller's: a
 * function writes into arrays the caller sized as documented and keeps no
 * pointer after it returns. Strings returned as `const char *` are borrowed,
 * valid for as long as the function says.
 *
 * Errors: functions that can fail return int: 0 on success, a negative
 * GLOCAL_E* code on failure, a positive code for an outcome that is not an
 * error (GLOCAL_EOF), so `if (rc < 0)` always means failure. The failing
 * call leaves a message naming the file or argument and what was expected,
 * read with glocal_last_error() on the same thread. Nothing here prints or
 * exits.
 *
 * Threads: each function says which of these it is.
 *   [init]    glocal_init only: call it before other threads use the library,
 *             or while no other call is running.
 *   [any]     safe from any thread at any time.
 *   [handle]  a handle (its _close too) is used by one thread at a time;
 *             different handles may be used from different threads at once.
 * Models and caches are HDF5 files, read under HDF5's own lock: Debian's
 * libhdf5 is built thread-safe; with one built without --enable-threadsafe,
 * open and read them from one thread.
 * The library itself computes on up to glocal_init's `threads` worker
 * threads per call; the error message is per calling thread.
 *
 * ABI: every name libglocal.so exports starts with glocal_ (this header
 * declares all of them; everything else in the library is hidden), and its
 * soname changes with GLOCAL_VERSION_MAJOR. Structs are never exposed, so
 * handles can grow without breaking callers.
 */
#ifndef GLOCAL_GLOCAL_H
#define GLOCAL_GLOCAL_H

#include <stdint.h>

#if defined(__GNUC__)
#define GLOCAL_API __attribute__((visibility("default")))
#else
#define GLOCAL_API
#endif

#define GLOCAL_VERSION_MAJOR 0
#define GLOCAL_VERSION_MINOR 1
#define GLOCAL_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes (the values are stable). */
enum {
    GLOCAL_OK = 0,
    GLOCAL_EOF = 1,             /* end of data: not an error */
    GLOCAL_ENOMEM = -1,         /* allocation failed */
    GLOCAL_EINVAL = -2,         /* bad argument, or a call out of order */
    GLOCAL_EIO = -3,            /* file missing, unreadable or unwritable */
    GLOCAL_EFORMAT = -4,        /* file readable but not what was expected */
    GLOCAL_ETORCH = -5,         /* libtorch raised */
    GLOCAL_EUNSUPPORTED = -6,   /* valid but not supported here (codec, CUDA, ...) */
    GLOCAL_ENOTFOUND = -7,      /* a named item does not exist */
    GLOCAL_ECANCELED = -8,      /* interrupted */
    GLOCAL_ENUMERIC = -9,       /* NaN or divergence */
    GLOCAL_EFFMPEG = -10,       /* FFmpeg reported an error */
    GLOCAL_EHDF5 = -11,         /* HDF5 reported an error */
    GLOCAL_ESYSTEM = -12        /* the OS refused (threads, ...) */
};

/* ---- the library ------------------------------------------------------------ */

/* Sets the worker threads (threads > 0; 0 = every core) and the device models
 * run on: "cpu" (also NULL) or "cuda" (GLOCAL_EUNSUPPORTED when libtorch sees
 * no CUDA device). Decoding, flows and caches always run on the CPU. Both are
 * process-wide: libtorch's intra-op thread count is set, and glibc's malloc
 * keeps large freed blocks (libtorch's temporaries) instead of unmapping
 * them. May be called again to change them. [init] */
GLOCAL_API int glocal_init(int threads, const char *device);

/* "MAJOR.MINOR.PATCH" of the library loaded (static string). [any] */
GLOCAL_API const char *glocal_version(void);

/* The calling thread's last error message ("" when none); valid until the
 * thread's next failing call. [any] */
GLOCAL_API const char *glocal_last_error(void);

/* A short name for a return code ("invalid argument", ...); static string.
 * [any] */
GLOCAL_API const char *glocal_strerror(int code);

/* ---- GLOCAL motion ---------------------------------------------------------- */

typedef struct glocal_estimator glocal_estimator;

/* Flags of glocal_estimator_open. */
#define GLOCAL_NO_REFINE 0x1u     /* skip the robust (Gauss-Newton, Cauchy-weighted)
                                     refinement of the network's homography */
#define GLOCAL_LOCAL_LME 0x2u     /* local flow from the network's local branch
                                     (LME) alone; default: TV-L1 between A and B
                                     aligned by the homography, gated by the mask
                                     (still better: the project README) */
#define GLOCAL_LOCAL_UNGATED 0x4u /* with the TV-L1 local flow: keep it outside the
                                     mask too (the mask is computed the same) */

/* Opens an estimator. model: a checkpoint written by `glocal train-motion`
 * (HDF5), or NULL for no network: the homography then comes from the robust
 * refinement started at the identity, and the local flow from TV-L1 on the
 * aligned pair with its mask from the flow alone (GLOCAL_NO_REFINE and
 * GLOCAL_LOCAL_LME need a model: GLOCAL_EINVAL). flags: GLOCAL_* above, or 0.
 * Needs glocal_init() first (GLOCAL_EINVAL otherwise); the model goes to its
 * device. [any]: opening and closing different estimators at once is fine. */
GLOCAL_API int glocal_estimator_open(glocal_estimator **e, const char *model, unsigned flags);
GLOCAL_API void glocal_estimator_close(glocal_estimator **e);

/* The model's input side S (frames are resized to S x S for the network and
 * the results brought back to the frames' size); 0 without a model. [handle] */
GLOCAL_API int glocal_estimator_size(const glocal_estimator *e);

/* Motion from a[i] to b[i] for n >= 1 pairs of RGB24 frames, all
 * width x height (>= 8 x 8, any size). Writes, for each output not NULL:
 *   homographies  n * 9 doubles: the camera motion;
 *   global_flow   n * 2 * width * height floats: the homography's flow;
 *   local_flow    idem: the objects' motion on top of the camera's;
 *   mixed_flow    idem: global + local;
 *   mask          n * width * height floats: where things move.
 * The pairs go through the network as one batch. [handle] */
GLOCAL_API int glocal_estimate(glocal_estimator *e, const uint8_t *const *a,
                               const uint8_t *const *b, int n, int width, int height,
                               double *homographies, float *global_flow, float *local_flow,
                               float *mixed_flow, float *mask);

/* ---- classical flow ------------------------------------------------------- */

typedef enum {
    GLOCAL_FLOW_TVL1 = 0, /* TV-L1 (Zach et al. 2007, as in IPOL 2013), IPOL defaults */
    GLOCAL_FLOW_DIS = 1   /* DIS (Kroeger et al. 2016), OpenCV's "medium" preset */
} glocal_flow_method;

/* Dense flow from RGB24 frame a to b (grey levels, ITU-R BT.601), written to
 * flow (2 * width * height floats). TV-L1 needs frames >= 4 x 4, DIS >= 8 x 8
 * (its patches). [any] */
GLOCAL_API int glocal_flow(glocal_flow_method method, const uint8_t *a, const uint8_t *b,
                           int width, int height, float *flow);

/* The classical global / local split GLOCAL is compared with: the flow of the
 * pair, a RANSAC homography fitted to it (every 2nd pixel, 1 px inlier
 * threshold) as the camera motion, and flow minus that homography's flow as
 * the local motion (exactly 0 on the homography's inliers). Each output may
 * be NULL: homography (9 doubles), global_flow, local_flow, flow (2 * width *
 * height floats each). [any] */
GLOCAL_API int glocal_flow_baseline(glocal_flow_method method, const uint8_t *a,
                                    const uint8_t *b, int width, int height, double *homography,
                                    float *global_flow, float *local_flow, float *flow);

/* ---- video ---------------------------------------------------------------- */

typedef struct glocal_video glocal_video;

/* Opens a video file (anything FFmpeg decodes) for reading RGB24 frames in
 * order: at its own size (width = height = 0) or scaled to width x height
 * (bicubic, as `ffmpeg -vf scale`). Decodes the first frame, so a file that
 * opens has one. [any] */
GLOCAL_API int glocal_video_open(glocal_video **v, const char *path, int width, int height);
GLOCAL_API void glocal_video_close(glocal_video **v);

/* The frames' size as read, the number of frames (the container's count, or
 * counted by decoding when it has none) and the frame rate. Any pointer may
 * be NULL. [handle] */
GLOCAL_API int glocal_video_info(const glocal_video *v, int *width, int *height, long *frames,
                                 double *fps);

/* The next frame into rgb (width * height * 3 bytes): 0, GLOCAL_EOF after the
 * last frame, or a negative code. [handle] */
GLOCAL_API int glocal_video_read(glocal_video *v, uint8_t *rgb);

/* Skips n frames without converting them: 0, or GLOCAL_EOF when the video
 * ends first. [handle] */
GLOCAL_API int glocal_video_skip(glocal_video *v, long n);

/* ---- motion caches ---------------------------------------------------------- */

/* A cache written by `glocal extract`: per clip, the motion field of each
 * pair of frames (flow: 2 channels in pixels; rgbdiff: 3) on an h x w grid,
 * and, for the methods that estimate one, a homography per pair. */
typedef struct glocal_cache glocal_cache;

/* Opens the cache file at path for reading. [any] */

GLOCAL_API int glocal_cache_open(glocal_cache **c, const char *path);
GLOCAL_API void glocal_cache_close(glocal_cache **c);

/* What the cache holds; any pointer may be NULL. *method ("tvl1",
 * "glocal-local", ...) is borrowed until glocal_cache_close. [handle] */
GLOCAL_API int glocal_cache_info(const glocal_cache *c, const char **method, int *channels,
                                 int *height, int *width, long *clips);

/* The name of clip i (0 <= i < clips), in dataset order: the video's path
 * relative to its dataset, e.g. "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi".
 * Borrowed until glocal_cache_close. [handle] */
GLOCAL_API int glocal_cache_clip_name(const glocal_cache *c, long i, const char **name);

/* The clip called name: its number of pairs and class label (-1 unknown); each
 * pointer may be NULL. GLOCAL_ENOTFOUND when the cache has no such clip.
 * [handle] */
GLOCAL_API int glocal_cache_clip(const glocal_cache *c, const char *name, long *pairs,
                                 int *label);

/* n fields of clip name from pair `first` on: fields (may be NULL) gets
 * n * channels * height * width floats ([n][channels][height][width]; for
 * flows, pixels of the grid), homographies (may be NULL) n * 9 doubles
 * (GLOCAL_ENOTFOUND when the cache has none). GLOCAL_EINVAL when first + n
 * passes the clip's pairs. [handle] */
GLOCAL_API int glocal_cache_read(glocal_cache *c, const char *name, long first, long n,
                                 float *fields, double *homographies);

#ifdef __cplusplus
}
#endif
#endif
