/* testutil.h — small helpers shared by the cmocka test programs. */
#ifndef GLOCAL_TESTUTIL_H
#define GLOCAL_TESTUTIL_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nn/base.h"

/* cmocka 1.1.5 (Debian 12) has no assert_double_equal: |a - b| <= tol, with
 * both values in the failure message. */
#ifndef assert_double_equal
#define assert_double_equal(a, b, tol)                                                      \
    do {                                                                                    \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                      \
        if (!(fabs(a_ - b_) <= t_)) {                                                       \
            print_error("%s = %.17g, expected %s = %.17g (tolerance %g)\n", #a, a_, #b, b_, \
                        t_);                                                                \
            fail();                                                                         \
        }                                                                                   \
    } while (0)
#endif

/* Asserts a glocal call returned 0; on failure shows the call and its message. */
#define OK(call)                                                                            \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_ != 0) {                                                                     \
            print_error("%s returned %d: %s\n", #call, rc_, gl_last_error());              \
            fail();                                                                         \
        }                                                                                   \
    } while (0)

/* A new folder /tmp/<prefix>XXXXXX, its path in buf; 0, or -1 on failure. */
static inline int test_tmpdir_make(char *buf, size_t n, const char *prefix)
{
    snprintf(buf, n, "/tmp/%sXXXXXX", prefix);
    return mkdtemp(buf) ? 0 : -1;
}

/* dir/name in buf, dir made on first use as /tmp/<prefix>XXXXXX (for tests
 * that remove it once at the end with test_tmpdir_remove). */
static inline void test_tmp_path(char *dir, size_t dn, const char *prefix, char *buf, size_t n,
                                 const char *name)
{
    if (!dir[0] && test_tmpdir_make(dir, dn, prefix) < 0) {
        fprintf(stderr, "cannot make a temporary folder /tmp/%sXXXXXX\n", prefix);
        abort();
    }
    snprintf(buf, n, "%s/%s", dir, name);
}

/* Checks for code that runs in a child process (a distributed rank): no
 * cmocka assert there (it would unwind into the child's copy of the runner);
 * a failed check prints where and why, with the library's last error, and
 * returns 1 from the enclosing function (the child's exit status). */
#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, " [%s]\n", gl_last_error());                                     \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)
#define COK(call) CHECK((call) == 0, "%s", #call)

/* The whole file as a NUL-terminated string (gl_free it), or NULL. */
static inline char *test_read_text(const char *path)
{
    void *d;
    size_t n;
    if (gl_read_file(path, &d, &n) < 0) return NULL;
    char *s = gl_realloc(d, n + 1);
    if (!s) {
        gl_free(d);
        return NULL;
    }
    s[n] = 0;
    return s;
}

/* rm -rf dir; 0, or -1 on failure. */
static inline int test_tmpdir_remove(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Starts `binary ARGS...` (args NULL-terminated, at most 62) in a child
 * process with stdout and stderr to `log` (appended when `append`, else
 * truncated; created either way). `child` (may be NULL) runs in the child
 * just before the exec, with ctx: environment variables, resource limits.
 * Returns the pid, or -1 when fork fails. */
static inline pid_t test_spawn(const char *binary, const char *log, int append, const char *const *args,
                               void (*child)(void *ctx), void *ctx)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (child) child(ctx);
        char *argv[64];
        int n = 0;
        argv[n++] = (char *)binary;
        for (; args[n - 1] && n < 63; n++) argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(binary, argv);
        _exit(127);
    }
    return pid;
}

/* Polls every 5 ms, up to `seconds`, until `path` exists and, when text is
 * not NULL, holds it; 1 when it came, else 0. */
static inline int test_wait_for_file(const char *path, const char *text, double seconds)
{
    for (double t0 = gl_now();;) {
        if (access(path, F_OK) == 0) {
            if (!text) return 1;
            char *s = test_read_text(path);
            int found = s && strstr(s, text);
            gl_free(s);
            if (found) return 1;
        }
        if (gl_now() - t0 > seconds) return 0;
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* The exit status of pid, 128 + N when signal N ended it (as a shell says);
 * -1 when there is no such child. */
static inline int test_wait_status(pid_t pid)
{
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A TCP port on loopback that was free a moment ago (for c10d rendezvous). */
static inline int test_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t n = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &n), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* Distributed tests: fn runs in `world` fork()ed ranks (the parent never
 * touches libtorch: a child forked after OpenMP started could hang), each
 * rank's exit status goes to status[rank]. A rank still running after
 * deadline_s is killed and the test fails (a collective hangs). */
typedef int (*test_rank_fn)(int rank, int world, int port, void *ctx);

static inline void test_run_ranks(int world, test_rank_fn fn, void *ctx, double deadline_s, int *status)
{
    int port = test_free_port();
    pid_t pids[4];
    assert_true(world >= 1 && world <= 4);
    fflush(NULL);
    for (int r = 0; r < world; r++) {
        pids[r] = fork();
        assert_true(pids[r] >= 0);
        if (pids[r] == 0) {
            int rc = fn(r, world, port, ctx);
            fflush(NULL);
            exit(rc);
        }
    }
    double t0 = gl_now();
    int left = world;
    while (left > 0) {
        for (int r = 0; r < world; r++) {
            if (pids[r] <= 0) continue;
            int st;
            pid_t p = waitpid(pids[r], &st, WNOHANG);
            if (p == pids[r]) {
                status[r] = st;
                pids[r] = 0;
                left--;
            }
        }
        if (left > 0 && gl_now() - t0 > deadline_s) {
            for (int r = 0; r < world; r++)
                if (pids[r] > 0) kill(pids[r], SIGKILL), waitpid(pids[r], NULL, 0);
            fail_msg("ranks still running after %g s: a collective hangs", deadline_s);
        }
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* Every rank exited with status 0. */
static inline void test_assert_ranks_ok(const int *status, int world)
{
    for (int r = 0; r < world; r++) {
        if (!WIFEXITED(status[r]) || WEXITSTATUS(status[r]) != 0)
            fail_msg("rank %d ended with status 0x%x (see its message above)", r, status[r]);
    }
}

/* dir/name as float64 values (a file a child rank wrote): *n of them;
 * gl_free the result. */
static inline double *test_read_doubles(const char *dir, const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    void *data = NULL;
    size_t size = 0;
    OK(gl_read_file(path, &data, &size));
    *n = size / sizeof(double);
    return data;
}

/* The worse of a running worst difference and d, a NaN the worst of all
 * (fmax would skip it, and a NaN output would pass a tolerance). */
static inline double test_worse(double worst, double d)
{
    if (isnan(worst)) return worst;
    return isnan(d) || d > worst ? d : worst;
}

/* max |a[i] - b[i]| over n values (NaN if any difference is). */
static inline double test_max_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = test_worse(m, fabs(a[i] - b[i]));
    return m;
}

/* One uniform draw in [0, 1) of a 64-bit LCG (Knuth's MMIX constants):
 * seeded test data, the same on every machine. */
static inline double test_lcg_uniform(uint64_t *st)
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*st >> 11) / 9007199254740992.0;
}

/* A smooth band-limited texture, evaluated anywhere: shifting it is exact. */
static inline double test_texture(double x, double y)
{
    return 128 + 40 * sin(0.31 * x + 0.17 * y) + 30 * cos(0.13 * x - 0.29 * y) + 20 * sin(0.07 * x + 0.11 * y + 1.0) +
           15 * cos(0.23 * x + 0.37 * y + 0.5);
}

/* Value noise: random grey levels 30..225 on a 12 px grid, interpolated
 * bilinearly; `seed` picks an independent texture (e.g. a background and a
 * patch moving over it). Rougher than test_texture: a coarse-to-fine flow
 * cannot follow a small region of it far. */
static inline double test_noise_hash(int i, int j, int seed)
{
    uint32_t h = (uint32_t)i * 73856093u ^ (uint32_t)j * 19349663u ^ (uint32_t)seed * 83492791u;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return (h & 0xffff) / 65535.0;
}

static inline uint8_t test_value_noise(double x, double y, int seed)
{
    const double fx = x / 12, fy = y / 12;
    const int i = (int)floor(fx), j = (int)floor(fy);
    const double tx = fx - i, ty = fy - j;
    const double v = (1 - ty) * ((1 - tx) * test_noise_hash(i, j, seed) + tx * test_noise_hash(i + 1, j, seed)) +
                     ty * ((1 - tx) * test_noise_hash(i, j + 1, seed) + tx * test_noise_hash(i + 1, j + 1, seed));
    return (uint8_t)lrint(30 + 195 * v);
}

/* The moving-patch scene (the fusion's tests): a still value-noise
 * background (seed 0) and a ps x ps value-noise patch (seed 1) at (p0, p0)
 * in the first frame that moves by the whole pixels (dx, dy) in the second.
 * The grey level of pixel (x, y) of frame `second` (0 or 1). */
static inline uint8_t test_patch_scene(int x, int y, int second, int p0, int ps, int dx, int dy)
{
    const int sx = second ? x - dx : x, sy = second ? y - dy : y;
    const int in = sx >= p0 && sx < p0 + ps && sy >= p0 && sy < p0 + ps;
    return in ? test_value_noise(sx, sy, 1) : test_value_noise(x, y, 0);
}

/* Scores a flow (u, v) of that s x s scene against its exact motion: *epe
 * the mean end-point error against (dx, dy) on the patch 2 px in from its
 * edges, *bg the mean |flow| 8 px and more away from the patch and the band
 * it uncovers; both 4 px in from the frame's border. */
static inline void test_patch_scores(const float *u, const float *v, int s, int p0, int ps, int dx, int dy,
                                     double *epe, double *bg)
{
    double se = 0, sb = 0;
    long ne = 0, nb = 0;
    for (int y = 4; y < s - 4; y++)
        for (int x = 4; x < s - 4; x++) {
            const int p = y * s + x;
            if (x >= p0 + 2 && x < p0 + ps - 2 && y >= p0 + 2 && y < p0 + ps - 2) {
                se += hypot(u[p] - dx, v[p] - dy);
                ne++;
            } else if (x < p0 - 8 || x >= p0 + ps + dx + 8 || y < p0 - 8 || y >= p0 + ps + dy + 8) {
                sb += hypot(u[p], v[p]);
                nb++;
            }
        }
    *epe = se / ne;
    *bg = sb / nb;
}

/* w x h float frames of test_texture: I0(x, y) = T(x, y), I1(x, y) =
 * T(x - du, y - dv), so I1(x + du, y + dv) = I0 (a flow of (du, dv)). */
static inline void test_make_translation(float *i0, float *i1, int w, int h, double du, double dv)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            i0[y * w + x] = (float)test_texture(x, y);
            i1[y * w + x] = (float)test_texture(x - du, y - dv);
        }
}

/* Mean end-point error of the w x h flow (u, v) against the constant (du,
 * dv), over the pixels at least `border` from the edges. */
static inline double test_interior_epe(const float *u, const float *v, int w, int h, double du, double dv, int border)
{
    double s = 0;
    long n = 0;
    for (int y = border; y < h - border; y++)
        for (int x = border; x < w - border; x++) {
            size_t i = (size_t)y * w + x;
            s += hypot(u[i] - du, v[i] - dv);
            n++;
        }
    return s / n;
}

/* Real files that cannot ship with the repository (unclear or research-only
 * licences, tests/data/README.md "Not shipped"): a test that needs one runs
 * when the environment variable GLOCAL_REAL_DATA names a folder holding it
 * at `rel` (the layout of tests/data), and otherwise says which file to put
 * where and returns NULL (the caller then skip()s). The path is in a static
 * buffer, valid until the next call. */
static inline const char *test_real_data(const char *rel)
{
    static char path[1024];
    const char *dir = getenv("GLOCAL_REAL_DATA");
    if (dir && dir[0]) {
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        if (access(path, R_OK) == 0) return path;
    }
    fprintf(stderr, "skipped: needs the real file %s under $GLOCAL_REAL_DATA (%s); see tests/data/README.md\n",
            rel, dir && dir[0] ? "not found there" : "unset");
    return NULL;
}

#endif
