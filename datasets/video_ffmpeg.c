/* video_ffmpeg.c — see video_ffmpeg.h. */
#include "datasets/video_ffmpeg.h"

#include <libavcodec/avcodec.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/base.h"

static _Thread_local char last_log[256];
static _Thread_local video_ffmpeg_log *route;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int debug; /* GLOCAL_LOG=debug */

/* The file a line is about: the decoder's own (any thread), else this thread's. */
static video_ffmpeg_log *route_of(void *avcl)
{
    const AVClass *c = avcl ? *(const AVClass **)avcl : NULL;
    if (c && c->class_name && !strcmp(c->class_name, "AVCodecContext")) {
        video_ffmpeg_log *lg = ((AVCodecContext *)avcl)->opaque;
        if (lg && lg->magic == VIDEO_FFMPEG_LOG_MAGIC) return lg;
    }
    return route;
}

static void log_callback(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > (debug ? AV_LOG_VERBOSE : AV_LOG_ERROR)) return;
    char line[256];
    int print_prefix = 1;
    va_list copy;
    va_copy(copy, vl);
    av_log_format_line2(avcl, level, fmt, copy, line, sizeof line, &print_prefix);
    va_end(copy);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    if (n == 0) return;
    video_ffmpeg_log *lg = route_of(avcl);
    if (debug) fprintf(stderr, "ffmpeg: %s: %s\n", lg && lg->path ? lg->path : "-", line);
    if (level > AV_LOG_ERROR) return;
    memcpy(last_log, line, n + 1);
    if (lg) { /* frame threads of one decoder may race on the count: it is a tally, not an index */
        long k = __atomic_fetch_add(&lg->count, 1, __ATOMIC_RELAXED);
        if (k < VIDEO_FFMPEG_KEEP) { /* "mpeg4: ac-tex damaged at 3 3", without the address */
            char msg[256];
            int no_prefix = 0;
            va_copy(copy, vl);
            av_log_format_line2(NULL, level, fmt, copy, msg, sizeof msg, &no_prefix);
            va_end(copy);
            msg[strcspn(msg, "\r\n")] = 0;
            const AVClass *c = avcl ? *(const AVClass **)avcl : NULL;
            snprintf(lg->first[k], sizeof lg->first[0], "%s%s%s", c ? c->item_name(avcl) : "",
                     c ? ": " : "", msg);
        }
    }
}

video_ffmpeg_log *video_ffmpeg_log_route(video_ffmpeg_log *lg)
{
    video_ffmpeg_log *prev = route;
    route = lg;
    return prev;
}

video_ffmpeg_log *video_ffmpeg_log_current(void) { return route; }

static void install(void)
{
    const char *e = getenv("GLOCAL_FFMPEG_LOG");
    if (e && e[0] && strcmp(e, "0")) return;
    e = getenv("GLOCAL_LOG");
    debug = e && !strcmp(e, "debug");
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
