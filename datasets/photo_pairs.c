/* photo_pairs.c — frame pairs cut from photographs, with exact ground truth
 * (conventions: photo_pairs.h). The photos are photo_set.c's. */
#include "datasets/photo_pairs.h"

#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/image.h"
#include "datasets/synth_private.h"
#include "datasets/video_ffmpeg.h"
#include "nn/mat3.h"

/* ---- the config -------------------------------------------------------------- */

photo_pairs_config photo_pairs_config_default(void)
{
    photo_pairs_config c = {
        .width = 128, .height = 128, .corner_px = 8, .crop_min = 0.4, .crop_max = 0.8,
        .rotation = 0, .patches_min = 1, .patches_max = 2, .coverage_min = 0.10,
        .coverage_max = 0.25, .patch_px_min = 2, .patch_px_max = 8, .patch_rotation = 0.1,
        .patch_scale = 0.05, .supersample = 4, .seed = 1,
    };
    return c;
}

photo_pairs_config photo_pairs_config_benchmark(int size, double magnitude, uint64_t seed)
{
    photo_pairs_config c = photo_pairs_config_default();
    c.width = c.height = size;
    c.corner_px = magnitude * size;
    c.patch_px_min = 0.25 * magnitude * size;
    c.patch_px_max = magnitude * size;
    c.seed = seed;
    return c;
}

photo_pairs_aug photo_pairs_aug_cameras(void)
{
    return (photo_pairs_aug){ .contrast = 0.2, .brightness = 10, .gamma = 0.15, .illumination = 0.1, .blur = 0.8,
                              .noise = 3, .jpeg_q_min = 2, .jpeg_q_max = 12 };
}

#define BAD(...) return gl_error(GL_EINVAL, "photo pairs config: " __VA_ARGS__)

int photo_pairs_config_validate(const photo_pairs_config *c)
{
    if (!c) BAD("NULL");
    if (c->width < 16 || c->width > 4096 || (c->width & 1))
        BAD("width must be even and in [16, 4096], got %d", c->width);
    if (c->height < 16 || c->height > 4096 || (c->height & 1))
        BAD("height must be even and in [16, 4096], got %d", c->height);
    int s = c->width < c->height ? c->width : c->height;
    if (!(c->corner_px >= 0 && c->corner_px <= s / 4.0))
        BAD("corner_px must be in [0, min(width, height) / 4 = %g], got %g", s / 4.0, c->corner_px);
    if (!(c->still >= 0 && c->still <= 1)) BAD("still must be in [0, 1], got %g", c->still);
    if (!(c->crop_min >= 0.05 && c->crop_min <= c->crop_max && c->crop_max <= 1))
        BAD("crop_min, crop_max must satisfy 0.05 <= crop_min <= crop_max <= 1, got %g, %g",
            c->crop_min, c->crop_max);
    if (!(c->rotation >= 0 && c->rotation <= M_PI))
        BAD("rotation must be in [0, pi] rad, got %g", c->rotation);
    if (c->patches_min < 0 || c->patches_min > c->patches_max ||
        c->patches_max > PHOTO_PAIRS_MAX_PATCHES)
        BAD("patches_min, patches_max must satisfy 0 <= patches_min <= patches_max <= %d, got %d, %d",
            PHOTO_PAIRS_MAX_PATCHES, c->patches_min, c->patches_max);
    if (c->patches_max > 0 &&
        !(c->coverage_min >= 0.01 && c->coverage_min <= c->coverage_max && c->coverage_max <= 0.5))
        BAD("coverage_min, coverage_max must satisfy 0.01 <= coverage_min <= coverage_max <= 0.5, "
            "got %g, %g", c->coverage_min, c->coverage_max);
    if (!(c->patch_px_min >= 0 && c->patch_px_min <= c->patch_px_max && c->patch_px_max <= s / 2.0))
        BAD("patch_px_min, patch_px_max must satisfy 0 <= patch_px_min <= patch_px_max <= "
            "min(width, height) / 2 = %g, got %g, %g", s / 2.0, c->patch_px_min, c->patch_px_max);
    if (!(c->patch_rotation >= 0 && c->patch_rotation <= M_PI))
        BAD("patch_rotation must be in [0, pi] rad, got %g", c->patch_rotation);
    if (!(c->patch_scale >= 0 && c->patch_scale <= 1))
        BAD("patch_scale must be in [0, 1], got %g", c->patch_scale);
    if (c->supersample < 1 || c->supersample > 8)
        BAD("supersample must be in [1, 8], got %d", c->supersample);
    const photo_pairs_aug *a = &c->aug;
    if (!(a->contrast >= 0 && a->contrast <= 2)) BAD("aug.contrast must be in [0, 2], got %g", a->contrast);
    if (!(a->brightness >= 0 && a->brightness <= 255))
        BAD("aug.brightness must be in [0, 255] grey levels, got %g", a->brightness);
    if (!(a->gamma >= 0 && a->gamma <= 2)) BAD("aug.gamma must be in [0, 2], got %g", a->gamma);
    if (!(a->illumination >= 0 && a->illumination < 1))
        BAD("aug.illumination must be in [0, 1), got %g", a->illumination);
    if (!(a->blur >= 0 && a->blur <= 10)) BAD("aug.blur must be in [0, 10] px, got %g", a->blur);
    if (!(a->noise >= 0 && a->noise <= 128))
        BAD("aug.noise must be in [0, 128] grey levels, got %g", a->noise);
    if (!((a->jpeg_q_min == 0 && a->jpeg_q_max == 0) ||
          (a->jpeg_q_min >= 2 && a->jpeg_q_min <= a->jpeg_q_max && a->jpeg_q_max <= 31)))
        BAD("aug.jpeg_q_min, aug.jpeg_q_max must be 0, 0 (off) or satisfy 2 <= min <= max <= 31 "
            "(FFmpeg mjpeg qscale), got %d, %d", a->jpeg_q_min, a->jpeg_q_max);
    return 0;
}

#undef BAD

/* ---- random numbers (gl_splitmix64, nn/base.h, one stream per use) and 3x3
 * matrices (nn/mat3.h) ----------------------------------------------------------- */

typedef struct { uint64_t s; } prng;

static uint64_t prng_next(prng *r) { return gl_splitmix64(&r->s); }
static double prng_unit(prng *r) { return (double)(prng_next(r) >> 11) * 0x1.0p-53; }
static double prng_range(prng *r, double lo, double hi) { return lo + (hi - lo) * prng_unit(r); }
static int prng_int(prng *r, int n) { return (int)(prng_unit(r) * n); }
/* Standard normal (Box-Muller; u1 in (0, 1]). */
static double prng_gauss(prng *r)
{
    double u1 = 1.0 - prng_unit(r), u2 = prng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(2 * M_PI * u2);
}

/* The inverse scaled to r[8] = 1 (every matrix here is a well-conditioned
 * similarity or a homography with corners moved by at most S/4). */
static void m3_inv(const double m[9], double r[9])
{
    gl_mat3_inverse(m, r);
    gl_mat3_normalize(r);
}

/* The projective map of the unit square (0,0), (1,0), (1,1), (0,1) onto the
 * quadrilateral q (4 points, x then y, in that order): Heckbert,
 * "Fundamentals of Texture Mapping and Image Warping" (1989), sec. 2.2.3. */
static void square_to_quad(const double q[8], double r[9])
{
    double x0 = q[0], y0 = q[1], x1 = q[2], y1 = q[3], x2 = q[4], y2 = q[5], x3 = q[6], y3 = q[7];
    double sx = x0 - x1 + x2 - x3, sy = y0 - y1 + y2 - y3, g = 0, h = 0;
    if (sx != 0 || sy != 0) {
        double dx1 = x1 - x2, dx2 = x3 - x2, dy1 = y1 - y2, dy2 = y3 - y2;
        double den = dx1 * dy2 - dx2 * dy1;
        g = (sx * dy2 - dx2 * sy) / den;
        h = (dx1 * sy - sx * dy1) / den;
    }
    double t[9] = { x1 - x0 + g * x1, x3 - x0 + h * x3, x0,
                    y1 - y0 + g * y1, y3 - y0 + h * y3, y0, g, h, 1 };
    memcpy(r, t, sizeof t);
}

/* ---- the scene of one pair ----------------------------------------------------- */

#define POLY_MAX 8

typedef struct {
    int poly;              /* 0 ellipse, else the number of polygon vertices */
    double a, b;           /* ellipse half axes (local units; area 1 at scale 1) */
    double vx[POLY_MAX], vy[POLY_MAX]; /* star-shaped polygon, area 1 */
    double radius;         /* bounding radius, local units */
    double cx, cy, angle, scale;       /* P: local -> frame A = T(c) R(angle) scale */
    int photo;
    double tex[9];         /* local -> texels of its photo */
    double own[9];         /* D: its own motion in frame-A pixels */
} patch;

static int patch_inside(const patch *p, double x, double y)
{
    if (!p->poly) return (x / p->a) * (x / p->a) + (y / p->b) * (y / p->b) <= 1.0;
    int in = 0; /* crossing number */
    for (int i = 0, j = p->poly - 1; i < p->poly; j = i++)
        if ((p->vy[i] > y) != (p->vy[j] > y) &&
            x < (p->vx[j] - p->vx[i]) * (y - p->vy[i]) / (p->vy[j] - p->vy[i]) + p->vx[i])
            in = !in;
    return in;
}

static void patch_local_to_frame(const patch *p, double r[9])
{
    gl_mat3_similarity(p->scale, p->angle, p->cx, p->cy, r);
}

/* Frame A's owners at pixel centres (0 background, k = patch k, front-most
 * wins); returns the covered fraction. */
static double owners(const patch *ps, int n, int W, int H, uint8_t *mask)
{
    double inv[PHOTO_PAIRS_MAX_PATCHES][9];
    for (int k = 0; k < n; k++) {
        double P[9];
        patch_local_to_frame(&ps[k], P);
        m3_inv(P, inv[k]);
    }
    long covered = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int own = 0;
            for (int k = 0; k < n; k++) {
                double r = ps[k].radius * ps[k].scale;
                if (fabs(x - ps[k].cx) > r || fabs(y - ps[k].cy) > r) continue;
                double u, v;
                gl_mat3_apply(inv[k], x, y, &u, &v);
                if (patch_inside(&ps[k], u, v)) own = k + 1;
            }
            mask[(size_t)y * W + x] = (uint8_t)own;
            covered += own != 0;
        }
    return (double)covered / ((double)W * H);
}

/* Shape, placement, texture and own motion of every patch, then sizes
 * adjusted until the patches cover coverage_min..coverage_max of frame A. */
static void patches_build(const photo_set *s, const photo_pairs_config *c, prng *r, int bg,
                          double k_bg, patch *ps, int *np, uint8_t *mask)
{
    const int W = c->width, H = c->height;
    int n = c->patches_min + prng_int(r, c->patches_max - c->patches_min + 1);
    *np = n;
    if (n == 0) return;
    double cover = prng_range(r, c->coverage_min, c->coverage_max);
    double share[PHOTO_PAIRS_MAX_PATCHES], tot = 0;
    for (int k = 0; k < n; k++) tot += share[k] = prng_range(r, 0.5, 1.0);
    for (int k = 0; k < n; k++) {
        patch *p = &ps[k];
        memset(p, 0, sizeof *p);
        if (prng_int(r, 2)) {
            double aspect = exp(prng_range(r, -log(2.0), log(2.0)));
            p->a = sqrt(aspect / M_PI);
            p->b = 1.0 / (M_PI * p->a);
            p->radius = p->a > p->b ? p->a : p->b;
        } else {
            p->poly = 5 + prng_int(r, POLY_MAX - 4);
            double area = 0;
            for (int i = 0; i < p->poly; i++) {
                double t = 2 * M_PI * (i + prng_range(r, -0.3, 0.3)) / p->poly;
                double rad = prng_range(r, 0.55, 1.0);
                p->vx[i] = rad * cos(t);
                p->vy[i] = rad * sin(t);
            }
            for (int i = 0, j = p->poly - 1; i < p->poly; j = i++)
                area += p->vx[j] * p->vy[i] - p->vx[i] * p->vy[j];
            double f = 1.0 / sqrt(0.5 * fabs(area));
            for (int i = 0; i < p->poly; i++) {
                p->vx[i] *= f;
                p->vy[i] *= f;
                double d = hypot(p->vx[i], p->vy[i]);
                if (d > p->radius) p->radius = d;
            }
        }
        p->angle = prng_range(r, 0, 2 * M_PI);
        p->scale = sqrt(cover * share[k] / tot * W * H); /* local area 1 -> that many px */
        /* inside the frame, apart from the earlier patches when possible */
        double R = p->radius * p->scale + 1;
        double lox = R, hix = W - 1 - R, loy = R, hiy = H - 1 - R;
        if (lox > hix) lox = hix = 0.5 * (W - 1);
        if (loy > hiy) loy = hiy = 0.5 * (H - 1);
        for (int tries = 0; tries < 32; tries++) {
            p->cx = prng_range(r, lox, hix);
            p->cy = prng_range(r, loy, hiy);
            int apart = 1;
            for (int j = 0; j < k; j++)
                if (hypot(p->cx - ps[j].cx, p->cy - ps[j].cy) < R + ps[j].radius * ps[j].scale + 1)
                    apart = 0;
            if (apart) break;
        }
        /* texture: another photo, at about the background's texel density */
        p->photo = s->n > 1 ? (bg + 1 + prng_int(r, s->n - 1)) % s->n : bg;
        const synth_mip *m = &s->tex[p->photo].mip[0];
        double kt = p->scale * k_bg * prng_range(r, 0.7, 1.4); /* texels per local unit */
        double half = (m->w < m->h ? m->w : m->h) * 0.5 - 2;
        if (p->radius * kt > half) kt = half / p->radius;
        double ext = p->radius * kt + 2;
        double tx = ext < m->w - ext ? prng_range(r, ext, m->w - ext) : 0.5 * m->w;
        double ty = ext < m->h - ext ? prng_range(r, ext, m->h - ext) : 0.5 * m->h;
        gl_mat3_similarity(kt, prng_range(r, 0, 2 * M_PI), tx, ty, p->tex);
        /* own motion about the centre: D = T(c + t) R S T(-c) */
        double mag = prng_range(r, c->patch_px_min, c->patch_px_max), dir = prng_range(r, 0, 2 * M_PI);
        double th = prng_range(r, -c->patch_rotation, c->patch_rotation);
        double sc = exp(prng_range(r, -c->patch_scale, c->patch_scale));
        double D[9], Tm[9] = { 1, 0, -p->cx, 0, 1, -p->cy, 0, 0, 1 };
        gl_mat3_similarity(sc, th, p->cx + mag * cos(dir), p->cy + mag * sin(dir), D);
        gl_mat3_mul(D, Tm, p->own);
    }
    /* Pixel-exact coverage: scale the patches about their centres (their
     * own motion is about the centre too, so it stays valid). */
    for (int it = 0;; it++) {
        double got = owners(ps, n, W, H, mask);
        if ((got >= c->coverage_min && got <= c->coverage_max) || it == 8) break;
        double f = got > 0 ? sqrt(cover / got) : 2.0;
        for (int k = 0; k < n; k++) ps[k].scale *= f;
    }
}

/* ---- rendering -------------------------------------------------------------------- */

typedef struct {
    double bg[9];                                /* pixel -> background texels */
    double q[PHOTO_PAIRS_MAX_PATCHES][9];        /* pixel -> patch local */
    double tx[PHOTO_PAIRS_MAX_PATCHES][9];       /* pixel -> patch texels */
    int x0[PHOTO_PAIRS_MAX_PATCHES], x1[PHOTO_PAIRS_MAX_PATCHES];
    int y0[PHOTO_PAIRS_MAX_PATCHES], y1[PHOTO_PAIRS_MAX_PATCHES];
} frame_maps;

/* frame_to_A: frame pixel -> frame-A pixel of the background (identity for
 * A, H^-1 for B); patch_to_A[k]: frame pixel -> frame-A pixel of patch k
 * before its motion (identity for A, (H D_k)^-1 for B). */
static void frame_maps_build(const double T[9], const double frame_to_A[9], const patch *ps, int n,
                             const double patch_to_A[][9], int W, int H, frame_maps *fm)
{
    gl_mat3_mul(T, frame_to_A, fm->bg);
    for (int k = 0; k < n; k++) {
        double P[9], Pi[9], qi[9];
        patch_local_to_frame(&ps[k], P);
        m3_inv(P, Pi);
        gl_mat3_mul(Pi, patch_to_A[k], fm->q[k]);
        gl_mat3_mul(ps[k].tex, fm->q[k], fm->tx[k]);
        m3_inv(fm->q[k], qi);
        double e = ps[k].radius, lx = 1e30, hx = -1e30, ly = 1e30, hy = -1e30;
        for (int i = 0; i < 4; i++) {
            double x, y;
            gl_mat3_apply(qi, (i & 1) ? e : -e, (i & 2) ? e : -e, &x, &y);
            lx = fmin(lx, x), hx = fmax(hx, x), ly = fmin(ly, y), hy = fmax(hy, y);
        }
        lx = floor(lx - 2), ly = floor(ly - 2), hx = ceil(hx + 2), hy = ceil(hy + 2);
        fm->x0[k] = lx < 0 ? 0 : lx > W ? W : (int)lx;
        fm->x1[k] = hx < 0 ? -1 : hx > W - 1 ? W - 1 : (int)hx;
        fm->y0[k] = ly < 0 ? 0 : ly > H ? H : (int)ly;
        fm->y1[k] = hy < 0 ? -1 : hy > H - 1 ? H - 1 : (int)hy;
    }
}

/* One frame into rgb [H][W][3] (floats, 0..255): synth.c's tent filter. */
static void frame_render(const photo_set *s, int bg, const patch *ps, int n, const frame_maps *fm,
                         int W, int H, int N, float *rgb)
{
    double off[8], wt[8];
    synth_tent(N, off, wt);
    const synth_texture *bgt = &s->tex[bg];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double lod_bg = synth_lod(gl_mat3_footprint(fm->bg, x, y), N), lod_p[PHOTO_PAIRS_MAX_PATCHES];
            int in[PHOTO_PAIRS_MAX_PATCHES];
            for (int k = 0; k < n; k++) {
                in[k] = x >= fm->x0[k] && x <= fm->x1[k] && y >= fm->y0[k] && y <= fm->y1[k];
                if (in[k]) lod_p[k] = synth_lod(gl_mat3_footprint(fm->tx[k], x, y), N);
            }
            double acc[3] = { 0, 0, 0 };
            for (int sy = 0; sy < N; sy++)
                for (int sx = 0; sx < N; sx++) {
                    double px = x + off[sx], py = y + off[sy], u, v;
                    float c[3];
                    gl_mat3_apply(fm->bg, px, py, &u, &v);
                    texture_sample(bgt, u, v, lod_bg, c);
                    for (int k = 0; k < n; k++) {
                        if (!in[k]) continue;
                        gl_mat3_apply(fm->q[k], px, py, &u, &v);
                        if (!patch_inside(&ps[k], u, v)) continue;
                        gl_mat3_apply(fm->tx[k], px, py, &u, &v);
                        texture_sample(&s->tex[ps[k].photo], u, v, lod_p[k], c);
                    }
                    double w = wt[sx] * wt[sy];
                    for (int ch = 0; ch < 3; ch++) acc[ch] += w * c[ch];
                }
            for (int ch = 0; ch < 3; ch++) rgb[3 * ((size_t)y * W + x) + ch] = (float)acc[ch];
        }
}

/* ---- augmentation ------------------------------------------------------------------ */

/* Separable Gaussian blur of an [H][W][3] float image, borders clamped. */
static int blur_frame(float *img, int W, int H, double sigma)
{
    int R = (int)ceil(3 * sigma);
    if (R < 1) return 0;
    float *k = gl_malloc(sizeof(float) * (2 * R + 1));
    float *tmp = gl_malloc(sizeof(float) * 3 * (size_t)W * H);
    if (!k || !tmp) {
        gl_free(k);
        gl_free(tmp);
        return GL_ENOMEM;
    }
    double sum = 0;
    for (int i = -R; i <= R; i++) sum += k[i + R] = (float)exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * R; i++) k[i] = (float)(k[i] / sum);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                float a = 0;
                for (int i = -R; i <= R; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= W ? W - 1 : x + i;
                    a += k[i + R] * img[3 * ((size_t)y * W + xx) + c];
                }
                tmp[3 * ((size_t)y * W + x) + c] = a;
            }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                float a = 0;
                for (int i = -R; i <= R; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= H ? H - 1 : y + i;
                    a += k[i + R] * tmp[3 * ((size_t)yy * W + x) + c];
                }
                img[3 * ((size_t)y * W + x) + c] = a;
            }
    gl_free(k);
    gl_free(tmp);
    return 0;
}

/* JPEG-codes RGB24 rgb in place with FFmpeg's mjpeg encoder at qscale q. */
static int jpeg_recode(uint8_t *rgb, int W, int H, int q)
{
    AVCodecContext *c = NULL;
    AVFrame *f = NULL;
    AVPacket *pkt = NULL;
    struct SwsContext *sws = NULL;
    image img = { 0 };
    int rc, ret;
    video_ffmpeg_init();
    video_ffmpeg_clear_log();
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (!codec) return gl_error(GL_EUNSUPPORTED, "photo pairs: this FFmpeg has no mjpeg encoder");
    c = avcodec_alloc_context3(codec);
    f = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!c || !f || !pkt) { rc = GL_ENOMEM; goto fail; }
    c->width = W;
    c->height = H;
    c->pix_fmt = AV_PIX_FMT_YUVJ420P;
    c->time_base = (AVRational){ 1, 25 };
    c->flags |= AV_CODEC_FLAG_QSCALE | AV_CODEC_FLAG_BITEXACT;
    c->global_quality = FF_QP2LAMBDA * q;
    c->thread_count = 1;
    if ((ret = avcodec_open2(c, codec, NULL)) < 0) {
        rc = video_ffmpeg_error(GL_EFFMPEG, "photo pairs", "cannot open the mjpeg encoder", ret);
        goto fail;
    }
    f->format = c->pix_fmt;
    f->width = W;
    f->height = H;
    if ((ret = av_frame_get_buffer(f, 0)) < 0) { rc = GL_ENOMEM; goto fail; }
    sws = sws_getContext(W, H, AV_PIX_FMT_RGB24, W, H, AV_PIX_FMT_YUVJ420P,
                         SWS_BICUBIC | SWS_ACCURATE_RND | SWS_BITEXACT, NULL, NULL, NULL);
    if (!sws) { rc = gl_error(GL_EFFMPEG, "photo pairs: cannot convert RGB24 to YUVJ420P"); goto fail; }
    const uint8_t *src[4] = { rgb, NULL, NULL, NULL };
    int ss[4] = { 3 * W, 0, 0, 0 };
    sws_scale(sws, src, ss, 0, H, f->data, f->linesize);
    f->quality = c->global_quality;
    f->pts = 0;
    if ((ret = avcodec_send_frame(c, f)) < 0 || (ret = avcodec_send_frame(c, NULL)) < 0 ||
        (ret = avcodec_receive_packet(c, pkt)) < 0) {
        rc = video_ffmpeg_error(GL_EFFMPEG, "photo pairs", "JPEG encoding failed", ret);
        goto fail;
    }
    if ((rc = image_load_memory(&img, pkt->data, (size_t)pkt->size, "photo pairs: JPEG re-coding",
                                3)) < 0)
        goto fail;
    if (img.width != W || img.height != H) {
        rc = gl_error(GL_EFORMAT, "photo pairs: the JPEG decoded to %dx%d, not %dx%d", img.width,
                      img.height, W, H);
        goto fail;
    }
    memcpy(rgb, img.data, (size_t)W * H * 3);
    rc = 0;
fail:
    image_release(&img);
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&f);
    avcodec_free_context(&c);
    return rc;
}

/* Augments float frame img (0..255) and rounds it into out (RGB24). */
static int augment(const photo_pairs_aug *a, prng *r, float *img, int W, int H, uint8_t *out)
{
    const size_t hw = (size_t)W * H;
    /* draws in a fixed order whatever is on, so turning one augmentation on
     * leaves the others' draws as they were */
    double gain = exp(prng_range(r, -a->contrast, a->contrast));
    double offset = prng_range(r, -a->brightness, a->brightness);
    double gam = exp(prng_range(r, -a->gamma, a->gamma));
    double ramp = prng_range(r, -a->illumination, a->illumination), rdir = prng_range(r, 0, 2 * M_PI);
    double sigma = prng_range(r, 0, a->blur), nsig = prng_range(r, 0, a->noise);
    int q = a->jpeg_q_max ? a->jpeg_q_min + prng_int(r, a->jpeg_q_max - a->jpeg_q_min + 1) : 0;
    prng nr = { prng_next(r) };
    if (a->contrast > 0 || a->brightness > 0 || a->gamma > 0 || a->illumination > 0) {
        double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1), half = 0.5 * (W > H ? W : H);
        double dx = cos(rdir) / half, dy = sin(rdir) / half;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double g = 1 + ramp * ((x - cx) * dx + (y - cy) * dy);
                for (int ch = 0; ch < 3; ch++) {
                    float *v = &img[3 * ((size_t)y * W + x) + ch];
                    double t = (128 + gain * (*v - 128) + offset) / 255.0;
                    t = t <= 0 ? 0 : t >= 1 ? 1 : pow(t, gam);
                    *v = (float)(255.0 * t * g);
                }
            }
    }
    if (a->blur > 0 && sigma >= 0.1) {
        int rc = blur_frame(img, W, H, sigma);
        if (rc < 0) return rc;
    }
    if (a->noise > 0)
        for (size_t i = 0; i < 3 * hw; i++) img[i] += (float)(nsig * prng_gauss(&nr));
    for (size_t i = 0; i < 3 * hw; i++) {
        double v = img[i] + 0.5;
        out[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    return q ? jpeg_recode(out, W, H, q) : 0;
}

/* ---- pairs -------------------------------------------------------------------------- */

int photo_pair_alloc(photo_pair *p, int width, int height)
{
    memset(p, 0, sizeof *p);
    if (width < 1 || height < 1 || (int64_t)width * height > (1 << 26))
        return gl_error(GL_EINVAL, "photo_pair_alloc: bad size %dx%d", width, height);
    const size_t hw = (size_t)width * height;
    p->width = width;
    p->height = height;
    p->a = gl_malloc(3 * hw);
    p->b = gl_malloc(3 * hw);
    p->grey = gl_malloc(sizeof(float) * 2 * hw);
    p->global_flow = gl_malloc(sizeof(float) * 2 * hw);
    p->local_flow = gl_malloc(sizeof(float) * 2 * hw);
    p->mask = gl_malloc(hw);
    if (!p->a || !p->b || !p->grey || !p->global_flow || !p->local_flow || !p->mask) {
        photo_pair_release(p);
        return GL_ENOMEM;
    }
    return 0;
}

void photo_pair_release(photo_pair *p)
{
    if (!p) return;
    gl_free(p->a);
    gl_free(p->b);
    gl_free(p->grey);
    gl_free(p->global_flow);
    gl_free(p->local_flow);
    gl_free(p->mask);
    memset(p, 0, sizeof *p);
}

/* The crop: T (frame-A pixel -> texels of photo m) so that frame A and frame
 * B = H(frame A's picture), each with 1.5 px of filter support, lie in the
 * photo. */
static void crop_build(const photo_pairs_config *c, prng *r, const synth_mip *m, const double Hi[9],
                       double T[9], double *k_out)
{
    const int W = c->width, H = c->height;
    double fs = W < H ? W : H, ps = m->w < m->h ? m->w : m->h;
    double k = prng_range(r, c->crop_min, c->crop_max) * ps / fs;
    double phi = prng_range(r, -c->rotation, c->rotation), cs = cos(phi), sn = sin(phi);
    double cx = 0.5 * (W - 1), cy = 0.5 * (H - 1);
    double box[8] = { -1.5, -1.5, W + 0.5, -1.5, W + 0.5, H + 0.5, -1.5, H + 0.5 };
    double lx = 1e30, hx = -1e30, ly = 1e30, hy = -1e30;
    for (int i = 0; i < 8; i++) {
        double x = box[2 * (i & 3)], y = box[2 * (i & 3) + 1];
        if (i >= 4) gl_mat3_apply(Hi, x, y, &x, &y); /* B's corners seen in A */
        double rx = cs * (x - cx) - sn * (y - cy), ry = sn * (x - cx) + cs * (y - cy);
        lx = fmin(lx, rx), hx = fmax(hx, rx), ly = fmin(ly, ry), hy = fmax(hy, ry);
    }
    /* a photo too small for the draw: zoom out until the frames fit */
    double kx = (m->w - 2.0) / (hx - lx), ky = (m->h - 2.0) / (hy - ly);
    if (k > kx) k = kx;
    if (k > ky) k = ky;
    double tx = prng_range(r, 0.5 - k * lx, m->w - 1.5 - k * hx);
    double ty = prng_range(r, 0.5 - k * ly, m->h - 1.5 - k * hy);
    /* T = translate(t) k R(phi) translate(-c) */
    double t[9] = { k * cs, -k * sn, tx - k * (cs * cx - sn * cy),
                    k * sn, k * cs,  ty - k * (sn * cx + cs * cy), 0, 0, 1 };
    memcpy(T, t, sizeof t);
    *k_out = k;
}

int photo_pairs_render(const photo_set *s, const photo_pairs_config *c, uint64_t index,
                       photo_pair *p)
{
    int rc = photo_pairs_config_validate(c);
    if (rc < 0) return rc;
    if (!s || s->n < 1) return gl_error(GL_EINVAL, "photo_pairs_render: empty photo set");
    if (!p || !p->a || p->width != c->width || p->height != c->height)
        return gl_error(GL_EINVAL, "photo_pairs_render: the pair is not allocated at %dx%d",
                        c->width, c->height);
    const int W = c->width, H = c->height;
    const size_t hw = (size_t)W * H;
    float *fr = gl_malloc(sizeof(float) * 3 * hw);
    if (!fr) return GL_ENOMEM;
    uint64_t pair_seed = synth_seed2(c->seed, index);
    prng r = { gl_mix64(pair_seed) };
    /* every photo is the background equally often over consecutive indices */
    int bg = (int)((index % (uint64_t)s->n + gl_mix64(c->seed) % (uint64_t)s->n) % (uint64_t)s->n);
    p->photo = bg;
    /* camera: corners (pixel centres) moved within +-corner_px (HomographyNet) */
    double A[8] = { 0, 0, W - 1, 0, W - 1, H - 1, 0, H - 1 }, B[8];
    for (int i = 0; i < 8; i++) B[i] = A[i] + prng_range(&r, -c->corner_px, c->corner_px);
    if (c->still > 0 && prng_range(&r, 0, 1) < c->still) memcpy(B, A, sizeof B); /* a still camera */
    double QB[9], Hm[9], Hi[9];
    double sA[9] = { 1.0 / (W - 1), 0, 0, 0, 1.0 / (H - 1), 0, 0, 0, 1 }; /* A's corners -> unit square */
    square_to_quad(B, QB);
    gl_mat3_mul(QB, sA, Hm);
    gl_mat3_normalize(Hm);
    m3_inv(Hm, Hi);
    memcpy(p->homography, Hm, sizeof Hm);
    double T[9], k_bg;
    crop_build(c, &r, &s->tex[bg].mip[0], Hi, T, &k_bg);
    patch ps[PHOTO_PAIRS_MAX_PATCHES];
    int n = 0;
    patches_build(s, c, &r, bg, k_bg, ps, &n, p->mask);
    if (n == 0) memset(p->mask, 0, hw);
    p->patches = n;
    double toA_a[PHOTO_PAIRS_MAX_PATCHES][9], toA_b[PHOTO_PAIRS_MAX_PATCHES][9];
    double I[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    for (int k = 0; k < n; k++) {
        double M[9];
        gl_mat3_mul(Hm, ps[k].own, M); /* M_k = H D_k */
        gl_mat3_normalize(M);
        memcpy(p->patch_motion[k], M, sizeof M);
        p->patch_photo[k] = ps[k].photo;
        memcpy(toA_a[k], I, sizeof I);
        m3_inv(M, toA_b[k]);
    }
    for (int k = n; k < PHOTO_PAIRS_MAX_PATCHES; k++) {
        p->patch_photo[k] = -1;
        memset(p->patch_motion[k], 0, sizeof p->patch_motion[k]);
    }
    /* ground truth (exact: the same matrices render the frames) */
    float *gx = p->global_flow, *gy = gx + hw, *lx = p->local_flow, *ly = lx + hw;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            double u, v;
            gl_mat3_apply(Hm, x, y, &u, &v);
            gx[i] = (float)(u - x);
            gy[i] = (float)(v - y);
            int k = p->mask[i];
            if (k) {
                double fu, fv;
                gl_mat3_apply(p->patch_motion[k - 1], x, y, &fu, &fv);
                lx[i] = (float)(fu - u);
                ly[i] = (float)(fv - v);
            } else {
                lx[i] = ly[i] = 0.0f;
            }
        }
    /* the frames, each augmented with its own draws */
    prng ra = { gl_mix64(synth_seed2(pair_seed, 0xA06ull)) };
    for (int f = 0; f < 2; f++) {
        frame_maps fm;
        frame_maps_build(T, f ? Hi : I, ps, n, f ? toA_b : toA_a, W, H, &fm);
        frame_render(s, bg, ps, n, &fm, W, H, c->supersample, fr);
        uint8_t *out = f ? p->b : p->a;
        if ((rc = augment(&c->aug, &ra, fr, W, H, out)) < 0) goto fail;
        float *g = p->grey + f * hw;
        for (size_t i = 0; i < hw; i++)
            g[i] = 0.299f * out[3 * i] + 0.587f * out[3 * i + 1] + 0.114f * out[3 * i + 2];
    }
    rc = 0;
fail:
    gl_free(fr);
    return rc;
}
