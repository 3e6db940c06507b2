/*
 * cache.h — the HDF5 motion cache: motion fields computed once per clip
 * (GLOCAL, TV-L1, ...) and read back many times by the classifier.
 *
 * Schema of a cache file (HDF5 1.10, latest file format, so every metadata
 * block carries a checksum):
 *   /fields         [pairs, C, h, w]  int16 (value * scale = pixels) or IEEE
 *                   float16 (pixels). Flow methods: C = 2, channel 0 = u (x,
 *                   right), 1 = v (y, down), in pixels of the stored h x w grid;
 *                   rgbdiff: C = 3 (R, G, B differences / 255, scale 1/255, so
 *                   8-bit differences are stored exactly). Chunks [1, C, h, w],
 *                   filters shuffle + deflate(4) + fletcher32 (a corrupted chunk
 *                   fails to read instead of returning wrong numbers).
 *   /homographies   [pairs, 3, 3] float32, only for methods that estimate one
 *                   (frame t -> t+stride, pixel coordinates of the h x w grid).
 *   /clips          [clips] compound, sorted by `index` (the clip's position
 *                   in the dataset's list): name (char[256], the video's path
 *                   relative to the dataset), index, label, split, offset (first
 *                   row of /fields), pairs, clipped (values saturated by int16),
 *                   src_size (bytes), src_mtime (seconds since the epoch).
 *   /errors         [n] compound: index, name (char[256]), message (char[512])
 *                   — clips that failed, sorted by index.
 *   /warnings       [n] compound like /errors — clips stored with a warning
 *                   ("damaged: WHY": a damaged video decoded anyway), each a
 *                   row of /clips, sorted by index.
 *   root attributes method, params, model_sha256, glocal_version, source,
 *                   encoding ("int16"/"float16"), shard ("K/N" or
 *                   "K1,K2,../N": which i % N == K this file holds; "0/1" =
 *                   everything): fixed-length UTF-8 strings, NUL-terminated;
 *                   height, width, channels, scale (pixels per int16 unit,
 *                   1/128: ±256 px, error ≤ 1/256 px), total_clips (clips in
 *                   the whole dataset list), format_version (2).
 * Format versions. 2: the above. 1 (caches written before /warnings; no
 * format_version attribute): the string attributes are variable-length
 * strings, and there is no /warnings. Variable-length strings live in the
 * file's global heap, which has no checksum: libhdf5 1.10 reading a damaged
 * one can crash or hang (tests/fuzz/README.md), so format 2 keeps every string
 * in the checksummed object headers. Readers take both (a format 1 cache has
 * no warnings); writers, merges and resumes write format 2.
 * Reading it from Python (h5py returns fixed-length strings as bytes, and
 * format 1's as str):
 *   import h5py, numpy as np
 *   f = h5py.File("ucf101_tvl1.h5", "r"); clips = f["clips"][:]
 *   text = lambda a: a.decode() if isinstance(a, bytes) else a
 *   c = clips[clips["name"] == b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"][0]
 *   uv = f["fields"][c["offset"]:c["offset"] + c["pairs"]].astype(np.float32)
 *   if text(f.attrs["encoding"]) == "int16": uv *= f.attrs["scale"]   # pixels
 *   for w in f["warnings"][:] if "warnings" in f else []: print(w["name"].decode(), w["message"].decode())
 *
 * Crash safety. HDF5 1.10 files are not crash safe: in a measurement
 * (appending clips with H5Fflush after each, SIGKILL at random times, 40
 * times) 2 kills left a file that failed to open or silently returned wrong
 * values for clips committed before the kill; with the latest file format
 * every killed file refused to open until `h5clear`. SWMR would need that
 * h5clear too, and forbids new attributes. So the writer never keeps the
 * result open: each finished clip goes to its own small file in the spool
 * folder PATH.parts/ (written as a temp file, fsync'ed, then renamed: it
 * exists whole or not at all; a clip's warning is in the same file, so a
 * resumed run still knows it). cache_writer_finish() merges the spool and any
 * previous PATH into PATH.tmp and renames it over PATH, then empties the
 * spool. A kill at any moment loses only the clips being computed; opening a
 * writer on the same PATH with the same configuration resumes (completed
 * clips and recorded errors report done); a reader only ever sees a complete
 * PATH. The cost is writing each chunk twice (the merge copies compressed
 * chunks as they are, without decoding). Errors are recorded, not retried.
 *
 * Measured (bench/bench_cache, 2-core VM): int16 files are 11-12% of float32
 * raw for TV-L1 of real UCF-101 frames at 56x56, 2.3% for FlyingChairs
 * ground truth, 29% for a smooth field + Gaussian noise of 0.05 px (noise
 * finer than the 1/128 px step does not compress); float16 is larger in
 * every case (27-46%) and its error grows with the magnitude (1/32 px at
 * 64-100 px), hence int16. Warm random reads of one 2x56x56 field: ~100,000
 * fields/s; runs of 10: ~190,000 fields/s; cold (each chunk inflated and
 * checksummed): ~7,000 fields/s. Spooling a clip costs ~7 ms (one fsync);
 * the merge at finish ~5 ms per clip plus a raw copy of each chunk.
 *
 * Ownership. A `cache` (reader) and a `cache_writer` are opaque and owned by
 * the caller, released by cache_close(&c) / cache_writer_close(&w) (NULL-safe,
 * nulls the pointer). A reader handle is for one thread at a time; separate
 * handles may be used from separate threads (HDF5 is built thread-safe and
 * serialises its calls). A writer may be shared: clip writers from different
 * threads may be open at once.
 *
 * Errors. Functions return 0, or a negative GL_E* code with a message that
 * names the file (GL_EHDF5 for what HDF5 refused, with HDF5's innermost
 * reason; GL_EFORMAT for a readable file that is not a cache of this kind;
 * GL_EINVAL for bad arguments). HDF5's own error printing is turned off.
 */
#ifndef GLOCAL_DATASETS_CACHE_H
#define GLOCAL_DATASETS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CACHE_NAME_MAX 256    /* clip names, including the terminating NUL */
#define CACHE_MESSAGE_MAX 512 /* error messages, idem */
#define CACHE_INT16_SCALE (1.0f / 128.0f)
#define CACHE_FORMAT_VERSION 2 /* what writers write; readers take 1 and 2 (top of this file) */

typedef enum { CACHE_INT16 = 0, CACHE_FLOAT16 = 1 } cache_encoding;

/* What a cache holds and how it was made. Two caches can be merged, and a
 * writer can resume, only when these agree (shard aside for merges). */
typedef struct {
    char method[64];        /* "tvl1", "glocal-local", ... */
    char params[4096];      /* the method's parameters, as text */
    char model_sha256[72];  /* hex SHA-256 of the checkpoint; "" when none */
    char source[1024];      /* dataset folder and split, as text */
    int height, width;      /* field grid, pixels */
    int channels;           /* per pair: 2 for flow (u, v); 3 for RGB difference */
    int has_homographies;   /* 1: /homographies exists */
    cache_encoding encoding;
    float scale;            /* int16: pixels per unit (CACHE_INT16_SCALE); float16: 1 */
    long total_clips;       /* clips in the dataset's list (all shards) */
    char shard[1024];       /* "K/N", "K1,K2/N"; "0/1" = all clips */
    char glocal_version[32];/* filled when read; writers store their own (never compared) */
    int format_version;     /* idem: 1 or 2 (writers write CACHE_FORMAT_VERSION) */
} cache_config;

/* Defaults: 2 channels, int16 at 1/128 px, shard "0/1", empty strings, sizes 0. */
void cache_config_default(cache_config *cfg);
/* GL_EINVAL naming the first bad field. */
int cache_config_validate(const cache_config *cfg);
/* "K/N" for the shard field (0 <= K < N). */
int cache_config_set_shard(cache_config *cfg, int k, int n);

/* One row of /clips. */
typedef struct {
    char name[CACHE_NAME_MAX];
    int64_t index;     /* position in the dataset's clip list */
    int32_t label;     /* class, 0-based; -1 unknown */
    int32_t split;     /* the dataset's split code; -1 unknown */
    int64_t offset;    /* first row in /fields (set by the cache) */
    int32_t pairs;     /* rows in /fields (set by the cache) */
    int32_t clipped;   /* values beyond the int16 range, saturated (set by the cache) */
    int64_t src_size;  /* bytes of the source video */
    int64_t src_mtime; /* seconds since the epoch */
} cache_clip;

/* One row of /errors. */
typedef struct {
    int64_t index;
    char name[CACHE_NAME_MAX];
    char message[CACHE_MESSAGE_MAX];
} cache_error;

/* One row of /warnings: a clip stored with something to say about it (a
 * damaged video decoded anyway: "damaged: WHY"). Same layout as /errors. */
typedef cache_error cache_warning;

/* ---- reading ---------------------------------------------------------- */

typedef struct cache cache;

/* Opens PATH read-only. chunk_cache_bytes: HDF5's chunk cache for /fields
 * (decoded chunks kept in memory; 0 = 64 MiB). A missing, truncated or
 * corrupted file gives GL_EIO / GL_EHDF5 / GL_EFORMAT, never a crash. */
int cache_open(const char *path, size_t chunk_cache_bytes, cache **out);
void cache_close(cache **c);

const cache_config *cache_get_config(const cache *c);
long cache_clip_count(const cache *c);
long cache_pair_count(const cache *c);
long cache_error_count(const cache *c);
long cache_warning_count(const cache *c); /* 0 for a cache of format 1 */
/* Row i (0 <= i < cache_clip_count) of /clips, or of /errors, /warnings. Borrowed. */
const cache_clip *cache_get_clip(const cache *c, long i);
const cache_error *cache_get_error(const cache *c, long i);
const cache_warning *cache_get_warning(const cache *c, long i);
/* Row of the clip with this dataset index or name: 0 and *row, or GL_ENOTFOUND. */
int cache_find_index(const cache *c, int64_t index, long *row);
int cache_find_name(const cache *c, const char *name, long *row);

/* L consecutive fields of clip row `clip`, starting at pair `offset` of that
 * clip, dequantised to pixels: out holds L * C * h * w floats ([L, C, h, w]).
 * For speed, size the chunk cache (cache_open) to hold the fields a reader
 * revisits: with chunks of one field, a warm read is one hyperslab copy.
 * GL_EINVAL when offset + L exceeds the clip's pairs. */
int cache_read_fields(cache *c, long clip, long offset, int L, float *out);
/* Idem for homographies: L * 9 floats, row-major 3x3. GL_ENOTFOUND when the
 * cache has none. */
int cache_read_homographies(cache *c, long clip, long offset, int L, float *out);

/* Checks every clip: each chunk readable (checksums), values finite, rows
 * sorted and unique, offsets contiguous, /fields and /homographies extents
 * equal to the pair total, every index in the file's shard, and clips +
 * errors = the clips the shard should hold, every warning about a stored
 * clip (once). Each problem goes to report
 * (may be NULL). Returns the number of problems (0 = clean), or a negative
 * code when the check itself could not run. */
typedef void (*cache_report_fn)(void *ctx, const char *problem);
long cache_verify(cache *c, cache_report_fn report, void *ctx);

/* ---- writing ---------------------------------------------------------- */

typedef struct cache_writer cache_writer;
typedef struct cache_clip_writer cache_clip_writer;

/* Opens (or resumes) the cache PATH: creates the spool PATH.parts/, locks it
 * against a second writer, removes temp files a kill left behind, and checks
 * that an earlier spool or PATH was made with the same configuration
 * (GL_EINVAL naming the field that differs otherwise). */
int cache_writer_open(const char *path, const cache_config *cfg, cache_writer **out);
/* Closes without finishing: the spool stays for a later resume. */
void cache_writer_close(cache_writer **w);
/* 1 if clip `index` is committed or recorded as an error, else 0. */
int cache_writer_is_done(cache_writer *w, int64_t index);
/* Clips done so far (committed + errors), for progress lines. */
long cache_writer_done_count(cache_writer *w);

/* Starts clip info->index (offset, pairs and clipped are ignored). */
int cache_clip_begin(cache_writer *w, const cache_clip *info, cache_clip_writer **out);
/* Appends n fields [n, C, h, w] in pixels and, when the cache has them, n
 * homographies [n, 3, 3] (else pass NULL). Non-finite values: GL_ENUMERIC. */
int cache_clip_append(cache_clip_writer *cw, int n, const float *fields, const float *homographies);
/* Attaches a warning (cut to CACHE_MESSAGE_MAX - 1 bytes) to the clip: the
 * commit stores it in /warnings with the clip, in the same spooled file, so
 * a kill leaves both or neither. A second call replaces the first. */
int cache_clip_warn(cache_clip_writer *cw, const char *message);
/* Makes the clip durable and visible to cache_writer_is_done; frees *cw. */
int cache_clip_commit(cache_clip_writer **cw);
/* Drops an unfinished clip; frees *cw (NULL-safe). */
void cache_clip_abort(cache_clip_writer **cw);
/* Records that clip `index` failed (durably, like a commit). */
int cache_writer_put_error(cache_writer *w, int64_t index, const char *name, const char *message);

/* Publishes PATH: the earlier PATH (if any) plus the spool, in index order,
 * written to PATH.tmp and renamed; then removes the spool. The writer stays
 * open but holds nothing more (close it next). */
int cache_writer_finish(cache_writer *w);

/* Joins caches made with the same configuration (shards of one run, or any
 * disjoint sets of clips) into OUT, clips in index order; OUT's shard is the
 * union ("0/1" when complete); /errors and /warnings are joined likewise. A
 * clip in two inputs is GL_EINVAL. OUT is written atomically (in the current
 * format, whatever the inputs'). Memory: the tables plus one chunk. */
int cache_merge(const char *out, const char *const *inputs, int n_inputs);

#ifdef __cplusplus
}
#endif
#endif
