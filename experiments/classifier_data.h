/*
 * classifier_data.h — what `glocal train-classifier` and `glocal evaluate`
 * share: the stream's data options, turning them into a loader source (RGB
 * frames from the videos of a UCF-101-layout dataset, or motion stacks from a
 * motion cache), and the JSON stored in checkpoints so that evaluation uses
 * the options the model was trained with.
 *
 * Motion clips are matched to the dataset list by name (the cache's clip
 * name is the video's path relative to the dataset), falling back to the
 * clip's position in the list; clips of the split missing from the cache are
 * counted (cls_data.missing) and left out.
 */
#ifndef GLOCAL_EXPERIMENTS_CLASSIFIER_DATA_H
#define GLOCAL_EXPERIMENTS_CLASSIFIER_DATA_H

#include "datasets/cache.h"
#include "datasets/loader.h"
#include "datasets/ucf101.h"

typedef struct {
    const char *data;        /* dataset root (videos + lists) */
    const char *lists;       /* list folder (NULL: the root) */
    int split_no;            /* 1..3 */
    char modality[16];       /* "rgb" or "motion" */
    const char *cache;       /* motion: the cache file */
    int stack;               /* motion: L fields per segment */
    int frames;              /* rgb: frames per segment */
    int segments;            /* K */
    int size_w, size_h;      /* network input */
    int decode_w, decode_h;  /* rgb: decode size */
    double divide;           /* motion: fields are divided by this */
    int flip;                /* training used horizontal flips (recorded for evaluate) */
} cls_data_opts;

void cls_data_opts_default(cls_data_opts *o);

typedef struct {
    dataset_index *idx;
    loader_source src;
    long count;              /* items (clips used) */
    long missing;            /* motion: clips of the split not in the cache */
    int channels;            /* network input channels */
    long *clip_of;           /* [count] row in idx->clips of each item */
    /* motion only */
    char *cache_path;
    long *rows;              /* [count] cache rows */
    long *pairs;
    int32_t *labels;
    int cache_channels;
} cls_data;

/* Loads the index and builds the source for `split` with augmentation aug. */
int cls_data_open(cls_data *d, const cls_data_opts *o, dataset_split split, const loader_aug *aug);
void cls_data_close(cls_data *d);
const char *cls_data_item_name(const cls_data *d, long item);

/* The data options as a JSON object text (no class names). */
int cls_data_opts_to_json(const cls_data_opts *o, char *buf, size_t n);
/* Fills the options stored under "data" in a checkpoint's config JSON
 * (fields absent there are left as they are). */
int cls_data_opts_from_json(const char *json, cls_data_opts *o);

#endif
