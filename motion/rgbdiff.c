/* RGB difference, the cheapest motion input (TSN's RGBDiff: Wang et al.,
 * "Temporal Segment Networks", ECCV 2016, sec. 3.2: "the RGB difference
 * between two consecutive frames describe the appearance change"). */
#include "motion/flow.h"

int rgbdiff_compute(const uint8_t *a, const uint8_t *b, int width, int height, float *out)
{
    if (!a || !b || !out || width <= 0 || height <= 0)
        return gl_error(GL_EINVAL, "rgbdiff_compute: bad image %dx%d", width, height);
    size_t n = (size_t)width * (size_t)height;
    float *r = out, *g = out + n, *bl = out + 2 * n;
    const float s = 1.0f / 255.0f;
    for (size_t i = 0; i < n; i++) {
        r[i] = ((int)b[3 * i] - (int)a[3 * i]) * s;
        g[i] = ((int)b[3 * i + 1] - (int)a[3 * i + 1]) * s;
        bl[i] = ((int)b[3 * i + 2] - (int)a[3 * i + 2]) * s;
    }
    return 0;
}
