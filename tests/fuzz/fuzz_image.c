/* fuzz_image.c — still images (datasets/image.h: PNG, JPEG, PNM, BMP, chosen
 * from the bytes), from memory and through a file. */
#include "tests/fuzz/fuzz_util.h"

#include "datasets/image.h"

static void check(int rc, image *img, int channels)
{
    if (rc == 0) {
        if (img->width <= 0 || img->height <= 0 || img->channels != channels || !img->data) abort();
        /* Touch the last byte: the buffer must be as large as promised. */
        volatile uint8_t last = img->data[(size_t)img->width * img->height * channels - 1];
        (void)last;
    }
    image_release(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    image img;
    check(image_load_memory(&img, data, size, "fuzz", 3), &img, 3);
    /* Gray output through the file path every other input (both are cheap
     * to reach; decoding twice each time would halve the rate). */
    if (size & 1) {
        char path[512];
        fuzz_write("image", data, size, path, sizeof path);
        check(image_load(&img, path, 1), &img, 1);
    }
    return 0;
}
