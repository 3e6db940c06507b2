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

static void help(void)
{
    printf("usage: glocal train-classifier --data ROOT --out DIR [--modality rgb|motion]\n"
           "                               [--cache FILE] [options]\n\n"
           "Trains one stream of a two-stream network with TSN's recipe (Wang et al. 2016):\n"
           "K segments per clip, one snippet each, average consensus; scale-jittered corner\n"
           "crops and horizontal flips (which also negate the x component of every motion\n"
           "field of a stack). After every epoch DIR/checkpoint.h5 is written atomically\n"
           "(model, optimizer state, step, options) and a line is added to DIR/train.jsonl\n"
           "(epoch, step, loss, accuracy, lr, clips/s). --resume continues an interrupted\n"
           "run exactly where its last checkpoint left it. A non-finite loss stops the run.\n\n"
           "data\n"
           "  --data ROOT          dataset root in the UCF-101 layout (videos, classInd.txt, lists)\n"
           "  --lists DIR          folder of the lists (default ROOT)\n"
           "  --split N            1..3 (default 1)\n"
           "  --modality M         rgb (frames) or motion (stacks from --cache) (default rgb)\n"
           "  --cache FILE         motion cache (glocal extract) for --modality motion\n"
           "  --stack L            motion fields per segment: 2L input channels (default 5)\n"
           "  --frames F           rgb frames per segment, stacked as 3F channels (default 1)\n"
           "  --divide X           motion: divide fields (pixels) by X (default 1)\n"
           "  --segments K         TSN segments (default 3)\n"
           "  --size WxH           network input (default 224x224)\n"
           "  --decode WxH         rgb: decode size before cropping (default 340x256)\n"
           "  --crop corner|random|center  training crops (default corner: TSN)\n"
           "  --no-flip            no horizontal flips (classes whose direction matters)\n"
           "model\n"
           "  --arch NAME          tiny, small, resnet10, resnet18, resnet34, resnet50 (default resnet18)\n"
           "  --depth D            the same as --arch resnetD\n"
           "  --width W            channels of the first stage (default: the arch's)\n"
           "  --dropout P          before the classifier (default: the arch's; TSN 0.8 rgb, 0.7 flow)\n"
           "  --init WEIGHTS       start from a checkpoint (ours, or torchvision exported with h5py;\n"
           "                       an RGB one gets TSN's cross-modality init for motion)\n"
           "optimisation\n"
           "  --optimizer sgd|adamw  (default sgd, momentum 0.9)\n"
           "  --lr X --momentum X --weight-decay X   (defaults 0.01, 0.9, 5e-4)\n"
           "  --schedule cosine|step|constant        (default cosine)\n"
           "  --warmup EPOCHS      linear warm-up from lr/10 (default 0)\n"
           "  --step-epochs N --gamma X              step schedule (default 30, 0.1)\n"
           "  --min-lr X           cosine floor (default 0)\n"
           "  --label-smoothing X  (default 0)\n"
           "  --clip-grad X        max gradient norm, 0 = off (default 40)\n"
           "  --epochs N --batch B (defaults 10, 32)\n"
           "  --workers N          loader threads (default: a quarter of --threads, at least 1:\n"
           "                       one reads ~1700 64x64 synthetic clips/s; on a few cores more\n"
           "                       steal them from libtorch (bench/README.md \"classifier\");\n"
           "                       full-size videos feeding a GPU need more)\n"
           "  --seed S             order, augmentation, dropout and init (default 1)\n"
           "  --resume             continue from DIR/checkpoint.h5\n\n"
           "Data-parallel training (torch.distributed c10d, Gloo on CPU): run one process per\n"
           "rank, e.g. `glocal launch -n 2 -- glocal --threads 1 train-classifier ...` or under\n"
           "torchrun/Slurm (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). --batch is the global\n"
           "batch (a multiple of the ranks); each rank loads its share, gradients are averaged,\n"
           "batch norm keeps per-rank statistics; rank 0 writes the checkpoint and the log,\n"
           "and every rank can --resume from it.\n");
}

typedef struct {
    cli_progress pr;
    int started;
    long epoch;
} progress_ctx;

static int on_step(void *vctx, const cls_train_status *s)
{
    progress_ctx *p = vctx;
    if (s->rank != 0) return 0; /* rank 0 shows the progress of all (combined-batch numbers) */
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
    return 0;
}

#define NEXT()                                                                  \
    do {                                                                        \
        if (i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", a); \
        v = argv[++i];                                                          \
    } while (0)

int cmd_train_classifier(int argc, char **argv)
{
    cls_data_opts o;
    cls_data_opts_default(&o);
    cls_train_config tc = cls_train_config_default();
    const char *out = NULL, *init = NULL, *arch = "resnet18", *opt = "sgd", *sched = "cosine", *crop = "corner";
    char archbuf[32];
    int width = 0, resume = 0, flip = 1;
    double dropout = -1, lr = 0.01, momentum = 0.9, wd = 5e-4;
    long lv;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return CLI_OK; }
        else if (!strcmp(a, "--data")) { NEXT(); o.data = v; }
        else if (!strcmp(a, "--lists")) { NEXT(); o.lists = v; }
        else if (!strcmp(a, "--out")) { NEXT(); out = v; }
        else if (!strcmp(a, "--split")) { NEXT(); if (cli_parse_int(cmd, a, v, 1, 3, &lv) < 0) return CLI_USAGE; o.split_no = (int)lv; }
        else if (!strcmp(a, "--modality")) { NEXT(); snprintf(o.modality, sizeof o.modality, "%s", v); }
        else if (!strcmp(a, "--cache")) { NEXT(); o.cache = v; }
        else if (!strcmp(a, "--stack")) { NEXT(); if (cli_parse_int(cmd, a, v, 1, 64, &lv) < 0) return CLI_USAGE; o.stack = (int)lv; }
        else if (!strcmp(a, "--frames")) { NEXT(); if (cli_parse_int(cmd, a, v, 1, 64, &lv) < 0) return CLI_USAGE; o.frames = (int)lv; }
        else if (!strcmp(a, "--segments")) { NEXT(); if (cli_parse_int(cmd, a, v, 1, 64, &lv) < 0) return CLI_USAGE; o.segments = (int)lv; }
        else if (!strcmp(a, "--divide")) { NEXT(); if (cli_parse_double(cmd, a, v, &o.divide) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--size")) { NEXT(); if (cli_parse_size(cmd, a, v, "wh", &o.size_w, &o.size_h) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--decode")) { NEXT(); if (cli_parse_size(cmd, a, v, "wh", &o.decode_w, &o.decode_h) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--crop")) { NEXT(); crop = v; }
        else if (!strcmp(a, "--no-flip")) flip = 0;
        else if (!strcmp(a, "--arch")) { NEXT(); arch = v; }
        else if (!strcmp(a, "--depth")) { NEXT(); if (cli_parse_int(cmd, a, v, 10, 50, &lv) < 0) return CLI_USAGE; snprintf(archbuf, sizeof archbuf, "resnet%ld", lv); arch = archbuf; }
        else if (!strcmp(a, "--width")) { NEXT(); if (cli_parse_int(cmd, a, v, 1, 4096, &lv) < 0) return CLI_USAGE; width = (int)lv; }
        else if (!strcmp(a, "--dropout")) { NEXT(); if (cli_parse_double(cmd, a, v, &dropout) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--init")) { NEXT(); init = v; }
        else if (!strcmp(a, "--optimizer")) { NEXT(); opt = v; }
        else if (!strcmp(a, "--lr")) { NEXT(); if (cli_parse_double(cmd, a, v, &lr) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--momentum")) { NEXT(); if (cli_parse_double(cmd, a, v, &momentum) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--weight-decay")) { NEXT(); if (cli_parse_double(cmd, a, v, &wd) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--schedule")) { NEXT(); sched = v; }
        else if (!strcmp(a, "--warmup")) { NEXT(); if (cli_parse_double(cmd, a, v, &tc.warmup_epochs) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--step-epochs")) { NEXT(); if (cli_parse_double(cmd, a, v, &tc.step_epochs) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--gamma")) { NEXT(); if (cli_parse_double(cmd, a, v, &tc.gamma) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--min-lr")) { NEXT(); if (cli_parse_double(cmd, a, v, &tc.min_lr) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--label-smoothing")) { NEXT(); if (cli_parse_double(cmd, a, v, &tc.label_smoothing) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--clip-grad")) { NEXT(); if (cli_parse_double(cmd, a, v, &tc.clip_grad) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--epochs")) { NEXT(); if (cli_parse_int(cmd, a, v, 1, 100000, &lv) < 0) return CLI_USAGE; tc.epochs = lv; }
        else if (!strcmp(a, "--batch")) { NEXT(); if (cli_parse_int(cmd, a, v, 1, 65536, &lv) < 0) return CLI_USAGE; tc.batch_size = (int)lv; }
        else if (!strcmp(a, "--workers")) { NEXT(); if (cli_parse_int(cmd, a, v, 1, 256, &lv) < 0) return CLI_USAGE; tc.threads = (int)lv; }
        else if (!strcmp(a, "--seed")) { NEXT(); if (cli_parse_int(cmd, a, v, 0, 0x7fffffffL, &lv) < 0) return CLI_USAGE; tc.seed = (uint64_t)lv; }
        else if (!strcmp(a, "--resume")) resume = 1;
        else return cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!o.data) return cli_usage_error(cmd, "--data ROOT is required");
    if (!out) return cli_usage_error(cmd, "--out DIR is required");
    if (strcmp(opt, "sgd") && strcmp(opt, "adamw")) return cli_usage_error(cmd, "--optimizer expects sgd or adamw, got '%s'", opt);
    tc.opt = nn_opt_config_default(!strcmp(opt, "sgd") ? NN_OPT_SGD : NN_OPT_ADAMW);
    tc.opt.lr = lr;
    tc.opt.weight_decay = wd;
    if (tc.opt.kind == NN_OPT_SGD) tc.opt.momentum = momentum;
    if (!strcmp(sched, "cosine")) tc.schedule = NN_LR_COSINE;
    else if (!strcmp(sched, "step")) tc.schedule = NN_LR_STEP;
    else if (!strcmp(sched, "constant")) tc.schedule = NN_LR_CONSTANT;
    else return cli_usage_error(cmd, "--schedule expects cosine, step or constant, got '%s'", sched);
    loader_aug aug = loader_aug_default(o.size_w, o.size_h);
    if (!strcmp(crop, "corner")) aug.crop = LOADER_CROP_CORNER;
    else if (!strcmp(crop, "random")) aug.crop = LOADER_CROP_RANDOM;
    else if (!strcmp(crop, "center")) aug.crop = LOADER_CROP_CENTER;
    else return cli_usage_error(cmd, "--crop expects corner, random or center, got '%s'", crop);
    aug.flip = flip;
    o.flip = flip;

    int rc, status = CLI_FAIL;
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
    if ((rc = cls_train(c, &d.src, &tc, on_step, &pc)) < 0) { cli_fail(cmd, rc, "training failed"); goto done; }
    if (rank == 0) printf("%s\n", ckpt);
    status = CLI_OK;
done:
    gl_free(cfgjson);
    classifier_free(&c);
    cls_data_close(&d);
    nn_dist_free(&dist);
    return status;
}
