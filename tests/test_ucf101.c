/* test_ucf101.c — datasets/ucf101.h against sample lists in the official
 * format, the official split-1 lists when GLOCAL_REAL_DATA has them (counts
 * from their distribution notes, tests/data/README.md), two real clips, and
 * hand-made malformed lists, one per error message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "tests/testutil.h"

#include "datasets/ucf101.h"

/* Sample lists in the official format (CRLF, the HandstandPushups quirk, g08+
 * train / g01 test): 101 classes, 202 train and 103 test lines (wc -l). The
 * official lists cannot ship (tests/data/README.md): their counts are checked
 * when GLOCAL_REAL_DATA has them. */
#define SPLITS GLOCAL_DATA_DIR "/ucf101/splits"
#define CLIP2 GLOCAL_DATA_DIR "/video/vtest_50.avi"
#define VIDEOS GLOCAL_DATA_DIR "/ucf101/videos"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_ucf101.");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* tmpdir/sub (made), returned in a static buffer per slot. */
static const char *tmp_path(int slot, const char *sub)
{
    static char buf[4][512];
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", tmpdir, sub);
    return buf[slot];
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void make_dir(const char *p)
{
    assert_int_equal(gl_mkdirs(p), 0);
}

static const dataset_clip *find_clip(const dataset_index *idx, const char *rel)
{
    for (long i = 0; i < idx->num_clips; i++)
        if (!strcmp(idx->clips[i].rel_path, rel)) return &idx->clips[i];
    return NULL;
}

/* ---- the official lists ---------------------------------------------------- */

static void test_official_split1_counts(void **state)
{
    (void)state;
    const char *real = test_real_data("ucf101/splits/trainlist01.txt");
    if (!real) skip();
    char splits[1024];
    snprintf(splits, sizeof splits, "%.*s", (int)(strrchr(real, '/') - real), real);
    const char *root = tmp_path(0, "empty_root");
    make_dir(root);
    dataset_index *idx = NULL;
    int rc = dataset_index_load(&idx, root, splits, 1);
    if (rc < 0) fail_msg("%s", gl_last_error());
    /* README: 9,537 train and 3,783 test lines, 101 classes. */
    assert_int_equal(idx->num_classes, 101);
    assert_int_equal(idx->num_split[DATASET_TRAIN], 9537);
    assert_int_equal(idx->num_split[DATASET_TEST], 3783);
    assert_int_equal(idx->num_split[DATASET_VAL], 0);
    assert_int_equal(idx->has_val, 0);
    assert_int_equal(idx->num_clips, 9537 + 3783);
    assert_int_equal(idx->num_missing, idx->num_clips);
    assert_int_equal(dataset_index_check_groups(idx), 0);
    /* README: split 1 tests groups g01-g07 (of g01-g25). */
    for (long i = 0; i < idx->num_clips; i++) {
        const dataset_clip *c = &idx->clips[i];
        if (c->split == DATASET_TEST) assert_in_range(c->group, 1, 7);
        else assert_in_range(c->group, 8, 25);
        assert_in_range(c->label, 0, 100);
    }
    /* classInd.txt line 1 and 37; the quirky file name resolves to its folder's class. */
    assert_string_equal(idx->class_names[0], "ApplyEyeMakeup");
    assert_string_equal(idx->class_names[36], "HandstandPushups");
    const dataset_clip *c = find_clip(idx, "HandstandPushups/v_HandStandPushups_g01_c01.avi");
    assert_non_null(c);
    assert_int_equal(c->label, 36);
    assert_int_equal(c->split, DATASET_TEST);
    c = find_clip(idx, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"); /* trainlist line 1 */
    assert_non_null(c);
    assert_int_equal(c->label, 0);
    assert_int_equal(c->group, 8);
    assert_int_equal(c->clip, 1);
    assert_int_equal(c->line, 1);
    assert_int_equal(dataset_index_find_class(idx, "handstandpushups"), 36);
    assert_int_equal(dataset_index_find_class(idx, "NoSuchClass"), -1);
    dataset_index_free(&idx);
    assert_null(idx);
}

/* The sample lists: what wc -l and grep say of the files. */
static void test_sample_lists(void **state)
{
    (void)state;
    const char *root = tmp_path(0, "empty_root2");
    make_dir(root);
    dataset_index *idx = NULL;
    int rc = dataset_index_load(&idx, root, SPLITS, 1);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(idx->num_classes, 101);
    assert_int_equal(idx->num_split[DATASET_TRAIN], 202);
    assert_int_equal(idx->num_split[DATASET_TEST], 103);
    assert_int_equal(idx->num_missing, idx->num_clips);
    assert_int_equal(dataset_index_check_groups(idx), 0);
    for (long i = 0; i < idx->num_clips; i++) {
        const dataset_clip *c = &idx->clips[i];
        if (c->split == DATASET_TEST) assert_int_equal(c->group, 1);
        else assert_in_range(c->group, 8, 9);
    }
    assert_string_equal(idx->class_names[36], "HandstandPushups"); /* classInd.txt line 37 */
    const dataset_clip *c = find_clip(idx, "HandstandPushups/v_HandStandPushups_g08_c01.avi");
    assert_non_null(c);
    assert_int_equal(c->label, 36);
    assert_int_equal(c->line, 73); /* grep -n */
    dataset_index_free(&idx);
}

/* The real clips, put where the lists expect them (symlinks), are found even
 * when the folder and file differ from the list in case; a dangling link is
 * missing. */
static void test_real_clips_resolve(void **state)
{
    (void)state;
    const char *root = tmp_path(0, "root");
    char p[600];
    snprintf(p, sizeof p, "%s/ApplyEyeMakeup", root);
    make_dir(p);
    snprintf(p, sizeof p, "%s/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", root);
    assert_int_equal(symlink(VIDEOS "/v_ApplyEyeMakeup_g01_c01.avi", p), 0);
    /* OpenCV's vtest cut stands in for BabyCrawling g01_c01. */
    snprintf(p, sizeof p, "%s/BabyCrawling", root);
    make_dir(p);
    snprintf(p, sizeof p, "%s/BabyCrawling/v_BabyCrawling_g01_c01.avi", root);
    assert_int_equal(symlink(CLIP2, p), 0);
    /* Lower-case folder, other-case file name than the list's v_HandStandPushups_. */
    snprintf(p, sizeof p, "%s/handstandpushups", root);
    make_dir(p);
    snprintf(p, sizeof p, "%s/handstandpushups/v_HandstandPushups_g01_c02.avi", root);
    assert_int_equal(symlink(CLIP2, p), 0);
    /* Dangling. */
    snprintf(p, sizeof p, "%s/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi", root);
    assert_int_equal(symlink("/nonexistent/file.avi", p), 0);

    dataset_index *idx = NULL;
    int rc = dataset_index_load(&idx, root, SPLITS, 1);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(idx->num_missing, idx->num_clips - 3);

    struct stat st;
    const dataset_clip *c = find_clip(idx, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi");
    assert_non_null(c);
    assert_true(c->exists);
    assert_int_equal(stat(c->path, &st), 0);
    assert_int_equal(st.st_size, 294566); /* ls -l of the real file */

    c = find_clip(idx, "BabyCrawling/v_BabyCrawling_g01_c01.avi");
    assert_non_null(c);
    assert_true(c->exists);
    assert_int_equal(stat(c->path, &st), 0);
    assert_int_equal(st.st_size, 619682); /* ls -l */

    c = find_clip(idx, "HandstandPushups/v_HandStandPushups_g01_c02.avi");
    assert_non_null(c);
    assert_true(c->exists);
    snprintf(p, sizeof p, "%s/handstandpushups/v_HandstandPushups_g01_c02.avi", root);
    assert_string_equal(c->path, p);

    c = find_clip(idx, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi");
    assert_non_null(c);
    assert_false(c->exists);

    char sum[1024];
    int need = dataset_index_summary(idx, 3, sum, sizeof sum);
    dataset_index *rel = NULL;
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmpdir), 0);
    rc = dataset_index_load(&rel, "root//", SPLITS, 1);
    assert_int_equal(chdir(cwd), 0);
    if (rc < 0) fail_msg("%s", gl_last_error());
    /* A relative root gives absolute paths. */
    assert_string_equal(rel->root, root);
    c = find_clip(rel, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi");
    assert_non_null(c);
    assert_true(c->exists);
    snprintf(p, sizeof p, "%s/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", root);
    assert_string_equal(c->path, p);
    dataset_index_free(&rel);

    assert_true(need > 0 && (size_t)need < sizeof sum);
    assert_non_null(strstr(sum, "305 clips in 101 classes (split 1): 202 train, 103 test"));
    assert_non_null(strstr(sum, "3 found, 302 missing"));
    /* The first missing clip in list order is trainlist01.txt line 1. */
    assert_non_null(strstr(sum, "e.g. ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi, "));
    assert_non_null(strstr(sum, ", ..."));
    /* Truncation still terminates and reports the full length. */
    char small[16];
    assert_int_equal(dataset_index_summary(idx, 3, small, sizeof small), need);
    assert_int_equal(strlen(small), sizeof small - 1);
    dataset_index_free(&idx);
}

/* ---- malformed lists ----------------------------------------------------- */

static const char *classes3 = "1 Alpha\r\n2 Beta\r\n3 Gamma\r\n";

/* Writes the three files into a fresh folder and loads; returns rc. */
static int load_lists(const char *name, const char *cls, const char *train, const char *test)
{
    const char *dir = tmp_path(1, name);
    make_dir(dir);
    if (cls) write_text(dir, "classInd.txt", cls);
    if (train) write_text(dir, "trainlist01.txt", train);
    if (test) write_text(dir, "testlist01.txt", test);
    dataset_index *idx = NULL;
    int rc = dataset_index_load(&idx, dir, NULL, 1);
    if (rc == 0) {
        assert_non_null(idx);
        dataset_index_free(&idx);
    } else {
        assert_null(idx);
    }
    return rc;
}

static void expect_error(const char *name, const char *cls, const char *train, const char *test,
                         int code, const char *msg)
{
    int rc = load_lists(name, cls, train, test);
    if (rc != code)
        fail_msg("%s: expected %d, got %d (%s)", name, code, rc, gl_last_error());
    if (!strstr(gl_last_error(), msg))
        fail_msg("%s: message \"%s\" lacks \"%s\"", name, gl_last_error(), msg);
}

static void test_malformed_lists(void **state)
{
    (void)state;
    const char *good_test = "Alpha/v_Alpha_g01_c01.avi\r\nBeta/v_Beta_g01_c01.avi\r\n";
    /* LF ends, a blank line and trailing blanks are fine. */
    assert_int_equal(load_lists("ok", "1 Alpha\n2 Beta\n3 Gamma\n",
                                "Alpha/v_Alpha_g02_c01.avi 1\n\nGamma/v_Gamma_g02_c01.avi 3  \n",
                                "Alpha/v_Alpha_g01_c01.avi\nBeta/v_Beta_g01_c01.avi 2\n"), 0);

    /* A UTF-8 byte order mark before line 1 is skipped. */
    assert_int_equal(load_lists("bom", "\xEF\xBB\xBF" "1 Alpha\r\n2 Beta\r\n",
                                "\xEF\xBB\xBF" "Alpha/v_Alpha_g02_c01.avi 1\r\n",
                                "Beta/v_Beta_g01_c01.avi\r\n"), 0);

    expect_error("unknown_class", classes3,
                 "Alpha/v_Alpha_g02_c01.avi 1\r\nFoo/v_Foo_g02_c01.avi 1\r\n", good_test,
                 GL_EFORMAT, "trainlist01.txt:2: class \"Foo\" is not in classInd.txt");
    expect_error("label_high", classes3, "Alpha/v_Alpha_g02_c01.avi 4\r\n", good_test,
                 GL_EFORMAT, "trainlist01.txt:1: label \"4\" is out of range 1..3");
    expect_error("label_zero", classes3, "Alpha/v_Alpha_g02_c01.avi 0\r\n", good_test,
                 GL_EFORMAT, "trainlist01.txt:1: label \"0\" is out of range 1..3");
    expect_error("label_text", classes3, "Alpha/v_Alpha_g02_c01.avi one\r\n", good_test,
                 GL_EFORMAT, "trainlist01.txt:1: label \"one\" is out of range 1..3");
    expect_error("label_disagrees", classes3,
                 "Alpha/v_Alpha_g02_c01.avi 1\r\nAlpha/v_Alpha_g02_c02.avi 2\r\n", good_test,
                 GL_EFORMAT,
                 "trainlist01.txt:2: label 2 (Beta) disagrees with the class folder \"Alpha\" (1)");
    expect_error("test_label_disagrees", classes3, "Alpha/v_Alpha_g02_c01.avi 1\r\n",
                 "Gamma/v_Gamma_g01_c01.avi 1\r\n", GL_EFORMAT,
                 "testlist01.txt:1: label 1 (Alpha) disagrees with the class folder \"Gamma\" (3)");
    expect_error("no_label", classes3, "Alpha/v_Alpha_g02_c01.avi\r\n", good_test, GL_EFORMAT,
                 "trainlist01.txt:1: missing label");
    expect_error("bad_name", classes3, "Alpha/Alpha_02_01.avi 1\r\n", good_test, GL_EFORMAT,
                 "trainlist01.txt:1: bad file name \"Alpha_02_01.avi\"");
    expect_error("bad_name_group", classes3, "Alpha/v_Alpha_gx_c01.avi 1\r\n", good_test,
                 GL_EFORMAT, "bad file name \"v_Alpha_gx_c01.avi\"");
    expect_error("bad_name_ext", classes3, "Alpha/v_Alpha_g02_c01 1\r\n", good_test, GL_EFORMAT,
                 "bad file name \"v_Alpha_g02_c01\"");
    expect_error("name_vs_folder", classes3, "Alpha/v_Beta_g02_c01.avi 1\r\n", good_test,
                 GL_EFORMAT,
                 "trainlist01.txt:1: file name \"v_Beta_g02_c01.avi\" does not match its folder \"Alpha\"");
    expect_error("no_folder", classes3, "v_Alpha_g02_c01.avi 1\r\n", good_test, GL_EFORMAT,
                 "trainlist01.txt:1: expected \"Class/file\"");
    expect_error("deep_path", classes3, "Alpha/x/v_Alpha_g02_c01.avi 1\r\n", good_test,
                 GL_EFORMAT, "trainlist01.txt:1: expected \"Class/file\"");
    expect_error("extra_field", classes3, "Alpha/v_Alpha_g02_c01.avi 1 2\r\n", good_test,
                 GL_EFORMAT, "trainlist01.txt:1: expected \"Class/file LABEL\", got more fields");
    expect_error("straddle", classes3, "Alpha/v_Alpha_g02_c01.avi 1\r\nBeta/v_Beta_g01_c05.avi 2\r\n",
                 good_test, GL_EFORMAT,
                 "group 1 is in both train (Beta/v_Beta_g01_c05.avi, trainlist01.txt:2) and test");
    expect_error("duplicate", classes3, "Alpha/v_Alpha_g02_c01.avi 1\r\nBeta/v_Beta_g02_c01.avi 2\r\n",
                 "Alpha/v_Alpha_g01_c01.avi\r\nalpha/v_alpha_g01_c01.avi\r\n", GL_EFORMAT,
                 "testlist01.txt:2: \"alpha/v_alpha_g01_c01.avi\" is already listed at testlist01.txt:1");
    expect_error("class_index_gap", "1 Alpha\r\n3 Beta\r\n", "Alpha/v_Alpha_g02_c01.avi 1\r\n",
                 good_test, GL_EFORMAT, "classInd.txt:2: expected index 2, got \"3\"");
    expect_error("class_repeat", "1 Alpha\r\n2 alpha\r\n", "Alpha/v_Alpha_g02_c01.avi 1\r\n",
                 good_test, GL_EFORMAT, "classInd.txt:2: class \"alpha\" repeats class 1 \"Alpha\"");
    expect_error("class_one_field", "1 Alpha\r\n2\r\n", "Alpha/v_Alpha_g02_c01.avi 1\r\n",
                 good_test, GL_EFORMAT, "classInd.txt:2: expected \"INDEX Name\", got \"2\"");
    expect_error("class_empty", "\r\n", "Alpha/v_Alpha_g02_c01.avi 1\r\n", good_test, GL_EFORMAT,
                 "classInd.txt: no classes");
    expect_error("no_testlist", classes3, "Alpha/v_Alpha_g02_c01.avi 1\r\n", NULL, GL_EIO,
                 "testlist01.txt: cannot open");

    /* Arguments and the root. */
    dataset_index *idx = (dataset_index *)1;
    assert_int_equal(dataset_index_load(&idx, tmpdir, NULL, 0), GL_EINVAL);
    assert_null(idx);
    assert_int_equal(dataset_index_load(&idx, NULL, SPLITS, 1), GL_EINVAL);
    assert_int_equal(dataset_index_load(&idx, tmp_path(0, "no_such_root"), SPLITS, 1), GL_EIO);
    assert_non_null(strstr(gl_last_error(), "no_such_root: the clip root is not a folder"));
    assert_int_equal(dataset_index_load(&idx, tmpdir, SPLITS, 2), GL_EIO); /* no split-2 lists here */
    assert_non_null(strstr(gl_last_error(), "trainlist02.txt: cannot open"));
}

/* A NUL byte inside a list is reported, not read past. */
static void test_nul_byte(void **state)
{
    (void)state;
    const char *dir = tmp_path(1, "nul");
    make_dir(dir);
    write_text(dir, "trainlist01.txt", "Alpha/v_Alpha_g02_c01.avi 1\r\n");
    write_text(dir, "testlist01.txt", "Alpha/v_Alpha_g01_c01.avi\r\n");
    char p[600];
    snprintf(p, sizeof p, "%s/classInd.txt", dir);
    static const char bytes[] = "1 Alpha\r\n2 B\0ta\r\n";
    assert_int_equal(gl_write_file_atomic(p, bytes, sizeof bytes - 1), 0);
    dataset_index *idx = NULL;
    assert_int_equal(dataset_index_load(&idx, dir, NULL, 1), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "classInd.txt:2: a NUL byte"));
}

/* dataset_lists_write then dataset_index_load gives back the same clips. */
static void test_lists_round_trip(void **state)
{
    (void)state;
    char *names[] = { "Alpha", "Beta" };
    dataset_clip clips[] = {
        { .rel_path = "Alpha/v_Alpha_g03_c01.avi", .label = 0, .split = DATASET_TRAIN },
        { .rel_path = "Beta/v_Beta_g01_c02.avi", .label = 1, .split = DATASET_TEST },
        { .rel_path = "Beta/v_Beta_g03_c07.avi", .label = 1, .split = DATASET_TRAIN },
        { .rel_path = "Alpha/v_Alpha_g02_c01.avi", .label = 0, .split = DATASET_VAL },
    };
    const char *dir = tmp_path(1, "written/lists");
    int rc = dataset_lists_write(dir, 1, 2, names, 4, clips);
    if (rc < 0) fail_msg("%s", gl_last_error());
    /* The files themselves, in the official format. */
    void *data;
    size_t n;
    char p[600];
    snprintf(p, sizeof p, "%s/trainlist01.txt", dir);
    assert_int_equal(gl_read_file(p, &data, &n), 0);
    const char *want = "Alpha/v_Alpha_g03_c01.avi 1\r\nBeta/v_Beta_g03_c07.avi 2\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(data, want, n);
    gl_free(data);
    snprintf(p, sizeof p, "%s/vallist01.txt", dir);
    assert_int_equal(gl_read_file(p, &data, &n), 0);
    want = "Alpha/v_Alpha_g02_c01.avi\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(data, want, n);
    gl_free(data);

    /* Put one clip on disk. */
    char root[512];
    snprintf(root, sizeof root, "%s", tmp_path(2, "written"));
    snprintf(p, sizeof p, "%s/Beta", root);
    make_dir(p);
    snprintf(p, sizeof p, "%s/Beta/v_Beta_g01_c02.avi", root);
    assert_int_equal(gl_write_file_atomic(p, "x", 1), 0);

    dataset_index *idx = NULL;
    rc = dataset_index_load(&idx, root, dir, 1);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(idx->num_classes, 2);
    assert_int_equal(idx->num_clips, 4);
    assert_true(idx->has_val);
    assert_int_equal(idx->num_split[DATASET_TRAIN], 2);
    assert_int_equal(idx->num_split[DATASET_TEST], 1);
    assert_int_equal(idx->num_split[DATASET_VAL], 1);
    assert_int_equal(idx->num_missing, 3);
    for (int i = 0; i < 4; i++) {
        const dataset_clip *c = find_clip(idx, clips[i].rel_path);
        assert_non_null(c);
        assert_int_equal(c->label, clips[i].label);
        assert_int_equal(c->split, clips[i].split);
        assert_int_equal(c->exists, i == 1);
    }
    char sum[512];
    dataset_index_summary(idx, 5, sum, sizeof sum);
    assert_non_null(strstr(sum, "2 train, 1 test, 1 val; 1 found, 3 missing"));
    dataset_index_free(&idx);

    /* Bad input to the writer. */
    char *bad_names[] = { "Al pha", "Beta" };
    assert_int_equal(dataset_lists_write(dir, 1, 2, bad_names, 4, clips), GL_EINVAL);
    dataset_clip bad = clips[0];
    bad.label = 2;
    assert_int_equal(dataset_lists_write(dir, 1, 2, names, 1, &bad), GL_EINVAL);
    bad = clips[0];
    bad.rel_path = "Alpha/v_Alpha g03_c01.avi";
    assert_int_equal(dataset_lists_write(dir, 1, 2, names, 1, &bad), GL_EINVAL);
}

/* Every allocation failure during a load is reported and leaks nothing
 * (the sanitizer build checks the leaks). */
static void test_allocation_failures(void **state)
{
    (void)state;
    const char *dir = tmp_path(1, "alloc");
    make_dir(dir);
    write_text(dir, "classInd.txt", classes3);
    write_text(dir, "trainlist01.txt", "Alpha/v_Alpha_g02_c01.avi 1\r\nBeta/v_Beta_g02_c01.avi 2\r\n");
    write_text(dir, "testlist01.txt", "Gamma/v_Gamma_g01_c01.avi\r\n");
    char p[600];
    snprintf(p, sizeof p, "%s/Gamma", dir);
    make_dir(p);
    snprintf(p, sizeof p, "%s/Gamma/v_Gamma_g01_c01.avi", dir);
    assert_int_equal(gl_write_file_atomic(p, "x", 1), 0);
    int ok = 0;
    for (long n = 0; n < 200 && !ok; n++) {
        dataset_index *idx = NULL;
        gl_alloc_fail_after(n);
        int rc = dataset_index_load(&idx, dir, NULL, 1);
        gl_alloc_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(idx->num_clips, 3);
            assert_int_equal(idx->num_missing, 2);
            dataset_index_free(&idx);
            ok = 1;
        } else {
            assert_int_equal(rc, GL_ENOMEM);
            assert_null(idx);
        }
    }
    assert_true(ok);
}

/* Runs `glocal dataset ARGS` with output to tmpdir/cmd.out; returns the exit code. */
static int run_dataset_cmd(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' dataset %s >'%s/cmd.out' 2>&1", GLOCAL_BINARY, args, tmpdir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int cmd_output_has(const char *s)
{
    char p[600];
    snprintf(p, sizeof p, "%s/cmd.out", tmpdir);
    void *data;
    size_t n;
    assert_int_equal(gl_read_file(p, &data, &n), 0);
    char *text = gl_realloc(data, n + 1);
    assert_non_null(text);
    text[n] = 0;
    int found = strstr(text, s) != NULL;
    if (!found) print_message("output was:\n%s\n", text);
    gl_free(text);
    return found;
}

static void test_dataset_command(void **state)
{
    (void)state;
    const char *root = tmp_path(0, "cmd_root");
    make_dir(root);
    char args[1024];
    snprintf(args, sizeof args, "--root '%s' --lists '%s' --classes", root, SPLITS);
    assert_int_equal(run_dataset_cmd(args), 0);
    assert_true(cmd_output_has("305 clips in 101 classes (split 1): 202 train, 103 test"));
    /* classInd.txt line 37; 0 train/test counts would show a parsing fault. */
    assert_true(cmd_output_has("37   HandstandPushups"));
    snprintf(args, sizeof args, "--root '%s' --lists '%s' --require-all", root, SPLITS);
    assert_int_equal(run_dataset_cmd(args), 1);
    assert_true(cmd_output_has("305 of 305 listed clips are missing"));
    /* A malformed list: exit 1 and FILE:LINE. */
    const char *dir = tmp_path(1, "cmd_bad");
    make_dir(dir);
    write_text(dir, "classInd.txt", classes3);
    write_text(dir, "trainlist01.txt", "Alpha/v_Alpha_g02_c01.avi 1\r\nFoo/v_Foo_g02_c01.avi 1\r\n");
    write_text(dir, "testlist01.txt", "Alpha/v_Alpha_g01_c01.avi\r\n");
    snprintf(args, sizeof args, "--root '%s'", dir);
    assert_int_equal(run_dataset_cmd(args), 1);
    assert_true(cmd_output_has("trainlist01.txt:2: class \"Foo\" is not in classInd.txt"));
    assert_int_equal(run_dataset_cmd("--split 0 --root ."), 2);
    assert_int_equal(run_dataset_cmd("--help"), 0);
}

/* ---- where the lists are looked for (dataset_lists_locate) ------------------ */

/* tmpdir/NAME/ROOT with the real clip in its class folder and the sample
 * split-1 lists copied into tmpdir/NAME/LISTS ("" = none); *root gets ROOT's
 * path. */
static void make_layout(const char *name, const char *root_rel, const char *lists_rel, char *root, size_t n)
{
    char cmd[3000];
    snprintf(root, n, "%s/%s/%s", tmpdir, name, root_rel);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/ApplyEyeMakeup' && cp '%s/v_ApplyEyeMakeup_g01_c01.avi' '%s/ApplyEyeMakeup/'",
             root, VIDEOS, root);
    assert_int_equal(system(cmd), 0);
    if (!lists_rel[0]) return;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s/%s' && cp '%s'/*.txt '%s/%s/%s/'", tmpdir, name, lists_rel, SPLITS,
             tmpdir, name, lists_rel);
    assert_int_equal(system(cmd), 0);
}

/* Loads the layout with no list folder given; checks the folder used and
 * that the clip on disk was found through it. */
static void expect_layout(const char *root, const char *expect_lists)
{
    char found[1024];
    assert_int_equal(dataset_lists_locate(root, NULL, found, sizeof found), 0);
    assert_string_equal(found, expect_lists);
    dataset_index *idx = NULL;
    int rc = dataset_index_load(&idx, root, NULL, 1);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_string_equal(idx->lists, expect_lists);
    assert_int_equal(idx->num_clips, 305);
    const dataset_clip *c = find_clip(idx, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi");
    assert_non_null(c);
    assert_true(c->exists);
    assert_int_equal(idx->num_missing, 304);
    dataset_index_free(&idx);
}

/* The layouts users keep UCF-101 in (issue 19): the lists inside the root,
 * beside it (the official archives unpacked side by side), mmaction2's
 * data/ucf101/{videos,annotations}, and in the root itself; the first wins
 * when two have them; none: an error naming every place. */
static void test_lists_layouts(void **state)
{
    (void)state;
    char root[600], want[700];
    make_layout("inside", "UCF-101", "UCF-101/ucfTrainTestlist", root, sizeof root);
    snprintf(want, sizeof want, "%s/ucfTrainTestlist", root);
    expect_layout(root, want);

    make_layout("beside", "UCF-101", "ucfTrainTestlist", root, sizeof root);
    snprintf(want, sizeof want, "%s/../ucfTrainTestlist", root);
    expect_layout(root, want);

    make_layout("mmaction2", "videos", "annotations", root, sizeof root);
    snprintf(want, sizeof want, "%s/../annotations", root);
    expect_layout(root, want);

    make_layout("flat", "root", "root", root, sizeof root);
    expect_layout(root, root);

    /* both inside and beside: inside first */
    make_layout("both", "UCF-101", "UCF-101/ucfTrainTestlist", root, sizeof root);
    make_layout("both", "UCF-101", "annotations", root, sizeof root);
    snprintf(want, sizeof want, "%s/ucfTrainTestlist", root);
    expect_layout(root, want);

    /* given: used as is, even where none of the four has them */
    make_layout("none", "UCF-101", "", root, sizeof root);
    char found[1024];
    assert_int_equal(dataset_lists_locate(root, SPLITS, found, sizeof found), 0);
    assert_string_equal(found, SPLITS);
    dataset_index *idx = NULL;
    assert_int_equal(dataset_index_load(&idx, root, SPLITS, 1), 0);
    assert_int_equal(idx->num_missing, 304);
    dataset_index_free(&idx);

    /* none: every place in the message */
    assert_int_equal(dataset_lists_locate(root, NULL, found, sizeof found), GL_ENOTFOUND);
    assert_int_equal(dataset_index_load(&idx, root, NULL, 1), GL_ENOTFOUND);
    assert_null(idx);
    const char *places[] = { "/ucfTrainTestlist", "/../ucfTrainTestlist", "/../annotations" };
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "%s%s", root, places[i]);
        if (!strstr(gl_last_error(), want)) fail_msg("'%s' not in: %s", want, gl_last_error());
    }
    assert_non_null(strstr(gl_last_error(), "no classInd.txt in"));

    /* too small a buffer: an error, not a cut path */
    assert_int_equal(dataset_lists_locate(root, SPLITS, found, 8), GL_EINVAL);

    /* the command says which folder it used, on one line */
    make_layout("cmd", "videos", "annotations", root, sizeof root);
    char args[1024];
    snprintf(args, sizeof args, "--root '%s'", root);
    assert_int_equal(run_dataset_cmd(args), 0);
    snprintf(want, sizeof want, "glocal dataset: split lists from %s/../annotations\n", root);
    assert_true(cmd_output_has(want));
    assert_true(cmd_output_has("305 clips in 101 classes (split 1): 202 train, 103 test"));
    snprintf(args, sizeof args, "--root '%s/%s/UCF-101'", tmpdir, "none");
    assert_int_equal(run_dataset_cmd(args), 1);
    assert_true(cmd_output_has("/../annotations or "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_official_split1_counts),
        cmocka_unit_test(test_sample_lists),
        cmocka_unit_test(test_real_clips_resolve),
        cmocka_unit_test(test_malformed_lists),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_lists_round_trip),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_dataset_command),
        cmocka_unit_test(test_lists_layouts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
