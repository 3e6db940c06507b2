/* Flow fields, Middlebury .flo files, end-point error and the colour wheel
 * (Baker et al., IJCV 2011; colour code after the Middlebury flow-code
 * computeColor.cpp). See motion/flow.h. */
#include <math.h>
#include <string.h>

#include "motion/flow.h"

#define FLO_MAGIC 202021.25f
#define FLO_MAX_SIDE 65536

int flow_field_new(flow_field *f, int width, int height)
{
    memset(f, 0, sizeof *f);
    if (width <= 0 || height <= 0 || width > FLO_MAX_SIDE || height > FLO_MAX_SIDE)
        return gl_error(GL_EINVAL, "flow_field_new: size %dx%d is not in 1..%d", width, height,
                        FLO_MAX_SIDE);
    size_t n = (size_t)width * (size_t)height;
    /* One block for both planes: u then v. */
    float *p = gl_calloc(2 * n, sizeof(float));
    if (!p) return GL_ENOMEM;
    f->width = width;
    f->height = height;
    f->u = p;
    f->v = p + n;
    return 0;
}

void flow_field_free(flow_field *f)
{
    if (!f) return;
    gl_free(f->u);
    memset(f, 0, sizeof *f);
}

/* Little-endian encode/decode, independent of the host's byte order. */
static void put_u32(uint8_t *p, uint32_t x)
{
    p[0] = (uint8_t)x;
    p[1] = (uint8_t)(x >> 8);
    p[2] = (uint8_t)(x >> 16);
    p[3] = (uint8_t)(x >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_f32(uint8_t *p, float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    put_u32(p, b);
}

static float get_f32(const uint8_t *p)
{
    uint32_t b = get_u32(p);
    float x;
    memcpy(&x, &b, 4);
    return x;
}

int flow_read_flo(const char *path, flow_field *f)
{
    memset(f, 0, sizeof *f);
    void *data = NULL;
    size_t size = 0;
    int rc = gl_read_file(path, &data, &size);
    if (rc < 0) return rc;
    const uint8_t *b = data;
    if (size < 12) {
        rc = gl_error(GL_EFORMAT, "%s: %zu bytes, too short for a .flo header (12 bytes)", path,
                      size);
        goto fail;
    }
    float magic = get_f32(b);
    if (magic != FLO_MAGIC) {
        rc = gl_error(GL_EFORMAT, "%s: bytes 0-3 are not the .flo magic 202021.25 (\"PIEH\")",
                      path);
        goto fail;
    }
    int32_t w = (int32_t)get_u32(b + 4), h = (int32_t)get_u32(b + 8);
    if (w <= 0 || h <= 0 || w > FLO_MAX_SIDE || h > FLO_MAX_SIDE) {
        rc = gl_error(GL_EFORMAT, "%s: header size %dx%d is not in 1..%d", path, (int)w, (int)h,
                      FLO_MAX_SIDE);
        goto fail;
    }
    size_t n = (size_t)w * (size_t)h;
    if (size != 12 + 8 * n) {
        rc = gl_error(GL_EFORMAT, "%s: %zu bytes, expected 12 + 8*%dx%d = %zu", path, size,
                      (int)w, (int)h, 12 + 8 * n);
        goto fail;
    }
    rc = flow_field_new(f, w, h);
    if (rc < 0) goto fail;
    for (size_t i = 0; i < n; i++) {
        f->u[i] = get_f32(b + 12 + 8 * i);
        f->v[i] = get_f32(b + 16 + 8 * i);
    }
    gl_free(data);
    return 0;
fail:
    gl_free(data);
    return rc;
}

int flow_write_flo(const char *path, const flow_field *f)
{
    if (!f || !f->u || f->width <= 0 || f->height <= 0)
        return gl_error(GL_EINVAL, "flow_write_flo: %s: empty flow field", path);
    size_t n = (size_t)f->width * (size_t)f->height;
    size_t size = 12 + 8 * n;
    uint8_t *b = gl_malloc(size);
    if (!b) return GL_ENOMEM;
    put_f32(b, FLO_MAGIC);
    put_u32(b + 4, (uint32_t)f->width);
    put_u32(b + 8, (uint32_t)f->height);
    for (size_t i = 0; i < n; i++) {
        put_f32(b + 12 + 8 * i, f->u[i]);
        put_f32(b + 16 + 8 * i, f->v[i]);
    }
    int rc = gl_write_file_atomic(path, b, size);
    gl_free(b);
    return rc;
}

static int known(float u, float v)
{
    return isfinite(u) && isfinite(v) && fabsf(u) <= FLOW_UNKNOWN_THRESH &&
           fabsf(v) <= FLOW_UNKNOWN_THRESH;
}

int flow_epe(const flow_field *est, const flow_field *gt, int border, double *epe, long *count)
{
    if (!est || !gt || !est->u || !gt->u)
        return gl_error(GL_EINVAL, "flow_epe: empty flow field");
    if (est->width != gt->width || est->height != gt->height)
        return gl_error(GL_EINVAL, "flow_epe: estimate is %dx%d but ground truth is %dx%d",
                        est->width, est->height, gt->width, gt->height);
    if (border < 0 || 2 * border >= est->width || 2 * border >= est->height)
        return gl_error(GL_EINVAL, "flow_epe: border %d leaves no pixel of %dx%d", border,
                        est->width, est->height);
    double sum = 0;
    long cnt = 0;
    int w = est->width;
    for (int y = border; y < est->height - border; y++)
        for (int x = border; x < w - border; x++) {
            size_t i = (size_t)y * w + x;
            if (!known(gt->u[i], gt->v[i])) continue;
            double du = (double)est->u[i] - gt->u[i], dv = (double)est->v[i] - gt->v[i];
            sum += sqrt(du * du + dv * dv);
            cnt++;
        }
    if (cnt == 0) return gl_error(GL_EINVAL, "flow_epe: no pixel with known ground truth");
    *epe = sum / (double)cnt;
    if (count) *count = cnt;
    return 0;
}

/* The Middlebury colour wheel: 55 hues through red, yellow, green, cyan,
 * blue, magenta (segment lengths chosen by Baker et al. to be perceptually
 * even). */
enum { RY = 15, YG = 6, GC = 4, CB = 11, BM = 13, MR = 6, NCOLS = RY + YG + GC + CB + BM + MR };

static void colorwheel_make(float wheel[NCOLS][3])
{
    int k = 0;
    for (int i = 0; i < RY; i++, k++) {
        wheel[k][0] = 255; wheel[k][1] = floorf(255.f * i / RY); wheel[k][2] = 0;
    }
    for (int i = 0; i < YG; i++, k++) {
        wheel[k][0] = 255 - floorf(255.f * i / YG); wheel[k][1] = 255; wheel[k][2] = 0;
    }
    for (int i = 0; i < GC; i++, k++) {
        wheel[k][0] = 0; wheel[k][1] = 255; wheel[k][2] = floorf(255.f * i / GC);
    }
    for (int i = 0; i < CB; i++, k++) {
        wheel[k][0] = 0; wheel[k][1] = 255 - floorf(255.f * i / CB); wheel[k][2] = 255;
    }
    for (int i = 0; i < BM; i++, k++) {
        wheel[k][0] = floorf(255.f * i / BM); wheel[k][1] = 0; wheel[k][2] = 255;
    }
    for (int i = 0; i < MR; i++, k++) {
        wheel[k][0] = 255; wheel[k][1] = 0; wheel[k][2] = 255 - floorf(255.f * i / MR);
    }
}

int flow_colorize(const flow_field *f, float max_radius, uint8_t *rgb)
{
    if (!f || !f->u || !rgb) return gl_error(GL_EINVAL, "flow_colorize: empty flow field");
    size_t n = (size_t)f->width * (size_t)f->height;
    float maxrad = max_radius;
    if (!(maxrad > 0)) {
        maxrad = 0;
        for (size_t i = 0; i < n; i++)
            if (known(f->u[i], f->v[i])) {
                float r = hypotf(f->u[i], f->v[i]);
                if (r > maxrad) maxrad = r;
            }
        if (maxrad == 0) maxrad = 1; /* all zero: white picture */
    }
    float wheel[NCOLS][3];
    colorwheel_make(wheel);
    for (size_t i = 0; i < n; i++) {
        uint8_t *pix = rgb + 3 * i;
        if (!known(f->u[i], f->v[i])) {
            pix[0] = pix[1] = pix[2] = 0;
            continue;
        }
        float fx = f->u[i] / maxrad, fy = f->v[i] / maxrad;
        float rad = sqrtf(fx * fx + fy * fy);
        float a = atan2f(-fy, -fx) / (float)M_PI;
        float fk = (a + 1) / 2 * (NCOLS - 1);
        int k0 = (int)fk;
        if (k0 < 0) k0 = 0;
        if (k0 > NCOLS - 1) k0 = NCOLS - 1;
        int k1 = (k0 + 1) % NCOLS;
        float t = fk - k0;
        for (int b = 0; b < 3; b++) {
            float col = ((1 - t) * wheel[k0][b] + t * wheel[k1][b]) / 255;
            if (rad <= 1)
                col = 1 - rad * (1 - col); /* towards white at the centre */
            else
                col *= 0.75f; /* out of range: darker */
            pix[b] = (uint8_t)(255 * col);
        }
    }
    return 0;
}

int flow_gray_from_rgb24(const uint8_t *rgb, int width, int height, float *gray)
{
    if (!rgb || !gray || width <= 0 || height <= 0)
        return gl_error(GL_EINVAL, "flow_gray_from_rgb24: bad image %dx%d", width, height);
    size_t n = (size_t)width * (size_t)height;
    for (size_t i = 0; i < n; i++)
        gray[i] = 0.299f * rgb[3 * i] + 0.587f * rgb[3 * i + 1] + 0.114f * rgb[3 * i + 2];
    return 0;
}
