/*
 * test_video.c — datasets/video.h against independent truth: the ffmpeg
 * command's decode of the same real UCF-101 clips, the frame counts stated
 * for them in ../shared/data/README.md, sequential decoding for the
 * index/seek paths, and known synthetic frames for the writer.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

#include "datasets/video.h"

#define CLIP GLOCAL_DATA_DIR "/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi"
/* 164 and 127 frames, 320x240, 25 fps (../shared/data/README.md). */
#define CLIP2 GLOCAL_DATA_DIR "/ucf101/videos/v_BabyCrawling_unknown.avi"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_video.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
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
    assert_int_equal(n, 127);
    video_reader_opts o = video_reader_opts_default();
    o.count = VIDEO_COUNT_ALWAYS;
    assert_int_equal(video_reader_open(&r, CLIP2, &o), 0);
    video_reader_info(r, &in);
    assert_int_equal(in.frames, 127);
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
    assert_true(max_abs_diff(ours, ref, gb) <= 2);
    assert_true(max_abs_diff(ours + gb, ref + 100 * gb, gb) <= 2);
    free(ref);
    free(ours);
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

static void write_bytes(const char *path, const void *d, size_t n)
{
    assert_int_equal(gl_write_file_atomic(path, d, n), 0);
}

static void expect_open_fails(const char *path, int code)
{
    video_reader *r = (video_reader *)1;
    int rc = video_reader_open(&r, path, NULL);
    print_message("%s -> %d: %s\n", strrchr(path, '/') + 1, rc, gl_last_error());
    if (code) assert_int_equal(rc, code);
    else assert_true(rc < 0);
    assert_null(r);
    assert_non_null(strstr(gl_last_error(), path));
}

static void test_bad_input(void **state)
{
    (void)state;
    char p[400];
    expect_open_fails("/nonexistent/v.avi", GL_EIO);
    snprintf(p, sizeof p, "%s/zero.avi", tmpdir);
    write_bytes(p, "", 0);
    expect_open_fails(p, GL_EFORMAT);
    snprintf(p, sizeof p, "%s/garbage.avi", tmpdir);
    uint8_t junk[5000];
    uint32_t s = 7;
    for (size_t i = 0; i < sizeof junk; i++) { s = s * 1103515245u + 12345u; junk[i] = (uint8_t)(s >> 16); }
    write_bytes(p, junk, sizeof junk);
    expect_open_fails(p, GL_EFORMAT);
    expect_open_fails(tmpdir, GL_EIO);   /* a folder */

    /* Truncated copies of the real clip. */
    void *clip;
    size_t n;
    assert_int_equal(gl_read_file(CLIP, &clip, &n), 0);
    snprintf(p, sizeof p, "%s/trunc4k.avi", tmpdir);
    write_bytes(p, clip, 4096);   /* headers only, no frame data */
    expect_open_fails(p, 0);
    /* Cut mid-stream: opens, gives fewer frames, then a clean GL_EOF. */
    snprintf(p, sizeof p, "%s/trunc60k.avi", tmpdir);
    write_bytes(p, clip, 60000);
    long cnt = -1;
    assert_int_equal(video_count_frames(p, &cnt), 0);
    assert_true(cnt > 0 && cnt < 164);

    /* An audio-only file: a valid WAV, 0.1 s of silence. */
    uint8_t wav[44 + 1600] = { 0 };
    memcpy(wav, "RIFF", 4);
    uint32_t v = sizeof wav - 8; memcpy(wav + 4, &v, 4);
    memcpy(wav + 8, "WAVEfmt ", 8);
    v = 16; memcpy(wav + 16, &v, 4);
    uint16_t h = 1; memcpy(wav + 20, &h, 2);   /* PCM */
    h = 1; memcpy(wav + 22, &h, 2);            /* mono */
    v = 8000; memcpy(wav + 24, &v, 4);
    v = 16000; memcpy(wav + 28, &v, 4);
    h = 2; memcpy(wav + 32, &h, 2);
    h = 16; memcpy(wav + 34, &h, 2);
    memcpy(wav + 36, "data", 4);
    v = 1600; memcpy(wav + 40, &v, 4);
    snprintf(p, sizeof p, "%s/audio.wav", tmpdir);
    write_bytes(p, wav, sizeof wav);
    expect_open_fails(p, GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "no video stream"));

    /* An unknown codec: the clip with its fourccs rewritten. */
    uint8_t *c = clip;
    for (size_t i = 0; i + 4 <= 8192; i++)
        if (!memcmp(c + i, "XVID", 4) || !memcmp(c + i, "xvid", 4)) memcpy(c + i, "QQQQ", 4);
    snprintf(p, sizeof p, "%s/unknown_codec.avi", tmpdir);
    write_bytes(p, clip, n);
    expect_open_fails(p, GL_EUNSUPPORTED);
    gl_free(clip);

    video_reader_opts o = video_reader_opts_default();
    o.channels = 2;
    video_reader *r;
    assert_int_equal(video_reader_open(&r, CLIP, &o), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "channels"));
    o = video_reader_opts_default();
    o.width = 10;
    assert_int_equal(video_reader_open(&r, CLIP, &o), GL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_and_counts),
        cmocka_unit_test(test_pixels_match_ffmpeg),
        cmocka_unit_test(test_resize_matches_ffmpeg),
        cmocka_unit_test(test_crop_and_float),
        cmocka_unit_test(test_index_access),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
