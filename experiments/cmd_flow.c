/* glocal flow — classical motion between two images: TV-L1 or DIS, either
 * minus the best homography (local motion), or the RGB difference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/image.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "motion/flow.h"

GLOCAL_COMMAND(flow, "flow", "optical flow (TV-L1, DIS, flow minus homography) or RGB difference of two images")

/* Portable FloatMap, 3 channels: "PF", size, -1 (little-endian), rows
 * bottom to top, RGB interleaved. */
static int write_pfm(const char *path, const float *planar, int w, int h)
{
    char head[64];
    int hl = snprintf(head, sizeof head, "PF\n%d %d\n-1.0\n", w, h);
    size_t n = (size_t)w * h, size = (size_t)hl + 12 * n;
    uint8_t *b = gl_malloc(size);
    if (!b) return GL_ENOMEM;
    memcpy(b, head, (size_t)hl);
    uint8_t *o = b + hl;
    for (int y = h - 1; y >= 0; y--)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = planar[c * n + (size_t)y * w + x];
                uint32_t u;
                memcpy(&u, &v, 4);
                for (int k = 0; k < 4; k++) *o++ = (uint8_t)(u >> (8 * k));
            }
    int rc = gl_write_file_atomic(path, b, size);
    gl_free(b);
    return rc;
}

static int save_flow_png(const char *path, const flow_field *f, float max_radius)
{
    uint8_t *rgb = gl_malloc((size_t)f->width * f->height * 3);
    if (!rgb) return GL_ENOMEM;
    int rc = flow_colorize(f, max_radius, rgb);
    if (rc >= 0) rc = image_save_png(path, rgb, f->width, f->height, 3);
    gl_free(rgb);
    return rc;
}

/* --method's choices, in this order. */
enum { M_TVL1, M_TVL1_MINUS_H, M_DIS, M_DIS_MINUS_H, M_RGBDIFF };
static const char *const methods[] = { "tvl1", "tvl1-minus-homography", "dis", "dis-minus-homography",
                                       "rgbdiff", NULL };
static const char *const presets[] = { "ultrafast", "fast", "medium", NULL };

/* Whether an option of the TV-L1 section (after its CLI_SECTION, before the
 * next) was given: they do not apply to DIS. */
static const char *tvl1_option_given(const cli_opt *opts)
{
    int in = 0;
    for (const cli_opt *o = opts; o->kind != CLI_K_END; o++) {
        if (o->kind == CLI_K_SECTION) in = !strncmp(o->name, "TV-L1", 5);
        else if (in && o->count) return o->name;
    }
    return NULL;
}

/* What the options ask for. */
typedef struct {
    const char *paths[2];        /* A, B */
    const char *out, *png, *eval, *global_out;
    int method, preset, step, zero_inliers;
    double max_radius;
    tvl1_config tvl1;
    dis_config dis;
    homography_ransac_config ransac;
} flow_args;

static int flow_is_dis(const flow_args *a) { return a->method == M_DIS || a->method == M_DIS_MINUS_H; }
static int flow_minus_h(const flow_args *a) { return a->method == M_TVL1_MINUS_H || a->method == M_DIS_MINUS_H; }

/* The checks that involve several options. CLI_PARSED, or CLI_USAGE after
 * saying what is wrong. */
static int flow_args_check(const char *cmd, const cli_opt *opts, const flow_args *a)
{
    if (a->method == M_RGBDIFF && (a->eval || a->global_out))
        return cli_usage_error(cmd, "--eval and --global need a flow method, not rgbdiff");
    const int is_dis = flow_is_dis(a);
    if (a->global_out && !flow_minus_h(a))
        return cli_usage_error(cmd, "--global needs --method tvl1-minus-homography or dis-minus-homography");
    const char *tv_opt = tvl1_option_given(opts);
    if (is_dis && tv_opt) return cli_usage_error(cmd, "%s is a TV-L1 option; --method is %s", tv_opt, methods[a->method]);
    for (const cli_opt *o = opts; o->kind != CLI_K_END; o++)
        if (o->ptr == &a->preset && o->count && !is_dis)
            return cli_usage_error(cmd, "--preset applies to --method dis and dis-minus-homography");
    return CLI_PARSED;
}

/* Images A and B, both RGB and of one size. CLI_OK, or CLI_FAIL after saying why. */
static int flow_load_pair(const char *cmd, const char *const paths[2], image img[2])
{
    for (int k = 0; k < 2; k++) {
        int rc = image_load(&img[k], paths[k], 3);
        if (rc < 0) return cli_fail(cmd, rc, "cannot read image %s", paths[k]);
    }
    int w = img[0].width, h = img[0].height;
    if (img[1].width != w || img[1].height != h) {
        fprintf(stderr, "glocal flow: %s is %dx%d but %s is %dx%d\n", paths[0], w, h, paths[1],
                img[1].width, img[1].height);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* --method rgbdiff: the difference as PFM, and its picture. */
static int flow_rgbdiff(const char *cmd, const flow_args *a, const image img[2])
{
    const int w = img[0].width, h = img[0].height;
    const size_t n = (size_t)w * h;
    int rc, status = CLI_FAIL;
    uint8_t *pic = NULL;
    float *diff = gl_malloc(sizeof(float) * 3 * n);
    if (!diff) return cli_fail(cmd, GL_ENOMEM, "cannot allocate");
    rgbdiff_compute(img[0].data, img[1].data, w, h, diff);
    if ((rc = write_pfm(a->out, diff, w, h)) < 0) {
        cli_fail(cmd, rc, "cannot write %s", a->out);
        goto done;
    }
    if (a->png) {
        pic = gl_malloc(3 * n);
        if (!pic) {
            cli_fail(cmd, GL_ENOMEM, "cannot allocate");
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                pic[3 * i + c] = (uint8_t)lrintf(127.5f + 127.5f * diff[c * n + i]);
        if ((rc = image_save_png(a->png, pic, w, h, 3)) < 0) {
            cli_fail(cmd, rc, "cannot write %s", a->png);
            goto done;
        }
    }
    printf("rgbdiff %dx%d -> %s\n", w, h, a->out);
    status = CLI_OK;
done:
    gl_free(pic);
    gl_free(diff);
    return status;
}

/* The flow into f, and with a minus-homography method the homography H, its
 * flow (glob) and the rest (loc), through the baseline eval-motion and
 * extract use (motion/flow.h). CLI_OK, or CLI_FAIL after saying why. */
static int flow_compute(const char *cmd, const flow_args *a, const image img[2], flow_field *f,
                        flow_field *glob, flow_field *loc, double H[9])
{
    const int w = img[0].width, h = img[0].height, is_dis = flow_is_dis(a);
    flow_baseline_config bc;
    flow_baseline_config_default(&bc);
    bc.method = is_dis ? flow_method_dis : flow_method_tvl1;
    bc.method_cfg = is_dis ? (const void *)&a->dis : (const void *)&a->tvl1;
    bc.step = a->step;
    bc.ransac = a->ransac;
    bc.zero_inliers = a->zero_inliers;
    int rc;
    if ((rc = flow_field_new(f, w, h)) < 0) return cli_fail(cmd, rc, "cannot allocate");
    if (!flow_minus_h(a)) rc = flow_from_rgb24(img[0].data, img[1].data, w, h, bc.method, bc.method_cfg, f);
    else if ((rc = flow_field_new(glob, w, h)) >= 0 && (rc = flow_field_new(loc, w, h)) >= 0)
        rc = flow_baseline_rgb24(img[0].data, img[1].data, w, h, &bc, H, f, glob, loc);
    if (rc < 0)
        return cli_fail(cmd, rc, "%s failed on %s -> %s", methods[a->method], a->paths[0], a->paths[1]);
    return CLI_OK;
}

/* --eval: the average end-point error of f against the .flo at path. */
static int flow_print_epe(const char *cmd, const char *path, const flow_field *f)
{
    flow_field gt = { 0 };
    double epe;
    long cnt;
    int rc = flow_read_flo(path, &gt), status = CLI_FAIL;
    if (rc < 0) cli_fail(cmd, rc, "cannot read ground truth");
    else if ((rc = flow_epe(f, &gt, 0, &epe, &cnt)) < 0) cli_fail(cmd, rc, "cannot compare with %s", path);
    else {
        printf("epe %.4f px over %ld pixels\n", epe, cnt);
        status = CLI_OK;
    }
    flow_field_free(&gt);
    return status;
}

/* The results: H printed and --global with a minus-homography method; --out
 * gets the flow (the local flow with those), --png its picture. */
static int flow_write(const char *cmd, const flow_args *a, const flow_field *f, const flow_field *glob,
                      const flow_field *loc, const double H[9])
{
    int rc;
    const flow_field *result = f;
    if (flow_minus_h(a)) {
        printf("homography %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", H[0], H[1], H[2],
               H[3], H[4], H[5], H[6], H[7], H[8]);
        if (a->global_out && (rc = flow_write_flo(a->global_out, glob)) < 0)
            return cli_fail(cmd, rc, "cannot write %s", a->global_out);
        result = loc;
    }
    if ((rc = flow_write_flo(a->out, result)) < 0) return cli_fail(cmd, rc, "cannot write %s", a->out);
    if (a->png && (rc = save_flow_png(a->png, result, (float)a->max_radius)) < 0)
        return cli_fail(cmd, rc, "cannot write %s", a->png);
    return CLI_OK;
}

/* The flow methods: compute (timed), --eval, write, one summary line. */
static int flow_run(const char *cmd, const flow_args *a, const image img[2])
{
    const int w = img[0].width, h = img[0].height, is_dis = flow_is_dis(a);
    flow_field f = { 0 }, glob = { 0 }, loc = { 0 };
    double H[9];
    double t0 = gl_now();
    int status = flow_compute(cmd, a, img, &f, &glob, &loc, H);
    double t_flow = gl_now() - t0;
    if (status == CLI_OK && a->eval) status = flow_print_epe(cmd, a->eval, &f);
    if (status == CLI_OK) status = flow_write(cmd, a, &f, &glob, &loc, H);
    if (status == CLI_OK)
        printf("%s%s%s %dx%d in %.3f s (%d threads) -> %s\n", methods[a->method], is_dis ? " preset " : "",
               is_dis ? presets[a->preset] : "", w, h, t_flow, gl_num_threads(), a->out);
    flow_field_free(&loc);
    flow_field_free(&glob);
    flow_field_free(&f);
    return status;
}

int cmd_flow(int argc, char **argv)
{
    const char *cmd = "flow";
    flow_args a = { .method = M_TVL1, .preset = 2 /* medium */, .step = 4 };
    tvl1_config ocv;
    tvl1_config_default(&a.tvl1);
    tvl1_config_opencv(&ocv);
    homography_ransac_config_default(&a.ransac);
    int npaths = 0, opencv = 0;
    char ocv_help[256];
    snprintf(ocv_help, sizeof ocv_help,
             "start from OpenCV's DualTVL1 defaults instead: %d scales at %g, median %d every %d "
             "iterations, no pre-smoothing; the options here still override them",
             ocv.scales, (double)ocv.zoom, ocv.median, ocv.median_every);
    tvl1_config *cfg = &a.tvl1;
    cli_opt opts[] = {
        CLI_CHOICE("--method", &a.method, methods, "see above"),
        CLI_STR("--out", &a.out, "FILE", "result; written atomically", .required = 1),
        CLI_STR("--png", &a.png, "FILE", "picture: Middlebury colour coding of the flow"),
        CLI_NUM("--max-radius", &a.max_radius, -INFINITY, INFINITY, "PX",
                "flow magnitude shown fully saturated", .def = "the largest"),
        CLI_STR("--eval", &a.eval, "GT.flo", "print the average end-point error of the flow"),
        CLI_SECTION("TV-L1 (defaults: IPOL)"),
        CLI_FLAG("--opencv-defaults", &opencv, ocv_help),
        CLI_NUM("--scales", &cfg->scales, 0, 100, "N", "pyramid scales, 0 = all the image allows"),
        CLI_NUM("--zoom", &cfg->zoom, -INFINITY, INFINITY, "Z", "down-sampling factor per scale"),
        CLI_NUM("--warps", &cfg->warps, 1, 1000, "N", "warpings per scale"),
        CLI_NUM("--tau", &cfg->tau, -INFINITY, INFINITY, "T", "time step"),
        CLI_NUM("--lambda", &cfg->lambda, -INFINITY, INFINITY, "L", "data term weight"),
        CLI_NUM("--theta", &cfg->theta, -INFINITY, INFINITY, "T", "coupling"),
        CLI_NUM("--epsilon", &cfg->epsilon, -INFINITY, INFINITY, "E", "stopping threshold, pixels"),
        CLI_NUM("--iterations", &cfg->iterations, 1, 100000, "N", "maximum iterations per warping"),
        CLI_NUM("--median", &cfg->median, 0, 5, "K", "median filter size 3 or 5, 0 = off"),
        CLI_NUM("--median-every", &cfg->median_every, 0, 100000, "N",
                "filter every N iterations; 0 = once after each warping"),
        CLI_SECTION("DIS"),
        CLI_CHOICE("--preset", &a.preset, presets,
                   "OpenCV's DISOpticalFlow presets (finest scale 2, 2, 1; patch stride 4, 4, 3; 12, 16, 25 "
                   "iterations per patch; variational refinement but for ultrafast)"),
        CLI_SECTION("Flow minus homography"),
        CLI_NUM("--step", &a.step, 1, 1000, "N", "fit on every N-th pixel in x and y"),
        CLI_NUM("--threshold", &a.ransac.threshold, 0, INFINITY, "PX", "RANSAC inlier distance", .open_lo = 1),
        CLI_FLAG("--zero-inliers", &a.zero_inliers, "local flow exactly 0 on the homography's inliers"),
        CLI_STR("--global", &a.global_out, "FILE", "also write the homography's flow (.flo)"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .args = "A B", .arg = a.paths, .min_args = 2, .max_args = 2, .nargs = &npaths,
        .about = "Motion from image A to image B (PNG, JPEG, PPM/PGM, BMP; same size):\n"
                 "  tvl1                    TV-L1 optical flow (Zach et al. 2007, as in IPOL 2013);\n"
                 "                          --out gets a Middlebury .flo file\n"
                 "  tvl1-minus-homography   TV-L1, then a homography fitted to it (RANSAC +\n"
                 "                          least squares) is the global motion; --out gets the\n"
                 "                          local flow (TV-L1 minus the homography's flow) as .flo,\n"
                 "                          --global the homography's flow; H is printed\n"
                 "  dis                     DIS optical flow (Kroeger et al. 2016, as OpenCV's\n"
                 "                          DISOpticalFlow; --preset); --out gets a .flo file\n"
                 "  dis-minus-homography    DIS, then the homography as for tvl1-minus-homography\n"
                 "  rgbdiff                 (B - A)/255 per channel (TSN's RGBDiff); --out gets a\n"
                 "                          3-channel PFM (float32), --png shows 128 + 127.5*diff\n",
        .epilog = "Threads: the global --threads N (glocal --threads 2 flow ...).\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (opencv) { /* OpenCV's defaults, then every option over them again, wherever it stood */
        a.tvl1 = ocv;
        cli_parse(&spec, argc, argv);
    }
    if ((rc = flow_args_check(cmd, opts, &a)) != CLI_PARSED) return rc;
    dis_config_preset(&a.dis, presets[a.preset]);
    rc = tvl1_config_validate(&a.tvl1);
    if (rc < 0) return cli_usage_error(cmd, "%s", gl_last_error());

    image img[2] = { { 0 } };
    int status = flow_load_pair(cmd, a.paths, img);
    if (status == CLI_OK) status = a.method == M_RGBDIFF ? flow_rgbdiff(cmd, &a, img) : flow_run(cmd, &a, img);
    image_release(&img[1]);
    image_release(&img[0]);
    return status;
}
