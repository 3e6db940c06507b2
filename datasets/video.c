/*
 * video.c — the FFmpeg video reader (see video.h).
 *
 * Follows FFmpeg's doc/examples/demux_decode.c: demux packets of one video
 * stream, send/receive through the decoder, convert with libswscale. Frames
 * are numbered by decoder output order of displayed pictures; timestamps are
 * best_effort_timestamp (AVI has no pts, only dts, and XviD files carry packed
 * B-frames, so the decoder's guess is the only sound one).
 */
#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/common.h>
#include <libavutil/imgutils.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/video.h"
#include "datasets/video_ffmpeg.h"

/* Consecutive decoder errors tolerated before a stream is declared broken. */
#define MAX_CONSECUTIVE_ERRORS 1000

struct video_reader {
    char *path;
    video_reader_opts o;
    video_info info;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVStream *st;
    int stream;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
    int scaled_w, scaled_h;       /* swscale's output size (before the crop) */
    int crop_x, crop_y;
    /* libswscale's SIMD writes past the end of a row (up to 8 bytes seen at
     * 490x360 RGB24), so it always scales into this padded picture (rows of
     * tmp_stride bytes, 64-byte aligned, slack at the end) and rows are copied
     * out: never into the caller's exactly-sized buffer. */
    uint8_t *tmp;
    int tmp_stride;
    int have_frame;               /* `frame` holds a picture not yet returned */
    int flushed;                  /* NULL packet sent to the decoder */
    int pkt_pending;              /* `pkt` still has to be sent */
    long next_index;
    long corrupt;
    video_ffmpeg_log log;         /* FFmpeg's lines about this file */
    double deadline;              /* gl_now() limit, 0 = none */
    int64_t origin;               /* timestamp of frame 0 (stream time base) */
    int64_t last_ts;              /* of the previous picture, AV_NOPTS_VALUE if none */
    int64_t frame_dur;            /* one frame at info.fps, in stream time base (>= 1) */
};

video_reader_opts video_reader_opts_default(void)
{
    return (video_reader_opts){ .channels = 3, .dtype = VIDEO_U8, .scaler = VIDEO_SCALE_BICUBIC };
}

int video_reader_opts_validate(const video_reader_opts *o)
{
    if (o->channels != 1 && o->channels != 3)
        return gl_error(GL_EINVAL, "video_reader_opts.channels: expected 1 or 3, got %d", o->channels);
    if (o->dtype != VIDEO_U8 && o->dtype != VIDEO_F32)
        return gl_error(GL_EINVAL, "video_reader_opts.dtype: expected VIDEO_U8 or VIDEO_F32, got %d",
                        (int)o->dtype);
    if (o->width < 0 || o->height < 0 || o->width > 16384 || o->height > 16384 ||
        (o->width == 0) != (o->height == 0))
        return gl_error(GL_EINVAL, "video_reader_opts.width/height: expected both 0 or both in "
                        "[1, 16384], got %dx%d", o->width, o->height);
    if (o->short_side < 0 || o->short_side > 16384)
        return gl_error(GL_EINVAL, "video_reader_opts.short_side: expected 0..16384, got %d", o->short_side);
    if (o->short_side > 0 && o->width > 0 && (o->width > 16384 || o->height > 16384))
        return gl_error(GL_EINVAL, "video_reader_opts: crop %dx%d too large", o->width, o->height);
    if ((unsigned)o->scaler > VIDEO_SCALE_LANCZOS)
        return gl_error(GL_EINVAL, "video_reader_opts.scaler: unknown value %d", (int)o->scaler);
    if (o->threads < 0 || o->threads > 64)
        return gl_error(GL_EINVAL, "video_reader_opts.threads: expected 0..64, got %d", o->threads);
    if ((unsigned)o->count > VIDEO_COUNT_ALWAYS)
        return gl_error(GL_EINVAL, "video_reader_opts.count: unknown value %d", (int)o->count);
    if (o->timeout_ms < 0)
        return gl_error(GL_EINVAL, "video_reader_opts.timeout_ms: expected >= 0, got %ld", o->timeout_ms);
    return 0;
}

static int interrupt_cb(void *ctx)
{
    const video_reader *r = ctx;
    return r->deadline > 0 && gl_now() > r->deadline;
}

static int timed_out(video_reader *r)
{
    if (!interrupt_cb(r)) return 0;
    return gl_error(GL_ECANCELED, "%s: gave up after %ld ms (video_reader_opts.timeout_ms)", r->path,
                    r->o.timeout_ms);
}

static int sws_flag(video_scaler s)
{
    switch (s) {
    case VIDEO_SCALE_BILINEAR: return SWS_BILINEAR;
    case VIDEO_SCALE_AREA: return SWS_AREA;
    case VIDEO_SCALE_POINT: return SWS_POINT;
    case VIDEO_SCALE_LANCZOS: return SWS_LANCZOS;
    default: return SWS_BICUBIC;
    }
}

/* Next decoded picture into r->frame: 0, GL_EOF or a negative code. Corrupt
 * packets are skipped (and counted) as the ffmpeg command does. */
static int reader_decode(video_reader *r)
{
    int errors = 0, rc, ret;
    char eb[128];
    for (;;) {
        if ((rc = timed_out(r)) < 0) return rc;
        ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret >= 0) {
            if (r->frame->width <= 0 || r->frame->height <= 0 || !r->frame->data[0]) {
                av_frame_unref(r->frame);
                r->corrupt++;
                continue;
            }
            /* The last picture drained from an XviD AVI with packed B-frames
             * has no timestamp: extrapolate from the previous one. */
            if (r->frame->best_effort_timestamp == AV_NOPTS_VALUE && r->last_ts != AV_NOPTS_VALUE)
                r->frame->best_effort_timestamp = r->last_ts + r->frame_dur;
            r->last_ts = r->frame->best_effort_timestamp;
            return 0;
        }
        if (ret == AVERROR_EOF) return GL_EOF;
        if (ret != AVERROR(EAGAIN)) {
            r->corrupt++;
            if (++errors > MAX_CONSECUTIVE_ERRORS)
                return video_ffmpeg_error(GL_EFORMAT, r->path, "the decoder keeps failing", ret);
            continue;
        }
        if (r->flushed) return GL_EOF;   /* a decoder that drained without saying EOF */
        if (!r->pkt_pending) {
            ret = av_read_frame(r->fmt, r->pkt);
            if (ret == AVERROR_EXIT)
                return gl_error(GL_ECANCELED, "%s: gave up after %ld ms (video_reader_opts.timeout_ms)", r->path, r->o.timeout_ms);
            if (ret < 0) {
                /* End of file, or a damaged container past which nothing
                 * more can be read: either way drain what the decoder holds. */
                if (ret != AVERROR_EOF) r->corrupt++;
                ret = avcodec_send_packet(r->dec, NULL);
                if (ret < 0 && ret != AVERROR_EOF)
                    return gl_error(GL_EFFMPEG, "%s: cannot flush the decoder: %s", r->path,
                                    video_ffmpeg_strerror(ret, eb, sizeof eb));
                r->flushed = 1;
                continue;
            }
            if (r->pkt->stream_index != r->stream) {
                av_packet_unref(r->pkt);
                continue;
            }
            r->pkt_pending = 1;
        }
        ret = avcodec_send_packet(r->dec, r->pkt);
        if (ret == AVERROR(EAGAIN)) continue;      /* receive first, then resend */
        r->pkt_pending = 0;
        av_packet_unref(r->pkt);
        if (ret < 0) {
            r->corrupt++;
            if (++errors > MAX_CONSECUTIVE_ERRORS)
                return video_ffmpeg_error(GL_EFORMAT, r->path, "the decoder rejects every packet", ret);
        } else {
            errors = 0;
        }
    }
}

static double frame_time(const video_reader *r, const AVFrame *f)
{
    int64_t ts = f->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) return NAN;
    return (double)(ts - r->origin) * av_q2d(r->st->time_base);
}

/* Converts r->frame into out according to the output geometry. */
static int reader_convert(video_reader *r, void *out)
{
    AVFrame *f = r->frame;
    enum AVPixelFormat dst = r->o.channels == 3 ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_GRAY8;
    /* A damaged stream can change size midway: the output keeps the size
     * announced by info, the cached context follows the input. */
    r->sws = sws_getCachedContext(r->sws, f->width, f->height, f->format, r->scaled_w, r->scaled_h,
                                  dst, sws_flag(r->o.scaler), NULL, NULL, NULL);
    if (!r->sws)
        return gl_error(GL_EUNSUPPORTED, "%s: cannot convert %s %dx%d to %s %dx%d", r->path,
                        av_get_pix_fmt_name(f->format), f->width, f->height,
                        av_get_pix_fmt_name(dst), r->scaled_w, r->scaled_h);
    const int ch = r->o.channels, ow = r->info.out_width, oh = r->info.out_height;
    uint8_t *dd[4] = { r->tmp, NULL, NULL, NULL };
    int ds[4] = { r->tmp_stride, 0, 0, 0 };
    if (sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dd, ds) <= 0)
        return gl_error(GL_EFFMPEG, "%s: converting a %s %dx%d frame failed", r->path,
                        av_get_pix_fmt_name(f->format), f->width, f->height);
    size_t row = (size_t)ow * ch;
    for (int y = 0; y < oh; y++) {
        const uint8_t *s = r->tmp + (size_t)(y + r->crop_y) * r->tmp_stride + (size_t)r->crop_x * ch;
        if (r->o.dtype == VIDEO_U8) {
            memcpy((uint8_t *)out + y * row, s, row);
        } else {
            float *d = (float *)out + y * row;
            for (size_t i = 0; i < row; i++) d[i] = s[i] * (1.0f / 255.0f);
        }
    }
    return 0;
}

static int reader_next_routed(video_reader *r, void *out, video_frame_info *fi);

/* FFmpeg's lines while decoding go to r->log (video_ffmpeg_log_route). */
static int reader_next(video_reader *r, void *out, video_frame_info *fi)
{
    video_ffmpeg_log *prev = video_ffmpeg_log_route(&r->log);
    int rc = reader_next_routed(r, out, fi);
    video_ffmpeg_log_route(prev);
    return rc;
}

static int reader_next_routed(video_reader *r, void *out, video_frame_info *fi)
{
    int rc;
    if ((rc = timed_out(r)) < 0) return rc;
    if (!r->have_frame) {
        rc = reader_decode(r);
        if (rc != 0) return rc;
    }
    r->have_frame = 0;
    if (out && (rc = reader_convert(r, out)) < 0) {
        av_frame_unref(r->frame);
        return rc;
    }
    if (fi) {
        fi->index = r->next_index;
        fi->time_s = frame_time(r, r->frame);
    }
    r->next_index++;
    av_frame_unref(r->frame);
    return 0;
}

int video_reader_read(video_reader *r, void *out, video_frame_info *fi)
{
    if (!r || !out) return gl_error(GL_EINVAL, "video_reader_read: NULL reader or buffer");
    return reader_next(r, out, fi);
}

int video_reader_skip(video_reader *r, video_frame_info *fi)
{
    if (!r) return gl_error(GL_EINVAL, "video_reader_skip: NULL reader");
    return reader_next(r, NULL, fi);
}

long video_reader_corrupt_packets(const video_reader *r) { return r ? r->corrupt : 0; }

long video_reader_log(const video_reader *r, char *buf, size_t n)
{
    if (buf && n) buf[0] = 0;
    if (!r) return 0;
    size_t len = 0;
    for (long i = 0; buf && i < r->log.count && i < VIDEO_FFMPEG_KEEP && len < n; i++) {
        int w = snprintf(buf + len, n - len, "%s%s", i ? "; " : "", r->log.first[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
    return r->log.count;
}

int video_reader_damage(const video_reader *r, long frames, char *why, size_t n)
{
    char first[400];
    long nlog = video_reader_log(r, first, sizeof first), corrupt = video_reader_corrupt_packets(r);
    int short_by = r->info.frames_source == 0 && r->info.frames - frames > 2;
    if (n) why[0] = 0;
    if (!short_by && nlog == 0 && corrupt == 0) return 0;
    size_t len = 0;
    if (short_by) len += (size_t)snprintf(why, n, "header says %ld frames, %ld decode", r->info.frames, frames);
    if ((nlog || corrupt) && len < n)
        snprintf(why + len, n - len, "%s%ld decoding errors, %ld packets rejected%s%s", len ? "; " : "", nlog,
                 corrupt, first[0] ? ": " : "", first);
    return 1;
}

void video_reader_info(const video_reader *r, video_info *info) { *info = r->info; }

void video_reader_close(video_reader **rp)
{
    video_reader *r = *rp;
    if (!r) return;
    sws_freeContext(r->sws);
    av_freep(&r->tmp);
    av_frame_free(&r->frame);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    gl_free(r->path);
    gl_free(r);
    *rp = NULL;
}

/* Output geometry from the options and the native size. */
static int reader_geometry(video_reader *r)
{
    const video_reader_opts *o = &r->o;
    int w = r->info.width, h = r->info.height;
    if (o->short_side > 0) {
        /* Shorter side -> short_side, longer side scaled by the same factor. */
        if (w <= h) {
            r->scaled_w = o->short_side;
            r->scaled_h = (int)lround((double)h * o->short_side / w);
        } else {
            r->scaled_h = o->short_side;
            r->scaled_w = (int)lround((double)w * o->short_side / h);
        }
        if (r->scaled_w < 1) r->scaled_w = 1;
        if (r->scaled_h < 1) r->scaled_h = 1;
        if (o->width > 0) {
            if (o->width > r->scaled_w || o->height > r->scaled_h)
                return gl_error(GL_EINVAL, "%s: crop %dx%d is larger than the %dx%d picture scaled "
                                "to short side %d", r->path, o->width, o->height, r->scaled_w,
                                r->scaled_h, o->short_side);
            r->info.out_width = o->width;
            r->info.out_height = o->height;
            r->crop_x = (r->scaled_w - o->width) / 2;
            r->crop_y = (r->scaled_h - o->height) / 2;
        } else {
            r->info.out_width = r->scaled_w;
            r->info.out_height = r->scaled_h;
        }
    } else if (o->width > 0) {
        r->scaled_w = r->info.out_width = o->width;
        r->scaled_h = r->info.out_height = o->height;
    } else {
        r->scaled_w = r->info.out_width = w;
        r->scaled_h = r->info.out_height = h;
    }
    r->info.out_channels = o->channels;
    r->info.out_dtype = o->dtype;
    r->info.frame_bytes = (size_t)r->info.out_width * r->info.out_height * o->channels *
                          (o->dtype == VIDEO_F32 ? sizeof(float) : 1);
    r->tmp_stride = FFALIGN(r->scaled_w * o->channels, 64);
    r->tmp = av_malloc((size_t)r->tmp_stride * r->scaled_h + 64);
    if (!r->tmp) return gl_error(GL_ENOMEM, "%s: out of memory for a %dx%d picture", r->path, r->scaled_w, r->scaled_h);
    return 0;
}

/* Long (~150 lines): FFmpeg's open sequence (input, stream, decoder, first picture), one error path. */
static int reader_open_raw(video_reader **rp, const char *path, const video_reader_opts *o)
{
    video_reader *r = NULL;
    video_ffmpeg_log *prev = video_ffmpeg_log_current();
    int rc, ret;
    struct stat sb;
    *rp = NULL;
    if (!path) return gl_error(GL_EINVAL, "video_reader_open: path is NULL");
    if (stat(path, &sb) != 0) return gl_error(GL_EIO, "%s: cannot open: %s", path, strerror(errno));
    /* mmaction2's rawframes: a folder of img_00001.jpg, img_00002.jpg, ... is
     * a video, read by FFmpeg's image2 demuxer (25 fps, its default) */
    char seq[4096 + 16];
    const AVInputFormat *ifmt = NULL;
    AVDictionary *dopt = NULL;
    if (S_ISDIR(sb.st_mode)) {
        snprintf(seq, sizeof seq, "%s/img_00001.jpg", path);
        if (stat(seq, &sb) != 0)
            return gl_error(GL_EIO, "%s: is a folder without img_00001.jpg, expected a video file or a rawframes "
                            "folder", path);
        snprintf(seq, sizeof seq, "%s/img_%%05d.jpg", path);
        ifmt = av_find_input_format("image2");
        if (av_dict_set(&dopt, "start_number", "1", 0) < 0) return gl_error(GL_ENOMEM, "%s: out of memory", path);
    }
    if (S_ISREG(sb.st_mode) && sb.st_size == 0)
        return gl_error(GL_EFORMAT, "%s: empty file (0 bytes), expected a video", path);

    r = gl_calloc(1, sizeof *r);
    if (!r) {
        av_dict_free(&dopt);
        return GL_ENOMEM;
    }
    r->o = *o;
    r->path = gl_strdup(path);
    if (!r->path) { rc = GL_ENOMEM; goto fail; }
    r->log.magic = VIDEO_FFMPEG_LOG_MAGIC;
    r->log.path = r->path;
    video_ffmpeg_log_route(&r->log);
    if (o->timeout_ms > 0) r->deadline = gl_now() + o->timeout_ms / 1000.0;
    r->fmt = avformat_alloc_context();
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->fmt || !r->pkt || !r->frame) { rc = gl_error(GL_ENOMEM, "%s: out of memory", path); goto fail; }
    r->fmt->interrupt_callback.callback = interrupt_cb;
    r->fmt->interrupt_callback.opaque = r;
    ret = avformat_open_input(&r->fmt, ifmt ? seq : path, ifmt, &dopt);
    av_dict_free(&dopt);
    if (ret < 0) {
        /* avformat_open_input frees the context on failure. */
        if (ret == AVERROR_EXIT) rc = gl_error(GL_ECANCELED, "%s: gave up opening after %ld ms", path, o->timeout_ms);
        else if (ret == AVERROR(ENOENT) || ret == AVERROR(EACCES) || ret == AVERROR(EISDIR))
            rc = video_ffmpeg_error(GL_EIO, path, "cannot open", ret);
        else
            rc = video_ffmpeg_error(GL_EFORMAT, path, "not a media file FFmpeg recognises", ret);
        goto fail;
    }
    ret = avformat_find_stream_info(r->fmt, NULL);
    if (ret < 0) {
        rc = ret == AVERROR_EXIT ? gl_error(GL_ECANCELED, "%s: gave up reading stream information after %ld ms", path, o->timeout_ms)
                                 : video_ffmpeg_error(GL_EFORMAT, path, "cannot read stream information", ret);
        goto fail;
    }
    const AVCodec *codec = NULL;
    ret = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (ret == AVERROR_STREAM_NOT_FOUND) {
        rc = gl_error(GL_EFORMAT, "%s: no video stream (%s file with %u stream%s)", path,
                      r->fmt->iformat->name, r->fmt->nb_streams, r->fmt->nb_streams == 1 ? "" : "s");
        goto fail;
    }
    if (ret == AVERROR_DECODER_NOT_FOUND || (ret >= 0 && !codec)) {
        int idx = ret >= 0 ? ret : 0;
        for (unsigned i = 0; ret < 0 && i < r->fmt->nb_streams; i++)
            if (r->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) { idx = (int)i; break; }
        rc = gl_error(GL_EUNSUPPORTED, "%s: video codec '%s' is not supported by this FFmpeg", path,
                      avcodec_get_name(r->fmt->streams[idx]->codecpar->codec_id));
        goto fail;
    }
    if (ret < 0) { rc = video_ffmpeg_error(GL_EFORMAT, path, "cannot select the video stream", ret); goto fail; }
    r->stream = ret;
    r->st = r->fmt->streams[ret];
    for (unsigned i = 0; i < r->fmt->nb_streams; i++)
        if ((int)i != r->stream) r->fmt->streams[i]->discard = AVDISCARD_ALL;

    r->dec = avcodec_alloc_context3(codec);
    if (!r->dec) { rc = gl_error(GL_ENOMEM, "%s: out of memory", path); goto fail; }
    ret = avcodec_parameters_to_context(r->dec, r->st->codecpar);
    if (ret < 0) { rc = video_ffmpeg_error(GL_EFFMPEG, path, "cannot set up the decoder", ret); goto fail; }
    r->dec->thread_count = o->threads > 0 ? o->threads : gl_num_threads();
    r->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    r->dec->pkt_timebase = r->st->time_base;
    /* frame threads decode in FFmpeg's own threads, in copies of r->dec:
     * their lines find this file through opaque (video_ffmpeg.c) */
    r->dec->opaque = &r->log;
    ret = avcodec_open2(r->dec, codec, NULL);
    if (ret < 0) {
        rc = video_ffmpeg_error(GL_EUNSUPPORTED, path, "cannot open the decoder", ret);
        gl_error_prefix(rc, "codec %s", codec->name);
        goto fail;
    }
    snprintf(r->info.codec, sizeof r->info.codec, "%s", codec->name);

    AVRational fr = r->st->avg_frame_rate;
    if (fr.num <= 0 || fr.den <= 0) fr = av_guess_frame_rate(r->fmt, r->st, NULL);
    r->info.fps = (fr.num > 0 && fr.den > 0) ? av_q2d(fr) : 0;
    if (r->st->duration != AV_NOPTS_VALUE && r->st->duration > 0)
        r->info.duration_s = r->st->duration * av_q2d(r->st->time_base);
    else if (r->fmt->duration != AV_NOPTS_VALUE && r->fmt->duration > 0)
        r->info.duration_s = r->fmt->duration / (double)AV_TIME_BASE;
    if (r->st->nb_frames > 0) {
        r->info.frames = (long)r->st->nb_frames;
        r->info.frames_source = 0;
    } else {
        r->info.frames = (long)lround(r->info.duration_s * r->info.fps);
        r->info.frames_source = 2;
    }

    r->last_ts = AV_NOPTS_VALUE;
    r->frame_dur = r->info.fps > 0 ? av_rescale_q(1, av_inv_q(fr), r->st->time_base) : 1;
    if (r->frame_dur < 1) r->frame_dur = 1;
    /* Prime: the first picture fixes the native size and proves the stream decodes. */
    rc = reader_decode(r);
    if (rc == GL_EOF) {
        const char *log = video_ffmpeg_last_log();
        rc = gl_error(GL_EFORMAT, "%s: no decodable %s video frame (truncated or corrupt?)%s%s", path,
                      codec->name, log[0] ? " — " : "", log);
        goto fail;
    }
    if (rc < 0) goto fail;
    r->have_frame = 1;
    /* Time 0 is the first picture. In AVI files with packed B-frames
     * (UCF-101's XviD) FFmpeg stamps it 1 frame late: the stream's
     * start_time would put every frame one frame off. */
    r->origin = r->frame->best_effort_timestamp;
    if (r->origin == AV_NOPTS_VALUE) r->origin = r->st->start_time != AV_NOPTS_VALUE ? r->st->start_time : 0;
    r->info.width = r->frame->width;
    r->info.height = r->frame->height;
    if ((int64_t)r->info.width * r->info.height > (1 << 28)) {
        rc = gl_error(GL_EFORMAT, "%s: implausible frame size %dx%d", path, r->info.width, r->info.height);
        goto fail;
    }
    video_ffmpeg_log_route(prev);
    *rp = r;
    return 0;
fail:
    av_dict_free(&dopt);
    video_ffmpeg_log_route(prev);
    video_reader_close(&r);
    return rc;
}

/* Counts with the caller's threads and time limit (the limit restarts). */
static int count_frames_opts(const char *path, const video_reader_opts *base, long *frames)
{
    video_reader *r = NULL;
    video_reader_opts o = video_reader_opts_default();
    o.count = VIDEO_COUNT_HEADER;
    if (base) {
        o.threads = base->threads;
        o.timeout_ms = base->timeout_ms;
    }
    *frames = 0;
    video_ffmpeg_init();
    video_ffmpeg_clear_log();
    int rc = reader_open_raw(&r, path, &o);
    if (rc < 0) return rc;
    long n = 0;
    while ((rc = reader_next(r, NULL, NULL)) == 0) n++;
    video_reader_close(&r);
    if (rc < 0) return rc;
    *frames = n;
    return 0;
}

int video_count_frames(const char *path, long *frames)
{
    return count_frames_opts(path, NULL, frames);
}

int video_reader_open(video_reader **rp, const char *path, const video_reader_opts *opts)
{
    video_reader_opts o = opts ? *opts : video_reader_opts_default();
    video_reader *r = NULL;
    int rc;
    *rp = NULL;
    video_ffmpeg_init();
    video_ffmpeg_clear_log();
    if ((rc = video_reader_opts_validate(&o)) < 0) return gl_error_prefix(rc, "%s", path ? path : "(null)");
    if ((rc = reader_open_raw(&r, path, &o)) < 0) return rc;
    if ((rc = reader_geometry(r)) < 0) goto fail;
    if (o.count == VIDEO_COUNT_ALWAYS || (o.count == VIDEO_COUNT_IF_MISSING && r->info.frames_source == 2)) {
        long n;
        if ((rc = count_frames_opts(path, &o, &n)) < 0) goto fail;
        r->info.frames = n;
        r->info.frames_source = 1;
    }
    *rp = r;
    return 0;
fail:
    video_reader_close(&r);
    return rc;
}

static int reader_seek_ms(video_reader *r, double ms);

int video_reader_seek_ms(video_reader *r, double ms)
{
    if (!r) return gl_error(GL_EINVAL, "video_reader_seek_ms: NULL reader");
    video_ffmpeg_log *prev = video_ffmpeg_log_route(&r->log);
    int rc = reader_seek_ms(r, ms);
    video_ffmpeg_log_route(prev);
    return rc;
}

static int reader_seek_ms(video_reader *r, double ms)
{
    if (!(ms >= 0) || !isfinite(ms))
        return gl_error(GL_EINVAL, "%s: seek to %g ms: expected a time >= 0", r->path, ms);
    const AVRational tb = r->st->time_base;
    const int64_t start = r->origin;
    /* Rounded up: the first frame at or after ms, never one just before. */
    const int64_t target = start + av_rescale_q_rnd((int64_t)llround(ms * 1000.0), (AVRational){ 1, 1000000 },
                                                    tb, AV_ROUND_UP);
    /* Back off further when the demuxer lands after the target (inexact
     * indexes): 0, 1, 4, 16 s earlier, then the very start. */
    static const double backoff_s[] = { 0, 1, 4, 16, -1 };
    int rc;
    for (int attempt = 0; attempt < 5; attempt++) {
        int64_t ts = backoff_s[attempt] < 0 ? INT64_MIN
                     : target - av_rescale_q((int64_t)(backoff_s[attempt] * 1e6), (AVRational){ 1, 1000000 }, tb);
        int ret = backoff_s[attempt] < 0
                  ? av_seek_frame(r->fmt, -1, r->fmt->start_time != AV_NOPTS_VALUE ? r->fmt->start_time : 0,
                                  AVSEEK_FLAG_BACKWARD)
                  : av_seek_frame(r->fmt, r->stream, ts < start ? start : ts, AVSEEK_FLAG_BACKWARD);
        if (ret < 0) {
            if (backoff_s[attempt] < 0)
                return video_ffmpeg_error(GL_EUNSUPPORTED, r->path, "cannot seek", ret);
            continue;
        }
        avcodec_flush_buffers(r->dec);
        av_frame_unref(r->frame);
        av_packet_unref(r->pkt);
        r->pkt_pending = r->flushed = r->have_frame = 0;
        r->last_ts = AV_NOPTS_VALUE;
        int first = 1, overshot = 0;
        for (;;) {
            rc = reader_decode(r);
            if (rc != 0) return rc;   /* GL_EOF: nothing at or after ms */
            int64_t pts = r->frame->best_effort_timestamp;
            if (first && pts != AV_NOPTS_VALUE && pts > target && target > start && backoff_s[attempt] >= 0) {
                overshot = 1;
                break;
            }
            first = 0;
            if (pts == AV_NOPTS_VALUE || pts >= target) break;
            av_frame_unref(r->frame);
        }
        if (overshot) continue;
        r->have_frame = 1;
        double t = frame_time(r, r->frame);
        r->next_index = isnan(t) ? -1 : (long)llround(t * r->info.fps);
        return 0;
    }
    return gl_error(GL_EUNSUPPORTED, "%s: cannot seek to %g ms", r->path, ms);
}

/* ---------------------------------------------------------- conveniences */

typedef struct { long index, pos; } want;

static int want_cmp(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int video_decode_frames(const char *path, const video_reader_opts *opts, const long *indices,
                        long n, void *out, video_info *info)
{
    video_reader *r = NULL;
    want *w = NULL;
    int rc;
    if (n < 0 || (n > 0 && (!indices || !out)))
        return gl_error(GL_EINVAL, "%s: video_decode_frames: bad index list (n = %ld)", path, n);
    for (long i = 0; i < n; i++)
        if (indices[i] < 0)
            return gl_error(GL_EINVAL, "%s: frame index %ld (position %ld) is negative", path, indices[i], i);
    if ((rc = video_reader_open(&r, path, opts)) < 0) return rc;
    if (info) video_reader_info(r, info);
    const size_t fb = r->info.frame_bytes;
    w = gl_malloc(sizeof *w * (size_t)(n > 0 ? n : 1));
    if (!w) { rc = GL_ENOMEM; goto fail; }
    for (long i = 0; i < n; i++) w[i] = (want){ indices[i], i };
    qsort(w, (size_t)n, sizeof *w, want_cmp);
    long k = 0, cur = 0;
    while (k < n) {
        if (w[k].index == cur) {
            uint8_t *dst = (uint8_t *)out + (size_t)w[k].pos * fb;
            rc = reader_next(r, dst, NULL);
            if (rc == 0) {
                for (k++; k < n && w[k].index == cur; k++)
                    memcpy((uint8_t *)out + (size_t)w[k].pos * fb, dst, fb);
            }
        } else {
            rc = reader_next(r, NULL, NULL);
        }
        if (rc == GL_EOF) {
            rc = gl_error(GL_ENOTFOUND, "%s: frame %ld requested, the video has %ld decodable frames",
                          path, w[k].index, cur);
            goto fail;
        }
        if (rc < 0) goto fail;
        cur++;
    }
    rc = 0;
fail:
    gl_free(w);
    video_reader_close(&r);
    return rc;
}

/* Appends frames to a growing buffer. */
static int grow(void **buf, long *cap, long need, size_t fb)
{
    if (need <= *cap) return 0;
    long nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *nb = gl_realloc(*buf, (size_t)nc * fb);
    if (!nb) return GL_ENOMEM;
    *buf = nb;
    *cap = nc;
    return 0;
}

int video_decode_all(const char *path, const video_reader_opts *opts, int step, void **out,
                     long *n, video_info *info)
{
    video_reader *r = NULL;
    void *buf = NULL;
    long cap = 0, cnt = 0;
    int rc;
    *out = NULL;
    *n = 0;
    if (step < 1) return gl_error(GL_EINVAL, "%s: step %d: expected >= 1", path, step);
    if ((rc = video_reader_open(&r, path, opts)) < 0) return rc;
    if (info) video_reader_info(r, info);
    const size_t fb = r->info.frame_bytes;
    for (long i = 0;; i++) {
        if (i % step) {
            rc = reader_next(r, NULL, NULL);
        } else {
            if ((rc = grow(&buf, &cap, cnt + 1, fb)) < 0) goto fail;
            rc = reader_next(r, (uint8_t *)buf + (size_t)cnt * fb, NULL);
            if (rc == 0) cnt++;
        }
        if (rc == GL_EOF) break;
        if (rc < 0) goto fail;
    }
    *out = buf;
    *n = cnt;
    buf = NULL;
    rc = 0;
fail:
    gl_free(buf);
    video_reader_close(&r);
    return rc;
}

int video_decode_window_ms(const char *path, const video_reader_opts *opts, double start_ms,
                           double end_ms, void **out, long *n, long *first_index, video_info *info)
{
    video_reader *r = NULL;
    void *buf = NULL;
    long cap = 0, cnt = 0, first = -1;
    int rc;
    *out = NULL;
    *n = 0;
    if (!(start_ms >= 0) || !(end_ms > start_ms) || !isfinite(end_ms))
        return gl_error(GL_EINVAL, "%s: time window [%g, %g) ms: expected 0 <= start < end", path,
                        start_ms, end_ms);
    if ((rc = video_reader_open(&r, path, opts)) < 0) return rc;
    if (info) video_reader_info(r, info);
    const size_t fb = r->info.frame_bytes;
    rc = start_ms > 0 ? video_reader_seek_ms(r, start_ms) : 0;
    while (rc == 0) {
        /* Peek at the timestamp before paying for the conversion. */
        if (!r->have_frame) {
            rc = reader_decode(r);
            if (rc != 0) break;
            r->have_frame = 1;
        }
        double t = frame_time(r, r->frame);
        if (!isnan(t) && t * 1000.0 >= end_ms) break;
        if ((rc = grow(&buf, &cap, cnt + 1, fb)) < 0) goto fail;
        video_frame_info fi;
        rc = reader_next(r, (uint8_t *)buf + (size_t)cnt * fb, &fi);
        if (rc == 0) {
            if (cnt == 0) first = fi.index;
            cnt++;
        }
    }
    if (rc < 0) goto fail;
    if (cnt == 0) {
        rc = gl_error(GL_ENOTFOUND, "%s: no frame in [%g, %g) ms (video lasts %.0f ms)", path, start_ms,
                      end_ms, r->info.duration_s * 1000.0);
        goto fail;
    }
    *out = buf;
    *n = cnt;
    if (first_index) *first_index = first;
    buf = NULL;
    rc = 0;
fail:
    gl_free(buf);
    video_reader_close(&r);
    return rc;
}

int video_indices_segments(long nframes, int nseg, long *out)
{
    if (nframes <= 0 || nseg <= 0)
        return gl_error(GL_EINVAL, "video_indices_segments: %ld frames, %d segments: both must be > 0",
                        nframes, nseg);
    for (int i = 0; i < nseg; i++) out[i] = (long)(((int64_t)2 * i + 1) * nframes / (2 * (int64_t)nseg));
    return 0;
}

long video_indices_every(long nframes, long start, int step, long *out, long cap)
{
    if (nframes < 0 || start < 0 || step < 1 || cap < 0)
        return gl_error(GL_EINVAL, "video_indices_every: nframes %ld, start %ld, step %d, cap %ld",
                        nframes, start, step, cap);
    long count = start >= nframes ? 0 : (nframes - start + step - 1) / step;
    for (long i = 0; i < count && i < cap; i++) out[i] = start + i * step;
    return count;
}
