/* glocal evaluate — TSN test protocol for one trained stream: metrics,
 * confusion matrix and per-clip scores (recognition/classifier.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/classifier_data.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "recognition/classifier.h"

GLOCAL_COMMAND(evaluate, "evaluate", "evaluate a trained stream: top-1/5, per-class accuracy, confusion, per-clip scores")

static const char *cmd = "evaluate";

typedef struct {
    cli_progress pr;
} prog;

static int on_batch(void *ctx, const cls_train_status *s)
{
    prog *p = ctx;
    char extra[64];
    snprintf(extra, sizeof extra, "%.1f clips/s", s->clips_per_s);
    cli_progress_update(&p->pr, s->batch, extra);
    return 0;
}

static const char *const subsets[] = { "test", "train", "val", NULL };
static const dataset_split subset_split[] = { DATASET_TEST, DATASET_TRAIN, DATASET_VAL };
static const char *const crop_counts[] = { "1", "3", "10", NULL };

/* One evaluation: the checkpoint's model and data options, the data, and
 * what the model said about each clip. */
typedef struct {
    char *config;                /* the checkpoint's stored options (JSON) */
    cls_data_opts o;
    classifier_config cc;
    classifier *c;
    cls_data d;
    float *scores;               /* [count][classes] */
    int32_t *labels;
    long *items;
    const char **names;
    cls_metrics m;
    char *mjson;                 /* m as JSON */
} eval_run;

static void eval_run_free(eval_run *e)
{
    cls_metrics_free(&e->m);
    gl_free(e->mjson);
    gl_free(e->names);
    gl_free(e->items);
    gl_free(e->labels);
    gl_free(e->scores);
    cls_data_close(&e->d);
    classifier_free(&e->c);
    gl_free(e->config);
}

/* The options stored in the checkpoint (the weights come later, into a
 * model of that shape). CLI_OK, or CLI_FAIL / CLI_USAGE after saying why. */
static int evaluate_read_config(eval_run *e, const char *ckpt, long crops)
{
    int rc = classifier_checkpoint_config(ckpt, &e->config);
    cls_data_opts_default(&e->o);
    if (!e->config || (rc = cls_data_opts_from_json(e->config, &e->o)) < 0 ||
        (rc = classifier_config_from_json(e->config, &e->cc)) < 0)
        return cli_fail(cmd, rc, "%s is not a checkpoint of glocal train-classifier", ckpt);
    if (!e->o.flip && crops == 10)
        return cli_usage_error(cmd, "the model was trained with --no-flip (its classes depend on left/right), "
                                    "and 10-crop testing mirrors half of the views: use --crops 1 or 3");
    return CLI_OK;
}

/* The model with the checkpoint's weights, the clips of the subset (which
 * must fit the model) and room for their scores. CLI_OK, or CLI_FAIL after
 * saying why. */
static int evaluate_open(eval_run *e, const char *ckpt, const char *subset, dataset_split split, long crops)
{
    int rc;
    if ((rc = classifier_new(&e->c, &e->cc)) < 0 ||
        (rc = nn_checkpoint_load(ckpt, classifier_params(e->c), NULL, NULL, NULL)) < 0)
        return cli_fail(cmd, rc, "cannot load the model");
    loader_aug aug = loader_aug_default(e->o.size_w, e->o.size_h);
    aug.test_views = (int)crops;
    if ((rc = cls_data_open(&e->d, &e->o, split, &aug)) < 0) return cli_fail(cmd, rc, "cannot set up the %s data", subset);
    if (e->d.channels != e->cc.in_channels) {
        fprintf(stderr, "glocal %s: the data give %d input channels, the model expects %d\n", cmd, e->d.channels,
                e->cc.in_channels);
        return CLI_FAIL;
    }
    if (e->d.idx->num_classes != e->cc.num_classes) {
        fprintf(stderr, "glocal %s: the dataset has %d classes, the model %d\n", cmd, e->d.idx->num_classes,
                e->cc.num_classes);
        return CLI_FAIL;
    }
    if (e->d.missing) fprintf(stderr, "glocal %s: %ld %s clips are not in the cache and are left out\n", cmd, e->d.missing, subset);
    const size_t n = (size_t)e->d.count;
    if (!(e->scores = gl_malloc(n * e->cc.num_classes * sizeof *e->scores)) || !(e->labels = gl_malloc(n * sizeof *e->labels)) ||
        !(e->items = gl_malloc(n * sizeof *e->items)) || !(e->names = gl_malloc(n * sizeof *e->names)))
        return cli_fail(cmd, GL_ENOMEM, "scores");
    return CLI_OK;
}

/* Scores of every clip (with a progress line), its name, and the metrics. */
static int evaluate_predict(eval_run *e, long batch, long workers)
{
    int rc;
    prog p;
    cli_progress_start(&p.pr, "evaluate", (e->d.count + batch - 1) / batch);
    if ((rc = cls_predict(e->c, &e->d.src, (int)batch, workers ? (int)workers : (gl_num_threads() / 4 > 1 ? gl_num_threads() / 4 : 1),
                          e->scores, e->labels, e->items, on_batch, &p)) < 0)
        return cli_fail(cmd, rc, "evaluation failed");
    cli_progress_end(&p.pr, (e->d.count + batch - 1) / batch, NULL);
    for (long i = 0; i < e->d.count; i++) e->names[i] = cls_data_item_name(&e->d, e->items[i]);
    return CLI_OK;
}

/* scores.csv, metrics.json, confusion.csv and confusion.png into out. */
static int evaluate_write(eval_run *e, const char *out)
{
    int rc, C = e->cc.num_classes;
    if ((rc = gl_mkdirs(out)) < 0) return cli_fail(cmd, rc, "cannot create %s", out);
    char path[4096];
    snprintf(path, sizeof path, "%s/scores.csv", out);
    if ((rc = cls_scores_save(path, e->d.count, C, e->items, e->names, e->labels, e->scores, e->d.idx->class_names)) < 0)
        return cli_fail(cmd, rc, "cannot write %s", path);
    if ((rc = cls_metrics_compute(e->scores, e->labels, e->d.count, C, &e->m)) < 0 ||
        (rc = cls_metrics_to_json(&e->m, e->d.idx->class_names, &e->mjson)) < 0)
        return cli_fail(cmd, rc, "metrics");
    snprintf(path, sizeof path, "%s/metrics.json", out);
    size_t ml = strlen(e->mjson);
    e->mjson[ml] = '\n'; /* the file ends with a newline; the buffer's NUL is restored below */
    rc = gl_write_file_atomic(path, e->mjson, ml + 1);
    e->mjson[ml] = 0;
    if (rc < 0) return cli_fail(cmd, rc, "cannot write %s", path);
    snprintf(path, sizeof path, "%s/confusion.csv", out);
    if ((rc = cls_metrics_save_confusion_csv(path, &e->m, e->d.idx->class_names)) < 0)
        return cli_fail(cmd, rc, "cannot write %s", path);
    snprintf(path, sizeof path, "%s/confusion.png", out);
    int cell = C <= 16 ? 16 : C <= 128 ? 8 : 2;
    if ((rc = cls_metrics_save_confusion_png(path, &e->m, cell)) < 0) return cli_fail(cmd, rc, "cannot write %s", path);
    return CLI_OK;
}

int cmd_evaluate(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *data = NULL, *lists = NULL, *cachep = NULL;
    long segments = 25, batch = 4, workers = 0, split_no = 0;
    int json = 0, isubset = 0, icrops = 0;
    cli_opt opts[] = {
        CLI_STR("--checkpoint", &ckpt, "FILE", "written by glocal train-classifier", .required = 1),
        CLI_STR("--data", &data, "ROOT", "dataset root", .required = 1),
        CLI_STR("--out", &out, "DIR", "where the files below go", .required = 1),
        CLI_STR("--lists", &lists, "DIR", "folder of the lists", .def = "ROOT"),
        CLI_NUM("--split", &split_no, 1, 3, "N", "the split", .def = "the checkpoint's"),
        CLI_STR("--cache", &cachep, "FILE", "the motion cache (motion streams)"),
        CLI_NUM("--segments", &segments, 1, 64, "N", "test segments; TSN uses 25"),
        CLI_CHOICE("--crops", &icrops, crop_counts, "crops per segment, as above"),
        CLI_CHOICE("--subset", &isubset, subsets, "the clips to test"),
        CLI_NUM("--batch", &batch, 1, 4096, "B", "clips per forward pass"),
        CLI_NUM("--workers", &workers, 1, 256, "N", "loader threads", .def = "a quarter of --threads, at least 1"),
        CLI_FLAG("--json", &json, "the metrics as one JSON object on the last line"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts,
        .about = "Runs the TSN test protocol (Wang et al. 2016): N evenly spaced segments (the centre\n"
                 "snippet of each), each seen through 1 (centre), 3 (along the longer side) or 10\n"
                 "(4 corners + centre, and their mirror images) crops; the class scores of all\n"
                 "N x crops snippets are averaged, then turned into probabilities (softmax).\n"
                 "The data options (modality, stack, size, ...) are those stored in the checkpoint.\n\n"
                 "Writes into DIR:\n"
                 "  scores.csv       item,name,label,<class...>: softmax scores per clip (input of glocal fuse)\n"
                 "  metrics.json     top1, top5, mean_class_accuracy, per_class\n"
                 "  confusion.csv    rows = true class, columns = predicted, counts\n"
                 "  confusion.png    the same, row-normalised (white 0 .. dark blue 1)\n"
                 "and prints a summary (--json: the metrics as one JSON object on the last line).\n",
    };
    int status = cli_parse(&spec, argc, argv);
    if (status != CLI_PARSED) return status;
    const char *subset = subsets[isubset];
    dataset_split split = subset_split[isubset];
    long crops = atol(crop_counts[icrops]);

    eval_run e;
    memset(&e, 0, sizeof e);
    status = evaluate_read_config(&e, ckpt, crops);
    if (status == CLI_OK) {
        e.o.data = data;
        e.o.lists = lists;
        e.o.cache = cachep;
        if (split_no) e.o.split_no = (int)split_no;
        e.o.segments = (int)segments;
        status = evaluate_open(&e, ckpt, subset, split, crops);
    }
    if (status == CLI_OK) status = evaluate_predict(&e, batch, workers);
    if (status == CLI_OK) status = evaluate_write(&e, out);
    if (status == CLI_OK) {
        printf("%s stream, %ld clips (%s, split %d), %ld segments x %ld crops\n", e.o.modality, e.m.n, subset,
               e.o.split_no, segments, crops);
        printf("top-1 %.2f%%  top-5 %.2f%%  mean class accuracy %.2f%%\n", 100 * e.m.top1, 100 * e.m.top5,
               100 * e.m.mean_class);
        printf("wrote %s/{scores.csv,metrics.json,confusion.csv,confusion.png}\n", out);
        if (json) printf("%s\n", e.mjson);
    }
    eval_run_free(&e);
    return status;
}
