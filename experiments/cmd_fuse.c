/* glocal fuse — late fusion of per-clip softmax scores saved by `glocal
 * evaluate`, with any weights, without running a network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "recognition/classifier.h"

GLOCAL_COMMAND(fuse, "fuse", "late fusion of saved per-clip scores with given weights (two-stream)")

static const char *cmd = "fuse";

typedef struct {
    long n, *items;
    int C;
    char **names, **cnames;
    int32_t *labels;
    float *scores;
} stream;

static void stream_free(stream *s)
{
    gl_free(s->items);
    gl_free(s->labels);
    gl_free(s->scores);
    cls_names_free(s->names, s->n);
    cls_names_free(s->cnames, s->C);
    memset(s, 0, sizeof *s);
}

int cmd_fuse(int argc, char **argv)
{
    const char *files[16], *weights = NULL, *out = NULL;
    int nf = 0, json = 0;
    cli_opt opts[] = {
        CLI_STR("--weights", &weights, "LIST", "one weight per file, comma-separated", .def = "all 1"),
        CLI_STR("--out", &out, "DIR", "also write DIR/scores.csv, metrics.json, confusion.csv/.png"),
        CLI_FLAG("--json", &json, "the fused metrics as one JSON object on the last line"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .args = "SCORES.csv...", .arg = files, .min_args = 1, .max_args = 16,
        .nargs = &nf,
        .about = "Two-stream late fusion (Simonyan & Zisserman 2014; TSN weights RGB 1 : flow 1.5):\n"
                 "the weighted sum of the streams' softmax scores, clip by clip. The files (1 to 16)\n"
                 "are the scores.csv of `glocal evaluate`; they must list the same clips, labels and\n"
                 "classes in the same order. Prints top-1, top-5 and mean class accuracy of every\n"
                 "input and of the fusion.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    double w[16];
    for (int k = 0; k < nf; k++) w[k] = 1.0;
    if (weights) {
        const char *p = weights;
        for (int k = 0; k < nf; k++) {
            char *end;
            w[k] = strtod(p, &end);
            if (end == p || (k < nf - 1 && *end != ',') || (k == nf - 1 && *end)) {
                return cli_usage_error(cmd, "--weights expects %d comma-separated numbers, got '%s'", nf, weights);
            }
            p = end + 1;
        }
    }
    int status = CLI_FAIL;
    stream s[16];
    memset(s, 0, sizeof s);
    float *fused = NULL;
    char *mjson = NULL;
    cls_metrics m;
    memset(&m, 0, sizeof m);
    for (int k = 0; k < nf; k++) {
        if ((rc = cls_scores_load(files[k], &s[k].n, &s[k].C, &s[k].items, &s[k].names, &s[k].labels, &s[k].scores, &s[k].cnames)) < 0) {
            cli_fail(cmd, rc, "cannot read %s", files[k]);
            goto done;
        }
        if (k == 0) continue;
        if (s[k].n != s[0].n || s[k].C != s[0].C) {
            fprintf(stderr, "glocal %s: %s has %ld clips x %d classes, %s has %ld x %d\n", cmd, files[k], s[k].n, s[k].C,
                    files[0], s[0].n, s[0].C);
            goto done;
        }
        for (int c = 0; c < s[0].C; c++)
            if (strcmp(s[k].cnames[c], s[0].cnames[c])) {
                fprintf(stderr, "glocal %s: class %d is '%s' in %s but '%s' in %s\n", cmd, c, s[k].cnames[c], files[k], s[0].cnames[c], files[0]);
                goto done;
            }
        for (long i = 0; i < s[0].n; i++)
            if (s[k].items[i] != s[0].items[i] || s[k].labels[i] != s[0].labels[i] || strcmp(s[k].names[i], s[0].names[i])) {
                fprintf(stderr, "glocal %s: row %ld differs: %s has clip %ld '%s' (label %d), %s has %ld '%s' (label %d)\n", cmd,
                        i + 1, files[k], s[k].items[i], s[k].names[i], s[k].labels[i], files[0], s[0].items[i], s[0].names[i],
                        s[0].labels[i]);
                goto done;
            }
    }
    long n = s[0].n;
    int C = s[0].C;
    for (int k = 0; k < nf; k++) {
        if ((rc = cls_metrics_compute(s[k].scores, s[k].labels, n, C, &m)) < 0) { cli_fail(cmd, rc, "%s", files[k]); goto done; }
        printf("%-40s weight %-5g top-1 %6.2f%%  top-5 %6.2f%%  mean class %6.2f%%\n", files[k], w[k], 100 * m.top1,
               100 * m.top5, 100 * m.mean_class);
        cls_metrics_free(&m);
    }
    const float *sc[16];
    for (int k = 0; k < nf; k++) sc[k] = s[k].scores;
    if (!(fused = gl_malloc((size_t)n * C * sizeof *fused + 1))) { cli_fail(cmd, GL_ENOMEM, "fusion"); goto done; }
    if ((rc = cls_fuse(nf, sc, w, n, C, fused)) < 0 || (rc = cls_metrics_compute(fused, s[0].labels, n, C, &m)) < 0 ||
        (rc = cls_metrics_to_json(&m, s[0].cnames, &mjson)) < 0) {
        cli_fail(cmd, rc, "fusion");
        goto done;
    }
    printf("%-40s              top-1 %6.2f%%  top-5 %6.2f%%  mean class %6.2f%%\n", "fused", 100 * m.top1, 100 * m.top5,
           100 * m.mean_class);
    if (out) {
        char path[4096];
        if ((rc = gl_mkdirs(out)) < 0) { cli_fail(cmd, rc, "cannot create %s", out); goto done; }
        snprintf(path, sizeof path, "%s/scores.csv", out);
        if ((rc = cls_scores_save(path, n, C, s[0].items, (const char *const *)s[0].names, s[0].labels, fused, s[0].cnames)) < 0) {
            cli_fail(cmd, rc, "cannot write %s", path);
            goto done;
        }
        snprintf(path, sizeof path, "%s/metrics.json", out);
        if ((rc = gl_write_file_atomic(path, mjson, strlen(mjson))) < 0) { cli_fail(cmd, rc, "cannot write %s", path); goto done; }
        snprintf(path, sizeof path, "%s/confusion.csv", out);
        if ((rc = cls_metrics_save_confusion_csv(path, &m, s[0].cnames)) < 0) { cli_fail(cmd, rc, "cannot write %s", path); goto done; }
        snprintf(path, sizeof path, "%s/confusion.png", out);
        if ((rc = cls_metrics_save_confusion_png(path, &m, C <= 16 ? 16 : C <= 128 ? 8 : 2)) < 0) { cli_fail(cmd, rc, "cannot write %s", path); goto done; }
    }
    if (json) printf("%s\n", mjson);
    status = CLI_OK;
done:
    cls_metrics_free(&m);
    gl_free(mjson);
    gl_free(fused);
    for (int k = 0; k < nf; k++) stream_free(&s[k]);
    return status;
}
