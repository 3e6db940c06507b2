/*
 * base.h — the few things every glocal module shares: error codes, the
 * thread-local error message, the checked allocator, threads and time.
 *
 * Errors: every library function returns int; 0 is success, a negative
 * GL_E* code is failure, and a positive code is a non-error outcome such as
 * GL_EOF ("end of data"), so `if (rc < 0) goto fail;` is always right.
 * The function that fails leaves a message for the calling thread with
 * gl_error(); callers read it with gl_last_error(). Library code never prints
 * and never exits: only experiments/ (the command) decides what to show.
 *
 * Memory: all allocations go through gl_malloc/gl_calloc/gl_realloc so that
 * a test can make the Nth one fail (gl_alloc_fail_after) and check that every
 * error path cleans up.
 *
 * This header is C only and never pulls in libtorch: datasets/ and the
 * classical parts of motion/ build and test without it.
 */
#ifndef GLOCAL_BASE_H
#define GLOCAL_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    GL_OK = 0,
    GL_EOF = 1,            /* end of data: not an error */
    GL_ENOMEM = -1,        /* allocation failed */
    GL_EINVAL = -2,        /* bad argument or configuration value */
    GL_EIO = -3,           /* file missing, unreadable or unwritable */
    GL_EFORMAT = -4,       /* file exists but its content is not what was expected */
    GL_ETORCH = -5,        /* libtorch raised (shape mismatch, ...) */
    GL_EUNSUPPORTED = -6,  /* valid but not supported (codec, device, ...) */
    GL_ENOTFOUND = -7,     /* a named item does not exist */
    GL_ECANCELED = -8,     /* interrupted on request */
    GL_ENUMERIC = -9,      /* NaN / divergence */
    GL_EFFMPEG = -10,      /* FFmpeg reported an error */
    GL_EHDF5 = -11,        /* HDF5 reported an error */
    GL_ESYSTEM = -12,      /* OS error (threads, fork, ...) */
};

/* Sets the calling thread's message (printf format) and returns code, so
 * `return gl_error(GL_EINVAL, "%s:%d: ...", file, line);` reads naturally. */
int gl_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message: "context: previous message". Returns code. */
int gl_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's last message ("" if none). Valid until the next gl_error. */
const char *gl_last_error(void);
void gl_clear_error(void);
/* A short name for an error code ("invalid argument", ...). */
const char *gl_strerror(int code);

/* Checked allocation. Return NULL (and set GL_ENOMEM's message) on failure. */
void *gl_malloc(size_t n);
void *gl_calloc(size_t count, size_t size);
void *gl_realloc(void *p, size_t n);
char *gl_strdup(const char *s);
void gl_free(void *p);
/* Test hook: the allocation after the next n ones fails (n < 0 disables). */
void gl_alloc_fail_after(long n);

/* Number of worker threads glocal uses (global --threads); default: cores. */
int gl_num_threads(void);
void gl_set_num_threads(int n);
int gl_num_cores(void);

/* Runs fn(ctx, i) for i in [0, n) on up to gl_num_threads() threads; each
 * thread takes contiguous blocks. Returns 0, or the first negative rc. */
typedef int (*gl_range_fn)(void *ctx, long begin, long end);
int gl_parallel_for(long n, long grain, gl_range_fn fn, void *ctx);

/* SplitMix64 (Steele, Lea & Flood, "Fast Splittable Pseudorandom Number
 * Generators", OOPSLA 2014; Vigna's constants): adds the golden gamma to
 * *state and returns the mix of the new state, so the stream of a seed s is
 * mix(s + G), mix(s + 2G), ... Every seeded stream in glocal (loader order and
 * augmentation, shards, RANSAC samples, synthetic scenes, batches) is this
 * one generator: fixed-seed results stay what they were. Inline: the
 * synthetic renderer and the loader call it per sample. */
#define GL_SPLITMIX64_GAMMA 0x9E3779B97F4A7C15ull
static inline uint64_t gl_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += GL_SPLITMIX64_GAMMA);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* One SplitMix64 step from state x (x itself unchanged): a 64-bit hash for
 * deriving seeds, mix(x + G). */
static inline uint64_t gl_mix64(uint64_t x) { return gl_splitmix64(&x); }

/* Monotonic wall time in seconds. */
double gl_now(void);

/* Writes `size` bytes to path atomically: a temp file in the same folder,
 * fsync, then rename. The file is never seen half-written. */
int gl_write_file_atomic(const char *path, const void *data, size_t size);
/* Reads a whole file; *data is gl_malloc'ed (caller frees). */
int gl_read_file(const char *path, void **data, size_t *size);
/* mkdir -p. */
int gl_mkdirs(const char *path);

#ifdef __cplusplus
}
#endif
#endif
