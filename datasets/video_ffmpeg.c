/* video_ffmpeg.c — see video_ffmpeg.h. */
#include "datasets/video_ffmpeg.h"

#include <libavutil/error.h>
#include <libavutil/log.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base.h"

static _Thread_local char last_log[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void log_callback(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_ERROR) return;
    char line[256];
    int print_prefix = 1;
    va_list copy;
    va_copy(copy, vl);
    av_log_format_line2(avcl, level, fmt, copy, line, sizeof line, &print_prefix);
    va_end(copy);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n > 0) memcpy(last_log, line, n + 1);
}

static void install(void)
{
    const char *e = getenv("GLOCAL_FFMPEG_LOG");
    if (e && e[0] && strcmp(e, "0")) return;
    av_log_set_callback(log_callback);
}

void video_ffmpeg_init(void) { pthread_once(&once, install); }

const char *video_ffmpeg_last_log(void) { return last_log; }

void video_ffmpeg_clear_log(void) { last_log[0] = 0; }

const char *video_ffmpeg_strerror(int averr, char *buf, int size)
{
    if (av_strerror(averr, buf, (size_t)size) < 0) snprintf(buf, (size_t)size, "error %d", averr);
    return buf;
}

int video_ffmpeg_error(int code, const char *path, const char *what, int averr)
{
    char buf[128];
    const char *log = video_ffmpeg_last_log();
    return gl_error(code, "%s: %s: %s%s%s", path, what, video_ffmpeg_strerror(averr, buf, sizeof buf),
                    log[0] ? " — " : "", log);
}
