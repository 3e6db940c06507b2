/*
 * classifier.h — the two-stream action classifier: a ResNet backbone per
 * stream, TSN segment consensus, training, evaluation metrics and late fusion.
 *
 * Papers. Two-stream networks: Simonyan & Zisserman, NIPS 2014 (RGB stream on
 * frames, motion stream on stacks of L consecutive flow fields = 2L input
 * channels, late fusion of softmax scores). Temporal Segment Networks: Wang et
 * al., ECCV 2016 (K segments per clip, one snippet each, average consensus of
 * the class scores; cross-modality initialisation: the first convolution of
 * an RGB-pretrained net is averaged over its 3 input channels and that mean
 * replicated over the 2L motion channels; test: 25 segments x 10 crops in the
 * paper, here N segments x 1/3/10 views, averaged). ResNet: He et al., CVPR
 * 2016, in torchvision's layout (stride on the 3x3 convolution, "v1.5").
 *
 * Model. classifier_forward takes x [N, S, C, H, W] (S = segments, or views
 * x segments at test time), runs the backbone on all N*S snippets, applies
 * dropout + the linear classifier to each, and averages the S logit vectors
 * (TSN average consensus, before the softmax; TSN's test code averages raw
 * scores the same way). Output: logits [N, classes].
 *
 * Parameter names are torchvision's ResNet state_dict keys (conv1.weight,
 * bn1.running_mean, layer1.0.conv1.weight, layer2.0.downsample.0.weight,
 * ..., fc.weight), so a torchvision checkpoint exports with a few lines of
 * h5py (recognition/README.md, "Pretrained weights").
 *
 * Ownership. classifier_new allocates; classifier_free releases (NULL-safe,
 * nulls the pointer). Tensors returned through out parameters are the
 * caller's. Metrics own their arrays (cls_metrics_free).
 *
 * Errors. Negative GL_E* codes with a message; GL_ENUMERIC when training
 * meets a non-finite loss (the message says at which step and what to try).
 */
#ifndef GLOCAL_RECOGNITION_CLASSIFIER_H
#define GLOCAL_RECOGNITION_CLASSIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/loader.h"
#include "nn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- model ------------------------------------------------------------------ */

typedef struct {
    char arch[32];        /* preset it came from ("tiny", "small", "resnet18", ...) */
    int in_channels;      /* 3 RGB, 3F frame stacks, 2L motion stacks */
    int num_classes;
    int width;            /* channels of the first stage (ResNet: 64) */
    int stages;           /* 1..4; stage s has width << s channels (x4 for bottlenecks) */
    int blocks[4];        /* residual blocks per stage (ResNet-18: 2 2 2 2) */
    int bottleneck;       /* 0 basic blocks (ResNet-18/34), 1 bottlenecks (ResNet-50) */
    int stem_kernel;      /* ResNet: 7 */
    int stem_stride;      /* ResNet: 2 */
    int stem_pool;        /* 1: 3x3 stride-2 max pool after the stem (ResNet) */
    double dropout;       /* before the classifier (TSN: 0.8 RGB, 0.7 flow) */
} classifier_config;

/* Presets: "tiny" (width 8, 2 stages of 1 block, 3x3 stem, no pool: trains on
 * 2 CPU cores in seconds at 32x32), "small" (width 16, 3 stages x 1 block),
 * "resnet10" (1 basic block per stage), "resnet18", "resnet34", "resnet50"
 * (torchvision shapes; change `width` for narrower nets). GL_ENOTFOUND for
 * an unknown name. */
int classifier_config_preset(const char *name, int in_channels, int num_classes,
                             classifier_config *out);
int classifier_config_validate(const classifier_config *c);
/* JSON object text; the parser accepts that object or one holding it under
 * "classifier". */
int classifier_config_to_json(const classifier_config *c, char *buf, size_t n);
int classifier_config_from_json(const char *json, classifier_config *out);

typedef struct classifier classifier;

/* Allocates the parameters (torchvision's initialisation: Kaiming normal,
 * fan_out for convolutions, BN weight 1 / bias 0, uniform for fc) on the
 * runtime's default device. Seed with nn_manual_seed for reproducibility. */
int classifier_new(classifier **out, const classifier_config *cfg);
void classifier_free(classifier **c);
const classifier_config *classifier_get_config(const classifier *c);
nn_params *classifier_params(classifier *c);
int classifier_feature_dim(const classifier *c);

/* x [N, S, C, H, W] -> logits [N, classes] (average over S). */
int classifier_forward(nn_tensor **logits, classifier *c, const nn_tensor *x, int training);
/* The backbone alone: x [M, C, H, W] -> pooled features [M, F]. */
int classifier_features(nn_tensor **feat, classifier *c, const nn_tensor *x, int training);
/* The head on features [N*S, F]: dropout (training only) -> linear (w [classes,
 * F], b [classes]) -> average over the S snippets of each clip -> [N, classes]. */
int classifier_head(nn_tensor **logits, const nn_tensor *feat, const nn_tensor *w,
                    const nn_tensor *b, int S, double dropout, int training);

/* --init: loads a checkpoint in our format (nn_checkpoint_save, or exported
 * from torchvision with h5py: /params/<name> and /buffers/<name> float or
 * int64 datasets; the dtype attribute is optional here). Matching names and
 * shapes are copied. conv1.weight of a 3-channel (RGB) file loaded into a
 * model with C != 3 input channels gets TSN's cross-modality init: the mean
 * over the 3 channels, replicated C times. fc.* of another class count is
 * skipped (left freshly initialised). Anything else missing or of another
 * shape is GL_EFORMAT naming it. report (may be NULL) receives one line per
 * conversion or skip. */
int classifier_load_pretrained(classifier *c, const char *path, char *report, size_t n);

/* The config JSON text stored in a checkpoint's root attribute "config"
 * (*json gl_malloc'ed). GL_ENOTFOUND when there is none. */
int classifier_checkpoint_config(const char *path, char **json);

/* ---- training ---------------------------------------------------------------- */

typedef struct {
    nn_opt_config opt;        /* SGD momentum 0.9 or AdamW; lr, weight_decay */
    nn_lr_kind schedule;      /* NN_LR_STEP or NN_LR_COSINE (or constant) */
    double warmup_epochs;     /* linear warm-up from 0.1 x lr */
    double min_lr;            /* cosine floor */
    double step_epochs;       /* step schedule: lr x gamma every step_epochs */
    double gamma;
    double label_smoothing;
    double clip_grad;         /* max global gradient norm; 0 = off (TSN: 40 / 20) */
    long epochs;
    uint64_t seed;            /* loader order, augmentation and dropout */
    const char *checkpoint;   /* written after every epoch (atomic), and where the callback stops
                                 training inside an epoch; NULL = none */
    const char *resume;       /* checkpoint to continue from; NULL = start fresh */
    const char *config_json;  /* stored in every checkpoint (may be NULL) */
    const char *log_path;     /* JSON lines, one per epoch, rewritten atomically; on a resume
                                 the lines of the epochs in the checkpoint are kept; NULL = none */
    int batch_size, threads, prefetch;
    /* Data parallelism (nn/nn.h, c10d); NULL = one process. With a world of
     * W ranks, batch_size is the GLOBAL batch (a multiple of W): each rank
     * loads its batch_size / W share of every batch (loader rank/world),
     * starts from rank 0's parameters, and takes the step of the averaged
     * gradient (all-reduced after backward, before clipping), so without
     * batch norm it follows one process training on the combined batch.
     * Batch norm uses per-rank statistics (DDP's default). Every rank calls
     * cls_train with the same config and may resume from the same
     * checkpoint; only rank 0 writes the checkpoint and the log; the logged
     * loss and accuracy are over the combined batch; a non-finite loss on any
     * rank stops all ranks; dropout masks differ per rank. Borrowed. */
    nn_dist *dist;
} cls_train_config;

cls_train_config cls_train_config_default(void);
int cls_train_config_validate(const cls_train_config *c);

typedef struct {
    long step, total_steps;
    long epoch;               /* 0-based */
    long batch, batches;      /* within the epoch */
    double loss, acc;         /* running means over the epoch so far */
    double lr;
    double clips_per_s;       /* all ranks together */
    int end_of_epoch;
    int rank, world;          /* this process's place (0, 1 without cfg->dist) */
} cls_train_status;

/* Called after every step (and with end_of_epoch = 1 after each epoch) on
 * every rank (loss, acc and clips/s are the same everywhere: over the
 * combined batch; show progress only where rank == 0); return nonzero to
 * stop (GL_ECANCELED); one rank asking stops all of them. A stop inside an
 * epoch writes cfg->checkpoint at that step, and a resume from it continues
 * with the epoch's next batch exactly as the uninterrupted run would (its
 * log line then averages only the batches run after the resume). */
typedef int (*cls_train_callback)(void *ctx, const cls_train_status *s);

/* Trains on `train` (samples [S, C, H, W], labels) for cfg->epochs epochs. */
int cls_train(classifier *c, const loader_source *train, const cls_train_config *cfg,
              cls_train_callback cb, void *cb_ctx);

/* Evaluates every item of `src` once, in order: softmax of the consensus
 * logits into scores [count, classes]; labels [count] and items [count] may be
 * NULL. */
int cls_predict(classifier *c, const loader_source *src, int batch_size, int threads,
                float *scores, int32_t *labels, long *items, cls_train_callback cb, void *cb_ctx);

/* ---- metrics and fusion --------------------------------------------------------- */

typedef struct {
    int num_classes;
    long n;                   /* clips with a valid label */
    double top1, top5;        /* fractions */
    double mean_class;        /* mean over classes present of per-class top-1 */
    double *per_class;        /* [classes] top-1 recall; NAN for absent classes */
    long *class_count;        /* [classes] clips per true class */
    long *confusion;          /* [classes x classes], row = true, column = predicted */
} cls_metrics;

/* From scores [n, classes] (any monotone scores: ties go to the lower class)
 * and labels (labels < 0 are skipped). top5 uses min(5, classes). */
int cls_metrics_compute(const float *scores, const int32_t *labels, long n, int num_classes,
                        cls_metrics *m);
void cls_metrics_free(cls_metrics *m);
/* One JSON object (no newline) into *json (gl_malloc'ed). */
int cls_metrics_to_json(const cls_metrics *m, char *const *class_names, char **json);
/* CSV: header "true\\pred,<names>", one row per class. Atomic. */
int cls_metrics_save_confusion_csv(const char *path, const cls_metrics *m, char *const *class_names);
/* PNG: one cell per class pair (cell px square), row-normalised, white (0) to
 * dark blue (1). Atomic. */
int cls_metrics_save_confusion_png(const char *path, const cls_metrics *m, int cell);

/* Per-clip scores as CSV: "item,name,label,<class names...>" then one row per
 * clip with softmax scores (%.9g). Atomic. */
int cls_scores_save(const char *path, long n, int num_classes, const long *items,
                    const char *const *names, const int32_t *labels, const float *scores,
                    char *const *class_names);
/* Reads a scores file: allocates *items, *labels, *scores (gl_free each) and
 * *names (n strings, free with cls_names_free) and *class_names. */
int cls_scores_load(const char *path, long *n, int *num_classes, long **items, char ***names,
                    int32_t **labels, float **scores, char ***class_names);
void cls_names_free(char **names, long n);
/* Late fusion: out = sum_i weights[i] * scores_i, element-wise over n x
 * classes (the caller checks that the streams list the same clips in the same
 * order, as `glocal fuse` does). */
int cls_fuse(int nstreams, const float *const *scores, const double *weights, long n,
             int num_classes, float *out);

#ifdef __cplusplus
}
#endif
#endif
