/*
 * video.h — reading and writing video files through FFmpeg.
 *
 * Reader: opens anything libavformat/libavcodec read (AVI with XviD/DivX,
 * MP4 with H.264, odd widths, files with audio tracks) and returns decoded
 * frames as packed HWC pixels: RGB24 or gray, uint8 or float32 in [0, 1], at
 * the native size, at a requested WxH, or with the shorter side scaled to S
 * and a centre crop of WxH (the usual two-stream preprocessing, e.g. Simonyan
 * & Zisserman 2014 / TSN: shorter side 256 then crop 224).
 *
 *   Frame numbering is decode order of displayed frames, 0-based: frame i is
 *   the i-th picture the decoder outputs when it decodes from the start. Index
 *   access therefore decodes sequentially (never seeks), so it is exact even
 *   where the container's index is wrong. Time windows seek to the key frame
 *   at or before the start and decode forward to the exact timestamp.
 *
 *   The frame count in the header of a file is not trusted blindly: AVI files
 *   from UCF-101 carry it, others don't, some are wrong. video_count_frames()
 *   (or opts.count_frames) counts by decoding.
 *
 * Writer: MPEG-4 Part 2 (FFmpeg's "mpeg4" encoder, codec tag XVID) in AVI, as
 * the UCF-101 clips are, with a fixed quantiser. Output is bit-exact for the
 * same input (bitexact flags, single-threaded encoder), and written atomically:
 * frames go to a temporary file beside the target, renamed into place by a
 * successful video_writer_close(); video_writer_abort() or any failure leaves
 * nothing at the final path.
 *
 * Ownership: video_reader_open / video_writer_open allocate a handle that the
 * caller releases with video_reader_close / video_writer_close (or _abort);
 * those accept a pointer to NULL and set the handle to NULL. Frame buffers are
 * always the caller's, except in functions that say "allocates" (release with
 * gl_free).
 *
 * Errors: negative GL_E* codes with a message (gl_last_error()) that names
 * the file and what was wrong; GL_EOF (positive) at the end of the stream.
 * FFmpeg's own log is kept quiet; its last error line is appended to ours.
 * Corrupt files never crash or hang: see opts.timeout_ms.
 */
#ifndef GLOCAL_DATASETS_VIDEO_H
#define GLOCAL_DATASETS_VIDEO_H

#include <stddef.h>
#include <stdint.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ writer */

typedef struct {
    int qscale;        /* MPEG-4 quantiser 1..31, lower is better; default 2 */
    int gop;           /* key frame every `gop` frames; default 12 */
} video_writer_opts;

video_writer_opts video_writer_opts_default(void);
int video_writer_opts_validate(const video_writer_opts *o);

typedef struct video_writer video_writer;

/* Starts `path` (an .avi; folders must exist). width, height >= 2 (MPEG-4 in
 * 4:2:0 needs even sizes: odd ones are rejected with GL_EINVAL), fps > 0
 * (stored as a rational, e.g. 29.97 -> 30000/1001). opts may be NULL. */
int video_writer_open(video_writer **w, const char *path, int width, int height, double fps,
                      const video_writer_opts *opts);
/* One frame of width*height*3 bytes, RGB24, rows packed top to bottom. */
int video_writer_write_rgb(video_writer *w, const uint8_t *rgb);
/* One frame of width*height bytes, 8-bit gray (encoded as luma, flat chroma). */
int video_writer_write_gray(video_writer *w, const uint8_t *gray);
/* Flushes the encoder, finishes the file and renames it into place. Returns 0
 * or the first error of the whole writer's life (then no file is left). Always
 * frees the writer and sets *w = NULL. */
int video_writer_close(video_writer **w);
/* Discards everything written: no file is left at the path. */
void video_writer_abort(video_writer **w);

#ifdef __cplusplus
}
#endif
#endif
