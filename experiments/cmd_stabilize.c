/* glocal stabilize — a video stabilized by the camera (global) motion:
 * per-pair homographies, a smooth camera path, every frame warped and
 * cropped (motion/stabilize.h, experiments/stabilize_video.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/video.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/stabilize_video.h"

GLOCAL_COMMAND(stabilize, "stabilize", "stabilize a video by its camera motion (GLOCAL, L1-optimal path)")

/* --smooth l1 | gauss:S */
static int parse_smooth(void *ctx, const char *v, char *why, size_t n)
{
    stab_config *c = ctx;
    char *end;
    if (!strcmp(v, "l1")) {
        c->path = STAB_PATH_L1;
        return 0;
    }
    if (!strncmp(v, "gauss:", 6)) {
        long s = strtol(v + 6, &end, 10);
        if (end != v + 6 && !*end && s >= 1 && s <= 1000) {
            c->path = STAB_PATH_GAUSSIAN;
            c->smoothing = (int)s;
            return 0;
        }
    }
    return snprintf(why, n, "'%s' is not l1 or gauss:S with S in 1..1000 frames", v), -1;
}

/* --crop auto | none | FRACTION */
static int parse_crop(void *ctx, const char *v, char *why, size_t n)
{
    stab_config *c = ctx;
    char *end;
    if (!strcmp(v, "auto")) c->crop_mode = STAB_CROP_AUTO;
    else if (!strcmp(v, "none")) c->crop_mode = STAB_CROP_NONE;
    else {
        double f = strtod(v, &end);
        if (end == v || *end || !(f >= 0.5 && f <= 1))
            return snprintf(why, n, "'%s' is not auto, none or a fraction in [0.5, 1]", v), -1;
        c->crop_mode = STAB_CROP_FIXED;
        c->crop = f;
    }
    return 0;
}

/* The progress lines; a Ctrl-C (or SIGTERM) stops the passes at the next
 * frame, and the writers are aborted: no OUT, no temporary file. */
static int progress(void *ctx, int stage, long done, long total)
{
    cli_progress *p = ctx;
    static const char *const label[3] = { "motion", "writing", "scoring" };
    if (p[stage].label == NULL) cli_progress_start(&p[stage], label[stage], total);
    p[stage].total = total;
    if (done >= total) cli_progress_end(&p[stage], done, NULL);
    else cli_progress_update(&p[stage], done, NULL);
    return cli_signal_caught();
}

/* .avi: MPEG-4 (quality = qscale); anything else: H.264 (quality = CRF). */
static int writer_opts_for(const char *cmd, const char *path, long quality, int audio, const char *in,
                           double fps, video_writer_opts *wo)
{
    *wo = video_writer_opts_default();
    const char *dot = strrchr(path, '.');
    int avi = dot && !strcmp(dot, ".avi");
    if (!avi) {
        wo->codec = VIDEO_CODEC_H264;
        wo->gop = (int)fmin(600, fmax(12, round(10 * fps)));   /* a key frame every ~10 s */
    }
    if (quality >= 0) {
        if (avi && (quality < 1 || quality > 31))
            return cli_usage_error(cmd, "option '--quality': %ld is out of range 1..31 (the MPEG-4 quantiser of "
                                   "an .avi output)", quality);
        if (avi) wo->qscale = (int)quality;
        else wo->crf = (int)quality;
    }
    wo->audio_from = audio ? in : NULL;
    return 0;
}

/* Long (~145 lines), 50 of them the option table and help text (cli_parse). */
int cmd_stabilize(int argc, char **argv)
{
    const char *cmd = "stabilize";
    const char *model_path = NULL, *compare = NULL, *transforms = NULL, *files[2] = { NULL, NULL };
    int method = -1, nfiles = 0, audio = 1, work_h = 0, work_w = 0;
    long quality = -1, batch = 8;
    stab_config sc = stab_config_default();
    cli_opt opts[] = {
        CLI_STR("--model", &model_path, "M", "a checkpoint of glocal train-motion (for --method glocal)"),
        CLI_CHOICE("--method", &method, stab_motion_names,
                   "camera motion between consecutive frames: GLOCAL's network then the robust "
                   "refinement weighted by its background mask; the refinement alone from the identity; "
                   "TV-L1 or DIS flow with a RANSAC homography",
                   .def = "glocal with --model, else refine"),
        CLI_CALL("--smooth", parse_smooth, &sc, "l1|gauss:S",
                 "camera path: L1-optimal (Grundmann et al. 2011: still, constant pan or ease in/out, "
                 "never showing a border) or a Gaussian of S frames each side (vid.stab's smoothing=S)",
                 .def = "l1"),
        CLI_CALL("--crop", parse_crop, &sc, "auto|F|none",
                 "auto: the largest window every frame covers (at least 0.8 of each side); F: that "
                 "fraction of each side (the L1 path may zoom a few % further to follow the camera's "
                 "zoom: --transforms has the warps); none: no zoom, the uncovered border is black",
                 .def = "auto"),
        CLI_SIZE("--size", &work_h, &work_w, "HxW",
                 "estimate the motion on frames resized to this (faster; the homographies are scaled "
                 "back)", .def = "the video's size"),
        CLI_NUM("--quality", &quality, 0, 51, "Q",
                "H.264 constant rate factor (0 lossless .. 51, lower is better) or, for an .avi "
                "output, the MPEG-4 quantiser 1..31", .def = "18, or 2 for .avi"),
        CLI_STR("--compare", &compare, "FILE", "also write input | stabilized side by side (twice as wide)"),
        CLI_NOFLAG("--no-audio", &audio, "leave the input's audio out (default: copied as it is)"),
        CLI_STR("--transforms", &transforms, "FILE",
                "write the warp of every frame (output pixel -> input pixel): lines 't h0 .. h8'"),
        CLI_NUM("--batch", &batch, 1, 256, "N", "frame pairs per network call (--method glocal)"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .arg = files, .min_args = 2, .max_args = 2, .nargs = &nfiles,
        .args = "IN OUT",
        .about = "Stabilizes the video IN into OUT: the homography between every pair of\n"
                 "consecutive frames by --method, the camera path they make, smoothed (--smooth),\n"
                 "and every frame warped onto the smooth path and cropped so that no undefined\n"
                 "border shows (--crop). OUT has IN's size, frame rate and frame count; .avi is\n"
                 "MPEG-4, anything else (.mp4, .mkv) H.264. IN's audio is copied. OUT appears\n"
                 "only when complete.\n",
        .epilog = "Example:\n"
                  "  glocal stabilize shaky.mp4 steady.mp4 --model results/motion/128/glocal.h5 \\\n"
                  "      --compare side-by-side.mp4\n"
                  "Exit status: 0 done, 1 failed (nothing written), 2 usage error, 130 interrupted\n"
                  "(SIGINT), 143 terminated (SIGTERM): nothing written either.\n",
    };
    int code = cli_parse(&spec, argc, argv);
    if (code != CLI_PARSED) return code;
    if (method < 0) method = model_path ? STAB_MOTION_GLOCAL : STAB_MOTION_REFINE;
    if (method == STAB_MOTION_GLOCAL && !model_path)
        return cli_usage_error(cmd, "--method glocal needs --model M (or use --method refine)");
    if (model_path && method != STAB_MOTION_GLOCAL)
        return cli_usage_error(cmd, "--model is used by --method glocal only");
    const char *in = files[0], *out = files[1];
    if (!strcmp(in, out) || (compare && (!strcmp(compare, in) || !strcmp(compare, out))))
        return cli_usage_error(cmd, "IN, OUT and --compare must be different files");

    int rc;
    code = CLI_FAIL;
    video_reader *r = NULL;
    video_writer *w = NULL, *wc = NULL;
    glocal_model *model = NULL;
    double *h = NULL;
    stab_plan plan = { 0 };
    cli_progress pr[3];
    int handlers = 0;
    memset(pr, 0, sizeof pr);
    video_info vi;
    /* the input first: a damaged file fails before anything is written */
    if ((rc = video_reader_open(&r, in, NULL)) < 0) { cli_fail(cmd, rc, "cannot read %s", in); goto done; }
    video_reader_info(r, &vi);
    video_reader_close(&r);
    video_writer_opts wo, wco;
    if ((code = writer_opts_for(cmd, out, quality, audio, in, vi.fps, &wo)) != 0) goto done;
    if (compare && (code = writer_opts_for(cmd, compare, quality, audio, in, vi.fps, &wco)) != 0) goto done;
    code = CLI_FAIL;
    /* the writers next: an unwritable OUT fails before the long passes */
    if ((rc = video_writer_open(&w, out, vi.width, vi.height, vi.fps, &wo)) < 0) {
        cli_fail(cmd, rc, "cannot write %s", out);
        goto done;
    }
    if (compare && (rc = video_writer_open(&wc, compare, 2 * vi.width, vi.height, vi.fps, &wco)) < 0) {
        cli_fail(cmd, rc, "cannot write %s", compare);
        goto done;
    }
    stab_motion_config mc;
    if ((rc = stab_motion_config_setup(&mc, (stab_motion_method)method, work_w, work_h, model_path, &model)) < 0) {
        cli_fail(cmd, rc, "cannot load the model %s", model_path);
        goto done;
    }
    mc.batch = (int)batch;
    cli_signals_catch();
    handlers = 1;
    double t0 = gl_now();
    long n = 0;
    if ((rc = stab_video_motion(in, &mc, progress, pr, &h, &n, &vi)) < 0) {
        cli_fail(cmd, rc, "motion of %s", in);
        goto done;
    }
    double t1 = gl_now();
    if (n > 100000) { cli_fail(cmd, GL_EINVAL, "%s: %ld frames: at most 100000", in, n); goto done; }
    if ((rc = stab_plan_compute(h, (int)n, vi.width, vi.height, &sc, &plan)) < 0) {
        cli_fail(cmd, rc, "camera path of %s", in);
        goto done;
    }
    double t2 = gl_now();
    if ((rc = stab_video_render(in, &plan, w, wc, progress, pr)) < 0) {
        cli_fail(cmd, rc, "writing %s", out);
        goto done;
    }
    if (transforms && (rc = stab_homographies_write(transforms, plan.warp, n)) < 0) {
        cli_fail(cmd, rc, "cannot write %s", transforms);
        goto done;
    }
    if ((rc = video_writer_close(&w)) < 0) { cli_fail(cmd, rc, "cannot finish %s", out); goto done; }
    if (wc && (rc = video_writer_close(&wc)) < 0) { cli_fail(cmd, rc, "cannot finish %s", compare); goto done; }
    double t3 = gl_now();
    printf("%s: %ld frames %dx%d at %.4g fps, motion by %s%s, %s path, crop %.3f%s\n", out, n, vi.width,
           vi.height, vi.fps, stab_motion_names[method], work_w ? " (at the --size)" : "",
           sc.path == STAB_PATH_L1 ? "L1" : "Gaussian", plan.crop,
           plan.limited ? " (some frames held back to fit it)" : "");
    printf("seconds: motion %.2f, path %.2f, warp+write %.2f; %.3f s/frame\n", t1 - t0, t2 - t1, t3 - t2,
           (t3 - t0) / (double)n);
    if (compare) printf("side by side: %s\n", compare);
    code = CLI_OK;
done:
    video_writer_abort(&w);
    video_writer_abort(&wc);
    if (handlers) {
        cli_signals_restore();
        if (cli_signal_caught()) {
            fprintf(stderr, "glocal %s: stopped by signal %d: nothing written\n", cmd, cli_signal_caught());
            code = 128 + cli_signal_caught();
        }
    }
    stab_plan_free(&plan);
    gl_free(h);
    glocal_model_free(&model);
    return code;
}
