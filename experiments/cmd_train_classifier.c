/* glocal train-classifier — train one stream (RGB or motion) of the two-stream
 * classifier, TSN style (recognition/classifier.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "experiments/classifier_data.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "recognition/classifier.h"

GLOCAL_COMMAND(train_classifier, "train-classifier", "train the RGB or motion stream of the two-stream classifier (TSN)")

static const char *cmd = "train-classifier";

typedef struct {
    cli_progress pr;
    int started;
    long epoch;
} progress_ctx;

/* SIGINT/SIGTERM: training stops after the current step and writes its
 * checkpoint (cls_train), on every rank: the exit status is 128 + the signal. */
static int on_step(void *vctx, const cls_train_status *s)
{
    progress_ctx *p = vctx;
    if (s->rank != 0) return cli_signal_caught(); /* rank 0 shows the progress of all (combined-batch numbers) */
    char extra[160];
    snprintf(extra, sizeof extra, "loss %.4f acc %.3f lr %.3g %.1f clips/s", s->loss, s->acc, s->lr, s->clips_per_s);
    if (!p->started || p->epoch != s->epoch) {
        static char label[32];
        snprintf(label, sizeof label, "epoch %ld", s->epoch + 1);
        cli_progress_start(&p->pr, label, s->batches);
        p->started = 1;
        p->epoch = s->epoch;
    }
    if (s->end_of_epoch) cli_progress_end(&p->pr, s->batch, extra);
    else cli_progress_update(&p->pr, s->batch, extra);
    return cli_signal_caught();
}

/* --depth D: --arch resnetD, whichever of the two comes last. */
typedef struct {
    const char **arch;
    char buf[32];
} depth_ctx;

static int parse_depth(void *ctx, const char *v, char *why, size_t n)
{
    depth_ctx *d = ctx;
    char *end;
    long depth = strtol(v, &end, 10);
    if (end == v || *end) return snprintf(why, n, "'%s' is not a whole number", v), -1;
    if (depth < 10 || depth > 50) return snprintf(why, n, "%s is out of range 10..50", v), -1;
    snprintf(d->buf, sizeof d->buf, "resnet%ld", depth);
    *d->arch = d->buf;
    return 0;
}

static const char *const modalities[] = { "rgb", "motion", NULL };
static const char *const optimizers[] = { "sgd", "adamw", NULL };
static const char *const schedules[] = { "cosine", "step", "constant", NULL };
static const nn_lr_kind schedule_kind[] = { NN_LR_COSINE, NN_LR_STEP, NN_LR_CONSTANT };
static const char *const crops[] = { "corner", "random", "center", NULL };
static const loader_crop_mode crop_kind[] = { LOADER_CROP_CORNER, LOADER_CROP_RANDOM, LOADER_CROP_CENTER };

/* Long (~150 lines), 67 of them the option table and help text (cli_parse). */
int cmd_train_classifier(int argc, char **argv)
{
    cls_data_opts o;
    cls_data_opts_default(&o);
    cls_train_config tc = cls_train_config_default();
    const char *out = NULL, *init = NULL, *arch = "resnet18";
    int width = 0, resume = 0, flip = 1, modality = 0, opt = 0, sched = 0, crop = 0;
    double dropout = -1, lr = 0.01, momentum = 0.9, wd = 5e-4;
    depth_ctx depth = { &arch, "" };
    cli_opt opts[] = {
        CLI_SECTION("data"),
        CLI_STR("--data", &o.data, "ROOT", "dataset root in the UCF-101 layout (videos, classInd.txt, lists)",
                .required = 1),
        CLI_STR("--out", &out, "DIR", "where checkpoint.h5 and train.jsonl go", .required = 1),
        CLI_STR("--lists", &o.lists, "DIR", "folder of the lists", .def = "ROOT"),
        CLI_NUM("--split", &o.split_no, 1, 3, "N", "the split"),
        CLI_CHOICE("--modality", &modality, modalities, "frames (rgb) or stacks from --cache (motion)"),
        CLI_STR("--cache", &o.cache, "FILE", "motion cache (glocal extract) for --modality motion"),
        CLI_NUM("--stack", &o.stack, 1, 64, "L", "motion fields per segment: 2L input channels"),
        CLI_NUM("--frames", &o.frames, 1, 64, "F", "rgb frames per segment, stacked as 3F channels"),
        CLI_NUM("--divide", &o.divide, -INFINITY, INFINITY, "X", "motion: divide fields (pixels) by X"),
        CLI_NUM("--segments", &o.segments, 1, 64, "K", "TSN segments"),
        CLI_SIZE("--size", &o.size_w, &o.size_h, "WxH", "network input"),
        CLI_SIZE("--decode", &o.decode_w, &o.decode_h, "WxH", "rgb: decode size before cropping"),
        CLI_CHOICE("--crop", &crop, crops, "training crops; corner is TSN's"),
        CLI_NOFLAG("--no-flip", &flip, "no horizontal flips (classes whose direction matters)"),
        CLI_SECTION("model"),
        CLI_STR("--arch", &arch, "NAME", "tiny, small, resnet10, resnet18, resnet34 or resnet50"),
        CLI_CALL("--depth", parse_depth, &depth, "D", "the same as --arch resnetD, D in 10..50"),
        CLI_NUM("--width", &width, 1, 4096, "W", "channels of the first stage", .def = "the arch's"),
        CLI_NUM("--dropout", &dropout, -INFINITY, INFINITY, "P", "before the classifier; TSN: 0.8 rgb, 0.7 flow",
                .def = "the arch's"),
        CLI_STR("--init", &init, "WEIGHTS",
                "start from a checkpoint (ours, or torchvision exported with h5py; an RGB one gets TSN's "
                "cross-modality init for motion)"),
        CLI_SECTION("optimisation"),
        CLI_CHOICE("--optimizer", &opt, optimizers, "SGD with --momentum, or AdamW"),
        CLI_NUM("--lr", &lr, -INFINITY, INFINITY, "X", "learning rate"),
        CLI_NUM("--momentum", &momentum, -INFINITY, INFINITY, "X", "SGD's momentum"),
        CLI_NUM("--weight-decay", &wd, -INFINITY, INFINITY, "X", "weight decay"),
        CLI_CHOICE("--schedule", &sched, schedules, "learning-rate schedule"),
        CLI_NUM("--warmup", &tc.warmup_epochs, -INFINITY, INFINITY, "EPOCHS", "linear warm-up from lr/10"),
        CLI_NUM("--step-epochs", &tc.step_epochs, -INFINITY, INFINITY, "N",
                "step schedule: lr x gamma every N epochs"),
        CLI_NUM("--gamma", &tc.gamma, -INFINITY, INFINITY, "X", "step schedule's factor"),
        CLI_NUM("--min-lr", &tc.min_lr, -INFINITY, INFINITY, "X", "cosine floor"),
        CLI_NUM("--label-smoothing", &tc.label_smoothing, -INFINITY, INFINITY, "X", "label smoothing"),
        CLI_NUM("--clip-grad", &tc.clip_grad, -INFINITY, INFINITY, "X", "max gradient norm, 0 = off"),
        CLI_NUM("--epochs", &tc.epochs, 1, 100000, "N", "epochs"),
        CLI_NUM("--batch", &tc.batch_size, 1, 65536, "B", "clips per step, all ranks together"),
        CLI_NUM("--workers", &tc.threads, 1, 256, "N",
                "loader threads: one reads ~1700 64x64 synthetic clips/s; on a few cores more steal "
                "them from libtorch (bench/README.md \"classifier\"); full-size videos feeding a GPU "
                "need more",
                .def = "a quarter of --threads, at least 1"),
        CLI_NUM("--seed", &tc.seed, 0, 0x7fffffffL, "S", "order, augmentation, dropout and init"),
        CLI_FLAG("--resume", &resume, "continue from DIR/checkpoint.h5"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts,
        .about = "Trains one stream of a two-stream network with TSN's recipe (Wang et al. 2016):\n"
                 "K segments per clip, one snippet each, average consensus; scale-jittered corner\n"
                 "crops and horizontal flips (which also negate the x component of every motion\n"
                 "field of a stack). After every epoch DIR/checkpoint.h5 is written atomically\n"
                 "(model, optimizer state, step, options) and a line is added to DIR/train.jsonl\n"
                 "(epoch, step, loss, accuracy, lr, clips/s). --resume continues an interrupted\n"
                 "run exactly where its last checkpoint left it. A non-finite loss stops the run.\n"
                 "SIGINT or SIGTERM stops it after the current step with a checkpoint of that\n"
                 "step (exit status 130 / 143), which --resume continues.\n",
        .epilog = "Data-parallel training (torch.distributed c10d, Gloo on CPU): run one process per\n"
                  "rank, e.g. `glocal launch -n 2 -- glocal --threads 1 train-classifier ...` or under\n"
                  "torchrun/Slurm (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). --batch is the global\n"
                  "batch (a multiple of the ranks); each rank loads its share, gradients are averaged,\n"
                  "batch norm keeps per-rank statistics; rank 0 writes the checkpoint and the log,\n"
                  "and every rank can --resume from it.\n",
    };
    int rc = cli_parse(&spec, argc, argv), status;
    if (rc != CLI_PARSED) return rc;
    snprintf(o.modality, sizeof o.modality, "%s", modalities[modality]);
    tc.opt = nn_opt_config_default(opt == 0 ? NN_OPT_SGD : NN_OPT_ADAMW);
    tc.opt.lr = lr;
    tc.opt.weight_decay = wd;
    if (tc.opt.kind == NN_OPT_SGD) tc.opt.momentum = momentum;
    tc.schedule = schedule_kind[sched];
    loader_aug aug = loader_aug_default(o.size_w, o.size_h);
    aug.crop = crop_kind[crop];
    aug.flip = flip;
    o.flip = flip;

    status = CLI_FAIL;
    cls_data d;
    classifier *c = NULL;
    char *cfgjson = NULL;
    nn_dist *dist = NULL;
    memset(&d, 0, sizeof d);
    if ((rc = gl_mkdirs(out)) < 0) return cli_fail(cmd, rc, "cannot create %s", out);
    /* the job from the environment (torchrun / Slurm / glocal launch); one rank without one */
    if ((rc = nn_dist_init_from_env(&dist, NULL)) < 0) return cli_fail(cmd, rc, "cannot join the distributed job");
    int rank = nn_dist_rank(dist), world = nn_dist_world_size(dist);
    if (tc.batch_size % world) {
        status = cli_usage_error(cmd, "--batch %d is the global batch: it must be a multiple of the %d ranks", tc.batch_size, world);
        goto done;
    }
    tc.dist = dist;
    if ((rc = cls_data_open(&d, &o, DATASET_TRAIN, &aug)) < 0) { cli_fail(cmd, rc, "cannot set up the training data"); goto done; }
    if (d.missing && rank == 0) fprintf(stderr, "glocal %s: %ld training clips are not in the cache and are left out\n", cmd, d.missing);
    classifier_config cc;
    if ((rc = classifier_config_preset(arch, d.channels, d.idx->num_classes, &cc)) < 0) { status = cli_usage_error(cmd, "--arch: %s", gl_last_error()); goto done; }
    if (width) cc.width = width;
    if (dropout >= 0) cc.dropout = dropout;
    if ((rc = classifier_config_validate(&cc)) < 0) { status = cli_usage_error(cmd, "%s", gl_last_error()); goto done; }
    nn_manual_seed(tc.seed);
    if ((rc = classifier_new(&c, &cc)) < 0) { cli_fail(cmd, rc, "cannot build the model"); goto done; }
    if (init && !resume) {
        char report[2048];
        if ((rc = classifier_load_pretrained(c, init, report, sizeof report)) < 0) { cli_fail(cmd, rc, "--init"); goto done; }
        if (rank == 0) fprintf(stderr, "%s", report);
    }
    char cj[1024], dj[1024];
    if ((rc = classifier_config_to_json(&cc, cj, sizeof cj)) < 0 || (rc = cls_data_opts_to_json(&o, dj, sizeof dj)) < 0) {
        cli_fail(cmd, rc, "config");
        goto done;
    }
    size_t jn = strlen(cj) + strlen(dj) + 64;
    if (!(cfgjson = gl_malloc(jn))) { cli_fail(cmd, GL_ENOMEM, "config"); goto done; }
    snprintf(cfgjson, jn, "{\"classifier\": %s, \"data\": %s}", cj, dj);
    char ckpt[4096], logp[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", out);
    snprintf(logp, sizeof logp, "%s/train.jsonl", out);
    struct stat st;
    if (resume && stat(ckpt, &st) != 0) { status = cli_usage_error(cmd, "--resume: %s does not exist", ckpt); goto done; }
    tc.checkpoint = ckpt;
    tc.log_path = logp;
    tc.config_json = cfgjson;
    tc.resume = resume ? ckpt : NULL;
    if (!tc.threads) tc.threads = gl_num_threads() / 4 > 1 ? gl_num_threads() / 4 : 1;
    if (rank == 0)
        fprintf(stderr, "glocal %s: %s stream, %ld clips, %d classes, %s (%lld parameters), input [%d, %d, %d, %d]%s\n", cmd,
                o.modality, d.count, cc.num_classes, cc.arch, (long long)nn_params_count(classifier_params(c)), o.segments,
                d.channels, o.size_h, o.size_w, world > 1 ? ", data-parallel" : "");
    if (rank == 0 && world > 1)
        fprintf(stderr, "glocal %s: %d ranks (%s), %d clips per rank per batch\n", cmd, world, nn_dist_backend_name(dist),
                tc.batch_size / world);
    progress_ctx pc = { 0 };
    cli_signals_catch();
    rc = cls_train(c, &d.src, &tc, on_step, &pc);
    cli_signals_restore();
    if (rc == GL_ECANCELED && cli_signal_caught()) {
        if (rank == 0) {
            if (pc.started && pc.pr.tty) fputc('\n', stderr); /* after the progress line */
            fprintf(stderr, "glocal %s: %s; add --resume to the same command to continue.\n", cmd, gl_last_error());
        }
        status = 128 + cli_signal_caught();
        goto done;
    }
    if (rc < 0) { cli_fail(cmd, rc, "training failed"); goto done; }
    if (rank == 0) printf("%s\n", ckpt);
    status = CLI_OK;
done:
    gl_free(cfgjson);
    classifier_free(&c);
    cls_data_close(&d);
    nn_dist_free(&dist);
    return status;
}
