/* fuzz_config.c — experiment configs: libconfig's syntax through our schema
 * (experiments/config.h). */
#include "tests/fuzz/fuzz_util.h"

#include "experiments/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write("experiment.cfg", data, size, path, sizeof path);
    static exp_config c;
    exp_config_default(&c);
    if (exp_config_load(&c, path) == 0) {
        static char text[16384];
        exp_config_canonical(&c, text, sizeof text);
    }
    return 0;
}
