/* fuzz_cache.c — opening, verifying and reading an HDF5 motion cache
 * (datasets/cache.h). HDF5 opens files by name, so the bytes go to a
 * temporary file first. */
#include "tests/fuzz/fuzz_util.h"

#include "datasets/cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write("cache.h5", data, size, path, sizeof path);
    cache *c = NULL;
    if (cache_open(path, 1 << 20, &c) == 0) {
        const cache_config *cfg = cache_get_config(c);
        long n = cache_clip_count(c);
        for (long i = 0; i < cache_error_count(c); i++)
            if (!cache_get_error(c, i)) abort();
        for (long i = 0; i < cache_warning_count(c); i++)
            if (!cache_get_warning(c, i) || !memchr(cache_get_warning(c, i)->message, 0, CACHE_MESSAGE_MAX))
                abort();
        cache_verify(c, NULL, NULL);
        /* The first field and homography of the first clips; buffers sized
         * from the header, so a lie there shows as an overflow. */
        size_t field = (size_t)cfg->channels * (size_t)cfg->height * (size_t)cfg->width;
        float *buf = field <= (1u << 22) ? malloc((field + 9) * sizeof(float)) : NULL;
        for (long i = 0; buf && i < n && i < 4; i++) {
            const cache_clip *cl = cache_get_clip(c, i);
            long row;
            if (!cl) abort();
            /* Lookups may miss in a damaged (unsorted) table, never lie. */
            if (cache_find_name(c, cl->name, &row) == 0 && strcmp(cache_get_clip(c, row)->name, cl->name))
                abort();
            if (cache_find_index(c, cl->index, &row) == 0 && cache_get_clip(c, row)->index != cl->index)
                abort();
            cache_read_fields(c, i, 0, 1, buf);
            cache_read_homographies(c, i, 0, 1, buf);
        }
        free(buf);
    }
    cache_close(&c);
    return 0;
}
