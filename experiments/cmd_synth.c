/* glocal synth — write the synthetic action benchmark with ground-truth motion. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synth.h"
#include "experiments/cli.h"
#include "experiments/commands.h"

GLOCAL_COMMAND(synth, "synth", "write a synthetic action dataset with ground-truth global/local motion")

static int synth_progress(void *ctx, long done, long total)
{
    cli_progress_update(ctx, done, NULL);
    (void)total;
    return 0;
}

/* --camera: none, mild, strong or a number c (c * S/16 pixels). */
static int parse_camera(void *ctx, const char *v, char *why, size_t n)
{
    double *camera = ctx;
    char *end;
    if (!strcmp(v, "none")) *camera = 0.0;
    else if (!strcmp(v, "mild")) *camera = 0.5;
    else if (!strcmp(v, "strong")) *camera = 1.0;
    else if ((*camera = strtod(v, &end)), end == v || *end || !isfinite(*camera))
        return snprintf(why, n, "'%s' is not none, mild, strong or a number", v), -1;
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    const char *cmd = "synth";
    synth_config cfg = synth_config_default();
    synth_dataset_options opt = { .out_dir = NULL, .clips_per_class = 12 };
    cli_opt opts[] = {
        CLI_STR("--out", &opt.out_dir, "DIR", "output folder, created", .required = 1),
        CLI_NUM("--classes", &cfg.classes, 1, SYNTH_MAX_CLASSES, "N", "classes"),
        CLI_NUM("--clips-per-class", &opt.clips_per_class, 2, 396, "N",
                "clips per class, grouped like UCF-101 (up to 4 clips a group sharing a scene), "
                "~28% of groups test"),
        CLI_NUM("--frames", &cfg.frames, 2, 10000, "T", "frames per clip"),
        CLI_SIZE("--size", &cfg.width, &cfg.height, "WxH", "frame size, even numbers"),
        CLI_CALL("--camera", parse_camera, &cfg.camera, "LEVEL",
                 "none, mild or strong: largest corner displacement per frame 0, S/32 or S/16 pixels, "
                 "S = min(W, H); a number c gives c*S/16",
                 .def = "strong"),
        CLI_STR("--textures", &cfg.textures, "DIR", "photos (.png .jpg .ppm) for backgrounds and objects",
                .def = "procedural noise textures"),
        CLI_NUM("--supersample", &cfg.supersample, 1, 8, "N", "N x N samples per pixel"),
        CLI_NUM("--seed", &cfg.seed, 0, 18446744073709551615.0, "S", "random seed"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts,
        .about = "Renders labelled clips in which 1-3 textured objects move by the class's pattern\n"
                 "(TranslateRight/Left/Up/Down, RotateCW/CCW, Grow, Shrink, Oscillate, Circle, Bounce,\n"
                 "Still) over a textured background filmed by an independently moving camera, and\n"
                 "writes them in the UCF-101 layout: DIR/<Class>/v_<Class>_gGG_cCC.avi (MPEG-4, XVID\n"
                 "tag), classInd.txt, trainlist01.txt, testlist01.txt (CRLF, 1-based labels), plus\n"
                 "DIR/<Class>/v_<Class>_gGG_cCC_gt.h5 per clip: the camera homography, the dense\n"
                 "global and local flow and the object mask for every frame pair (schema:\n"
                 "datasets/synth.h). Same options and seed give byte-identical files.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    rc = synth_config_validate(&cfg);
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
