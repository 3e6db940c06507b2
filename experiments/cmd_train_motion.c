/* glocal train-motion — self-supervised training of the GLOCAL motion model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/motion_pairs.h"
#include "experiments/motion_source.h"
#include "motion/glocal.h"

GLOCAL_COMMAND(train_motion, "train-motion",
               "train the GLOCAL global/local motion model (self-supervised) on frame pairs")

static void help(void)
{
    glocal_loss_config lc = glocal_loss_config_default();
    printf("usage: glocal train-motion --out DIR [--synth | --dataset DIR] [options]\n\n"
           "Trains GLOCAL's global motion (homography bases, cost volume, DLT) and local motion\n"
           "(attention U-Net, mask) on frame pairs with photometric losses only: no labels, no\n"
           "ground truth. Pairs come from the synthetic benchmark rendered in memory (--synth,\n"
           "the default) or from the train list of any UCF-101-layout dataset (--dataset).\n"
           "Writes DIR/glocal.h5 (checkpoint: weights, optimizer state, step, model config)\n"
           "every --ckpt-every steps and at the end, and appends one JSON object per logged\n"
           "step to DIR/log.jsonl. A NaN loss stops training; the last checkpoint stays as it\n"
           "was. The same options and seed repeat the same run (use --threads 1: libtorch's\n"
           "thread pool is slow on a loaded machine).\n\n"
           "Data:\n"
           "  --synth               synthetic pairs (datasets/synth.h), rendered once\n"
           "  --camera C            synthetic camera strength, corners move C*S/16 px (default 1)\n"
           "  --dataset DIR         UCF-101 layout: pairs (t, t+gap) of train-list clips\n"
           "  --lists DIR           folder of classInd.txt and the split lists (default: --dataset)\n"
           "  --split N             train list of split N, 1..3 (default 1)\n"
           "  --gap G               frame gap for --dataset (default 1)\n"
           "  --pool N              pairs held in memory (default 2000)\n"
           "Model:\n"
           "  --size S              model size, frames are resized to SxS (default 64)\n"
           "  --iters K             GME refinement iterations (default 2)\n"
           "  --feat F              encoder channels (default 32)\n"
           "Training:\n"
           "  --steps N             stop after N steps (default 1000000)\n"
           "  --minutes M           stop after M minutes of training (default: no limit)\n"
           "  --batch B             pairs per step (default 16)\n"
           "  --lr X                Adam learning rate (default 1e-3)\n"
           "  --lme-start N         step from which LME and the mask train (default %ld)\n"
           "  --mask-start N        step from which the mask weights the global loss, not before\n"
           "                        --lme-start (default %ld, or --lme-start when that is later)\n"
           "  --census W            weight of the census term (default %g)\n"
           "  --seed S              seed of weights and batches (default 1)\n"
           "  --ckpt-every N        checkpoint period in steps (default 500)\n"
           "  --log-every N         log period in steps (default 50)\n"
           "  --resume              continue from DIR/glocal.h5 (its model config wins)\n\n"
           "Data-parallel: under `glocal launch -n N -- glocal train-motion ...`, torchrun or\n"
           "srun (RANK/WORLD_SIZE or SLURM_* set), each rank trains on batch/N pairs of the same\n"
           "global batch and gradients are all-reduced (c10d); rank 0 logs and checkpoints.\n",
           lc.lme_start, lc.mask_start, lc.w_census);
}

/* Progress of glocal_train, drawn by rank 0: steps, or seconds with --minutes. */
typedef struct {
    cli_progress bar;
    int by_time;
    long step0, step;
    double elapsed_s;
} train_progress;

static int on_status(void *ctx, const glocal_train_status *s)
{
    train_progress *tp = ctx;
    tp->step = s->step;
    tp->elapsed_s = s->elapsed_s;
    char extra[96];
    snprintf(extra, sizeof extra, "step %ld loss %.4f", s->step, s->losses.total);
    if (s->rank == 0) cli_progress_update(&tp->bar, tp->by_time ? (long)s->elapsed_s : s->step - tp->step0, extra);
    return 0;
}

static int pool_progress(void *ctx, long done, long total)
{
    (void)total;
    cli_progress_update(ctx, done, NULL);
    return 0;
}

/* The training pairs at the model size S: decoded from a dataset's train
 * list, or rendered by the synthetic benchmark; with a progress line. */
static int prepare_pairs(motion_pairs *P, const char *dataset, const char *lists, int split, int pool, int S,
                         int gap, double camera, uint64_t seed)
{
    cli_progress pp;
    int rc;
    cli_progress_start(&pp, dataset ? "decoding pairs" : "rendering pairs", pool);
    if (dataset) {
        rc = motion_pairs_dataset(P, dataset, lists, split, pool, S, gap, seed, pool_progress, &pp);
    } else {
        synth_config sc = synth_config_default();
        sc.width = sc.height = S;
        sc.camera = camera;
        sc.seed = seed;
        rc = motion_pairs_synth(P, &sc, pool, 1000003ull * seed);
    }
    cli_progress_end(&pp, rc < 0 ? 0 : pool, NULL);
    return rc;
}

/* Options, then glocal_train (motion/glocal.h). A little over 120 lines: the
 * option loop stays as it was until the table parser replaces it. */
int cmd_train_motion(int argc, char **argv)
{
    const char *cmd = "train-motion";
    const char *out = NULL, *dataset = NULL, *lists = NULL;
    long size = 64, iters = 2, feat = 32, steps = 1000000, batch = 16, pool = 2000, gap = 1, split = 1;
    long ckpt_every = 500, log_every = 50, seed = 1;
    double minutes = 0, lr = 1e-3, camera = 1.0;
    int resume = 0;
    glocal_loss_config lc = glocal_loss_config_default();
    lc.mask_start = -1; /* not given: see after the options */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return CLI_OK; }
        if (!strcmp(a, "--synth")) { dataset = NULL; continue; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (!v) return cli_usage_error(cmd, "option '%s' needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--dataset")) dataset = v;
        else if (!strcmp(a, "--lists")) lists = v;
        else if (!strcmp(a, "--split")) { if (cli_parse_int(cmd, a, v, 1, 3, &split) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--camera")) { if (cli_parse_double(cmd, a, v, &camera) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--gap")) { if (cli_parse_int(cmd, a, v, 1, 100, &gap) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--pool")) { if (cli_parse_int(cmd, a, v, 1, 10000000, &pool) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--size")) { if (cli_parse_int(cmd, a, v, 32, 1024, &size) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--iters")) { if (cli_parse_int(cmd, a, v, 1, 8, &iters) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--feat")) { if (cli_parse_int(cmd, a, v, 4, 256, &feat) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--steps")) { if (cli_parse_int(cmd, a, v, 1, 1000000000, &steps) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--minutes")) { if (cli_parse_double(cmd, a, v, &minutes) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--batch")) { if (cli_parse_int(cmd, a, v, 1, 4096, &batch) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--lr")) { if (cli_parse_double(cmd, a, v, &lr) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--lme-start")) { if (cli_parse_int(cmd, a, v, 0, 1000000000, &lc.lme_start) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--mask-start")) { if (cli_parse_int(cmd, a, v, 0, 1000000000, &lc.mask_start) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--census")) { if (cli_parse_double(cmd, a, v, &lc.w_census) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--seed")) { if (cli_parse_int(cmd, a, v, 0, 0x7fffffffL, &seed) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--ckpt-every")) { if (cli_parse_int(cmd, a, v, 1, 1000000000, &ckpt_every) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--log-every")) { if (cli_parse_int(cmd, a, v, 1, 1000000000, &log_every) < 0) return CLI_USAGE; }
        else return cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!out) return cli_usage_error(cmd, "--out DIR is required");
    if (size % 16) return cli_usage_error(cmd, "--size must be a multiple of 16, got %ld", size);
    if (!(lr > 0 && lr < 1)) return cli_usage_error(cmd, "--lr must be in (0, 1), got %g", lr);
    if (!(minutes >= 0)) return cli_usage_error(cmd, "--minutes must be >= 0, got %g", minutes);
    if (!(camera >= 0 && camera <= 4)) return cli_usage_error(cmd, "--camera must be in [0, 4], got %g", camera);
    /* The mask comes from LME, so it never starts before it. Without
     * --mask-start, its default follows a later --lme-start (and says so);
     * a --mask-start before --lme-start is an error. */
    if (lc.mask_start < 0) {
        lc.mask_start = glocal_loss_config_default().mask_start;
        if (lc.mask_start < lc.lme_start) {
            fprintf(stderr, "glocal train-motion: the default --mask-start %ld is before --lme-start %ld: "
                    "the mask starts with LME, at step %ld\n", lc.mask_start, lc.lme_start, lc.lme_start);
            lc.mask_start = lc.lme_start;
        }
    }
    glocal_train_config tc = glocal_train_config_default();
    tc.loss = lc;
    tc.opt.lr = lr;
    tc.steps = steps;
    tc.minutes = minutes;
    tc.batch_size = (int)batch;
    tc.seed = (uint64_t)seed;
    tc.ckpt_every = ckpt_every;
    tc.log_every = log_every;
    int rc = glocal_train_config_validate(&tc);
    if (rc < 0) return cli_usage_error(cmd, "%s", gl_last_error());

    char ckpt[4096], logp[4096];
    snprintf(ckpt, sizeof ckpt, "%s/glocal.h5", out);
    snprintf(logp, sizeof logp, "%s/log.jsonl", out);
    if ((rc = gl_mkdirs(out)) < 0) return cli_fail(cmd, rc, "cannot create %s", out);
    tc.checkpoint = ckpt;
    tc.resume = resume ? ckpt : NULL;
    tc.log_path = logp;

    int code = CLI_FAIL;
    glocal_model *m = NULL;
    motion_pairs P = { 0 };
    int64_t step0 = 0;
    nn_dist *dist = NULL;
    nn_manual_seed((uint64_t)seed);
    glocal_config gc = glocal_config_default((int)size);
    gc.iters = (int)iters;
    gc.feat = (int)feat;
    if (resume && (rc = glocal_model_load(&m, ckpt, &step0)) < 0) { cli_fail(cmd, rc, "cannot resume from %s", ckpt); goto done; }
    if (resume) fprintf(stderr, "resuming %s at step %lld\n", ckpt, (long long)step0);
    if (!resume && (rc = glocal_model_new(&m, &gc)) < 0) { cli_fail(cmd, rc, "cannot build the model"); goto done; }
    const int S = glocal_model_config(m)->size;
    /* Data-parallel (glocal_train_config.dist): with no RANK/WORLD_SIZE or
     * Slurm variables the world is this process alone. */
    nn_dist_options dopt = nn_dist_options_default();
    if ((rc = nn_dist_init_from_env(&dist, &dopt)) < 0) { cli_fail(cmd, rc, "cannot join the distributed job"); goto done; }
    tc.dist = dist;
    const int rank = nn_dist_rank(dist), world = nn_dist_world_size(dist);
    if ((rc = glocal_train_config_validate(&tc)) < 0) { cli_fail(cmd, rc, "--batch"); goto done; }
    if (world > 1 && rank == 0)
        fprintf(stderr, "data-parallel: %d ranks (%s), %ld pairs per rank per step\n", world,
                nn_dist_backend_name(dist), batch / world);
    if ((rc = prepare_pairs(&P, dataset, lists, (int)split, (int)pool, S, (int)gap, camera, (uint64_t)seed)) < 0) {
        cli_fail(cmd, rc, "cannot prepare the training pairs");
        goto done;
    }
    glocal_pair_source src;
    motion_pairs_source(&P, &src);
    /* With a time budget the progress line counts seconds, so its ETA means something. */
    train_progress tp = { .by_time = minutes > 0, .step0 = (long)step0, .step = (long)step0 };
    cli_progress_start(&tp.bar, tp.by_time ? "training (seconds)" : "training (steps)",
                       tp.by_time ? (long)ceil(minutes * 60) : (steps - step0 > 0 ? steps - step0 : 0));
    const double t0 = gl_now();
    rc = glocal_train(m, &src, &tc, on_status, &tp);
    if (rank == 0) cli_progress_end(&tp.bar, tp.by_time ? (long)tp.elapsed_s : tp.step - tp.step0, NULL);
    if (rc == GL_ENUMERIC) { /* the message says which step and which checkpoint stays */
        fprintf(stderr, "glocal train-motion: %s.\n", gl_last_error());
        goto done;
    }
    if (rc < 0) { cli_fail(cmd, rc, "training failed"); goto done; }
    if (rank == 0) fprintf(stderr, "trained %ld steps in %.1f s; model: %s\n", tp.step - tp.step0, gl_now() - t0, ckpt);
    code = CLI_OK;
done:
    motion_pairs_free(&P);
    glocal_model_free(&m);
    nn_dist_free(&dist);
    return code;
}
