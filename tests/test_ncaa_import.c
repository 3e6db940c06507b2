/* test_ncaa_import.c — datasets/ncaa.h: the import end to end on fake game
 * videos whose frames carry their own frame number (cancelled, killed,
 * terminated, out of disk, two at once, a broken game, the config and the
 * command). The CSV: test_ncaa.c. */
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/ncaa_testutil.h"
#include "tests/testutil.h"

#include "datasets/ncaa.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"

/* ---- import, end to end ----------------------------------------------------------- */

enum { GW = 64, GH = 48, GFPS = 25, GFRAMES = 200 }; /* an 8 s game */

/* Frame i: 8 blocks of 8x16 pixels along the top, block b white when bit b
 * of i is set; MPEG-4 at the default quantiser keeps such blocks far from 128. */
static void draw_frame(uint8_t *rgb, int i, int w, int h)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int b = x / (w / 8);
            uint8_t v = y < h / 3 ? ((i >> b) & 1 ? 235 : 16) : 128;
            for (int c = 0; c < 3; c++) rgb[((size_t)y * w + x) * 3 + c] = v;
        }
}

static int read_code(const uint8_t *rgb, int w, int h)
{
    int code = 0;
    for (int b = 0; b < 8; b++) {
        long sum = 0, n = 0;
        for (int y = 2; y < h / 3 - 2; y++)
            for (int x = b * (w / 8) + 2; x < (b + 1) * (w / 8) - 2; x++, n++)
                sum += rgb[((size_t)y * w + x) * 3 + 1];
        if (sum > 128 * n) code |= 1 << b;
    }
    return code;
}

static void make_game(const char *path)
{
    video_writer *w = NULL;
    int rc = video_writer_open(&w, path, GW, GH, GFPS, NULL);
    if (rc < 0) fail_msg("%s", gl_last_error());
    uint8_t *rgb = malloc((size_t)GW * GH * 3);
    assert_non_null(rgb);
    for (int i = 0; i < GFRAMES; i++) {
        draw_frame(rgb, i, GW, GH);
        assert_int_equal(video_writer_write_rgb(w, rgb), 0);
    }
    free(rgb);
    assert_int_equal(video_writer_close(&w), 0);
}

/* Frames of [start, end) ms at GFPS, frame i at i * 1000 / GFPS ms. */
static long window_frames(double start, double end, long *first)
{
    long a = (long)ceil(start * GFPS / 1000.0), b = (long)ceil(end * GFPS / 1000.0);
    *first = a;
    return b - a;
}

/* Decodes a written clip and checks its size, frame count and that it holds
 * game frames first, first + 1, ... */
static void check_clip(const char *out, const char *rel, double start, double end, int w, int h)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out, rel);
    if (!file_exists(path)) fail_msg("%s was not written", rel);
    void *frames = NULL;
    long n = 0;
    video_info info;
    int rc = video_decode_all(path, NULL, 1, &frames, &n, &info);
    if (rc < 0) fail_msg("%s: %s", rel, gl_last_error());
    long first, want = window_frames(start, end, &first);
    assert_int_equal(n, want);
    assert_int_equal(info.width, w);
    assert_int_equal(info.height, h);
    assert_true(fabs(info.fps - GFPS) < 1e-6);
    if (w == GW && h == GH)
        for (long k = 0; k < n; k++)
            assert_int_equal(read_code((uint8_t *)frames + (size_t)k * info.frame_bytes, w, h),
                             first + k);
    gl_free(frames);
}

static int has_error(const ncaa_import_report *rep, const char *s)
{
    for (long i = 0; i < rep->num_errors; i++)
        if (strstr(rep->errors[i], s)) return 1;
    return 0;
}

static const char *import_csv =
    "Game_Aaaa-01,64,48,1000,3000,1500,1600,0.5,0.5,layup success,train\n"
    "Game_Aaaa-01,64,48,1000,3000,-1,2000,-1,-1,steal success,train\n"
    "Game_Bbbb-02,64,48,2500,4020,3000,3100,0.5,0.5,3-pointer failure,val\n"
    "Game_Cccc-03,64,48,7000,9000,7500,7600,0.5,0.5,slam dunk success,test\n"
    "Missing_Gm1,64,48,1000,2000,1500,1600,0.5,0.5,layup failure,test\n"
    "Game_Cccc-03,64,48,6000,8000,6500,6600,0.5,0.5,free-throw success,test\n"
    "Game_Cccc-03,64,48,9000,9500,-1,9400,-1,-1,steal success,test\n";

static void setup_import(char *videos, char *csv, size_t n)
{
    snprintf(videos, n, "%s/games", tmpdir);
    snprintf(csv, n, "%s/events.csv", tmpdir);
    if (file_exists(csv)) return;
    assert_int_equal(gl_mkdirs(videos), 0);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/Game_Aaaa-01.avi", videos);
    make_game(a);
    /* The other games are the same video under other ids and extensions. */
    snprintf(b, sizeof b, "%s/Game_Bbbb-02.avi", videos);
    assert_int_equal(symlink(a, b), 0);
    snprintf(b, sizeof b, "%s/Game_Cccc-03.mkv", videos);
    assert_int_equal(symlink(a, b), 0);
    /* A half download is no video. */
    snprintf(b, sizeof b, "%s/Missing_Gm1.mp4.part", videos);
    write_text(b, "not a video");
    write_text(csv, import_csv);
}

/* The defaults with the three paths every import needs. */
static ncaa_import_config import_config(const char *csv, const char *videos, const char *out)
{
    ncaa_import_config cfg = ncaa_import_config_default();
    cfg.csv = csv;
    cfg.videos = videos;
    cfg.out = out;
    return cfg;
}

static void test_import_end_to_end(void **state)
{
    (void)state;
    char videos[512], csv[512], out[512];
    setup_import(videos, csv, sizeof videos);
    snprintf(out, sizeof out, "%s/out11", tmpdir);

    ncaa_import_config cfg = import_config(csv, videos, out);
    ncaa_import_report rep;
    int rc = ncaa_import(&cfg, &rep);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(rep.events, 7);
    assert_int_equal(rep.games, 4);
    assert_int_equal(rep.games_missing, 1);
    assert_int_equal(rep.written, 4);
    assert_int_equal(rep.skipped, 0);
    assert_int_equal(rep.failed, 3);
    assert_int_equal(rep.num_errors, 3);
    assert_true(has_error(&rep, "game Missing_Gm1: no video"));
    assert_true(has_error(&rep, "line 4 (game Game_Cccc-03, slam dunk success, 7000..9000 ms): "
                                "the window ends after the end of the video"));
    assert_true(has_error(&rep, "line 7 (game Game_Cccc-03, steal success, 9000..9500 ms): "
                                "the window ends after the end of the video"));
    ncaa_import_report_release(&rep);
    assert_null(rep.errors);

    /* Games rank by id: Aaaa g001, Bbbb g002, Cccc g003; c = CSV line. */
    check_clip(out, "LayupSuccess/v_LayupSuccess_g001_c00001.avi", 1000, 3000, GW, GH);
    check_clip(out, "StealSuccess/v_StealSuccess_g001_c00002.avi", 1000, 3000, GW, GH);
    check_clip(out, "3PointerFailure/v_3PointerFailure_g002_c00003.avi", 2500, 4020, GW, GH);
    check_clip(out, "FreeThrowSuccess/v_FreeThrowSuccess_g003_c00006.avi", 6000, 8000, GW, GH);
    char p[1024];
    snprintf(p, sizeof p, "%s/SlamDunkSuccess/v_SlamDunkSuccess_g003_c00004.avi", out);
    assert_false(file_exists(p));

    /* The lists read back through the index. */
    dataset_index *idx = NULL;
    rc = dataset_index_load(&idx, out, NULL, 1);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(idx->num_classes, 11);
    assert_int_equal(idx->num_clips, 4);
    assert_int_equal(idx->num_missing, 0);
    assert_int_equal(idx->num_split[DATASET_TRAIN], 2);
    assert_int_equal(idx->num_split[DATASET_VAL], 1);
    assert_int_equal(idx->num_split[DATASET_TEST], 1);
    assert_string_equal(idx->clips[0].rel_path, "LayupSuccess/v_LayupSuccess_g001_c00001.avi");
    assert_string_equal(idx->class_names[idx->clips[0].label], "LayupSuccess");
    assert_int_equal(idx->clips[0].group, 1);
    assert_int_equal(idx->clips[0].clip, 1);
    dataset_index_free(&idx);

    /* A second run writes nothing and reports the same failures. */
    rc = ncaa_import(&cfg, &rep);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(rep.written, 0);
    assert_int_equal(rep.skipped, 4);
    assert_int_equal(rep.failed, 3);
    ncaa_import_report_release(&rep);
}

static int cancel_after_first(void *ctx, long done, long total)
{
    (void)total;
    *(long *)ctx = done;
    return 1;
}

/* Canceling after the first window leaves only whole clips and no lists. */
static void test_import_cancel(void **state)
{
    (void)state;
    char videos[512], csv[512], out[512];
    setup_import(videos, csv, sizeof videos);
    snprintf(out, sizeof out, "%s/out_cancel", tmpdir);
    ncaa_import_config cfg = import_config(csv, videos, out);
    long seen = 0;
    cfg.progress = cancel_after_first;
    cfg.progress_ctx = &seen;
    ncaa_import_report rep;
    gl_set_num_threads(1); /* one game at a time: the first window is events 1 and 2 */
    int rc = ncaa_import(&cfg, &rep);
    gl_set_num_threads(0);
    assert_int_equal(rc, GL_ECANCELED);
    assert_non_null(strstr(gl_last_error(), "canceled after 3 of 7 events"));
    assert_int_equal(seen, 3); /* the missing game's event, then events 1 and 2 */
    assert_int_equal(rep.written, 2);
    ncaa_import_report_release(&rep);
    check_clip(out, "LayupSuccess/v_LayupSuccess_g001_c00001.avi", 1000, 3000, GW, GH);
    char p[1024];
    snprintf(p, sizeof p, "%s/classInd.txt", out);
    assert_false(file_exists(p));
    /* Nothing else in the class folder: no temporary files left behind. */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test $(find '%s' -type f | wc -l) -eq 2", out);
    assert_int_equal(system(cmd), 0);
}

/* A full disk (a file size limit, SIGXFSZ ignored: writes fail with EFBIG as
 * with ENOSPC): clips of 1, 2 and 4 s with the limit between the first two
 * sizes. The run stops with exit 1 and a message naming the clip, the first
 * clip is whole, nothing temporary is left, and a rerun finishes the rest. */
static void test_import_disk_full(void **state)
{
    (void)state;
    char videos[512], csv0[512], csv[600], out[512], log[600];
    setup_import(videos, csv0, sizeof videos);
    snprintf(csv, sizeof csv, "%s/lengths.csv", tmpdir);
    snprintf(out, sizeof out, "%s/out_full", tmpdir);
    snprintf(log, sizeof log, "%s/full.log", tmpdir);
    const int len[3] = { 1000, 2000, 4000 };
    char text[512] = "", row[128];
    for (int k = 0; k < 3; k++) {
        snprintf(row, sizeof row, "Game_Aaaa-01,64,48,%d,%d,-1,%d,-1,-1,steal success,train\n", 0,
                 len[k], len[k] / 2);
        strcat(text, row);
    }
    write_text(csv, text);
    /* the sizes of the clips, from a run without a limit */
    char ref[600], p[1024];
    snprintf(ref, sizeof ref, "%s/out_full_ref", tmpdir);
    ncaa_import_config cfg = import_config(csv, videos, ref);
    ncaa_import_report rep;
    if (ncaa_import(&cfg, &rep) < 0) fail_msg("%s", gl_last_error());
    ncaa_import_report_release(&rep);
    struct stat st;
    long size[3];
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/StealSuccess/v_StealSuccess_g001_c%05d.avi", ref, k + 1);
        assert_int_equal(stat(p, &st), 0);
        size[k] = (long)st.st_size;
    }
    assert_true(size[0] < size[1]);
    for (int pass = 0; pass < 2; pass++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            if (pass == 0) {
                signal(SIGXFSZ, SIG_IGN);
                struct rlimit rl = { (rlim_t)(size[0] + size[1]) / 2, (rlim_t)(size[0] + size[1]) / 2 };
                setrlimit(RLIMIT_FSIZE, &rl);
            }
            execl(GLOCAL_BINARY, GLOCAL_BINARY, "ncaa-import", "--csv", csv, "--videos", videos, "--out",
                  out, (char *)NULL);
            _exit(127);
        }
        int wst;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        assert_true(WIFEXITED(wst));
        assert_int_equal(WEXITSTATUS(wst), pass == 0 ? 1 : 0);
        if (pass == 0) {
            char *msg = test_read_text(log);
            assert_non_null(msg);
            if (!strstr(msg, "v_StealSuccess_g001_c0000") || !strstr(msg, strerror(EFBIG)))
                fail_msg("no file and reason in:\n%s", msg);
            gl_free(msg);
            check_clip(out, "StealSuccess/v_StealSuccess_g001_c00001.avi", 0, len[0], GW, GH);
        }
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -name '*.tmp*')\"", out);
        assert_int_equal(system(cmd), 0);
    }
    for (int k = 0; k < 3; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "StealSuccess/v_StealSuccess_g001_c%05d.avi", k + 1);
        check_clip(out, rel, 0, len[k], GW, GH);
    }
}

/* A CSV of n steals in game Aaaa-01, event k in the window [k * step,
 * k * step + 4000) ms (clip k + 1 of StealSuccess). */
static void write_steals(const char *csv, int n, int step)
{
    char *text = calloc((size_t)n, 128), row[128];
    assert_non_null(text);
    for (int k = 0; k < n; k++) {
        snprintf(row, sizeof row, "Game_Aaaa-01,64,48,%d,%d,-1,%d,-1,-1,steal success,train\n", k * step,
                 k * step + 4000, k * step + 3000);
        strcat(text, row);
    }
    write_text(csv, text);
    free(text);
}

/* The clips of write_steals(n, step) in out, each checked (check_clip);
 * all of them when `all`, else those present. Returns how many were. */
static int check_steals(const char *out, int n, int step, int all)
{
    char rel[128], p[1024];
    int present = 0;
    for (int k = 0; k < n; k++) {
        snprintf(rel, sizeof rel, "StealSuccess/v_StealSuccess_g001_c%05d.avi", k + 1);
        snprintf(p, sizeof p, "%s/%s", out, rel);
        if (!all && !file_exists(p)) continue;
        check_clip(out, rel, k * step, k * step + 4000, GW, GH);
        present++;
    }
    return present;
}

/* A run killed with SIGKILL at some point leaves only whole clips; the next
 * run finishes the job and deletes the killed run's temporary files. The
 * assertions hold wherever the kill lands. */
static void test_import_killed(void **state)
{
    (void)state;
    char videos[512], csv0[512], csv[600], out[512];
    setup_import(videos, csv0, sizeof videos);
    snprintf(csv, sizeof csv, "%s/many.csv", tmpdir);
    snprintf(out, sizeof out, "%s/out_kill", tmpdir);
    enum { N = 30 };
    write_steals(csv, N, 120);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(GLOCAL_BINARY, GLOCAL_BINARY, "ncaa-import", "--csv", csv, "--videos", videos,
              "--out", out, (char *)NULL);
        _exit(127);
    }
    /* Kill as soon as the first clip is in place (the command's start-up,
     * libtorch included, takes a while), or after 30 s. */
    char first[1024];
    snprintf(first, sizeof first, "%s/StealSuccess/v_StealSuccess_g001_c00001.avi", out);
    (void)test_wait_for_file(first, NULL, 30);
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);

    char p[1024];
    int left = check_steals(out, N, 120, 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.tmp.*' | wc -l", out);
    FILE *pp = popen(cmd, "r");
    int temps = -1;
    if (pp) {
        if (fscanf(pp, "%d", &temps) != 1) temps = -1;
        pclose(pp);
    }
    print_message("the killed run left %d of %d clips and %d temporary files\n", left, N, temps);

    ncaa_import_config cfg = import_config(csv, videos, out);
    ncaa_import_report rep;
    int rc = ncaa_import(&cfg, &rep);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(rep.failed, 0);
    assert_int_equal(rep.written + rep.skipped, N);
    ncaa_import_report_release(&rep);
    assert_int_equal(check_steals(out, N, 120, 1), N);
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -name '*.tmp.*')\"", out);
    assert_int_equal(system(cmd), 0);

    /* A temporary file of a process that is gone goes; the clips stay. */
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0) _exit(0);
    assert_int_equal(waitpid(dead, &st, 0), dead);
    snprintf(p, sizeof p, "%s/StealSuccess/v_StealSuccess_g001_c00001.avi.tmp.%ld.0", out,
             (long)dead);
    write_text(p, "half a clip");
    rc = ncaa_import(&cfg, &rep);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(rep.stale_removed, 1);
    assert_int_equal(rep.skipped, N);
    ncaa_import_report_release(&rep);
    assert_false(file_exists(p));
}

/* SIGTERM once the first clip is in place: the command finishes the window
 * it is cutting and exits 143 without the lists and without a temporary
 * file; the same command then cuts the rest and writes the lists. */
static void test_import_sigterm(void **state)
{
    (void)state;
    char videos[512], csv0[512], csv[600], out[512], log[600], p[1024];
    setup_import(videos, csv0, sizeof videos);
    snprintf(csv, sizeof csv, "%s/sig.csv", tmpdir);
    snprintf(out, sizeof out, "%s/out_sig", tmpdir);
    snprintf(log, sizeof log, "%s/sig.log", tmpdir);
    enum { N = 60 };
    write_steals(csv, N, 60);
    const char *args[] = { "--threads", "1", "ncaa-import", "--csv", csv, "--videos", videos, "--out", out, NULL };
    pid_t pid = test_spawn(GLOCAL_BINARY, log, 0, args, NULL, NULL);
    assert_true(pid > 0);
    char first[1024];
    snprintf(first, sizeof first, "%s/StealSuccess/v_StealSuccess_g001_c00001.avi", out);
    assert_true(test_wait_for_file(first, NULL, 30));
    kill(pid, SIGTERM);
    assert_int_equal(test_wait_status(pid), 143);
    char *said = test_read_text(log);
    assert_non_null(said);
    if (!strstr(said, "stopped by signal 15") || !strstr(said, "run the same command again to continue"))
        fail_msg("%s", said);
    gl_free(said);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -name '*.tmp.*')\"", out);
    assert_int_equal(system(cmd), 0);
    snprintf(p, sizeof p, "%s/trainlist01.txt", out);
    assert_false(file_exists(p));
    int left = check_steals(out, N, 60, 0);
    assert_true(left >= 1 && left < N);
    assert_int_equal(test_wait_status(test_spawn(GLOCAL_BINARY, log, 0, args, NULL, NULL)), 0);
    said = test_read_text(log);
    char want[128];
    snprintf(want, sizeof want, "%d events in 1 games: %d clips written, %d already there, 0 failed", N, N - left, left);
    if (!strstr(said, want)) fail_msg("expected '%s' in:\n%s", want, said);
    gl_free(said);
    assert_int_equal(check_steals(out, N, 60, 1), N);
    snprintf(p, sizeof p, "%s/trainlist01.txt", out);
    assert_true(file_exists(p));
}

/* Games cut in parallel give the same bytes and the same report as one at
 * a time (the writer is bit-exact; errors are ordered by CSV line). */
static void test_import_parallel_same(void **state)
{
    (void)state;
    char videos[512], csv[512], out1[512], out3[512];
    setup_import(videos, csv, sizeof videos);
    snprintf(out1, sizeof out1, "%s/out_serial", tmpdir);
    snprintf(out3, sizeof out3, "%s/out_parallel", tmpdir);
    ncaa_import_config cfg = import_config(csv, videos, out1);
    ncaa_import_report r1, r3;
    gl_set_num_threads(1);
    int rc = ncaa_import(&cfg, &r1);
    cfg.out = out3;
    gl_set_num_threads(3);
    if (rc == 0) rc = ncaa_import(&cfg, &r3);
    gl_set_num_threads(0);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(r1.written, 4);
    assert_int_equal(r3.written, 4);
    assert_int_equal(r1.failed, r3.failed);
    assert_int_equal(r1.num_errors, 3);
    assert_int_equal(r3.num_errors, 3);
    for (long i = 0; i < r1.num_errors; i++) assert_string_equal(r1.errors[i], r3.errors[i]);
    /* Ordered by CSV line: line 4, the missing game (line 5), line 7. */
    assert_non_null(strstr(r1.errors[0], "line 4 "));
    assert_non_null(strstr(r1.errors[1], "game Missing_Gm1"));
    assert_non_null(strstr(r1.errors[2], "line 7 "));
    ncaa_import_report_release(&r1);
    ncaa_import_report_release(&r3);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "diff -r '%s' '%s' >/dev/null", out1, out3);
    assert_int_equal(system(cmd), 0);
}

/* A game file FFmpeg cannot read fails its events only. */
static void test_import_broken_game(void **state)
{
    (void)state;
    char videos[512], csv[512], out[512], p[1024];
    snprintf(videos, sizeof videos, "%s/broken_games", tmpdir);
    snprintf(csv, sizeof csv, "%s/broken.csv", tmpdir);
    snprintf(out, sizeof out, "%s/out_broken", tmpdir);
    assert_int_equal(gl_mkdirs(videos), 0);
    snprintf(p, sizeof p, "%s/Broken_gm1.avi", videos);
    write_text(p, "RIFF but not really a video at all");
    write_text(csv, "Broken_gm1,64,48,1000,3000,-1,2000,-1,-1,steal success,test\n"
                    "Broken_gm1,64,48,5000,6000,-1,5500,-1,-1,steal success,test\n");
    ncaa_import_config cfg = import_config(csv, videos, out);
    ncaa_import_report rep;
    int rc = ncaa_import(&cfg, &rep);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(rep.written, 0);
    assert_int_equal(rep.failed, 2);
    assert_int_equal(rep.games_missing, 0);
    assert_true(has_error(&rep, "line 1 (game Broken_gm1, steal success, 1000..3000 ms): "
                                "cannot read the game video"));
    assert_true(has_error(&rep, "line 2 (game Broken_gm1"));
    ncaa_import_report_release(&rep);
    /* Empty lists are still written. */
    dataset_index *idx = NULL;
    rc = dataset_index_load(&idx, out, NULL, 1);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(idx->num_clips, 0);
    dataset_index_free(&idx);
}

static void test_import_config(void **state)
{
    (void)state;
    ncaa_import_config c = ncaa_import_config_default();
    ncaa_import_report rep;
    assert_int_equal(c.scheme, 11);
    assert_int_equal(ncaa_import(&c, &rep), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "csv"));
    c.csv = "x.csv";
    c.videos = "v";
    c.out = "o";
    c.scheme = 7;
    assert_int_equal(ncaa_import_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "scheme"));
    c.scheme = 6;
    c.width = 33;
    c.height = 24;
    assert_int_equal(ncaa_import_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "width, height"));
    c.width = 32;
    assert_int_equal(ncaa_import_config_validate(&c), 0);
    c.qscale = 32;
    assert_int_equal(ncaa_import_config_validate(&c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "qscale"));
    c.qscale = 0;
    /* A missing videos folder stops the run. */
    char videos[512], csv[512];
    setup_import(videos, csv, sizeof videos);
    c.csv = csv;
    char none[600];
    snprintf(none, sizeof none, "%s/no_such_folder", tmpdir);
    c.videos = none;
    c.out = none;
    assert_int_equal(ncaa_import(&c, &rep), GL_EIO);
    assert_non_null(strstr(gl_last_error(), "no_such_folder: cannot list the videos folder"));
    ncaa_import_report_release(&rep);
}

/* The command: 6 classes at 32x24, exit code 1 because some events failed. */
static void test_import_command(void **state)
{
    (void)state;
    char videos[512], csv[512], out[512];
    setup_import(videos, csv, sizeof videos);
    snprintf(out, sizeof out, "%s/out6", tmpdir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' ncaa-import --csv '%s' --videos '%s' --out '%s' --labels 6 --size 32x24 "
             "--qscale 5 >'%s/cmd.out' 2>&1", GLOCAL_BINARY, csv, videos, out, tmpdir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    check_clip(out, "Layup/v_Layup_g001_c00001.avi", 1000, 3000, 32, 24);
    check_clip(out, "Steal/v_Steal_g001_c00002.avi", 1000, 3000, 32, 24);
    check_clip(out, "3Pointer/v_3Pointer_g002_c00003.avi", 2500, 4020, 32, 24);
    check_clip(out, "FreeThrow/v_FreeThrow_g003_c00006.avi", 6000, 8000, 32, 24);
    char p[1024];
    snprintf(p, sizeof p, "%s/classInd.txt", out);
    void *data;
    size_t n;
    assert_int_equal(gl_read_file(p, &data, &n), 0);
    const char *want = "1 3Pointer\r\n2 FreeThrow\r\n3 Layup\r\n4 Other2Pointer\r\n5 SlamDunk\r\n"
                       "6 Steal\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(data, want, n);
    gl_free(data);
    /* Usage errors exit 2. */
    snprintf(cmd, sizeof cmd, "'%s' ncaa-import --csv x >/dev/null 2>&1", GLOCAL_BINARY);
    st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(cmd, sizeof cmd, "'%s' ncaa-import --help >/dev/null 2>&1", GLOCAL_BINARY);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_end_to_end),
        cmocka_unit_test(test_import_cancel),
        cmocka_unit_test(test_import_killed),
        cmocka_unit_test(test_import_sigterm),
        cmocka_unit_test(test_import_disk_full),
        cmocka_unit_test(test_import_broken_game),
        cmocka_unit_test(test_import_parallel_same),
        cmocka_unit_test(test_import_config),
        cmocka_unit_test(test_import_command),
    };
    return cmocka_run_group_tests(tests, ncaa_test_setup, ncaa_test_teardown);
}
