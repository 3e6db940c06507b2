/* fuzz_ncaa.c — the NCAA annotation CSV (datasets/ncaa.h). */
#include "tests/fuzz/fuzz_util.h"

#include "datasets/ncaa.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write("events.csv", data, size, path, sizeof path);
    ncaa_dataset *d = NULL;
    if (ncaa_dataset_load(&d, path) == 0) {
        ncaa_dataset_check_games(d);
        for (long i = 0; i < d->num_events; i++)
            if (d->events[i].game < 0 || d->events[i].game >= d->num_games ||
                !ncaa_label_name(d->events[i].label))
                abort();
    }
    ncaa_dataset_free(&d);
    return 0;
}
