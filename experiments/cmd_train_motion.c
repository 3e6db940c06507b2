/* glocal train-motion — self-supervised training of the GLOCAL motion model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/motion_pairs.h"
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
           "  --mask-start N        step from which the mask weights the global loss (default %ld)\n"
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

static int save(const char *path, glocal_model *m, nn_optimizer *opt, long step)
{
    char cfg[512];
    nn_params st;
    nn_params_init(&st);
    int rc = glocal_config_to_json(glocal_model_config(m), cfg, sizeof cfg);
    if (rc >= 0) rc = nn_optimizer_state_export(opt, &st);
    if (rc >= 0) {
        nn_checkpoint_meta meta = { step, cfg, &st, "adam" };
        rc = nn_checkpoint_save(path, glocal_model_params(m), &meta);
    }
    nn_params_free(&st);
    return rc;
}

static int pool_progress(void *ctx, long done, long total)
{
    (void)total;
    cli_progress_update(ctx, done, NULL);
    return 0;
}

int cmd_train_motion(int argc, char **argv)
{
    const char *cmd = "train-motion";
    const char *out = NULL, *dataset = NULL, *lists = NULL;
    long size = 64, iters = 2, feat = 32, steps = 1000000, batch = 16, pool = 2000, gap = 1, split = 1;
    long ckpt_every = 500, log_every = 50, seed = 1;
    double minutes = 0, lr = 1e-3, camera = 1.0;
    int resume = 0;
    glocal_loss_config lc = glocal_loss_config_default();
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
    if (lc.mask_start < lc.lme_start) lc.mask_start = lc.lme_start;
    int rc = glocal_loss_config_validate(&lc);
    if (rc < 0) return cli_fail(cmd, rc, "bad loss settings");

    char ckpt[4096], logp[4096];
    snprintf(ckpt, sizeof ckpt, "%s/glocal.h5", out);
    snprintf(logp, sizeof logp, "%s/log.jsonl", out);
    if ((rc = gl_mkdirs(out)) < 0) return cli_fail(cmd, rc, "cannot create %s", out);

    int code = CLI_FAIL;
    glocal_model *m = NULL;
    nn_optimizer *opt = NULL;
    motion_pairs P = { 0 };
    FILE *log = NULL;
    const uint8_t **A = NULL, **B = NULL;
    nn_params st;
    nn_params_init(&st);
    int64_t step0 = 0;
    nn_dist *dist = NULL;
    int rank = 0, world = 1;
    nn_manual_seed((uint64_t)seed);
    if (resume) {
        if ((rc = glocal_model_load(&m, ckpt, &step0)) < 0) {
            cli_fail(cmd, rc, "cannot resume from %s", ckpt);
            goto done;
        }
    } else {
        glocal_config gc = glocal_config_default((int)size);
        gc.iters = (int)iters;
        gc.feat = (int)feat;
        if ((rc = glocal_model_new(&m, &gc)) < 0) { cli_fail(cmd, rc, "cannot build the model"); goto done; }
    }
    const int S = glocal_model_config(m)->size;
    nn_opt_config oc = nn_opt_config_default(NN_OPT_ADAM);
    oc.lr = lr;
    if ((rc = nn_optimizer_new(&opt, glocal_model_params(m), &oc)) < 0) {
        cli_fail(cmd, rc, "cannot create the optimizer");
        goto done;
    }
    if (resume) {
        int64_t s2;
        /* Reload with the optimizer table to restore Adam's moments. */
        if ((rc = nn_checkpoint_load(ckpt, glocal_model_params(m), &s2, NULL, &st)) < 0 ||
            (rc = nn_optimizer_state_import(opt, &st)) < 0) {
            cli_fail(cmd, rc, "cannot restore the optimizer state from %s", ckpt);
            goto done;
        }
        fprintf(stderr, "resuming %s at step %lld\n", ckpt, (long long)step0);
    }
    /* Data-parallel (nn.h "distributed data-parallel"): every rank draws the same
     * global batch from (seed, step) and trains on its slice; gradients are
     * averaged after backward, so each step equals one process on the whole batch
     * (up to float summation order; batch norm statistics stay per rank). With
     * no RANK/WORLD_SIZE or Slurm variables the world is this process alone. */
    {
        nn_dist_options dopt = nn_dist_options_default();
        if ((rc = nn_dist_init_from_env(&dist, &dopt)) < 0) { cli_fail(cmd, rc, "cannot join the distributed job"); goto done; }
        rank = nn_dist_rank(dist);
        world = nn_dist_world_size(dist);
        if (batch % world != 0) {
            cli_fail(cmd, GL_EINVAL, "--batch %ld must be a multiple of the %d ranks", batch, world);
            goto done;
        }
        if ((rc = nn_dist_broadcast_params(dist, glocal_model_params(m))) < 0) {
            cli_fail(cmd, rc, "cannot broadcast rank 0's parameters");
            goto done;
        }
        if (world > 1 && rank == 0)
            fprintf(stderr, "data-parallel: %d ranks (%s), %ld pairs per rank per step\n", world,
                    nn_dist_backend_name(dist), batch / world);
    }
    /* Data. */
    {
        cli_progress pp;
        cli_progress_start(&pp, dataset ? "decoding pairs" : "rendering pairs", pool);
        if (dataset) {
            rc = motion_pairs_dataset(&P, dataset, lists, (int)split, (int)pool, S, (int)gap, (uint64_t)seed,
                                      pool_progress, &pp);
        } else {
            synth_config sc = synth_config_default();
            sc.width = sc.height = S;
            sc.camera = camera;
            sc.seed = (uint64_t)seed;
            rc = motion_pairs_synth(&P, &sc, (int)pool, 1000003ull * (uint64_t)seed);
        }
        cli_progress_end(&pp, rc < 0 ? 0 : pool, NULL);
        if (rc < 0) { cli_fail(cmd, rc, "cannot prepare the training pairs"); goto done; }
    }
    if (rank == 0) { /* only rank 0 writes the log and checkpoints */
        log = fopen(logp, resume ? "a" : "w");
        if (!log) { cli_fail(cmd, GL_EIO, "cannot write %s", logp); goto done; }
    }
    nn_lr_schedule ls = nn_lr_schedule_default();
    ls.kind = NN_LR_CONSTANT;
    ls.base_lr = lr;
    ls.warmup_steps = 100;
    ls.warmup_start = 0.1;
    A = gl_malloc(sizeof *A * 2 * batch);
    B = A ? A + batch : NULL;
    if (!A) { cli_fail(cmd, GL_ENOMEM, "out of memory"); goto done; }
    /* With a time budget the progress line counts seconds, so its ETA means something. */
    const int by_time = minutes > 0;
    cli_progress pr;
    cli_progress_start(&pr, by_time ? "training (seconds)" : "training (steps)",
                       by_time ? (long)ceil(minutes * 60) : (steps - step0 > 0 ? steps - step0 : 0));
    const double t0 = gl_now(), limit = by_time ? minutes * 60 : INFINITY;
    double tlog = t0;
    long step = step0, last_saved = step0, last_log_step = step0;
    const size_t fb = (size_t)S * S * 3;
    int stopped_nan = 0;
    const long per = batch / world;
    while (step < steps) {
        /* Batches depend only on (seed, step): a resumed run sees the same ones. */
        uint64_t r = gl_mix64((uint64_t)seed * 0x100000001B3ull + (uint64_t)step);
        for (long i = 0; i < batch; i++) {
            r = gl_mix64(r);
            long k = (long)(r % (uint64_t)P.n);
            int swap = (int)((r >> 40) & 1); /* (B, A) is a pair too */
            A[i] = (swap ? P.b : P.a) + k * fb;
            B[i] = (swap ? P.a : P.b) + k * fb;
        }
        nn_scope *sc = NULL;
        nn_tensor *ta, *tb, *loss;
        glocal_losses L;
        double gnorm = 0;
        if ((rc = nn_scope_begin(&sc)) < 0 ||
            (rc = nn_optimizer_set_lr(opt, nn_lr_at(&ls, step))) < 0 ||
            (rc = glocal_frames_to_tensor(&ta, A + rank * per, (int)per, S, S, S)) < 0 ||
            (rc = glocal_frames_to_tensor(&tb, B + rank * per, (int)per, S, S, S)) < 0 ||
            (rc = nn_optimizer_zero_grad(opt)) < 0 ||
            (rc = glocal_loss(m, ta, tb, &lc, step, &loss, &L)) < 0) {
            nn_scope_end(&sc);
            cli_fail(cmd, rc, "step %ld failed", step);
            goto done;
        }
        /* Stop decisions are taken together: the time budget by any rank's
         * clock (MAX), a non-finite loss on any rank. */
        double flags[2] = { gl_now() - t0 >= limit, !isfinite(L.total) };
        if ((rc = nn_dist_allreduce_values(dist, flags, 2, NN_DIST_MAX)) < 0) {
            nn_scope_end(&sc);
            cli_fail(cmd, rc, "step %ld", step);
            goto done;
        }
        if (flags[0] > 0 || flags[1] > 0) {
            nn_scope_end(&sc);
            stopped_nan = flags[1] > 0;
            break;
        }
        if ((rc = nn_backward(loss)) < 0 || (rc = nn_dist_allreduce_grads(dist, glocal_model_params(m))) < 0 ||
            (rc = nn_clip_grad_norm(glocal_model_params(m), 10.0, &gnorm)) < 0) {
            nn_scope_end(&sc);
            cli_fail(cmd, rc, "backward at step %ld failed", step);
            goto done;
        }
        if (!isfinite(gnorm)) {
            nn_scope_end(&sc);
            stopped_nan = 1;
            break;
        }
        rc = nn_optimizer_step(opt);
        nn_scope_end(&sc);
        if (rc < 0) { cli_fail(cmd, rc, "optimizer step %ld failed", step); goto done; }
        step++;
        if (step % log_every == 0 || step == steps) {
            double now = gl_now();
            /* the logged losses are means over the ranks (every rank takes part) */
            double v[8] = { L.total, L.global, L.census, L.local, L.smooth, L.sparse, L.mask, L.mask_mean };
            if ((rc = nn_dist_allreduce_values(dist, v, 8, NN_DIST_MEAN)) < 0) { cli_fail(cmd, rc, "step %ld", step); goto done; }
            L.total = v[0]; L.global = v[1]; L.census = v[2]; L.local = v[3];
            L.smooth = v[4]; L.sparse = v[5]; L.mask = v[6]; L.mask_mean = v[7];
            if (log) fprintf(log,
                    "{\"step\": %ld, \"time_s\": %.3f, \"loss\": %.6g, \"global\": %.6g, "
                    "\"census\": %.6g, \"local\": %.6g, \"smooth\": %.6g, \"sparse\": %.6g, "
                    "\"mask\": %.6g, \"mask_mean\": %.4f, \"grad_norm\": %.4g, \"lr\": %.4g, "
                    "\"pairs_per_s\": %.2f}\n",
                    step, now - t0, L.total, L.global, L.census, L.local, L.smooth, L.sparse,
                    L.mask, L.mask_mean, gnorm, nn_lr_at(&ls, step - 1),
                    (double)(step - last_log_step) * batch / (now - tlog));
            if (log) fflush(log);
            tlog = now;
            last_log_step = step;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "step %ld loss %.4f", step, L.total);
        if (rank == 0) cli_progress_update(&pr, by_time ? (long)(gl_now() - t0) : step - step0, extra);
        if (rank == 0 && step % ckpt_every == 0) {
            if ((rc = save(ckpt, m, opt, step)) < 0) { cli_fail(cmd, rc, "cannot save %s", ckpt); goto done; }
            last_saved = step;
        }
    }
    if (rank == 0) cli_progress_end(&pr, by_time ? (long)(gl_now() - t0) : step - step0, NULL);
    if (stopped_nan) {
        fprintf(stderr,
                "glocal train-motion: the loss or its gradient became NaN/infinite at step %ld; "
                "stopped. %s keeps the last good checkpoint (step %ld).\n",
                step, ckpt, last_saved);
        goto done;
    }
    if (rank == 0 && (step != last_saved || !resume)) {
        if ((rc = save(ckpt, m, opt, step)) < 0) { cli_fail(cmd, rc, "cannot save %s", ckpt); goto done; }
    }
    /* nobody exits before rank 0's checkpoint is on disk */
    if ((rc = nn_dist_barrier(dist)) < 0) { cli_fail(cmd, rc, "final barrier"); goto done; }
    if (rank == 0) fprintf(stderr, "trained %ld steps in %.1f s; model: %s\n", step - step0, gl_now() - t0, ckpt);
    code = CLI_OK;
done:
    if (log) fclose(log);
    gl_free((void *)A);
    nn_params_free(&st);
    motion_pairs_free(&P);
    nn_optimizer_free(&opt);
    glocal_model_free(&m);
    nn_dist_free(&dist);
    return code;
}
