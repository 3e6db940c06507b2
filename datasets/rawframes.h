/*
 * rawframes.h — motion caches to and from mmaction2's "rawframes" layout, the
 * one denseflow writes (github.com/open-mmlab/denseflow, src/common.cpp) and
 * mmaction2's RawframeDataset reads (tools/data/ucf101/README.md):
 *
 *     OUT/<Class>/<clip>/flow_x_00001.jpg, flow_y_00001.jpg, ...
 *
 * (with img_00001.jpg, ... RGB frames when asked), one 8-bit grey JPEG per
 * flow component and pair, numbered from 1 (denseflow
 * writes "_%05d.jpg" with i + 1; RawframeDataset's start_index is 1). A value
 * f (pixels) is stored as round(255 (f + bound) / (2 bound)), saturated to
 * 0..255 (denseflow's CAST with cvRound: round half to even), bound = 20 px
 * by default; one level is 2 bound / 255 = 0.157 px. JPEG quality 95 is what
 * OpenCV's imencode uses when, as in denseflow, no quality is given.
 * <clip> is the clip's name in the cache without its extension
 * ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi" -> "ApplyEyeMakeup/
 * v_ApplyEyeMakeup_g01_c01"), as mmaction2's build_file_list names it.
 *
 * Annotation files (mmaction2 tools/data/build_file_list.py, rawframes
 * format): NAME_train_split_N_rawframes.txt (the train list) and
 * NAME_val_split_N_rawframes.txt (UCF-101's test list: mmaction2 calls it
 * val), one line "<Class>/<clip> <frames> <label>" per clip, label 0-based
 * (classInd.txt index - 1, as mmaction2's parse_ucf101_splits), frames = the
 * clip's flow images per component.
 *
 * Crash safety: a clip folder is written as OUT/<Class>/.<clip>.partial and
 * renamed when whole, so a folder that exists is complete; an export that is
 * run again skips those. The annotation files are written temp-then-rename.
 *
 * JPEG through libjpeg-turbo's TurboJPEG API (Debian libturbojpeg0-dev):
 * grey, 4:0:0, the accurate integer DCT (OpenCV's libjpeg default). Reading
 * goes through image.h (FFmpeg's mjpeg decoder).
 *
 * Errors: negative GL_E* codes with a message naming the file; a clip that
 * cannot be read or written is reported through the callback and skipped.
 */
#ifndef GLOCAL_DATASETS_RAWFRAMES_H
#define GLOCAL_DATASETS_RAWFRAMES_H

#include <stdint.h>

#include "datasets/cache.h"
#include "datasets/ucf101.h"
#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RAWFRAMES_BOUND_DEFAULT 20.0
#define RAWFRAMES_QUALITY_DEFAULT 95

/* round(255 (f + bound) / (2 bound)) saturated to 0..255, half to even. */
uint8_t rawframes_flow_to_u8(float f, double bound);
/* The inverse of a level: v * 2 bound / 255 - bound (pixels). */
float rawframes_u8_to_flow(uint8_t v, double bound);

/* Writes w*h*channels bytes (channels 1 = grey, 3 = RGB24) as a baseline JPEG
 * at quality 1..100 (not atomically: the export writes into a folder that is
 * renamed when whole). */
int rawframes_write_jpeg(const char *path, const uint8_t *data, int w, int h, int channels, int quality);

typedef struct {
    double bound;         /* pixels mapped to 0 and 255; > 0 */
    int quality;          /* JPEG quality 1..100 */
    const char *name;     /* annotation file prefix ("ucf101") */
    int split_no;         /* N of the annotation file names */
    const char *frames;   /* NULL, or the video root: also img_%05d.jpg, every frame of
                             FRAMES/<clip name> as RGB at the cache's grid */
    int workers;          /* clips exported at once (threads, each with its own cache handle) */
} rawframes_export_options;

rawframes_export_options rawframes_export_options_default(void);

/* What an export or import did. */
typedef struct {
    long clips;      /* clips written (or imported) now */
    long skipped;    /* clips already complete from an earlier run */
    long failed;     /* clips reported and left out */
    long frames;     /* flow images per component written (or read) now */
    long saturated;  /* values beyond +-bound (stored as 0 or 255) */
} rawframes_summary;

/* Called once per clip that fails, with its name and why. */
typedef void (*rawframes_report_fn)(void *ctx, const char *clip, const char *why);

/* Exports every clip of the flow cache (2 channels) at CACHE_PATH into out
 * (created) and writes the annotation files for all clips whose folder is
 * complete. Returns 0 when every clip is there, 1 when some failed (each
 * reported), or a negative code when the export could not run (cache
 * unreadable, not flow, out not writable). */
int rawframes_export(const char *cache_path, const char *out, const rawframes_export_options *opt,
                     rawframes_report_fn report, void *ctx, rawframes_summary *sum);

/* Reads the flow images of one clip folder: *n pairs (contiguous from 00001,
 * flow_x and flow_y both; or x_ and y_, mmaction2's "{}_{:05d}.jpg"
 * template), into *fields [n, 2, h, w] pixels (gl_free it). GL_ENOTFOUND
 * when the folder has no flow_x_00001.jpg nor x_00001.jpg; GL_EFORMAT for an
 * unreadable image or one whose size differs from the first. */
int rawframes_read_flow(const char *dir, double bound, float **fields, int *n, int *h, int *w);

/* Builds (or resumes) the flow cache out from the clip folders under dir for
 * every clip of idx (dir/<Class>/<clip>, the list's name without its
 * extension). method names the flow ("denseflow" when NULL). Clips without a
 * folder or with unreadable images, or of another size than the first, are
 * recorded in the cache's /errors and reported. Returns 0 / 1 / negative as
 * rawframes_export. */
int rawframes_import(const char *dir, const dataset_index *idx, double bound, const char *method, const char *out,
                     rawframes_report_fn report, void *ctx, rawframes_summary *sum);

#ifdef __cplusplus
}
#endif
#endif
