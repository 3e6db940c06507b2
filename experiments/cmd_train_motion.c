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
    /* SIGINT/SIGTERM: training stops after the current step and writes its
     * checkpoint; the exit status is 128 + the signal (130, 143) */
    return cli_signal_caught() != 0;
}

static int pool_progress(void *ctx, long done, long total)
{
    (void)total;
    cli_progress_update(ctx, done, NULL);
    return cli_signal_caught() != 0; /* the teacher's flows stop on SIGINT/SIGTERM */
}

/* What the options set. */
typedef struct {
    const char *out, *dataset, *lists, *photos, *init, *init_lme;
    int freeze_gme, align_refine;
    char lists_dir[4096]; /* the list folder found for --dataset (cli_lists_locate) */
    int synth, resume, augment, teacher, pretrain_gt;
    double magnitude, still;
    long arch, gn, lme_arch, lme_ch, size, iters, feat, steps, batch, pool, mix_synth, gap, split, ckpt_every, log_every, seed;
    double minutes, lr, lr_final, camera;
    glocal_loss_config lc;
} tm_options;

/* The training pairs at the model size S: decoded from a dataset's train
 * list, or rendered by the synthetic benchmark; with a progress line. */
static int prepare_pairs(motion_pairs *P, const tm_options *o, int S)
{
    cli_progress pp;
    int rc, pool = (int)o->pool;
    uint64_t seed = (uint64_t)o->seed;
    cli_progress_start(&pp, o->dataset ? "decoding pairs" : "rendering pairs", pool);
    if (o->photos) {
        photo_pairs_config pc = photo_pairs_config_benchmark(S, o->magnitude, seed);
        pc.supersample = 2;
        pc.still = o->still;
        /* the two frames of a pair see different cameras: photometric
         * jitter, blur, sensor noise and JPEG coding */
        if (o->augment) pc.aug = photo_pairs_aug_cameras();
        rc = motion_pairs_photos(P, o->photos, 512, &pc, pool);
    } else if (o->dataset) {
        rc = motion_pairs_dataset(P, o->dataset, o->lists, (int)o->split, pool, S, (int)o->gap, seed,
                                  pool_progress, &pp);
    } else {
        synth_config sc = synth_config_default();
        sc.width = sc.height = S;
        sc.camera = o->camera;
        sc.seed = seed;
        rc = motion_pairs_synth(P, &sc, pool, 1000003ull * seed);
    }
    cli_progress_end(&pp, rc < 0 ? 0 : pool, NULL);
    if (rc >= 0 && o->mix_synth > 0) {
        /* renderer pairs beside the photographs or videos: one pool */
        motion_pairs R;
        synth_config sc = synth_config_default();
        sc.width = sc.height = S;
        sc.camera = o->camera;
        sc.seed = seed;
        if ((rc = motion_pairs_synth(&R, &sc, (int)o->mix_synth, 1000003ull * seed)) < 0) return rc;
        if ((rc = motion_pairs_append(P, &R)) < 0) motion_pairs_free(&R);
    }
    return rc;
}

/* The option table and the checks it cannot express. Returns CLI_PARSED
 * or the exit status. */
static int parse_options(tm_options *o, int argc, char **argv)
{
    const char *cmd = "train-motion";
    *o = (tm_options){ .size = 64, .iters = 2, .feat = 32, .steps = 1000000, .batch = 16, .pool = 2000,
                       .gap = 1, .split = 1, .arch = 1, .gn = 2, .lme_arch = 2, .lme_ch = 12, .teacher = 1, .magnitude = 1.0 / 16, .ckpt_every = 500, .log_every = 50, .seed = 1, .lr = 1e-3,
                       .camera = 1.0, .lc = glocal_loss_config_default() };
    o->lc.mask_start = -1; /* not given: see after the options */
    static const char *const teachers[] = { "none", "tvl1", "dis", "fused", NULL };
    static const char *const occlusions[] = { "none", "border", "fb", NULL }; /* glocal_occlusion */
    char mask_def[96];
    snprintf(mask_def, sizeof mask_def, "%ld, or --lme-start when that is later",
             glocal_loss_config_default().mask_start);
    cli_opt opts[] = {
        CLI_STR("--out", &o->out, "DIR", "where glocal.h5 and log.jsonl go", .required = 1),
        CLI_SECTION("Data"),
        CLI_FLAG("--synth", &o->synth, "synthetic pairs (datasets/synth.h), rendered once (the default)"),
        CLI_NUM("--camera", &o->camera, 0, 4, "C", "synthetic camera strength, corners move C*S/16 px"),
        CLI_STR("--dataset", &o->dataset, "DIR", "UCF-101 layout: pairs (t, t+gap) of train-list clips"),
        CLI_STR("--lists", &o->lists, "DIR", "folder of classInd.txt and the split lists",
                .def = "DIR/ucfTrainTestlist, DIR/../ucfTrainTestlist, DIR/../annotations or DIR"),
        CLI_NUM("--split", &o->split, 1, 3, "N", "train list of split N"),
        CLI_NUM("--gap", &o->gap, 1, 100, "G", "frame gap for --dataset"),
        CLI_NUM("--pool", &o->pool, 1, 10000000, "N", "pairs held in memory"),
        CLI_STR("--photos", &o->photos, "DIR", "photo-crop pairs from the photographs in DIR (datasets/photo_pairs.h):\n"
                "a random crop, a random homography, 1-2 moving patches"),
        CLI_NUM("--magnitude", &o->magnitude, 0, 0.5, "M", "--photos: corners move within +-M*S px", .open_lo = 1),
        CLI_NUM("--still", &o->still, 0, 1, "F", "--photos: a share F of the pairs have a still camera (the patches still move), "
                "as most consecutive video frames nearly have"),
        CLI_NUM("--mix-synth", &o->mix_synth, 0, 10000000, "N", "with --photos or --dataset: N rendered pairs (--synth's, --camera) join\n"
                "the pool, so the model keeps the renderer while it learns the new images"),
        CLI_FLAG("--augment", &o->augment, "--photos: photometric jitter, blur, noise and JPEG coding per frame"),
        CLI_SECTION("Model"),
        CLI_NUM("--size", &o->size, 32, 1024, "S", "model size, a multiple of 16: frames are resized to SxS"),
        CLI_NUM("--arch", &o->arch, 1, 2, "A", "GME architecture (motion/glocal.h glocal_config.arch)"),
        CLI_NUM("--gn", &o->gn, 1, 2, "G", "arch 2's Gauss-Newton finish (glocal_config.gn): 2 reweights each step (IRLS)"),
        CLI_NUM("--lme-arch", &o->lme_arch, 1, 2, "A", "LME architecture (glocal_config.lme_arch): 2 learns the local flow"),
        CLI_NUM("--lme-ch", &o->lme_ch, 2, 128, "C", "LME base channels"),
        CLI_STR("--init", &o->init, "M", "start the GME from the weights of checkpoint M (same size, arch, feat);\n"
                "the LME starts fresh (a new --lme-arch on a trained GME)"),
        CLI_STR("--init-lme", &o->init_lme, "M", "start the LME from the weights of checkpoint M (same lme-arch, lme-ch):\n"
                "e.g. an LME trained on synthetic pairs fine-tuned on photographs"),
        CLI_FLAG("--freeze-gme", &o->freeze_gme, "train the LME alone: the GME stays as it is (with --init)"),
        CLI_FLAG("--align-refine", &o->align_refine, "with --freeze-gme: the LME learns on pairs aligned by the robust\n"
                 "refinement started from the GME's homography (as inference aligns pairs the network gets wrong)"),
        CLI_NUM("--iters", &o->iters, 1, 8, "K", "GME refinement iterations"),
        CLI_NUM("--feat", &o->feat, 4, 256, "F", "encoder channels"),
        CLI_SECTION("Training"),
        CLI_NUM("--steps", &o->steps, 1, 1000000000, "N", "stop after N steps"),
        CLI_NUM("--minutes", &o->minutes, 0, INFINITY, "M", "stop after M minutes of training, 0 = no limit"),
        CLI_NUM("--batch", &o->batch, 1, 4096, "B", "pairs per step, all ranks together"),
        CLI_NUM("--lr", &o->lr, 0, 1, "X", "Adam learning rate", .open_lo = 1, .open_hi = 1),
        CLI_NUM("--lr-final", &o->lr_final, 0, 1, "X",
                "after the warm-up, a cosine decay from --lr to X that ends with the run (at --steps, or "
                "at --minutes when that comes first); 0 = constant lr"),
        CLI_NUM("--lme-start", &o->lc.lme_start, 0, 1000000000, "N", "step from which LME and the mask train"),
        CLI_NUM("--mask-start", &o->lc.mask_start, 0, 1000000000, "N",
                "step from which the mask weights the global loss, not before --lme-start", .def = mask_def),
        CLI_NUM("--census", &o->lc.w_census, -INFINITY, INFINITY, "W", "weight of the census term"),
        CLI_NUM("--dense", &o->lc.w_dense, -INFINITY, INFINITY, "W", "arch 2: weight of the dense flows' photometric term"),
        CLI_NUM("--local", &o->lc.w_local, -INFINITY, INFINITY, "W", "weight of the local reconstruction (Charbonnier)"),
        CLI_NUM("--local-census", &o->lc.w_lcensus, -INFINITY, INFINITY, "W", "LME arch 2: weight of the census term of the local loss"),
        CLI_CHOICE("--occlusion", &o->lc.occlusion, occlusions, "pixels left out of the LME's reconstruction loss: none; border (the\n"
                   "flow leaves the frame); fb (border, and the forward-backward test against the LME's\n"
                   "flow of the reversed pair: one more LME pass a step, without gradient)", .def = "none"),
        CLI_NUM("--smooth", &o->lc.w_smooth, -INFINITY, INFINITY, "W", "weight of the local flow's edge-aware smoothness"),
        CLI_CHOICE("--teacher", &o->teacher, teachers, "GME arch 2's dense flows and LME arch 2's local flow also learn\n"
                   "from a classical flow (its local part: minus the global estimate),\n"
                   "where its forward-backward check and photometric error trust it (no ground truth);\n"
                   "fused: TV-L1 fused with DIS by their 5x5 photometric error, the hybrid's local flow;\n"
                   "none: the photometric terms alone (the LME's flow then learns several times slower)",
                   .def = "tvl1"),
        CLI_FLAG("--pretrain-gt", &o->pretrain_gt, "SUPERVISED pre-training, not self-supervised: the teacher term learns\n"
                 "from the generator's exact flow (--synth or --photos pairs) instead of a classical\n"
                 "flow; report such models apart (never the default)"),
        CLI_NUM("--teacher-weight", &o->lc.w_teacher, -INFINITY, INFINITY, "W", "weight of the teacher term", .def = "1 with a teacher"),
        CLI_NUM("--seed", &o->seed, 0, 0x7fffffffL, "S", "seed of weights and batches"),
        CLI_NUM("--ckpt-every", &o->ckpt_every, 1, 1000000000, "N", "checkpoint period in steps"),
        CLI_NUM("--log-every", &o->log_every, 1, 1000000000, "N", "log period in steps"),
        CLI_FLAG("--resume", &o->resume, "continue from DIR/glocal.h5 (its model config wins)"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .usage = "--out DIR [--synth | --dataset DIR] [options]",
        .about = "Trains GLOCAL's global motion (homography bases, cost volume, DLT) and local motion\n"
                 "(attention U-Net, mask) on frame pairs with photometric losses only: no labels, no\n"
                 "ground truth. Pairs come from the synthetic benchmark rendered in memory (--synth,\n"
                 "the default) or from the train list of any UCF-101-layout dataset (--dataset;\n"
                 "of the two, the one given last counts).\n"
                 "Writes DIR/glocal.h5 (checkpoint: weights, optimizer state, step, model config)\n"
                 "every --ckpt-every steps and at the end, and appends one JSON object per logged\n"
                 "step to DIR/log.jsonl. A NaN loss stops training; the last checkpoint stays as it\n"
                 "was. The same options and seed repeat the same run (use --threads 1: libtorch's\n"
                 "thread pool is slow on a loaded machine). Ctrl-C or SIGTERM stops after the\n"
                 "current step and writes the checkpoint (exit 130 or 143); --resume continues.\n",
        .epilog = "Data-parallel: under `glocal launch -n N -- glocal train-motion ...`, torchrun or\n"
                  "srun (RANK/WORLD_SIZE or SLURM_* set), each rank trains on batch/N pairs of the same\n"
                  "global batch and gradients are all-reduced (c10d); rank 0 logs and checkpoints.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    const cli_opt *synth = opts, *dataset = opts, *tw = opts;
    while (synth->ptr != &o->synth) synth++;
    while (dataset->ptr != &o->dataset) dataset++;
    while (tw->ptr != &o->lc.w_teacher) tw++;
    const cli_opt *teach = opts;
    while (teach->ptr != &o->teacher) teach++;
    if (o->pretrain_gt && teach->count > 0)
        return cli_usage_error(cmd, "--pretrain-gt replaces the classical teacher: give one of --teacher, --pretrain-gt");
    /* --teacher (or --pretrain-gt) without --teacher-weight: 1; a weight given (0 too) stands */
    if ((o->teacher > 0 || o->pretrain_gt) && tw->count == 0) o->lc.w_teacher = 1.0;
    if (synth->last > dataset->last) o->dataset = NULL; /* --dataset X --synth: synthetic */
    if (o->pretrain_gt && o->dataset && !o->photos)
        return cli_usage_error(cmd, "--pretrain-gt needs pairs with ground truth (--synth or --photos), not --dataset");
    if (o->dataset && !o->photos) o->lists = cli_lists_note(cmd, o->dataset, o->lists, o->lists_dir, sizeof o->lists_dir);
    if (o->mix_synth > 0 && !o->photos && !o->dataset)
        return cli_usage_error(cmd, "--mix-synth adds rendered pairs to --photos or --dataset pairs: give one of them");
    if (o->size % 16) return cli_usage_error(cmd, "--size must be a multiple of 16, got %ld", o->size);
    if (o->freeze_gme && !o->init && !o->resume)
        return cli_usage_error(cmd, "--freeze-gme needs --init M (a trained GME to keep)");
    if (o->align_refine && !o->freeze_gme) return cli_usage_error(cmd, "--align-refine needs --freeze-gme");
    o->lc.train_gme = !o->freeze_gme;
    /* The mask comes from LME, so it never starts before it. Without
     * --mask-start, its default follows a later --lme-start (and says so);
     * a --mask-start before --lme-start is an error. */
    if (o->lc.mask_start < 0) {
        o->lc.mask_start = glocal_loss_config_default().mask_start;
        if (o->lc.mask_start < o->lc.lme_start) {
            fprintf(stderr, "glocal train-motion: the default --mask-start %ld is before --lme-start %ld: "
                    "the mask starts with LME, at step %ld\n", o->lc.mask_start, o->lc.lme_start, o->lc.lme_start);
            o->lc.mask_start = o->lc.lme_start;
        }
    }
    return CLI_PARSED;
}

/* Options, then glocal_train (motion/glocal.h). */
int cmd_train_motion(int argc, char **argv)
{
    const char *cmd = "train-motion";
    tm_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != CLI_PARSED) return rc;
    glocal_train_config tc = glocal_train_config_default();
    tc.loss = o.lc;
    tc.opt.lr = o.lr;
    tc.lr_final = o.lr_final;
    tc.lme_align_refine = o.align_refine;
    tc.steps = o.steps;
    tc.minutes = o.minutes;
    tc.batch_size = (int)o.batch;
    tc.seed = (uint64_t)o.seed;
    tc.ckpt_every = o.ckpt_every;
    tc.log_every = o.log_every;
    if ((rc = glocal_train_config_validate(&tc)) < 0) return cli_usage_error(cmd, "%s", gl_last_error());

    char ckpt[4096], logp[4096];
    snprintf(ckpt, sizeof ckpt, "%s/glocal.h5", o.out);
    snprintf(logp, sizeof logp, "%s/log.jsonl", o.out);
    if ((rc = gl_mkdirs(o.out)) < 0) return cli_fail(cmd, rc, "cannot create %s", o.out);
    tc.checkpoint = ckpt;
    tc.resume = o.resume ? ckpt : NULL;
    tc.log_path = logp;

    int code = CLI_FAIL;
    glocal_model *m = NULL;
    motion_pairs P = { 0 };
    motion_teacher T = { 0 };
    int64_t step0 = 0;
    nn_dist *dist = NULL;
    nn_manual_seed((uint64_t)o.seed);
    glocal_config gc = glocal_config_default((int)o.size);
    gc.iters = (int)o.iters;
    gc.arch = (int)o.arch;
    gc.gn = (int)o.gn;
    gc.lme_arch = (int)o.lme_arch;
    gc.lme_ch = (int)o.lme_ch;
    gc.feat = (int)o.feat;
    if (o.resume && (rc = glocal_model_load(&m, ckpt, &step0)) < 0) { cli_fail(cmd, rc, "cannot resume from %s", ckpt); goto done; }
    if (o.resume) fprintf(stderr, "resuming %s at step %lld\n", ckpt, (long long)step0);
    if (!o.resume && (rc = glocal_model_new(&m, &gc)) < 0) { cli_fail(cmd, rc, "cannot build the model"); goto done; }
    if (!o.resume && o.init) {
        int copied;
        if ((rc = glocal_model_load_gme(m, o.init, &copied)) < 0) { cli_fail(cmd, rc, "--init"); goto done; }
        fprintf(stderr, "GME from %s (%d tensors)%s\n", o.init, copied, o.freeze_gme ? ", frozen" : "");
    }
    if (!o.resume && o.init_lme) {
        int copied;
        if ((rc = glocal_model_load_lme(m, o.init_lme, &copied)) < 0) { cli_fail(cmd, rc, "--init-lme"); goto done; }
        fprintf(stderr, "LME from %s (%d tensors)\n", o.init_lme, copied);
    }
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
                nn_dist_backend_name(dist), o.batch / world);
    if ((rc = prepare_pairs(&P, &o, S)) < 0) {
        cli_fail(cmd, rc, "cannot prepare the training pairs");
        goto done;
    }
    glocal_pair_source src;
    motion_pairs_source(&P, &src);
    cli_signals_catch(); /* from the teacher's flows to the end of training */
    if (o.pretrain_gt) {
        if ((rc = motion_teacher_truth(&T, &P)) < 0) { cli_fail(cmd, rc, "--pretrain-gt"); goto done; }
        if (rank == 0)
            fprintf(stderr, "glocal train-motion: SUPERVISED by the generator's ground truth (--pretrain-gt): "
                    "not a self-supervised model\n");
        motion_pairs_source_teacher(&T, &src);
    } else if (o.teacher > 0) {
        static const flow_method_fn fms[] = { NULL, flow_method_tvl1, flow_method_dis, flow_method_fused };
        const flow_method_fn fm = fms[o.teacher];
        cli_progress tpp;
        cli_progress_start(&tpp, "teacher flows", P.n);
        rc = motion_teacher_compute(&T, &P, fm, NULL, pool_progress, &tpp);
        cli_progress_end(&tpp, rc < 0 ? 0 : P.n, NULL);
        if (rc == GL_ECANCELED && cli_signal_caught()) {
            fprintf(stderr, "glocal train-motion: stopped by signal %d while computing the teacher's flows "
                    "(nothing trained yet); run the same command again\n", cli_signal_caught());
            code = 128 + cli_signal_caught();
            goto done;
        }
        if (rc < 0) { cli_fail(cmd, rc, "cannot compute the teacher's flows"); goto done; }
        motion_pairs_source_teacher(&T, &src);
    }
    /* With a time budget the progress line counts seconds, so its ETA means something. */
    train_progress tp = { .by_time = o.minutes > 0, .step0 = (long)step0, .step = (long)step0 };
    cli_progress_start(&tp.bar, tp.by_time ? "training (seconds)" : "training (steps)",
                       tp.by_time ? (long)ceil(o.minutes * 60) : (o.steps - step0 > 0 ? o.steps - step0 : 0));
    const double t0 = gl_now();
    rc = glocal_train(m, &src, &tc, on_status, &tp);
    cli_signals_restore();
    if (rank == 0) cli_progress_end(&tp.bar, tp.by_time ? (long)tp.elapsed_s : tp.step - tp.step0, NULL);
    if (rc == GL_ENUMERIC) { /* the message says which step and which checkpoint stays */
        fprintf(stderr, "glocal train-motion: %s.\n", gl_last_error());
        goto done;
    }
    if (rc == GL_ECANCELED && cli_signal_caught()) {
        fprintf(stderr, "glocal train-motion: %s; add --resume to the same command to continue.\n", gl_last_error());
        code = 128 + cli_signal_caught();
        goto done;
    }
    if (rc < 0) { cli_fail(cmd, rc, "training failed"); goto done; }
    if (rank == 0) fprintf(stderr, "trained %ld steps in %.1f s; model: %s\n", tp.step - tp.step0, gl_now() - t0, ckpt);
    code = CLI_OK;
done:
    cli_signals_restore();
    motion_teacher_free(&T);
    motion_pairs_free(&P);
    glocal_model_free(&m);
    nn_dist_free(&dist);
    return code;
}
