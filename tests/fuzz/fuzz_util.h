/*
 * fuzz_util.h — shared by the libFuzzer targets in tests/fuzz/: a private
 * temporary folder per process (removed at exit) and writing the fuzzer's
 * bytes into a file there, for parsers that read a path. Also included by
 * tests/test_fuzz_regressions.c, which feeds the saved inputs the same way.
 */
#ifndef GLOCAL_TESTS_FUZZ_UTIL_H
#define GLOCAL_TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir_path[256];

static inline void fuzz_dir_remove(void)
{
    if (!fuzz_dir_path[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir_path);
}

/* The process's temporary folder (made on first use; aborts if it cannot be). */
static inline const char *fuzz_dir(void)
{
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    const char *t = getenv("TMPDIR");
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/glocal_fuzz.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(fuzz_dir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_dir_remove);
    return fuzz_dir_path;
}

/* Writes bytes to dir/name (replacing it) and returns the path in out. */
static inline const char *fuzz_write_in(const char *dir, const char *name, const void *data, size_t size,
                                        char *out, size_t n)
{
    snprintf(out, n, "%s/%s", dir, name);
    FILE *f = fopen(out, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(out);
        abort();
    }
    return out;
}

/* Idem in the process's temporary folder. */
static inline const char *fuzz_write(const char *name, const void *data, size_t size, char *out, size_t n)
{
    return fuzz_write_in(fuzz_dir(), name, data, size, out, n);
}

/* The UCF-101 lists of split 1 from one input (fuzz_ucf101.c and its
 * regression files): classInd.txt, trainlist01.txt, testlist01.txt and, when
 * a fourth part is present, vallist01.txt, separated by form feeds ('\f').
 * Writes them into dir (removing a vallist01.txt the input does not have). */
static inline void fuzz_write_lists(const char *dir, const uint8_t *data, size_t size)
{
    static const char *const names[] = { "classInd.txt", "trainlist01.txt", "testlist01.txt",
                                         "vallist01.txt" };
    char path[512];
    const uint8_t *p = data, *end = data + size;
    int part = 0;
    for (; part < 4; part++) {
        const uint8_t *ff = p < end ? memchr(p, '\f', (size_t)(end - p)) : NULL;
        const uint8_t *stop = ff ? ff : end;
        fuzz_write_in(dir, names[part], p, (size_t)(stop - p), path, sizeof path);
        if (!ff) break;
        p = ff + 1;
    }
    if (part < 3) {
        snprintf(path, sizeof path, "%s/%s", dir, names[3]);
        unlink(path);
    }
}

#endif
