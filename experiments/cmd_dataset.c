/* glocal dataset — check a dataset in the UCF-101 layout (datasets/ucf101.h):
 * the lists parse, no group straddles splits, and which clips are on disk. */
#include <stdio.h>

#include "datasets/ucf101.h"
#include "experiments/cli.h"
#include "experiments/commands.h"

GLOCAL_COMMAND(dataset, "dataset",
               "check a UCF-101-layout dataset: lists, splits, groups, missing clips")

int cmd_dataset(int argc, char **argv)
{
    const char *cmd = "dataset";
    const char *root = NULL, *lists = NULL;
    long split = 1, show_missing = 5;
    int classes = 0, require_all = 0;
    cli_opt opts[] = {
        CLI_STR("--root", &root, "DIR", "folder holding Class/v_Class_gGG_cCC.avi", .required = 1),
        CLI_STR("--lists", &lists, "DIR", "folder of the list files",
                .def = "ROOT/ucfTrainTestlist, ROOT/../ucfTrainTestlist, ROOT/../annotations or ROOT"),
        CLI_NUM("--split", &split, 1, 99, "N", "split number"),
        CLI_NUM("--missing", &show_missing, 0, 1000000, "N", "list up to N missing clips"),
        CLI_FLAG("--classes", &classes, "also print clips per class and split"),
        CLI_FLAG("--require-all", &require_all, "exit 1 when any listed clip is missing"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts,
        .about = "Reads classInd.txt, trainlistNN.txt, testlistNN.txt and vallistNN.txt (if\n"
                 "present) from the list folder, checks every line (errors name FILE:LINE), checks\n"
                 "that no group gGG is in two splits, looks every clip up under the root\n"
                 "(case-insensitively, as UCF-101's HandstandPushups folder needs) and prints a\n"
                 "summary. UCF-101, `glocal synth` and `glocal ncaa-import` all write this layout.\n",
        .epilog = "Exit code: 0 lists are valid (and, with --require-all, every clip exists),\n"
                  "1 otherwise, 2 usage error.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;

    char lists_dir[4096];
    if ((rc = cli_lists_locate(cmd, root, lists, lists_dir, sizeof lists_dir)) != CLI_OK) return rc;
    dataset_index *idx = NULL;
    rc = dataset_index_load(&idx, root, lists_dir, (int)split);
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
