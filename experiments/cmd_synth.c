/* glocal synth — write the synthetic action benchmark with ground-truth motion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synth.h"
#include "experiments/cli.h"
#include "experiments/commands.h"

GLOCAL_COMMAND(synth, "synth", "write a synthetic action dataset with ground-truth global/local motion")

static void synth_help(void)
{
    synth_config d = synth_config_default();
    printf("usage: glocal synth --out DIR [--classes N] [--clips-per-class N] [--frames T]\n"
           "                    [--size WxH] [--camera none|mild|strong] [--textures DIR]\n"
           "                    [--supersample N] [--seed S]\n\n"
           "Renders labelled clips in which 1-3 textured objects move by the class's pattern\n"
           "(TranslateRight/Left/Up/Down, RotateCW/CCW, Grow, Shrink, Oscillate, Circle, Bounce,\n"
           "Still) over a textured background filmed by an independently moving camera, and\n"
           "writes them in the UCF-101 layout: DIR/<Class>/v_<Class>_gGG_cCC.avi (MPEG-4, XVID\n"
           "tag), classInd.txt, trainlist01.txt, testlist01.txt (CRLF, 1-based labels), plus\n"
           "DIR/<Class>/v_<Class>_gGG_cCC_gt.h5 per clip: the camera homography, the dense\n"
           "global and local flow and the object mask for every frame pair (schema:\n"
           "datasets/synth.h). Same options and seed give byte-identical files.\n\n"
           "  --out DIR             output folder (created)\n"
           "  --classes N           classes, 1..%d (default %d)\n"
           "  --clips-per-class N   clips per class, >= 2 (default 12); grouped like UCF-101\n"
           "                        (up to 4 clips a group sharing a scene), ~28%% of groups test\n"
           "  --frames T            frames per clip (default %d)\n"
           "  --size WxH            frame size, even numbers (default %dx%d)\n"
           "  --camera LEVEL        none, mild or strong: largest corner displacement per frame\n"
           "                        0, S/32 or S/16 pixels, S = min(W, H) (default strong);\n"
           "                        a number c gives c*S/16\n"
           "  --textures DIR        photos (.png .jpg .ppm) for backgrounds and objects\n"
           "                        (default: procedural noise textures)\n"
           "  --supersample N       N x N samples per pixel, 1..8 (default %d)\n"
           "  --seed S              random seed (default %llu)\n",
           SYNTH_MAX_CLASSES, d.classes, d.frames, d.width, d.height, d.supersample,
           (unsigned long long)d.seed);
}

static int synth_progress(void *ctx, long done, long total)
{
    cli_progress_update(ctx, done, NULL);
    (void)total;
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    const char *cmd = "synth";
    synth_config cfg = synth_config_default();
    synth_dataset_options opt = { .out_dir = NULL, .clips_per_class = 12 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            synth_help();
            return CLI_OK;
        }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        long n;
        if (!strcmp(a, "--out")) {
            opt.out_dir = v;
        } else if (!strcmp(a, "--classes")) {
            if (cli_parse_int(cmd, a, v, 1, SYNTH_MAX_CLASSES, &n) < 0) return CLI_USAGE;
            cfg.classes = (int)n;
        } else if (!strcmp(a, "--clips-per-class")) {
            if (cli_parse_int(cmd, a, v, 2, 396, &n) < 0) return CLI_USAGE;
            opt.clips_per_class = (int)n;
        } else if (!strcmp(a, "--frames")) {
            if (cli_parse_int(cmd, a, v, 2, 10000, &n) < 0) return CLI_USAGE;
            cfg.frames = (int)n;
        } else if (!strcmp(a, "--size")) {
            if (cli_parse_size(cmd, a, v, "wh", &cfg.width, &cfg.height) < 0) return CLI_USAGE;
        } else if (!strcmp(a, "--camera")) {
            if (!strcmp(v, "none")) cfg.camera = 0.0;
            else if (!strcmp(v, "mild")) cfg.camera = 0.5;
            else if (!strcmp(v, "strong")) cfg.camera = 1.0;
            else if (cli_parse_double(cmd, a, v, &cfg.camera) < 0) return CLI_USAGE;
        } else if (!strcmp(a, "--textures")) {
            cfg.textures = v;
        } else if (!strcmp(a, "--supersample")) {
            if (cli_parse_int(cmd, a, v, 1, 8, &n) < 0) return CLI_USAGE;
            cfg.supersample = (int)n;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || v[0] == '-')
                return cli_usage_error(cmd, "--seed expects a whole number >= 0, got '%s'", v);
            cfg.seed = (uint64_t)s;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (!opt.out_dir) return cli_usage_error(cmd, "--out DIR is required");
    int rc = synth_config_validate(&cfg);
    if (rc < 0) return cli_usage_error(cmd, "%s", gl_last_error());

    synth *s = NULL;
    rc = synth_new(&cfg, &s);
    if (rc < 0) return cli_fail(cmd, rc, "cannot set up the generator");
    cli_progress prog;
    long total = (long)cfg.classes * opt.clips_per_class;
    cli_progress_start(&prog, "synth", total);
    opt.progress = synth_progress;
    opt.progress_ctx = &prog;
    double t0 = gl_now();
    rc = synth_dataset_write(s, &opt);
    synth_free(&s);
    if (rc < 0) return cli_fail(cmd, rc, "cannot write the dataset to %s", opt.out_dir);
    cli_progress_end(&prog, total, NULL);
    int groups, per, test;
    synth_dataset_groups(opt.clips_per_class, &groups, &per, &test);
    printf("wrote %ld clips (%d classes x %d; %d groups of up to %d, %d test) of %d frames "
           "%dx%d to %s in %.1f s\n",
           total, cfg.classes, opt.clips_per_class, groups, per, test, cfg.frames, cfg.width,
           cfg.height, opt.out_dir, gl_now() - t0);
    return CLI_OK;
}
