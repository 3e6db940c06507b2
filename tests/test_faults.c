/* test_faults.c — commands under faults. Signals: SIGTERM during `glocal
 * extract` (once the first clip is spooled) and SIGINT during train-motion
 * (once a checkpoint is written) stop with 143 / 130, leave no temporary file,
 * and the same command (train-motion: with --resume) finishes to the result
 * of an uninterrupted run; SIGTERM during train-classifier leaves the
 * checkpoint of the step it stopped at, which --resume continues. Disk full: `glocal extract`, a train-motion
 * checkpoint and `glocal synth` run with a file size limit (RLIMIT_FSIZE,
 * SIGXFSZ ignored, so a write past it fails with EFBIG as a full disk fails
 * with ENOSPC; no root needed). Each must exit 1 (never a signal) with a
 * message naming the file and the reason, leave what it finished before
 * intact (a cache's spooled clips verify, the previous checkpoint loads, the
 * clips written match an unlimited run's), and a rerun without the limit
 * must finish where the first stopped. Damaged videos: stored and listed
 * (in /warnings), also by a run resuming after a kill -9, or with --strict
 * failed (in /errors); a resume with the other --strict is refused.
 * ncaa-import's clips: test_ncaa_import.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "datasets/cache.h"
#include "nn/nn.h"
#include "tests/testutil.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_faults.");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* In the child: files limited to *(long *)ctx bytes. */
static void limit_files(void *ctx)
{
    long limit = *(const long *)ctx;
    signal(SIGXFSZ, SIG_IGN); /* kept across exec: writes fail with EFBIG */
    struct rlimit rl = { (rlim_t)limit, (rlim_t)limit };
    setrlimit(RLIMIT_FSIZE, &rl);
}

/* Starts `glocal ARGS...` with files limited to `limit` bytes (0: no limit),
 * stdout and stderr to `log`; returns the pid. */
static pid_t spawn_limited(long limit, const char *log, const char *const *args)
{
    return test_spawn(GLOCAL_BINARY, log, 0, args, limit > 0 ? limit_files : NULL, &limit);
}

/* Runs `glocal ARGS...` like spawn_limited; returns its exit status. */
static int run_limited(long limit, const char *log, const char *const *args)
{
    return test_wait_status(spawn_limited(limit, log, args));
}

/* The log names `what` and says the file got too large. */
static void assert_log_says(const char *log, const char *what)
{
    char *text = test_read_text(log);
    assert_non_null(text);
    if (!strstr(text, what) || !strstr(text, strerror(EFBIG)))
        fail_msg("%s: expected '%s' and '%s' in:\n%s", log, what, strerror(EFBIG), text);
    gl_free(text);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Number of files under dir whose name contains `part`. */
static int count_named(const char *dir, const char *part)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*%s*' | wc -l", dir, part);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    if (n != 0) { /* show them */
        snprintf(cmd, sizeof cmd, "find '%s' -name '*%s*' >&2", dir, part);
        if (system(cmd) != 0) n = -1;
    }
    return n;
}

/* A small synthetic dataset, rendered once (the reference of the synth test). */
static const char *dataset(void)
{
    static char ds[300];
    if (ds[0]) return ds;
    snprintf(ds, sizeof ds, "%s/syn", tmpdir);
    char log[300];
    snprintf(log, sizeof log, "%s/syn.log", tmpdir);
    const char *args[] = { "synth", "--out", ds, "--classes", "2", "--clips-per-class", "2",
                           "--frames", "8", "--size", "32x32", "--supersample", "1", NULL };
    assert_int_equal(run_limited(0, log, args), 0);
    return ds;
}

/* Two caches hold the same clips, errors and fields. */
static void assert_same_cache(const char *pa, const char *pb)
{
    cache *a = NULL, *b = NULL;
    OK(cache_open(pa, 0, &a));
    OK(cache_open(pb, 0, &b));
    assert_int_equal(cache_verify(b, NULL, NULL), 0);
    assert_int_equal(cache_clip_count(a), cache_clip_count(b));
    assert_int_equal(cache_error_count(a), cache_error_count(b));
    assert_int_equal(cache_pair_count(a), cache_pair_count(b));
    const cache_config *cfg = cache_get_config(a);
    size_t per = (size_t)cfg->channels * cfg->height * cfg->width;
    float *fa = malloc(sizeof *fa * per), *fb = malloc(sizeof *fb * per);
    for (long i = 0; i < cache_clip_count(a); i++) {
        assert_string_equal(cache_get_clip(a, i)->name, cache_get_clip(b, i)->name);
        for (long p = 0; p < cache_get_clip(a, i)->pairs; p++) {
            OK(cache_read_fields(a, i, p, 1, fa));
            OK(cache_read_fields(b, i, p, 1, fb));
            assert_memory_equal(fa, fb, sizeof *fa * per);
        }
    }
    free(fa);
    free(fb);
    cache_close(&a);
    cache_close(&b);
}

/* Extract: the limit lets each spooled clip through but not the merged cache
 * (the publish fails), then stops the first spooled clip (the run fails at
 * once). Before the fix the second crashed in HDF5's atexit clean-up. */
static void test_extract_full(void **state)
{
    (void)state;
    const char *ds = dataset();
    char ref[300], out[300], out2[300], log[300], parts[320];
    snprintf(ref, sizeof ref, "%s/ref.h5", tmpdir);
    snprintf(out, sizeof out, "%s/out.h5", tmpdir);
    snprintf(out2, sizeof out2, "%s/out2.h5", tmpdir);
    snprintf(log, sizeof log, "%s/extract.log", tmpdir);
    snprintf(parts, sizeof parts, "%s.parts", out);
#define EXTRACT_ARGS(o) { "--threads", "1", "extract", "--dataset", ds, "--method", "rgbdiff", \
                          "--size", "32x32", "--workers", "2", "--out", o, NULL }
    const char *aref[] = EXTRACT_ARGS(ref), *aout[] = EXTRACT_ARGS(out), *aout2[] = EXTRACT_ARGS(out2);
    assert_int_equal(run_limited(0, log, aref), 0);
    cache *c = NULL;
    OK(cache_open(ref, 0, &c));
    long nclips = cache_clip_count(c);
    cache_close(&c);
    assert_int_equal(nclips, 4); /* 2 classes x 2 clips */
    long whole = file_size(ref);
    assert_true(whole > 0);

    /* 1. the spool fills, the publish fails */
    assert_int_equal(run_limited(whole / 2, log, aout), 1);
    assert_log_says(log, "out.h5");
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(count_named(tmpdir, ".tmp"), 0);
    DIR *d = opendir(parts);
    assert_non_null(d);
    struct dirent *de;
    int spooled = 0;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "c0", 2)) continue; /* a spooled clip */
        char p[700];
        snprintf(p, sizeof p, "%s/%s", parts, de->d_name);
        OK(cache_open(p, 0, &c));
        /* one problem only: a spooled part holds one clip of the 4 */
        assert_int_equal(cache_verify(c, NULL, NULL), 1);
        assert_int_equal(cache_clip_count(c), 1);
        float f[3 * 32 * 32];
        for (long k = 0; k < cache_pair_count(c); k++) OK(cache_read_fields(c, 0, k, 1, f));
        cache_close(&c);
        spooled++;
    }
    closedir(d);
    assert_int_equal(spooled, nclips);
    /* the rerun resumes (nothing left to compute) and publishes */
    assert_int_equal(run_limited(0, log, aout), 0);
    assert_same_cache(ref, out);

    /* 2. the first spooled clip does not fit */
    assert_int_equal(run_limited(whole / (2 * nclips), log, aout2), 1);
    assert_log_says(log, "out2.h5.parts/");
    assert_int_equal(access(out2, F_OK), -1);
    assert_int_equal(count_named(tmpdir, ".tmp"), 0);
    assert_int_equal(run_limited(0, log, aout2), 0);
    assert_same_cache(ref, out2);
}

/* The "step" attribute of a checkpoint (which nn_checkpoint_read_config opened). */
static long checkpoint_step(const char *path)
{
    char *config = NULL;
    OK(nn_checkpoint_read_config(path, &config));
    gl_free(config);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), a = -1;
    int64_t step = -1;
    assert_true(f >= 0);
    a = H5Aopen(f, "step", H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &step) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    return (long)step;
}

/* train-motion: 2 steps, then --resume to 4 with the checkpoint not fitting:
 * exit 1, the step-2 checkpoint still loads; without the limit it reaches 4. */
static void test_checkpoint_full(void **state)
{
    (void)state;
    char dir[300], ckpt[320], log[300];
    snprintf(dir, sizeof dir, "%s/motion", tmpdir);
    snprintf(ckpt, sizeof ckpt, "%s/glocal.h5", dir);
    snprintf(log, sizeof log, "%s/train.log", tmpdir);
#define TRAIN_ARGS(steps, ...) { "--threads", "1", "train-motion", "--synth", "--size", "32", "--feat", "8", \
                                 "--batch", "2", "--pool", "8", "--log-every", "1", "--ckpt-every", "1",     \
                                 "--out", dir, "--steps", steps, __VA_ARGS__ }
    const char *first[] = TRAIN_ARGS("2", NULL), *more[] = TRAIN_ARGS("4", "--resume", NULL);
    assert_int_equal(run_limited(0, log, first), 0);
    assert_int_equal(checkpoint_step(ckpt), 2);
    long size = file_size(ckpt);
    assert_true(size > 0);
    assert_int_equal(run_limited(size / 2, log, more), 1);
    assert_log_says(log, "glocal.h5");
    assert_int_equal(checkpoint_step(ckpt), 2);
    assert_int_equal(count_named(dir, ".tmp"), 0);
    assert_int_equal(run_limited(0, log, more), 0);
    assert_int_equal(checkpoint_step(ckpt), 4);
}

/* synth: the limit lets the videos through but not the ground-truth files. */
static void test_synth_full(void **state)
{
    (void)state;
    const char *ref = dataset();
    char out[300], log[300], p[400], q[400];
    snprintf(out, sizeof out, "%s/syn_full", tmpdir);
    snprintf(log, sizeof log, "%s/synth.log", tmpdir);
    snprintf(p, sizeof p, "%s/Still/v_Still_g01_c01.avi", ref);
    snprintf(q, sizeof q, "%s/Still/v_Still_g01_c01_gt.h5", ref);
    long avi = file_size(p), gt = file_size(q);
    if (avi < 0) { /* the first class is another one: find any clip */
        snprintf(p, sizeof p, "find '%s' -name '*_c01.avi' | head -1", ref);
        FILE *f = popen(p, "r");
        assert_non_null(f);
        assert_non_null(fgets(p, sizeof p, f));
        pclose(f);
        p[strcspn(p, "\n")] = 0;
        snprintf(q, sizeof q, "%.*s_gt.h5", (int)(strlen(p) - 4), p);
        avi = file_size(p);
        gt = file_size(q);
    }
    assert_true(avi > 0 && gt > avi);
    const char *args[] = { "synth", "--out", out, "--classes", "2", "--clips-per-class", "2",
                           "--frames", "8", "--size", "32x32", "--supersample", "1", NULL };
    assert_int_equal(run_limited((avi + gt) / 2, log, args), 1);
    assert_log_says(log, "_gt.h5");
    assert_int_equal(count_named(out, ".tmp"), 0);
    /* what was written is what an unlimited run writes */
    char cmd[1000];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && find . -type f | while read f; do cmp -s \"$f\" '%s'/\"$f\" || exit 1; done", out, ref);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_limited(0, log, args), 0);
    snprintf(cmd, sizeof cmd, "diff -r '%s' '%s' >/dev/null", out, ref);
    assert_int_equal(system(cmd), 0);
}

/* Waits (up to 60 s) until a file whose name starts with `prefix` and ends
 * in ".h5" (published, not a temporary file) is in dir. */
static int wait_for_file(const char *dir, const char *prefix)
{
    for (int t = 0; t < 12000; t++) {
        DIR *d = opendir(dir);
        struct dirent *de;
        int found = 0;
        while (d && (de = readdir(d)))
            if (!strncmp(de->d_name, prefix, strlen(prefix)) && strlen(de->d_name) > 3 &&
                !strcmp(de->d_name + strlen(de->d_name) - 3, ".h5"))
                found = 1;
        if (d) closedir(d);
        if (found) return 1;
        usleep(5000);
    }
    return 0;
}

/* SIGTERM once the first clip is spooled: exit 143, nothing temporary, the
 * spooled clips kept; the same command resumes to an uninterrupted run's cache. */
static void test_extract_sigterm(void **state)
{
    (void)state;
    char ds[300], ref[300], out[300], parts[320], log[300];
    snprintf(ds, sizeof ds, "%s/syn_big", tmpdir);
    snprintf(ref, sizeof ref, "%s/sig_ref.h5", tmpdir);
    snprintf(out, sizeof out, "%s/sig.h5", tmpdir);
    snprintf(parts, sizeof parts, "%s.parts", out);
    snprintf(log, sizeof log, "%s/sig.log", tmpdir);
    /* 12 clips of 23 TV-L1 pairs: seconds of work, the signal comes after the first */
    const char *synth[] = { "synth", "--out", ds, "--classes", "3", "--clips-per-class", "4", "--frames", "24",
                            "--size", "64x64", "--supersample", "1", NULL };
    assert_int_equal(run_limited(0, log, synth), 0);
#define SIG_ARGS(o) { "--threads", "1", "extract", "--dataset", ds, "--method", "tvl1", "--size", "64x64", \
                      "--workers", "1", "--out", o, NULL }
    const char *aref[] = SIG_ARGS(ref), *aout[] = SIG_ARGS(out);
    assert_int_equal(run_limited(0, log, aref), 0);
    pid_t pid = spawn_limited(0, log, aout);
    assert_true(pid > 0);
    assert_true(wait_for_file(parts, "c0"));
    kill(pid, SIGTERM);
    assert_int_equal(test_wait_status(pid), 143);
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(count_named(tmpdir, ".tmp"), 0);
    char *text = test_read_text(log);
    assert_non_null(text);
    assert_non_null(strstr(text, "run the same command again to resume"));
    gl_free(text);
    assert_int_equal(run_limited(0, log, aout), 0);
    text = test_read_text(log);
    assert_non_null(strstr(text, "resuming"));
    gl_free(text);
    assert_same_cache(ref, out);
}

/* SIGINT once a checkpoint is written: exit 130 with the checkpoint of the
 * step it stopped at; --resume continues from there to the requested step. */
static void test_train_sigint(void **state)
{
    (void)state;
    char dir[300], ckpt[320], log[300];
    snprintf(dir, sizeof dir, "%s/motion_sig", tmpdir);
    snprintf(ckpt, sizeof ckpt, "%s/glocal.h5", dir);
    snprintf(log, sizeof log, "%s/train_sig.log", tmpdir);
    const char *args[] = TRAIN_ARGS("1000000", NULL);
    pid_t pid = spawn_limited(0, log, args);
    assert_true(pid > 0);
    assert_true(wait_for_file(dir, "glocal.h5"));
    kill(pid, SIGINT);
    assert_int_equal(test_wait_status(pid), 130);
    assert_int_equal(count_named(dir, ".tmp"), 0);
    long step = checkpoint_step(ckpt);
    assert_true(step >= 1);
    char steps[32];
    snprintf(steps, sizeof steps, "%ld", step + 2);
    const char *more[] = TRAIN_ARGS(steps, "--resume", NULL);
    assert_int_equal(run_limited(0, log, more), 0);
    assert_int_equal(checkpoint_step(ckpt), step + 2);
}

/* SIGTERM while the teacher's flows are computed (before any step): exit 143,
 * a message saying nothing was trained, no checkpoint and no temporary file. */
static void test_train_sigterm_teacher(void **state)
{
    (void)state;
    char dir[300], log[300];
    snprintf(dir, sizeof dir, "%s/motion_teacher_sig", tmpdir);
    snprintf(log, sizeof log, "%s/train_teacher_sig.log", tmpdir);
    const char *args[] = TRAIN_ARGS("1000000", "--pool", "8000", "--teacher", "tvl1", NULL);
    pid_t pid = spawn_limited(0, log, args);
    assert_true(pid > 0);
    /* the teacher starts as the pool's rendering ends; its first progress
     * line comes 10 s in, after the last pair on an idle machine (8,000
     * pairs of 32x32 take 9 s in a Release build), so wait for the
     * rendering's last line instead, and a moment for the teacher to start */
    assert_true(test_wait_for_file(log, "rendering pairs 8000/8000", 300));
    usleep(200 * 1000);
    kill(pid, SIGTERM);
    assert_int_equal(test_wait_status(pid), 143);
    char *said = test_read_text(log);
    assert_non_null(said);
    if (!strstr(said, "while computing the teacher's flows")) fail_msg("%s", said);
    gl_free(said);
    assert_int_equal(count_named(dir, "glocal.h5"), 0);
    assert_int_equal(count_named(dir, ".tmp"), 0);
}

/* The "step" of the first line of a train.jsonl (the steps of one epoch). */
static long first_epoch_steps(const char *log_path)
{
    char *text = test_read_text(log_path);
    assert_non_null(text);
    const char *p = strstr(text, "\"step\": ");
    assert_non_null(p);
    long steps = strtol(p + 8, NULL, 10);
    gl_free(text);
    return steps;
}

/* SIGTERM once an epoch is logged: exit 143 with a checkpoint of the step it
 * stopped at (inside an epoch too) and no temporary file; --resume continues
 * from that step to the end of the requested epochs. */
static void test_train_classifier_sigterm(void **state)
{
    (void)state;
    char dir[300], ckpt[320], jsonl[320], log[300], epochs[32];
    snprintf(dir, sizeof dir, "%s/cls_sig", tmpdir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", dir);
    snprintf(jsonl, sizeof jsonl, "%s/train.jsonl", dir);
    snprintf(log, sizeof log, "%s/cls_sig.log", tmpdir);
    const char *ds = dataset();
#define CLS_ARGS(e, ...) { "--threads", "1", "train-classifier", "--data", ds, "--out", dir, "--arch", "tiny", \
                           "--size", "16x16", "--decode", "32x32", "--segments", "2", "--batch", "1",       \
                           "--schedule", "constant", "--workers", "1", "--epochs", e, __VA_ARGS__ }
    const char *args[] = CLS_ARGS("100000", NULL);
    pid_t pid = spawn_limited(0, log, args);
    assert_true(pid > 0);
    assert_true(test_wait_for_file(jsonl, NULL, 60));
    kill(pid, SIGTERM);
    assert_int_equal(test_wait_status(pid), 143);
    assert_int_equal(count_named(dir, ".tmp"), 0);
    char *text = test_read_text(log);
    assert_non_null(text);
    if (!strstr(text, "add --resume to the same command")) fail_msg("no resume hint in:\n%s", text);
    gl_free(text);
    long nb = first_epoch_steps(jsonl), step = checkpoint_step(ckpt);
    assert_true(nb >= 1);
    assert_true(step >= nb);
    print_message("stopped at step %ld (%ld per epoch)\n", step, nb);
    long want = step / nb + 2;
    snprintf(epochs, sizeof epochs, "%ld", want);
    const char *more[] = CLS_ARGS(epochs, "--resume", NULL);
#undef CLS_ARGS
    assert_int_equal(run_limited(0, log, more), 0);
    assert_int_equal(checkpoint_step(ckpt), want * nb);
    assert_int_equal(count_named(dir, ".tmp"), 0);
}

/* A UCF-101 layout in tmpdir/name: the real UCF-101 clip with 300-byte holes
 * (made here), listed first, then `good` intact copies (symlinks). */
static void make_damaged_dataset(char *ds, size_t n, const char *name, int good)
{
    char p[400], list[400] = "Holed/v_Holed_g02_c01.avi 1\n";
    snprintf(ds, n, "%s/%s", tmpdir, name);
    snprintf(p, sizeof p, "%s/Good", ds);
    assert_int_equal(gl_mkdirs(p), 0);
    snprintf(p, sizeof p, "%s/Holed", ds);
    assert_int_equal(gl_mkdirs(p), 0);
    const char *clip = GLOCAL_DATA_DIR "/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi";
    for (int g = 1; g <= good; g++) {
        snprintf(p, sizeof p, "%s/Good/v_Good_g%02d_c01.avi", ds, g);
        assert_int_equal(symlink(clip, p), 0);
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "Good/v_Good_g%02d_c01.avi 2\n", g);
    }
    void *data;
    size_t size;
    OK(gl_read_file(clip, &data, &size));
    uint8_t *b = data;
    for (int k = 0; k < 5; k++)
        for (size_t i = size * (3 + k) / 10, e = i + 300; i < e; i++) b[i] = (uint8_t)(i * 37 + 11);
    snprintf(p, sizeof p, "%s/Holed/v_Holed_g02_c01.avi", ds);
    OK(gl_write_file_atomic(p, data, size));
    gl_free(data);
    snprintf(p, sizeof p, "%s/classInd.txt", ds);
    OK(gl_write_file_atomic(p, "1 Holed\n2 Good\n", 15));
    snprintf(p, sizeof p, "%s/trainlist01.txt", ds);
    OK(gl_write_file_atomic(p, list, strlen(list)));
    snprintf(p, sizeof p, "%s/testlist01.txt", ds);
    OK(gl_write_file_atomic(p, "", 0));
}

/* The log lists the holed clip, and only it, as stored with a warning. */
static void assert_damaged_listed(const char *log)
{
    char *text = test_read_text(log);
    assert_non_null(text);
    if (!strstr(text, "warning: Holed/v_Holed_g02_c01.avi: damaged: header says 164 frames, ") ||
        !strstr(text, "decoding errors") || !strstr(text, "mpeg4: ") || strstr(text, "warning: Good"))
        fail_msg("expected the holed clip, and only it, listed as damaged:\n%s", text);
    gl_free(text);
}

/* A damaged clip beside an intact one: stored but listed as damaged with
 * FFmpeg's errors, exit 1, and recorded in /warnings; with --strict recorded
 * in /errors instead. */
static void test_extract_damaged(void **state)
{
    (void)state;
    char ds[300], out[300], strict[300], log[300];
    make_damaged_dataset(ds, sizeof ds, "dmg_ds", 1);
    snprintf(out, sizeof out, "%s/dmg.h5", tmpdir);
    snprintf(strict, sizeof strict, "%s/dmg_strict.h5", tmpdir);
    snprintf(log, sizeof log, "%s/dmg.log", tmpdir);
    const char *a1[] = { "--threads", "2", "extract", "--dataset", ds, "--method", "rgbdiff", "--size", "16x16",
                         "--stride", "8", "--out", out, NULL };
    assert_int_equal(run_limited(0, log, a1), 1);
    assert_damaged_listed(log);
    cache *c = NULL;
    OK(cache_open(out, 0, &c));
    assert_int_equal(cache_clip_count(c), 2);
    assert_int_equal(cache_error_count(c), 0);
    assert_int_equal(cache_warning_count(c), 1);
    assert_string_equal(cache_get_warning(c, 0)->name, "Holed/v_Holed_g02_c01.avi");
    cache_close(&c);
    /* run again on the finished cache: nothing to compute, the same report */
    assert_int_equal(run_limited(0, log, a1), 1);
    assert_damaged_listed(log);
    const char *a2[] = { "--threads", "2", "extract", "--dataset", ds, "--method", "rgbdiff", "--size", "16x16",
                         "--stride", "8", "--strict", "--out", strict, NULL };
    assert_int_equal(run_limited(0, log, a2), 1);
    OK(cache_open(strict, 0, &c));
    assert_int_equal(cache_clip_count(c), 1);
    assert_string_equal(cache_get_clip(c, 0)->name, "Good/v_Good_g01_c01.avi");
    assert_int_equal(cache_error_count(c), 1);
    assert_int_equal(cache_warning_count(c), 0);
    assert_string_equal(cache_get_error(c, 0)->name, "Holed/v_Holed_g02_c01.avi");
    assert_non_null(strstr(cache_get_error(c, 0)->message, "damaged: header says 164 frames, "));
    cache_close(&c);
}

/* kill -9 once the damaged clip (the first) is spooled: a rerun with
 * --strict is refused (the spool was started without it), and the rerun
 * without it finishes and lists the damaged clip that the killed run met. */
static void test_extract_damaged_resume(void **state)
{
    (void)state;
    char ds[300], out[300], parts[320], log[300];
    make_damaged_dataset(ds, sizeof ds, "dmg_kill_ds", 3);
    snprintf(out, sizeof out, "%s/dmg_kill.h5", tmpdir);
    snprintf(parts, sizeof parts, "%s.parts", out);
    snprintf(log, sizeof log, "%s/dmg_kill.log", tmpdir);
    /* one worker, the clips in list order: TV-L1 of 163 pairs per intact clip
     * takes seconds, the kill comes after the first */
#define KILL_ARGS(...) { "--threads", "1", "extract", "--dataset", ds, "--method", "tvl1", "--size", "64x64", \
                         "--workers", "1", "--out", out, __VA_ARGS__ }
    const char *args[] = KILL_ARGS(NULL), *strict[] = KILL_ARGS("--strict", NULL);
#undef KILL_ARGS
    pid_t pid = spawn_limited(0, log, args);
    assert_true(pid > 0);
    assert_true(wait_for_file(parts, "c0"));
    kill(pid, SIGKILL);
    assert_int_equal(test_wait_status(pid), 128 + SIGKILL);
    assert_int_equal(access(out, F_OK), -1); /* killed before publishing */
    assert_int_equal(run_limited(0, log, strict), 1);
    char *text = test_read_text(log);
    assert_non_null(text);
    if (!strstr(text, "was started with a different params") || !strstr(text, "strict (damaged clips fail)"))
        fail_msg("expected the --strict mismatch refused:\n%s", text);
    gl_free(text);
    assert_int_equal(access(out, F_OK), -1);
    assert_int_equal(run_limited(0, log, args), 1);
    text = test_read_text(log);
    assert_non_null(text);
    assert_non_null(strstr(text, "resuming"));
    gl_free(text);
    assert_damaged_listed(log);
    cache *c = NULL;
    OK(cache_open(out, 0, &c));
    assert_int_equal(cache_clip_count(c), 4);
    assert_int_equal(cache_error_count(c), 0);
    assert_int_equal(cache_warning_count(c), 1);
    assert_int_equal(cache_get_warning(c, 0)->index, 0);
    cache_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract_full),
        cmocka_unit_test(test_checkpoint_full),
        cmocka_unit_test(test_synth_full),
        cmocka_unit_test(test_extract_sigterm),
        cmocka_unit_test(test_train_sigint),
        cmocka_unit_test(test_train_sigterm_teacher),
        cmocka_unit_test(test_train_classifier_sigterm),
        cmocka_unit_test(test_extract_damaged),
        cmocka_unit_test(test_extract_damaged_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
