/*
 * video_writer.c — MPEG-4 Part 2 / XviD-tagged AVI writer (see video.h).
 *
 * Follows FFmpeg's doc/examples/encode_video.c and mux.c. The encoder runs
 * with a fixed quantiser (AV_CODEC_FLAG_QSCALE, lambda = qscale *
 * FF_QP2LAMBDA), no B-frames (AVI has no reordering delay field; packed
 * B-frames are what make old XviD AVIs awkward to read), one thread and the
 * bitexact flags on both encoder and muxer, so the same frames give the same
 * bytes on every run and machine with the same FFmpeg.
 */
#include <errno.h>
#include <fcntl.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/common.h>
#include <libavutil/imgutils.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "datasets/video.h"
#include "datasets/video_ffmpeg.h"

struct video_writer {
    char *path;
    uint8_t *padded;    /* a padded copy of the input frame for libswscale */
    int padded_bpp;
    char *tmp;
    AVFormatContext *oc;
    AVStream *st;
    AVCodecContext *enc;
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    enum AVPixelFormat sws_src;
    int width, height;
    int64_t next_pts;
    int header_written;
    int error;           /* first failure: every later call returns it */
};

video_writer_opts video_writer_opts_default(void)
{
    return (video_writer_opts){ .qscale = 2, .gop = 12 };
}

int video_writer_opts_validate(const video_writer_opts *o)
{
    if (o->qscale < 1 || o->qscale > 31)
        return gl_error(GL_EINVAL, "video_writer_opts.qscale: expected 1..31, got %d", o->qscale);
    if (o->gop < 1 || o->gop > 600)
        return gl_error(GL_EINVAL, "video_writer_opts.gop: expected 1..600, got %d", o->gop);
    return 0;
}

static void writer_free(video_writer *w)
{
    if (!w) return;
    sws_freeContext(w->sws);
    av_freep(&w->padded);
    av_packet_free(&w->pkt);
    av_frame_free(&w->frame);
    avcodec_free_context(&w->enc);
    if (w->oc) {
        if (w->oc->pb) avio_closep(&w->oc->pb);
        avformat_free_context(w->oc);
    }
    if (w->tmp) unlink(w->tmp);   /* no-op after a successful rename */
    gl_free(w->tmp);
    gl_free(w->path);
    gl_free(w);
}

int video_writer_open(video_writer **wp, const char *path, int width, int height, double fps,
                      const video_writer_opts *opts)
{
    static atomic_long counter;
    video_writer *w = NULL;
    int rc, ret;
    *wp = NULL;
    video_ffmpeg_init();
    video_ffmpeg_clear_log();
    video_writer_opts o = opts ? *opts : video_writer_opts_default();
    if ((rc = video_writer_opts_validate(&o)) < 0) return gl_error_prefix(rc, "%s", path);
    if (width < 2 || height < 2 || width > 16384 || height > 16384 || (width & 1) || (height & 1))
        return gl_error(GL_EINVAL, "%s: frame size %dx%d: expected even width and height in "
                        "[2, 16384] (MPEG-4 4:2:0)", path, width, height);
    if (!(fps > 0) || !isfinite(fps) || fps > 1000)
        return gl_error(GL_EINVAL, "%s: fps %g: expected a number in (0, 1000]", path, fps);

    w = gl_calloc(1, sizeof *w);
    if (!w) return GL_ENOMEM;
    w->width = width;
    w->height = height;
    w->sws_src = AV_PIX_FMT_NONE;
    w->path = gl_strdup(path);
    size_t n = strlen(path) + 64;
    w->tmp = gl_malloc(n);
    if (!w->path || !w->tmp) { rc = GL_ENOMEM; goto fail; }
    snprintf(w->tmp, n, "%s.tmp.%ld.%ld", path, (long)getpid(), (long)atomic_fetch_add(&counter, 1));

    ret = avformat_alloc_output_context2(&w->oc, NULL, "avi", w->tmp);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EFFMPEG, path, "cannot create the AVI muxer", ret); goto fail; }
    w->oc->flags |= AVFMT_FLAG_BITEXACT;

    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) { rc = gl_error(GL_EUNSUPPORTED, "%s: this FFmpeg has no mpeg4 encoder", path); goto fail; }
    w->st = avformat_new_stream(w->oc, NULL);
    w->enc = avcodec_alloc_context3(codec);
    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    if (!w->st || !w->enc || !w->frame || !w->pkt) { rc = gl_error(GL_ENOMEM, "%s: out of memory", path); goto fail; }

    AVRational rate = av_d2q(fps, 1000000);
    AVCodecContext *c = w->enc;
    c->codec_tag = MKTAG('X', 'V', 'I', 'D');
    c->width = width;
    c->height = height;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = av_inv_q(rate);
    c->framerate = rate;
    c->gop_size = o.gop;
    c->max_b_frames = 0;
    c->thread_count = 1;
    c->flags |= AV_CODEC_FLAG_QSCALE | AV_CODEC_FLAG_BITEXACT;
    c->global_quality = o.qscale * FF_QP2LAMBDA;
    c->sample_aspect_ratio = (AVRational){ 1, 1 };
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    ret = avcodec_open2(c, codec, NULL);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EFFMPEG, path, "cannot open the mpeg4 encoder", ret); goto fail; }
    ret = avcodec_parameters_from_context(w->st->codecpar, c);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EFFMPEG, path, "cannot copy encoder parameters", ret); goto fail; }
    w->st->codecpar->codec_tag = MKTAG('X', 'V', 'I', 'D');
    w->st->time_base = c->time_base;
    w->st->avg_frame_rate = rate;
    w->st->sample_aspect_ratio = c->sample_aspect_ratio;

    w->frame->format = c->pix_fmt;
    w->frame->width = width;
    w->frame->height = height;
    ret = av_frame_get_buffer(w->frame, 0);
    if (ret < 0) { rc = video_ffmpeg_error(GL_ENOMEM, path, "cannot allocate a frame", ret); goto fail; }

    ret = avio_open(&w->oc->pb, w->tmp, AVIO_FLAG_WRITE);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EIO, path, "cannot create the temporary file", ret); goto fail; }
    ret = avformat_write_header(w->oc, NULL);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EIO, path, "cannot write the AVI header", ret); goto fail; }
    w->header_written = 1;
    *wp = w;
    return 0;
fail:
    writer_free(w);
    return rc;
}

/* Sends `f` (NULL flushes) and writes every packet the encoder returns. */
static int writer_encode(video_writer *w, AVFrame *f)
{
    int ret = avcodec_send_frame(w->enc, f);
    if (ret < 0) return video_ffmpeg_error(GL_EFFMPEG, w->path, "encoder refused a frame", ret);
    for (;;) {
        ret = avcodec_receive_packet(w->enc, w->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return 0;
        if (ret < 0) return video_ffmpeg_error(GL_EFFMPEG, w->path, "encoding failed", ret);
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        ret = av_interleaved_write_frame(w->oc, w->pkt);
        if (ret < 0) return video_ffmpeg_error(GL_EIO, w->path, "cannot write a packet", ret);
    }
}

static int writer_write(video_writer *w, const uint8_t *pix, enum AVPixelFormat fmt, int bpp)
{
    if (!w) return gl_error(GL_EINVAL, "video_writer_write: writer is NULL");
    if (!pix) return w->error = gl_error(GL_EINVAL, "%s: frame pointer is NULL", w->path);
    if (w->error) return gl_error(w->error, "%s: the writer failed earlier", w->path);
    int rc, ret;
    w->sws = sws_getCachedContext(w->sws, w->width, w->height, fmt, w->width, w->height,
                                  AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_BITEXACT,
                                  NULL, NULL, NULL);
    if (!w->sws) { rc = gl_error(GL_EFFMPEG, "%s: cannot create the colour converter", w->path); goto fail; }
    ret = av_frame_make_writable(w->frame);
    if (ret < 0) { rc = video_ffmpeg_error(GL_ENOMEM, w->path, "cannot get a writable frame", ret); goto fail; }
    /* libswscale reads past the end of a row (16 bytes seen at 340x256 RGB24):
     * convert from a padded copy, never from the caller's exactly-sized frame. */
    int row = w->width * bpp, pstride = FFALIGN(row, 64);
    if (!w->padded) {
        w->padded = av_mallocz((size_t)pstride * w->height + 64);
        if (!w->padded) { rc = gl_error(GL_ENOMEM, "%s: out of memory", w->path); goto fail; }
        w->padded_bpp = bpp;
    } else if (w->padded_bpp < bpp) {
        rc = gl_error(GL_EINVAL, "%s: gray and RGB frames cannot be mixed in one writer", w->path);
        goto fail;
    }
    for (int y = 0; y < w->height; y++) memcpy(w->padded + (size_t)y * pstride, pix + (size_t)y * row, (size_t)row);
    const uint8_t *src[4] = { w->padded, NULL, NULL, NULL };
    int stride[4] = { pstride, 0, 0, 0 };
    if (sws_scale(w->sws, src, stride, 0, w->height, w->frame->data, w->frame->linesize) <= 0) {
        rc = gl_error(GL_EFFMPEG, "%s: colour conversion of a frame failed", w->path);
        goto fail;
    }
    w->frame->pts = w->next_pts++;
    /* The quantiser is set per frame as well: the mpeg4 encoder reads
     * frame->quality when AV_CODEC_FLAG_QSCALE is on. */
    w->frame->quality = w->enc->global_quality;
    if ((rc = writer_encode(w, w->frame)) < 0) goto fail;
    return 0;
fail:
    w->error = rc;
    return rc;
}

int video_writer_write_rgb(video_writer *w, const uint8_t *rgb)
{
    return writer_write(w, rgb, AV_PIX_FMT_RGB24, 3);
}

int video_writer_write_gray(video_writer *w, const uint8_t *gray)
{
    return writer_write(w, gray, AV_PIX_FMT_GRAY8, 1);
}

int video_writer_close(video_writer **wp)
{
    video_writer *w = *wp;
    int rc = 0, ret;
    if (!w) return 0;
    *wp = NULL;
    if (w->error) { rc = gl_error(w->error, "%s: not written: an earlier frame failed", w->path); goto fail; }
    if ((rc = writer_encode(w, NULL)) < 0) goto fail;
    ret = av_write_trailer(w->oc);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EIO, w->path, "cannot finish the AVI file", ret); goto fail; }
    ret = avio_closep(&w->oc->pb);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EIO, w->path, "cannot close the temporary file", ret); goto fail; }
    int fd = open(w->tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        rc = gl_error(GL_EIO, "%s: cannot flush %s: %s", w->path, w->tmp, strerror(e));
        goto fail;
    }
    close(fd);
    if (rename(w->tmp, w->path) != 0) {
        rc = gl_error(GL_EIO, "%s: cannot rename into place: %s", w->path, strerror(errno));
        goto fail;
    }
fail:
    writer_free(w);
    return rc;
}

void video_writer_abort(video_writer **wp)
{
    writer_free(*wp);
    *wp = NULL;
}
