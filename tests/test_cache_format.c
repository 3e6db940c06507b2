/* test_cache_format.c — datasets/cache.h, the file format: format 2's
 * fixed-length string attributes (checked with raw HDF5 calls), /warnings
 * (written with the clip, kept across a kill and resume, joined by merges,
 * checked by cache_verify), and caches of format 1 (variable-length strings,
 * no /warnings, made here from a format 2 file with raw HDF5 calls) still
 * open, read, resume and merge. test_cache.c has the rest of the cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <hdf5.h>

#include "datasets/cache.h"
#include "tests/testutil.h"

#define H 4
#define W 6
#define PER (2 * H * W)

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_cache_format.");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static void config_of(cache_config *cfg, long total)
{
    cache_config_default(cfg);
    snprintf(cfg->method, sizeof cfg->method, "synthetic");
    snprintf(cfg->params, sizeof cfg->params, "size=%dx%d naïve µ-params", H, W); /* UTF-8 survives */
    snprintf(cfg->source, sizeof cfg->source, "test_cache_format");
    cfg->height = H;
    cfg->width = W;
    cfg->total_clips = total;
}

/* Clip i: i % 7 == 3 fails; the others have 1 + i % 2 pairs of value i + p
 * (on the int16 grid), and i % 5 == 1 is stored with a warning. */
static int fails(long i) { return i % 7 == 3; }
static int warned(long i) { return !fails(i) && i % 5 == 1; }

static void clip_name(char *buf, size_t n, long i)
{
    snprintf(buf, n, "C%ld/v_%03ld.avi", i % 2, i);
}

/* Writes the clips i (k <= i < stop, i % n == k) of cfg's shard that are not
 * done; with finish, publishes. */
static void write_clips(const char *path, const cache_config *cfg, int k, int n, long stop, int finish)
{
    cache_writer *w = NULL;
    cache_clip_writer *cw = NULL;
    OK(cache_writer_open(path, cfg, &w));
    for (long i = k; i < stop; i += n) {
        if (cache_writer_is_done(w, i)) continue;
        char name[64], msg[64];
        clip_name(name, sizeof name, i);
        if (fails(i)) {
            OK(cache_writer_put_error(w, i, name, "cannot decode"));
            continue;
        }
        cache_clip info;
        memset(&info, 0, sizeof info);
        snprintf(info.name, sizeof info.name, "%s", name);
        info.index = i;
        OK(cache_clip_begin(w, &info, &cw));
        float f[2 * PER];
        int np = 1 + (int)(i % 2);
        for (int j = 0; j < np * PER; j++) f[j] = (float)(i + j / PER);
        OK(cache_clip_append(cw, np, f, NULL));
        if (warned(i)) {
            OK(cache_clip_warn(cw, "first warning, replaced"));
            snprintf(msg, sizeof msg, "damaged: clip %ld", i);
            OK(cache_clip_warn(cw, msg));
        }
        OK(cache_clip_commit(&cw));
    }
    if (finish) OK(cache_writer_finish(w));
    cache_writer_close(&w);
}

/* The cache at path holds exactly the clips, failures and warnings of the
 * rule above for shard k/n of total clips, and verifies clean. */
static void assert_contents(const char *path, long total, int k, int n)
{
    cache *c = NULL;
    OK(cache_open(path, 0, &c));
    long nc = 0, ne = 0, nw = 0;
    for (long i = k; i < total; i += n) {
        char name[64], msg[64];
        clip_name(name, sizeof name, i);
        if (fails(i)) {
            const cache_error *e = cache_get_error(c, ne++);
            assert_non_null(e);
            assert_int_equal(e->index, i);
            continue;
        }
        long row;
        OK(cache_find_index(c, i, &row));
        assert_int_equal(row, nc++);
        float got[2 * PER];
        const cache_clip *ci = cache_get_clip(c, row);
        assert_string_equal(ci->name, name);
        OK(cache_read_fields(c, row, 0, ci->pairs, got));
        for (int j = 0; j < ci->pairs * PER; j++) assert_true(got[j] == (float)(i + j / PER));
        if (warned(i)) {
            const cache_warning *wr = cache_get_warning(c, nw++);
            assert_non_null(wr);
            snprintf(msg, sizeof msg, "damaged: clip %ld", i);
            assert_int_equal(wr->index, i);
            assert_string_equal(wr->name, name);
            assert_string_equal(wr->message, msg);
        }
    }
    assert_int_equal(cache_clip_count(c), nc);
    assert_int_equal(cache_error_count(c), ne);
    assert_int_equal(cache_warning_count(c), nw);
    assert_null(cache_get_warning(c, nw));
    assert_int_equal(cache_verify(c, NULL, NULL), 0);
    cache_close(&c);
}

/* The root attribute `name` of the file at path: a string of fixed length
 * (in the object header), or, with vlen, of variable length. */
static void assert_attr_kind(const char *path, const char *name, int vlen)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT), t = H5Aget_type(a);
    assert_true(a >= 0 && t >= 0);
    assert_int_equal(H5Tget_class(t), H5T_STRING);
    assert_int_equal(H5Tis_variable_str(t) > 0, vlen);
    if (!vlen) {
        assert_int_equal(H5Tget_cset(t), H5T_CSET_UTF8);
        assert_int_equal(H5Tget_strpad(t), H5T_STR_NULLTERM);
    }
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
}

/* Warnings are stored with their clips, survive a writer closed without
 * finishing (a kill after the commits) and its resume, and come back sorted. */
static void test_warnings_resume(void **state)
{
    (void)state;
    char path[300];
    cache_config cfg;
    config_of(&cfg, 23);
    tmp_path(path, sizeof path, "warn.h5");
    write_clips(path, &cfg, 0, 1, 12, 0); /* "killed": the spool holds clips 0..11 */
    /* a clip aborted after its warning leaves neither */
    cache_writer *w = NULL;
    cache_clip_writer *cw = NULL;
    OK(cache_writer_open(path, &cfg, &w));
    cache_clip info;
    memset(&info, 0, sizeof info);
    snprintf(info.name, sizeof info.name, "C0/v_012.avi");
    info.index = 12;
    OK(cache_clip_begin(w, &info, &cw));
    OK(cache_clip_warn(cw, "damaged: never committed"));
    cache_clip_abort(&cw);
    assert_int_equal(cache_writer_is_done(w, 11), 1);
    assert_int_equal(cache_writer_is_done(w, 12), 0);
    cache_writer_close(&w);
    write_clips(path, &cfg, 0, 1, 23, 1); /* resumed to the end */
    assert_contents(path, 23, 0, 1);
    assert_attr_kind(path, "params", 0);
    cache *c = NULL;
    OK(cache_open(path, 0, &c));
    assert_string_equal(cache_get_config(c)->params, cfg.params);
    assert_int_equal(cache_get_config(c)->format_version, CACHE_FORMAT_VERSION);
    cache_close(&c);
}

/* Shards' warnings are joined in index order; a second finish over a
 * published PATH keeps them. */
static void test_merge_warnings(void **state)
{
    (void)state;
    char single[300], s[3][300], merged[300];
    cache_config cfg;
    config_of(&cfg, 40);
    tmp_path(single, sizeof single, "single.h5");
    write_clips(single, &cfg, 0, 1, 40, 1);
    const char *in[3];
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "shard%d.h5", k);
        tmp_path(s[k], sizeof s[k], name);
        cache_config sc = cfg;
        OK(cache_config_set_shard(&sc, k, 3));
        write_clips(s[k], &sc, k, 3, 40, 1);
        assert_contents(s[k], 40, k, 3);
        in[2 - k] = s[k];
    }
    tmp_path(merged, sizeof merged, "merged.h5");
    OK(cache_merge(merged, in, 3));
    assert_contents(merged, 40, 0, 1);
    /* the writer's finish over an existing PATH (nothing left to do) keeps them */
    write_clips(single, &cfg, 0, 1, 40, 1);
    assert_contents(single, 40, 0, 1);
}

/* Replaces /warnings of the cache at path with one row about clip `index`. */
static void put_warning_row(const char *path, int64_t index)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "warnings", H5P_DEFAULT), t = H5Dget_type(d);
    assert_true(d >= 0 && t >= 0);
    H5Dclose(d);
    assert_true(H5Ldelete(f, "warnings", H5P_DEFAULT) >= 0);
    hsize_t one = 1;
    hid_t sp = H5Screate_simple(1, &one, NULL);
    d = H5Dcreate2(f, "warnings", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    /* the row in the file's own (packed) layout: index, name, message */
    size_t n = H5Tget_size(t);
    char *row = calloc(1, n);
    memcpy(row + H5Tget_member_offset(t, 0), &index, sizeof index);
    snprintf(row + H5Tget_member_offset(t, 1), 32, "Cx/v_orphan.avi");
    snprintf(row + H5Tget_member_offset(t, 2), 32, "damaged: orphan");
    assert_true(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, row) >= 0);
    free(row);
    H5Sclose(sp);
    H5Dclose(d);
    H5Tclose(t);
    H5Fclose(f);
}

static void count_problem(void *ctx, const char *msg)
{
    if (strstr(msg, "no stored clip has index")) (*(int *)ctx)++;
}

/* A warning about a clip the cache does not store: verify reports it, a
 * merge refuses it. */
static void test_orphan_warning(void **state)
{
    (void)state;
    char path[300], out[300];
    cache_config cfg;
    config_of(&cfg, 10);
    tmp_path(path, sizeof path, "orphan.h5");
    tmp_path(out, sizeof out, "orphan_merged.h5");
    write_clips(path, &cfg, 0, 1, 10, 1);
    put_warning_row(path, 3); /* clip 3 failed: it is in /errors, not /clips */
    cache *c = NULL;
    OK(cache_open(path, 0, &c));
    assert_int_equal(cache_warning_count(c), 1);
    int orphans = 0;
    assert_int_equal(cache_verify(c, count_problem, &orphans), 1);
    assert_int_equal(orphans, 1);
    cache_close(&c);
    const char *in[1] = { path };
    assert_int_equal(cache_merge(out, in, 1), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "which no input stores"));
    assert_int_equal(access(out, F_OK), -1);
}

/* Copies a root attribute; a string one becomes a variable-length string. */
static herr_t copy_attr_vlen(hid_t src, const char *name, const H5A_info_t *info, void *dst)
{
    (void)info;
    if (!strcmp(name, "format_version")) return 0; /* format 1 has none */
    hid_t a = H5Aopen(src, name, H5P_DEFAULT), t = H5Aget_type(a), s = H5Aget_space(a), b = -1, vt = -1;
    herr_t rc = -1;
    if (H5Tget_class(t) == H5T_STRING) {
        size_t n = H5Tget_size(t);
        char *buf = calloc(1, n + 1);
        vt = H5Tcopy(H5T_C_S1);
        H5Tset_size(vt, H5T_VARIABLE);
        H5Tset_cset(vt, H5T_CSET_UTF8);
        if (H5Aread(a, t, buf) >= 0 && (b = H5Acreate2(*(hid_t *)dst, name, vt, s, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
            H5Awrite(b, vt, &buf) >= 0)
            rc = 0;
        free(buf);
    } else {
        char buf[64];
        if (H5Tget_size(t) <= sizeof buf && H5Aread(a, t, buf) >= 0 &&
            (b = H5Acreate2(*(hid_t *)dst, name, t, s, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(b, t, buf) >= 0)
            rc = 0;
    }
    if (vt >= 0) H5Tclose(vt);
    if (b >= 0) H5Aclose(b);
    H5Sclose(s);
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

/* The cache src as an earlier glocal wrote it (format 1): the same datasets
 * without /warnings, string attributes of variable length, no
 * format_version. */
static void make_format1(const char *src, const char *dst)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t s = H5Fopen(src, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Fcreate(dst, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    assert_true(s >= 0 && d >= 0);
    assert_true(H5Aiterate2(s, H5_INDEX_NAME, H5_ITER_INC, NULL, copy_attr_vlen, &d) >= 0);
    const char *copied[3] = { "clips", "errors", "fields" };
    for (int i = 0; i < 3; i++) assert_true(H5Ocopy(s, copied[i], d, copied[i], H5P_DEFAULT, H5P_DEFAULT) >= 0);
    H5Fclose(d);
    H5Fclose(s);
    H5Pclose(fapl);
}

/* A format 1 cache opens with the same configuration and rows (and no
 * warnings), verifies, resumes (the writer publishes format 2, keeping its
 * clips), and merges with a format 2 shard. */
static void test_format1(void **state)
{
    (void)state;
    char v2[300], v1[300], s1[300], s2[300], merged[300], resumed[300];
    cache_config cfg;
    config_of(&cfg, 30);
    tmp_path(v2, sizeof v2, "v2.h5");
    tmp_path(v1, sizeof v1, "v1.h5");
    write_clips(v2, &cfg, 0, 1, 30, 1);
    make_format1(v2, v1);
    assert_attr_kind(v1, "params", 1);
    assert_attr_kind(v1, "method", 1);
    cache *a = NULL, *b = NULL;
    OK(cache_open(v2, 0, &a));
    OK(cache_open(v1, 0, &b));
    const cache_config *ca = cache_get_config(a), *cb = cache_get_config(b);
    assert_string_equal(ca->method, cb->method);
    assert_string_equal(ca->params, cb->params);
    assert_string_equal(ca->model_sha256, cb->model_sha256);
    assert_string_equal(ca->source, cb->source);
    assert_string_equal(ca->shard, cb->shard);
    assert_string_equal(ca->glocal_version, cb->glocal_version);
    assert_int_equal(ca->encoding, cb->encoding);
    assert_true(ca->scale == cb->scale);
    assert_int_equal(ca->height * 10000 + ca->width, cb->height * 10000 + cb->width);
    assert_int_equal(ca->total_clips, cb->total_clips);
    assert_int_equal(cb->format_version, 1);
    assert_int_equal(cache_warning_count(b), 0);
    assert_true(cache_warning_count(a) > 0);
    assert_int_equal(cache_clip_count(a), cache_clip_count(b));
    assert_int_equal(cache_error_count(a), cache_error_count(b));
    for (long i = 0; i < cache_clip_count(a); i++)
        assert_memory_equal(cache_get_clip(a, i), cache_get_clip(b, i), sizeof(cache_clip));
    assert_int_equal(cache_verify(b, NULL, NULL), 0);
    cache_close(&a);
    cache_close(&b);
    /* resume: a format 1 PATH holding clips 0..14 (as v1, from a shorter run) */
    tmp_path(s1, sizeof s1, "part.h5");
    tmp_path(resumed, sizeof resumed, "part1.h5");
    write_clips(s1, &cfg, 0, 1, 15, 1);
    make_format1(s1, resumed);
    write_clips(resumed, &cfg, 0, 1, 30, 1); /* clips 15..29; 0..14 come from the format 1 file */
    assert_attr_kind(resumed, "params", 0);
    OK(cache_open(resumed, 0, &b));
    assert_int_equal(cache_get_config(b)->format_version, CACHE_FORMAT_VERSION);
    long nw = cache_warning_count(b), late = 0;
    for (long i = 15; i < 30; i++) late += warned(i);
    assert_int_equal(nw, late); /* format 1 kept none for 0..14 */
    cache_close(&b);
    /* merge: shard 0/2 in format 1, 1/2 in format 2 */
    cache_config c0 = cfg, c1 = cfg;
    OK(cache_config_set_shard(&c0, 0, 2));
    OK(cache_config_set_shard(&c1, 1, 2));
    tmp_path(s1, sizeof s1, "s0v2.h5");
    tmp_path(s2, sizeof s2, "s1.h5");
    write_clips(s1, &c0, 0, 2, 30, 1);
    tmp_path(v1, sizeof v1, "s0v1.h5");
    make_format1(s1, v1);
    write_clips(s2, &c1, 1, 2, 30, 1);
    tmp_path(merged, sizeof merged, "mixed.h5");
    const char *in[2] = { v1, s2 };
    OK(cache_merge(merged, in, 2));
    OK(cache_open(merged, 0, &b));
    assert_string_equal(cache_get_config(b)->shard, "0/1");
    assert_int_equal(cache_get_config(b)->format_version, CACHE_FORMAT_VERSION);
    for (long i = 0; i < cache_warning_count(b); i++) assert_int_equal(cache_get_warning(b, i)->index % 2, 1);
    assert_int_equal(cache_verify(b, NULL, NULL), 0);
    cache_close(&b);
    /* a format this glocal does not know is refused, naming it */
    hid_t f = H5Fopen(merged, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t at = H5Aopen(f, "format_version", H5P_DEFAULT);
    int32_t future = CACHE_FORMAT_VERSION + 1;
    assert_true(at >= 0 && H5Awrite(at, H5T_NATIVE_INT32, &future) >= 0);
    H5Aclose(at);
    H5Fclose(f);
    assert_int_equal(cache_open(merged, 0, &b), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "format_version 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warnings_resume),
        cmocka_unit_test(test_merge_warnings),
        cmocka_unit_test(test_orphan_warning),
        cmocka_unit_test(test_format1),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
