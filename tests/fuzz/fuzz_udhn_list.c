/* fuzz_udhn_list.c — CA-UDHN pair lists (datasets/udhn.h). */
#include "tests/fuzz/fuzz_util.h"

#include "datasets/udhn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write("Test_List.txt", data, size, path, sizeof path);
    udhn_list l;
    if (udhn_list_read(&l, path) == 0) {
        for (int i = 0; i < l.n; i++)
            if (!l.pairs[i].video || !l.pairs[i].image_a || !l.pairs[i].image_b || !l.pairs[i].key)
                abort();
        udhn_list_free(&l);
    }
    return 0;
}
