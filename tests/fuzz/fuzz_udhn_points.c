/* fuzz_udhn_points.c — CA-UDHN point files, as scripts/udhn-points writes
 * them (datasets/udhn.h). */
#include "tests/fuzz/fuzz_util.h"

#include "datasets/udhn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write("udhn_points.txt", data, size, path, sizeof path);
    udhn_points_table t;
    if (udhn_points_read(&t, path) == 0) {
        const udhn_points *q;
        for (int i = 0; i < t.n; i++)
            if (udhn_points_find(&t, t.keys[i], &q) != 0) abort();
        udhn_points_free(&t);
    }
    return 0;
}
