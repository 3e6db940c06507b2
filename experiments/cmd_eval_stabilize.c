/* glocal eval-stabilize — known shake for a steady clip, and the scores of
 * stabilized videos (ITF, stability, cropping, distortion, jitter left) in
 * one table (experiments/stabilize_video.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/video.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/stabilize_video.h"

GLOCAL_COMMAND(eval_stabilize, "eval-stabilize",
               "shake a steady clip by a known jitter; score stabilized videos against their input")

enum { MAX_VIDEOS = 32 };

static int progress(void *ctx, int stage, long done, long total)
{
    (void)stage;
    cli_progress *p = ctx;
    if (!p->label) cli_progress_start(p, "scoring", total);
    p->total = total;
    if (done >= total) cli_progress_end(p, done, NULL);
    else cli_progress_update(p, done, NULL);
    return 0;
}


static int shake(const char *cmd, const char *steady, const char *shaken, const char *truth,
                 const stab_jitter_config *jc, long quality)
{
    video_reader *r = NULL;
    video_writer *w = NULL;
    double *j = NULL;
    long n = 0;
    int rc, code = CLI_FAIL;
    video_info vi;
    if ((rc = video_reader_open(&r, steady, NULL)) < 0) { cli_fail(cmd, rc, "cannot read %s", steady); goto done; }
    video_reader_info(r, &vi);
    video_reader_close(&r);
    video_writer_opts wo = video_writer_opts_default();
    const char *dot = strrchr(shaken, '.');
    if (!dot || strcmp(dot, ".avi")) wo.codec = VIDEO_CODEC_H264;
    if (quality >= 0) {
        if (wo.codec == VIDEO_CODEC_MPEG4 && quality < 1) return cli_usage_error(cmd, "--quality: 1..31 for .avi");
        if (wo.codec == VIDEO_CODEC_MPEG4) wo.qscale = (int)(quality < 31 ? quality : 31);
        else wo.crf = (int)quality;
    }
    if ((rc = video_writer_open(&w, shaken, vi.width, vi.height, vi.fps, &wo)) < 0) {
        cli_fail(cmd, rc, "cannot write %s", shaken);
        goto done;
    }
    if ((rc = stab_video_shake(steady, jc, w, &j, &n)) < 0) { cli_fail(cmd, rc, "shaking %s", steady); goto done; }
    if ((rc = stab_homographies_write(truth, j, n)) < 0) { cli_fail(cmd, rc, "cannot write %s", truth); goto done; }
    if ((rc = video_writer_close(&w)) < 0) { cli_fail(cmd, rc, "cannot finish %s", shaken); goto done; }
    printf("%s: %ld frames of %s shaken (seed %llu: shift %g px, angle %g rad, zoom %g); steady -> shaken "
           "homographies in %s\n", shaken, n, steady, (unsigned long long)jc->seed, jc->shift, jc->angle, jc->zoom,
           truth);
    code = CLI_OK;
done:
    video_writer_abort(&w);
    gl_free(j);
    return code;
}

/* The Markdown table (stdout); with the truth, the jitter columns
 * ("removed": against the input's frame-to-frame jitter, row 0). */
static void print_table(const char *const *name, const stab_scores *sc, int nv, int truth)
{
    printf("| video | frames | ITF dB | stability (transl., rot.) | cropping | distortion |%s\n",
           truth ? " jitter px/frame (removed) | drift from still px | off ideal px/frame (L1, gauss:15) |" : "");
    printf("|---|---:|---:|---:|---:|---:|%s\n", truth ? "---:|---:|---:|" : "");
    for (int v = 0; v < nv; v++) {
        if (sc[v].frames < 0) {
            printf("| %s | failed | | | | |%s\n", name[v], truth ? " | | |" : "");
            continue;
        }
        printf("| %s | %ld | %.2f | %.3f (%.3f, %.3f) | %.3f | %.3f |", name[v], sc[v].frames, sc[v].itf,
               sc[v].stability, sc[v].stability_translation, sc[v].stability_rotation, sc[v].cropping,
               sc[v].distortion);
        if (truth) {
            double removed = sc[0].frames > 0 && sc[0].jitter_step > 0 ? 1 - sc[v].jitter_step / sc[0].jitter_step : NAN;
            printf(" %.2f (%.1f%%) | %.2f | %.2f, %.2f |", sc[v].jitter_step, 100 * removed, sc[v].jitter,
                   sc[v].off_ideal, sc[v].off_ideal_gauss);
        }
        printf("\n");
    }
    for (int v = 0; truth && v < nv; v++)
        if (sc[v].frames >= 0) {
            printf("ideal = the default L1 path (automatic crop) or the Gaussian of smoothing 15 of the true "
                   "motion; the L1 ideal leaves %.2f px/frame of camera motion, from the truth\n", sc[v].ideal_step);
            break;
        }
}

static int write_json(const char *json, const char *input, const char *method, double window,
                      const char *const *name, const char *const *path, const stab_scores *sc, int nv)
{
    FILE *f = NULL;
    size_t cap = 4096 + (size_t)nv * 1024;
    char *buf = gl_malloc(cap);
    if (buf) f = fmemopen(buf, cap, "w");
    if (!f) {
        gl_free(buf);
        return gl_error(GL_ENOMEM, "out of memory");
    }
    fprintf(f, "{\"input\": \"%s\", \"method\": \"%s\", \"window\": %g, \"videos\": [", input, method, window);
    for (int v = 0; v < nv; v++) {
        fprintf(f, "%s{\"name\": \"%s\", \"path\": \"%s\", ", v ? ", " : "", name[v], path[v]);
        if (sc[v].frames < 0) {
            fprintf(f, "\"failed\": true}");
            continue;
        }
        fprintf(f, "\"frames\": %ld, ", sc[v].frames);
        cli_json_num(f, "itf_db", sc[v].itf, 1);
        cli_json_num(f, "stability", sc[v].stability, 1);
        cli_json_num(f, "stability_translation", sc[v].stability_translation, 1);
        cli_json_num(f, "stability_rotation", sc[v].stability_rotation, 1);
        cli_json_num(f, "cropping", sc[v].cropping, 1);
        cli_json_num(f, "distortion", sc[v].distortion, 1);
        cli_json_num(f, "jitter_px", sc[v].jitter, 1);
        cli_json_num(f, "jitter_step_px", sc[v].jitter_step, 1);
        cli_json_num(f, "off_ideal_px", sc[v].off_ideal, 1);
        cli_json_num(f, "off_ideal_gauss_px", sc[v].off_ideal_gauss, 1);
        cli_json_num(f, "ideal_step_px", sc[v].ideal_step, 0);
        fprintf(f, "}");
    }
    fprintf(f, "]}\n");
    long len = ftell(f);
    fclose(f);
    int rc = len > 0 && (size_t)len < cap - 1 ? gl_write_file_atomic(json, buf, (size_t)len)
                                              : gl_error(GL_ENOMEM, "the JSON of %d videos is too long", nv);
    gl_free(buf);
    return rc;
}

/* Long (~125 lines), 45 of them the option table and help text (cli_parse). */
int cmd_eval_stabilize(int argc, char **argv)
{
    const char *cmd = "eval-stabilize";
    const char *truth = NULL, *model_path = NULL, *json = NULL, *args[2 + MAX_VIDEOS] = { NULL };
    int nargs = 0, method = STAB_MOTION_DIS, work_h = 0, work_w = 0;
    long quality = -1;
    double window = 0.8, angle_deg = 0.5, zoom_pct = 1;
    stab_jitter_config jc = { .shift = 6, .seed = 1 };
    cli_opt opts[] = {
        CLI_STR("--truth", &truth, "FILE",
                "shake: where the steady -> shaken homographies go; score: read them (or, for a .h5, the "
                "camera of a glocal synth clip's ground truth), and report the jitter each video leaves"),
        CLI_SECTION("shake options"),
        CLI_NUM("--seed", &jc.seed, 0, 18446744073709551615.0, "S", "jitter seed (SplitMix64)"),
        CLI_NUM("--shift", &jc.shift, 0, 1000, "PX", "translation, uniform in [-PX, PX] per axis and frame"),
        CLI_NUM("--angle", &angle_deg, 0, 20, "DEG", "rotation about the centre, uniform in [-DEG, DEG]"),
        CLI_NUM("--zoom", &zoom_pct, 0, 20, "PCT", "zoom, exp(u) with u uniform in [-PCT, PCT] %"),
        CLI_NUM("--quality", &quality, 0, 51, "Q", "H.264 CRF, or MPEG-4 quantiser for .avi",
                .def = "18, or 2 for .avi"),
        CLI_SECTION("score options"),
        CLI_CHOICE("--method", &method, stab_motion_names,
                   "how the output's motion is re-estimated (the same for every video); "
                   "tvl1-ransac and dis-ransac are then polished by the robust refinement"),
        CLI_STR("--model", &model_path, "M", "checkpoint for --method glocal"),
        CLI_SIZE("--size", &work_h, &work_w, "HxW", "estimate motion on frames resized to this",
                 .def = "the video's size"),
        CLI_NUM("--window", &window, 0, 1, "F", "ITF: PSNR on the centred F of each side", .open_lo = 1),
        CLI_STR("--json", &json, "FILE", "also write the scores as JSON"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .arg = args, .min_args = 1, .max_args = 2 + MAX_VIDEOS, .nargs = &nargs,
        .usage = "shake STEADY SHAKEN --truth FILE [shake options]\n"
                 "score INPUT [--truth FILE] [score options] [NAME=]VIDEO...",
        .about = "shake: writes STEADY moved by a seeded random jitter (shift, rotation, zoom about\n"
                 "the centre, i.i.d. per frame, plus one zoom-in so no border shows) to SHAKEN, and\n"
                 "the jitter's homographies (steady -> shaken pixels) to --truth.\n"
                 "score: for INPUT and each stabilized VIDEO of it (same size and frame count),\n"
                 "  ITF         mean PSNR of consecutive frames, dB (centred --window)\n"
                 "  stability   Liu et al. 2013: low-frequency share of the path's translation and\n"
                 "              rotation spectra (the output's motion re-estimated), 1 = smooth\n"
                 "  cropping    mean 1 / zoom of input -> output (1 = none)\n"
                 "  distortion  min anisotropy of input -> output (1 = none)\n"
                 "  jitter      with --truth: corner motion (px of the steady frame) left in the\n"
                 "              output frame to frame, and its mean distance from still (the\n"
                 "              steady clip's camera): slow drift counts there; and off ideal:\n"
                 "              its frame-to-frame motion against the default L1 path, and\n"
                 "              the Gaussian of smoothing 15, of the true motion (px/frame).\n"
                 "              A glocal synth clip's ground truth\n"
                 "              (v_..._gt.h5) serves as --truth too: its steady clip is a\n"
                 "              still camera at frame 0\n"
                 "as a Markdown table on stdout.\n",
    };
    int code = cli_parse(&spec, argc, argv);
    if (code != CLI_PARSED) return code;
    const int is_shake = !strcmp(args[0], "shake"), is_score = !strcmp(args[0], "score");
    if (!is_shake && !is_score) return cli_usage_error(cmd, "expected shake or score first, got '%s'", args[0]);
    if (is_shake) {
        if (nargs != 3) return cli_usage_error(cmd, "shake takes STEADY and SHAKEN");
        if (!truth) return cli_usage_error(cmd, "shake needs --truth FILE");
        for (int i = 0; opts[i].kind != CLI_K_END; i++)
            if (opts[i].count && (opts[i].ptr == &method || opts[i].ptr == &model_path || opts[i].ptr == &work_h ||
                                  opts[i].ptr == &window || opts[i].ptr == &json))
                return cli_usage_error(cmd, "%s is a score option", opts[i].name);
        jc.angle = angle_deg * M_PI / 180;
        jc.zoom = zoom_pct / 100;
        return shake(cmd, args[1], args[2], truth, &jc, quality);
    }
    for (int i = 0; opts[i].kind != CLI_K_END; i++)
        if (opts[i].count && (opts[i].ptr == &jc.seed || opts[i].ptr == &jc.shift || opts[i].ptr == &angle_deg ||
                              opts[i].ptr == &zoom_pct || opts[i].ptr == &quality))
            return cli_usage_error(cmd, "%s is a shake option", opts[i].name);
    if (nargs < 2) return cli_usage_error(cmd, "score takes INPUT and the stabilized videos");
    if (method == STAB_MOTION_GLOCAL && !model_path) return cli_usage_error(cmd, "--method glocal needs --model");

    int rc;
    code = CLI_FAIL;
    glocal_model *model = NULL;
    double *J = NULL;
    long nJ = 0;
    const char *input = args[1];
    int nv = nargs - 1;   /* the input, then the videos */
    const char *name[1 + MAX_VIDEOS], *path[1 + MAX_VIDEOS];
    stab_scores sc[1 + MAX_VIDEOS];
    name[0] = "input";
    path[0] = input;
    for (int v = 1; v < nv; v++) {
        const char *a = args[1 + v], *eq = strchr(a, '=');
        name[v] = a;
        path[v] = eq ? eq + 1 : a;
        if (eq) ((char *)a)[eq - a] = 0;   /* argv is ours to cut */
    }
    if (truth && (rc = stab_truth_read(truth, &J, &nJ)) < 0) {
        cli_fail(cmd, rc, "cannot read the truth %s", truth);
        goto done;
    }
    stab_motion_config mc;
    if ((rc = stab_motion_config_setup(&mc, (stab_motion_method)method, work_w, work_h, model_path, &model)) < 0) {
        cli_fail(cmd, rc, "cannot load the model %s", model_path);
        goto done;
    }
    mc.polish = 1;
    int failed = 0;
    for (int v = 0; v < nv; v++) {
        cli_progress pr = { 0 };
        fprintf(stderr, "%s: %s\n", name[v], path[v]);
        if ((rc = stab_video_score(input, path[v], &mc, window, J, nJ, progress, &pr, &sc[v])) < 0) {
            cli_fail(cmd, rc, "cannot score %s", path[v]);
            sc[v].frames = -1;
            failed++;
        }
    }
    print_table(name, sc, nv, J != NULL);
    printf("motion re-estimated by %s%s%s; ITF on the centred %.2f of each side\n", stab_motion_names[method],
           method == STAB_MOTION_TVL1 || method == STAB_MOTION_DIS ? " + refinement" : "",
           work_w ? " at the --size" : "", window);
    if (json && (rc = write_json(json, input, stab_motion_names[method], window, name, path, sc, nv)) < 0) {
        cli_fail(cmd, rc, "cannot write %s", json);
        goto done;
    }
    code = failed ? CLI_FAIL : CLI_OK;
done:
    gl_free(J);
    glocal_model_free(&model);
    return code;
}
