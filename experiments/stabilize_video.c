/* stabilize_video.c — the video passes of glocal stabilize / eval-stabilize
 * (see stabilize_video.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synth.h"
#include "experiments/stabilize_video.h"
#include "motion/flow.h"
#include "nn/mat3.h"

const char *const stab_motion_names[] = { "glocal", "refine", "tvl1-ransac", "dis-ransac", NULL };

stab_motion_config stab_motion_config_default(void)
{
    return (stab_motion_config){ .method = STAB_MOTION_REFINE, .batch = 8 };
}

int stab_motion_config_setup(stab_motion_config *c, stab_motion_method method, int work_width, int work_height,
                             const char *model_path, glocal_model **model)
{
    *c = stab_motion_config_default();
    c->method = method;
    c->work_width = work_width;
    c->work_height = work_height;
    if (model_path) {
        int rc = glocal_model_load(model, model_path, NULL);
        if (rc < 0) return rc;
    }
    c->model = *model;
    return 0;
}

static void identity(double m[9])
{
    memset(m, 0, 9 * sizeof *m);
    m[0] = m[4] = m[8] = 1;
}

int stab_motion_pairs(const stab_motion_config *c, const uint8_t *const *a, const uint8_t *const *b,
                      int n, int width, int height, double *h)
{
    int rc = 0;
    if (!c || !a || !b || !h || n < 0 || width < 8 || height < 8)
        return gl_error(GL_EINVAL, "stab_motion_pairs: need a config, frames >= 8x8 and n >= 0 (got %dx%d)",
                        width, height);
    if (c->method < 0 || c->method >= STAB_MOTION_N)
        return gl_error(GL_EINVAL, "stab_motion_config.method: expected 0..%d, got %d", STAB_MOTION_N - 1,
                        (int)c->method);
    if (c->method == STAB_MOTION_GLOCAL && !c->model)
        return gl_error(GL_EINVAL, "stab_motion_config: method glocal needs a model");
    if (c->batch < 1) return gl_error(GL_EINVAL, "stab_motion_config.batch: expected >= 1, got %d", c->batch);
    if (c->method == STAB_MOTION_GLOCAL || c->method == STAB_MOTION_REFINE) {
        const int net = c->method == STAB_MOTION_GLOCAL;
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        o.use_network = net;
        o.lme = net;           /* the refinement is weighted by the LME's background */
        o.refine = 1;
        o.homography_only = 1; /* only H is used */
        for (int i = 0; i < n && rc == 0; i += c->batch) {
            int k = n - i < c->batch ? n - i : c->batch;
            glocal_result r = { 0 };
            if ((rc = glocal_infer(net ? c->model : NULL, a + i, b + i, k, width, height, &o, &r)) < 0) break;
            memcpy(h + 9 * i, r.homography, sizeof(double) * 9 * k);
            glocal_result_free(&r);
        }
        return rc;
    }
    flow_baseline_config bc;
    flow_baseline_config_default(&bc);
    bc.method = c->method == STAB_MOTION_TVL1 ? flow_method_tvl1 : flow_method_dis;
    bc.zero_inliers = 0;
    float *ga = NULL, *gb = NULL;
    glocal_refine_config rfc;
    glocal_refine_config_default(&rfc);
    if (c->polish) {
        ga = gl_malloc(sizeof(float) * (size_t)width * height);
        gb = gl_malloc(sizeof(float) * (size_t)width * height);
        if (!ga || !gb) rc = GL_ENOMEM;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        rc = flow_baseline_rgb24(a[i], b[i], width, height, &bc, h + 9 * i, NULL, NULL, NULL);
        if (rc == 0 && c->polish && (rc = flow_gray_from_rgb24(a[i], width, height, ga)) == 0 &&
            (rc = flow_gray_from_rgb24(b[i], width, height, gb)) == 0)
            rc = glocal_refine_homography(ga, gb, width, height, NULL, &rfc, h + 9 * i);
    }
    gl_free(ga);
    gl_free(gb);
    return rc;
}

static video_reader_opts work_opts(const stab_motion_config *c)
{
    video_reader_opts o = video_reader_opts_default();
    o.width = c->work_width;
    o.height = c->work_height;
    o.scaler = VIDEO_SCALE_AREA;
    return o;
}

/* A damaged file (video_reader_damage: decoding errors, rejected packets,
 * frames missing) is an error: its output would show the damage. */
static int check_damage(const char *path, const video_reader *r, long decoded)
{
    char why[600];
    if (decoded < 1) return gl_error(GL_EFORMAT, "%s: no frame decodes", path);
    if (video_reader_damage(r, decoded, why, sizeof why))
        return gl_error(GL_EFORMAT, "%s: the file is truncated or damaged: %s", path, why);
    return 0;
}

int stab_video_motion(const char *path, const stab_motion_config *c, stab_progress_fn fn, void *ctx,
                      double **hout, long *nout, video_info *info)
{
    int rc;
    *hout = NULL;
    *nout = 0;
    video_reader *r = NULL;
    video_reader_opts o = work_opts(c);
    uint8_t *buf = NULL;
    const uint8_t **pa = NULL, **pb = NULL;
    double *h = NULL;
    long cap = 0, n = 0;
    if ((rc = video_reader_open(&r, path, &o)) < 0) return rc;
    video_info vi;
    video_reader_info(r, &vi);
    const int ww = vi.out_width, wh = vi.out_height, B = c->batch > 0 ? c->batch : 1;
    if (ww < 8 || wh < 8) {
        rc = gl_error(GL_EINVAL, "%s: work size %dx%d: expected at least 8x8", path, ww, wh);
        goto fail;
    }
    buf = gl_malloc(vi.frame_bytes * (size_t)(B + 1));
    pa = gl_malloc(sizeof *pa * B);
    pb = gl_malloc(sizeof *pb * B);
    if (!buf || !pa || !pb) { rc = GL_ENOMEM; goto fail; }
    rc = video_reader_read(r, buf, NULL);
    if (rc == GL_EOF) rc = gl_error(GL_EFORMAT, "%s: no frame decodes", path);
    if (rc < 0) goto fail;
    n = 1;
    const long total = vi.frames > 1 ? vi.frames - 1 : 0;
    for (int eof = 0; !eof;) {
        int k = 0;
        while (k < B) {
            rc = video_reader_read(r, buf + vi.frame_bytes * (k + 1), NULL);
            if (rc == GL_EOF) { eof = 1; break; }
            if (rc < 0) { gl_error_prefix(rc, "%s: frame %ld", path, n + k); goto fail; }
            k++;
        }
        if (!k) break;
        if (n - 1 + k > cap) {
            cap = 2 * (n - 1 + k) + 64;
            double *nh = gl_realloc(h, sizeof(double) * 9 * cap);
            if (!nh) { rc = GL_ENOMEM; goto fail; }
            h = nh;
        }
        for (int i = 0; i < k; i++) {
            pa[i] = buf + vi.frame_bytes * i;
            pb[i] = buf + vi.frame_bytes * (i + 1);
        }
        double *hb = h + 9 * (n - 1);
        if ((rc = stab_motion_pairs(c, pa, pb, k, ww, wh, hb)) < 0) {
            gl_error_prefix(rc, "%s: frames %ld..%ld", path, n - 1, n - 1 + k);
            goto fail;
        }
        for (int i = 0; i < k; i++) {
            double t[9];
            glocal_homography_rescale(hb + 9 * i, ww, wh, vi.width, vi.height, t);
            memcpy(hb + 9 * i, t, sizeof t);
        }
        n += k;
        memmove(buf, buf + vi.frame_bytes * k, vi.frame_bytes);
        if (fn && fn(ctx, 0, n - 1, total > n - 1 ? total : n - 1)) {
            rc = gl_error(GL_ECANCELED, "%s: stopped at frame %ld", path, n - 1);
            goto fail;
        }
    }
    if ((rc = check_damage(path, r, n)) < 0) goto fail;
    *hout = n > 1 ? h : NULL;
    if (n > 1) h = NULL;
    *nout = n;
    vi.frames = n;
    if (info) *info = vi;
    rc = 0;
fail:
    gl_free(h);
    gl_free(buf);
    gl_free(pa);
    gl_free(pb);
    video_reader_close(&r);
    return rc;
}

int stab_video_render(const char *path, const stab_plan *p, video_writer *out, video_writer *compare,
                      stab_progress_fn fn, void *ctx)
{
    int rc;
    video_reader *r = NULL;
    uint8_t *in = NULL, *o = NULL, *side = NULL;
    if (!p || !out) return gl_error(GL_EINVAL, "stab_video_render: need a plan and a writer");
    if ((rc = video_reader_open(&r, path, NULL)) < 0) return rc;
    video_info vi;
    video_reader_info(r, &vi);
    const int W = vi.width, H = vi.height;
    if (W != p->width || H != p->height) {
        rc = gl_error(GL_EINVAL, "%s: %dx%d, but the plan is for %dx%d", path, W, H, p->width, p->height);
        goto fail;
    }
    const size_t fb = (size_t)W * H * 3;
    in = gl_malloc(fb);
    o = gl_malloc(fb);
    side = compare ? gl_malloc(2 * fb) : NULL;
    if (!in || !o || (compare && !side)) { rc = GL_ENOMEM; goto fail; }
    long t = 0;
    for (;; t++) {
        rc = video_reader_read(r, in, NULL);
        if (rc == GL_EOF) break;
        if (rc < 0) { gl_error_prefix(rc, "%s: frame %ld", path, t); goto fail; }
        if (t >= p->n) {
            rc = gl_error(GL_EFORMAT, "%s: decodes to more than the %d frames of the first pass", path, p->n);
            goto fail;
        }
        if ((rc = stab_warp_rgb24(in, W, H, p->warp + 9 * t, o)) < 0) goto fail;
        if ((rc = video_writer_write_rgb(out, o)) < 0) goto fail;
        if (compare) {
            for (int y = 0; y < H; y++) {
                memcpy(side + (size_t)y * 6 * W, in + (size_t)y * 3 * W, (size_t)3 * W);
                memcpy(side + (size_t)y * 6 * W + (size_t)3 * W, o + (size_t)y * 3 * W, (size_t)3 * W);
            }
            if ((rc = video_writer_write_rgb(compare, side)) < 0) goto fail;
        }
        if (fn && fn(ctx, 1, t + 1, p->n)) {
            rc = gl_error(GL_ECANCELED, "%s: stopped at frame %ld", path, t + 1);
            goto fail;
        }
    }
    if (t != p->n) {
        rc = gl_error(GL_EFORMAT, "%s: decodes to %ld frames now, %d in the first pass", path, t, p->n);
        goto fail;
    }
    rc = 0;
fail:
    gl_free(in);
    gl_free(o);
    gl_free(side);
    video_reader_close(&r);
    return rc;
}

int stab_video_shake(const char *path, const stab_jitter_config *c, video_writer *w, double **jout, long *nout)
{
    int rc;
    *jout = NULL;
    *nout = 0;
    video_reader *r = NULL;
    video_reader_opts o = video_reader_opts_default();
    o.count = VIDEO_COUNT_ALWAYS;
    uint8_t *in = NULL, *out = NULL;
    double *j = NULL;
    if ((rc = video_reader_open(&r, path, &o)) < 0) return rc;
    video_info vi;
    video_reader_info(r, &vi);
    const long n = vi.frames;
    const size_t fb = vi.frame_bytes;
    in = gl_malloc(fb);
    out = gl_malloc(fb);
    j = gl_malloc(sizeof(double) * 9 * (size_t)(n > 0 ? n : 1));
    if (!in || !out || !j) { rc = GL_ENOMEM; goto fail; }
    if ((rc = stab_jitter_make(c, (int)n, vi.width, vi.height, j, NULL)) < 0) goto fail;
    for (long t = 0; t < n; t++) {
        double ji[9];
        rc = video_reader_read(r, in, NULL);
        if (rc == GL_EOF) rc = gl_error(GL_EFORMAT, "%s: frame %ld does not decode (counted %ld)", path, t, n);
        if (rc < 0) goto fail;
        if (gl_mat3_inverse(j + 9 * t, ji) < 0) { rc = gl_error(GL_ENUMERIC, "jitter %ld is singular", t); goto fail; }
        if ((rc = stab_warp_rgb24(in, vi.width, vi.height, ji, out)) < 0) goto fail;
        if ((rc = video_writer_write_rgb(w, out)) < 0) goto fail;
    }
    *jout = j;
    *nout = n;
    j = NULL;
    rc = 0;
fail:
    gl_free(j);
    gl_free(in);
    gl_free(out);
    video_reader_close(&r);
    return rc;
}

/* ---- scores ------------------------------------------------------------------------ */

/* stab_scores.off_ideal, off_ideal_gauss and ideal_step from the truth j
 * (steady -> input) and R (steady -> output), n >= 3 frames of W x H. */
static int off_ideal(const double *j, const double *R, long n, int W, int H, stab_scores *s)
{
    int rc = 0;
    stab_plan plan = { 0 };
    const size_t sz = sizeof(double) * 9 * (size_t)n;
    double *h = gl_malloc(sz), *ref = gl_malloc(sz), *S = gl_malloc(sz), *Si = gl_malloc(sz);
    if (!h || !ref || !S || !Si) { rc = GL_ENOMEM; goto done; }
    /* the true motion of the input (frame t -> t+1), and the output's */
    if ((rc = stab_motion_from_path(j, (int)n, h)) < 0 || (rc = stab_motion_from_path(R, (int)n, S)) < 0) goto done;
    for (int g = 0; g < 2; g++) {   /* the L1 ideal, then the Gaussian */
        stab_config c = stab_config_default();
        if (g) c.path = STAB_PATH_GAUSSIAN;   /* smoothing 15, vid.stab's default */
        stab_plan_free(&plan);
        if ((rc = stab_plan_compute(h, (int)n, W, H, &c, &plan)) < 0) {
            gl_error_prefix(rc, "the ideal path of the true motion");
            goto done;
        }
        for (long t = 0; t < n; t++) {   /* steady -> ideal output t = warp_t^-1 j_t */
            double inv[9];
            if (gl_mat3_inverse(plan.warp + 9 * t, inv) < 0) { rc = gl_error(GL_ENUMERIC, "ideal warp %ld is singular", t); goto done; }
            gl_mat3_mul(inv, j + 9 * t, ref + 9 * t);
            gl_mat3_normalize(ref + 9 * t);
        }
        if (!g && (rc = stab_path_residual(ref + 9, ref, (int)n - 1, W, H, &s->ideal_step, NULL)) < 0) goto done;
        if ((rc = stab_motion_from_path(ref, (int)n, Si)) < 0) goto done;
        if ((rc = stab_path_residual(S, Si, (int)n - 1, W, H, g ? &s->off_ideal_gauss : &s->off_ideal, NULL)) < 0) goto done;
    }
done:
    stab_plan_free(&plan);
    gl_free(h);
    gl_free(ref);
    gl_free(S);
    gl_free(Si);
    return rc;
}

int stab_video_score(const char *input, const char *output, const stab_motion_config *c, double window,
                     const double *truth, long truth_n, stab_progress_fn fn, void *ctx, stab_scores *s)
{
    int rc;
    const int same = !strcmp(input, output);
    video_reader *ri = NULL, *ro = NULL, *rn = NULL;
    video_reader_opts wo = work_opts(c);
    uint8_t *fi = NULL, *fo = NULL, *fn2 = NULL;
    double *io = NULL, *m = NULL, *R = NULL;
    long cap = 0, n = 0;
    double psnr_sum = 0;
    memset(s, 0, sizeof *s);
    s->jitter = s->jitter_step = s->off_ideal = s->off_ideal_gauss = s->ideal_step = NAN;
    if (!(window > 0 && window <= 1)) return gl_error(GL_EINVAL, "stab_video_score: window %g: expected (0, 1]", window);
    if ((rc = video_reader_open(&ri, input, &wo)) < 0) goto fail;
    if ((rc = video_reader_open(&ro, output, &wo)) < 0) goto fail;
    if ((rc = video_reader_open(&rn, output, NULL)) < 0) goto fail;
    video_info vi, vo, vn;
    video_reader_info(ri, &vi);
    video_reader_info(ro, &vo);
    video_reader_info(rn, &vn);
    if (vi.width != vo.width || vi.height != vo.height) {
        rc = gl_error(GL_EINVAL, "%s is %dx%d but its input %s is %dx%d: expected the same size", output, vo.width,
                      vo.height, input, vi.width, vi.height);
        goto fail;
    }
    const int ww = vi.out_width, wh = vi.out_height, W = vi.width, H = vi.height;
    /* slot k of fi/fo: frame t with k = t % 2 (the previous frame stays) */
    fi = gl_malloc(vi.frame_bytes);
    fo = gl_malloc(2 * vo.frame_bytes);
    fn2 = gl_malloc(2 * vn.frame_bytes);
    if (!fi || !fo || !fn2) { rc = GL_ENOMEM; goto fail; }
    const long total = vi.frames;
    for (long t = 0;; t++) {
        int k = (int)(t & 1);
        uint8_t *po = fo + vo.frame_bytes * k, *pn = fn2 + vn.frame_bytes * k;
        int a = video_reader_read(ri, fi, NULL);
        int b = video_reader_read(ro, po, NULL);
        int d = video_reader_read(rn, pn, NULL);
        if (a < 0) { rc = gl_error_prefix(a, "%s: frame %ld", input, t); goto fail; }
        if (b < 0) { rc = gl_error_prefix(b, "%s: frame %ld", output, t); goto fail; }
        if (d < 0) { rc = gl_error_prefix(d, "%s: frame %ld", output, t); goto fail; }
        if (a == GL_EOF || b == GL_EOF || d == GL_EOF) {
            if (a != b || b != d) {
                rc = gl_error(GL_EFORMAT, "%s has %s frames than its input %s (%ld there)", output,
                              a == GL_EOF ? "more" : "fewer", input, t + (a != GL_EOF));
                goto fail;
            }
            break;
        }
        if (t + 1 > cap) {
            cap = 2 * (t + 1) + 64;
            double *n1 = gl_realloc(io, sizeof(double) * 9 * cap), *n2 = n1 ? gl_realloc(m, sizeof(double) * 9 * cap) : NULL;
            if (n1) io = n1;
            if (n2) m = n2;
            if (!n1 || !n2) { rc = GL_ENOMEM; goto fail; }
        }
        /* pairs: input t -> output t; output t-1 -> output t */
        const uint8_t *pa[2], *pb[2];
        double hh[18];
        int np = 0, iio = -1, im = -1;
        if (!same) { pa[np] = fi; pb[np] = po; iio = np++; }
        if (t > 0) { pa[np] = fo + vo.frame_bytes * (1 - k); pb[np] = po; im = np++; }
        if (np && (rc = stab_motion_pairs(c, pa, pb, np, ww, wh, hh)) < 0) {
            gl_error_prefix(rc, "%s: frame %ld", output, t);
            goto fail;
        }
        if (iio >= 0) glocal_homography_rescale(hh + 9 * iio, ww, wh, W, H, io + 9 * t);
        else identity(io + 9 * t);
        if (im >= 0) {
            glocal_homography_rescale(hh + 9 * im, ww, wh, W, H, m + 9 * (t - 1));
            double ps;
            if ((rc = stab_psnr_rgb24(fn2 + vn.frame_bytes * (1 - k), pn, W, H, window, &ps)) < 0) goto fail;
            psnr_sum += ps;
        }
        n = t + 1;
        if (fn && fn(ctx, 2, n, total > n ? total : n)) {
            rc = gl_error(GL_ECANCELED, "%s: stopped at frame %ld", output, n);
            goto fail;
        }
    }
    if ((rc = check_damage(input, ri, n)) < 0) goto fail;
    s->frames = n;
    if (n < 3) { rc = gl_error(GL_EINVAL, "%s: %ld frames: the scores need at least 3", output, n); goto fail; }
    s->itf = psnr_sum / (double)(n - 1);
    if ((rc = stab_stability_score(m, (int)n - 1, &s->stability, &s->stability_translation,
                                   &s->stability_rotation)) < 0) goto fail;
    if ((rc = stab_crop_distortion(io, (int)n, &s->cropping, &s->distortion)) < 0) goto fail;
    if (truth) {
        if (truth_n != n) {
            rc = gl_error(GL_EINVAL, "the truth has %ld frames, %s has %ld: expected the same", truth_n, input, n);
            goto fail;
        }
        R = gl_malloc(sizeof(double) * 9 * (size_t)n);
        double *mean = gl_malloc(sizeof(double) * 9 * (size_t)n);
        if (!R || !mean) { gl_free(mean); rc = GL_ENOMEM; goto fail; }
        for (long t = 0; t < n; t++) {
            gl_mat3_mul(io + 9 * t, truth + 9 * t, R + 9 * t);
            gl_mat3_normalize(R + 9 * t);
        }
        rc = stab_path_mean(R, (int)n, mean);
        for (long t = 1; rc == 0 && t < n; t++) memcpy(mean + 9 * t, mean, 9 * sizeof(double));
        if (rc == 0) rc = stab_path_residual(R, mean, (int)n, W, H, &s->jitter, NULL);
        if (rc == 0) rc = stab_path_residual(R + 9, R, (int)n - 1, W, H, &s->jitter_step, NULL);
        gl_free(mean);
        if (rc < 0 || (rc = off_ideal(truth, R, n, W, H, s)) < 0) goto fail;
    }
    rc = 0;
fail:
    gl_free(io);
    gl_free(m);
    gl_free(R);
    gl_free(fi);
    gl_free(fo);
    gl_free(fn2);
    video_reader_close(&ri);
    video_reader_close(&ro);
    video_reader_close(&rn);
    return rc;
}

int stab_truth_read(const char *path, double **j, long *n)
{
    *j = NULL;
    *n = 0;
    const char *dot = strrchr(path, '.');
    if (!dot || strcmp(dot, ".h5")) return stab_homographies_read(path, 0, j, n);
    synth_clip *clip = NULL;
    int rc = synth_gt_load(path, &clip);
    if (rc < 0) return rc;
    double *p = gl_malloc(sizeof(double) * 9 * (size_t)clip->frames);
    if (!p) rc = GL_ENOMEM;
    else if ((rc = stab_path_from_motion(clip->homography, clip->frames, p)) < 0) gl_error_prefix(rc, "%s", path);
    if (rc < 0) gl_free(p);
    else {
        *j = p;
        *n = clip->frames;
    }
    synth_clip_free(&clip);
    return rc;
}

/* ---- homography files -------------------------------------------------------------- */

int stab_homographies_write(const char *path, const double *h, long n)
{
    const size_t line = 9 * 26 + 24;
    char *buf = gl_malloc(line * (size_t)(n > 0 ? n : 1));
    if (!buf) return GL_ENOMEM;
    size_t len = 0;
    for (long t = 0; t < n; t++) {
        len += (size_t)snprintf(buf + len, line, "%ld", t);
        for (int e = 0; e < 9; e++) len += (size_t)snprintf(buf + len, line, " %.17g", h[9 * t + e]);
        buf[len++] = '\n';
    }
    int rc = gl_write_file_atomic(path, buf, len);
    gl_free(buf);
    return rc;
}

int stab_homographies_read(const char *path, long n_expected, double **hout, long *nout)
{
    void *data;
    size_t size;
    int rc;
    *hout = NULL;
    if ((rc = gl_read_file(path, &data, &size)) < 0) return rc;
    char *text = gl_malloc(size + 1);
    if (!text) { gl_free(data); return GL_ENOMEM; }
    memcpy(text, data, size);
    text[size] = 0;
    gl_free(data);
    long lines = 0;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    double *h = gl_malloc(sizeof(double) * 9 * (size_t)(lines + 1));
    if (!h) { gl_free(text); return GL_ENOMEM; }
    long n = 0, ln = 0;
    for (char *p = text, *next; *p; p = next) {
        next = p + strcspn(p, "\n");
        if (*next) *next++ = 0;
        ln++;
        if (!p[strspn(p, " \t\r")]) continue;
        char *e;
        errno = 0;
        long t = strtol(p, &e, 10);
        if (e == p || t != n) {
            rc = gl_error(GL_EFORMAT, "%s:%ld: expected the frame number %ld first", path, ln, n);
            goto fail;
        }
        for (int k = 0; k < 9; k++) {
            char *q = e;
            h[9 * n + k] = strtod(q, &e);
            if (e == q || !isfinite(h[9 * n + k])) {
                rc = gl_error(GL_EFORMAT, "%s:%ld: expected 9 finite numbers after the frame number", path, ln);
                goto fail;
            }
        }
        if (e[strspn(e, " \t\r")]) {
            rc = gl_error(GL_EFORMAT, "%s:%ld: unexpected text after the 9 numbers", path, ln);
            goto fail;
        }
        n++;
    }
    if (n_expected > 0 && n != n_expected) {
        rc = gl_error(GL_EFORMAT, "%s: %ld homographies, expected %ld", path, n, n_expected);
        goto fail;
    }
    gl_free(text);
    *hout = h;
    *nout = n;
    return 0;
fail:
    gl_free(text);
    gl_free(h);
    return rc;
}
