/* synth_private.h — what synth.c and synth_write.c / synth_textures.c share:
 * the generator's layout, the textures, their sampler and the seed mixer
 * (photo_pairs.c renders photos with the same textures and sampler). Not
 * public. */
#ifndef GLOCAL_DATASETS_SYNTH_PRIVATE_H
#define GLOCAL_DATASETS_SYNTH_PRIVATE_H

#include <math.h>
#include <stddef.h>
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

/* ---- the sampler: float RGB mip pyramids, mirrored addressing ------------
 * Inline here (hot: one call per supersample) so that other renderers of the
 * module (photo_pairs.c) sample textures exactly as the benchmark does. */

static inline int mirror_index(int i, int n)
{
    if ((unsigned)i < (unsigned)n) return i; /* the common case: no division */
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

static inline void mip_bilinear(const synth_mip *m, double u, double v, float out[3])
{
    double fu = floor(u), fv = floor(v);
    int x0 = (int)fu, y0 = (int)fv;
    float ax = (float)(u - fu), ay = (float)(v - fv);
    int xa = mirror_index(x0, m->w), xb = mirror_index(x0 + 1, m->w);
    int ya = mirror_index(y0, m->h), yb = mirror_index(y0 + 1, m->h);
    const float *p00 = m->rgb + 3 * ((size_t)ya * m->w + xa);
    const float *p01 = m->rgb + 3 * ((size_t)ya * m->w + xb);
    const float *p10 = m->rgb + 3 * ((size_t)yb * m->w + xa);
    const float *p11 = m->rgb + 3 * ((size_t)yb * m->w + xb);
    for (int c = 0; c < 3; c++) {
        float top = p00[c] + ax * (p01[c] - p00[c]);
        float bot = p10[c] + ax * (p11[c] - p10[c]);
        out[c] = top + ay * (bot - top);
    }
}

/* Trilinear read at level-0 texel coordinates (u, v) with level of detail
 * lod = log2(texels per sample). Level l's texel centre i sits at level-0
 * coordinate 2^l (i + 0.5) - 0.5 (exact: sizes are multiples of 2^levels). */
static inline void texture_sample(const synth_texture *t, double u, double v, double lod,
                                  float out[3])
{
    if (lod <= 0.0) {
        mip_bilinear(&t->mip[0], u, v, out);
        return;
    }
    static const double inv2[SYNTH_MAX_LEVELS] = { 1.0,        0.5,         0.25,
                                                   0.125,      0.0625,      0.03125,
                                                   0.015625,   0.0078125 };
    int l0 = (int)lod;
    if (l0 >= t->levels - 1) {
        double s = inv2[t->levels - 1];
        mip_bilinear(&t->mip[t->levels - 1], (u + 0.5) * s - 0.5, (v + 0.5) * s - 0.5, out);
        return;
    }
    float a[3], b[3];
    double s0 = inv2[l0], s1 = 0.5 * s0;
    mip_bilinear(&t->mip[l0], (u + 0.5) * s0 - 0.5, (v + 0.5) * s0 - 0.5, a);
    mip_bilinear(&t->mip[l0 + 1], (u + 0.5) * s1 - 0.5, (v + 0.5) * s1 - 0.5, b);
    float f = (float)(lod - l0);
    for (int c = 0; c < 3; c++) out[c] = a[c] + f * (b[c] - a[c]);
}

/* ---- rendering with the sampler (synth.c, photo_pairs.c) ------------------ */

/* A tent filter of radius 1 pixel sampled at n x n points a pixel (n =
 * supersample, 1..8): off[k] the offset of sample k in pixels, wt[k] its
 * weight along one axis (the weights sum to 1). */
static inline void synth_tent(int n, double off[8], double wt[8])
{
    double wsum = 0;
    for (int k = 0; k < n; k++) {
        off[k] = 2.0 * ((k + 0.5) / n - 0.5);
        wt[k] = 1.0 - fabs(off[k]);
        wsum += wt[k];
    }
    for (int k = 0; k < n; k++) wt[k] /= wsum;
}

/* Level of detail for samples 2/ss pixels apart (the tent's spacing), given
 * the texels per pixel (gl_mat3_footprint, nn/mat3.h). */
static inline double synth_lod(double footprint, int ss)
{
    double f = 2.0 * footprint / ss;
    return f <= 1.0 ? 0.0 : log2(f);
}

/* ---- photos: the texture folder (synth_textures.c) and photo sets
 * (photo_set.c, rendered by photo_pairs.c) ------------------------------------ */

/* .png, .jpg, .jpeg or .ppm (any case), and not a name that is only the extension. */
int synth_is_image_file(const char *name);
/* qsort comparator of char * by strcmp: names in byte order. */
int synth_cmp_names(const void *a, const void *b);

/* datasets/photo_pairs.h's photo set: n photos, their names as given (a
 * folder's file names or a list's lines) and their mip pyramids. */
struct photo_set {
    int n;
    char **names;
    synth_texture *tex;
};

/* A seed derived from two values (gl_mix64, nn/base.h, of both). */
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
