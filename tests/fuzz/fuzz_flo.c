/* fuzz_flo.c — Middlebury .flo files (motion/flow.h, motion/flo.c). */
#include "tests/fuzz/fuzz_util.h"

#include "motion/flow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write("field.flo", data, size, path, sizeof path);
    flow_field f;
    if (flow_read_flo(path, &f) == 0) {
        if (f.width <= 0 || f.height <= 0 || !f.u || !f.v) abort();
        flow_field_free(&f);
    }
    return 0;
}
