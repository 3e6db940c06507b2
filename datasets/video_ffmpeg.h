/*
 * video_ffmpeg.h — private to datasets/: FFmpeg's log kept off stderr, and
 * its last error line kept per thread so our messages can quote it.
 */
#ifndef GLOCAL_DATASETS_VIDEO_FFMPEG_H
#define GLOCAL_DATASETS_VIDEO_FFMPEG_H

/* Installs the log callback once (idempotent, thread-safe). Set the
 * environment variable GLOCAL_FFMPEG_LOG=1 to let FFmpeg print as usual. */
void video_ffmpeg_init(void);
/* FFmpeg's error lines about one file: counted, the first few kept (so a
 * damaged file reports "ac-tex damaged at 3 3" and how many more, not one
 * line per macroblock). path is borrowed. */
#define VIDEO_FFMPEG_KEEP 3
#define VIDEO_FFMPEG_LOG_MAGIC 0x676c6f67u
typedef struct {
    unsigned magic;     /* VIDEO_FFMPEG_LOG_MAGIC: a decoder's opaque may point here */
    const char *path;
    long count;
    char first[VIDEO_FFMPEG_KEEP][160];
} video_ffmpeg_log;

/* A decoder (AVCodecContext) whose opaque points to a video_ffmpeg_log sends
 * its lines there from any thread (FFmpeg's frame threads); other lines go to
 * the calling thread's destination: */
/* Sends the calling thread's FFmpeg lines to lg (NULL: nowhere) and returns
 * the previous destination, to put back. Decoding runs in several threads
 * (extract's workers): each thread names its own current file. With
 * GLOCAL_LOG=debug every line (verbose level and up) also goes to stderr as
 * "ffmpeg: PATH: LINE". */
video_ffmpeg_log *video_ffmpeg_log_route(video_ffmpeg_log *lg);
video_ffmpeg_log *video_ffmpeg_log_current(void);

/* The calling thread's last FFmpeg error line ("" if none), without newline. */
const char *video_ffmpeg_last_log(void);
void video_ffmpeg_clear_log(void);
/* "Invalid data found when processing input" for an AVERROR code. */
const char *video_ffmpeg_strerror(int averr, char *buf, int size);
/* gl_error(code, "PATH: WHAT: <FFmpeg's reason> — <its last log line>"). */
int video_ffmpeg_error(int code, const char *path, const char *what, int averr);

#endif
