/* glocal dataset — check a dataset in the UCF-101 layout (datasets/ucf101.h):
 * the lists parse, no group straddles splits, and which clips are on disk. */
#include <stdio.h>
#include <string.h>

#include "datasets/ucf101.h"
#include "experiments/cli.h"
#include "experiments/commands.h"

GLOCAL_COMMAND(dataset, "dataset",
               "check a UCF-101-layout dataset: lists, splits, groups, missing clips")

static const char *usage =
    "usage: glocal dataset --root DIR [--lists DIR] [--split N] [--missing N] [--classes]\n"
    "                      [--require-all]\n"
    "\n"
    "Reads classInd.txt, trainlistNN.txt, testlistNN.txt and vallistNN.txt (if\n"
    "present) from the list folder, checks every line (errors name FILE:LINE), checks\n"
    "that no group gGG is in two splits, looks every clip up under the root\n"
    "(case-insensitively, as UCF-101's HandstandPushups folder needs) and prints a\n"
    "summary. UCF-101, `glocal synth` and `glocal ncaa-import` all write this layout.\n"
    "\n"
    "  --root DIR      folder holding Class/v_Class_gGG_cCC.avi\n"
    "  --lists DIR     folder of the list files (default: the root)\n"
    "  --split N       split number 1..99 (default 1)\n"
    "  --missing N     list up to N missing clips (default 5)\n"
    "  --classes       also print clips per class and split\n"
    "  --require-all   exit 1 when any listed clip is missing\n"
    "\n"
    "Exit code: 0 lists are valid (and, with --require-all, every clip exists),\n"
    "1 otherwise, 2 usage error.\n";

int cmd_dataset(int argc, char **argv)
{
    const char *cmd = "dataset";
    const char *root = NULL, *lists = NULL;
    long split = 1, show_missing = 5;
    int classes = 0, require_all = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--classes")) { classes = 1; continue; }
        if (!strcmp(a, "--require-all")) { require_all = 1; continue; }
        int takes = !strcmp(a, "--root") || !strcmp(a, "--lists") || !strcmp(a, "--split") ||
                    !strcmp(a, "--missing");
        if (!takes) return cli_usage_error(cmd, "unexpected argument '%s'", a);
        if (i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--root")) root = v;
        else if (!strcmp(a, "--lists")) lists = v;
        else if (!strcmp(a, "--split")) {
            if (cli_parse_int(cmd, a, v, 1, 99, &split) < 0) return CLI_USAGE;
        } else if (cli_parse_int(cmd, a, v, 0, 1000000, &show_missing) < 0) {
            return CLI_USAGE;
        }
    }
    if (!root) return cli_usage_error(cmd, "--root is required");

    dataset_index *idx = NULL;
    int rc = dataset_index_load(&idx, root, lists, (int)split);
    if (rc < 0) return cli_fail(cmd, rc, "cannot read the dataset");
    int need = dataset_index_summary(idx, (int)show_missing, NULL, 0);
    char *sum = gl_malloc((size_t)need + 1);
    if (!sum) {
        dataset_index_free(&idx);
        return cli_fail(cmd, GL_ENOMEM, "summary");
    }
    dataset_index_summary(idx, (int)show_missing, sum, (size_t)need + 1);
    printf("%s\n", sum);
    gl_free(sum);
    if (classes) {
        printf("%-4s %-28s %7s %7s %7s %8s\n", "#", "class", "train", "test", "val", "missing");
        for (int c = 0; c < idx->num_classes; c++) {
            long n[DATASET_NUM_SPLITS] = { 0 }, miss = 0;
            for (long i = 0; i < idx->num_clips; i++) {
                if (idx->clips[i].label != c) continue;
                n[idx->clips[i].split]++;
                miss += !idx->clips[i].exists;
            }
            printf("%-4d %-28s %7ld %7ld %7ld %8ld\n", c + 1, idx->class_names[c],
                   n[DATASET_TRAIN], n[DATASET_TEST], n[DATASET_VAL], miss);
        }
    }
    int code = require_all && idx->num_missing ? CLI_FAIL : CLI_OK;
    if (code == CLI_FAIL)
        fprintf(stderr, "glocal %s: %ld of %ld listed clips are missing under %s\n", cmd,
                idx->num_missing, idx->num_clips, root);
    dataset_index_free(&idx);
    return code;
}
