/*
 * test_fuzz_regressions.c — the inputs that crashed a parser under libFuzzer
 * (scripts/fuzz, tests/fuzz/README.md), kept in tests/fuzz/<parser>/: each
 * must now fail with an error code and a message naming its file (or, for
 * images decoded from memory, the name given), never crash (ASan/UBSan in
 * scripts/test) or leak; a valid input that crashed (named ok_*) must load
 * (libswscale's overrun it caught is invisible to ASan: check it with
 * valgrind, tests/fuzz/README.md). Video crashers live beside the older mutants in
 * tests/fuzz/ (the .avi files) and are replayed by tests/test_video_fuzz.c.
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
#include "tests/fuzz/fuzz_util.h"

#include "datasets/cache.h"
#include "datasets/image.h"
#include "datasets/ncaa.h"
#include "datasets/ucf101.h"
#include "datasets/udhn.h"
#include "experiments/config.h"
#include "motion/flow.h"

#define FUZZ_DIR GLOCAL_SOURCE_DIR "/tests/fuzz"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_fuzz_regressions.");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* Feeds one saved input to its parser; returns the parser's code and puts
 * the text its message must name into `names`. */
typedef int (*feed_fn)(const char *path, char *names, size_t n);

static int feed_ucf101(const char *path, char *names, size_t n)
{
    void *data;
    size_t size;
    OK(gl_read_file(path, &data, &size));
    char lists[512], root[600];
    snprintf(lists, sizeof lists, "%s/ucf101", tmpdir);
    snprintf(root, sizeof root, "%s/root", lists);
    OK(gl_mkdirs(root));
    fuzz_write_lists(lists, data, size);
    gl_free(data);
    snprintf(names, n, "%s/", lists);
    dataset_index *idx = NULL;
    int rc = dataset_index_load(&idx, root, lists, 1);
    dataset_index_free(&idx);
    return rc;
}

static int feed_ncaa(const char *path, char *names, size_t n)
{
    snprintf(names, n, "%s", path);
    ncaa_dataset *d = NULL;
    int rc = ncaa_dataset_load(&d, path);
    ncaa_dataset_free(&d);
    return rc;
}

static int feed_udhn_list(const char *path, char *names, size_t n)
{
    snprintf(names, n, "%s", path);
    udhn_list l;
    int rc = udhn_list_read(&l, path);
    if (rc == 0) udhn_list_free(&l);
    return rc;
}

static int feed_udhn_points(const char *path, char *names, size_t n)
{
    snprintf(names, n, "%s", path);
    udhn_points_table t;
    int rc = udhn_points_read(&t, path);
    if (rc == 0) udhn_points_free(&t);
    else assert_int_equal(t.n, 0);
    return rc;
}

static int feed_config(const char *path, char *names, size_t n)
{
    snprintf(names, n, "%s", path);
    exp_config c;
    exp_config_default(&c);
    return exp_config_load(&c, path);
}

static int feed_flo(const char *path, char *names, size_t n)
{
    snprintf(names, n, "%s", path);
    flow_field f;
    int rc = flow_read_flo(path, &f);
    if (rc == 0) flow_field_free(&f);
    return rc;
}

static int feed_image(const char *path, char *names, size_t n)
{
    /* RGB from memory (the name is the message's) and gray from the file:
     * both load or both fail. */
    void *data;
    size_t size;
    OK(gl_read_file(path, &data, &size));
    image img;
    int rc = image_load_memory(&img, data, size, "fuzz-input", 3);
    gl_free(data);
    if (rc == 0) assert_true(img.width > 0 && img.height > 0 && img.channels == 3);
    else assert_non_null(strstr(gl_last_error(), "fuzz-input"));
    image_release(&img);
    snprintf(names, n, "%s", path);
    int rc1 = image_load(&img, path, 1);
    if (rc1 == 0) assert_true(img.width > 0 && img.height > 0 && img.channels == 1);
    image_release(&img);
    assert_int_equal(rc < 0, rc1 < 0);
    return rc1;
}

static void count_problem(void *ctx, const char *problem)
{
    (void)problem;
    (*(long *)ctx)++;
}

/* A damaged cache fails to open, or opens and cache_verify finds (and
 * reports) its problems. */
static int feed_cache(const char *path, char *names, size_t n)
{
    snprintf(names, n, "%s", path);
    cache *c = NULL;
    int rc = cache_open(path, 0, &c);
    if (rc < 0) return rc;
    long reported = 0, problems = cache_verify(c, count_problem, &reported);
    cache_close(&c);
    assert_true(problems > 0);
    assert_int_equal(reported, problems);
    return gl_error(GL_EFORMAT, "%s: cache_verify found %ld problems", path, problems);
}

/* Every file in tests/fuzz/<parser>/ through feed; returns how many. */
static int replay(const char *parser, feed_fn feed)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", FUZZ_DIR, parser);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024], names[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        gl_clear_error();
        int rc = feed(path, names, sizeof names);
        print_message("%s/%s -> %d: %s\n", parser, e->d_name, rc, gl_last_error());
        if (!strncmp(e->d_name, "ok_", 3)) {
            /* A valid input that crashed the parser: it must now load. */
            if (rc != 0) {
                print_error("%s: expected to load, got %d: '%s'\n", path, rc, gl_last_error());
                closedir(d);
                fail();
            }
        } else if (rc >= 0 || !strstr(gl_last_error(), names)) {
            print_error("%s: expected a clean failure naming %s, got %d: '%s'\n", path, names, rc,
                        gl_last_error());
            closedir(d);
            fail();
        }
        count++;
    }
    closedir(d);
    return count;
}

static void test_replay(void **state)
{
    (void)state;
    int n = 0;
    n += replay("ucf101", feed_ucf101);
    n += replay("ncaa", feed_ncaa);
    n += replay("udhn_list", feed_udhn_list);
    n += replay("udhn_points", feed_udhn_points);
    n += replay("config", feed_config);
    n += replay("flo", feed_flo);
    n += replay("image", feed_image);
    n += replay("cache", feed_cache);
    /* The corpus is in the repository: an empty replay means a wrong path. */
    assert_true(n >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
