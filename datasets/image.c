/* image.c — still images through FFmpeg's decoders and libpng (see image.h). */
#include "datasets/image.h"

#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <png.h>
#include <string.h>

#include "datasets/video_ffmpeg.h"

/* The codec from the first bytes of the file (the formats' magic numbers). */
static enum AVCodecID image_sniff(const uint8_t *b, size_t n)
{
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return AV_CODEC_ID_PNG;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return AV_CODEC_ID_MJPEG;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return AV_CODEC_ID_BMP;
    if (n >= 3 && b[0] == 'P' && (b[2] == ' ' || b[2] == '\n' || b[2] == '\r' || b[2] == '\t')) {
        switch (b[1]) {
        case '1': case '4': return AV_CODEC_ID_PBM;
        case '2': case '5': return AV_CODEC_ID_PGM;
        case '3': case '6': return AV_CODEC_ID_PPM;
        case '7': return AV_CODEC_ID_PAM;
        }
    }
    return AV_CODEC_ID_NONE;
}

int image_load_memory(image *out, const void *bytes, size_t size, const char *name, int channels)
{
    AVCodecContext *c = NULL;
    AVPacket *pkt = NULL;
    AVFrame *f = NULL;
    struct SwsContext *sws = NULL;
    uint8_t *data = NULL, *pad = NULL;
    int rc, ret;
    char eb[128];
    memset(out, 0, sizeof *out);
    video_ffmpeg_init();
    video_ffmpeg_clear_log();
    if (channels != 1 && channels != 3)
        return gl_error(GL_EINVAL, "%s: channels must be 1 (gray) or 3 (RGB), got %d", name, channels);
    if (size == 0) return gl_error(GL_EFORMAT, "%s: empty file, expected a PNG/JPEG/PPM/PGM/BMP image", name);
    if (size > (size_t)INT32_MAX - AV_INPUT_BUFFER_PADDING_SIZE)
        return gl_error(GL_EFORMAT, "%s: %zu bytes is too large for an image", name, size);
    enum AVCodecID id = image_sniff(bytes, size);
    if (id == AV_CODEC_ID_NONE)
        return gl_error(GL_EFORMAT, "%s: not a PNG, JPEG, PPM/PGM/PBM/PAM or BMP image "
                        "(unknown first bytes)", name);
    const AVCodec *codec = avcodec_find_decoder(id);
    if (!codec) return gl_error(GL_EUNSUPPORTED, "%s: this FFmpeg has no %s decoder", name, avcodec_get_name(id));
    c = avcodec_alloc_context3(codec);
    pkt = av_packet_alloc();
    f = av_frame_alloc();
    if (!c || !pkt || !f) { rc = gl_error(GL_ENOMEM, "%s: out of memory", name); goto fail; }
    c->thread_count = 1;
    if ((ret = avcodec_open2(c, codec, NULL)) < 0) {
        rc = gl_error(GL_EFFMPEG, "%s: cannot open the %s decoder: %s", name, codec->name,
                      video_ffmpeg_strerror(ret, eb, sizeof eb));
        goto fail;
    }
    if ((ret = av_new_packet(pkt, (int)size)) < 0) { rc = gl_error(GL_ENOMEM, "%s: out of memory", name); goto fail; }
    memcpy(pkt->data, bytes, size);
    ret = avcodec_send_packet(c, pkt);
    if (ret >= 0) ret = avcodec_send_packet(c, NULL);
    if (ret >= 0 || ret == AVERROR_EOF) ret = avcodec_receive_frame(c, f);
    if (ret < 0) {
        const char *log = video_ffmpeg_last_log();
        rc = gl_error(GL_EFORMAT, "%s: corrupt or truncated %s image: %s%s%s", name, codec->name,
                      video_ffmpeg_strerror(ret, eb, sizeof eb), log[0] ? " — " : "", log);
        goto fail;
    }
    if (f->width <= 0 || f->height <= 0 || (int64_t)f->width * f->height > (1 << 28)) {
        rc = gl_error(GL_EFORMAT, "%s: implausible image size %dx%d", name, f->width, f->height);
        goto fail;
    }
    enum AVPixelFormat dst = channels == 3 ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_GRAY8;
    sws = sws_getContext(f->width, f->height, f->format, f->width, f->height, dst,
                         SWS_POINT | SWS_ACCURATE_RND | SWS_BITEXACT, NULL, NULL, NULL);
    if (!sws) {
        rc = gl_error(GL_EUNSUPPORTED, "%s: cannot convert pixel format %s to %s", name,
                      av_get_pix_fmt_name(f->format), av_get_pix_fmt_name(dst));
        goto fail;
    }
    /* libswscale's SIMD writes up to 8 bytes past the end of a row (found by
     * tests/fuzz: a 3x5 RGB PPM to gray overran its 15-byte buffer), so it
     * scales into padded rows (64-byte aligned, as video.c does) and the rows
     * are copied out. */
    size_t stride = (size_t)f->width * channels;
    int pstride = FFALIGN((int)stride, 64);
    pad = av_malloc((size_t)pstride * f->height + 64);
    data = gl_malloc(stride * f->height);
    if (!pad || !data) { rc = gl_error(GL_ENOMEM, "%s: out of memory", name); goto fail; }
    uint8_t *dd[4] = { pad, NULL, NULL, NULL };
    int ds[4] = { pstride, 0, 0, 0 };
    if (sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dd, ds) <= 0) {
        rc = gl_error(GL_EFFMPEG, "%s: converting %s to %s failed", name, av_get_pix_fmt_name(f->format),
                      av_get_pix_fmt_name(dst));
        goto fail;
    }
    for (int y = 0; y < f->height; y++) memcpy(data + (size_t)y * stride, pad + (size_t)y * pstride, stride);
    out->width = f->width;
    out->height = f->height;
    out->channels = channels;
    out->data = data;
    data = NULL;
    rc = 0;
fail:
    av_free(pad);
    gl_free(data);
    sws_freeContext(sws);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    return rc;
}

int image_load(image *out, const char *path, int channels)
{
    void *bytes = NULL;
    size_t size = 0;
    memset(out, 0, sizeof *out);
    int rc = gl_read_file(path, &bytes, &size);
    if (rc < 0) return rc;
    rc = image_load_memory(out, bytes, size, path, channels);
    gl_free(bytes);
    return rc;
}

void image_release(image *img)
{
    if (!img) return;
    gl_free(img->data);
    memset(img, 0, sizeof *img);
}

int image_save_png(const char *path, const uint8_t *data, int width, int height, int channels)
{
    if (!data) return gl_error(GL_EINVAL, "%s: image data is NULL", path);
    if (width <= 0 || height <= 0 || (int64_t)width * height > (1 << 28))
        return gl_error(GL_EINVAL, "%s: image size %dx%d: expected positive, at most 2^28 pixels",
                        path, width, height);
    if (channels != 1 && channels != 3 && channels != 4)
        return gl_error(GL_EINVAL, "%s: channels must be 1, 3 or 4, got %d", path, channels);
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)width;
    pi.height = (png_uint_32)height;
    pi.format = channels == 1 ? PNG_FORMAT_GRAY : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    png_alloc_size_t n = 0;
    /* First call sizes the buffer, second fills it (libpng's simplified API). */
    if (!png_image_write_to_memory(&pi, NULL, &n, 0, data, 0, NULL) || n == 0) {
        int rc = gl_error(GL_EFORMAT, "%s: libpng cannot encode: %s", path, pi.message);
        png_image_free(&pi);
        return rc;
    }
    void *buf = gl_malloc(n);
    if (!buf) return GL_ENOMEM;
    if (!png_image_write_to_memory(&pi, buf, &n, 0, data, 0, NULL)) {
        int rc = gl_error(GL_EFORMAT, "%s: libpng cannot encode: %s", path, pi.message);
        png_image_free(&pi);
        gl_free(buf);
        return rc;
    }
    int rc = gl_write_file_atomic(path, buf, n);
    gl_free(buf);
    return rc;
}
