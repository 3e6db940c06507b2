/* glocal flow — classical motion between two images: TV-L1, TV-L1 minus the
 * best homography (local motion), or the RGB difference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/image.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "motion/flow.h"

GLOCAL_COMMAND(flow, "flow", "optical flow (TV-L1, flow minus homography) or RGB difference of two images")

static void flow_help(void)
{
    tvl1_config d, o;
    tvl1_config_default(&d);
    tvl1_config_opencv(&o);
    homography_ransac_config r;
    homography_ransac_config_default(&r);
    printf("usage: glocal flow [--method tvl1|tvl1-minus-homography|rgbdiff] A B --out FILE\n"
           "                  [--png PICTURE.png] [--eval GT.flo] [options]\n\n"
           "Motion from image A to image B (PNG, JPEG, PPM/PGM, BMP; same size):\n"
           "  tvl1                    TV-L1 optical flow (Zach et al. 2007, as in IPOL 2013);\n"
           "                          --out gets a Middlebury .flo file\n"
           "  tvl1-minus-homography   TV-L1, then a homography fitted to it (RANSAC +\n"
           "                          least squares) is the global motion; --out gets the\n"
           "                          local flow (TV-L1 minus the homography's flow) as .flo,\n"
           "                          --global the homography's flow; H is printed\n"
           "  rgbdiff                 (B - A)/255 per channel (TSN's RGBDiff); --out gets a\n"
           "                          3-channel PFM (float32), --png shows 128 + 127.5*diff\n\n"
           "  --out FILE              result (required); written atomically\n"
           "  --png FILE              picture: Middlebury colour coding of the flow\n"
           "  --max-radius PX         flow magnitude shown fully saturated (default: largest)\n"
           "  --eval GT.flo           print the average end-point error of the TV-L1 flow\n\n"
           "TV-L1 (defaults: IPOL; --opencv-defaults first switches to OpenCV's DualTVL1\n"
           "defaults, and any option below still overrides):\n"
           "  --scales N              pyramid scales, 0 = all the image allows (%d; OpenCV %d)\n"
           "  --zoom Z                down-sampling factor per scale (%g; OpenCV %g)\n"
           "  --warps N               warpings per scale (%d)\n"
           "  --tau T                 time step (%g)\n"
           "  --lambda L              data term weight (%g)\n"
           "  --theta T               coupling (%g)\n"
           "  --epsilon E             stopping threshold, pixels (%g)\n"
           "  --iterations N          maximum iterations per warping (%d)\n"
           "  --median K              median filter size 3 or 5, 0 = off (%d; OpenCV %d every\n"
           "                          %d iterations)\n"
           "  --median-every N        0 = once after each warping (%d)\n"
           "  --opencv-defaults       5 scales at 0.8, median 5 every 30, no pre-smoothing\n\n"
           "Flow minus homography:\n"
           "  --step N                fit on every N-th pixel in x and y (default 4)\n"
           "  --threshold PX          RANSAC inlier distance (default %g)\n"
           "  --zero-inliers          local flow exactly 0 on the homography's inliers\n"
           "  --global FILE           also write the homography's flow (.flo)\n\n"
           "Threads: the global --threads N (glocal --threads 2 flow ...).\n",
           d.scales, o.scales, d.zoom, o.zoom, d.warps, d.tau, d.lambda, d.theta, d.epsilon,
           d.iterations, d.median, o.median, o.median_every, d.median_every, r.threshold);
}

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

enum { M_TVL1, M_MINUS_H, M_RGBDIFF };

int cmd_flow(int argc, char **argv)
{
    const char *cmd = "flow";
    tvl1_config cfg;
    tvl1_config_default(&cfg);
    homography_ransac_config rc_cfg;
    homography_ransac_config_default(&rc_cfg);
    /* --opencv-defaults first, so the other options override it wherever
     * they are on the line. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--opencv-defaults")) tvl1_config_opencv(&cfg);
    const char *paths[2] = { NULL, NULL }, *out = NULL, *png = NULL, *eval = NULL,
               *global_out = NULL;
    int npaths = 0, method = M_TVL1, step = 4, zero_inliers = 0;
    double max_radius = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            flow_help();
            return CLI_OK;
        }
        if (!strcmp(a, "--opencv-defaults")) continue;
        if (!strcmp(a, "--zero-inliers")) {
            zero_inliers = 1;
            continue;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (npaths == 2) return cli_usage_error(cmd, "unexpected argument '%s'", a);
            paths[npaths++] = a;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        long n;
        double x;
        if (!strcmp(a, "--method")) {
            if (!strcmp(v, "tvl1")) method = M_TVL1;
            else if (!strcmp(v, "tvl1-minus-homography")) method = M_MINUS_H;
            else if (!strcmp(v, "rgbdiff")) method = M_RGBDIFF;
            else
                return cli_usage_error(
                    cmd, "--method expects tvl1, tvl1-minus-homography or rgbdiff, got '%s'", v);
        } else if (!strcmp(a, "--out")) {
            out = v;
        } else if (!strcmp(a, "--png")) {
            png = v;
        } else if (!strcmp(a, "--eval")) {
            eval = v;
        } else if (!strcmp(a, "--global")) {
            global_out = v;
        } else if (!strcmp(a, "--max-radius")) {
            if (cli_parse_double(cmd, a, v, &max_radius) < 0) return CLI_USAGE;
        } else if (!strcmp(a, "--scales")) {
            if (cli_parse_int(cmd, a, v, 0, 100, &n) < 0) return CLI_USAGE;
            cfg.scales = (int)n;
        } else if (!strcmp(a, "--warps")) {
            if (cli_parse_int(cmd, a, v, 1, 1000, &n) < 0) return CLI_USAGE;
            cfg.warps = (int)n;
        } else if (!strcmp(a, "--iterations")) {
            if (cli_parse_int(cmd, a, v, 1, 100000, &n) < 0) return CLI_USAGE;
            cfg.iterations = (int)n;
        } else if (!strcmp(a, "--median")) {
            if (cli_parse_int(cmd, a, v, 0, 5, &n) < 0) return CLI_USAGE;
            cfg.median = (int)n;
        } else if (!strcmp(a, "--median-every")) {
            if (cli_parse_int(cmd, a, v, 0, 100000, &n) < 0) return CLI_USAGE;
            cfg.median_every = (int)n;
        } else if (!strcmp(a, "--step")) {
            if (cli_parse_int(cmd, a, v, 1, 1000, &n) < 0) return CLI_USAGE;
            step = (int)n;
        } else if (!strcmp(a, "--zoom") || !strcmp(a, "--tau") || !strcmp(a, "--lambda") ||
                   !strcmp(a, "--theta") || !strcmp(a, "--epsilon") ||
                   !strcmp(a, "--threshold")) {
            if (cli_parse_double(cmd, a, v, &x) < 0) return CLI_USAGE;
            if (!strcmp(a, "--zoom")) cfg.zoom = (float)x;
            else if (!strcmp(a, "--tau")) cfg.tau = (float)x;
            else if (!strcmp(a, "--lambda")) cfg.lambda = (float)x;
            else if (!strcmp(a, "--theta")) cfg.theta = (float)x;
            else if (!strcmp(a, "--epsilon")) cfg.epsilon = (float)x;
            else rc_cfg.threshold = x;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (npaths != 2) return cli_usage_error(cmd, "expected two images A B, got %d", npaths);
    if (!out) return cli_usage_error(cmd, "--out FILE is required");
    if (method == M_RGBDIFF && (eval || global_out))
        return cli_usage_error(cmd, "--eval and --global need a flow method, not rgbdiff");
    if (global_out && method != M_MINUS_H)
        return cli_usage_error(cmd, "--global needs --method tvl1-minus-homography");
    int rc = tvl1_config_validate(&cfg);
    if (rc < 0) return cli_usage_error(cmd, "%s", gl_last_error());
    if (!(rc_cfg.threshold > 0)) return cli_usage_error(cmd, "--threshold expects > 0 pixels");

    image img[2] = { { 0 } };
    float *gray[2] = { NULL, NULL }, *diff = NULL;
    uint8_t *pic = NULL;
    flow_field f = { 0 }, glob = { 0 }, loc = { 0 }, gt = { 0 };
    int status = CLI_FAIL;
    for (int k = 0; k < 2; k++) {
        rc = image_load(&img[k], paths[k], 3);
        if (rc < 0) {
            cli_fail(cmd, rc, "cannot read image %s", paths[k]);
            goto done;
        }
    }
    int w = img[0].width, h = img[0].height;
    if (img[1].width != w || img[1].height != h) {
        fprintf(stderr, "glocal flow: %s is %dx%d but %s is %dx%d\n", paths[0], w, h, paths[1],
                img[1].width, img[1].height);
        goto done;
    }
    double t0 = gl_now();
    if (method == M_RGBDIFF) {
        size_t n = (size_t)w * h;
        diff = gl_malloc(sizeof(float) * 3 * n);
        if (!diff) {
            cli_fail(cmd, GL_ENOMEM, "cannot allocate");
            goto done;
        }
        rgbdiff_compute(img[0].data, img[1].data, w, h, diff);
        if ((rc = write_pfm(out, diff, w, h)) < 0) {
            cli_fail(cmd, rc, "cannot write %s", out);
            goto done;
        }
        if (png) {
            pic = gl_malloc(3 * n);
            if (!pic) {
                cli_fail(cmd, GL_ENOMEM, "cannot allocate");
                goto done;
            }
            for (size_t i = 0; i < n; i++)
                for (int c = 0; c < 3; c++)
                    pic[3 * i + c] = (uint8_t)lrintf(127.5f + 127.5f * diff[c * n + i]);
            if ((rc = image_save_png(png, pic, w, h, 3)) < 0) {
                cli_fail(cmd, rc, "cannot write %s", png);
                goto done;
            }
        }
        printf("rgbdiff %dx%d -> %s\n", w, h, out);
        status = CLI_OK;
        goto done;
    }

    for (int k = 0; k < 2; k++) {
        gray[k] = gl_malloc(sizeof(float) * (size_t)w * h);
        if (!gray[k]) {
            cli_fail(cmd, GL_ENOMEM, "cannot allocate");
            goto done;
        }
        flow_gray_from_rgb24(img[k].data, w, h, gray[k]);
    }
    if ((rc = flow_field_new(&f, w, h)) < 0 || (rc = tvl1_flow(gray[0], gray[1], w, h, &cfg, &f)) < 0) {
        cli_fail(cmd, rc, "TV-L1 failed on %s -> %s", paths[0], paths[1]);
        goto done;
    }
    double t_flow = gl_now() - t0;
    if (eval) {
        double epe;
        long cnt;
        if ((rc = flow_read_flo(eval, &gt)) < 0) {
            cli_fail(cmd, rc, "cannot read ground truth");
            goto done;
        }
        if ((rc = flow_epe(&f, &gt, 0, &epe, &cnt)) < 0) {
            cli_fail(cmd, rc, "cannot compare with %s", eval);
            goto done;
        }
        printf("epe %.4f px over %ld pixels\n", epe, cnt);
    }
    const flow_field *result = &f;
    if (method == M_MINUS_H) {
        double H[9];
        if ((rc = flow_field_new(&glob, w, h)) < 0 || (rc = flow_field_new(&loc, w, h)) < 0 ||
            (rc = flow_minus_homography(&f, step, &rc_cfg, zero_inliers, H, &glob, &loc)) < 0) {
            cli_fail(cmd, rc, "cannot fit a homography to the flow");
            goto done;
        }
        printf("homography %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", H[0], H[1], H[2],
               H[3], H[4], H[5], H[6], H[7], H[8]);
        if (global_out && (rc = flow_write_flo(global_out, &glob)) < 0) {
            cli_fail(cmd, rc, "cannot write %s", global_out);
            goto done;
        }
        result = &loc;
    }
    if ((rc = flow_write_flo(out, result)) < 0) {
        cli_fail(cmd, rc, "cannot write %s", out);
        goto done;
    }
    if (png && (rc = save_flow_png(png, result, (float)max_radius)) < 0) {
        cli_fail(cmd, rc, "cannot write %s", png);
        goto done;
    }
    printf("%s %dx%d in %.3f s (%d threads) -> %s\n", method == M_TVL1 ? "tvl1" : "tvl1-minus-homography",
           w, h, t_flow, gl_num_threads(), out);
    status = CLI_OK;
done:
    flow_field_free(&gt);
    flow_field_free(&loc);
    flow_field_free(&glob);
    flow_field_free(&f);
    gl_free(pic);
    gl_free(diff);
    gl_free(gray[1]);
    gl_free(gray[0]);
    image_release(&img[1]);
    image_release(&img[0]);
    return status;
}
