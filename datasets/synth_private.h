/* synth_private.h — what synth.c and synth_write.c / synth_textures.c share:
 * the generator's layout, the textures and the seed mixer. Not public. */
#ifndef GLOCAL_DATASETS_SYNTH_PRIVATE_H
#define GLOCAL_DATASETS_SYNTH_PRIVATE_H

#include <stdint.h>

#include "datasets/synth.h"

#define SYNTH_MAX_LEVELS 8
#define SYNTH_PROCEDURAL_TEXTURES 8
#define SYNTH_MAX_TEXTURES 256

typedef struct {
    int w, h;
    float *rgb;            /* [h][w][3], 0..255 */
} synth_mip;

typedef struct {
    char name[64];
    int levels;            /* mip[0] is the (cropped) texture, mip[l] halves mip[l-1] */
    synth_mip mip[SYNTH_MAX_LEVELS];
} synth_texture;

struct synth {
    synth_config cfg;      /* cfg.textures is NULL: the folder name is not kept */
    int ntex;
    synth_texture *tex;
};

/* splitmix64's finaliser, and a seed derived from two values. */
uint64_t synth_mix(uint64_t x);
uint64_t synth_seed2(uint64_t a, uint64_t b);

/* Builds the mip pyramid of an RGB24 image (centre-cropped to a multiple of
 * 2^(levels-1)). */
int synth_texture_from_rgb(const uint8_t *rgb, int w, int h, const char *name, synth_texture *t);
int synth_texture_procedural(uint64_t seed, int size, synth_texture *t);
void synth_texture_clear(synth_texture *t);

/* Loads every .png/.jpg/.jpeg/.ppm in `dir` (sorted by name, so the choice
 * of texture per scene is reproducible) into s->tex / s->ntex. */
int synth_textures_load(const char *dir, synth *s);

/* Writes clip c's ground truth to `path` atomically (temp file + rename). */
int synth_gt_write(const char *path, const synth_clip *c, const char *cls, uint64_t scene_seed,
                   uint64_t motion_seed);

#endif
