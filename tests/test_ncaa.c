/* test_ncaa.c — datasets/ncaa.h: the official CSV against its known counts
 * (when GLOCAL_REAL_DATA has it: its terms are unclear, so it does not ship;
 * tests/data/README.md), hand-made rows and bad rows. The import end to end:
 * test_ncaa_import.c. */
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

/* ---- the official CSV ---------------------------------------------------------- */

static void test_official_csv(void **state)
{
    (void)state;
    const char *csv = test_real_data("ncaa/bball_dataset_april_4.csv");
    if (!csv) skip();
    ncaa_dataset *d = NULL;
    int rc = ncaa_dataset_load(&d, csv);
    if (rc < 0) fail_msg("%s", gl_last_error());
    /* README: 14,548 rows, 257 games, train/val/test 11,436 / 856 / 2,256. */
    assert_int_equal(d->num_events, 14548);
    assert_int_equal(d->num_games, 257);
    assert_int_equal(d->num_split[DATASET_TRAIN], 11436);
    assert_int_equal(d->num_split[DATASET_VAL], 856);
    assert_int_equal(d->num_split[DATASET_TEST], 2256);
    assert_int_equal(ncaa_dataset_check_games(d), 0);

    /* Per-label rows, counted with `cut -d, -f10 | sort | uniq -c` on the file. */
    static const struct { const char *label; long n; } counts[] = {
        { "3-pointer failure", 2482 }, { "3-pointer success", 1142 },
        { "free-throw failure", 400 }, { "free-throw success", 675 },
        { "layup failure", 1640 },     { "layup success", 1550 },
        { "other 2-pointer failure", 2603 }, { "other 2-pointer success", 1264 },
        { "slam dunk failure", 55 },   { "slam dunk success", 358 },
        { "steal success", 2379 },
    };
    long per_label[NCAA_NUM_LABELS] = { 0 }, per_type[NCAA_NUM_EVENT_TYPES] = { 0 };
    for (long i = 0; i < d->num_events; i++) {
        const ncaa_event *e = &d->events[i];
        per_label[e->label]++;
        per_type[ncaa_class_of_label(e->label, 6)]++;
        assert_int_equal(ncaa_class_of_label(e->label, 11), e->label);
        /* README: every steal success row has EventStartTime -1. */
        if (!strcmp(ncaa_label_name(e->label), "steal success"))
            assert_true(e->event_start_ms == -1);
        assert_true(e->clip_end_ms > e->clip_start_ms);
        assert_string_equal(d->games[e->game], e->youtube_id);
        assert_int_equal(e->line, i + 1);
    }
    long total = 0;
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        int l = ncaa_label_find(counts[k].label);
        assert_in_range(l, 0, NCAA_NUM_LABELS - 1);
        assert_int_equal(per_label[l], counts[k].n);
        total += counts[k].n;
    }
    assert_int_equal(total, 14548);
    /* The 6 event types merge success and failure. */
    assert_int_equal(per_type[0], 2482 + 1142);
    assert_int_equal(per_type[1], 400 + 675);
    assert_int_equal(per_type[2], 1640 + 1550);
    assert_int_equal(per_type[3], 2603 + 1264);
    assert_int_equal(per_type[4], 55 + 358);
    assert_int_equal(per_type[5], 2379);

    /* Row 1 of the file, field by field. */
    const ncaa_event *e = &d->events[0];
    assert_string_equal(e->youtube_id, "-VcfnuYRhMU");
    assert_int_equal(e->video_width, 490);
    assert_int_equal(e->video_height, 360);
    assert_true(fabs(e->clip_start_ms - 2377375.0) < 1e-6);
    assert_true(fabs(e->clip_end_ms - 2400664.933) < 1e-6);
    assert_true(fabs(e->event_start_ms - 2384913.177) < 1e-6);
    assert_true(fabs(e->event_end_ms - 2384972.840) < 1e-6);
    assert_true(fabs(e->ball_x - 0.376) < 1e-12);
    assert_true(fabs(e->ball_y - 0.242884250474) < 1e-12);
    assert_string_equal(ncaa_label_name(e->label), "layup failure");
    assert_int_equal(e->split, DATASET_TRAIN);
    ncaa_dataset_free(&d);
    assert_null(d);
}

/* Class names are the labels in CamelCase without blanks or hyphens. */
static void test_class_names(void **state)
{
    (void)state;
    for (int scheme = 6; scheme <= 11; scheme += 5) {
        assert_int_equal(ncaa_num_classes(scheme), scheme);
        for (int c = 0; c < scheme; c++) {
            /* The first label of class c, with " success"/" failure" cut for 6 classes. */
            int label = -1;
            for (int l = 0; l < NCAA_NUM_LABELS && label < 0; l++)
                if (ncaa_class_of_label(l, scheme) == c) label = l;
            assert_true(label >= 0);
            char want[64];
            const char *src = ncaa_label_name(label);
            size_t n = strlen(src);
            if (scheme == 6 && n > 8) n -= 8; /* " success" / " failure" */
            int up = 1;
            size_t o = 0;
            for (size_t i = 0; i < n; i++) {
                if (src[i] == ' ' || src[i] == '-') { up = 1; continue; }
                want[o++] = up ? (char)toupper((unsigned char)src[i]) : src[i];
                up = 0;
            }
            want[o] = 0;
            assert_string_equal(ncaa_class_name(c, scheme), want);
        }
    }
    assert_string_equal(ncaa_class_name(5, 6), "Steal");
    assert_string_equal(ncaa_class_name(3, 11), "FreeThrowFailure");
    assert_null(ncaa_class_name(6, 6));
    assert_null(ncaa_class_name(0, 7));
    assert_int_equal(ncaa_label_find("Layup success"), -1);
    assert_int_equal(ncaa_label_event_type(ncaa_label_find("slam dunk failure")), 4);
}

/* ---- bad rows --------------------------------------------------------------------- */

static const char *good_row =
    "abcdefghijk,490,360,1000.000,3000.5,1500,1600,0.5,0.25,layup success,train";

/* The bad row alone (line 1), or after the good row (line 2) when line2. */
static void expect_bad(const char *bad_row, int line2, const char *msg)
{
    char path[512], text[1024];
    snprintf(path, sizeof path, "%s/bad.csv", tmpdir);
    if (line2) snprintf(text, sizeof text, "%s\r\n%s\r\n", good_row, bad_row);
    else snprintf(text, sizeof text, "%s\n", bad_row);
    write_text(path, text);
    ncaa_dataset *d = NULL;
    int rc = ncaa_dataset_load(&d, path);
    if (rc != GL_EFORMAT) fail_msg("row \"%s\": expected GL_EFORMAT, got %d", bad_row, rc);
    assert_null(d);
    char want[512];
    snprintf(want, sizeof want, "bad.csv:%d: %s", line2 ? 2 : 1, msg);
    if (!strstr(gl_last_error(), want))
        fail_msg("message \"%s\" lacks \"%s\"", gl_last_error(), want);
}

static void test_bad_rows(void **state)
{
    (void)state;
    /* The good row, with a header line and no final newline, loads. */
    char path[512], text[1024];
    snprintf(path, sizeof path, "%s/good.csv", tmpdir);
    snprintf(text, sizeof text, "YoutubeId,VideoWidth,VideoHeight,ClipStartTime,ClipEndTime,"
             "EventStartTime,EventEndTime,EventStartBallX,EventStartBallY,EventLabel,"
             "TrainValOrTest\n%s\n\n%s", good_row,
             "abcdefghijk,490,360,1000,3000,-1,1600,-1,-1,steal success,train");
    write_text(path, text);
    ncaa_dataset *d = NULL;
    int rc = ncaa_dataset_load(&d, path);
    if (rc < 0) fail_msg("%s", gl_last_error());
    assert_int_equal(d->num_events, 2);
    assert_int_equal(d->events[0].line, 2);
    assert_int_equal(d->events[1].line, 4);
    assert_true(d->events[1].event_start_ms == -1);
    ncaa_dataset_free(&d);

    expect_bad("abcdefghijk,490,360,1000,3000,1500,1600,0.5,0.25,layup success", 1,
               "expected 11 comma-separated columns, got 10");
    expect_bad("abcdefghijk,490,360,1000,3000,1500,1600,0.5,0.25,layup success,train,x", 1,
               "expected 11 comma-separated columns, got more than 11");
    expect_bad("abc def,490,360,1000,3000,1500,1600,0.5,0.25,layup success,train", 1,
               "column 1 (YoutubeId)");
    expect_bad(",490,360,1000,3000,1500,1600,0.5,0.25,layup success,train", 1,
               "column 1 (YoutubeId)");
    expect_bad("abcdefghijk,49x,360,1000,3000,1500,1600,0.5,0.25,layup success,train", 1,
               "column 2 (VideoWidth): expected a number, got \"49x\"");
    expect_bad("abcdefghijk,490,0,1000,3000,1500,1600,0.5,0.25,layup success,train", 1,
               "column 3 (VideoHeight): expected a size in pixels");
    expect_bad("abcdefghijk,490,360,,3000,1500,1600,0.5,0.25,layup success,train", 1,
               "column 4 (ClipStartTime): expected a number, got \"\"");
    expect_bad("abcdefghijk,490,360,3000,3000,1500,1600,0.5,0.25,layup success,train", 1,
               "columns 4-5 (ClipStartTime, ClipEndTime): expected 0 <= start < end");
    expect_bad("abcdefghijk,490,360,-1,3000,1500,1600,0.5,0.25,layup success,train", 1,
               "columns 4-5");
    expect_bad("abcdefghijk,490,360,1000,3000,-5,1600,0.5,0.25,layup success,train", 1,
               "column 6 (EventStartTime): expected ms >= 0 or -1, got \"-5\"");
    expect_bad("abcdefghijk,490,360,1000,3000,1700,1600,0.5,0.25,layup success,train", 1,
               "EventEndTime 1600 is before EventStartTime 1700");
    expect_bad("abcdefghijk,490,360,1000,3000,1500,1600,1.5,0.25,layup success,train", 1,
               "column 8 (EventStartBallX): expected a fraction in [0, 1] or -1, got \"1.5\"");
    expect_bad("abcdefghijk,490,360,1000,3000,1500,1600,0.5,nan,layup success,train", 1,
               "column 9 (EventStartBallY)");
    expect_bad("abcdefghijk,490,360,1000,3000,1500,1600,0.5,0.25,layup,train", 1,
               "column 10 (EventLabel): unknown label \"layup\"");
    expect_bad("abcdefghijk,490,360,1000,3000,1500,1600,0.5,0.25,layup success,Train", 1,
               "column 11 (TrainValOrTest): expected train, val or test, got \"Train\"");
    /* Alone on line 1 (LF) rather than after a good CRLF line. */
    expect_bad("abcdefghijk,490,360,1000,3000,1500,1600,0.5,0.25,dunk,test", 0,
               "column 10 (EventLabel): unknown label \"dunk\"");
    expect_bad("abcdefghijk,490,360,1000,3000,1500,1600,0.5,0.25,slam dunk success,tst", 0,
               "column 11 (TrainValOrTest)");

    /* Empty file, missing file. */
    snprintf(path, sizeof path, "%s/empty.csv", tmpdir);
    write_text(path, "\n");
    assert_int_equal(ncaa_dataset_load(&d, path), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "empty.csv: no events"));
    snprintf(path, sizeof path, "%s/none.csv", tmpdir);
    assert_int_equal(ncaa_dataset_load(&d, path), GL_EIO);

    /* A game in two splits. */
    snprintf(path, sizeof path, "%s/straddle.csv", tmpdir);
    write_text(path, "g1,490,360,1000,3000,1500,1600,0.5,0.25,layup success,train\n"
                     "g2,490,360,1000,3000,1500,1600,0.5,0.25,layup success,test\n"
                     "g1,490,360,1000,3000,1500,1600,0.5,0.25,layup success,val\n");
    rc = ncaa_dataset_load(&d, path);
    assert_int_equal(rc, 0);
    assert_int_equal(d->num_games, 2);
    assert_int_equal(ncaa_dataset_check_games(d), GL_EFORMAT);
    assert_non_null(strstr(gl_last_error(), "game g1 is in both train (line 1) and val (line 3)"));
    ncaa_dataset_free(&d);
}

/* Every allocation failure while loading is reported and leaks nothing
 * (the sanitizer build checks the leaks). */
static void test_allocation_failures(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/alloc.csv", tmpdir);
    write_text(path, "g2,490,360,1000,3000,1500,1600,0.5,0.25,layup success,train\n"
                     "g1,490,360,1000,3000,-1,1600,-1,-1,steal success,test\n");
    int ok = 0;
    for (long n = 0; n < 100 && !ok; n++) {
        ncaa_dataset *d = NULL;
        gl_alloc_fail_after(n);
        int rc = ncaa_dataset_load(&d, path);
        gl_alloc_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(d->num_events, 2);
            assert_int_equal(d->num_games, 2);
            assert_string_equal(d->games[d->events[0].game], "g2");
            ncaa_dataset_free(&d);
            ok = 1;
        } else {
            assert_int_equal(rc, GL_ENOMEM);
            assert_null(d);
        }
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_official_csv),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_bad_rows),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, ncaa_test_setup, ncaa_test_teardown);
}
