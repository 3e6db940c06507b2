#include "nn/base.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One fixed buffer per thread: nothing to free, nothing to leak. */
static _Thread_local char err_buf[4096];

int gl_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return code;
}

int gl_error_prefix(int code, const char *fmt, ...)
{
    char prev[sizeof err_buf], pre[512];
    memcpy(prev, err_buf, sizeof prev);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    if (prev[0])
        snprintf(err_buf, sizeof err_buf, "%s: %s", pre, prev);
    else
        snprintf(err_buf, sizeof err_buf, "%s", pre);
    return code;
}

const char *gl_last_error(void) { return err_buf; }
void gl_clear_error(void) { err_buf[0] = 0; }

const char *gl_strerror(int code)
{
    switch (code) {
    case GL_OK: return "success";
    case GL_EOF: return "end of data";
    case GL_ENOMEM: return "out of memory";
    case GL_EINVAL: return "invalid argument";
    case GL_EIO: return "i/o error";
    case GL_EFORMAT: return "bad file format";
    case GL_ETORCH: return "libtorch error";
    case GL_EUNSUPPORTED: return "not supported";
    case GL_ENOTFOUND: return "not found";
    case GL_ECANCELED: return "canceled";
    case GL_ENUMERIC: return "numerical failure";
    case GL_EFFMPEG: return "FFmpeg error";
    case GL_EHDF5: return "HDF5 error";
    case GL_ESYSTEM: return "system error";
    default: return "unknown error";
    }
}

/* ---- allocation ---------------------------------------------------------- */

static long alloc_countdown = -1; /* test hook; not thread-safe by design */

static int alloc_should_fail(void)
{
    if (alloc_countdown < 0) return 0;
    if (alloc_countdown == 0) return 1;
    alloc_countdown--;
    return 0;
}

void gl_alloc_fail_after(long n) { alloc_countdown = n; }

void *gl_malloc(size_t n)
{
    void *p = alloc_should_fail() ? NULL : malloc(n ? n : 1);
    if (!p) gl_error(GL_ENOMEM, "out of memory (allocating %zu bytes)", n);
    return p;
}

void *gl_calloc(size_t count, size_t size)
{
    void *p = alloc_should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
    if (!p) gl_error(GL_ENOMEM, "out of memory (allocating %zu x %zu bytes)", count, size);
    return p;
}

void *gl_realloc(void *p, size_t n)
{
    void *q = alloc_should_fail() ? NULL : realloc(p, n ? n : 1);
    if (!q) gl_error(GL_ENOMEM, "out of memory (reallocating %zu bytes)", n);
    return q;
}

char *gl_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = gl_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void gl_free(void *p) { free(p); }

/* ---- threads -------------------------------------------------------------- */

static int num_threads = 0;

int gl_num_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int gl_num_threads(void) { return num_threads > 0 ? num_threads : gl_num_cores(); }
void gl_set_num_threads(int n) { num_threads = n; }

typedef struct {
    gl_range_fn fn;
    void *ctx;
    long n, grain;
    long next;           /* next block start, under lock */
    int rc;
    pthread_mutex_t lock;
} pfor_state;

static void *pfor_worker(void *arg)
{
    pfor_state *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        long b = s->next;
        if (b >= s->n || s->rc < 0) { pthread_mutex_unlock(&s->lock); break; }
        long e = b + s->grain < s->n ? b + s->grain : s->n;
        s->next = e;
        pthread_mutex_unlock(&s->lock);
        int rc = s->fn(s->ctx, b, e);
        if (rc < 0) {
            pthread_mutex_lock(&s->lock);
            if (s->rc >= 0) s->rc = rc;
            pthread_mutex_unlock(&s->lock);
        }
    }
    return NULL;
}

int gl_parallel_for(long n, long grain, gl_range_fn fn, void *ctx)
{
    if (n <= 0) return 0;
    int nt = gl_num_threads();
    if (grain <= 0) grain = (n + nt - 1) / nt;
    long blocks = (n + grain - 1) / grain;
    if (nt > blocks) nt = (int)blocks;
    if (nt <= 1) {
        int rc = fn(ctx, 0, n);
        return rc < 0 ? rc : 0;
    }
    pfor_state s = { .fn = fn, .ctx = ctx, .n = n, .grain = grain, .next = 0, .rc = 0 };
    pthread_mutex_init(&s.lock, NULL);
    pthread_t tids[256];
    if (nt > 256) nt = 256;
    int started = 0;
    for (int t = 1; t < nt; t++) {
        if (pthread_create(&tids[started], NULL, pfor_worker, &s) != 0) break;
        started++;
    }
    pfor_worker(&s); /* the caller works too */
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    pthread_mutex_destroy(&s.lock);
    return s.rc < 0 ? s.rc : 0;
}

/* ---- time and files -------------------------------------------------------- */

double gl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int gl_write_file_atomic(const char *path, const void *data, size_t size)
{
    size_t n = strlen(path);
    char *tmp = gl_malloc(n + 32);
    if (!tmp) return GL_ENOMEM;
    snprintf(tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        int e = errno;
        gl_free(tmp);
        return gl_error(GL_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            gl_free(tmp);
            return gl_error(GL_EIO, "%s: write failed: %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        gl_free(tmp);
        return gl_error(GL_EIO, "%s: cannot flush: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        gl_free(tmp);
        return gl_error(GL_EIO, "%s: cannot rename into place: %s", path, strerror(e));
    }
    gl_free(tmp);
    return 0;
}

int gl_read_file(const char *path, void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gl_error(GL_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = gl_malloc(cap);
    if (!buf) { fclose(f); return GL_ENOMEM; }
    for (;;) {
        if (len == cap) {
            char *nb = gl_realloc(buf, cap * 2);
            if (!nb) { gl_free(buf); fclose(f); return GL_ENOMEM; }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { gl_free(buf); return gl_error(GL_EIO, "%s: read error", path); }
    *data = buf;
    *size = len;
    return 0;
}

int gl_mkdirs(const char *path)
{
    char *p = gl_strdup(path);
    if (!p) return GL_ENOMEM;
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                int rc = gl_error(GL_EIO, "%s: cannot create folder: %s", p, strerror(e));
                gl_free(p);
                return rc;
            }
            *s = c;
            if (!c) break;
        }
    }
    gl_free(p);
    return 0;
}
