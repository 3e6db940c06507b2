/* ncaa_testutil.h — what test_ncaa.c (the CSV) and test_ncaa_import.c (the
 * import) share: a temporary folder per program, made and removed by the
 * group setup and teardown, and small file helpers. Test-only: static inline
 * functions (not every includer uses each). */
#ifndef GLOCAL_TESTS_NCAA_TESTUTIL_H
#define GLOCAL_TESTS_NCAA_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tests/testutil.h"

static char tmpdir[256];

static inline int ncaa_test_setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_ncaa.");
}

static inline int ncaa_test_teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

static inline void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static inline int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

#endif
