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
 *   at or before the start and decode forward to the exact timestamp. Times
 *   count from the first decoded frame (time 0 = frame 0): FFmpeg stamps the
 *   first frame of UCF-101's XviD AVIs (packed B-frames) one frame late, and
 *   gives their last frame no timestamp (extrapolated here by one frame).
 *
 *   A folder holding img_00001.jpg, img_00002.jpg, ... (mmaction2's
 *   rawframes, as denseflow writes them) is read as a video of those frames
 *   (FFmpeg's image2 demuxer, 25 fps), so extracted frames need no decoding
 *   of the original again.
 *
 *   The frame count in the header of a file is not trusted blindly: AVI files
 *   from UCF-101 carry it, others don't, some are wrong. video_count_frames()
 *   (or opts.count_frames) counts by decoding.
 *
 * Writer: MPEG-4 Part 2 (FFmpeg's "mpeg4" encoder, codec tag XVID) with a
 * fixed quantiser, as the UCF-101 clips are, or H.264 (libx264) at a constant
 * rate factor; the container follows the file name (.avi, .mp4, .mkv, ...;
 * AVI when FFmpeg knows no muxer for it). The audio stream of another file
 * can be copied in (video_writer_opts.audio_from: a re-encoded clip keeps
 * its sound). Output is bit-exact for the same input (bitexact flags,
 * single-threaded encoder), and written atomically: frames go to a temporary
 * file beside the target, renamed into place by a successful
 * video_writer_close(); video_writer_abort() or any failure leaves nothing at
 * the final path.
 *
 * Ownership: video_reader_open / video_writer_open allocate a handle that the
 * caller releases with video_reader_close / video_writer_close (or _abort);
 * those accept a pointer to NULL and set the handle to NULL. Frame buffers are
 * always the caller's, except in functions that say "allocates" (release with
 * gl_free).
 *
 * Errors: negative GL_E* codes with a message (gl_last_error()) that names
 * the file and what was wrong; GL_EOF (positive) at the end of the stream.
 * FFmpeg's own log is kept quiet; its last error line is appended to ours,
 * and its lines about a reader's file are counted (video_reader_log).
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

typedef enum { VIDEO_CODEC_MPEG4 = 0, VIDEO_CODEC_H264 = 1 } video_codec;

typedef struct {
    video_codec codec; /* default VIDEO_CODEC_MPEG4 */
    int qscale;        /* MPEG-4 quantiser 1..31, lower is better; default 2 */
    int crf;           /* H.264 constant rate factor 0..51 (0 lossless), lower is better;
                          default 18 (x264: "visually lossless") */
    int gop;           /* key frame every `gop` frames; default 12 */
    /* Copy the first audio stream of this file (packets as they are, no
     * re-encoding), shifted so that its time 0 is that file's first video
     * frame (the first frame written here) and cut at the end of the video
     * written; NULL (default), or a file without audio: no audio. GL_EUNSUPPORTED
     * when the container cannot hold that audio codec (PCM in .mp4, say). */
    const char *audio_from;
} video_writer_opts;

video_writer_opts video_writer_opts_default(void);
int video_writer_opts_validate(const video_writer_opts *o);

typedef struct video_writer video_writer;

/* Starts `path` (folders must exist; the extension picks the container).
 * width, height >= 2; MPEG-4 in 4:2:0 needs even sizes (odd ones are
 * rejected with GL_EINVAL), H.264 encodes odd sizes in 4:4:4 (High 4:4:4
 * profile: fewer players show it). fps > 0 (stored as a rational, e.g.
 * 29.97 -> 30000/1001). opts may be NULL. */
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

/* ------------------------------------------------------------------ reader */

typedef enum { VIDEO_U8 = 0, VIDEO_F32 = 1 } video_dtype;

/* libswscale's interpolation; BICUBIC is also the ffmpeg command's default,
 * so `ffmpeg -vf scale=W:H` gives the same pixels. AREA suits large
 * reductions. */
typedef enum {
    VIDEO_SCALE_BICUBIC = 0,
    VIDEO_SCALE_BILINEAR,
    VIDEO_SCALE_AREA,
    VIDEO_SCALE_POINT,
    VIDEO_SCALE_LANCZOS,
} video_scaler;

/* How info.frames is obtained (see video_count_frames). */
typedef enum {
    VIDEO_COUNT_IF_MISSING = 0, /* header count; decode to count only when it is absent */
    VIDEO_COUNT_HEADER,         /* header count, or duration * fps rounded when absent */
    VIDEO_COUNT_ALWAYS,         /* always count by decoding (one extra pass at open) */
} video_count_mode;

typedef struct {
    int channels;          /* 3 = RGB24 (default), 1 = gray (full-range luma) */
    video_dtype dtype;     /* VIDEO_U8 (default) or VIDEO_F32: value / 255, in [0, 1] */
    int width, height;     /* output size in pixels; 0, 0 = native (or the scaled size, below) */
    int short_side;        /* > 0: scale so the shorter side is short_side pixels, aspect kept,
                              then centre-crop width x height (both 0: no crop) */
    video_scaler scaler;   /* default VIDEO_SCALE_BICUBIC */
    int threads;           /* decoder threads; 0 = gl_num_threads() */
    video_count_mode count;
    long timeout_ms;       /* > 0: open, reads and seeks that run past this many ms after
                              open fail with GL_ECANCELED (a guard for hostile files) */
} video_reader_opts;

video_reader_opts video_reader_opts_default(void);
int video_reader_opts_validate(const video_reader_opts *o);

typedef struct {
    long frames;           /* number of frames; see frames_source */
    int frames_source;     /* 0 container header, 1 counted by decoding, 2 estimated
                              from duration * fps (no count anywhere) */
    double fps;            /* average frame rate (frames per second) */
    int width, height;     /* native size of the decoded pictures */
    double duration_s;     /* container's duration of the video stream, seconds */
    char codec[32];        /* FFmpeg's decoder name, e.g. "mpeg4", "h264" */
    int out_width, out_height, out_channels;
    video_dtype out_dtype;
    size_t frame_bytes;    /* bytes of one output frame */
} video_info;

typedef struct {
    long index;            /* 0-based frame number (after a seek: from the timestamp) */
    double time_s;         /* presentation time, seconds, counted from the first frame */
} video_frame_info;

typedef struct video_reader video_reader;

/* Opens `path` and decodes its first frame (so a file that opens has at least
 * one decodable picture). opts may be NULL (defaults). */
int video_reader_open(video_reader **r, const char *path, const video_reader_opts *opts);
void video_reader_info(const video_reader *r, video_info *info);
/* Decodes the next frame into out (info.frame_bytes bytes); fi may be NULL.
 * Returns 0, GL_EOF after the last frame, or a negative code. */
int video_reader_read(video_reader *r, void *out, video_frame_info *fi);
/* Like read, without converting the picture (cheaper). */
int video_reader_skip(video_reader *r, video_frame_info *fi);
/* Positions the reader so that the next read returns the first frame whose
 * timestamp is >= ms milliseconds: seeks to the key frame at or before it,
 * then decodes forward. GL_EOF if ms is past the last frame. */
int video_reader_seek_ms(video_reader *r, double ms);
/* Packets the decoder rejected so far (corrupt data it skipped). */
long video_reader_corrupt_packets(const video_reader *r);
/* FFmpeg's error lines about this file so far (decoding damaged data, e.g.
 * "[mpeg4 @ 0x...] ac-tex damaged at 3 3"): returns how many; the first few
 * go into buf ("; " between them, cut to n bytes; buf may be NULL). They are
 * never printed; GLOCAL_LOG=debug prints every FFmpeg line to stderr as it
 * comes, prefixed with the file. */
long video_reader_log(const video_reader *r, char *buf, size_t n);
/* Whether r's file looks damaged after `frames` frames decoded to its end:
 * FFmpeg's decoding errors (video_reader_log), rejected packets, or more
 * than 2 frames fewer than the header says (UCF-101's AVIs may be 1 short).
 * Returns 1 with the reason in why ("header says 164 frames, 80 decode;
 * 3 decoding errors, 0 packets rejected: ..."), or 0 and "". */
int video_reader_damage(const video_reader *r, long frames, char *why, size_t n);
void video_reader_close(video_reader **r);

/* Counts frames by decoding the whole video stream. */
int video_count_frames(const char *path, long *frames);

/* Decodes the frames with the given 0-based indices (any order, repeats
 * allowed) into out, n frames of info.frame_bytes each, in the order given.
 * Decodes sequentially from the start. GL_ENOTFOUND if an index is past the
 * last frame. If info is not NULL it receives the stream's info. */
int video_decode_frames(const char *path, const video_reader_opts *opts, const long *indices,
                        long n, void *out, video_info *info);
/* Allocates: every step-th frame (0, step, 2 step, ...) of the whole video;
 * step 1 = all frames. *out holds *n frames (gl_free it). */
int video_decode_all(const char *path, const video_reader_opts *opts, int step, void **out,
                     long *n, video_info *info);
/* Allocates: the frames whose timestamps t satisfy start_ms <= t < end_ms
 * (milliseconds from the first frame). *first_index (may be NULL)
 * receives the index of the first one. GL_ENOTFOUND if none lies there. */
int video_decode_window_ms(const char *path, const video_reader_opts *opts, double start_ms,
                           double end_ms, void **out, long *n, long *first_index,
                           video_info *info);

/* Index helpers. Centre frame of each of nseg equal segments (TSN sampling,
 * Wang et al. 2016, test-time form): out[i] = floor((2i+1) nframes / (2 nseg)). */
int video_indices_segments(long nframes, int nseg, long *out);
/* Every step-th index from start: writes min(cap, count) and returns count
 * (or a negative code). */
long video_indices_every(long nframes, long start, int step, long *out, long cap);

#ifdef __cplusplus
}
#endif
#endif
