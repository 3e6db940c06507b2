/* fuzz_video.c — video open and the first frames (datasets/video.h). The
 * regression corpus of tests/test_video_fuzz.c (the .avi files in tests/fuzz) seeds it. */
#include "tests/fuzz/fuzz_util.h"

#include "datasets/video.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write("clip.avi", data, size, path, sizeof path);
    video_reader_opts o = video_reader_opts_default();
    o.threads = 1;
    o.timeout_ms = 2000;   /* a hang shows as GL_ECANCELED, not a stuck fuzzer */
    /* Small outputs keep swscale cheap; odd inputs also try gray float. */
    o.width = 32;
    o.height = 24;
    if (size & 1) {
        o.channels = 1;
        o.dtype = VIDEO_F32;
    }
    video_reader *r = NULL;
    if (video_reader_open(&r, path, &o) == 0) {
        video_info info;
        video_reader_info(r, &info);
        void *frame = malloc(info.frame_bytes);
        if (!frame) abort();
        for (int i = 0; i < 4; i++)
            if (video_reader_read(r, frame, NULL) != 0) break;
        char why[256];
        video_reader_damage(r, 4, why, sizeof why);
        free(frame);
    }
    video_reader_close(&r);
    return 0;
}
