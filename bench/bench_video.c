/*
 * bench_video — decoding + conversion throughput of datasets/video.h.
 *
 *   bench_video CLIP [--loops L] [--reps R] [--threads T]
 *
 * For each output (native RGB24, 171x128 and 112x112 RGB24 bicubic, short
 * side 128 + 112x112 crop as float32), decodes the clip L times in a row
 * (open, every frame, close) and reports the best of R repetitions as
 * frames per second, one line each:
 *     video <name> <frames/s> <frames> <seconds>
 * scripts/bench compares these with the ffmpeg command on the same clip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/video.h"

typedef struct {
    const char *name;
    int width, height, short_side, channels;
    video_dtype dtype;
} bench_case;

static int run_once(const char *clip, const video_reader_opts *o, int loops, long *frames)
{
    video_reader *r = NULL;
    void *buf = NULL;
    int rc = 0;
    *frames = 0;
    for (int l = 0; l < loops; l++) {
        if ((rc = video_reader_open(&r, clip, o)) < 0) goto fail;
        video_info in;
        video_reader_info(r, &in);
        if (!buf && !(buf = malloc(in.frame_bytes))) { rc = GL_ENOMEM; goto fail; }
        while ((rc = video_reader_read(r, buf, NULL)) == 0) ++*frames;
        if (rc < 0) goto fail;
        video_reader_close(&r);
    }
    rc = 0;
fail:
    video_reader_close(&r);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    const char *clip = NULL;
    int loops = 10, reps = 5, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--loops") && i + 1 < argc) loops = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !clip) clip = argv[i];
        else {
            fprintf(stderr, "usage: bench_video CLIP [--loops L] [--reps R] [--threads T]\n");
            return 2;
        }
    }
    if (!clip || loops < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_video CLIP [--loops L] [--reps R] [--threads T]\n");
        return 2;
    }
    static const bench_case cases[] = {
        { "native_rgb24", 0, 0, 0, 3, VIDEO_U8 },
        { "resize_171x128_rgb24", 171, 128, 0, 3, VIDEO_U8 },
        { "resize_112x112_rgb24", 112, 112, 0, 3, VIDEO_U8 },
        { "short128_crop112_f32", 112, 112, 128, 3, VIDEO_F32 },
        { "resize_112x112_gray", 112, 112, 0, 1, VIDEO_U8 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        video_reader_opts o = video_reader_opts_default();
        o.width = cases[c].width;
        o.height = cases[c].height;
        o.short_side = cases[c].short_side;
        o.channels = cases[c].channels;
        o.dtype = cases[c].dtype;
        o.threads = threads;
        double best = 1e30;
        long frames = 0;
        for (int k = 0; k < reps; k++) {
            double t0 = gl_now();
            int rc = run_once(clip, &o, loops, &frames);
            double t = gl_now() - t0;
            if (rc < 0) {
                fprintf(stderr, "bench_video: %s: %s\n", cases[c].name, gl_last_error());
                return 1;
            }
            if (t < best) best = t;
        }
        printf("video %s %.1f %ld %.4f\n", cases[c].name, frames / best, frames, best);
        fflush(stdout);
    }
    return 0;
}
