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

/* Long (~135 lines), 30 of them the option table and help text (cli_parse). */
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
    int status = cli_parse(&spec, argc, argv), rc;
    if (status != CLI_PARSED) return status;
    const char *subset = subsets[isubset];
    dataset_split split = subset_split[isubset];
    long crops = atol(crop_counts[icrops]);

    status = CLI_FAIL;
    char *config = NULL, *mjson = NULL;
    classifier *c = NULL;
    cls_data d;
    memset(&d, 0, sizeof d);
    float *scores = NULL;
    int32_t *labels = NULL;
    long *items = NULL;
    const char **names = NULL;
    cls_metrics m;
    memset(&m, 0, sizeof m);
    /* the stored options first, then the weights into a model of that shape */
    rc = classifier_checkpoint_config(ckpt, &config);
    cls_data_opts o;
    cls_data_opts_default(&o);
    classifier_config cc;
    if (!config || (rc = cls_data_opts_from_json(config, &o)) < 0 || (rc = classifier_config_from_json(config, &cc)) < 0) {
        cli_fail(cmd, rc, "%s is not a checkpoint of glocal train-classifier", ckpt);
        goto done;
    }
    if (!o.flip && crops == 10) {
        status = cli_usage_error(cmd, "the model was trained with --no-flip (its classes depend on left/right), "
                                      "and 10-crop testing mirrors half of the views: use --crops 1 or 3");
        goto done;
    }
    o.data = data;
    o.lists = lists;
    o.cache = cachep;
    if (split_no) o.split_no = (int)split_no;
    o.segments = (int)segments;
    if ((rc = classifier_new(&c, &cc)) < 0 || (rc = nn_checkpoint_load(ckpt, classifier_params(c), NULL, NULL, NULL)) < 0) {
        cli_fail(cmd, rc, "cannot load the model");
        goto done;
    }
    loader_aug aug = loader_aug_default(o.size_w, o.size_h);
    aug.test_views = (int)crops;
    if ((rc = cls_data_open(&d, &o, split, &aug)) < 0) { cli_fail(cmd, rc, "cannot set up the %s data", subset); goto done; }
    if (d.channels != cc.in_channels) {
        fprintf(stderr, "glocal %s: the data give %d input channels, the model expects %d\n", cmd, d.channels, cc.in_channels);
        goto done;
    }
    if (d.idx->num_classes != cc.num_classes) {
        fprintf(stderr, "glocal %s: the dataset has %d classes, the model %d\n", cmd, d.idx->num_classes, cc.num_classes);
        goto done;
    }
    if (d.missing) fprintf(stderr, "glocal %s: %ld %s clips are not in the cache and are left out\n", cmd, d.missing, subset);
    int C = cc.num_classes;
    if (!(scores = gl_malloc((size_t)d.count * C * sizeof *scores)) || !(labels = gl_malloc((size_t)d.count * sizeof *labels)) ||
        !(items = gl_malloc((size_t)d.count * sizeof *items)) || !(names = gl_malloc((size_t)d.count * sizeof *names))) {
        cli_fail(cmd, GL_ENOMEM, "scores");
        goto done;
    }
    prog p;
    cli_progress_start(&p.pr, "evaluate", (d.count + batch - 1) / batch);
    if ((rc = cls_predict(c, &d.src, (int)batch, workers ? (int)workers : (gl_num_threads() / 4 > 1 ? gl_num_threads() / 4 : 1), scores, labels, items, on_batch, &p)) < 0) {
        cli_fail(cmd, rc, "evaluation failed");
        goto done;
    }
    cli_progress_end(&p.pr, (d.count + batch - 1) / batch, NULL);
    for (long i = 0; i < d.count; i++) names[i] = cls_data_item_name(&d, items[i]);
    if ((rc = gl_mkdirs(out)) < 0) { cli_fail(cmd, rc, "cannot create %s", out); goto done; }
    char path[4096];
    snprintf(path, sizeof path, "%s/scores.csv", out);
    if ((rc = cls_scores_save(path, d.count, C, items, names, labels, scores, d.idx->class_names)) < 0) { cli_fail(cmd, rc, "cannot write %s", path); goto done; }
    if ((rc = cls_metrics_compute(scores, labels, d.count, C, &m)) < 0 || (rc = cls_metrics_to_json(&m, d.idx->class_names, &mjson)) < 0) {
        cli_fail(cmd, rc, "metrics");
        goto done;
    }
    snprintf(path, sizeof path, "%s/metrics.json", out);
    size_t ml = strlen(mjson);
    mjson[ml] = '\n'; /* the file ends with a newline; the buffer's NUL is restored below */
    rc = gl_write_file_atomic(path, mjson, ml + 1);
    mjson[ml] = 0;
    if (rc < 0) { cli_fail(cmd, rc, "cannot write %s", path); goto done; }
    snprintf(path, sizeof path, "%s/confusion.csv", out);
    if ((rc = cls_metrics_save_confusion_csv(path, &m, d.idx->class_names)) < 0) { cli_fail(cmd, rc, "cannot write %s", path); goto done; }
    snprintf(path, sizeof path, "%s/confusion.png", out);
    int cell = C <= 16 ? 16 : C <= 128 ? 8 : 2;
    if ((rc = cls_metrics_save_confusion_png(path, &m, cell)) < 0) { cli_fail(cmd, rc, "cannot write %s", path); goto done; }
    printf("%s stream, %ld clips (%s, split %d), %ld segments x %ld crops\n", o.modality, m.n, subset, o.split_no, segments, crops);
    printf("top-1 %.2f%%  top-5 %.2f%%  mean class accuracy %.2f%%\n", 100 * m.top1, 100 * m.top5, 100 * m.mean_class);
    printf("wrote %s/{scores.csv,metrics.json,confusion.csv,confusion.png}\n", out);
    if (json) printf("%s\n", mjson);
    status = CLI_OK;
done:
    cls_metrics_free(&m);
    gl_free(mjson);
    gl_free(names);
    gl_free(items);
    gl_free(labels);
    gl_free(scores);
    cls_data_close(&d);
    classifier_free(&c);
    gl_free(config);
    return status;
}
