/*
 * test_video.c — datasets/video.h against independent truth: the ffmpeg
 * command's decode of the same real clips (a UCF-101 clip and a cut of
 * OpenCV's vtest.avi and box.mp4), the frame counts stated for them in
 * tests/data/README.md (ffprobe -count_frames), sequential decoding for the
 * index/seek paths, and known synthetic frames for the writer. Malformed
 * and fuzzed files: test_video_fuzz.c.
 */
#include <math.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/testutil.h"
#include <json-c/json.h>

#include <libavformat/avformat.h>

#include "datasets/video.h"

#define CLIP GLOCAL_DATA_DIR "/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi"
/* 164 frames, 320x240, 25 fps, XviD; 50 frames, 768x576, 10 fps, MS-MPEG-4 v3
 * (tests/data/README.md). */
#define CLIP2 GLOCAL_DATA_DIR "/video/vtest_50.avi"
/* 150 frames, 640x480, 29.97 fps, H.264 with B-frames; its first frames carry
 * the source's own slice errors, yet all 150 decode (tests/data/README.md). */
#define BOX GLOCAL_DATA_DIR "/video/box_150.mp4"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_video.");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

static int have_ffmpeg(void) { return system("ffmpeg -version >/dev/null 2>&1") == 0; }

/* Runs an ffmpeg command writing raw frames to stdout; returns the bytes read
 * (up to cap). */
static size_t ffmpeg_raw(const char *args, uint8_t *buf, size_t cap)
{
    char cmd[1024];
    /* -vsync passthrough: one output frame per decoded frame. The default
     * (constant rate for rawvideo) duplicates frame 0 of these XviD files,
     * whose packed B-frames make FFmpeg's first timestamp 1, not 0. */
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error %s -vsync passthrough -f rawvideo -", args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = 0, r;
    while (n < cap && (r = fread(buf + n, 1, cap - n, p)) > 0) n += r;
    uint8_t sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {}
    pclose(p);
    return n;
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static void test_info_and_counts(void **state)
{
    (void)state;
    video_reader *r;
    video_info in;
    assert_int_equal(video_reader_open(&r, CLIP, NULL), 0);
    video_reader_info(r, &in);
    assert_int_equal(in.frames, 164);
    assert_int_equal(in.width, 320);
    assert_int_equal(in.height, 240);
    assert_true(fabs(in.fps - 25.0) < 1e-9);
    assert_true(fabs(in.duration_s - 164 / 25.0) < 0.05);
    assert_string_equal(in.codec, "mpeg4");
    assert_int_equal(in.frame_bytes, 320 * 240 * 3);
    long n = 0;
    video_frame_info fi;
    uint8_t *buf = malloc(in.frame_bytes);
    int rc;
    while ((rc = video_reader_read(r, buf, &fi)) == 0) {
        assert_int_equal(fi.index, n);
        assert_true(fabs(fi.time_s - n / 25.0) < 1e-6);
        n++;
    }
    assert_int_equal(rc, GL_EOF);
    assert_int_equal(n, 164);
    assert_int_equal(video_reader_read(r, buf, NULL), GL_EOF);  /* stays at the end */
    video_reader_close(&r);
    assert_null(r);
    free(buf);

    assert_int_equal(video_count_frames(CLIP, &n), 0);
    assert_int_equal(n, 164);
    assert_int_equal(video_count_frames(CLIP2, &n), 0);
    assert_int_equal(n, 50);
    video_reader_opts o = video_reader_opts_default();
    o.count = VIDEO_COUNT_ALWAYS;
    assert_int_equal(video_reader_open(&r, CLIP2, &o), 0);
    video_reader_info(r, &in);
    assert_int_equal(in.frames, 50);
    assert_int_equal(in.frames_source, 1);
    video_reader_close(&r);
}

/* Frames 0 and 100 at native size against `ffmpeg -pix_fmt rgb24` / gray. */
static void test_pixels_match_ffmpeg(void **state)
{
    (void)state;
    if (!have_ffmpeg()) skip();
    const size_t fb = 320 * 240 * 3;
    uint8_t *ref = malloc(fb * 101), *ours = malloc(fb * 2);
    assert_int_equal(ffmpeg_raw("-i " CLIP " -frames:v 101 -pix_fmt rgb24", ref, fb * 101), fb * 101);
    long idx[2] = { 0, 100 };
    assert_int_equal(video_decode_frames(CLIP, NULL, idx, 2, ours, NULL), 0);
    /* Found: identical (same libswscale path, same default bicubic flags). */
    assert_int_equal(max_abs_diff(ours, ref, fb), 0);
    assert_int_equal(max_abs_diff(ours + fb, ref + 100 * fb, fb), 0);
    /* Frames differ from each other, so the comparison has teeth. */
    assert_true(max_abs_diff(ref, ref + 100 * fb, fb) > 20);

    video_reader_opts o = video_reader_opts_default();
    o.channels = 1;
    const size_t gb = 320 * 240;
    assert_int_equal(ffmpeg_raw("-i " CLIP " -frames:v 101 -pix_fmt gray", ref, gb * 101), gb * 101);
    assert_int_equal(video_decode_frames(CLIP, &o, idx, 2, ours, NULL), 0);
    int d0 = max_abs_diff(ours, ref, gb), d100 = max_abs_diff(ours + gb, ref + 100 * gb, gb);
    print_message("gray: max |ours - ffmpeg| = %d (frame 0), %d (frame 100)\n", d0, d100);
    assert_true(d0 <= 2 && d100 <= 2);
    free(ref);
    free(ours);
}

/* Real H.264 with B-frames and a damaged start (box_150.mp4): every frame
 * comes out, in order (the last ones only when the decoder is drained at the
 * end), identical to the ffmpeg command's decode, by index as sequentially,
 * and the damage is reported, not fatal. */
static void test_real_h264_damaged(void **state)
{
    (void)state;
    long n;
    assert_int_equal(video_count_frames(BOX, &n), 0);
    assert_int_equal(n, 150);
    video_reader *r;
    video_info in;
    assert_int_equal(video_reader_open(&r, BOX, NULL), 0);
    video_reader_info(r, &in);
    assert_int_equal(in.width, 640);
    assert_int_equal(in.height, 480);
    assert_string_equal(in.codec, "h264");
    const size_t fb = in.frame_bytes;
    uint8_t *seq = malloc(fb * 3), *buf = malloc(fb);
    video_frame_info fi;
    int rc;
    n = 0;
    while ((rc = video_reader_read(r, buf, &fi)) == 0) {
        assert_int_equal(fi.index, n);
        if (n == 0 || n == 75 || n == 149) memcpy(seq + fb * (n == 0 ? 0 : n == 75 ? 1 : 2), buf, fb);
        n++;
    }
    assert_int_equal(rc, GL_EOF);
    assert_int_equal(n, 150);
    char why[512];
    assert_int_equal(video_reader_damage(r, n, why, sizeof why), 1);
    assert_non_null(strstr(why, "decoding error"));
    video_reader_close(&r);

    long idx[3] = { 149, 0, 75 };
    uint8_t *byidx = malloc(fb * 3);
    assert_int_equal(video_decode_frames(BOX, NULL, idx, 3, byidx, NULL), 0);
    assert_int_equal(max_abs_diff(byidx, seq + 2 * fb, fb), 0);
    assert_int_equal(max_abs_diff(byidx + fb, seq, fb), 0);
    assert_int_equal(max_abs_diff(byidx + 2 * fb, seq + fb, fb), 0);
    if (have_ffmpeg()) {
        uint8_t *ref = malloc(fb * 150);
        assert_int_equal(ffmpeg_raw("-i " BOX " -pix_fmt rgb24", ref, fb * 150), fb * 150);
        assert_int_equal(max_abs_diff(seq, ref, fb), 0);
        assert_int_equal(max_abs_diff(seq + fb, ref + 75 * fb, fb), 0);
        assert_int_equal(max_abs_diff(seq + 2 * fb, ref + 149 * fb, fb), 0);
        assert_true(max_abs_diff(ref, ref + 149 * fb, fb) > 20); /* the frames differ */
        free(ref);
    }
    free(seq);
    free(buf);
    free(byidx);
}

/* Resized output against `-vf scale=W:H:flags=...` with the same flags. */
static void test_resize_matches_ffmpeg(void **state)
{
    (void)state;
    if (!have_ffmpeg()) skip();
    static const struct { int w, h; video_scaler s; const char *flags; } cases[] = {
        { 171, 128, VIDEO_SCALE_BICUBIC, "bicubic" },
        { 112, 112, VIDEO_SCALE_BILINEAR, "bilinear" },
        { 64, 48, VIDEO_SCALE_AREA, "area" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const size_t fb = (size_t)cases[c].w * cases[c].h * 3;
        uint8_t *ref = malloc(fb * 31), *ours = malloc(fb);
        char args[512];
        snprintf(args, sizeof args, "-i %s -frames:v 31 -vf scale=%d:%d:flags=%s -pix_fmt rgb24", CLIP,
                 cases[c].w, cases[c].h, cases[c].flags);
        assert_int_equal(ffmpeg_raw(args, ref, fb * 31), fb * 31);
        video_reader_opts o = video_reader_opts_default();
        o.width = cases[c].w;
        o.height = cases[c].h;
        o.scaler = cases[c].s;
        long idx = 30;
        video_info in;
        assert_int_equal(video_decode_frames(CLIP, &o, &idx, 1, ours, &in), 0);
        assert_int_equal(in.out_width, cases[c].w);
        assert_int_equal(in.frame_bytes, fb);
        int d = max_abs_diff(ours, ref + 30 * fb, fb);
        print_message("resize %dx%d %s: max |ours - ffmpeg| = %d\n", cases[c].w, cases[c].h,
                      cases[c].flags, d);
        assert_true(d <= 2);
        free(ref);
        free(ours);
    }
}

/* Short side 128 + centre crop 112x112 is the 171x128 resize cropped at
 * ((171-112)/2, (128-112)/2) = (29, 8); float32 is u8 / 255. */
static void test_crop_and_float(void **state)
{
    (void)state;
    video_reader_opts o = video_reader_opts_default();
    o.width = 171;
    o.height = 128;
    uint8_t *full = malloc(171 * 128 * 3);
    long idx = 7;
    assert_int_equal(video_decode_frames(CLIP, &o, &idx, 1, full, NULL), 0);
    o.short_side = 128;
    o.width = o.height = 112;
    o.dtype = VIDEO_F32;
    float *crop = malloc(112 * 112 * 3 * sizeof(float));
    video_info in;
    assert_int_equal(video_decode_frames(CLIP, &o, &idx, 1, crop, &in), 0);
    assert_int_equal(in.frame_bytes, 112 * 112 * 3 * sizeof(float));
    for (int y = 0; y < 112; y++)
        for (int x = 0; x < 112 * 3; x++) {
            float want = full[(size_t)(y + 8) * 171 * 3 + 29 * 3 + x] / 255.0f;
            assert_true(fabsf(crop[y * 112 * 3 + x] - want) < 1e-6f);
        }
    /* Short side only: aspect kept, no crop. */
    o.width = o.height = 0;
    o.dtype = VIDEO_U8;
    video_reader *r;
    assert_int_equal(video_reader_open(&r, CLIP, &o), 0);
    video_reader_info(r, &in);
    assert_int_equal(in.out_width, 171);
    assert_int_equal(in.out_height, 128);
    video_reader_close(&r);
    /* A crop larger than the scaled picture is a clear error. */
    o.width = 200;
    o.height = 100;
    assert_int_equal(video_reader_open(&r, CLIP, &o), GL_EINVAL);
    assert_null(r);
    free(full);
    free(crop);
}

/* Index lists, every-k-th and segments all agree with one sequential pass. */
static void test_index_access(void **state)
{
    (void)state;
    video_reader_opts o = video_reader_opts_default();
    o.width = 32;
    o.height = 24;
    o.channels = 1;
    const size_t fb = 32 * 24;
    void *all;
    long n;
    assert_int_equal(video_decode_all(CLIP, &o, 1, &all, &n, NULL), 0);
    assert_int_equal(n, 164);
    const uint8_t *seq = all;

    long idx[5] = { 100, 5, 5, 163, 0 };
    uint8_t *out = malloc(fb * 5);
    assert_int_equal(video_decode_frames(CLIP, &o, idx, 5, out, NULL), 0);
    for (int i = 0; i < 5; i++) assert_memory_equal(out + i * fb, seq + idx[i] * fb, fb);
    long bad[2] = { 3, 164 };
    assert_int_equal(video_decode_frames(CLIP, &o, bad, 2, out, NULL), GL_ENOTFOUND);
    assert_non_null(strstr(gl_last_error(), "164"));
    bad[1] = -1;
    assert_int_equal(video_decode_frames(CLIP, &o, bad, 2, out, NULL), GL_EINVAL);

    void *every;
    long m;
    assert_int_equal(video_decode_all(CLIP, &o, 3, &every, &m, NULL), 0);
    assert_int_equal(m, 55);   /* ceil(164 / 3) */
    for (long i = 0; i < m; i++) assert_memory_equal((uint8_t *)every + i * fb, seq + 3 * i * fb, fb);
    long ev[60];
    assert_int_equal(video_indices_every(164, 0, 3, ev, 60), 55);
    assert_int_equal(ev[54], 162);
    assert_int_equal(video_indices_every(164, 2, 50, ev, 60), 4);   /* 2, 52, 102, 152 */
    assert_int_equal(ev[3], 152);

    long seg[3];
    assert_int_equal(video_indices_segments(164, 3, seg), 0);
    assert_int_equal(seg[0], 27);   /* floor(164/6) */
    assert_int_equal(seg[1], 82);   /* floor(3*164/6) */
    assert_int_equal(seg[2], 136);  /* floor(5*164/6) */
    assert_int_equal(video_indices_segments(0, 3, seg), GL_EINVAL);
    gl_free(every);
    gl_free(all);
    free(out);
}

/* Time windows seek, then decode forward: same pixels as sequential frames. */
static void test_time_window(void **state)
{
    (void)state;
    video_reader_opts o = video_reader_opts_default();
    o.width = 32;
    o.height = 24;
    const size_t fb = 32 * 24 * 3;
    void *all, *win;
    long n, m, first;
    assert_int_equal(video_decode_all(CLIP, &o, 1, &all, &n, NULL), 0);
    /* 25 fps: [1000, 1400) ms holds frames 25..34. */
    assert_int_equal(video_decode_window_ms(CLIP, &o, 1000, 1400, &win, &m, &first, NULL), 0);
    assert_int_equal(first, 25);
    assert_int_equal(m, 10);
    assert_memory_equal(win, (uint8_t *)all + 25 * fb, 10 * fb);
    gl_free(win);
    /* A start between frames: 4410 ms -> first frame at 4440 ms = frame 111. */
    assert_int_equal(video_decode_window_ms(CLIP, &o, 4410, 4500, &win, &m, &first, NULL), 0);
    assert_int_equal(first, 111);
    assert_int_equal(m, 2);   /* 4440 and 4480 ms; 4520 is past the end */
    assert_memory_equal(win, (uint8_t *)all + 111 * fb, 2 * fb);
    gl_free(win);
    /* Up to the end, and past it. */
    assert_int_equal(video_decode_window_ms(CLIP, &o, 6400, 100000, &win, &m, &first, NULL), 0);
    assert_int_equal(first, 160);
    assert_int_equal(m, 4);
    assert_memory_equal(win, (uint8_t *)all + 160 * fb, 4 * fb);
    gl_free(win);
    assert_int_equal(video_decode_window_ms(CLIP, &o, 7000, 8000, &win, &m, NULL, NULL), GL_ENOTFOUND);
    assert_null(win);
    assert_int_equal(video_decode_window_ms(CLIP, &o, 500, 500, &win, &m, NULL, NULL), GL_EINVAL);
    /* Seeking backwards on one reader. */
    video_reader *r;
    video_frame_info fi;
    uint8_t *buf = malloc(fb);
    assert_int_equal(video_reader_open(&r, CLIP, &o), 0);
    assert_int_equal(video_reader_seek_ms(r, 5000), 0);
    assert_int_equal(video_reader_read(r, buf, &fi), 0);
    assert_int_equal(fi.index, 125);
    assert_memory_equal(buf, (uint8_t *)all + 125 * fb, fb);
    assert_int_equal(video_reader_seek_ms(r, 80), 0);
    assert_int_equal(video_reader_read(r, buf, &fi), 0);
    assert_int_equal(fi.index, 2);
    assert_memory_equal(buf, (uint8_t *)all + 2 * fb, fb);
    assert_int_equal(video_reader_seek_ms(r, 60000), GL_EOF);
    video_reader_close(&r);
    free(buf);
    gl_free(all);
}

/* A moving smooth pattern: encodes well, so PSNR measures the codec, not noise. */
static void make_frame(uint8_t *f, int w, int h, int t)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = f + (y * w + x) * 3;
            p[0] = (uint8_t)(128 + 100 * sin((x + 2 * t) * 0.15));
            p[1] = (uint8_t)(128 + 100 * cos((y - t) * 0.2));
            p[2] = (uint8_t)((x * 3 + y * 2 + t * 4) & 255 ? 60 + ((x + y) & 63) : 60);
        }
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void test_writer_roundtrip(void **state)
{
    (void)state;
    const int W = 64, H = 48, T = 20;
    char sub[300], a[400], b[400];
    snprintf(sub, sizeof sub, "%s/w", tmpdir);
    assert_int_equal(gl_mkdirs(sub), 0);
    snprintf(a, sizeof a, "%s/a.avi", sub);
    snprintf(b, sizeof b, "%s/b.avi", sub);
    uint8_t *src = malloc((size_t)W * H * 3 * T);
    for (int t = 0; t < T; t++) make_frame(src + (size_t)t * W * H * 3, W, H, t);
    for (int k = 0; k < 2; k++) {
        video_writer *w;
        assert_int_equal(video_writer_open(&w, k ? b : a, W, H, 25, NULL), 0);
        assert_int_equal(access(k ? b : a, F_OK), -1);   /* nothing at the path before close */
        for (int t = 0; t < T; t++) assert_int_equal(video_writer_write_rgb(w, src + (size_t)t * W * H * 3), 0);
        assert_int_equal(video_writer_close(&w), 0);
        assert_null(w);
    }
    assert_int_equal(count_files(sub), 2);   /* no temp file left behind */
    void *da, *db;
    size_t na, nb;
    assert_int_equal(gl_read_file(a, &da, &na), 0);
    assert_int_equal(gl_read_file(b, &db, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);   /* deterministic */
    int tagged = 0;   /* the fourcc UCF-101's files carry */
    for (size_t i = 0; i + 4 <= na && !tagged; i++) tagged = !memcmp((char *)da + i, "XVID", 4);
    assert_true(tagged);
    gl_free(da);
    gl_free(db);

    void *back;
    long n;
    video_info in;
    assert_int_equal(video_decode_all(a, NULL, 1, &back, &n, &in), 0);
    assert_int_equal(n, T);
    assert_int_equal(in.frames, T);
    assert_int_equal(in.width, W);
    assert_true(fabs(in.fps - 25) < 1e-9);
    double se = 0;
    for (size_t i = 0; i < (size_t)W * H * 3 * T; i++) {
        double d = (double)((uint8_t *)back)[i] - src[i];
        se += d * d;
    }
    double psnr = 10 * log10(255.0 * 255.0 / (se / ((double)W * H * 3 * T)));
    print_message("writer q=2 PSNR %.2f dB\n", psnr);
    /* Measured 32.7 dB at q=2 (4:2:0 chroma costs most of the loss on this
     * colourful pattern); the bound leaves a margin for other FFmpeg builds. */
    assert_true(psnr > 30.0);
    gl_free(back);

    /* Gray frames come back as gray (R = G = B within codec error). */
    video_writer *w;
    assert_int_equal(video_writer_open(&w, a, W, H, 30000.0 / 1001, NULL), 0);
    uint8_t *g = malloc((size_t)W * H);
    for (int i = 0; i < W * H; i++) g[i] = (uint8_t)(i % W * 4);
    for (int t = 0; t < 3; t++) assert_int_equal(video_writer_write_gray(w, g), 0);
    assert_int_equal(video_writer_close(&w), 0);
    video_reader_opts o = video_reader_opts_default();
    o.channels = 1;
    assert_int_equal(video_decode_all(a, &o, 1, &back, &n, &in), 0);
    assert_int_equal(n, 3);
    assert_true(fabs(in.fps - 30000.0 / 1001) < 1e-6);
    assert_true(max_abs_diff(back, g, (size_t)W * H) <= 6);
    gl_free(back);
    free(g);

    /* Abort and failures leave nothing behind. */
    char c[400];
    snprintf(c, sizeof c, "%s/c.avi", sub);
    assert_int_equal(video_writer_open(&w, c, W, H, 25, NULL), 0);
    assert_int_equal(video_writer_write_rgb(w, src), 0);
    video_writer_abort(&w);
    assert_null(w);
    assert_int_equal(access(c, F_OK), -1);
    assert_int_equal(video_writer_open(&w, c, W, H, 25, NULL), 0);
    assert_int_equal(video_writer_write_rgb(w, NULL), GL_EINVAL);
    assert_int_equal(video_writer_write_rgb(w, src), GL_EINVAL);   /* sticky */
    assert_int_equal(video_writer_close(&w), GL_EINVAL);
    assert_int_equal(access(c, F_OK), -1);
    assert_int_equal(count_files(sub), 2);
    assert_int_equal(video_writer_open(&w, c, 63, 48, 25, NULL), GL_EINVAL);
    assert_int_equal(video_writer_open(&w, c, 64, 48, 0, NULL), GL_EINVAL);
    assert_int_equal(video_writer_open(&w, "/nonexistent/dir/x.avi", 64, 48, 25, NULL), GL_EIO);
    video_writer_opts wo = video_writer_opts_default();
    wo.qscale = 0;
    assert_int_equal(video_writer_open(&w, c, 64, 48, 25, &wo), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "qscale"));
    free(src);
}

/* H.264 in MP4 (and MKV, and at an odd size in 4:4:4) with the UCF clip's
 * mp3 audio copied in: the frames come back (PSNR), the audio stream is
 * there, in the source's codec, and cut at the end of the video. */
static void test_writer_h264_audio(void **state)
{
    (void)state;
    const int W = 64, H = 48, T = 25;
    uint8_t *src = malloc((size_t)W * H * 3 * T);
    for (int t = 0; t < T; t++) make_frame(src + (size_t)t * W * H * 3, W, H, t);
    const char *ext[3] = { "mp4", "mkv", "mp4" };
    for (int k = 0; k < 3; k++) {
        const int w_ = k == 2 ? W - 1 : W, h_ = k == 2 ? H - 1 : H;
        char path[400];
        snprintf(path, sizeof path, "%s/h264_%d.%s", tmpdir, k, ext[k]);
        video_writer_opts wo = video_writer_opts_default();
        wo.codec = VIDEO_CODEC_H264;
        wo.audio_from = k < 2 ? CLIP : NULL;
        wo.gop = 250;
        video_writer *w;
        assert_int_equal(video_writer_open(&w, path, w_, h_, 25, &wo), 0);
        uint8_t *f = malloc((size_t)w_ * h_ * 3);
        for (int t = 0; t < T; t++) {
            for (int y = 0; y < h_; y++) memcpy(f + (size_t)y * w_ * 3, src + ((size_t)t * W * H + (size_t)y * W) * 3, (size_t)w_ * 3);
            assert_int_equal(video_writer_write_rgb(w, f), 0);
        }
        free(f);
        assert_int_equal(video_writer_close(&w), 0);
        void *back;
        long n;
        video_info in;
        assert_int_equal(video_decode_all(path, NULL, 1, &back, &n, &in), 0);
        assert_int_equal(n, T);
        assert_int_equal(in.width, w_);
        assert_string_equal(in.codec, "h264");
        assert_true(fabs(in.fps - 25) < 1e-6);
        double se = 0;
        for (int t = 0; t < T; t++)
            for (int y = 0; y < h_; y++)
                for (int i = 0; i < w_ * 3; i++) {
                    double d = (double)((uint8_t *)back)[((size_t)t * h_ + y) * w_ * 3 + i] -
                               src[((size_t)t * W * H + (size_t)y * W) * 3 + i];
                    se += d * d;
                }
        double psnr = 10 * log10(255.0 * 255.0 / (se / ((double)w_ * h_ * 3 * T)));
        print_message("h264 %s %dx%d crf 18: PSNR %.2f dB\n", ext[k], w_, h_, psnr);
        /* measured 32.2 dB (4:2:0: chroma costs most, as for MPEG-4 above)
         * and 36.2 dB (4:4:4); margins for other x264 builds */
        assert_true(psnr > (k == 2 ? 33.0 : 30.0));
        gl_free(back);
        /* the audio, read with libavformat itself */
        AVFormatContext *fc = NULL;
        assert_int_equal(avformat_open_input(&fc, path, NULL, NULL), 0);
        assert_true(avformat_find_stream_info(fc, NULL) >= 0);
        int ai = av_find_best_stream(fc, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
        if (k == 2) {
            assert_true(ai < 0);
        } else {
            assert_true(ai >= 0);
            assert_int_equal(fc->streams[ai]->codecpar->codec_id, AV_CODEC_ID_MP3);
            AVPacket *pk = av_packet_alloc();
            double last = 0;
            long np = 0;
            while (av_read_frame(fc, pk) >= 0) {
                if (pk->stream_index == ai) {
                    last = pk->pts * av_q2d(fc->streams[ai]->time_base);
                    np++;
                }
                av_packet_unref(pk);
            }
            av_packet_free(&pk);
            print_message("%s: %ld audio packets, the last at %.3f s\n", ext[k], np, last);
            /* 1 s of video: mp3 frames of 1152 samples start up to 1 s */
            assert_true(np > 20);
            assert_true(last < 1.0 && last > 0.8);
        }
        avformat_close_input(&fc);
    }
    free(src);
}

/* H.264 in MP4 with B-frames and an audio track, width 432; VP8 in WebM,
 * width 560, whose container has no frame count. Made by the ffmpeg command,
 * which also decodes them for the pixel reference. */
static void test_other_containers(void **state)
{
    (void)state;
    if (!have_ffmpeg()) skip();
    char mp4[400], webm[400], cmd[1200];
    snprintf(mp4, sizeof mp4, "%s/odd.mp4", tmpdir);
    snprintf(webm, sizeof webm, "%s/odd.webm", tmpdir);
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=432x240:rate=30 "
             "-f lavfi -i sine=frequency=440:sample_rate=8000 -frames:v 15 -t 0.5 -c:v libx264 "
             "-preset ultrafast -bf 2 -pix_fmt yuv420p -c:a aac %s", mp4);
    if (system(cmd) != 0) skip();   /* an FFmpeg build without libx264 */
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=560x240:rate=24 "
             "-frames:v 12 -c:v libvpx -b:v 500k %s", webm);
    if (system(cmd) != 0) skip();

    video_reader *r;
    video_info in;
    assert_int_equal(video_reader_open(&r, mp4, NULL), 0);
    video_reader_info(r, &in);
    assert_string_equal(in.codec, "h264");
    assert_int_equal(in.width, 432);
    assert_int_equal(in.height, 240);
    assert_int_equal(in.frames, 15);
    assert_true(fabs(in.fps - 30) < 1e-9);
    video_reader_close(&r);
    const size_t fb = 432 * 240 * 3;
    uint8_t *ref = malloc(fb * 8), *ours = malloc(fb);
    snprintf(cmd, sizeof cmd, "-i %s -frames:v 8 -pix_fmt rgb24", mp4);
    assert_int_equal(ffmpeg_raw(cmd, ref, fb * 8), fb * 8);
    long idx = 7;
    assert_int_equal(video_decode_frames(mp4, NULL, &idx, 1, ours, NULL), 0);
    assert_int_equal(max_abs_diff(ours, ref + 7 * fb, fb), 0);
    /* 30 fps: [100, 200) ms holds frames 3, 4, 5. */
    void *win;
    long m, first;
    assert_int_equal(video_decode_window_ms(mp4, NULL, 100, 200, &win, &m, &first, NULL), 0);
    assert_int_equal(first, 3);
    assert_int_equal(m, 3);
    gl_free(win);
    free(ref);
    free(ours);

    assert_int_equal(video_reader_open(&r, webm, NULL), 0);
    video_reader_info(r, &in);
    assert_string_equal(in.codec, "vp8");
    assert_int_equal(in.width, 560);
    assert_int_equal(in.frames, 12);
    assert_int_equal(in.frames_source, 1);   /* counted: WebM stores no count */
    video_reader_close(&r);

    /* DivX 5 (MPEG-4 ASP, fourcc DX50) with a B-frame, 176x144 at 15 fps. */
    char divx[400];
    snprintf(divx, sizeof divx, "%s/divx.avi", tmpdir);
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=176x144:rate=15 "
             "-frames:v 10 -c:v mpeg4 -vtag DX50 -bf 1 %s", divx);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(video_reader_open(&r, divx, NULL), 0);
    video_reader_info(r, &in);
    assert_string_equal(in.codec, "mpeg4");
    assert_int_equal(in.width, 176);
    assert_int_equal(in.frames, 10);
    assert_true(fabs(in.fps - 15) < 1e-9);
    video_reader_close(&r);
    long cnt;
    assert_int_equal(video_count_frames(divx, &cnt), 0);
    assert_int_equal(cnt, 10);
}

/* `glocal probe`: one JSON object per file, an error object for a bad one,
 * exit status 1 when any failed. */
static void test_probe_command(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s probe %s /nonexistent/x.avi", GLOCAL_BINARY, CLIP);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[4096];
    assert_non_null(fgets(line, sizeof line, p));
    json_object *j = json_tokener_parse(line);
    assert_non_null(j);
    json_object *v;
    assert_true(json_object_object_get_ex(j, "frames", &v));
    assert_int_equal(json_object_get_int64(v), 164);
    assert_true(json_object_object_get_ex(j, "width", &v));
    assert_int_equal(json_object_get_int(v), 320);
    assert_true(json_object_object_get_ex(j, "height", &v));
    assert_int_equal(json_object_get_int(v), 240);
    assert_true(json_object_object_get_ex(j, "fps", &v));
    assert_true(fabs(json_object_get_double(v) - 25) < 1e-9);
    assert_true(json_object_object_get_ex(j, "duration", &v));
    assert_true(fabs(json_object_get_double(v) - 6.56) < 1e-9);
    assert_true(json_object_object_get_ex(j, "codec", &v));
    assert_string_equal(json_object_get_string(v), "mpeg4");
    assert_true(json_object_object_get_ex(j, "path", &v));
    assert_string_equal(json_object_get_string(v), CLIP);
    json_object_put(j);
    assert_non_null(fgets(line, sizeof line, p));
    j = json_tokener_parse(line);
    assert_non_null(j);
    assert_true(json_object_object_get_ex(j, "error", &v));
    assert_non_null(strstr(json_object_get_string(v), "/nonexistent/x.avi"));
    assert_false(json_object_object_get_ex(j, "frames", &v));
    json_object_put(j);
    assert_null(fgets(line, sizeof line, p));
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    snprintf(cmd, sizeof cmd, "%s probe --count %s >/dev/null", GLOCAL_BINARY, CLIP2);
    st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Every allocation of ours that fails is reported as GL_ENOMEM and leaks
 * nothing (LSan checks); FFmpeg's own allocations are not covered. */
static void test_alloc_failures(void **state)
{
    (void)state;
    video_reader_opts o = video_reader_opts_default();
    o.short_side = 32;
    o.width = o.height = 24;
    o.dtype = VIDEO_F32;
    float *out = malloc(2 * 24 * 24 * 3 * sizeof(float));
    long idx[2] = { 3, 1 };
    int enomem = 0, ok = 0;
    for (long n = 0; n < 12; n++) {
        gl_alloc_fail_after(n);
        int rc = video_decode_frames(CLIP, &o, idx, 2, out, NULL);
        gl_alloc_fail_after(-1);
        assert_true(rc == 0 || rc == GL_ENOMEM);
        enomem += rc == GL_ENOMEM;
        ok += rc == 0;
    }
    assert_true(enomem >= 3);   /* reader, path copy, crop buffer, index list */
    assert_true(ok >= 1);
    char path[400];
    snprintf(path, sizeof path, "%s/alloc.avi", tmpdir);
    uint8_t frame[16 * 16 * 3] = { 0 };
    for (long n = 0; n < 4; n++) {
        video_writer *w;
        gl_alloc_fail_after(n);
        int rc = video_writer_open(&w, path, 16, 16, 25, NULL);
        gl_alloc_fail_after(-1);
        assert_true(rc == 0 || rc == GL_ENOMEM);
        if (rc == 0) {
            assert_int_equal(video_writer_write_rgb(w, frame), 0);
            assert_int_equal(video_writer_close(&w), 0);
            assert_int_equal(unlink(path), 0);
        }
    }
    free(out);
}

/* opts.timeout_ms: once the limit has passed, reads fail with GL_ECANCELED. */
static void test_timeout(void **state)
{
    (void)state;
    video_reader_opts o = video_reader_opts_default();
    o.timeout_ms = 1;
    o.width = 32;
    o.height = 24;
    video_reader *r;
    uint8_t buf[32 * 24 * 3];
    int rc = video_reader_open(&r, CLIP, &o);
    if (rc == 0) {
        /* The reader's deadline is gl_now() during the open + 1 ms, so it
         * has passed once gl_now() is 1 ms past the open's return: wait for
         * exactly that on the same clock, not for a guessed sleep. */
        double opened = gl_now();
        while (gl_now() <= opened + o.timeout_ms / 1000.0) sched_yield();
        rc = video_reader_read(r, buf, NULL);
        video_reader_close(&r);
    }
    assert_int_equal(rc, GL_ECANCELED);
    assert_non_null(strstr(gl_last_error(), "ms"));
}

/* Seeking where there are key frames to seek to (the UCF-101 clip has one
 * only): a writer file with a key frame every 5 frames, and H.264 with -g 7,
 * against one sequential pass; frame-threaded and single-threaded decoding
 * agree. */
static void test_seek_keyframes(void **state)
{
    (void)state;
    const int W = 64, H = 48, T = 60;
    char path[400];
    snprintf(path, sizeof path, "%s/gop5.avi", tmpdir);
    video_writer_opts wo = video_writer_opts_default();
    wo.gop = 5;
    video_writer *w;
    uint8_t *f = malloc((size_t)W * H * 3);
    assert_int_equal(video_writer_open(&w, path, W, H, 25, &wo), 0);
    for (int t = 0; t < T; t++) {
        make_frame(f, W, H, 3 * t);
        assert_int_equal(video_writer_write_rgb(w, f), 0);
    }
    assert_int_equal(video_writer_close(&w), 0);
    free(f);
    char h264[400], cmd[1000];
    snprintf(h264, sizeof h264, "%s/gop7.mp4", tmpdir);
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=96x64:rate=25 "
             "-frames:v 60 -c:v libx264 -preset ultrafast -g 7 -bf 2 -pix_fmt yuv420p %s", h264);
    int have_h264 = have_ffmpeg() && system(cmd) == 0;
    const char *files[2] = { path, h264 };
    for (int k = 0; k < 1 + have_h264; k++) {
        video_reader_opts o = video_reader_opts_default();
        o.threads = 1;
        void *seq, *thr, *win;
        long n, n2, m, first;
        video_info in;
        assert_int_equal(video_decode_all(files[k], &o, 1, &seq, &n, &in), 0);
        assert_int_equal(n, T);
        o.threads = 2;
        assert_int_equal(video_decode_all(files[k], &o, 1, &thr, &n2, NULL), 0);
        assert_int_equal(n2, T);
        assert_memory_equal(seq, thr, (size_t)T * in.frame_bytes);
        /* [1000, 1200) ms at 25 fps = frames 25..29; 25 is neither a key
         * frame of the AVI (0, 5, ..., 25 is one: use 1050 -> 27..29 too). */
        static const double starts[3] = { 1000, 1050, 2280 };
        static const long want_first[3] = { 25, 27, 57 };
        for (int s = 0; s < 3; s++) {
            assert_int_equal(video_decode_window_ms(files[k], &o, starts[s], 1200 + (s == 2) * 2000, &win,
                                                    &m, &first, NULL), 0);
            assert_int_equal(first, want_first[s]);
            assert_int_equal(m, (s == 2 ? T : 30) - want_first[s]);
            assert_memory_equal(win, (uint8_t *)seq + first * in.frame_bytes, (size_t)m * in.frame_bytes);
            gl_free(win);
        }
        gl_free(seq);
        gl_free(thr);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_and_counts),
        cmocka_unit_test(test_pixels_match_ffmpeg),
        cmocka_unit_test(test_real_h264_damaged),
        cmocka_unit_test(test_resize_matches_ffmpeg),
        cmocka_unit_test(test_crop_and_float),
        cmocka_unit_test(test_index_access),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_other_containers),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_writer_h264_audio),
        cmocka_unit_test(test_seek_keyframes),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_probe_command),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
