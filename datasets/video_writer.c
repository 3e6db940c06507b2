/*
 * video_writer.c — MPEG-4 Part 2 (XviD-tagged in AVI) or H.264 writer, with
 * the audio of another file copied in (see video.h).
 *
 * Follows FFmpeg's doc/examples/encode_video.c, mux.c and remux.c. MPEG-4
 * runs with a fixed quantiser (AV_CODEC_FLAG_QSCALE, lambda = qscale *
 * FF_QP2LAMBDA), H.264 with x264's constant rate factor. No B-frames in AVI
 * (it has no reordering delay field; packed B-frames are what make old XviD
 * AVIs awkward to read). One encoder thread and the bitexact flags on both
 * encoder and muxer, so the same frames give the same bytes on every run and
 * machine with the same FFmpeg.
 *
 * Audio packets are copied after each video frame up to that frame's end
 * time (av_interleaved_write_frame then interleaves by timestamp), so the
 * muxer never buffers more than a frame's worth of either stream.
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
    double fps;
    int64_t next_pts;
    int header_written;
    /* audio copied from opts.audio_from (ain NULL: none) */
    char *audio_path;
    AVFormatContext *ain;
    int ain_idx;
    AVStream *ast;
    AVPacket *apkt;
    int apkt_pending;    /* apkt holds a packet not yet written */
    int ain_eof;
    int64_t a_off;       /* the source's first video time, in its audio stream's time base */
    int error;           /* first failure: every later call returns it */
};

video_writer_opts video_writer_opts_default(void)
{
    return (video_writer_opts){ .codec = VIDEO_CODEC_MPEG4, .qscale = 2, .crf = 18, .gop = 12 };
}

int video_writer_opts_validate(const video_writer_opts *o)
{
    if (o->codec != VIDEO_CODEC_MPEG4 && o->codec != VIDEO_CODEC_H264)
        return gl_error(GL_EINVAL, "video_writer_opts.codec: expected VIDEO_CODEC_MPEG4 or VIDEO_CODEC_H264, got %d",
                        (int)o->codec);
    if (o->crf < 0 || o->crf > 51)
        return gl_error(GL_EINVAL, "video_writer_opts.crf: expected 0..51, got %d", o->crf);
    if (o->qscale < 1 || o->qscale > 31)
        return gl_error(GL_EINVAL, "video_writer_opts.qscale: expected 1..31, got %d", o->qscale);
    if (o->gop < 1 || o->gop > 600)
        return gl_error(GL_EINVAL, "video_writer_opts.gop: expected 1..600, got %d", o->gop);
    return 0;
}

static void writer_free(video_writer *w)
{
    if (!w) return;
    av_packet_free(&w->apkt);
    avformat_close_input(&w->ain);
    gl_free(w->audio_path);
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

/* Opens opts.audio_from and adds a stream copying its first audio stream;
 * none there: nothing to do. */
static int writer_audio_open(video_writer *w, const char *src)
{
    int ret;
    w->audio_path = gl_strdup(src);
    w->apkt = av_packet_alloc();
    if (!w->audio_path || !w->apkt) return gl_error(GL_ENOMEM, "%s: out of memory", w->path);
    ret = avformat_open_input(&w->ain, src, NULL, NULL);
    if (ret < 0) return video_ffmpeg_error(GL_EIO, src, "cannot open it for its audio", ret);
    ret = avformat_find_stream_info(w->ain, NULL);
    if (ret < 0) return video_ffmpeg_error(GL_EFFMPEG, src, "cannot read its stream information", ret);
    int ai = av_find_best_stream(w->ain, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (ai < 0) {   /* no audio: nothing to copy */
        avformat_close_input(&w->ain);
        return 0;
    }
    AVStream *is = w->ain->streams[ai];
    if (avformat_query_codec(w->oc->oformat, is->codecpar->codec_id, FF_COMPLIANCE_NORMAL) == 0)
        return gl_error(GL_EUNSUPPORTED, "%s: its %s audio cannot go into a %s file (%s): choose another "
                        "container (.mkv holds any) or leave the audio out", src,
                        avcodec_get_name(is->codecpar->codec_id), w->oc->oformat->name, w->path);
    w->ast = avformat_new_stream(w->oc, NULL);
    if (!w->ast) return gl_error(GL_ENOMEM, "%s: out of memory", w->path);
    ret = avcodec_parameters_copy(w->ast->codecpar, is->codecpar);
    if (ret < 0) return video_ffmpeg_error(GL_EFFMPEG, w->path, "cannot copy the audio parameters", ret);
    w->ast->codecpar->codec_tag = 0;
    w->ast->time_base = is->time_base;
    w->ain_idx = ai;
    /* time 0 of the output is the source's first video frame */
    int vi = av_find_best_stream(w->ain, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    int64_t v0 = vi >= 0 ? w->ain->streams[vi]->start_time : AV_NOPTS_VALUE;
    w->a_off = v0 != AV_NOPTS_VALUE ? av_rescale_q(v0, w->ain->streams[vi]->time_base, is->time_base) : 0;
    return 0;
}

/* Copies the source's audio packets that start before `until` seconds of
 * output time. */
static int writer_copy_audio(video_writer *w, double until)
{
    while (w->ain && !w->ain_eof) {
        if (!w->apkt_pending) {
            int ret = av_read_frame(w->ain, w->apkt);
            if (ret == AVERROR_EOF) { w->ain_eof = 1; break; }
            if (ret < 0) return video_ffmpeg_error(GL_EIO, w->audio_path, "cannot read its audio", ret);
            if (w->apkt->stream_index != w->ain_idx) { av_packet_unref(w->apkt); continue; }
            w->apkt_pending = 1;
        }
        AVStream *is = w->ain->streams[w->ain_idx];
        AVPacket *p = w->apkt;
        int64_t ts = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
        double t = ts == AV_NOPTS_VALUE ? -1 : (double)(ts - w->a_off) * av_q2d(is->time_base);
        if (t >= until) break;
        w->apkt_pending = 0;
        if (t < 0) {   /* before the first video frame, or unstamped */
            av_packet_unref(p);
            continue;
        }
        if (p->pts != AV_NOPTS_VALUE) p->pts -= w->a_off;
        if (p->dts != AV_NOPTS_VALUE) p->dts -= w->a_off;
        av_packet_rescale_ts(p, is->time_base, w->ast->time_base);
        p->stream_index = w->ast->index;
        p->pos = -1;
        int ret = av_interleaved_write_frame(w->oc, p);
        if (ret < 0) return video_ffmpeg_error(GL_EIO, w->path, "cannot write an audio packet", ret);
    }
    return 0;
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
    const int h264 = o.codec == VIDEO_CODEC_H264, odd = (width & 1) || (height & 1);
    if (width < 2 || height < 2 || width > 16384 || height > 16384 || (odd && !h264))
        return gl_error(GL_EINVAL, "%s: frame size %dx%d: expected %swidth and height in "
                        "[2, 16384]%s", path, width, height, h264 ? "" : "even ", h264 ? "" : " (MPEG-4 4:2:0)");
    if (!(fps > 0) || !isfinite(fps) || fps > 1000)
        return gl_error(GL_EINVAL, "%s: fps %g: expected a number in (0, 1000]", path, fps);

    w = gl_calloc(1, sizeof *w);
    if (!w) return GL_ENOMEM;
    w->width = width;
    w->height = height;
    w->fps = fps;
    w->ain_idx = -1;
    w->sws_src = AV_PIX_FMT_NONE;
    w->path = gl_strdup(path);
    size_t n = strlen(path) + 64;
    w->tmp = gl_malloc(n);
    if (!w->path || !w->tmp) { rc = GL_ENOMEM; goto fail; }
    snprintf(w->tmp, n, "%s.tmp.%ld.%ld", path, (long)getpid(), (long)atomic_fetch_add(&counter, 1));

    /* the container from the final name (the temporary one has no extension
     * FFmpeg knows); AVI when it names none */
    const AVOutputFormat *ofmt = av_guess_format(NULL, path, NULL);
    if (!ofmt) ofmt = av_guess_format("avi", NULL, NULL);
    ret = avformat_alloc_output_context2(&w->oc, ofmt, NULL, w->tmp);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EFFMPEG, path, "cannot create the muxer", ret); goto fail; }
    w->oc->flags |= AVFMT_FLAG_BITEXACT;
    const int avi = !strcmp(w->oc->oformat->name, "avi");

    const AVCodec *codec = h264 ? avcodec_find_encoder_by_name("libx264") : avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) {
        rc = gl_error(GL_EUNSUPPORTED, "%s: this FFmpeg has no %s encoder", path, h264 ? "libx264" : "mpeg4");
        goto fail;
    }
    w->st = avformat_new_stream(w->oc, NULL);
    w->enc = avcodec_alloc_context3(codec);
    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    if (!w->st || !w->enc || !w->frame || !w->pkt) { rc = gl_error(GL_ENOMEM, "%s: out of memory", path); goto fail; }

    AVRational rate = av_d2q(fps, 1000000);
    AVCodecContext *c = w->enc;
    const unsigned tag = !h264 && avi ? MKTAG('X', 'V', 'I', 'D') : 0;
    c->codec_tag = tag;
    c->width = width;
    c->height = height;
    c->pix_fmt = odd ? AV_PIX_FMT_YUV444P : AV_PIX_FMT_YUV420P;
    c->time_base = av_inv_q(rate);
    c->framerate = rate;
    c->gop_size = o.gop;
    if (avi || !h264) c->max_b_frames = 0;
    c->thread_count = 1;
    c->flags |= AV_CODEC_FLAG_BITEXACT;
    if (!h264) {
        c->flags |= AV_CODEC_FLAG_QSCALE;
        c->global_quality = o.qscale * FF_QP2LAMBDA;
    } else {
        char crf[16];
        snprintf(crf, sizeof crf, "%d", o.crf);
        av_opt_set(c->priv_data, "crf", crf, 0);
    }
    c->sample_aspect_ratio = (AVRational){ 1, 1 };
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    ret = avcodec_open2(c, codec, NULL);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EFFMPEG, path, "cannot open the video encoder", ret); goto fail; }
    ret = avcodec_parameters_from_context(w->st->codecpar, c);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EFFMPEG, path, "cannot copy encoder parameters", ret); goto fail; }
    w->st->codecpar->codec_tag = tag;
    w->st->time_base = c->time_base;
    w->st->avg_frame_rate = rate;
    w->st->sample_aspect_ratio = c->sample_aspect_ratio;

    w->frame->format = c->pix_fmt;
    w->frame->width = width;
    w->frame->height = height;
    ret = av_frame_get_buffer(w->frame, 0);
    if (ret < 0) { rc = video_ffmpeg_error(GL_ENOMEM, path, "cannot allocate a frame", ret); goto fail; }

    if (o.audio_from && (rc = writer_audio_open(w, o.audio_from)) < 0) goto fail;

    ret = avio_open(&w->oc->pb, w->tmp, AVIO_FLAG_WRITE);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EIO, path, "cannot create the temporary file", ret); goto fail; }
    ret = avformat_write_header(w->oc, NULL);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EIO, path, "cannot write the container header", ret); goto fail; }
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
                                  w->enc->pix_fmt, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_BITEXACT,
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
    if ((rc = writer_copy_audio(w, (double)w->next_pts / w->fps)) < 0) goto fail;
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
    if ((rc = writer_copy_audio(w, (double)w->next_pts / w->fps)) < 0) goto fail;
    ret = av_write_trailer(w->oc);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EIO, w->path, "cannot finish the file", ret); goto fail; }
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
