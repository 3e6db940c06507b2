/* motion.c — the camera's motion (a homography) and the mean local motion of
 * the objects between frames I and J of a video, with libglocal.
 *   cc motion.c $(pkg-config --cflags --libs glocal) -o motion
 *   ./motion VIDEO MODEL I J        (MODEL: a checkpoint, or - for none) */
#include <glocal/glocal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    long i = argc == 5 ? atol(argv[3]) : -1, j = argc == 5 ? atol(argv[4]) : -1;
    if (i < 0 || j < i) return fprintf(stderr, "usage: motion VIDEO MODEL|- I J (0 <= I <= J)\n"), 2;
    glocal_estimator *e = NULL;
    glocal_video *v = NULL;
    uint8_t *a = NULL, *b = NULL;
    float *local = NULL;
    double H[9], sum = 0;
    int w, h, rc;
    if ((rc = glocal_init(0, "cpu")) < 0 ||
        (rc = glocal_estimator_open(&e, strcmp(argv[2], "-") ? argv[2] : NULL, 0)) < 0 ||
        (rc = glocal_video_open(&v, argv[1], 0, 0)) < 0 ||
        (rc = glocal_video_info(v, &w, &h, NULL, NULL)) < 0) goto fail;
    a = malloc((size_t)w * h * 3), b = malloc((size_t)w * h * 3);
    local = malloc(sizeof(float) * 2 * w * h);
    if (!a || !b || !local) { rc = GLOCAL_ENOMEM; goto fail; }
    if ((rc = glocal_video_skip(v, i)) != 0 || (rc = glocal_video_read(v, a)) != 0) goto fail;
    if (j == i) memcpy(b, a, (size_t)w * h * 3);
    else if ((rc = glocal_video_skip(v, j - i - 1)) != 0 || (rc = glocal_video_read(v, b)) != 0) goto fail;
    const uint8_t *pa[1] = { a }, *pb[1] = { b };
    if ((rc = glocal_estimate(e, pa, pb, 1, w, h, H, NULL, local, NULL, NULL)) < 0) goto fail;
    for (long p = 0; p < (long)w * h; p++) sum += hypot(local[p], local[(long)w * h + p]);
    printf("frames %ld -> %ld of %dx%d\nhomography\n", i, j, w, h);
    for (int r = 0; r < 3; r++) printf("  %12.6g %12.6g %12.6g\n", H[3 * r], H[3 * r + 1], H[3 * r + 2]);
    printf("mean local motion %.4f px\n", sum / ((double)w * h));
fail:
    if (rc != 0) fprintf(stderr, "motion: %s\n", rc == GLOCAL_EOF ? "the video ends before frame J"
                                         : rc == GLOCAL_ENOMEM ? "out of memory" : glocal_last_error());
    free(local), free(b), free(a);
    glocal_video_close(&v);
    glocal_estimator_close(&e);
    return rc != 0;
}
