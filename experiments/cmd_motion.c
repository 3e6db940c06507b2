/* glocal motion — GLOCAL motion of one frame pair: .flo files, the
 * homography and a colour-coded strip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/image.h"
#include "datasets/video.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "motion/flow.h"
#include "motion/glocal.h"

GLOCAL_COMMAND(motion, "motion", "GLOCAL global/local motion of a frame pair: .flo files, homography, PNG strip")

static int write_flo(const char *dir, const char *name, const float *f, int w, int h)
{
    flow_field ff = { 0 };
    int rc = flow_field_new(&ff, w, h);
    if (rc < 0) return rc;
    const size_t hw = (size_t)w * h;
    memcpy(ff.u, f, hw * sizeof(float));
    memcpy(ff.v, f + hw, hw * sizeof(float));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = flow_write_flo(path, &ff);
    flow_field_free(&ff);
    return rc;
}

/* The pair: frames A and B (RGB24, W x H), from two images or a video. */
typedef struct {
    image ia, ib;
    uint8_t *vf;                 /* the two decoded video frames */
    const uint8_t *fa, *fb;
    int W, H;
} frame_pair;

static void frame_pair_free(frame_pair *p)
{
    gl_free(p->vf);
    image_release(&p->ia);
    image_release(&p->ib);
}

/* Frames T and T+1 of a video. CLI_OK, or CLI_FAIL after saying why. */
static int frame_pair_from_video(const char *cmd, const char *video, long frame, frame_pair *p)
{
    video_reader_opts vo = video_reader_opts_default();
    video_info vi;
    long ind[2] = { frame, frame + 1 };
    int rc;
    video_reader *vr = NULL;
    if ((rc = video_reader_open(&vr, video, &vo)) < 0) return cli_fail(cmd, rc, "cannot open %s", video);
    video_reader_info(vr, &vi);
    video_reader_close(&vr);
    p->vf = gl_malloc(2 * vi.frame_bytes);
    if (!p->vf) return cli_fail(cmd, GL_ENOMEM, "out of memory");
    if ((rc = video_decode_frames(video, &vo, ind, 2, p->vf, &vi)) < 0)
        return cli_fail(cmd, rc, "cannot decode frames %ld and %ld of %s", frame, frame + 1, video);
    p->W = vi.out_width;
    p->H = vi.out_height;
    p->fa = p->vf;
    p->fb = p->vf + vi.frame_bytes;
    return CLI_OK;
}

/* Two image files of one size. CLI_OK, or CLI_FAIL after saying why. */
static int frame_pair_from_files(const char *cmd, const char *const files[2], frame_pair *p)
{
    int rc;
    if ((rc = image_load(&p->ia, files[0], 3)) < 0) return cli_fail(cmd, rc, "cannot read %s", files[0]);
    if ((rc = image_load(&p->ib, files[1], 3)) < 0) return cli_fail(cmd, rc, "cannot read %s", files[1]);
    if (p->ia.width != p->ib.width || p->ia.height != p->ib.height)
        return cli_fail(cmd, GL_EINVAL, "%s is %dx%d but %s is %dx%d: frames must have one size", files[0],
                        p->ia.width, p->ia.height, files[1], p->ib.width, p->ib.height);
    p->W = p->ia.width;
    p->H = p->ia.height;
    p->fa = p->ia.data;
    p->fb = p->ib.data;
    return CLI_OK;
}

/* The .flo files and homography.txt into out. CLI_OK, or CLI_FAIL after saying why. */
static int motion_write_results(const char *cmd, const char *out, const glocal_result *r, int W, int H)
{
    int rc;
    if ((rc = gl_mkdirs(out)) < 0) return cli_fail(cmd, rc, "cannot create %s", out);
    if ((rc = write_flo(out, "mixed.flo", r->mixed_flow, W, H)) < 0 ||
        (rc = write_flo(out, "global.flo", r->global_flow, W, H)) < 0 ||
        (rc = write_flo(out, "local.flo", r->local_flow, W, H)) < 0)
        return cli_fail(cmd, rc, "cannot write the .flo files");
    char txt[512], path[4096];
    const double *h = r->homography;
    int n = snprintf(txt, sizeof txt, "%.10g %.10g %.10g\n%.10g %.10g %.10g\n%.10g %.10g %.10g\n",
                     h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]);
    snprintf(path, sizeof path, "%s/homography.txt", out);
    if ((rc = gl_write_file_atomic(path, txt, (size_t)n)) < 0) return cli_fail(cmd, rc, "cannot write %s", path);
    return CLI_OK;
}

/* Strip: A | GLOCAL mixed | TV-L1 (the baseline's mixed flow, same pair) |
 * global | local | mask; every flow on the GLOCAL mixed flow's scale. */
enum { PANELS = 6 };

/* The largest magnitude of the mixed flow (1 if it is all zero). */
static float motion_max_radius(const glocal_result *r, size_t hw)
{
    float maxr = 0;
    for (size_t p = 0; p < hw; p++) {
        float u = r->mixed_flow[p], v = r->mixed_flow[hw + p];
        float mag = u * u + v * v;
        if (mag > maxr) maxr = mag;
    }
    return maxr > 0 ? sqrtf(maxr) : 1.0f;
}

/* Panel t of the strip into tile (W x H RGB24). tv: TV-L1 of the pair. */
static int motion_panel(const frame_pair *fp, const glocal_result *r, const flow_field *tv, float maxr, int t,
                        uint8_t *tile)
{
    const int W = fp->W, H = fp->H;
    const size_t hw = (size_t)W * H;
    if (t == 0) {
        memcpy(tile, fp->fa, hw * 3);
        return 0;
    }
    if (t <= 4) {
        flow_field panels[4] = { { W, H, r->mixed_flow, r->mixed_flow + hw }, *tv,
                                 { W, H, r->global_flow, r->global_flow + hw },
                                 { W, H, r->local_flow, r->local_flow + hw } };
        return flow_colorize(&panels[t - 1], maxr, tile);
    }
    for (size_t p = 0; p < hw; p++) {
        float v = r->mask[p] < 0 ? 0 : (r->mask[p] > 1 ? 1 : r->mask[p]);
        tile[3 * p] = tile[3 * p + 1] = tile[3 * p + 2] = (uint8_t)(255.0f * v + 0.5f);
    }
    return 0;
}

/* The strip (PANELS W x H, RGB24). CLI_OK, or CLI_FAIL after saying why. */
static int motion_strip_draw(const char *cmd, const frame_pair *fp, const glocal_result *r, uint8_t *strip)
{
    const int W = fp->W, H = fp->H;
    const size_t hw = (size_t)W * H;
    int rc, status = CLI_FAIL;
    uint8_t *tile = gl_malloc(hw * 3);
    flow_field tv = { 0 };
    if (!tile) return cli_fail(cmd, GL_ENOMEM, "out of memory");
    if ((rc = flow_field_new(&tv, W, H)) < 0 || (rc = flow_from_rgb24(fp->fa, fp->fb, W, H, NULL, NULL, &tv)) < 0) {
        cli_fail(cmd, rc, "TV-L1 for the strip");
        goto done;
    }
    float maxr = motion_max_radius(r, hw);
    for (int t = 0; t < PANELS; t++) {
        if ((rc = motion_panel(fp, r, &tv, maxr, t, tile)) < 0) {
            cli_fail(cmd, rc, "colour coding");
            goto done;
        }
        for (int y = 0; y < H; y++)
            memcpy(strip + ((size_t)y * PANELS * W + (size_t)t * W) * 3, tile + (size_t)y * W * 3, (size_t)W * 3);
    }
    status = CLI_OK;
done:
    flow_field_free(&tv);
    gl_free(tile);
    return status;
}

/* strip.png into out, each pixel zoom x zoom (small frames stay readable). */
static int motion_strip_save(const char *cmd, const char *out, const uint8_t *strip, int W, int H, long zoom)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/strip.png", out);
    int zw = (int)zoom * PANELS * W, zh = (int)zoom * H;
    uint8_t *z = zoom > 1 ? gl_malloc((size_t)zw * zh * 3) : (uint8_t *)strip;
    if (!z) return cli_fail(cmd, GL_ENOMEM, "out of memory");
    for (int y = 0; zoom > 1 && y < zh; y++)
        for (int x = 0; x < zw; x++)
            memcpy(z + ((size_t)y * zw + x) * 3, strip + ((size_t)(y / zoom) * PANELS * W + x / zoom) * 3, 3);
    int rc = image_save_png(path, z, zw, zh, 3);
    if (z != strip) gl_free(z);
    if (rc < 0) return cli_fail(cmd, rc, "cannot write %s", path);
    return CLI_OK;
}

static int motion_strip(const char *cmd, const char *out, const frame_pair *fp, const glocal_result *r, long zoom)
{
    uint8_t *strip = gl_malloc((size_t)fp->W * fp->H * 3 * PANELS);
    if (!strip) return cli_fail(cmd, GL_ENOMEM, "out of memory");
    int status = motion_strip_draw(cmd, fp, r, strip);
    if (status == CLI_OK) status = motion_strip_save(cmd, out, strip, fp->W, fp->H, zoom);
    gl_free(strip);
    return status;
}

int cmd_motion(int argc, char **argv)
{
    const char *cmd = "motion";
    const char *model = NULL, *out = ".", *video = NULL, *files[2] = { NULL, NULL };
    long frame = 0, zoom = 1;
    int nfiles = 0, refine = 1, lme_local = 0;
    cli_opt opts[] = {
        CLI_STR("--model", &model, "M", "a checkpoint of glocal train-motion", .required = 1),
        CLI_STR("--out", &out, "DIR", "where the files go"),
        CLI_STR("--video", &video, "X", "take frames T and T+1 of video X"),
        CLI_NUM("--frame", &frame, 0, 100000000, "T", "the first frame of the pair, with --video"),
        CLI_NUM("--zoom", &zoom, 1, 16, "N", "draw the strip N times larger"),
        CLI_NOFLAG("--no-refine", &refine, "skip the robust refinement of the homography"),
        CLI_FLAG("--lme-local", &lme_local,
                 "local flow from the LME alone (default: TV-L1 fused with DIS on the aligned pair, gated by the "
                 "mask, still better; motion/glocal.h)"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .arg = files, .max_args = 2, .nargs = &nfiles, .args = "A.png B.png",
        .usage = "--model M [--out DIR] A.png B.png\n--model M [--out DIR] --video X [--frame T]",
        .about = "Estimates the camera (global) motion as a homography, its flow, the local (object)\n"
                 "flow and the foreground mask from frame A to frame B with a model trained by glocal\n"
                 "train-motion. Frames of any size (both the same). Writes to DIR:\n"
                 "  mixed.flo global.flo local.flo   Middlebury .flo, pixels, A -> B\n"
                 "  homography.txt                   3x3 row-major, maps pixels of A to B\n"
                 "  strip.png                        frame A | mixed | TV-L1 of the same pair | global |\n"
                 "                                   local (Middlebury colour wheel, one scale) | mask\n"
                 "                                   (white = moving)\n",
    };
    int code = cli_parse(&spec, argc, argv);
    if (code != CLI_PARSED) return code;
    if (video ? nfiles != 0 : nfiles != 2)
        return cli_usage_error(cmd, "give two image files, or --video X");
    frame_pair fp = { 0 };
    glocal_model *m = NULL;
    glocal_result r = { 0 };
    int rc;
    code = video ? frame_pair_from_video(cmd, video, frame, &fp) : frame_pair_from_files(cmd, files, &fp);
    if (code != CLI_OK) goto done;
    code = CLI_FAIL;
    if ((rc = glocal_model_load(&m, model, NULL)) < 0) { cli_fail(cmd, rc, "cannot load %s", model); goto done; }
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.refine = refine;
    o.local_tvl1 = !lme_local;
    if ((rc = glocal_infer(m, &fp.fa, &fp.fb, 1, fp.W, fp.H, &o, &r)) < 0) {
        cli_fail(cmd, rc, "inference failed");
        goto done;
    }
    if ((code = motion_write_results(cmd, out, &r, fp.W, fp.H)) != CLI_OK) goto done;
    if ((code = motion_strip(cmd, out, &fp, &r, zoom)) != CLI_OK) goto done;
    printf("homography (A -> B): [%.6g %.6g %.6g; %.6g %.6g %.6g; %.6g %.6g %.6g]\n", r.homography[0],
           r.homography[1], r.homography[2], r.homography[3], r.homography[4], r.homography[5],
           r.homography[6], r.homography[7], r.homography[8]);
    printf("wrote %s/{mixed,global,local}.flo, homography.txt, strip.png\n", out);
done:
    frame_pair_free(&fp);
    glocal_result_free(&r);
    glocal_model_free(&m);
    return code;
}
