/* synth.c — renderer and ground truth of the synthetic action benchmark
 * (conventions and schema: synth.h). */
#include "datasets/synth.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "datasets/synth_private.h"
#include "nn/mat3.h"

static const char *const class_names[SYNTH_MAX_CLASSES] = {
    "TranslateRight", "TranslateLeft", "TranslateUp", "TranslateDown",
    "RotateCW",       "RotateCCW",     "Grow",        "Shrink",
    "Oscillate",      "Circle",        "Bounce",      "Still",
};

const char *synth_class_name(int label0)
{
    if (label0 < 0 || label0 >= SYNTH_MAX_CLASSES) return NULL;
    return class_names[label0];
}

synth_config synth_config_default(void)
{
    synth_config c = {
        .width = 64, .height = 64, .frames = 24, .classes = 10, .camera = 1.0,
        .supersample = 4, .textures = NULL, .seed = 1,
    };
    return c;
}

int synth_config_validate(const synth_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "synth config: NULL");
    if (c->width < 16 || c->width > 4096 || (c->width & 1))
        return gl_error(GL_EINVAL, "synth config: width must be even and in [16, 4096], got %d",
                        c->width);
    if (c->height < 16 || c->height > 4096 || (c->height & 1))
        return gl_error(GL_EINVAL, "synth config: height must be even and in [16, 4096], got %d",
                        c->height);
    if (c->frames < 2 || c->frames > 10000)
        return gl_error(GL_EINVAL, "synth config: frames must be in [2, 10000], got %d", c->frames);
    if (c->classes < 1 || c->classes > SYNTH_MAX_CLASSES)
        return gl_error(GL_EINVAL, "synth config: classes must be in [1, %d], got %d",
                        SYNTH_MAX_CLASSES, c->classes);
    if (!(c->camera >= 0.0 && c->camera <= 4.0))
        return gl_error(GL_EINVAL, "synth config: camera must be in [0, 4], got %g", c->camera);
    if ((double)c->frames * c->width * c->height > (double)(1 << 27))
        return gl_error(GL_EINVAL,
                        "synth config: frames x width x height must be at most 2^27 (one clip "
                        "is held in memory, ~20 bytes a pixel), got %d x %d x %d",
                        c->frames, c->width, c->height);
    if (c->supersample < 1 || c->supersample > 8)
        return gl_error(GL_EINVAL, "synth config: supersample must be in [1, 8], got %d",
                        c->supersample);
    return 0;
}

/* ---- random numbers: gl_splitmix64 (nn/base.h), one stream per use -------- */

uint64_t synth_seed2(uint64_t a, uint64_t b) { return gl_mix64(a ^ gl_mix64(b + 0x632BE59BD9B4E019ull)); }

typedef struct { uint64_t s; } rng;

static uint64_t rng_next(rng *r) { return gl_splitmix64(&r->s); }
/* Uniform in [0, 1). */
static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }
static double rng_range(rng *r, double lo, double hi) { return lo + (hi - lo) * rng_unit(r); }
static int rng_int(rng *r, int n) { return (int)(rng_unit(r) * n); }
static double rng_sign(rng *r) { return (rng_next(r) >> 63) ? 1.0 : -1.0; }

/* ---- 3x3 matrices: nn/mat3.h's, as values (the scene code composes them in
 * expressions) ----------------------------------------------------------------- */

typedef struct { double m[9]; } mat3;

static mat3 mat3_identity(void) { return (mat3){ { 1, 0, 0, 0, 1, 0, 0, 0, 1 } }; }

static mat3 mat3_mul(mat3 a, mat3 b)
{
    mat3 r;
    gl_mat3_mul(a.m, b.m, r.m);
    return r;
}

static mat3 mat3_normalized(mat3 a)
{
    gl_mat3_normalize(a.m);
    return a;
}

/* Callers only invert well-conditioned homographies. */
static mat3 mat3_inverse(mat3 a)
{
    mat3 r;
    gl_mat3_inverse(a.m, r.m);
    return mat3_normalized(r);
}

static mat3 mat3_translate(double tx, double ty) { return (mat3){ { 1, 0, tx, 0, 1, ty, 0, 0, 1 } }; }

/* Similarity: x -> s R(theta) x + t. */
static mat3 mat3_similarity(double s, double theta, double tx, double ty)
{
    mat3 r;
    gl_mat3_similarity(s, theta, tx, ty, r.m);
    return r;
}

/* The homography taking src[i] to dst[i] (4 points, x then y): the 8x8 DLT
 * system with h22 = 1 (Hartley & Zisserman, Multiple View Geometry, 4.1),
 * solved by Gaussian elimination with partial pivoting in coordinates
 * normalised by (centre, scale) for conditioning. Returns nonzero when the
 * points are degenerate. */
static int homography_from_points(const double src[8], const double dst[8], double cx, double cy,
                                  double scale, mat3 *out)
{
    double A[8][9];
    for (int i = 0; i < 4; i++) {
        double x = (src[2 * i] - cx) / scale, y = (src[2 * i + 1] - cy) / scale;
        double u = (dst[2 * i] - cx) / scale, v = (dst[2 * i + 1] - cy) / scale;
        double r0[9] = { x, y, 1, 0, 0, 0, -u * x, -u * y, u };
        double r1[9] = { 0, 0, 0, x, y, 1, -v * x, -v * y, v };
        memcpy(A[2 * i], r0, sizeof r0);
        memcpy(A[2 * i + 1], r1, sizeof r1);
    }
    for (int c = 0; c < 8; c++) {
        int p = c;
        for (int r = c + 1; r < 8; r++)
            if (fabs(A[r][c]) > fabs(A[p][c])) p = r;
        if (fabs(A[p][c]) < 1e-12) return -1;
        if (p != c)
            for (int k = 0; k < 9; k++) {
                double t = A[c][k];
                A[c][k] = A[p][k];
                A[p][k] = t;
            }
        for (int r = 0; r < 8; r++) {
            if (r == c) continue;
            double f = A[r][c] / A[c][c];
            if (f == 0.0) continue;
            for (int k = c; k < 9; k++) A[r][k] -= f * A[c][k];
        }
    }
    mat3 hn;
    for (int i = 0; i < 8; i++) hn.m[i] = A[i][8] / A[i][i];
    hn.m[8] = 1.0;
    mat3 n = { { 1 / scale, 0, -cx / scale, 0, 1 / scale, -cy / scale, 0, 0, 1 } };
    mat3 ninv = { { scale, 0, cx, 0, scale, cy, 0, 0, 1 } };
    *out = mat3_normalized(mat3_mul(ninv, mat3_mul(hn, n)));
    return 0;
}

/* ---- textures: float RGB mip pyramids (sampled in synth_private.h) -------- */

void synth_texture_clear(synth_texture *t)
{
    for (int l = 0; l < t->levels; l++) gl_free(t->mip[l].rgb);
    memset(t, 0, sizeof *t);
}

int synth_texture_from_rgb(const uint8_t *rgb, int w, int h, const char *name, synth_texture *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    /* Crop (centred) to a multiple of 2^(levels-1) so that every level halves
     * exactly; levels stop when the short side would drop below 8. */
    int levels = 1;
    while (levels < SYNTH_MAX_LEVELS && (w >> levels) >= 8 && (h >> levels) >= 8) levels++;
    int q = 1 << (levels - 1);
    int cw = w / q * q, ch = h / q * q;
    if (cw < 8 || ch < 8)
        return gl_error(GL_EFORMAT, "texture %s: %dx%d is too small (need 8x8)", t->name, w, h);
    int x0 = (w - cw) / 2, y0 = (h - ch) / 2;
    t->levels = levels;
    for (int l = 0; l < levels; l++) {
        synth_mip *m = &t->mip[l];
        m->w = cw >> l;
        m->h = ch >> l;
        m->rgb = gl_malloc(sizeof(float) * 3 * (size_t)m->w * m->h);
        if (!m->rgb) {
            synth_texture_clear(t);
            return GL_ENOMEM;
        }
        if (l == 0) {
            for (int y = 0; y < m->h; y++)
                for (int x = 0; x < m->w; x++)
                    for (int c = 0; c < 3; c++)
                        m->rgb[3 * ((size_t)y * m->w + x) + c] =
                            rgb[3 * ((size_t)(y + y0) * w + x + x0) + c];
        } else {
            const synth_mip *p = &t->mip[l - 1];
            for (int y = 0; y < m->h; y++)
                for (int x = 0; x < m->w; x++)
                    for (int c = 0; c < 3; c++) {
                        const float *r0 = p->rgb + 3 * ((size_t)(2 * y) * p->w + 2 * x) + c;
                        const float *r1 = r0 + 3 * (size_t)p->w;
                        m->rgb[3 * ((size_t)y * m->w + x) + c] =
                            0.25f * (r0[0] + r0[3] + r1[0] + r1[3]);
                    }
        }
    }
    return 0;
}

/* Value noise (bilinear-smoothstep interpolated lattice, periodic) summed over
 * octaves; three noise fields mix three random colours. */
static float lattice(const float *g, int n, double x, double y)
{
    double fx = floor(x), fy = floor(y);
    int x0 = (int)fx, y0 = (int)fy;
    double ax = x - fx, ay = y - fy;
    ax = ax * ax * (3 - 2 * ax);
    ay = ay * ay * (3 - 2 * ay);
    int xa = ((x0 % n) + n) % n, xb = (xa + 1) % n, ya = ((y0 % n) + n) % n, yb = (ya + 1) % n;
    double top = g[ya * n + xa] + ax * (g[ya * n + xb] - g[ya * n + xa]);
    double bot = g[yb * n + xa] + ax * (g[yb * n + xb] - g[yb * n + xa]);
    return (float)(top + ay * (bot - top));
}

int synth_texture_procedural(uint64_t seed, int size, synth_texture *t)
{
    enum { OCT = 5, BASE = 6 };
    rng r = { gl_mix64(seed) };
    uint8_t *img = gl_malloc(3 * (size_t)size * size);
    float *grid = gl_malloc(sizeof(float) * 3 * OCT * (BASE << (OCT - 1)) * (BASE << (OCT - 1)));
    int rc = 0;
    if (!img || !grid) {
        rc = GL_ENOMEM;
        goto fail;
    }
    float *g[3][OCT];
    size_t off = 0;
    for (int f = 0; f < 3; f++)
        for (int o = 0; o < OCT; o++) {
            int n = BASE << o;
            g[f][o] = grid + off;
            for (int i = 0; i < n * n; i++) grid[off + i] = (float)rng_unit(&r);
            off += (size_t)n * n;
        }
    double col[3][3];
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < 3; c++) col[k][c] = rng_range(&r, 20, 235);
    double gain = rng_range(&r, 0.6, 0.85); /* octave falloff: lower = smoother */
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double w[3];
            for (int f = 0; f < 3; f++) {
                double a = 0, amp = 1, tot = 0;
                for (int o = 0; o < OCT; o++) {
                    int n = BASE << o;
                    a += amp * lattice(g[f][o], n, (double)x * n / size, (double)y * n / size);
                    tot += amp;
                    amp *= gain;
                }
                w[f] = a / tot;
            }
            /* Contrast stretch of the first field gives edges, the others tint. */
            double e = 1.0 / (1.0 + exp(-16.0 * (w[0] - 0.5)));
            for (int c = 0; c < 3; c++) {
                double v = (1 - e) * col[0][c] + e * col[1][c];
                v += (w[1] - 0.5) * 1.6 * (col[2][c] - 128) + (w[2] - 0.5) * 160;
                img[3 * ((size_t)y * size + x) + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
            }
        }
    char name[32];
    snprintf(name, sizeof name, "procedural-%d", (int)(seed & 0xffff));
    rc = synth_texture_from_rgb(img, size, size, name, t);
fail:
    gl_free(grid);
    gl_free(img);
    return rc;
}

/* ---- the generator ------------------------------------------------------- */

int synth_new(const synth_config *cfg, synth **out)
{
    *out = NULL;
    int rc = synth_config_validate(cfg);
    if (rc < 0) return rc;
    synth *s = gl_calloc(1, sizeof *s);
    if (!s) return GL_ENOMEM;
    s->cfg = *cfg;
    s->cfg.textures = NULL; /* not kept: the folder name is borrowed */
    if (cfg->textures) {
        rc = synth_textures_load(cfg->textures, s);
        if (rc < 0) goto fail;
    } else {
        s->ntex = SYNTH_PROCEDURAL_TEXTURES;
        s->tex = gl_calloc((size_t)s->ntex, sizeof *s->tex);
        if (!s->tex) {
            rc = GL_ENOMEM;
            goto fail;
        }
        /* 4 texels per frame pixel, 64..256: frames see 30-70% of a texture */
        int big = cfg->width > cfg->height ? cfg->width : cfg->height;
        int size = 4 * big < 64 ? 64 : 4 * big > 256 ? 256 : (4 * big + 31) / 32 * 32;
        for (int i = 0; i < s->ntex; i++) {
            rc = synth_texture_procedural(synth_seed2(cfg->seed, 1000 + i), size, &s->tex[i]);
            if (rc < 0) goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    synth_free(&s);
    return rc;
}

void synth_free(synth **ps)
{
    if (!ps || !*ps) return;
    synth *s = *ps;
    if (s->tex)
        for (int i = 0; i < s->ntex; i++) synth_texture_clear(&s->tex[i]);
    gl_free(s->tex);
    gl_free(s);
    *ps = NULL;
}

const synth_config *synth_get_config(const synth *s) { return &s->cfg; }

/* ---- scene and motion ---------------------------------------------------- */

typedef struct {
    int shape;             /* 0 ellipse, 1 rectangle */
    double a, b;           /* half axes, object units (world pixels at scale 1) */
    double edge;           /* soft edge width in object units; 0 = hard */
    int tex;
    mat3 tex_map;          /* object-local -> texture texels */
    /* motion */
    double cx, cy;         /* anchor (world) */
    double theta0, scale0;
    double speed;          /* px/frame, rad/frame or log-scale/frame */
    double amp, period, phase, dirx, diry, sign;
} object;

typedef struct {
    int n;
    object obj[SYNTH_MAX_OBJECTS];
    int bg_tex;
    mat3 bg_map;           /* world -> background texels */
} scene;

/* Pose of object o at frame t: object-local -> world. The class decides
 * which of centre, angle and scale change (units in synth.h). */
static mat3 object_pose(const object *o, int label, double t, double tmid)
{
    double cx = o->cx, cy = o->cy, th = o->theta0, sc = o->scale0;
    double dt = t - tmid;
    switch (label) {
    case SYNTH_TRANSLATE_RIGHT: cx += o->speed * dt; break;
    case SYNTH_TRANSLATE_LEFT: cx -= o->speed * dt; break;
    case SYNTH_TRANSLATE_UP: cy -= o->speed * dt; break;
    case SYNTH_TRANSLATE_DOWN: cy += o->speed * dt; break;
    case SYNTH_ROTATE_CW: th += o->speed * dt; break;   /* y down: +angle = clockwise */
    case SYNTH_ROTATE_CCW: th -= o->speed * dt; break;
    case SYNTH_GROW: sc *= exp(o->speed * dt); break;
    case SYNTH_SHRINK: sc *= exp(-o->speed * dt); break;
    case SYNTH_OSCILLATE: {
        double d = o->amp * sin(2 * M_PI * t / o->period + o->phase);
        cx += d * o->dirx;
        cy += d * o->diry;
        break;
    }
    case SYNTH_CIRCLE: {
        double a = o->sign * 2 * M_PI * t / o->period + o->phase;
        cx += o->amp * cos(a);
        cy += o->amp * sin(a);
        break;
    }
    case SYNTH_BOUNCE: /* hops: |sin| keeps the object above its floor line */
        cx += o->speed * dt * o->sign;
        cy -= o->amp * fabs(sin(M_PI * t / o->period + o->phase));
        break;
    default: break; /* SYNTH_STILL */
    }
    return mat3_similarity(sc, th, cx, cy);
}

/* Camera: per-frame corner displacements d_t (4 corners x 2) as a sum of
 * pan, zoom, rotation and two keystone patterns with sinusoidal amplitudes
 * (periods 16-40 frames, so the camera wanders but stays near its start),
 * then scaled so the clip's largest corner displacement is camera_px. */
static int camera_build(rng *r, int W, int H, int T, double camera_px, mat3 *Hs, mat3 *Cs)
{
    double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
    double corner[8] = { -0.5, -0.5, W - 0.5, -0.5, W - 0.5, H - 0.5, -0.5, H - 0.5 };
    double wsum = 0, wgt[6], per[6], ph[6];
    for (int k = 0; k < 6; k++) {
        wgt[k] = rng_range(r, 0.1, 1.0);
        wsum += wgt[k];
        per[k] = rng_range(r, 16, 40);
        ph[k] = rng_range(r, 0, 2 * M_PI);
    }
    double *d = gl_malloc(sizeof(double) * 8 * (size_t)(T > 1 ? T - 1 : 1));
    if (!d) return GL_ENOMEM;
    double dmax = 0;
    for (int t = 0; t < T - 1; t++) {
        double a[6];
        for (int k = 0; k < 6; k++) a[k] = wgt[k] / wsum * sin(2 * M_PI * t / per[k] + ph[k]);
        for (int i = 0; i < 4; i++) {
            double rx = corner[2 * i] - cx, ry = corner[2 * i + 1] - cy;
            double rn = hypot(rx, ry);
            double ux = rx / rn, uy = ry / rn;
            double sx = rx > 0 ? 1 : -1, sy = ry > 0 ? 1 : -1;
            /* pan x, pan y, zoom (radial), rotation (tangential), keystones */
            double dx = a[0] + a[2] * ux - a[3] * uy + a[4] * sx * sy;
            double dy = a[1] + a[2] * uy + a[3] * ux + a[5] * sx * sy;
            d[8 * t + 2 * i] = dx;
            d[8 * t + 2 * i + 1] = dy;
            double m = hypot(dx, dy);
            if (m > dmax) dmax = m;
        }
    }
    double scale = (camera_px > 0 && dmax > 0) ? camera_px / dmax : 0.0;
    Cs[0] = mat3_identity();
    for (int t = 0; t < T - 1; t++) {
        if (scale == 0.0) {
            Hs[t] = mat3_identity();
        } else {
            double dst[8];
            for (int i = 0; i < 8; i++) dst[i] = corner[i] + scale * d[8 * t + i];
            if (homography_from_points(corner, dst, cx, cy, 0.5 * (W + H), &Hs[t]) != 0) {
                gl_free(d);
                return gl_error(GL_ENUMERIC, "synth: degenerate camera homography at frame %d", t);
            }
        }
        Cs[t + 1] = mat3_normalized(mat3_mul(Cs[t], mat3_inverse(Hs[t])));
    }
    gl_free(d);
    return 0;
}

/* Scene (shared by a group): background texture and placement, the object
 * texture. */
static void scene_build(const synth *s, uint64_t scene_seed, scene *sc, int *obj_tex)
{
    rng r = { gl_mix64(scene_seed) };
    int W = s->cfg.width, H = s->cfg.height;
    sc->bg_tex = rng_int(&r, s->ntex);
    *obj_tex = s->ntex > 1 ? (sc->bg_tex + 1 + rng_int(&r, s->ntex - 1)) % s->ntex : 0;
    const synth_mip *m = &s->tex[sc->bg_tex].mip[0];
    double short_side = m->w < m->h ? m->w : m->h;
    /* the frame sees 30-70% of the texture's short side */
    double k = rng_range(&r, 0.3, 0.7) * short_side / (W < H ? W : H);
    double rot = rng_range(&r, -0.3, 0.3);
    double u0 = rng_range(&r, 0.3, 0.7) * m->w, v0 = rng_range(&r, 0.3, 0.7) * m->h;
    mat3 center = mat3_translate(-0.5 * (W - 1), -0.5 * (H - 1));
    sc->bg_map = mat3_mul(mat3_similarity(k, rot, u0, v0), center);
}

static void objects_build(const synth *s, rng *r, int label, int T, const mat3 *Cs, int obj_tex,
                          scene *sc)
{
    int W = s->cfg.width, H = s->cfg.height;
    double S = W < H ? W : H;
    /* the world point under the image centre at the middle frame: objects
     * act around it, so they stay in view while the camera wanders */
    int tm = (T - 1) / 2;
    double mx, my;
    gl_mat3_apply(Cs[tm].m, 0.5 * (W - 1), 0.5 * (H - 1), &mx, &my);
    sc->n = 1 + rng_int(r, SYNTH_MAX_OBJECTS);
    const synth_mip *tm0 = &s->tex[obj_tex].mip[0];
    double tshort = tm0->w < tm0->h ? tm0->w : tm0->h;
    for (int k = 0; k < sc->n; k++) {
        object *o = &sc->obj[k];
        o->shape = rng_int(r, 2);
        o->a = S * rng_range(r, 1.0 / 12, 1.0 / 6);
        o->b = S * rng_range(r, 1.0 / 12, 1.0 / 6);
        o->edge = rng_int(r, 2) ? rng_range(r, 1.0, 3.0) : 0.0;
        o->tex = obj_tex;
        double span = rng_range(r, 0.15, 0.4) * tshort / (2 * (o->a > o->b ? o->a : o->b));
        o->tex_map = mat3_similarity(span, rng_range(r, 0, 2 * M_PI),
                                     rng_range(r, 0.2, 0.8) * tm0->w,
                                     rng_range(r, 0.2, 0.8) * tm0->h);
        o->cx = mx + S * rng_range(r, -0.22, 0.22);
        o->cy = my + S * rng_range(r, -0.22, 0.22);
        o->theta0 = rng_range(r, -M_PI, M_PI);
        o->scale0 = 1.0;
        o->sign = rng_sign(r);
        o->phase = rng_range(r, 0, 2 * M_PI);
        double ang = rng_range(r, 0, 2 * M_PI);
        o->dirx = cos(ang);
        o->diry = sin(ang);
        switch (label) {
        case SYNTH_TRANSLATE_RIGHT: case SYNTH_TRANSLATE_LEFT:
        case SYNTH_TRANSLATE_UP: case SYNTH_TRANSLATE_DOWN:
            o->speed = S * rng_range(r, 1.0 / 48, 1.0 / 24);
            /* long clips: the whole path stays within ~1.2 S, so in view */
            if (o->speed * (T - 1) > 1.2 * S) o->speed = 1.2 * S / (T - 1);
            break;
        case SYNTH_ROTATE_CW: case SYNTH_ROTATE_CCW:
            o->speed = rng_range(r, 0.06, 0.15);
            break;
        case SYNTH_GROW: case SYNTH_SHRINK:
            /* scale exp(+-speed * (T-1)/2) around 1: 0.4x-2.5x over 24 frames,
             * never beyond that on longer clips */
            o->speed = rng_range(r, 0.045, 0.08);
            if (o->speed * (T - 1) > 2 * log(2.5)) o->speed = 2 * log(2.5) / (T - 1);
            break;
        case SYNTH_OSCILLATE:
            o->amp = S * rng_range(r, 1.0 / 10, 1.0 / 6);
            o->period = rng_range(r, 8, 16);
            break;
        case SYNTH_CIRCLE:
            o->amp = S * rng_range(r, 1.0 / 10, 1.0 / 6);
            o->period = rng_range(r, 12, 24);
            break;
        case SYNTH_BOUNCE:
            o->speed = S * rng_range(r, 0.0, 1.0 / 64);
            if (o->speed * (T - 1) > 0.6 * S) o->speed = 0.6 * S / (T - 1);
            o->amp = S * rng_range(r, 1.0 / 8, 1.0 / 5);
            o->period = rng_range(r, 8, 14);
            o->cy += 0.5 * o->amp;
            break;
        default: break;
        }
    }
}

/* ---- rendering ----------------------------------------------------------- */

static inline double shape_alpha(const object *o, double qx, double qy)
{
    double sd; /* approximate signed distance to the outline, object units */
    if (o->shape == 0) {
        double e = sqrt((qx / o->a) * (qx / o->a) + (qy / o->b) * (qy / o->b));
        sd = (e - 1.0) * (o->a < o->b ? o->a : o->b);
    } else {
        double dx = fabs(qx) - o->a, dy = fabs(qy) - o->b;
        sd = dx > dy ? dx : dy;
    }
    if (o->edge <= 0.0) return sd <= 0.0 ? 1.0 : 0.0;
    double a = 0.5 - sd / o->edge;
    return a <= 0.0 ? 0.0 : a >= 1.0 ? 1.0 : a;
}

typedef struct {
    mat3 bg;                    /* image -> background texels */
    mat3 q[SYNTH_MAX_OBJECTS];  /* image -> object-local */
    mat3 tx[SYNTH_MAX_OBJECTS]; /* image -> object texels */
    int x0[SYNTH_MAX_OBJECTS], x1[SYNTH_MAX_OBJECTS], y0[SYNTH_MAX_OBJECTS], y1[SYNTH_MAX_OBJECTS];
} frame_maps;

static void frame_maps_build(const synth *s, const scene *sc, int label, const mat3 *C, double t,
                             double tmid, frame_maps *fm)
{
    int W = s->cfg.width, H = s->cfg.height;
    fm->bg = mat3_mul(sc->bg_map, *C);
    for (int k = 0; k < sc->n; k++) {
        const object *o = &sc->obj[k];
        mat3 A = object_pose(o, label, t, tmid);
        fm->q[k] = mat3_mul(mat3_inverse(A), *C);
        fm->tx[k] = mat3_mul(o->tex_map, fm->q[k]);
        /* image bounding box of the object's local box (a homography maps
         * the box to a convex quad while the horizon is far away) */
        mat3 qi = mat3_inverse(fm->q[k]);
        double ex = o->a + o->edge, ey = o->b + o->edge;
        double lo_x = 1e30, hi_x = -1e30, lo_y = 1e30, hi_y = -1e30;
        for (int i = 0; i < 4; i++) {
            double x, y;
            gl_mat3_apply(qi.m, (i & 1) ? ex : -ex, (i & 2) ? ey : -ey, &x, &y);
            if (x < lo_x) lo_x = x;
            if (x > hi_x) hi_x = x;
            if (y < lo_y) lo_y = y;
            if (y > hi_y) hi_y = y;
        }
        lo_x = floor(lo_x - 1);
        lo_y = floor(lo_y - 1);
        hi_x = ceil(hi_x + 1);
        hi_y = ceil(hi_y + 1);
        fm->x0[k] = lo_x < 0 ? 0 : lo_x > W ? W : (int)lo_x;
        fm->x1[k] = hi_x < 0 ? 0 : hi_x > W - 1 ? W - 1 : (int)hi_x;
        fm->y0[k] = lo_y < 0 ? 0 : lo_y > H ? H : (int)lo_y;
        fm->y1[k] = hi_y < 0 ? 0 : hi_y > H - 1 ? H - 1 : (int)hi_y;
    }
}

static void frame_render(const synth *s, const scene *sc, const frame_maps *fm, uint8_t *rgb,
                         uint8_t *owner)
{
    int W = s->cfg.width, H = s->cfg.height, N = s->cfg.supersample;
    const synth_texture *bgt = &s->tex[sc->bg_tex];
    double off[8], wt[8];
    synth_tent(N, off, wt);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double lod_bg = synth_lod(gl_mat3_footprint(fm->bg.m, x, y), N);
            int inside[SYNTH_MAX_OBJECTS];
            double lod_o[SYNTH_MAX_OBJECTS];
            int own = 0;
            for (int k = 0; k < sc->n; k++) {
                inside[k] = x >= fm->x0[k] && x <= fm->x1[k] && y >= fm->y0[k] && y <= fm->y1[k];
                if (!inside[k]) continue;
                lod_o[k] = synth_lod(gl_mat3_footprint(fm->tx[k].m, x, y), N);
                double qx, qy;
                gl_mat3_apply(fm->q[k].m, x, y, &qx, &qy);
                if (shape_alpha(&sc->obj[k], qx, qy) >= 0.5) own = k + 1;
            }
            if (owner) owner[(size_t)y * W + x] = (uint8_t)own;
            if (!rgb) continue;
            double acc[3] = { 0, 0, 0 };
            for (int sy = 0; sy < N; sy++)
                for (int sx = 0; sx < N; sx++) {
                    double px = x + off[sx], py = y + off[sy], ws = wt[sx] * wt[sy];
                    double u, v;
                    float c[3], o[3];
                    gl_mat3_apply(fm->bg.m, px, py, &u, &v);
                    texture_sample(bgt, u, v, lod_bg, c);
                    for (int k = 0; k < sc->n; k++) {
                        if (!inside[k]) continue;
                        double qx, qy;
                        gl_mat3_apply(fm->q[k].m, px, py, &qx, &qy);
                        double a = shape_alpha(&sc->obj[k], qx, qy);
                        if (a <= 0.0) continue;
                        gl_mat3_apply(fm->tx[k].m, px, py, &u, &v);
                        texture_sample(&s->tex[sc->obj[k].tex], u, v, lod_o[k], o);
                        for (int ch = 0; ch < 3; ch++)
                            c[ch] = (float)(a * o[ch] + (1.0 - a) * c[ch]);
                    }
                    for (int ch = 0; ch < 3; ch++) acc[ch] += ws * c[ch];
                }
            for (int ch = 0; ch < 3; ch++) {
                double v = acc[ch] + 0.5;
                rgb[3 * ((size_t)y * W + x) + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

void synth_clip_free(synth_clip **pc)
{
    if (!pc || !*pc) return;
    synth_clip *c = *pc;
    gl_free(c->rgb);
    gl_free(c->homography);
    gl_free(c->global_flow);
    gl_free(c->local_flow);
    gl_free(c->mask);
    gl_free(c);
    *pc = NULL;
}

/* camera_frac scales the camera (the pair API draws it, so pairs cover
 * every camera speed up to the configured one). */
static int clip_render(const synth *s, int label0, uint64_t scene_seed, uint64_t motion_seed,
                       int frames, double camera_frac, synth_clip **out)
{
    *out = NULL;
    const synth_config *cfg = &s->cfg;
    if (label0 < 0 || label0 >= SYNTH_MAX_CLASSES)
        return gl_error(GL_EINVAL, "synth_clip_render: label %d is not in [0, %d)", label0,
                        SYNTH_MAX_CLASSES);
    int T = frames ? frames : cfg->frames;
    if (T < 2 || T > 10000 || (double)T * cfg->width * cfg->height > (double)(1 << 27))
        return gl_error(GL_EINVAL,
                        "synth_clip_render: frames must be in [2, 10000] with frames x width x "
                        "height <= 2^27, got %d",
                        T);
    int W = cfg->width, H = cfg->height;
    size_t hw = (size_t)W * H;
    int rc = 0;
    mat3 *Cs = NULL, *Hs = NULL;
    synth_clip *c = gl_calloc(1, sizeof *c);
    if (!c) return GL_ENOMEM;
    c->width = W;
    c->height = H;
    c->frames = T;
    c->label = label0;
    c->camera_px = camera_frac * cfg->camera * (W < H ? W : H) / 16.0;
    c->rgb = gl_malloc(3 * hw * T);
    c->homography = gl_malloc(sizeof(double) * 9 * (T - 1));
    c->global_flow = gl_malloc(sizeof(float) * 2 * hw * (T - 1));
    c->local_flow = gl_malloc(sizeof(float) * 2 * hw * (T - 1));
    c->mask = gl_malloc(hw * (T - 1));
    Cs = gl_malloc(sizeof *Cs * T);
    Hs = gl_malloc(sizeof *Hs * (T - 1));
    if (!c->rgb || !c->homography || !c->global_flow || !c->local_flow || !c->mask || !Cs || !Hs) {
        rc = GL_ENOMEM;
        goto fail;
    }
    scene sc;
    int obj_tex;
    scene_build(s, scene_seed, &sc, &obj_tex);
    rng r = { gl_mix64(motion_seed) };
    rc = camera_build(&r, W, H, T, c->camera_px, Hs, Cs);
    if (rc < 0) goto fail;
    objects_build(s, &r, label0, T, Cs, obj_tex, &sc);
    c->objects = sc.n;
    double tmid = 0.5 * (T - 1);
    frame_maps cur, next;
    frame_maps_build(s, &sc, label0, &Cs[0], 0, tmid, &cur);
    for (int t = 0; t < T; t++) {
        uint8_t *own = t < T - 1 ? c->mask + hw * t : NULL;
        frame_render(s, &sc, &cur, c->rgb + 3 * hw * t, own);
        if (t == T - 1) break;
        frame_maps_build(s, &sc, label0, &Cs[t + 1], t + 1, tmid, &next);
        memcpy(c->homography + 9 * t, Hs[t].m, sizeof(double) * 9);
        /* M_k = Q_k,t+1^-1 Q_k,t: object k's image motion t -> t+1 */
        mat3 M[SYNTH_MAX_OBJECTS];
        for (int k = 0; k < sc.n; k++) M[k] = mat3_mul(mat3_inverse(next.q[k]), cur.q[k]);
        float *gx = c->global_flow + 2 * hw * t, *gy = gx + hw;
        float *lx = c->local_flow + 2 * hw * t, *ly = lx + hw;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = (size_t)y * W + x;
                double u, v;
                gl_mat3_apply(Hs[t].m, x, y, &u, &v);
                gx[i] = (float)(u - x);
                gy[i] = (float)(v - y);
                int k = own[i];
                if (k) {
                    double fu, fv;
                    gl_mat3_apply(M[k - 1].m, x, y, &fu, &fv);
                    lx[i] = (float)(fu - u);
                    ly[i] = (float)(fv - v);
                } else {
                    lx[i] = ly[i] = 0.0f;
                }
            }
        cur = next;
    }
    gl_free(Cs);
    gl_free(Hs);
    *out = c;
    return 0;
fail:
    gl_free(Cs);
    gl_free(Hs);
    synth_clip_free(&c);
    return rc;
}

int synth_clip_render(const synth *s, int label0, uint64_t scene_seed, uint64_t motion_seed,
                      int frames, synth_clip **out)
{
    return clip_render(s, label0, scene_seed, motion_seed, frames, 1.0, out);
}

int synth_pair_render(const synth *s, uint64_t seed, synth_clip **out)
{
    rng r = { gl_mix64(seed ^ 0x5EEDull) };
    int label = rng_int(&r, s->cfg.classes);
    uint64_t scene_seed = rng_next(&r), motion_seed = rng_next(&r);
    double frac = rng_unit(&r);
    return clip_render(s, label, scene_seed, motion_seed, 2, frac, out);
}
