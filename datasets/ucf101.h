/*
 * ucf101.h — the clip index every dataset in glocal is read through, in the
 * UCF-101 layout (Soomro, Zamir & Shah, "UCF101", CRCV-TR-12-01, 2012).
 *
 * Layout. A list folder holds
 *     classInd.txt       "INDEX Name" per line, INDEX = 1, 2, ... in order
 *     trainlistNN.txt    "Class/v_Class_gGG_cCC.ext LABEL" (LABEL 1-based)
 *     testlistNN.txt     "Class/v_Class_gGG_cCC.ext" (label taken from the folder;
 *                        an optional LABEL is accepted and checked)
 *     vallistNN.txt      optional, same form as testlistNN.txt
 * for split NN = 01, 02, 03; the clips themselves live under a root folder as
 * ROOT/Class/v_Class_gGG_cCC.ext. Lines end in CRLF (as the official lists) or
 * LF; blank lines are skipped. The synthetic generator and `glocal
 * ncaa-import` write this same layout (dataset_lists_write), so one parser
 * serves all three datasets.
 *
 * Quirks handled: the official folder `HandstandPushups` holds files named
 * `v_HandStandPushups_...`, so the class part of a file name is matched to
 * its folder case-insensitively, and files and folders are found under ROOT
 * case-insensitively when the exact name is absent.
 *
 * Groups: GG (the group) must never straddle splits. UCF-101 splits are made
 * by group number over all classes (split 1 tests g01-g07) and NCAA groups
 * are games, so the check is global: one group number, one split.
 *
 * Rawframes: where ROOT/Class/v_Class_gGG_cCC.ext is absent but the folder
 * ROOT/Class/v_Class_gGG_cCC/ holds img_00001.jpg (mmaction2's rawframes, as
 * denseflow extracts them), that folder is the clip (datasets/video.h reads
 * it as a video), so a rawframes tree is a dataset root like a video tree.
 *
 * Missing videos are not an error: each clip records whether its file exists,
 * the index counts the missing ones, and dataset_index_summary() lists the
 * first few. A malformed list is an error "FILE:LINE: what is wrong".
 *
 * Ownership: dataset_index_load() allocates the index and everything in it;
 * dataset_index_free() releases it all (accepts a pointer to NULL, sets the
 * handle to NULL). Strings inside are read-only for the caller.
 *
 * Errors: negative GL_E* codes with a message (gl_last_error()):
 * GL_EIO for an unreadable list or root folder, GL_EFORMAT for a malformed
 * list, GL_EINVAL for bad arguments, GL_ENOMEM.
 */
#ifndef GLOCAL_DATASETS_UCF101_H
#define GLOCAL_DATASETS_UCF101_H

#include <stddef.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    DATASET_TRAIN = 0,
    DATASET_TEST = 1,
    DATASET_VAL = 2,
} dataset_split;
enum { DATASET_NUM_SPLITS = 3 };

/* "train", "test", "val". */
const char *dataset_split_name(dataset_split s);

typedef struct {
    char *rel_path;       /* as listed: "Class/v_Class_gGG_cCC.avi" */
    char *path;           /* absolute: ROOT/<folder on disk>/<file on disk> if found,
                             else ROOT/rel_path */
    int label;            /* 0-based index into dataset_index.class_names */
    int group;            /* GG of the file name */
    int clip;             /* CC of the file name */
    dataset_split split;
    int exists;           /* 1: a regular file (or a link to one), or a rawframes
                             folder (path is then the folder), was found */
    int line;             /* 1-based line in its list file, for messages */
} dataset_clip;

typedef struct {
    char *root;                         /* the clip root, made absolute (not resolved) */
    char *lists;                        /* the list folder as given */
    int split_no;                       /* 1..3 */
    int num_classes;
    char **class_names;                 /* [num_classes], in classInd.txt order */
    long num_clips;
    dataset_clip *clips;                /* train list, then test list, then val list */
    long num_split[DATASET_NUM_SPLITS]; /* clips per split (indexed by dataset_split) */
    long num_missing;                   /* clips whose file was not found */
    int has_val;                        /* vallistNN.txt was present */
} dataset_index;

/* The list folder of the dataset under `root`, into out (n bytes): `lists`
 * when given (copied, not checked); else the first of
 *     ROOT/ucfTrainTestlist      the lists unpacked into the root
 *     ROOT/../ucfTrainTestlist   the two official archives unpacked side by side
 *     ROOT/../annotations        mmaction2's data/ucf101/{videos,annotations}
 *     ROOT                       glocal synth, glocal ncaa-import
 * that holds a classInd.txt, spelled as above (ROOT as given, not resolved).
 * GL_ENOTFOUND when none has one, the message naming all four. */
int dataset_lists_locate(const char *root, const char *lists, char *out, size_t n);

/* Reads classInd.txt, trainlistNN.txt, testlistNN.txt and (if present)
 * vallistNN.txt from `lists` (NULL: dataset_lists_locate's) for split_no 1..99, checks
 * every line, checks that no clip is listed twice and that no group straddles
 * splits, and looks each clip up under `root` (which must be a folder). */
int dataset_index_load(dataset_index **out, const char *root, const char *lists, int split_no);
void dataset_index_free(dataset_index **idx);

/* Index of the class named `name` (exact, else case-insensitive), or -1. */
int dataset_index_find_class(const dataset_index *idx, const char *name);

/* Checks that no group number is in two splits. Returns 0 or GL_EFORMAT with
 * a message naming the group and one clip from each side. (Also run by
 * dataset_index_load.) */
int dataset_index_check_groups(const dataset_index *idx);

/* One human-readable paragraph into buf (always NUL-terminated):
 * "13320 clips in 101 classes (split 1): 9537 train, 3783 test; 2 found,
 * 13318 missing under ROOT, e.g. A, B, C". Lists up to max_missing missing
 * clips. Returns the length it needed (like snprintf). */
int dataset_index_summary(const dataset_index *idx, int max_missing, char *buf, size_t n);

/* Writes the lists of the layout above into folder `dir` (created if needed):
 * classInd.txt, trainlistNN.txt (with labels), testlistNN.txt and, when any
 * clip is DATASET_VAL, vallistNN.txt (both without labels, as the official
 * testlist). Only rel_path, label and split of each clip are used; clips are
 * written in the order given. Each file is written atomically. */
int dataset_lists_write(const char *dir, int split_no, int num_classes,
                        char *const *class_names, long num_clips, const dataset_clip *clips);

#ifdef __cplusplus
}
#endif
#endif
