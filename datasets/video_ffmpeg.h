/*
 * video_ffmpeg.h — private to datasets/: FFmpeg's log kept off stderr, and
 * its last error line kept per thread so our messages can quote it.
 */
#ifndef GLOCAL_DATASETS_VIDEO_FFMPEG_H
#define GLOCAL_DATASETS_VIDEO_FFMPEG_H

/* Installs the log callback once (idempotent, thread-safe). Set the
 * environment variable GLOCAL_FFMPEG_LOG=1 to let FFmpeg print as usual. */
void video_ffmpeg_init(void);
/* The calling thread's last FFmpeg error line ("" if none), without newline. */
const char *video_ffmpeg_last_log(void);
void video_ffmpeg_clear_log(void);
/* "Invalid data found when processing input" for an AVERROR code. */
const char *video_ffmpeg_strerror(int averr, char *buf, int size);
/* gl_error(code, "PATH: WHAT: <FFmpeg's reason> — <its last log line>"). */
int video_ffmpeg_error(int code, const char *path, const char *what, int averr);

#endif
