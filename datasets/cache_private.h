/*
 * cache_private.h — shared by the files of the HDF5 motion cache (schema and
 * crash-safety design in cache.h), never included outside datasets/cache_*.c:
 *   cache_h5.c     HDF5 helpers: errors, float16, the configuration and its
 *                  attributes, the /clips, /errors and /warnings tables,
 *                  output files
 *   cache_read.c   the reader (cache_open, cache_read_*) and cache_verify
 *   cache_merge.c  joining caches (cache_merge, and the writer's finish)
 *   cache_write.c  the writer and its spool of one small file per clip
 * Functions return 0 or a negative GL_E* code with a message, like cache.h's.
 */
#ifndef GLOCAL_DATASETS_CACHE_PRIVATE_H
#define GLOCAL_DATASETS_CACHE_PRIVATE_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/cache.h"
#include "nn/hdf5_util.h"

#define CACHE_DEFAULT_CHUNK_CACHE ((size_t)64 << 20)
#define CACHE_HOMOG_CHUNK 256 /* homographies per chunk (9 KiB) */
#define CACHE_DEFLATE_LEVEL 4
#define CACHE_MAX_SHARDS 100000

/* An open reader (cache.h's opaque `cache`). */
struct cache {
    char *path;
    hid_t f, fields, homs, fspace, ftype;
    cache_config cfg;
    cache_clip *clips;
    long nclips;
    cache_error *errors;
    long nerrors;
    cache_warning *warnings; /* none in a cache of format 1 */
    long nwarnings;
    long *by_name;   /* rows sorted by name, built on the first cache_find_name */
    long npairs;
    int raw_ok;      /* /fields has the chunking and filters we write: chunks copy as they are */
    void *scratch;   /* quantised values of one read */
    size_t scratch_n;
};

/* An output file being written: a spooled clip, or a merge's result. */
typedef struct {
    hid_t f, fields, homs, ftype;
    cache_config cfg;
    long pairs;
} cache_out;

/* The tables of an output file (any count may be 0). */
typedef struct {
    long nclips, nerrors, nwarnings;
    const cache_clip *clips;
    const cache_error *errors;
    const cache_warning *warnings;
} cache_rows;

/* ---- cache_h5.c -------------------------------------------------------- */

/* GL_EHDF5 with "what (HDF5: innermost reason)"; clears HDF5's error stack. */
int cache_h5_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void cache_copy_str(char *dst, size_t n, const char *src);
/* "a/b" and "ab", gl_malloc'ed (NULL when out of memory). */
char *cache_path_join(const char *a, const char *b);
char *cache_str_cat(const char *a, const char *b);

/* IEEE 754 binary16, round to nearest even. */
uint16_t cache_half_from_float(float f);
float cache_half_to_float(uint16_t h);

/* "K1,K2,.../N" → n and a set of n flags (gl_malloc'ed). */
int cache_shard_parse(const char *s, int *n_out, uint8_t **set_out);
/* The inverse: "0/1" when every shard is in the set. */
int cache_shard_format(char *buf, size_t size, int n, const uint8_t *set);
/* Name of the first field that differs, or NULL. */
const char *cache_config_diff(const cache_config *a, const cache_config *b, int with_shard);
/* The root attributes of file f (named `file` in messages) into cfg. */
int cache_config_read(hid_t f, const char *file, cache_config *cfg);

/* HDF5 types: the stored /fields values of an encoding, and the rows of
 * /clips and of /errors and /warnings (cache_clip, cache_error). Close with
 * H5Tclose. */
hid_t cache_field_h5type(cache_encoding e);
hid_t cache_clip_h5type(void);
hid_t cache_error_h5type(void);
/* Reads a whole 1-D table into *rows (gl_malloc'ed, row_size each). A
 * missing table is GL_EFORMAT, or with optional an empty one. */
int cache_table_read(hid_t f, const char *file, const char *name, hid_t memtype, size_t row_size,
                     int optional, void **rows, long *n);

/* Rows [row, row+n) of a dataset of the given rank (a hyperslab over the
 * first dimension, whole rows). A bare HDF5 failure (< 0, no message). */
int cache_rows_write(hid_t d, hid_t memtype, int rank, long row, long n, const void *buf);
int cache_rows_read(hid_t d, hid_t memtype, int rank, long row, long n, void *buf);

/* Creates `path` (truncating) with the attributes and empty extendible datasets. */
int cache_out_create(cache_out *o, const char *path, const cache_config *cfg);
/* Grows /fields (and /homographies) to `pairs` rows. */
int cache_out_extend(cache_out *o, const char *path, long pairs);
/* Writes the tables, closes, and publishes tmp as path (fsync, rename, and
 * with sync_dir an fsync of the folder). */
int cache_out_finish(cache_out *o, const char *tmp, const char *path, const cache_rows *rows,
                     int sync_dir);
/* Closes whatever is open (after a failure). */
void cache_out_abort(cache_out *o);

/* ---- cache_read.c ------------------------------------------------------ */

/* Reads rows of /fields in their stored encoding (2 bytes each) into buf. */
int cache_fields_read_raw(cache *c, long row, long n, void *buf);

/* ---- cache_merge.c ----------------------------------------------------- */

/* Merges inputs into OUT.tmp, then renames it to out. `expect` (may be NULL)
 * is the configuration the inputs must have, shard included. */
int cache_merge_into(const char *out, const char *const *inputs, int n, const cache_config *expect);

#endif
