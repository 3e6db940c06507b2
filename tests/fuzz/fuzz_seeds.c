/*
 * fuzz_seeds.c — writes the seed inputs the sample data lacks in a small
 * size (scripts/fuzz): `fuzz_seeds DIR` makes DIR/cache/{tvl1,rgbdiff}.h5
 * (two clips, a warning and an error row each, in the current format), DIR/flo/small.flo (12x9), DIR/image/
 * small.png and DIR/video/small.avi (32x24, 6 frames). Not a fuzz target.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/cache.h"
#include "datasets/image.h"
#include "datasets/video.h"
#include "motion/flow.h"

static int write_cache(const char *path, const char *method, int channels, int homographies)
{
    cache_config cfg;
    cache_config_default(&cfg);
    snprintf(cfg.method, sizeof cfg.method, "%s", method);
    snprintf(cfg.source, sizeof cfg.source, "fuzz seed");
    cfg.height = 6;
    cfg.width = 8;
    cfg.channels = channels;
    cfg.has_homographies = homographies;
    if (channels == 3) cfg.scale = 1.0f / 255;
    cfg.total_clips = 3;
    cache_writer *w = NULL;
    int rc = cache_writer_open(path, &cfg, &w);
    if (rc < 0) return rc;
    float f[3 * 3 * 6 * 8], h[3 * 9];   /* up to 3 pairs of 3 channels */
    for (int i = 0; i < 3 * 3 * 6 * 8; i++) f[i] = (float)sin(i * 0.3) * (channels == 3 ? 0.5f : 3);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 9; i++) h[k * 9 + i] = (i % 4 == 0) ? 1.0f : 0.01f * (float)(i + k);
    for (int clip = 0; clip < 2 && rc == 0; clip++) {
        cache_clip info = { .index = clip, .label = clip, .split = 0, .src_size = 1000, .src_mtime = 1 };
        snprintf(info.name, sizeof info.name, "Class%d/v_Class%d_g01_c01.avi", clip, clip);
        cache_clip_writer *cw = NULL;
        if ((rc = cache_clip_begin(w, &info, &cw)) < 0) break;
        if ((rc = cache_clip_append(cw, 2 + clip, f, homographies ? h : NULL)) < 0 ||
            (clip == 1 && (rc = cache_clip_warn(cw, "damaged: header says 3 frames, 2 decode")) < 0)) {
            cache_clip_abort(&cw);
            break;
        }
        rc = cache_clip_commit(&cw);
    }
    if (rc == 0) rc = cache_writer_put_error(w, 2, "Class1/v_Class1_g02_c01.avi", "cannot decode");
    if (rc == 0) rc = cache_writer_finish(w);
    cache_writer_close(&w);
    return rc;
}

static int write_video(const char *path)
{
    video_writer *w = NULL;
    int rc = video_writer_open(&w, path, 32, 24, 10, NULL);
    if (rc < 0) return rc;
    uint8_t rgb[32 * 24 * 3];
    for (int t = 0; t < 6 && rc == 0; t++) {
        for (int i = 0; i < 32 * 24 * 3; i++) rgb[i] = (uint8_t)(i * 7 + t * 20);
        rc = video_writer_write_rgb(w, rgb);
    }
    int rc2 = video_writer_close(&w);
    return rc < 0 ? rc : rc2;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    char p[1024];
    const char *dirs[] = { "cache", "flo", "image", "video" };
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", argv[1], dirs[i]);
        if (gl_mkdirs(p) < 0) goto fail;
    }
    snprintf(p, sizeof p, "%s/cache/tvl1.h5", argv[1]);
    if (write_cache(p, "tvl1", 2, 1) < 0) goto fail;
    snprintf(p, sizeof p, "%s/cache/rgbdiff.h5", argv[1]);
    if (write_cache(p, "rgbdiff", 3, 0) < 0) goto fail;
    flow_field f;
    if (flow_field_new(&f, 12, 9) < 0) goto fail;
    for (int i = 0; i < 12 * 9; i++) {
        f.u[i] = (float)(i % 12) * 0.5f;
        f.v[i] = (float)(i / 12) * -0.25f;
    }
    snprintf(p, sizeof p, "%s/flo/small.flo", argv[1]);
    int rc = flow_write_flo(p, &f);
    flow_field_free(&f);
    if (rc < 0) goto fail;
    uint8_t rgb[16 * 12 * 3];
    for (int i = 0; i < 16 * 12 * 3; i++) rgb[i] = (uint8_t)(i * 13);
    snprintf(p, sizeof p, "%s/image/small.png", argv[1]);
    if (image_save_png(p, rgb, 16, 12, 3) < 0) goto fail;
    snprintf(p, sizeof p, "%s/video/small.avi", argv[1]);
    if (write_video(p) < 0) goto fail;
    return 0;
fail:
    fprintf(stderr, "fuzz_seeds: %s\n", gl_last_error());
    return 1;
}
