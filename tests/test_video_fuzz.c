/*
 * test_video_fuzz.c — datasets/video.h on hostile input: malformed files
 * (empty, garbage, a folder, truncated, audio only, an unknown codec, bad
 * options) fail with the right code and a message naming the file; fuzzed
 * mutants of the real clips and the regression corpus in tests/fuzz/ decode
 * or fail cleanly, never crash (ASan/UBSan) or hang. The decoding itself
 * against ffmpeg: test_video.c.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/testutil.h"

#include "datasets/video.h"

#define CLIP GLOCAL_DATA_DIR "/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi"
/* 164 frames, 320x240, 25 fps, XviD; 50 frames, 768x576, 10 fps, MS-MPEG-4 v3
 * (tests/data/README.md). */
#define CLIP2 GLOCAL_DATA_DIR "/video/vtest_50.avi"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_video_fuzz.");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
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

/* ------------------------------------------------------------------ fuzzing
 * Mutated copies of the real clips (bit flips, byte overwrites, truncations,
 * duplicated chunks), fixed seed; each is decoded fully with a frame limit
 * and the reader's time limit. Nothing may crash (ASan/UBSan watch), hang or
 * return a bad code without a message. GLOCAL_FUZZ_N, GLOCAL_FUZZ_SEED and
 * GLOCAL_FUZZ_PREFIX (bytes of each clip used) scale a longer run by hand;
 * GLOCAL_FUZZ_KEEP=dir keeps every mutant. */

static uint64_t rng_state;
static uint32_t rng(void)
{
    /* xorshift64* (Vigna 2016) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static size_t mutate(uint8_t *buf, size_t n, size_t cap)
{
    int ops = 1 + rng() % 4;
    for (int k = 0; k < ops && n > 16; k++) {
        /* Half the edits land in the first 4 KB, where the AVI headers are. */
        size_t lim = (rng() & 1) && n > 4096 ? 4096 : n;
        size_t at = rng() % lim;
        switch (rng() % 4) {
        case 0:   /* bit flips */
            for (int i = 0, m = 1 + rng() % 8; i < m; i++) buf[(at + rng() % 64) % n] ^= (uint8_t)(1u << (rng() % 8));
            break;
        case 1: { /* overwrite a run with random or extreme bytes */
            size_t len = 1 + rng() % 16;
            uint8_t v = (uint8_t)(rng() % 3 == 0 ? 0xFF : rng() % 3 == 0 ? 0 : rng());
            int rnd = rng() & 1;
            for (size_t i = 0; i < len && at + i < n; i++) buf[at + i] = rnd ? (uint8_t)rng() : v;
            break;
        }
        case 2:   /* truncate */
            n = 16 + rng() % (n - 16);
            break;
        case 3: { /* duplicate a chunk in place after itself */
            size_t len = 1 + rng() % 2048;
            if (at + len > n) len = n - at;
            if (n + len > cap) break;
            memmove(buf + at + len, buf + at, n - at);
            n += len;
            break;
        }
        }
    }
    return n;
}

/* Decodes everything (up to max_frames) the way the loader would. Returns the
 * last rc: 0/GL_EOF or a negative code, which must carry a message. */
static int decode_hostile(const char *path, int max_frames, long *frames)
{
    video_reader_opts o = video_reader_opts_default();
    o.width = 40;
    o.height = 30;
    o.timeout_ms = 10000;
    o.count = VIDEO_COUNT_HEADER;
    video_reader *r;
    uint8_t buf[40 * 30 * 3];
    *frames = 0;
    int rc = video_reader_open(&r, path, &o);
    if (rc < 0) {
        assert_true(gl_last_error()[0] != 0);
        return rc;
    }
    assert_non_null(r);
    video_info in;
    video_reader_info(r, &in);
    assert_int_equal(in.frame_bytes, sizeof buf);
    while (*frames < max_frames && (rc = video_reader_read(r, buf, NULL)) == 0) ++*frames;
    if (rc == 0 && *frames == max_frames / 2) rc = video_reader_seek_ms(r, 200);
    if (rc < 0) assert_true(gl_last_error()[0] != 0);
    video_reader_close(&r);
    return rc;
}

static void test_fuzz_corpus(void **state)
{
    (void)state;
    const char *env = getenv("GLOCAL_FUZZ_N");
    const long N = env ? atol(env) : 80;
    env = getenv("GLOCAL_FUZZ_SEED");
    const uint64_t seed = env ? strtoull(env, NULL, 10) : 20240611;
    const char *keep = getenv("GLOCAL_FUZZ_KEEP");
    env = getenv("GLOCAL_FUZZ_PREFIX");
    const size_t prefix = env ? (size_t)atol(env) : 60000, cap = 3 * prefix + 4096;
    void *clips[2];
    size_t sizes[2];
    assert_int_equal(gl_read_file(CLIP, &clips[0], &sizes[0]), 0);
    assert_int_equal(gl_read_file(CLIP2, &clips[1], &sizes[1]), 0);
    uint8_t *buf = malloc(cap);
    long failed = 0, decoded = 0;
    for (long i = 0; i < N; i++) {
        rng_state = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xD1B54A32D192ED03ull + 1;
        size_t n = sizes[i & 1] < prefix ? sizes[i & 1] : prefix;
        memcpy(buf, clips[i & 1], n);
        n = mutate(buf, n, cap);
        char path[512];
        if (keep) snprintf(path, sizeof path, "%s/mutant_%06ld.avi", keep, i);
        else snprintf(path, sizeof path, "%s/mutant.avi", tmpdir);
        write_bytes(path, buf, n);
        long frames;
        double t0 = gl_now();
        int rc = decode_hostile(path, 40, &frames);
        if (keep) printf("%s rc %d frames %ld: %s\n", path, rc, frames, rc < 0 ? gl_last_error() : "");
        /* A hang guard, not a speed test: the reader's own limit is 10 s. */
        assert_true(gl_now() - t0 < 60);
        if (rc < 0) failed++;
        decoded += frames;
    }
    print_message("fuzz: %ld mutants, %ld rejected with a message, %ld frames decoded\n", N, failed,
                  decoded);
    /* Most mutants must still decode: the reader skips corrupt packets. */
    assert_true(decoded > 0);
    free(buf);
    gl_free(clips[0]);
    gl_free(clips[1]);
}

/* Every file in tests/fuzz/ (crashers and hangs found before) decodes or
 * fails cleanly. */
static void test_fuzz_regressions(void **state)
{
    (void)state;
    DIR *d = opendir(GLOCAL_SOURCE_DIR "/tests/fuzz");
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".avi")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fuzz/%s", GLOCAL_SOURCE_DIR, e->d_name);
        long frames;
        decode_hostile(path, 1000, &frames);
        n++;
    }
    closedir(d);
    print_message("fuzz regressions: %d files\n", n);
    assert_true(n > 0);
}

/* Frames decoded and FFmpeg's error lines (video_reader_log) of a file. */
static long decode_counting(const char *path, int threads, long *nlog, char *first, size_t n)
{
    video_reader_opts o = video_reader_opts_default();
    o.threads = threads;
    o.count = VIDEO_COUNT_HEADER;
    video_reader *r = NULL;
    OK(video_reader_open(&r, path, &o));
    long frames = 0;
    int rc;
    while ((rc = video_reader_skip(r, NULL)) == 0) frames++;
    assert_int_equal(rc, GL_EOF);
    *nlog = video_reader_log(r, first, n);
    video_reader_close(&r);
    return frames;
}

/* Damaged files, made here from the real clip (164 frames, 6.56 s at 25 fps):
 * FFmpeg's complaints are counted per file (also from its frame threads, which
 * do not run on the caller's thread) and quoted without its addresses; the
 * intact clip has none; `glocal probe` calls both copies suspect and says why,
 * the intact one not. */
static void test_damaged_reported(void **state)
{
    (void)state;
    void *data;
    size_t size;
    OK(gl_read_file(CLIP, &data, &size));
    char half[400], dmg[400];
    snprintf(half, sizeof half, "%s/half.avi", tmpdir);
    snprintf(dmg, sizeof dmg, "%s/damaged.avi", tmpdir);
    write_bytes(half, data, size / 2);
    uint8_t *b = data;
    for (int k = 0; k < 5; k++) /* 300 bytes of noise at 30%, 40%, ... 70% of the file */
        for (size_t i = size * (3 + k) / 10, e = i + 300; i < e; i++) b[i] = (uint8_t)(i * 37 + 11);
    write_bytes(dmg, b, size);
    gl_free(data);

    char first[600];
    long nlog;
    assert_int_equal(decode_counting(CLIP, 1, &nlog, first, sizeof first), 164);
    assert_int_equal(nlog, 0);
    assert_string_equal(first, "");
    for (int threads = 1; threads <= 3; threads += 2) {
        long frames = decode_counting(dmg, threads, &nlog, first, sizeof first);
        print_message("damaged, %d threads: %ld frames, %ld lines: %s\n", threads, frames, nlog, first);
        assert_true(nlog > 0);
        assert_true(frames < 164);
        assert_non_null(strstr(first, "mpeg4: "));
        assert_null(strstr(first, " @ 0x"));
    }

    char cmd[1200], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' probe '%s' '%s' 2>&1; '%s' probe --count '%s' 2>&1", GLOCAL_BINARY, CLIP, half,
             GLOCAL_BINARY, dmg);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = 0;
    assert_int_equal(pclose(p), 0);
    char *l2 = strchr(out, '\n'), *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
    assert_non_null(l3);
    *l2 = *l3 = 0;
    assert_null(strstr(out, "suspect"));
    /* half the bytes: the header's 164 frames against 3.28 s at 25 fps */
    assert_non_null(strstr(l2 + 1, "\"suspect\":\"header says 164 frames, duration 3.28 s at 25 fps says 82\""));
    /* overwritten bytes: fewer frames decode, and FFmpeg complained */
    assert_non_null(strstr(l3 + 1, "\"suspect\":\"header says 164 frames, "));
    assert_non_null(strstr(l3 + 1, " decoding errors, "));
    assert_non_null(strstr(l3 + 1, "mpeg4: "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_fuzz_corpus),
        cmocka_unit_test(test_fuzz_regressions),
        cmocka_unit_test(test_damaged_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
